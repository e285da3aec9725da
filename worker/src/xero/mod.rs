//! Importing a Xero organisation's employees as users (`docs/xero.md`).
//!
//! A second source of the same pipeline: a tenant connects one Xero
//! organisation ([`oauth`], tokens encrypted by [`vault`]); `preview` reads
//! its employees through the payroll API of the organisation's region
//! ([`client`]) and sorts them ([`plan`]) into those an import would create,
//! those it cannot (with the reason) and those already present; `import`
//! records an upload of source `xero` whose file is the importable and
//! present employees, kept in the database (`source::stored`), and the
//! apply engine runs it additively like any other upload: same rules,
//! history, metrics, problems and undo.

pub mod client;
pub mod connection;
pub mod oauth;
pub mod plan;
pub mod vault;

use serde::Serialize;

pub use client::{XeroClient, XeroError};
pub use connection::{ConnectionInfo, XeroService};
pub use plan::{Employee, Person, Skip, Skipped, XeroPreview};

/// Which payroll API holds an organisation's employees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Region {
    /// Australia: Payroll AU v1 (`/payroll.xro/1.0/Employees`).
    Au,
    /// United Kingdom: Payroll v2 (`/payroll.xro/2.0/Employees`).
    Uk,
    /// New Zealand: Payroll v2, like the UK.
    Nz,
}

impl Region {
    /// The region of an organisation in `country` (ISO 3166 alpha-2, as
    /// Xero's `Organisation.CountryCode` gives it).
    pub fn for_country(country: &str) -> Result<Region, XeroError> {
        match country.to_ascii_uppercase().as_str() {
            "AU" => Ok(Region::Au),
            "GB" | "UK" => Ok(Region::Uk),
            "NZ" => Ok(Region::Nz),
            other => Err(XeroError::NoPayroll {
                country: other.to_string(),
            }),
        }
    }

    /// As stored (`au`, `uk`, `nz`).
    pub fn as_str(self) -> &'static str {
        match self {
            Region::Au => "au",
            Region::Uk => "uk",
            Region::Nz => "nz",
        }
    }

    /// Reads a stored region.
    pub fn parse(s: &str) -> Option<Region> {
        match s {
            "au" => Some(Region::Au),
            "uk" => Some(Region::Uk),
            "nz" => Some(Region::Nz),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_australia_the_uk_and_new_zealand_have_a_payroll_region() {
        assert_eq!(Region::for_country("AU").unwrap(), Region::Au);
        assert_eq!(Region::for_country("GB").unwrap(), Region::Uk);
        assert_eq!(Region::for_country("nz").unwrap(), Region::Nz);
        let us = Region::for_country("US").unwrap_err().to_string();
        assert!(us.contains("no payroll API for the United States"), "{us}");
        assert!(Region::for_country("ZA").is_err());
        for r in [Region::Au, Region::Uk, Region::Nz] {
            assert_eq!(Region::parse(r.as_str()), Some(r));
        }
    }
}
