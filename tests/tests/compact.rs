//! `sessionlake compact` end to end: every answer is the same before and after (search,
//! sessions, show, show --raw, export, sql), verify stays intact, fewer files, DuckDB still reads
//! the plaintext columns, a re-run changes nothing; expiry, holds, shred and a replaced version
//! of a compacted session; a compaction killed anywhere leaves the lake consistent; a session
//! delivered twice is still read from one delivery; late CloudTrail facts replace compacted
//! sessions once; compacted files' KMS keys are re-wrapped by `rekey`.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use sessionlake_tests::{
    BUILT_ALLOCATOR, Background, binary, duckdb, files_under, repo_root, reported_allocator, run,
};

use super::{cli, ingested_examples, ingested_examples_and};

/// Runs `sessionlake compact --min-age 0s --json` and returns its summary.
fn compact(dir: &Path) -> Value {
    let ran = cli(dir, &["compact", "--min-age", "0s", "--json"]);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    let record: Value = serde_json::from_str(ran.stdout.trim()).expect("one JSON line");
    assert_eq!(record["type"], "summary", "{}", ran.stdout);
    record["data"].clone()
}

fn files_in(dir: &Path, table: &str) -> usize {
    files_under(&dir.join("lake").join(table)).len()
}

fn assert_intact(dir: &Path) {
    let verified = cli(dir, &["verify", "--json"]);
    assert_eq!(verified.code, 0, "{}\n{}", verified.stdout, verified.stderr);
}

/// Sessions in the lake, from `sessions --json`.
fn session_ids(dir: &Path) -> Vec<String> {
    let ran = cli(dir, &["sessions", "--json"]);
    let mut ids: Vec<String> = ran
        .stdout
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|record| record["type"] == "match")
        .filter(|record| record["data"]["transcript"] == true)
        .filter_map(|record| record["data"]["session_id"].as_str().map(str::to_string))
        .collect();
    ids.sort();
    ids.dedup();
    ids
}

/// Runs `sessionlake <args>` and returns its exit code and stdout as one text.
fn answer(dir: &Path, args: &[&str]) -> String {
    let ran = cli(dir, args);
    format!("exit {}\n{}", ran.code, ran.stdout)
}

/// Everything a reader answers about the lake, as text to compare.
fn answers(dir: &Path) -> Vec<(String, String)> {
    let mut found = vec![
        ("search".to_string(), answer(dir, &["search", "--json"])),
        ("search --limit".to_string(), answer(dir, &["search", "--json", "--limit", "7"])),
        ("sessions".to_string(), answer(dir, &["sessions", "--json"])),
        (
            "sql".to_string(),
            answer(
                dir,
                &[
                    "sql",
                    "SELECT session_id, seq, command, output FROM commands \
                 ORDER BY session_id, seq, command",
                    "--format",
                    "csv",
                ],
            ),
        ),
    ];
    for session in session_ids(dir) {
        let id = session.as_str();
        found.push((format!("show {id}"), answer(dir, &["show", id, "--json"])));
        found.push((
            format!("search --session {id}"),
            answer(dir, &["search", "--session", id, "--json"]),
        ));
        let raw = cli(dir, &["show", id, "--raw"]);
        found.push((format!("show --raw {id}"), format!("{} {}", raw.code, raw.stdout.len())));
        let out = dir.join(format!("export-{}-{id}", found.len()));
        let exported = cli(dir, &["export", id, "--out", out.to_str().expect("utf-8")]);
        assert_eq!(exported.code, 0, "export {id}: {}", exported.stderr);
        for name in ["commands.jsonl", "transcript.log", "session.json"] {
            let text = std::fs::read_to_string(out.join(name)).unwrap_or_default();
            found.push((format!("export {id} {name}"), text));
        }
        // The bundle checks with standard tools: every file it lists hashes as listed.
        let sums = run(std::process::Command::new("sha256sum").current_dir(&out).args([
            "--quiet",
            "-c",
            "SHA256SUMS",
        ]));
        assert_eq!(sums.code, 0, "export {id}: {}{}", sums.stdout, sums.stderr);
        std::fs::remove_dir_all(&out).expect("remove bundle");
    }
    found
}

fn assert_same_answers(before: &[(String, String)], after: &[(String, String)]) {
    assert_eq!(before.len(), after.len());
    for ((name, was), (_, is)) in before.iter().zip(after) {
        assert_eq!(was, is, "{name} changed");
    }
}

#[test]
fn test_compacting_the_examples_changes_no_answer() {
    let (dir, _) = ingested_examples();
    let before = answers(dir.path());
    let commands_before = files_in(dir.path(), "commands");

    let summary = compact(dir.path());
    assert!(summary["files_after"].as_u64() < summary["files_before"].as_u64(), "{summary}");
    assert!(files_in(dir.path(), "commands") < commands_before);
    // Readers start from a checkpoint of the compacted lake: the compaction commit (which
    // names every file it replaced) is not replayed again.
    let sequence = summary["sequence"].as_u64().expect("sequence");
    let checkpoint = format!("checkpoint/{sequence:020}.json");
    assert_eq!(summary["checkpoint"], Value::from(checkpoint.clone()), "{summary}");
    assert!(dir.path().join("lake").join(&checkpoint).exists());
    assert_same_answers(&before, &answers(dir.path()));
    assert_intact(dir.path());

    // DuckDB reads the plaintext columns of a compacted file, sorted by session.
    let rows = duckdb(
        dir.path(),
        "SELECT count(*), count(DISTINCT session_id), \
         bool_and(session_id >= prev) FROM (SELECT session_id, \
         lag(session_id, 1, '') OVER () AS prev FROM \
         read_parquet('lake/commands/**/compact-*.parquet'))",
    );
    assert_eq!(rows[0][1], 3, "{rows:?}");
    assert_eq!(rows[0][2], true, "{rows:?}");

    // A second run has nothing to do.
    let manifests = files_in(dir.path(), "manifest");
    let again = compact(dir.path());
    assert_eq!(again["files_before"], 0, "{again}");
    assert_eq!(files_in(dir.path(), "manifest"), manifests);
}

#[test]
fn test_sessionlake_runs_on_jemalloc_with_the_settings_it_was_built_with() {
    // `compact` at 10 M commands stays under 512 MiB on jemalloc with one arena that gives
    // freed pages back within a second (BENCHMARKS.md): the binary runs on it for every
    // command, built with those settings, which the environment still overrides.
    let (dir, _) = ingested_examples();
    let allocator = |args: &[&str], conf: Option<&str>| {
        let mut command = binary("sessionlake", false);
        command.current_dir(dir.path()).args(args).env("SESSIONLAKE_LOG", "sessionlake=debug");
        command.env_remove("_RJEM_MALLOC_CONF");
        if let Some(conf) = conf {
            command.env("_RJEM_MALLOC_CONF", conf);
        }
        let ran = run(&mut command);
        assert!(ran.code <= 1, "{}", ran.stderr);
        reported_allocator(&ran.stderr)
    };
    assert_eq!(allocator(&["search", "rm"], None), BUILT_ALLOCATOR);
    assert_eq!(allocator(&["compact", "--min-age", "0s"], None), BUILT_ALLOCATOR);
    assert_eq!(
        allocator(&["search", "rm"], Some("narenas:3")),
        BUILT_ALLOCATOR.replace("Ok(1) arenas", "Ok(3) arenas")
    );
}

#[test]
fn test_a_session_delivered_twice_is_read_from_one_delivery_after_compaction() {
    // Alice's session also reaches CloudWatch after her S3 copy was compacted: still one
    // delivery is searched, shown and exported, the same as in a lake never compacted.
    let add_alice = |examples: &Path| {
        std::fs::copy(
            repo_root().join("corpus/alice-0123456789abcdef0/cloudwatch-upload.json"),
            examples.join("cloudwatch/ssm-sessions/alice-0123456789abcdef0.json"),
        )
        .expect("copy");
    };
    let (twice, _) = ingested_examples_and(add_alice);
    let expected = answers(twice.path());
    // Compacting the lake that has both keeps every answer.
    compact(twice.path());
    assert_same_answers(&expected, &answers(twice.path()));
    assert_intact(twice.path());

    let (dir, _) = ingested_examples();
    compact(dir.path());
    add_alice(&dir.path().join("examples"));
    let late = run(binary("sessionlake-ingest", false).current_dir(dir.path()));
    assert_eq!(late.code, 0, "{}", late.stderr);
    assert!(late.stdout.contains("ingested 1 sessions"), "{}", late.stdout);
    let after = answers(dir.path());
    for ((name, was), (_, is)) in expected.iter().zip(&after) {
        // `sql` reads every delivery, and a session row names its version's objects, whose
        // names differ from lake to lake.
        if name != "sql" && !name.ends_with("session.json") {
            assert_eq!(was, is, "{name} differs");
        }
    }
    assert_intact(dir.path());
}

/// Writes `sessions` S3 transcripts of a few commands over a few days into `dir/examples`.
fn many_sessions(dir: &Path, sessions: usize) {
    let ran = run(std::process::Command::new("python3")
        .arg(repo_root().join("scripts/gen-many-sessions.py"))
        .arg(dir)
        .arg(sessions.to_string()));
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    let ingest = run(binary("sessionlake-ingest", false).current_dir(dir));
    assert_eq!(ingest.code, 0, "{}", ingest.stderr);
}

fn search_rows(dir: &Path, args: &[&str]) -> Vec<String> {
    let ran = cli(dir, &[&["search", "--json"], args].concat());
    ran.stdout
        .lines()
        .filter(|line| line.contains(r#""type":"match""#))
        .map(str::to_string)
        .collect()
}

#[test]
fn test_compacted_sessions_are_shredded_expired_held_and_replaced_alone() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Two sessions a day for 28 days.
    many_sessions(dir.path(), 56);
    let all = search_rows(dir.path(), &[]);
    let summary = compact(dir.path());
    assert_eq!(summary["sessions"], 56, "{summary}");
    assert_eq!(files_in(dir.path(), "commands"), 28);
    assert_eq!(search_rows(dir.path(), &[]), all);

    // Shred: its rows leave the compacted file, nobody else's do.
    let victim = "bob-00000000000000001";
    let shred = cli(dir.path(), &["shred", victim, "--reason", "erasure request", "--yes"]);
    assert_eq!(shred.code, 0, "{}", shred.stderr);
    assert!(search_rows(dir.path(), &["--session", victim]).is_empty());
    let others: Vec<String> = all.iter().filter(|row| !row.contains(victim)).cloned().collect();
    assert_eq!(search_rows(dir.path(), &[]), others);
    assert_intact(dir.path());
    for file in files_under(&dir.path().join("lake")) {
        let bytes = std::fs::read(dir.path().join("lake").join(&file)).expect("read");
        let named = bytes.windows(victim.len()).any(|window| window == victim.as_bytes());
        // The chain records the shred (and a checkpoint, the live set at a commit of it, the
        // session's objects before it); the cursors name the source file read.
        let record = file.starts_with("manifest")
            || file.starts_with("checkpoint")
            || file.starts_with("state");
        assert!(!named || record, "{victim} still in {}", file.display());
    }

    // A new version of a compacted session replaces it: its rows are there once.
    let alice = "alice-00000000000000000";
    let log = dir.path().join(format!("examples/s3/ssm-logs/{alice}.log"));
    let transcript = std::fs::read(&log).expect("read");
    let prompt = b"\x1b[?2004h[ssm-user@ip-10-0-0-12 ~]$ ";
    let end =
        transcript.windows(prompt.len()).rposition(|window| window == prompt).expect("prompt");
    let mut grown = transcript[..end].to_vec();
    grown.extend_from_slice(prompt);
    grown.extend_from_slice(b"echo second-version\r\r\n\x1b[?2004l\rsecond-version\r\r\n");
    grown.extend_from_slice(&transcript[end..]);
    std::fs::write(&log, grown).expect("write");
    let ingest = run(binary("sessionlake-ingest", false).current_dir(dir.path()));
    assert_eq!(ingest.code, 0, "{}", ingest.stderr);
    assert!(ingest.stdout.contains("1 replaced"), "{}", ingest.stdout);
    let rows = search_rows(dir.path(), &["--session", alice]);
    let before = all.iter().filter(|row| row.contains(alice)).count();
    assert_eq!(rows.len(), before + 1, "{rows:#?}");
    let counted = cli(
        dir.path(),
        &[
            "sql",
            &format!(
                "SELECT count(*) - count(DISTINCT seq) FROM commands WHERE session_id = '{alice}'"
            ),
            "--format",
            "csv",
        ],
    );
    assert!(counted.stdout.ends_with("\n0\n"), "duplicate rows: {}", counted.stdout);
    assert_intact(dir.path());

    // Everything expires but a held session: the held rows stay, in a rewritten file.
    let held = "carol-00000000000000002";
    let hold = cli(dir.path(), &["hold", "add", held, "--reason", "case 2026-17"]);
    assert_eq!(hold.code, 0, "{}", hold.stderr);
    let policy = dir.path().join("policy.toml");
    std::fs::write(&policy, "version = 1\n\n[default]\ncommands = \"1d\"\nraw = \"1d\"\n")
        .expect("policy");
    let held_rows = search_rows(dir.path(), &["--session", held]);
    let applied = cli(
        dir.path(),
        &[
            "retention",
            "apply",
            "--policy",
            policy.to_str().expect("utf-8"),
            "--as-of",
            "2030-01-01",
            "--yes",
        ],
    );
    assert_eq!(applied.code, 0, "{}", applied.stderr);
    assert_eq!(search_rows(dir.path(), &[]), held_rows);
    assert_eq!(session_ids(dir.path()), [held]);
    assert_intact(dir.path());
    let compacted: Vec<String> = files_under(&dir.path().join("lake/commands"))
        .iter()
        .map(|file| file.display().to_string())
        .collect();
    assert_eq!(compacted.len(), 1, "{compacted:?}");
}

#[test]
fn test_a_compaction_killed_anywhere_leaves_the_lake_consistent() {
    let dir = tempfile::tempdir().expect("tempdir");
    many_sessions(dir.path(), 60);
    let all = search_rows(dir.path(), &[]);
    let mut killed = 0;
    for delay in [30, 150, 300, 500, 800] {
        let mut running =
            Background::spawn(binary("sessionlake", false).current_dir(dir.path()).args([
                "compact",
                "--min-age",
                "0s",
                "--json",
            ]));
        std::thread::sleep(Duration::from_millis(delay));
        if running.stdout().is_empty() {
            let _ = run(std::process::Command::new("kill").args([
                "-s",
                "KILL",
                &running.pid().to_string(),
            ]));
            killed += 1;
        }
        running.wait(Duration::from_secs(60));
        // Whatever was or was not committed, every reader sees each row once.
        assert_eq!(search_rows(dir.path(), &[]), all, "killed after {delay} ms");
        let verified = cli(dir.path(), &["verify", "--json"]);
        for line in verified.stdout.lines().filter(|line| line.contains(r#""finding""#)) {
            // Only what the kill left: files written and never committed, or removed and not
            // yet deleted, and a Delta log killed before it followed the commit (derived from
            // the chain: the next commit rewrites it, checked below).
            assert!(
                line.contains("uncommitted-object")
                    || line.contains("not-deleted")
                    || line.contains("delta-log-differs"),
                "killed after {delay} ms: {line}"
            );
        }
        if !files_under(&dir.path().join("lake/commands"))
            .iter()
            .any(|file| !file.display().to_string().contains("compact-"))
        {
            break;
        }
    }
    assert!(killed > 0, "no run was killed: the lake compacts too fast for this test");
    // The next run finishes the work and cleans up after the killed ones.
    compact(dir.path());
    assert_intact(dir.path());
    assert_eq!(search_rows(dir.path(), &[]), all);
}

#[test]
fn test_late_cloudtrail_facts_replace_compacted_sessions_once() {
    // Transcripts first, compacted; CloudTrail's StartSession events later: each session is
    // re-indexed with them and leaves the compacted files in the same commit.
    let (direct, _) = ingested_examples();
    let expected = cli(direct.path(), &["search", "--json"]);
    let (dir, _) = ingested_examples_and(|examples| {
        std::fs::rename(examples.join("cloudtrail"), examples.join("../cloudtrail-later"))
            .expect("move cloudtrail");
    });
    assert!(compact(dir.path())["sessions"].as_u64() > Some(1));
    std::fs::rename(dir.path().join("cloudtrail-later"), dir.path().join("examples/cloudtrail"))
        .expect("move cloudtrail back");
    let late = run(binary("sessionlake-ingest", false).current_dir(dir.path()));
    assert_eq!(late.code, 0, "{}", late.stderr);
    assert!(late.stdout.contains("replaced"), "{}", late.stdout);
    assert_eq!(cli(dir.path(), &["search", "--json"]).stdout, expected.stdout);
    let counted = cli(
        dir.path(),
        &[
            "sql",
            "SELECT count(*) - count(DISTINCT session_id || '/' || CAST(seq AS VARCHAR)) FROM commands",
            "--format",
            "csv",
        ],
    );
    assert!(counted.stdout.ends_with("\n0\n"), "duplicate rows: {}", counted.stdout);
    assert_intact(dir.path());
}

#[tokio::test]
async fn test_compacted_files_take_kms_keys_and_rekey_rewraps_them() {
    const CANARY: &str = "cat /srv/COMPACT-CANARY-3d9f";
    let dir = tempfile::tempdir().expect("tempdir");
    let source = dir.path().join("in");
    std::fs::create_dir_all(&source).expect("mkdir");
    for session in ["kms-0a1b2c3d4e5f60718", "kms-0a1b2c3d4e5f60719"] {
        let prompt = "\x1b[?2004h\x1b]0;ubuntu@ip-10-0-0-12: ~\x07\x1b[01;32mubuntu@ip-10-0-0-12\x1b[00m:\x1b[01;34m~\x1b[00m$ ";
        let transcript = format!(
            "Script started on 2026-03-16 14:10:00+00:00 [TERM=\"xterm-256color\"]\n\
             {prompt}{CANARY}\r\r\n\x1b[?2004l\rok\r\r\n\
             {prompt}exit\r\r\n\x1b[?2004l\rexit\r\r\n\n\
             Script done on 2026-03-16 14:10:50+00:00 [COMMAND_EXIT_CODE=\"0\"]\n"
        );
        std::fs::write(source.join(format!("{session}.log")), transcript).expect("write");
    }
    let kms = aws_sdk_kms::Client::new(&sessionlake_tests::sdk_config().await);
    let mut keys = Vec::new();
    for _ in 0..2 {
        let created = kms.create_key().send().await.expect("create key");
        let metadata = created.key_metadata().expect("metadata");
        keys.push(metadata.arn().expect("arn").to_string());
    }
    let lake = ["--lake", "lake", "--keyring", "keyring.json"];
    let ingest = run(binary("sessionlake-ingest", false)
        .current_dir(dir.path())
        .args(lake)
        .arg("--local")
        .arg(&source));
    assert_eq!(ingest.code, 0, "{}", ingest.stderr);
    let sessionlake = |args: &[&str]| {
        run(binary("sessionlake", true).current_dir(dir.path()).args(lake).args(args))
    };
    let compacted = sessionlake(&["compact", "--min-age", "0s", "--kms-key-id", &keys[0]]);
    assert_eq!(compacted.code, 0, "{}", compacted.stderr);
    let rekeyed = sessionlake(&["rekey", "--to-kms", &keys[1], "--json"]);
    assert_eq!(rekeyed.code, 0, "{}", rekeyed.stderr);
    let summary: Value = serde_json::from_str(rekeyed.stdout.trim()).expect("json");
    // Two session key records and the compacted commands file's key.
    assert_eq!(summary["data"]["rewrapped"], 3, "{summary}");
    // Without the keyring, the second KMS key alone opens the compacted rows.
    std::fs::rename(dir.path().join("keyring.json"), dir.path().join("away.json")).expect("mv");
    let found = run(binary("sessionlake", true)
        .current_dir(dir.path())
        .args(["--lake", "lake", "--keyring", "away-nothing.json"])
        .args(["search", "--command-contains", "COMPACT-CANARY", "--json"]));
    assert_eq!(found.code, 0, "{}", found.stderr);
    assert_eq!(found.stdout.matches(CANARY).count(), 2, "{}", found.stdout);
}

#[tokio::test(flavor = "multi_thread")]
async fn test_compaction_of_an_s3_lake() {
    let s3 = sessionlake_tests::s3_client().await;
    let [bucket] = sessionlake_tests::new_buckets(&s3, ["compact-lake"]).await;
    let work = tempfile::tempdir().expect("tempdir");
    let keyring = work.path().join("keyring.json");
    let lake = format!("s3://{bucket}/lake");
    let lake_args = ["--lake", &lake, "--keyring", &keyring.to_string_lossy()];
    let ingest = run(binary("sessionlake-ingest", true)
        .current_dir(work.path())
        .args(lake_args)
        .arg("--local")
        .arg(repo_root().join("examples")));
    assert_eq!(ingest.code, 0, "{}", ingest.stderr);
    let sessionlake = |args: &[&str]| {
        run(binary("sessionlake", true).current_dir(work.path()).args(lake_args).args(args))
    };
    let commands_files = || async {
        let listed = s3
            .list_objects_v2()
            .bucket(&bucket)
            .prefix("lake/commands/")
            .send()
            .await
            .expect("list");
        listed.contents().len()
    };
    let before = sessionlake(&["search", "--json"]);
    let files_before = commands_files().await;
    let compacted = sessionlake(&["compact", "--min-age", "0s", "--json"]);
    assert_eq!(compacted.code, 0, "{}", compacted.stderr);
    assert!(compacted.stdout.contains(r#""sessions":3"#), "{}", compacted.stdout);
    assert!(commands_files().await < files_before);
    assert_eq!(sessionlake(&["search", "--json"]).stdout, before.stdout);
    let verified = sessionlake(&["verify"]);
    assert_eq!(verified.code, 0, "{}{}", verified.stdout, verified.stderr);
    let again = sessionlake(&["compact", "--min-age", "0s", "--json"]);
    assert!(again.stdout.contains(r#""files_before":0"#), "{}", again.stdout);

    // A checkpoint of the S3 lake: readers, verify --since-checkpoint and ingest start from it
    // (S3 lists the manifests after it with start-after) and see the same lake.
    let checkpoint = sessionlake(&["checkpoint"]);
    assert_eq!(checkpoint.code, 0, "{}", checkpoint.stderr);
    assert_eq!(sessionlake(&["search", "--json"]).stdout, before.stdout);
    let resumed = sessionlake(&["verify", "--since-checkpoint"]);
    assert_eq!(resumed.code, 0, "{}{}", resumed.stdout, resumed.stderr);
    let ingest = run(binary("sessionlake-ingest", true)
        .current_dir(work.path())
        .args(lake_args)
        .args(["--log", "info", "--local"])
        .arg(repo_root().join("examples")));
    assert_eq!(ingest.code, 0, "{}", ingest.stderr);
    assert!(ingest.stderr.contains("opened from checkpoint"), "{}", ingest.stderr);
    assert_eq!(sessionlake(&["search", "--json"]).stdout, before.stdout);
    let verified = sessionlake(&["verify"]);
    assert_eq!(verified.code, 0, "{}{}", verified.stdout, verified.stderr);
}
