//! The benchmark at its small scale, so that it cannot rot: the generator writes every form,
//! the real ingest takes it, and every tool gives the same answer. No timing is asserted
//! (speed is in BENCHMARKS.md, measured with `sessionlake-bench run` on a release build).

use std::path::PathBuf;

use serde_json::Value;
use sessionlake_tests::{repo_root, run};

#[test]
fn test_bench_small_scale_tools_agree() {
    let scratch = tempfile::tempdir().expect("temp dir");
    let workload = scratch.path().join("workload");
    let work = scratch.path().join("work");
    let bench = assert_cmd::cargo::cargo_bin("sessionlake-bench");
    let bin_dir: PathBuf = assert_cmd::cargo::cargo_bin("sessionlake")
        .parent()
        .expect("binaries folder")
        .to_path_buf();
    let python = std::env::var("SESSIONLAKE_TEST_PYTHON")
        .expect("SESSIONLAKE_TEST_PYTHON is not set: run the tests with ./scripts/test");

    let generated = run(std::process::Command::new(&bench)
        .current_dir(repo_root())
        .args(["generate", "--scale", "small", "--seed", "8", "--out"])
        .arg(&workload));
    assert_eq!(generated.code, 0, "{}", generated.stderr);
    let summary: Value = serde_json::from_slice(
        &std::fs::read(workload.join("workload.json")).expect("workload.json"),
    )
    .expect("workload.json is JSON");
    let forms = &summary["sessions_by_form"];
    for form in ["s3", "cloudwatch-upload", "cloudwatch-stream"] {
        assert!(forms[form].as_u64().unwrap_or(0) > 0, "no {form} session: {forms}");
    }
    let needles = summary["needles"].as_u64().expect("needles");
    assert!(needles > 0, "the small scale has needles");

    // The same seed writes the same bytes.
    let again = scratch.path().join("again");
    let regenerated = run(std::process::Command::new(&bench)
        .current_dir(repo_root())
        .args(["generate", "--scale", "small", "--seed", "8", "--out"])
        .arg(&again));
    assert_eq!(regenerated.code, 0, "{}", regenerated.stderr);
    let first = std::fs::read(workload.join("workload.json")).expect("first summary");
    let second = std::fs::read(again.join("workload.json")).expect("second summary");
    assert!(first == second, "the same seed gave another workload");

    let ran = run(std::process::Command::new(&bench)
        .current_dir(repo_root())
        .args(["run", "--runs", "1", "--python", &python, "--workload"])
        .arg(&workload)
        .arg("--work")
        .arg(&work)
        .arg("--bin-dir")
        .arg(&bin_dir));
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert!(
        ran.stdout.contains("## Ingest") && ran.stdout.contains("## Queries"),
        "{}",
        ran.stdout
    );
    let report: Value =
        serde_json::from_slice(&std::fs::read(work.join("report.json")).expect("report.json"))
            .expect("report.json is JSON");
    assert!(report["lake_rows"].as_u64().unwrap_or(0) > 0, "{report}");
    assert!(report["lake_bytes"].as_u64().unwrap_or(0) > 0, "{report}");
    let figures = report["figures"].as_array().expect("figures");
    let rows = |name: &str, tool: &str| -> Vec<u64> {
        figures
            .iter()
            .filter(|figure| figure["name"] == name && figure["tool"] == tool)
            .map(|figure| figure["rows"].as_u64().expect("rows"))
            .collect()
    };
    let who = "who ran X (regex on commands)";
    for tool in ["sessionlake", "duckdb (engine time)", "grep", "rg"] {
        assert_eq!(rows(who, tool), vec![needles, needles], "{tool}: {who}");
    }
    // sessionlake on the encrypted lake and DuckDB on the plaintext copy give the same rows.
    for name in
        ["principal + time range", "session-id lookup", "every command (a query matching millions)"]
    {
        let ours = rows(name, "sessionlake");
        assert!(ours.iter().all(|count| *count > 0), "{name}: {ours:?}");
        assert_eq!(ours, rows(name, "duckdb (engine time)"), "{name}");
    }
    assert_eq!(
        rows("every command (a query matching millions)", "sessionlake")[0],
        report["lake_rows"].as_u64().expect("lake rows"),
    );
}
