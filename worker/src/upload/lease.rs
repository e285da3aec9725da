//! An attempt's right to write.

/// The right to write for one attempt of one upload (claimed and checked
/// in `jobs::lease`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Lease {
    /// The upload.
    pub upload_id: i64,
    /// The fencing token of this attempt.
    pub token: i64,
    /// Lease length, renewed by each fenced write.
    pub seconds: f64,
}
