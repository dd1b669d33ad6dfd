//! Row types of the `commands` and `sessions` tables.

use serde::{Deserialize, Serialize};

/// Where a row's time came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TimeSource {
    /// The `eventTime` of the streamed CloudWatch batch that carried the command (±1 s).
    CloudwatchEvent,
    /// The session's `StartSession` event in CloudTrail.
    Cloudtrail,
    /// The transcript's own header (PowerShell transcripts), or a recorder's timing.
    Transcript,
    /// No time: the input has none for this row. Never a made-up time.
    None,
}

impl TimeSource {
    /// Returns the value stored in the `time_source` column.
    pub fn as_str(self) -> &'static str {
        match self {
            TimeSource::CloudwatchEvent => "cloudwatch-event",
            TimeSource::Cloudtrail => "cloudtrail",
            TimeSource::Transcript => "transcript",
            TimeSource::None => "none",
        }
    }
}

/// How sure the parser is that a row is a command the user ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Confidence {
    /// The terminal bytes prove it: the shell's line editor accepted the line.
    High,
    /// A prompt-shaped line in an input that cannot tell a prompt from output that imitates one
    /// (streamed CloudWatch, which has lost the escape sequences and carriage returns).
    Low,
}

impl Confidence {
    /// Returns the value stored in the `confidence` column.
    pub fn as_str(self) -> &'static str {
        match self {
            Confidence::High => "high",
            Confidence::Low => "low",
        }
    }
}

/// Which SSM delivery a session came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SessionSource {
    /// An S3 object written by the agent at session end.
    S3,
    /// A CloudWatch Logs stream of JSON events written while the session ran.
    CloudwatchStream,
    /// A CloudWatch Logs stream of plain-text events uploaded at session end.
    CloudwatchUpload,
    /// A transcript file in a local folder.
    Local,
}

impl SessionSource {
    /// Returns the value stored in the `source` column and used in raw object names.
    pub fn as_str(self) -> &'static str {
        match self {
            SessionSource::S3 => "s3",
            SessionSource::CloudwatchStream => "cloudwatch-stream",
            SessionSource::CloudwatchUpload => "cloudwatch-upload",
            SessionSource::Local => "local",
        }
    }
}

/// Outcome of parsing a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SessionStatus {
    /// The transcript is whole: it has its footer, or the stream ended.
    Complete,
    /// The transcript stops mid-way (no footer; a cut line).
    Truncated,
    /// The session was terminated from outside.
    Terminated,
    /// Nothing in it could be parsed as a shell session.
    Unparseable,
}

impl SessionStatus {
    /// Returns the value stored in the `status` column.
    pub fn as_str(self) -> &'static str {
        match self {
            SessionStatus::Complete => "complete",
            SessionStatus::Truncated => "truncated",
            SessionStatus::Terminated => "terminated",
            SessionStatus::Unparseable => "unparseable",
        }
    }
}

/// One command a person ran in a session: a row of the `commands` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommandRecord {
    /// Session id.
    pub session_id: String,
    /// Position within the session, from 0.
    pub seq: u32,
    /// Start time in µs since the epoch, when the input has one.
    pub started_at: Option<i64>,
    /// Where `started_at` came from.
    pub time_source: TimeSource,
    /// Who started the session.
    pub principal: Option<String>,
    /// OS user of the shell.
    pub run_as: Option<String>,
    /// Managed node.
    pub target: Option<String>,
    /// AWS region.
    pub region: Option<String>,
    /// AWS account id.
    pub account: Option<String>,
    /// Working directory shown by the prompt.
    pub cwd: Option<String>,
    /// The prompt before the command.
    pub prompt: String,
    /// The command after line editing, secrets masked.
    pub command: String,
    /// Output, capped, secrets masked.
    pub output: String,
    /// True when `output` was cut.
    pub output_truncated: bool,
    /// Full output size in bytes.
    pub output_bytes: u64,
    /// Byte offset in the decrypted raw transcript.
    pub raw_offset: u64,
    /// Byte length in the decrypted raw transcript.
    pub raw_len: u64,
    /// Secrets masked in this row.
    pub redactions: u32,
    /// How sure the parser is.
    pub confidence: Confidence,
    /// Parser version.
    pub parser_version: u32,
}

/// One session: a row of the `sessions` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionRecord {
    /// Session id.
    pub session_id: String,
    /// Who started the session.
    pub principal: Option<String>,
    /// OS user of the shell.
    pub run_as: Option<String>,
    /// Managed node.
    pub target: Option<String>,
    /// AWS region.
    pub region: Option<String>,
    /// AWS account id.
    pub account: Option<String>,
    /// Session start (µs), from CloudTrail or the first streamed event.
    pub started_at: Option<i64>,
    /// Session end (µs), from the transcript footer or the last streamed event.
    pub ended_at: Option<i64>,
    /// Commands extracted.
    pub command_count: u32,
    /// Which delivery it came from.
    pub source: SessionSource,
    /// Where in that delivery.
    pub source_ref: String,
    /// Lake path of the encrypted raw transcript.
    pub raw_object: String,
    /// SHA-256 (hex) of the original bytes.
    pub raw_sha256: String,
    /// Id of the provider key that wraps the data keys.
    pub key_id: String,
    /// When it was written to the lake (µs).
    pub ingested_at: i64,
    /// Parse outcome.
    pub status: SessionStatus,
    /// Parser version.
    pub parser_version: u32,
}
