//! The lake as query engines read it: only committed objects, each byte checked against what
//! the trusted chain committed before the engine sees it.
//!
//! [`VerifiedStore`] wraps the lake's object store for DataFusion. It lists and describes
//! only the objects it was given (the live table files of a [`Snapshot`](crate::trust::Snapshot)),
//! from their committed size, never from the bucket: a planted file is never read, and a
//! deleted one is an error naming it, not a shorter answer. A read of a file with block
//! digests ([`ObjectEntry::blocks`]) fetches the whole blocks around the range asked for and
//! checks each one, so a lookup that reads one row group of a large compacted file hashes that
//! row group, not the file; a file without them (one block or less, or written before block
//! digests) is read whole once, checked against its SHA-256, and served from memory.

use std::collections::HashMap;
use std::fmt;
use std::ops::Range;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{StreamExt as _, TryStreamExt as _};
use object_store::path::Path;
use object_store::{
    Attributes, CopyOptions, GetOptions, GetResult, GetResultPayload, ListResult, MultipartUpload,
    ObjectMeta, ObjectStore, ObjectStoreExt as _, PutMultipartOptions, PutOptions, PutPayload,
    PutResult,
};
use sessionlake_schemas::manifest::ObjectEntry;

use crate::store::sha256_hex;

/// Bytes of whole objects kept in memory after their check (files without block digests are
/// at most a block; older lakes' files may be larger).
const WHOLE_CACHE_BYTES: usize = 256 * 1024 * 1024;

/// Bytes of checked blocks kept in memory (see [`CheckedBlocks`]).
const CHECKED_CACHE_BYTES: usize = 256 * 1024 * 1024;

/// Name of this store in object_store's errors.
const STORE: &str = "sessionlake";

/// What the chain committed of one object.
#[derive(Debug, Clone)]
struct Committed {
    /// Full name for messages (`s3://bucket/prefix/commands/…`).
    name: String,
    size: u64,
    sha256: String,
    /// Block size and digests, if committed.
    blocks: Option<(u64, Vec<String>)>,
}

/// An object store that serves only committed objects, checked (see the module documentation).
pub struct VerifiedStore {
    inner: Arc<dyn ObjectStore>,
    committed: HashMap<Path, Committed>,
    /// Whole objects read and checked, by path, and their total size.
    whole: Mutex<(HashMap<Path, Bytes>, usize)>,
    /// Blocks read and checked.
    checked: Arc<CheckedBlocks>,
}

/// Blocks of committed objects already fetched and checked against their digests, by path and
/// block number, up to [`CHECKED_CACHE_BYTES`]: the stores of one command over one snapshot
/// share them (a search reads the same column chunks once for its windows and again for its
/// rows; the footer of a file is read in several calls), so each block is fetched and hashed
/// once. They hold the stored, encrypted bytes, in memory only.
#[derive(Debug, Default)]
pub struct CheckedBlocks {
    blocks: Mutex<BlockCache>,
}

/// Checked blocks by path and block number, and their total size.
type BlockCache = (HashMap<(Path, u64), Bytes>, usize);

impl CheckedBlocks {
    /// Returns `range` of `location` (blocks `first..=last` of `block_size`) if every block it
    /// touches was checked before.
    fn get(
        &self,
        location: &Path,
        block_size: u64,
        (first, last): (u64, u64),
        range: &Range<u64>,
    ) -> Option<Bytes> {
        let cache = self.blocks.lock().ok()?;
        let key = |index: u64| (location.clone(), index);
        if first == last {
            let block = cache.0.get(&key(first))?;
            let from = to_usize(range.start - first * block_size);
            let to = from + to_usize(range.end - range.start);
            return (to <= block.len()).then(|| block.slice(from..to));
        }
        let mut joined = Vec::with_capacity(to_usize(range.end - range.start));
        for index in first..=last {
            let block = cache.0.get(&key(index))?;
            let start = index * block_size;
            let from = range.start.max(start) - start;
            let to = (range.end.min(start + block_size) - start).min(block.len() as u64);
            joined.extend_from_slice(block.get(to_usize(from)..to_usize(to))?);
        }
        (joined.len() as u64 == range.end - range.start).then(|| Bytes::from(joined))
    }

    /// Keeps the checked blocks of `fetched`, which starts at block `first`.
    fn put(&self, location: &Path, block_size: u64, first: u64, fetched: &Bytes) {
        let Ok(mut cache) = self.blocks.lock() else { return };
        let (blocks, total) = &mut *cache;
        if *total + fetched.len() > CHECKED_CACHE_BYTES {
            blocks.clear();
            *total = 0;
        }
        let size = to_usize(block_size);
        for (offset, index) in (0..fetched.len()).step_by(size).zip(first..) {
            let block = fetched.slice(offset..(offset + size).min(fetched.len()));
            *total += block.len();
            if let Some(old) = blocks.insert((location.clone(), index), block) {
                *total -= old.len();
            }
        }
    }
}

impl fmt::Debug for VerifiedStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifiedStore").field("objects", &self.committed.len()).finish()
    }
}

impl fmt::Display for VerifiedStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VerifiedStore({})", self.inner)
    }
}

impl VerifiedStore {
    /// Serves `entries` of `inner`: each at `prefix` + its lake path (the engine's view, see
    /// [`crate::store::LakeStore::engine_store`]); `describe` names an object for messages.
    pub fn new<'a>(
        inner: Arc<dyn ObjectStore>,
        prefix: &str,
        entries: impl IntoIterator<Item = &'a ObjectEntry>,
        describe: impl Fn(&str) -> String,
    ) -> VerifiedStore {
        let committed = entries
            .into_iter()
            .filter_map(|entry| {
                let path = Path::parse(format!("{prefix}{}", entry.path)).ok()?;
                let blocks =
                    entry.blocks.as_ref().map(|blocks| (blocks.block_size, blocks.sha256.clone()));
                let committed = Committed {
                    name: describe(&entry.path),
                    size: entry.size,
                    sha256: entry.sha256.clone(),
                    blocks,
                };
                Some((path, committed))
            })
            .collect();
        VerifiedStore {
            inner,
            committed,
            whole: Mutex::new((HashMap::new(), 0)),
            checked: Arc::default(),
        }
    }

    /// Shares `checked` with the other stores of the same snapshot (see [`CheckedBlocks`]).
    pub fn with_checked(mut self, checked: Arc<CheckedBlocks>) -> VerifiedStore {
        self.checked = checked;
        self
    }

    fn committed(&self, location: &Path) -> object_store::Result<&Committed> {
        self.committed.get(location).ok_or_else(|| {
            failure(format!("{location} is not committed by the trusted manifest chain"))
        })
    }

    fn meta(location: &Path, committed: &Committed) -> ObjectMeta {
        ObjectMeta {
            location: location.clone(),
            last_modified: chrono::DateTime::UNIX_EPOCH,
            size: committed.size,
            e_tag: Some(committed.sha256.clone()),
            version: None,
        }
    }

    /// Reads `range` of the object, checked.
    async fn read(
        &self,
        location: &Path,
        committed: &Committed,
        range: Range<u64>,
    ) -> object_store::Result<Bytes> {
        match &committed.blocks {
            Some((block_size, digests)) if *block_size > 0 => {
                self.read_blocks(location, committed, *block_size, digests, range).await
            }
            _ => {
                let whole = self.read_whole(location, committed).await?;
                let (start, end) = (to_usize(range.start), to_usize(range.end));
                Ok(whole.slice(start..end))
            }
        }
    }

    async fn read_blocks(
        &self,
        location: &Path,
        committed: &Committed,
        block_size: u64,
        digests: &[String],
        range: Range<u64>,
    ) -> object_store::Result<Bytes> {
        let first = range.start / block_size;
        let last = range.end.saturating_sub(1) / block_size;
        if let Some(bytes) = self.checked.get(location, block_size, (first, last), &range) {
            return Ok(bytes);
        }
        let start = first * block_size;
        let end = ((last + 1) * block_size).min(committed.size);
        let fetched = self.fetch(location, committed, start..end).await?;
        if fetched.len() as u64 != end - start {
            return Err(altered(committed, format!("{} bytes at {start} read", fetched.len())));
        }
        for (index, block) in (first..=last).zip(fetched.chunks(to_usize(block_size))) {
            let expected = digests.get(to_usize(index)).ok_or_else(|| {
                altered(committed, format!("block {index} is past its committed blocks"))
            })?;
            let found = sha256_hex(block);
            if &found != expected {
                return Err(altered(
                    committed,
                    format!("block {index} hashes to {found}, committed {expected}"),
                ));
            }
        }
        self.checked.put(location, block_size, first, &fetched);
        let (from, to) = (to_usize(range.start - start), to_usize(range.end - start));
        Ok(fetched.slice(from..to))
    }

    async fn read_whole(
        &self,
        location: &Path,
        committed: &Committed,
    ) -> object_store::Result<Bytes> {
        if let Some(bytes) = self.cached(location) {
            return Ok(bytes);
        }
        let bytes = self.fetch(location, committed, 0..committed.size).await?;
        let found = sha256_hex(&bytes);
        if bytes.len() as u64 != committed.size || found != committed.sha256 {
            return Err(altered(committed, format!("{} bytes sha256 {found} found", bytes.len())));
        }
        if let Ok(mut cache) = self.whole.lock() {
            let (objects, total) = &mut *cache;
            if *total + bytes.len() > WHOLE_CACHE_BYTES {
                objects.clear();
                *total = 0;
            }
            *total += bytes.len();
            objects.insert(location.clone(), bytes.clone());
        }
        Ok(bytes)
    }

    fn cached(&self, location: &Path) -> Option<Bytes> {
        self.whole.lock().ok().and_then(|cache| cache.0.get(location).cloned())
    }

    async fn fetch(
        &self,
        location: &Path,
        committed: &Committed,
        range: Range<u64>,
    ) -> object_store::Result<Bytes> {
        if range.is_empty() {
            return Ok(Bytes::new());
        }
        match self.inner.get_range(location, range).await {
            Ok(bytes) => Ok(bytes),
            Err(object_store::Error::NotFound { .. }) => Err(failure(format!(
                "{} is missing: it was committed ({} bytes sha256 {}) and is no longer in the lake",
                committed.name, committed.size, committed.sha256
            ))),
            // A committed object cut short answers a range past its end with an error.
            Err(error) => Err(failure(format!("failed to read {}: {error}", committed.name))),
        }
    }
}

fn to_usize(value: u64) -> usize {
    usize::try_from(value).unwrap_or(usize::MAX)
}

fn failure(message: String) -> object_store::Error {
    object_store::Error::Generic { store: STORE, source: message.into() }
}

fn altered(committed: &Committed, detail: String) -> object_store::Error {
    failure(format!(
        "{} was altered: {detail}, not what was committed ({} bytes sha256 {})",
        committed.name, committed.size, committed.sha256
    ))
}

fn read_only() -> object_store::Error {
    object_store::Error::NotSupported { source: "the verified lake store only reads".into() }
}

#[async_trait]
impl ObjectStore for VerifiedStore {
    async fn put_opts(
        &self,
        _location: &Path,
        _payload: PutPayload,
        _opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        Err(read_only())
    }

    async fn put_multipart_opts(
        &self,
        _location: &Path,
        _opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        Err(read_only())
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        let committed = self.committed(location)?;
        let meta = Self::meta(location, committed);
        let range = match &options.range {
            None => 0..committed.size,
            Some(range) => range
                .as_range(committed.size)
                .map_err(|error| failure(format!("bad range of {}: {error}", committed.name)))?,
        };
        let bytes = if options.head {
            Bytes::new()
        } else {
            self.read(location, committed, range.clone()).await?
        };
        Ok(GetResult {
            payload: GetResultPayload::Stream(futures::stream::once(async { Ok(bytes) }).boxed()),
            meta,
            range,
            attributes: Attributes::default(),
        })
    }

    async fn get_ranges(
        &self,
        location: &Path,
        ranges: &[Range<u64>],
    ) -> object_store::Result<Vec<Bytes>> {
        let committed = self.committed(location)?;
        if let Some(range) = ranges.iter().find(|r| r.end > committed.size || r.start > r.end) {
            return Err(failure(format!(
                "range {range:?} is outside {} ({} bytes)",
                committed.name, committed.size
            )));
        }
        let Some((block_size, digests)) =
            committed.blocks.as_ref().filter(|(block_size, _)| *block_size > 0)
        else {
            // Checked whole once (then from memory): every range is a slice of it.
            let whole = self.read_whole(location, committed).await?;
            return Ok(ranges
                .iter()
                .map(|range| whole.slice(to_usize(range.start)..to_usize(range.end)))
                .collect());
        };
        // The whole blocks the ranges touch, as runs of adjacent blocks: each block is fetched
        // and hashed once, however many ranges (a row group's column chunks) fall in it.
        let aligned = |range: &Range<u64>| {
            let start = range.start / block_size * block_size;
            let end = range.end.div_ceil(*block_size).saturating_mul(*block_size);
            start..end.min(committed.size)
        };
        let mut spans: Vec<Range<u64>> = ranges.iter().map(aligned).collect();
        spans.sort_by_key(|span| span.start);
        let mut runs: Vec<Range<u64>> = Vec::new();
        for span in spans {
            match runs.last_mut() {
                Some(run) if span.start <= run.end => run.end = run.end.max(span.end),
                _ => runs.push(span),
            }
        }
        let mut fetched = Vec::with_capacity(runs.len());
        for run in runs {
            let bytes =
                self.read_blocks(location, committed, *block_size, digests, run.clone()).await?;
            fetched.push((run, bytes));
        }
        ranges
            .iter()
            .map(|range| {
                let (run, bytes) = fetched
                    .iter()
                    .find(|(run, _)| {
                        run.start <= range.start && range.end <= run.end.max(run.start)
                    })
                    .ok_or_else(|| {
                        failure(format!("range {range:?} of {} not read", committed.name))
                    })?;
                let from = to_usize(range.start - run.start);
                Ok(bytes.slice(from..from + to_usize(range.end - range.start)))
            })
            .collect()
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        locations.map(|_| Err(read_only())).boxed()
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        let mut listed: Vec<ObjectMeta> = self
            .committed
            .iter()
            .filter(|(path, _)| prefix.is_none_or(|prefix| path.prefix_matches(prefix)))
            .map(|(path, committed)| Self::meta(path, committed))
            .collect();
        listed.sort_by(|a, b| a.location.cmp(&b.location));
        futures::stream::iter(listed.into_iter().map(Ok)).boxed()
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        let depth = prefix.map_or(0, |prefix| prefix.parts().count());
        let mut objects = Vec::new();
        let mut common_prefixes = std::collections::BTreeSet::new();
        let listed: Vec<ObjectMeta> = self.list(prefix).try_collect().await?;
        for meta in listed {
            let parts: Vec<_> = meta.location.parts().collect();
            if parts.len() == depth + 1 {
                objects.push(meta);
            } else if parts.len() > depth + 1 {
                common_prefixes.insert(Path::from_iter(parts.into_iter().take(depth + 1)));
            }
        }
        Ok(ListResult { common_prefixes: common_prefixes.into_iter().collect(), objects })
    }

    async fn copy_opts(
        &self,
        _from: &Path,
        _to: &Path,
        _options: CopyOptions,
    ) -> object_store::Result<()> {
        Err(read_only())
    }
}

#[cfg(test)]
mod tests {
    use object_store::memory::InMemory;
    use sessionlake_schemas::manifest::ObjectKind;

    use super::*;
    use crate::store::{BLOCK_BYTES, digest_of};

    /// Stores `bytes` at `lake/<path>` and returns the entry a commit would hold.
    async fn put(inner: &dyn ObjectStore, path: &str, bytes: &[u8]) -> ObjectEntry {
        inner
            .put(&Path::from(format!("lake/{path}")), PutPayload::from(bytes.to_vec()))
            .await
            .expect("put");
        let (size, sha256, blocks) = digest_of(bytes);
        ObjectEntry {
            path: path.into(),
            size,
            sha256,
            kind: ObjectKind::Commands,
            sessions: vec![],
            key: None,
            note: None,
            blocks,
        }
    }

    fn verified(inner: &Arc<InMemory>, entries: &[ObjectEntry]) -> VerifiedStore {
        let inner: Arc<dyn ObjectStore> = Arc::clone(inner) as Arc<dyn ObjectStore>;
        VerifiedStore::new(inner, "lake/", entries, |path| format!("s3://b/lake/{path}"))
    }

    fn bytes_of(len: usize) -> Vec<u8> {
        (0..len).map(|i| u8::try_from(i % 251).expect("byte")).collect()
    }

    #[tokio::test]
    async fn test_ranges_are_checked_block_by_block() {
        let inner = Arc::new(InMemory::new());
        let block = usize::try_from(BLOCK_BYTES).expect("block");
        let content = bytes_of(3 * block + 100);
        let entry = put(&inner, "commands/big.parquet", &content).await;
        assert_eq!(entry.blocks.as_ref().map(|b| b.sha256.len()), Some(4));
        let small = put(&inner, "commands/small.parquet", b"PAR1 small").await;
        assert!(small.blocks.is_none());
        let store = verified(&inner, &[entry.clone(), small]);
        let path = Path::from("lake/commands/big.parquet");

        // Any range, across block boundaries or not, comes back as stored.
        let start = u64::try_from(block).expect("u64") - 10;
        for range in [0..10, start..start + 20, 5..u64::try_from(content.len()).expect("len")] {
            let read = store.get_range(&path, range.clone()).await.expect("range");
            let (from, to) = (to_usize(range.start), to_usize(range.end));
            assert_eq!(&read[..], &content[from..to], "{range:?}");
        }
        // Several ranges at once (two in one block, one across a boundary, one empty at the
        // end): each comes back as stored.
        let len = u64::try_from(content.len()).expect("len");
        let ranges = [3..9, 20..40, start..start + 30, 2 * start..2 * start + 5, len..len];
        let read = store.get_ranges(&path, &ranges).await.expect("ranges");
        for (range, bytes) in ranges.iter().zip(&read) {
            assert_eq!(
                &bytes[..],
                &content[to_usize(range.start)..to_usize(range.end)],
                "{range:?}"
            );
        }
        let small_path = Path::from("lake/commands/small.parquet");
        let read = store.get_ranges(&small_path, &[0..4, 5..10]).await.expect("small ranges");
        assert_eq!((&read[0][..], &read[1][..]), (&b"PAR1"[..], &b"small"[..]));
        let listed: Vec<ObjectMeta> = store.list(None).try_collect().await.expect("list");
        assert_eq!(listed.len(), 2);
        assert_eq!(store.head(&path).await.expect("head").size, entry.size);

        // A byte changed in the third block: reads of that block fail naming the object, reads
        // of the other blocks still succeed (a new snapshot's store: the one above checked
        // every block already, and serves them from memory).
        let mut altered = content.clone();
        altered[2 * block + 7] ^= 1;
        inner.put(&path, PutPayload::from(altered)).await.expect("alter");
        let store = verified(&inner, std::slice::from_ref(&entry));
        let error = store.get_range(&path, 0..10).await;
        assert!(error.is_ok(), "{error:?}");
        let block = u64::try_from(block).expect("u64");
        let error = store.get_range(&path, 2 * block..2 * block + 1).await.expect_err("altered");
        let message = error.to_string();
        assert!(message.contains("s3://b/lake/commands/big.parquet was altered"), "{message}");
        assert!(message.contains("block 2"), "{message}");
        let error = store.get_ranges(&path, &[0..10, 2 * block..2 * block + 1]).await;
        assert!(error.expect_err("altered").to_string().contains("block 2"));
    }

    /// The stores of one snapshot fetch and hash each block once: a range in blocks checked
    /// before (by another store sharing them) is served from memory, within one block or
    /// across two, and comes back as stored.
    #[tokio::test]
    async fn test_checked_blocks_are_fetched_once() {
        use std::sync::atomic::Ordering;
        let counting = Arc::new(crate::test_store::Flaky::default());
        let block = usize::try_from(BLOCK_BYTES).expect("block");
        let content = bytes_of(2 * block + 100);
        let path = Path::from("lake/commands/big.parquet");
        let entry = put(&*counting, "commands/big.parquet", &content).await;
        let checked = Arc::new(CheckedBlocks::default());
        let store = || {
            let inner = Arc::clone(&counting) as Arc<dyn ObjectStore>;
            VerifiedStore::new(inner, "lake/", [&entry], |path| path.to_string())
                .with_checked(Arc::clone(&checked))
        };
        let reads = || counting.reads.load(Ordering::Relaxed);
        let expect = |range: Range<u64>| &content[to_usize(range.start)..to_usize(range.end)];
        assert_eq!(&store().get_range(&path, 10..20).await.expect("read")[..], expect(10..20));
        assert_eq!(reads(), 1);
        let second = store();
        assert_eq!(&second.get_range(&path, 30..40).await.expect("read")[..], expect(30..40));
        assert_eq!(reads(), 1, "block 0 from memory");
        let edge = u64::try_from(block).expect("u64");
        let read = second.get_ranges(&path, &[5..edge + 5, 7..9]).await.expect("read");
        assert_eq!(&read[0][..], expect(5..edge + 5));
        assert_eq!(reads(), 2, "block 1 fetched");
        let across = edge - 5..edge + 5;
        assert_eq!(
            &second.get_range(&path, across.clone()).await.expect("read")[..],
            expect(across)
        );
        let end = u64::try_from(content.len()).expect("len");
        assert_eq!(
            &second.get_range(&path, end - 50..end).await.expect("read")[..],
            expect(end - 50..end)
        );
        assert_eq!(reads(), 3, "only block 2 fetched");
    }

    #[tokio::test]
    async fn test_small_missing_and_planted_objects() {
        let inner = Arc::new(InMemory::new());
        let small = put(&inner, "sessions/s.parquet", b"PAR1 committed").await;
        let store = verified(&inner, std::slice::from_ref(&small));
        let path = Path::from("lake/sessions/s.parquet");
        assert_eq!(&store.get_range(&path, 5..14).await.expect("read")[..], b"committed");

        // Same size, other bytes: the whole-object check fails (once read from the store).
        let fresh = verified(&inner, std::slice::from_ref(&small));
        inner.put(&path, PutPayload::from(&b"PAR1 forged!!!"[..])).await.expect("rewrite");
        let error = fresh.get_range(&path, 0..4).await.expect_err("altered");
        assert!(error.to_string().contains("was altered"), "{error}");

        // Deleted: an error naming it, never an empty answer.
        inner.delete(&path).await.expect("delete");
        let error = verified(&inner, &[small]).get_range(&path, 0..4).await.expect_err("gone");
        assert!(error.to_string().contains("s3://b/lake/sessions/s.parquet is missing"), "{error}");

        // Planted: not listed, not read.
        let planted = Path::from("lake/sessions/planted.parquet");
        inner.put(&planted, PutPayload::from(&b"PAR1"[..])).await.expect("plant");
        let store = verified(&inner, &[]);
        let listed: Vec<ObjectMeta> = store.list(None).try_collect().await.expect("list");
        assert!(listed.is_empty());
        let error = store.get_range(&planted, 0..4).await.expect_err("planted");
        assert!(error.to_string().contains("not committed"), "{error}");
    }
}
