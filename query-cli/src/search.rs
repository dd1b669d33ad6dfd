//! `sessionlake search`, and the printing of the listings `search`, `sessions` and `access`
//! run through the read library (`sessionlake_read::listing`: windows, pages with cursors).

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

/// Prints the page of `listing` that `paging` asks for, then the summary: how many `noun`
/// match in all and the cursor of the next page.
pub(crate) async fn print_listing(
    listing: &Listing,
    noun: &str,
    ctx: &SessionContext,
    lake: Option<&LakeReader>,
    query: Query,
    paging: &Paging,
    mut printer: Printer,
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
    let summary = serde_json::json!({"matched": matched, "shown": shown, "next": next});
    printer.finish(summary, &text)?;
    Ok(if shown > 0 { Outcome::Matched } else { Outcome::NoMatch })
}

/// The files a search of commands from `since` to `until` reads: the partitions of the range,
/// and of `commands` only the delivery of each session that `show` reads.
pub(crate) fn searched_files(
    live: &BTreeMap<String, ObjectEntry>,
    since: Option<i64>,
    until: Option<i64>,
) -> impl Fn(&str) -> bool + Send + Sync + use<> {
    let searched = manifest::preferred_commands(live);
    let in_range = partitions_between(since, until);
    move |path: &str| {
        in_range(path) && (!path.starts_with(paths::COMMANDS_DIR) || searched.contains(path))
    }
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
    let keep = searched_files(&snapshot.live, since, until);
    let lake = LakeReader {
        store,
        keys,
        snapshot,
        keep: Box::new(keep),
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
        let view = &access::SEARCH_WITH_ACCESS_VIEW;
        let printer = view.printer(&args.print).with_highlights(highlights);
        return print_listing(&listing, view.noun, &ctx, None, query, &args.paging, printer).await;
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
    };
    let printer = SEARCH_VIEW.printer(&args.print).with_highlights(highlights);
    let noun = SEARCH_VIEW.noun;
    print_listing(&listing, noun, &ctx, Some(&lake), query, &args.paging, printer).await
}
