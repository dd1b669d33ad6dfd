//! What opening a lake costs as its history grows (issue 16): a synthetic local lake of N
//! small signed commits over a live set of constant size (each commit replaces one of
//! [`LIVE_OBJECTS`] objects), opened by replaying the whole chain ([`Snapshot::open`]) and from
//! a checkpoint ten commits before the head ([`Snapshot::open_latest`]), interleaved, medians.
//!
//! ```sh
//! sessionlake-bench open-chain --commits 1000,10000,100000 --work /tmp/chain --runs 5
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context as _;
use base64::Engine as _;
use sessionlake_schemas::manifest::{
    CommitAction, MANIFEST_VERSION, Manifest, ManifestBody, ManifestSignature, ObjectEntry,
    ObjectKind, PublicKeyRecord, SIGNATURE_ED25519,
};
use sessionlake_schemas::paths;
use sessionlake_storage::keys::LocalKeyring;
use sessionlake_storage::manifest::{ChainLink, public_key_path};
use sessionlake_storage::store::{LakeLocation, LakeStore, sha256_hex};
use sessionlake_storage::trust::{PinnedSigner, Snapshot};

use crate::measure::median;

/// Objects live at any time in the synthetic lake.
pub const LIVE_OBJECTS: usize = 1_000;

/// Commits after the checkpoint.
const AFTER_CHECKPOINT: u64 = 10;

/// What `open-chain` measures.
#[derive(Debug, Clone)]
pub struct ChainOptions {
    /// Chain lengths to measure.
    pub commits: Vec<u64>,
    /// Scratch folder (one lake per length).
    pub work: PathBuf,
    /// Runs per figure.
    pub runs: usize,
}

/// One row of the result.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ChainRow {
    /// Commits in the chain.
    pub commits: u64,
    /// Median seconds to open by replaying every manifest.
    pub whole_chain: f64,
    /// Median seconds to open from the checkpoint.
    pub from_checkpoint: f64,
    /// Bytes of manifests in the lake.
    pub manifest_bytes: u64,
}

fn entry(slot: usize, version: u64) -> ObjectEntry {
    ObjectEntry::new(
        format!("sessions/dt=2026-03-14/s-{slot:04}.local.{version}.parquet"),
        4_096,
        sha256_hex(format!("{slot}/{version}").as_bytes()),
        ObjectKind::Sessions,
        vec![format!("s-{slot:04}")],
    )
}

/// Writes a lake of `commits` signed commits under `dir/lake` (the manifests directly, the way
/// a writer stores them) and a checkpoint ten commits before the head; returns the keyring.
async fn build(dir: &Path, commits: u64) -> anyhow::Result<LocalKeyring> {
    let (keyring, _) = LocalKeyring::open_or_create(&dir.join("keyring.json"))?;
    let lake = dir.join("lake");
    std::fs::create_dir_all(lake.join(paths::MANIFEST_DIR))?;
    std::fs::create_dir_all(lake.join(paths::KEYS_DIR))?;
    let signer = keyring.signer();
    let b64 = base64::engine::general_purpose::STANDARD;
    let record = PublicKeyRecord {
        key_id: signer.key_id().to_string(),
        algorithm: SIGNATURE_ED25519.to_string(),
        public_key: b64.encode(signer.public_key()),
        valid_from: "2026-01-01T00:00:00Z".to_string(),
        valid_until: None,
    };
    std::fs::write(lake.join(public_key_path(signer.key_id())), serde_json::to_vec(&record)?)?;
    let store = LakeStore::open(&LakeLocation::Local(lake.clone()), None)?;
    let mut live: BTreeMap<String, ObjectEntry> = BTreeMap::new();
    let mut previous: Option<String> = None;
    let start = chrono::DateTime::parse_from_rfc3339("2026-02-01T00:00:00Z")?;
    let checkpoint_at = commits.saturating_sub(AFTER_CHECKPOINT + 1);
    for sequence in 0..commits {
        let slot = usize::try_from(sequence % LIVE_OBJECTS as u64)?;
        let added = entry(slot, sequence);
        let removed: Vec<ObjectEntry> =
            live.values().filter(|old| old.sessions == added.sessions).cloned().collect();
        let body = ManifestBody {
            version: MANIFEST_VERSION,
            sequence,
            previous_sha256: previous.clone(),
            committed_at: (start + chrono::Duration::seconds(i64::try_from(sequence)?))
                .to_rfc3339(),
            writer_id: "bench/1".to_string(),
            action: CommitAction::Ingest,
            reason: None,
            added: vec![added.clone()],
            removed: removed.clone(),
            idle_period_secs: None,
        };
        let signature = ManifestSignature {
            algorithm: SIGNATURE_ED25519.to_string(),
            key_id: signer.key_id().to_string(),
            value: b64.encode(signer.sign(&body.signing_bytes()?)),
        };
        let manifest = Manifest { body, signature };
        let bytes = serde_json::to_vec_pretty(&manifest)?;
        let path = paths::manifest_object(sequence);
        std::fs::write(lake.join(&path), &bytes)?;
        let sha256 = sha256_hex(&bytes);
        for old in removed {
            live.remove(&old.path);
        }
        live.insert(added.path.clone(), added);
        if sequence == checkpoint_at {
            let link = ChainLink {
                path,
                sha256: sha256.clone(),
                size: bytes.len() as u64,
                manifest: manifest.into(),
            };
            sessionlake_storage::checkpoint::write(&store, &signer, &link, &live).await?;
        }
        previous = Some(sha256);
    }
    Ok(keyring)
}

/// Builds each lake, then opens it both ways `runs` times, interleaved; prints a Markdown
/// table and returns the rows.
pub fn open_chain(options: &ChainOptions) -> anyhow::Result<Vec<ChainRow>> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        let mut rows = Vec::new();
        for &commits in &options.commits {
            let dir = options.work.join(format!("chain-{commits}"));
            if dir.exists() {
                std::fs::remove_dir_all(&dir)
                    .with_context(|| format!("failed to empty {}", dir.display()))?;
            }
            let built = Instant::now();
            let keyring = build(&dir, commits).await?;
            eprintln!(
                "sessionlake-bench: {commits} commits written in {:.1} s",
                built.elapsed().as_secs_f64()
            );
            let store = LakeStore::open(&LakeLocation::Local(dir.join("lake")), None)?;
            let pinned = [PinnedSigner::of(&keyring.signer(), "the keyring")];
            let (mut whole, mut latest) = (Vec::new(), Vec::new());
            for _ in 0..options.runs {
                let started = Instant::now();
                let full = Snapshot::open(&store, &pinned).await?;
                whole.push(started.elapsed().as_secs_f64());
                let started = Instant::now();
                let quick = Snapshot::open_latest(&store, &pinned).await?;
                latest.push(started.elapsed().as_secs_f64());
                anyhow::ensure!(quick.checkpoint().is_some(), "the checkpoint was not used");
                anyhow::ensure!(quick.live() == full.live(), "the two opens disagree");
            }
            let manifest_bytes = crate::measure::tree_bytes(&dir.join("lake").join("manifest"));
            rows.push(ChainRow {
                commits,
                whole_chain: median(&whole),
                from_checkpoint: median(&latest),
                manifest_bytes,
            });
        }
        println!("| commits | manifests (MB) | open, whole chain (s) | open from checkpoint (s) |");
        println!("|---:|---:|---:|---:|");
        for row in &rows {
            println!(
                "| {} | {:.1} | {:.3} | {:.3} |",
                row.commits,
                row.manifest_bytes as f64 / 1e6,
                row.whole_chain,
                row.from_checkpoint
            );
        }
        Ok(rows)
    })
}
