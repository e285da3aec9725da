//! `xero_connections`: a tenant's connection to one Xero organisation
//! (migration 0017). The tokens are ciphertexts (`xero::vault`).
use sea_orm::entity::prelude::*;

/// One tenant's connection.
#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "xero_connections")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub tenant_id: i64,
    /// The organisation's ID at Xero (the `Xero-Tenant-Id` header).
    pub xero_tenant_id: String,
    pub xero_tenant_name: String,
    /// The connection's ID at Xero (what `disconnect` deletes).
    pub connection_id: String,
    /// The organisation's country code, as Xero reports it.
    pub country: String,
    /// Which payroll API reads its employees: `au`, `uk` or `nz`.
    pub region: String,
    /// The refresh token, encrypted.
    pub refresh_token: Vec<u8>,
    /// The current access token, encrypted.
    pub access_token: Option<Vec<u8>>,
    pub access_expires_at: Option<chrono::DateTime<chrono::Utc>>,
    pub connected_at: chrono::DateTime<chrono::Utc>,
    pub refreshed_at: chrono::DateTime<chrono::Utc>,
}

impl ActiveModelBehavior for ActiveModel {}
