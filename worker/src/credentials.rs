//! Tenants' write-only upload credentials: one IAM user per tenant, named
//! `<credentials.user_prefix><slug>` under `credentials.iam_path`, whose
//! only permission is the tenant upload policy of
//! `deploy/aws/tenant-upload-policy.json` (put objects, and the multipart
//! calls, under the tenant's prefix; no List, no Get).
//!
//! Why an IAM user and not a role: the customer's HR system runs outside
//! our AWS organisation and usually offers nothing but "access key and
//! secret" fields for an S3 export, as the customer documents describe. A
//! role would need an identity on their side to assume it. A customer with
//! federation can still be given a role by hand; the policy is the same.
//!
//! Only access key IDs are stored (`tenant_credentials`); the secret is
//! returned once, from [`create`] or [`rotate`], and never written anywhere.
//! A rotated-out key keeps working for `credentials.rotation_grace_hours`
//! and is then deleted by [`sweep`], which every daemon runs periodically.
//! IAM allows two keys per user, which is exactly "the new one and the one
//! in its grace period"; rotating again during a grace period ends that
//! grace early (the older key is deleted first).

use std::time::Duration;

use aws_sdk_iam::error::{DisplayErrorContext, ProvideErrorMetadata};
use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait,
    QueryFilter, QueryOrder, Set, TransactionTrait,
};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::config::CredentialsConfig;
use crate::db::entity::tenant_credential;
use crate::tenants::Tenant;

/// The tenant upload policy as shipped in `deploy/aws/`: the one home of
/// what a tenant's key may do. Its example bucket and prefix are replaced.
const UPLOAD_POLICY: &str = include_str!("../../deploy/aws/tenant-upload-policy.json");
/// The example resource in [`UPLOAD_POLICY`].
const EXAMPLE_RESOURCE: &str = "arn:aws:s3:::example-hr-feeds/acme/*";

/// Why credentials could not be made, rotated or revoked.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    /// The tenant receives files in the drop folder only.
    #[error(
        "tenant {0:?} has no S3 bucket; set one (`userfeed tenant set {0} --bucket ...`) before making upload credentials"
    )]
    NoBucket(String),
    /// This deployment does not talk to AWS.
    #[error(
        "upload credentials need AWS: this deployment has no intake queue (intake.queue_url), so it manages no IAM users"
    )]
    NoAws,
    /// `create` when a key is already active.
    #[error(
        "tenant {0:?} already has an active upload key ({1}); rotate it to get a new secret, or revoke it"
    )]
    Exists(String, String),
    /// `rotate` with nothing to rotate.
    #[error("tenant {0:?} has no active upload key; create one first")]
    NoneActive(String),
    /// A concurrent create or rotate won; the key this call made was deleted.
    #[error("tenant {0:?}'s upload key was changed at the same time by another request; try again")]
    Raced(String),
    /// IAM refused or failed (the message names the call, never a secret).
    #[error("IAM {call} failed: {message}")]
    Iam {
        /// The IAM operation.
        call: &'static str,
        /// What IAM said.
        message: String,
    },
    /// Database failure.
    #[error(transparent)]
    Db(#[from] DbErr),
}

/// A secret shown once: serialised for the one response that carries it,
/// redacted in every `Debug` (so never in a log line).
#[derive(Clone, Serialize, utoipa::ToSchema)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// The secret's text, for the one place that prints it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Where and how a tenant uploads: what the customer's admin needs to set
/// up their export.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Connection {
    /// The bucket.
    pub bucket: String,
    /// The tenant's prefix in it (ends with `/`).
    pub prefix: String,
    /// The bucket's region.
    pub region: String,
    /// The command that uploads a file, for the AWS CLI.
    pub upload_command: String,
    /// The tenant's keys: the active one, any in their grace period, and
    /// the deleted ones, newest first.
    pub keys: Vec<tenant_credential::Model>,
}

/// A key just made: the only value that ever holds its secret.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct NewKey {
    /// The IAM user.
    pub iam_user: String,
    /// The new access key ID.
    pub access_key_id: String,
    /// The secret access key, shown this once and not stored.
    #[schema(value_type = String)]
    pub secret_access_key: Secret,
    /// The key rotated out by this call, if any, and when it stops working.
    pub retiring: Option<Retiring>,
    /// Where the key uploads to.
    pub bucket: String,
    /// The tenant's prefix.
    pub prefix: String,
    /// The bucket's region.
    pub region: String,
    /// The AWS CLI command that uploads a file with it.
    pub upload_command: String,
}

/// A key in its grace period.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Retiring {
    /// Its access key ID.
    pub access_key_id: String,
    /// When it is deleted.
    pub retire_at: DateTime<Utc>,
}

/// The tenant's upload identity in IAM.
#[derive(Clone)]
pub struct Iam {
    client: aws_sdk_iam::Client,
    cfg: CredentialsConfig,
    region: String,
}

impl std::fmt::Debug for Iam {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Iam").field("cfg", &self.cfg).finish()
    }
}

fn iam_error<E>(call: &'static str) -> impl Fn(aws_sdk_iam::error::SdkError<E>) -> CredentialsError
where
    E: std::error::Error + Send + Sync + 'static,
{
    move |e| CredentialsError::Iam {
        call,
        message: DisplayErrorContext(e).to_string(),
    }
}

/// The AWS partition of a region (`arn:<partition>:...`).
pub fn partition(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "aws-cn"
    } else if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else {
        "aws"
    }
}

/// The tenant upload policy for `bucket` and `prefix`.
///
/// Compact JSON: IAM ignores whitespace, and some emulators (moto) compute
/// the request signature over a re-encoded form body in which spaces and
/// line breaks come out differently.
pub fn upload_policy(region: &str, bucket: &str, prefix: &str) -> String {
    let resource = format!("arn:{}:s3:::{bucket}/{prefix}*", partition(region));
    let mut policy: serde_json::Value =
        serde_json::from_str(UPLOAD_POLICY).expect("the shipped policy is JSON");
    for st in policy["Statement"].as_array_mut().into_iter().flatten() {
        debug_assert_eq!(
            st["Resource"], EXAMPLE_RESOURCE,
            "the shipped policy names its example"
        );
        st["Resource"] = resource.clone().into();
    }
    policy.to_string()
}

/// The AWS CLI command a customer uploads with.
pub fn upload_command(bucket: &str, prefix: &str) -> String {
    format!("aws s3 cp employees.csv s3://{bucket}/{prefix}employees.csv")
}

impl Iam {
    /// An IAM client from the deployment's AWS configuration.
    pub fn new(client: aws_sdk_iam::Client, cfg: &CredentialsConfig, region: &str) -> Self {
        Iam {
            client,
            cfg: cfg.clone(),
            region: region.to_string(),
        }
    }

    /// The IAM user name of tenant `slug`.
    pub fn user_name(&self, slug: &str) -> String {
        format!("{}{slug}", self.cfg.user_prefix)
    }

    /// Makes the user if it is missing and (re)writes its policy, so a
    /// changed prefix or bucket is picked up by the next create or rotate.
    async fn ensure_user(&self, tenant: &Tenant) -> Result<String, CredentialsError> {
        let user = self.user_name(&tenant.slug);
        let boundary = Some(self.cfg.permissions_boundary.clone()).filter(|b| !b.is_empty());
        let made = self
            .client
            .create_user()
            .user_name(&user)
            .path(&self.cfg.iam_path)
            .set_permissions_boundary(boundary.clone())
            .tags(
                aws_sdk_iam::types::Tag::builder()
                    .key("userfeed:tenant")
                    .value(&tenant.slug)
                    .build()
                    .map_err(|e| CredentialsError::Iam {
                        call: "CreateUser",
                        message: e.to_string(),
                    })?,
            )
            .send()
            .await;
        match made {
            Ok(_) => {}
            Err(e) if e.code() == Some("EntityAlreadyExists") => {
                // A user made before a boundary was configured gets it now.
                if let Some(b) = &boundary {
                    self.client
                        .put_user_permissions_boundary()
                        .user_name(&user)
                        .permissions_boundary(b)
                        .send()
                        .await
                        .map_err(iam_error("PutUserPermissionsBoundary"))?;
                }
            }
            Err(e) => return Err(iam_error("CreateUser")(e)),
        }
        self.client
            .put_user_policy()
            .user_name(&user)
            .policy_name("userfeed-upload")
            .policy_document(upload_policy(
                &self.region,
                &tenant.bucket,
                &tenant.key_prefix,
            ))
            .send()
            .await
            .map_err(iam_error("PutUserPolicy"))?;
        Ok(user)
    }

    async fn create_key(&self, user: &str) -> Result<(String, Secret), CredentialsError> {
        let out = self
            .client
            .create_access_key()
            .user_name(user)
            .send()
            .await
            .map_err(iam_error("CreateAccessKey"))?;
        let key = out.access_key().ok_or(CredentialsError::Iam {
            call: "CreateAccessKey",
            message: "the answer held no key".into(),
        })?;
        Ok((
            key.access_key_id().to_string(),
            Secret(key.secret_access_key().to_string()),
        ))
    }

    /// Deletes a key; one already gone counts as deleted.
    async fn delete_key(&self, user: &str, key_id: &str) -> Result<(), CredentialsError> {
        match self
            .client
            .delete_access_key()
            .user_name(user)
            .access_key_id(key_id)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.code() == Some("NoSuchEntity") => Ok(()),
            Err(e) => Err(iam_error("DeleteAccessKey")(e)),
        }
    }
}

fn require_bucket(tenant: &Tenant) -> Result<(), CredentialsError> {
    if tenant.bucket.is_empty() {
        return Err(CredentialsError::NoBucket(tenant.slug.clone()));
    }
    Ok(())
}

async fn keys_in<C: ConnectionTrait>(
    db: &C,
    tenant_id: i64,
    states: &[&str],
) -> Result<Vec<tenant_credential::Model>, DbErr> {
    tenant_credential::Entity::find()
        .filter(tenant_credential::Column::TenantId.eq(tenant_id))
        .filter(tenant_credential::Column::State.is_in(states.iter().copied()))
        .order_by_desc(tenant_credential::Column::Id)
        .all(db)
        .await
}

/// The tenant's connection details and keys.
pub async fn connection(
    db: &DatabaseConnection,
    tenant: &Tenant,
    region: &str,
) -> Result<Connection, CredentialsError> {
    Ok(Connection {
        bucket: tenant.bucket.clone(),
        prefix: tenant.key_prefix.clone(),
        region: region.to_string(),
        upload_command: upload_command(&tenant.bucket, &tenant.key_prefix),
        keys: keys_in(db, tenant.id, &["active", "retiring", "deleted"]).await?,
    })
}

impl Iam {
    fn new_key(
        &self,
        tenant: &Tenant,
        user: String,
        (access_key_id, secret): (String, Secret),
        retiring: Option<Retiring>,
    ) -> NewKey {
        NewKey {
            iam_user: user,
            access_key_id,
            secret_access_key: secret,
            retiring,
            bucket: tenant.bucket.clone(),
            prefix: tenant.key_prefix.clone(),
            region: self.region.clone(),
            upload_command: upload_command(&tenant.bucket, &tenant.key_prefix),
        }
    }

    /// Records a key made in IAM with `record`; if recording fails (a
    /// concurrent request won the one active slot), the key is deleted so
    /// no unrecorded key is left working.
    async fn record_or_undo<F, Fut>(
        &self,
        tenant: &Tenant,
        user: &str,
        key_id: &str,
        record: F,
    ) -> Result<(), CredentialsError>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<bool, DbErr>>,
    {
        let outcome = record().await;
        if matches!(outcome, Ok(true)) {
            return Ok(());
        }
        self.delete_key(user, key_id).await?;
        match outcome {
            Err(e) if !is_unique_violation(&e) => Err(e.into()),
            _ => Err(CredentialsError::Raced(tenant.slug.clone())),
        }
    }

    /// Makes the tenant's upload user (if needed) and its first key.
    pub async fn create(
        &self,
        db: &DatabaseConnection,
        tenant: &Tenant,
    ) -> Result<NewKey, CredentialsError> {
        require_bucket(tenant)?;
        if let Some(active) = keys_in(db, tenant.id, &["active"]).await?.first() {
            return Err(CredentialsError::Exists(
                tenant.slug.clone(),
                active.access_key_id.clone(),
            ));
        }
        let user = self.ensure_user(tenant).await?;
        let key = self.create_key(&user).await?;
        self.record_or_undo(tenant, &user, &key.0, || async {
            active_key(tenant.id, &user, &key.0)
                .insert(db)
                .await
                .map(|_| true)
        })
        .await?;
        tracing::info!(tenant = %tenant.slug, iam_user = %user, access_key_id = %key.0, "upload key created");
        Ok(self.new_key(tenant, user, key, None))
    }

    /// Makes a new key; the active one keeps working for `grace`, then the
    /// sweep deletes it. A key still in an earlier grace period is deleted
    /// now (IAM holds two keys per user).
    pub async fn rotate(
        &self,
        db: &DatabaseConnection,
        tenant: &Tenant,
        grace: Duration,
    ) -> Result<NewKey, CredentialsError> {
        require_bucket(tenant)?;
        let Some(old) = keys_in(db, tenant.id, &["active"])
            .await?
            .into_iter()
            .next()
        else {
            return Err(CredentialsError::NoneActive(tenant.slug.clone()));
        };
        for earlier in keys_in(db, tenant.id, &["retiring"]).await? {
            self.retire(db, &earlier).await?;
        }
        let user = self.ensure_user(tenant).await?;
        let key = self.create_key(&user).await?;
        let retire_at = Utc::now()
            + chrono::Duration::from_std(grace).unwrap_or_else(|_| chrono::Duration::days(3650));
        self.record_or_undo(tenant, &user, &key.0, || async {
            let txn = db.begin().await?;
            // Only if the key is still the active one: a concurrent rotate
            // that got there first leaves nothing to update.
            let moved = tenant_credential::Entity::update_many()
                .col_expr(
                    tenant_credential::Column::State,
                    sea_orm::sea_query::Expr::value("retiring"),
                )
                .col_expr(
                    tenant_credential::Column::RetireAt,
                    sea_orm::sea_query::Expr::value(retire_at),
                )
                .filter(tenant_credential::Column::Id.eq(old.id))
                .filter(tenant_credential::Column::State.eq("active"))
                .exec(&txn)
                .await?;
            if moved.rows_affected != 1 {
                return Ok(false);
            }
            active_key(tenant.id, &user, &key.0).insert(&txn).await?;
            txn.commit().await?;
            Ok(true)
        })
        .await?;
        tracing::info!(
            tenant = %tenant.slug, access_key_id = %key.0, retiring = %old.access_key_id,
            %retire_at, "upload key rotated"
        );
        let retiring = Retiring {
            access_key_id: old.access_key_id,
            retire_at,
        };
        Ok(self.new_key(tenant, user, key, Some(retiring)))
    }

    /// Deletes every key of the tenant now: uploads with them are refused
    /// from this moment. The user and its policy stay (they grant nothing
    /// without a key), so `create` can give the tenant a key again.
    pub async fn revoke(
        &self,
        db: &DatabaseConnection,
        tenant: &Tenant,
    ) -> Result<Vec<String>, CredentialsError> {
        let mut revoked = Vec::new();
        for key in keys_in(db, tenant.id, &["active", "retiring"]).await? {
            self.retire(db, &key).await?;
            revoked.push(key.access_key_id);
        }
        tracing::info!(tenant = %tenant.slug, keys = ?revoked, "upload keys revoked");
        Ok(revoked)
    }

    /// Deletes one key in IAM, then marks it deleted.
    async fn retire(
        &self,
        db: &DatabaseConnection,
        key: &tenant_credential::Model,
    ) -> Result<(), CredentialsError> {
        self.delete_key(&key.iam_user, &key.access_key_id).await?;
        tenant_credential::Entity::update_many()
            .col_expr(
                tenant_credential::Column::State,
                sea_orm::sea_query::Expr::value("deleted"),
            )
            .col_expr(
                tenant_credential::Column::RetireAt,
                sea_orm::sea_query::Expr::value(Option::<DateTime<Utc>>::None),
            )
            .col_expr(
                tenant_credential::Column::DeletedAt,
                sea_orm::sea_query::Expr::value(Utc::now()),
            )
            .filter(tenant_credential::Column::Id.eq(key.id))
            .exec(db)
            .await?;
        Ok(())
    }

    /// Deletes every key whose grace period has ended; returns how many.
    pub async fn sweep(&self, db: &DatabaseConnection) -> Result<usize, CredentialsError> {
        let due = tenant_credential::Entity::find()
            .filter(tenant_credential::Column::State.eq("retiring"))
            .filter(tenant_credential::Column::RetireAt.lte(Utc::now()))
            .all(db)
            .await?;
        for key in &due {
            self.retire(db, key).await?;
            tracing::info!(access_key_id = %key.access_key_id, iam_user = %key.iam_user, "rotated-out upload key deleted");
        }
        Ok(due.len())
    }

    /// Runs [`Iam::sweep`] every `credentials.sweep_seconds` until `stop`.
    /// A failed sweep is logged and tried again next time.
    pub async fn run_sweeper(self, db: DatabaseConnection, stop: CancellationToken) {
        let every = Duration::from_secs(self.cfg.sweep_seconds);
        loop {
            if let Err(e) = self.sweep(&db).await {
                tracing::warn!(error = %e, "deleting rotated-out upload keys failed; will retry");
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(every) => {}
            }
        }
    }
}

/// The row of a tenant's newly made, active key.
fn active_key(tenant_id: i64, user: &str, key_id: &str) -> tenant_credential::ActiveModel {
    tenant_credential::ActiveModel {
        tenant_id: Set(tenant_id),
        iam_user: Set(user.to_string()),
        access_key_id: Set(key_id.to_string()),
        state: Set("active".into()),
        created_at: Set(Utc::now()),
        ..Default::default()
    }
}

fn is_unique_violation(e: &DbErr) -> bool {
    matches!(
        e.sql_err(),
        Some(sea_orm::SqlErr::UniqueConstraintViolation(_))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_upload_policy_is_the_shipped_one_scoped_to_the_tenants_prefix() {
        let p: serde_json::Value =
            serde_json::from_str(&upload_policy("ap-southeast-2", "feeds", "globex/")).unwrap();
        let shipped: serde_json::Value = serde_json::from_str(UPLOAD_POLICY).unwrap();
        let st = &p["Statement"][0];
        assert_eq!(st["Resource"], "arn:aws:s3:::feeds/globex/*");
        assert_eq!(st["Action"], shipped["Statement"][0]["Action"]);
        let actions = st["Action"].to_string();
        assert!(
            !actions.contains("s3:ListBucket") && !actions.contains("s3:GetObject"),
            "{actions}"
        );
        let cn: serde_json::Value =
            serde_json::from_str(&upload_policy("cn-north-1", "f", "a/")).unwrap();
        assert_eq!(cn["Statement"][0]["Resource"], "arn:aws-cn:s3:::f/a/*");
    }

    #[test]
    fn a_secret_never_shows_in_debug_output() {
        let k = NewKey {
            iam_user: "u".into(),
            access_key_id: "AKIA1".into(),
            secret_access_key: Secret("very-secret".into()),
            retiring: None,
            bucket: "b".into(),
            prefix: "p/".into(),
            region: "r".into(),
            upload_command: String::new(),
        };
        let shown = format!("{k:?}");
        assert!(
            !shown.contains("very-secret") && shown.contains("<redacted>"),
            "{shown}"
        );
        assert!(serde_json::to_string(&k).unwrap().contains("very-secret"));
    }
}
