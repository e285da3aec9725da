//! Xero connections, previews and imports.

use super::*;

impl From<crate::xero::connection::XeroOpError> for ServiceError {
    fn from(e: crate::xero::connection::XeroOpError) -> Self {
        use crate::xero::XeroError as X;
        use crate::xero::connection::XeroOpError as E;
        match e {
            E::Db(db) => ServiceError::Db(db),
            E::ChooseOrganisation(_) | E::Xero(X::Authorization(_)) => {
                ServiceError::Invalid(e.to_string())
            }
            E::Xero(
                X::DayLimit
                | X::WaitTooLong(_)
                | X::Unavailable { .. }
                | X::Malformed { .. }
                | X::Refused { .. },
            ) => ServiceError::Unavailable(e.to_string()),
            _ => ServiceError::Refused(e.to_string()),
        }
    }
}

/// The Xero service of this deployment, or the refusal saying what is missing.
fn xero(x: Option<&crate::xero::XeroService>) -> Result<&crate::xero::XeroService, ServiceError> {
    x.ok_or_else(|| {
        ServiceError::Refused(
            "Xero is not configured on this deployment: set xero.client_id, xero.client_secret and xero.token_key (docs/xero.md)"
                .into(),
        )
    })
}

/// The deployment's Xero service: `None` while its settings are not set
/// (every Xero operation then refuses, saying what to set), an error when
/// they are set but unusable.
pub fn xero_service(
    cfg: &crate::config::XeroConfig,
) -> Result<Option<crate::xero::XeroService>, ServiceError> {
    match crate::xero::XeroService::new(cfg) {
        Ok(x) => Ok(Some(x)),
        Err(crate::xero::XeroError::NotConfigured(m)) if m.ends_with("is not set") => Ok(None),
        Err(e) => Err(crate::xero::connection::XeroOpError::Xero(e).into()),
    }
}

impl Service {
    /// A tenant's Xero connection; `None` when it has none.
    pub async fn xero_status(
        &self,
        caller: &Caller,
        slug: &str,
    ) -> Result<Option<crate::xero::ConnectionInfo>, ServiceError> {
        let db = &self.db;
        let x = self.xero.as_ref();
        let t = self.tenant(caller, slug).await?;
        Ok(xero(x)?.status(db, &t).await?)
    }

    /// Finishes connecting a tenant to Xero with the code the callback of
    /// `pending`'s flow carried (see [`crate::xero::oauth`]).
    pub async fn xero_connect(
        &self,
        caller: &Caller,
        slug: &str,
        pending: &crate::xero::oauth::Pending,
        code: &str,
        organisation: Option<&str>,
    ) -> Result<crate::xero::ConnectionInfo, ServiceError> {
        let db = &self.db;
        let x = self.xero.as_ref();
        let t = self.tenant(caller, slug).await?;
        Ok(xero(x)?
            .connect(db, &t, pending, code, organisation)
            .await?)
    }

    /// Revokes the tenant's Xero grant and deletes its connection.
    pub async fn xero_disconnect(&self, caller: &Caller, slug: &str) -> Result<bool, ServiceError> {
        let db = &self.db;
        let x = self.xero.as_ref();
        let t = self.tenant(caller, slug).await?;
        Ok(xero(x)?.disconnect(db, &t).await?)
    }

    /// What a Xero import would do now: the employees it would create, those
    /// it cannot (with reasons) and those already present. Changes nothing.
    pub async fn xero_preview(
        &self,
        caller: &Caller,
        slug: &str,
    ) -> Result<crate::xero::XeroPreview, ServiceError> {
        let db = &self.db;
        let x = self.xero.as_ref();
        let t = self.tenant(caller, slug).await?;
        Ok(xero(x)?.preview(db, &t).await?)
    }

    /// Records a Xero import as an upload of source `xero`, queued for the
    /// daemon or claimed for the caller to run (`start`).
    pub async fn xero_import(
        &self,
        caller: &Caller,
        slug: &str,
        start: crate::xero::connection::Start,
    ) -> Result<crate::xero::connection::XeroImport, ServiceError> {
        let db = &self.db;
        let x = self.xero.as_ref();
        let t = self.tenant(caller, slug).await?;
        Ok(xero(x)?.import(db, &t, start).await?)
    }

    /// Connects tenant `slug` to a Xero organisation through the deployment's
    /// loopback redirect (`xero.redirect_uri`), for an operator at the CLI:
    /// `show` is given the URL to open and where the answer is awaited, then
    /// the code Xero sends back within `wait` is exchanged and the connection
    /// stored.
    pub async fn xero_connect_loopback(
        &self,
        caller: &Caller,
        slug: &str,
        organisation: Option<&str>,
        wait: std::time::Duration,
        show: impl FnOnce(&str, &str),
    ) -> Result<crate::xero::ConnectionInfo, ServiceError> {
        let _db = &self.db;
        let x = self.xero.as_ref();
        use crate::xero::connection::XeroOpError;
        use crate::xero::oauth;
        // Refuse an unknown tenant or a missing configuration before sending
        // the admin to Xero.
        self.xero_status(caller, slug).await?;
        let xs = xero(x)?;
        let listener = oauth::listen(xs.config())
            .await
            .map_err(XeroOpError::Xero)?;
        let pending = oauth::Pending::new();
        show(
            &pending.authorize_url(xs.config()),
            &xs.config().redirect_uri,
        );
        let code = oauth::receive_code(xs.config(), &pending, listener, wait)
            .await
            .map_err(XeroOpError::Xero)?;
        self.xero_connect(caller, slug, &pending, &code, organisation)
            .await
    }
}
