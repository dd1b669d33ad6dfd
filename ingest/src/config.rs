//! Configuration: a TOML file says *what* (lake, keys, sources); flags and `SESSIONLAKE_*`
//! environment variables override it. The binaries turn their flags into one more
//! [`FileConfig`] laid over the file's ([`FileConfig::over`]), so the library never sees a
//! flag; [`Config::load`] fills in the defaults and validates. With neither file nor flags,
//! the embedded default ingests `examples/` into `./lake` with a local keyring.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

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

impl FileConfig {
    /// Reads and parses the TOML file at `path`; the error names the file.
    fn read(path: &Path) -> Result<FileConfig, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|error| format!("failed to read config {}: {error}", path.display()))?;
        toml::from_str::<FileConfig>(&text)
            .map_err(|error| format!("config {} is not valid: {error}", path.display()))
    }

    /// Takes this layer's sources as one list: the table by kind's (`[[sources.s3]]`, …) first,
    /// then the tagged list's (`[[source]]`).
    fn take_sources(&mut self) -> Vec<SourceConfig> {
        let mut list = std::mem::take(&mut self.sources).into_list();
        list.append(&mut self.source);
        list
    }

    /// This layer laid over `base` (the flags over the file): each setting this layer gives
    /// wins; the sources of both are read, `base`'s first; trusted signing keys listed here
    /// replace `base`'s. The result holds its sources as the list (`source`).
    pub(crate) fn over(mut self, mut base: FileConfig) -> FileConfig {
        let mut source = base.take_sources();
        source.extend(self.take_sources());
        FileConfig {
            lake: self.lake.or(base.lake),
            keyring: self.keyring.or(base.keyring),
            kms_key_id: self.kms_key_id.or(base.kms_key_id),
            key_cache_max_age: self.key_cache_max_age.or(base.key_cache_max_age),
            key_cache_max_uses: self.key_cache_max_uses.or(base.key_cache_max_uses),
            signing_key: self.signing_key.or(base.signing_key),
            object_lock_mode: self.object_lock_mode.or(base.object_lock_mode),
            object_lock_days: self.object_lock_days.or(base.object_lock_days),
            trust_signing_keys: if self.trust_signing_keys.is_empty() {
                base.trust_signing_keys
            } else {
                self.trust_signing_keys
            },
            region: self.region.or(base.region),
            profile: self.profile.or(base.profile),
            batch_sessions: self.batch_sessions.or(base.batch_sessions),
            service: self.service.over(base.service),
            source,
            sources: SourcesConfig::default(),
        }
    }
}

impl ServiceConfig {
    /// This layer laid over `base`: each setting this layer gives wins.
    fn over(self, base: ServiceConfig) -> ServiceConfig {
        ServiceConfig {
            follow: self.follow.or(base.follow),
            poll_interval: self.poll_interval.or(base.poll_interval),
            idle_period: self.idle_period.or(base.idle_period),
            restart_within: self.restart_within.or(base.restart_within),
            max_in_flight: self.max_in_flight.or(base.max_in_flight),
            max_trail_records: self.max_trail_records.or(base.max_trail_records),
            hold_rows_up_to: self.hold_rows_up_to.or(base.hold_rows_up_to),
            shutdown_timeout: self.shutdown_timeout.or(base.shutdown_timeout),
            retry_max_attempts: self.retry_max_attempts.or(base.retry_max_attempts),
            metrics_addr: self.metrics_addr.or(base.metrics_addr),
            metrics_allow_remote: self.metrics_allow_remote.or(base.metrics_allow_remote),
        }
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
    /// Reads the TOML file at `path` (if any), lays `flags` over it (see [`FileConfig::over`]),
    /// fills in the defaults and validates. `flags` is what the command line and the
    /// `SESSIONLAKE_*` variables say, in the file's own terms; the settings only a flag gives
    /// (`json`, `allow_insecure_keyring`) start false, for the caller to set.
    pub fn load(path: Option<&Path>, flags: FileConfig) -> Result<Config, String> {
        let file = match path {
            Some(path) => FileConfig::read(path)?,
            None => FileConfig::default(),
        };
        Config::from_layers(flags.over(file))
    }

    /// The configuration one merged layer gives, with the defaults for what it leaves out.
    fn from_layers(mut layers: FileConfig) -> Result<Config, String> {
        let mut sources = layers.take_sources();
        let service = layers.service;
        if sources.is_empty() {
            // The embedded default: no sources named, so ingest the shipped examples (a
            // CloudTrail source alone is a source: a deployment that reads only trails).
            let path = PathBuf::from(DEFAULT_EXAMPLES);
            sources.push(SourceConfig::Local(LocalSourceConfig { path }));
        }
        sources.sort_by_key(SourceConfig::rank);
        let poll_interval = duration_field(
            "poll_interval",
            service.poll_interval.as_deref(),
            DEFAULT_POLL_INTERVAL,
        )?;
        let idle_period =
            duration_field("idle_period", service.idle_period.as_deref(), DEFAULT_IDLE_PERIOD)?;
        let restart_within =
            duration_field("restart_within", service.restart_within.as_deref(), idle_period)?;
        let object_lock =
            ObjectLockSettings::from_options(layers.object_lock_mode, layers.object_lock_days)
                .map_err(|error| error.to_string())?;
        let shutdown_timeout = duration_field(
            "shutdown_timeout",
            service.shutdown_timeout.as_deref(),
            DEFAULT_SHUTDOWN_TIMEOUT,
        )?;
        let metrics_addr = match service.metrics_addr.as_deref() {
            None => None,
            Some(text) => Some(text.trim().parse::<SocketAddr>().map_err(|_| {
                format!("metrics_addr: {text:?} is not an address (e.g. 127.0.0.1:9464)")
            })?),
        };
        let key_cache_max_age = match layers.key_cache_max_age.as_deref() {
            None => KeyCachePolicy::default().max_age,
            Some(text) => {
                parse_duration(text).map_err(|error| format!("key_cache_max_age: {error}"))?
            }
        };
        let key_cache = KeyCachePolicy {
            max_age: key_cache_max_age,
            max_uses: layers.key_cache_max_uses.unwrap_or(KeyCachePolicy::default().max_uses),
            ..KeyCachePolicy::default()
        };
        let config = Config {
            lake: layers.lake.unwrap_or_else(|| DEFAULT_LAKE.to_string()),
            keyring: layers.keyring.unwrap_or_else(|| PathBuf::from(DEFAULT_KEYRING)),
            kms_key_id: layers.kms_key_id,
            key_cache,
            signing_key: layers.signing_key,
            object_lock,
            json: false,
            trust_signing_keys: layers.trust_signing_keys,
            allow_insecure_keyring: false,
            region: layers.region,
            profile: layers.profile,
            batch_sessions: layers.batch_sessions.unwrap_or(DEFAULT_BATCH_SESSIONS),
            follow: service.follow.unwrap_or(false),
            poll_interval,
            idle_period,
            restart_within,
            max_in_flight: service.max_in_flight.unwrap_or(DEFAULT_MAX_IN_FLIGHT),
            max_trail_records: service
                .max_trail_records
                .unwrap_or(sessionlake_indexer::cloudtrail::DEFAULT_MAX_TRAIL_RECORDS),
            hold_rows_up_to: service.hold_rows_up_to.unwrap_or(crate::lake_writer::HOLD_ROWS_UP_TO),
            shutdown_timeout,
            retry_max_attempts: service.retry_max_attempts.unwrap_or(DEFAULT_RETRY_MAX_ATTEMPTS),
            metrics_addr,
            metrics_allow_remote: service.metrics_allow_remote.unwrap_or(false),
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

    /// A layer laid over another: what it gives wins, what it leaves out comes from below,
    /// sources add up (the lower layer's first), a trusted-keys list replaces the one below.
    #[test]
    fn test_a_layer_over_another() {
        let file = FileConfig {
            lake: Some("s3://lake/x".into()),
            region: Some("eu-west-1".into()),
            trust_signing_keys: vec!["alias/old".into()],
            sources: SourcesConfig {
                s3: vec![parse_s3_url("s3://logs/ssm/").expect("url")],
                ..SourcesConfig::default()
            },
            service: ServiceConfig {
                follow: Some(true),
                max_in_flight: Some(8),
                ..ServiceConfig::default()
            },
            ..FileConfig::default()
        };
        let flags = FileConfig {
            lake: Some("./elsewhere".into()),
            source: vec![SourceConfig::Local(LocalSourceConfig { path: "/data".into() })],
            service: ServiceConfig { follow: Some(false), ..ServiceConfig::default() },
            ..FileConfig::default()
        };
        let merged = flags.over(file);
        assert_eq!(merged.lake.as_deref(), Some("./elsewhere"));
        assert_eq!(merged.region.as_deref(), Some("eu-west-1"));
        assert_eq!(merged.trust_signing_keys, ["alias/old"]);
        assert_eq!(merged.service.follow, Some(false));
        assert_eq!(merged.service.max_in_flight, Some(8));
        let kinds: Vec<u8> = merged.source.iter().map(SourceConfig::rank).collect();
        assert_eq!(kinds, [1, 0], "the file's sources, then the flags'");
        let config = Config::from_layers(merged).expect("config");
        let kinds: Vec<u8> = config.sources.iter().map(SourceConfig::rank).collect();
        assert_eq!(kinds, [0, 1], "local folders first");
        assert!(!config.follow);
        let replaced =
            FileConfig { trust_signing_keys: vec!["alias/new".into()], ..FileConfig::default() }
                .over(FileConfig {
                    trust_signing_keys: vec!["alias/old".into()],
                    ..FileConfig::default()
                });
        assert_eq!(replaced.trust_signing_keys, ["alias/new"]);
        // A layer's sources in the table form are its sources (never the embedded default).
        let tabled = FileConfig {
            sources: SourcesConfig {
                s3: vec![parse_s3_url("s3://logs/ssm/").expect("url")],
                ..SourcesConfig::default()
            },
            ..FileConfig::default()
        };
        let config = Config::from_layers(tabled).expect("config");
        let kinds: Vec<u8> = config.sources.iter().map(SourceConfig::rank).collect();
        assert_eq!(kinds, [1], "{:?}", config.sources);
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
