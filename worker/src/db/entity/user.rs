//! `users`: platform users of a tenant.
use sea_orm::entity::prelude::*;
use serde::Serialize;

/// A user row.
#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, utoipa::ToSchema)]
#[sea_orm(table_name = "users")]
#[schema(as = User)]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub tenant_id: i64,
    pub email: String,
    pub external_id: Option<String>,
    pub first_name: String,
    pub last_name: String,
    pub active: bool,
    /// Custom profile fields and their values.
    #[schema(value_type = Object)]
    pub profile: Json,
    pub feed_managed: bool,
    pub created_by_upload_id: Option<i64>,
    pub last_changed_upload_id: Option<i64>,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub updated_at: chrono::DateTime<chrono::Utc>,
    pub deactivated_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Digest of the row this user last applied (see `map::StagedRow::digest_for`).
    #[serde(skip)]
    pub feed_digest: Option<Vec<u8>>,
}

impl ActiveModelBehavior for ActiveModel {}
