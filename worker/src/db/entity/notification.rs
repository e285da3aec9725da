//! `notifications`: the webhook outbox (migration 0015).
use sea_orm::entity::prelude::*;
use serde::Serialize;

/// One notification of an upload's end.
#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize)]
#[sea_orm(table_name = "notifications")]
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
    pub next_attempt_at: DateTimeUtc,
    #[serde(skip)]
    pub lease_expires_at: Option<DateTimeUtc>,
    pub last_error: Option<String>,
    pub created_at: DateTimeUtc,
    pub finished_at: Option<DateTimeUtc>,
}

impl ActiveModelBehavior for ActiveModel {}
