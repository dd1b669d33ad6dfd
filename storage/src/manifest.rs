//! Committing to and reading the manifest chain (format on [`sessionlake_schemas::manifest`]).
//!
//! A commit names objects that are already durable, links to the previous manifest by hash, is
//! signed, and is created with a conditional write so that two writers can never both commit the
//! same sequence number: the loser re-reads the head and tries the next one.

use std::collections::BTreeMap;

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
use crate::keys::{Signer, verify_ed25519};
use crate::store::{LakeStore, sha256_hex};

/// How many times a commit re-reads the head after losing a race before it gives up.
const MAX_COMMIT_ATTEMPTS: usize = 16;

/// Manifests read at once from the store.
const READ_CONCURRENCY: usize = 16;

/// One manifest of the chain as read from the lake.
#[derive(Debug, Clone)]
pub struct ChainLink {
    /// Path of the manifest file.
    pub path: String,
    /// SHA-256 of the file's bytes, which the next manifest names.
    pub sha256: String,
    /// Size of the file.
    pub size: u64,
    /// The parsed manifest.
    pub manifest: Manifest,
}

/// Returns the path of the public-key record of `key_id`.
pub fn public_key_path(key_id: &str) -> String {
    let name: String = key_id
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '-' })
        .collect();
    format!("{}/{name}.json", paths::KEYS_DIR)
}

fn writer_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_string())
        .unwrap_or_else(|_| "unknown-host".to_string());
    format!("{host}/{}", std::process::id())
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

fn identity_entry(path: &str, bytes: &[u8]) -> ObjectEntry {
    ObjectEntry {
        path: path.to_string(),
        size: bytes.len() as u64,
        sha256: sha256_hex(bytes),
        kind: ObjectKind::Other,
        sessions: Vec::new(),
        key: None,
        note: None,
    }
}

/// Returns the newest manifest, if the lake has any.
pub async fn head(store: &LakeStore) -> LakeResult<Option<ChainLink>> {
    let listed = store.list(paths::MANIFEST_DIR).await?;
    let Some(path) = listed
        .iter()
        .filter_map(|(path, _)| paths::manifest_sequence(path).map(|seq| (seq, path)))
        .max_by_key(|(seq, _)| *seq)
        .map(|(_, path)| path)
    else {
        return Ok(None);
    };
    let bytes = store.get(path).await?;
    let manifest = parse_manifest(path, &bytes)?;
    Ok(Some(ChainLink {
        path: path.clone(),
        sha256: sha256_hex(&bytes),
        size: bytes.len() as u64,
        manifest,
    }))
}

/// Reads every manifest in sequence order.
pub async fn read_chain(store: &LakeStore) -> LakeResult<Vec<ChainLink>> {
    let listed = store.list(paths::MANIFEST_DIR).await?;
    let mut numbered: Vec<(u64, String)> = listed
        .into_iter()
        .filter_map(|(path, _)| paths::manifest_sequence(&path).map(|seq| (seq, path)))
        .collect();
    numbered.sort();
    let reads = numbered.iter().map(|(_, path)| async move {
        let bytes = store.get(path).await?;
        let manifest = parse_manifest(path, &bytes)?;
        Ok::<_, LakeError>(ChainLink {
            path: path.clone(),
            sha256: sha256_hex(&bytes),
            size: bytes.len() as u64,
            manifest,
        })
    });
    // Bounded parallel reads: a long chain on S3 would otherwise be one round trip per file.
    futures::stream::iter(reads)
        .buffered(READ_CONCURRENCY)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect()
}

/// Returns the objects the chain says are live: added and not removed since, by path.
pub fn live_objects(chain: &[ChainLink]) -> BTreeMap<String, ObjectEntry> {
    let mut live = BTreeMap::new();
    for link in chain {
        for removed in &link.manifest.body.removed {
            live.remove(&removed.path);
        }
        for added in &link.manifest.body.added {
            live.insert(added.path.clone(), added.clone());
        }
    }
    live
}

/// Writes a commit naming `added` and `removed`, signed by `signer`. Returns the link written.
///
/// The objects must already be durable in the lake. The signer's public key is stored (and
/// committed) the first time it signs.
pub async fn commit(
    store: &LakeStore,
    signer: &Signer<'_>,
    action: CommitAction,
    reason: Option<String>,
    added: Vec<ObjectEntry>,
    removed: Vec<ObjectEntry>,
) -> LakeResult<ChainLink> {
    commit_after(store, signer, action, reason, added, removed, None).await
}

/// Like [`commit`], but only as the commit right after sequence `expected_head` (`None`: the
/// first commit of the lake): for a change computed from a snapshot of the live set, which a
/// commit in between could invalidate. Fails with [`LakeErrorKind::AlreadyExists`] when
/// another writer committed since; re-read and recompute then.
pub async fn commit_if_head(
    store: &LakeStore,
    signer: &Signer<'_>,
    action: CommitAction,
    reason: Option<String>,
    added: Vec<ObjectEntry>,
    removed: Vec<ObjectEntry>,
    expected_head: Option<u64>,
) -> LakeResult<ChainLink> {
    commit_after(store, signer, action, reason, added, removed, Some(expected_head)).await
}

async fn commit_after(
    store: &LakeStore,
    signer: &Signer<'_>,
    action: CommitAction,
    reason: Option<String>,
    mut added: Vec<ObjectEntry>,
    removed: Vec<ObjectEntry>,
    expected_head: Option<Option<u64>>,
) -> LakeResult<ChainLink> {
    let key_path = public_key_path(signer.key_id());
    if store.get_opt(&key_path).await?.is_none() {
        let record = PublicKeyRecord {
            key_id: signer.key_id().to_string(),
            algorithm: "ed25519".to_string(),
            public_key: B64.encode(signer.public_key()),
            valid_from: chrono::Utc::now().to_rfc3339(),
        };
        let json = serde_json::to_vec_pretty(&record)
            .map_err(|error| LakeError::format(format!("failed to encode {key_path}: {error}")))?;
        let stored = store.put(&key_path, Bytes::from(json)).await?;
        added.push(ObjectEntry {
            path: stored.path,
            size: stored.size,
            sha256: stored.sha256,
            kind: ObjectKind::PublicKey,
            sessions: Vec::new(),
            key: None,
            note: None,
        });
    }
    let writer = writer_id();
    for _ in 0..MAX_COMMIT_ATTEMPTS {
        let previous = head(store).await?;
        let head_sequence = previous.as_ref().map(|link| link.manifest.body.sequence);
        if let Some(expected) = expected_head
            && expected != head_sequence
        {
            return Err(changed_since(store, expected, head_sequence));
        }
        let sequence = head_sequence.map_or(0, |sequence| sequence + 1);
        let body = ManifestBody {
            version: MANIFEST_VERSION,
            sequence,
            previous_sha256: previous.map(|link| link.sha256),
            committed_at: chrono::Utc::now().to_rfc3339(),
            writer_id: writer.clone(),
            action,
            reason: reason.clone(),
            added: added.clone(),
            removed: removed.clone(),
        };
        let signing_bytes = body
            .signing_bytes()
            .map_err(|error| LakeError::format(format!("failed to encode manifest: {error}")))?;
        let signature = ManifestSignature {
            algorithm: "ed25519".to_string(),
            key_id: signer.key_id().to_string(),
            value: B64.encode(signer.sign(&signing_bytes)),
        };
        let manifest = Manifest { body, signature };
        let json = serde_json::to_vec_pretty(&manifest)
            .map_err(|error| LakeError::format(format!("failed to encode manifest: {error}")))?;
        let path = paths::manifest_object(sequence);
        match store.put_new(&path, Bytes::from(json)).await {
            Ok(stored) => {
                return Ok(ChainLink { path, sha256: stored.sha256, size: stored.size, manifest });
            }
            Err(error) if error.kind() == LakeErrorKind::AlreadyExists => {
                if let Some(expected) = expected_head {
                    return Err(changed_since(store, expected, Some(sequence)));
                }
                tracing::info!(sequence, "another writer committed first; retrying");
            }
            Err(error) => return Err(error),
        }
    }
    Err(LakeError::new(
        LakeErrorKind::Unavailable,
        format!("failed to commit to {}: lost {MAX_COMMIT_ATTEMPTS} races", store.location()),
    ))
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

/// Checks a manifest's signature against the public keys the lake holds.
pub fn verify_signature(
    link: &ChainLink,
    keys: &BTreeMap<String, PublicKeyRecord>,
) -> Result<(), String> {
    let signature = &link.manifest.signature;
    let Some(record) = keys.get(&signature.key_id) else {
        return Err(format!("{} is signed by unknown key {}", link.path, signature.key_id));
    };
    let public = B64
        .decode(&record.public_key)
        .map_err(|_| format!("public key {} is not base64", record.key_id))?;
    let value = B64
        .decode(&signature.value)
        .map_err(|_| format!("{} has a signature that is not base64", link.path))?;
    let message = link
        .manifest
        .body
        .signing_bytes()
        .map_err(|error| format!("{} cannot be re-encoded: {error}", link.path))?;
    if verify_ed25519(&public, &message, &value) {
        Ok(())
    } else {
        Err(format!("{} has a bad signature", link.path))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::keys::LocalKeyring;
    use crate::store::LakeLocation;

    fn entry(path: &str) -> ObjectEntry {
        ObjectEntry {
            path: path.into(),
            size: 1,
            sha256: sha256_hex(b"x"),
            kind: ObjectKind::Other,
            sessions: vec![],
            key: None,
            note: None,
        }
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
        let signer = keyring.signer();
        let first = commit(
            &store,
            &signer,
            CommitAction::Ingest,
            None,
            vec![entry("a"), entry("b")],
            vec![],
        )
        .await
        .expect("commit 0");
        let second =
            commit(&store, &signer, CommitAction::Retention, None, vec![], vec![entry("a")])
                .await
                .expect("commit 1");
        assert_eq!(second.manifest.body.previous_sha256.as_deref(), Some(first.sha256.as_str()));

        // A change computed against manifest 0 must not land after manifest 1.
        let stale = commit_if_head(
            &store,
            &signer,
            CommitAction::Rekey,
            None,
            vec![entry("a")],
            vec![],
            Some(0),
        )
        .await
        .expect_err("head moved");
        assert_eq!(stale.kind(), LakeErrorKind::AlreadyExists);
        assert!(stale.to_string().contains("head was manifest 0, now 1"), "{stale}");

        let chain = read_chain(&store).await.expect("read");
        assert_eq!(chain.len(), 2);
        let live: Vec<String> = live_objects(&chain).into_keys().collect();
        assert_eq!(live, vec!["b".to_string(), public_key_path(signer.key_id())]);

        let record: PublicKeyRecord = serde_json::from_slice(
            &store.get(&public_key_path(signer.key_id())).await.expect("key"),
        )
        .expect("parse");
        let keys = BTreeMap::from([(record.key_id.clone(), record)]);
        assert_eq!(verify_signature(&chain[1], &keys), Ok(()));
        let mut forged = chain[1].clone();
        forged.manifest.body.reason = Some("edited".into());
        assert!(verify_signature(&forged, &keys).is_err());
    }
}
