//! `sessionlake search`, and the printing of the listings `search`, `sessions` and `access`
//! run through the read library (`sessionlake_read::listing`: windows, pages with cursors).

// The crate root's imports and shared helpers, as a test module's `use super::*`.
use crate::*;
use sessionlake_read::delivery::{CommandCounts, Counted};

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

/// Rows a search reads per query, about (see `Listing::run`); `SESSIONLAKE_CHUNK_ROWS` sets
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

/// A printer as the read library's row sink: each batch printed, the spinner moved on.
pub(crate) struct PrintSink<'a> {
    pub(crate) printer: &'a mut Printer,
    pub(crate) progress: &'a Progress,
}

impl RowSink for PrintSink<'_> {
    fn start(&mut self, schema: &Schema) -> ReadResult<()> {
        self.printer.start(schema).map_err(output::sink_error)
    }

    fn write(&mut self, batch: &RecordBatch) -> ReadResult<()> {
        self.progress.suspend(|| self.printer.write_batch(batch)).map_err(output::sink_error)?;
        self.progress.advance(batch.num_rows() as u64);
        Ok(())
    }
}

/// Prints the rows of `frame` as they come, at most `limit` of them, and returns how many.
pub(crate) async fn stream_frame(
    frame: DataFrame,
    printer: &mut Printer,
    progress: &Progress,
    limit: Option<u64>,
) -> anyhow::Result<u64> {
    let mut sink = PrintSink { printer, progress };
    Ok(listing::stream_frame(frame, &mut sink, limit).await?.rows)
}

/// Matches a search does not list: in the deliveries it leaves out of sessions delivered more
/// than once ([`manifest::unlisted_deliveries`]) that the listed delivery lacks.
#[derive(Debug, Default)]
pub(crate) struct Unlisted {
    /// Rows that match there.
    pub(crate) matched: u64,
    /// The sessions they are of.
    pub(crate) sessions: Vec<String>,
}

/// Prints the page of `listing` that `paging` asks for, then the summary: how many `noun`
/// match in all and the cursor of the next page, and what matches and is not listed
/// (`unlisted`: a warning, and `unlisted` in the JSON summary; such matches make the outcome a
/// match, never "nothing found").
#[allow(clippy::too_many_arguments)] // the parts of one listing, as its four callers hold them
pub(crate) async fn print_listing(
    listing: &Listing,
    noun: &str,
    ctx: &SessionContext,
    lake: Option<&LakeReader>,
    query: Query,
    paging: &Paging,
    mut printer: Printer,
    unlisted: Unlisted,
) -> anyhow::Result<Outcome> {
    let progress = Progress::spinner(printer.format() != OutputFormat::Json, "searching");
    let page =
        PageRequest { after: paging.after.clone(), limit: paging.limit, chunk: chunk_rows() };
    let mut sink = PrintSink { printer: &mut printer, progress: &progress };
    let listed = listing.run(ctx, lake, query, &page, &mut sink).await.map_err(|error| {
        let error = anyhow::Error::from(error);
        if paging.after.is_some() { error.context("--after") } else { error }
    })?;
    drop(progress);
    let Listed { matched, shown, next } = listed;
    let mut text = format!("{matched} {noun}");
    if shown < matched {
        text.push_str(&format!(" (showing {shown}"));
        if let Some(next) = &next {
            text.push_str(&format!("; next page: --after {next}"));
        }
        text.push(')');
    }
    let mut summary = serde_json::json!({"matched": matched, "shown": shown, "next": next});
    if unlisted.matched > 0 {
        summary["unlisted"] =
            serde_json::json!({"matched": unlisted.matched, "sessions": unlisted.sessions});
    }
    printer.finish(summary, &text)?;
    if unlisted.matched > 0 {
        // The first ten named (the JSON summary has them all).
        let mut sessions: Vec<String> = unlisted
            .sessions
            .iter()
            .take(10)
            .map(|id| sessionlake_schemas::session_id::escaped(id).into())
            .collect();
        if unlisted.sessions.len() > sessions.len() {
            sessions.push(format!("{} more sessions", unlisted.sessions.len() - sessions.len()));
        }
        warn_line(&format!(
            "{} more {noun} are in deliveries not listed: {} delivered more than once (by \
             S3 and CloudWatch, or by one source from two objects: `sessionlake sessions \
             --session ID` shows each delivery, `verify` names conflicts), and what this search \
             lists of them lacks these (or dates them otherwise: a transcript's commands take \
             the session's start); it lists one delivery per session, `sessionlake sql` reads \
             every delivery",
            unlisted.matched,
            sessions.join(", ")
        ));
    }
    Ok(if shown > 0 || unlisted.matched > 0 { Outcome::Matched } else { Outcome::NoMatch })
}

/// Counts what `query` (on `commands c` joined with the session times) matches in the
/// deliveries a search leaves out ([`manifest::unlisted_deliveries`]: the CloudWatch delivery of
/// a session S3 delivered too, the second delivery of a session one source delivered from two
/// objects) and the listed delivery of the same session does not match: a command text
/// ([`sessionlake_schemas::comparable_command`]) found more times there than in what the search
/// lists of that session. In the partitions `in_range` keeps; nothing is read when every
/// session has one delivery, and the listed deliveries only for sessions with such matches.
async fn unlisted_matches(
    lake: &LakeReader,
    preferred: &HashSet<String>,
    in_range: &(dyn Fn(&str) -> bool + Send + Sync),
    query: &Query,
) -> anyhow::Result<Unlisted> {
    let live = &lake.snapshot.live;
    let unlisted = manifest::unlisted_deliveries(live, preferred);
    // The files not listed, by the source that delivered them: each source's matches are one
    // delivery's (several only for a conflict, two objects of one source).
    let mut by_source: BTreeMap<SessionSource, HashSet<&str>> = BTreeMap::new();
    for (session, files) in &unlisted {
        if lake.only.as_ref().is_some_and(|only| only != session) {
            continue;
        }
        for path in files.iter().filter(|path| in_range(path)) {
            if let Some((_, source, _)) = paths::session_version(path) {
                by_source.entry(source).or_default().insert(path.as_str());
            }
        }
    }
    if by_source.is_empty() {
        return Ok(Unlisted::default());
    }
    let sessions: HashSet<&str> = unlisted.keys().map(String::as_str).collect();
    let listed_sources = manifest::preferred_sources(live, preferred, &sessions);
    let mut counts = CommandCounts::default();
    for (&source, files) in &by_source {
        // Compared as a stream carries text where one of the two deliveries is a stream.
        let streamed = |session: &str| {
            source.is_streamed()
                || listed_sources.get(session).is_some_and(|listed| listed.is_streamed())
        };
        // Dated by their own versions' `sessions` rows (never compacted: compaction takes the
        // preferred delivery only).
        let versions: HashSet<_> =
            files.iter().filter_map(|path| paths::session_version(path)).collect();
        let keep = |path: &str| {
            in_range(path)
                && if path.starts_with(paths::COMMANDS_DIR) {
                    files.contains(path)
                } else if path.starts_with(paths::SESSIONS_DIR) {
                    paths::session_version(path).is_some_and(|version| versions.contains(&version))
                } else {
                    true
                }
        };
        let ctx = lake.tables_keeping(None, &keep)?;
        counts.add(&ctx, query, Counted::Other(&streamed)).await?;
    }
    if counts.sessions().next().is_none() {
        return Ok(Unlisted::default());
    }
    // What the search lists of those sessions takes back what it shows of them.
    let sessions: HashSet<String> = counts.sessions().cloned().collect();
    let listed = lake.tables_keeping(Some(&sessions), &*lake.keep)?;
    counts.add(&listed, query, Counted::Listed).await?;
    let mut unlisted = Unlisted::default();
    for (session, more) in counts.more() {
        unlisted.matched += more;
        unlisted.sessions.push(session);
    }
    Ok(unlisted)
}

/// The files a search of commands from `since` to `until` reads: the partitions of the range,
/// and of `commands` and `sessions` only the delivery of each session that `show` reads
/// (`searched`, [`manifest::preferred_files`]).
pub(crate) fn searched_files(
    searched: HashSet<String>,
    since: Option<i64>,
    until: Option<i64>,
) -> impl Fn(&str) -> bool + Send + Sync + use<> {
    let in_range = partitions_between(since, until);
    move |path: &str| in_range(path) && (!is_per_delivery(path) || searched.contains(path))
}

/// Returns whether `path` is in a table whose rows are per delivery (`commands`, `sessions`).
fn is_per_delivery(path: &str) -> bool {
    [paths::COMMANDS_DIR, paths::SESSIONS_DIR]
        .iter()
        .any(|dir| path.strip_prefix(dir).is_some_and(|rest| rest.starts_with('/')))
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
    let time_expression = COMMAND_TIME;
    query.bind_filters(&filter_of(&args.filters, since, until), COMMANDS_ALIAS, time_expression);
    // One session searched: the checkpoint's part that holds it is enough.
    let scope = args.filters.session.as_deref().map_or(Scope::Whole, Scope::Session);
    let (store, keys, snapshot) = open_reader(cli, scope).await?;
    let preferred = manifest::preferred_files(&snapshot.live);
    let keep = searched_files(preferred.clone(), since, until);
    let lake = LakeReader {
        store,
        keys,
        snapshot,
        keep: Box::new(keep),
        only: args.filters.session.clone(),
        memory_limit: memory_limit(cli),
    };
    let ctx = lake.tables(None)?;
    let in_range = partitions_between(since, until);
    let unlisted = unlisted_matches(&lake, &preferred, &in_range, &query).await?;
    if args.include_access {
        let commands_sql = format!(
            "SELECT {SEARCH_COLUMNS}, c.effective_user, c.shell, c.program \
             FROM {COMMANDS_WITH_SESSION_TIMES} {}",
            query.where_clause()
        );
        let (listing, query) =
            access::search_with_access(&commands_sql, query, &args.filters, since, until);
        let view = &access::SEARCH_WITH_ACCESS_VIEW;
        let printer = view.printer(&args.print).with_highlights(highlights);
        let paging = &args.paging;
        return print_listing(&listing, view.noun, &ctx, None, query, paging, printer, unlisted)
            .await;
    }
    let listing = Listing {
        name: "commands",
        select: format!(
            "SELECT {SEARCH_COLUMNS}, {SEARCH_ADDED_COLUMNS}, {time_expression} AS {SORT_TIME} \
             FROM {COMMANDS_WITH_SESSION_TIMES}"
        ),
        time_expression,
        key_expressions: &["c.session_id", "c.seq"],
        key_columns: &["session_id", "seq"],
    };
    let printer = SEARCH_VIEW.printer(&args.print).with_highlights(highlights);
    let noun = SEARCH_VIEW.noun;
    print_listing(&listing, noun, &ctx, Some(&lake), query, &args.paging, printer, unlisted).await
}
