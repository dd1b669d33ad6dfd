//! `sessionlake checkpoint`: a signed checkpoint of the live set.

// The crate root's imports and shared helpers, as a test module's `use super::*`.
use crate::*;

/// Runs `sessionlake checkpoint`: the live set of the whole trusted chain, signed like a
/// commit by the keyring's key or the first `--signing-key`.
pub(crate) async fn write_checkpoint(cli: &Cli, args: &CheckpointArgs) -> anyhow::Result<Outcome> {
    let lake = open_writer(cli, "checkpoint").await?;
    lake.ensure_trusted()?;
    let Some(head) = lake.history.head() else {
        anyhow::bail!("{} has no commits to checkpoint", lake.store.location());
    };
    let path = sessionlake_storage::checkpoint::write(&lake.store, lake.signer(), head, &lake.live)
        .await
        .with_context(|| format!("failed to write a checkpoint of {}", lake.store.location()))?;
    let sequence = head.manifest.body.sequence;
    if args.json {
        let record = serde_json::json!({
            "checkpoint": path,
            "sequence": sequence,
            "manifest_sha256": head.sha256,
            "objects": lake.live.len(),
        });
        println!("{}", json_record("checkpoint", &record));
    } else {
        println!(
            "{path}: {} live objects as of manifest {sequence} (sha256 {})",
            lake.live.len(),
            head.sha256
        );
    }
    Ok(Outcome::Matched)
}
