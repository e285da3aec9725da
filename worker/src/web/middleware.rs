//! The middleware the admin API and the screens share: the request
//! deadline, bearer-token authentication, the per-token rate limit and the
//! audit line of every change.

use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::guard::Guard;
use super::problem::Problem;
use super::state::WebState;
use crate::listen::ClientAddr;
use crate::telemetry::events::ApiRefusal;

/// Answers 503 `#timeout` when the request takes longer than `limit`.
pub async fn deadline(limit: Duration, req: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(res) => res,
        Err(_) => Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "timeout",
            format!("the request took longer than {} s", limit.as_secs()),
        )
        .into_response(),
    }
}

/// Answers 404 for a path that, once percent-decoded, holds a control
/// character or is longer than 2,048 characters: no slug, key or id has
/// one, and the database would refuse a NUL with an error that tells the
/// caller nothing. (Query values are each checked by their own parser: a
/// cursor, a state, a file name.)
pub async fn plain_path(req: Request, next: Next) -> Response {
    let path = req.uri().path();
    let decoded = percent_encoding::percent_decode_str(path).collect::<Vec<u8>>();
    let control = decoded.iter().any(u8::is_ascii_control)
        || String::from_utf8_lossy(&decoded)
            .chars()
            .any(char::is_control);
    if control || path.len() > crate::validate::max::URL {
        return Problem::new(
            StatusCode::NOT_FOUND,
            "not-found",
            "no such resource: the path holds a control character or is too long",
        )
        .into_response();
    }
    next.run(req).await
}

/// Admits a request with a known bearer token; the handlers see its
/// [`Token`]. Changes are logged with the token's label (the audit trail).
pub async fn authenticate(State(s): State<WebState>, mut req: Request, next: Next) -> Response {
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    // A token longer than any token is not hashed: it is simply wrong.
    let presented = presented.filter(|p| p.len() <= crate::validate::max::TOKEN);
    let Some(token) = presented.and_then(|p| s.tokens.verify(p)).cloned() else {
        // Guessing tokens is limited per client address.
        if let Err(refused) = Guard::check_address(
            s.guard.per_address.as_deref(),
            req.extensions().get::<ClientAddr>().copied(),
            ApiRefusal::AddressRate,
        ) {
            return refused;
        }
        let why = if presented.is_some() {
            "the bearer token is not valid"
        } else {
            "an Authorization: Bearer token is required"
        };
        return Problem::new(StatusCode::UNAUTHORIZED, "unauthorized", why).into_response();
    };
    if let Err(refused) = Guard::check(
        s.limiter.as_deref(),
        &token.label,
        ApiRefusal::TokenRate,
        &token.label,
    ) {
        return refused;
    }
    let changes = req.method() != axum::http::Method::GET;
    // The path as the client sent it: under `nest` the request's own URI
    // has lost its `/api/v1`.
    let path = req
        .extensions()
        .get::<axum::extract::OriginalUri>()
        .map_or_else(|| req.uri().path().to_string(), |u| u.path().to_string());
    let method = req.method().clone();
    req.extensions_mut().insert(token.clone());
    let mut res = next.run(req).await;
    // Answers carry tenants' data and, for webhooks and credentials,
    // secrets: no cache along the way may keep them.
    if !res.headers().contains_key(header::CACHE_CONTROL) {
        res.headers_mut().insert(
            header::CACHE_CONTROL,
            axum::http::HeaderValue::from_static("no-store"),
        );
    }
    if changes {
        tracing::info!(
            audit = true,
            token = %token.label,
            %method,
            path,
            status = res.status().as_u16(),
            "admin API change"
        );
    }
    res
}
