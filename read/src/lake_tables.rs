//! The lake as DataFusion tables: `commands`, `sessions` and `access`, registered from the
//! files the manifest says are live, with the encrypted columns opened through the key
//! providers.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::config::EncryptionFactoryOptions;
use datafusion::config::TableParquetOptions;
use datafusion::datasource::MemTable;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::execution::parquet_encryption::EncryptionFactory;
use datafusion::prelude::{SessionConfig, SessionContext};
use object_store::path::Path as ObjectPath;
use parquet::encryption::decrypt::FileDecryptionProperties;
use parquet::encryption::encrypt::FileEncryptionProperties;
use sessionlake_schemas::envelope::{ROLE_ACCESS, ROLE_COMMANDS, WrappedKey};
use sessionlake_schemas::manifest::{ObjectEntry, ObjectKind};
use sessionlake_schemas::{
    ACCESS_ENCRYPTED_COLUMNS, ENCRYPTED_COLUMNS, access_schema, commands_schema, paths,
    sessions_schema,
};
use sessionlake_storage::keys::{Keys, check_context};
use sessionlake_storage::store::LakeStore;
use sessionlake_storage::verified::{CheckedBlocks, VerifiedStore};
use url::Url;

use crate::error::{Context as _, ReadErrorKind, ReadResult};

/// Id under which the lake's decryption is registered with DataFusion.
const ENCRYPTION_FACTORY_ID: &str = "sessionlake";
/// URL the lake's object store is registered under.
const LAKE_URL: &str = "sessionlake://lake/";

/// Hands DataFusion the decryption keys of each `commands` and `access` file, unwrapping the
/// file's data key (named by the manifest) the first time the file is read.
#[derive(Debug)]
struct LakeDecryption {
    keys: Keys,
    wrapped: WrappedKeys,
    opened: Mutex<HashMap<String, Arc<FileDecryptionProperties>>>,
}

/// One encrypted file as the manifest names it.
#[derive(Debug)]
struct EncryptedFile {
    /// Path inside the lake (errors name it).
    path: String,
    /// Its wrapped data key.
    key: WrappedKey,
    /// Its encrypted columns.
    columns: &'static [&'static str],
    /// Whom the key must be bound to: the session of a `commands` file, the CloudTrail file of
    /// an `access` file (`None`: the manifest names none, the key is refused).
    subject: Option<String>,
    /// The key's role.
    role: &'static str,
}

/// The wrapped data keys of the encrypted files, by engine path, and the lake's id.
#[derive(Debug, Default)]
struct WrappedKeys {
    files: HashMap<String, EncryptedFile>,
    lake: Option<String>,
}

impl WrappedKeys {
    /// Returns the file at engine path `path` (`None`: not encrypted) after checking that its
    /// key is bound to this lake, the file's subject and its role (as writers bind it, see
    /// `key_context` in ingest): a key moved from another file, session or lake is refused
    /// before it is unwrapped.
    fn get(&self, path: &str) -> sessionlake_storage::LakeResult<Option<&EncryptedFile>> {
        let Some(file) = self.files.get(path) else { return Ok(None) };
        let subject = file.subject.as_deref().unwrap_or("(none named)");
        check_context(&file.key, &file.path, subject, file.role, self.lake.as_deref())?;
        Ok(Some(file))
    }
}

#[async_trait]
impl EncryptionFactory for LakeDecryption {
    async fn get_file_encryption_properties(
        &self,
        _config: &EncryptionFactoryOptions,
        _schema: &SchemaRef,
        _file_path: &ObjectPath,
    ) -> datafusion::common::Result<Option<Arc<FileEncryptionProperties>>> {
        Ok(None)
    }

    async fn get_file_decryption_properties(
        &self,
        _config: &EncryptionFactoryOptions,
        file_path: &ObjectPath,
    ) -> datafusion::common::Result<Option<Arc<FileDecryptionProperties>>> {
        let path = file_path.to_string();
        if let Some(found) = self.opened.lock().map_err(|_| lock_error())?.get(&path) {
            return Ok(Some(Arc::clone(found)));
        }
        let failed = |error: sessionlake_storage::LakeError| {
            datafusion::error::DataFusionError::External(
                format!("failed to open {path}: {error}").into(),
            )
        };
        let Some(file) = self.wrapped.get(&path).map_err(failed)? else {
            return Ok(None);
        };
        let key = self.keys.decrypt(&file.key).await.map_err(failed)?;
        let secret = key.expose().to_vec();
        let columns = file.columns;
        let properties = FileDecryptionProperties::builder(secret.clone())
            .with_column_keys(columns.to_vec(), vec![secret; columns.len()])?
            .build()?;
        self.opened.lock().map_err(|_| lock_error())?.insert(path, Arc::clone(&properties));
        Ok(Some(properties))
    }
}

fn lock_error() -> datafusion::error::DataFusionError {
    datafusion::error::DataFusionError::Internal("decryption cache lock poisoned".into())
}

/// The live objects of a lake, as its trusted chain commits them.
pub struct LakeSnapshot {
    /// Live objects by path.
    pub live: BTreeMap<String, ObjectEntry>,
    /// The lake's id (`lake.json`; none in a lake written before ids), which data keys name.
    pub lake_id: Option<String>,
    /// Blocks of its table files already checked, shared by every context opened over it.
    pub checked: Arc<CheckedBlocks>,
}

impl LakeSnapshot {
    fn files(&self, kind: ObjectKind, keep: &dyn Fn(&str) -> bool) -> Vec<&ObjectEntry> {
        self.live.values().filter(|entry| entry.kind == kind && keep(&entry.path)).collect()
    }
}

/// The configuration of a context that reads the lake's tables.
///
/// Statistics are not collected at planning: with them DataFusion 55 also reads each file's
/// `sorting_columns` and declares a group of several files sorted when each file is, as if
/// the files' ranges did not overlap. The files of a table overlap (two CloudTrail files of a
/// day; sessions that ran at the same time), so `ORDER BY … LIMIT` returned rows out of order.
/// Row groups and pages are still pruned by their statistics when read.
pub fn session_config() -> SessionConfig {
    SessionConfig::new().with_information_schema(false).with_collect_statistics(false)
}

/// Returns a query context that holds at most `memory_limit` bytes of query state and never
/// spills to disk (a spill file would hold decrypted command text): a query over the limit
/// fails with DataFusion's "Resources exhausted" error instead. It has no physical filter
/// pushdown ([`without_physical_filter_pushdown`]).
pub fn new_context(memory_limit: usize) -> ReadResult<SessionContext> {
    use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
    use datafusion::execution::runtime_env::RuntimeEnvBuilder;
    let runtime = RuntimeEnvBuilder::new()
        .with_memory_limit(memory_limit, 1.0)
        .with_disk_manager_builder(
            DiskManagerBuilder::default().with_mode(DiskManagerMode::Disabled),
        )
        .build_arc()
        .context_kind(ReadErrorKind::Query, "failed to set up the query engine")?;
    let ctx = SessionContext::new_with_config_rt(session_config(), runtime);
    Ok(without_physical_filter_pushdown(&ctx))
}

/// Returns `ctx` without DataFusion's physical filter pushdown ([`new_context`]'s contexts, so
/// also a user's own `sessionlake sql`). In DataFusion 55 that pushdown finds a filter's columns by name: a
/// condition over two joined tables' same-named columns (`s.started_at` beside
/// `c.started_at`) is pushed into one table's scan as that table's own column, and rows are
/// dropped without an error (apache/datafusion issues 25244 and 25296, fixed upstream by pull
/// request 25259, not in 55.2). A condition on one table still reaches its scan through the
/// logical plan, where columns are qualified, and row groups are still pruned.
fn without_physical_filter_pushdown(ctx: &SessionContext) -> SessionContext {
    use datafusion::execution::SessionStateBuilder;
    let state = ctx.state();
    let rules = state
        .physical_optimizers()
        .iter()
        .filter(|rule| !rule.name().starts_with("FilterPushdown"))
        .cloned()
        .collect();
    let state =
        SessionStateBuilder::new_from_existing(state).with_physical_optimizer_rules(rules).build();
    SessionContext::new_with_state(state)
}

/// Registers `commands`, `sessions` and `access` with `ctx`; `keep` chooses files by path (partition
/// pruning on `dt=` before DataFusion sees them).
pub fn register(
    ctx: &SessionContext,
    store: &LakeStore,
    snapshot: &LakeSnapshot,
    keys: Keys,
    keep: &dyn Fn(&str) -> bool,
) -> ReadResult<()> {
    let url = Url::parse(LAKE_URL).context_kind(ReadErrorKind::Query, "lake url")?;
    let (engine_store, prefix) = store.engine_store();
    // The engine reads through a store that serves only committed table files, each range
    // checked against the chain's digests before DataFusion sees a byte of it.
    let tables = snapshot.live.values().filter(|entry| entry.kind.is_table());
    let verified = VerifiedStore::new(engine_store, prefix, tables, |path| store.describe(path))
        .with_checked(Arc::clone(&snapshot.checked));
    ctx.register_object_store(&url, Arc::new(verified));
    let commands = snapshot.files(ObjectKind::Commands, keep);
    let access = snapshot.files(ObjectKind::Access, keep);
    let files = commands
        .iter()
        .chain(&access)
        .filter_map(|entry| Some((format!("{prefix}{}", entry.path), encrypted_file(entry)?)))
        .collect();
    let wrapped = WrappedKeys { files, lake: snapshot.lake_id.clone() };
    ctx.runtime_env().register_parquet_encryption_factory(
        ENCRYPTION_FACTORY_ID,
        Arc::new(LakeDecryption { keys, wrapped, opened: Mutex::new(HashMap::new()) }),
    );
    register_table(ctx, "commands", commands_schema(), prefix, &commands)?;
    let sessions = snapshot.files(ObjectKind::Sessions, keep);
    register_table(ctx, "sessions", sessions_schema(), prefix, &sessions)?;
    register_table(ctx, "access", access_schema(), prefix, &access)?;
    Ok(())
}

/// Returns what opening `entry` (a `commands` or `access` file) needs, `None` when it has no key.
fn encrypted_file(entry: &ObjectEntry) -> Option<EncryptedFile> {
    let (columns, role, subject) = match entry.kind {
        ObjectKind::Access => (
            &ACCESS_ENCRYPTED_COLUMNS[..],
            ROLE_ACCESS,
            paths::trail_file_id_of(&entry.path).map(str::to_string),
        ),
        // A compacted `commands` file's key names the file (`compact-<version>`); any other
        // holds one session's rows, and its key names that session.
        _ if paths::is_compacted(&entry.path) => (
            &ENCRYPTED_COLUMNS[..],
            ROLE_COMMANDS,
            paths::compacted_key_subject(&entry.path).map(str::to_string),
        ),
        _ => (
            &ENCRYPTED_COLUMNS[..],
            ROLE_COMMANDS,
            match entry.sessions.as_slice() {
                [session] => Some(session.clone()),
                _ => None,
            },
        ),
    };
    Some(EncryptedFile {
        path: entry.path.clone(),
        key: entry.key.as_deref().cloned()?,
        columns,
        subject,
        role,
    })
}

fn register_table(
    ctx: &SessionContext,
    name: &str,
    schema: SchemaRef,
    prefix: &str,
    files: &[&ObjectEntry],
) -> ReadResult<()> {
    if files.is_empty() {
        let empty = MemTable::try_new(Arc::clone(&schema), vec![vec![]])?;
        ctx.register_table(name, Arc::new(empty))?;
        return Ok(());
    }
    let urls = files
        .iter()
        .map(|entry| ListingTableUrl::parse(format!("{LAKE_URL}{prefix}{}", entry.path)))
        .collect::<Result<Vec<_>, _>>()?;
    let mut options = TableParquetOptions::default();
    options.crypto.factory_id = Some(ENCRYPTION_FACTORY_ID.to_string());
    options.global.pushdown_filters = true;
    options.global.bloom_filter_on_read = true;
    let format = ParquetFormat::default().with_options(options);
    let listing = ListingOptions::new(Arc::new(format)).with_file_extension(".parquet");
    let config = ListingTableConfig::new_with_multi_paths(urls)
        .with_listing_options(listing)
        .with_schema(schema);
    ctx.register_table(name, Arc::new(ListingTable::try_new(config)?))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use sessionlake_schemas::envelope::{CONTEXT_LAKE, CONTEXT_ROLE, CONTEXT_SUBJECT};

    use super::*;

    /// A user's join of two tables whose times share a name, filtered on both: every row
    /// counts. DataFusion 55's physical pushdown put `coalesce(c.started_at, s.started_at)`
    /// into the scan of `c` as `coalesce(c.started_at, c.started_at)` and dropped each command
    /// without a time of its own (its session's start counts for it).
    #[tokio::test]
    async fn test_a_join_filtered_on_same_named_columns_keeps_every_row() {
        use datafusion::arrow::array::{RecordBatch, StringArray, TimestampMicrosecondArray};
        let dir = tempfile::tempdir().expect("tempdir");
        let write = |name: &str, ids: Vec<&str>, times: Vec<Option<i64>>| {
            let batch = RecordBatch::try_from_iter([
                ("session_id", Arc::new(StringArray::from(ids)) as _),
                ("started_at", Arc::new(TimestampMicrosecondArray::from(times)) as _),
            ])
            .expect("batch");
            let file = std::fs::File::create(dir.path().join(name)).expect("create");
            let mut writer =
                parquet::arrow::ArrowWriter::try_new(file, batch.schema(), None).expect("writer");
            writer.write(&batch).expect("write");
            writer.close().expect("close");
        };
        // Sessions started at 100 and 200; commands: two without a time, one at 300.
        write("sessions.parquet", vec!["a", "b"], vec![Some(100), Some(200)]);
        write("commands.parquet", vec!["a", "b", "b"], vec![None, None, Some(300)]);
        let config =
            session_config().set_bool("datafusion.execution.parquet.pushdown_filters", true);
        let ctx = SessionContext::new_with_config(config);
        for table in ["sessions", "commands"] {
            let path = dir.path().join(format!("{table}.parquet"));
            let path = path.to_str().expect("utf-8");
            ctx.register_parquet(table, path, Default::default()).await.expect("register");
        }
        let ctx = without_physical_filter_pushdown(&ctx);
        let frame = ctx
            .sql(
                "SELECT count(*) AS n FROM sessions s RIGHT JOIN commands c \
                 ON c.session_id = s.session_id WHERE coalesce(c.started_at, s.started_at) >= \
                 arrow_cast(150, 'Timestamp(Microsecond, None)')",
            )
            .await
            .expect("plan");
        let batches = frame.collect().await.expect("run");
        let counted = datafusion::arrow::util::pretty::pretty_format_batches(&batches)
            .expect("format")
            .to_string();
        assert!(counted.contains("| 2 "), "b's untimed command and its command at 300:\n{counted}");
    }

    fn entry(path: &str, kind: ObjectKind, session: &str, bound_to: (&str, &str)) -> ObjectEntry {
        let (subject, role) = bound_to;
        let context = BTreeMap::from([
            (CONTEXT_LAKE.to_string(), "lake-1".to_string()),
            (CONTEXT_SUBJECT.to_string(), subject.to_string()),
            (CONTEXT_ROLE.to_string(), role.to_string()),
        ]);
        let key = WrappedKey {
            provider: "local".into(),
            key_id: "k".into(),
            ciphertext: String::new(),
            context,
        };
        ObjectEntry {
            path: path.into(),
            size: 1,
            sha256: String::new(),
            kind,
            sessions: vec![session.into()],
            key: Some(Box::new(key)),
            note: None,
            blocks: None,
        }
    }

    /// A data key is checked against the file the manifest names it for before it is
    /// unwrapped: two files' keys swapped, or a key of another role or lake, are refused.
    #[test]
    fn test_keys_are_checked_against_their_file() {
        let commands = "commands/dt=2026-03-14/s-1.v1.parquet";
        let access = "access/dt=2026-03-14/trail-1.v1.parquet";
        let keys = |entries: Vec<ObjectEntry>, lake: &str| WrappedKeys {
            files: entries
                .iter()
                .filter_map(|e| Some((e.path.clone(), encrypted_file(e)?)))
                .collect(),
            lake: Some(lake.to_string()),
        };
        let good = keys(
            vec![
                entry(commands, ObjectKind::Commands, "s-1", ("s-1", ROLE_COMMANDS)),
                entry(access, ObjectKind::Access, "", ("trail-1", ROLE_ACCESS)),
            ],
            "lake-1",
        );
        for path in [commands, access] {
            assert!(good.get(path).expect(path).is_some(), "{path}");
        }
        assert!(good.get("sessions/x.parquet").expect("unencrypted").is_none());
        let cases = [
            // The two files' keys swapped.
            (entry(commands, ObjectKind::Commands, "s-1", ("trail-1", ROLE_ACCESS)), "lake-1"),
            (entry(access, ObjectKind::Access, "", ("s-1", ROLE_COMMANDS)), "lake-1"),
            // Another session's key, another role, another lake.
            (entry(commands, ObjectKind::Commands, "s-1", ("s-2", ROLE_COMMANDS)), "lake-1"),
            (entry(commands, ObjectKind::Commands, "s-1", ("s-1", "raw")), "lake-1"),
            (entry(commands, ObjectKind::Commands, "s-1", ("s-1", ROLE_COMMANDS)), "lake-2"),
        ];
        for (entry, lake) in cases {
            let path = entry.path.clone();
            let error = keys(vec![entry], lake).get(&path).expect_err(&path);
            assert!(error.to_string().contains(&path), "{error}");
            assert!(error.to_string().contains("moved here"), "{error}");
        }
    }
}
