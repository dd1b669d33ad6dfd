//! `sessionlake rekey`: its flags and report. The work (re-wrap every data key under a new
//! provider key without re-encrypting a byte; bring in a new signing key) is
//! `sessionlake_keep::rekey`; see DESIGN.md, Encryption.

use std::io::Write as _;
use std::sync::Arc;

use anyhow::Context as _;
use clap::Args as ClapArgs;
use sessionlake_keep::rekey::{self, RekeyLake, RekeySummary, RekeyTarget};
use sessionlake_storage::keys::{KeyProvider, PROVIDER_KMS, PROVIDER_LOCAL};

use crate::{Cli, Outcome, json_record};

/// Options of `rekey`.
#[derive(Debug, ClapArgs)]
pub struct RekeyArgs {
    /// Re-wrap under this AWS KMS key (id, ARN or alias).
    #[arg(long, value_name = "KEY", conflicts_with = "to_keyring", env = "SESSIONLAKE_TO_KMS")]
    pub to_kms: Option<String>,
    /// Re-wrap under the local keyring's key (--keyring).
    #[arg(long, required_unless_present_any = ["to_kms", "new_signing_key"], env = "SESSIONLAKE_TO_KEYRING")]
    pub to_keyring: bool,
    /// Bring a new manifest signing key into the lake (an asymmetric AWS KMS key,
    /// `ECC_NIST_P256`): one commit signed by it records the change and retires the key of its
    /// kind that signed before. The only way a new signing key enters a lake: ingest and every
    /// other writer refuse a key that never signed it.
    #[arg(long, value_name = "KEY", conflicts_with_all = ["to_kms", "to_keyring"], env = "SESSIONLAKE_NEW_SIGNING_KEY")]
    pub new_signing_key: Option<String>,
    /// Why, recorded in the commit.
    #[arg(long, env = "SESSIONLAKE_REASON")]
    pub reason: Option<String>,
    /// Count what would be re-wrapped; change nothing.
    #[arg(long, env = "SESSIONLAKE_DRY_RUN")]
    pub dry_run: bool,
    /// JSON Lines: a `summary` record.
    #[arg(long, env = "SESSIONLAKE_JSON")]
    pub json: bool,
}

/// Runs `sessionlake rekey --new-signing-key KEY`.
async fn new_signing_key(cli: &Cli, args: &RekeyArgs, key_id: &str) -> anyhow::Result<Outcome> {
    let keyring = crate::open_keyring_if_present(cli)?.map(Arc::new);
    let (store, _keys) = crate::open_lake_with(cli, keyring.clone()).await?;
    let signer: Arc<dyn sessionlake_storage::signing::ManifestSigner> =
        Arc::from(crate::signer(cli, Some(key_id), None, "rekey --new-signing-key").await?);
    let pinned = crate::pinned_signers(cli, keyring.as_deref(), &cli.signing_key).await?;
    let lake = RekeyLake { store: &store, pinned: &pinned, warn: crate::warn_line };
    let summary = rekey::new_signing_key(&lake, signer, args.reason.clone(), args.dry_run).await?;
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
    let target = RekeyTarget { provider: target, key_id: target_id, kind: provider };
    let pinned = crate::pinned_signers(cli, Some(keyring.as_ref()), &cli.signing_key).await?;
    let lake = RekeyLake { store: &store, pinned: &pinned, warn: crate::warn_line };
    let summary =
        rekey::rekey(&lake, &keys, keyring, &target, args.reason.clone(), args.dry_run).await?;
    report(&summary, args.json)?;
    Ok(Outcome::Matched)
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
