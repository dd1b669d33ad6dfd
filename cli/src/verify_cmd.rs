//! `sessionlake verify`: the flags turned into a `sessionlake_read::verify` call, and its report printed.

// The crate root's imports and shared helpers, as a test module's `use super::*`.
use crate::*;

pub(crate) async fn run_verify(cli: &Cli, args: &VerifyArgs) -> anyhow::Result<Outcome> {
    let since = args.since.as_deref().map(time::parse_time).transpose().context("--since")?;
    let until = args.until.as_deref().map(time::parse_time).transpose().context("--until")?;
    let keyring = open_keyring_if_present(cli)?.map(Arc::new);
    let (store, _) = open_lake_with(cli, keyring.clone()).await?;
    let pinned = pinned_signers(cli, keyring.as_deref(), &cli.signing_key).await?;
    anyhow::ensure!(
        !pinned.is_empty() || args.unpinned,
        "no signer is pinned (no keyring at {}, no --signing-key): verify would trust the \
         lake's own key records, which whoever can write to the lake can plant; give the \
         lake's keyring or --signing-key, or pass --unpinned to check the lake only against \
         itself",
        cli.keyring.display()
    );
    let options = verify::VerifyOptions {
        pinned,
        since,
        until,
        now: match args.as_of.as_deref() {
            Some(text) => time::parse_time(text).context("--as-of")?,
            None => chrono::Utc::now().timestamp_micros(),
        },
        progress: (!args.json)
            .then(|| Arc::new(progress::HashingBar::default()) as Arc<dyn verify::HashingProgress>),
        expect_heads: args.expect_head.clone(),
        since_checkpoint: args.since_checkpoint,
    };
    let report = verify::verify(&store, &options).await?;
    let mut out = std::io::stdout().lock();
    let written = (|| -> std::io::Result<()> {
        if args.json {
            for found in &report.findings {
                writeln!(
                    out,
                    "{}",
                    json_record("finding", &serde_json::to_value(found).unwrap_or_default())
                )?;
            }
            let summary = serde_json::json!({
                "manifests": report.manifests,
                "objects": report.objects,
                "findings": report.findings.len(),
                "signer_pinned": !options.pinned.is_empty(),
                "head": report.head,
            });
            writeln!(out, "{}", json_record("summary", &summary))?;
        } else {
            for found in &report.findings {
                writeln!(out, "{:<26} {}: {}", found.kind, found.path, found.detail)?;
            }
        }
        out.flush()
    })();
    match written {
        Err(error) if error.kind() != std::io::ErrorKind::BrokenPipe => return Err(error.into()),
        _ => {}
    }
    if !args.json {
        let pinned = match (keyring.is_some(), !cli.signing_key.is_empty()) {
            (true, false) => "signer pinned by the keyring".to_string(),
            (true, true) => "signers pinned by the keyring and --signing-key".to_string(),
            (false, true) => "signer pinned by --signing-key".to_string(),
            (false, false) => "no keyring: signer not pinned".to_string(),
        };
        eprintln!(
            "verified {} manifests and {} live objects ({pinned}): {}",
            report.manifests,
            report.objects,
            if report.findings.is_empty() {
                "intact".to_string()
            } else {
                format!("{} problems", report.findings.len())
            }
        );
        if let Some(head) = &report.head {
            eprintln!("head: {head}");
        }
    }
    Ok(if report.findings.is_empty() { Outcome::Matched } else { Outcome::NoMatch })
}
