//! `userfeed preview`: what a file would do to a tenant, changing nothing.
//!
//! A preview runs the real [`Pipeline`] (the same parsing, validation,
//! merge, links, change log and hold decision as a real upload) inside one
//! database transaction that is always rolled back. Every batch becomes a
//! savepoint of that transaction. So the figures a preview shows are the ones
//! the real import will produce against the same data, by construction,
//! rather than by a second implementation that could drift.
//!
//! Its upload row is in state `preview`, never committed, and so invisible to
//! workers and to the history. While it runs, the preview holds row locks on
//! the users it would change; a real upload of the same tenant touching the
//! same users waits for it.

use std::path::Path;
use std::sync::Arc;

use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr, Statement, TransactionTrait};
use serde::Serialize;

use super::portable::PortableStore;
use super::{Finish, Lease, Pipeline, Progress, Stops, UploadError};
use crate::db::entity::upload_row_error;
use crate::db::queries;
use crate::report::{self, Change};
use crate::source::local::FolderReader;
use crate::tenants::Tenant;

/// What a file would do.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PreviewReport {
    /// The counts the real import would record.
    pub progress: Progress,
    /// Set when the upload would be held: the deactivations that would wait
    /// for approval, and why. They are also listed in `changes`.
    pub held: Option<Held>,
    /// Users that would be created, updated, reactivated and deactivated.
    pub changes: Vec<Change>,
    /// Rows that would be rejected, and warnings.
    pub problems: Vec<upload_row_error::Model>,
}

/// A hold the real import would end in.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Held {
    /// Deactivations that would wait for `userfeed uploads approve`.
    pub deactivations: u64,
    /// The reason the history would show.
    pub reason: String,
}

/// Why a preview could not produce a report.
#[derive(Debug, thiserror::Error)]
pub enum PreviewError {
    /// The real import would fail the whole file, for this reason.
    #[error("the file would fail: {0}")]
    WouldFail(String),
    /// The file could not be read, or the database failed.
    #[error("{0}")]
    Other(String),
}

impl From<DbErr> for PreviewError {
    fn from(e: DbErr) -> Self {
        PreviewError::Other(format!("database error: {e}"))
    }
}

/// Previews `file` for `tenant`, in batches of `batch_size` rows; on
/// PostgreSQL no statement of it may take longer than `deadline`.
pub async fn preview(
    db: &DatabaseConnection,
    tenant: &Tenant,
    file: &Path,
    batch_size: usize,
    limits: crate::parse::Limits,
    deadline: Option<std::time::Duration>,
) -> Result<PreviewReport, PreviewError> {
    let txn = db.begin().await?;
    if let (Some(d), sea_orm::DbBackend::Postgres) = (deadline, txn.get_database_backend()) {
        txn.execute_raw(Statement::from_sql_and_values(
            sea_orm::DbBackend::Postgres,
            queries::PREVIEW_DEADLINE,
            [d.as_millis().max(1).to_string().into()],
        ))
        .await?;
    }
    let up = crate::intake::local::record(
        &txn,
        tenant.id,
        file,
        crate::upload::UploadState::Preview,
        86_400.0,
    )
    .await
    .map_err(|e| PreviewError::Other(e.to_string()))?;
    let id = up.id;
    let lease = Lease {
        upload_id: id,
        token: up.lease_token,
        seconds: 86_400.0,
    };

    let store = Arc::new(PortableStore::new(txn));
    let pipeline = Pipeline {
        reader: Arc::new(FolderReader),
        store: store.clone(),
        batch_size,
        limits,
    };
    let mut progress = Progress::default();
    let outcome = pipeline
        .run(&lease, &up, tenant, &Stops::default(), &mut progress)
        .await;
    drop(pipeline);
    let txn = Arc::into_inner(store)
        .expect("the pipeline holds no other reference to the store")
        .into_inner();

    let finish = match outcome {
        Ok(f) => f,
        Err(UploadError::Fail(reason)) => return Err(PreviewError::WouldFail(reason)),
        Err(e) => return Err(PreviewError::Other(e.to_string())),
    };
    let held = match finish {
        Finish::Succeeded => None,
        Finish::Held {
            deactivations,
            reason,
        } => {
            // The real import would leave these waiting; list them as it
            // would once approved.
            txn.execute_raw(Statement::from_sql_and_values(
                txn.get_database_backend(),
                queries::of(txn.get_database_backend()).log_deactivations,
                [id.into()],
            ))
            .await?;
            Some(Held {
                deactivations,
                reason,
            })
        }
    };
    let changes = report::changes(&txn, id).await?;
    let problems = report::upload_detail(&txn, id, u64::MAX)
        .await?
        .map(|d| d.errors)
        .unwrap_or_default();
    txn.rollback().await?;
    Ok(PreviewReport {
        progress,
        held,
        changes,
        problems,
    })
}
