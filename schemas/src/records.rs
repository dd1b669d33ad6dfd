//! Row types of the `commands`, `sessions` and `access` tables.

use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

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

/// How well a whole session was understood (see [`Understanding`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SessionConfidence {
    /// Prompts recognised throughout, nearly all of the input explained.
    High,
    /// Most of the input explained, or a delivery that lost information (the streamed form).
    Medium,
    /// Little of the input explained, or no prompt recognised: look at the original.
    Low,
}

impl SessionConfidence {
    /// Returns the value stored in the `sessions.confidence` column.
    pub fn as_str(self) -> &'static str {
        match self {
            SessionConfidence::High => "high",
            SessionConfidence::Medium => "medium",
            SessionConfidence::Low => "low",
        }
    }
}

/// Which SSM delivery a session came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
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
    /// Every source.
    pub const ALL: [SessionSource; 4] = [
        SessionSource::S3,
        SessionSource::CloudwatchStream,
        SessionSource::CloudwatchUpload,
        SessionSource::Local,
    ];

    /// Sources in the order readers (`show`, `show --raw`, `export`, `search`) and compaction
    /// prefer them when a session was delivered more than once (S3 and CloudWatch): the raw
    /// transcript first, as the most complete.
    pub const PREFERENCE: [SessionSource; 4] = [
        SessionSource::S3,
        SessionSource::Local,
        SessionSource::CloudwatchUpload,
        SessionSource::CloudwatchStream,
    ];

    /// Returns the source named `name` as [`SessionSource::as_str`] gives it.
    pub fn from_name(name: &str) -> Option<SessionSource> {
        SessionSource::ALL.into_iter().find(|source| source.as_str() == name)
    }

    /// Whether the delivery is the agent's stream of log events (JSON Lines, one event a line)
    /// rather than a terminal transcript: it replays from its events, and its commands are
    /// compared with another delivery's as the stream carries text ([`as_streamed`]).
    pub fn is_streamed(self) -> bool {
        match self {
            SessionSource::CloudwatchStream => true,
            SessionSource::S3 | SessionSource::CloudwatchUpload | SessionSource::Local => false,
        }
    }

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

/// Returns `command` as the streamed form can show it at best: the agent's ANSI stripper
/// deletes bytes 0x80–0x9F (C1 controls to it, UTF-8 continuation bytes in fact; SS2/SS3 take
/// the next byte with them, a CSI its parameters), tabs become spaces, and each byte left
/// invalid becomes U+FFFD.
pub fn as_streamed(command: &str) -> String {
    let bytes = command.as_bytes();
    let mut kept = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while let Some(&byte) = bytes.get(index) {
        index += 1;
        match byte {
            0x8e | 0x8f => index += 1,
            0x9b => {
                while bytes.get(index).is_some_and(|b| (0x20..=0x3f).contains(b)) {
                    index += 1;
                }
                if bytes.get(index).is_some_and(|b| (0x40..=0x7e).contains(b)) {
                    index += 1;
                }
            }
            0x80..=0x9f => {}
            b'\t' => kept.push(b' '),
            _ => kept.push(byte),
        }
    }
    let mut text = String::with_capacity(kept.len());
    for chunk in kept.utf8_chunks() {
        text.push_str(chunk.valid());
        text.extend(std::iter::repeat_n('\u{fffd}', chunk.invalid().len()));
    }
    text
}

/// Returns `command` as two deliveries of a session compare it, to tell whether they hold the
/// same command: as it is, unless one of the two is a CloudWatch stream (`streamed`), whose
/// text the agent rewrote ([`as_streamed`], which leaves a streamed text as it is).
pub fn comparable_command(command: &str, streamed: bool) -> std::borrow::Cow<'_, str> {
    if streamed { as_streamed(command).into() } else { command.into() }
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

/// The start of the `confidence_reason` of a session version whose content (the agent's
/// orchestration path in its header, the streamed events' `sessionId`) names another session
/// than its name: ingest writes it, `sessions` shows such a version with status `conflict`.
pub const NAME_MISMATCH_REASON: &str =
    "its content (the agent's own path or events) names another session than its name";

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
///
/// What the session tells (its id, who, as whom, where) is the same on every row of a session:
/// those fields share one `Arc<str>` per session instead of a copy per row. They serialize as
/// plain strings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommandRecord {
    /// Session id.
    #[serde(with = "shared_str")]
    pub session_id: Arc<str>,
    /// Position within the session, from 0.
    pub seq: u32,
    /// Start time in µs since the epoch, when the input has one.
    pub started_at: Option<i64>,
    /// Where `started_at` came from.
    pub time_source: TimeSource,
    /// Who started the session.
    #[serde(with = "shared_str::option")]
    pub principal: Option<Arc<str>>,
    /// OS user of the shell.
    #[serde(with = "shared_str::option")]
    pub run_as: Option<Arc<str>>,
    /// Managed node.
    #[serde(with = "shared_str::option")]
    pub target: Option<Arc<str>>,
    /// AWS region.
    #[serde(with = "shared_str::option")]
    pub region: Option<Arc<str>>,
    /// AWS account id.
    #[serde(with = "shared_str::option")]
    pub account: Option<Arc<str>>,
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
    /// Who the command ran as at that moment, as far as the prompts and commands tell
    /// (`run_as` stays the session's OS user).
    #[serde(default, with = "shared_str::option")]
    pub effective_user: Option<Arc<str>>,
    /// The shell that read it (`bash`, `zsh`, `fish`, `sh`).
    #[serde(default, with = "shared_str::option")]
    pub shell: Option<Arc<str>>,
    /// The REPL the line was typed into (`kind = repl`); `None` for a shell command.
    #[serde(default, with = "shared_str::option")]
    pub program: Option<Arc<str>>,
}

impl CommandRecord {
    /// Returns the row's `kind`: `repl` for a line typed into a program, else `shell`.
    pub fn kind(&self) -> &'static str {
        if self.program.is_some() { KIND_REPL } else { KIND_SHELL }
    }
}

/// `kind` of a command a shell read.
pub const KIND_SHELL: &str = "shell";

/// `kind` of a line typed into a program a shell started (sqlite3, psql, python, …).
pub const KIND_REPL: &str = "repl";

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
    /// How well the session was understood (schema version 2).
    #[serde(default)]
    pub understanding: Option<Understanding>,
}

/// How well a session was understood: which shells read its commands, how much of its input
/// the rows explain, and a confidence with its reason. Never silently empty: a session whose
/// prompts were not recognised is `low`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Understanding {
    /// The shells seen, in order of appearance.
    pub shells: Vec<String>,
    /// Share of the transcript's bytes the rows explain (prompt to end of output), 0–1.
    pub input_explained: f64,
    /// `high`, `medium` or `low`.
    pub confidence: SessionConfidence,
    /// Why (counts and shares only, never transcript text).
    pub reason: String,
}

/// How a person got at a managed node, as CloudTrail tells it: the `kind` of an `access` row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AccessKind {
    /// SSM `StartSession`: a shell, port forwarding or SSH over Session Manager.
    SsmSession,
    /// SSM `ResumeSession`: a client reconnected to a session.
    SsmResume,
    /// SSM `TerminateSession`.
    SsmTerminate,
    /// EC2 Instance Connect `SendSSHPublicKey`: a 60-second SSH key pushed for an OS user.
    Ec2InstanceConnect,
    /// SSM `SendCommand`: Run Command on one or many nodes.
    RunCommand,
}

impl AccessKind {
    /// Every kind, in the order listings show them.
    pub const ALL: [AccessKind; 5] = [
        AccessKind::SsmSession,
        AccessKind::SsmResume,
        AccessKind::SsmTerminate,
        AccessKind::Ec2InstanceConnect,
        AccessKind::RunCommand,
    ];

    /// Returns the value stored in the `kind` column.
    pub fn as_str(self) -> &'static str {
        match self {
            AccessKind::SsmSession => "ssm-session",
            AccessKind::SsmResume => "ssm-resume",
            AccessKind::SsmTerminate => "ssm-terminate",
            AccessKind::Ec2InstanceConnect => "ec2-instance-connect",
            AccessKind::RunCommand => "run-command",
        }
    }

    /// Returns the kind stored as `text` in the `kind` column.
    pub fn parse(text: &str) -> Option<AccessKind> {
        AccessKind::ALL.into_iter().find(|kind| kind.as_str() == text)
    }
}

/// One access event from CloudTrail: a row of the `access` table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessRecord {
    /// CloudTrail `eventID` (the dedupe key).
    pub event_id: String,
    /// CloudTrail `eventTime` (µs).
    pub event_time: i64,
    /// What kind of access.
    pub kind: AccessKind,
    /// `userIdentity.arn` (or the principal id or account root when there is no ARN).
    pub principal: Option<String>,
    /// `userIdentity.type`.
    pub principal_type: Option<String>,
    /// `sourceIPAddress`.
    pub source_ip: Option<String>,
    /// `userAgent`.
    pub user_agent: Option<String>,
    /// Target nodes: instance ids, or `tag:Key=Value` for Run Command tag targets.
    pub targets: Vec<String>,
    /// Instance Connect's `instanceOSUser`.
    pub os_user: Option<String>,
    /// SSM document name.
    pub document_name: Option<String>,
    /// Request parameters that can hold what a person typed, as JSON text (encrypted at rest).
    pub parameters: Option<String>,
    /// Session id (StartSession's response, Resume/TerminateSession's request).
    pub session_id: Option<String>,
    /// Run Command's command id.
    pub command_id: Option<String>,
    /// `awsRegion`.
    pub region: Option<String>,
    /// `recipientAccountId` (else the caller's account).
    pub account: Option<String>,
    /// `errorCode` of a refused or failed call.
    pub error_code: Option<String>,
    /// The CloudTrail file the event was read from (`s3://…` or a path).
    pub source_ref: String,
}

/// (De)serializes an `Arc<str>` as a plain string (serde's own impl needs its `rc` feature).
mod shared_str {
    use super::*;

    pub fn serialize<S: Serializer>(value: &Arc<str>, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(value)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Arc<str>, D::Error> {
        String::deserialize(deserializer).map(Arc::from)
    }

    pub mod option {
        use super::*;

        pub fn serialize<S: Serializer>(
            value: &Option<Arc<str>>,
            serializer: S,
        ) -> Result<S::Ok, S::Error> {
            value.as_deref().serialize(serializer)
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(
            deserializer: D,
        ) -> Result<Option<Arc<str>>, D::Error> {
            Ok(Option::<String>::deserialize(deserializer)?.map(Arc::from))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two deliveries compare commands exactly, unless one is a stream: then what the agent's
    /// stream rewrites (tabs, bytes 0x80–0x9F of characters beyond ASCII) is rewritten on both
    /// sides, and a streamed text stays as it is.
    #[test]
    fn test_a_command_compares_as_both_deliveries_carry_it() {
        let transcript = "grep\t-c caf\u{e9} \u{100}5";
        let streamed = as_streamed(transcript);
        assert_eq!(streamed, "grep -c caf\u{e9} \u{fffd}5", "Ā is C4 80: the 80 is deleted");
        assert_eq!(comparable_command(transcript, true), comparable_command(&streamed, true));
        assert_eq!(as_streamed(&streamed), streamed);
        assert_ne!(comparable_command(transcript, false), comparable_command(&streamed, false));
        // Exactly, other text never compares equal; as a stream carries it, characters whose
        // bytes differ only in 0x80–0x9F do (Ѐ and Ё: what the stream itself destroyed).
        for (one, other) in [("rm -rf /home/山田", "rm -rf /home/田中"), ("exämple", "exåmple")]
        {
            for streamed in [false, true] {
                assert_ne!(comparable_command(one, streamed), comparable_command(other, streamed));
            }
        }
        assert_ne!(comparable_command("\u{400}", false), comparable_command("\u{401}", false));
        assert_eq!(comparable_command("\u{400}", true), comparable_command("\u{401}", true));
        // A C1 CSI (0x9B) takes its parameters with it, SS2 and SS3 (0x8E, 0x8F) the next byte.
        assert_eq!(as_streamed("ls\u{9b}1;2mx"), "ls\u{fffd}x");
        assert_eq!(as_streamed("a\u{8e}bc"), "a\u{fffd}c");
    }

    #[test]
    fn test_command_record_serializes_shared_fields_as_strings() {
        let session_id: Arc<str> = Arc::from("alice-0123456789abcdef0");
        let record = CommandRecord {
            session_id: session_id.clone(),
            seq: 0,
            started_at: None,
            time_source: TimeSource::None,
            principal: Some(Arc::from("arn:aws:iam::111122223333:user/alice")),
            run_as: None,
            target: Some(Arc::from("i-0a1b2c3d4e5f67890")),
            region: None,
            account: None,
            cwd: None,
            prompt: "$ ".into(),
            command: "ls".into(),
            output: String::new(),
            output_truncated: false,
            output_bytes: 0,
            raw_offset: 0,
            raw_len: 4,
            redactions: 0,
            confidence: Confidence::High,
            parser_version: 1,
            effective_user: Some(Arc::from("root")),
            shell: None,
            program: None,
        };
        let json = serde_json::to_value(&record).unwrap();
        assert_eq!(json["effective_user"], "root");
        assert_eq!(json["session_id"], "alice-0123456789abcdef0");
        assert_eq!(json["principal"], "arn:aws:iam::111122223333:user/alice");
        assert_eq!(json["run_as"], serde_json::Value::Null);
        let back: CommandRecord = serde_json::from_value(json).unwrap();
        assert_eq!(back, record);
    }
}
