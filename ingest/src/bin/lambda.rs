//! `sessionlake-lambda`: the ingest core as an AWS Lambda function (see
//! `sessionlake_ingest::lambda`). Configured like `sessionlake-ingest`, through `SESSIONLAKE_*`
//! environment variables (`SESSIONLAKE_CONFIG` names a TOML file); logs go to stderr, which
//! Lambda sends to CloudWatch Logs.

use std::process::ExitCode;

use clap::Parser as _;
use sessionlake_ingest::lambda::LambdaHandler;

use crate::flags::Args;

#[path = "../flags.rs"]
mod flags;

/// jemalloc, built with one arena that gives freed pages back within a second
/// (`sessionlake_storage::allocator`).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    let args = Args::parse();
    sessionlake_ingest::events::init_logging(&args.log, false);
    let config = match args.config() {
        Ok(config) => config,
        Err(error) => {
            eprintln!("sessionlake-lambda: {error}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("sessionlake-lambda: failed to start the runtime: {error}");
            return ExitCode::from(2);
        }
    };
    let handler = LambdaHandler::new(config);
    let handler = &handler;
    let served = runtime.block_on(lambda_runtime::run(lambda_runtime::service_fn(
        move |event: lambda_runtime::LambdaEvent<serde_json::Value>| async move {
            let report =
                handler.handle(event.payload).await.map_err(|error| format!("{error:#}"))?;
            // The event's metrics, as CloudWatch's embedded metric format on stdout.
            let function = std::env::var("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_default();
            let now_ms = chrono::Utc::now().timestamp_millis();
            println!("{}", sessionlake_ingest::lambda::metrics_line(&report, &function, now_ms));
            Ok::<_, String>(report)
        },
    )));
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("sessionlake-lambda: {error}");
            ExitCode::from(2)
        }
    }
}
