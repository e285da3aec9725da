//! `upload_bodies`: the file of an upload that no bucket or folder holds,
//! such as a Xero import's employees (migration 0017), by the upload's
//! bucket and key.
use sea_orm::entity::prelude::*;

/// One stored file.
#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "upload_bodies")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub bucket: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub object_key: String,
    pub body: Vec<u8>,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

impl ActiveModelBehavior for ActiveModel {}
