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

mod connection;
mod deliver;
mod extract;
mod history;
mod mapping;
mod ops;
pub mod pages;
mod preview;
mod sign_in;
mod start;
mod undo;
mod upload;

use connection::*;
use deliver::*;
use history::*;
use mapping::*;
use ops::*;
use preview::*;
use sign_in::*;
use start::*;
use undo::*;
use upload::*;

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
        .route(
            "/t/{slug}/files",
            get(deliver_form).post(deliver).layer(file_body),
        )
        .route("/t/{slug}/connection", get(connection))
        .route("/t/{slug}/credentials", post(credentials))
        .route(
            "/t/{slug}/preview",
            get(preview_form).post(preview).layer(file_body),
        )
        .route("/t/{slug}/uploads/{id}", get(upload))
        .route("/t/{slug}/uploads/{id}/problems.csv", get(problems_csv))
        .route("/t/{slug}/uploads/{id}/held.csv", get(held_csv))
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

#[derive(Deserialize)]
struct CsrfOnly {
    csrf: Option<String>,
}

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
    form: Multipart,
) -> Result<crate::web::spool::Spooled, Response> {
    read_named_file_form(s, session, form).await.map(|(f, _)| f)
}

/// [`read_file_form`], with the name the file had on the person's computer.
async fn read_named_file_form(
    s: &WebState,
    session: &Session,
    mut form: Multipart,
) -> Result<(crate::web::spool::Spooled, Option<String>), Response> {
    let bad = |why: String| {
        pages::error_page(StatusCode::BAD_REQUEST, "The form could not be read", &why)
    };
    let mut csrf = None;
    while let Some(field) = form.next_field().await.map_err(|e| bad(e.body_text()))? {
        match field.name() {
            Some("csrf") => csrf = Some(field.text().await.map_err(|e| bad(e.body_text()))?),
            Some("file") => {
                session.check_csrf(csrf.as_deref())?;
                let name = field.file_name().map(str::to_string);
                return crate::web::spool::spool_stream(
                    &s.files,
                    field,
                    s.files.limits.max_object_bytes,
                )
                .await
                .map(|f| (f, name))
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
