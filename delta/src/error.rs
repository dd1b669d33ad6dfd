//! The errors of the Delta logs.

use crate::Table;

pub type DeltaResult<T> = Result<T, DeltaError>;

/// A Delta log that could not be read or written, naming the table and what was tried.
#[derive(Debug, thiserror::Error)]
pub enum DeltaError {
    /// A lake or table the log cannot be made for.
    #[error("Delta log: {0}")]
    Config(String),
    /// A column or file the log cannot describe.
    #[error("Delta log: {0}")]
    Schema(String),
    /// delta-rs failed (its message, without the backtrace its kernel may append).
    #[error("failed to {what} the {table} table's Delta log: {message}", table = .table.dir())]
    Delta { table: Table, what: &'static str, message: String },
}

impl DeltaError {
    pub(crate) fn config(message: String) -> DeltaError {
        DeltaError::Config(message)
    }

    pub(crate) fn schema(message: String) -> DeltaError {
        DeltaError::Schema(message)
    }

    pub(crate) fn delta(
        table: Table,
        what: &'static str,
        source: deltalake_core::DeltaTableError,
    ) -> DeltaError {
        let text = source.to_string();
        let message = match text.find("\n   0: ") {
            Some(backtrace) => text[..backtrace].to_string(),
            None => text,
        };
        DeltaError::Delta { table, what, message }
    }
}
