//! The benchmark run: ingest against its zstd + AEAD floor, queries against DuckDB and
//! `grep -E` / `rg`, peak memory, lake size; medians of several runs measured side by side.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context as _, bail};
use sessionlake_indexer::input::{GetLogEventsFile, cloudwatch_raw};
use sessionlake_indexer::{InputForm, SessionContext, parse_session};
use sessionlake_schemas::envelope::WrappedKey;
use sessionlake_storage::DataKey;
use sessionlake_storage::envelope::seal_bytes;

use crate::measure::{Cost, evict, median, run_measured, thread_cpu_seconds, tree_bytes};
use crate::workload::{NEEDLE_REGEX, SessionFacts, WorkloadSummary};

/// Where the tools are and what to measure.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The generated workload (a folder [`crate::workload::generate`] wrote).
    pub workload: PathBuf,
    /// Scratch folder for lakes, keyrings and the plaintext copy (what it held is set aside
    /// first and deleted at the end: see [`set_aside`]).
    pub work: PathBuf,
    /// Folder holding `sessionlake-ingest` and `sessionlake`.
    pub bin_dir: PathBuf,
    /// Python with `duckdb` (the test venv's).
    pub python: PathBuf,
    /// Runs per figure; medians are reported.
    pub runs: usize,
    /// A second workload holding one large session, for ingest's peak memory (optional).
    pub single: Option<PathBuf>,
}

/// One figure of the report.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Figure {
    /// What was measured.
    pub name: String,
    /// Tool.
    pub tool: String,
    /// Cold (page cache of the data dropped first) or warm.
    pub cache: String,
    /// Median wall seconds.
    pub seconds: f64,
    /// Rows or lines the tool printed (the same answer, checked across tools).
    pub rows: Option<u64>,
    /// Median peak RSS, bytes.
    pub peak_rss: u64,
}

/// Everything the run measured; also written as `report.json` in the work folder.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Report {
    /// Transcript bytes ingested per run.
    pub raw_bytes: u64,
    /// Sessions and commands of the workload.
    pub sessions: usize,
    /// Commands generated.
    pub commands_generated: usize,
    /// Command rows in the lake.
    pub lake_rows: u64,
    /// Ingest: median wall seconds, CPU seconds, peak RSS.
    pub ingest: Vec<Cost>,
    /// The floor: CPU seconds of zstd + AEAD over the same transcripts, per run.
    pub floor_cpu: Vec<f64>,
    /// The transcripts compressed and sealed one per session (the floor's output): how
    /// compressible the workload is.
    pub sealed_bytes: u64,
    /// Lake bytes.
    pub lake_bytes: u64,
    /// Bytes of the commands table.
    pub commands_bytes: u64,
    /// Query figures.
    pub figures: Vec<Figure>,
    /// Peak RSS of ingest on the single large session, and its size.
    pub single: Option<(u64, Cost)>,
    /// `sessionlake compact` after the last ingest (the queries run on the compacted lake).
    pub compaction: Option<Compaction>,
}

/// What compaction did to the lake.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Compaction {
    /// Wall, CPU seconds and peak RSS of `sessionlake compact`.
    pub cost: Cost,
    /// Files in `commands/` and `sessions/` before and after.
    pub files_before: usize,
    /// Files after.
    pub files_after: usize,
    /// Lake bytes after.
    pub lake_bytes_after: u64,
    /// Bytes of the commands table after.
    pub commands_bytes_after: u64,
}

/// Counts the files of the `commands` and `sessions` tables of `lake`.
fn table_files(lake: &Path) -> usize {
    fn count(dir: &Path) -> usize {
        std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|entry| {
                let path = entry.path();
                if path.is_dir() { count(&path) } else { 1 }
            })
            .sum()
    }
    count(&lake.join("commands")) + count(&lake.join("sessions"))
}

/// Runs the whole benchmark and prints the report; returns it.
pub fn run(options: &RunOptions) -> anyhow::Result<Report> {
    let summary = crate::workload::read_summary(&options.workload)?;
    let ingest_bin = options.bin_dir.join("sessionlake-ingest");
    let cli_bin = options.bin_dir.join("sessionlake");
    for binary in [&ingest_bin, &cli_bin] {
        if std::fs::metadata(binary).is_err() {
            bail!(
                "{} is missing: build the binaries first (cargo build --release)",
                binary.display()
            );
        }
    }
    if options.work.starts_with(&options.workload) || options.workload.starts_with(&options.work) {
        bail!("the work folder and the workload folder must not contain each other");
    }
    let stale = set_aside(&options.work)?;
    let runs = options.runs.max(1);
    let mut report = Report {
        raw_bytes: summary.raw_bytes,
        sessions: summary.session_list.len(),
        commands_generated: summary.commands,
        ..Report::default()
    };
    // Each run ingests into a lake of its own; the last one is queried. The others are
    // deleted at the end, not between runs (see `set_aside`).
    let run_lake = |run: usize| options.work.join(format!("lake-{}", run + 1));
    let run_keyring = |run: usize| options.work.join(format!("keyring-{}.json", run + 1));
    let (lake, keyring) = (run_lake(runs - 1), run_keyring(runs - 1));

    // Ingest and its floor, interleaved: floor, ingest, floor, ingest, … so that both see the
    // same load on a shared host.
    eprintln!("sessionlake-bench: ingest of {} MB, {runs} runs", summary.raw_bytes / 1_000_000);
    for run in 0..runs {
        let (floor, sealed) = floor_cpu_seconds(&options.workload, &summary)?;
        report.floor_cpu.push(floor);
        report.sealed_bytes = sealed;
        let (lake, keyring) = (run_lake(run), run_keyring(run));
        evict(&options.python, std::slice::from_ref(&options.workload))?;
        let (cost, _) =
            run_measured(&ingest_bin, &ingest_args(&options.workload, &lake, &keyring), &[0])?;
        eprintln!(
            "  run {}: ingest {:.1} s wall, {:.1} s cpu, floor {:.1} s cpu",
            run + 1,
            cost.wall,
            cost.cpu,
            report.floor_cpu[run]
        );
        report.ingest.push(cost);
    }
    report.lake_bytes = tree_bytes(&lake);
    report.commands_bytes = tree_bytes(&lake.join("commands"));

    let cli = |args: &[&str]| -> Vec<String> {
        let mut all: Vec<String> = args.iter().map(|arg| arg.to_string()).collect();
        all.extend(["--lake".into(), path_arg(&lake), "--keyring".into(), path_arg(&keyring)]);
        all
    };

    // Compaction, as a cron job would run it once the day is over; the queries run on the
    // compacted lake.
    let files_before = table_files(&lake);
    evict(&options.python, std::slice::from_ref(&lake))?;
    let (cost, _) = run_measured(&cli_bin, &cli(&["compact", "--min-age", "0s", "--json"]), &[0])?;
    let compaction = Compaction {
        cost,
        files_before,
        files_after: table_files(&lake),
        lake_bytes_after: tree_bytes(&lake),
        commands_bytes_after: tree_bytes(&lake.join("commands")),
    };
    eprintln!(
        "sessionlake-bench: compact {:.1} s wall, {} table files -> {}",
        compaction.cost.wall, compaction.files_before, compaction.files_after
    );
    report.compaction = Some(compaction);

    // The plaintext copy DuckDB reads: the same parser, the same writer settings and the
    // same compacted layout (one file per day, sorted by session), no encryption (DuckDB
    // cannot open modular-encrypted columns).
    let plain = options.work.join("plain");
    write_plaintext_copy(&options.workload, &summary, &plain)?;
    report.lake_rows =
        count_rows(&cli_bin, &cli(&["sql", "SELECT count(*) FROM commands", "--format", "csv"]))?;

    // DuckDB runs the SQL `sessionlake search` runs (the CLI's `SEARCH_COLUMNS` and join):
    // commands from the plaintext copy, sessions from the lake itself (a plaintext table), a
    // command's time being its own or else its session's start; time ranges also prune the
    // `dt` partitions, as ours does.
    let commands_glob = format!("{}/commands/**/*.parquet", plain.display());
    let sessions_glob = format!("{}/sessions/**/*.parquet", lake.display());
    let duckdb_sql = |condition: &str| {
        format!(
            "SELECT c.session_id, c.seq, coalesce(c.started_at, s.started_at) AS time, \
             CASE WHEN c.started_at IS NULL THEN 'session-start' ELSE c.time_source END AS time_kind, \
             c.principal, c.run_as, c.target, c.cwd, c.command \
             FROM read_parquet('{commands_glob}', hive_partitioning = true) c \
             LEFT JOIN (SELECT session_id, min(started_at) AS started_at, max(ended_at) AS ended_at \
             FROM read_parquet('{sessions_glob}', hive_partitioning = true) GROUP BY session_id) s \
             ON c.session_id = s.session_id WHERE {condition} \
             ORDER BY coalesce(c.started_at, s.started_at, s.ended_at), c.session_id, c.seq"
        )
    };
    let time = "coalesce(c.started_at, s.started_at, s.ended_at)";
    let probe = pick_probe(&summary);
    let mut queries: Vec<Query> = Vec::new();
    queries.push(Query {
        name: "who ran X (regex on commands)".into(),
        ours: cli(&["search", "--command", NEEDLE_REGEX, "--format", "csv", "--color", "never"]),
        duckdb: duckdb_sql(&format!("regexp_matches(c.command, '{NEEDLE_REGEX}')")),
        // `-o`: one line per match (an uploaded CloudWatch file is one JSON line).
        grep: Some(vec!["-E".into(), "-r".into(), "-o".into(), NEEDLE_REGEX.into()]),
        rg: Some(vec!["--no-ignore".into(), "-o".into(), "-e".into(), NEEDLE_REGEX.into()]),
    });
    queries.push(Query {
        name: "principal + time range".into(),
        ours: cli(&[
            "search",
            "--principal",
            &probe.principal,
            "--since",
            &probe.since,
            "--until",
            &probe.until,
            "--format",
            "csv",
            "--color",
            "never",
        ]),
        duckdb: duckdb_sql(&format!(
            "c.principal = '{}' AND {time} >= TIMESTAMPTZ '{}' AND {time} < TIMESTAMPTZ '{}' \
             AND c.dt BETWEEN DATE '{}' AND DATE '{}'",
            probe.principal,
            probe.since,
            probe.until,
            probe.since.get(..10).unwrap_or_default(),
            probe.until.get(..10).unwrap_or_default()
        )),
        grep: None,
        rg: None,
    });
    queries.push(Query {
        name: "session-id lookup".into(),
        ours: cli(&[
            "search",
            "--session",
            &probe.session_id,
            "--format",
            "csv",
            "--color",
            "never",
        ]),
        duckdb: duckdb_sql(&format!("c.session_id = '{}'", probe.session_id)),
        grep: Some(vec!["-r".into(), "-l".into(), "-F".into(), probe.session_id.clone()]),
        rg: Some(vec!["--no-ignore".into(), "-l".into(), "-F".into(), probe.session_id.clone()]),
    });
    queries.push(Query {
        name: "every command (a query matching millions)".into(),
        ours: cli(&["search", "--since", "2020-01-01", "--format", "csv", "--color", "never"]),
        duckdb: duckdb_sql(&format!("{time} >= TIMESTAMPTZ '2020-01-01'")),
        grep: None,
        rg: None,
    });
    let data_dirs = [lake.clone(), plain.clone(), options.workload.clone()];
    for query in &queries {
        eprintln!("sessionlake-bench: {}", query.name);
        for cache in ["cold", "warm"] {
            let mut tools: Vec<(&str, Tool)> = vec![
                ("sessionlake", Tool::Process(cli_bin.clone(), query.ours.clone())),
                ("duckdb (engine time)", Tool::Duckdb(query.duckdb.clone())),
            ];
            // grep and rg read the transcripts as delivered (not CloudTrail, not workload.json).
            let transcripts: Vec<String> = ["s3", "cloudwatch"]
                .iter()
                .map(|folder| options.workload.join(folder))
                .filter(|folder| folder.is_dir())
                .map(|folder| path_arg(&folder))
                .collect();
            if let Some(args) = &query.grep {
                let all = [args.clone(), transcripts.clone()].concat();
                tools.push(("grep", Tool::Process(PathBuf::from("grep"), all)));
            }
            if let Some(args) = &query.rg {
                let all = [args.clone(), transcripts.clone()].concat();
                tools.push(("rg", Tool::Process(PathBuf::from("rg"), all)));
            }
            let mut samples: BTreeMap<&str, Vec<Sample>> = BTreeMap::new();
            if cache == "warm" {
                for (_, tool) in &tools {
                    tool.run(&options.python)?;
                }
            }
            // Interleaved: each round runs every tool once.
            for _ in 0..runs {
                for (name, tool) in &tools {
                    if cache == "cold" {
                        evict(&options.python, &data_dirs)?;
                    }
                    samples.entry(name).or_default().push(tool.run(&options.python)?);
                }
            }
            for (name, _) in &tools {
                let taken = samples.remove(name).unwrap_or_default();
                let seconds: Vec<f64> = taken.iter().map(|sample| sample.seconds).collect();
                let rss: Vec<f64> = taken.iter().map(|sample| sample.peak_rss as f64).collect();
                report.figures.push(Figure {
                    name: query.name.clone(),
                    tool: name.to_string(),
                    cache: cache.to_string(),
                    seconds: median(&seconds),
                    rows: taken.last().map(|sample| sample.lines),
                    peak_rss: median(&rss) as u64,
                });
            }
        }
    }

    if let Some(single) = &options.single {
        let single_summary = crate::workload::read_summary(single)?;
        let single_lake = options.work.join("single-lake");
        let single_keyring = options.work.join("single-keyring.json");
        eprintln!(
            "sessionlake-bench: ingest of one {} MB session",
            single_summary.raw_bytes / 1_000_000
        );
        let (cost, _) =
            run_measured(&ingest_bin, &ingest_args(single, &single_lake, &single_keyring), &[0])?;
        report.single = Some((single_summary.raw_bytes, cost));
    }

    // Deleted only now that nothing more is measured: the runs' other lakes and what the
    // folder held before.
    for run in 0..runs - 1 {
        let _ = std::fs::remove_dir_all(run_lake(run));
    }
    let _ = std::fs::remove_dir_all(stale);

    let path = options.work.join("report.json");
    let document = serde_json::to_vec_pretty(&report).context("failed to encode the report")?;
    std::fs::write(&path, document)
        .with_context(|| format!("failed to write {}", path.display()))?;
    print_report(&report, runs);
    Ok(report)
}

/// Creates `work`, moving what it held into `work/stale-<pid>` (returned, to be deleted at the
/// end; an earlier run's stale folder, left by a failure, goes into it too).
///
/// Not deleted first: on ext4 without a journal (this project's build machines), a deleted
/// inode is not reused for 60 s, 360 s while its inode table block is unwritten, and every
/// file created meanwhile makes the allocator step over each such inode
/// (`recently_deleted`). Ingest creates four files per session: right after lakes were
/// deleted, ingesting the medium workload took 5.1 s of CPU instead of 3.2 (most of it `sys`),
/// the file system's doing, not ingest's (BENCHMARKS.md, "Ingest measured on a fresh lake").
fn set_aside(work: &Path) -> anyhow::Result<PathBuf> {
    let stale = work.join(format!("stale-{}", std::process::id()));
    let held = match std::fs::read_dir(work) {
        Ok(entries) => entries
            .map(|entry| entry.map(|entry| entry.path()))
            .collect::<Result<Vec<_>, _>>()
            .with_context(|| format!("failed to list {}", work.display()))?,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(error) => {
            return Err(error).with_context(|| format!("failed to list {}", work.display()));
        }
    };
    std::fs::create_dir_all(&stale)
        .with_context(|| format!("failed to create {}", stale.display()))?;
    for path in held.iter().filter(|path| **path != stale) {
        let Some(name) = path.file_name() else { continue };
        std::fs::rename(path, stale.join(name))
            .with_context(|| format!("failed to move {} aside", path.display()))?;
    }
    Ok(stale)
}

fn path_arg(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

fn ingest_args(workload: &Path, lake: &Path, keyring: &Path) -> Vec<String> {
    vec![
        "--local".into(),
        path_arg(workload),
        "--lake".into(),
        path_arg(lake),
        "--keyring".into(),
        path_arg(keyring),
        "--once".into(),
    ]
}

/// A query in every tool's language.
struct Query {
    name: String,
    ours: Vec<String>,
    duckdb: String,
    grep: Option<Vec<String>>,
    rg: Option<Vec<String>>,
}

/// What the query filters on: a principal with sessions, two weeks, and one session.
struct Probe {
    principal: String,
    since: String,
    until: String,
    session_id: String,
}

fn pick_probe(summary: &WorkloadSummary) -> Probe {
    let middle = summary.session_list.len() / 2;
    let facts: Option<&SessionFacts> = summary.session_list.get(middle);
    let principal = facts.map(|facts| facts.principal.clone()).unwrap_or_default();
    let started = facts.map_or(0, |facts| facts.started_at / 1_000_000);
    let day = |seconds: i64| {
        chrono::DateTime::from_timestamp(seconds - seconds.rem_euclid(86_400), 0)
            .map(|time| time.format("%Y-%m-%dT%H:%M:%SZ").to_string())
            .unwrap_or_default()
    };
    Probe {
        principal,
        since: day(started - 7 * 86_400),
        until: day(started + 7 * 86_400),
        session_id: facts.map(|facts| facts.session_id.clone()).unwrap_or_default(),
    }
}

/// One measured run of a tool.
struct Sample {
    seconds: f64,
    peak_rss: u64,
    lines: u64,
}

enum Tool {
    /// A program and its arguments; stdout goes through a pipe and is counted (GNU grep stops
    /// at the first match when its stdout is `/dev/null`).
    Process(PathBuf, Vec<String>),
    /// SQL for DuckDB, run in the venv's Python; the time is the engine's (connect, query,
    /// CSV written to a file), without the interpreter's start and `import duckdb`. Not to a
    /// pipe: DuckDB 2.0 writes CSV with asynchronous ranged writes, and on a pipe the rows
    /// read back were short of the result on large outputs.
    Duckdb(String),
}

const DUCKDB_SCRIPT: &str = r#"
import csv, os, sys, time, resource, tempfile
import duckdb
handle, path = tempfile.mkstemp(suffix=".csv")
os.close(handle)
try:
    started = time.perf_counter()
    connection = duckdb.connect()
    connection.execute("COPY (" + sys.argv[1] + ") TO '" + path + "' (FORMAT csv, HEADER)")
    seconds = time.perf_counter() - started
    with open(path, newline="") as written:
        rows = sum(1 for _ in csv.reader(written)) - 1
finally:
    os.remove(path)
print("duckdb-seconds %.6f %d %d" % (seconds, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, rows), file=sys.stderr)
"#;

impl Tool {
    fn run(&self, python: &Path) -> anyhow::Result<Sample> {
        match self {
            Tool::Process(program, args) => {
                let (cost, lines) = run_counting(program, args)?;
                Ok(Sample { seconds: cost.wall, peak_rss: cost.peak_rss, lines })
            }
            Tool::Duckdb(sql) => {
                let output = Command::new(python)
                    .arg("-c")
                    .arg(DUCKDB_SCRIPT)
                    .arg(sql)
                    .stdin(Stdio::null())
                    .output()
                    .with_context(|| {
                        format!("failed to run DuckDB through {}", python.display())
                    })?;
                let stderr = String::from_utf8_lossy(&output.stderr);
                if !output.status.success() {
                    bail!("DuckDB failed on {sql}: {}", stderr.trim());
                }
                let Some(line) = stderr.lines().find(|line| line.starts_with("duckdb-seconds"))
                else {
                    bail!("DuckDB printed no time: {}", stderr.trim());
                };
                let fields: Vec<f64> = line
                    .split_whitespace()
                    .skip(1)
                    .filter_map(|field| field.parse().ok())
                    .collect();
                let [seconds, rss_kib, rows] = fields[..] else { bail!("cannot read {line:?}") };
                Ok(Sample { seconds, peak_rss: rss_kib as u64 * 1024, lines: rows as u64 })
            }
        }
    }
}

/// Runs a process with stdout through a pipe; returns its cost and the rows it printed: CSV
/// records for `sessionlake` (a multi-line command is one quoted field), lines for the others.
/// Exit 1 (nothing matched) is an answer.
fn run_counting(program: &Path, args: &[String]) -> anyhow::Result<(Cost, u64)> {
    let (cost, stdout) = run_measured(program, args, &[0, 1])?;
    let rows = if program.ends_with("sessionlake") {
        csv_records(&stdout)
    } else {
        memchr::memchr_iter(b'\n', &stdout).count() as u64
    };
    Ok((cost, rows))
}

/// Returns the records of CSV with a header.
fn csv_records(text: &[u8]) -> u64 {
    csv::Reader::from_reader(text).byte_records().filter(Result::is_ok).count() as u64
}

fn count_rows(cli: &Path, args: &[String]) -> anyhow::Result<u64> {
    let output = Command::new(cli)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("failed to run {}", cli.display()))?;
    let text = String::from_utf8_lossy(&output.stdout);
    text.lines()
        .nth(1)
        .and_then(|line| line.trim().parse().ok())
        .with_context(|| format!("cannot read a count from {text:?}"))
}

/// Returns a session's bytes as ingest archives them (the transcript, or the CloudWatch
/// events' text) and its form.
fn session_raw(workload: &Path, facts: &SessionFacts) -> anyhow::Result<(InputForm, Vec<u8>)> {
    let path = workload.join(&facts.file);
    let bytes =
        std::fs::read(&path).with_context(|| format!("failed to read {}", path.display()))?;
    if facts.form == "s3" {
        return Ok((InputForm::S3Transcript, bytes));
    }
    let document: GetLogEventsFile = serde_json::from_slice(&bytes)
        .with_context(|| format!("failed to decode {}", path.display()))?;
    Ok(cloudwatch_raw(&document.events))
}

/// CPU seconds (this thread) of zstd at the lake's level plus the envelope's AES-256-GCM over
/// every session's bytes, one object per session as ingest seals them: what ingest cannot
/// avoid doing to archive them. Returns the seconds and the sealed bytes. Sessions are read
/// in batches of about 64 MiB and each batch is timed as a whole: the thread's CPU clock
/// advances in scheduler ticks, too coarse for one small session.
fn floor_cpu_seconds(workload: &Path, summary: &WorkloadSummary) -> anyhow::Result<(f64, u64)> {
    const BATCH_BYTES: usize = 64 * 1024 * 1024;
    let key = DataKey::random().context("failed to draw a data key")?;
    let wrapped = WrappedKey {
        provider: "local".into(),
        key_id: "bench".into(),
        ciphertext: String::new(),
        context: BTreeMap::new(),
    };
    let mut total = 0.0;
    let mut sealed_bytes = 0u64;
    let mut sessions = summary.session_list.iter().peekable();
    while sessions.peek().is_some() {
        let mut batch = Vec::new();
        let mut batch_bytes = 0;
        while batch_bytes < BATCH_BYTES
            && let Some(facts) = sessions.next()
        {
            let (_, raw) = session_raw(workload, facts)?;
            batch_bytes += raw.len();
            batch.push((facts.session_id.as_str(), raw));
        }
        let before = thread_cpu_seconds().context("no thread CPU time on this system")?;
        for (session_id, raw) in &batch {
            let sealed = seal_bytes(raw, &key, &wrapped)
                .with_context(|| format!("failed to seal {session_id}"))?;
            sealed_bytes += sealed.len() as u64;
        }
        let after = thread_cpu_seconds().context("no thread CPU time on this system")?;
        total += after - before;
    }
    Ok((total, sealed_bytes))
}

/// Parses every session as ingest does (CloudTrail's facts in the context) and writes its
/// commands, unencrypted, as the compacted lake holds them: one file per day,
/// `commands/dt=…/compact.parquet`, sorted by (session, seq).
fn write_plaintext_copy(
    workload: &Path,
    summary: &WorkloadSummary,
    plain: &Path,
) -> anyhow::Result<()> {
    let day_of = |facts: &SessionFacts| {
        chrono::DateTime::from_timestamp_micros(facts.started_at)
            .map(|time| time.format("%Y-%m-%d").to_string())
            .unwrap_or_default()
    };
    let mut sessions: Vec<&SessionFacts> = summary.session_list.iter().collect();
    sessions.sort_by_key(|facts| day_of(facts));
    // One day's commands in memory at a time.
    let mut day_commands = Vec::new();
    for (index, facts) in sessions.iter().enumerate() {
        let (form, raw) = session_raw(workload, facts)?;
        let context = SessionContext {
            session_id: facts.session_id.clone(),
            principal: Some(facts.principal.clone()),
            run_as: None,
            target: Some(facts.target.clone()),
            region: Some("us-east-1".into()),
            account: sessionlake_indexer::account_of_arn(&facts.principal),
            started_at: Some(facts.started_at),
        };
        let parsed = parse_session(form, &raw, &context)
            .map_err(|error| anyhow::anyhow!("failed to parse {}: {error}", facts.session_id))?;
        day_commands.extend(parsed.commands);
        let day = day_of(facts);
        if sessions.get(index + 1).is_some_and(|next| day_of(next) == day) {
            continue;
        }
        let bytes =
            sessionlake_tables::parquet_io::write_commands_compacted_unencrypted(&day_commands)
                .with_context(|| format!("failed to write the plaintext copy of {day}"))?;
        day_commands.clear();
        let folder = plain.join(format!("commands/dt={day}"));
        std::fs::create_dir_all(&folder)
            .with_context(|| format!("failed to create {}", folder.display()))?;
        let path = folder.join("compact.parquet");
        std::fs::write(&path, bytes)
            .with_context(|| format!("failed to write {}", path.display()))?;
    }
    Ok(())
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// Prints the report as Markdown tables, with the ratios and the issue's targets.
fn print_report(report: &Report, runs: usize) {
    let megabytes = report.raw_bytes as f64 / 1e6;
    let walls: Vec<f64> = report.ingest.iter().map(|cost| cost.wall).collect();
    let cpus: Vec<f64> = report.ingest.iter().map(|cost| cost.cpu).collect();
    let ratios: Vec<f64> =
        report.ingest.iter().zip(&report.floor_cpu).map(|(cost, floor)| cost.cpu / floor).collect();
    let per_core = megabytes / median(&cpus);
    let floor_per_core = megabytes / median(&report.floor_cpu);
    let ratio = median(&ratios);
    println!("## Ingest ({runs} runs, medians)");
    println!();
    println!(
        "| input | sessions | commands (generated / in the lake) | wall s | wall MB/s | CPU s | MB/s per core | floor MB/s per core (zstd 3 + AES-256-GCM) | ingest / floor (CPU) |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    println!(
        "| {megabytes:.1} MB | {} | {} / {} | {:.1} | {:.1} | {:.1} | **{per_core:.1}** | {floor_per_core:.1} | **{ratio:.2}×** |",
        report.sessions,
        report.commands_generated,
        report.lake_rows,
        median(&walls),
        megabytes / median(&walls),
        median(&cpus),
    );
    println!();
    let rss: Vec<f64> = report.ingest.iter().map(|cost| cost.peak_rss as f64).collect();
    println!(
        "Lake: {:.1} MiB for {:.1} MiB of transcripts ({:.1}%; commands table {:.1} MiB; the transcripts alone, zstd 3 per session, {:.1}%). Ingest peak RSS {:.0} MiB.",
        mib(report.lake_bytes),
        mib(report.raw_bytes),
        report.lake_bytes as f64 * 100.0 / report.raw_bytes.max(1) as f64,
        mib(report.commands_bytes),
        report.sealed_bytes as f64 * 100.0 / report.raw_bytes.max(1) as f64,
        median(&rss) / (1024.0 * 1024.0)
    );
    if let Some(compaction) = &report.compaction {
        println!(
            "Compaction (`sessionlake compact`): {:.1} s wall, {:.1} s CPU, peak RSS {:.0} MiB; \
             {} table files -> {}; lake {:.1} MiB after, commands table {:.1} MiB.",
            compaction.cost.wall,
            compaction.cost.cpu,
            mib(compaction.cost.peak_rss),
            compaction.files_before,
            compaction.files_after,
            mib(compaction.lake_bytes_after),
            mib(compaction.commands_bytes_after)
        );
    }
    if let Some((bytes, cost)) = &report.single {
        println!(
            "One {:.0} MiB session: ingest peak RSS {:.0} MiB, {:.1} s wall.",
            mib(*bytes),
            mib(cost.peak_rss),
            cost.wall
        );
    }
    println!();
    println!(
        "## Queries ({runs} runs each, interleaved, medians; cold = page cache of the data dropped before each run)"
    );
    println!();
    println!("| query | cache | tool | seconds | rows/lines | peak RSS MiB | sessionlake / tool |");
    println!("|---|---|---|---:|---:|---:|---:|");
    for figure in &report.figures {
        let ours = report
            .figures
            .iter()
            .find(|other| {
                other.name == figure.name
                    && other.cache == figure.cache
                    && other.tool == "sessionlake"
            })
            .map_or(f64::NAN, |ours| ours.seconds);
        println!(
            "| {} | {} | {} | {:.3} | {} | {:.0} | {:.2} |",
            figure.name,
            figure.cache,
            figure.tool,
            figure.seconds,
            figure.rows.map_or("-".to_string(), |rows| rows.to_string()),
            mib(figure.peak_rss),
            ours / figure.seconds
        );
    }
}
