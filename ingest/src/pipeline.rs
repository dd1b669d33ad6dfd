//! One batch through the lake: parse, seal, write, commit, then advance cursors.
//!
//! Order (DESIGN.md): every object is durable before the manifest names it, and the manifest is
//! durable before the cursors move. A crash anywhere replays from the last cursors; object names
//! are deterministic, so a replay overwrites instead of duplicating.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use anyhow::Context as _;
use bytes::Bytes;
use sessionlake_indexer::{PARSER_VERSION, ParsedSession, SessionContext, parse_session};
use sessionlake_lake::cursors::Cursors;
use sessionlake_lake::envelope::seal_bytes;
use sessionlake_lake::keys::{KeyProvider, LocalKeyring};
use sessionlake_lake::manifest;
use sessionlake_lake::store::{LakeStore, StoredObject, sha256_hex};
use sessionlake_schemas::envelope::{CONTEXT_ROLE, CONTEXT_SUBJECT};
use sessionlake_schemas::manifest::{CommitAction, ObjectEntry, ObjectKind};
use sessionlake_schemas::{CommandRecord, SessionRecord, paths};

use crate::sources::{BadInput, SessionInput};

/// What a batch did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct BatchSummary {
    /// Sessions written.
    pub sessions: usize,
    /// Commands written.
    pub commands: usize,
    /// Inputs quarantined.
    pub quarantined: usize,
    /// Manifest sequence of the commit, if one was made.
    pub sequence: Option<u64>,
}

/// The lake side of ingest: where to write and with which keys.
pub struct LakeWriter {
    /// The lake.
    pub store: LakeStore,
    /// Data keys for new objects.
    pub keys: Arc<dyn KeyProvider>,
    /// The manifest signer's keyring.
    pub keyring: Arc<LocalKeyring>,
}

fn key_context(subject: &str, role: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (CONTEXT_SUBJECT.to_string(), subject.to_string()),
        (CONTEXT_ROLE.to_string(), role.to_string()),
    ])
}

fn entry(stored: StoredObject, kind: ObjectKind, sessions: Vec<String>) -> ObjectEntry {
    ObjectEntry {
        path: stored.path,
        size: stored.size,
        sha256: stored.sha256,
        kind,
        sessions,
        key: None,
        note: None,
    }
}

/// A session after parsing and sealing, before the tables are written.
struct Sealed {
    record: SessionRecord,
    commands: Vec<CommandRecord>,
    raw_entry: ObjectEntry,
    dt: String,
}

impl LakeWriter {
    async fn seal_and_put(
        &self,
        subject: &str,
        role: &str,
        path: &str,
        raw: Vec<u8>,
    ) -> anyhow::Result<(StoredObject, String)> {
        let (key, wrapped) = self
            .keys
            .generate_data_key(key_context(subject, role))
            .await
            .with_context(|| format!("failed to get a data key for {subject}"))?;
        let key_id = wrapped.key_id.clone();
        let sealed = tokio::task::spawn_blocking(move || seal_bytes(&raw, &key, &wrapped))
            .await
            .context("sealing task failed")??;
        let stored = self.store.put(path, Bytes::from(sealed)).await?;
        Ok((stored, key_id))
    }

    async fn quarantine(&self, bad: BadInput) -> anyhow::Result<ObjectEntry> {
        let object_id = sha256_hex(bad.source_ref.as_bytes())[..32].to_string();
        let path = paths::quarantine_object(bad.source, &object_id);
        let (stored, _) = self
            .seal_and_put(&object_id, "quarantine", &path, bad.raw)
            .await?;
        tracing::warn!(source = %bad.source_ref, object = %path, reason = %bad.reason, "input quarantined");
        let mut quarantined = entry(stored, ObjectKind::Quarantine, Vec::new());
        quarantined.note = Some(bad.reason);
        Ok(quarantined)
    }

    async fn seal_session(
        &self,
        input: SessionInput,
        context: SessionContext,
    ) -> anyhow::Result<Result<Sealed, BadInput>> {
        let form = input.form;
        let raw = Arc::new(input.raw);
        let parse_raw = Arc::clone(&raw);
        let parsed: Result<ParsedSession, _> =
            tokio::task::spawn_blocking(move || parse_session(form, &parse_raw, &context))
                .await
                .context("parser task failed")?;
        let raw = Arc::try_unwrap(raw).unwrap_or_else(|shared| shared.as_ref().clone());
        let parsed = match parsed {
            Ok(parsed) => parsed,
            Err(error) => {
                return Ok(Err(BadInput {
                    source: input.source,
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
        let raw_sha256 = sha256_hex(&raw);
        let raw_path = paths::raw_object(&dt, &input.session_id, input.source);
        let (stored, key_id) = self
            .seal_and_put(&input.session_id, "raw", &raw_path, raw)
            .await?;
        let record = SessionRecord {
            session_id: input.session_id.clone(),
            principal: parsed.context.principal.clone(),
            run_as: parsed.context.run_as.clone(),
            target: parsed.context.target.clone(),
            region: parsed.context.region.clone(),
            account: parsed.context.account.clone(),
            started_at: parsed.context.started_at,
            ended_at: parsed.ended_at,
            command_count: parsed.commands.len() as u32,
            source: input.source,
            source_ref: input.source_ref,
            raw_object: raw_path,
            raw_sha256,
            key_id,
            ingested_at: chrono::Utc::now().timestamp_micros(),
            status: parsed.status,
            parser_version: PARSER_VERSION,
        };
        Ok(Ok(Sealed {
            record,
            commands: parsed.commands,
            raw_entry: entry(stored, ObjectKind::Raw, vec![input.session_id]),
            dt,
        }))
    }

    /// Writes one batch and commits it; returns what it did. Cursors for the batch's inputs are
    /// set in `cursors` and saved only after the commit.
    pub async fn write_batch(
        &self,
        inputs: Vec<SessionInput>,
        bad: Vec<BadInput>,
        cloudtrail: &BTreeMap<String, SessionContext>,
        cursors: &mut Cursors,
    ) -> anyhow::Result<BatchSummary> {
        let mut summary = BatchSummary::default();
        let mut added = Vec::new();
        let mut positions = Vec::new();
        let mut bad = bad;
        let mut sealed = Vec::new();
        for input in inputs {
            let context = cloudtrail
                .get(&input.session_id)
                .cloned()
                .unwrap_or_else(|| SessionContext::new(input.session_id.clone()));
            let context = SessionContext {
                session_id: input.session_id.clone(),
                ..context
            };
            positions.push((input.source_ref.clone(), input.position.clone()));
            match self.seal_session(input, context).await? {
                Ok(done) => sealed.push(done),
                Err(refused) => bad.push(refused),
            }
        }
        for refused in bad {
            positions.push((refused.source_ref.clone(), refused.position.clone()));
            added.push(self.quarantine(refused).await?);
            summary.quarantined += 1;
        }

        let mut by_dt: BTreeMap<String, Vec<Sealed>> = BTreeMap::new();
        for session in sealed {
            by_dt.entry(session.dt.clone()).or_default().push(session);
        }
        for (dt, sessions) in by_dt {
            // Deterministic batch name: the same sessions replayed overwrite the same files.
            let mut fingerprint = String::new();
            let ids: BTreeSet<&str> = sessions
                .iter()
                .map(|s| s.record.session_id.as_str())
                .collect();
            for session in &sessions {
                fingerprint.push_str(&session.record.session_id);
                fingerprint.push_str(&session.record.raw_sha256);
            }
            let batch_id = sha256_hex(fingerprint.as_bytes())[..24].to_string();
            let session_ids: Vec<String> = ids.iter().map(|s| s.to_string()).collect();
            let commands: Vec<CommandRecord> = sessions
                .iter()
                .flat_map(|s| s.commands.iter().cloned())
                .collect();
            let records: Vec<SessionRecord> = sessions.iter().map(|s| s.record.clone()).collect();
            summary.sessions += records.len();
            summary.commands += commands.len();
            added.extend(sessions.into_iter().map(|s| s.raw_entry));

            let (key, wrapped) = self
                .keys
                .generate_data_key(key_context(&batch_id, "commands"))
                .await
                .with_context(|| format!("failed to get a data key for batch {batch_id}"))?;
            let key_metadata =
                serde_json::to_vec(&wrapped).context("failed to encode key metadata")?;
            let commands_bytes = tokio::task::spawn_blocking(move || {
                sessionlake_indexer::parquet_out::write_commands(&commands, &key, key_metadata)
            })
            .await
            .context("parquet task failed")??;
            let sessions_bytes = tokio::task::spawn_blocking(move || {
                sessionlake_indexer::parquet_out::write_sessions(&records)
            })
            .await
            .context("parquet task failed")??;
            let commands_path = paths::commands_object(&dt, &batch_id);
            let stored = self
                .store
                .put(&commands_path, Bytes::from(commands_bytes))
                .await?;
            let mut commands_entry = entry(stored, ObjectKind::Commands, session_ids.clone());
            commands_entry.key = Some(wrapped);
            added.push(commands_entry);
            let stored = self
                .store
                .put(
                    &paths::sessions_object(&dt, &batch_id),
                    Bytes::from(sessions_bytes),
                )
                .await?;
            added.push(entry(stored, ObjectKind::Sessions, session_ids));
        }
        if added.is_empty() {
            return Ok(summary);
        }
        let link = manifest::commit(
            &self.store,
            &self.keyring.signer(),
            CommitAction::Ingest,
            None,
            added,
            Vec::new(),
        )
        .await
        .context("failed to commit to the manifest")?;
        summary.sequence = Some(link.manifest.body.sequence);
        for (source_ref, position) in positions {
            cursors.positions.insert(source_ref, position);
        }
        cursors.version = 1;
        cursors
            .save(&self.store)
            .await
            .context("failed to save cursors")?;
        Ok(summary)
    }
}
