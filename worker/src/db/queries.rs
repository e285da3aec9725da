//! Every hand-written SQL statement, named, with why it looks the way it does.
//!
//! The statements live in `.sql` files of named queries, one file per area
//! and one folder per backend (`src/db/sql/postgres/`, `src/db/sql/sqlite/`); `build.rs`
//! (`build/sql.rs`) turns each `-- name:` into a constant here, its comment
//! header into the constant's documentation. Read, format and `EXPLAIN` them
//! there. Customer-facing messages and role names in them come from
//! [`crate::rules::text`], their one home.

//!
//! The constants at the top are PostgreSQL's; [`sqlite`] has SQLite's. Code
//! that runs on both picks its statement through [`of`], a [`Queries`] of
//! the statements both have.

include!(concat!(env!("OUT_DIR"), "/queries_postgres.rs"));

/// The SQLite statements (`src/db/sql/sqlite/`).
pub mod sqlite {
    include!(concat!(env!("OUT_DIR"), "/queries_sqlite.rs"));
}

include!(concat!(env!("OUT_DIR"), "/queries_shared.rs"));

/// The statements of `backend` (PostgreSQL's for any other).
pub fn of(backend: sea_orm::DbBackend) -> &'static Queries {
    match backend {
        sea_orm::DbBackend::Sqlite => &SQLITE,
        _ => &POSTGRES,
    }
}
