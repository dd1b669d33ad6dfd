//! Progress on stderr for operations that take a while: drawn only when stderr is a terminal
//! that can redraw a line (not `TERM=dumb`) and the output is not JSON; a spinner with the rows
//! so far, as the total is unknown.

use std::io::IsTerminal as _;
use std::time::Duration;

/// How often the spinner moves.
const TICK: Duration = Duration::from_millis(120);

/// A spinner on stderr, or nothing.
#[derive(Debug)]
pub struct Progress {
    bar: Option<indicatif::ProgressBar>,
}

impl Progress {
    /// Starts a spinner saying `message`, when `wanted` and stderr is a terminal.
    pub fn spinner(wanted: bool, message: &'static str) -> Progress {
        Progress::counting(wanted, message, "rows")
    }

    /// Starts a spinner saying `message` and how many `unit`s so far, when `wanted` and stderr
    /// is a terminal.
    pub fn counting(wanted: bool, message: &'static str, unit: &str) -> Progress {
        let dumb = std::env::var_os("TERM").is_some_and(|term| term == "dumb");
        if !wanted || dumb || !std::io::stderr().is_terminal() {
            return Progress { bar: None };
        }
        let bar = indicatif::ProgressBar::new_spinner();
        if let Ok(style) = indicatif::ProgressStyle::with_template(&format!(
            "{{spinner}} {{msg}} {{pos}} {unit} ({{elapsed}})"
        )) {
            bar.set_style(style);
        }
        bar.set_message(message);
        bar.enable_steady_tick(TICK);
        Progress { bar: Some(bar) }
    }

    /// Starts a bar saying `message` and how many of `total` `unit`s are done, when `wanted`
    /// and stderr is a terminal.
    pub fn bar(wanted: bool, message: &'static str, total: u64, unit: &str) -> Progress {
        let dumb = std::env::var_os("TERM").is_some_and(|term| term == "dumb");
        if !wanted || total == 0 || dumb || !std::io::stderr().is_terminal() {
            return Progress { bar: None };
        }
        let bar = indicatif::ProgressBar::new(total);
        if let Ok(style) = indicatif::ProgressStyle::with_template(&format!(
            "{{msg}} [{{bar:30}}] {{pos}}/{{len}} {unit} ({{elapsed}}, {{eta}} left)"
        )) {
            bar.set_style(style);
        }
        bar.set_message(message);
        Progress { bar: Some(bar) }
    }

    /// Records that `rows` more rows were produced.
    pub fn advance(&self, rows: u64) {
        if let Some(bar) = &self.bar {
            bar.inc(rows);
        }
    }

    /// Runs `write` with the spinner cleared, so that what it prints is not mixed with it.
    pub fn suspend<R>(&self, write: impl FnOnce() -> R) -> R {
        match &self.bar {
            Some(bar) => bar.suspend(write),
            None => write(),
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// The bar of `verify`'s hashing (drawn only on a terminal, as [`Progress::bar`]).
#[derive(Debug, Default)]
pub struct HashingBar(std::sync::Mutex<Option<Progress>>);

impl HashingBar {
    fn bar(&self) -> std::sync::MutexGuard<'_, Option<Progress>> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl sessionlake_read::verify::HashingProgress for HashingBar {
    fn start(&self, total: u64) {
        *self.bar() = Some(Progress::bar(true, "verify: hashing", total, "objects"));
    }

    fn advance(&self) {
        if let Some(bar) = self.bar().as_ref() {
            bar.advance(1);
        }
    }

    fn finish(&self) {
        self.bar().take();
    }
}
