//! The middleware the admin API and the screens share: the request
//! deadline, bearer-token authentication, the per-token rate limit and the
//! audit line of every change.

use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::problem::Problem;
use super::state::WebState;

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

/// Admits a request with a known bearer token; the handlers see its
/// [`Token`]. Changes are logged with the token's label (the audit trail).
pub async fn authenticate(State(s): State<WebState>, mut req: Request, next: Next) -> Response {
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let Some(token) = presented.and_then(|p| s.tokens.verify(p)).cloned() else {
        let why = if presented.is_some() {
            "the bearer token is not valid"
        } else {
            "an Authorization: Bearer token is required"
        };
        return Problem::new(StatusCode::UNAUTHORIZED, "unauthorized", why).into_response();
    };
    if let Some(limiter) = &s.limiter
        && let Err(wait) = limiter.check_key(&token.label)
    {
        use governor::clock::{Clock, DefaultClock};
        let secs = wait
            .wait_time_from(DefaultClock::default().now())
            .as_secs_f64()
            .ceil()
            .max(1.0) as u64;
        tracing::warn!(token = %token.label, retry_after_s = secs, "admin API rate limit reached");
        let mut res = Problem::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate-limited",
            format!("too many requests with this token; try again in {secs} s"),
        )
        .into_response();
        res.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        return res;
    }
    let changes = req.method() != axum::http::Method::GET;
    let (method, path) = (req.method().clone(), req.uri().path().to_string());
    req.extensions_mut().insert(token.clone());
    let res = next.run(req).await;
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
