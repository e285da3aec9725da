//! A tenant's connection to Xero, and the three operations on it: connect
//! (finishing the OAuth flow), preview, import; and disconnect.
//!
//! The tokens live encrypted in `xero_connections` ([`super::vault`]).
//! Every use of the connection takes a valid access token: the stored one
//! while it has over a minute left, else a refresh, whose new refresh token
//! (Xero rotates it on every refresh) is stored at once, before it is used.
//! A call refused with 401 refreshes once and tries again.

use std::collections::HashSet;

use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait,
    Statement, TransactionTrait,
};
use serde::Serialize;

use super::Region;
use super::client::{Connection, XeroClient, XeroError};
use super::oauth::Pending;
use super::plan::{self, Employee, XeroPreview};
use super::vault::{TokenKind, Vault};
use crate::config::XeroConfig;
use crate::db::entity::{upload_body, upload_row_error, xero_connection};
use crate::db::queries;
use crate::intake::event::ObjectCreated;
use crate::jobs::state::{self, UploadState};
use crate::tenants::Tenant;

/// A tenant's connection, as shown (never the tokens).
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct ConnectionInfo {
    /// The organisation's ID at Xero.
    pub organisation_id: String,
    /// Its name.
    pub organisation: String,
    /// Its country code.
    pub country: String,
    /// The payroll API its employees are read from.
    pub region: Region,
    /// When the tenant connected it.
    pub connected_at: chrono::DateTime<chrono::Utc>,
    /// When its tokens were last refreshed.
    pub refreshed_at: chrono::DateTime<chrono::Utc>,
}

impl ConnectionInfo {
    fn of(row: &xero_connection::Model) -> Result<Self, XeroError> {
        Ok(ConnectionInfo {
            organisation_id: row.xero_tenant_id.clone(),
            organisation: row.xero_tenant_name.clone(),
            country: row.country.clone(),
            region: Region::parse(&row.region).ok_or_else(|| XeroError::Malformed {
                what: "the stored connection",
                reason: format!("unknown region {:?}", row.region),
            })?,
            connected_at: row.connected_at,
            refreshed_at: row.refreshed_at,
        })
    }
}

/// How an import's upload starts.
#[derive(Debug, Clone, Copy)]
pub enum Start {
    /// Queued: a daemon's workers run it (the admin API).
    Queued,
    /// Running already, claimed by the caller, who runs it now with a lease
    /// of this many seconds (the CLI).
    Claimed(f64),
}

/// What an import recorded.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct XeroImport {
    /// The upload that applies it (source `xero`).
    pub upload_id: i64,
    /// What it was built from: the groups of the preview.
    pub preview: XeroPreview,
}

/// Why a Xero operation failed: Xero's side, or ours.
#[derive(Debug, thiserror::Error)]
pub enum XeroOpError {
    /// Xero, the grant or the configuration.
    #[error(transparent)]
    Xero(#[from] XeroError),
    /// The tenant has no connection.
    #[error(
        "tenant {0} is not connected to Xero; connect it with `userfeed xero connect --tenant {0}`"
    )]
    NotConnected(String),
    /// The grant reaches several organisations and none was chosen, or the
    /// one named is not among them.
    #[error("{0}")]
    ChooseOrganisation(String),
    /// The stored tokens cannot be decrypted.
    #[error(transparent)]
    Vault(#[from] super::vault::VaultError),
    /// Another upload of the tenant is running.
    #[error("an upload of this tenant is running now; try again when it has finished")]
    TenantBusy,
    /// Database failure.
    #[error("database error: {0}")]
    Db(#[from] DbErr),
}

/// The Xero client and the token vault: everything an operation needs.
#[derive(Debug, Clone)]
pub struct XeroService {
    client: XeroClient,
    vault: std::sync::Arc<Vault>,
}

impl XeroService {
    /// The service for `cfg`; refuses a deployment without the app's
    /// credentials or the token key.
    pub fn new(cfg: &XeroConfig) -> Result<Self, XeroError> {
        let client = XeroClient::new(cfg)?;
        let key = cfg
            .token_key()
            .map_err(|e| XeroError::NotConfigured(e.to_string()))?;
        if key.is_empty() {
            return Err(XeroError::NotConfigured("xero.token_key is not set".into()));
        }
        let vault = Vault::new(&key).map_err(|e| XeroError::NotConfigured(e.to_string()))?;
        Ok(XeroService {
            client,
            vault: std::sync::Arc::new(vault),
        })
    }

    /// The client's configuration.
    pub fn config(&self) -> &XeroConfig {
        self.client.config()
    }

    /// The tenant's connection, if any.
    pub async fn status(
        &self,
        db: &DatabaseConnection,
        tenant: &Tenant,
    ) -> Result<Option<ConnectionInfo>, XeroOpError> {
        let row = xero_connection::Entity::find_by_id(tenant.id)
            .one(db)
            .await?;
        Ok(row.as_ref().map(ConnectionInfo::of).transpose()?)
    }

    /// Finishes the flow `pending` started: exchanges `code`, picks the
    /// organisation (`organisation`, an ID or a name; needed only when the
    /// grant reaches several), reads its country for the payroll region,
    /// and stores the connection, replacing an earlier one.
    pub async fn connect(
        &self,
        db: &DatabaseConnection,
        tenant: &Tenant,
        pending: &Pending,
        code: &str,
        organisation: Option<&str>,
    ) -> Result<ConnectionInfo, XeroOpError> {
        let tokens = self.client.exchange_code(code, &pending.verifier).await?;
        let orgs: Vec<Connection> = self
            .client
            .connections(&tokens.access_token)
            .await?
            .into_iter()
            .filter(|c| c.tenant_type.is_empty() || c.tenant_type == "ORGANISATION")
            .collect();
        let chosen = choose(&orgs, organisation)?;
        let (name, country) = self
            .client
            .organisation(&tokens.access_token, &chosen.tenant_id)
            .await?;
        let region = Region::for_country(&country)?;
        let now = chrono::Utc::now();
        let row = xero_connection::ActiveModel {
            tenant_id: Set(tenant.id),
            xero_tenant_id: Set(chosen.tenant_id.clone()),
            xero_tenant_name: Set(if name.is_empty() {
                chosen.tenant_name.clone()
            } else {
                name
            }),
            connection_id: Set(chosen.id.clone()),
            country: Set(country.to_ascii_uppercase()),
            region: Set(region.as_str().into()),
            refresh_token: Set(self.vault.seal(
                tenant.id,
                TokenKind::Refresh,
                &tokens.refresh_token,
            )),
            access_token: Set(Some(self.vault.seal(
                tenant.id,
                TokenKind::Access,
                &tokens.access_token,
            ))),
            access_expires_at: Set(Some(now + chrono::Duration::seconds(tokens.expires_in))),
            connected_at: Set(now),
            refreshed_at: Set(now),
        };
        let txn = db.begin().await?;
        xero_connection::Entity::delete_by_id(tenant.id)
            .exec(&txn)
            .await?;
        let saved = row.insert(&txn).await?;
        txn.commit().await?;
        tracing::info!(
            tenant = %tenant.slug,
            organisation = %saved.xero_tenant_name,
            region = region.as_str(),
            "tenant connected to Xero"
        );
        Ok(ConnectionInfo::of(&saved)?)
    }

    /// Revokes the grant at Xero (its connection removed, then the refresh
    /// token revoked) and deletes the connection here. A grant Xero already
    /// refuses is deleted here all the same. `false` when there was none.
    pub async fn disconnect(
        &self,
        db: &DatabaseConnection,
        tenant: &Tenant,
    ) -> Result<bool, XeroOpError> {
        let Some(mut row) = xero_connection::Entity::find_by_id(tenant.id)
            .one(db)
            .await?
        else {
            return Ok(false);
        };
        match self.access(db, &mut row, false).await {
            Ok(access) => {
                match self
                    .client
                    .delete_connection(&access, &row.connection_id)
                    .await
                {
                    Ok(()) | Err(XeroError::Unauthorized) => {}
                    Err(XeroError::Refused { status: 404, .. }) => {}
                    Err(e) => return Err(e.into()),
                }
                let refresh = self
                    .vault
                    .open(tenant.id, TokenKind::Refresh, &row.refresh_token)?;
                match self.client.revoke(&refresh).await {
                    Ok(()) | Err(XeroError::Refused { status: 400, .. }) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            // Already revoked or expired at Xero: nothing left to revoke.
            Err(XeroOpError::Xero(XeroError::Reconnect)) | Err(XeroOpError::Vault(_)) => {}
            Err(e) => return Err(e),
        }
        xero_connection::Entity::delete_by_id(tenant.id)
            .exec(db)
            .await?;
        tracing::info!(tenant = %tenant.slug, "tenant disconnected from Xero");
        Ok(true)
    }

    /// A valid access token for `row`: the stored one unless `force` or it
    /// expires within a minute; else refreshed, with the rotated refresh
    /// token stored before this returns.
    async fn access(
        &self,
        db: &DatabaseConnection,
        row: &mut xero_connection::Model,
        force: bool,
    ) -> Result<String, XeroOpError> {
        let now = chrono::Utc::now();
        if !force
            && let (Some(sealed), Some(until)) = (&row.access_token, row.access_expires_at)
            && until > now + chrono::Duration::seconds(60)
        {
            return Ok(self.vault.open(row.tenant_id, TokenKind::Access, sealed)?);
        }
        let refresh = self
            .vault
            .open(row.tenant_id, TokenKind::Refresh, &row.refresh_token)?;
        let tokens = self.client.refresh(&refresh).await?;
        let mut active: xero_connection::ActiveModel = row.clone().into();
        active.refresh_token =
            Set(self
                .vault
                .seal(row.tenant_id, TokenKind::Refresh, &tokens.refresh_token));
        active.access_token = Set(Some(self.vault.seal(
            row.tenant_id,
            TokenKind::Access,
            &tokens.access_token,
        )));
        active.access_expires_at = Set(Some(now + chrono::Duration::seconds(tokens.expires_in)));
        active.refreshed_at = Set(now);
        *row = active.update(db).await?;
        tracing::info!(tenant_id = row.tenant_id, "Xero tokens refreshed");
        Ok(tokens.access_token)
    }

    async fn connection(
        &self,
        db: &DatabaseConnection,
        tenant: &Tenant,
    ) -> Result<xero_connection::Model, XeroOpError> {
        xero_connection::Entity::find_by_id(tenant.id)
            .one(db)
            .await?
            .ok_or_else(|| XeroOpError::NotConnected(tenant.slug.clone()))
    }

    /// Every employee of the tenant's organisation.
    pub async fn employees(
        &self,
        db: &DatabaseConnection,
        tenant: &Tenant,
    ) -> Result<(ConnectionInfo, Vec<Employee>), XeroOpError> {
        let mut row = self.connection(db, tenant).await?;
        let info = ConnectionInfo::of(&row)?;
        let mut forced = false;
        loop {
            let access = self.access(db, &mut row, forced).await?;
            match self
                .client
                .employees(&access, &row.xero_tenant_id, info.region)
                .await
            {
                Err(XeroError::Unauthorized) if !forced => forced = true,
                Err(XeroError::Unauthorized) => return Err(XeroError::Reconnect.into()),
                Err(e) => return Err(e.into()),
                Ok(list) => return Ok((info, list)),
            }
        }
    }

    /// What an import would do now; changes nothing.
    pub async fn preview(
        &self,
        db: &DatabaseConnection,
        tenant: &Tenant,
    ) -> Result<XeroPreview, XeroOpError> {
        let (info, employees) = self.employees(db, tenant).await?;
        sort(db, tenant, &info, &employees, self.config().max_users).await
    }

    /// Records the import as an upload of source `xero`: its file (the
    /// importable and the present employees; the engine leaves the present
    /// alone) stored with it, and each employee it cannot import as a
    /// warning on line 0. Returns the upload, queued or claimed per `start`.
    pub async fn import(
        &self,
        db: &DatabaseConnection,
        tenant: &Tenant,
        start: Start,
    ) -> Result<XeroImport, XeroOpError> {
        let preview = self.preview(db, tenant).await?;
        let rows = preview.importable.iter().chain(&preview.present).map(|p| {
            [
                p.first_name.as_str(),
                p.last_name.as_str(),
                p.email.as_deref().unwrap_or(""),
            ]
        });
        let body = crate::source::stored::import_csv(rows);
        let now = chrono::Utc::now();
        let mut nonce = [0u8; 8];
        getrandom::fill(&mut nonce).expect("the operating system's random source");
        let bucket = format!("xero:{}", tenant.slug);
        let key = format!(
            "employees-{}-{}.csv",
            now.format("%Y%m%dT%H%M%S%.3fZ"),
            hex::encode(nonce)
        );
        let txn = db.begin().await?;
        let upload_id = match start {
            Start::Queued => state::record(
                &txn,
                tenant.id,
                crate::upload::UploadSource::Xero,
                &ObjectCreated {
                    bucket: bucket.clone(),
                    key: key.clone(),
                    size: Some(body.len() as i64),
                    etag: None,
                    version_id: None,
                    sequencer: Some(hex::encode(nonce)),
                    event_time: Some(now),
                },
            )
            .await?
            .ok_or_else(|| DbErr::Custom("the import's upload was recorded twice".into()))?,
            Start::Claimed(lease_secs) => state::record_local(
                &txn,
                tenant.id,
                crate::upload::UploadSource::Xero,
                &bucket,
                &key,
                UploadState::Running,
                lease_secs,
            )
            .await
            .map_err(|e| {
                if e.to_string().contains("uploads_one_running_per_tenant") {
                    XeroOpError::TenantBusy
                } else {
                    XeroOpError::Db(e)
                }
            })?,
        };
        upload_body::ActiveModel {
            bucket: Set(bucket),
            object_key: Set(key),
            body: Set(body),
            created_at: Set(now),
        }
        .insert(&txn)
        .await?;
        let notes: Vec<upload_row_error::ActiveModel> = preview
            .not_importable
            .iter()
            .map(|s| upload_row_error::ActiveModel {
                upload_id: Set(upload_id),
                line: Set(0),
                column_name: Set(None),
                severity: Set("warning".into()),
                message: Set(s.message.clone()),
                ..Default::default()
            })
            .collect();
        for chunk in notes.chunks(500) {
            upload_row_error::Entity::insert_many(chunk.to_vec())
                .exec(&txn)
                .await?;
        }
        txn.commit().await?;
        tracing::info!(
            tenant = %tenant.slug,
            upload_id,
            importable = preview.importable.len(),
            present = preview.present.len(),
            not_importable = preview.not_importable.len(),
            "Xero import recorded"
        );
        Ok(XeroImport { upload_id, preview })
    }
}

/// Picks the organisation: the one named (by ID or name), or the only one.
fn choose<'a>(orgs: &'a [Connection], wanted: Option<&str>) -> Result<&'a Connection, XeroOpError> {
    let list = || {
        orgs.iter()
            .map(|c| format!("{} ({})", c.tenant_name, c.tenant_id))
            .collect::<Vec<_>>()
            .join(", ")
    };
    match (wanted, orgs) {
        (_, []) => Err(XeroOpError::ChooseOrganisation(
            "the Xero grant reaches no organisation; connect again and pick one in Xero".into(),
        )),
        (None, [only]) => Ok(only),
        (None, _) => Err(XeroOpError::ChooseOrganisation(format!(
            "the Xero grant reaches {} organisations: {}; choose one with --organisation",
            orgs.len(),
            list()
        ))),
        (Some(w), _) => orgs
            .iter()
            .find(|c| c.tenant_id == w || c.tenant_name.eq_ignore_ascii_case(w))
            .ok_or_else(|| {
                XeroOpError::ChooseOrganisation(format!(
                    "no organisation {w:?} in this grant; it reaches: {}",
                    list()
                ))
            }),
    }
}

/// Sorts `employees` against the tenant's users.
async fn sort(
    db: &DatabaseConnection,
    tenant: &Tenant,
    info: &ConnectionInfo,
    employees: &[Employee],
    cap: u64,
) -> Result<XeroPreview, XeroOpError> {
    let backend = db.get_database_backend();
    let q = queries::of(backend);
    let emails: Vec<String> = employees
        .iter()
        .filter_map(|e| e.email.as_deref())
        .map(|e| e.trim().to_lowercase())
        .filter(|e| !e.is_empty())
        .collect();
    let present: HashSet<String> = db
        .query_all_raw(Statement::from_sql_and_values(
            backend,
            q.present_emails,
            [
                tenant.id.into(),
                serde_json::to_string(&emails).unwrap_or_default().into(),
            ],
        ))
        .await?
        .into_iter()
        .map(|r| r.try_get::<String>("", "email"))
        .collect::<Result<_, _>>()?;
    let imported: i64 = db
        .query_one_raw(Statement::from_sql_and_values(
            backend,
            q.xero_imported_users,
            [tenant.id.into()],
        ))
        .await?
        .map(|r| r.try_get("", "n"))
        .transpose()?
        .unwrap_or(0);
    Ok(plan::plan(
        &info.organisation,
        info.region,
        employees,
        &present,
        u64::try_from(imported).unwrap_or(0),
        cap,
    ))
}
