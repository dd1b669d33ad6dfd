//! Every command trusts only the signed chain (issue 16): what someone with write access to the
//! lake bucket can do to it — forge a manifest, plant, rewrite or delete a table file — never
//! makes a command delete, hide, forge or silently shorten evidence.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;
use sessionlake_schemas::manifest::{
    CheckpointPart, CheckpointShard, CommitAction, Manifest, ObjectEntry, ObjectKind,
    PublicKeyRecord,
};
use sessionlake_schemas::paths;
use sessionlake_storage::keys::LocalKeyring;
use sessionlake_storage::store::sha256_hex;
use sessionlake_tests::{Ran, binary, files_under, run};

use super::cli;

/// The session of the examples that ran `rm -rf`.
const ALICE: &str = "alice-0123456789abcdef0";

/// Ingests the examples (sessions and CloudTrail) into `dir/lake`.
fn ingested() -> tempfile::TempDir {
    super::ingested_examples().0
}

fn manifests(lake: &Path) -> Vec<(u64, PathBuf)> {
    let mut found: Vec<(u64, PathBuf)> = files_under(&lake.join("manifest"))
        .into_iter()
        .filter_map(|path| {
            let text = path.to_string_lossy().to_string();
            paths::manifest_sequence(&format!("manifest/{text}")).map(|seq| (seq, path))
        })
        .collect();
    found.sort();
    found
}

/// The live set of the lake as its (untampered) chain says, by path.
fn live(lake: &Path) -> BTreeMap<String, ObjectEntry> {
    let mut live = BTreeMap::new();
    for (_, path) in manifests(lake) {
        let manifest: Manifest =
            serde_json::from_slice(&std::fs::read(lake.join("manifest").join(path)).expect("read"))
                .expect("manifest");
        for gone in &manifest.body.removed {
            live.remove(&gone.path);
        }
        for added in manifest.body.added {
            live.insert(added.path.clone(), added);
        }
    }
    live
}

/// Every stored object of the lake but the lease and cursors, with its hash.
fn stored(lake: &Path) -> BTreeMap<PathBuf, String> {
    files_under(lake)
        .into_iter()
        .filter(|path| !path.starts_with("state"))
        .map(|path| {
            let hash = sha256_hex(&std::fs::read(lake.join(&path)).expect("read"));
            (path, hash)
        })
        .collect()
}

/// Appends to the chain of `dir/lake` a manifest that links correctly to the head but is
/// signed by a key of the attacker's own (whose public-key record the attacker also stores in
/// `keys/`): `action`, removing `removed`. Returns its path inside the lake.
fn forge(dir: &Path, action: CommitAction, removed: Vec<ObjectEntry>) -> String {
    let lake = dir.join("lake");
    let (head_sequence, head_path) = manifests(&lake).pop().expect("a head");
    let head_bytes = std::fs::read(lake.join("manifest").join(head_path)).expect("head");
    let mut manifest: Manifest = serde_json::from_slice(&head_bytes).expect("head manifest");
    let attacker = tempfile::tempdir().expect("tempdir");
    let (keyring, _) =
        LocalKeyring::open_or_create(&attacker.path().join("k.json")).expect("attacker keyring");
    let signer = keyring.signer();
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let record = PublicKeyRecord {
        key_id: signer.key_id().to_string(),
        algorithm: manifest.signature.algorithm.clone(),
        public_key: b64.encode(signer.public_key()),
        valid_from: "2020-01-01T00:00:00Z".into(),
        valid_until: None,
    };
    std::fs::write(
        lake.join(sessionlake_storage::manifest::public_key_path(signer.key_id())),
        serde_json::to_vec_pretty(&record).expect("record"),
    )
    .expect("plant key record");
    manifest.body.sequence = head_sequence + 1;
    manifest.body.previous_sha256 = Some(sha256_hex(&head_bytes));
    manifest.body.committed_at = chrono::Utc::now().to_rfc3339();
    manifest.body.action = action;
    manifest.body.reason = Some("routine cleanup".into());
    manifest.body.added = vec![];
    manifest.body.removed = removed;
    manifest.body.idle_period_secs = None;
    manifest.signature.key_id = signer.key_id().to_string();
    let message = manifest.body.signing_bytes().expect("signing bytes");
    manifest.signature.value = b64.encode(signer.sign(&message));
    let path = paths::manifest_object(head_sequence + 1);
    std::fs::write(lake.join(&path), serde_json::to_vec_pretty(&manifest).expect("encode"))
        .expect("write forged manifest");
    path
}

fn objects_of(live: &BTreeMap<String, ObjectEntry>, session: &str) -> Vec<ObjectEntry> {
    live.values().filter(|entry| entry.sessions.iter().any(|id| id == session)).cloned().collect()
}

#[test]
fn test_a_forged_retention_manifest_deletes_nothing_and_hides_nothing() {
    let dir = ingested();
    let lake = dir.path().join("lake");
    let held = cli(dir.path(), &["hold", "add", ALICE, "--reason", "case 2026-41"]);
    assert_eq!(held.code, 0, "{}", held.stderr);
    let alice = objects_of(&live(&lake), ALICE);
    assert!(alice.iter().any(|entry| entry.kind == ObjectKind::Raw), "{alice:?}");
    let forged = forge(dir.path(), CommitAction::Retention, alice);
    let before = stored(&lake);

    // Writers that delete refuse, name the forged manifest, and delete nothing.
    let policy = "version = 1\n[default]\ncommands = \"10y\"\nraw = \"10y\"\n";
    std::fs::write(dir.path().join("policy.toml"), policy).expect("policy");
    let runs = [
        vec!["compact", "--min-age", "0s"],
        vec!["retention", "apply", "--policy", "policy.toml", "--yes"],
        vec!["shred", "bob-ilpxvkhghl9vs9ia2xfdyp4dka", "--reason", "test", "--yes"],
        vec!["rekey", "--to-keyring"],
    ];
    for args in runs {
        let refused = cli(dir.path(), &args);
        assert_eq!(refused.code, 2, "{args:?}: {}{}", refused.stdout, refused.stderr);
        assert!(refused.stderr.contains(&forged), "{args:?}: {}", refused.stderr);
        assert!(refused.stderr.contains("refused"), "{args:?}: {}", refused.stderr);
        assert_eq!(stored(&lake), before, "{args:?} changed the lake");
    }

    // Readers ignore it and say so: the session it "removed" is still found and shown.
    let found = cli(dir.path(), &["search", "--command", "rm -rf", "--json"]);
    assert_eq!(found.code, 0, "{}", found.stderr);
    assert!(found.stdout.contains(ALICE), "{}", found.stdout);
    assert!(found.stderr.contains(&format!("ignored {forged}")), "{}", found.stderr);
    assert!(found.stderr.contains("unknown-signer"), "{}", found.stderr);
    let shown = cli(dir.path(), &["show", ALICE]);
    assert_eq!(shown.code, 0, "{}", shown.stderr);
    assert!(shown.stdout.contains("rm -rf"), "{}", shown.stdout);
    let counted = cli(
        dir.path(),
        &["sql", &format!("SELECT count(*) AS n FROM commands WHERE session_id = '{ALICE}'")],
    );
    assert_eq!(counted.code, 0, "{}", counted.stderr);
    assert!(!counted.stdout.contains(" 0 "), "{}", counted.stdout);

    // The held session still exports, and the bundle checks.
    let exported = cli(dir.path(), &["export", ALICE, "--out", "bundle"]);
    assert_eq!(exported.code, 0, "{}", exported.stderr);
    assert!(exported.stderr.contains(&forged), "{}", exported.stderr);
    let sums = std::fs::read_to_string(dir.path().join("bundle/SHA256SUMS")).expect("sums");
    assert!(sums.contains("transcript.log"), "{sums}");

    // Writers never link a commit to it: ingest and hold refuse, naming it.
    let ingest = run(binary("sessionlake-ingest", false).current_dir(dir.path()));
    assert_eq!(ingest.code, 2, "{}{}", ingest.stdout, ingest.stderr);
    assert!(
        ingest.stderr.contains(&format!("newest manifest {forged} is not trusted")),
        "{}",
        ingest.stderr
    );
    let hold = cli(dir.path(), &["hold", "add", "bob-ilpxvkhghl9vs9ia2xfdyp4dka", "--reason", "x"]);
    assert_eq!(hold.code, 2, "{}{}", hold.stdout, hold.stderr);
    assert!(hold.stderr.contains(&forged), "{}", hold.stderr);
    assert_eq!(stored(&lake), before, "a refused writer changed the lake");

    // Without a pinned signer the lake's own key records are all there is, and the reader
    // says so on every command.
    let unpinned = cli(dir.path(), &["--keyring", "no-such-keyring.json", "sessions"]);
    assert!(unpinned.stderr.contains("no signer is pinned"), "{}", unpinned.stderr);

    // verify names the forgery.
    let verified = cli(dir.path(), &["verify"]);
    assert_eq!(verified.code, 1, "{}", verified.stdout);
    assert!(verified.stdout.contains(&forged), "{}", verified.stdout);
}

/// A table file of the lake (the first of `kind` for `session`).
fn table_file(lake: &Path, kind: ObjectKind, session: &str) -> String {
    live(lake)
        .into_values()
        .find(|entry| entry.kind == kind && entry.sessions.iter().any(|id| id == session))
        .unwrap_or_else(|| panic!("no {kind:?} file of {session}"))
        .path
}

fn count_commands(dir: &Path, extra: &[&str]) -> Ran {
    let mut args = vec!["sql", "SELECT count(*) AS n FROM commands", "--format", "csv"];
    args.extend_from_slice(extra);
    cli(dir, &args)
}

/// The count of commands, which succeeds.
#[track_caller]
fn count_all_commands(dir: &Path) -> Ran {
    let counted = count_commands(dir, &[]);
    assert_eq!(counted.code, 0, "{}", counted.stderr);
    counted
}

#[test]
fn test_planted_rewritten_and_deleted_table_files_are_never_used_silently() {
    let dir = ingested();
    let lake = dir.path().join("lake");
    let baseline = count_all_commands(dir.path());
    let all: u64 = baseline.stdout.lines().nth(1).and_then(|n| n.parse().ok()).expect("count");

    // A planted commands file (another session's rows under a new name) is never read.
    let bob = "bob-ilpxvkhghl9vs9ia2xfdyp4dka";
    let bob_commands = table_file(&lake, ObjectKind::Commands, bob);
    let planted = bob_commands.replace(bob, "mallory-0123456789abcdef9");
    std::fs::copy(lake.join(&bob_commands), lake.join(&planted)).expect("plant");
    let counted = count_all_commands(dir.path());
    assert_eq!(counted.stdout.lines().nth(1), Some(all.to_string().as_str()), "{}", counted.stdout);
    std::fs::remove_file(lake.join(&planted)).expect("unplant");

    // A sessions file rewritten (another session's bytes in its place) is an error naming it.
    let bob_sessions = table_file(&lake, ObjectKind::Sessions, bob);
    let alice_sessions = table_file(&lake, ObjectKind::Sessions, ALICE);
    let original = std::fs::read(lake.join(&bob_sessions)).expect("read");
    std::fs::copy(lake.join(&alice_sessions), lake.join(&bob_sessions)).expect("rewrite");
    let searched = cli(dir.path(), &["search", "--principal", "bob"]);
    assert_eq!(searched.code, 2, "{}{}", searched.stdout, searched.stderr);
    assert!(searched.stderr.contains(&bob_sessions), "{}", searched.stderr);
    assert!(searched.stderr.contains("altered"), "{}", searched.stderr);
    std::fs::write(lake.join(&bob_sessions), original).expect("restore");

    // A commands file cut short is altered: an error even with --allow-partial.
    let bob_bytes = std::fs::read(lake.join(&bob_commands)).expect("read");
    std::fs::write(lake.join(&bob_commands), &bob_bytes[..bob_bytes.len() - 1]).expect("cut");
    let cut = count_commands(dir.path(), &["--allow-partial"]);
    assert_eq!(cut.code, 2, "{}{}", cut.stdout, cut.stderr);
    assert!(cut.stderr.contains(&bob_commands), "{}", cut.stderr);
    std::fs::write(lake.join(&bob_commands), &bob_bytes).expect("restore");

    // A deleted commands file is an error naming it; --allow-partial answers, and says so.
    std::fs::remove_file(lake.join(&bob_commands)).expect("delete");
    let failed = count_commands(dir.path(), &[]);
    assert_eq!(failed.code, 2, "{}{}", failed.stdout, failed.stderr);
    assert!(failed.stderr.contains(&bob_commands), "{}", failed.stderr);
    assert!(failed.stderr.contains("missing"), "{}", failed.stderr);
    let partial = count_commands(dir.path(), &["--allow-partial"]);
    assert_eq!(partial.code, 0, "{}", partial.stderr);
    let fewer: u64 = partial.stdout.lines().nth(1).and_then(|n| n.parse().ok()).expect("count");
    assert!(fewer < all, "{fewer} of {all}");
    assert!(partial.stderr.contains(&bob_commands), "{}", partial.stderr);
    assert!(partial.stderr.contains("partial"), "{}", partial.stderr);
    let json = cli(dir.path(), &["search", "--principal", "alice", "--json", "--allow-partial"]);
    assert_eq!(json.code, 0, "{}", json.stderr);
    let summary: Value = json
        .stdout
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .find(|record| record["type"] == "summary")
        .expect("a summary");
    assert_eq!(summary["data"]["partial"], true, "{summary}");
}

/// Re-signs `checkpoint` with `keyring` and stores it at `path` in `lake`.
fn store_checkpoint(
    lake: &Path,
    path: &str,
    mut checkpoint: sessionlake_schemas::manifest::Checkpoint,
    keyring: &LocalKeyring,
) {
    use base64::Engine as _;
    let signer = keyring.signer();
    let message = checkpoint.body.signing_bytes().expect("signing bytes");
    checkpoint.signature.key_id = signer.key_id().to_string();
    checkpoint.signature.value =
        base64::engine::general_purpose::STANDARD.encode(signer.sign(&message));
    std::fs::write(lake.join(path), serde_json::to_vec(&checkpoint).expect("encode"))
        .expect("write checkpoint");
}

#[test]
fn test_checkpoints_are_used_checked_and_never_trusted_blindly() {
    let dir = ingested();
    let lake = dir.path().join("lake");
    let before = count_all_commands(dir.path());

    // A name taken by a plant is not a checkpoint written.
    let (head, _) = manifests(&lake).pop().expect("head");
    let planted = lake.join(paths::checkpoint_object(head));
    std::fs::create_dir_all(planted.parent().expect("folder")).expect("mkdir");
    std::fs::write(&planted, b"{}").expect("plant");
    let refused = cli(dir.path(), &["checkpoint"]);
    assert_eq!(refused.code, 2, "{}{}", refused.stdout, refused.stderr);
    assert!(refused.stderr.contains("not its checkpoint"), "{}", refused.stderr);
    std::fs::remove_file(&planted).expect("unplant");

    let written = cli(dir.path(), &["checkpoint", "--json"]);
    assert_eq!(written.code, 0, "{}", written.stderr);
    let record: Value = serde_json::from_str(written.stdout.trim()).expect("json");
    let (head, _) = manifests(&lake).pop().expect("head");
    assert_eq!(record["data"]["sequence"], head, "{record}");
    let path = record["data"]["checkpoint"].as_str().expect("path").to_string();
    assert_eq!(path, paths::checkpoint_object(head));
    let verified = cli(dir.path(), &["verify"]);
    assert_eq!(verified.code, 0, "{}{}", verified.stdout, verified.stderr);
    let after = count_commands(dir.path(), &[]);
    assert_eq!((after.code, after.stdout.clone()), (0, before.stdout.clone()), "{}", after.stderr);
    assert!(!after.stderr.contains("warning"), "{}", after.stderr);

    // One session is read from the part of the checkpoint that holds it: the same answer as
    // the chain's. That part gone, the checkpoint is named and not used, and the answer stands.
    let alice = cli(dir.path(), &["search", "--session", ALICE, "--format", "csv"]);
    assert_eq!(alice.code, 0, "{}", alice.stderr);
    assert!(alice.stdout.lines().count() > 2, "{}", alice.stdout);
    assert!(!alice.stderr.contains("warning"), "{}", alice.stderr);
    let shown = cli(dir.path(), &["show", ALICE]);
    assert_eq!(shown.code, 0, "{}", shown.stderr);
    let signed: sessionlake_schemas::manifest::Checkpoint =
        serde_json::from_slice(&std::fs::read(lake.join(&path)).expect("read")).expect("parse");
    let parts = &signed.body.index.as_ref().expect("a version 2 checkpoint").parts;
    let part =
        lake.join(&parts[sessionlake_storage::checkpoint::shard_of(ALICE, parts.len())].path);
    let aside = part.with_extension("aside");
    std::fs::rename(&part, &aside).expect("move the part away");
    let without = cli(dir.path(), &["search", "--session", ALICE, "--format", "csv"]);
    assert_eq!((without.code, &without.stdout), (0, &alice.stdout), "{}", without.stderr);
    assert!(
        without.stderr.contains(&format!("ignored {path} (bad-checkpoint)")),
        "{}",
        without.stderr
    );
    let shown_without = cli(dir.path(), &["show", ALICE]);
    assert_eq!(shown_without.stdout, shown.stdout, "{}", shown_without.stderr);
    std::fs::rename(&aside, &part).expect("restore the part");

    // Ingest starts from the checkpoint too: a new session after it is ingested once, the
    // sessions before it are not ingested again, and the lake verifies.
    std::fs::copy(
        dir.path().join("examples/s3/ssm-logs").join(format!("{ALICE}.log")),
        dir.path().join("examples/s3/ssm-logs/zed-0123456789abcdef0.log"),
    )
    .expect("new session");
    let ingest =
        run(binary("sessionlake-ingest", false).current_dir(dir.path()).args(["--log", "info"]));
    assert_eq!(ingest.code, 0, "{}", ingest.stderr);
    assert!(ingest.stdout.contains("ingested 1 sessions"), "{}", ingest.stdout);
    assert!(ingest.stdout.contains("0 replaced"), "{}", ingest.stdout);
    assert!(ingest.stderr.contains("opened from checkpoint"), "{}", ingest.stderr);
    let verified = cli(dir.path(), &["verify"]);
    assert_eq!(verified.code, 0, "{}{}", verified.stdout, verified.stderr);
    let zed = cli(dir.path(), &["show", "zed-0123456789abcdef0"]);
    assert_eq!(zed.code, 0, "{}", zed.stderr);
    let before = count_all_commands(dir.path());

    // verify resumes from the checkpoint: the commits after it are checked, a hold committed
    // after it and then altered is named.
    let held = cli(dir.path(), &["hold", "add", ALICE, "--reason", "case 2026-77", "--json"]);
    assert_eq!(held.code, 0, "{}", held.stderr);
    let resumed = cli(dir.path(), &["verify", "--since-checkpoint", "--json"]);
    assert_eq!(resumed.code, 0, "{}{}", resumed.stdout, resumed.stderr);
    assert!(resumed.stdout.contains("\"manifests\":3"), "{}", resumed.stdout);
    let hold = files_under(&lake.join("holds")).pop().expect("a hold");
    let hold = lake.join("holds").join(hold);
    let text = std::fs::read_to_string(&hold).expect("hold");
    std::fs::write(&hold, text.replace("case 2026-77", "case 2026-78")).expect("alter the hold");
    let resumed = cli(dir.path(), &["verify", "--since-checkpoint"]);
    assert_eq!(resumed.code, 1, "{}{}", resumed.stdout, resumed.stderr);
    assert!(resumed.stdout.contains("altered-object"), "{}", resumed.stdout);
    std::fs::write(&hold, text).expect("restore the hold");

    // The live set edited (a session's commands file left out), signed by another key: readers
    // ignore it and say so, verify names it.
    let checkpoint: sessionlake_schemas::manifest::Checkpoint =
        serde_json::from_slice(&std::fs::read(lake.join(&path)).expect("read")).expect("parse");
    let mut edited = checkpoint.clone();
    let index = edited.body.index.as_mut().expect("a version 2 checkpoint");
    let alices =
        |entry: &ObjectEntry| entry.kind == ObjectKind::Commands && entry.sessions == [ALICE];
    let (at, mut part) = index
        .parts
        .iter()
        .enumerate()
        .find_map(|(at, part)| {
            let bytes = std::fs::read(lake.join(&part.path)).expect("read part");
            let shard: CheckpointShard = serde_json::from_slice(&bytes).expect("parse part");
            shard.entries.iter().any(alices).then_some((at, shard))
        })
        .expect("the part with alice's commands file");
    part.entries.retain(|entry| !alices(entry));
    let bytes = serde_json::to_vec(&part).expect("encode part");
    let sha256 = sha256_hex(&bytes);
    let part_path = paths::checkpoint_part_object(part.sequence, &sha256);
    std::fs::write(lake.join(&part_path), &bytes).expect("write part");
    index.parts[at] = CheckpointPart { path: part_path, size: bytes.len() as u64, sha256 };
    let attacker = tempfile::tempdir().expect("tempdir");
    let (other, _) =
        LocalKeyring::open_or_create(&attacker.path().join("k.json")).expect("attacker keyring");
    store_checkpoint(&lake, &path, edited.clone(), &other);
    let counted = count_commands(dir.path(), &[]);
    assert_eq!((counted.code, counted.stdout.clone()), (0, before.stdout.clone()));
    assert!(
        counted.stderr.contains(&format!("ignored {path} (bad-checkpoint)")),
        "{}",
        counted.stderr
    );
    let verified = cli(dir.path(), &["verify"]);
    verified.assert_stdout_holds(1, &[&path, "pinned"]);

    // Signed by the lake's own key but not the replay of the chain: verify says so.
    let keyring =
        LocalKeyring::open(&dir.path().join(".sessionlake/keyring.json")).expect("keyring");
    store_checkpoint(&lake, &path, edited, &keyring);
    let verified = cli(dir.path(), &["verify"]);
    assert_eq!(verified.code, 1, "{}", verified.stdout);
    assert!(verified.stdout.contains("is not the replay of the chain"), "{}", verified.stdout);
}

/// A public-key record planted for the pinned key (a retirement with a `valid_until` long
/// past, as anyone who can write to the lake can write one) does not make the chain that key
/// signed untrusted: readers answer as before and name the record, and `verify` reports it.
/// A writer still refuses to sign with a key the lake says is retired, naming the record (a
/// denial of service, never a commit by a retired key).
#[test]
fn test_a_planted_key_record_does_not_narrow_the_pinned_key() {
    let dir = ingested();
    let lake = dir.path().join("lake");
    let before = count_all_commands(dir.path());
    let keys = lake.join("keys");
    let record = files_under(&keys)
        .into_iter()
        .find(|file| {
            file.extension().is_some_and(|ext| ext == "json") && file.components().count() == 1
        })
        .expect("the keyring key's public-key record");
    let mut planted: PublicKeyRecord =
        serde_json::from_slice(&std::fs::read(keys.join(&record)).expect("read")).expect("parse");
    planted.valid_until = Some("2000-01-01T00:00:00+00:00".to_string());
    let retired = keys.join(record.to_string_lossy().replace(".json", ".retired.json"));
    std::fs::write(&retired, serde_json::to_vec(&planted).expect("encode")).expect("plant");
    let name = format!("keys/{}", retired.file_name().expect("name").to_string_lossy());

    let after = count_commands(dir.path(), &[]);
    assert_eq!((after.code, &after.stdout), (0, &before.stdout), "{}", after.stderr);
    assert!(after.stderr.contains(&format!("ignored {name} (unknown-signer)")), "{}", after.stderr);
    let verified = cli(dir.path(), &["verify"]);
    assert_eq!(verified.code, 1, "{}", verified.stdout);
    assert!(verified.stdout.contains(&name), "{}", verified.stdout);
    let held = cli(dir.path(), &["hold", "add", ALICE, "--reason", "case 2026-90"]);
    assert_eq!(held.code, 2, "{}", held.stderr);
    assert!(held.stderr.contains(&name), "{}", held.stderr);
    std::fs::remove_file(&retired).expect("remove the plant");
    let held = cli(dir.path(), &["hold", "add", ALICE, "--reason", "case 2026-90"]);
    assert_eq!(held.code, 0, "{}", held.stderr);
    let clean = count_commands(dir.path(), &[]);
    assert!(!clean.stderr.contains("warning"), "{}", clean.stderr);
}
