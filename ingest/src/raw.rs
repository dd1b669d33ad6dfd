//! An input's original bytes, read as a stream: parsed and hashed in one pass, then
//! compressed, sealed and uploaded in a second, so that memory does not grow with the size of
//! one transcript (issues 8 and 9).
//!
//! Two passes, because the raw object's lake path holds the session's partition date, which
//! only parsing tells. The first pass ([`parse_raw`]) feeds the bytes to the indexer's
//! [`SessionParser`] and takes their SHA-256; the second ([`seal_raw`]) reads them again
//! through zstd and the envelope into an upload in parts ([`ObjectUpload`]), and refuses to
//! finish it unless the bytes are those the first pass parsed (same size and SHA-256). An S3
//! object is read both times at the ETag it had when fetched (`If-Match`): one rewritten in
//! between fails the read instead of mixing two versions, and is read again at the next poll.
//!
//! Reading, parsing and sealing run at once: an async task reads chunks and hands them over a
//! bounded channel to a blocking thread (parser, or zstd and AEAD), which hands sealed bytes
//! over another bounded channel to the upload.
//!
//! An object small enough to hold ([`Raw::held_up_to`]) is read once instead, into memory,
//! and hashed once: both passes read it from there (a transcript on S3 is fetched once, not
//! twice).
//!
//! A transcript too big to hold its rows in memory (a session of a million commands) is parsed
//! in both passes instead: the first holds no row ([`parse_raw`] with `hold_rows: false`, the
//! parser's `planning`), the second parses the bytes it seals again and writes the `commands`
//! file row group by row group as the rows come ([`Replay`], the parser's `replaying`), into an
//! upload of its own. Memory then holds a row group, whatever the number of rows.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context as _;
use bytes::Bytes;
use sessionlake_indexer::{
    InputForm, ParseError, ParsedSession, ReplayPlan, SessionContext, SessionParser,
};
use sessionlake_schemas::envelope::WrappedKey;
use sessionlake_storage::DataKey;
use sessionlake_storage::envelope::RawSealer;
use sessionlake_storage::store::{LakeStore, ObjectUpload, StoredObject, StreamDigest, sha256_hex};
use sessionlake_tables::parquet_io::CommandsWriter;
use tokio::io::AsyncReadExt as _;
use tokio::sync::mpsc;

use crate::error::{IngestError, IngestErrorKind};

/// Bytes read from a file at a time.
const FILE_CHUNK_BYTES: usize = 256 * 1024;

/// Chunks waiting between the reader and the blocking worker, in each direction.
const CHANNEL_CHUNKS: usize = 4;

/// Sealed bytes handed to the upload at a time.
const SEALED_PIECE_BYTES: usize = 256 * 1024;

/// Objects up to this size are read into memory once rather than streamed twice (when their
/// rows are held as well: `--hold-rows-up-to` caps it).
pub const HOLD_BYTES_UP_TO: u64 = 16 * 1024 * 1024;

/// An input's original bytes: in memory, or an object read again each time it is needed.
#[derive(Debug, Clone)]
pub enum Raw {
    /// Bytes in memory (CloudWatch streams and uploads, assembled from events; a small object
    /// read whole).
    Bytes(HeldBytes),
    /// A local file or an S3 object, streamed.
    Object(RawObject),
}

/// Bytes in memory with their size and SHA-256, taken when they were put there: they cannot
/// change, so neither pass hashes them again.
#[derive(Debug, Clone)]
pub struct HeldBytes {
    bytes: Bytes,
    digest: RawDigest,
}

impl HeldBytes {
    /// Holds `bytes`, hashing them.
    pub fn new(bytes: Bytes) -> Self {
        let digest = RawDigest { len: bytes.len() as u64, sha256: sha256_hex(&bytes) };
        HeldBytes { bytes, digest }
    }

    /// The bytes.
    pub fn bytes(&self) -> &Bytes {
        &self.bytes
    }

    /// Their size and SHA-256.
    pub fn digest(&self) -> &RawDigest {
        &self.digest
    }
}

impl From<Vec<u8>> for Raw {
    fn from(bytes: Vec<u8>) -> Self {
        Raw::Bytes(HeldBytes::new(Bytes::from(bytes)))
    }
}

impl Raw {
    /// Returns the size in bytes (of an object, as found when it was fetched).
    pub fn len(&self) -> u64 {
        match self {
            Raw::Bytes(held) => held.digest.len,
            Raw::Object(object) => object.len,
        }
    }

    /// Whether there are no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Reads an object of at most `limit` bytes into memory, hashing it as it comes, so that
    /// parsing and sealing read it from there instead of each reading (or fetching) it again.
    /// Anything else comes back as it is, and so does an object found longer than `limit` when
    /// read (it grew since it was listed): it is streamed, as a big one is. A local file whose
    /// bytes are not those its source hashed (rewritten while it was read) is refused, to be
    /// read again at the next poll; an S3 object is read at its listed ETag instead.
    pub async fn held_up_to(self, limit: u64) -> anyhow::Result<Raw> {
        let Raw::Object(object) = &self else { return Ok(self) };
        if object.len > limit {
            return Ok(self);
        }
        let (limit, capacity) = (usize::try_from(limit)?, usize::try_from(object.len)?);
        let (bytes, digest) = consume_raw(&self, move |chunks| {
            let mut bytes = Vec::with_capacity(capacity);
            while let Some(chunk) = chunks.next_chunk() {
                if bytes.len() + chunk.len() > limit {
                    return None;
                }
                // Grown since it was listed: no more room than the bytes take.
                bytes.reserve_exact(chunk.len());
                bytes.extend_from_slice(&chunk);
            }
            Some(bytes)
        })
        .await?;
        let Some(bytes) = bytes else { return Ok(self) };
        object.location.check_listed(&digest)?;
        Ok(Raw::Bytes(HeldBytes { bytes: Bytes::from(bytes), digest }))
    }
}

/// A stored original read as a stream.
#[derive(Debug, Clone)]
pub struct RawObject {
    /// Where it is.
    pub location: ObjectLocation,
    /// Its size when fetched.
    pub len: u64,
}

/// Where a streamed original is.
#[derive(Debug, Clone)]
pub enum ObjectLocation {
    /// A local file, with the SHA-256 its source took when it read the file (its cursor
    /// position): a copy held after one more read ([`Raw::held_up_to`]) must have it, as the
    /// second read of a streamed one must match the first.
    File {
        /// Where it is.
        path: PathBuf,
        /// SHA-256 (hex) of its bytes when its source read them.
        sha256: String,
    },
    /// An S3 object, read at one ETag.
    S3 {
        /// Client.
        client: aws_sdk_s3::Client,
        /// Bucket.
        bucket: String,
        /// Key.
        key: String,
        /// ETag every read must match.
        etag: String,
    },
}

impl ObjectLocation {
    /// Refuses bytes of a local file that are not the ones its source hashed when it listed
    /// the file (its cursor position): rewritten since, they are read again at the next poll.
    /// An S3 object is read at its listed ETag instead.
    fn check_listed(&self, read: &RawDigest) -> anyhow::Result<()> {
        match self {
            ObjectLocation::File { path, sha256 } if *sha256 != read.sha256 => anyhow::bail!(
                "{} changed while it was read: sha256 {sha256} when listed, {} bytes sha256 {} \
                 when read",
                path.display(),
                read.len,
                read.sha256
            ),
            _ => Ok(()),
        }
    }

    fn name(&self) -> String {
        match self {
            ObjectLocation::File { path, .. } => path.display().to_string(),
            ObjectLocation::S3 { bucket, key, .. } => format!("s3://{bucket}/{key}"),
        }
    }
}

/// Size and SHA-256 (hex) of an original.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawDigest {
    /// Bytes.
    pub len: u64,
    /// SHA-256, lower-case hex.
    pub sha256: String,
}

impl RawDigest {
    fn of(digest: StreamDigest) -> Self {
        let (len, sha256) = digest.finish();
        RawDigest { len, sha256 }
    }
}

/// Sends every chunk of `raw` to `sender`, in order.
async fn send_chunks(raw: &Raw, sender: &mpsc::Sender<Bytes>) -> anyhow::Result<()> {
    let stopped = || anyhow::anyhow!("the worker reading the input stopped");
    match raw {
        Raw::Bytes(HeldBytes { bytes, .. }) => {
            let mut offset = 0;
            while offset < bytes.len() {
                let end = (offset + FILE_CHUNK_BYTES).min(bytes.len());
                sender.send(bytes.slice(offset..end)).await.map_err(|_| stopped())?;
                offset = end;
            }
        }
        Raw::Object(RawObject { location: ObjectLocation::File { path, .. }, .. }) => {
            let name = path.display();
            let mut file = tokio::fs::File::open(path)
                .await
                .with_context(|| format!("failed to open {name}"))?;
            loop {
                let mut chunk = bytes::BytesMut::with_capacity(FILE_CHUNK_BYTES);
                let read = file
                    .read_buf(&mut chunk)
                    .await
                    .with_context(|| format!("failed to read {name}"))?;
                if read == 0 {
                    break;
                }
                sender.send(chunk.freeze()).await.map_err(|_| stopped())?;
            }
        }
        Raw::Object(RawObject {
            location: ObjectLocation::S3 { client, bucket, key, etag },
            ..
        }) => {
            let name = format!("s3://{bucket}/{key}");
            let response =
                client.get_object().bucket(bucket).key(key).if_match(etag).send().await.map_err(
                    |e| IngestError::from_sdk(&format!("failed to fetch {name} at ETag {etag}"), e),
                )?;
            let mut body = response.body;
            while let Some(chunk) = body.try_next().await.map_err(|error| {
                IngestError::new(
                    IngestErrorKind::Unavailable,
                    format!("failed to read {name}: {error}"),
                )
            })? {
                sender.send(chunk).await.map_err(|_| stopped())?;
            }
        }
    }
    Ok(())
}

/// Returns a name for messages.
fn raw_name(raw: &Raw, source_ref: &str) -> String {
    match raw {
        Raw::Bytes(_) => source_ref.to_string(),
        Raw::Object(object) => object.location.name(),
    }
}

/// The chunks of an input as a blocking worker receives them, hashed as they come: read them
/// one by one ([`ChunkReader::next_chunk`]) or as a [`std::io::Read`].
pub struct ChunkReader {
    receiver: mpsc::Receiver<Bytes>,
    digest: StreamDigest,
    current: Bytes,
}

impl ChunkReader {
    /// Returns the next chunk, `None` at the end.
    pub fn next_chunk(&mut self) -> Option<Bytes> {
        let chunk = std::mem::take(&mut self.current);
        if !chunk.is_empty() {
            return Some(chunk);
        }
        let chunk = self.receiver.blocking_recv()?;
        self.digest.update(&chunk);
        Some(chunk)
    }

    /// Reads what the worker left to the end, for the digest of the whole input.
    fn finish(mut self) -> RawDigest {
        while self.next_chunk().is_some() {}
        RawDigest::of(self.digest)
    }
}

impl std::io::Read for ChunkReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        if self.current.is_empty() {
            match self.next_chunk() {
                Some(chunk) => self.current = chunk,
                None => return Ok(0),
            }
        }
        let taken = self.current.len().min(out.len());
        out[..taken].copy_from_slice(&self.current.split_to(taken));
        Ok(taken)
    }
}

/// Streams `raw` to `worker` on a blocking thread (the input is never whole in memory, unless
/// it is bytes already); returns what the worker returns and the size and SHA-256 of every
/// byte of `raw`, also those the worker did not read.
pub async fn consume_raw<T: Send + 'static>(
    raw: &Raw,
    worker: impl FnOnce(&mut ChunkReader) -> T + Send + 'static,
) -> anyhow::Result<(T, RawDigest)> {
    let (sender, receiver) = mpsc::channel::<Bytes>(CHANNEL_CHUNKS);
    let consumer = tokio::task::spawn_blocking(move || {
        let mut reader =
            ChunkReader { receiver, digest: StreamDigest::default(), current: Bytes::new() };
        let done = worker(&mut reader);
        (done, reader.finish())
    });
    let read = send_chunks(raw, &sender).await;
    drop(sender);
    let (done, digest) = consumer.await.context("reading task failed")?;
    read?;
    Ok((done, digest))
}

/// The first pass: parses `raw` as one session in `form` while taking its size and SHA-256;
/// without `hold_rows`, an object is parsed holding no row (its plan for [`Replay`]). A local
/// file whose bytes are not those its source listed is refused, as [`Raw::held_up_to`] refuses
/// one.
pub async fn parse_raw(
    raw: &Raw,
    form: InputForm,
    context: SessionContext,
    hold_rows: bool,
) -> anyhow::Result<(Result<ParsedSession, ParseError>, RawDigest)> {
    if let Raw::Bytes(held) = raw {
        // In memory already: parsed where it lies, not copied into the parser, and hashed.
        let HeldBytes { bytes, digest } = held.clone();
        return tokio::task::spawn_blocking(move || {
            (sessionlake_indexer::parse_session(form, &bytes, &context), digest)
        })
        .await
        .context("parser task failed");
    }
    let (parsed, digest) = consume_raw(raw, move |chunks| {
        let mut parser = if hold_rows {
            SessionParser::new(form, &context)
        } else {
            SessionParser::planning(form, &context)
        };
        while let Some(chunk) = chunks.next_chunk() {
            parser.feed(&chunk);
        }
        parser.finish()
    })
    .await?;
    if let Raw::Object(object) = raw {
        object.location.check_listed(&digest)?;
    }
    Ok((parsed, digest))
}

/// Hands sealed bytes to the upload in pieces of [`SEALED_PIECE_BYTES`].
struct PieceSender {
    sender: mpsc::Sender<Bytes>,
    piece: Vec<u8>,
}

impl PieceSender {
    fn send_piece(&mut self) -> std::io::Result<()> {
        if self.piece.is_empty() {
            return Ok(());
        }
        let piece = std::mem::replace(&mut self.piece, Vec::with_capacity(SEALED_PIECE_BYTES));
        self.sender
            .blocking_send(Bytes::from(piece))
            .map_err(|_| std::io::Error::other("the upload stopped"))
    }
}

impl Write for PieceSender {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.piece.extend_from_slice(data);
        if self.piece.len() >= SEALED_PIECE_BYTES {
            self.send_piece()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// What the second pass also does for a transcript too big to hold its rows: parse the bytes
/// it seals again with the first pass's `plan` and write the session's `commands` file at
/// `path` as the rows come, its sensitive columns under `key` (`key_metadata` in its footer).
pub struct Replay {
    /// The form the first pass parsed.
    pub form: InputForm,
    /// The context the first pass parsed with.
    pub context: SessionContext,
    /// What the first pass found (its rows in time order: the file's order).
    pub plan: ReplayPlan,
    /// The `commands` file's lake path.
    pub path: String,
    /// Its data key.
    pub key: DataKey,
    /// The key wrapped, for the file's footer.
    pub key_metadata: Vec<u8>,
}

/// The rows of a [`Replay`] on their way into the `commands` file (the parser's sink writes
/// them; the first failure stops the writing and is kept for the end).
struct Replaying {
    writer: Option<CommandsWriter<PieceSender>>,
    failure: Option<String>,
}

/// The second pass: compresses and seals `raw` under `key` into the object at `path`, in
/// parts; the object is completed only when the bytes sealed are `expected` (those the first
/// pass parsed), else the upload is abandoned and an error names what changed.
pub async fn seal_raw(
    raw: &Raw,
    source_ref: &str,
    store: &LakeStore,
    path: &str,
    sealing: (DataKey, WrappedKey),
    expected: Option<&RawDigest>,
) -> anyhow::Result<StoredObject> {
    let (stored, _) =
        seal_raw_replaying(raw, source_ref, store, path, sealing, expected, None).await?;
    Ok(stored)
}

/// [`seal_raw`], which with `replay` also writes the session's `commands` file from the same
/// bytes; returns it with its row count. Both objects are completed only when the bytes are
/// `expected`.
pub async fn seal_raw_replaying(
    raw: &Raw,
    source_ref: &str,
    store: &LakeStore,
    path: &str,
    (key, wrapped): (DataKey, WrappedKey),
    expected: Option<&RawDigest>,
    replay: Option<Replay>,
) -> anyhow::Result<(StoredObject, Option<(StoredObject, usize)>)> {
    let (plain_sender, mut plain_receiver) = mpsc::channel::<Bytes>(CHANNEL_CHUNKS);
    let (sealed_sender, mut sealed_receiver) = mpsc::channel::<Bytes>(CHANNEL_CHUNKS);
    let (rows_sender, mut rows_receiver) = mpsc::channel::<Bytes>(CHANNEL_CHUNKS);
    let commands_path = replay.as_ref().map(|replay| replay.path.clone());
    // Bytes held in memory were hashed when they were put there; an object is hashed as read.
    let held = match raw {
        Raw::Bytes(held) => Some(held.digest.clone()),
        Raw::Object(_) => None,
    };
    type Sealed = (RawDigest, Option<anyhow::Result<usize>>);
    let sealer = tokio::task::spawn_blocking(move || -> anyhow::Result<Sealed> {
        let pieces = PieceSender { sender: sealed_sender, piece: Vec::new() };
        let mut sealer = RawSealer::new(pieces, &key, &wrapped)?;
        let mut replaying = match replay {
            Some(replay) => Some(start_replay(replay, rows_sender)?),
            None => None,
        };
        let mut digest = StreamDigest::default();
        while let Some(chunk) = plain_receiver.blocking_recv() {
            if held.is_none() {
                digest.update(&chunk);
            }
            sealer.write_all(&chunk).context("failed to seal")?;
            if let Some((parser, _)) = replaying.as_mut() {
                parser.feed(&chunk);
            }
        }
        sealer.finish().context("failed to seal")?.send_piece().context("failed to seal")?;
        // Told after the digest's check: bytes that changed are what to say then.
        let rows = replaying.map(|(parser, state)| finish_replay(parser, &state));
        Ok((held.unwrap_or_else(|| RawDigest::of(digest)), rows))
    });
    let reading = async {
        let read = send_chunks(raw, &plain_sender).await;
        drop(plain_sender);
        read
    };
    let (uploading, uploading_rows) = (
        upload_pieces(store, Some(path), &mut sealed_receiver),
        upload_pieces(store, commands_path.as_deref(), &mut rows_receiver),
    );
    let (read, upload, rows_upload) = tokio::join!(reading, uploading, uploading_rows);
    let (upload, rows_upload) = match (upload, rows_upload) {
        (Ok(Some(upload)), Ok(rows_upload)) => (upload, rows_upload),
        (upload, rows_upload) => {
            let mut failure = None;
            for result in [upload, rows_upload] {
                match result {
                    Ok(Some(upload)) => upload.abort().await,
                    Ok(None) => {}
                    Err(error) => {
                        failure.get_or_insert(error);
                    }
                }
            }
            return Err(failure.map_or_else(
                || anyhow::anyhow!("the upload of {path} was not made"),
                anyhow::Error::from,
            ));
        }
    };
    let sealed = sealer.await.context("sealing task failed").and_then(|sealed| sealed);
    let checked = read.and(sealed).and_then(|(sealed, rows)| match expected {
        Some(expected) if *expected != sealed => Err(anyhow::anyhow!(
            "{} changed while it was read: {} bytes sha256 {} when parsed, {} bytes sha256 {} \
             when sealed",
            raw_name(raw, source_ref),
            expected.len,
            expected.sha256,
            sealed.len,
            sealed.sha256
        )),
        _ => rows.transpose(),
    });
    let rows = match checked {
        Ok(rows) => rows,
        Err(error) => {
            upload.abort().await;
            if let Some(rows_upload) = rows_upload {
                rows_upload.abort().await;
            }
            return Err(error);
        }
    };
    let stored = match upload.finish().await {
        Ok(stored) => stored,
        Err(error) => {
            if let Some(rows_upload) = rows_upload {
                rows_upload.abort().await;
            }
            return Err(error.into());
        }
    };
    let commands = match (rows_upload, rows) {
        (Some(rows_upload), Some(rows)) => match rows_upload.finish().await {
            Ok(commands) => Some((commands, rows)),
            Err(error) => {
                // Nothing names the raw object: it goes again.
                sessionlake_storage::transaction::discard(store, vec![stored.path]).await;
                return Err(error.into());
            }
        },
        (rows_upload, _) => {
            if let Some(rows_upload) = rows_upload {
                rows_upload.abort().await;
            }
            None
        }
    };
    Ok((stored, commands))
}

/// Uploads the pieces `receiver` gives to `path` (nothing without a path); the upload is
/// returned unfinished, or abandoned on a failure.
async fn upload_pieces<'a>(
    store: &'a LakeStore,
    path: Option<&str>,
    receiver: &mut mpsc::Receiver<Bytes>,
) -> sessionlake_storage::LakeResult<Option<ObjectUpload<'a>>> {
    let Some(path) = path else {
        while receiver.recv().await.is_some() {}
        return Ok(None);
    };
    let mut upload: ObjectUpload<'_> = store.upload(path);
    while let Some(piece) = receiver.recv().await {
        if let Err(error) = upload.write(&piece).await {
            // The sealer's next piece then fails instead of waiting for room forever.
            receiver.close();
            upload.abort().await;
            return Err(error);
        }
    }
    Ok(Some(upload))
}

/// Starts the parser of a [`Replay`], its rows going into the `commands` file's writer.
fn start_replay(
    replay: Replay,
    sender: mpsc::Sender<Bytes>,
) -> anyhow::Result<(SessionParser, std::sync::Arc<std::sync::Mutex<Replaying>>)> {
    let Replay { form, context, plan, key, key_metadata, .. } = replay;
    let out = PieceSender { sender, piece: Vec::new() };
    let writer = CommandsWriter::new(out, &key, key_metadata)?;
    let state = std::sync::Arc::new(std::sync::Mutex::new(Replaying {
        writer: Some(writer),
        failure: None,
    }));
    let sink_state = std::sync::Arc::clone(&state);
    let sink = Box::new(move |row| {
        let Ok(mut state) = sink_state.lock() else { return };
        let Replaying { writer, failure } = &mut *state;
        if failure.is_none()
            && let Some(writer) = writer.as_mut()
            && let Err(error) = writer.push(row)
        {
            *failure = Some(error.to_string());
        }
    });
    Ok((SessionParser::replaying(form, &context, &plan, sink), state))
}

/// Ends the parser of a [`Replay`] and its `commands` file; returns the number of rows.
fn finish_replay(
    parser: SessionParser,
    state: &std::sync::Mutex<Replaying>,
) -> anyhow::Result<usize> {
    parser.finish().map_err(|error| anyhow::anyhow!("parsed again, it failed: {error}"))?;
    let mut state = state.lock().map_err(|_| anyhow::anyhow!("the commands writer failed"))?;
    if let Some(failure) = state.failure.take() {
        anyhow::bail!("failed to write the commands file: {failure}");
    }
    let writer = state.writer.take().context("the commands file was ended twice")?;
    let rows = writer.rows();
    let mut out = writer.finish().context("failed to write the commands file")?;
    out.send_piece().context("failed to write the commands file")?;
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use sessionlake_storage::envelope::open_bytes;
    use sessionlake_storage::keys::{KeyProvider as _, LocalKeyring};

    use super::*;

    /// A transcript several upload parts long, streamed from a file: parsed and hashed in
    /// the first pass, then sealed in parts into the lake; the object opens to the same bytes.
    #[tokio::test]
    async fn test_a_file_larger_than_a_part_is_parsed_then_sealed_in_parts() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("alice-0123456789abcdef0.log");
        let mut transcript = b"Script started on 2026-03-14 09:30:00+00:00\n".to_vec();
        let mut state = 1u64;
        while transcript.len() < 2 * sessionlake_storage::store::UPLOAD_PART_BYTES + 12_345 {
            // Output that zstd cannot shrink much, so the sealed object spans parts too.
            state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            transcript.extend_from_slice(format!("sh-5.2$ echo {state:x}\r\r\n").as_bytes());
            transcript.extend_from_slice(format!("{:x}{:x}\r\r\n", state, state >> 7).as_bytes());
        }
        std::fs::write(&path, &transcript).expect("write");
        let raw = Raw::Object(RawObject {
            location: ObjectLocation::File { path: path.clone(), sha256: sha256_hex(&transcript) },
            len: transcript.len() as u64,
        });
        let context = SessionContext::new("alice-0123456789abcdef0");
        let (parsed, digest) =
            parse_raw(&raw, InputForm::S3Transcript, context, true).await.expect("first pass");
        assert_eq!(
            parsed,
            sessionlake_indexer::parse_session(
                InputForm::S3Transcript,
                &transcript,
                &SessionContext::new("alice-0123456789abcdef0"),
            )
        );
        assert_eq!(digest.sha256, sessionlake_storage::store::sha256_hex(&transcript));

        let (keyring, store) = seal_and_open(dir.path(), &raw, &digest, &transcript).await;

        // The file changed between the passes: the upload is abandoned, nothing is stored.
        std::fs::write(&path, b"something else").expect("rewrite");
        let error = seal_refused(&raw, &keyring, &store, &digest).await;
        assert!(error.contains("changed while it was read"), "{error}");
        assert!(store.get_opt("raw/y.zst.sle").await.expect("read").is_none());

        // The file changed since its source listed it: the first pass refuses it too.
        let context = SessionContext::new("alice-0123456789abcdef0");
        let refused = parse_raw(&raw, InputForm::S3Transcript, context, false).await;
        let error = format!("{:#}", refused.expect_err("parsed"));
        assert!(error.contains("changed while it was read"), "{error}");
    }

    /// Seals `raw` into `raw/x.zst.sle` of a new store, the first pass having read `digest`,
    /// under a key of a new keyring in `dir`; checks that the object opens to `transcript`.
    async fn seal_and_open(
        dir: &std::path::Path,
        raw: &Raw,
        digest: &RawDigest,
        transcript: &[u8],
    ) -> (LocalKeyring, LakeStore) {
        let (keyring, _) =
            LocalKeyring::open_or_create(&dir.join("keyring.json")).expect("keyring");
        let context = BTreeMap::from([("sessionlake:role".to_string(), "raw".to_string())]);
        let (key, wrapped) = keyring.generate_data_key(context).await.expect("key");
        let key_again = keyring.decrypt_data_key(&wrapped).await.expect("unwrap");
        let store = LakeStore::in_memory();
        let stored = seal_raw(raw, "local", &store, "raw/x.zst.sle", (key, wrapped), Some(digest))
            .await
            .expect("second pass");
        let sealed = store.get("raw/x.zst.sle").await.expect("stored");
        assert_eq!(stored.size, sealed.len() as u64);
        assert_eq!(stored.sha256, sha256_hex(&sealed));
        let opened = open_bytes("raw/x.zst.sle", &sealed, &key_again, u64::MAX).expect("open");
        assert!(opened == transcript, "the sealed object opens to other bytes");
        (keyring, store)
    }

    /// Seals `raw` into `raw/y.zst.sle`, the first pass having read `digest`; returns the
    /// error it fails with.
    async fn seal_refused(
        raw: &Raw,
        keyring: &LocalKeyring,
        store: &LakeStore,
        digest: &RawDigest,
    ) -> String {
        let context = BTreeMap::from([("sessionlake:role".to_string(), "raw".to_string())]);
        let sealing = keyring.generate_data_key(context).await.expect("key");
        let refused = seal_raw(raw, "local", store, "raw/y.zst.sle", sealing, Some(digest)).await;
        format!("{:#}", refused.expect_err("sealed"))
    }

    /// Writes a transcript of `commands` echo commands into `dir`; returns its path and bytes.
    fn echo_transcript(dir: &std::path::Path, commands: usize) -> (PathBuf, Vec<u8>) {
        let path = dir.join("alice-0123456789abcdef0.log");
        let mut transcript = b"Script started on 2026-03-14 09:30:00+00:00\n".to_vec();
        for n in 0..commands {
            transcript.extend_from_slice(format!("sh-5.2$ echo {n}\r\r\n{n}\r\r\n").as_bytes());
        }
        std::fs::write(&path, &transcript).expect("write");
        (path, transcript)
    }

    /// A small file is read once, into memory: both passes use those bytes and their digest
    /// (the file changed afterwards changes nothing); one longer than the limit, or one that
    /// grew past it since it was listed, stays streamed.
    #[tokio::test]
    async fn test_a_small_object_is_read_once_and_held() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (path, transcript) = echo_transcript(dir.path(), 2_000);
        let len = transcript.len() as u64;
        let sha256 = sha256_hex(&transcript);
        let object = |len| {
            let location = ObjectLocation::File { path: path.clone(), sha256: sha256.clone() };
            Raw::Object(RawObject { location, len })
        };

        assert!(matches!(object(len).held_up_to(len - 1).await.expect("read"), Raw::Object(_)));
        // Listed at a size under the limit, longer when read: streamed after all.
        let grown = object(len - 100).held_up_to(len - 1).await.expect("read");
        assert!(matches!(grown, Raw::Object(_)));

        let held = object(len).held_up_to(len).await.expect("read");
        let Raw::Bytes(bytes) = &held else { panic!("not held: {held:?}") };
        assert!(*bytes.bytes() == transcript, "held bytes differ from the file");
        assert_eq!(bytes.digest(), &RawDigest { len, sha256: sha256_hex(&transcript) });
        std::fs::write(&path, b"something else").expect("rewrite");

        let context = SessionContext::new("alice-0123456789abcdef0");
        let (parsed, digest) =
            parse_raw(&held, InputForm::S3Transcript, context.clone(), true).await.expect("parse");
        assert_eq!(
            parsed,
            sessionlake_indexer::parse_session(InputForm::S3Transcript, &transcript, &context)
        );
        assert_eq!(&digest, bytes.digest());
        let (keyring, store) = seal_and_open(dir.path(), &held, &digest, &transcript).await;

        // What the first pass is said to have read is still checked.
        let other = RawDigest { len, sha256: sha256_hex(b"other") };
        let error = seal_refused(&held, &keyring, &store, &other).await;
        assert!(error.contains("changed while it was read"), "{error}");
    }

    /// A transcript too big to hold its rows, parsed holding none and then again while it is
    /// sealed: the commands file is written beside the raw object with every row; a file that
    /// changed between the passes leaves neither.
    #[tokio::test]
    async fn test_the_second_pass_writes_the_commands_file_or_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (path, transcript) = echo_transcript(dir.path(), 20_000);
        let raw = Raw::Object(RawObject {
            location: ObjectLocation::File { path: path.clone(), sha256: sha256_hex(&transcript) },
            len: transcript.len() as u64,
        });
        let context = SessionContext::new("alice-0123456789abcdef0");
        let (planned, digest) = parse_raw(&raw, InputForm::S3Transcript, context.clone(), false)
            .await
            .expect("first pass");
        let planned = planned.expect("a session");
        assert!(planned.commands.is_empty(), "no row held");
        assert_eq!(planned.command_count, 20_000);
        let (keyring, _) =
            LocalKeyring::open_or_create(&dir.path().join("keyring.json")).expect("keyring");
        let store = LakeStore::in_memory();
        let key = || async {
            let context = BTreeMap::from([("sessionlake:role".to_string(), "raw".to_string())]);
            keyring.generate_data_key(context).await.expect("key")
        };
        let replay = |path: &str| Replay {
            form: InputForm::S3Transcript,
            context: context.clone(),
            plan: planned.plan.clone().expect("a plan"),
            path: path.to_string(),
            key: DataKey::from_slice(&[3u8; 32]).expect("32"),
            key_metadata: b"meta".to_vec(),
        };
        let sealing = key().await;
        let (_, commands) = seal_raw_replaying(
            &raw,
            "local",
            &store,
            "raw/x.zst.sle",
            sealing,
            Some(&digest),
            Some(replay("commands/x.parquet")),
        )
        .await
        .expect("second pass");
        let (stored, rows) = commands.expect("a commands file");
        assert_eq!(rows, 20_000);
        let bytes = store.get("commands/x.parquet").await.expect("stored");
        assert_eq!((stored.size, &stored.sha256), (bytes.len() as u64, &sha256_hex(&bytes)));
        assert!(bytes.starts_with(b"PAR1") || bytes.starts_with(b"PARE"), "a Parquet file");

        std::fs::write(&path, b"something else").expect("rewrite");
        let sealing = key().await;
        let error = seal_raw_replaying(
            &raw,
            "local",
            &store,
            "raw/y.zst.sle",
            sealing,
            Some(&digest),
            Some(replay("commands/y.parquet")),
        )
        .await
        .expect_err("changed");
        assert!(error.to_string().contains("changed while it was read"), "{error:#}");
        assert!(store.get_opt("raw/y.zst.sle").await.expect("read").is_none());
        assert!(store.get_opt("commands/y.parquet").await.expect("read").is_none());
    }
}
