//! Numbered schema migrations for Userfeed.
//!
//! Each migration is a module named `mNNNN_what`, applied in order by
//! [`Migrator`]. Tables are declared with sea-query's schema builder so the
//! same migration can serve other backends later; indexes that need
//! expressions or predicates (case-insensitive email, "one running upload per
//! tenant") are plain SQL that PostgreSQL and SQLite both accept.

pub use sea_orm_migration::prelude::*;

mod m0001_initial;
mod m0002_safety;
mod m0003_links;
mod m0004_profile_fields;
mod m0005_changes;

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
        ]
    }
}

/// The error for a backend that has no script for a migration yet.
pub(crate) fn unsupported(backend: sea_orm_migration::sea_orm::DbBackend) -> DbErr {
    DbErr::Migration(format!(
        "database backend {backend:?} is not supported yet; use PostgreSQL"
    ))
}
