//! The feed's rules: what a row's values mean, defined once for every store.

pub mod decide;
pub mod text;

/// `build.rs`'s generator of the named queries, compiled here for its tests.
#[cfg(test)]
#[path = "../../build/sql.rs"]
#[allow(dead_code)]
mod build_sql;
