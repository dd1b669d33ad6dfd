//! Chain of custody: each kind of tampering with a lake is reported precisely by
//! `sessionlake verify` (and nothing else is), and manifests signed with an AWS KMS key
//! (moto's) verify end to end.

use std::path::{Path, PathBuf};

use serde_json::Value;
use sessionlake_schemas::manifest::{Manifest, PublicKeyRecord};
use sessionlake_schemas::paths;
use sessionlake_storage::keys::LocalKeyring;
use sessionlake_storage::store::sha256_hex;
use sessionlake_tests::{binary, copy_tree, files_under, repo_root, run, sdk_config};

mod anchor;

/// Sessions in examples/: one commit each with `--batch-sessions 1`.
const EXAMPLE_COMMITS: u64 = 4;

/// Runs `sessionlake verify --json <extra>` in `dir`; returns the exit code and the findings
/// as (kind, path) pairs, sorted.
fn findings(dir: &Path, extra: &[&str]) -> (i32, Vec<(String, String)>) {
    findings_of(dir, extra, false)
}

/// Like [`findings`]; with `aws`, pointed at moto.
fn findings_of(dir: &Path, extra: &[&str], aws: bool) -> (i32, Vec<(String, String)>) {
    let (code, records) = verify_json(dir, extra, aws);
    let mut found: Vec<(String, String)> = records
        .iter()
        .filter(|record| record["type"] == "finding")
        .map(|record| {
            let text = |field: &str| record["data"][field].as_str().unwrap_or_default().to_string();
            (text("kind"), text("path"))
        })
        .collect();
    found.sort();
    (code, found)
}

/// Runs `sessionlake verify --json <extra>` in `dir` and returns the exit code and records.
fn verify_json(dir: &Path, extra: &[&str], aws: bool) -> (i32, Vec<Value>) {
    let ran =
        run(binary("sessionlake", aws).current_dir(dir).arg("verify").args(extra).arg("--json"));
    let records = ran
        .stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{line:?}: {e}")))
        .collect();
    (ran.code, records)
}

fn pair(kind: &str, path: &str) -> (String, String) {
    (kind.to_string(), path.to_string())
}

fn manifest_path(lake: &Path, sequence: u64) -> PathBuf {
    lake.join(paths::manifest_object(sequence))
}

fn read_manifest(lake: &Path, sequence: u64) -> Manifest {
    let bytes = std::fs::read(manifest_path(lake, sequence)).expect("manifest");
    serde_json::from_slice(&bytes).expect("manifest JSON")
}

/// Copies the session examples, without the CloudTrail files (whose access events would make
/// commits of their own), into `dir/examples`.
fn session_examples(dir: &std::path::Path) -> std::path::PathBuf {
    let examples = dir.join("examples");
    copy_tree(&repo_root().join("examples"), &examples);
    std::fs::remove_dir_all(examples.join("cloudtrail")).expect("remove CloudTrail examples");
    examples
}

/// Ingests the examples one session per commit into `dir/lake`; returns the folder.
fn lake_of_four_commits() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    session_examples(dir.path());
    let ingest = run(binary("sessionlake-ingest", false)
        .current_dir(dir.path())
        .args(["--batch-sessions", "1"]));
    assert_eq!(ingest.code, 0, "{}", ingest.stderr);
    assert!(ingest.stdout.contains(&format!("{EXAMPLE_COMMITS} commits")), "{}", ingest.stdout);
    assert_eq!(findings(dir.path(), &[]), (0, vec![]));
    dir
}

/// A copy of the prepared lake (and its keyring) to tamper with.
fn copy_of(original: &Path) -> tempfile::TempDir {
    let copy = tempfile::tempdir().expect("tempdir");
    copy_tree(&original.join("lake"), &copy.path().join("lake"));
    copy_tree(&original.join(".sessionlake"), &copy.path().join(".sessionlake"));
    copy
}

/// Rewrites manifests `from..` of the lake in `dir` with `edit`, re-linking each to the one
/// before and re-signing it with the keyring: the chain stays intact but for what `edit` does.
fn rewrite_chain(dir: &Path, from: u64, edit: impl Fn(&mut Manifest)) {
    let lake = dir.join("lake");
    let mut previous = (from > 0).then(|| manifest_sha(&lake, from - 1));
    let mut sequence = from;
    while manifest_path(&lake, sequence).is_file() {
        let mut manifest = read_manifest(&lake, sequence);
        edit(&mut manifest);
        manifest.body.previous_sha256 = previous;
        previous = Some(write_signed(dir, sequence, manifest));
        sequence += 1;
    }
}

fn manifest_sha(lake: &Path, sequence: u64) -> String {
    sha256_hex(&std::fs::read(manifest_path(lake, sequence)).expect("manifest"))
}

/// Signs `manifest` with the keyring of `dir` (as it stands: its links are the caller's) and
/// stores it as manifest `stored_as`; returns the hash of the stored bytes.
fn write_signed(dir: &Path, stored_as: u64, mut manifest: Manifest) -> String {
    let keyring =
        LocalKeyring::open(&dir.join(".sessionlake/keyring.json")).expect("the test keyring");
    let message = manifest.body.signing_bytes().expect("signing bytes");
    use base64::Engine as _;
    manifest.signature.value =
        base64::engine::general_purpose::STANDARD.encode(keyring.signer().sign(&message));
    let bytes = serde_json::to_vec_pretty(&manifest).expect("encode");
    std::fs::write(manifest_path(&dir.join("lake"), stored_as), &bytes).expect("write manifest");
    sha256_hex(&bytes)
}

/// The (kind, path) pairs of `uncommitted-object` findings for what `manifest` added (but
/// `lake.json`, which sits outside the folders whose every object must be committed).
fn uncommitted_of(manifest: &Manifest) -> Vec<(String, String)> {
    manifest
        .body
        .added
        .iter()
        .filter(|entry| entry.path != paths::LAKE_IDENTITY)
        .map(|entry| pair("uncommitted-object", &entry.path))
        .collect()
}

/// The (kind, path) pairs of `delta-log-differs` findings that `expected`'s uncommitted table
/// files bring: the writer brought each table's Delta log to the chain as it committed it, so
/// a log lists the files of a commit verify no longer trusts (and other engines read them).
fn delta_logs_of(expected: &[(String, String)]) -> Vec<(String, String)> {
    let tables: std::collections::BTreeSet<&str> = expected
        .iter()
        .filter(|(kind, path)| kind == "uncommitted-object" && path.ends_with(".parquet"))
        .filter_map(|(_, path)| path.split('/').next())
        .collect();
    tables
        .into_iter()
        .map(|table| pair("delta-log-differs", &format!("{table}/{}", paths::DELTA_LOG_DIR)))
        .collect()
}

fn shift(rfc3339: &str, hours: i64) -> String {
    let time = chrono::DateTime::parse_from_rfc3339(rfc3339).expect("committed_at");
    (time + chrono::Duration::hours(hours)).to_rfc3339()
}

#[test]
fn test_verify_reports_each_tampering_precisely() {
    let original = lake_of_four_commits();
    let objects = files_under(&original.path().join("lake"));
    let object = |prefix: &str| sessionlake_tests::file_starting_with(&objects, prefix);

    // A flipped byte in a raw transcript.
    let dir = copy_of(original.path());
    let raw = object("raw");
    let mut bytes = std::fs::read(dir.path().join("lake").join(&raw)).expect("read");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(dir.path().join("lake").join(&raw), bytes).expect("write");
    assert_eq!(findings(dir.path(), &[]), (1, vec![pair("altered-object", &raw)]), "flipped byte");

    // A deleted commands file.
    let dir = copy_of(original.path());
    let commands = object("commands");
    std::fs::remove_file(dir.path().join("lake").join(&commands)).expect("delete");
    assert_eq!(findings(dir.path(), &[]), (1, vec![pair("missing-object", &commands)]), "deleted");

    // An added file.
    let dir = copy_of(original.path());
    let planted = "sessions/dt=2026-03-14/mallory-0123456789abcdef0.local.1.parquet";
    std::fs::write(dir.path().join("lake").join(planted), b"PAR1").expect("plant");
    assert_eq!(
        findings(dir.path(), &[]),
        (1, vec![pair("uncommitted-object", planted)]),
        "added object"
    );

    // A manifest deleted from the middle: the hole, and the objects only it named.
    let dir = copy_of(original.path());
    let lake = dir.path().join("lake");
    let deleted = read_manifest(&lake, 1);
    std::fs::remove_file(manifest_path(&lake, 1)).expect("delete manifest");
    let mut expected = vec![pair("missing-manifest", &paths::manifest_object(1))];
    expected.extend(deleted.body.added.iter().map(|entry| pair("uncommitted-object", &entry.path)));
    expected.extend(delta_logs_of(&expected));
    expected.sort();
    assert_eq!(findings(dir.path(), &[]), (1, expected), "deleted manifest");

    // Two manifests swapped.
    let dir = copy_of(original.path());
    let lake = dir.path().join("lake");
    let (one, two) = (manifest_path(&lake, 1), manifest_path(&lake, 2));
    let staged = lake.join("manifest/swap.tmp");
    std::fs::rename(&one, &staged).expect("swap");
    std::fs::rename(&two, &one).expect("swap");
    std::fs::rename(&staged, &two).expect("swap");
    assert_eq!(
        findings(dir.path(), &[]),
        (
            1,
            vec![
                pair("reordered-manifest", &paths::manifest_object(1)),
                pair("reordered-manifest", &paths::manifest_object(2)),
            ]
        ),
        "swapped manifests"
    );
    let (_, records) = verify_json(dir.path(), &[], false);
    let detail = records[0]["data"]["detail"].as_str().unwrap_or_default();
    assert_eq!(
        detail,
        format!(
            "stored as sequence 1 but holds sequence 2 (swapped with {})",
            paths::manifest_object(2)
        ),
    );

    // An old manifest replayed as the next one.
    let dir = copy_of(original.path());
    let lake = dir.path().join("lake");
    std::fs::copy(manifest_path(&lake, 1), manifest_path(&lake, EXAMPLE_COMMITS)).expect("replay");
    let replayed = paths::manifest_object(EXAMPLE_COMMITS);
    assert_eq!(
        findings(dir.path(), &[]),
        (1, vec![pair("replayed-manifest", &replayed)]),
        "replayed manifest"
    );

    // An edited manifest (the newest, so that no link breaks) fails its signature.
    let dir = copy_of(original.path());
    let lake = dir.path().join("lake");
    let newest = manifest_path(&lake, EXAMPLE_COMMITS - 1);
    let text = std::fs::read_to_string(&newest).expect("manifest");
    std::fs::write(&newest, text.replacen("\"ingest\"", "\"retention\"", 1)).expect("edit");
    // What it alone names is vouched for by nothing trusted any more.
    let mut expected = vec![pair("bad-signature", &paths::manifest_object(EXAMPLE_COMMITS - 1))];
    expected.extend(uncommitted_of(&read_manifest(&lake, EXAMPLE_COMMITS - 1)));
    expected.extend(delta_logs_of(&expected));
    expected.sort();
    assert_eq!(findings(dir.path(), &[]), (1, expected), "edited manifest");

    // The re-signing helper alone leaves an intact chain.
    let dir = copy_of(original.path());
    rewrite_chain(dir.path(), 0, |_| {});
    assert_eq!(findings(dir.path(), &[]), (0, vec![]), "re-signed chain");
}

#[test]
fn test_verify_reports_a_gap_beyond_the_idle_period_and_honours_the_range() {
    let original = lake_of_four_commits();
    let dir = copy_of(original.path());
    // Every commit promises a commit within 10 minutes; manifests 2 and later are moved three
    // hours on: re-linked and re-signed, only the gap before manifest 2 is left.
    rewrite_chain(dir.path(), 0, |manifest| {
        manifest.body.idle_period_secs = Some(600);
        if manifest.body.sequence >= 2 {
            manifest.body.committed_at = shift(&manifest.body.committed_at, 3);
        }
    });
    let gapped = paths::manifest_object(2);
    assert_eq!(findings(dir.path(), &[]), (1, vec![pair("gap", &gapped)]), "gap");
    let (_, records) = verify_json(dir.path(), &[], false);
    let detail = records[0]["data"]["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains(&format!("after {}", paths::manifest_object(1)))
            && detail.contains("its idle period is 600s"),
        "{detail}"
    );

    // A range that ends before manifest 2 was committed does not report on it; one that
    // starts at it does, and counts only the manifests in it.
    let lake = dir.path().join("lake");
    let second_at = read_manifest(&lake, 2).body.committed_at;
    let before = shift(&second_at, -1);
    assert_eq!(findings(dir.path(), &["--until", &before]), (0, vec![]), "--until");
    assert_eq!(
        findings(dir.path(), &["--since", &second_at]),
        (1, vec![pair("gap", &gapped)]),
        "--since"
    );
    let (_, records) = verify_json(dir.path(), &["--since", &second_at], false);
    let summary = records.last().expect("summary");
    assert_eq!(summary["data"]["manifests"], Value::from(EXAMPLE_COMMITS - 2), "{summary}");

    // A signature dated before its key's validity began is refused.
    let dir = copy_of(original.path());
    rewrite_chain(dir.path(), 0, |manifest| {
        if manifest.body.sequence == 0 {
            manifest.body.committed_at = shift(&manifest.body.committed_at, -24);
        }
    });
    let mut expected = vec![pair("signature-outside-validity", &paths::manifest_object(0))];
    expected.extend(uncommitted_of(&read_manifest(&dir.path().join("lake"), 0)));
    expected.extend(delta_logs_of(&expected));
    expected.sort();
    assert_eq!(findings(dir.path(), &[]), (1, expected), "signed before valid_from");
}

/// The probe of the issue-5 audit: a forged manifest appended to the chain (unsigned, dated
/// years back) removes a raw transcript, which is then deleted. The forgery is reported
/// whatever the range, its date is reported as going backwards, and the deletion is named.
// See: issue 5 (verify: forged-manifest bug)
#[test]
fn test_forged_manifest_does_not_hide_a_deletion() {
    let original = lake_of_four_commits();
    let dir = copy_of(original.path());
    let lake = dir.path().join("lake");
    let newest = read_manifest(&lake, EXAMPLE_COMMITS - 1);
    let raw = (0..EXAMPLE_COMMITS)
        .flat_map(|sequence| read_manifest(&lake, sequence).body.added)
        .find(|entry| entry.path.starts_with("raw/"))
        .expect("a raw transcript");
    let mut forged = newest.clone();
    forged.body.sequence = EXAMPLE_COMMITS;
    forged.body.previous_sha256 = Some(manifest_sha(&lake, EXAMPLE_COMMITS - 1));
    forged.body.committed_at = "2020-01-01T00:00:00+00:00".into();
    forged.body.action = sessionlake_schemas::manifest::CommitAction::Retention;
    forged.body.added = vec![];
    forged.body.removed = vec![raw.clone()];
    forged.signature.value = String::new();
    let forged_path = paths::manifest_object(EXAMPLE_COMMITS);
    std::fs::write(lake.join(&forged_path), serde_json::to_vec_pretty(&forged).expect("encode"))
        .expect("append the forgery");
    std::fs::remove_file(lake.join(&raw.path)).expect("delete the transcript");

    let mut expected = vec![
        pair("backdated-manifest", &forged_path),
        pair("bad-signature", &forged_path),
        pair("missing-object", &raw.path),
    ];
    expected.sort();
    assert_eq!(findings(dir.path(), &[]), (1, expected.clone()), "whole chain");
    assert_eq!(findings(dir.path(), &["--since", "1d"]), (1, expected.clone()), "--since 1d");
    // A range after every genuine commit: only the forgery and what it names are left to
    // report, and they are.
    let after = shift(&newest.body.committed_at, 1);
    assert_eq!(findings(dir.path(), &["--since", &after]), (1, expected), "--since {after}");
}

/// A second manifest continuing the chain from a point another already continues it from, and
/// one that holds the number of another, are forks; what only a fork names is not committed.
#[test]
fn test_verify_reports_forks_and_what_they_add() {
    let original = lake_of_four_commits();
    let dir = copy_of(original.path());
    let lake = dir.path().join("lake");
    let planted = "sessions/dt=2026-03-14/mallory-0123456789abcdef0.local.1.parquet";
    std::fs::write(lake.join(planted), b"PAR1").expect("plant");
    let planted_entry = sessionlake_schemas::manifest::ObjectEntry::new(
        planted.into(),
        4,
        sha256_hex(b"PAR1"),
        sessionlake_schemas::manifest::ObjectKind::Sessions,
        vec!["mallory-0123456789abcdef0".into()],
    );
    // Stored under the next number, continuing from manifest 2 like manifest 3 does.
    let mut rival = read_manifest(&lake, EXAMPLE_COMMITS - 1);
    rival.body.sequence = EXAMPLE_COMMITS;
    rival.body.added = vec![planted_entry];
    write_signed(dir.path(), EXAMPLE_COMMITS, rival);
    let fork = paths::manifest_object(EXAMPLE_COMMITS);
    let (code, records) = verify_json(dir.path(), &[], false);
    let found: Vec<(String, String, String)> = records
        .iter()
        .filter(|record| record["type"] == "finding")
        .map(|record| {
            let text = |field: &str| record["data"][field].as_str().unwrap_or_default().to_string();
            (text("kind"), text("path"), text("detail"))
        })
        .collect();
    assert_eq!(code, 1, "{found:?}");
    let pairs: Vec<(&str, &str)> =
        found.iter().map(|(kind, path, _)| (kind.as_str(), path.as_str())).collect();
    assert_eq!(pairs, vec![("fork", fork.as_str()), ("uncommitted-object", planted)], "{found:?}");
    assert!(found[1].2.contains(&fork) && found[1].2.contains("forks"), "{found:?}");

    // A rival of manifest 2 under the same number, but another body: a fork as well.
    let dir = copy_of(original.path());
    let lake = dir.path().join("lake");
    let mut rival = read_manifest(&lake, 2);
    rival.body.writer_id = "mallory".into();
    write_signed(dir.path(), EXAMPLE_COMMITS, rival);
    assert_eq!(findings(dir.path(), &[]), (1, vec![pair("fork", &fork)]), "same number");
}

/// A manifest whose link names no manifest of the chain (re-signed by the key holder, the
/// manifests after it re-linked to it) is reported, and what it alone names is not trusted.
#[test]
fn test_verify_reports_a_broken_link() {
    let original = lake_of_four_commits();
    let dir = copy_of(original.path());
    let lake = dir.path().join("lake");
    let mut broken = read_manifest(&lake, 2);
    // A hash no manifest has (one another manifest also names would make it a fork).
    broken.body.previous_sha256 = Some("0".repeat(64));
    write_signed(dir.path(), 2, broken.clone());
    rewrite_chain(dir.path(), 3, |_| {});
    let mut expected = vec![pair("broken-link", &paths::manifest_object(2))];
    expected.extend(uncommitted_of(&broken));
    expected.extend(delta_logs_of(&expected));
    expected.sort();
    assert_eq!(findings(dir.path(), &[]), (1, expected), "broken link");
}

async fn create_signing_key(kms: &aws_sdk_kms::Client) -> String {
    kms.create_key()
        .key_spec(aws_sdk_kms::types::KeySpec::EccNistP256)
        .key_usage(aws_sdk_kms::types::KeyUsageType::SignVerify)
        .send()
        .await
        .expect("create signing key")
        .key_metadata()
        .expect("metadata")
        .key_id()
        .to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn test_kms_signed_chain_verifies_and_tampering_fails() {
    let kms = aws_sdk_kms::Client::new(&sdk_config().await);
    let first_key = create_signing_key(&kms).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let examples = session_examples(dir.path());
    let ingest = |key: &str| {
        run(binary("sessionlake-ingest", true).current_dir(dir.path()).args([
            "--signing-key",
            key,
            "--batch-sessions",
            "2",
        ]))
    };
    let first = ingest(&first_key);
    assert_eq!(first.code, 0, "{}", first.stderr);

    // Every manifest is signed by the KMS key, whose public key the lake holds.
    let lake = dir.path().join("lake");
    let manifest = read_manifest(&lake, 0);
    assert_eq!(manifest.signature.algorithm, "ecdsa-p256-sha256");
    let first_arn = manifest.signature.key_id.clone();
    assert!(
        first_arn.starts_with("arn:aws:kms:") && first_arn.ends_with(&first_key),
        "{first_arn}"
    );
    let record_path = lake.join(sessionlake_storage::manifest::public_key_path(&first_arn));
    let record: PublicKeyRecord =
        serde_json::from_slice(&std::fs::read(&record_path).expect("key record")).expect("record");
    assert_eq!((record.algorithm.as_str(), record.valid_until), ("ecdsa-p256-sha256", None));

    let (code, records) = verify_json(dir.path(), &["--signing-key", &first_key], true);
    assert_eq!(code, 0, "{records:?}");
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0]["data"]["signer_pinned"], Value::Bool(true), "{records:?}");
    // The keyring alone does not pin the KMS key: every manifest is named, and every object
    // they name is vouched for by nothing trusted.
    let (code, found) = findings(dir.path(), &[]);
    assert_eq!(code, 1);
    let mut expected = vec![
        pair("unknown-signer", &paths::manifest_object(0)),
        pair("unknown-signer", &paths::manifest_object(1)),
    ];
    expected.extend(uncommitted_of(&read_manifest(&lake, 0)));
    expected.extend(uncommitted_of(&read_manifest(&lake, 1)));
    expected.extend(delta_logs_of(&expected));
    expected.sort();
    assert_eq!(found, expected);

    // A second KMS key takes over: the first is retired, its old signatures still verify
    // with both keys pinned, and it never signs again.
    let second_key = create_signing_key(&kms).await;
    std::fs::copy(
        examples.join("s3/ssm-logs/alice-0123456789abcdef0.log"),
        examples.join("s3/ssm-logs/zed-0123456789abcdef0.log"),
    )
    .expect("new session");
    // Not without naming the key it replaces: ingest trusts no one else's manifests.
    let untrusted = ingest(&second_key);
    assert_eq!(untrusted.code, 2, "{}", untrusted.stderr);
    assert!(
        untrusted.stderr.contains("none of the 2 manifests is trusted"),
        "{}",
        untrusted.stderr
    );
    let rotate = || {
        run(binary("sessionlake-ingest", true).current_dir(dir.path()).args([
            "--signing-key",
            &second_key,
            "--trust-signing-key",
            &first_key,
            "--batch-sessions",
            "2",
        ]))
    };
    // Nor by a flag: a new signing key enters only through `rekey --new-signing-key`, in a
    // commit of its own (issue 18, requirement 4). Refused, naming both keys; nothing written.
    let manifests_before = files_under(&lake.join("manifest")).len();
    let implicit = rotate();
    assert_eq!(implicit.code, 2, "{}", implicit.stderr);
    assert!(
        implicit.stderr.contains("rekey --new-signing-key")
            && implicit.stderr.contains(&first_arn)
            && implicit.stderr.contains(&second_key),
        "{}",
        implicit.stderr
    );
    assert_eq!(files_under(&lake.join("manifest")).len(), manifests_before);
    let rekeyed = run(binary("sessionlake", true).current_dir(dir.path()).args([
        "rekey",
        "--new-signing-key",
        &second_key,
        "--signing-key",
        &first_key,
        "--reason",
        "annual rotation",
    ]));
    assert_eq!(rekeyed.code, 0, "{}", rekeyed.stderr);
    assert!(rekeyed.stdout.contains(&format!("retiring {first_arn}")), "{}", rekeyed.stdout);
    let handover = read_manifest(&lake, manifests_before as u64);
    assert_eq!(handover.body.action, sessionlake_schemas::manifest::CommitAction::Rekey);
    assert_eq!(handover.body.reason.as_deref(), Some("annual rotation"));
    assert!(handover.signature.key_id.ends_with(&second_key), "{:?}", handover.signature);
    let second = rotate();
    assert_eq!(second.code, 0, "{}", second.stderr);
    let retired_path = lake.join(sessionlake_storage::manifest::retired_key_path(&first_arn));
    let retired: PublicKeyRecord =
        serde_json::from_slice(&std::fs::read(&retired_path).expect("retired")).expect("record");
    assert!(retired.valid_until.is_some(), "{retired:?}");
    let both = ["--signing-key", &first_key, "--signing-key", &second_key];
    let (code, records) = verify_json(dir.path(), &both, true);
    assert_eq!(code, 0, "{records:?}");
    // The retired key never signs again, even when its successor's manifests are trusted;
    // without them trusted, ingest does not even link to the successor's newest manifest.
    let untrusted_head = ingest(&first_key);
    assert_eq!(untrusted_head.code, 2, "{}", untrusted_head.stdout);
    assert!(untrusted_head.stderr.contains("is not trusted"), "{}", untrusted_head.stderr);
    let refused = run(binary("sessionlake-ingest", true).current_dir(dir.path()).args([
        "--signing-key",
        &first_key,
        "--trust-signing-key",
        &second_key,
    ]));
    assert_eq!(refused.code, 2, "{}", refused.stdout);
    assert!(refused.stderr.contains("retired"), "{}", refused.stderr);

    // Export of a KMS-signed lake. Without the KMS keys nothing the exporter trusts vouches
    // for the manifests: export refuses and names the key.
    let alice = "alice-0123456789abcdef0";
    let export = |args: &[&str]| {
        run(binary("sessionlake", true).current_dir(dir.path()).arg("export").arg(alice).args(args))
    };
    let refused = export(&["--out", "untrusted"]);
    refused.assert_stderr_holds(2, &[&first_arn, "--signing-key"]);
    // With both keys trusted, the second signs SHA256SUMS (public-key.pem) and the first, which
    // signed the session's manifests, is manifest-key-1.pem; the README's own openssl
    // commands (two steps for ECDSA over a digest) verify both.
    let exported =
        export(&["--out", "bundle", "--signing-key", &second_key, "--signing-key", &first_key]);
    assert_eq!(exported.code, 0, "{}", exported.stderr);
    let bundle = dir.path().join("bundle");
    let readme = crate::export::assert_bundle_verifies(&bundle);
    assert!(readme.contains("openssl dgst -sha256 -verify manifest-key-1.pem"), "{readme}");
    let provenance: Value =
        serde_json::from_slice(&std::fs::read(bundle.join("provenance.json")).expect("read"))
            .expect("provenance");
    let signing = &provenance["signing_key"];
    assert_eq!(signing["algorithm"], "ecdsa-p256-sha256", "{provenance}");
    assert!(signing["key_id"].as_str().is_some_and(|id| id.ends_with(&second_key)), "{signing}");
    // Both keys signed manifests of the bundle (the second the retirement of the first).
    let manifest_keys: Vec<(&str, &str)> = provenance["manifest_keys"]
        .as_array()
        .expect("manifest_keys")
        .iter()
        .map(|key| (key["key_id"].as_str().unwrap_or(""), key["file"].as_str().unwrap_or("")))
        .collect();
    assert!(
        manifest_keys.contains(&(first_arn.as_str(), "manifest-key-1.pem")),
        "{manifest_keys:?}"
    );
    assert_eq!(manifest_keys.len(), 2, "{manifest_keys:?}");
    assert!(manifest_keys.contains(&(signing["key_id"].as_str().unwrap_or(""), "public-key.pem")));
    for record in [
        sessionlake_storage::manifest::public_key_path(&first_arn),
        sessionlake_storage::manifest::retired_key_path(&first_arn),
    ] {
        assert!(bundle.join("lake").join(&record).is_file(), "{record} is not in the bundle");
    }

    // A tampered manifest fails its ECDSA signature (the newest: 2 is the handover).
    let newest = manifest_path(&lake, 3);
    let text = std::fs::read_to_string(&newest).expect("manifest");
    std::fs::write(&newest, text.replacen("\"ingest\"", "\"retention\"", 1)).expect("edit");
    let (code, records) = verify_json(dir.path(), &both, true);
    assert_eq!(code, 1);
    let mut kinds: Vec<(String, String)> = records
        .iter()
        .filter(|record| record["type"] == "finding")
        .map(|record| {
            let text = |field: &str| record["data"][field].as_str().unwrap_or("").to_string();
            (text("kind"), text("path"))
        })
        .collect();
    kinds.sort();
    // What only the tampered manifest names is vouched for by nothing trusted any more.
    let mut expected = vec![pair("bad-signature", &paths::manifest_object(3))];
    expected.extend(uncommitted_of(&read_manifest(&lake, 3)));
    expected.extend(delta_logs_of(&expected));
    expected.sort();
    assert_eq!(kinds, expected, "{records:?}");
}
