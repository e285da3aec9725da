//! The feed's customer-facing row messages and role names: their one home.
//!
//! The portable store renders these messages in Rust and the PostgreSQL
//! store's set-based statements carry them as SQL expressions. `build.rs`
//! writes those expressions from the definitions below, so both stores say
//! exactly the same thing. This file is also compiled into `build.rs`
//! (`#[path]`), which is why it uses `std` only.

/// A row message: a template whose `{}` takes a value as it is (a line
/// number) and whose `{:?}` takes a value quoted (a cell's text, quoted as
/// Rust's `Debug` and PostgreSQL's `to_json(..)::text` both quote it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Message(pub &'static str);

/// A row that would create a user but has no email.
pub const EMAIL_REQUIRED: Message = Message("email is required to create a user");
/// A row asking for an email another user of the tenant has.
pub const EMAIL_TAKEN: Message = Message("email {:?} already belongs to another user");
/// A row asking for an external ID another user of the tenant has.
pub const EXTERNAL_ID_TAKEN: Message = Message("external ID {:?} already belongs to another user");
/// A row repeating the key of an earlier line of the file.
pub const DUPLICATE_ROW: Message =
    Message("duplicate of line {}: the same person appears twice; this row was skipped");
/// A manager cell naming nobody of the tenant.
pub const UNKNOWN_MANAGER: Message =
    Message("manager {:?} is not a user of this tenant; that link was skipped");
/// A row naming its own person as manager.
pub const SELF_MANAGER: Message =
    Message("a user cannot be their own manager; that link was skipped");
/// A group cell naming no group of the tenant.
pub const UNKNOWN_GROUP: Message =
    Message("group {:?} is not a group of this tenant; membership skipped");
/// A roles cell naming no role.
pub const UNKNOWN_ROLE: Message =
    Message("unknown role {:?}; expected Learner, Manager or Administrator");

/// A row with another number of fields than the header. Takes the row's
/// count, then the header's.
pub const FIELD_COUNT: Message = Message("row has {} fields but the header has {}");
/// A cell holding a NUL byte. Takes the column's number.
pub const NUL_BYTE: Message = Message(
    "column {} contains a NUL byte, which text cannot hold; is the file damaged or exported as binary?",
);
/// A row with no email, where the tenant matches on external ID.
pub const EMAIL_MISSING: Message = Message("email is missing");
/// An email cell that is not an address.
pub const EMAIL_INVALID: Message = Message("email {:?} is not a valid address");
/// An empty status cell.
pub const STATUS_EMPTY: Message = Message("status is empty; use 1/Active or 0/Inactive");
/// A status cell that is no status.
pub const STATUS_UNKNOWN: Message = Message("status {:?} is not 1, Active, 0 or Inactive");
/// A number field's cell that is no number.
pub const NOT_A_NUMBER: Message = Message("{:?} is not a number");
/// A date field's cell that is no date.
pub const NOT_A_DATE: Message = Message("{:?} is not a date in the form YYYY-MM-DD");
/// A boolean field's cell that is no boolean.
pub const NOT_A_BOOLEAN: Message = Message("{:?} is not true/false, yes/no or 1/0");
/// A profile value that was skipped. Takes why, the field and its type.
pub const PROFILE_LEFT_UNCHANGED: Message = Message("{}; profile field {} ({}) was left unchanged");

/// A row of an additive upload (a Xero import) naming a user who exists:
/// an import only creates users, so that user is left exactly as it is.
/// Takes the email.
pub const ALREADY_PRESENT: Message =
    Message("{:?} is already a user of this tenant; an import leaves existing users unchanged");

/// Why a Xero employee is not imported (`xero::plan`); the placeholder
/// takes the detail. Each message follows "Xero employee <name> <email>: ".
pub const XERO_LEFT: Message = Message("has left{}; not imported");
/// See [`XERO_LEFT`].
pub const XERO_NO_EMAIL: Message =
    Message("has no email address in Xero; add one in Xero to import them");
/// See [`XERO_LEFT`].
pub const XERO_INVALID_EMAIL: Message = Message("email {:?} is not a valid address; not imported");
/// See [`XERO_LEFT`].
pub const XERO_DUPLICATE_EMAIL: Message =
    Message("has the same email as {}; only the first is imported");
/// See [`XERO_LEFT`].
pub const XERO_OVER_CAP: Message =
    Message("importing them would pass the limit of {} users imported from Xero; not imported");

/// An undo leaving a field alone: someone changed it after the upload.
/// Takes the user's email, the field and the upload.
pub const UNDO_CHANGED_SINCE: Message =
    Message("{:?}: {} was changed after upload {}; left as it is");
/// An undo leaving an email or external ID alone: another user has the
/// old value now. Takes the user's email, the field and the old value.
pub const UNDO_VALUE_TAKEN: Message =
    Message("{:?}: {} cannot go back to {:?}, another user has it now; left as it is");

/// Every row message, by the name `build.rs` accepts in `.sql` files.
pub const MESSAGES: [(&str, Message); 9] = [
    ("EMAIL_REQUIRED", EMAIL_REQUIRED),
    ("EMAIL_TAKEN", EMAIL_TAKEN),
    ("EXTERNAL_ID_TAKEN", EXTERNAL_ID_TAKEN),
    ("DUPLICATE_ROW", DUPLICATE_ROW),
    ("UNKNOWN_MANAGER", UNKNOWN_MANAGER),
    ("SELF_MANAGER", SELF_MANAGER),
    ("UNKNOWN_GROUP", UNKNOWN_GROUP),
    ("UNKNOWN_ROLE", UNKNOWN_ROLE),
    ("ALREADY_PRESENT", ALREADY_PRESENT),
];

/// One piece of a message template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Piece<'a> {
    /// Text as written.
    Text(&'a str),
    /// A value as it is (`{}`).
    Plain,
    /// A value quoted (`{:?}`).
    Quoted,
}

impl Message {
    /// The template's pieces, in order.
    pub fn pieces(self) -> Vec<Piece<'static>> {
        let mut out = Vec::new();
        let mut rest = self.0;
        while let Some(at) = rest.find('{') {
            let (plain, quoted) = (rest[at..].starts_with("{}"), rest[at..].starts_with("{:?}"));
            if !plain && !quoted {
                panic!(
                    "message {:?}: only {{}} and {{:?}} are placeholders",
                    self.0
                );
            }
            if at > 0 {
                out.push(Piece::Text(&rest[..at]));
            }
            out.push(if plain { Piece::Plain } else { Piece::Quoted });
            rest = &rest[at + if plain { 2 } else { 4 }..];
        }
        if !rest.is_empty() {
            out.push(Piece::Text(rest));
        }
        out
    }

    /// The message with `args` in its placeholders, in order.
    pub fn render(self, args: &[&str]) -> String {
        let mut args = args.iter();
        let mut out = String::with_capacity(self.0.len() + 16);
        for piece in self.pieces() {
            let mut arg = || {
                *args
                    .next()
                    .unwrap_or_else(|| panic!("{:?}: too few values", self.0))
            };
            match piece {
                Piece::Text(t) => out.push_str(t),
                Piece::Plain => out.push_str(arg()),
                Piece::Quoted => out.push_str(&format!("{:?}", arg())),
            }
        }
        out
    }
}

/// A platform role as files name it and as it is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoleName {
    /// The stored name (`user_roles.role`, lower case).
    pub stored: &'static str,
    /// The name people read.
    pub display: &'static str,
    /// Other names a file may use (lower case).
    pub aliases: &'static [&'static str],
    /// Whether the role is a `user_roles` row. Learner is not: every user
    /// is one (migration 0013).
    pub is_row: bool,
}

/// Every role, in `map::Role`'s order.
pub const ROLE_NAMES: [RoleName; 3] = [
    RoleName {
        stored: "learner",
        display: "Learner",
        aliases: &[],
        is_row: false,
    },
    RoleName {
        stored: "manager",
        display: "Manager",
        aliases: &[],
        is_row: true,
    },
    RoleName {
        stored: "administrator",
        display: "Administrator",
        aliases: &["admin"],
        is_row: true,
    },
];

/// The role a file's name means, any case, surrounding space ignored.
pub fn role_index(name: &str) -> Option<usize> {
    let name = name.trim().to_ascii_lowercase();
    ROLE_NAMES
        .iter()
        .position(|r| r.stored == name || r.aliases.contains(&name.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_renders_plain_and_quoted_values_in_order() {
        assert_eq!(
            DUPLICATE_ROW.render(&["2"]),
            "duplicate of line 2: the same person appears twice; this row was skipped"
        );
        assert_eq!(
            EMAIL_TAKEN.render(&["a\"b"]),
            r#"email "a\"b" already belongs to another user"#
        );
        assert_eq!(SELF_MANAGER.render(&[]), SELF_MANAGER.0);
    }

    #[test]
    fn every_role_is_found_by_its_names_in_any_case() {
        assert_eq!(role_index(" ADMIN "), Some(2));
        assert_eq!(role_index("Manager"), Some(1));
        assert_eq!(role_index("learner"), Some(0));
        assert_eq!(role_index("wizard"), None);
    }
}
