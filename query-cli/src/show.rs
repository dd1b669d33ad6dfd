//! `sessionlake show`: one session's commands, or with `--raw` its original terminal bytes.

// The crate root's imports and shared helpers, as a test module's `use super::*`.
use crate::*;

/// Returns the live objects of the version of `session` that `source` delivered: its own
/// objects, and the compacted files that hold its rows.
pub(crate) fn version_objects<'a>(
    live: &'a BTreeMap<String, ObjectEntry>,
    session: &str,
    source: SessionSource,
) -> Vec<&'a ObjectEntry> {
    let compacted = manifest::compacted_version_source(live.values(), session) == Some(source);
    live.values()
        .filter(|entry| {
            paths::is_session_object(&entry.path, session, source)
                || (compacted
                    && paths::is_compacted(&entry.path)
                    && entry.sessions.iter().any(|id| id == session))
        })
        .collect()
}

pub(crate) async fn show(cli: &Cli, args: &ShowArgs) -> anyhow::Result<Outcome> {
    if args.raw {
        return show_raw(cli, &args.session).await;
    }
    let mut query = Query::default();
    query.bind("c.session_id = ?", ScalarValue::from(args.session.as_str()));
    // A session delivered by several sources (S3 and CloudWatch) is shown from one.
    let session = args.session.clone();
    let mut known = false;
    let ctx = open_tables(cli, Scope::Session(&args.session), |snapshot| {
        let preferred = session_sources(&snapshot.live, &session).first().copied();
        known = preferred.is_some();
        let files: HashSet<String> = preferred
            .map(|source| version_objects(&snapshot.live, &session, source))
            .unwrap_or_default()
            .into_iter()
            .map(|entry| entry.path.clone())
            .collect();
        move |path: &str| files.contains(path)
    })
    .await?;
    anyhow::ensure!(
        known,
        "no session {} in {} (list them with `sessionlake sessions`)",
        sessionlake_schemas::session_id::escaped(&args.session),
        cli.lake
    );
    let sql = format!(
        "SELECT c.seq, c.started_at AS time, c.cwd, c.prompt, c.command, c.output, \
         c.output_truncated, c.confidence FROM commands c {} ORDER BY c.seq",
        query.where_clause()
    );
    let frame = ctx.sql(&sql).await.context("query failed")?.with_param_values(query.params)?;
    let mut printer = SHOW_VIEW.printer(&args.print);
    let rows = stream_frame(frame, &mut printer, &Progress::spinner(false, ""), None).await?;
    let summary = serde_json::json!({"matched": rows, "shown": rows});
    printer.finish(summary, &format!("{rows} {}", SHOW_VIEW.noun))?;
    Ok(if rows > 0 { Outcome::Matched } else { Outcome::NoMatch })
}

/// Returns the sources that delivered `session` (live objects only), the one `show` reads
/// first: the source of the version in a compacted file, else by [`SessionSource::PREFERENCE`].
pub(crate) fn session_sources(
    live: &BTreeMap<String, ObjectEntry>,
    session: &str,
) -> Vec<SessionSource> {
    let in_compacted = live.values().any(|entry| {
        entry.kind == ObjectKind::Commands
            && paths::is_compacted(&entry.path)
            && entry.sessions.iter().any(|id| id == session)
    });
    let compacted =
        in_compacted.then(|| manifest::compacted_version_source(live.values(), session)).flatten();
    let mut sources: Vec<SessionSource> = compacted.into_iter().collect();
    sources.extend(SessionSource::PREFERENCE.into_iter().filter(|source| {
        compacted != Some(*source)
            && live.keys().any(|path| paths::is_session_object(path, session, *source))
    }));
    sources
}

/// Reads a committed object and checks its size and SHA-256 against the manifest entry.
pub(crate) async fn read_committed(
    store: &LakeStore,
    entry: &ObjectEntry,
) -> anyhow::Result<bytes::Bytes> {
    Ok(store.get_committed(entry).await?)
}

/// Writes the session's original transcript to stdout, after checking the stored object
/// against the hash the manifest committed and opening it with its data key.
pub(crate) async fn show_raw(cli: &Cli, session: &str) -> anyhow::Result<Outcome> {
    let (store, keys, snapshot) = open_reader(cli, Scope::Session(session)).await?;
    let sources = session_sources(&snapshot.live, session);
    // The same source as `show` (and `export`) reads.
    let entry = sources.first().and_then(|source| {
        snapshot.live.values().find(|entry| {
            entry.kind == ObjectKind::Raw
                && entry.sessions.iter().any(|id| id == session)
                && paths::is_session_object(&entry.path, session, *source)
        })
    });
    let Some(entry) = entry else {
        anyhow::bail!(
            "no session {} in {} (list them with `sessionlake sessions`)",
            sessionlake_schemas::session_id::escaped(session),
            store.location()
        );
    };
    let lake = snapshot.lake_id.clone();
    // A streamed CloudWatch delivery is stored as its log events: the terminal lines they
    // carry are what replays.
    let out: Box<dyn std::io::Write + Send> =
        if sources.first() == Some(&SessionSource::CloudwatchStream) {
            Box::new(export::StreamedTerminal::new(std::io::stdout()))
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
