//! The web layer: the admin API (`/api/v1`, [`api`]) and the admin screens
//! (`/ui`, [`ui`]) on one listener (`api.bind`), with what they share: the
//! state ([`state`]), the error shape and its statuses ([`problem`]),
//! tokens ([`auth`]) and screen sessions ([`session`]), and the middleware
//! for deadlines, authentication, rate limits and the audit trail
//! ([`middleware`]). `api` and `ui` sit side by side and import nothing from
//! each other; both call [`crate::service`] for everything they do.

use axum::Router;
use axum::routing::get;
use tokio_util::sync::CancellationToken;

pub mod api;
pub mod auth;
pub mod guard;
pub mod middleware;
pub mod problem;
pub mod session;
pub mod spool;
pub mod state;
pub mod ui;

pub use problem::Problem;
pub use state::{CredentialsState, RateLimiter, WebState, rate_limiter};

/// Every route of the listener: the API, the screens, and `/` leading to
/// the screens.
pub fn router(state: WebState) -> Router {
    api::router(state.clone())
        // The screens set their own limits (file forms take a file).
        .nest("/ui", ui::router(state))
        // `/ui` is the screens' start; `/` and `/ui/` lead there.
        .route("/", get(|| async { axum::response::Redirect::to("/ui") }))
        .route(
            "/ui/",
            get(|| async { axum::response::Redirect::to("/ui") }),
        )
        .layer(axum::middleware::from_fn(middleware::plain_path))
}

/// Serves the API and the screens on `listener` until `stop` fires.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: WebState,
    stop: CancellationToken,
) -> std::io::Result<()> {
    let hygiene = state.guard.hygiene;
    crate::listen::serve(listener, router(state), hygiene, stop).await
}
