//! Parsing throughput per SSM form, on one core, from the recorded corpus.
//!
//! Each form's input is one large session built from corpus recordings of that form:
//! transcript bodies concatenated inside one `script` header and footer (S3, uploaded
//! CloudWatch), or event lines concatenated (streamed CloudWatch), repeated to the size asked.
//! Two workloads: the *editing* corpus (every scenario but `ops-*`: short commands, line
//! editing, history recall, completion: about 240 bytes of transcript per command, the worst
//! case for the parser) and the *ops* session (`ops-*`: an operator's look around a host,
//! where output dominates, as in most real sessions: about 16 KB per command).
//! Reported: the median of several runs, in MB/s (10^6 bytes) of input, by the wall clock and
//! per CPU-second of the parsing thread (Linux's `/proc/thread-self/schedstat`): the second is
//! MB/s per core, and stays true on a busy host where other processes take turns on the core.

use std::path::Path;
use std::time::Instant;

use crate::eval::FORMS;
use sessionlake_indexer::input::{GetLogEventsFile, cloudwatch_raw, split_script};
use sessionlake_indexer::{InputForm, SessionContext, parse_session};

/// A workload: its name, and whether a corpus scenario belongs to it.
type Workload = (&'static str, fn(&str) -> bool);

/// The two workloads.
const WORKLOADS: [Workload; 2] = [
    ("editing", |scenario| !scenario.starts_with("ops-")),
    ("ops", |scenario| scenario.starts_with("ops-")),
];

fn scenario_of(dir: &Path) -> Option<String> {
    let bytes = std::fs::read(dir.join("expected.json")).ok()?;
    let expected: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    expected.get("scenario")?.as_str().map(str::to_string)
}

fn build_input(
    corpus: &Path,
    file: &str,
    target_bytes: usize,
    workload: fn(&str) -> bool,
) -> Result<Option<(InputForm, Vec<u8>)>, String> {
    let mut dirs: Vec<_> = std::fs::read_dir(corpus)
        .map_err(|error| format!("failed to list {}: {error}", corpus.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .collect();
    dirs.sort();
    let mut bodies = Vec::new();
    let mut form = None;
    for dir in dirs {
        if !scenario_of(&dir).is_some_and(|scenario| workload(&scenario)) {
            continue;
        }
        let Ok(bytes) = std::fs::read(dir.join(file)) else {
            continue;
        };
        let (input_form, raw) = if file.ends_with(".json") {
            let document: GetLogEventsFile =
                serde_json::from_slice(&bytes).map_err(|e| format!("{}: {e}", dir.display()))?;
            cloudwatch_raw(&document.events)
        } else {
            (InputForm::S3Transcript, bytes)
        };
        let body = match input_form {
            InputForm::CloudwatchStream => raw,
            _ => raw[split_script(&raw).body].to_vec(),
        };
        form = Some(input_form);
        bodies.push(body);
    }
    let Some(form) = form else { return Ok(None) };
    let unit: Vec<u8> = bodies.concat();
    if unit.is_empty() {
        return Ok(None);
    }
    let mut input = Vec::with_capacity(target_bytes + unit.len() + 256);
    if form != InputForm::CloudwatchStream {
        input.extend_from_slice(b"Script started on 2026-03-14 09:30:00+00:00\n");
    }
    while input.len() < target_bytes {
        input.extend_from_slice(&unit);
    }
    if form != InputForm::CloudwatchStream {
        input.extend_from_slice(b"\nScript done on 2026-03-14 09:30:00+00:00\n");
    }
    Ok(Some((form, input)))
}

/// What to measure: every form and workload unless one is named.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// Only this form (`s3`, `s3-legacy`, `cloudwatch-upload`, `cloudwatch-stream`).
    pub form: Option<String>,
    /// Only this workload (`editing`, `ops`).
    pub workload: Option<String>,
}

/// Prints MB/s per form and workload: the median of `runs` parses of `mib` MiB each.
pub fn run(corpus: &Path, mib: usize, runs: usize, selection: &Selection) -> Result<(), String> {
    let only = selection.form.as_deref();
    if let Some(workload) = selection.workload.as_deref()
        && !WORKLOADS.iter().any(|(name, _)| *name == workload)
    {
        return Err(format!("no workload named {workload}"));
    }
    if let Some(only) = only
        && !FORMS.iter().any(|(name, _)| *name == only)
    {
        return Err(format!("no form named {only}"));
    }
    let header = report_line(format_args!(
        "{:<9} {:<18} {:>8} {:>9} {:>10} {:>13} {:>14} {:>5}",
        "workload",
        "form",
        "input MB",
        "commands",
        "wall MB/s",
        "per-core MB/s",
        "terminal/core",
        "runs"
    ))?;
    if !header {
        return Ok(());
    }
    let forms = FORMS.iter().filter(|(name, _)| only.is_none_or(|only| only == *name));
    let workloads = WORKLOADS
        .iter()
        .filter(|(name, _)| selection.workload.as_deref().is_none_or(|only| only == *name));
    for ((name, file), (workload, belongs)) in
        forms.flat_map(|form| workloads.clone().map(move |workload| (form, workload)))
    {
        let Some((form, input)) = build_input(corpus, file, mib * 1024 * 1024, *belongs)? else {
            continue;
        };
        let megabytes = input.len() as f64 / 1e6;
        let mut speeds = Vec::with_capacity(runs);
        let mut core_speeds = Vec::with_capacity(runs);
        let mut terminal_speeds = Vec::with_capacity(runs);
        let mut commands = 0;
        for _ in 0..runs.max(1) {
            // The terminal model alone, for the share of the time it takes.
            if form != InputForm::CloudwatchStream {
                let cpu = thread_cpu_seconds();
                let screen = sessionlake_indexer::terminal::LineTerminal::run(
                    sessionlake_indexer::terminal::DEFAULT_WIDTH,
                    &input,
                );
                std::hint::black_box(screen);
                if let (Some(before), Some(after)) = (cpu, thread_cpu_seconds()) {
                    terminal_speeds.push(megabytes / (after - before));
                }
            }
            let cpu = thread_cpu_seconds();
            let started = Instant::now();
            let parsed =
                parse_session(form, &input, &SessionContext::new("bench-0123456789abcdef0"))
                    .map_err(|error| format!("{name}: {error}"))?;
            let seconds = started.elapsed().as_secs_f64();
            if let (Some(before), Some(after)) = (cpu, thread_cpu_seconds()) {
                core_speeds.push(megabytes / (after - before));
            }
            commands = parsed.commands.len();
            speeds.push(megabytes / seconds);
        }
        let median = |mut values: Vec<f64>| {
            values.sort_by(f64::total_cmp);
            values.get(values.len() / 2).map_or("-".to_string(), |v| format!("{v:.1}"))
        };
        let written = report_line(format_args!(
            "{:<9} {:<18} {:>8.1} {:>9} {:>10} {:>13} {:>14} {:>5}",
            workload,
            name,
            megabytes,
            commands,
            median(speeds),
            median(core_speeds),
            median(terminal_speeds),
            runs.max(1)
        ))?;
        if !written {
            return Ok(());
        }
    }
    Ok(())
}

/// Writes one line of a report to stdout. `Ok(false)`: stdout was closed (`| head`), so the
/// report stops quietly.
pub fn report_line(line: std::fmt::Arguments<'_>) -> Result<bool, String> {
    use std::io::Write as _;
    match writeln!(std::io::stdout().lock(), "{line}") {
        Ok(()) => Ok(true),
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => Ok(false),
        Err(error) => Err(format!("failed to write the report: {error}")),
    }
}

/// Seconds the calling thread has spent on a CPU (Linux), or `None` where that is not known.
fn thread_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let nanoseconds: u64 = stat.split_whitespace().next()?.parse().ok()?;
    Some(nanoseconds as f64 / 1e9)
}
