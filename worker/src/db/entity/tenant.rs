//! `tenants`: one customer organisation and its S3 drop location.
use sea_orm::entity::prelude::*;
use serde::Serialize;

/// A tenant row.
#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize)]
#[sea_orm(table_name = "tenants")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub slug: String,
    pub bucket: String,
    pub key_prefix: String,
    pub match_key: String,
    pub mapping: Option<Json>,
    pub hold_over_percent: i32,
    pub hold_over_count: i32,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    /// Folded into every row digest; bumped to invalidate them all.
    pub feed_epoch: i64,
    /// Where notifications go (migration 0015); `None`: the platform default.
    pub webhook_url: Option<String>,
    /// The version of the signing secret, bumped to rotate it.
    pub webhook_secret_version: i32,
}

impl ActiveModelBehavior for ActiveModel {}
