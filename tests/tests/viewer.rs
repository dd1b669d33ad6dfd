//! The export bundle's `index.html`, opened in a real browser (headless Chromium, driven over
//! the DevTools protocol by `tests/browser.py`): it loads from file:// with no network request
//! and no console error, and a click on a command of the timeline moves the replay there.
//! Screenshots are kept in `target/test-artefacts/`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use serde_json::Value;
use sessionlake_tests::{binary, repo_root, run};

use super::ingested_examples_and;

const ALICE: &str = "alice-0123456789abcdef0";
const BOB: &str = "bob-ilpxvkhghl9vs9ia2xfdyp4dka";
/// A session whose commands are made to break out of the page.
const HOSTILE: &str = "html-0123456789abcdef9";
/// Its command: closes the data block, adds an element with a handler, opens a comment.
const HOSTILE_COMMAND: &str = "echo '</script><img src=x onerror=console.error(1)><!--' \"&amp;\"";

/// Returns Chromium's path (Debian's `chromium`, which `scripts/test` installs). Without it the
/// test is skipped with a loud note, except in CI (`CI` set), where it fails.
fn chromium() -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join("chromium"))
            .find(|candidate| candidate.is_file())
    });
    if found.is_none() {
        let message = "chromium is not installed: the browser test of index.html cannot run \
                       (scripts/test installs Debian's chromium)";
        assert!(std::env::var_os("CI").is_none(), "{message}, and CI is set");
        // Written to the process's stderr, past the test harness's capture of eprintln!.
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), "\n!!! SKIPPED: {message} !!!\n");
    }
    found
}

/// Where the screenshots go: `target/test-artefacts/`.
fn artefacts() -> PathBuf {
    let dir = repo_root().join("target/test-artefacts");
    std::fs::create_dir_all(&dir).expect("target/test-artefacts");
    dir
}

/// Opens `page` in Chromium, clicks the timeline row of `command`, and returns what the
/// script measured; fails on any console error, exception or network request.
fn click_in_browser(chromium: &Path, page: &Path, screenshot: &Path, command: &str) -> Value {
    let python = std::env::var("SESSIONLAKE_TEST_PYTHON").unwrap_or_else(|_| {
        panic!("SESSIONLAKE_TEST_PYTHON is not set: run the tests with ./scripts/test")
    });
    let ran = run(Command::new(python)
        .arg(repo_root().join("tests/browser.py"))
        .arg(chromium)
        .arg(page)
        .arg(screenshot)
        .arg(command));
    assert_eq!(ran.code, 0, "the browser check failed:\n{}\n{}", ran.stderr, ran.stdout);
    serde_json::from_str(ran.stdout.trim()).unwrap_or_else(|e| panic!("{e}: {}", ran.stdout))
}

/// Exports `session` into `dir/out` and returns the bundle folder.
fn export(dir: &Path, session: &str, out: &str) -> PathBuf {
    let exported =
        run(binary("sessionlake", false).current_dir(dir).args(["export", session, "--out", out]));
    assert_eq!(exported.code, 0, "{}", exported.stderr);
    dir.join(out)
}

#[test]
fn test_viewer_replays_the_clicked_command_in_chromium() {
    let started = Instant::now();
    let Some(chromium) = chromium() else { return };
    let (dir, _) = ingested_examples_and(|examples| {
        let alice =
            std::fs::read(examples.join(format!("s3/ssm-logs/{ALICE}.log"))).expect("alice");
        let text = String::from_utf8_lossy(&alice)
            .replacen("cd app", HOSTILE_COMMAND, 1)
            .replace(ALICE, HOSTILE);
        std::fs::write(examples.join(format!("s3/ssm-logs/{HOSTILE}.log")), text).expect("write");
    });
    let artefacts = artefacts();
    let cases = [
        (ALICE, "rm -rf /tmp/alice-scratch", "synthetic"),
        (HOSTILE, HOSTILE_COMMAND, "synthetic"),
        (BOB, "id -un", "recorded"),
    ];
    for (session, command, timing) in cases {
        let bundle = export(dir.path(), session, session);
        let provenance: Value = serde_json::from_slice(
            &std::fs::read(bundle.join("provenance.json")).expect("provenance"),
        )
        .expect("json");
        assert_eq!(provenance["cast"]["timing"], timing, "{session}");
        let screenshot = artefacts.join(format!("viewer-{session}.png"));
        let _ = std::fs::remove_file(&screenshot);
        let result = click_in_browser(&chromium, &bundle.join("index.html"), &screenshot, command);
        println!("{session}: {result}");
        assert_eq!(result["current_row"], command, "{result}");
        assert_eq!(result["title"], format!("Session {session}: evidence bundle"), "{result}");
        let png = std::fs::read(&screenshot).expect("screenshot");
        assert!(png.starts_with(b"\x89PNG") && png.len() > 10_000, "{} bytes", png.len());
        // The moment is the command's own: its event in session.cast starts with the command
        // line (synthetic), or comes at its recorded time.
        let expected = result["expected_time"].as_f64().expect("time");
        let cast = std::fs::read_to_string(bundle.join("session.cast")).expect("cast");
        let at = cast.lines().skip(1).find_map(|line| {
            let event: (f64, String, String) = serde_json::from_str(line).expect("event");
            (event.0 >= expected).then_some(event.2)
        });
        assert!(
            at.is_some_and(|text| text.contains(command)),
            "{session}: {command} at {expected}"
        );
    }
    println!("the browser test took {:.1} s", started.elapsed().as_secs_f64());
}

/// `search --format html`: one page, no script, a timeline per principal and target, every row
/// linking to its session's viewer at the command, with the export line that writes it there.
#[test]
fn test_search_writes_an_html_report() {
    let (dir, _) = super::ingested_examples();
    let ran = run(binary("sessionlake", false).current_dir(dir.path()).args([
        "search",
        "^(rm|sudo|id)",
        "--format",
        "html",
    ]));
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    let page = ran.stdout;
    assert!(page.starts_with("<!DOCTYPE html>"), "{page}");
    assert!(!page.contains("<script"), "a report runs no script");
    assert!(page.contains("script-src 'none'"), "its policy says so");
    assert!(ran.stderr.contains("matching commands"), "{}", ran.stderr);
    assert!(
        page.contains(
            "<h3>arn:aws:sts::111122223333:assumed-role/Admin/alice on i-0a1b2c3d4e5f67890</h3>"
        ),
        "{page}"
    );
    assert!(page.contains(&format!("href=\"./{ALICE}/index.html#seq-")), "{page}");
    assert!(page.contains(&format!("sessionlake export {ALICE} --out {ALICE}")), "{page}");
    assert!(page.contains("rm -rf /tmp/alice-scratch"), "{page}");
    assert!(page.contains(&format!("./{BOB}/index.html")), "{page}");
    assert!(page.contains("sessionlake search &#39;^(rm|sudo|id)&#39; --format html"), "{page}");
}
