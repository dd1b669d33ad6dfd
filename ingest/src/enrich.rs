//! Late CloudTrail enrichment: a `StartSession` event that arrives after its session's
//! transcript was ingested completes the session (principal, target, start time, region,
//! account).
//!
//! The lake's way: the stored version is never edited. Its raw transcript is read back (the
//! committed bytes, hash-checked; decrypted with the session's keys; decompressed within a
//! bound; its SHA-256 checked against the `sessions` row), parsed again with the CloudTrail
//! facts, and written as a new version, which replaces the stored one in the same commit as the
//! `access` file that brought the event (so a crash leaves either both or neither). Readers see
//! one row per session.
//!
//! Only a version whose stored facts differ from what the event brings is rewritten: the
//! `sessions` file (plaintext, small) is read first and compared. Each event is new once (event
//! ids are deduplicated), so a session is re-indexed at most once per `StartSession`, and a
//! CloudTrail file read again finds its sessions already complete.
//!
//! A stored version that cannot be read back (altered, its original removed by retention, its
//! keys shredded) keeps its facts: the failure is reported, and the `access` row still holds
//! the new ones. A failure that may pass (the store or KMS unavailable, throttled, denied)
//! fails the CloudTrail file, which keeps its cursor and is read again.

use std::collections::{BTreeSet, HashMap};

use anyhow::Context as _;
use futures::StreamExt as _;
use sessionlake_indexer::{InputForm, SessionContext};
use sessionlake_schemas::manifest::{ObjectEntry, ObjectKind, compacted_version_source};
use sessionlake_schemas::{SessionSource, paths};
use sessionlake_storage::store::sha256_hex;
use sessionlake_storage::{LakeError, LakeErrorKind};
use sessionlake_tables::parquet_io::{StoredSession, read_sessions};

use crate::error::{IngestErrorKind, kind_of};
use crate::events;
use crate::lake_writer::{Input, LakeWriter, Written};
use crate::sources::{MAX_OBJECT_BYTES, SessionInput};

/// Returns whether parsing a session again with `cloudtrail` would change the facts `stored`
/// holds: CloudTrail's facts, when it has them, win over the transcript's.
pub fn brings_new_facts(stored: &SessionContext, cloudtrail: &SessionContext) -> bool {
    fn differs<T: PartialEq>(new: &Option<T>, old: &Option<T>) -> bool {
        new.is_some() && new != old
    }
    differs(&cloudtrail.principal, &stored.principal)
        || differs(&cloudtrail.run_as, &stored.run_as)
        || differs(&cloudtrail.target, &stored.target)
        || differs(&cloudtrail.region, &stored.region)
        || differs(&cloudtrail.account, &stored.account)
        || differs(&cloudtrail.started_at, &stored.started_at)
}

/// Returns the form the raw transcript of a version from `source` was stored in.
fn stored_form(source: SessionSource) -> InputForm {
    match source {
        SessionSource::CloudwatchStream => InputForm::CloudwatchStream,
        SessionSource::CloudwatchUpload => InputForm::CloudwatchUpload,
        SessionSource::S3 | SessionSource::Local => InputForm::S3Transcript,
    }
}

/// Whether a failure may pass on its own (so the CloudTrail file is read again), rather than
/// being a fact about the stored objects.
fn may_pass(error: &anyhow::Error) -> bool {
    let lake_retryable = error.chain().any(|cause| {
        cause
            .downcast_ref::<LakeError>()
            .is_some_and(|lake| lake.is_retryable() || lake.kind() == LakeErrorKind::Denied)
    });
    lake_retryable
        || matches!(
            kind_of(error),
            IngestErrorKind::Throttled | IngestErrorKind::Unavailable | IngestErrorKind::Denied
        )
}

impl LakeWriter {
    /// Re-indexes the live session versions that lack facts `contexts` bring (CloudTrail
    /// `StartSession` facts, by session), up to `max_in_flight` at once; returns the new
    /// versions, to commit with the `access` file that brought the facts.
    pub async fn enrich(
        &self,
        contexts: Vec<SessionContext>,
        max_in_flight: usize,
    ) -> anyhow::Result<Vec<Written>> {
        let wanted: BTreeSet<&str> = contexts.iter().map(|c| c.session_id.as_str()).collect();
        // One pass over the live set finds every stored version of the sessions named.
        let mut stored: HashMap<&str, Vec<(SessionSource, &ObjectEntry)>> = HashMap::new();
        for entry in self.live.values().filter(|entry| entry.kind == ObjectKind::Sessions) {
            // A compacted file holds one version (of its source) of each session it lists.
            if paths::is_compacted(&entry.path) {
                for session_id in &entry.sessions {
                    let Some(session_id) = wanted.get(session_id.as_str()) else { continue };
                    let live = self.live.values();
                    if let Some(source) = compacted_version_source(live, session_id) {
                        stored.entry(session_id).or_default().push((source, entry));
                    }
                }
                continue;
            }
            let [session_id] = entry.sessions.as_slice() else { continue };
            let Some(session_id) = wanted.get(session_id.as_str()) else { continue };
            let source = SessionSource::ALL
                .into_iter()
                .find(|source| paths::is_session_object(&entry.path, session_id, *source));
            if let Some(source) = source {
                stored.entry(session_id).or_default().push((source, entry));
            }
        }
        let work: Vec<(&SessionContext, SessionSource, &ObjectEntry)> = contexts
            .iter()
            .flat_map(|context| {
                let versions = stored.get(context.session_id.as_str());
                versions
                    .into_iter()
                    .flatten()
                    .map(move |(source, entry)| (context, *source, *entry))
            })
            .collect();
        let results: Vec<(&str, anyhow::Result<Option<Written>>)> = futures::stream::iter(work)
            .map(|(context, source, entry)| async move {
                (context.session_id.as_str(), self.reindex(context, source, entry).await)
            })
            .buffered(max_in_flight.max(1))
            .collect()
            .await;
        let mut versions = Vec::new();
        let mut retry = None;
        for (session_id, result) in results {
            match result {
                Ok(Some(version)) => versions.push(version),
                Ok(None) => {}
                Err(error) if may_pass(&error) => {
                    retry.get_or_insert(error);
                }
                Err(error) => {
                    let kind = kind_of(&error);
                    events::SessionNotEnriched { session_id, kind, error: &error }.emit();
                }
            }
        }
        if let Some(error) = retry {
            // Nothing names the versions written: they go (best effort; `verify` lists any
            // that stay).
            for version in versions {
                self.discard(version).await;
            }
            return Err(error);
        }
        Ok(versions)
    }

    /// Deletes the objects of a version that will not be committed.
    async fn discard(&self, version: Written) {
        let objects = match version {
            Written::Session { objects, .. } | Written::Access { objects, .. } => objects,
            Written::Quarantined { object, .. } => vec![object],
        };
        let paths = objects.into_iter().map(|object| object.path).collect();
        sessionlake_storage::transaction::discard(&self.store, paths).await;
    }

    /// Re-indexes one stored version (its `sessions` file is `entry`) with `cloudtrail`, when
    /// that changes its facts; returns the new version, which keeps the source's cursor.
    async fn reindex(
        &self,
        cloudtrail: &SessionContext,
        source: SessionSource,
        entry: &ObjectEntry,
    ) -> anyhow::Result<Option<Written>> {
        let session_id = cloudtrail.session_id.as_str();
        let bytes = self.store.get_committed(entry).await?;
        let object = self.store.describe(&entry.path);
        let rows = tokio::task::spawn_blocking(move || read_sessions(bytes, &object))
            .await
            .context("sessions reader task failed")??;
        let Some(stored) = rows.into_iter().find(|row| row.context.session_id == session_id) else {
            anyhow::bail!("{} holds no row of session {session_id}", entry.path);
        };
        if !brings_new_facts(&stored.context, cloudtrail) {
            return Ok(None);
        }
        let raw = self.read_stored_raw(session_id, &stored).await?;
        let input = SessionInput {
            session_id: session_id.to_string(),
            source,
            source_ref: stored.source_ref,
            // Not moved: the source has not changed.
            position: String::new(),
            form: stored_form(source),
            raw: raw.into(),
            observed_at: stored.context.started_at,
        };
        match self.write_input(Input::Session(input), Some(cloudtrail.clone())).await? {
            Written::Session {
                session_id,
                source,
                source_ref,
                objects,
                commands,
                raw_bytes,
                low_confidence,
                ..
            } => {
                events::SessionEnriched { session_id: &session_id, replaces: &entry.path }.emit();
                Ok(Some(Written::Session {
                    session_id,
                    source,
                    source_ref,
                    position: None,
                    objects,
                    commands,
                    raw_bytes,
                    low_confidence,
                }))
            }
            // The transcript parsed when it was first written; it must parse now.
            refused => {
                self.discard(refused).await;
                anyhow::bail!("{} no longer parses: its facts stay", stored.raw_object)
            }
        }
    }

    /// Returns the original bytes of a stored version's raw transcript: the committed object,
    /// opened with its data key (decrypting and decompressing off the async threads, within
    /// [`MAX_OBJECT_BYTES`]), checked against the SHA-256 its `sessions` row holds.
    async fn read_stored_raw(
        &self,
        session_id: &str,
        stored: &StoredSession,
    ) -> anyhow::Result<Vec<u8>> {
        let Some(raw_entry) = self.live.get(&stored.raw_object) else {
            anyhow::bail!(
                "the original of {session_id} ({}) is not live (removed by retention)",
                stored.raw_object
            );
        };
        // In memory, unlike `sessionlake show --raw` (`Keys::open_raw_to`): re-indexing hands
        // the whole transcript to the parser and hashes it against the sessions row; bounded by
        // MAX_OBJECT_BYTES.
        let sealed = self.store.get_committed(raw_entry).await?;
        let key = self
            .unwrapper
            .raw_data_key(raw_entry, &sealed, session_id, Some(&self.lake_id))
            .await?;
        let path = raw_entry.path.clone();
        let raw = tokio::task::spawn_blocking(move || {
            sessionlake_storage::envelope::open_bytes(&path, &sealed, &key, MAX_OBJECT_BYTES)
        })
        .await
        .context("raw reader task failed")??;
        let sha = sha256_hex(&raw);
        anyhow::ensure!(
            sha == stored.raw_sha256,
            "{} opens to bytes of sha256 {sha}, its sessions row says {}",
            stored.raw_object,
            stored.raw_sha256
        );
        Ok(raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_only_differing_facts_call_for_a_new_version() {
        let stored = SessionContext {
            session_id: "alice-0123456789abcdef0".into(),
            run_as: Some("ssm-user".into()),
            target: Some("i-0123456789abcdef0".into()),
            started_at: Some(10),
            ..SessionContext::default()
        };
        let principal = Some("arn:aws:iam::111122223333:user/alice".to_string());
        let cases = [
            ("nothing known", SessionContext::new(stored.session_id.clone()), false),
            ("the same facts", stored.clone(), false),
            ("a principal", SessionContext { principal, ..stored.clone() }, true),
            ("another start", SessionContext { started_at: Some(9), ..stored.clone() }, true),
            (
                "a region",
                SessionContext { region: Some("eu-west-1".into()), ..stored.clone() },
                true,
            ),
            ("no target", SessionContext { target: None, ..stored.clone() }, false),
        ];
        for (case, cloudtrail, expected) in cases {
            assert_eq!(brings_new_facts(&stored, &cloudtrail), expected, "{case}: {cloudtrail:?}");
        }
    }

    #[test]
    fn test_stored_form_matches_the_source() {
        let cases = [
            (SessionSource::S3, InputForm::S3Transcript),
            (SessionSource::Local, InputForm::S3Transcript),
            (SessionSource::CloudwatchStream, InputForm::CloudwatchStream),
            (SessionSource::CloudwatchUpload, InputForm::CloudwatchUpload),
        ];
        for (source, form) in cases {
            assert_eq!(stored_form(source), form, "{source:?}");
        }
    }

    #[test]
    fn test_only_failures_that_may_pass_retry_the_trail_file() {
        let cases = [
            (LakeError::new(LakeErrorKind::Unavailable, "s3 down"), true),
            (LakeError::new(LakeErrorKind::Denied, "kms denied"), true),
            (LakeError::new(LakeErrorKind::Integrity, "altered"), false),
            (LakeError::new(LakeErrorKind::NotFound, "key shredded"), false),
        ];
        for (lake, expected) in cases {
            let text = lake.to_string();
            let error = anyhow::Error::new(lake).context("failed to re-index");
            assert_eq!(may_pass(&error), expected, "{text}");
        }
        assert!(!may_pass(&anyhow::anyhow!("no longer parses")));
    }
}
