//! 0002: held and superseded uploads, per-tenant deactivation caps, and the
//! per-upload deactivation list.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

/// See `m0002_safety/postgres.sql`.
pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0002_safety"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let sql = match manager.get_database_backend() {
            DbBackend::Postgres => include_str!("m0002_safety/postgres.sql"),
            other => return Err(crate::unsupported(other)),
        };
        manager.get_connection().execute_unprepared(sql).await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared(
                "DROP TABLE IF EXISTS upload_deactivations;
                 ALTER TABLE uploads DROP COLUMN IF EXISTS superseded_by, DROP COLUMN IF EXISTS resolved_at,
                     DROP COLUMN IF EXISTS hold_resolution, DROP COLUMN IF EXISTS hold_reason,
                     DROP COLUMN IF EXISTS held_deactivations;
                 ALTER TABLE uploads DROP CONSTRAINT uploads_state_check;
                 ALTER TABLE uploads ADD CONSTRAINT uploads_state_check
                     CHECK (state IN ('queued', 'running', 'succeeded', 'failed'));
                 ALTER TABLE tenants DROP COLUMN IF EXISTS hold_over_count, DROP COLUMN IF EXISTS hold_over_percent;",
            )
            .await?;
        Ok(())
    }
}
