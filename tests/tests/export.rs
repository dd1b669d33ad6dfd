//! `sessionlake export`: the evidence bundle, checked the way an auditor would, with the real
//! `sha256sum`, `openssl` and `jq`.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use sessionlake_tests::{binary, files_under, repo_root, run};

use super::{ingested_examples, ingested_examples_with_alice_delivered_twice, parse_json_lines};

const ALICE: &str = "alice-0123456789abcdef0";
const BOB: &str = "bob-ilpxvkhghl9vs9ia2xfdyp4dka";

/// The signature check the bundle's README documents for a keyring-signed lake, word for word.
const OPENSSL_VERIFY: &str = "openssl pkeyutl -verify -pubin -inkey public-key.pem -rawin -in SHA256SUMS -sigfile SHA256SUMS.sig";

/// Runs `sessionlake export <args>` (local lake, no AWS) in `dir`.
fn export(dir: &Path, args: &[&str]) -> sessionlake_tests::Ran {
    run(binary("sessionlake", false).current_dir(dir).arg("export").args(args))
}

/// Returns whether `tool` can be run.
fn have(tool: &str) -> bool {
    Command::new(tool).arg("--version").output().is_ok_and(|out| out.status.success())
        || Command::new(tool).arg("version").output().is_ok_and(|out| out.status.success())
}

/// Runs a shell command line in `dir`.
fn sh(dir: &Path, line: &str) -> sessionlake_tests::Ran {
    run(Command::new("sh").current_dir(dir).arg("-c").arg(line))
}

/// Returns the commands of the README step that starts with the line `first` (trimmed) and
/// ends before `It prints "…"`, with what openssl prints when the check holds.
fn readme_step<'a>(readme: &'a str, first: &str) -> (Vec<&'a str>, &'a str) {
    let mut lines = readme.lines().map(str::trim).skip_while(|line| !line.starts_with(first));
    let mut commands = Vec::new();
    for line in lines.by_ref() {
        if let Some(rest) = line.strip_prefix("It prints \"") {
            let expected = rest.split('"').next().expect("closing quote");
            return (commands, expected);
        }
        commands.push(line);
    }
    panic!("no step starting with {first:?} in:\n{readme}");
}

/// Checks a bundle folder with the README's own commands: sha256sum, then the openssl check of
/// SHA256SUMS.sig (skipped with a note when openssl is absent), then the signature of the
/// manifest that committed the transcript (jq and openssl). Returns the README.
pub(crate) fn assert_bundle_verifies(bundle: &Path) -> String {
    let readme = std::fs::read_to_string(bundle.join("README.txt")).expect("README.txt");
    assert!(readme.contains("sha256sum -c SHA256SUMS"), "{readme}");
    let sums = sh(bundle, "sha256sum -c SHA256SUMS");
    assert_eq!(sums.code, 0, "sha256sum -c failed:\n{}{}", sums.stdout, sums.stderr);
    if !have("openssl") {
        println!("note: openssl is not installed; the signature check is skipped");
        return readme;
    }
    let (steps, expected) = readme_step(&readme, "openssl");
    assert!(steps.iter().any(|step| step.contains("SHA256SUMS.sig")), "{steps:?}");
    let verified = sh(bundle, &steps.join(" && "));
    assert_eq!(verified.code, 0, "{steps:?}: {}{}", verified.stdout, verified.stderr);
    assert!(verified.stdout.contains(expected), "{}", verified.stdout);
    // The README's manifest check: jq rebuilds the signed bytes, openssl checks them.
    if !have("jq") {
        println!("note: jq is not installed; the manifest signature check is skipped");
        return readme;
    }
    let (steps, expected) = readme_step(&readme, "jq -cjS .body");
    assert!(steps.len() >= 3, "{steps:?}");
    let manifest = sh(bundle, &steps.join(" && "));
    assert_eq!(manifest.code, 0, "{steps:?}: {}{}", manifest.stdout, manifest.stderr);
    assert!(manifest.stdout.contains(expected), "{}", manifest.stdout);
    for file in ["body.json", "body.sig", "body.json.sha256", "SHA256SUMS.sha256"] {
        let _ = std::fs::remove_file(bundle.join(file));
    }
    readme
}

/// Reads a JSON Lines file into objects.
fn read_json_lines(path: &Path) -> Vec<serde_json::Map<String, Value>> {
    std::fs::read_to_string(path)
        .expect("read")
        .lines()
        .map(|line| match serde_json::from_str(line) {
            Ok(Value::Object(map)) => map,
            other => panic!("{line:?} is not a JSON object: {other:?}"),
        })
        .collect()
}

/// Parses an asciicast v2 file; returns its header and (time, data) events, checking the shape.
fn read_cast(path: &Path) -> (Value, Vec<(f64, String)>) {
    let text = std::fs::read_to_string(path).expect("read cast");
    let mut lines = text.lines();
    let header: Value = serde_json::from_str(lines.next().expect("header")).expect("header JSON");
    assert_eq!(header["version"], 2, "{header}");
    assert!(header["width"].as_u64().is_some_and(|w| w >= 80), "{header}");
    assert!(header["height"].as_u64().is_some_and(|h| h > 0), "{header}");
    let events: Vec<(f64, String)> = lines
        .map(|line| {
            let event: (f64, String, String) =
                serde_json::from_str(line).unwrap_or_else(|e| panic!("{line:?}: {e}"));
            assert_eq!(event.1, "o", "{line}");
            (event.0, event.2)
        })
        .collect();
    assert!(!events.is_empty());
    assert!(events.windows(2).all(|pair| pair[0].0 <= pair[1].0), "times go back in {path:?}");
    assert!(events[0].0 >= 0.0);
    (header, events)
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).expect("stat").permissions().mode() & 0o777
}

/// Every file of a bundle by relative path.
fn bundle_contents(bundle: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    files_under(bundle)
        .into_iter()
        .map(|path| {
            let bytes = std::fs::read(bundle.join(&path)).expect("read");
            (path, bytes)
        })
        .collect()
}

#[test]
fn test_export_bundle_verifies_with_standard_tools() {
    let (dir, _) = ingested_examples();
    let bundle = dir.path().join("evidence/alice");
    let exported = export(dir.path(), &[ALICE, "--out", "evidence/alice"]);
    assert_eq!(exported.code, 0, "{}", exported.stderr);
    assert_eq!(exported.stdout.trim(), "evidence/alice");
    assert!(
        exported.stderr.contains("exported alice-0123456789abcdef0 (local,"),
        "{}",
        exported.stderr
    );

    // The original bytes, exactly.
    let original =
        std::fs::read(repo_root().join("examples/s3/ssm-logs/alice-0123456789abcdef0.log"))
            .expect("example");
    assert!(std::fs::read(bundle.join("transcript.log")).expect("transcript") == original);

    let files = files_under(&bundle);
    for name in [
        "README.txt",
        "SHA256SUMS",
        "SHA256SUMS.sig",
        "commands.csv",
        "commands.jsonl",
        "index.html",
        "provenance.json",
        "public-key.pem",
        "session.cast",
        "session.json",
        "transcript.log",
    ] {
        assert!(files.contains(&PathBuf::from(name)), "{name} missing from {files:?}");
    }
    for prefix in ["lake/raw/", "lake/commands/", "lake/sessions/", "lake/manifest/", "lake/keys/"]
    {
        assert!(files.iter().any(|f| f.starts_with(prefix)), "nothing under {prefix}: {files:?}");
    }
    // Plaintext stays private: folders 0700, files 0600.
    assert_eq!(mode(&bundle), 0o700);
    assert_eq!(mode(&bundle.join("lake/raw")), 0o700);
    for file in &files {
        assert_eq!(mode(&bundle.join(file)), 0o600, "{file:?}");
    }
    // SHA256SUMS covers every other file.
    let sums = std::fs::read_to_string(bundle.join("SHA256SUMS")).expect("sums");
    let listed: Vec<PathBuf> = sums
        .lines()
        .map(|line| PathBuf::from(line.split_once("  ").expect("sum line").1))
        .collect();
    let others: Vec<PathBuf> =
        files.iter().filter(|f| !f.to_string_lossy().starts_with("SHA256SUMS")).cloned().collect();
    assert_eq!(listed, others);

    let readme = assert_bundle_verifies(&bundle);
    assert!(readme.contains(OPENSSL_VERIFY), "{readme}");
    assert!(readme.contains("index.html         the evidence viewer"), "{readme}");

    // index.html stands alone: no file or address outside it is named for loading, and it
    // carries the bundle's own commands.jsonl and session.cast.
    let page = std::fs::read_to_string(bundle.join("index.html")).expect("index.html");
    for outside in ["<script src", "<link", "<iframe", "@import", "url(http"] {
        assert!(!page.contains(outside), "index.html loads something: {outside}");
    }
    let block = |id: &str| -> String {
        let start = page.find(&format!("id=\"{id}\">")).expect(id) + id.len() + 6;
        let end = start + page[start..].find("</script>").expect("end of block");
        serde_json::from_str(&page[start..end]).expect("a JSON string")
    };
    assert_eq!(
        block("sl-commands"),
        std::fs::read_to_string(bundle.join("commands.jsonl")).expect("jsonl")
    );
    assert_eq!(
        block("sl-cast"),
        std::fs::read_to_string(bundle.join("session.cast")).expect("cast")
    );
    let session_row: Value =
        serde_json::from_slice(&std::fs::read(bundle.join("session.json")).expect("read"))
            .expect("json");
    for fact in ["principal", "run_as", "target", "raw_sha256"] {
        let value = session_row[fact].as_str().expect(fact);
        assert!(page.contains(value), "index.html does not show {fact} {value}");
    }

    // commands.jsonl holds exactly what `show --json` shows, and more columns.
    let shown =
        run(binary("sessionlake", false).current_dir(dir.path()).args(["show", ALICE, "--json"]));
    assert_eq!(shown.code, 0, "{}", shown.stderr);
    let (show_rows, _) = parse_json_lines(&shown.stdout);
    let rows = read_json_lines(&bundle.join("commands.jsonl"));
    assert_eq!(rows.len(), show_rows.len());
    assert!(rows.len() >= 10);
    for (row, show_row) in rows.iter().zip(&show_rows) {
        for (key, value) in show_row {
            assert_eq!(row.get(key), Some(value), "{key} of {row:?}");
        }
        for key in [
            "session_id",
            "principal",
            "run_as",
            "target",
            "time_source",
            "raw_offset",
            "raw_len",
            "redactions",
            "confidence",
        ] {
            assert!(row.contains_key(key), "{key} missing from {row:?}");
        }
        // Each row's byte range lies in the transcript.
        let end =
            row["raw_offset"].as_u64().expect("offset") + row["raw_len"].as_u64().expect("len");
        assert!(end <= original.len() as u64, "{row:?}");
    }
    assert!(rows.iter().any(|row| row["command"] == "rm -rf /tmp/alice-scratch"));

    // commands.csv: the same rows and columns, read back by a CSV reader.
    let mut reader = csv::Reader::from_path(bundle.join("commands.csv")).expect("csv");
    let header: Vec<String> = reader.headers().expect("header").iter().map(String::from).collect();
    let mut sorted_header = header.clone();
    sorted_header.sort();
    let mut keys: Vec<String> = rows[0].keys().cloned().collect();
    keys.sort();
    assert_eq!(sorted_header, keys);
    let records: Vec<csv::StringRecord> = reader.records().map(|r| r.expect("record")).collect();
    assert_eq!(records.len(), rows.len());
    let command_at = header.iter().position(|h| h == "command").expect("command column");
    let output_at = header.iter().position(|h| h == "output").expect("output column");
    for (record, row) in records.iter().zip(&rows) {
        assert_eq!(Some(&Value::from(&record[command_at])), row.get("command"));
        assert_eq!(Some(&Value::from(&record[output_at])), row.get("output"));
    }

    // session.json is the session row; the transcript is the one it committed.
    let session: Value =
        serde_json::from_slice(&std::fs::read(bundle.join("session.json")).expect("read"))
            .expect("json");
    assert_eq!(session["session_id"], ALICE);
    assert_eq!(session["source"], "local");
    let transcript_sum = sh(&bundle, "sha256sum transcript.log");
    assert!(
        transcript_sum.stdout.starts_with(session["raw_sha256"].as_str().expect("sha")),
        "{}",
        transcript_sum.stdout
    );

    // The replay is asciicast v2, paced synthetically (S3-form transcripts have no times).
    let (header, events) = read_cast(&bundle.join("session.cast"));
    assert!(header["title"].as_str().is_some_and(|t| t.contains("synthetic")), "{header}");
    let played: String = events.iter().map(|e| e.1.as_str()).collect();
    assert!(played.contains("rm -rf /tmp/alice-scratch"), "{played}");

    // One byte changed in commands.csv: sha256sum names it and fails.
    let csv_path = bundle.join("commands.csv");
    let mut bytes = std::fs::read(&csv_path).expect("read");
    let last = bytes.len() - 3;
    bytes[last] ^= 0x20;
    std::fs::write(&csv_path, bytes).expect("tamper");
    let tampered = sh(&bundle, "sha256sum -c SHA256SUMS");
    assert_ne!(tampered.code, 0);
    assert!(tampered.stdout.contains("commands.csv: FAILED"), "{}", tampered.stdout);

    // A non-empty --out is refused without --force, and rewritten with it.
    let again = export(dir.path(), &[ALICE, "--out", "evidence/alice"]);
    assert_eq!(again.code, 2, "{}", again.stderr);
    assert!(again.stderr.contains("is not empty"), "{}", again.stderr);
    std::fs::write(bundle.join("notes.txt"), b"mine").expect("write");
    let forced = export(dir.path(), &[ALICE, "--out", "evidence/alice", "--force"]);
    assert_eq!(forced.code, 0, "{}", forced.stderr);
    assert!(forced.stderr.contains("notes.txt"), "{}", forced.stderr);
    assert_eq!(std::fs::read(bundle.join("notes.txt")).expect("kept"), b"mine");
    assert_bundle_verifies(&bundle);

    // An unknown session is an error that names it.
    let unknown = export(dir.path(), &["nobody-0123456789abcdef0", "--out", "evidence/nobody"]);
    assert_eq!(unknown.code, 2);
    assert!(
        unknown.stderr.starts_with("sessionlake: no session named nobody-0123456789abcdef0"),
        "{}",
        unknown.stderr
    );
    assert!(std::fs::metadata(dir.path().join("evidence/nobody")).is_err(), "created for nothing");

    // A stored transcript that no longer matches its manifest entry is refused, by name, and
    // nothing is written.
    let lake = dir.path().join("lake");
    let raw = files_under(&lake)
        .into_iter()
        .find(|p| p.starts_with("raw") && p.to_string_lossy().contains(ALICE))
        .expect("alice's raw object");
    let mut sealed = std::fs::read(lake.join(&raw)).expect("read");
    sealed[100] ^= 1;
    std::fs::write(lake.join(&raw), sealed).expect("tamper");
    let refused = export(dir.path(), &[ALICE, "--out", "evidence/tampered"]);
    assert_eq!(refused.code, 2);
    assert!(
        refused.stderr.contains(&format!("{} was altered", raw.to_string_lossy())),
        "{}",
        refused.stderr
    );
    assert!(std::fs::metadata(dir.path().join("evidence/tampered")).is_err());
}

/// The viewer lists the CloudTrail events that name the session, read from the snapshot the
/// bundle is cut from, and none of another session's.
#[test]
fn test_export_viewer_lists_the_cloudtrail_events_naming_the_session() {
    let (dir, _) = ingested_examples();
    let exported = export(dir.path(), &[ALICE, "--out", "evidence/alice"]);
    assert_eq!(exported.code, 0, "{}", exported.stderr);
    let page = std::fs::read_to_string(dir.path().join("evidence/alice/index.html")).expect("page");
    let section = page.split("CloudTrail events naming this session").nth(1).expect("the section");
    // alice's StartSession in examples/cloudtrail; bob's is in the same lake.
    assert!(section.contains("3d9ef2c9-35a4-55e7-86cc-303dfb2c5f02"), "alice's event missing");
    assert!(!page.contains("d9315021-1cef-5644-8ee2-d3d3a969d63c"), "bob's event listed");
    assert!(section.contains("From the lake&#39;s access table"), "the note on their origin");
}

#[test]
fn test_export_streamed_session_has_real_times_and_tar_zst_round_trips() {
    let (dir, _) = ingested_examples();
    let exported = export(dir.path(), &[BOB, "--out", "bob"]);
    assert_eq!(exported.code, 0, "{}", exported.stderr);
    let bundle = dir.path().join("bob");
    assert_bundle_verifies(&bundle);

    // The streamed events, as stored, and a replay at their real times.
    let example: Value = serde_json::from_slice(
        &std::fs::read(repo_root().join(format!("examples/cloudwatch/ssm-sessions/{BOB}.json")))
            .expect("example"),
    )
    .expect("json");
    let stamps: Vec<i64> = example["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|event| event["timestamp"].as_i64().expect("timestamp"))
        .collect();
    let stored = read_json_lines(&bundle.join("transcript.jsonl"));
    let stored_stamps: Vec<i64> =
        stored.iter().map(|event| event["timestamp"].as_i64().expect("timestamp")).collect();
    assert_eq!(stored_stamps, stamps);
    let (header, events) = read_cast(&bundle.join("session.cast"));
    assert_eq!(header["timestamp"], stamps[0] / 1000, "{header}");
    assert!(header["title"].as_str().is_some_and(|t| t.contains("CloudWatch")), "{header}");
    let span = (stamps[stamps.len() - 1] - stamps[0]) as f64 / 1000.0;
    let last = events.last().expect("events").0;
    assert!((last - span).abs() < 1e-9, "last event at {last}, stream spans {span}");
    let provenance: Value =
        serde_json::from_slice(&std::fs::read(bundle.join("provenance.json")).expect("read"))
            .expect("json");
    assert_eq!(provenance["cast"]["timing"], "recorded");
    assert_eq!(provenance["source"], "cloudwatch-stream");
    // Streamed rows carry their own times.
    let rows = read_json_lines(&bundle.join("commands.jsonl"));
    assert!(!rows.is_empty());
    assert!(rows.iter().all(|row| row["time_source"] == "cloudwatch-event"), "{rows:?}");

    // --format tar.zst: one file, which unpacks (tar + zstd crates) to a bundle that verifies
    // and holds the same evidence.
    let archived = export(dir.path(), &[BOB, "--out", "archives", "--format", "tar.zst"]);
    assert_eq!(archived.code, 0, "{}", archived.stderr);
    let archive_path = dir.path().join(format!("archives/{BOB}.tar.zst"));
    assert_eq!(archived.stdout.trim(), format!("archives/{BOB}.tar.zst"));
    assert_eq!(
        files_under(&dir.path().join("archives")),
        vec![PathBuf::from(format!("{BOB}.tar.zst"))]
    );
    assert_eq!(mode(&archive_path), 0o600);
    let unpacked = tempfile::tempdir().expect("tempdir");
    let file = std::fs::File::open(&archive_path).expect("open");
    let mut archive = tar::Archive::new(zstd::Decoder::new(file).expect("zstd"));
    let mut modes = BTreeMap::new();
    for entry in archive.entries().expect("entries") {
        let mut entry = entry.expect("entry");
        let path = entry.path().expect("path").to_path_buf();
        assert!(path.starts_with(BOB), "{path:?} outside the top folder");
        modes.insert(path, entry.header().mode().expect("mode"));
        entry.unpack_in(unpacked.path()).expect("unpack");
    }
    assert!(
        modes.iter().all(|(path, mode)| {
            let is_dir = unpacked.path().join(path).is_dir();
            *mode == if is_dir { 0o700 } else { 0o600 }
        }),
        "{modes:?}"
    );
    let from_archive = unpacked.path().join(BOB);
    assert_bundle_verifies(&from_archive);
    let in_folder = bundle_contents(&bundle);
    let in_archive = bundle_contents(&from_archive);
    assert_eq!(in_folder.keys().collect::<Vec<_>>(), in_archive.keys().collect::<Vec<_>>());
    // Same evidence; only the export time (in provenance.json and index.html, so in the sums)
    // may differ.
    for (path, bytes) in &in_folder {
        let timed = ["provenance.json", "index.html", "SHA256SUMS", "SHA256SUMS.sig"];
        if !timed.iter().any(|n| path == Path::new(n)) {
            assert!(in_archive[path] == *bytes, "{path:?} differs between folder and archive");
        }
    }
    // An existing archive is kept unless --force.
    let again = export(dir.path(), &[BOB, "--out", "archives", "--format", "tar.zst"]);
    assert_eq!(again.code, 2);
    assert!(again.stderr.contains("--force"), "{}", again.stderr);
    let forced = export(dir.path(), &[BOB, "--out", "archives", "--format", "tar.zst", "--force"]);
    assert_eq!(forced.code, 0, "{}", forced.stderr);
}

#[test]
fn test_export_of_a_session_delivered_twice_reads_the_source_show_reads() {
    let dir = ingested_examples_with_alice_delivered_twice();
    let exported = export(dir.path(), &[ALICE, "--out", "alice"]);
    assert_eq!(exported.code, 0, "{}", exported.stderr);
    assert!(
        exported
            .stderr
            .contains("delivered by 2 sources (local, cloudwatch-upload); exported local"),
        "{}",
        exported.stderr
    );
    let bundle = dir.path().join("alice");
    let original =
        std::fs::read(repo_root().join("examples/s3/ssm-logs/alice-0123456789abcdef0.log"))
            .expect("example");
    assert!(std::fs::read(bundle.join("transcript.log")).expect("transcript") == original);
    // `show --raw` reads the same delivery.
    let raw = binary("sessionlake", false)
        .current_dir(dir.path())
        .args(["show", ALICE, "--raw"])
        .output()
        .expect("run show --raw");
    assert!(raw.stdout == original, "show --raw read another delivery");
    assert_bundle_verifies(&bundle);
}

/// A bundle folder holding symbolic links (to a file, or to a folder outside it): `export
/// --force` refuses to write through them, naming the link, and nothing outside changes.
#[test]
fn test_export_never_writes_through_a_symlink_in_the_bundle_folder() {
    let (dir, _) = ingested_examples();
    let outside = dir.path().join("outside");
    std::fs::create_dir(&outside).expect("outside");
    std::fs::write(outside.join("victim"), b"keep me").expect("victim");
    let bundle = dir.path().join("evidence");
    std::fs::create_dir(&bundle).expect("bundle");
    std::os::unix::fs::symlink(outside.join("victim"), bundle.join("transcript.log"))
        .expect("file link");
    let exported = export(dir.path(), &[ALICE, "--out", "evidence", "--force"]);
    assert_eq!(exported.code, 2, "{}", exported.stderr);
    assert!(exported.stderr.contains("transcript.log is a symbolic link"), "{}", exported.stderr);
    assert_eq!(std::fs::read(outside.join("victim")).expect("victim"), b"keep me");

    std::fs::remove_file(bundle.join("transcript.log")).expect("unlink");
    std::os::unix::fs::symlink(&outside, bundle.join("lake")).expect("folder link");
    let exported = export(dir.path(), &[ALICE, "--out", "evidence", "--force"]);
    assert_eq!(exported.code, 2, "{}", exported.stderr);
    assert!(exported.stderr.contains("lake is a symbolic link"), "{}", exported.stderr);
    let mut outside_files = files_under(&outside);
    outside_files.sort();
    assert_eq!(outside_files, [PathBuf::from("victim")], "nothing written outside the bundle");
    assert_eq!(std::fs::read(outside.join("victim")).expect("victim"), b"keep me");
}
