//! What a line of a stripped stream showed (CloudWatch streaming: the agent deletes every escape
//! sequence and carriage return before it uploads a line).
//!
//! What is left of readline's drawing is printable text, backspaces and BEL. Cursor moves to the
//! right (`ESC[C`), moves up into an earlier row (`ESC[A`), carriage returns, erases (`ESC[K`),
//! insertions (`ESC[n@`) and deletions (`ESC[nP`) are gone. [`reconstruct`] replays such a line
//! with what readline is known to do when it draws, so that the invisible moves can be inferred
//! from what it printed:
//!
//! - typing at the end of a line that reaches the terminal's last column prints a space and a
//!   carriage return (readline's wrap): the space is not part of the line;
//! - readline never prints a backspace that lands on column 0 or crosses into the row above (it
//!   uses CR and `ESC[A` there), so a backspace seen on column 1 or 0 of a wrapped row came after
//!   such invisible moves;
//! - after an edit in the middle of a line, readline reprints the edited part and the rest of the
//!   row: text that repeats the old cells after a short insertion or deletion is such a reprint,
//!   and the cells after it stay on screen; a reprint that crossed into the next row is followed
//!   by an invisible move back to where the edit was;
//! - backspaces that would move into the prompt came after an invisible move to the right
//!   (`C-a` then `M-f`), and the reprint that follows shows where the cursor went;
//! - an incremental search (`(reverse-i-search)`…`': match`) ends with the prompt redrawn from
//!   column 0 and only the changed part of the match printed: the rest of the match stays.
//!
//! Anything else printed after backspaces overwrites and erases the rest of the line, as a
//! rubout or a kill does (`\b ESC[K`). The terminal width is not in the stream: [`Layout::infer`]
//! reads it from a typed line that readline redrew in full (the typed copy has the wrap spaces,
//! the redrawn one has none), and assumes 80 columns otherwise.

use std::collections::BTreeMap;

use unicode_width::UnicodeWidthChar as _;

use crate::prompt;
use crate::terminal::{DEFAULT_WIDTH, LineTerminal, OpenEditor};

/// Width used to interpret a streamed line the agent could not strip: wide enough that nothing
/// wraps.
const UNSTRIPPED_LINE_WIDTH: usize = 1 << 20;

/// Narrowest terminal a wrap space can reveal.
const MIN_WIDTH: usize = 20;

/// Shortest prompt whose copy in the middle of a line is taken for a redraw (`$ ` is too common
/// in commands).
pub(crate) const MIN_PROMPT_COPY: usize = 6;

/// Longest fish editor row carried from line to line, in bytes, and most lines it is carried
/// through: each carried line replays the row first, so a hostile stream (one long row, then
/// many lines drawn while it is open) must not make that quadratic. A real editor row is a
/// command line, and a pager session a few dozen lines.
const MAX_CARRIED_ROW: usize = 4096;
const MAX_CARRIED_LINES: usize = 256;

/// Most distinct prompts a session is assumed to show.
const MAX_PROMPTS: usize = 16;

/// Shortest repeat of old cells taken for readline's reprint after an edit.
const MIN_REPRINT: usize = 8;

/// Most characters one edit in the middle of a line inserts (one key, a short completion).
const MAX_INSERTED: usize = 8;

/// Most characters one edit in the middle of a line deletes (a word).
const MAX_DELETED: usize = 64;

/// Shortest reprint that tells where the cursor went after backspaces into the prompt.
const MIN_TAIL_REPRINT: usize = 3;

/// readline's incremental search prompts, up to the query.
const SEARCH_PROMPTS: [&str; 4] =
    ["(reverse-i-search)`", "(i-search)`", "(failed reverse-i-search)`", "(failed i-search)`"];

/// Marks the second cell of a double-width character.
const WIDE_TAIL: char = '\u{0}';

/// What the whole stream tells about how its lines were drawn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// Terminal width readline wrapped at.
    pub width: usize,
    /// Prompts seen at the start of lines, long enough that a copy inside a line is a redraw.
    prompts: Vec<Vec<char>>,
    /// The same prompts as text.
    prompt_texts: Vec<String>,
}

impl Default for Layout {
    fn default() -> Self {
        Layout::with_prompts(DEFAULT_WIDTH, Vec::new())
    }
}

impl Layout {
    /// Reads the layout from the stream's lines (as shown, escapes already interpreted).
    pub fn infer(lines: &[&str]) -> Layout {
        let leading: Vec<Option<usize>> =
            lines.iter().map(|line| leading_prompt_len(line)).collect();
        Self::infer_with(lines, &leading)
    }

    /// [`Layout::infer`] given the length of the known prompt each line starts with.
    fn infer_with(lines: &[&str], leading: &[Option<usize>]) -> Layout {
        let mut prompts: Vec<(Vec<char>, usize)> = Vec::new();
        let mut votes: BTreeMap<usize, usize> = BTreeMap::new();
        for (line, prompt_len) in lines.iter().zip(leading) {
            let Some(prompt_len) = *prompt_len else {
                continue;
            };
            let prompt_text = &line[..prompt_len];
            if prompt_text.len() < MIN_PROMPT_COPY {
                continue;
            }
            let cells: Vec<char> = prompt_text.chars().collect();
            if let Some((_, seen)) = prompts.iter_mut().find(|(known, _)| *known == cells) {
                *seen += 1;
            } else if prompts.len() < MAX_PROMPTS {
                prompts.push((cells, 1));
            }
            if let Some(width) = wrap_width_of_redraw(line, prompt_text) {
                *votes.entry(width).or_default() += 1;
            }
        }
        // A prompt-shaped line seen once may be output that imitates one. Longest first, so
        // that the longest copy wins where prompts share a start.
        let mut prompts: Vec<Vec<char>> =
            prompts.into_iter().filter(|(_, seen)| *seen >= 2).map(|(cells, _)| cells).collect();
        prompts.sort_by_key(|prompt| std::cmp::Reverse(prompt.len()));
        let width = votes
            .iter()
            .max_by_key(|(width, count)| (**count, **width))
            .map(|(width, _)| *width)
            .unwrap_or(DEFAULT_WIDTH);
        Layout::with_prompts(width, prompts)
    }

    fn with_prompts(width: usize, prompts: Vec<Vec<char>>) -> Layout {
        let prompt_texts = prompts.iter().map(|prompt| prompt.iter().collect()).collect();
        Layout { width, prompts, prompt_texts }
    }

    /// Whether a copy of a distinctive prompt stands anywhere in `text`.
    fn has_prompt_in(&self, text: &str) -> bool {
        self.prompt_texts
            .iter()
            .any(|prompt| memchr::memmem::find(text.as_bytes(), prompt.as_bytes()).is_some())
    }

    /// Returns the length in cells of the distinctive prompt `text` starts with.
    fn prompt_at(&self, text: &[char]) -> Option<usize> {
        let first = text.first()?;
        self.prompts
            .iter()
            .find(|prompt| prompt.first() == Some(first) && text.starts_with(prompt))
            .map(Vec::len)
    }
}

/// Returns the width a line reveals when it holds a typed buffer and readline's full redraw of
/// it (`P typed P redrawn`, after a resize or a redraw key): the typed copy carries wrap spaces
/// at every multiple of the width, the redrawn copy none.
fn wrap_width_of_redraw(line: &str, prompt_text: &str) -> Option<usize> {
    if line.chars().any(char::is_control) {
        return None;
    }
    let copies: Vec<usize> = line.match_indices(prompt_text).map(|(index, _)| index).collect();
    let prompt_width = text_width(prompt_text);
    copies.windows(2).enumerate().find_map(|(index, pair)| {
        let typed = &line[pair[0] + prompt_text.len()..pair[1]];
        let redrawn_end = copies.get(index + 2).copied().unwrap_or(line.len());
        let redrawn = &line[pair[1] + prompt_text.len()..redrawn_end];
        if redrawn.starts_with(typed) {
            return None;
        }
        // The first wrap space stands at the column of the width: try each space, widest first.
        let mut column = prompt_width;
        let mut candidates = Vec::new();
        for c in typed.chars() {
            if c == ' ' && column >= MIN_WIDTH {
                candidates.push(column);
            }
            column += char_width(c);
        }
        candidates.into_iter().rev().find(|&width| {
            let unwrapped = remove_wrap_spaces(prompt_width, typed, width);
            unwrapped.len() < typed.len() && redrawn.starts_with(&unwrapped)
        })
    })
}

/// Removes the spaces readline's wrap leaves in a stripped line: typing past the last column,
/// readline prints a space and a carriage return; the stream deletes the CR, so a space stands
/// at every multiple of `width` (counted from the prompt's start, `column` cells before `rest`).
pub(crate) fn remove_wrap_spaces(column: usize, rest: &str, width: usize) -> String {
    let width = width.max(1);
    let mut column = column;
    let mut kept = String::with_capacity(rest.len());
    let mut skipped_at = None;
    let mut chars = rest.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\n' {
            // A line of a pasted block starts at column 0.
            column = 0;
            skipped_at = None;
            kept.push(c);
            continue;
        }
        // One wrap space per wrap column: a typed space right after it is real.
        if c == ' '
            && column > 0
            && column.is_multiple_of(width)
            && skipped_at != Some(column)
            && chars.peek().is_some()
        {
            skipped_at = Some(column);
            continue;
        }
        column += char_width(c);
        kept.push(c);
    }
    kept
}

/// Returns what each streamed line showed, in order.
pub fn reconstruct_lines(texts: &[String]) -> Vec<String> {
    reconstruct_stream_lines(texts).into_iter().map(|shown| shown.text).collect()
}

/// What a streamed line showed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ShownLine {
    /// The text.
    pub text: String,
    /// Where the line editor opened after its prompt, when the agent left the line's escapes
    /// (zsh: see [`crate::terminal::LineSink::line`]).
    pub prompt_end: Option<usize>,
    /// The line editor drew the line (the agent left its escapes, bracketed paste among them).
    pub editor: bool,
    /// The shell whose editor drew it, as its escapes tell.
    pub shell: Option<&'static str>,
    /// The line closed a line editor: after a keypad reset since it opened (`Some(true)`:
    /// zsh's `zle-line-finish` on an accepted line) or without one. Only lines the agent left
    /// whole show a reset: its `ESC >` is what makes the agent's stripper fail and keep a line,
    /// so a stripped line that shows zsh drawing its prompt (its end-of-line mark, then the
    /// prompt) closed the editor before it without one.
    pub closes_after_keypad_reset: Option<bool>,
}

/// Returns what each streamed line showed, in order, with where its prompt ends when the
/// line's escapes tell.
pub fn reconstruct_stream_lines(texts: &[String]) -> Vec<ShownLine> {
    ShownStream::new(texts.to_vec()).collect()
}

/// What each line of a stream showed, in order (see [`reconstruct_stream_lines`]), read one by
/// one from the lines it takes: a stripped line keeps its buffer when the replay leaves its
/// text as it is (most output), and the stream's lines are never all held twice.
#[derive(Debug)]
pub struct ShownStream {
    texts: std::vec::IntoIter<String>,
    /// Byte length of the known prompt each line starts with, as shown.
    leading: std::vec::IntoIter<Option<usize>>,
    /// The lines the agent left whole, as the terminal model read them, with their index.
    unstripped: std::iter::Peekable<std::vec::IntoIter<(usize, ShownLine)>>,
    layout: Layout,
    /// Index of the next line.
    index: usize,
    keypad_reset_seen: bool,
}

impl ShownStream {
    /// Reads the stream's lines (the text of each line the agent uploaded).
    pub fn new(texts: Vec<String>) -> Self {
        // A line the agent could not strip keeps its escapes (but not its CRs): the terminal
        // model interprets them. Its last line is what the line ended as (the editor starting
        // mid-line, after a full-screen program's leftovers, begins a line of its own).
        // zsh splits an editor line where it moves down (a completion list, the first row of a
        // two-line prompt drawn again) and closes the editor on a later line: that line is
        // drawn in the editor the earlier one left open, and shows the buffer as accepted; the
        // earlier one only showed it being edited.
        // The unstripped lines, with their index among all lines.
        let mut shown: Vec<(usize, ShownLine)> = Vec::new();
        // The open editor, with the position in `shown` of the line that opened it.
        let mut open: Option<(usize, OpenEditor)> = None;
        // fish's carried editor row lost its buffer to a stripped line, and no line redrew it
        // yet.
        let mut fish_buffer_unknown = false;
        // Lines fish's open editor was carried through.
        let mut fish_carried = 0usize;
        for (line_index, text) in texts.iter().enumerate() {
            if is_stripped(text) {
                if let Some((_, editor)) = open.as_mut()
                    && editor.is_fish()
                    && !text.is_empty()
                {
                    editor.forget_buffer();
                    fish_buffer_unknown = true;
                }
                continue;
            }
            let carried = open.take().filter(|(_, editor)| {
                closes_editor_first(text)
                    || (editor.is_fish()
                        && editor.row().len() <= MAX_CARRIED_ROW
                        && fish_carried < MAX_CARRIED_LINES
                        && !text.contains(EDITOR_OPENS))
            });
            fish_carried = match &carried {
                Some((_, editor)) if editor.is_fish() => fish_carried + 1,
                _ => 0,
            };
            let (screen, left_open) = LineTerminal::run_stripped_in_editor(
                UNSTRIPPED_LINE_WIDTH,
                text.as_bytes(),
                carried.as_ref().map(|(_, editor)| editor),
            );
            // fish's editor row, carried through the lines drawn while it is open (its pagers,
            // its moves down and back up), is the line that opened it; each of these lines
            // shows its own last row (a pager's, the output after the editor closed).
            if let Some((index, editor)) = &carried
                && editor.is_fish()
            {
                let mut rows = screen.lines.into_iter();
                if let Some(row) = rows.next() {
                    let redrawn = row.text != editor.row().trim_end_matches(' ');
                    // Until a line redraws a buffer a stripped line changed, the opening
                    // line's own reading stands.
                    if (redrawn || !fish_buffer_unknown)
                        && let Some((_, opened)) = shown.get_mut(*index)
                    {
                        opened.text = row.text;
                    }
                    fish_buffer_unknown &= !redrawn;
                }
                open = left_open.filter(OpenEditor::is_fish).map(|editor| (*index, editor));
                shown.push((
                    line_index,
                    ShownLine {
                        text: rows.last().map(|line| line.text).unwrap_or_default(),
                        closes_after_keypad_reset: screen.last_close_after_keypad_reset,
                        ..ShownLine::default()
                    },
                ));
                continue;
            }
            if let Some((index, _)) = carried
                && let Some((_, superseded)) = shown.get_mut(index)
            {
                *superseded = ShownLine::default();
            }
            open = left_open.map(|editor| (shown.len(), editor));
            // In the carried editor, the line is the editor's row (a completion list may be
            // drawn below it).
            let editor_row = carried
                .is_some()
                .then(|| screen.lines.iter().rposition(|line| line.prompt_end.is_some()))
                .flatten();
            let last = match editor_row {
                Some(row) => screen.lines.into_iter().nth(row),
                None => screen.lines.into_iter().last(),
            };
            let closes_after_keypad_reset = screen.last_close_after_keypad_reset;
            shown.push((
                line_index,
                last.map_or_else(
                    || ShownLine { closes_after_keypad_reset, ..ShownLine::default() },
                    |line| ShownLine {
                        editor: line.region.is_some(),
                        shell: line.region.and(line.shell),
                        text: line.text,
                        prompt_end: line.prompt_end,
                        closes_after_keypad_reset,
                    },
                ),
            ));
        }
        let mut unstripped = shown.iter().peekable();
        let views: Vec<&str> = texts
            .iter()
            .enumerate()
            .map(|(index, text)| match unstripped.next_if(|(at, _)| *at == index) {
                Some((_, view)) => view.text.as_str(),
                None => text.as_str(),
            })
            .collect();
        let leading: Vec<Option<usize>> =
            views.iter().map(|view| leading_prompt_len(view)).collect();
        let layout = Layout::infer_with(&views, &leading);
        drop(views);
        let keypad_reset_seen =
            shown.iter().any(|(_, line)| line.closes_after_keypad_reset == Some(true));
        ShownStream {
            texts: texts.into_iter(),
            leading: leading.into_iter(),
            unstripped: shown.into_iter().peekable(),
            layout,
            index: 0,
            keypad_reset_seen,
        }
    }

    /// Whether a line closed the line editor after a keypad reset (see
    /// [`ShownLine::closes_after_keypad_reset`]).
    pub fn keypad_reset_seen(&self) -> bool {
        self.keypad_reset_seen
    }
}

impl Iterator for ShownStream {
    type Item = ShownLine;

    fn next(&mut self) -> Option<ShownLine> {
        let text = self.texts.next()?;
        let prompt_len = self.leading.next().flatten();
        let index = self.index;
        self.index += 1;
        if let Some((_, shown)) = self.unstripped.next_if(|(at, _)| *at == index) {
            let text = unwrap_line(&shown.text, &self.layout);
            // Wrap spaces are removed after the prompt only.
            let prompt_end = shown.prompt_end.filter(|&end| {
                shown.text.is_char_boundary(end)
                    && text.is_char_boundary(end)
                    && text[..end] == shown.text[..end]
            });
            return Some(ShownLine { text, prompt_end, ..shown });
        }
        let closes_after_keypad_reset = starts_with_zsh_eol_mark(&text).then_some(false);
        Some(ShownLine {
            text: replay(text, prompt_len, &self.layout),
            prompt_end: None,
            editor: false,
            shell: None,
            closes_after_keypad_reset,
        })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.texts.size_hint()
    }
}

/// Blanks after zsh's end-of-line mark at the least (the narrowest terminal, less one).
const MIN_EOL_MARK_BLANKS: usize = 19;

/// Whether a stripped streamed line starts with zsh's end-of-line mark (`%` or `#`, blanks to
/// the right edge) and goes on: zsh drew its prompt and line editor after it.
fn starts_with_zsh_eol_mark(text: &str) -> bool {
    let Some(after) = text.strip_prefix(['%', '#']) else {
        return false;
    };
    let rest = after.trim_start_matches(' ');
    after.len() - rest.len() >= MIN_EOL_MARK_BLANKS && !rest.is_empty()
}

/// Bracketed paste on and off: a line editor opens and closes.
const EDITOR_OPENS: &str = "\x1b[?2004h";
const EDITOR_CLOSES: &str = "\x1b[?2004l";

/// Whether the line closes the line editor (bracketed paste off) before it opens one.
fn closes_editor_first(text: &str) -> bool {
    let closes = text.find(EDITOR_CLOSES);
    let opens = text.find(EDITOR_OPENS);
    closes.is_some_and(|close| opens.is_none_or(|open| close < open))
}

/// Whether the agent stripped the line: no control characters but backspace and BEL.
fn is_stripped(text: &str) -> bool {
    !text.chars().any(|c| c.is_control() && !matches!(c, '\u{8}' | '\u{7}'))
}

/// Removes the wrap spaces of a line whose escapes the terminal model interpreted, counting
/// columns from its last prompt (a redraw starts at column 0).
fn unwrap_line(text: &str, layout: &Layout) -> String {
    let last_copy = layout
        .prompts
        .iter()
        .filter_map(|prompt| {
            let prompt: String = prompt.iter().collect();
            text.rfind(&prompt).map(|index| (index, index + prompt.len()))
        })
        .max();
    let prompt_span = last_copy.or_else(|| prompt::known_prompt(text).map(|p| (0, p.len)));
    let Some((start, end)) = prompt_span else {
        return text.to_string();
    };
    let unwrapped = remove_wrap_spaces(text_width(&text[start..end]), &text[end..], layout.width);
    format!("{}{unwrapped}", &text[..end])
}

/// Replays one stripped line (see the module documentation) and returns what it showed.
pub fn reconstruct(line: &str, layout: &Layout) -> String {
    replay(line.to_string(), leading_prompt_len(line), layout)
}

/// Byte length of the known prompt `line` starts with, readline's vi mode string included.
fn leading_prompt_len(line: &str) -> Option<usize> {
    prompt::known_prompt(line).or_else(|| prompt::vi_mode_prompt(line)).map(|found| found.len)
}

/// readline in vi mode with `show-mode-in-prompt` redraws the mode string on every switch:
/// from column 1 (CR, a move right: `(ins)` → `(cmd)` prints `cmd`) and back to the cursor by
/// moves right, all of which the agent deleted, so the changed part is glued to the text where
/// the cursor was. Returns the line without those switches when it starts with a vi mode
/// prompt and they read as one: `cmd` (from insert mode) only where command mode follows,
/// i.e. the line ends, or backspaces (moves) then the end or the switch back follow, or
/// nothing was typed yet and a history entry is recalled (printed, then backspaced over);
/// `ins` only back from command mode.
/// Entering command mode moves the cursor back one cell unseen, which counts for the moves
/// that follow.
/// A switch back followed by the rest of the prompt is a redraw of the whole line from
/// column 1: the prompt is drawn again whole. Text typed in insert mode (`cat
/// /proc/1/cmdline`, `ls cmd` then rubouts) stays as it is.
fn without_vi_mode_switches(line: &str, prompt_len: usize) -> Option<String> {
    let [insert, command] = prompt::VI_MODE_STRINGS;
    let prompt_text = &line[..prompt_len];
    let mut in_insert = prompt_text.starts_with(insert);
    if !in_insert && !prompt_text.starts_with(command) {
        return None;
    }
    // The changed part: what the two mode strings do not share at either end.
    let shared_start = common_prefix_len(insert, command);
    let shared_end = common_prefix_len_rev(&insert[shared_start..], &command[shared_start..]);
    let body = |mode: &'static str| &mode[shared_start..mode.len() - shared_end];
    let (insert_body, command_body) = (body(insert), body(command));
    let prompt_after_body = &prompt_text[insert.len() - shared_end..];
    let rest = &line[prompt_len..];
    let mut kept = String::with_capacity(line.len());
    kept.push_str(prompt_text);
    let mut switched = false;
    let mut index = 0;
    while index < rest.len() {
        let here = &rest[index..];
        if in_insert && let Some(after) = here.strip_prefix(command_body) {
            let after_moves = after.trim_start_matches('\u{8}');
            let command_mode_follows = after.is_empty()
                || after.starts_with(insert_body)
                || (after_moves.len() < after.len()
                    && (after_moves.is_empty() || after_moves.starts_with(insert_body)))
                || (kept.len() == prompt_len && is_history_recall(after));
            if command_mode_follows {
                // Command mode puts the cursor on the last character, unseen: the moves that
                // follow count from there.
                if after_moves.len() < after.len() && kept.len() > prompt_len {
                    kept.push('\u{8}');
                }
                in_insert = false;
                switched = true;
                index += command_body.len();
                continue;
            }
        }
        if !in_insert && let Some(after) = here.strip_prefix(insert_body) {
            in_insert = true;
            index += insert_body.len();
            if let Some(redrawn) = after.strip_prefix(prompt_after_body) {
                // The whole line drawn again from column 1.
                kept.push_str(&insert[..shared_start]);
                kept.push_str(insert_body);
                kept.push_str(prompt_after_body);
                index = rest.len() - redrawn.len();
            }
            continue;
        }
        let c = here.chars().next()?;
        kept.push(c);
        index += c.len_utf8();
    }
    switched.then_some(kept)
}

/// vi mode's `k`/`j` on an empty line: readline prints the entry, then backspaces over all of
/// it (command mode puts the cursor at its start).
fn is_history_recall(text: &str) -> bool {
    let printed = text.find('\u{8}').unwrap_or(text.len());
    let backspaces = text[printed..].chars().take_while(|&c| c == '\u{8}').count();
    printed > 0 && text[..printed].chars().count() == backspaces
}

fn common_prefix_len(a: &str, b: &str) -> usize {
    a.bytes().zip(b.bytes()).take_while(|(x, y)| x == y).count()
}

fn common_prefix_len_rev(a: &str, b: &str) -> usize {
    a.bytes().rev().zip(b.bytes().rev()).take_while(|(x, y)| x == y).count()
}

/// [`reconstruct`] given the byte length of the known prompt the line starts with. The line's
/// buffer is returned when there is nothing to replay.
fn replay(line: String, prompt_len: Option<usize>, layout: &Layout) -> String {
    let vi_line = prompt_len.and_then(|len| without_vi_mode_switches(&line, len));
    let mut line = vi_line.unwrap_or(line);
    if is_unedited(&line, prompt_len, layout) {
        line.truncate(line.trim_end_matches(' ').len());
        return line;
    }
    replay_in_model(&line, prompt_len, layout)
}

/// Whether replaying `line` would show it as it is, but for trailing blanks.
fn is_unedited(line: &str, prompt_len: Option<usize>, layout: &Layout) -> bool {
    // Most lines are short output or a short command: nothing to replay.
    (line.len() <= layout.width && !line.chars().any(char::is_control))
        // Longer output in printable ASCII, without a prompt, is not edited: one cell per
        // byte, no wrap space to remove (only an editor's line has them).
        || (prompt_len.is_none()
            && line.bytes().all(|byte| matches!(byte, b' '..=b'~'))
            && !layout.has_prompt_in(line))
}

/// [`replay`] through the line model, whatever the line.
fn replay_in_model(line: &str, prompt_len: Option<usize>, layout: &Layout) -> String {
    let mut model = LineModel::new(layout);
    model.leading_prompt = prompt_len.map(|len| text_width(&line[..len]));
    // Runs of printed cells and of backspaces, in order.
    let mut runs: Vec<(Vec<char>, usize)> = Vec::new();
    let mut text: Vec<char> = Vec::new();
    let mut backspaces = 0usize;
    for c in line.chars() {
        if c == '\u{8}' {
            backspaces += 1;
            continue;
        }
        if c.is_control() {
            // BEL (a failed completion) and anything else invisible.
            continue;
        }
        if backspaces > 0 {
            runs.push((std::mem::take(&mut text), std::mem::take(&mut backspaces)));
        }
        match char_width(c) {
            0 => {}
            1 => text.push(c),
            _ => text.extend([c, WIDE_TAIL]),
        }
    }
    runs.push((text, backspaces));
    for (text, backspaces) in runs {
        if !text.is_empty() {
            model.print(&text, backspaces);
        }
        model.back(backspaces);
    }
    render(&model.cells)
}

/// The cells of one stripped line being replayed.
#[derive(Debug)]
struct LineModel<'a> {
    layout: &'a Layout,
    cells: Vec<char>,
    cursor: usize,
    /// Prompt at the very start of the line, in cells (any known prompt, even `$ `).
    leading_prompt: Option<usize>,
    /// A prompt was drawn: the rest is readline's editing.
    editing: bool,
    /// Cell of the line editor's column 0 (where the last prompt copy starts).
    row_base: usize,
    /// First cell after that prompt: the cursor never moves before it.
    edit_start: usize,
    /// Cell where a wrap space was dropped.
    wrap_skipped_at: Option<usize>,
    /// Backspaces seen while the cursor was already at `edit_start`.
    overshoot: usize,
    /// Where readline left the cursor after an incremental search ended.
    search_point: Option<usize>,
}

impl<'a> LineModel<'a> {
    fn new(layout: &'a Layout) -> Self {
        LineModel {
            layout,
            cells: Vec::new(),
            cursor: 0,
            leading_prompt: None,
            editing: false,
            row_base: 0,
            edit_start: 0,
            wrap_skipped_at: None,
            overshoot: 0,
            search_point: None,
        }
    }

    fn width(&self) -> usize {
        self.layout.width.max(2)
    }

    fn back(&mut self, count: usize) {
        for _ in 0..count {
            if !self.editing {
                self.cursor = self.cursor.saturating_sub(1);
                continue;
            }
            if self.cursor <= self.edit_start {
                self.overshoot += 1;
                continue;
            }
            let width = self.width();
            let column = self.cursor.saturating_sub(self.row_base);
            // Column 1 of a wrapped row: readline went to column 0 with CR and up to the row
            // above with ESC[A before this backspace; column 0: only the move up.
            let step = if column > width && column % width == 1 {
                3
            } else if column >= width && column.is_multiple_of(width) {
                2
            } else {
                1
            };
            self.cursor = self.cursor.saturating_sub(step).max(self.edit_start);
        }
    }

    /// Prints `text`, which `backspaces_after` backspaces follow.
    fn print(&mut self, text: &[char], backspaces_after: usize) {
        let mut rest = text;
        let search_point = self.search_point.take();
        let overshoot = std::mem::take(&mut self.overshoot);
        while !rest.is_empty() {
            if self.cursor >= self.cells.len() {
                self.append(rest);
                return;
            }
            if !self.editing {
                self.truncate_at_cursor();
                continue;
            }
            // readline backspaces from the end of such a reprint back to the deletion.
            if overshoot > 0
                && rest.len() == text.len()
                && backspaces_after == text.len()
                && let Some(consumed) = self.deletion_before_tail(rest, overshoot)
            {
                rest = &rest[consumed..];
                continue;
            }
            if rest.len() == text.len()
                && let Some(consumed) = self.search_redraw(rest)
            {
                rest = &rest[consumed..];
                continue;
            }
            if let Some(consumed) = self.reprint(rest) {
                rest = &rest[consumed..];
                continue;
            }
            if search_point == Some(self.cursor) && rest.len() == text.len() {
                // After a search readline puts the cursor on the match; text printed there
                // without a reprint of the rest was typed after an invisible move to the end
                // (End, C-e).
                self.cursor = self.cells.len();
                continue;
            }
            // A rubout or a kill: the erase that came with it was stripped.
            self.truncate_at_cursor();
        }
    }

    /// Erases from the cursor to the end of the line.
    fn truncate_at_cursor(&mut self) {
        let cut_wide = self.cells.get(self.cursor) == Some(&WIDE_TAIL);
        self.cells.truncate(self.cursor);
        if cut_wide && let Some(head) = self.cells.last_mut() {
            *head = ' ';
        }
    }

    /// Appends `text` at the end of the line (the cursor is there).
    fn append(&mut self, text: &[char]) {
        let mut index = 0;
        while index < text.len() {
            let at_line_start = self.cells.is_empty() && index == 0;
            let prompt_len = if at_line_start {
                self.leading_prompt.or_else(|| self.layout.prompt_at(text))
            } else {
                self.layout.prompt_at(&text[index..])
            };
            if let Some(prompt_len) = prompt_len.filter(|len| index + len <= text.len()) {
                // A prompt (again): readline draws it from column 0.
                self.editing = true;
                self.row_base = self.cells.len();
                self.edit_start = self.row_base + prompt_len;
                self.cells.extend_from_slice(&text[index..index + prompt_len]);
                index += prompt_len;
                continue;
            }
            if self.editing
                && let Some(marker) =
                    SEARCH_PROMPTS.iter().find(|marker| starts_with_str(&text[index..], marker))
            {
                // readline's search prompt replaces the prompt from column 0.
                self.row_base = self.cells.len();
                self.edit_start = self.row_base + marker.len();
                self.cells.extend(marker.chars());
                index += marker.len();
                continue;
            }
            let c = text[index];
            let at = self.cells.len();
            let width = self.width();
            let on_margin =
                self.editing && at > self.edit_start && (at - self.row_base).is_multiple_of(width);
            if c == ' ' && on_margin && index + 1 < text.len() && self.wrap_skipped_at != Some(at) {
                self.wrap_skipped_at = Some(at);
                index += 1;
                continue;
            }
            self.cells.push(c);
            index += 1;
        }
        self.cursor = self.cells.len();
    }

    /// Backspaces went past the start of the buffer, so the cursor moved right unseen first
    /// (`C-a`, `M-f`, then `C-w`): a reprint of the line's tail shows where. The `overshoot`
    /// backspaces were a deletion just before that tail.
    fn deletion_before_tail(&mut self, text: &[char], overshoot: usize) -> Option<usize> {
        if text.len() < MIN_TAIL_REPRINT || text.len() > self.cells.len() {
            return None;
        }
        let tail_start = self.cells.len() - text.len();
        if self.cells[tail_start..] != *text {
            return None;
        }
        let deletion_start = tail_start.checked_sub(overshoot)?;
        if deletion_start < self.edit_start {
            return None;
        }
        self.cells.drain(deletion_start..tail_start);
        self.cursor = self.cells.len();
        Some(text.len())
    }

    /// The prompt printed again after an incremental search, followed by the start of the match:
    /// readline redrew the line from column 0 and printed only what changed.
    fn search_redraw(&mut self, text: &[char]) -> Option<usize> {
        let prompt_len = self.layout.prompt_at(text)?;
        let shown = text_of(&self.cells[..self.cursor]);
        let search = shown.rfind("-search)`")?;
        let display = &shown[search + "-search)`".len()..];
        let separator = display.rfind("': ")?;
        let query = &display[..separator];
        let found: String = display[separator + "': ".len()..].to_string();
        // What follows the cursor belongs to the match too.
        let after_cursor = text_of(&self.cells[self.cursor..]);
        let found = format!("{found}{after_cursor}");
        let typed: String = text[prompt_len..].iter().filter(|c| **c != WIDE_TAIL).collect();
        if !found.starts_with(&typed) {
            return None;
        }
        let start = self.cursor;
        self.cells.truncate(start);
        self.row_base = start;
        self.edit_start = start + prompt_len;
        self.cells.extend_from_slice(text);
        self.cells.extend(cells_of(&found[typed.len()..]));
        self.cursor = start + text.len();
        // readline leaves point where the query was found in the match.
        if !query.is_empty()
            && let Some(index) = found.rfind(query)
        {
            self.search_point = Some(self.edit_start + text_width(&found[..index]));
        }
        Some(text.len())
    }

    /// readline's reprint after an edit in the middle of the line: a short insertion or
    /// deletion, then the old cells again up to where the row (or the changed part) ends.
    fn reprint(&mut self, text: &[char]) -> Option<usize> {
        let at = self.cursor;
        let (inserted, deleted, repeated) = find_reprint(&self.cells[at..], text)?;
        self.cells.drain(at..at + deleted);
        self.cells.splice(at..at, text[..inserted].iter().copied());
        let printed_end = at + inserted + repeated;
        let width = self.width();
        let row = |cell: usize| cell.saturating_sub(self.row_base) / width;
        // Back from the next row readline moves up and right, unseen; on the same row it
        // backspaces, which the stream shows.
        self.cursor = if row(printed_end - 1) != row(at) { at + inserted } else { printed_end };
        Some(inserted + repeated)
    }
}

/// Finds the smallest edit after which `text` repeats the old `tail` for at least
/// [`MIN_REPRINT`] cells and stops before the tail ends (what is past a reprint stays on
/// screen): returns (inserted, deleted, repeated).
fn find_reprint(tail: &[char], text: &[char]) -> Option<(usize, usize, usize)> {
    for size in 0..=MAX_INSERTED.max(MAX_DELETED) {
        if size <= MAX_INSERTED && size <= text.len() {
            let repeated = common_prefix(&text[size..], tail);
            if repeated >= MIN_REPRINT && repeated < tail.len() {
                return Some((size, 0, repeated));
            }
        }
        if (1..=MAX_DELETED).contains(&size) && size < tail.len() {
            let repeated = common_prefix(text, &tail[size..]);
            if repeated >= MIN_REPRINT && size + repeated < tail.len() {
                return Some((0, size, repeated));
            }
        }
    }
    None
}

fn starts_with_str(cells: &[char], prefix: &str) -> bool {
    let mut cells = cells.iter();
    prefix.chars().all(|c| cells.next() == Some(&c))
}

fn common_prefix(a: &[char], b: &[char]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

fn char_width(c: char) -> usize {
    if c.is_ascii_graphic() || c == ' ' { 1 } else { c.width().unwrap_or(0) }
}

fn text_width(text: &str) -> usize {
    text.chars().map(char_width).sum()
}

fn cells_of(text: &str) -> Vec<char> {
    let mut cells = Vec::with_capacity(text.len());
    for c in text.chars() {
        match char_width(c) {
            0 => {}
            1 => cells.push(c),
            _ => cells.extend([c, WIDE_TAIL]),
        }
    }
    cells
}

fn text_of(cells: &[char]) -> String {
    cells.iter().filter(|c| **c != WIDE_TAIL).collect()
}

fn render(cells: &[char]) -> String {
    text_of(cells).trim_end_matches(' ').to_string()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const PROMPT: &str = "[ssm-user@ip-10-0-0-12 app]$ ";

    /// Joins stream pieces; `bs(n)` is a run of backspaces.
    fn line(parts: &[&str]) -> String {
        parts.concat()
    }

    fn bs(count: usize) -> String {
        "\u{8}".repeat(count)
    }

    fn layout(width: usize, prompt: &str) -> Layout {
        Layout::with_prompts(width, vec![prompt.chars().collect()])
    }

    #[test]
    fn test_width_is_read_from_a_redrawn_typed_line() {
        // bash-narrow-resize: a 60-column terminal, the line redrawn in full after a resize.
        let prompt = "[ssm-user@ip-10-0-0-12.eu-west-1.compute.internal ~]$ ";
        let stream = [
            format!("{prompt}{prompt}echo n arrow terminal"),
            "narrow terminal".to_string(),
            format!(
                "{prompt}cat ap p/config.yaml app/README.md | grep -v '^#'{prompt}cat app/config.yaml app/README.md | grep -v '^#' | head -n 3"
            ),
            "service: billing-api".to_string(),
            format!("{prompt}{prompt}printf  '%070d\\n' 0"),
            format!("{prompt}exit"),
        ];
        let views: Vec<&str> = stream.iter().map(String::as_str).collect();
        assert_eq!(Layout::infer(&views).width, 60);
        let shown = reconstruct_lines(&stream);
        assert_eq!(shown[0], format!("{prompt}{prompt}echo narrow terminal"));
        assert!(shown[2].ends_with("cat app/config.yaml app/README.md | grep -v '^#' | head -n 3"));
        assert!(shown[2].contains("~]$ cat app/config.yaml app/README.md | grep -v '^#'[ssm"));
        // The wrap space goes, the typed space after it stays.
        assert_eq!(shown[4], format!("{prompt}{prompt}printf '%070d\\n' 0"));
    }

    #[test]
    fn test_vi_mode_switches_are_not_typed_text() {
        // bash-vi-mode's streamed lines: Escape, `A`, `e`; Escape, `0cw`, `cat`; Escape, `k`
        // on an empty line; typed text that contains the mode strings.
        let vi = "(ins)[ssm-user@ip-10-0-0-12 ~]$ ";
        let redraw = format!("ins){}", &vi[5..]);
        let cases = [
            (line(&[vi, "echo vi modcmdinse"]), format!("{vi}echo vi mode")),
            (
                line(&[
                    vi,
                    "ls app/config.yamlcmd",
                    &bs(17),
                    &redraw,
                    "c app/config.yaml",
                    &bs(16),
                ]),
                format!("{vi}{vi}c app/config.yaml"),
            ),
            (line(&[vi, "cmdcat app/config.yaml", &bs(19)]), format!("{vi}cat app/config.yaml")),
            (line(&[vi, "cat /proc/1/cmdline"]), format!("{vi}cat /proc/1/cmdline")),
            (line(&[vi, "cmdline-tool --help"]), format!("{vi}cmdline-tool --help")),
            (line(&[vi, "ls cmd", &bs(3), "foo"]), format!("{vi}ls foo")),
            (line(&[PROMPT, "echo cmd"]), format!("{PROMPT}echo cmd")),
        ];
        for (stream, shown) in cases {
            assert_eq!(reconstruct(&stream, &layout(80, vi)), shown, "{stream:?}");
        }
    }

    #[test]
    fn test_zsh_editor_left_open_is_closed_by_a_later_line() {
        // zsh-default and a two-line prompt, streamed: a Tab listing splits the editor line,
        // then zsh goes up, clears the buffer (C-u) and takes another; a resize redraws both
        // prompt rows with the editor open.
        let mark = format!("%{}", " ".repeat(80));
        let texts = [
            format!("{mark}\x1b[J~ % \x1b[K\x1b[?1h\x1b=\x1b[?2004hc\x08cat data/re\x07"),
            "report-02.csv  report-03.csvcat data/re\x08 \x08\x08 \x08".to_string(),
            "\x1b[J\x1b[A\x1b[13C\x1b[9D         \x1b[9De\x08echo again\x1b[?1l\x1b>\x1b[?2004l"
                .to_string(),
            "again".to_string(),
            format!("{mark}\x1b[Jhost ~"),
            "> \x1b[K\x1b[20C12:00\x1b[25D\x1b[?1h\x1b=\x1b[?2004h\x1b[A\x1b[J\x1b[1mhost ~"
                .to_string(),
            "> \x1b[K\x1b[20C12:01\x1b[25Du\x08uptime\x1b[?1l\x1b>\x1b[?2004l".to_string(),
        ];
        let shown: Vec<_> = reconstruct_stream_lines(&texts)
            .into_iter()
            .map(|line| (line.text, line.prompt_end, line.editor))
            .collect();
        let line = |text: &str, end: Option<usize>, editor| (text.to_string(), end, editor);
        assert_eq!(
            shown,
            vec![
                line("", None, false),
                line("report-02.csv  report-03.csvcat data/", None, false),
                line("~ % echo again", Some(4), true),
                line("again", None, false),
                line("host ~", None, false),
                line("", None, false),
                line("> uptime", Some(2), true),
            ]
        );
    }

    #[test]
    fn test_fish_editor_row_is_carried_through_its_pager() {
        // fish-default, streamed: Ctrl-R opens the history pager below the prompt's row; fish
        // goes up to the row to show each match (`for …` first, then `echo hello from`, once
        // in a line the agent stripped), and Enter accepts the match from a later line.
        let sgr0 = "\x1b[30m\x1b(B\x1b[m";
        let mark = format!("\x1b[2m⏎\x1b(B\x1b[m{}⏎ \x1b[K", " ".repeat(79));
        let texts = [
            format!(
                "{mark}\x1b[?2004h\x1b]0;~\x07{sgr0}\x1b[92mssm-user\x1b(B\x1b[m@\x1b(B\x1b[m\
                 ip-10-0-0-12\x1b(B\x1b[m \x1b[32m~\x1b(B\x1b[m\x1b(B\x1b[m> \x1b[K\x1b[25C"
            ),
            "search: h           ".to_string(),
            format!(
                "\x1b[9C{sgr0}\x1b[A\x1b[A\x1b[A\x1b[16C\x1b[34mfor{sgr0} \x1b[36mf{sgr0} \
                 \x1b[34min{sgr0} \x1b[36m\x1b[4mnotes.txt{sgr0} \x1b[36m\x1b[4mdeploy.sh"
            ),
            "echo hello from".to_string(),
            "search: he          ".to_string(),
            format!("\x1b[7m► echo hello from\x1b(B\x1b[m  ► \x1b[34mecho{sgr0}\x1b[J\x1b[A\x1b[A"),
            format!("\x1b[10C\x1b[A\x1b[15C\x1b[34mecho{sgr0} \x1b[36mhello{sgr0} \x1b[36mfrom"),
            format!("\x1b[10C{sgr0}\x1b[4ml         \x1b[A"),
            String::new(),
            format!("{sgr0}\x1b[?2004l\x1b]0;echo hello from ~\x07{sgr0}hello from"),
        ];
        let shown: Vec<String> =
            reconstruct_stream_lines(&texts).into_iter().map(|line| line.text).collect();
        assert_eq!(shown[0], "ssm-user@ip-10-0-0-12 ~> echo hello from", "{shown:?}");
        assert_eq!(shown.last().map(String::as_str), Some("hello from"), "{shown:?}");
        // Only the opening line shows the editor's row.
        assert!(shown[1..].iter().all(|text| !text.contains("~> ")), "{shown:?}");
    }

    #[test]
    fn test_zsh_eol_mark_starts_a_stripped_prompt_line() {
        let blanks = " ".repeat(80);
        assert!(starts_with_zsh_eol_mark(&format!("#{blanks}u@h ~ % rm -rf /tmp/x")));
        assert!(starts_with_zsh_eol_mark(&format!("%{blanks}~ % ls")));
        assert!(!starts_with_zsh_eol_mark(&format!("%{blanks}")));
        assert!(!starts_with_zsh_eol_mark("# comment in output"));
        assert!(!starts_with_zsh_eol_mark("[u@h ~]$ ls"));
    }

    #[test]
    fn test_width_defaults_to_80_without_evidence() {
        let stream = [format!("{PROMPT}ls"), format!("{PROMPT}echo a"), "a".to_string()];
        let views: Vec<&str> = stream.iter().map(String::as_str).collect();
        assert_eq!(Layout::infer(&views).width, DEFAULT_WIDTH);
        // A prompt-shaped line seen once (output imitating a prompt) is no redraw evidence.
        let views = ["sh-4.2$ x", "[u@h ~]$ printf 'sh-4.2$ x'"];
        assert!(Layout::infer(&views).prompts.is_empty());
    }

    #[test]
    fn test_edit_across_the_wrap_is_replayed() {
        // bash-long-wrap: 77 x Left across the wrap point, 4 x BSpace, "INFO", Enter. Moving
        // into the row above and the reprints' way back are stripped.
        let prompt = "[ssm-user@ip-10-0-0-12 ~]$ ";
        let stream = line(&[
            prompt,
            "grep -n -e ERROR -e WARN app/logs/app.log app/logs/ac cess.log | sort -t: -k2 | head -n 4 | cut -c1-60",
            &bs(76),
            " app/logs/app.log app/logs/acce",
            &bs(1),
            " app/logs/app.log app/logs/acces",
            &bs(1),
            " app/logs/app.log app/logs/access",
            &bs(1),
            " app/logs/app.log app/logs/access.I app/logs/app.log app/logs/access.N app/logs/app.log app/logs/accessF app/logs/app.log app/logs/accesO app/logs/app.log app/logs/acce",
        ]);
        assert_eq!(
            reconstruct(&stream, &layout(80, prompt)),
            format!(
                "{prompt}grep -n -e ERROR -e INFO app/logs/app.log app/logs/access.log | sort -t: -k2 | head -n 4 | cut -c1-60"
            )
        );
    }

    #[test]
    fn test_deletion_after_an_unseen_move_right() {
        // bash-history-recall: Up x4, C-a, M-f x3 (unseen), C-w, "WARN".
        let stream = line(&[
            PROMPT,
            "wc -l logs/access.log",
            &bs(21),
            "grep -c INFO logs/app.log",
            &bs(29),
            " logs/app.log",
            &bs(13),
            "W logs/app.log",
            &bs(13),
            "A logs/app.log",
            &bs(13),
            "R logs/app.log",
            &bs(13),
            "N logs/app.log",
            &bs(13),
        ]);
        assert_eq!(
            reconstruct(&stream, &layout(80, PROMPT)),
            format!("{PROMPT}grep -c WARN logs/app.log")
        );
        // Without readline's way back to the deletion, the text is no reprint of the tail.
        let stream = line(&[PROMPT, "grep -c INFO logs/app.log", &bs(29), " logs/app.log"]);
        assert_eq!(reconstruct(&stream, &layout(80, PROMPT)), format!("{PROMPT} logs/app.log"));
    }

    #[test]
    fn test_incremental_search_keeps_the_match() {
        // bash-history-recall: C-r "INFO", C-e, " logs/access.log", Enter.
        let stream = line(&[
            PROMPT,
            "(reverse-i-search)`': ",
            &bs(3),
            "I': grep -c INFO logs/app.log",
            &bs(28),
            "N': grep -c IN",
            &bs(13),
            "F': grep -c INF",
            &bs(14),
            "O': grep -c INFO",
            &bs(4),
            PROMPT,
            "grep -c INFO",
            &bs(4),
            " logs/access.log",
        ]);
        let shown = reconstruct(&stream, &layout(80, PROMPT));
        assert!(
            shown.ends_with(&format!("{PROMPT}grep -c INFO logs/app.log logs/access.log")),
            "{shown}"
        );
        // C-r then C-g restores the line; what is typed then is the command.
        let stream = line(&[
            PROMPT,
            "(reverse-i-search)`': ",
            &bs(3),
            "c': grep -c INFO logs/app.log logs/access.log",
            &bs(8),
            "d': cd app",
            &bs(6),
            PROMPT,
            "pwd",
        ]);
        assert!(reconstruct(&stream, &layout(80, PROMPT)).ends_with(&format!("{PROMPT}pwd")));
        // Left after the search shows as more backspaces: no append to the end is assumed.
        let stream = line(&[
            PROMPT,
            "(reverse-i-search)`': ",
            &bs(3),
            "l': ls -l",
            &bs(2),
            PROMPT,
            "ls -l",
            &bs(3),
            "x",
        ]);
        assert_eq!(reconstruct(&stream, &layout(80, PROMPT)).rsplit(PROMPT).next(), Some("lsx"));
    }

    #[test]
    fn test_reprints_rubouts_and_kills() {
        let prompt = "[ssm-user@ip-10-0-0-12 ~]$ ";
        let cases: &[(&[&str], &str)] = &[
            // Left x3 then "o": the rest of the line is reprinted, the cursor goes back.
            (&["echo wrld", "\u{8}\u{8}\u{8}", "orld", "\u{8}\u{8}\u{8}"], "echo world"),
            // Delete: ESC[1P stripped, the rest reprinted.
            (&["echo abXcd", "\u{8}\u{8}\u{8}", "cd", "\u{8}\u{8}"], "echo abcd"),
            // Rubout x3 (`\b ESC[K`), then typing.
            (&["ehco", "\u{8}\u{8}\u{8}", "cho fixed"], "echo fixed"),
            // C-u.
            (&["rm -rf ~/app", &"\u{8}".repeat(12), "ls -d app"], "ls -d app"),
            // M-b, C-k, "third ", C-y.
            (&["echo first second", &"\u{8}".repeat(6), "third second"], "echo first third second"),
            // Left x10 then Enter runs the whole line; C-w then Enter looks the same once the
            // erase is stripped: the text is kept, so nothing that may have run is hidden.
            (&["cat notes.txt manual.txt", &"\u{8}".repeat(10)], "cat notes.txt manual.txt"),
            // A failed completion rings the bell.
            (&["cat data/rep\u{7}ort-2026-0\u{7}"], "cat data/report-2026-0"),
        ];
        for (parts, expected) in cases {
            let stream = format!("{prompt}{}", parts.concat());
            assert_eq!(
                reconstruct(&stream, &layout(80, prompt)),
                format!("{prompt}{expected}"),
                "{stream:?}"
            );
        }
        // dash erases with `\b \b`.
        let stream = "$ ^[[A\u{8} \u{8}\u{8} \u{8}\u{8} \u{8}\u{8} \u{8}pwd";
        assert_eq!(reconstruct(stream, &Layout::default()), "$ pwd");
    }

    #[test]
    fn test_prompt_glued_to_output_counts_columns_from_the_prompt() {
        // bash-fake-prompts: `printf 'no newline at the end'`; readline's columns start at
        // its prompt, wherever the output left the cursor.
        let prompt = "[alice@ip-10-0-0-12 ~]$ ";
        let stream = format!(
            "no newline at the end{prompt}echo '$ ls' > /tmp/alice-fake.txt; cat /tmp/alice-fake.t xt"
        );
        assert_eq!(
            reconstruct(&stream, &layout(80, prompt)),
            format!(
                "no newline at the end{prompt}echo '$ ls' > /tmp/alice-fake.txt; cat /tmp/alice-fake.txt"
            )
        );
    }

    #[test]
    fn test_unstripped_line_is_unwrapped_from_its_last_prompt() {
        // The agent keeps a line whose escapes it cannot parse (a BEL-terminated title).
        let prompt = "[ec2-user@ip-10-0-0-12 ~]$ ";
        let text = format!(
            "\u{1b}]0;t\u{7}\u{1b}[1;32m{}\u{1b}[0m \u{1b}[K\u{1b}]0;t\u{7}\u{1b}[1;32m{}\u{1b}[0m printf '\\033[31mred\\033[0m \\033[1;33mbold yellow\\033[ 0m\\n'",
            prompt.trim_end(),
            prompt.trim_end()
        );
        let shown = reconstruct_lines(&[format!("{prompt}ls"), format!("{prompt}ls"), text]);
        assert_eq!(
            shown[2],
            format!(
                "{prompt}{prompt}printf '\\033[31mred\\033[0m \\033[1;33mbold yellow\\033[0m\\n'"
            )
        );
    }

    proptest! {
        #[test]
        fn test_any_stripped_line_replays_without_panic(parts in proptest::collection::vec(prop_oneof![
            Just("\u{8}".to_string()), Just(" ".to_string()), Just(PROMPT.to_string()),
            Just("(reverse-i-search)`".to_string()), Just("': ".to_string()), Just("日".to_string()),
            Just("\u{7}".to_string()), Just("\u{1b}[K".to_string()), "[a-z]{1,12}",
        ], 0..80), width in 2usize..120) {
            let text = parts.concat();
            let layout = layout(width, PROMPT);
            let first = reconstruct(&text, &layout);
            prop_assert_eq!(&first, &reconstruct(&text, &layout));
            let _ = reconstruct_lines(&[text.clone(), text]);
        }

        #[test]
        fn test_plain_lines_replay_as_the_model_does(parts in proptest::collection::vec(prop_oneof![
            Just(" ".to_string()), Just(PROMPT.to_string()), Just(PROMPT[..7].to_string()),
            Just("$ ".to_string()), Just("(reverse-i-search)`".to_string()), "[ -~]{1,12}",
        ], 0..40), width in 2usize..120) {
            let text = parts.concat();
            let layout = layout(width, PROMPT);
            let prompt_len = leading_prompt_len(&text);
            prop_assert_eq!(
                replay(text.clone(), prompt_len, &layout),
                replay_in_model(&text, prompt_len, &layout)
            );
        }

        #[test]
        fn test_any_fish_like_stream_lines_reconstruct_without_panic(lines in proptest::collection::vec(
            proptest::collection::vec(prop_oneof![
                Just("\u{1b}[?2004h".to_string()), Just("\u{1b}[?2004l".to_string()),
                Just("⏎ \u{1b}[K".to_string()), Just("\u{1b}(B\u{1b}[m".to_string()),
                Just("\u{1b}]0;~\u{7}".to_string()), Just("u@h ~> ".to_string()),
                Just("\u{1b}[A".to_string()), Just("\u{1b}[25C".to_string()),
                Just("\u{1b}[3D".to_string()), Just("\u{1b}[J".to_string()), Just("\u{1b}[K".to_string()),
                Just("\u{8}".to_string()), Just("日".to_string()), "[a-z ]{1,12}",
            ], 0..24).prop_map(|parts| parts.concat()),
            0..40,
        )) {
            let shown = reconstruct_stream_lines(&lines);
            prop_assert_eq!(shown.len(), lines.len());
        }
    }
}
