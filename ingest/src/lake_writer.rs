//! One batch through the lake: parse, seal, write ([`LakeWriter::write_input`], one input at a
//! time, several at once), then commit and advance cursors ([`LakeWriter::commit`], once per
//! batch).
//!
//! Order (DESIGN.md): every object is durable before the manifest names it, and the manifest is
//! durable before the cursors move. A crash anywhere replays from the last cursors.
//!
//! Each session read from a source becomes one *version*: a raw object, a `commands` file and
//! a `sessions` file under fresh names, each with its own data key. The commit that adds a
//! version removes the version it replaces (the same session from the same source: a stream
//! that grew, an object re-uploaded), so readers, who read only what the manifest says is live,
//! see every session once. Objects of a write that never committed are not live; `verify`
//! lists them.
//!
//! A CloudTrail file becomes `access` files, one per day its events happened on
//! ([`LakeWriter::write_access`]). A newer read of the same file replaces nothing: it writes
//! only the events the lake lacks (`crate::access_index`), so that whoever can overwrite a
//! CloudTrail file can add events but never take one out of the lake.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use anyhow::Context as _;
use bytes::Bytes;
use sessionlake_indexer::{InputForm, PARSER_VERSION, ParsedSession, SessionContext};
use sessionlake_schemas::envelope::{
    ROLE_ACCESS, ROLE_COMMANDS, ROLE_QUARANTINE, ROLE_RAW, ROLE_SESSION,
};
use sessionlake_schemas::manifest::{
    CommitAction, ObjectEntry, ObjectKind, compacted_version_source,
};
use sessionlake_schemas::{AccessRecord, SessionConfidence, SessionRecord, SessionSource, paths};
use sessionlake_storage::LakeError;
use sessionlake_storage::checkpoint;
use sessionlake_storage::cursors::Cursors;
use sessionlake_storage::keys::{KeyProvider, Keys, LocalKeyring};
use sessionlake_storage::manifest::{self, ChainLink};
use sessionlake_storage::session_keys::{SessionKey, file_key_records};
use sessionlake_storage::store::{LakeStore, sha256_hex};
use sessionlake_storage::transaction::{self, Transaction};
use sessionlake_storage::trust::{PinnedSigner, Snapshot};
use sessionlake_tables::merge::{Compacted, LakeFiles, MergedTable, Writer, write_access_file};

use crate::raw::{HOLD_BYTES_UP_TO, Raw, Replay, parse_raw, seal_raw, seal_raw_replaying};
use crate::sources::{BadInput, SessionInput};

/// A session version's objects, its command count and whether it was understood with `low`
/// confidence.
type WrittenSession = (Vec<ObjectEntry>, usize, bool);

/// What a batch did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct BatchSummary {
    /// Sessions written.
    pub sessions: usize,
    /// Commands written.
    pub commands: usize,
    /// Inputs quarantined.
    pub quarantined: usize,
    /// Sessions written that were understood with `low` confidence.
    pub low_confidence: usize,
    /// Earlier versions of sessions this batch replaced.
    pub replaced: usize,
    /// Bytes of the original transcripts written.
    pub raw_bytes: u64,
    /// CloudTrail access events written.
    pub access_events: usize,
    /// Manifest sequence of the commit, if one was made.
    pub sequence: Option<u64>,
    /// Cursors moved (with a commit, or for inputs that had nothing to commit).
    pub cursors_moved: bool,
}

impl BatchSummary {
    /// Adds `batch`'s counts to these; the sequence becomes `batch`'s when it made a commit.
    pub fn add(&mut self, batch: &BatchSummary) {
        self.sessions += batch.sessions;
        self.commands += batch.commands;
        self.quarantined += batch.quarantined;
        self.low_confidence += batch.low_confidence;
        self.replaced += batch.replaced;
        self.raw_bytes += batch.raw_bytes;
        self.access_events += batch.access_events;
        self.sequence = batch.sequence.or(self.sequence);
        self.cursors_moved |= batch.cursors_moved;
    }
}

/// The lake side of ingest: where to write, with which keys, and what is live.
pub struct LakeWriter {
    /// The lake.
    pub store: LakeStore,
    /// Data keys for new objects.
    pub keys: Arc<dyn KeyProvider>,
    /// The local keyring (none when both the data key and the signing key are KMS keys).
    pub keyring: Option<Arc<LocalKeyring>>,
    /// Unwraps the data keys of stored objects (to re-index a stored transcript).
    pub unwrapper: Keys,
    /// Signs commits (the keyring's key or a KMS key) and records the idle-commit promise.
    pub committer: manifest::Committer,
    /// Live objects by path, as of the last commit (kept up to date by `write_batch`).
    pub live: BTreeMap<String, ObjectEntry>,
    /// The lake's id, named in every data key's encryption context.
    pub lake_id: String,
    /// `lake.json`'s entry, committed with the first commit that finds it not live.
    pub identity: ObjectEntry,
    /// Sequence of the newest manifest this writer knows (`None`: the lake has none): its
    /// commits are made only right after it.
    pub head: Option<u64>,
    /// The newest trusted head this writer knows: its own last commit, else the trusted
    /// chain's newest manifest when it opened the lake (what a run reports).
    pub trusted_head: Option<manifest::Head>,
    /// The signers whose manifests it trusts (its own, and the keyring's): the live set is
    /// what they committed.
    pub pinned: Vec<PinnedSigner>,
    /// Whether the chain it read was wholly trusted (no hole, fork or untrusted manifest): only
    /// then does it sign checkpoints, which readers take instead of the chain before them.
    pub chain_intact: bool,
    /// The origin tags of live session versions written before versions carried one (by
    /// version name), read from their `sessions` files when a tagged version of the same
    /// session arrives ([`LakeWriter::learn_legacy_origins`]).
    pub legacy_origins: HashMap<String, String>,
    /// Bytes of a transcript up to which its rows are held in memory while it is parsed;
    /// a bigger one is parsed twice, its rows written as they come (see `crate::raw`).
    pub hold_rows_up_to: u64,
    /// The newest commit of this writer the tables' Delta logs do not follow yet, and since
    /// when they have not followed its commits.
    pub delta_behind: Option<(u64, std::time::Instant)>,
    /// How long a poll's commits may go unfollowed before a commit syncs the logs itself
    /// ([`DELTA_SYNC_EVERY`]): a long catch-up poll shows its progress to Delta readers.
    pub delta_sync_every: std::time::Duration,
}

/// [`LakeWriter::delta_sync_every`]'s default.
pub const DELTA_SYNC_EVERY: std::time::Duration = std::time::Duration::from_secs(300);

/// [`LakeWriter::hold_rows_up_to`]'s default: 64 MiB of transcript, about 60,000 commands
/// and their outputs held.
pub const HOLD_ROWS_UP_TO: u64 = 64 * 1024 * 1024;

use sessionlake_schemas::envelope::key_context;

/// One input written to the lake and not yet committed: its objects are durable but not live.
#[derive(Debug)]
pub enum Written {
    /// A session version.
    Session {
        /// Session id.
        session_id: String,
        /// Which delivery.
        source: SessionSource,
        /// Where it came from (the cursor's key).
        source_ref: String,
        /// Cursor value once committed (none: the cursor stays, as when a stored version is
        /// re-indexed with new CloudTrail facts).
        position: Option<String>,
        /// The raw, commands and sessions objects.
        objects: Vec<ObjectEntry>,
        /// Commands extracted.
        commands: usize,
        /// Size of the original transcript.
        raw_bytes: u64,
        /// The session was understood with `low` confidence.
        low_confidence: bool,
    },
    /// The access events of one CloudTrail file.
    Access {
        /// The CloudTrail file (the cursor's key).
        source_ref: String,
        /// Cursor value once committed.
        position: String,
        /// One `access` file per day; none when the file held no new access event.
        objects: Vec<ObjectEntry>,
        /// Events written.
        events: usize,
    },
    /// A quarantined input.
    Quarantined {
        /// Where it came from.
        source_ref: String,
        /// Cursor value once committed.
        position: String,
        /// The sealed original.
        object: ObjectEntry,
    },
}

/// An input for [`LakeWriter::write_input`].
#[derive(Debug)]
pub enum Input {
    /// A session to parse and write.
    Session(SessionInput),
    /// Bad input to quarantine.
    Bad(BadInput),
}

use sessionlake_tables::merge::new_version;

impl LakeWriter {
    async fn quarantine(&self, bad: BadInput) -> anyhow::Result<ObjectEntry> {
        let object_id = source_object_id(&bad.source_ref);
        let path = paths::quarantine_object(bad.source, &format!("{object_id}.{}", new_version()));
        let (key, wrapped) = self
            .keys
            .generate_data_key(key_context(&self.lake_id, &object_id, ROLE_QUARANTINE))
            .await
            .with_context(|| format!("failed to get a data key for {}", bad.source_ref))?;
        let stored =
            seal_raw(&bad.raw, &bad.source_ref, &self.store, &path, (key, wrapped), None).await?;
        // Names are a source writer's choice: printed escaped (no line breaks, no invisible or
        // bidirectional characters).
        tracing::warn!(source = ?bad.source_ref, object = %path, reason = ?bad.reason, "input quarantined");
        let mut quarantined = stored.into_entry(ObjectKind::Quarantine, Vec::new());
        quarantined.note = Some(bad.reason);
        Ok(quarantined)
    }

    /// Parses and writes one session version; returns its objects, how many commands and
    /// whether it was understood with low confidence, or the input back as bad.
    /// Objects written before a failure are deleted again (best effort): nothing names them.
    async fn write_session(
        &self,
        input: SessionInput,
        context: SessionContext,
    ) -> anyhow::Result<Result<WrittenSession, BadInput>> {
        let mut written = Vec::new();
        let result = self.write_session_objects(input, context, &mut written).await;
        if result.is_err() {
            transaction::discard(&self.store, written).await;
        }
        result
    }

    async fn write_session_objects(
        &self,
        input: SessionInput,
        context: SessionContext,
        written: &mut Vec<String>,
    ) -> anyhow::Result<Result<WrittenSession, BadInput>> {
        // Two passes over the original (see `crate::raw`): parse and hash, then, with the
        // partition known, seal and upload. A transcript too big to hold its rows is parsed
        // in both: holding none in the first, writing them as they come in the second.
        let raw = input.raw;
        let big = matches!(&raw, Raw::Object(object) if object.len > self.hold_rows_up_to)
            && input.form != InputForm::CloudwatchStream;
        let replay_context = big.then(|| context.clone());
        // A small object is read once, into memory: parsed and sealed from there.
        let raw = if big {
            raw
        } else {
            raw.held_up_to(self.hold_rows_up_to.min(HOLD_BYTES_UP_TO)).await?
        };
        let (mut parsed, mut digest) = parse_raw(&raw, input.form, context, !big).await?;
        // Rows out of time order cannot be written as they come: held after all.
        if let (Ok(ParsedSession { plan: Some(plan), .. }), Some(context)) =
            (&parsed, &replay_context)
            && !plan.in_time_order
        {
            (parsed, digest) = parse_raw(&raw, input.form, context.clone(), true).await?;
        }
        let mut parsed = match parsed {
            Ok(parsed) => parsed,
            Err(error) => {
                return Ok(Err(BadInput {
                    source: input.source.as_str(),
                    source_ref: input.source_ref.clone(),
                    position: input.position,
                    raw,
                    reason: format!("{}: {error}", input.source_ref),
                }));
            }
        };
        // The session's start date partitions it; when only the end or a source time is known
        // (S3 transcripts without CloudTrail), that date stands in.
        let partition_time = parsed
            .context
            .started_at
            .or(parsed.ended_at)
            .or(input.observed_at)
            .unwrap_or_else(|| chrono::Utc::now().timestamp_micros());
        let dt = paths::partition_date(partition_time);
        let session_id = input.session_id.clone();
        let version = version_for(&input.source_ref);
        let stem = paths::session_stem(&session_id, input.source, &version);
        let raw_sha256 = digest.sha256.clone();
        let raw_path = paths::raw_object(&dt, &session_id, input.source, &version);
        // The session key wraps every data key of this version: shredding it shreds them all.
        let (session_key, key_entry) = SessionKey::create(
            &self.store,
            self.keys.as_ref(),
            key_context(&self.lake_id, &session_id, ROLE_SESSION),
            &session_id,
            &paths::session_key_object(&stem),
        )
        .await
        .with_context(|| format!("failed to make the session key of {session_id}"))?;
        written.push(key_entry.path.clone());
        let key_id = session_key.provider_key_id().to_string();
        let mut objects = vec![key_entry];
        let (key, wrapped) =
            session_key.generate_data_key(key_context(&self.lake_id, &session_id, ROLE_RAW))?;
        let sealing = (key, wrapped);
        // The commands file has a data key of its own, wrapped under the session key:
        // shredding the session makes its commands unreadable too.
        let (commands_key, commands_wrapped) = session_key.generate_data_key(key_context(
            &self.lake_id,
            &session_id,
            ROLE_COMMANDS,
        ))?;
        let key_metadata =
            serde_json::to_vec(&commands_wrapped).context("failed to encode key metadata")?;
        let commands_path = paths::commands_object(&dt, &stem);
        let replay = match (parsed.plan.take(), replay_context) {
            (Some(plan), Some(context)) => Some(Replay {
                form: input.form,
                context,
                plan,
                path: commands_path.clone(),
                key: commands_key.clone(),
                key_metadata: key_metadata.clone(),
            }),
            _ => None,
        };
        let source_ref = &input.source_ref;
        let sealed = seal_raw_replaying(
            &raw,
            source_ref,
            &self.store,
            &raw_path,
            sealing,
            Some(&digest),
            replay,
        )
        .await?;
        let (stored, replayed) = sealed;
        written.push(stored.path.clone());
        objects.push(stored.into_entry(ObjectKind::Raw, vec![session_id.clone()]));
        if let Some((stored, _)) = &replayed {
            written.push(stored.path.clone());
        }
        if let Some((_, rows)) = &replayed {
            anyhow::ensure!(
                *rows == parsed.command_count,
                "{source_ref} gave {rows} commands parsed again, {} the first time",
                parsed.command_count
            );
            let (bytes, commands) = (raw.len(), *rows);
            crate::events::SessionParsedTwice { session_id: &session_id, bytes, commands }.emit();
        }

        // The content names another session than the name does (the agent's orchestration
        // path in the header, the streamed `sessionId`): kept under its name, flagged.
        let mut understanding = parsed.understanding.clone();
        if parsed.claimed_session_id.as_deref().is_some_and(|claimed| claimed != session_id) {
            crate::events::SessionNameMismatch {
                session_id: &session_id,
                source_ref: &input.source_ref,
            }
            .emit();
            understanding.confidence = SessionConfidence::Low;
            understanding.reason =
                format!("{}; {}", sessionlake_schemas::NAME_MISMATCH_REASON, understanding.reason);
        }
        let record = SessionRecord {
            session_id: session_id.clone(),
            principal: parsed.context.principal.clone(),
            run_as: parsed.context.run_as.clone(),
            target: parsed.context.target.clone(),
            region: parsed.context.region.clone(),
            account: parsed.context.account.clone(),
            started_at: parsed.context.started_at,
            ended_at: parsed.ended_at,
            command_count: parsed.command_count as u32,
            source: input.source,
            source_ref: input.source_ref,
            raw_object: raw_path,
            raw_sha256,
            key_id,
            ingested_at: chrono::Utc::now().timestamp_micros(),
            status: parsed.status,
            parser_version: PARSER_VERSION,
            understanding: Some(understanding.clone()),
        };
        let command_count = parsed.command_count;
        let low_confidence = understanding.confidence == SessionConfidence::Low;
        let stored = match replayed {
            Some((stored, _)) => stored,
            None => {
                let commands = parsed.commands;
                let commands_bytes = tokio::task::spawn_blocking(move || {
                    let key = &commands_key;
                    sessionlake_tables::parquet_io::write_commands(&commands, key, key_metadata)
                })
                .await
                .context("parquet task failed")??;
                let stored = self.store.put(&commands_path, Bytes::from(commands_bytes)).await?;
                written.push(stored.path.clone());
                stored
            }
        };
        let sessions_bytes = tokio::task::spawn_blocking(move || {
            sessionlake_tables::parquet_io::write_sessions(&[record])
        })
        .await
        .context("parquet task failed")??;
        let mut commands_entry = stored.into_entry(ObjectKind::Commands, vec![session_id.clone()]);
        commands_entry.key = Some(Box::new(commands_wrapped));
        objects.push(commands_entry);
        let stored = self
            .store
            .put(&paths::sessions_object(&dt, &stem), Bytes::from(sessions_bytes))
            .await?;
        objects.push(stored.into_entry(ObjectKind::Sessions, vec![session_id]));
        Ok(Ok((objects, command_count, low_confidence)))
    }

    /// Writes the access events of the CloudTrail file `source_ref` (already deduplicated: only
    /// events the lake lacks) as one `access` file per day, each under a data key of its own;
    /// they become live with [`LakeWriter::commit`], beside what an earlier read of the same
    /// file wrote.
    pub async fn write_access(
        &self,
        source_ref: String,
        position: String,
        records: Vec<AccessRecord>,
    ) -> anyhow::Result<Written> {
        let file_id = source_object_id(&source_ref);
        let events = records.len();
        let mut by_day: BTreeMap<String, Vec<AccessRecord>> = BTreeMap::new();
        for record in records {
            by_day.entry(paths::partition_date(record.event_time)).or_default().push(record);
        }
        let mut objects = Vec::new();
        let mut written = Vec::new();
        let version = new_version();
        for (dt, day) in by_day {
            let path = paths::access_object(&dt, &file_id, &version);
            match self.write_access_file(&file_id, &path, day).await {
                Ok(file_and_key) => {
                    for object in file_and_key {
                        written.push(object.path.clone());
                        objects.push(object);
                    }
                }
                Err(error) => {
                    transaction::discard(&self.store, written).await;
                    return Err(
                        error.context(format!("failed to write the access events of {source_ref}"))
                    );
                }
            }
        }
        Ok(Written::Access { source_ref, position, objects, events })
    }

    async fn write_access_file(
        &self,
        file_id: &str,
        path: &str,
        records: Vec<AccessRecord>,
    ) -> anyhow::Result<[ObjectEntry; 2]> {
        // The file's data key is wrapped under a key of its own, which the provider wraps:
        // deleting that record with the file makes every copy of it unreadable.
        let context = key_context(&self.lake_id, file_id, ROLE_ACCESS);
        let provider = self.keys.as_ref();
        // Read now (the version's time): when this file's events were first read, which
        // rewrites keep.
        let first_read_at = paths::access_version(path)
            .and_then(transaction::version_time)
            .unwrap_or_else(|| chrono::Utc::now().timestamp_micros());
        let written = write_access_file(
            &self.store,
            provider,
            path,
            records,
            context,
            Vec::new(),
            Some(first_read_at),
        );
        written.await.with_context(|| format!("failed to write the access file {path}"))
    }

    /// Returns the origin tag of the version of `session_id` from `source` whose rows are in a
    /// compacted file: its raw object stays per session, the one without a live commands file
    /// of its own.
    fn compacted_origin(&self, session_id: &str, source: SessionSource) -> Option<&str> {
        let versions = |kind: ObjectKind| {
            self.live.values().filter(move |entry| entry.kind == kind).filter_map(|entry| {
                let (id, from, version) = paths::session_version(&entry.path)?;
                (id == session_id && from == source).then_some(version)
            })
        };
        let own: BTreeSet<&str> = versions(ObjectKind::Commands).collect();
        let version = versions(ObjectKind::Raw).find(|version| !own.contains(version))?;
        transaction::origin_tag(version)
            .or_else(|| self.legacy_origins.get(version).map(String::as_str))
    }

    /// Returns the live objects of earlier versions of `session_id` from `source` that a
    /// version from the source object tagged `origin` replaces (see [`is_version_of`]), and
    /// whether a live version of another source object stays beside it (a conflict). One pass
    /// over the live set.
    fn superseded(
        &self,
        session_id: &str,
        source: SessionSource,
        origin: Option<&str>,
    ) -> (Vec<ObjectEntry>, bool) {
        let mut older = Vec::new();
        let mut other_origin = false;
        let versions = self.live.values().filter(|entry| {
            matches!(
                entry.kind,
                ObjectKind::Raw
                    | ObjectKind::Commands
                    | ObjectKind::Sessions
                    | ObjectKind::SessionKey
            ) && entry.sessions == [session_id]
                && paths::is_session_object(&entry.path, session_id, source)
        });
        for entry in versions {
            if same_origin(origin, self.origin_of(&entry.path)) {
                older.push(entry.clone());
            } else {
                other_origin |= entry.kind == ObjectKind::Raw;
            }
        }
        (older, other_origin)
    }

    /// Returns the origin tag of the session version an object path names: its own, or, for a
    /// version written before versions carried one, the one learnt from its `sessions` file.
    fn origin_of<'a>(&'a self, path: &'a str) -> Option<&'a str> {
        let (_, _, version) = paths::session_version(path)?;
        transaction::origin_tag(version)
            .or_else(|| self.legacy_origins.get(version).map(String::as_str))
    }

    /// Learns the origins of the live untagged versions (written before versions carried their
    /// source object) of the sessions a tagged version in `written` delivers: the `sessions`
    /// row of each (in its own file, or in a compacted one) names the source object
    /// (`source_ref`) and the raw object (`raw_object`, whose name holds the version). Then a
    /// delivery from another object replaces none of them (the conflict is kept and flagged,
    /// as between tagged versions), and a new delivery of the same object still replaces its
    /// old version. Each file is read once per writer; only untagged versions make it read.
    async fn learn_legacy_origins(&mut self, written: &[Written]) -> anyhow::Result<()> {
        let mut files: BTreeMap<String, ObjectEntry> = BTreeMap::new();
        for input in written {
            let Written::Session { session_id, source, objects, .. } = input else { continue };
            if !objects.iter().any(|object| origin_of(&object.path).is_some()) {
                continue;
            }
            let unknown = self.live.values().any(|entry| {
                entry.kind == ObjectKind::Raw
                    && paths::session_version(&entry.path).is_some_and(|(id, from, version)| {
                        id == session_id
                            && from == *source
                            && transaction::origin_tag(version).is_none()
                            && !self.legacy_origins.contains_key(version)
                    })
            });
            if !unknown {
                continue;
            }
            for entry in self.live.values() {
                let holds = entry.kind == ObjectKind::Sessions
                    && entry.sessions.iter().any(|id| id == session_id)
                    && (paths::is_compacted(&entry.path)
                        || paths::is_session_object(&entry.path, session_id, *source));
                if holds {
                    files.insert(entry.path.clone(), entry.clone());
                }
            }
        }
        for entry in files.into_values() {
            let bytes = self.store.get_committed(&entry).await?;
            let object = self.store.describe(&entry.path);
            let rows = tokio::task::spawn_blocking(move || {
                sessionlake_tables::parquet_io::read_sessions(bytes, &object)
            })
            .await
            .context("sessions reader task failed")??;
            for row in rows {
                let Some((_, _, version)) = paths::session_version(&row.raw_object) else {
                    continue;
                };
                if transaction::origin_tag(version).is_none() {
                    let tag = transaction::tag_of(&row.source_ref);
                    self.legacy_origins.insert(version.to_string(), tag);
                }
            }
        }
        Ok(())
    }

    /// Writes one input's objects (a session version, or the quarantined original); the input
    /// becomes live only with [`LakeWriter::commit`]. Takes `&self`: several inputs are written
    /// at once. A parser refusal is not an error: the input is quarantined instead.
    pub async fn write_input(
        &self,
        input: Input,
        cloudtrail: Option<SessionContext>,
    ) -> anyhow::Result<Written> {
        let bad = match input {
            Input::Bad(bad) => bad,
            Input::Session(input) => {
                let context =
                    cloudtrail.unwrap_or_else(|| SessionContext::new(input.session_id.clone()));
                let context = SessionContext { session_id: input.session_id.clone(), ..context };
                let (session_id, source) = (input.session_id.clone(), input.source);
                let (source_ref, position) = (input.source_ref.clone(), input.position.clone());
                let raw_bytes = input.raw.len();
                match self.write_session(input, context).await? {
                    Ok((objects, commands, low_confidence)) => {
                        return Ok(Written::Session {
                            session_id,
                            source,
                            source_ref,
                            position: Some(position),
                            objects,
                            commands,
                            raw_bytes,
                            low_confidence,
                        });
                    }
                    Err(refused) => refused,
                }
            }
        };
        let (source_ref, position) = (bad.source_ref.clone(), bad.position.clone());
        let object = self.quarantine(bad).await?;
        Ok(Written::Quarantined { source_ref, position, object })
    }

    /// Works out what committing `written` adds and removes, given the live set.
    fn plan(&self, written: &[Written]) -> CommitPlan {
        let mut plan = CommitPlan::default();
        for input in written {
            match input {
                Written::Session { session_id, source, source_ref, position, objects, .. } => {
                    // A stored version re-indexed with new CloudTrail facts moves no cursor.
                    if let Some(position) = position {
                        plan.positions.push((source_ref.clone(), position.clone()));
                    }
                    let origin = objects.iter().find_map(|object| origin_of(&object.path));
                    let (mut older, other_origin) = self.superseded(session_id, *source, origin);
                    if other_origin {
                        crate::events::DeliveryConflict { session_id, source_ref }.emit();
                    }
                    // The same session twice in one batch: the later version replaces the
                    // earlier one here too.
                    let (earlier, kept): (Vec<ObjectEntry>, Vec<ObjectEntry>) =
                        std::mem::take(&mut plan.added)
                            .into_iter()
                            .partition(|entry| is_version_of(entry, session_id, *source, origin));
                    plan.added = kept;
                    // Versions the batch wrote and replaced itself are never committed: the
                    // transaction deletes what its commit does not name.
                    older.extend(
                        earlier.into_iter().filter(|entry| self.live.contains_key(&entry.path)),
                    );
                    plan.replaced += usize::from(!older.is_empty());
                    plan.removed.extend(older);
                    plan.added.extend(objects.iter().cloned());
                }
                Written::Access { source_ref, position, objects, .. } => {
                    // Only events the lake lacks (`AccessIndex::sort`): an earlier read's
                    // files stay live as they are, whatever a later read of the file says.
                    plan.positions.push((source_ref.clone(), position.clone()));
                    plan.added.extend(objects.iter().cloned());
                }
                Written::Quarantined { source_ref, position, object } => {
                    plan.positions.push((source_ref.clone(), position.clone()));
                    plan.added.push(object.clone());
                }
            }
        }
        plan
    }

    /// Commits what `written` names in one manifest entry, then sets the cursors of those
    /// inputs in `cursors` (the caller saves them: after the commit, never before); returns what
    /// the batch did. The versions it adds remove the live versions they replace (the same
    /// session from the same source).
    ///
    /// The commit is made only on the head the plan was computed from: when another writer
    /// committed in between (a second ingest pointed at the lake by mistake, a retention
    /// commit), the chain is read again and the plan recomputed, so that a session is never
    /// live twice.
    pub async fn commit(
        &mut self,
        written: Vec<Written>,
        cursors: &mut Cursors,
    ) -> anyhow::Result<BatchSummary> {
        let mut summary = BatchSummary::default();
        for input in &written {
            match input {
                Written::Session { commands, raw_bytes, low_confidence, .. } => {
                    summary.sessions += 1;
                    summary.commands += commands;
                    summary.raw_bytes += raw_bytes;
                    summary.low_confidence += usize::from(*low_confidence);
                }
                Written::Access { events, .. } => summary.access_events += events,
                Written::Quarantined { .. } => summary.quarantined += 1,
            }
        }
        // Everything the batch wrote is staged: what the commit does not name (versions the
        // batch replaced itself, rewrites of a lost attempt) goes after it, and all of it when
        // the commit fails for good (the inputs are read again from their cursors).
        let mut transaction = Transaction::begin(&self.store, &self.committer, self.head);
        for input in &written {
            match input {
                Written::Session { objects, .. } | Written::Access { objects, .. } => {
                    transaction.stage_entries(objects);
                }
                Written::Quarantined { object, .. } => transaction.stage(object.path.clone()),
            }
        }
        let mut attempt = 0;
        let (link, plan) = loop {
            attempt += 1;
            if let Err(error) = self.learn_legacy_origins(&written).await {
                transaction.discard().await;
                return Err(error);
            }
            let mut plan = self.plan(&written);
            if let Err(error) = self.rewrite_compacted(&written, &mut plan, &mut transaction).await
            {
                transaction.discard().await;
                return Err(error);
            }
            // The keys of the files it removes (compacted files rewritten) go with them.
            let keys = file_key_records(&plan.removed, &self.live);
            plan.removed.extend(keys);
            if plan.added.is_empty() && plan.removed.is_empty() {
                // Inputs with nothing to commit (CloudTrail files without access events):
                // their cursors move, there is nothing a manifest would name.
                transaction.discard().await;
                summary.cursors_moved = !plan.positions.is_empty();
                for (source_ref, position) in plan.positions {
                    cursors.positions.insert(source_ref, position);
                }
                return Ok(summary);
            }
            if !self.live.contains_key(&self.identity.path) {
                plan.added.push(self.identity.clone());
            }
            let committed = transaction
                .commit(CommitAction::Ingest, None, plan.added.clone(), plan.removed.clone(), false)
                .await;
            match committed {
                Ok(link) => break (link, plan),
                Err(error) if error.is_conflict() && attempt < MAX_CONFLICT_ATTEMPTS => {
                    // A commit of this writer that landed without its response: the commit is
                    // this one.
                    if let Some(ours) = self.refresh(&error, &plan.added).await? {
                        break (ours, plan);
                    }
                    transaction.replan_on(self.head);
                }
                Err(error) => {
                    transaction.discard().await;
                    return Err(anyhow::Error::new(error))
                        .context("failed to commit to the manifest");
                }
            }
        };
        self.apply(&link);
        self.checkpoint_if_due(&link).await;
        // The compacted files rewritten without a replaced version hold other sessions' rows
        // too: they go now rather than stay stored beside their rewrite.
        // So do the key records of every file it removed (compacted files rewritten).
        let rewritten: Vec<ObjectEntry> = plan
            .removed
            .iter()
            .filter(|entry| {
                paths::is_compacted(&entry.path) || paths::is_file_key_record(&entry.path)
            })
            .cloned()
            .collect();
        // The Delta logs follow once a poll (`LakeWriter::sync_delta_if_behind`): each sync
        // loads every table's log, which a backlog of commits over a big lake paid per commit.
        // Before a file a log may list goes, they follow at once.
        // And at least every `delta_sync_every` in a long poll.
        let since = self.delta_behind.map_or_else(std::time::Instant::now, |(_, since)| since);
        self.delta_behind = Some((link.manifest.body.sequence, since));
        if !rewritten.is_empty() || since.elapsed() >= self.delta_sync_every {
            self.sync_delta_if_behind().await;
        }
        let rewritten = rewritten.into_iter().map(|entry| entry.path);
        if let Err(error) = transaction::delete_removed(&self.store, rewritten, &|| {}).await {
            tracing::warn!(%error, "replaced compacted file not deleted");
        }
        summary.replaced = plan.replaced;
        summary.sequence = Some(link.manifest.body.sequence);
        summary.cursors_moved = true;
        for (source_ref, position) in plan.positions {
            cursors.positions.insert(source_ref, position);
        }
        cursors.version = 1;
        Ok(summary)
    }

    /// Rewrites every live compacted file that holds an earlier version of a session in
    /// `written` (the same session from the same source) without that session, and adds the
    /// swap to `plan`: the version it replaces leaves the compacted file in the same commit, so
    /// a session is never live twice. Returns the paths written (not committed yet).
    async fn rewrite_compacted(
        &self,
        written: &[Written],
        plan: &mut CommitPlan,
        transaction: &mut Transaction,
    ) -> anyhow::Result<()> {
        let compacted: Vec<&ObjectEntry> = self
            .live
            .values()
            .filter(|entry| {
                MergedTable::of(entry.kind).is_some() && paths::is_compacted(&entry.path)
            })
            .collect();
        let mut without: BTreeMap<&str, (&ObjectEntry, BTreeSet<String>)> = BTreeMap::new();
        for input in written {
            let Written::Session { session_id, source, objects, .. } = input else { continue };
            let holding: Vec<&ObjectEntry> = compacted
                .iter()
                .copied()
                .filter(|entry| entry.sessions.iter().any(|id| id == session_id))
                .collect();
            // Only the version of the same source, and of the same source object, is replaced
            // (another delivery stays).
            let origin = objects.iter().find_map(|object| origin_of(&object.path));
            if holding.is_empty()
                || compacted_version_source(self.live.values(), session_id) != Some(*source)
                || !same_origin(origin, self.compacted_origin(session_id, *source))
            {
                continue;
            }
            for entry in holding {
                let slot = without.entry(&entry.path).or_insert_with(|| (entry, BTreeSet::new()));
                slot.1.insert(session_id.clone());
            }
        }
        let files = LakeFiles {
            store: &self.store,
            keys: &self.unwrapper,
            provider: self.keys.as_ref(),
            lake_id: &self.lake_id,
            writer: Writer::Leased,
        };
        for (path, (entry, sessions)) in without {
            let (Some(table), Some(dt)) = (MergedTable::of(entry.kind), paths::dt_of(path)) else {
                continue;
            };
            let rewritten = files
                .write_compacted(table, dt, std::slice::from_ref(entry), &sessions)
                .await
                .with_context(|| format!("failed to take replaced sessions out of {path}"))?;
            plan.removed.push(entry.clone());
            for rewritten in rewritten.into_iter().flat_map(Compacted::entries) {
                transaction.stage(rewritten.path.clone());
                plan.added.push(rewritten);
            }
        }
        Ok(())
    }

    /// Makes an empty commit (idle, or the last one of a clean stop), on the known head; after
    /// a conflict the chain is read again and the commit tried once more.
    pub async fn commit_empty(
        &mut self,
        reason: Option<String>,
        stopping: bool,
    ) -> anyhow::Result<ChainLink> {
        let mut transaction = Transaction::begin(&self.store, &self.committer, self.head);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let committed = transaction
                .commit(CommitAction::Idle, reason.clone(), vec![], vec![], stopping)
                .await;
            match committed {
                Ok(link) => {
                    self.apply(&link);
                    self.checkpoint_if_due(&link).await;
                    return Ok(link);
                }
                Err(error) if error.is_conflict() && attempt < MAX_CONFLICT_ATTEMPTS => {
                    self.refresh(&error, &[]).await?;
                    transaction.replan_on(self.head);
                }
                Err(error) => return Err(error.into()),
            }
        }
    }

    /// Writes a signed checkpoint of the live set after `link`, this writer's newest commit,
    /// every [`checkpoint::CHECKPOINT_INTERVAL`] commits. A failure is logged: readers then
    /// start from an older checkpoint, and nothing is lost.
    async fn checkpoint_if_due(&self, link: &ChainLink) {
        if !checkpoint::due(link.manifest.body.sequence) {
            return;
        }
        if !self.chain_intact {
            tracing::warn!(
                sequence = link.manifest.body.sequence,
                "checkpoint not written: the chain is not intact (sessionlake verify names why)"
            );
            return;
        }
        match checkpoint::write(&self.store, self.committer.signer(), link, &self.live).await {
            Ok(path) => {
                tracing::info!(checkpoint = %path, objects = self.live.len(), "checkpoint written")
            }
            Err(error) => tracing::warn!(%error, "checkpoint not written"),
        }
    }

    /// Brings the tables' Delta logs to the live set after this writer's newest commit, if one
    /// was made since they last were (once a poll: see `LakeWriter::commit`). A failure is
    /// logged: the chain is the truth, `verify` names a log that lags, and the next sync brings
    /// it up to date (it compares with the log as it is).
    pub async fn sync_delta_if_behind(&mut self) {
        let Some(behind @ (sequence, _)) = self.delta_behind.take() else { return };
        let after = self.head.map_or(0, |head| head + 1);
        match manifest::list_manifests_from(&self.store, after).await {
            Ok(newer) if newer.is_empty() => {}
            // Another writer committed since (a shred or a retention: they take no lease). Its
            // own sync followed its commit, whose live set holds this writer's commits; a sync
            // from this writer's older live set would undo it.
            Ok(_) => return,
            Err(error) => {
                tracing::warn!(%error, sequence, "delta log not synced");
                self.delta_behind = Some(behind);
                return;
            }
        }
        match sessionlake_delta::sync(&self.store, &self.live, sequence).await {
            Ok(synced) => {
                for table in synced.iter().filter(|table| table.added + table.removed > 0) {
                    tracing::debug!(
                        table = table.table.dir(),
                        added = table.added,
                        removed = table.removed,
                        sequence,
                        "delta log synced"
                    );
                }
            }
            Err(error) => {
                tracing::warn!(%error, sequence, "delta log not synced");
                // Tried again at the next sync.
                self.delta_behind = Some(behind);
                return;
            }
        }
        // Another writer may have committed and synced while this sync ran, which then wrote
        // this writer's older live set over its own: the logs are brought to the lake as it is.
        let again = sessionlake_delta::sync_again_if_raced(
            &self.store,
            &self.pinned,
            sequence,
            "sessionlake-ingest",
        )
        .await;
        if let Err(error) = again {
            tracing::warn!(%error, "delta log not synced again");
        }
    }

    /// Takes a commit of this writer into the live set and the head.
    fn apply(&mut self, link: &ChainLink) {
        for gone in &link.manifest.body.removed {
            self.live.remove(&gone.path);
        }
        for new in &link.manifest.body.added {
            self.live.insert(new.path.clone(), new.clone());
        }
        self.head = Some(link.manifest.body.sequence);
        self.trusted_head = Some(link.head());
    }

    /// Reads the chain again after a commit lost (`conflict`): the live set and the head
    /// become the lake's. Returns the newer commit of this process that added every path of
    /// `planned`, if there is one (never for an empty `planned`).
    async fn refresh(
        &mut self,
        conflict: &LakeError,
        planned: &[ObjectEntry],
    ) -> anyhow::Result<Option<ChainLink>> {
        let known = self.head;
        let chain = self.reread().await?;
        let newer: Vec<&ChainLink> = chain
            .iter()
            .filter(|link| known.is_none_or(|head| link.manifest.body.sequence > head))
            .collect();
        let me = manifest::writer_id();
        let ours = newer
            .iter()
            .find(|link| {
                let body = &link.manifest.body;
                let added: BTreeSet<&str> =
                    body.added.iter().map(|entry| entry.path.as_str()).collect();
                !planned.is_empty()
                    && body.writer_id == me
                    && planned.iter().all(|entry| added.contains(entry.path.as_str()))
            })
            .map(|link| (*link).clone());
        let writers: BTreeSet<&str> =
            newer.iter().map(|link| link.manifest.body.writer_id.as_str()).collect();
        crate::events::LakeChangedUnderWriter {
            lake: &self.store.location().to_string(),
            conflict,
            commits: newer.len(),
            writers: &writers.into_iter().collect::<Vec<_>>().join(","),
        }
        .emit();
        Ok(ours)
    }

    /// Reads the chain again (after a commit that failed, whose outcome may be unknown): the
    /// live set and the head become the lake's. Returns the trusted chain.
    pub async fn reread(&mut self) -> anyhow::Result<Vec<ChainLink>> {
        let snapshot = Snapshot::open(&self.store, &self.pinned).await?;
        let head = snapshot.file_head();
        let known = self.head;
        // Manifests are never deleted: a head behind the one this writer knows is a lake cut
        // back (rolled back). Committing on it would re-link the chain over the hole.
        if let Some(known_head) = known
            && head.is_none_or(|found| found < known_head)
        {
            let found = head.map_or("none".to_string(), |found| format!("manifest {found}"));
            anyhow::bail!(
                "{} was cut back: this writer committed manifest {known_head}, the lake's newest \
                 is now {found} (manifests were deleted); nothing more is committed on it: run \
                 `sessionlake verify` and restore the manifests",
                self.store.location()
            );
        }
        snapshot.ensure_head_trusted("sessionlake-ingest")?;
        self.chain_intact = snapshot.ensure_trusted("sessionlake-ingest").is_ok();
        let (chain, live) = snapshot.into_parts();
        self.live = live;
        self.head = head;
        Ok(chain)
    }
}

/// What a commit of a batch adds and removes, computed from the live set.
#[derive(Debug, Default)]
struct CommitPlan {
    added: Vec<ObjectEntry>,
    removed: Vec<ObjectEntry>,
    /// Cursors to set once committed.
    positions: Vec<(String, String)>,
    /// Sessions whose live version the batch replaces.
    replaced: usize,
}

/// Commits tried before a batch fails: each lost race re-reads the chain first.
const MAX_CONFLICT_ATTEMPTS: usize = 5;

/// Returns the id that names what an input at `source_ref` left in the lake under a name of
/// its own: the `access` files of a CloudTrail file, a quarantined original.
pub fn source_object_id(source_ref: &str) -> String {
    sha256_hex(source_ref.as_bytes())[..32].to_string()
}

/// Whether `entry` is an object of one version of `session_id` from `source` (and of no other
/// session).
/// Returns whether `entry` is an object of a version of `session_id` from `source` that a
/// version from the source object tagged `origin` replaces: of the same origin, or of one not
/// known (a local folder's, or a version made before versions carried their origin). Another
/// object claiming the same session id (`ssm/zz-other/kate-….log` beside `ssm/kate-….log`)
/// replaces nothing: both versions stay, and readers flag the conflict.
fn is_version_of(
    entry: &ObjectEntry,
    session_id: &str,
    source: SessionSource,
    origin: Option<&str>,
) -> bool {
    entry.sessions == [session_id]
        && paths::is_session_object(&entry.path, session_id, source)
        && same_origin(origin, origin_of(&entry.path))
}

/// Returns the origin tag of the session version an object path names, if it has one.
fn origin_of(path: &str) -> Option<&str> {
    paths::session_version(path).and_then(|(_, _, version)| transaction::origin_tag(version))
}

/// Whether versions tagged `new` and `old` come from the same source object, as far as known.
fn same_origin(new: Option<&str>, old: Option<&str>) -> bool {
    match (new, old) {
        (Some(new), Some(old)) => new == old,
        _ => true,
    }
}

/// Returns the version name of a session delivered by `source_ref`: tagged with its source
/// object for S3 and CloudWatch, where whoever can write to the bucket or log group may put
/// another object claiming the same session id; not for a local folder (the operator's own).
fn version_for(source_ref: &str) -> String {
    if source_ref.starts_with("s3://") || source_ref.starts_with("cwl://") {
        transaction::new_version_of(source_ref)
    } else {
        new_version()
    }
}

#[cfg(test)]
mod tests {
    use sessionlake_storage::signing::KeyringSigner;

    use super::*;

    /// An in-memory lake and a keyring (in the returned folder).
    fn lake_and_keyring() -> (tempfile::TempDir, Arc<LocalKeyring>, LakeStore) {
        let dir = tempfile::tempdir().expect("tempdir");
        let (keyring, _) =
            LocalKeyring::open_or_create(&dir.path().join("keyring.json")).expect("keyring");
        (dir, Arc::new(keyring), LakeStore::in_memory())
    }

    async fn writer(store: &LakeStore, keyring: &Arc<LocalKeyring>) -> LakeWriter {
        let chain = manifest::read_chain(store).await.expect("chain");
        let (lake_id, identity) = manifest::lake_identity(store).await.expect("identity");
        LakeWriter {
            store: store.clone(),
            keys: Arc::clone(keyring) as Arc<dyn KeyProvider>,
            keyring: Some(Arc::clone(keyring)),
            unwrapper: Keys::new(Some(Arc::clone(keyring)), None).with_store(store.clone()),
            committer: manifest::Committer::new(Arc::new(KeyringSigner(Arc::clone(keyring)))),
            live: manifest::live_objects(&chain),
            lake_id,
            identity,
            head: chain.last().and_then(|link| paths::manifest_sequence(&link.path)),
            trusted_head: chain.last().map(ChainLink::head),
            pinned: vec![PinnedSigner::of(&KeyringSigner(Arc::clone(keyring)), "the keyring")],
            chain_intact: true,
            legacy_origins: HashMap::new(),
            hold_rows_up_to: HOLD_ROWS_UP_TO,
            delta_behind: None,
            delta_sync_every: DELTA_SYNC_EVERY,
        }
    }

    fn version(session_id: &str, version: &str) -> Written {
        let object = ObjectEntry::new(
            format!("raw/dt=2026-11-29/{session_id}.s3.{version}.zst.sle"),
            1,
            "00".repeat(32),
            ObjectKind::Raw,
            vec![session_id.to_string()],
        );
        Written::Session {
            session_id: session_id.to_string(),
            source: SessionSource::S3,
            source_ref: format!("s3://bucket/{session_id}.log"),
            position: Some(version.to_string()),
            objects: vec![object],
            commands: 1,
            raw_bytes: 1,
            low_confidence: false,
        }
    }

    /// A version of `session_id` from `source_ref` named `version`: its raw object, and a real
    /// `sessions` file (stored in `store`) that names `source_ref`.
    async fn version_from(
        store: &LakeStore,
        session_id: &str,
        name: &str,
        source_ref: &str,
    ) -> Written {
        let Written::Session { objects, .. } = version(session_id, name) else {
            unreachable!("a session version")
        };
        let record = SessionRecord {
            session_id: session_id.into(),
            principal: None,
            run_as: None,
            target: None,
            region: None,
            account: None,
            started_at: None,
            ended_at: None,
            command_count: 1,
            source: SessionSource::S3,
            source_ref: source_ref.into(),
            raw_object: objects[0].path.clone(),
            raw_sha256: "00".repeat(32),
            key_id: "k".into(),
            ingested_at: 1,
            status: sessionlake_schemas::SessionStatus::Complete,
            parser_version: 1,
            understanding: None,
        };
        let bytes = sessionlake_tables::parquet_io::write_sessions(&[record]).expect("write");
        let path = format!("sessions/dt=2026-11-29/{session_id}.s3.{name}.parquet");
        let stored = store.put(&path, Bytes::from(bytes)).await.expect("put");
        let sessions = stored.into_entry(ObjectKind::Sessions, vec![session_id.to_string()]);
        Written::Session {
            session_id: session_id.to_string(),
            source: SessionSource::S3,
            source_ref: source_ref.to_string(),
            position: Some(name.to_string()),
            objects: vec![objects[0].clone(), sessions],
            commands: 1,
            raw_bytes: 1,
            low_confidence: false,
        }
    }

    /// A local file is held after one read, checked against the SHA-256 its source took when
    /// it read the file: one rewritten in between is refused (and read again at the next
    /// poll), never ingested as bytes that may never have been whole on disk.
    #[tokio::test]
    async fn test_a_local_file_changed_since_its_source_read_it_is_refused() {
        let (dir, keyring, store) = lake_and_keyring();
        let writer = writer(&store, &keyring).await;
        let path = dir.path().join("alice-0123456789abcdef0.log");
        let transcript =
            b"Script started on 2026-03-14 09:30:00+00:00\nsh-5.2$ ls\r\r\nnotes\r\r\n";
        std::fs::write(&path, transcript).expect("write");
        let input = |position: String| {
            let location =
                crate::raw::ObjectLocation::File { path: path.clone(), sha256: position.clone() };
            Input::Session(SessionInput {
                session_id: "alice-0123456789abcdef0".into(),
                source: SessionSource::Local,
                source_ref: path.display().to_string(),
                position,
                form: InputForm::S3Transcript,
                raw: Raw::Object(crate::raw::RawObject { location, len: transcript.len() as u64 }),
                observed_at: None,
            })
        };
        let listed = sha256_hex(b"Script started on 2026-03-14 09:30:00+00:00\n");
        let before = store.list("").await.expect("list");
        let error = writer.write_input(input(listed), None).await.expect_err("changed");
        assert!(format!("{error:#}").contains("changed while it was read"), "{error:#}");
        assert_eq!(store.list("").await.expect("list"), before, "it left objects behind");
        let written = writer.write_input(input(sha256_hex(transcript)), None).await;
        assert!(matches!(written, Ok(Written::Session { commands: 1, .. })), "{written:?}");
    }

    /// A version written before versions carried their source object (untagged) is replaced by
    /// a later delivery of the object its `sessions` file names, and by no other object's.
    /// See: issue 18, requirement 1
    #[tokio::test]
    async fn test_an_untagged_version_is_replaced_only_by_its_own_object() {
        let (_dir, keyring, store) = lake_and_keyring();
        let mut writer = writer(&store, &keyring).await;
        let mut cursors = Cursors::default();
        let origin = "s3://bucket/ssm/s-1.log";
        let legacy = version_from(&store, "s-1", "661ed0b69f40ff8807859", origin).await;
        writer.commit(vec![legacy], &mut cursors).await.expect("legacy");
        let other = transaction::new_version_of("s3://bucket/zz-other/s-1.log");
        let other = version_from(&store, "s-1", &other, "s3://bucket/zz-other/s-1.log").await;
        let done = writer.commit(vec![other], &mut cursors).await.expect("other");
        assert_eq!(done.replaced, 0, "another object replaced the untagged version");
        let again = transaction::new_version_of(origin);
        let again = version_from(&store, "s-1", &again, origin).await;
        let done = writer.commit(vec![again], &mut cursors).await.expect("again");
        assert_eq!(done.replaced, 1, "its own object's new delivery replaces it");
        let live: Vec<&str> = writer
            .live
            .values()
            .filter(|entry| entry.kind == ObjectKind::Raw)
            .map(|entry| entry.path.as_str())
            .collect();
        assert_eq!(live.len(), 2, "the other object's and the new delivery: {live:?}");
        assert!(live.iter().all(|path| !path.contains("661ed0b69f40ff8807859")), "{live:?}");
    }

    /// A long poll's commits are followed by the Delta logs at least every `delta_sync_every`,
    /// not only at its end.
    #[tokio::test]
    async fn test_the_delta_logs_follow_a_long_poll_while_it_runs() {
        let (_dir, keyring, store) = lake_and_keyring();
        let mut writer = writer(&store, &keyring).await;
        let mut cursors = Cursors::default();
        writer.delta_sync_every = std::time::Duration::from_secs(3600);
        let first = version_from(&store, "s-1", "a1", "s3://bucket/s-1.log").await;
        writer.commit(vec![first], &mut cursors).await.expect("commit");
        assert!(writer.delta_behind.is_some(), "within the hour: the poll's end syncs");
        let behind = sessionlake_delta::differences(&store, &writer.live).await.expect("logs");
        assert!(behind.iter().any(|(_, difference)| !difference.is_empty()), "{behind:?}");
        writer.delta_sync_every = std::time::Duration::ZERO;
        let second = version_from(&store, "s-2", "a2", "s3://bucket/s-2.log").await;
        writer.commit(vec![second], &mut cursors).await.expect("commit");
        assert!(writer.delta_behind.is_none(), "overdue: the commit synced");
        let synced = sessionlake_delta::differences(&store, &writer.live).await.expect("logs");
        assert!(synced.iter().all(|(_, difference)| difference.is_empty()), "{synced:?}");
    }

    /// Two writers that opened the lake at the same head both commit a version of the same
    /// session: the second commit loses the race for the manifest number, re-reads the chain
    /// and replaces the first one's version, so readers never see the session twice.
    #[tokio::test]
    async fn test_a_commit_racing_another_writer_replans_and_leaves_one_live_version() {
        let (_dir, keyring, store) = lake_and_keyring();
        let mut first = writer(&store, &keyring).await;
        let mut second = writer(&store, &keyring).await;
        let mut cursors = Cursors::default();

        let one = first.commit(vec![version("s-1", "a")], &mut cursors).await.expect("first");
        assert_eq!((one.sequence, one.replaced), (Some(0), 0));
        let two = second.commit(vec![version("s-1", "b")], &mut cursors).await.expect("second");
        assert_eq!((two.sequence, two.replaced), (Some(1), 1), "{two:?}");

        let chain = manifest::read_chain(&store).await.expect("chain");
        let live: Vec<String> = manifest::live_objects(&chain)
            .into_values()
            .filter(|entry| entry.kind == ObjectKind::Raw)
            .map(|entry| entry.path)
            .collect();
        assert_eq!(live, ["raw/dt=2026-11-29/s-1.s3.b.zst.sle"]);
    }

    // See: issue 16, "Rollback".
    #[tokio::test]
    async fn test_a_writer_refuses_to_commit_on_a_lake_cut_back_under_it() {
        let (_dir, keyring, store) = lake_and_keyring();
        let mut writer = writer(&store, &keyring).await;
        let mut cursors = Cursors::default();
        for (index, session) in ["s-1", "s-2"].into_iter().enumerate() {
            let done = writer.commit(vec![version(session, "a")], &mut cursors).await;
            assert_eq!(done.expect("commit").sequence, Some(index as u64));
        }
        // The attacker deletes the newest manifest: the writer's next commit must not re-link
        // the chain over it.
        store.delete(&paths::manifest_object(1)).await.expect("cut back");
        let error = writer
            .commit(vec![version("s-3", "a")], &mut cursors)
            .await
            .expect_err("a cut-back lake");
        let message = format!("{error:#}");
        assert!(message.contains("was cut back") && message.contains("manifest 1"), "{message}");
        let chain = manifest::read_chain(&store).await.expect("chain");
        assert_eq!(chain.len(), 1, "nothing committed on the cut-back chain");
    }

    /// A checkpoint stands in for the chain before it: a writer that read a chain with a hole
    /// or an untrusted manifest never signs one (its live set lacks what it could not trust).
    #[tokio::test]
    async fn test_checkpoints_are_signed_only_over_an_intact_chain() {
        let (_dir, keyring, store) = lake_and_keyring();
        let mut writer = writer(&store, &keyring).await;
        let mut cursors = Cursors::default();
        writer.commit(vec![version("s-1", "a")], &mut cursors).await.expect("commit");
        let mut link = manifest::read_chain(&store).await.expect("chain").remove(0);
        std::sync::Arc::make_mut(&mut link.manifest).body.sequence =
            checkpoint::CHECKPOINT_INTERVAL;
        let path = paths::checkpoint_object(checkpoint::CHECKPOINT_INTERVAL);
        writer.chain_intact = false;
        writer.checkpoint_if_due(&link).await;
        assert!(!store.exists(&path).await.expect("exists"), "checkpoint over a damaged chain");
        writer.chain_intact = true;
        writer.checkpoint_if_due(&link).await;
        assert!(store.exists(&path).await.expect("exists"), "checkpoint over an intact chain");
    }
}
