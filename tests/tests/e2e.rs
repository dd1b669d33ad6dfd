//! End-to-end: the real binaries on the shipped examples, locally and against moto's S3,
//! CloudWatch Logs and KMS, with DuckDB reading the lake.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

mod access;
mod bench;
mod compact;
mod custody;
mod ddl;
mod export;
mod files;
mod interop;
mod keys;
mod lambda;
mod ocsf;
mod query;
mod retention;
mod trusted;
mod viewer;

use serde_json::Value;
use sessionlake_tests::{
    binary, copy_tree, duckdb, files_under, repo_root, run, s3_client, sdk_config, unique,
};

/// The one `rm -rf` in the examples, as every search must report it.
const RM_RF_ROW: [(&str, &str); 6] = [
    ("session_id", "alice-0123456789abcdef0"),
    ("principal", "arn:aws:sts::111122223333:assumed-role/Admin/alice"),
    ("run_as", "ssm-user"),
    ("target", "i-0a1b2c3d4e5f67890"),
    ("command", "rm -rf /tmp/alice-scratch"),
    ("time", "2026-03-14 09:26:50Z"),
];

/// Sessions shipped in examples/: S3 transcripts plus CloudWatch streams.
fn example_sessions() -> usize {
    let examples = repo_root().join("examples");
    files_under(&examples)
        .iter()
        .filter(|path| {
            let name = path.to_string_lossy();
            name.ends_with(".log") || (name.starts_with("cloudwatch/") && name.ends_with(".json"))
        })
        .count()
}

/// Parses `--json` output into match rows and the summary.
fn parse_json_lines(stdout: &str) -> (Vec<BTreeMap<String, Value>>, Value) {
    let mut rows = Vec::new();
    let mut summary = Value::Null;
    for line in stdout.lines() {
        let record: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{line:?}: {e}"));
        match record["type"].as_str() {
            Some("match") => rows.push(
                record["data"]
                    .as_object()
                    .expect("data")
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            ),
            Some("summary") => summary = record["data"].clone(),
            other => panic!("unexpected record type {other:?} in {line}"),
        }
    }
    (rows, summary)
}

/// Runs `sessionlake <args>` (local, no AWS) in `dir`.
fn cli(dir: &Path, args: &[&str]) -> sessionlake_tests::Ran {
    run(binary("sessionlake", false).current_dir(dir).args(args))
}

/// Runs `sessionlake <args>` (local, no AWS) in `dir`; returns the exit code and the parsed
/// `--json` output.
fn cli_json(dir: &Path, args: &[&str]) -> (i32, Vec<BTreeMap<String, Value>>, Value) {
    let ran = cli(dir, args);
    let (rows, summary) = parse_json_lines(&ran.stdout);
    (ran.code, rows, summary)
}

fn assert_rm_rf_rows(rows: &[BTreeMap<String, Value>]) {
    assert_eq!(rows.len(), 1, "{rows:#?}");
    for (field, expected) in RM_RF_ROW {
        assert_eq!(rows[0][field], Value::from(expected), "field {field} of {:#?}", rows[0]);
    }
}

/// Returns a temporary folder holding a copy of examples/ and the lake the embedded default
/// ingested from it, and what the ingest printed.
fn ingested_examples() -> (tempfile::TempDir, sessionlake_tests::Ran) {
    ingested_examples_and(|_| {})
}

/// The examples with alice's S3 session also uploaded to CloudWatch, as SSM does when both are
/// configured, ingested into a fresh lake.
fn ingested_examples_with_alice_delivered_twice() -> tempfile::TempDir {
    ingested_examples_and(|examples| {
        std::fs::copy(
            repo_root().join("corpus/alice-0123456789abcdef0/cloudwatch-upload.json"),
            examples.join("cloudwatch/ssm-sessions/alice-0123456789abcdef0.json"),
        )
        .expect("copy");
    })
    .0
}

/// Copies the examples into a fresh folder, lets `change` alter them, and ingests them.
fn ingested_examples_and(
    change: impl FnOnce(&Path),
) -> (tempfile::TempDir, sessionlake_tests::Ran) {
    let dir = tempfile::tempdir().expect("tempdir");
    let examples = dir.path().join("examples");
    copy_tree(&repo_root().join("examples"), &examples);
    change(&examples);
    let ingest = run(binary("sessionlake-ingest", false).current_dir(dir.path()));
    assert_eq!(ingest.code, 0, "{}", ingest.stderr);
    (dir, ingest)
}

#[test]
fn test_embedded_default_ingests_examples_and_finds_rm_rf() {
    let (dir, ingest) = ingested_examples();
    let expected = format!("ingested {} sessions", example_sessions());
    assert!(ingest.stdout.contains(&expected), "{}", ingest.stdout);
    assert!(ingest.stdout.contains("created keyring"), "{}", ingest.stdout);
    let mode = std::fs::metadata(dir.path().join(".sessionlake/keyring.json"))
        .expect("keyring")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    let search = cli(dir.path(), &["search", "--command", "rm -rf", "--json"]);
    assert_eq!(search.code, 0, "{}", search.stderr);
    let (rows, summary) = parse_json_lines(&search.stdout);
    assert_rm_rf_rows(&rows);
    assert_eq!(summary["matched"], Value::from(1));

    // Table output names the same row.
    let table = cli(dir.path(), &["search", "--command", "rm -rf"]);
    table.assert_stdout_holds(0, &["alice-0123456789abcdef0", "rm -rf /tmp/alice-scratch"]);

    // Filters combine; a filter that excludes the row finds nothing and exits 1.
    let narrowed = cli(
        dir.path(),
        &[
            "search",
            "--command",
            "rm -rf",
            "--principal",
            "alice",
            "--target",
            "i-0a1b2c3d4e5f67890",
            "--since",
            "2026-03-14",
            "--until",
            "2026-03-15",
            "--json",
        ],
    );
    assert_eq!(narrowed.code, 0, "{}", narrowed.stderr);
    assert_rm_rf_rows(&parse_json_lines(&narrowed.stdout).0);
    for excluding in [
        ["--principal", "bob"],
        ["--target", "i-0fedcba9876543210"],
        ["--since", "2026-03-16"],
        ["--until", "2026-03-13"],
    ] {
        let none = run(binary("sessionlake", false)
            .current_dir(dir.path())
            .args(["search", "--command", "rm -rf", "--json"])
            .args(excluding));
        assert_eq!(none.code, 1, "{excluding:?}: {}{}", none.stdout, none.stderr);
        assert_eq!(parse_json_lines(&none.stdout).1["matched"], Value::from(0), "{excluding:?}");
    }

    // `sessions` lists every session once, with the same filters.
    let sessions = cli(dir.path(), &["sessions", "--json"]);
    assert_eq!(sessions.code, 0, "{}", sessions.stderr);
    let (rows, _) = parse_json_lines(&sessions.stdout);
    assert_eq!(rows.len(), example_sessions());
    let (_, rows, _) =
        cli_json(dir.path(), &["sessions", "--session", "alice-0123456789abcdef0", "--json"]);
    assert_eq!(rows.len(), 1);
    let row = &rows[0];
    assert_eq!(row["principal"], Value::from("arn:aws:sts::111122223333:assumed-role/Admin/alice"));
    assert_eq!(row["target"], Value::from("i-0a1b2c3d4e5f67890"));
    assert_eq!(row["status"], Value::from("complete"));
    assert_eq!(row["started_at"], Value::from("2026-03-14 09:26:50Z"));
    assert!(row["command_count"].as_u64().is_some_and(|n| n >= 10), "{row:?}");
    let none = cli(dir.path(), &["sessions", "--since", "2026-04-01"]);
    assert_eq!(none.code, 1, "{}", none.stderr);

    // `show` prints the session's commands with output; `--raw` gives back the original bytes.
    let shown = cli(dir.path(), &["show", "alice-0123456789abcdef0", "--json"]);
    assert_eq!(shown.code, 0, "{}", shown.stderr);
    let (rows, _) = parse_json_lines(&shown.stdout);
    let commands: Vec<&str> =
        rows.iter().map(|row| row["command"].as_str().expect("command")).collect();
    assert_eq!(commands.first(), Some(&"ls"));
    assert!(commands.contains(&"rm -rf /tmp/alice-scratch"), "{commands:?}");
    assert_eq!(rows[0]["output_truncated"], Value::from(false));
    assert!(rows[0]["output"].as_str().is_some_and(|o| o.contains("deploy.sh")), "{:?}", rows[0]);
    let raw = binary("sessionlake", false)
        .current_dir(dir.path())
        .args(["show", "alice-0123456789abcdef0", "--raw"])
        .output()
        .expect("run show --raw");
    assert!(raw.status.success(), "{}", String::from_utf8_lossy(&raw.stderr));
    let original =
        std::fs::read(repo_root().join("examples/s3/ssm-logs/alice-0123456789abcdef0.log"))
            .expect("example");
    assert!(raw.stdout == original, "show --raw differs from the original transcript");

    // A second run finds nothing new: cursors hold, nothing is duplicated.
    let again = run(binary("sessionlake-ingest", false).current_dir(dir.path()));
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert!(again.stdout.contains("ingested 0 sessions"), "{}", again.stdout);
    let search = cli(dir.path(), &["search", "--command", "rm -rf", "--json"]);
    assert_rm_rf_rows(&parse_json_lines(&search.stdout).0);

    // A session whose source changed (a re-uploaded object, a stream that grew) is a new
    // version that replaces the old one: its commands are found once, not twice.
    let count_session = |dir: &Path| {
        let found = cli(dir, &["search", "--session", "alice-0123456789abcdef0", "--json"]);
        parse_json_lines(&found.stdout).1["matched"].as_u64().expect("matched")
    };
    let before = count_session(dir.path());
    assert!(before >= 10, "{before}");
    let transcript = dir.path().join("examples/s3/ssm-logs/alice-0123456789abcdef0.log");
    let mut bytes = std::fs::read(&transcript).expect("read");
    bytes.extend_from_slice(b"\n");
    std::fs::write(&transcript, bytes).expect("rewrite");
    let replaced = run(binary("sessionlake-ingest", false).current_dir(dir.path()));
    assert_eq!(replaced.code, 0, "{}", replaced.stderr);
    assert!(
        replaced.stdout.contains("ingested 1 sessions") && replaced.stdout.contains("1 replaced"),
        "{}",
        replaced.stdout
    );
    assert_eq!(count_session(dir.path()), before);

    // A bad regular expression is an error (exit 2), named.
    let bad = run(binary("sessionlake", false).current_dir(dir.path()).args([
        "search",
        "--command",
        "(unclosed",
    ]));
    assert_eq!(bad.code, 2);
    assert!(bad.stderr.contains("--command"), "{}", bad.stderr);
}

/// Puts `body` in `bucket` at `key` (moto's S3).
async fn put(s3: &aws_sdk_s3::Client, bucket: &str, key: &str, body: Vec<u8>) {
    s3.put_object()
        .bucket(bucket)
        .key(key)
        .body(body.into())
        .send()
        .await
        .unwrap_or_else(|e| panic!("put {key}: {e:?}"));
}

async fn put_file(s3: &aws_sdk_s3::Client, bucket: &str, key: &str, path: &Path) {
    put(s3, bucket, key, std::fs::read(path).expect("read example")).await;
}

/// A transcript whose sealed original is larger than one upload part: read from S3 twice at
/// its ETag (parse, then seal), uploaded to the S3 lake in parts; it verifies and opens to the
/// same bytes.
// See: issue 8 (ingest memory independent of one transcript's size).
#[tokio::test(flavor = "multi_thread")]
async fn test_a_transcript_larger_than_an_upload_part_streams_from_s3_into_an_s3_lake() {
    let s3 = s3_client().await;
    let [source_bucket, lake_bucket] =
        sessionlake_tests::new_buckets(&s3, ["big-logs", "big-lake"]).await;
    let session = "alice-0123456789abcdef0";
    let mut transcript = b"Script started on 2026-03-14 09:30:00+00:00\n".to_vec();
    let (mut state, mut commands) = (7u64, 0u64);
    // Hex output compresses about twice: 24 MiB seal to more than one 8 MiB part.
    while transcript.len() < 24 << 20 {
        let mut line = String::new();
        for _ in 0..8 {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            line.push_str(&format!("{:016x}", state >> 1));
        }
        transcript.extend_from_slice(format!("sh-5.2$ echo {commands}\r\r\n{line}\r\n").as_bytes());
        commands += 1;
    }
    transcript.extend_from_slice(b"\nScript done on 2026-03-14 10:30:00+00:00\n");
    s3.put_object()
        .bucket(&source_bucket)
        .key(format!("logs/{session}.log"))
        .body(transcript.clone().into())
        .send()
        .await
        .expect("put transcript");

    let work = tempfile::tempdir().expect("tempdir");
    let keyring = work.path().join("keyring.json");
    let lake = format!("s3://{lake_bucket}/lake");
    let lake_args = ["--lake", &lake, "--keyring", &keyring.to_string_lossy()];
    let ingest = run(binary("sessionlake-ingest", true)
        .current_dir(work.path())
        .args(lake_args)
        .args(["--s3", &format!("s3://{source_bucket}/logs/")]));
    assert_eq!(ingest.code, 0, "{}", ingest.stderr);
    let expected = format!("ingested 1 sessions, {commands} commands");
    assert!(ingest.stdout.contains(&expected), "{}", ingest.stdout);

    let listed =
        s3.list_objects_v2().bucket(&lake_bucket).prefix("lake/raw/").send().await.expect("list");
    let raw_size = listed.contents().iter().filter_map(|object| object.size()).max().unwrap_or(0);
    assert!(raw_size > 8 << 20, "the sealed original ({raw_size} bytes) fits one part");
    let verified =
        run(binary("sessionlake", true).current_dir(work.path()).args(lake_args).arg("verify"));
    assert_eq!(verified.code, 0, "{}{}", verified.stdout, verified.stderr);
    let raw = binary("sessionlake", true)
        .current_dir(work.path())
        .args(lake_args)
        .args(["show", session, "--raw"])
        .output()
        .expect("run show --raw");
    assert!(raw.status.success(), "{}", String::from_utf8_lossy(&raw.stderr));
    assert!(raw.stdout == transcript, "show --raw differs from the original transcript");
}

// The AWS path: the examples in moto's S3 and CloudWatch Logs, ingested into an S3 lake whose
// session keys KMS makes. Setting one up takes about a second, so each behaviour of that lake
// is a test of its own on a lake of its own.

/// The examples ingested along the AWS path, and what the checks of that lake share.
struct AwsLake {
    s3: aws_sdk_s3::Client,
    lake_bucket: String,
    /// `s3://<lake_bucket>/lake`.
    lake: String,
    /// The working folder of every command: the keyring, downloads, bundles, policies.
    work: tempfile::TempDir,
    keyring: PathBuf,
    /// What the ingest printed; its log, at `--log trace`, is on stderr.
    ingest: sessionlake_tests::Ran,
}

impl AwsLake {
    /// Puts the examples in moto (S3 transcripts under a free-form prefix, CloudTrail files in
    /// their usual layout, CloudWatch streams re-timed to the last hour), makes a KMS key, and
    /// ingests every source into a fresh S3 lake at `--log trace`: every example is ingested.
    async fn ingested() -> AwsLake {
        let config = sdk_config().await;
        let s3 = s3_client().await;
        let logs = aws_sdk_cloudwatchlogs::Client::new(&config);
        let kms = aws_sdk_kms::Client::new(&config);
        let examples = repo_root().join("examples");

        let [source_bucket, trail_bucket, lake_bucket] =
            sessionlake_tests::new_buckets(&s3, ["ssm-logs", "trail", "lake"]).await;
        // S3 transcripts under a free-form prefix; CloudTrail files in their usual layout.
        for file in files_under(&examples.join("s3")) {
            let name = file.file_name().expect("name").to_string_lossy().to_string();
            put_file(
                &s3,
                &source_bucket,
                &format!("team-a/111122223333/{name}"),
                &examples.join("s3").join(&file),
            )
            .await;
        }
        for file in files_under(&examples.join("cloudtrail")) {
            put_file(
                &s3,
                &trail_bucket,
                &file.to_string_lossy(),
                &examples.join("cloudtrail").join(&file),
            )
            .await;
        }
        // CloudWatch streams, events re-timed to the last hour (moto drops events older than
        // 14 days).
        let group = format!("/ssm/{}", unique("sessions"));
        logs.create_log_group().log_group_name(&group).send().await.expect("create log group");
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_millis() as i64;
        for file in files_under(&examples.join("cloudwatch")) {
            let stream = file.file_stem().expect("stem").to_string_lossy().to_string();
            let document: Value = serde_json::from_slice(
                &std::fs::read(examples.join("cloudwatch").join(&file)).expect("read"),
            )
            .expect("json");
            logs.create_log_stream()
                .log_group_name(&group)
                .log_stream_name(&stream)
                .send()
                .await
                .expect("create stream");
            let messages = sessionlake_tests::event_messages(&document);
            sessionlake_tests::put_events_at(
                &logs,
                &group,
                &stream,
                &messages,
                now_ms - 3_600_000,
                1,
            )
            .await;
        }
        let key_id = kms
            .create_key()
            .send()
            .await
            .expect("create key")
            .key_metadata()
            .expect("metadata")
            .key_id()
            .to_string();

        let work = tempfile::tempdir().expect("tempdir");
        let keyring = work.path().join("keyring.json");
        let lake = format!("s3://{lake_bucket}/lake");
        let ingest = run(binary("sessionlake-ingest", true).current_dir(work.path()).args([
            "--lake",
            &lake,
            "--keyring",
            &keyring.to_string_lossy(),
            "--kms-key-id",
            &key_id,
            "--s3",
            &format!("s3://{source_bucket}/team-a/"),
            "--cloudwatch",
            &group,
            "--cloudtrail",
            &format!("s3://{trail_bucket}/AWSLogs/"),
            // Every source at the finest level: no command text may reach the log (see
            // test_aws_path_the_trace_log_holds_no_command_text).
            "--log",
            "trace",
        ]));
        assert_eq!(ingest.code, 0, "{}", ingest.stderr);
        let expected = format!("ingested {} sessions", example_sessions());
        assert!(ingest.stdout.contains(&expected), "{}", ingest.stdout);
        AwsLake { s3, lake_bucket, lake, work, keyring, ingest }
    }

    /// Runs `sessionlake --lake <the S3 lake> --keyring <its keyring> <args>` on moto.
    fn cli(&self, args: &[&str]) -> sessionlake_tests::Ran {
        let keyring = self.keyring.to_string_lossy();
        let mut all = vec!["--lake", self.lake.as_str(), "--keyring", keyring.as_ref()];
        all.extend_from_slice(args);
        run(binary("sessionlake", true).current_dir(self.work.path()).args(&all))
    }

    /// Runs `sessionlake search --json <args>` on the S3 lake.
    fn search(&self, args: &[&str]) -> sessionlake_tests::Ran {
        let mut all = vec!["search", "--json"];
        all.extend_from_slice(args);
        self.cli(&all)
    }

    /// Every command a search with no filter finds (at least 30, as many as its summary
    /// says), and that count.
    fn every_command(&self) -> (Vec<BTreeMap<String, Value>>, u64) {
        let everything = self.search(&[]);
        assert_eq!(everything.code, 0, "{}", everything.stderr);
        let (all_rows, summary) = parse_json_lines(&everything.stdout);
        let total = summary["matched"].as_u64().expect("matched");
        assert_eq!(all_rows.len() as u64, total);
        assert!(total >= 30, "too few commands: {total}");
        (all_rows, total)
    }

    /// Downloads the whole lake into `lake-copy` of the working folder and returns that folder.
    async fn download(&self) -> PathBuf {
        let copy = self.work.path().join("lake-copy");
        let listed = self
            .s3
            .list_objects_v2()
            .bucket(&self.lake_bucket)
            .prefix("lake/")
            .send()
            .await
            .expect("list lake");
        for object in listed.contents() {
            let key = object.key().expect("key");
            let body = self
                .s3
                .get_object()
                .bucket(&self.lake_bucket)
                .key(key)
                .send()
                .await
                .expect("get")
                .body
                .collect()
                .await
                .expect("body")
                .into_bytes();
            let path = copy.join(key.strip_prefix("lake/").expect("prefix"));
            std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            std::fs::write(&path, &body).expect("write");
        }
        copy
    }
}

/// The entries the manifests of the downloaded lake at `copy` added, every commit's.
fn added_entries(copy: &Path) -> Vec<Value> {
    let manifests: Vec<Value> = files_under(&copy.join("manifest"))
        .iter()
        .map(|file| {
            serde_json::from_slice(&std::fs::read(copy.join("manifest").join(file)).expect("read"))
                .expect("json")
        })
        .collect();
    manifests
        .iter()
        .flat_map(|manifest| manifest["body"]["added"].as_array().expect("added"))
        .cloned()
        .collect()
}

/// A search by command finds the one `rm -rf` of the examples, with every field, among every
/// command of every source.
#[tokio::test(flavor = "multi_thread")]
async fn test_aws_path_search_finds_the_rm_rf_among_every_command() {
    let lake = AwsLake::ingested().await;
    let found = lake.search(&["--command", "rm -rf"]);
    assert_eq!(found.code, 0, "{}", found.stderr);
    assert_rm_rf_rows(&parse_json_lines(&found.stdout).0);
    lake.every_command();
}

/// Not a command of any session (S3, CloudWatch) is in the ingest's log at `--log trace`: the
/// AWS SDK's request and response bodies are never logged.
#[tokio::test(flavor = "multi_thread")]
async fn test_aws_path_the_trace_log_holds_no_command_text() {
    let lake = AwsLake::ingested().await;
    let (all_rows, _) = lake.every_command();
    let log = &lake.ingest.stderr;
    assert!(log.len() > 10_000, "trace logging wrote almost nothing");
    for row in &all_rows {
        let command = row["command"].as_str().expect("command");
        if command.len() >= 12 {
            assert!(!log.contains(command), "{command:?} in the trace log");
        }
    }
}

/// A search by principal finds bob's CloudWatch sessions and only them, each command with the
/// time of its CloudWatch event.
#[tokio::test(flavor = "multi_thread")]
async fn test_aws_path_cloudwatch_sessions_are_found_by_principal_with_event_times() {
    let lake = AwsLake::ingested().await;
    let bob = lake.search(&["--principal", "arn:aws:iam::111122223333:user/bob"]);
    let (bob_rows, _) = parse_json_lines(&bob.stdout);
    assert!(!bob_rows.is_empty());
    assert!(
        bob_rows
            .iter()
            .all(|row| { row["session_id"].as_str().is_some_and(|s| s.starts_with("bob-")) })
    );
    // Streamed CloudWatch sessions carry a time per command.
    assert!(bob_rows.iter().all(|row| row["time_kind"] == "cloudwatch-event"), "{bob_rows:#?}");
}

/// The S3 lake holds each session's sealed original, the tables, and two commits: the
/// CloudTrail files' access events first, then the sessions.
#[tokio::test(flavor = "multi_thread")]
async fn test_aws_path_the_lake_holds_every_original_and_two_commits() {
    let lake = AwsLake::ingested().await;
    let copy = lake.download().await;
    let stored = files_under(&copy);
    let count = |prefix: &str| stored.iter().filter(|p| p.starts_with(prefix)).count();
    assert_eq!(count("raw"), example_sessions(), "{stored:?}");
    assert!(
        count("commands") >= 1
            && count("sessions") >= 1
            && count("access") >= 1
            && count("manifest") == 2,
        "{stored:?}"
    );
}

/// No command text from the inputs appears in plaintext anywhere in the S3 lake.
#[tokio::test(flavor = "multi_thread")]
async fn test_aws_path_no_command_is_in_plaintext_anywhere_in_the_lake() {
    let lake = AwsLake::ingested().await;
    let (all_rows, _) = lake.every_command();
    let copy = lake.download().await;
    let lake_bytes: Vec<(String, Vec<u8>)> = files_under(&copy)
        .iter()
        .map(|p| (p.to_string_lossy().to_string(), std::fs::read(copy.join(p)).expect("read")))
        .collect();
    let mut checked = 0;
    for row in &all_rows {
        let command = row["command"].as_str().expect("command");
        if command.len() < 8 {
            continue;
        }
        checked += 1;
        for (path, bytes) in &lake_bytes {
            assert!(
                memchr_find(bytes, command.as_bytes()).is_none(),
                "{command:?} in plaintext in {path}"
            );
        }
    }
    assert!(checked >= 15, "only {checked} commands were long enough to check");
}

/// Each session's data keys are wrapped under the session's key, and each session key came
/// from KMS, bound to the lake, the session and the role.
#[tokio::test(flavor = "multi_thread")]
async fn test_aws_path_session_keys_come_from_kms_bound_to_lake_session_and_role() {
    let lake = AwsLake::ingested().await;
    let copy = lake.download().await;
    let added = added_entries(&copy);
    let keys: Vec<&Value> = added
        .iter()
        .filter(|entry| entry["kind"] == "commands")
        .filter_map(|entry| entry.get("key"))
        .collect();
    assert_eq!(keys.len(), example_sessions());
    assert!(keys.iter().all(|key| key["provider"] == "session"), "{keys:?}");
    let records: Vec<Value> = added
        .iter()
        .filter(|entry| entry["kind"] == "session-key")
        .filter(|entry| {
            entry["path"].as_str().is_some_and(|path| path.starts_with("keys/sessions/"))
        })
        .map(|entry| {
            let path = copy.join(entry["path"].as_str().expect("path"));
            serde_json::from_slice(&std::fs::read(path).expect("record")).expect("json")
        })
        .collect();
    assert_eq!(records.len(), example_sessions());
    for record in &records {
        let key = &record["key"];
        assert_eq!(key["provider"], "kms", "{record}");
        assert_eq!(key["context"]["sessionlake:role"], "session", "{record}");
        assert_eq!(key["context"]["sessionlake:subject"], record["session_id"], "{record}");
        assert!(
            key["context"]["sessionlake:lake"].as_str().is_some_and(|id| id.starts_with("lake-"))
        );
    }
}

/// Each access file's data key is wrapped under a key of its own, whose record KMS wraps,
/// bound to the record: shredding or rewriting the file deletes it, rekey re-wraps it.
#[tokio::test(flavor = "multi_thread")]
async fn test_aws_path_each_access_file_has_a_kms_wrapped_key_of_its_own() {
    let lake = AwsLake::ingested().await;
    let copy = lake.download().await;
    let added = added_entries(&copy);
    let access: Vec<&Value> = added.iter().filter(|entry| entry["kind"] == "access").collect();
    assert!(!access.is_empty(), "{added:?}");
    for file in access {
        let path = file["path"].as_str().expect("path");
        let record_path = sessionlake_schemas::paths::file_key_object(path).expect("a file key");
        assert_eq!(file["key"]["provider"], "session", "{file}");
        assert_eq!(file["key"]["key_id"], record_path.as_str(), "{file}");
        assert!(added.iter().any(|entry| entry["path"] == record_path.as_str()), "{record_path}");
        let record: Value =
            serde_json::from_slice(&std::fs::read(copy.join(&record_path)).expect("record"))
                .expect("json");
        assert_eq!(record["session_id"], "", "{record}");
        assert_eq!(record["key"]["provider"], "kms", "{record}");
        assert_eq!(record["key"]["context"]["sessionlake:role"], "file", "{record}");
        assert_eq!(record["key"]["context"]["sessionlake:record"], record_path.as_str());
        assert_eq!(
            record["key"]["context"]["sessionlake:subject"],
            file["key"]["context"]["sessionlake:subject"]
        );
    }
}

/// DuckDB reads the downloaded tables with no extra steps: the same count of commands, the
/// same sessions with their principal and target, as search finds; alice's session complete.
#[tokio::test(flavor = "multi_thread")]
async fn test_aws_path_duckdb_reads_the_rows_search_finds() {
    let lake = AwsLake::ingested().await;
    let (all_rows, total) = lake.every_command();
    let copy = lake.download().await;
    let rows = duckdb(
        &copy,
        "SELECT count(*) FROM read_parquet('commands/**/*.parquet', hive_partitioning = true)",
    );
    assert_eq!(rows, vec![serde_json::json!([total])]);
    let per_session = duckdb(
        &copy,
        "SELECT session_id, principal, target, count(*) FROM read_parquet('commands/**/*.parquet', hive_partitioning = true) GROUP BY ALL ORDER BY session_id",
    );
    let mut expected_per_session: BTreeMap<String, (Value, Value, u64)> = BTreeMap::new();
    for row in &all_rows {
        let entry = expected_per_session
            .entry(row["session_id"].as_str().expect("id").to_string())
            .or_insert((row["principal"].clone(), row["target"].clone(), 0));
        entry.2 += 1;
    }
    let expected_rows: Vec<Value> = expected_per_session
        .into_iter()
        .map(|(id, (principal, target, n))| serde_json::json!([id, principal, target, n]))
        .collect();
    assert_eq!(per_session, expected_rows);
    let sessions = duckdb(
        &copy,
        "SELECT session_id, dt, status FROM read_parquet('sessions/**/*.parquet', hive_partitioning = true) WHERE session_id = 'alice-0123456789abcdef0'",
    );
    assert_eq!(
        sessions,
        vec![serde_json::json!(["alice-0123456789abcdef0", "2026-03-14", "complete"])]
    );
}

/// An evidence bundle from the S3 lake, its data keys opened by KMS: the S3 delivery, the
/// original bytes, and a bundle that verifies.
#[tokio::test(flavor = "multi_thread")]
async fn test_aws_path_an_evidence_bundle_from_the_s3_lake_verifies() {
    let lake = AwsLake::ingested().await;
    let exported = lake.cli(&["export", "alice-0123456789abcdef0", "--out", "bundle"]);
    assert_eq!(exported.code, 0, "{}", exported.stderr);
    let bundle = lake.work.path().join("bundle");
    let original =
        std::fs::read(repo_root().join("examples/s3/ssm-logs/alice-0123456789abcdef0.log"))
            .expect("example");
    assert!(std::fs::read(bundle.join("transcript.log")).expect("transcript") == original);
    let session: Value =
        serde_json::from_slice(&std::fs::read(bundle.join("session.json")).expect("session"))
            .expect("json");
    assert_eq!(session["source"], "s3");
    export::assert_bundle_verifies(&bundle);
}

/// Holds, shredding and retention on the S3 lake, the access files' keys in KMS, one after
/// the other on one lake, which verifies after each.
#[tokio::test(flavor = "multi_thread")]
async fn test_aws_path_holds_shredding_and_retention_on_the_s3_lake() {
    let lake = AwsLake::ingested().await;
    let bob = "bob-ilpxvkhghl9vs9ia2xfdyp4dka";
    a_hold_refuses_shredding_until_it_is_released(&lake, bob);
    shredding_removes_a_sessions_rows_and_access_events(&lake, bob);
    a_policy_that_expires_everything_leaves_nothing_and_the_chain_intact(&lake);
}

/// `shred` of a held session fails naming the hold, and the hold can be released.
fn a_hold_refuses_shredding_until_it_is_released(lake: &AwsLake, session: &str) {
    let held = lake.cli(&["hold", "add", session, "--reason", "case 9", "--json"]);
    assert_eq!(held.code, 0, "{}", held.stderr);
    let hold: Value = serde_json::from_str(held.stdout.trim()).expect("json");
    let hold_id = hold["data"]["id"].as_str().expect("id").to_string();
    let refused = lake.cli(&["shred", session, "--reason", "gdpr", "--yes"]);
    assert_eq!(refused.code, 2, "{}", refused.stdout);
    assert!(refused.stderr.contains(&hold_id), "{}", refused.stderr);
    assert_eq!(lake.cli(&["hold", "release", &hold_id, "--reason", "closed"]).code, 0);
}

/// `shred` removes the session's CloudTrail events and its command rows; the lake verifies.
fn shredding_removes_a_sessions_rows_and_access_events(lake: &AwsLake, session: &str) {
    let events_before = lake.cli(&["access", "--session", session, "--json"]);
    assert_eq!(events_before.code, 0, "{session} has CloudTrail events: {}", events_before.stderr);
    let shredded = lake.cli(&["shred", session, "--reason", "gdpr", "--yes", "--json"]);
    assert_eq!(shredded.code, 0, "{}", shredded.stderr);
    assert_eq!(
        lake.cli(&["access", "--session", session, "--json"]).code,
        1,
        "{session}'s events survived"
    );
    assert_eq!(
        lake.cli(&["search", "--session", session, "--json"]).code,
        1,
        "{session}'s rows survived"
    );
    let verified = lake.cli(&["verify"]);
    assert_eq!(verified.code, 0, "{}{}", verified.stdout, verified.stderr);
}

/// A retention policy that expires everything: applied, no row and no access event left, the
/// chain intact.
fn a_policy_that_expires_everything_leaves_nothing_and_the_chain_intact(lake: &AwsLake) {
    std::fs::write(
        lake.work.path().join("policy.toml"),
        "version = 1\n[default]\ncommands = \"1d\"\n",
    )
    .expect("write");
    let applied = lake.cli(&[
        "retention",
        "apply",
        "--policy",
        "policy.toml",
        "--as-of",
        "2030-01-01",
        "--yes",
        "--json",
    ]);
    assert_eq!(applied.code, 0, "{}", applied.stderr);
    assert_eq!(lake.cli(&["search", "--json"]).code, 1, "rows left after retention");
    assert_eq!(lake.cli(&["access", "--json"]).code, 1, "access events left after retention");
    let verified = lake.cli(&["verify"]);
    assert_eq!(verified.code, 0, "{}{}", verified.stdout, verified.stderr);
}

fn memchr_find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|window| window == needle)
}

/// Runs `sessionlake verify --json` in `dir`; returns the exit code and the findings as
/// (kind, path) pairs.
fn verify(dir: &Path, extra: &[&str]) -> (i32, Vec<(String, String)>) {
    let ran =
        run(binary("sessionlake", false).current_dir(dir).args(extra).args(["verify", "--json"]));
    let mut findings = Vec::new();
    for line in ran.stdout.lines() {
        let record: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{line:?}: {e}"));
        if record["type"] == "finding" {
            let text = |field: &str| record["data"][field].as_str().expect("text").to_string();
            findings.push((text("kind"), text("path")));
        }
    }
    (ran.code, findings)
}

#[test]
fn test_verify_names_every_kind_of_tampering() {
    let (dir, _) = ingested_examples();
    assert_eq!(verify(dir.path(), &[]), (0, vec![]));

    let lake = dir.path().join("lake");
    let objects = files_under(&lake);
    let find = |prefix: &str| sessionlake_tests::file_starting_with(&objects, prefix);
    // A flipped bit in a raw transcript, a deleted commands file, a planted file.
    let raw = find("raw");
    let mut bytes = std::fs::read(lake.join(&raw)).expect("read");
    bytes[100] ^= 1;
    std::fs::write(lake.join(&raw), bytes).expect("write");
    let commands = find("commands");
    std::fs::remove_file(lake.join(&commands)).expect("delete");
    std::fs::write(lake.join("sessions/planted.parquet"), b"PAR1").expect("plant");
    let (code, findings) = verify(dir.path(), &[]);
    assert_eq!(code, 1);
    assert_eq!(
        findings,
        vec![
            ("altered-object".to_string(), raw.clone()),
            ("missing-object".to_string(), commands.clone()),
            ("uncommitted-object".to_string(), "sessions/planted.parquet".to_string()),
        ]
    );

    // An edited manifest no longer verifies its signature.
    let manifest = lake.join("manifest/00000000000000000000.json");
    let text = std::fs::read_to_string(&manifest).expect("manifest");
    std::fs::write(&manifest, text.replacen("\"ingest\"", "\"idle\"", 1)).expect("edit");
    let (code, findings) = verify(dir.path(), &[]);
    assert_eq!(code, 1);
    assert!(
        findings.contains(&(
            "bad-signature".to_string(),
            "manifest/00000000000000000000.json".to_string()
        )),
        "{findings:?}"
    );

    // Another keyring pins another signer: every manifest is reported.
    let other = dir.path().join("other-keyring.json");
    run(binary("sessionlake-ingest", false).current_dir(dir.path()).args([
        "--keyring",
        &other.to_string_lossy(),
        "--lake",
        "other-lake",
    ]));
    let (code, findings) = verify(dir.path(), &["--keyring", &other.to_string_lossy()]);
    assert_eq!(code, 1);
    assert!(findings.iter().any(|(kind, _)| kind == "unknown-signer"), "{findings:?}");
}

#[test]
fn test_bad_input_is_quarantined_and_the_rest_is_ingested() {
    let dir = tempfile::tempdir().expect("tempdir");
    let examples = dir.path().join("examples");
    copy_tree(&repo_root().join("examples"), &examples);
    // Random bytes under a session-shaped name, a name that is no session id, broken JSON.
    let garbage: Vec<u8> =
        (0..20_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    std::fs::write(examples.join("s3/ssm-logs/mallory-0123456789abcdef0.log"), &garbage)
        .expect("write");
    std::fs::write(examples.join("s3/ssm-logs/not a session.log"), b"PLAINTEXT-CANARY-7\n")
        .expect("write");
    // JSON whose parser error would quote the transcript text it holds.
    std::fs::write(
        examples.join("cloudwatch/ssm-sessions/eve-0123456789abcdef0.json"),
        b"{\"events\": [{\"timestamp\": \"$ cat /srv/TRANSCRIPT-CANARY-3\", \"message\": \"x\"}",
    )
    .expect("write");

    let ingest = run(binary("sessionlake-ingest", false).current_dir(dir.path()));
    assert_eq!(ingest.code, 0, "{}", ingest.stderr);
    let expected = format!("ingested {} sessions", example_sessions());
    assert!(ingest.stdout.contains(&expected), "{}", ingest.stdout);
    assert!(ingest.stdout.contains("3 quarantined"), "{}", ingest.stdout);
    // Each refusal is logged with the object and the reason.
    for name in ["mallory-0123456789abcdef0.log", "not a session.log", "eve-0123456789abcdef0.json"]
    {
        assert!(ingest.stderr.contains(name), "{name} not named in:\n{}", ingest.stderr);
    }
    // The reason names the object, the place and the kind of error, never the text.
    assert!(
        ingest.stderr.contains("is not get-log-events JSON: a value of the wrong type or a"),
        "{}",
        ingest.stderr
    );
    assert!(!ingest.stderr.contains("TRANSCRIPT-CANARY-3"), "{}", ingest.stderr);
    let search = cli(dir.path(), &["search", "--command", "rm -rf", "--json"]);
    assert_rm_rf_rows(&parse_json_lines(&search.stdout).0);

    // The quarantined originals are kept, encrypted, and committed.
    let lake = dir.path().join("lake");
    let quarantined: Vec<_> =
        files_under(&lake).into_iter().filter(|p| p.starts_with("quarantine")).collect();
    assert_eq!(quarantined.len(), 3, "{quarantined:?}");
    for path in &quarantined {
        let bytes = std::fs::read(lake.join(path)).expect("read");
        assert!(bytes.starts_with(b"SLE1"), "{path:?} is not sealed");
        assert!(bytes.windows(18).all(|w| w != b"PLAINTEXT-CANARY-7"), "{path:?} holds plaintext");
    }
    for path in files_under(&lake) {
        let bytes = std::fs::read(lake.join(&path)).expect("read");
        assert!(bytes.windows(19).all(|w| w != b"TRANSCRIPT-CANARY-3"), "{path:?} holds plaintext");
    }
    assert_eq!(verify(dir.path(), &[]), (0, vec![]));
    // A second run does not quarantine the same inputs again.
    let again = run(binary("sessionlake-ingest", false).current_dir(dir.path()));
    assert!(again.stdout.contains("0 quarantined"), "{}", again.stdout);
}

#[test]
fn test_show_reads_one_source_of_a_session_delivered_twice() {
    let dir = ingested_examples_with_alice_delivered_twice();
    let (_, rows, _) =
        cli_json(dir.path(), &["sessions", "--session", "alice-0123456789abcdef0", "--json"]);
    let mut sources: Vec<&str> =
        rows.iter().map(|row| row["source"].as_str().expect("source")).collect();
    sources.sort();
    assert_eq!(sources, vec!["cloudwatch-upload", "local"]);
    let shown = cli(dir.path(), &["show", "alice-0123456789abcdef0", "--json"]);
    let (rows, _) = parse_json_lines(&shown.stdout);
    let seqs: Vec<u64> = rows.iter().map(|row| row["seq"].as_u64().expect("seq")).collect();
    assert_eq!(seqs, (0..seqs.len() as u64).collect::<Vec<_>>(), "each command once");
}

/// Names a source writer chooses that are no session id (`%` escapes, path tricks, line
/// breaks, invisible and bidirectional characters) are quarantined, printed escaped, and never
/// hide a session or break a query of the rest of the lake.
#[test]
fn test_hostile_names_are_quarantined_and_never_break_queries() {
    let (dir, first) = ingested_examples_and(|examples| {
        // alice's transcript with a header that names no session (the agent's path in it
        // would give the session its id: see the next test).
        let alice =
            std::fs::read_to_string(examples.join("s3/ssm-logs/alice-0123456789abcdef0.log"))
                .expect("example");
        let (_, body) = alice.split_once('\n').expect("header");
        let alice =
            format!("Script started on 2026-03-14 09:27:17+00:00 [COMMAND=\"bash\"]\n{body}");
        for name in [
            "q%2Fr-0123456789abcdef0.log",
            "p%25-0123456789abcdef0.log",
            "x%2F%2e%2e%2Fy.log",
            "evil\ninjected line-0123456789abcdef0.log",
            "kate\u{202e}-0123456789abcdef0.log",
        ] {
            std::fs::write(examples.join("s3/ssm-logs").join(name), &alice).expect("write");
        }
    });
    assert!(first.stdout.contains("5 quarantined"), "{}", first.stdout);
    // A line break in a name is printed escaped: it starts no log line of its own.
    assert!(first.stderr.contains("evil\\ninjected line"), "{}", first.stderr);
    assert!(!first.stderr.lines().any(|line| line.starts_with("injected")), "{}", first.stderr);
    assert!(!first.stderr.contains('\u{202e}'), "{}", first.stderr);
    let again = run(binary("sessionlake-ingest", false).current_dir(dir.path()));
    assert_eq!(again.code, 0, "{}", again.stderr);
    let lake = dir.path().join("lake");
    let quarantined: Vec<_> =
        files_under(&lake).into_iter().filter(|p| p.starts_with("quarantine")).collect();
    assert_eq!(quarantined.len(), 5, "{quarantined:?}");
    let sessions = cli(dir.path(), &["sessions"]);
    assert_eq!(sessions.code, 0, "{}", sessions.stderr);
    assert!(!sessions.stdout.contains('%'), "{}", sessions.stdout);
    let sql = cli(
        dir.path(),
        &["sql", "SELECT count(DISTINCT session_id) AS n FROM sessions", "--format", "csv"],
    );
    assert_eq!(sql.code, 0, "{}", sql.stderr);
    assert_eq!(sql.stdout.lines().nth(1), Some(example_sessions().to_string().as_str()));
    let found = cli(dir.path(), &["search", "--command", "rm -rf", "--json"]);
    assert_rm_rf_rows(&parse_json_lines(&found.stdout).0);
    assert_eq!(verify(dir.path(), &[]), (0, vec![]));
}

/// Names a source chose are printed escaped in every listing's table (`sessions`, `access`,
/// `search --include-access`): a principal with a line break and a right-to-left override, a
/// target with a zero-width space (a forged `StartSession` carries whatever it likes) neither
/// start a line of their own nor hide; JSON keeps them exact.
/// See: issue 18, requirement 3
#[test]
fn test_names_are_printed_escaped_in_listings() {
    const PRINCIPAL: &str = "arn:aws:iam::111122223333:user/mal\u{202e}lory\nFAKE ROW";
    const TARGET: &str = "i-0a1b2c3d\u{200b}4e5f67890";
    let (dir, _) = ingested_examples_and(|examples| {
        let day = examples.join("cloudtrail/AWSLogs/111122223333/CloudTrail/us-east-1/2026/03/15");
        std::fs::create_dir_all(&day).expect("folder");
        let record = serde_json::json!({"Records": [{
            "eventID": "ev-hostile-names", "eventTime": "2026-03-15T08:00:00Z",
            "eventSource": "ssm.amazonaws.com", "eventName": "StartSession",
            "userIdentity": {"type": "IAMUser", "arn": PRINCIPAL, "accountId": "111122223333"},
            "requestParameters": {"target": TARGET},
            "responseElements": {"sessionId": "mallory-0123456789abcdef1"}}]});
        std::fs::write(
            day.join("111122223333_CloudTrail_us-east-1_hostile.json"),
            record.to_string(),
        )
        .expect("write");
    });
    let listings: [&[&str]; 3] = [
        &["sessions", "--session", "mallory-0123456789abcdef1"],
        &["access", "--kind", "ssm-session"],
        &["search", "--include-access", "--since", "2026-03-15", "--until", "2026-03-16"],
    ];
    for args in listings {
        let listed = cli(dir.path(), args);
        assert_eq!(listed.code, 0, "{args:?}: {}", listed.stderr);
        let table = &listed.stdout;
        assert!(table.contains("mal\\u{202e}lory\\nFAKE ROW"), "{args:?}: {table}");
        for hidden in ['\u{202e}', '\u{200b}'] {
            assert!(!table.contains(hidden), "{args:?}: {hidden:?} printed: {table}");
        }
        assert!(!table.lines().any(|line| line.starts_with("FAKE")), "{args:?}: {table}");
    }
    let listed = cli(dir.path(), &["sessions", "--session", "mallory-0123456789abcdef1", "--json"]);
    let (rows, _) = parse_json_lines(&listed.stdout);
    assert_eq!(rows[0]["principal"], Value::from(PRINCIPAL), "{rows:#?}");
    assert_eq!(rows[0]["target"], Value::from(TARGET), "{rows:#?}");
}

/// Files on a local lake that no listing shows (a name that is not UTF-8; `name#1`, the part
/// file object_store leaves when an upload is killed) are named by `verify`; they no longer
/// make `verify` or `shred` fail.
#[test]
fn test_verify_names_files_the_store_cannot_list() {
    use std::os::unix::ffi::OsStrExt as _;
    let (dir, _) = ingested_examples();
    let raw = dir.path().join("lake/raw");
    std::fs::write(raw.join("planted#1"), b"x").expect("write");
    std::fs::write(raw.join(std::ffi::OsStr::from_bytes(b"bad\xff")), b"x").expect("write");
    let (code, found) = verify(dir.path(), &[]);
    assert_eq!(code, 1, "{found:?}");
    assert_eq!(
        found,
        vec![
            // object_store's part file of an upload killed mid-way.
            ("uncommitted-object".to_string(), "raw/planted#1".to_string()),
            ("unnameable-object".to_string(), r#""raw/bad\xFF""#.to_string()),
        ]
    );
    let shred = cli(dir.path(), &["shred", "alice-0123456789abcdef0", "--reason", "test", "--yes"]);
    assert_eq!(shred.code, 0, "{}", shred.stderr);
}

/// A transcript saved under a name that is no session id (`incident-42.log`: not the shape SSM
/// gives ids) takes the id its `script` header names (the agent's orchestration path); one
/// whose name cannot be an id and whose header names none is quarantined as before.
/// See: issue 18, requirement 1
#[test]
fn test_a_transcript_named_otherwise_takes_the_id_its_header_names() {
    let (dir, ingest) = ingested_examples_and(|examples| {
        let ssm = examples.join("s3/ssm-logs");
        std::fs::rename(ssm.join("alice-0123456789abcdef0.log"), ssm.join("incident-42.log"))
            .expect("rename");
        std::fs::write(
            ssm.join("notes #7.log"),
            "Script started on 2026-03-14 09:27:17+00:00\n$ ls\r\n",
        )
        .expect("write");
    });
    assert_eq!(ingest.code, 0, "{}", ingest.stderr);
    assert!(ingest.stdout.contains("1 quarantined"), "{}", ingest.stdout);
    let (_, found, _) = cli_json(dir.path(), &["search", "--command", "rm -rf", "--json"]);
    assert_rm_rf_rows(&found);
    let (_, rows, _) =
        cli_json(dir.path(), &["sessions", "--session", "alice-0123456789abcdef0", "--json"]);
    assert_eq!(rows.len(), 1, "{rows:#?}");
    // Its header and its id agree: nothing to flag.
    assert_eq!(rows[0]["confidence"], Value::from("high"), "{rows:#?}");
    let notes = cli(
        dir.path(),
        &[
            "sql",
            "SELECT source_ref FROM sessions WHERE session_id = 'alice-0123456789abcdef0'",
            "--format",
            "csv",
        ],
    );
    assert!(notes.stdout.contains("incident-42.log"), "{}", notes.stdout);
}

/// A transcript whose own content (the agent's orchestration path in its `script` header)
/// names another session than its file name is kept under its name and flagged: a warning,
/// low confidence with the reason, listed by `sessions --confidence low`, status `conflict`.
#[test]
fn test_a_transcript_naming_another_session_is_flagged() {
    const COPY: &str = "mallory-0123456789abcdef9";
    let (dir, ingest) = ingested_examples_and(|examples| {
        std::fs::copy(
            examples.join("s3/ssm-logs/alice-0123456789abcdef0.log"),
            examples.join(format!("s3/ssm-logs/{COPY}.log")),
        )
        .expect("copy");
    });
    assert!(ingest.stderr.contains("names another session than its name"), "{}", ingest.stderr);
    let (code, rows, _) = cli_json(dir.path(), &["sessions", "--confidence", "low", "--json"]);
    assert_eq!(code, 0);
    let flagged: Vec<&str> = rows.iter().filter_map(|row| row["session_id"].as_str()).collect();
    assert_eq!(flagged, [COPY], "{rows:#?}");
    // `sessions` shows it in conflict, as a session two objects or two StartSessions claim.
    assert_eq!(rows[0]["status"], Value::from("conflict"), "{rows:#?}");
    let query = format!("SELECT confidence_reason FROM sessions WHERE session_id = '{COPY}'");
    let reason = run(binary("sessionlake", false)
        .current_dir(dir.path())
        .args(["sql", &query, "--format", "csv"]));
    assert!(reason.stdout.contains("names another session than its name"), "{}", reason.stdout);
}

/// A CloudWatch stream saved as JSON Lines (one event per line, as exports and log shippers
/// write it), or by `filter-log-events`, is read like the same events saved by
/// `get-log-events`; a line that is no event is quarantined naming the file and the line,
/// never its text.
#[test]
fn test_a_cloudwatch_stream_saved_as_json_lines_is_read() {
    let session = "bob-ilpxvkhghl9vs9ia2xfdyp4dka";
    let saved = repo_root().join(format!("examples/cloudwatch/ssm-sessions/{session}.json"));
    let document: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&saved).expect("read")).expect("json");
    let lines: Vec<String> = document["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|event| event.to_string())
        .collect();
    let shown = |folder: &str, file: &str, bytes: &[u8]| {
        let dir = tempfile::tempdir().expect("tempdir");
        let streams = dir.path().join(folder).join("cloudwatch");
        std::fs::create_dir_all(&streams).expect("mkdir");
        std::fs::write(streams.join(file), bytes).expect("write");
        let ingest = run(binary("sessionlake-ingest", false)
            .current_dir(dir.path())
            .args(["--local", folder]));
        assert_eq!(ingest.code, 0, "{}", ingest.stderr);
        let show = cli(dir.path(), &["show", session]);
        (show, ingest, dir)
    };
    let (from_json, _, _) =
        shown("in", &format!("{session}.json"), &std::fs::read(&saved).expect("read"));
    assert_eq!(from_json.code, 0, "{}", from_json.stderr);
    let jsonl = lines.join("\n") + "\n";
    let (from_jsonl, _, _) = shown("in", &format!("{session}.jsonl"), jsonl.as_bytes());
    assert_eq!(from_jsonl.code, 0, "{}", from_jsonl.stderr);
    assert_eq!(from_jsonl.stdout, from_json.stdout);

    // `aws logs filter-log-events` output: more fields per event, and the streams searched.
    let mut filtered = document.clone();
    for event in filtered["events"].as_array_mut().expect("events") {
        event["logStreamName"] = serde_json::json!(session);
        event["ingestionTime"] = event["timestamp"].clone();
        event["eventId"] = serde_json::json!("3743");
    }
    filtered["searchedLogStreams"] =
        serde_json::json!([{"logStreamName": session, "searchedCompletely": true}]);
    let bytes = serde_json::to_vec(&filtered).expect("encode");
    let (from_filter, _, _) = shown("in", &format!("{session}.json"), &bytes);
    assert_eq!(from_filter.stdout, from_json.stdout, "{}", from_filter.stderr);

    let broken = format!("{}\nnot an event SECRET-TEXT\n", lines[0]);
    let (show, ingest, _dir) = shown("in", &format!("{session}.jsonl"), broken.as_bytes());
    assert_eq!(show.code, 2, "{}", show.stdout);
    assert!(ingest.stdout.contains("1 quarantined"), "{}", ingest.stdout);
    assert!(ingest.stderr.contains("line 2 is not a log event"), "{}", ingest.stderr);
    assert!(!ingest.stderr.contains("SECRET-TEXT"), "{}", ingest.stderr);
}

/// Ingest from S3 with no region, or with no credentials, fails in one line a person can act
/// on (the cause once, and what to set), not the SDK's debug dump. Nothing leaves the machine:
/// both fail before a request is sent.
#[test]
fn test_aws_settings_missing_are_named_with_a_hint() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ingest = |extra: &[(&str, &str)]| {
        let mut command = binary("sessionlake-ingest", false);
        command
            .current_dir(dir.path())
            .env("AWS_SHARED_CREDENTIALS_FILE", dir.path().join("none"))
            .env("AWS_CONFIG_FILE", dir.path().join("none"))
            .args(["--s3", "s3://no-bucket/logs", "--once"]);
        for (name, value) in extra {
            command.env(name, value);
        }
        run(&mut command)
    };
    let cases: [(&[(&str, &str)], &str); 2] = [
        (&[], "give --region, or set AWS_REGION"),
        (&[("AWS_REGION", "us-east-1")], "no AWS credentials: set AWS_PROFILE or --profile"),
    ];
    for (extra, hint) in cases {
        let ran = ingest(extra);
        assert_eq!(ran.code, 2, "{}", ran.stdout);
        let last = ran.stderr.lines().last().unwrap_or_default();
        assert!(last.contains(hint), "{}", ran.stderr);
        assert!(last.contains("s3://no-bucket/logs"), "{}", ran.stderr);
        for debug in ["DispatchFailure {", "SdkBody", "Attempted:"] {
            assert!(!ran.stderr.contains(debug), "{debug}: {}", ran.stderr);
        }
    }
    // The query CLI on an S3 lake says the same.
    let query = run(binary("sessionlake", false)
        .current_dir(dir.path())
        .env("AWS_REGION", "us-east-1")
        .env("AWS_SHARED_CREDENTIALS_FILE", dir.path().join("none"))
        .env("AWS_CONFIG_FILE", dir.path().join("none"))
        .args(["--lake", "s3://no-bucket/lake", "sessions"]));
    assert_eq!(query.code, 2, "{}", query.stdout);
    assert_eq!(query.stderr.lines().count(), 1, "{}", query.stderr);
    assert!(
        query.stderr.contains("no AWS credentials: set AWS_PROFILE or --profile"),
        "{}",
        query.stderr
    );
}

/// `--profile` (or `SESSIONLAKE_PROFILE`) picks the AWS profile: its region is used (the run
/// gets past "no region" to the credentials, which this profile lacks). Nothing leaves the
/// machine: both runs fail before a request is sent.
#[test]
fn test_profile_picks_the_aws_profile() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("config"), "[profile audit]\nregion = us-west-2\n")
        .expect("config");
    let ingest = |extra: &[&str], env: Option<(&str, &str)>| {
        let mut command = binary("sessionlake-ingest", false);
        command
            .current_dir(dir.path())
            .env("AWS_CONFIG_FILE", dir.path().join("config"))
            .env("AWS_SHARED_CREDENTIALS_FILE", dir.path().join("none"))
            .args(["--s3", "s3://no-bucket/logs", "--once"])
            .args(extra);
        if let Some((name, value)) = env {
            command.env(name, value);
        }
        run(&mut command)
    };
    let without = ingest(&[], None);
    assert_eq!(without.code, 2, "{}", without.stdout);
    assert!(without.stderr.contains("give --region"), "{}", without.stderr);
    for ran in
        [ingest(&["--profile", "audit"], None), ingest(&[], Some(("SESSIONLAKE_PROFILE", "audit")))]
    {
        assert_eq!(ran.code, 2, "{}", ran.stdout);
        assert!(!ran.stderr.contains("give --region"), "{}", ran.stderr);
        assert!(ran.stderr.contains("no AWS credentials"), "{}", ran.stderr);
    }
    let query = run(binary("sessionlake", false)
        .current_dir(dir.path())
        .env("AWS_CONFIG_FILE", dir.path().join("config"))
        .env("AWS_SHARED_CREDENTIALS_FILE", dir.path().join("none"))
        .args(["--profile", "audit", "--lake", "s3://no-bucket/lake", "sessions"]));
    assert_eq!(query.code, 2, "{}", query.stdout);
    assert!(!query.stderr.contains("region must be set"), "{}", query.stderr);
}

/// Replaces every run of 12 or more hex digits (keys, hashes, which differ from run to run)
/// with `#`, and collapses whitespace (table padding follows the widest cell).
fn tour_normal(text: &str) -> String {
    let mut out = String::new();
    let mut run = String::new();
    let flush = |run: &mut String, out: &mut String| {
        if run.len() >= 12 {
            out.push('#')
        } else {
            out.push_str(run)
        }
        run.clear();
    };
    for character in text.chars() {
        if character.is_ascii_hexdigit() {
            run.push(character);
        } else {
            flush(&mut run, &mut out);
            out.push(character);
        }
    }
    flush(&mut run, &mut out);
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The README tells the truth: every `sessionlake` command its shell blocks show runs, in a
/// fresh copy of the examples, and every output line they quote is printed (hashes and key
/// ids aside; a line ending in `…` is a beginning). Other commands (`cd`, `openssl`) and
/// commands with elided arguments are not run.
#[test]
fn test_the_readme_tour_runs_as_written() {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).expect("README");
    let dir = tempfile::tempdir().expect("tempdir");
    copy_tree(&repo_root().join("examples"), &dir.path().join("examples"));
    let mut steps: Vec<(String, Vec<String>)> = Vec::new();
    let mut in_block = false;
    for line in readme.lines() {
        if line.starts_with("```") {
            in_block = line == "```sh";
            continue;
        }
        if !in_block {
            continue;
        }
        if let Some(command) = line.strip_prefix("$ ") {
            steps.push((command.to_string(), Vec::new()));
        } else if let Some((_, expected)) = steps.last_mut()
            && !line.trim().is_empty()
        {
            expected.push(line.to_string());
        }
    }
    let mut ran = 0;
    for (command, expected) in steps {
        let words = shlex::split(&command).expect("quotes closed");
        let (name, args): (&str, &[String]) = match words.as_slice() {
            [cargo, run, release, bin, name, rest @ ..]
                if cargo == "cargo" && run == "run" && release == "--release" && bin == "--bin" =>
            {
                (name.as_str(), rest.strip_prefix(&["--".to_string()][..]).unwrap_or(rest))
            }
            [name, rest @ ..] if name == "sessionlake" || name == "sessionlake-ingest" => {
                (name.as_str(), rest)
            }
            _ => continue,
        };
        if command.contains('…') || args.first().is_some_and(|first| first.starts_with("--lake"))
        {
            continue;
        }
        let output = run(binary(name, false).current_dir(dir.path()).args(args));
        assert!(output.code <= 1, "{command}: exit {}: {}", output.code, output.stderr);
        let printed = tour_normal(&format!("{}\n{}", output.stdout, output.stderr));
        for line in expected.iter().filter(|line| line.trim() != "…") {
            let wanted = tour_normal(line);
            // `3a3aee6c…`: the beginning of a hash.
            let wanted = match wanted.strip_suffix('…') {
                Some(start) => start.trim_end_matches(|c: char| c.is_ascii_hexdigit()),
                None => &wanted,
            };
            assert!(printed.contains(wanted), "{command}: {line:?} not printed:\n{printed}");
        }
        ran += 1;
    }
    assert!(ran >= 6, "{ran} commands of the README run");
}
