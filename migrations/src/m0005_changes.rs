//! 0005: the per-upload change log.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

/// See `m0005_changes/postgres.sql`.
pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0005_changes"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let sql = match manager.get_database_backend() {
            DbBackend::Postgres => include_str!("m0005_changes/postgres.sql"),
            other => return Err(crate::unsupported(other)),
        };
        manager.get_connection().execute_unprepared(sql).await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared("DROP TABLE IF EXISTS upload_changes")
            .await?;
        Ok(())
    }
}
