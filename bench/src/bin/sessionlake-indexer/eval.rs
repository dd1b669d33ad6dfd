//! Accuracy of command extraction against the recorded corpus (`corpus/<session>/`).
//!
//! Each corpus session holds one real shell recording in every SSM form and `expected.json`,
//! the commands the shell itself recorded (bash's history file; for dash, the scenario's list).
//! Extracted commands are aligned with expected ones in order (longest common subsequence of
//! normalised text): aligned pairs are true positives, the rest of the extracted list are
//! false positives, the rest of the expected list false negatives.
//!
//! Oracle entries that provably never ran (listed with a reason under `excluded` in
//! `expected.json`, e.g. a loop abandoned with Ctrl-C at the PS2 prompt, which bash keeps in
//! its history) are left out of every form's score; the report counts them.
//!
//! The streamed form is also scored against the oracle as the agent delivers it
//! ([`as_streamed`]: UTF-8 bytes 0x80–0x9F deleted by its ANSI stripper, tabs turned into
//! spaces). That figure, "modulo bytes the agent destroyed", is reported beside the strict one,
//! never instead of it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use sessionlake_indexer::input::{GetLogEventsFile, cloudwatch_raw};
use sessionlake_indexer::{InputForm, SessionContext, parse_session};

/// The forms a corpus session is stored in, by file name.
pub const FORMS: [(&str, &str); 5] = [
    ("s3", "s3.log"),
    ("s3-legacy", "s3-legacy.log"),
    // The S3 form after a text tool turned every CR into LF (`\r\r\n` -> `\n\n`).
    ("s3-crlost", "s3-crlost.log"),
    ("cloudwatch-upload", "cloudwatch-upload.json"),
    ("cloudwatch-stream", "cloudwatch-stream.json"),
];

#[derive(Debug, Deserialize)]
struct Expected {
    session_id: String,
    scenario: String,
    /// The shell the session ran (`bash`, `dash`, `zsh`, `fish`).
    #[serde(default)]
    shell: String,
    /// The session's OS user.
    #[serde(default)]
    run_as: String,
    commands: Vec<ExpectedCommand>,
    /// Oracle entries that never ran, with the reason.
    #[serde(default)]
    excluded: Vec<ExcludedCommand>,
    /// Lines typed into REPLs, from their own history files.
    #[serde(default)]
    repl: Vec<ExpectedRepl>,
}

#[derive(Debug, Deserialize)]
struct ExpectedRepl {
    program: String,
    command: String,
}

#[derive(Debug, Deserialize)]
struct ExcludedCommand {
    command: String,
    reason: String,
}

#[derive(Debug, Deserialize)]
struct ExpectedCommand {
    command: String,
    /// Who it ran as (recorded from the shell, `sudo -u` applied), when the recorder knew.
    #[serde(default)]
    user: Option<String>,
}

/// Counts for one form (or one session in one form).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Score {
    /// Extracted and expected.
    pub true_positives: usize,
    /// Extracted, not expected.
    pub false_positives: usize,
    /// Expected, not extracted.
    pub false_negatives: usize,
}

impl Score {
    /// Returns precision (1 when nothing was extracted).
    pub fn precision(&self) -> f64 {
        let extracted = self.true_positives + self.false_positives;
        if extracted == 0 { 1.0 } else { self.true_positives as f64 / extracted as f64 }
    }

    /// Returns recall (1 when nothing was expected).
    pub fn recall(&self) -> f64 {
        let expected = self.true_positives + self.false_negatives;
        if expected == 0 { 1.0 } else { self.true_positives as f64 / expected as f64 }
    }

    fn add(&mut self, other: Score) {
        self.true_positives += other.true_positives;
        self.false_positives += other.false_positives;
        self.false_negatives += other.false_negatives;
    }
}

/// A difference between extracted and expected commands, for the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Miss {
    /// Corpus session.
    pub session_id: String,
    /// Scenario name.
    pub scenario: String,
    /// Form.
    pub form: &'static str,
    /// `+` extracted but not expected, `-` expected but not extracted, `u` found with the
    /// wrong effective user.
    pub kind: char,
    /// The command.
    pub command: String,
}

/// The form whose text the agent rewrites before delivery.
pub const STREAM_FORM: &str = "cloudwatch-stream";

/// Result of evaluating the corpus.
#[derive(Debug, Default)]
pub struct Report {
    /// Score per form.
    pub by_form: BTreeMap<&'static str, Score>,
    /// Score per shell (the corpus session's `shell`) and form.
    pub by_shell: BTreeMap<(String, &'static str), Score>,
    /// Sessions per form and session confidence (`high`, `medium`, `low`).
    pub confidence: BTreeMap<(&'static str, &'static str), usize>,
    /// Score of `repl` rows (program and line) per form, against the REPLs' history files.
    pub repl: BTreeMap<&'static str, Score>,
    /// Per form, the effective user of the commands found in sessions where commands ran as
    /// someone else than the session's OS user (root shells): (right, wrong).
    pub users: BTreeMap<&'static str, (usize, usize)>,
    /// Score of the streamed form against the oracle as the agent delivers it (modulo bytes
    /// the agent destroyed).
    pub stream_as_delivered: Score,
    /// Oracle entries left out of every score because they never ran.
    pub excluded: usize,
    /// Every difference.
    pub misses: Vec<Miss>,
    /// Sessions evaluated.
    pub sessions: usize,
}

/// Normalises a command for comparison with bash's history: the history file stores a
/// backslash-newline continuation joined, a here-document with its final newline, and a
/// completed word with the space completion added after it.
pub fn normalise(command: &str) -> String {
    command.replace("\\\n", "").trim_end().to_string()
}

pub use sessionlake_schemas::as_streamed;

/// Aligns `extracted` with `expected` (LCS of normalised text); returns the score and, for
/// each side, which items were not aligned.
pub fn align(extracted: &[String], expected: &[String]) -> (Score, Vec<usize>, Vec<usize>) {
    let (score, unmatched_a, unmatched_b, _) = align_pairs(extracted, expected);
    (score, unmatched_a, unmatched_b)
}

/// An alignment: the score, the extracted and the expected items not aligned, and the aligned
/// pairs (extracted index, expected index).
type Alignment = (Score, Vec<usize>, Vec<usize>, Vec<(usize, usize)>);

/// [`align`], also returning the aligned pairs.
fn align_pairs(extracted: &[String], expected: &[String]) -> Alignment {
    let a: Vec<String> = extracted.iter().map(|c| normalise(c)).collect();
    let b: Vec<String> = expected.iter().map(|c| normalise(c)).collect();
    let mut table = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            table[i][j] = if a[i] == b[j] {
                table[i + 1][j + 1] + 1
            } else {
                table[i + 1][j].max(table[i][j + 1])
            };
        }
    }
    let (mut i, mut j) = (0, 0);
    let (mut unmatched_a, mut unmatched_b) = (Vec::new(), Vec::new());
    let mut pairs = Vec::new();
    while i < a.len() && j < b.len() {
        if a[i] == b[j] {
            pairs.push((i, j));
            i += 1;
            j += 1;
        } else if table[i + 1][j] >= table[i][j + 1] {
            unmatched_a.push(i);
            i += 1;
        } else {
            unmatched_b.push(j);
            j += 1;
        }
    }
    unmatched_a.extend(i..a.len());
    unmatched_b.extend(j..b.len());
    let matched = table[0][0];
    let score = Score {
        true_positives: matched,
        false_positives: a.len() - matched,
        false_negatives: b.len() - matched,
    };
    (score, unmatched_a, unmatched_b, pairs)
}

fn read_form(path: &Path, file: &str) -> Result<Option<(InputForm, Vec<u8>)>, String> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(format!("failed to read {}: {error}", path.display())),
    };
    if file.ends_with(".json") {
        let document: GetLogEventsFile = serde_json::from_slice(&bytes)
            .map_err(|error| format!("{} is not get-log-events JSON: {error}", path.display()))?;
        Ok(Some(cloudwatch_raw(&document.events)))
    } else {
        Ok(Some((InputForm::S3Transcript, bytes)))
    }
}

/// Evaluates every session under `corpus`.
pub fn evaluate(corpus: &Path) -> Result<Report, String> {
    let mut sessions: Vec<PathBuf> = std::fs::read_dir(corpus)
        .map_err(|error| format!("failed to list {}: {error}", corpus.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| std::fs::metadata(path.join("expected.json")).is_ok())
        .collect();
    sessions.sort();
    let mut report = Report::default();
    for dir in sessions {
        let text = std::fs::read(dir.join("expected.json"))
            .map_err(|error| format!("failed to read {}: {error}", dir.display()))?;
        let expected: Expected = serde_json::from_slice(&text)
            .map_err(|error| format!("{}/expected.json is not valid: {error}", dir.display()))?;
        let mut oracle: Vec<&str> = expected.commands.iter().map(|c| c.command.as_str()).collect();
        let mut oracle_users: Vec<Option<&str>> =
            expected.commands.iter().map(|c| c.user.as_deref()).collect();
        for excluded in &expected.excluded {
            let Some(index) = oracle.iter().position(|command| *command == excluded.command) else {
                return Err(format!(
                    "{}/expected.json excludes {:?}, which is not in its commands",
                    dir.display(),
                    excluded.command
                ));
            };
            if excluded.reason.trim().is_empty() {
                return Err(format!("{}/expected.json excludes without a reason", dir.display()));
            }
            oracle.remove(index);
            oracle_users.remove(index);
            report.excluded += 1;
        }
        // The index masks secrets; so must the oracle before comparing.
        let expected_commands: Vec<String> = oracle
            .iter()
            .map(|command| sessionlake_indexer::redact::redact(command).0.into_owned())
            .collect();
        report.sessions += 1;
        for (form, file) in FORMS {
            let Some((input_form, raw)) = read_form(&dir.join(file), file)? else {
                continue;
            };
            let records =
                match parse_session(input_form, &raw, &SessionContext::new(&expected.session_id)) {
                    Ok(parsed) => {
                        let confidence = parsed.understanding.confidence.as_str();
                        *report.confidence.entry((form, confidence)).or_default() += 1;
                        parsed.commands
                    }
                    Err(_) => Vec::new(),
                };
            let (repl_rows, records): (Vec<_>, Vec<_>) =
                records.into_iter().partition(|record| record.program.is_some());
            let found_repl: Vec<String> = repl_rows
                .iter()
                .map(|row| {
                    format!("{}: {}", row.program.as_deref().unwrap_or_default(), row.command)
                })
                .collect();
            let typed: Vec<String> = expected
                .repl
                .iter()
                .filter(|line| !line.command.trim().is_empty())
                .map(|line| format!("{}: {}", line.program, line.command))
                .collect();
            let (repl_score, repl_extra, repl_missing) = align(&found_repl, &typed);
            report.repl.entry(form).or_default().add(repl_score);
            let repl_miss = |kind, command: &String| Miss {
                session_id: expected.session_id.clone(),
                scenario: expected.scenario.clone(),
                form,
                kind,
                command: format!("repl {command}"),
            };
            report.misses.extend(repl_extra.iter().map(|&i| repl_miss('+', &found_repl[i])));
            report.misses.extend(repl_missing.iter().map(|&j| repl_miss('-', &typed[j])));
            let extracted: Vec<String> = records.iter().map(|c| c.command.clone()).collect();
            let (score, extra, missing, pairs) = align_pairs(&extracted, &expected_commands);
            let users = report.users.entry(form).or_default();
            let switches_user =
                oracle_users.iter().any(|user| user.is_some_and(|user| user != expected.run_as));
            for (found, known) in pairs.into_iter().filter(|_| switches_user) {
                let Some(user) = oracle_users[known] else { continue };
                if records[found].effective_user.as_deref() == Some(user) {
                    users.0 += 1;
                } else {
                    users.1 += 1;
                    report.misses.push(Miss {
                        session_id: expected.session_id.clone(),
                        scenario: expected.scenario.clone(),
                        form,
                        kind: 'u',
                        command: format!(
                            "{} (as {:?}, not {user})",
                            extracted[found], records[found].effective_user
                        ),
                    });
                }
            }
            report.by_form.entry(form).or_default().add(score);
            report.by_shell.entry((expected.shell.clone(), form)).or_default().add(score);
            if form == STREAM_FORM {
                let delivered: Vec<String> = oracle
                    .iter()
                    .map(|command| {
                        sessionlake_indexer::redact::redact(&as_streamed(command)).0.into_owned()
                    })
                    .collect();
                report.stream_as_delivered.add(align(&extracted, &delivered).0);
            }
            let miss = |kind, command: &String| Miss {
                session_id: expected.session_id.clone(),
                scenario: expected.scenario.clone(),
                form,
                kind,
                command: command.clone(),
            };
            report.misses.extend(extra.iter().map(|&i| miss('+', &extracted[i])));
            report.misses.extend(missing.iter().map(|&j| miss('-', &expected_commands[j])));
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_align_counts() {
        let strings = |items: &[&str]| items.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let (score, extra, missing) =
            align(&strings(&["ls", "x", "cd "]), &strings(&["ls", "cd", "pwd"]));
        assert_eq!(score, Score { true_positives: 2, false_positives: 1, false_negatives: 1 });
        assert_eq!((extra, missing), (vec![1], vec![2]));
        assert_eq!(normalise("echo a \\\nb\n"), "echo a b");
    }

    #[test]
    fn test_as_streamed_matches_the_agent() {
        // bash-utf8 and dash-basic, as their streamed form shows them.
        let cases = [
            (
                "echo 'café 日本語 🎉'",
                "echo 'café \u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd} \u{fffd}'",
            ),
            (
                "echo 'em — dash … ellipsis ✓ check'",
                "echo 'em \u{fffd} dash \u{fffd}\u{fffd} ellipsis \u{fffd} check'",
            ),
            ("echo a\tb", "echo a b"),
            ("echo naïve résumé u", "echo naïve résumé u"),
        ];
        for (command, streamed) in cases {
            assert_eq!(as_streamed(command), streamed, "{command:?}");
        }
    }
}

#[cfg(test)]
mod corpus_tests {
    use super::*;

    /// The recorded corpus is the parser's regression suite: every session in it is parsed in
    /// every form, and accuracy may not fall below what BENCHMARKS.md reports.
    #[test]
    fn test_corpus_accuracy_does_not_regress() {
        let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../corpus");
        let report = evaluate(&corpus).expect("corpus evaluates");
        assert!(report.sessions >= 37, "corpus has {} sessions", report.sessions);
        let floors = [
            ("s3", 0.99, 0.999),
            ("s3-legacy", 0.99, 0.99),
            ("s3-crlost", 0.99, 0.99),
            ("cloudwatch-upload", 0.99, 0.999),
            (STREAM_FORM, 0.978, 0.978),
        ];
        let delivered = report.stream_as_delivered;
        assert!(
            delivered.precision() >= 0.987 && delivered.recall() >= 0.987,
            "{STREAM_FORM} modulo bytes the agent destroyed: precision {:.4} recall {:.4}",
            delivered.precision(),
            delivered.recall()
        );
        assert_eq!(report.excluded, 1, "oracle entries excluded");
        let meets = |label: &str, form: &str, score: Score, precision: f64, recall: f64| {
            assert!(
                score.precision() >= precision && score.recall() >= recall,
                "{label}: precision {:.4} recall {:.4}; misses: {:#?}",
                score.precision(),
                score.recall(),
                report.misses.iter().filter(|m| m.form == form).collect::<Vec<_>>()
            );
        };
        for (form, precision, recall) in floors {
            meets(form, form, report.by_form[form], precision, recall);
        }
        // Per shell and form (BENCHMARKS.md).
        let shell_floors = [
            ("bash", "s3", 0.99, 0.999),
            ("bash", "cloudwatch-upload", 0.99, 0.999),
            ("bash", "s3-crlost", 0.99, 0.99),
            ("bash", STREAM_FORM, 0.976, 0.976),
            ("dash", "s3", 0.99, 0.99),
            ("dash", STREAM_FORM, 0.96, 0.96),
            ("zsh", "s3", 0.99, 0.999),
            ("zsh", "cloudwatch-upload", 0.99, 0.999),
            ("zsh", "s3-crlost", 0.99, 0.99),
            ("zsh", STREAM_FORM, 0.999, 0.999),
            ("fish", "s3", 0.99, 0.99),
            ("fish", "cloudwatch-upload", 0.99, 0.99),
            ("fish", STREAM_FORM, 0.956, 0.956),
        ];
        for (shell, form, precision, recall) in shell_floors {
            let score = report.by_shell[&(shell.to_string(), form)];
            meets(&format!("{shell} / {form}"), form, score, precision, recall);
        }
        // Lines typed into sqlite3, python, psql, mysql, irb, node and redis-cli are `repl`
        // rows with the program's name.
        for (form, floor) in [("s3", 0.999), ("cloudwatch-upload", 0.999), (STREAM_FORM, 0.98)] {
            let score = report.repl[form];
            assert!(
                score.true_positives >= 51 && score.precision() >= floor && score.recall() >= floor,
                "repl / {form}: {score:?}; misses: {:#?}",
                report.misses.iter().filter(|m| m.command.starts_with("repl ")).collect::<Vec<_>>()
            );
        }
        // Every session says how well it was understood; none of the corpus is `low`.
        for form in ["s3", "cloudwatch-upload", STREAM_FORM] {
            assert_eq!(
                report.confidence.get(&(form, "low")),
                None,
                "{form}: {:?}",
                report.confidence
            );
        }
        // Every command of the root-shell sessions runs as whom the shell says, in every form.
        for (form, (right, wrong)) in &report.users {
            assert_eq!(*wrong, 0, "{form}: effective user wrong on {wrong} of {}", right + wrong);
        }
        assert!(report.users["s3"].0 >= 40, "root-shell commands scored: {:?}", report.users);
    }
}
