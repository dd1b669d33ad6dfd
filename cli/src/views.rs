//! How the rows of `search`, `show` and `sessions` look in a table.

// The crate root's imports and shared helpers, as a test module's `use super::*`.
use crate::*;

/// How a listing's rows look in a table; JSON and CSV show the query's columns as they are.
pub(crate) struct View {
    /// The query's shown columns, in order (sort keys may follow them).
    pub(crate) columns: &'static [&'static str],
    pub(crate) header: &'static [&'static str],
    pub(crate) row: fn(&[Option<String>]) -> Vec<String>,
    /// Table column where matches are highlighted.
    pub(crate) highlight_column: Option<usize>,
    pub(crate) noun: &'static str,
}

impl View {
    pub(crate) fn printer(&self, print: &OutputArgs) -> Printer {
        let layout = TableLayout {
            header: self.header.iter().map(|title| title.to_string()).collect(),
            row: self.row,
            highlight_column: self.highlight_column,
        };
        Printer::new(print, self.columns.len(), "match", layout)
    }
}

/// A cell holding a name (a session id, a principal, a target, a user): printed escaped, as
/// ingest's log lines print names (control, invisible and bidirectional characters made
/// visible; see `session_id::escaped`), so that a name cannot break a row, start a line of its
/// own or pass for another.
pub(crate) fn cell(row: &[Option<String>], index: usize) -> String {
    match row.get(index).cloned().flatten() {
        Some(name) => sessionlake_schemas::session_id::escaped(&name).into_owned(),
        None => "-".to_string(),
    }
}

/// A cell holding transcript text (a command, its output, a prompt): as it is, line breaks
/// kept; the table makes its control characters visible.
pub(crate) fn text_cell(row: &[Option<String>], index: usize) -> String {
    row.get(index).cloned().flatten().unwrap_or_else(|| "-".to_string())
}

/// The session's OS user (`run_as`), and whom the command ran as when that differs (`sudo su
/// -`, `sudo -u bob CMD`): `ssm-user→root`. Narrow where nothing changed.
pub(crate) fn run_as_cell(row: &[Option<String>], run_as: usize, effective_user: usize) -> String {
    let session_user = row.get(run_as).cloned().flatten();
    match row.get(effective_user).cloned().flatten() {
        Some(user) if Some(&user) != session_user.as_ref() => {
            format!("{}→{}", cell(row, run_as), cell(row, effective_user))
        }
        _ => cell(row, run_as),
    }
}

/// The command on one line; a line typed into a REPL after its program's name:
/// `[sqlite3] select count(*) from t;`.
pub(crate) fn command_cell(row: &[Option<String>], command: usize, program: usize) -> String {
    let text = text_cell(row, command).replace('\n', "⏎ ");
    match row.get(program).cloned().flatten() {
        Some(_) => format!("[{}] {text}", cell(row, program)),
        None => text,
    }
}

pub(crate) const SEARCH_VIEW: View = View {
    columns: &[
        "session_id",
        "seq",
        "time",
        "time_kind",
        "principal",
        "run_as",
        "target",
        "cwd",
        "command",
        "effective_user",
        "shell",
        "command_kind",
        "program",
    ],
    header: &["TIME", "SESSION", "PRINCIPAL", "RUN AS", "TARGET", "COMMAND"],
    row: |row| {
        // `~` marks the session's start standing in for a command without a time of its own.
        let time = match (row.get(2).cloned().flatten(), row.get(3).cloned().flatten()) {
            (Some(time), Some(kind)) if kind == "session-start" => format!("~{time}"),
            (Some(time), _) => time,
            (None, _) => "-".to_string(),
        };
        vec![
            time,
            cell(row, 0),
            cell(row, 4),
            run_as_cell(row, 5, 9),
            cell(row, 6),
            command_cell(row, 8, 12),
        ]
    },
    highlight_column: Some(5),
    noun: "matching commands",
};

pub(crate) const SHOW_VIEW: View = View {
    columns: &[
        "seq",
        "time",
        "cwd",
        "prompt",
        "command",
        "output",
        "output_truncated",
        "confidence",
    ],
    header: &["#", "TIME", "COMMAND", "OUTPUT"],
    row: |row| {
        let mut output = text_cell(row, 5);
        if row.get(6).cloned().flatten().as_deref() == Some("true") {
            output.push_str("\n[output cut]");
        }
        let command = format!("{}{}", text_cell(row, 3), text_cell(row, 4));
        vec![cell(row, 0), cell(row, 1), command, output]
    },
    highlight_column: None,
    noun: "commands",
};

pub(crate) const SESSIONS_VIEW: View = View {
    columns: &sessionlake_read::transcripts::SESSIONS_COLUMNS,
    header: &[
        "STARTED",
        "ENDED",
        "SESSION",
        "PRINCIPAL",
        "RUN AS",
        "TARGET",
        "COMMANDS",
        "STATUS",
        "CONFIDENCE",
        "SOURCE",
        "TRANSCRIPT",
    ],
    row: |row| {
        let transcript = match (row[9].as_deref(), row[10].as_deref()) {
            (Some("true"), _) => "yes".to_string(),
            (_, Some(why)) => format!("no: {why}"),
            _ => "no".to_string(),
        };
        vec![
            cell(row, 1),
            cell(row, 2),
            cell(row, 0),
            cell(row, 3),
            cell(row, 4),
            cell(row, 5),
            cell(row, 6),
            cell(row, 7),
            cell(row, 12),
            cell(row, 8),
            transcript,
        ]
    },
    highlight_column: None,
    noun: "matching sessions",
};
