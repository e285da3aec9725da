//! `tenant_credentials`: tenants' upload access keys, by ID (migration 0016).
use sea_orm::entity::prelude::*;
use serde::Serialize;

/// One access key of a tenant's upload user. The secret is never stored.
#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, utoipa::ToSchema)]
#[sea_orm(table_name = "tenant_credentials")]
#[schema(as = Credential)]
pub struct Model {
    #[sea_orm(primary_key)]
    #[serde(skip)]
    pub id: i64,
    #[serde(skip)]
    pub tenant_id: i64,
    /// The IAM user the key belongs to.
    pub iam_user: String,
    /// The access key ID (public; the secret was shown once).
    pub access_key_id: String,
    /// `active`, `retiring` (rotated out, works until `retire_at`) or `deleted`.
    pub state: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// When a retiring key stops working.
    pub retire_at: Option<chrono::DateTime<chrono::Utc>>,
    pub deleted_at: Option<chrono::DateTime<chrono::Utc>>,
}

impl ActiveModelBehavior for ActiveModel {}
