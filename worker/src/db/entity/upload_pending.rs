//! `upload_pending`: the staged lines a running upload must still handle
//! (see migration 0011).
use sea_orm::entity::prelude::*;

/// One pending line.
#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "upload_pending")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub upload_id: i64,
    #[sea_orm(primary_key, auto_increment = false)]
    pub line: i64,
}

impl ActiveModelBehavior for ActiveModel {}
