//! sessionlake's table I/O: the one home of the lake's Parquet layout.
//!
//! The parser (`sessionlake-indexer`) turns bytes into records and knows nothing of files;
//! writers (ingest, compaction, retention, shred, rekey) turn records into files here, and
//! read back the rows they must carry over:
//!
//! - [`parquet_io`]: command, session and access records to and from Parquet — sorted rows,
//!   statistics, bloom filters on plaintext columns, the sensitive columns encrypted under one
//!   data key per file;
//! - [`merge`]: several files of one table merged into one compacted file, without some
//!   sessions (compaction, retention, shred, a replaced version), and [`merge::LakeFiles`], the
//!   same over a lake's committed objects.
//!
//! ```
//! use sessionlake_schemas::{SessionRecord, SessionSource, SessionStatus};
//! use sessionlake_tables::parquet_io::{read_sessions, write_sessions};
//!
//! let record = SessionRecord {
//!     session_id: "alice-0123456789abcdef0".into(),
//!     principal: Some("arn:aws:iam::123456789012:user/alice".into()),
//!     run_as: Some("ssm-user".into()),
//!     target: Some("i-0abc".into()),
//!     region: None,
//!     account: None,
//!     started_at: Some(1_773_480_600_000_000),
//!     ended_at: None,
//!     command_count: 2,
//!     source: SessionSource::S3,
//!     source_ref: "s3://logs/alice-0123456789abcdef0.log".into(),
//!     raw_object: "raw/alice-0123456789abcdef0.zst".into(),
//!     raw_sha256: "00".repeat(32),
//!     key_id: "keyring".into(),
//!     ingested_at: 1_773_480_700_000_000,
//!     status: SessionStatus::Complete,
//!     parser_version: 1,
//!     understanding: None,
//! };
//! let file = write_sessions(&[record]).unwrap();
//! let stored = read_sessions(file.into(), "sessions/example.parquet").unwrap();
//! assert_eq!(stored[0].context.session_id, "alice-0123456789abcdef0");
//! assert_eq!(stored[0].context.run_as.as_deref(), Some("ssm-user"));
//! ```

pub mod merge;
pub mod parquet_io;
