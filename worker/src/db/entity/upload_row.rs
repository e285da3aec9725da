//! `upload_rows`: staged rows of a running upload (see the migration).
use sea_orm::entity::prelude::*;

/// A staged row.
#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "upload_rows")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub upload_id: i64,
    #[sea_orm(primary_key, auto_increment = false)]
    pub line: i64,
    pub match_key: String,
    pub email: Option<String>,
    pub external_id: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub active: Option<bool>,
    pub profile: Option<Json>,
    pub error_column: Option<String>,
    pub error_message: Option<String>,
    pub managers: Option<String>,
    pub groups: Option<String>,
    pub roles: Option<String>,
    pub rejected: bool,
    pub digest: Option<Vec<u8>>,
    pub repeat_hint: bool,
}

impl ActiveModelBehavior for ActiveModel {}
