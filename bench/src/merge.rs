//! The memory and time of merging table files into one compacted file (`sessionlake compact`,
//! and the rewrites of retention, shred and ingest): `sessionlake-bench merge` writes one
//! `commands` file per session in memory, as ingest does, then merges them all into one file,
//! as compaction merges a day's files, and reports the merge's own peak resident memory above
//! what the inputs hold (Linux's `VmHWM`, reset before each merge through
//! `/proc/self/clear_refs`) and its time, median of the runs. `sessionlake-bench write` times
//! the per-session writes themselves: each session's `commands` and `sessions` file.

use std::collections::BTreeSet;
use std::time::Instant;

use bytes::Bytes;
use sessionlake_schemas::{
    CommandRecord, Confidence, SessionRecord, SessionSource, SessionStatus, TimeSource,
};
use sessionlake_storage::DataKey;
use sessionlake_tables::merge::{Input, MergedTable, merge};
use sessionlake_tables::parquet_io::{write_commands, write_sessions};

/// What to merge, and how often.
pub struct MergeOptions {
    /// Sessions, one file each.
    pub sessions: usize,
    /// Commands per session.
    pub commands: usize,
    /// Bytes of output per command.
    pub output_bytes: usize,
    /// Runs (medians).
    pub runs: usize,
}

/// What one merge measured.
#[derive(Debug, serde::Serialize)]
pub struct MergeFigures {
    /// Stored bytes of the inputs.
    pub input_bytes: u64,
    /// Rows merged.
    pub rows: usize,
    /// Bytes of the merged file.
    pub output_bytes: u64,
    /// Median seconds per merge.
    pub seconds: f64,
    /// Median peak resident memory of a merge above the resident memory before it, bytes.
    pub peak_above_inputs: u64,
}

/// Returns command `seq` of `session`, with `output_bytes` of varied output.
fn record(
    session: &str,
    seq: usize,
    output_bytes: usize,
    rng: &mut fastrand::Rng,
) -> CommandRecord {
    const WORDS: [&str; 12] = [
        "total",
        "drwxr-xr-x",
        "root",
        "ubuntu",
        "4096",
        "Mar",
        "14",
        "etc",
        "var",
        "log",
        "nginx",
        "systemd",
    ];
    let mut output = String::with_capacity(output_bytes + 16);
    while output.len() < output_bytes {
        output.push_str(WORDS[rng.usize(..WORDS.len())]);
        output.push(if rng.u8(..8) == 0 { '\n' } else { ' ' });
    }
    let seq = u32::try_from(seq).unwrap_or(u32::MAX);
    CommandRecord {
        session_id: session.into(),
        seq,
        started_at: Some(1_773_446_400_000_000 + i64::from(seq) * 1_000_000),
        time_source: TimeSource::None,
        principal: Some("arn:aws:iam::111122223333:user/alice".into()),
        run_as: Some("ssm-user".into()),
        target: Some(format!("i-0{:016x}", rng.u64(..)).into()),
        region: Some("us-east-1".into()),
        account: Some("111122223333".into()),
        cwd: Some("/var/log".into()),
        prompt: "ubuntu@ip-10-0-0-12:~$ ".into(),
        command: format!(
            "tail -n {} /var/log/syslog | grep {}",
            rng.u16(..),
            WORDS[seq as usize % 12]
        ),
        output_bytes: output.len() as u64,
        output,
        output_truncated: false,
        raw_offset: 0,
        raw_len: 64,
        redactions: 0,
        confidence: Confidence::High,
        parser_version: 1,
        effective_user: Some("ssm-user".into()),
        shell: Some("bash".into()),
        program: None,
    }
}

/// Returns this process's resident memory now and at its peak (`VmRSS`, `VmHWM`), bytes.
fn resident() -> anyhow::Result<(u64, u64)> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let field = |name: &str| -> anyhow::Result<u64> {
        let line = status
            .lines()
            .find(|line| line.starts_with(name))
            .ok_or_else(|| anyhow::anyhow!("no {name} in /proc/self/status"))?;
        let kib: u64 = line[name.len()..].trim().trim_end_matches("kB").trim().parse()?;
        Ok(kib * 1024)
    };
    Ok((field("VmRSS:")?, field("VmHWM:")?))
}

/// What the per-session writes measured.
#[derive(Debug, serde::Serialize)]
pub struct WriteFigures {
    /// Rows written per round.
    pub rows: usize,
    /// Bytes of the `commands` files and of the `sessions` files written per round.
    pub commands_bytes: u64,
    pub sessions_bytes: u64,
    /// Median seconds per round.
    pub seconds: f64,
}

/// Writes each session's `commands` file (encrypted, its own key) and `sessions` file, as
/// ingest does for each session version, `runs` times over the same records; prints and
/// returns the figures. Each session has one principal and one target, as a real one does.
pub fn run_write(options: &MergeOptions) -> anyhow::Result<WriteFigures> {
    let mut rng = fastrand::Rng::with_seed(8);
    let key = DataKey::from_slice(&[7u8; 32]).ok_or_else(|| anyhow::anyhow!("a 32-byte key"))?;
    let mut sessions = Vec::with_capacity(options.sessions);
    for index in 0..options.sessions {
        let session = format!("bench-{index:017x}");
        let target = format!("i-0{:016x}", rng.u64(..));
        let records: Vec<CommandRecord> = (0..options.commands)
            .map(|seq| CommandRecord {
                target: Some(target.clone().into()),
                ..record(&session, seq, options.output_bytes, &mut rng)
            })
            .collect();
        let row = SessionRecord {
            session_id: session.clone(),
            principal: records
                .first()
                .and_then(|first| first.principal.as_deref().map(String::from)),
            run_as: Some("ssm-user".into()),
            target: Some(target),
            region: Some("us-east-1".into()),
            account: Some("111122223333".into()),
            started_at: records.first().and_then(|first| first.started_at),
            ended_at: records.last().and_then(|last| last.started_at),
            command_count: u32::try_from(records.len()).unwrap_or(u32::MAX),
            source: SessionSource::S3,
            source_ref: format!("s3://bucket/ssm/{session}.log"),
            raw_object: format!("raw/dt=2026-03-14/{session}.s3.v1.zst.sle"),
            raw_sha256: "ab".repeat(32),
            key_id: "k".into(),
            ingested_at: 1_773_446_400_000_000,
            status: SessionStatus::Complete,
            parser_version: 1,
            understanding: None,
        };
        sessions.push((records, row));
    }
    let mut seconds = Vec::new();
    let mut figures = WriteFigures { rows: 0, commands_bytes: 0, sessions_bytes: 0, seconds: 0.0 };
    for _ in 0..options.runs.max(1) {
        let (mut rows, mut commands_bytes, mut sessions_bytes) = (0, 0, 0);
        let started = Instant::now();
        for (records, row) in &sessions {
            commands_bytes += write_commands(records, &key, b"bench".to_vec())?.len() as u64;
            sessions_bytes += write_sessions(std::slice::from_ref(row))?.len() as u64;
            rows += records.len();
        }
        seconds.push(started.elapsed().as_secs_f64());
        figures = WriteFigures { rows, commands_bytes, sessions_bytes, seconds: 0.0 };
    }
    seconds.sort_by(f64::total_cmp);
    figures.seconds = seconds[seconds.len() / 2];
    println!(
        "writes of {} sessions' commands and sessions files ({} rows; {:.1} MB and {:.1} MB): \
         {:.3} s, {:.0} sessions/s (median of {} runs)",
        options.sessions,
        figures.rows,
        figures.commands_bytes as f64 / 1e6,
        figures.sessions_bytes as f64 / 1e6,
        figures.seconds,
        options.sessions as f64 / figures.seconds,
        seconds.len()
    );
    Ok(figures)
}

/// Writes the inputs, then merges them `runs` times; prints and returns the figures.
pub fn run_merge(options: &MergeOptions) -> anyhow::Result<MergeFigures> {
    let mut rng = fastrand::Rng::with_seed(8);
    let key = DataKey::from_slice(&[7u8; 32]).ok_or_else(|| anyhow::anyhow!("a 32-byte key"))?;
    let mut inputs = Vec::with_capacity(options.sessions);
    for index in 0..options.sessions {
        let session = format!("bench-{index:017x}");
        let records: Vec<CommandRecord> = (0..options.commands)
            .map(|seq| record(&session, seq, options.output_bytes, &mut rng))
            .collect();
        let bytes = write_commands(&records, &key, b"bench".to_vec())?;
        inputs.push((session, Bytes::from(bytes)));
    }
    // Inputs in no particular order, as a day's files are listed.
    rng.shuffle(&mut inputs);
    let input_bytes: u64 = inputs.iter().map(|(_, bytes)| bytes.len() as u64).sum();
    let mut seconds = Vec::new();
    let mut peaks = Vec::new();
    let mut figures = None;
    for _ in 0..options.runs.max(1) {
        let batch: Vec<Input> = inputs
            .iter()
            .map(|(session, bytes)| Input {
                object: format!("commands/dt=2026-03-14/{session}.s3.v1.parquet"),
                bytes: bytes.clone(),
                sessions: vec![session.clone()],
                key: Some(key.clone()),
            })
            .collect();
        std::fs::write("/proc/self/clear_refs", "5")?;
        let (before, _) = resident()?;
        let started = Instant::now();
        let merged =
            merge(MergedTable::Commands, batch, &BTreeSet::new(), Some((&key, Vec::new())), "out")?
                .ok_or_else(|| anyhow::anyhow!("no rows merged"))?;
        seconds.push(started.elapsed().as_secs_f64());
        let (_, peak) = resident()?;
        peaks.push(peak.saturating_sub(before));
        figures = Some((merged.rows, merged.bytes.len() as u64));
    }
    let (rows, output_bytes) = figures.unwrap_or_default();
    seconds.sort_by(f64::total_cmp);
    peaks.sort_unstable();
    let figures = MergeFigures {
        input_bytes,
        rows,
        output_bytes,
        seconds: seconds[seconds.len() / 2],
        peak_above_inputs: peaks[peaks.len() / 2],
    };
    println!(
        "merge of {} session files ({:.1} MB stored, {} rows) into one ({:.1} MB): {:.3} s, \
         peak {:.0} MiB above the inputs (medians of {} runs)",
        options.sessions,
        figures.input_bytes as f64 / 1e6,
        figures.rows,
        figures.output_bytes as f64 / 1e6,
        figures.seconds,
        figures.peak_above_inputs as f64 / (1024.0 * 1024.0),
        seconds.len()
    );
    Ok(figures)
}
