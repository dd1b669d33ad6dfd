//! How many malloc arenas a sessionlake process uses.
//!
//! glibc's allocator gives a thread that finds the arenas in use busy an arena of its own (up
//! to eight per core) and keeps what is freed in it for that arena's next allocations. A
//! sessionlake process runs many threads that allocate (tokio's workers and its blocking pool,
//! where `object_store` reads and writes every local file, Parquet and the sealing threads), so
//! its resident memory grows well past what it holds: `compact` on the 1 GiB workload peaks at
//! 254 MiB resident for a heap that peaks at 96 MB. With two arenas it peaks at 153 MiB, its
//! time unchanged (BENCHMARKS.md, "Two malloc arenas").
//!
//! glibc reads the bound (`MALLOC_ARENA_MAX`) from the environment when the process starts,
//! and the workspace forbids the `unsafe` a call to `mallopt` would take, so
//! [`bound_malloc_arenas`] starts the process again over itself (`exec`: the same process id,
//! arguments and open files) with the variable set. A variable the caller set is kept.

/// The environment variable glibc reads for the most arenas a process makes.
pub const ARENA_MAX_VAR: &str = "MALLOC_ARENA_MAX";

/// The arenas a sessionlake process makes unless its environment names another bound.
pub const ARENA_MAX: &str = "2";

/// Makes this process use at most [`ARENA_MAX`] malloc arenas, unless [`ARENA_MAX_VAR`] is
/// set already: replaces the process image with its own binary, the same arguments and the
/// variable set. Call it first thing in `main`, before any thread starts. Returns only when
/// nothing was to be done, or when the `exec` failed (the process then goes on as it is: a
/// bound on memory is worth a restart, not a refusal to run). A no-op where the allocator is
/// not glibc's.
pub fn bound_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        use std::os::unix::process::CommandExt as _;
        if std::env::var_os(ARENA_MAX_VAR).is_some() {
            return;
        }
        let mut args = std::env::args_os();
        // `/proc/self/exe` is the binary this process runs, even if its file was replaced or
        // deleted since (an upgrade): never another program.
        let mut command = std::process::Command::new("/proc/self/exe");
        if let Some(arg0) = args.next() {
            command.arg0(arg0);
        }
        // Returns only on failure.
        let _failed = command.args(args).env(ARENA_MAX_VAR, ARENA_MAX).exec();
    }
}
