//! The screens' side of a session: the extractor that admits a signed-in
//! request (or sends it to sign in) and the check of a form's CSRF token,
//! each answering with a page.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::cookie::CookieJar;

use crate::web::session::{Session, current, same_secret};
use crate::web::state::WebState;

impl Session {
    /// Checks a form's `csrf` field against the session's; the error is
    /// the page that refuses the form.
    #[allow(clippy::result_large_err)]
    pub fn check_csrf(&self, sent: Option<&str>) -> Result<(), Response> {
        match sent {
            Some(s) if same_secret(s, &self.csrf) => Ok(()),
            _ => {
                tracing::warn!(token = %self.label, "admin screen form refused: missing or wrong CSRF token");
                Err(super::pages::error_page(
                    axum::http::StatusCode::FORBIDDEN,
                    "This form could not be accepted",
                    "It was not sent from this page, or the page is too old. Go back, reload the page and try again.",
                ))
            }
        }
    }
}

impl FromRequestParts<WebState> for Session {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, s: &WebState) -> Result<Self, Response> {
        let jar = CookieJar::from_headers(&parts.headers);
        match current(&s.db, &s.tokens, &s.session, &jar).await {
            // A session spends its token's requests: signing in is no way
            // around the token's limit.
            Ok(Some(session)) => {
                crate::web::guard::Guard::check(
                    s.limiter.as_deref(),
                    &session.label,
                    crate::telemetry::events::ApiRefusal::TokenRate,
                    &session.label,
                )?;
                Ok(session)
            }
            Ok(None) => Err(Redirect::to("/ui/sign-in").into_response()),
            Err(e) => {
                tracing::error!(error = %e, "reading an admin screen session failed");
                Err(super::pages::error_page(
                    axum::http::StatusCode::SERVICE_UNAVAILABLE,
                    "Userfeed is not answering",
                    "The database did not answer. Try again in a minute.",
                ))
            }
        }
    }
}
