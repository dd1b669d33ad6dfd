//! A store for unit tests: in memory, counting reads, losing responses on request.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use async_trait::async_trait;
use futures::stream::BoxStream;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult,
};
use sessionlake_schemas::paths;

/// An in-memory store that counts the objects read from it, and can lose the response of a
/// manifest's put (the put lands) and then fail the reads of manifests too.
#[derive(Debug, Default)]
pub(crate) struct Flaky {
    inner: InMemory,
    /// Objects read.
    pub(crate) reads: AtomicUsize,
    /// A manifest put lands, and its caller gets an error.
    pub(crate) lose_manifest_response: AtomicBool,
    /// A lost put response makes manifest reads fail from then on.
    pub(crate) then_fail_manifest_reads: AtomicBool,
    /// Manifest reads fail.
    pub(crate) failing_manifest_reads: AtomicBool,
}

impl std::fmt::Display for Flaky {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Flaky")
    }
}

fn lost() -> object_store::Error {
    object_store::Error::Generic { store: "Flaky", source: "connection reset".into() }
}

#[async_trait]
impl ObjectStore for Flaky {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        let put = self.inner.put_opts(location, payload, opts).await?;
        let manifest = location.as_ref().starts_with(paths::MANIFEST_DIR);
        if manifest && self.lose_manifest_response.load(Ordering::SeqCst) {
            if self.then_fail_manifest_reads.load(Ordering::SeqCst) {
                self.failing_manifest_reads.store(true, Ordering::SeqCst);
            }
            return Err(lost());
        }
        Ok(put)
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        self.reads.fetch_add(1, Ordering::Relaxed);
        let manifest = location.as_ref().starts_with(paths::MANIFEST_DIR);
        if manifest && self.failing_manifest_reads.load(Ordering::SeqCst) {
            return Err(lost());
        }
        self.inner.get_opts(location, options).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list_with_offset(prefix, offset)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        self.inner.copy_opts(from, to, options).await
    }
}
