//! Numbered schema migrations for Userfeed.
//!
//! Each migration `mNNNN_what` is a SQL file per database backend
//! (`src/mNNNN_what/postgres.sql`), declared below in order and applied by
//! [`Migrator`]. Plain, reviewable SQL keeps every constraint, partial index
//! and the reasons for them in one place. The embedded SQLite backend joined
//! at 0013: its 0001 `sqlite.sql` creates that schema, and later migrations
//! carry a `sqlite.sql` beside their `postgres.sql`. Applied versions are
//! recorded in `seaql_migrations`, so running them again is a no-op.

pub use sea_orm_migration::prelude::*;

/// Declares a migration whose `up` is the backend's SQL file next to it
/// (`mNNNN_name/postgres.sql`, `mNNNN_name/sqlite.sql`) and whose `down` is
/// the given statement(s). Keeps every numbered migration to its SQL, with
/// no repeated plumbing.
///
/// SQLite joined at 0013: `sqlite = "down"` marks the migration with a
/// `sqlite.sql` (0001, which creates the schema as of 0013); the others
/// have nothing to do on SQLite.
macro_rules! sql_migration {
    ($module:ident, $doc:literal, $down:literal) => {
        sql_migration!(@ $module, $doc, $down, None, "");
    };
    ($module:ident, $doc:literal, $down:literal, sqlite = $sqlite_down:literal) => {
        sql_migration!(
            @ $module, $doc, $down,
            Some(include_str!(concat!(stringify!($module), "/sqlite.sql"))),
            $sqlite_down
        );
    };
    (@ $module:ident, $doc:literal, $down:literal, $sqlite:expr, $sqlite_down:literal) => {
        #[doc = $doc]
        pub mod $module {
            use sea_orm_migration::prelude::*;
            use sea_orm_migration::sea_orm::DbBackend;

            #[doc = $doc]
            pub struct Migration;

            impl MigrationName for Migration {
                fn name(&self) -> &str {
                    stringify!($module)
                }
            }

            #[async_trait::async_trait]
            impl MigrationTrait for Migration {
                async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
                    let sql: Option<&str> = match manager.get_database_backend() {
                        DbBackend::Postgres => Some(include_str!(concat!(
                            stringify!($module),
                            "/postgres.sql"
                        ))),
                        DbBackend::Sqlite => $sqlite,
                        other => return Err(crate::unsupported(other)),
                    };
                    if let Some(sql) = sql {
                        manager.get_connection().execute_unprepared(sql).await?;
                    }
                    Ok(())
                }

                async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
                    let sql = match manager.get_database_backend() {
                        DbBackend::Sqlite => $sqlite_down,
                        _ => $down,
                    };
                    if !sql.is_empty() {
                        manager.get_connection().execute_unprepared(sql).await?;
                    }
                    Ok(())
                }
            }
        }
    };
}

sql_migration!(
    m0001_initial,
    "0001: tenants, users, uploads, per-row errors and the per-upload staging table.",
    "DROP TABLE IF EXISTS upload_rows, upload_row_errors, uploads, users, tenants CASCADE",
    sqlite = "DROP VIEW IF EXISTS user_all_roles;
              DROP TABLE IF EXISTS upload_changes; DROP TABLE IF EXISTS profile_fields;
              DROP TABLE IF EXISTS user_managers; DROP TABLE IF EXISTS user_roles;
              DROP TABLE IF EXISTS group_memberships; DROP TABLE IF EXISTS groups;
              DROP TABLE IF EXISTS upload_deactivations; DROP TABLE IF EXISTS upload_pending;
              DROP TABLE IF EXISTS upload_rows; DROP TABLE IF EXISTS upload_row_errors;
              DROP TABLE IF EXISTS uploads; DROP TABLE IF EXISTS users; DROP TABLE IF EXISTS tenants;"
);
sql_migration!(
    m0002_safety,
    "0002: held and superseded uploads, per-tenant deactivation caps, the per-upload deactivation list.",
    "DROP TABLE IF EXISTS upload_deactivations;
                 ALTER TABLE uploads DROP COLUMN IF EXISTS superseded_by, DROP COLUMN IF EXISTS resolved_at,
                     DROP COLUMN IF EXISTS hold_resolution, DROP COLUMN IF EXISTS hold_reason,
                     DROP COLUMN IF EXISTS held_deactivations;
                 ALTER TABLE uploads DROP CONSTRAINT uploads_state_check;
                 ALTER TABLE uploads ADD CONSTRAINT uploads_state_check
                     CHECK (state IN ('queued', 'running', 'succeeded', 'failed'));
                 ALTER TABLE tenants DROP COLUMN IF EXISTS hold_over_count, DROP COLUMN IF EXISTS hold_over_percent;"
);
sql_migration!(
    m0003_links,
    "0003: groups and memberships, roles and managers.",
    "ALTER TABLE upload_rows DROP COLUMN IF EXISTS managers, DROP COLUMN IF EXISTS groups,
                     DROP COLUMN IF EXISTS roles, DROP COLUMN IF EXISTS rejected;
                 DROP TABLE IF EXISTS user_managers, user_roles, group_memberships, groups;"
);
sql_migration!(
    m0004_profile_fields,
    "0004: typed custom profile fields per tenant.",
    "DROP TABLE IF EXISTS profile_fields"
);
sql_migration!(
    m0005_changes,
    "0005: the per-upload change log.",
    "DROP TABLE IF EXISTS upload_changes"
);
sql_migration!(
    m0006_preview,
    "0006: the `preview` upload state, seen only inside a preview's own (always rolled back) transaction.",
    "ALTER TABLE uploads DROP CONSTRAINT uploads_state_check;
                 ALTER TABLE uploads ADD CONSTRAINT uploads_state_check
                     CHECK (state IN ('queued', 'running', 'succeeded', 'failed', 'held', 'superseded'));"
);
sql_migration!(
    m0007_bulk_links,
    "0007: link and change-log tables keep integrity with delete triggers instead of per-row foreign-key checks.",
    "DROP TRIGGER IF EXISTS users_deleted ON users;
                 DROP TRIGGER IF EXISTS groups_deleted ON groups;
                 DROP TRIGGER IF EXISTS uploads_deleted ON uploads;
                 DROP FUNCTION IF EXISTS userfeed_users_deleted(), userfeed_groups_deleted(), userfeed_uploads_deleted();
                 ALTER TABLE user_managers
                     ADD FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE,
                     ADD FOREIGN KEY (manager_id) REFERENCES users (id) ON DELETE CASCADE;
                 ALTER TABLE group_memberships
                     ADD FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE,
                     ADD FOREIGN KEY (group_id) REFERENCES groups (id) ON DELETE CASCADE;
                 ALTER TABLE user_roles ADD FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE;
                 ALTER TABLE upload_changes
                     ADD FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE,
                     ADD FOREIGN KEY (upload_id) REFERENCES uploads (id) ON DELETE CASCADE;"
);

sql_migration!(
    m0008_claim_order,
    "0008: runnable uploads in id order, for the claim's oldest-first walk.",
    "DROP INDEX IF EXISTS uploads_runnable_order_idx"
);

sql_migration!(
    m0009_row_problems,
    "0009: uploads count the row problems they did not keep (limits.max_row_problems).",
    "ALTER TABLE uploads DROP COLUMN IF EXISTS row_problems_dropped"
);
sql_migration!(
    m0010_retries,
    "0010: retries of failed uploads (`uploads.retry_of`); an index for the held-upload gauges.",
    "DROP INDEX IF EXISTS uploads_held_idx;
                 ALTER TABLE uploads DROP COLUMN IF EXISTS retry_of;"
);

sql_migration!(
    m0011_digests,
    "0011: per-user digests of the row last applied, the per-tenant feed epoch, and the triggers that keep them exact.",
    "DROP TRIGGER IF EXISTS uploads_ended ON uploads;
                 DROP TRIGGER IF EXISTS tenants_rules_changed ON tenants;
                 DROP TRIGGER IF EXISTS profile_fields_changed ON profile_fields;
                 DROP TRIGGER IF EXISTS groups_changed ON groups;
                 DROP TRIGGER IF EXISTS user_managers_changed ON user_managers;
                 DROP TRIGGER IF EXISTS user_roles_changed ON user_roles;
                 DROP TRIGGER IF EXISTS group_memberships_changed ON group_memberships;
                 DROP TRIGGER IF EXISTS users_email_changed ON users;
                 DROP TRIGGER IF EXISTS users_touched ON users;
                 DROP FUNCTION IF EXISTS userfeed_upload_ended(), userfeed_rules_changed(),
                     userfeed_tenant_row_changed(),
                     userfeed_managers_changed(), userfeed_role_changed(),
                     userfeed_membership_changed(), userfeed_clear_digest(BIGINT),
                     userfeed_email_changed(), userfeed_users_touched(), userfeed_bump_epoch(BIGINT);
                 ALTER TABLE upload_rows DROP COLUMN IF EXISTS digest;
                 DROP TABLE IF EXISTS upload_pending;
                 ALTER TABLE users DROP COLUMN IF EXISTS feed_digest;
                 ALTER TABLE tenants DROP COLUMN IF EXISTS feed_epoch;"
);

sql_migration!(
    m0012_lean_staging,
    "0012: lean staging: no key index, a repeated-key hint, absent users lined up with the pending lines.",
    "DELETE FROM upload_pending WHERE line IS NULL;
                 DROP INDEX IF EXISTS upload_pending_line_key;
                 ALTER TABLE upload_pending DROP CONSTRAINT IF EXISTS upload_pending_line_or_user;
                 ALTER TABLE upload_pending DROP COLUMN IF EXISTS user_id;
                 ALTER TABLE upload_pending ALTER COLUMN line SET NOT NULL;
                 ALTER TABLE upload_pending ADD PRIMARY KEY (upload_id, line);
                 ALTER TABLE upload_rows DROP COLUMN IF EXISTS repeat_hint;
                 CREATE INDEX IF NOT EXISTS upload_rows_key_idx ON upload_rows (upload_id, match_key, line);"
);
sql_migration!(
    m0013_lean_first_load,
    "0013: lean first load: creations read from users, an implicit Learner role, the users' tenant key kept by a delete trigger.",
    "DROP TRIGGER IF EXISTS tenants_deleted ON tenants;
                 DROP FUNCTION IF EXISTS userfeed_tenants_deleted();
                 DELETE FROM users u WHERE NOT EXISTS (SELECT FROM tenants t WHERE t.id = u.tenant_id);
                 ALTER TABLE users ADD CONSTRAINT users_tenant_id_fkey
                     FOREIGN KEY (tenant_id) REFERENCES tenants (id) ON DELETE CASCADE;
                 DROP VIEW IF EXISTS user_all_roles;
                 ALTER TABLE user_roles DROP CONSTRAINT user_roles_role_check;
                 ALTER TABLE user_roles ADD CONSTRAINT user_roles_role_check
                     CHECK (role IN ('learner', 'manager', 'administrator'));
                 INSERT INTO user_roles (user_id, role) SELECT id, 'learner' FROM users ON CONFLICT DO NOTHING;
                 ALTER TABLE upload_changes DROP CONSTRAINT upload_changes_kind_check;
                 ALTER TABLE upload_changes ADD CONSTRAINT upload_changes_kind_check
                     CHECK (kind IN ('created', 'updated', 'reactivated', 'deactivated'));
                 INSERT INTO upload_changes (upload_id, user_id, kind)
                     SELECT u.created_by_upload_id, u.id, 'created' FROM users u
                     WHERE EXISTS (SELECT FROM uploads p WHERE p.id = u.created_by_upload_id)
                     ORDER BY u.id;
                 DROP INDEX IF EXISTS users_created_by_upload_idx;"
);

sql_migration!(
    m0014_undo,
    "0014: the per-upload link log and uploads that undo another (`uploads.undo_of`).",
    "DROP INDEX IF EXISTS uploads_undo_of_key;
                 ALTER TABLE uploads DROP COLUMN IF EXISTS undo_of;
                 DROP TABLE IF EXISTS upload_link_changes;",
    sqlite = "DROP INDEX IF EXISTS uploads_undo_of_key;
              ALTER TABLE uploads DROP COLUMN undo_of;
              DROP TABLE IF EXISTS upload_link_changes;"
);

sql_migration!(
    m0015_notifications,
    "0015: tenants' webhook URLs and secret versions, the notification outbox and its attempts.",
    "DROP TABLE IF EXISTS notification_attempts, notifications;
                 ALTER TABLE tenants DROP COLUMN IF EXISTS webhook_secret_version,
                     DROP COLUMN IF EXISTS webhook_url;",
    sqlite = "DROP TABLE IF EXISTS notification_attempts; DROP TABLE IF EXISTS notifications;
              ALTER TABLE tenants DROP COLUMN webhook_secret_version;
              ALTER TABLE tenants DROP COLUMN webhook_url;"
);

sql_migration!(
    m0016_onboarding,
    "0016: tenants' upload credentials (IAM access key IDs; never the secrets) and admin-screen sessions.",
    "DROP TABLE IF EXISTS ui_sessions, tenant_credentials;",
    sqlite = "DROP TABLE IF EXISTS ui_sessions; DROP TABLE IF EXISTS tenant_credentials;"
);

sql_migration!(
    m0017_xero,
    "0017: tenants' Xero connections (tokens encrypted) and stored upload bodies.",
    "DROP TABLE IF EXISTS upload_bodies, xero_connections;",
    sqlite = "DROP TABLE IF EXISTS upload_bodies; DROP TABLE IF EXISTS xero_connections;"
);

/// Applies Userfeed's migrations in order. `userfeed migrate` runs it; running
/// it twice is a no-op because applied versions are recorded in
/// `seaql_migrations`.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m0001_initial::Migration),
            Box::new(m0002_safety::Migration),
            Box::new(m0003_links::Migration),
            Box::new(m0004_profile_fields::Migration),
            Box::new(m0005_changes::Migration),
            Box::new(m0006_preview::Migration),
            Box::new(m0007_bulk_links::Migration),
            Box::new(m0008_claim_order::Migration),
            Box::new(m0009_row_problems::Migration),
            Box::new(m0010_retries::Migration),
            Box::new(m0011_digests::Migration),
            Box::new(m0012_lean_staging::Migration),
            Box::new(m0013_lean_first_load::Migration),
            Box::new(m0014_undo::Migration),
            Box::new(m0015_notifications::Migration),
            Box::new(m0016_onboarding::Migration),
            Box::new(m0017_xero::Migration),
        ]
    }
}

/// The error for a backend that has no script for a migration yet.
pub(crate) fn unsupported(backend: sea_orm_migration::sea_orm::DbBackend) -> DbErr {
    DbErr::Migration(format!(
        "database backend {backend:?} is not supported; use PostgreSQL or SQLite"
    ))
}
