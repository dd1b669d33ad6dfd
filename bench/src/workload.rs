//! The workload generator: synthetic Session Manager sessions at any scale, deterministic
//! from a seed, built from the recorded real-shell corpus (`corpus/`).
//!
//! What comes from the corpus:
//! - **edited commands**: every readline round of the bash recordings (from one
//!   `ESC[?2004h`, bash switching bracketed paste on as readline starts, to the next), kept
//!   byte for byte when the typed part shows line editing (backspaces, cursor moves,
//!   redraws, completion lists, history recall): real editing, not an imitation;
//! - **commands**: the single-line commands of every scenario's oracle;
//! - **output**: the lines of the output-heavy operator recording (`ops-output-heavy`:
//!   listings, package lists, config files, logs, `ls --color`), taken in runs so that
//!   output keeps its real shape.
//!
//! What is synthetic: the mix (the share of edited rounds, multi-line commands at the PS2
//! prompt, noisy output with colours and `\r` progress redraws), the sizes, the people
//! (principals, targets, start times), and a *needle*, `sudo rm -rf /var/tmp/build-N`, run
//! in a known number of places so that "who ran X" has an exact answer.
//!
//! Every session is written in one of the forms ingest reads from a local folder (see
//! `docs/ssm-log-formats.md` of the team): an S3 transcript (`s3/ssm-logs/<id>.log`, `script`
//! header and footer, `\r\r\n` line ends), an uploaded CloudWatch stream
//! (`cloudwatch/ssm-sessions/<id>.json`, `get-log-events` output: the transcript with
//! `\r\n` → `\n`, cut into events of at most 200,000 bytes at line ends, the last `\n` of
//! each event dropped) or a streamed one (the same file name, one JSON event per command,
//! escapes stripped as the agent does). Every session also gets a CloudTrail `StartSession`
//! (`cloudtrail/AWSLogs/…`, one file per day): who, where and when, as in a real account.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use serde_json::json;

/// The command every needle runs, followed by a number.
pub const NEEDLE_PREFIX: &str = "sudo rm -rf /var/tmp/build-";

/// The regular expression that finds the needles (Rust regex, DuckDB's RE2 and `grep -E` alike).
pub const NEEDLE_REGEX: &str = r"rm\s+-rf\s+/var/tmp/build-";

/// The account every generated principal belongs to.
const ACCOUNT: &str = "111122223333";

/// The largest event of an uploaded CloudWatch stream (the agent's reader buffer).
const UPLOAD_EVENT_BYTES: usize = 200_000;

/// First day sessions start on, and the number of days they spread over.
const FIRST_DAY: &str = "2026-01-05T00:00:00Z";
const DAYS: i64 = 60;

/// What to generate.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct WorkloadConfig {
    /// Seed: the same seed and parameters give the same bytes.
    pub seed: u64,
    /// Sessions.
    pub sessions: usize,
    /// Mean commands per session (each session gets between half and one and a half times it).
    pub commands_per_session: usize,
    /// Mean bytes of output per command (drawn from an exponential distribution).
    pub output_bytes: usize,
    /// Share of commands that are edited readline rounds from the corpus.
    pub editing_share: f64,
    /// Share of commands typed over several lines (a `for` loop at the PS2 prompt).
    pub multiline_share: f64,
    /// Share of commands whose output is noisy (colours, `\r` progress redraws).
    pub noise_share: f64,
    /// Share of commands that are the needle.
    pub needle_share: f64,
    /// Share of sessions delivered as uploaded CloudWatch streams.
    pub upload_share: f64,
    /// Share of sessions delivered as streamed CloudWatch events.
    pub stream_share: f64,
    /// Distinct principals.
    pub principals: usize,
}

impl WorkloadConfig {
    /// Returns the configuration of a named scale: `small` (the test suite's, ~1 MB), `medium`
    /// (~100 MB, 100 k commands), `1g` (~1 GiB, ~1 M commands), `10m` (~10 M commands) and
    /// `single` (one 1 GiB S3 transcript, for peak memory).
    pub fn scale(name: &str, seed: u64) -> anyhow::Result<WorkloadConfig> {
        let base = WorkloadConfig {
            seed,
            sessions: 40,
            commands_per_session: 50,
            output_bytes: 900,
            editing_share: 0.10,
            multiline_share: 0.03,
            noise_share: 0.05,
            needle_share: 0.001,
            upload_share: 0.10,
            stream_share: 0.10,
            principals: 40,
        };
        Ok(match name {
            "small" => WorkloadConfig { needle_share: 0.01, principals: 8, ..base },
            "medium" => WorkloadConfig { sessions: 500, commands_per_session: 200, ..base },
            "1g" => WorkloadConfig {
                sessions: 5_000,
                commands_per_session: 200,
                output_bytes: 1_050,
                ..base
            },
            "10m" => WorkloadConfig {
                sessions: 50_000,
                commands_per_session: 200,
                output_bytes: 1_050,
                ..base
            },
            "single" => WorkloadConfig {
                sessions: 1,
                commands_per_session: 1_000_000,
                output_bytes: 1_050,
                upload_share: 0.0,
                stream_share: 0.0,
                principals: 1,
                ..base
            },
            other => bail!("no scale named {other} (small, medium, 1g, 10m, single)"),
        })
    }
}

/// What was generated: written to `workload.json` beside the files.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct WorkloadSummary {
    /// The configuration.
    pub config: WorkloadConfig,
    /// Sessions per form (`s3`, `cloudwatch-upload`, `cloudwatch-stream`).
    pub sessions_by_form: BTreeMap<String, usize>,
    /// Commands generated (what was typed; the parser's count can differ slightly where an
    /// edited corpus round holds no command or several).
    pub commands: usize,
    /// Needle commands: the exact answer of "who ran `NEEDLE_REGEX`".
    pub needles: usize,
    /// Transcript bytes: the sessions as the parser reads them (S3 and upload forms: the
    /// transcript; stream form: the events).
    pub raw_bytes: u64,
    /// Bytes of the files written (what `grep` reads).
    pub file_bytes: u64,
    /// Sessions with their facts, for the benchmark's queries and the plaintext copy.
    pub session_list: Vec<SessionFacts>,
}

/// One generated session.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct SessionFacts {
    /// Session id.
    pub session_id: String,
    /// IAM ARN.
    pub principal: String,
    /// Instance id.
    pub target: String,
    /// Start (µs since the epoch).
    pub started_at: i64,
    /// `s3`, `cloudwatch-upload` or `cloudwatch-stream`.
    pub form: String,
    /// The file, relative to the workload folder.
    pub file: String,
    /// Commands generated.
    pub commands: usize,
}

/// The corpus material the generator draws from.
#[derive(Debug, Default)]
pub struct Material {
    /// Edited readline rounds (S3 bytes, `\r\r\n` ends), from one `ESC[?2004h` to the next.
    edited: Vec<Vec<u8>>,
    /// Single-line commands of the oracles.
    commands: Vec<String>,
    /// Output lines of the output-heavy recording, without their line ends.
    output_lines: Vec<Vec<u8>>,
}

/// Scenarios whose rounds leave the terminal in a state another session would not share
/// (full-screen programs, a resized terminal) or that are not bash with bracketed paste.
fn usable_scenario(scenario: &str, shell: &str) -> bool {
    shell == "bash"
        && !["bash-vim", "bash-less", "bash-narrow-resize", "bash42-legacy-paste"]
            .contains(&scenario)
}

impl Material {
    /// Reads the corpus folder (one folder per recording, `s3.log` and `expected.json`).
    pub fn from_corpus(corpus: &Path) -> anyhow::Result<Material> {
        let mut dirs: Vec<PathBuf> = std::fs::read_dir(corpus)
            .with_context(|| format!("failed to list {}", corpus.display()))?
            .filter_map(|entry| entry.ok().map(|entry| entry.path()))
            .collect();
        dirs.sort();
        let mut material = Material::default();
        for dir in dirs {
            let Ok(expected) = std::fs::read(dir.join("expected.json")) else { continue };
            let expected: serde_json::Value = serde_json::from_slice(&expected)
                .with_context(|| format!("failed to read {}/expected.json", dir.display()))?;
            let scenario = expected["scenario"].as_str().unwrap_or_default();
            let shell = expected["shell"].as_str().unwrap_or_default();
            for command in expected["commands"].as_array().into_iter().flatten() {
                if let Some(text) = command["command"].as_str()
                    && !text.contains('\n')
                    && !text.is_empty()
                    && !text.starts_with("exit")
                {
                    material.commands.push(text.to_string());
                }
            }
            if !usable_scenario(scenario, shell) {
                continue;
            }
            let Ok(transcript) = std::fs::read(dir.join("s3.log")) else { continue };
            let body = script_body(&transcript);
            if scenario.starts_with("ops-") {
                material.output_lines.extend(output_lines(body));
            } else {
                material.edited.extend(edited_rounds(body));
            }
        }
        if material.edited.is_empty()
            || material.commands.is_empty()
            || material.output_lines.is_empty()
        {
            bail!(
                "{} holds no usable recordings (edited rounds {}, commands {}, output lines {})",
                corpus.display(),
                material.edited.len(),
                material.commands.len(),
                material.output_lines.len()
            );
        }
        Ok(material)
    }
}

/// Returns a transcript without its `Script started` and `Script done` lines.
fn script_body(transcript: &[u8]) -> &[u8] {
    let start = if transcript.starts_with(b"Script started") {
        memchr::memchr(b'\n', transcript).map_or(transcript.len(), |end| end + 1)
    } else {
        0
    };
    let body = &transcript[start..];
    match memchr::memmem::rfind(body, b"\nScript done") {
        Some(end) => &body[..end + 1],
        None => body,
    }
}

/// Splits a bash transcript into readline rounds and keeps those whose typed part was edited.
/// The first round (the shell starting) and the last (`exit`) are left out.
fn edited_rounds(body: &[u8]) -> Vec<Vec<u8>> {
    const START: &[u8] = b"\x1b[?2004h";
    const END: &[u8] = b"\x1b[?2004l";
    let starts: Vec<usize> = memchr::memmem::find_iter(body, START).collect();
    let mut rounds = Vec::new();
    for window in starts.windows(2).skip(1) {
        let round = &body[window[0]..window[1]];
        let Some(typed_end) = memchr::memmem::find(round, END) else { continue };
        let typed = &round[START.len()..typed_end];
        let edited = typed.contains(&0x08) || typed.contains(&0x1b);
        let exits = memchr::memmem::find(typed, b"exit").is_some();
        if edited && !exits {
            rounds.push(round.to_vec());
        }
    }
    rounds
}

/// Returns the output lines of a transcript: lines that are not part of a readline round.
fn output_lines(body: &[u8]) -> Vec<Vec<u8>> {
    body.split(|byte| *byte == b'\n')
        .map(|line| line.strip_suffix(b"\r\r").or(line.strip_suffix(b"\r")).unwrap_or(line))
        .filter(|line| !line.is_empty() && memchr::memmem::find(line, b"\x1b[?2004").is_none())
        .map(<[u8]>::to_vec)
        .collect()
}

/// One command of a session as generated.
enum Step {
    /// Typed text (one or several lines) and its output lines.
    Typed { lines: Vec<String>, output: Vec<Vec<u8>> },
    /// An edited round of the corpus, as recorded.
    Edited(usize),
}

/// Draws from an exponential distribution with this mean.
fn exponential(rng: &mut fastrand::Rng, mean: f64) -> f64 {
    -mean * (1.0 - rng.f64()).ln()
}

fn hex_id(rng: &mut fastrand::Rng, digits: usize) -> String {
    (0..digits).map(|_| char::from(b"0123456789abcdef"[rng.usize(..16)])).collect()
}

/// Generates a workload into `out` (created; must not exist or be empty) and returns what it
/// wrote; `workload.json` in `out` holds the same summary.
pub fn generate(
    material: &Material,
    config: &WorkloadConfig,
    out: &Path,
) -> anyhow::Result<WorkloadSummary> {
    if std::fs::read_dir(out).is_ok_and(|mut entries| entries.next().is_some()) {
        bail!("{} is not empty: generate into a new folder", out.display());
    }
    let mut rng = fastrand::Rng::with_seed(config.seed);
    let first_day = chrono::DateTime::parse_from_rfc3339(FIRST_DAY)
        .context("failed to read the first day")?
        .timestamp();
    let principals: Vec<String> = (0..config.principals.max(1))
        .map(|index| {
            let name = match index {
                0 => "alice".to_string(),
                1 => "bob".to_string(),
                2 => "carol.diaz".to_string(),
                3 => "erin".to_string(),
                _ => format!("user{index:03}"),
            };
            format!("arn:aws:sts::{ACCOUNT}:assumed-role/Operator/{name}")
        })
        .collect();
    let mut summary = WorkloadSummary {
        config: config.clone(),
        sessions_by_form: BTreeMap::new(),
        commands: 0,
        needles: 0,
        raw_bytes: 0,
        file_bytes: 0,
        session_list: Vec::with_capacity(config.sessions),
    };
    let mut trail_days: BTreeMap<String, Vec<serde_json::Value>> = BTreeMap::new();
    for index in 0..config.sessions {
        let principal = &principals[rng.usize(..principals.len())];
        let user = principal.rsplit('/').next().unwrap_or("user");
        let session_id = format!("{user}-{}", hex_id(&mut rng, 17));
        let target = format!("i-{}", hex_id(&mut rng, 17));
        let started = first_day + rng.i64(0..DAYS * 86_400);
        let host = format!("ip-10-0-{}-{}", rng.u8(0..=255), rng.u8(1..=254));
        let draw = rng.f64();
        let form = if draw < config.stream_share {
            "cloudwatch-stream"
        } else if draw < config.stream_share + config.upload_share {
            "cloudwatch-upload"
        } else {
            "s3"
        };
        let spread = config.commands_per_session.max(1);
        let count = if config.sessions == 1 { spread } else { spread / 2 + rng.usize(..=spread) };
        let steps = steps(material, config, &mut rng, count, &mut summary.needles);
        let prompt = format!("[ssm-user@{host} ~]$ ");
        let (file, bytes, raw_len) = match form {
            "s3" => {
                let transcript = transcript(material, &steps, &prompt, &session_id, started);
                let len = transcript.len() as u64;
                (format!("s3/ssm-logs/{session_id}.log"), transcript, len)
            }
            "cloudwatch-upload" => {
                let transcript = transcript(material, &steps, &prompt, &session_id, started);
                let (document, len) = upload_document(&transcript, started)?;
                (format!("cloudwatch/ssm-sessions/{session_id}.json"), document, len)
            }
            _ => {
                let (document, len) =
                    stream_document(&steps, &prompt, &session_id, principal, &target, started)?;
                (format!("cloudwatch/ssm-sessions/{session_id}.json"), document, len)
            }
        };
        let path = out.join(&file);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("failed to create {}", parent.display()))?;
        }
        std::fs::write(&path, &bytes)
            .with_context(|| format!("failed to write {}", path.display()))?;
        summary.raw_bytes += raw_len;
        summary.file_bytes += bytes.len() as u64;
        // The streamed form leaves edited rounds out (see `stream_document`).
        let commands = if form == "cloudwatch-stream" {
            steps.iter().filter(|step| matches!(step, Step::Typed { .. })).count()
        } else {
            steps.len()
        };
        summary.commands += commands;
        *summary.sessions_by_form.entry(form.to_string()).or_default() += 1;
        let day = chrono::DateTime::from_timestamp(started, 0)
            .map(|time| time.format("%Y/%m/%d").to_string())
            .unwrap_or_default();
        trail_days.entry(day).or_default().push(start_session_event(
            index,
            principal,
            &target,
            &session_id,
            started,
        ));
        summary.session_list.push(SessionFacts {
            session_id,
            principal: principal.clone(),
            target,
            started_at: started * 1_000_000,
            form: form.to_string(),
            file,
            commands,
        });
    }
    for (day, records) in trail_days {
        let folder = out.join(format!("cloudtrail/AWSLogs/{ACCOUNT}/CloudTrail/us-east-1/{day}"));
        std::fs::create_dir_all(&folder)
            .with_context(|| format!("failed to create {}", folder.display()))?;
        let stamp = day.replace('/', "");
        let path = folder.join(format!("{ACCOUNT}_CloudTrail_us-east-1_{stamp}T0000Z_BENCH.json"));
        let document = serde_json::to_vec(&json!({ "Records": records }))
            .context("failed to encode a CloudTrail file")?;
        std::fs::write(&path, document)
            .with_context(|| format!("failed to write {}", path.display()))?;
    }
    let path = out.join("workload.json");
    let document = serde_json::to_vec_pretty(&summary).context("failed to encode the summary")?;
    std::fs::write(&path, document)
        .with_context(|| format!("failed to write {}", path.display()))?;
    Ok(summary)
}

/// Reads the summary a [`generate`] wrote into `dir`.
pub fn read_summary(dir: &Path) -> anyhow::Result<WorkloadSummary> {
    let path = dir.join("workload.json");
    let bytes =
        std::fs::read(&path).with_context(|| format!("failed to read {}", path.display()))?;
    serde_json::from_slice(&bytes).with_context(|| format!("failed to decode {}", path.display()))
}

fn steps(
    material: &Material,
    config: &WorkloadConfig,
    rng: &mut fastrand::Rng,
    count: usize,
    needles: &mut usize,
) -> Vec<Step> {
    let mut steps = Vec::with_capacity(count);
    for _ in 0..count {
        let draw = rng.f64();
        let step = if draw < config.needle_share {
            *needles += 1;
            let lines = vec![format!("{NEEDLE_PREFIX}{}", rng.u32(..100_000))];
            Step::Typed { lines, output: Vec::new() }
        } else if draw < config.needle_share + config.editing_share {
            Step::Edited(rng.usize(..material.edited.len()))
        } else if draw < config.needle_share + config.editing_share + config.multiline_share {
            let hosts: Vec<String> = (0..rng.usize(2..5))
                .map(|_| format!("10.0.{}.{}", rng.u8(..), rng.u8(1..)))
                .collect();
            let lines = vec![
                format!("for h in {}; do", hosts.join(" ")),
                "  ping -c 1 -W 1 \"$h\" >/dev/null && echo \"$h up\"".to_string(),
                "done".to_string(),
            ];
            let output = hosts.iter().map(|host| format!("{host} up").into_bytes()).collect();
            Step::Typed { lines, output }
        } else {
            let command = material.commands[rng.usize(..material.commands.len())].clone();
            let mut output = output_run(material, rng, config.output_bytes as f64);
            if rng.f64() < config.noise_share {
                output.insert(0, progress_line(rng));
                output.push(b"\x1b[1;32mdone\x1b[0m \x1b[2m(cached)\x1b[0m".to_vec());
            }
            Step::Typed { lines: vec![command], output }
        };
        steps.push(step);
    }
    steps
}

/// A run of consecutive corpus output lines, about `mean` bytes on average.
fn output_run(material: &Material, rng: &mut fastrand::Rng, mean: f64) -> Vec<Vec<u8>> {
    let wanted = exponential(rng, mean) as usize;
    let mut lines = Vec::new();
    let mut size = 0;
    let mut at = rng.usize(..material.output_lines.len());
    while size < wanted {
        let line = &material.output_lines[at];
        size += line.len() + 2;
        lines.push(line.clone());
        at = (at + 1) % material.output_lines.len();
    }
    lines
}

/// A progress bar redrawn in place with `\r`, as `curl`, `apt` and `pip` draw them.
fn progress_line(rng: &mut fastrand::Rng) -> Vec<u8> {
    let mut line = Vec::new();
    let steps = rng.usize(3..12);
    for step in 0..=steps {
        let done = step * 20 / steps;
        line.extend_from_slice(b"\r");
        line.extend_from_slice(
            format!("{:>3}% [{}{}]", step * 100 / steps, "=".repeat(done), " ".repeat(20 - done))
                .as_bytes(),
        );
    }
    line
}

/// The S3 form of a session: `script` header, readline rounds, footer; `\r\r\n` line ends.
fn transcript(
    material: &Material,
    steps: &[Step],
    prompt: &str,
    session_id: &str,
    started: i64,
) -> Vec<u8> {
    let time = |seconds: i64| {
        chrono::DateTime::from_timestamp(seconds, 0)
            .map(|time| time.format("%Y-%m-%d %H:%M:%S+00:00").to_string())
            .unwrap_or_default()
    };
    let mut out = Vec::new();
    let _ = writeln!(
        out,
        "Script started on {} [COMMAND=\"cat /var/lib/amazon/ssm/i-0/session/orchestration/{session_id}/Standard_Stream/ipcTempFile.log\" <not executed on terminal>]",
        time(started)
    );
    for step in steps {
        match step {
            Step::Edited(index) => out.extend_from_slice(&material.edited[*index]),
            Step::Typed { lines, output } => {
                for (number, line) in lines.iter().enumerate() {
                    out.extend_from_slice(b"\x1b[?2004h");
                    out.extend_from_slice(if number == 0 { prompt.as_bytes() } else { b"> " });
                    out.extend_from_slice(line.as_bytes());
                    out.extend_from_slice(b"\r\r\n\x1b[?2004l\r");
                }
                for line in output {
                    out.extend_from_slice(line);
                    out.extend_from_slice(b"\r\r\n");
                }
            }
        }
    }
    out.extend_from_slice(b"\x1b[?2004h");
    out.extend_from_slice(prompt.as_bytes());
    out.extend_from_slice(b"exit\r\r\n\x1b[?2004l\rexit\r\r\n");
    let _ = writeln!(out, "\nScript done on {}", time(started + steps.len() as i64 * 3));
    out
}

/// The uploaded CloudWatch form of a transcript; returns the document and the length of the
/// transcript as the parser rebuilds it.
fn upload_document(transcript: &[u8], started: i64) -> anyhow::Result<(Vec<u8>, u64)> {
    let mut text = Vec::with_capacity(transcript.len());
    let mut rest = transcript;
    while let Some(at) = memchr::memmem::find(rest, b"\r\n") {
        text.extend_from_slice(&rest[..at]);
        text.push(b'\n');
        rest = &rest[at + 2..];
    }
    text.extend_from_slice(rest);
    let mut events = Vec::new();
    let mut event = Vec::new();
    let timestamp = started * 1000 + 600_000;
    let mut flush = |event: &mut Vec<u8>| {
        let message = String::from_utf8_lossy(event.strip_suffix(b"\n").unwrap_or(event));
        events.push(json!({
            "timestamp": timestamp,
            "message": message,
            "ingestionTime": timestamp + 40,
        }));
        event.clear();
    };
    for line in text.split_inclusive(|byte| *byte == b'\n') {
        if !event.is_empty() && event.len() + line.len() > UPLOAD_EVENT_BYTES {
            flush(&mut event);
        }
        event.extend_from_slice(line);
    }
    if !event.is_empty() {
        flush(&mut event);
    }
    let document = json!({
        "events": events,
        "nextForwardToken": "f/0",
        "nextBackwardToken": "b/0",
    });
    let bytes = serde_json::to_vec(&document).context("failed to encode an upload document")?;
    Ok((bytes, text.len() as u64))
}

/// Removes what the agent's stripper removes from a streamed line: escape sequences and `\r`.
fn stripped(line: &[u8]) -> String {
    let mut out = Vec::with_capacity(line.len());
    let mut at = 0;
    while at < line.len() {
        match line[at] {
            0x1b => {
                at += 1;
                if line.get(at) == Some(&b'[') {
                    at += 1;
                    while at < line.len() && !(0x40..=0x7e).contains(&line[at]) {
                        at += 1;
                    }
                }
                at += 1;
            }
            b'\r' => {
                out.clear();
                at += 1;
            }
            byte => {
                out.push(byte);
                at += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The streamed CloudWatch form: one event per command (its typed lines and output), edited
/// rounds left out (the corpus has their streamed form only per recording); returns the
/// document and the length of the events as the parser reads them.
fn stream_document(
    steps: &[Step],
    prompt: &str,
    session_id: &str,
    principal: &str,
    target: &str,
    started: i64,
) -> anyhow::Result<(Vec<u8>, u64)> {
    let mut events = Vec::new();
    let mut raw_len = 0u64;
    let mut second = started;
    for step in steps {
        let Step::Typed { lines, output } = step else { continue };
        second += 3;
        let mut data: Vec<String> = lines
            .iter()
            .enumerate()
            .map(|(number, line)| format!("{}{line}", if number == 0 { prompt } else { "> " }))
            .collect();
        data.extend(output.iter().map(|line| stripped(line)));
        let time = chrono::DateTime::from_timestamp(second, 0)
            .map(|time| time.format("%Y-%m-%dT%H:%M:%SZ").to_string())
            .unwrap_or_default();
        let message = json!({
            "eventVersion": "1.0",
            "eventTime": time,
            "awsRegion": "us-east-1",
            "target": { "id": target },
            "userIdentity": { "arn": principal },
            "runAsUser": "ssm-user",
            "sessionId": session_id,
            "sessionData": data,
        })
        .to_string();
        let event = json!({
            "timestamp": second * 1000 + 500,
            "message": message,
            "ingestionTime": second * 1000 + 542,
        });
        raw_len += event.to_string().len() as u64 + 1;
        events.push(event);
    }
    let document = json!({
        "events": events,
        "nextForwardToken": "f/0",
        "nextBackwardToken": "b/0",
    });
    let bytes = serde_json::to_vec(&document).context("failed to encode a stream document")?;
    Ok((bytes, raw_len))
}

/// A CloudTrail `StartSession` record.
fn start_session_event(
    index: usize,
    principal: &str,
    target: &str,
    session_id: &str,
    started: i64,
) -> serde_json::Value {
    let time = chrono::DateTime::from_timestamp(started, 0)
        .map(|time| time.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default();
    json!({
        "eventVersion": "1.08",
        "userIdentity": {
            "type": "AssumedRole",
            "arn": principal,
            "accountId": ACCOUNT,
        },
        "eventTime": time,
        "eventSource": "ssm.amazonaws.com",
        "eventName": "StartSession",
        "awsRegion": "us-east-1",
        "sourceIPAddress": "203.0.113.30",
        "userAgent": "aws-cli/2.15.30",
        "requestParameters": { "target": target },
        "responseElements": {
            "sessionId": session_id,
            "tokenValue": "Value hidden due to security reasons.",
        },
        "requestID": format!("bench-request-{index:08}"),
        "eventID": format!("00000000-0000-4000-8000-{index:012}"),
        "readOnly": false,
        "eventType": "AwsApiCall",
        "managementEvent": true,
        "recipientAccountId": ACCOUNT,
        "eventCategory": "Management",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_rounds_keep_only_edited_ones() {
        let body = b"\x1b[?2004h$ ls\r\r\n\x1b[?2004l\ra\r\r\n\x1b[?2004h$ lx\x08\x1b[Ks\r\r\n\x1b[?2004l\ra\r\r\n\x1b[?2004h$ cat\x08\x08\r\r\n\x1b[?2004l\r\x1b[?2004h$ exit\r\r\n";
        let rounds = edited_rounds(body);
        assert_eq!(rounds.len(), 2, "{rounds:?}");
        assert!(rounds[0].starts_with(b"\x1b[?2004h$ lx\x08"));
    }

    #[test]
    fn test_stripped_drops_escapes_and_carriage_returns() {
        let cases: [(&[u8], &str); 3] = [
            (b"\x1b[1;32mdone\x1b[0m", "done"),
            (b"\r 10% [==  ]\r100% [====]", "100% [====]"),
            (b"plain", "plain"),
        ];
        for (input, expected) in cases {
            assert_eq!(stripped(input), expected, "input {input:?}");
        }
    }

    #[test]
    fn test_upload_events_drop_the_last_newline() {
        let (document, len) = upload_document(b"a\r\r\nb\r\r\n", 0).expect("upload document");
        let value: serde_json::Value = serde_json::from_slice(&document).expect("json");
        assert_eq!(value["events"][0]["message"], "a\r\nb\r");
        assert_eq!(len, 6);
    }
}
