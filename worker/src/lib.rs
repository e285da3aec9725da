//! Userfeed: turns each organisation's nightly HRIS CSV drop into users.
//!
//! The modules follow the data's path:
//! [`intake`] (queue notifications become upload rows) → [`jobs`] (workers
//! claim uploads under a lease) → [`source`] (the object is streamed) →
//! [`parse`] / [`map`] (CSV rows become validated records) → [`apply`]
//! (staged, merged and finished in batch transactions) → [`report`] (the
//! upload history people read).
//!
//! [`rules`] holds the feed's rules and customer-facing texts; [`service`]
//! is every operation the CLI ([`cli`]) and the admin API ([`api`]) offer.
//!
//! Around them: [`config`], [`db`] (connection, migrations, entities, named
//! queries), [`tenants`] (routing and the isolation boundary), [`telemetry`]
//! (logs and metrics as typed events), [`health`] and [`http`] (probes and
//! metrics), [`daemon`] (process wiring and shutdown) and [`cli`].

pub mod apply;
pub mod aws;
pub mod bucket;
pub mod cli;
pub mod config;
pub mod credentials;
pub mod daemon;
pub mod db;
pub mod groups;
pub mod health;
pub mod http;
pub mod intake;
pub mod jobs;
pub mod listen;
pub mod map;
pub mod notify;
pub mod outbound;
pub mod parse;
pub mod report;
pub mod rules;
pub mod service;
pub mod source;
pub mod telemetry;
pub mod tenants;
pub mod upload;
pub mod validate;
pub mod web;
pub mod xero;

/// Makes aws-lc-rs the process's TLS provider (idempotent). reqwest is
/// built without a provider of its own and asks the process for one; the
/// database and AWS clients use aws-lc-rs too.
pub fn install_tls_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}
