//! Library-level integration tests: real PostgreSQL (a fresh database per
//! test) and moto over HTTP. Run them with `scripts/test`.

mod api;
mod apply;
mod architecture;
mod cli;
mod corpus;
mod credentials;
mod deploy;
mod digests;
mod docs;
mod equivalence;
mod holds;
mod hostile;
mod import;
mod intake;
mod isolation;
mod links;
mod migrations;
mod notify;
mod plans;
mod preview;
mod queue;
mod retry;
mod sql;
mod tls;
mod ui;
mod undo;
mod xero;
