//! From drafts to rows, as the drafts are kept: a session's commands never exist twice, once
//! as [`Draft`]s and once as [`CommandRecord`]s (a dense session of 290,000 commands held
//! both: 150 MB, most of the parser's page faults).
//!
//! [`Rows::push`] takes each draft the assembler settled (see
//! [`crate::extract::Assembler::drain_settled`]), in order; [`Rows::finish`] returns the rows,
//! the session context completed with what the drafts told (the OS user of the first row's
//! prompt, when nothing else told it), and what the rows tell about the session as a whole
//! ([`RowsSummary`]). That is gathered as each row is made, while it is in the cache: a pass
//! over a dense session's rows afterwards reads them all from memory again (71,000 rows of 296
//! bytes: 3% of the parse).

use std::collections::HashMap;
use std::sync::Arc;

use sessionlake_schemas::{CommandRecord, Confidence, TimeSource};

use crate::extract::Draft;
use crate::{PARSER_VERSION, SessionContext, redact, users};

/// The command legacy agents ran the session through (see [`Rows::new`]).
const LEGACY_LOGGER: &str = "ssm-session-logger";

/// Takes a session's rows one by one, in order, as [`Keep::Stream`] makes them.
pub type RowSink = Box<dyn FnMut(CommandRecord) + Send>;

/// What [`Rows`] does with the rows it makes.
pub(crate) enum Keep {
    /// Holds them for [`Rows::finish`]: the session's rows at once.
    All,
    /// Holds none, only what they tell ([`RowsSummary`], the shells later marks give prompts
    /// first seen as bash's): the first of two passes over a session too big to hold.
    None,
    /// Gives each to a sink as it is made, with the shells of `fixes` (the first pass's
    /// [`Rows::fixes`]) already given: the second pass.
    Stream { fixes: HashMap<String, Arc<str>>, sink: RowSink },
}

impl std::fmt::Debug for Keep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Keep::All => "All",
            Keep::None => "None",
            Keep::Stream { .. } => "Stream",
        })
    }
}

/// Rows of one session, built as its drafts are settled.
#[derive(Debug)]
pub(crate) struct Rows {
    context: SessionContext,
    line_time_source: TimeSource,
    /// A legacy transcript: its logger's command and the `exit`s that closed it are dropped.
    legacy: bool,
    /// The OS user the first row's prompt shows is the session's when nothing else told it
    /// (a transcript; a stream's events name it).
    user_from_first_prompt: bool,
    /// The prompt of the first legacy logger command.
    logger_prompt: Option<String>,
    /// `exit`s held back until a later command shows they are not the session's last.
    exits: Vec<Draft>,
    /// Made at the first row, when the context is complete.
    builder: Option<RowBuilder>,
    keep: Keep,
    /// The rows ([`Keep::All`]).
    rows: Vec<CommandRecord>,
    /// The row before the next ([`Keep::None`]: it is not in `rows`).
    previous: Option<CommandRecord>,
    summary: RowsSummary,
    prompt_shells: PromptShells,
}

/// What a session's rows tell about it as a whole.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct RowsSummary {
    /// Number of rows.
    pub(crate) rows: usize,
    /// The rows' shells, in order of first appearance.
    pub(crate) shells: Vec<String>,
    /// The number of the first row of each of `shells` (from 0).
    first_rows: Vec<usize>,
    /// The shells later marks give prompts first seen as bash's ([`Keep::None`]: what the
    /// second pass gives its rows).
    pub(crate) fixes: HashMap<String, Arc<str>>,
    /// Input bytes the rows cover (the sum of their ranges).
    pub(crate) raw_bytes: u64,
    /// The rows come in the order of their times (rows without a time first): a file sorted
    /// by time can be written as they come.
    pub(crate) in_time_order: bool,
    /// The time of the last row.
    last_time: Option<i64>,
}

impl RowsSummary {
    fn add(&mut self, row: &CommandRecord) {
        if self.rows == 0 {
            self.in_time_order = true;
        }
        self.in_time_order &= row.started_at >= self.last_time;
        self.last_time = row.started_at;
        self.rows += 1;
        self.raw_bytes += row.raw_len;
        if let Some(shell) = row.shell.as_deref()
            && !self.shells.iter().any(|seen| seen == shell)
        {
            self.shells.push(shell.to_string());
            self.first_rows.push(self.rows - 1);
        }
    }
}

/// A prompt drawn before the terminal saw which shell draws it (fish's first prompt comes
/// after its greeting, without the end-of-line mark that tells fish): rows at the same prompt
/// as a row whose shell a mark told (zsh, fish) get that shell. The prompts are noted as the
/// rows are made, and the rows read again only when some bash row's prompt is a marked one.
#[derive(Debug, Default)]
struct PromptShells {
    /// Each prompt a mark told, with the shell of its first zsh or fish row.
    marked: HashMap<String, Arc<str>>,
    /// The prompts of bash rows, with the number of the first (from 0).
    bash: HashMap<String, usize>,
}

impl PromptShells {
    /// Notes `row`'s prompt; `previous` is the row before it (consecutive rows mostly share
    /// their prompt and shell, which are then noted already).
    /// `index` is the row's number (from 0).
    fn add(&mut self, row: &CommandRecord, previous: Option<&CommandRecord>, index: usize) {
        let Some(shell) = &row.shell else { return };
        if previous.is_some_and(|previous| {
            previous.prompt == row.prompt && previous.shell.as_ref() == Some(shell)
        }) {
            return;
        }
        match shell.as_ref() {
            "zsh" | "fish" if !self.marked.contains_key(&row.prompt) => {
                self.marked.insert(row.prompt.clone(), Arc::clone(shell));
            }
            "bash" if !self.bash.contains_key(&row.prompt) => {
                self.bash.insert(row.prompt.clone(), index);
            }
            _ => {}
        }
    }

    /// Returns the shell each bash prompt a mark told gets.
    fn fixes(&self) -> HashMap<String, Arc<str>> {
        self.marked
            .iter()
            .filter(|(prompt, _)| self.bash.contains_key(*prompt))
            .map(|(prompt, shell)| (prompt.clone(), Arc::clone(shell)))
            .collect()
    }

    /// Gives each bash row at a marked prompt the shell the mark told; returns whether any
    /// row changed.
    fn apply(&self, rows: &mut [CommandRecord]) -> bool {
        let fixes = self.fixes();
        if fixes.is_empty() {
            return false;
        }
        for row in rows.iter_mut() {
            fix_shell(row, &fixes);
        }
        true
    }

    /// Returns the rows' shells after [`PromptShells::apply`], in the order of their first
    /// rows, without the rows: `first` is the first row of each shell as made.
    fn shells_after_fixes(&self, first: &[(String, usize)]) -> Vec<String> {
        let fixes = self.fixes();
        let mut firsts: Vec<(usize, String)> = Vec::new();
        let mut seen = |shell: &str, index: usize| match firsts.iter_mut().find(|(_, s)| s == shell)
        {
            Some(slot) => slot.0 = slot.0.min(index),
            None => firsts.push((index, shell.to_string())),
        };
        for (shell, index) in first.iter().filter(|(shell, _)| shell != "bash") {
            seen(shell, *index);
        }
        for (prompt, index) in &self.bash {
            match fixes.get(prompt) {
                Some(shell) => seen(shell, *index),
                None => seen("bash", *index),
            }
        }
        firsts.sort();
        firsts.into_iter().map(|(_, shell)| shell).collect()
    }
}

/// Gives `row`, a bash row at a prompt of `fixes`, the shell a mark told for that prompt.
fn fix_shell(row: &mut CommandRecord, fixes: &HashMap<String, Arc<str>>) {
    if row.shell.as_deref() == Some("bash")
        && let Some(shell) = fixes.get(row.prompt.as_str())
    {
        row.shell = Some(Arc::clone(shell));
    }
}

impl Rows {
    /// Returns rows for a transcript's session with `context`. `legacy`: the transcript is an
    /// old agent's, which ran the session through a logger shell: its `ssm-session-logger`
    /// command and the `exit`s that closed it (the last ones, at the logger's prompt) are not
    /// the user's.
    pub(crate) fn new(context: SessionContext, line_time_source: TimeSource, legacy: bool) -> Self {
        Rows {
            context,
            line_time_source,
            legacy,
            user_from_first_prompt: true,
            logger_prompt: None,
            exits: Vec::new(),
            builder: None,
            keep: Keep::All,
            rows: Vec::new(),
            previous: None,
            summary: RowsSummary::default(),
            prompt_shells: PromptShells::default(),
        }
    }

    /// Returns these rows doing `keep` with what they make.
    pub(crate) fn keeping(self, keep: Keep) -> Self {
        Rows { keep, ..self }
    }

    /// Returns rows for a streamed session with `context`, complete from its events.
    pub(crate) fn streamed(context: SessionContext) -> Self {
        Rows {
            user_from_first_prompt: false,
            ..Rows::new(context, TimeSource::CloudwatchEvent, false)
        }
    }

    /// Takes the next settled draft.
    pub(crate) fn push(&mut self, draft: Draft) {
        if self.legacy {
            if draft.command.contains(LEGACY_LOGGER) {
                self.logger_prompt.get_or_insert(draft.prompt);
                return;
            }
            if draft.command.trim() == "exit" {
                self.exits.push(draft);
                return;
            }
            for exit in std::mem::take(&mut self.exits) {
                self.add(exit);
            }
        }
        self.add(draft);
    }

    /// Returns the rows, the context, completed, and what the rows tell about the session.
    pub(crate) fn finish(mut self) -> (Vec<CommandRecord>, SessionContext, RowsSummary) {
        let mut exits = std::mem::take(&mut self.exits);
        if let Some(prompt) = &self.logger_prompt {
            while exits.last().is_some_and(|exit| exit.prompt == *prompt) {
                exits.pop();
            }
        }
        for exit in exits {
            self.add(exit);
        }
        let Rows { mut rows, context, mut summary, prompt_shells, keep, .. } = self;
        match keep {
            Keep::All => {
                if prompt_shells.apply(&mut rows) {
                    summary.shells.clear();
                    for shell in rows.iter().filter_map(|row| row.shell.as_deref()) {
                        if !summary.shells.iter().any(|seen| seen == shell) {
                            summary.shells.push(shell.to_string());
                        }
                    }
                }
            }
            Keep::None => {
                let first: Vec<(String, usize)> = summary
                    .shells
                    .iter()
                    .cloned()
                    .zip(summary.first_rows.iter().copied())
                    .collect();
                summary.shells = prompt_shells.shells_after_fixes(&first);
                summary.fixes = prompt_shells.fixes();
            }
            Keep::Stream { .. } => {}
        }
        (rows, context, summary)
    }

    fn add(&mut self, draft: Draft) {
        let builder = self.builder.get_or_insert_with(|| {
            // The session's OS user is the one its first prompt shows (before any `sudo su`),
            // when neither the source nor the transcript's header told it.
            if self.user_from_first_prompt && self.context.run_as.is_none() {
                self.context.run_as = draft.user.clone();
            }
            RowBuilder::new(&self.context, self.line_time_source)
        });
        let mut row = builder.row(draft);
        self.summary.add(&row);
        match &mut self.keep {
            Keep::All => {
                self.prompt_shells.add(&row, self.rows.last(), self.summary.rows - 1);
                self.rows.push(row);
            }
            Keep::None => {
                self.prompt_shells.add(&row, self.previous.as_ref(), self.summary.rows - 1);
                self.previous = Some(row);
            }
            Keep::Stream { fixes, sink } => {
                fix_shell(&mut row, fixes);
                sink(row);
            }
        }
    }
}

/// Turns drafts into rows, in order: the session's fields shared by every row, the effective
/// user as the commands move it, each row's number.
#[derive(Debug)]
struct RowBuilder {
    session_id: Arc<str>,
    principal: Option<Arc<str>>,
    run_as: Option<Arc<str>>,
    target: Option<Arc<str>>,
    region: Option<Arc<str>>,
    account: Option<Arc<str>>,
    line_time_source: TimeSource,
    users: users::EffectiveUsers,
    /// One `Arc` per distinct user and shell, like the session's own fields.
    names: Vec<Arc<str>>,
    seq: u32,
}

impl RowBuilder {
    fn new(context: &SessionContext, line_time_source: TimeSource) -> Self {
        let shared = |value: &Option<String>| value.as_deref().map(Arc::<str>::from);
        RowBuilder {
            session_id: Arc::from(context.session_id.as_str()),
            principal: shared(&context.principal),
            run_as: shared(&context.run_as),
            target: shared(&context.target),
            region: shared(&context.region),
            account: shared(&context.account),
            line_time_source,
            users: users::EffectiveUsers::new(context.run_as.as_deref()),
            names: Vec::new(),
            seq: 0,
        }
    }

    fn shared_name(&mut self, name: &str) -> Arc<str> {
        if let Some(known) = self.names.iter().find(|known| known.as_ref() == name) {
            return Arc::clone(known);
        }
        let new: Arc<str> = Arc::from(name);
        self.names.push(Arc::clone(&new));
        new
    }

    fn row(&mut self, draft: Draft) -> CommandRecord {
        // A line typed into a REPL runs as whoever runs the REPL, and starts no shell.
        let effective_user = match draft.repl {
            Some(_) => self.users.current(),
            None => self.users.next(draft.user.as_deref(), &draft.command),
        };
        let shell = draft.shell.map(|name| self.shared_name(name));
        let program = draft.repl.map(|name| self.shared_name(name));
        let raw_offset = draft.start as u64;
        let raw_len = (draft.end - draft.start) as u64;
        let output_truncated = draft.output.truncated();
        let output_bytes = draft.output.bytes();
        let (command, command_redactions) = redact::redact_owned(draft.command);
        let (output, output_redactions) = redact::redact_owned(draft.output.into_text());
        // A command's time comes only from its own line (streamed batches). The session's
        // start (CloudTrail) belongs to the session row: giving it to a command would be a
        // made-up time.
        let time_source =
            if draft.time.is_some() { self.line_time_source } else { TimeSource::None };
        // A cut command is not all that ran: the row says it is not sure of it.
        let confidence = if draft.command_cut { Confidence::Low } else { draft.confidence };
        let seq = self.seq;
        self.seq += 1;
        CommandRecord {
            session_id: Arc::clone(&self.session_id),
            seq,
            started_at: draft.time,
            time_source,
            principal: self.principal.clone(),
            run_as: self.run_as.clone(),
            target: self.target.clone(),
            region: self.region.clone(),
            account: self.account.clone(),
            cwd: draft.cwd,
            prompt: draft.prompt,
            command,
            output,
            output_truncated,
            output_bytes,
            raw_offset,
            raw_len,
            redactions: command_redactions + output_redactions,
            confidence,
            parser_version: PARSER_VERSION,
            effective_user,
            shell,
            program,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::extract::Output;

    fn draft(prompt: &str, user: Option<&str>, command: &str) -> Draft {
        Draft {
            prompt: prompt.to_string(),
            cwd: None,
            user: user.map(str::to_string),
            command: command.to_string(),
            output: Output::default(),
            start: 0,
            end: 0,
            time: None,
            confidence: Confidence::High,
            command_cut: false,
            shell: Some("bash"),
            repl: None,
        }
    }

    fn commands(rows: &[CommandRecord]) -> Vec<&str> {
        rows.iter().map(|row| row.command.as_str()).collect()
    }

    #[test]
    fn test_legacy_logger_noise_is_dropped_as_drafts_come() {
        // A legacy agent's session: the logger shell's command, the user's, and the `exit`s
        // that closed the user's shell and the logger's. An `exit` followed by more commands
        // is the user's, whatever prompt it has.
        let logger = "sh-4.2$ ";
        let user = "[ec2-user@ip-10-0-0-12 ~]$ ";
        // (The drafts' prompts and commands, then the rows' commands.)
        type Case<'a> = (&'a [(&'a str, &'a str)], &'a [&'a str]);
        let cases: [Case; 3] = [
            (
                &[
                    (logger, "script -qf /var/log/ssm-session-logger.log"),
                    (user, "ls"),
                    (user, "exit"),
                    (logger, "exit"),
                ],
                &["ls", "exit"],
            ),
            (
                &[(logger, "exec ssm-session-logger"), (logger, "exit"), (user, "id")],
                &["exit", "id"],
            ),
            (&[(user, "exit"), (user, "exit")], &["exit", "exit"]),
        ];
        for (drafts, expected) in cases {
            let mut rows = Rows::new(SessionContext::new("s"), TimeSource::None, true);
            for (prompt, command) in drafts {
                rows.push(draft(prompt, None, command));
            }
            let (rows, ..) = rows.finish();
            assert_eq!(commands(&rows), *expected, "{drafts:?}");
            let seqs: Vec<u32> = rows.iter().map(|row| row.seq).collect();
            assert_eq!(seqs, (0..expected.len() as u32).collect::<Vec<_>>(), "{drafts:?}");
        }
    }

    #[test]
    fn test_a_prompt_a_mark_told_later_gives_its_shell_to_earlier_rows() {
        let with_shell = |prompt: &str, shell: &'static str, command: &str| Draft {
            shell: Some(shell),
            end: 10,
            ..draft(prompt, None, command)
        };
        let fish = "alice@host ~> ";
        let zsh = "host% ";
        // (The drafts' prompts, shells and commands; the rows' shells; the session's shells.)
        type Case<'a> = (&'a [(&'a str, &'static str, &'a str)], &'a [&'a str], &'a [&'a str]);
        let cases: [Case; 4] = [
            // fish's first prompt, after its greeting, without its mark.
            (
                &[(fish, "bash", "ls"), (fish, "bash", "id"), (fish, "fish", "pwd")],
                &["fish", "fish", "fish"],
                &["fish"],
            ),
            // The first mark at a prompt stands; another prompt's bash rows stay bash.
            (
                &[
                    ("$ ", "bash", "zsh"),
                    (zsh, "zsh", "ls"),
                    (zsh, "fish", "x"),
                    ("$ ", "bash", "y"),
                ],
                &["bash", "zsh", "fish", "bash"],
                &["bash", "zsh", "fish"],
            ),
            (
                &[(zsh, "bash", "ls"), ("$ ", "bash", "id"), (zsh, "fish", "a"), (zsh, "zsh", "b")],
                &["fish", "bash", "fish", "zsh"],
                &["fish", "bash", "zsh"],
            ),
            (&[], &[], &[]),
        ];
        for (drafts, row_shells, session_shells) in cases {
            let mut rows = Rows::new(SessionContext::new("s"), TimeSource::None, false);
            for (prompt, shell, command) in drafts {
                rows.push(with_shell(prompt, shell, command));
            }
            let (rows, _, summary) = rows.finish();
            let shells: Vec<_> = rows.iter().map(|row| row.shell.as_deref().unwrap()).collect();
            assert_eq!(shells, *row_shells, "{drafts:?}");
            assert_eq!(summary.shells, *session_shells, "{drafts:?}");
            assert_eq!(summary.rows, drafts.len(), "{drafts:?}");
            assert_eq!(summary.raw_bytes, 10 * drafts.len() as u64, "{drafts:?}");
        }
    }

    #[test]
    fn test_the_first_rows_prompt_tells_the_os_user_of_a_transcript_only() {
        let prompt = "[ec2-user@ip-10-0-0-12 ~]$ ";
        let mut rows = Rows::new(SessionContext::new("s"), TimeSource::None, false);
        rows.push(draft(prompt, Some("ec2-user"), "sudo su -"));
        rows.push(draft("[root@ip-10-0-0-12 ~]# ", Some("root"), "id"));
        let (rows, context, _) = rows.finish();
        assert_eq!(context.run_as.as_deref(), Some("ec2-user"));
        let users: Vec<_> = rows.iter().map(|row| row.effective_user.as_deref()).collect();
        assert_eq!(users, [Some("ec2-user"), Some("root")]);
        assert!(rows.iter().all(|row| row.run_as.as_deref() == Some("ec2-user")));
        // A stream's events name the OS user: a prompt does not.
        let mut streamed = Rows::streamed(SessionContext::new("s"));
        streamed.push(draft(prompt, Some("ec2-user"), "ls"));
        let (rows, context, _) = streamed.finish();
        assert_eq!(context.run_as, None);
        assert_eq!(rows[0].run_as, None);
    }
}
