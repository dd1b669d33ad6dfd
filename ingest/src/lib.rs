//! The sessionlake ingest service: reads SSM session logs from S3, CloudWatch Logs and local
//! folders, enriches them from CloudTrail, parses them with `sessionlake-indexer`, and writes
//! them to the lake (Parquet through `sessionlake-tables`, objects, keys and commits through
//! `sessionlake-storage`, the Delta logs through `sessionlake-delta`).
//!
//! - [`service`]: the poll loop (`--once` or `--follow`), bounded concurrency, signals;
//! - [`sources`]: listing and reading each source, one file per source
//!   ([`sources::s3_queue`]: S3 event notifications through SQS instead of listing a bucket);
//!   [`raw`]: an input's original bytes, parsed and hashed, then sealed and uploaded;
//!   [`lake_writer`]: writing and committing;
//!   [`enrich`]: stored sessions completed by CloudTrail facts that arrived after them;
//!   [`access_index`]: the access events the lake holds (dedupe, attribution);
//!   [`lambda`]: the same core as an AWS Lambda handler (binary `sessionlake-lambda`);
//!   [`maintenance`]: the Lambda function's scheduled upkeep (compaction, retention, the Delta
//!   logs) through `sessionlake-keep`;
//! - [`config`]: the TOML file and the layers over it (the binaries' flags and environment);
//!   [`events`] and [`telemetry`]: logs, metrics, `/metrics` and `/healthz`; [`progress`]: the
//!   progress line of a run at a terminal; [`error`]: error classes.
//!
//! ```
//! # #[tokio::main] async fn main() -> anyhow::Result<()> {
//! use sessionlake_ingest::config::{Config, FileConfig, LocalSourceConfig, SourceConfig};
//!
//! // The shipped examples into a lake in a fresh folder, sealed with a new local keyring.
//! let work = tempfile::tempdir()?;
//! let examples = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples");
//! let settings = FileConfig {
//!     lake: Some(work.path().join("lake").display().to_string()),
//!     keyring: Some(work.path().join("keyring.json")),
//!     source: vec![SourceConfig::Local(LocalSourceConfig { path: examples.into() })],
//!     ..FileConfig::default()
//! };
//! let config = Config::load(None, settings).map_err(anyhow::Error::msg)?;
//! let summary = sessionlake_ingest::run_once(&config).await?;
//! assert!(summary.done.sessions > 0 && summary.keyring_created);
//! # Ok(()) }
//! ```

pub mod access_index;
pub mod config;
pub mod enrich;
pub mod error;
pub mod events;
pub mod lake_writer;
pub mod lambda;
pub mod maintenance;
pub mod progress;
pub mod raw;
pub mod service;
pub mod sources;
pub mod telemetry;

use tokio_util::sync::CancellationToken;

use crate::config::Config;
pub use crate::service::{ForcedStop, RunSummary};

/// Reads every source once, writes what is new, and returns (no signal handling: see
/// [`service::run`] for that).
pub async fn run_once(config: &Config) -> anyhow::Result<RunSummary> {
    let once = Config { follow: false, ..config.clone() };
    service::serve(&once, CancellationToken::new()).await
}

/// Returns an S3 client; path-style addressing when an endpoint override (emulator) is set.
pub fn s3_client(sdk: &aws_config::SdkConfig) -> aws_sdk_s3::Client {
    let mut builder = aws_sdk_s3::config::Builder::from(sdk);
    if let Some(endpoint) = sessionlake_storage::aws::endpoint_override(sdk, "S3") {
        builder = builder.endpoint_url(endpoint).force_path_style(true);
    }
    aws_sdk_s3::Client::from_conf(builder.build())
}
