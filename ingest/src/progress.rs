//! A progress line for a person watching a once run at a terminal: sessions and bytes
//! committed so far and the rate. Drawn on stderr only when it is a terminal (indicatif hides
//! it otherwise), never in follow mode (a service's stderr is a log), never with `--quiet`.

use std::sync::OnceLock;
use std::time::Instant;

static BAR: OnceLock<(indicatif::ProgressBar, Instant)> = OnceLock::new();

/// Shows the progress line from now on, when `wanted`.
pub fn start(wanted: bool) {
    if !wanted {
        return;
    }
    let bar = indicatif::ProgressBar::new_spinner();
    if let Ok(style) = indicatif::ProgressStyle::with_template("{spinner} ingesting: {msg}") {
        bar.set_style(style);
    }
    bar.set_message(describe(0, 0, 0.0));
    bar.enable_steady_tick(std::time::Duration::from_millis(120));
    let _ = BAR.set((bar, Instant::now()));
}

/// Counts a committed batch of `sessions` holding `bytes` of transcripts.
pub fn batch(sessions: usize, bytes: u64) {
    let Some((bar, started)) = BAR.get() else { return };
    let (done, total) = (bar.position() + sessions as u64, bar.length().unwrap_or(0) + bytes);
    bar.set_position(done);
    bar.set_length(total);
    bar.set_message(describe(done, total, started.elapsed().as_secs_f64()));
}

/// Takes the progress line away (the summary follows).
pub fn finish() {
    if let Some((bar, _)) = BAR.get() {
        bar.finish_and_clear();
    }
}

/// Writes a log line to stderr, taking the progress line away while it does (else the two
/// would share a line).
pub struct LogWriter;

impl std::io::Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match BAR.get() {
            Some((bar, _)) => bar.suspend(|| std::io::stderr().write(buf)),
            None => std::io::stderr().write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

fn describe(sessions: u64, bytes: u64, secs: f64) -> String {
    let megabytes = bytes as f64 / 1e6;
    let rate = if secs > 0.0 { megabytes / secs } else { 0.0 };
    format!("{sessions} sessions, {megabytes:.1} MB, {rate:.1} MB/s")
}
