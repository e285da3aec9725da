//! `upload_pending`: the staged lines a running upload must still handle,
//! and the users absent from its file (see migrations 0011 and 0012).
use sea_orm::entity::prelude::*;

/// One pending line, or (no line) one absent user. The entity is only
/// queried for lines, so `line` is typed as the primary key it is for them.
#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "upload_pending")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub upload_id: i64,
    #[sea_orm(primary_key, auto_increment = false)]
    pub line: i64,
    pub user_id: Option<i64>,
}

impl ActiveModelBehavior for ActiveModel {}
