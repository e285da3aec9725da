//! The service layer: every operation the CLI and the admin API offer, with
//! the caller's reach checked in one place. The CLI calls these as the
//! platform; the API as the token's scope. Neither surface holds business
//! logic, so an operation refused on one is refused on the other with the
//! same reason.

use sea_orm::{DatabaseConnection, DbErr, EntityTrait};
use serde::{Deserialize, Serialize};

use crate::apply::holds::{self, HoldError};
use crate::apply::undo::{self, UndoError};
use crate::credentials::{Connection, CredentialsError};
use crate::db::entity::{group, upload, upload_row_error};
use crate::jobs::retry::{self, RetryError};
use crate::map::{FieldType, Mapping, MatchKey};
use crate::report;
use crate::tenants::{Tenant, TenantError};

// What the surfaces read and render, so that none of them needs a module
// below the service for a type.
pub use crate::apply::preview::{Held, PreviewReport};
pub use crate::apply::undo::UndoReport;
pub use crate::credentials::{Iam, NewKey};
pub use crate::db::entity::upload::Model as Upload;
pub use crate::db::entity::upload_row_error::Model as RowProblem;
pub use crate::report::{Change, UploadDetail, UserListing, problems_csv};
pub use crate::upload::{UploadSource, UploadState};
pub use crate::xero::{ConnectionInfo, XeroPreview, XeroService};

/// What the operations need beyond their caller and request, built once
/// per process: by the web layer for the API and the screens, by each
/// command of the CLI. Every operation is a method of it.
#[derive(Clone)]
pub struct Service {
    /// The database.
    pub db: DatabaseConnection,
    /// Webhook settings (`[notify]`), for setting tenants' webhooks.
    pub notify: std::sync::Arc<crate::config::NotifyConfig>,
    /// IAM, for tenants' upload credentials; `None` without AWS (every
    /// credentials change then refuses, saying why).
    pub iam: Option<Iam>,
    /// The buckets' region, for connection details.
    pub region: String,
    /// Xero; `None` while `[xero]` is not configured.
    pub xero: Option<XeroService>,
    /// The limits a file is read with (`[limits]`).
    pub limits: crate::parse::Limits,
    /// Rows per batch for previews (`apply.batch_size`).
    pub batch_size: usize,
    /// Where files sent by a person are delivered.
    pub deliver: crate::intake::manual::ManualUploads,
    /// The gate of previews: one per tenant, a few at once, a deadline.
    pub previews: std::sync::Arc<PreviewGate>,
}

impl Service {
    /// A service over `db` with the built-in settings, no AWS, no Xero and
    /// nowhere to deliver files; set the fields a use needs.
    pub fn new(db: DatabaseConnection) -> Self {
        Service {
            db,
            notify: std::sync::Arc::new(crate::config::Config::built_in().notify),
            iam: None,
            region: "us-east-1".into(),
            xero: None,
            limits: Default::default(),
            batch_size: 500,
            deliver: Default::default(),
            previews: Default::default(),
        }
    }

    /// The service a command of the CLI uses: `cfg`'s settings, IAM when the
    /// deployment talks to AWS, and Xero when it is configured.
    pub async fn for_command(db: DatabaseConnection, cfg: &crate::config::Config) -> Self {
        Service {
            notify: std::sync::Arc::new(cfg.notify.clone()),
            iam: deployment_iam(cfg).await,
            region: cfg.aws.region.clone(),
            // Only Xero's own commands fail on unusable `[xero]` settings
            // (they ask `xero_service` first); the others run without it.
            xero: xero_service(&cfg.xero).ok().flatten(),
            limits: cfg.limits,
            batch_size: cfg.apply.batch_size,
            ..Service::new(db)
        }
    }
}

/// Who is asking: the platform (operators, the CLI) reaches every tenant;
/// a tenant's admin reaches only their own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// Every tenant.
    Platform,
    /// Only the tenant with this slug.
    Tenant(String),
}

impl Caller {
    /// Whether the caller may see tenant `slug`.
    pub fn reaches(&self, slug: &str) -> bool {
        match self {
            Caller::Platform => true,
            Caller::Tenant(own) => own == slug,
        }
    }
}

/// Why an operation did not happen. The message is for the person asking
/// and names no other tenant's data.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// No such object, or not one the caller reaches (the two are
    /// indistinguishable on purpose).
    #[error("{0}")]
    NotFound(String),
    /// The operation is not allowed in the object's current state.
    #[error("{0}")]
    Refused(String),
    /// The request itself is wrong.
    #[error("{0}")]
    Invalid(String),
    /// The caller may not do this at all (a tenant token creating tenants).
    #[error("{0}")]
    Forbidden(String),
    /// A service this one depends on (S3, the file system) failed; the
    /// message names what, for the caller to try again later.
    #[error("{0}")]
    Unavailable(String),
    /// Too much is running at once; the caller should try again shortly.
    #[error("{0}")]
    Busy(String),
    /// Database failure (logged; shown only as a generic message by the API).
    #[error("database error: {0}")]
    Db(#[from] DbErr),
}

impl From<TenantError> for ServiceError {
    fn from(e: TenantError) -> Self {
        match e {
            TenantError::NotFound(_) => ServiceError::NotFound(e.to_string()),
            TenantError::Db(db) => ServiceError::Db(db),
            TenantError::Missing(_) => ServiceError::NotFound(e.to_string()),
            TenantError::Exists(_) | TenantError::Overlap { .. } | TenantError::InUse(_) => {
                ServiceError::Refused(e.to_string())
            }
            other => ServiceError::Invalid(other.to_string()),
        }
    }
}

impl From<UndoError> for ServiceError {
    fn from(e: UndoError) -> Self {
        match e {
            UndoError::Db(db) => ServiceError::Db(db),
            UndoError::NotFound(_) => ServiceError::NotFound(e.to_string()),
            other => ServiceError::Refused(other.to_string()),
        }
    }
}

impl From<HoldError> for ServiceError {
    fn from(e: HoldError) -> Self {
        match e {
            HoldError::Db(db) => ServiceError::Db(db),
            HoldError::NotFound(_) => ServiceError::NotFound(e.to_string()),
            other => ServiceError::Refused(other.to_string()),
        }
    }
}

impl From<RetryError> for ServiceError {
    fn from(e: RetryError) -> Self {
        match e {
            RetryError::Db(db) => ServiceError::Db(db),
            RetryError::NotFound(_) => ServiceError::NotFound(e.to_string()),
            other => ServiceError::Refused(other.to_string()),
        }
    }
}

/// One text field checked by [`crate::validate::text`], as a 422 naming it.
fn text(field: &str, value: &str, max: usize) -> Result<(), ServiceError> {
    crate::validate::text(field, value, max).map_err(|e| ServiceError::Invalid(e.to_string()))
}

fn no_tenant(slug: &str) -> ServiceError {
    // Echo a slug no longer than a slug can be.
    let shown: String = slug.chars().take(64).collect();
    ServiceError::NotFound(TenantError::NotFound(shown).to_string())
}

fn no_upload(id: i64) -> ServiceError {
    ServiceError::NotFound(format!("no upload {id}"))
}

mod credentials;
mod database;
mod fair;
mod files;
mod local;
mod overview;
mod tenants;
mod uploads;
mod webhooks;
mod xero;

pub use credentials::*;
pub use database::*;
pub use fair::*;
pub use files::*;
pub use local::*;
pub use overview::*;
pub use tenants::*;
pub use uploads::*;
pub use webhooks::*;
pub use xero::*;
