//! 0003: groups and memberships, roles and managers.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

/// See `m0003_links/postgres.sql`.
pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0003_links"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let sql = match manager.get_database_backend() {
            DbBackend::Postgres => include_str!("m0003_links/postgres.sql"),
            other => return Err(crate::unsupported(other)),
        };
        manager.get_connection().execute_unprepared(sql).await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared(
                "ALTER TABLE upload_rows DROP COLUMN IF EXISTS managers, DROP COLUMN IF EXISTS groups,
                     DROP COLUMN IF EXISTS roles, DROP COLUMN IF EXISTS rejected;
                 DROP TABLE IF EXISTS user_managers, user_roles, group_memberships, groups;",
            )
            .await?;
        Ok(())
    }
}
