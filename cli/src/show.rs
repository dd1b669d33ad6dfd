//! `sessionlake show`: one session's commands, or with `--raw` its original terminal bytes.

// The crate root's imports and shared helpers, as a test module's `use super::*`.
use crate::*;
use sessionlake_read::delivery::{CommandCounts, Counted, chosen_source, version_objects};
use sessionlake_read::streamed::StreamedTerminal;

pub(crate) async fn show(cli: &Cli, args: &ShowArgs) -> anyhow::Result<Outcome> {
    if args.raw {
        return show_raw(cli, &args.session, args.source).await;
    }
    let session = args.session.as_str();
    let (store, keys, snapshot) = open_reader(cli, Scope::Session(session)).await?;
    // A session delivered by several sources (S3 and CloudWatch) is shown from one.
    let sources = manifest::session_sources(&snapshot.live, session);
    let shown = chosen_source(&sources, args.source, session, &cli.lake)?;
    let delivery = |source: SessionSource| -> anyhow::Result<SessionContext> {
        let files: HashSet<&str> = version_objects(&snapshot.live, session, source)
            .into_iter()
            .map(|entry| entry.path.as_str())
            .collect();
        let ctx = lake_tables::new_context(memory_limit(cli))?;
        let keep = |path: &str| files.contains(path);
        lake_tables::register(&ctx, &store, &snapshot, keys.clone(), &keep)?;
        Ok(ctx)
    };
    let ctx = delivery(shown)?;
    let mut query = Query::default();
    query.bind("c.session_id = ?", ScalarValue::from(session));
    let sql = format!(
        "SELECT c.seq, c.started_at AS time, c.cwd, c.prompt, c.command, c.output, \
         c.output_truncated, c.confidence FROM commands c {} ORDER BY c.seq",
        query.where_clause()
    );
    let frame = ctx.sql(&sql).await.context("query failed")?;
    let frame = frame.with_param_values(query.params.clone())?;
    let mut printer = SHOW_VIEW.printer(&args.print);
    let rows = stream_frame(frame, &mut printer, &Progress::spinner(false, ""), None).await?;
    // What the other deliveries hold and the one shown lacks.
    let mut lacking: Vec<(SessionSource, u64)> = Vec::new();
    for &other in sources.iter().filter(|source| **source != shown) {
        let streamed = shown.is_streamed() || other.is_streamed();
        let mut counts = CommandCounts::default();
        counts.add(&delivery(other)?, &query, Counted::Other(&|_| streamed)).await?;
        counts.add(&ctx, &query, Counted::Listed).await?;
        if let Some(more) = counts.more().into_iter().map(|(_, more)| more).next() {
            lacking.push((other, more));
        }
    }
    let mut summary = serde_json::json!({"matched": rows, "shown": rows, "source": shown.as_str()});
    if !lacking.is_empty() {
        let unlisted: Vec<serde_json::Value> = lacking
            .iter()
            .map(|(source, more)| serde_json::json!({"source": source.as_str(), "matched": more}))
            .collect();
        summary["unlisted"] = serde_json::Value::Array(unlisted);
    }
    printer.finish(summary, &format!("{rows} {} (from {})", SHOW_VIEW.noun, shown.as_str()))?;
    for (source, more) in &lacking {
        warn_line(&format!(
            "the {source} delivery of {id} differs from the {shown} delivery shown: {more} of \
             its commands are not in it (`sessionlake show {id} --source {source}` shows it)",
            source = source.as_str(),
            id = sessionlake_schemas::session_id::escaped(session),
            shown = shown.as_str(),
        ));
    }
    Ok(if rows > 0 || !lacking.is_empty() { Outcome::Matched } else { Outcome::NoMatch })
}

/// Writes the session's original transcript to stdout, after checking the stored object
/// against the hash the manifest committed and opening it with its data key.
pub(crate) async fn show_raw(
    cli: &Cli,
    session: &str,
    source: Option<SessionSource>,
) -> anyhow::Result<Outcome> {
    let (store, keys, snapshot) = open_reader(cli, Scope::Session(session)).await?;
    let sources = manifest::session_sources(&snapshot.live, session);
    // The same source as `show` (and `export`) reads.
    let shown = chosen_source(&sources, source, session, store.location())?;
    let entry = snapshot.live.values().find(|entry| {
        entry.kind == ObjectKind::Raw
            && entry.sessions.iter().any(|id| id == session)
            && paths::is_session_object(&entry.path, session, shown)
    });
    let Some(entry) = entry else {
        anyhow::bail!(
            "the {} delivery of {} has no transcript in {}",
            shown.as_str(),
            sessionlake_schemas::session_id::escaped(session),
            store.location()
        );
    };
    let lake = snapshot.lake_id.clone();
    // A streamed CloudWatch delivery is stored as its log events: the terminal lines they
    // carry are what replays.
    let out: Box<dyn std::io::Write + Send> = if shown.is_streamed() {
        Box::new(StreamedTerminal::new(std::io::stdout()))
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
