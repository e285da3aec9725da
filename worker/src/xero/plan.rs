//! Which employees an import would create, which it cannot, and which are
//! already users: pure, so every rule of the seed document is unit-tested
//! here without Xero or a database.
//!
//! In Xero's order, each employee is, by the first rule that applies:
//! 1. **left**: terminated (AU), or an `endDate` in the past (UK, NZ);
//! 2. **no email**, or an **invalid email** (the feed's own email check);
//! 3. a **duplicate email** of an earlier employee;
//! 4. **already present**: a user of the tenant has that email;
//! 5. **over the cap**: the tenant's Xero-imported users plus those
//!    imported now would pass `xero.max_users`;
//! 6. otherwise **importable**.

use std::collections::{HashMap, HashSet};

use serde::Serialize;

use crate::rules::text;

/// An employee as read from either payroll API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Employee {
    /// Xero's employee ID.
    pub id: String,
    /// First name.
    pub first_name: String,
    /// Last name.
    pub last_name: String,
    /// Email, when Xero has one.
    pub email: Option<String>,
    /// The employee has left: on this date (empty when Xero gave none).
    pub left_on: Option<String>,
}

/// A person as the preview lists them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Person {
    /// Xero's employee ID.
    pub xero_id: String,
    /// First name.
    pub first_name: String,
    /// Last name.
    pub last_name: String,
    /// Email (trimmed), when there is one.
    pub email: Option<String>,
}

/// Why an employee cannot be imported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Skip {
    /// Terminated, or an end date in the past.
    Left,
    /// No email in Xero.
    NoEmail,
    /// An email the feed's check refuses.
    InvalidEmail,
    /// The same email as an earlier employee.
    DuplicateEmail,
    /// Importing them would pass the cap.
    OverCap,
}

/// An employee that cannot be imported, with the reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Skipped {
    /// Who.
    #[serde(flatten)]
    pub person: Person,
    /// Why, as a code.
    pub reason: Skip,
    /// Why, in words for the admin.
    pub message: String,
}

/// What an import would do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct XeroPreview {
    /// The organisation.
    pub organisation: String,
    /// Its payroll region.
    pub region: super::Region,
    /// Employees an import creates as users.
    pub importable: Vec<Person>,
    /// Employees it cannot import, each with the reason.
    pub not_importable: Vec<Skipped>,
    /// Employees who are users already (left as they are).
    pub present: Vec<Person>,
    /// `xero.max_users`.
    pub cap: u64,
    /// Users Xero imports have created so far (still active).
    pub imported_before: u64,
}

impl Person {
    fn of(e: &Employee) -> Person {
        Person {
            xero_id: e.id.clone(),
            first_name: e.first_name.trim().to_string(),
            last_name: e.last_name.trim().to_string(),
            email: e
                .email
                .as_deref()
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string),
        }
    }

    /// "First Last <email>" for messages.
    pub fn label(&self) -> String {
        let name = format!("{} {}", self.first_name, self.last_name);
        let name = name.trim();
        let name = if name.is_empty() { "(no name)" } else { name };
        match &self.email {
            Some(e) => format!("{name} <{e}>"),
            None => name.to_string(),
        }
    }
}

fn skipped(person: Person, reason: Skip, detail: &str) -> Skipped {
    let why = match reason {
        Skip::Left => text::XERO_LEFT.render(&[detail]),
        Skip::NoEmail => text::XERO_NO_EMAIL.render(&[]),
        Skip::InvalidEmail => text::XERO_INVALID_EMAIL.render(&[detail]),
        Skip::DuplicateEmail => text::XERO_DUPLICATE_EMAIL.render(&[detail]),
        Skip::OverCap => text::XERO_OVER_CAP.render(&[detail]),
    };
    let message = format!("Xero employee {}: {why}", person.label());
    Skipped {
        person,
        reason,
        message,
    }
}

/// Sorts `employees`. `present` holds the lowercased emails of the
/// tenant's users among them; `imported_before` the tenant's users
/// created by earlier Xero imports; `cap` the most there may be.
pub fn plan(
    organisation: &str,
    region: super::Region,
    employees: &[Employee],
    present: &HashSet<String>,
    imported_before: u64,
    cap: u64,
) -> XeroPreview {
    let mut out = XeroPreview {
        organisation: organisation.to_string(),
        region,
        importable: vec![],
        not_importable: vec![],
        present: vec![],
        cap,
        imported_before,
    };
    let room = cap.saturating_sub(imported_before);
    let mut first_with: HashMap<String, String> = HashMap::new();
    for e in employees {
        let p = Person::of(e);
        if let Some(on) = &e.left_on {
            let when = if on.is_empty() {
                String::new()
            } else {
                format!(" on {on}")
            };
            out.not_importable.push(skipped(p, Skip::Left, &when));
            continue;
        }
        let Some(email) = p.email.clone() else {
            out.not_importable.push(skipped(p, Skip::NoEmail, ""));
            continue;
        };
        if crate::map::check_email(&email).is_err() {
            out.not_importable
                .push(skipped(p, Skip::InvalidEmail, &email));
            continue;
        }
        let key = email.to_lowercase();
        if let Some(first) = first_with.get(&key) {
            let first = first.clone();
            out.not_importable
                .push(skipped(p, Skip::DuplicateEmail, &first));
            continue;
        }
        first_with.insert(key.clone(), p.label());
        if present.contains(&key) {
            out.present.push(p);
        } else if out.importable.len() as u64 >= room {
            out.not_importable
                .push(skipped(p, Skip::OverCap, &cap.to_string()));
        } else {
            out.importable.push(p);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xero::Region;

    fn emp(id: &str, email: Option<&str>) -> Employee {
        Employee {
            id: id.into(),
            first_name: format!("F{id}"),
            last_name: format!("L{id}"),
            email: email.map(str::to_string),
            left_on: None,
        }
    }

    #[test]
    fn each_employee_lands_in_one_group_by_the_first_rule_that_applies() {
        let mut left = emp("1", Some("left@example.com"));
        left.left_on = Some("2025-01-31".into());
        let employees = vec![
            left,
            emp("2", None),
            emp("3", Some("   ")),
            emp("4", Some("not-an-email")),
            emp("5", Some("Ann@Example.com")),
            emp("6", Some("ann@example.com")),
            emp("7", Some("bob@example.com")),
            emp("8", Some("cy@example.com")),
        ];
        let present = HashSet::from(["bob@example.com".to_string()]);
        let p = plan("Org", Region::Au, &employees, &present, 0, 200);
        let reasons: Vec<(String, Skip)> = p
            .not_importable
            .iter()
            .map(|s| (s.person.xero_id.clone(), s.reason))
            .collect();
        assert_eq!(
            reasons,
            [
                ("1".into(), Skip::Left),
                ("2".into(), Skip::NoEmail),
                ("3".into(), Skip::NoEmail),
                ("4".into(), Skip::InvalidEmail),
                ("6".into(), Skip::DuplicateEmail),
            ]
        );
        assert!(p.not_importable[0].message.contains("left on 2025-01-31"));
        assert!(
            p.not_importable[4]
                .message
                .contains("F5 L5 <Ann@Example.com>")
        );
        let ids = |v: &[Person]| v.iter().map(|p| p.xero_id.clone()).collect::<Vec<_>>();
        assert_eq!(ids(&p.importable), ["5", "8"]);
        assert_eq!(ids(&p.present), ["7"]);
    }

    #[test]
    fn the_cap_counts_earlier_imports_and_present_users_take_no_room() {
        let employees: Vec<Employee> = (0..6)
            .map(|i| emp(&i.to_string(), Some(&format!("p{i}@example.com"))))
            .collect();
        let present = HashSet::from(["p0@example.com".to_string()]);
        let p = plan("Org", Region::Uk, &employees, &present, 197, 200);
        assert_eq!(p.present.len(), 1);
        assert_eq!(p.importable.len(), 3);
        assert_eq!(p.not_importable.len(), 2);
        assert!(p.not_importable.iter().all(|s| s.reason == Skip::OverCap));
        assert!(
            p.not_importable[0].message.contains("200"),
            "{}",
            p.not_importable[0].message
        );
        let full = plan("Org", Region::Uk, &employees, &present, 200, 200);
        assert!(full.importable.is_empty());
    }
}
