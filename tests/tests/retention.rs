//! Retention end to end: sessions over three years, a policy with overlapping rules, a hold on
//! one principal; plan checked exactly, apply (refused without --yes, interrupted and re-run),
//! verify, held sessions intact, shredded sessions unreadable while the others export.

use std::path::Path;

use serde_json::Value;
use sessionlake_tests::{Ran, binary, files_under, run};

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

fn cli(dir: &Path, args: &[&str]) -> Ran {
    run(binary("sessionlake", false).current_dir(dir).args(args))
}

fn json_lines(text: &str) -> Vec<Value> {
    text.lines().map(|line| serde_json::from_str(line).expect("JSON line")).collect()
}

/// One line of a plan: record type, session, what expires, action, rule, held.
type PlanRow = (String, String, String, String, String, bool);

/// The plan as of [`AS_OF`], and the exit code.
fn plan(dir: &Path) -> (i32, Vec<PlanRow>) {
    let ran =
        cli(dir, &["retention", "plan", "--policy", "policy.toml", "--as-of", AS_OF, "--json"]);
    let records = json_lines(&ran.stdout);
    let rows = records
        .iter()
        .filter(|record| record["type"] != "summary")
        .map(|record| {
            let data = &record["data"];
            let text = |key: &str| data[key].as_str().unwrap_or_default().to_string();
            (
                record["type"].as_str().unwrap_or_default().to_string(),
                text("session_id"),
                text("expires"),
                text("action"),
                text("rule"),
                data.get("held_by").is_some(),
            )
        })
        .collect();
    (ran.code, rows)
}

fn row(
    kind: &str,
    id: &str,
    expires: &str,
    action: &str,
    rule: &str,
) -> (String, String, String, String, String, bool) {
    let held = kind == "held";
    (kind.into(), id.into(), expires.into(), action.into(), rule.into(), held)
}

#[test]
fn test_retention_with_rules_holds_and_shredding() {
    let work = tempfile::tempdir().expect("tempdir");
    let dir = work.path();
    sources(dir);
    let ingested =
        run(binary("sessionlake-ingest", false).current_dir(dir).args(["--local", "in"]));
    assert_eq!(ingested.code, 0, "{}", ingested.stderr);
    assert!(ingested.stdout.contains("ingested 6 sessions"), "{}", ingested.stdout);

    let held =
        cli(dir, &["hold", "add", "--principal", &arn("bob"), "--reason", "litigation 2026-17"]);
    assert_eq!(held.code, 0, "{}", held.stderr);
    let hold_id = held.stdout.split_whitespace().next().expect("hold id").to_string();
    let list = cli(dir, &["hold", "list"]);
    assert!(
        list.stdout.contains(&hold_id) && list.stdout.contains("litigation 2026-17"),
        "{}",
        list.stdout
    );

    // As of 2026-06-01: alice's 3-year-old dev session is past the default 2y; her prod session
    // (2y 3m) keeps its rows (prod: 3y) but not its original (2y); bob's is held; eve's dev
    // session is past the contractors' 1y and is shredded; eve's prod session falls under both
    // rules and keeps prod's longer periods; the newest is kept.
    let (code, mut rows) = plan(dir);
    assert_eq!(code, 0);
    // The day's CloudTrail events of alice's and bob's 2023 sessions: held for bob's.
    let access = take_access(&mut rows);
    assert_eq!(access.len(), 1, "{access:?}");
    assert!(access[0].1.starts_with("access/dt=2023-05-01/"), "{access:?}");
    assert_eq!((access[0].0.as_str(), access[0].5), ("held", true));
    assert_eq!(
        rows,
        vec![
            row("planned", "alice-0a0000000000000a1", "session", "delete", "default"),
            row("planned", "alice-0a0000000000000b2", "raw", "delete", "prod"),
            row("held", "bob-0a0000000000000c3", "session", "delete", "default"),
            row("planned", "contractor-eve-0a0000000000000d4", "session", "shred", "contractors"),
        ]
    );
    let text = cli(dir, &["retention", "plan", "--policy", "policy.toml", "--as-of", AS_OF]);
    assert!(text.stdout.contains("keep (held)  bob-0a0000000000000c3"), "{}", text.stdout);
    assert!(text.stdout.contains("total dt=2023-05-01: 1 sessions"), "{}", text.stdout);

    // No terminal to ask on, no --yes: nothing happens.
    let refused = cli(dir, &["retention", "apply", "--policy", "policy.toml", "--as-of", AS_OF]);
    assert_eq!(refused.code, 2, "{}", refused.stdout);
    assert!(refused.stderr.contains("refusing without --yes"), "{}", refused.stderr);
    assert_eq!(plan(dir).1.len(), 5);

    // Keep a copy of what apply deletes, to play an interrupted run (committed, not deleted).
    let lake = dir.join("lake");
    let before: Vec<(std::path::PathBuf, Vec<u8>)> = files_under(&lake)
        .into_iter()
        .filter(|file| file.to_string_lossy().contains("alice-0a0000000000000a1"))
        .map(|file| (file.clone(), std::fs::read(lake.join(&file)).expect("read")))
        .collect();
    assert!(before.len() >= 4, "{before:?}");
    let applied =
        cli(dir, &["retention", "apply", "--policy", "policy.toml", "--as-of", AS_OF, "--yes"]);
    assert_eq!(applied.code, 0, "{}", applied.stderr);
    for (file, bytes) in &before {
        assert!(!lake.join(file).exists(), "{} not deleted", file.display());
        std::fs::write(lake.join(file), bytes).expect("restore");
    }
    let verified = cli(dir, &["verify", "--json"]);
    assert_eq!(verified.code, 1, "left-overs of an interrupted apply are named");
    // The re-run finishes the job: deletes the left-overs, plans nothing more.
    let rerun =
        cli(dir, &["retention", "apply", "--policy", "policy.toml", "--as-of", AS_OF, "--yes"]);
    assert_eq!(rerun.code, 1, "nothing left to do: {}", rerun.stdout);
    assert!(
        rerun.stderr.contains(&format!("deleted {} objects", before.len())),
        "{}",
        rerun.stderr
    );
    let verified = cli(dir, &["verify"]);
    assert_eq!(verified.code, 0, "{}{}", verified.stdout, verified.stderr);
    let (_, mut rows) = plan(dir);
    assert_eq!(take_access(&mut rows).len(), 1);
    assert_eq!(rows, vec![row("held", "bob-0a0000000000000c3", "session", "delete", "default")]);

    // The chain says what went, why and who asked.
    let manifests = lake.join("manifest");
    let retention = files_under(&manifests)
        .into_iter()
        .map(|file| std::fs::read_to_string(manifests.join(file)).expect("read"))
        .find(|text| text.contains("\"action\": \"retention\""))
        .expect("a retention commit");
    assert!(retention.contains("retention policy policy.toml"), "{retention}");

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
        assert!(
            !files_under(&lake).iter().any(|file| file.to_string_lossy().contains(gone)),
            "files of {gone} left"
        );
    }
    assert_eq!(export("alice-0a0000000000000f6").code, 0);

    // Shred: refused under a hold; after the release, every copy is unreadable.
    let held_shred = cli(dir, &["shred", "bob-0a0000000000000c3", "--reason", "gdpr", "--yes"]);
    assert_eq!(held_shred.code, 2);
    assert!(held_shred.stderr.contains(&hold_id), "{}", held_shred.stderr);
    let released = cli(dir, &["hold", "release", &hold_id, "--reason", "case closed"]);
    assert_eq!(released.code, 0, "{}", released.stderr);
    let raw_copy = files_under(&lake)
        .into_iter()
        .find(|file| file.starts_with("raw") && file.to_string_lossy().contains("bob-"))
        .map(|file| std::fs::read(lake.join(file)).expect("read"))
        .expect("bob's transcript");
    let shredded =
        cli(dir, &["shred", "bob-0a0000000000000c3", "--reason", "gdpr art. 17", "--yes"]);
    assert_eq!(shredded.code, 0, "{}", shredded.stderr);
    // The copy names a session key record that no longer exists anywhere in the lake.
    let header_len = u32::from_le_bytes(raw_copy[4..8].try_into().expect("4")) as usize;
    let header: Value = serde_json::from_slice(&raw_copy[8..8 + header_len]).expect("header");
    let record = header["key"]["key_id"].as_str().expect("key record");
    assert_eq!(header["key"]["provider"], "session");
    assert!(!lake.join(record).exists(), "{record} survived the shred");
    let after = out.join("bob-after-shred");
    let failed = cli(dir, &["export", "bob-0a0000000000000c3", "--out", &after.to_string_lossy()]);
    assert_eq!(failed.code, 2, "{}", failed.stdout);
    assert!(failed.stderr.contains("gdpr art. 17"), "{}", failed.stderr);
    let verified = cli(dir, &["verify"]);
    assert_eq!(verified.code, 0, "{}{}", verified.stdout, verified.stderr);

    // Released, the 2023 access events go too; the later ones stay.
    let events = |dir: &Path| cli(dir, &["access", "--json"]).stdout;
    assert!(events(dir).contains("event-bob-0a0000000000000c3"));
    let (_, mut rows) = plan(dir);
    let access = take_access(&mut rows);
    assert_eq!((access.len(), access[0].0.as_str()), (1, "planned"), "{access:?}");
    let applied =
        cli(dir, &["retention", "apply", "--policy", "policy.toml", "--as-of", AS_OF, "--yes"]);
    assert_eq!(applied.code, 0, "{}", applied.stderr);
    let left = events(dir);
    assert!(!left.contains("event-bob-0a0000000000000c3"), "{left}");
    assert!(left.contains("event-alice-0a0000000000000f6"), "{left}");
    let verified = cli(dir, &["verify"]);
    assert_eq!(verified.code, 0, "{}{}", verified.stdout, verified.stderr);
}

/// Takes the plan's lines about `access` files out of `rows`.
fn take_access(rows: &mut Vec<PlanRow>) -> Vec<PlanRow> {
    let (access, sessions): (Vec<PlanRow>, Vec<PlanRow>) =
        std::mem::take(rows).into_iter().partition(|row| row.2 == "access");
    *rows = sessions;
    access
}
