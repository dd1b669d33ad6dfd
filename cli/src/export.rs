//! `sessionlake export`: one session as an evidence bundle that an auditor checks with standard
//! tools (`sha256sum`, `openssl`, `jq`, `asciinema`), without sessionlake and without keys.
//!
//! # Bundle (format version [`BUNDLE_VERSION`])
//!
//! ```text
//! README.txt          how to verify the bundle, with this session's file names filled in
//! index.html          the evidence viewer: facts, verification state, timeline and replay in
//!                     one self-contained page (see [`crate::html`])
//! transcript.log      the original transcript bytes as delivered (`transcript.jsonl` for a
//!                     streamed CloudWatch session: one `{"timestamp","message"}` per event)
//! commands.jsonl      every command row, decrypted, one JSON object per line
//! commands.csv        the same rows and columns, RFC 4180 CSV with a header
//! session.json        the session row
//! session.cast        asciicast v2 replay (see [`crate::asciicast`] for its timing)
//! provenance.json     which lake objects, manifests and chain head the bundle comes from
//! lake/…              those objects exactly as the lake stores them (encrypted), the manifest
//!                     files that committed them, and the lake's public-key record
//! public-key.pem      the public key (SubjectPublicKeyInfo) that signs SHA256SUMS: the
//!                     keyring's Ed25519 key, or the KMS key of `--signing-key` (ECDSA P-256)
//! manifest-key-N.pem  any other key that signed one of the bundle's manifests
//! SHA256SUMS          `sha256sum` lines over every file above
//! SHA256SUMS.sig      the signature of SHA256SUMS by the key of public-key.pem
//! ```
//!
//! Before anything is written, every object is checked against the SHA-256 and size its manifest
//! entry committed, the manifests against the chain and the keys you trust (the keyring's, and
//! KMS keys named with `--signing-key`, whose public half comes from KMS), and the
//! decrypted transcript against the `raw_sha256` of the session row: an export never vouches
//! for bytes the lake did not commit. Plaintext reaches the disk only inside `--out` (folders
//! 0700, files 0600). `--format tar.zst` writes the same files under `<session>/` in one
//! `<session>.tar.zst`.

use std::collections::BTreeSet;
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use clap::Args as ClapArgs;
use sessionlake_schemas::manifest::{ObjectKind, SIGNATURE_ECDSA_P256};
use sessionlake_schemas::{SessionSource, columns, session_id};
use sessionlake_storage::keys::Keys;
use sessionlake_storage::store::{LakeStore, sha256_hex};

use crate::asciicast::{CastBuilder, Timing};
use crate::progress::Progress;
use crate::{Cli, Outcome};
use sessionlake_read::evidence::{
    ACCESS_EVENT_COLUMNS, Cell, Evidence, Rows, SignerKey, access_events, gather,
};
use sessionlake_read::streamed;
use sessionlake_storage::trust::Snapshot;

/// Version of the bundle layout, in `provenance.json`.
pub const BUNDLE_VERSION: u32 = 1;
/// Folder of the bundle that holds lake objects as stored.
const LAKE_FOLDER: &str = "lake";
/// zstd level of `--format tar.zst`.
const ARCHIVE_ZSTD_LEVEL: i32 = 9;

/// Options of `export`.
#[derive(Debug, ClapArgs)]
pub struct ExportArgs {
    /// Session id.
    pub session: String,
    /// Folder to write the bundle into; created (mode 0700) if absent, refused if not empty
    /// unless --force. With --format tar.zst, the folder that receives <session>.tar.zst.
    #[arg(long, env = "SESSIONLAKE_OUT")]
    pub out: PathBuf,
    /// `dir`: the bundle's files in --out; `tar.zst`: one <session>.tar.zst in --out.
    #[arg(long, value_enum, default_value_t = BundleFormat::Dir, env = "SESSIONLAKE_FORMAT")]
    pub format: BundleFormat,
    /// Write over a non-empty --out (files of other names are left alone and named), or over
    /// an existing <session>.tar.zst.
    #[arg(long, env = "SESSIONLAKE_FORCE")]
    pub force: bool,
    /// Export the delivery of this source (s3, local, cloudwatch-upload, cloudwatch-stream) of
    /// a session delivered more than once, instead of the preferred one (S3 first).
    #[arg(long, value_parser = crate::session_source, env = "SESSIONLAKE_SOURCE")]
    pub source: Option<SessionSource>,
}

/// How the bundle is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BundleFormat {
    /// Files in a folder.
    Dir,
    /// One zstd-compressed tar file.
    #[value(name = "tar.zst")]
    TarZst,
}

/// One file of the bundle: a relative path with `/` separators, and its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleFile {
    /// Path inside the bundle.
    pub path: String,
    /// Contents.
    pub bytes: Vec<u8>,
}

/// Where the bundle goes, checked before the lake is read.
#[derive(Debug)]
enum Destination {
    Folder(PathBuf),
    Archive { folder: PathBuf, file: PathBuf },
}

impl Destination {
    fn check(args: &ExportArgs, session: &str) -> anyhow::Result<Destination> {
        let out = &args.out;
        match std::fs::metadata(out) {
            Ok(meta) if !meta.is_dir() => {
                anyhow::bail!("--out {} exists and is not a folder", out.display())
            }
            Ok(_) => {}
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => {
                return Err(error).with_context(|| format!("failed to inspect {}", out.display()));
            }
        }
        match args.format {
            BundleFormat::Dir => {
                let not_empty = match std::fs::read_dir(out) {
                    Ok(mut entries) => entries.next().is_some(),
                    Err(error) if error.kind() == std::io::ErrorKind::NotFound => false,
                    Err(error) => {
                        return Err(error)
                            .with_context(|| format!("failed to list {}", out.display()));
                    }
                };
                anyhow::ensure!(
                    !not_empty || args.force,
                    "{} is not empty: choose a new folder, or pass --force to write the bundle \
                     over it",
                    out.display()
                );
                Ok(Destination::Folder(out.clone()))
            }
            BundleFormat::TarZst => {
                let file = out.join(format!("{session}.tar.zst"));
                let exists = std::fs::symlink_metadata(&file).is_ok();
                anyhow::ensure!(
                    !exists || args.force,
                    "{} exists: pass --force to replace it",
                    file.display()
                );
                Ok(Destination::Archive { folder: out.clone(), file })
            }
        }
    }
}

/// Returns the columns of the export and each row's cells: the table's, plus `time` after
/// `seq` (`started_at` as `show` prints it, so that rows compare equal to `show --json`).
fn with_show_time(table: &Rows) -> (Vec<String>, Vec<Vec<Cell>>) {
    let at = table.index(columns::SEQ).map_or(0, |seq| seq + 1);
    let started = table.index(columns::STARTED_AT);
    let mut names = table.columns.clone();
    names.insert(at, "time".to_string());
    let rows = table
        .rows
        .iter()
        .map(|row| {
            let time = match started.and_then(|index| row.get(index)) {
                Some(Cell::Time(micros)) => Cell::Text(crate::time::format_time(*micros)),
                _ => Cell::Null,
            };
            let mut cells = row.clone();
            cells.insert(at.min(cells.len()), time);
            cells
        })
        .collect();
    (names, rows)
}

/// Returns one JSON object per row, keys in column order.
fn json_lines(names: &[String], rows: &[Vec<Cell>]) -> Vec<u8> {
    let mut out = String::new();
    for row in rows {
        out.push('{');
        for (index, (name, cell)) in names.iter().zip(row).enumerate() {
            if index > 0 {
                out.push(',');
            }
            out.push_str(&serde_json::Value::from(name.as_str()).to_string());
            out.push(':');
            out.push_str(&cell.json().to_string());
        }
        out.push_str("}\n");
    }
    out.into_bytes()
}

/// Returns RFC 4180 CSV with a header: fields holding a comma, quote, CR or LF are quoted, quotes
/// doubled; a null is an empty field.
fn csv_table(names: &[String], rows: &[Vec<Cell>]) -> anyhow::Result<Vec<u8>> {
    let mut writer = csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .quote_style(csv::QuoteStyle::Necessary)
        .from_writer(Vec::new());
    writer.write_record(names).context("failed to write the CSV header")?;
    for row in rows {
        writer.write_record(row.iter().map(Cell::csv)).context("failed to write a CSV row")?;
    }
    writer.into_inner().map_err(|error| anyhow::anyhow!("failed to finish the CSV: {error}"))
}

/// Returns one row as a pretty JSON object, keys in column order.
fn json_object(names: &[String], row: &[Cell]) -> Vec<u8> {
    let mut out = String::from("{\n");
    for (index, (name, cell)) in names.iter().zip(row).enumerate() {
        let comma = if index + 1 < names.len().min(row.len()) { "," } else { "" };
        out.push_str(&format!(
            "  {}: {}{comma}\n",
            serde_json::Value::from(name.as_str()),
            cell.json()
        ));
    }
    out.push_str("}\n");
    out.into_bytes()
}

/// Returns `SHA256SUMS` over `files`, in path order, as `sha256sum` writes it.
fn sha256sums(files: &[BundleFile]) -> anyhow::Result<Vec<u8>> {
    let mut sorted: Vec<&BundleFile> = files.iter().collect();
    sorted.sort_by(|a, b| a.path.cmp(&b.path));
    let mut out = String::new();
    for file in sorted {
        // sha256sum escapes names holding `\` or a newline; bundle names never do.
        anyhow::ensure!(
            !file.path.contains(['\\', '\n', '\r']),
            "bundle file name {:?} cannot be listed in SHA256SUMS",
            file.path
        );
        out.push_str(&format!("{}  {}\n", sha256_hex(&file.bytes), file.path));
    }
    Ok(out.into_bytes())
}

/// Returns the bundle path of lake object `path`, refusing anything but plain relative names.
fn lake_copy_path(path: &str) -> anyhow::Result<String> {
    let plain = !path.is_empty()
        && Path::new(path).components().all(|part| matches!(part, Component::Normal(_)));
    anyhow::ensure!(plain, "lake path {path:?} is not a plain relative path");
    Ok(format!("{LAKE_FOLDER}/{path}"))
}

/// A command as the replay places it: where it starts in the transcript, and its time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct CastCommand {
    /// `raw_offset`: where the command starts in the transcript.
    offset: u64,
    /// `started_at` (µs since the epoch), when the source records it.
    started_at: Option<i64>,
}

/// `session.cast` and where each command is in it.
#[derive(Debug, Clone, PartialEq)]
struct SessionCast {
    /// The recording.
    text: String,
    /// How it is timed.
    timing: Timing,
    /// Seconds from the start of the recording at which each command (in the order given)
    /// appears, when known.
    moments: Vec<Option<f64>>,
}

/// Builds `session.cast`: the recording, how it is timed, and each command's moment in it (a
/// streamed session: its recorded time; otherwise the synthetic event that starts at its
/// `raw_offset`).
fn session_cast(
    session: &str,
    source: SessionSource,
    raw: &[u8],
    commands: &[CastCommand],
    started_at: Option<i64>,
) -> SessionCast {
    let mut cast = CastBuilder::new();
    if source.is_streamed() {
        match streamed::events(raw) {
            Ok(events) if !events.is_empty() => {
                let first = events.iter().map(|(ms, _)| *ms).min().unwrap_or_default();
                for (ms, lines) in &events {
                    let micros = u64::try_from(ms.saturating_sub(first))
                        .unwrap_or_default()
                        .saturating_mul(1000);
                    let mut bytes = Vec::new();
                    for line in lines {
                        bytes.extend_from_slice(line.as_bytes());
                        bytes.push(b'\n');
                    }
                    cast.output(micros, &bytes);
                }
                let title =
                    format!("{session} ({}): {}", source.as_str(), Timing::Recorded.describe());
                // A command's `raw_offset` is in the line of the event that holds it: its
                // moment is that event's (its `started_at` has whole seconds only).
                let lines = streamed::event_line_times(raw);
                let moments = commands
                    .iter()
                    .map(|command| {
                        let at = lines.partition_point(|(start, _)| *start <= command.offset);
                        let ms = match at.checked_sub(1).and_then(|line| lines.get(line)) {
                            Some((_, ms)) => *ms,
                            None => command.started_at?.div_euclid(1000),
                        };
                        Some(ms.saturating_sub(first).max(0) as f64 / 1000.0)
                    })
                    .collect();
                return SessionCast {
                    text: cast.finish(Some(first.div_euclid(1000)), &title),
                    timing: Timing::Recorded,
                    moments,
                };
            }
            Ok(_) => {}
            Err(error) => {
                tracing::warn!(session, %error, "streamed transcript not readable as events; pacing the cast synthetically");
            }
        }
    }
    let offsets: Vec<u64> = commands.iter().map(|command| command.offset).collect();
    let schedule = crate::asciicast::synthetic_schedule(raw, &offsets);
    for (micros, range) in &schedule {
        cast.output(*micros, &raw[range.clone()]);
    }
    // The schedule cuts a piece where each command starts: the first piece at or after it.
    let moments = offsets
        .iter()
        .map(|offset| {
            let at = schedule.partition_point(|(_, range)| (range.start as u64) < *offset);
            schedule.get(at).map(|(micros, _)| *micros as f64 / 1_000_000.0)
        })
        .collect();
    let title = format!("{session} ({}): {}", source.as_str(), Timing::Synthetic.describe());
    let timestamp = started_at.map(|micros| micros.div_euclid(1_000_000));
    SessionCast { text: cast.finish(timestamp, &title), timing: Timing::Synthetic, moments }
}

/// Returns the openssl commands that check `signature` over `message` with `key_file`, and
/// what openssl prints when it holds. A KMS signature is over the message's SHA-256 digest
/// (sessionlake hands KMS the digest as the message), hence two steps.
fn openssl_check(
    key: &SignerKey,
    key_file: &str,
    message: &str,
    signature: &str,
) -> (String, &'static str) {
    if key.algorithm == SIGNATURE_ECDSA_P256 {
        let command = format!(
            "openssl dgst -sha256 -binary {message} > {message}.sha256\n   \
             openssl dgst -sha256 -verify {key_file} -signature {signature} {message}.sha256"
        );
        (command, "Verified OK")
    } else {
        let command = format!(
            "openssl pkeyutl -verify -pubin -inkey {key_file} -rawin -in {message} -sigfile {signature}"
        );
        (command, "Signature Verified Successfully")
    }
}

/// Names the files of the bundle and its README; everything but SHA256SUMS and its signature.
fn bundle_files(
    session: &str,
    evidence: &Evidence,
    bundle_key: &SignerKey,
    lake: &str,
    exported_at: &str,
    cloudtrail: &CloudTrailEvents,
) -> anyhow::Result<(Vec<BundleFile>, usize)> {
    let keys = key_files(bundle_key, &evidence.manifest_keys);
    let source = evidence.source;
    let transcript_name = if source.is_streamed() { "transcript.jsonl" } else { "transcript.log" };
    let mut files =
        vec![BundleFile { path: transcript_name.to_string(), bytes: evidence.transcript.clone() }];

    let (names, rows) = with_show_time(&evidence.commands);
    files.push(BundleFile { path: "commands.jsonl".into(), bytes: json_lines(&names, &rows) });
    let csv_names = if names.is_empty() {
        sessionlake_schemas::commands_schema()
            .fields()
            .iter()
            .map(|field| field.name().clone())
            .collect()
    } else {
        names.clone()
    };
    files.push(BundleFile { path: "commands.csv".into(), bytes: csv_table(&csv_names, &rows)? });

    let table = &evidence.session_table;
    let session_row = table.rows.first().context("session row")?;
    files.push(BundleFile {
        path: "session.json".into(),
        bytes: json_object(&table.columns, session_row),
    });

    let cast_commands: Vec<CastCommand> = evidence
        .commands
        .rows
        .iter()
        .map(|row| CastCommand {
            offset: evidence.commands.unsigned(row, columns::RAW_OFFSET).unwrap_or(u64::MAX),
            started_at: evidence.commands.time(row, columns::STARTED_AT),
        })
        .collect();
    let started_at = table.time(session_row, columns::STARTED_AT);
    let cast = session_cast(session, source, &evidence.transcript, &cast_commands, started_at);
    let timing = cast.timing;
    files.push(BundleFile { path: "session.cast".into(), bytes: cast.text.clone().into_bytes() });

    for (entry, bytes) in &evidence.objects {
        files.push(BundleFile { path: lake_copy_path(&entry.path)?, bytes: bytes.to_vec() });
    }
    for (link, bytes) in &evidence.manifests {
        files.push(BundleFile { path: lake_copy_path(&link.path)?, bytes: bytes.to_vec() });
    }
    for (key, file) in &keys {
        files.push(BundleFile { path: file.clone(), bytes: key.pem().into_bytes() });
    }

    let objects: Vec<serde_json::Value> = evidence
        .objects
        .iter()
        .map(|(entry, _)| {
            serde_json::json!({
                "path": entry.path,
                "bundle_path": format!("{LAKE_FOLDER}/{}", entry.path),
                "kind": entry.kind,
                "size": entry.size,
                "sha256": entry.sha256,
                "committed_by": evidence.committed_by(entry).map(|link| link.path.clone()),
            })
        })
        .collect();
    let manifests: Vec<serde_json::Value> = evidence
        .manifests
        .iter()
        .map(|(link, _)| {
            serde_json::json!({
                "path": link.path,
                "bundle_path": format!("{LAKE_FOLDER}/{}", link.path),
                "sequence": link.manifest.body.sequence,
                "sha256": link.sha256,
                "previous_sha256": link.manifest.body.previous_sha256,
                "committed_at": link.manifest.body.committed_at,
                "signature_key_id": link.manifest.signature.key_id,
                "public_key_file": key_file(&keys, &link.manifest.signature.key_id),
            })
        })
        .collect();
    let provenance = serde_json::json!({
        "bundle_version": BUNDLE_VERSION,
        "session_id": session,
        "source": source.as_str(),
        "sources_in_lake": evidence.sources.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
        "lake": lake,
        "exported_at": exported_at,
        "exported_by": format!("sessionlake {}", env!("CARGO_PKG_VERSION")),
        "transcript": {
            "file": transcript_name,
            "size": evidence.transcript.len(),
            "sha256": sha256_hex(&evidence.transcript),
            "lake_object": evidence.raw_entry.path,
            "lake_object_sha256": evidence.raw_entry.sha256,
        },
        "commands": evidence.commands.rows.len(),
        "cast": {"file": "session.cast", "timing": match timing {
            Timing::Recorded => "recorded",
            Timing::Synthetic => "synthetic",
        }},
        "objects": objects,
        "manifests": manifests,
        "chain_head_at_export": evidence.head.as_ref().map(|head| serde_json::json!({
            "path": head.path,
            "sequence": head.manifest.body.sequence,
            "sha256": head.sha256,
        })),
        "signing_key": {
            "key_id": bundle_key.key_id,
            "algorithm": bundle_key.algorithm,
            "file": BUNDLE_KEY_FILE,
            "spki_sha256": bundle_key.fingerprint(),
        },
        "manifest_keys": keys.iter().filter(|(key, _)| evidence.manifest_keys.contains(key)).map(|(key, file)| serde_json::json!({
            "key_id": key.key_id,
            "algorithm": key.algorithm,
            "file": file,
            "spki_sha256": key.fingerprint(),
        })).collect::<Vec<_>>(),
    });
    let mut provenance_bytes =
        serde_json::to_vec_pretty(&provenance).context("failed to encode provenance.json")?;
    provenance_bytes.push(b'\n');
    files.push(BundleFile { path: "provenance.json".into(), bytes: provenance_bytes });

    let readme = readme(session, evidence, transcript_name, timing, &keys, lake)?;
    files.push(BundleFile { path: "README.txt".into(), bytes: readme.into_bytes() });
    let page = viewer_page(session, evidence, &files, &keys, &cast, &provenance, cloudtrail);
    files.push(BundleFile { path: VIEWER_FILE.into(), bytes: page.into_bytes() });
    Ok((files, evidence.commands.rows.len()))
}

/// The bundle's evidence viewer: one HTML file that opens in a browser from the folder.
const VIEWER_FILE: &str = "index.html";

/// CloudTrail events that name one session, for the viewer.
#[derive(Debug, Clone, Default)]
pub(crate) struct CloudTrailEvents {
    /// The events, one row each.
    pub(crate) grid: crate::html::Grid,
    /// Why there are none, or where they come from.
    pub(crate) note: String,
}

/// The CloudTrail events of the lake's `access` table that name `session`, from the snapshot the
/// bundle is cut from, as the viewer shows them.
async fn cloudtrail_events(
    cli: &Cli,
    store: &LakeStore,
    keys: &Keys,
    snapshot: &Snapshot,
    session: &str,
) -> anyhow::Result<CloudTrailEvents> {
    let limit = crate::memory_limit(cli);
    let batches = access_events(store, keys, snapshot, session, limit).await?;
    let mut grid = crate::html::Grid {
        header: ACCESS_EVENT_COLUMNS.iter().map(|name| name.to_string()).collect(),
        rows: Vec::new(),
        // Addresses and ids, in a fixed-width font.
        mono: ["source_ip", "event_id", "source_ref"]
            .iter()
            .filter_map(|name| ACCESS_EVENT_COLUMNS.iter().position(|column| column == name))
            .collect(),
    };
    for batch in &batches {
        for row in 0..batch.num_rows() {
            let cells = (0..batch.num_columns())
                .map(|column| {
                    crate::output::cell_text(batch.column(column).as_ref(), row)
                        .map(|text| text.unwrap_or_default())
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            grid.rows.push(cells);
        }
    }
    let note = if grid.rows.is_empty() {
        "None in the lake: CloudTrail files were not ingested for this time, or the trail did \
         not record the session."
            .to_string()
    } else {
        "From the lake's access table (CloudTrail, as ingested), not among the objects in lake/: \
         the bundle's signature vouches for them, the lake's manifests do not."
            .to_string()
    };
    Ok(CloudTrailEvents { grid, note })
}

/// Returns `index.html`: the session's facts, the verification state, the timeline and the
/// replay, from the bundle's own files (see [`crate::html`]).
fn viewer_page(
    session: &str,
    evidence: &Evidence,
    files: &[BundleFile],
    keys: &[(SignerKey, String)],
    cast: &SessionCast,
    provenance: &serde_json::Value,
    cloudtrail: &CloudTrailEvents,
) -> String {
    use crate::html::{Fact, Grid, Moment};
    let table = &evidence.session_table;
    let empty = Vec::new();
    let row = table.rows.first().unwrap_or(&empty);
    let text = |name: &str| match table.get(row, name) {
        Some(Cell::Null) | None => "unknown".to_string(),
        Some(cell) => cell.csv(),
    };
    let mut facts = vec![
        Fact::code("Session", session),
        Fact::code("Who (principal)", text(columns::PRINCIPAL)),
        Fact::code("As whom (OS user)", text(columns::RUN_AS)),
        Fact::code("Where (target)", text(columns::TARGET)),
        Fact::text(
            "Account, region",
            format!("{}, {}", text(columns::ACCOUNT), text(columns::REGION)),
        ),
        Fact::text("Started (UTC)", text(columns::STARTED_AT)),
        Fact::text("Ended (UTC)", text(columns::ENDED_AT)),
        Fact::text("Source", evidence.source.as_str()),
    ];
    if evidence.sources.len() > 1 {
        let names: Vec<&str> = evidence.sources.iter().map(|s| s.as_str()).collect();
        facts.push(Fact::text("Delivered by", names.join(", ")));
    }
    for (other, more) in &evidence.differing {
        let text = format!("{more} of its commands are not in this delivery");
        facts.push(Fact::text(&format!("The {} delivery", other.as_str()), text));
    }
    facts.extend([
        Fact::code("Source object", text(columns::SOURCE_REF)),
        Fact::text("Commands", evidence.commands.rows.len().to_string()),
        Fact::text("Shells", text(columns::SHELLS)),
        Fact::text(
            "Parse confidence",
            match table.get(row, columns::CONFIDENCE_REASON) {
                Some(Cell::Text(reason)) => format!("{} ({reason})", text(columns::CONFIDENCE)),
                _ => text(columns::CONFIDENCE),
            },
        ),
        Fact::text("Ingested (UTC)", text(columns::INGESTED_AT)),
    ]);

    let head = &provenance["chain_head_at_export"];
    let bundle_key = keys.first().map(|(key, _)| key);
    let mut verification = vec![
        Fact::code("Transcript SHA-256", sha256_hex(&evidence.transcript)),
        Fact::code("Committed raw_sha256", text(columns::RAW_SHA256)),
        Fact::code("Lake object", evidence.raw_entry.path.clone()),
        Fact::code("Its stored SHA-256", evidence.raw_entry.sha256.clone()),
        Fact::code(
            "Chain head at export",
            match (head["sequence"].as_u64(), head["sha256"].as_str()) {
                (Some(sequence), Some(sha)) => format!("{sequence}:{sha}"),
                _ => "none".to_string(),
            },
        ),
    ];
    if let Some(key) = bundle_key {
        verification.extend([
            Fact::code("SHA256SUMS signed by", key.key_id.clone()),
            Fact::text("Signature", key.algorithm_name()),
            Fact::code("Key fingerprint", key.fingerprint()),
        ]);
    }
    verification.extend([
        Fact::text("Exported", provenance["exported_at"].as_str().unwrap_or_default()),
        Fact::code("From the lake", provenance["lake"].as_str().unwrap_or_default()),
    ]);
    let manifests = Grid {
        header: ["seq", "manifest", "committed", "SHA-256", "signed by"].map(String::from).to_vec(),
        rows: evidence
            .manifests
            .iter()
            .map(|(link, _)| {
                vec![
                    link.manifest.body.sequence.to_string(),
                    format!("{LAKE_FOLDER}/{}", link.path),
                    link.manifest.body.committed_at.clone(),
                    link.sha256.clone(),
                    link.manifest.signature.key_id.clone(),
                ]
            })
            .collect(),
        mono: vec![1, 3, 4],
    };
    let mut sorted: Vec<&BundleFile> = files.iter().collect();
    sorted.sort_by(|a, b| a.path.cmp(&b.path));
    let file_grid = Grid {
        header: ["file", "bytes", "SHA-256"].map(String::from).to_vec(),
        rows: sorted
            .iter()
            .map(|file| {
                vec![file.path.clone(), file.bytes.len().to_string(), sha256_hex(&file.bytes)]
            })
            .collect(),
        mono: vec![0, 2],
    };
    let moments = evidence
        .commands
        .rows
        .iter()
        .zip(&cast.moments)
        .map(|(row, t)| Moment {
            t: *t,
            hint: evidence
                .commands
                .text(row, columns::OUTPUT)
                .and_then(|output| crate::html::exit_hint(&output)),
        })
        .collect();
    let timing_note = match cast.timing {
        Timing::Recorded => "Played at the times CloudWatch Logs recorded for each batch of lines.",
        Timing::Synthetic => {
            "The transcript records no times: the replay is paced synthetically (one line every \
             0.05 s, a 1 s pause before each command). Only the order of events is evidence, \
             not their times."
        }
    };
    let commands_jsonl = files
        .iter()
        .find(|file| file.path == "commands.jsonl")
        .map(|file| String::from_utf8_lossy(&file.bytes).to_string())
        .unwrap_or_default();
    let page = crate::html::SessionPage {
        session,
        subtitle: format!(
            "{} as {} on {}, {} (UTC), {} commands, from {}",
            text(columns::PRINCIPAL),
            text(columns::RUN_AS),
            text(columns::TARGET),
            text(columns::STARTED_AT),
            evidence.commands.rows.len(),
            evidence.source.as_str()
        ),
        facts,
        cloudtrail: cloudtrail.grid.clone(),
        cloudtrail_note: cloudtrail.note.clone(),
        verification_note: "What this page shows is what the bundle's files hold. The page is \
                            evidence only with its checks: index.html is listed in SHA256SUMS, \
                            which the key below signed; README.txt says how to check both \
                            (sha256sum -c SHA256SUMS, then openssl) and how to check the \
                            manifests against the lake's chain."
            .to_string(),
        verification,
        manifests,
        files: file_grid,
        timing_note: timing_note.to_string(),
        cast: &cast.text,
        commands_jsonl: &commands_jsonl,
        moments,
    };
    crate::html::session_page(&page)
}

/// File of the public key that signs `SHA256SUMS`.
const BUNDLE_KEY_FILE: &str = "public-key.pem";

/// Names the bundle's key files: the bundle signer's [`BUNDLE_KEY_FILE`] first, then
/// `manifest-key-N.pem` for each other key that signed a manifest.
fn key_files(bundle_key: &SignerKey, manifest_keys: &[SignerKey]) -> Vec<(SignerKey, String)> {
    let mut keys = vec![(bundle_key.clone(), BUNDLE_KEY_FILE.to_string())];
    for key in manifest_keys.iter().filter(|key| key.key_id != bundle_key.key_id) {
        keys.push((key.clone(), format!("manifest-key-{}.pem", keys.len())));
    }
    keys
}

/// Returns the file of the key `key_id` among `keys`.
fn key_file<'a>(keys: &'a [(SignerKey, String)], key_id: &str) -> Option<&'a str> {
    keys.iter().find(|(key, _)| key.key_id == key_id).map(|(_, file)| file.as_str())
}

fn readme(
    session: &str,
    evidence: &Evidence,
    transcript_name: &str,
    timing: Timing,
    keys: &[(SignerKey, String)],
    lake: &str,
) -> anyhow::Result<String> {
    let raw = &evidence.raw_entry;
    let raw_copy = lake_copy_path(&raw.path)?;
    let raw_link =
        evidence.committed_by(raw).context("no manifest of the bundle adds the raw transcript")?;
    let raw_manifest = lake_copy_path(&raw_link.path)?;
    let (bundle_key, bundle_key_file) = keys.first().context("the bundle has no key")?;
    let raw_key = &raw_link.manifest.signature.key_id;
    let (manifest_key, manifest_key_file) = keys
        .iter()
        .find(|(key, _)| &key.key_id == raw_key)
        .with_context(|| format!("no key file for {raw_key}"))?;
    let (sums_check, sums_ok) =
        openssl_check(bundle_key, bundle_key_file, "SHA256SUMS", "SHA256SUMS.sig");
    let (body_check, body_ok) =
        openssl_check(manifest_key, manifest_key_file, "body.json", "body.sig");
    let key_list: String = keys
        .iter()
        .map(|(key, file)| {
            let signs_manifests = evidence.manifest_keys.contains(key);
            let role = match (file == bundle_key_file, signs_manifests) {
                (true, true) => "SHA256SUMS and manifests",
                (true, false) => "SHA256SUMS",
                (false, _) => "manifests",
            };
            format!(
                "  {file:<18} the {} public key that signs {role}:\n                     {}\n",
                key.algorithm_name(),
                key.key_id
            )
        })
        .collect();
    let fingerprints: String = keys
        .iter()
        .map(|(key, file)| {
            format!(
                "   openssl pkey -pubin -in {file} -outform DER | sha256sum\n   {}\n",
                key.fingerprint()
            )
        })
        .collect();
    let sessions_copy = evidence
        .objects
        .iter()
        .find(|(entry, _)| entry.kind == ObjectKind::Sessions)
        .map(|(entry, _)| lake_copy_path(&entry.path))
        .transpose()?
        .unwrap_or_default();
    let source = evidence.source.as_str();
    let timing_note = match timing {
        Timing::Recorded => {
            "Events play at the times CloudWatch Logs recorded for each batch of lines\n   \
             (the log events' timestamps, to the millisecond)."
                .to_string()
        }
        Timing::Synthetic => format!(
            "The transcript records no times, so the pacing is synthetic: one event per\n   \
             line, {} s apart, and a {} s pause where each command starts. Only the order\n   \
             of events is evidence, not their times.",
            crate::asciicast::SYNTHETIC_LINE_MICROS as f64 / 1e6,
            crate::asciicast::SYNTHETIC_COMMAND_PAUSE_MICROS as f64 / 1e6
        ),
    };
    let manifest_list: String = evidence
        .manifests
        .iter()
        .map(|(link, _)| format!("  {LAKE_FOLDER}/{}\n", link.path))
        .collect();
    Ok(format!(
        "Evidence bundle: AWS Systems Manager session {session}
=================================================================

Exported by sessionlake {version} from the lake at {lake}.
The session was delivered by: {sources}; this bundle holds the {source} delivery.{differing}

Files
-----
  {transcript_name:<18} the original transcript bytes as delivered, decrypted and
                     decompressed{stream_note}
  index.html         the evidence viewer: open it in a web browser (double-click, or
                     drag it onto a browser window). It needs no network and no
                     installation: the facts, the verification state, a timeline of
                     the commands (click one to replay its moment) and the replay
                     are all inside it
  commands.jsonl     every command of the session, one JSON object per line
  commands.csv       the same rows and columns as CSV (RFC 4180, UTF-8, CRLF)
  session.json       the session row: who, as whom, where, when, source, hashes
  session.cast       a replay in asciicast v2 format
  provenance.json    the lake objects, manifests and chain head this bundle comes from
  lake/              those objects byte for byte as the lake stores them (encrypted),
                     the manifest files that committed them, and the lake's
                     public-key record
{key_list}  SHA256SUMS         SHA-256 of every file above
  SHA256SUMS.sig     {bundle_algorithm} signature of SHA256SUMS by the key of {bundle_key_file}

1. Every file is intact
   sha256sum -c SHA256SUMS

2. SHA256SUMS was signed by the lake's key
   {sums_check}
   It prints \"{sums_ok}\".
   A key proves something only if it is the lake's: compare each key's fingerprint
   with the one the lake's operator gives you (for example from the lake's keys/
   folder, their keyring, or KMS GetPublicKey):
{fingerprints}
3. The lake's signed manifest committed these objects
   Each manifest's signature covers its \"body\" as compact JSON with sorted keys:
   jq -cjS .body {raw_manifest} > body.json
   jq -r .signature.value {raw_manifest} | base64 -d > body.sig
   {body_check}
   It prints \"{body_ok}\".
   The manifest names each object with the SHA-256 of its stored bytes:
   sha256sum {raw_copy}
   jq -r '.body.added[] | select(.path == \"{raw_path}\") | .sha256' {raw_manifest}
   The two hashes are equal. That hash is of the ciphertext: the lake stores the
   transcript zstd-compressed, then encrypted (AES-256-GCM, streamed, under a data key
   made for this session), so it verifies without any key. The plaintext's SHA-256 is
   the raw_sha256 of session.json, committed in {sessions_copy}
   (itself hashed in the manifest); check it against the transcript:
   sha256sum {transcript_name}
   jq -r .raw_sha256 session.json
   sessionlake checked before exporting that the ciphertext decrypts to exactly these
   bytes. Someone holding the lake's keys can repeat it:
   sessionlake show {session} --raw | sha256sum
   Each manifest names the SHA-256 of the one before it (previous_sha256), and
   provenance.json names the newest manifest when the bundle was made; `sessionlake
   verify` run on the lake checks the whole chain up to it. Manifests in this bundle:
{manifest_list}
4. Replay
   Open index.html in a browser (file://; nothing is fetched), or in a terminal:
   asciinema play session.cast
   {timing_note}
   The original bytes are {transcript_name}; in the replay, bytes that are not UTF-8
   show as U+FFFD and a bare line feed moves to the start of the next line.

Notes
   Times are UTC. A command's \"time\" is null where the source records none (S3 and
   uploaded transcripts); session.json's started_at then comes from CloudTrail.
   Commands and output are as the lake stores them: secrets it recognised are masked
   (the redactions column counts them), output is capped (output_truncated).
   raw_offset and raw_len locate each command in {transcript_name}.
   Spreadsheets may run a cell that starts with = + - or @ as a formula: import
   commands.csv as text.
   This folder holds plaintext commands and output: keep it as confidential as the
   session itself.
",
        version = env!("CARGO_PKG_VERSION"),
        sources = evidence.sources.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", "),
        differing = evidence
            .differing
            .iter()
            .map(|(other, more)| format!(
                "\nThe {other} delivery holds {more} commands that are not in this one (a \
                 transcript\nrewritten at its source, or a delivery read otherwise): \
                 `sessionlake export {session}\n--source {other}` exports it.",
                other = other.as_str()
            ))
            .collect::<String>(),
        stream_note = if evidence.source.is_streamed() {
            " (one CloudWatch log\n                     event per line: its timestamp and message)"
        } else {
            ""
        },
        raw_path = raw.path,
        bundle_algorithm = bundle_key.algorithm_name(),
    ))
}

fn private_folder(path: &Path) -> anyhow::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .with_context(|| format!("failed to create {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("failed to make {} private", path.display()))
}

/// Fails when `path` is a symbolic link: a bundle is never written through one (it could point
/// outside the bundle folder, and the plaintext would land there).
fn refuse_symlink(path: &Path) -> anyhow::Result<()> {
    if std::fs::symlink_metadata(path).is_ok_and(|meta| meta.file_type().is_symlink()) {
        anyhow::bail!(
            "{} is a symbolic link: export never writes through one (remove it, or choose a new \
             folder)",
            path.display()
        );
    }
    Ok(())
}

fn write_private(path: &Path, bytes: &[u8], replace: bool) -> anyhow::Result<()> {
    refuse_symlink(path)?;
    let mut options = std::fs::OpenOptions::new();
    // A symbolic link put in place after the check fails the open instead of being followed.
    options.write(true).mode(0o600).custom_flags(libc::O_NOFOLLOW);
    if replace {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    let mut file =
        options.open(path).with_context(|| format!("failed to create {}", path.display()))?;
    // An existing file kept its mode: make it private before the plaintext goes in.
    file.set_permissions(std::fs::Permissions::from_mode(0o600))
        .and_then(|()| file.write_all(bytes))
        .and_then(|()| file.sync_all())
        .with_context(|| format!("failed to write {}", path.display()))
}

/// Writes the bundle's files into `folder`. Returns files found there that are not the bundle's.
fn write_folder(folder: &Path, files: &[BundleFile], replace: bool) -> anyhow::Result<Vec<String>> {
    private_folder(folder)?;
    for file in files {
        // Every folder inside the bundle folder is made (or found) as a real folder.
        let mut parent = folder.to_path_buf();
        let relative = Path::new(&file.path);
        for part in relative.parent().into_iter().flat_map(Path::components) {
            anyhow::ensure!(
                matches!(part, std::path::Component::Normal(_)),
                "bundle path {} leaves the bundle folder",
                file.path
            );
            parent.push(part);
            refuse_symlink(&parent)?;
            private_folder(&parent)?;
        }
        write_private(&folder.join(relative), &file.bytes, replace)?;
    }
    let ours: BTreeSet<&str> = files.iter().map(|file| file.path.as_str()).collect();
    let mut others = Vec::new();
    let mut stack = vec![folder.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in
            std::fs::read_dir(&dir).with_context(|| format!("failed to list {}", dir.display()))?
        {
            let path = entry.with_context(|| format!("failed to list {}", dir.display()))?.path();
            let relative = path.strip_prefix(folder).unwrap_or(&path).to_string_lossy().to_string();
            if std::fs::symlink_metadata(&path).is_ok_and(|meta| meta.is_dir()) {
                stack.push(path);
            } else if !ours.contains(relative.as_str()) {
                others.push(relative);
            }
        }
    }
    others.sort();
    Ok(others)
}

/// Writes the bundle as `file`, a zstd-compressed tar of `<top>/…` (folders 0700, files 0600).
/// The archive appears whole or not at all.
fn write_archive(
    folder: &Path,
    file: &Path,
    top: &str,
    files: &[BundleFile],
    mtime: u64,
) -> anyhow::Result<()> {
    private_folder(folder)?;
    let name = file.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    let partial = folder.join(format!(".{name}.{}.partial", std::process::id()));
    let written = (|| -> anyhow::Result<()> {
        let output = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&partial)
            .with_context(|| format!("failed to create {}", partial.display()))?;
        let mut encoder =
            zstd::Encoder::new(output, ARCHIVE_ZSTD_LEVEL).context("failed to start zstd")?;
        encoder.include_checksum(true).context("failed to start zstd")?;
        let mut archive = tar::Builder::new(encoder);
        let mut folders = BTreeSet::from([top.to_string()]);
        for bundle_file in files {
            let mut parent = Path::new(&bundle_file.path).parent();
            while let Some(dir) = parent.filter(|dir| !dir.as_os_str().is_empty()) {
                folders.insert(format!("{top}/{}", dir.to_string_lossy()));
                parent = dir.parent();
            }
        }
        let header = |kind: tar::EntryType, mode: u32, size: u64| {
            let mut header = tar::Header::new_gnu();
            header.set_entry_type(kind);
            header.set_mode(mode);
            header.set_size(size);
            header.set_mtime(mtime);
            header.set_uid(0);
            header.set_gid(0);
            header
        };
        for dir in &folders {
            let mut entry = header(tar::EntryType::Directory, 0o700, 0);
            archive
                .append_data(&mut entry, format!("{dir}/"), std::io::empty())
                .with_context(|| format!("failed to add {dir} to {}", partial.display()))?;
        }
        let mut sorted: Vec<&BundleFile> = files.iter().collect();
        sorted.sort_by(|a, b| a.path.cmp(&b.path));
        for bundle_file in sorted {
            let mut entry = header(tar::EntryType::Regular, 0o600, bundle_file.bytes.len() as u64);
            archive
                .append_data(
                    &mut entry,
                    format!("{top}/{}", bundle_file.path),
                    &bundle_file.bytes[..],
                )
                .with_context(|| {
                    format!("failed to add {} to {}", bundle_file.path, partial.display())
                })?;
        }
        let encoder = archive.into_inner().context("failed to finish the tar")?;
        let output = encoder.finish().context("failed to finish zstd")?;
        output.sync_all().with_context(|| format!("failed to write {}", partial.display()))?;
        std::fs::rename(&partial, file)
            .with_context(|| format!("failed to move {} into place", file.display()))
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    written
}

/// Runs `sessionlake export`.
pub async fn export(cli: &Cli, args: &ExportArgs) -> anyhow::Result<Outcome> {
    let session = args.session.as_str();
    if !session_id::is_valid(session) {
        anyhow::bail!("no session named {session:?}: not a session id");
    }
    let destination = Destination::check(args, session)?;
    let keyring = crate::open_keyring_if_present(cli)?.map(Arc::new);
    let (store, keys) = crate::open_lake_with(cli, keyring.clone()).await?;
    let trusted = crate::pinned_signers(cli, keyring.as_deref(), &cli.signing_key).await?;
    let snapshot = crate::trusted_snapshot(cli, &store, keyring.as_deref()).await?;
    let signer =
        crate::signer(cli, cli.signing_key.first().map(String::as_str), keyring, "export").await?;
    let bundle_key = SignerKey::new(signer.key_id(), signer.algorithm(), signer.public_key())?;
    let progress = Progress::counting(true, "exporting", "objects");
    let evidence = gather(&store, &keys, &snapshot, &trusted, session, args.source).await?;
    drop(progress);
    let lake = store.location().to_string();
    let now = chrono::Utc::now();
    let exported_at = now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let cloudtrail = cloudtrail_events(cli, &store, &keys, &snapshot, session).await?;
    let (mut files, commands) =
        bundle_files(session, &evidence, &bundle_key, &lake, &exported_at, &cloudtrail)?;
    let sums = sha256sums(&files)?;
    let signature = signer
        .sign(&sums)
        .await
        .with_context(|| format!("failed to sign SHA256SUMS with {}", signer.key_id()))?;
    files.push(BundleFile { path: "SHA256SUMS".into(), bytes: sums });
    files.push(BundleFile { path: "SHA256SUMS.sig".into(), bytes: signature });

    if evidence.sources.len() > 1 {
        let names: Vec<&str> = evidence.sources.iter().map(|s| s.as_str()).collect();
        eprintln!(
            "sessionlake: {session} was delivered by {} sources ({}); exported {}",
            names.len(),
            names.join(", "),
            evidence.source.as_str()
        );
    }
    for (other, more) in &evidence.differing {
        crate::warn_line(&format!(
            "the {other} delivery of {session} differs from the {source} delivery exported: \
             {more} of its commands are not in it (the bundle's README.txt says so; \
             `sessionlake export {session} --source {other}` exports it)",
            other = other.as_str(),
            source = evidence.source.as_str(),
        ));
    }
    let written = match &destination {
        Destination::Folder(folder) => {
            let others = write_folder(folder, &files, args.force)?;
            if !others.is_empty() {
                eprintln!(
                    "sessionlake: {} holds {} files that are not part of the bundle (SHA256SUMS \
                     does not cover them): {}",
                    folder.display(),
                    others.len(),
                    others.join(", ")
                );
            }
            folder.clone()
        }
        Destination::Archive { folder, file } => {
            let mtime = u64::try_from(now.timestamp()).unwrap_or_default();
            write_archive(folder, file, session, &files, mtime)?;
            file.clone()
        }
    };
    tracing::info!(session, source = evidence.source.as_str(), out = %written.display(), "session exported");
    eprintln!(
        "exported {session} ({}, {commands} commands) to {}: {} files, SHA256SUMS signed by {}",
        evidence.source.as_str(),
        written.display(),
        files.len(),
        signer.key_id()
    );
    let mut out = std::io::stdout().lock();
    match writeln!(out, "{}", written.display()).and_then(|()| out.flush()) {
        Err(error) if error.kind() != std::io::ErrorKind::BrokenPipe => return Err(error.into()),
        _ => {}
    }
    Ok(Outcome::Matched)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(value: &str) -> Cell {
        Cell::Text(value.to_string())
    }

    #[test]
    fn test_export_arguments_parse() {
        use clap::Parser as _;
        let cli = crate::Cli::try_parse_from([
            "sessionlake",
            "export",
            "alice-0123456789abcdef0",
            "--out",
            "evidence",
            "--format",
            "tar.zst",
            "--force",
        ])
        .expect("parse");
        let crate::Command::Export(args) = cli.command else { panic!("parsed as export") };
        assert_eq!(args.session, "alice-0123456789abcdef0");
        assert_eq!(args.out, PathBuf::from("evidence"));
        assert_eq!(args.format, BundleFormat::TarZst);
        assert!(args.force);
        let defaults =
            crate::Cli::try_parse_from(["sessionlake", "export", "s-1", "--out", "d"]).expect("ok");
        let crate::Command::Export(args) = defaults.command else { panic!("export") };
        assert_eq!((args.format, args.force), (BundleFormat::Dir, false));
        assert!(crate::Cli::try_parse_from(["sessionlake", "export", "s-1"]).is_err(), "--out");
        assert!(
            crate::Cli::try_parse_from([
                "sessionlake",
                "export",
                "s",
                "--out",
                "d",
                "--format",
                "zip"
            ])
            .is_err()
        );
    }

    #[test]
    fn test_csv_quotes_what_needs_quoting() {
        let names = vec!["seq".to_string(), "command".to_string(), "output".to_string()];
        let cases: [(Cell, &str); 8] = [
            (text("ls -la"), "ls -la"),
            (text("echo a,b"), "\"echo a,b\""),
            (text("echo \"hi\""), "\"echo \"\"hi\"\"\""),
            (text("line1\nline2"), "\"line1\nline2\""),
            (text("cr\rhere"), "\"cr\rhere\""),
            (text(" padded "), " padded "),
            (text("=cmd|' /C calc'!A0"), "=cmd|' /C calc'!A0"),
            (Cell::Null, ""),
        ];
        for (cell, expected) in cases {
            let rows = vec![vec![Cell::Unsigned(7), cell.clone(), Cell::Bool(true)]];
            let bytes = csv_table(&names, &rows).expect("csv");
            let out = String::from_utf8(bytes.clone()).expect("utf-8");
            assert_eq!(out, format!("seq,command,output\r\n7,{expected},true\r\n"), "{cell:?}");
            // And a CSV reader gets the value back.
            let mut reader = csv::Reader::from_reader(&bytes[..]);
            let record = reader.records().next().expect("row").expect("parses");
            assert_eq!(&record[1], cell.csv(), "{cell:?}");
        }
    }

    #[test]
    fn test_rows_keep_column_order_and_show_time() {
        let table = Rows {
            columns: vec!["session_id".into(), "seq".into(), "started_at".into()],
            rows: vec![
                vec![text("s"), Cell::Unsigned(0), Cell::Null],
                vec![text("s"), Cell::Unsigned(1), Cell::Time(1_773_482_538_000_000)],
            ],
        };
        let (names, rows) = with_show_time(&table);
        assert_eq!(names, vec!["session_id", "seq", "time", "started_at"]);
        let lines = String::from_utf8(json_lines(&names, &rows)).expect("utf-8");
        assert_eq!(
            lines,
            "{\"session_id\":\"s\",\"seq\":0,\"time\":null,\"started_at\":null}\n\
             {\"session_id\":\"s\",\"seq\":1,\"time\":\"2026-03-14 10:02:18Z\",\
             \"started_at\":\"2026-03-14T10:02:18.000000Z\"}\n"
        );
        let object = String::from_utf8(json_object(&table.columns, &table.rows[0])).expect("utf-8");
        assert_eq!(
            object,
            "{\n  \"session_id\": \"s\",\n  \"seq\": 0,\n  \"started_at\": null\n}\n"
        );
        serde_json::from_str::<serde_json::Value>(&object).expect("valid JSON");
    }

    #[test]
    fn test_sha256sums_format() {
        let files = vec![
            BundleFile { path: "b.txt".into(), bytes: b"b".to_vec() },
            BundleFile { path: "a/x.json".into(), bytes: Vec::new() },
        ];
        let sums = String::from_utf8(sha256sums(&files).expect("sums")).expect("utf-8");
        assert_eq!(
            sums,
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855  a/x.json\n\
             3e23e8160039594a33894f6564e1b1348bbd7a0088d42c4acb73eeaed59c009d  b.txt\n"
        );
        let bad = vec![BundleFile { path: "a\nb".into(), bytes: Vec::new() }];
        assert!(sha256sums(&bad).is_err());
    }

    #[test]
    fn test_lake_copy_paths_stay_inside_the_bundle() {
        assert_eq!(
            lake_copy_path("raw/dt=2026-03-14/a.zst.sle").expect("ok"),
            "lake/raw/dt=2026-03-14/a.zst.sle"
        );
        for bad in ["", "/etc/passwd", "../x", "raw/../../x", "./x"] {
            assert!(lake_copy_path(bad).is_err(), "{bad:?}");
        }
    }

    /// A transcript without times: each command's moment is the synthetic event that starts
    /// at its offset (after the pause before it); an offset past the end has none.
    #[test]
    fn test_synthetic_moments_are_where_commands_start() {
        let raw = b"Script started\n$ ls\na b\n$ id\nuid=0\n";
        let at =
            |needle: &[u8]| raw.windows(needle.len()).position(|w| w == needle).expect("in raw");
        let commands: Vec<CastCommand> = [at(b"$ ls"), at(b"$ id"), raw.len() + 5]
            .iter()
            .map(|offset| CastCommand { offset: *offset as u64, started_at: None })
            .collect();
        let cast = session_cast("s", SessionSource::S3, raw, &commands, None);
        assert_eq!(cast.timing, Timing::Synthetic);
        let events: Vec<(f64, String)> = cast
            .text
            .lines()
            .skip(1)
            .map(|line| {
                let event: (f64, String, String) = serde_json::from_str(line).expect("event");
                (event.0, event.2)
            })
            .collect();
        for (index, command) in ["$ ls", "$ id"].iter().enumerate() {
            let t = cast.moments[index].expect("a moment");
            let event = events.iter().find(|(time, _)| *time == t).expect("an event then");
            assert!(event.1.starts_with(command), "{command} at {t}: {event:?}");
        }
        assert_eq!(cast.moments[2], None);
    }

    #[test]
    fn test_streamed_events_read_session_data() {
        let raw = b"{\"timestamp\":1000,\"message\":\"{\\\"sessionData\\\":[\\\"$ ls\\\",\\\"a\\\"]}\"}\n\
                    {\"timestamp\":2500,\"message\":\"plain text\"}\n";
        let events = streamed::events(raw).expect("events");
        assert_eq!(
            events,
            vec![
                (1000, vec!["$ ls".to_string(), "a".to_string()]),
                (2500, vec!["plain text".to_string()])
            ]
        );
        let second = raw.iter().position(|b| *b == b'\n').expect("two lines") as u64 + 1;
        let commands = [
            CastCommand { offset: 3, started_at: Some(1_000_000) },
            CastCommand { offset: second + 10, started_at: Some(2_000_000) },
        ];
        let cast = session_cast("s", SessionSource::CloudwatchStream, raw, &commands, None);
        assert_eq!(cast.timing, Timing::Recorded);
        assert_eq!(cast.moments, vec![Some(0.0), Some(1.5)], "the times of their events");
        let lines: Vec<serde_json::Value> =
            cast.text.lines().map(|l| serde_json::from_str(l).expect("json")).collect();
        assert_eq!(lines[0]["timestamp"], 1);
        assert_eq!(lines[1], serde_json::json!([0.0, "o", "$ ls\r\na\r\n"]));
        assert_eq!(lines[2], serde_json::json!([1.5, "o", "plain text\r\n"]));
        assert!(streamed::events(b"not json\n").is_err());
    }
}
