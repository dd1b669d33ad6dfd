//! Delta Lake logs of the lake's tables (`commands`, `sessions`, `access`), derived from the
//! signed chain, so that engines that read Delta (Spark, Athena, Trino, DuckDB's `delta`
//! extension, the Python `deltalake` package) see exactly the live lake: no replaced
//! version, no file that no commit names.
//!
//! Each table's log lives in its folder (`commands/_delta_log/`), and its files are the
//! table's live files as the chain names them, by path relative to the folder, partitioned by
//! `dt`; for `commands`, one delivery per session (the one `search` reads, see
//! [`sessionlake_schemas::manifest::live_table_files`]). [`sync`] brings a log to a live set:
//! it adds what the log lacks and removes what the chain does not name, in one Delta commit
//! that records the chain sequence as an application transaction (`txn`, app id [`APP_ID`]).
//! It compares with the log as it is, so it is idempotent, catches up after a crash between a
//! chain commit and its Delta commit, and undoes anything another writer put in the log.
//!
//! The chain stays the source of truth: a Delta log is not signed, and whoever can write to
//! the bucket can rewrite it. `sessionlake verify` compares each log with the chain
//! ([`differences`]). Each added file carries statistics of its unencrypted text and time
//! columns, read from its plaintext footer: never a bound of an encrypted column.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::collections::BTreeMap;
//!
//! use sessionlake_delta::{Table, differences, sync};
//! use sessionlake_schemas::manifest::{ObjectEntry, ObjectKind};
//! use sessionlake_storage::store::{LakeLocation, LakeStore};
//!
//! let folder = tempfile::tempdir()?;
//! let store = LakeStore::open(&LakeLocation::Local(folder.path().to_path_buf()), None)?;
//! // The live set of chain commit 42 (`manifest::live_objects` of the chain): alice's
//! // commands and her session row.
//! let entry = |path: &str, kind| {
//!     let sessions = vec!["alice-0123456789abcdef0".to_string()];
//!     ObjectEntry::new(path.to_string(), 100, "00".repeat(32), kind, sessions)
//! };
//! let live: BTreeMap<String, ObjectEntry> = [
//!     entry("commands/dt=2026-03-14/alice-0123456789abcdef0.s3.v1.parquet", ObjectKind::Commands),
//!     entry("sessions/dt=2026-03-14/alice-0123456789abcdef0.s3.v1.parquet", ObjectKind::Sessions),
//! ]
//! .into_iter()
//! .map(|entry| (entry.path.clone(), entry))
//! .collect();
//!
//! // After chain commit 42: every table's log lists the live set of commit 42.
//! for synced in sync(&store, &live, 42).await? {
//!     println!("{}: +{} -{}", synced.table.dir(), synced.added, synced.removed);
//! }
//! assert!(folder.path().join("commands/_delta_log").is_dir());
//! // `verify`'s comparison finds nothing, and a sync again commits nothing.
//! assert!(differences(&store, &live).await?.is_empty());
//! let again = sync(&store, &live, 42).await?;
//! assert!(again.iter().all(|synced| synced.added == 0 && synced.removed == 0));
//! assert_eq!(again[0].table, Table::Commands);
//! # Ok(())
//! # }
//! ```

mod error;
mod stats;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use arrow_schema::DataType as ArrowType;
use deltalake_core::kernel::transaction::{CommitBuilder, CommitProperties};
use deltalake_core::kernel::{
    Action, Add, ArrayType, DataType, Remove, StructField, Transaction as DeltaTxn,
};
use deltalake_core::logstore::{LogStoreRef, StorageConfig, default_logstore};
use deltalake_core::operations::create::CreateBuilder;
use deltalake_core::protocol::{DeltaOperation, SaveMode};
use deltalake_core::{DeltaTable, DeltaTableError};
use sessionlake_schemas::manifest::{ObjectEntry, live_table_files};
use sessionlake_schemas::paths;
use sessionlake_storage::store::{LakeLocation, LakeStore};
use url::Url;

pub use error::{DeltaError, DeltaResult};

/// The application id of the `txn` action each Delta commit carries: its version is the chain
/// sequence the log was brought to.
pub const APP_ID: &str = "sessionlake";

/// The partition column: the `dt=YYYY-MM-DD` folder a file is in.
pub const PARTITION_COLUMN: &str = "dt";

/// A table of the lake: each has a Delta log.
pub use sessionlake_schemas::Table;

/// A table's Delta schema: the Parquet columns as the types Delta readers read them as (an
/// unsigned 32-bit column as `long`, an unsigned 64-bit one as `decimal(20,0)`), every
/// column nullable (files written before a column was added lack it), then `dt`.
fn delta_columns(table: Table) -> DeltaResult<Vec<StructField>> {
    let mut columns = Vec::new();
    for field in table.arrow_schema().fields() {
        let data_type = delta_type(field.data_type()).ok_or_else(|| {
            DeltaError::schema(format!(
                "column {} of {} has type {}, which has no Delta type here",
                field.name(),
                table.dir(),
                field.data_type()
            ))
        })?;
        columns.push(StructField::new(field.name(), data_type, true));
    }
    columns.push(StructField::new(PARTITION_COLUMN, DataType::STRING, true));
    Ok(columns)
}

/// The lake paths a table's log should list, given the live set.
fn expected_files(table: Table, live: &BTreeMap<String, ObjectEntry>) -> BTreeSet<&str> {
    live_table_files(live, table.kind(), false).into_iter().collect()
}

/// Returns the Delta type Delta readers read a Parquet column of `data_type` as.
fn delta_type(data_type: &ArrowType) -> Option<DataType> {
    Some(match data_type {
        ArrowType::Utf8 | ArrowType::LargeUtf8 | ArrowType::Utf8View => DataType::STRING,
        ArrowType::Boolean => DataType::BOOLEAN,
        ArrowType::Int8 => DataType::BYTE,
        ArrowType::Int16 | ArrowType::UInt8 => DataType::SHORT,
        ArrowType::Int32 | ArrowType::UInt16 => DataType::INTEGER,
        ArrowType::Int64 | ArrowType::UInt32 => DataType::LONG,
        ArrowType::UInt64 => DataType::decimal(20, 0).ok()?,
        ArrowType::Float32 => DataType::FLOAT,
        ArrowType::Float64 => DataType::DOUBLE,
        ArrowType::Timestamp(_, Some(_)) => DataType::TIMESTAMP,
        ArrowType::Timestamp(_, None) => DataType::TIMESTAMP_NTZ,
        ArrowType::List(item) | ArrowType::LargeList(item) => {
            DataType::Array(Box::new(ArrayType::new(delta_type(item.data_type())?, true)))
        }
        _ => return None,
    })
}

/// What [`sync`] did to one table's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Synced {
    pub table: Table,
    /// Files added to and removed from the log.
    pub added: usize,
    pub removed: usize,
    /// The log's version after the sync (`None`: no log, and nothing to list).
    pub version: Option<u64>,
}

/// Brings every table's Delta log to `live`, the live set of chain commit `sequence`: one
/// Delta commit per table whose log differs (the first creates the log). Tables are synced
/// one after the other; the first failure is the error (a later sync catches up).
pub async fn sync(
    store: &LakeStore,
    live: &BTreeMap<String, ObjectEntry>,
    sequence: u64,
) -> DeltaResult<Vec<Synced>> {
    let mut done = Vec::new();
    for table in Table::ALL {
        done.push(sync_table(store, live, sequence, table).await?);
    }
    Ok(done)
}

/// After a writer's [`sync`] to its commit `sequence`: when a manifest newer than it is listed
/// (another writer committed meanwhile, and its own sync may have run before this one, which
/// then wrote the older live set over it), syncs again from the chain as it is now, read and
/// trusted anew with `pinned` (for `command`'s messages). Returns whether it synced again.
pub async fn sync_again_if_raced(
    store: &LakeStore,
    pinned: &[sessionlake_storage::trust::PinnedSigner],
    sequence: u64,
    command: &str,
) -> Result<bool, String> {
    let newer =
        sessionlake_storage::manifest::list_manifests_from(store, sequence.saturating_add(1)).await;
    if newer.is_ok_and(|newer| newer.is_empty()) {
        return Ok(false);
    }
    let snapshot = sessionlake_storage::trust::Snapshot::open(store, pinned)
        .await
        .map_err(|error| error.to_string())?;
    snapshot.ensure_trusted(command).map_err(|error| error.to_string())?;
    let head = snapshot.file_head().unwrap_or_default();
    sync(store, snapshot.live(), head).await.map_err(|error| error.to_string())?;
    Ok(true)
}

async fn sync_table(
    store: &LakeStore,
    live: &BTreeMap<String, ObjectEntry>,
    sequence: u64,
    table: Table,
) -> DeltaResult<Synced> {
    let log_store = log_store(store, table)?;
    let expected = expected_files(table, live);
    let listed = listed_files(store, &log_store, table).await?;
    let version = i64::try_from(sequence).unwrap_or(i64::MAX);
    let properties = || {
        let mut metadata = HashMap::new();
        metadata.insert("sessionlake.chainSequence".to_string(), serde_json::json!(sequence));
        CommitProperties::default()
            .with_application_transaction(DeltaTxn::new(APP_ID, version))
            .with_metadata(metadata)
    };
    let now = chrono::Utc::now().timestamp_millis();
    let Some(listed) = listed else {
        if expected.is_empty() {
            return Ok(Synced { table, added: 0, removed: 0, version: None });
        }
        let mut adds = Vec::new();
        for path in &expected {
            adds.push(add_action(store, table, &live[*path], now).await?);
        }
        let added = adds.len();
        let created = CreateBuilder::new()
            .with_log_store(log_store)
            .with_table_name(table.dir())
            .with_comment(
                "derived from sessionlake's signed chain: only `sessionlake verify` checks it",
            )
            .with_columns(delta_columns(table)?)
            .with_partition_columns([PARTITION_COLUMN])
            .with_actions(adds)
            .with_commit_properties(properties())
            .await
            .map_err(|error| DeltaError::delta(table, "create", error))?;
        return Ok(Synced { table, added, removed: 0, version: created.version() });
    };
    let Listed { table: delta, version: listed_version, files } = listed;
    let mut actions = Vec::new();
    let mut added = 0;
    // A file listed with another size is added again (the newest add of a path wins; a
    // commit may not both add and remove one path).
    for path in &expected {
        let entry = &live[*path];
        let same = files.get(*path).is_some_and(|file| i64::try_from(entry.size).ok() == file.size);
        if !same {
            actions.push(add_action(store, table, entry, now).await?);
            added += 1;
        }
    }
    // Moved, not copied: after a compaction every file of the log goes (50,000 at 10 M).
    let gone = files.into_iter().filter(|(path, _)| !expected.contains(path.as_str()));
    let before = actions.len();
    actions.extend(gone.map(|(_, file)| Action::Remove(file)));
    let removed = actions.len() - before;
    if actions.is_empty() {
        return Ok(Synced { table, added, removed, version: Some(listed_version) });
    }
    let operation = DeltaOperation::Write {
        mode: if removed > 0 { SaveMode::Overwrite } else { SaveMode::Append },
        partition_by: Some(vec![PARTITION_COLUMN.to_string()]),
        predicate: None,
    };
    let committed = CommitBuilder::from(properties())
        .with_actions(actions)
        .build(Some(snapshot_of(&delta, table)?), log_store, operation)
        .await
        .map_err(|error| DeltaError::delta(table, "commit to", error))?;
    Ok(Synced { table, added, removed, version: Some(committed.version()) })
}

/// A table's log as read: its version and files, by lake path, as remove actions.
struct Listed {
    table: DeltaTable,
    version: u64,
    files: BTreeMap<String, Remove>,
}

/// Reads the log of `table`; `None` when there is none.
async fn listed_files(
    store: &LakeStore,
    log_store: &LogStoreRef,
    table: Table,
) -> DeltaResult<Option<Listed>> {
    // A table with no log yet: delta-rs would refuse a local folder that does not exist, and
    // log the absence at ERROR level on S3, on every first sync.
    let log = format!("{}/{}", table.dir(), paths::DELTA_LOG_DIR);
    let logged = store.holds_any(&log).await.map_err(|error| DeltaError::Delta {
        table,
        what: "list",
        message: error.to_string(),
    })?;
    if !logged {
        return Ok(None);
    }
    let mut delta = DeltaTable::new(Arc::clone(log_store));
    match delta.load().await {
        Ok(()) => {}
        Err(DeltaTableError::NotATable(_)) => return Ok(None),
        Err(error) => return Err(DeltaError::delta(table, "read", error)),
    }
    let snapshot = snapshot_of(&delta, table)?;
    let version = snapshot.version();
    let mut files = BTreeMap::new();
    for file in snapshot.log_data() {
        let lake_path = format!("{}/{}", table.dir(), file.path());
        files.insert(lake_path, file.remove_action(true));
    }
    Ok(Some(Listed { table: delta, version, files }))
}

fn snapshot_of(
    delta: &DeltaTable,
    table: Table,
) -> DeltaResult<&deltalake_core::table::state::DeltaTableState> {
    delta.snapshot().map_err(|error| DeltaError::delta(table, "read", error))
}

/// How a table's log differs from the chain's live set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Difference {
    /// Live files the log does not list (or lists with another size).
    pub missing: Vec<String>,
    /// Files the log lists that are not live (or are live with another size).
    pub extra: Vec<String>,
    /// The chain sequence the log was last brought to (its `txn`), if it says.
    pub synced_to: Option<i64>,
    /// No log at all.
    pub absent: bool,
}

impl Difference {
    pub fn is_empty(&self) -> bool {
        self.missing.is_empty() && self.extra.is_empty() && !self.absent
    }
}

/// Compares each table's log with `live`: what differs, per table (tables whose log lists
/// exactly the live set are left out; a table with no log and no live file too).
pub async fn differences(
    store: &LakeStore,
    live: &BTreeMap<String, ObjectEntry>,
) -> DeltaResult<Vec<(Table, Difference)>> {
    let mut found = Vec::new();
    for table in Table::ALL {
        let log_store = log_store(store, table)?;
        let expected = expected_files(table, live);
        let Some(listed) = listed_files(store, &log_store, table).await? else {
            if !expected.is_empty() {
                let missing = expected.iter().map(|path| path.to_string()).collect();
                found.push((table, Difference { missing, absent: true, ..Default::default() }));
            }
            continue;
        };
        let synced_to = match listed.table.snapshot() {
            Ok(snapshot) => snapshot
                .transaction_version(log_store.as_ref(), APP_ID)
                .await
                .map_err(|error| DeltaError::delta(table, "read", error))?,
            Err(_) => None,
        };
        let size_of = |path: &str| live.get(path).and_then(|entry| i64::try_from(entry.size).ok());
        let extra: Vec<String> = listed
            .files
            .iter()
            .filter(|(path, file)| !expected.contains(path.as_str()) || size_of(path) != file.size)
            .map(|(path, _)| path.clone())
            .collect();
        let missing: Vec<String> = expected
            .iter()
            .filter(|path| listed.files.get(**path).is_none_or(|file| size_of(path) != file.size))
            .map(|path| path.to_string())
            .collect();
        let difference = Difference { missing, extra, synced_to, absent: false };
        if !difference.is_empty() {
            found.push((table, difference));
        }
    }
    Ok(found)
}

/// The add action of a live file: its path relative to the table's folder, its `dt`, its
/// size, and the statistics of its unencrypted columns ([`stats`]).
async fn add_action(
    store: &LakeStore,
    table: Table,
    entry: &ObjectEntry,
    now: i64,
) -> DeltaResult<Action> {
    let relative =
        entry.path.strip_prefix(table.dir()).and_then(|rest| rest.strip_prefix('/')).ok_or_else(
            || DeltaError::schema(format!("{} is not in the {} folder", entry.path, table.dir())),
        )?;
    let dt =
        relative.split('/').find_map(|segment| segment.strip_prefix("dt=")).map(str::to_string);
    let size = i64::try_from(entry.size)
        .map_err(|_| DeltaError::schema(format!("{} is too large", entry.path)))?;
    Ok(Action::Add(Add {
        path: encode_path(relative),
        partition_values: HashMap::from([(PARTITION_COLUMN.to_string(), dt)]),
        size,
        modification_time: now,
        data_change: true,
        stats: stats::of_file(store, table, entry).await,
        ..Default::default()
    }))
}

/// Percent-encodes a relative path as the Delta protocol asks (an RFC 2396 URI path): every
/// byte but unreserved characters, `/` and `=`.
fn encode_path(path: &str) -> String {
    const KEEP: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~')
        .remove(b'/')
        .remove(b'=');
    percent_encoding::utf8_percent_encode(path, KEEP).to_string()
}

/// The log store of `table`: the lake's own object store (the bucket's; this machine's file
/// system for a local lake; the store itself for a lake held in memory, as unit tests make),
/// the table's folder as its location, commits with conditional puts (a Delta version is
/// never overwritten).
fn log_store(store: &LakeStore, table: Table) -> DeltaResult<LogStoreRef> {
    let (root, location): (Arc<dyn object_store::ObjectStore>, String) = match store.location() {
        LakeLocation::Local(folder) if folder.is_dir() => {
            let folder = std::path::absolute(folder.join(table.dir()))
                .map_err(|error| DeltaError::config(format!("{}: {error}", folder.display())))?;
            let url = Url::from_directory_path(&folder).map_err(|()| {
                DeltaError::config(format!("{} is not a folder path", folder.display()))
            })?;
            (Arc::new(object_store::local::LocalFileSystem::new()), url.to_string())
        }
        LakeLocation::Local(_) => (store.engine_store().0, format!("memory:///{}/", table.dir())),
        LakeLocation::S3 { bucket, .. } => {
            let (root, prefix) = store.engine_store();
            (root, format!("s3://{bucket}/{prefix}{}/", table.dir()))
        }
    };
    let location = Url::parse(&location)
        .map_err(|error| DeltaError::config(format!("{location}: {error}")))?;
    let config = StorageConfig::default();
    let prefixed = config
        .decorate_store(Arc::clone(&root), &location)
        .map_err(|error| DeltaError::config(format!("{location}: {error}")))?;
    Ok(default_logstore(Arc::from(prefixed), root, &location, &config))
}

#[cfg(test)]
mod tests {
    use super::*;
    use sessionlake_schemas::manifest::ObjectKind;

    fn entry(path: &str, kind: ObjectKind, session: &str, size: u64) -> (String, ObjectEntry) {
        let entry = ObjectEntry::new(
            path.to_string(),
            size,
            "00".repeat(32),
            kind,
            vec![session.to_string()],
        );
        (path.to_string(), entry)
    }

    fn live(entries: &[(&str, ObjectKind, &str, u64)]) -> BTreeMap<String, ObjectEntry> {
        entries
            .iter()
            .map(|(path, kind, session, size)| entry(path, *kind, session, *size))
            .collect()
    }

    const S3: &str = "commands/dt=2026-03-14/alice-1.s3.v1.parquet";
    const STREAM: &str = "commands/dt=2026-03-14/alice-1.cloudwatch-stream.v1.parquet";
    const BOB: &str = "commands/dt=2026-03-15/bob-2.s3.v1.parquet";
    const SESSION: &str = "sessions/dt=2026-03-14/alice-1.s3.v1.parquet";

    #[tokio::test]
    async fn test_logs_follow_the_live_set_and_undo_foreign_changes() {
        let folder = tempfile::tempdir().expect("tempdir");
        let location = LakeLocation::Local(folder.path().to_path_buf());
        let store = LakeStore::open(&location, None).expect("lake");
        let first = live(&[
            (S3, ObjectKind::Commands, "alice-1", 100),
            (STREAM, ObjectKind::Commands, "alice-1", 90),
            (SESSION, ObjectKind::Sessions, "alice-1", 50),
        ]);
        let synced = sync(&store, &first, 1).await.expect("first sync");
        // One delivery of alice's commands (the one search reads), her session row, no access
        // log (no access file).
        let counts: Vec<(Table, usize, usize)> =
            synced.iter().map(|s| (s.table, s.added, s.removed)).collect();
        assert_eq!(
            counts,
            [(Table::Commands, 1, 0), (Table::Sessions, 1, 0), (Table::Access, 0, 0)]
        );
        assert_eq!(synced[2].version, None);
        assert!(differences(&store, &first).await.expect("compare").is_empty());
        // Idempotent: nothing to commit the second time.
        let again = sync(&store, &first, 1).await.expect("again");
        assert_eq!(again[0].version, synced[0].version);
        assert_eq!((again[0].added, again[0].removed), (0, 0));

        // Commit 2 replaces alice's S3 delivery (another size) and adds bob.
        let second = live(&[
            (S3, ObjectKind::Commands, "alice-1", 120),
            (STREAM, ObjectKind::Commands, "alice-1", 90),
            (BOB, ObjectKind::Commands, "bob-2", 70),
            (SESSION, ObjectKind::Sessions, "alice-1", 50),
        ]);
        let behind = differences(&store, &second).await.expect("compare");
        assert_eq!(behind.len(), 1, "{behind:?}");
        let (table, difference) = &behind[0];
        assert_eq!(*table, Table::Commands);
        assert_eq!(difference.missing, [S3, BOB]);
        assert_eq!(difference.extra, [S3]);
        assert_eq!(difference.synced_to, Some(1));
        let synced = sync(&store, &second, 2).await.expect("second sync");
        assert_eq!((synced[0].added, synced[0].removed), (2, 0));
        assert!(differences(&store, &second).await.expect("compare").is_empty());

        // A log brought back to an older live set by someone else is a difference, and the
        // next sync undoes it.
        sync(&store, &first, 99).await.expect("foreign sync");
        let foreign = differences(&store, &second).await.expect("compare");
        assert_eq!(foreign[0].1.synced_to, Some(99));
        assert_eq!(foreign[0].1.missing, [S3, BOB]);
        sync(&store, &second, 3).await.expect("catch up");
        assert!(differences(&store, &second).await.expect("compare").is_empty());
    }

    /// A lake held in memory (unit tests of the writers) keeps its logs there too.
    #[tokio::test]
    async fn test_a_lake_in_memory_keeps_its_logs_in_memory() {
        let store = LakeStore::in_memory();
        let first = live(&[(S3, ObjectKind::Commands, "alice-1", 100)]);
        let synced = sync(&store, &first, 1).await.expect("sync");
        assert_eq!(synced[0].added, 1);
        assert!(differences(&store, &first).await.expect("compare").is_empty());
        let LakeLocation::Local(folder) = store.location() else { panic!("local") };
        assert!(!folder.exists(), "{} written on disk", folder.display());
        let stored = store.list(paths::COMMANDS_DIR).await.expect("list");
        assert!(stored.iter().any(|(path, _)| paths::is_delta_log(path)), "{stored:?}");
    }

    #[test]
    fn test_schema_reads_unsigned_columns_as_wider_signed_ones() {
        let columns = delta_columns(Table::Commands).expect("columns");
        let type_of = |name: &str| {
            columns.iter().find(|field| field.name() == name).map(|field| field.data_type().clone())
        };
        assert_eq!(type_of("seq"), Some(DataType::LONG));
        assert_eq!(type_of("output_bytes"), Some(DataType::decimal(20, 0).expect("decimal")));
        assert_eq!(type_of("started_at"), Some(DataType::TIMESTAMP));
        assert_eq!(type_of(PARTITION_COLUMN), Some(DataType::STRING));
        assert!(columns.iter().all(|field| field.is_nullable()));
        let access = super::delta_columns(Table::Access).expect("access columns");
        assert!(access.iter().any(|field| matches!(field.data_type(), DataType::Array(_))));
    }

    #[test]
    fn test_paths_are_encoded_as_uris() {
        assert_eq!(
            encode_path("dt=2026-03-14/a b.s3.v1.parquet"),
            "dt=2026-03-14/a%20b.s3.v1.parquet"
        );
        assert_eq!(
            encode_path("dt=2026-03-14/alice-1.s3.v1.parquet"),
            "dt=2026-03-14/alice-1.s3.v1.parquet"
        );
    }
}
