//! Compaction: merges the per-session `commands` and `sessions` files of each day into one
//! compacted file per table and day (several above [`MAX_COMPACTED_INPUT_BYTES`] of input),
//! so a query opens a handful of files instead of one per session, and a session lookup reads
//! one row group.
//!
//! A one-shot writer job ([`compact`]): it takes the writer lease (never racing ingest), reads
//! the live rows in memory (decrypting with the lake's keys), writes the compacted files under
//! fresh data keys from the lake's provider, and commits them in ONE commit (action `compact`)
//! made only on the head it planned from (a lost race plans again), which removes the files
//! they replace; those are deleted after the commit. Raw objects and session key records are
//! never compacted: shredding a session still destroys its original's key.
//!
//! Only a session's preferred version (the delivery `show` reads) is compacted, and only once
//! it has not changed for the minimum age: a live CloudWatch stream is rewritten on every poll.
//! Re-running changes nothing; an interrupted run leaves uncommitted files that the next run
//! deletes.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::time::{Duration, Instant};

use sessionlake_schemas::manifest::{CommitAction, ObjectEntry, ObjectKind};
use sessionlake_schemas::{SessionSource, paths};
use sessionlake_storage::keys::KeyProvider;
use sessionlake_storage::lease::{DEFAULT_LEASE_TTL, Lease, Takeover};
use sessionlake_storage::session_keys::file_key_records;
use sessionlake_storage::transaction::{Leftovers, Uncommitted};
use sessionlake_storage::{checkpoint, manifest};
pub use sessionlake_tables::merge::MAX_COMPACTED_INPUT_BYTES;
use sessionlake_tables::merge::{Compacted, LakeFiles, MergedTable, Writer};

use sessionlake_storage::bail;

use crate::error::{Context as _, KeepError, KeepErrorKind, KeepResult};
use crate::holds::actor;
use crate::lake::{Lake, MAX_ATTEMPTS, REMOVED_LEFTOVERS};

/// Uncommitted compacted files younger than this are left alone by the sweep: a retention or
/// shred (which do not take the lease) may be about to commit one.
const SWEEP_GRACE: Duration = Duration::from_secs(15 * 60);

/// What a failed renewal of the writer lease says, over the lake's error.
const LEASE_LOST: &str = "lost the writer lease";

/// What to compact.
#[derive(Debug, Clone, Default)]
pub struct CompactOptions {
    /// Only session versions committed at least this long ago (µs).
    pub min_age: i64,
    /// Only these days (`dt=` partitions, YYYY-MM-DD); all when empty.
    pub days: BTreeSet<String>,
    /// The AWS KMS key that wraps the compacted files' data keys; else the local keyring.
    pub kms_key_id: Option<String>,
}

/// What compaction tells its caller as it works (the CLI draws spinners on stderr).
pub trait CompactObserver: Sync {
    /// Writing the compacted files of an attempt begins.
    fn writing(&self) {}
    /// `files` more input files were merged.
    fn merged(&self, files: u64) {
        let _ = files;
    }
    /// Writing the compacted files of an attempt ended.
    fn written(&self) {}
    /// One replaced file was deleted after the commit.
    fn deleted(&self) {}
}

/// Files of one table and day merged into one compacted file.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Group {
    table: MergedTable,
    dt: String,
    inputs: Vec<ObjectEntry>,
}

/// What a run did.
#[derive(Debug, Default, serde::Serialize)]
pub struct Summary {
    /// Days compacted.
    pub partitions: usize,
    /// Files replaced.
    pub files_before: usize,
    /// Compacted files written.
    pub files_after: usize,
    /// Sessions in them.
    pub sessions: usize,
    /// Bytes replaced.
    pub bytes_before: u64,
    /// Bytes written.
    pub bytes_after: u64,
    /// The commit's sequence, if one was made.
    pub sequence: Option<u64>,
    /// The head of the commit (sequence and the manifest file's SHA-256), if one was made.
    pub head: Option<sessionlake_storage::manifest::Head>,
    /// The checkpoint written after the commit, if one was.
    pub checkpoint: Option<String>,
    /// Objects an interrupted run left, deleted first.
    pub swept: usize,
    /// Seconds the run took (the caller measures).
    pub seconds: f64,
}

/// Plans the groups to compact: per table and day, the per-session files of preferred
/// versions (the delivery `show` reads) committed before `cutoff` (µs), with the open
/// compacted files (under half the size bound) of the same table and day; a group needs two
/// files at least.
fn plan(
    live: &BTreeMap<String, ObjectEntry>,
    committed_at: &dyn Fn(&str) -> Option<i64>,
    cutoff: i64,
    days: &BTreeSet<String>,
) -> Vec<Group> {
    // The preferred versions, by (session, source, version), from their `commands` files.
    let preferred: HashSet<(String, SessionSource, String)> =
        sessionlake_schemas::manifest::preferred_commands(live)
            .iter()
            .filter_map(|path| paths::session_version(path))
            .map(|(id, source, version)| (id.to_string(), source, version.to_string()))
            .collect();
    // (commands?, day) -> (open compacted files, fresh per-session files)
    let mut by_day: BTreeMap<(bool, String), (Vec<ObjectEntry>, Vec<ObjectEntry>)> =
        BTreeMap::new();
    for entry in live.values() {
        let Some(table) = MergedTable::of(entry.kind) else { continue };
        let Some(dt) = paths::dt_of(&entry.path) else { continue };
        if !days.is_empty() && !days.contains(dt) {
            continue;
        }
        let slot = by_day.entry((table == MergedTable::Commands, dt.to_string())).or_default();
        if paths::is_compacted(&entry.path) {
            if entry.size < MAX_COMPACTED_INPUT_BYTES / 2 {
                slot.0.push(entry.clone());
            }
            continue;
        }
        let Some((session, source, version)) = paths::session_version(&entry.path) else {
            continue;
        };
        let version = (session.to_string(), source, version.to_string());
        let is_preferred = entry.sessions == [session] && preferred.contains(&version);
        let old_enough = committed_at(&entry.path).is_some_and(|at| at <= cutoff);
        if is_preferred && old_enough {
            slot.1.push(entry.clone());
        }
    }
    let mut groups = Vec::new();
    for ((commands, dt), (open, fresh)) in by_day {
        if fresh.is_empty() {
            continue;
        }
        let table = if commands { MergedTable::Commands } else { MergedTable::Sessions };
        let mut chunk: Vec<ObjectEntry> = Vec::new();
        let mut bytes = 0u64;
        for input in open.into_iter().chain(fresh) {
            if !chunk.is_empty() && bytes.saturating_add(input.size) > MAX_COMPACTED_INPUT_BYTES {
                groups.push(Group { table, dt: dt.clone(), inputs: std::mem::take(&mut chunk) });
                bytes = 0;
            }
            bytes = bytes.saturating_add(input.size);
            chunk.push(input);
        }
        groups.push(Group { table, dt: dt.clone(), inputs: chunk });
    }
    // One file alone is already as compact as it gets (but see `sessions` files below).
    groups.retain(|group| group.table == MergedTable::Sessions || group.inputs.len() > 1);
    // A version's `sessions` row is compacted only with its `commands` file. Compacted apart, a
    // search could no longer tell which delivery's row dates the per-session `commands` file it
    // reads, and would fall back to every delivery's rows (a planted stream's earlier start).
    let compacted: HashSet<(String, SessionSource, String)> = groups
        .iter()
        .filter(|group| group.table == MergedTable::Commands)
        .flat_map(|group| &group.inputs)
        .filter_map(|entry| paths::session_version(&entry.path))
        .map(|(id, source, version)| (id.to_string(), source, version.to_string()))
        .collect();
    let goes = |entry: &ObjectEntry| {
        paths::session_version(&entry.path).is_some_and(|(id, source, version)| {
            compacted.contains(&(id.to_string(), source, version.to_string()))
        })
    };
    for group in groups.iter_mut().filter(|group| group.table == MergedTable::Sessions) {
        group.inputs.retain(|entry| paths::is_compacted(&entry.path) || goes(entry));
    }
    // A `sessions` file whose `commands` file goes is compacted even alone: it would never be
    // fresh again (its version is then read from a compacted file).
    groups.retain(|group| group.inputs.len() > 1 || group.inputs.iter().any(goes));
    groups
}

/// What compaction sweeps before it plans: the deletes of an interrupted retention, shred or
/// compaction, and compacted files and file keys no commit names (a crashed writer's), all of them after
/// taking over a crashed holder's lease, else those older than [`SWEEP_GRACE`].
fn leftovers(crashed: bool) -> Leftovers<'static> {
    Leftovers {
        folders: &[paths::COMMANDS_DIR, paths::SESSIONS_DIR, paths::FILE_KEYS_DIR],
        uncommitted: Some(Uncommitted {
            older_than: (!crashed).then_some(SWEEP_GRACE),
            only: |path| paths::is_compacted(path) || paths::is_file_key_record(path),
        }),
        ..REMOVED_LEFTOVERS
    }
}

/// Compacts the lake as `options` say: takes the writer lease (released at the end, whatever
/// happens), sweeps what interrupted runs left, and commits the compacted files in one
/// `compact` commit, planning again after a lost race; then writes a checkpoint and brings the
/// tables' Delta logs to the live set.
pub async fn compact(
    lake: &mut Lake,
    options: &CompactOptions,
    observer: &dyn CompactObserver,
) -> KeepResult<Summary> {
    let lease = Lease::acquire(&lake.store, &manifest::writer_id(), DEFAULT_LEASE_TTL).await;
    // Busy when another process holds it.
    let kind = lease.as_ref().err().map_or(KeepErrorKind::Lake, KeepErrorKind::of_lake);
    let mut lease = lease.with_context_kind(kind, || {
        format!("failed to take the writer lease of {}", lake.store.location())
    })?;
    let crashed = matches!(lease.takeover, Takeover::HolderGone(_));
    let result = run(lake, &mut lease, options, crashed, observer).await;
    if let Err(error) = lease.release().await {
        tracing::warn!(%error, "writer lease not released; it lapses by itself");
    }
    // With nothing to compact, a Delta log a writer left behind catches up (a commit brought
    // them to itself).
    if result.as_ref().is_ok_and(|summary| summary.sequence.is_none()) {
        lake.sync_delta().await;
    }
    result
}

async fn run(
    lake: &mut Lake,
    lease: &mut Lease,
    options: &CompactOptions,
    crashed: bool,
    observer: &dyn CompactObserver,
) -> KeepResult<Summary> {
    let (min_age, days) = (options.min_age, &options.days);
    lake.ensure_trusted()?;
    let mut summary =
        Summary { swept: lake.sweep(&leftovers(crashed)).await?, ..Summary::default() };
    let provider: std::sync::Arc<dyn KeyProvider> = match &options.kms_key_id {
        Some(key_id) => std::sync::Arc::new(lake.keys.kms_provider(key_id)?),
        None => lake.keyring_provider()?,
    };
    let renew_every = DEFAULT_LEASE_TTL / 3;
    for attempt in 1..=MAX_ATTEMPTS {
        let cutoff = chrono::Utc::now().timestamp_micros().saturating_sub(min_age);
        // The first commit naming a file (a rekey lists it again, unchanged).
        let committed_at = |path: &str| lake.history.first_added(path);
        let groups = plan(&lake.live, &committed_at, cutoff, days);
        if groups.is_empty() {
            return Ok(summary);
        }
        let lake_id = manifest::committed_lake_id(&lake.store, &lake.live).await?;
        let lake_id = lake_id.unwrap_or_default();
        let files = LakeFiles {
            store: &lake.store,
            keys: &lake.keys,
            provider: provider.as_ref(),
            lake_id: &lake_id,
            writer: Writer::Leased,
        };
        let total: usize = groups.iter().map(|group| group.inputs.len()).sum();
        observer.writing();
        let mut transaction = lake.begin(CommitAction::Compact)?;
        let written = async {
            let mut added: Vec<ObjectEntry> = Vec::new();
            let mut renewed = Instant::now();
            for group in &groups {
                let written = files
                    .write_compacted(group.table, &group.dt, &group.inputs, &BTreeSet::new())
                    .await
                    .with_context_kind(KeepErrorKind::Lake, || {
                        format!("failed to compact {}", group.dt)
                    })?;
                for entry in written.into_iter().flat_map(Compacted::entries) {
                    transaction.stage(entry.path.clone());
                    added.push(entry);
                }
                observer.merged(group.inputs.len() as u64);
                if renewed.elapsed() > renew_every {
                    lease.renew().await.context_kind(KeepErrorKind::Busy, LEASE_LOST)?;
                    renewed = Instant::now();
                }
            }
            // The lease must still be ours when the commit lands (ingest never races it).
            lease.renew().await.context_kind(KeepErrorKind::Busy, LEASE_LOST)?;
            Ok::<_, KeepError>(added)
        };
        let written = written.await;
        let added = transaction.or_discard(written).await?;
        observer.written();
        let partitions =
            groups.iter().map(|group| group.dt.as_str()).collect::<BTreeSet<_>>().len();
        // The inputs move into the commit: at 10 M commands each copy of them is about 100 MB.
        let mut removed: Vec<ObjectEntry> =
            groups.into_iter().flat_map(|group| group.inputs).collect();
        // Compacted inputs' keys go with them.
        removed.extend(file_key_records(&removed, &lake.live));
        let table_bytes = |entries: &[ObjectEntry]| -> (usize, u64) {
            let tables = entries.iter().filter(|entry| entry.kind.is_table());
            tables.fold((0, 0), |(files, bytes), entry| (files + 1, bytes + entry.size))
        };
        let (files_before, bytes_before) = table_bytes(&removed);
        let (files_after, bytes_after) = table_bytes(&added);
        let sessions = added
            .iter()
            .filter(|entry| entry.kind == ObjectKind::Sessions)
            .flat_map(|entry| entry.sessions.iter().map(String::as_str))
            .collect::<BTreeSet<&str>>()
            .len();
        let reason = format!(
            "compaction by {}: {total} files of {sessions} sessions into {files_after} files, \
             {partitions} days",
            actor(),
        );
        let committed =
            transaction.commit(CommitAction::Compact, Some(reason), added, removed, false).await;
        match committed {
            Ok(link) => {
                summary.partitions = partitions;
                summary.files_before = files_before;
                summary.files_after = files_after;
                summary.sessions = sessions;
                summary.bytes_before = bytes_before;
                summary.bytes_after = bytes_after;
                summary.sequence = Some(link.manifest.body.sequence);
                summary.head = Some(link.head());
                // What goes after the Delta sync, by path; the commit's lists (every file it
                // replaced, 60 MB at 10 M commands) go before the sync, which needs as much.
                let removed: Vec<String> =
                    link.manifest.body.removed.iter().map(|entry| entry.path.clone()).collect();
                lake.committed(link);
                // Delta readers move to the new files before the old ones go.
                lake.sync_delta().await;
                lake.delete_paths(removed, &|| observer.deleted()).await?;
                // Readers start from a checkpoint of the compacted live set: the commit that
                // names every file it replaced is never replayed by a reader again.
                if let Some(head) = lake.history.head() {
                    match checkpoint::write(&lake.store, lake.signer(), head, &lake.live).await {
                        Ok(path) => summary.checkpoint = Some(path),
                        Err(error) => {
                            tracing::warn!(%error, "checkpoint after compaction not written");
                        }
                    }
                }
                return Ok(summary);
            }
            Err(error) => {
                transaction.discard().await;
                if !(error.is_conflict() && attempt < MAX_ATTEMPTS) {
                    return Err(error.into());
                }
                tracing::info!(%error, "the lake moved on; planning again");
                lake.reload().await?;
            }
        }
    }
    bail!(KeepErrorKind::Conflict, "{} kept changing; try again", lake.store.location())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::tests::entry;

    #[test]
    fn test_plan_takes_old_preferred_versions_of_days_with_two_files() {
        // a (local) and b (S3) share a day: one file per table for both sources.
        let files = [
            entry("commands/dt=2026-03-14/a.local.v1.parquet", ObjectKind::Commands, &["a"], 10),
            entry("sessions/dt=2026-03-14/a.local.v1.parquet", ObjectKind::Sessions, &["a"], 10),
            // b was delivered twice: only S3's version (show's) is compacted.
            entry("commands/dt=2026-03-14/b.s3.v1.parquet", ObjectKind::Commands, &["b"], 10),
            entry(
                "commands/dt=2026-03-14/b.cloudwatch-stream.v1.parquet",
                ObjectKind::Commands,
                &["b"],
                10,
            ),
            entry("sessions/dt=2026-03-14/b.s3.v1.parquet", ObjectKind::Sessions, &["b"], 10),
            // c is too young.
            entry("commands/dt=2026-03-14/c.s3.v2.parquet", ObjectKind::Commands, &["c"], 10),
            // d is alone on its day.
            entry("commands/dt=2026-03-15/d.s3.v1.parquet", ObjectKind::Commands, &["d"], 10),
            entry("raw/dt=2026-03-14/a.local.v1.zst.sle", ObjectKind::Raw, &["a"], 10),
        ];
        let live: BTreeMap<String, ObjectEntry> =
            files.iter().map(|entry| (entry.path.clone(), entry.clone())).collect();
        let mut committed_at: HashMap<&str, i64> =
            files.iter().map(|entry| (entry.path.as_str(), 1)).collect();
        committed_at.insert("commands/dt=2026-03-14/c.s3.v2.parquet", 100);
        let groups = plan(&live, &|path| committed_at.get(path).copied(), 50, &BTreeSet::new());
        let paths: Vec<(MergedTable, Vec<&str>)> = groups
            .iter()
            .map(|group| {
                (group.table, group.inputs.iter().map(|entry| entry.path.as_str()).collect())
            })
            .collect();
        assert_eq!(
            paths,
            [
                (
                    MergedTable::Sessions,
                    vec![
                        "sessions/dt=2026-03-14/a.local.v1.parquet",
                        "sessions/dt=2026-03-14/b.s3.v1.parquet"
                    ]
                ),
                (
                    MergedTable::Commands,
                    vec![
                        "commands/dt=2026-03-14/a.local.v1.parquet",
                        "commands/dt=2026-03-14/b.s3.v1.parquet"
                    ]
                ),
            ]
        );
        // Only the days asked.
        let days = BTreeSet::from(["2026-03-15".to_string()]);
        assert!(plan(&live, &|path| committed_at.get(path).copied(), 50, &days).is_empty());
    }

    /// Plans `files`, all committed long ago: each group's table and input paths.
    fn plan_of(files: &[ObjectEntry]) -> Vec<(MergedTable, Vec<String>)> {
        let live: BTreeMap<String, ObjectEntry> =
            files.iter().map(|entry| (entry.path.clone(), entry.clone())).collect();
        let committed_at: HashMap<&str, i64> = live.keys().map(|path| (path.as_str(), 1)).collect();
        let groups = plan(&live, &|path| committed_at.get(path).copied(), 50, &BTreeSet::new());
        let paths = |group: &Group| group.inputs.iter().map(|entry| entry.path.clone()).collect();
        groups.iter().map(|group| (group.table, paths(group))).collect()
    }

    #[test]
    fn test_plan_never_compacts_a_sessions_row_apart_from_its_commands() {
        let day = "dt=2026-03-14";
        let file = |table: &str, name: &str, session: &str, size: u64| {
            let kind =
                if table == "commands" { ObjectKind::Commands } else { ObjectKind::Sessions };
            entry(&format!("{table}/{day}/{name}.parquet"), kind, &[session], size)
        };
        // The day's compacted `commands` file is full, so e's `commands` file stays alone on
        // its day; the day's `sessions` file is still open, so e's row could join it.
        let full = MAX_COMPACTED_INPUT_BYTES / 2;
        let mut files = vec![
            file("commands", "compact-1a", "a", full),
            file("sessions", "compact-1a", "a", 10),
            file("commands", "e.s3.v1", "e", 10),
            file("sessions", "e.s3.v1", "e", 10),
        ];
        assert_eq!(plan_of(&files), []);
        // With a second fresh version beside it, both versions go, in both tables.
        files.extend([file("commands", "f.s3.v1", "f", 10), file("sessions", "f.s3.v1", "f", 10)]);
        let path = |table: &str, name: &str| format!("{table}/{day}/{name}.parquet");
        assert_eq!(
            plan_of(&files),
            [
                (
                    MergedTable::Sessions,
                    ["compact-1a", "e.s3.v1", "f.s3.v1"].map(|n| path("sessions", n)).to_vec()
                ),
                (
                    MergedTable::Commands,
                    ["e.s3.v1", "f.s3.v1"].map(|n| path("commands", n)).to_vec()
                ),
            ]
        );
        // e's `sessions` file is cut into a group of its own by the size bound, after the
        // day's two open compacted files: it still goes with e's `commands` file.
        let open = MAX_COMPACTED_INPUT_BYTES / 2 - 10;
        let files = [
            file("sessions", "compact-1a", "a", open),
            file("sessions", "compact-1b", "b", open),
            file("commands", "e.s3.v1", "e", 10),
            file("sessions", "e.s3.v1", "e", 30),
            file("commands", "f.s3.v1", "f", 10),
        ];
        let alone = (MergedTable::Sessions, vec![path("sessions", "e.s3.v1")]);
        assert!(plan_of(&files).contains(&alone), "{:?}", plan_of(&files));
    }
}
