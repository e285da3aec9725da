//! `upload_deactivations`: users an upload will deactivate (or holds).
use sea_orm::entity::prelude::*;

/// One pending deactivation.
#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "upload_deactivations")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub upload_id: i64,
    #[sea_orm(primary_key, auto_increment = false)]
    pub user_id: i64,
}

impl ActiveModelBehavior for ActiveModel {}
