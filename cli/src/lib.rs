//! `sessionlake`, the investigator's tool: search the lake for who ran what, where and when.
//!
//! Queries run on DataFusion over the lake's Parquet files (the ones the manifest says are
//! live), decrypting the encrypted columns through the lake's key providers.
//!
//! `main.rs` parses [`Cli`]; `lib.rs` holds it, [`Command`], the flag types of `search`,
//! `sessions`, `show`, `verify` and `checkpoint` (the other commands keep theirs in their own
//! files), and [`run`], which hands each command to its own file (`search.rs`, `sessions.rs`,
//! `show.rs`, [`access`], [`export`], [`files`], [`ocsf`], [`sql`], `verify_cmd.rs`,
//! `checkpoint_cmd.rs`, [`retention`], [`compact`], [`rekey`]). Those turn flags into calls of
//! `sessionlake-read` (tables, queries, listings, verify) and `sessionlake-keep` (retention,
//! holds, shred, compact, rekey); `open.rs` opens the lake for them, and [`output`], `views.rs`
//! and [`html`] print what comes back; [`time`] reads times and zones, [`progress`] draws on
//! stderr.
//!
//! Not everything here is flags and printing: [`export`] builds the evidence bundle (with
//! [`asciicast`], the replay, and [`html`], the viewer), [`ocsf`] writes OCSF events, and
//! [`access`] works out why a session has no transcript; no library holds that work yet.
//!
//! ```
//! use clap::Parser as _;
//! use sessionlake_cli::{Cli, Command};
//!
//! let cli = Cli::try_parse_from(["sessionlake", "--lake", "lake", "search", "rm -rf", "-i"])
//!     .expect("flags");
//! let Command::Search(search) = cli.command else { panic!("search") };
//! assert_eq!(search.pattern.as_deref(), Some("rm -rf"));
//! assert!(search.ignore_case);
//! ```

pub mod access;
pub mod asciicast;
mod checkpoint_cmd;
pub mod compact;
pub mod export;
pub mod files;
pub mod html;
pub mod ocsf;
mod open;
pub mod output;
pub mod progress;
pub mod rekey;
pub mod retention;
mod search;
mod sessions;
mod show;
pub mod sql;
pub mod time;
mod verify_cmd;
mod views;

pub(crate) use checkpoint_cmd::write_checkpoint;
pub(crate) use open::{
    memory_limit, open_keyring_if_present, open_lake_with, open_reader, open_tables, open_writer,
    parse_size, pinned_signers, signer, trusted_snapshot, warn_line,
};
pub(crate) use search::{filter_of, output_regex, print_listing, search, stream_frame, time_range};
pub(crate) use sessions::sessions;
pub(crate) use show::show;
pub(crate) use verify_cmd::run_verify;
pub(crate) use views::{
    SEARCH_VIEW, SESSIONS_VIEW, SHOW_VIEW, View, cell, command_cell, run_as_cell,
};

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Args as ClapArgs, Parser, Subcommand};
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::Schema;
use datafusion::dataframe::DataFrame;
use datafusion::prelude::SessionContext;
use datafusion::scalar::ScalarValue;
use sessionlake_read::error::ReadResult;
use sessionlake_read::listing::{LakeReader, Listed, Listing, PageRequest, RowSink};
use sessionlake_read::query::{
    COMMAND_TIME, COMMANDS_ALIAS, COMMANDS_WITH_SESSION_TIMES, Filter, Query, SEARCH_ADDED_COLUMNS,
    SEARCH_COLUMNS, SORT_TIME, partitions_between,
};
use sessionlake_read::{lake_tables, listing, verify};
use sessionlake_schemas::manifest::{self, ObjectEntry, ObjectKind};
use sessionlake_schemas::{KIND_REPL, KIND_SHELL, SessionSource, columns, paths};
use sessionlake_storage::checkpoint::Scope;
use sessionlake_storage::keys::{Keys, LocalKeyring};
use sessionlake_storage::object_lock::{ObjectLockMode, ObjectLockSettings};
use sessionlake_storage::store::{LakeLocation, LakeStore};
use sessionlake_storage::trust::Snapshot;

use crate::output::{OutputArgs, OutputFormat, Printer, TableLayout, json_record};
use crate::progress::Progress;

/// Default lake, as `sessionlake-ingest` writes it.
pub const DEFAULT_LAKE: &str = "./lake";
/// Default keyring, as `sessionlake-ingest` creates it.
pub const DEFAULT_KEYRING: &str = ".sessionlake/keyring.json";

/// `sessionlake`: search SSM session commands in a sessionlake lake.
#[derive(Debug, Parser)]
#[command(name = "sessionlake", version, about)]
pub struct Cli {
    /// Lake to read: a folder or s3://bucket/prefix.
    #[arg(long, global = true, env = "SESSIONLAKE_LAKE", default_value = DEFAULT_LAKE)]
    pub lake: String,
    /// Local keyring that opens the lake's data keys.
    #[arg(long, global = true, env = "SESSIONLAKE_KEYRING", default_value = DEFAULT_KEYRING)]
    pub keyring: PathBuf,
    /// AWS region (else the SDK's chain).
    #[arg(long, global = true, env = "SESSIONLAKE_REGION")]
    pub region: Option<String>,
    /// AWS profile of ~/.aws/config and ~/.aws/credentials (else AWS_PROFILE, `default`).
    #[arg(long, global = true, env = "SESSIONLAKE_PROFILE")]
    pub profile: Option<String>,
    /// AWS KMS key (id, ARN or alias) that signs the lake's manifests. Every command trusts
    /// only manifests signed by a pinned key: the keyring's, and these (their public keys come
    /// from KMS, never from the lake). Commands that commit sign with the first one given
    /// (else with the keyring's key); `export` signs SHA256SUMS with it. Repeatable (or
    /// comma-separated), for a lake whose signing key was replaced.
    #[arg(
        long,
        global = true,
        env = "SESSIONLAKE_SIGNING_KEY",
        value_name = "KMS_KEY",
        value_delimiter = ','
    )]
    pub signing_key: Vec<String>,
    /// Answer even when committed table files are missing from the lake (deleted, or not
    /// readable): each is named on stderr and its rows are left out, and the answer says it is
    /// partial (JSON summaries: `"partial": true`). Without it, a missing file is an error. A
    /// file whose bytes are not the committed ones is an error either way.
    #[arg(long, global = true, env = "SESSIONLAKE_ALLOW_PARTIAL")]
    pub allow_partial: bool,
    /// Use a keyring file that is a symbolic link or that group or others can read or write
    /// (refused otherwise: whoever reads it can open every session and sign commits).
    #[arg(long, global = true, env = "SESSIONLAKE_ALLOW_INSECURE_KEYRING")]
    pub allow_insecure_keyring: bool,
    /// Most memory a query may hold (search, sessions, sql…), e.g. 2GiB or 512MiB; default a
    /// quarter of the machine's memory. A query needing more fails saying so: it never spills
    /// decrypted rows to disk.
    #[arg(long, global = true, env = "SESSIONLAKE_MEMORY_LIMIT", value_parser = parse_size)]
    pub memory_limit: Option<u64>,
    /// Zone of the times tables and CSV show: UTC, local, or a name such as Europe/Paris;
    /// always labelled with its offset. JSON and export bundles stay UTC.
    #[arg(long, global = true, env = "SESSIONLAKE_TZ", default_value = "UTC", value_parser = time::parse_zone)]
    pub tz: time::DisplayZone,
    /// Object Lock mode of the manifests that commands which commit (retention apply, hold,
    /// shred, compact, rekey) write on an S3 lake whose bucket has Object Lock enabled:
    /// `governance`, `compliance` or `off` [default: governance].
    #[arg(long, global = true, env = "SESSIONLAKE_OBJECT_LOCK_MODE", value_name = "MODE")]
    pub object_lock_mode: Option<ObjectLockMode>,
    /// Object Lock retention of those manifests, in days from each commit [default: 2557,
    /// seven years].
    #[arg(long, global = true, env = "SESSIONLAKE_OBJECT_LOCK_DAYS", value_name = "DAYS")]
    pub object_lock_days: Option<u32>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
#[allow(clippy::large_enum_variant)] // parsed once per process; boxing buys nothing
pub enum Command {
    /// Finds commands: who ran what, as whom, where and when.
    #[command(
        after_help = "Examples:\n  sessionlake search 'rm\\s+-rf'\n  sessionlake search -i -F 'drop table' --since 30d\n  sessionlake search --principal alice --target i-0a1b2c3d4e5f67890 --since 2026-03-01\n  sessionlake search --run-as root --format csv\n  sessionlake search 'rm\\s+-rf' --format html > report.html"
    )]
    Search(SearchArgs),
    /// Lists sessions: who, as whom, where, when, how many commands, from which source, and
    /// for a session without a transcript, why (from CloudTrail).
    #[command(
        after_help = "Examples:\n  sessionlake sessions --since 7d\n  sessionlake sessions --confidence low"
    )]
    Sessions(SessionsArgs),
    /// Lists access events from CloudTrail: sessions started, resumed and terminated, EC2
    /// Instance Connect keys pushed, Run Command sent.
    #[command(
        after_help = "Examples:\n  sessionlake access --target i-0a1b2c3d4e5f67890 --since 2026-03-14 --until 2026-03-15"
    )]
    Access(access::AccessArgs),
    /// Prints one session's commands with their times and output; `--raw` replays the
    /// original terminal bytes.
    #[command(
        after_help = "Examples:\n  sessionlake show alice-0123456789abcdef0\n  sessionlake show alice-0123456789abcdef0 --raw"
    )]
    Show(ShowArgs),
    /// Checks the manifest chain, its signatures and every object; exit 1 if anything is off.
    #[command(
        after_help = "Examples:\n  sessionlake verify\n  sessionlake verify --since-checkpoint --json\n  sessionlake verify --expect-head 41:3a3aee6c3a966b32df54964a1b1cd3680af88503581337182a011ad23e760811"
    )]
    Verify(VerifyArgs),
    /// Writes one session as an evidence bundle: the original transcript, its commands (JSON
    /// Lines and CSV), an asciicast replay, index.html (a viewer that opens in a browser with
    /// no network: facts, verification state, timeline and replay), the manifests that
    /// committed it, and a signed SHA256SUMS an auditor checks with sha256sum and openssl.
    #[command(
        after_help = "Examples:\n  sessionlake export alice-0123456789abcdef0 --out evidence/alice\n  sessionlake export alice-0123456789abcdef0 --out evidence/alice.tar.zst --format tar.zst"
    )]
    Export(export::ExportArgs),
    /// Re-wraps every live object's data key under a new provider key (KMS or the keyring),
    /// without re-encrypting anything; the chain records it.
    #[command(
        after_help = "Examples:\n  sessionlake rekey --to-kms alias/sessionlake --reason \"key rotation 2026\"\n  sessionlake rekey --new-signing-key alias/sessionlake-signing"
    )]
    Rekey(rekey::RekeyArgs),
    /// Applies a retention policy: `plan` lists what would go and why, `apply` does it.
    #[command(subcommand, after_help = retention::RETENTION_EXAMPLES)]
    Retention(retention::RetentionCommand),
    /// Legal holds: nothing they cover is deleted or shredded.
    #[command(subcommand, after_help = retention::HOLD_EXAMPLES)]
    Hold(retention::HoldCommand),
    /// Destroys one session now: its keys first (every copy of it becomes unreadable), then
    /// its objects; the chain records who, when and why.
    #[command(
        after_help = "Examples:\n  sessionlake shred alice-0123456789abcdef0 --reason \"GDPR art. 17 request 4411\" --yes"
    )]
    Shred(retention::ShredArgs),
    /// Runs one SQL query over the tables `commands`, `sessions` and `access` (live objects,
    /// encrypted columns opened); statements that would change anything are refused.
    #[command(
        after_help = "Examples:\n  sessionlake sql \"SELECT principal, count(*) AS n FROM commands GROUP BY principal\" --format csv"
    )]
    Sql(sql::SqlArgs),
    /// Prints the live files of a table as the signed chain names them (local paths or s3://
    /// URLs), for engines that read a list of files: DuckDB's read_parquet([...]), pyarrow.
    /// They read them without sessionlake's checks; `sessionlake verify` proves them unaltered.
    #[command(
        after_help = "Examples:\n  sessionlake files --table commands\n  sessionlake files --table access --json\n  sessionlake files --table commands --every-delivery"
    )]
    Files(files::FilesArgs),
    /// Writes the commands of a time range as OCSF 1.1 Process Activity events (Parquet, in
    /// Amazon Security Lake's custom-source layout) for a SIEM; command text left out unless
    /// --include-command-text.
    #[command(
        after_help = "Examples:\n  sessionlake ocsf --since 2026-03-01 --until 2026-04-01 --out ocsf/\n  sessionlake ocsf --since 1d --out ocsf/ --default-region eu-west-1 --default-account 111122223333"
    )]
    Ocsf(ocsf::OcsfArgs),
    /// Merges each day's per-session `commands` and `sessions` files into compacted files
    /// (one per table, day and source), in one commit; takes the writer lease like ingest.
    #[command(
        after_help = "Examples:\n  sessionlake compact\n  sessionlake compact --min-age 0s --dt 2026-03-14"
    )]
    Compact(compact::CompactArgs),
    /// Writes a signed checkpoint of the live set as of the newest commit, so that every
    /// command opens the lake reading only the commits after it (ingest writes one every
    /// 1,000 commits by itself).
    #[command(after_help = "Examples:\n  sessionlake checkpoint --json")]
    Checkpoint(CheckpointArgs),
}

/// Options of `checkpoint`.
#[derive(Debug, ClapArgs)]
pub struct CheckpointArgs {
    /// A JSON record of what was written.
    #[arg(long, env = "SESSIONLAKE_JSON")]
    pub json: bool,
}

/// Options of `show`.
#[derive(Debug, ClapArgs)]
pub struct ShowArgs {
    /// Session id.
    pub session: String,
    /// Write the original transcript bytes (decrypted, decompressed, hash-checked) to stdout,
    /// to replay in a terminal.
    #[arg(long, env = "SESSIONLAKE_RAW")]
    pub raw: bool,
    /// Show the delivery of this source (s3, local, cloudwatch-upload, cloudwatch-stream) of a
    /// session delivered more than once, instead of the preferred one (S3 first).
    #[arg(long, value_parser = session_source, env = "SESSIONLAKE_SOURCE")]
    pub source: Option<SessionSource>,
    /// Output format and colour.
    #[command(flatten)]
    pub print: OutputArgs,
}

/// Parses a source name as the `source` column holds it.
pub(crate) fn session_source(value: &str) -> Result<SessionSource, String> {
    SessionSource::from_name(value).ok_or_else(|| {
        let names: Vec<&str> = SessionSource::ALL.iter().map(|source| source.as_str()).collect();
        format!("not a source; one of: {}", names.join(", "))
    })
}

/// Options of `verify`.
#[derive(Debug, ClapArgs)]
pub struct VerifyArgs {
    /// Report only on commits from this time (the whole chain is still read): 2026-03-14,
    /// 2026-03-14T09:30:00Z, or relative (7d, 12h, 30m).
    #[arg(long, env = "SESSIONLAKE_SINCE")]
    pub since: Option<String>,
    /// Report only on commits before this time (same forms as --since).
    #[arg(long, env = "SESSIONLAKE_UNTIL")]
    pub until: Option<String>,
    /// Fails (an `unexpected-head` finding, exit 1) unless the trusted chain holds manifest
    /// SEQ whose file has SHA-256 SHA256: a head recorded outside the lake (as every commit
    /// prints it) that a lake cut back, rolled back or rewritten no longer holds. Repeatable.
    #[arg(long, value_name = "SEQ:SHA256", env = "SESSIONLAKE_EXPECT_HEAD")]
    pub expect_head: Vec<sessionlake_storage::manifest::Head>,
    /// Judge the newest commit's idle promise as of this time instead of now (same forms as
    /// --since): what verify will report then if nothing is committed meanwhile.
    #[arg(long, value_name = "TIME", env = "SESSIONLAKE_AS_OF")]
    pub as_of: Option<String>,
    /// Resume from the newest checkpoint (one a full verify checked before): only the
    /// manifests from it on are read and the objects they added hashed; objects stored but
    /// not committed, and the checkpoints, are checked by a full verify only.
    #[arg(long, env = "SESSIONLAKE_SINCE_CHECKPOINT")]
    pub since_checkpoint: bool,
    /// Verify with no pinned signer (no keyring, no --signing-key), trusting the lake's own
    /// public-key records: "intact" then only says the lake agrees with itself, which whoever
    /// can write to it can arrange. Without it, verify refuses to run unpinned.
    #[arg(long, env = "SESSIONLAKE_UNPINNED")]
    pub unpinned: bool,
    /// JSON Lines output: one `finding` record per problem, then a `summary`.
    #[arg(long, env = "SESSIONLAKE_JSON")]
    pub json: bool,
}

/// Who, where and when: filters shared by `search` and `sessions`; all given must hold.
#[derive(Debug, ClapArgs)]
pub struct Filters {
    /// Principal: the exact IAM ARN, or text it contains.
    #[arg(long, env = "SESSIONLAKE_PRINCIPAL")]
    pub principal: Option<String>,
    /// OS user: for `search`, the session's OS user or whom the command ran as (`root` after
    /// `sudo su -`); for `sessions`, the session's OS user.
    #[arg(long, env = "SESSIONLAKE_RUN_AS")]
    pub run_as: Option<String>,
    /// Managed node (instance id).
    #[arg(long, env = "SESSIONLAKE_TARGET")]
    pub target: Option<String>,
    /// Session id.
    #[arg(long, env = "SESSIONLAKE_SESSION")]
    pub session: Option<String>,
    /// From this time: 2026-03-14, 2026-03-14T09:30:00Z, or relative (7d, 12h, 30m).
    #[arg(long, env = "SESSIONLAKE_SINCE")]
    pub since: Option<String>,
    /// Before this time (same forms as --since).
    #[arg(long, env = "SESSIONLAKE_UNTIL")]
    pub until: Option<String>,
}

/// A page of a listing: `--limit` rows after `--after`.
#[derive(Debug, Clone, ClapArgs)]
pub struct Paging {
    /// At most this many rows; the summary gives the cursor of the next page.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..), env = "SESSIONLAKE_LIMIT")]
    pub limit: Option<u64>,
    /// Start after this cursor (printed in the summary of the page before).
    #[arg(long, value_name = "CURSOR", env = "SESSIONLAKE_AFTER")]
    pub after: Option<String>,
}

/// Options of `search`.
#[derive(Debug, ClapArgs)]
pub struct SearchArgs {
    /// Regular expression the command must match (Rust regex syntax), as `rg PATTERN`: the
    /// same as --command.
    #[arg(value_name = "PATTERN", conflicts_with = "command")]
    pub pattern: Option<String>,
    /// Regular expression the command must match (Rust regex syntax).
    #[arg(long, env = "SESSIONLAKE_COMMAND")]
    pub command: Option<String>,
    /// PATTERN (or --command) matches letters in either case.
    #[arg(short = 'i', long, env = "SESSIONLAKE_IGNORE_CASE")]
    pub ignore_case: bool,
    /// PATTERN (or --command) is plain text, not a regular expression.
    #[arg(short = 'F', long, env = "SESSIONLAKE_FIXED_STRINGS")]
    pub fixed_strings: bool,
    /// Text the command must contain.
    #[arg(long, env = "SESSIONLAKE_COMMAND_CONTAINS")]
    pub command_contains: Option<String>,
    /// Also list the access events (CloudTrail) that pass the who/where/when filters, in the
    /// same time order.
    #[arg(long, env = "SESSIONLAKE_INCLUDE_ACCESS")]
    pub include_access: bool,
    /// Regular expression the command's output must match (Rust regex syntax). A format name
    /// (`json`, `csv`, …, an AWS CLI habit) is refused: that is `--format`.
    #[arg(long, value_name = "REGEX", value_parser = output_regex, env = "SESSIONLAKE_OUTPUT")]
    pub output: Option<String>,
    /// Only rows of this kind: `shell` (commands a shell read) or `repl` (lines typed into a
    /// program a command started: sqlite3, psql, mysql, python, irb, node, redis-cli).
    #[arg(long, value_parser = [KIND_SHELL, KIND_REPL], env = "SESSIONLAKE_KIND")]
    pub kind: Option<String>,
    /// Only lines typed into this program (`--program mysql`): `repl` rows.
    #[arg(long, value_name = "NAME", env = "SESSIONLAKE_PROGRAM")]
    pub program: Option<String>,
    /// Who, where, when.
    #[command(flatten)]
    pub filters: Filters,
    /// Which page.
    #[command(flatten)]
    pub paging: Paging,
    /// Output format and colour.
    #[command(flatten)]
    pub print: OutputArgs,
}

/// Options of `sessions`.
#[derive(Debug, ClapArgs)]
pub struct SessionsArgs {
    /// A session started longer ago than this without a transcript in the lake is reported
    /// as `not-delivered` (missing evidence); younger, as `pending`.
    #[arg(long, env = "SESSIONLAKE_TRANSCRIPT_WAIT", default_value = access::DEFAULT_TRANSCRIPT_WAIT)]
    pub transcript_wait: String,
    /// Only sessions understood with this confidence (`low`: prompts not recognised or little
    /// of the input explained; see the `confidence_reason` column). Sessions without a
    /// transcript, and those written before schema version 2, have none.
    #[arg(long, value_parser = ["high", "medium", "low"], env = "SESSIONLAKE_CONFIDENCE")]
    pub confidence: Option<String>,
    /// Who, where, when.
    #[command(flatten)]
    pub filters: Filters,
    /// Which page.
    #[command(flatten)]
    pub paging: Paging,
    /// Output format and colour.
    #[command(flatten)]
    pub print: OutputArgs,
}

/// Outcome of a command, mapped to the exit code by `main`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Something matched (exit 0).
    Matched,
    /// Nothing matched (exit 1).
    NoMatch,
}

/// Runs the CLI. A closed stdout (`sessionlake search | head`) ends it quietly, as a success.
pub async fn run(cli: Cli) -> anyhow::Result<Outcome> {
    time::set_display_zone(cli.tz);
    let result = match cli.command {
        Command::Search(ref args) => search(&cli, args).await,
        Command::Sessions(ref args) => sessions(&cli, args).await,
        Command::Access(ref args) => access::access(&cli, args).await,
        Command::Show(ref args) => show(&cli, args).await,
        Command::Verify(ref args) => run_verify(&cli, args).await,
        Command::Export(ref args) => export::export(&cli, args).await,
        Command::Rekey(ref args) => rekey::rekey(&cli, args).await,
        Command::Retention(ref command) => retention::retention(&cli, command).await,
        Command::Hold(ref command) => retention::hold(&cli, command).await,
        Command::Shred(ref args) => retention::shred(&cli, args).await,
        Command::Sql(ref args) => sql::sql(&cli, args).await,
        Command::Files(ref args) => files::files(&cli, args).await,
        Command::Ocsf(ref args) => ocsf::ocsf(&cli, args).await,
        Command::Compact(ref args) => compact::compact(&cli, args).await,
        Command::Checkpoint(ref args) => write_checkpoint(&cli, args).await,
    };
    if output::is_partial() {
        eprintln!(
            "sessionlake: the answer is partial: committed files named above were left out \
             (--allow-partial)"
        );
    }
    match result {
        Err(error) if output::is_broken_pipe(&error) => Ok(Outcome::Matched),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every flag of every command can be given as a `SESSIONLAKE_*` variable named after it.
    #[test]
    fn test_every_flag_has_its_variable() {
        use clap::CommandFactory as _;
        fn walk(command: &clap::Command, missing: &mut Vec<String>) {
            for arg in command.get_arguments() {
                let Some(long) = arg.get_long() else { continue };
                if ["help", "version"].contains(&long) {
                    continue;
                }
                let expected =
                    format!("SESSIONLAKE_{}", long.to_ascii_uppercase().replace('-', "_"));
                let env = arg.get_env().map(|env| env.to_string_lossy().to_string());
                if env.as_deref() != Some(expected.as_str()) {
                    missing.push(format!("{} --{long}: {env:?}", command.get_name()));
                }
            }
            for sub in command.get_subcommands() {
                walk(sub, missing);
            }
        }
        let mut missing = Vec::new();
        walk(&Cli::command(), &mut missing);
        assert!(missing.is_empty(), "{missing:#?}");
    }

    /// Every subcommand's `--help` ends with examples, and every example parses as the command
    /// it shows (a renamed flag breaks this test, not a reader's copy and paste).
    #[test]
    fn test_every_subcommand_has_examples_that_parse() {
        use clap::CommandFactory as _;
        fn walk(command: &clap::Command, path: &str, examples: &mut Vec<(String, String)>) {
            for sub in command.get_subcommands().filter(|sub| sub.get_name() != "help") {
                let name = format!("{path} {}", sub.get_name());
                let help = sub.get_after_help().map(|help| help.to_string()).unwrap_or_default();
                assert!(help.starts_with("Examples:"), "{name} has no examples");
                let lines = help.lines().skip(1).map(str::trim).filter(|l| !l.is_empty());
                let mut own = 0;
                for line in lines {
                    examples.push((name.clone(), line.to_string()));
                    own += usize::from(line.starts_with(&name.trim_start().to_string()));
                }
                assert!(own > 0, "{name}: no example of {name}");
                walk(sub, &name, examples);
            }
        }
        let mut examples = Vec::new();
        walk(&Cli::command(), "sessionlake", &mut examples);
        assert!(examples.len() > 20, "{}", examples.len());
        for (name, line) in examples {
            let mut words = shlex::split(&line).expect("quotes closed");
            // An example may send its output to a file (`> report.html`).
            if let Some(at) = words.iter().position(|word| word == ">") {
                words.truncate(at);
            }
            if let Err(error) = Cli::try_parse_from(&words) {
                panic!("{name}: example {line:?} does not parse: {error}");
            }
        }
    }

    #[test]
    fn test_sizes_parse_in_powers_of_1024() {
        assert_eq!(parse_size("512"), Ok(512));
        assert_eq!(parse_size("64KiB"), Ok(64 << 10));
        assert_eq!(parse_size("2GiB"), Ok(2 << 30));
        assert_eq!(parse_size("3 mb"), Ok(3 << 20));
        for bad in ["", "GiB", "2XB", "0", "-1", "99999999999999G"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn test_run_as_and_command_cells() {
        let row = |values: &[Option<&str>]| -> Vec<Option<String>> {
            values.iter().map(|value| value.map(str::to_string)).collect()
        };
        let same = row(&[Some("ssm-user"), Some("ssm-user"), Some("ls\n-l"), None]);
        assert_eq!(run_as_cell(&same, 0, 1), "ssm-user");
        assert_eq!(command_cell(&same, 2, 3), "ls⏎ -l");
        let root = row(&[Some("ssm-user"), Some("root"), Some("select 1;"), Some("sqlite3")]);
        assert_eq!(run_as_cell(&root, 0, 1), "ssm-user→root");
        assert_eq!(command_cell(&root, 2, 3), "[sqlite3] select 1;");
        // Files written before the column: no effective user.
        let old = row(&[Some("ssm-user"), None, Some("id"), None]);
        assert_eq!(run_as_cell(&old, 0, 1), "ssm-user");
    }

    #[test]
    fn test_cli_parses() {
        let cli = Cli::try_parse_from([
            "sessionlake",
            "search",
            "--command",
            "rm -rf",
            "--principal",
            "alice",
            "--since",
            "7d",
        ])
        .expect("parse");
        let Command::Search(args) = cli.command else { panic!("parsed as search") };
        assert_eq!(args.command.as_deref(), Some("rm -rf"));
        assert_eq!(args.filters.principal.as_deref(), Some("alice"));
        assert_eq!(cli.lake, DEFAULT_LAKE);
    }
}
