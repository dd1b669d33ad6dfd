//! Benchmarks of sessionlake against the tools a user would pick instead (issue 8).
//!
//! - [`workload`]: a generator of realistic Session Manager sessions at any scale, from the
//!   recorded corpus, in every form ingest reads from a local folder, deterministic from a seed.
//! - [`chain`]: what opening a lake costs as its history grows, with and without a checkpoint.
//! - [`run`]: the side-by-side run: the real `sessionlake-ingest` against a floor of zstd +
//!   AES-256-GCM over the same bytes; `sessionlake search` against DuckDB (on a plaintext copy
//!   of the lake in the same layout) and `grep -E` / `rg` over the transcripts; peak memory;
//!   lake size against raw bytes. Medians of several interleaved runs, printed as Markdown.
//!
//! ```sh
//! sessionlake-bench generate --scale small --out /tmp/wl
//! sessionlake-bench run --workload /tmp/wl --work /tmp/wl-run --runs 3
//! ```
//!
//! BENCHMARKS.md has the figures and the commands that made them.

pub mod chain;
pub mod measure;
pub mod merge;
pub mod run;
pub mod workload;
