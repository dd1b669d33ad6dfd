//! Access events from CloudTrail (the `access` table): `sessionlake access`, the access rows of
//! `search --include-access`, and the transcript status `sessions` shows.
//!
//! # Why a session has no transcript
//!
//! The SSM agent records interactive shells only. A `StartSession` without a transcript in the
//! lake is reported with the reason the access events give:
//! - `port-forwarding`: an `AWS-StartPortForwardingSession*` document (never logged);
//! - `instance-connect`: SSH over Session Manager (`AWS-StartSSHSession`) with an EC2 Instance
//!   Connect key pushed by the same principal for the same node shortly before; an Instance
//!   Connect push with no such session is listed on its own row (plain SSH, no session);
//! - `ssh`: SSH over Session Manager (the agent sees only the encrypted SSH stream);
//! - `not-delivered`: anything else older than `--transcript-wait`: the transcript is missing
//!   evidence (the agent's upload is lost when an instance stops mid-session);
//! - `pending`: younger than that: the session may still run, or its upload be on the way.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use anyhow::Context as _;
use clap::Args as ClapArgs;
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray as _, BooleanArray, RecordBatch, StringArray,
    TimestampMicrosecondArray, UInt32Array,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit, TimestampMicrosecondType};
use datafusion::prelude::SessionContext;
use datafusion::scalar::ScalarValue;
use sessionlake_schemas::AccessKind;

use sessionlake_read::query::{Query, SORT_TIME, partitions_between};

use crate::{Filters, Outcome, View, cell, command_cell, run_as_cell};
use sessionlake_read::listing::Listing;

/// Longest an SSM session lasts (maxSessionDuration's ceiling): after this, a `StartSession`
/// without a transcript is missing evidence.
pub const DEFAULT_TRANSCRIPT_WAIT: &str = "24h";

/// How long before an SSH-over-Session-Manager start an Instance Connect key push counts as
/// its key (the key itself lives 60 seconds), µs.
const INSTANCE_CONNECT_WINDOW: i64 = 120_000_000;

/// Documents that forward ports: the agent never logs them.
const PORT_FORWARDING_DOCUMENT_PREFIX: &str = "AWS-StartPortForwardingSession";
/// The document of SSH over Session Manager.
const SSH_DOCUMENT: &str = "AWS-StartSSHSession";

/// Options of `access`.
#[derive(Debug, ClapArgs)]
pub struct AccessArgs {
    /// Only events of this kind (repeatable): ssm-session, ssm-resume, ssm-terminate,
    /// ec2-instance-connect, run-command.
    #[arg(long, value_parser = parse_kind, env = "SESSIONLAKE_KIND")]
    pub kind: Vec<AccessKind>,
    /// Who, where, when (`--run-as` is Instance Connect's OS user).
    #[command(flatten)]
    pub filters: Filters,
    /// Which page.
    #[command(flatten)]
    pub paging: crate::Paging,
    /// Output format and colour.
    #[command(flatten)]
    pub print: crate::output::OutputArgs,
}

fn parse_kind(text: &str) -> Result<AccessKind, String> {
    AccessKind::parse(text).ok_or_else(|| {
        let kinds: Vec<&str> = AccessKind::ALL.iter().map(|kind| kind.as_str()).collect();
        format!("unknown kind {text:?} (one of {})", kinds.join(", "))
    })
}

/// Columns of an access listing, in output order (`a` is the `access` table).
const ACCESS_COLUMNS: &str = "a.event_time AS time, a.kind, a.principal, a.principal_type, \
     a.source_ip, a.user_agent, nullif(array_to_string(a.targets, ','), '') AS targets, \
     a.os_user, a.document_name, a.parameters, a.session_id, a.command_id, a.region, a.account, \
     a.error_code, a.event_id";

const ACCESS_VIEW: View = View {
    columns: &[
        "time",
        "kind",
        "principal",
        "principal_type",
        "source_ip",
        "user_agent",
        "targets",
        "os_user",
        "document_name",
        "parameters",
        "session_id",
        "command_id",
        "region",
        "account",
        "error_code",
        "event_id",
    ],
    header: &[
        "TIME",
        "KIND",
        "PRINCIPAL",
        "TARGETS",
        "OS USER",
        "DOCUMENT",
        "SESSION",
        "SOURCE IP",
    ],
    row: |row| {
        let mut kind = cell(row, 1);
        if row[14].is_some() {
            kind.push_str(&format!(" ({})", cell(row, 14)));
        }
        let session = if row[10].is_some() { cell(row, 10) } else { cell(row, 11) };
        vec![
            cell(row, 0),
            kind,
            cell(row, 2),
            cell(row, 6),
            cell(row, 7),
            cell(row, 8),
            session,
            cell(row, 4),
        ]
    },
    highlight_column: None,
    noun: "access events",
};

/// Adds the who/where/when filters and `kinds` on the `access` table (alias `a`).
pub(crate) fn bind_access_filters(
    query: &mut Query,
    filters: &Filters,
    kinds: &[AccessKind],
    since: Option<i64>,
    until: Option<i64>,
) {
    let text = |value: &String| ScalarValue::from(value.as_str());
    if let Some(principal) = &filters.principal {
        query.bind("(a.principal = ? OR strpos(a.principal, ?) > 0)", text(principal));
    }
    if let Some(os_user) = &filters.run_as {
        query.bind("a.os_user = ?", text(os_user));
    }
    if let Some(target) = &filters.target {
        query.bind("array_has(a.targets, ?)", text(target));
    }
    if let Some(session) = &filters.session {
        query.bind("a.session_id = ?", text(session));
    }
    let time = |micros| ScalarValue::TimestampMicrosecond(Some(micros), Some("UTC".into()));
    if let Some(since) = since {
        query.bind("a.event_time >= ?", time(since));
    }
    if let Some(until) = until {
        query.bind("a.event_time < ?", time(until));
    }
    if !kinds.is_empty() {
        let mut any = Vec::new();
        for kind in kinds {
            query.params.push(ScalarValue::from(kind.as_str()));
            any.push(format!("a.kind = ${}", query.params.len()));
        }
        query.conditions.push(format!("({})", any.join(" OR ")));
    }
}

/// `sessionlake access`: lists access events, oldest first.
pub async fn access(cli: &crate::Cli, args: &AccessArgs) -> anyhow::Result<Outcome> {
    let (since, until) = crate::time_range(&args.filters)?;
    let mut query = Query::default();
    bind_access_filters(&mut query, &args.filters, &args.kind, since, until);
    let ctx = crate::open_tables(cli, sessionlake_storage::checkpoint::Scope::Whole, |_| {
        partitions_between(since, until)
    })
    .await?;
    // The event id is unique in the lake (ingest drops an id it holds already).
    let listing = Listing {
        name: "access",
        select: format!("SELECT {ACCESS_COLUMNS}, a.event_time AS {SORT_TIME} FROM access a"),
        time_expression: "a.event_time",
        key_expressions: &["a.event_id"],
        key_columns: &["event_id"],
    };
    let printer = ACCESS_VIEW.printer(&args.print);
    let (noun, paging) = (ACCESS_VIEW.noun, &args.paging);
    crate::print_listing(&listing, noun, &ctx, None, query, paging, printer, Default::default())
        .await
}

/// Returns the listing of `search --include-access` and its parameters: the command rows of
/// `commands_sql` (the search's own query, its conditions and parameters in `query`) and the
/// access events that pass the who/where/when filters, in one time order, each row tagged
/// with its `kind`. The sort key after the time is (session, seq, event id): a command is one
/// (session, seq), an access event one event id.
pub(crate) fn search_with_access(
    commands_sql: &str,
    mut query: Query,
    filters: &Filters,
    since: Option<i64>,
    until: Option<i64>,
) -> (Listing, Query) {
    query.conditions.clear();
    bind_access_filters(&mut query, filters, &[], since, until);
    let select = format!(
        "SELECT u.*, u.time AS {SORT_TIME}, {SESSION_KEY} AS session_key, {SEQ_KEY} AS seq_key, \
         {EVENT_KEY} AS event_key FROM (SELECT 'command' AS kind, q.*, \
         CAST(NULL AS VARCHAR) AS document_name, CAST(NULL AS VARCHAR) AS source_ip, \
         CAST(NULL AS VARCHAR) AS event_id FROM ({commands_sql}) q \
         UNION ALL SELECT a.kind, a.session_id, CAST(NULL AS INT UNSIGNED), a.event_time, \
         'cloudtrail', a.principal, a.os_user, nullif(array_to_string(a.targets, ','), ''), \
         CAST(NULL AS VARCHAR), CAST(NULL AS VARCHAR), CAST(NULL AS VARCHAR), \
         CAST(NULL AS VARCHAR), CAST(NULL AS VARCHAR), a.document_name, a.source_ip, a.event_id \
         FROM access a {}) u",
        query.where_clause()
    );
    // The conditions are inside the union; the listing adds only the cursor's.
    let query = Query { conditions: Vec::new(), params: query.params };
    let listing = Listing {
        name: "commands-and-access",
        select,
        time_expression: "u.time",
        key_expressions: &[SESSION_KEY, SEQ_KEY, EVENT_KEY],
        key_columns: &["session_key", "seq_key", "event_key"],
    };
    (listing, query)
}

/// The sort key of `search --include-access` after the time, never null: a missing session
/// sorts first, an access event (no seq) before the commands of its session.
const SESSION_KEY: &str = "coalesce(u.session_id, '')";
const SEQ_KEY: &str = "coalesce(CAST(u.seq AS BIGINT UNSIGNED) + 1, 0)";
const EVENT_KEY: &str = "coalesce(u.event_id, '')";

/// The view of `search --include-access`: the search's columns after `kind`, and what tells
/// an access event apart.
pub(crate) const SEARCH_WITH_ACCESS_VIEW: View = View {
    columns: &[
        "kind",
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
        "program",
        "document_name",
        "source_ip",
        "event_id",
    ],
    header: &["TIME", "KIND", "SESSION", "PRINCIPAL", "RUN AS", "TARGET", "COMMAND / DOCUMENT"],
    row: |row| {
        let time = match (&row[3], row[4].as_deref()) {
            (Some(time), Some("session-start")) => format!("~{time}"),
            (Some(time), _) => time.clone(),
            (None, _) => "-".to_string(),
        };
        let what = match &row[9] {
            Some(_) => command_cell(row, 9, 12),
            None => cell(row, 13),
        };
        vec![
            time,
            cell(row, 0),
            cell(row, 1),
            cell(row, 5),
            run_as_cell(row, 6, 10),
            cell(row, 7),
            what,
        ]
    },
    highlight_column: Some(6),
    noun: "matching commands and access events",
};

/// A `StartSession` or Instance Connect push, as `sessions` needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    kind: AccessKind,
    session_id: Option<String>,
    time: i64,
    principal: Option<String>,
    target: Option<String>,
    os_user: Option<String>,
    document_name: Option<String>,
}

/// Why a `StartSession` has no transcript (see the module documentation).
fn missing_reason(start: &Entry, pushes: &[Entry], now: i64, wait: i64) -> &'static str {
    let document = start.document_name.as_deref().unwrap_or_default();
    if document.starts_with(PORT_FORWARDING_DOCUMENT_PREFIX) {
        return "port-forwarding";
    }
    if document == SSH_DOCUMENT {
        return if pushes.iter().any(|push| pushed_for(push, start)) {
            "instance-connect"
        } else {
            "ssh"
        };
    }
    if now.saturating_sub(start.time) > wait { "not-delivered" } else { "pending" }
}

/// Whether the Instance Connect `push` gave the key of the SSH session `start`.
fn pushed_for(push: &Entry, start: &Entry) -> bool {
    push.principal == start.principal
        && push.target == start.target
        && push.time <= start.time
        && start.time - push.time <= INSTANCE_CONNECT_WINDOW
}

/// One row of `sessions`.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct SessionRow {
    session_id: Option<String>,
    started_at: Option<i64>,
    ended_at: Option<i64>,
    principal: Option<String>,
    run_as: Option<String>,
    target: Option<String>,
    command_count: Option<u32>,
    status: Option<String>,
    source: Option<String>,
    transcript: bool,
    missing: Option<&'static str>,
    document_name: Option<String>,
    /// How well the transcript was understood (`high`, `medium`, `low`); none without one.
    confidence: Option<String>,
}

/// The `status` of a session whose `StartSession` events disagree, or that two source objects
/// delivered.
pub(crate) const ATTRIBUTION_CONFLICT: &str = "conflict";

/// Returns the sessions named by `StartSession` events that disagree on the principal, the
/// target or the time.
fn conflicting_starts<'a>(starts: &[&'a Entry]) -> HashSet<&'a str> {
    let mut first: HashMap<&str, &Entry> = HashMap::new();
    let mut conflicted = HashSet::new();
    for start in starts {
        let Some(id) = start.session_id.as_deref() else { continue };
        let known = *first.entry(id).or_insert(start);
        if (&known.principal, &known.target, known.time)
            != (&start.principal, &start.target, start.time)
        {
            conflicted.insert(id);
        }
    }
    conflicted
}

/// Merges the sessions in the lake with the `StartSession` and Instance Connect events: every
/// session once per transcript, every session without one with the reason, and every Instance
/// Connect push that no session used (see the module documentation). `transcripts` names the
/// sessions with a transcript in the lake, including those the user's filters left out of
/// `sessions`: their starts are not listed. An SSH session that used a push runs as the
/// push's OS user.
fn merge(
    sessions: Vec<SessionRow>,
    entries: &[Entry],
    transcripts: &HashSet<String>,
    now: i64,
    wait: i64,
) -> Vec<SessionRow> {
    let (starts, pushes): (Vec<&Entry>, Vec<&Entry>) =
        entries.iter().partition(|entry| entry.kind == AccessKind::SsmSession);
    let pushes: Vec<Entry> = pushes.into_iter().cloned().collect();
    let documents: BTreeMap<&str, &str> = starts
        .iter()
        .filter_map(|start| Some((start.session_id.as_deref()?, start.document_name.as_deref()?)))
        .collect();
    let with_transcript: HashSet<String> =
        sessions.iter().filter_map(|row| row.session_id.clone()).collect();
    let mut conflicted = conflicting_starts(&starts);
    // Two deliveries of one session from one source but from different source objects (both
    // kept: neither replaces the other).
    let mut deliveries: HashMap<(&str, &str), usize> = HashMap::new();
    for row in &sessions {
        if let (Some(id), Some(source)) = (row.session_id.as_deref(), row.source.as_deref()) {
            *deliveries.entry((id, source)).or_default() += 1;
        }
    }
    let twice: HashSet<String> = deliveries
        .into_iter()
        .filter(|(_, count)| *count > 1)
        .map(|((id, _), _)| id.to_string())
        .collect();
    conflicted.extend(twice.iter().map(String::as_str));
    let mut rows: Vec<SessionRow> = sessions
        .into_iter()
        .map(|row| {
            let id = row.session_id.as_deref();
            let document_name =
                id.and_then(|id| documents.get(id)).map(|document| document.to_string());
            // Its StartSession events disagree on who, where or when: the attribution shown
            // is the first one ingest applied, and it is in doubt.
            let status = match id.is_some_and(|id| conflicted.contains(id)) {
                true => Some(ATTRIBUTION_CONFLICT.to_string()),
                false => row.status,
            };
            SessionRow { transcript: true, document_name, status, ..row }
        })
        .collect();
    let mut used = HashSet::new();
    for start in &starts {
        let Some(session_id) = &start.session_id else { continue };
        if with_transcript.contains(session_id) || transcripts.contains(session_id) {
            continue;
        }
        let missing = missing_reason(start, &pushes, now, wait);
        let mut run_as = None;
        if missing == "instance-connect" {
            let keys: Vec<usize> =
                (0..pushes.len()).filter(|&i| pushed_for(&pushes[i], start)).collect();
            run_as = keys.last().and_then(|&i| pushes[i].os_user.clone());
            used.extend(keys);
        }
        rows.push(SessionRow {
            session_id: Some(session_id.clone()),
            started_at: Some(start.time),
            principal: start.principal.clone(),
            run_as,
            target: start.target.clone(),
            source: Some("cloudtrail".to_string()),
            missing: Some(missing),
            document_name: start.document_name.clone(),
            ..SessionRow::default()
        });
    }
    for (index, push) in pushes.iter().enumerate() {
        if used.contains(&index) {
            continue;
        }
        rows.push(SessionRow {
            started_at: Some(push.time),
            principal: push.principal.clone(),
            run_as: push.os_user.clone(),
            target: push.target.clone(),
            source: Some("cloudtrail".to_string()),
            missing: Some("instance-connect"),
            ..SessionRow::default()
        });
    }
    rows.sort_by(|a, b| {
        (a.started_at.or(a.ended_at), &a.session_id, &a.source).cmp(&(
            b.started_at.or(b.ended_at),
            &b.session_id,
            &b.source,
        ))
    });
    rows
}

/// The columns `sessions` prints, in order (the first nine are its SQL's).
pub(crate) const SESSIONS_COLUMNS: [&str; 13] = [
    "session_id",
    "started_at",
    "ended_at",
    "principal",
    "run_as",
    "target",
    "command_count",
    "status",
    "source",
    "transcript",
    "missing",
    "document_name",
    "confidence",
];

/// The texts of a text column (the cells of [`crate::output::cell_text`]).
fn text_column(batch: &RecordBatch, index: usize) -> Vec<Option<String>> {
    let column = batch.column(index);
    (0..batch.num_rows())
        .map(|row| crate::output::cell_text(column.as_ref(), row).ok().flatten())
        .collect()
}

fn time_column(batch: &RecordBatch, index: usize) -> Vec<Option<i64>> {
    match batch.column(index).as_primitive_opt::<TimestampMicrosecondType>() {
        Some(times) => times.iter().collect(),
        None => vec![None; batch.num_rows()],
    }
}

/// Reads the rows of the `sessions` SQL (its first nine columns are [`SESSIONS_COLUMNS`]'s,
/// the tenth the confidence).
fn session_rows(batches: &[RecordBatch]) -> Vec<SessionRow> {
    let mut rows = Vec::new();
    for batch in batches {
        let texts: Vec<Vec<Option<String>>> =
            [0, 3, 4, 5, 7, 8, 9].into_iter().map(|index| text_column(batch, index)).collect();
        let (started, ended) = (time_column(batch, 1), time_column(batch, 2));
        let counts = batch.column(6).as_primitive_opt::<datafusion::arrow::datatypes::UInt32Type>();
        for row in 0..batch.num_rows() {
            rows.push(SessionRow {
                session_id: texts[0][row].clone(),
                started_at: started[row],
                ended_at: ended[row],
                principal: texts[1][row].clone(),
                run_as: texts[2][row].clone(),
                target: texts[3][row].clone(),
                command_count: counts.filter(|c| !c.is_null(row)).map(|c| c.value(row)),
                status: texts[4][row].clone(),
                source: texts[5][row].clone(),
                confidence: texts[6][row].clone(),
                ..SessionRow::default()
            });
        }
    }
    rows
}

/// Runs `sql` with `query`'s parameters and returns its batches.
async fn collect(
    ctx: &SessionContext,
    sql: &str,
    query: Query,
) -> anyhow::Result<Vec<RecordBatch>> {
    let frame = ctx.sql(sql).await?.with_param_values(query.params)?;
    frame.collect().await.context("query failed")
}

/// Reads the `StartSession` and Instance Connect events that may bear on the sessions
/// `filters` select (no encrypted column is read).
///
/// Only the principal and the target narrow the query: a start and the push that gave its key
/// share both. The other filters would drop the push of a session they keep (a push has no
/// session id and may come before `since`) or the start a push was used by (a start has no OS
/// user): [`RowFilter`] applies them to the merged rows instead. Pushes are read from
/// [`INSTANCE_CONNECT_WINDOW`] before `since`.
async fn entries(
    ctx: &SessionContext,
    filters: &Filters,
    since: Option<i64>,
    until: Option<i64>,
) -> anyhow::Result<Vec<Entry>> {
    let narrowing = Filters {
        principal: filters.principal.clone(),
        run_as: None,
        target: filters.target.clone(),
        session: None,
        since: None,
        until: None,
    };
    let mut query = Query::default();
    let kinds = [AccessKind::SsmSession, AccessKind::Ec2InstanceConnect];
    let from = since.map(|since| since.saturating_sub(INSTANCE_CONNECT_WINDOW));
    bind_access_filters(&mut query, &narrowing, &kinds, from, until);
    // A refused StartSession started nothing: `access` lists it, `sessions` does not.
    query.conditions.push("a.error_code IS NULL".to_string());
    let sql = format!(
        "SELECT a.kind, a.session_id, a.event_time, a.principal, a.targets[1], a.os_user, \
         a.document_name FROM access a {} ORDER BY a.event_time, a.event_id",
        query.where_clause()
    );
    let batches = collect(ctx, &sql, query).await?;
    let mut found = Vec::new();
    for batch in &batches {
        let texts: Vec<Vec<Option<String>>> =
            [0, 1, 3, 4, 5, 6].into_iter().map(|index| text_column(batch, index)).collect();
        let times = time_column(batch, 2);
        for row in 0..batch.num_rows() {
            let (Some(kind), Some(time)) =
                (texts[0][row].as_deref().and_then(AccessKind::parse), times[row])
            else {
                continue;
            };
            found.push(Entry {
                kind,
                session_id: texts[1][row].clone(),
                time,
                principal: texts[2][row].clone(),
                target: texts[3][row].clone(),
                os_user: texts[4][row].clone(),
                document_name: texts[5][row].clone(),
            });
        }
    }
    Ok(found)
}

/// Returns which of the sessions started in `entries` have a transcript in the lake, whatever
/// the user's filters (a session's transcript may carry another time or OS user than its
/// `StartSession`). Reads the plaintext `session_id` column only.
async fn with_transcripts(
    ctx: &SessionContext,
    entries: &[Entry],
) -> anyhow::Result<HashSet<String>> {
    let ids: Vec<&str> = entries
        .iter()
        .filter(|entry| entry.kind == AccessKind::SsmSession)
        .filter_map(|entry| entry.session_id.as_deref())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut found = HashSet::new();
    // Bounded IN lists: one query per chunk of ids.
    for chunk in ids.chunks(1_000) {
        let mut query = Query::default();
        let placeholders: Vec<String> =
            chunk.iter().map(|id| query.param(ScalarValue::from(*id))).collect();
        let sql = format!(
            "SELECT DISTINCT s.session_id FROM sessions s WHERE s.session_id IN ({})",
            placeholders.join(", ")
        );
        for batch in &collect(ctx, &sql, query).await? {
            found.extend(text_column(batch, 0).into_iter().flatten());
        }
    }
    Ok(found)
}

/// The user's who/where/when filters, applied to the rows `sessions` builds from CloudTrail
/// (the lake's own rows passed them in SQL already).
#[derive(Debug, Default)]
struct RowFilter<'a> {
    principal: Option<&'a str>,
    run_as: Option<&'a str>,
    target: Option<&'a str>,
    session: Option<&'a str>,
    since: Option<i64>,
    until: Option<i64>,
}

impl<'a> RowFilter<'a> {
    fn new(filters: &'a Filters, since: Option<i64>, until: Option<i64>) -> Self {
        RowFilter {
            principal: filters.principal.as_deref(),
            run_as: filters.run_as.as_deref(),
            target: filters.target.as_deref(),
            session: filters.session.as_deref(),
            since,
            until,
        }
    }

    /// Whether `row` passes every filter given (as `bind_filters` does in SQL: the principal
    /// exactly or as contained text, the others exactly, `since <= started_at < until`).
    fn keeps(&self, row: &SessionRow) -> bool {
        let equal = |wanted: Option<&str>, value: &Option<String>| {
            wanted.is_none_or(|wanted| value.as_deref() == Some(wanted))
        };
        let principal = self.principal.is_none_or(|wanted| {
            row.principal.as_deref().is_some_and(|principal| principal.contains(wanted))
        });
        let time = row.started_at.or(row.ended_at);
        let after_since = self.since.is_none_or(|since| time.is_some_and(|t| t >= since));
        let before_until = self.until.is_none_or(|until| time.is_some_and(|t| t < until));
        principal
            && equal(self.run_as, &row.run_as)
            && equal(self.target, &row.target)
            && equal(self.session, &row.session_id)
            && after_since
            && before_until
    }
}

/// Returns the rows of `sessions` (the batches of its SQL) with their transcript status, as
/// one batch of [`SESSIONS_COLUMNS`].
pub(crate) async fn with_transcript_status(
    ctx: &SessionContext,
    sessions: &[RecordBatch],
    filters: &Filters,
    since: Option<i64>,
    until: Option<i64>,
    wait: i64,
) -> anyhow::Result<RecordBatch> {
    let entries = entries(ctx, filters, since, until).await?;
    let transcripts = with_transcripts(ctx, &entries).await?;
    let now = chrono::Utc::now().timestamp_micros();
    let rows = merge(session_rows(sessions), &entries, &transcripts, now, wait);
    let filter = RowFilter::new(filters, since, until);
    let rows: Vec<SessionRow> =
        rows.into_iter().filter(|row| row.transcript || filter.keeps(row)).collect();
    let text = |get: &dyn Fn(&SessionRow) -> Option<&str>| -> ArrayRef {
        Arc::new(rows.iter().map(get).collect::<StringArray>())
    };
    let time = |get: &dyn Fn(&SessionRow) -> Option<i64>| -> ArrayRef {
        Arc::new(rows.iter().map(get).collect::<TimestampMicrosecondArray>().with_timezone("UTC"))
    };
    let columns: Vec<ArrayRef> = vec![
        text(&|r| r.session_id.as_deref()),
        time(&|r| r.started_at),
        time(&|r| r.ended_at),
        text(&|r| r.principal.as_deref()),
        text(&|r| r.run_as.as_deref()),
        text(&|r| r.target.as_deref()),
        Arc::new(rows.iter().map(|r| r.command_count).collect::<UInt32Array>()),
        text(&|r| r.status.as_deref()),
        text(&|r| r.source.as_deref()),
        Arc::new(rows.iter().map(|r| Some(r.transcript)).collect::<BooleanArray>()),
        text(&|r| r.missing),
        text(&|r| r.document_name.as_deref()),
        text(&|r| r.confidence.as_deref()),
    ];
    let timestamp = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
    let fields: Vec<Field> = SESSIONS_COLUMNS
        .iter()
        .zip(&columns)
        .map(|(name, column)| match column.data_type() {
            DataType::Timestamp(..) => Field::new(*name, timestamp.clone(), true),
            other => Field::new(*name, other.clone(), true),
        })
        .collect();
    Ok(RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: i64 = 3_600_000_000;

    fn start(id: &str, time: i64, document: Option<&str>) -> Entry {
        Entry {
            kind: AccessKind::SsmSession,
            session_id: Some(id.into()),
            time,
            principal: Some("alice".into()),
            target: Some("i-1".into()),
            os_user: None,
            document_name: document.map(str::to_string),
        }
    }

    fn push(time: i64, target: &str) -> Entry {
        Entry {
            kind: AccessKind::Ec2InstanceConnect,
            session_id: None,
            time,
            principal: Some("alice".into()),
            target: Some(target.into()),
            os_user: Some("ec2-user".into()),
            document_name: None,
        }
    }

    #[test]
    fn test_missing_reasons() {
        let now = 100 * HOUR;
        let wait = 24 * HOUR;
        let pushes = [push(10 * HOUR - 30_000_000, "i-1")];
        let cases = [
            (
                start("a", 10 * HOUR, Some("AWS-StartPortForwardingSessionToRemoteHost")),
                "port-forwarding",
            ),
            (start("b", 10 * HOUR, Some("AWS-StartSSHSession")), "instance-connect"),
            (start("c", 20 * HOUR, Some("AWS-StartSSHSession")), "ssh"),
            (start("d", 10 * HOUR, None), "not-delivered"),
            (start("e", 99 * HOUR, Some("SSM-SessionManagerRunShell")), "pending"),
        ];
        for (entry, expected) in cases {
            assert_eq!(missing_reason(&entry, &pushes, now, wait), expected, "{entry:?}");
        }
    }

    #[test]
    fn test_merge_reports_each_way_in_once() {
        let with_transcript = SessionRow {
            session_id: Some("a".into()),
            started_at: Some(HOUR),
            ..SessionRow::default()
        };
        let entries = [
            start("a", HOUR, Some("SSM-SessionManagerRunShell")),
            start("b", 2 * HOUR, Some("AWS-StartSSHSession")),
            push(2 * HOUR - 1, "i-1"),
            push(3 * HOUR, "i-2"),
        ];
        let rows = merge(vec![with_transcript], &entries, &HashSet::new(), 100 * HOUR, 24 * HOUR);
        let summary: Vec<(Option<&str>, bool, Option<&str>)> =
            rows.iter().map(|r| (r.session_id.as_deref(), r.transcript, r.missing)).collect();
        assert_eq!(
            summary,
            vec![
                (Some("a"), true, None),
                (Some("b"), false, Some("instance-connect")),
                (None, false, Some("instance-connect")),
            ]
        );
        assert_eq!(rows[0].document_name.as_deref(), Some("SSM-SessionManagerRunShell"));
        assert_eq!(rows[2].target.as_deref(), Some("i-2"), "the push no session used");
    }

    /// `sessions`' reason does not depend on the user's filters: the rows are merged from every
    /// start and push first, and filtered after.
    #[test]
    fn test_filters_apply_after_the_merge() {
        let entries = [
            push(2 * HOUR - 30_000_000, "i-1"),
            start("ssh", 2 * HOUR, Some("AWS-StartSSHSession")),
            start("shell", 3 * HOUR, Some("SSM-SessionManagerRunShell")),
        ];
        // "shell" has a transcript the user's filters left out: it is not listed as missing.
        let transcripts: HashSet<String> = ["shell".to_string()].into();
        let rows = merge(Vec::new(), &entries, &transcripts, 100 * HOUR, 24 * HOUR);
        let filters =
            |session: Option<&str>, run_as: Option<&str>, principal: Option<&str>| Filters {
                principal: principal.map(str::to_string),
                run_as: run_as.map(str::to_string),
                target: None,
                session: session.map(str::to_string),
                since: None,
                until: None,
            };
        let by_session = filters(Some("ssh"), None, None);
        let by_run_as = filters(None, Some("ec2-user"), None);
        let by_principal = filters(None, None, Some("ali"));
        let cases = [
            (RowFilter::new(&by_session, None, None), 1),
            // --since just after the push, before the start.
            (RowFilter::new(&by_principal, Some(2 * HOUR - 1), None), 1),
            (RowFilter::new(&by_run_as, None, None), 1),
            (RowFilter::new(&by_principal, None, Some(2 * HOUR)), 0),
        ];
        for (filter, expected) in cases {
            let kept: Vec<&SessionRow> = rows.iter().filter(|row| filter.keeps(row)).collect();
            assert_eq!(kept.len(), expected, "{filter:?}: {kept:#?}");
            for row in kept {
                assert_eq!(row.session_id.as_deref(), Some("ssh"));
                assert_eq!(row.missing, Some("instance-connect"));
                assert_eq!(row.run_as.as_deref(), Some("ec2-user"));
            }
        }
        assert_eq!(rows.len(), 1, "the used push is not listed, the shell has its transcript");
    }
}
