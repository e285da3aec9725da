//! `userfeed users`: a tenant's users.

use std::io::Write;

use clap::Subcommand;

use super::Output;
use super::render::{self, emit};
use crate::service::{Caller, Service};

/// `userfeed users ...`
#[derive(Debug, Subcommand)]
pub enum UsersCmd {
    /// A tenant's users.
    List {
        /// Tenant slug.
        #[arg(long)]
        tenant: String,
        #[command(flatten)]
        out: Output,
    },
}

/// Runs `userfeed users ...`.
pub async fn users<W: Write>(svc: &Service, cmd: UsersCmd, out: &mut W) -> anyhow::Result<()> {
    match cmd {
        UsersCmd::List { tenant, out: o } => {
            let list = svc.users(&Caller::Platform, &tenant).await?;
            emit(out, o.json, &list, |l| render::users_table(l))
        }
    }
}
