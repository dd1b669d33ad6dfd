//! Errors of the lake crate. Each names the object or key it is about.

use std::fmt;

/// What went wrong, for callers that branch on it (retry, quarantine, stop).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LakeErrorKind {
    /// The object or key does not exist.
    NotFound,
    /// A conditional write lost: someone else wrote the name first.
    AlreadyExists,
    /// The store or the key service failed; the call may succeed later.
    Unavailable,
    /// The caller is not allowed (credentials, KMS policy, disabled key).
    Denied,
    /// Bytes do not authenticate or do not match their recorded hash.
    Integrity,
    /// Bytes are not in the expected format.
    Format,
    /// Configuration is wrong (bad URL, missing keyring).
    Config,
    /// Another process holds the lake's writer lease.
    Busy,
}

/// An error from the lake crate.
#[derive(Debug, thiserror::Error)]
pub struct LakeError {
    kind: LakeErrorKind,
    message: String,
    #[source]
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
    /// A write whose outcome is unknown: it may have landed although the call failed.
    outcome_unknown: bool,
}

impl fmt::Display for LakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl LakeError {
    /// Returns a new error of `kind` with a message that names the object.
    pub fn new(kind: LakeErrorKind, message: impl Into<String>) -> Self {
        LakeError { kind, message: message.into(), source: None, outcome_unknown: false }
    }

    /// Marks the error as one of a write that may have landed although the call failed (the
    /// response was lost, and reading the name back failed too).
    pub fn outcome_unknown(mut self) -> Self {
        self.outcome_unknown = true;
        self
    }

    /// Returns whether the failed write may have landed: what it names must not be deleted.
    pub fn is_outcome_unknown(&self) -> bool {
        self.outcome_unknown
    }

    /// Returns whether a commit lost a race: another writer committed on the head it was
    /// planned on. The writer re-reads the chain and plans again.
    pub fn is_conflict(&self) -> bool {
        self.kind == LakeErrorKind::AlreadyExists && !self.outcome_unknown
    }

    /// Attaches the underlying cause.
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    /// Returns the category of the error.
    pub fn kind(&self) -> LakeErrorKind {
        self.kind
    }

    /// Returns whether retrying the same call may succeed.
    pub fn is_retryable(&self) -> bool {
        self.kind == LakeErrorKind::Unavailable
    }

    pub(crate) fn integrity(message: impl Into<String>) -> Self {
        LakeError::new(LakeErrorKind::Integrity, message)
    }

    pub(crate) fn format(message: impl Into<String>) -> Self {
        LakeError::new(LakeErrorKind::Format, message)
    }

    pub(crate) fn config(message: impl Into<String>) -> Self {
        LakeError::new(LakeErrorKind::Config, message)
    }

    /// Classifies an object-store error about `path`.
    pub(crate) fn store(action: &str, path: &str, error: object_store::Error) -> Self {
        let kind = match &error {
            object_store::Error::NotFound { .. } => LakeErrorKind::NotFound,
            object_store::Error::AlreadyExists { .. }
            | object_store::Error::Precondition { .. } => LakeErrorKind::AlreadyExists,
            object_store::Error::PermissionDenied { .. }
            | object_store::Error::Unauthenticated { .. } => LakeErrorKind::Denied,
            _ => LakeErrorKind::Unavailable,
        };
        LakeError::new(kind, format!("failed to {action} {path}: {error}")).with_source(error)
    }
}

/// Result of the lake crate.
pub type LakeResult<T> = Result<T, LakeError>;
