//! Every hand-written SQL statement, named, with why it looks the way it does.
//!
//! The statements live in `.sql` files of named queries, one file per area
//! and one folder per backend (`src/db/sql/postgres/`); `build.rs`
//! (`build/sql.rs`) turns each `-- name:` into a constant here, its comment
//! header into the constant's documentation. Read, format and `EXPLAIN` them
//! there. Customer-facing messages and role names in them come from
//! [`crate::rules::text`], their one home.

include!(concat!(env!("OUT_DIR"), "/queries_postgres.rs"));
