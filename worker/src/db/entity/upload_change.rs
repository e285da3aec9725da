//! `upload_changes`: the per-upload change log.
use sea_orm::entity::prelude::*;
use serde::Serialize;

/// One change an upload made to one user.
#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize)]
#[sea_orm(table_name = "upload_changes")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub upload_id: i64,
    pub user_id: i64,
    pub kind: String,
    pub changes: Option<Json>,
}

impl ActiveModelBehavior for ActiveModel {}
