//! Signed checkpoints: the live set as of one manifest, so that opening a lake costs the
//! manifests since the newest checkpoint, not its whole history (format on
//! [`sessionlake_schemas::manifest::Checkpoint`]).
//!
//! A checkpoint is written by a writer that knows the live set exactly (the ingest service every
//! [`CHECKPOINT_INTERVAL`] commits, `sessionlake checkpoint` on demand) with a conditional
//! write, signed by the writer's key. A reader ([`crate::trust::Snapshot::open_latest`]) uses
//! the newest checkpoint whose signature verifies with a pinned signer and whose manifest is
//! stored with the hash it names; any other checkpoint is a finding, and the reader falls back
//! to an older one or to the whole chain. `sessionlake verify` checks every checkpoint against
//! the replay of the chain up to it.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::Bytes;
use sessionlake_schemas::manifest::{
    CHECKPOINT_VERSION, Checkpoint, CheckpointBody, ManifestSignature, ObjectEntry,
};
use sessionlake_schemas::paths;

use crate::error::{LakeError, LakeErrorKind, LakeResult};
use crate::manifest::ChainLink;
use crate::signing::{ManifestSigner, verify_signature_bytes};
use crate::store::LakeStore;
use crate::trust::PinnedSigner;

/// Commits between two checkpoints that the ingest service writes.
pub const CHECKPOINT_INTERVAL: u64 = 1_000;

/// Returns whether a writer that just committed `sequence` writes a checkpoint.
pub fn due(sequence: u64) -> bool {
    sequence > 0 && sequence.is_multiple_of(CHECKPOINT_INTERVAL)
}

/// Writes the checkpoint of `live`, the live set right after manifest `head`, signed by
/// `signer`; returns its path. A checkpoint of that manifest already stored is left as it is.
pub async fn write(
    store: &LakeStore,
    signer: &dyn ManifestSigner,
    head: &ChainLink,
    live: &BTreeMap<String, ObjectEntry>,
) -> LakeResult<String> {
    let body = CheckpointBody {
        version: CHECKPOINT_VERSION,
        sequence: head.manifest.body.sequence,
        manifest_sha256: head.sha256.clone(),
        committed_at: chrono::Utc::now().to_rfc3339(),
        writer_id: crate::manifest::writer_id(),
        live: live.values().cloned().collect(),
    };
    let sequence = body.sequence;
    let path = paths::checkpoint_object(sequence);
    let encode_error =
        |error: serde_json::Error| LakeError::format(format!("failed to encode {path}: {error}"));
    let message = body.signing_bytes().map_err(encode_error)?;
    let signature = ManifestSignature {
        algorithm: signer.algorithm().to_string(),
        key_id: signer.key_id().to_string(),
        value: B64.encode(signer.sign(&message).await?),
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
                Err(why) => Err(LakeError::new(
                    LakeErrorKind::Integrity,
                    format!(
                        "{} is taken by an object that is not its checkpoint: {why}",
                        store.describe(&path)
                    ),
                )),
            }
        }
        Err(error) => Err(error),
    }
}

/// Returns the live set a checkpoint holds, by path.
pub fn into_live(checkpoint: Checkpoint) -> BTreeMap<String, ObjectEntry> {
    checkpoint.body.live.into_iter().map(|entry| (entry.path.clone(), entry)).collect()
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
    // One that cannot be read for good (gone since the listing, refused) is skipped like a
    // bad one; a passing error is the caller's.
    let bytes = match store.get(path).await {
        Ok(bytes) => bytes,
        Err(error) if !error.is_retryable() => return Ok(Err(format!("cannot be read: {error}"))),
        Err(error) => return Err(error),
    };
    Ok(check(&bytes, sequence, pinned))
}

/// Parses a checkpoint file stored as `sequence` and checks its signature against `pinned`.
pub fn check(bytes: &[u8], sequence: u64, pinned: &[PinnedSigner]) -> Result<Checkpoint, String> {
    let checkpoint: Checkpoint =
        serde_json::from_slice(bytes).map_err(|error| format!("not a checkpoint: {error}"))?;
    let body = &checkpoint.body;
    if body.version != CHECKPOINT_VERSION {
        return Err(format!("version {} is not {CHECKPOINT_VERSION}", body.version));
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
        ObjectEntry {
            path: format!("sessions/dt=2026-03-14/s-{index}.local.1.parquet"),
            size: 1,
            sha256: sha256_hex(b"x"),
            kind: ObjectKind::Sessions,
            sessions: vec![format!("s-{index}")],
            key: None,
            note: None,
            blocks: None,
        }
    }

    /// A lake of 2,000 commits, each adding an object (every tenth removing an older one), with
    /// a checkpoint after commit 1,990, opens reading the checkpoint and the ten commits after
    /// it, to the live set of the whole replay. A checkpoint that a pinned signer did not make,
    /// or that names another manifest, is a finding, and an older one (or the whole chain) is
    /// read instead.
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
            let link = writer
                .commit(CommitAction::Ingest, None, vec![entry(index)], removed, false)
                .await
                .expect("commit");
            if link.manifest.body.sequence == CHECKPOINTED {
                checkpoint_head = Some(link);
            }
        }
        let pinned = [PinnedSigner::of(&signer, "the keyring")];
        let whole = Snapshot::open(&store, &pinned).await.expect("whole chain");
        assert_eq!(whole.live().len(), COMMITS - COMMITS / 10 + 1, "and the key record");
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

        counting.reads.store(0, Ordering::Relaxed);
        let snapshot = Snapshot::open_latest(&store, &pinned).await.expect("from checkpoint");
        let reads = counting.reads.load(Ordering::Relaxed);
        // The checkpoint, manifests 1990 to 1999, and the keyring's public-key record.
        assert_eq!(reads, 1 + 10 + 1, "objects read");
        assert_eq!(snapshot.checkpoint(), Some(CHECKPOINTED));
        assert_eq!(snapshot.live(), whole.live());
        assert_eq!(snapshot.file_head(), Some(COMMITS as u64 - 1));
        assert!(snapshot.problems().is_empty(), "{:?}", snapshot.problems());

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

        // A checkpoint whose manifest was replaced: the whole chain is read instead.
        store.delete(&forged_path).await.expect("delete");
        let mut replaced = head.manifest.clone();
        replaced.body.reason = Some("rewritten".into());
        store
            .put(
                &paths::manifest_object(CHECKPOINTED),
                Bytes::from(serde_json::to_vec(&replaced).expect("json")),
            )
            .await
            .expect("replace manifest");
        let snapshot = Snapshot::open_latest(&store, &pinned).await.expect("open");
        assert_eq!(snapshot.checkpoint(), None);
        let kinds: Vec<&str> = snapshot.problems().iter().map(|found| found.kind).collect();
        assert!(kinds.contains(&"bad-checkpoint"), "{kinds:?}");
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
