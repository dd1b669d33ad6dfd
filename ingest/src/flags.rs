//! The flags of `sessionlake-ingest` and `sessionlake-lambda` (each binary includes this
//! file; the library never sees a flag): every flag has its `SESSIONLAKE_*` variable, and
//! what they say is one more layer of the configuration, laid over the TOML file
//! ([`FileConfig::over`]).

use std::path::PathBuf;

use clap::Parser;
use sessionlake_ingest::config::{
    CloudwatchSourceConfig, Config, FileConfig, LocalSourceConfig, ServiceConfig, SourceConfig,
    parse_s3_url,
};
use sessionlake_storage::object_lock::ObjectLockMode;

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

impl Args {
    /// The run's configuration: the file `--config` names (if any), these flags over it,
    /// the defaults under both.
    pub fn config(&self) -> Result<Config, String> {
        let mut config = Config::load(self.config.as_deref(), self.layer()?)?;
        config.json = self.json;
        config.allow_insecure_keyring = self.allow_insecure_keyring;
        Ok(config)
    }

    /// What the flags say, in the configuration file's terms. `--once` overrides `--follow`
    /// and the file's `follow`; the source flags add sources (`--s3` first, then
    /// `--cloudtrail`, `--cloudwatch`, `--local`).
    fn layer(&self) -> Result<FileConfig, String> {
        let mut source = Vec::new();
        for url in &self.s3 {
            source.push(SourceConfig::S3(
                parse_s3_url(url).map_err(|error| format!("--s3: {error}"))?,
            ));
        }
        for url in &self.cloudtrail {
            source.push(SourceConfig::Cloudtrail(
                parse_s3_url(url).map_err(|error| format!("--cloudtrail: {error}"))?,
            ));
        }
        source.extend(self.cloudwatch.iter().map(|group| {
            SourceConfig::Cloudwatch(CloudwatchSourceConfig { log_group: group.clone() })
        }));
        source.extend(
            self.local
                .iter()
                .map(|path| SourceConfig::Local(LocalSourceConfig { path: path.clone() })),
        );
        let follow = if self.once { Some(false) } else { self.follow.then_some(true) };
        Ok(FileConfig {
            lake: self.lake.clone(),
            keyring: self.keyring.clone(),
            kms_key_id: self.kms_key_id.clone(),
            key_cache_max_age: self.key_cache_max_age.clone(),
            key_cache_max_uses: self.key_cache_max_uses,
            signing_key: self.signing_key.clone(),
            object_lock_mode: self.object_lock_mode,
            object_lock_days: self.object_lock_days,
            trust_signing_keys: self.trust_signing_keys.clone(),
            region: self.region.clone(),
            profile: self.profile.clone(),
            batch_sessions: self.batch_sessions,
            service: ServiceConfig {
                follow,
                poll_interval: self.poll_interval.clone(),
                idle_period: self.idle_period.clone(),
                restart_within: self.restart_within.clone(),
                max_in_flight: self.max_in_flight,
                max_trail_records: self.max_trail_records,
                hold_rows_up_to: self.hold_rows_up_to,
                shutdown_timeout: self.shutdown_timeout.clone(),
                retry_max_attempts: self.retry_max_attempts,
                metrics_addr: self.metrics_addr.clone(),
                metrics_allow_remote: self.metrics_allow_remote.then_some(true),
            },
            source,
            sources: Default::default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use sessionlake_ingest::config::*;
    use sessionlake_storage::key_cache::KeyCachePolicy;

    use super::*;

    fn load(args: &Args) -> Result<Config, String> {
        args.config()
    }

    fn args(list: &[&str]) -> Args {
        Args::try_parse_from(std::iter::once("sessionlake-ingest").chain(list.iter().copied()))
            .expect("args")
    }

    #[test]
    fn test_key_cache_settings() {
        let config = load(&args(&[])).expect("load");
        assert_eq!(config.key_cache, KeyCachePolicy::default());
        let config =
            load(&args(&["--key-cache-max-age", "0s", "--key-cache-max-uses", "7"])).expect("load");
        assert_eq!(config.key_cache.max_age, Duration::ZERO);
        assert_eq!(config.key_cache.max_uses, 7);
        let error = load(&args(&["--key-cache-max-age", "2d"])).expect_err("bad unit");
        assert!(error.starts_with("key_cache_max_age:"), "{error}");
        let error = load(&args(&["--key-cache-max-age", "25h"])).expect_err("too long");
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
        let config = load(&args(&[])).expect("load");
        assert_eq!(config.lake, DEFAULT_LAKE);
        let examples = LocalSourceConfig { path: DEFAULT_EXAMPLES.into() };
        assert_eq!(config.sources, vec![SourceConfig::Local(examples)]);
        assert!(!config.needs_aws());
        // A CloudTrail source alone is what is asked for (a deployment reading only trails):
        // the examples are not added to it.
        let trails = load(&args(&["--cloudtrail", "s3://trails/AWSLogs/"])).expect("load");
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
        let config =
            load(&args(&["-c", path.to_str().expect("utf8"), "--cloudwatch", "/ssm/sessions"]))
                .expect("load");
        let logs =
            S3SourceConfig { bucket: "logs".into(), prefix: "ssm/".into(), sqs_queue_url: None };
        let group = CloudwatchSourceConfig { log_group: "/ssm/sessions".into() };
        assert_eq!(config.sources, vec![SourceConfig::S3(logs), SourceConfig::Cloudwatch(group)]);
        assert!(config.needs_aws());

        std::fs::write(&path, "lakes = \"x\"\n").expect("write");
        let error = load(&args(&["-c", path.to_str().expect("utf8")])).expect_err("unknown field");
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
        let example = load(&args(&["-c", example])).expect("the example loads");
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
        load(&args(&list))
    }

    #[test]
    fn test_service_defaults_are_once_with_bounded_concurrency() {
        let config = load(&args(&[])).expect("load");
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
}
