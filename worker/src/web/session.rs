//! Sessions of the admin screens.
//!
//! Signing in with an API token opens a session: a random secret in an
//! HTTP-only, `SameSite=Strict` cookie, stored only as its SHA-256 in
//! `ui_sessions`, with the token named by its own SHA-256. Every request
//! looks the token up in the current tokens file, so removing a token ends
//! its sessions and its scope is never copied; the rows of a removed token
//! are deleted (when the daemon starts, and when one is presented), so
//! they cannot come back to life if the same token is listed again. A
//! token has at most `api.sessions_per_token` sessions; signing in past it
//! ends the oldest. Sessions live in the database, so any pod behind the
//! load balancer serves any session.
//!
//! With `api.secure_cookies` (the default) the cookies carry the
//! `__Host-` prefix: browsers then take them only from this host, over
//! HTTPS, for path `/`, so a sibling subdomain cannot plant one.
//!
//! Cross-site request forgery: every form carries the session's
//! synchronizer token (`csrf`), compared in constant time; the sign-in form,
//! which has no session yet, carries a double-submit token from a cookie
//! of its own, so nobody can sign a victim in to the attacker's account.

use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use chrono::Utc;
use sea_orm::{ActiveModelTrait, ColumnTrait, DbErr, EntityTrait, QueryFilter, Set};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::db::entity::ui_session;
use crate::service::Caller;
use crate::web::auth::{Token, Tokens};

/// The session cookie.
pub const COOKIE: &str = "userfeed_session";
/// The sign-in form's double-submit cookie.
pub const SIGN_IN_COOKIE: &str = "userfeed_sign_in";

/// How sessions behave (`[api]`).
#[derive(Debug, Clone)]
pub struct SessionSettings {
    /// How long a sign-in lasts.
    pub lifetime: chrono::Duration,
    /// Whether cookies are HTTPS-only.
    pub secure: bool,
}

impl SessionSettings {
    /// From `api.session_hours` and `api.secure_cookies`.
    pub fn from_config(api: &crate::config::ApiConfig) -> Self {
        SessionSettings {
            lifetime: chrono::Duration::seconds((api.session_hours * 3600.0) as i64),
            secure: api.secure_cookies,
        }
    }

    /// The name a cookie of the screens goes by: `__Host-` and `name`
    /// when cookies are secure, `name` alone otherwise.
    pub fn cookie_name(&self, name: &str) -> String {
        if self.secure {
            format!("__Host-{name}")
        } else {
            name.to_string()
        }
    }

    /// A cookie with the attributes every cookie of the screens has.
    pub fn cookie(&self, name: &'static str, value: String) -> Cookie<'static> {
        let mut c = Cookie::new(self.cookie_name(name), value);
        c.set_http_only(true);
        c.set_same_site(SameSite::Strict);
        // `__Host-` requires path `/` and `Secure`, and no domain.
        c.set_path(if self.secure { "/" } else { "/ui" });
        c.set_secure(self.secure);
        c
    }
}

/// 32 random bytes, hex.
pub fn random_hex() -> String {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).expect("the system's randomness");
    hex::encode(b)
}

fn sha256_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

/// Whether two secrets are equal, in constant time.
pub fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// A signed-in session: who, reaching what, and its form token.
#[derive(Debug, Clone)]
pub struct Session {
    /// The token's label (for audit lines and the header).
    pub label: String,
    /// What the token reaches.
    pub caller: Caller,
    /// The synchronizer token its forms carry.
    pub csrf: String,
    id: i64,
}

impl Session {
    /// Where the session starts: the operators' overview or the tenant's
    /// history.
    pub fn home(&self) -> String {
        match &self.caller {
            Caller::Platform => "/ui/ops".into(),
            Caller::Tenant(slug) => format!("/ui/t/{slug}"),
        }
    }
}

/// Opens a session for `token`, ending its oldest past `keep` sessions;
/// returns the cookie value.
pub async fn open(
    db: &sea_orm::DatabaseConnection,
    token: &Token,
    settings: &SessionSettings,
    keep: u32,
) -> Result<String, DbErr> {
    let secret = random_hex();
    let now = Utc::now();
    ui_session::ActiveModel {
        secret_sha256: Set(sha256_hex(&secret)),
        token_sha256: Set(token.sha256_hex()),
        label: Set(token.label.clone()),
        csrf: Set(random_hex()),
        created_at: Set(now),
        expires_at: Set(now + settings.lifetime),
        ..Default::default()
    }
    .insert(db)
    .await?;
    // Expired sessions of anyone are cleared now and then, here.
    ui_session::Entity::delete_many()
        .filter(ui_session::Column::ExpiresAt.lt(now))
        .exec(db)
        .await?;
    // The token's newest `keep` stay; older ones end.
    use sea_orm::{QueryOrder, QuerySelect};
    let older: Vec<i64> = ui_session::Entity::find()
        .select_only()
        .column(ui_session::Column::Id)
        .filter(ui_session::Column::TokenSha256.eq(token.sha256_hex()))
        .order_by_desc(ui_session::Column::Id)
        .offset(u64::from(keep.max(1)))
        .into_tuple()
        .all(db)
        .await?;
    if !older.is_empty() {
        ui_session::Entity::delete_many()
            .filter(ui_session::Column::Id.is_in(older))
            .exec(db)
            .await?;
    }
    Ok(secret)
}

/// Deletes the sessions of tokens no longer in `tokens` (the daemon's
/// start, after the token file changed); how many.
pub async fn end_removed(db: &sea_orm::DatabaseConnection, tokens: &Tokens) -> Result<u64, DbErr> {
    use sea_orm::QuerySelect;
    let held: Vec<String> = ui_session::Entity::find()
        .select_only()
        .column(ui_session::Column::TokenSha256)
        .distinct()
        .into_tuple()
        .all(db)
        .await?;
    let gone: Vec<String> = held
        .into_iter()
        .filter(|h| tokens.by_hash(h).is_none())
        .collect();
    if gone.is_empty() {
        return Ok(0);
    }
    Ok(ui_session::Entity::delete_many()
        .filter(ui_session::Column::TokenSha256.is_in(gone))
        .exec(db)
        .await?
        .rows_affected)
}

/// Ends a session.
pub async fn close(db: &sea_orm::DatabaseConnection, session: &Session) -> Result<(), DbErr> {
    ui_session::Entity::delete_by_id(session.id)
        .exec(db)
        .await?;
    Ok(())
}

/// The session of the request's cookie, if it is open and its token is
/// still configured.
pub async fn current(
    db: &sea_orm::DatabaseConnection,
    tokens: &Tokens,
    settings: &SessionSettings,
    jar: &CookieJar,
) -> Result<Option<Session>, DbErr> {
    let name = settings.cookie_name(COOKIE);
    let Some(secret) = jar.get(&name).map(|c| c.value().to_string()) else {
        return Ok(None);
    };
    let Some(row) = ui_session::Entity::find()
        .filter(ui_session::Column::SecretSha256.eq(sha256_hex(&secret)))
        .filter(ui_session::Column::ExpiresAt.gt(Utc::now()))
        .one(db)
        .await?
    else {
        return Ok(None);
    };
    let Some(token) = tokens.by_hash(&row.token_sha256) else {
        // Its token left the file: the row goes, so listing the token
        // again does not bring the session back.
        ui_session::Entity::delete_by_id(row.id).exec(db).await?;
        return Ok(None);
    };
    Ok(Some(Session {
        label: token.label.clone(),
        caller: token.caller.clone(),
        csrf: row.csrf,
        id: row.id,
    }))
}
