//! Errors of the lake crate. Each names the object or key it is about.
//!
//! Also what the errors of the libraries above it (read, keep) are made of: a kind of their own
//! ([`ErrorKind`]) and a [`Detail`], a message over its cause or a cause passed on as it is;
//! [`Context`], [`bail!`](crate::bail) and [`ensure!`](crate::ensure) make them.

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

/// A cause of any type, as the libraries keep one under their errors.
pub type Cause = Box<dyn std::error::Error + Send + Sync>;

/// What an error of the read or keep library says beyond its kind: a message that names the
/// object over its cause (as `anyhow`'s `.context` puts it), or a cause passed on as it is,
/// whose message and chain are the error's.
#[derive(Debug, thiserror::Error)]
pub enum Detail {
    /// What failed, naming the object, over its cause if it has one.
    #[error("{message}")]
    Message {
        message: String,
        #[source]
        source: Option<Cause>,
    },
    /// A cause passed on as it is.
    #[error(transparent)]
    Passed(Cause),
}

impl Detail {
    /// Returns the detail of `message` over `source`.
    pub fn message(message: impl Into<String>, source: Option<Cause>) -> Detail {
        Detail::Message { message: message.into(), source }
    }

    /// Returns the error under the message, or the one passed on: for one passed on the only
    /// way to reach it (a lake error, a printer's `io::Error`), since the chain of `source()`
    /// starts below it.
    pub fn cause(&self) -> Option<&(dyn std::error::Error + Send + Sync + 'static)> {
        match self {
            Detail::Message { source, .. } => source.as_deref(),
            Detail::Passed(cause) => Some(cause.as_ref()),
        }
    }

    /// Writes the message; for `{:#}`, each cause after it, `: ` between them, as `anyhow`
    /// prints a chain (so that the text is the same wherever the error is printed).
    pub fn write(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use std::error::Error as _;
        write!(f, "{self}")?;
        if f.alternate() {
            let mut cause = self.source();
            while let Some(error) = cause {
                write!(f, ": {error}")?;
                cause = error.source();
            }
        }
        Ok(())
    }
}

/// The kind of a library error made of a kind and a [`Detail`]: how [`Context`] and
/// [`bail!`](crate::bail) make one.
pub trait ErrorKind: Copy {
    /// The error.
    type Error;

    /// Returns the error of this kind with `detail`.
    fn error(self, detail: Detail) -> Self::Error;

    /// Returns the error of this kind with `message`, which names the object.
    fn message(self, message: impl Into<String>) -> Self::Error {
        self.error(Detail::message(message, None))
    }

    /// Returns `cause` passed on as the error of this kind: its message and chain are the
    /// error's.
    fn passing(self, cause: impl Into<Cause>) -> Self::Error {
        self.error(Detail::Passed(cause.into()))
    }
}

/// Names what failed over an error or a missing value, as an error of a kind.
pub trait Context<T>: Sized {
    /// Returns the error as one of `kind`, `message()` over it.
    fn with_context_kind<K: ErrorKind>(
        self,
        kind: K,
        message: impl FnOnce() -> String,
    ) -> Result<T, K::Error>;

    /// Returns the error as one of `kind`, `message` over it.
    fn context_kind<K: ErrorKind>(self, kind: K, message: &str) -> Result<T, K::Error> {
        self.with_context_kind(kind, || message.to_string())
    }
}

impl<T, E: Into<Cause>> Context<T> for Result<T, E> {
    fn with_context_kind<K: ErrorKind>(
        self,
        kind: K,
        message: impl FnOnce() -> String,
    ) -> Result<T, K::Error> {
        self.map_err(|error| kind.error(Detail::message(message(), Some(error.into()))))
    }
}

impl<T> Context<T> for Option<T> {
    fn with_context_kind<K: ErrorKind>(
        self,
        kind: K,
        message: impl FnOnce() -> String,
    ) -> Result<T, K::Error> {
        self.ok_or_else(|| kind.message(message()))
    }
}

/// Returns early with the error of a kind ([`ErrorKind`]) and a formatted message:
/// `bail!(KeepErrorKind::NotFound, "no hold {id}")`.
#[macro_export]
macro_rules! bail {
    ($kind:expr, $($message:tt)+) => {
        return Err($crate::error::ErrorKind::message($kind, format!($($message)+)))
    };
}

/// Returns early with the error of a kind ([`ErrorKind`]) unless the condition holds:
/// `ensure!(!reason.is_empty(), KeepErrorKind::Invalid, "--reason is empty")`.
#[macro_export]
macro_rules! ensure {
    ($condition:expr, $kind:expr, $($message:tt)+) => {
        if !$condition {
            $crate::bail!($kind, $($message)+);
        }
    };
}
