//! What each staged row does, given what the database holds: the feed's
//! rules for users and their links, decided in one place without touching a
//! database.
//!
//! The portable store is fetch → [`MergeBatch::decide`] / [`decide_links`]
//! → write. The PostgreSQL store's set-based SQL states the same rules for
//! speed, with its texts generated from [`super::text`]; the equivalence
//! test (`tests/integration/equivalence.rs`) holds the two together.

use std::collections::{BTreeSet, HashMap, HashSet};

use serde_json::{Map, Value};

use super::text;
use crate::map::{FileHeaders, MatchKey, Role, RowError, split_list};

/// A stored user, as far as the rules look at one.
#[derive(Debug, Clone, PartialEq)]
pub struct Current {
    /// Database id.
    pub id: i64,
    /// Stored email (any case).
    pub email: String,
    /// Stored external ID.
    pub external_id: Option<String>,
    /// First name.
    pub first_name: String,
    /// Last name.
    pub last_name: String,
    /// Whether active.
    pub active: bool,
    /// Custom profile values.
    pub profile: Map<String, Value>,
}

/// A staged row, as far as the rules look at one.
#[derive(Debug, Clone, Default)]
pub struct Row<'a> {
    /// First line of the row in the file.
    pub line: i64,
    /// Its match key, normalised as stored (lower-case email or external ID).
    pub match_key: &'a str,
    /// Email, when the column is mapped and filled.
    pub email: Option<&'a str>,
    /// External ID, likewise.
    pub external_id: Option<&'a str>,
    /// First name, likewise.
    pub first_name: Option<&'a str>,
    /// Last name, likewise.
    pub last_name: Option<&'a str>,
    /// Status, when a status column is mapped.
    pub active: Option<bool>,
    /// Custom profile values; an empty string clears a value.
    pub profile: Option<&'a Map<String, Value>>,
    /// A problem found while parsing: (column, message).
    pub error: Option<(Option<&'a str>, &'a str)>,
}

/// The values a new user gets.
#[derive(Debug, Clone, PartialEq)]
pub struct NewUser {
    /// Email as written in the file.
    pub email: String,
    /// External ID.
    pub external_id: Option<String>,
    /// First name (empty when not given).
    pub first_name: String,
    /// Last name (empty when not given).
    pub last_name: String,
    /// Active, unless the row's status says otherwise.
    pub active: bool,
    /// Custom profile values.
    pub profile: Map<String, Value>,
}

/// The fields an update sets (`None`: left as stored).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Update {
    /// New email.
    pub email: Option<String>,
    /// New external ID (an empty cell never erases one).
    pub external_id: Option<String>,
    /// New first name.
    pub first_name: Option<String>,
    /// New last name.
    pub last_name: Option<String>,
    /// The user is reactivated.
    pub reactivate: bool,
    /// The whole new profile, when any value changed.
    pub profile: Option<Map<String, Value>>,
    /// The change log entry: field → `[old, new]`.
    pub changes: Map<String, Value>,
}

/// What one row does.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Rejected: nothing of it is applied (its links neither).
    Reject(RowError),
    /// A new user.
    Create(NewUser),
    /// An existing user whose fields change.
    Update {
        /// The user.
        id: i64,
        /// What changes.
        update: Update,
        /// The row also deactivates them (with a status column).
        deactivate: bool,
    },
    /// An existing user whose fields stay as they are.
    Unchanged {
        /// The user.
        id: i64,
        /// The row deactivates them (with a status column); counted when
        /// the finish step performs it, not as unchanged.
        deactivate: bool,
    },
}

/// Decides the rows of one batch, in file order, against the stored users
/// they can touch (by match key, email or external ID).
#[derive(Debug)]
pub struct MergeBatch<'h> {
    match_key: MatchKey,
    has_status: bool,
    headers: &'h FileHeaders,
    by_email: HashMap<String, Current>,
    by_ext: HashMap<String, Current>,
    /// Emails and external IDs taken by earlier rows of this batch.
    claimed_email: HashMap<String, i64>,
    claimed_ext: HashMap<String, i64>,
}

impl<'h> MergeBatch<'h> {
    /// `existing`: every stored user of the tenant whose lower-cased email
    /// or external ID one of the batch's rows carries.
    pub fn new(
        match_key: MatchKey,
        has_status: bool,
        headers: &'h FileHeaders,
        existing: impl IntoIterator<Item = Current>,
    ) -> Self {
        let mut by_email = HashMap::new();
        let mut by_ext = HashMap::new();
        for u in existing {
            if let Some(x) = &u.external_id {
                by_ext.insert(x.clone(), u.clone());
            }
            by_email.insert(u.email.to_lowercase(), u);
        }
        MergeBatch {
            match_key,
            has_status,
            headers,
            by_email,
            by_ext,
            claimed_email: HashMap::new(),
            claimed_ext: HashMap::new(),
        }
    }

    /// What `row` does. Rows must come in file order: an email or external
    /// ID is given to the first row that claims it.
    pub fn decide(&mut self, row: &Row) -> Decision {
        let reject = |column: Option<&str>, message: String| {
            Decision::Reject(RowError {
                line: row.line as u64,
                column: column.map(str::to_string),
                message,
            })
        };
        if let Some((column, message)) = row.error {
            return reject(column, message.to_string());
        }
        // (A repeated key was marked as an error when staged.)
        let existing = match self.match_key {
            MatchKey::Email => self.by_email.get(row.match_key),
            MatchKey::ExternalId => self.by_ext.get(row.match_key),
        };
        let my_id = existing.map(|u| u.id);
        let email_lc = row.email.map(str::to_lowercase);

        // Collisions: a value this row wants that belongs to someone else.
        if let Some(e) = &email_lc {
            let owner = self.by_email.get(e).map(|u| u.id);
            if (owner.is_some() && owner != my_id)
                || self.claimed_email.get(e).is_some_and(|l| *l != row.line)
            {
                return reject(
                    self.headers.email.as_deref(),
                    text::EMAIL_TAKEN.render(&[row.email.unwrap_or("")]),
                );
            }
        }
        if let Some(x) = row.external_id {
            let owner = self.by_ext.get(x).map(|u| u.id);
            if (owner.is_some() && owner != my_id)
                || self.claimed_ext.get(x).is_some_and(|l| *l != row.line)
            {
                return reject(
                    self.headers.external_id.as_deref(),
                    text::EXTERNAL_ID_TAKEN.render(&[x]),
                );
            }
        }
        if let Some(e) = email_lc {
            self.claimed_email.insert(e, row.line);
        }
        if let Some(x) = row.external_id {
            self.claimed_ext.insert(x.to_string(), row.line);
        }

        // Without a status column everyone in the file is active.
        let want_active = !self.has_status || row.active.unwrap_or(true);
        let Some(u) = existing else {
            let Some(email) = row.email else {
                return reject(
                    self.headers.email.as_deref(),
                    text::EMAIL_REQUIRED.render(&[]),
                );
            };
            let mut profile = Map::new();
            merge_profile(&mut profile, row.profile);
            return Decision::Create(NewUser {
                email: email.to_string(),
                external_id: row.external_id.map(str::to_string),
                first_name: row.first_name.unwrap_or_default().to_string(),
                last_name: row.last_name.unwrap_or_default().to_string(),
                active: want_active,
                profile,
            });
        };

        let mut up = Update::default();
        let mut note = |field: &str, old: Value, new: Value| {
            up.changes
                .insert(field.to_string(), Value::Array(vec![old, new]));
        };
        if let Some(e) = row.email.filter(|e| *e != u.email) {
            up.email = Some(e.to_string());
            note("email", u.email.clone().into(), e.into());
        }
        // An empty external ID cell never erases a stored one.
        if let Some(x) = row
            .external_id
            .filter(|x| u.external_id.as_deref() != Some(*x))
        {
            up.external_id = Some(x.to_string());
            note("external_id", u.external_id.clone().into(), x.into());
        }
        if let Some(f) = row.first_name.filter(|f| *f != u.first_name) {
            up.first_name = Some(f.to_string());
            note("first_name", u.first_name.clone().into(), f.into());
        }
        if let Some(l) = row.last_name.filter(|l| *l != u.last_name) {
            up.last_name = Some(l.to_string());
            note("last_name", u.last_name.clone().into(), l.into());
        }
        // Deactivations wait for the finish step, which applies them all or
        // holds the upload.
        let deactivate = !want_active && u.active;
        if want_active && !u.active {
            up.reactivate = true;
            note("active", false.into(), true.into());
        }
        if row.profile.is_some() {
            let mut profile = u.profile.clone();
            merge_profile(&mut profile, row.profile);
            if profile != u.profile {
                let keys: BTreeSet<&String> = u.profile.keys().chain(profile.keys()).collect();
                for key in keys {
                    let (a, b) = (u.profile.get(key), profile.get(key));
                    if a != b {
                        note(
                            &format!("profile.{key}"),
                            a.cloned().unwrap_or(Value::Null),
                            b.cloned().unwrap_or(Value::Null),
                        );
                    }
                }
                up.profile = Some(profile);
            }
        }
        if up.changes.is_empty() {
            Decision::Unchanged {
                id: u.id,
                deactivate,
            }
        } else {
            Decision::Update {
                id: u.id,
                update: up,
                deactivate,
            }
        }
    }
}

/// Applies a row's profile values: a value sets the field, an empty cell
/// clears it; fields the file does not map are kept.
pub fn merge_profile(profile: &mut Map<String, Value>, new: Option<&Map<String, Value>>) {
    for (k, v) in new.into_iter().flatten() {
        match v.as_str() {
            Some("") => {
                profile.remove(k);
            }
            _ => {
                profile.insert(k.clone(), v.clone());
            }
        }
    }
}

/// Whether an upload's deactivations must wait for a person, and why (the
/// text the admin reads). `rows_read` data rows, `pending` deactivations
/// lined up, `active` active feed-managed users before them; the tenant
/// holds above `percent`% **and** above `count` users. A file with a header
/// and no rows is always held: it is far more often a broken export than
/// "everyone left".
pub fn hold_reason(
    rows_read: u64,
    pending: u64,
    active: u64,
    percent: i32,
    count: i32,
) -> Option<String> {
    if rows_read == 0 {
        return Some(format!(
            "the file has a header but no rows; holding instead of deactivating {pending} user(s)"
        ));
    }
    let pct = u64::try_from(percent).unwrap_or(0);
    let count = u64::try_from(count).unwrap_or(0);
    if pending > count && pending * 100 > active * pct {
        return Some(format!(
            "it would deactivate {pending} of {active} active feed-managed users, more than the \
             tenant's limit of {pct}% and {count} users"
        ));
    }
    None
}

/// A row's link cells, for [`decide_links`].
#[derive(Debug, Clone, Default)]
pub struct LinkRow<'a> {
    /// First line of the row.
    pub line: i64,
    /// Its match key.
    pub match_key: &'a str,
    /// The managers cell (emails separated by `|`), when mapped.
    pub managers: Option<&'a str>,
    /// The groups cell, when mapped.
    pub groups: Option<&'a str>,
    /// The roles cell, when mapped.
    pub roles: Option<&'a str>,
}

/// What the stored data says about the names a batch's link cells use.
#[derive(Debug, Default)]
pub struct LinkLookups {
    /// Match key → user id, for the batch's rows.
    pub user_of: HashMap<String, i64>,
    /// Lower-cased email → user id, for the managers named.
    pub manager_of: HashMap<String, i64>,
    /// Group key → group id, for the groups named.
    pub group_of: HashMap<String, i64>,
}

/// The links a batch writes.
#[derive(Debug, Default, PartialEq)]
pub struct Links {
    /// Users whose managers become exactly those in `managers`.
    pub replace_managers_of: Vec<i64>,
    /// (user, manager) links.
    pub managers: HashSet<(i64, i64)>,
    /// (group, user) memberships to add.
    pub memberships: HashSet<(i64, i64)>,
    /// (user, role) roles to add (Learner is implicit and never stored).
    pub roles: HashSet<(i64, Role)>,
    /// Row warnings: a link that was skipped, and why.
    pub warnings: Vec<RowError>,
    /// Users whose row warned (their digest must not mark them unchanged).
    pub warned: HashSet<i64>,
}

/// Decides the managers, groups and roles of accepted rows: managers are
/// replaced by the cell's list, groups and roles only ever added; anyone
/// named as a manager becomes a Manager; a name that is not found is a
/// warning and that link is skipped.
pub fn decide_links<'a>(
    rows: impl IntoIterator<Item = LinkRow<'a>>,
    found: &LinkLookups,
    headers: &FileHeaders,
) -> Links {
    let mut out = Links::default();
    for row in rows {
        let Some(&uid) = found.user_of.get(row.match_key) else {
            continue;
        };
        let warned_before = out.warnings.len();
        let mut warn = |column: &Option<String>, message: String| {
            out.warnings.push(RowError {
                line: row.line as u64,
                column: column.clone(),
                message,
            });
        };
        if let Some(cell) = row.managers {
            out.replace_managers_of.push(uid);
            for email in split_list(cell) {
                match found.manager_of.get(&email.to_lowercase()) {
                    None => warn(&headers.managers, text::UNKNOWN_MANAGER.render(&[email])),
                    Some(&m) if m == uid => warn(&headers.managers, text::SELF_MANAGER.render(&[])),
                    Some(&m) => {
                        out.managers.insert((uid, m));
                        out.roles.insert((m, Role::Manager));
                    }
                }
            }
        }
        if let Some(cell) = row.groups {
            for key in split_list(cell) {
                match found.group_of.get(key) {
                    Some(&g) => {
                        out.memberships.insert((g, uid));
                    }
                    None => warn(&headers.groups, text::UNKNOWN_GROUP.render(&[key])),
                }
            }
        }
        if let Some(cell) = row.roles {
            for name in split_list(cell) {
                match Role::parse(name) {
                    Some(r) if r.is_stored() => {
                        out.roles.insert((uid, r));
                    }
                    Some(_) => {}
                    None => warn(&headers.roles, text::UNKNOWN_ROLE.render(&[name])),
                }
            }
        }
        if out.warnings.len() > warned_before {
            out.warned.insert(uid);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn headers() -> FileHeaders {
        FileHeaders {
            email: Some("Email".into()),
            external_id: Some("ID".into()),
            managers: Some("Manager".into()),
            groups: Some("Groups".into()),
            roles: Some("Roles".into()),
        }
    }

    fn ada() -> Current {
        Current {
            id: 7,
            email: "Ada@Example.com".into(),
            external_id: Some("E1".into()),
            first_name: "Ada".into(),
            last_name: "Lovelace".into(),
            active: true,
            profile: json!({"department": "Eng"}).as_object().unwrap().clone(),
        }
    }

    fn row<'a>(line: i64, key: &'a str, email: &'a str) -> Row<'a> {
        Row {
            line,
            match_key: key,
            email: Some(email),
            external_id: Some(key),
            first_name: Some("Ada"),
            last_name: Some("Lovelace"),
            ..Row::default()
        }
    }

    #[test]
    fn a_new_key_creates_a_user_active_without_a_status_column() {
        let h = headers();
        let mut b = MergeBatch::new(MatchKey::ExternalId, false, &h, []);
        let mut r = row(2, "E9", "new@example.com");
        r.active = Some(false); // ignored: no status column
        let Decision::Create(u) = b.decide(&r) else {
            panic!()
        };
        assert_eq!((u.email.as_str(), u.active), ("new@example.com", true));
        assert_eq!(u.external_id.as_deref(), Some("E9"));
    }

    #[test]
    fn a_row_equal_to_the_stored_user_is_unchanged() {
        let h = headers();
        let mut b = MergeBatch::new(MatchKey::ExternalId, false, &h, [ada()]);
        let d = b.decide(&row(2, "E1", "Ada@Example.com"));
        assert_eq!(
            d,
            Decision::Unchanged {
                id: 7,
                deactivate: false
            }
        );
    }

    #[test]
    fn changed_fields_are_updated_with_old_and_new_values_logged() {
        let h = headers();
        let mut b = MergeBatch::new(MatchKey::ExternalId, false, &h, [ada()]);
        let mut r = row(2, "E1", "ada@example.com");
        r.last_name = Some("King");
        let profile = json!({"department": "", "title": "Countess"});
        r.profile = profile.as_object();
        let Decision::Update { id, update, .. } = b.decide(&r) else {
            panic!()
        };
        assert_eq!(id, 7);
        assert_eq!(update.last_name.as_deref(), Some("King"));
        assert_eq!(update.email.as_deref(), Some("ada@example.com"));
        assert_eq!(
            Value::Object(update.changes),
            json!({
                "email": ["Ada@Example.com", "ada@example.com"],
                "last_name": ["Lovelace", "King"],
                "profile.department": ["Eng", null],
                "profile.title": [null, "Countess"],
            })
        );
        assert_eq!(
            update.profile.map(Value::Object),
            Some(json!({"title": "Countess"}))
        );
    }

    #[test]
    fn status_deactivates_at_finish_and_a_returning_person_is_reactivated() {
        let h = headers();
        let mut inactive = ada();
        inactive.active = false;
        let mut b = MergeBatch::new(MatchKey::ExternalId, true, &h, [ada()]);
        let mut r = row(2, "E1", "Ada@Example.com");
        r.active = Some(false);
        assert_eq!(
            b.decide(&r),
            Decision::Unchanged {
                id: 7,
                deactivate: true
            }
        );
        let mut b = MergeBatch::new(MatchKey::ExternalId, false, &h, [inactive]);
        let Decision::Update {
            update, deactivate, ..
        } = b.decide(&row(2, "E1", "Ada@Example.com"))
        else {
            panic!()
        };
        assert!(update.reactivate && !deactivate);
        assert_eq!(
            Value::Object(update.changes),
            json!({"active": [false, true]})
        );
    }

    #[test]
    fn values_owned_by_someone_else_or_claimed_earlier_in_the_batch_reject_the_row() {
        let h = headers();
        let mut b = MergeBatch::new(MatchKey::ExternalId, false, &h, [ada()]);
        // Another key wants Ada's email (any case).
        let Decision::Reject(e) = b.decide(&row(2, "E2", "ADA@example.com")) else {
            panic!()
        };
        assert_eq!(e.column.as_deref(), Some("Email"));
        assert_eq!(e.message, text::EMAIL_TAKEN.render(&["ADA@example.com"]));
        // Two new people with one email: the first wins.
        assert!(matches!(
            b.decide(&row(3, "E3", "same@example.com")),
            Decision::Create(_)
        ));
        let Decision::Reject(e) = b.decide(&row(4, "E4", "same@example.com")) else {
            panic!()
        };
        assert_eq!((e.line, e.column.as_deref()), (4, Some("Email")));
        // Matched by email, wanting another person's external ID.
        let mut b = MergeBatch::new(MatchKey::Email, false, &h, [ada()]);
        let mut r = row(5, "new@example.com", "new@example.com");
        r.external_id = Some("E1");
        let Decision::Reject(e) = b.decide(&r) else {
            panic!()
        };
        assert_eq!(e.message, text::EXTERNAL_ID_TAKEN.render(&["E1"]));
    }

    #[test]
    fn a_new_person_without_an_email_and_a_row_with_a_parse_error_are_rejected() {
        let h = headers();
        let mut b = MergeBatch::new(MatchKey::ExternalId, false, &h, []);
        let mut r = row(2, "E5", "");
        r.email = None;
        let Decision::Reject(e) = b.decide(&r) else {
            panic!()
        };
        assert_eq!(e.message, text::EMAIL_REQUIRED.render(&[]));
        let mut r = row(3, "E6", "x@example.com");
        r.error = Some((Some("Status"), "bad status"));
        assert_eq!(
            b.decide(&r),
            Decision::Reject(RowError {
                line: 3,
                column: Some("Status".into()),
                message: "bad status".into()
            })
        );
    }

    #[test]
    fn links_replace_managers_add_groups_and_roles_and_warn_about_unknown_names() {
        let h = headers();
        let found = LinkLookups {
            user_of: HashMap::from([("e1".into(), 1), ("e2".into(), 2)]),
            manager_of: HashMap::from([
                ("boss@example.com".into(), 2),
                ("me@example.com".into(), 1),
            ]),
            group_of: HashMap::from([("G-1".into(), 10)]),
        };
        let rows = [
            LinkRow {
                line: 2,
                match_key: "e1",
                managers: Some("Boss@Example.com | ghost@example.com | me@example.com"),
                groups: Some("G-1|G-9"),
                roles: Some("learner|Administrator|Wizard"),
            },
            LinkRow {
                line: 3,
                match_key: "e2",
                managers: Some(""),
                groups: None,
                roles: None,
            },
            // A row whose user does not exist (rejected earlier) links nothing.
            LinkRow {
                line: 4,
                match_key: "e3",
                managers: Some("boss@example.com"),
                ..LinkRow::default()
            },
        ];
        let l = decide_links(rows, &found, &h);
        assert_eq!(l.replace_managers_of, vec![1, 2]);
        assert_eq!(l.managers, HashSet::from([(1, 2)]));
        assert_eq!(l.memberships, HashSet::from([(10, 1)]));
        assert_eq!(
            l.roles,
            HashSet::from([(2, Role::Manager), (1, Role::Administrator)])
        );
        let warnings: Vec<(u64, &str, String)> = l
            .warnings
            .iter()
            .map(|w| (w.line, w.column.as_deref().unwrap(), w.message.clone()))
            .collect();
        assert_eq!(
            warnings,
            vec![
                (
                    2,
                    "Manager",
                    text::UNKNOWN_MANAGER.render(&["ghost@example.com"])
                ),
                (2, "Manager", text::SELF_MANAGER.render(&[])),
                (2, "Groups", text::UNKNOWN_GROUP.render(&["G-9"])),
                (2, "Roles", text::UNKNOWN_ROLE.render(&["Wizard"])),
            ]
        );
        assert_eq!(l.warned, HashSet::from([1]));
    }
    #[test]
    fn hold_needs_both_the_share_and_the_count_to_be_exceeded() {
        assert_eq!(
            hold_reason(100, 11, 1000, 20, 10),
            None,
            "11 > 10 but 1.1% <= 20%"
        );
        assert_eq!(
            hold_reason(100, 10, 20, 20, 10),
            None,
            "50% but only 10 users"
        );
        assert!(
            hold_reason(100, 11, 50, 20, 10).is_some(),
            "11 > 10 and 22% > 20%"
        );
        assert_eq!(
            hold_reason(100, 20, 100, 20, 10),
            None,
            "exactly 20% is allowed"
        );
        assert!(
            hold_reason(100, 21, 100, 20, 10)
                .unwrap()
                .contains("21 of 100")
        );
    }

    #[test]
    fn a_file_without_rows_is_always_held() {
        assert!(hold_reason(0, 0, 0, 100, 1000).unwrap().contains("no rows"));
    }
}
