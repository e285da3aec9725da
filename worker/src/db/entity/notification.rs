//! `notifications`: the webhook outbox (migration 0015).
use sea_orm::entity::prelude::*;
use serde::Serialize;

/// One notification of an upload's end.
#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, utoipa::ToSchema)]
#[sea_orm(table_name = "notifications")]
#[schema(as = Notification)]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub upload_id: i64,
    pub tenant_id: i64,
    /// `upload.failed`, `upload.held`, `upload.superseded` or `upload.rejected_rows`.
    pub event: String,
    /// `pending`, `delivered`, `failed` (gave up) or `skipped` (no URL).
    pub state: String,
    #[serde(skip)]
    pub payload: Option<String>,
    pub attempts: i32,
    pub next_attempt_at: chrono::DateTime<chrono::Utc>,
    #[serde(skip)]
    pub lease_expires_at: Option<chrono::DateTime<chrono::Utc>>,
    pub last_error: Option<String>,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub finished_at: Option<chrono::DateTime<chrono::Utc>>,
}

impl ActiveModelBehavior for ActiveModel {}
