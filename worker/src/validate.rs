//! Leaf validators: the syntax of values that configuration and the domain
//! both check (a tenant slug, a webhook URL, a 256-bit key). They import
//! nothing of the crate, so `config` can use them without importing the
//! modules that own the values.

/// Whether `slug` is a tenant slug: 1 to 63 lowercase letters, digits and
/// dashes, not starting with a dash (it names S3 prefixes, folders and
/// URLs).
pub fn is_valid_slug(slug: &str) -> bool {
    !slug.is_empty()
        && slug.len() <= 63
        && slug
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !slug.starts_with('-')
}

/// Whether `url` may be a webhook URL: absolute `https://` (or `http://`
/// with `allow_http`), with a host, no credentials.
pub fn webhook_url(url: &str, allow_http: bool) -> Result<(), String> {
    let parsed = url::Url::parse(url).map_err(|e| format!("{url:?} is not a URL: {e}"))?;
    match parsed.scheme() {
        "https" => {}
        "http" if allow_http => {}
        "http" => return Err("must be https:// (notify.allow_http permits http://)".into()),
        other => return Err(format!("scheme {other:?} is not https")),
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(format!("{url:?} has no host"));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err("must not carry credentials; the signature authenticates".into());
    }
    Ok(())
}

/// A 256-bit key given as 64 hexadecimal characters (surrounding white
/// space allowed, as secret files end in a newline).
pub fn key_256(hex_key: &str) -> Option<[u8; 32]> {
    hex::decode(hex_key.trim()).ok()?.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_are_lowercase_words_with_dashes() {
        for ok in ["acme", "a-1", "x"] {
            assert!(is_valid_slug(ok), "{ok}");
        }
        for bad in ["", "-a", "Acme", "a_b", "a/b", &"a".repeat(64)] {
            assert!(!is_valid_slug(bad), "{bad}");
        }
    }

    #[test]
    fn webhook_urls_are_https_with_a_host_and_no_credentials() {
        assert!(webhook_url("https://hooks.example.com/userfeed", false).is_ok());
        assert!(webhook_url("http://hooks.example.com/x", false).is_err());
        assert!(webhook_url("http://127.0.0.1:9000/x", true).is_ok());
        assert!(webhook_url("https://user:pw@example.com/", false).is_err());
        assert!(webhook_url("ftp://example.com/", true).is_err());
        assert!(webhook_url("not a url", true).is_err());
    }

    #[test]
    fn keys_are_exactly_32_bytes_of_hex() {
        assert!(key_256(&"00".repeat(32)).is_some());
        assert!(key_256(&format!("{}\n", "ab".repeat(32))).is_some());
        assert!(key_256(&"00".repeat(31)).is_none());
        assert!(key_256(&"zz".repeat(32)).is_none());
    }
}
