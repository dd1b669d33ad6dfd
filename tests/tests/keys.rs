//! Keys end to end: no plaintext at rest (canaries through a whole ingest), re-keying a lake
//! under a KMS key of moto's server, and what a disabled KMS key does to readers and to ingest.

use std::path::{Path, PathBuf};

use sessionlake_tests::{
    FaultProxy, PrivateMoto, Ran, binary, files_under, run, sdk_config, sdk_config_for, unique,
};

/// A command and an output no other input holds, to look for in every byte written.
const CANARY_COMMAND: &str = "cat /srv/CANARY-COMMAND-7f3a9c41e2";
const CANARY_OUTPUT: &str = "CANARY-OUTPUT-51be02d8c7-secret";

const PROMPT: &str = "\x1b[?2004h\x1b]0;ubuntu@ip-10-0-0-12: ~\x07\x1b[01;32mubuntu@ip-10-0-0-12\x1b[00m:\x1b[01;34m~\x1b[00m$ ";

/// Writes an S3-form transcript holding the canaries into `dir/in/<session>.log`.
fn canary_source(dir: &Path, session: &str) -> (PathBuf, Vec<u8>) {
    let source = dir.join("in");
    std::fs::create_dir_all(&source).expect("mkdir");
    let transcript = format!(
        "Script started on 2026-03-16 14:10:00+00:00 [TERM=\"xterm-256color\"]\n\
         {PROMPT}{CANARY_COMMAND}\r\r\n\x1b[?2004l\r{CANARY_OUTPUT}\r\r\n\
         {PROMPT}exit\r\r\n\x1b[?2004l\rexit\r\r\n\n\
         Script done on 2026-03-16 14:10:50+00:00 [COMMAND_EXIT_CODE=\"0\"]\n"
    )
    .into_bytes();
    std::fs::write(source.join(format!("{session}.log")), &transcript).expect("write");
    (source, transcript)
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack.windows(needle.len()).any(|window| window == needle.as_bytes())
}

fn cli(work: &Path, aws: bool) -> std::process::Command {
    let mut command = binary("sessionlake", aws);
    command.current_dir(work).args(["--lake", "lake", "--keyring", "keyring.json"]);
    command
}

/// Runs ingest from `source` into `work/lake`; with data keys from `kms` (a server and a key).
fn ingest(work: &Path, source: &Path, kms: Option<(&PrivateMoto, &str)>) -> Ran {
    let mut command = binary("sessionlake-ingest", kms.is_some());
    command
        .current_dir(work)
        .args(["--lake", "lake", "--keyring", "keyring.json", "--local"])
        .arg(source);
    if let Some((moto, key)) = kms {
        moto.point(&mut command).args(["--kms-key-id", key]);
    }
    run(&mut command)
}

#[test]
fn test_no_plaintext_command_output_or_key_at_rest_or_in_logs() {
    let work = tempfile::tempdir().expect("tempdir");
    let session = "canary-0a1b2c3d4e5f60718";
    let (source, _) = canary_source(work.path(), session);
    // A second session of the same day, so that compaction has two to merge.
    canary_source(work.path(), "canary-0a1b2c3d4e5f60719");
    // The pipeline's temporary files go here, to be scanned too.
    let temp = work.path().join("tmp");
    std::fs::create_dir_all(&temp).expect("mkdir");
    let ingested = run(binary("sessionlake-ingest", false)
        .current_dir(work.path())
        .env("TMPDIR", &temp)
        .args(["--lake", "lake", "--keyring", "keyring.json", "--log", "trace", "--local"])
        .arg(&source));
    assert_eq!(ingested.code, 0, "{}", ingested.stderr);
    assert!(ingested.stdout.contains("ingested 2 sessions"), "{}", ingested.stdout);
    // Compaction decrypts both sessions' rows and writes them again: in memory only.
    let compacted = run(cli(work.path(), false)
        .env("TMPDIR", &temp)
        .env("SESSIONLAKE_LOG", "trace")
        .args(["compact", "--min-age", "0s"]));
    assert_eq!(compacted.code, 0, "{}", compacted.stderr);
    assert!(compacted.stderr.contains("into 2 files"), "{}", compacted.stderr);

    // The canaries were ingested: the command is found, its output shown.
    let shown = run(cli(work.path(), false).args(["show", session, "--json"]));
    assert_eq!(shown.code, 0, "{}", shown.stderr);
    assert!(shown.stdout.contains(CANARY_COMMAND), "{}", shown.stdout);
    assert!(shown.stdout.contains(CANARY_OUTPUT), "{}", shown.stdout);

    // Not a byte of either anywhere the pipeline wrote, nor in its logs (at trace level).
    let keyring: serde_json::Value =
        serde_json::from_slice(&std::fs::read(work.path().join("keyring.json")).expect("keyring"))
            .expect("json");
    let master = keyring["master_key"].as_str().expect("master key").to_string();
    let signing = keyring["signing_key_pkcs8"].as_str().expect("signing key").to_string();
    let mut scanned = 0;
    for dir in [work.path().join("lake"), temp] {
        for file in files_under(&dir) {
            let bytes = std::fs::read(dir.join(&file)).expect("read");
            for secret in [CANARY_COMMAND, CANARY_OUTPUT, &master, &signing] {
                assert!(!contains(&bytes, secret), "{secret:?} in {}", file.display());
            }
            scanned += 1;
        }
    }
    assert!(scanned >= 6, "only {scanned} files written?");
    let logs = [
        ("ingest stdout", &ingested.stdout),
        ("ingest stderr", &ingested.stderr),
        ("compact stdout", &compacted.stdout),
        ("compact stderr", &compacted.stderr),
    ];
    for (name, log) in logs {
        for secret in [CANARY_COMMAND, CANARY_OUTPUT, &master, &signing] {
            assert!(!log.contains(secret), "{secret:?} in the {name}");
        }
    }
    assert!(ingested.stderr.len() > 200, "trace logging wrote almost nothing");
}

#[test]
fn test_keyring_under_a_passphrase_opens_only_with_it() {
    let work = tempfile::tempdir().expect("tempdir");
    let session = "locked-0a1b2c3d4e5f60718";
    let (source, _) = canary_source(work.path(), session);
    let passphrase = "a long passphrase from the secret store";
    let ingested = run(binary("sessionlake-ingest", false)
        .current_dir(work.path())
        .env("SESSIONLAKE_KEYRING_PASSPHRASE", passphrase)
        .args(["--lake", "lake", "--keyring", "keyring.json", "--local"])
        .arg(&source));
    assert_eq!(ingested.code, 0, "{}", ingested.stderr);
    let file = std::fs::read_to_string(work.path().join("keyring.json")).expect("keyring");
    assert!(file.contains("pbkdf2-hmac-sha256"), "{file}");

    let with = run(cli(work.path(), false)
        .env("SESSIONLAKE_KEYRING_PASSPHRASE", passphrase)
        .args(["show", session, "--json"]));
    assert_eq!(with.code, 0, "{}", with.stderr);
    assert!(with.stdout.contains(CANARY_COMMAND), "{}", with.stdout);
    let without = run(cli(work.path(), false).args(["show", session, "--json"]));
    assert_eq!(without.code, 2, "{}", without.stdout);
    assert!(without.stderr.contains("SESSIONLAKE_KEYRING_PASSPHRASE"), "{}", without.stderr);
    let wrong = run(cli(work.path(), false)
        .env("SESSIONLAKE_KEYRING_PASSPHRASE", "guess")
        .args(["show", session, "--json"]));
    assert_eq!(wrong.code, 2, "{}", wrong.stdout);
    assert!(wrong.stderr.contains("wrong passphrase"), "{}", wrong.stderr);
}

/// Creates a KMS key and returns its id and ARN.
async fn kms_key(kms: &aws_sdk_kms::Client) -> (String, String) {
    let created = kms.create_key().send().await.expect("create key");
    let metadata = created.key_metadata().expect("metadata");
    (metadata.key_id().to_string(), metadata.arn().expect("arn").to_string())
}

// moto's server does not refuse a disabled key (../shared/docs/stack-notes.md); a key it no
// longer knows is refused as AWS refuses a destroyed or inaccessible one (AccessDenied /
// NotFound), so the test takes its own server's keys away by restarting it.
#[tokio::test]
async fn test_rekey_to_kms_then_a_lost_key_is_named_and_nothing_plaintext_is_written() {
    let mut moto = PrivateMoto::start();
    let kms = aws_sdk_kms::Client::new(&sdk_config_for(&moto.endpoint()).await);
    let work = tempfile::tempdir().expect("tempdir");
    let session = "rekey-0a1b2c3d4e5f60718";
    let (source, transcript) = canary_source(work.path(), session);
    let ingested = ingest(work.path(), &source, None);
    assert_eq!(ingested.code, 0, "{}", ingested.stderr);

    // Re-wrap every key under a KMS key, named by alias (wrapped keys name it by ARN).
    let (key_id, arn) = kms_key(&kms).await;
    let alias = format!("alias/{}", unique("sessionlake"));
    kms.create_alias().alias_name(&alias).target_key_id(&key_id).send().await.expect("alias");
    let raw_before = files_under(&work.path().join("lake/raw"));
    let rekeyed =
        run(moto.point(&mut cli(work.path(), true)).args(["rekey", "--to-kms", &alias, "--json"]));
    assert_eq!(rekeyed.code, 0, "{}", rekeyed.stderr);
    let summary: serde_json::Value = serde_json::from_str(rekeyed.stdout.trim()).expect("json");
    // One session key record (the raw transcript's and the commands file's data keys are
    // wrapped under the session key, which does not change).
    assert_eq!(summary["data"]["rewrapped"], 1, "{summary}");
    assert_eq!(summary["data"]["key_id"], arn.as_str());
    assert_eq!(files_under(&work.path().join("lake/raw")), raw_before, "no object rewritten");
    let again =
        run(moto.point(&mut cli(work.path(), true)).args(["rekey", "--to-kms", &arn, "--json"]));
    assert_eq!(again.code, 0, "{}", again.stderr);
    let summary: serde_json::Value = serde_json::from_str(again.stdout.trim()).expect("json");
    assert_eq!(summary["data"]["rewrapped"], 0, "{summary}");
    assert_eq!(summary["data"]["unchanged"], 1, "{summary}");

    // The chain verifies, and records the rekey.
    let verified = run(cli(work.path(), false).args(["verify"]));
    assert_eq!(verified.code, 0, "{}{}", verified.stdout, verified.stderr);
    let manifests = work.path().join("lake/manifest");
    let last = files_under(&manifests).pop().expect("a manifest");
    let last = std::fs::read_to_string(manifests.join(last)).expect("manifest");
    assert!(last.contains("\"action\": \"rekey\""), "{last}");

    // Without the keyring, KMS alone opens the lake now.
    std::fs::rename(work.path().join("keyring.json"), work.path().join("away.json")).expect("mv");
    let raw = run(moto.point(&mut cli(work.path(), true)).args(["show", session, "--raw"]));
    assert_eq!(raw.code, 0, "{}", raw.stderr);
    assert_eq!(raw.stdout.as_bytes(), transcript.as_slice());
    let found = run(moto.point(&mut cli(work.path(), true)).args([
        "search",
        "--command-contains",
        "CANARY",
        "--json",
    ]));
    assert_eq!(found.code, 0, "{}", found.stderr);
    assert!(found.stdout.contains(CANARY_COMMAND), "{}", found.stdout);

    // The key is gone: the error names the key and the object; nothing is shown.
    moto.restart();
    let denied = run(moto.point(&mut cli(work.path(), true)).args(["show", session, "--raw"]));
    assert_eq!(denied.code, 2, "{}", denied.stderr);
    assert!(denied.stderr.contains(&arn), "key not named: {}", denied.stderr);
    assert!(denied.stderr.contains("raw/dt="), "object not named: {}", denied.stderr);
    assert!(denied.stdout.is_empty(), "{}", denied.stdout);

    // Ingest under a key KMS does not know fails naming it, and writes nothing of the session.
    std::fs::rename(work.path().join("away.json"), work.path().join("keyring.json")).expect("mv");
    let next = "rekey-1a1b2c3d4e5f60718";
    std::fs::write(source.join(format!("{next}.log")), &transcript).expect("write");
    let lake = work.path().join("lake");
    let before = files_under(&lake);
    let refused = ingest(work.path(), &source, Some((&moto, &key_id)));
    assert_ne!(refused.code, 0, "{}", refused.stdout);
    assert!(refused.stderr.contains(&key_id), "key not named: {}", refused.stderr);
    let written: Vec<_> =
        files_under(&lake).into_iter().filter(|file| !before.contains(file)).collect();
    assert!(
        written.iter().all(|file| !file.to_string_lossy().contains(next)),
        "objects of {next} written without a key: {written:?}"
    );
    for file in files_under(&lake) {
        let bytes = std::fs::read(lake.join(&file)).expect("read");
        assert!(!contains(&bytes, CANARY_OUTPUT), "plaintext in {}", file.display());
    }

    // With a key KMS knows, the same run ingests the session.
    let (new_key, _) =
        kms_key(&aws_sdk_kms::Client::new(&sdk_config_for(&moto.endpoint()).await)).await;
    let resumed = ingest(work.path(), &source, Some((&moto, &new_key)));
    assert_eq!(resumed.code, 0, "{}", resumed.stderr);
    let shown = run(moto.point(&mut cli(work.path(), true)).args(["show", next, "--json"]));
    assert_eq!(shown.code, 0, "{}", shown.stderr);
    assert!(shown.stdout.contains(CANARY_COMMAND), "{}", shown.stdout);

    // The new key wraps the new session's key; the re-keyed session keeps the key it got.
    let provider_key_of = |session: &str| -> String {
        let records = lake.join("keys/sessions");
        let file = files_under(&records)
            .into_iter()
            .find(|file| file.to_string_lossy().starts_with(session))
            .unwrap_or_else(|| panic!("no session key record of {session}"));
        let record: serde_json::Value =
            serde_json::from_slice(&std::fs::read(records.join(file)).expect("read"))
                .expect("record");
        record["key"]["key_id"].as_str().expect("key_id").to_string()
    };
    assert!(provider_key_of(next).ends_with(&new_key), "{}", provider_key_of(next));
    assert_eq!(provider_key_of(session), arn);
}

/// Sets the fault proxy to answer every `action` call to KMS with `kind`.
fn kms_fault(proxy: &FaultProxy, kind: &str, action: &str) {
    proxy.set(&serde_json::json!({"kms": 1.0, "kinds": [kind], "kms_actions": [action]}));
}

/// What KMS answers for a key its policy denies the caller, or a disabled key (which moto's
/// server does not refuse: the fault proxy gives AWS's answers): readers name the key and the
/// object and show nothing; ingest names the class, writes nothing in plaintext and commits
/// nothing of the sessions it could not key.
#[tokio::test(flavor = "multi_thread")]
async fn test_denied_or_disabled_kms_key_is_named_and_nothing_plaintext_is_written() {
    let kms = aws_sdk_kms::Client::new(&sdk_config().await);
    let (key_id, arn) = kms_key(&kms).await;
    let work = tempfile::tempdir().expect("tempdir");
    let session = "denied-0a1b2c3d4e5f60718";
    let (source, transcript) = canary_source(work.path(), session);
    let ingest_through = |endpoint: &str| {
        run(binary("sessionlake-ingest", true)
            .env("AWS_ENDPOINT_URL", endpoint)
            .current_dir(work.path())
            .args(["--lake", "lake", "--keyring", "keyring.json", "--log", "info"])
            .args(["--kms-key-id", &key_id, "--retry-max-attempts", "1", "--local"])
            .arg(&source))
    };
    let proxy = tokio::task::block_in_place(|| FaultProxy::start(5));
    let ingested = tokio::task::block_in_place(|| ingest_through(&proxy.endpoint()));
    assert_eq!(ingested.code, 0, "{}", ingested.stderr);

    for (kind, code) in [("denied", "AccessDeniedException"), ("disabled", "DisabledException")] {
        kms_fault(&proxy, kind, "Decrypt");
        let shown = tokio::task::block_in_place(|| {
            run(cli(work.path(), true)
                .env("AWS_ENDPOINT_URL", proxy.endpoint())
                .args(["show", session, "--raw"]))
        });
        assert_eq!(shown.code, 2, "{kind}: {}", shown.stderr);
        assert!(shown.stdout.is_empty(), "{kind}: {}", shown.stdout);
        for part in [arn.as_str(), "raw/dt=", "kms Decrypt", code] {
            assert!(shown.stderr.contains(part), "{kind}: {part} not named: {}", shown.stderr);
        }
        assert!(!shown.stderr.contains("HTTP/1.1"), "{kind}: raw response: {}", shown.stderr);
    }

    // Ingest while GenerateDataKey fails: nothing of the new sessions is written or committed.
    let lake = work.path().join("lake");
    for (kind, code) in [("denied", "AccessDeniedException"), ("disabled", "DisabledException")] {
        let next = format!("{kind}-1a1b2c3d4e5f60718");
        std::fs::write(source.join(format!("{next}.log")), &transcript).expect("write");
        let before = files_under(&lake);
        kms_fault(&proxy, kind, "GenerateDataKey");
        let refused = tokio::task::block_in_place(|| ingest_through(&proxy.endpoint()));
        let logs = format!("{}{}", refused.stdout, refused.stderr);
        assert!(logs.contains("kind=denied") && logs.contains(code), "{kind}: {logs}");
        assert!(logs.contains(&next) && logs.contains(&key_id), "{kind}: not named: {logs}");
        let written: Vec<_> =
            files_under(&lake).into_iter().filter(|file| !before.contains(file)).collect();
        assert!(
            written.iter().all(|file| !file.to_string_lossy().contains(&next)),
            "{kind}: objects of {next} written without a key: {written:?}"
        );
        for file in files_under(&lake) {
            let bytes = std::fs::read(lake.join(&file)).expect("read");
            for canary in [CANARY_COMMAND, CANARY_OUTPUT] {
                assert!(!contains(&bytes, canary), "{kind}: plaintext in {}", file.display());
            }
        }
        let manifests = lake.join("manifest");
        for file in files_under(&manifests) {
            let text = std::fs::read_to_string(manifests.join(&file)).expect("manifest");
            assert!(!text.contains(&next), "{kind}: {next} committed in {}", file.display());
        }
    }

    // Once KMS answers again, the sessions ingest and the lake verifies.
    proxy.set(&serde_json::json!({"kms": 0.0}));
    let resumed = tokio::task::block_in_place(|| ingest_through(&proxy.endpoint()));
    assert_eq!(resumed.code, 0, "{}", resumed.stderr);
    let verified = run(cli(work.path(), false).args(["verify"]));
    assert_eq!(verified.code, 0, "{}{}", verified.stdout, verified.stderr);
}

/// Size of the transcript whose `show --raw` is measured.
const LARGE_SESSION_MIB: u64 = 256;

/// `show --raw` streams: its peak memory stays far below the transcript's size (a memory
/// bound, measured by `/usr/bin/time`, not a timing), and the bytes are the original's.
// See: issue 5 (bounded-memory opening of raw objects)
#[test]
fn test_show_raw_of_a_large_session_runs_in_bounded_memory() {
    let work = tempfile::tempdir().expect("tempdir");
    let source = work.path().join("in");
    std::fs::create_dir_all(&source).expect("mkdir");
    let session = "large-0a1b2c3d4e5f60718";
    let original = source.join(format!("{session}.log"));
    let python = std::env::var("SESSIONLAKE_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let generated = run(std::process::Command::new(python)
        .arg(sessionlake_tests::repo_root().join("scripts/gen-long-session.py"))
        .arg(&original)
        .arg(LARGE_SESSION_MIB.to_string()));
    assert_eq!(generated.code, 0, "{}", generated.stderr);
    let ingested = ingest(work.path(), &source, None);
    assert_eq!(ingested.code, 0, "{}", ingested.stderr);

    let shown = work.path().join("shown.log");
    let peak = work.path().join("peak-kib");
    let mut command = std::process::Command::new("/usr/bin/time");
    command.args(["-f", "%M", "-o"]).arg(&peak).arg(assert_cmd::cargo::cargo_bin("sessionlake"));
    let status = command
        .current_dir(work.path())
        .args(["--lake", "lake", "--keyring", "keyring.json", "show", session, "--raw"])
        .stdout(std::fs::File::create(&shown).expect("create"))
        .status()
        .expect("run /usr/bin/time");
    assert!(status.success(), "show --raw failed: {status}");
    let peak_kib: u64 = std::fs::read_to_string(&peak)
        .expect("peak")
        .trim()
        .lines()
        .last()
        .and_then(|line| line.parse().ok())
        .expect("a size in KiB");
    let size = std::fs::metadata(&original).expect("original").len();
    assert_eq!(std::fs::metadata(&shown).expect("shown").len(), size, "sizes differ");
    let same = std::fs::read(&shown).expect("shown") == std::fs::read(&original).expect("orig");
    assert!(same, "show --raw gave other bytes than the original");
    let peak_bytes = peak_kib * 1024;
    assert!(
        peak_bytes < size / 4,
        "show --raw of a {} MiB transcript peaked at {} MiB",
        size >> 20,
        peak_bytes >> 20
    );
    eprintln!("show --raw of {} MiB: peak RSS {} MiB", size >> 20, peak_bytes >> 20);
}

/// The keyring belongs to its lake. Ingest run where the lake's keyring is not (another folder,
/// a mistyped `--keyring`) refuses before taking the lease and makes no keyring; a keyring that
/// group or others can read, or a symbolic link, is refused by ingest and the CLI unless
/// `--allow-insecure-keyring`.
#[test]
fn test_a_missing_shared_or_linked_keyring_is_refused() {
    use std::os::unix::fs::PermissionsExt as _;
    let (dir, _) = super::ingested_examples();
    let work = dir.path();
    let ingest = |extra: &[&str]| {
        run(binary("sessionlake-ingest", false).current_dir(work).args(["--once"]).args(extra))
    };
    let typo = ingest(&["--keyring", ".sessionlake/keyrnig.json"]);
    typo.assert_stderr_holds(
        2,
        &["keyring .sessionlake/keyrnig.json not found, and ./lake already", "has commits"],
    );
    assert!(!work.join(".sessionlake/keyrnig.json").exists(), "no keyring made");
    assert!(!work.join("lake/state/lease.json").exists(), "no lease left behind");
    // Another lake's keyring: refused once the chain is read (after the lease is taken), and
    // the lease is released on the way out.
    std::fs::create_dir(work.join("empty")).expect("empty");
    let other = ingest(&["--keyring", "other.json", "--lake", "other-lake", "--local", "empty"]);
    assert_eq!(other.code, 0, "{}", other.stderr);
    let foreign = ingest(&["--keyring", "other.json"]);
    assert_eq!(foreign.code, 2, "{}", foreign.stderr);
    assert!(!work.join("lake/state/lease.json").exists(), "lease released: {}", foreign.stderr);
    // Unpinned, verify would only check the lake against the keys it holds itself.
    let verify = |extra: &[&str]| {
        let mut command = binary("sessionlake", false);
        command.current_dir(work).args(["--keyring", "none.json", "verify"]).args(extra);
        run(&mut command)
    };
    let unpinned = verify(&[]);
    assert_eq!(unpinned.code, 2, "{}", unpinned.stderr);
    assert!(unpinned.stderr.contains("pass --unpinned"), "{}", unpinned.stderr);
    let unpinned = verify(&["--unpinned"]);
    assert_eq!(unpinned.code, 0, "{}", unpinned.stderr);
    assert!(unpinned.stderr.contains("signer not pinned): intact"), "{}", unpinned.stderr);

    let keyring = work.join(".sessionlake/keyring.json");
    std::fs::set_permissions(&keyring, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let shared = ingest(&[]);
    assert_eq!(shared.code, 2, "{}", shared.stderr);
    assert!(
        shared.stderr.contains("can be read or written by group or others (mode 644)"),
        "{}",
        shared.stderr
    );
    let search = run(binary("sessionlake", false).current_dir(work).args(["sessions"]));
    assert_eq!(search.code, 2, "{}", search.stderr);
    assert!(search.stderr.contains("--allow-insecure-keyring"), "{}", search.stderr);
    let allowed = run(binary("sessionlake", false)
        .current_dir(work)
        .args(["sessions", "--allow-insecure-keyring"]));
    assert_eq!(allowed.code, 0, "{}", allowed.stderr);
    assert_eq!(ingest(&["--allow-insecure-keyring"]).code, 0);

    std::fs::set_permissions(&keyring, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    std::fs::rename(&keyring, work.join("elsewhere.json")).expect("move");
    std::os::unix::fs::symlink(work.join("elsewhere.json"), &keyring).expect("link");
    let linked = ingest(&[]);
    assert_eq!(linked.code, 2, "{}", linked.stderr);
    assert!(linked.stderr.contains("is a symbolic link"), "{}", linked.stderr);
    let verify = run(binary("sessionlake", false).current_dir(work).args(["verify"]));
    assert_eq!(verify.code, 2, "{}", verify.stderr);
    assert!(verify.stderr.contains("is a symbolic link"), "{}", verify.stderr);
}

/// A session key record replaced by a copy of another session's record (anyone who can write
/// to the lake can copy one) is not re-wrapped by `rekey`: that would leave the session's
/// objects readable by no key. `rekey` refuses naming the record and commits nothing; with
/// the committed record back, it runs.
#[test]
fn test_rekey_refuses_a_session_key_record_copied_from_another_session() {
    let work = tempfile::tempdir().expect("tempdir");
    let (victim, other) = ("kate-0a1b2c3d4e5f60718", "mallory-0a1b2c3d4e5f60718");
    let (source, transcript) = canary_source(work.path(), victim);
    std::fs::write(source.join(format!("{other}.log")), &transcript).expect("write");
    let ingested = ingest(work.path(), &source, None);
    assert_eq!(ingested.code, 0, "{}", ingested.stderr);
    let keys = work.path().join("lake/keys/sessions");
    let record_of = |session: &str| {
        let name = files_under(&keys)
            .into_iter()
            .find(|file| file.to_string_lossy().starts_with(session))
            .expect("a session key record");
        keys.join(name)
    };
    let (victims, others) = (record_of(victim), record_of(other));
    let committed = std::fs::read(&victims).expect("read");
    std::fs::copy(&others, &victims).expect("copy the other session's record over");
    let manifests = files_under(&work.path().join("lake/manifest"));

    let refused = run(cli(work.path(), false).args(["rekey", "--to-keyring"]));
    assert_eq!(refused.code, 2, "{}{}", refused.stdout, refused.stderr);
    let name = victims.strip_prefix(work.path().join("lake")).expect("in the lake");
    assert!(refused.stderr.contains(&*name.to_string_lossy()), "{}", refused.stderr);
    assert!(refused.stderr.contains(other), "{}", refused.stderr);
    assert_eq!(files_under(&work.path().join("lake/manifest")), manifests, "nothing committed");
    assert_eq!(std::fs::read(&victims).expect("read"), std::fs::read(&others).expect("read"));

    std::fs::write(&victims, committed).expect("restore the committed record");
    let rekeyed = run(cli(work.path(), false).args(["rekey", "--to-keyring", "--json"]));
    assert_eq!(rekeyed.code, 0, "{}", rekeyed.stderr);
    let shown = run(cli(work.path(), false).args(["show", victim]));
    assert_eq!(shown.code, 0, "{}", shown.stderr);
    assert!(shown.stdout.contains(CANARY_COMMAND), "{}", shown.stdout);
}

/// With both keys in KMS, ingest needs no keyring, but only for a lake no keyring ever signed:
/// without that key, the commits it signed would not be trusted and their sessions would read
/// as never ingested. A lake the keyring signed is refused, naming the keyring.
#[test]
fn test_kms_keys_without_the_keyring_of_a_keyring_signed_lake_are_refused() {
    let work = tempfile::tempdir().expect("tempdir");
    sessionlake_tests::copy_tree(
        &sessionlake_tests::repo_root().join("examples"),
        &work.path().join("examples"),
    );
    let first = run(binary("sessionlake-ingest", false).current_dir(work.path()).arg("--quiet"));
    assert_eq!(first.code, 0, "{}", first.stderr);
    let refused = run(binary("sessionlake-ingest", true).current_dir(work.path()).args([
        "--keyring",
        "elsewhere/keyring.json",
        "--kms-key-id",
        "alias/data",
        "--signing-key",
        "alias/signing",
    ]));
    refused.assert_stderr_holds(2, &["holds commits the keyring key", "elsewhere/keyring.json"]);
    assert!(!work.path().join("elsewhere/keyring.json").exists());
}
