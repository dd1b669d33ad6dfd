//! The ingest service: polls every source once (`--once`) or every `poll_interval` until
//! stopped (`--follow`), with a bounded number of sessions in flight, and stops cleanly on
//! SIGTERM or SIGINT. The delivery guarantees are in `ingest/design.md`.
//!
//! A poll lists every source (names and positions only), then works through what is new in
//! batches of `batch_sessions`: at most `max_in_flight` sessions are read, parsed and written
//! at once; each batch is one manifest commit, after which its cursors are saved. Memory is
//! bounded by `max_in_flight` transcripts, not by the backlog.
//!
//! In follow mode, when nothing was committed for `idle_period`, the service makes an empty
//! `idle` commit, and every commit records that period: a promise that the chain never goes
//! longer without a commit, which `sessionlake verify` checks (a deleted stretch of manifests,
//! or a writer that was stopped, shows as a gap). A clean stop makes a last empty commit that
//! promises a restart within `restart_within` (default: the idle period; `0s`: no promise), so
//! that a chain cut back to an older clean stop shows as a gap too; the restarted service
//! commits within the promise it finds, even when its own idle period is longer.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use futures::StreamExt as _;
use sessionlake_indexer::SessionContext;
use sessionlake_indexer::cloudtrail::{
    TrailLimits, attribution_conflicts, read_trail_file, session_context,
};
use sessionlake_schemas::paths;
use sessionlake_storage::LakeErrorKind;
use sessionlake_storage::cursors::Cursors;
use sessionlake_storage::history::History;
use sessionlake_storage::key_cache::CachingKeyProvider;
use sessionlake_storage::keys::{KeyProvider, Keys, KmsKeyProvider, LocalKeyring};
use sessionlake_storage::lease::{DEFAULT_LEASE_TTL, Lease, LeaseKeeper, Takeover};
use sessionlake_storage::manifest::{self, ChainLink, Committer, STOP_REASON};
use sessionlake_storage::signing::{KeyringSigner, KmsSigner, ManifestSigner};
use sessionlake_storage::store::{LakeLocation, LakeStore};
use sessionlake_storage::transaction::{self, Leftovers, Uncommitted};
use sessionlake_storage::trust::{PinnedSigner, Snapshot};
use tokio_util::sync::CancellationToken;

use crate::access_index::AccessIndex;
use crate::config::Config;
use crate::error::{IngestErrorKind, kind_of};
use crate::events;
use crate::lake_writer::{BatchSummary, Input, LakeWriter, Written};
use crate::sources::{self, BadInput, Clients, Fetched, Pending, Source, TrailInput, TrailPending};
use crate::telemetry::{self, Health};

/// Longest pause between polls after failures in a row (when the interval is shorter).
const MAX_FAILURE_BACKOFF: Duration = Duration::from_secs(300);

/// What a run did, in total.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RunSummary {
    /// What its commits did, added up (`sequence`: its last commit's).
    pub done: BatchSummary,
    /// Commits made.
    pub commits: usize,
    /// The keyring was created by this run.
    pub keyring_created: bool,
    /// A stop signal ended the run (everything read was still committed).
    pub signalled: bool,
    /// The head the run left the lake at: its last commit, else the trusted chain's newest
    /// manifest (`None`: the lake has none).
    pub head: Option<manifest::Head>,
}

/// What one poll did.
#[derive(Debug, Default)]
pub struct PollReport {
    /// Inputs the listing found new or changed.
    pub backlog: usize,
    /// What was committed, summed over the poll's batches.
    pub done: BatchSummary,
    /// Commits made.
    pub commits: usize,
    /// A stop signal ended the poll before its backlog was drained.
    pub interrupted: bool,
    /// The first error, if any; inputs that failed keep their cursors and are retried.
    pub failure: Option<anyhow::Error>,
}

/// One pending input after it was read and written (or not).
struct Processed {
    source_ref: String,
    outcome: anyhow::Result<Option<Written>>,
}

/// The state of a running ingest: the lake, the sources, the cursors.
pub struct Ingestor {
    config: Config,
    writer: LakeWriter,
    cursors: Cursors,
    /// Cursors set by a commit whose save failed: saved again later.
    cursors_dirty: bool,
    /// The sources, in the order they are read (`Config::sources`).
    sources: Vec<Box<dyn Source>>,
    /// The access events in the lake and those of the batch being written: their ids (an
    /// event delivered again is dropped) and the sessions' `StartSession` facts.
    access: AccessIndex,
    /// A commit of CloudTrail events failed: whether it landed is not known, so the access
    /// index is read from the lake again before the next CloudTrail file.
    access_unsure: bool,
    /// CloudTrail files whose reading failed, with the time of their first failure in a row
    /// (µs since the epoch): sessions wait for them at most [`TRAIL_WAIT`].
    trails_failing: HashMap<String, i64>,
    /// The keyring was created when opening.
    pub keyring_created: bool,
    /// Wall-clock time of the newest commit (µs since the epoch; `i64::MIN` for none).
    last_commit_at: i64,
    /// The newest commit's own promise when the lake was opened: (its time, the time it
    /// promised a commit by). A restart after a clean stop commits by then even when its own
    /// idle period is longer.
    inherited_promise: (i64, i64),
    /// No idle commit is tried before this time (µs since the epoch): after a failed one.
    idle_retry_at: i64,
    /// Renews the writer lease until stopped, then releases it.
    lease_keeper: LeaseKeeper,
    /// A poll failed: objects of inputs or commits that failed may be left uncommitted, and are
    /// swept before the lease is released.
    unclean: bool,
}

/// Longest time sessions wait for a CloudTrail file that fails to be read (follow mode; a
/// once run never waits): after it, sessions are ingested without its facts, and enriched when
/// the file is read (a late `StartSession` re-indexes them).
pub const TRAIL_WAIT: Duration = Duration::from_secs(5 * 60);

/// Returns the CloudTrail file among `failing` (name, first failure in a row, µs) that sessions
/// wait for at `now`: none in a once run, else one that has been failing for less than
/// [`TRAIL_WAIT`].
fn waited_for(failing: &HashMap<String, i64>, follow: bool, now: i64) -> Option<&str> {
    if !follow {
        return None;
    }
    let wait = i64::try_from(TRAIL_WAIT.as_micros()).unwrap_or(i64::MAX);
    failing
        .iter()
        .find(|(_, since)| now.saturating_sub(**since) < wait)
        .map(|(name, _)| name.as_str())
}

/// Least pause before a failed idle commit is tried again (when the poll interval is shorter).
const MIN_IDLE_RETRY: Duration = Duration::from_secs(1);

fn now_micros() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

/// The error of a KMS key option given without AWS configuration to reach KMS with.
fn missing_aws(option: &str, key_id: &str) -> String {
    format!(
        "{option} {key_id} is set but no AWS configuration was given to reach KMS: refusing to \
         use the local keyring instead"
    )
}

impl Ingestor {
    /// Opens the lake, the keys, the cursors and the AWS clients (with the configured retries:
    /// jittered exponential backoff on throttling, 5xx and timeouts).
    pub async fn open(config: &Config) -> anyhow::Result<Ingestor> {
        let sdk_config = if config.needs_aws() {
            Some(
                sessionlake_storage::aws::load_sdk_config(
                    config.region.as_deref(),
                    config.profile.as_deref(),
                )
                .await,
            )
        } else {
            None
        };
        Ingestor::open_with(config, sdk_config).await
    }

    /// Opens like [`Ingestor::open`], with AWS configuration given (credentials, region,
    /// endpoint) instead of loaded from the environment; the configured retries are applied.
    pub async fn open_with(
        config: &Config,
        sdk_config: Option<aws_config::SdkConfig>,
    ) -> anyhow::Result<Ingestor> {
        // Checked before anything is opened (the lease, the keyring).
        if sdk_config.is_none() {
            for (option, key_id) in
                [("--kms-key-id", &config.kms_key_id), ("--signing-key", &config.signing_key)]
            {
                if let Some(key_id) = key_id {
                    anyhow::bail!(missing_aws(option, key_id));
                }
            }
        }
        let retry =
            aws_config::retry::RetryConfig::standard().with_max_attempts(config.retry_max_attempts);
        let sdk_config = sdk_config.map(|sdk| sdk.to_builder().retry_config(retry).build());
        let location = LakeLocation::parse(&config.lake)?;
        let store =
            LakeStore::open(&location, sdk_config.as_ref())?.with_object_lock(config.object_lock);
        // The keyring first: a run that cannot use it leaves no lease behind.
        let (keyring, keyring_created) = open_keyring(config, &store).await?;
        // One ingest per lake: a second one pointed at it by mistake backs off here.
        let lease = Lease::acquire(&store, &manifest::writer_id(), DEFAULT_LEASE_TTL)
            .await
            .with_context(|| format!("failed to take the writer lease of {}", store.location()))?;
        let crashed = matches!(lease.takeover, Takeover::HolderGone(_));
        let mut keeper =
            Some(LeaseKeeper::start(lease, |error| events::LeaseLost { error }.emit()));
        // Every way out of the rest releases the lease (a refusal, an unreadable lake, a KMS
        // key that cannot be reached): the next run must not find it taken.
        let opened: anyhow::Result<Ingestor> = async {
        let keyring = keyring.map(Arc::new);
        // Only reached with a keyring: `open_keyring` leaves it out only when both keys are
        // KMS keys.
        let the_keyring = || keyring.clone().context("no keyring, and no KMS key in its place");
        let keys: Arc<dyn KeyProvider> = match (&config.kms_key_id, &sdk_config) {
            (Some(key_id), Some(sdk)) => {
                Arc::new(KmsKeyProvider::new(aws_sdk_kms::Client::new(sdk), key_id.clone()))
            }
            // Never the keyring in place of the KMS key asked for.
            (Some(key_id), None) => anyhow::bail!(missing_aws("--kms-key-id", key_id)),
            (None, _) => the_keyring()? as Arc<dyn KeyProvider>,
        };
        let keys: Arc<dyn KeyProvider> = Arc::new(CachingKeyProvider::new(keys, config.key_cache));
        let signer: Arc<dyn ManifestSigner> = match (&config.signing_key, &sdk_config) {
            (Some(key_id), Some(sdk)) => Arc::new(
                KmsSigner::connect(aws_sdk_kms::Client::new(sdk), key_id)
                    .await
                    .with_context(|| format!("failed to set up signing key {key_id}"))?,
            ),
            (Some(key_id), None) => anyhow::bail!(missing_aws("--signing-key", key_id)),
            (None, _) => Arc::new(KeyringSigner(the_keyring()?)),
        };
        // The live set is what this writer's own key and the keyring's key committed: a
        // manifest anyone else wrote never makes ingest replace or delete anything.
        let mut pinned = vec![PinnedSigner::of(signer.as_ref(), "the ingest signer")];
        if let Some(keyring) = &keyring
            && signer.key_id() != keyring.signer().key_id()
        {
            pinned.push(PinnedSigner::of(&KeyringSigner(Arc::clone(keyring)), "the keyring"));
        }
        for key_id in &config.trust_signing_keys {
            let Some(sdk) = &sdk_config else {
                anyhow::bail!(missing_aws("--trust-signing-key", key_id));
            };
            let public = sessionlake_storage::signing::kms_public_key_with(sdk, key_id.trim())
                .await
                .with_context(|| format!("failed to fetch the public key of {key_id}"))?;
            pinned.push(PinnedSigner {
                key_id: public.key_arn,
                public_key: public.spki,
                origin: "--trust-signing-key".to_string(),
            });
        }
        // From the newest checkpoint (a start costs the commits since it, however old the
        // lake), but for a crashed writer's sweep, which needs every object ever named.
        let mut snapshot = if crashed {
            Snapshot::open(&store, &pinned).await?
        } else {
            Snapshot::open_latest(&store, &pinned).await?
        };
        // The key a new signer replaces is the newest of its kind: when no commit since the
        // checkpoint has one, the whole chain tells.
        if snapshot.checkpoint().is_some()
            && manifest::last_signer_of(snapshot.chain(), signer.algorithm()).is_none()
        {
            snapshot = Snapshot::open(&store, &pinned).await?;
        }
        if let Some(sequence) = snapshot.checkpoint() {
            tracing::info!(lake = %store.location(), checkpoint = sequence, "opened from checkpoint");
        }
        for line in snapshot.ignored() {
            tracing::warn!(lake = %store.location(), problem = %line, "untrusted manifest ignored");
        }
        if snapshot.head().is_none() && snapshot.file_head().is_some() {
            snapshot.ensure_trusted("sessionlake-ingest")?;
        }
        snapshot.ensure_head_trusted("sessionlake-ingest")?;
        let chain_intact = snapshot.ensure_trusted("sessionlake-ingest").is_ok();
        if crashed {
            // A crashed writer's leftovers are deleted only on a wholly trusted chain.
            snapshot.ensure_trusted("sessionlake-ingest (sweeping a crashed writer's objects)")?;
            sweep_uncommitted(&store, &snapshot).await;
        }
        let head = snapshot.file_head();
        let (chain, live) = snapshot.into_parts();
        let cursors = Cursors::load(&store).await?;
        let access = AccessIndex::load(&store, &live).await?;
        let (lake_id, identity) = manifest::lake_identity(&store)
            .await
            .with_context(|| format!("failed to read the identity of {}", store.location()))?;
        manifest::ensure_not_retired(&store, signer.key_id()).await?;
        // Never a new signing key by the way (a KMS key rotated by a flag): only `sessionlake
        // rekey --new-signing-key` brings one in, in a commit of its own.
        manifest::ensure_known_signer(&store, signer.key_id()).await?;
        // A new key of the same kind as the last one that signed replaces it (it is retired
        // at the first commit); the keyring and a KMS key may both stay valid.
        let replaces = manifest::last_signer_of(&chain, signer.algorithm());
        let committer = Committer::new(signer)
            .replacing(replaces)
            .with_idle_period(config.follow.then_some(config.idle_period))
            .with_restart_within(config.follow.then_some(config.restart_within));
        let last_commit_at = chain
            .last()
            .and_then(|link| manifest::parse_rfc3339_micros(&link.manifest.body.committed_at))
            .unwrap_or(i64::MIN);
        let promised_secs = chain.last().and_then(|link| link.manifest.body.idle_period_secs);
        let promised_by = promised_secs.map_or(i64::MAX, |secs| {
            let micros = i64::try_from(secs).unwrap_or(i64::MAX).saturating_mul(1_000_000);
            last_commit_at.saturating_add(micros)
        });
        let unwrapper = Keys::new(keyring.clone(), sdk_config.clone()).with_store(store.clone());
        let writer = LakeWriter {
            store,
            keys,
            keyring,
            unwrapper,
            committer,
            live,
            lake_id,
            identity,
            head,
            trusted_head: chain.last().map(ChainLink::head),
            pinned,
            chain_intact,
            legacy_origins: HashMap::new(),
            hold_rows_up_to: config.hold_rows_up_to,
            // A run killed between a commit and its end-of-poll sync left the Delta logs
            // behind the chain: the first poll's end brings them to it (a sync writes nothing
            // to a log that lists the live set already). Not from a chain that is not wholly
            // trusted: its live set is this writer's view, not the lake's.
            delta_behind: head
                .filter(|_| chain_intact)
                .map(|head| (head, std::time::Instant::now())),
            delta_sync_every: crate::lake_writer::DELTA_SYNC_EVERY,
        };
        let clients = Clients::of(sdk_config.as_ref());
        let sources = config
            .sources
            .iter()
            .map(|source| source.build(&clients))
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Ingestor {
            config: config.clone(),
            writer,
            cursors,
            cursors_dirty: false,
            sources,
            access,
            access_unsure: false,
            trails_failing: HashMap::new(),
            keyring_created,
            last_commit_at,
            inherited_promise: (last_commit_at, promised_by),
            idle_retry_at: i64::MIN,
            lease_keeper: keeper.take().context("the writer lease was given up while opening")?,
            unclean: false,
        })
        }
        .await;
        if opened.is_err()
            && let Some(keeper) = keeper.take()
        {
            keeper.release().await;
        }
        opened
    }

    /// Returns how long until an idle commit is due (zero: now).
    fn idle_due_in(&self) -> Duration {
        let period = i64::try_from(self.config.idle_period.as_micros()).unwrap_or(i64::MAX);
        let mut due = self.last_commit_at.saturating_add(period);
        let (promised_at, promised_by) = self.inherited_promise;
        if self.last_commit_at == promised_at {
            due = due.min(promised_by);
        }
        let due = due.max(self.idle_retry_at);
        let wait = due.saturating_sub(now_micros()).max(0);
        Duration::from_micros(u64::try_from(wait).unwrap_or(0))
    }

    /// Makes an empty commit: an idle one (when due), or the last one of a clean stop, which
    /// promises only the restart (`restart_within`). A failure is logged; an idle commit is
    /// then tried again after the poll interval.
    async fn commit_empty(&mut self, stopping: bool) {
        if !stopping && !self.idle_due_in().is_zero() {
            return;
        }
        let reason = stopping.then(|| STOP_REASON.to_string());
        let committed = self
            .writer
            .commit_empty(reason, stopping)
            .await
            .with_context(|| format!("failed to commit to {}", self.writer.store.location()));
        match committed {
            Ok(link) => {
                self.last_commit_at = now_micros();
                events::IdleCommitted { sequence: link.manifest.body.sequence, stopping }.emit();
            }
            Err(error) => {
                let pause = self.config.poll_interval.max(MIN_IDLE_RETRY);
                let retry = i64::try_from(pause.as_micros()).unwrap_or(i64::MAX);
                self.idle_retry_at = now_micros().saturating_add(retry);
                events::IdleCommitFailed { error: &error, stopping }.emit();
            }
        }
    }

    /// Gives the lease up at the end of a run. After a failed poll, first deletes what failed
    /// inputs or commits may have left uncommitted: the lease is still held, nothing is in flight.
    /// A lost lease is not released, and then nothing is swept (the other writer's objects).
    pub async fn finish(mut self) {
        self.sync_delta().await;
        if self.unclean && !self.lease_keeper.is_lost() {
            let store = &self.writer.store;
            match Snapshot::open(store, &self.writer.pinned).await {
                Ok(snapshot) => match snapshot.ensure_trusted("the sweep of uncommitted objects") {
                    Ok(()) => sweep_uncommitted(store, &snapshot).await,
                    Err(error) => tracing::warn!(error = %error, "uncommitted objects not swept"),
                },
                Err(error) => tracing::warn!(error = %error, "uncommitted objects not swept"),
            }
        }
        self.lease_keeper.release().await;
    }

    /// Brings the tables' Delta logs to this writer's newest commit, if they do not follow it
    /// yet: after a poll's commits, once.
    pub async fn sync_delta(&mut self) {
        // A writer that lost its lease writes nothing more: the new holder syncs.
        if !self.lease_keeper.is_lost() {
            self.writer.sync_delta_if_behind().await;
        }
    }

    /// Returns what a one-shot writer of this process (the Lambda function's maintenance) opens
    /// the lake with: this writer's store, keys, keyring, signer and pins.
    pub fn lake_parts(&self, command: &'static str) -> sessionlake_keep::lake::LakeParts {
        let writer = &self.writer;
        sessionlake_keep::lake::LakeParts {
            store: writer.store.clone(),
            keys: writer.unwrapper.clone(),
            keyring: writer.keyring.clone(),
            signer: Box::new(writer.committer.shared_signer()),
            pinned: writer.pinned.clone(),
            command,
            warn: |line| tracing::warn!(problem = %line, "lake maintenance warning"),
        }
    }

    /// Returns when the lake's newest commit was made (µs since the epoch; `i64::MIN` for a
    /// lake with none).
    pub fn last_commit_at(&self) -> i64 {
        self.last_commit_at
    }

    /// Saves the cursors if a commit set them and their save failed.
    pub async fn flush_cursors(&mut self) -> anyhow::Result<()> {
        if self.cursors_dirty {
            self.cursors.save(&self.writer.store).await.context("failed to save cursors")?;
            self.cursors_dirty = false;
        }
        Ok(())
    }

    /// Lists the CloudTrail files of every source whose content may differ from their cursors.
    async fn list_trails(&self) -> anyhow::Result<Vec<TrailPending>> {
        let mut pending = Vec::new();
        for source in &self.sources {
            pending.extend(source.list_trails(&self.cursors).await?);
        }
        Ok(pending)
    }

    /// Reads one CloudTrail file; `None` when it is what its cursor holds (or is gone).
    async fn read_trail(&mut self, pending: TrailPending) -> anyhow::Result<Option<TrailInput>> {
        pending.read(&self.cursors).await
    }

    /// Parses one CloudTrail file, read as a stream, and writes its new access events (not yet
    /// committed); a file that cannot be read as CloudTrail is quarantined, and so is one over
    /// the record cap or a size limit (with the reason and count), after the access events
    /// read before the limit are written. Events whose id the lake holds from another file are
    /// dropped; the session facts of the rest are kept for enrichment, and the sessions already
    /// in the lake that lack them get new versions (see [`crate::enrich`]), committed with the
    /// access events.
    async fn write_trail(&mut self, input: TrailInput) -> anyhow::Result<Vec<Written>> {
        let TrailInput { source_ref, position, raw, expected } = input;
        let name = source_ref.clone();
        let limits =
            TrailLimits { max_records: self.config.max_trail_records, ..TrailLimits::default() };
        let (parsed, digest) =
            crate::raw::consume_raw(&raw, move |reader| read_trail_file(reader, &name, limits))
                .await?;
        if let Some(expected) = expected.filter(|expected| *expected != digest) {
            anyhow::bail!(
                "{source_ref} changed while it was read: {} bytes sha256 {} when listed, {} bytes \
                 sha256 {} when read",
                expected.len,
                expected.sha256,
                digest.len,
                digest.sha256
            );
        }
        let bad = |reason: String| BadInput {
            source: sources::CLOUDTRAIL_SOURCE,
            source_ref: source_ref.clone(),
            position: position.clone(),
            raw: raw.clone(),
            reason,
        };
        let mut parsed = match parsed {
            Ok(parsed) => parsed,
            Err(reason) => {
                return Ok(vec![self.writer.write_input(Input::Bad(bad(reason)), None).await?]);
            }
        };
        // The rest of a file over a limit is quarantined (the whole file, sealed, with the
        // reason); what was read before the limit is written as any file's.
        let mut written = Vec::new();
        if let Some(cut) = parsed.cut.take() {
            written.push(self.writer.write_input(Input::Bad(bad(cut.reason)), None).await?);
        }
        events::TrailRecordsMalformed { source_ref: &source_ref, reasons: &parsed.malformed }
            .emit();
        let sorted = self.access.sort(&source_ref, std::mem::take(&mut parsed.events));
        events::TrailEventsDuplicated { source_ref: &source_ref, count: sorted.elsewhere }.emit();
        if sorted.changed(self.cursors.positions.contains_key(&source_ref)) {
            events::TrailFileChanged {
                source_ref: &source_ref,
                known: sorted.known,
                missing: sorted.known.saturating_sub(sorted.read_before),
                altered: sorted.altered,
                added: sorted.fresh.len(),
            }
            .emit();
        }
        let mut fresh = sorted.fresh;
        // Sessions these events attribute first (the others' first attribution stands), in
        // order, and where each is in that list (a file may hold 100,000 events).
        let mut attributed: Vec<SessionContext> = Vec::new();
        let mut attributed_at: HashMap<String, usize> = HashMap::new();
        for event in &fresh {
            let Some(context) = session_context(event) else { continue };
            // An event that disagrees with the one a session was attributed to never
            // re-attributes it, nor its later deliveries: the first read stands (also after a
            // restart, `AccessIndex::load`); the other stays in `access`, where readers see the
            // conflict. Its time is the forger's choice, so it decides nothing.
            let first = self.access.context(&context.session_id).or_else(|| {
                attributed_at.get(&context.session_id).map(|&index| &attributed[index])
            });
            match first {
                Some(first) if attribution_conflicts(first, &context) => {
                    let session_id = context.session_id.as_str();
                    events::AttributionConflict { session_id, source_ref: &source_ref }.emit();
                }
                Some(_) => {}
                None => {
                    attributed_at.insert(context.session_id.clone(), attributed.len());
                    attributed.push(context);
                }
            }
        }
        written.extend(self.writer.enrich(attributed.clone(), self.config.max_in_flight).await?);
        let staged = AccessIndex::written(&mut fresh);
        written.push(self.writer.write_access(source_ref.clone(), position, fresh).await?);
        // Known only once written (and forgotten again if the batch fails to commit): a file
        // that fails is read again in full.
        self.access.stage(&source_ref, staged, attributed);
        Ok(written)
    }

    /// Reads every new CloudTrail file into the `access` table (and the enrichment map), a
    /// batch of `batch_sessions` files per commit, cursors saved after each commit.
    async fn ingest_trails(
        &mut self,
        shutdown: &CancellationToken,
        health: &Health,
        report: &mut PollReport,
    ) -> anyhow::Result<()> {
        if self.access_unsure {
            self.writer.reread().await.context("failed to read the chain again")?;
            self.access = AccessIndex::load(&self.writer.store, &self.writer.live).await?;
            self.access_unsure = false;
        }
        let pending = self.list_trails().await?;
        // A file no longer listed as changed (read since, or gone) is waited for no more.
        let listed: HashSet<String> = pending.iter().map(|trail| trail.source_ref()).collect();
        self.trails_failing.retain(|name, _| listed.contains(name));
        self.ingest_trail_files(pending, shutdown, health, report).await
    }

    /// Reads `pending` CloudTrail files into the `access` table (and the enrichment map), a
    /// batch of `batch_sessions` files per commit, cursors saved after each commit. A file that
    /// fails keeps its cursor (it is read again next time), goes to `report` and to the files
    /// sessions may wait for ([`Ingestor::trail_wait`]); the others are still read, unless
    /// every file of a batch failed. Returns an error only when a commit fails.
    pub async fn ingest_trail_files(
        &mut self,
        pending: Vec<TrailPending>,
        shutdown: &CancellationToken,
        health: &Health,
        report: &mut PollReport,
    ) -> anyhow::Result<()> {
        let mut queue = pending.into_iter().peekable();
        while queue.peek().is_some() {
            if shutdown.is_cancelled() {
                report.interrupted = true;
                return Ok(());
            }
            let mut written = Vec::new();
            let (mut attempted, mut failed) = (0_usize, 0_usize);
            for trail in queue.by_ref().take(self.config.batch_sessions) {
                let described = trail.source_ref();
                attempted += 1;
                let result = match self.read_trail(trail).await {
                    Ok(Some(input)) => self.write_trail(input).await.map(Some),
                    Ok(None) => Ok(None),
                    Err(error) => Err(error),
                };
                match result {
                    Ok(inputs) => {
                        self.trails_failing.remove(&described);
                        written.extend(inputs.into_iter().flatten());
                    }
                    Err(error) => {
                        failed += 1;
                        let error = error.context(format!("failed to ingest {described}"));
                        let kind = kind_of(&error);
                        events::InputFailed { source_ref: &described, kind, error: &error }.emit();
                        self.trails_failing.entry(described).or_insert_with(now_micros);
                        report.failure.get_or_insert(error);
                    }
                }
            }
            match self.commit_written(written, health, report).await {
                Ok(()) => self.access.commit(),
                Err(error) => {
                    // Its files keep their cursors and are read again: in full if the commit
                    // did not land, as read before if it did (a response lost).
                    self.access.discard();
                    self.access_unsure = true;
                    return Err(error);
                }
            }
            // Every file of the batch failed: the source or the lake is down; the next poll
            // tries again.
            if failed == attempted {
                break;
            }
        }
        Ok(())
    }

    /// Returns the CloudTrail file sessions wait for, if any: in follow mode, one that failed
    /// in the last poll and has been failing for less than [`TRAIL_WAIT`]. A once run never
    /// waits (it has no next poll); nor does anyone past the wait: sessions are then ingested
    /// without the file's facts, and enriched when it is read.
    fn trail_wait(&self) -> Option<&str> {
        waited_for(&self.trails_failing, self.config.follow, now_micros())
    }

    /// Commits `written` as one batch and saves the cursors after it; the batch goes to
    /// `report`.
    async fn commit_written(
        &mut self,
        written: Vec<Written>,
        health: &Health,
        report: &mut PollReport,
    ) -> anyhow::Result<()> {
        let batch = self
            .writer
            .commit(written, &mut self.cursors)
            .await
            .with_context(|| format!("failed to commit to {}", self.writer.store.location()))?;
        events::BatchCommitted { batch: &batch }.emit();
        if batch.sequence.is_some() {
            health.record_success();
            report.commits += 1;
            self.last_commit_at = now_micros();
        }
        report.done.add(&batch);
        if batch.cursors_moved {
            self.cursors_dirty = true;
            if let Err(error) = self.flush_cursors().await {
                events::CursorsNotSaved { error: &error }.emit();
                report.failure.get_or_insert(error);
            }
        }
        Ok(())
    }

    /// Writes `inputs` (no CloudTrail facts) and commits them as one batch, cursors saved
    /// after it.
    pub async fn commit_inputs(
        &mut self,
        inputs: Vec<Input>,
        health: &Health,
        report: &mut PollReport,
    ) -> anyhow::Result<()> {
        let mut written = Vec::new();
        for input in inputs {
            written.push(self.writer.write_input(input, None).await?);
        }
        self.commit_written(written, health, report).await
    }

    /// Returns the sources, in the order they are read.
    pub fn sources(&self) -> &[Box<dyn Source>] {
        &self.sources
    }

    /// Returns the cursors as of the last commit.
    pub fn cursors(&self) -> &Cursors {
        &self.cursors
    }

    /// Lists every session source (an S3 source with a queue: its messages); a source that
    /// fails is reported, the others still listed.
    async fn list(&self, failure: &mut Option<anyhow::Error>) -> Vec<Pending> {
        let mut pending = Vec::new();
        for source in &self.sources {
            match source.list(&self.cursors).await {
                Ok(found) => pending.extend(found),
                Err(error) => {
                    events::count_error(kind_of(&error));
                    failure.get_or_insert(error);
                }
            }
        }
        pending
    }

    /// Reads and writes one pending input (its objects durable, not yet committed).
    async fn process(&self, pending: Pending) -> Processed {
        let _in_flight = events::InFlight::enter();
        let source_ref = pending.source_ref();
        let outcome = match pending.fetch(&self.cursors).await {
            Err(error) => Err(error),
            Ok(Fetched::Unchanged) => Ok(None),
            Ok(Fetched::Bad(bad)) => self.writer.write_input(Input::Bad(bad), None).await.map(Some),
            Ok(Fetched::Session(input)) => {
                let context = self.access.context(&input.session_id).cloned();
                self.writer.write_input(Input::Session(input), context).await.map(Some)
            }
        };
        Processed { source_ref, outcome }
    }

    /// Reads and writes up to `max_in_flight` inputs of `batch` at once, in order; takes no
    /// new input once `shutdown` is cancelled (those in flight finish).
    async fn process_batch(
        &self,
        batch: Vec<Pending>,
        shutdown: &CancellationToken,
    ) -> Vec<Processed> {
        futures::stream::iter(batch)
            .take_while(|_| std::future::ready(!shutdown.is_cancelled()))
            .map(|pending| self.process(pending))
            .buffered(self.config.max_in_flight)
            .collect()
            .await
    }

    /// Polls every source once and ingests what is new, batch by batch. Stops taking new
    /// inputs when `shutdown` is cancelled, but commits those in flight first.
    /// Each commit is recorded in `health` as progress.
    pub async fn poll(&mut self, shutdown: &CancellationToken, health: &Health) -> PollReport {
        let mut report = PollReport::default();
        if let Err(error) = self.flush_cursors().await {
            events::count_error(kind_of(&error));
            report.failure = Some(error);
            return report;
        }
        // CloudTrail first: a session written without its CloudTrail facts keeps them missing.
        // A stop signal is seen between CloudTrail files, never inside a commit.
        let cloudtrail = self.ingest_trails(shutdown, health, &mut report).await;
        if report.interrupted {
            return report;
        }
        if let Err(error) = cloudtrail {
            events::count_error(kind_of(&error));
            report.failure =
                Some(error.context("failed to commit CloudTrail; sessions wait for it"));
            return report;
        }
        if let Some(waited_for) = self.trail_wait() {
            events::SessionsWaitForTrail { source_ref: waited_for, wait: TRAIL_WAIT }.emit();
            return report;
        }
        let mut failure = None;
        let pending = tokio::select! {
            () = shutdown.cancelled() => {
                report.interrupted = true;
                return report;
            }
            listed = self.list(&mut failure) => listed,
        };
        if let Some(failure) = failure {
            report.failure.get_or_insert(failure);
        }
        report.backlog = pending.len();
        events::BacklogListed { backlog: report.backlog }.emit();
        let done = self.ingest_pending(pending, shutdown, health, &mut report).await;
        // After the commits: a queue's message goes only when what it names is in the lake.
        for source in &self.sources {
            if let Err(error) = source.acknowledge(&done, &self.cursors).await {
                events::count_error(kind_of(&error));
                report.failure.get_or_insert(error);
            }
        }
        report
    }

    /// Reads, writes and commits `pending` work, `batch_sessions` inputs per commit and
    /// `max_in_flight` at once, cursors saved after each commit; stops taking new inputs when
    /// `shutdown` is cancelled (those in flight are committed), and after a batch whose every
    /// input failed. Failures go to `report`; returns the inputs committed or found unchanged.
    pub async fn ingest_pending(
        &mut self,
        pending: Vec<Pending>,
        shutdown: &CancellationToken,
        health: &Health,
        report: &mut PollReport,
    ) -> HashSet<String> {
        // Inputs committed (or found unchanged): the queue messages naming only those are
        // deleted after them.
        let mut done: HashSet<String> = HashSet::new();
        let mut queue = pending.into_iter().peekable();
        while queue.peek().is_some() {
            if shutdown.is_cancelled() {
                report.interrupted = true;
                break;
            }
            let batch: Vec<Pending> = queue.by_ref().take(self.config.batch_sessions).collect();
            let processed = self.process_batch(batch, shutdown).await;
            let attempted = processed.len();
            let mut written = Vec::new();
            let mut failed = 0usize;
            let mut succeeded = Vec::new();
            for Processed { source_ref, outcome } in processed {
                match outcome {
                    Ok(Some(input)) => {
                        written.push(input);
                        succeeded.push(source_ref);
                    }
                    Ok(None) => {
                        succeeded.push(source_ref);
                    }
                    Err(error) => {
                        failed += 1;
                        events::InputFailed {
                            source_ref: &source_ref,
                            kind: kind_of(&error),
                            error: &error,
                        }
                        .emit();
                        report.failure.get_or_insert(error);
                    }
                }
            }
            match self.writer.commit(written, &mut self.cursors).await {
                Ok(batch) => {
                    done.extend(succeeded);
                    events::BatchCommitted { batch: &batch }.emit();
                    if batch.sequence.is_some() {
                        health.record_success();
                    }
                    report.done.add(&batch);
                    if batch.sequence.is_some() {
                        report.commits += 1;
                        self.last_commit_at = now_micros();
                    }
                    if batch.cursors_moved {
                        self.cursors_dirty = true;
                        if let Err(error) = self.flush_cursors().await {
                            events::CursorsNotSaved { error: &error }.emit();
                            report.failure.get_or_insert(error);
                        }
                    }
                }
                Err(error) => {
                    let error = error
                        .context(format!("failed to commit to {}", self.writer.store.location()));
                    events::count_error(IngestErrorKind::Lake);
                    report.failure.get_or_insert(error);
                    break;
                }
            }
            // Every input of the batch failed: the source or the lake is down; wait for the
            // next poll rather than fail through the rest of the backlog.
            if attempted > 0 && failed == attempted {
                break;
            }
        }
        if queue.peek().is_some() && shutdown.is_cancelled() {
            report.interrupted = true;
        }
        done
    }
}

/// Opens the keyring of `config`; creates one only for a lake that has no commit yet. A lake
/// with commits was signed and encrypted with its own keyring: a new one (a run from another
/// folder, a mistyped `--keyring`) could neither open its sessions nor be trusted by it.
///
/// With both a KMS data key and a KMS signing key, no keyring is needed: none is created, and
/// one that exists is opened (its key still opens what it encrypted before the switch to KMS,
/// and its signatures stay trusted). That is how the Lambda function runs: its `/tmp` starts
/// empty in every new environment.
async fn open_keyring(
    config: &Config,
    store: &LakeStore,
) -> anyhow::Result<(Option<LocalKeyring>, bool)> {
    let absent = std::fs::symlink_metadata(&config.keyring).is_err();
    if absent && config.kms_key_id.is_some() && config.signing_key.is_some() {
        // Only for a lake no keyring ever signed: without its key, the commits that keyring
        // signed would not be trusted, and their sessions would read as never ingested.
        let mut ignored = Vec::new();
        let records = sessionlake_storage::trust::read_key_records(store, &mut ignored).await?;
        let keyring_signer = records
            .iter()
            .find(|(_, key)| key.algorithm == sessionlake_schemas::manifest::SIGNATURE_ED25519);
        if let Some((key_id, _)) = keyring_signer {
            anyhow::bail!(
                "keyring {} not found, and {} holds commits the keyring key {key_id} signed: \
                 give the lake's keyring with --keyring (with both keys in KMS, a keyring is \
                 needed only for a lake that was once signed by one)",
                config.keyring.display(),
                store.location()
            );
        }
        return Ok((None, false));
    }
    if !config.allow_insecure_keyring {
        LocalKeyring::ensure_private(&config.keyring)?;
    }
    if absent && let Some(head) = manifest::head(store).await? {
        anyhow::bail!(
            "keyring {} not found, and {} already has commits (newest {}): give the lake's \
             keyring with --keyring; a new keyring can neither open nor sign for this lake",
            config.keyring.display(),
            store.location(),
            head.path
        );
    }
    let (keyring, created) = LocalKeyring::open_or_create(&config.keyring)?;
    Ok((Some(keyring), created))
}

/// What a crashed or killed ingest leaves: objects in its folders that no commit names (their
/// inputs are read again from the cursors).
const INGEST_LEFTOVERS: Leftovers<'static> = Leftovers {
    folders: &[
        paths::RAW_DIR,
        paths::COMMANDS_DIR,
        paths::SESSIONS_DIR,
        paths::ACCESS_DIR,
        paths::QUARANTINE_DIR,
        paths::SESSION_KEYS_DIR,
        paths::FILE_KEYS_DIR,
    ],
    uncommitted: Some(Uncommitted { older_than: None, only: |_| true }),
    removed_by: &[],
};

/// Deletes what a crashed or killed earlier run wrote and never committed. Called only when the
/// lease taken named a process of this host that is gone (a crash or a kill), or at the end of
/// a run whose poll failed, so that no live writer's in-flight objects are touched, and a clean
/// start pays no listing of the lake. `snapshot` is the whole chain (the sweep refuses anything
/// less). Failures are logged; `verify` names what stays.
async fn sweep_uncommitted(store: &LakeStore, snapshot: &Snapshot) {
    let swept = transaction::sweep(
        store,
        &History::of(snapshot.chain()),
        snapshot.live(),
        snapshot.file_head(),
        &INGEST_LEFTOVERS,
    )
    .await;
    let (deleted, failed) = match swept {
        Ok(swept) => (swept.deleted, swept.failed.len()),
        Err(error) => {
            tracing::warn!(error = %error, "uncommitted objects not swept");
            (0, 1)
        }
    };
    let lake = store.location().to_string();
    events::UncommittedSwept { lake: &lake, deleted, failed }.emit();
}

/// Returns the pause before the next poll: the interval, and after failures in a row a
/// jittered exponential backoff (up to `MAX_FAILURE_BACKOFF` or the interval if longer).
fn next_delay(interval: Duration, consecutive_failures: u32) -> Duration {
    if consecutive_failures <= 1 {
        return interval;
    }
    let ceiling = interval.max(MAX_FAILURE_BACKOFF);
    let exponential = interval.saturating_mul(1 << (consecutive_failures - 1).min(10)).min(ceiling);
    let spread = exponential.saturating_sub(interval);
    interval + spread.mul_f64(fastrand::f64())
}

fn source_count(config: &Config) -> usize {
    config.sources.len()
}

/// Runs ingest until it is done (`--once`) or `shutdown` is cancelled (`--follow`), serving
/// metrics meanwhile if configured. Everything read is committed before it returns.
pub async fn serve(config: &Config, shutdown: CancellationToken) -> anyhow::Result<RunSummary> {
    let health = Arc::new(Health::new(config.poll_interval));
    let metrics_stop = CancellationToken::new();
    let metrics_task = match config.metrics_addr {
        None => None,
        Some(address) => {
            let handle = telemetry::prometheus_handle()?;
            let listener = tokio::net::TcpListener::bind(address)
                .await
                .with_context(|| format!("failed to listen on metrics_addr {address}"))?;
            let bound = listener.local_addr().context("failed to read the metrics address")?;
            events::MetricsListening { address: bound }.emit();
            Some(tokio::spawn(telemetry::serve(
                listener,
                handle,
                Arc::clone(&health),
                metrics_stop.clone(),
            )))
        }
    };
    let result = poll_loop(config, &shutdown, &health).await;
    metrics_stop.cancel();
    if let Some(task) = metrics_task
        && let Err(join) = task.await
        && join.is_panic()
    {
        std::panic::resume_unwind(join.into_panic());
    }
    result
}

/// Opens the ingestor. While another ingest holds the lake's lease, once mode fails naming
/// it; follow mode stands by, trying again every poll interval, until the lease is free or
/// `shutdown` (then `None`).
async fn open_when_free(
    config: &Config,
    shutdown: &CancellationToken,
) -> anyhow::Result<Option<Ingestor>> {
    loop {
        let error = match Ingestor::open(config).await {
            Ok(ingestor) => return Ok(Some(ingestor)),
            Err(error) => error,
        };
        let busy = error
            .chain()
            .filter_map(|cause| cause.downcast_ref::<sessionlake_storage::LakeError>())
            .any(|lake| lake.kind() == LakeErrorKind::Busy);
        if !busy || !config.follow {
            return Err(error);
        }
        let retry_in = config.poll_interval.max(MIN_IDLE_RETRY);
        events::LeaseBusy { error: &error, retry_in }.emit();
        tokio::select! {
            () = shutdown.cancelled() => return Ok(None),
            () = tokio::time::sleep(retry_in) => {}
        }
    }
}

async fn poll_loop(
    config: &Config,
    shutdown: &CancellationToken,
    health: &Health,
) -> anyhow::Result<RunSummary> {
    let Some(mut ingestor) = open_when_free(config, shutdown).await? else {
        // Stopped while standing by: nothing was read or written.
        return Ok(RunSummary { signalled: true, ..RunSummary::default() });
    };
    // A lost lease stops the service like a signal, then fails the run.
    let lost = ingestor.lease_keeper.lost_token();
    let shutdown = &shutdown.child_token();
    let forward = shutdown.clone();
    let lost_watch = tokio::spawn(async move {
        lost.cancelled().await;
        forward.cancel();
    });
    events::ServiceStarted {
        mode: if config.follow { "follow" } else { "once" },
        lake: &config.lake,
        sources: source_count(config),
        poll_interval: config.poll_interval,
        max_in_flight: config.max_in_flight,
        batch_sessions: config.batch_sessions,
    }
    .emit();
    let mut summary =
        RunSummary { keyring_created: ingestor.keyring_created, ..RunSummary::default() };
    let mut consecutive_failures = 0u32;
    loop {
        let started = Instant::now();
        let report = ingestor.poll(shutdown, health).await;
        // The Delta logs follow the poll's commits, once.
        ingestor.sync_delta().await;
        summary.done.add(&report.done);
        summary.commits += report.commits;
        let duration = started.elapsed();
        match report.failure {
            None => {
                consecutive_failures = 0;
                health.record_success();
                events::PollCompleted {
                    backlog: report.backlog,
                    done: report.done,
                    duration,
                    interrupted: report.interrupted,
                }
                .emit();
            }
            Some(error) => {
                ingestor.unclean = true;
                consecutive_failures += 1;
                let retry_in = (config.follow && !shutdown.is_cancelled())
                    .then(|| next_delay(config.poll_interval, consecutive_failures));
                events::PollFailed {
                    kind: kind_of(&error),
                    error: &error,
                    consecutive: consecutive_failures,
                    done: report.done,
                    duration,
                    retry_in,
                }
                .emit();
                if !config.follow {
                    lost_watch.abort();
                    ingestor.finish().await;
                    return Err(error.context(format!(
                        "poll failed after committing {} sessions (the rest is retried on the next run)",
                        summary.done.sessions
                    )));
                }
            }
        }
        if !config.follow || shutdown.is_cancelled() {
            break;
        }
        // Until the next poll, wake up for idle commits when they fall due.
        let next_poll = Instant::now() + next_delay(config.poll_interval, consecutive_failures);
        loop {
            ingestor.commit_empty(false).await;
            let wait = next_poll.saturating_duration_since(Instant::now());
            let wait = wait.min(ingestor.idle_due_in());
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(wait) => {}
            }
            if Instant::now() >= next_poll {
                break;
            }
        }
        if shutdown.is_cancelled() {
            break;
        }
    }
    if config.follow {
        ingestor.commit_empty(true).await;
    }
    let flushed = ingestor.flush_cursors().await;
    lost_watch.abort();
    let lease_lost = ingestor.lease_keeper.is_lost();
    let head = ingestor.writer.trusted_head.clone();
    ingestor.finish().await;
    if let Err(error) = flushed {
        return Err(error.context("failed to save cursors at shutdown (the commits hold; the sessions they name are replaced on the next run)"));
    }
    if lease_lost {
        anyhow::bail!(
            "stopped: the writer lease of {} was taken by another ingest while this one ran (see the log)",
            config.lake
        );
    }
    summary.signalled = shutdown.is_cancelled();
    summary.head = head;
    events::ServiceStopped {
        done: &summary.done,
        commits: summary.commits,
        signalled: summary.signalled,
    }
    .emit();
    Ok(summary)
}

/// A stop that did not wait for in-flight work.
#[derive(Debug, thiserror::Error)]
pub enum ForcedStop {
    /// A second SIGTERM/SIGINT.
    #[error(
        "received {name} again: stopped at once; sessions in flight were not committed and are replayed from the cursors on the next run"
    )]
    SecondSignal {
        /// `SIGTERM` or `SIGINT`.
        name: &'static str,
        /// The signal number.
        number: i32,
    },
    /// In-flight work did not finish within `shutdown_timeout`.
    #[error(
        "shutdown did not finish within shutdown_timeout ({seconds}s): stopped with sessions in flight; they are replayed from the cursors on the next run"
    )]
    TimedOut {
        /// The timeout.
        seconds: f64,
    },
}

impl ForcedStop {
    /// Returns the process exit code: 128 + the signal for a second signal, 3 for a timeout.
    pub fn exit_code(&self) -> u8 {
        match self {
            ForcedStop::SecondSignal { number, .. } => (128 + number).clamp(0, 255) as u8,
            ForcedStop::TimedOut { .. } => 3,
        }
    }
}

/// SIGTERM and SIGINT.
struct StopSignals {
    terminate: tokio::signal::unix::Signal,
    interrupt: tokio::signal::unix::Signal,
}

impl StopSignals {
    fn listen() -> anyhow::Result<StopSignals> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(StopSignals {
            terminate: signal(SignalKind::terminate()).context("failed to listen for SIGTERM")?,
            interrupt: signal(SignalKind::interrupt()).context("failed to listen for SIGINT")?,
        })
    }

    /// Waits for the next signal; returns its name and number.
    async fn recv(&mut self) -> (&'static str, i32) {
        tokio::select! {
            _ = self.terminate.recv() => ("SIGTERM", 15),
            _ = self.interrupt.recv() => ("SIGINT", 2),
        }
    }
}

/// Runs the service under signal control: the first SIGTERM/SIGINT stops taking new work and
/// lets in-flight sessions finish and commit (within `shutdown_timeout`); a second one, or the
/// timeout, returns a [`ForcedStop`] at once.
pub async fn run(config: &Config) -> anyhow::Result<RunSummary> {
    let mut signals = StopSignals::listen()?;
    let shutdown = CancellationToken::new();
    let work = serve(config, shutdown.clone());
    tokio::pin!(work);
    let (name, _) = tokio::select! {
        result = &mut work => return result,
        signal = signals.recv() => signal,
    };
    events::ShutdownRequested { signal: name, timeout: config.shutdown_timeout }.emit();
    shutdown.cancel();
    let forced = tokio::select! {
        result = &mut work => return result,
        (name, number) = signals.recv() => ForcedStop::SecondSignal { name, number },
        () = tokio::time::sleep(config.shutdown_timeout) => {
            ForcedStop::TimedOut { seconds: config.shutdown_timeout.as_secs_f64() }
        }
    };
    events::ShutdownForced { reason: &forced.to_string() }.emit();
    Err(forced.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{FileConfig, LocalSourceConfig, SourceConfig};

    /// Sessions wait for a CloudTrail file that fails only in follow mode and only for
    /// `TRAIL_WAIT` from its first failure in a row; never in a once run (issue 18,
    /// requirement 7: a trail file never blocks sessions indefinitely).
    #[test]
    fn test_sessions_wait_for_a_failing_trail_file_a_bounded_time() {
        let wait = i64::try_from(TRAIL_WAIT.as_micros()).expect("wait");
        let failing = HashMap::from([("s3://trail/a.json.gz".to_string(), 1_000_000)]);
        let cases = [
            (true, 1_000_000, Some("s3://trail/a.json.gz")),
            (true, 1_000_000 + wait - 1, Some("s3://trail/a.json.gz")),
            (true, 1_000_000 + wait, None),
            (false, 1_000_000, None),
        ];
        for (follow, now, expected) in cases {
            assert_eq!(waited_for(&failing, follow, now), expected, "follow {follow}, at {now}");
        }
        assert_eq!(waited_for(&HashMap::new(), true, 0), None);
    }

    /// A commit of CloudTrail events that fails may still have landed (its response lost):
    /// what the batch staged is forgotten, and the access index is read from the lake again
    /// before the next CloudTrail file, so that the file, read again, adds nothing twice.
    #[tokio::test]
    async fn test_after_a_failed_trail_commit_the_access_index_is_read_from_the_lake_again() {
        let dir = tempfile::tempdir().expect("tempdir");
        let empty = dir.path().join("empty");
        std::fs::create_dir(&empty).expect("folder");
        let path = |name: &str| dir.path().join(name).to_str().expect("utf-8").to_string();
        let layer = FileConfig {
            lake: Some(path("lake")),
            keyring: Some(path("keyring.json").into()),
            source: vec![SourceConfig::Local(LocalSourceConfig { path: empty.clone() })],
            ..FileConfig::default()
        };
        let config = Config::load(None, layer).expect("config");
        let mut ingestor = Ingestor::open_with(&config, None).await.expect("open");
        let trails = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../examples/cloudtrail/AWSLogs/111122223333/CloudTrail/us-east-1/2026/03/14");
        let file = std::fs::read_dir(trails).expect("examples").next().expect("a file");
        let bytes = std::fs::read(file.expect("entry").path()).expect("read");
        let source_ref = "s3://trail/AWSLogs/a.json.gz".to_string();
        let input = |position: &str| TrailInput {
            source_ref: source_ref.clone(),
            position: position.into(),
            raw: bytes.clone().into(),
            expected: None,
        };
        let written = ingestor.write_trail(input("etag-1")).await.expect("write");
        let events = written.iter().fold(0, |sum, written| match written {
            Written::Access { events, .. } => sum + events,
            _ => sum,
        });
        assert!(events > 0, "the example has access events");
        // The commit lands; the ingestor is told it failed (as `ingest_trail_files` is).
        ingestor.writer.commit(written, &mut Cursors::default()).await.expect("commit");
        ingestor.access.discard();
        ingestor.access_unsure = true;
        let (shutdown, health) = (CancellationToken::new(), Health::new(Duration::from_secs(1)));
        let mut report = PollReport::default();
        ingestor.ingest_trails(&shutdown, &health, &mut report).await.expect("poll");
        assert!(!ingestor.access_unsure);
        let again = ingestor.write_trail(input("etag-1")).await.expect("read again");
        let added = again.iter().fold(0, |sum, written| match written {
            Written::Access { events, .. } => sum + events,
            _ => sum,
        });
        assert_eq!(added, 0, "the landed events are known again: none written twice");
    }

    #[tokio::test]
    async fn test_a_kms_key_without_aws_configuration_is_an_error_not_the_keyring() {
        let dir = tempfile::tempdir().expect("tempdir");
        let lake = dir.path().join("lake");
        let keyring = dir.path().join("keyring.json");
        for option in ["--kms-key-id", "--signing-key"] {
            let key = Some("alias/lake".to_string());
            let mut layer = FileConfig {
                lake: Some(lake.to_str().expect("utf-8").to_string()),
                keyring: Some(keyring.clone()),
                ..FileConfig::default()
            };
            match option {
                "--kms-key-id" => layer.kms_key_id = key,
                _ => layer.signing_key = key,
            }
            let config = Config::load(None, layer).expect("config");
            let error = Ingestor::open_with(&config, None).await.err().expect("refused");
            let text = format!("{error:#}");
            assert!(text.contains(option) && text.contains("alias/lake"), "{option}: {text}");
            assert!(std::fs::metadata(&keyring).is_err(), "{option}: the keyring was opened");
        }
    }

    #[test]
    fn test_next_delay_backs_off_with_jitter_within_bounds() {
        let interval = Duration::from_secs(10);
        assert_eq!(next_delay(interval, 0), interval);
        assert_eq!(next_delay(interval, 1), interval);
        for failures in 2..40 {
            let delay = next_delay(interval, failures);
            assert!(delay >= interval && delay <= MAX_FAILURE_BACKOFF, "{failures}: {delay:?}");
        }
        let long = Duration::from_secs(3600);
        assert_eq!(next_delay(long, 5), long, "never below or above a long interval");
    }
}
