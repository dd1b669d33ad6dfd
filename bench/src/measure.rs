//! Running a tool and measuring it: wall time, CPU time and peak memory of a child process
//! (through `/usr/bin/time`, which reads them from `wait4`), page-cache eviction for cold
//! runs, and medians.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context as _, bail};

/// What one run of a process cost.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct Cost {
    /// Wall-clock seconds.
    pub wall: f64,
    /// User plus system CPU seconds, all threads.
    pub cpu: f64,
    /// Peak resident set size, bytes.
    pub peak_rss: u64,
}

/// Marks the line `/usr/bin/time` appends to the child's stderr.
const TIME_MARK: &str = "sessionlake-bench-time";

/// Runs `program` with `args` under `/usr/bin/time` and returns its cost and its stdout, read
/// through a pipe (GNU grep stops at the first match when its stdout is `/dev/null`). Fails,
/// with the end of its stderr, when it exits with a status not in `accepted`.
pub fn run_measured(
    program: &Path,
    args: &[String],
    accepted: &[i32],
) -> anyhow::Result<(Cost, Vec<u8>)> {
    let started = Instant::now();
    let output = Command::new("/usr/bin/time")
        .arg("-f")
        .arg(format!("{TIME_MARK} %e %U %S %M"))
        .arg(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("failed to run {} under /usr/bin/time", program.display()))?;
    let wall_clock = started.elapsed().as_secs_f64();
    let stderr = String::from_utf8_lossy(&output.stderr);
    let code = output.status.code().unwrap_or(-1);
    if !accepted.contains(&code) {
        let tail: String = stderr.lines().rev().take(8).collect::<Vec<_>>().join(" | ");
        bail!("{} {} exited with {code}: {tail}", program.display(), args.join(" "));
    }
    let Some(line) = stderr.lines().rev().find(|line| line.starts_with(TIME_MARK)) else {
        bail!("/usr/bin/time printed no figures for {}", program.display());
    };
    let fields: Vec<f64> =
        line.split_whitespace().skip(1).filter_map(|field| field.parse().ok()).collect();
    let [_elapsed, user, system, rss_kib] = fields[..] else {
        bail!("cannot read /usr/bin/time's line {line:?}");
    };
    // `%e` has a resolution of 10 ms; the clock around the child is finer.
    let cost = Cost { wall: wall_clock, cpu: user + system, peak_rss: (rss_kib as u64) * 1024 };
    Ok((cost, output.stdout))
}

/// Drops the page cache of every file under `dirs` (`posix_fadvise(DONTNEED)` through
/// Python, which needs no privilege and leaves other processes' cached files alone). Dirty
/// pages stay cached: the data was written well before (an `fdatasync` per file made one
/// eviction of a 1 GiB workload's 35,000 files take 40 s on a busy disk).
pub fn evict(python: &Path, dirs: &[PathBuf]) -> anyhow::Result<()> {
    const SCRIPT: &str = r#"
import os, sys
for top in sys.argv[1:]:
    for root, _, files in os.walk(top):
        for name in files:
            try:
                fd = os.open(os.path.join(root, name), os.O_RDONLY)
            except OSError:
                continue
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            os.close(fd)
"#;
    let status =
        Command::new(python).arg("-c").arg(SCRIPT).args(dirs).status().with_context(|| {
            format!("failed to run {} to evict the page cache", python.display())
        })?;
    if !status.success() {
        bail!("evicting the page cache of {dirs:?} failed ({status})");
    }
    Ok(())
}

/// Returns the median of `values` (the upper one of an even count), or NaN when empty.
pub fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted.get(sorted.len() / 2).copied().unwrap_or(f64::NAN)
}

/// Seconds the calling thread has spent on a CPU (Linux), or `None` where that is not known.
pub fn thread_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let nanoseconds: u64 = stat.split_whitespace().next()?.parse().ok()?;
    Some(nanoseconds as f64 / 1e9)
}

/// Returns the bytes of every file under `dir`.
pub fn tree_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .filter_map(Result::ok)
        .map(|entry| match entry.file_type() {
            Ok(kind) if kind.is_dir() => tree_bytes(&entry.path()),
            Ok(kind) if kind.is_file() => entry.metadata().map_or(0, |metadata| metadata.len()),
            _ => 0,
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_median_of_odd_even_and_empty() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 3.0);
        assert!(median(&[]).is_nan());
    }
}
