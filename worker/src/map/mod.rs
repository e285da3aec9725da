//! The tenant's mapping from CSV headers to platform fields, and the
//! validation that turns one CSV row into a [`StagedRow`] or a rejection.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::rules::text;

pub mod tools;

/// Which field identifies a person across files.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum MatchKey {
    /// The email address, compared case-insensitively.
    Email,
    /// The HR system's employee ID, compared exactly (after trimming).
    #[value(name = "external_id")]
    ExternalId,
}

impl MatchKey {
    /// The name stored in the database and shown to people.
    pub fn as_str(self) -> &'static str {
        match self {
            MatchKey::Email => "email",
            MatchKey::ExternalId => "external_id",
        }
    }

    /// Parses the stored name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "email" => Some(MatchKey::Email),
            "external_id" => Some(MatchKey::ExternalId),
            _ => None,
        }
    }
}

/// A mapping file (TOML), as documented in `docs/csv-format.md`:
///
/// ```toml
/// [columns]
/// email = "Work Email"
/// external_id = "Employee Number"
/// first_name = "First Name"
/// last_name = "Last Name"
/// status = "Status"          # optional
///
/// [profile]
/// department = "Department"  # custom profile field -> CSV header
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Mapping {
    /// Platform field -> CSV header.
    #[serde(default)]
    pub columns: Columns,
    /// Custom profile field -> CSV header (at most 255 characters).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schema(value_type = BTreeMap<String, ColumnName>)]
    pub profile: BTreeMap<String, String>,
}

/// A CSV column's name, as a mapping holds it: the schema of the
/// `profile` map's values (a string of at most 255 characters).
pub struct ColumnName;

impl utoipa::PartialSchema for ColumnName {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        ObjectBuilder::new()
            .schema_type(Type::String)
            .max_length(Some(crate::validate::max::COLUMN))
            .into()
    }
}

impl utoipa::ToSchema for ColumnName {}

/// The platform fields a CSV column can map to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Columns {
    /// Email address (required: every user needs one).
    #[schema(max_length = 255)]
    pub email: Option<String>,
    /// The HR system's employee ID.
    #[schema(max_length = 255)]
    pub external_id: Option<String>,
    /// Given name.
    #[schema(max_length = 255)]
    pub first_name: Option<String>,
    /// Family name.
    #[schema(max_length = 255)]
    pub last_name: Option<String>,
    /// `1`/`Active` or `0`/`Inactive`. When mapped, it decides each user's
    /// status and nobody is deactivated for being absent.
    #[schema(max_length = 255)]
    pub status: Option<String>,
    /// Manager emails separated by `|`: the user's managers become exactly
    /// these (an empty cell clears them).
    #[schema(max_length = 255)]
    pub managers: Option<String>,
    /// Platform group IDs separated by `|`: memberships are added, never removed.
    #[schema(max_length = 255)]
    pub groups: Option<String>,
    /// Roles separated by `|` (Learner, Manager, Administrator): added to the
    /// roles the user holds, never removed.
    #[schema(max_length = 255)]
    pub roles: Option<String>,
}

/// The platform fields a mapping fills, by key (as in the mapping file),
/// with the name people see on the screens, in the screens' order.
pub const PLATFORM_FIELDS: [(&str, &str); 8] = [
    ("email", "Email"),
    ("external_id", "Employee ID"),
    ("first_name", "First name"),
    ("last_name", "Last name"),
    ("status", "Status"),
    ("managers", "Managers"),
    ("groups", "Groups"),
    ("roles", "Roles"),
];

impl Columns {
    /// The column mapped to platform field `field` (a key of
    /// [`PLATFORM_FIELDS`]); `None` when unmapped or not a field.
    pub fn get(&self, field: &str) -> Option<&str> {
        let c = self;
        match field {
            "email" => c.email.as_deref(),
            "external_id" => c.external_id.as_deref(),
            "first_name" => c.first_name.as_deref(),
            "last_name" => c.last_name.as_deref(),
            "status" => c.status.as_deref(),
            "managers" => c.managers.as_deref(),
            "groups" => c.groups.as_deref(),
            "roles" => c.roles.as_deref(),
            _ => None,
        }
    }

    /// The slot of platform field `field`; `None` when it is not one.
    pub fn slot(&mut self, field: &str) -> Option<&mut Option<String>> {
        let c = self;
        Some(match field {
            "email" => &mut c.email,
            "external_id" => &mut c.external_id,
            "first_name" => &mut c.first_name,
            "last_name" => &mut c.last_name,
            "status" => &mut c.status,
            "managers" => &mut c.managers,
            "groups" => &mut c.groups,
            "roles" => &mut c.roles,
            _ => return None,
        })
    }
}

/// A mapping that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MappingError {
    /// The TOML does not parse or has unknown keys.
    #[error("mapping is not valid TOML: {0}")]
    Toml(String),
    /// A required column is not mapped.
    #[error("mapping must map `{0}` to a CSV column")]
    Required(&'static str),
    /// A header is used for two fields.
    #[error("CSV column {0:?} is mapped to more than one field")]
    Reused(String),
    /// A profile field name is unusable.
    #[error("profile field name {0:?} must be 1-64 letters, digits or underscores")]
    BadProfileKey(String),
    /// A column name is too long or holds a control character.
    #[error(transparent)]
    Text(#[from] crate::validate::TextProblem),
}

impl Mapping {
    /// Parses and checks a mapping file for a tenant matching on `key`.
    pub fn from_toml(text: &str, key: MatchKey) -> Result<Self, MappingError> {
        let m: Mapping = toml::from_str(text).map_err(|e| MappingError::Toml(e.to_string()))?;
        m.check(key)?;
        Ok(m)
    }

    /// Renders the mapping as TOML.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_default()
    }

    /// Checks the mapping is usable for a tenant matching on `key`.
    pub fn check(&self, key: MatchKey) -> Result<(), MappingError> {
        if self.columns.email.is_none() {
            return Err(MappingError::Required("email"));
        }
        if key == MatchKey::ExternalId && self.columns.external_id.is_none() {
            return Err(MappingError::Required("external_id"));
        }
        use crate::validate::{max, text};
        for (field, header) in self.mapped() {
            text(&field.path(), header, max::COLUMN)?;
        }
        let mut seen = std::collections::HashSet::new();
        for (_, header) in self.mapped() {
            if !seen.insert(normalise_header(header)) {
                return Err(MappingError::Reused(header.to_string()));
            }
        }
        for k in self.profile.keys() {
            let ok = !k.is_empty()
                && k.len() <= 64
                && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !ok {
                return Err(MappingError::BadProfileKey(k.clone()));
            }
        }
        Ok(())
    }

    /// Every (field, header) pair the mapping uses.
    fn mapped(&self) -> Vec<(Field, &str)> {
        let c = &self.columns;
        let mut out = Vec::new();
        for (field, header) in [
            (Field::Email, &c.email),
            (Field::ExternalId, &c.external_id),
            (Field::FirstName, &c.first_name),
            (Field::LastName, &c.last_name),
            (Field::Status, &c.status),
            (Field::Managers, &c.managers),
            (Field::Groups, &c.groups),
            (Field::Roles, &c.roles),
        ] {
            if let Some(h) = header {
                out.push((field, h.as_str()));
            }
        }
        for (k, h) in &self.profile {
            out.push((Field::Profile(k.clone()), h.as_str()));
        }
        out
    }
}

/// Headers compare ignoring case and surrounding spaces.
pub fn normalise_header(h: &str) -> String {
    h.trim().to_lowercase()
}

/// A platform field.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Field {
    Email,
    ExternalId,
    FirstName,
    LastName,
    Status,
    Managers,
    Groups,
    Roles,
    Profile(String),
}

impl Field {
    /// Where the field is in a mapping (`columns.email`, `profile.team`).
    fn path(&self) -> String {
        let column = match self {
            Field::Profile(k) => return format!("profile.{k}"),
            Field::Email => "email",
            Field::ExternalId => "external_id",
            Field::FirstName => "first_name",
            Field::LastName => "last_name",
            Field::Status => "status",
            Field::Managers => "managers",
            Field::Groups => "groups",
            Field::Roles => "roles",
        };
        format!("columns.{column}")
    }
}

/// The type of a custom profile field.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum FieldType {
    /// Any text.
    Text,
    /// A number such as `42` or `-3.5`.
    Number,
    /// A calendar date, `YYYY-MM-DD`.
    Date,
    /// `true`/`false`, `yes`/`no`, `y`/`n` or `1`/`0`, any case.
    Boolean,
}

impl FieldType {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            FieldType::Text => "text",
            FieldType::Number => "number",
            FieldType::Date => "date",
            FieldType::Boolean => "boolean",
        }
    }

    /// Parses the stored name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "text" => Some(FieldType::Text),
            "number" => Some(FieldType::Number),
            "date" => Some(FieldType::Date),
            "boolean" => Some(FieldType::Boolean),
            _ => None,
        }
    }

    /// Converts a non-empty cell to the stored JSON value, or says why not.
    pub fn convert(self, v: &str) -> Result<serde_json::Value, String> {
        use serde_json::Value;
        match self {
            FieldType::Text => Ok(Value::String(v.to_string())),
            FieldType::Number => v
                .parse::<f64>()
                .ok()
                .filter(|n| n.is_finite())
                .and_then(serde_json::Number::from_f64)
                .map(|n| match n.as_f64() {
                    // Whole numbers are stored as integers (42, not 42.0).
                    Some(f) if f.fract() == 0.0 && f.abs() < 9e15 => Value::from(f as i64),
                    _ => Value::Number(n),
                })
                .ok_or_else(|| text::NOT_A_NUMBER.render(&[v])),
            FieldType::Date => chrono::NaiveDate::parse_from_str(v, "%Y-%m-%d")
                .map(|d| Value::String(d.format("%Y-%m-%d").to_string()))
                .map_err(|_| text::NOT_A_DATE.render(&[v])),
            FieldType::Boolean => match v.to_ascii_lowercase().as_str() {
                "true" | "yes" | "y" | "1" => Ok(Value::Bool(true)),
                "false" | "no" | "n" | "0" => Ok(Value::Bool(false)),
                _ => Err(text::NOT_A_BOOLEAN.render(&[v])),
            },
        }
    }
}

/// The file's headers of the columns row problems found after validation
/// are reported against, when mapped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileHeaders {
    /// Email column.
    pub email: Option<String>,
    /// External ID column.
    pub external_id: Option<String>,
    /// Managers column.
    pub managers: Option<String>,
    /// Groups column.
    pub groups: Option<String>,
    /// Roles column.
    pub roles: Option<String>,
}

/// A platform role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Every user: implicit, never stored as a row (migration 0013), and
    /// listed for every user.
    Learner,
    /// Manages others (also granted to anyone listed as a manager).
    Manager,
    /// Administers the platform.
    Administrator,
}

impl Role {
    /// Every role, in the order of [`text::ROLE_NAMES`].
    const ALL: [Role; 3] = [Role::Learner, Role::Manager, Role::Administrator];

    fn names(self) -> &'static text::RoleName {
        &text::ROLE_NAMES[self as usize]
    }

    /// Parses a role name (or alias, such as `admin`) in any case.
    pub fn parse(s: &str) -> Option<Role> {
        text::role_index(s).map(|i| Role::ALL[i])
    }

    /// Whether the role is kept as a `user_roles` row. Learner is not: every
    /// user is one, so a first file need not write a row per person.
    pub fn is_stored(self) -> bool {
        self.names().is_row
    }

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        self.names().stored
    }

    /// The name people read: `Learner`, `Manager`, `Administrator`.
    pub fn display_name(self) -> &'static str {
        self.names().display
    }
}

/// The non-empty, trimmed items of a `|`-separated cell.
pub fn split_list(cell: &str) -> impl Iterator<Item = &str> {
    cell.split('|').map(str::trim).filter(|s| !s.is_empty())
}

/// The file's header lacks mapped columns.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the file's header is missing mapped column(s) {missing:?}; expected {expected:?}, found {found:?}"
)]
pub struct HeaderMismatch {
    /// Mapped headers absent from the file.
    pub missing: Vec<String>,
    /// Every mapped header.
    pub expected: Vec<String>,
    /// The file's header as read.
    pub found: Vec<String>,
}

/// A mapping bound to one file's header: field -> column index.
#[derive(Debug, Clone)]
pub struct BoundMapping {
    key: MatchKey,
    header_len: usize,
    email: (usize, String),
    external_id: Option<(usize, String)>,
    first_name: Option<(usize, String)>,
    last_name: Option<(usize, String)>,
    status: Option<(usize, String)>,
    managers: Option<(usize, String)>,
    groups: Option<(usize, String)>,
    roles: Option<(usize, String)>,
    profile: Vec<(String, usize, String, FieldType)>,
}

impl BoundMapping {
    /// Binds `mapping` to `header`; fails naming the missing columns.
    pub fn bind(
        mapping: &Mapping,
        key: MatchKey,
        header: &[String],
        types: &BTreeMap<String, FieldType>,
    ) -> Result<Self, HeaderMismatch> {
        let index: BTreeMap<String, usize> = header
            .iter()
            .enumerate()
            .rev() // the first occurrence of a repeated header wins
            .map(|(i, h)| (normalise_header(h), i))
            .collect();
        let mapped = mapping.mapped();
        let missing: Vec<String> = mapped
            .iter()
            .filter(|(_, h)| !index.contains_key(&normalise_header(h)))
            .map(|(_, h)| h.to_string())
            .collect();
        if !missing.is_empty() {
            return Err(HeaderMismatch {
                missing,
                expected: mapped.iter().map(|(_, h)| h.to_string()).collect(),
                found: header.to_vec(),
            });
        }
        let col = |h: &Option<String>| {
            h.as_ref()
                .map(|h| (index[&normalise_header(h)], h.trim().to_string()))
        };
        let c = &mapping.columns;
        Ok(BoundMapping {
            key,
            header_len: header.len(),
            email: col(&c.email).expect("checked: email is mapped"),
            external_id: col(&c.external_id),
            first_name: col(&c.first_name),
            last_name: col(&c.last_name),
            status: col(&c.status),
            managers: col(&c.managers),
            groups: col(&c.groups),
            roles: col(&c.roles),
            profile: mapping
                .profile
                .iter()
                .map(|(k, h)| {
                    let ty = types.get(k).copied().unwrap_or(FieldType::Text);
                    (
                        k.clone(),
                        index[&normalise_header(h)],
                        h.trim().to_string(),
                        ty,
                    )
                })
                .collect(),
        })
    }

    /// Whether the file decides statuses (else absence deactivates).
    pub fn has_status(&self) -> bool {
        self.status.is_some()
    }

    /// CSV headers of the link columns (for warnings).
    pub fn headers(&self) -> FileHeaders {
        let h = |c: &Option<(usize, String)>| c.as_ref().map(|(_, h)| h.clone());
        FileHeaders {
            email: Some(self.email.1.clone()),
            external_id: h(&self.external_id),
            managers: h(&self.managers),
            groups: h(&self.groups),
            roles: h(&self.roles),
        }
    }

    /// Whether the file carries managers, groups or roles to link.
    pub fn has_links(&self) -> bool {
        self.managers.is_some() || self.groups.is_some() || self.roles.is_some()
    }

    /// The tenant's match key.
    pub fn match_key(&self) -> MatchKey {
        self.key
    }

    /// Validates one data row (`fields` as read, `line` its first line).
    pub fn row(&self, line: u64, fields: &[&str]) -> RowOutcome {
        let cell = |(i, _): &(usize, String)| fields.get(*i).map(|s| s.trim()).unwrap_or("");
        let email = cell(&self.email);
        let external_id = self.external_id.as_ref().map(cell);

        // The key first: without a usable key the row cannot even count as
        // "seen", so it is rejected outright.
        let match_key = match self.key {
            MatchKey::Email => {
                if email.is_empty() {
                    return RowOutcome::rejected(line, &self.email.1, "email is missing");
                }
                if let Err(why) = check_email(email) {
                    return RowOutcome::rejected(line, &self.email.1, why);
                }
                email.to_lowercase()
            }
            MatchKey::ExternalId => {
                let (_, header) = self
                    .external_id
                    .as_ref()
                    .expect("checked: external_id mapped");
                match external_id {
                    Some(id) if !id.is_empty() => id.to_string(),
                    _ => return RowOutcome::rejected(line, header, "external ID is missing"),
                }
            }
        };

        // PostgreSQL text cannot hold a NUL byte, and no HR value has one:
        // it means a damaged file or a binary column. The row stays "seen"
        // through its key (a damaged row never deactivates anyone) and is
        // rejected, carrying no other value.
        if let Some(i) = fields.iter().position(|f| f.contains('\0')) {
            let why = text::NUL_BYTE.render(&[&(i + 1).to_string()]);
            let key_header = match self.key {
                MatchKey::Email => &self.email.1,
                MatchKey::ExternalId => &self.external_id.as_ref().expect("checked").1,
            };
            if match_key.contains('\0') {
                return RowOutcome::rejected(line, key_header, why);
            }
            return RowOutcome::Staged(StagedRow {
                line,
                match_key,
                email: None,
                external_id: None,
                first_name: None,
                last_name: None,
                active: None,
                profile: None,
                managers: None,
                groups: None,
                roles: None,
                error: Some(RowError {
                    line,
                    column: None,
                    message: why,
                }),
                warnings: Vec::new(),
                digest: None,
                repeat_hint: false,
            });
        }

        let mut row = StagedRow {
            line,
            match_key,
            email: (!email.is_empty()).then(|| email.to_string()),
            external_id: external_id.filter(|s| !s.is_empty()).map(str::to_string),
            first_name: self.first_name.as_ref().map(|c| cell(c).to_string()),
            last_name: self.last_name.as_ref().map(|c| cell(c).to_string()),
            active: None,
            profile: None,
            managers: self.managers.as_ref().map(|c| cell(c).to_string()),
            groups: self.groups.as_ref().map(|c| cell(c).to_string()),
            roles: self.roles.as_ref().map(|c| cell(c).to_string()),
            error: None,
            warnings: Vec::new(),
            digest: None,
            repeat_hint: false,
        };

        // From here on, problems keep the row "seen" but reject it.
        if fields.len() != self.header_len {
            row.error = Some(RowError {
                line,
                column: None,
                message: text::FIELD_COUNT
                    .render(&[&fields.len().to_string(), &self.header_len.to_string()]),
            });
            return RowOutcome::Staged(row);
        }
        if self.key == MatchKey::ExternalId {
            if email.is_empty() {
                row.error = Some(RowError::new(
                    line,
                    &self.email.1,
                    text::EMAIL_MISSING.render(&[]),
                ));
                return RowOutcome::Staged(row);
            }
            if let Err(why) = check_email(email) {
                row.error = Some(RowError::new(line, &self.email.1, why));
                return RowOutcome::Staged(row);
            }
        }
        if let Some(status) = &self.status {
            match parse_status(cell(status)) {
                Ok(active) => row.active = Some(active),
                Err(why) => {
                    row.error = Some(RowError::new(line, &status.1, why));
                    return RowOutcome::Staged(row);
                }
            }
        }
        if !self.profile.is_empty() {
            let mut map = serde_json::Map::new();
            for (key, i, header, ty) in &self.profile {
                let v = fields.get(*i).map(|s| s.trim()).unwrap_or("");
                if v.is_empty() {
                    // An empty cell clears the field.
                    map.insert(key.clone(), serde_json::Value::String(String::new()));
                    continue;
                }
                match ty.convert(v) {
                    Ok(value) => {
                        map.insert(key.clone(), value);
                    }
                    // A value of the wrong type is skipped (the stored one
                    // stays); the rest of the row applies.
                    Err(why) => row.warnings.push(RowError::new(
                        line,
                        header,
                        text::PROFILE_LEFT_UNCHANGED.render(&[&why, key, ty.as_str()]),
                    )),
                }
            }
            row.profile = Some(map);
        }
        RowOutcome::Staged(row)
    }
}

/// `1`/`Active` is active, `0`/`Inactive` inactive, any case.
pub fn parse_status(v: &str) -> Result<bool, String> {
    match v.trim().to_ascii_lowercase().as_str() {
        "1" | "active" => Ok(true),
        "0" | "inactive" => Ok(false),
        "" => Err(text::STATUS_EMPTY.render(&[])),
        other => Err(text::STATUS_UNKNOWN.render(&[other])),
    }
}

/// A deliberately permissive address check: one `@`, something on each side,
/// a dot in the domain, no spaces, at most 254 characters. Unicode and
/// plus-addressing are valid; deliverability is not our call.
pub fn check_email(e: &str) -> Result<(), String> {
    let bad = || Err(text::EMAIL_INVALID.render(&[e]));
    if e.len() > 254 || e.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return bad();
    }
    let Some((local, domain)) = e.split_once('@') else {
        return bad();
    };
    if local.is_empty() || domain.contains('@') || !domain.contains('.') {
        return bad();
    }
    if domain.starts_with('.') || domain.ends_with('.') || domain.contains("..") {
        return bad();
    }
    Ok(())
}

/// A row ready to stage: its key is valid; `error` says if it is otherwise
/// rejected. Unmapped fields are `None` and never touched.
#[derive(Debug, Clone, PartialEq)]
pub struct StagedRow {
    /// First line of the row in the file (1 is the header).
    pub line: u64,
    /// Normalised key: lower-cased email or trimmed external ID.
    pub match_key: String,
    /// Email as written (trimmed).
    pub email: Option<String>,
    /// External ID (trimmed).
    pub external_id: Option<String>,
    /// First name, when mapped.
    pub first_name: Option<String>,
    /// Last name, when mapped.
    pub last_name: Option<String>,
    /// Status, when the status column is mapped.
    pub active: Option<bool>,
    /// Profile values, when profile fields are mapped.
    pub profile: Option<serde_json::Map<String, serde_json::Value>>,
    /// Raw managers cell, when mapped.
    pub managers: Option<String>,
    /// Raw groups cell, when mapped.
    pub groups: Option<String>,
    /// Raw roles cell, when mapped.
    pub roles: Option<String>,
    /// Why the row is rejected although its key is known.
    pub error: Option<RowError>,
    /// Problems that do not stop the row (recorded as warnings).
    pub warnings: Vec<RowError>,
    /// What the row applies, when it is clean ([`StagedRow::digest_for`]).
    pub digest: Option<[u8; 16]>,
    /// The key may have been on an earlier line of the file (set while
    /// parsing, from a Bloom filter: always set on a real repeat).
    pub repeat_hint: bool,
}

impl StagedRow {
    /// 128 bits of SHA-256 over the tenant's feed `epoch` and every value
    /// this row applies, as it is staged (each list cell as its trimmed
    /// items, profile values converted, an unmapped column distinct from an
    /// empty one). `None` for a row with an error or a warning: such a row
    /// must be applied, and report its problem, on every upload.
    ///
    /// A user whose stored digest equals this one applied exactly this row
    /// under this epoch, and nothing outside the file has changed what it
    /// would do since (the triggers of migration 0011 clear or outdate the
    /// digest otherwise), so applying it again would change nothing.
    pub fn digest_for(&self, epoch: i64) -> Option<[u8; 16]> {
        use sha2::{Digest, Sha256};
        if self.error.is_some() || !self.warnings.is_empty() {
            return None;
        }
        fn text(h: &mut Sha256, v: Option<&str>) {
            match v {
                None => h.update([0]),
                Some(s) => {
                    h.update([1]);
                    h.update((s.len() as u64).to_le_bytes());
                    h.update(s.as_bytes());
                }
            }
        }
        fn list(h: &mut Sha256, v: Option<&str>) {
            match v {
                None => h.update([0]),
                Some(cell) => {
                    h.update([1]);
                    for item in split_list(cell) {
                        text(h, Some(item));
                    }
                    h.update([2]);
                }
            }
        }
        let mut h = Sha256::new();
        h.update(b"userfeed row digest v1\0");
        h.update(epoch.to_le_bytes());
        text(&mut h, Some(&self.match_key));
        text(&mut h, self.email.as_deref());
        text(&mut h, self.external_id.as_deref());
        text(&mut h, self.first_name.as_deref());
        text(&mut h, self.last_name.as_deref());
        h.update([match self.active {
            None => 0,
            Some(false) => 1,
            Some(true) => 2,
        }]);
        // serde_json's map is ordered by key, so this is canonical.
        let profile = self
            .profile
            .as_ref()
            .map(|p| serde_json::to_string(p).unwrap_or_default());
        text(&mut h, profile.as_deref());
        list(&mut h, self.managers.as_deref());
        list(&mut h, self.groups.as_deref());
        list(&mut h, self.roles.as_deref());
        let full = h.finalize();
        let mut out = [0u8; 16];
        out.copy_from_slice(&full[..16]);
        Some(out)
    }
}

/// A problem with one row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    /// First line of the row.
    pub line: u64,
    /// The CSV header of the offending column, if one.
    pub column: Option<String>,
    /// What is wrong, for the customer's admin.
    pub message: String,
}

impl RowError {
    fn new(line: u64, column: &str, message: impl Into<String>) -> Self {
        RowError {
            line,
            column: Some(column.to_string()),
            message: message.into(),
        }
    }
}

/// The result of validating a row.
// Boxing the large variant would cost one allocation per row on the hot
// path; the value is moved straight into the batch vector.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum RowOutcome {
    /// Staged (possibly carrying a rejection that still marks the key seen).
    Staged(StagedRow),
    /// Rejected without a usable key.
    Rejected(RowError),
}

impl RowOutcome {
    fn rejected(line: u64, column: &str, message: impl Into<String>) -> Self {
        RowOutcome::Rejected(RowError::new(line, column, message))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_role_reads_its_own_names_from_the_one_table() {
        for (i, role) in Role::ALL.into_iter().enumerate() {
            assert_eq!(role as usize, i);
            assert_eq!(Role::parse(role.display_name()), Some(role));
            assert_eq!(Role::parse(role.as_str()), Some(role));
        }
        assert_eq!(Role::parse("Admin"), Some(Role::Administrator));
        assert!(!Role::Learner.is_stored() && Role::Manager.is_stored());
    }

    fn mapping(status: bool) -> Mapping {
        let mut m = Mapping::default();
        m.columns.email = Some("Work Email".into());
        m.columns.external_id = Some("Employee ID".into());
        m.columns.first_name = Some("First".into());
        m.columns.last_name = Some("Last".into());
        if status {
            m.columns.status = Some("Status".into());
        }
        m
    }

    fn header(cols: &[&str]) -> Vec<String> {
        cols.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn headers_match_ignoring_case_and_spaces() {
        let h = header(&[" work email ", "EMPLOYEE ID", "first", "Last"]);
        let b = BoundMapping::bind(&mapping(false), MatchKey::Email, &h, &BTreeMap::new()).unwrap();
        let RowOutcome::Staged(r) = b.row(2, &["Ann@Example.com ", "E1", "Ann", "Lee"]) else {
            panic!()
        };
        assert_eq!(r.match_key, "ann@example.com");
        assert_eq!(r.email.as_deref(), Some("Ann@Example.com"));
        assert_eq!(r.first_name.as_deref(), Some("Ann"));
        assert!(r.error.is_none());
    }

    #[test]
    fn missing_mapped_column_lists_expected_and_found() {
        let h = header(&["Work Email", "First"]);
        let err =
            BoundMapping::bind(&mapping(true), MatchKey::Email, &h, &BTreeMap::new()).unwrap_err();
        assert_eq!(err.missing, vec!["Employee ID", "Last", "Status"]);
        let msg = err.to_string();
        assert!(
            msg.contains("expected") && msg.contains("found") && msg.contains("\"First\""),
            "{msg}"
        );
    }

    #[test]
    fn status_values_parse_in_any_case() {
        for (v, want) in [
            ("1", true),
            ("Active", true),
            ("ACTIVE", true),
            (" 0 ", false),
            ("inactive", false),
        ] {
            assert_eq!(parse_status(v), Ok(want), "{v}");
        }
        assert!(parse_status("yes").is_err());
        assert!(parse_status("").is_err());
    }

    #[test]
    fn bad_status_keeps_row_seen_but_rejected() {
        let h = header(&["Work Email", "Employee ID", "First", "Last", "Status"]);
        let b = BoundMapping::bind(&mapping(true), MatchKey::Email, &h, &BTreeMap::new()).unwrap();
        let RowOutcome::Staged(r) = b.row(3, &["a@x.io", "E1", "A", "B", "maybe"]) else {
            panic!()
        };
        let e = r.error.expect("rejected");
        assert_eq!((e.line, e.column.as_deref()), (3, Some("Status")));
    }

    #[test]
    fn row_without_key_is_rejected_with_line_and_column() {
        let h = header(&["Work Email", "Employee ID", "First", "Last"]);
        let b = BoundMapping::bind(&mapping(false), MatchKey::ExternalId, &h, &BTreeMap::new())
            .unwrap();
        let RowOutcome::Rejected(e) = b.row(7, &["a@x.io", "  ", "A", "B"]) else {
            panic!()
        };
        assert_eq!((e.line, e.column.as_deref()), (7, Some("Employee ID")));
        let b = BoundMapping::bind(&mapping(false), MatchKey::Email, &h, &BTreeMap::new()).unwrap();
        let RowOutcome::Rejected(e) = b.row(8, &["not-an-email", "E1", "A", "B"]) else {
            panic!()
        };
        assert!(e.message.contains("not a valid address"), "{}", e.message);
    }

    #[test]
    fn ragged_row_is_rejected_but_keeps_its_key() {
        let h = header(&["Work Email", "Employee ID", "First", "Last"]);
        let b = BoundMapping::bind(&mapping(false), MatchKey::Email, &h, &BTreeMap::new()).unwrap();
        let RowOutcome::Staged(r) = b.row(4, &["a@x.io", "E1", "A"]) else {
            panic!()
        };
        assert!(r.error.unwrap().message.contains("3 fields"));
    }

    #[test]
    fn profile_values_are_typed_and_a_bad_value_is_a_warning_that_skips_only_that_field() {
        let mut m = mapping(false);
        m.profile.insert("hired".into(), "Hired".into());
        m.profile.insert("level".into(), "Level".into());
        m.profile.insert("remote".into(), "Remote".into());
        let types: BTreeMap<String, FieldType> = [
            ("hired".to_string(), FieldType::Date),
            ("level".to_string(), FieldType::Number),
            ("remote".to_string(), FieldType::Boolean),
        ]
        .into();
        let h = header(&[
            "Work Email",
            "Employee ID",
            "First",
            "Last",
            "Hired",
            "Level",
            "Remote",
        ]);
        let b = BoundMapping::bind(&m, MatchKey::Email, &h, &types).unwrap();
        let RowOutcome::Staged(r) = b.row(2, &["a@x.io", "E1", "A", "B", "2024-02-30", "3", "Yes"])
        else {
            panic!()
        };
        let p = r.profile.unwrap();
        assert_eq!(p.get("level"), Some(&serde_json::json!(3)));
        assert_eq!(p.get("remote"), Some(&serde_json::json!(true)));
        assert!(!p.contains_key("hired"), "an invalid date is skipped");
        assert_eq!(r.warnings.len(), 1);
        assert_eq!(r.warnings[0].column.as_deref(), Some("Hired"));
        assert!(
            r.warnings[0].message.contains("YYYY-MM-DD"),
            "{}",
            r.warnings[0].message
        );
        assert!(r.error.is_none(), "the row itself applies");
    }

    #[test]
    fn field_type_conversions() {
        assert_eq!(
            FieldType::Number.convert("-3.5"),
            Ok(serde_json::json!(-3.5))
        );
        assert!(FieldType::Number.convert("1,234").is_err());
        assert!(FieldType::Number.convert("NaN").is_err());
        assert_eq!(
            FieldType::Date.convert("2026-11-22"),
            Ok(serde_json::json!("2026-11-22"))
        );
        assert!(FieldType::Date.convert("22/11/2026").is_err());
        assert_eq!(
            FieldType::Boolean.convert("N"),
            Ok(serde_json::json!(false))
        );
        assert!(FieldType::Boolean.convert("maybe").is_err());
        assert_eq!(
            FieldType::Text.convert("=HYPERLINK(1)"),
            Ok(serde_json::json!("=HYPERLINK(1)"))
        );
    }

    #[test]
    fn email_check_accepts_unicode_and_plus_and_rejects_junk() {
        for ok in ["a+tag@example.com", "zoë@exämple.de", "x@sub.example.co.uk"] {
            assert!(check_email(ok).is_ok(), "{ok}");
        }
        for bad in [
            "", "a", "a@", "@b.c", "a@b", "a b@c.d", "a@@b.c", "a@.b.c", "a@b..c",
        ] {
            assert!(check_email(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn mapping_toml_round_trips_and_requires_email() {
        let text =
            "[columns]\nemail = \"E\"\nexternal_id = \"ID\"\n[profile]\ndepartment = \"Dept\"\n";
        let m = Mapping::from_toml(text, MatchKey::ExternalId).unwrap();
        assert_eq!(
            Mapping::from_toml(&m.to_toml(), MatchKey::ExternalId).unwrap(),
            m
        );
        assert_eq!(
            Mapping::from_toml("[columns]\nfirst_name = \"F\"\n", MatchKey::Email),
            Err(MappingError::Required("email"))
        );
        assert!(matches!(
            Mapping::from_toml("[columns]\nemail = \"E\"\nemial = \"x\"\n", MatchKey::Email),
            Err(MappingError::Toml(_))
        ));
        assert_eq!(
            Mapping::from_toml(
                "[columns]\nemail = \"E\"\nfirst_name = \" e \"\n",
                MatchKey::Email
            ),
            Err(MappingError::Reused(" e ".into()))
        );
    }

    // Property test (issue 5's fuzzing): any bytes after a valid header go
    // through the CSV reader and the row mapping as rows, row problems or a
    // file error, never a panic; every staged row keeps a usable key.
    // `PROPTEST_CASES=100000 cargo test -p userfeed never_panics` for longer.
    mod fuzz {
        use proptest::prelude::*;

        use super::*;
        use crate::parse::{CsvStream, Limits};

        proptest! {
            #[test]
            fn any_file_body_maps_to_rows_or_errors_and_never_panics(
                body in proptest::collection::vec(
                    prop_oneof![
                        Just(b','), Just(b'"'), Just(b'\n'), Just(b'\r'), Just(b'@'),
                        Just(b'|'), Just(0u8), Just(0xC3u8), Just(0xA9u8), any::<u8>(),
                        b'a'..=b'z',
                    ],
                    0..400,
                ),
                status in any::<bool>(),
            ) {
                let mut file = b"Employee ID,Work Email,First,Last,Status\n".to_vec();
                file.extend(&body);
                let limits = Limits { max_record_bytes: 200, max_field_bytes: 100, ..Limits::default() };
                let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
                rt.block_on(async {
                    let Ok(mut csv) = CsvStream::open_with(&file[..], limits).await else {
                        return Ok(());
                    };
                    let bound = BoundMapping::bind(
                        &mapping(status), MatchKey::Email, csv.header(), &BTreeMap::new(),
                    ).expect("the header is valid");
                    while let Ok(Some((line, fields))) = csv.next_row().await {
                        if let RowOutcome::Staged(row) = bound.row(line, &fields) {
                            prop_assert!(!row.match_key.is_empty());
                            prop_assert!(!row.match_key.contains('\0'));
                        }
                    }
                    Ok(())
                })?;
            }
        }
    }
}
