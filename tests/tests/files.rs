//! `sessionlake files`: the live files of a table, so that an engine reading a list of files
//! (DuckDB here) counts the rows `search` counts, where a folder glob does not.

use sessionlake_tests::{binary, copy_tree, duckdb, repo_root, run};

/// After a CloudWatch stream grew and was ingested again, its replaced version stays in
/// `commands/`: a glob counts it, the list `files` prints does not, and DuckDB over that list
/// counts what `search` counts.
#[test]
fn test_duckdb_over_the_live_files_counts_what_search_counts() {
    let dir = tempfile::tempdir().expect("tempdir");
    copy_tree(&repo_root().join("examples"), &dir.path().join("examples"));
    let ingest = || {
        let ran = run(binary("sessionlake-ingest", false).current_dir(dir.path()).arg("--quiet"));
        assert_eq!(ran.code, 0, "ingest: {}", ran.stderr);
    };
    ingest();
    // The stream grows by one event (the last one again, a second later).
    let stream =
        dir.path().join("examples/cloudwatch/ssm-sessions/bob-ilpxvkhghl9vs9ia2xfdyp4dka.json");
    let mut saved: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&stream).expect("read stream")).expect("json");
    let events = saved["events"].as_array_mut().expect("events");
    let mut grown = events.last().expect("an event").clone();
    grown["timestamp"] = serde_json::json!(grown["timestamp"].as_i64().expect("ms") + 1000);
    events.push(grown);
    std::fs::write(&stream, serde_json::to_vec(&saved).expect("encode")).expect("write");
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
