//! Configuration: a TOML file says *what* (lake, keys, sources); flags and `SESSIONLAKE_*`
//! environment variables override it. With neither, the embedded default ingests `examples/`
//! into `./lake` with a local keyring.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use serde::Deserialize;
use sessionlake_storage::key_cache::KeyCachePolicy;
use sessionlake_storage::object_lock::{ObjectLockMode, ObjectLockSettings};

pub use crate::sources::{CloudwatchSourceConfig, LocalSourceConfig, S3SourceConfig, SourceConfig};

/// Default lake: a folder beside where the command runs.
pub const DEFAULT_LAKE: &str = "./lake";
/// Default keyring file (mode 0600), outside the lake.
pub const DEFAULT_KEYRING: &str = ".sessionlake/keyring.json";
/// Folder the embedded default ingests.
pub const DEFAULT_EXAMPLES: &str = "examples";
/// Sessions per lake commit.
pub const DEFAULT_BATCH_SESSIONS: usize = 256;
/// Time between two polls in follow mode.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(30);
/// Longest accepted poll interval.
pub const MAX_POLL_INTERVAL: Duration = Duration::from_secs(24 * 3600);
/// Sessions read, parsed and written at once.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 4;
/// Most sessions in flight that can be configured.
pub const MAX_MAX_IN_FLIGHT: usize = 256;
/// Time a SIGTERM/SIGINT gives in-flight sessions to finish and commit.
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest accepted shutdown timeout.
pub const MAX_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(3600);
/// Longest a data key may be reused (the AWS Encryption SDK's caching guidance: keep it short).
pub const MAX_KEY_CACHE_MAX_AGE: Duration = Duration::from_secs(24 * 3600);
/// Most objects one data key may seal.
pub const MAX_KEY_CACHE_MAX_USES: u64 = 1 << 32;
/// In follow mode, the longest time without a commit: then an empty idle commit is made, so
/// that a deleted stretch of the chain shows as a gap (`sessionlake verify`).
pub const DEFAULT_IDLE_PERIOD: Duration = Duration::from_secs(3600);
/// Shortest accepted idle period (it is recorded in whole seconds).
pub const MIN_IDLE_PERIOD: Duration = Duration::from_secs(1);
/// Longest accepted idle period.
pub const MAX_IDLE_PERIOD: Duration = Duration::from_secs(7 * 24 * 3600);
/// Attempts per AWS call (the first plus retries with jittered exponential backoff).
pub const DEFAULT_RETRY_MAX_ATTEMPTS: u32 = 5;
/// Most attempts per AWS call that can be configured.
pub const MAX_RETRY_MAX_ATTEMPTS: u32 = 20;

/// `sessionlake-ingest`: reads SSM session logs into an encrypted, command-indexed lake.
#[derive(Debug, Parser)]
#[command(name = "sessionlake-ingest", version, about)]
pub struct Args {
    /// TOML configuration file (see config/sessionlake.example.toml).
    #[arg(long, short = 'c', env = "SESSIONLAKE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Lake to write: a folder or s3://bucket/prefix.
    #[arg(long, env = "SESSIONLAKE_LAKE")]
    pub lake: Option<String>,
    /// Local keyring file; created (0600) on first use.
    #[arg(long, env = "SESSIONLAKE_KEYRING")]
    pub keyring: Option<PathBuf>,
    /// AWS KMS key (id, ARN or alias) for data keys, instead of the local keyring.
    #[arg(long, env = "SESSIONLAKE_KMS_KEY_ID")]
    pub kms_key_id: Option<String>,
    /// How long a data key is reused for the same session and role (`0s` turns caching off)
    /// [default: 5m].
    #[arg(long, env = "SESSIONLAKE_KEY_CACHE_MAX_AGE", value_name = "DURATION")]
    pub key_cache_max_age: Option<String>,
    /// How many objects one cached data key may seal [default: 100].
    #[arg(long, env = "SESSIONLAKE_KEY_CACHE_MAX_USES", value_name = "N")]
    pub key_cache_max_uses: Option<u64>,
    /// AWS KMS asymmetric key (ECC_NIST_P256; id, ARN or alias) that signs the manifest,
    /// instead of the keyring's Ed25519 key.
    #[arg(long, env = "SESSIONLAKE_SIGNING_KEY", value_name = "KMS_KEY")]
    pub signing_key: Option<String>,
    /// Another AWS KMS key whose manifests ingest trusts, besides its own signer and the
    /// keyring's key: the key a new --signing-key replaces (a rotation names the old key, so a
    /// lake signed by anyone else is never taken over). Repeatable, or comma-separated.
    #[arg(
        long = "trust-signing-key",
        env = "SESSIONLAKE_TRUST_SIGNING_KEYS",
        value_name = "KMS_KEY",
        value_delimiter = ','
    )]
    pub trust_signing_keys: Vec<String>,
    /// Use a keyring file that is a symbolic link or that group or others can read or write
    /// (refused otherwise: whoever reads it can open every session and sign commits).
    #[arg(long, env = "SESSIONLAKE_ALLOW_INSECURE_KEYRING")]
    pub allow_insecure_keyring: bool,
    /// AWS region (else the SDK's chain: AWS_REGION, profile).
    #[arg(long, env = "SESSIONLAKE_REGION")]
    pub region: Option<String>,
    /// AWS profile of ~/.aws/config and ~/.aws/credentials (else AWS_PROFILE, `default`).
    #[arg(long, env = "SESSIONLAKE_PROFILE")]
    pub profile: Option<String>,
    /// S3 source: s3://bucket/prefix holding <session-id>.log objects. Repeatable (in the
    /// variable: comma-separated).
    #[arg(long = "s3", value_name = "S3_URL", env = "SESSIONLAKE_S3", value_delimiter = ',')]
    pub s3: Vec<String>,
    /// CloudWatch Logs source: a log group whose streams are sessions. Repeatable (in the
    /// variable: comma-separated).
    #[arg(
        long = "cloudwatch",
        value_name = "LOG_GROUP",
        env = "SESSIONLAKE_CLOUDWATCH",
        value_delimiter = ','
    )]
    pub cloudwatch: Vec<String>,
    /// Local folder source (S3 objects, get-log-events JSON, CloudTrail files). Repeatable (in
    /// the variable: separated like PATH, by `:`).
    #[arg(long = "local", value_name = "DIR", env = "SESSIONLAKE_LOCAL", value_delimiter = ':')]
    pub local: Vec<PathBuf>,
    /// CloudTrail log files, s3://bucket/prefix (digests skipped): their access events go to
    /// the `access` table, their StartSession events enrich the sessions. Repeatable (in the
    /// variable: comma-separated).
    #[arg(
        long = "cloudtrail",
        value_name = "S3_URL",
        env = "SESSIONLAKE_CLOUDTRAIL",
        value_delimiter = ','
    )]
    pub cloudtrail: Vec<String>,
    /// Drain every source once and exit: the default, for cron. Overrides `follow`.
    #[arg(long, env = "SESSIONLAKE_ONCE")]
    pub once: bool,
    /// Keep running: poll the sources every --poll-interval until SIGTERM or SIGINT.
    #[arg(long, env = "SESSIONLAKE_FOLLOW")]
    pub follow: bool,
    /// No progress line (a once run at a terminal shows sessions, bytes and rate on stderr).
    #[arg(long, short = 'q', env = "SESSIONLAKE_QUIET")]
    pub quiet: bool,
    /// Time between polls in follow mode, e.g. `30s`, `500ms`, `5m` [default: 30s].
    #[arg(long, env = "SESSIONLAKE_POLL_INTERVAL", value_name = "DURATION")]
    pub poll_interval: Option<String>,
    /// In follow mode, commit an empty idle commit after this long without a commit, e.g.
    /// `15m`, `1h` [default: 1h]. Recorded in the manifest: `verify` reports longer gaps.
    #[arg(long, env = "SESSIONLAKE_IDLE_PERIOD", value_name = "DURATION")]
    pub idle_period: Option<String>,
    /// In follow mode, the restart a clean stop promises: its last commit promises a commit
    /// within this long, so that `verify` reports a lake cut back to it (or a service that
    /// stayed down longer) as a gap; `0s` promises nothing (a service retired for good)
    /// [default: the idle period].
    #[arg(long, env = "SESSIONLAKE_RESTART_WITHIN", value_name = "DURATION")]
    pub restart_within: Option<String>,
    /// Object Lock mode of the manifests on an S3 lake whose bucket has Object Lock enabled:
    /// `governance`, `compliance` or `off` [default: governance].
    #[arg(long, env = "SESSIONLAKE_OBJECT_LOCK_MODE", value_name = "MODE")]
    pub object_lock_mode: Option<ObjectLockMode>,
    /// Object Lock retention of the manifests, in days from each commit [default: 2557, seven
    /// years].
    #[arg(long, env = "SESSIONLAKE_OBJECT_LOCK_DAYS", value_name = "DAYS")]
    pub object_lock_days: Option<u32>,
    /// Print the run's summary as one JSON Lines `summary` record on stdout (with the head
    /// the run left the lake at).
    #[arg(long, env = "SESSIONLAKE_JSON")]
    pub json: bool,
    /// Sessions read, parsed and written at once [default: 4].
    #[arg(long, env = "SESSIONLAKE_MAX_IN_FLIGHT", value_name = "N")]
    pub max_in_flight: Option<usize>,
    /// Sessions per lake commit [default: 256].
    #[arg(long, env = "SESSIONLAKE_BATCH_SESSIONS", value_name = "N")]
    pub batch_sessions: Option<usize>,
    /// Access records kept from one CloudTrail file; a file with more keeps these, and is
    /// quarantined with the count of the records after them [default: 100000].
    #[arg(long, env = "SESSIONLAKE_MAX_TRAIL_RECORDS", value_name = "N")]
    pub max_trail_records: Option<usize>,
    /// Bytes of a transcript up to which its command records are held in memory while it is
    /// parsed; a bigger transcript (an S3 object or a local file) is parsed twice, its
    /// `commands` file written as the records come: memory bounded whatever its size, for a
    /// second parse's CPU [default: 67108864, 64 MiB].
    #[arg(long, env = "SESSIONLAKE_HOLD_ROWS_UP_TO", value_name = "BYTES")]
    pub hold_rows_up_to: Option<u64>,
    /// Time in-flight work gets to finish after SIGTERM/SIGINT before the process gives up
    /// [default: 30s].
    #[arg(long, env = "SESSIONLAKE_SHUTDOWN_TIMEOUT", value_name = "DURATION")]
    pub shutdown_timeout: Option<String>,
    /// Attempts per AWS call, retried with jittered exponential backoff on throttling and 5xx
    /// [default: 5].
    #[arg(long, env = "SESSIONLAKE_RETRY_MAX_ATTEMPTS", value_name = "N")]
    pub retry_max_attempts: Option<u32>,
    /// Serve Prometheus metrics at /metrics and health at /healthz on this address
    /// (loopback only unless --metrics-allow-remote; port 0 picks a free port). Off by default.
    #[arg(long, env = "SESSIONLAKE_METRICS_ADDR", value_name = "ADDR")]
    pub metrics_addr: Option<String>,
    /// Allow --metrics-addr to be a non-loopback address (the endpoint has no authentication).
    #[arg(long, env = "SESSIONLAKE_METRICS_ALLOW_REMOTE")]
    pub metrics_allow_remote: bool,
    /// Log level filter (tracing's syntax), e.g. `info` or `sessionlake=debug`.
    #[arg(long, env = "SESSIONLAKE_LOG", default_value = "warn")]
    pub log: String,
}

/// The configuration file (version 1). Unknown fields are errors.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Lake to write: a folder or `s3://bucket/prefix`.
    pub lake: Option<String>,
    /// Local keyring file.
    pub keyring: Option<PathBuf>,
    /// AWS KMS key for data keys.
    pub kms_key_id: Option<String>,
    /// How long a data key is reused for the same session and role, e.g. `5m`; `0s`: never.
    pub key_cache_max_age: Option<String>,
    /// How many objects one cached data key may seal.
    pub key_cache_max_uses: Option<u64>,
    /// AWS KMS asymmetric key (ECC_NIST_P256) that signs the manifest; else the keyring's key.
    pub signing_key: Option<String>,
    /// Object Lock mode of the manifests on a bucket with Object Lock (`governance`,
    /// `compliance`, `off`).
    pub object_lock_mode: Option<ObjectLockMode>,
    /// Object Lock retention of the manifests, in days.
    pub object_lock_days: Option<u32>,
    /// Other KMS keys whose manifests are trusted (the keys `signing_key` replaced).
    #[serde(default)]
    pub trust_signing_keys: Vec<String>,
    /// AWS region.
    pub region: Option<String>,
    /// AWS profile.
    pub profile: Option<String>,
    /// Sessions per commit.
    pub batch_sessions: Option<usize>,
    /// How the service runs.
    #[serde(default)]
    pub service: ServiceConfig,
    /// Sources as a list: `[[source]]` with `type = "local" | "s3" | "cloudwatch" |
    /// "cloudtrail"` and that source's fields.
    #[serde(default)]
    pub source: Vec<SourceConfig>,
    /// Sources as a table by kind: `[[sources.s3]]`, `[[sources.local]]`, … (the same sources).
    #[serde(default)]
    pub sources: SourcesConfig,
}

/// The `[service]` table: how ingest runs. Every field is optional; flags and `SESSIONLAKE_*`
/// variables override it.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceConfig {
    /// Keep running and poll every `poll_interval` (false: drain once and exit).
    pub follow: Option<bool>,
    /// Time between polls in follow mode: a number and a unit (`ms`, `s`, `m`, `h`).
    pub poll_interval: Option<String>,
    /// In follow mode, the longest time without a commit before an empty idle commit.
    pub idle_period: Option<String>,
    /// In follow mode, the restart a clean stop promises (`0s`: none); default the idle period.
    pub restart_within: Option<String>,
    /// Sessions read, parsed and written at once.
    pub max_in_flight: Option<usize>,
    /// Access records kept from one CloudTrail file (the rest of a longer file is quarantined).
    pub max_trail_records: Option<usize>,
    /// Bytes of a transcript up to which its command records are held while it is parsed.
    pub hold_rows_up_to: Option<u64>,
    /// Time in-flight work gets to finish after SIGTERM/SIGINT.
    pub shutdown_timeout: Option<String>,
    /// Attempts per AWS call (throttling and 5xx are retried with jittered backoff).
    pub retry_max_attempts: Option<u32>,
    /// Address of the `/metrics` and `/healthz` endpoint; none by default.
    pub metrics_addr: Option<String>,
    /// Allow `metrics_addr` to be a non-loopback address.
    pub metrics_allow_remote: Option<bool>,
}

/// The `[sources]` table.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourcesConfig {
    /// `[[sources.s3]]`: buckets and prefixes of S3 session logs.
    #[serde(default)]
    pub s3: Vec<S3SourceConfig>,
    /// `[[sources.cloudwatch]]`: log groups of session logs.
    #[serde(default)]
    pub cloudwatch: Vec<CloudwatchSourceConfig>,
    /// `[[sources.local]]`: folders.
    #[serde(default)]
    pub local: Vec<LocalSourceConfig>,
    /// `[[sources.cloudtrail]]`: CloudTrail log files in S3 (digests skipped): access events
    /// for the `access` table, StartSession events to enrich the sessions.
    #[serde(default)]
    pub cloudtrail: Vec<S3SourceConfig>,
}

impl SourcesConfig {
    /// The same sources as a list.
    fn into_list(self) -> Vec<SourceConfig> {
        let SourcesConfig { s3, cloudwatch, local, cloudtrail } = self;
        local
            .into_iter()
            .map(SourceConfig::Local)
            .chain(s3.into_iter().map(SourceConfig::S3))
            .chain(cloudwatch.into_iter().map(SourceConfig::Cloudwatch))
            .chain(cloudtrail.into_iter().map(SourceConfig::Cloudtrail))
            .collect()
    }
}

/// Everything a run needs, after merging file, flags and defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Lake location.
    pub lake: String,
    /// Keyring path.
    pub keyring: PathBuf,
    /// KMS key for data keys, if any.
    pub kms_key_id: Option<String>,
    /// Reuse of data keys.
    pub key_cache: KeyCachePolicy,
    /// KMS key that signs the manifest, if any (else the keyring's key).
    pub signing_key: Option<String>,
    /// How manifests are locked on a bucket with Object Lock.
    pub object_lock: ObjectLockSettings,
    /// Print the summary as JSON.
    pub json: bool,
    /// Other KMS keys whose manifests are trusted.
    pub trust_signing_keys: Vec<String>,
    /// Use a keyring that is a symbolic link or not private to its owner.
    pub allow_insecure_keyring: bool,
    /// Region override.
    pub region: Option<String>,
    /// AWS profile override.
    pub profile: Option<String>,
    /// Sessions per commit.
    pub batch_sessions: usize,
    /// Poll until stopped (true) or drain once and exit (false).
    pub follow: bool,
    /// Time between polls in follow mode.
    pub poll_interval: Duration,
    /// Longest time without a commit in follow mode.
    pub idle_period: Duration,
    /// The restart a clean stop promises in follow mode (zero: none).
    pub restart_within: Duration,
    /// Sessions in flight at once.
    pub max_in_flight: usize,
    /// Access records kept from one CloudTrail file.
    pub max_trail_records: usize,
    /// Bytes of a transcript up to which its command records are held while it is parsed.
    pub hold_rows_up_to: u64,
    /// Time in-flight work gets to finish after a stop signal.
    pub shutdown_timeout: Duration,
    /// Attempts per AWS call.
    pub retry_max_attempts: u32,
    /// Metrics and health endpoint, if any.
    pub metrics_addr: Option<SocketAddr>,
    /// Whether `metrics_addr` may be a non-loopback address.
    pub metrics_allow_remote: bool,
    /// The sources, local folders first, then S3, CloudWatch Logs and CloudTrail (each kind in
    /// the order given).
    pub sources: Vec<SourceConfig>,
}

/// Parses `s3://bucket/prefix`.
pub fn parse_s3_url(url: &str) -> Result<S3SourceConfig, String> {
    let rest = url.strip_prefix("s3://").ok_or_else(|| format!("{url:?} is not an s3:// URL"))?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.len() < 3 {
        return Err(format!("{url:?} names no valid bucket"));
    }
    Ok(S3SourceConfig {
        bucket: bucket.to_string(),
        prefix: prefix.to_string(),
        sqs_queue_url: None,
    })
}

/// Parses a duration written as a whole number and a unit: `500ms`, `30s`, `5m`, `1h`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let trimmed = text.trim();
    let split = trimmed.find(|c: char| !c.is_ascii_digit()).unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(split);
    let value: u64 = number.parse().map_err(|_| {
        format!("{text:?} is not a duration (a number and a unit: 500ms, 30s, 5m, 1h)")
    })?;
    let millis_per_unit = match unit.trim() {
        "ms" => 1,
        "s" => 1000,
        "m" => 60 * 1000,
        "h" => 3600 * 1000,
        _ => {
            return Err(format!(
                "{text:?} is not a duration (a number and a unit: 500ms, 30s, 5m, 1h)"
            ));
        }
    };
    value
        .checked_mul(millis_per_unit)
        .map(Duration::from_millis)
        .ok_or_else(|| format!("{text:?} is too long"))
}

/// Parses a duration field; the error names the field.
fn duration_field(field: &str, text: Option<&str>, default: Duration) -> Result<Duration, String> {
    match text {
        None => Ok(default),
        Some(text) => parse_duration(text).map_err(|error| format!("{field}: {error}")),
    }
}

/// Writes a duration the way the config reads it.
fn show_duration(duration: Duration) -> String {
    let millis = duration.as_millis();
    if millis.is_multiple_of(1000) { format!("{}s", millis / 1000) } else { format!("{millis}ms") }
}

impl Config {
    /// Merges the file named by `args` (if any) with the flags, then validates.
    pub fn load(args: &Args) -> Result<Config, String> {
        let file = match &args.config {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|error| {
                    format!("failed to read config {}: {error}", path.display())
                })?;
                toml::from_str::<FileConfig>(&text)
                    .map_err(|error| format!("config {} is not valid: {error}", path.display()))?
            }
            None => FileConfig::default(),
        };
        let mut sources = file.sources.into_list();
        sources.extend(file.source);
        for url in &args.s3 {
            sources.push(SourceConfig::S3(
                parse_s3_url(url).map_err(|error| format!("--s3: {error}"))?,
            ));
        }
        for url in &args.cloudtrail {
            sources.push(SourceConfig::Cloudtrail(
                parse_s3_url(url).map_err(|error| format!("--cloudtrail: {error}"))?,
            ));
        }
        sources.extend(args.cloudwatch.iter().map(|group| {
            SourceConfig::Cloudwatch(CloudwatchSourceConfig { log_group: group.clone() })
        }));
        sources.extend(
            args.local
                .iter()
                .map(|path| SourceConfig::Local(LocalSourceConfig { path: path.clone() })),
        );
        if sources.is_empty() {
            // The embedded default: no sources named, so ingest the shipped examples (a
            // CloudTrail source alone is a source: a deployment that reads only trails).
            let path = PathBuf::from(DEFAULT_EXAMPLES);
            sources.push(SourceConfig::Local(LocalSourceConfig { path }));
        }
        sources.sort_by_key(SourceConfig::rank);
        let service = file.service;
        let follow = !args.once && (args.follow || service.follow.unwrap_or(false));
        let poll_interval = duration_field(
            "poll_interval",
            args.poll_interval.as_deref().or(service.poll_interval.as_deref()),
            DEFAULT_POLL_INTERVAL,
        )?;
        let idle_period = duration_field(
            "idle_period",
            args.idle_period.as_deref().or(service.idle_period.as_deref()),
            DEFAULT_IDLE_PERIOD,
        )?;
        let restart_within = duration_field(
            "restart_within",
            args.restart_within.as_deref().or(service.restart_within.as_deref()),
            idle_period,
        )?;
        let object_lock = ObjectLockSettings::from_options(
            args.object_lock_mode.or(file.object_lock_mode),
            args.object_lock_days.or(file.object_lock_days),
        )
        .map_err(|error| error.to_string())?;
        let shutdown_timeout = duration_field(
            "shutdown_timeout",
            args.shutdown_timeout.as_deref().or(service.shutdown_timeout.as_deref()),
            DEFAULT_SHUTDOWN_TIMEOUT,
        )?;
        let metrics_addr = match args.metrics_addr.as_deref().or(service.metrics_addr.as_deref()) {
            None => None,
            Some(text) => Some(text.trim().parse::<SocketAddr>().map_err(|_| {
                format!("metrics_addr: {text:?} is not an address (e.g. 127.0.0.1:9464)")
            })?),
        };
        let key_cache_max_age =
            match args.key_cache_max_age.as_deref().or(file.key_cache_max_age.as_deref()) {
                None => KeyCachePolicy::default().max_age,
                Some(text) => {
                    parse_duration(text).map_err(|error| format!("key_cache_max_age: {error}"))?
                }
            };
        let key_cache = KeyCachePolicy {
            max_age: key_cache_max_age,
            max_uses: args
                .key_cache_max_uses
                .or(file.key_cache_max_uses)
                .unwrap_or(KeyCachePolicy::default().max_uses),
            ..KeyCachePolicy::default()
        };
        let config = Config {
            lake: args.lake.clone().or(file.lake).unwrap_or_else(|| DEFAULT_LAKE.to_string()),
            keyring: args
                .keyring
                .clone()
                .or(file.keyring)
                .unwrap_or_else(|| PathBuf::from(DEFAULT_KEYRING)),
            kms_key_id: args.kms_key_id.clone().or(file.kms_key_id),
            key_cache,
            signing_key: args.signing_key.clone().or(file.signing_key),
            object_lock,
            json: args.json,
            trust_signing_keys: if args.trust_signing_keys.is_empty() {
                file.trust_signing_keys
            } else {
                args.trust_signing_keys.clone()
            },
            allow_insecure_keyring: args.allow_insecure_keyring,
            region: args.region.clone().or(file.region),
            profile: args.profile.clone().or(file.profile),
            batch_sessions: args
                .batch_sessions
                .or(file.batch_sessions)
                .unwrap_or(DEFAULT_BATCH_SESSIONS),
            follow,
            poll_interval,
            idle_period,
            restart_within,
            max_in_flight: args
                .max_in_flight
                .or(service.max_in_flight)
                .unwrap_or(DEFAULT_MAX_IN_FLIGHT),
            max_trail_records: args
                .max_trail_records
                .or(service.max_trail_records)
                .unwrap_or(sessionlake_indexer::cloudtrail::DEFAULT_MAX_TRAIL_RECORDS),
            hold_rows_up_to: args
                .hold_rows_up_to
                .or(service.hold_rows_up_to)
                .unwrap_or(crate::lake_writer::HOLD_ROWS_UP_TO),
            shutdown_timeout,
            retry_max_attempts: args
                .retry_max_attempts
                .or(service.retry_max_attempts)
                .unwrap_or(DEFAULT_RETRY_MAX_ATTEMPTS),
            metrics_addr,
            metrics_allow_remote: args.metrics_allow_remote
                || service.metrics_allow_remote.unwrap_or(false),
            sources,
        };
        config.validate()?;
        Ok(config)
    }

    /// Checks the merged configuration; errors name the field.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_trail_records == 0 {
            return Err("max_trail_records must be at least 1".to_string());
        }
        if self.batch_sessions == 0 || self.batch_sessions > 100_000 {
            return Err(format!("batch_sessions must be 1..=100000, not {}", self.batch_sessions));
        }
        if self.poll_interval.is_zero() || self.poll_interval > MAX_POLL_INTERVAL {
            return Err(format!(
                "poll_interval must be between 1ms and {}, not {}",
                show_duration(MAX_POLL_INTERVAL),
                show_duration(self.poll_interval)
            ));
        }
        if self.idle_period < MIN_IDLE_PERIOD || self.idle_period > MAX_IDLE_PERIOD {
            return Err(format!(
                "idle_period must be between {} and {}, not {}",
                show_duration(MIN_IDLE_PERIOD),
                show_duration(MAX_IDLE_PERIOD),
                show_duration(self.idle_period)
            ));
        }
        if self.max_in_flight == 0 || self.max_in_flight > MAX_MAX_IN_FLIGHT {
            return Err(format!(
                "max_in_flight must be 1..={MAX_MAX_IN_FLIGHT}, not {}",
                self.max_in_flight
            ));
        }
        if self.shutdown_timeout.is_zero() || self.shutdown_timeout > MAX_SHUTDOWN_TIMEOUT {
            return Err(format!(
                "shutdown_timeout must be between 1ms and {}, not {}",
                show_duration(MAX_SHUTDOWN_TIMEOUT),
                show_duration(self.shutdown_timeout)
            ));
        }
        if self.retry_max_attempts == 0 || self.retry_max_attempts > MAX_RETRY_MAX_ATTEMPTS {
            return Err(format!(
                "retry_max_attempts must be 1..={MAX_RETRY_MAX_ATTEMPTS}, not {}",
                self.retry_max_attempts
            ));
        }
        if let Some(address) = self.metrics_addr
            && !address.ip().is_loopback()
            && !self.metrics_allow_remote
        {
            return Err(format!(
                "metrics_addr {address} is not a loopback address: the endpoint has no \
                 authentication; set metrics_allow_remote (--metrics-allow-remote) to serve it there"
            ));
        }
        if self.key_cache.max_age > MAX_KEY_CACHE_MAX_AGE {
            return Err(format!(
                "key_cache_max_age must be at most {}, not {}",
                show_duration(MAX_KEY_CACHE_MAX_AGE),
                show_duration(self.key_cache.max_age)
            ));
        }
        if self.key_cache.max_uses > MAX_KEY_CACHE_MAX_USES {
            return Err(format!(
                "key_cache_max_uses must be 0..={MAX_KEY_CACHE_MAX_USES}, not {}",
                self.key_cache.max_uses
            ));
        }
        if self.kms_key_id.as_deref().is_some_and(str::is_empty) {
            return Err("kms_key_id is empty".to_string());
        }
        if self.signing_key.as_deref().is_some_and(str::is_empty) {
            return Err("signing_key is empty".to_string());
        }
        for source in &self.sources {
            source.validate()?;
        }
        Ok(())
    }

    /// Whether any part of the run talks to AWS.
    pub fn needs_aws(&self) -> bool {
        self.sources.iter().any(SourceConfig::needs_aws)
            || self.kms_key_id.is_some()
            || self.signing_key.is_some()
            || !self.trust_signing_keys.is_empty()
            || self.lake.starts_with("s3://")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Args {
        Args::try_parse_from(std::iter::once("sessionlake-ingest").chain(list.iter().copied()))
            .expect("args")
    }

    #[test]
    fn test_key_cache_settings() {
        let config = Config::load(&args(&[])).expect("load");
        assert_eq!(config.key_cache, KeyCachePolicy::default());
        let config =
            Config::load(&args(&["--key-cache-max-age", "0s", "--key-cache-max-uses", "7"]))
                .expect("load");
        assert_eq!(config.key_cache.max_age, Duration::ZERO);
        assert_eq!(config.key_cache.max_uses, 7);
        let error = Config::load(&args(&["--key-cache-max-age", "2d"])).expect_err("bad unit");
        assert!(error.starts_with("key_cache_max_age:"), "{error}");
        let error = Config::load(&args(&["--key-cache-max-age", "25h"])).expect_err("too long");
        assert!(error.starts_with("key_cache_max_age must be at most"), "{error}");
    }

    /// Every flag can be given as a `SESSIONLAKE_*` variable (the README promises it), named
    /// after the flag; sources listed in one variable are split.
    #[test]
    fn test_every_flag_has_its_variable() {
        use clap::CommandFactory as _;
        let command = Args::command();
        for arg in command.get_arguments() {
            let Some(long) = arg.get_long() else { continue };
            if ["help", "version"].contains(&long) {
                continue;
            }
            let expected = match long {
                // Repeatable, and named for the list it holds.
                "trust-signing-key" => "SESSIONLAKE_TRUST_SIGNING_KEYS".to_string(),
                _ => format!("SESSIONLAKE_{}", long.to_ascii_uppercase().replace('-', "_")),
            };
            let env = arg.get_env().map(|env| env.to_string_lossy().to_string());
            assert_eq!(env.as_deref(), Some(expected.as_str()), "--{long}");
        }
        let parsed = Args::try_parse_from(["sessionlake-ingest", "--s3", "s3://a/x,s3://b/y"])
            .expect("args");
        assert_eq!(parsed.s3, vec!["s3://a/x".to_string(), "s3://b/y".to_string()]);
    }

    #[test]
    fn test_no_arguments_is_the_embedded_default() {
        let config = Config::load(&args(&[])).expect("load");
        assert_eq!(config.lake, DEFAULT_LAKE);
        let examples = LocalSourceConfig { path: DEFAULT_EXAMPLES.into() };
        assert_eq!(config.sources, vec![SourceConfig::Local(examples)]);
        assert!(!config.needs_aws());
        // A CloudTrail source alone is what is asked for (a deployment reading only trails):
        // the examples are not added to it.
        let trails = Config::load(&args(&["--cloudtrail", "s3://trails/AWSLogs/"])).expect("load");
        assert_eq!(trails.sources.len(), 1, "{:?}", trails.sources);
        assert!(matches!(trails.sources[0], SourceConfig::Cloudtrail(_)));
    }

    #[test]
    fn test_flags_and_file_merge_and_unknown_fields_fail() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            "lake = \"s3://lake-bucket/x\"\n[[sources.s3]]\nbucket = \"logs\"\nprefix = \"ssm/\"\n",
        )
        .expect("write");
        let config = Config::load(&args(&[
            "-c",
            path.to_str().expect("utf8"),
            "--cloudwatch",
            "/ssm/sessions",
        ]))
        .expect("load");
        let logs =
            S3SourceConfig { bucket: "logs".into(), prefix: "ssm/".into(), sqs_queue_url: None };
        let group = CloudwatchSourceConfig { log_group: "/ssm/sessions".into() };
        assert_eq!(config.sources, vec![SourceConfig::S3(logs), SourceConfig::Cloudwatch(group)]);
        assert!(config.needs_aws());

        std::fs::write(&path, "lakes = \"x\"\n").expect("write");
        let error =
            Config::load(&args(&["-c", path.to_str().expect("utf8")])).expect_err("unknown field");
        assert!(error.contains("lakes"), "{error}");
    }

    /// Sources as a tagged list (`[[source]]`, `type = …`) are the same sources as the table
    /// by kind, read in the same order (local folders first); an unknown type or field of a
    /// source is an error that names it.
    #[test]
    fn test_sources_as_a_tagged_list() {
        let listed = load_file(
            "[[source]]\ntype = \"cloudtrail\"\nbucket = \"trails\"\n\
             [[source]]\ntype = \"cloudwatch\"\nlog_group = \"/ssm/sessions\"\n\
             [[source]]\ntype = \"s3\"\nbucket = \"logs\"\nprefix = \"ssm/\"\n\
             [[source]]\ntype = \"local\"\npath = \"/data\"\n",
            &[],
        )
        .expect("load");
        let tabled = load_file(
            "[[sources.s3]]\nbucket = \"logs\"\nprefix = \"ssm/\"\n\
             [[sources.cloudwatch]]\nlog_group = \"/ssm/sessions\"\n\
             [[sources.local]]\npath = \"/data\"\n\
             [[sources.cloudtrail]]\nbucket = \"trails\"\n",
            &[],
        )
        .expect("load");
        assert_eq!(listed.sources, tabled.sources);
        // The shipped example is in the list form.
        let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../config/sessionlake.example.toml");
        let example = Config::load(&args(&["-c", example])).expect("the example loads");
        let kinds: Vec<u8> = example.sources.iter().map(SourceConfig::rank).collect();
        assert_eq!(kinds, [1, 2, 3]);
        let kinds: Vec<u8> = listed.sources.iter().map(SourceConfig::rank).collect();
        assert_eq!(kinds, [0, 1, 2, 3]);
        let error = load_file("[[source]]\ntype = \"kinesis\"\nstream = \"x\"\n", &[])
            .expect_err("unknown type");
        assert!(error.contains("kinesis"), "{error}");
        let error = load_file("[[source]]\ntype = \"s3\"\nbucket = \"logs\"\npath = \"x\"\n", &[])
            .expect_err("unknown field");
        assert!(error.contains("path"), "{error}");
        let error = load_file("[[source]]\ntype = \"cloudtrail\"\nbucket = \"trails\"\nsqs_queue_url = \"https://q\"\n", &[])
            .expect_err("a queue for CloudTrail");
        assert!(error.contains("only read for sources.s3"), "{error}");
    }

    fn load_file(text: &str, extra: &[&str]) -> Result<Config, String> {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("c.toml");
        std::fs::write(&path, text).expect("write");
        let mut list = vec!["-c", path.to_str().expect("utf8")];
        list.extend_from_slice(extra);
        Config::load(&args(&list))
    }

    #[test]
    fn test_service_defaults_are_once_with_bounded_concurrency() {
        let config = Config::load(&args(&[])).expect("load");
        assert!(!config.follow);
        assert_eq!(config.poll_interval, DEFAULT_POLL_INTERVAL);
        assert_eq!(config.idle_period, DEFAULT_IDLE_PERIOD);
        assert_eq!(config.signing_key, None);
        assert_eq!(config.max_in_flight, DEFAULT_MAX_IN_FLIGHT);
        assert_eq!(config.shutdown_timeout, DEFAULT_SHUTDOWN_TIMEOUT);
        assert_eq!(config.retry_max_attempts, DEFAULT_RETRY_MAX_ATTEMPTS);
        assert_eq!(config.metrics_addr, None);
    }

    #[test]
    fn test_service_table_and_flags_merge() {
        let file = "signing_key = \"alias/sign\"\n[service]\nfollow = true\npoll_interval = \"5m\"\n\
                    max_in_flight = 8\nshutdown_timeout = \"45s\"\nmetrics_addr = \"127.0.0.1:9464\"\n\
                    idle_period = \"15m\"\n";
        let config = load_file(file, &[]).expect("load");
        assert!(config.follow);
        assert_eq!(config.signing_key.as_deref(), Some("alias/sign"));
        assert!(config.needs_aws(), "a KMS signing key needs AWS");
        assert_eq!(config.idle_period, Duration::from_secs(900));
        assert_eq!(config.poll_interval, Duration::from_secs(300));
        assert_eq!(config.max_in_flight, 8);
        assert_eq!(config.shutdown_timeout, Duration::from_secs(45));
        assert_eq!(config.metrics_addr, Some("127.0.0.1:9464".parse().expect("addr")));
        let config = load_file(
            file,
            &["--once", "--poll-interval", "1500ms", "--max-in-flight", "2", "--idle-period", "2h"],
        )
        .expect("load");
        assert_eq!(config.idle_period, Duration::from_secs(7200));
        assert!(!config.follow, "--once overrides follow = true");
        assert_eq!(config.poll_interval, Duration::from_millis(1500));
        assert_eq!(config.max_in_flight, 2);
    }

    #[test]
    fn test_invalid_service_values_name_the_field() {
        let cases: [(&str, &[&str], &str); 13] = [
            ("[service]\nidle_period = \"500ms\"\n", &[], "idle_period"),
            ("[service]\nidle_period = \"8d\"\n", &[], "idle_period"),
            ("", &["--idle-period", "9000h"], "idle_period"),
            ("signing_key = \"\"\n", &[], "signing_key"),
            ("[service]\npoll_interval = \"0s\"\n", &[], "poll_interval"),
            ("[service]\npoll_interval = \"often\"\n", &[], "poll_interval"),
            ("", &["--poll-interval", "10"], "poll_interval"),
            ("[service]\nmax_in_flight = 0\n", &[], "max_in_flight"),
            ("[service]\nshutdown_timeout = \"0ms\"\n", &[], "shutdown_timeout"),
            ("[service]\nretry_max_attempts = 0\n", &[], "retry_max_attempts"),
            ("[service]\nmetrics_addr = \"0.0.0.0:9464\"\n", &[], "metrics_addr"),
            ("", &["--metrics-addr", "localhost"], "metrics_addr"),
            ("[service]\nfollw = true\n", &[], "follw"),
        ];
        for (file, flags, field) in cases {
            let error = load_file(file, flags).expect_err(file);
            assert!(error.contains(field), "{file:?} {flags:?}: {error}");
        }
        // A non-loopback address is accepted when remote serving is allowed explicitly.
        let config =
            load_file("[service]\nmetrics_addr = \"0.0.0.0:9464\"\n", &["--metrics-allow-remote"])
                .expect("load");
        assert_eq!(config.metrics_addr, Some("0.0.0.0:9464".parse().expect("addr")));
    }

    #[test]
    fn test_parse_duration_units() {
        let cases = [
            ("500ms", Some(Duration::from_millis(500))),
            ("30s", Some(Duration::from_secs(30))),
            ("5m", Some(Duration::from_secs(300))),
            ("2h", Some(Duration::from_secs(7200))),
            ("30", None),
            ("s", None),
            ("1.5s", None),
            ("-1s", None),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_duration(text).ok(), expected, "{text:?}");
        }
    }
}
