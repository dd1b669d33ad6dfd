//! `sessionlake compact`: its flags, spinners and report. What it does (merge each day's
//! per-session files into a few compacted files, in one commit, under the writer lease) is
//! `sessionlake_keep::compact`; see DESIGN.md, Compaction.

use std::collections::BTreeSet;
use std::io::Write as _;
use std::sync::Mutex;
use std::time::Instant;

use anyhow::Context as _;
use clap::Args as ClapArgs;
use sessionlake_keep::compact::{CompactObserver, CompactOptions, Summary};

use crate::progress::Progress;
use crate::retention::Deleting;
use crate::{Cli, Outcome, json_record, open_writer};

/// Default `--min-age`: a day without change (a stream still growing is left alone).
pub const DEFAULT_MIN_AGE: &str = "1d";

/// Options of `compact`.
#[derive(Debug, ClapArgs)]
pub struct CompactArgs {
    /// Compact only session versions committed at least this long ago (relative: 1d, 12h,
    /// 30m, 0s).
    #[arg(long, default_value = DEFAULT_MIN_AGE, env = "SESSIONLAKE_MIN_AGE")]
    pub min_age: String,
    /// Only this day (YYYY-MM-DD, the `dt=` partition); repeatable.
    #[arg(long = "dt", value_name = "DAY", env = "SESSIONLAKE_DT")]
    pub days: Vec<String>,
    /// AWS KMS key (id, ARN or alias) that wraps the compacted files' data keys, as ingest's
    /// --kms-key-id; without it, the local keyring.
    #[arg(long, env = "SESSIONLAKE_KMS_KEY_ID")]
    pub kms_key_id: Option<String>,
    /// JSON Lines: one `summary` record.
    #[arg(long, env = "SESSIONLAKE_JSON")]
    pub json: bool,
}

/// The spinners of a compaction on stderr: files merged, then objects deleted.
struct Spinners {
    json: bool,
    merging: Mutex<Option<Progress>>,
    deleting: Deleting,
}

impl CompactObserver for Spinners {
    fn writing(&self) {
        let progress = Progress::counting(!self.json, "compacting", "files");
        *self.merging.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(progress);
    }

    fn merged(&self, files: u64) {
        let merging = self.merging.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(progress) = merging.as_ref() {
            progress.advance(files);
        }
    }

    fn written(&self) {
        self.merging.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).take();
    }

    fn deleted(&self) {
        self.deleting.deleted();
    }
}

/// Runs `compact`.
pub async fn compact(cli: &Cli, args: &CompactArgs) -> anyhow::Result<Outcome> {
    let started = Instant::now();
    let min_age = crate::time::parse_span(&args.min_age)
        .unwrap_or_else(|| Err(anyhow::anyhow!("use a span such as 1d, 12h or 0s")))
        .with_context(|| format!("--min-age {:?}", args.min_age))?;
    for day in &args.days {
        anyhow::ensure!(
            chrono::NaiveDate::parse_from_str(day, "%Y-%m-%d").is_ok(),
            "--dt {day:?} is not a day (YYYY-MM-DD)"
        );
    }
    let options = CompactOptions {
        min_age,
        days: args.days.iter().cloned().collect::<BTreeSet<String>>(),
        kms_key_id: args.kms_key_id.clone(),
    };
    let mut lake = open_writer(cli, "compact").await?;
    let spinners =
        Spinners { json: args.json, merging: Mutex::new(None), deleting: Deleting::default() };
    let mut summary = sessionlake_keep::compact::compact(&mut lake, &options, &spinners).await?;
    summary.seconds = started.elapsed().as_secs_f64();
    report(&summary, args.json)?;
    Ok(Outcome::Matched)
}

fn report(summary: &Summary, json: bool) -> anyhow::Result<()> {
    if json {
        let value = serde_json::to_value(summary).unwrap_or_default();
        let mut out = std::io::stdout().lock();
        match writeln!(out, "{}", json_record("summary", &value)).and_then(|()| out.flush()) {
            Err(error) if error.kind() != std::io::ErrorKind::BrokenPipe => {
                return Err(error.into());
            }
            _ => {}
        }
        return Ok(());
    }
    if summary.swept > 0 {
        eprintln!("sessionlake: deleted {} objects an interrupted run left", summary.swept);
    }
    match summary.sequence {
        Some(sequence) => eprintln!(
            "compacted {} files ({} bytes) of {} sessions into {} files ({} bytes) in {} days \
             (manifest {sequence}, {:.1}s)",
            summary.files_before,
            summary.bytes_before,
            summary.sessions,
            summary.files_after,
            summary.bytes_after,
            summary.partitions,
            summary.seconds
        ),
        None => eprintln!("nothing to compact"),
    }
    if let Some(path) = &summary.checkpoint {
        eprintln!("readers start from {path}");
    }
    if let Some(head) = &summary.head {
        eprintln!("head: {head}");
    }
    Ok(())
}
