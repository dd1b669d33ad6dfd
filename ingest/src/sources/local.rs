//! A local folder (the embedded default reads the shipped examples): `*.log` transcripts,
//! saved CloudWatch streams under `cloudwatch/`, CloudTrail files under `cloudtrail/` or
//! `AWSLogs/`. A file's position is its content hash; a running service remembers each file's
//! size and modification time with the hash it had, and skips hashing it again while they hold.

use std::collections::HashMap;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use anyhow::Context as _;
use serde::Deserialize;
use sessionlake_indexer::InputForm;
use sessionlake_indexer::input::{GetLogEventsFile, LogEvent, cloudwatch_raw, event_micros};
use sessionlake_schemas::SessionSource;
use sessionlake_storage::cursors::Cursors;
use sessionlake_storage::store::sha256_hex;

use super::cloudtrail::{CLOUDTRAIL_DIGEST_FOLDER, CLOUDTRAIL_SUFFIXES};
use super::{
    BadInput, Fetched, HEADER_PROBE_BYTES, MAX_OBJECT_BYTES, Pending, Refused, SessionInput,
    Source, TrailInput, TrailPending, TrailWork, Work, name_is_session_id, session_id_of,
    transcript_session_id,
};
use crate::raw::{ObjectLocation, Raw, RawDigest, RawObject};

/// A local folder.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalSourceConfig {
    /// Folder path.
    pub path: PathBuf,
}

/// Reads a local folder.
#[derive(Debug)]
pub struct LocalSource {
    dir: PathBuf,
    /// The files this process has read: their stamp and the content hash seen then.
    seen: Arc<Mutex<LocalCache>>,
}

impl LocalSource {
    /// Returns the source of the folder `dir`.
    pub fn new(dir: PathBuf) -> LocalSource {
        LocalSource { dir, seen: Arc::default() }
    }

    /// Lists the folder on a blocking thread.
    async fn files(&self) -> anyhow::Result<Vec<LocalFile>> {
        let dir = self.dir.clone();
        tokio::task::spawn_blocking(move || list_local(&dir))
            .await
            .context("listing task failed")?
    }

    /// Whether `file` is, by its stamp, what this process read before with the cursor's hash.
    fn unchanged(&self, file: &LocalFile, cursors: &Cursors) -> bool {
        let cursor = cursors.positions.get(&file.source_ref);
        let seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        seen.get(&file.source_ref)
            .is_some_and(|(stamp, hash)| *stamp == file.stamp && cursor == Some(hash))
    }
}

#[async_trait::async_trait]
impl Source for LocalSource {
    fn describe(&self) -> String {
        self.dir.display().to_string()
    }

    async fn list(&self, cursors: &Cursors) -> anyhow::Result<Vec<Pending>> {
        let mut pending: Vec<Pending> = Vec::new();
        for file in self.files().await? {
            if file.kind == LocalKind::Cloudtrail {
                continue;
            }
            if file.stamp.len > MAX_OBJECT_BYTES {
                let position = format!("size:{}", file.stamp.len);
                if cursors.positions.get(&file.source_ref) != Some(&position) {
                    pending.push(Box::new(Refused(BadInput {
                        source: SessionSource::Local.as_str(),
                        reason: format!(
                            "{} is {} bytes, over the {MAX_OBJECT_BYTES}-byte limit",
                            file.source_ref, file.stamp.len
                        ),
                        source_ref: file.source_ref,
                        position,
                        raw: Raw::from(Vec::new()),
                    })));
                }
                continue;
            }
            if !self.unchanged(&file, cursors) {
                pending.push(Box::new(LocalWork { file, seen: Arc::clone(&self.seen) }));
            }
        }
        Ok(pending)
    }

    async fn list_trails(&self, cursors: &Cursors) -> anyhow::Result<Vec<TrailPending>> {
        let mut pending: Vec<TrailPending> = Vec::new();
        for file in self.files().await? {
            if file.kind == LocalKind::Cloudtrail && !self.unchanged(&file, cursors) {
                pending.push(Box::new(LocalWork { file, seen: Arc::clone(&self.seen) }));
            }
        }
        Ok(pending)
    }
}

/// One file of a local folder, to read.
#[derive(Debug)]
struct LocalWork {
    file: LocalFile,
    seen: Arc<Mutex<LocalCache>>,
}

impl LocalWork {
    fn remember(&self, stamp: FileStamp, hash: String) {
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        seen.insert(self.file.source_ref.clone(), (stamp, hash));
    }
}

#[async_trait::async_trait]
impl Work for LocalWork {
    fn source_ref(&self) -> String {
        self.file.source_ref.clone()
    }

    async fn fetch(self: Box<Self>, cursors: &Cursors) -> anyhow::Result<Fetched> {
        let cursor = cursors.positions.get(&self.file.source_ref).cloned();
        let file = self.file.clone();
        let (fetched, seen) =
            tokio::task::spawn_blocking(move || fetch_local(&file, cursor.as_deref()))
                .await
                .context("reading task failed")??;
        if let Some((stamp, hash)) = seen {
            self.remember(stamp, hash);
        }
        Ok(fetched)
    }
}

#[async_trait::async_trait]
impl TrailWork for LocalWork {
    fn source_ref(&self) -> String {
        self.file.source_ref.clone()
    }

    async fn read(self: Box<Self>, cursors: &Cursors) -> anyhow::Result<Option<TrailInput>> {
        let file = self.file.clone();
        let read = tokio::task::spawn_blocking(move || read_local_trail(&file))
            .await
            .context("reading task failed")??;
        let Some(input) = read else { return Ok(None) };
        self.remember(self.file.stamp, input.position.clone());
        let cursor = cursors.positions.get(&input.source_ref);
        Ok((cursor != Some(&input.position)).then_some(input))
    }
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
    // Read again with the hash taken here: a copy held must have it.
    let streamed = RawObject {
        location: ObjectLocation::File { path: file.path.clone(), sha256: position.clone() },
        len,
    };
    let streamed_raw = || Raw::Object(streamed.clone());
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
    let mut digest = sessionlake_storage::store::StreamDigest::default();
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
    let location = ObjectLocation::File { path: file.path.clone(), sha256: sha256.clone() };
    Ok(Some(TrailInput {
        source_ref: source_ref.clone(),
        position: sha256.clone(),
        raw: Raw::Object(RawObject { location, len }),
        expected: Some(RawDigest { len, sha256 }),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

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
