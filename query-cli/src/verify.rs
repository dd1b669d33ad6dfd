//! `sessionlake verify`: walks the manifest chain and checks that nothing was altered, removed
//! or slipped in.
//!
//! Reported, each naming the object or manifest:
//! - a manifest missing from the sequence, or whose `previous_sha256` does not match the
//!   manifest before it (a broken or forked chain);
//! - a manifest whose signature does not verify, or that is signed by a key other than the
//!   local keyring's (when the keyring is at hand: it pins the signer, so a key an attacker
//!   adds to the lake's `keys/` does not help them);
//! - a live object that is missing, or whose size or SHA-256 differs from what was committed;
//! - an object in the lake that no commit names (a write that never committed, or a plant).

use std::collections::{BTreeMap, BTreeSet};

use anyhow::Context as _;
use futures::StreamExt as _;
use sessionlake_lake::keys::LocalKeyring;
use sessionlake_lake::manifest::{self, ChainLink};
use sessionlake_lake::store::{LakeStore, sha256_hex};
use sessionlake_schemas::manifest::PublicKeyRecord;
use sessionlake_schemas::paths;

/// Objects read at once while checking hashes.
const CHECK_CONCURRENCY: usize = 16;

/// Folders whose every object must be named by a commit.
const COMMITTED_FOLDERS: [&str; 7] = [
    paths::RAW_DIR,
    paths::COMMANDS_DIR,
    paths::SESSIONS_DIR,
    paths::ACCESS_DIR,
    paths::QUARANTINE_DIR,
    paths::KEYS_DIR,
    paths::MANIFEST_DIR,
];

/// One problem found.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Finding {
    /// `missing-manifest`, `broken-link`, `bad-signature`, `unknown-signer`, `missing-object`,
    /// `altered-object`, `uncommitted-object`.
    pub kind: &'static str,
    /// The manifest or object.
    pub path: String,
    /// What exactly.
    pub detail: String,
}

/// What `verify` checked and found.
#[derive(Debug, Default, serde::Serialize)]
pub struct Report {
    /// Manifests read.
    pub manifests: usize,
    /// Live objects checked.
    pub objects: usize,
    /// Problems, in a stable order.
    pub findings: Vec<Finding>,
}

fn finding(kind: &'static str, path: &str, detail: String) -> Finding {
    Finding { kind, path: path.to_string(), detail }
}

pub(crate) fn check_chain(chain: &[ChainLink], report: &mut Report) {
    let mut next_sequence = 0u64;
    let mut previous_sha256: Option<&str> = None;
    for link in chain {
        let sequence = link.manifest.body.sequence;
        if sequence > next_sequence {
            report.findings.push(finding(
                "missing-manifest",
                &paths::manifest_object(next_sequence),
                format!("manifests {next_sequence} to {} are missing", sequence - 1),
            ));
        }
        if link.manifest.body.previous_sha256.as_deref() != previous_sha256 {
            report.findings.push(finding(
                "broken-link",
                &link.path,
                format!(
                    "names previous {:?}, but the manifest before it hashes to {:?}",
                    link.manifest.body.previous_sha256, previous_sha256
                ),
            ));
        }
        next_sequence = sequence.saturating_add(1);
        previous_sha256 = Some(&link.sha256);
    }
}

async fn check_signatures(
    store: &LakeStore,
    chain: &[ChainLink],
    keyring: Option<&LocalKeyring>,
    report: &mut Report,
) -> anyhow::Result<()> {
    let mut keys: BTreeMap<String, PublicKeyRecord> = BTreeMap::new();
    for (path, _) in store.list(paths::KEYS_DIR).await? {
        let bytes = store.get(&path).await?;
        match serde_json::from_slice::<PublicKeyRecord>(&bytes) {
            Ok(record) => {
                keys.insert(record.key_id.clone(), record);
            }
            Err(error) => report.findings.push(finding(
                "bad-signature",
                &path,
                format!("not a public key: {error}"),
            )),
        }
    }
    // The local keyring pins the signer: a public key planted in the lake proves nothing.
    let pinned = keyring.map(|keyring| {
        let signer = keyring.signer();
        (signer.key_id().to_string(), signer.public_key().to_vec())
    });
    if let Some((key_id, public)) = &pinned {
        use base64::Engine as _;
        let stored = keys
            .get(key_id)
            .map(|r| base64::engine::general_purpose::STANDARD.decode(&r.public_key));
        if !matches!(stored, Some(Ok(ref bytes)) if bytes == public) {
            let path = manifest::public_key_path(key_id);
            report.findings.push(finding(
                "unknown-signer",
                &path,
                "the lake's copy of the keyring's public key is missing or differs".into(),
            ));
        }
    }
    for link in chain {
        let signer = &link.manifest.signature.key_id;
        if let Some((key_id, _)) = &pinned
            && signer != key_id
        {
            report.findings.push(finding(
                "unknown-signer",
                &link.path,
                format!("signed by {signer}, not by the keyring's {key_id}"),
            ));
            continue;
        }
        if let Err(detail) = manifest::verify_signature(link, &keys) {
            report.findings.push(finding("bad-signature", &link.path, detail));
        }
    }
    Ok(())
}

/// Verifies the whole lake; `keyring`, when given, pins the manifest signer.
pub async fn verify(store: &LakeStore, keyring: Option<&LocalKeyring>) -> anyhow::Result<Report> {
    let mut report = Report::default();
    // List before reading the chain: an ingest committing meanwhile adds objects the chain
    // names, never objects it does not.
    let mut stored = Vec::new();
    for folder in COMMITTED_FOLDERS {
        stored.extend(store.list(folder).await?.into_iter().map(|(path, _)| path));
    }
    let chain = manifest::read_chain(store).await.context("failed to read the manifest chain")?;
    report.manifests = chain.len();
    check_chain(&chain, &mut report);
    check_signatures(store, &chain, keyring, &mut report).await?;

    let live = manifest::live_objects(&chain);
    report.objects = live.len();
    let checks = live.values().map(|entry| async move {
        match store.get_opt(&entry.path).await {
            Ok(None) => Some(finding(
                "missing-object",
                &entry.path,
                format!("committed as {} bytes, not in the lake", entry.size),
            )),
            Ok(Some(bytes)) => {
                let sha = sha256_hex(&bytes);
                (sha != entry.sha256 || bytes.len() as u64 != entry.size).then(|| {
                    finding(
                        "altered-object",
                        &entry.path,
                        format!(
                            "committed {} bytes sha256 {}, found {} bytes sha256 {sha}",
                            entry.size,
                            entry.sha256,
                            bytes.len()
                        ),
                    )
                })
            }
            Err(error) => {
                Some(finding("missing-object", &entry.path, format!("cannot be read: {error}")))
            }
        }
    });
    let found: Vec<Option<Finding>> =
        futures::stream::iter(checks).buffer_unordered(CHECK_CONCURRENCY).collect().await;
    report.findings.extend(found.into_iter().flatten());

    // Everything ever committed, live or removed since, plus the manifests themselves.
    let mut named: BTreeSet<&str> = chain.iter().map(|link| link.path.as_str()).collect();
    for link in &chain {
        named.extend(link.manifest.body.added.iter().map(|entry| entry.path.as_str()));
    }
    for folder in COMMITTED_FOLDERS {
        // An object removed by a later commit but still stored is fine: retention deletes it.
        for (path, _) in store.list(folder).await? {
            if !named.contains(path.as_str()) {
                report.findings.push(finding(
                    "uncommitted-object",
                    &path,
                    "no commit names it".into(),
                ));
            }
        }
    }
    report.findings.sort_by(|a, b| (a.kind, &a.path).cmp(&(b.kind, &b.path)));
    Ok(report)
}
