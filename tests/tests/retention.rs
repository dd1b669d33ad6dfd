//! Retention end to end: sessions over three years, a policy with overlapping rules, a hold on
//! one principal; plan checked exactly, apply (refused without --yes, interrupted and re-run),
//! verify, held sessions intact, shredded sessions unreadable while the others export.
//!
//! Every test starts from the same lake ([`held_lake`], or [`applied_lake`] after the apply)
//! and checks one behaviour.

use std::path::{Path, PathBuf};

use serde_json::Value;
use sessionlake_schemas::paths;
use sessionlake_storage::transaction;
use sessionlake_tables::parquet_io;
use sessionlake_tests::{binary, files_under, run};

use super::cli;

const PROMPT: &str = "\x1b[?2004h\x1b]0;ubuntu@ip-10-0-0-12: ~\x07\x1b[01;32mubuntu@ip-10-0-0-12\x1b[00m:\x1b[01;34m~\x1b[00m$ ";
const ACCOUNT: &str = "111122223333";
const AS_OF: &str = "2026-06-01";

/// (session id, user, target, start): three years of sessions.
const SESSIONS: [(&str, &str, &str, &str); 6] = [
    ("alice-0a0000000000000a1", "alice", "i-0dev0000000000001", "2023-05-01T10:00:00Z"),
    ("alice-0a0000000000000b2", "alice", "i-0prod000000000001", "2024-03-01T10:00:00Z"),
    ("bob-0a0000000000000c3", "bob", "i-0dev0000000000001", "2023-05-01T11:00:00Z"),
    (
        "contractor-eve-0a0000000000000d4",
        "contractor-eve",
        "i-0dev0000000000001",
        "2025-03-01T10:00:00Z",
    ),
    (
        "contractor-eve-0a0000000000000e5",
        "contractor-eve",
        "i-0prod000000000002",
        "2025-03-01T11:00:00Z",
    ),
    ("alice-0a0000000000000f6", "alice", "i-0dev0000000000001", "2026-05-01T10:00:00Z"),
];

const POLICY: &str = r#"
version = 1

[default]
commands = "2y"
raw = "1y"

[[rules]]
name = "prod"
target = "i-0prod*"
commands = "3y"
raw = "2y"

[[rules]]
name = "contractors"
principal = "arn:aws:iam::111122223333:user/contractor-*"
commands = "1y"
raw = "90d"
action = "shred"
"#;

fn arn(user: &str) -> String {
    format!("arn:aws:iam::{ACCOUNT}:user/{user}")
}

/// Writes each session's transcript and one CloudTrail file with their `StartSession`s.
fn sources(dir: &Path) {
    let source = dir.join("in");
    std::fs::create_dir_all(source.join("cloudtrail")).expect("mkdir");
    let mut records = Vec::new();
    for (id, user, target, start) in SESSIONS {
        let date = start.replace('T', " ").replace('Z', "+00:00");
        let transcript = format!(
            "Script started on {date} [TERM=\"xterm-256color\"]\n\
             {PROMPT}echo retention-{id}\r\r\n\x1b[?2004l\rretention-{id}\r\r\n\
             {PROMPT}exit\r\r\n\x1b[?2004l\rexit\r\r\n\nScript done on {date} [COMMAND_EXIT_CODE=\"0\"]\n"
        );
        std::fs::write(source.join(format!("{id}.log")), transcript).expect("write");
        records.push(serde_json::json!({
            "eventVersion": "1.08",
            "userIdentity": {"type": "IAMUser", "arn": arn(user), "accountId": ACCOUNT},
            "eventTime": start,
            "eventSource": "ssm.amazonaws.com",
            "eventName": "StartSession",
            "awsRegion": "us-east-1",
            "sourceIPAddress": "203.0.113.7",
            "requestParameters": {"target": target},
            "responseElements": {"sessionId": id},
            "eventID": format!("event-{id}"),
            "recipientAccountId": ACCOUNT,
        }));
    }
    let trail = serde_json::json!({ "Records": records });
    std::fs::write(source.join("cloudtrail/trail.json"), trail.to_string()).expect("write");
    std::fs::write(dir.join("policy.toml"), POLICY).expect("write");
}

fn json_lines(text: &str) -> Vec<Value> {
    text.lines().map(|line| serde_json::from_str(line).expect("JSON line")).collect()
}

/// The plan as of `as_of`: its JSON records, exit code checked.
fn plan_at(dir: &Path, as_of: &str) -> Vec<Value> {
    let ran =
        cli(dir, &["retention", "plan", "--policy", "policy.toml", "--as-of", as_of, "--json"]);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    json_lines(&ran.stdout)
}

/// The plan's lines as of [`AS_OF`] (the summary left out), each with its object paths
/// replaced by their count and access paths by their day, so they can be compared whole.
fn plan(dir: &Path) -> Vec<Value> {
    plan_at(dir, AS_OF)
        .into_iter()
        .filter(|record| record["type"] != "summary")
        .map(|mut record| {
            let data = &mut record["data"];
            let removed = data["remove"].as_array().map_or(0, Vec::len);
            data["remove"] = removed.into();
            let id = data["session_id"].as_str().unwrap_or_default().to_string();
            if let Some(day) = id.strip_prefix("access/").and_then(|rest| rest.split('/').next()) {
                data["session_id"] = format!("access/{day}").into();
            }
            if data.get("held_by").is_some() {
                data["held_by"] = "HOLD".into();
            }
            if data.get("events_held_by").is_some() {
                data["events_held_by"] = "HOLD".into();
            }
            record
        })
        .collect()
}

/// A plan line about a session, as [`plan`] shows it.
fn session_line(
    kind: &str,
    (id, expires, action, rule): (&str, &str, &str, &str),
    (age, keep): (i64, i64),
    (user, target): (&str, &str),
    objects: usize,
) -> Value {
    let mut data = serde_json::json!({
        "session_id": id, "expires": expires, "action": action, "rule": rule,
        "age_days": age, "keep_days": keep, "principal": arn(user), "target": target,
        "objects": objects, "remove": objects,
    });
    if kind == "held" {
        data["held_by"] = "HOLD".into();
    }
    serde_json::json!({"type": kind, "data": data})
}

/// A plan line about an `access` file of `day`.
fn access_line(
    kind: &str,
    (day, expires, rule): (&str, &str, &str),
    (age, keep): (i64, i64),
    (removed, total): (Option<usize>, usize),
    held: bool,
) -> Value {
    let mut data = serde_json::json!({
        "session_id": format!("access/dt={day}"), "expires": expires, "action": "delete",
        "rule": rule, "age_days": age, "keep_days": keep, "principal": null, "target": null,
        "objects": 1, "remove": 1, "events_total": total,
    });
    if let Some(removed) = removed {
        data["events_removed"] = removed.into();
    }
    if held {
        let field = if kind == "held" { "held_by" } else { "events_held_by" };
        data[field] = "HOLD".into();
    }
    serde_json::json!({"type": kind, "data": data})
}

/// Compares two plans line by line, ignoring each line's byte count (it depends on the
/// encryption's random bytes).
fn assert_plan(found: &[Value], expected: &[Value]) {
    let strip = |lines: &[Value]| -> Vec<Value> {
        lines
            .iter()
            .cloned()
            .map(|mut line| {
                if let Some(data) = line["data"].as_object_mut() {
                    data.remove("bytes");
                }
                line
            })
            .collect()
    };
    let (found, expected) = (strip(found), strip(expected));
    for (index, (found, expected)) in found.iter().zip(&expected).enumerate() {
        assert_eq!(found, expected, "line {index} of the plan");
    }
    assert_eq!(found.len(), expected.len(), "{found:#?}");
}

/// A lake built from [`sources`] in a temporary folder, with a hold on bob.
struct Lake {
    work: tempfile::TempDir,
    /// The id of the hold on bob's principal.
    hold_id: String,
}

impl Lake {
    /// The folder the commands run in (`in/`, `policy.toml`, `lake/`).
    fn dir(&self) -> &Path {
        self.work.path()
    }

    /// The lake's folder.
    fn lake(&self) -> PathBuf {
        self.dir().join("lake")
    }

    /// The lake's files (relative paths) whose path names `session`.
    fn files_of(&self, session: &str) -> Vec<PathBuf> {
        files_under(&self.lake())
            .into_iter()
            .filter(|file| file.to_string_lossy().contains(session))
            .collect()
    }
}

/// Ingests [`SESSIONS`] and an input nobody can read, then alice's oldest transcript again,
/// longer, and puts a hold on bob's principal.
fn held_lake() -> Lake {
    let mut lake = Lake { work: tempfile::tempdir().expect("tempdir"), hold_id: String::new() };
    let dir = lake.work.path();
    sources(dir);
    // An input nobody can read: quarantined, with the default period for originals.
    std::fs::write(dir.join("in/not a session.log"), b"no session here\n").expect("write");
    let ingest =
        || run(binary("sessionlake-ingest", false).current_dir(dir).args(["--local", "in"]));
    let ingested = ingest();
    assert_eq!(ingested.code, 0, "{}", ingested.stderr);
    assert!(ingested.stdout.contains("ingested 6 sessions"), "{}", ingested.stdout);
    assert!(ingested.stdout.contains("1 quarantined"), "{}", ingested.stdout);
    // Alice's oldest transcript is delivered again, longer: the new version replaces the old,
    // which stays stored as history until the session expires.
    let first = dir.join("in/alice-0a0000000000000a1.log");
    let text = std::fs::read_to_string(&first).expect("read");
    std::fs::write(&first, text.replace("exit\r\r\n", "echo again\r\r\nexit\r\r\n"))
        .expect("write");
    let replaced = ingest();
    assert_eq!(replaced.code, 0, "{}", replaced.stderr);
    assert_eq!(lake.files_of("alice-0a0000000000000a1").len(), 8, "two versions of 4 objects");

    let held =
        cli(dir, &["hold", "add", "--principal", &arn("bob"), "--reason", "litigation 2026-17"]);
    assert_eq!(held.code, 0, "{}", held.stderr);
    let hold_id = held.stdout.split_whitespace().next().expect("hold id").to_string();
    let list = cli(dir, &["hold", "list", "--json"]);
    let holds = json_lines(&list.stdout);
    assert_eq!(holds.len(), 1, "{}", list.stdout);
    assert_eq!(holds[0]["data"]["id"], hold_id.as_str());
    assert_eq!(holds[0]["data"]["reason"], "litigation 2026-17");
    lake.hold_id = hold_id;
    lake
}

/// [`held_lake`] after `retention apply --yes` as of [`AS_OF`].
fn applied_lake() -> Lake {
    let lake = held_lake();
    let applied = cli(
        lake.dir(),
        &["retention", "apply", "--policy", "policy.toml", "--as-of", AS_OF, "--yes"],
    );
    assert_eq!(applied.code, 0, "{}", applied.stderr);
    lake
}

/// The plan of [`held_lake`] as of [`AS_OF`], as [`plan`] shows it.
///
/// As of 2026-06-01: alice's 3-year-old dev session is past the default 2y (both versions
/// go); her prod session (2y 3m) keeps its rows (prod: 3y) but not its original (2y); bob's
/// is held; eve's dev session is past the contractors' 1y and is shredded; eve's prod
/// session falls under both rules and keeps prod's longer periods; the newest is kept.
/// The access files: the day of alice's and bob's 2023 sessions loses alice's event and
/// keeps bob's (held); the day of eve's two sessions loses the dev session's event.
fn expected_first_plan() -> Vec<Value> {
    vec![
        session_line(
            "planned",
            ("alice-0a0000000000000a1", "session", "delete", "default"),
            (1126, 731),
            ("alice", "i-0dev0000000000001"),
            8,
        ),
        session_line(
            "planned",
            ("alice-0a0000000000000b2", "raw", "delete", "prod"),
            (821, 730),
            ("alice", "i-0prod000000000001"),
            1,
        ),
        session_line(
            "held",
            ("bob-0a0000000000000c3", "session", "delete", "default"),
            (1126, 731),
            ("bob", "i-0dev0000000000001"),
            4,
        ),
        session_line(
            "planned",
            ("contractor-eve-0a0000000000000d4", "session", "shred", "contractors"),
            (456, 365),
            ("contractor-eve", "i-0dev0000000000001"),
            4,
        ),
        access_line(
            "planned",
            ("2023-05-01", "access-events", "default"),
            (1126, 731),
            (Some(1), 2),
            true,
        ),
        access_line(
            "planned",
            ("2025-03-01", "access-events", "contractors"),
            (456, 365),
            (Some(1), 2),
            false,
        ),
    ]
}

/// The access events the lake returns, as `access --json` prints them.
fn access_events(dir: &Path) -> String {
    cli(dir, &["access", "--json"]).stdout
}

#[test]
fn test_retention_plan_lists_each_due_session_and_access_day_with_its_rule() {
    let lake = held_lake();
    assert_plan(&plan(lake.dir()), &expected_first_plan());
}

#[test]
fn test_retention_plan_text_names_the_hold_and_totals_by_partition() {
    let lake = held_lake();
    let hold_id = &lake.hold_id;
    let text = cli(lake.dir(), &["retention", "plan", "--policy", "policy.toml", "--as-of", AS_OF]);
    assert_eq!(text.code, 0, "{}", text.stderr);
    let lines: Vec<&str> = text.stdout.lines().collect();
    assert!(
        lines[0].starts_with(
            "delete       alice-0a0000000000000a1  age 1126d >= 731d  rule default  (8 objects, "
        ),
        "{}",
        text.stdout
    );
    assert!(
        lines[2].starts_with(&format!(
            "keep (held)  bob-0a0000000000000c3  age 1126d >= 731d  {hold_id}; rule default would \
             remove it  (4 objects, "
        )),
        "{}",
        text.stdout
    );
    assert!(lines[4].starts_with("rewrite      access/dt=2023-05-01/"), "{}", text.stdout);
    assert!(
        lines[4].ends_with(&format!(" bytes, 1 of 2 events, due events of {hold_id} kept)")),
        "{}",
        text.stdout
    );
    // Totals by partition: alice's first session's 8 objects and the access file's old version
    // on its day, the session key records apart.
    let partitions: Vec<&str> = lines
        .iter()
        .filter(|line| line.starts_with("total "))
        .map(|line| line.rsplit_once(", ").map_or(*line, |(head, _bytes)| head))
        .collect();
    assert_eq!(
        partitions,
        vec![
            "total dt=2023-05-01: 2 lines, 7 objects",
            "total dt=2024-03-01: 1 lines, 1 objects",
            "total dt=2025-03-01: 2 lines, 4 objects",
            "total dt=keys: 0 lines, 3 objects",
        ],
        "{}",
        text.stdout
    );
}

#[test]
fn test_retention_apply_without_yes_and_without_a_terminal_changes_nothing() {
    let lake = held_lake();
    let dir = lake.dir();
    let refused = cli(dir, &["retention", "apply", "--policy", "policy.toml", "--as-of", AS_OF]);
    assert_eq!(refused.code, 2, "{}", refused.stdout);
    assert!(refused.stderr.contains("refusing without --yes"), "{}", refused.stderr);
    assert_plan(&plan(dir), &expected_first_plan());
}

#[test]
fn test_an_interrupted_retention_apply_is_named_by_verify_and_finished_by_a_rerun() {
    let lake = held_lake();
    let dir = lake.dir();
    let lake_dir = lake.lake();
    // Keep a copy of what apply deletes, to play an interrupted run (committed, not deleted).
    let before: Vec<(PathBuf, Vec<u8>)> = lake
        .files_of("alice-0a0000000000000a1")
        .into_iter()
        .map(|file| (file.clone(), std::fs::read(lake_dir.join(&file)).expect("read")))
        .collect();
    let applied = cli(
        dir,
        &["retention", "apply", "--policy", "policy.toml", "--as-of", AS_OF, "--yes", "--json"],
    );
    assert_eq!(applied.code, 0, "{}", applied.stderr);
    let summary = json_lines(&applied.stdout).pop().expect("summary");
    assert_eq!(summary["type"], "summary");
    assert_eq!(
        (summary["data"]["due"].as_u64(), summary["data"]["held"].as_u64()),
        (Some(5), Some(1))
    );
    assert_eq!(summary["data"]["applied"], true);
    assert!(summary["data"]["manifest"].as_u64().is_some(), "{summary}");
    for (file, bytes) in &before {
        assert!(!lake_dir.join(file).exists(), "{} not deleted", file.display());
        std::fs::write(lake_dir.join(file), bytes).expect("restore");
    }
    let verified = cli(dir, &["verify", "--json"]);
    assert_eq!(verified.code, 1, "left-overs of an interrupted apply are named");
    assert_eq!(verified.stdout.matches("not-deleted").count(), 8, "{}", verified.stdout);
    // The re-run finishes the job: deletes the left-overs, plans nothing more; a quiet run is
    // a success for a job runner.
    let rerun =
        cli(dir, &["retention", "apply", "--policy", "policy.toml", "--as-of", AS_OF, "--yes"]);
    assert_eq!(rerun.code, 0, "nothing left to do: {}", rerun.stdout);
    assert!(rerun.stderr.contains("deleted 8 objects"), "{}", rerun.stderr);
    let verified = cli(dir, &["verify"]);
    assert_eq!(verified.code, 0, "{}{}", verified.stdout, verified.stderr);
    assert_plan(
        &plan(dir),
        &[
            session_line(
                "held",
                ("bob-0a0000000000000c3", "session", "delete", "default"),
                (1126, 731),
                ("bob", "i-0dev0000000000001"),
                4,
            ),
            access_line("held", ("2023-05-01", "access", ""), (0, 0), (None, 1), true),
        ],
    );
}

#[test]
fn test_retention_apply_removes_expired_access_events_and_keeps_held_and_young_ones() {
    let lake = applied_lake();
    let left = access_events(lake.dir());
    for gone in ["event-alice-0a0000000000000a1", "event-contractor-eve-0a0000000000000d4"] {
        assert!(!left.contains(gone), "{gone}: {left}");
    }
    for kept in [
        "event-bob-0a0000000000000c3",
        "event-contractor-eve-0a0000000000000e5",
        "event-alice-0a0000000000000b2",
    ] {
        assert!(left.contains(kept), "{kept}: {left}");
    }
}

/// Returns the lake's retention commit (its manifest, as JSON).
fn retention_commit(lake: &Path) -> Value {
    let manifests = lake.join("manifest");
    files_under(&manifests)
        .into_iter()
        .map(|file| std::fs::read_to_string(manifests.join(file)).expect("read"))
        .find(|text| text.contains("\"action\": \"retention\""))
        .map(|text| serde_json::from_str(&text).expect("manifest"))
        .expect("a retention commit")
}

/// A rewritten access file is named at the time of its rewrite; its footer keeps when ingest
/// first read the CloudTrail file, which decides between two `StartSession` events that
/// disagree (the first read stands): a rewrite must not make a later read win.
#[test]
fn test_a_rewritten_access_file_keeps_when_its_events_were_first_read() {
    let lake = applied_lake();
    let retention = retention_commit(&lake.lake());
    let access_paths = |list: &str| -> Vec<String> {
        retention["body"][list]
            .as_array()
            .expect("entries")
            .iter()
            .filter_map(|entry| entry["path"].as_str())
            .filter(|path| path.starts_with("access/"))
            .map(String::from)
            .collect()
    };
    let time_of = |path: &str| {
        paths::access_version(path).and_then(transaction::version_time).expect("a time")
    };
    let (added, removed) = (access_paths("added"), access_paths("removed"));
    assert_eq!(added.len(), 2, "{added:?}");
    for new in &added {
        let trail = paths::trail_file_id_of(new).expect("a CloudTrail file");
        let old = removed
            .iter()
            .find(|old| paths::trail_file_id_of(old) == Some(trail))
            .expect("the file it replaces");
        let bytes = std::fs::read(lake.lake().join(new)).expect("read");
        let read = parquet_io::read_access_file(bytes.into(), new, None).expect("an access file");
        let first_read = read.first_read_at;
        assert_eq!(first_read, Some(time_of(old)), "{new} replacing {old}");
        assert!(time_of(old) < time_of(new), "{new} is named at its rewrite");
    }
}

#[test]
fn test_the_retention_commit_notes_each_removed_object_with_its_rule_and_age() {
    let lake = applied_lake();
    // The chain says what went, why and who asked, object by object.
    let retention = retention_commit(&lake.lake());
    let reason = retention["body"]["reason"].as_str().unwrap_or_default();
    let policy_hash = sessionlake_storage::store::sha256_hex(POLICY.as_bytes());
    assert!(
        reason.starts_with(&format!("retention policy policy.toml (sha256 {policy_hash}) as of ")),
        "{reason}"
    );
    let notes: Vec<(&str, &str)> = retention["body"]["removed"]
        .as_array()
        .expect("removed")
        .iter()
        .map(|entry| (entry["path"].as_str().unwrap_or(""), entry["note"].as_str().unwrap_or("")))
        .collect();
    // The two rewritten access files' key records go with them, for their reason.
    assert_eq!(notes.len(), 8 + 1 + 4 + 2 + 2, "{notes:#?}");
    for (path, note) in &notes {
        let expected = if path.contains("alice-0a0000000000000a1") {
            "delete: rule default, 1126d old, kept 731d"
        } else if path.contains("alice-0a0000000000000b2") {
            "delete raw: rule prod, 821d old, kept 730d"
        } else if path.contains("contractor-eve-0a0000000000000d4") {
            "shred: rule contractors, 456d old, kept 365d"
        } else if path.contains("dt=2023-05-01") {
            "rewrite: rule default, 1126d old, kept 731d, 1 of 2 events"
        } else {
            "rewrite: rule contractors, 456d old, kept 365d, 1 of 2 events"
        };
        assert_eq!(*note, expected, "{path}");
    }
}

#[test]
fn test_retention_apply_keeps_held_and_young_sessions_and_expired_ones_cannot_be_exported() {
    let lake = applied_lake();
    let dir = lake.dir();
    // Held: intact. Original expired: rows stay, the transcript is gone. Expired and shredded:
    // export says so. The young one exports.
    let out = dir.join("exports");
    let export = |session: &str| {
        cli(dir, &["export", session, "--out", &out.join(session).to_string_lossy()])
    };
    assert_eq!(export("bob-0a0000000000000c3").code, 0);
    let rows_kept = cli(dir, &["search", "--session", "alice-0a0000000000000b2", "--json"]);
    assert_eq!(rows_kept.code, 0, "{}", rows_kept.stderr);
    assert!(rows_kept.stdout.contains("echo retention-alice-0a0000000000000b2"));
    assert_ne!(cli(dir, &["show", "alice-0a0000000000000b2", "--raw"]).code, 0);
    for gone in ["alice-0a0000000000000a1", "contractor-eve-0a0000000000000d4"] {
        let failed = export(gone);
        assert_eq!(failed.code, 2, "{}", failed.stdout);
        assert!(failed.stderr.contains("was removed by manifest"), "{}", failed.stderr);
        assert_eq!(lake.files_of(gone), Vec::<PathBuf>::new(), "files of {gone} left");
    }
    assert_eq!(export("alice-0a0000000000000f6").code, 0);
}

#[test]
fn test_shred_is_refused_under_a_hold_and_after_its_release_leaves_no_readable_copy() {
    let lake = applied_lake();
    let dir = lake.dir();
    let lake_dir = lake.lake();
    let hold_id = &lake.hold_id;
    // Shred: refused under a hold; after the release, every copy is unreadable and its
    // CloudTrail events are gone.
    let held_shred = cli(dir, &["shred", "bob-0a0000000000000c3", "--reason", "gdpr", "--yes"]);
    assert_eq!(held_shred.code, 2);
    assert!(held_shred.stderr.contains(hold_id.as_str()), "{}", held_shred.stderr);
    let released = cli(dir, &["hold", "release", hold_id, "--reason", "case closed", "--json"]);
    assert_eq!(released.code, 0, "{}", released.stderr);
    assert_eq!(json_lines(&released.stdout)[0]["data"]["id"], hold_id.as_str());
    let raw_copy = files_under(&lake_dir)
        .into_iter()
        .find(|file| file.starts_with("raw") && file.to_string_lossy().contains("bob-"))
        .map(|file| std::fs::read(lake_dir.join(file)).expect("read"))
        .expect("bob's transcript");
    let shredded = cli(
        dir,
        &["shred", "bob-0a0000000000000c3", "--reason", "gdpr art. 17", "--yes", "--json"],
    );
    assert_eq!(shredded.code, 0, "{}", shredded.stderr);
    let record = &json_lines(&shredded.stdout)[0]["data"];
    // Its 4 objects and the access file that held only its event, with that file's key.
    assert_eq!(
        (record["objects"].as_u64(), record["access_rewritten"].as_u64()),
        (Some(6), Some(0))
    );
    // The copy names a session key record that no longer exists anywhere in the lake.
    let header_len = u32::from_le_bytes(raw_copy[4..8].try_into().expect("4")) as usize;
    let header: Value = serde_json::from_slice(&raw_copy[8..8 + header_len]).expect("header");
    let key_record = header["key"]["key_id"].as_str().expect("key record");
    assert_eq!(header["key"]["provider"], "session");
    assert!(!lake_dir.join(key_record).exists(), "{key_record} survived the shred");
    assert!(!access_events(dir).contains("event-bob-0a0000000000000c3"), "bob's event survived");
    let after = dir.join("exports").join("bob-after-shred");
    let failed = cli(dir, &["export", "bob-0a0000000000000c3", "--out", &after.to_string_lossy()]);
    assert_eq!(failed.code, 2, "{}", failed.stdout);
    assert!(failed.stderr.contains("gdpr art. 17"), "{}", failed.stderr);
    let verified = cli(dir, &["verify"]);
    assert_eq!(verified.code, 0, "{}{}", verified.stdout, verified.stderr);
    // Nothing else is due now.
    assert_plan(&plan(dir), &[]);
}

#[test]
fn test_a_quarantined_input_expires_with_the_default_raw_period() {
    let lake = applied_lake();
    // Much later, the quarantined input is due (default raw: 1y from the commit that added it).
    let later = plan_at(lake.dir(), "2030-01-01");
    let quarantine: Vec<&Value> =
        later.iter().filter(|line| line["data"]["expires"] == "quarantine").collect();
    assert_eq!(quarantine.len(), 1, "{later:#?}");
    assert!(
        quarantine[0]["data"]["session_id"].as_str().unwrap_or("").starts_with("quarantine/"),
        "{later:#?}"
    );
    assert_eq!(quarantine[0]["data"]["rule"], "default");
}
