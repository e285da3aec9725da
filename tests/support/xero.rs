//! A fake Xero for tests: a local HTTP server answering like Xero's
//! identity service and its payroll APIs, with responses shaped as
//! Xero's published OpenAPI specifications (XeroAPI/Xero-OpenAPI:
//! `xero-identity.yaml`, `xero-payroll-au.yaml`, `xero-payroll-uk.yaml`)
//! describe them: PascalCase Payroll AU v1 employees (`Status`,
//! `TerminationDate` as `/Date(ms+0000)/`, up to 100 a page, no pagination
//! object), camelCase Payroll v2 employees (`endDate`, a `pagination`
//! object, `email` may be null), `GET /connections` as an array, OAuth 2.0
//! authorization code with PKCE, refresh tokens rotated on every use.
//!
//! It enforces what the real one does: a bearer token it issued, the
//! `Xero-Tenant-Id` header of a connected organisation, the PKCE verifier,
//! single-use refresh tokens. Tests can expire access tokens, revoke the
//! grant and inject 429s; every call is logged.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, Query, RawForm, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use base64::Engine;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// The app's credentials the fake accepts.
pub const CLIENT_ID: &str = "fake-client-id";
/// See [`CLIENT_ID`].
pub const CLIENT_SECRET: &str = "fake-client-secret";
/// A token key for tests (64 hex characters).
pub const TOKEN_KEY: &str = "4f1c9e0b7a6d5c3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a2b1c0d9e";

/// An employee as the fake holds it.
#[derive(Debug, Clone)]
pub struct FakeEmployee {
    /// Employee ID.
    pub id: String,
    /// First name.
    pub first: String,
    /// Last name.
    pub last: String,
    /// Email; `None` is absent (AU) or null (v2).
    pub email: Option<String>,
    /// AU: terminated on this date. v2: the `endDate`.
    pub end: Option<chrono::NaiveDate>,
}

impl FakeEmployee {
    /// An employee `n` with email `e{n}@<domain>`.
    pub fn numbered(n: usize, domain: &str) -> FakeEmployee {
        FakeEmployee {
            id: format!("00000000-0000-4000-8000-{n:012}"),
            first: format!("First{n}"),
            last: format!("Last{n}"),
            email: Some(format!("e{n}@{domain}")),
            end: None,
        }
    }
}

/// An organisation the grant reaches.
#[derive(Debug, Clone)]
pub struct FakeOrg {
    /// `Xero-Tenant-Id`.
    pub tenant_id: String,
    /// The connection's ID.
    pub connection_id: String,
    /// Name.
    pub name: String,
    /// `Organisation.CountryCode`: AU, GB, NZ, US...
    pub country: String,
    /// Its employees, in Xero's order.
    pub employees: Vec<FakeEmployee>,
}

impl FakeOrg {
    /// An organisation in `country` with `employees`.
    pub fn new(name: &str, country: &str, employees: Vec<FakeEmployee>) -> FakeOrg {
        let n = crate::unique("");
        FakeOrg {
            tenant_id: format!("org-{n}"),
            connection_id: format!("conn-{n}"),
            name: name.into(),
            country: country.into(),
            employees,
        }
    }
}

/// What the fake knows and has seen.
#[derive(Default)]
pub struct FakeState {
    /// Organisations.
    pub orgs: Vec<FakeOrg>,
    codes: HashMap<String, (String, String)>,
    /// Refresh tokens that work (each once).
    pub refresh_tokens: HashSet<String>,
    /// Access tokens that work.
    pub access_tokens: HashSet<String>,
    /// Every refresh token ever issued.
    pub issued_refresh: Vec<String>,
    /// Every access token ever issued.
    pub issued_access: Vec<String>,
    /// Calls to answer with 429, each with its `Retry-After`.
    pub throttle: Vec<u64>,
    /// `X-MinLimit-Remaining` to send.
    pub min_remaining: u64,
    /// Every call: "METHOD path?query".
    pub calls: Vec<String>,
    /// When each call arrived.
    pub call_times: Vec<std::time::Instant>,
    /// Revocations received.
    pub revoked: Vec<String>,
    /// Connections deleted.
    pub deleted_connections: Vec<String>,
    counter: u64,
}

/// A running fake Xero.
pub struct FakeXero {
    /// Its base URL (`http://127.0.0.1:port`).
    pub base: String,
    /// Its state.
    pub state: Arc<Mutex<FakeState>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeXero {
    fn drop(&mut self) {
        self.task.abort();
    }
}

type S = Arc<Mutex<FakeState>>;

impl FakeXero {
    /// Starts a fake reaching `orgs`.
    pub async fn start(orgs: Vec<FakeOrg>) -> FakeXero {
        // The tests' own HTTP client (the admin's browser) needs it too.
        userfeed::install_tls_provider();
        let state: S = Arc::new(Mutex::new(FakeState {
            orgs,
            min_remaining: 59,
            ..FakeState::default()
        }));
        let app = Router::new()
            .route("/identity/connect/authorize", get(authorize))
            .route("/identity/connect/token", post(token))
            .route("/identity/connect/revocation", post(revoke))
            .route("/connections", get(connections))
            .route("/connections/{id}", delete(delete_connection))
            .route("/api.xro/2.0/Organisation", get(organisation))
            .route("/payroll.xro/1.0/Employees", get(employees_au))
            .route("/payroll.xro/2.0/Employees", get(employees_v2))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        FakeXero {
            base: format!("http://{addr}"),
            state,
            task,
        }
    }

    /// A `[xero]` configuration pointing at this fake, with the callback on
    /// `redirect_port`.
    pub fn config(&self, redirect_port: u16) -> userfeed::config::XeroConfig {
        let mut cfg = userfeed::config::Config::load(None).expect("defaults").xero;
        cfg.client_id = CLIENT_ID.into();
        cfg.client_secret = CLIENT_SECRET.into();
        cfg.token_key = TOKEN_KEY.into();
        cfg.redirect_uri = format!("http://localhost:{redirect_port}/callback");
        cfg.authorize_url = format!("{}/identity/connect/authorize", self.base);
        cfg.token_url = format!("{}/identity/connect/token", self.base);
        cfg.revoke_url = format!("{}/identity/connect/revocation", self.base);
        cfg.api_url = self.base.clone();
        // The fake listens on plain http on loopback.
        cfg.allow_http = true;
        cfg.max_attempts = 3;
        cfg.timeout_seconds = 10;
        cfg
    }

    /// Access tokens stop working (as after 30 minutes).
    pub fn expire_access_tokens(&self) {
        self.state.lock().unwrap().access_tokens.clear();
    }

    /// The grant is revoked in Xero: no token works any more.
    pub fn revoke_grant(&self) {
        let mut s = self.state.lock().unwrap();
        s.access_tokens.clear();
        s.refresh_tokens.clear();
    }

    /// The next calls to the payroll API answer 429 with these `Retry-After`s.
    pub fn throttle_next(&self, retry_after: &[u64]) {
        self.state.lock().unwrap().throttle = retry_after.to_vec();
    }

    /// Adds employees to organisation `i`.
    pub fn hire(&self, i: usize, more: Vec<FakeEmployee>) {
        self.state.lock().unwrap().orgs[i].employees.extend(more);
    }

    /// The calls made so far.
    pub fn calls(&self) -> Vec<String> {
        self.state.lock().unwrap().calls.clone()
    }
}

fn log(s: &S, what: String) {
    let mut st = s.lock().unwrap();
    st.calls.push(what);
    st.call_times.push(std::time::Instant::now());
}

fn problem(status: StatusCode, title: &str, detail: &str) -> Response {
    (
        status,
        Json(json!({"Type": null, "Title": title, "Status": status.as_u16(), "Detail": detail})),
    )
        .into_response()
}

fn form(raw: &[u8]) -> HashMap<String, String> {
    url::form_urlencoded::parse(raw).into_owned().collect()
}

fn client_ok(headers: &HeaderMap) -> bool {
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{CLIENT_ID}:{CLIENT_SECRET}"))
    );
    headers.get("authorization").and_then(|v| v.to_str().ok()) == Some(expected.as_str())
}

async fn authorize(State(s): State<S>, Query(q): Query<HashMap<String, String>>) -> Response {
    log(&s, "GET /identity/connect/authorize".into());
    let ok = q.get("client_id").map(String::as_str) == Some(CLIENT_ID)
        && q.get("response_type").map(String::as_str) == Some("code")
        && q.get("code_challenge_method").map(String::as_str) == Some("S256")
        && q.get("scope")
            .is_some_and(|s| s.contains("payroll.employees.read") && s.contains("offline_access"));
    if !ok {
        return problem(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "bad authorize request",
        );
    }
    let mut st = s.lock().unwrap();
    st.counter += 1;
    let code = format!("code-{}", st.counter);
    let redirect = q["redirect_uri"].clone();
    st.codes.insert(
        code.clone(),
        (q["code_challenge"].clone(), redirect.clone()),
    );
    let location = format!(
        "{redirect}?code={code}&scope=x&state={}",
        url::form_urlencoded::byte_serialize(q["state"].as_bytes()).collect::<String>()
    );
    (StatusCode::FOUND, [("location", location)]).into_response()
}

fn issue(st: &mut FakeState) -> Value {
    st.counter += 1;
    let access = format!("at-{}-{}", st.counter, crate::unique(""));
    let refresh = format!("rt-{}-{}", st.counter, crate::unique(""));
    st.access_tokens.insert(access.clone());
    st.refresh_tokens.insert(refresh.clone());
    st.issued_access.push(access.clone());
    st.issued_refresh.push(refresh.clone());
    json!({
        "id_token": "id",
        "access_token": access,
        "expires_in": 1800,
        "token_type": "Bearer",
        "refresh_token": refresh,
        "scope": "offline_access payroll.employees.read accounting.settings.read"
    })
}

async fn token(State(s): State<S>, headers: HeaderMap, RawForm(raw): RawForm) -> Response {
    let f = form(&raw);
    log(
        &s,
        format!(
            "POST /identity/connect/token {}",
            f.get("grant_type").cloned().unwrap_or_default()
        ),
    );
    if !client_ok(&headers) {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "invalid_client"})),
        )
            .into_response();
    }
    let mut st = s.lock().unwrap();
    let invalid = || {
        (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "invalid_grant"})),
        )
            .into_response()
    };
    match f.get("grant_type").map(String::as_str) {
        Some("authorization_code") => {
            let Some((challenge, redirect)) = f.get("code").and_then(|c| st.codes.remove(c)) else {
                return invalid();
            };
            let verifier = f.get("code_verifier").cloned().unwrap_or_default();
            let computed = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .encode(Sha256::digest(verifier.as_bytes()));
            if computed != challenge || f.get("redirect_uri") != Some(&redirect) {
                return invalid();
            }
            Json(issue(&mut st)).into_response()
        }
        Some("refresh_token") => {
            let rt = f.get("refresh_token").cloned().unwrap_or_default();
            if !st.refresh_tokens.remove(&rt) {
                return invalid();
            }
            Json(issue(&mut st)).into_response()
        }
        _ => (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "unsupported_grant_type"})),
        )
            .into_response(),
    }
}

async fn revoke(State(s): State<S>, headers: HeaderMap, RawForm(raw): RawForm) -> Response {
    log(&s, "POST /identity/connect/revocation".into());
    if !client_ok(&headers) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let f = form(&raw);
    let mut st = s.lock().unwrap();
    if let Some(t) = f.get("token") {
        st.revoked.push(t.clone());
        st.refresh_tokens.clear();
        st.access_tokens.clear();
    }
    StatusCode::OK.into_response()
}

/// Checks the bearer token (and the organisation when `org`); logs the call.
fn guard(
    s: &S,
    headers: &HeaderMap,
    what: String,
    org: bool,
) -> Result<Option<usize>, Box<Response>> {
    log(s, what);
    let st = s.lock().unwrap();
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if !st.access_tokens.contains(bearer) {
        return Err(Box::new(problem(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            "TokenExpired: token expired at 12/04/2026 03:00:00",
        )));
    }
    if !org {
        return Ok(None);
    }
    let id = headers
        .get("xero-tenant-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    match st.orgs.iter().position(|o| o.tenant_id == id) {
        Some(i) => Ok(Some(i)),
        None => Err(Box::new(problem(
            StatusCode::FORBIDDEN,
            "Forbidden",
            "AuthenticationUnsuccessful",
        ))),
    }
}

/// The `X-MinLimit-Remaining` and `X-DayLimit-Remaining` headers of a reply.
type RateHeaders = [(String, String); 2];

/// A 429 when one is due; else the rate headers to send.
fn limits(s: &S) -> Result<RateHeaders, Box<Response>> {
    let mut st = s.lock().unwrap();
    if !st.throttle.is_empty() {
        let wait = st.throttle.remove(0);
        return Err(Box::new(
            (
                StatusCode::TOO_MANY_REQUESTS,
                [
                    ("retry-after".to_string(), wait.to_string()),
                    ("x-rate-limit-problem".to_string(), "minute".to_string()),
                    ("x-minlimit-remaining".to_string(), "0".to_string()),
                ],
            )
                .into_response(),
        ));
    }
    Ok([
        ("x-minlimit-remaining".into(), st.min_remaining.to_string()),
        ("x-daylimit-remaining".into(), "4990".into()),
    ])
}

async fn connections(State(s): State<S>, headers: HeaderMap) -> Response {
    if let Err(r) = guard(&s, &headers, "GET /connections".into(), false) {
        return *r;
    }
    let st = s.lock().unwrap();
    let list: Vec<Value> = st
        .orgs
        .iter()
        .map(|o| {
            json!({
                "id": o.connection_id,
                "authEventId": "d99ecdfe-391d-43d2-b834-17636ba90e8d",
                "tenantId": o.tenant_id,
                "tenantType": "ORGANISATION",
                "tenantName": o.name,
                "createdDateUtc": "2026-12-04T03:00:00.0000000",
                "updatedDateUtc": "2026-12-04T03:00:00.0000000"
            })
        })
        .collect();
    Json(list).into_response()
}

async fn delete_connection(
    State(s): State<S>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if let Err(r) = guard(&s, &headers, format!("DELETE /connections/{id}"), false) {
        return *r;
    }
    s.lock().unwrap().deleted_connections.push(id);
    StatusCode::NO_CONTENT.into_response()
}

async fn organisation(State(s): State<S>, headers: HeaderMap) -> Response {
    let i = match guard(&s, &headers, "GET /api.xro/2.0/Organisation".into(), true) {
        Ok(i) => i.unwrap(),
        Err(r) => return *r,
    };
    let st = s.lock().unwrap();
    let o = &st.orgs[i];
    Json(json!({
        "Id": "8f2d0e3c-0000-4000-8000-000000000001",
        "Status": "OK",
        "ProviderName": "Userfeed tests",
        "DateTimeUTC": "/Date(1764817200000)/",
        "Organisations": [{
            "OrganisationID": o.tenant_id,
            "Name": o.name,
            "LegalName": o.name,
            "CountryCode": o.country,
            "BaseCurrency": "AUD",
            "OrganisationType": "COMPANY"
        }]
    }))
    .into_response()
}

fn page_of(q: &HashMap<String, String>) -> usize {
    q.get("page")
        .and_then(|p| p.parse().ok())
        .unwrap_or(1)
        .max(1)
}

fn ms_date(d: chrono::NaiveDate) -> String {
    let ms = d.and_hms_opt(0, 0, 0).unwrap().and_utc().timestamp_millis();
    format!("/Date({ms}+0000)/")
}

/// The checks every employees call makes: the token, the organisation, and
/// a 429 when one is due. Returns the organisation and the rate headers.
fn employees_call(
    s: &S,
    headers: &HeaderMap,
    what: String,
) -> Result<(usize, RateHeaders), Box<Response>> {
    let i = guard(s, headers, what, true)?.unwrap();
    Ok((i, limits(s)?))
}

async fn employees_au(
    State(s): State<S>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let page = page_of(&q);
    let (i, rate) = match employees_call(
        &s,
        &headers,
        format!("GET /payroll.xro/1.0/Employees?page={page}"),
    ) {
        Ok(ok) => ok,
        Err(r) => return *r,
    };
    let st = s.lock().unwrap();
    if st.orgs[i].country != "AU" {
        return problem(
            StatusCode::FORBIDDEN,
            "Forbidden",
            "the organisation has no AU payroll",
        );
    }
    let list: Vec<Value> = st.orgs[i]
        .employees
        .iter()
        .skip((page - 1) * 100)
        .take(100)
        .map(|e| {
            let mut v = json!({
                "EmployeeID": e.id,
                "FirstName": e.first,
                "LastName": e.last,
                "Status": if e.end.is_some() { "TERMINATED" } else { "ACTIVE" },
                "DateOfBirth": "/Date(572313600000+0000)/",
                "StartDate": "/Date(1547164800000+0000)/",
                "UpdatedDateUTC": "/Date(1572915814000+0000)/",
                "IsSTP2Qualified": false
            });
            // AU omits an absent email rather than sending null.
            if let Some(email) = &e.email {
                v["Email"] = json!(email);
            }
            if let Some(end) = e.end {
                v["TerminationDate"] = json!(ms_date(end));
            }
            v
        })
        .collect();
    (
        rate,
        Json(json!({
            "Id": "00000000-0000-0000-0000-000000000000",
            "Status": "OK",
            "ProviderName": "Userfeed tests",
            "DateTimeUTC": "/Date(1573621523465)/",
            "Employees": list
        })),
    )
        .into_response()
}

async fn employees_v2(
    State(s): State<S>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let page = page_of(&q);
    let (i, rate) = match employees_call(
        &s,
        &headers,
        format!("GET /payroll.xro/2.0/Employees?page={page}"),
    ) {
        Ok(ok) => ok,
        Err(r) => return *r,
    };
    let st = s.lock().unwrap();
    if !matches!(st.orgs[i].country.as_str(), "GB" | "NZ") {
        return problem(
            StatusCode::FORBIDDEN,
            "Forbidden",
            "the organisation has no payroll v2",
        );
    }
    let all = &st.orgs[i].employees;
    let list: Vec<Value> = all
        .iter()
        .skip((page - 1) * 100)
        .take(100)
        .map(|e| {
            json!({
                "employeeID": e.id,
                "title": "Mx",
                "firstName": e.first,
                "lastName": e.last,
                "dateOfBirth": "1987-12-23T00:00:00Z",
                "gender": "M",
                "email": e.email,
                "phoneNumber": null,
                "startDate": "2020-02-03T00:00:00",
                "endDate": e.end.map(|d| format!("{d}T00:00:00")),
                "payrollCalendarID": "216d80e6-af55-47b1-b718-9457c3f5d2fe",
                "updatedDateUTC": "2020-02-13T16:23:31",
                "createdDateUTC": "2020-02-10T10:00:24",
                "isOffPayrollWorker": false
            })
        })
        .collect();
    (
        rate,
        Json(json!({
            "id": "1a14e877-773d-4cd3-b253-f559a4b4be65",
            "providerName": "Userfeed tests",
            "dateTimeUTC": "2026-12-04T03:00:00.000000",
            "httpStatusCode": "OK",
            "pagination": {
                "page": page,
                "pageSize": 100,
                "pageCount": all.len().div_ceil(100).max(1),
                "itemCount": list.len()
            },
            "problem": null,
            "employees": list
        })),
    )
        .into_response()
}
