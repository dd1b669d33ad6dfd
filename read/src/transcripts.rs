//! The transcript status `sessionlake sessions` shows: every session in the lake with its
//! transcript, and every `StartSession` or Instance Connect push in the `access` table that
//! has none, with the reason ([`with_transcript_status`]).
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

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray as _, BooleanArray, RecordBatch, StringArray,
    TimestampMicrosecondArray, UInt32Array,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit, TimestampMicrosecondType};
use datafusion::prelude::SessionContext;
use datafusion::scalar::ScalarValue;
use sessionlake_schemas::AccessKind;

use crate::error::{Context as _, ReadError, ReadErrorKind};
use crate::query::{Filter, Query};

/// How long before an SSH-over-Session-Manager start an Instance Connect key push counts as
/// its key (the key itself lives 60 seconds), µs.
const INSTANCE_CONNECT_WINDOW: i64 = 120_000_000;

/// Documents that forward ports: the agent never logs them.
const PORT_FORWARDING_DOCUMENT_PREFIX: &str = "AWS-StartPortForwardingSession";
/// The document of SSH over Session Manager.
const SSH_DOCUMENT: &str = "AWS-StartSSHSession";

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
pub const ATTRIBUTION_CONFLICT: &str = "conflict";

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
pub const SESSIONS_COLUMNS: [&str; 13] = [
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

/// The texts of a text column (any string type; none where null or not text).
fn text_column(batch: &RecordBatch, index: usize) -> Vec<Option<String>> {
    let Ok(texts) = cast(batch.column(index), &DataType::Utf8) else {
        return vec![None; batch.num_rows()];
    };
    texts.as_string::<i32>().iter().map(|text| text.map(str::to_string)).collect()
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
) -> Result<Vec<RecordBatch>, ReadError> {
    let frame = ctx.sql(sql).await?.with_param_values(query.params)?;
    frame.collect().await.context_kind(ReadErrorKind::Query, "query failed")
}

/// Reads the `StartSession` and Instance Connect events that may bear on the sessions
/// `filter` selects (no encrypted column is read).
///
/// Only the principal and the target narrow the query: a start and the push that gave its key
/// share both. The other filters would drop the push of a session they keep (a push has no
/// session id and may come before `since`) or the start a push was used by (a start has no OS
/// user): [`keeps`] applies them to the merged rows instead. Pushes are read from
/// [`INSTANCE_CONNECT_WINDOW`] before `since`.
async fn entries(ctx: &SessionContext, filter: &Filter) -> Result<Vec<Entry>, ReadError> {
    let narrowing = Filter {
        principal: filter.principal.clone(),
        run_as: None,
        target: filter.target.clone(),
        session: None,
        since: filter.since.map(|since| since.saturating_sub(INSTANCE_CONNECT_WINDOW)),
        until: filter.until,
    };
    let mut query = Query::default();
    let kinds = [AccessKind::SsmSession, AccessKind::Ec2InstanceConnect];
    query.bind_access_filters(&narrowing, &kinds);
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
) -> Result<HashSet<String>, ReadError> {
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

/// Whether `row`, one `sessions` builds from CloudTrail, passes every filter given (as
/// [`crate::query::Query::bind_filters`] does in SQL for the lake's own rows: the principal exactly
/// or as contained text, the others exactly, `since <= started_at < until`).
fn keeps(filter: &Filter, row: &SessionRow) -> bool {
    let equal = |wanted: &Option<String>, value: &Option<String>| {
        wanted.as_deref().is_none_or(|wanted| value.as_deref() == Some(wanted))
    };
    let principal = filter.principal.as_deref().is_none_or(|wanted| {
        row.principal.as_deref().is_some_and(|principal| principal.contains(wanted))
    });
    let time = row.started_at.or(row.ended_at);
    let after_since = filter.since.is_none_or(|since| time.is_some_and(|t| t >= since));
    let before_until = filter.until.is_none_or(|until| time.is_some_and(|t| t < until));
    principal
        && equal(&filter.run_as, &row.run_as)
        && equal(&filter.target, &row.target)
        && equal(&filter.session, &row.session_id)
        && after_since
        && before_until
}

/// Returns the rows of `sessions` (the batches of its SQL) with their transcript status, as
/// one batch of [`SESSIONS_COLUMNS`].
///
/// `ctx` holds the `sessions` and `access` tables; `filter` is the one the `sessions` SQL
/// applied (the rows made from CloudTrail are filtered here, after the merge); a `StartSession`
/// older than `wait` (µs) without a transcript is `not-delivered`, a younger one `pending`.
pub async fn with_transcript_status(
    ctx: &SessionContext,
    sessions: &[RecordBatch],
    filter: &Filter,
    wait: i64,
) -> Result<RecordBatch, ReadError> {
    let entries = entries(ctx, filter).await?;
    let transcripts = with_transcripts(ctx, &entries).await?;
    let now = chrono::Utc::now().timestamp_micros();
    let rows = merge(session_rows(sessions), &entries, &transcripts, now, wait);
    let rows: Vec<SessionRow> =
        rows.into_iter().filter(|row| row.transcript || keeps(filter, row)).collect();
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
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
        .context_kind(ReadErrorKind::Format, "the sessions rows do not make a batch")
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
        let by_session = Filter { session: Some("ssh".into()), ..Filter::default() };
        let by_run_as = Filter { run_as: Some("ec2-user".into()), ..Filter::default() };
        let by_principal = |since, until| Filter {
            principal: Some("ali".into()),
            since,
            until,
            ..Filter::default()
        };
        let cases = [
            (by_session, 1),
            // --since just after the push, before the start.
            (by_principal(Some(2 * HOUR - 1), None), 1),
            (by_run_as, 1),
            (by_principal(None, Some(2 * HOUR)), 0),
        ];
        for (filter, expected) in cases {
            let kept: Vec<&SessionRow> = rows.iter().filter(|row| keeps(&filter, row)).collect();
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
