//! `uploads`: one S3 object version to apply; the queue of record.
use sea_orm::entity::prelude::*;
use serde::Serialize;

use crate::upload::{UploadSource, UploadState};

/// An upload row.
#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, utoipa::ToSchema)]
#[sea_orm(table_name = "uploads")]
#[schema(as = Upload)]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub tenant_id: i64,
    #[schema(value_type = String)]
    pub source: UploadSource,
    pub bucket: String,
    pub object_key: String,
    pub object_identity: String,
    pub version_id: Option<String>,
    pub etag: Option<String>,
    pub size_bytes: Option<i64>,
    pub event_time: Option<chrono::DateTime<chrono::Utc>>,
    #[schema(value_type = String)]
    pub state: UploadState,
    pub attempts: i32,
    pub not_before: Option<chrono::DateTime<chrono::Utc>>,
    pub lease_owner: Option<String>,
    pub lease_token: i64,
    pub lease_expires_at: Option<chrono::DateTime<chrono::Utc>>,
    pub queued_at: chrono::DateTime<chrono::Utc>,
    pub started_at: Option<chrono::DateTime<chrono::Utc>>,
    pub finished_at: Option<chrono::DateTime<chrono::Utc>>,
    pub rows_read: i64,
    pub rows_created: i64,
    pub rows_updated: i64,
    pub rows_unchanged: i64,
    pub rows_deactivated: i64,
    pub rows_rejected: i64,
    /// Row problems found but not kept, over `limits.max_row_problems`.
    pub row_problems_dropped: i64,
    pub failure_reason: Option<String>,
    pub held_deactivations: i64,
    pub hold_reason: Option<String>,
    pub hold_resolution: Option<String>,
    pub resolved_at: Option<chrono::DateTime<chrono::Utc>>,
    pub superseded_by: Option<i64>,
    /// The failed upload this one retries (`userfeed uploads retry`).
    pub retry_of: Option<i64>,
    /// The upload this one undid (source `undo`).
    pub undo_of: Option<i64>,
}

impl ActiveModelBehavior for ActiveModel {}
