//! Errors of the read library. Each names what failed; the cause underneath (the query engine,
//! the lake, the caller's row sink) stays in the chain as its source, so that `{err:#}` says
//! what failed and why, and a caller can find the cause's own type (a [`LakeError`], an
//! `io::Error`) where it looks for one.

use std::error::Error as StdError;
use std::fmt;

use sessionlake_storage::LakeError;
pub(crate) use sessionlake_storage::error::Context;
pub(crate) use sessionlake_storage::error::ErrorKind;
use sessionlake_storage::error::{Cause, Detail};

/// What went wrong, for callers that branch on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReadErrorKind {
    /// The query engine failed: planning, reading the tables, the memory limit.
    Query,
    /// A result or a file is not shaped as expected (a column missing, or of another type).
    Format,
    /// A page token (`--after`) that is not a cursor of this listing.
    Cursor,
    /// The lake underneath failed: a store, key or chain error ([`ReadError::lake`]).
    Lake,
    /// The caller's [`RowSink`](crate::listing::RowSink) failed ([`ReadError::cause`]).
    Sink,
    /// The request cannot be done as given: options that need what the lake or the call lacks.
    Invalid,
    /// What was asked for is not in the lake's trusted live set: a session, a delivery of it,
    /// one of its objects (or it was removed, by the commit the message names).
    NotFound,
    /// What the lake holds disagrees with what its signed chain committed: a transcript
    /// whose hash is not the one its session row names, a manifest whose signature fails.
    Integrity,
}

impl ErrorKind for ReadErrorKind {
    type Error = ReadError;

    fn error(self, detail: Detail) -> ReadError {
        ReadError { kind: self, detail }
    }
}

/// An error of the read library: its kind, and a message over a cause, or a cause passed on as
/// it is (its message and chain are the error's).
#[derive(Debug)]
pub struct ReadError {
    kind: ReadErrorKind,
    detail: Detail,
}

/// `{err}` is the message; `{err:#}` adds each cause, as anyhow prints a chain.
impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.detail.write(f)
    }
}

impl StdError for ReadError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.detail.source()
    }
}

impl ReadError {
    /// Returns the failure of a [`RowSink`](crate::listing::RowSink), passed on as it is.
    pub fn sink(cause: impl Into<Cause>) -> Self {
        ReadErrorKind::Sink.passing(cause)
    }

    /// Returns the category of the error.
    pub fn kind(&self) -> ReadErrorKind {
        self.kind
    }

    /// Returns the error under the message, or the one passed on as it is (a lake error, the
    /// row sink's `io::Error`): for one passed on the only way to reach it, since the chain of
    /// `source()` starts below it.
    pub fn cause(&self) -> Option<&(dyn StdError + Send + Sync + 'static)> {
        self.detail.cause()
    }

    /// Returns the lake error underneath, if the lake failed.
    pub fn lake(&self) -> Option<&LakeError> {
        self.cause().and_then(|cause| cause.downcast_ref::<LakeError>())
    }
}

impl From<LakeError> for ReadError {
    fn from(error: LakeError) -> Self {
        ReadErrorKind::Lake.passing(error)
    }
}

impl From<datafusion::error::DataFusionError> for ReadError {
    fn from(error: datafusion::error::DataFusionError) -> Self {
        ReadErrorKind::Query.passing(error)
    }
}

/// Result of the read library.
pub type ReadResult<T> = Result<T, ReadError>;

#[cfg(test)]
mod tests {
    use super::*;

    /// A message over a cause prints both (as `.context` did); a cause passed on prints only
    /// itself, and either way the lake error is found.
    #[test]
    fn test_chain_reads_as_before_and_finds_the_lake_error() {
        let lake = || LakeError::new(sessionlake_storage::LakeErrorKind::NotFound, "no x");
        let wrapped = Err::<(), _>(lake()).context_kind(ReadErrorKind::Lake, "failed");
        let wrapped = anyhow::Error::from(wrapped.expect_err("wrapped"));
        assert_eq!(format!("{wrapped:#}"), "failed: no x");
        assert!(wrapped.chain().any(|cause| cause.downcast_ref::<LakeError>().is_some()));
        let passed = ReadError::from(lake());
        assert_eq!((passed.kind(), passed.lake().is_some()), (ReadErrorKind::Lake, true));
        assert_eq!(format!("{:#}", anyhow::Error::from(passed)), "no x");
    }
}
