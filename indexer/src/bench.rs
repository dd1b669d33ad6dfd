//! Parsing throughput per SSM form, on one core, from the recorded corpus.
//!
//! Each form's input is one large session built from every corpus recording of that form:
//! transcript bodies concatenated inside one `script` header and footer (S3, uploaded
//! CloudWatch), or event lines concatenated (streamed CloudWatch), repeated to the size asked.
//! Reported: the median of several runs, in MB/s (10^6 bytes) of input.

use std::path::Path;
use std::time::Instant;

use crate::eval::FORMS;
use crate::input::{GetLogEventsFile, cloudwatch_raw, split_script};
use crate::{InputForm, SessionContext, parse_session};

fn build_input(
    corpus: &Path,
    file: &str,
    target_bytes: usize,
) -> Result<Option<(InputForm, Vec<u8>)>, String> {
    let mut dirs: Vec<_> = std::fs::read_dir(corpus)
        .map_err(|error| format!("failed to list {}: {error}", corpus.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .collect();
    dirs.sort();
    let mut bodies = Vec::new();
    let mut form = None;
    for dir in dirs {
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

/// Prints MB/s per form (or only `only`): the median of `runs` parses of `mib` MiB each.
pub fn run(corpus: &Path, mib: usize, runs: usize, only: Option<&str>) -> Result<(), String> {
    if let Some(only) = only
        && !FORMS.iter().any(|(name, _)| *name == only)
    {
        return Err(format!("no form named {only}"));
    }
    println!(
        "{:<20} {:>10} {:>10} {:>12} {:>14} {:>6}",
        "form", "input MB", "commands", "median MB/s", "terminal MB/s", "runs"
    );
    for (name, file) in FORMS.iter().filter(|(name, _)| only.is_none_or(|only| only == *name)) {
        let Some((form, input)) = build_input(corpus, file, mib * 1024 * 1024)? else {
            continue;
        };
        let mut speeds = Vec::with_capacity(runs);
        let mut terminal_speeds = Vec::with_capacity(runs);
        let mut commands = 0;
        for _ in 0..runs.max(1) {
            // The terminal model alone, for the share of the time it takes.
            if form != InputForm::CloudwatchStream {
                let started = Instant::now();
                let screen =
                    crate::terminal::LineTerminal::run(crate::terminal::DEFAULT_WIDTH, &input);
                std::hint::black_box(screen);
                terminal_speeds.push(input.len() as f64 / 1e6 / started.elapsed().as_secs_f64());
            }
            let started = Instant::now();
            let parsed =
                parse_session(form, &input, &SessionContext::new("bench-0123456789abcdef0"))
                    .map_err(|error| format!("{name}: {error}"))?;
            let seconds = started.elapsed().as_secs_f64();
            commands = parsed.commands.len();
            speeds.push(input.len() as f64 / 1e6 / seconds);
        }
        let median = |mut values: Vec<f64>| {
            values.sort_by(f64::total_cmp);
            values.get(values.len() / 2).map_or("-".to_string(), |v| format!("{v:.1}"))
        };
        println!(
            "{:<20} {:>10.1} {:>10} {:>12} {:>14} {:>6}",
            name,
            input.len() as f64 / 1e6,
            commands,
            median(speeds),
            median(terminal_speeds),
            runs.max(1)
        );
    }
    Ok(())
}
