//! `sessionlake ocsf`: the commands of a range as OCSF 1.1 Process Activity events in
//! Security Lake's layout, checked against the OCSF 1.1.0 class schema and read back with
//! pyarrow (`tests/ocsf/validate.py`); no command text unless asked for.

use std::path::Path;

use sessionlake_tests::{binary, files_under, repo_root, run};

/// Runs the validator on `out`: its JSON summary, and whether it passed.
fn validate(out: &Path) -> (serde_json::Value, bool) {
    let python = std::env::var("SESSIONLAKE_TEST_PYTHON")
        .expect("SESSIONLAKE_TEST_PYTHON is not set: run the tests with ./scripts/test");
    let ocsf = repo_root().join("tests/ocsf");
    let ran = run(std::process::Command::new(python)
        .arg(ocsf.join("validate.py"))
        .arg(ocsf.join("process_activity-1.1.0.json"))
        .arg(out)
        .arg("sessionlake"));
    let summary = serde_json::from_str(ran.stdout.trim())
        .unwrap_or_else(|error| panic!("{error}: {}{}", ran.stdout, ran.stderr));
    (summary, ran.code == 0)
}

#[test]
fn test_ocsf_events_follow_the_class_schema_and_leave_commands_out() {
    let (dir, _) = super::ingested_examples();
    let sessionlake =
        |args: &[&str]| run(binary("sessionlake", false).current_dir(dir.path()).args(args));

    // The commands of the range, as search finds them.
    let searched = sessionlake(&["search", "--since", "2026-01-01", "--format", "json"]);
    let rows: Vec<serde_json::Value> = searched
        .stdout
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|record| record["type"] != "summary")
        .collect();
    assert!(rows.len() > 10, "{}", searched.stdout);
    let commands: Vec<String> = rows
        .iter()
        .filter_map(|row| row["data"]["command"].as_str().or(row["command"].as_str()))
        .filter(|command| command.len() >= 8)
        .map(str::to_string)
        .collect();
    assert!(!commands.is_empty(), "{rows:?}");

    let out = dir.path().join("ocsf");
    let written = sessionlake(&["ocsf", "--since", "2026-01-01", "--out", "ocsf"]);
    assert_eq!(written.code, 0, "{}", written.stderr);
    let (summary, passed) = validate(&out);
    assert!(passed, "{summary}");
    assert_eq!(summary["records"], rows.len(), "{summary}");
    assert_eq!(summary["command_lines"], 0, "{summary}");
    // Nowhere in the files: no command's text.
    let files = files_under(&out);
    assert!(files.iter().all(|file| file.starts_with("ext/sessionlake")), "{files:?}");
    for file in &files {
        let bytes = std::fs::read(out.join(file)).expect("read");
        for command in &commands {
            let found = bytes.windows(command.len()).any(|window| window == command.as_bytes());
            assert!(!found, "{file:?} holds the command {command:?}");
        }
    }

    // With the text, said on stderr.
    let with_text = dir.path().join("ocsf-text");
    let written = sessionlake(&[
        "ocsf",
        "--since",
        "2026-01-01",
        "--out",
        "ocsf-text",
        "--include-command-text",
    ]);
    written.assert_stderr_holds(0, &["--include-command-text"]);
    let (summary, passed) = validate(&with_text);
    assert!(passed, "{summary}");
    assert_eq!(summary["command_lines"], rows.len(), "{summary}");

    // The validator fails on an event without a required attribute.
    let broken =
        dir.path().join("broken/ext/sessionlake/region=us-east-1/accountId=1/eventDay=20260314");
    std::fs::create_dir_all(&broken).expect("folder");
    let python = std::env::var("SESSIONLAKE_TEST_PYTHON").expect("python");
    let first = out.join(&files[0]);
    let script = "import pyarrow.parquet as pq, sys\n\
                  rows = pq.read_table(sys.argv[1]).to_pylist()[:1]\n\
                  del rows[0]['device']\n\
                  import pyarrow\n\
                  pq.write_table(pyarrow.Table.from_pylist(rows), sys.argv[2])\n";
    let ran = run(std::process::Command::new(python)
        .args(["-c", script])
        .arg(&first)
        .arg(broken.join("x.parquet")));
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    let (summary, passed) = validate(&dir.path().join("broken"));
    assert!(!passed, "{summary}");
    assert!(summary["errors"].to_string().contains("device: required"), "{summary}");

    // A range is required.
    let refused = sessionlake(&["ocsf", "--out", "ocsf"]);
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(refused.stderr.contains("--since"), "{}", refused.stderr);
}
