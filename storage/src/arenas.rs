//! How many malloc arenas a sessionlake process uses.
//!
//! glibc's allocator gives a thread that finds the arenas in use busy an arena of its own (up
//! to eight per core) and keeps what is freed in it for that arena's next allocations. A
//! sessionlake process runs many threads that allocate (tokio's workers and its blocking pool,
//! where `object_store` reads and writes every local file, Parquet and the sealing threads), so
//! its resident memory grows well past what it holds: `compact` on the 1 GiB workload peaked at
//! 250 MiB resident for a heap that peaks at 96 MB, 154 MiB with two arenas, its time unchanged
//! (BENCHMARKS.md, "Two malloc arenas"). The ingest binaries bound their arenas so;
//! `sessionlake` runs on jemalloc, built with its own bound (cli/src/main.rs).
//!
//! glibc reads the bound (`MALLOC_ARENA_MAX`) from the environment when the process starts,
//! and the workspace forbids the `unsafe` a call to `mallopt` would take, so
//! [`bound_malloc_arenas`] starts the process again over itself (`exec`: the same process id,
//! name, arguments and open files; Rust's `exec` clears the signal mask) with the variable set.
//! A variable the caller set is kept. It does so at most once ([`REEXEC_MARK`]: glibc drops the
//! variable from a setuid process's environment, which would otherwise start it again and
//! again), and only when the binary the kernel ran is the program itself (not a loader such as
//! `ld.so`, or valgrind, that runs it).

/// The environment variable glibc reads for the most arenas a process makes.
pub const ARENA_MAX_VAR: &str = "MALLOC_ARENA_MAX";

/// The arenas a sessionlake process makes unless its environment names another bound.
pub const ARENA_MAX: &str = "2";

/// Set in the environment of the process started over itself: it never starts over again.
pub const REEXEC_MARK: &str = "SESSIONLAKE_ARENAS_BOUND";

/// Makes this process use at most [`ARENA_MAX`] malloc arenas, unless [`ARENA_MAX_VAR`] is
/// set already: replaces the process image with its own binary, the same arguments and the
/// variable set. Call it first thing in `main`, before any thread starts. Returns when nothing
/// is to be done, when this process is already the one started over ([`REEXEC_MARK`]), when
/// the binary is run through another program (`/proc/self/exe` is not named as `argv[0]` is),
/// or when the `exec` failed: the process then goes on as it is (a bound on memory is worth a
/// restart, not a refusal to run). A no-op where the allocator is not glibc's.
pub fn bound_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        use std::os::unix::process::CommandExt as _;
        if std::env::var_os(ARENA_MAX_VAR).is_some() || std::env::var_os(REEXEC_MARK).is_some() {
            return;
        }
        let mut args = std::env::args_os();
        let Some(arg0) = args.next() else { return };
        // The path of the binary the kernel runs (a deleted or replaced one reads
        // "… (deleted)", and is not named as `argv[0]`): exec'd by its path, the process keeps
        // its name (`ps`, `pgrep`, journald); `/proc/self/exe` itself would rename it `exe`.
        let Ok(exe) = std::fs::read_link("/proc/self/exe") else { return };
        if exe.file_name() != std::path::Path::new(&arg0).file_name() {
            return;
        }
        let mut command = std::process::Command::new(exe);
        command.arg0(arg0).args(args).env(ARENA_MAX_VAR, ARENA_MAX).env(REEXEC_MARK, "1");
        // Returns only on failure.
        let _failed = command.exec();
    }
}
