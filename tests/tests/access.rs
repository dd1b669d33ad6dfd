//! End-to-end: CloudTrail files served from moto's S3 into the `access` table, and what
//! `access`, `sessions`, `search --include-access` and `verify` make of them.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};
use sessionlake_tests::{
    FaultProxy, binary, duckdb, files_under, new_buckets, repo_root, run, s3_client, unique,
};

use crate::{parse_json_lines, put};

const ALICE: &str = "arn:aws:sts::111122223333:assumed-role/Admin/alice";
const BOB: &str = "arn:aws:iam::111122223333:user/bob";
const NODE_A: &str = "i-0a1b2c3d4e5f67890";
const NODE_B: &str = "i-0fedcba9876543210";
/// Run Command text: must never be in plaintext in the lake.
const SCRIPT_CANARY: &str = "cat /etc/shadow # CANARY-RUN-COMMAND-31337";
const TRAIL_DAY: &str = "AWSLogs/111122223333/CloudTrail/us-east-1/2026/03/14";

/// The key of the CloudTrail file `name` of `TRAIL_DAY`, in CloudTrail's layout.
fn trail_key(name: &str) -> String {
    format!("{TRAIL_DAY}/111122223333_CloudTrail_us-east-1_{name}.json.gz")
}

/// Puts `records` gzipped as the CloudTrail file `name` of `TRAIL_DAY` in `bucket`; returns
/// its key.
async fn put_trail_file(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    name: &str,
    records: &Value,
) -> String {
    let key = trail_key(name);
    put(s3, bucket, &key, gzip(records)).await;
    key
}

/// A CloudTrail record in the shape of ssm-log-formats.md §6.
fn record(
    id: &str,
    time: &str,
    source: &str,
    name: &str,
    who: &str,
    request: Value,
    response: Value,
) -> Value {
    let (kind, account) = if who.contains(":user/") {
        ("IAMUser", "111122223333")
    } else {
        ("AssumedRole", "111122223333")
    };
    json!({
        "eventVersion": "1.08",
        "userIdentity": {"type": kind, "principalId": "AIDAEXAMPLE", "arn": who, "accountId": account},
        "eventTime": time, "eventSource": source, "eventName": name, "awsRegion": "us-east-1",
        "sourceIPAddress": "203.0.113.30", "userAgent": "aws-cli/2.15.30",
        "requestParameters": request, "responseElements": response,
        "requestID": format!("req-{id}"), "eventID": id, "readOnly": false,
        "eventType": "AwsApiCall", "managementEvent": true, "recipientAccountId": "111122223333"
    })
}

fn start_session(
    id: &str,
    time: &str,
    who: &str,
    target: &str,
    session: &str,
    document: Option<&str>,
) -> Value {
    let mut request = json!({"target": target});
    if let Some(document) = document {
        request["documentName"] = json!(document);
    }
    if document == Some("AWS-StartPortForwardingSession") {
        request["parameters"] = json!({"portNumber": ["5432"], "localPortNumber": ["15432"]});
    }
    let response = json!({"sessionId": session, "tokenValue": "Value hidden due to security reasons.",
        "streamUrl": format!("wss://ssmmessages.us-east-1.amazonaws.com/v1/data-channel/{session}?role=publish_subscribe")});
    record(id, time, "ssm.amazonaws.com", "StartSession", who, request, response)
}

fn send_ssh_public_key(id: &str, time: &str, who: &str, target: &str) -> Value {
    let request = json!({"instanceId": target, "instanceOSUser": "ec2-user",
        "sshPublicKey": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExample alice"});
    let response = json!({"requestId": format!("ic-{id}"), "success": true});
    record(
        id,
        time,
        "ec2-instance-connect.amazonaws.com",
        "SendSSHPublicKey",
        who,
        request,
        response,
    )
}

fn send_command() -> Value {
    let request = json!({"instanceIds": [NODE_A, NODE_B], "documentName": "AWS-RunShellScript",
        "parameters": {"commands": [SCRIPT_CANARY]}, "interactive": false});
    let response = json!({"command": {"commandId": "5f3a8c1e-0000-4000-8000-000000000001", "instanceIds": [NODE_A, NODE_B]}});
    record(
        "ev-run-command",
        "2026-03-14T11:00:00Z",
        "ssm.amazonaws.com",
        "SendCommand",
        BOB,
        request,
        response,
    )
}

/// A CloudTrail digest file in its real shape (it signs the log files of an hour).
fn digest() -> Value {
    json!({
        "awsAccountId": "111122223333",
        "digestStartTime": "2026-03-14T11:00:00Z",
        "digestEndTime": "2026-03-14T12:00:00Z",
        "digestS3Bucket": "trail",
        "digestS3Object": "AWSLogs/111122223333/CloudTrail-Digest/us-east-1/2026/03/14/x.json.gz",
        "digestPublicKeyFingerprint": "0123456789abcdef0123456789abcdef",
        "digestSignatureAlgorithm": "SHA256withRSA",
        "newestEventTime": "2026-03-14T11:59:59Z",
        "oldestEventTime": "2026-03-14T11:00:00Z",
        "previousDigestS3Bucket": null,
        "previousDigestS3Object": null,
        "previousDigestHashValue": null,
        "previousDigestHashAlgorithm": null,
        "previousDigestSignature": null,
        "logFiles": [{
            "s3Bucket": "trail",
            "s3Object": trail_key("20260314T1100Z_A"),
            "hashValue": "9bd2d5bd7c4e0aa2f3d1c52c1a2e4e7e9f7b6a3c2d1e0f9a8b7c6d5e4f3a2b1c",
            "hashAlgorithm": "SHA-256",
            "newestEventTime": "2026-03-14T11:00:00Z",
            "oldestEventTime": "2026-03-14T09:26:50Z"
        }]
    })
}

fn gzip(document: &Value) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(document.to_string().as_bytes()).expect("gzip");
    encoder.finish().expect("gzip")
}

/// Runs `sessionlake <args> --json` on the local lake in `dir`.
fn cli(dir: &Path, args: &[&str]) -> (i32, Vec<BTreeMap<String, Value>>, Value, String) {
    let ran = run(binary("sessionlake", false).current_dir(dir).args(args).arg("--json"));
    let (rows, summary) = parse_json_lines(&ran.stdout);
    (ran.code, rows, summary, ran.stderr)
}

/// Runs `sessionlake-ingest --once` in `dir` on transcripts under `ssm/` of `source_bucket` and
/// CloudTrail files under `AWSLogs/` of `trail_bucket`.
fn ingest_s3(dir: &Path, source_bucket: &str, trail_bucket: &str) -> sessionlake_tests::Ran {
    run(&mut ingest_s3_command(dir, source_bucket, trail_bucket))
}

/// The command [`ingest_s3`] runs, for more arguments.
fn ingest_s3_command(dir: &Path, source_bucket: &str, trail_bucket: &str) -> Command {
    let mut command = binary("sessionlake-ingest", true);
    command.current_dir(dir).args([
        "--s3",
        &format!("s3://{source_bucket}/ssm/"),
        "--cloudtrail",
        &format!("s3://{trail_bucket}/AWSLogs/"),
    ]);
    command
}

/// Pages through `sessionlake <args>` `limit` rows at a time and returns every row in order;
/// checks that each page reports all matches.
fn page_through(dir: &Path, args: &[&str], limit: usize) -> Vec<BTreeMap<String, Value>> {
    let mut found = Vec::new();
    let mut after: Option<String> = None;
    let mut total = None;
    let limit_text = limit.to_string();
    for page in 0.. {
        assert!(page < 1_000, "paging does not end: {found:?}");
        let mut page_args = args.to_vec();
        page_args.extend(["--limit", &limit_text]);
        if let Some(cursor) = &after {
            page_args.extend(["--after", cursor]);
        }
        let (code, rows, summary, stderr) = cli(dir, &page_args);
        assert!(code == 0 || (code == 1 && rows.is_empty()), "{page_args:?}: {stderr}");
        assert!(rows.len() <= limit, "{rows:#?}");
        if let Some(total) = &total {
            assert_eq!(&summary["matched"], total, "{page_args:?}");
        }
        total = Some(summary["matched"].clone());
        found.extend(rows);
        match summary["next"].as_str() {
            Some(next) => after = Some(next.to_string()),
            None => break,
        }
    }
    found
}

// CloudTrail from S3 into the access table: one trail put in moto's S3 and ingested with
// alice's transcript into a local lake. Setting one up takes well under a second, so each
// behaviour of that lake is a test of its own on a lake of its own.

/// A trail of every kind of access event (with a duplicate, malformed records, a file that is
/// not gzip, a digest file and a CloudWatch Logs subscription's file) and alice's transcript,
/// in moto's S3, ingested once into a local lake.
struct TrailLake {
    /// The working folder of every command; the lake is its `lake/`.
    work: tempfile::TempDir,
    source_bucket: String,
    trail_bucket: String,
    /// What the first ingest printed.
    ingested: sessionlake_tests::Ran,
}

impl TrailLake {
    /// Puts alice's transcript and the trail files in moto's S3 and ingests them once; the
    /// ingest succeeds.
    async fn ingested() -> TrailLake {
        let s3 = s3_client().await;
        let [source_bucket, trail_bucket] = new_buckets(&s3, ["ssm-logs", "trail"]).await;
        // alice's shell has its transcript in S3; every other session has none.
        let transcript = repo_root().join("examples/s3/ssm-logs/alice-0123456789abcdef0.log");
        put(
            &s3,
            &source_bucket,
            "ssm/alice-0123456789abcdef0.log",
            std::fs::read(&transcript).expect("example"),
        )
        .await;

        let mut bad_time = start_session(
            "ev-bad-time",
            "2026-03-14T10:40:00Z",
            ALICE,
            NODE_A,
            "alice-bad0123456789abcdef",
            None,
        );
        bad_time["eventTime"] = json!("yesterday");
        let mut no_id = send_ssh_public_key("ev-no-id", "2026-03-14T10:41:00Z", ALICE, NODE_B);
        if let Some(object) = no_id.as_object_mut() {
            object.remove("eventID");
        }
        let first = json!({"Records": [
            start_session("ev-shell", "2026-03-14T09:26:50Z", ALICE, NODE_A, "alice-0123456789abcdef0", None),
            record("ev-unrelated-1", "2026-03-14T09:27:00Z", "s3.amazonaws.com", "GetObject", ALICE, json!({"bucketName": "b"}), Value::Null),
            record("ev-unrelated-2", "2026-03-14T09:27:01Z", "ssm.amazonaws.com", "DescribeInstanceInformation", ALICE, json!({}), Value::Null),
            start_session("ev-port-forwarding", "2026-03-14T09:40:00Z", ALICE, NODE_A, "alice-portforward0123456789", Some("AWS-StartPortForwardingSession")),
            send_ssh_public_key("ev-key-for-ssh", "2026-03-14T09:49:30Z", ALICE, NODE_A),
            start_session("ev-ssh", "2026-03-14T09:50:00Z", ALICE, NODE_A, "alice-ssh0123456789abcdef", Some("AWS-StartSSHSession")),
            start_session("ev-lost", "2026-03-14T10:10:00Z", BOB, NODE_B, "bob-lost0123456789abcdef0", None),
            record("ev-resume", "2026-03-14T10:20:00Z", "ssm.amazonaws.com", "ResumeSession", BOB,
                json!({"sessionId": "bob-lost0123456789abcdef0"}),
                json!({"sessionId": "bob-lost0123456789abcdef0", "tokenValue": "Value hidden due to security reasons."})),
            record("ev-terminate", "2026-03-14T10:30:00Z", "ssm.amazonaws.com", "TerminateSession", BOB,
                json!({"sessionId": "bob-lost0123456789abcdef0"}), json!({"sessionId": "bob-lost0123456789abcdef0"})),
            send_command(),
            // Malformed: a time that is no time, an event without its id.
            bad_time,
            no_id,
        ]});
        // CloudTrail delivered the Run Command event again in a later file.
        let second = json!({"Records": [
            send_command(),
            send_ssh_public_key("ev-plain-ssh", "2026-03-14T12:00:00Z", BOB, NODE_B),
        ]});
        // The same trail through a CloudWatch Logs subscription.
        let resume = record(
            "ev-resume-2",
            "2026-03-14T12:30:00Z",
            "ssm.amazonaws.com",
            "ResumeSession",
            BOB,
            json!({"sessionId": "bob-lost0123456789abcdef0"}),
            json!({"sessionId": "bob-lost0123456789abcdef0"}),
        );
        let subscription = json!({"messageType": "DATA_MESSAGE", "owner": "111122223333", "logGroup": "trail",
            "logStream": "111122223333_CloudTrail_us-east-1", "subscriptionFilters": ["all"],
            "logEvents": [{"id": "1", "timestamp": 1_773_491_400_000_i64, "message": resume.to_string()}]});
        let files = [
            (trail_key("20260314T1100Z_A"), gzip(&first)),
            (trail_key("20260314T1205Z_B"), gzip(&second)),
            (trail_key("20260314T1235Z_C"), gzip(&subscription)),
            (trail_key("20260314T1300Z_D"), b"\x1f\x8bnot gzip at all".to_vec()),
            // A digest file (log file validation): no event, skipped rather than quarantined.
            (
                "AWSLogs/111122223333/CloudTrail-Digest/us-east-1/2026/03/14/\
                 111122223333_CloudTrail-Digest_us-east-1_trail_us-east-1_20260314T120000Z.json.gz"
                    .to_string(),
                gzip(&digest()),
            ),
        ];
        for (key, body) in &files {
            put(&s3, &trail_bucket, key, body.clone()).await;
        }

        let work = tempfile::tempdir().expect("tempdir");
        let ingested = ingest_s3(work.path(), &source_bucket, &trail_bucket);
        assert_eq!(ingested.code, 0, "{}", ingested.stderr);
        TrailLake { work, source_bucket, trail_bucket, ingested }
    }

    /// The working folder, where `sessionlake` finds the lake.
    fn dir(&self) -> &Path {
        self.work.path()
    }

    /// Runs the ingest again on the same buckets and lake.
    fn ingest(&self) -> sessionlake_tests::Ran {
        ingest_s3(self.dir(), &self.source_bucket, &self.trail_bucket)
    }
}

/// The ingest counts the session, the 10 distinct access events and the file it quarantined;
/// malformed records are skipped with a counted warning naming their file, the file that is not
/// gzip is named, and a digest file is skipped without a word.
#[tokio::test(flavor = "multi_thread")]
async fn test_cloudtrail_ingest_counts_events_and_names_what_it_skipped() {
    let lake = TrailLake::ingested().await;
    let ingested = &lake.ingested;
    ingested.assert_stdout_holds(0, &["ingested 1 sessions", " 10 access events", "1 quarantined"]);
    // Malformed records: skipped with a counted warning naming the file; the bad file is named.
    let warning = ingested
        .stderr
        .lines()
        .find(|line| line.contains("malformed CloudTrail access records skipped"));
    let warning = warning.unwrap_or_else(|| panic!("no warning in:\n{}", ingested.stderr));
    assert!(
        warning.contains("20260314T1100Z_A.json.gz") && warning.contains("count=2"),
        "{warning}"
    );
    assert!(ingested.stderr.contains("20260314T1300Z_D.json.gz"), "{}", ingested.stderr);
    assert!(!ingested.stderr.contains("CloudTrail-Digest"), "{}", ingested.stderr);
}

/// `access` lists every event once (the Run Command event CloudTrail delivered twice, once),
/// and pages of 2 list the same events in the same order.
#[tokio::test(flavor = "multi_thread")]
async fn test_cloudtrail_access_lists_every_event_once_and_pages_in_order() {
    let lake = TrailLake::ingested().await;
    let (code, rows, summary, stderr) = cli(lake.dir(), &["access"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(summary["matched"], json!(10), "{rows:#?}");
    let ids: Vec<&str> = rows.iter().map(|row| row["event_id"].as_str().expect("id")).collect();
    let mut unique_ids = ids.clone();
    unique_ids.sort();
    unique_ids.dedup();
    assert_eq!(unique_ids.len(), ids.len(), "{ids:?}");
    // Paging: 2 at a time, every event exactly once, in the same order.
    let paged = page_through(lake.dir(), &["access"], 2);
    let paged: Vec<&str> = paged.iter().map(|row| row["event_id"].as_str().expect("id")).collect();
    assert_eq!(paged, ids, "pages of 2");
}

/// `sql` reads the access table with its encrypted column opened, and orders across files
/// whose times overlap.
#[tokio::test(flavor = "multi_thread")]
async fn test_cloudtrail_sql_reads_the_access_table_opened_and_in_order() {
    let lake = TrailLake::ingested().await;
    let sql = "SELECT count(*) AS n, max(strpos(parameters, 'CANARY')) > 0 AS opened FROM access";
    let counted = run(binary("sessionlake", false)
        .current_dir(lake.dir())
        .args(["sql", sql, "--format", "csv"]));
    assert_eq!(counted.code, 0, "{}", counted.stderr);
    assert_eq!(counted.stdout, "n,opened\n10,true\n");
    // ORDER BY … LIMIT across files whose times overlap: in order (DataFusion must not take
    // the files' own sort order for the table's).
    let first = run(binary("sessionlake", false).current_dir(lake.dir()).args([
        "sql",
        "SELECT event_id FROM access ORDER BY event_time DESC, event_id LIMIT 2",
        "--format",
        "csv",
    ]));
    assert_eq!(first.stdout, "event_id\nev-resume-2\nev-plain-ssh\n", "{}", first.stderr);
}

/// The Run Command event is one row with its principal, targets and document, and its script
/// decrypted, in JSON and in CSV.
#[tokio::test(flavor = "multi_thread")]
async fn test_cloudtrail_a_run_command_event_shows_its_script_decrypted() {
    let lake = TrailLake::ingested().await;
    let (_, rows, _, _) = cli(lake.dir(), &["access", "--kind", "run-command"]);
    assert_eq!(rows.len(), 1, "{rows:#?}");
    let run_command = &rows[0];
    assert_eq!(run_command["principal"], json!(BOB));
    assert_eq!(run_command["targets"], json!(format!("{NODE_A},{NODE_B}")));
    assert_eq!(run_command["document_name"], json!("AWS-RunShellScript"));
    assert!(
        run_command["parameters"].as_str().is_some_and(|p| p.contains(SCRIPT_CANARY)),
        "{run_command:?}"
    );
    // CSV: a header, then the rows, the script decrypted.
    let csv_out = run(binary("sessionlake", false).current_dir(lake.dir()).args([
        "access",
        "--kind",
        "run-command",
        "--format",
        "csv",
    ]));
    assert_eq!(csv_out.code, 0, "{}", csv_out.stderr);
    let mut reader = csv::Reader::from_reader(csv_out.stdout.as_bytes());
    let header = reader.headers().expect("header").clone();
    let records: Vec<csv::StringRecord> = reader.records().map(|r| r.expect("record")).collect();
    let field = |name: &str| {
        let index = header.iter().position(|h| h == name).unwrap_or_else(|| panic!("{header:?}"));
        records[0].get(index).expect("field").to_string()
    };
    assert_eq!(records.len(), 1, "{}", csv_out.stdout);
    assert_eq!(field("event_id"), "ev-run-command");
    assert_eq!(field("targets"), format!("{NODE_A},{NODE_B}"));
    assert!(field("parameters").contains(SCRIPT_CANARY), "{}", csv_out.stdout);
}

/// `access` filters by target and kinds, by principal (its ARN or a part of it), and by time
/// (`--since` inclusive, `--until` exclusive); the table counts what a filter kept.
#[tokio::test(flavor = "multi_thread")]
async fn test_cloudtrail_access_filters_by_target_kind_principal_and_time() {
    let lake = TrailLake::ingested().await;
    let (_, rows, _, _) = cli(
        lake.dir(),
        &["access", "--target", NODE_B, "--kind", "ec2-instance-connect", "--kind", "ssm-session"],
    );
    let kinds: Vec<(&str, &str)> = rows
        .iter()
        .map(|row| (row["kind"].as_str().expect("kind"), row["event_id"].as_str().expect("id")))
        .collect();
    assert_eq!(kinds, vec![("ssm-session", "ev-lost"), ("ec2-instance-connect", "ev-plain-ssh")]);
    assert_eq!(rows[1]["os_user"], json!("ec2-user"));
    let (code, _, _, _) = cli(lake.dir(), &["access", "--principal", "carol"]);
    assert_eq!(code, 1);
    for principal in [ALICE, "alice"] {
        let (code, rows, _, stderr) = cli(lake.dir(), &["access", "--principal", principal]);
        assert_eq!(code, 0, "{stderr}");
        let ids: Vec<&str> = rows.iter().map(|row| row["event_id"].as_str().expect("id")).collect();
        assert_eq!(ids, vec!["ev-shell", "ev-port-forwarding", "ev-key-for-ssh", "ev-ssh"]);
        assert!(rows.iter().all(|row| row["principal"] == json!(ALICE)), "{rows:#?}");
    }
    // --since is inclusive, --until exclusive (ev-plain-ssh is at 12:00).
    let (_, rows, _, _) = cli(
        lake.dir(),
        &["access", "--since", "2026-03-14T10:00:00Z", "--until", "2026-03-14T12:00:00Z"],
    );
    let ids: Vec<&str> = rows.iter().map(|row| row["event_id"].as_str().expect("id")).collect();
    assert_eq!(ids, vec!["ev-lost", "ev-resume", "ev-terminate", "ev-run-command"]);
    let table = run(binary("sessionlake", false).current_dir(lake.dir()).args([
        "access",
        "--kind",
        "ssm-session",
    ]));
    assert!(
        table.stdout.contains("AWS-StartPortForwardingSession")
            && table.stderr.contains("4 access events"),
        "{}{}",
        table.stdout,
        table.stderr
    );
}

/// `sessions` lists each session with its transcript, or why there is none: port forwarding,
/// an Instance Connect session (its OS user the pushed one), a transcript not delivered.
#[tokio::test(flavor = "multi_thread")]
async fn test_cloudtrail_sessions_say_why_a_transcript_is_missing() {
    let lake = TrailLake::ingested().await;
    let (code, rows, _, stderr) = cli(lake.dir(), &["sessions"]);
    assert_eq!(code, 0, "{stderr}");
    let status: Vec<(Value, Value, Value)> = rows
        .iter()
        .map(|row| (row["session_id"].clone(), row["transcript"].clone(), row["missing"].clone()))
        .collect();
    assert_eq!(
        status,
        vec![
            (json!("alice-0123456789abcdef0"), json!(true), Value::Null),
            (json!("alice-portforward0123456789"), json!(false), json!("port-forwarding")),
            (json!("alice-ssh0123456789abcdef"), json!(false), json!("instance-connect")),
            (json!("bob-lost0123456789abcdef0"), json!(false), json!("not-delivered")),
            (Value::Null, json!(false), json!("instance-connect")),
        ]
    );
    assert_eq!(rows[4]["run_as"], json!("ec2-user"));
    assert_eq!(rows[4]["target"], json!(NODE_B));
    assert_eq!(rows[2]["run_as"], json!("ec2-user"), "the SSH session runs as the pushed user");
}

/// Why a session has no transcript does not depend on the filters of `sessions`: the key push
/// has no session id, came before `--since`, and the StartSession has no OS user.
#[tokio::test(flavor = "multi_thread")]
async fn test_cloudtrail_why_a_transcript_is_missing_does_not_depend_on_the_filters() {
    let lake = TrailLake::ingested().await;
    let ssh = "alice-ssh0123456789abcdef";
    for filters in [
        vec!["--session", ssh],
        vec!["--since", "2026-03-14T09:49:45Z", "--until", "2026-03-14T09:55:00Z"],
        vec!["--run-as", "ec2-user", "--target", NODE_A],
        vec!["--principal", "alice", "--session", ssh],
    ] {
        let mut args = vec!["sessions"];
        args.extend(&filters);
        let (code, rows, _, stderr) = cli(lake.dir(), &args);
        assert_eq!(code, 0, "{filters:?}: {stderr}");
        let status: Vec<(Value, Value)> =
            rows.iter().map(|row| (row["session_id"].clone(), row["missing"].clone())).collect();
        assert_eq!(status, vec![(json!(ssh), json!("instance-connect"))], "{filters:?}");
    }
}

/// A transcript wait longer than the events' age: the lost transcript is pending, it may
/// still come.
#[tokio::test(flavor = "multi_thread")]
async fn test_cloudtrail_a_lost_transcript_is_pending_within_the_transcript_wait() {
    let lake = TrailLake::ingested().await;
    let (_, rows, _, _) = cli(
        lake.dir(),
        &["sessions", "--session", "bob-lost0123456789abcdef0", "--transcript-wait", "5000d"],
    );
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["missing"], json!("pending"));
}

/// `search --include-access`: who touched node A, commands and access events in one list in
/// time order, and pages of 3 give the same rows, each once.
#[tokio::test(flavor = "multi_thread")]
async fn test_cloudtrail_search_include_access_lists_commands_and_events_in_time_order() {
    let lake = TrailLake::ingested().await;
    let (code, rows, _, stderr) = cli(
        lake.dir(),
        &["search", "--target", NODE_A, "--include-access", "--until", "2026-03-15"],
    );
    assert_eq!(code, 0, "{stderr}");
    let mut kinds: Vec<&str> = rows.iter().map(|row| row["kind"].as_str().expect("kind")).collect();
    kinds.dedup();
    assert_eq!(
        kinds,
        vec![
            "ssm-session",
            "command",
            "ssm-session",
            "ec2-instance-connect",
            "ssm-session",
            "run-command"
        ],
        "{rows:#?}"
    );
    let times: Vec<&str> = rows.iter().map(|row| row["time"].as_str().expect("time")).collect();
    assert!(times.windows(2).all(|pair| pair[0] <= pair[1]), "{times:?}");
    // Paged 3 at a time: the same rows, each once.
    let row_key = |row: &BTreeMap<String, Value>| {
        format!("{}|{}|{}|{}", row["kind"], row["session_id"], row["seq"], row["event_id"])
    };
    let all: Vec<String> = rows.iter().map(row_key).collect();
    let search = ["search", "--target", NODE_A, "--include-access", "--until", "2026-03-15"];
    let paged: Vec<String> = page_through(lake.dir(), &search, 3).iter().map(row_key).collect();
    assert_eq!(paged, all);
}

/// The lake: access files committed and verified, the bad trail file quarantined, no script
/// in plaintext, DuckDB reads them.
#[tokio::test(flavor = "multi_thread")]
async fn test_cloudtrail_the_lake_holds_access_files_without_the_script_and_verifies() {
    let lake = TrailLake::ingested().await;
    let dir = lake.dir().join("lake");
    let stored = files_under(&dir);
    assert!(stored.iter().any(|p| p.starts_with("access/dt=2026-03-14")), "{stored:?}");
    assert!(stored.iter().any(|p| p.starts_with("quarantine/cloudtrail")), "{stored:?}");
    for path in &stored {
        let bytes = std::fs::read(dir.join(path)).expect("read");
        assert!(
            bytes.windows(SCRIPT_CANARY.len()).all(|w| w != SCRIPT_CANARY.as_bytes()),
            "{path:?} holds the script"
        );
    }
    let verified = run(binary("sessionlake", false).current_dir(lake.dir()).args(["verify"]));
    assert_eq!(verified.code, 0, "{}{}", verified.stdout, verified.stderr);
    let counted = duckdb(
        &dir,
        "SELECT count(*), count(DISTINCT event_id), count(DISTINCT kind) FROM read_parquet('access/**/*.parquet', hive_partitioning = true)",
    );
    assert_eq!(counted, vec![json!([10, 10, 5])]);
}

/// A second run reads no CloudTrail file again and writes nothing.
#[tokio::test(flavor = "multi_thread")]
async fn test_cloudtrail_a_second_run_reads_no_trail_file_again() {
    let lake = TrailLake::ingested().await;
    let again = lake.ingest();
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert!(
        again.stdout.contains("0 access events") && again.stdout.contains("0 commits"),
        "{}",
        again.stdout
    );
}

/// Tampering with an access file is named by verify, and ingest still starts: the unreadable
/// file is reported, not fatal.
#[tokio::test(flavor = "multi_thread")]
async fn test_cloudtrail_a_tampered_access_file_is_named_by_verify_and_ingest_still_runs() {
    let lake = TrailLake::ingested().await;
    let dir = lake.dir().join("lake");
    let stored = files_under(&dir);
    let access_file = stored.iter().find(|p| p.starts_with("access")).expect("access file");
    std::fs::write(dir.join(access_file), b"PAR1").expect("tamper");
    let verified =
        run(binary("sessionlake", false).current_dir(lake.dir()).args(["verify", "--json"]));
    assert_eq!(verified.code, 1);
    assert!(
        verified.stdout.contains("altered-object")
            && verified.stdout.contains(&*access_file.to_string_lossy()),
        "{}",
        verified.stdout
    );
    // Ingest still starts: the unreadable file is reported, not fatal.
    let after = lake.ingest();
    assert_eq!(after.code, 0, "{}", after.stderr);
    assert!(after.stderr.contains("access file unreadable"), "{}", after.stderr);
}

/// CloudTrail's `StartSession` delivered after the transcript was ingested: the session gets a
/// new version with the CloudTrail facts, which replaces the stored one (one row), and a
/// CloudTrail file read again rewrites nothing.
// See: issue 4, item 4 (enrichment that arrives after the transcript updates the session)
#[tokio::test(flavor = "multi_thread")]
async fn test_cloudtrail_after_the_transcript_updates_the_session() {
    const SESSION: &str = "alice-0123456789abcdef0";
    let (s3, source_bucket, trail_bucket) = buckets_with_alice("late").await;

    let work = tempfile::tempdir().expect("tempdir");
    let ingest = || ingest_s3(work.path(), &source_bucket, &trail_bucket);
    let first = ingest();
    assert_eq!(first.code, 0, "{}", first.stderr);
    assert!(first.stdout.contains("ingested 1 sessions"), "{}", first.stdout);
    let (code, rows, _, stderr) = cli(work.path(), &["sessions", "--session", SESSION]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(rows.len(), 1, "{rows:#?}");
    assert_eq!(rows[0]["principal"], Value::Null, "an S3 transcript does not name its principal");
    let command_count = rows[0]["command_count"].clone();
    let (code, _, _, _) = cli(work.path(), &["search", "--principal", ALICE]);
    assert_eq!(code, 1, "nobody is known to have run anything yet");

    // CloudTrail delivers the StartSession later (with an unrelated event).
    let late = json!({"Records": [
        start_session("ev-late-start", "2026-03-14T09:26:50Z", ALICE, NODE_A, SESSION, None),
        send_ssh_public_key("ev-late-push", "2026-03-14T09:30:00Z", BOB, NODE_B),
    ]});
    let trail_key = put_trail_file(&s3, &trail_bucket, "20260314T0935Z_L", &late).await;
    let second = ingest();
    assert_eq!(second.code, 0, "{}", second.stderr);
    assert!(
        second.stdout.contains("ingested 1 sessions")
            && second.stdout.contains("2 access events")
            && second.stdout.contains("1 replaced")
            && second.stdout.contains("1 commits"),
        "{}",
        second.stdout
    );

    // One row, with CloudTrail's facts; the commands carry them too.
    let (code, rows, _, stderr) = cli(work.path(), &["sessions", "--session", SESSION]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(rows.len(), 1, "{rows:#?}");
    let row = &rows[0];
    assert_eq!(row["principal"], json!(ALICE), "{row:#?}");
    assert_eq!(row["target"], json!(NODE_A), "{row:#?}");
    assert!(
        row["started_at"]
            .as_str()
            .is_some_and(|t| t.starts_with("2026-03-14") && t.contains("09:26:50")),
        "{row:#?}"
    );
    assert_eq!(row["command_count"], command_count, "the same transcript, the same commands");
    let (code, rows, summary, stderr) = cli(work.path(), &["search", "--principal", ALICE]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(summary["matched"], command_count, "{rows:#?}");
    assert!(
        rows.iter().all(|row| row["session_id"] == json!(SESSION)
            && row["principal"] == json!(ALICE)
            && row["target"] == json!(NODE_A)
            && row["time"].as_str().is_some_and(|t| t.starts_with("2026-03-14"))),
        "{rows:#?}"
    );
    let verified = run(binary("sessionlake", false).current_dir(work.path()).args(["verify"]));
    assert_eq!(verified.code, 0, "{}{}", verified.stdout, verified.stderr);

    // The same CloudTrail file rewritten (a new ETag): read again, the session is complete
    // already and is not rewritten.
    let mut again = late.clone();
    again["Records"][1]["eventID"] = json!("ev-late-push-2");
    put(&s3, &trail_bucket, &trail_key, gzip(&again)).await;
    let third = ingest();
    assert_eq!(third.code, 0, "{}", third.stderr);
    assert!(
        third.stdout.contains("ingested 0 sessions") && third.stdout.contains("0 replaced"),
        "{}",
        third.stdout
    );
    let (_, rows, _, _) = cli(work.path(), &["sessions", "--session", SESSION]);
    assert_eq!(rows.len(), 1, "{rows:#?}");

    // A forged StartSession for the same session (a new event id, another principal, target
    // and time) from whoever can write to the trail bucket: the session keeps its attribution,
    // both events stay in `access`, and `sessions` flags the session.
    let forged = json!({"Records": [
        start_session("ev-forged-start", "2026-03-14T08:00:00Z", BOB, NODE_B, SESSION, None),
    ]});
    put_trail_file(&s3, &trail_bucket, "20260314T0940Z_F", &forged).await;
    let fourth = ingest();
    assert_eq!(fourth.code, 0, "{}", fourth.stderr);
    assert!(fourth.stdout.contains("0 replaced"), "{}", fourth.stdout);
    assert!(fourth.stderr.contains("keeps its first attribution"), "{}", fourth.stderr);
    let (_, rows, _, _) = cli(work.path(), &["sessions", "--session", SESSION]);
    assert_eq!(rows.len(), 1, "{rows:#?}");
    assert_eq!(rows[0]["principal"], json!(ALICE), "{rows:#?}");
    assert_eq!(rows[0]["target"], json!(NODE_A), "{rows:#?}");
    assert_eq!(rows[0]["status"], json!("conflict"), "{rows:#?}");
    let (code, rows, _, _) = cli(work.path(), &["search", "--principal", BOB]);
    assert_eq!(code, 1, "nothing re-attributed to the forger's principal: {rows:#?}");
    // A restart (the events read back from `access`) does not re-attribute it either.
    let fifth = ingest();
    assert_eq!(fifth.code, 0, "{}", fifth.stderr);
    let (_, rows, _, _) = cli(work.path(), &["sessions", "--session", SESSION]);
    assert_eq!(rows[0]["principal"], json!(ALICE), "{rows:#?}");
}

/// Whoever can write to the CloudTrail bucket overwrites a file ingest has read (a new ETag):
/// without some of its events, with one of them forged under its event id (another principal
/// and target), and with a new event. Nothing read before leaves the lake or changes: the
/// events stay in `access` as first read, the session keeps its attribution, ingest warns that
/// the file changed, and only the new event is added. The same after a restart (what the lake
/// holds is read back from `access`).
#[tokio::test(flavor = "multi_thread")]
async fn test_a_trail_file_overwritten_after_it_was_read_loses_no_event() {
    const SESSION: &str = "alice-0123456789abcdef0";
    let (s3, source_bucket, trail_bucket) = buckets_with_alice("overwrite").await;
    let genuine = json!({"Records": [
        start_session("ev-start", "2026-03-14T09:26:50Z", ALICE, NODE_A, SESSION, None),
        send_ssh_public_key("ev-push", "2026-03-14T09:30:00Z", BOB, NODE_B),
    ]});
    let trail_key = put_trail_file(&s3, &trail_bucket, "20260314T0935Z_O", &genuine).await;
    let work = tempfile::tempdir().expect("tempdir");
    let ingest = || ingest_s3(work.path(), &source_bucket, &trail_bucket);
    let first = ingest();
    assert_eq!(first.code, 0, "{}", first.stderr);
    assert!(first.stdout.contains(" commands, 2 access events"), "{}", first.stdout);
    // Each event once (no row twice), with its principal.
    let events = || {
        let (code, rows, _, stderr) = cli(work.path(), &["access"]);
        assert_eq!(code, 0, "{stderr}");
        let events = rows
            .iter()
            .map(|row| {
                let text = |name: &str| row[name].as_str().unwrap_or_default().to_string();
                (text("event_id"), text("principal"))
            })
            .collect::<BTreeMap<String, String>>();
        assert_eq!(events.len(), rows.len(), "{rows:#?}");
        events
    };
    let read_first = events();
    assert_eq!(
        read_first,
        BTreeMap::from([("ev-push".into(), BOB.into()), ("ev-start".into(), ALICE.into())])
    );
    let attributed = || {
        let (code, rows, _, stderr) = cli(work.path(), &["sessions", "--session", SESSION]);
        assert_eq!(code, 0, "{stderr}");
        assert_eq!(rows.len(), 1, "{rows:#?}");
        (rows[0]["principal"].clone(), rows[0]["target"].clone())
    };
    assert_eq!(attributed(), (json!(ALICE), json!(NODE_A)));

    // The overwrite: `ev-push` gone, `ev-start` forged for bob on another node, `ev-new` added.
    let overwritten = json!({"Records": [
        start_session("ev-start", "2026-03-14T08:00:00Z", BOB, NODE_B, SESSION, None),
        send_ssh_public_key("ev-new", "2026-03-14T09:40:00Z", BOB, NODE_A),
    ]});
    put(&s3, &trail_bucket, &trail_key, gzip(&overwritten)).await;
    let second = ingest();
    assert_eq!(second.code, 0, "{}", second.stderr);
    assert!(second.stdout.contains(" commands, 1 access events"), "{}", second.stdout);
    let warning = second
        .stderr
        .lines()
        .find(|line| line.contains("CloudTrail file changed after it was read"))
        .unwrap_or_else(|| panic!("no warning in:\n{}", second.stderr));
    assert!(
        warning.contains("20260314T0935Z_O.json.gz")
            && warning.contains("known=2")
            && warning.contains("missing=1")
            && warning.contains("altered=1")
            && warning.contains("added=1"),
        "{warning}"
    );
    let mut expected = read_first.clone();
    expected.insert("ev-new".into(), BOB.into());
    assert_eq!(events(), expected, "what was read first is all there, as it was read");
    assert_eq!(attributed(), (json!(ALICE), json!(NODE_A)), "never re-attributed");

    // After a restart, a third overwrite with the new event only: nothing goes, nothing added.
    let cut = json!({"Records": [
        send_ssh_public_key("ev-new", "2026-03-14T09:40:00Z", BOB, NODE_A),
    ]});
    put(&s3, &trail_bucket, &trail_key, gzip(&cut)).await;
    let third = ingest();
    third.assert_stderr_holds(
        0,
        &["CloudTrail file changed after it was read", "known=3", "missing=2"],
    );
    assert!(third.stdout.contains(" commands, 0 access events"), "{}", third.stdout);
    assert_eq!(events(), expected);
    assert_eq!(attributed(), (json!(ALICE), json!(NODE_A)));
    let verified = run(binary("sessionlake", false).current_dir(work.path()).args(["verify"]));
    assert_eq!(verified.code, 0, "{}{}", verified.stdout, verified.stderr);

    // Put back with every event the lake holds from it (a new ETag, nothing new or missing):
    // read again, no warning, nothing written.
    let whole = json!({"Records": [
        start_session("ev-start", "2026-03-14T09:26:50Z", ALICE, NODE_A, SESSION, None),
        send_ssh_public_key("ev-push", "2026-03-14T09:30:00Z", BOB, NODE_B),
        send_ssh_public_key("ev-new", "2026-03-14T09:40:00Z", BOB, NODE_A),
    ]});
    put(&s3, &trail_bucket, &trail_key, gzip(&whole)).await;
    let fourth = ingest();
    assert_eq!(fourth.code, 0, "{}", fourth.stderr);
    assert!(fourth.stdout.contains(" commands, 0 access events"), "{}", fourth.stdout);
    assert!(!fourth.stderr.contains("changed after it was read"), "{}", fourth.stderr);
    assert_eq!(events(), expected);
}

/// Whoever can write to the session-log bucket delivers a transcript under a session's id
/// before the real one arrives (`ssm/aa-forged/<id>.log`, without the real `rm -rf`): search
/// lists the delivery read first, but never lets it hide the other. The matches of the real
/// delivery are counted, named in a warning and in the JSON summary (`unlisted`), and the
/// search is a match (exit 0), not "nothing found".
#[tokio::test(flavor = "multi_thread")]
async fn test_a_delivery_put_first_never_hides_the_real_one_from_search() {
    const SESSION: &str = "alice-0123456789abcdef0";
    let s3 = s3_client().await;
    let [source_bucket, trail_bucket] = new_buckets(&s3, ["first-logs", "first-trail"]).await;
    let real = std::fs::read(repo_root().join(format!("examples/s3/ssm-logs/{SESSION}.log")))
        .expect("example");
    // The real transcript with its `rm -rf` made an `ls -la` (same length, same session), a
    // day earlier: its files sort first, so that search lists it (which delivery is listed
    // otherwise hangs on a hash of the source object's name).
    let text = String::from_utf8(real.clone()).expect("text");
    assert_eq!(text.matches("rm -rf").count(), 1);
    let forged = text.replace("rm -rf", "ls -la").replace("2026-03-14", "2026-03-13").into_bytes();
    put(&s3, &source_bucket, &format!("ssm/aa-forged/{SESSION}.log"), forged).await;
    let work = tempfile::tempdir().expect("tempdir");
    let ingest = || ingest_s3(work.path(), &source_bucket, &trail_bucket);
    let first = ingest();
    assert_eq!(first.code, 0, "{}", first.stderr);
    put(&s3, &source_bucket, &format!("ssm/{SESSION}.log"), real).await;
    let second = ingest();
    assert_eq!(second.code, 0, "{}", second.stderr);

    let searched = run(binary("sessionlake", false).current_dir(work.path()).args([
        "search",
        "--command",
        "rm -rf",
        "--json",
    ]));
    assert_eq!(searched.code, 0, "a match, though not listed: {}", searched.stderr);
    let (rows, summary) = parse_json_lines(&searched.stdout);
    assert!(rows.is_empty(), "the delivery read first has no rm -rf: {rows:#?}");
    assert_eq!(summary["unlisted"]["matched"], json!(1), "{summary}");
    assert_eq!(summary["unlisted"]["sessions"], json!([SESSION]), "{summary}");
    assert!(
        searched.stderr.contains("1 more matching commands are in deliveries not listed")
            && searched.stderr.contains(SESSION),
        "{}",
        searched.stderr
    );
    // And from the day of the real one: the real delivery is dated by its own row, not by the
    // forged one's earlier day.
    let (code, rows, summary, stderr) =
        cli(work.path(), &["search", "--command", "rm -rf", "--since", "2026-03-14T00:00:00Z"]);
    assert_eq!((code, rows.len()), (0, 0), "{stderr}");
    assert_eq!(summary["unlisted"]["matched"], json!(1), "{summary}");
    // The same for one session, and in a table.
    let one = run(binary("sessionlake", false).current_dir(work.path()).args([
        "search",
        "rm -rf",
        "--session",
        SESSION,
    ]));
    assert_eq!(one.code, 0, "{}", one.stderr);
    assert!(one.stderr.contains("deliveries not listed"), "{}", one.stderr);
    // A search the other delivery does not match either says nothing of it.
    let (code, _, summary, stderr) = cli(work.path(), &["search", "--command", "no-such-thing"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(summary.get("unlisted").is_none() && !stderr.contains("not listed"), "{stderr}");
}

/// A session streamed to CloudWatch Logs and uploaded to S3 is searched in its S3 transcript
/// (the preferred delivery). The stream tells what the transcript lacks: whoever writes the
/// session-log bucket (the instance) rewrites the transcript without `cat notes.txt`, and a
/// search for it lists nothing but counts and names the match in the stream (exit 0, a
/// warning). The same two deliveries agreeing give no such count, nor do the commands the
/// forged transcript still holds.
#[tokio::test(flavor = "multi_thread")]
async fn test_a_transcript_rewritten_at_its_source_never_hides_what_the_stream_recorded() {
    const BOB: &str = "bob-ilpxvkhghl9vs9ia2xfdyp4dka";
    let s3 = s3_client().await;
    let logs = aws_sdk_cloudwatchlogs::Client::new(&sessionlake_tests::sdk_config().await);
    let [source_bucket, trail_bucket] = new_buckets(&s3, ["twice-logs", "twice-trail"]).await;
    let group = format!("/ssm/{}", unique("twice"));
    sessionlake_tests::put_example_stream(&logs, &group, BOB).await;
    let real = std::fs::read(repo_root().join(format!("corpus/{BOB}/s3.log"))).expect("corpus");
    let text = String::from_utf8(real.clone()).expect("text");
    assert_eq!(text.matches("cat notes.txt").count(), 1);
    let key = format!("ssm/{BOB}.log");
    put(&s3, &source_bucket, &key, real).await;
    let work = tempfile::tempdir().expect("tempdir");
    let ingest = || {
        let mut command = ingest_s3_command(work.path(), &source_bucket, &trail_bucket);
        run(command.args(["--cloudwatch", &group]))
    };
    let first = ingest();
    assert_eq!(first.code, 0, "{}", first.stderr);
    let (code, rows, _, stderr) = cli(work.path(), &["sessions", "--session", BOB]);
    assert_eq!(code, 0, "{stderr}");
    let sources: BTreeSet<&str> = rows.iter().filter_map(|row| row["source"].as_str()).collect();
    assert_eq!(sources, BTreeSet::from(["cloudwatch-stream", "s3"]), "{rows:#?}");

    // Both deliveries agree: every command listed once, nothing unlisted.
    let (code, rows, summary, stderr) = cli(work.path(), &["search", "--session", BOB]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(rows.len(), 9, "{rows:#?}");
    assert!(summary.get("unlisted").is_none() && !stderr.contains("not listed"), "{stderr}");

    // The transcript rewritten at its source and delivered again (it replaces its own version).
    let forged = text.replace("cat notes.txt", "cat index.txt").into_bytes();
    put(&s3, &source_bucket, &key, forged).await;
    let second = ingest();
    assert_eq!(second.code, 0, "{}", second.stderr);
    assert!(second.stdout.contains("1 replaced"), "the rewritten transcript replaced its own");
    let (code, rows, summary, stderr) = cli(work.path(), &["search", "--command", "notes\\.txt"]);
    assert_eq!(code, 0, "a match, though not listed: {stderr}");
    assert!(rows.is_empty(), "the transcript read has no cat notes.txt: {rows:#?}");
    assert_eq!(summary["unlisted"]["matched"], json!(1), "{summary}");
    assert_eq!(summary["unlisted"]["sessions"], json!([BOB]), "{summary}");
    assert!(
        stderr.contains("1 more matching commands are in deliveries not listed")
            && stderr.contains(BOB),
        "{stderr}"
    );
    // Every command: the one the transcript lacks is the only one unlisted.
    let (code, rows, summary, stderr) = cli(work.path(), &["search", "--session", BOB]);
    assert_eq!(code, 0, "{stderr}");
    let commands: Vec<&str> = rows.iter().filter_map(|row| row["command"].as_str()).collect();
    assert!(commands.contains(&"cat index.txt"), "{commands:?}");
    assert_eq!(summary["unlisted"]["matched"], json!(1), "{summary}");
    // A search the stream matches no more than the transcript says nothing of it.
    let (code, rows, summary, stderr) = cli(work.path(), &["search", "--command", "id -un"]);
    assert_eq!((code, rows.len()), (0, 1), "{stderr}");
    assert!(summary.get("unlisted").is_none() && !stderr.contains("not listed"), "{stderr}");
    // `show` shows the transcript and names the stream that differs; `--source` shows it.
    let (code, rows, summary, stderr) = cli(work.path(), &["show", BOB]);
    assert_eq!((code, rows.len()), (0, 9), "{stderr}");
    assert_eq!(summary["source"], json!("s3"), "{summary}");
    assert_eq!(
        summary["unlisted"],
        json!([{"source": "cloudwatch-stream", "matched": 1}]),
        "{summary}"
    );
    assert!(stderr.contains("the cloudwatch-stream delivery of"), "{stderr}");
    let (code, rows, summary, stderr) =
        cli(work.path(), &["show", BOB, "--source", "cloudwatch-stream"]);
    assert_eq!(code, 0, "{stderr}");
    let commands: Vec<&str> = rows.iter().filter_map(|row| row["command"].as_str()).collect();
    assert!(commands.contains(&"cat notes.txt"), "{commands:?}");
    assert_eq!(summary["source"], json!("cloudwatch-stream"), "{summary}");
    // And from the stream, the transcript holds what the stream lacks: the forged command.
    assert_eq!(summary["unlisted"], json!([{"source": "s3", "matched": 1}]), "{summary}");
    let (code, _, _, stderr) = cli(work.path(), &["show", BOB, "--source", "local"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("delivered by s3, cloudwatch-stream"), "{stderr}");
    // An evidence bundle of the transcript says what the stream holds that it lacks, in its
    // README and its viewer; `--source` exports the stream.
    let export = |out: &str, source: Option<&str>| {
        let mut command = binary("sessionlake", false);
        command.current_dir(work.path()).args(["export", BOB, "--out", out]);
        if let Some(source) = source {
            command.args(["--source", source]);
        }
        let ran = run(&mut command);
        assert_eq!(ran.code, 0, "{}", ran.stderr);
        let read = |file: &str| {
            std::fs::read_to_string(work.path().join(out).join(file)).expect("bundle file")
        };
        (ran.stderr, read("README.txt"), read("index.html"), read("commands.jsonl"))
    };
    let (stderr, readme, page, commands) = export("from-s3", None);
    assert!(stderr.contains("the cloudwatch-stream delivery of"), "{stderr}");
    assert!(readme.contains("this bundle holds the s3 delivery."), "{readme}");
    assert!(
        readme.contains("The cloudwatch-stream delivery holds 1 commands that are not in this one"),
        "{readme}"
    );
    assert!(page.contains("1 of its commands are not in this delivery"), "the viewer says so");
    assert!(!commands.contains("cat notes.txt") && commands.contains("cat index.txt"));
    let (_, readme, _, commands) = export("from-stream", Some("cloudwatch-stream"));
    assert!(readme.contains("this bundle holds the cloudwatch-stream delivery."), "{readme}");
    assert!(readme.contains("The s3 delivery holds 1 commands"), "{readme}");
    assert!(commands.contains("cat notes.txt"), "{commands}");
}

/// Whoever can write to the session-log bucket puts another object claiming a session already
/// ingested (`ssm/zz-other/<id>.log` beside `ssm/<id>.log`): it replaces nothing. Both versions
/// stay live, the real `rm -rf` is still found, ingest warns, `sessions` shows the session as
/// `conflict`, `verify` names it; the original object delivered again still replaces its own
/// version.
#[tokio::test(flavor = "multi_thread")]
async fn test_another_object_claiming_a_session_replaces_nothing() {
    const SESSION: &str = "alice-0123456789abcdef0";
    let s3 = s3_client().await;
    let [source_bucket, trail_bucket] = new_buckets(&s3, ["claim-logs", "claim-trail"]).await;
    let real = std::fs::read(repo_root().join("examples/s3/ssm-logs/alice-0123456789abcdef0.log"))
        .expect("example");
    let other = std::fs::read(
        repo_root().join("examples/s3/ssm-logs/alice-ekp6rf9qs5arzcjxsndyvboavi.log"),
    )
    .expect("example");
    put(&s3, &source_bucket, &format!("ssm/{SESSION}.log"), real.clone()).await;
    // A second session of the same day, for compaction below.
    put(&s3, &source_bucket, "ssm/alice-0123456789abcdef1.log", real.clone()).await;
    let work = tempfile::tempdir().expect("tempdir");
    let ingest = || ingest_s3(work.path(), &source_bucket, &trail_bucket);
    let first = ingest();
    assert_eq!(first.code, 0, "{}", first.stderr);

    put(&s3, &source_bucket, &format!("ssm/zz-other/{SESSION}.log"), other.clone()).await;
    let second = ingest();
    assert_eq!(second.code, 0, "{}", second.stderr);
    assert!(second.stdout.contains("ingested 1 sessions") && second.stdout.contains("0 replaced"));
    assert!(
        second.stderr.contains("another source object already delivered this session"),
        "{}",
        second.stderr
    );
    let (code, rows, _, stderr) =
        cli(work.path(), &["search", "--command", "rm -rf", "--session", SESSION]);
    assert_eq!(code, 0, "the real session's command is still found: {stderr}");
    assert!(rows.iter().all(|row| row["session_id"] == json!(SESSION)), "{rows:#?}");
    let (_, rows, _, _) = cli(work.path(), &["sessions", "--session", SESSION]);
    assert_eq!(rows.len(), 2, "{rows:#?}");
    assert!(rows.iter().all(|row| row["status"] == json!("conflict")), "{rows:#?}");
    let verified = run(binary("sessionlake", false).current_dir(work.path()).args(["verify"]));
    assert_eq!(verified.code, 1, "{}{}", verified.stdout, verified.stderr);
    assert!(verified.stdout.contains("conflicting-delivery"), "{}", verified.stdout);

    // The original object delivered again (a new ETag) replaces its own version only.
    let mut again = real;
    again.extend_from_slice(b"\n");
    put(&s3, &source_bucket, &format!("ssm/{SESSION}.log"), again).await;
    let third = ingest();
    assert_eq!(third.code, 0, "{}", third.stderr);
    assert!(third.stdout.contains("1 replaced"), "{}", third.stdout);
    let (_, rows, _, _) = cli(work.path(), &["sessions", "--session", SESSION]);
    assert_eq!(rows.len(), 2, "{rows:#?}");

    // Compacted, the real version is not taken out of its compacted file by a third claim.
    let compacted = run(binary("sessionlake", false).current_dir(work.path()).args([
        "compact",
        "--min-age",
        "0s",
    ]));
    assert_eq!(compacted.code, 0, "{}", compacted.stderr);
    let tables = files_under(&work.path().join("lake/commands"));
    assert!(tables.iter().any(|path| path.to_string_lossy().contains("compact-")), "{tables:?}");
    let claim = std::fs::read(
        repo_root().join("examples/s3/ssm-logs/alice-ekp6rf9qs5arzcjxsndyvboavi.log"),
    )
    .expect("example");
    put(&s3, &source_bucket, &format!("ssm/zz-third/{SESSION}.log"), claim).await;
    let fourth = ingest();
    assert_eq!(fourth.code, 0, "{}", fourth.stderr);
    assert!(fourth.stdout.contains("0 replaced"), "{}", fourth.stdout);
    let (code, rows, _, stderr) =
        cli(work.path(), &["search", "--command", "rm -rf", "--session", SESSION]);
    assert_eq!(code, 0, "{stderr}");
    assert!(!rows.is_empty(), "{rows:#?}");
    let (_, rows, _, _) = cli(work.path(), &["sessions", "--session", SESSION]);
    assert_eq!(rows.len(), 3, "{rows:#?}");
}

/// Creates a session bucket holding alice's transcript under `ssm/` and an empty trail bucket;
/// returns a client and their names.
async fn buckets_with_alice(prefix: &str) -> (aws_sdk_s3::Client, String, String) {
    let s3 = s3_client().await;
    let [source_bucket, trail_bucket] =
        new_buckets(&s3, [&format!("{prefix}-logs"), &format!("{prefix}-trail")]).await;
    let transcript = repo_root().join("examples/s3/ssm-logs/alice-0123456789abcdef0.log");
    let transcript = std::fs::read(transcript).expect("example");
    put(&s3, &source_bucket, "ssm/alice-0123456789abcdef0.log", transcript).await;
    (s3, source_bucket, trail_bucket)
}

/// The quarantine notes the lake's manifests in `dir` hold.
fn quarantine_notes(dir: &Path) -> Vec<String> {
    let manifests = dir.join("lake/manifest");
    files_under(&manifests)
        .iter()
        .filter_map(|file| std::fs::read_to_string(manifests.join(file)).ok())
        .filter_map(|text| serde_json::from_str::<Value>(&text).ok())
        .flat_map(|manifest| manifest["body"]["added"].as_array().cloned().unwrap_or_default())
        .filter(|entry| entry["kind"] == "quarantine")
        .map(|entry| entry["note"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// A trail file with more access records than the cap keeps the records read before it and
/// is quarantined with the count of the rest, plain or gzip; the file was read as a stream.
/// Before, a file was read whole (1.05 GB of memory for a 1.08 GB plain file) and a gzip file
/// over 128 MiB was quarantined whole, losing every event.
/// See: issue 18, requirement 7
#[tokio::test(flavor = "multi_thread")]
async fn test_a_trail_file_over_the_record_cap_keeps_its_first_records() {
    let (s3, source_bucket, trail_bucket) = buckets_with_alice("cap").await;
    let records = |prefix: &str| {
        let mut records = Vec::new();
        for n in 0..5 {
            let session = format!("bob-{prefix}{n}0123456789abcdef");
            let time = format!("2026-03-14T10:0{n}:00Z");
            records.push(start_session(
                &format!("{prefix}-{n}"),
                &time,
                BOB,
                NODE_B,
                &session,
                None,
            ));
            let unrelated = json!({"bucketName": "b"});
            let id = format!("{prefix}-unrelated-{n}");
            records.push(record(
                &id,
                &time,
                "s3.amazonaws.com",
                "GetObject",
                BOB,
                unrelated,
                Value::Null,
            ));
        }
        json!({ "Records": records })
    };
    let plain = format!("{TRAIL_DAY}/111122223333_CloudTrail_us-east-1_plain.json");
    let gzipped = trail_key("gzip");
    put(&s3, &trail_bucket, &plain, records("p").to_string().into_bytes()).await;
    put(&s3, &trail_bucket, &gzipped, gzip(&records("g"))).await;

    let work = tempfile::tempdir().expect("tempdir");
    let capped = || {
        run(ingest_s3_command(work.path(), &source_bucket, &trail_bucket)
            .args(["--max-trail-records", "3"]))
    };
    let ran = capped();
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert!(ran.stdout.contains("ingested 1 sessions"), "{}", ran.stdout);
    // The first three StartSession events of each file are in `access`, none after them.
    let (code, rows, _, stderr) = cli(work.path(), &["access", "--kind", "ssm-session"]);
    assert_eq!(code, 0, "{stderr}");
    let mut ids: Vec<&str> = rows.iter().filter_map(|row| row["event_id"].as_str()).collect();
    ids.sort_unstable();
    assert_eq!(ids, ["g-0", "g-1", "g-2", "p-0", "p-1", "p-2"], "{rows:#?}");
    // Each file is quarantined as well, its note naming it, the cap and the records not read
    // (from the fourth StartSession event on: two of them and two unrelated ones).
    let notes = quarantine_notes(work.path());
    assert_eq!(notes.len(), 2, "{notes:#?}");
    for key in [&plain, &gzipped] {
        let name = format!("s3://{trail_bucket}/{key}");
        let note = notes.iter().find(|note| note.contains(&name)).expect("a note per file");
        assert!(note.contains("holds more than 3 access records"), "{note}");
        assert!(note.contains("4 records from record 7 (near byte offset"), "{note}");
        assert!(ran.stderr.contains("input quarantined"), "{}", ran.stderr);
    }
    // A run again reads nothing again: both files' cursors moved.
    let again = capped();
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert_eq!(quarantine_notes(work.path()).len(), 2);
    let verified = run(binary("sessionlake", false).current_dir(work.path()).args(["verify"]));
    assert_eq!(verified.code, 0, "{}{}", verified.stdout, verified.stderr);
}

/// A trail file that cannot be read (S3 answers AccessDenied, as for an object under a KMS
/// key the reader may not use) never keeps sessions out: a once run ingests the sessions and
/// the other trail files, names the file and exits 2; the file keeps its cursor and is read
/// once it can be. Before, sessions waited for it on every run, for ever.
/// See: issue 18, requirement 7
#[tokio::test(flavor = "multi_thread")]
async fn test_a_trail_file_that_cannot_be_read_never_blocks_sessions() {
    let (s3, source_bucket, trail_bucket) = buckets_with_alice("blocked").await;
    let readable = json!({"Records": [start_session("ev-alice", "2026-03-14T09:26:50Z", ALICE,
        NODE_A, "alice-0123456789abcdef0", None)]});
    let denied = json!({"Records": [start_session("ev-bob", "2026-03-14T10:10:00Z", BOB, NODE_B,
        "bob-denied0123456789abcdef", None)]});
    let readable_key = trail_key("a");
    let denied_key = trail_key("denied");
    put(&s3, &trail_bucket, &readable_key, gzip(&readable)).await;
    put(&s3, &trail_bucket, &denied_key, gzip(&denied)).await;

    let proxy = tokio::task::block_in_place(|| FaultProxy::start(3));
    proxy.set(&json!({"deny": {"path": "_denied.json.gz"}}));
    let work = tempfile::tempdir().expect("tempdir");
    let ingest = || {
        run(binary("sessionlake-ingest", true)
            .env("AWS_ENDPOINT_URL", proxy.endpoint())
            .current_dir(work.path())
            .args(["--retry-max-attempts", "1", "--log", "warn"])
            .args(["--s3", &format!("s3://{source_bucket}/ssm/")])
            .args(["--cloudtrail", &format!("s3://{trail_bucket}/AWSLogs/")]))
    };
    let blocked = tokio::task::block_in_place(ingest);
    assert_eq!(blocked.code, 2, "{}", blocked.stderr);
    assert!(
        blocked.stderr.contains("poll failed after committing 1 sessions"),
        "{}",
        blocked.stderr
    );
    assert!(blocked.stderr.contains("_denied.json.gz"), "{}", blocked.stderr);
    assert!(blocked.stderr.contains("AccessDenied"), "{}", blocked.stderr);
    // The session has the readable file's facts; the denied file's event is not read yet.
    let (_, rows, _, _) = cli(work.path(), &["sessions", "--session", "alice-0123456789abcdef0"]);
    assert_eq!(rows.len(), 1, "{rows:#?}");
    assert_eq!(rows[0]["principal"], json!(ALICE), "{rows:#?}");
    let (_, rows, _, _) = cli(work.path(), &["access"]);
    let ids: Vec<&str> = rows.iter().filter_map(|row| row["event_id"].as_str()).collect();
    assert_eq!(ids, ["ev-alice"], "{rows:#?}");

    // Readable again: the next run reads it, and nothing else again.
    proxy.set(&json!({"deny": null}));
    let unblocked = tokio::task::block_in_place(ingest);
    assert_eq!(unblocked.code, 0, "{}", unblocked.stderr);
    let (_, rows, _, _) = cli(work.path(), &["access"]);
    let mut ids: Vec<&str> = rows.iter().filter_map(|row| row["event_id"].as_str()).collect();
    ids.sort_unstable();
    assert_eq!(ids, ["ev-alice", "ev-bob"], "{rows:#?}");
}

/// A version written before versions carried their source object (bob's stream in
/// `tests/data/schema1-lake`, from a local `get-log-events` file) is not replaced by a stream of
/// the same name in a log group, whether its rows are in its own files or compacted: its
/// `sessions` row names the object it came from, another object is another delivery, and both
/// stay live, flagged `conflict`. Before, any tagged delivery replaced an untagged version
/// ("1 replaced"): one stream anyone can write hid it.
/// See: issue 18, requirement 1
#[tokio::test(flavor = "multi_thread")]
async fn test_a_version_from_before_origin_tags_is_not_replaced_by_another_object() {
    const BOB: &str = "bob-ilpxvkhghl9vs9ia2xfdyp4dka";
    let logs = aws_sdk_cloudwatchlogs::Client::new(&sessionlake_tests::sdk_config().await);
    let group = format!("/ssm/{}", unique("legacy"));
    sessionlake_tests::put_example_stream(&logs, &group, BOB).await;
    let lake_args = ["--lake", "lake", "--keyring", "keyring.json"];
    for compacted in [false, true] {
        let work = tempfile::tempdir().expect("tempdir");
        sessionlake_tests::copy_tree(&repo_root().join("tests/data/schema1-lake"), work.path());
        let keyring = work.path().join("keyring.json");
        std::fs::set_permissions(&keyring, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .expect("keyring mode");
        if compacted {
            let compact = run(binary("sessionlake", false)
                .current_dir(work.path())
                .args(lake_args)
                .args(["compact", "--min-age", "0s"]));
            assert_eq!(compact.code, 0, "{}", compact.stderr);
            let tables = files_under(&work.path().join("lake/sessions"));
            assert!(tables.iter().any(|p| p.to_string_lossy().contains("compact-")), "{tables:?}");
        }
        let ingested = run(binary("sessionlake-ingest", true)
            .current_dir(work.path())
            .args(lake_args)
            .args(["--cloudwatch", &group]));
        assert_eq!(ingested.code, 0, "compacted {compacted}: {}", ingested.stderr);
        let said = format!("{}{}", ingested.stdout, ingested.stderr);
        for expected in [
            "ingested 1 sessions",
            "0 replaced",
            "another source object already delivered this session",
        ] {
            assert!(said.contains(expected), "compacted {compacted}: {expected:?} not in {said}");
        }
        let (code, rows, _, stderr) =
            cli(work.path(), &[&lake_args[..], &["sessions", "--session", BOB]].concat());
        assert_eq!(code, 0, "{stderr}");
        assert_eq!(rows.len(), 2, "compacted {compacted}: {rows:#?}");
        assert!(rows.iter().all(|row| row["status"] == json!("conflict")), "{rows:#?}");
    }
}

/// Two streams of one log group whose names end in the same session id (`bob-…` and
/// `zz-other/bob-…`), read in one poll: both are stored, neither replaces the other, and
/// `sessions` shows both in conflict. Before origin tags, the later one read replaced the other
/// within the batch, and the real transcript was never stored.
/// See: issue 18, requirement 9
#[tokio::test(flavor = "multi_thread")]
async fn test_two_streams_of_one_base_name_in_one_poll_are_both_kept() {
    const BOB: &str = "bob-ilpxvkhghl9vs9ia2xfdyp4dka";
    let logs = aws_sdk_cloudwatchlogs::Client::new(&sessionlake_tests::sdk_config().await);
    let group = format!("/ssm/{}", unique("twins"));
    let messages = sessionlake_tests::put_example_stream(&logs, &group, BOB).await;
    let other = format!("zz-other/{BOB}");
    logs.create_log_stream()
        .log_group_name(&group)
        .log_stream_name(&other)
        .send()
        .await
        .expect("create stream");
    // A forged copy that leaves out the real session's last commands.
    sessionlake_tests::put_events(&logs, &group, &other, &messages[..messages.len() / 2]).await;

    let work = tempfile::tempdir().expect("tempdir");
    let ingested = run(binary("sessionlake-ingest", true)
        .current_dir(work.path())
        .args(["--cloudwatch", &group]));
    assert_eq!(ingested.code, 0, "{}", ingested.stderr);
    assert!(ingested.stdout.contains("ingested 2 sessions"), "{}", ingested.stdout);
    assert!(ingested.stdout.contains("0 replaced"), "{}", ingested.stdout);
    let (code, rows, _, stderr) = cli(work.path(), &["sessions", "--session", BOB]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(rows.len(), 2, "{rows:#?}");
    assert!(rows.iter().all(|row| row["status"] == json!("conflict")), "{rows:#?}");
    let query = format!(
        "SELECT source_ref, command_count FROM sessions WHERE session_id = '{BOB}' \
         ORDER BY source_ref"
    );
    let listed = run(binary("sessionlake", false)
        .current_dir(work.path())
        .args(["sql", &query, "--format", "csv"]));
    assert_eq!(listed.code, 0, "{}", listed.stderr);
    // The real stream whole (9 commands), the copy with fewer.
    let real = format!("cwl://{group}/{BOB},9\n");
    assert!(listed.stdout.contains(&real), "{}", listed.stdout);
    assert!(listed.stdout.contains(&format!("cwl://{group}/{other},")), "{}", listed.stdout);
    let verified = run(binary("sessionlake", false).current_dir(work.path()).args(["verify"]));
    assert_eq!(verified.code, 1, "{}{}", verified.stdout, verified.stderr);
    assert!(verified.stdout.contains("conflicting-delivery"), "{}", verified.stdout);
}
