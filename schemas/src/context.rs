//! What is known about a session from outside its transcript.

/// What is known about a session from outside its transcript (CloudTrail, the source).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionContext {
    /// Session id.
    pub session_id: String,
    /// Who started it.
    pub principal: Option<String>,
    /// OS user.
    pub run_as: Option<String>,
    /// Managed node.
    pub target: Option<String>,
    /// AWS region.
    pub region: Option<String>,
    /// AWS account.
    pub account: Option<String>,
    /// Start time from CloudTrail `StartSession` (µs).
    pub started_at: Option<i64>,
}

impl SessionContext {
    /// Returns a context that knows only the session id.
    pub fn new(session_id: impl Into<String>) -> Self {
        SessionContext { session_id: session_id.into(), ..Default::default() }
    }
}
