//! The lake as DataFusion tables: `commands`, `sessions` and `access`, registered from the
//! files the manifest says are live, with the encrypted columns opened through the key
//! providers.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use anyhow::Context as _;
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
use datafusion::prelude::SessionContext;
use object_store::path::Path as ObjectPath;
use parquet::encryption::decrypt::FileDecryptionProperties;
use parquet::encryption::encrypt::FileEncryptionProperties;
use sessionlake_lake::keys::Keys;
use sessionlake_lake::manifest;
use sessionlake_lake::store::LakeStore;
use sessionlake_schemas::envelope::WrappedKey;
use sessionlake_schemas::manifest::{ObjectEntry, ObjectKind};
use sessionlake_schemas::{
    ACCESS_ENCRYPTED_COLUMNS, ENCRYPTED_COLUMNS, access_schema, commands_schema, sessions_schema,
};
use url::Url;

/// Id under which the lake's decryption is registered with DataFusion.
const ENCRYPTION_FACTORY_ID: &str = "sessionlake";
/// URL the lake's object store is registered under.
const LAKE_URL: &str = "sessionlake://lake/";

/// Hands DataFusion the decryption keys of each `commands` and `access` file, unwrapping the
/// file's data key (named by the manifest) the first time the file is read.
#[derive(Debug)]
struct LakeDecryption {
    keys: Keys,
    /// Each encrypted file's wrapped key and encrypted columns.
    wrapped: HashMap<String, (WrappedKey, &'static [&'static str])>,
    opened: Mutex<HashMap<String, Arc<FileDecryptionProperties>>>,
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
        let Some((wrapped, columns)) = self.wrapped.get(&path) else {
            return Ok(None);
        };
        let key = self.keys.decrypt(wrapped).await.map_err(|error| {
            datafusion::error::DataFusionError::External(
                format!("failed to open {path}: {error}").into(),
            )
        })?;
        let secret = key.expose().to_vec();
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

/// The live objects of a lake, read once from the manifest.
pub struct LakeSnapshot {
    /// Live objects by path.
    pub live: BTreeMap<String, ObjectEntry>,
}

impl LakeSnapshot {
    /// Reads the manifest chain.
    pub async fn load(store: &LakeStore) -> anyhow::Result<LakeSnapshot> {
        let chain = manifest::read_chain(store)
            .await
            .with_context(|| format!("failed to read the manifest of {}", store.location()))?;
        Ok(LakeSnapshot { live: manifest::live_objects(&chain) })
    }

    fn files(&self, kind: ObjectKind, keep: &dyn Fn(&str) -> bool) -> Vec<&ObjectEntry> {
        self.live.values().filter(|entry| entry.kind == kind && keep(&entry.path)).collect()
    }
}

/// Registers `commands`, `sessions` and `access` with `ctx`; `keep` chooses files by path (partition
/// pruning on `dt=` before DataFusion sees them).
pub fn register(
    ctx: &SessionContext,
    store: &LakeStore,
    snapshot: &LakeSnapshot,
    keys: Keys,
    keep: &dyn Fn(&str) -> bool,
) -> anyhow::Result<()> {
    let url = Url::parse(LAKE_URL).context("lake url")?;
    let (engine_store, prefix) = store.engine_store();
    ctx.register_object_store(&url, engine_store);
    let commands = snapshot.files(ObjectKind::Commands, keep);
    let access = snapshot.files(ObjectKind::Access, keep);
    let encrypted = [(&commands, &ENCRYPTED_COLUMNS[..]), (&access, &ACCESS_ENCRYPTED_COLUMNS[..])];
    let wrapped = encrypted
        .into_iter()
        .flat_map(|(files, columns)| {
            files.iter().filter_map(move |entry| {
                Some((format!("{prefix}{}", entry.path), (entry.key.clone()?, columns)))
            })
        })
        .collect();
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

fn register_table(
    ctx: &SessionContext,
    name: &str,
    schema: SchemaRef,
    prefix: &str,
    files: &[&ObjectEntry],
) -> anyhow::Result<()> {
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
