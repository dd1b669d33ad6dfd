//! `sessionlake ocsf`: the commands of a time range as OCSF 1.1 Process Activity events
//! (class 1007, activity Launch), as Parquet in Amazon Security Lake's custom-source layout:
//! `<out>/ext/<source>/region=<region>/accountId=<account>/eventDay=YYYYMMDD/<file>.parquet`,
//! one class per object.
//!
//! Each event names who (the principal as `actor.user`, the session as `actor.session`), where
//! (the target as `device`, its region and account as `cloud`), when (`time`, ms) and as whom
//! (`process.user`: the effective user). The command's text is left out unless
//! `--include-command-text` puts it in `process.cmd_line` (said on stderr): a SIEM is a copy of
//! the evidence that retention, holds and shredding here never reach. Without it, no encrypted
//! column is read at all; `process.uid` (`<session>:<seq>`) leads back to the row.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use clap::Args as ClapArgs;
use datafusion::arrow::array::{Array as _, AsArray as _, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Field, Fields, Schema, TimestampMicrosecondType};
use futures::StreamExt as _;
use parquet::arrow::ArrowWriter;
use serde_json::{Value, json};
use sessionlake_read::query::{COMMAND_TIME, COMMANDS_ALIAS, COMMANDS_WITH_SESSION_TIMES, Query};
use sessionlake_schemas::paths;
use sessionlake_storage::checkpoint::Scope;

use crate::output::cell_text;
use crate::{Cli, Filters, Outcome};

/// The OCSF version the events follow.
pub const OCSF_VERSION: &str = "1.1.0";

/// Options of `ocsf`.
#[derive(Debug, ClapArgs)]
pub struct OcsfArgs {
    /// Which commands: by principal, run-as user, target, session and time (--since is
    /// required: a SIEM export is a range).
    #[command(flatten)]
    pub filters: Filters,
    /// The folder to write the Security Lake layout into (created if absent).
    #[arg(long, env = "SESSIONLAKE_OUT")]
    pub out: PathBuf,
    /// The custom source's name in Security Lake (`ext/<source>/`).
    #[arg(long, default_value = "sessionlake", env = "SESSIONLAKE_OCSF_SOURCE")]
    pub ocsf_source: String,
    /// The region of commands whose session names none (CloudTrail never saw it start).
    #[arg(long, default_value = "unknown", env = "SESSIONLAKE_DEFAULT_REGION")]
    pub default_region: String,
    /// The account of commands whose session names none.
    #[arg(long, default_value = "unknown", env = "SESSIONLAKE_DEFAULT_ACCOUNT")]
    pub default_account: String,
    /// Put each command's text in `process.cmd_line`: the text leaves the lake, beyond
    /// retention, holds and shredding.
    #[arg(long, env = "SESSIONLAKE_INCLUDE_COMMAND_TEXT")]
    pub include_command_text: bool,
}

/// The columns read after the session, seq and time ([`COMMAND_TIME`]), in this order; the
/// command only when asked for.
const COLUMNS: &str = "c.principal, c.run_as, c.effective_user, c.target, c.region, c.account, \
                       c.shell, c.kind, c.program";

/// Writes the events; returns how many.
pub async fn ocsf(cli: &Cli, args: &OcsfArgs) -> anyhow::Result<Outcome> {
    let (since, until) = crate::time_range(&args.filters)?;
    anyhow::ensure!(since.is_some(), "ocsf needs --since: a SIEM export is a time range");
    if args.include_command_text {
        eprintln!(
            "sessionlake: warning: --include-command-text: every command's text is written to \
             {} in plaintext, where retention, legal holds and shredding never reach it",
            args.out.display()
        );
    }
    let mut query = Query::default();
    let time_expression = COMMAND_TIME;
    query.bind_filters(
        &crate::filter_of(&args.filters, since, until),
        COMMANDS_ALIAS,
        time_expression,
    );
    let scope = args.filters.session.as_deref().map_or(Scope::Whole, Scope::Session);
    let ctx = crate::open_tables(cli, scope, |snapshot| {
        crate::search::searched_files(
            sessionlake_schemas::manifest::preferred_files(&snapshot.live),
            since,
            until,
        )
    })
    .await?;
    let command = if args.include_command_text { ", c.command" } else { "" };
    let sql = format!(
        "SELECT c.session_id, c.seq, {COMMAND_TIME} AS time, {COLUMNS}{command} \
         FROM {COMMANDS_WITH_SESSION_TIMES} {} \
         ORDER BY time NULLS FIRST, c.session_id, c.seq",
        query.where_clause()
    );
    let frame = ctx.sql(&sql).await.context("query failed")?.with_param_values(query.params)?;
    let mut stream = frame.execute_stream().await.context("query failed")?;
    let mut partitions: BTreeMap<(String, String, String), Vec<Value>> = BTreeMap::new();
    let mut untimed = 0;
    while let Some(batch) = stream.next().await {
        let batch = batch.context("query failed")?;
        for row in 0..batch.num_rows() {
            let Some((partition, event)) = event_of(&batch, row, args)? else {
                untimed += 1;
                continue;
            };
            partitions.entry(partition).or_default().push(event);
        }
    }
    if untimed > 0 {
        eprintln!(
            "sessionlake: warning: {untimed} commands have no time (neither theirs nor their \
             session's): OCSF events need one, they are not written"
        );
    }
    let mut written = 0;
    for ((region, account, day), events) in &partitions {
        let folder = args
            .out
            .join("ext")
            .join(&args.ocsf_source)
            .join(format!("region={region}"))
            .join(format!("accountId={account}"))
            .join(format!("eventDay={day}"));
        std::fs::create_dir_all(&folder)
            .with_context(|| format!("failed to create {}", folder.display()))?;
        let file = folder.join("sessionlake-process-activity.parquet");
        write_parquet(&file, events, args.include_command_text)?;
        written += events.len();
    }
    println!(
        "{written} OCSF Process Activity events in {} partitions under {}",
        partitions.len(),
        args.out.join("ext").join(&args.ocsf_source).display()
    );
    Ok(if written > 0 { Outcome::Matched } else { Outcome::NoMatch })
}

/// The event of row `row` and its partition (region, account, day); `None` without a time.
#[allow(clippy::type_complexity)]
fn event_of(
    batch: &RecordBatch,
    row: usize,
    args: &OcsfArgs,
) -> anyhow::Result<Option<((String, String, String), Value)>> {
    let text = |index: usize| cell_text(batch.column(index).as_ref(), row);
    let times = batch
        .column(2)
        .as_primitive_opt::<TimestampMicrosecondType>()
        .context("time is not a time in µs")?;
    if times.is_null(row) {
        return Ok(None);
    }
    let micros = times.value(row);
    let session = text(0)?.unwrap_or_default();
    let seq = text(1)?.unwrap_or_default();
    let (principal, run_as, effective_user) = (text(3)?, text(4)?, text(5)?);
    let (target, region, account) = (text(6)?, text(7)?, text(8)?);
    let (shell, kind, program) = (text(9)?, text(10)?, text(11)?);
    let region = region.unwrap_or_else(|| args.default_region.clone());
    let account = account.unwrap_or_else(|| args.default_account.clone());
    let day = paths::partition_date(micros).replace('-', "");
    let user = |name: Option<String>| name.map(|name| json!({"name": name}));
    let mut process = json!({
        "uid": format!("{session}:{seq}"),
        "user": user(effective_user.or(run_as.clone())),
        "session": {"uid": session},
    });
    if args.include_command_text {
        process["cmd_line"] = json!(text(12)?);
    }
    let event = json!({
        "activity_id": 1,
        "activity_name": "Launch",
        "category_uid": 1,
        "category_name": "System Activity",
        "class_uid": 1007,
        "class_name": "Process Activity",
        "type_uid": 100_701,
        "type_name": "Process Activity: Launch",
        "severity_id": 1,
        "severity": "Informational",
        "action_id": 1,
        "action": "Allowed",
        "time": micros.div_euclid(1000),
        "metadata": {
            "version": OCSF_VERSION,
            "uid": format!("{session}:{seq}"),
            "product": {"name": "sessionlake", "vendor_name": "sessionlake",
                        "version": env!("CARGO_PKG_VERSION")},
        },
        "actor": {
            "user": principal.map(|principal| json!({"uid": principal})),
            "session": {"uid": session, "is_remote": true},
        },
        "device": {
            "type_id": 0,
            "uid": target.clone().unwrap_or_else(|| "unknown".to_string()),
            "instance_uid": target,
            "region": region,
        },
        "cloud": {"provider": "AWS", "region": region, "account": {"uid": account}},
        "process": process,
        "unmapped": {
            "run_as": run_as,
            "shell": shell,
            "command_kind": kind,
            "program": program,
            "command_text": if args.include_command_text { "included" } else { "left out" },
        },
    });
    Ok(Some(((region, account, day), event)))
}

/// The Arrow schema of the events: the attributes written, OCSF's types (integers as 32-bit,
/// `time` as 64-bit milliseconds, text as strings), every one nullable.
fn schema(include_command_text: bool) -> Schema {
    let text = |name: &str| Field::new(name, DataType::Utf8, true);
    let int = |name: &str| Field::new(name, DataType::Int32, true);
    let object = |name: &str, fields: Vec<Field>| {
        Field::new(name, DataType::Struct(Fields::from(fields)), true)
    };
    let mut process =
        vec![text("uid"), object("user", vec![text("name")]), object("session", vec![text("uid")])];
    if include_command_text {
        process.push(text("cmd_line"));
    }
    Schema::new(vec![
        int("activity_id"),
        text("activity_name"),
        int("category_uid"),
        text("category_name"),
        int("class_uid"),
        text("class_name"),
        Field::new("type_uid", DataType::Int64, true),
        text("type_name"),
        int("severity_id"),
        text("severity"),
        int("action_id"),
        text("action"),
        Field::new("time", DataType::Int64, true),
        object(
            "metadata",
            vec![
                text("version"),
                text("uid"),
                object("product", vec![text("name"), text("vendor_name"), text("version")]),
            ],
        ),
        object(
            "actor",
            vec![
                object("user", vec![text("uid")]),
                object(
                    "session",
                    vec![text("uid"), Field::new("is_remote", DataType::Boolean, true)],
                ),
            ],
        ),
        object("device", vec![int("type_id"), text("uid"), text("instance_uid"), text("region")]),
        object(
            "cloud",
            vec![text("provider"), text("region"), object("account", vec![text("uid")])],
        ),
        object("process", process),
        object(
            "unmapped",
            vec![
                text("run_as"),
                text("shell"),
                text("command_kind"),
                text("program"),
                text("command_text"),
            ],
        ),
    ])
}

/// Writes `events` as one Parquet file (replacing one a run before wrote for the same
/// partition).
fn write_parquet(
    file: &std::path::Path,
    events: &[Value],
    include_command_text: bool,
) -> anyhow::Result<()> {
    let schema = Arc::new(schema(include_command_text));
    let mut decoder = datafusion::arrow::json::ReaderBuilder::new(Arc::clone(&schema))
        .build_decoder()
        .context("OCSF schema")?;
    decoder.serialize(events).context("failed to encode OCSF events")?;
    let batch = decoder.flush().context("failed to encode OCSF events")?;
    let out = std::fs::File::create(file)
        .with_context(|| format!("failed to create {}", file.display()))?;
    let mut writer = ArrowWriter::try_new(out, schema, None)?;
    if let Some(batch) = batch {
        writer.write(&batch)?;
    }
    writer.close().with_context(|| format!("failed to write {}", file.display()))?;
    Ok(())
}
