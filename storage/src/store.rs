//! The lake's object store: a local folder or `s3://bucket/prefix`, through `object_store`.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use futures::{StreamExt as _, TryStreamExt as _};
use object_store::path::Path as ObjectPath;
use object_store::prefix::PrefixStore;
use object_store::{
    ObjectStore, ObjectStoreExt as _, PutMode, PutOptions, PutPayload, WriteMultipart,
};
use ring::digest::{SHA256, digest};

use sessionlake_schemas::manifest::BlockDigests;

use crate::error::{LakeError, LakeErrorKind, LakeResult};

/// Where a lake lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LakeLocation {
    /// A folder on this machine.
    Local(std::path::PathBuf),
    /// A bucket and a key prefix (possibly empty) on S3.
    S3 {
        /// Bucket name.
        bucket: String,
        /// Key prefix without leading or trailing `/`.
        prefix: String,
    },
}

impl LakeLocation {
    /// Parses `./lake`, `/abs/lake`, `file:///abs/lake` or `s3://bucket/prefix`.
    pub fn parse(text: &str) -> LakeResult<LakeLocation> {
        if let Some(rest) = text.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(LakeError::config(format!("lake {text} names no bucket")));
            }
            return Ok(LakeLocation::S3 {
                bucket: bucket.to_string(),
                prefix: prefix.trim_matches('/').to_string(),
            });
        }
        let path = text.strip_prefix("file://").unwrap_or(text);
        if path.is_empty() || text.contains("://") && !text.starts_with("file://") {
            return Err(LakeError::config(format!(
                "lake {text:?} is neither a folder nor s3://bucket/prefix"
            )));
        }
        Ok(LakeLocation::Local(path.into()))
    }
}

impl fmt::Display for LakeLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LakeLocation::Local(path) => write!(f, "{}", path.display()),
            LakeLocation::S3 { bucket, prefix } if prefix.is_empty() => write!(f, "s3://{bucket}"),
            LakeLocation::S3 { bucket, prefix } => write!(f, "s3://{bucket}/{prefix}"),
        }
    }
}

/// What a write stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredObject {
    /// Path inside the lake.
    pub path: String,
    /// Bytes stored.
    pub size: u64,
    /// SHA-256 (hex) of the stored bytes.
    pub sha256: String,
    /// SHA-256 of each [`BLOCK_BYTES`] block, when the object is larger than one block.
    pub blocks: Option<BlockDigests>,
}

impl StoredObject {
    /// Returns the block digests an entry of `kind` commits: a table's, when it has more than
    /// one block (see [`ObjectEntry::blocks`](sessionlake_schemas::manifest::ObjectEntry)).
    pub fn blocks_for(
        &self,
        kind: sessionlake_schemas::manifest::ObjectKind,
    ) -> Option<BlockDigests> {
        self.blocks.clone().filter(|_| kind.is_table())
    }

    /// Returns the manifest entry of this object as a `kind` holding bytes of `sessions`: its
    /// block digests where `kind` commits them ([`StoredObject::blocks_for`]), no wrapped key
    /// or note (set those where the object has them).
    pub fn into_entry(
        self,
        kind: sessionlake_schemas::manifest::ObjectKind,
        sessions: Vec<String>,
    ) -> sessionlake_schemas::manifest::ObjectEntry {
        let blocks = self.blocks_for(kind);
        sessionlake_schemas::manifest::ObjectEntry {
            blocks,
            ..sessionlake_schemas::manifest::ObjectEntry::new(
                self.path,
                self.size,
                self.sha256,
                kind,
                sessions,
            )
        }
    }
}

/// Size of the blocks whose digests a table file's entry commits: a reader fetches and checks
/// whole blocks, so a read of a few pages costs at most two blocks more.
pub const BLOCK_BYTES: u64 = 256 * 1024;

/// A lake's objects. Paths are relative to the lake's root.
#[derive(Clone)]
pub struct LakeStore {
    location: LakeLocation,
    store: Arc<dyn ObjectStore>,
    /// The store without the lake's key prefix, and that prefix (`""` or `"lake/"`), for
    /// query engines: object_store 0.13's `PrefixStore::head` returns the unstripped location,
    /// which DataFusion's listing then filters out.
    engine: (Arc<dyn ObjectStore>, String),
    /// On S3: writes commits under Object Lock when the bucket has it.
    lock: Option<Arc<crate::object_lock::CommitLock>>,
}

impl fmt::Debug for LakeStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LakeStore").field("location", &self.location.to_string()).finish()
    }
}

/// A part file of an interrupted upload on a local lake (see [`LakeStore::upload_parts`]).
#[derive(Debug, Clone)]
pub struct UploadPart {
    /// The object the upload was for.
    pub object: String,
    /// The part file.
    pub file: std::path::PathBuf,
    /// µs since it was last written, if known.
    pub age: Option<i64>,
}

/// Returns the object a local upload's part file (`name#N`) was for, if `name` is one.
pub fn upload_part_of(name: &str) -> Option<&str> {
    let (object, number) = name.rsplit_once('#')?;
    (!object.is_empty() && !number.is_empty() && number.bytes().all(|b| b.is_ascii_digit()))
        .then_some(object)
}

/// Returns the SHA-256 of `bytes` in lower-case hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(digest(&SHA256, bytes))
}

/// SHA-256 and size of bytes that come in pieces, and the SHA-256 of each [`BLOCK_BYTES`]
/// block of them.
#[derive(Clone)]
pub struct StreamDigest {
    context: ring::digest::Context,
    len: u64,
    block: ring::digest::Context,
    blocks: Vec<String>,
}

impl Default for StreamDigest {
    fn default() -> Self {
        StreamDigest {
            context: ring::digest::Context::new(&SHA256),
            len: 0,
            block: ring::digest::Context::new(&SHA256),
            blocks: Vec::new(),
        }
    }
}

impl fmt::Debug for StreamDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamDigest").field("len", &self.len).finish_non_exhaustive()
    }
}

impl StreamDigest {
    /// Takes the next bytes.
    pub fn update(&mut self, mut bytes: &[u8]) {
        self.context.update(bytes);
        while !bytes.is_empty() {
            let in_block = self.len % BLOCK_BYTES;
            if in_block == 0 && self.len > 0 {
                let done = std::mem::replace(&mut self.block, ring::digest::Context::new(&SHA256));
                self.blocks.push(hex::encode(done.finish()));
            }
            let room = usize::try_from(BLOCK_BYTES - in_block).unwrap_or(usize::MAX);
            let (now, rest) = bytes.split_at(room.min(bytes.len()));
            self.block.update(now);
            self.len += now.len() as u64;
            bytes = rest;
        }
    }

    /// Returns the size and the SHA-256 (hex) of everything taken.
    pub fn finish(self) -> (u64, String) {
        (self.len, hex::encode(self.context.finish()))
    }

    /// Returns the size, the SHA-256 (hex) of everything taken, and the block digests when
    /// there was more than one block.
    pub fn finish_with_blocks(mut self) -> (u64, String, Option<BlockDigests>) {
        let blocks = (self.len > BLOCK_BYTES).then(|| {
            self.blocks.push(hex::encode(self.block.finish()));
            BlockDigests { block_size: BLOCK_BYTES, sha256: self.blocks }
        });
        (self.len, hex::encode(self.context.finish()), blocks)
    }
}

/// Returns the size, SHA-256 and block digests of `bytes` (see [`StreamDigest`]).
pub fn digest_of(bytes: &[u8]) -> (u64, String, Option<BlockDigests>) {
    let mut digest = StreamDigest::default();
    digest.update(bytes);
    digest.finish_with_blocks()
}

/// Size of the parts of an upload in parts ([`LakeStore::upload`]); S3 takes parts of 5 MiB
/// and more (except the last).
pub const UPLOAD_PART_BYTES: usize = 8 * 1024 * 1024;

/// Parts of one upload sent at once.
const UPLOAD_PARTS_IN_FLIGHT: usize = 2;

/// An object written as a stream ([`LakeStore::upload`]): bytes are buffered up to one part;
/// an object that stays smaller is written with one put when it is finished, a larger one is
/// uploaded in parts as its bytes come (S3 multipart upload), so memory stays at a few parts
/// whatever its size. Nothing is at the path until [`ObjectUpload::finish`].
pub struct ObjectUpload<'a> {
    store: &'a LakeStore,
    path: String,
    buffered: Vec<u8>,
    parts: Option<WriteMultipart>,
    digest: StreamDigest,
}

impl ObjectUpload<'_> {
    /// Writes the next bytes of the object.
    pub async fn write(&mut self, bytes: &[u8]) -> LakeResult<()> {
        self.digest.update(bytes);
        let fail = |error| LakeError::store("upload", &self.store.describe(&self.path), error);
        if let Some(parts) = self.parts.as_mut() {
            parts.wait_for_capacity(UPLOAD_PARTS_IN_FLIGHT).await.map_err(fail)?;
            parts.write(bytes);
            return Ok(());
        }
        self.buffered.extend_from_slice(bytes);
        if self.buffered.len() >= UPLOAD_PART_BYTES {
            let upload = self
                .store
                .store
                .put_multipart(&self.store.path(&self.path)?)
                .await
                .map_err(fail)?;
            let mut parts = WriteMultipart::new_with_chunk_size(upload, UPLOAD_PART_BYTES);
            parts.write(&std::mem::take(&mut self.buffered));
            self.parts = Some(parts);
        }
        Ok(())
    }

    /// Completes the object and returns what was stored.
    pub async fn finish(self) -> LakeResult<StoredObject> {
        let ObjectUpload { store, path, buffered, parts, digest } = self;
        let Some(parts) = parts else {
            return store.put(&path, Bytes::from(buffered)).await;
        };
        parts
            .finish()
            .await
            .map_err(|error| LakeError::store("upload", &store.describe(&path), error))?;
        let (size, sha256, blocks) = digest.finish_with_blocks();
        Ok(StoredObject { path, size, sha256, blocks })
    }

    /// Abandons the upload: the parts sent are discarded (best effort), nothing is stored.
    pub async fn abort(self) {
        if let Some(parts) = self.parts
            && let Err(error) = parts.abort().await
        {
            tracing::warn!(object = %self.store.describe(&self.path), error = %error, "upload not aborted");
        }
    }
}

impl LakeStore {
    /// Opens the lake at `location`. A local folder is created if absent; S3 uses `sdk_config`
    /// for region, endpoint (`AWS_ENDPOINT_URL`) and credentials.
    pub fn open(
        location: &LakeLocation,
        sdk_config: Option<&aws_config::SdkConfig>,
    ) -> LakeResult<LakeStore> {
        let mut lock = None;
        let (store, engine): (Arc<dyn ObjectStore>, (Arc<dyn ObjectStore>, String)) = match location
        {
            LakeLocation::Local(path) => {
                std::fs::create_dir_all(path).map_err(|error| {
                    LakeError::config(format!(
                        "failed to create lake folder {}: {error}",
                        path.display()
                    ))
                })?;
                let local = object_store::local::LocalFileSystem::new_with_prefix(path)
                    .map_err(|error| LakeError::store("open", &location.to_string(), error))?;
                let local: Arc<dyn ObjectStore> = Arc::new(local);
                (Arc::clone(&local), (local, String::new()))
            }
            LakeLocation::S3 { bucket, prefix } => {
                let config = sdk_config.ok_or_else(|| {
                    LakeError::config(format!("lake {location} needs AWS configuration"))
                })?;
                let s3 = crate::aws::object_store_for_bucket(config, bucket)?;
                lock = Some(crate::object_lock::CommitLock::new(config, bucket, prefix));
                if prefix.is_empty() {
                    (Arc::clone(&s3), (s3, String::new()))
                } else {
                    let prefixed: Arc<dyn ObjectStore> =
                        Arc::new(PrefixStore::new(Arc::clone(&s3), prefix.as_str()));
                    (prefixed, (s3, format!("{prefix}/")))
                }
            }
        };
        Ok(LakeStore { location: location.clone(), store, engine, lock })
    }

    /// Returns the store with commits locked by `settings` on an S3 bucket with Object Lock
    /// (see [`crate::object_lock`]); a local lake is unchanged.
    pub fn with_object_lock(mut self, settings: crate::object_lock::ObjectLockSettings) -> Self {
        self.lock = self.lock.map(|lock| lock.with_settings(settings));
        self
    }

    /// Returns an empty lake in memory, for unit tests.
    #[cfg(any(test, feature = "testsuite"))]
    pub fn in_memory() -> LakeStore {
        let location = LakeLocation::Local(std::path::PathBuf::from("memory-lake"));
        LakeStore::from_object_store(location, Arc::new(object_store::memory::InMemory::new()))
    }

    /// Returns a store over an arbitrary `object_store` (tests use `InMemory`).
    pub fn from_object_store(location: LakeLocation, store: Arc<dyn ObjectStore>) -> LakeStore {
        LakeStore { location, engine: (Arc::clone(&store), String::new()), store, lock: None }
    }

    /// Returns where the lake lives.
    pub fn location(&self) -> &LakeLocation {
        &self.location
    }

    /// Returns the object store and the key prefix a query engine should use: lake path `p`
    /// is object `<prefix><p>` in that store.
    pub fn engine_store(&self) -> (Arc<dyn ObjectStore>, &str) {
        (Arc::clone(&self.engine.0), &self.engine.1)
    }

    fn path(&self, path: &str) -> LakeResult<ObjectPath> {
        ObjectPath::parse(path)
            .map_err(|error| LakeError::format(format!("bad lake path {path:?}: {error}")))
    }

    /// Writes `bytes` at `path`, replacing what is there.
    pub async fn put(&self, path: &str, bytes: Bytes) -> LakeResult<StoredObject> {
        let (size, sha256, blocks) = digest_of(&bytes);
        let stored = StoredObject { path: path.to_string(), size, sha256, blocks };
        self.store
            .put(&self.path(path)?, PutPayload::from_bytes(bytes))
            .await
            .map_err(|error| LakeError::store("write", &self.describe(path), error))?;
        Ok(stored)
    }

    /// Starts writing the object at `path` as a stream (see [`ObjectUpload`]).
    pub fn upload(&self, path: &str) -> ObjectUpload<'_> {
        ObjectUpload {
            store: self,
            path: path.to_string(),
            buffered: Vec::new(),
            parts: None,
            digest: StreamDigest::default(),
        }
    }

    /// Writes `bytes` at `path` only if nothing is there (S3 `If-None-Match: *`); an
    /// [`LakeErrorKind::AlreadyExists`] error when another writer was first.
    pub async fn put_new(&self, path: &str, bytes: Bytes) -> LakeResult<StoredObject> {
        let (size, sha256, blocks) = digest_of(&bytes);
        let stored = StoredObject { path: path.to_string(), size, sha256, blocks };
        let options = PutOptions { mode: PutMode::Create, ..Default::default() };
        self.store
            .put_opts(&self.path(path)?, PutPayload::from_bytes(bytes), options)
            .await
            .map_err(|error| LakeError::store("create", &self.describe(path), error))?;
        Ok(stored)
    }

    /// Creates a commit object (a manifest, a checkpoint) like [`LakeStore::put_new`]; on an
    /// S3 lake whose bucket has Object Lock, with the retention of the lake's settings, so that
    /// the committed version cannot be deleted within it.
    pub async fn put_commit(&self, path: &str, bytes: Bytes) -> LakeResult<StoredObject> {
        debug_assert!(crate::object_lock::is_commit_path(path), "{path} is not a commit");
        let Some(lock) = &self.lock else {
            return self.put_new(path, bytes).await;
        };
        let (size, sha256, blocks) = digest_of(&bytes);
        if lock.put_new_locked(path, bytes.clone()).await? {
            return Ok(StoredObject { path: path.to_string(), size, sha256, blocks });
        }
        self.put_new(path, bytes).await
    }

    /// Lists the stored versions of the objects under `folder` (a commit folder such as
    /// `manifest`) whose paths sort after `after` (all with `None`), on an S3 lake whose bucket
    /// has Object Lock; `None` elsewhere (a local lake, a bucket without Object Lock).
    pub async fn commit_versions(
        &self,
        folder: &str,
        after: Option<&str>,
    ) -> LakeResult<Option<Vec<crate::object_lock::CommitVersions>>> {
        match &self.lock {
            Some(lock) => lock.versions(folder, after).await,
            None => Ok(None),
        }
    }

    /// Reads the object at `path`.
    pub async fn get(&self, path: &str) -> LakeResult<Bytes> {
        let result = self
            .store
            .get(&self.path(path)?)
            .await
            .map_err(|error| LakeError::store("read", &self.describe(path), error))?;
        result.bytes().await.map_err(|error| LakeError::store("read", &self.describe(path), error))
    }

    /// Reads a committed object and checks its size and SHA-256 against its manifest entry.
    pub async fn get_committed(
        &self,
        entry: &sessionlake_schemas::manifest::ObjectEntry,
    ) -> LakeResult<Bytes> {
        let stored = self.get(&entry.path).await?;
        let sha = sha256_hex(&stored);
        if sha != entry.sha256 || stored.len() as u64 != entry.size {
            return Err(LakeError::integrity(format!(
                "{} was altered: {} bytes sha256 {sha}, committed {} bytes sha256 {}",
                self.describe(&entry.path),
                stored.len(),
                entry.size,
                entry.sha256
            )));
        }
        Ok(stored)
    }

    /// Reads bytes `range` of the object at `path` (the range must lie within the object).
    pub async fn get_range(&self, path: &str, range: std::ops::Range<u64>) -> LakeResult<Bytes> {
        self.store
            .get_range(&self.path(path)?, range)
            .await
            .map_err(|error| LakeError::store("read", &self.describe(path), error))
    }

    /// Returns whether an object is stored at `path` (its metadata only: nothing is read).
    pub async fn exists(&self, path: &str) -> LakeResult<bool> {
        match self.store.head(&self.path(path)?).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(error) => Err(LakeError::store("stat", &self.describe(path), error)),
        }
    }

    /// Reads the object at `path`, or `None` if there is none.
    pub async fn get_opt(&self, path: &str) -> LakeResult<Option<Bytes>> {
        match self.get(path).await {
            Ok(bytes) => Ok(Some(bytes)),
            Err(error) if error.kind() == LakeErrorKind::NotFound => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// Returns the bytes of the object at `path` as a stream of chunks, as they arrive (memory
    /// does not grow with the object).
    pub async fn get_stream(
        &self,
        path: &str,
    ) -> LakeResult<futures::stream::BoxStream<'static, LakeResult<Bytes>>> {
        let result = self
            .store
            .get(&self.path(path)?)
            .await
            .map_err(|error| LakeError::store("read", &self.describe(path), error))?;
        let described = self.describe(path);
        Ok(Box::pin(
            result.into_stream().map_err(move |error| LakeError::store("read", &described, error)),
        ))
    }

    /// Returns the size and SHA-256 (hex) of the object at `path`, or `None` if there is none.
    /// The bytes are hashed as they stream in, so memory does not grow with the object, and
    /// several objects hash at once on a multi-threaded runtime.
    pub async fn hash(&self, path: &str) -> LakeResult<Option<(u64, String)>> {
        let result = match self.store.get(&self.path(path)?).await {
            Ok(result) => result,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(error) => return Err(LakeError::store("read", &self.describe(path), error)),
        };
        let mut chunks = result.into_stream();
        let mut digest = StreamDigest::default();
        while let Some(chunk) = chunks
            .try_next()
            .await
            .map_err(|error| LakeError::store("read", &self.describe(path), error))?
        {
            digest.update(&chunk);
        }
        Ok(Some(digest.finish()))
    }

    /// Lists every object under `prefix` (a folder such as `manifest`), with sizes. On a local
    /// lake, a file the store cannot name (a name that is not UTF-8) is left out with a
    /// warning instead of failing the listing: `sessionlake verify` names every such file
    /// (see [`LakeStore::unnameable_files`]).
    pub async fn list(&self, prefix: &str) -> LakeResult<Vec<(String, u64)>> {
        let prefix_path = self.path(prefix)?;
        let listing = self.store.list(Some(&prefix_path));
        if !matches!(self.location, LakeLocation::Local(_)) {
            return self.listed(prefix, listing.try_collect().await);
        }
        let results: Vec<object_store::Result<object_store::ObjectMeta>> = listing.collect().await;
        let mut objects = Vec::new();
        for result in results {
            match result {
                Ok(meta) => objects.push(meta),
                Err(error @ object_store::Error::NotFound { .. }) => {
                    return self.listed(prefix, Err(error));
                }
                Err(error) => {
                    tracing::warn!(folder = prefix, %error, "a file the store cannot name was left out");
                }
            }
        }
        self.listed(prefix, Ok(objects))
    }

    /// On a local lake, returns every file under folder `prefix` (symbolic links and other
    /// non-folders too), with its path relative to the lake; none on S3.
    fn local_files(&self, prefix: &str) -> Vec<(std::fs::DirEntry, std::path::PathBuf)> {
        let LakeLocation::Local(root) = &self.location else { return Vec::new() };
        let mut files = Vec::new();
        let mut stack = vec![root.join(prefix)];
        while let Some(dir) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else { continue };
            for entry in entries.flatten() {
                let path = entry.path();
                if entry.file_type().is_ok_and(|kind| kind.is_dir()) {
                    stack.push(path);
                } else {
                    let relative = path.strip_prefix(root).unwrap_or(&path).to_path_buf();
                    files.push((entry, relative));
                }
            }
        }
        files
    }

    /// On a local lake, returns the part files of interrupted uploads under `prefix`:
    /// object_store writes `name#N` and renames it into place, so a writer killed mid-upload
    /// leaves one, which no listing shows. Each with the object name it was for and its age
    /// (µs since it was last written; `None` when unknown).
    pub fn upload_parts(&self, prefix: &str) -> Vec<UploadPart> {
        let now = std::time::SystemTime::now();
        self.local_files(prefix)
            .into_iter()
            .filter_map(|(entry, relative)| {
                let object = upload_part_of(relative.to_str()?)?.to_string();
                let age = entry
                    .metadata()
                    .and_then(|meta| meta.modified())
                    .ok()
                    .and_then(|modified| now.duration_since(modified).ok())
                    .map(|age| i64::try_from(age.as_micros()).unwrap_or(i64::MAX));
                Some(UploadPart { object, file: entry.path(), age })
            })
            .collect()
    }

    /// On a local lake, returns the files under `prefix` that a listing leaves out (a name
    /// that is not UTF-8, or one the store skips such as `name#1`), relative to the lake and
    /// printed escaped; none on S3, where every key is listed.
    pub fn unnameable_files(&self, prefix: &str, listed: &BTreeSet<&str>) -> Vec<String> {
        let mut found: Vec<String> = self
            .local_files(prefix)
            .into_iter()
            .filter_map(|(_, relative)| match relative.to_str() {
                Some(name) if listed.contains(name) => None,
                Some(name) => Some(format!("{name:?}")),
                None => Some(format!("{:?}", relative.as_os_str())),
            })
            .collect();
        found.sort();
        found
    }

    /// Returns whether any object is stored under `prefix`: the first of a listing only (one
    /// request, whatever the folder holds).
    pub async fn holds_any(&self, prefix: &str) -> LakeResult<bool> {
        let prefix_path = self.path(prefix)?;
        match self.store.list(Some(&prefix_path)).next().await {
            None | Some(Err(object_store::Error::NotFound { .. })) => Ok(false),
            Some(Ok(_)) => Ok(true),
            Some(Err(error)) => Err(LakeError::store("list", prefix, error)),
        }
    }

    /// Lists the objects directly in folder `prefix`, not in its sub-folders, with sizes.
    pub async fn list_shallow(&self, prefix: &str) -> LakeResult<Vec<(String, u64)>> {
        let prefix_path = self.path(prefix)?;
        let listed = self.store.list_with_delimiter(Some(&prefix_path)).await;
        self.listed(prefix, listed.map(|listed| listed.objects))
    }

    /// Lists the objects under `prefix` whose path sorts after `offset` (S3 `start-after`:
    /// what comes before is not even listed), with sizes.
    pub async fn list_after(&self, prefix: &str, offset: &str) -> LakeResult<Vec<(String, u64)>> {
        let prefix_path = self.path(prefix)?;
        let offset = self.path(offset)?;
        let listed = self.store.list_with_offset(Some(&prefix_path), &offset).try_collect().await;
        self.listed(prefix, listed)
    }

    /// Paths and sizes of a listing of `prefix`, sorted.
    fn listed(
        &self,
        prefix: &str,
        objects: object_store::Result<Vec<object_store::ObjectMeta>>,
    ) -> LakeResult<Vec<(String, u64)>> {
        let objects =
            objects.map_err(|error| LakeError::store("list", &self.describe(prefix), error))?;
        let mut listed: Vec<(String, u64)> =
            objects.into_iter().map(|meta| (meta.location.to_string(), meta.size)).collect();
        listed.sort();
        Ok(listed)
    }

    /// Deletes the object at `path`; deleting nothing is not an error.
    pub async fn delete(&self, path: &str) -> LakeResult<()> {
        match self.store.delete(&self.path(path)?).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(error) => Err(LakeError::store("delete", &self.describe(path), error)),
        }
    }

    /// Returns a full name for messages: `s3://bucket/prefix/path` or `lake/path`.
    pub fn describe(&self, path: &str) -> String {
        format!("{}/{path}", self.location)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_parse_locations() {
        assert_eq!(
            LakeLocation::parse("s3://b/p/q/").expect("s3"),
            LakeLocation::S3 { bucket: "b".into(), prefix: "p/q".into() }
        );
        assert_eq!(
            LakeLocation::parse("./lake").expect("local"),
            LakeLocation::Local("./lake".into())
        );
        assert!(LakeLocation::parse("s3:///x").is_err());
        assert!(LakeLocation::parse("gs://b").is_err());
    }

    #[tokio::test]
    async fn test_put_new_refuses_a_second_writer() {
        let dir = tempfile::tempdir().expect("tempdir");
        let location = LakeLocation::Local(dir.path().to_path_buf());
        let store = LakeStore::open(&location, None).expect("open");
        store.put_new("manifest/1.json", Bytes::from_static(b"a")).await.expect("first");
        let error =
            store.put_new("manifest/1.json", Bytes::from_static(b"b")).await.expect_err("second");
        assert_eq!(error.kind(), LakeErrorKind::AlreadyExists);
        assert_eq!(store.get("manifest/1.json").await.expect("get"), Bytes::from_static(b"a"));
        assert_eq!(
            store.list("manifest").await.expect("list"),
            vec![("manifest/1.json".into(), 1)]
        );
    }

    #[test]
    fn test_block_digests_cover_every_block_however_the_bytes_come() {
        let block = usize::try_from(BLOCK_BYTES).expect("block");
        for len in [0, 1, block, block + 1, 2 * block, 3 * block - 1] {
            let bytes: Vec<u8> = (0..len).map(|i| (i % 253) as u8).collect();
            let (size, sha, blocks) = digest_of(&bytes);
            assert_eq!((size, sha.clone()), (len as u64, sha256_hex(&bytes)), "{len}");
            let expected: Vec<String> = bytes.chunks(block).map(sha256_hex).collect();
            match blocks {
                Some(blocks) => {
                    assert!(len > block, "{len}");
                    assert_eq!(blocks.block_size, BLOCK_BYTES);
                    assert_eq!(blocks.sha256, expected, "{len}");
                }
                None => assert!(len <= block, "{len}"),
            }
            // Fed in odd pieces, the same digests.
            let mut digest = StreamDigest::default();
            for piece in bytes.chunks(7919) {
                digest.update(piece);
            }
            assert_eq!(digest.finish_with_blocks(), digest_of(&bytes), "{len} in pieces");
        }
    }

    #[tokio::test]
    async fn test_hash_streams_what_put_stored() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store =
            LakeStore::open(&LakeLocation::Local(dir.path().to_path_buf()), None).expect("open");
        let bytes: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let stored = store.put("raw/x.sle", Bytes::from(bytes)).await.expect("put");
        assert_eq!(
            store.hash("raw/x.sle").await.expect("hash"),
            Some((stored.size, stored.sha256))
        );
        assert_eq!(store.hash("raw/none.sle").await.expect("hash"), None);
    }
}
