//! The manifest chain: one signed JSON document per commit.
//!
//! # Format (`manifest/<sequence>.json`, version 1)
//!
//! ```json
//! {"body": {"version": 1, "sequence": 3, "previous_sha256": "…", "committed_at": "…",
//!           "writer_id": "…", "action": "ingest", "reason": null,
//!           "added": [{"path": "raw/dt=…/….sle", "size": 1234, "sha256": "…", "kind": "raw",
//!                      "sessions": ["alice-0123…"], "key": {…}}],
//!           "removed": []},
//!  "signature": {"algorithm": "ed25519", "key_id": "…", "value": "<base64>"}}
//! ```
//!
//! A writer that commits at least every N seconds (the ingest service in follow mode, with
//! [`CommitAction::Idle`] commits when nothing else happens) records `"idle_period_secs": N` in
//! each body: a promise that the next commit follows within that time, so a longer stretch
//! between two commits is a gap. Bodies without it (older writers, one-shot runs, the commit of
//! a writer that stops cleanly) promise nothing.
//!
//! Signature algorithms: [`SIGNATURE_ED25519`] signs the signing bytes; [`SIGNATURE_ECDSA_P256`]
//! (AWS KMS `Sign`, `ECDSA_SHA_256`) signs the 32-byte SHA-256 digest of the signing bytes as its
//! message (KMS takes at most 4096 bytes of raw message), DER-encoded.
//!
//! `previous_sha256` is the SHA-256 of the previous manifest file's bytes as stored, so the files
//! form a hash chain. The signature covers [`ManifestBody::signing_bytes`]: the body serialised as
//! compact JSON with object keys sorted, which a verifier can recompute from the parsed file.
//! `sha256` of an object is over its stored bytes (the ciphertext), so a lake verifies without keys.

use serde::{Deserialize, Serialize};

use crate::envelope::WrappedKey;

/// Version of [`ManifestBody`] written by this crate.
pub const MANIFEST_VERSION: u32 = 1;

/// [`ManifestSignature::algorithm`] of an Ed25519 signature over the signing bytes.
pub const SIGNATURE_ED25519: &str = "ed25519";
/// [`ManifestSignature::algorithm`] of an ECDSA P-256 / SHA-256 signature (ASN.1 DER) whose
/// message is the SHA-256 digest of the signing bytes.
pub const SIGNATURE_ECDSA_P256: &str = "ecdsa-p256-sha256";

/// Why a commit was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CommitAction {
    /// New sessions from a source.
    Ingest,
    /// Nothing new for a while: an empty commit, so that a deleted stretch shows as a gap.
    Idle,
    /// Objects removed or rewritten by a retention policy.
    Retention,
    /// A legal hold placed or released.
    Hold,
    /// A session's keys destroyed.
    Shred,
    /// Data keys re-wrapped under a new provider key.
    Rekey,
    /// Per-session `commands` and `sessions` files merged into compacted files
    /// (`sessionlake compact`); the files it removes are deleted after the commit.
    Compact,
}

/// What an object in the lake is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ObjectKind {
    /// An encrypted raw transcript.
    Raw,
    /// A `commands` Parquet file.
    Commands,
    /// A `sessions` Parquet file.
    Sessions,
    /// An `access` Parquet file (CloudTrail access events of one CloudTrail file and day).
    Access,
    /// An encrypted input that could not be parsed.
    Quarantine,
    /// A public key that verifies signatures.
    PublicKey,
    /// A session key record: the key that wraps every data key of one session version; or a
    /// file key record (`keys/files/`), the key that wraps the data key of one compacted or
    /// `access` file.
    SessionKey,
    /// A legal hold.
    Hold,
    /// Anything else the lake keeps.
    Other,
}

/// One object added or removed by a commit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectEntry {
    /// Path inside the lake.
    pub path: String,
    /// Size of the stored bytes.
    pub size: u64,
    /// SHA-256 (hex) of the stored bytes.
    pub sha256: String,
    /// What it is.
    pub kind: ObjectKind,
    /// Sessions it holds rows or bytes of.
    #[serde(default)]
    pub sessions: Vec<String>,
    /// The wrapped data key of an encrypted Parquet file (raw objects carry theirs in the header).
    /// Boxed: most entries have none, and a lake's live set holds an entry per object (at 10 M
    /// commands, held inline it was a tenth of the heap `compact` peaks at).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<Box<WrappedKey>>,
    /// A short reason, for quarantined input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// The SHA-256 of each block of the stored bytes, for a table file larger than one block:
    /// a reader checks the blocks it reads, not the whole file (a lookup in a large compacted
    /// file reads a few pages of it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blocks: Option<BlockDigests>,
}

/// SHA-256 digests of an object's consecutive blocks (see [`ObjectEntry::blocks`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockDigests {
    /// Size of every block but the last, which holds the rest (1 byte to a whole block).
    pub block_size: u64,
    /// SHA-256 (hex) of each block, in order.
    pub sha256: Vec<String>,
}

impl ObjectEntry {
    /// Returns the entry of an object with no wrapped key, note or block digests (set those
    /// fields where an object has them).
    pub fn new(
        path: String,
        size: u64,
        sha256: String,
        kind: ObjectKind,
        sessions: Vec<String>,
    ) -> Self {
        ObjectEntry { path, size, sha256, kind, sessions, key: None, note: None, blocks: None }
    }
}

impl ObjectKind {
    /// Returns whether objects of this kind are tables that engines read in ranges (and so get
    /// [`ObjectEntry::blocks`]).
    pub fn is_table(self) -> bool {
        matches!(self, ObjectKind::Commands | ObjectKind::Sessions | ObjectKind::Access)
    }
}

/// Returns the source of the version of `session_id` whose rows live in compacted files
/// (`sessionlake compact`), given the live objects: the version of a live session key record
/// (or, in a lake without them, raw object) of the session whose own `commands` file is not
/// live. Compaction moves only a version's `commands` and `sessions` rows; its original and its
/// key record stay its own, so they name it. `None` when no such version is live.
pub fn compacted_version_source<'a>(
    live: impl IntoIterator<Item = &'a ObjectEntry>,
    session_id: &str,
) -> Option<crate::SessionSource> {
    use std::collections::BTreeSet;
    let mut own_commands: BTreeSet<(crate::SessionSource, &str)> = BTreeSet::new();
    let mut versions: Vec<(crate::SessionSource, &str)> = Vec::new();
    for entry in live {
        let Some((id, source, version)) = crate::paths::session_version(&entry.path) else {
            continue;
        };
        if id != session_id {
            continue;
        }
        match entry.kind {
            ObjectKind::Commands => {
                own_commands.insert((source, version));
            }
            ObjectKind::SessionKey | ObjectKind::Raw => versions.push((source, version)),
            _ => {}
        }
    }
    versions.into_iter().find(|version| !own_commands.contains(version)).map(|(source, _)| source)
}

/// Returns the `commands` files to search: for a session delivered more than once (S3 and
/// CloudWatch), only the delivery `show` reads, so that each command is
/// found once and the sort key (time, session, seq) names one row. A compacted file holds only
/// versions that were their session's preferred one when compacted, and stays preferred (see
/// [`version_rank`]), so every session of a kept compacted file is read from it alone.
pub fn preferred_commands(
    live: &std::collections::BTreeMap<String, ObjectEntry>,
) -> std::collections::HashSet<String> {
    let mut best: std::collections::HashMap<&str, (usize, &str)> = std::collections::HashMap::new();
    for entry in live.values().filter(|entry| entry.kind == ObjectKind::Commands) {
        for session in &entry.sessions {
            let Some(rank) = version_rank(entry, session) else {
                continue;
            };
            let slot = best.entry(session).or_insert((rank, &entry.path));
            if rank < slot.0 {
                *slot = (rank, &entry.path);
            }
        }
    }
    best.into_values().map(|(_, path)| path.to_string()).collect()
}

/// Returns the `commands` files of [`preferred_commands`] and the `sessions` files of the same
/// deliveries: what a search reads and joins, so that a session's commands are dated by its
/// listed delivery's own row, never by another delivery's (a stream planted with an earlier
/// first event would otherwise move the session's start, and with it every command of a
/// transcript, which carries no time of its own, out of a searched range).
///
/// A session read from its own `commands` file takes the `sessions` file of the same version;
/// one read from a compacted file takes every `sessions` file of it but those of versions
/// whose own `commands` file is live (the other deliveries). Where that finds none (a row
/// compacted apart from its commands), every `sessions` file of the session is taken, as
/// before: dated by the earliest, never left without a time.
pub fn preferred_files(
    live: &std::collections::BTreeMap<String, ObjectEntry>,
) -> std::collections::HashSet<String> {
    use std::collections::HashMap;
    let commands = preferred_commands(live);
    let (listed, own_commands) = read_versions(live, &commands, |_| true);
    let mut chosen: HashMap<&str, Vec<&str>> = HashMap::new();
    let mut every: HashMap<&str, Vec<&str>> = HashMap::new();
    for entry in live.values().filter(|entry| entry.kind == ObjectKind::Sessions) {
        let version = crate::paths::session_version(&entry.path);
        for session in &entry.sessions {
            every.entry(session).or_default().push(&entry.path);
            let take = match (listed.get(session.as_str()), version) {
                (Some(listed), Some(version)) => *listed == version,
                (Some(_), None) => false,
                (None, Some(version)) => !own_commands.contains(&version),
                (None, None) => true,
            };
            if take {
                chosen.entry(session).or_default().push(&entry.path);
            }
        }
    }
    let mut files = commands;
    for (session, paths) in every {
        let paths = chosen.remove(session).unwrap_or(paths);
        files.extend(paths.into_iter().map(str::to_string));
    }
    files
}

/// A session version: its id, source and version name.
type Version<'a> = (&'a str, crate::SessionSource, &'a str);

/// Returns, for the sessions `wanted` keeps, the version each is read from when that is its own
/// `commands` file (one of `preferred`), and every version with its own live `commands` file
/// (read or not). A session read from a compacted file is in neither map: its version is the
/// one whose own `commands` file is gone.
fn read_versions<'a>(
    live: &'a std::collections::BTreeMap<String, ObjectEntry>,
    preferred: &std::collections::HashSet<String>,
    wanted: impl Fn(&str) -> bool,
) -> (std::collections::HashMap<&'a str, Version<'a>>, std::collections::HashSet<Version<'a>>) {
    let mut read = std::collections::HashMap::new();
    let mut own_commands = std::collections::HashSet::new();
    for entry in live.values().filter(|entry| entry.kind == ObjectKind::Commands) {
        if let Some(version @ (id, _, _)) = crate::paths::session_version(&entry.path)
            && wanted(id)
        {
            own_commands.insert(version);
            if preferred.contains(&entry.path) {
                read.insert(id, version);
            }
        }
    }
    (read, own_commands)
}

/// Returns, for each of `sessions`, the source of the delivery [`preferred_commands`] reads
/// (`preferred` holds its files): the source in a per-session file's name, or for a compacted
/// file the source of the version it holds ([`compacted_version_source`]), in two passes over
/// the live set.
pub fn preferred_sources<'a>(
    live: &'a std::collections::BTreeMap<String, ObjectEntry>,
    preferred: &std::collections::HashSet<String>,
    sessions: &std::collections::HashSet<&str>,
) -> std::collections::HashMap<&'a str, crate::SessionSource> {
    let (read, own_commands) = read_versions(live, preferred, |id| sessions.contains(id));
    let mut sources: std::collections::HashMap<&str, crate::SessionSource> =
        read.into_iter().map(|(id, (_, source, _))| (id, source)).collect();
    // The rest are read from compacted files: their version is the one whose own `commands`
    // file is gone.
    for entry in live.values() {
        if !matches!(entry.kind, ObjectKind::SessionKey | ObjectKind::Raw) {
            continue;
        }
        if let Some(version @ (id, source, _)) = crate::paths::session_version(&entry.path)
            && sessions.contains(id)
            && !sources.contains_key(id)
            && !own_commands.contains(&version)
        {
            sources.insert(id, source);
        }
    }
    sources
}

/// Returns, by session, the live `commands` files of the deliveries [`preferred_commands`]
/// leaves out: a session delivered by two sources (an S3 transcript and a CloudWatch stream of
/// it), or by one source from two source objects (a conflict: one of the objects claims a
/// session it did not record, or two sessions share an id). Readers that read one delivery per
/// session name what these hold and the read one lacks, so that a delivery put first (or
/// preferred by its source) by whoever can write to a source never silently hides another.
pub fn unlisted_deliveries(
    live: &std::collections::BTreeMap<String, ObjectEntry>,
    preferred: &std::collections::HashSet<String>,
) -> std::collections::BTreeMap<String, Vec<String>> {
    let mut unlisted: std::collections::BTreeMap<String, Vec<String>> =
        std::collections::BTreeMap::new();
    for entry in live.values().filter(|entry| entry.kind == ObjectKind::Commands) {
        if preferred.contains(&entry.path) {
            continue;
        }
        // Compacted files are always preferred (they hold preferred versions only).
        if let Some((id, _, _)) = crate::paths::session_version(&entry.path) {
            unlisted.entry(id.to_string()).or_default().push(entry.path.clone());
        }
    }
    unlisted
}

/// Returns each session that one source delivered from two or more source objects (both
/// versions live: neither replaces the other), with the raw objects of its versions.
pub fn conflicting_deliveries(
    live: &std::collections::BTreeMap<String, ObjectEntry>,
) -> std::collections::BTreeMap<(&str, crate::SessionSource), Vec<&str>> {
    let mut versions: std::collections::BTreeMap<(&str, crate::SessionSource), Vec<&str>> =
        std::collections::BTreeMap::new();
    for entry in live.values().filter(|entry| entry.kind == ObjectKind::Raw) {
        if let Some((id, source, _)) = crate::paths::session_version(&entry.path) {
            versions.entry((id, source)).or_default().push(&entry.path);
        }
    }
    versions.retain(|_, paths| paths.len() > 1);
    versions
}

/// Returns the live files of the table of `kind`, by lake path: for `commands`, one delivery
/// per session (the one `search` reads, [`preferred_commands`]) unless `every_delivery`; the
/// rows of the other tables are one per delivery or per CloudTrail event already. What
/// `sessionlake files` prints and what each table's Delta log lists.
pub fn live_table_files(
    live: &std::collections::BTreeMap<String, ObjectEntry>,
    kind: ObjectKind,
    every_delivery: bool,
) -> Vec<&str> {
    let preferred =
        (kind == ObjectKind::Commands && !every_delivery).then(|| preferred_commands(live));
    live.values()
        .filter(|entry| entry.kind == kind)
        .filter(|entry| preferred.as_ref().is_none_or(|chosen| chosen.contains(&entry.path)))
        .map(|entry| entry.path.as_str())
        .collect()
}

/// Returns the sources that delivered `session` (live objects only), in the order readers
/// (`show`, `export`) take them ([`version_rank`]): the source of the version in a compacted
/// `commands` file first, then by [`SessionSource::PREFERENCE`](crate::SessionSource::PREFERENCE).
pub fn session_sources(
    live: &std::collections::BTreeMap<String, ObjectEntry>,
    session: &str,
) -> Vec<crate::SessionSource> {
    let mut ranked: std::collections::BTreeMap<usize, crate::SessionSource> = Default::default();
    for entry in live.values() {
        match version_rank(entry, session) {
            Some(0) if entry.kind == ObjectKind::Commands && !ranked.contains_key(&0) => {
                if let Some(source) = compacted_version_source(live.values(), session) {
                    ranked.insert(0, source);
                }
            }
            Some(0) | None => {}
            Some(rank) => {
                ranked.insert(rank, crate::SessionSource::PREFERENCE[rank - 1]);
            }
        }
    }
    let mut sources = Vec::with_capacity(ranked.len());
    for source in ranked.into_values() {
        if !sources.contains(&source) {
            sources.push(source);
        }
    }
    sources
}

/// Returns how `show` ranks the version of `session` that `entry` holds (lower first): a
/// compacted file first (compaction only takes a session's preferred version, so this keeps
/// the choice it was made under when another delivery arrives later), then by
/// [`SessionSource::PREFERENCE`](crate::SessionSource::PREFERENCE); `None` when `entry` holds
/// no version of it.
fn version_rank(entry: &ObjectEntry, session: &str) -> Option<usize> {
    if crate::paths::is_compacted(&entry.path) {
        return entry.sessions.iter().any(|id| id == session).then_some(0);
    }
    crate::SessionSource::PREFERENCE
        .iter()
        .position(|source| crate::paths::is_session_object(&entry.path, session, *source))
        .map(|position| position + 1)
}

/// The signed part of a manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestBody {
    /// [`MANIFEST_VERSION`].
    pub version: u32,
    /// Position in the chain, from 0.
    pub sequence: u64,
    /// SHA-256 (hex) of the previous manifest's bytes; `None` for sequence 0.
    pub previous_sha256: Option<String>,
    /// RFC 3339 time of the commit.
    pub committed_at: String,
    /// Who wrote it (host and process of the writer).
    pub writer_id: String,
    /// Why.
    pub action: CommitAction,
    /// A person's reason, for holds, shreds and manual actions.
    #[serde(default)]
    pub reason: Option<String>,
    /// Objects the commit adds.
    pub added: Vec<ObjectEntry>,
    /// Objects the commit removes from the live set.
    pub removed: Vec<ObjectEntry>,
    /// The writer commits again within this many seconds (idle commits when nothing else
    /// happens); absent when it makes no such promise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_period_secs: Option<u64>,
}

impl ManifestBody {
    /// Returns the bytes a signature covers: compact JSON with sorted keys.
    pub fn signing_bytes(&self) -> Result<Vec<u8>, serde_json::Error> {
        // Every field named: one added to the body must be decided on here.
        let ManifestBody {
            version,
            sequence,
            previous_sha256,
            committed_at,
            writer_id,
            action,
            reason,
            added,
            removed,
            idle_period_secs,
        } = self;
        let skeleton = ManifestBody {
            version: *version,
            sequence: *sequence,
            previous_sha256: previous_sha256.clone(),
            committed_at: committed_at.clone(),
            writer_id: writer_id.clone(),
            action: *action,
            reason: reason.clone(),
            added: Vec::new(),
            removed: Vec::new(),
            idle_period_secs: *idle_period_secs,
        };
        sorted_json(&skeleton, &[("added", added), ("removed", removed)])
    }
}

/// Returns `skeleton` as compact JSON with every object's keys sorted (the bytes
/// `serde_json::to_vec` gives for its `Value`, whose maps are sorted), with the elements of
/// its top-level arrays named in `lists` (empty in `skeleton`) taken from there. Each element
/// becomes a `Value` alone: a `Value` of a whole compaction's manifest (100,000 entries) took
/// 130 MB to check a 61 MB file's signature.
fn sorted_json<T: Serialize>(
    skeleton: &T,
    lists: &[(&str, &[ObjectEntry])],
) -> Result<Vec<u8>, serde_json::Error> {
    use serde::ser::Error as _;
    let serde_json::Value::Object(fields) = serde_json::to_value(skeleton)? else {
        return Err(serde_json::Error::custom("signed bodies are JSON objects"));
    };
    // A list the skeleton does not name (one skipped when empty) would go unsigned.
    if let Some((name, _)) = lists.iter().find(|(name, _)| !fields.contains_key(*name)) {
        return Err(serde_json::Error::custom(format!("the signed body has no {name:?}")));
    }
    let mut out = Vec::new();
    out.push(b'{');
    for (place, (key, value)) in fields.iter().enumerate() {
        if place > 0 {
            out.push(b',');
        }
        serde_json::to_writer(&mut out, key)?;
        out.push(b':');
        match lists.iter().find(|(name, _)| name == key) {
            Some((_, elements)) => {
                out.push(b'[');
                for (place, element) in elements.iter().enumerate() {
                    if place > 0 {
                        out.push(b',');
                    }
                    serde_json::to_writer(&mut out, &serde_json::to_value(element)?)?;
                }
                out.push(b']');
            }
            None => serde_json::to_writer(&mut out, value)?,
        }
    }
    out.push(b'}');
    Ok(out)
}

/// A signature over [`ManifestBody::signing_bytes`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestSignature {
    /// [`SIGNATURE_ED25519`] or [`SIGNATURE_ECDSA_P256`].
    pub algorithm: String,
    /// Id of the signing key (a KMS key's ARN); its public half is at `keys/<key_id>.json`.
    pub key_id: String,
    /// The signature, base64.
    pub value: String,
}

/// A whole manifest file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// What was committed.
    pub body: ManifestBody,
    /// Who vouches for it.
    pub signature: ManifestSignature,
}

/// Version of [`CheckpointBody`] written by this crate: the live set split by session over
/// [`CheckpointIndex::parts`].
pub const CHECKPOINT_VERSION: u32 = 2;

/// The first version of [`CheckpointBody`], still read: the whole live set in
/// [`CheckpointBody::live`], no index.
pub const CHECKPOINT_VERSION_WHOLE: u32 = 1;

/// A signed checkpoint, `checkpoint/<sequence>.json`: the live set as of manifest `sequence`
/// (every manifest up to it replayed, the trusted ones only), so that a reader starts there
/// and reads only the manifests after it. It names the manifest's SHA-256, which ties it to
/// the chain, and is signed like a commit; `verify` checks that it equals the replay.
///
/// In version 2 the signed object is small: it holds the objects of no one session
/// ([`CheckpointBody::live`]: the lake's identity, key records, `access` files) and
/// [`CheckpointIndex`], which names by SHA-256 the parts (`checkpoint/<sequence>/<sha256>.json`,
/// each a [`CheckpointShard`]) that hold the rest, each session's objects in the part its id
/// hashes to. A reader that wants one session reads the signed object and one part.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// What it summarises.
    pub body: CheckpointBody,
    /// Who vouches for it.
    pub signature: ManifestSignature,
}

/// The signed part of a [`Checkpoint`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointBody {
    /// [`CHECKPOINT_VERSION`].
    pub version: u32,
    /// The manifest after which the live set is this.
    pub sequence: u64,
    /// SHA-256 (hex) of that manifest's bytes.
    pub manifest_sha256: String,
    /// RFC 3339 time the checkpoint was made.
    pub committed_at: String,
    /// Who wrote it.
    pub writer_id: String,
    /// The live objects, by path: all of them in version 1; in version 2 those that hold no
    /// session's bytes.
    pub live: Vec<ObjectEntry>,
    /// Version 2: where the other live objects are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<CheckpointIndex>,
    /// Version 2: the manifest the checkpoint is of, without its lists of objects, so that a
    /// reader links the manifests after it without reading it (a compaction's manifest names
    /// every file it replaced: tens of MB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head: Option<CheckpointHead>,
}

/// The manifest a version-2 [`Checkpoint`] is of, as a reader needs it to go on from there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointHead {
    /// Size of the manifest file.
    pub size: u64,
    /// The manifest with empty [`ManifestBody::added`] and [`ManifestBody::removed`] (its
    /// signature, which covers them, is kept as it is).
    pub manifest: Manifest,
}

impl Manifest {
    /// Returns the manifest without its lists of objects (see [`CheckpointHead`]).
    pub fn without_objects(&self) -> Manifest {
        Manifest {
            body: ManifestBody {
                version: self.body.version,
                sequence: self.body.sequence,
                previous_sha256: self.body.previous_sha256.clone(),
                committed_at: self.body.committed_at.clone(),
                writer_id: self.body.writer_id.clone(),
                action: self.body.action,
                reason: self.body.reason.clone(),
                added: Vec::new(),
                removed: Vec::new(),
                idle_period_secs: self.body.idle_period_secs,
            },
            signature: self.signature.clone(),
        }
    }
}

/// The session index of a version-2 [`Checkpoint`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointIndex {
    /// The objects that hold several sessions' rows (compacted table files), by path, each
    /// with an empty [`ObjectEntry::sessions`]: which sessions it holds is in the parts.
    pub shared: Vec<ObjectEntry>,
    /// The parts, by shard number: part `n` holds the sessions whose id hashes to `n` (see
    /// `sessionlake_storage::checkpoint::shard_of`) of `parts.len()`.
    pub parts: Vec<CheckpointPart>,
}

/// One part of a version-2 [`Checkpoint`], as the signed object names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointPart {
    /// Path inside the lake.
    pub path: String,
    /// Size of the stored bytes.
    pub size: u64,
    /// SHA-256 (hex) of the stored bytes.
    pub sha256: String,
}

/// A part of a version-2 [`Checkpoint`]: the live objects of the sessions of one shard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckpointShard {
    /// The manifest the checkpoint is of.
    pub sequence: u64,
    /// Which part this is.
    pub shard: u32,
    /// The live objects that hold exactly one session's bytes, that session in this shard.
    pub entries: Vec<ObjectEntry>,
    /// For each shared object ([`CheckpointIndex::shared`]) holding sessions of this shard:
    /// those sessions with their places in its [`ObjectEntry::sessions`].
    pub members: Vec<ShardMembers>,
}

/// Which sessions of one shard a shared object holds (see [`CheckpointShard::members`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShardMembers {
    /// The shared object's path.
    pub path: String,
    /// `(place in its sessions list, session id)`, in order.
    pub sessions: Vec<(u32, String)>,
}

impl CheckpointBody {
    /// Returns the bytes a signature covers: compact JSON with sorted keys.
    pub fn signing_bytes(&self) -> Result<Vec<u8>, serde_json::Error> {
        // Every field named: one added to the body must be decided on here.
        let CheckpointBody {
            version,
            sequence,
            manifest_sha256,
            committed_at,
            writer_id,
            live,
            index,
            head,
        } = self;
        let skeleton = CheckpointBody {
            version: *version,
            sequence: *sequence,
            manifest_sha256: manifest_sha256.clone(),
            committed_at: committed_at.clone(),
            writer_id: writer_id.clone(),
            live: Vec::new(),
            index: index.clone(),
            head: head.clone(),
        };
        sorted_json(&skeleton, &[("live", live)])
    }
}

/// A session key record, `keys/sessions/<session>.<source>.<version>.key.json`: the session key
/// (256 bits, wrapped by KMS or the keyring, context role `session`) under which the data key of
/// every object of that session version is wrapped. Deleting every record of a session
/// (`sessionlake shred`) makes every copy of its objects unreadable, wherever the copies are.
/// A file key record (`keys/files/…`, context role `file`) has the same form: the key of one
/// compacted `commands` file or one `access` file, with no session id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionKeyRecord {
    /// Session id; empty in a file key record.
    pub session_id: String,
    /// RFC 3339 time the key was made.
    pub created_at: String,
    /// The session key, wrapped by the key provider.
    pub key: WrappedKey,
}

/// `lake.json`: who this lake is. Every data key's encryption context names `lake_id`
/// ([`crate::envelope::CONTEXT_LAKE`]), so a key policy or a CloudTrail query can tell lakes
/// apart, and an object carried over from another lake is refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LakeIdentity {
    /// Random id, `lake-` and 32 hex digits.
    pub lake_id: String,
    /// RFC 3339 time the lake was created.
    pub created_at: String,
}

/// A public key that verifies manifest signatures, stored at `keys/<key_id>.json` (characters
/// other than ASCII letters, digits and `-` replaced by `-`) when the key first signs. When
/// another key takes over, the replaced key's record is written again with `valid_until` at
/// `keys/<key_id>.retired.json`. A signature is valid only if its manifest's `committed_at` is
/// within `[valid_from, valid_until)` of every record of the key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicKeyRecord {
    /// Key id, as named by [`ManifestSignature::key_id`].
    pub key_id: String,
    /// [`SIGNATURE_ED25519`] or [`SIGNATURE_ECDSA_P256`].
    pub algorithm: String,
    /// The public key, base64: the 32 raw bytes of an Ed25519 key, the DER
    /// SubjectPublicKeyInfo of an ECDSA key (as KMS `GetPublicKey` returns it).
    pub public_key: String,
    /// RFC 3339 time from which the key signs.
    pub valid_from: String,
    /// RFC 3339 time from which the key no longer signs (it was replaced).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_until: Option<String>,
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::SessionSource;
    use crate::paths::{commands_object, raw_object, session_stem};

    /// The live set of deliveries `(session, source, version)`: each a raw object and a
    /// `commands` file.
    fn live(deliveries: &[(&str, SessionSource, &str)]) -> BTreeMap<String, ObjectEntry> {
        let mut live = BTreeMap::new();
        for &(session, source, version) in deliveries {
            let stem = session_stem(session, source, version);
            let files = [
                (raw_object("2026-03-14", session, source, version), ObjectKind::Raw),
                (commands_object("2026-03-14", &stem), ObjectKind::Commands),
            ];
            for (path, kind) in files {
                let entry = ObjectEntry::new(
                    path.clone(),
                    1,
                    String::new(),
                    kind,
                    vec![session.to_string()],
                );
                live.insert(path, entry);
            }
        }
        live
    }

    /// Entries with every optional field, and text a JSON writer must escape.
    fn entries(count: usize) -> Vec<ObjectEntry> {
        (0..count)
            .map(|n| {
                let mut entry = ObjectEntry::new(
                    format!("commands/dt=2026-03-14/\"quoted\"\\ é\u{202e}\n{n}.parquet"),
                    n as u64,
                    format!("{n:064x}"),
                    ObjectKind::Commands,
                    vec![format!("alice-{n:017x}"), "bob-0123456789abcdef0".to_string()],
                );
                if n % 2 == 0 {
                    entry.key = Some(Box::new(WrappedKey {
                        provider: "local".to_string(),
                        key_id: "keyring".to_string(),
                        ciphertext: "AAAA\u{1}".to_string(),
                        context: [("role".to_string(), "commands".to_string())].into(),
                    }));
                    entry.note = Some("a note \t with a tab".to_string());
                    entry.blocks = Some(BlockDigests {
                        block_size: 262_144,
                        sha256: vec![format!("{n:064x}"), "ff".repeat(32)],
                    });
                }
                entry
            })
            .collect()
    }

    /// The signing bytes, written an entry at a time, are the bytes of the whole body's
    /// `Value` (compact, keys sorted): what every signature of an existing lake covers.
    #[test]
    fn test_signing_bytes_are_the_sorted_compact_json_of_the_whole_body() {
        let whole = |value: serde_json::Value| serde_json::to_vec(&value).expect("encode");
        for (added, removed, reason, idle) in
            [(0, 0, None, None), (3, 0, Some("why \"so\""), Some(60)), (5, 4, None, Some(1))]
        {
            let body = ManifestBody {
                version: MANIFEST_VERSION,
                sequence: 7,
                previous_sha256: Some("ab".repeat(32)),
                committed_at: "2026-03-14T09:00:00Z".to_string(),
                writer_id: "host/1234".to_string(),
                action: CommitAction::Compact,
                reason: reason.map(str::to_string),
                added: entries(added),
                removed: entries(removed),
                idle_period_secs: idle,
            };
            let expected = whole(serde_json::to_value(&body).expect("value"));
            assert_eq!(body.signing_bytes().expect("bytes"), expected, "{added} {removed}");
            let checkpoint = CheckpointBody {
                version: CHECKPOINT_VERSION,
                sequence: 7,
                manifest_sha256: "cd".repeat(32),
                committed_at: "2026-03-14T09:00:01Z".to_string(),
                writer_id: "host/1234".to_string(),
                live: entries(added + removed),
                index: (added > 0).then(|| CheckpointIndex {
                    shared: entries(2),
                    parts: vec![CheckpointPart {
                        path: "checkpoint/7/0.json".to_string(),
                        size: 10,
                        sha256: "ef".repeat(32),
                    }],
                }),
                head: (removed > 0).then(|| CheckpointHead {
                    size: 1,
                    manifest: Manifest {
                        body: body.clone(),
                        signature: ManifestSignature {
                            algorithm: SIGNATURE_ED25519.to_string(),
                            key_id: "keyring".to_string(),
                            value: "c2ln".to_string(),
                        },
                    },
                }),
            };
            let expected = whole(serde_json::to_value(&checkpoint).expect("value"));
            assert_eq!(checkpoint.signing_bytes().expect("bytes"), expected, "{added} {removed}");
        }
    }

    /// A search joins the `sessions` file of the delivery it reads: the transcript's, not a
    /// stream's; for a session read from a compacted file, the compacted row, not a later
    /// delivery's; and every file of a session whose own row is in none of those.
    #[test]
    fn test_a_search_joins_the_sessions_rows_of_the_delivery_it_reads() {
        let (s3, stream) = (SessionSource::S3, SessionSource::CloudwatchStream);
        let mut live = live(&[
            ("alice-0a", s3, "18f0000000000001"),
            ("alice-0a", stream, "18f0000000000002"),
            ("bob-0b", stream, "18f0000000000003"),
        ]);
        let sessions = |id, source, version| {
            crate::paths::sessions_object("2026-03-14", &session_stem(id, source, version))
        };
        for (id, source, version) in [
            ("alice-0a", s3, "18f0000000000001"),
            ("alice-0a", stream, "18f0000000000002"),
            ("bob-0b", stream, "18f0000000000003"),
            ("carol-0c", s3, "18f0000000000004"),
        ] {
            let path = sessions(id, source, version);
            let entry = ObjectEntry::new(
                path.clone(),
                1,
                String::new(),
                ObjectKind::Sessions,
                vec![id.to_string()],
            );
            live.insert(path, entry);
        }
        let files = preferred_files(&live);
        assert!(files.contains(&sessions("alice-0a", s3, "18f0000000000001")));
        assert!(!files.contains(&sessions("alice-0a", stream, "18f0000000000002")));
        assert!(files.contains(&sessions("bob-0b", stream, "18f0000000000003")));
        // carol has a sessions row and no commands: kept, as every such file is.
        assert!(files.contains(&sessions("carol-0c", s3, "18f0000000000004")));
    }

    /// A session's deliveries come in the order readers take them: by preference (S3, the
    /// local folder, CloudWatch upload, CloudWatch stream), and once a compacted file holds a
    /// version, that version's source first, whatever a later delivery is.
    #[test]
    fn test_a_sessions_sources_come_compacted_first_then_by_preference() {
        let (s3, stream, upload) =
            (SessionSource::S3, SessionSource::CloudwatchStream, SessionSource::CloudwatchUpload);
        let mut live = live(&[
            ("alice-0a", stream, "18f0000000000001"),
            ("alice-0a", upload, "18f0000000000002"),
            ("alice-0a", s3, "18f0000000000003"),
            ("bob-0b", stream, "18f0000000000004"),
        ]);
        assert_eq!(session_sources(&live, "alice-0a"), [s3, upload, stream]);
        assert_eq!(session_sources(&live, "bob-0b"), [stream]);
        assert_eq!(session_sources(&live, "carol-0c"), []);
        // bob's stream is compacted (its `commands` file goes into the compacted file; its raw
        // object stays), then S3 delivers bob too: the compacted version still comes first.
        live.remove(&commands_object(
            "2026-03-14",
            &session_stem("bob-0b", stream, "18f0000000000004"),
        ));
        let compacted =
            crate::paths::compacted_object("commands", "2026-03-14", "18f0000000000009");
        live.insert(
            compacted.clone(),
            ObjectEntry::new(
                compacted,
                1,
                String::new(),
                ObjectKind::Commands,
                vec!["bob-0b".to_string()],
            ),
        );
        live.extend(self::live(&[("bob-0b", s3, "18f0000000000005")]));
        assert_eq!(session_sources(&live, "bob-0b"), [stream, s3]);
    }

    /// The deliveries searches leave out are named: the second of a session one source
    /// delivered twice (two source objects), and the CloudWatch stream of a session S3
    /// delivered too; a session delivered once has none.
    #[test]
    fn test_the_unlisted_deliveries_of_a_session_are_named() {
        let (s3, stream) = (SessionSource::S3, SessionSource::CloudwatchStream);
        let live = live(&[
            ("alice-0a", s3, "18f0000000000001"),
            ("alice-0a", s3, "18f0000000000002"),
            ("bob-0b", stream, "18f0000000000002"),
            ("bob-0b", s3, "18f0000000000001"),
            ("carol-0c", stream, "18f0000000000003"),
        ]);
        let preferred = preferred_commands(&live);
        assert_eq!(preferred.len(), 3, "{preferred:?}");
        let object =
            |id, source, version| commands_object("2026-03-14", &session_stem(id, source, version));
        let first = object("alice-0a", s3, "18f0000000000001");
        assert!(preferred.contains(&first), "the first delivery is the one read");
        assert!(preferred.contains(&object("bob-0b", s3, "18f0000000000001")), "S3 first");
        let unlisted = unlisted_deliveries(&live, &preferred);
        assert_eq!(
            unlisted,
            BTreeMap::from([
                ("alice-0a".to_string(), vec![object("alice-0a", s3, "18f0000000000002")]),
                ("bob-0b".to_string(), vec![object("bob-0b", stream, "18f0000000000002")]),
            ])
        );
    }
}
