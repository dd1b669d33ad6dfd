//! `sessionlake`: see the library crate.

use std::process::ExitCode;

use clap::Parser as _;
use sessionlake_cli::{Cli, Outcome};
use tracing_subscriber::filter::{self, FilterExt as _};
use tracing_subscriber::prelude::*;

/// jemalloc, built with one arena that gives freed pages back within a second
/// (`sessionlake_storage::allocator`).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::from_env("SESSIONLAKE_LOG")
        .and(filter::filter_fn(sessionlake_storage::log_filter::loggable));
    tracing_subscriber::registry()
        .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_filter(filter))
        .init();
    sessionlake_storage::allocator::log();
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
