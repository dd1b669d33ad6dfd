//! `sessionlake-indexer`: measure the parser. `eval` prints precision and recall of command
//! extraction per SSM form over the recorded corpus; `bench` prints parsing speed per form.

mod bench;
mod eval;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use bench::report_line;

#[derive(Parser)]
#[command(name = "sessionlake-indexer", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Precision and recall of extracted commands per form, against the corpus's oracle.
    Eval {
        /// Corpus folder (one folder per recorded session).
        #[arg(long, default_value = "corpus")]
        corpus: PathBuf,
        /// List every command extracted but not expected (+) or expected but missed (-).
        #[arg(long, short)]
        verbose: bool,
    },
    /// Parsing throughput per form, over the corpus repeated to at least `--mib` MiB.
    Bench {
        /// Corpus folder.
        #[arg(long, default_value = "corpus")]
        corpus: PathBuf,
        /// MiB of input per form per run.
        #[arg(long, default_value_t = 64)]
        mib: usize,
        /// Runs per form; the median is reported.
        #[arg(long, default_value_t = 5)]
        runs: usize,
        /// Only this form (s3, s3-legacy, cloudwatch-upload, cloudwatch-stream), e.g. to profile.
        #[arg(long)]
        form: Option<String>,
        /// Only this workload: `editing` (the corpus's short edited commands) or `ops` (an
        /// output-heavy operator session).
        #[arg(long)]
        workload: Option<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Eval { corpus, verbose } => run_eval(&corpus, verbose),
        Command::Bench { corpus, mib, runs, form, workload } => {
            let selection = bench::Selection { form, workload };
            bench::run(&corpus, mib, runs, &selection)
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("sessionlake-indexer: {error}");
            ExitCode::from(2)
        }
    }
}

/// Prints one row of the eval table; false when stdout is closed.
fn score_line(label: &str, score: &eval::Score, note: &str) -> Result<bool, String> {
    report_line(format_args!(
        "{:<26} {:>9} {:>7} {:>7} {:>9.2}% {:>7.2}%{note}",
        label,
        score.true_positives + score.false_negatives,
        score.true_positives,
        score.false_positives,
        score.precision() * 100.0,
        score.recall() * 100.0
    ))
}

fn run_eval(corpus: &std::path::Path, verbose: bool) -> Result<(), String> {
    let report = eval::evaluate(corpus)?;
    if !report_line(format_args!("{} sessions in {}", report.sessions, corpus.display()))? {
        return Ok(());
    }
    if !report_line(format_args!(
        "{:<26} {:>9} {:>7} {:>7} {:>10} {:>8}",
        "form", "expected", "found", "wrong", "precision", "recall"
    ))? {
        return Ok(());
    }
    for (form, score) in &report.by_form {
        if !score_line(form, score, "")? {
            return Ok(());
        }
    }
    let delivered = report.stream_as_delivered;
    if !score_line(eval::STREAM_FORM, &delivered, "  (modulo bytes the agent destroyed)")? {
        return Ok(());
    }
    for ((shell, form), score) in &report.by_shell {
        if !score_line(&format!("{shell} / {form}"), score, "")? {
            return Ok(());
        }
    }
    for ((form, confidence), sessions) in &report.confidence {
        if !report_line(format_args!(
            "{form}: {sessions} sessions understood with {confidence} confidence"
        ))? {
            return Ok(());
        }
    }
    for (form, score) in &report.repl {
        if !score_line(&format!("repl / {form}"), score, "")? {
            return Ok(());
        }
    }
    for (form, (right, wrong)) in &report.users {
        if !report_line(format_args!(
            "{form}: effective user right on {right} of {} commands of sessions with root shells",
            right + wrong
        ))? {
            return Ok(());
        }
    }
    if report.excluded > 0
        && !report_line(format_args!(
            "{} oracle command(s) never ran and are left out of every form (expected.json `excluded`)",
            report.excluded
        ))?
    {
        return Ok(());
    }
    if verbose {
        for miss in &report.misses {
            if !report_line(format_args!(
                "{} {:<18} {:<32} {:?}",
                miss.kind, miss.form, miss.scenario, miss.command
            ))? {
                return Ok(());
            }
        }
    }
    Ok(())
}
