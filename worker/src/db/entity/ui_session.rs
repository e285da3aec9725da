//! `ui_sessions`: signed-in sessions of the admin screens (migration 0016).
use sea_orm::entity::prelude::*;

/// One session. The browser holds the secret; this row only its SHA-256.
#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "ui_sessions")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub secret_sha256: String,
    /// The API token signed in with, by its SHA-256 (as the tokens file has it).
    pub token_sha256: String,
    pub label: String,
    /// The synchronizer token every form of the session carries.
    pub csrf: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub expires_at: chrono::DateTime<chrono::Utc>,
}

impl ActiveModelBehavior for ActiveModel {}
