//! `sessionlake files`: the live files of a table, so that an engine reading a list of files
//! (DuckDB here) counts the rows `search` counts, where a folder glob does not.

use sessionlake_tests::{binary, copy_tree, duckdb, repo_root, run};

fn ingest(dir: &std::path::Path) {
    let ran = run(binary("sessionlake-ingest", false).current_dir(dir).arg("--quiet"));
    assert_eq!(ran.code, 0, "ingest: {}", ran.stderr);
}

/// The example CloudWatch stream grows by one event (the last one again, a second later).
fn grow_stream(dir: &std::path::Path) {
    let stream = dir.join("examples/cloudwatch/ssm-sessions/bob-ilpxvkhghl9vs9ia2xfdyp4dka.json");
    let mut saved: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&stream).expect("read stream")).expect("json");
    let events = saved["events"].as_array_mut().expect("events");
    let mut grown = events.last().expect("an event").clone();
    grown["timestamp"] = serde_json::json!(grown["timestamp"].as_i64().expect("ms") + 1000);
    events.push(grown);
    std::fs::write(&stream, serde_json::to_vec(&saved).expect("encode")).expect("write");
}

/// After a CloudWatch stream grew and was ingested again, its replaced version stays in
/// `commands/`: a glob counts it, the list `files` prints does not, and DuckDB over that list
/// counts what `search` counts.
#[test]
fn test_duckdb_over_the_live_files_counts_what_search_counts() {
    let dir = tempfile::tempdir().expect("tempdir");
    copy_tree(&repo_root().join("examples"), &dir.path().join("examples"));
    let ingest = || ingest(dir.path());
    ingest();
    grow_stream(dir.path());
    ingest();

    let sessionlake = |args: &[&str]| {
        let ran = run(binary("sessionlake", false).current_dir(dir.path()).args(args));
        assert!(ran.code <= 1, "{args:?}: exit {}: {}", ran.code, ran.stderr);
        ran.stdout
    };
    let searched = sessionlake(&["search", "--format", "json"]);
    let search_rows = searched
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|record| record["type"] != "summary")
        .count();
    assert!(search_rows > 0, "{searched}");
    let listed: Vec<String> =
        serde_json::from_str(&sessionlake(&["files", "--table", "commands", "--json"]))
            .expect("a JSON list of files");
    assert!(listed.iter().all(|file| file.ends_with(".parquet")), "{listed:?}");
    let quoted: Vec<String> =
        listed.iter().map(|file| format!("'{}'", file.replace('\'', "''"))).collect();
    let counted = duckdb(
        dir.path(),
        &format!(
            "SELECT count(*) FROM read_parquet([{}], hive_partitioning = true)",
            quoted.join(",")
        ),
    );
    assert_eq!(counted, vec![serde_json::json!([search_rows])]);
    let globbed = duckdb(
        dir.path(),
        "SELECT count(*) FROM read_parquet('lake/commands/**/*.parquet', hive_partitioning = true)",
    );
    let globbed = globbed[0][0].as_u64().expect("a count");
    assert!(globbed > search_rows as u64, "the glob also reads the replaced version: {globbed}");
    // One file per line without --json; every delivery on request.
    let lines = sessionlake(&["files", "--table", "commands"]);
    assert_eq!(lines.lines().count(), listed.len());
    let every = sessionlake(&["files", "--table", "commands", "--every-delivery"]);
    assert!(every.lines().count() >= listed.len());
}

/// Lists the files of the Delta table in `table_dir` with the Python `deltalake` package
/// (delta-rs, as Spark and Athena would read the log), as absolute paths, sorted.
fn delta_files(table_dir: &std::path::Path) -> Vec<String> {
    let python = std::env::var("SESSIONLAKE_TEST_PYTHON")
        .expect("SESSIONLAKE_TEST_PYTHON is not set: run the tests with ./scripts/test");
    let script = "import deltalake, json, sys\n\
                  table = deltalake.DeltaTable(sys.argv[1])\n\
                  print(json.dumps(sorted(table.file_uris())))\n";
    let ran = run(std::process::Command::new(python).arg("-c").arg(script).arg(table_dir));
    assert_eq!(ran.code, 0, "deltalake on {}: {}", table_dir.display(), ran.stderr);
    serde_json::from_str(ran.stdout.trim()).expect("a JSON list")
}

/// What the Python `deltalake` package reads of the statistics of the `commands` log: the
/// total of `numRecords`, and the columns with a minimum or maximum in any file.
fn delta_statistics(table_dir: &std::path::Path) -> (u64, Vec<String>) {
    let python = std::env::var("SESSIONLAKE_TEST_PYTHON")
        .expect("SESSIONLAKE_TEST_PYTHON is not set: run the tests with ./scripts/test");
    let script = "import deltalake, json, pyarrow, sys\n\
                  actions = pyarrow.table(deltalake.DeltaTable(sys.argv[1]).get_add_actions(flatten=True))\n\
                  rows = actions.to_pylist()\n\
                  bounded = sorted({k.split('.', 1)[1] for row in rows for k, v in row.items()\n\
                                    if k.startswith(('min.', 'max.')) and v is not None})\n\
                  print(json.dumps([sum(row['num_records'] for row in rows), bounded]))\n";
    let ran = run(std::process::Command::new(python).arg("-c").arg(script).arg(table_dir));
    assert_eq!(ran.code, 0, "deltalake on {}: {}", table_dir.display(), ran.stderr);
    serde_json::from_str(ran.stdout.trim()).expect("JSON")
}

/// Each table's Delta log lists exactly the live files (`sessionlake files`) after a stream
/// grew and was ingested again and after compaction; `verify` compares the logs with the
/// chain, names a log someone rolled back, and the next commit rewrites it.
#[test]
fn test_delta_logs_list_exactly_the_live_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    copy_tree(&repo_root().join("examples"), &dir.path().join("examples"));
    let ingest = || ingest(dir.path());
    let sessionlake = |args: &[&str]| {
        let ran = run(binary("sessionlake", false).current_dir(dir.path()).args(args));
        (ran.code, ran.stdout, ran.stderr)
    };
    let live = |table: &str| {
        let (code, stdout, stderr) = sessionlake(&["files", "--table", table, "--json"]);
        assert!(code <= 1, "files: {stderr}");
        let mut files: Vec<String> = serde_json::from_str::<Vec<String>>(&stdout)
            .expect("a JSON list")
            .into_iter()
            .map(|file| {
                let path = std::fs::canonicalize(dir.path().join(&file)).expect("a live file");
                format!("{}", path.display())
            })
            .collect();
        files.sort();
        files
    };
    ingest();
    let lake = std::fs::canonicalize(dir.path().join("lake")).expect("lake");
    let same_as_chain = |when: &str| {
        for table in ["commands", "sessions", "access"] {
            let listed = delta_files(&lake.join(table));
            assert_eq!(listed, live(table), "{table} {when}");
        }
    };
    same_as_chain("after the first ingest");
    // Statistics from the files' plaintext footers: the rows search counts, bounds of
    // unencrypted columns only.
    let (records, bounded) = delta_statistics(&lake.join("commands"));
    let (code, searched, stderr) = sessionlake(&["search", "--format", "json"]);
    assert!(code <= 1, "search: {stderr}");
    let rows = searched.lines().filter(|line| !line.contains(r#""type":"summary""#)).count();
    assert_eq!(records, rows as u64, "{searched}");
    assert!(bounded.contains(&"session_id".to_string()), "{bounded:?}");
    for encrypted in sessionlake_schemas::ENCRYPTED_COLUMNS {
        assert!(!bounded.contains(&encrypted.to_string()), "{encrypted} bounded: {bounded:?}");
    }
    grow_stream(dir.path());
    ingest();
    same_as_chain("after the stream grew");
    let (code, _, stderr) = sessionlake(&["compact", "--min-age", "0s"]);
    assert_eq!(code, 0, "compact: {stderr}");
    same_as_chain("after compaction");
    let (code, stdout, stderr) = sessionlake(&["verify"]);
    assert_eq!(code, 0, "verify: {stdout}{stderr}");

    // Someone with write access rolls the commands log back a version (or a run was killed
    // between a commit and its sync): Delta readers now see the lake before compaction.
    // verify names it; the next ingest run brings the log back, with nothing to ingest, and
    // so does the next commit.
    let log = lake.join("commands/_delta_log");
    let roll_back = || {
        let newest = std::fs::read_dir(&log)
            .expect("log")
            .map(|entry| entry.expect("entry").path())
            .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
            .max()
            .expect("a commit");
        std::fs::remove_file(&newest).expect("roll back");
        let (code, stdout, _) = sessionlake(&["verify"]);
        assert_eq!(code, 1, "verify: {stdout}");
        assert!(
            stdout.contains("delta-log-differs") && stdout.contains("commands/_delta_log"),
            "{stdout}"
        );
    };
    roll_back();
    let heads = || std::fs::read_dir(lake.join("manifest")).expect("manifests").count();
    let before = heads();
    ingest();
    assert_eq!(heads(), before, "nothing to ingest, nothing committed");
    same_as_chain("after an ingest run with nothing to ingest");
    roll_back();
    let (code, _, stderr) = sessionlake(&["compact", "--min-age", "0s"]);
    assert_eq!(code, 0, "compact: {stderr}");
    same_as_chain("after the next commit");
    let (code, stdout, stderr) = sessionlake(&["verify"]);
    assert_eq!(code, 0, "verify: {stdout}{stderr}");
}

/// Every corpus session delivered three times, as a transcript (the delivery listed) and as a
/// CloudWatch upload and a stream of the same recording: `search` lists each command once, from
/// the transcript, and counts as unlisted exactly what the other deliveries hold and the
/// transcript lacks, per session and command text (the most either holds, compared as the
/// stream carries text). The upload reads as the transcript does; the stream form misreads a
/// few commands (bytes the agent destroys, previews), and only those are counted.
#[test]
fn test_a_session_delivered_three_times_counts_unlisted_only_what_its_deliveries_read_otherwise() {
    use std::collections::{BTreeMap, HashMap};
    let corpus = repo_root().join("corpus");
    let dir = tempfile::tempdir().expect("tempdir");
    let folder = dir.path().join("logs");
    let forms = [("cloudwatch-upload", "upload"), ("cloudwatch-stream", "stream")];
    for (_, name) in forms {
        std::fs::create_dir_all(folder.join("cloudwatch").join(name)).expect("folder");
    }
    let mut sessions = Vec::new();
    for session in std::fs::read_dir(&corpus).expect("corpus") {
        let session = session.expect("entry").path();
        let name = session.file_name().and_then(|name| name.to_str()).expect("name").to_string();
        let files = [session.join("s3.log")]
            .into_iter()
            .chain(forms.iter().map(|(form, _)| session.join(format!("{form}.json"))));
        if !files.clone().all(|file| file.exists()) {
            continue;
        }
        std::fs::copy(session.join("s3.log"), folder.join(format!("{name}.log"))).expect("copy");
        for (form, short) in forms {
            let to = folder.join("cloudwatch").join(short).join(format!("{name}.json"));
            std::fs::copy(session.join(format!("{form}.json")), to).expect("copy");
        }
        sessions.push(name);
    }
    assert!(sessions.len() > 40, "{sessions:?}");
    let ran = run(binary("sessionlake-ingest", false)
        .current_dir(dir.path())
        .args(["--quiet", "--once", "--local", "logs"]));
    assert_eq!(ran.code, 0, "ingest: {}", ran.stderr);
    let sessionlake = |args: &[&str]| {
        let ran = run(binary("sessionlake", false).current_dir(dir.path()).args(args));
        assert!(ran.code <= 1, "{args:?}: {}", ran.stderr);
        ran.stdout
    };
    let n = sessions.len();
    assert_eq!(
        sessionlake(&[
            "sql",
            "SELECT source, count(*) AS n FROM sessions GROUP BY source ORDER BY source",
            "--format",
            "csv",
        ]),
        format!("source,n\ncloudwatch-stream,{n}\ncloudwatch-upload,{n}\nlocal,{n}\n")
    );
    // Each delivery's command texts, by session, from `show --source`.
    let json_rows = |stdout: String| -> Vec<serde_json::Value> {
        stdout
            .lines()
            .map(|line| serde_json::from_str::<serde_json::Value>(line).expect("JSON line"))
            .collect()
    };
    let texts = |session: &str, source: &str| -> HashMap<String, u64> {
        let mut texts = HashMap::new();
        for row in json_rows(sessionlake(&["show", session, "--source", source, "--json"])) {
            if row["type"] == "match" {
                let command = row["data"]["command"].as_str().expect("a command");
                *texts.entry(sessionlake_schemas::as_streamed(command)).or_default() += 1;
            }
        }
        texts
    };
    let mut expected: BTreeMap<String, u64> = BTreeMap::new();
    let (mut listed, mut upload_differs) = (0, 0);
    for session in &sessions {
        let local = texts(session, "local");
        let (upload, stream) =
            (texts(session, "cloudwatch-upload"), texts(session, "cloudwatch-stream"));
        listed += local.values().sum::<u64>();
        let excess = |other: &HashMap<String, u64>, text: &String| {
            other
                .get(text)
                .copied()
                .unwrap_or_default()
                .saturating_sub(local.get(text).copied().unwrap_or_default())
        };
        upload_differs += upload.keys().map(|text| excess(&upload, text)).sum::<u64>();
        let more: u64 = upload
            .keys()
            .chain(stream.keys())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .map(|text| excess(&upload, text).max(excess(&stream, text)))
            .sum();
        if more > 0 {
            expected.insert(session.clone(), more);
        }
    }
    assert_eq!(upload_differs, 0, "the upload reads as the transcript does");
    assert!(!expected.is_empty(), "the stream misreads a few commands");
    let rows = json_rows(sessionlake(&["search", "--json"]));
    let summary = &rows.last().expect("a summary")["data"];
    assert_eq!(summary["matched"], serde_json::json!(listed), "{summary}");
    let counted: Vec<String> = expected.keys().cloned().collect();
    assert_eq!(summary["unlisted"]["sessions"], serde_json::json!(counted), "{summary}");
    let total: u64 = expected.values().sum();
    assert_eq!(summary["unlisted"]["matched"], serde_json::json!(total), "{summary}");
}

/// Bob's recording as a transcript (`<id>.log`) and as CloudWatch files of it, in a folder a
/// local ingest reads; `edit` rewrites the text of each (transcript, upload, stream) first.
fn deliver_bob(folder: &std::path::Path, edit: &dyn Fn(&str, &str) -> String) -> &'static str {
    const BOB: &str = "bob-ilpxvkhghl9vs9ia2xfdyp4dka";
    let corpus = repo_root().join("corpus").join(BOB);
    let read = |name: &str| std::fs::read_to_string(corpus.join(name)).expect("corpus file");
    std::fs::create_dir_all(folder.join("cloudwatch/upload")).expect("folder");
    std::fs::create_dir_all(folder.join("cloudwatch/stream")).expect("folder");
    let files = [
        ("s3.log", format!("{BOB}.log")),
        ("cloudwatch-upload.json", format!("cloudwatch/upload/{BOB}.json")),
        ("cloudwatch-stream.json", format!("cloudwatch/stream/{BOB}.json")),
    ];
    for (from, to) in files {
        let text = edit(from, &read(from));
        if !text.is_empty() {
            std::fs::write(folder.join(to), text).expect("write");
        }
    }
    BOB
}

/// A stream planted for a session a transcript delivered, dated a day earlier (no CloudTrail
/// says when the session started), does not move the transcript's commands, which carry no
/// time of their own, out of a searched range: each delivery's commands are dated by its own
/// `sessions` row. Before, a command's session time was the earliest of any delivery's, and
/// `--since` the real day found nothing, silently. The planted stream's own commands, in the
/// day before, are counted as unlisted there.
#[test]
fn test_a_planted_stream_never_moves_a_transcripts_commands_out_of_a_searched_range() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bob = deliver_bob(&dir.path().join("logs"), &|name, text| match name {
        "s3.log" => text.to_string(),
        "cloudwatch-stream.json" => {
            let mut saved: serde_json::Value = serde_json::from_str(text).expect("json");
            for event in saved["events"].as_array_mut().expect("events") {
                let ms = event["timestamp"].as_i64().expect("ms");
                event["timestamp"] = serde_json::json!(ms - 86_400_000);
                let message = event["message"].as_str().expect("message");
                event["message"] = serde_json::json!(message.replace("2026-03-14T", "2026-03-13T"));
            }
            saved.to_string()
        }
        _ => String::new(),
    });
    let ran = run(binary("sessionlake-ingest", false)
        .current_dir(dir.path())
        .args(["--quiet", "--once", "--local", "logs"]));
    assert_eq!(ran.code, 0, "ingest: {}", ran.stderr);
    let search = |args: &[&str]| {
        let ran =
            run(binary("sessionlake", false).current_dir(dir.path()).args(args).arg("--json"));
        let lines: Vec<serde_json::Value> =
            ran.stdout.lines().map(|line| serde_json::from_str(line).expect("JSON line")).collect();
        (ran.code, lines, ran.stderr)
    };
    let (code, lines, stderr) =
        search(&["search", "cat notes", "--since", "2026-03-14T00:00:00Z", "--session", bob]);
    assert_eq!(code, 0, "the transcript's command is in the range: {stderr}");
    assert_eq!(lines.len(), 2, "one row and the summary: {lines:#?}");
    assert!(lines[1]["data"].get("unlisted").is_none(), "{lines:#?}");
    let (code, lines, stderr) = search(&[
        "search",
        "--since",
        "2026-03-13T00:00:00Z",
        "--until",
        "2026-03-14T00:00:00Z",
        "--session",
        bob,
    ]);
    assert_eq!(code, 0, "{stderr}");
    let summary = &lines.last().expect("summary")["data"];
    assert_eq!(summary["shown"], serde_json::json!(0), "{summary}");
    assert_eq!(summary["unlisted"]["matched"], serde_json::json!(9), "{summary}");
}

/// Two deliveries compare their commands exactly unless one of them is a CloudWatch stream:
/// a transcript rewritten with a character the stream cannot tell from the real one (`Ё` for
/// `Ѐ`: the agent's stream deletes the byte 0x80 or 0x81 of either, leaving the same U+FFFD)
/// is still told apart from the real upload of the session, though a stream of it is there too.
#[test]
fn test_a_transcript_compares_exactly_with_an_upload_beside_a_stream() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bob = deliver_bob(&dir.path().join("logs"), &|name, text| match name {
        "s3.log" => text.replace("cat notes.txt", "cat n\u{401}tes.txt"),
        "cloudwatch-upload.json" => text.replace("cat notes.txt", "cat n\u{400}tes.txt"),
        _ => text.replace("cat notes.txt", "cat n\u{fffd}tes.txt"),
    });
    let ran = run(binary("sessionlake-ingest", false)
        .current_dir(dir.path())
        .args(["--quiet", "--once", "--local", "logs"]));
    assert_eq!(ran.code, 0, "ingest: {}", ran.stderr);
    let ran = run(binary("sessionlake", false).current_dir(dir.path()).args([
        "search",
        "cat n",
        "--session",
        bob,
        "--json",
    ]));
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    let lines: Vec<serde_json::Value> =
        ran.stdout.lines().map(|line| serde_json::from_str(line).expect("JSON line")).collect();
    assert_eq!(lines[0]["data"]["command"], serde_json::json!("cat n\u{401}tes.txt"));
    let summary = &lines.last().expect("summary")["data"];
    assert_eq!(summary["unlisted"]["matched"], serde_json::json!(1), "the upload's: {summary}");
}

/// Every corpus transcript ingested from a local folder with `--hold-rows-up-to 0` (each
/// parsed twice, its commands file written as the rows come, as a transcript too big to hold
/// is) gives the lake ingested the usual way: every column of every command, every session's
/// count, shells and understanding. Three of them also go in long (their bodies again and again,
/// past the 1 MiB the parser reads before the header: bash with line-editor marks, fish, dash).
#[test]
fn test_transcripts_parsed_twice_give_the_lake_parsed_once() {
    let corpus = repo_root().join("corpus");
    let mut lakes = Vec::new();
    for hold in [None, Some("0")] {
        let dir = tempfile::tempdir().expect("tempdir");
        let folder = dir.path().join("logs");
        std::fs::create_dir(&folder).expect("folder");
        for session in std::fs::read_dir(&corpus).expect("corpus") {
            let session = session.expect("entry").path();
            let name = session.file_name().and_then(|name| name.to_str()).expect("name");
            let transcript = session.join("s3.log");
            if transcript.exists() {
                std::fs::copy(&transcript, folder.join(format!("{name}.log"))).expect("copy");
            }
        }
        for (source, name) in [
            ("alice-0f2a4b6c8d0e2f4a6", "carol-1111111111111111a"),
            ("frank-2a4b6c8d0e2f4a6b8", "carol-1111111111111111b"),
            ("carol.diaz-t8gk2vx5qb9rn3wm7yc1zf6hdp", "carol-1111111111111111c"),
        ] {
            let text = std::fs::read(corpus.join(source).join("s3.log")).expect("transcript");
            std::fs::write(folder.join(format!("{name}.log")), long(&text)).expect("write");
        }
        let mut command = binary("sessionlake-ingest", false);
        command.current_dir(dir.path()).args(["--quiet", "--once", "--local", "logs"]);
        command.args(["--log", "info"]);
        if let Some(hold) = hold {
            command.args(["--hold-rows-up-to", hold]);
        }
        let ran = run(&mut command);
        assert_eq!(ran.code, 0, "ingest: {}", ran.stderr);
        let twice = ran.stderr.matches("transcript parsed twice").count();
        let transcripts = std::fs::read_dir(&folder).expect("folder").count();
        assert_eq!(twice, if hold.is_some() { transcripts } else { 0 }, "{}", ran.stderr);
        let sql = |query: &str| {
            let ran = run(binary("sessionlake", false)
                .current_dir(dir.path())
                .args(["sql", query, "--format", "csv"]));
            assert_eq!(ran.code, 0, "{query}: {}", ran.stderr);
            ran.stdout
        };
        let commands =
            sql("SELECT * EXCEPT (parser_version) FROM commands ORDER BY session_id, seq");
        let sessions =
            sql("SELECT session_id, command_count, status, shells, input_explained, confidence, \
             confidence_reason, started_at, ended_at FROM sessions ORDER BY session_id");
        lakes.push((commands, sessions, dir));
    }
    let (once, twice) = (&lakes[0], &lakes[1]);
    assert!(once.0.lines().count() > 500, "the corpus has commands: {}", once.0.len());
    assert!(once.1.lines().count() > 40, "{}", once.1);
    for long in ["carol-1111111111111111a", "carol-1111111111111111b", "carol-1111111111111111c"] {
        let row = once.1.lines().find(|row| row.starts_with(long)).expect("a long session");
        let count: usize = row.split(',').nth(1).and_then(|n| n.parse().ok()).expect("a count");
        assert!(count > 500, "{row}");
    }
    assert!(once.0 == twice.0, "the commands differ");
    assert_eq!(once.1, twice.1);
}

/// `transcript` with its body (between the `script` header and footer lines) again and again,
/// to 1.2 MB.
fn long(transcript: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(transcript);
    let (header, rest) = text.split_once('\n').expect("a header line");
    let footer_at = rest.rfind("Script done").unwrap_or(rest.len());
    let (body, footer) = rest.split_at(footer_at);
    let mut long = format!("{header}\n");
    while long.len() < 1_200_000 {
        long.push_str(body);
    }
    long.push_str(footer);
    long.into_bytes()
}
