//! Bearer tokens of the admin API.
//!
//! Tokens are random (32 bytes, hex) and kept only as their SHA-256 in a
//! token file (`api.tokens_file`, typically a mounted secret), each with a
//! label for the audit log and a scope: the platform, or one tenant. A
//! presented token is hashed and compared with every stored hash in
//! constant time; the token itself is never stored, logged or echoed.

use std::path::Path;

use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::service::Caller;

/// One configured token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    /// Who holds it, for audit lines (`ops`, `acme-admin`).
    pub label: String,
    /// What it reaches.
    pub caller: Caller,
    sha256: [u8; 32],
}

/// The configured tokens.
#[derive(Debug, Clone, Default)]
pub struct Tokens(Vec<Token>);

/// A token file that cannot be used; the message names the entry.
#[derive(Debug, thiserror::Error)]
pub enum TokenFileError {
    /// Unreadable.
    #[error("reading the API token file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// Not the documented format.
    #[error("the API token file {path} is not valid: {message}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong (never a token or hash).
        message: String,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    token: Vec<Entry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    label: String,
    scope: String,
    sha256: String,
}

impl Tokens {
    /// Reads a token file:
    ///
    /// ```toml
    /// [[token]]
    /// label = "ops"
    /// scope = "platform"          # or "tenant:acme"
    /// sha256 = "<64 hex digits>"  # from `userfeed api token`
    /// ```
    pub fn from_file(path: &Path) -> Result<Self, TokenFileError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| TokenFileError::Read {
            path: shown.clone(),
            source,
        })?;
        Self::parse(&text).map_err(|message| TokenFileError::Invalid {
            path: shown,
            message,
        })
    }

    /// Parses the token file's text (see [`Tokens::from_file`]).
    pub fn parse(text: &str) -> Result<Self, String> {
        // toml's message quotes the offending line, which would be a hash:
        // keep only its first line, which names the key.
        let file: File = toml::from_str(text)
            .map_err(|e| e.message().lines().next().unwrap_or("not TOML").to_string())?;
        let mut out = Vec::new();
        for (i, e) in file.token.into_iter().enumerate() {
            let n = i + 1;
            if e.label.trim().is_empty() {
                return Err(format!("token #{n} has an empty label"));
            }
            let caller = parse_scope(&e.scope).ok_or_else(|| {
                format!(
                    "token {:?}: scope must be \"platform\" or \"tenant:<slug>\"",
                    e.label
                )
            })?;
            let bytes = hex::decode(e.sha256.trim())
                .ok()
                .and_then(|b| <[u8; 32]>::try_from(b).ok())
                .ok_or_else(|| format!("token {:?}: sha256 must be 64 hex digits", e.label))?;
            if out.iter().any(|t: &Token| t.label == e.label) {
                return Err(format!("token {:?} is listed twice", e.label));
            }
            out.push(Token {
                label: e.label,
                caller,
                sha256: bytes,
            });
        }
        Ok(Tokens(out))
    }

    /// Whether no token is configured (the API is then off).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The token `presented` matches, if any. Every stored hash is compared,
    /// in constant time, whatever matches first.
    pub fn verify(&self, presented: &str) -> Option<&Token> {
        let hash: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        let mut found = None;
        for t in &self.0 {
            if bool::from(t.sha256.ct_eq(&hash)) {
                found = Some(t);
            }
        }
        found
    }

    /// The token whose SHA-256 is `sha256_hex` (a session's token), if it
    /// is still configured; compared in constant time like [`Tokens::verify`].
    pub fn by_hash(&self, sha256_hex: &str) -> Option<&Token> {
        let hash = hex::decode(sha256_hex).ok()?;
        let mut found = None;
        for t in &self.0 {
            if bool::from(t.sha256.as_slice().ct_eq(&hash)) {
                found = Some(t);
            }
        }
        found
    }
}

impl Token {
    /// The token's SHA-256, hex: how a session names its token without
    /// holding it.
    pub fn sha256_hex(&self) -> String {
        hex::encode(self.sha256)
    }
}

fn parse_scope(scope: &str) -> Option<Caller> {
    match scope.trim() {
        "platform" => Some(Caller::Platform),
        s => s
            .strip_prefix("tenant:")
            .filter(|slug| crate::validate::is_valid_slug(slug))
            .map(|slug| Caller::Tenant(slug.to_string())),
    }
}

/// A new random token and the token-file entry that admits it.
pub fn new_token(label: &str, caller: &Caller) -> Result<(String, String), getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    let token = format!("uf_{}", hex::encode(bytes));
    let scope = match caller {
        Caller::Platform => "platform".to_string(),
        Caller::Tenant(slug) => format!("tenant:{slug}"),
    };
    let entry = format!(
        "[[token]]\nlabel = {label:?}\nscope = {scope:?}\nsha256 = \"{}\"\n",
        hex::encode(Sha256::digest(token.as_bytes()))
    );
    Ok((token, entry))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_token_is_admitted_by_its_entry_with_its_scope_and_no_other_token_is() {
        let (ops, ops_entry) = new_token("ops", &Caller::Platform).unwrap();
        let (acme, acme_entry) = new_token("acme-admin", &Caller::Tenant("acme".into())).unwrap();
        assert!(
            !ops_entry.contains(&ops),
            "the entry holds the hash, not the token"
        );
        let tokens = Tokens::parse(&format!("{ops_entry}\n{acme_entry}")).unwrap();
        assert_eq!(tokens.verify(&ops).unwrap().caller, Caller::Platform);
        let t = tokens.verify(&acme).unwrap();
        assert_eq!(
            (t.label.as_str(), &t.caller),
            ("acme-admin", &Caller::Tenant("acme".into()))
        );
        assert!(tokens.verify("uf_wrong").is_none());
        assert!(tokens.verify(&format!("{ops}x")).is_none());
        assert!(tokens.verify("").is_none());
    }

    #[test]
    fn a_bad_token_file_says_which_entry_and_never_shows_a_hash() {
        let hash = "ab".repeat(32);
        for (text, expect) in [
            (
                format!("[[token]]\nlabel = \"x\"\nscope = \"everyone\"\nsha256 = \"{hash}\"\n"),
                "scope",
            ),
            (
                "[[token]]\nlabel = \"x\"\nscope = \"platform\"\nsha256 = \"abc\"\n".to_string(),
                "64 hex",
            ),
            (
                format!("[[token]]\nlabel = \"\"\nscope = \"platform\"\nsha256 = \"{hash}\"\n"),
                "empty label",
            ),
            (
                format!(
                    "[[token]]\nlabel = \"x\"\nscope = \"platform\"\nsha256 = \"{hash}\"\nextra = 1\n"
                ),
                "extra",
            ),
        ] {
            let err = Tokens::parse(&text).unwrap_err();
            assert!(err.contains(expect), "{err}");
            assert!(!err.contains(&hash), "{err}");
        }
    }
}
