//! What the allocator of sessionlake's binaries runs with.
//!
//! `sessionlake`, `sessionlake-ingest` and the Lambda function run on jemalloc (each declares
//! `tikv_jemallocator::Jemalloc` its `#[global_allocator]`), built with one arena that gives
//! freed pages back within a second: `JEMALLOC_SYS_WITH_MALLOC_CONF` in `.cargo/config.toml`,
//! which a process's `_RJEM_MALLOC_CONF` overrides. glibc's malloc gave each busy thread an arena
//! of its own and kept what was freed in it (a compaction at 10 M commands peaked at 568–579 MiB
//! with two arenas for a 397 MB heap, 506–513 MiB with a fixed mmap threshold); bounding its
//! arenas took an `exec` of the process over itself, since the workspace forbids the `unsafe` of
//! `mallopt`. On jemalloc (and with `ObjectEntry`'s key boxed) that compaction peaks at 447–450
//! MiB for less CPU, ingest takes 5–9% less CPU for up to 9 MiB more at its peak, and each
//! process starts once (BENCHMARKS.md, "jemalloc for `sessionlake`").

/// Describes the allocator as jemalloc itself reports it: its arenas, the settings it was built
/// with, and the bytes it has handed out so far (none if it is not the process's allocator).
pub fn describe() -> String {
    use tikv_jemalloc_ctl::{config, epoch, opt, stats};
    // The statistics are a snapshot taken at the last epoch.
    let allocated = epoch::advance().and_then(|_| stats::allocated::read());
    format!(
        "jemalloc, {:?} arenas, malloc_conf {:?}, {:?} bytes allocated",
        opt::narenas::read(),
        // Read with its terminating NUL.
        config::malloc_conf::read().map(|conf| conf.trim_end_matches('\0')),
        allocated
    )
}

/// Logs [`describe`] at debug level (a binary calls it once its logging is set up; the macro
/// calls `describe` only when the line is logged).
pub fn log() {
    tracing::debug!("allocator: {}", describe());
}
