//! The Lambda handler, called directly (not through the Lambda runtime API), against a lake in
//! moto's S3: S3 event records, CloudWatch Logs subscription payloads of a session stream and of
//! a trail, and events it must refuse without failing.

use std::io::Write as _;
use std::path::Path;

use base64::Engine as _;
use serde_json::{Value, json};
use sessionlake_ingest::config::{
    CloudwatchSourceConfig, Config, FileConfig, SourceConfig, parse_s3_url,
};
use sessionlake_ingest::lambda::LambdaHandler;
use sessionlake_tests::{Ran, binary, repo_root, run, s3_client, sdk_config, unique};

use crate::parse_json_lines;

const ALICE: &str = "alice-0123456789abcdef0";
const ALICE_ARN: &str = "arn:aws:sts::111122223333:assumed-role/Admin/alice";
const BOB: &str = "bob-ilpxvkhghl9vs9ia2xfdyp4dka";

/// Returns `{"awslogs":{"data":…}}` for a subscription payload of `events` (messages).
fn subscription(group: &str, stream: &str, messages: &[String]) -> Value {
    let now = chrono::Utc::now().timestamp_millis();
    let events: Vec<Value> = messages
        .iter()
        .enumerate()
        .map(
            |(i, message)| json!({"id": format!("3{i:055}"), "timestamp": now, "message": message}),
        )
        .collect();
    let payload = json!({"messageType": "DATA_MESSAGE", "owner": "111122223333", "logGroup": group,
        "logStream": stream, "subscriptionFilters": ["sessionlake"], "logEvents": events});
    awslogs(payload.to_string().as_bytes())
}

/// Returns the function's configuration: the lake at `lake_url` with the keyring at
/// `keyring`, then what `layer` gives (sources, keys), as its `SESSIONLAKE_*` variables would.
fn config(lake_url: &str, keyring: &Path, layer: FileConfig) -> Config {
    let layer = FileConfig {
        lake: Some(lake_url.to_string()),
        keyring: Some(keyring.to_path_buf()),
        ..layer
    };
    Config::load(None, layer).expect("config")
}

/// An S3 source at `url`.
fn s3_source(url: &str) -> SourceConfig {
    SourceConfig::S3(parse_s3_url(url).expect("s3 url"))
}

/// Runs the `sessionlake` CLI in `dir` on the lake at `lake_url` with the keyring at
/// `keyring`, then `args`.
fn sessionlake(dir: &Path, lake_url: &str, keyring: &Path, args: &[&str]) -> Ran {
    run(binary("sessionlake", true)
        .current_dir(dir)
        .args(["--lake", lake_url, "--keyring", &keyring.to_string_lossy()])
        .args(args))
}

fn awslogs(payload: &[u8]) -> Value {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(payload).expect("gzip");
    let data = base64::engine::general_purpose::STANDARD.encode(encoder.finish().expect("gzip"));
    json!({"awslogs": {"data": data}})
}

#[tokio::test(flavor = "multi_thread")]
async fn test_lambda_handler_ingests_s3_records_and_subscription_payloads() {
    let sdk = sdk_config().await;
    let s3 = s3_client().await;
    let logs = aws_sdk_cloudwatchlogs::Client::new(&sdk);
    let [lake, source] = sessionlake_tests::new_buckets(&s3, ["lambda-lake", "lambda-logs"]).await;
    // alice's transcript in S3 (under a prefix with a space: event keys are URL-encoded).
    let transcript = repo_root().join(format!("examples/s3/ssm-logs/{ALICE}.log"));
    let key = format!("ssm/team a/{ALICE}.log");
    let put = s3
        .put_object()
        .bucket(&source)
        .key(&key)
        .body(std::fs::read(transcript).expect("example").into())
        .send()
        .await
        .expect("put");
    // bob's session streamed to CloudWatch Logs.
    let group = format!("/ssm/{}", unique("lambda"));
    let messages = sessionlake_tests::put_example_stream(&logs, &group, BOB).await;

    let work = tempfile::tempdir().expect("tempdir");
    let keyring = work.path().join("keyring.json");
    let lake_url = format!("s3://{lake}/lake");
    let sources = vec![
        s3_source(&format!("s3://{source}/ssm/")),
        SourceConfig::Cloudwatch(CloudwatchSourceConfig { log_group: group.clone() }),
    ];
    let config =
        config(&lake_url, &keyring, FileConfig { source: sources, ..FileConfig::default() });
    let handler = LambdaHandler::new(config).with_sdk_config(sdk.clone());

    // An S3 trigger: alice's object, and one of a bucket no source reads.
    let s3_event = json!({"Records": [
        {"eventVersion": "2.1", "eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
         "eventTime": "2026-03-14T09:40:00.000Z",
         "s3": {"bucket": {"name": source}, "object": {"key": format!("ssm/team+a/{ALICE}.log"),
            "size": 100, "eTag": put.e_tag().expect("etag").trim_matches('"')}}},
        {"eventVersion": "2.1", "eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
         "s3": {"bucket": {"name": "someone-else"}, "object": {"key": "x/y.log", "size": 1, "eTag": "0"}}}
    ]});
    let report = handler.handle(s3_event.clone()).await.expect("s3 event");
    assert_eq!((report.sessions, report.commits), (1, 1), "{report:?}");
    // Delivered again (Lambda retries, S3 repeats): the cursor holds it, nothing is written.
    let report = handler.handle(s3_event).await.expect("s3 event again");
    assert_eq!((report.sessions, report.commits), (0, 0), "{report:?}");

    // A subscription payload of bob's stream (its latest events): the stream is read whole.
    let tail = &messages[messages.len() - 2..];
    let report = handler.handle(subscription(&group, BOB, tail)).await.expect("stream payload");
    assert_eq!(report.sessions, 1, "{report:?}");
    assert!(report.commands > 2, "the whole stream, not the payload's events: {report:?}");

    // A trail through a subscription: alice's StartSession arrives after her transcript.
    let start_session = json!({"eventVersion": "1.08",
        "userIdentity": {"type": "AssumedRole", "arn": ALICE_ARN, "accountId": "111122223333"},
        "eventTime": "2026-03-14T09:26:50Z", "eventSource": "ssm.amazonaws.com",
        "eventName": "StartSession", "awsRegion": "us-east-1", "sourceIPAddress": "203.0.113.30",
        "requestParameters": {"target": "i-0a1b2c3d4e5f67890"},
        "responseElements": {"sessionId": ALICE}, "eventID": "ev-lambda-start",
        "eventType": "AwsApiCall", "recipientAccountId": "111122223333"});
    let trail = subscription(
        "aws-cloudtrail-logs",
        "111122223333_CloudTrail_us-east-1",
        &[start_session.to_string()],
    );
    let report = handler.handle(trail).await.expect("trail payload");
    assert_eq!((report.access_events, report.replaced), (1, 1), "{report:?}");

    // Neither kind, or a gzip bomb: quarantined, and the handler succeeds (no retry helps).
    let bomb = awslogs(&vec![b' '; 64 * 1024 * 1024]);
    for event in [json!({"hello": "world"}), bomb, json!({"awslogs": {"data": "%%%"}})] {
        let report = handler.handle(event).await.expect("refused event");
        assert_eq!(report.quarantined, 1, "{report:?}");
    }

    // The lake in S3, read by the CLI: one row per session, alice enriched; verify passes.
    let cli = |args: &[&str]| sessionlake(work.path(), &lake_url, &keyring, args);
    let sessions = cli(&["sessions", "--json"]);
    assert_eq!(sessions.code, 0, "{}", sessions.stderr);
    let (rows, _) = parse_json_lines(&sessions.stdout);
    let found: Vec<(Value, Value)> =
        rows.iter().map(|row| (row["session_id"].clone(), row["principal"].clone())).collect();
    assert_eq!(
        found,
        vec![
            (json!(ALICE), json!(ALICE_ARN)),
            (json!(BOB), json!("arn:aws:iam::111122223333:user/bob")),
        ],
        "{rows:#?}"
    );
    let verified = cli(&["verify"]);
    assert_eq!(verified.code, 0, "{}{}", verified.stdout, verified.stderr);
}

/// The deployed function as `deploy/template.yaml` runs it: both keys in KMS and no keyring
/// (its `/tmp` starts empty), an S3 trigger, then the schedule's maintenance event: compaction,
/// the retention policy of `SESSIONLAKE_RETENTION_POLICY`, the Delta logs brought up to date;
/// the next trigger opens the lake again.
#[tokio::test(flavor = "multi_thread")]
async fn test_lambda_maintenance_applies_retention_with_kms_keys_and_no_keyring() {
    let sdk = sdk_config().await;
    let s3 = s3_client().await;
    let kms = aws_sdk_kms::Client::new(&sdk);
    let [lake, source] = sessionlake_tests::new_buckets(&s3, ["maint-lake", "maint-logs"]).await;
    let data_key = kms.create_key().send().await.expect("data key");
    let data_key = data_key.key_metadata().expect("metadata").key_id().to_string();
    let signing_key = kms
        .create_key()
        .key_spec(aws_sdk_kms::types::KeySpec::EccNistP256)
        .key_usage(aws_sdk_kms::types::KeyUsageType::SignVerify)
        .send()
        .await
        .expect("signing key");
    let signing_key = signing_key.key_metadata().expect("metadata").key_id().to_string();
    let put = |name: &'static str| {
        let s3 = s3.clone();
        let source = source.clone();
        async move {
            let transcript = repo_root().join(format!("examples/s3/ssm-logs/{name}.log"));
            let key = format!("ssm/{name}.log");
            let body = std::fs::read(transcript).expect("example").into();
            let put = s3.put_object().bucket(&source).key(&key).body(body).send().await;
            let etag = put.expect("put").e_tag().expect("etag").trim_matches('"').to_string();
            json!({"Records": [{"eventVersion": "2.1", "eventSource": "aws:s3",
                "eventName": "ObjectCreated:Put",
                "s3": {"bucket": {"name": source}, "object": {"key": key, "size": 100, "eTag": etag}}}]})
        }
    };

    let work = tempfile::tempdir().expect("tempdir");
    let keyring = work.path().join("tmp/keyring.json");
    let lake_url = format!("s3://{lake}/lake");
    let layer = FileConfig {
        kms_key_id: Some(data_key.clone()),
        signing_key: Some(signing_key.clone()),
        source: vec![s3_source(&format!("s3://{source}/ssm/"))],
        ..FileConfig::default()
    };
    let config = config(&lake_url, &keyring, layer);
    // Every session older than a day goes (the examples are from March 2026).
    let policy = "version = 1\n[default]\ncommands = \"1d\"\nraw = \"1d\"\naction = \"delete\"\n";
    let handler = LambdaHandler::new(config)
        .with_sdk_config(sdk.clone())
        .with_retention_policy(Some(policy.to_string()));
    let report = handler.handle(put(ALICE).await).await.expect("s3 event");
    assert_eq!((report.sessions, report.commits), (1, 1), "{report:?}");
    assert!(!keyring.exists(), "a keyring was created with both keys in KMS");

    let report = handler.handle(json!({"sessionlake": "maintenance"})).await.expect("maintenance");
    let done = report.maintenance.expect("a maintenance report");
    assert!(done.retention_policy, "{done:?}");
    // alice's rows and transcript: at least her session and its raw object.
    assert!(done.retention_applied >= 1, "{done:?}");
    assert!(done.retention_commit.is_some(), "{done:?}");
    // Committed a minute ago: too young to compact.
    assert_eq!(done.sessions_compacted, 0, "{done:?}");

    // The lake opens again for the next trigger.
    let report = handler.handle(put("alice-ekp6rf9qs5arzcjxsndyvboavi").await).await;
    let report = report.expect("s3 event after maintenance");
    assert_eq!(report.sessions, 1, "{report:?}");
    assert!(!keyring.exists(), "a keyring was created with both keys in KMS");

    let cli = |args: &[&str]| {
        let args = [&["--signing-key", signing_key.as_str()][..], args].concat();
        sessionlake(work.path(), &lake_url, &keyring, &args)
    };
    let sessions = cli(&["sessions", "--json"]);
    assert_eq!(sessions.code, 0, "{}", sessions.stderr);
    let (rows, _) = parse_json_lines(&sessions.stdout);
    let ids: Vec<&Value> = rows.iter().map(|row| &row["session_id"]).collect();
    assert_eq!(ids, [&json!("alice-ekp6rf9qs5arzcjxsndyvboavi")], "{rows:#?}");
    let verified = cli(&["verify"]);
    assert_eq!(verified.code, 0, "{}{}", verified.stdout, verified.stderr);
}
