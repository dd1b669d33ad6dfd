//! `sessionlake`, the investigator's tool: search the lake for who ran what, where and when.
//!
//! Queries run on DataFusion over the lake's Parquet files (the ones the manifest says are
//! live), decrypting the encrypted columns through the lake's key providers.
//!
//! This crate is the thin layer over the libraries: `main.rs` parses [`Cli`], [`run`] turns its
//! flags into calls of `sessionlake-read` (tables, verify), `sessionlake-keep` (retention,
//! holds, shred, compact, rekey) and the search here, and the printers in [`output`] write
//! what comes back.
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
pub mod compact;
pub mod export;
pub mod files;
pub mod html;
pub mod output;
pub mod paging;
pub mod progress;
pub mod rekey;
pub mod retention;
pub mod sql;
pub mod time;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Args as ClapArgs, Parser, Subcommand};
use datafusion::arrow::array::{Array as _, AsArray as _, RecordBatch};
use datafusion::arrow::datatypes::{Int64Type, TimestampMicrosecondType};
use datafusion::dataframe::DataFrame;
use datafusion::prelude::SessionContext;
use datafusion::scalar::ScalarValue;
use futures::StreamExt as _;
use sessionlake_read::query::{
    COMMANDS_ALIAS, Filter, Query, SEARCH_ADDED_COLUMNS, SEARCH_COLUMNS, SESSION_TIMES_JOIN,
    SORT_TIME, partitions_between,
};
use sessionlake_read::{lake_tables, verify, window};
use sessionlake_schemas::manifest::{self, ObjectEntry, ObjectKind};
use sessionlake_schemas::{KIND_REPL, KIND_SHELL, SessionSource, columns, paths};
use sessionlake_storage::checkpoint::Scope;
use sessionlake_storage::keys::{Keys, LocalKeyring};
use sessionlake_storage::object_lock::{ObjectLockMode, ObjectLockSettings};
use sessionlake_storage::store::{LakeLocation, LakeStore};
use sessionlake_storage::trust::Snapshot;

use crate::output::{OutputArgs, OutputFormat, Printer, TableLayout, json_record};
use crate::paging::Cursor;
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
    /// Output format and colour.
    #[command(flatten)]
    pub print: OutputArgs,
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

async fn run_verify(cli: &Cli, args: &VerifyArgs) -> anyhow::Result<Outcome> {
    let since = args.since.as_deref().map(time::parse_time).transpose().context("--since")?;
    let until = args.until.as_deref().map(time::parse_time).transpose().context("--until")?;
    let keyring = open_keyring_if_present(cli)?.map(Arc::new);
    let (store, _) = open_lake_with(cli, keyring.clone()).await?;
    let pinned = pinned_signers(cli, keyring.as_deref(), &cli.signing_key).await?;
    anyhow::ensure!(
        !pinned.is_empty() || args.unpinned,
        "no signer is pinned (no keyring at {}, no --signing-key): verify would trust the \
         lake's own key records, which whoever can write to the lake can plant; give the \
         lake's keyring or --signing-key, or pass --unpinned to check the lake only against \
         itself",
        cli.keyring.display()
    );
    let options = verify::VerifyOptions {
        pinned,
        since,
        until,
        now: match args.as_of.as_deref() {
            Some(text) => time::parse_time(text).context("--as-of")?,
            None => chrono::Utc::now().timestamp_micros(),
        },
        progress: (!args.json)
            .then(|| Arc::new(progress::HashingBar::default()) as Arc<dyn verify::HashingProgress>),
        expect_heads: args.expect_head.clone(),
        since_checkpoint: args.since_checkpoint,
    };
    let report = verify::verify(&store, &options).await?;
    let mut out = std::io::stdout().lock();
    let written = (|| -> std::io::Result<()> {
        if args.json {
            for found in &report.findings {
                writeln!(
                    out,
                    "{}",
                    json_record("finding", &serde_json::to_value(found).unwrap_or_default())
                )?;
            }
            let summary = serde_json::json!({
                "manifests": report.manifests,
                "objects": report.objects,
                "findings": report.findings.len(),
                "signer_pinned": !options.pinned.is_empty(),
                "head": report.head,
            });
            writeln!(out, "{}", json_record("summary", &summary))?;
        } else {
            for found in &report.findings {
                writeln!(out, "{:<26} {}: {}", found.kind, found.path, found.detail)?;
            }
        }
        out.flush()
    })();
    match written {
        Err(error) if error.kind() != std::io::ErrorKind::BrokenPipe => return Err(error.into()),
        _ => {}
    }
    if !args.json {
        let pinned = match (keyring.is_some(), !cli.signing_key.is_empty()) {
            (true, false) => "signer pinned by the keyring".to_string(),
            (true, true) => "signers pinned by the keyring and --signing-key".to_string(),
            (false, true) => "signer pinned by --signing-key".to_string(),
            (false, false) => "no keyring: signer not pinned".to_string(),
        };
        eprintln!(
            "verified {} manifests and {} live objects ({pinned}): {}",
            report.manifests,
            report.objects,
            if report.findings.is_empty() {
                "intact".to_string()
            } else {
                format!("{} problems", report.findings.len())
            }
        );
        if let Some(head) = &report.head {
            eprintln!("head: {head}");
        }
    }
    Ok(if report.findings.is_empty() { Outcome::Matched } else { Outcome::NoMatch })
}

/// Opens the keyring of `--keyring`, or returns `None` when there is no such file.
pub(crate) fn open_keyring_if_present(cli: &Cli) -> anyhow::Result<Option<LocalKeyring>> {
    if !cli.allow_insecure_keyring {
        LocalKeyring::ensure_private(&cli.keyring)?;
    }
    match LocalKeyring::open(&cli.keyring) {
        Ok(keyring) => Ok(Some(keyring)),
        Err(error) if std::fs::metadata(&cli.keyring).is_err() => {
            tracing::debug!(%error, "no local keyring");
            Ok(None)
        }
        Err(error) => Err(error.into()),
    }
}

/// Returns the manifest signers to trust: the keyring's key, and each KMS key of
/// `signing_keys`, whose public half comes from KMS itself, never from the lake.
pub(crate) async fn pinned_signers(
    cli: &Cli,
    keyring: Option<&LocalKeyring>,
    signing_keys: &[String],
) -> anyhow::Result<Vec<verify::PinnedSigner>> {
    let mut pinned = Vec::new();
    if let Some(keyring) = keyring {
        let signer = keyring.signer();
        pinned.push(verify::PinnedSigner {
            key_id: signer.key_id().to_string(),
            public_key: signer.public_key().to_vec(),
            origin: "the keyring".to_string(),
        });
    }
    if !signing_keys.is_empty() {
        let sdk_config = sessionlake_storage::aws::load_sdk_config(
            cli.region.as_deref(),
            cli.profile.as_deref(),
        )
        .await;
        for key_id in signing_keys {
            let public =
                sessionlake_storage::signing::kms_public_key_with(&sdk_config, key_id.trim())
                    .await
                    .with_context(|| {
                        format!("failed to fetch the public key of --signing-key {key_id}")
                    })?;
            pinned.push(verify::PinnedSigner {
                key_id: public.key_arn,
                public_key: public.spki,
                origin: "--signing-key".to_string(),
            });
        }
    }
    Ok(pinned)
}

/// Returns the signer of what `command` writes: the KMS asymmetric key `signing_key` when one
/// is given, else the keyring's Ed25519 key.
pub(crate) async fn signer(
    cli: &Cli,
    signing_key: Option<&str>,
    keyring: Option<Arc<LocalKeyring>>,
    command: &str,
) -> anyhow::Result<Box<dyn sessionlake_storage::signing::ManifestSigner>> {
    match (signing_key, keyring) {
        (Some(key_id), _) => {
            let sdk_config = sessionlake_storage::aws::load_sdk_config(
                cli.region.as_deref(),
                cli.profile.as_deref(),
            )
            .await;
            let signer =
                sessionlake_storage::signing::KmsSigner::connect_with(&sdk_config, key_id.trim())
                    .await
                    .with_context(|| format!("failed to use --signing-key {key_id}"))?;
            Ok(Box::new(signer))
        }
        (None, Some(keyring)) => Ok(Box::new(sessionlake_storage::signing::KeyringSigner(keyring))),
        (None, None) => anyhow::bail!(
            "{command} signs with the keyring's key ({} does not exist) or a KMS key: give \
             --keyring or --signing-key",
            cli.keyring.display()
        ),
    }
}

/// Opens the lake for reading: its store, its key providers, and its trusted snapshot (see
/// [`trusted_snapshot`]) with the lake's id. With [`Scope::Session`], the snapshot holds that
/// session's objects (and some others, see [`Snapshot::open_latest_of`]): for a command that
/// reads one session only.
pub(crate) async fn open_reader(
    cli: &Cli,
    scope: Scope<'_>,
) -> anyhow::Result<(LakeStore, Keys, lake_tables::LakeSnapshot)> {
    let keyring = open_keyring_if_present(cli)?.map(Arc::new);
    let (store, keys) = open_lake_with(cli, keyring.clone()).await?;
    let pinned = pinned_signers(cli, keyring.as_deref(), &cli.signing_key).await?;
    // Readers start from the newest checkpoint a pinned signer made.
    let snapshot = Snapshot::open_latest_of(&store, &pinned, scope).await?;
    // A folder or prefix with no manifest answered "0 matching" as if it were an empty lake.
    anyhow::ensure!(
        snapshot.file_head().is_some(),
        "{} holds no manifest: it is not a sessionlake lake (is --lake right?), or nothing was \
         ingested into it yet",
        store.location()
    );
    warn_ignored(&snapshot);
    let lake_id = sessionlake_storage::manifest::committed_lake_id(&store, snapshot.live()).await?;
    let keys = keys.with_committed(snapshot.live());
    let mut live = snapshot.into_live();
    if cli.allow_partial {
        leave_out_missing(&store, &mut live).await?;
    }
    Ok((store, keys, lake_tables::LakeSnapshot { live, lake_id, checked: Arc::default() }))
}

/// Opens the lake for a one-shot writer job (`command`: retention, hold, shred, compact,
/// checkpoint): commits are signed by the first KMS key of `--signing-key`, else the keyring's
/// key, and only manifests the pinned signers signed (the keyring's key and `--signing-key`)
/// are trusted.
pub(crate) async fn open_writer(
    cli: &Cli,
    command: &'static str,
) -> anyhow::Result<sessionlake_keep::Lake> {
    let keyring = open_keyring_if_present(cli)?.map(Arc::new);
    let (store, keys) = open_lake_with(cli, keyring.clone()).await?;
    let signing_key = cli.signing_key.first().map(String::as_str);
    let signer = signer(cli, signing_key, keyring.clone(), command).await?;
    let pinned = pinned_signers(cli, keyring.as_deref(), &cli.signing_key).await?;
    let parts = sessionlake_keep::LakeParts {
        store,
        keys,
        keyring,
        signer,
        pinned,
        command,
        warn: warn_line,
    };
    sessionlake_keep::Lake::open(parts).await
}

/// For `--allow-partial`: takes the committed table files that are not in the lake with their
/// committed size out of `live`, naming each on stderr, and marks the answer partial.
async fn leave_out_missing(
    store: &LakeStore,
    live: &mut BTreeMap<String, ObjectEntry>,
) -> anyhow::Result<()> {
    let mut stored: HashMap<String, u64> = HashMap::new();
    for folder in [paths::COMMANDS_DIR, paths::SESSIONS_DIR, paths::ACCESS_DIR] {
        stored.extend(store.list(folder).await?);
    }
    let missing: Vec<String> = live
        .values()
        // Only what is gone: a file stored with another size is altered, an error either way.
        .filter(|entry| entry.kind.is_table() && !stored.contains_key(&entry.path))
        .map(|entry| entry.path.clone())
        .collect();
    for path in missing {
        let Some(entry) = live.remove(&path) else { continue };
        eprintln!(
            "sessionlake: warning: partial answer: {} was committed as {} bytes and it is \
             missing: its rows are left out",
            store.describe(&path),
            entry.size
        );
        output::mark_partial();
    }
    Ok(())
}

/// Reads the lake's chain and keeps only what the pinned signers (the keyring's key and
/// `--signing-key`) committed: the one way every command sees the lake. What it leaves out
/// (untrusted manifests, holes, forks) is said on stderr; writers that delete or rewrite
/// refuse it with [`Snapshot::ensure_trusted`].
pub(crate) async fn trusted_snapshot(
    cli: &Cli,
    store: &LakeStore,
    keyring: Option<&LocalKeyring>,
) -> anyhow::Result<Snapshot> {
    let pinned = pinned_signers(cli, keyring, &cli.signing_key).await?;
    let snapshot = Snapshot::open(store, &pinned).await?;
    warn_ignored(&snapshot);
    Ok(snapshot)
}

/// Runs `sessionlake checkpoint`: the live set of the whole trusted chain, signed like a
/// commit by the keyring's key or the first `--signing-key`.
async fn write_checkpoint(cli: &Cli, args: &CheckpointArgs) -> anyhow::Result<Outcome> {
    let lake = open_writer(cli, "checkpoint").await?;
    lake.ensure_trusted()?;
    let Some(head) = lake.chain.last() else {
        anyhow::bail!("{} has no commits to checkpoint", lake.store.location());
    };
    let path = sessionlake_storage::checkpoint::write(&lake.store, lake.signer(), head, &lake.live)
        .await
        .with_context(|| format!("failed to write a checkpoint of {}", lake.store.location()))?;
    let sequence = head.manifest.body.sequence;
    if args.json {
        let record = serde_json::json!({
            "checkpoint": path,
            "sequence": sequence,
            "manifest_sha256": head.sha256,
            "objects": lake.live.len(),
        });
        println!("{}", json_record("checkpoint", &record));
    } else {
        println!(
            "{path}: {} live objects as of manifest {sequence} (sha256 {})",
            lake.live.len(),
            head.sha256
        );
    }
    Ok(Outcome::Matched)
}

/// Says on stderr what the snapshot left out and why.
pub(crate) fn warn_ignored(snapshot: &Snapshot) {
    for line in snapshot.ignored() {
        warn_line(&line);
    }
}

/// Says one warning on stderr (`sessionlake: warning: …`).
pub(crate) fn warn_line(line: &str) {
    eprintln!("sessionlake: warning: {line}");
}

/// Opens the lake like [`open_lake`] with `keyring` already opened (a keyring under a
/// passphrase costs a key derivation each time it is opened).
pub(crate) async fn open_lake_with(
    cli: &Cli,
    keyring: Option<Arc<LocalKeyring>>,
) -> anyhow::Result<(LakeStore, Keys)> {
    let location = LakeLocation::parse(&cli.lake)?;
    if let LakeLocation::Local(path) = &location
        && std::fs::metadata(path).is_err()
    {
        anyhow::bail!("lake {} does not exist (run sessionlake-ingest first)", path.display());
    }
    // AWS configuration is loaded only when something points at AWS: an S3 lake, a region or
    // profile, or an endpoint. A local lake with a local keyring never touches the network.
    let aws_hinted = cli.region.is_some()
        || cli.profile.is_some()
        || ["AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE", "AWS_ENDPOINT_URL"]
            .iter()
            .any(|name| std::env::var_os(name).is_some());
    let sdk_config = if matches!(location, LakeLocation::S3 { .. }) || aws_hinted {
        Some(
            sessionlake_storage::aws::load_sdk_config(
                cli.region.as_deref(),
                cli.profile.as_deref(),
            )
            .await,
        )
    } else {
        None
    };
    let lock = ObjectLockSettings::from_options(cli.object_lock_mode, cli.object_lock_days)?;
    let store = LakeStore::open(&location, sdk_config.as_ref())?.with_object_lock(lock);
    let keys = Keys::new(keyring, sdk_config).with_store(store.clone());
    Ok((store, keys))
}

/// Parses `--output`: a regex on the command's output, never a format name taken as one (it
/// would quietly match nothing).
fn output_regex(value: &str) -> Result<String, String> {
    const FORMATS: [&str; 6] = ["json", "jsonl", "csv", "table", "text", "yaml"];
    if FORMATS.contains(&value.to_ascii_lowercase().as_str()) {
        return Err(format!(
            "--output is a regex the command's output must match; for the output format use \
             --format {}, or write --output '^{value}$' to search for it",
            match value.to_ascii_lowercase().as_str() {
                "json" | "jsonl" => "json",
                "csv" => "csv",
                "table" | "text" => "table",
                _ => "json, csv or table",
            }
        ));
    }
    Ok(value.to_string())
}

/// Rows a search reads per query, about (see `Listing::print`); `SESSIONLAKE_CHUNK_ROWS` sets
/// another number (the tests use small ones to read through many windows).
fn chunk_rows() -> u64 {
    std::env::var("SESSIONLAKE_CHUNK_ROWS")
        .ok()
        .and_then(|value| value.parse().ok())
        .filter(|rows| *rows > 0)
        .unwrap_or(50_000)
}

/// Returns the live objects of the version of `session` that `source` delivered: its own
/// objects, and the compacted files that hold its rows.
pub(crate) fn version_objects<'a>(
    live: &'a BTreeMap<String, ObjectEntry>,
    session: &str,
    source: SessionSource,
) -> Vec<&'a ObjectEntry> {
    let compacted = manifest::compacted_version_source(live.values(), session) == Some(source);
    live.values()
        .filter(|entry| {
            paths::is_session_object(&entry.path, session, source)
                || (compacted
                    && paths::is_compacted(&entry.path)
                    && entry.sessions.iter().any(|id| id == session))
        })
        .collect()
}

/// Parses a size: bytes, or a number with KiB, MiB, GiB (or K, M, G, KB, MB, GB: powers of 1024
/// all the same).
fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().map_err(|_| format!("{text:?} is not a size such as 2GiB"))?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        _ => return Err(format!("{text:?} is not a size such as 2GiB")),
    };
    number
        .checked_mul(1 << shift)
        .filter(|bytes| *bytes > 0)
        .ok_or(format!("{text:?} is out of range"))
}

/// Returns the memory a query may hold: `--memory-limit`, else a quarter of the machine's
/// memory (`MemTotal` in /proc/meminfo; 1 GiB when that cannot be read).
fn memory_limit(cli: &Cli) -> usize {
    let total = || -> Option<u64> {
        let info = std::fs::read_to_string("/proc/meminfo").ok()?;
        let line = info.lines().find(|line| line.starts_with("MemTotal:"))?;
        let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib.saturating_mul(1024) / 4)
    };
    let bytes = cli.memory_limit.or_else(total).unwrap_or(1 << 30);
    usize::try_from(bytes).unwrap_or(usize::MAX)
}

/// Opens the lake's tables over the live files of `scope` that `choose` keeps (it sees the
/// manifest's view).
pub(crate) async fn open_tables<K: Fn(&str) -> bool>(
    cli: &Cli,
    scope: Scope<'_>,
    choose: impl FnOnce(&lake_tables::LakeSnapshot) -> K,
) -> anyhow::Result<SessionContext> {
    let (store, keys, snapshot) = open_reader(cli, scope).await?;
    let keep = choose(&snapshot);
    let ctx = lake_tables::new_context(memory_limit(cli))?;
    lake_tables::register(&ctx, &store, &snapshot, keys, &keep)?;
    Ok(ctx)
}

/// The who/where/when of `filters` as the read library takes them, times parsed.
fn filter_of(filters: &Filters, since: Option<i64>, until: Option<i64>) -> Filter {
    Filter {
        principal: filters.principal.clone(),
        run_as: filters.run_as.clone(),
        target: filters.target.clone(),
        session: filters.session.clone(),
        since,
        until,
    }
}

fn time_range(filters: &Filters) -> anyhow::Result<(Option<i64>, Option<i64>)> {
    let since = filters.since.as_deref().map(time::parse_time).transpose().context("--since")?;
    let until = filters.until.as_deref().map(time::parse_time).transpose().context("--until")?;
    Ok((since, until))
}

/// What a query printed: its rows, the last of them (for the next cursor), and whether rows
/// beyond the limit were left.
#[derive(Default)]
pub(crate) struct Page {
    pub(crate) rows: u64,
    last: Option<RecordBatch>,
    more: bool,
}

/// Streams the rows of `frame` to `printer` as they come, at most `limit` of them: memory holds
/// one batch (or one table chunk), whatever the size of the result.
pub(crate) async fn stream_frame(
    frame: DataFrame,
    printer: &mut Printer,
    progress: &Progress,
    limit: Option<u64>,
) -> anyhow::Result<Page> {
    let mut stream = frame.execute_stream().await.context("query failed")?;
    printer.start(&stream.schema())?;
    let mut page = Page::default();
    while let Some(batch) = stream.next().await {
        let batch = batch.context("query failed")?;
        let room = limit.map_or(u64::MAX, |limit| limit.saturating_sub(page.rows));
        let take = usize::try_from(room).unwrap_or(usize::MAX).min(batch.num_rows());
        page.more = take < batch.num_rows();
        if take > 0 {
            let shown = batch.slice(0, take);
            progress.suspend(|| printer.write_batch(&shown))?;
            progress.advance(take as u64);
            page.rows += take as u64;
            page.last = Some(shown.slice(take - 1, 1));
        }
        if page.more {
            break;
        }
    }
    Ok(page)
}

/// A listing in sort-key order that pages with a cursor: `search`, `sessions`, `access` and
/// `search --include-access`.
pub(crate) struct Listing {
    /// What the cursor pages.
    pub(crate) name: &'static str,
    /// `SELECT <the view's columns>, <time> AS sort_time FROM …`, without conditions.
    pub(crate) select: String,
    /// The sort time; nulls sort first.
    pub(crate) time_expression: &'static str,
    /// The rest of the sort key, as SQL and as result columns; with the time, unique.
    pub(crate) key_expressions: &'static [&'static str],
    pub(crate) key_columns: &'static [&'static str],
    pub(crate) view: &'static View,
}

impl Listing {
    fn sql(&self, query: &Query, tail: &str) -> String {
        format!("{} {} {tail}", self.select, query.where_clause())
    }

    /// Prints the page `paging` asks for, then the summary: how many rows match in all and
    /// the cursor of the next page.
    ///
    /// A page of at most [`chunk_rows`] rows is one query whose `LIMIT` keeps only the top rows
    /// while it scans. A bigger result, with `lake` given, is read window by window
    /// ([`sessionlake_read::window`]) so that memory holds one window; without `lake`, one query.
    pub(crate) async fn print(
        &self,
        ctx: &SessionContext,
        lake: Option<&LakeReader>,
        query: Query,
        paging: &Paging,
        mut printer: Printer,
    ) -> anyhow::Result<Outcome> {
        let after = paging.after.as_deref().map(|t| Cursor::decode(t, self.name)).transpose()?;
        let progress = Progress::spinner(printer.format() != OutputFormat::Json, "searching");
        let chunk = chunk_rows();
        let page = match lake {
            Some(lake) if paging.limit.is_none_or(|limit| limit > chunk) => {
                self.print_windows(
                    ctx,
                    lake,
                    &query,
                    after.as_ref(),
                    paging.limit,
                    chunk,
                    &mut printer,
                    &progress,
                )
                .await?
            }
            _ => {
                let range = None;
                self.print_query(
                    ctx,
                    &query,
                    after.as_ref(),
                    range,
                    paging.limit,
                    &mut printer,
                    &progress,
                )
                .await?
            }
        };
        let next = match (&page.last, page.more) {
            (Some(last), true) => {
                Some(Cursor::of_row(self.name, last, 0, SORT_TIME, self.key_columns)?.encode())
            }
            _ => None,
        };
        let matched = if paging.limit.is_some() || paging.after.is_some() {
            count_rows(ctx, &self.sql(&query, ""), query.params).await?
        } else {
            page.rows
        };
        drop(progress);
        let mut text = format!("{matched} {}", self.view.noun);
        if page.rows < matched {
            text.push_str(&format!(" (showing {}", page.rows));
            if let Some(next) = &next {
                text.push_str(&format!("; next page: --after {next}"));
            }
            text.push(')');
        }
        let summary = serde_json::json!({"matched": matched, "shown": page.rows, "next": next});
        printer.finish(summary, &text)?;
        Ok(if page.rows > 0 { Outcome::Matched } else { Outcome::NoMatch })
    }

    /// Prints the rows after `after` (from the start without one) whose sort time is in
    /// `range` (all without one), in sort-key order, at most `limit` of them.
    #[allow(clippy::too_many_arguments)]
    async fn print_query(
        &self,
        ctx: &SessionContext,
        query: &Query,
        after: Option<&Cursor>,
        range: Option<window::Range>,
        limit: Option<u64>,
        printer: &mut Printer,
        progress: &Progress,
    ) -> anyhow::Result<Page> {
        let mut query = query.clone();
        if let Some(cursor) = after {
            let condition =
                cursor.condition(self.time_expression, self.key_expressions, |v| query.param(v))?;
            query.conditions.push(condition);
        }
        let time = |micros| ScalarValue::TimestampMicrosecond(Some(micros), Some("UTC".into()));
        match range {
            None => {}
            Some(window::Range::Untimed) => {
                query.conditions.push(format!("({}) IS NULL", self.time_expression));
            }
            Some(window::Range::Timed { from, until }) => {
                query.bind(&format!("({}) >= ?", self.time_expression), time(from));
                if let Some(until) = until {
                    query.bind(&format!("({}) < ?", self.time_expression), time(until));
                }
            }
        }
        // One row past the limit tells whether there is a next page.
        let limit_sql = limit.map(|n| format!(" LIMIT {}", n.saturating_add(1)));
        let order = format!(
            "ORDER BY {} NULLS FIRST, {}{}",
            self.time_expression,
            self.key_expressions.join(", "),
            limit_sql.unwrap_or_default()
        );
        let frame = ctx
            .sql(&self.sql(&query, &order))
            .await
            .context("query failed")?
            .with_param_values(query.params)?;
        stream_frame(frame, printer, progress, limit).await
    }

    /// Prints the rows after `after`, at most `limit`, one sort-time window at a time, each
    /// window a query over the files of the sessions that reach into it.
    #[allow(clippy::too_many_arguments)]
    async fn print_windows(
        &self,
        ctx: &SessionContext,
        lake: &LakeReader,
        query: &Query,
        after: Option<&Cursor>,
        limit: Option<u64>,
        chunk: u64,
        printer: &mut Printer,
        progress: &Progress,
    ) -> anyhow::Result<Page> {
        let spans = session_spans(ctx, self.time_expression).await?;
        let mut page = Page::default();
        for window in window::plan(&spans, chunk) {
            let room = limit.map(|limit| limit - page.rows);
            let ctx = lake.tables(Some(&window.sessions))?;
            let part =
                self.print_query(&ctx, query, after, Some(window.range), room, printer, progress);
            let part = part.await?;
            page.rows += part.rows;
            if part.last.is_some() {
                page.last = part.last;
            }
            if part.more {
                page.more = true;
                break;
            }
        }
        Ok(page)
    }
}

/// The lake's files as a search reads them, to open tables over some of its sessions.
struct LakeReader {
    store: LakeStore,
    keys: Keys,
    snapshot: lake_tables::LakeSnapshot,
    /// Files the search reads at all (partitions, preferred sources).
    keep: Box<dyn Fn(&str) -> bool + Send + Sync>,
    /// The one session searched (`--session`): no other session's file is opened.
    only: Option<String>,
    /// Most memory a query may hold.
    memory_limit: usize,
}

impl LakeReader {
    /// Returns a context with the tables over the kept files of `sessions` (all without); the
    /// `access` table is never narrowed to sessions.
    fn tables(&self, sessions: Option<&HashSet<String>>) -> anyhow::Result<SessionContext> {
        let ctx = lake_tables::new_context(self.memory_limit)?;
        let of_sessions = |path: &str| {
            let Some(entry) = self.snapshot.live.get(path) else {
                return false;
            };
            // Only `commands` and `sessions` files are per session (`access` files are not).
            if !matches!(entry.kind, ObjectKind::Commands | ObjectKind::Sessions) {
                return true;
            }
            let wanted = |id: &String| {
                sessions.is_none_or(|sessions| sessions.contains(id))
                    && self.only.as_ref().is_none_or(|only| only == id)
            };
            entry.sessions.iter().any(wanted)
        };
        let keep = |path: &str| (self.keep)(path) && of_sessions(path);
        lake_tables::register(&ctx, &self.store, &self.snapshot, self.keys.clone(), &keep)?;
        Ok(ctx)
    }
}

/// Reads each session's range of sort times and its number of command rows, on the tables of
/// `ctx`, from plaintext columns only (no data key is used).
async fn session_spans(
    ctx: &SessionContext,
    time_expression: &str,
) -> anyhow::Result<Vec<window::Span>> {
    let sql = format!(
        "SELECT c.session_id, min({time_expression}) AS lo, max({time_expression}) AS hi, \
         count(*) AS n, count({time_expression}) AS timed FROM commands c {SESSION_TIMES_JOIN} \
         GROUP BY c.session_id"
    );
    let batches =
        ctx.sql(&sql).await.context("query failed")?.collect().await.context("query failed")?;
    let mut spans = Vec::new();
    for batch in &batches {
        let ids = batch.column(0).as_string_opt::<i32>().context("session_id is not text")?;
        let time = |column: usize| {
            batch
                .column(column)
                .as_primitive_opt::<TimestampMicrosecondType>()
                .context("sort time is not a time in µs")
        };
        let (lo, hi) = (time(1)?, time(2)?);
        let count = |column: usize| {
            batch.column(column).as_primitive_opt::<Int64Type>().context("count is not a number")
        };
        let (rows, timed) = (count(3)?, count(4)?);
        for row in 0..batch.num_rows() {
            let times =
                (lo.is_valid(row) && hi.is_valid(row)).then(|| (lo.value(row), hi.value(row)));
            spans.push(window::Span {
                session: ids.value(row).to_string(),
                times,
                rows: u64::try_from(rows.value(row)).unwrap_or_default(),
                untimed: timed.value(row) < rows.value(row),
            });
        }
    }
    Ok(spans)
}

/// Counts the rows of `sql`, whose placeholders are bound to `params`.
async fn count_rows(
    ctx: &SessionContext,
    sql: &str,
    params: Vec<ScalarValue>,
) -> anyhow::Result<u64> {
    let batches = ctx
        .sql(&format!("SELECT count(*) FROM ({sql}) AS matched"))
        .await
        .context("count failed")?
        .with_param_values(params)?
        .collect()
        .await
        .context("count failed")?;
    let count = batches
        .first()
        .and_then(|batch| batch.column(0).as_primitive_opt::<Int64Type>())
        .filter(|counts| !counts.is_empty())
        .map(|counts| counts.value(0))
        .context("count returned no row")?;
    Ok(u64::try_from(count).unwrap_or_default())
}

fn regex_flag(flag: &str, pattern: &str) -> anyhow::Result<regex::Regex> {
    regex::Regex::new(pattern)
        .with_context(|| format!("{flag} {pattern:?} is not a valid regular expression"))
}

async fn search(cli: &Cli, args: &SearchArgs) -> anyhow::Result<Outcome> {
    let (since, until) = time_range(&args.filters)?;
    let mut query = Query::default();
    let mut highlights = Vec::new();
    if let Some(pattern) = args.pattern.as_ref().or(args.command.as_ref()) {
        let pattern = if args.fixed_strings { regex::escape(pattern) } else { pattern.clone() };
        let pattern = if args.ignore_case { format!("(?i){pattern}") } else { pattern };
        let flag = if args.pattern.is_some() { "PATTERN" } else { "--command" };
        highlights.push(regex_flag(flag, &pattern)?);
        query.bind("regexp_like(c.command, ?)", ScalarValue::from(pattern.as_str()));
    }
    if let Some(text) = &args.command_contains {
        highlights.push(regex_flag("--command-contains", &regex::escape(text))?);
        query.bind("strpos(c.command, ?) > 0", ScalarValue::from(text.as_str()));
    }
    if let Some(pattern) = &args.output {
        regex_flag("--output", pattern)?;
        query.bind("regexp_like(c.output, ?)", ScalarValue::from(pattern.as_str()));
    }
    if let Some(kind) = &args.kind {
        // Files written before the column: every row a shell command.
        let condition = format!("coalesce(c.{}, '{KIND_SHELL}') = ?", columns::KIND);
        query.bind(&condition, ScalarValue::from(kind.as_str()));
    }
    if let Some(program) = &args.program {
        query.bind(&format!("c.{} = ?", columns::PROGRAM), ScalarValue::from(program.as_str()));
    }
    let time_expression = "coalesce(c.started_at, s.started_at, s.ended_at)";
    query.bind_filters(&filter_of(&args.filters, since, until), COMMANDS_ALIAS, time_expression);
    // One session searched: the checkpoint's part that holds it is enough.
    let scope = args.filters.session.as_deref().map_or(Scope::Whole, Scope::Session);
    let (store, keys, snapshot) = open_reader(cli, scope).await?;
    let searched = manifest::preferred_commands(&snapshot.live);
    let in_range = partitions_between(since, until);
    let lake = LakeReader {
        store,
        keys,
        snapshot,
        keep: Box::new(move |path: &str| {
            in_range(path) && (!path.starts_with(paths::COMMANDS_DIR) || searched.contains(path))
        }),
        only: args.filters.session.clone(),
        memory_limit: memory_limit(cli),
    };
    let ctx = lake.tables(None)?;
    if args.include_access {
        let commands_sql = format!(
            "SELECT {SEARCH_COLUMNS}, c.effective_user, c.shell, c.program FROM commands c \
             {SESSION_TIMES_JOIN} {}",
            query.where_clause()
        );
        let (listing, query) =
            access::search_with_access(&commands_sql, query, &args.filters, since, until);
        let printer = listing.view.printer(&args.print).with_highlights(highlights);
        return listing.print(&ctx, None, query, &args.paging, printer).await;
    }
    let listing = Listing {
        name: "commands",
        select: format!(
            "SELECT {SEARCH_COLUMNS}, {SEARCH_ADDED_COLUMNS}, {time_expression} AS {SORT_TIME} \
             FROM commands c {SESSION_TIMES_JOIN}"
        ),
        time_expression,
        key_expressions: &["c.session_id", "c.seq"],
        key_columns: &["session_id", "seq"],
        view: &SEARCH_VIEW,
    };
    let printer = SEARCH_VIEW.printer(&args.print).with_highlights(highlights);
    listing.print(&ctx, Some(&lake), query, &args.paging, printer).await
}

async fn sessions(cli: &Cli, args: &SessionsArgs) -> anyhow::Result<Outcome> {
    let (since, until) = time_range(&args.filters)?;
    let wait = time::parse_span(&args.transcript_wait)
        .unwrap_or_else(|| Err(anyhow::anyhow!("use a span such as 24h or 2d")))
        .with_context(|| format!("--transcript-wait {:?}", args.transcript_wait))?;
    let mut query = Query::default();
    let time_expression = "coalesce(s.started_at, s.ended_at)";
    query.bind_filters(&filter_of(&args.filters, since, until), "s", time_expression);
    let mut listed = Query::default();
    if let Some(confidence) = &args.confidence {
        query.bind(
            &format!("s.{} = ?", columns::CONFIDENCE),
            ScalarValue::from(confidence.as_str()),
        );
        // Sessions CloudTrail saw without a transcript have no confidence.
        listed.conditions.push("s.transcript".into());
    }
    let ctx = open_tables(cli, Scope::Whole, |_| partitions_between(since, until)).await?;
    // A version whose content names another session than its name is in conflict too.
    let status = format!(
        "CASE WHEN starts_with(coalesce(s.{}, ''), '{}') THEN '{}' ELSE s.status END",
        columns::CONFIDENCE_REASON,
        sessionlake_schemas::NAME_MISMATCH_REASON.replace('\'', "''"),
        access::ATTRIBUTION_CONFLICT
    );
    let frame = ctx
        .sql(&format!(
            "SELECT s.session_id, s.started_at, s.ended_at, s.principal, s.run_as, s.target, \
             s.command_count, {status} AS status, s.source, s.{} FROM sessions s {}",
            columns::CONFIDENCE,
            query.where_clause()
        ))
        .await?
        .with_param_values(query.params)?;
    let found = frame.collect().await.context("query failed")?;
    // Sessions with their transcript status, and sessions CloudTrail saw that have none; then
    // listed and paged like any table.
    let merged =
        access::with_transcript_status(&ctx, &found, &args.filters, since, until, wait).await?;
    ctx.register_batch("sessions_with_status", merged)?;
    let listing = Listing {
        name: "sessions",
        select: format!(
            "SELECT s.session_id, s.started_at, s.ended_at, s.principal, s.run_as, s.target, \
             s.command_count, s.status, s.source, s.transcript, s.missing, s.document_name, \
             s.confidence, {time_expression} AS {SORT_TIME}, coalesce(s.source, '') AS source_key \
             FROM sessions_with_status s"
        ),
        time_expression,
        key_expressions: &["s.session_id", "coalesce(s.source, '')"],
        key_columns: &["session_id", "source_key"],
        view: &SESSIONS_VIEW,
    };
    let printer = SESSIONS_VIEW.printer(&args.print);
    listing.print(&ctx, None, listed, &args.paging, printer).await
}

async fn show(cli: &Cli, args: &ShowArgs) -> anyhow::Result<Outcome> {
    if args.raw {
        return show_raw(cli, &args.session).await;
    }
    let mut query = Query::default();
    query.bind("c.session_id = ?", ScalarValue::from(args.session.as_str()));
    // A session delivered by several sources (S3 and CloudWatch) is shown from one.
    let session = args.session.clone();
    let mut known = false;
    let ctx = open_tables(cli, Scope::Session(&args.session), |snapshot| {
        let preferred = session_sources(&snapshot.live, &session).first().copied();
        known = preferred.is_some();
        let files: HashSet<String> = preferred
            .map(|source| version_objects(&snapshot.live, &session, source))
            .unwrap_or_default()
            .into_iter()
            .map(|entry| entry.path.clone())
            .collect();
        move |path: &str| files.contains(path)
    })
    .await?;
    anyhow::ensure!(
        known,
        "no session {} in {} (list them with `sessionlake sessions`)",
        sessionlake_schemas::session_id::escaped(&args.session),
        cli.lake
    );
    let sql = format!(
        "SELECT c.seq, c.started_at AS time, c.cwd, c.prompt, c.command, c.output, \
         c.output_truncated, c.confidence FROM commands c {} ORDER BY c.seq",
        query.where_clause()
    );
    let frame = ctx.sql(&sql).await.context("query failed")?.with_param_values(query.params)?;
    let mut printer = SHOW_VIEW.printer(&args.print);
    let page = stream_frame(frame, &mut printer, &Progress::spinner(false, ""), None).await?;
    let summary = serde_json::json!({"matched": page.rows, "shown": page.rows});
    printer.finish(summary, &format!("{} {}", page.rows, SHOW_VIEW.noun))?;
    Ok(if page.rows > 0 { Outcome::Matched } else { Outcome::NoMatch })
}

/// Returns the sources that delivered `session` (live objects only), the one `show` reads
/// first: the source of the version in a compacted file, else by [`SessionSource::PREFERENCE`].
pub(crate) fn session_sources(
    live: &BTreeMap<String, ObjectEntry>,
    session: &str,
) -> Vec<SessionSource> {
    let in_compacted = live.values().any(|entry| {
        entry.kind == ObjectKind::Commands
            && paths::is_compacted(&entry.path)
            && entry.sessions.iter().any(|id| id == session)
    });
    let compacted =
        in_compacted.then(|| manifest::compacted_version_source(live.values(), session)).flatten();
    let mut sources: Vec<SessionSource> = compacted.into_iter().collect();
    sources.extend(SessionSource::PREFERENCE.into_iter().filter(|source| {
        compacted != Some(*source)
            && live.keys().any(|path| paths::is_session_object(path, session, *source))
    }));
    sources
}

/// Reads a committed object and checks its size and SHA-256 against the manifest entry.
pub(crate) async fn read_committed(
    store: &LakeStore,
    entry: &ObjectEntry,
) -> anyhow::Result<bytes::Bytes> {
    Ok(store.get_committed(entry).await?)
}

/// Writes the session's original transcript to stdout, after checking the stored object
/// against the hash the manifest committed and opening it with its data key.
async fn show_raw(cli: &Cli, session: &str) -> anyhow::Result<Outcome> {
    let (store, keys, snapshot) = open_reader(cli, Scope::Session(session)).await?;
    let sources = session_sources(&snapshot.live, session);
    // The same source as `show` (and `export`) reads.
    let entry = sources.first().and_then(|source| {
        snapshot.live.values().find(|entry| {
            entry.kind == ObjectKind::Raw
                && entry.sessions.iter().any(|id| id == session)
                && paths::is_session_object(&entry.path, session, *source)
        })
    });
    let Some(entry) = entry else {
        anyhow::bail!(
            "no session {} in {} (list them with `sessionlake sessions`)",
            sessionlake_schemas::session_id::escaped(session),
            store.location()
        );
    };
    let lake = snapshot.lake_id.clone();
    // A streamed CloudWatch delivery is stored as its log events: the terminal lines they
    // carry are what replays.
    let out: Box<dyn std::io::Write + Send> =
        if sources.first() == Some(&SessionSource::CloudwatchStream) {
            Box::new(export::StreamedTerminal::new(std::io::stdout()))
        } else {
            Box::new(std::io::stdout())
        };
    // Streamed: the stored object is hashed against the manifest first, then decrypted and
    // written as it is read again; a transcript of any size is never held whole.
    let written = keys
        .open_raw_to(
            &store,
            entry,
            session,
            lake.as_deref(),
            sessionlake_storage::envelope::MAX_DECOMPRESSED_LEN,
            out,
        )
        .await?;
    match written {
        Err(error) if error.kind() != std::io::ErrorKind::BrokenPipe => return Err(error.into()),
        _ => {}
    }
    if sources.len() > 1 {
        eprintln!(
            "sessionlake: {session} has {} transcripts (sources); showed {}",
            sources.len(),
            entry.path
        );
    }
    Ok(Outcome::Matched)
}

/// How a listing's rows look in a table; JSON and CSV show the query's columns as they are.
struct View {
    /// The query's shown columns, in order (sort keys may follow them).
    columns: &'static [&'static str],
    header: &'static [&'static str],
    row: fn(&[Option<String>]) -> Vec<String>,
    /// Table column where matches are highlighted.
    highlight_column: Option<usize>,
    noun: &'static str,
}

impl View {
    fn printer(&self, print: &OutputArgs) -> Printer {
        let layout = TableLayout {
            header: self.header.iter().map(|title| title.to_string()).collect(),
            row: self.row,
            highlight_column: self.highlight_column,
        };
        Printer::new(print, self.columns.len(), "match", layout)
    }
}

/// A cell holding a name (a session id, a principal, a target, a user): printed escaped, as
/// ingest's log lines print names (control, invisible and bidirectional characters made
/// visible; see `session_id::escaped`), so that a name cannot break a row, start a line of its
/// own or pass for another.
fn cell(row: &[Option<String>], index: usize) -> String {
    match row.get(index).cloned().flatten() {
        Some(name) => sessionlake_schemas::session_id::escaped(&name).into_owned(),
        None => "-".to_string(),
    }
}

/// A cell holding transcript text (a command, its output, a prompt): as it is, line breaks
/// kept; the table makes its control characters visible.
fn text_cell(row: &[Option<String>], index: usize) -> String {
    row.get(index).cloned().flatten().unwrap_or_else(|| "-".to_string())
}

/// The session's OS user (`run_as`), and whom the command ran as when that differs (`sudo su
/// -`, `sudo -u bob CMD`): `ssm-user→root`. Narrow where nothing changed.
fn run_as_cell(row: &[Option<String>], run_as: usize, effective_user: usize) -> String {
    let session_user = row.get(run_as).cloned().flatten();
    match row.get(effective_user).cloned().flatten() {
        Some(user) if Some(&user) != session_user.as_ref() => {
            format!("{}→{}", cell(row, run_as), cell(row, effective_user))
        }
        _ => cell(row, run_as),
    }
}

/// The command on one line; a line typed into a REPL after its program's name:
/// `[sqlite3] select count(*) from t;`.
fn command_cell(row: &[Option<String>], command: usize, program: usize) -> String {
    let text = text_cell(row, command).replace('\n', "⏎ ");
    match row.get(program).cloned().flatten() {
        Some(_) => format!("[{}] {text}", cell(row, program)),
        None => text,
    }
}

const SEARCH_VIEW: View = View {
    columns: &[
        "session_id",
        "seq",
        "time",
        "time_kind",
        "principal",
        "run_as",
        "target",
        "cwd",
        "command",
        "effective_user",
        "shell",
        "command_kind",
        "program",
    ],
    header: &["TIME", "SESSION", "PRINCIPAL", "RUN AS", "TARGET", "COMMAND"],
    row: |row| {
        // `~` marks the session's start standing in for a command without a time of its own.
        let time = match (row.get(2).cloned().flatten(), row.get(3).cloned().flatten()) {
            (Some(time), Some(kind)) if kind == "session-start" => format!("~{time}"),
            (Some(time), _) => time,
            (None, _) => "-".to_string(),
        };
        vec![
            time,
            cell(row, 0),
            cell(row, 4),
            run_as_cell(row, 5, 9),
            cell(row, 6),
            command_cell(row, 8, 12),
        ]
    },
    highlight_column: Some(5),
    noun: "matching commands",
};

const SHOW_VIEW: View = View {
    columns: &[
        "seq",
        "time",
        "cwd",
        "prompt",
        "command",
        "output",
        "output_truncated",
        "confidence",
    ],
    header: &["#", "TIME", "COMMAND", "OUTPUT"],
    row: |row| {
        let mut output = text_cell(row, 5);
        if row.get(6).cloned().flatten().as_deref() == Some("true") {
            output.push_str("\n[output cut]");
        }
        let command = format!("{}{}", text_cell(row, 3), text_cell(row, 4));
        vec![cell(row, 0), cell(row, 1), command, output]
    },
    highlight_column: None,
    noun: "commands",
};

const SESSIONS_VIEW: View = View {
    columns: &access::SESSIONS_COLUMNS,
    header: &[
        "STARTED",
        "ENDED",
        "SESSION",
        "PRINCIPAL",
        "RUN AS",
        "TARGET",
        "COMMANDS",
        "STATUS",
        "CONFIDENCE",
        "SOURCE",
        "TRANSCRIPT",
    ],
    row: |row| {
        let transcript = match (row[9].as_deref(), row[10].as_deref()) {
            (Some("true"), _) => "yes".to_string(),
            (_, Some(why)) => format!("no: {why}"),
            _ => "no".to_string(),
        };
        vec![
            cell(row, 1),
            cell(row, 2),
            cell(row, 0),
            cell(row, 3),
            cell(row, 4),
            cell(row, 5),
            cell(row, 6),
            cell(row, 7),
            cell(row, 12),
            cell(row, 8),
            transcript,
        ]
    },
    highlight_column: None,
    noun: "matching sessions",
};

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
