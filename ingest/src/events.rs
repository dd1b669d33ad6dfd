//! What the service tells operators: each event is one struct whose `emit()` writes its log
//! line and updates its metrics, so that the two never drift apart.
//!
//! Logs carry ids, counts and error classes, never transcript bytes or command text. Levels:
//! INFO for lifecycle (start, poll summaries, commits, shutdown), WARN for errors the service
//! recovers from, ERROR when an operator has to act.
//!
//! # Metrics (Prometheus text format at `/metrics`)
//!
//! | name | type | meaning |
//! |---|---|---|
//! | `sessionlake_ingest_sessions_total` | counter | session versions committed |
//! | `sessionlake_ingest_commands_total` | counter | commands committed |
//! | `sessionlake_ingest_raw_bytes_total` | counter | bytes of original transcripts committed |
//! | `sessionlake_ingest_quarantined_total` | counter | inputs quarantined |
//! | `sessionlake_ingest_replaced_total` | counter | earlier session versions replaced |
//! | `sessionlake_ingest_commits_total` | counter | manifest commits |
//! | `sessionlake_ingest_idle_commits_total` | counter | empty idle commits (and the stop commit) |
//! | `sessionlake_ingest_access_events_total` | counter | CloudTrail access events committed |
//! | `sessionlake_ingest_malformed_records_total` | counter | CloudTrail access records skipped as malformed |
//! | `sessionlake_ingest_enriched_total` | counter | stored sessions re-indexed with late CloudTrail facts |
//! | `sessionlake_ingest_errors_total{kind}` | counter | errors by class ([`IngestErrorKind`]) |
//! | `sessionlake_ingest_polls_total{outcome}` | counter | polls, `ok` or `failed` |
//! | `sessionlake_ingest_sessions_in_flight` | gauge | sessions being read, parsed or written |
//! | `sessionlake_ingest_backlog` | gauge | inputs the last listing found new or changed |
//! | `sessionlake_ingest_seconds_since_last_successful_poll` | gauge | lag behind the sources |
//! | `sessionlake_ingest_last_poll_duration_seconds` | gauge | how long the last poll took |
//! | `sessionlake_ingest_commit_conflicts_total` | counter | commits lost to another writer (the batch is re-planned) |
//! | `sessionlake_ingest_lease_waits_total` | counter | times a follow-mode service found the lake leased and waited |
//! | `sessionlake_ingest_swept_objects_total` | counter | objects of writes that never committed, deleted at start |

use std::time::Duration;

use crate::error::IngestErrorKind;
use crate::lake_writer::BatchSummary;

/// Session versions committed.
pub const SESSIONS_TOTAL: &str = "sessionlake_ingest_sessions_total";
/// Commands committed.
pub const COMMANDS_TOTAL: &str = "sessionlake_ingest_commands_total";
/// Bytes of original transcripts committed.
pub const RAW_BYTES_TOTAL: &str = "sessionlake_ingest_raw_bytes_total";
/// Inputs quarantined.
pub const QUARANTINED_TOTAL: &str = "sessionlake_ingest_quarantined_total";
/// Earlier session versions replaced by newer ones.
pub const REPLACED_TOTAL: &str = "sessionlake_ingest_replaced_total";
/// Manifest commits.
pub const COMMITS_TOTAL: &str = "sessionlake_ingest_commits_total";
/// Empty commits made when idle, or when stopping.
pub const IDLE_COMMITS_TOTAL: &str = "sessionlake_ingest_idle_commits_total";
/// CloudTrail access events committed to the `access` table.
pub const ACCESS_EVENTS_TOTAL: &str = "sessionlake_ingest_access_events_total";
/// CloudTrail access records skipped as malformed.
pub const MALFORMED_RECORDS_TOTAL: &str = "sessionlake_ingest_malformed_records_total";
/// Stored session versions re-indexed with CloudTrail facts that arrived after them.
pub const ENRICHED_TOTAL: &str = "sessionlake_ingest_enriched_total";
/// Commits lost to another writer.
pub const COMMIT_CONFLICTS_TOTAL: &str = "sessionlake_ingest_commit_conflicts_total";
/// Times the lake was found leased by another writer.
pub const LEASE_WAITS_TOTAL: &str = "sessionlake_ingest_lease_waits_total";
/// Uncommitted objects deleted at start.
pub const SWEPT_OBJECTS_TOTAL: &str = "sessionlake_ingest_swept_objects_total";
/// Errors by class.
pub const ERRORS_TOTAL: &str = "sessionlake_ingest_errors_total";
/// Polls by outcome.
pub const POLLS_TOTAL: &str = "sessionlake_ingest_polls_total";
/// Sessions in flight.
pub const SESSIONS_IN_FLIGHT: &str = "sessionlake_ingest_sessions_in_flight";
/// Inputs the last listing found.
pub const BACKLOG: &str = "sessionlake_ingest_backlog";
/// Seconds since the last successful poll (or since the start, before the first).
pub const SECONDS_SINCE_LAST_SUCCESSFUL_POLL: &str =
    "sessionlake_ingest_seconds_since_last_successful_poll";
/// Duration of the last poll.
pub const LAST_POLL_DURATION_SECONDS: &str = "sessionlake_ingest_last_poll_duration_seconds";

/// Describes every metric and registers the counters at zero, so that a scrape before the
/// first event already shows them.
pub fn register_metrics() {
    use metrics::{Unit, describe_counter, describe_gauge};
    describe_counter!(SESSIONS_TOTAL, "Session versions committed to the lake.");
    describe_counter!(COMMANDS_TOTAL, "Commands committed to the lake.");
    describe_counter!(RAW_BYTES_TOTAL, Unit::Bytes, "Bytes of original transcripts committed.");
    describe_counter!(QUARANTINED_TOTAL, "Inputs quarantined (unparseable or refused).");
    describe_counter!(REPLACED_TOTAL, "Earlier session versions replaced by newer ones.");
    describe_counter!(COMMITS_TOTAL, "Manifest commits.");
    describe_counter!(IDLE_COMMITS_TOTAL, "Empty commits made when idle, or when stopping.");
    describe_counter!(ACCESS_EVENTS_TOTAL, "CloudTrail access events committed to the lake.");
    describe_counter!(MALFORMED_RECORDS_TOTAL, "CloudTrail access records skipped as malformed.");
    describe_counter!(ENRICHED_TOTAL, "Stored sessions re-indexed with late CloudTrail facts.");
    describe_counter!(COMMIT_CONFLICTS_TOTAL, "Commits lost to another writer (re-planned).");
    describe_counter!(LEASE_WAITS_TOTAL, "Times the lake was found leased by another writer.");
    describe_counter!(SWEPT_OBJECTS_TOTAL, "Uncommitted objects of crashed writes deleted.");
    describe_counter!(ERRORS_TOTAL, "Errors by kind (retried on the next poll).");
    describe_counter!(POLLS_TOTAL, "Polls of every source, by outcome.");
    describe_gauge!(SESSIONS_IN_FLIGHT, "Sessions being read, parsed or written now.");
    describe_gauge!(BACKLOG, "Inputs the last listing found new or changed.");
    describe_gauge!(
        SECONDS_SINCE_LAST_SUCCESSFUL_POLL,
        Unit::Seconds,
        "Seconds since the last successful poll or commit (since the start before the first)."
    );
    describe_gauge!(LAST_POLL_DURATION_SECONDS, Unit::Seconds, "Duration of the last poll.");
    for name in [
        SESSIONS_TOTAL,
        COMMANDS_TOTAL,
        RAW_BYTES_TOTAL,
        QUARANTINED_TOTAL,
        REPLACED_TOTAL,
        COMMITS_TOTAL,
        IDLE_COMMITS_TOTAL,
        ACCESS_EVENTS_TOTAL,
        MALFORMED_RECORDS_TOTAL,
        ENRICHED_TOTAL,
        COMMIT_CONFLICTS_TOTAL,
        LEASE_WAITS_TOTAL,
        SWEPT_OBJECTS_TOTAL,
    ] {
        metrics::counter!(name).absolute(0);
    }
    for kind in IngestErrorKind::ALL {
        metrics::counter!(ERRORS_TOTAL, "kind" => kind.as_str()).absolute(0);
    }
    for outcome in ["ok", "failed"] {
        metrics::counter!(POLLS_TOTAL, "outcome" => outcome).absolute(0);
    }
    metrics::gauge!(SESSIONS_IN_FLIGHT).set(0.0);
    metrics::gauge!(BACKLOG).set(0.0);
}

/// Counts one error of `kind` (its log line is the caller's event).
pub fn count_error(kind: IngestErrorKind) {
    metrics::counter!(ERRORS_TOTAL, "kind" => kind.as_str()).increment(1);
}

/// The service started.
pub struct ServiceStarted<'a> {
    /// `once` or `follow`.
    pub mode: &'a str,
    /// The lake.
    pub lake: &'a str,
    /// Sources configured.
    pub sources: usize,
    /// Poll interval (follow mode).
    pub poll_interval: Duration,
    /// Sessions in flight at most.
    pub max_in_flight: usize,
    /// Sessions per commit.
    pub batch_sessions: usize,
}

impl ServiceStarted<'_> {
    /// Logs the start.
    pub fn emit(&self) {
        tracing::info!(
            mode = self.mode,
            lake = %self.lake,
            sources = self.sources,
            poll_interval = ?self.poll_interval,
            max_in_flight = self.max_in_flight,
            batch_sessions = self.batch_sessions,
            "ingest started"
        );
    }
}

/// The metrics endpoint is listening.
pub struct MetricsListening {
    /// The bound address (the real port when 0 was asked for).
    pub address: std::net::SocketAddr,
}

impl MetricsListening {
    /// Logs the address.
    pub fn emit(&self) {
        tracing::info!(address = %self.address, "metrics endpoint listening (/metrics, /healthz)");
    }
}

/// A listing found work.
pub struct BacklogListed {
    /// Inputs new or changed since the cursors.
    pub backlog: usize,
}

impl BacklogListed {
    /// Sets the backlog gauge.
    pub fn emit(&self) {
        metrics::gauge!(BACKLOG).set(self.backlog as f64);
        if self.backlog > 0 {
            tracing::debug!(backlog = self.backlog, "sources listed");
        }
    }
}

/// A batch was committed to the manifest.
pub struct BatchCommitted<'a> {
    /// What the batch did.
    pub batch: &'a BatchSummary,
}

impl BatchCommitted<'_> {
    /// Logs the commit and counts what it holds.
    pub fn emit(&self) {
        let batch = self.batch;
        crate::progress::batch(batch.sessions, batch.raw_bytes);
        metrics::counter!(SESSIONS_TOTAL).increment(batch.sessions as u64);
        metrics::counter!(COMMANDS_TOTAL).increment(batch.commands as u64);
        metrics::counter!(RAW_BYTES_TOTAL).increment(batch.raw_bytes);
        metrics::counter!(QUARANTINED_TOTAL).increment(batch.quarantined as u64);
        metrics::counter!(REPLACED_TOTAL).increment(batch.replaced as u64);
        metrics::counter!(ACCESS_EVENTS_TOTAL).increment(batch.access_events as u64);
        if let Some(sequence) = batch.sequence {
            metrics::counter!(COMMITS_TOTAL).increment(1);
            tracing::info!(
                sequence,
                sessions = batch.sessions,
                commands = batch.commands,
                quarantined = batch.quarantined,
                replaced = batch.replaced,
                raw_bytes = batch.raw_bytes,
                access_events = batch.access_events,
                "batch committed"
            );
        }
    }
}

/// An empty commit was made: nothing was committed for the idle period, or the service stops
/// (that commit promises the restart within `restart_within`, if any).
pub struct IdleCommitted {
    /// Manifest sequence of the commit.
    pub sequence: u64,
    /// The service is stopping.
    pub stopping: bool,
}

impl IdleCommitted {
    /// Logs and counts the commit.
    pub fn emit(&self) {
        metrics::counter!(IDLE_COMMITS_TOTAL).increment(1);
        let what = if self.stopping { "stop commit made" } else { "idle commit made" };
        tracing::info!(sequence = self.sequence, "{what}");
    }
}

/// An idle or stop commit failed; an idle commit is tried again a poll interval later.
pub struct IdleCommitFailed<'a> {
    /// The error.
    pub error: &'a anyhow::Error,
    /// The service is stopping.
    pub stopping: bool,
}

impl IdleCommitFailed<'_> {
    /// Logs and counts the error.
    pub fn emit(&self) {
        count_error(IngestErrorKind::Lake);
        let what = if self.stopping {
            "stop commit failed; verify will report the time until the next start as a gap"
        } else {
            "idle commit failed; tried again after the poll interval"
        };
        tracing::warn!(error = %format!("{:#}", self.error), "{what}");
    }
}

/// Another writer committed since this one's head: the batch is planned again on the new
/// chain (the lease normally prevents this; a retention commit may cause it).
pub struct LakeChangedUnderWriter<'a> {
    /// The lake.
    pub lake: &'a str,
    /// The conditional write that lost.
    pub conflict: &'a sessionlake_storage::LakeError,
    /// Commits found past the known head.
    pub commits: usize,
    /// Their writers, comma-separated.
    pub writers: &'a str,
}

impl LakeChangedUnderWriter<'_> {
    /// Logs and counts the conflict.
    pub fn emit(&self) {
        metrics::counter!(COMMIT_CONFLICTS_TOTAL).increment(1);
        tracing::warn!(
            lake = %self.lake,
            commits = self.commits,
            writers = %self.writers,
            conflict = %self.conflict,
            "another writer committed first; re-reading the chain and planning the batch again"
        );
    }
}

/// The lake is leased by another ingest: a follow-mode service waits and tries again.
pub struct LeaseBusy<'a> {
    /// Why (names the holder).
    pub error: &'a anyhow::Error,
    /// When the lease is tried again.
    pub retry_in: Duration,
}

impl LeaseBusy<'_> {
    /// Logs and counts the wait.
    pub fn emit(&self) {
        metrics::counter!(LEASE_WAITS_TOTAL).increment(1);
        tracing::warn!(
            error = %format!("{:#}", self.error),
            retry_in = ?self.retry_in,
            "lake leased by another ingest; standing by"
        );
    }
}

/// The lease was lost (this process stopped renewing it for longer than its time to live):
/// the service stops; operator action is needed if two services were started.
pub struct LeaseLost<'a> {
    /// Why.
    pub error: &'a sessionlake_storage::LakeError,
}

impl LeaseLost<'_> {
    /// Logs the loss.
    pub fn emit(&self) {
        count_error(IngestErrorKind::Lake);
        tracing::error!(error = %self.error, "writer lease lost; stopping");
    }
}

/// Objects of writes that never committed (a crashed or killed earlier run) were deleted.
pub struct UncommittedSwept<'a> {
    /// The lake.
    pub lake: &'a str,
    /// Objects deleted.
    pub deleted: usize,
    /// Objects that could not be deleted (`verify` names them).
    pub failed: usize,
}

impl UncommittedSwept<'_> {
    /// Logs and counts the sweep.
    pub fn emit(&self) {
        metrics::counter!(SWEPT_OBJECTS_TOTAL).increment(self.deleted as u64);
        if self.deleted > 0 || self.failed > 0 {
            tracing::info!(
                lake = %self.lake,
                deleted = self.deleted,
                failed = self.failed,
                "uncommitted objects of an earlier run deleted"
            );
        }
    }
}

/// One input could not be read or written; its cursor stays, so the next poll retries it.
pub struct InputFailed<'a> {
    /// Where the input comes from.
    pub source_ref: &'a str,
    /// The error's class.
    pub kind: IngestErrorKind,
    /// The error (names objects, never holds their contents).
    pub error: &'a anyhow::Error,
}

impl InputFailed<'_> {
    /// Logs and counts the error.
    pub fn emit(&self) {
        count_error(self.kind);
        tracing::warn!(
            // Names are a source writer's choice: printed escaped (no line breaks, no invisible
            // or bidirectional characters), the error's too.
            source = ?self.source_ref,
            kind = %self.kind,
            error = ?format!("{:#}", self.error),
            "input not ingested; retried on the next poll"
        );
    }
}

/// Sessions wait for a CloudTrail file that failed (follow mode, for at most the wait since
/// its first failure): sessions written before their `StartSession` get a second version.
pub struct SessionsWaitForTrail<'a> {
    /// The CloudTrail file.
    pub source_ref: &'a str,
    /// The longest wait.
    pub wait: std::time::Duration,
}

impl SessionsWaitForTrail<'_> {
    /// Logs the wait.
    pub fn emit(&self) {
        tracing::warn!(
            // A source writer's name: printed escaped.
            source = ?self.source_ref,
            wait_seconds = self.wait.as_secs(),
            "sessions wait for a CloudTrail file that failed; at most the wait since it first failed"
        );
    }
}

/// Access records of a CloudTrail file were skipped as malformed (the rest of the file is
/// ingested; a file that cannot be read at all is quarantined instead).
pub struct TrailRecordsMalformed<'a> {
    /// The CloudTrail file.
    pub source_ref: &'a str,
    /// Why each was skipped (field names, never record contents).
    pub reasons: &'a [String],
}

impl TrailRecordsMalformed<'_> {
    /// Logs the file, the count and the first reason, and counts the records.
    pub fn emit(&self) {
        let Some(first) = self.reasons.first() else { return };
        metrics::counter!(MALFORMED_RECORDS_TOTAL).increment(self.reasons.len() as u64);
        tracing::warn!(
            file = ?self.source_ref,
            count = self.reasons.len(),
            first = %first,
            "malformed CloudTrail access records skipped"
        );
    }
}

/// Access events of a CloudTrail file were dropped: the same event ids are in the lake from
/// another file already (CloudTrail can deliver an event twice).
pub struct TrailEventsDuplicated<'a> {
    /// The CloudTrail file.
    pub source_ref: &'a str,
    /// Events dropped.
    pub count: usize,
}

impl TrailEventsDuplicated<'_> {
    /// Logs the count.
    pub fn emit(&self) {
        if self.count > 0 {
            tracing::info!(file = ?self.source_ref, count = self.count, "duplicate CloudTrail events dropped");
        }
    }
}

/// A CloudTrail file read before was read again with other content: it holds events the
/// earlier read did not, lacks some it held, or holds some of them otherwise (under the same
/// event id). CloudTrail never rewrites a file it delivered, so someone who can write to the
/// trail bucket did (or ingest reads it otherwise: a lower `--max-trail-records`). The events
/// of the earlier read stay in `access` as they were; only the new ones are added.
pub struct TrailFileChanged<'a> {
    /// The CloudTrail file.
    pub source_ref: &'a str,
    /// Events the lake holds from the earlier read.
    pub known: usize,
    /// Of those, events the file no longer holds (they stay in the lake).
    pub missing: usize,
    /// Of those, events the file now holds otherwise (the lake keeps them as first read).
    pub altered: usize,
    /// Events added by this read.
    pub added: usize,
}

impl TrailFileChanged<'_> {
    /// Logs the counts.
    pub fn emit(&self) {
        tracing::warn!(
            file = ?self.source_ref,
            known = self.known,
            missing = self.missing,
            altered = self.altered,
            added = self.added,
            "CloudTrail file changed after it was read (CloudTrail never rewrites one): the events \
             read before stay in the lake, only new ones are added"
        );
    }
}

/// A `StartSession` event names a session that another `StartSession` event attributed
/// differently (principal, target, account or time): the session keeps its first attribution,
/// both events stay in `access`, and `sessionlake sessions` shows the session as `conflict`.
pub struct AttributionConflict<'a> {
    /// The session id both events name.
    pub session_id: &'a str,
    /// The CloudTrail file of the later event.
    pub source_ref: &'a str,
}

impl AttributionConflict<'_> {
    /// Logs the conflict.
    pub fn emit(&self) {
        tracing::warn!(
            session = %self.session_id,
            file = ?self.source_ref,
            "a StartSession event disagrees with the one the session was attributed to; the session keeps its first attribution"
        );
    }
}

/// A session version arrived from a source object other than the one that delivered the live
/// version of the same session and source: neither replaces the other, both stay live, and
/// `sessionlake sessions` and `verify` name the conflict.
pub struct DeliveryConflict<'a> {
    /// The session id both objects claim.
    pub session_id: &'a str,
    /// The object of the version that arrived.
    pub source_ref: &'a str,
}

impl DeliveryConflict<'_> {
    /// Logs the conflict.
    pub fn emit(&self) {
        tracing::warn!(
            session = %self.session_id,
            object = ?self.source_ref,
            "another source object already delivered this session; both versions are kept"
        );
    }
}

/// A transcript bigger than `--hold-rows-up-to` was parsed twice: its command records were
/// never held, its `commands` file written as they came.
pub struct SessionParsedTwice<'a> {
    /// The session.
    pub session_id: &'a str,
    /// The transcript's size.
    pub bytes: u64,
    /// Its commands.
    pub commands: usize,
}

impl SessionParsedTwice<'_> {
    /// Logs it (INFO).
    pub fn emit(&self) {
        tracing::info!(
            session = %self.session_id,
            bytes = self.bytes,
            commands = self.commands,
            "transcript parsed twice, its commands written as they came"
        );
    }
}

/// A transcript whose content (the agent's orchestration path in its header, or the streamed
/// events' `sessionId`) names another session than its object's name: it is stored under its
/// name with low confidence, and `sessionlake sessions --confidence low` lists it.
pub struct SessionNameMismatch<'a> {
    /// The session id the name gives.
    pub session_id: &'a str,
    /// The object.
    pub source_ref: &'a str,
}

impl SessionNameMismatch<'_> {
    /// Logs the mismatch (never the id the content claims: it is the content's).
    pub fn emit(&self) {
        tracing::warn!(
            session = %self.session_id,
            object = ?self.source_ref,
            "the transcript's content names another session than its name; stored with low confidence"
        );
    }
}

/// A live `access` file could not be read when the service opened: its events are not known
/// for dedupe and enrichment (an operator should run `sessionlake verify`).
pub struct AccessFileUnreadable<'a> {
    /// The error (names the file): it does not parse, or its bytes are not the committed ones.
    pub error: &'a dyn std::fmt::Display,
}

impl AccessFileUnreadable<'_> {
    /// Logs and counts the error.
    pub fn emit(&self) {
        count_error(IngestErrorKind::Lake);
        tracing::error!(error = %self.error, "access file unreadable; run sessionlake verify");
    }
}

/// A stored session version lacked CloudTrail facts that arrived after it: it was re-indexed
/// with them, as a new version that replaces it at the next commit.
pub struct SessionEnriched<'a> {
    /// The session.
    pub session_id: &'a str,
    /// The lake path of the `sessions` file replaced.
    pub replaces: &'a str,
}

impl SessionEnriched<'_> {
    /// Logs the session.
    pub fn emit(&self) {
        metrics::counter!(ENRICHED_TOTAL).increment(1);
        tracing::info!(session = %self.session_id, replaces = %self.replaces, "session re-indexed with late CloudTrail facts");
    }
}

/// A stored session version could not be re-indexed with late CloudTrail facts (its stored
/// objects are unreadable, or were removed): it keeps its facts, the `access` row holds the
/// new ones.
pub struct SessionNotEnriched<'a> {
    /// The session.
    pub session_id: &'a str,
    /// The error's class.
    pub kind: IngestErrorKind,
    /// Why (names objects, never holds their contents).
    pub error: &'a anyhow::Error,
}

impl SessionNotEnriched<'_> {
    /// Logs and counts the error.
    pub fn emit(&self) {
        count_error(self.kind);
        tracing::warn!(
            session = %self.session_id,
            kind = %self.kind,
            error = %format!("{:#}", self.error),
            "session not re-indexed with late CloudTrail facts; run sessionlake verify"
        );
    }
}

/// An SQS message is not an S3 event notification: it is deleted (it names nothing to read).
pub struct QueueMessageMalformed<'a> {
    /// The queue.
    pub queue_url: &'a str,
    /// The message's id.
    pub message_id: &'a str,
    /// Why (never the body).
    pub reason: &'a str,
}

impl QueueMessageMalformed<'_> {
    /// Logs and counts the error.
    pub fn emit(&self) {
        count_error(IngestErrorKind::Request);
        tracing::warn!(
            queue = %self.queue_url,
            message = %self.message_id,
            reason = %self.reason,
            "queue message is not an S3 event notification; deleted"
        );
    }
}

/// Cursors could not be saved after a commit (the commit holds; they are saved again later).
pub struct CursorsNotSaved<'a> {
    /// The error.
    pub error: &'a anyhow::Error,
}

impl CursorsNotSaved<'_> {
    /// Logs and counts the error.
    pub fn emit(&self) {
        count_error(IngestErrorKind::Lake);
        tracing::warn!(error = %format!("{:#}", self.error), "cursors not saved; saved again after the next commit or at shutdown");
    }
}

/// A poll ended without errors.
pub struct PollCompleted {
    /// Inputs listed as new or changed.
    pub backlog: usize,
    /// What the poll committed.
    pub done: BatchSummary,
    /// How long it took.
    pub duration: Duration,
    /// Whether a stop signal ended it before the backlog was drained.
    pub interrupted: bool,
}

impl PollCompleted {
    /// Logs the poll's summary (INFO when it found work) and counts it.
    pub fn emit(&self) {
        metrics::counter!(POLLS_TOTAL, "outcome" => "ok").increment(1);
        metrics::gauge!(LAST_POLL_DURATION_SECONDS).set(self.duration.as_secs_f64());
        if self.backlog == 0 && !self.interrupted {
            tracing::debug!(duration = ?self.duration, "poll found nothing new");
            return;
        }
        tracing::info!(
            backlog = self.backlog,
            sessions = self.done.sessions,
            commands = self.done.commands,
            quarantined = self.done.quarantined,
            replaced = self.done.replaced,
            duration = ?self.duration,
            interrupted = self.interrupted,
            "poll completed"
        );
    }
}

/// A poll failed; the service retries after `retry_in`.
pub struct PollFailed<'a> {
    /// The first error's class.
    pub kind: IngestErrorKind,
    /// The first error.
    pub error: &'a anyhow::Error,
    /// Failed polls in a row.
    pub consecutive: u32,
    /// What the poll still committed.
    pub done: BatchSummary,
    /// How long it took.
    pub duration: Duration,
    /// Delay before the next poll (follow mode).
    pub retry_in: Option<Duration>,
}

impl PollFailed<'_> {
    /// Logs and counts the failure.
    pub fn emit(&self) {
        metrics::counter!(POLLS_TOTAL, "outcome" => "failed").increment(1);
        metrics::gauge!(LAST_POLL_DURATION_SECONDS).set(self.duration.as_secs_f64());
        tracing::warn!(
            kind = %self.kind,
            consecutive = self.consecutive,
            sessions = self.done.sessions,
            retry_in = ?self.retry_in,
            error = %format!("{:#}", self.error),
            "poll failed"
        );
    }
}

/// A stop signal arrived: no new work is taken, in-flight sessions finish and are committed.
pub struct ShutdownRequested {
    /// `SIGTERM` or `SIGINT`.
    pub signal: &'static str,
    /// The time they get.
    pub timeout: Duration,
}

impl ShutdownRequested {
    /// Logs the request.
    pub fn emit(&self) {
        tracing::info!(
            signal = self.signal,
            timeout = ?self.timeout,
            "shutdown requested; finishing in-flight sessions (a second signal stops at once)"
        );
    }
}

/// The service stopped cleanly: everything it read is committed and the cursors are saved.
pub struct ServiceStopped<'a> {
    /// Totals of the run.
    pub done: &'a BatchSummary,
    /// Commits made.
    pub commits: usize,
    /// Whether a signal stopped it.
    pub signalled: bool,
}

impl ServiceStopped<'_> {
    /// Logs the totals.
    pub fn emit(&self) {
        tracing::info!(
            sessions = self.done.sessions,
            commands = self.done.commands,
            quarantined = self.done.quarantined,
            replaced = self.done.replaced,
            commits = self.commits,
            signalled = self.signalled,
            "ingest stopped; cursors saved"
        );
    }
}

/// Shutdown did not finish in time, or a second signal came: the process stops with work in
/// flight (uncommitted, so replayed from the cursors on the next run).
pub struct ShutdownForced<'a> {
    /// Why.
    pub reason: &'a str,
}

impl ShutdownForced<'_> {
    /// Logs the forced stop.
    pub fn emit(&self) {
        tracing::error!(
            reason = self.reason,
            "stopping with sessions in flight; they are replayed from the cursors on the next run"
        );
    }
}

/// Counts sessions in flight while alive.
pub struct InFlight(());

impl InFlight {
    /// Counts one more session in flight until the guard drops.
    pub fn enter() -> InFlight {
        metrics::gauge!(SESSIONS_IN_FLIGHT).increment(1.0);
        InFlight(())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        metrics::gauge!(SESSIONS_IN_FLIGHT).decrement(1.0);
    }
}

/// Sends log lines at `filter` (tracing's syntax) to stderr, colored when `ansi`. Other crates'
/// TRACE events are never written (see [`sessionlake_storage::log_filter::loggable`]).
pub fn init_logging(filter: &str, ansi: bool) {
    use tracing_subscriber::filter::{FilterExt as _, filter_fn};
    use tracing_subscriber::prelude::*;
    let filter = tracing_subscriber::EnvFilter::new(filter)
        .and(filter_fn(sessionlake_storage::log_filter::loggable));
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(|| crate::progress::LogWriter)
                .with_ansi(ansi)
                .with_filter(filter),
        )
        .init();
    sessionlake_storage::allocator::log();
}
