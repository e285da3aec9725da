//! `upload_link_changes`: the per-upload link log (migration 0014).
use sea_orm::entity::prelude::*;
use serde::Serialize;

/// One manager link, role or membership an upload added or removed for a
/// user it did not create.
#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize)]
#[sea_orm(table_name = "upload_link_changes")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub upload_id: i64,
    pub user_id: i64,
    /// `manager_added`, `manager_removed`, `role_added`, `role_removed`,
    /// `member_added` or `member_removed`.
    pub kind: String,
    /// The manager (`manager_*`) or the group (`member_*`).
    pub target: Option<i64>,
    /// The role (`role_*`).
    pub role: Option<String>,
}

impl ActiveModelBehavior for ActiveModel {}
