//! `[drop]`: the drop folder.

use serde::Deserialize;

use super::{ConfigError, bad};

/// `[drop]`: the drop folder (`docs/drop-folder.md`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DropConfig {
    /// `auto` watches the drop folder when the database is SQLite (the
    /// embedded default); `on` and `off` force it either way.
    pub enabled: Toggle,
    /// The drop folder: a tenant's files go in `<folder>/<tenant slug>/`.
    /// Empty means `<data.dir>/drop`.
    pub folder: String,
    /// Folders of tenants whose files arrive elsewhere (an SFTP user's home,
    /// say): tenant slug = folder. They take precedence over
    /// `<folder>/<slug>/`.
    pub tenant_folders: std::collections::BTreeMap<String, String>,
    /// Seconds a file's size and modification time must stay unchanged
    /// before it is taken (a file renamed into the folder is taken at once).
    pub settle_seconds: f64,
    /// Seconds between full rescans, the fallback for missed notifications
    /// (network file systems send none).
    pub rescan_seconds: u64,
    /// Days files are kept in `processed/` and `failed/` (0 keeps them).
    pub retention_days: u64,
}

/// A switch with an automatic default.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Toggle {
    /// Decided by the rest of the configuration.
    Auto,
    /// Always.
    On,
    /// Never.
    Off,
}

impl DropConfig {
    /// Checks the `[drop]` section; the error names the key.
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if !(self.settle_seconds.is_finite() && self.settle_seconds >= 0.0) {
            return bad("drop.settle_seconds", "must be 0 or more");
        }
        if self.rescan_seconds == 0 {
            return bad("drop.rescan_seconds", "must be at least 1");
        }
        for slug in self.tenant_folders.keys() {
            if !crate::validate::is_valid_slug(slug) {
                return bad(
                    "drop.tenant_folders",
                    format!("{slug:?} is not a tenant slug (lowercase letters, digits, dashes)"),
                );
            }
        }
        Ok(())
    }
}
