//! sessionlake's read library: what every reader of a lake shares, apart from flags and
//! printing (the `sessionlake` CLI turns flags into these calls and prints what comes back).
//!
//! - [`lake_tables`]: the live set of a trusted snapshot as DataFusion tables (`commands`,
//!   `sessions`, `access`), only the files the signed chain names, each checked against its
//!   committed hash as it is read, the encrypted columns opened through the lake's keys;
//! - [`query`]: a search as a filter: the SQL, every value bound as a parameter;
//! - [`listing`]: a search run as a stream of record batches to a [`listing::RowSink`], in
//!   sort-key order, paged with a [`cursor::Cursor`], big results read window by window;
//! - [`window`]: the windows a long search reads one after the other, so that memory holds
//!   one window of sessions at a time;
//! - [`delivery`]: which delivery of a session a reader reads (`show`, `export`), and what the
//!   other deliveries hold that it lacks ([`delivery::CommandCounts`]);
//! - [`evidence`]: one session's delivery read and checked for an export: its objects, the
//!   transcript opened and matched to its session row, the manifests verified, its rows as
//!   [`evidence::Rows`] of cells;
//! - [`streamed`]: a transcript streamed to CloudWatch Logs replayed as its terminal lines;
//! - [`transcripts`]: the transcript status `sessions` shows: why a session has none;
//! - [`verify`]: the chain walked and every object hashed, each problem a finding that names
//!   the manifest or object;
//! - [`error`]: [`error::ReadError`], its kind for callers that branch on it, its cause in
//!   the chain.
//!
//! ```
//! use sessionlake_read::window::{Range, Span, plan};
//!
//! // Three sessions of 40, 50 and 30 rows, read about 100 rows at a time: two windows.
//! let span = |session: &str, at: i64, rows: u64| Span {
//!     session: session.to_string(),
//!     times: Some((at, at + 10)),
//!     rows,
//!     untimed: false,
//! };
//! let windows = plan(&[span("a", 1, 40), span("b", 2, 50), span("c", 3, 30)], 100);
//! assert_eq!(windows.len(), 2);
//! assert_eq!(windows[1].range, Range::Timed { from: 3, until: None });
//! ```

pub mod cursor;
pub mod delivery;
pub mod error;
pub mod evidence;
pub mod lake_tables;
pub mod listing;
pub mod query;
pub mod streamed;
pub mod transcripts;
pub mod verify;
pub mod window;
