//! Signing in with a token, and signing out.

use super::*;
use crate::listen::ClientAddr;
use crate::telemetry::events::{self, ApiRefusal};
use crate::web::guard::Guard;
use axum::Extension;

pub(super) async fn sign_in_form(State(s): State<WebState>, jar: CookieJar) -> Response {
    let csrf = session::random_hex();
    let jar = jar.add(s.session.cookie(session::SIGN_IN_COOKIE, csrf.clone()));
    (jar, page(StatusCode::OK, pages::sign_in(&csrf, None))).into_response()
}

#[derive(Deserialize)]
pub(super) struct SignIn {
    token: String,
    csrf: String,
}

pub(super) async fn sign_in(
    State(s): State<WebState>,
    client: Option<Extension<ClientAddr>>,
    jar: CookieJar,
    Form(f): Form<SignIn>,
) -> Response {
    let client = client.map(|c| c.0);
    if let Err(refused) =
        Guard::check_address(s.guard.sign_in.as_deref(), client, ApiRefusal::SignInRate)
    {
        return refused;
    }
    let expected = jar
        .get(&s.session.cookie_name(session::SIGN_IN_COOKIE))
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
    let token = (f.token.len() <= crate::validate::max::TOKEN)
        .then(|| s.tokens.verify(f.token.trim()).cloned())
        .flatten();
    let Some(token) = token else {
        let who = client.map_or_else(String::new, |c| c.0.to_string());
        events::api_refused(ApiRefusal::SignInFailed, &who);
        return again(StatusCode::UNAUTHORIZED, "That token is not valid.");
    };
    match session::open(&s.db, &token, &s.session, s.guard.sessions_per_token).await {
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

pub(super) async fn sign_out(
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
