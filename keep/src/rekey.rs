//! Re-keying ([`rekey`]): re-wraps the data key of every live encrypted object under a new
//! provider key (a new KMS key, or the local keyring's), without re-encrypting a byte.
//!
//! Objects of a session carry data keys wrapped under the session's key
//! (`sessionlake_storage::session_keys`); only the session key records
//! (`keys/sessions/….key.json`) are wrapped by the provider, so those are what is re-wrapped:
//! each record is rewritten in place with the new wrapping and re-listed, with its new hash, by
//! the rekey commit (action `rekey`). A record rewritten by a rekey that crashed before its
//! commit shows in `verify` as altered until `rekey` is run again, which commits it.
//!
//! Objects written before session keys (their data key wrapped by the provider itself, in a raw
//! header that is bound to the body: its hash is every chunk's associated data) never change
//! either: the commit re-lists each with the same path, size and SHA-256 and the re-wrapped key
//! in `key`, which readers prefer to the header's. Hashes of objects are unchanged, so the chain
//! still verifies, and the commit says who re-keyed, when and why.
//!
//! Compacted `commands` files and `access` files carry data keys wrapped under a file key
//! (`keys/files/…`): those records are re-wrapped the same way, so engines that read the files'
//! standard key material (which names the record) follow the rekey too. Files written before
//! file keys are re-listed like old objects: sessionlake follows, other engines do not.
//!
//! The old wrapping stays where it was written (raw headers, older manifests): re-keying moves
//! reads off the old provider key; disabling or deleting that key afterwards is what retires it.
//! The commit only lands on the head it was computed from: if ingest commits meanwhile (and,
//! say, replaces a session version), the plan is made again from the new head.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::StreamExt as _;
use sessionlake_schemas::envelope::{MAX_HEADER_LEN, WrappedKey};
use sessionlake_schemas::manifest::{CommitAction, ObjectEntry, ObjectKind, SessionKeyRecord};
use sessionlake_storage::keys::{KeyProvider, Keys, LocalKeyring};
use sessionlake_storage::manifest::{ChainLink, Committer};
use sessionlake_storage::session_keys::PROVIDER_SESSION;
use sessionlake_storage::signing::{KeyringSigner, ManifestSigner};
use sessionlake_storage::store::LakeStore;
use sessionlake_storage::transaction::Transaction;
use sessionlake_storage::trust::{PinnedSigner, Snapshot};

use sessionlake_storage::ensure;

use crate::error::{Context as _, KeepError, KeepErrorKind, KeepResult};
use crate::lake::MAX_ATTEMPTS;

/// Keys unwrapped and re-wrapped at once (each may be two KMS calls).
const CONCURRENCY: usize = 16;

/// The lake a rekey changes, and whom it trusts.
pub struct RekeyLake<'a> {
    /// The lake's store.
    pub store: &'a LakeStore,
    /// The signers whose manifests are trusted.
    pub pinned: &'a [PinnedSigner],
    /// Says one thing the chain's snapshot left out.
    pub warn: fn(&str),
}

impl RekeyLake<'_> {
    /// Reads the trusted chain (saying what it leaves out) and fails unless it is wholly
    /// trusted.
    async fn trusted(&self, command: &str) -> KeepResult<Snapshot> {
        let snapshot = Snapshot::open(self.store, self.pinned).await?;
        for line in snapshot.ignored() {
            (self.warn)(&line);
        }
        snapshot.ensure_trusted(command)?;
        Ok(snapshot)
    }
}

/// The provider key a rekey wraps every data key under.
pub struct RekeyTarget {
    /// The provider.
    pub provider: Arc<dyn KeyProvider>,
    /// Its key, as wrapped keys name it (a KMS key by ARN).
    pub key_id: String,
    /// Its kind (`PROVIDER_KMS`, `PROVIDER_LOCAL`).
    pub kind: &'static str,
}

/// What a rekey did (or would do).
#[derive(Debug, Default, serde::Serialize)]
pub struct RekeySummary {
    /// The provider key now wrapping every data key.
    pub key_id: String,
    /// Objects whose key was re-wrapped (or would be, with --dry-run).
    pub rewrapped: usize,
    /// Objects already wrapped under the key.
    pub unchanged: usize,
    /// Manifest sequence of the rekey commit.
    pub sequence: Option<u64>,
    /// The head of the rekey commit (sequence and the manifest file's SHA-256).
    pub head: Option<sessionlake_storage::manifest::Head>,
    /// Nothing was changed.
    pub dry_run: bool,
}

/// One live object whose key is wrapped elsewhere.
struct Pending {
    entry: ObjectEntry,
    /// The key to re-wrap.
    wrapped: WrappedKey,
    /// For a session key record: the record as stored now (the key goes back into it).
    record: Option<SessionKeyRecord>,
}

/// What `rekey --new-signing-key` did (or would do).
#[derive(Debug, Default, serde::Serialize)]
pub struct SigningKeySummary {
    /// The key that signs the lake's commits from now on.
    pub signing_key: String,
    /// The key of its kind it retired, if one signed before.
    pub retired: Option<String>,
    /// Manifest sequence of the commit.
    pub sequence: Option<u64>,
    /// The head of the commit.
    pub head: Option<sessionlake_storage::manifest::Head>,
    /// Nothing was changed.
    pub dry_run: bool,
}

/// Brings `signer` into the lake: on a wholly trusted chain, one commit (action `rekey`) signed
/// by it, which adds its public key record and retires the key of its kind that signed last.
/// With `dry_run`, only says what it would do.
pub async fn new_signing_key(
    lake: &RekeyLake<'_>,
    signer: Arc<dyn ManifestSigner>,
    reason: Option<String>,
    dry_run: bool,
) -> KeepResult<SigningKeySummary> {
    let store = lake.store;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let snapshot = lake.trusted("rekey --new-signing-key").await?;
        let retired =
            sessionlake_storage::manifest::last_signer_of(snapshot.chain(), signer.algorithm())
                .filter(|old| old != signer.key_id());
        let mut summary = SigningKeySummary {
            signing_key: signer.key_id().to_string(),
            retired: retired.clone(),
            dry_run,
            ..Default::default()
        };
        sessionlake_storage::manifest::ensure_not_retired(store, signer.key_id()).await?;
        if dry_run {
            return Ok(summary);
        }
        let reason = reason.clone().or_else(|| {
            Some(match &retired {
                Some(old) => format!("signing key {old} replaced by {}", signer.key_id()),
                None => format!("signing key {} added", signer.key_id()),
            })
        });
        let committer =
            Committer::new(Arc::clone(&signer)).replacing(retired.clone()).introducing();
        let transaction = Transaction::begin(store, &committer, snapshot.file_head());
        let committed = commit(transaction, reason, Vec::new(), Vec::new(), attempt).await?;
        if let Some(link) = committed {
            summary.sequence = Some(link.manifest.body.sequence);
            summary.head = Some(link.head());
            return Ok(summary);
        }
    }
}

/// Re-wraps the data key of every live encrypted object under `target`, in one commit
/// (action `rekey`, signed by `keyring`'s key) on the head it planned from, planning again
/// after a lost race. With `dry_run`, only counts.
pub async fn rekey(
    lake: &RekeyLake<'_>,
    keys: &Keys,
    keyring: Arc<LocalKeyring>,
    target: &RekeyTarget,
    reason: Option<String>,
    dry_run: bool,
) -> KeepResult<RekeySummary> {
    let store = lake.store;
    let target_id = &target.key_id;
    let mut summary = RekeySummary { key_id: target_id.clone(), dry_run, ..Default::default() };
    let committer = Committer::new(Arc::new(KeyringSigner(keyring)));
    let mut attempt = 0;
    loop {
        attempt += 1;
        let snapshot = lake.trusted("rekey").await?;
        let head = snapshot.file_head();
        let live = snapshot.live();
        let (pending, unchanged) = plan(store, live, target.kind, target_id).await?;
        summary.rewrapped = pending.len();
        summary.unchanged = unchanged;
        if pending.is_empty() || dry_run {
            return Ok(summary);
        }
        let added = rewrap(store, keys, target.provider.as_ref(), target_id, &pending).await?;
        let removed = pending.into_iter().map(|pending| pending.entry).collect();
        let reason =
            reason.clone().or_else(|| Some(format!("data keys re-wrapped under {target_id}")));
        // The records re-wrapped in place are committed objects: nothing is staged, and a
        // commit that fails deletes nothing (the next rekey finds them rewritten).
        let transaction = Transaction::begin(store, &committer, head);
        if let Some(link) = commit(transaction, reason, added, removed, attempt).await? {
            summary.sequence = Some(link.manifest.body.sequence);
            summary.head = Some(link.head());
            return Ok(summary);
        }
    }
}

/// Commits a rekey (action `rekey`); `None` when another writer committed first and attempt
/// number `attempt` may plan again.
async fn commit(
    mut transaction: Transaction,
    reason: Option<String>,
    added: Vec<ObjectEntry>,
    removed: Vec<ObjectEntry>,
    attempt: usize,
) -> KeepResult<Option<ChainLink>> {
    match transaction.commit(CommitAction::Rekey, reason, added, removed, false).await {
        Ok(link) => Ok(Some(link)),
        Err(error) if error.is_conflict() && attempt < MAX_ATTEMPTS => {
            tracing::info!(%error, "the lake moved on; planning again");
            Ok(None)
        }
        Err(error) => Err(error.into()),
    }
}

/// Fails unless `record`, stored at `entry` with other bytes than the chain committed, can be
/// what a rekey that never committed wrote there: the same session's key, bound to this
/// record. A copy of another session's record (planted by whoever can write to the lake) is
/// refused: re-wrapping it would leave this session's objects readable by no key.
fn could_be_rewritten(entry: &ObjectEntry, record: &SessionKeyRecord) -> KeepResult<()> {
    use sessionlake_schemas::envelope::{CONTEXT_RECORD, CONTEXT_SUBJECT};
    let session = entry.sessions.first().map(String::as_str).unwrap_or_default();
    let named = |key: &str| record.key.context.get(key).map(String::as_str);
    // A file key record names no session, and was always bound to its path.
    let ours = if sessionlake_schemas::paths::is_file_key_record(&entry.path) {
        record.session_id.is_empty() && named(CONTEXT_RECORD) == Some(entry.path.as_str())
    } else {
        record.session_id == session
            && named(CONTEXT_SUBJECT).is_none_or(|subject| subject == session)
            && named(CONTEXT_RECORD).is_none_or(|path| path == entry.path)
    };
    ensure!(
        ours,
        KeepErrorKind::Integrity,
        "rekey refused: {} is not the session key record the chain committed (sha256 {}), and \
         it holds the key of another session or record ({}), not one a rekey of {} wrote; \
         nothing was re-wrapped. Restore the committed record, or run `sessionlake verify`",
        entry.path,
        entry.sha256,
        sessionlake_schemas::session_id::escaped(&record.session_id),
        session
    );
    Ok(())
}

/// Returns the live objects whose key is not wrapped under `target_id` yet (or whose record was
/// rewritten by a rekey that never committed), with their current wrapping, and how many already
/// are. Data keys wrapped under a session key are left alone: their record is re-wrapped.
async fn plan(
    store: &LakeStore,
    live: &BTreeMap<String, ObjectEntry>,
    provider: &str,
    target_id: &str,
) -> KeepResult<(Vec<Pending>, usize)> {
    let encrypted = live.values().filter(|entry| {
        entry.key.is_some()
            || matches!(
                entry.kind,
                ObjectKind::Raw | ObjectKind::Quarantine | ObjectKind::SessionKey
            )
    });
    let current = futures::stream::iter(encrypted.map(|entry| async move {
        if entry.kind == ObjectKind::SessionKey {
            let bytes = store.get(&entry.path).await?;
            let record: SessionKeyRecord = serde_json::from_slice(&bytes)
                .with_context_kind(KeepErrorKind::Format, || {
                    format!("{} is not a session key record", entry.path)
                })?;
            let committed = sessionlake_storage::store::sha256_hex(&bytes) == entry.sha256;
            if !committed {
                could_be_rewritten(entry, &record)?;
            }
            let wrapped = record.key.clone();
            return Ok::<_, KeepError>(Some((
                Pending { entry: entry.clone(), wrapped, record: Some(record) },
                committed,
            )));
        }
        let wrapped = match &entry.key {
            Some(wrapped) => WrappedKey::clone(wrapped),
            None => header_key(store, entry).await?,
        };
        if wrapped.provider == PROVIDER_SESSION {
            return Ok(None);
        }
        Ok(Some((Pending { entry: entry.clone(), wrapped, record: None }, true)))
    }))
    .buffered(CONCURRENCY)
    .collect::<Vec<_>>()
    .await;
    let mut pending = Vec::new();
    let mut unchanged = 0;
    for found in current {
        let Some((found, committed)) = found? else { continue };
        if found.wrapped.provider == provider && found.wrapped.key_id == target_id && committed {
            unchanged += 1;
        } else {
            pending.push(found);
        }
    }
    Ok((pending, unchanged))
}

/// Reads the wrapped key from a sealed object's header (its first bytes only).
async fn header_key(store: &LakeStore, entry: &ObjectEntry) -> KeepResult<WrappedKey> {
    let len = entry.size.min(8 + u64::from(MAX_HEADER_LEN));
    let start = store.get_range(&entry.path, 0..len).await?;
    let (header, _) =
        sessionlake_storage::envelope::read_header(&mut std::io::Cursor::new(&start), &entry.path)?;
    Ok(header.key)
}

/// Unwraps each pending key and wraps it again under `target`, with the same context (a key
/// already under `target` is kept); writes session key records back in place; returns the
/// objects' new manifest entries.
async fn rewrap(
    store: &LakeStore,
    keys: &Keys,
    target: &dyn KeyProvider,
    target_id: &str,
    pending: &[Pending],
) -> KeepResult<Vec<ObjectEntry>> {
    let rewrapped = futures::stream::iter(pending.iter().map(|pending| async move {
        let path = &pending.entry.path;
        let wrapped = if pending.wrapped.key_id == target_id {
            pending.wrapped.clone()
        } else {
            let key = keys
                .decrypt(&pending.wrapped)
                .await
                .with_context_kind(KeepErrorKind::Lake, || {
                    format!("failed to unwrap the data key of {path}")
                })?;
            target
                .wrap_data_key(&key, pending.wrapped.context.clone())
                .await
                .with_context_kind(KeepErrorKind::Lake, || {
                    format!("failed to re-wrap the data key of {path}")
                })?
        };
        let Some(record) = &pending.record else {
            return Ok::<_, KeepError>(ObjectEntry {
                key: Some(Box::new(wrapped)),
                ..pending.entry.clone()
            });
        };
        let record = SessionKeyRecord { key: wrapped, ..record.clone() };
        let json = serde_json::to_vec_pretty(&record)
            .context_kind(KeepErrorKind::Format, "failed to encode a key record")?;
        let stored = store.put(path, bytes::Bytes::from(json)).await?;
        Ok(ObjectEntry { size: stored.size, sha256: stored.sha256, ..pending.entry.clone() })
    }))
    .buffered(CONCURRENCY)
    .collect::<Vec<_>>()
    .await;
    rewrapped.into_iter().collect()
}
