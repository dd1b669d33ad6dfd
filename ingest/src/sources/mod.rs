//! Where sessions come from: one trait, [`Source`], and one file per source.
//!
//! | file | source | lists | notified by |
//! |---|---|---|---|
//! | [`local`] | a folder (the embedded default) | transcripts, saved streams, CloudTrail files | — |
//! | [`s3`] | an S3 bucket and prefix | `*.log` transcripts | S3 event notifications (Lambda) |
//! | [`s3_queue`] | the same, read through its SQS queue | the objects the queue's messages name | — |
//! | [`cloudwatch`] | a CloudWatch Logs group | its streams (stream = session id) | subscriptions (Lambda) |
//! | [`cloudtrail`] | CloudTrail log files in S3 | `*.json.gz` (digests skipped) | S3 event notifications |
//!
//! Reading a source is two steps, so that a big backlog is never in memory at once:
//! - *listing* ([`Source::list`], [`Source::list_trails`]) returns what changed since the
//!   cursors as [`Pending`] work: names, sizes and positions, no bytes;
//! - *fetching* one [`Pending`] ([`Work::fetch`]) returns the session in one of the SSM forms
//!   ([`Fetched::Session`]), or bad input with the reason ([`Fetched::Bad`], quarantined by the
//!   pipeline, never fatal). A local transcript is hashed in chunks and an S3 object only
//!   HEADed: their bytes are streamed later ([`crate::raw`]); CloudWatch streams are read whole.
//!
//! The service fetches a bounded number of pending items at once (`max_in_flight`), commits
//! them, and then lets each source [`Source::acknowledge`] what is done (the queue deletes its
//! messages). Adding a source is one file here with its config struct and a type implementing
//! [`Source`], one variant of [`SourceConfig`] (built in [`SourceConfig::build`]), and one value
//! of `SessionSource` (`sessionlake-schemas`) when it is a new kind of delivery.

pub mod cloudtrail;
pub mod cloudwatch;
pub mod local;
pub mod s3;
pub mod s3_queue;

use std::collections::HashSet;
use std::path::PathBuf;

use serde::Deserialize;
use sessionlake_indexer::InputForm;
use sessionlake_schemas::{SessionSource, session_id};
use sessionlake_storage::cursors::Cursors;

use crate::raw::{Raw, RawDigest};

pub use cloudtrail::{CLOUDTRAIL_DIGEST_FOLDER, CLOUDTRAIL_SOURCE, is_cloudtrail_digest};
pub use cloudwatch::CloudwatchSourceConfig;
pub use local::{FileStamp, LocalCache, LocalFile, LocalKind, LocalSourceConfig};
pub use s3::{S3Object, S3SourceConfig};

/// Largest single session object read (a transcript beyond this is quarantined, not loaded).
pub const MAX_OBJECT_BYTES: u64 = 2 * 1024 * 1024 * 1024;

/// A place sessions or CloudTrail files come from, listed on every poll.
#[async_trait::async_trait]
pub trait Source: Send + Sync {
    /// What it reads, for messages: a folder, `s3://bucket/prefix`, `cwl://group`.
    fn describe(&self) -> String;

    /// Lists the session inputs whose content may differ from their cursors.
    async fn list(&self, _cursors: &Cursors) -> anyhow::Result<Vec<Pending>> {
        Ok(Vec::new())
    }

    /// Lists the CloudTrail files whose content may differ from their cursors.
    async fn list_trails(&self, _cursors: &Cursors) -> anyhow::Result<Vec<TrailPending>> {
        Ok(Vec::new())
    }

    /// The work a notification names, when it is this source's (a Lambda event).
    fn notified(&self, _notification: &Notification<'_>, _cursors: &Cursors) -> Option<Notified> {
        None
    }

    /// After the commits of a poll: lets go of what is done (`done`: the inputs committed or
    /// found unchanged; `cursors` as committed).
    async fn acknowledge(&self, _done: &HashSet<String>, _cursors: &Cursors) -> anyhow::Result<()> {
        Ok(())
    }
}

/// One session input a listing found: what to read, without its bytes.
#[async_trait::async_trait]
pub trait Work: Send + std::fmt::Debug {
    /// Where it comes from (`s3://…`, `cwl://…`, a path): the cursor's key.
    fn source_ref(&self) -> String;

    /// Reads it: the session, bad input, or nothing new (`cursors`: the positions committed).
    async fn fetch(self: Box<Self>, cursors: &Cursors) -> anyhow::Result<Fetched>;
}

/// Work found by a listing (any source's).
pub type Pending = Box<dyn Work>;

/// One CloudTrail file a listing or a notification found.
#[async_trait::async_trait]
pub trait TrailWork: Send {
    /// Where it comes from: the cursor's key.
    fn source_ref(&self) -> String;

    /// Finds it (its bytes are streamed when it is parsed); `None` when its content is what
    /// its cursor holds, or it is gone.
    async fn read(self: Box<Self>, cursors: &Cursors) -> anyhow::Result<Option<TrailInput>>;
}

/// A CloudTrail file to read (any source's).
pub type TrailPending = Box<dyn TrailWork>;

/// What a Lambda event tells a source.
#[derive(Debug)]
pub enum Notification<'a> {
    /// An S3 event notification: an object was created.
    ObjectCreated(S3Object<'a>),
    /// A CloudWatch Logs subscription payload of one stream.
    Subscription {
        /// Log group.
        group: &'a str,
        /// Log stream.
        stream: &'a str,
        /// The id of the payload's first event.
        first_id: &'a str,
    },
}

/// The work a source found in a notification.
pub enum Notified {
    /// A session input; `None` when the cursors already hold it.
    Session(Option<Pending>),
    /// A CloudTrail file.
    Trail(TrailPending),
}

/// Input its listing alone refuses (too large): quarantined without a read.
#[derive(Debug)]
pub struct Refused(pub BadInput);

#[async_trait::async_trait]
impl Work for Refused {
    fn source_ref(&self) -> String {
        self.0.source_ref.clone()
    }

    async fn fetch(self: Box<Self>, _cursors: &Cursors) -> anyhow::Result<Fetched> {
        Ok(Fetched::Bad(self.0))
    }
}

/// AWS clients the sources share (`None` without AWS configuration).
#[derive(Debug, Clone, Default)]
pub struct Clients {
    /// S3.
    pub s3: Option<aws_sdk_s3::Client>,
    /// CloudWatch Logs.
    pub logs: Option<aws_sdk_cloudwatchlogs::Client>,
    /// SQS.
    pub sqs: Option<aws_sdk_sqs::Client>,
}

impl Clients {
    /// Returns the clients of `sdk`.
    pub fn of(sdk: Option<&aws_config::SdkConfig>) -> Clients {
        Clients {
            s3: sdk.map(crate::s3_client),
            logs: sdk.map(aws_sdk_cloudwatchlogs::Client::new),
            sqs: sdk.map(aws_sdk_sqs::Client::new),
        }
    }
}

/// One configured source: an entry of the config file's `[[source]]` list (`type = "s3"`, …)
/// or of the `[sources]` table, or a flag (`--s3`, `--cloudwatch`, `--local`, `--cloudtrail`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum SourceConfig {
    /// A local folder.
    Local(LocalSourceConfig),
    /// S3 session logs (through their queue when `sqs_queue_url` is set).
    S3(S3SourceConfig),
    /// A CloudWatch Logs group of session logs.
    Cloudwatch(CloudwatchSourceConfig),
    /// CloudTrail log files in S3.
    Cloudtrail(S3SourceConfig),
}

impl SourceConfig {
    /// Its place in the order sources are read: local folders, S3, CloudWatch Logs, CloudTrail.
    pub fn rank(&self) -> u8 {
        match self {
            SourceConfig::Local(_) => 0,
            SourceConfig::S3(_) => 1,
            SourceConfig::Cloudwatch(_) => 2,
            SourceConfig::Cloudtrail(_) => 3,
        }
    }

    /// Whether reading it talks to AWS.
    pub fn needs_aws(&self) -> bool {
        !matches!(self, SourceConfig::Local(_))
    }

    /// Why it cannot be read, if it cannot.
    pub fn validate(&self) -> Result<(), String> {
        match self {
            SourceConfig::Local(_) => Ok(()),
            SourceConfig::S3(s3) => s3.validate("s3"),
            SourceConfig::Cloudtrail(s3) => {
                s3.validate_bucket()?;
                match &s3.sqs_queue_url {
                    Some(_) => Err(format!(
                        "sources.cloudtrail: sqs_queue_url (bucket {}) is only read for sources.s3",
                        s3.bucket
                    )),
                    None => Ok(()),
                }
            }
            SourceConfig::Cloudwatch(group) => group.validate(),
        }
    }

    /// Returns the source that reads it, with `clients` for AWS.
    pub fn build(&self, clients: &Clients) -> anyhow::Result<Box<dyn Source>> {
        fn need<C: Clone>(
            client: Option<&C>,
            source: &SourceConfig,
            service: &str,
        ) -> anyhow::Result<C> {
            client.cloned().ok_or_else(|| {
                anyhow::anyhow!("source {} needs AWS configuration for {service}", source.name())
            })
        }
        Ok(match self {
            SourceConfig::Local(local) => Box::new(local::LocalSource::new(local.path.clone())),
            SourceConfig::S3(s3) => match &s3.sqs_queue_url {
                Some(queue_url) => Box::new(s3_queue::S3QueueSource::new(
                    need(clients.sqs.as_ref(), self, "SQS")?,
                    need(clients.s3.as_ref(), self, "S3")?,
                    s3.clone(),
                    queue_url.clone(),
                )),
                None => {
                    Box::new(s3::S3Source::new(need(clients.s3.as_ref(), self, "S3")?, s3.clone()))
                }
            },
            SourceConfig::Cloudwatch(group) => Box::new(cloudwatch::CloudwatchSource::new(
                need(clients.logs.as_ref(), self, "CloudWatch Logs")?,
                group.log_group.clone(),
            )),
            SourceConfig::Cloudtrail(s3) => Box::new(cloudtrail::CloudtrailSource::new(
                need(clients.s3.as_ref(), self, "S3")?,
                s3.clone(),
            )),
        })
    }

    /// What it reads, as the flags name it.
    pub fn name(&self) -> String {
        match self {
            SourceConfig::Local(local) => local.path.display().to_string(),
            SourceConfig::S3(s3) | SourceConfig::Cloudtrail(s3) => {
                format!("s3://{}/{}", s3.bucket, s3.prefix)
            }
            SourceConfig::Cloudwatch(group) => format!("cwl://{}", group.log_group),
        }
    }

    /// The folder of a local source.
    pub fn local_path(&self) -> Option<&PathBuf> {
        match self {
            SourceConfig::Local(local) => Some(&local.path),
            _ => None,
        }
    }
}

/// One session's raw bytes, ready for the indexer.
#[derive(Debug, Clone)]
pub struct SessionInput {
    /// Session id (the object's base name or the log stream name).
    pub session_id: String,
    /// Which delivery.
    pub source: SessionSource,
    /// Where: `s3://bucket/key`, `cwl://group/stream`, or a file path.
    pub source_ref: String,
    /// Cursor value after this input (ETag, stream position, content hash).
    pub position: String,
    /// Form of `raw`.
    pub form: InputForm,
    /// The bytes stored as the raw transcript and parsed (streamed from a local file or S3).
    pub raw: Raw,
    /// A time the source attaches (object LastModified, last event), for partitioning when the
    /// session's own start is unknown (µs).
    pub observed_at: Option<i64>,
}

/// A CloudTrail file to read, for the `access` table.
#[derive(Debug, Clone)]
pub struct TrailInput {
    /// Where: `s3://bucket/key` or a file path.
    pub source_ref: String,
    /// Cursor value after this file (ETag or content hash).
    pub position: String,
    /// The file's bytes (gzip or not): a local file or an S3 object is streamed when read.
    pub raw: Raw,
    /// The size and SHA-256 the bytes must have when read (a local file, hashed when its
    /// position was taken).
    pub expected: Option<RawDigest>,
}

/// Input that cannot be a session, with the reason.
#[derive(Debug, Clone)]
pub struct BadInput {
    /// Which delivery ([`SessionSource::as_str`], or [`CLOUDTRAIL_SOURCE`]): the quarantine
    /// folder.
    pub source: &'static str,
    /// Where.
    pub source_ref: String,
    /// Cursor value after this input.
    pub position: String,
    /// The bytes as received (quarantined encrypted).
    pub raw: Raw,
    /// Why it was refused.
    pub reason: String,
}

/// Returns the session id for an object key or file name: its base name without `.log`.
pub fn session_id_of(name: &str) -> Option<String> {
    let base = name.rsplit('/').next()?;
    let id = base.strip_suffix(".log").unwrap_or(base);
    session_id::is_valid(id).then(|| id.to_string())
}

/// Bytes read from the start of a transcript whose name is no session id, for the id its
/// header names (the `script` header is its first line).
const HEADER_PROBE_BYTES: u64 = 64 * 1024;

/// Returns whether the id a transcript's name gives (`named`) stands as its id: it has the
/// shape SSM gives session ids (`<principal>-<suffix>`). Otherwise its header is looked at.
fn name_is_session_id(named: Option<&str>) -> bool {
    named.is_some_and(|id| session_id::split(id).is_some())
}

/// Returns the id of a transcript whose name gives `named` (see [`name_is_session_id`]) and
/// whose first bytes are `head`: the session id its `script` header names (the agent's
/// `…/orchestration/<session-id>/Standard_Stream/…` path) if it is a valid one (a transcript
/// saved as `incident-42.log`), else the name's.
fn transcript_session_id(named: Option<String>, head: &[u8]) -> Option<String> {
    let header = sessionlake_indexer::input::script_head(head).header.session_id;
    header.filter(|id| session_id::is_valid(id)).or(named)
}

/// What fetching one [`Pending`] gave.
#[derive(Debug)]
pub enum Fetched {
    /// A session to index.
    Session(SessionInput),
    /// Input to quarantine.
    Bad(BadInput),
    /// Nothing new: the content is what the cursor already holds (local files are compared by
    /// content hash, which needs a read).
    Unchanged,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Clients that are never called (no endpoint is reached building them).
    fn offline_clients() -> Clients {
        let sdk = aws_config::SdkConfig::builder()
            .region(aws_config::Region::new("us-east-1"))
            .behavior_version(aws_config::BehaviorVersion::latest())
            .build();
        Clients::of(Some(&sdk))
    }

    /// Each notification is claimed by the source it belongs to, and by none other: a
    /// transcript by its S3 source (read through a queue or not), a CloudTrail file by its
    /// CloudTrail source, a subscription by its log group's source.
    #[test]
    fn test_notifications_are_claimed_by_their_source() {
        let s3 = |bucket: &str, queue: Option<&str>| S3SourceConfig {
            bucket: bucket.into(),
            prefix: "ssm/".into(),
            sqs_queue_url: queue.map(str::to_string),
        };
        let configs = [
            SourceConfig::S3(s3("logs", None)),
            SourceConfig::S3(s3("queued", Some("https://sqs.example/q"))),
            SourceConfig::Cloudtrail(s3("trails", None)),
            SourceConfig::Cloudwatch(CloudwatchSourceConfig { log_group: "/ssm".into() }),
            SourceConfig::Local(LocalSourceConfig { path: "examples".into() }),
        ];
        let clients = offline_clients();
        let sources: Vec<Box<dyn Source>> =
            configs.iter().map(|config| config.build(&clients).expect("built")).collect();
        let cursors = Cursors::default();
        let claims = |notification: Notification<'_>| -> Vec<(usize, &'static str)> {
            sources
                .iter()
                .enumerate()
                .filter_map(|(index, source)| {
                    let kind = match source.notified(&notification, &cursors)? {
                        Notified::Session(Some(_)) => "session",
                        Notified::Session(None) => "unchanged",
                        Notified::Trail(_) => "trail",
                    };
                    Some((index, kind))
                })
                .collect()
        };
        let created = |bucket: &'static str, key: &'static str| {
            Notification::ObjectCreated(S3Object {
                bucket,
                key,
                etag: "\"e\"",
                size: 10,
                observed_at: None,
            })
        };
        assert_eq!(claims(created("logs", "ssm/alice-0123456789abcdef0.log")), [(0, "session")]);
        assert_eq!(claims(created("queued", "ssm/alice-0123456789abcdef0.log")), [(1, "session")]);
        assert_eq!(claims(created("trails", "ssm/a_CloudTrail_x.json.gz")), [(2, "trail")]);
        assert!(claims(created("logs", "other/alice-0123456789abcdef0.log")).is_empty());
        assert!(claims(created("logs", "ssm/notes.txt")).is_empty());
        let subscription = |group| Notification::Subscription {
            group,
            stream: "alice-0123456789abcdef0",
            first_id: "1",
        };
        assert_eq!(claims(subscription("/ssm")), [(3, "session")]);
        assert!(claims(subscription("/trail")).is_empty());
    }

    #[test]
    fn test_session_id_of_keys() {
        assert_eq!(
            session_id_of("ssm/123/alice-0123456789abcdef0.log").as_deref(),
            Some("alice-0123456789abcdef0")
        );
        assert_eq!(session_id_of("a/../.log"), None);
    }
}
