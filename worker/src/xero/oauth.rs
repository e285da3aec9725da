//! The OAuth 2.0 authorization-code flow with PKCE (RFC 7636), as Xero
//! documents it for apps that cannot keep a browser session: a random
//! `state` and code verifier per attempt, the S256 challenge in the
//! authorize URL, and the callback received on the redirect URI's port.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::client::{SCOPES, XeroError};
use crate::config::XeroConfig;

/// One attempt's secrets: the code verifier and the `state`.
pub struct Pending {
    /// The PKCE code verifier (43 base64url characters from 32 random bytes).
    pub verifier: String,
    /// The `state` the callback must carry back.
    pub state: String,
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pending(<redacted>)")
    }
}

fn random_b64(n: usize) -> String {
    let mut b = vec![0u8; n];
    getrandom::fill(&mut b).expect("the operating system's random source");
    URL_SAFE_NO_PAD.encode(b)
}

/// The S256 challenge of `verifier`.
pub fn challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

impl Pending {
    /// Fresh secrets.
    pub fn new() -> Pending {
        Pending {
            verifier: random_b64(32),
            state: random_b64(24),
        }
    }

    /// The URL the admin opens to let Userfeed read the organisation.
    pub fn authorize_url(&self, cfg: &XeroConfig) -> String {
        let mut u = url::Url::parse(&cfg.authorize_url).expect("validated at load");
        u.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", &cfg.client_id)
            .append_pair("redirect_uri", &cfg.redirect_uri)
            .append_pair("scope", SCOPES)
            .append_pair("state", &self.state)
            .append_pair("code_challenge", &challenge(&self.verifier))
            .append_pair("code_challenge_method", "S256");
        u.to_string()
    }

    /// The authorization code from a callback's query, once its `state`
    /// is this attempt's.
    pub fn code_from(&self, query: &str) -> Result<String, XeroError> {
        let pairs: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect();
        let get = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        let state_ok =
            get("state").is_some_and(|s| bool::from(s.as_bytes().ct_eq(self.state.as_bytes())));
        if !state_ok {
            return Err(XeroError::Authorization(
                "the callback's state does not match this attempt; start again".into(),
            ));
        }
        if let Some(err) = get("error") {
            let err: String = err.chars().take(100).collect();
            return Err(XeroError::Authorization(format!(
                "Xero answered {err:?} (was access declined?)"
            )));
        }
        get("code")
            .filter(|c| !c.is_empty())
            .map(str::to_string)
            .ok_or_else(|| XeroError::Authorization("the callback carries no code".into()))
    }
}

impl Default for Pending {
    fn default() -> Self {
        Self::new()
    }
}

/// Listens on the loopback port of `cfg.redirect_uri` until a callback for
/// `pending` arrives (or `wait` passes), answers the browser, and returns
/// the authorization code. Requests to other paths get 404; a callback
/// with the wrong `state` is refused and waited past.
pub async fn receive_code(
    cfg: &XeroConfig,
    pending: &Pending,
    listener: tokio::net::TcpListener,
    wait: Duration,
) -> Result<String, XeroError> {
    use axum::extract::RawQuery;
    use axum::response::Html;
    let path = url::Url::parse(&cfg.redirect_uri)
        .map(|u| u.path().to_string())
        .unwrap_or_else(|_| "/callback".into());
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<String, XeroError>>(1);
    let state = std::sync::Arc::new((pending.state.clone(), pending.verifier.clone()));
    let app = axum::Router::new().route(
        &path,
        axum::routing::get(move |RawQuery(q): RawQuery| {
            let tx = tx.clone();
            let state = state.clone();
            async move {
                let p = Pending {
                    state: state.0.clone(),
                    verifier: state.1.clone(),
                };
                match p.code_from(q.as_deref().unwrap_or("")) {
                    Ok(code) => {
                        let _ = tx.send(Ok(code)).await;
                        Html("<p>Userfeed received Xero's answer. You can close this window.</p>")
                    }
                    Err(e @ XeroError::Authorization(_))
                        if q.as_deref().is_some_and(|q| q.contains("error=")) =>
                    {
                        let _ = tx.send(Err(e)).await;
                        Html("<p>Xero did not grant access. You can close this window.</p>")
                    }
                    Err(_) => Html("<p>This is not the answer Userfeed is waiting for.</p>"),
                }
            }
        }),
    );
    let stop = tokio_util::sync::CancellationToken::new();
    let server = tokio::spawn({
        let stop = stop.clone();
        async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(stop.cancelled_owned())
                .await;
        }
    });
    let got = tokio::time::timeout(wait, rx.recv()).await;
    stop.cancel();
    let _ = server.await;
    match got {
        Ok(Some(r)) => r,
        _ => Err(XeroError::Authorization(format!(
            "no answer from Xero within {} s",
            wait.as_secs()
        ))),
    }
}

/// Binds the loopback port of `cfg.redirect_uri`.
pub async fn listen(cfg: &XeroConfig) -> Result<tokio::net::TcpListener, XeroError> {
    let u = url::Url::parse(&cfg.redirect_uri)
        .map_err(|e| XeroError::NotConfigured(format!("xero.redirect_uri: {e}")))?;
    let port = u.port_or_known_default().unwrap_or(80);
    tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .map_err(|e| {
            XeroError::NotConfigured(format!(
                "cannot listen on 127.0.0.1:{port} for xero.redirect_uri: {e}"
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pkce_challenge_is_rfc_7636s_s256() {
        // RFC 7636, appendix B.
        assert_eq!(
            challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        let p = Pending::new();
        assert_eq!(p.verifier.len(), 43);
        assert_ne!(p.verifier, Pending::new().verifier);
    }

    #[test]
    fn a_callback_gives_its_code_only_with_this_attempts_state() {
        let p = Pending::new();
        let ok = format!("code=abc&state={}", p.state);
        assert_eq!(p.code_from(&ok).unwrap(), "abc");
        assert!(p.code_from("code=abc&state=forged").is_err());
        assert!(p.code_from("code=abc").is_err());
        let denied = format!("error=access_denied&state={}", p.state);
        assert!(
            p.code_from(&denied)
                .unwrap_err()
                .to_string()
                .contains("access_denied")
        );
    }
}
