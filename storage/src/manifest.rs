//! Committing to and reading the manifest chain (format on [`sessionlake_schemas::manifest`]).
//!
//! A commit names objects that are already durable, links to the previous manifest by hash, is
//! signed, and is created with a conditional write so that two writers can never both commit the
//! same sequence number: the loser re-reads the head and tries the next one.
//!
//! The signer's public key is stored (and committed) at `keys/<key_id>.json` the first time it
//! signs. A [`Committer`] (the ingest service's writer) also records its idle-commit promise in
//! each body, and retires the key it replaces: that key's record is written again with
//! `valid_until` at `keys/<key_id>.retired.json`, and a retired key never signs again.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::Bytes;
use futures::StreamExt as _;
use sessionlake_schemas::manifest::{
    CommitAction, LakeIdentity, MANIFEST_VERSION, Manifest, ManifestBody, ManifestSignature,
    ObjectEntry, ObjectKind, PublicKeyRecord,
};
use sessionlake_schemas::paths;

use crate::error::{LakeError, LakeErrorKind, LakeResult};
use crate::signing::{ManifestSigner, verify_signature_bytes};
use crate::store::{LakeStore, sha256_hex};

/// Manifests read at once from the store.
const READ_CONCURRENCY: usize = 16;

/// Reason recorded in the last commit of a cleanly stopping writer (`sessionlake-ingest
/// --follow`); that commit still promises a restart within a period (see
/// [`Committer::with_restart_within`]).
pub const STOP_REASON: &str = "writer stopped";

/// One manifest of the chain as read from the lake.
#[derive(Debug, Clone)]
pub struct ChainLink {
    /// Path of the manifest file.
    pub path: String,
    /// SHA-256 of the file's bytes, which the next manifest names.
    pub sha256: String,
    /// Size of the file.
    pub size: u64,
    /// The parsed manifest (shared: the chain's judge and its snapshot hold one copy).
    pub manifest: std::sync::Arc<Manifest>,
}

impl ChainLink {
    /// Returns the head this manifest makes: its sequence and the SHA-256 of its file.
    pub fn head(&self) -> Head {
        Head { sequence: self.manifest.body.sequence, sha256: self.sha256.clone() }
    }
}

/// A head of the chain, as commits print it and `verify --expect-head` takes it: the
/// manifest's sequence and the SHA-256 of its file. Recorded outside the lake (a ticket, a
/// SIEM, a log group), it anchors the chain: a lake cut back before it, or rewritten, no longer
/// holds it. JSON: `{"sequence": 12, "sha256": "…"}`; text: `12:<sha256>` (see
/// [`Head::from_str`](std::str::FromStr)).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Head {
    /// Sequence number of the manifest.
    pub sequence: u64,
    /// SHA-256 (lower-case hex) of the manifest file's bytes.
    pub sha256: String,
}

impl std::fmt::Display for Head {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "manifest {} sha256 {}", self.sequence, self.sha256)
    }
}

impl std::str::FromStr for Head {
    type Err = String;

    /// Parses `SEQ:SHA256` (64 hex digits).
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (sequence, sha256) =
            text.split_once(':').ok_or_else(|| format!("head {text:?} is not SEQUENCE:SHA256"))?;
        let sequence = sequence
            .trim()
            .parse::<u64>()
            .map_err(|_| format!("head {text:?}: {sequence:?} is not a sequence number"))?;
        let sha256 = sha256.trim().to_ascii_lowercase();
        if sha256.len() != 64 || !sha256.bytes().all(|byte| byte.is_ascii_hexdigit()) {
            return Err(format!("head {text:?}: {sha256:?} is not a SHA-256 (64 hex digits)"));
        }
        Ok(Head { sequence, sha256 })
    }
}

fn key_file_stem(key_id: &str) -> String {
    key_id.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '-' }).collect()
}

/// Returns the path of the public-key record of `key_id`.
pub fn public_key_path(key_id: &str) -> String {
    format!("{}/{}.json", paths::KEYS_DIR, key_file_stem(key_id))
}

/// Returns the path of the record that retires `key_id` (its record with `valid_until`).
pub fn retired_key_path(key_id: &str) -> String {
    format!("{}/{}.retired.json", paths::KEYS_DIR, key_file_stem(key_id))
}

/// Returns this process's writer id, `host/pid`: in every manifest it signs and in its lease.
pub fn writer_id() -> String {
    format!("{}/{}", crate::lease::host_name(), std::process::id())
}

/// Parses a manifest file.
pub fn parse_manifest(path: &str, bytes: &[u8]) -> LakeResult<Manifest> {
    serde_json::from_slice(bytes)
        .map_err(|error| LakeError::format(format!("manifest {path} is not valid: {error}")))
}

/// Returns the lake's id and the manifest entry of `lake.json`, creating the file (with a
/// conditional write: of two writers starting a lake at once, one id wins) when it is absent.
/// The entry must be committed by the caller if the chain does not name it yet.
pub async fn lake_identity(store: &LakeStore) -> LakeResult<(String, ObjectEntry)> {
    let path = paths::LAKE_IDENTITY;
    for _ in 0..2 {
        let stored = match store.get_opt(path).await? {
            Some(bytes) => {
                let identity: LakeIdentity = serde_json::from_slice(&bytes).map_err(|error| {
                    LakeError::format(format!("{} is not valid: {error}", store.describe(path)))
                })?;
                let entry = identity_entry(path, &bytes);
                return Ok((identity.lake_id, entry));
            }
            None => {
                let mut id = [0u8; 16];
                ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut id)
                    .map_err(|_| LakeError::config("failed to draw a random lake id"))?;
                let identity = LakeIdentity {
                    lake_id: format!("lake-{}", hex::encode(id)),
                    created_at: chrono::Utc::now().to_rfc3339(),
                };
                let json = serde_json::to_vec_pretty(&identity).map_err(|error| {
                    LakeError::format(format!("failed to encode {path}: {error}"))
                })?;
                store.put_new(path, Bytes::from(json)).await
            }
        };
        match stored {
            Ok(_) => continue,
            Err(error) if error.kind() == LakeErrorKind::AlreadyExists => continue,
            Err(error) => return Err(error),
        }
    }
    Err(LakeError::format(format!("{} could not be created or read", store.describe(path))))
}

/// Returns the lake's id from the `lake.json` that `live` (a trusted live set) names, read and
/// checked against its commit; `None` in a lake written before ids.
pub async fn committed_lake_id(
    store: &LakeStore,
    live: &BTreeMap<String, ObjectEntry>,
) -> LakeResult<Option<String>> {
    let Some(entry) = live.get(paths::LAKE_IDENTITY) else {
        return Ok(None);
    };
    let bytes = store.get_committed(entry).await?;
    let identity: LakeIdentity = serde_json::from_slice(&bytes).map_err(|error| {
        LakeError::format(format!("{} is not valid: {error}", store.describe(&entry.path)))
    })?;
    Ok(Some(identity.lake_id))
}

fn identity_entry(path: &str, bytes: &[u8]) -> ObjectEntry {
    ObjectEntry::new(
        path.to_string(),
        bytes.len() as u64,
        sha256_hex(bytes),
        ObjectKind::Other,
        Vec::new(),
    )
}

/// One manifest file as stored, parsed or not (a hostile lake may hold anything).
#[derive(Debug, Clone)]
pub struct ManifestFile {
    /// Path of the file.
    pub path: String,
    /// The sequence number its name gives.
    pub name_sequence: u64,
    /// SHA-256 of the file's bytes.
    pub sha256: String,
    /// Size of the file.
    pub size: u64,
    /// The parsed manifest, or why it could not be parsed.
    pub manifest: Result<std::sync::Arc<Manifest>, String>,
}

impl ManifestFile {
    /// Returns the file as a chain link, if it parsed.
    pub fn link(&self) -> Option<ChainLink> {
        let manifest = self.manifest.as_ref().ok()?.clone();
        Some(ChainLink {
            path: self.path.clone(),
            sha256: self.sha256.clone(),
            size: self.size,
            manifest,
        })
    }
}

async fn read_manifest_file(
    store: &LakeStore,
    name_sequence: u64,
    path: String,
) -> LakeResult<ManifestFile> {
    let bytes = store.get(&path).await?;
    let manifest =
        parse_manifest(&path, &bytes).map(std::sync::Arc::new).map_err(|error| error.to_string());
    Ok(ManifestFile {
        sha256: sha256_hex(&bytes),
        size: bytes.len() as u64,
        manifest,
        name_sequence,
        path,
    })
}

/// Returns the manifest files of the lake, ordered by the sequence number their names give.
async fn list_manifests(store: &LakeStore) -> LakeResult<Vec<(u64, String)>> {
    list_manifests_from(store, 0).await
}

/// Returns the manifest files numbered `first` and later (only those are listed), ordered by
/// sequence.
pub async fn list_manifests_from(store: &LakeStore, first: u64) -> LakeResult<Vec<(u64, String)>> {
    let listed = match first.checked_sub(1) {
        Some(before) => {
            store.list_after(paths::MANIFEST_DIR, &paths::manifest_object(before)).await?
        }
        None => store.list(paths::MANIFEST_DIR).await?,
    };
    let mut numbered: Vec<(u64, String)> = listed
        .into_iter()
        .filter_map(|(path, _)| paths::manifest_sequence(&path).map(|seq| (seq, path)))
        .collect();
    numbered.sort();
    Ok(numbered)
}

/// Returns the newest manifest (by file name), if the lake has any.
pub async fn head(store: &LakeStore) -> LakeResult<Option<ChainLink>> {
    let Some((sequence, path)) = list_manifests(store).await?.pop() else {
        return Ok(None);
    };
    let file = read_manifest_file(store, sequence, path).await?;
    match file.manifest {
        Ok(manifest) => {
            Ok(Some(ChainLink { path: file.path, sha256: file.sha256, size: file.size, manifest }))
        }
        Err(why) => Err(LakeError::format(why)),
    }
}

/// Reads every manifest file, in the order of the sequence numbers their names give; a file
/// that does not parse is returned with the reason.
pub async fn read_manifest_files(store: &LakeStore) -> LakeResult<Vec<ManifestFile>> {
    read_manifest_files_from(store, 0).await
}

/// Reads the manifest files numbered `first` and later, like [`read_manifest_files`].
pub async fn read_manifest_files_from(
    store: &LakeStore,
    first: u64,
) -> LakeResult<Vec<ManifestFile>> {
    let numbered = list_manifests_from(store, first).await?;
    let reads = numbered.into_iter().map(|(seq, path)| read_manifest_file(store, seq, path));
    // Bounded parallel reads: a long chain on S3 would otherwise be one round trip per file.
    futures::stream::iter(reads)
        .buffered(READ_CONCURRENCY)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect()
}

/// Reads every manifest in sequence order; fails on a manifest that does not parse.
pub async fn read_chain(store: &LakeStore) -> LakeResult<Vec<ChainLink>> {
    read_manifest_files(store)
        .await?
        .into_iter()
        .map(|file| match file.manifest {
            Ok(manifest) => {
                Ok(ChainLink { path: file.path, sha256: file.sha256, size: file.size, manifest })
            }
            Err(why) => Err(LakeError::format(why)),
        })
        .collect()
}

/// Returns the objects the chain says are live: added and not removed since, by path.
pub fn live_objects(chain: &[ChainLink]) -> BTreeMap<String, ObjectEntry> {
    let mut live = BTreeMap::new();
    apply_links(&mut live, chain);
    live
}

/// Applies the commits of `links`, in order, to the live set `live`.
pub fn apply_links<'a>(
    live: &mut BTreeMap<String, ObjectEntry>,
    links: impl IntoIterator<Item = &'a ChainLink>,
) {
    for link in links {
        for removed in &link.manifest.body.removed {
            live.remove(&removed.path);
        }
        for added in &link.manifest.body.added {
            live.insert(added.path.clone(), added.clone());
        }
    }
}

fn encode_record(path: &str, record: &PublicKeyRecord) -> LakeResult<Bytes> {
    serde_json::to_vec_pretty(record)
        .map(Bytes::from)
        .map_err(|error| LakeError::format(format!("failed to encode {path}: {error}")))
}

fn parse_record(path: &str, bytes: &[u8]) -> LakeResult<PublicKeyRecord> {
    serde_json::from_slice(bytes).map_err(|error| {
        LakeError::format(format!("public key record {path} is not valid: {error}"))
    })
}

fn key_entry(stored: crate::store::StoredObject) -> ObjectEntry {
    stored.into_entry(ObjectKind::PublicKey, Vec::new())
}

/// Makes sure the lake holds the public-key record of `signer` (writing it, and adding it to
/// `added`, the first time the key signs) and that the key was never retired. When `replaces`
/// names another key that is not retired yet, writes its retirement record too. Returns the
/// records written, so that a failed commit can take them back.
async fn prepare_key_records(
    store: &LakeStore,
    signer: &dyn ManifestSigner,
    replaces: Option<&str>,
    added: &mut Vec<ObjectEntry>,
) -> LakeResult<Vec<String>> {
    let key_id = signer.key_id();
    let public_key = B64.encode(signer.public_key());
    ensure_not_retired(store, key_id).await?;
    let now = chrono::Utc::now().to_rfc3339();
    let mut written = Vec::new();
    let key_path = public_key_path(key_id);
    match store.get_opt(&key_path).await? {
        Some(bytes) => {
            let record = parse_record(&key_path, &bytes)?;
            if record.public_key != public_key || record.key_id != key_id {
                return Err(LakeError::new(
                    LakeErrorKind::Integrity,
                    format!("{key_path} holds another public key than signing key {key_id}"),
                ));
            }
        }
        None => {
            let record = PublicKeyRecord {
                key_id: key_id.to_string(),
                algorithm: signer.algorithm().to_string(),
                public_key,
                valid_from: now.clone(),
                valid_until: None,
            };
            let stored = store.put(&key_path, encode_record(&key_path, &record)?).await?;
            written.push(stored.path.clone());
            added.push(key_entry(stored));
        }
    }
    if let Some(old_key) = replaces.filter(|old_key| *old_key != key_id) {
        let old_path = public_key_path(old_key);
        let old_retired = retired_key_path(old_key);
        if store.get_opt(&old_retired).await?.is_none()
            && let Some(bytes) = store.get_opt(&old_path).await?
        {
            let record =
                PublicKeyRecord { valid_until: Some(now), ..parse_record(&old_path, &bytes)? };
            let stored = store.put(&old_retired, encode_record(&old_retired, &record)?).await?;
            tracing::info!(key = %old_key, by = %key_id, "manifest signing key retired");
            written.push(stored.path.clone());
            added.push(key_entry(stored));
        }
    }
    Ok(written)
}

/// Fails, naming both keys, if the lake has commits and `key_id` never signed it (the lake holds
/// no record of its public key): a new signing key enters a lake only through `sessionlake
/// rekey --new-signing-key`, a commit that records it. A keyring of another lake, a mistyped
/// `--signing-key`, or a key an attacker handed over then commit nothing.
pub async fn ensure_known_signer(store: &LakeStore, key_id: &str) -> LakeResult<()> {
    if store.get_opt(&public_key_path(key_id)).await?.is_some() {
        return Ok(());
    }
    let Some(newest) = head(store).await? else {
        return Ok(());
    };
    Err(LakeError::new(
        LakeErrorKind::Config,
        format!(
            "signing key {key_id} never signed {}, whose newest manifest {} is signed by {}: a \
             new signing key enters a lake only through `sessionlake rekey --new-signing-key \
             {key_id}`",
            store.location(),
            newest.path,
            newest.manifest.signature.key_id
        ),
    ))
}

/// Fails if the lake retired `key_id` (another key took over): a retired key never signs again.
pub async fn ensure_not_retired(store: &LakeStore, key_id: &str) -> LakeResult<()> {
    let retired_path = retired_key_path(key_id);
    if store.get_opt(&retired_path).await?.is_some() {
        return Err(LakeError::new(
            LakeErrorKind::Config,
            format!("signing key {key_id} was retired ({retired_path}): sign with a new key"),
        ));
    }
    Ok(())
}

/// What a commit says besides its objects.
struct CommitRequest<'a> {
    signer: &'a dyn ManifestSigner,
    replaces: Option<&'a str>,
    /// The signer's key may be new to the lake.
    introduces: bool,
    idle_period_secs: Option<u64>,
    action: CommitAction,
    reason: Option<String>,
    /// Commit only right after this head (`None`: only as the first commit).
    expected_head: Option<u64>,
}

async fn commit_request(
    store: &LakeStore,
    request: CommitRequest<'_>,
    mut added: Vec<ObjectEntry>,
    removed: Vec<ObjectEntry>,
) -> LakeResult<ChainLink> {
    let signer = request.signer;
    if !request.introduces {
        ensure_known_signer(store, signer.key_id()).await?;
    }
    let records = prepare_key_records(store, signer, request.replaces, &mut added).await?;
    let committed = sign_and_create(store, &request, added, removed).await;
    if committed.as_ref().is_err_and(|error| !error.is_outcome_unknown()) {
        // Records nothing names would show as uncommitted objects: take them back.
        for path in records {
            if let Err(error) = store.delete(&path).await {
                tracing::warn!(object = %path, error = %error, "uncommitted key record not deleted");
            }
        }
    }
    committed
}

async fn sign_and_create(
    store: &LakeStore,
    request: &CommitRequest<'_>,
    added: Vec<ObjectEntry>,
    removed: Vec<ObjectEntry>,
) -> LakeResult<ChainLink> {
    let signer = request.signer;
    let previous = head(store).await?;
    let head_sequence = previous.as_ref().and_then(|link| paths::manifest_sequence(&link.path));
    if request.expected_head != head_sequence {
        return Err(changed_since(store, request.expected_head, head_sequence));
    }
    // Numbered after the newest file, whatever its body says: a replayed old manifest
    // (which `verify` reports) must not make every later commit collide with it.
    let sequence = previous
        .as_ref()
        .map_or(Some(0), |link| {
            paths::manifest_sequence(&link.path).and_then(|seq| seq.checked_add(1))
        })
        .ok_or_else(|| LakeError::format("the manifest sequence is exhausted"))?;
    let body = ManifestBody {
        version: MANIFEST_VERSION,
        sequence,
        previous_sha256: previous.map(|link| link.sha256),
        committed_at: chrono::Utc::now().to_rfc3339(),
        writer_id: writer_id(),
        action: request.action,
        reason: request.reason.clone(),
        added,
        removed,
        idle_period_secs: request.idle_period_secs,
    };
    let signing_bytes = body
        .signing_bytes()
        .map_err(|error| LakeError::format(format!("failed to encode manifest: {error}")))?;
    let signed = signer.sign(&signing_bytes).await?;
    // As large as the file (60 MB for a compaction at 10 M commands): gone before it is made.
    drop(signing_bytes);
    let signature = ManifestSignature {
        algorithm: signer.algorithm().to_string(),
        key_id: signer.key_id().to_string(),
        value: B64.encode(signed),
    };
    let manifest = Manifest { body, signature };
    let json = serde_json::to_vec_pretty(&manifest)
        .map_err(|error| LakeError::format(format!("failed to encode manifest: {error}")))?;
    let path = paths::manifest_object(sequence);
    let json = Bytes::from(json);
    let stored = match store.put_commit(&path, json.clone()).await {
        Ok(stored) => (stored.sha256, stored.size),
        // The put may have landed and its response been lost (a retried create then finds the
        // name taken): the name holding these very bytes is this commit.
        Err(error) => match landed(store, &path, &json).await {
            Some(true) => (sha256_hex(&json), json.len() as u64),
            Some(false) if error.is_conflict() => {
                return Err(changed_since(store, request.expected_head, Some(sequence)));
            }
            Some(false) => return Err(error),
            None => {
                let message =
                    format!("{error}; whether manifest {sequence} was written is unknown");
                return Err(LakeError::new(error.kind(), message).outcome_unknown());
            }
        },
    };
    let link = ChainLink { path, sha256: stored.0, size: stored.1, manifest: manifest.into() };
    tracing::info!(
        sequence,
        sha256 = %link.sha256,
        action = ?link.manifest.body.action,
        "committed: head is manifest {sequence}"
    );
    Ok(link)
}

/// Whether the commit object at `path` holds exactly `ours`: `Some(true)` when it does,
/// `Some(false)` when it is absent or holds another commit, `None` when it cannot be read.
async fn landed(store: &LakeStore, path: &str, ours: &[u8]) -> Option<bool> {
    match store.get(path).await {
        Ok(stored) => Some(stored.as_ref() == ours),
        Err(error) if error.kind() == LakeErrorKind::NotFound => Some(false),
        Err(error) => {
            tracing::warn!(object = path, %error, "could not read back a commit whose put failed");
            None
        }
    }
}

fn changed_since(store: &LakeStore, expected: Option<u64>, found: Option<u64>) -> LakeError {
    let show = |sequence: Option<u64>| sequence.map_or("none".to_string(), |s| s.to_string());
    LakeError::new(
        LakeErrorKind::AlreadyExists,
        format!(
            "{} changed while the commit was prepared: its head was manifest {}, now {}",
            store.location(),
            show(expected),
            show(found)
        ),
    )
}

/// A long-running writer's commits: one signer, the key it replaces (retired at its first
/// commit), and the idle period it promises to commit within, recorded in every body.
#[derive(Clone)]
pub struct Committer {
    signer: Arc<dyn ManifestSigner>,
    replaces: Option<String>,
    idle_period: Option<Duration>,
    restart_within: Option<Duration>,
    /// May sign a lake its key never signed (`sessionlake rekey --new-signing-key`).
    introduces: bool,
}

impl std::fmt::Debug for Committer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Committer")
            .field("key_id", &self.signer.key_id())
            .field("replaces", &self.replaces)
            .field("idle_period", &self.idle_period)
            .field("restart_within", &self.restart_within)
            .field("introduces", &self.introduces)
            .finish()
    }
}

impl Committer {
    /// Returns a committer signing with `signer` that makes no promise and retires nothing.
    pub fn new(signer: Arc<dyn ManifestSigner>) -> Self {
        Committer {
            signer,
            replaces: None,
            idle_period: None,
            restart_within: None,
            introduces: false,
        }
    }

    /// Lets the signer's key enter a lake it never signed: the one commit that does so
    /// (`sessionlake rekey --new-signing-key`) records the change. Any other committer with a
    /// new key is refused ([`ensure_known_signer`]).
    pub fn introducing(mut self) -> Self {
        self.introduces = true;
        self
    }

    /// Retires `key_id` (if it is not the signer's own) at the first commit.
    pub fn replacing(mut self, key_id: Option<String>) -> Self {
        self.replaces = key_id;
        self
    }

    /// Promises, in every commit, to commit again within `period` (whole seconds, rounded up).
    pub fn with_idle_period(mut self, period: Option<Duration>) -> Self {
        self.idle_period = period;
        self
    }

    /// Promises, in the last commit of a clean stop, a commit within `period` again (the
    /// restart's): without it (or with zero), that commit promises nothing, and a chain cut
    /// back to it looks like a writer that stopped for good.
    pub fn with_restart_within(mut self, period: Option<Duration>) -> Self {
        self.restart_within = period.filter(|period| !period.is_zero());
        self
    }

    /// Returns the signer.
    pub fn signer(&self) -> &dyn ManifestSigner {
        self.signer.as_ref()
    }

    /// Returns the signer, shared (for another writer of the same process).
    pub fn shared_signer(&self) -> Arc<dyn ManifestSigner> {
        Arc::clone(&self.signer)
    }

    /// Commits `added` and `removed` right after `expected_head` (`None`: only as the first
    /// commit of the lake), recording the idle period, or when `stopping` (the last commit of a
    /// writer that stops) the restart period, if any. Fails with a conflict
    /// ([`LakeError::is_conflict`]) when another writer committed since. Writers commit through
    /// [`crate::transaction::Transaction`].
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn commit_on(
        &self,
        store: &LakeStore,
        action: CommitAction,
        reason: Option<String>,
        added: Vec<ObjectEntry>,
        removed: Vec<ObjectEntry>,
        stopping: bool,
        expected_head: Option<u64>,
    ) -> LakeResult<ChainLink> {
        let promise = if stopping { self.restart_within } else { self.idle_period };
        let idle_period_secs =
            promise.map(|period| period.as_secs() + u64::from(period.subsec_nanos() > 0));
        let request = CommitRequest {
            signer: self.signer.as_ref(),
            replaces: self.replaces.as_deref(),
            introduces: self.introduces,
            idle_period_secs,
            action,
            reason,
            expected_head,
        };
        commit_request(store, request, added, removed).await
    }
}

/// Returns the key id of the newest manifest of `chain` signed with `algorithm`: the key a new
/// signer of that kind replaces.
pub fn last_signer_of(chain: &[ChainLink], algorithm: &str) -> Option<String> {
    chain
        .iter()
        .rev()
        .map(|link| &link.manifest.signature)
        .find(|signature| signature.algorithm == algorithm)
        .map(|signature| signature.key_id.clone())
}

/// What the lake's records say about one signing key, merged over all of them: a record can
/// only narrow the validity (a planted record never widens it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValidity {
    /// Signature algorithm.
    pub algorithm: String,
    /// Public key bytes (decoded from base64).
    pub public_key: Vec<u8>,
    /// Signs from then on (µs since the epoch).
    pub valid_from: i64,
    /// Signs until then (exclusive), if replaced.
    pub valid_until: Option<i64>,
    /// Why the records cannot be trusted (they disagree, or do not parse).
    pub unusable: Option<String>,
}

/// Parses an RFC 3339 time into µs since the epoch.
pub fn parse_rfc3339_micros(text: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(text).ok().map(|time| time.timestamp_micros())
}

/// Merges public-key records (path and record) by key id.
pub fn merge_key_records(
    records: impl IntoIterator<Item = (String, PublicKeyRecord)>,
) -> BTreeMap<String, KeyValidity> {
    let mut merged: BTreeMap<String, KeyValidity> = BTreeMap::new();
    for (path, record) in records {
        let public_key = B64.decode(&record.public_key);
        let valid_from = parse_rfc3339_micros(&record.valid_from);
        let valid_until = record.valid_until.as_deref().map(parse_rfc3339_micros);
        let problem = match (&public_key, valid_from, valid_until) {
            (Err(_), _, _) => Some(format!("{path} has a public key that is not base64")),
            (_, None, _) | (_, _, Some(None)) => {
                Some(format!("{path} has a validity time that is not RFC 3339"))
            }
            _ => None,
        };
        let validity = KeyValidity {
            algorithm: record.algorithm.clone(),
            public_key: public_key.unwrap_or_default(),
            valid_from: valid_from.unwrap_or(i64::MAX),
            valid_until: valid_until.flatten(),
            unusable: problem,
        };
        match merged.get_mut(&record.key_id) {
            None => {
                merged.insert(record.key_id.clone(), validity);
            }
            Some(known) => {
                if known.algorithm != validity.algorithm || known.public_key != validity.public_key
                {
                    known.unusable.get_or_insert_with(|| {
                        format!("{path} names another public key for {}", record.key_id)
                    });
                }
                if let Some(problem) = validity.unusable {
                    known.unusable.get_or_insert(problem);
                }
                known.valid_from = known.valid_from.max(validity.valid_from);
                known.valid_until = match (known.valid_until, validity.valid_until) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
            }
        }
    }
    merged
}

/// Why a manifest's signature is not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignatureProblem {
    /// No record of the key that signed it.
    UnknownKey(String),
    /// The signature does not verify, or cannot be checked.
    Bad(String),
    /// The key signed outside its validity period.
    OutsideValidity(String),
}

impl SignatureProblem {
    /// Returns the explanation.
    pub fn detail(&self) -> &str {
        match self {
            SignatureProblem::UnknownKey(detail)
            | SignatureProblem::Bad(detail)
            | SignatureProblem::OutsideValidity(detail) => detail,
        }
    }
}

/// Checks a manifest's signature against the keys the lake holds, and that the key was valid
/// when the manifest says it was committed.
pub fn verify_signature(
    link: &ChainLink,
    keys: &BTreeMap<String, KeyValidity>,
) -> Result<(), SignatureProblem> {
    let signature = &link.manifest.signature;
    let Some(key) = keys.get(&signature.key_id) else {
        return Err(SignatureProblem::UnknownKey(format!(
            "{} is signed by unknown key {}",
            link.path, signature.key_id
        )));
    };
    if let Some(why) = &key.unusable {
        return Err(SignatureProblem::Bad(format!(
            "{} is signed by {}, whose record cannot be used: {why}",
            link.path, signature.key_id
        )));
    }
    if signature.algorithm != key.algorithm {
        return Err(SignatureProblem::Bad(format!(
            "{} has a {} signature, but key {} is {}",
            link.path, signature.algorithm, signature.key_id, key.algorithm
        )));
    }
    let value = B64.decode(&signature.value).map_err(|_| {
        SignatureProblem::Bad(format!("{} has a signature that is not base64", link.path))
    })?;
    let message = link.manifest.body.signing_bytes().map_err(|error| {
        SignatureProblem::Bad(format!("{} cannot be re-encoded: {error}", link.path))
    })?;
    verify_signature_bytes(&signature.algorithm, &key.public_key, &message, &value).map_err(
        |why| SignatureProblem::Bad(format!("{} has a bad signature: {why}", link.path)),
    )?;
    let committed_at = &link.manifest.body.committed_at;
    let Some(signed_at) = parse_rfc3339_micros(committed_at) else {
        return Err(SignatureProblem::Bad(format!(
            "{} has committed_at {committed_at:?}, not an RFC 3339 time",
            link.path
        )));
    };
    let before = signed_at < key.valid_from;
    let after = key.valid_until.is_some_and(|until| signed_at >= until);
    if before || after {
        let show = |micros: i64| {
            chrono::DateTime::from_timestamp_micros(micros)
                .map(|time| time.to_rfc3339())
                .unwrap_or_else(|| micros.to_string())
        };
        return Err(SignatureProblem::OutsideValidity(format!(
            "{} was signed at {committed_at} by {}, valid from {} until {}",
            link.path,
            signature.key_id,
            show(key.valid_from),
            key.valid_until.map_or_else(|| "now".to_string(), show)
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use sessionlake_schemas::manifest::SIGNATURE_ED25519;

    use super::*;
    use crate::keys::LocalKeyring;
    use crate::signing::KeyringSigner;
    use crate::store::LakeLocation;
    use crate::transaction::Transaction;

    fn entry(path: &str) -> ObjectEntry {
        ObjectEntry::new(path.into(), 1, sha256_hex(b"x"), ObjectKind::Other, vec![])
    }

    #[tokio::test]
    async fn test_chain_links_and_live_set() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (keyring, _) =
            LocalKeyring::open_or_create(&dir.path().join("k.json")).expect("keyring");
        let store = LakeStore::from_object_store(
            LakeLocation::Local(dir.path().into()),
            Arc::new(object_store::memory::InMemory::new()),
        );
        let keyring = Arc::new(keyring);
        let signer = keyring.signer();
        let committer = Committer::new(Arc::new(KeyringSigner(Arc::clone(&keyring))));
        let mut writer = Transaction::begin(&store, &committer, None);
        let first = writer
            .commit(CommitAction::Ingest, None, vec![entry("a"), entry("b")], vec![], false)
            .await
            .expect("commit 0");
        let second = writer
            .commit(CommitAction::Retention, None, vec![], vec![entry("a")], false)
            .await
            .expect("commit 1");
        assert_eq!(second.manifest.body.previous_sha256.as_deref(), Some(first.sha256.as_str()));
        // A change computed against manifest 0 must not land after manifest 1.
        let stale = Transaction::begin(&store, &committer, Some(0))
            .commit(CommitAction::Rekey, None, vec![entry("a")], vec![], false)
            .await
            .expect_err("head moved");
        assert!(stale.is_conflict(), "{stale}");
        assert!(stale.to_string().contains("head was manifest 0, now 1"), "{stale}");

        let chain = read_chain(&store).await.expect("read");
        assert_eq!(chain.len(), 2);
        let live: Vec<String> = live_objects(&chain).into_keys().collect();
        assert_eq!(live, vec!["b".to_string(), public_key_path(signer.key_id())]);

        let record: PublicKeyRecord = serde_json::from_slice(
            &store.get(&public_key_path(signer.key_id())).await.expect("key"),
        )
        .expect("parse");
        let keys = merge_key_records([(public_key_path(signer.key_id()), record.clone())]);
        assert_eq!(verify_signature(&chain[1], &keys), Ok(()));
        let mut forged = chain[1].clone();
        std::sync::Arc::make_mut(&mut forged.manifest).body.reason = Some("edited".into());
        assert!(matches!(verify_signature(&forged, &keys), Err(SignatureProblem::Bad(_))));

        // A record that retires the key before the commit narrows its validity; a planted
        // record that starts earlier cannot widen it again.
        let retired = PublicKeyRecord {
            valid_until: Some(chain[0].manifest.body.committed_at.clone()),
            ..record.clone()
        };
        let planted =
            PublicKeyRecord { valid_from: "2000-01-01T00:00:00Z".into(), ..record.clone() };
        let keys = merge_key_records([
            ("keys/a.json".to_string(), record.clone()),
            ("keys/b.json".to_string(), retired),
            ("keys/c.json".to_string(), planted),
        ]);
        assert!(
            matches!(verify_signature(&chain[1], &keys), Err(SignatureProblem::OutsideValidity(_))),
            "{keys:?}"
        );
        let other = PublicKeyRecord { public_key: B64.encode([7u8; 32]), ..record };
        let keys = merge_key_records([
            ("keys/a.json".to_string(), PublicKeyRecord { valid_until: None, ..other.clone() }),
            ("keys/b.json".to_string(), PublicKeyRecord { algorithm: "x".into(), ..other }),
        ]);
        assert!(matches!(verify_signature(&chain[1], &keys), Err(SignatureProblem::Bad(_))));
    }

    #[test]
    fn test_heads_parse_and_print() {
        let sha = "ab".repeat(32);
        let head: Head = format!("12:{}", sha.to_uppercase()).parse().expect("head");
        assert_eq!(head, Head { sequence: 12, sha256: sha.clone() });
        assert_eq!(head.to_string(), format!("manifest 12 sha256 {sha}"));
        for bad in ["12", "x:ab", &format!("12:{}", "ab".repeat(31)), &format!("-1:{sha}")] {
            assert!(bad.parse::<Head>().is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn test_committer_records_its_promise_and_retires_the_key_it_replaces() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (old, _) = LocalKeyring::open_or_create(&dir.path().join("old.json")).expect("old");
        let (new, _) = LocalKeyring::open_or_create(&dir.path().join("new.json")).expect("new");
        let store = LakeStore::from_object_store(
            LakeLocation::Local(dir.path().into()),
            Arc::new(object_store::memory::InMemory::new()),
        );
        let old = Arc::new(old);
        let old_committer = Committer::new(Arc::new(KeyringSigner(Arc::clone(&old))));
        Transaction::begin(&store, &old_committer, None)
            .commit(CommitAction::Ingest, None, vec![entry("a")], vec![], false)
            .await
            .expect("commit 0");
        let chain = read_chain(&store).await.expect("read");
        let replaced = last_signer_of(&chain, SIGNATURE_ED25519);
        assert_eq!(replaced.as_deref(), Some(old.signer().key_id()));
        let new = Arc::new(new);
        // A key that never signed the lake is refused, naming both keys: only a committer
        // that introduces it (`rekey --new-signing-key`) brings it in.
        let refused =
            Committer::new(Arc::new(KeyringSigner(Arc::clone(&new)))).replacing(replaced.clone());
        let error = Transaction::begin(&store, &refused, Some(0))
            .commit(CommitAction::Idle, None, vec![], vec![], false)
            .await
            .expect_err("a new key");
        let message = error.to_string();
        assert!(message.contains(new.signer().key_id()), "{message}");
        assert!(message.contains(old.signer().key_id()), "{message}");
        assert!(message.contains("rekey --new-signing-key"), "{message}");
        let committer = Committer::new(Arc::new(KeyringSigner(new)))
            .replacing(replaced)
            .introducing()
            .with_idle_period(Some(Duration::from_millis(1500)));
        let mut writer = Transaction::begin(&store, &committer, Some(0));
        let idle =
            writer.commit(CommitAction::Idle, None, vec![], vec![], false).await.expect("commit 1");
        assert_eq!(idle.manifest.body.idle_period_secs, Some(2));
        let paths: Vec<&str> =
            idle.manifest.body.added.iter().map(|entry| entry.path.as_str()).collect();
        let retired_path = retired_key_path(old.signer().key_id());
        assert_eq!(paths, vec![public_key_path(committer.signer().key_id()), retired_path.clone()]);
        let retired: PublicKeyRecord =
            serde_json::from_slice(&store.get(&retired_path).await.expect("retired"))
                .expect("parse");
        assert!(retired.valid_until.is_some());
        let stopped = writer
            .commit(CommitAction::Idle, Some("stopped".into()), vec![], vec![], true)
            .await
            .expect("commit 2");
        assert_eq!(stopped.manifest.body.idle_period_secs, None, "no restart promised");
        assert!(stopped.manifest.body.added.is_empty(), "records are written once");
        // A stop that promises the restart keeps the chain anchored across it.
        let restarting = committer.clone().with_restart_within(Some(Duration::from_secs(600)));
        let stopped = Transaction::begin(&store, &restarting, Some(2))
            .commit(CommitAction::Idle, Some("stopped".into()), vec![], vec![], true)
            .await
            .expect("commit 3");
        assert_eq!(stopped.manifest.body.idle_period_secs, Some(600));

        // The retired key never signs again.
        let error = Transaction::begin(&store, &old_committer, Some(3))
            .commit(CommitAction::Ingest, None, vec![], vec![], false)
            .await
            .expect_err("retired");
        assert_eq!(error.kind(), LakeErrorKind::Config, "{error}");
        assert!(error.to_string().contains("retired"), "{error}");
    }
}
