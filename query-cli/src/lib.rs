//! `sessionlake`, the investigator's tool: search the lake for who ran what, where and when.
//!
//! Queries run on DataFusion over the lake's Parquet files (the ones the manifest says are
//! live), decrypting the encrypted columns through the lake's key providers.

pub mod asciicast;
pub mod cursor;
pub mod export;
pub mod lake_tables;
pub mod output;
pub mod progress;
pub mod sql;
pub mod time;
pub mod verify;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Args as ClapArgs, Parser, Subcommand};
use datafusion::arrow::array::{AsArray as _, RecordBatch};
use datafusion::arrow::datatypes::Int64Type;
use datafusion::dataframe::DataFrame;
use datafusion::prelude::{SessionConfig, SessionContext};
use datafusion::scalar::ScalarValue;
use futures::StreamExt as _;
use sessionlake_lake::keys::{Keys, LocalKeyring};
use sessionlake_lake::store::{LakeLocation, LakeStore};
use sessionlake_schemas::manifest::{ObjectEntry, ObjectKind};
use sessionlake_schemas::{SessionSource, paths};

use crate::cursor::Cursor;
use crate::output::{OutputArgs, OutputFormat, Printer, TableLayout, json_record};
use crate::progress::Progress;

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
    /// Lists sessions: who, as whom, where, when, how many commands, from which source.
    Sessions(SessionsArgs),
    /// Prints one session's commands with their times and output; `--raw` replays the
    /// original terminal bytes.
    Show(ShowArgs),
    /// Checks the manifest chain, its signatures and every object; exit 1 if anything is off.
    Verify(VerifyArgs),
    /// Writes one session as an evidence bundle: the original transcript, its commands (JSON
    /// Lines and CSV), an asciicast replay, the manifests that committed it, and a signed
    /// SHA256SUMS an auditor checks with sha256sum and openssl.
    Export(export::ExportArgs),
    /// Runs one SQL query over the tables `commands` and `sessions` (live objects, encrypted
    /// columns opened); statements that would change anything are refused.
    Sql(sql::SqlArgs),
}

/// Options of `show`.
#[derive(Debug, ClapArgs)]
pub struct ShowArgs {
    /// Session id.
    pub session: String,
    /// Write the original transcript bytes (decrypted, decompressed, hash-checked) to stdout,
    /// to replay in a terminal.
    #[arg(long)]
    pub raw: bool,
    /// Output format and colour.
    #[command(flatten)]
    pub print: OutputArgs,
}

/// Options of `verify`.
#[derive(Debug, ClapArgs)]
pub struct VerifyArgs {
    /// JSON Lines output: one `finding` record per problem, then a `summary`.
    #[arg(long)]
    pub json: bool,
}

/// Who, where and when: filters shared by `search` and `sessions`; all given must hold.
#[derive(Debug, ClapArgs)]
pub struct Filters {
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
}

/// A page of a listing: `--limit` rows after `--after`.
#[derive(Debug, Clone, ClapArgs)]
pub struct Paging {
    /// At most this many rows; the summary gives the cursor of the next page.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub limit: Option<u64>,
    /// Start after this cursor (printed in the summary of the page before).
    #[arg(long, value_name = "CURSOR")]
    pub after: Option<String>,
}

/// Options of `search`.
#[derive(Debug, ClapArgs)]
pub struct SearchArgs {
    /// Regular expression the command must match (Rust regex syntax).
    #[arg(long)]
    pub command: Option<String>,
    /// Text the command must contain.
    #[arg(long)]
    pub command_contains: Option<String>,
    /// Regular expression the command's output must match (Rust regex syntax).
    #[arg(long, value_name = "REGEX")]
    pub output: Option<String>,
    /// Who, where, when.
    #[command(flatten)]
    pub filters: Filters,
    /// Which page.
    #[command(flatten)]
    pub paging: Paging,
    /// Output format and colour.
    #[command(flatten)]
    pub print: OutputArgs,
}

/// Options of `sessions`.
#[derive(Debug, ClapArgs)]
pub struct SessionsArgs {
    /// Who, where, when.
    #[command(flatten)]
    pub filters: Filters,
    /// Which page.
    #[command(flatten)]
    pub paging: Paging,
    /// Output format and colour.
    #[command(flatten)]
    pub print: OutputArgs,
}

/// Outcome of a command, mapped to the exit code by `main`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Something matched (exit 0).
    Matched,
    /// Nothing matched (exit 1).
    NoMatch,
}

/// Runs the CLI. A closed stdout (`sessionlake search | head`) ends it quietly, as a success.
pub async fn run(cli: Cli) -> anyhow::Result<Outcome> {
    let result = match cli.command {
        Command::Search(ref args) => search(&cli, args).await,
        Command::Sessions(ref args) => sessions(&cli, args).await,
        Command::Show(ref args) => show(&cli, args).await,
        Command::Verify(ref args) => run_verify(&cli, args).await,
        Command::Export(ref args) => export::export(&cli, args).await,
        Command::Sql(ref args) => sql::sql(&cli, args).await,
    };
    match result {
        Err(error) if output::is_broken_pipe(&error) => Ok(Outcome::Matched),
        other => other,
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

pub(crate) async fn open_lake(cli: &Cli) -> anyhow::Result<(LakeStore, Keys)> {
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

/// Result column holding a listing's sort time (after the shown columns).
const SORT_TIME: &str = "sort_time";

/// SQL conditions with numbered parameters, bound safely (no value is ever spliced into SQL).
#[derive(Default, Clone)]
struct Query {
    conditions: Vec<String>,
    params: Vec<ScalarValue>,
}

impl Query {
    /// Adds `value` as the next parameter and returns its placeholder (`$3`).
    fn param(&mut self, value: ScalarValue) -> String {
        self.params.push(value);
        format!("${}", self.params.len())
    }

    /// Adds `condition`; every `?` in it is the one parameter `value`.
    fn bind(&mut self, condition: &str, value: ScalarValue) {
        let placeholder = self.param(value);
        self.conditions.push(condition.replace('?', &placeholder));
    }

    /// Adds the who/where/when filters on table alias `alias`, times on `time_expression`.
    fn bind_filters(
        &mut self,
        filters: &Filters,
        alias: &str,
        time_expression: &str,
        since: Option<i64>,
        until: Option<i64>,
    ) {
        let text = |value: &String| ScalarValue::from(value.as_str());
        if let Some(principal) = &filters.principal {
            self.bind(
                &format!("({alias}.principal = ? OR strpos({alias}.principal, ?) > 0)"),
                text(principal),
            );
        }
        if let Some(run_as) = &filters.run_as {
            self.bind(&format!("{alias}.run_as = ?"), text(run_as));
        }
        if let Some(target) = &filters.target {
            self.bind(&format!("{alias}.target = ?"), text(target));
        }
        if let Some(session) = &filters.session {
            self.bind(&format!("{alias}.session_id = ?"), text(session));
        }
        let time = |micros| ScalarValue::TimestampMicrosecond(Some(micros), Some("UTC".into()));
        if let Some(since) = since {
            self.bind(&format!("{time_expression} >= ?"), time(since));
        }
        if let Some(until) = until {
            self.bind(&format!("{time_expression} < ?"), time(until));
        }
    }

    fn where_clause(&self) -> String {
        if self.conditions.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", self.conditions.join(" AND "))
        }
    }
}

/// Returns which files of the lake a query between `since` and `until` reads: a session lasts
/// at most a day (SSM's maxSessionDuration), so files whose `dt` is more than a day before
/// `since` (or after `until`) cannot hold a match.
fn partitions_between(since: Option<i64>, until: Option<i64>) -> impl Fn(&str) -> bool {
    let earliest_dt = since.map(|t| paths::partition_date(t.saturating_sub(86_400_000_000)));
    let latest_dt = until.map(|t| paths::partition_date(t.saturating_add(86_400_000_000)));
    move |path: &str| match paths::dt_of(path) {
        Some(dt) => {
            earliest_dt.as_deref().is_none_or(|e| dt >= e)
                && latest_dt.as_deref().is_none_or(|l| dt <= l)
        }
        None => true,
    }
}

/// Returns the `commands` files to search: for a session delivered more than once (S3 and
/// CloudWatch), only the delivery `show` reads, so that each command is found once and the
/// sort key (time, session, seq) names one row.
fn preferred_commands(live: &BTreeMap<String, ObjectEntry>) -> HashSet<String> {
    let mut best: HashMap<&str, (usize, &str)> = HashMap::new();
    for entry in live.values().filter(|entry| entry.kind == ObjectKind::Commands) {
        for session in &entry.sessions {
            let Some(rank) = SOURCE_PREFERENCE
                .iter()
                .position(|source| paths::is_session_object(&entry.path, session, *source))
            else {
                continue;
            };
            let slot = best.entry(session).or_insert((rank, &entry.path));
            if rank < slot.0 {
                *slot = (rank, &entry.path);
            }
        }
    }
    best.into_values().map(|(_, path)| path.to_string()).collect()
}

/// Opens the lake's tables over the live files `choose` keeps (it sees the manifest's view).
pub(crate) async fn open_tables<K: Fn(&str) -> bool>(
    cli: &Cli,
    choose: impl FnOnce(&lake_tables::LakeSnapshot) -> K,
) -> anyhow::Result<SessionContext> {
    let (store, keys) = open_lake(cli).await?;
    let snapshot = lake_tables::LakeSnapshot::load(&store).await?;
    let keep = choose(&snapshot);
    let ctx = SessionContext::new_with_config(SessionConfig::new().with_information_schema(false));
    lake_tables::register(&ctx, &store, &snapshot, keys, &keep)?;
    Ok(ctx)
}

fn time_range(filters: &Filters) -> anyhow::Result<(Option<i64>, Option<i64>)> {
    let since = filters.since.as_deref().map(time::parse_time).transpose().context("--since")?;
    let until = filters.until.as_deref().map(time::parse_time).transpose().context("--until")?;
    Ok((since, until))
}

/// What a query printed: its rows, the last of them (for the next cursor), and whether rows
/// beyond the limit were left.
#[derive(Default)]
pub(crate) struct Page {
    pub(crate) rows: u64,
    last: Option<RecordBatch>,
    more: bool,
}

/// Streams the rows of `frame` to `printer` as they come, at most `limit` of them: memory holds
/// one batch (or one table chunk), whatever the size of the result.
pub(crate) async fn stream_frame(
    frame: DataFrame,
    printer: &mut Printer,
    progress: &Progress,
    limit: Option<u64>,
) -> anyhow::Result<Page> {
    let mut stream = frame.execute_stream().await.context("query failed")?;
    printer.start(&stream.schema())?;
    let mut page = Page::default();
    while let Some(batch) = stream.next().await {
        let batch = batch.context("query failed")?;
        let room = limit.map_or(u64::MAX, |limit| limit.saturating_sub(page.rows));
        let take = usize::try_from(room).unwrap_or(usize::MAX).min(batch.num_rows());
        page.more = take < batch.num_rows();
        if take > 0 {
            let shown = batch.slice(0, take);
            progress.suspend(|| printer.write_batch(&shown))?;
            progress.advance(take as u64);
            page.rows += take as u64;
            page.last = Some(shown.slice(take - 1, 1));
        }
        if page.more {
            break;
        }
    }
    Ok(page)
}

/// A listing in sort-key order that pages with a cursor: `search` and `sessions`.
struct Listing {
    /// What the cursor pages.
    name: &'static str,
    /// `SELECT <the view's columns>, <time> AS sort_time FROM …`, without conditions.
    select: String,
    /// The sort time; nulls sort first.
    time_expression: &'static str,
    /// The rest of the sort key, as SQL and as result columns.
    key_expressions: &'static [&'static str],
    key_columns: &'static [&'static str],
    view: &'static View,
}

impl Listing {
    fn sql(&self, query: &Query, tail: &str) -> String {
        format!("{} {} {tail}", self.select, query.where_clause())
    }

    /// Prints the page `paging` asks for, then the summary: how many rows match in all and
    /// the cursor of the next page.
    async fn print(
        &self,
        ctx: &SessionContext,
        query: Query,
        paging: &Paging,
        mut printer: Printer,
    ) -> anyhow::Result<Outcome> {
        let mut page_query = query.clone();
        if let Some(token) = &paging.after {
            let cursor = Cursor::decode(token, self.name)?;
            let condition = cursor
                .condition(self.time_expression, self.key_expressions, |v| page_query.param(v))?;
            page_query.conditions.push(condition);
        }
        // One row past the limit tells whether there is a next page.
        let limit = paging.limit.map(|n| format!(" LIMIT {}", n.saturating_add(1)));
        let order = format!(
            "ORDER BY {} NULLS FIRST, {}{}",
            self.time_expression,
            self.key_expressions.join(", "),
            limit.unwrap_or_default()
        );
        let frame = ctx
            .sql(&self.sql(&page_query, &order))
            .await
            .context("query failed")?
            .with_param_values(page_query.params)?;
        let progress = Progress::spinner(printer.format() != OutputFormat::Json, "searching");
        let page = stream_frame(frame, &mut printer, &progress, paging.limit).await?;
        let next = match (&page.last, page.more) {
            (Some(last), true) => {
                Some(Cursor::of_row(self.name, last, 0, SORT_TIME, self.key_columns)?.encode())
            }
            _ => None,
        };
        let matched = if paging.limit.is_some() || paging.after.is_some() {
            count_rows(ctx, &self.sql(&query, ""), query.params).await?
        } else {
            page.rows
        };
        drop(progress);
        let mut text = format!("{matched} {}", self.view.noun);
        if page.rows < matched {
            text.push_str(&format!(" (showing {}", page.rows));
            if let Some(next) = &next {
                text.push_str(&format!("; next page: --after {next}"));
            }
            text.push(')');
        }
        let summary = serde_json::json!({"matched": matched, "shown": page.rows, "next": next});
        printer.finish(summary, &text)?;
        Ok(if page.rows > 0 { Outcome::Matched } else { Outcome::NoMatch })
    }
}

/// Counts the rows of `sql`, whose placeholders are bound to `params`.
async fn count_rows(
    ctx: &SessionContext,
    sql: &str,
    params: Vec<ScalarValue>,
) -> anyhow::Result<u64> {
    let batches = ctx
        .sql(&format!("SELECT count(*) FROM ({sql}) AS matched"))
        .await
        .context("count failed")?
        .with_param_values(params)?
        .collect()
        .await
        .context("count failed")?;
    let count = batches
        .first()
        .and_then(|batch| batch.column(0).as_primitive_opt::<Int64Type>())
        .filter(|counts| !counts.is_empty())
        .map(|counts| counts.value(0))
        .context("count returned no row")?;
    Ok(u64::try_from(count).unwrap_or_default())
}

fn regex_flag(flag: &str, pattern: &str) -> anyhow::Result<regex::Regex> {
    regex::Regex::new(pattern)
        .with_context(|| format!("{flag} {pattern:?} is not a valid regular expression"))
}

async fn search(cli: &Cli, args: &SearchArgs) -> anyhow::Result<Outcome> {
    let (since, until) = time_range(&args.filters)?;
    let mut query = Query::default();
    let mut highlights = Vec::new();
    if let Some(pattern) = &args.command {
        highlights.push(regex_flag("--command", pattern)?);
        query.bind("regexp_like(c.command, ?)", ScalarValue::from(pattern.as_str()));
    }
    if let Some(text) = &args.command_contains {
        highlights.push(regex_flag("--command-contains", &regex::escape(text))?);
        query.bind("strpos(c.command, ?) > 0", ScalarValue::from(text.as_str()));
    }
    if let Some(pattern) = &args.output {
        regex_flag("--output", pattern)?;
        query.bind("regexp_like(c.output, ?)", ScalarValue::from(pattern.as_str()));
    }
    let time_expression = "coalesce(c.started_at, s.started_at, s.ended_at)";
    query.bind_filters(&args.filters, "c", time_expression, since, until);
    let ctx = open_tables(cli, |snapshot| {
        let searched = preferred_commands(&snapshot.live);
        let in_range = partitions_between(since, until);
        move |path: &str| {
            in_range(path) && (!path.starts_with(paths::COMMANDS_DIR) || searched.contains(path))
        }
    })
    .await?;
    let listing = Listing {
        name: "commands",
        select: format!(
            "SELECT {SEARCH_COLUMNS}, {time_expression} AS {SORT_TIME} FROM commands c \
             LEFT JOIN (SELECT session_id, min(started_at) AS started_at, \
             max(ended_at) AS ended_at FROM sessions GROUP BY session_id) s \
             ON c.session_id = s.session_id"
        ),
        time_expression,
        key_expressions: &["c.session_id", "c.seq"],
        key_columns: &["session_id", "seq"],
        view: &SEARCH_VIEW,
    };
    let printer = SEARCH_VIEW.printer(&args.print).with_highlights(highlights);
    listing.print(&ctx, query, &args.paging, printer).await
}

async fn sessions(cli: &Cli, args: &SessionsArgs) -> anyhow::Result<Outcome> {
    let (since, until) = time_range(&args.filters)?;
    let mut query = Query::default();
    let time_expression = "coalesce(s.started_at, s.ended_at)";
    query.bind_filters(&args.filters, "s", time_expression, since, until);
    let ctx = open_tables(cli, |_| partitions_between(since, until)).await?;
    let listing = Listing {
        name: "sessions",
        select: format!(
            "SELECT s.session_id, s.started_at, s.ended_at, s.principal, s.run_as, s.target, \
             s.command_count, s.status, s.source, {time_expression} AS {SORT_TIME} \
             FROM sessions s"
        ),
        time_expression,
        key_expressions: &["s.session_id", "s.source"],
        key_columns: &["session_id", "source"],
        view: &SESSIONS_VIEW,
    };
    listing.print(&ctx, query, &args.paging, SESSIONS_VIEW.printer(&args.print)).await
}

async fn show(cli: &Cli, args: &ShowArgs) -> anyhow::Result<Outcome> {
    if args.raw {
        return show_raw(cli, &args.session).await;
    }
    let mut query = Query::default();
    query.bind("c.session_id = ?", ScalarValue::from(args.session.as_str()));
    // A session delivered by several sources (S3 and CloudWatch) is shown from one.
    let session = args.session.clone();
    let ctx = open_tables(cli, move |snapshot| {
        let preferred = session_sources(&snapshot.live, &session).first().copied();
        move |path: &str| {
            preferred.is_some_and(|source| paths::is_session_object(path, &session, source))
        }
    })
    .await?;
    let sql = format!(
        "SELECT c.seq, c.started_at AS time, c.cwd, c.prompt, c.command, c.output, \
         c.output_truncated, c.confidence FROM commands c {} ORDER BY c.seq",
        query.where_clause()
    );
    let frame = ctx.sql(&sql).await.context("query failed")?.with_param_values(query.params)?;
    let mut printer = SHOW_VIEW.printer(&args.print);
    let page = stream_frame(frame, &mut printer, &Progress::spinner(false, ""), None).await?;
    let summary = serde_json::json!({"matched": page.rows, "shown": page.rows});
    printer.finish(summary, &format!("{} {}", page.rows, SHOW_VIEW.noun))?;
    Ok(if page.rows > 0 { Outcome::Matched } else { Outcome::NoMatch })
}

/// Sources in the order `show`, `show --raw` and `export` prefer them when a session was
/// delivered more than once (S3 and CloudWatch): the raw transcript first, as the most complete.
const SOURCE_PREFERENCE: [SessionSource; 4] = [
    SessionSource::S3,
    SessionSource::Local,
    SessionSource::CloudwatchUpload,
    SessionSource::CloudwatchStream,
];

/// Returns the sources that delivered `session` (live objects only), the one `show` reads first.
pub(crate) fn session_sources(
    live: &BTreeMap<String, ObjectEntry>,
    session: &str,
) -> Vec<SessionSource> {
    SOURCE_PREFERENCE
        .into_iter()
        .filter(|source| live.keys().any(|path| paths::is_session_object(path, session, *source)))
        .collect()
}

/// Reads a committed object and checks its size and SHA-256 against the manifest entry.
pub(crate) async fn read_committed(
    store: &LakeStore,
    entry: &ObjectEntry,
) -> anyhow::Result<bytes::Bytes> {
    let stored = store.get(&entry.path).await?;
    let sha = sessionlake_lake::store::sha256_hex(&stored);
    anyhow::ensure!(
        sha == entry.sha256 && stored.len() as u64 == entry.size,
        "{} was altered: {} bytes sha256 {sha}, committed {} bytes sha256 {}",
        store.describe(&entry.path),
        stored.len(),
        entry.size,
        entry.sha256
    );
    Ok(stored)
}

/// Opens a raw transcript (`sealed`, already checked against its manifest entry) with its data
/// key and returns the original bytes. The key must be bound to `session`.
pub(crate) async fn open_raw(
    keys: &Keys,
    entry: &ObjectEntry,
    sealed: &[u8],
    session: &str,
) -> anyhow::Result<Vec<u8>> {
    let mut cursor = std::io::Cursor::new(sealed);
    let (header, _) = sessionlake_lake::envelope::read_header(&mut cursor, &entry.path)?;
    // The key is bound to the session it was made for: a transcript moved here from another
    // session's path is refused, not shown as this one.
    let subject = header.key.context.get(sessionlake_schemas::envelope::CONTEXT_SUBJECT);
    anyhow::ensure!(
        subject.map(String::as_str) == Some(session),
        "{} belongs to session {:?}, not {session}",
        entry.path,
        subject
    );
    let key = keys
        .decrypt(&header.key)
        .await
        .with_context(|| format!("failed to get the data key of {}", entry.path))?;
    Ok(sessionlake_lake::envelope::open_bytes(
        &entry.path,
        sealed,
        &key,
        sessionlake_lake::envelope::MAX_DECOMPRESSED_LEN,
    )?)
}

/// Writes the session's original transcript to stdout, after checking the stored object
/// against the hash the manifest committed and opening it with its data key.
async fn show_raw(cli: &Cli, session: &str) -> anyhow::Result<Outcome> {
    let (store, keys) = open_lake(cli).await?;
    let snapshot = lake_tables::LakeSnapshot::load(&store).await?;
    let sources = session_sources(&snapshot.live, session);
    // The same source as `show` (and `export`) reads.
    let entry = sources.first().and_then(|source| {
        snapshot.live.values().find(|entry| {
            entry.kind == ObjectKind::Raw
                && entry.sessions.iter().any(|id| id == session)
                && paths::is_session_object(&entry.path, session, *source)
        })
    });
    let Some(entry) = entry else {
        eprintln!("sessionlake: no session {session} in {}", store.location());
        return Ok(Outcome::NoMatch);
    };
    let sealed = read_committed(&store, entry).await?;
    let plaintext = open_raw(&keys, entry, &sealed, session).await?;
    let mut out = std::io::stdout().lock();
    match out.write_all(&plaintext).and_then(|()| out.flush()) {
        Err(error) if error.kind() != std::io::ErrorKind::BrokenPipe => return Err(error.into()),
        _ => {}
    }
    if sources.len() > 1 {
        eprintln!(
            "sessionlake: {session} has {} transcripts (sources); showed {}",
            sources.len(),
            entry.path
        );
    }
    Ok(Outcome::Matched)
}

/// How a listing's rows look in a table; JSON and CSV show the query's columns as they are.
struct View {
    /// The query's shown columns, in order (sort keys may follow them).
    columns: &'static [&'static str],
    header: &'static [&'static str],
    row: fn(&[Option<String>]) -> Vec<String>,
    /// Table column where matches are highlighted.
    highlight_column: Option<usize>,
    noun: &'static str,
}

impl View {
    fn printer(&self, print: &OutputArgs) -> Printer {
        let layout = TableLayout {
            header: self.header.iter().map(|title| title.to_string()).collect(),
            row: self.row,
            highlight_column: self.highlight_column,
        };
        Printer::new(print, self.columns.len(), "match", layout)
    }
}

fn cell(row: &[Option<String>], index: usize) -> String {
    row.get(index).cloned().flatten().unwrap_or_else(|| "-".to_string())
}

const SEARCH_VIEW: View = View {
    columns: &[
        "session_id",
        "seq",
        "time",
        "time_kind",
        "principal",
        "run_as",
        "target",
        "cwd",
        "command",
    ],
    header: &["TIME", "SESSION", "PRINCIPAL", "RUN AS", "TARGET", "COMMAND"],
    row: |row| {
        // `~` marks the session's start standing in for a command without a time of its own.
        let time = match (row.get(2).cloned().flatten(), row.get(3).cloned().flatten()) {
            (Some(time), Some(kind)) if kind == "session-start" => format!("~{time}"),
            (Some(time), _) => time,
            (None, _) => "-".to_string(),
        };
        vec![
            time,
            cell(row, 0),
            cell(row, 4),
            cell(row, 5),
            cell(row, 6),
            cell(row, 8).replace('\n', "⏎ "),
        ]
    },
    highlight_column: Some(5),
    noun: "matching commands",
};

const SHOW_VIEW: View = View {
    columns: &[
        "seq",
        "time",
        "cwd",
        "prompt",
        "command",
        "output",
        "output_truncated",
        "confidence",
    ],
    header: &["#", "TIME", "COMMAND", "OUTPUT"],
    row: |row| {
        let mut output = cell(row, 5);
        if row.get(6).cloned().flatten().as_deref() == Some("true") {
            output.push_str("\n[output cut]");
        }
        vec![cell(row, 0), cell(row, 1), format!("{}{}", cell(row, 3), cell(row, 4)), output]
    },
    highlight_column: None,
    noun: "commands",
};

const SESSIONS_VIEW: View = View {
    columns: &[
        "session_id",
        "started_at",
        "ended_at",
        "principal",
        "run_as",
        "target",
        "command_count",
        "status",
        "source",
    ],
    header: &[
        "STARTED",
        "ENDED",
        "SESSION",
        "PRINCIPAL",
        "RUN AS",
        "TARGET",
        "COMMANDS",
        "STATUS",
        "SOURCE",
    ],
    row: |row| {
        vec![
            cell(row, 1),
            cell(row, 2),
            cell(row, 0),
            cell(row, 3),
            cell(row, 4),
            cell(row, 5),
            cell(row, 6),
            cell(row, 7),
            cell(row, 8),
        ]
    },
    highlight_column: None,
    noun: "matching sessions",
};

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
        assert_eq!(args.filters.principal.as_deref(), Some("alice"));
        assert_eq!(cli.lake, DEFAULT_LAKE);
    }
}
