//! `search`, `sessions` and `sql` on the lake the real ingest builds from the examples: exact
//! rows for combinations of filters, paging that returns every row once, agreement with DuckDB
//! on the same files, output formats, exit codes and colour.

use std::path::Path;
use std::process::Command;

use serde_json::Value;
use sessionlake_tests::{binary, copy_tree, duckdb, repo_root, run};

use super::{cli, ingested_examples, parse_json_lines};

const ALICE: &str = "alice-0123456789abcdef0";
const ALICE_UBUNTU: &str = "alice-ekp6rf9qs5arzcjxsndyvboavi";
const BOB: &str = "bob-ilpxvkhghl9vs9ia2xfdyp4dka";
const CAROL: &str = "carol.diaz-07a16060613c408b5";

/// Commands in the examples' lake.
const ALL_COMMANDS: u64 = 39;

/// Runs `sessionlake search --json <args>`; returns the exit code, the (session, seq) of each
/// row in order, and the summary.
fn search_keys(dir: &Path, args: &[&str]) -> (i32, Vec<(String, u64)>, Value) {
    let ran = cli(dir, &[&["search", "--json"], args].concat());
    assert!(ran.code == 0 || ran.code == 1, "{args:?}: exit {}: {}", ran.code, ran.stderr);
    let (rows, summary) = parse_json_lines(&ran.stdout);
    (ran.code, row_keys(&rows), summary)
}

/// The (session, seq) of each search row.
fn row_keys(rows: &[std::collections::BTreeMap<String, Value>]) -> Vec<(String, u64)> {
    rows.iter()
        .map(|row| {
            let session = row["session_id"].as_str().expect("session_id").to_string();
            (session, row["seq"].as_u64().expect("seq"))
        })
        .collect()
}

/// Expected rows: each session with its commands' seq, in order.
type Rows<'a> = &'a [(&'a str, &'a [u64])];

fn keys(expected: Rows) -> Vec<(String, u64)> {
    expected
        .iter()
        .flat_map(|(session, seqs)| seqs.iter().map(|seq| (session.to_string(), *seq)))
        .collect()
}

#[test]
fn test_search_filter_combinations_find_exact_rows() {
    let (dir, _) = ingested_examples();
    let cases: &[(&[&str], Rows)] = &[
        (&["--command", "^rm "], &[(ALICE, &[10])]),
        (&["--command-contains", "deploy.sh"], &[(CAROL, &[6]), (ALICE_UBUNTU, &[5, 7])]),
        (&["--principal", "carol.diaz", "--command", "^cd"], &[(CAROL, &[1, 5])]),
        (&["--run-as", "ubuntu", "--command", "^ls"], &[(ALICE_UBUNTU, &[0, 6])]),
        (
            &["--target", "i-0fedcba9876543210", "--command-contains", "grep -c ERROR"],
            &[(BOB, &[5]), (ALICE_UBUNTU, &[3])],
        ),
        (
            &[
                "--session",
                BOB,
                "--since",
                "2026-03-14T10:02:22Z",
                "--until",
                "2026-03-14T10:02:24Z",
            ],
            &[(BOB, &[3, 4])],
        ),
        (&["--output", "ERROR"], &[(ALICE, &[4]), (BOB, &[7])]),
        (&["--output", "^deploying", "--principal", "alice"], &[(ALICE_UBUNTU, &[5, 7])]),
        (
            &["--output", "^$", "--command", "^cd"],
            &[(ALICE, &[1, 11]), (BOB, &[3]), (CAROL, &[1, 5]), (ALICE_UBUNTU, &[2])],
        ),
        (&["--since", "2026-03-15", "--command", "exit"], &[(ALICE_UBUNTU, &[8])]),
        (
            &["--principal", "arn:aws:iam::111122223333:user/bob", "--command", "^exit$"],
            &[(BOB, &[6, 8])],
        ),
        (&["--principal", "bob", "--run-as", "ubuntu"], &[]),
        // `--run-as` also matches whom a command ran as: bob's root shell after `sudo su`.
        (&["--run-as", "root"], &[(BOB, &[3, 4, 5, 6])]),
        (&["--kind", "shell", "--session", BOB], &[(BOB, &[0, 1, 2, 3, 4, 5, 6, 7, 8])]),
        (&["--kind", "repl"], &[]),
        (&["--program", "mysql"], &[]),
        (&["--command", "rm -rf", "--until", "2026-03-14"], &[]),
    ];
    for (args, expected) in cases {
        let (code, found, summary) = search_keys(dir.path(), args);
        let expected = keys(expected);
        assert_eq!(found, expected, "search {args:?}");
        assert_eq!(code, if expected.is_empty() { 1 } else { 0 }, "exit of search {args:?}");
        assert_eq!(summary["matched"], Value::from(expected.len()), "{args:?}: {summary}");
        assert_eq!(summary["next"], Value::Null, "{args:?}: {summary}");
    }
}

#[test]
fn test_paging_returns_every_row_exactly_once() {
    let (dir, _) = ingested_examples();
    let (_, everything, summary) = search_keys(dir.path(), &[]);
    assert_eq!(summary["matched"], Value::from(ALL_COMMANDS));
    assert_eq!(everything.len() as u64, ALL_COMMANDS);
    for (limit, filters) in [
        ("1", &[][..]),
        ("4", &[][..]),
        ("7", &["--principal", "alice"][..]),
        ("38", &[][..]),
        ("39", &[][..]),
        ("100", &[][..]),
    ] {
        let (_, expected, _) = search_keys(dir.path(), filters);
        let mut paged = Vec::new();
        let mut after: Option<String> = None;
        for page in 0.. {
            assert!(page <= expected.len(), "limit {limit}: paging does not end");
            let mut args = vec!["--limit", limit];
            args.extend_from_slice(filters);
            if let Some(cursor) = &after {
                args.extend(["--after", cursor.as_str()]);
            }
            let (code, rows, summary) = search_keys(dir.path(), &args);
            assert_eq!(code, 0, "limit {limit} page {page}");
            assert!(rows.len() <= limit.parse().expect("limit"), "limit {limit}: {rows:?}");
            assert_eq!(summary["matched"], Value::from(expected.len()), "{summary}");
            assert_eq!(summary["shown"], Value::from(rows.len()), "{summary}");
            paged.extend(rows);
            match summary["next"].as_str() {
                Some(next) => after = Some(next.to_string()),
                None => break,
            }
        }
        assert_eq!(paged, expected, "limit {limit} {filters:?}");
    }
    // A search bigger than a chunk reads one window of sort time at a time (bounded memory);
    // windows of a few rows, which end inside sessions and between them, give every row once,
    // in order, with filters too, and so do pages that span windows. A result that fits in a
    // chunk (all 39 rows in 39, alice's in 38) is one query.
    let (_, alices, _) = search_keys(dir.path(), &["--principal", "alice"]);
    for chunk in ["1", "3", "38", "39"] {
        let chunked = |args: &[&str]| {
            let ran = run(binary("sessionlake", false)
                .current_dir(dir.path())
                .env("SESSIONLAKE_CHUNK_ROWS", chunk)
                .args([&["search", "--json"], args].concat()));
            assert_eq!(ran.code, 0, "chunk {chunk}: {}", ran.stderr);
            parse_json_lines(&ran.stdout)
        };
        let (rows, summary) = chunked(&[]);
        let keys = row_keys(&rows);
        assert_eq!(keys, everything, "chunk {chunk}");
        let (rows, _) = chunked(&["--principal", "alice"]);
        let keys = row_keys(&rows);
        assert_eq!(keys, alices, "chunk {chunk}");
        assert_eq!(summary["matched"], Value::from(ALL_COMMANDS), "chunk {chunk}");
        let (rows, summary) = chunked(&["--limit", "5"]);
        assert_eq!(rows.len(), 5, "chunk {chunk}");
        assert_eq!(rows[4]["seq"], Value::from(everything[4].1), "chunk {chunk}");
        assert!(summary["next"].is_string(), "chunk {chunk}: {summary}");
    }
    // `sessions` pages the same way, by (start, session, source).
    let mut sessions = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let mut args = vec!["sessions", "--json", "--limit", "1"];
        if let Some(cursor) = &after {
            args.extend(["--after", cursor.as_str()]);
        }
        let ran = cli(dir.path(), &args);
        assert_eq!(ran.code, 0, "{}", ran.stderr);
        let (rows, summary) = parse_json_lines(&ran.stdout);
        sessions.extend(rows.iter().map(|row| row["session_id"].as_str().expect("id").to_string()));
        match summary["next"].as_str() {
            Some(next) => after = Some(next.to_string()),
            None => break,
        }
    }
    assert_eq!(sessions, [ALICE, BOB, CAROL, ALICE_UBUNTU]);
    // A cursor of one listing is refused by the other, and garbage is refused: exit 2.
    let (_, _, first) = search_keys(dir.path(), &["--limit", "1"]);
    let cursor = first["next"].as_str().expect("next");
    for args in [vec!["sessions", "--after", cursor], vec!["search", "--after", "garbage"]] {
        let refused = cli(dir.path(), &args);
        assert_eq!(refused.code, 2, "{args:?}: {}", refused.stderr);
        assert!(refused.stderr.contains("--after"), "{}", refused.stderr);
    }
    // The table's summary names the next page.
    let table = cli(dir.path(), &["search", "--limit", "2"]);
    assert!(
        table.stderr.contains("39 matching commands (showing 2; next page: --after "),
        "{}",
        table.stderr
    );
}

/// The search's order and time over the same files, in DuckDB.
const DUCKDB_SEARCH: &str = "WITH s AS (SELECT session_id, min(started_at) AS started_at, \
    max(ended_at) AS ended_at FROM read_parquet('lake/sessions/**/*.parquet') GROUP BY ALL), \
    c AS (SELECT c.session_id, c.seq, c.principal, c.run_as, c.target, \
    coalesce(c.started_at, s.started_at, s.ended_at) AS t \
    FROM read_parquet('lake/commands/**/*.parquet') c LEFT JOIN s USING (session_id)) \
    SELECT session_id, seq FROM c WHERE {} ORDER BY t NULLS FIRST, session_id, seq";

#[test]
fn test_search_and_sql_agree_with_duckdb() {
    let (dir, _) = ingested_examples();
    // Plaintext columns only: DuckDB cannot open the encrypted ones.
    let cases: &[(&[&str], &str)] = &[
        (&[], "true"),
        (&["--principal", "alice"], "strpos(principal, 'alice') > 0"),
        (
            &["--target", "i-0a1b2c3d4e5f67890", "--run-as", "ssm-user"],
            "target = 'i-0a1b2c3d4e5f67890' AND run_as = 'ssm-user'",
        ),
        (
            &["--since", "2026-03-14T10:00:00Z", "--until", "2026-03-16"],
            "t >= TIMESTAMPTZ '2026-03-14 10:00:00+00' AND t < TIMESTAMPTZ '2026-03-16 00:00:00+00'",
        ),
        (
            &["--session", CAROL, "--since", "2026-03-14"],
            "session_id = 'carol.diaz-07a16060613c408b5' AND t >= TIMESTAMPTZ '2026-03-14 00:00:00+00'",
        ),
    ];
    for (args, predicate) in cases {
        let (_, found, _) = search_keys(dir.path(), args);
        let expected: Vec<(String, u64)> =
            duckdb(dir.path(), &DUCKDB_SEARCH.replace("{}", predicate))
                .iter()
                .map(|row| {
                    (row[0].as_str().expect("id").to_string(), row[1].as_u64().expect("seq"))
                })
                .collect();
        assert!(!expected.is_empty(), "{predicate} matches nothing: a weak case");
        assert_eq!(found, expected, "search {args:?} vs DuckDB {predicate}");
    }
    // `sql` over the same tables: the same aggregates as DuckDB.
    let query = "SELECT principal, target, count(*) AS commands, count(DISTINCT session_id) AS sessions \
        FROM commands GROUP BY principal, target ORDER BY principal, target";
    let ours = cli(dir.path(), &["sql", query, "--format", "csv"]);
    assert_eq!(ours.code, 0, "{}", ours.stderr);
    let theirs = duckdb(
        dir.path(),
        &query.replace("FROM commands", "FROM read_parquet('lake/commands/**/*.parquet')"),
    );
    let mut expected = String::from("principal,target,commands,sessions\n");
    for row in theirs {
        let cells: Vec<String> = row
            .as_array()
            .expect("row")
            .iter()
            .map(|cell| cell.as_str().map_or_else(|| cell.to_string(), str::to_string))
            .collect();
        expected.push_str(&cells.join(","));
        expected.push('\n');
    }
    assert_eq!(ours.stdout, expected);
}

#[test]
fn test_sql_formats_and_refusals() {
    let (dir, _) = ingested_examples();
    // Decrypted columns are there; CSV and JSON Lines.
    let query = "SELECT session_id, seq, command, started_at FROM commands \
        WHERE command LIKE 'rm %' OR (session_id LIKE 'bob-%' AND seq = 0) ORDER BY session_id";
    let csv = cli(dir.path(), &["sql", query, "--format", "csv"]);
    assert_eq!(csv.code, 0, "{}", csv.stderr);
    assert_eq!(
        csv.stdout,
        "session_id,seq,command,started_at\n\
         alice-0123456789abcdef0,10,rm -rf /tmp/alice-scratch,\n\
         bob-ilpxvkhghl9vs9ia2xfdyp4dka,0,pwd,2026-03-14 10:02:18Z\n"
    );
    let json = cli(dir.path(), &["sql", query, "--json"]);
    assert_eq!(json.code, 0, "{}", json.stderr);
    let lines: Vec<Value> =
        json.stdout.lines().map(|line| serde_json::from_str(line).expect("json")).collect();
    assert_eq!(
        lines,
        vec![
            serde_json::json!({"type": "row", "data": {"session_id": ALICE, "seq": 10, "command": "rm -rf /tmp/alice-scratch", "started_at": null}}),
            serde_json::json!({"type": "row", "data": {"session_id": BOB, "seq": 0, "command": "pwd", "started_at": "2026-03-14 10:02:18Z"}}),
            serde_json::json!({"type": "summary", "data": {"rows": 2}}),
        ]
    );
    // The table is aligned and counts the rows on stderr.
    let table = cli(dir.path(), &["sql", "SELECT count(*) AS n FROM sessions"]);
    assert_eq!((table.code, table.stdout.as_str()), (0, " n\n 4\n"), "{}", table.stderr);
    assert!(table.stderr.contains("1 rows"), "{}", table.stderr);
    // An empty result still has its CSV header; a query with no rows exits 0.
    let empty =
        cli(dir.path(), &["sql", "SELECT session_id FROM sessions WHERE false", "--format", "csv"]);
    assert_eq!((empty.code, empty.stdout.as_str()), (0, "session_id\n"), "{}", empty.stderr);

    // Nothing but queries: refused before anything runs, exit 2, and nothing written.
    let out = dir.path().join("copied.csv");
    let copy = format!("COPY (SELECT command FROM commands) TO '{}'", out.display());
    for statement in [
        copy.as_str(),
        "CREATE TABLE t AS SELECT * FROM commands",
        "INSERT INTO commands SELECT * FROM commands",
        "DROP TABLE sessions",
        "SELECT 1; SELECT 2",
        "SELEKT 1",
    ] {
        let refused = cli(dir.path(), &["sql", statement]);
        assert_eq!(refused.code, 2, "{statement}: {}", refused.stderr);
        assert!(refused.stdout.is_empty(), "{statement}: {}", refused.stdout);
        assert!(refused.stderr.starts_with("sessionlake: "), "{statement}: {}", refused.stderr);
    }
    assert!(std::fs::metadata(&out).is_err(), "COPY wrote {}", out.display());
    let refused = cli(dir.path(), &["sql", "DROP TABLE sessions"]);
    assert!(
        refused.stderr.contains("queries only") && refused.stderr.contains("DROP"),
        "{}",
        refused.stderr
    );
}

#[test]
fn test_search_formats_exit_codes_and_broken_pipe() {
    let (dir, _) = ingested_examples();
    let csv = cli(dir.path(), &["search", "--command", "^rm ", "--format", "csv"]);
    assert_eq!(csv.code, 0, "{}", csv.stderr);
    assert_eq!(
        csv.stdout,
        "session_id,seq,time,time_kind,principal,run_as,target,cwd,command,effective_user,shell,\
         command_kind,program\n\
         alice-0123456789abcdef0,10,2026-03-14 09:26:50Z,session-start,\
         arn:aws:sts::111122223333:assumed-role/Admin/alice,ssm-user,i-0a1b2c3d4e5f67890,app,\
         rm -rf /tmp/alice-scratch,ssm-user,bash,shell,\n"
    );
    // `--json` is `--format json`, and the two cannot be mixed.
    let json = cli(dir.path(), &["search", "--command", "^rm ", "--format", "json"]);
    let last: Value =
        serde_json::from_str(json.stdout.lines().last().expect("line")).expect("json");
    assert_eq!(
        last,
        serde_json::json!({"type": "summary", "data": {"matched": 1, "shown": 1, "next": null}})
    );
    assert_eq!(cli(dir.path(), &["search", "--json", "--format", "csv"]).code, 2);
    // 1 when nothing matched; 2 on errors, named.
    let none = cli(dir.path(), &["search", "--command", "no such command"]);
    assert_eq!((none.code, none.stdout.as_str()), (1, ""));
    assert!(none.stderr.contains("0 matching commands"), "{}", none.stderr);
    for (args, named) in [
        (&["search", "--output", "(unclosed"][..], "--output"),
        (&["search", "--since", "yesterday"][..], "--since"),
        (&["search", "--limit", "0"][..], "--limit"),
        (&["--lake", "no-such-lake", "search"][..], "no-such-lake"),
    ] {
        let failed = cli(dir.path(), args);
        assert_eq!(failed.code, 2, "{args:?}: {}", failed.stderr);
        assert!(failed.stderr.contains(named), "{args:?}: {}", failed.stderr);
    }
    // A reader that stops early (`| head -1`) ends the output quietly, with success.
    let piped = run(Command::new("bash")
        .current_dir(dir.path())
        .arg("-c")
        .arg("\"$0\" sql 'SELECT * FROM range(2000000)' --format csv | head -1; echo \"exit ${PIPESTATUS[0]}\"")
        .arg(assert_cmd::cargo::cargo_bin("sessionlake")));
    assert_eq!(piped.stdout, "value\nexit 0\n", "{}", piped.stderr);
    assert!(!piped.stderr.contains("sessionlake:"), "{}", piped.stderr);
}

#[test]
fn test_search_and_sessions_show_whom_and_how_well_understood() {
    let (dir, _) = ingested_examples();
    // JSON: the columns of schema version 2, after the others (additive).
    let ran = cli(dir.path(), &["search", "--json", "--session", BOB]);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    let (rows, _) = parse_json_lines(&ran.stdout);
    let whom: Vec<(&str, &str, &str, &str)> = rows
        .iter()
        .map(|row| {
            let text = |name: &str| row[name].as_str().unwrap_or("null");
            (text("run_as"), text("effective_user"), text("command_kind"), text("program"))
        })
        .collect();
    let user = ("ssm-user", "ssm-user", "shell", "null");
    let root = ("ssm-user", "root", "shell", "null");
    assert_eq!(whom, [user, user, user, root, root, root, root, user, user]);
    // The table says whom a command ran as where that is not the session's OS user.
    let table = cli(dir.path(), &["search", "--session", BOB, "--color", "never"]);
    let root_lines: Vec<&str> =
        table.stdout.lines().filter(|line| line.contains("ssm-user→root")).collect();
    assert_eq!(root_lines.len(), 4, "{}", table.stdout);
    assert!(root_lines.iter().all(|line| !line.contains("  ssm-user  ")), "{}", table.stdout);
    // `sessions` says how well each transcript was understood.
    let ran = cli(dir.path(), &["sessions", "--json"]);
    let (rows, _) = parse_json_lines(&ran.stdout);
    let confidence: Vec<&str> =
        rows.iter().map(|row| row["confidence"].as_str().expect("confidence")).collect();
    assert_eq!(confidence, ["high", "medium", "high", "high"], "{}", ran.stdout);
    let table = cli(dir.path(), &["sessions", "--color", "never"]);
    let header = table.stdout.lines().next().expect("header");
    let titles: Vec<&str> = header.split_whitespace().collect();
    let at = |title: &str| titles.iter().position(|t| *t == title).expect("title");
    assert_eq!((at("STATUS") + 1, at("CONFIDENCE") + 1), (at("CONFIDENCE"), at("SOURCE")));
    assert_eq!(table.stdout.matches("  high  ").count(), 3, "{}", table.stdout);
}

/// A lake written by an ingest of schema version 1 (`tests/data/schema1-lake`: the examples'
/// four sessions, their files' footers say `sessionlake.schema_version` 1 and have none of the
/// columns added since) that today's ingest then adds a session to (zsh with root shells):
/// `search`, `sessions` and `sql` read both kinds of file, the old ones' added columns null.
#[test]
fn test_a_lake_of_schema_1_and_schema_2_files_is_read_whole() {
    let dir = tempfile::tempdir().expect("tempdir");
    copy_tree(&repo_root().join("tests/data/schema1-lake"), dir.path());
    let keyring = dir.path().join("keyring.json");
    std::fs::set_permissions(&keyring, std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .expect("keyring mode");
    let source = dir.path().join("src");
    std::fs::create_dir(&source).expect("src");
    const IVAN: &str = "ivan-0d2e4f6a8b0c2d4e6";
    std::fs::copy(
        repo_root().join(format!("corpus/{IVAN}/s3.log")),
        source.join(format!("{IVAN}.log")),
    )
    .expect("copy");
    let lake_args = ["--lake", "lake", "--keyring", "keyring.json"];
    let ingest = run(binary("sessionlake-ingest", false)
        .current_dir(dir.path())
        .args(lake_args)
        .args(["--local", "src"]));
    assert_eq!(ingest.code, 0, "{}", ingest.stderr);
    let cli = |args: &[&str]| cli(dir.path(), &[&lake_args[..], args].concat());
    let verified = cli(&["verify"]);
    assert_eq!(verified.code, 0, "{}{}", verified.stdout, verified.stderr);

    // sql: every session, the added columns null in the old files only.
    let counted = cli(&[
        "sql",
        "SELECT session_id, count(*) AS n, count(effective_user) AS users, count(shell) AS shells, \
         count(kind) AS kinds FROM commands GROUP BY session_id ORDER BY session_id",
        "--format",
        "csv",
    ]);
    assert_eq!(
        counted.stdout,
        format!(
            "session_id,n,users,shells,kinds\n{ALICE},13,0,0,0\n{ALICE_UBUNTU},9,0,0,0\n\
             {BOB},9,0,0,0\n{CAROL},8,0,0,0\n{IVAN},12,12,12,12\n"
        ),
        "{}",
        counted.stderr
    );
    // search: both kinds of file, old rows without an effective user or a shell, every row a
    // shell command (`--kind shell` takes a missing kind for one).
    let (code, rows, summary) =
        search_keys(dir.path(), &[&lake_args[..], &["--kind", "shell"]].concat());
    assert_eq!((code, rows.len()), (0, 51), "{summary}");
    let ran = cli(&["search", "--json", "--command", "^(pwd|id -un|whoami)$"]);
    let (rows, _) = parse_json_lines(&ran.stdout);
    let seen: Vec<(String, Value, Value, Value)> = rows
        .iter()
        .map(|row| {
            let session = row["session_id"].as_str().expect("session").to_string();
            (
                session,
                row["effective_user"].clone(),
                row["shell"].clone(),
                row["command_kind"].clone(),
            )
        })
        .collect();
    assert!(seen.iter().any(|(session, ..)| session == BOB), "{seen:?}");
    for (session, user, shell, kind) in &seen {
        assert_eq!(kind, "shell", "{session}");
        if session == IVAN {
            assert!(user.is_string() && shell == "zsh", "{session}: {user} {shell}");
        } else {
            assert_eq!((user, shell), (&Value::Null, &Value::Null), "{session}");
        }
    }
    // `--run-as root` finds the root shells the new file records; an old file has no effective
    // user, so bob's `sudo su` there is matched by its OS user only.
    let root = cli(&["search", "--json", "--run-as", "root"]);
    let (rows, _) = parse_json_lines(&root.stdout);
    assert!(!rows.is_empty(), "{}", root.stderr);
    assert!(rows.iter().all(|row| row["session_id"] == IVAN), "{}", root.stdout);
    // sessions: the old rows have no confidence, the new one has.
    let sessions = cli(&["sessions", "--json"]);
    let (rows, _) = parse_json_lines(&sessions.stdout);
    let confidence: Vec<(&str, &Value)> = rows
        .iter()
        .map(|row| (row["session_id"].as_str().expect("id"), &row["confidence"]))
        .collect();
    assert_eq!(confidence.len(), 5, "{}", sessions.stdout);
    for (session, confidence) in confidence {
        let expected = if session == IVAN { Value::from("high") } else { Value::Null };
        assert_eq!(*confidence, expected, "{session}");
    }
}

/// Runs `sessionlake <args>` on a terminal (script(1) gives it one) with `env` set; returns
/// what the terminal showed.
fn on_terminal(dir: &Path, env: &[(&str, &str)], args: &str) -> String {
    let bin = assert_cmd::cargo::cargo_bin("sessionlake");
    let mut command = Command::new("script");
    command
        .current_dir(dir)
        .args(["-qec", &format!("{} {args}", bin.display()), "/dev/null"])
        .env_remove("NO_COLOR")
        .env_remove("CLICOLOR_FORCE")
        // CI machines set CI; it must not change what a dumb terminal gets.
        .env("CI", "true")
        .env("TERM", "xterm-256color");
    for (name, value) in env {
        command.env(name, value);
    }
    let ran = run(&mut command);
    assert_eq!(ran.code, 0, "{args}: {}{}", ran.stdout, ran.stderr);
    ran.stdout
}

#[test]
fn test_matches_are_coloured_only_when_asked_or_on_a_terminal() {
    let (dir, _) = ingested_examples();
    let highlighted = "\u{1b}[1m\u{1b}[31mrm -rf\u{1b}[0m /tmp/alice-scratch";
    let always = cli(dir.path(), &["search", "--command", "rm -rf", "--color", "always"]);
    assert!(always.stdout.contains(highlighted), "{:?}", always.stdout);
    for args in [
        &["search", "--command", "rm -rf"][..],
        &["search", "--command", "rm -rf", "--color", "never"][..],
        &["search", "--command", "rm -rf", "--color", "always", "--format", "csv"][..],
        &["search", "--command", "rm -rf", "--color", "always", "--json"][..],
    ] {
        let plain = cli(dir.path(), args);
        assert_eq!(plain.code, 0, "{args:?}");
        assert!(!plain.stdout.contains('\u{1b}'), "{args:?}: {:?}", plain.stdout);
        assert!(plain.stdout.contains("rm -rf /tmp/alice-scratch"), "{args:?}");
    }
    if Command::new("script").arg("--version").output().is_err() {
        println!("note: script(1) is not installed; the terminal cases are skipped");
        return;
    }
    let search = "search --command 'rm -rf'";
    assert!(on_terminal(dir.path(), &[], search).contains(highlighted));
    for env in [[("NO_COLOR", "1")], [("TERM", "dumb")]] {
        let shown = on_terminal(dir.path(), &env, search);
        assert!(shown.contains("rm -rf /tmp/alice-scratch"), "{env:?}: {shown:?}");
        // The spinner may have drawn on stderr; no colour did.
        assert!(!shown.contains("\u{1b}[31m"), "{env:?}: {shown:?}");
    }
    let forced = on_terminal(dir.path(), &[("NO_COLOR", "1")], &format!("{search} --color always"));
    assert!(forced.contains(highlighted), "{forced:?}");
}

/// A query that needs more memory than `--memory-limit` fails saying so (exit 2) instead of
/// taking the machine's memory or spilling decrypted rows to disk; within the limit it answers.
#[test]
fn test_sql_runs_under_a_memory_limit_and_never_spills() {
    let (dir, _) = ingested_examples();
    let temp = dir.path().join("tmp");
    std::fs::create_dir(&temp).expect("tmp");
    let sorted = "SELECT c1.command FROM commands c1 CROSS JOIN commands c2 ORDER BY c1.output, \
                  c2.output";
    let over = run(binary("sessionlake", false)
        .current_dir(dir.path())
        .env("TMPDIR", &temp)
        .args(["sql", sorted, "--memory-limit", "64KiB"]));
    assert_eq!(over.code, 2, "{}", over.stderr);
    assert!(
        over.stderr.contains("the query needs more memory than --memory-limit allows"),
        "{}",
        over.stderr
    );
    assert!(std::fs::read_dir(&temp).expect("tmp").next().is_none(), "nothing spilled");
    let within = cli(dir.path(), &["sql", sorted, "--memory-limit", "256MiB", "--format", "csv"]);
    assert_eq!(within.code, 0, "{}", within.stderr);
    assert!(within.stdout.lines().count() > 100, "{}", within.stdout);
}

/// The usual mistakes get one clear line and exit 2, never a quiet empty answer: a `--lake`
/// that is not a lake, an unknown session for `show` (and `show --raw`) and for `hold add`
/// (which would protect nothing; `--before-ingest` holds a session not ingested yet), and a
/// format name given to `--output` (a regex on the output) instead of `--format`.
#[test]
fn test_usual_mistakes_are_named_not_answered_empty() {
    let (dir, _) = ingested_examples();
    let not_a_lake = dir.path().join("examples");
    let lake = not_a_lake.to_string_lossy().to_string();
    for args in [vec!["search", "--command", "rm"], vec!["sessions"], vec!["show", ALICE]] {
        let mut with = vec!["--lake", lake.as_str()];
        with.extend(args.iter().copied());
        let ran = cli(dir.path(), &with);
        assert_eq!(ran.code, 2, "{args:?}: {}", ran.stdout);
        assert!(ran.stderr.contains("holds no manifest"), "{args:?}: {}", ran.stderr);
        assert!(ran.stdout.is_empty(), "{args:?}: {}", ran.stdout);
    }
    let unknown = "nobody-0123456789abcdef0";
    for args in [vec!["show", unknown], vec!["show", unknown, "--raw"]] {
        let ran = cli(dir.path(), &args);
        assert_eq!(ran.code, 2, "{args:?}: {}", ran.stdout);
        assert!(ran.stderr.contains(&format!("no session {unknown}")), "{}", ran.stderr);
    }
    let known = cli(dir.path(), &["show", ALICE]);
    assert_eq!(known.code, 0, "{}", known.stderr);

    let manifests = || std::fs::read_dir(dir.path().join("lake/manifest")).expect("ls").count();
    let before = manifests();
    let held = cli(dir.path(), &["hold", "add", unknown, "--reason", "case 7"]);
    assert_eq!(held.code, 2, "{}", held.stdout);
    assert!(held.stderr.contains("--before-ingest"), "{}", held.stderr);
    assert_eq!(manifests(), before, "nothing committed");
    let ahead = cli(dir.path(), &["hold", "add", unknown, "--reason", "case 7", "--before-ingest"]);
    assert_eq!(ahead.code, 0, "{}", ahead.stderr);
    assert_eq!(manifests(), before + 1);

    let format = cli(dir.path(), &["search", "--output", "json"]);
    assert_eq!(format.code, 2, "{}", format.stdout);
    assert!(format.stderr.contains("--format json"), "{}", format.stderr);
    let regex = cli(dir.path(), &["search", "--output", "^json$", "--format", "json"]);
    assert_eq!(regex.code, 1, "{}{}", regex.stdout, regex.stderr);
}

/// `search PATTERN` is `search --command PATTERN` (as `rg PATTERN`); `-i` matches either case,
/// `-F` takes the pattern as plain text. Each gives exactly the rows the long form gives.
#[test]
fn test_search_takes_a_pattern_as_rg_does() {
    let (dir, _) = ingested_examples();
    let (code, long, _) = search_keys(dir.path(), &["--command", "rm"]);
    assert_eq!(code, 0);
    assert!(!long.is_empty());
    let (_, short, _) = search_keys(dir.path(), &["rm"]);
    assert_eq!(short, long);
    let (_, upper, _) = search_keys(dir.path(), &["RM"]);
    assert!(upper.is_empty(), "{upper:?}");
    let (_, either, _) = search_keys(dir.path(), &["-i", "RM"]);
    assert_eq!(either, long);
    // `.` as a regex matches every command; as text, only those with a dot.
    let (_, every, _) = search_keys(dir.path(), &["."]);
    assert_eq!(every.len() as u64, ALL_COMMANDS);
    let (_, dotted, _) = search_keys(dir.path(), &["-F", "."]);
    let (_, contains, _) = search_keys(dir.path(), &["--command-contains", "."]);
    assert_eq!(dotted, contains);
    assert!(dotted.len() < every.len());
    let both = cli(dir.path(), &["search", "rm", "--command", "ls"]);
    assert_eq!(both.code, 2, "{}", both.stdout);
}

/// `show --raw` of a streamed CloudWatch delivery writes the terminal lines its events carry
/// (what replays with `cat`), not the agent's JSON; an S3 transcript's bytes come as stored.
#[test]
fn test_show_raw_of_a_streamed_delivery_is_terminal_bytes() {
    let (dir, _) = ingested_examples();
    let raw = cli(dir.path(), &["show", BOB, "--raw"]);
    assert_eq!(raw.code, 0, "{}", raw.stderr);
    assert!(raw.stdout.contains("sh-4.2$ cat notes.txt\n"), "{}", raw.stdout);
    assert!(!raw.stdout.contains("\"timestamp\""), "{}", raw.stdout);
    assert!(!raw.stdout.contains("sessionData"), "{}", raw.stdout);
    let stored =
        std::fs::read(repo_root().join(format!("examples/s3/ssm-logs/{ALICE}.log"))).expect("read");
    let alice =
        run(binary("sessionlake", false).current_dir(dir.path()).args(["show", ALICE, "--raw"]));
    assert_eq!(alice.code, 0, "{}", alice.stderr);
    assert_eq!(alice.stdout.as_bytes(), stored.as_slice());
}

/// A table fits the terminal's width (`COLUMNS` here, as a terminal would give it): no line is
/// wider, long cells end with `…`; `--wide` prints them whole, and CSV and JSON are always whole.
#[test]
fn test_tables_fit_the_terminal_and_wide_prints_them_whole() {
    let (dir, _) = ingested_examples();
    let at = |columns: &str, args: &[&str]| {
        run(binary("sessionlake", false).current_dir(dir.path()).env("COLUMNS", columns).args(args))
    };
    let fitted = at("60", &["search"]);
    assert_eq!(fitted.code, 0, "{}", fitted.stderr);
    let widest = |text: &str| text.lines().map(|line| line.chars().count()).max().unwrap_or(0);
    assert!(widest(&fitted.stdout) <= 60, "{}", fitted.stdout);
    assert!(fitted.stdout.contains('…'), "{}", fitted.stdout);
    let wide = at("60", &["search", "--wide"]);
    assert!(widest(&wide.stdout) > 60, "{}", wide.stdout);
    assert!(!wide.stdout.contains('…'), "{}", wide.stdout);
    for format in ["csv", "json"] {
        let whole = at("60", &["search", "--format", format]);
        assert!(!whole.stdout.contains('…'), "{format}: {}", whole.stdout);
        assert!(
            whole.stdout.contains("arn:aws:sts::111122223333:assumed-role"),
            "{}",
            whole.stdout
        );
    }
}

/// `--tz` shows times in another zone, always labelled with its offset: a tz database name,
/// or `local` (the machine's `TZ`); UTC by default. JSON stays UTC (machines read it); an
/// unknown zone is refused.
#[test]
fn test_times_are_shown_in_the_zone_asked_for() {
    let (dir, _) = ingested_examples();
    let first_time = |args: &[&str]| {
        let ran = run(binary("sessionlake", false)
            .current_dir(dir.path())
            .env("TZ", "Asia/Tokyo")
            .args([&["search", "--format", "csv"], args].concat()));
        assert_eq!(ran.code, 0, "{}", ran.stderr);
        ran.stdout.lines().nth(1).expect("a row").split(',').nth(2).expect("time").to_string()
    };
    assert_eq!(first_time(&[]), "2026-03-14 09:26:50Z");
    assert_eq!(first_time(&["--tz", "Europe/Paris"]), "2026-03-14 10:26:50+01:00 CET");
    assert_eq!(first_time(&["--tz", "local"]), "2026-03-14 18:26:50+09:00");
    let json = cli(dir.path(), &["search", "--tz", "Europe/Paris", "--json"]);
    assert!(json.stdout.contains("\"time\":\"2026-03-14 09:26:50Z\""), "{}", json.stdout);
    let refused = cli(dir.path(), &["search", "--tz", "Mars/Base"]);
    assert_eq!(refused.code, 2, "{}", refused.stdout);
    assert!(refused.stderr.contains("Mars/Base"), "{}", refused.stderr);
}
