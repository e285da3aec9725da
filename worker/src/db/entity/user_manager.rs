//! `user_managers`: who manages whom.
use sea_orm::entity::prelude::*;

/// A manager link.
#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "user_managers")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub user_id: i64,
    #[sea_orm(primary_key, auto_increment = false)]
    pub manager_id: i64,
}

impl ActiveModelBehavior for ActiveModel {}
