//! The admin screens, server-rendered under `/ui` on the admin API's
//! listener (`docs/ui.md`). A customer's admin sets up the feed (sample
//! file, mapping, connection details and credentials), reads the upload
//! history with row problems and change logs, approves or rejects holds,
//! previews a file and undoes the newest upload; platform operators get an
//! overview of every tenant. The screens need no JavaScript and load
//! nothing from elsewhere.
//!
//! Like the API's handlers, these hold no business logic: each calls the
//! same [`crate::service`] function the API and the CLI call, as the
//! session's caller, so a tenant's admin reaches only their tenant.

// A handler answers with a page either way: its error is the error page,
// built once and moved once per request, so its size does not matter.
#![allow(clippy::result_large_err)]

mod extract;
pub mod pages;

use axum::extract::{Multipart, Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use axum_extra::extract::cookie::CookieJar;
use maud::{Markup, html};
use serde::Deserialize;

use super::state::WebState;
use crate::map::{Columns, Mapping, PLATFORM_FIELDS};
use crate::service::{self, Caller, ServiceError};
use crate::upload::UploadState;
use crate::web::session::{self, Session};
use pages::{layout, page};

/// The security headers of every screen: nothing but this origin's own
/// stylesheet may load, no page may be framed, nothing is sniffed or cached.
const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; \
                   frame-ancestors 'none'; base-uri 'none'";

/// Rows of problems and changes per page.
const PAGE: u64 = 50;

/// The screens' routes, to be nested under `/ui`.
pub fn router(state: WebState) -> Router {
    let upload_limit = state.files.limits.max_object_bytes;
    // A file form is the file plus a few fields.
    let file_body = axum::extract::DefaultBodyLimit::max(
        usize::try_from(upload_limit)
            .unwrap_or(usize::MAX)
            .saturating_add(64 * 1024),
    );
    Router::new()
        .route("/", get(home))
        .route("/static/app.css", get(css))
        .route("/sign-in", get(sign_in_form).post(sign_in))
        .route("/sign-out", post(sign_out))
        .route("/ops", get(ops))
        .route("/t/{slug}", get(history))
        .route(
            "/t/{slug}/start",
            get(start).post(start_sample).layer(file_body),
        )
        .route("/t/{slug}/mapping", get(mapping).post(save_mapping))
        .route("/t/{slug}/connection", get(connection))
        .route("/t/{slug}/credentials", post(credentials))
        .route(
            "/t/{slug}/preview",
            get(preview_form).post(preview).layer(file_body),
        )
        .route("/t/{slug}/uploads/{id}", get(upload))
        .route("/t/{slug}/uploads/{id}/problems.csv", get(problems_csv))
        .route("/t/{slug}/uploads/{id}/approve", post(approve))
        .route("/t/{slug}/uploads/{id}/reject", post(reject))
        .route("/t/{slug}/uploads/{id}/undo", get(undo_confirm).post(undo))
        .fallback(|| async {
            pages::error_page(
                StatusCode::NOT_FOUND,
                "Not found",
                "There is no such page, or it is not one you can see.",
            )
        })
        .layer(middleware::from_fn(security_headers))
        .with_state(state)
}

async fn security_headers(req: axum::extract::Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    h.insert("content-security-policy", HeaderValue::from_static(CSP));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert("referrer-policy", HeaderValue::from_static("same-origin"));
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    res
}

/// A service error as a page with the status the API would give.
fn failed(e: ServiceError) -> Response {
    let p = crate::web::Problem::from(e);
    let status = StatusCode::from_u16(p.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let title = match status {
        StatusCode::NOT_FOUND => "Not found",
        StatusCode::CONFLICT => "Not done",
        StatusCode::UNPROCESSABLE_ENTITY => "That did not work",
        StatusCode::FORBIDDEN => "Not allowed",
        _ => "Userfeed is not answering",
    };
    pages::error_page(status, title, &p.detail)
}

type Page = Result<Response, Response>;

async fn css() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        pages::CSS,
    )
        .into_response()
}

async fn home(session: Result<Session, Response>) -> Response {
    match session {
        Ok(s) => Redirect::to(&s.home()).into_response(),
        Err(_) => Redirect::to("/ui/sign-in").into_response(),
    }
}

async fn sign_in_form(State(s): State<WebState>, jar: CookieJar) -> Response {
    let csrf = session::random_hex();
    let jar = jar.add(s.session.cookie(session::SIGN_IN_COOKIE, csrf.clone()));
    (jar, page(StatusCode::OK, pages::sign_in(&csrf, None))).into_response()
}

#[derive(Deserialize)]
struct SignIn {
    token: String,
    csrf: String,
}

async fn sign_in(State(s): State<WebState>, jar: CookieJar, Form(f): Form<SignIn>) -> Response {
    let expected = jar
        .get(session::SIGN_IN_COOKIE)
        .map(|c| c.value().to_string());
    let again = |status, why: &str| {
        let csrf = session::random_hex();
        let jar = jar
            .clone()
            .add(s.session.cookie(session::SIGN_IN_COOKIE, csrf.clone()));
        (jar, page(status, pages::sign_in(&csrf, Some(why)))).into_response()
    };
    if !expected.is_some_and(|e| session::same_secret(&e, &f.csrf)) {
        return again(
            StatusCode::FORBIDDEN,
            "The sign-in form was too old or not sent from this page. Try again.",
        );
    }
    let Some(token) = s.tokens.verify(f.token.trim()).cloned() else {
        tracing::warn!("admin screen sign-in with a token that is not valid");
        return again(StatusCode::UNAUTHORIZED, "That token is not valid.");
    };
    match session::open(&s.db, &token, &s.session).await {
        Ok(secret) => {
            tracing::info!(audit = true, token = %token.label, "signed in to the admin screens");
            let jar = jar
                .remove(s.session.cookie(session::SIGN_IN_COOKIE, String::new()))
                .add(s.session.cookie(session::COOKIE, secret));
            let home = match &token.caller {
                Caller::Platform => "/ui/ops".to_string(),
                Caller::Tenant(slug) => format!("/ui/t/{slug}"),
            };
            (jar, Redirect::to(&home)).into_response()
        }
        Err(e) => failed(ServiceError::Db(e)),
    }
}

#[derive(Deserialize)]
struct CsrfOnly {
    csrf: Option<String>,
}

async fn sign_out(
    State(s): State<WebState>,
    session: Session,
    jar: CookieJar,
    Form(f): Form<CsrfOnly>,
) -> Page {
    session.check_csrf(f.csrf.as_deref())?;
    session::close(&s.db, &session)
        .await
        .map_err(|e| failed(e.into()))?;
    tracing::info!(audit = true, token = %session.label, "signed out of the admin screens");
    let jar = jar.remove(s.session.cookie(session::COOKIE, String::new()));
    Ok((jar, Redirect::to("/ui/sign-in")).into_response())
}

/// The tenant page's slug, refused (as not found) when the session does not
/// reach it.
fn reach(session: &Session, slug: &str) -> Result<(), Response> {
    if session.caller.reaches(slug) {
        Ok(())
    } else {
        Err(failed(ServiceError::NotFound(format!(
            "no tenant named {slug:?}"
        ))))
    }
}

async fn ops(State(s): State<WebState>, session: Session) -> Page {
    let o = service::overview(&s.db, &session.caller)
        .await
        .map_err(failed)?;
    let q = &o.queue;
    let body = html! {
        h2 { "Backlog" }
        dl.facts {
            dt { "Queued" } dd { (q.queued) }
            dt { "Running" } dd { (q.running) }
            dt { "Oldest queued" } dd { (format_seconds(q.oldest_queued_age_s)) }
            dt { "Held for approval" } dd { (q.held) }
            dt { "Oldest held" } dd { (format_seconds(q.oldest_held_age_s)) }
        }
        h2 { "Tenants" }
        table {
            thead { tr {
                th scope="col" { "Tenant" }
                th scope="col" { "Last upload" }
                th scope="col" { "State" }
                th scope="col" { "Received" }
                th scope="col" { "Reason" }
            } }
            tbody {
                @for t in &o.tenants {
                    tr {
                        th scope="row" { a href={"/ui/t/" (t.slug)} { (t.slug) } }
                        @match &t.last_upload {
                            Some(u) => {
                                td { a href={"/ui/t/" (t.slug) "/uploads/" (u.id)} { "#" (u.id) " " (pages::file_name(u)) } }
                                td { (pages::state(&u.state)) }
                                td { (pages::ago(u.queued_at)) }
                                td { (pages::reason(u)) }
                            }
                            None => {
                                td colspan="4" { "No uploads yet" }
                            }
                        }
                    }
                }
            }
        }
        h2 { "Failed and held, across tenants" }
        @if o.attention.is_empty() {
            p { "Nothing failed or held." }
        } @else {
            table {
                thead { tr {
                    th scope="col" { "Upload" }
                    th scope="col" { "Tenant" }
                    th scope="col" { "State" }
                    th scope="col" { "Finished" }
                    th scope="col" { "Reason" }
                } }
                tbody {
                    @for a in &o.attention {
                        tr {
                            td { a href={"/ui/t/" (a.slug) "/uploads/" (a.upload.id)} { "#" (a.upload.id) } }
                            td { (a.slug) }
                            td { (pages::state(&a.upload.state)) }
                            td { (pages::when(a.upload.finished_at)) }
                            td { (pages::reason(&a.upload)) }
                        }
                    }
                }
            }
        }
    };
    Ok(page(
        StatusCode::OK,
        layout("All tenants", Some(&session), None, body),
    ))
}

fn format_seconds(s: f64) -> String {
    match s as i64 {
        0 => "—".into(),
        s @ 1..120 => format!("{s} s"),
        s @ 120..7200 => format!("{} min", s / 60),
        s => format!("{} h", s / 3600),
    }
}

#[derive(Deserialize)]
struct HistoryQuery {
    before: Option<i64>,
    done: Option<String>,
}

async fn history(
    State(s): State<WebState>,
    session: Session,
    Path(slug): Path<String>,
    Query(q): Query<HistoryQuery>,
) -> Page {
    reach(&session, &slug)?;
    let filter = crate::report::UploadFilter {
        before: q.before,
        ..Default::default()
    };
    let ups = service::uploads_page(&s.db, &session.caller, &slug, &filter, PAGE)
        .await
        .map_err(failed)?;
    // The undo link goes on the newest upload, when it applied (the service
    // refuses any other, with the reason, on the confirmation page).
    let newest = service::uploads(&s.db, &session.caller, &slug, 1)
        .await
        .map_err(failed)?;
    let undoable = newest
        .first()
        .filter(|u| u.state == UploadState::Succeeded)
        .map(|u| u.id);
    let body = html! {
        @if let Some(d) = &q.done { (pages::notice(d)) }
        @if ups.is_empty() && q.before.is_none() {
            p { "No uploads yet. When a file arrives it is listed here with what it did." }
            p { a href={"/ui/t/" (slug) "/start"} { "Set up the feed" } }
        } @else {
            table {
                caption.visually-hidden { "Uploads, newest first" }
                thead { tr {
                    th scope="col" { "Upload" }
                    th scope="col" { "File" }
                    th scope="col" { "State" }
                    th scope="col" { "Received" }
                    th scope="col" { "Finished" }
                    @for h in pages::COUNTS { th.num scope="col" { (h) } }
                    th scope="col" { "Reason" }
                    th scope="col" { span.visually-hidden { "Actions" } }
                } }
                tbody {
                    @for u in &ups {
                        tr {
                            td { a href={"/ui/t/" (slug) "/uploads/" (u.id)} { "#" (u.id) } }
                            td.mono { (pages::file_name(u)) }
                            td { (pages::state(&u.state)) }
                            td { (pages::when(Some(u.queued_at))) }
                            td { (pages::when(u.finished_at)) }
                            @for n in pages::counts(u) { td.num { (n) } }
                            td { (pages::reason(u)) }
                            td {
                                @if Some(u.id) == undoable {
                                    a href={"/ui/t/" (slug) "/uploads/" (u.id) "/undo"} { "Undo…" }
                                }
                            }
                        }
                    }
                }
            }
            @if ups.len() as u64 == PAGE {
                @if let Some(last) = ups.last() {
                    p.pager { a href={"/ui/t/" (slug) "?before=" (last.id)} { "Older uploads" } }
                }
            }
        }
    };
    Ok(page(
        StatusCode::OK,
        layout(
            &format!("Upload history of {slug}"),
            Some(&session),
            Some(&slug),
            body,
        ),
    ))
}

async fn start(State(s): State<WebState>, session: Session, Path(slug): Path<String>) -> Page {
    reach(&session, &slug)?;
    service::tenant(&s.db, &session.caller, &slug)
        .await
        .map_err(failed)?;
    Ok(page(
        StatusCode::OK,
        layout(
            "Get started",
            Some(&session),
            Some(&slug),
            file_form(
                &session,
                &format!("/ui/t/{slug}/start"),
                "Upload a sample of your HR export. It is only read to set up the mapping: nothing is applied.",
                "Sample file (CSV)",
                "Upload sample",
            ),
        ),
    ))
}

fn file_form(session: &Session, action: &str, intro: &str, label: &str, button: &str) -> Markup {
    html! {
        p { (intro) }
        form method="post" action=(action) enctype="multipart/form-data" {
            input type="hidden" name="csrf" value=(session.csrf);
            label for="file" { (label) }
            input #file type="file" name="file" accept=".csv,text/csv" required;
            div { button type="submit" { (button) } }
        }
    }
}

/// Reads a file form: its CSRF token first (checked before the file is
/// read), then the file, spooled to disk under `limits.max_object_bytes`.
async fn read_file_form(
    s: &WebState,
    session: &Session,
    mut form: Multipart,
) -> Result<crate::web::spool::Spooled, Response> {
    let bad = |why: String| {
        pages::error_page(StatusCode::BAD_REQUEST, "The form could not be read", &why)
    };
    let mut csrf = None;
    while let Some(field) = form.next_field().await.map_err(|e| bad(e.body_text()))? {
        match field.name() {
            Some("csrf") => csrf = Some(field.text().await.map_err(|e| bad(e.body_text()))?),
            Some("file") => {
                session.check_csrf(csrf.as_deref())?;
                return crate::web::spool::spool_stream(
                    &s.files,
                    field,
                    s.files.limits.max_object_bytes,
                )
                .await
                .map_err(|p| {
                    let status = StatusCode::from_u16(p.status).unwrap_or(StatusCode::BAD_REQUEST);
                    pages::error_page(status, "The file was not accepted", &p.detail)
                });
            }
            _ => {}
        }
    }
    session.check_csrf(csrf.as_deref())?;
    Err(bad("no file was chosen".into()))
}

async fn start_sample(
    State(s): State<WebState>,
    session: Session,
    Path(slug): Path<String>,
    form: Multipart,
) -> Page {
    reach(&session, &slug)?;
    let t = service::tenant(&s.db, &session.caller, &slug)
        .await
        .map_err(failed)?;
    let file = read_file_form(&s, &session, form).await?;
    let suggested = service::suggest_mapping(&file.path).await.map_err(failed)?;
    let profile: Vec<String> = t.profile_fields.keys().cloned().collect();
    let mut mapping = suggested.mapping.clone();
    // A custom field is pre-selected when a column has its name.
    for key in &profile {
        if let Some(c) = suggested
            .columns
            .iter()
            .find(|c| crate::map::tools::same_name(c, key))
        {
            mapping.profile.insert(key.clone(), c.clone());
        }
    }
    Ok(page(
        StatusCode::OK,
        mapping_page(
            &session,
            &slug,
            &MappingForm {
                columns: &suggested.columns,
                mapping: &mapping,
                profile: &profile,
                sample: &suggested.sample,
                problem: None,
            },
        ),
    ))
}

struct MappingForm<'a> {
    columns: &'a [String],
    mapping: &'a Mapping,
    profile: &'a [String],
    sample: &'a [Vec<String>],
    problem: Option<&'a str>,
}

fn select(name: &str, id: &str, columns: &[String], chosen: Option<&str>) -> Markup {
    html! {
        select id=(id) name=(name) {
            option value="" selected[chosen.is_none()] { "(not in the file)" }
            @for c in columns {
                option value=(c) selected[chosen == Some(c.as_str())] { (c) }
            }
        }
    }
}

fn mapping_page(session: &Session, slug: &str, f: &MappingForm) -> Markup {
    let body = html! {
        @if let Some(p) = f.problem { p.problem role="alert" { (p) } }
        p { "Pick the column of your file that holds each platform field. The choices were guessed from the column names; check them against the file's first rows." }
        @if !f.sample.is_empty() {
            h2 { "The file's first rows" }
            table {
                thead { tr { @for c in f.columns { th scope="col" { (c) } } } }
                tbody {
                    @for row in f.sample {
                        tr { @for v in row { td { (v) } } }
                    }
                }
            }
        }
        form method="post" action={"/ui/t/" (slug) "/mapping"} {
            input type="hidden" name="csrf" value=(session.csrf);
            @for c in f.columns { input type="hidden" name="column" value=(c); }
            fieldset {
                legend { "Platform fields" }
                @for (key, label) in PLATFORM_FIELDS {
                    div.field {
                        label for={"f-" (key)} { (label) }
                        (select(key, &format!("f-{key}"), f.columns, f.mapping.columns.get(key)))
                    }
                }
            }
            @if !f.profile.is_empty() {
                fieldset {
                    legend { "Custom profile fields" }
                    @for key in f.profile {
                        div.field {
                            label for={"p-" (key)} { (key) }
                            (select(&format!("profile.{key}"), &format!("p-{key}"), f.columns,
                                f.mapping.profile.get(key).map(String::as_str)))
                        }
                    }
                }
            }
            button type="submit" { "Save mapping" }
        }
    };
    layout("Map your columns", Some(session), Some(slug), body)
}

async fn mapping(State(s): State<WebState>, session: Session, Path(slug): Path<String>) -> Page {
    reach(&session, &slug)?;
    let t = service::tenant(&s.db, &session.caller, &slug)
        .await
        .map_err(failed)?;
    let body = html! {
        @match &t.mapping {
            None => {
                p { "No mapping yet. " a href={"/ui/t/" (slug) "/start"} { "Upload a sample file" } " to set one up." }
            }
            Some(m) => {
                p { "Files are read with this mapping. To change it, " a href={"/ui/t/" (slug) "/start"} { "upload a sample file" } " and pick the columns again." }
                table {
                    thead { tr { th scope="col" { "Platform field" } th scope="col" { "Column in the file" } } }
                    tbody {
                        @for (key, label) in PLATFORM_FIELDS {
                            tr { th scope="row" { (label) } td { (m.columns.get(key).unwrap_or("(not in the file)")) } }
                        }
                        @for (key, col) in &m.profile {
                            tr { th scope="row" { (key) } td { (col) } }
                        }
                    }
                }
            }
        }
    };
    Ok(page(
        StatusCode::OK,
        layout("Mapping", Some(&session), Some(&slug), body),
    ))
}

async fn save_mapping(
    State(s): State<WebState>,
    session: Session,
    Path(slug): Path<String>,
    Form(fields): Form<Vec<(String, String)>>,
) -> Page {
    reach(&session, &slug)?;
    let get = |k: &str| fields.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    session.check_csrf(get("csrf"))?;
    let columns: Vec<String> = fields
        .iter()
        .filter(|(n, _)| n == "column")
        .map(|(_, v)| v.clone())
        .collect();
    let mut mapping = Mapping {
        columns: Columns::default(),
        profile: Default::default(),
    };
    for (key, _) in PLATFORM_FIELDS {
        if let (Some(v), Some(slot)) = (
            get(key).filter(|v| !v.is_empty()),
            mapping.columns.slot(key),
        ) {
            *slot = Some(v.to_string());
        }
    }
    for (name, v) in &fields {
        if let Some(key) = name.strip_prefix("profile.")
            && !v.is_empty()
        {
            mapping.profile.insert(key.to_string(), v.clone());
        }
    }
    match service::set_mapping(&s.db, &session.caller, &slug, &mapping).await {
        Ok(_) => {
            tracing::info!(audit = true, token = %session.label, tenant = %slug, "mapping saved from the admin screens");
            Ok(Redirect::to(&format!("/ui/t/{slug}/connection?saved=1")).into_response())
        }
        Err(ServiceError::Invalid(why)) => {
            let t = service::tenant(&s.db, &session.caller, &slug)
                .await
                .map_err(failed)?;
            let profile: Vec<String> = t.profile_fields.keys().cloned().collect();
            Ok(page(
                StatusCode::UNPROCESSABLE_ENTITY,
                mapping_page(
                    &session,
                    &slug,
                    &MappingForm {
                        columns: &columns,
                        mapping: &mapping,
                        profile: &profile,
                        sample: &[],
                        problem: Some(&why),
                    },
                ),
            ))
        }
        Err(e) => Err(failed(e)),
    }
}

#[derive(Deserialize)]
struct ConnectionQuery {
    saved: Option<String>,
}

async fn connection(
    State(s): State<WebState>,
    session: Session,
    Path(slug): Path<String>,
    Query(q): Query<ConnectionQuery>,
) -> Page {
    reach(&session, &slug)?;
    let c = service::connection(&s.db, &session.caller, &slug, &s.credentials.region)
        .await
        .map_err(failed)?;
    let active = c.keys.iter().any(|k| k.state == "active");
    let action = format!("/ui/t/{slug}/credentials");
    let body = html! {
        @if q.saved.is_some() { (pages::notice("Mapping saved. Files dropped from now on are read with it.")) }
        @if c.bucket.is_empty() {
            p { "This tenant's files arrive in the drop folder, not in S3; there is nothing to connect to." }
        } @else {
            dl.facts {
                dt { "Bucket" } dd.mono { (c.bucket) }
                dt { "Prefix" } dd.mono { (c.prefix) }
                dt { "Region" } dd.mono { (c.region) }
                dt { "Upload command" } dd { code { (c.upload_command) } }
            }
            p.hint { "The key can only upload into your prefix: listing the bucket or reading files answers \"Access Denied\", as it should." }
            h2 { "Access keys" }
            @if c.keys.is_empty() {
                p { "No access key yet." }
            } @else {
                table {
                    thead { tr {
                        th scope="col" { "Access key ID" }
                        th scope="col" { "State" }
                        th scope="col" { "Created" }
                        th scope="col" { "Stops working" }
                    } }
                    tbody {
                        @for k in &c.keys {
                            tr {
                                td.mono { (k.access_key_id) }
                                td { (k.state) }
                                td { (pages::when(Some(k.created_at))) }
                                td { (pages::when(k.retire_at.or(k.deleted_at))) }
                            }
                        }
                    }
                }
            }
            form method="post" action=(action) {
                input type="hidden" name="csrf" value=(session.csrf);
                @if active {
                    button type="submit" name="action" value="rotate" { "Rotate key" }
                    " "
                    button.danger type="submit" name="action" value="revoke" { "Revoke all keys" }
                } @else {
                    button type="submit" name="action" value="create" { "Create upload credentials" }
                }
            }
        }
    };
    Ok(page(
        StatusCode::OK,
        layout("Connection details", Some(&session), Some(&slug), body),
    ))
}

#[derive(Deserialize)]
struct CredentialsForm {
    csrf: Option<String>,
    action: String,
}

async fn credentials(
    State(s): State<WebState>,
    session: Session,
    Path(slug): Path<String>,
    Form(f): Form<CredentialsForm>,
) -> Page {
    reach(&session, &slug)?;
    session.check_csrf(f.csrf.as_deref())?;
    let iam = s.credentials.iam.as_ref();
    let caller = &session.caller;
    let key = match f.action.as_str() {
        "create" => service::create_credentials(&s.db, iam, caller, &slug).await,
        "rotate" => {
            service::rotate_credentials(&s.db, iam, caller, &slug, s.credentials.grace).await
        }
        "revoke" => {
            let r = service::revoke_credentials(&s.db, iam, caller, &slug)
                .await
                .map_err(failed)?;
            let body = html! {
                (pages::notice(&format!("Deleted {} key(s). Uploads with them are refused from now on.", r.access_key_ids.len())))
                p { a href={"/ui/t/" (slug) "/connection"} { "Back to the connection details" } }
            };
            return Ok(page(
                StatusCode::OK,
                layout("Keys revoked", Some(&session), Some(&slug), body),
            ));
        }
        _ => {
            return Err(pages::error_page(
                StatusCode::BAD_REQUEST,
                "Unknown action",
                "Use the buttons on the connection details page.",
            ));
        }
    }
    .map_err(failed)?;
    let body = html! {
        div.secret role="alert" {
            p { strong { "Copy the secret access key now." } " It is shown this once and not stored; if it is lost, rotate the key." }
        }
        dl.facts {
            dt { "Access key ID" } dd.mono #access-key-id { (key.access_key_id) }
            dt { "Secret access key" } dd.mono #secret-access-key { (key.secret_access_key.expose()) }
            dt { "Bucket and prefix" } dd.mono { "s3://" (key.bucket) "/" (key.prefix) }
            dt { "Region" } dd.mono { (key.region) }
            dt { "Upload command" } dd { code { (key.upload_command) } }
        }
        @if let Some(r) = &key.retiring {
            p { "The previous key " code { (r.access_key_id) } " keeps working until " (pages::when(Some(r.retire_at))) ", then it is deleted." }
        }
        p { a href={"/ui/t/" (slug) "/connection"} { "Done: back to the connection details" } }
    };
    Ok(page(
        StatusCode::OK,
        layout("Your upload key", Some(&session), Some(&slug), body),
    ))
}

#[derive(Deserialize)]
struct UploadQuery {
    problems_after: Option<String>,
    changes_after: Option<String>,
    done: Option<String>,
}

/// The upload `id` of tenant `slug` (others are not found, whatever the
/// caller reaches, so a page never shows another tenant's upload under
/// this tenant's name).
async fn tenant_upload(
    s: &WebState,
    session: &Session,
    slug: &str,
    id: i64,
) -> Result<crate::report::UploadDetail, Response> {
    reach(session, slug)?;
    let d = service::upload(&s.db, &session.caller, id, 0)
        .await
        .map_err(failed)?;
    if d.tenant != slug {
        return Err(failed(ServiceError::NotFound(format!("no upload {id}"))));
    }
    Ok(d)
}

async fn upload(
    State(s): State<WebState>,
    session: Session,
    Path((slug, id)): Path<(String, i64)>,
    Query(q): Query<UploadQuery>,
) -> Page {
    let d = tenant_upload(&s, &session, &slug, id).await?;
    let p_after = cursor::<crate::report::ProblemCursor>(q.problems_after.as_deref())?;
    let c_after = cursor::<crate::report::ChangeCursor>(q.changes_after.as_deref())?;
    let problems = service::problems_page(&s.db, &session.caller, id, p_after, PAGE)
        .await
        .map_err(failed)?;
    let (changes, next_change) = service::changes_page(&s.db, &session.caller, id, c_after, PAGE)
        .await
        .map_err(failed)?;
    let u = &d.upload;
    let base = format!("/ui/t/{slug}/uploads/{id}");
    let held = u.state == UploadState::Held && u.hold_resolution.is_none();
    let body = html! {
        @if let Some(done) = &q.done { (pages::notice(done)) }
        dl.facts {
            dt { "File" } dd.mono { (u.object_key) }
            dt { "State" } dd { (pages::state(&u.state)) }
            dt { "Received" } dd { (pages::when(Some(u.queued_at))) }
            dt { "Started" } dd { (pages::when(u.started_at)) }
            dt { "Finished" } dd { (pages::when(u.finished_at)) }
            @let reason = pages::reason(u);
            @if !reason.is_empty() { dt { "Reason" } dd { (reason) } }
        }
        table {
            caption.visually-hidden { "Counts" }
            thead { tr { @for h in pages::COUNTS { th.num scope="col" { (h) } } } }
            tbody { tr { @for n in pages::counts(u) { td.num { (n) } } } }
        }
        @if held {
            section aria-labelledby="hold" {
                h2 #hold { "Held for approval" }
                p { (u.held_deactivations) " users would be deactivated. Approve to deactivate them, or reject to keep them active; the rest of the file has been applied." }
                (pages::button_form(&session, &format!("{base}/approve"), "Approve deactivations", ""))
                (pages::button_form(&session, &format!("{base}/reject"), "Reject deactivations", "secondary"))
            }
        }
        h2 { "Row problems" }
        @if u.row_problems_dropped > 0 {
            p.hint { (u.row_problems_dropped) " more problems were found but not kept." }
        }
        (pages::problems_table(&problems))
        p.pager {
            a href={(base) "/problems.csv"} download { "Download all row problems (CSV)" }
            @if problems.len() as u64 == PAGE {
                @if let Some(l) = problems.last() {
                    " · "
                    a href={(base) "?problems_after=" (l.line) "-" (l.id)} { "More problems" }
                }
            }
        }
        h2 { "What it changed" }
        (pages::changes_table(&changes))
        @if let Some(c) = next_change {
            p.pager { a href={(base) "?changes_after=" (c)} { "More changes" } }
        }
    };
    Ok(page(
        StatusCode::OK,
        layout(&format!("Upload #{id}"), Some(&session), Some(&slug), body),
    ))
}

/// A page cursor from the query, refused (422) when it is not one this
/// page gave out.
fn cursor<C: std::str::FromStr<Err = String>>(c: Option<&str>) -> Result<Option<C>, Response> {
    c.map(str::parse)
        .transpose()
        .map_err(|e| failed(ServiceError::Invalid(e)))
}

async fn problems_csv(
    State(s): State<WebState>,
    session: Session,
    Path((slug, id)): Path<(String, i64)>,
) -> Page {
    tenant_upload(&s, &session, &slug, id).await?;
    let all = service::problems_page(&s.db, &session.caller, id, None, u64::MAX)
        .await
        .map_err(failed)?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"upload-{id}-problems.csv\""),
            ),
        ],
        crate::report::problems_csv(&all),
    )
        .into_response())
}

async fn approve(
    State(s): State<WebState>,
    session: Session,
    Path((slug, id)): Path<(String, i64)>,
    Form(f): Form<CsrfOnly>,
) -> Page {
    resolve_hold(&s, &session, &slug, id, f, true).await
}

async fn reject(
    State(s): State<WebState>,
    session: Session,
    Path((slug, id)): Path<(String, i64)>,
    Form(f): Form<CsrfOnly>,
) -> Page {
    resolve_hold(&s, &session, &slug, id, f, false).await
}

/// Approves or rejects a held upload's deactivations, then shows the
/// upload with what was done.
async fn resolve_hold(
    s: &WebState,
    session: &Session,
    slug: &str,
    id: i64,
    f: CsrfOnly,
    approve: bool,
) -> Page {
    session.check_csrf(f.csrf.as_deref())?;
    tenant_upload(s, session, slug, id).await?;
    let (r, done) = if approve {
        let r = service::approve(&s.db, &session.caller, id).await;
        (r, "Approved: {} users deactivated.")
    } else {
        let r = service::reject(&s.db, &session.caller, id).await;
        (r, "Rejected: {} users stay active.")
    };
    let r = r.map_err(failed)?;
    tracing::info!(audit = true, token = %session.label, upload = id, approve, "hold resolved from the admin screens");
    Ok(done_redirect(
        slug,
        id,
        &done.replace("{}", &r.deactivations.to_string()),
    ))
}

fn done_redirect(slug: &str, id: i64, message: &str) -> Response {
    let q: String = url_encode(message);
    Redirect::to(&format!("/ui/t/{slug}/uploads/{id}?done={q}")).into_response()
}

fn url_encode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

async fn undo_confirm(
    State(s): State<WebState>,
    session: Session,
    Path((slug, id)): Path<(String, i64)>,
) -> Page {
    tenant_upload(&s, &session, &slug, id).await?;
    let body = match service::undo(&s.db, &session.caller, id, true).await {
        Ok(r) => html! {
            p { "Undoing upload #" (id) " would do this. Nothing has changed yet." }
            (undo_summary(&r))
            form method="post" action={"/ui/t/" (slug) "/uploads/" (id) "/undo"} {
                input type="hidden" name="csrf" value=(session.csrf);
                button.danger type="submit" { "Undo upload #" (id) }
                " "
                a href={"/ui/t/" (slug) "/uploads/" (id)} { "Cancel" }
            }
        },
        Err(ServiceError::Refused(why)) => html! {
            p.problem role="alert" { (why) }
            p { a href={"/ui/t/" (slug)} { "Back to the history" } }
        },
        Err(e) => return Err(failed(e)),
    };
    Ok(page(
        StatusCode::OK,
        layout(
            &format!("Undo upload #{id}?"),
            Some(&session),
            Some(&slug),
            body,
        ),
    ))
}

fn undo_summary(r: &crate::apply::undo::UndoReport) -> Markup {
    html! {
        dl.facts {
            dt { "Made inactive" } dd { (r.deactivated.len()) }
            dt { "Made active again" } dd { (r.reactivated.len()) }
            dt { "Fields put back" } dd { (r.updated.len()) }
            dt { "Links restored" } dd { (r.links_restored) }
            dt { "Left alone" } dd { (r.left_alone.len()) }
        }
        @if !r.left_alone.is_empty() {
            h2 { "Left alone" }
            ul {
                @for l in &r.left_alone { li { (l.email) ", " (l.field) ": " (l.reason) } }
            }
        }
    }
}

async fn undo(
    State(s): State<WebState>,
    session: Session,
    Path((slug, id)): Path<(String, i64)>,
    Form(f): Form<CsrfOnly>,
) -> Page {
    session.check_csrf(f.csrf.as_deref())?;
    tenant_upload(&s, &session, &slug, id).await?;
    let r = service::undo(&s.db, &session.caller, id, false)
        .await
        .map_err(failed)?;
    tracing::info!(audit = true, token = %session.label, upload = id, "upload undone from the admin screens");
    let shown = r.undo_id.unwrap_or(id);
    Ok(done_redirect(
        &slug,
        shown,
        &format!("Upload #{id} was undone."),
    ))
}

async fn preview_form(
    State(s): State<WebState>,
    session: Session,
    Path(slug): Path<String>,
) -> Page {
    reach(&session, &slug)?;
    service::tenant(&s.db, &session.caller, &slug)
        .await
        .map_err(failed)?;
    Ok(page(
        StatusCode::OK,
        layout(
            "Preview a file",
            Some(&session),
            Some(&slug),
            file_form(
                &session,
                &format!("/ui/t/{slug}/preview"),
                "See what a file would do before you drop it: nothing changes.",
                "File to preview (CSV)",
                "Preview",
            ),
        ),
    ))
}

async fn preview(
    State(s): State<WebState>,
    session: Session,
    Path(slug): Path<String>,
    form: Multipart,
) -> Page {
    reach(&session, &slug)?;
    service::tenant(&s.db, &session.caller, &slug)
        .await
        .map_err(failed)?;
    let file = read_file_form(&s, &session, form).await?;
    let r = service::preview(
        &s.db,
        &session.caller,
        &slug,
        &file.path,
        s.files.batch_size,
        s.files.limits,
    )
    .await
    .map_err(failed)?;
    let p = &r.progress;
    let body = html! {
        (pages::notice("Nothing has changed: this is what the file would do."))
        table {
            caption.visually-hidden { "Counts" }
            thead { tr { @for h in pages::COUNTS { th.num scope="col" { (h) } } } }
            tbody { tr {
                @for n in [p.rows_read, p.created, p.updated, p.unchanged, p.deactivated, p.rejected] {
                    td.num { (n) }
                }
            } }
        }
        @if let Some(h) = &r.held {
            p.problem role="alert" { "It would be held for approval: " (h.reason) }
        }
        h2 { "Row problems" }
        (pages::problems_table(&r.problems))
        h2 { "What it would change" }
        (pages::changes_table(&r.changes))
    };
    Ok(page(
        StatusCode::OK,
        layout("Preview", Some(&session), Some(&slug), body),
    ))
}
