//! `[credentials]`: tenants' upload credentials.

use serde::Deserialize;

use super::{ConfigError, bad};

/// `[credentials]`: the IAM users that let tenants upload
/// (`docs/operations.md`, "Onboarding a tenant").
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CredentialsConfig {
    /// IAM path of every tenant's upload user; the deployment's IAM policy
    /// (`deploy/aws/credentials-policy.json`) allows user management under
    /// this path only.
    pub iam_path: String,
    /// Prefix of the IAM user names: `<prefix><tenant slug>`.
    pub user_prefix: String,
    /// ARN of a managed policy set as every upload user's permissions
    /// boundary (e.g. `s3:PutObject` on the feed bucket only). With one,
    /// the deployment's own IAM policy can require it, so even a
    /// compromised daemon cannot make a user that may do more. Empty: none.
    pub permissions_boundary: String,
    /// Hours a rotated-out access key keeps working, so the customer can
    /// switch their export to the new one; then it is deleted.
    pub rotation_grace_hours: f64,
    /// Seconds between the daemon's looks for rotated-out keys whose grace
    /// has ended.
    pub sweep_seconds: u64,
}

impl CredentialsConfig {
    /// Checks the `[credentials]` section; the error names the key.
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        let c = self;
        // IAM's own rule for paths: `/`, or `/` segments `/`.
        let path_ok = c.iam_path.starts_with('/')
            && c.iam_path.ends_with('/')
            && c.iam_path.len() <= 512
            && c.iam_path.bytes().all(|b| b.is_ascii_graphic());
        if !path_ok {
            return bad(
                "credentials.iam_path",
                "must begin and end with `/`, e.g. \"/userfeed/\"",
            );
        }
        if c.user_prefix.len() > 32
            || !c
                .user_prefix
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || "+=,.@_-".contains(ch))
        {
            return bad(
                "credentials.user_prefix",
                "at most 32 of the characters IAM allows in user names (letters, digits, +=,.@_-)",
            );
        }
        if !(c.rotation_grace_hours >= 0.0 && c.rotation_grace_hours.is_finite()) {
            return bad("credentials.rotation_grace_hours", "must be 0 or more");
        }
        if c.sweep_seconds == 0 {
            return bad("credentials.sweep_seconds", "must be at least 1");
        }

        Ok(())
    }
}
