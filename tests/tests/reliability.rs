//! Reliability (RELIABILITY.md): two ingest processes pointed at one lake, faults injected
//! between ingest and moto by `tests/fault_proxy.py`, and SIGKILL at random moments. Each test
//! checks that no session is lost or duplicated and that `sessionlake verify` passes.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use sessionlake_tests::{
    Background, FaultProxy, Ran, binary, files_under, http_get, moto_endpoint, repo_root, run,
    s3_client, sdk_config, unique, wait_until,
};

use super::{
    PATIENCE, TRANSCRIPT, assert_verifies, cli_rows, ingest, ingested, metric, metrics_address,
    session_found, write_sessions,
};

/// The CloudWatch stream of the examples that streamed sessions are made of.
const STREAM: &str = "examples/cloudwatch/ssm-sessions/bob-ilpxvkhghl9vs9ia2xfdyp4dka.json";
/// The session id inside that stream's events.
const STREAM_SESSION: &str = "bob-ilpxvkhghl9vs9ia2xfdyp4dka";
/// A command of the S3 template: never in a log, never in the lake in plaintext.
const SECRET_COMMAND: &str = "rm -rf /tmp/alice-scratch";

/// A small seeded generator (xorshift64*): the same seed gives the same kill schedule.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    fn below(&mut self, bound: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % bound.max(1)
    }
}

/// Returns the session ids of every `sessions` row of the lake (repeats kept).
fn listed_sessions(rows: &[Value]) -> Vec<String> {
    rows.iter().map(|row| row["session_id"].as_str().expect("session_id").to_string()).collect()
}

/// Asserts that `listed` holds every session of `expected` exactly once.
fn assert_each_once(listed: &[String], expected: &BTreeSet<String>) {
    let unique: BTreeSet<String> = listed.iter().cloned().collect();
    assert_eq!(listed.len(), unique.len(), "a session is listed twice");
    let missing: Vec<_> = expected.difference(&unique).collect();
    let extra: Vec<_> = unique.difference(expected).collect();
    assert!(missing.is_empty() && extra.is_empty(), "missing {missing:?}, unexpected {extra:?}");
}

#[test]
fn test_a_second_ingest_on_the_same_lake_backs_off_and_nothing_is_duplicated() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut sessions = write_sessions(&dir.path().join("inputs"), 120);
    let follow = |dir: &Path| {
        let mut command = ingest(dir, false);
        command.args(["--follow", "--poll-interval", "1s", "--local", "inputs"]);
        command.args(["--batch-sessions", "10"]);
        command
    };
    let mut first = Background::spawn(&mut follow(dir.path()));
    wait_until(PATIENCE, "the first service's first commit", || {
        first.stderr().contains("batch committed").then_some(())
    });

    // A once-mode run pointed at the same lake and sources by mistake: refused, naming the
    // holder, nothing written.
    let refused = run(ingest(dir.path(), false).args(["--once", "--local", "inputs"]));
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    for expected in ["is in use by another ingest", &format!("/{}", first.pid()), "backing off"] {
        assert!(refused.stderr.contains(expected), "{expected:?} not in:\n{}", refused.stderr);
    }

    // A second follow-mode service stands by until the lease is free.
    let mut standby = Background::spawn(&mut follow(dir.path()));
    wait_until(PATIENCE, "the second service to stand by", || {
        standby.stderr().contains("lake leased by another ingest; standing by").then_some(())
    });
    wait_until(PATIENCE, "every session from the first service", || {
        (cli_rows(dir.path(), &["sessions"]).1.len() == sessions.len()).then_some(())
    });
    first.signal("TERM");
    let stopped = first.wait(PATIENCE);
    assert_eq!(stopped.code, 0, "{}", stopped.stderr);
    assert_eq!(ingested(&stopped.stdout), sessions.len(), "{}", stopped.stdout);

    // The standby takes over, re-reads nothing, and ingests what arrives next.
    wait_until(PATIENCE, "the standby to start", || {
        standby.stderr().contains("ingest started").then_some(())
    });
    let arriving = "late-0123456789abcdef0";
    let staging = dir.path().join(format!("{arriving}.log"));
    std::fs::copy(repo_root().join(TRANSCRIPT), &staging).expect("copy transcript");
    std::fs::rename(&staging, dir.path().join(format!("inputs/{arriving}.log"))).expect("move in");
    wait_until(PATIENCE, "the arriving session", || {
        session_found(dir.path(), arriving).then_some(())
    });
    sessions.insert(arriving.to_string());
    standby.signal("TERM");
    let stopped = standby.wait(PATIENCE);
    assert_eq!(stopped.code, 0, "{}", stopped.stderr);
    assert_eq!(ingested(&stopped.stdout), 1, "the standby re-ingested: {}", stopped.stdout);

    let (code, rows) = cli_rows(dir.path(), &["sessions"]);
    assert_eq!(code, 0);
    assert_each_once(&listed_sessions(&rows), &sessions);
    assert!(
        std::fs::metadata(dir.path().join("lake/state/lease.json")).is_err(),
        "a clean stop releases the lease"
    );
    assert_verifies(dir.path());
}

#[test]
fn test_two_once_runs_started_together_ingest_every_session_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sessions = write_sessions(&dir.path().join("inputs"), 150);
    let once = |dir: &Path| {
        let mut command = ingest(dir, false);
        command.args(["--once", "--local", "inputs", "--batch-sessions", "10"]);
        command
    };
    let mut runs =
        [Background::spawn(&mut once(dir.path())), Background::spawn(&mut once(dir.path()))];
    let ran: Vec<Ran> = runs.iter_mut().map(|process| process.wait(PATIENCE)).collect();
    // One wins the lease; the other is refused, or starts after the first finished and
    // finds nothing new.
    let mut total = 0;
    for (index, result) in ran.iter().enumerate() {
        match result.code {
            0 => total += ingested(&result.stdout),
            2 => assert!(
                result.stderr.contains("is in use by another ingest"),
                "run {index}: {}",
                result.stderr
            ),
            code => panic!("run {index} exited {code}: {}", result.stderr),
        }
    }
    assert_eq!(total, sessions.len());
    let (code, rows) = cli_rows(dir.path(), &["sessions"]);
    assert_eq!(code, 0);
    assert_each_once(&listed_sessions(&rows), &sessions);
    assert_verifies(dir.path());
}

/// Sessions in moto: S3 transcripts under `s3://bucket/ssm/` and CloudWatch streams in `group`.
struct Sources {
    bucket: String,
    group: String,
    sessions: BTreeSet<String>,
}

impl Sources {
    fn args(&self) -> Vec<String> {
        vec![
            "--s3".into(),
            format!("s3://{}/ssm/", self.bucket),
            "--cloudwatch".into(),
            self.group.clone(),
        ]
    }
}

/// Runs `jobs` at most 16 at a time; the first that fails fails the test, naming `what`.
async fn sixteen_at_a_time<F>(jobs: impl IntoIterator<Item = F>, what: &str)
where
    F: std::future::Future<Output = Result<(), String>> + Send + 'static,
{
    let mut tasks = tokio::task::JoinSet::new();
    for job in jobs {
        tasks.spawn(job);
        if tasks.len() >= 16 {
            tasks.join_next().await.expect("task").expect("join").expect(what);
        }
    }
    while let Some(done) = tasks.join_next().await {
        done.expect("join").expect(what);
    }
}

/// Puts `s3_count` transcripts and `stream_count` CloudWatch streams into moto (directly).
async fn seed_sources(tag: &str, s3_count: usize, stream_count: usize) -> Sources {
    let config = sdk_config().await;
    let s3 = s3_client().await;
    let logs = aws_sdk_cloudwatchlogs::Client::new(&config);
    let [bucket] = sessionlake_tests::new_buckets(&s3, [tag]).await;
    let group = format!("/ssm/{bucket}");
    logs.create_log_group().log_group_name(&group).send().await.expect("create log group");
    let transcript = std::fs::read(repo_root().join(TRANSCRIPT)).expect("transcript");
    let stream: Value =
        serde_json::from_slice(&std::fs::read(repo_root().join(STREAM)).expect("stream"))
            .expect("stream JSON");
    let messages = sessionlake_tests::event_messages(&stream);
    let now_ms = chrono::Utc::now().timestamp_millis();
    let mut sessions = BTreeSet::new();
    let puts = (0..s3_count).map(|index| {
        let session = format!("s{index:04}-{index:017x}");
        sessions.insert(session.clone());
        let (s3, bucket, body) = (s3.clone(), bucket.clone(), transcript.clone());
        async move {
            let key = format!("ssm/{session}.log");
            s3.put_object()
                .bucket(&bucket)
                .key(&key)
                .body(body.into())
                .send()
                .await
                .map(|_| ())
                .map_err(|error| format!("put {key}: {error:?}"))
        }
    });
    sixteen_at_a_time(puts, "put").await;
    let streams = (0..stream_count).map(|index| {
        let session = format!("c{index:04}-{index:017x}");
        sessions.insert(session.clone());
        let (logs, group) = (logs.clone(), group.clone());
        let messages: Vec<String> =
            messages.iter().map(|message| message.replace(STREAM_SESSION, &session)).collect();
        async move {
            logs.create_log_stream()
                .log_group_name(&group)
                .log_stream_name(&session)
                .send()
                .await
                .map_err(|error| format!("create stream {session}: {error:?}"))?;
            let start_ms = now_ms - 3_600_000;
            sessionlake_tests::put_events_at(&logs, &group, &session, &messages, start_ms, 1).await;
            Ok(())
        }
    });
    sixteen_at_a_time(streams, "stream").await;
    Sources { bucket, group, sessions }
}

/// Runs `sessionlake <args>` on `lake` (a folder under `work` or an S3 URL), straight to moto.
fn lake_cli(work: &Path, lake: &str, args: &[&str]) -> Ran {
    run(binary("sessionlake", true)
        .current_dir(work)
        .args(["--lake", lake, "--keyring", "keyring.json"])
        .args(args))
}

/// Returns the `data` of the `match` lines of a `--json` output.
fn matches(ran: &Ran) -> Vec<Value> {
    ran.stdout
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|record| record["type"] == "match")
        .map(|record| record["data"].clone())
        .collect()
}

/// Returns every session's commands, in order, from `search --json` over the whole lake.
fn commands_by_session(work: &Path, lake: &str) -> BTreeMap<String, Vec<String>> {
    let searched = lake_cli(work, lake, &["search", "--json"]);
    assert_eq!(searched.code, 0, "{}", searched.stderr);
    let mut found: BTreeMap<String, Vec<(u64, String)>> = BTreeMap::new();
    for row in matches(&searched) {
        let session = row["session_id"].as_str().expect("session_id").to_string();
        let seq = row["seq"].as_u64().unwrap_or_default();
        let command = row["command"].as_str().unwrap_or_default().to_string();
        found.entry(session).or_default().push((seq, command));
    }
    found
        .into_iter()
        .map(|(session, mut commands)| {
            commands.sort();
            (session, commands.into_iter().map(|(_, command)| command).collect())
        })
        .collect()
}

/// Asserts that every session's commands equal those of its template in an uninterrupted
/// run (`reference`: S3 template under `s…`, stream template under `c…`).
fn assert_commands_match(
    found: &BTreeMap<String, Vec<String>>,
    reference: &BTreeMap<String, Vec<String>>,
    sessions: &BTreeSet<String>,
) {
    let template = |session: &str| {
        let prefix = &session[..1];
        reference.iter().find(|(id, _)| id.starts_with(prefix)).map(|(_, commands)| commands)
    };
    for session in sessions {
        let expected = template(session).expect("a reference for every template");
        assert!(!expected.is_empty(), "the reference of {session} has no command");
        assert_eq!(found.get(session), Some(expected), "commands of {session}");
    }
}

/// Ingests one session of each template, uninterrupted, into a lake of its own and returns
/// their commands.
async fn reference_commands() -> BTreeMap<String, Vec<String>> {
    let sources = seed_sources("reference", 1, 1).await;
    let work = tempfile::tempdir().expect("tempdir");
    let ran = run(binary("sessionlake-ingest", true)
        .current_dir(work.path())
        .args(["--lake", "lake", "--keyring", "keyring.json", "--once"])
        .args(sources.args()));
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    let found = commands_by_session(work.path(), "lake");
    assert_eq!(found.len(), 2, "{found:?}");
    found
}

#[tokio::test(flavor = "multi_thread")]
async fn test_at_20_percent_faults_ingest_loses_and_duplicates_nothing() {
    let sources = seed_sources("faults", 24, 8).await;
    let reference = reference_commands().await;
    let kms = aws_sdk_kms::Client::new(&sdk_config().await);
    let key = kms.create_key().send().await.expect("create key");
    let key_id = key.key_metadata().expect("metadata").key_id().to_string();
    let lake_bucket = unique("faults-lake");
    s3_client().await.create_bucket().bucket(&lake_bucket).send().await.expect("create lake");
    let lake = format!("s3://{lake_bucket}/lake");

    let proxy = FaultProxy::start(20);
    let kinds = ["500", "503", "throttle", "reset", "delay"];
    proxy.set(&serde_json::json!({"s3": 0.2, "logs": 0.2, "kms": 0.2, "kinds": kinds}));
    let work = tempfile::tempdir().expect("tempdir");
    // Calls that still fail after the SDK's retries fail their input or the run; the next run
    // resumes from the cursors. A few runs always finish.
    let mut runs = Vec::new();
    for _ in 0..8 {
        let ran = tokio::task::block_in_place(|| {
            run(binary("sessionlake-ingest", true)
                .env("AWS_ENDPOINT_URL", proxy.endpoint())
                .current_dir(work.path())
                .args(["--lake", &lake, "--keyring", "keyring.json", "--once", "--log", "info"])
                .args(["--kms-key-id", &key_id, "--retry-max-attempts", "5"])
                .args(["--batch-sessions", "8", "--max-in-flight", "4"])
                .args(sources.args()))
        });
        let done = ran.code == 0;
        runs.push(ran);
        if done {
            break;
        }
    }
    let last = runs.last().expect("a run");
    assert_eq!(last.code, 0, "no run finished in {} tries:\n{}", runs.len(), last.stderr);
    let counts = proxy.set(&serde_json::json!({"s3": 0, "logs": 0, "kms": 0}));
    eprintln!("{} runs; proxy counts: {counts}", runs.len());
    for service in ["s3", "logs", "kms"] {
        let injected: u64 = counts["injected"]
            .as_object()
            .expect("injected")
            .iter()
            .filter(|(key, _)| key.starts_with(&format!("{service}:")))
            .map(|(_, count)| count.as_u64().unwrap_or_default())
            .sum();
        assert!(injected > 0, "no fault injected into {service}: {counts}");
    }
    for ran in &runs {
        assert!(!ran.stderr.contains(SECRET_COMMAND), "command text in a log:\n{}", ran.stderr);
    }

    let work_path = work.path().to_path_buf();
    tokio::task::block_in_place(|| {
        let listed = lake_cli(&work_path, &lake, &["sessions", "--json"]);
        assert_eq!(listed.code, 0, "{}", listed.stderr);
        assert_each_once(&listed_sessions(&matches(&listed)), &sources.sessions);
        let found = commands_by_session(&work_path, &lake);
        assert_commands_match(&found, &reference, &sources.sessions);
        let verified = lake_cli(&work_path, &lake, &["verify"]);
        assert_eq!(verified.code, 0, "verify failed:\n{}{}", verified.stdout, verified.stderr);
    });
}

#[tokio::test(flavor = "multi_thread")]
async fn test_with_kms_down_ingest_waits_writes_nothing_and_recovers_when_it_returns() {
    let sources = seed_sources("kms-down", 3, 0).await;
    let kms = aws_sdk_kms::Client::new(&sdk_config().await);
    let key = kms.create_key().send().await.expect("create key");
    let key_id = key.key_metadata().expect("metadata").key_id().to_string();
    let proxy = FaultProxy::start(5);
    proxy.set(&serde_json::json!({"kms": 1.0, "kinds": ["503", "throttle", "reset", "500"]}));

    let work = tempfile::tempdir().expect("tempdir");
    let mut service = Background::spawn(
        binary("sessionlake-ingest", true)
            .env("AWS_ENDPOINT_URL", proxy.endpoint())
            .current_dir(work.path())
            .args(["--lake", "lake", "--keyring", "keyring.json", "--log", "info"])
            .args(["--follow", "--poll-interval", "1s", "--metrics-addr", "127.0.0.1:0"])
            .args(["--kms-key-id", &key_id, "--retry-max-attempts", "2"])
            .args(sources.args()),
    );
    let address = metrics_address(&service);
    // Two polls fail on KMS: the cause is in the log and in the metrics.
    let failures = wait_until(PATIENCE, "two polls failed on KMS", || {
        let log = service.stderr();
        let failed: Vec<String> = log
            .lines()
            .filter(|line| line.contains("poll failed") && line.contains("GenerateDataKey"))
            .map(str::to_string)
            .collect();
        (failed.len() >= 2).then_some(failed)
    });
    assert!(failures[0].contains("kind=unavailable"), "{}", failures[0]);
    assert!(failures[0].contains(&key_id), "the key is named: {}", failures[0]);
    let (_, metrics) = http_get(&address, "/metrics").expect("metrics");
    assert!(
        metric(&metrics, "sessionlake_ingest_errors_total{kind=\"unavailable\"}")
            .is_some_and(|count| count >= 2.0),
        "{metrics}"
    );
    assert_eq!(metric(&metrics, "sessionlake_ingest_sessions_total"), Some(0.0), "{metrics}");
    // No progress and nothing readable: no session object, no command text anywhere.
    let lake = work.path().join("lake");
    for file in files_under(&lake) {
        let name = file.to_string_lossy().to_string();
        assert!(
            !["raw/", "commands/", "sessions/", "keys/sessions/"]
                .iter()
                .any(|dir| name.starts_with(dir)),
            "{name} written while KMS was down"
        );
        let bytes = std::fs::read(lake.join(&file)).expect("read");
        assert!(
            !bytes.windows(SECRET_COMMAND.len()).any(|window| window == SECRET_COMMAND.as_bytes()),
            "plaintext command in {name}"
        );
    }
    assert!(!service.stderr().contains(SECRET_COMMAND));

    // KMS returns: the service catches up by itself.
    proxy.set(&serde_json::json!({"kms": 0}));
    let root = work.path().to_path_buf();
    let expected = sources.sessions.clone();
    tokio::task::spawn_blocking(move || {
        wait_until(PATIENCE, "every session once KMS is back", || {
            let listed = lake_cli(&root, "lake", &["sessions", "--json"]);
            (listed_sessions(&matches(&listed)).len() == expected.len()).then_some(())
        });
    })
    .await
    .expect("caught up");
    service.signal("TERM");
    let stopped = tokio::task::spawn_blocking(move || service.wait(PATIENCE)).await.expect("wait");
    assert_eq!(stopped.code, 0, "{}", stopped.stderr);
    assert_eq!(ingested(&stopped.stdout), sources.sessions.len(), "{}", stopped.stdout);
    let work_path = work.path().to_path_buf();
    tokio::task::block_in_place(|| {
        let listed = lake_cli(&work_path, "lake", &["sessions", "--json"]);
        assert_each_once(&listed_sessions(&matches(&listed)), &sources.sessions);
        assert_verifies(&work_path);
    });
}

#[tokio::test(flavor = "multi_thread")]
async fn test_a_kill_between_manifest_and_cursors_replays_and_replaces_without_duplicates() {
    let s3 = s3_client().await;
    let lake_bucket = unique("kill-window");
    s3.create_bucket().bucket(&lake_bucket).send().await.expect("create lake");
    let lake = format!("s3://{lake_bucket}/lake");
    let proxy = FaultProxy::start(1);
    // Every save of the cursors is held for a while: a kill right after a commit lands there.
    proxy.set(&serde_json::json!({"hold": {"path": "state/cursors.json", "seconds": 5}}));
    let work = tempfile::tempdir().expect("tempdir");
    let sessions = write_sessions(&work.path().join("inputs"), 30);
    let command = |endpoint: &str| {
        let mut command = binary("sessionlake-ingest", true);
        command
            .env("AWS_ENDPOINT_URL", endpoint)
            .current_dir(work.path())
            .args(["--lake", &lake, "--keyring", "keyring.json", "--once", "--log", "info"])
            .args(["--local", "inputs", "--batch-sessions", "10"]);
        command
    };
    let mut first = Background::spawn(&mut command(&proxy.endpoint()));
    tokio::task::block_in_place(|| {
        wait_until(PATIENCE, "the first commit", || {
            first.stderr().contains("batch committed").then_some(())
        });
        first.signal("KILL");
        first.wait(PATIENCE);
    });
    // The manifest of the first batch is in the lake; the cursors that cover it are not.
    let listed = s3.list_objects_v2().bucket(&lake_bucket).prefix("lake/").send().await;
    let keys: Vec<String> = listed
        .expect("list lake")
        .contents()
        .iter()
        .filter_map(|object| object.key().map(str::to_string))
        .collect();
    let manifests = keys.iter().filter(|key| key.starts_with("lake/manifest/")).count();
    assert_eq!(manifests, 1, "{keys:#?}");
    assert!(!keys.iter().any(|key| key.ends_with("state/cursors.json")), "{keys:#?}");

    // The restart reads the first batch again; its new versions replace the committed ones.
    let work_path = work.path().to_path_buf();
    tokio::task::block_in_place(|| {
        let second = run(&mut command(&moto_endpoint()));
        assert_eq!(second.code, 0, "{}", second.stderr);
        assert_eq!(ingested(&second.stdout), sessions.len(), "{}", second.stdout);
        assert!(second.stdout.contains("(10 replaced"), "{}", second.stdout);
        let listed = lake_cli(&work_path, &lake, &["sessions", "--json"]);
        assert_eq!(listed.code, 0, "{}", listed.stderr);
        assert_each_once(&listed_sessions(&matches(&listed)), &sessions);
        let verified = lake_cli(&work_path, &lake, &["verify"]);
        assert_eq!(verified.code, 0, "verify failed:\n{}{}", verified.stdout, verified.stderr);
    });
}

/// Tells where a kill left the lake in `lake`: objects no manifest names (killed while a batch
/// was written), a newest commit whose sessions' cursors were not saved (killed between
/// manifest and cursors), or neither (between batches, or while listing).
fn kill_phase(lake: &Path) -> &'static str {
    let manifests = super::manifests(lake.parent().expect("work dir"));
    let added =
        |manifest: &Value| manifest["body"]["added"].as_array().cloned().unwrap_or_default();
    let named: BTreeSet<String> = manifests
        .iter()
        .flat_map(added)
        .filter_map(|entry| entry["path"].as_str().map(str::to_string))
        .collect();
    let orphans = files_under(lake).iter().any(|file| {
        let path = file.to_string_lossy();
        ["raw/", "commands/", "sessions/"].iter().any(|dir| path.starts_with(dir))
            && !named.contains(path.as_ref())
    });
    if orphans {
        return "objects written, no manifest";
    }
    let cursors = std::fs::read_to_string(lake.join("state/cursors.json")).unwrap_or_default();
    let newest = manifests.iter().rev().find(|manifest| manifest["body"]["action"] == "ingest");
    let unsaved = newest.map(added).unwrap_or_default().iter().any(|entry| {
        entry["kind"] == "raw"
            && entry["sessions"][0].as_str().is_some_and(|session| !cursors.contains(session))
    });
    if unsaved { "manifest written, cursors not saved" } else { "between batches" }
}

/// Sessions of the crash test; `SESSIONLAKE_CRASH_SESSIONS` changes it (four in five from S3,
/// the rest CloudWatch streams).
fn crash_sessions() -> usize {
    std::env::var("SESSIONLAKE_CRASH_SESSIONS").ok().and_then(|n| n.parse().ok()).unwrap_or(1000)
}

#[tokio::test(flavor = "multi_thread")]
async fn test_sigkill_at_random_moments_then_restart_loses_and_duplicates_nothing() {
    let total = crash_sessions();
    let streams = total / 5;
    let sources = seed_sources("crash", total - streams, streams).await;
    let reference = reference_commands().await;
    let seed = std::env::var("SESSIONLAKE_CRASH_SEED").ok().and_then(|s| s.parse().ok());
    let mut rng = Rng::new(seed.unwrap_or(9));
    let work = tempfile::tempdir().expect("tempdir");
    let command = || {
        let mut command = binary("sessionlake-ingest", true);
        command
            .current_dir(work.path())
            .args(["--lake", "lake", "--keyring", "keyring.json", "--once", "--log", "info"])
            .args(["--batch-sessions", "10", "--max-in-flight", "4"])
            .args(sources.args());
        command
    };
    let mut kills = 0;
    let mut rounds = 0;
    let mut phases: BTreeMap<&str, usize> = BTreeMap::new();
    tokio::task::block_in_place(|| {
        while kills < 20 {
            rounds += 1;
            assert!(rounds < 60, "the runs finished before 20 kills: {kills} kills");
            let mut service = Background::spawn(&mut command());
            // Kill after 0, 1 or 2 commits of this run, then a random pause: during a batch's
            // uploads, between objects and manifest, or between manifest and cursors.
            let commits = rng.below(3) as usize;
            wait_until(PATIENCE, "progress before the kill", || {
                let log = service.stderr();
                (log.matches("batch committed").count() >= commits
                    || service.stdout().contains("ingested"))
                .then_some(())
            });
            std::thread::sleep(Duration::from_millis(rng.below(400)));
            let finished = service.stdout().contains("ingested");
            if !finished {
                service.signal("KILL");
                kills += 1;
            }
            service.wait(PATIENCE);
            if !finished {
                *phases.entry(kill_phase(&work.path().join("lake"))).or_insert(0) += 1;
            }
        }
        let last = run(&mut command());
        assert_eq!(last.code, 0, "{}", last.stderr);
        eprintln!(
            "{kills} kills in {rounds} runs ({phases:?}); the last run ingested {}",
            ingested(&last.stdout)
        );

        let listed = lake_cli(work.path(), "lake", &["sessions", "--json"]);
        assert_eq!(listed.code, 0, "{}", listed.stderr);
        assert_each_once(&listed_sessions(&matches(&listed)), &sources.sessions);
        let found = commands_by_session(work.path(), "lake");
        assert_commands_match(&found, &reference, &sources.sessions);
        // The clean run deleted what killed runs left uncommitted: verify names nothing.
        let verified = lake_cli(work.path(), "lake", &["verify"]);
        assert_eq!(verified.code, 0, "verify failed:\n{}{}", verified.stdout, verified.stderr);
        assert!(!verified.stdout.contains("uncommitted"), "{}", verified.stdout);
    });
}

/// MiB of the generated single-line transcript; `SESSIONLAKE_HOSTILE_LINE_MIB=1024` gives the
/// issue's 1 GiB (about four times the default's time in a debug build).
fn hostile_line_mib() -> u64 {
    std::env::var("SESSIONLAKE_HOSTILE_LINE_MIB").ok().and_then(|n| n.parse().ok()).unwrap_or(256)
}

/// Runs `sessionlake-ingest --once --local inputs` in `dir`; returns how it ended and its peak
/// resident set (KiB).
fn ingest_measuring_peak(dir: &Path) -> (sessionlake_tests::Ran, u64) {
    let mut service = Background::spawn(ingest(dir, false).args(["--once", "--local", "inputs"]));
    let mut peak = 0;
    while let Some(rss) = peak_rss_kib(service.pid()) {
        peak = peak.max(rss);
        if service.stdout().contains("ingested") {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    (service.wait(PATIENCE * 5), peak)
}

/// Returns the peak resident set (`VmHWM`, KiB) of process `pid`, if it still runs.
fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[test]
fn test_hostile_corpus_is_quarantined_or_kept_and_every_good_session_is_ingested() {
    let dir = tempfile::tempdir().expect("tempdir");
    let inputs = dir.path().join("inputs");
    sessionlake_tests::copy_tree(&repo_root().join("tests/data/hostile"), &inputs);
    for script in ["generate.py", "README.md"] {
        std::fs::remove_file(inputs.join(script)).expect("remove");
    }
    let python = std::env::var("SESSIONLAKE_TEST_PYTHON").expect("SESSIONLAKE_TEST_PYTHON");
    let line_mib = hostile_line_mib();
    let generated = run(Command::new(python)
        .arg(repo_root().join("tests/data/hostile/generate.py"))
        .arg(&inputs)
        .arg(line_mib.to_string()));
    assert_eq!(generated.code, 0, "{}", generated.stderr);
    // Good sessions in the same run: the examples' transcripts and streams.
    let examples = repo_root().join("examples");
    sessionlake_tests::copy_tree(&examples.join("s3/ssm-logs"), &inputs.join("good"));
    sessionlake_tests::copy_tree(&examples.join("cloudwatch"), &inputs.join("good/cloudwatch"));
    let good = [
        "alice-0123456789abcdef0",
        "alice-ekp6rf9qs5arzcjxsndyvboavi",
        "bob-ilpxvkhghl9vs9ia2xfdyp4dka",
        "carol.diaz-07a16060613c408b5",
    ];
    let kept = [
        "truncated-0123456789abcdef1",
        "invalid-utf8-0123456789abcdef3",
        "nested-escapes-0123456789abcdef4",
        "huge-line-0123456789abcdef8",
        "huge-event-0123456789abcdef9",
    ];
    let quarantined = [
        ("binary-0123456789abcdef2.log", "mostly binary"),
        ("empty-0123456789abcdef5.log", "the object is empty"),
        ("not a session id;rm -rf.log", "is not a session id"),
        ("broken-json-0123456789abcdef6.json", "is not get-log-events JSON"),
        ("wrong-shape-0123456789abcdef7.json", "is not get-log-events JSON"),
        ("bomb.json.gz", "is not JSON"),
    ];

    let (ran, peak) = ingest_measuring_peak(dir.path());
    eprintln!("peak RSS of ingest over the hostile corpus ({line_mib} MiB line): {peak} KiB");
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    // Bounded whatever the line's size: transcripts stream (parsed, then sealed and uploaded in
    // parts), and so do CloudTrail files (the bomb is refused at its first byte).
    let bound_kib = 384 * 1024;
    assert!(peak < bound_kib, "peak RSS {peak} KiB over {bound_kib} KiB");
    assert!(!ran.stderr.contains(SECRET_COMMAND), "command text in the log");

    // Each bad input: a quarantine record whose note names it and says why, and a log line.
    let notes: Vec<String> = super::manifests(dir.path())
        .iter()
        .flat_map(|manifest| manifest["body"]["added"].as_array().cloned().unwrap_or_default())
        .filter(|entry| entry["kind"] == "quarantine")
        .map(|entry| entry["note"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(notes.len(), quarantined.len(), "{notes:#?}");
    for (name, why) in quarantined {
        assert!(
            notes.iter().any(|note| note.contains(name) && note.contains(why)),
            "no quarantine record for {name} saying {why:?}: {notes:#?}"
        );
        let logged = ran
            .stderr
            .lines()
            .any(|line| line.contains("input quarantined") && line.contains(name));
        assert!(logged, "{name} not logged as quarantined:\n{}", ran.stderr);
    }

    // Every good session and every damaged but real one is in the lake, once.
    let (code, rows) = cli_rows(dir.path(), &["sessions"]);
    assert_eq!(code, 0);
    let expected: BTreeSet<String> = good.iter().chain(&kept).map(|id| id.to_string()).collect();
    assert_each_once(&listed_sessions(&rows), &expected);
    let status =
        |id: &str| rows.iter().find(|row| row["session_id"] == id).map(|row| row["status"].clone());
    assert_eq!(status("truncated-0123456789abcdef1"), Some(Value::from("truncated")));
    assert_eq!(status("alice-0123456789abcdef0"), Some(Value::from("complete")));
    assert_verifies(dir.path());
}

/// MiB of the generated plain-JSON CloudTrail file; `SESSIONLAKE_TRAIL_MIB=1100` gives the
/// issue's 1.08 GB (a debug build reads about 12 MiB/s).
fn trail_mib() -> u64 {
    std::env::var("SESSIONLAKE_TRAIL_MIB").ok().and_then(|n| n.parse().ok()).unwrap_or(64)
}

/// A big plain-JSON CloudTrail file is read as a stream: the ingest's peak memory does not grow
/// with it (it read the file whole before, 1.05 GB for a 1.08 GB file), its access events are
/// all ingested, and the sessions of the same run are too.
/// See: issue 18, requirement 7
#[test]
fn test_a_big_plain_trail_file_is_read_in_bounded_memory() {
    use std::io::Write as _;
    let dir = tempfile::tempdir().expect("tempdir");
    let inputs = dir.path().join("inputs");
    sessionlake_tests::copy_tree(&repo_root().join("examples/s3/ssm-logs"), &inputs);
    let trail = inputs.join("cloudtrail/111122223333_CloudTrail_us-east-1_big.json");
    std::fs::create_dir_all(trail.parent().expect("folder")).expect("folder");
    let unrelated = serde_json::json!({"eventVersion": "1.08", "userIdentity": {"type": "AssumedRole",
        "arn": "arn:aws:sts::111122223333:assumed-role/app/i-0a1b2c3d", "accountId": "111122223333"},
        "eventTime": "2026-03-14T09:26:50Z", "eventSource": "s3.amazonaws.com", "eventName": "GetObject",
        "awsRegion": "us-east-1", "sourceIPAddress": "10.0.0.12", "userAgent": "aws-sdk-java/2.20.0",
        "requestParameters": {"bucketName": "data", "key": "part-00001.parquet"}, "responseElements": null,
        "requestID": "REQ", "eventID": "EVENT", "readOnly": true, "eventType": "AwsApiCall",
        "recipientAccountId": "111122223333"})
    .to_string();
    let start = |n: usize| {
        serde_json::json!({"eventID": format!("ev-{n}"), "eventTime": "2026-03-14T09:26:50Z",
            "eventSource": "ssm.amazonaws.com", "eventName": "StartSession",
            "userIdentity": {"type": "IAMUser", "arn": "arn:aws:iam::111122223333:user/bob"},
            "requestParameters": {"target": "i-0fedcba9876543210"},
            "responseElements": {"sessionId": format!("bob-{n:08}0123456789")}})
        .to_string()
    };
    let target = trail_mib() << 20;
    let mut file = std::io::BufWriter::new(std::fs::File::create(&trail).expect("create"));
    file.write_all(b"{\"Records\":[").expect("write");
    let (mut written, mut records, mut starts) = (0_u64, 0_usize, 0_usize);
    while written < target {
        let record = if records.is_multiple_of(1000) {
            starts += 1;
            start(records)
        } else {
            unrelated.clone()
        };
        if records > 0 {
            file.write_all(b",").expect("write");
        }
        file.write_all(record.as_bytes()).expect("write");
        written += record.len() as u64 + 1;
        records += 1;
    }
    file.write_all(b"]}").expect("write");
    file.flush().expect("flush");
    drop(file);

    let (ran, peak) = ingest_measuring_peak(dir.path());
    eprintln!("peak RSS of ingest over a {} MiB plain trail file: {peak} KiB", trail_mib());
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert!(
        ran.stdout.contains(&format!("{starts} access events")),
        "{starts} StartSession events: {}",
        ran.stdout
    );
    assert!(ran.stdout.contains("ingested 2 sessions"), "{}", ran.stdout);
    // The process's own size (about 30 MiB in a debug build) and buffers, not the file's.
    let bound_kib = 56 * 1024;
    assert!(peak < bound_kib, "peak RSS {peak} KiB over {bound_kib} KiB");
}

/// A manifest put killed mid-way on a local lake leaves its part file (`manifest/N.json#1`):
/// the next ingest after the crash deletes it with the other leftovers, and the lake verifies.
/// (The random-kill test hits this only when a kill lands inside a manifest write.)
#[test]
fn test_a_killed_manifest_put_leaves_no_part_file_after_the_next_run() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_sessions(&dir.path().join("inputs"), 2);
    let first = run(ingest(dir.path(), false).args(["--once", "--local", "inputs"]));
    assert_eq!(first.code, 0, "{}", first.stderr);
    let lake = dir.path().join("lake");
    let manifests = files_under(&lake.join("manifest"));
    let next = manifests.len();
    let part = lake.join("manifest").join(format!("{next:020}.json#1"));
    std::fs::write(&part, b"{\"body\": {\"sequen").expect("a part file");
    let now = chrono::Utc::now().to_rfc3339();
    let lease = serde_json::json!({
        "version": 1,
        "writer_id": "killed/4194304",
        "host": sessionlake_storage::lease::host_name(),
        "pid": 4_194_304,
        "acquired_at": now,
        "renewed_at": now,
        "ttl_secs": 3600,
    });
    std::fs::write(lake.join("state/lease.json"), lease.to_string()).expect("a killed run's lease");
    let verified = run(binary("sessionlake", false).current_dir(dir.path()).args([
        "--lake",
        "lake",
        "--keyring",
        "keyring.json",
        "verify",
    ]));
    verified.assert_stdout_holds(1, &[".json#1"]);

    let next_run = run(ingest(dir.path(), false).args(["--once", "--local", "inputs"]));
    assert_eq!(next_run.code, 0, "{}", next_run.stderr);
    assert!(std::fs::metadata(&part).is_err(), "the part file is still there");
    assert_verifies(dir.path());
}
