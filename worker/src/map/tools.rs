//! Helpers for the customer's admin: suggest a mapping from a sample file's
//! header, and print a template file for a tenant's mapping.

use std::collections::BTreeMap;

use super::{FieldType, Mapping, normalise_header};

/// Header spellings recognised for each platform field, normalised (lower
/// case, `_`/`-` as spaces). Order matters: the first field to claim a
/// header gets it.
const SYNONYMS: &[(&str, &[&str])] = &[
    (
        "email",
        &[
            "email",
            "work email",
            "email address",
            "work email address",
            "e mail",
            "e mail address",
            "business email",
            "mail",
        ],
    ),
    (
        "external_id",
        &[
            "employee id",
            "employee number",
            "employee no",
            "employee #",
            "staff id",
            "staff number",
            "emp id",
            "emp no",
            "external id",
            "personnel number",
            "worker id",
            "id",
        ],
    ),
    (
        "first_name",
        &[
            "first name",
            "firstname",
            "given name",
            "forename",
            "preferred first name",
        ],
    ),
    (
        "last_name",
        &["last name", "lastname", "surname", "family name"],
    ),
    (
        "status",
        &["status", "employment status", "employee status", "active"],
    ),
    (
        "managers",
        &[
            "manager email",
            "managers",
            "manager",
            "manager emails",
            "line manager email",
            "supervisor email",
            "reports to",
        ],
    ),
    ("groups", &["groups", "group", "group ids", "go1 groups"]),
    ("roles", &["roles", "role", "platform role", "go1 role"]),
];

fn simplify(h: &str) -> String {
    normalise_header(h)
        .replace(['_', '-'], " ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// A suggested mapping and the columns it left unmapped.
#[derive(Debug, Clone, PartialEq)]
pub struct Suggestion {
    /// The recognised columns.
    pub mapping: Mapping,
    /// Headers not recognised (candidates for custom profile fields).
    pub unmapped: Vec<String>,
}

impl Suggestion {
    /// The suggestion as a commented mapping file.
    pub fn to_toml(&self) -> String {
        let mut out = String::from(
            "# Suggested by `userfeed mapping suggest`; check it before `userfeed mapping set`.\n",
        );
        if self.mapping.columns.email.is_none() {
            out.push_str("# No email column was recognised: set `email = \"<header>\"` under [columns] (required).\n");
        }
        out.push_str(&self.mapping.to_toml());
        if !self.unmapped.is_empty() {
            out.push_str(
                "\n# Columns not recognised. To keep one as a custom profile field, define it\n",
            );
            out.push_str("# (`userfeed profile-field add TENANT KEY --type text`) and map it:\n# [profile]\n");
            for h in &self.unmapped {
                let key: String = simplify(h)
                    .replace(' ', "_")
                    .chars()
                    .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                out.push_str(&format!("# {key} = {h:?}\n"));
            }
        }
        out
    }
}

/// Suggests a mapping for a file with this header.
pub fn suggest(header: &[String]) -> Suggestion {
    let mut mapping = Mapping::default();
    let mut unmapped = Vec::new();
    let mut taken: BTreeMap<&str, ()> = BTreeMap::new();
    for h in header.iter().filter(|h| !h.trim().is_empty()) {
        let s = simplify(h);
        let field = SYNONYMS
            .iter()
            .find(|(field, names)| !taken.contains_key(field) && names.contains(&s.as_str()))
            .map(|(field, _)| *field);
        let Some(field) = field else {
            unmapped.push(h.trim().to_string());
            continue;
        };
        taken.insert(field, ());
        if let Some(slot) = mapping.columns.slot(field) {
            *slot = Some(h.trim().to_string());
        }
    }
    Suggestion { mapping, unmapped }
}

/// A CSV header and one example row for a tenant's mapping.
pub fn template(mapping: &Mapping, types: &BTreeMap<String, FieldType>) -> String {
    let c = &mapping.columns;
    let mut cols: Vec<(String, String)> = Vec::new();
    let mut push = |h: &Option<String>, example: &str| {
        if let Some(h) = h {
            cols.push((h.clone(), example.to_string()));
        }
    };
    push(&c.external_id, "100234");
    push(&c.email, "jane.citizen@example.com");
    push(&c.first_name, "Jane");
    push(&c.last_name, "Citizen");
    push(&c.status, "Active");
    push(&c.managers, "alex.boss@example.com|sam.lead@example.com");
    push(&c.groups, "GROUP-ID-1|GROUP-ID-2");
    push(&c.roles, "Learner|Manager");
    for (key, h) in &mapping.profile {
        let example = match types.get(key).copied().unwrap_or(FieldType::Text) {
            FieldType::Text => "text",
            FieldType::Number => "42",
            FieldType::Date => "2026-01-31",
            FieldType::Boolean => "true",
        };
        cols.push((h.clone(), example.to_string()));
    }
    let line = |cells: Vec<&str>| {
        cells
            .iter()
            .map(|c| csv_cell(c))
            .collect::<Vec<_>>()
            .join(",")
    };
    format!(
        "{}\n{}\n",
        line(cols.iter().map(|(h, _)| h.as_str()).collect()),
        line(cols.iter().map(|(_, e)| e.as_str()).collect())
    )
}

/// One CSV cell, quoted when needed. Cells that a spreadsheet would run as a
/// formula (`=`, `+`, `-`, `@`, tab, carriage return) get a leading `'`, so
/// opening an error report never executes customer data.
pub fn csv_cell(v: &str) -> String {
    if v.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        csv_quoted(&format!("'{v}"))
    } else {
        csv_quoted(v)
    }
}

/// One CSV cell as RFC 4180 writes it: quoted when it holds a delimiter, a
/// quote or a line break, and otherwise as it is.
pub fn csv_quoted(v: &str) -> String {
    if v.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", v.replace('"', "\"\""))
    } else {
        v.to_string()
    }
}

/// Whether two names are the same once case, spacing, `_` and `-` are set
/// aside (a profile field `cost_centre` and a column "Cost Centre").
pub fn same_name(a: &str, b: &str) -> bool {
    simplify(a) == simplify(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(cols: &[&str]) -> Vec<String> {
        cols.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn common_hris_headers_are_recognised_and_the_rest_listed() {
        let s = suggest(&h(&[
            "Employee Number",
            "Work Email",
            "First_Name",
            "SURNAME",
            "Manager Email",
            "Department",
            "Job Title",
        ]));
        let c = &s.mapping.columns;
        assert_eq!(c.external_id.as_deref(), Some("Employee Number"));
        assert_eq!(c.email.as_deref(), Some("Work Email"));
        assert_eq!(c.first_name.as_deref(), Some("First_Name"));
        assert_eq!(c.last_name.as_deref(), Some("SURNAME"));
        assert_eq!(c.managers.as_deref(), Some("Manager Email"));
        assert_eq!(s.unmapped, vec!["Department", "Job Title"]);
        let toml = s.to_toml();
        assert!(
            toml.contains("# department = \"Department\"")
                && toml.contains("# job_title = \"Job Title\""),
            "{toml}"
        );
        // The suggestion parses as a mapping.
        let text: String = toml
            .lines()
            .filter(|l| !l.starts_with('#'))
            .collect::<Vec<_>>()
            .join("\n");
        assert_eq!(
            Mapping::from_toml(&text, super::super::MatchKey::ExternalId).unwrap(),
            s.mapping
        );
    }

    #[test]
    fn e_mail_spellings_are_recognised_and_a_missing_email_is_flagged() {
        let s = suggest(&h(&["E-Mail Address", "Given Name"]));
        assert_eq!(s.mapping.columns.email.as_deref(), Some("E-Mail Address"));
        assert!(
            suggest(&h(&["Name"]))
                .to_toml()
                .contains("No email column was recognised")
        );
    }

    #[test]
    fn a_field_is_claimed_once() {
        let s = suggest(&h(&["Email", "E-mail", "ID"]));
        assert_eq!(s.mapping.columns.email.as_deref(), Some("Email"));
        assert_eq!(s.unmapped, vec!["E-mail"]);
    }

    #[test]
    fn the_template_follows_the_mapping_and_types() {
        let mut m = Mapping::default();
        m.columns.email = Some("Work Email".into());
        m.columns.roles = Some("Roles".into());
        m.profile.insert("start".into(), "Start Date".into());
        let types = [("start".to_string(), FieldType::Date)].into();
        assert_eq!(
            template(&m, &types),
            "Work Email,Roles,Start Date\njane.citizen@example.com,Learner|Manager,2026-01-31\n"
        );
    }

    #[test]
    fn csv_cells_are_quoted_and_formulas_defused() {
        assert_eq!(csv_cell("plain"), "plain");
        assert_eq!(csv_cell("a,b"), "\"a,b\"");
        assert_eq!(csv_cell("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_cell("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(csv_cell("-5"), "'-5");
    }
}
