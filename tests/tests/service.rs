//! End-to-end: `sessionlake-ingest` as a service. Follow mode picks up new sessions, SIGTERM
//! finishes in-flight work and exits 0, a restart after a stop mid-run ingests every session
//! exactly once, `/metrics` and `/healthz` answer on loopback, bad service config is refused.

mod reliability;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use sessionlake_tests::{
    BUILT_ALLOCATOR, Background, binary, copy_tree, files_under, http_get, repo_root,
    reported_allocator, run, s3_client, unique, wait_until,
};

/// Upper bound for anything the service is waited for; never a measure of speed.
const PATIENCE: Duration = Duration::from_secs(60);

/// A transcript of the examples, used as the body of generated sessions.
const TRANSCRIPT: &str = "examples/s3/ssm-logs/alice-0123456789abcdef0.log";

/// Sessions shipped in examples/: S3 transcripts plus CloudWatch streams.
fn example_sessions() -> usize {
    files_under(&repo_root().join("examples"))
        .iter()
        .filter(|path| {
            let name = path.to_string_lossy();
            name.ends_with(".log") || (name.starts_with("cloudwatch/") && name.ends_with(".json"))
        })
        .count()
}

/// Returns the lines of `sessionlake <args> --json` of type `match`.
fn cli_rows(dir: &Path, args: &[&str]) -> (i32, Vec<Value>) {
    let ran = run(binary("sessionlake", false)
        .current_dir(dir)
        .args(["--lake", "lake", "--keyring", "keyring.json"])
        .args(args)
        .arg("--json"));
    let rows = ran
        .stdout
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|record| record["type"] == "match")
        .map(|record| record["data"].clone())
        .collect();
    (ran.code, rows)
}

/// Returns whether the lake holds a command of `session`.
fn session_found(dir: &Path, session: &str) -> bool {
    cli_rows(dir, &["search", "--session", session]).0 == 0
}

/// Runs `sessionlake verify` on the test lake and asserts that it passes.
fn assert_verifies(dir: &Path) {
    let verified = run(binary("sessionlake", false).current_dir(dir).args([
        "--lake",
        "lake",
        "--keyring",
        "keyring.json",
        "verify",
    ]));
    assert_eq!(verified.code, 0, "verify failed:\n{}{}", verified.stdout, verified.stderr);
}

/// Returns the value of a metric line `name value` (labels included in `name`).
fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// Returns the metrics endpoint's address from the service's log.
fn metrics_address(service: &Background) -> String {
    wait_until(PATIENCE, "the metrics endpoint's address in the log", || {
        service
            .stderr()
            .lines()
            .find(|line| line.contains("metrics endpoint listening"))
            .and_then(|line| line.split("address=").nth(1))
            .map(|rest| rest.split_whitespace().next().unwrap_or_default().to_string())
    })
}

/// Returns the ingest command for the test lake in `dir`.
fn ingest(dir: &Path, aws: bool) -> std::process::Command {
    let mut command = binary("sessionlake-ingest", aws);
    command.current_dir(dir).args(["--lake", "lake", "--keyring", "keyring.json", "--log", "info"]);
    command
}

/// Starts ingest in `dir` following its sources (`args`), polling every second.
fn following(dir: &Path, aws: bool, args: &[&str]) -> Background {
    Background::spawn(ingest(dir, aws).args(["--follow", "--poll-interval", "1s"]).args(args))
}

fn cursors(dir: &Path) -> Value {
    let text = std::fs::read_to_string(dir.join("lake/state/cursors.json")).expect("cursors");
    serde_json::from_str(&text).expect("cursors JSON")
}

#[test]
fn test_follow_ingests_new_sessions_serves_metrics_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().expect("tempdir");
    copy_tree(&repo_root().join("examples"), &dir.path().join("examples"));
    let mut service =
        following(dir.path(), false, &["--local", "examples", "--metrics-addr", "127.0.0.1:0"]);
    let address = metrics_address(&service);
    assert!(address.starts_with("127.0.0.1:"), "{address}");

    // After the first poll: the examples are in, and the endpoint says so.
    let expected = example_sessions() as f64;
    let metrics = wait_until(PATIENCE, "the first poll's sessions in /metrics", || {
        let (status, body) = http_get(&address, "/metrics")?;
        (status == 200 && metric(&body, "sessionlake_ingest_sessions_total") == Some(expected))
            .then_some(body)
    });
    // The CloudTrail files' access events, then the sessions.
    assert_eq!(metric(&metrics, "sessionlake_ingest_commits_total"), Some(2.0), "{metrics}");
    assert_eq!(metric(&metrics, "sessionlake_ingest_access_events_total"), Some(4.0), "{metrics}");
    assert!(
        metric(&metrics, "sessionlake_ingest_commands_total").is_some_and(|n| n >= 30.0),
        "{metrics}"
    );
    assert!(
        metric(&metrics, "sessionlake_ingest_raw_bytes_total").is_some_and(|n| n > 1000.0),
        "{metrics}"
    );
    assert_eq!(metric(&metrics, "sessionlake_ingest_quarantined_total"), Some(0.0), "{metrics}");
    assert_eq!(
        metric(&metrics, "sessionlake_ingest_errors_total{kind=\"unavailable\"}"),
        Some(0.0),
        "{metrics}"
    );
    assert_eq!(metric(&metrics, "sessionlake_ingest_sessions_in_flight"), Some(0.0), "{metrics}");
    assert!(metrics.contains("sessionlake_ingest_backlog"), "{metrics}");
    assert!(
        metric(&metrics, "sessionlake_ingest_seconds_since_last_successful_poll")
            .is_some_and(|age| age < 60.0),
        "{metrics}"
    );
    let (status, body) = http_get(&address, "/healthz").expect("healthz");
    assert_eq!(status, 200, "{body}");
    assert!(body.starts_with("ok"), "{body}");
    assert_eq!(http_get(&address, "/nothing-here").map(|(status, _)| status), Some(404));

    // A session that arrives while the service runs is in the lake within a few polls.
    let arriving = "zed-0123456789abcdef0";
    let staging = dir.path().join(format!("{arriving}.log"));
    std::fs::copy(repo_root().join(TRANSCRIPT), &staging).expect("copy transcript");
    std::fs::rename(&staging, dir.path().join(format!("examples/s3/ssm-logs/{arriving}.log")))
        .expect("move transcript in");
    wait_until(PATIENCE, "the new session to be searchable", || {
        session_found(dir.path(), arriving).then_some(())
    });
    wait_until(PATIENCE, "/metrics to count the new session", || {
        let (_, body) = http_get(&address, "/metrics")?;
        (metric(&body, "sessionlake_ingest_sessions_total") == Some(expected + 1.0)).then_some(())
    });

    service.signal("TERM");
    let stopped = service.wait(PATIENCE);
    assert_eq!(stopped.code, 0, "{}", stopped.stderr);
    let summary = format!("ingested {} sessions", example_sessions() + 1);
    assert!(stopped.stdout.contains(&summary), "{}", stopped.stdout);
    assert!(stopped.stdout.contains("3 commits"), "{}", stopped.stdout);
    for logged in ["ingest started", "shutdown requested", "ingest stopped; cursors saved"] {
        assert!(stopped.stderr.contains(logged), "{logged:?} not logged:\n{}", stopped.stderr);
    }
    // Never command text in the logs: only ids and counts.
    assert!(!stopped.stderr.contains("rm -rf"), "{}", stopped.stderr);
    let positions = &cursors(dir.path())["positions"];
    let new_cursor = positions
        .as_object()
        .expect("positions")
        .keys()
        .any(|source| source.ends_with(&format!("{arriving}.log")));
    assert!(new_cursor, "no cursor for the new session: {positions}");
    assert_verifies(dir.path());
}

/// Writes `count` distinct sessions (the same transcript under different session ids).
fn write_sessions(folder: &Path, count: usize) -> BTreeSet<String> {
    std::fs::create_dir_all(folder).expect("mkdir");
    let transcript = std::fs::read(repo_root().join(TRANSCRIPT)).expect("transcript");
    (0..count)
        .map(|index| {
            let session = format!("load{index:04}-{index:017x}");
            std::fs::write(folder.join(format!("{session}.log")), &transcript).expect("write");
            session
        })
        .collect()
}

/// Returns the number in "ingested N sessions".
fn ingested(stdout: &str) -> usize {
    stdout
        .split("ingested ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|number| number.parse().ok())
        .unwrap_or_else(|| panic!("no summary line in {stdout:?}"))
}

#[test]
fn test_sigterm_mid_run_then_restart_ingests_every_session_exactly_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let total = 400;
    let sessions = write_sessions(&dir.path().join("inputs"), total);
    let drain = |dir: &Path| {
        let mut command = ingest(dir, false);
        command.args([
            "--once",
            "--local",
            "inputs",
            "--batch-sessions",
            "6",
            "--max-in-flight",
            "2",
        ]);
        command
    };

    // Stopped as soon as the first batch is committed: what is in flight is finished and
    // committed, the rest is left for the next run.
    let mut first = Background::spawn(&mut drain(dir.path()));
    wait_until(PATIENCE, "the first batch commit", || {
        first.stderr().contains("batch committed").then_some(())
    });
    first.signal("TERM");
    let stopped = first.wait(PATIENCE);
    assert_eq!(stopped.code, 0, "{}", stopped.stderr);
    assert!(stopped.stderr.contains("shutdown requested"), "{}", stopped.stderr);
    let before = ingested(&stopped.stdout);
    eprintln!("first run ingested {before} of {total} sessions before it stopped");
    assert!(before > 0 && before < total, "not stopped mid-run: {}", stopped.stdout);
    // Nothing half-written: every object in the lake is named by a commit.
    assert_verifies(dir.path());

    let second = run(&mut drain(dir.path()));
    assert_eq!(second.code, 0, "{}", second.stderr);
    assert_eq!(ingested(&second.stdout), total - before, "{}", second.stdout);

    let (code, rows) = cli_rows(dir.path(), &["sessions"]);
    assert_eq!(code, 0);
    let listed: Vec<String> = rows
        .iter()
        .map(|row| row["session_id"].as_str().expect("session_id").to_string())
        .collect();
    assert_eq!(listed.len(), total, "a session listed twice or missing");
    assert_eq!(listed.iter().cloned().collect::<BTreeSet<_>>(), sessions);
    assert_verifies(dir.path());

    let third = run(&mut drain(dir.path()));
    assert_eq!(third.code, 0, "{}", third.stderr);
    assert_eq!(ingested(&third.stdout), 0, "{}", third.stdout);
}

#[tokio::test(flavor = "multi_thread")]
async fn test_follow_reads_objects_added_to_s3_between_polls() {
    let s3 = s3_client().await;
    let [bucket] = sessionlake_tests::new_buckets(&s3, ["follow"]).await;
    let transcript = std::fs::read(repo_root().join(TRANSCRIPT)).expect("transcript");
    let put = |session: &str| {
        s3.put_object()
            .bucket(&bucket)
            .key(format!("ssm/111122223333/{session}.log"))
            .body(transcript.clone().into())
            .send()
    };
    put("first-0123456789abcdef0").await.expect("put");

    let dir = tempfile::tempdir().expect("tempdir");
    let mut service = following(
        dir.path(),
        true,
        &["--retry-max-attempts", "3", "--s3", &format!("s3://{bucket}/ssm/")],
    );
    let root = dir.path().to_path_buf();
    let found = move |session: &'static str| {
        let root = root.clone();
        tokio::task::spawn_blocking(move || {
            wait_until(PATIENCE, session, || session_found(&root, session).then_some(()))
        })
    };
    found("first-0123456789abcdef0").await.expect("first session");
    put("second-0123456789abcdef0").await.expect("put");
    found("second-0123456789abcdef0").await.expect("second session");

    service.signal("INT");
    let stopped = tokio::task::spawn_blocking(move || service.wait(PATIENCE)).await.expect("wait");
    assert_eq!(stopped.code, 0, "{}", stopped.stderr);
    assert!(stopped.stdout.contains("ingested 2 sessions"), "{}", stopped.stdout);
    assert!(stopped.stderr.contains("signal=\"SIGINT\""), "{}", stopped.stderr);
    let positions = &cursors(dir.path())["positions"];
    for session in ["first-0123456789abcdef0", "second-0123456789abcdef0"] {
        let key = format!("s3://{bucket}/ssm/111122223333/{session}.log");
        assert!(positions.get(&key).is_some(), "no cursor for {key}: {positions}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn test_follow_survives_a_failing_source_and_reports_it_in_health() {
    // The bucket does not exist yet: every poll fails until it does.
    let bucket = unique("late");
    let dir = tempfile::tempdir().expect("tempdir");
    let service = following(
        dir.path(),
        true,
        &["--s3", &format!("s3://{bucket}/ssm/"), "--metrics-addr", "127.0.0.1:0"],
    );
    let address = metrics_address(&service);
    let service = std::sync::Arc::new(std::sync::Mutex::new(service));
    let watched = std::sync::Arc::clone(&service);
    let probe_address = address.clone();
    tokio::task::spawn_blocking(move || {
        wait_until(PATIENCE, "a failed poll classified not_found in the log", || {
            let log = watched.lock().expect("service").stderr();
            log.lines()
                .any(|line| line.contains("poll failed") && line.contains("kind=not_found"))
                .then_some(())
        });
        // Three poll intervals without a successful poll: unhealthy.
        wait_until(PATIENCE, "/healthz to answer 503", || {
            (http_get(&probe_address, "/healthz")?.0 == 503).then_some(())
        });
    })
    .await
    .expect("watch");

    let s3 = s3_client().await;
    s3.create_bucket().bucket(&bucket).send().await.expect("create bucket");
    let transcript = std::fs::read(repo_root().join(TRANSCRIPT)).expect("transcript");
    s3.put_object()
        .bucket(&bucket)
        .key("ssm/late-0123456789abcdef0.log")
        .body(transcript.into())
        .send()
        .await
        .expect("put");
    let root = dir.path().to_path_buf();
    tokio::task::spawn_blocking(move || {
        wait_until(PATIENCE, "the session once the bucket exists", || {
            session_found(&root, "late-0123456789abcdef0").then_some(())
        });
        wait_until(PATIENCE, "/healthz to answer 200 again", || {
            (http_get(&address, "/healthz")?.0 == 200).then_some(())
        });
        let (_, metrics) = http_get(&address, "/metrics").expect("metrics");
        assert!(
            metric(&metrics, "sessionlake_ingest_errors_total{kind=\"not_found\"}")
                .is_some_and(|n| n >= 1.0),
            "{metrics}"
        );
        assert!(
            metric(&metrics, "sessionlake_ingest_polls_total{outcome=\"failed\"}")
                .is_some_and(|n| n >= 1.0),
            "{metrics}"
        );
    })
    .await
    .expect("recovered");

    let mut service =
        std::sync::Arc::try_unwrap(service).ok().expect("one owner").into_inner().expect("service");
    service.signal("TERM");
    let stopped = tokio::task::spawn_blocking(move || service.wait(PATIENCE)).await.expect("wait");
    assert_eq!(stopped.code, 0, "{}", stopped.stderr);
    assert!(stopped.stdout.contains("ingested 1 sessions"), "{}", stopped.stdout);
}

#[test]
fn test_service_config_errors_name_the_field() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("ingest.toml");
    let cases: [(&str, &[&str], &str); 4] = [
        ("[service]\nfollow = true\npoll_every = \"1s\"\n", &[], "poll_every"),
        ("[service]\npoll_interval = \"0s\"\n", &[], "poll_interval"),
        ("", &["--follow", "--poll-interval", "0s"], "poll_interval"),
        ("", &["--metrics-addr", "0.0.0.0:9464"], "metrics_addr"),
    ];
    for (file, flags, field) in cases {
        std::fs::write(&config, file).expect("write config");
        let ran = run(ingest(dir.path(), false)
            .args(["--config", &config.to_string_lossy(), "--local", "nowhere"])
            .args(flags));
        assert_eq!(ran.code, 2, "{file:?} {flags:?}: {}", ran.stderr);
        assert!(
            ran.stderr.contains(field),
            "{file:?} {flags:?} does not name {field}: {}",
            ran.stderr
        );
    }
    // Nothing was started: no lake was created.
    assert!(!dir.path().join("lake").is_dir());
}

/// Returns the manifests of the test lake in `dir`, in sequence order.
fn manifests(dir: &Path) -> Vec<Value> {
    let folder = dir.join("lake/manifest");
    let Ok(entries) = std::fs::read_dir(&folder) else { return Vec::new() };
    let mut names: Vec<_> = entries.filter_map(|entry| entry.ok().map(|e| e.path())).collect();
    names.sort();
    names
        .iter()
        .filter_map(|path| serde_json::from_slice(&std::fs::read(path).ok()?).ok())
        .collect()
}

#[test]
fn test_follow_makes_idle_commits_and_a_stop_commit_that_verify_accepts() {
    let dir = tempfile::tempdir().expect("tempdir");
    copy_tree(&repo_root().join("examples"), &dir.path().join("examples"));
    // Sessions only: CloudTrail files would add a commit of access events of their own.
    std::fs::remove_dir_all(dir.path().join("examples/cloudtrail")).expect("remove CloudTrail");
    let mut service = Background::spawn(ingest(dir.path(), false).args([
        "--follow",
        "--poll-interval",
        "300ms",
        "--idle-period",
        "1s",
        "--local",
        "examples",
    ]));
    wait_until(PATIENCE, "two idle commits", || {
        let idle = manifests(dir.path()).iter().filter(|m| m["body"]["action"] == "idle").count();
        (idle >= 2).then_some(())
    });
    service.signal("TERM");
    let stopped = service.wait(PATIENCE);
    assert_eq!(stopped.code, 0, "{}", stopped.stderr);
    for logged in ["idle commit made", "stop commit made"] {
        assert!(stopped.stderr.contains(logged), "{logged:?} not logged:\n{}", stopped.stderr);
    }
    let chain = manifests(dir.path());
    let (last, earlier) = chain.split_last().expect("manifests");
    // Every commit of the running service promises the idle period; the stop commit promises
    // the restart within the same period (`--restart-within` defaults to it), so that a lake
    // cut back to this stop later shows as a gap (see custody::anchor).
    assert_eq!(earlier[0]["body"]["action"], "ingest", "{chain:#?}");
    for manifest in earlier {
        assert_eq!(manifest["body"]["idle_period_secs"], 1, "{manifest:#}");
    }
    for manifest in &earlier[1..] {
        assert_eq!(manifest["body"]["action"], "idle", "{manifest:#}");
        assert_eq!(manifest["body"]["added"], Value::Array(vec![]), "{manifest:#}");
    }
    assert_eq!(last["body"]["action"], "idle", "{last:#}");
    assert_eq!(last["body"]["reason"], "writer stopped", "{last:#}");
    assert_eq!(last["body"]["idle_period_secs"], 1, "{last:#}");
    // Idle commits are not batches: the summary counts only the ingest commit.
    assert!(stopped.stdout.contains("1 commits"), "{}", stopped.stdout);
    assert_verifies(dir.path());
}

/// Returns the `sessions` row of `session` once its command count is `count`.
fn session_with_commands(dir: &Path, session: &str, count: u64) -> Option<Value> {
    let (_, rows) = cli_rows(dir, &["sessions", "--session", session]);
    let [row] = rows.as_slice() else { return None };
    (row["command_count"].as_u64() == Some(count)).then(|| row.clone())
}

/// A session's CloudWatch stream grows while ingest follows it: what arrives is in the lake
/// after the next poll, as a new version of the one session row (never two).
// See: issue 4, items 2 and 8 (a live session's stream is read as it grows)
#[tokio::test(flavor = "multi_thread")]
async fn test_follow_reads_a_live_cloudwatch_stream_as_it_grows() {
    const SESSION: &str = "bob-ilpxvkhghl9vs9ia2xfdyp4dka";
    let logs = aws_sdk_cloudwatchlogs::Client::new(&sessionlake_tests::sdk_config().await);
    let group = format!("/ssm/{}", unique("live"));
    let (document, messages) = sessionlake_tests::example_stream(&logs, &group, SESSION).await;
    // Recent times (moto drops events older than 14 days), one second apart.
    let start_ms = chrono::Utc::now().timestamp_millis() - 600_000;
    let put = |from: usize, to: usize| {
        let events = (from..to)
            .map(|i| {
                aws_sdk_cloudwatchlogs::types::InputLogEvent::builder()
                    .timestamp(start_ms + 1000 * i as i64)
                    .message(&messages[i])
                    .build()
                    .expect("event")
            })
            .collect();
        logs.put_log_events()
            .log_group_name(&group)
            .log_stream_name(SESSION)
            .set_log_events(Some(events))
            .send()
    };
    // The whole session parsed at once: what the live reads must end with.
    let whole = tempfile::tempdir().expect("tempdir");
    let folder = whole.path().join("streams/cloudwatch");
    std::fs::create_dir_all(&folder).expect("folder");
    std::fs::write(folder.join(format!("{SESSION}.json")), document.to_string()).expect("write");
    let drained = run(ingest(whole.path(), false).args(["--local", "streams"]));
    assert_eq!(drained.code, 0, "{}", drained.stderr);
    let (_, rows) = cli_rows(whole.path(), &["search", "--session", SESSION]);
    let all_commands: Vec<Value> = rows.iter().map(|row| row["command"].clone()).collect();
    let half = messages.len() / 2;
    assert!(half > 0 && all_commands.len() > 2, "{all_commands:?}");

    put(0, half).await.expect("put the first events");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut service = following(dir.path(), true, &["--cloudwatch", &group]);
    let root = dir.path().to_path_buf();
    let first = tokio::task::spawn_blocking(move || {
        wait_until(PATIENCE, "the first half of the stream", || {
            let (_, rows) = cli_rows(&root, &["search", "--session", SESSION]);
            (!rows.is_empty()).then_some(rows)
        })
    })
    .await
    .expect("first half");
    let first_commands: Vec<Value> = first.iter().map(|row| row["command"].clone()).collect();
    assert!(
        first_commands.len() < all_commands.len()
            && all_commands.starts_with(&first_commands[..first_commands.len() - 1]),
        "the first half {first_commands:?} of {all_commands:?}"
    );

    put(half, messages.len()).await.expect("put the rest");
    let root = dir.path().to_path_buf();
    let count = all_commands.len() as u64;
    let row = tokio::task::spawn_blocking(move || {
        wait_until(PATIENCE, "the whole stream", || session_with_commands(&root, SESSION, count))
    })
    .await
    .expect("whole stream");
    assert_eq!(row["principal"], "arn:aws:iam::111122223333:user/bob", "{row:#}");
    assert_eq!(row["source"], "cloudwatch-stream", "{row:#}");
    let (_, rows) = cli_rows(dir.path(), &["search", "--session", SESSION]);
    let commands: Vec<Value> = rows.iter().map(|row| row["command"].clone()).collect();
    assert_eq!(commands, all_commands, "read live, the same commands as read whole");

    service.signal("TERM");
    let stopped = tokio::task::spawn_blocking(move || service.wait(PATIENCE)).await.expect("wait");
    assert_eq!(stopped.code, 0, "{}", stopped.stderr);
    let (_, rows) = cli_rows(dir.path(), &["sessions", "--session", SESSION]);
    assert_eq!(rows.len(), 1, "one row per session: {rows:#?}");
    assert_verifies(dir.path());
    let key = format!("cwl://{group}/{SESSION}");
    assert!(cursors(dir.path())["positions"].get(&key).is_some(), "no cursor for {key}");
}

/// Returns the messages of a queue, visible or not (moto counts them exactly).
async fn queue_depth(sqs: &aws_sdk_sqs::Client, queue_url: &str) -> u64 {
    use aws_sdk_sqs::types::QueueAttributeName;
    let attributes = sqs
        .get_queue_attributes()
        .queue_url(queue_url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await
        .expect("queue attributes");
    let count = |name: QueueAttributeName| {
        attributes
            .attributes()
            .and_then(|all| all.get(&name))
            .and_then(|value| value.parse::<u64>().ok())
            .unwrap_or(0)
    };
    count(QueueAttributeName::ApproximateNumberOfMessages)
        + count(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
}

/// An S3 source with an SQS queue of its event notifications: the objects the messages name
/// are read (the bucket is not listed), a message that is not a notification is reported and
/// deleted, one naming a deleted object too, and every message is gone after the commit.
// See: issue 4, item 1 (optional SQS queue of S3 event notifications)
#[tokio::test(flavor = "multi_thread")]
async fn test_s3_event_notifications_through_sqs_replace_listing() {
    let config = sessionlake_tests::sdk_config().await;
    let s3 = s3_client().await;
    let sqs = aws_sdk_sqs::Client::new(&config);
    let [bucket] = sessionlake_tests::new_buckets(&s3, ["notified"]).await;
    let queue_url = sqs
        .create_queue()
        .queue_name(unique("created"))
        .send()
        .await
        .expect("create queue")
        .queue_url()
        .expect("queue url")
        .to_string();
    let queue_arn = sqs
        .get_queue_attributes()
        .queue_url(&queue_url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .expect("queue attributes")
        .attributes()
        .and_then(|all| all.get(&aws_sdk_sqs::types::QueueAttributeName::QueueArn).cloned())
        .expect("queue arn");
    let transcript = std::fs::read(repo_root().join(TRANSCRIPT)).expect("transcript");
    let put = |key: String| {
        s3.put_object().bucket(&bucket).key(key).body(transcript.clone().into()).send()
    };
    // Written before the notifications: only a listing would find it.
    put("ssm/before-0123456789abcdef0.log".into()).await.expect("put");
    let notifications = aws_sdk_s3::types::NotificationConfiguration::builder()
        .queue_configurations(
            aws_sdk_s3::types::QueueConfiguration::builder()
                .queue_arn(&queue_arn)
                .events(aws_sdk_s3::types::Event::from("s3:ObjectCreated:*"))
                .build()
                .expect("queue configuration"),
        )
        .build();
    s3.put_bucket_notification_configuration()
        .bucket(&bucket)
        .notification_configuration(notifications)
        .send()
        .await
        .expect("notification configuration");
    let sessions =
        ["first-0123456789abcdef0", "second-0123456789abcdef0", "third-0123456789abcdef0"];
    for (index, session) in sessions.iter().enumerate() {
        // Free-form prefixes, one with a space (notifications URL-encode keys).
        put(format!("ssm/team {index}/{session}.log")).await.expect("put");
    }
    put("elsewhere/outside-0123456789abcdef0.log".into()).await.expect("put");
    sqs.send_message()
        .queue_url(&queue_url)
        .message_body("this is no notification")
        .send()
        .await
        .expect("send");
    let gone = serde_json::json!({"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
        "eventTime": "2026-03-14T09:30:00.000Z",
        "s3": {"bucket": {"name": bucket}, "object": {"key": "ssm/gone-0123456789abcdef0.log", "size": 10, "eTag": "0"}}}]});
    sqs.send_message()
        .queue_url(&queue_url)
        .message_body(gone.to_string())
        .send()
        .await
        .expect("send");

    let dir = tempfile::tempdir().expect("tempdir");
    let config_file = dir.path().join("ingest.toml");
    std::fs::write(
        &config_file,
        format!(
            "[[sources.s3]]\nbucket = \"{bucket}\"\nprefix = \"ssm/\"\nsqs_queue_url = \"{queue_url}\"\n"
        ),
    )
    .expect("config");
    let drain = || {
        let mut command = ingest(dir.path(), true);
        command.arg("--config").arg(&config_file);
        run(&mut command)
    };
    let first = drain();
    assert_eq!(first.code, 0, "{}", first.stderr);
    assert!(first.stdout.contains("ingested 3 sessions"), "{}", first.stdout);
    assert!(
        first.stderr.contains("queue message is not an S3 event notification"),
        "{}",
        first.stderr
    );
    for session in sessions {
        assert!(session_found(dir.path(), session), "{session} not ingested");
    }
    for session in ["before-0123456789abcdef0", "outside-0123456789abcdef0"] {
        assert!(!session_found(dir.path(), session), "{session} was listed");
    }
    assert_eq!(queue_depth(&sqs, &queue_url).await, 0, "messages left after the commit");
    assert_verifies(dir.path());

    let second = drain();
    assert_eq!(second.code, 0, "{}", second.stderr);
    assert!(second.stdout.contains("ingested 0 sessions"), "{}", second.stdout);
}

/// A once run at a terminal shows a progress line on stderr (sessions, bytes, rate), and log
/// lines take it away before they print; with `--quiet`, or when stderr is not a terminal (a
/// pipe, a log file), there is none. The terminal is `script(1)`'s.
#[test]
fn test_a_once_run_at_a_terminal_shows_its_progress() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_sessions(&dir.path().join("inputs"), 12);
    let binary = assert_cmd::cargo::cargo_bin("sessionlake-ingest");
    let at_terminal = |lake: &str, extra: &str| {
        let command = format!(
            "{} --lake {lake} --keyring keyring.json --local inputs --batch-sessions 4 {extra}",
            binary.display()
        );
        let ran = run(std::process::Command::new("script")
            .current_dir(dir.path())
            .env_remove("SESSIONLAKE_QUIET")
            .args(["-qec", &command, "/dev/null"]));
        assert_eq!(ran.code, 0, "{}{}", ran.stdout, ran.stderr);
        ran.stdout
    };
    let shown = at_terminal("lake", "");
    assert!(shown.contains("ingesting: 0 sessions, 0.0 MB"), "{shown}");
    assert!(shown.contains("ingested 12 sessions"), "{shown}");
    let quiet = at_terminal("lake2", "--quiet");
    assert!(!quiet.contains("ingesting:"), "{quiet}");
    assert!(quiet.contains("ingested 12 sessions"), "{quiet}");
    std::fs::remove_dir_all(dir.path().join("lake")).expect("a fresh lake");
    let piped = run(ingest(dir.path(), false).args(["--local", "inputs"]));
    assert_eq!(piped.code, 0, "{}", piped.stderr);
    assert!(!piped.stderr.contains("ingesting:"), "{}", piped.stderr);
    assert!(piped.stdout.contains("ingested 12 sessions"), "{}", piped.stdout);
}

/// The ingest binaries run on jemalloc with the settings `.cargo/config.toml` builds them with
/// (`sessionlake_storage::allocator`): a run, the service, and the Lambda function's binary.
#[test]
fn test_the_ingest_binaries_run_on_jemalloc_with_the_settings_they_were_built_with() {
    let dir = tempfile::tempdir().expect("tempdir");
    copy_tree(&repo_root().join("examples"), &dir.path().join("examples"));
    // `ingest` without its `--log info`.
    let debug = |args: &[&str]| {
        let mut command = binary("sessionlake-ingest", false);
        command.current_dir(dir.path()).args(["--lake", "lake", "--keyring", "keyring.json"]);
        command.args(["--log", "sessionlake=debug", "--local", "examples"]).args(args);
        command.env_remove("_RJEM_MALLOC_CONF");
        command
    };
    let ran = run(&mut debug(&[]));
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert_eq!(reported_allocator(&ran.stderr), BUILT_ALLOCATOR);
    let summary = format!("ingested {} sessions", example_sessions());
    assert!(ran.stdout.contains(&summary), "{}", ran.stdout);
    // The service, as a unit starts it.
    let mut service = Background::spawn(&mut debug(&["--follow", "--poll-interval", "1s"]));
    wait_until(PATIENCE, "the first poll", || {
        service.stderr().contains("nothing new").then_some(())
    });
    service.signal("TERM");
    let stopped = service.wait(PATIENCE);
    assert_eq!(stopped.code, 0, "{}", stopped.stderr);
    assert_eq!(reported_allocator(&stopped.stderr), BUILT_ALLOCATOR);
    // The Lambda function's binary reports it before its runtime starts (outside Lambda the
    // runtime then stops: no function is named).
    let mut lambda = binary("sessionlake-lambda", false);
    lambda.current_dir(dir.path()).args(["--lake", "lake", "--keyring", "keyring.json"]);
    lambda.args(["--log", "sessionlake=debug"]).env_remove("_RJEM_MALLOC_CONF");
    lambda.env_remove("AWS_LAMBDA_FUNCTION_NAME").env_remove("AWS_LAMBDA_RUNTIME_API");
    let ran = run(&mut lambda);
    assert_ne!(ran.code, 0, "{}", ran.stderr);
    assert_eq!(reported_allocator(&ran.stderr), BUILT_ALLOCATOR);
}
