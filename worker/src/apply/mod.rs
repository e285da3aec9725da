//! Applying one upload: stream the object, validate each row, stage, merge
//! into users in batch transactions, then deactivate and finish atomically.
//!
//! Three phases, each a series of short transactions (none spans the stream):
//! 1. **Stage**: rows are parsed, validated and written to `upload_rows` in
//!    batches. A file that turns out broken (encoding, structure) fails here
//!    having changed no user at all.
//! 2. **Merge**: staged rows are applied to `users` batch by batch. Unchanged
//!    rows are not written.
//! 3. **Finish**: one transaction deactivates the absent (when the file has
//!    no status column), deletes the staging rows and marks the upload
//!    succeeded. An upload that fails before this point deactivates nobody.
//!
//! Every transaction starts with the lease fence, so a worker that lost its
//! lease cannot write. [`ApplyStore`] is the database seam: the portable
//! sea-orm implementation here, faster backend-specific ones beside it.

// The stores reach these as `super::Lease` and `super::fence`.
use crate::jobs::lease::{Lease, fence};

pub mod holds;
mod pipeline;
pub mod portable;
pub mod postgres;
pub mod preview;
mod shared;
mod store;
pub mod undo;

pub use pipeline::*;
pub use store::*;
