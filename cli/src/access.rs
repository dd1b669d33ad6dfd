//! Access events from CloudTrail (the `access` table): `sessionlake access`, the access rows of
//! `search --include-access`, and the transcript status `sessions` shows (worked out by
//! `sessionlake_read::transcripts`).

use clap::Args as ClapArgs;
use sessionlake_schemas::AccessKind;

use sessionlake_read::query::{Query, SORT_TIME, partitions_between};

use crate::{Filters, Outcome, View, cell, command_cell, run_as_cell};
use sessionlake_read::listing::Listing;

/// Longest an SSM session lasts (maxSessionDuration's ceiling): after this, a `StartSession`
/// without a transcript is missing evidence.
pub const DEFAULT_TRANSCRIPT_WAIT: &str = "24h";

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

/// `sessionlake access`: lists access events, oldest first.
pub async fn access(cli: &crate::Cli, args: &AccessArgs) -> anyhow::Result<Outcome> {
    let (since, until) = crate::time_range(&args.filters)?;
    let mut query = Query::default();
    query.bind_access_filters(&crate::filter_of(&args.filters, since, until), &args.kind);
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
    query.bind_access_filters(&crate::filter_of(filters, since, until), &[]);
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
