//! 0001: tenants, users, uploads, per-row errors and the per-upload staging table.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

/// The first schema. See `m0001_initial/postgres.sql` for the tables and the
/// reasoning behind each constraint and index.
pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0001_initial"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let sql = match manager.get_database_backend() {
            DbBackend::Postgres => include_str!("m0001_initial/postgres.sql"),
            other => return Err(crate::unsupported(other)),
        };
        manager.get_connection().execute_unprepared(sql).await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared(
                "DROP TABLE IF EXISTS upload_rows, upload_row_errors, uploads, users, tenants CASCADE",
            )
            .await?;
        Ok(())
    }
}
