//! sea-orm entities, one per table. Columns are documented in the migration
//! (`migrations/src/m0001_initial/postgres.sql`).

pub mod tenant;
pub mod upload;
pub mod upload_deactivation;
pub mod upload_row;
pub mod upload_row_error;
pub mod user;
