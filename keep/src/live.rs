//! The live set as retention sees it: each session (who, when, its live objects, its replaced
//! versions, the compacted files holding its rows) and each `access` file's events, read from
//! the plaintext columns of the committed `sessions` and `access` files (no key needed).

use std::collections::{BTreeMap, BTreeSet};

use futures::StreamExt as _;
use sessionlake_schemas::manifest::{ObjectEntry, ObjectKind};
use sessionlake_schemas::paths;
use sessionlake_storage::history::History;
use sessionlake_storage::store::LakeStore;
use sessionlake_tables::parquet_io;

use sessionlake_storage::bail;

use crate::error::{KeepError, KeepErrorKind, KeepResult};
use crate::policy::Subject;

/// Objects read at once.
pub(crate) const CONCURRENCY: usize = 16;

/// One session as retention sees it: who, when, its live objects, and the earlier versions of
/// them that ingest replaced (a grown stream, a re-delivered transcript) and that are still
/// stored: they expire with the session.
#[derive(Debug, Clone)]
pub struct LiveSession {
    /// The session's id.
    pub session_id: String,
    /// Who and where: what the policy's rules and the holds match.
    pub subject: Subject,
    /// Start (else end) time, µs; else the partition date.
    pub time: i64,
    /// Its live objects of its own (raw, commands, sessions, session keys).
    pub objects: Vec<ObjectEntry>,
    /// Objects of its earlier versions, replaced by ingest and still stored.
    pub superseded: Vec<ObjectEntry>,
    /// Live compacted files holding its rows (with other sessions' rows): rewritten without it.
    pub compacted: Vec<ObjectEntry>,
}

/// The objects of earlier session versions, by session: removed from the live set by an ingest
/// commit (replaced), not by retention, shred or anything else since. They are kept as history
/// until their session expires or is shredded.
pub fn superseded_versions(
    history: &History,
    live: &BTreeMap<String, ObjectEntry>,
) -> BTreeMap<String, Vec<ObjectEntry>> {
    // By path, as each session's list has always been ordered.
    let replaced: BTreeMap<&str, &ObjectEntry> = history
        .replaced()
        .filter(|entry| !live.contains_key(&entry.path))
        .map(|entry| (entry.path.as_str(), entry))
        .collect();
    let mut by_session: BTreeMap<String, Vec<ObjectEntry>> = BTreeMap::new();
    for entry in replaced.into_values() {
        if let [session] = entry.sessions.as_slice() {
            by_session.entry(session.clone()).or_default().push(entry.clone());
        }
    }
    by_session
}

/// Reads the `sessions` rows of every session in the lake (plaintext columns only: no key
/// needed): the live ones, and those left only as replaced versions (read from the newest
/// version's `sessions` file still stored; one that cannot be read is reported and skipped).
pub async fn live_sessions(
    store: &LakeStore,
    live: &BTreeMap<String, ObjectEntry>,
    superseded: &BTreeMap<String, Vec<ObjectEntry>>,
) -> KeepResult<Vec<LiveSession>> {
    let live_files: Vec<&ObjectEntry> =
        live.values().filter(|entry| entry.kind == ObjectKind::Sessions).collect();
    let with_live: BTreeSet<&str> =
        live_files.iter().flat_map(|entry| entry.sessions.iter().map(String::as_str)).collect();
    let orphans: Vec<&ObjectEntry> = superseded
        .iter()
        .filter(|(session, _)| !with_live.contains(session.as_str()))
        .filter_map(|(_, entries)| entries.iter().rfind(|entry| entry.kind == ObjectKind::Sessions))
        .collect();
    let reads = live_files
        .into_iter()
        .map(|entry| (entry, true))
        .chain(orphans.into_iter().map(|entry| (entry, false)));
    let rows = futures::stream::iter(reads.map(|(entry, required)| async move {
        let read = async {
            let bytes = store.get_committed(entry).await?;
            session_rows(&entry.path, bytes)
        };
        match read.await {
            Ok(rows) => Ok(rows),
            Err(error) if !required => {
                tracing::warn!(
                    object = %store.describe(&entry.path),
                    error = %format!("{error:#}"),
                    "a replaced version's sessions file is unreadable; its session is skipped"
                );
                Ok(Vec::new())
            }
            Err(error) => Err(error),
        }
    }))
    .buffered(CONCURRENCY)
    .collect::<Vec<_>>()
    .await;
    let mut by_id: BTreeMap<String, LiveSession> = BTreeMap::new();
    for found in rows {
        for (session_id, subject, time) in found? {
            let session = by_id.entry(session_id.clone()).or_insert_with(|| LiveSession {
                session_id: session_id.clone(),
                subject: subject.clone(),
                time,
                objects: Vec::new(),
                superseded: superseded.get(&session_id).cloned().unwrap_or_default(),
                compacted: Vec::new(),
            });
            // Delivered by several sources: the earliest time counts.
            session.time = session.time.min(time);
        }
    }
    for entry in live.values() {
        if paths::is_compacted(&entry.path) {
            for id in &entry.sessions {
                if let Some(session) = by_id.get_mut(id) {
                    session.compacted.push(entry.clone());
                }
            }
        } else if let [id] = entry.sessions.as_slice()
            && let Some(session) = by_id.get_mut(id)
        {
            session.objects.push(entry.clone());
        }
    }
    Ok(by_id.into_values().collect())
}

fn session_rows(object: &str, bytes: bytes::Bytes) -> KeepResult<Vec<(String, Subject, i64)>> {
    let partition_time = partition_micros(object).unwrap_or(0);
    let mut rows = Vec::new();
    for stored in parquet_io::read_sessions(bytes, object)? {
        let context = stored.context;
        if context.session_id.is_empty() {
            bail!(KeepErrorKind::Format, "{object} has a row without session_id");
        }
        let subject = Subject {
            principal: context.principal,
            target: context.target,
            account: context.account,
        };
        let when = context.started_at.or(stored.ended_at).unwrap_or(partition_time);
        rows.push((context.session_id, subject, when));
    }
    Ok(rows)
}

/// One CloudTrail event of an `access` file as retention sees it.
#[derive(Debug, Clone)]
pub struct AccessEvent {
    /// CloudTrail's `eventID`.
    pub event_id: String,
    /// The session it started, resumed or ended, if any.
    pub session: Option<String>,
    /// One subject per target (one without a target when it names none).
    pub subjects: Vec<Subject>,
    /// The event's time, µs.
    pub time: i64,
}

/// An `access` file as retention sees it: its events, who each is about and when.
#[derive(Debug, Clone)]
pub struct LiveAccessFile {
    /// The file as committed.
    pub entry: ObjectEntry,
    /// Its events.
    pub events: Vec<AccessEvent>,
}

/// Reads who every live `access` file's events are about (plaintext columns only: no key).
pub async fn live_access_files(
    store: &LakeStore,
    live: &BTreeMap<String, ObjectEntry>,
) -> KeepResult<Vec<LiveAccessFile>> {
    let files: Vec<&ObjectEntry> =
        live.values().filter(|entry| entry.kind == ObjectKind::Access).collect();
    futures::stream::iter(files.into_iter().map(|entry| async move {
        let bytes = store.get_committed(entry).await?;
        let object = store.describe(&entry.path);
        let records = parquet_io::read_access_plaintext(bytes, &object)?;
        let events = records
            .into_iter()
            .map(|record| {
                let subject = |target: Option<String>| Subject {
                    principal: record.principal.clone(),
                    target,
                    account: record.account.clone(),
                };
                let mut subjects: Vec<Subject> =
                    record.targets.iter().map(|target| subject(Some(target.clone()))).collect();
                if subjects.is_empty() {
                    subjects.push(subject(None));
                }
                AccessEvent {
                    event_id: record.event_id,
                    session: record.session_id,
                    subjects,
                    time: record.event_time,
                }
            })
            .collect();
        Ok::<_, KeepError>(LiveAccessFile { entry: entry.clone(), events })
    }))
    .buffered(CONCURRENCY)
    .collect::<Vec<_>>()
    .await
    .into_iter()
    .collect()
}

fn partition_micros(path: &str) -> Option<i64> {
    paths::dt_of(path)
        .and_then(|dt| chrono::NaiveDate::parse_from_str(dt, "%Y-%m-%d").ok())
        .and_then(|date| date.and_hms_opt(0, 0, 0))
        .map(|time| time.and_utc().timestamp_micros())
}
