//! `notification_attempts`: each call of a webhook (migration 0015).
use sea_orm::entity::prelude::*;
use serde::Serialize;

/// One attempt to deliver a notification.
#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, utoipa::ToSchema)]
#[sea_orm(table_name = "notification_attempts")]
#[schema(as = NotificationAttempt)]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub notification_id: i64,
    pub attempted_at: chrono::DateTime<chrono::Utc>,
    pub url: String,
    /// The HTTP status; `None` when no answer came.
    pub status: Option<i32>,
    pub error: Option<String>,
    pub duration_ms: i64,
}

impl ActiveModelBehavior for ActiveModel {}
