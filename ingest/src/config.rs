//! Configuration: a TOML file says *what* (lake, keys, sources); flags and `SESSIONLAKE_*`
//! environment variables override it. With neither, the embedded default ingests `examples/`
//! into `./lake` with a local keyring.

use std::path::PathBuf;

use clap::Parser;
use serde::Deserialize;

/// Default lake: a folder beside where the command runs.
pub const DEFAULT_LAKE: &str = "./lake";
/// Default keyring file (mode 0600), outside the lake.
pub const DEFAULT_KEYRING: &str = ".sessionlake/keyring.json";
/// Folder the embedded default ingests.
pub const DEFAULT_EXAMPLES: &str = "examples";
/// Sessions per lake commit.
pub const DEFAULT_BATCH_SESSIONS: usize = 256;

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
    /// AWS region (else the SDK's chain: AWS_REGION, profile).
    #[arg(long, env = "SESSIONLAKE_REGION")]
    pub region: Option<String>,
    /// S3 source: s3://bucket/prefix holding <session-id>.log objects. Repeatable.
    #[arg(long = "s3", value_name = "S3_URL")]
    pub s3: Vec<String>,
    /// CloudWatch Logs source: a log group whose streams are sessions. Repeatable.
    #[arg(long = "cloudwatch", value_name = "LOG_GROUP")]
    pub cloudwatch: Vec<String>,
    /// Local folder source (S3 objects, get-log-events JSON, CloudTrail files). Repeatable.
    #[arg(long = "local", value_name = "DIR")]
    pub local: Vec<PathBuf>,
    /// CloudTrail logs for enrichment: s3://bucket/prefix. Repeatable.
    #[arg(long = "cloudtrail", value_name = "S3_URL")]
    pub cloudtrail: Vec<String>,
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
    /// AWS region.
    pub region: Option<String>,
    /// Sessions per commit.
    pub batch_sessions: Option<usize>,
    /// Sources.
    #[serde(default)]
    pub sources: SourcesConfig,
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
    /// `[[sources.cloudtrail]]`: CloudTrail log files in S3, for enrichment.
    #[serde(default)]
    pub cloudtrail: Vec<S3SourceConfig>,
}

/// An S3 location.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3SourceConfig {
    /// Bucket name.
    pub bucket: String,
    /// Key prefix (free-form; the session id is each object's base name).
    #[serde(default)]
    pub prefix: String,
}

/// A CloudWatch Logs group.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloudwatchSourceConfig {
    /// Log group name.
    pub log_group: String,
}

/// A local folder.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalSourceConfig {
    /// Folder path.
    pub path: PathBuf,
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
    /// Region override.
    pub region: Option<String>,
    /// Sessions per commit.
    pub batch_sessions: usize,
    /// S3 session sources.
    pub s3: Vec<S3SourceConfig>,
    /// CloudWatch sources.
    pub cloudwatch: Vec<CloudwatchSourceConfig>,
    /// Local sources.
    pub local: Vec<LocalSourceConfig>,
    /// CloudTrail sources.
    pub cloudtrail: Vec<S3SourceConfig>,
}

/// Parses `s3://bucket/prefix`.
pub fn parse_s3_url(url: &str) -> Result<S3SourceConfig, String> {
    let rest = url.strip_prefix("s3://").ok_or_else(|| format!("{url:?} is not an s3:// URL"))?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.len() < 3 {
        return Err(format!("{url:?} names no valid bucket"));
    }
    Ok(S3SourceConfig { bucket: bucket.to_string(), prefix: prefix.to_string() })
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
        let mut s3 = file.sources.s3;
        for url in &args.s3 {
            s3.push(parse_s3_url(url).map_err(|error| format!("--s3: {error}"))?);
        }
        let mut cloudtrail = file.sources.cloudtrail;
        for url in &args.cloudtrail {
            cloudtrail.push(parse_s3_url(url).map_err(|error| format!("--cloudtrail: {error}"))?);
        }
        let mut cloudwatch = file.sources.cloudwatch;
        cloudwatch.extend(
            args.cloudwatch.iter().map(|group| CloudwatchSourceConfig { log_group: group.clone() }),
        );
        let mut local = file.sources.local;
        local.extend(args.local.iter().map(|path| LocalSourceConfig { path: path.clone() }));
        if s3.is_empty() && cloudwatch.is_empty() && local.is_empty() {
            // The embedded default: no sources named, so ingest the shipped examples.
            local.push(LocalSourceConfig { path: PathBuf::from(DEFAULT_EXAMPLES) });
        }
        let config = Config {
            lake: args.lake.clone().or(file.lake).unwrap_or_else(|| DEFAULT_LAKE.to_string()),
            keyring: args
                .keyring
                .clone()
                .or(file.keyring)
                .unwrap_or_else(|| PathBuf::from(DEFAULT_KEYRING)),
            kms_key_id: args.kms_key_id.clone().or(file.kms_key_id),
            region: args.region.clone().or(file.region),
            batch_sessions: file.batch_sessions.unwrap_or(DEFAULT_BATCH_SESSIONS),
            s3,
            cloudwatch,
            local,
            cloudtrail,
        };
        config.validate()?;
        Ok(config)
    }

    /// Checks the merged configuration; errors name the field.
    pub fn validate(&self) -> Result<(), String> {
        if self.batch_sessions == 0 || self.batch_sessions > 100_000 {
            return Err(format!("batch_sessions must be 1..=100000, not {}", self.batch_sessions));
        }
        if self.kms_key_id.as_deref().is_some_and(str::is_empty) {
            return Err("kms_key_id is empty".to_string());
        }
        for source in self.s3.iter().chain(&self.cloudtrail) {
            if source.bucket.len() < 3 || source.bucket.contains('/') {
                return Err(format!("sources: bucket {:?} is not a bucket name", source.bucket));
            }
        }
        for source in &self.cloudwatch {
            if source.log_group.is_empty() {
                return Err("sources.cloudwatch: log_group is empty".to_string());
            }
        }
        Ok(())
    }

    /// Whether any part of the run talks to AWS.
    pub fn needs_aws(&self) -> bool {
        !self.s3.is_empty()
            || !self.cloudwatch.is_empty()
            || !self.cloudtrail.is_empty()
            || self.kms_key_id.is_some()
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
    fn test_no_arguments_is_the_embedded_default() {
        let config = Config::load(&args(&[])).expect("load");
        assert_eq!(config.lake, DEFAULT_LAKE);
        assert_eq!(config.local, vec![LocalSourceConfig { path: DEFAULT_EXAMPLES.into() }]);
        assert!(!config.needs_aws());
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
        assert_eq!(
            config.s3,
            vec![S3SourceConfig { bucket: "logs".into(), prefix: "ssm/".into() }]
        );
        assert_eq!(config.cloudwatch.len(), 1);
        assert!(config.local.is_empty());
        assert!(config.needs_aws());

        std::fs::write(&path, "lakes = \"x\"\n").expect("write");
        let error =
            Config::load(&args(&["-c", path.to_str().expect("utf8")])).expect_err("unknown field");
        assert!(error.contains("lakes"), "{error}");
    }
}
