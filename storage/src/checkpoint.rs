//! Signed checkpoints: the live set as of one manifest, so that opening a lake costs the
//! manifests since the newest checkpoint, not its whole history (format on
//! [`sessionlake_schemas::manifest::Checkpoint`]).
//!
//! A checkpoint is written by a writer that knows the live set exactly (the ingest service every
//! [`CHECKPOINT_INTERVAL`] commits, `compact` after its commit, `sessionlake checkpoint` on
//! demand) with conditional writes, signed by the writer's key. It is one small signed object
//! and parts named by their SHA-256: each session's objects are in the part its id hashes to
//! ([`shard_of`]), so a reader that wants one session ([`Scope::Session`]) reads the signed
//! object and one part, whatever the size of the lake.
//!
//! A reader ([`crate::trust::Snapshot::open_latest`]) uses the newest checkpoint whose signature
//! verifies with a pinned signer, whose manifest is stored with the hash it names, and whose
//! parts (those it reads) are stored with the hashes it names; any other checkpoint is a
//! finding, and the reader falls back to an older one or to the whole chain. `sessionlake
//! verify` checks every checkpoint, all its parts, against the replay of the chain up to it.

use std::collections::{BTreeMap, HashMap};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::Bytes;
use futures::{StreamExt as _, TryStreamExt as _};
use sessionlake_schemas::manifest::{
    CHECKPOINT_VERSION, CHECKPOINT_VERSION_WHOLE, Checkpoint, CheckpointBody, CheckpointHead,
    CheckpointIndex, CheckpointPart, CheckpointShard, ManifestSignature, ObjectEntry, ShardMembers,
};
use sessionlake_schemas::paths;

use crate::error::{LakeError, LakeErrorKind, LakeResult};
use crate::manifest::ChainLink;
use crate::signing::{ManifestSigner, verify_signature_bytes};
use crate::store::{LakeStore, sha256_hex};
use crate::trust::PinnedSigner;

/// Commits between two checkpoints that the ingest service writes.
pub const CHECKPOINT_INTERVAL: u64 = 1_000;

/// About how many session entries (objects and places in shared objects) one part holds: a
/// part is a few hundred KB of JSON, read and parsed in milliseconds.
pub const PART_ENTRIES: usize = 1_024;

/// Parts written or read at once.
const PART_CONCURRENCY: usize = 16;

/// Which live objects a reader needs from a checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope<'a> {
    /// All of them.
    Whole,
    /// Those of no one session, and those that hold bytes of this session (with, from the same
    /// part, those of the other sessions that hash to it): for a command about one session.
    Session(&'a str),
}

/// Returns whether a writer that just committed `sequence` writes a checkpoint.
pub fn due(sequence: u64) -> bool {
    sequence > 0 && sequence.is_multiple_of(CHECKPOINT_INTERVAL)
}

/// Returns the part (of `parts`) that holds session `session`: FNV-1a (64 bits) of its id,
/// modulo the number of parts. Stable: it is part of the format.
pub fn shard_of(session: &str, parts: usize) -> usize {
    let hash = session.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    usize::try_from(hash % parts.max(1) as u64).unwrap_or(0)
}

/// A live set split as a version-2 checkpoint stores it.
struct Split<'a> {
    /// Objects of no session.
    whole: Vec<ObjectEntry>,
    /// Objects of several sessions, their session lists emptied.
    shared: Vec<ObjectEntry>,
    /// The parts, by shard, their entries borrowed from the live set (a copy of them all was
    /// as large as the live set, at the peak of a compaction's memory).
    shards: Vec<ShardOf<'a>>,
}

/// A [`CheckpointShard`] as it is written, its entries borrowed: the same fields in the same
/// order, so the same JSON.
#[derive(serde::Serialize)]
struct ShardOf<'a> {
    sequence: u64,
    shard: u32,
    entries: Vec<&'a ObjectEntry>,
    members: Vec<ShardMembers>,
}

/// Splits `live` (the live set after manifest `sequence`) into the signed object's lists and
/// the parts.
fn split(sequence: u64, live: &BTreeMap<String, ObjectEntry>) -> LakeResult<Split<'_>> {
    let session_entries: usize = live
        .values()
        .map(|entry| if entry.sessions.len() > 1 { entry.sessions.len() } else { 1 })
        .sum();
    let count = session_entries.div_ceil(PART_ENTRIES).max(1);
    let too_many = |what: &str| LakeError::format(format!("{what}: too many to checkpoint"));
    let mut shards: Vec<ShardOf<'_>> = (0..count)
        .map(|shard| {
            Ok(ShardOf {
                sequence,
                shard: u32::try_from(shard).map_err(|_| too_many("parts"))?,
                entries: Vec::new(),
                members: Vec::new(),
            })
        })
        .collect::<LakeResult<_>>()?;
    let (mut whole, mut shared) = (Vec::new(), Vec::new());
    for entry in live.values() {
        match entry.sessions.as_slice() {
            [] => whole.push(entry.clone()),
            [session] => shards[shard_of(session, count)].entries.push(entry),
            sessions => {
                let mut members: BTreeMap<usize, Vec<(u32, String)>> = BTreeMap::new();
                for (place, session) in sessions.iter().enumerate() {
                    let place = u32::try_from(place).map_err(|_| too_many(&entry.path))?;
                    members
                        .entry(shard_of(session, count))
                        .or_default()
                        .push((place, session.clone()));
                }
                for (shard, sessions) in members {
                    shards[shard].members.push(ShardMembers { path: entry.path.clone(), sessions });
                }
                shared.push(ObjectEntry { sessions: Vec::new(), ..entry.clone() });
            }
        }
    }
    Ok(Split { whole, shared, shards })
}

/// Writes the checkpoint of `live`, the live set right after manifest `head`, signed by
/// `signer`; returns its path. The parts are written first, the signed object that names them
/// last. A checkpoint of that manifest already stored is left as it is.
pub async fn write(
    store: &LakeStore,
    signer: &dyn ManifestSigner,
    head: &ChainLink,
    live: &BTreeMap<String, ObjectEntry>,
) -> LakeResult<String> {
    let sequence = head.manifest.body.sequence;
    let path = paths::checkpoint_object(sequence);
    let encode_error =
        |error: serde_json::Error| LakeError::format(format!("failed to encode {path}: {error}"));
    let Split { whole, shared, shards } = split(sequence, live)?;
    // Each part encoded as it is written: never all of them at once.
    let parts: Vec<CheckpointPart> = futures::stream::iter(shards)
        .map(|shard| async move {
            let json = serde_json::to_vec(&shard).map_err(encode_error)?;
            drop(shard);
            put_part(store, sequence, json).await
        })
        .buffered(PART_CONCURRENCY)
        .try_collect()
        .await?;
    let body = CheckpointBody {
        version: CHECKPOINT_VERSION,
        sequence,
        manifest_sha256: head.sha256.clone(),
        committed_at: chrono::Utc::now().to_rfc3339(),
        writer_id: crate::manifest::writer_id(),
        live: whole,
        index: Some(CheckpointIndex { shared, parts }),
        head: Some(CheckpointHead { size: head.size, manifest: head.manifest.without_objects() }),
    };
    let message = body.signing_bytes().map_err(encode_error)?;
    let signed = signer.sign(&message).await?;
    drop(message);
    let signature = ManifestSignature {
        algorithm: signer.algorithm().to_string(),
        key_id: signer.key_id().to_string(),
        value: B64.encode(signed),
    };
    let json = serde_json::to_vec(&Checkpoint { body, signature }).map_err(encode_error)?;
    // Locked like a manifest on a bucket with Object Lock.
    match store.put_commit(&path, Bytes::from(json)).await {
        Ok(_) => Ok(path),
        Err(error) if error.kind() == LakeErrorKind::AlreadyExists => {
            // Written before (by this writer or another that knew the same chain), or a plant
            // that would stand in for a checkpoint forever: only a valid one is taken as done.
            let stored = store.get(&path).await?;
            let signer = [PinnedSigner::of(signer, "this writer")];
            match check(&stored, sequence, &signer) {
                Ok(_) => Ok(path),
                Err(why) => Err(taken(store, &path, &why)),
            }
        }
        Err(error) => Err(error),
    }
}

/// Writes one part, named by its hash (locked like a manifest); one already stored with those
/// bytes is taken as written.
async fn put_part(store: &LakeStore, sequence: u64, json: Vec<u8>) -> LakeResult<CheckpointPart> {
    let sha256 = sha256_hex(&json);
    let part = CheckpointPart {
        path: paths::checkpoint_part_object(sequence, &sha256),
        size: json.len() as u64,
        sha256,
    };
    match store.put_commit(&part.path, Bytes::from(json)).await {
        Ok(_) => Ok(part),
        Err(error) if error.kind() == LakeErrorKind::AlreadyExists => {
            let stored = store.get(&part.path).await?;
            if sha256_hex(&stored) == part.sha256 {
                Ok(part)
            } else {
                Err(taken(store, &part.path, "its bytes do not hash to its name"))
            }
        }
        Err(error) => Err(error),
    }
}

fn taken(store: &LakeStore, path: &str, why: &str) -> LakeError {
    LakeError::new(
        LakeErrorKind::Integrity,
        format!("{} is taken by an object that is not its checkpoint: {why}", store.describe(path)),
    )
}

/// Returns the checkpoints of the lake by sequence, newest first.
pub async fn list(store: &LakeStore) -> LakeResult<Vec<(u64, String)>> {
    let mut found: Vec<(u64, String)> = store
        .list(paths::CHECKPOINT_DIR)
        .await?
        .into_iter()
        .filter_map(|(path, _)| paths::checkpoint_sequence(&path).map(|seq| (seq, path)))
        .collect();
    found.sort_by(|a, b| b.cmp(a));
    Ok(found)
}

/// Reads the checkpoint at `path` (stored as `sequence`) and checks that it is one a pinned
/// signer made for that sequence. The error says why it cannot be used.
pub async fn read_trusted(
    store: &LakeStore,
    sequence: u64,
    path: &str,
    pinned: &[PinnedSigner],
) -> LakeResult<Result<Checkpoint, String>> {
    Ok(match readable(store, path).await? {
        Ok(bytes) => check(&bytes, sequence, pinned),
        Err(why) => Err(why),
    })
}

/// Reads `path`; one that cannot be read for good (gone since the listing, refused) is a
/// reason not to use the checkpoint, a passing error is the caller's.
async fn readable(store: &LakeStore, path: &str) -> LakeResult<Result<Bytes, String>> {
    match store.get(path).await {
        Ok(bytes) => Ok(Ok(bytes)),
        Err(error) if !error.is_retryable() => Ok(Err(format!("cannot be read: {error}"))),
        Err(error) => Err(error),
    }
}

/// Parses a checkpoint file stored as `sequence` and checks its signature against `pinned`.
pub fn check(bytes: &[u8], sequence: u64, pinned: &[PinnedSigner]) -> Result<Checkpoint, String> {
    let checkpoint: Checkpoint =
        serde_json::from_slice(bytes).map_err(|error| format!("not a checkpoint: {error}"))?;
    let body = &checkpoint.body;
    match (body.version, &body.index, &body.head) {
        (CHECKPOINT_VERSION, Some(_), Some(head)) if head.manifest.body.sequence == sequence => {}
        (CHECKPOINT_VERSION_WHOLE, None, None) => {}
        (CHECKPOINT_VERSION | CHECKPOINT_VERSION_WHOLE, _, _) => {
            return Err(format!("a version {} checkpoint with the wrong layout", body.version));
        }
        (version, _, _) => {
            return Err(format!(
                "version {version} is not {CHECKPOINT_VERSION_WHOLE} or {CHECKPOINT_VERSION}"
            ));
        }
    }
    if body.sequence != sequence {
        return Err(format!("stored as sequence {sequence} but holds sequence {}", body.sequence));
    }
    let signature = &checkpoint.signature;
    let Some(pin) = pinned.iter().find(|pin| pin.key_id == signature.key_id) else {
        return Err(format!("signed by {}, not by a pinned signer", signature.key_id));
    };
    let value =
        B64.decode(&signature.value).map_err(|_| "the signature is not base64".to_string())?;
    let message = body.signing_bytes().map_err(|error| format!("cannot be re-encoded: {error}"))?;
    verify_signature_bytes(&signature.algorithm, &pin.public_key, &message, &value)
        .map_err(|why| format!("bad signature: {why}"))?;
    Ok(checkpoint)
}

/// Returns the live objects of `scope` that the (checked) `checkpoint` holds, by path, reading
/// the parts it needs and checking each against the hash the signed object names. The error
/// says why the checkpoint cannot be used (a part missing, altered or inconsistent).
///
/// With [`Scope::Session`], a shared object is there only if it holds a session of the
/// session's part, and its session list holds only that part's sessions.
pub async fn load(
    store: &LakeStore,
    checkpoint: Checkpoint,
    scope: Scope<'_>,
) -> LakeResult<Result<BTreeMap<String, ObjectEntry>, String>> {
    let body = checkpoint.body;
    let by_path = |entries: Vec<ObjectEntry>| -> BTreeMap<String, ObjectEntry> {
        entries.into_iter().map(|entry| (entry.path.clone(), entry)).collect()
    };
    let Some(index) = body.index else {
        return Ok(Ok(by_path(body.live)));
    };
    let count = index.parts.len();
    let wanted: Vec<usize> = match scope {
        Scope::Whole => (0..count).collect(),
        Scope::Session(session) => vec![shard_of(session, count)],
    };
    let sequence = body.sequence;
    let read: Vec<Result<CheckpointShard, String>> = futures::stream::iter(wanted)
        .map(|shard| read_part(store, sequence, &index.parts, shard))
        .buffered(PART_CONCURRENCY)
        .try_collect()
        .await?;
    let mut live = by_path(body.live);
    let mut shared: HashMap<String, ObjectEntry> =
        index.shared.into_iter().map(|entry| (entry.path.clone(), entry)).collect();
    let mut places: HashMap<String, Vec<(u32, String)>> = HashMap::new();
    for part in read {
        let part = match part {
            Ok(part) => part,
            Err(why) => return Ok(Err(why)),
        };
        live.extend(by_path(part.entries));
        for members in part.members {
            places.entry(members.path).or_default().extend(members.sessions);
        }
    }
    for (path, mut sessions) in places {
        let Some(mut entry) = shared.remove(&path) else {
            return Ok(Err(format!("a part names {path}, which is not one of its shared objects")));
        };
        sessions.sort_unstable();
        if scope == Scope::Whole
            && sessions.iter().enumerate().any(|(place, (at, _))| place as u64 != u64::from(*at))
        {
            return Ok(Err(format!("the parts do not hold every session of {path} once")));
        }
        entry.sessions = sessions.into_iter().map(|(_, session)| session).collect();
        live.insert(path, entry);
    }
    if scope == Scope::Whole && !shared.is_empty() {
        return Ok(Err(format!("{} shared objects are in no part", shared.len())));
    }
    Ok(Ok(live))
}

/// Reads part `shard` of `parts` and checks it against its size and hash, and that it is that
/// part of the checkpoint of manifest `sequence`.
async fn read_part(
    store: &LakeStore,
    sequence: u64,
    parts: &[CheckpointPart],
    shard: usize,
) -> LakeResult<Result<CheckpointShard, String>> {
    let Some(part) = parts.get(shard) else {
        return Ok(Err(format!("has no part {shard}")));
    };
    let bytes = match readable(store, &part.path).await? {
        Ok(bytes) => bytes,
        Err(why) => return Ok(Err(format!("its part {}: {why}", part.path))),
    };
    if bytes.len() as u64 != part.size || sha256_hex(&bytes) != part.sha256 {
        return Ok(Err(format!("its part {} is not the one it names (altered)", part.path)));
    }
    Ok(serde_json::from_slice::<CheckpointShard>(&bytes)
        .map_err(|error| format!("its part {} is not a part: {error}", part.path))
        .and_then(|found| {
            if found.sequence == sequence && found.shard as usize == shard {
                Ok(found)
            } else {
                Err(format!("its part {} is another checkpoint's", part.path))
            }
        }))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::Ordering;

    use object_store::ObjectStore;
    use sessionlake_schemas::manifest::{CommitAction, ObjectKind};

    use super::*;
    use crate::keys::LocalKeyring;
    use crate::manifest::Committer;
    use crate::signing::KeyringSigner;
    use crate::store::{LakeLocation, sha256_hex};
    use crate::test_store::Flaky;
    use crate::transaction::Transaction;
    use crate::trust::Snapshot;

    fn entry(index: usize) -> ObjectEntry {
        ObjectEntry::new(
            format!("sessions/dt=2026-03-14/s-{index}.local.1.parquet"),
            1,
            sha256_hex(b"x"),
            ObjectKind::Sessions,
            vec![format!("s-{index}")],
        )
    }

    /// An object holding the rows of three sessions, as a compacted file does.
    fn shared(index: usize) -> ObjectEntry {
        ObjectEntry {
            path: format!("commands/dt=2026-03-14/compact-{index}.parquet"),
            kind: ObjectKind::Commands,
            sessions: (0..3).map(|back| format!("s-{}", index - back)).collect(),
            ..entry(index)
        }
    }

    /// A part is written from entries borrowed from the live set: its JSON is byte for byte
    /// the [`CheckpointShard`] readers parse (same fields, same order), and parses as one.
    #[test]
    fn test_parts_written_from_borrowed_entries_are_checkpoint_shards() {
        let mut live: BTreeMap<String, ObjectEntry> = BTreeMap::new();
        for index in 2..3_000 {
            let entry = if index % 500 == 0 { shared(index) } else { entry(index) };
            live.insert(entry.path.clone(), entry);
        }
        let Split { shards, shared, .. } = split(7, &live).expect("split");
        assert!(shards.len() > 1 && !shared.is_empty());
        for shard in &shards {
            let owned = CheckpointShard {
                sequence: shard.sequence,
                shard: shard.shard,
                entries: shard.entries.iter().map(|entry| (*entry).clone()).collect(),
                members: shard.members.clone(),
            };
            let written = serde_json::to_vec(shard).expect("encode");
            assert_eq!(written, serde_json::to_vec(&owned).expect("encode"));
            let parsed: CheckpointShard = serde_json::from_slice(&written).expect("parse");
            assert_eq!(parsed, owned);
        }
    }

    /// A lake of 2,000 commits, each adding an object (every tenth removing an older one, every
    /// hundredth adding one of three sessions), with a checkpoint after commit 1,990, opens
    /// reading the checkpoint (its signed object and its parts) and the ten commits after it,
    /// to the live set of the whole replay; for one session, reading one part. A checkpoint
    /// that a pinned signer did not make, that names another manifest, or whose part was
    /// altered, is a finding, and an older one (or the whole chain) is read instead.
    #[tokio::test]
    async fn test_a_long_chain_opens_from_its_checkpoint() {
        const COMMITS: usize = 2_000;
        const CHECKPOINTED: u64 = 1_990;
        let dir = tempfile::tempdir().expect("tempdir");
        let (keyring, _) =
            LocalKeyring::open_or_create(&dir.path().join("k.json")).expect("keyring");
        let counting = Arc::new(Flaky::default());
        let store = LakeStore::from_object_store(
            LakeLocation::Local(dir.path().into()),
            Arc::clone(&counting) as Arc<dyn ObjectStore>,
        );
        let keyring = Arc::new(keyring);
        let signer = keyring.signer();
        let committer = Committer::new(Arc::new(KeyringSigner(Arc::clone(&keyring))));
        let mut writer = Transaction::begin(&store, &committer, None);
        let mut checkpoint_head = None;
        for index in 0..COMMITS {
            let removed = if index % 10 == 9 { vec![entry(index - 5)] } else { vec![] };
            let mut added = vec![entry(index)];
            if index % 100 == 50 {
                added.push(shared(index));
            }
            let link = writer
                .commit(CommitAction::Ingest, None, added, removed, false)
                .await
                .expect("commit");
            if link.manifest.body.sequence == CHECKPOINTED {
                checkpoint_head = Some(link);
            }
        }
        let pinned = [PinnedSigner::of(&signer, "the keyring")];
        let whole = Snapshot::open(&store, &pinned).await.expect("whole chain");
        assert_eq!(
            whole.live().len(),
            COMMITS - COMMITS / 10 + COMMITS / 100 + 1,
            "and the key record"
        );
        let head = checkpoint_head.expect("commit 1990");
        let upto: BTreeMap<String, ObjectEntry> = {
            let mut replay = BTreeMap::new();
            crate::manifest::apply_links(
                &mut replay,
                whole.chain().iter().filter(|link| link.manifest.body.sequence <= CHECKPOINTED),
            );
            replay
        };
        let path = write(&store, &signer, &head, &upto).await.expect("checkpoint");
        assert_eq!(path, paths::checkpoint_object(CHECKPOINTED));

        let bytes = store.get(&path).await.expect("read");
        let why = check(&bytes, CHECKPOINTED, &[]).expect_err("no signer pinned");
        assert!(why.contains("not by a pinned signer"), "{why}");
        let signed = check(&bytes, CHECKPOINTED, &pinned).expect("signed");
        let index = signed.body.index.as_ref().expect("version 2");
        let parts = index.parts.len();
        assert!(parts >= 2, "{parts} parts");
        assert_eq!(index.shared.len(), 20);
        assert!(signed.body.live.iter().all(|entry| entry.sessions.is_empty()));

        counting.reads.store(0, Ordering::Relaxed);
        let snapshot = Snapshot::open_latest(&store, &pinned).await.expect("from checkpoint");
        let reads = counting.reads.load(Ordering::Relaxed);
        // The checkpoint and its parts, manifests 1991 to 1999 (the checkpoint carries 1990),
        // and the keyring's public-key record.
        assert_eq!(reads, 1 + parts + 9 + 1, "objects read");
        assert_eq!(snapshot.checkpoint(), Some(CHECKPOINTED));
        assert_eq!(snapshot.live(), whole.live());
        assert_eq!(snapshot.file_head(), Some(COMMITS as u64 - 1));
        assert!(snapshot.problems().is_empty(), "{:?}", snapshot.problems());

        // One session's objects: one part read. Every object holding the session is there
        // (the shared ones with the sessions of that part only), and nothing that is not live.
        for session in ["s-1450", "s-1449", "s-3"] {
            counting.reads.store(0, Ordering::Relaxed);
            let scoped = Snapshot::open_latest_of(&store, &pinned, Scope::Session(session))
                .await
                .expect("one session");
            assert_eq!(counting.reads.load(Ordering::Relaxed), 1 + 1 + 9 + 1, "objects read");
            let holds = |entry: &ObjectEntry| entry.sessions.iter().any(|id| id == session);
            let theirs: Vec<&String> =
                whole.live().values().filter(|e| holds(e)).map(|e| &e.path).collect();
            let ours: Vec<&String> =
                scoped.live().values().filter(|e| holds(e)).map(|e| &e.path).collect();
            assert_eq!(ours, theirs, "{session}");
            assert!(!theirs.is_empty(), "{session}");
            for (path, entry) in scoped.live() {
                let full = whole.live().get(path).expect("live");
                assert_eq!(
                    ObjectEntry { sessions: vec![], ..entry.clone() },
                    ObjectEntry { sessions: vec![], ..full.clone() }
                );
                assert!(entry.sessions.iter().all(|id| full.sessions.contains(id)), "{path}");
            }
            assert!(scoped.live().len() < whole.live().len() * 3 / 4, "one of {parts} parts");
        }

        // A part altered: the checkpoint is a finding, and the whole chain is read.
        let first = index.parts[0].path.clone();
        store.put(&first, Bytes::from_static(b"{}")).await.expect("alter");
        let snapshot = Snapshot::open_latest(&store, &pinned).await.expect("open");
        assert_eq!(snapshot.checkpoint(), None);
        assert_eq!(snapshot.live(), whole.live());
        let kinds: Vec<(&str, &str)> =
            snapshot.problems().iter().map(|found| (found.kind, found.path.as_str())).collect();
        assert_eq!(kinds, vec![("bad-checkpoint", path.as_str())]);
        assert!(snapshot.problems()[0].detail.contains(&first), "{:?}", snapshot.problems());
        // Written again, the part is taken as it was.
        store.delete(&first).await.expect("delete");
        write(&store, &signer, &head, &upto).await.expect("checkpoint again");
        let snapshot = Snapshot::open_latest(&store, &pinned).await.expect("open");
        assert_eq!(snapshot.checkpoint(), Some(CHECKPOINTED));

        // A checkpoint signed by someone else is not used, and is named.
        let (other, _) =
            LocalKeyring::open_or_create(&dir.path().join("other.json")).expect("other keyring");
        let mut forged_live = upto.clone();
        forged_live.clear();
        let later = whole.chain().last().expect("head").clone();
        write(&store, &other.signer(), &later, &forged_live).await.expect("forged checkpoint");
        let snapshot = Snapshot::open_latest(&store, &pinned).await.expect("open");
        assert_eq!(snapshot.checkpoint(), Some(CHECKPOINTED), "the older, good one");
        assert_eq!(snapshot.live(), whole.live());
        let kinds: Vec<(&str, &str)> =
            snapshot.problems().iter().map(|found| (found.kind, found.path.as_str())).collect();
        let forged_path = paths::checkpoint_object(later.manifest.body.sequence);
        assert_eq!(kinds, vec![("bad-checkpoint", forged_path.as_str())]);

        // A checkpoint whose manifest was replaced: readers go on from the manifest the
        // checkpoint carries (the lake's copy is not read); the chain names the rewrite.
        store.delete(&forged_path).await.expect("delete");
        let mut replaced = (*head.manifest).clone();
        replaced.body.reason = Some("rewritten".into());
        store
            .put(
                &paths::manifest_object(CHECKPOINTED),
                Bytes::from(serde_json::to_vec(&replaced).expect("json")),
            )
            .await
            .expect("replace manifest");
        let snapshot = Snapshot::open_latest(&store, &pinned).await.expect("open");
        assert_eq!(snapshot.checkpoint(), Some(CHECKPOINTED));
        assert_eq!(snapshot.live(), whole.live());
        assert!(snapshot.problems().is_empty(), "{:?}", snapshot.problems());
        let chain = Snapshot::open(&store, &pinned).await.expect("open");
        let kinds: Vec<&str> = chain.problems().iter().map(|found| found.kind).collect();
        assert!(kinds.contains(&"bad-signature"), "{kinds:?}");

        // A planted object under keys/ far larger than a key record is a finding, not a stop
        // (nor read into memory).
        store.put("keys/huge.json", Bytes::from(vec![b' '; 1 << 20])).await.expect("plant");
        let snapshot = Snapshot::open(&store, &pinned).await.expect("opens");
        let found: Vec<(&str, &str)> = snapshot
            .problems()
            .iter()
            .map(|found| (found.kind, found.path.as_str()))
            .filter(|(_, path)| path.starts_with("keys/"))
            .collect();
        assert_eq!(found, vec![("bad-signature", "keys/huge.json")]);
    }
}
