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
//!
//! The generator as a library: a workload is the same bytes for the same seed, so two
//! generations of a few sessions from the corpus match file for file.
//!
//! ```
//! use std::path::Path;
//!
//! use sessionlake_bench::workload::{Material, WorkloadConfig, generate, read_summary};
//!
//! let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../corpus");
//! let material = Material::from_corpus(&corpus)?;
//! // The test suite's scale, cut to 4 sessions.
//! let config = WorkloadConfig { sessions: 4, ..WorkloadConfig::scale("small", 7)? };
//! let out = std::env::temp_dir().join(format!("sessionlake-bench-doc-{}", std::process::id()));
//! let (first, second) = (out.join("first"), out.join("second"));
//! let summary = generate(&material, &config, &first)?;
//! generate(&material, &config, &second)?;
//! assert_eq!(summary.session_list.len(), 4);
//! assert_eq!(read_summary(&second)?.commands, summary.commands);
//! for session in &summary.session_list {
//!     let file = |dir: &Path| std::fs::read(dir.join(&session.file));
//!     assert!(file(&first)? == file(&second)?, "{} differs", session.file);
//! }
//! std::fs::remove_dir_all(&out)?;
//! # Ok::<(), anyhow::Error>(())
//! ```

pub mod chain;
pub mod measure;
pub mod merge;
pub mod run;
pub mod workload;
