//! Errors of the keep library. Each names what failed; the cause underneath (the lake, a
//! table file, a policy's TOML) stays in the chain as its source, so that `{err:#}` says what
//! failed and why, and a caller can find the cause's own type (a [`LakeError`]) where it looks
//! for one.

use std::error::Error as StdError;
use std::fmt;

pub(crate) use sessionlake_storage::error::Context;
use sessionlake_storage::error::Detail;
pub(crate) use sessionlake_storage::error::ErrorKind;
use sessionlake_storage::{LakeError, LakeErrorKind};

/// What went wrong, for callers that branch on it (plan again, wait, ask the operator).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeepErrorKind {
    /// The request is wrong as given: a bad policy or pattern, an empty `--reason`, no key
    /// provider for new data keys.
    Invalid,
    /// What the request names is not in the lake: no such session, no such hold in force.
    NotFound,
    /// A legal hold keeps what the request would destroy.
    Held,
    /// Another writer committed first and the lake kept changing, or removed what the commit
    /// removes: read the lake again and plan again.
    Conflict,
    /// Another process holds the lake's writer lease, or this job lost it.
    Busy,
    /// The chain or an object is not what was committed: an untrusted manifest, a key record
    /// that is not the committed one (run `sessionlake verify`).
    Integrity,
    /// An object is not in the expected format: a hold, a key record, a table file.
    Format,
    /// The lake underneath failed: a store or key error, a table file that could not be
    /// written ([`KeepError::lake`] holds the lake error, when there is one).
    Lake,
}

impl KeepErrorKind {
    /// Returns the kind of `error` for a keep job: a lost race is a conflict, a held lease
    /// busy, a failed check an integrity error, anything else the lake's failure.
    pub fn of_lake(error: &LakeError) -> KeepErrorKind {
        match error.kind() {
            _ if error.is_conflict() => KeepErrorKind::Conflict,
            LakeErrorKind::Busy => KeepErrorKind::Busy,
            LakeErrorKind::Integrity => KeepErrorKind::Integrity,
            _ => KeepErrorKind::Lake,
        }
    }
}

impl ErrorKind for KeepErrorKind {
    type Error = KeepError;

    fn error(self, detail: Detail) -> KeepError {
        KeepError { kind: self, detail }
    }
}

/// An error of the keep library: its kind, and a message over a cause, or a cause passed on as
/// it is (its message and chain are the error's).
#[derive(Debug)]
pub struct KeepError {
    kind: KeepErrorKind,
    detail: Detail,
}

/// `{err}` is the message; `{err:#}` adds each cause, as anyhow prints a chain.
impl fmt::Display for KeepError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.detail.write(f)
    }
}

impl StdError for KeepError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.detail.source()
    }
}

impl KeepError {
    /// Returns the category of the error.
    pub fn kind(&self) -> KeepErrorKind {
        self.kind
    }

    /// Returns the lake error underneath, if the lake failed (one passed on as it is is not in
    /// the chain of `source()`, which starts below it).
    pub fn lake(&self) -> Option<&LakeError> {
        self.detail.cause().and_then(|cause| cause.downcast_ref::<LakeError>())
    }
}

impl From<LakeError> for KeepError {
    fn from(error: LakeError) -> Self {
        KeepErrorKind::of_lake(&error).passing(error)
    }
}

impl From<sessionlake_tables::parquet_io::ReadError> for KeepError {
    fn from(error: sessionlake_tables::parquet_io::ReadError) -> Self {
        KeepErrorKind::Format.passing(error)
    }
}

/// Result of the keep library.
pub type KeepResult<T> = Result<T, KeepError>;

#[cfg(test)]
mod tests {
    use super::*;

    /// A message over a cause prints both (as `.context` did); a cause passed on prints only
    /// itself, and either way the lake error is found; a lost race is a conflict.
    #[test]
    fn test_chain_reads_as_before_and_finds_the_lake_error() {
        let lake = |kind| LakeError::new(kind, "manifest/1.json exists");
        let failed = Err::<(), _>(lake(LakeErrorKind::Unavailable));
        let wrapped = failed.context_kind(KeepErrorKind::Lake, "failed to commit");
        let wrapped = wrapped.expect_err("wrapped");
        assert_eq!(format!("{wrapped:#}"), "failed to commit: manifest/1.json exists");
        let wrapped = anyhow::Error::from(wrapped);
        assert_eq!(format!("{wrapped:#}"), "failed to commit: manifest/1.json exists");
        assert!(wrapped.chain().any(|cause| cause.downcast_ref::<LakeError>().is_some()));
        let passed = KeepError::from(lake(LakeErrorKind::AlreadyExists));
        assert_eq!(passed.kind(), KeepErrorKind::Conflict);
        assert!(passed.lake().is_some_and(LakeError::is_conflict));
        assert_eq!(format!("{:#}", anyhow::Error::from(passed)), "manifest/1.json exists");
    }
}
