//! `sessionlake-bench`: generate a workload, or run the benchmark on one (BENCHMARKS.md).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use sessionlake_bench::chain::{ChainOptions, open_chain};
use sessionlake_bench::merge::{MergeOptions, run_merge, run_write};
use sessionlake_bench::run::{RunOptions, run};
use sessionlake_bench::workload::{Material, WorkloadConfig, generate};

#[derive(Parser)]
#[command(name = "sessionlake-bench", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Sessions of generated commands, one table file each.
#[derive(clap::Args)]
struct SessionFiles {
    /// Sessions, one file each.
    #[arg(long, default_value_t = 4000)]
    sessions: usize,
    /// Commands per session.
    #[arg(long, default_value_t = 250)]
    commands: usize,
    /// Bytes of output per command.
    #[arg(long, default_value_t = 400)]
    output_bytes: usize,
    /// Runs (medians).
    #[arg(long, default_value_t = 3)]
    runs: usize,
}

impl From<SessionFiles> for MergeOptions {
    fn from(files: SessionFiles) -> Self {
        let SessionFiles { sessions, commands, output_bytes, runs } = files;
        MergeOptions { sessions, commands, output_bytes, runs }
    }
}

#[derive(Subcommand)]
enum Command {
    /// Writes a workload: S3 transcripts, CloudWatch upload and stream files, CloudTrail.
    Generate {
        /// small, medium, 1g, 10m or single (one 1 GiB session).
        #[arg(long, default_value = "small")]
        scale: String,
        /// Seed: the same seed and scale give the same bytes.
        #[arg(long, default_value_t = 8)]
        seed: u64,
        /// Override the scale's number of sessions.
        #[arg(long)]
        sessions: Option<usize>,
        /// Override the scale's mean commands per session.
        #[arg(long)]
        commands_per_session: Option<usize>,
        /// Override the scale's mean output bytes per command.
        #[arg(long)]
        output_bytes: Option<usize>,
        /// Override the share of edited commands (0 to 1).
        #[arg(long)]
        editing_share: Option<f64>,
        /// Corpus folder.
        #[arg(long, default_value = "corpus")]
        corpus: PathBuf,
        /// Folder to write (new or empty).
        #[arg(long)]
        out: PathBuf,
    },
    /// Measures ingest, queries, memory and size on a generated workload.
    Run {
        /// The workload folder.
        #[arg(long)]
        workload: PathBuf,
        /// Scratch folder (lakes, the plaintext copy, report.json); emptied first.
        #[arg(long)]
        work: PathBuf,
        /// Folder of the release binaries.
        #[arg(long, default_value = "target/release")]
        bin_dir: PathBuf,
        /// Python with duckdb.
        #[arg(long, default_value = ".venv/bin/python")]
        python: PathBuf,
        /// Runs per figure (medians).
        #[arg(long, default_value_t = 5)]
        runs: usize,
        /// A workload of one large session, for ingest's peak memory.
        #[arg(long)]
        single: Option<PathBuf>,
    },
    /// Measures merging one commands file per session into one compacted file: time, and the
    /// merge's peak memory above its inputs.
    Merge(#[command(flatten)] SessionFiles),
    /// Measures ingest's table writes of a session version: its `commands` file (encrypted)
    /// and its `sessions` file, per session; time per round and bytes.
    Write(#[command(flatten)] SessionFiles),
    /// Measures opening a lake of N commits, replaying the chain and from a checkpoint.
    OpenChain {
        /// Chain lengths, comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "1000,10000,100000")]
        commits: Vec<u64>,
        /// Scratch folder (emptied per length).
        #[arg(long)]
        work: PathBuf,
        /// Runs per figure (medians).
        #[arg(long, default_value_t = 5)]
        runs: usize,
    },
}

fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Command::Generate {
            scale,
            seed,
            sessions,
            commands_per_session,
            output_bytes,
            editing_share,
            corpus,
            out,
        } => WorkloadConfig::scale(&scale, seed).and_then(|mut config| {
            config.sessions = sessions.unwrap_or(config.sessions);
            config.commands_per_session =
                commands_per_session.unwrap_or(config.commands_per_session);
            config.output_bytes = output_bytes.unwrap_or(config.output_bytes);
            config.editing_share = editing_share.unwrap_or(config.editing_share);
            let material = Material::from_corpus(&corpus)?;
            let summary = generate(&material, &config, &out)?;
            println!(
                "wrote {} sessions ({:?}), {} commands, {} needles, {:.1} MB of transcripts to {}",
                summary.session_list.len(),
                summary.sessions_by_form,
                summary.commands,
                summary.needles,
                summary.raw_bytes as f64 / 1e6,
                out.display()
            );
            Ok(())
        }),
        Command::Run { workload, work, bin_dir, python, runs, single } => {
            run(&RunOptions { workload, work, bin_dir, python, runs, single }).map(|_| ())
        }
        Command::Merge(files) => run_merge(&files.into()).map(|_| ()),
        Command::Write(files) => run_write(&files.into()).map(|_| ()),
        Command::OpenChain { commits, work, runs } => {
            open_chain(&ChainOptions { commits, work, runs }).map(|_| ())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("sessionlake-bench: {error:#}");
            ExitCode::from(2)
        }
    }
}
