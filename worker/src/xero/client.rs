//! The HTTP client for Xero's identity and payroll APIs, well-behaved:
//!
//! - at most `xero.concurrency` calls in flight per organisation (Xero
//!   allows 5), through one gate per organisation shared by every caller
//!   in the process;
//! - paced by `X-MinLimit-Remaining`: with few calls left in the minute the
//!   next one waits, spreading the rest over the minute (none left: a
//!   minute);
//! - a 429 waits for its `Retry-After` (at most
//!   `xero.max_retry_after_seconds`) and tries again; a 429 for the daily
//!   limit (`X-Rate-Limit-Problem: day`) fails at once;
//! - timeouts, and retries of network errors and 5xx with exponential
//!   backoff (backon), up to `xero.max_attempts`;
//! - a 401 is [`XeroError::Unauthorized`], which the connection answers by
//!   refreshing its access token once; a refused refresh token is
//!   [`XeroError::Reconnect`].
//!
//! Tokens and secrets never appear in errors or logs.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use backon::BackoffBuilder;
use serde::Deserialize;
use tokio::sync::Semaphore;
use tokio::time::Instant;

use super::Region;
use super::plan::Employee;
use crate::config::XeroConfig;

/// The scopes asked for: employees (read-only), the organisation's
/// country (to pick its payroll API), and a refresh token.
pub const SCOPES: &str = "offline_access payroll.employees.read accounting.settings.read";

/// Employees per page of Payroll AU v1 (a shorter page is the last).
const AU_PAGE: usize = 100;
/// A bound on pages, so a misbehaving server cannot loop us forever.
const MAX_PAGES: u32 = 1_000;

/// Why a call to Xero failed.
#[derive(Debug, thiserror::Error)]
pub enum XeroError {
    /// Xero is not set up on this deployment.
    #[error("Xero is not configured: {0} (see docs/xero.md)")]
    NotConfigured(String),
    /// The grant expired or was revoked.
    #[error(
        "the Xero connection has expired or was revoked in Xero; connect the tenant again (`userfeed xero connect`)"
    )]
    Reconnect,
    /// The access token was refused (the caller refreshes it once).
    #[error("Xero refused the access token")]
    Unauthorized,
    /// The organisation's country has no payroll API.
    #[error("{}", no_payroll(country))]
    NoPayroll {
        /// Its country code.
        country: String,
    },
    /// The admin declined, or Xero's authorization failed.
    #[error("Xero authorization did not complete: {0}")]
    Authorization(String),
    /// The daily limit of calls to the organisation is used up.
    #[error("Xero's daily call limit for this organisation is used up; try again tomorrow")]
    DayLimit,
    /// Xero asked to wait longer than configured.
    #[error(
        "Xero asked to wait {0} s before the next call (over xero.max_retry_after_seconds); try again later"
    )]
    WaitTooLong(u64),
    /// Xero refused the call for another reason.
    #[error("Xero refused {what} (HTTP {status}){detail}")]
    Refused {
        /// What was asked.
        what: &'static str,
        /// HTTP status.
        status: u16,
        /// Xero's own words, when it gave some.
        detail: String,
    },
    /// Network failures, timeouts, 5xx or 429s outlasting the attempts.
    #[error("Xero could not be reached for {what}: {reason}")]
    Unavailable {
        /// What was asked.
        what: &'static str,
        /// The last failure.
        reason: String,
    },
    /// A response that does not have the documented shape.
    #[error("Xero's answer to {what} could not be read: {reason}")]
    Malformed {
        /// What was asked.
        what: &'static str,
        /// Why.
        reason: String,
    },
}

fn no_payroll(country: &str) -> String {
    if country == "US" {
        "this organisation is in the United States: Xero has no payroll API for the United States (and its accounting API no longer lists employees), so its employees cannot be imported".into()
    } else {
        format!(
            "this organisation's country ({country}) has no Xero payroll API; imports work for Australia, the United Kingdom and New Zealand"
        )
    }
}

impl XeroError {
    /// Whether trying again later could succeed.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            XeroError::Unavailable { .. } | XeroError::WaitTooLong(_)
        )
    }
}

/// Tokens from Xero's token endpoint.
#[derive(Clone, Deserialize)]
pub struct Tokens {
    /// The access token (30 minutes).
    pub access_token: String,
    /// The refresh token; a new one with every refresh.
    pub refresh_token: String,
    /// Seconds the access token lives.
    pub expires_in: i64,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tokens(<redacted>)")
    }
}

/// One organisation a grant reaches (`GET /connections`).
#[derive(Debug, Clone, Deserialize, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Connection {
    /// The connection's ID.
    pub id: String,
    /// The organisation's ID (the `Xero-Tenant-Id` header).
    pub tenant_id: String,
    /// `ORGANISATION` or `PRACTICE`.
    #[serde(default)]
    pub tenant_type: String,
    /// Its name.
    #[serde(default)]
    pub tenant_name: String,
}

/// Per-organisation gate: concurrency slots and the earliest next call.
struct Gate {
    slots: Semaphore,
    not_before: Mutex<Option<Instant>>,
}

impl Gate {
    async fn wait_turn(&self) {
        let until = *self.not_before.lock().expect("gate lock");
        if let Some(until) = until {
            tokio::time::sleep_until(until).await;
        }
    }

    fn defer(&self, wait: Duration) {
        let until = Instant::now() + wait;
        let mut nb = self.not_before.lock().expect("gate lock");
        if nb.is_none_or(|t| t < until) {
            *nb = Some(until);
        }
    }

    fn wait_until(&self, until: Instant) {
        *self.not_before.lock().expect("gate lock") = Some(until);
    }

    /// Paces by the minute's remaining calls.
    fn pace(&self, headers: &reqwest::header::HeaderMap) {
        let remaining = header_u64(headers, "x-minlimit-remaining");
        if let Some(wait) = remaining.and_then(pace_for) {
            self.defer(wait);
        }
    }
}

/// How long to wait before the next call with `remaining` calls left in the
/// minute: nothing while there are plenty; then the rest spread over the
/// minute; a whole minute when none is left.
pub fn pace_for(remaining: u64) -> Option<Duration> {
    match remaining {
        0 => Some(Duration::from_secs(60)),
        n if n < 10 => Some(Duration::from_secs(60) / n as u32),
        _ => None,
    }
}

fn header_u64(headers: &reqwest::header::HeaderMap, name: &str) -> Option<u64> {
    headers.get(name)?.to_str().ok()?.trim().parse().ok()
}

/// The client. One per process; clones share the gates.
#[derive(Clone)]
pub struct XeroClient {
    http: reqwest::Client,
    cfg: XeroConfig,
    client_secret: String,
    gates: Arc<Mutex<HashMap<String, Arc<Gate>>>>,
}

impl std::fmt::Debug for XeroClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XeroClient")
            .field("cfg", &self.cfg)
            .finish_non_exhaustive()
    }
}

/// Where a call goes and what it is, for errors.
struct Call<'a> {
    what: &'static str,
    url: String,
    org: Option<&'a str>,
}

impl XeroClient {
    /// A client for the Xero app of `cfg`; refuses a configuration without
    /// the app's credentials.
    pub fn new(cfg: &XeroConfig) -> Result<Self, XeroError> {
        if cfg.client_id.is_empty() {
            return Err(XeroError::NotConfigured("xero.client_id is not set".into()));
        }
        let client_secret = cfg
            .client_secret()
            .map_err(|e| XeroError::NotConfigured(e.to_string()))?;
        if client_secret.is_empty() {
            return Err(XeroError::NotConfigured(
                "xero.client_secret is not set".into(),
            ));
        }
        crate::install_tls_provider();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(cfg.timeout_seconds))
            .connect_timeout(Duration::from_secs(cfg.timeout_seconds.min(10)))
            .user_agent(concat!("userfeed/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| XeroError::NotConfigured(format!("HTTP client: {e}")))?;
        Ok(XeroClient {
            http,
            cfg: cfg.clone(),
            client_secret,
            gates: Arc::default(),
        })
    }

    /// The configuration it runs with.
    pub fn config(&self) -> &XeroConfig {
        &self.cfg
    }

    fn gate(&self, org: &str) -> Arc<Gate> {
        let mut gates = self.gates.lock().expect("gates lock");
        gates
            .entry(org.to_string())
            .or_insert_with(|| {
                Arc::new(Gate {
                    slots: Semaphore::new(self.cfg.concurrency),
                    not_before: Mutex::new(None),
                })
            })
            .clone()
    }

    fn api(&self, path: &str) -> String {
        format!("{}{path}", self.cfg.api_url.trim_end_matches('/'))
    }

    /// Sends `build()` with retries; returns the body of a 2xx.
    async fn send(
        &self,
        call: &Call<'_>,
        build: impl Fn() -> reqwest::RequestBuilder,
    ) -> Result<Vec<u8>, XeroError> {
        let gate = call.org.map(|o| self.gate(o));
        let mut backoff = backon::ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(500))
            .with_max_delay(Duration::from_secs(20))
            .with_jitter()
            .without_max_times()
            .build();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let last = attempt >= self.cfg.max_attempts;
            // Held for the call only: waits (Retry-After, backoff) free it.
            let mut slot = match &gate {
                Some(g) => {
                    g.wait_turn().await;
                    Some(g.slots.acquire().await.expect("the gate is never closed"))
                }
                None => None,
            };
            let failure = match build().send().await {
                Err(e) => without_url(e),
                Ok(r) => {
                    let status = r.status();
                    if status.is_success() {
                        if let Some(g) = &gate {
                            g.pace(r.headers());
                        }
                        return r.bytes().await.map(|b| b.to_vec()).map_err(|e| {
                            XeroError::Unavailable {
                                what: call.what,
                                reason: without_url(e),
                            }
                        });
                    }
                    match status.as_u16() {
                        401 => return Err(XeroError::Unauthorized),
                        429 => {
                            let problem = r
                                .headers()
                                .get("x-rate-limit-problem")
                                .and_then(|v| v.to_str().ok())
                                .unwrap_or("")
                                .to_ascii_lowercase();
                            if problem == "day" {
                                return Err(XeroError::DayLimit);
                            }
                            let wait = header_u64(r.headers(), "retry-after").unwrap_or(60);
                            if wait > self.cfg.max_retry_after_seconds {
                                return Err(XeroError::WaitTooLong(wait));
                            }
                            tracing::info!(
                                what = call.what,
                                wait_s = wait,
                                problem = %problem,
                                "Xero rate limit reached; waiting as asked"
                            );
                            // Retry-After is Xero's own word on when the
                            // next call may go: it replaces any pacing.
                            if let Some(g) = &gate {
                                g.wait_until(Instant::now() + Duration::from_secs(wait));
                            }
                            if !last {
                                drop(slot.take());
                                tokio::time::sleep(Duration::from_secs(wait)).await;
                                continue;
                            }
                            "rate limited (HTTP 429)".to_string()
                        }
                        s if s >= 500 => format!("HTTP {s}"),
                        s => {
                            let body = r.text().await.unwrap_or_default();
                            return Err(XeroError::Refused {
                                what: call.what,
                                status: s,
                                detail: detail(&body),
                            });
                        }
                    }
                }
            };
            if last {
                return Err(XeroError::Unavailable {
                    what: call.what,
                    reason: failure,
                });
            }
            let delay = backoff.next().unwrap_or(Duration::from_secs(20));
            tracing::info!(what = call.what, attempt, error = %failure, "Xero call failed; retrying");
            drop(slot);
            tokio::time::sleep(delay).await;
        }
    }

    async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        call: Call<'_>,
        access: &str,
    ) -> Result<T, XeroError> {
        let body = self
            .send(&call, || {
                let mut b = self
                    .http
                    .get(&call.url)
                    .bearer_auth(access)
                    .header("Accept", "application/json");
                if let Some(org) = call.org {
                    b = b.header("Xero-Tenant-Id", org);
                }
                b
            })
            .await?;
        serde_json::from_slice(&body).map_err(|e| XeroError::Malformed {
            what: call.what,
            reason: e.to_string(),
        })
    }

    async fn token_call(
        &self,
        form: &[(&str, &str)],
        what: &'static str,
    ) -> Result<Tokens, XeroError> {
        let call = Call {
            what,
            url: self.cfg.token_url.clone(),
            org: None,
        };
        let body = self
            .send(&call, || {
                self.http
                    .post(&call.url)
                    .basic_auth(&self.cfg.client_id, Some(&self.client_secret))
                    .form(form)
            })
            .await
            .map_err(|e| match e {
                // `invalid_grant`: the code or refresh token is expired,
                // used or revoked.
                XeroError::Refused { status: 400, .. } => XeroError::Reconnect,
                XeroError::Unauthorized => XeroError::NotConfigured(
                    "Xero refused the app's xero.client_id or xero.client_secret".into(),
                ),
                e => e,
            })?;
        serde_json::from_slice(&body).map_err(|e| XeroError::Malformed {
            what,
            reason: e.to_string(),
        })
    }

    /// Exchanges an authorization code (with its PKCE verifier) for tokens.
    pub async fn exchange_code(&self, code: &str, verifier: &str) -> Result<Tokens, XeroError> {
        self.token_call(
            &[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", &self.cfg.redirect_uri),
                ("code_verifier", verifier),
            ],
            "the authorization code exchange",
        )
        .await
        .map_err(|e| match e {
            XeroError::Reconnect => XeroError::Authorization(
                "Xero refused the authorization code (expired or used); run connect again".into(),
            ),
            e => e,
        })
    }

    /// Trades a refresh token for new tokens (Xero rotates the refresh
    /// token: the old one stops working).
    pub async fn refresh(&self, refresh_token: &str) -> Result<Tokens, XeroError> {
        self.token_call(
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token),
            ],
            "the token refresh",
        )
        .await
    }

    /// Revokes a refresh token and with it the whole grant.
    pub async fn revoke(&self, refresh_token: &str) -> Result<(), XeroError> {
        let call = Call {
            what: "the revocation",
            url: self.cfg.revoke_url.clone(),
            org: None,
        };
        self.send(&call, || {
            self.http
                .post(&call.url)
                .basic_auth(&self.cfg.client_id, Some(&self.client_secret))
                .form(&[("token", refresh_token)])
        })
        .await
        .map(drop)
    }

    /// The organisations the grant reaches.
    pub async fn connections(&self, access: &str) -> Result<Vec<Connection>, XeroError> {
        self.get_json(
            Call {
                what: "the list of connections",
                url: self.api("/connections"),
                org: None,
            },
            access,
        )
        .await
    }

    /// Removes one connection of the grant.
    pub async fn delete_connection(&self, access: &str, id: &str) -> Result<(), XeroError> {
        let call = Call {
            what: "the removal of the connection",
            url: self.api(&format!("/connections/{id}")),
            org: None,
        };
        self.send(&call, || self.http.delete(&call.url).bearer_auth(access))
            .await
            .map(drop)
    }

    /// The organisation's name and country code.
    pub async fn organisation(
        &self,
        access: &str,
        org: &str,
    ) -> Result<(String, String), XeroError> {
        #[derive(Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct Orgs {
            organisations: Vec<Org>,
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct Org {
            #[serde(default)]
            name: String,
            #[serde(default)]
            country_code: String,
        }
        let what = "the organisation";
        let orgs: Orgs = self
            .get_json(
                Call {
                    what,
                    url: self.api("/api.xro/2.0/Organisation"),
                    org: Some(org),
                },
                access,
            )
            .await?;
        let o = orgs
            .organisations
            .into_iter()
            .next()
            .ok_or(XeroError::Malformed {
                what,
                reason: "no organisation in the answer".into(),
            })?;
        Ok((o.name, o.country_code))
    }

    /// Every employee of the organisation, across all pages.
    pub async fn employees(
        &self,
        access: &str,
        org: &str,
        region: Region,
    ) -> Result<Vec<Employee>, XeroError> {
        match region {
            Region::Au => self.employees_au(access, org).await,
            Region::Uk | Region::Nz => self.employees_v2(access, org).await,
        }
    }

    async fn employees_au(&self, access: &str, org: &str) -> Result<Vec<Employee>, XeroError> {
        #[derive(Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct Page {
            #[serde(default)]
            employees: Vec<AuEmployee>,
        }
        let mut all = Vec::new();
        for page in 1..=MAX_PAGES {
            let p: Page = self
                .get_json(
                    Call {
                        what: "the employees (Payroll AU)",
                        url: self.api(&format!("/payroll.xro/1.0/Employees?page={page}")),
                        org: Some(org),
                    },
                    access,
                )
                .await?;
            let n = p.employees.len();
            all.extend(p.employees.into_iter().map(AuEmployee::into_employee));
            if n < AU_PAGE {
                break;
            }
        }
        Ok(all)
    }

    async fn employees_v2(&self, access: &str, org: &str) -> Result<Vec<Employee>, XeroError> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Page {
            #[serde(default)]
            pagination: Option<Pagination>,
            #[serde(default)]
            employees: Vec<V2Employee>,
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Pagination {
            page_count: u32,
        }
        let mut all = Vec::new();
        let mut page = 1;
        loop {
            let p: Page = self
                .get_json(
                    Call {
                        what: "the employees (Payroll v2)",
                        url: self.api(&format!("/payroll.xro/2.0/Employees?page={page}")),
                        org: Some(org),
                    },
                    access,
                )
                .await?;
            let pages = p
                .pagination
                .map(|x| x.page_count)
                .unwrap_or(1)
                .min(MAX_PAGES);
            let empty = p.employees.is_empty();
            all.extend(p.employees.into_iter().map(V2Employee::into_employee));
            if page >= pages || empty {
                break;
            }
            page += 1;
        }
        Ok(all)
    }
}

/// An employee of Payroll AU v1 (PascalCase, `Status`, `TerminationDate`).
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct AuEmployee {
    #[serde(rename = "EmployeeID", default)]
    employee_id: String,
    #[serde(default)]
    first_name: String,
    #[serde(default)]
    last_name: String,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    termination_date: Option<String>,
}

impl AuEmployee {
    fn into_employee(self) -> Employee {
        let terminated = self.status.as_deref() == Some("TERMINATED");
        Employee {
            id: self.employee_id,
            first_name: self.first_name,
            last_name: self.last_name,
            email: self.email,
            left_on: if terminated {
                Some(
                    self.termination_date
                        .as_deref()
                        .and_then(ms_date)
                        .map(|d| d.to_string())
                        .unwrap_or_default(),
                )
            } else {
                None
            },
        }
    }
}

/// An employee of Payroll v2 (UK, NZ): camelCase, a past `endDate` means
/// the employee has left.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct V2Employee {
    #[serde(rename = "employeeID", default)]
    employee_id: String,
    #[serde(default)]
    first_name: String,
    #[serde(default)]
    last_name: String,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    end_date: Option<String>,
}

impl V2Employee {
    fn into_employee(self) -> Employee {
        let today = chrono::Utc::now().date_naive();
        let ended = self
            .end_date
            .as_deref()
            .and_then(iso_date)
            .filter(|d| *d < today);
        Employee {
            id: self.employee_id,
            first_name: self.first_name,
            last_name: self.last_name,
            email: self.email,
            left_on: ended.map(|d| d.to_string()),
        }
    }
}

/// A Microsoft JSON date, `/Date(1584662400000+0000)/`, as a date.
pub fn ms_date(s: &str) -> Option<chrono::NaiveDate> {
    let inner = s.strip_prefix("/Date(")?.strip_suffix(")/")?;
    let ms_end = inner[1..]
        .find(['+', '-'])
        .map(|i| i + 1)
        .unwrap_or(inner.len());
    let ms: i64 = inner[..ms_end].parse().ok()?;
    chrono::DateTime::from_timestamp_millis(ms).map(|d| d.date_naive())
}

/// A v2 date, `2026-06-30T00:00:00` (or a plain date), as a date.
pub fn iso_date(s: &str) -> Option<chrono::NaiveDate> {
    chrono::NaiveDate::parse_from_str(s.get(..10)?, "%Y-%m-%d").ok()
}

/// A reqwest error without its URL (which may carry a query).
fn without_url(e: reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else {
        "request failed"
    };
    format!("{kind}: {}", e.without_url())
}

/// Xero's error text, short, for an admin.
fn detail(body: &str) -> String {
    #[derive(Deserialize)]
    struct Err {
        #[serde(
            default,
            alias = "Detail",
            alias = "Message",
            alias = "error_description"
        )]
        detail: Option<String>,
        #[serde(default, alias = "Title", alias = "error")]
        title: Option<String>,
    }
    let said = serde_json::from_str::<Err>(body)
        .ok()
        .and_then(|e| e.detail.or(e.title))
        .unwrap_or_default();
    let said: String = said.chars().take(300).collect();
    if said.is_empty() {
        String::new()
    } else {
        format!(": {said}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xero_dates_of_both_apis_read() {
        assert_eq!(
            ms_date("/Date(1584662400000+0000)/"),
            chrono::NaiveDate::from_ymd_opt(2020, 3, 20)
        );
        assert_eq!(
            ms_date("/Date(1584662400000)/"),
            chrono::NaiveDate::from_ymd_opt(2020, 3, 20)
        );
        assert_eq!(ms_date("2020-03-20"), None);
        assert_eq!(
            iso_date("2026-06-30T00:00:00"),
            chrono::NaiveDate::from_ymd_opt(2026, 6, 30)
        );
    }

    #[test]
    fn pacing_waits_only_when_few_calls_are_left_in_the_minute() {
        assert_eq!(pace_for(60), None);
        assert_eq!(pace_for(10), None);
        assert_eq!(pace_for(6), Some(Duration::from_secs(10)));
        assert_eq!(pace_for(0), Some(Duration::from_secs(60)));
    }
}
