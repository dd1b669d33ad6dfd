//! What ingest knows of the lake's `access` table: the id of every access event written, with
//! the CloudTrail file it came from (dedupe), and the `StartSession` facts each session is
//! attributed by (enrichment).
//!
//! [`AccessIndex::load`] reads it from the live `access` files when ingest opens. What a batch
//! reads is staged ([`AccessIndex::stage`]) and becomes known only when the batch commits
//! ([`AccessIndex::commit`]); a batch that fails leaves nothing behind
//! ([`AccessIndex::discard`]), so that its files are read again in full.
//!
//! A CloudTrail file is read once. A file read again (its cursor was not saved after the commit,
//! or someone overwrote it: CloudTrail never rewrites a file it delivered) adds only the events
//! the lake does not hold yet ([`AccessIndex::sort`]): the events of the first read stay as
//! they were written, with when they were first read, whatever the new content says. What the
//! new content says differently (events added, left out, or changed under their id: each
//! event's plaintext columns are kept as a digest) is counted for a warning.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use anyhow::Context as _;
use futures::StreamExt as _;
use sessionlake_indexer::SessionContext;
use sessionlake_indexer::cloudtrail::session_context;
use sessionlake_schemas::AccessRecord;
use sessionlake_schemas::manifest::{ObjectEntry, ObjectKind};
use sessionlake_storage::LakeErrorKind;
use sessionlake_storage::store::LakeStore;
use sessionlake_storage::transaction;

use crate::events;

/// Access files read at once when ingest opens.
const ACCESS_READ_CONCURRENCY: usize = 16;

/// The access events ingest knows of, committed and staged (see the module documentation).
#[derive(Debug, Default)]
pub struct AccessIndex {
    committed: Known,
    staged: Known,
}

#[derive(Debug, Default)]
struct Known {
    /// The CloudTrail file of each event id, and the digest of the event ([`digest`]).
    events: HashMap<String, (Arc<str>, Digest)>,
    /// How many events each CloudTrail file gave.
    per_file: HashMap<String, usize>,
    /// The `StartSession` facts each session was attributed by, by session id.
    contexts: BTreeMap<String, SessionContext>,
}

/// The events of one read of a CloudTrail file, sorted by what the lake holds already.
#[derive(Debug, Default)]
pub struct SortedEvents {
    /// Events the lake does not hold: to be written.
    pub fresh: Vec<AccessRecord>,
    /// Events the lake holds from this same file (an earlier read).
    pub read_before: usize,
    /// Of those, events whose content is not what the earlier read gave (the lake keeps
    /// what that read gave).
    pub altered: usize,
    /// Events the lake holds from another file (CloudTrail delivered them twice): dropped.
    pub elsewhere: usize,
    /// Events an earlier read of this file gave.
    pub known: usize,
}

impl SortedEvents {
    /// Returns whether the file changed since an earlier read (`read`: its cursor says it was
    /// read, whether or not it gave events): it gives events that read did not, lacks some it
    /// gave, or gives some of them otherwise.
    pub fn changed(&self, read: bool) -> bool {
        (read || self.known > 0)
            && (!self.fresh.is_empty() || self.read_before < self.known || self.altered > 0)
    }
}

/// What an access event says, in its plaintext columns (those ingest reads back without a
/// key: everything but the encrypted `parameters`) and leaving out the file it came from.
type Digest = [u8; 16];

/// Returns the [`Digest`] of `record` (the left-out columns are taken out for it and put back,
/// rather than the record copied: every event of the lake goes through here at start).
fn digest(record: &mut AccessRecord) -> Digest {
    let parameters = record.parameters.take();
    let source_ref = std::mem::take(&mut record.source_ref);
    let text = serde_json::to_vec(&*record).unwrap_or_default();
    (record.parameters, record.source_ref) = (parameters, source_ref);
    let mut digest = Digest::default();
    let full = ring::digest::digest(&ring::digest::SHA256, &text);
    digest.copy_from_slice(&full.as_ref()[..std::mem::size_of::<Digest>()]);
    digest
}

impl AccessIndex {
    /// Reads the plaintext columns of the lake's `live` access files: the sessions'
    /// `StartSession` facts and the event ids with their CloudTrail file. No data key is
    /// needed. A file that cannot be read is an error; one that does not parse (or fails its
    /// digest) is reported (`verify` names it) and skipped, so that it never stops ingest.
    ///
    /// Of two `StartSession` events that disagree about a session, the one whose file was
    /// read first stands: by the time in the file's footer, or, for a file from before
    /// footers held it, in its name (a rewrite by a shred or a retention is named at its own
    /// time and carries the first read's in its footer).
    pub async fn load(
        store: &LakeStore,
        live: &BTreeMap<String, ObjectEntry>,
    ) -> anyhow::Result<AccessIndex> {
        let reads = live.values().filter(|entry| entry.kind == ObjectKind::Access).map(|entry| {
            let named = sessionlake_schemas::paths::access_version(&entry.path)
                .and_then(transaction::version_time)
                .unwrap_or(i64::MAX);
            async move {
                // Only the committed bytes: a rewritten access file must not attribute sessions
                // (it is reported like one that does not parse, and skipped).
                let bytes = match store.get_committed(entry).await {
                    Ok(bytes) => bytes,
                    Err(error) if error.kind() == LakeErrorKind::Integrity => {
                        return anyhow::Ok(Err(error.to_string()));
                    }
                    Err(error) => return Err(error.into()),
                };
                let object = store.describe(&entry.path);
                let read = tokio::task::spawn_blocking(move || {
                    sessionlake_tables::parquet_io::read_access_file(bytes, &object, None)
                })
                .await
                .context("access reader task failed")?;
                let read = read.map(|file| (file.first_read_at.unwrap_or(named), file.records));
                anyhow::Ok(read.map_err(|error| error.to_string()))
            }
        });
        let found: Vec<anyhow::Result<_>> =
            futures::stream::iter(reads).buffered(ACCESS_READ_CONCURRENCY).collect().await;
        let mut contexts: BTreeMap<String, (i64, SessionContext)> = BTreeMap::new();
        let mut events = HashMap::new();
        // One copy of each file's name, however many events it gave.
        let mut files: HashMap<String, Arc<str>> = HashMap::new();
        for read in found {
            let (first_read_at, records) = match read? {
                Ok(read) => read,
                Err(error) => {
                    events::AccessFileUnreadable { error: &error }.emit();
                    continue;
                }
            };
            for mut record in records {
                if let Some(context) = session_context(&record) {
                    let first = contexts.get(&context.session_id).map(|(at, _)| *at);
                    if first.is_none_or(|at| first_read_at < at) {
                        contexts.insert(context.session_id.clone(), (first_read_at, context));
                    }
                }
                let digest = digest(&mut record);
                let file = files
                    .entry(record.source_ref)
                    .or_insert_with_key(|name| Arc::from(name.as_str()));
                events.insert(record.event_id, (Arc::clone(file), digest));
            }
        }
        let mut per_file: HashMap<String, usize> = HashMap::new();
        for (source_ref, _) in events.values() {
            *per_file.entry(source_ref.to_string()).or_default() += 1;
        }
        let contexts = contexts.into_iter().map(|(id, (_, context))| (id, context)).collect();
        Ok(AccessIndex {
            committed: Known { events, per_file, contexts },
            staged: Known::default(),
        })
    }

    /// Returns the `StartSession` facts `session_id` is attributed by, if any.
    pub fn context(&self, session_id: &str) -> Option<&SessionContext> {
        self.committed.contexts.get(session_id).or_else(|| self.staged.contexts.get(session_id))
    }

    /// Sorts the events of one read of the CloudTrail file `source_ref` by what the lake holds.
    pub fn sort(&self, source_ref: &str, records: Vec<AccessRecord>) -> SortedEvents {
        let known = [&self.committed, &self.staged]
            .iter()
            .map(|known| known.per_file.get(source_ref).copied().unwrap_or(0))
            .sum();
        let mut sorted = SortedEvents { known, ..SortedEvents::default() };
        for mut record in records {
            let from = self
                .committed
                .events
                .get(&record.event_id)
                .or_else(|| self.staged.events.get(&record.event_id));
            match from {
                None => sorted.fresh.push(record),
                Some((from, known)) if from.as_ref() == source_ref => {
                    sorted.read_before += 1;
                    sorted.altered += usize::from(*known != digest(&mut record));
                }
                Some(_) => sorted.elsewhere += 1,
            }
        }
        sorted
    }

    /// Stages the events `written` of the CloudTrail file `source_ref` (written, not committed
    /// yet: their ids and [`digest`]s, from [`AccessIndex::written`]) and the sessions they
    /// attribute first.
    pub fn stage(
        &mut self,
        source_ref: &str,
        written: Vec<(String, Digest)>,
        attributed: Vec<SessionContext>,
    ) {
        let file: Arc<str> = Arc::from(source_ref);
        let count = written.len();
        for (event_id, digest) in written {
            self.staged.events.insert(event_id, (Arc::clone(&file), digest));
        }
        if count > 0 {
            *self.staged.per_file.entry(source_ref.to_string()).or_default() += count;
        }
        for context in attributed {
            self.staged.contexts.entry(context.session_id.clone()).or_insert(context);
        }
    }

    /// Returns what [`AccessIndex::stage`] keeps of `records`, to be staged once written.
    pub fn written(records: &mut [AccessRecord]) -> Vec<(String, Digest)> {
        records.iter_mut().map(|record| (record.event_id.clone(), digest(record))).collect()
    }

    /// The staged events were committed: they are known from now on.
    pub fn commit(&mut self) {
        let staged = std::mem::take(&mut self.staged);
        self.committed.events.extend(staged.events);
        for (source_ref, count) in staged.per_file {
            *self.committed.per_file.entry(source_ref).or_default() += count;
        }
        for (session_id, context) in staged.contexts {
            self.committed.contexts.entry(session_id).or_insert(context);
        }
    }

    /// The staged events were not committed: they are forgotten, and read again.
    pub fn discard(&mut self) {
        self.staged = Known::default();
    }
}

#[cfg(test)]
mod tests {
    use sessionlake_schemas::{AccessKind, paths};
    use sessionlake_storage::keys::LocalKeyring;

    use super::*;

    /// A `StartSession` event `event_id` of `principal` for alice's session, from the
    /// CloudTrail file named after the event.
    fn start(event_id: &str, principal: &str) -> AccessRecord {
        AccessRecord {
            event_id: event_id.into(),
            event_time: 1_773_446_400_000_000,
            kind: AccessKind::SsmSession,
            principal: Some(principal.into()),
            principal_type: None,
            source_ip: None,
            user_agent: None,
            targets: vec!["i-0123456789abcdef0".into()],
            os_user: None,
            document_name: None,
            parameters: None,
            session_id: Some("alice-0123456789abcdef0".into()),
            command_id: None,
            region: Some("us-east-1".into()),
            account: Some("111122223333".into()),
            error_code: None,
            source_ref: format!("s3://trail/{event_id}.json.gz"),
        }
    }

    /// `record`, as read from the CloudTrail file `source_ref`.
    fn from(mut record: AccessRecord, source_ref: &str) -> AccessRecord {
        record.source_ref = source_ref.into();
        record
    }

    /// Of two `StartSession` events that disagree, the one read first stands at the next start,
    /// also when its access file was rewritten (by a shred or a retention) after the other was
    /// read: the rewrite is named at its own time, its footer keeps the first read's.
    #[tokio::test]
    async fn test_the_first_read_start_session_stands_though_its_file_was_rewritten_since() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (keyring, _) =
            LocalKeyring::open_or_create(&dir.path().join("keyring.json")).expect("keyring");
        let store = LakeStore::in_memory();
        // The genuine event, read at t1 and rewritten at t3; the forged one, read at t2.
        let (t1, t2, t3): (i64, i64, i64) =
            (1_800_000_000_000_000, 1_800_000_100_000_000, 1_800_000_200_000_000);
        let files = [
            (format!("{t3:x}u0a1b2c3"), Some(t1), start("genuine", "arn:aws:iam::1:user/alice")),
            (format!("{t2:x}0a1b2c3d"), Some(t2), start("forged", "arn:aws:iam::1:user/mallory")),
        ];
        let mut live = BTreeMap::new();
        for (version, first_read, record) in files {
            let path = paths::access_object("2026-03-14", &record.event_id, &version);
            let context =
                sessionlake_schemas::envelope::key_context("lake", &record.event_id, "access");
            let written = sessionlake_tables::merge::write_access_file(
                &store,
                &keyring,
                &path,
                vec![record],
                context,
                Vec::new(),
                first_read,
            )
            .await
            .expect("write");
            for entry in written {
                live.insert(entry.path.clone(), entry);
            }
        }
        let index = AccessIndex::load(&store, &live).await.expect("read");
        let context = index.context("alice-0123456789abcdef0").expect("attributed");
        assert_eq!(context.principal.as_deref(), Some("arn:aws:iam::1:user/alice"));
        assert_eq!(index.committed.per_file["s3://trail/genuine.json.gz"], 1);
    }

    /// A CloudTrail file read again adds only what the lake lacks, and says when it changed: a
    /// read after a lost cursor (the same events) changes nothing; an overwrite that drops an
    /// event and adds one keeps the first and writes only the second.
    #[test]
    fn test_a_file_read_again_gives_only_events_the_lake_lacks() {
        let file = "s3://trail/a.json.gz";
        let (first, second, third) = (
            from(start("ev-1", "alice"), file),
            from(start("ev-2", "alice"), file),
            from(start("ev-3", "alice"), file),
        );
        let mut index = AccessIndex::default();
        let mut read = index.sort(file, vec![first.clone(), second.clone()]);
        assert_eq!((read.fresh.len(), read.read_before, read.known), (2, 0, 0));
        assert!(!read.changed(false), "a first read");
        index.stage(file, AccessIndex::written(&mut read.fresh), Vec::new());
        index.commit();

        let again = index.sort(file, vec![first.clone(), second.clone()]);
        assert_eq!((again.fresh.len(), again.read_before, again.known), (0, 2, 2));
        assert!(!again.changed(true), "the same events");

        let overwritten = index.sort(file, vec![first.clone(), third.clone()]);
        let fresh: Vec<&str> = overwritten.fresh.iter().map(|r| r.event_id.as_str()).collect();
        assert_eq!(fresh, ["ev-3"]);
        assert_eq!((overwritten.read_before, overwritten.known), (1, 2));
        assert!(overwritten.changed(true));
        let cut = index.sort(file, vec![first.clone()]);
        assert!(cut.fresh.is_empty() && cut.changed(true), "an event missing is a change");

        // An event forged under its id: not fresh (the lake keeps the first), but a change.
        let forged = index.sort(file, vec![from(start("ev-1", "mallory"), file), second.clone()]);
        assert_eq!((forged.fresh.len(), forged.read_before, forged.altered), (0, 2, 1));
        assert!(forged.changed(true));
        // The encrypted `parameters` are not read back at start: never taken for a change.
        let mut with_parameters = first.clone();
        with_parameters.parameters = Some("{}".into());
        let same = index.sort(file, vec![with_parameters, second.clone()]);
        assert_eq!((same.altered, same.changed(true)), (0, false));

        // A file read before without events (its cursor says so) that now gives one changed.
        let empty = "s3://trail/empty.json.gz";
        let later = index.sort(empty, vec![from(start("ev-9", "alice"), empty)]);
        assert!(later.changed(true) && !later.changed(false));

        // Another file with an event of this one: a duplicate delivery, dropped.
        let other = index.sort("s3://trail/b.json.gz", vec![from(second, "s3://trail/b.json.gz")]);
        assert_eq!((other.fresh.len(), other.elsewhere, other.known), (0, 1, 0));
    }

    /// An event's digest survives its access file: read back at start (without the key, so
    /// without `parameters`), every column set, it is the event as parsed.
    #[tokio::test]
    async fn test_an_event_read_back_from_its_file_is_not_taken_for_a_change() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (keyring, _) =
            LocalKeyring::open_or_create(&dir.path().join("keyring.json")).expect("keyring");
        let store = LakeStore::in_memory();
        let file = "s3://trail/full.json.gz";
        let full = AccessRecord {
            kind: AccessKind::RunCommand,
            principal_type: Some("AssumedRole".into()),
            source_ip: Some("203.0.113.7".into()),
            user_agent: Some("aws-cli/2.15".into()),
            targets: vec!["i-0123456789abcdef0".into(), "i-0fedcba9876543210".into()],
            os_user: Some("root".into()),
            document_name: Some("AWS-RunShellScript".into()),
            parameters: Some(r#"{"commands":["id"]}"#.into()),
            command_id: Some("5f3a8c1e".into()),
            error_code: Some("AccessDenied".into()),
            ..from(start("ev-full", "arn:aws:iam::1:user/bob"), file)
        };
        let path = paths::access_object("2026-03-14", "full", "18f0a1b2c3d4e5f6a");
        let context = sessionlake_schemas::envelope::key_context("lake", "full", "access");
        let written = sessionlake_tables::merge::write_access_file(
            &store,
            &keyring,
            &path,
            vec![full.clone()],
            context,
            Vec::new(),
            None,
        )
        .await
        .expect("write");
        let live = written.into_iter().map(|entry| (entry.path.clone(), entry)).collect();
        let index = AccessIndex::load(&store, &live).await.expect("read");
        let again = index.sort(file, vec![full.clone()]);
        assert_eq!((again.read_before, again.altered, again.changed(true)), (1, 0, false));
        let forged = AccessRecord { os_user: Some("ubuntu".into()), ..full };
        assert_eq!(index.sort(file, vec![forged]).altered, 1);
    }

    /// What a batch staged and did not commit is forgotten: the file is read in full again
    /// (its events would otherwise be taken as read before, and never written).
    #[test]
    fn test_a_batch_that_failed_leaves_its_events_unknown() {
        let file = "s3://trail/a.json.gz";
        let event = from(start("ev-1", "alice"), file);
        let context = session_context(&event).expect("a StartSession");
        let mut index = AccessIndex::default();
        let mut read = index.sort(file, vec![event.clone()]);
        index.stage(file, AccessIndex::written(&mut read.fresh), vec![context]);
        assert!(index.context("alice-0123456789abcdef0").is_some(), "staged, seen by the batch");
        assert_eq!(index.sort(file, vec![event.clone()]).read_before, 1, "seen by the batch");
        index.discard();
        assert!(index.context("alice-0123456789abcdef0").is_none());
        let again = index.sort(file, vec![event]);
        assert_eq!((again.fresh.len(), again.known), (1, 0));
    }
}
