//! Anchoring the chain against rollback and truncation (issue 16, requirement 5): every commit
//! reports its head, `verify --expect-head` fails when the chain no longer holds a recorded
//! head, manifests on an S3 bucket with Object Lock are locked (moto), and a follow-mode clean
//! stop promises its restart, so a lake cut back to an older clean stop is a gap.
// See: issue 16 (One trusted snapshot for every command), requirement 5.

use std::path::Path;

use aws_sdk_s3::error::ProvideErrorMetadata as _;
use aws_sdk_s3::types::ObjectLockMode;
use serde_json::Value;
use sessionlake_schemas::paths;
use sessionlake_tests::{Background, binary, run, s3_client, unique, wait_until};

use super::{
    EXAMPLE_COMMITS, copy_of, findings, findings_of, lake_of_four_commits, manifest_path,
    manifest_sha, pair, read_manifest, rewrite_chain, session_examples, verify_json,
};

/// Checks that a `head` record of a command's output is manifest `head.sequence` of `lake`
/// with the SHA-256 of that file; returns the sequence.
fn assert_head(lake: &Path, head: &Value, what: &str) -> u64 {
    let sequence = head["sequence"].as_u64().unwrap_or_else(|| panic!("{what}: head {head}"));
    assert_eq!(
        head["sha256"].as_str(),
        Some(manifest_sha(lake, sequence).as_str()),
        "{what}: head {head} is not the hash of manifest {sequence}"
    );
    sequence
}

fn json_lines(stdout: &str) -> Vec<Value> {
    stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{line:?}: {e}")))
        .collect()
}

/// A head as `--expect-head` takes it.
fn head_arg(lake: &Path, sequence: u64) -> String {
    format!("{sequence}:{}", manifest_sha(lake, sequence))
}

#[test]
fn test_expect_head_fails_on_a_cut_back_or_rewritten_chain_and_passes_on_its_head() {
    let original = lake_of_four_commits();
    let lake = original.path().join("lake");
    let newest = EXAMPLE_COMMITS - 1;
    let newest_head = head_arg(&lake, newest);
    // The newest head and any older one of the chain pass.
    for head in [&newest_head, &head_arg(&lake, 1)] {
        assert_eq!(findings(original.path(), &["--expect-head", head]), (0, vec![]), "{head}");
    }
    // verify's summary gives the head to record.
    let (_, records) = verify_json(original.path(), &[], false);
    let summary = records.last().expect("summary");
    assert_eq!(assert_head(&lake, &summary["data"]["head"], "verify"), newest);

    // Truncated: the newest manifest deleted. Nothing else in the lake tells (a once-mode lake
    // promises no idle period), the recorded head does.
    let cut = copy_of(original.path());
    std::fs::remove_file(manifest_path(&cut.path().join("lake"), newest)).expect("cut back");
    let (code, found) = findings(cut.path(), &["--expect-head", &newest_head]);
    assert_eq!(code, 1, "{found:?}");
    assert!(found.contains(&pair("unexpected-head", &paths::manifest_object(newest))), "{found:?}");
    assert!(found.iter().all(|(kind, _)| kind != "gap"), "{found:?}");
    let (_, records) = verify_json(cut.path(), &["--expect-head", &newest_head], false);
    let detail = records
        .iter()
        .find(|record| record["data"]["kind"] == "unexpected-head")
        .and_then(|record| record["data"]["detail"].as_str())
        .unwrap_or_default()
        .to_string();
    assert!(
        detail.contains(&format!("holds no manifest {newest}"))
            && detail.contains(&format!("ends at manifest {}", newest - 1)),
        "{detail}"
    );

    // Rewritten: manifests 2 and later re-signed with the keyring (an attacker who has it). The
    // chain itself is intact; only the recorded head tells.
    let rewritten = copy_of(original.path());
    rewrite_chain(rewritten.path(), 2, |manifest| {
        manifest.body.reason = Some("rewritten".into());
    });
    assert_eq!(findings(rewritten.path(), &[]), (0, vec![]), "re-signed chain");
    let (code, found) = findings(rewritten.path(), &["--expect-head", &newest_head]);
    assert_eq!(
        (code, found),
        (1, vec![pair("unexpected-head", &paths::manifest_object(newest))]),
        "rewritten"
    );
    let (_, records) = verify_json(rewritten.path(), &["--expect-head", &newest_head], false);
    let detail = records[0]["data"]["detail"].as_str().unwrap_or_default();
    let now_sha = manifest_sha(&rewritten.path().join("lake"), newest);
    assert!(detail.contains(&format!("is sha256 {now_sha}")), "{detail}");

    // A head that is not SEQ:SHA256 is a usage error.
    let bad = run(binary("sessionlake", false).current_dir(original.path()).args([
        "verify",
        "--expect-head",
        "3:abc",
    ]));
    assert_eq!(bad.code, 2, "{}", bad.stderr);
    assert!(bad.stderr.contains("not a SHA-256"), "{}", bad.stderr);
}

#[test]
fn test_every_committing_command_reports_the_head_it_committed() {
    let dir = tempfile::tempdir().expect("tempdir");
    session_examples(dir.path());
    let lake = dir.path().join("lake");
    let cli = |args: &[&str]| {
        let ran = run(binary("sessionlake", false).current_dir(dir.path()).args(args));
        assert_eq!(ran.code, 0, "{args:?}: {}", ran.stderr);
        ran
    };

    let ingest = run(binary("sessionlake-ingest", false).current_dir(dir.path()).args([
        "--batch-sessions",
        "1",
        "--json",
    ]));
    assert_eq!(ingest.code, 0, "{}", ingest.stderr);
    let records = json_lines(&ingest.stdout);
    assert_eq!(records.len(), 1, "{}", ingest.stdout);
    assert_eq!(records[0]["type"], "summary");
    let mut expected = EXAMPLE_COMMITS - 1;
    assert_eq!(assert_head(&lake, &records[0]["data"]["head"], "ingest"), expected);

    let compact = cli(&["compact", "--min-age", "0s", "--json"]);
    let summary = json_lines(&compact.stdout).pop().expect("compact summary");
    expected += 1;
    assert_eq!(assert_head(&lake, &summary["data"]["head"], "compact"), expected, "{summary}");

    let added = cli(&["hold", "add", "--principal", "bob", "--reason", "case 1", "--json"]);
    let hold = json_lines(&added.stdout).remove(0);
    expected += 1;
    assert_eq!(assert_head(&lake, &hold["data"]["head"], "hold add"), expected);
    assert_eq!(hold["data"]["manifest"], Value::from(expected));
    let id = hold["data"]["id"].as_str().expect("hold id").to_string();

    let released = cli(&["hold", "release", &id, "--reason", "closed"]);
    expected += 1;
    let text_head = format!("head: manifest {expected} sha256 {}", manifest_sha(&lake, expected));
    assert!(released.stdout.lines().any(|line| line == text_head), "{}", released.stdout);

    let shred =
        cli(&["shred", "alice-0123456789abcdef0", "--reason", "request", "--yes", "--json"]);
    expected += 1;
    let record = json_lines(&shred.stdout).remove(0);
    assert_eq!(assert_head(&lake, &record["data"]["head"], "shred"), expected);

    let rekey = cli(&["rekey", "--to-keyring", "--json"]);
    let summary = json_lines(&rekey.stdout).pop().expect("rekey summary");
    match summary["data"]["sequence"].as_u64() {
        Some(sequence) => {
            expected += 1;
            assert_eq!(sequence, expected, "{summary}");
            assert_eq!(assert_head(&lake, &summary["data"]["head"], "rekey"), expected);
        }
        None => assert_eq!(summary["data"]["head"], Value::Null, "no commit, no head: {summary}"),
    }

    std::fs::write(
        dir.path().join("policy.toml"),
        "version = 1\n\n[default]\ncommands = \"1y\"\nraw = \"1y\"\n",
    )
    .expect("policy");
    let applied = cli(&[
        "retention",
        "apply",
        "--policy",
        "policy.toml",
        "--as-of",
        "2040-01-01",
        "--yes",
        "--json",
    ]);
    let summary = json_lines(&applied.stdout).pop().expect("retention summary");
    expected += 1;
    assert_eq!(assert_head(&lake, &summary["data"]["head"], "retention apply"), expected);

    // Every head printed is the chain's: verify expects the last one.
    let newest = head_arg(&lake, expected);
    assert_eq!(findings(dir.path(), &["--expect-head", &newest]), (0, vec![]));
}

/// Sends SIGTERM to a follow-mode ingest and checks that it stopped cleanly.
fn stop(mut service: Background) {
    service.signal("TERM");
    let ran = service.wait(std::time::Duration::from_secs(60));
    assert_eq!(ran.code, 0, "{}", ran.stderr);
}

fn follow(dir: &Path) -> Background {
    Background::spawn(binary("sessionlake-ingest", false).current_dir(dir).args([
        "--follow",
        "--poll-interval",
        "200ms",
        "--idle-period",
        "10m",
        "--log",
        "info,sessionlake_ingest=debug",
    ]))
}

/// Waits until a follow-mode ingest finished its first poll.
fn polled(service: &Background, what: &str) {
    wait_until(std::time::Duration::from_secs(60), what, || {
        let log = service.stderr();
        (log.contains("poll completed") || log.contains("poll found nothing new")).then_some(())
    });
}

fn manifest_count(lake: &Path) -> u64 {
    std::fs::read_dir(lake.join(paths::MANIFEST_DIR)).map_or(0, |dir| dir.count() as u64)
}

/// The attack of the issue: "A follow-mode lake cut back to an older clean-stop commit still
/// verifies intact". A clean stop now promises the restart (`--restart-within`, default the
/// idle period), so once that promise has run out, the cut-back lake reports a gap at the stop
/// it was cut back to; a service left stopped longer than it promised is reported the same way.
// See: issue 16, "Rollback".
#[test]
fn test_a_follow_mode_lake_cut_back_to_an_older_clean_stop_is_a_gap() {
    let dir = tempfile::tempdir().expect("tempdir");
    session_examples(dir.path());
    let lake = dir.path().join("lake");

    // First run: ingests the examples, then stops cleanly.
    let service = follow(dir.path());
    polled(&service, "the first run's poll");
    stop(service);
    let first_stop = manifest_count(&lake) - 1;
    let stopped = read_manifest(&lake, first_stop);
    assert_eq!(stopped.body.reason.as_deref(), Some("writer stopped"));
    assert_eq!(stopped.body.idle_period_secs, Some(600), "the stop promises the restart");

    // Second run: nothing new; its clean stop is the head.
    let service = follow(dir.path());
    polled(&service, "the second run's poll");
    stop(service);
    let second_stop = manifest_count(&lake) - 1;
    assert!(second_stop > first_stop, "the second run committed its stop");
    assert_eq!(findings(dir.path(), &[]), (0, vec![]), "restarted within the promise");

    // Three hours on, the uncut lake says the service stayed down longer than it promised.
    let later = (chrono::Utc::now() + chrono::Duration::hours(3)).to_rfc3339();
    assert_eq!(
        findings(dir.path(), &["--as-of", &later]),
        (1, vec![pair("gap", &paths::manifest_object(second_stop))]),
        "a service left stopped"
    );

    // Cut back to the first clean stop: within the promise nothing tells yet; once it has run
    // out, the gap is reported at the stop the lake was cut back to.
    for sequence in first_stop + 1..=second_stop {
        std::fs::remove_file(manifest_path(&lake, sequence)).expect("cut back");
    }
    assert_eq!(findings(dir.path(), &[]), (0, vec![]), "within the promise");
    assert_eq!(
        findings(dir.path(), &["--as-of", &later]),
        (1, vec![pair("gap", &paths::manifest_object(first_stop))]),
        "cut back to an older clean stop"
    );
    let (_, records) = verify_json(dir.path(), &["--as-of", &later], false);
    let detail = records[0]["data"]["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("a clean stop whose writer promised to be back"), "{detail}");

    // A stop that promises nothing (`--restart-within 0s`, a service retired for good) is the
    // old behaviour: no gap, whatever the time.
    let retired = copy_of(dir.path());
    copy_examples_into(dir.path(), retired.path());
    let service = Background::spawn(
        binary("sessionlake-ingest", false)
            .current_dir(retired.path())
            .args(["--follow", "--poll-interval", "200ms", "--idle-period", "10m"])
            .args(["--restart-within", "0s", "--log", "info,sessionlake_ingest=debug"]),
    );
    polled(&service, "the retiring run's poll");
    stop(service);
    let retired_lake = retired.path().join("lake");
    let last = read_manifest(&retired_lake, manifest_count(&retired_lake) - 1);
    assert_eq!(last.body.idle_period_secs, None, "{:?}", last.body);
    assert_eq!(findings(retired.path(), &["--as-of", &later]), (0, vec![]), "retired");
}

fn copy_examples_into(from: &Path, to: &Path) {
    sessionlake_tests::copy_tree(&from.join("examples"), &to.join("examples"));
}

/// Manifests on a bucket with Object Lock are written locked (governance, seven years, or as
/// configured): deleting the committed version and overwriting it conditionally are refused,
/// what S3 still allows (a delete marker, a newer version) is named by `verify` with the locked
/// version to restore, and a bucket without Object Lock works as before.
///
/// What moto 5 enforces, checked here: `GetObjectLockConfiguration` (and
/// `ObjectLockConfigurationNotFoundError` for a bucket without it), the lock mode and
/// retain-until date stored with a `PutObject`, `DeleteObject` of a version under governance
/// refused (`AccessDenied`) without `x-amz-bypass-governance-retention`, under compliance
/// refused even with it, and `If-None-Match: *`. What it does not enforce (not tested here,
/// S3 does): the IAM permission `s3:BypassGovernanceRetention` (in moto any caller can bypass
/// governance, as in S3 a caller holding that permission can), shortening a compliance
/// retention (`PutObjectRetention` succeeds in moto; S3 refuses it), and `GetObjectRetention`
/// answers 500 (the test reads the lock from `HeadObject`).
#[tokio::test(flavor = "multi_thread")]
async fn test_rollback_on_an_object_lock_bucket_is_refused_and_detected() {
    let s3 = s3_client().await;
    let (locked_bucket, plain_bucket) = (unique("locked-lake"), unique("plain-lake"));
    s3.create_bucket()
        .bucket(&locked_bucket)
        .object_lock_enabled_for_bucket(true)
        .send()
        .await
        .expect("create the Object Lock bucket");
    s3.create_bucket().bucket(&plain_bucket).send().await.expect("create the plain bucket");
    let dir = tempfile::tempdir().expect("tempdir");
    session_examples(dir.path());
    let ingest = |bucket: &str| {
        let ran = run(binary("sessionlake-ingest", true).current_dir(dir.path()).args([
            "--lake",
            &format!("s3://{bucket}/lake"),
            "--json",
        ]));
        assert_eq!(ran.code, 0, "{}", ran.stderr);
        json_lines(&ran.stdout).remove(0)["data"]["head"].clone()
    };
    let head = ingest(&locked_bucket);
    let newest = head["sequence"].as_u64().expect("head");
    let newest_key = format!("lake/{}", paths::manifest_object(newest));
    let sha = head["sha256"].as_str().expect("sha").to_string();
    let expect = ["--expect-head".to_string(), format!("{newest}:{sha}")];
    let lake_url = format!("s3://{locked_bucket}/lake");
    let verify = |extra: &[String]| {
        let mut args = vec!["--lake".to_string(), lake_url.clone()];
        args.extend(extra.iter().cloned());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        findings_of(dir.path(), &args, true)
    };
    assert_eq!(verify(&expect), (0, vec![]), "locked lake verifies");

    // Every manifest is locked: governance, about seven years from its commit.
    let now = std::time::SystemTime::now();
    for sequence in 0..=newest {
        let key = format!("lake/{}", paths::manifest_object(sequence));
        let object = s3.head_object().bucket(&locked_bucket).key(&key).send().await.expect("head");
        assert_eq!(object.object_lock_mode(), Some(&ObjectLockMode::Governance), "{key}");
        let until = object.object_lock_retain_until_date().expect("retain-until date");
        let days = (until.secs()
            - now.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64)
            / 86_400;
        assert!((2555..=2557).contains(&days), "{key}: locked {days} days");
    }
    let version = s3
        .head_object()
        .bucket(&locked_bucket)
        .key(&newest_key)
        .send()
        .await
        .expect("head")
        .version_id()
        .expect("a versioned bucket")
        .to_string();

    // The rollback: deleting the committed version is refused.
    let deleted = s3
        .delete_object()
        .bucket(&locked_bucket)
        .key(&newest_key)
        .version_id(&version)
        .send()
        .await
        .expect_err("a locked version cannot be deleted");
    assert_eq!(deleted.code(), Some("AccessDenied"), "{deleted:?}");
    // Overwriting it as a commit does (If-None-Match) is refused.
    let overwritten = s3
        .put_object()
        .bucket(&locked_bucket)
        .key(&newest_key)
        .if_none_match("*")
        .body(b"{}".to_vec().into())
        .send()
        .await
        .expect_err("a commit never overwrites");
    assert_eq!(overwritten.code(), Some("PreconditionFailed"), "{overwritten:?}");

    // What S3 allows: a delete marker hides the manifest (the chain reads as cut back), the
    // locked version stays. verify names it and the head it no longer reaches.
    let marker = s3
        .delete_object()
        .bucket(&locked_bucket)
        .key(&newest_key)
        .send()
        .await
        .expect("a delete marker");
    let (code, found) = verify(&expect);
    assert_eq!(code, 1, "{found:?}");
    let manifest = paths::manifest_object(newest);
    assert!(found.contains(&pair("hidden-manifest", &manifest)), "{found:?}");
    assert!(found.contains(&pair("unexpected-head", &manifest)), "{found:?}");
    let kept = s3
        .get_object()
        .bucket(&locked_bucket)
        .key(&newest_key)
        .version_id(&version)
        .send()
        .await
        .expect("the locked version is still stored");
    let bytes = kept.body.collect().await.expect("body").into_bytes();
    assert_eq!(sessionlake_storage::store::sha256_hex(&bytes), sha);
    // Removing the marker restores the chain.
    s3.delete_object()
        .bucket(&locked_bucket)
        .key(&newest_key)
        .version_id(marker.version_id().expect("marker version"))
        .send()
        .await
        .expect("a delete marker is not locked");
    assert_eq!(verify(&expect), (0, vec![]), "restored");

    // A newer version over the first manifest is named too (and breaks the link after it).
    let first_key = format!("lake/{}", paths::manifest_object(0));
    let newer = s3
        .put_object()
        .bucket(&locked_bucket)
        .key(&first_key)
        .body(b"{}".to_vec().into())
        .send()
        .await
        .expect("S3 keeps versions: a newer one is allowed");
    let (code, found) = verify(&[]);
    assert_eq!(code, 1, "{found:?}");
    assert!(found.contains(&pair("overwritten-manifest", &paths::manifest_object(0))), "{found:?}");
    s3.delete_object()
        .bucket(&locked_bucket)
        .key(&first_key)
        .version_id(newer.version_id().expect("version"))
        .send()
        .await
        .expect("the unlocked newer version can be deleted");
    assert_eq!(verify(&expect), (0, vec![]), "restored");

    // The CLI's commits lock too, with the mode and period asked for: compliance cannot be
    // bypassed.
    let hold = run(binary("sessionlake", true).current_dir(dir.path()).args([
        "--lake",
        &lake_url,
        "hold",
        "add",
        "--principal",
        "bob",
        "--reason",
        "case 2",
        "--object-lock-mode",
        "compliance",
        "--object-lock-days",
        "30",
        "--json",
    ]));
    assert_eq!(hold.code, 0, "{}", hold.stderr);
    let hold_key = format!("lake/{}", paths::manifest_object(newest + 1));
    let object = s3.head_object().bucket(&locked_bucket).key(&hold_key).send().await.expect("head");
    assert_eq!(object.object_lock_mode(), Some(&ObjectLockMode::Compliance));
    let bypass = s3
        .delete_object()
        .bucket(&locked_bucket)
        .key(&hold_key)
        .version_id(object.version_id().expect("version"))
        .bypass_governance_retention(true)
        .send()
        .await
        .expect_err("compliance cannot be bypassed");
    assert_eq!(bypass.code(), Some("AccessDenied"), "{bypass:?}");

    // A checkpoint is a commit too: locked like the manifests.
    let checkpoint = run(binary("sessionlake", true).current_dir(dir.path()).args([
        "--lake",
        &lake_url,
        "checkpoint",
    ]));
    assert_eq!(checkpoint.code, 0, "{}", checkpoint.stderr);
    let checkpoint_key = format!("lake/{}", paths::checkpoint_object(newest + 1));
    let object =
        s3.head_object().bucket(&locked_bucket).key(&checkpoint_key).send().await.expect("head");
    assert_eq!(object.object_lock_mode(), Some(&ObjectLockMode::Governance), "{checkpoint_key}");

    // A bucket without Object Lock: written as before, unlocked, and intact.
    let plain_head = ingest(&plain_bucket);
    let plain_newest = plain_head["sequence"].as_u64().expect("head");
    let key = format!("lake/{}", paths::manifest_object(plain_newest));
    let object = s3.head_object().bucket(&plain_bucket).key(&key).send().await.expect("head");
    assert_eq!(object.object_lock_mode(), None);
    let plain_expect = format!("{plain_newest}:{}", plain_head["sha256"].as_str().unwrap_or(""));
    assert_eq!(
        findings_of(
            dir.path(),
            &["--lake", &format!("s3://{plain_bucket}/lake"), "--expect-head", &plain_expect],
            true
        ),
        (0, vec![]),
        "plain bucket"
    );
}
