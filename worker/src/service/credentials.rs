//! Tenants' write-only upload credentials.

use super::*;

impl From<CredentialsError> for ServiceError {
    fn from(e: CredentialsError) -> Self {
        match e {
            CredentialsError::Db(db) => ServiceError::Db(db),
            CredentialsError::Iam { .. } => ServiceError::Unavailable(e.to_string()),
            other => ServiceError::Refused(other.to_string()),
        }
    }
}

/// The IAM side of credentials, or the refusal that says why there is none.
fn iam(iam: Option<&Iam>) -> Result<&Iam, ServiceError> {
    iam.ok_or_else(|| CredentialsError::NoAws.into())
}

/// The key IDs deleted by revoking a tenant's credentials.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Revoked {
    /// The access key IDs that no longer work.
    pub access_key_ids: Vec<String>,
}

/// The IAM side of tenants' upload credentials for this deployment, when it
/// talks to AWS (it has an intake queue); `None` on the embedded default.
pub async fn deployment_iam(cfg: &crate::config::Config) -> Option<Iam> {
    if cfg.intake.queue_url.is_empty() {
        return None;
    }
    let sdk = crate::aws::sdk_config(&cfg.aws).await;
    crate::aws::credentials(&sdk, cfg)
}

impl Service {
    /// A tenant's connection details: bucket, prefix, the upload command and
    /// its keys (IDs only).
    pub async fn connection(
        &self,
        caller: &Caller,
        slug: &str,
    ) -> Result<Connection, ServiceError> {
        let db = &self.db;
        let region = self.region.as_str();
        let t = self.tenant(caller, slug).await?;
        Ok(crate::credentials::connection(db, &t, region).await?)
    }

    /// Makes the tenant's upload user and first key; the secret is in the
    /// answer and nowhere else.
    pub async fn create_credentials(
        &self,
        caller: &Caller,
        slug: &str,
    ) -> Result<NewKey, ServiceError> {
        let db = &self.db;
        let iam_ = self.iam.as_ref();
        let t = self.tenant(caller, slug).await?;
        Ok(iam(iam_)?.create(db, &t).await?)
    }

    /// Makes a new key; the old one works for `grace`, then is deleted.
    pub async fn rotate_credentials(
        &self,
        caller: &Caller,
        slug: &str,
        grace: std::time::Duration,
    ) -> Result<NewKey, ServiceError> {
        let db = &self.db;
        let iam_ = self.iam.as_ref();
        let t = self.tenant(caller, slug).await?;
        Ok(iam(iam_)?.rotate(db, &t, grace).await?)
    }

    /// Deletes every key of the tenant now.
    pub async fn revoke_credentials(
        &self,
        caller: &Caller,
        slug: &str,
    ) -> Result<Revoked, ServiceError> {
        let db = &self.db;
        let iam_ = self.iam.as_ref();
        let t = self.tenant(caller, slug).await?;
        Ok(Revoked {
            access_key_ids: iam(iam_)?.revoke(db, &t).await?,
        })
    }

    /// Deletes the rotated-out keys whose grace period has ended, of every
    /// tenant; returns how many.
    pub async fn sweep_credentials(&self) -> Result<usize, ServiceError> {
        let db = &self.db;
        let iam_of = self.iam.as_ref();
        Ok(iam(iam_of)?.sweep(db).await?)
    }
}
