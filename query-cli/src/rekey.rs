//! `sessionlake rekey`: re-wraps the data key of every live encrypted object under a new
//! provider key (a new KMS key, or the local keyring's), without re-encrypting a byte.
//!
//! Objects of a session carry data keys wrapped under the session's key
//! (`sessionlake_lake::session_keys`); only the session key records
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
//! The old wrapping stays where it was written (raw headers, older manifests): re-keying moves
//! reads off the old provider key; disabling or deleting that key afterwards is what retires it.
//! The commit only lands on the head it was computed from: if ingest commits meanwhile (and,
//! say, replaces a session version), the plan is made again from the new head.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::sync::Arc;

use anyhow::Context as _;
use clap::Args as ClapArgs;
use futures::StreamExt as _;
use sessionlake_lake::keys::{KeyProvider, Keys, PROVIDER_KMS, PROVIDER_LOCAL};
use sessionlake_lake::manifest::Committer;
use sessionlake_lake::session_keys::PROVIDER_SESSION;
use sessionlake_lake::signing::KeyringSigner;
use sessionlake_lake::store::LakeStore;
use sessionlake_lake::transaction::Transaction;
use sessionlake_schemas::envelope::{MAX_HEADER_LEN, WrappedKey};
use sessionlake_schemas::manifest::{CommitAction, ObjectEntry, ObjectKind, SessionKeyRecord};

use crate::{Cli, Outcome, json_record};

/// Plans made again when another writer commits first.
const MAX_ATTEMPTS: usize = 5;
/// Keys unwrapped and re-wrapped at once (each may be two KMS calls).
const CONCURRENCY: usize = 16;

/// Options of `rekey`.
#[derive(Debug, ClapArgs)]
pub struct RekeyArgs {
    /// Re-wrap under this AWS KMS key (id, ARN or alias).
    #[arg(long, value_name = "KEY", conflicts_with = "to_keyring")]
    pub to_kms: Option<String>,
    /// Re-wrap under the local keyring's key (--keyring).
    #[arg(long, required_unless_present_any = ["to_kms", "new_signing_key"])]
    pub to_keyring: bool,
    /// Bring a new manifest signing key into the lake (an asymmetric AWS KMS key,
    /// `ECC_NIST_P256`): one commit signed by it records the change and retires the key of its
    /// kind that signed before. The only way a new signing key enters a lake: ingest and every
    /// other writer refuse a key that never signed it.
    #[arg(long, value_name = "KEY", conflicts_with_all = ["to_kms", "to_keyring"])]
    pub new_signing_key: Option<String>,
    /// Why, recorded in the commit.
    #[arg(long)]
    pub reason: Option<String>,
    /// Count what would be re-wrapped; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// JSON Lines: a `summary` record.
    #[arg(long)]
    pub json: bool,
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
    pub head: Option<sessionlake_lake::manifest::Head>,
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
    pub head: Option<sessionlake_lake::manifest::Head>,
    /// Nothing was changed.
    pub dry_run: bool,
}

/// Runs `sessionlake rekey --new-signing-key KEY`: on a wholly trusted chain, one commit
/// (action `rekey`) signed by the new key, which adds its public key record and retires the key
/// of its kind that signed last.
async fn new_signing_key(cli: &Cli, args: &RekeyArgs, key_id: &str) -> anyhow::Result<Outcome> {
    let keyring = crate::open_keyring_if_present(cli)?.map(Arc::new);
    let (store, _keys) = crate::open_lake_with(cli, keyring.clone()).await?;
    let signer: Arc<dyn sessionlake_lake::signing::ManifestSigner> =
        Arc::from(crate::signer(cli, Some(key_id), None, "rekey --new-signing-key").await?);
    let mut attempt = 0;
    let summary = loop {
        attempt += 1;
        let snapshot = crate::trusted_snapshot(cli, &store, keyring.as_deref()).await?;
        snapshot.ensure_trusted("rekey --new-signing-key")?;
        let retired =
            sessionlake_lake::manifest::last_signer_of(snapshot.chain(), signer.algorithm())
                .filter(|old| old != signer.key_id());
        let mut summary = SigningKeySummary {
            signing_key: signer.key_id().to_string(),
            retired: retired.clone(),
            dry_run: args.dry_run,
            ..Default::default()
        };
        sessionlake_lake::manifest::ensure_not_retired(&store, signer.key_id()).await?;
        if args.dry_run {
            break summary;
        }
        let reason = args.reason.clone().or_else(|| {
            Some(match &retired {
                Some(old) => format!("signing key {old} replaced by {}", signer.key_id()),
                None => format!("signing key {} added", signer.key_id()),
            })
        });
        let committer =
            Committer::new(Arc::clone(&signer)).replacing(retired.clone()).introducing();
        let committed = Transaction::begin(&store, &committer, snapshot.file_head())
            .commit(CommitAction::Rekey, reason, Vec::new(), Vec::new(), false)
            .await;
        match committed {
            Ok(link) => {
                summary.sequence = Some(link.manifest.body.sequence);
                summary.head = Some(link.head());
                break summary;
            }
            Err(error) if error.is_conflict() && attempt < MAX_ATTEMPTS => {
                tracing::info!(%error, "the lake moved on; planning again");
            }
            Err(error) => return Err(error.into()),
        }
    };
    let mut out = std::io::stdout().lock();
    if args.json {
        let value = serde_json::to_value(&summary).unwrap_or_default();
        writeln!(out, "{}", json_record("summary", &value))?;
    } else {
        let what = if summary.dry_run { "would sign" } else { "signs" };
        let retired = match &summary.retired {
            Some(old) => format!(" (retiring {old})"),
            None => String::new(),
        };
        writeln!(
            out,
            "{} {what} the commits of {} from now on{retired}",
            summary.signing_key,
            store.location()
        )?;
        if let Some(head) = &summary.head {
            writeln!(out, "head: manifest {} sha256 {}", head.sequence, head.sha256)?;
        }
    }
    Ok(Outcome::Matched)
}

/// Runs `sessionlake rekey`.
pub async fn rekey(cli: &Cli, args: &RekeyArgs) -> anyhow::Result<Outcome> {
    if let Some(key_id) = &args.new_signing_key {
        return new_signing_key(cli, args, key_id).await;
    }
    let keyring = crate::open_keyring_if_present(cli)?.map(Arc::new);
    let (store, keys) = crate::open_lake_with(cli, keyring.clone()).await?;
    let keyring = keys.keyring().cloned().with_context(|| {
        format!(
            "rekey signs its commit with the keyring, and {} was not found",
            cli.keyring.display()
        )
    })?;
    let (target, target_id, provider): (Arc<dyn KeyProvider>, String, &str) = match &args.to_kms {
        Some(key_id) => {
            let kms = keys.kms_provider(key_id)?;
            // Wrapped keys name the KMS key by ARN: resolve an alias or id to compare.
            let arn = kms.key_arn().await?;
            (Arc::new(kms), arn, PROVIDER_KMS)
        }
        None => {
            let id = keyring.key_id().to_string();
            (Arc::clone(&keyring) as Arc<dyn KeyProvider>, id, PROVIDER_LOCAL)
        }
    };
    let mut summary =
        RekeySummary { key_id: target_id.clone(), dry_run: args.dry_run, ..Default::default() };
    let committer = Committer::new(Arc::new(KeyringSigner(Arc::clone(&keyring))));
    let mut attempt = 0;
    loop {
        attempt += 1;
        let snapshot = crate::trusted_snapshot(cli, &store, Some(keyring.as_ref())).await?;
        snapshot.ensure_trusted("rekey")?;
        let head = snapshot.file_head();
        let live = snapshot.live();
        let (pending, unchanged) = plan(&store, live, provider, &target_id).await?;
        summary.rewrapped = pending.len();
        summary.unchanged = unchanged;
        if pending.is_empty() || args.dry_run {
            break;
        }
        let added = rewrap(&store, &keys, target.as_ref(), &target_id, &pending).await?;
        let removed = pending.into_iter().map(|pending| pending.entry).collect();
        let reason =
            args.reason.clone().or_else(|| Some(format!("data keys re-wrapped under {target_id}")));
        // The records re-wrapped in place are committed objects: nothing is staged, and a
        // commit that fails deletes nothing (the next rekey finds them rewritten).
        let committed = Transaction::begin(&store, &committer, head)
            .commit(CommitAction::Rekey, reason, added, removed, false)
            .await;
        match committed {
            Ok(link) => {
                summary.sequence = Some(link.manifest.body.sequence);
                summary.head = Some(link.head());
                break;
            }
            Err(error) if error.is_conflict() && attempt < MAX_ATTEMPTS => {
                tracing::info!(%error, "the lake moved on; planning again");
            }
            Err(error) => return Err(error.into()),
        }
    }
    report(&summary, args.json)?;
    Ok(Outcome::Matched)
}

/// Fails unless `record`, stored at `entry` with other bytes than the chain committed, can be
/// what a rekey that never committed wrote there: the same session's key, bound to this
/// record. A copy of another session's record (planted by whoever can write to the lake) is
/// refused: re-wrapping it would leave this session's objects readable by no key.
fn could_be_rewritten(entry: &ObjectEntry, record: &SessionKeyRecord) -> anyhow::Result<()> {
    use sessionlake_schemas::envelope::{CONTEXT_RECORD, CONTEXT_SUBJECT};
    let session = entry.sessions.first().map(String::as_str).unwrap_or_default();
    let named = |key: &str| record.key.context.get(key).map(String::as_str);
    let ours = record.session_id == session
        && named(CONTEXT_SUBJECT).is_none_or(|subject| subject == session)
        && named(CONTEXT_RECORD).is_none_or(|path| path == entry.path);
    anyhow::ensure!(
        ours,
        "rekey refused: {} is not the session key record the chain committed (sha256 {}), and          it holds the key of another session or record ({}), not one a rekey of {} wrote;          nothing was re-wrapped. Restore the committed record, or run `sessionlake verify`",
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
) -> anyhow::Result<(Vec<Pending>, usize)> {
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
                .with_context(|| format!("{} is not a session key record", entry.path))?;
            let committed = sessionlake_lake::store::sha256_hex(&bytes) == entry.sha256;
            if !committed {
                could_be_rewritten(entry, &record)?;
            }
            let wrapped = record.key.clone();
            return anyhow::Ok(Some((
                Pending { entry: entry.clone(), wrapped, record: Some(record) },
                committed,
            )));
        }
        let wrapped = match &entry.key {
            Some(wrapped) => wrapped.clone(),
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
async fn header_key(store: &LakeStore, entry: &ObjectEntry) -> anyhow::Result<WrappedKey> {
    let len = entry.size.min(8 + u64::from(MAX_HEADER_LEN));
    let start = store.get_range(&entry.path, 0..len).await?;
    let (header, _) =
        sessionlake_lake::envelope::read_header(&mut std::io::Cursor::new(&start), &entry.path)?;
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
) -> anyhow::Result<Vec<ObjectEntry>> {
    let rewrapped = futures::stream::iter(pending.iter().map(|pending| async move {
        let path = &pending.entry.path;
        let wrapped = if pending.wrapped.key_id == target_id {
            pending.wrapped.clone()
        } else {
            let key = keys
                .decrypt(&pending.wrapped)
                .await
                .with_context(|| format!("failed to unwrap the data key of {path}"))?;
            target
                .wrap_data_key(&key, pending.wrapped.context.clone())
                .await
                .with_context(|| format!("failed to re-wrap the data key of {path}"))?
        };
        let Some(record) = &pending.record else {
            return anyhow::Ok(ObjectEntry { key: Some(wrapped), ..pending.entry.clone() });
        };
        let record = SessionKeyRecord { key: wrapped, ..record.clone() };
        let json = serde_json::to_vec_pretty(&record).context("failed to encode a key record")?;
        let stored = store.put(path, bytes::Bytes::from(json)).await?;
        Ok(ObjectEntry { size: stored.size, sha256: stored.sha256, ..pending.entry.clone() })
    }))
    .buffered(CONCURRENCY)
    .collect::<Vec<_>>()
    .await;
    rewrapped.into_iter().collect()
}

fn report(summary: &RekeySummary, json: bool) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    let written = if json {
        let value = serde_json::to_value(summary).unwrap_or_default();
        writeln!(out, "{}", json_record("summary", &value))
    } else {
        let what = if summary.dry_run { "would re-wrap" } else { "re-wrapped" };
        let commit =
            summary.sequence.map(|sequence| format!(" (manifest {sequence})")).unwrap_or_default();
        writeln!(
            out,
            "{what} {} data keys under {}{commit}; {} already were",
            summary.rewrapped, summary.key_id, summary.unchanged
        )
        .and_then(|()| match &summary.head {
            Some(head) => writeln!(out, "head: {head}"),
            None => Ok(()),
        })
    };
    match written.and_then(|()| out.flush()) {
        Err(error) if error.kind() != std::io::ErrorKind::BrokenPipe => Err(error.into()),
        _ => Ok(()),
    }
}
