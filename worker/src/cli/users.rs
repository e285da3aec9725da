//! `userfeed users`: a tenant's users.

use std::io::Write;

use clap::Subcommand;
use sea_orm::DatabaseConnection;

use super::Output;
use super::render::{self, emit};
use crate::service::{self, Caller};

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
pub async fn users<W: Write>(
    db: &DatabaseConnection,
    cmd: UsersCmd,
    out: &mut W,
) -> anyhow::Result<()> {
    match cmd {
        UsersCmd::List { tenant, out: o } => {
            let list = service::users(db, &Caller::Platform, &tenant).await?;
            emit(out, o.json, &list, |l| render::users_table(l))
        }
    }
}
