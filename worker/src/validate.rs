//! Leaf validators: the syntax of values that configuration and the domain
//! both check (a tenant slug, a 256-bit key; webhook URLs are `outbound`'s). They import
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

/// The longest text of each kind a request may carry. The OpenAPI schema
/// states the same numbers (`maxLength`), which a test holds equal to these.
pub mod max {
    /// A CSV column name in a mapping.
    pub const COLUMN: usize = 255;
    /// A custom profile field's key.
    pub const PROFILE_KEY: usize = 64;
    /// A group's ID, as files name it.
    pub const GROUP_ID: usize = 255;
    /// A group's name.
    pub const GROUP_NAME: usize = 255;
    /// An S3 bucket name (S3's own limit).
    pub const BUCKET: usize = 63;
    /// An S3 key prefix.
    pub const PREFIX: usize = 512;
    /// A webhook URL.
    pub const URL: usize = 2048;
    /// A token typed into the sign-in form.
    pub const TOKEN: usize = 256;
}

/// What is wrong with one text field of a request, naming the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TextProblem {
    /// Longer than its kind allows.
    #[error("{field} is longer than {max} characters")]
    TooLong {
        /// The field, as the request names it.
        field: String,
        /// Its maximum length.
        max: usize,
    },
    /// Carries a NUL, a line break or another control character.
    #[error(
        "{field} contains a control character (such as NUL or a line break), which is not allowed"
    )]
    Control {
        /// The field, as the request names it.
        field: String,
    },
}

/// Checks one single-line text field: at most `max` characters and no
/// control characters. The database would refuse a NUL with an error that
/// says nothing to the caller; this says which field.
pub fn text(field: &str, value: &str, max: usize) -> Result<(), TextProblem> {
    if value.chars().any(char::is_control) {
        return Err(TextProblem::Control {
            field: field.to_string(),
        });
    }
    if value.chars().count() > max {
        return Err(TextProblem::TooLong {
            field: field.to_string(),
            max,
        });
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
    fn text_fields_refuse_control_characters_and_excess_length_naming_the_field() {
        assert!(text("name", "Sales – EMEA", 20).is_ok());
        assert_eq!(
            text("name", "a\u{0}b", 20).unwrap_err().to_string(),
            "name contains a control character (such as NUL or a line break), which is not allowed"
        );
        assert!(text("name", "a\nb", 20).is_err());
        assert_eq!(
            text("columns.email", &"é".repeat(21), 20).unwrap_err(),
            TextProblem::TooLong {
                field: "columns.email".into(),
                max: 20
            }
        );
        assert!(
            text("x", &"é".repeat(20), 20).is_ok(),
            "characters, not bytes"
        );
    }

    #[test]
    fn keys_are_exactly_32_bytes_of_hex() {
        assert!(key_256(&"00".repeat(32)).is_some());
        assert!(key_256(&format!("{}\n", "ab".repeat(32))).is_some());
        assert!(key_256(&"00".repeat(31)).is_none());
        assert!(key_256(&"zz".repeat(32)).is_none());
    }
}
