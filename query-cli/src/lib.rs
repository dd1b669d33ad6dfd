//! `sessionlake`, the investigator's tool: search the lake for who ran what, where and when.
//!
//! Queries run on DataFusion over the lake's Parquet files (the ones the manifest says are
//! live), decrypting the encrypted columns through the lake's key providers.

pub mod lake_tables;
pub mod time;
pub mod verify;

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Args as ClapArgs, Parser, Subcommand};
use datafusion::arrow::array::{Array, AsArray as _, RecordBatch};
use datafusion::arrow::datatypes::{DataType, TimestampMicrosecondType, UInt32Type};
use datafusion::prelude::{SessionConfig, SessionContext};
use datafusion::scalar::ScalarValue;
use sessionlake_lake::keys::{Keys, LocalKeyring};
use sessionlake_lake::store::{LakeLocation, LakeStore};
use sessionlake_schemas::paths;

/// Default lake, as `sessionlake-ingest` writes it.
pub const DEFAULT_LAKE: &str = "./lake";
/// Default keyring, as `sessionlake-ingest` creates it.
pub const DEFAULT_KEYRING: &str = ".sessionlake/keyring.json";

/// `sessionlake`: search SSM session commands in a sessionlake lake.
#[derive(Debug, Parser)]
#[command(name = "sessionlake", version, about)]
pub struct Cli {
    /// Lake to read: a folder or s3://bucket/prefix.
    #[arg(long, global = true, env = "SESSIONLAKE_LAKE", default_value = DEFAULT_LAKE)]
    pub lake: String,
    /// Local keyring that opens the lake's data keys.
    #[arg(long, global = true, env = "SESSIONLAKE_KEYRING", default_value = DEFAULT_KEYRING)]
    pub keyring: PathBuf,
    /// AWS region (else the SDK's chain).
    #[arg(long, global = true, env = "SESSIONLAKE_REGION")]
    pub region: Option<String>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
#[allow(clippy::large_enum_variant)] // parsed once per process; boxing buys nothing
pub enum Command {
    /// Finds commands: who ran what, as whom, where and when.
    Search(SearchArgs),
    /// Checks the manifest chain, its signatures and every object; exit 1 if anything is off.
    Verify(VerifyArgs),
}

/// Options of `verify`.
#[derive(Debug, ClapArgs)]
pub struct VerifyArgs {
    /// JSON Lines output: one `finding` record per problem, then a `summary`.
    #[arg(long)]
    pub json: bool,
}

/// Filters of `search`; all given filters must hold.
#[derive(Debug, ClapArgs)]
pub struct SearchArgs {
    /// Regular expression the command must match (Rust regex syntax).
    #[arg(long)]
    pub command: Option<String>,
    /// Text the command must contain.
    #[arg(long)]
    pub command_contains: Option<String>,
    /// Principal: the exact IAM ARN, or text it contains.
    #[arg(long)]
    pub principal: Option<String>,
    /// OS user the shell ran as.
    #[arg(long)]
    pub run_as: Option<String>,
    /// Managed node (instance id).
    #[arg(long)]
    pub target: Option<String>,
    /// Session id.
    #[arg(long)]
    pub session: Option<String>,
    /// From this time: 2026-03-14, 2026-03-14T09:30:00Z, or relative (7d, 12h, 30m).
    #[arg(long)]
    pub since: Option<String>,
    /// Before this time (same forms as --since).
    #[arg(long)]
    pub until: Option<String>,
    /// At most this many rows.
    #[arg(long)]
    pub limit: Option<usize>,
    /// JSON Lines output, ending with a summary record.
    #[arg(long)]
    pub json: bool,
}

/// Outcome of a command, mapped to the exit code by `main`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Something matched (exit 0).
    Matched,
    /// Nothing matched (exit 1).
    NoMatch,
}

/// Runs the CLI.
pub async fn run(cli: Cli) -> anyhow::Result<Outcome> {
    match cli.command {
        Command::Search(ref args) => search(&cli, args).await,
        Command::Verify(ref args) => run_verify(&cli, args).await,
    }
}

async fn run_verify(cli: &Cli, args: &VerifyArgs) -> anyhow::Result<Outcome> {
    let (store, _) = open_lake(cli).await?;
    let keyring = match LocalKeyring::open(&cli.keyring) {
        Ok(keyring) => Some(keyring),
        Err(_) if std::fs::metadata(&cli.keyring).is_err() => None,
        Err(error) => return Err(error.into()),
    };
    let report = verify::verify(&store, keyring.as_ref()).await?;
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
                "signer_pinned": keyring.is_some(),
            });
            writeln!(out, "{}", json_record("summary", &summary))?;
        } else {
            for found in &report.findings {
                writeln!(out, "{:<20} {}: {}", found.kind, found.path, found.detail)?;
            }
        }
        out.flush()
    })();
    match written {
        Err(error) if error.kind() != std::io::ErrorKind::BrokenPipe => return Err(error.into()),
        _ => {}
    }
    if !args.json {
        let pinned = if keyring.is_some() {
            "signer pinned by the keyring"
        } else {
            "no keyring: signer not pinned"
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
    }
    Ok(if report.findings.is_empty() { Outcome::Matched } else { Outcome::NoMatch })
}

async fn open_lake(cli: &Cli) -> anyhow::Result<(LakeStore, Keys)> {
    let location = LakeLocation::parse(&cli.lake)?;
    if let LakeLocation::Local(path) = &location
        && std::fs::metadata(path).is_err()
    {
        anyhow::bail!("lake {} does not exist (run sessionlake-ingest first)", path.display());
    }
    // AWS configuration is loaded only when something points at AWS: an S3 lake, a region or
    // profile, or an endpoint. A local lake with a local keyring never touches the network.
    let aws_hinted = cli.region.is_some()
        || ["AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE", "AWS_ENDPOINT_URL"]
            .iter()
            .any(|name| std::env::var_os(name).is_some());
    let sdk_config = if matches!(location, LakeLocation::S3 { .. }) || aws_hinted {
        Some(sessionlake_lake::aws::load_sdk_config(cli.region.as_deref()).await)
    } else {
        None
    };
    let store = LakeStore::open(&location, sdk_config.as_ref())?;
    let keyring = match LocalKeyring::open(&cli.keyring) {
        Ok(keyring) => Some(Arc::new(keyring)),
        Err(error) if std::fs::metadata(&cli.keyring).is_err() => {
            tracing::debug!(%error, "no local keyring");
            None
        }
        Err(error) => return Err(error.into()),
    };
    Ok((store, Keys::new(keyring, sdk_config)))
}

/// Column list of a search result, in output order.
const SEARCH_COLUMNS: &str = "c.session_id, c.seq, coalesce(c.started_at, s.started_at) AS time, \
     CASE WHEN c.started_at IS NULL THEN 'session-start' ELSE c.time_source END AS time_kind, \
     c.principal, c.run_as, c.target, c.cwd, c.command";

async fn search(cli: &Cli, args: &SearchArgs) -> anyhow::Result<Outcome> {
    let (store, keys) = open_lake(cli).await?;
    let since = args.since.as_deref().map(time::parse_time).transpose().context("--since")?;
    let until = args.until.as_deref().map(time::parse_time).transpose().context("--until")?;
    let snapshot = lake_tables::LakeSnapshot::load(&store).await?;
    // Partition pruning: a session lasts at most a day (SSM's maxSessionDuration), so files
    // whose dt is more than a day before --since cannot hold a match.
    let earliest_dt = since.map(|t| paths::partition_date(t.saturating_sub(86_400_000_000)));
    let latest_dt = until.map(|t| paths::partition_date(t.saturating_add(86_400_000_000)));
    let keep = |path: &str| match paths::dt_of(path) {
        Some(dt) => {
            earliest_dt.as_deref().is_none_or(|e| dt >= e)
                && latest_dt.as_deref().is_none_or(|l| dt <= l)
        }
        None => true,
    };
    let ctx = SessionContext::new_with_config(SessionConfig::new().with_information_schema(false));
    lake_tables::register(&ctx, &store, &snapshot, keys, &keep)?;

    let mut conditions = Vec::new();
    let mut params: Vec<ScalarValue> = Vec::new();
    let mut bind = |condition: &str, value: ScalarValue| {
        params.push(value);
        conditions.push(condition.replace('?', &format!("${}", params.len())));
    };
    if let Some(regex) = &args.command {
        regex::Regex::new(regex)
            .with_context(|| format!("--command {regex:?} is not a valid regular expression"))?;
        bind("regexp_like(c.command, ?)", ScalarValue::from(regex.as_str()));
    }
    if let Some(text) = &args.command_contains {
        bind("strpos(c.command, ?) > 0", ScalarValue::from(text.as_str()));
    }
    if let Some(principal) = &args.principal {
        // Every `?` of one condition is the same parameter.
        bind(
            "(c.principal = ? OR strpos(c.principal, ?) > 0)",
            ScalarValue::from(principal.as_str()),
        );
    }
    if let Some(run_as) = &args.run_as {
        bind("c.run_as = ?", ScalarValue::from(run_as.as_str()));
    }
    if let Some(target) = &args.target {
        bind("c.target = ?", ScalarValue::from(target.as_str()));
    }
    if let Some(session) = &args.session {
        bind("c.session_id = ?", ScalarValue::from(session.as_str()));
    }
    let time_expression = "coalesce(c.started_at, s.started_at, s.ended_at)";
    if let Some(since) = since {
        bind(
            &format!("{time_expression} >= ?"),
            ScalarValue::TimestampMicrosecond(Some(since), Some("UTC".into())),
        );
    }
    if let Some(until) = until {
        bind(
            &format!("{time_expression} < ?"),
            ScalarValue::TimestampMicrosecond(Some(until), Some("UTC".into())),
        );
    }
    let filter = if conditions.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", conditions.join(" AND "))
    };
    let sql = format!(
        "SELECT {SEARCH_COLUMNS} FROM commands c LEFT JOIN (SELECT session_id, min(started_at) AS started_at, max(ended_at) AS ended_at \
         FROM sessions GROUP BY session_id) s ON c.session_id = s.session_id \
         {filter} ORDER BY {time_expression} NULLS FIRST, c.session_id, c.seq"
    );
    let frame = ctx.sql(&sql).await?.with_param_values(params)?;
    let batches = frame.collect().await.context("search failed")?;
    let total: usize = batches.iter().map(RecordBatch::num_rows).sum();
    let shown = args.limit.unwrap_or(usize::MAX).min(total);
    print_search(&batches, shown, total, args.json)?;
    Ok(if total > 0 { Outcome::Matched } else { Outcome::NoMatch })
}

/// One JSON Lines record, `{"type":…,"data":…}` with `type` first (ripgrep's shape).
fn json_record(kind: &str, data: &serde_json::Value) -> String {
    format!("{{\"type\":{},\"data\":{data}}}", serde_json::Value::from(kind))
}

fn text_at(array: &dyn Array, row: usize) -> Option<String> {
    if array.is_null(row) {
        return None;
    }
    match array.data_type() {
        DataType::Utf8 => Some(array.as_string::<i32>().value(row).to_string()),
        DataType::Utf8View => Some(array.as_string_view().value(row).to_string()),
        DataType::LargeUtf8 => Some(array.as_string::<i64>().value(row).to_string()),
        DataType::UInt32 => Some(array.as_primitive::<UInt32Type>().value(row).to_string()),
        DataType::Timestamp(_, _) => {
            let micros = array.as_primitive::<TimestampMicrosecondType>().value(row);
            Some(time::format_time(micros))
        }
        _ => None,
    }
}

fn print_search(
    batches: &[RecordBatch],
    shown: usize,
    total: usize,
    json: bool,
) -> anyhow::Result<()> {
    let names = [
        "session_id",
        "seq",
        "time",
        "time_kind",
        "principal",
        "run_as",
        "target",
        "cwd",
        "command",
    ];
    let mut rows: Vec<Vec<Option<String>>> = Vec::with_capacity(shown);
    'outer: for batch in batches {
        for row in 0..batch.num_rows() {
            if rows.len() == shown {
                break 'outer;
            }
            rows.push(
                (0..names.len())
                    .map(|column| text_at(batch.column(column).as_ref(), row))
                    .collect(),
            );
        }
    }
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let result = if json {
        (|| -> std::io::Result<()> {
            for row in &rows {
                let data: serde_json::Map<String, serde_json::Value> = names
                    .iter()
                    .zip(row)
                    .map(|(name, value)| {
                        let value = match (*name, value) {
                            ("seq", Some(v)) => v
                                .parse::<u64>()
                                .map(serde_json::Value::from)
                                .unwrap_or(serde_json::Value::Null),
                            (_, Some(v)) => serde_json::Value::from(v.as_str()),
                            (_, None) => serde_json::Value::Null,
                        };
                        (name.to_string(), value)
                    })
                    .collect();
                writeln!(out, "{}", json_record("match", &serde_json::Value::Object(data)))?;
            }
            writeln!(
                out,
                "{}",
                json_record("summary", &serde_json::json!({"matched": total, "shown": rows.len()}))
            )
        })()
    } else {
        let mut table = comfy_table::Table::new();
        table.load_preset(comfy_table::presets::NOTHING);
        table.set_header(["TIME", "SESSION", "PRINCIPAL", "RUN AS", "TARGET", "COMMAND"]);
        for row in &rows {
            let time = match (&row[2], row[3].as_deref()) {
                (Some(time), Some("session-start")) => format!("~{time}"),
                (Some(time), _) => time.clone(),
                (None, _) => "-".to_string(),
            };
            let cell = |index: usize| row[index].clone().unwrap_or_else(|| "-".to_string());
            table.add_row([time, cell(0), cell(4), cell(5), cell(6), cell(8).replace('\n', "⏎ ")]);
        }
        (|| -> std::io::Result<()> {
            if !rows.is_empty() {
                writeln!(out, "{table}")?;
            }
            Ok(())
        })()
    };
    match result.and_then(|()| out.flush()) {
        Ok(()) => {}
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => return Ok(()),
        Err(error) => return Err(error.into()),
    }
    if !json {
        let more = if shown < total {
            format!(" (showing {shown}; raise --limit for more)")
        } else {
            String::new()
        };
        eprintln!("{total} matching commands{more}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_cli_parses() {
        let cli = Cli::try_parse_from([
            "sessionlake",
            "search",
            "--command",
            "rm -rf",
            "--principal",
            "alice",
            "--since",
            "7d",
        ])
        .expect("parse");
        let Command::Search(args) = cli.command else { panic!("parsed as search") };
        assert_eq!(args.command.as_deref(), Some("rm -rf"));
        assert_eq!(cli.lake, DEFAULT_LAKE);
    }
}
