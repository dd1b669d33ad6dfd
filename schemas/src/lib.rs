//! The formats of a sessionlake lake: record types, Arrow schemas, column names, lake paths,
//! the manifest and the raw-object envelope header. No I/O lives here.
//!
//! Every other crate of the workspace depends on this one: the parser (`sessionlake-indexer`)
//! makes its records, the writers (`sessionlake-ingest`, `sessionlake-keep`, through
//! `sessionlake-tables` and `sessionlake-storage`) store them, and the readers
//! (`sessionlake-read`, the `sessionlake` CLI) read them back. Anything both sides must agree on
//! is defined here once.
//!
//! ```
//! use sessionlake_schemas::{commands_schema, columns};
//! let schema = commands_schema();
//! assert!(schema.field_with_name(columns::COMMAND).is_ok());
//! ```
#![deny(missing_docs)]

pub mod columns;
mod context;
pub mod envelope;
pub mod manifest;
pub mod paths;
mod records;
mod schema;
pub mod session_id;
pub mod streamed;

pub use context::SessionContext;
pub use records::{
    AccessKind, AccessRecord, CommandRecord, Confidence, KIND_REPL, KIND_SHELL,
    NAME_MISMATCH_REASON, SessionConfidence, SessionRecord, SessionSource, SessionStatus,
    TimeSource, Understanding, as_streamed, comparable_command,
};
pub use schema::{
    ACCESS_ENCRYPTED_COLUMNS, ADDED_COLUMNS, ENCRYPTED_COLUMNS, SCHEMA_VERSION, SCHEMA_VERSION_KEY,
    Table, access_schema, commands_schema, sessions_schema, validate_schema,
};

/// Athena / Trino DDL for the `commands`, `sessions` and `access` tables, with `dt` partition
/// projection.
pub const ATHENA_DDL: &str = include_str!("../ddl/athena.sql");

/// Describes why bytes are not the JSON expected, by kind and position only: serde_json's own
/// message quotes the offending value (`invalid type: string "…"`), which in a transcript or a
/// log event is the command and output text that must never reach a log, an error or the
/// manifest.
pub fn json_error_position(error: &serde_json::Error) -> String {
    let what = match error.classify() {
        serde_json::error::Category::Io => "unreadable",
        serde_json::error::Category::Syntax => "not valid JSON",
        serde_json::error::Category::Data => "a value of the wrong type or a missing field",
        serde_json::error::Category::Eof => "cut short",
    };
    format!("{what} at line {} column {}", error.line(), error.column())
}

#[cfg(test)]
mod tests {
    #[test]
    fn test_a_json_error_is_described_without_the_value() {
        let error = serde_json::from_str::<Vec<u64>>(r#"[1, "rm -rf /secret"]"#).expect_err("bad");
        assert!(error.to_string().contains("rm -rf /secret"), "serde_json quotes it: {error}");
        let described = super::json_error_position(&error);
        assert_eq!(described, "a value of the wrong type or a missing field at line 1 column 20");
        let error = serde_json::from_str::<Vec<u64>>("[1, ").expect_err("cut");
        assert_eq!(super::json_error_position(&error), "cut short at line 1 column 4");
    }
}
