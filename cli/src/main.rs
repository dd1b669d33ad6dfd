//! `sessionlake`: see the library crate.

use std::process::ExitCode;

use clap::Parser as _;
use sessionlake_cli::{Cli, Outcome};
use tracing_subscriber::filter::{self, FilterExt as _};
use tracing_subscriber::prelude::*;

/// jemalloc with one arena that gives freed pages back within a second (`config.malloc_conf`,
/// set where it is built: `JEMALLOC_SYS_WITH_MALLOC_CONF` in `.cargo/config.toml`; a
/// `_RJEM_MALLOC_CONF` in the environment overrides it). Against glibc's malloc with two arenas
/// (which the ingest binaries keep), `compact` at 10 M commands peaks 60 MiB lower for a tenth
/// less CPU, and no command starts over to bound its arenas (BENCHMARKS.md, "jemalloc for
/// `sessionlake`").
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::from_env("SESSIONLAKE_LOG")
        .and(filter::filter_fn(sessionlake_storage::log_filter::loggable));
    tracing_subscriber::registry()
        .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_filter(filter))
        .init();
    log_allocator();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("sessionlake: failed to start the runtime: {error}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(sessionlake_cli::run(cli)) {
        Ok(Outcome::Matched) => ExitCode::SUCCESS,
        Ok(Outcome::NoMatch) => ExitCode::from(1),
        Err(error) => {
            eprintln!("sessionlake: {}", sessionlake_cli::output::error_message(&error));
            ExitCode::from(2)
        }
    }
}

/// Says at debug level what the allocator runs with, as jemalloc itself reports it: its arenas,
/// the settings it was built with and the bytes it has handed out so far (none if it were not
/// the allocator).
fn log_allocator() {
    use tikv_jemalloc_ctl::{config, epoch, opt, stats};
    if !tracing::enabled!(tracing::Level::DEBUG) {
        return;
    }
    // The statistics are a snapshot taken at the last epoch.
    let allocated = epoch::advance().and_then(|_| stats::allocated::read());
    tracing::debug!(
        "allocator: jemalloc, {:?} arenas, malloc_conf {:?}, {:?} bytes allocated",
        opt::narenas::read(),
        // Read with its terminating NUL.
        config::malloc_conf::read().map(|conf| conf.trim_end_matches('\0')),
        allocated
    );
}
