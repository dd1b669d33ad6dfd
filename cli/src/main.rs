//! `sessionlake`: see the library crate.

use std::process::ExitCode;

use clap::Parser as _;
use sessionlake_cli::{Cli, Outcome};
use tracing_subscriber::filter::{self, FilterExt as _};
use tracing_subscriber::prelude::*;

fn main() -> ExitCode {
    use sessionlake_storage::arenas;
    // Parsed before the start over (it starts no thread), which depends on the command.
    let cli = Cli::parse();
    let compact = [(arenas::MMAP_THRESHOLD_VAR, arenas::COMPACT_MMAP_THRESHOLD)];
    match cli.command {
        sessionlake_cli::Command::Compact(_) => arenas::bound_malloc(&compact),
        _ => arenas::bound_malloc_arenas(),
    }
    let filter = tracing_subscriber::EnvFilter::from_env("SESSIONLAKE_LOG")
        .and(filter::filter_fn(sessionlake_storage::log_filter::loggable));
    tracing_subscriber::registry()
        .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_filter(filter))
        .init();
    let setting = |name: &str| std::env::var(name).ok();
    tracing::debug!(
        "malloc settings: {}={:?} {}={:?}",
        arenas::ARENA_MAX_VAR,
        setting(arenas::ARENA_MAX_VAR),
        arenas::MMAP_THRESHOLD_VAR,
        setting(arenas::MMAP_THRESHOLD_VAR)
    );
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
