//! The pipeline of one upload attempt: open the object, parse and validate
//! rows in batches ahead of the store, and drive the store's phases (see
//! the module documentation of [`crate::apply`]).

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::db::{self, entity::upload};
use crate::jobs::lease::Lease;
use crate::map::{BoundMapping, MatchKey, RowError, RowOutcome, StagedRow};
use crate::parse::{CsvStream, ParseError};
use crate::source::{ObjectReader, ObjectRef, SourceError};
use crate::tenants::Tenant;

use super::store::*;

/// Why an upload attempt did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    /// The upload cannot succeed as it is: the reason is for the customer.
    #[error("{0}")]
    Fail(String),
    /// Worth retrying later (network, database unavailable).
    #[error("transient: {0}")]
    Transient(String),
    /// Another worker owns the upload now; stop without writing.
    #[error("lease lost")]
    LeaseLost,
    /// The process is shutting down; hand the upload back.
    #[error("interrupted by shutdown")]
    Interrupted,
}

impl From<ApplyError> for UploadError {
    fn from(e: ApplyError) -> Self {
        match e {
            ApplyError::LeaseLost => UploadError::LeaseLost,
            ApplyError::Db(e) if db::is_transient(&e) || db::is_unique_race(&e) => {
                UploadError::Transient(e.to_string())
            }
            ApplyError::Db(e) => UploadError::Fail(format!("internal database error: {e}")),
        }
    }
}

impl From<ParseError> for UploadError {
    fn from(e: ParseError) -> Self {
        if e.is_transient() {
            UploadError::Transient(e.to_string())
        } else {
            UploadError::Fail(e.to_string())
        }
    }
}

impl From<SourceError> for UploadError {
    fn from(e: SourceError) -> Self {
        if e.is_transient() {
            UploadError::Transient(e.to_string())
        } else {
            UploadError::Fail(e.to_string())
        }
    }
}

/// Everything one attempt needs.
pub struct Pipeline {
    /// Where the bytes come from.
    pub reader: Arc<dyn ObjectReader>,
    /// Where the rows go.
    pub store: Arc<dyn ApplyStore>,
    /// Rows per batch transaction.
    pub batch_size: usize,
    /// What one file may hold; going over fails the upload.
    pub limits: crate::parse::Limits,
}

impl Pipeline {
    /// The pipeline of a process configured by `cfg`: the store for `db`'s
    /// backend, the configured batch size and limits, bodies from `reader`.
    pub fn for_config(
        reader: Arc<dyn ObjectReader>,
        db: &sea_orm::DatabaseConnection,
        cfg: &crate::config::Config,
    ) -> Pipeline {
        Pipeline {
            reader,
            store: store_for(db),
            batch_size: cfg.apply.batch_size,
            limits: cfg.limits,
        }
    }
}

/// Signals that stop an attempt between batches.
#[derive(Clone, Default)]
pub struct Stops {
    /// Process shutdown: hand the upload back.
    pub shutdown: CancellationToken,
    /// The heartbeat found the lease gone: stop writing.
    pub lease_lost: CancellationToken,
}

impl Stops {
    fn check(&self) -> Result<(), UploadError> {
        if self.lease_lost.is_cancelled() {
            Err(UploadError::LeaseLost)
        } else if self.shutdown.is_cancelled() {
            Err(UploadError::Interrupted)
        } else {
            Ok(())
        }
    }
}

impl Pipeline {
    /// Runs one attempt of `upload` for `tenant` under `lease`. On success
    /// the upload is already marked succeeded; on error nothing about the
    /// upload's state has been written (the caller records the outcome).
    /// `progress` holds the counts so far either way.
    pub async fn run(
        &self,
        lease: &Lease,
        upload: &upload::Model,
        tenant: &Tenant,
        stops: &Stops,
        progress: &mut Progress,
    ) -> Result<Finish, UploadError> {
        // An import (a Xero organisation's employees) has a file of fixed
        // columns, matched on email, applied additively (`source::stored`).
        let import = crate::source::stored::is_import(upload.source);
        let import_mapping;
        let (mapping, match_key) = if import {
            import_mapping = crate::source::stored::import_mapping();
            (&import_mapping, MatchKey::Email)
        } else {
            let mapping = tenant.mapping.as_ref().ok_or_else(|| {
                UploadError::Fail(format!(
                    "tenant {:?} has no column mapping yet; set one with `userfeed mapping set`",
                    tenant.slug
                ))
            })?;
            (mapping, tenant.match_key)
        };
        let rules = TenantRules {
            tenant_id: tenant.id,
            match_key,
            hold_over_percent: tenant.hold_over_percent,
            hold_over_count: tenant.hold_over_count,
            keep_row_problems: self.limits.max_row_problems,
            epoch: tenant.feed_epoch,
        };
        let object = ObjectRef {
            source: upload.source,
            bucket: upload.bucket.clone(),
            key: upload.object_key.clone(),
            version_id: upload.version_id.clone(),
            etag: upload.etag.clone(),
        };
        let body = self.reader.open(&object).await?;
        // Refuse an oversized object before reading it; the reader checks
        // again as it reads, in case the size was unknown or wrong.
        if body.size.is_some_and(|n| n > self.limits.max_object_bytes) {
            return Err(ParseError::from(crate::parse::LimitExceeded::ObjectBytes {
                limit: self.limits.max_object_bytes,
            })
            .into());
        }
        let body_size = body.size;
        let csv = CsvStream::open_with(body.reader, self.limits).await?;
        let bound = BoundMapping::bind(mapping, match_key, csv.header(), &tenant.profile_fields)
            .map_err(|e| UploadError::Fail(e.to_string()))?;

        // A first attempt has nothing of an earlier one to drop: every
        // claim bumps the token, which a new upload row starts at 0, so token
        // 1 is the row's first attempt (its counters are still zero). This
        // spares a 1,000-row re-feed a transaction of six statements.
        if lease.token > 1 {
            self.store.begin(lease).await?;
        }
        *progress = Progress::default();
        let mut phase = PhaseClock::start();

        // Phase 1: stage. Parsing and validation run in their own task, a
        // bounded channel ahead of the database writes: the CPU work of the
        // next batches overlaps the current batch's round trips, and the
        // channel's capacity is the back-pressure that keeps memory flat
        // whatever the file size (at most `PARSED_AHEAD` batches wait).
        let (tx, mut rx) = tokio::sync::mpsc::channel(PARSED_AHEAD);
        let parser = tokio_util::task::AbortOnDropHandle::new(tokio::spawn(parse_batches(
            csv,
            bound.clone(),
            ParseTarget {
                store: self.store.clone(),
                upload_id: lease.upload_id,
                batch_size: self.batch_size,
                epoch: rules.epoch,
                max_row_problems: self.limits.max_row_problems,
                object_bytes: body_size,
            },
            tx,
        )));
        let mut staged = Staged {
            deactivate_absent: !bound.has_status() && !import,
            only_new: import,
            ..Staged::default()
        };
        // A merge or link call that reaches the last staged line ends its
        // phase: the call after it would only find nothing, at the price of
        // planning a large statement (about 5 ms of a 1,000-row first load).
        let mut last_line = 0;
        while let Some(batch) = rx.recv().await {
            let batch = batch?;
            staged.rows += batch.staged;
            staged.repeat_hints += batch.repeat_hints;
            last_line = last_line.max(batch.last_line);
            progress.rows_read += batch.rows_read;
            progress.rejected += batch.rejected;
            progress.problems_dropped += batch.problems_dropped;
            stops.check()?;
            self.store.stage(lease, &batch.payload, progress).await?;
        }
        // The parser ends by closing the channel: after its last batch, or
        // (having sent the error) at a broken file. A channel closed by a
        // parser that panicked must not read as "end of file": the finish
        // would then deactivate everyone after the last staged row.
        if let Err(e) = parser.await {
            return Err(UploadError::Fail(format!(
                "internal error while reading the file ({e}); nothing was changed"
            )));
        }
        stops.check()?;
        let headers = bound.headers();
        let plan = self.store.staged(lease, &rules, &headers, &staged).await?;
        progress.unchanged += plan.unchanged;
        phase.lap("stage");

        // Phase 2: merge. An unchanged re-feed has nothing left to handle,
        // and skips the statements (planning them alone cost about 3 ms of a
        // 1,000-row re-feed's 20).
        let mut after = 0;
        while !plan.is_empty()
            && let Some(last) = self
                .store
                .merge(
                    lease,
                    &rules,
                    &headers,
                    bound.has_status(),
                    (after, self.batch_size),
                    &plan,
                    progress,
                )
                .await?
        {
            after = last;
            stops.check()?;
            if u64::try_from(last).is_ok_and(|l| l >= last_line) {
                break;
            }
        }
        phase.lap("merge");

        // Phase 2b: managers, groups and roles, now that every user exists.
        if bound.has_links() {
            // Something outside the file changed since the upload started
            // (an email, possibly by this upload's own merge, a group...):
            // an unchanged row may link differently now, so link them all.
            let plan =
                if plan.only_pending && self.store.epoch(rules.tenant_id).await? != rules.epoch {
                    Plan::all(staged.rows)
                } else {
                    plan
                };
            let mut after = 0;
            while !plan.is_empty()
                && let Some(last) = self
                    .store
                    .link(lease, &rules, &headers, (after, self.batch_size), &plan)
                    .await?
            {
                after = last;
                stops.check()?;
                if u64::try_from(last).is_ok_and(|l| l >= last_line) {
                    break;
                }
            }
            phase.lap("link");
        }

        // Phase 3: deactivate (or hold) and finish, atomically.
        let finish = self
            .store
            .finish(lease, &rules, staged.deactivate_absent, progress)
            .await?;
        phase.lap("finish");
        Ok(finish)
    }
}

/// Times the phases of one attempt, for `userfeed_apply_phase_seconds`.
struct PhaseClock(std::time::Instant);

impl PhaseClock {
    fn start() -> Self {
        PhaseClock(std::time::Instant::now())
    }

    /// Reports the phase that just ended and starts timing the next.
    fn lap(&mut self, phase: &'static str) {
        crate::telemetry::events::phase_finished(phase, self.0.elapsed().as_secs_f64());
        self.0 = std::time::Instant::now();
    }
}

/// Parsed batches that may wait ahead of the database: two keep the parser
/// busy while one batch is written, without holding more of the file.
const PARSED_AHEAD: usize = 2;

/// A staging transaction writes consecutive `COPY` batches together up to
/// about this size (some 5,000 rows), when the database is behind the
/// parser: fewer, larger transactions, each still short, for little memory
/// (measured at 1,000,000 rows with a 2 MiB cap: 337 staging transactions
/// instead of 500; 1 MiB keeps the peak memory near what it was).
const STAGE_COPY_BYTES: usize = 1 << 20;

/// One batch of parsed rows on its way to the store.
struct ParsedBatch {
    /// Data rows read for this batch.
    rows_read: u64,
    /// Rows with a usable key.
    staged: u64,
    /// Of those, rows hinted as possible repeats.
    repeat_hints: u64,
    /// The highest line of those (0 for none).
    last_line: u64,
    /// Rows rejected outright.
    rejected: u64,
    /// Row problems found but not kept (over `limits.max_row_problems`).
    problems_dropped: u64,
    /// The rows as the store writes them.
    payload: Prepared,
}

impl ParsedBatch {
    /// Adds `next` to this batch when the store's encoding allows it (see
    /// [`Prepared::absorb`]); otherwise hands it back.
    fn absorb(&mut self, mut next: ParsedBatch) -> Option<ParsedBatch> {
        if !self.payload.absorb(&mut next.payload, STAGE_COPY_BYTES) {
            return Some(next);
        }
        self.rows_read += next.rows_read;
        self.staged += next.staged;
        self.repeat_hints += next.repeat_hints;
        self.last_line = self.last_line.max(next.last_line);
        self.rejected += next.rejected;
        self.problems_dropped += next.problems_dropped;
        None
    }
}

/// Keeps at most `room` of a batch's row problems (rejections first, then
/// warnings, each in line order), counts the rest into `dropped`; returns
/// how many were kept. The rows themselves are unaffected: a rejected row
/// is still rejected and counted.
fn keep_problems(
    staged: &mut [StagedRow],
    rejected: &mut Vec<RowError>,
    room: u64,
    dropped: &mut u64,
) -> u64 {
    let mut room = usize::try_from(room).unwrap_or(usize::MAX);
    let mut kept = 0;
    let over = rejected.len().saturating_sub(room);
    rejected.truncate(rejected.len() - over);
    *dropped += over as u64;
    room -= rejected.len();
    kept += rejected.len();
    for row in staged {
        let over = row.warnings.len().saturating_sub(room);
        row.warnings.truncate(row.warnings.len() - over);
        *dropped += over as u64;
        room -= row.warnings.len();
        kept += row.warnings.len();
    }
    kept as u64
}

/// Where parsed rows go, and how they are cut into batches.
struct ParseTarget {
    /// Prepares each batch ([`ApplyStore::prepare`]).
    store: Arc<dyn ApplyStore>,
    /// The upload being staged.
    upload_id: i64,
    /// Rows per parse batch.
    batch_size: usize,
    /// The feed epoch folded into the digests.
    epoch: i64,
    /// Row problems kept for the whole upload.
    max_row_problems: u64,
    /// The object's size, when known: sizes the repeated-key filter.
    object_bytes: Option<u64>,
}

/// Hints at keys seen on an earlier line of the file, in bounded memory: a
/// Bloom filter, which is never wrong about a key it has seen, so every real
/// repeat is hinted, and rarely hints a key it has not (the repeated-key
/// pass then groups that key too, and finds it once). Sized at about one bit
/// per two bytes of file, 8 KiB to 8 MiB: a 100 MB file of a million rows
/// gets 64 bits a key, where six hashes hint a new key by mistake at most
/// once in 2.5 million (so a million-row file without repeats is almost
/// never hinted, and skips the pass).
struct RepeatFilter(fastbloom::BloomFilter);

impl RepeatFilter {
    /// A filter for an object of `bytes` (1 MiB of filter when unknown).
    fn for_object(bytes: Option<u64>) -> Self {
        let bits = bytes
            .map_or(1 << 23, |b| usize::try_from(b / 2).unwrap_or(usize::MAX))
            .clamp(1 << 16, 1 << 26)
            .next_power_of_two();
        RepeatFilter(
            fastbloom::BloomFilter::with_num_bits(bits)
                .seed(&0x7573_6572_6665_6564)
                .hashes(6),
        )
    }

    /// Records `key`; true when it may have been recorded before.
    fn seen(&mut self, key: &str) -> bool {
        self.0.insert(key)
    }
}

/// Reads `csv` to the end, sending prepared batches of about `batch_size`
/// rows (merged into larger ones while the database is behind, the last one
/// possibly smaller or empty). Stops early when the receiver is gone (the
/// attempt was stopped) and after sending a parse error.
async fn parse_batches<R>(
    mut csv: CsvStream<R>,
    bound: BoundMapping,
    target: ParseTarget,
    tx: tokio::sync::mpsc::Sender<Result<ParsedBatch, ParseError>>,
) where
    R: tokio::io::AsyncRead + Unpin + Send + 'static,
{
    let mut problems_kept = 0;
    let mut repeats = RepeatFilter::for_object(target.object_bytes);
    let mut staged = Vec::with_capacity(target.batch_size);
    let mut rejected = Vec::new();
    let mut rows_read = 0;
    // A prepared batch not sent yet because the channel was full: the
    // next ones are added to it, up to `STAGE_COPY_BYTES`.
    let mut pending: Option<ParsedBatch> = None;
    // Cuts the rows parsed so far into a prepared batch.
    let mut cut =
        |staged: &mut Vec<StagedRow>, rejected: &mut Vec<RowError>, rows_read: &mut u64| {
            let mut staged = std::mem::replace(staged, Vec::with_capacity(target.batch_size));
            let mut rejected = std::mem::take(rejected);
            // Counted before `keep_problems`: a rejection not kept still counts.
            let rejected_rows = rejected.len() as u64;
            let mut dropped = 0;
            problems_kept += keep_problems(
                &mut staged,
                &mut rejected,
                target.max_row_problems.saturating_sub(problems_kept),
                &mut dropped,
            );
            ParsedBatch {
                rows_read: std::mem::take(rows_read),
                staged: staged.len() as u64,
                repeat_hints: staged.iter().filter(|r| r.repeat_hint).count() as u64,
                last_line: staged.iter().map(|r| r.line).max().unwrap_or(0),
                rejected: rejected_rows,
                problems_dropped: dropped,
                payload: target.store.prepare(target.upload_id, staged, rejected),
            }
        };
    loop {
        let row = match csv.next_row().await {
            Ok(row) => row,
            Err(e) => {
                let _ = tx.send(Err(e)).await;
                return;
            }
        };
        let Some((line, fields)) = row else { break };
        rows_read += 1;
        match bound.row(line, &fields) {
            // Before any warning is dropped (`keep_problems`): a row with
            // one must never look clean.
            RowOutcome::Staged(mut r) => {
                r.digest = r.digest_for(target.epoch);
                r.repeat_hint = repeats.seen(&r.match_key);
                staged.push(r)
            }
            RowOutcome::Rejected(e) => rejected.push(e),
        }
        if staged.len() + rejected.len() < target.batch_size {
            continue;
        }
        let batch = cut(&mut staged, &mut rejected, &mut rows_read);
        let batch = match pending.take() {
            None => batch,
            Some(mut p) => match p.absorb(batch) {
                None => p,
                Some(next) => {
                    // `p` is full: wait for room, then hold `next`.
                    if tx.send(Ok(p)).await.is_err() {
                        return;
                    }
                    next
                }
            },
        };
        // Send at once while the database keeps up; else keep adding.
        match tx.try_reserve() {
            Ok(permit) => permit.send(Ok(batch)),
            Err(tokio::sync::mpsc::error::TrySendError::Full(())) => pending = Some(batch),
            Err(tokio::sync::mpsc::error::TrySendError::Closed(())) => return,
        }
    }
    // Always one last send, even empty: the store writes the final counters.
    let last = cut(&mut staged, &mut rejected, &mut rows_read);
    if let Some(mut p) = pending.take() {
        match p.absorb(last) {
            None => {
                let _ = tx.send(Ok(p)).await;
            }
            Some(last) => {
                if tx.send(Ok(p)).await.is_ok() {
                    let _ = tx.send(Ok(last)).await;
                }
            }
        }
    } else {
        let _ = tx.send(Ok(last)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_repeat_filter_hints_every_key_seen_before_and_almost_no_new_one() {
        let mut filter = RepeatFilter::for_object(Some(10_000_000));
        let keys: Vec<String> = (0..100_000).map(|i| format!("e{i}@example.com")).collect();
        let false_hints = keys.iter().filter(|k| filter.seen(k)).count();
        assert!(false_hints < 5, "{false_hints} new keys hinted");
        assert!(
            keys.iter().all(|k| filter.seen(k)),
            "a repeat went unhinted"
        );
    }
}
