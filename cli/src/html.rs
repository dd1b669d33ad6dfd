//! Self-contained HTML pages for people: the evidence viewer of an export bundle
//! (`index.html`) and the report of a result (`--format html`).
//!
//! A page is one file that needs no network: it opens from a folder or a USB stick
//! (`file://`), where browsers refuse `fetch()`. Everything it shows is inside it:
//!
//! - text of the lake (commands, output, names) is either written into the HTML escaped
//!   ([`escape`]) or carried as data in `<script type="application/json">` blocks whose JSON has
//!   `<`, `>` and `&` written as `\u003c`… ([`script_json`]), so no value can end the block or
//!   add markup; the page's own script puts data on screen with `textContent` only;
//! - the terminal player is the npm package `asciinema-player` [`PLAYER_VERSION`], vendored in
//!   `cli/assets/vendor/asciinema-player/` (with its licence and where it came from) and inlined;
//! - a Content-Security-Policy allows only the page's own scripts (by their SHA-256), inline
//!   styles and WebAssembly (the player's terminal emulator), and no connection at all: a value
//!   that did get through as markup could neither run nor send anything.

use std::fmt::Write as _;

use base64::Engine as _;
use serde::Serialize;

/// Version of the vendored `asciinema-player`.
pub const PLAYER_VERSION: &str = "3.18.0";
/// The player's JavaScript (an IIFE that defines `AsciinemaPlayer`).
const PLAYER_JS: &str = include_str!("../assets/vendor/asciinema-player/asciinema-player.min.js");
/// The player's stylesheet.
const PLAYER_CSS: &str = include_str!("../assets/vendor/asciinema-player/asciinema-player.css");
/// The script of the evidence viewer: timeline, player, jumps.
const VIEWER_JS: &str = include_str!("../assets/viewer.js");

/// The page's own style.
const PAGE_CSS: &str = "
:root { color-scheme: light; --fg: #1d2125; --muted: #5c6670; --line: #d8dde2; --accent: #0b5cad; --warn: #9a3b00; --bg2: #f4f6f8; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif; color: var(--fg); margin: 0; padding: 0 24px 48px; max-width: 1400px; }
header { border-bottom: 2px solid var(--fg); padding: 16px 0 8px; margin-bottom: 12px; }
h1 { font-size: 20px; margin: 0 0 4px; }
h2 { font-size: 16px; margin: 24px 0 8px; border-bottom: 1px solid var(--line); padding-bottom: 4px; }
h3 { font-size: 14px; margin: 16px 0 6px; }
p { margin: 6px 0; }
.muted { color: var(--muted); }
.warning { color: var(--warn); font-weight: 600; }
code, .mono, td.mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 12.5px; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; vertical-align: top; padding: 3px 8px; border-bottom: 1px solid var(--line); }
th { background: var(--bg2); font-weight: 600; white-space: nowrap; }
table.facts th { width: 14em; background: none; }
td { overflow-wrap: anywhere; }
.grid { display: grid; grid-template-columns: minmax(0, 1fr) minmax(0, 1fr); gap: 0 32px; }
@media (max-width: 1000px) { .grid { grid-template-columns: minmax(0, 1fr); } }
.wide { overflow-x: auto; }
.player-box { position: sticky; top: 0; z-index: 2; background: #fff; padding: 6px 0 8px; border-bottom: 1px solid var(--line); }
#player { margin: 0 auto; }
@media (max-height: 700px) { .player-box { position: static; } }
#timeline td:first-child, #timeline td:nth-child(2) { white-space: nowrap; }
#timeline tbody tr { cursor: pointer; }
#timeline tbody tr:hover { background: #eef4fb; }
#timeline tbody tr.current { background: #d6e7fa; }
#timeline tbody tr.nojump { cursor: default; }
#timeline td.command { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; white-space: pre-wrap; }
.mark { display: inline-block; border-radius: 3px; padding: 0 5px; font-size: 11.5px; margin: 0 2px 0 0; white-space: nowrap; }
.mark.redacted { background: #fde2c8; color: #6b2a00; }
.mark.truncated { background: #e6e6e6; color: #333; }
.mark.repl { background: #e4def7; color: #3b2a78; }
.mark.hint { background: #fbe3e3; color: #7a1111; }
a { color: var(--accent); }
@media print { .player-box { position: static; } }
";

/// Escapes text for HTML content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// Returns `value` as JSON that is safe inside `<script type="application/json">`: `<`, `>`,
/// `&` and the line separators U+2028/U+2029 are written as `\uXXXX` escapes (still the same
/// JSON value), so the text holds no `</script` or `<!--`.
pub fn script_json<T: Serialize + ?Sized>(value: &T) -> String {
    // Serialising strings, numbers and plain structs cannot fail.
    let json = serde_json::to_string(value).unwrap_or_else(|_| "null".to_string());
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            _ => out.push(c),
        }
    }
    out
}

/// Returns the CSP source of an inline script: `'sha256-<base64 of its SHA-256>'`.
fn script_hash(script: &str) -> String {
    let hex = sessionlake_storage::store::sha256_hex(script.as_bytes());
    let bytes: Vec<u8> = (0..hex.len())
        .step_by(2)
        .filter_map(|at| hex.get(at..at + 2).and_then(|pair| u8::from_str_radix(pair, 16).ok()))
        .collect();
    format!("'sha256-{}'", base64::engine::general_purpose::STANDARD.encode(bytes))
}

/// Returns the `<head>` of a page titled `title` whose inline scripts are `scripts`.
fn head(title: &str, scripts: &[&str], extra_css: &str) -> String {
    let script_src = if scripts.is_empty() {
        "'none'".to_string()
    } else {
        let hashes: Vec<String> = scripts.iter().map(|script| script_hash(script)).collect();
        format!("{} 'wasm-unsafe-eval'", hashes.join(" "))
    };
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; \
         script-src {script_src}; style-src 'unsafe-inline'; img-src data:; font-src data:; \
         connect-src 'none'; form-action 'none'; base-uri 'none'\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta name=\"referrer\" content=\"no-referrer\">\n\
         <title>{}</title>\n<style>{PAGE_CSS}{extra_css}</style>\n</head>\n",
        escape(title)
    )
}

/// Writes a two-column table of `rows` (label, value); values in `mono` rows are code.
fn facts_table(out: &mut String, rows: &[Fact]) {
    out.push_str("<table class=\"facts\"><tbody>\n");
    for fact in rows {
        let class = if fact.mono { " class=\"mono\"" } else { "" };
        let _ = writeln!(
            out,
            "<tr><th scope=\"row\">{}</th><td{class}>{}</td></tr>",
            escape(&fact.label),
            escape(&fact.value)
        );
    }
    out.push_str("</tbody></table>\n");
}

/// Writes a table with a header.
fn grid_table(out: &mut String, grid: &Grid, id: Option<&str>) {
    match id {
        Some(id) => {
            let _ = write!(out, "<table id=\"{}\">", escape(id));
        }
        None => out.push_str("<table>"),
    }
    out.push_str("<thead><tr>");
    for name in &grid.header {
        let _ = write!(out, "<th scope=\"col\">{}</th>", escape(name));
    }
    out.push_str("</tr></thead><tbody>\n");
    for row in &grid.rows {
        out.push_str("<tr>");
        for (index, cell) in row.iter().enumerate() {
            let class = if grid.mono.contains(&index) { " class=\"mono\"" } else { "" };
            let _ = write!(out, "<td{class}>{}</td>", escape(cell));
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody></table>\n");
}

/// One labelled value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fact {
    /// What it is.
    pub label: String,
    /// Its value, as text.
    pub value: String,
    /// Shown as code (ids, hashes, paths).
    pub mono: bool,
}

impl Fact {
    /// A value in plain text.
    pub fn text(label: &str, value: impl Into<String>) -> Fact {
        Fact { label: label.to_string(), value: value.into(), mono: false }
    }

    /// A value shown as code.
    pub fn code(label: &str, value: impl Into<String>) -> Fact {
        Fact { label: label.to_string(), value: value.into(), mono: true }
    }
}

/// A table: column titles and rows of text.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grid {
    /// Column titles.
    pub header: Vec<String>,
    /// Rows, as many cells as titles.
    pub rows: Vec<Vec<String>>,
    /// Columns shown as code.
    pub mono: Vec<usize>,
}

/// Where a command is in the replay, and what its output suggests about how it ended.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Moment {
    /// Seconds from the start of `session.cast`, when known.
    pub t: Option<f64>,
    /// A hint at how the command ended, read from its output ([`exit_hint`]).
    pub hint: Option<&'static str>,
}

/// Returns a hint at how a command ended, from messages its output shows (the transcripts
/// record no exit status): only for messages that mean failure in the common tools.
pub fn exit_hint(output: &str) -> Option<&'static str> {
    const HINTS: [(&str, &str); 9] = [
        ("command not found", "failed: command not found (exit 127)"),
        ("is not in the sudoers file", "refused: not in sudoers"),
        ("incorrect password attempt", "refused: sudo password"),
        ("Permission denied", "failed: permission denied"),
        ("Operation not permitted", "failed: operation not permitted"),
        ("No such file or directory", "failed: no such file or directory"),
        ("Segmentation fault", "crashed: segmentation fault"),
        ("Killed", "killed"),
        ("syntax error", "failed: syntax error"),
    ];
    // The end of the output tells how the command ended.
    let tail: String = {
        let start = output.len().saturating_sub(2048);
        let start = (start..output.len()).find(|at| output.is_char_boundary(*at)).unwrap_or(0);
        output[start..].to_string()
    };
    HINTS.iter().find(|(needle, _)| tail.contains(needle)).map(|(_, hint)| *hint)
}

/// What the evidence viewer of one bundle shows.
#[derive(Debug, Clone)]
pub struct SessionPage<'a> {
    /// Session id.
    pub session: &'a str,
    /// One line under the title (who, where, when).
    pub subtitle: String,
    /// The session's facts.
    pub facts: Vec<Fact>,
    /// CloudTrail events that name the session, and a note on where they come from.
    pub cloudtrail: Grid,
    /// Said above the CloudTrail table.
    pub cloudtrail_note: String,
    /// How the page relates to the bundle's checks.
    pub verification_note: String,
    /// Signer, chain head, transcript hashes.
    pub verification: Vec<Fact>,
    /// The manifests that committed the bundle's objects.
    pub manifests: Grid,
    /// Every other file of the bundle with its size and SHA-256.
    pub files: Grid,
    /// How the replay is timed.
    pub timing_note: String,
    /// `session.cast`, whole.
    pub cast: &'a str,
    /// `commands.jsonl`, whole.
    pub commands_jsonl: &'a str,
    /// One per line of `commands.jsonl`.
    pub moments: Vec<Moment>,
}

/// Returns the evidence viewer of a bundle (`index.html`).
pub fn session_page(page: &SessionPage) -> String {
    let title = format!("Session {}: evidence bundle", page.session);
    let mut out = head(&title, &[PLAYER_JS, VIEWER_JS], PLAYER_CSS);
    out.push_str("<body>\n<header>\n");
    let _ = writeln!(out, "<h1>{}</h1>", escape(&title));
    let _ = writeln!(out, "<p>{}</p>", escape(&page.subtitle));
    out.push_str(
        "<p class=\"warning\">Confidential: this page holds the session's commands and output \
         in plain text.</p>\n</header>\n",
    );
    out.push_str("<div class=\"grid\">\n<section>\n<h2>Session</h2>\n");
    facts_table(&mut out, &page.facts);
    out.push_str("</section>\n<section>\n<h2>Verification</h2>\n");
    let _ = writeln!(out, "<p>{}</p>", escape(&page.verification_note));
    facts_table(&mut out, &page.verification);
    out.push_str("</section>\n</div>\n");
    out.push_str("<section>\n<h2>CloudTrail events naming this session</h2>\n");
    let _ = writeln!(out, "<p class=\"muted\">{}</p>", escape(&page.cloudtrail_note));
    if !page.cloudtrail.rows.is_empty() {
        out.push_str("<div class=\"wide\">");
        grid_table(&mut out, &page.cloudtrail, Some("cloudtrail"));
        out.push_str("</div>\n");
    }
    out.push_str("</section>\n");

    out.push_str("<section>\n<h2>Replay and timeline</h2>\n");
    let _ = writeln!(
        out,
        "<p class=\"muted\">{} Click a command to move the replay to its moment. Times are \
         UTC; where the transcript records none, the position in the replay is shown. Exit \
         hints are read from the output (transcripts record no exit status).</p>",
        escape(&page.timing_note)
    );
    out.push_str(
        "<noscript><p class=\"warning\">The replay and the timeline need JavaScript: \
         commands.csv and session.cast hold the same data.</p></noscript>\n\
         <div class=\"player-box\"><div id=\"player\"></div>\
         <p id=\"player-error\" class=\"warning\" hidden></p></div>\n\
         <table id=\"timeline\"><thead><tr><th>#</th><th>time</th><th>user</th><th>cwd</th>\
         <th>command</th><th>marks</th></tr></thead><tbody></tbody></table>\n</section>\n",
    );
    out.push_str("<section>\n<h2>Manifests and files</h2>\n");
    grid_table(&mut out, &page.manifests, Some("manifests"));
    out.push_str("<h3>Files of the bundle</h3>\n");
    grid_table(&mut out, &page.files, Some("files"));
    out.push_str("</section>\n");

    let _ = writeln!(
        out,
        "<script type=\"application/json\" id=\"sl-cast\">{}</script>",
        script_json(page.cast)
    );
    let _ = writeln!(
        out,
        "<script type=\"application/json\" id=\"sl-commands\">{}</script>",
        script_json(page.commands_jsonl)
    );
    let _ = writeln!(
        out,
        "<script type=\"application/json\" id=\"sl-moments\">{}</script>",
        script_json(&page.moments)
    );
    let _ = writeln!(
        out,
        "<footer><p class=\"muted\">Made by sessionlake {}; replay by asciinema-player {} \
         (Apache License 2.0), inlined.</p></footer>",
        env!("CARGO_PKG_VERSION"),
        PLAYER_VERSION
    );
    let _ = write!(out, "<script>{PLAYER_JS}</script>\n<script>{VIEWER_JS}</script>\n");
    out.push_str("</body>\n</html>\n");
    out
}

/// What a report of a result shows.
#[derive(Debug, Clone, Default)]
pub struct ReportPage {
    /// What was asked (the command line).
    pub query: String,
    /// When the report was made (RFC 3339, UTC).
    pub made_at: String,
    /// The result's summary line.
    pub summary: String,
    /// Column names of the rows.
    pub columns: Vec<String>,
    /// Rows, cell texts (`None` for null).
    pub rows: Vec<Vec<Option<String>>>,
}

/// Returns the report of a result: one timeline per principal and target (when the result
/// has those columns), each row linking to its session's bundle, `<session>/index.html` beside
/// the report, with the `sessionlake export` command that writes it.
pub fn report_page(report: &ReportPage) -> String {
    let title = format!("sessionlake report: {}", report.query);
    let mut out = head(&title, &[], "");
    out.push_str("<body>\n<header>\n");
    let _ = writeln!(out, "<h1>{}</h1>", escape(&title));
    let _ = writeln!(
        out,
        "<p>{} · made {} by sessionlake {}</p>",
        escape(&report.summary),
        escape(&report.made_at),
        env!("CARGO_PKG_VERSION")
    );
    out.push_str(
        "<p class=\"warning\">Confidential: this page holds commands in plain text. It is a \
         finding aid, not evidence: the evidence of a session is its exported bundle, signed \
         and hash-checked.</p>\n</header>\n",
    );
    let column = |name: &str| report.columns.iter().position(|c| c == name);
    let (principal, target, session) =
        (column("principal"), column("target"), column("session_id"));
    let seq = column("seq");
    let cell = |row: &[Option<String>], at: Option<usize>| -> Option<String> {
        at.and_then(|at| row.get(at).cloned().flatten())
    };
    // Sessions in order of first appearance, with the command that exports each.
    let mut sessions: Vec<String> = Vec::new();
    for row in &report.rows {
        if let Some(id) = cell(row, session)
            && !sessions.contains(&id)
        {
            sessions.push(id);
        }
    }
    if !sessions.is_empty() {
        out.push_str(
            "<section>\n<h2>Sessions</h2>\n<p>Each session links to its evidence bundle in a \
             folder named after it beside this report. Write the bundles there, in the \
             report's folder, with:</p>\n<pre class=\"mono\">",
        );
        for id in &sessions {
            let _ = writeln!(out, "{}", escape(&export_command(id)));
        }
        out.push_str(
            "</pre>\n<table><thead><tr><th>session</th><th>bundle</th><th>rows</th>\
                      </tr></thead><tbody>\n",
        );
        for id in &sessions {
            let count =
                report.rows.iter().filter(|row| cell(row, session).as_ref() == Some(id)).count();
            let _ = writeln!(
                out,
                "<tr><td class=\"mono\">{0}</td><td><a href=\"{1}\">{1}</a></td><td>{count}</td></tr>",
                escape(id),
                escape(&bundle_link(id)),
            );
        }
        out.push_str("</tbody></table>\n</section>\n");
    }
    // One timeline per principal and target, in order of first appearance.
    let mut groups: Vec<(GroupKey, Vec<&Vec<Option<String>>>)> = Vec::new();
    for row in &report.rows {
        let key = (cell(row, principal), cell(row, target));
        match groups.iter_mut().find(|(known, _)| *known == key) {
            Some((_, rows)) => rows.push(row),
            None => groups.push((key, vec![row])),
        }
    }
    let shown: Vec<usize> = (0..report.columns.len())
        .filter(|at| Some(*at) != principal && Some(*at) != target)
        .collect();
    out.push_str("<section>\n<h2>Timelines by principal and target</h2>\n");
    if report.rows.is_empty() {
        out.push_str("<p>No rows.</p>\n");
    }
    for ((who, whence), rows) in &groups {
        if principal.is_some() || target.is_some() {
            let _ = writeln!(
                out,
                "<h3>{} on {}</h3>",
                escape(who.as_deref().unwrap_or("unknown principal")),
                escape(whence.as_deref().unwrap_or("unknown target"))
            );
        }
        out.push_str("<table class=\"report\"><thead><tr>");
        for at in &shown {
            let _ = write!(out, "<th scope=\"col\">{}</th>", escape(&report.columns[*at]));
        }
        out.push_str("</tr></thead><tbody>\n");
        for row in rows {
            out.push_str("<tr>");
            for at in &shown {
                let text = row.get(*at).cloned().flatten();
                let mono = matches!(report.columns[*at].as_str(), "command" | "cwd" | "output");
                let class = if mono { " class=\"mono\"" } else { "" };
                match (text, Some(*at) == session) {
                    (Some(id), true) => {
                        // The viewer opens at the command (`#seq-N`).
                        let fragment = cell(row, seq)
                            .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
                            .map(|n| format!("#seq-{n}"))
                            .unwrap_or_default();
                        let _ = write!(
                            out,
                            "<td class=\"mono\"><a href=\"{}{fragment}\" title=\"{}\">{}</a></td>",
                            escape(&bundle_link(&id)),
                            escape(&export_command(&id)),
                            escape(&id)
                        );
                    }
                    (Some(text), false) => {
                        let _ = write!(out, "<td{class}>{}</td>", escape(&text));
                    }
                    (None, _) => out.push_str("<td class=\"muted\">null</td>"),
                }
            }
            out.push_str("</tr>\n");
        }
        out.push_str("</tbody></table>\n");
    }
    out.push_str("</section>\n</body>\n</html>\n");
    out
}

/// A timeline of a report: principal and target.
type GroupKey = (Option<String>, Option<String>);

/// Returns the link from a report to the bundle of `session`: `<session>/index.html`, the
/// session id percent-encoded where it is not a plain name.
fn bundle_link(session: &str) -> String {
    let mut link = String::new();
    for byte in session.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.') {
            link.push(char::from(byte));
        } else {
            let _ = write!(link, "%{byte:02X}");
        }
    }
    format!("./{link}/index.html")
}

/// Returns the command that writes the bundle of `session` where the report links to it.
fn export_command(session: &str) -> String {
    let quoted = shlex::try_quote(session).map(|q| q.to_string()).unwrap_or_else(|_| {
        // A session id with a NUL byte cannot be a shell word; ids never hold one.
        format!("'{}'", session.replace('\0', ""))
    });
    format!("sessionlake export {quoted} --out {quoted}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_script_json_cannot_end_its_block() {
        let hostile = "</script><script>alert(1)</script><!-- & \u{2028}</SCRIPT>";
        let json = script_json(hostile);
        for bad in ["<", ">", "&", "\u{2028}"] {
            assert!(!json.contains(bad), "{bad:?} in {json}");
        }
        let back: String = serde_json::from_str(&json).expect("still JSON");
        assert_eq!(back, hostile);
    }

    #[test]
    fn test_escape() {
        assert_eq!(
            escape("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }

    /// The inlined assets cannot end their own blocks early.
    #[test]
    fn test_inlined_assets_hold_no_closing_tag() {
        for (name, text, tag) in [
            ("player JS", PLAYER_JS, "</script"),
            ("viewer JS", VIEWER_JS, "</script"),
            ("player CSS", PLAYER_CSS, "</style"),
            ("page CSS", PAGE_CSS, "</style"),
        ] {
            assert!(!text.to_ascii_lowercase().contains(tag), "{name} holds {tag}");
            assert!(!text.contains("<!--"), "{name} holds <!--");
        }
    }

    #[test]
    fn test_exit_hints() {
        let cases = [
            ("bash: foo: command not found\n", Some("failed: command not found (exit 127)")),
            ("rm: cannot remove '/x': Permission denied\n", Some("failed: permission denied")),
            ("total 0\n", None),
            ("", None),
        ];
        for (output, expected) in cases {
            assert_eq!(exit_hint(output), expected, "{output:?}");
        }
        // The tail is cut at a character boundary.
        let long = format!("{}é: command not found", "é".repeat(3000));
        assert!(exit_hint(&long).is_some());
    }

    fn hostile_page() -> String {
        let commands = "{\"seq\":0,\"command\":\"echo '</script><img src=x onerror=alert(1)>'\"}\n";
        let page = SessionPage {
            session: "s-1",
            subtitle: "<b>who</b>".into(),
            facts: vec![Fact::text("principal", "</td><script>alert(2)</script>")],
            cloudtrail: Grid {
                header: vec!["event".into()],
                rows: vec![vec!["<svg onload=alert(3)>".into()]],
                mono: vec![],
            },
            cloudtrail_note: String::new(),
            verification_note: String::new(),
            verification: vec![],
            manifests: Grid::default(),
            files: Grid::default(),
            timing_note: String::new(),
            cast: "{\"version\":2}\n[0.0,\"o\",\"</script>\"]\n",
            commands_jsonl: commands,
            moments: vec![Moment { t: Some(0.0), hint: None }],
        };
        session_page(&page)
    }

    /// Text of the lake never becomes markup: the only `<script` tags are the page's own, and
    /// the hostile values are there escaped.
    #[test]
    fn test_hostile_values_stay_text() {
        let html = hostile_page();
        let tags = html.matches("<script").count();
        assert_eq!(tags, 5, "3 data blocks, the player, the viewer");
        assert_eq!(html.matches("</script>").count(), 5);
        // The player draws its icons with SVG: look at the page without it.
        let page = html.replace(PLAYER_JS, "");
        assert!(!page.contains("<img"), "an img tag got through");
        assert!(!page.contains("<svg"), "an svg tag got through");
        assert!(!page.contains("<b>who"), "markup in the subtitle got through");
        assert!(html.contains("&lt;/td&gt;&lt;script&gt;alert(2)"));
        assert!(html.contains("&lt;svg onload=alert(3)&gt;"));
        // The data blocks still hold the values.
        let start = html.find("id=\"sl-commands\">").expect("block") + "id=\"sl-commands\">".len();
        let end = start + html[start..].find("</script>").expect("end");
        let commands: String = serde_json::from_str(&html[start..end]).expect("json");
        assert!(commands.contains("'</script><img src=x onerror=alert(1)>'"));
    }

    #[test]
    fn test_content_security_policy_names_the_page_scripts() {
        let html = hostile_page();
        for script in [PLAYER_JS, VIEWER_JS] {
            assert!(html.contains(&script_hash(script)), "hash missing");
        }
        assert!(html.contains("connect-src 'none'"));
        // A known vector: SHA-256 of the empty string.
        assert_eq!(script_hash(""), "'sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU='");
    }

    #[test]
    fn test_report_groups_by_principal_and_target_and_links_sessions() {
        let row = |session: &str, principal: &str, command: &str| {
            vec![
                Some(session.to_string()),
                Some(principal.to_string()),
                Some("i-1".to_string()),
                Some(command.to_string()),
            ]
        };
        let report = ReportPage {
            query: "sessionlake search rm".into(),
            made_at: "2026-03-14T10:00:00Z".into(),
            summary: "3 matching commands".into(),
            columns: vec![
                "session_id".into(),
                "principal".into(),
                "target".into(),
                "command".into(),
            ],
            rows: vec![
                row("alice-1", "arn:alice", "rm a"),
                row("bob-1", "arn:bob", "rm <b>"),
                row("alice-1", "arn:alice", "rm c"),
            ],
        };
        let html = report_page(&report);
        assert_eq!(html.matches("<h3>").count(), 2, "{html}");
        assert!(html.contains("<h3>arn:alice on i-1</h3>"));
        assert!(html.contains("<a href=\"./alice-1/index.html\""));
        assert!(html.contains("sessionlake export alice-1 --out alice-1"));
        assert!(html.contains("rm &lt;b&gt;"));
        assert!(!html.contains("<script"), "a report has no script");
        assert_eq!(bundle_link("a b/../c"), "./a%20b%2F..%2Fc/index.html");
        assert_eq!(export_command("a b"), "sessionlake export 'a b' --out 'a b'");
    }
}
