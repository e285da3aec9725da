//! Encryption of Xero tokens at rest: AES-256-GCM (aws-lc-rs, the crypto
//! library the AWS SDK and rustls already build) under `xero.token_key`.
//!
//! A stored token is `v1` ‖ a random 96-bit nonce ‖ ciphertext ‖ tag. The
//! associated data names the tenant and the token's kind, so a ciphertext
//! copied to another tenant's row, or from the access to the refresh
//! column, does not decrypt. Without the key the column is noise.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};

const VERSION: u8 = 1;

/// Why a token could not be sealed or opened.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    /// The key is not 32 bytes of hex.
    #[error(
        "xero.token_key must be 64 hexadecimal characters (32 bytes; e.g. `openssl rand -hex 32`)"
    )]
    BadKey,
    /// The ciphertext is not ours, was altered, or another key sealed it.
    #[error(
        "a stored Xero token cannot be decrypted with xero.token_key (was the key changed?); connect the tenant again"
    )]
    Unreadable,
}

/// Which token a ciphertext holds (part of the associated data).
#[derive(Debug, Clone, Copy)]
pub enum TokenKind {
    /// The long-lived refresh token.
    Refresh,
    /// The 30-minute access token.
    Access,
}

/// The key, ready to seal and open tokens.
pub struct Vault {
    key: LessSafeKey,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Vault(<key>)")
    }
}

impl Vault {
    /// A vault for the 64-hex-character `key`.
    pub fn new(key_hex: &str) -> Result<Self, VaultError> {
        let bytes = crate::validate::key_256(key_hex).ok_or(VaultError::BadKey)?;
        let key = UnboundKey::new(&AES_256_GCM, &bytes).map_err(|_| VaultError::BadKey)?;
        Ok(Vault {
            key: LessSafeKey::new(key),
        })
    }

    fn aad(tenant_id: i64, kind: TokenKind) -> String {
        format!("userfeed/xero/{tenant_id}/{kind:?}")
    }

    /// Encrypts `token` for `tenant_id`.
    pub fn seal(&self, tenant_id: i64, kind: TokenKind, token: &str) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).expect("the operating system's random source");
        let mut data = token.as_bytes().to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(Self::aad(tenant_id, kind).as_bytes()),
                &mut data,
            )
            .expect("AES-GCM sealing a short token cannot fail");
        let mut out = Vec::with_capacity(1 + NONCE_LEN + data.len());
        out.push(VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&data);
        out
    }

    /// Decrypts what [`seal`](Self::seal) made for `tenant_id`.
    pub fn open(
        &self,
        tenant_id: i64,
        kind: TokenKind,
        sealed: &[u8],
    ) -> Result<String, VaultError> {
        if sealed.len() < 1 + NONCE_LEN || sealed[0] != VERSION {
            return Err(VaultError::Unreadable);
        }
        let nonce = Nonce::try_assume_unique_for_key(&sealed[1..1 + NONCE_LEN])
            .map_err(|_| VaultError::Unreadable)?;
        let mut data = sealed[1 + NONCE_LEN..].to_vec();
        let plain = self
            .key
            .open_in_place(
                nonce,
                Aad::from(Self::aad(tenant_id, kind).as_bytes()),
                &mut data,
            )
            .map_err(|_| VaultError::Unreadable)?;
        String::from_utf8(plain.to_vec()).map_err(|_| VaultError::Unreadable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

    #[test]
    fn a_sealed_token_opens_only_for_its_tenant_kind_and_key() {
        let v = Vault::new(KEY).unwrap();
        let sealed = v.seal(7, TokenKind::Refresh, "rt-secret");
        assert!(!sealed.windows(9).any(|w| w == b"rt-secret"));
        assert_eq!(v.open(7, TokenKind::Refresh, &sealed).unwrap(), "rt-secret");
        assert!(v.open(8, TokenKind::Refresh, &sealed).is_err());
        assert!(v.open(7, TokenKind::Access, &sealed).is_err());
        let other = Vault::new(&KEY.replace("00", "ff")).unwrap();
        assert!(other.open(7, TokenKind::Refresh, &sealed).is_err());
        let mut altered = sealed.clone();
        *altered.last_mut().unwrap() ^= 1;
        assert!(v.open(7, TokenKind::Refresh, &altered).is_err());
        // A fresh nonce each time: the same token never seals the same way.
        assert_ne!(sealed, v.seal(7, TokenKind::Refresh, "rt-secret"));
    }

    #[test]
    fn a_key_that_is_not_32_bytes_of_hex_is_refused() {
        for bad in ["", "abcd", &KEY[..62], &format!("{}zz", &KEY[..62])] {
            assert!(matches!(Vault::new(bad), Err(VaultError::BadKey)), "{bad}");
        }
    }
}
