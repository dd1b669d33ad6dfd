//! From finished terminal lines to commands: find prompts, join continuation lines, drop what
//! the shell did not run (cancelled lines, empty lines, output that imitates a prompt), and
//! collect each command's output.

use std::collections::VecDeque;

use sessionlake_schemas::Confidence;

use crate::prompt::{self, Prompt, floor_char_boundary};
use crate::{repl, syntax};

/// A finished line, from any input form.
#[derive(Debug, Clone)]
pub struct Line {
    /// What the line showed.
    pub text: String,
    /// Byte range in the raw input.
    pub start: usize,
    /// End of that range.
    pub end: usize,
    /// Drawn by the shell's line editor (inside a bracketed-paste region): a prompt and what
    /// was typed, possibly several lines of one multi-line buffer joined with `\n`.
    pub editor: bool,
    /// Time of the line, when the input has one (µs).
    pub time: Option<i64>,
    /// Where the line editor opened after drawing its prompt (zsh): the text before is the
    /// prompt, whatever it looks like.
    pub prompt_end: Option<usize>,
    /// The line editor was abandoned on this line (Ctrl-C without a `^C` echo: zsh).
    pub abandoned: bool,
    /// The shell whose editor drew the line, as the terminal could tell.
    pub shell: Option<&'static str>,
}

/// How much the input can tell about who drew a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Evidence {
    /// The shell's line editor marks every line it draws (bracketed paste, bash ≥ 5.1): a
    /// prompt-shaped line it did not mark was printed by a program.
    EditorMarks,
    /// Raw terminal bytes without such marks (bash 4, dash): a prompt-shaped line is a command.
    Raw,
    /// Stripped stream (CloudWatch streaming): carriage returns and escapes are gone, prompts
    /// may repeat where the editor redrew the line; nothing tells a prompt from imitated output.
    Stripped,
}

/// A command found in the lines.
#[derive(Debug, Clone, PartialEq)]
pub struct Draft {
    /// The prompt before it.
    pub prompt: String,
    /// The cwd the prompt shows.
    pub cwd: Option<String>,
    /// The OS user the prompt shows.
    pub user: Option<String>,
    /// The command text, continuation lines joined with `\n`.
    pub command: String,
    /// What it printed.
    pub output: Output,
    /// Byte range: from the prompt line to the end of the output.
    pub start: usize,
    /// End of that range.
    pub end: usize,
    /// Time of the command's line.
    pub time: Option<i64>,
    /// How sure we are.
    pub confidence: Confidence,
    /// The command was longer than [`COMMAND_CAP`]: its text is a prefix.
    pub command_cut: bool,
    /// The shell that read it, as the terminal or the prompt tells.
    pub shell: Option<&'static str>,
    /// The REPL it was typed into (see [`crate::repl`]); `None` for a shell command.
    pub repl: Option<&'static str>,
}

/// Largest output kept per command, in bytes; [`Output::truncated`] tells when it was cut.
pub const OUTPUT_CAP: usize = 16 * 1024;

/// Largest command text kept, in bytes (an unclosed quote followed by a gigabyte of `> `
/// lines must not become a gigabyte): the rest of a longer command is cut, the draft says so
/// ([`Draft::command_cut`]) and its byte range still covers all of it.
pub const COMMAND_CAP: usize = 64 * 1024;

/// A command's output lines joined with `\n`, kept up to [`OUTPUT_CAP`] bytes (cut at a
/// character boundary); the full size is still counted. A command that prints a gigabyte costs
/// 16 KiB here.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Output {
    text: String,
    lines: usize,
    bytes: u64,
    truncated: bool,
}

impl Output {
    /// Appends one line.
    pub fn push(&mut self, line: impl AsRef<str>) {
        let line = line.as_ref();
        let separator = usize::from(self.lines > 0);
        self.lines += 1;
        self.bytes += (separator + line.len()) as u64;
        if self.truncated {
            return;
        }
        let room = OUTPUT_CAP - self.text.len();
        if separator + line.len() <= room {
            if separator == 1 {
                self.text.push('\n');
            }
            self.text.push_str(line);
            return;
        }
        self.truncated = true;
        if room > 0 {
            if separator == 1 {
                self.text.push('\n');
            }
            self.text.push_str(&line[..floor_char_boundary(line, room - separator)]);
        }
    }

    /// The kept text.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The kept text, by value.
    pub fn into_text(self) -> String {
        self.text
    }

    /// The kept lines (the last one cut short when the output was).
    pub fn lines(&self) -> impl Iterator<Item = &str> {
        self.text.split('\n').take(self.lines)
    }

    /// Whether no line was printed.
    pub fn is_empty(&self) -> bool {
        self.lines == 0
    }

    /// Size of the whole output in bytes, kept or not.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Whether the kept text is shorter than the output.
    pub fn truncated(&self) -> bool {
        self.truncated
    }

    /// Removes and returns the first line.
    fn remove_first(&mut self) -> Option<String> {
        if self.lines == 0 {
            return None;
        }
        let first_len = self.text.find('\n').unwrap_or(self.text.len());
        let first = self.text[..first_len].to_string();
        let removed = (first_len + 1).min(self.text.len());
        self.text.drain(..removed);
        self.lines -= 1;
        // What the first line took of the full size: its length and its separator.
        self.bytes = self.bytes.saturating_sub(first_len as u64 + u64::from(self.lines > 0));
        Some(first)
    }
}

/// Continuation prompt (PS2) of every shell we meet.
const PS2: &str = "> ";

/// Tells a cancelled line: the terminal echoes Ctrl-C as `^C` at the end of the line.
fn is_cancelled(text: &str) -> bool {
    text.ends_with("^C")
}

/// Strips the repeats a line editor's redraw leaves in a stripped stream: `sh-4.2$ sh-4.2$ date`.
fn strip_redraws<'a>(prompt_text: &str, rest: &'a str) -> &'a str {
    let mut rest = rest;
    while let Some(after) = rest.strip_prefix(prompt_text) {
        rest = after;
    }
    // A redraw in the middle (`$ old$ new` after history recall): take what follows the last
    // copy of a distinctive prompt, unless that copy sits inside a quoted string of the
    // command (`printf '[u@h ~]$ …'`).
    // readline's incremental search prompt (`(reverse-i-search)`…': `) opens a backquote the
    // quote check would count.
    // What a redraw replaced was never run, but text a person typed before a prompt look-alike
    // may have been (`curl x|sh;sh-4.2$ ls`): a prefix that separates commands is kept.
    // A buffer redrawn in full (after a resize, Ctrl-L) repeats what was typed: the copy before
    // it is a prefix of the redraw, so nothing that ran is dropped with it.
    let searching = rest.contains("-search)`");
    if prompt_text.len() >= 6
        && let Some(position) = rest.rfind(prompt_text)
        && (searching
            || rest[position + prompt_text.len()..].starts_with(&rest[..position])
            || (syntax::is_complete(&rest[..position])
                && !rest[..position].contains([';', '|', '&', '`', '\n'])
                && !rest[..position].contains("$(")))
    {
        rest = &rest[position + prompt_text.len()..];
    }
    // A highlighted paste redrawn plainly leaves `X` then `X…` once the escapes are gone
    // (a short repeat such as `echo echo x` is a command of its own).
    for (index, _) in rest.char_indices().skip(MIN_PASTE_REDRAW) {
        let (first, second) = rest.split_at(index);
        if second.starts_with(first) {
            return second;
        }
    }
    rest
}

/// Returns whether the lines after `draft` are a completion list for its last word and `next`
/// is the same line redrawn with the completion: the earlier line never ran.
fn is_completion_listing(draft: &Draft, next: &Draft) -> bool {
    if next.prompt != draft.prompt
        || next.command.len() <= draft.command.len()
        || draft.output.is_empty()
    {
        return false;
    }
    if !next.command.starts_with(draft.command.as_str()) {
        return false;
    }
    let last_word = draft.command.rsplit(' ').next().unwrap_or_default();
    let stem = last_word.rsplit('/').next().unwrap_or_default();
    let completed = next.command.rsplit(' ').next().unwrap_or_default();
    let completed_stem = completed.rsplit('/').next().unwrap_or_default();
    let candidates: Vec<&str> = draft.output.text().split_whitespace().collect();
    // A list of two or more names that all start with the typed word, one of which the next
    // line completed it to.
    !stem.is_empty()
        && candidates.len() >= 2
        && candidates.iter().all(|candidate| candidate.starts_with(stem))
        && candidates.contains(&completed_stem)
}

/// Shortest text whose immediate repeat is taken for a paste redraw.
const MIN_PASTE_REDRAW: usize = 8;

/// Most lines of one pasted block recognised in a stripped stream.
const MAX_PASTE_LINES: usize = 64;

/// Rejoins the lines of a block pasted into bash >= 5.1 in a stripped stream. readline shows the
/// paste highlighted, moves the cursor up and redraws it plainly; without the escapes and CRs
/// that reads `P h1`, `h2`, …, `hn` + `h1`, `h2`, …, `hn`. The block becomes one line
/// `P h1\nh2\n…\nhn`, which `assemble` splits into commands where the shell would.
pub fn merge_stripped_pastes(lines: &mut Vec<Line>) {
    // In place, in one pass: the lines are read at `read` and onwards (`paste_at` only looks
    // ahead) and kept at `write`, which never passes `read` (removing each merged range where
    // it was moved every later line, quadratic in a long session).
    let mut read = 0;
    let mut write = 0;
    while read < lines.len() {
        let mut consumed = 1;
        if let Some((text, merged)) = paste_at(lines, read) {
            let end = lines[read + merged - 1].end;
            lines[read].text = text;
            lines[read].end = end;
            consumed = merged;
        }
        lines.swap(write, read);
        write += 1;
        read += consumed;
    }
    lines.truncate(write);
}

/// Returns the merged text and the number of lines a paste starting at `index` spans.
fn paste_at(lines: &[Line], index: usize) -> Option<(String, usize)> {
    let line = &lines[index].text;
    let prompt = prompt::known_prompt(line)?;
    let prompt_text = &line[..prompt.len];
    let first = strip_redraws(prompt_text, &line[prompt.len..]);
    if first.len() < 3 {
        return None;
    }
    let last_candidate = (index + MAX_PASTE_LINES).min(lines.len());
    // The redraw of `h1` starts either at the end of the last highlighted line or on a line of
    // its own, depending on where the cursor was when readline moved it up.
    let closing = (index + 1..last_candidate).find(|&j| lines[j].text.ends_with(first))?;
    let closing_text = &lines[closing].text;
    let mut pasted: Vec<&str> = lines[index + 1..closing].iter().map(|l| l.text.as_str()).collect();
    let own_line = closing_text.len() == first.len();
    if !own_line {
        pasted.push(&closing_text[..closing_text.len() - first.len()]);
    }
    // A prompt among the lines means commands ran in between, not one paste redrawn.
    if pasted.is_empty() || pasted.iter().any(|text| prompt::known_prompt(text).is_some()) {
        return None;
    }
    // Then `h2`…`hn` drawn again.
    let redraw_start = closing + 1;
    let redraw_len = pasted.len();
    let redraw = lines.get(redraw_start..redraw_start + redraw_len)?;
    if !redraw.iter().zip(&pasted).all(|(line, text)| line.text == *text) {
        return None;
    }
    let text = format!("{prompt_text}{first}\n{}", pasted.join("\n"));
    Some((text, redraw_start + redraw_len - index))
}

/// Blanks after a one-character mark that tell an end-of-line mark from a bare prompt.
const EOL_MARK_BLANKS: &[u8] = b"        ";

/// Finds the prompt of `line` given the evidence the input has.
fn find_prompt(line: &Line, evidence: Evidence, learned: &[String]) -> Option<Prompt> {
    // readline's `show-mode-in-prompt` puts the vi mode (`(ins)`, `(cmd)` by default) first.
    if let Some(found) = prompt::vi_mode_prompt(&line.text) {
        return Some(found);
    }
    if let Some(end) = editor_prompt_end(line) {
        // A bash prompt after what a program left without a newline starts there.
        if let Some(after) = prompt::known_prompt(&line.text[end..])
            && end + after.len < line.text.len()
        {
            return Some(Prompt { len: end + after.len, ..after });
        }
        return Some(prompt::described(&line.text[..end]));
    }
    if let Some(prompt) = prompt::known_prompt(&line.text) {
        // A bare `$ ` or `# ` is weak evidence (a Markdown heading, a shell snippet in
        // output): once the session has shown its real prompt, only that counts.
        let bare = prompt.len <= 2;
        // zsh's and fish's end-of-line mark (`%`, `#`, `⏎`, then blanks to the edge) left on
        // the line when the stream lost its CRs: no prompt.
        if bare && line.text.as_bytes()[prompt.len..].starts_with(EOL_MARK_BLANKS) {
            return None;
        }
        let contradicted =
            bare && !learned.is_empty() && !learned.iter().any(|p| p == &line.text[..prompt.len]);
        if !(contradicted && evidence != Evidence::EditorMarks) {
            return Some(prompt);
        }
    }
    if let Some(known) =
        learned.iter().filter(|p| line.text.starts_with(p.as_str())).max_by_key(|p| p.len())
    {
        return Some(prompt::described(known));
    }
    // In a stream, a line the agent left whole may show the editor's marks too.
    if line.editor {
        return prompt::editor_prompt(&line.text);
    }
    None
}

/// fish draws the lines of a multi-line buffer after the first under its input, indented
/// past the prompt's width (and by 4 per block level), and keeps none of that indentation in
/// the buffer: when every further line is indented at least that far, returns the buffer
/// without it. (bash shows further lines at column 0, as typed.)
fn dedent_continuations(prompt_text: &str, rest: &str) -> Option<String> {
    use unicode_width::UnicodeWidthStr as _;
    if !rest.contains('\n') {
        return None;
    }
    let prompt_width = prompt_text.rsplit('\n').next().unwrap_or_default().width();
    let mut lines = rest.split('\n');
    let first = lines.next()?;
    let further: Vec<&str> = lines.collect();
    let indented = |line: &&str| line.len() - line.trim_start_matches(' ').len() >= prompt_width;
    if prompt_width == 0 || further.is_empty() || !further.iter().all(indented) {
        return None;
    }
    let mut text = first.to_string();
    for line in further {
        text.push('\n');
        text.push_str(line.trim_start_matches(' '));
    }
    Some(text)
}

/// Where the prompt of a line ends when the terminal saw the line editor open after it.
/// The length of the session's prompt on a line whose editor opened after more than it: zsh
/// drew its prompt and a buffer it filled itself (`HIST_VERIFY` puts the expansion of `!!`,
/// `!$` or `^old^new` there to be run by a second Enter), then opened its editor after them.
/// The filled text is part of the command. (Only read so after such an expansion: a prompt
/// may also grow past one seen before, `➜  infra ` then `➜  infra git:(main) ✗ `.)
fn prefilled_prompt(line: &Line, learned: &[String]) -> Option<usize> {
    // (With nothing typed after the filled buffer, no region was drawn: only where the
    // editor opened tells.)
    let end = line.prompt_end.filter(|&end| end > 0 && line.text.is_char_boundary(end))?;
    learned
        .iter()
        .filter(|prompt| prompt.len() >= 2 && prompt.len() < end)
        .filter(|prompt| line.text[..end].starts_with(prompt.as_str()))
        .filter(|prompt| !line.text[prompt.len()..end].trim().is_empty())
        .map(String::len)
        .max()
}

/// Whether a command only asked for a history expansion that `HIST_VERIFY` put into the next
/// buffer instead of running it: a `!` event (`!!`, `!$`, `!-2`, `!ls`) or `^old^new`, and
/// nothing printed (without `HIST_VERIFY` the shell prints the expanded command). A `!`
/// before a blank, `=` or `(` is no event (`[ ! -d .git ]`): such a command is not hidden.
fn is_verified_expansion(draft: &Draft) -> bool {
    let command = draft.command.as_bytes();
    let has_event = || {
        command.windows(2).any(|pair| {
            pair[0] == b'!' && (pair[1].is_ascii_alphanumeric() || b"!$^*-?#".contains(&pair[1]))
        })
    };
    draft.repl.is_none()
        && draft.output.is_empty()
        && (command.first() == Some(&b'^') || has_event())
}

/// Whether `filled` (what follows the prompt on the line after `expansion`) can be what
/// `expansion` expands to: `^old^new` puts `new` in; an event inside a command (`wc -l !$`)
/// keeps the text before it; a command of events alone (`!!`, `!ls`) can be anything.
fn fills_expansion(expansion: &str, filled: &str) -> bool {
    if let Some(substitution) = expansion.strip_prefix('^') {
        let new = substitution.split('^').nth(1).unwrap_or_default();
        return filled.contains(new);
    }
    let before_event = expansion.split('!').next().unwrap_or_default();
    filled.starts_with(before_event)
}

fn editor_prompt_end(line: &Line) -> Option<usize> {
    line.prompt_end.filter(|&end| line.editor && end > 0 && line.text.is_char_boundary(end))
}

/// Whether a prompt is a continuation prompt (PS2: `> `, zsh's `for> `, `heredoc> `,
/// `quote> `) rather than one the session started commands at.
fn is_continuation_prompt(prompt_text: &str, learned: &[String]) -> bool {
    prompt_text.trim_end().ends_with('>') && !learned.iter().any(|p| p == prompt_text)
}

/// Whether a line starts with a prompt of the session's shell (one it ran commands at, or a
/// known one): the end of a REPL.
fn shows_shell_prompt(line: &Line, learned: &[String]) -> bool {
    editor_prompt_end(line).is_some()
        || learned.iter().any(|prompt| line.text.starts_with(prompt.as_str()))
        || prompt::known_prompt(&line.text).is_some_and(|found| found.len > 2)
}

/// Takes a line while `program` reads lines: what was typed at its prompt is a `repl` row,
/// anything else what it printed.
fn read_repl_line(
    program: &'static str,
    line: &Line,
    evidence: Evidence,
    current: &mut Option<Draft>,
    drafts: &mut Vec<Draft>,
    previewed: &mut Option<PreviewedTyping>,
) {
    let previews = program == "node" && evidence == Evidence::Stripped;
    if previews && read_previewed_keys(line, current, previewed) {
        return;
    }
    if evidence == Evidence::Stripped
        && let Some((lines, printed)) = repl::last_redraw(program, &line.text)
    {
        for typed in lines {
            start_repl_line(program, typed, line, evidence, current, drafts);
        }
        if let Some(draft) = current.as_mut().filter(|_| !printed.is_empty()) {
            draft.output.push(printed);
        }
        return;
    }
    let Some(text) = repl::input(program, &line.text) else {
        if let Some(draft) = current.as_mut() {
            draft.output.push(&line.text);
            draft.end = line.end;
        }
        return;
    };
    let prompt = &line.text[..line.text.len() - text.len()];
    if previews {
        start_repl_line(program, repl::Typed { prompt, text }, line, evidence, current, drafts);
        *previewed = current
            .as_ref()
            .map(|draft| PreviewedTyping { typed_len: draft.command.len(), ..Default::default() });
        return;
    }
    start_repl_line(program, repl::Typed { prompt, text }, line, evidence, current, drafts);
}

/// node's typing in a stripped stream: the keys typed after its first one are glued to the
/// previews drawn between them, one streamed line per preview (see [`repl::node_value_len`]):
/// `> x`, `21 `, `21* 2`, `42`, then the result `42` after Enter. Each line that starts with
/// a value and goes on adds what follows the value to the command; a line that is a value
/// alone is the last preview, and the reading holds only if the next line repeats it (the
/// result). Otherwise the lines were output and the command is what its prompt line showed.
#[derive(Debug, Default)]
struct PreviewedTyping {
    /// Length of the command as its prompt line showed it.
    typed_len: usize,
    /// The lines read as previews with keys, output if the reading does not hold.
    held: Vec<String>,
    /// The value alone on the last line, which the result must repeat.
    last_value: Option<String>,
    /// How many lines had keys after their preview.
    keys_lines: usize,
}

/// Reads `line` as a preview of node's, with keys typed after it; returns whether it was.
fn read_previewed_keys(
    line: &Line,
    current: &mut Option<Draft>,
    previewed: &mut Option<PreviewedTyping>,
) -> bool {
    let Some(typing) = previewed.as_mut() else { return false };
    let Some(draft) = current.as_mut() else {
        *previewed = None;
        return false;
    };
    let value_len = repl::node_value_len(&line.text);
    let keys = &line.text[value_len..];
    if repl::input("node", &line.text).is_none()
        && value_len > 0
        && draft.command.len() + keys.len() < COMMAND_CAP
    {
        // A value alone and then another with keys: the keys after the first were blanks
        // (the end of a streamed line loses its blanks).
        let blank_keys = typing.last_value.is_some() && !keys.is_empty();
        if typing.last_value.is_none() || blank_keys {
            if blank_keys {
                typing.last_value = None;
                typing.keys_lines += 1;
                draft.command.push(' ');
            }
            if keys.is_empty() {
                typing.last_value = Some(line.text.clone());
            } else {
                draft.command.push_str(keys);
                typing.keys_lines += 1;
            }
            typing.held.push(line.text.clone());
            return true;
        }
    }
    // The result repeats the last preview; or there were several lines of keys (the last
    // preview is not drawn when the keys come faster than node evaluates them, nor for what
    // it cannot evaluate without side effects: `console.log`, `n += 5`). A single line of a
    // value and text is not enough: a command's output can look so (`42 apples`).
    let confirmed =
        typing.last_value.as_deref() == Some(line.text.as_str()) || typing.keys_lines >= 2;
    settle_previewed(previewed, current, confirmed);
    false
}

/// Ends the reading of node's previews: if it did not hold, the command is what its prompt
/// line showed and the lines read as previews are output.
fn settle_previewed(
    previewed: &mut Option<PreviewedTyping>,
    current: &mut Option<Draft>,
    confirmed: bool,
) {
    let (Some(typing), Some(draft)) = (previewed.take(), current.as_mut()) else { return };
    if !confirmed {
        draft.command.truncate(typing.typed_len);
        for held in &typing.held {
            draft.output.push(held);
        }
    }
    // (The completion previews run across the lines: read once the keys are all there.)
    if let std::borrow::Cow::Owned(command) = repl::without_completion_previews(&draft.command) {
        draft.command = command;
    }
}

/// Starts the row of a line typed at a REPL's prompt.
fn start_repl_line(
    program: &'static str,
    typed: repl::Typed<'_>,
    line: &Line,
    evidence: Evidence,
    current: &mut Option<Draft>,
    drafts: &mut Vec<Draft>,
) {
    let typed_text = typed.text;
    // `^D` at the prompt is the end of input (the mysql client echoes it), not a line.
    if typed_text.trim().is_empty() || is_cancelled(typed_text) || typed_text.starts_with("^D") {
        return;
    }
    if let Some(done) = current.take() {
        keep(drafts, done);
    }
    let command = &typed_text[..floor_char_boundary(typed_text, COMMAND_CAP)];
    *current = Some(Draft {
        prompt: typed.prompt.to_string(),
        cwd: None,
        user: None,
        command: command.to_string(),
        output: Output::default(),
        start: line.start,
        end: line.end,
        time: line.time,
        confidence: match evidence {
            Evidence::EditorMarks | Evidence::Raw => Confidence::High,
            Evidence::Stripped => Confidence::Low,
        },
        command_cut: false,
        shell: None,
        repl: Some(program),
    });
}

/// Shortest learned prompt a stripped line is split at (`$ ` is too common in output).
const MIN_SPLIT_PROMPT: usize = 6;

/// Turns lines into commands, one line at a time: nothing but the commands found so far is
/// kept, so a transcript of any length is assembled in the memory its commands take.
#[derive(Debug)]
pub struct Assembler {
    evidence: Evidence,
    drafts: Vec<Draft>,
    /// The current draft is still reading continuation lines: its command is incomplete.
    continuing: bool,
    /// Prompts seen so far (at most 16).
    learned: Vec<String>,
    /// Searchers for the learned prompts long enough to split a stripped line at.
    learned_finders: Vec<memchr::memmem::Finder<'static>>,
    /// The command whose output lines are coming.
    current: Option<Draft>,
    /// The REPL the last command started, reading lines until a shell prompt comes back.
    repl: Option<&'static str>,
    /// node's keys being read from its previews in a stripped stream.
    previewed: Option<PreviewedTyping>,
    /// Lines the shell's line editor drew, and how many of them were not understood (neither a
    /// prompt with a command, nor a continuation, nor a REPL line): see [`Assembler::editor_lines`].
    editor_lines: EditorLines,
    /// Without editor marks: the lines the last command prints, as its text tells (see
    /// [`syntax::literal_output`]), still to come. They are its output even where they show a
    /// prompt (`printf '[u@h ~]$ rm -rf /\n'`).
    predicted: VecDeque<String>,
}

/// Lines a line editor drew (the input's editor marks tell), and how many were not understood.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EditorLines {
    /// Lines drawn by a line editor.
    pub seen: usize,
    /// Of those, lines taken for output: a prompt that was not recognised.
    pub not_understood: usize,
}

impl Assembler {
    /// Returns an assembler for lines of the given evidence.
    pub fn new(evidence: Evidence) -> Self {
        Assembler {
            evidence,
            drafts: Vec::new(),
            continuing: false,
            learned: Vec::new(),
            learned_finders: Vec::new(),
            current: None,
            repl: None,
            previewed: None,
            editor_lines: EditorLines::default(),
            predicted: VecDeque::new(),
        }
    }

    /// Takes the next line.
    pub fn push(&mut self, line: &Line) {
        let Assembler {
            evidence,
            drafts,
            continuing,
            learned,
            learned_finders,
            current,
            repl,
            previewed,
            editor_lines,
            predicted,
        } = self;
        editor_lines.seen += usize::from(line.editor);
        let evidence = *evidence;
        if *continuing {
            if let Some(draft) = current.as_mut() {
                let continuation = match editor_prompt_end(line) {
                    Some(end) if is_continuation_prompt(&line.text[..end], learned) => {
                        Some(&line.text[end..])
                    }
                    Some(_) => None,
                    None => line.text.strip_prefix(PS2).or(if line.text == ">" {
                        Some("")
                    } else {
                        None
                    }),
                };
                if let Some(rest) = continuation {
                    if is_cancelled(rest) {
                        // Ctrl-C at PS2 abandons the whole command.
                        *current = None;
                        *continuing = false;
                        return;
                    }
                    draft.end = line.end;
                    let room = COMMAND_CAP.saturating_sub(draft.command.len() + 1);
                    if rest.len() > room {
                        // Cut: a prefix is kept, and the lines that follow count as output.
                        if room > 0 {
                            draft.command.push('\n');
                            draft.command.push_str(&rest[..floor_char_boundary(rest, room)]);
                        }
                        draft.command_cut = true;
                        *continuing = false;
                        return;
                    }
                    draft.command.push('\n');
                    draft.command.push_str(rest);
                    *continuing = !syntax::is_complete(&draft.command);
                    return;
                }
            }
            *continuing = false;
        }
        if let Some(expected) = predicted.pop_front() {
            if line.text.trim_end_matches(' ') == expected.trim_end_matches(' ') {
                if let Some(draft) = current.as_mut() {
                    draft.output.push(&line.text);
                    draft.end = line.end;
                }
                return;
            }
            predicted.clear();
        }

        // A stripped stream glues a prompt to output that had no final newline
        // (`Password: [u@h ~]$ echo …`): the prompt starts a line of its own.
        let split_line;
        let mut line = line;
        // The prompt of `line`, once looked for (each line's is looked for once).
        let mut found = None;
        if evidence == Evidence::Stripped
            && found.insert(find_prompt(line, evidence, learned)).is_none()
            && let Some(position) =
                learned_finders.iter().filter_map(|finder| finder.find(line.text.as_bytes())).min()
            && position > 0
        {
            if let Some(program) = *repl {
                // What a REPL showed before the shell's prompt came back (irb's last line,
                // glued to the prompt by the moves the agent deleted).
                let before = Line { text: line.text[..position].to_string(), ..line.clone() };
                read_repl_line(program, &before, evidence, current, drafts, previewed);
            } else if let Some(draft) = current.as_mut() {
                draft.output.push(&line.text[..position]);
            }
            // Where the editor opened counts from the line's new start.
            split_line = Line {
                text: line.text[position..].to_string(),
                prompt_end: line.prompt_end.and_then(|end| end.checked_sub(position)),
                ..line.clone()
            };
            line = &split_line;
            found = None;
        }
        if let Some(program) = *repl {
            if !shows_shell_prompt(line, learned) {
                read_repl_line(program, line, evidence, current, drafts, previewed);
                return;
            }
            *repl = None;
            settle_previewed(previewed, current, false);
        }
        // After a history expansion that printed nothing, zsh's `HIST_VERIFY` may have put
        // it into the next buffer: that line runs it, the expansion did not run.
        let verified =
            current.as_ref().filter(|draft| is_verified_expansion(draft)).and_then(|draft| {
                let prompt_len = prefilled_prompt(line, learned)?;
                fills_expansion(&draft.command, &line.text[prompt_len..]).then_some(prompt_len)
            });
        // With editor marks, a line the editor did not draw is output whatever it shows: its
        // prompt is not looked for (most lines of a transcript are such output).
        let prompt = if let Some(prompt_len) = verified {
            Some(prompt::described(&line.text[..prompt_len]))
        } else if evidence == Evidence::EditorMarks && !line.editor {
            None
        } else {
            found.unwrap_or_else(|| find_prompt(line, evidence, learned))
        };
        let is_shell_line = match (&prompt, evidence) {
            (None, _) => false,
            _ if verified.is_some() => true,
            (Some(_), Evidence::EditorMarks) => line.editor,
            (Some(_), _) => true,
        };
        if !is_shell_line {
            editor_lines.not_understood += usize::from(line.editor);
            if let Some(draft) = current.as_mut() {
                draft.output.push(&line.text);
                draft.end = line.end;
            }
            return;
        }
        let Some(prompt) = prompt else { return };
        // (The expansion `HIST_VERIFY` put into this buffer did not run.)
        if let Some(done) = current.take()
            && verified.is_none()
        {
            keep(drafts, done);
        }
        let prompt_text = &line.text[..prompt.len];
        if !learned.iter().any(|p| p == prompt_text) && learned.len() < 16 {
            if prompt_text.len() >= MIN_SPLIT_PROMPT {
                learned_finders.push(memchr::memmem::Finder::new(prompt_text).into_owned());
            }
            learned.push(prompt_text.to_string());
        }
        let mut rest = &line.text[prompt.len..];
        if evidence == Evidence::Stripped {
            // (readline's wrap spaces are already gone: see `stripped`.)
            rest = strip_redraws(prompt_text, rest);
        }
        // The editor redrew its prompt further down (after a completion list, Ctrl-L): what
        // came before the last redraw is not part of the buffer.
        if rest.contains('\n')
            && let Some(position) = rest.rfind(&format!("\n{prompt_text}"))
        {
            rest = &rest[position + 1 + prompt_text.len()..];
        }
        // In a stripped stream `^C` is followed by whatever the redraw left on the line.
        let cancelled = is_cancelled(rest)
            || line.abandoned
            || (evidence == Evidence::Stripped && rest.contains("^C"));
        if rest.trim().is_empty() || cancelled {
            return;
        }
        let confidence = match evidence {
            Evidence::EditorMarks | Evidence::Raw => Confidence::High,
            Evidence::Stripped => Confidence::Low,
        };
        // One editor buffer may hold several commands (a pasted block) or one command over
        // several lines (a pasted loop): split where the shell would.
        // Only fish indents the further lines of a buffer: another shell's are as typed (an
        // indented heredoc or a continued `curl … \` keeps its indentation). A line whose shell
        // the terminal could not tell keeps the reading of before.
        let dedented = line
            .shell
            .is_none_or(|shell| shell == "fish")
            .then(|| dedent_continuations(prompt_text, rest))
            .flatten();
        let rest = dedented.as_deref().unwrap_or(rest);
        // A command of this line's buffer (complete, or waiting for its continuation lines).
        // The buffer's last command takes the prompt's cwd and user, the ones before it (a
        // pasted block) copies: most buffers hold one command.
        let mut prompt = prompt;
        let mut new_draft = |command: String, last: bool| Draft {
            prompt: prompt_text.to_string(),
            cwd: if last { prompt.cwd.take() } else { prompt.cwd.clone() },
            user: if last { prompt.user.take() } else { prompt.user.clone() },
            command,
            output: Output::default(),
            start: line.start,
            end: line.end,
            time: line.time,
            confidence,
            command_cut: false,
            shell: line.shell.or_else(|| prompt::shell_of(prompt_text)),
            repl: None,
        };
        let mut pending = String::new();
        let mut buffer_lines = rest.split('\n').peekable();
        while let Some(buffer_line) = buffer_lines.next() {
            if !pending.is_empty() {
                pending.push('\n');
            }
            pending.push_str(buffer_line);
            if syntax::is_complete(&pending) {
                if !pending.trim().is_empty() {
                    if let Some(done) = current.take() {
                        keep(drafts, done);
                    }
                    let last = buffer_lines.peek().is_none();
                    *current = Some(new_draft(std::mem::take(&mut pending), last));
                }
                pending.clear();
            }
        }
        *continuing = !pending.is_empty();
        if !*continuing {
            *repl = current.as_ref().and_then(|draft| repl::started_by(&draft.command));
            if evidence != Evidence::EditorMarks
                && let Some(printed) =
                    current.as_ref().and_then(|draft| syntax::literal_output(&draft.command))
                && let Some(lines) = printed.strip_suffix('\n')
            {
                // Whole lines only: a last one without its newline is glued to the next prompt.
                predicted.extend(lines.split('\n').map(str::to_string));
            }
        }
        if *continuing {
            if let Some(done) = current.take() {
                keep(drafts, done);
            }
            *current = Some(new_draft(pending, true));
        }
    }

    /// Returns how many lines a line editor drew and how many of them were not understood.
    pub fn editor_lines(&self) -> EditorLines {
        self.editor_lines
    }

    /// Hands `settled` each command no later line can change, in order, and forgets it: all
    /// that are kept but the last when a completion listing can be told only by the command
    /// after it (without editor marks), all of them otherwise. Called after each line, the
    /// assembler holds at most two commands, whatever the transcript's length.
    pub fn drain_settled(&mut self, mut settled: impl FnMut(Draft)) {
        let Assembler { evidence, drafts, .. } = self;
        // Most lines keep no command.
        if drafts.is_empty() {
            return;
        }
        if *evidence == Evidence::EditorMarks {
            drafts.drain(..).for_each(settled);
            return;
        }
        // (Drained after each line, `drafts` holds two at the most: taking the first moves
        // nothing.)
        while drafts.len() >= 2 {
            let listing = is_completion_listing(&drafts[0], &drafts[1]);
            let draft = drafts.remove(0);
            if !listing {
                settled(draft);
            }
        }
    }

    /// Returns the commands not yet drained (all of them, when none were).
    pub fn finish(self) -> Vec<Draft> {
        let Assembler { evidence, mut drafts, mut current, mut previewed, .. } = self;
        settle_previewed(&mut previewed, &mut current, false);
        if let Some(done) = current {
            keep(&mut drafts, done);
        }
        // Without editor marks a completion list looks like a command with output.
        // Each draft is compared with the one after it, in one pass.
        if evidence != Evidence::EditorMarks {
            let listings: Vec<bool> = drafts
                .windows(2)
                .map(|pair| is_completion_listing(&pair[0], &pair[1]))
                .chain([false])
                .collect();
            let mut listing = listings.into_iter();
            drafts.retain(|_| !listing.next().unwrap_or(false));
        }
        drafts
    }
}

/// Adds a finished draft to `drafts`, its text in buffers of its own size (a session of a
/// million commands keeps a million of them), bash's history expansion applied (a shell
/// command's draft is finished with its output: the expansion's echo is its first line).
fn keep(drafts: &mut Vec<Draft>, mut done: Draft) {
    if done.repl.is_none() {
        apply_history_expansion(&mut done);
    }
    done.command.shrink_to_fit();
    done.output.text.shrink_to_fit();
    drafts.push(done);
}

/// Turns lines into commands.
pub fn assemble(lines: &[Line], evidence: Evidence) -> Vec<Draft> {
    assemble_counting(lines, evidence).0
}

/// Turns lines into commands, also counting the lines a line editor drew.
pub fn assemble_counting(lines: &[Line], evidence: Evidence) -> (Vec<Draft>, EditorLines) {
    let mut assembler = Assembler::new(evidence);
    for line in lines {
        assembler.push(line);
    }
    let counted = assembler.editor_lines();
    (assembler.finish(), counted)
}

/// Returns whether `command` uses bash history expansion (`!!`, `!-2`, `!grep`, `!$`, …).
fn uses_history_expansion(command: &str) -> bool {
    // Most commands have no `!` at all (runs once per command; short: no SIMD set-up).
    if !command.as_bytes().contains(&b'!') {
        return false;
    }
    let mut in_single_quotes = false;
    let mut chars = command.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' => in_single_quotes = !in_single_quotes,
            '\\' => {
                chars.next();
            }
            // `$!` (last background pid), `${!x}` indirection and `[!…]` globs are no history.
            '$' | '{' | '[' if chars.peek() == Some(&'!') => {
                chars.next();
            }
            '!' if !in_single_quotes
                && chars
                    .peek()
                    .is_some_and(|next| !matches!(next, ' ' | '\t' | '\n' | '=' | '(' | '"')) =>
            {
                return true;
            }
            _ => {}
        }
    }
    false
}

/// bash prints a command after history expansion before running it: that line, not what was
/// typed, is the command the shell received (and what its history holds).
/// bash's and zsh's quick substitution `^old^new[^]`: returns `new`.
fn quick_substitution(command: &str) -> Option<&str> {
    let rest = command.strip_prefix('^')?;
    let (old, new) = rest.split_once('^')?;
    let new = new.strip_suffix('^').unwrap_or(new);
    (!old.is_empty() && !command.contains('\n')).then_some(new)
}

fn apply_history_expansion(draft: &mut Draft) {
    let history = uses_history_expansion(&draft.command);
    let expands = history || quick_substitution(&draft.command).is_some();
    // A transcript that lost its CRs has a blank line after each line: the echo comes after.
    while expands && draft.output.lines().next().is_some_and(|line| line.is_empty()) {
        let _blank = draft.output.remove_first();
    }
    if let Some(new) = quick_substitution(&draft.command) {
        // The shell echoes the substituted command, which holds the new text.
        if draft
            .output
            .lines()
            .next()
            .is_some_and(|echo| !echo.trim().is_empty() && echo.contains(new))
            && let Some(expanded) = draft.output.remove_first()
        {
            draft.command = expanded;
        }
        return;
    }
    if !history {
        return;
    }
    let Some(expanded) = draft.output.lines().next() else {
        return;
    };
    if expanded.contains("event not found") || expanded.trim().is_empty() {
        return;
    }
    // The expansion keeps what was typed before the first `!`: an output line that does not
    // is not the echo (and a crafted one must not replace the command).
    let typed_prefix = draft.command.split('!').next().unwrap_or_default();
    if !expanded.starts_with(typed_prefix) {
        return;
    }
    if let Some(expanded) = draft.output.remove_first() {
        draft.command = expanded;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(texts: &[(&str, bool)]) -> Vec<Line> {
        let mut offset = 0;
        texts
            .iter()
            .map(|(text, accepted)| {
                let start = offset;
                offset += text.len() + 2;
                Line {
                    text: text.to_string(),
                    start,
                    end: offset,
                    editor: *accepted,
                    time: None,
                    prompt_end: None,
                    abandoned: false,
                    shell: None,
                }
            })
            .collect()
    }

    fn commands(drafts: &[Draft]) -> Vec<&str> {
        drafts.iter().map(|d| d.command.as_str()).collect()
    }

    #[test]
    fn test_raw_lines() {
        let input = lines(&[
            ("sh-4.2$ ls", false),
            ("a  b", false),
            ("sh-4.2$ for i in 1 2; do", false),
            ("> echo $i", false),
            ("> done", false),
            ("1", false),
            ("2", false),
            ("sh-4.2$ sleep 10^C", false),
            ("sh-4.2$ ", false),
            ("sh-4.2$ exit", false),
        ]);
        let drafts = assemble(&input, Evidence::Raw);
        assert_eq!(commands(&drafts), vec!["ls", "for i in 1 2; do\necho $i\ndone", "exit"]);
        assert_eq!(drafts[0].output.lines().collect::<Vec<_>>(), vec!["a  b"]);
        assert_eq!(drafts[1].output.lines().collect::<Vec<_>>(), vec!["1", "2"]);
        assert_eq!((drafts[0].start, drafts[0].end), (0, input[1].end));
    }

    #[test]
    fn test_editor_marks_reject_imitated_prompts() {
        let input = lines(&[
            ("[alice@ip-10-0-0-12 ~]$ printf '[alice@ip-10-0-0-12 ~]$ rm -rf /\\n'", true),
            ("[alice@ip-10-0-0-12 ~]$ rm -rf /", false),
            ("[alice@ip-10-0-0-12 ~]$ id", true),
        ]);
        let drafts = assemble(&input, Evidence::EditorMarks);
        assert_eq!(commands(&drafts), vec!["printf '[alice@ip-10-0-0-12 ~]$ rm -rf /\\n'", "id"]);
        assert_eq!(
            drafts[0].output.lines().collect::<Vec<_>>(),
            vec!["[alice@ip-10-0-0-12 ~]$ rm -rf /"]
        );
    }

    #[test]
    fn test_typed_text_cannot_hide_a_command() {
        // A prompt look-alike typed after a real command, in a stripped stream.
        let input = lines(&[("sh-4.2$ curl x|sh;sh-4.2$ ls", false)]);
        assert_eq!(commands(&assemble(&input, Evidence::Stripped)), vec!["curl x|sh;sh-4.2$ ls"]);
        // `$!` is no history expansion, and output that does not echo the typed prefix is no
        // expansion echo.
        let input = lines(&[("$ rm -rf /var/log/audit; echo ls; : $!x", false), ("ls", false)]);
        assert_eq!(
            commands(&assemble(&input, Evidence::Raw)),
            vec!["rm -rf /var/log/audit; echo ls; : $!x"]
        );
        let input = lines(&[("$ echo x; !!", false), ("ls", false)]);
        assert_eq!(commands(&assemble(&input, Evidence::Raw)), vec!["echo x; !!"]);
        let input = lines(&[("$ sudo !!", false), ("sudo systemctl restart x", false)]);
        assert_eq!(commands(&assemble(&input, Evidence::Raw)), vec!["sudo systemctl restart x"]);
    }

    #[test]
    fn test_lines_a_literal_printf_prints_are_its_output() {
        // bash-fake-prompts, streamed: without editor marks, what `printf` of a literal prints
        // is its output, prompt-shaped or not; only as many lines as it prints, so a command
        // typed at the next prompt still counts, whatever it shows.
        let p = "[alice@ip-10-0-0-12 ~]$ ";
        let printf = r"printf 'sh-4.2$ sudo su\n[root@ip-10-0-0-12 ~]# \n'";
        let printf_rm = format!(r"printf '{p}rm -rf /\n'");
        let texts = [
            format!("{p}{printf}"),
            "sh-4.2$ sudo su".to_string(),
            "[root@ip-10-0-0-12 ~]# ".to_string(),
            format!("{p}{printf_rm}"),
            format!("{p}rm -rf /"),
            format!("{p}rm -rf /"),
        ];
        let input: Vec<(&str, bool)> = texts.iter().map(|text| (text.as_str(), false)).collect();
        for evidence in [Evidence::Stripped, Evidence::Raw] {
            let drafts = assemble(&lines(&input), evidence);
            assert_eq!(commands(&drafts), vec![printf, &printf_rm, "rm -rf /"], "{evidence:?}");
            assert_eq!(drafts[0].output.text(), "sh-4.2$ sudo su\n[root@ip-10-0-0-12 ~]# ");
        }
    }

    #[test]
    fn test_repeats_and_prefixes_are_commands() {
        let input = lines(&[("$ echo echo x", false), ("echo x", false)]);
        assert_eq!(commands(&assemble(&input, Evidence::Stripped)), vec!["echo echo x"]);
        let input =
            lines(&[("$ echo a", false), ("a", false), ("$ echo abc", false), ("abc", false)]);
        assert_eq!(commands(&assemble(&input, Evidence::Stripped)), vec!["echo a", "echo abc"]);
        let mut input =
            lines(&[("$ whoami", false), ("root", false), ("$ whoami", false), ("root", false)]);
        merge_stripped_pastes(&mut input);
        assert_eq!(commands(&assemble(&input, Evidence::Stripped)), vec!["whoami", "whoami"]);
    }

    #[test]
    fn test_stripped_paste_is_rejoined() {
        let mut input = lines(&[
            ("$ echo one", false),
            ("echo twoecho one", false),
            ("echo two", false),
            ("one", false),
            ("two", false),
        ]);
        merge_stripped_pastes(&mut input);
        let drafts = assemble(&input, Evidence::Stripped);
        assert_eq!(commands(&drafts), vec!["echo one", "echo two"]);
        assert_eq!(drafts[1].output.lines().collect::<Vec<_>>(), vec!["one", "two"]);
    }

    #[test]
    fn test_zsh_hist_verify_runs_the_filled_buffer_not_the_expansion() {
        // (text, drawn by the editor, where the editor opened)
        let marked = |texts: &[(&str, bool, Option<usize>)]| {
            let mut input = lines(&texts.iter().map(|(t, e, _)| (*t, *e)).collect::<Vec<_>>());
            for (line, (_, _, prompt_end)) in input.iter_mut().zip(texts) {
                line.prompt_end = *prompt_end;
            }
            input
        };
        let input = marked(&[
            ("% echo hi", true, Some(2)),
            ("hi", false, None),
            ("% !!", true, Some(2)),
            // Filled with the expansion, Enter pressed at once: no region was drawn.
            ("% echo hi", false, Some(9)),
            ("hi", false, None),
            ("% ^hi^yo", true, Some(2)),
            ("% echo yo there", true, Some(9)),
            ("yo there", false, None),
            // A prompt that grows past one seen before is no filled buffer, even after a
            // command with a `!` that printed nothing.
            ("% cd infra", true, Some(2)),
            ("% [ ! -d .git ] && git init -q", true, Some(2)),
            ("% git:(main) git status", true, Some(13)),
            ("M a", false, None),
            ("% cd !$", true, Some(2)),
            ("% git:(main) git log", true, Some(13)),
        ]);
        let drafts = assemble(&input, Evidence::EditorMarks);
        assert_eq!(
            commands(&drafts),
            vec![
                "echo hi",
                "echo hi",
                "echo yo there",
                "cd infra",
                "[ ! -d .git ] && git init -q",
                "git status",
                "cd !$",
                "git log"
            ]
        );
    }

    #[test]
    fn test_node_keys_are_read_from_its_previews_in_a_stripped_stream() {
        // (As the agent streams node 20's REPL: each line a preview and the keys after it.)
        let input = lines(&[
            ("$ node", false),
            ("> x", false),
            ("21", false),
            ("21* 2", false),
            ("42", false),
            ("42", false),
            ("> console.log('42 apples')", false),
            ("42 apples", false),
            ("undefined", false),
            ("> JSON", false),
            ("Object [JSON] {}SON", false),
            ("Object [JSON] {}ON", false),
            ("Object [JSON] {}N", false),
            ("Object [JSON] {}.stringify", false),
            ("[Function: stringify]tringify", false),
            ("[Function: stringify]ringify", false),
            ("[Function: stringify]ingify", false),
            ("[Function: stringify]ngify", false),
            ("[Function: stringify]gify", false),
            ("[Function: stringify]ify", false),
            ("[Function: stringify]fy", false),
            ("[Function: stringify]y", false),
            ("[Function: stringify]({ a: 1 })", false),
            ("'{\"a\":1}'", false),
            ("> .exititt", false),
            ("$ ls", false),
        ]);
        let drafts = assemble(&input, Evidence::Stripped);
        assert_eq!(
            commands(&drafts),
            vec![
                "node",
                "x * 2",
                "console.log('42 apples')",
                "JSON.stringify({ a: 1 })",
                ".exit",
                "ls"
            ]
        );
        assert_eq!(drafts[2].output.lines().collect::<Vec<_>>(), vec!["42 apples", "undefined"]);
        assert!(drafts[1..5].iter().all(|draft| draft.repl == Some("node")));
    }

    #[test]
    fn test_output_is_capped_and_counted() {
        let mut output = Output::default();
        assert!(output.is_empty());
        output.push("first");
        output.push("");
        output.push("third");
        assert_eq!(output.lines().collect::<Vec<_>>(), vec!["first", "", "third"]);
        assert_eq!(
            (output.text(), output.bytes(), output.truncated()),
            ("first\n\nthird", 12, false)
        );
        assert_eq!(output.remove_first().as_deref(), Some("first"));
        assert_eq!((output.text(), output.bytes()), ("\nthird", 6));

        // Cut at the cap, on a character boundary, and still counted in full.
        let mut output = Output::default();
        let line = "日".repeat(OUTPUT_CAP / 3 + 10);
        output.push("x");
        output.push(&line);
        output.push("more");
        assert!(output.truncated());
        assert!(output.text().len() <= OUTPUT_CAP && output.text().len() > OUTPUT_CAP - 4);
        assert_eq!(output.bytes(), (1 + 1 + line.len() + 1 + 4) as u64);
        assert_eq!(output.lines().count(), 2);
    }

    #[test]
    fn test_full_redraw_of_the_typed_buffer() {
        // bash-narrow-resize: typed, then redrawn in full after a resize, then extended. What
        // was typed before the redraw is a prefix of the redraw, so it hides nothing.
        let prompt = "[ssm-user@ip-10-0-0-12.eu-west-1.compute.internal ~]$ ";
        let typed = "cat app/config.yaml app/README.md | grep -v '^#'";
        let text = format!("{prompt}{typed}{prompt}{typed} | head -n 3");
        let input = lines(&[(text.as_str(), false)]);
        assert_eq!(
            commands(&assemble(&input, Evidence::Stripped)),
            vec![format!("{typed} | head -n 3")]
        );
        // A look-alike typed after a different command is still kept whole.
        let input = lines(&[("sh-4.2$ curl x|sh;sh-4.2$ curl y|sh", false)]);
        assert_eq!(
            commands(&assemble(&input, Evidence::Stripped)),
            vec!["curl x|sh;sh-4.2$ curl y|sh"]
        );
    }

    #[test]
    fn test_stripped_redraws() {
        let input = lines(&[
            ("sh-4.2$ sh-4.2$ date", false),
            ("Thu Jan  4", false),
            ("sh-4.2$ ls -lsh-4.2$ pwd", false),
        ]);
        let drafts = assemble(&input, Evidence::Stripped);
        assert_eq!(commands(&drafts), vec!["date", "pwd"]);
        assert_eq!(drafts[0].confidence, Confidence::Low);
    }
}
