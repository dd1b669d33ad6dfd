//! The raw form of a session streamed to CloudWatch Logs, as the lake stores it: one
//! [`LogEvent`] per line (JSON Lines of `{"timestamp","message"}`), each message the agent's
//! [`StreamMessage`] with the terminal lines in `sessionData` (section 5.1 of the formats doc).
//! The indexer parses these; readers replay them.

use serde::Deserialize;

/// One CloudWatch Logs event as the raw object stores it (one JSON object per line).
#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq, Eq)]
pub struct LogEvent {
    /// Event time in ms: upload time for uploaded transcripts (the parser's
    /// `input::event_micros` says which time a line carries).
    pub timestamp: i64,
    /// The event's text.
    pub message: String,
}

/// The JSON object the agent streams into each CloudWatch event (section 5.1 of the formats doc).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct StreamMessage {
    /// Batch time, RFC 3339 to the second.
    #[serde(default)]
    pub event_time: Option<String>,
    /// Region of the agent.
    #[serde(default)]
    pub aws_region: Option<String>,
    /// Target.
    #[serde(default)]
    pub target: Option<StreamTarget>,
    /// Who started the session.
    #[serde(default)]
    pub user_identity: Option<StreamIdentity>,
    /// OS user of the shell; empty when RunAs was skipped.
    #[serde(default)]
    pub run_as_user: Option<String>,
    /// Session id.
    #[serde(default)]
    pub session_id: Option<String>,
    /// Complete terminal lines, escapes stripped.
    pub session_data: Vec<String>,
}

/// `target` of a streamed message.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct StreamTarget {
    /// Instance id.
    pub id: Option<String>,
}

/// `userIdentity` of a streamed message.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct StreamIdentity {
    /// IAM ARN.
    pub arn: Option<String>,
}
