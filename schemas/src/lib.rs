//! The formats of a sessionlake lake: record types, Arrow schemas, column names, lake paths,
//! the manifest and the raw-object envelope header. No I/O lives here.
//!
//! Writers (`sessionlake-ingest`, `sessionlake-indexer`) and readers (`sessionlake`) meet only in
//! this crate and in `sessionlake-lake`, so anything both sides must agree on is defined here once.
//!
//! ```
//! use sessionlake_schemas::{commands_schema, columns};
//! let schema = commands_schema();
//! assert!(schema.field_with_name(columns::COMMAND).is_ok());
//! ```
#![deny(missing_docs)]

pub mod columns;
pub mod envelope;
pub mod manifest;
pub mod paths;
mod records;
mod schema;
pub mod session_id;

pub use records::{
    AccessKind, AccessRecord, CommandRecord, Confidence, KIND_REPL, KIND_SHELL, SessionConfidence,
    SessionRecord, SessionSource, SessionStatus, TimeSource, Understanding,
};
pub use schema::{
    ACCESS_ENCRYPTED_COLUMNS, ADDED_COLUMNS, ENCRYPTED_COLUMNS, SCHEMA_VERSION, SCHEMA_VERSION_KEY,
    access_schema, commands_schema, sessions_schema, validate_schema,
};

/// Athena / Trino DDL for the `commands`, `sessions` and `access` tables, with `dt` partition
/// projection.
pub const ATHENA_DDL: &str = include_str!("../ddl/athena.sql");
