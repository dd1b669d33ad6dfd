//! `sessionlake search`, and the listing loop `search`, `sessions` and `access` share: windows
//! read one after the other, pages with cursors, rows streamed to the printer.

// The crate root's imports and shared helpers, as a test module's `use super::*`.
use crate::*;

/// Parses `--output`: a regex on the command's output, never a format name taken as one (it
/// would quietly match nothing).
pub(crate) fn output_regex(value: &str) -> Result<String, String> {
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
pub(crate) fn chunk_rows() -> u64 {
    std::env::var("SESSIONLAKE_CHUNK_ROWS")
        .ok()
        .and_then(|value| value.parse().ok())
        .filter(|rows| *rows > 0)
        .unwrap_or(50_000)
}

/// The who/where/when of `filters` as the read library takes them, times parsed.
pub(crate) fn filter_of(filters: &Filters, since: Option<i64>, until: Option<i64>) -> Filter {
    Filter {
        principal: filters.principal.clone(),
        run_as: filters.run_as.clone(),
        target: filters.target.clone(),
        session: filters.session.clone(),
        since,
        until,
    }
}

pub(crate) fn time_range(filters: &Filters) -> anyhow::Result<(Option<i64>, Option<i64>)> {
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
    pub(crate) fn sql(&self, query: &Query, tail: &str) -> String {
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
    pub(crate) async fn print_query(
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
    pub(crate) async fn print_windows(
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
pub(crate) struct LakeReader {
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
    pub(crate) fn tables(
        &self,
        sessions: Option<&HashSet<String>>,
    ) -> anyhow::Result<SessionContext> {
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
pub(crate) async fn session_spans(
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
pub(crate) async fn count_rows(
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

pub(crate) fn regex_flag(flag: &str, pattern: &str) -> anyhow::Result<regex::Regex> {
    regex::Regex::new(pattern)
        .with_context(|| format!("{flag} {pattern:?} is not a valid regular expression"))
}

pub(crate) async fn search(cli: &Cli, args: &SearchArgs) -> anyhow::Result<Outcome> {
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
