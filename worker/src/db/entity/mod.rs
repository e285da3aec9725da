//! sea-orm entities, one per table. Columns are documented in the migration
//! (`migrations/src/m0001_initial/postgres.sql`).

pub mod group;
pub mod group_membership;
pub mod notification;
pub mod notification_attempt;
pub mod profile_field;
pub mod tenant;
pub mod tenant_credential;
pub mod ui_session;
pub mod upload;
pub mod upload_body;
pub mod upload_change;
pub mod upload_deactivation;
pub mod upload_link_change;
pub mod upload_pending;
pub mod upload_row;
pub mod upload_row_error;
pub mod user;
pub mod user_manager;
pub mod user_role;
pub mod xero_connection;
