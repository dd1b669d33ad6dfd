//! `sessionlake sessions`: one row per session.

// The crate root's imports and shared helpers, as a test module's `use super::*`.
use crate::*;
use sessionlake_read::transcripts;

pub(crate) async fn sessions(cli: &Cli, args: &SessionsArgs) -> anyhow::Result<Outcome> {
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
        transcripts::ATTRIBUTION_CONFLICT
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
    let filter = filter_of(&args.filters, since, until);
    let merged = transcripts::with_transcript_status(&ctx, &found, &filter, wait).await?;
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
    };
    let printer = SESSIONS_VIEW.printer(&args.print);
    let (noun, paging) = (SESSIONS_VIEW.noun, &args.paging);
    print_listing(&listing, noun, &ctx, None, listed, paging, printer, Default::default()).await
}
