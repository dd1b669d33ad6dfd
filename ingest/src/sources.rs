//! Sources of session logs: a local folder, S3, CloudWatch Logs; and CloudTrail files, read
//! into the `access` table (and for who/where of sessions).
//!
//! Reading a source is two steps, so that a big backlog is never in memory at once:
//! - *listing* returns what changed since the cursors as [`Pending`] work: names, sizes and
//!   positions, no bytes;
//! - *fetching* one [`Pending`] returns the session in one of the SSM forms
//!   ([`Fetched::Session`]), or bad input with the reason ([`Fetched::Bad`], quarantined by the
//!   pipeline, never fatal). A local transcript is hashed in chunks and an S3 object only
//!   HEADed: their bytes are streamed later ([`crate::raw`]); CloudWatch streams are read whole.
//!
//! The service fetches a bounded number of pending items at once (`max_in_flight`).

use std::collections::HashMap;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::Context as _;
use sessionlake_indexer::InputForm;
use sessionlake_indexer::input::{GetLogEventsFile, LogEvent, cloudwatch_raw, event_micros};
use sessionlake_lake::cursors::Cursors;
use sessionlake_lake::store::sha256_hex;
use sessionlake_schemas::{SessionSource, session_id};

use crate::error::{IngestError, IngestErrorKind};
use crate::raw::{ObjectLocation, Raw, RawDigest, RawObject};

/// Largest single session object read (a transcript beyond this is quarantined, not loaded).
pub const MAX_OBJECT_BYTES: u64 = 2 * 1024 * 1024 * 1024;
/// Most GetLogEvents pages read for one stream (10,000 events or 1 MB each).
const MAX_STREAM_PAGES: usize = 100_000;
/// Quarantine folder (and `BadInput::source`) of CloudTrail files that cannot be read.
pub const CLOUDTRAIL_SOURCE: &str = "cloudtrail";

/// One session's raw bytes, ready for the indexer.
#[derive(Debug, Clone)]
pub struct SessionInput {
    /// Session id (the object's base name or the log stream name).
    pub session_id: String,
    /// Which delivery.
    pub source: SessionSource,
    /// Where: `s3://bucket/key`, `cwl://group/stream`, or a file path.
    pub source_ref: String,
    /// Cursor value after this input (ETag, stream position, content hash).
    pub position: String,
    /// Form of `raw`.
    pub form: InputForm,
    /// The bytes stored as the raw transcript and parsed (streamed from a local file or S3).
    pub raw: Raw,
    /// A time the source attaches (object LastModified, last event), for partitioning when the
    /// session's own start is unknown (µs).
    pub observed_at: Option<i64>,
}

/// A CloudTrail file to read, for the `access` table.
#[derive(Debug, Clone)]
pub struct TrailInput {
    /// Where: `s3://bucket/key` or a file path.
    pub source_ref: String,
    /// Cursor value after this file (ETag or content hash).
    pub position: String,
    /// The file's bytes (gzip or not): a local file or an S3 object is streamed when read.
    pub raw: Raw,
    /// The size and SHA-256 the bytes must have when read (a local file, hashed when its
    /// position was taken).
    pub expected: Option<RawDigest>,
}

/// Input that cannot be a session, with the reason.
#[derive(Debug, Clone)]
pub struct BadInput {
    /// Which delivery ([`SessionSource::as_str`], or [`CLOUDTRAIL_SOURCE`]): the quarantine
    /// folder.
    pub source: &'static str,
    /// Where.
    pub source_ref: String,
    /// Cursor value after this input.
    pub position: String,
    /// The bytes as received (quarantined encrypted).
    pub raw: Raw,
    /// Why it was refused.
    pub reason: String,
}

/// Returns the session id for an object key or file name: its base name without `.log`.
pub fn session_id_of(name: &str) -> Option<String> {
    let base = name.rsplit('/').next()?;
    let id = base.strip_suffix(".log").unwrap_or(base);
    session_id::is_valid(id).then(|| id.to_string())
}

/// Bytes read from the start of a transcript whose name is no session id, for the id its
/// header names (the `script` header is its first line).
const HEADER_PROBE_BYTES: u64 = 64 * 1024;

/// Returns whether the id a transcript's name gives (`named`) stands as its id: it has the
/// shape SSM gives session ids (`<principal>-<suffix>`). Otherwise its header is looked at.
fn name_is_session_id(named: Option<&str>) -> bool {
    named.is_some_and(|id| session_id::split(id).is_some())
}

/// Returns the id of a transcript whose name gives `named` (see [`name_is_session_id`]) and
/// whose first bytes are `head`: the session id its `script` header names (the agent's
/// `…/orchestration/<session-id>/Standard_Stream/…` path) if it is a valid one (a transcript
/// saved as `incident-42.log`), else the name's.
fn transcript_session_id(named: Option<String>, head: &[u8]) -> Option<String> {
    let header = sessionlake_indexer::input::script_head(head).header.session_id;
    header.filter(|id| session_id::is_valid(id)).or(named)
}

fn walk(dir: &Path, files: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|entry| entry.path());
    for entry in entries {
        let kind = entry.file_type()?;
        if kind.is_dir() {
            walk(&entry.path(), files)?;
        } else if kind.is_file() {
            files.push(entry.path());
        }
    }
    Ok(())
}

/// Work found by a listing: what to read next, without its bytes.
#[derive(Debug, Clone)]
pub enum Pending {
    /// A local file: a transcript or a `get-log-events` file.
    Local(LocalFile),
    /// An S3 object holding a transcript.
    S3 {
        /// Bucket.
        bucket: String,
        /// Key.
        key: String,
        /// ETag at listing time.
        etag: String,
        /// LastModified (µs).
        observed_at: Option<i64>,
    },
    /// A CloudWatch Logs stream.
    Cloudwatch {
        /// Log group.
        group: String,
        /// Stream name (the session id).
        stream: String,
        /// Position at listing time (last event and ingestion times).
        position: String,
    },
    /// Input refused by its listing alone (a name that is no session id, too large).
    Refused(BadInput),
}

impl Pending {
    /// Returns where the work comes from (`s3://…`, `cwl://…`, a path): the cursor's key.
    pub fn source_ref(&self) -> String {
        match self {
            Pending::Local(file) => file.source_ref.clone(),
            Pending::S3 { bucket, key, .. } => format!("s3://{bucket}/{key}"),
            Pending::Cloudwatch { group, stream, .. } => format!("cwl://{group}/{stream}"),
            Pending::Refused(bad) => bad.source_ref.clone(),
        }
    }
}

/// What fetching one [`Pending`] gave.
#[derive(Debug)]
pub enum Fetched {
    /// A session to index.
    Session(SessionInput),
    /// Input to quarantine.
    Bad(BadInput),
    /// Nothing new: the content is what the cursor already holds (local files are compared by
    /// content hash, which needs a read).
    Unchanged,
}

/// A local file as listed.
#[derive(Debug, Clone)]
pub struct LocalFile {
    /// Path.
    pub path: PathBuf,
    /// The path as the cursor's key.
    pub source_ref: String,
    /// What the file is, by name and folder.
    pub kind: LocalKind,
    /// Size and modification time at listing.
    pub stamp: FileStamp,
}

/// What a local file holds, told by its name and folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocalKind {
    /// `*.log`: an S3-form transcript.
    Transcript,
    /// `cloudwatch/**/*.json`: `get-log-events` output of one stream.
    Stream,
    /// Under `cloudtrail/` or `AWSLogs/`: a CloudTrail log file.
    Cloudtrail,
}

/// A file's size and modification time: when both are unchanged, so is the file (for a
/// running service, which then skips hashing it again).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStamp {
    /// Size in bytes.
    pub len: u64,
    /// Modification time.
    pub modified: Option<SystemTime>,
}

impl FileStamp {
    fn of(metadata: &std::fs::Metadata) -> FileStamp {
        FileStamp { len: metadata.len(), modified: metadata.modified().ok() }
    }

    fn observed_at(&self) -> Option<i64> {
        self.modified
            .and_then(|time| time.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|since| since.as_micros() as i64)
    }
}

/// Local files already read by this process: their stamp and the content hash seen then.
pub type LocalCache = HashMap<String, (FileStamp, String)>;

/// The folder CloudTrail writes its digest files to (`AWSLogs/<account>/CloudTrail-Digest/…`):
/// they sign the log files and hold no event, so they are skipped, not quarantined.
pub const CLOUDTRAIL_DIGEST_FOLDER: &str = "CloudTrail-Digest";

/// Suffixes of CloudTrail log files (gzip or not).
const CLOUDTRAIL_SUFFIXES: [&str; 2] = [".json.gz", ".json"];

/// Whether `key` (an S3 key or a `/`-separated path) is in a CloudTrail digest folder.
pub fn is_cloudtrail_digest(key: &str) -> bool {
    key.split('/').any(|part| part == CLOUDTRAIL_DIGEST_FOLDER)
}

/// Lists a local folder (blocking: run it on `spawn_blocking`): `*.log` files are S3-form
/// transcripts, `*.json` under a `cloudwatch` folder are `get-log-events` outputs (one stream
/// each), `*.json` and `*.json.gz` under `cloudtrail` or `AWSLogs` are CloudTrail logs (except
/// digests). Other files are ignored. A folder is "under" another when the path given holds
/// it too (`--local /data/AWSLogs` reads CloudTrail files).
pub fn list_local(dir: &Path) -> anyhow::Result<Vec<LocalFile>> {
    let mut files = Vec::new();
    walk(dir, &mut files).with_context(|| format!("failed to list {}", dir.display()))?;
    let mut listed = Vec::new();
    for path in files {
        let Some(kind) = local_kind(dir, &path) else { continue };
        let source_ref = path.to_string_lossy().to_string();
        let metadata = match std::fs::metadata(&path) {
            Ok(metadata) => metadata,
            // Removed between the walk and the stat: nothing to read.
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => continue,
            Err(error) => {
                return Err(error).with_context(|| format!("failed to stat {source_ref}"));
            }
        };
        listed.push(LocalFile { path, source_ref, kind, stamp: FileStamp::of(&metadata) });
    }
    Ok(listed)
}

/// What the file at `path`, found under the folder `dir`, is (see [`list_local`]); `None` for
/// a file to ignore. The folders are those of `dir` itself and those below it.
fn local_kind(dir: &Path, path: &Path) -> Option<LocalKind> {
    let relative = path.strip_prefix(dir).unwrap_or(path);
    let folders: Vec<String> = dir
        .components()
        .chain(relative.parent().into_iter().flat_map(Path::components))
        .map(|part| part.as_os_str().to_string_lossy().to_string())
        .collect();
    let in_folder = |name: &str| folders.iter().any(|part| part == name);
    let name = path.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    if in_folder("cloudtrail") || in_folder("AWSLogs") {
        let is_trail = CLOUDTRAIL_SUFFIXES.iter().any(|suffix| name.ends_with(suffix));
        (is_trail && !in_folder(CLOUDTRAIL_DIGEST_FOLDER)).then_some(LocalKind::Cloudtrail)
    } else if name.ends_with(".log") {
        Some(LocalKind::Transcript)
    } else if (name.ends_with(".json") || name.ends_with(".jsonl")) && in_folder("cloudwatch") {
        Some(LocalKind::Stream)
    } else {
        None
    }
}

/// Returns the pending work among listed session files: those whose content may differ from
/// the cursors. A file this process has hashed before, whose stamp has not changed and whose
/// hash is the cursor's, is skipped without a read.
pub fn pending_local(files: Vec<LocalFile>, cursors: &Cursors, cache: &LocalCache) -> Vec<Pending> {
    let mut pending = Vec::new();
    for file in files {
        let cursor = cursors.positions.get(&file.source_ref);
        if file.kind == LocalKind::Cloudtrail {
            continue;
        }
        if file.stamp.len > MAX_OBJECT_BYTES {
            let position = format!("size:{}", file.stamp.len);
            if cursor != Some(&position) {
                pending.push(Pending::Refused(BadInput {
                    source: SessionSource::Local.as_str(),
                    reason: format!(
                        "{} is {} bytes, over the {MAX_OBJECT_BYTES}-byte limit",
                        file.source_ref, file.stamp.len
                    ),
                    source_ref: file.source_ref,
                    position,
                    raw: Raw::from(Vec::new()),
                }));
            }
            continue;
        }
        let unchanged = cache
            .get(&file.source_ref)
            .is_some_and(|(stamp, hash)| *stamp == file.stamp && cursor == Some(hash));
        if !unchanged {
            pending.push(Pending::Local(file));
        }
    }
    pending
}

/// Reads a local session file (blocking: run it on `spawn_blocking`) and returns it with its
/// stamp and content hash, or [`Fetched::Unchanged`] when the hash is `cursor`.
pub fn fetch_local(
    file: &LocalFile,
    cursor: Option<&str>,
) -> anyhow::Result<(Fetched, Option<(FileStamp, String)>)> {
    let source_ref = &file.source_ref;
    let mut handle = match std::fs::File::open(&file.path) {
        Ok(handle) => handle,
        // Removed since the listing: nothing to ingest.
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            return Ok((Fetched::Unchanged, None));
        }
        Err(error) => return Err(error).with_context(|| format!("failed to open {source_ref}")),
    };
    let metadata = handle.metadata().with_context(|| format!("failed to stat {source_ref}"))?;
    let stamp = FileStamp::of(&metadata);
    let name = file.path.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    let stem = name.trim_end_matches(".jsonl").trim_end_matches(".json").trim_end_matches(".log");
    let observed_at = stamp.observed_at();
    let session_id = session_id_of(stem);
    // A transcript, or any file that is no session, is streamed: hashed here, read again to
    // parse and to seal. A `get-log-events` file is JSON, read whole.
    let streamed = file.kind == LocalKind::Transcript || session_id.is_none();
    let (bytes, len, position) = if streamed {
        let (len, position) = hash_file(&mut handle, source_ref)?;
        (Vec::new(), len, position)
    } else {
        let mut bytes = Vec::with_capacity(metadata.len().min(MAX_OBJECT_BYTES) as usize);
        (&mut handle)
            .take(MAX_OBJECT_BYTES + 1)
            .read_to_end(&mut bytes)
            .with_context(|| format!("failed to read {source_ref}"))?;
        let position = sha256_hex(&bytes);
        let len = bytes.len() as u64;
        (bytes, len, position)
    };
    let seen = Some((stamp, position.clone()));
    if cursor == Some(position.as_str()) {
        return Ok((Fetched::Unchanged, seen));
    }
    if len > MAX_OBJECT_BYTES {
        // Grew past the limit since the listing; the next listing refuses it by size.
        return Ok((Fetched::Unchanged, None));
    }
    let streamed_raw =
        || Raw::Object(RawObject { location: ObjectLocation::File(file.path.clone()), len });
    // A transcript's name need not be its id: then its header names it, or nothing does.
    let session_id =
        if file.kind == LocalKind::Transcript && !name_is_session_id(session_id.as_deref()) {
            let mut head = Vec::new();
            std::fs::File::open(&file.path)
                .and_then(|handle| handle.take(HEADER_PROBE_BYTES).read_to_end(&mut head))
                .with_context(|| format!("failed to read {source_ref}"))?;
            transcript_session_id(session_id, &head)
        } else {
            session_id
        };
    let Some(session_id) = session_id else {
        let bad = BadInput {
            source: SessionSource::Local.as_str(),
            source_ref: source_ref.clone(),
            position,
            raw: streamed_raw(),
            reason: format!(
                "{source_ref:?}: file name {name:?} is not a session id, nor does a header name one"
            ),
        };
        return Ok((Fetched::Bad(bad), seen));
    };
    if file.kind == LocalKind::Transcript {
        let input = SessionInput {
            session_id,
            source: SessionSource::Local,
            source_ref: source_ref.clone(),
            position,
            form: InputForm::S3Transcript,
            raw: streamed_raw(),
            observed_at,
        };
        return Ok((Fetched::Session(input), seen));
    }
    let fetched = match log_events(&name, &bytes) {
        Ok(events) => {
            let (form, raw) = cloudwatch_raw(&events);
            let observed_at = events.last().and_then(|e| event_micros(e.timestamp)).or(observed_at);
            // Tagged as the CloudWatch form it is, so that a transcript of the same session in
            // the same folder (`*.log`) stays a separate version.
            let source = match form {
                InputForm::CloudwatchStream => SessionSource::CloudwatchStream,
                _ => SessionSource::CloudwatchUpload,
            };
            Fetched::Session(SessionInput {
                session_id,
                source,
                source_ref: source_ref.clone(),
                position,
                form,
                raw: Raw::from(raw),
                observed_at,
            })
        }
        Err(error) => Fetched::Bad(BadInput {
            source: SessionSource::Local.as_str(),
            source_ref: source_ref.clone(),
            position,
            raw: Raw::from(bytes),
            reason: format!("{source_ref} {error}"),
        }),
    };
    Ok((fetched, seen))
}

/// Reads the events of a saved CloudWatch stream named `name`: `aws logs get-log-events` (or
/// `filter-log-events`) output, `{"events": [...]}`, or a `.jsonl` export, one event per line.
/// The error says where the bytes stop being that, never what they hold.
fn log_events(name: &str, bytes: &[u8]) -> Result<Vec<LogEvent>, String> {
    let position = sessionlake_schemas::json_error_position;
    if !name.ends_with(".jsonl") {
        return serde_json::from_slice::<GetLogEventsFile>(bytes)
            .map(|file| file.events)
            .map_err(|error| format!("is not get-log-events JSON: {}", position(&error)));
    }
    bytes
        .split(|byte| *byte == b'\n')
        .enumerate()
        .filter(|(_, line)| !line.trim_ascii().is_empty())
        .map(|(index, line)| {
            serde_json::from_slice::<LogEvent>(line).map_err(|error| {
                format!("line {} is not a log event (JSON Lines): {}", index + 1, position(&error))
            })
        })
        .collect()
}

/// Returns the size and SHA-256 of a file's bytes (up to one past [`MAX_OBJECT_BYTES`]),
/// read in chunks.
fn hash_file(handle: &mut std::fs::File, source_ref: &str) -> anyhow::Result<(u64, String)> {
    let mut digest = sessionlake_lake::store::StreamDigest::default();
    let mut limited = handle.take(MAX_OBJECT_BYTES + 1);
    let mut buffer = vec![0u8; 256 * 1024];
    loop {
        let read = match limited.read(&mut buffer) {
            Ok(0) => break,
            Ok(read) => read,
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(error) => {
                return Err(error).with_context(|| format!("failed to read {source_ref}"));
            }
        };
        digest.update(&buffer[..read]);
    }
    Ok(digest.finish())
}

/// Hashes a local CloudTrail file in chunks (blocking: run it on `spawn_blocking`); its
/// position is the content hash, and its bytes are streamed when it is read. Returns `None`
/// when the file was removed since the listing.
pub fn read_local_trail(file: &LocalFile) -> anyhow::Result<Option<TrailInput>> {
    let source_ref = &file.source_ref;
    let mut handle = match std::fs::File::open(&file.path) {
        Ok(handle) => handle,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(error).with_context(|| format!("failed to read {source_ref}")),
    };
    let (len, sha256) = hash_file(&mut handle, source_ref)?;
    let location = ObjectLocation::File(file.path.clone());
    Ok(Some(TrailInput {
        source_ref: source_ref.clone(),
        position: sha256.clone(),
        raw: Raw::Object(RawObject { location, len }),
        expected: Some(RawDigest { len, sha256 }),
    }))
}

/// Lists the objects under `prefix` whose keys end in one of `suffixes`, every page.
async fn list_objects(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    prefix: &str,
    suffixes: &[&str],
) -> anyhow::Result<Vec<aws_sdk_s3::types::Object>> {
    let mut found = Vec::new();
    let mut pages = client.list_objects_v2().bucket(bucket).prefix(prefix).into_paginator().send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| {
            IngestError::from_sdk(&format!("failed to list s3://{bucket}/{prefix}"), e)
        })?;
        found.extend(
            page.contents()
                .iter()
                .filter(|object| {
                    object
                        .key()
                        .is_some_and(|key| suffixes.iter().any(|suffix| key.ends_with(suffix)))
                })
                .cloned(),
        );
    }
    Ok(found)
}

/// Returns an S3 object's ETag and size now, as a [`RawObject`] whose bytes are streamed at
/// that ETag (`crate::raw`); `None` when it was deleted since it was listed or notified.
async fn head_s3(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    listed_etag: &str,
) -> anyhow::Result<Option<(String, RawObject)>> {
    let source_ref = format!("s3://{bucket}/{key}");
    let head = match client.head_object().bucket(bucket).key(key).send().await {
        Ok(head) => head,
        Err(error) => {
            let error = IngestError::from_sdk(&format!("failed to fetch {source_ref}"), error);
            if error.kind() == IngestErrorKind::NotFound {
                return Ok(None);
            }
            return Err(error.into());
        }
    };
    let etag = head.e_tag().unwrap_or(listed_etag).to_string();
    let len = head.content_length().unwrap_or(0).max(0) as u64;
    let location = ObjectLocation::S3 {
        client: client.clone(),
        bucket: bucket.to_string(),
        key: key.to_string(),
        etag: etag.clone(),
    };
    Ok(Some((etag, RawObject { location, len })))
}

/// Lists S3 objects whose keys end in `.log` under `prefix`, skipping those whose ETag the
/// cursors already hold.
pub async fn list_s3(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    prefix: &str,
    cursors: &Cursors,
) -> anyhow::Result<Vec<Pending>> {
    let mut pending = Vec::new();
    for object in list_objects(client, bucket, prefix, &[".log"]).await? {
        let Some(key) = object.key() else { continue };
        let observed_at = object
            .last_modified()
            .and_then(|t| t.to_millis().ok())
            .and_then(|ms| ms.checked_mul(1000));
        let listed = S3Object {
            bucket,
            key,
            etag: object.e_tag().unwrap_or_default(),
            size: object.size().unwrap_or(0).max(0) as u64,
            observed_at,
        };
        pending.extend(pending_s3(&listed, cursors));
    }
    Ok(pending)
}

/// An S3 object as a listing or an event notification names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Object<'a> {
    /// Bucket.
    pub bucket: &'a str,
    /// Key (decoded).
    pub key: &'a str,
    /// ETag, quoted as S3 returns it.
    pub etag: &'a str,
    /// Size in bytes.
    pub size: u64,
    /// LastModified or the event's time (µs).
    pub observed_at: Option<i64>,
}

/// Returns the work for one S3 transcript object: none when the cursors hold its ETag, a
/// refusal when its name is no session id or it is too large.
pub fn pending_s3(object: &S3Object<'_>, cursors: &Cursors) -> Option<Pending> {
    let S3Object { bucket, key, etag, size, observed_at } = *object;
    let source_ref = format!("s3://{bucket}/{key}");
    if cursors.positions.get(&source_ref).is_some_and(|position| position == etag) {
        return None;
    }
    // A key whose base name is no session id is fetched all the same: its header may name one.
    let refused = (size > MAX_OBJECT_BYTES)
        .then(|| format!("{source_ref} is {size} bytes, over the {MAX_OBJECT_BYTES}-byte limit"));
    if let Some(reason) = refused {
        let source = SessionSource::S3.as_str();
        let position = etag.to_string();
        return Some(Pending::Refused(BadInput {
            source,
            source_ref,
            position,
            raw: Raw::from(Vec::new()),
            reason,
        }));
    }
    Some(Pending::S3 {
        bucket: bucket.to_string(),
        key: key.to_string(),
        etag: etag.to_string(),
        observed_at,
    })
}

/// Reads one S3 transcript. Its cursor position is the ETag of the bytes read (an object
/// rewritten since the listing is read as it is now; one deleted since is
/// [`Fetched::Unchanged`]).
pub async fn fetch_s3(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    listed_etag: &str,
    observed_at: Option<i64>,
) -> anyhow::Result<Fetched> {
    let source_ref = format!("s3://{bucket}/{key}");
    // Its bytes are streamed at the ETag it has now when parsed and sealed (`crate::raw`).
    let Some((etag, object)) = head_s3(client, bucket, key, listed_etag).await? else {
        return Ok(Fetched::Unchanged);
    };
    // A key whose base name is no session id: the id its header names, if any.
    let named = session_id_of(key);
    let session_id = match name_is_session_id(named.as_deref()) {
        true => named,
        false => {
            let range = format!("bytes=0-{}", HEADER_PROBE_BYTES - 1);
            let request = client.get_object().bucket(bucket).key(key).range(range).if_match(&etag);
            let response = request.send().await.map_err(|e| {
                IngestError::from_sdk(&format!("failed to fetch {source_ref:?} at ETag {etag}"), e)
            })?;
            let head = response.body.collect().await.map_err(|error| {
                let reason = format!("failed to read {source_ref:?}: {error}");
                IngestError::new(IngestErrorKind::Unavailable, reason)
            })?;
            transcript_session_id(named, &head.into_bytes())
        }
    };
    let Some(session_id) = session_id else {
        return Ok(Fetched::Bad(BadInput {
            source: SessionSource::S3.as_str(),
            reason: format!(
                "{source_ref:?}: key base name is not a session id, nor does a header name one"
            ),
            source_ref,
            position: etag,
            raw: Raw::from(Vec::new()),
        }));
    };
    let len = object.len;
    if len > MAX_OBJECT_BYTES {
        return Ok(Fetched::Bad(BadInput {
            source: SessionSource::S3.as_str(),
            reason: format!("{source_ref} is {len} bytes, over the {MAX_OBJECT_BYTES}-byte limit"),
            source_ref,
            position: etag,
            raw: Raw::from(Vec::new()),
        }));
    }
    Ok(Fetched::Session(SessionInput {
        session_id,
        source: SessionSource::S3,
        source_ref,
        position: etag,
        form: InputForm::S3Transcript,
        raw: Raw::Object(object),
        observed_at,
    }))
}

/// Lists the streams of a log group (stream name = session id) that changed since the cursors.
pub async fn list_cloudwatch(
    client: &aws_sdk_cloudwatchlogs::Client,
    group: &str,
    cursors: &Cursors,
) -> anyhow::Result<Vec<Pending>> {
    let mut pending = Vec::new();
    let mut pages = client.describe_log_streams().log_group_name(group).into_paginator().send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| {
            IngestError::from_sdk(&format!("failed to list streams of log group {group}"), e)
        })?;
        for stream in page.log_streams() {
            let Some(name) = stream.log_stream_name() else {
                continue;
            };
            let source_ref = format!("cwl://{group}/{name}");
            let position = format!(
                "{}:{}",
                stream.last_event_timestamp().unwrap_or(0),
                stream.last_ingestion_time().unwrap_or(0)
            );
            if cursors.positions.get(&source_ref) == Some(&position) {
                continue;
            }
            pending.push(Pending::Cloudwatch {
                group: group.to_string(),
                stream: name.to_string(),
                position,
            });
        }
    }
    Ok(pending)
}

/// Reads one log stream whole.
pub async fn fetch_cloudwatch(
    client: &aws_sdk_cloudwatchlogs::Client,
    group: &str,
    stream: &str,
    position: &str,
) -> anyhow::Result<Fetched> {
    let source_ref = format!("cwl://{group}/{stream}");
    let events = read_stream(client, group, stream).await?;
    let (form, raw) = cloudwatch_raw(&events);
    let Some(session_id) = session_id_of(stream) else {
        return Ok(Fetched::Bad(BadInput {
            source: SessionSource::CloudwatchStream.as_str(),
            reason: format!("{source_ref:?}: stream name is not a session id"),
            source_ref,
            position: position.to_string(),
            raw: Raw::from(raw),
        }));
    };
    let source = match form {
        InputForm::CloudwatchStream => SessionSource::CloudwatchStream,
        _ => SessionSource::CloudwatchUpload,
    };
    Ok(Fetched::Session(SessionInput {
        session_id,
        source,
        source_ref,
        position: position.to_string(),
        form,
        raw: Raw::from(raw),
        observed_at: events.last().and_then(|e| event_micros(e.timestamp)),
    }))
}

async fn read_stream(
    client: &aws_sdk_cloudwatchlogs::Client,
    group: &str,
    stream: &str,
) -> anyhow::Result<Vec<LogEvent>> {
    let mut events = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0usize;
    loop {
        let page = client
            .get_log_events()
            .log_group_name(group)
            .log_stream_name(stream)
            .start_from_head(true)
            .set_next_token(token.clone())
            .send()
            .await
            .map_err(|e| {
                IngestError::from_sdk(&format!("failed to read cwl://{group}/{stream}"), e)
            })?;
        for event in page.events() {
            events.push(LogEvent {
                timestamp: event.timestamp().unwrap_or(0),
                message: event.message().unwrap_or_default().to_string(),
            });
        }
        // The forward token repeats once the end of the stream is reached. An empty page does
        // not mean the end: GetLogEvents pages by time, and a session idle for a while has
        // empty pages in the middle.
        let next = page.next_forward_token().map(str::to_string);
        if next.is_none() || next == token {
            break;
        }
        pages += 1;
        if pages >= MAX_STREAM_PAGES {
            anyhow::bail!("cwl://{group}/{stream} did not end after {MAX_STREAM_PAGES} pages");
        }
        token = next;
    }
    Ok(events)
}

/// Lists CloudTrail files (`.json.gz` or `.json`) under an S3 prefix as `(key, etag)`, without
/// the digest files (in a `CloudTrail-Digest` folder).
pub async fn list_cloudtrail_s3(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    prefix: &str,
) -> anyhow::Result<Vec<(String, String)>> {
    Ok(list_objects(client, bucket, prefix, &CLOUDTRAIL_SUFFIXES)
        .await?
        .into_iter()
        .filter_map(|object| {
            let key = object.key()?.to_string();
            if is_cloudtrail_digest(&key) {
                return None;
            }
            Some((key, object.e_tag().unwrap_or_default().to_string()))
        })
        .collect())
}

/// Finds one CloudTrail file in S3 (its ETag and size now; its bytes are streamed at that
/// ETag when read); its position is the ETag. `None` when it was deleted since it was listed.
pub async fn fetch_trail_s3(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    listed_etag: &str,
) -> anyhow::Result<Option<TrailInput>> {
    let Some((etag, object)) = head_s3(client, bucket, key, listed_etag).await? else {
        return Ok(None);
    };
    Ok(Some(TrailInput {
        source_ref: format!("s3://{bucket}/{key}"),
        position: etag,
        raw: Raw::Object(object),
        expected: None,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_session_id_of_keys() {
        assert_eq!(
            session_id_of("ssm/123/alice-0123456789abcdef0.log").as_deref(),
            Some("alice-0123456789abcdef0")
        );
        assert_eq!(session_id_of("a/../.log"), None);
    }

    #[test]
    fn test_cloudwatch_forms_are_told_apart() {
        let upload = vec![
            LogEvent {
                timestamp: 1,
                message: "Script started on 2026-03-14 09:30:00+00:00\nsh-5.2$ ls\r".into(),
            },
            LogEvent { timestamp: 2, message: "a\r".into() },
        ];
        let (form, raw) = cloudwatch_raw(&upload);
        assert_eq!(form, InputForm::CloudwatchUpload);
        assert_eq!(raw, b"Script started on 2026-03-14 09:30:00+00:00\nsh-5.2$ ls\r\na\r");
        let stream = vec![LogEvent {
            timestamp: 3,
            message: r#"{"eventVersion":"1.0","sessionData":["$ ls"]}"#.into(),
        }];
        assert_eq!(cloudwatch_raw(&stream).0, InputForm::CloudwatchStream);
    }

    #[test]
    fn test_local_kind_reads_the_folder_given() {
        let trail = "111122223333/CloudTrail/us-east-1/2026/03/14/a_CloudTrail_us-east-1_x.json.gz";
        let digest =
            "111122223333/CloudTrail-Digest/us-east-1/2026/03/14/a_CloudTrail-Digest_x.json.gz";
        let cases = [
            // The folder given is AWSLogs itself, or below it.
            ("/data/AWSLogs", trail, Some(LocalKind::Cloudtrail)),
            ("/data/AWSLogs/111122223333", "CloudTrail/x.json", Some(LocalKind::Cloudtrail)),
            ("/data", &format!("AWSLogs/{trail}"), Some(LocalKind::Cloudtrail)),
            ("/data/cloudtrail", "trail.json", Some(LocalKind::Cloudtrail)),
            // Digests and files that are not JSON are no trail files.
            ("/data/AWSLogs", digest, None),
            ("/data", &format!("AWSLogs/{digest}"), None),
            ("/data/AWSLogs", "111122223333/CloudTrail/README.txt", None),
            // The other kinds are unchanged.
            ("/data", "s3/alice-0123.log", Some(LocalKind::Transcript)),
            ("/data/cloudwatch", "stream.json", Some(LocalKind::Stream)),
            ("/data/cloudwatch", "export.jsonl", Some(LocalKind::Stream)),
            ("/data", "export.jsonl", None),
            ("/data", "notes.json", None),
        ];
        for (dir, relative, expected) in cases {
            let dir = Path::new(dir);
            assert_eq!(local_kind(dir, &dir.join(relative)), expected, "{dir:?} {relative}");
        }
    }

    #[test]
    fn test_list_local_under_awslogs() {
        let root = tempfile::tempdir().expect("tempdir");
        let logs = root.path().join("AWSLogs");
        let day = logs.join("111122223333/CloudTrail/us-east-1/2026/03/14");
        let digests = logs.join("111122223333/CloudTrail-Digest/us-east-1/2026/03/14");
        for folder in [&day, &digests] {
            std::fs::create_dir_all(folder).expect("mkdir");
        }
        std::fs::write(day.join("trail.json.gz"), b"x").expect("write");
        std::fs::write(digests.join("digest.json.gz"), b"x").expect("write");
        let listed = list_local(&logs).expect("list");
        let found: Vec<(String, LocalKind)> = listed
            .iter()
            .map(|file| {
                (file.path.file_name().expect("name").to_string_lossy().to_string(), file.kind)
            })
            .collect();
        assert_eq!(found, vec![("trail.json.gz".to_string(), LocalKind::Cloudtrail)]);
    }
}
