//! `sessionlake-ingest`: see the library crate.

use std::io::IsTerminal as _;
use std::process::ExitCode;

use clap::Parser as _;
use sessionlake_ingest::ForcedStop;

use crate::flags::Args;

mod flags;

/// jemalloc, built with one arena that gives freed pages back within a second
/// (`sessionlake_storage::allocator`).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    let args = Args::parse();
    // Colors only for a person at a terminal; journald and log files get plain text.
    sessionlake_ingest::events::init_logging(&args.log, std::io::stderr().is_terminal());
    let config = match args.config() {
        Ok(config) => config,
        Err(error) => {
            eprintln!("sessionlake-ingest: {error}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("sessionlake-ingest: failed to start the runtime: {error}");
            return ExitCode::from(2);
        }
    };
    sessionlake_ingest::progress::start(!args.quiet && !config.follow);
    let result = runtime.block_on(sessionlake_ingest::service::run(&config));
    sessionlake_ingest::progress::finish();
    // A forced stop leaves parser tasks running on the blocking pool: do not wait for them.
    runtime.shutdown_background();
    match result {
        Ok(summary) => {
            if summary.keyring_created {
                let created = format!(
                    "created keyring {} (mode 0600); keep it safe: it opens the lake",
                    config.keyring.display()
                );
                // stdout holds only the JSON record with --json.
                if config.json { eprintln!("{created}") } else { println!("{created}") }
            }
            if config.json {
                let record = serde_json::json!({
                    "type": "summary",
                    "data": {
                        "lake": config.lake,
                        "sessions": summary.done.sessions,
                        "commands": summary.done.commands,
                        "access_events": summary.done.access_events,
                        "replaced": summary.done.replaced,
                        "quarantined": summary.done.quarantined,
                        "commits": summary.commits,
                        "low_confidence": summary.done.low_confidence,
                        "keyring_created": summary.keyring_created,
                        "head": summary.head,
                    }
                });
                println!("{record}");
                return ExitCode::SUCCESS;
            }
            println!(
                "ingested {} sessions, {} commands, {} access events into {} ({} replaced, {} quarantined, {} commits)",
                summary.done.sessions,
                summary.done.commands,
                summary.done.access_events,
                config.lake,
                summary.done.replaced,
                summary.done.quarantined,
                summary.commits
            );
            if let Some(head) = &summary.head {
                println!("head: {head}");
            }
            if summary.done.low_confidence > 0 {
                println!(
                    "{} of them understood with low confidence: sessionlake sessions --confidence low",
                    summary.done.low_confidence
                );
            }
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("sessionlake-ingest: {error:#}");
            match error.downcast_ref::<ForcedStop>() {
                Some(forced) => ExitCode::from(forced.exit_code()),
                None => ExitCode::from(2),
            }
        }
    }
}
