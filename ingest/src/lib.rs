//! The sessionlake ingest service: reads SSM session logs from S3, CloudWatch Logs and local
//! folders, enriches them from CloudTrail, and writes them to the lake through the indexer.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use clap::Parser as _;
//! let args = sessionlake_ingest::config::Args::parse_from(["sessionlake-ingest"]);
//! let config = sessionlake_ingest::config::Config::load(&args).map_err(anyhow::Error::msg)?;
//! let summary = sessionlake_ingest::run_once(&config).await?;
//! println!("{} sessions", summary.sessions);
//! # Ok(()) }
//! ```

pub mod config;
pub mod pipeline;
pub mod sources;

use std::sync::Arc;

use anyhow::Context as _;
use sessionlake_lake::cursors::Cursors;
use sessionlake_lake::keys::{KeyProvider, KmsKeyProvider, LocalKeyring};
use sessionlake_lake::store::{LakeLocation, LakeStore};

use crate::config::Config;
use crate::pipeline::{BatchSummary, LakeWriter};
use crate::sources::Polled;

/// What a run did, in total.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RunSummary {
    /// Sessions written.
    pub sessions: usize,
    /// Commands written.
    pub commands: usize,
    /// Inputs quarantined.
    pub quarantined: usize,
    /// Sessions whose earlier version in the lake was replaced (a stream that grew).
    pub replaced: usize,
    /// Commits made.
    pub commits: usize,
    /// The keyring was created by this run.
    pub keyring_created: bool,
}

/// Reads every source once, writes what is new, and returns.
pub async fn run_once(config: &Config) -> anyhow::Result<RunSummary> {
    let mut summary = RunSummary::default();
    let sdk_config = if config.needs_aws() {
        Some(sessionlake_lake::aws::load_sdk_config(config.region.as_deref()).await)
    } else {
        None
    };
    let location = LakeLocation::parse(&config.lake)?;
    let store = LakeStore::open(&location, sdk_config.as_ref())?;
    let (keyring, created) = LocalKeyring::open_or_create(&config.keyring)?;
    summary.keyring_created = created;
    let keyring = Arc::new(keyring);
    let keys: Arc<dyn KeyProvider> = match (&config.kms_key_id, &sdk_config) {
        (Some(key_id), Some(sdk)) => {
            Arc::new(KmsKeyProvider::new(aws_sdk_kms_client(sdk), key_id.clone()))
        }
        _ => Arc::clone(&keyring) as Arc<dyn KeyProvider>,
    };
    let chain = sessionlake_lake::manifest::read_chain(&store).await?;
    let live = sessionlake_lake::manifest::live_objects(&chain);
    let mut writer = LakeWriter { store: store.clone(), keys, keyring, live };
    let mut cursors = Cursors::load(&store).await?;

    let mut polled = Polled::default();
    for local in &config.local {
        sources::poll_local(&local.path, &cursors, &mut polled)?;
    }
    if let Some(sdk) = &sdk_config {
        let s3 = s3_client(sdk);
        for source in &config.cloudtrail {
            sources::poll_cloudtrail_s3(&s3, &source.bucket, &source.prefix, &mut polled).await?;
        }
        for source in &config.s3 {
            sources::poll_s3(&s3, &source.bucket, &source.prefix, &cursors, &mut polled).await?;
        }
        let logs = aws_sdk_cloudwatchlogs::Client::new(sdk);
        for source in &config.cloudwatch {
            sources::poll_cloudwatch(&logs, &source.log_group, &cursors, &mut polled).await?;
        }
    }

    let Polled { sessions, bad, cloudtrail } = polled;
    let mut sessions = sessions.into_iter().peekable();
    let mut bad = Some(bad);
    while sessions.peek().is_some() || bad.as_ref().is_some_and(|b| !b.is_empty()) {
        let batch: Vec<_> = sessions.by_ref().take(config.batch_sessions).collect();
        let BatchSummary { sessions: written, commands, quarantined, replaced, sequence } = writer
            .write_batch(batch, bad.take().unwrap_or_default(), &cloudtrail, &mut cursors)
            .await
            .with_context(|| format!("failed to write to lake {}", store.location()))?;
        summary.sessions += written;
        summary.commands += commands;
        summary.quarantined += quarantined;
        summary.replaced += replaced;
        summary.commits += usize::from(sequence.is_some());
    }
    Ok(summary)
}

fn aws_sdk_kms_client(sdk: &aws_config::SdkConfig) -> aws_sdk_kms::Client {
    aws_sdk_kms::Client::new(sdk)
}

/// Returns an S3 client; path-style addressing when an endpoint override (emulator) is set.
pub fn s3_client(sdk: &aws_config::SdkConfig) -> aws_sdk_s3::Client {
    let mut builder = aws_sdk_s3::config::Builder::from(sdk);
    if let Some(endpoint) = sessionlake_lake::aws::endpoint_override(sdk, "S3") {
        builder = builder.endpoint_url(endpoint).force_path_style(true);
    }
    aws_sdk_s3::Client::from_conf(builder.build())
}
