//! A terminal model just deep enough to reconstruct what each line showed when it scrolled by.
//!
//! Bytes go through `vte` (a real escape-sequence parser); this module interprets the actions a
//! line editor uses to draw and redraw what is being typed: printing over cells, carriage return,
//! backspace, cursor movement within and across the rows of wrapped lines and up into lines
//! above (readline redraws a multi-line buffer that way), insertion and deletion of characters,
//! erasing. Lines are *logical*: a line that wraps at the terminal width stays one line.
//!
//! The last [`WINDOW`] lines stay editable, like the rows of a real screen; older lines are
//! final. Each line remembers the *editor region* it was drawn in: bash ≥ 5.1 switches
//! bracketed paste on (`ESC[?2004h`) when its line editor starts reading and off (`ESC[?2004l`)
//! when the line is accepted (Enter) or abandoned (Ctrl-C), so text drawn between the two is the
//! prompt and what the person typed — never a program's output.
//!
//! Full-screen programs (the alternate screen: vim, less, top) are skipped. Absolute cursor
//! addressing or clearing the screen outside it (`clear`) finalises what was on screen.

use std::collections::VecDeque;

use unicode_width::UnicodeWidthChar as _;

/// Columns assumed when nothing says otherwise (the SSM agent's pty default for Linux clients).
pub const DEFAULT_WIDTH: usize = 80;

/// Narrowest terminal a wrap can reveal.
const MIN_WIDTH: usize = 20;

/// Widest terminal an end-of-line mark is looked for at: a mark row is that wide (or one cell
/// more), so longer lines are never scanned for one (a hostile line of 64K blanks would be
/// scanned again at each of its CRs).
const MAX_MARK_WIDTH: usize = 1024;

/// Most parameters of a CSI sequence [`LineTerminal::simple_csi`] reads (`vte` takes 32).
const SIMPLE_CSI_PARAMS: usize = 16;

/// Logical lines that stay editable (a screen's worth).
pub const WINDOW: usize = 48;

/// fish's end-of-line mark.
const FISH_EOL_MARK: char = '⏎';

/// Longest line kept, in cells; anything past it is dropped (a 1 GiB line must not take 1 GiB × 4).
pub const MAX_LINE_CELLS: usize = 64 * 1024;

/// Most bytes of an unfinished input line [`LineTerminal::feed`] holds back until its newline
/// arrives (so that lines know where their bytes end, as with the whole input at once); a
/// longer line is interpreted as it comes, its range then ending where a chunk did.
pub const MAX_HELD_LINE_BYTES: usize = 1024 * 1024;

/// A finished line as the terminal showed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScreenLine {
    /// The text, trailing blanks removed.
    pub text: String,
    /// Offset of the line's first byte in the input.
    pub start: usize,
    /// Offset just past the line's last byte.
    pub end: usize,
    /// The editor region (numbered from 0 in order) the line was drawn in, if any.
    pub region: Option<u32>,
    /// Where the line editor opened, after its prompt (see [`LineMarks`]).
    pub prompt_end: Option<usize>,
    /// The line editor was abandoned on this line (see [`LineMarks`]).
    pub abandoned: bool,
    /// The shell whose editor drew the line (see [`LineMarks`]).
    pub shell: Option<&'static str>,
}

/// What a terminal run found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Screen {
    /// Finished lines, top to bottom.
    pub lines: Vec<ScreenLine>,
    /// Number of editor regions opened (bracketed paste switched on).
    pub regions: u32,
    /// How the last line editor that closed closed: after a keypad reset since it opened
    /// (zsh's `zle-line-finish` on an accepted line) or without one. `None` when none closed.
    pub last_close_after_keypad_reset: Option<bool>,
}

/// One cell: `None` where nothing was written or it was erased.
type Cell = Option<char>;

/// Marks the second cell of a double-width character.
const WIDE_TAIL: char = '\u{0}';

/// Marks the cells a tab skipped after its own (rendered as the one `\t`).
const TAB_FILL: char = '\u{1}';

/// One line on screen. Most lines are only ever appended with printable ASCII (program
/// output): such a line keeps its bytes in `ascii`, one per cell, and becomes `cells` the first
/// time anything else happens to it (an overwrite, an insertion, a tab, a wide character).
/// At most one of the two is non-empty.
#[derive(Debug, Default)]
struct LineState {
    ascii: Vec<u8>,
    cells: Vec<Cell>,
    start: usize,
    end: usize,
    region: Option<u32>,
    /// Cell where the line editor opened after drawing its prompt (zsh: see
    /// [`LineTerminal::set_private_mode`]): the cells before it are the prompt.
    editor_from: Option<usize>,
    /// First cell of a right prompt (zsh's `RPROMPT`): text drawn past the end of the line
    /// by a cursor jump over blanks, before the editor opened or while it is open. Still
    /// apart from what precedes it when the line ends, it is not part of the line.
    right_from: Option<usize>,
    /// The line editor closed on this line without what closes its accepted lines in this
    /// session (see [`LineTerminal::set_private_mode`]): the line was abandoned (Ctrl-C).
    abandoned: bool,
    /// The shell whose editor opened on the line (see [`LineMarks::shell`]).
    shell: Option<&'static str>,
}

impl LineState {
    fn len(&self) -> usize {
        self.ascii.len() + self.cells.len()
    }

    fn is_empty(&self) -> bool {
        self.ascii.is_empty() && self.cells.is_empty()
    }

    fn get(&self, index: usize) -> Option<char> {
        if self.cells.is_empty() {
            self.ascii.get(index).map(|&byte| char::from(byte))
        } else {
            self.cells.get(index).copied().flatten()
        }
    }

    /// What the line's state tells, but where its prompt ends (that needs its text).
    fn marks(&self) -> LineMarks {
        LineMarks {
            region: self.region,
            prompt_end: None,
            abandoned: self.abandoned,
            shell: self.shell,
        }
    }

    /// The cells, converting a byte line first.
    fn cells_mut(&mut self) -> &mut Vec<Cell> {
        if !self.ascii.is_empty() {
            self.cells.extend(self.ascii.iter().map(|&byte| Some(char::from(byte))));
            self.ascii.clear();
        }
        &mut self.cells
    }
}

/// What the terminal tells about a finished line besides its text.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LineMarks {
    /// The editor region (numbered from 0 in order) the line was drawn in, if any.
    pub region: Option<u32>,
    /// Where in the text the line editor opened when it opened after its prompt (zsh): the
    /// text before is the prompt.
    pub prompt_end: Option<usize>,
    /// The editor was abandoned on the line (Ctrl-C in a zsh that resets the keypad on every
    /// accepted line).
    pub abandoned: bool,
    /// The shell whose editor drew the line, as its drawing tells: `zsh` (editor opened after
    /// the prompt, or after zsh's end-of-line mark), `fish` (after fish's `⏎` mark), `bash`
    /// (readline's editor opening with neither).
    pub shell: Option<&'static str>,
}

/// Receives each finished line, top to bottom, as the terminal showed it (trailing blanks
/// removed): the text is borrowed, so a consumer that needs no copy makes none.
pub trait LineSink {
    /// One finished line: its text, the byte range it was drawn from, and its marks.
    fn line(&mut self, text: &str, start: usize, end: usize, marks: LineMarks);
}

impl LineSink for Vec<ScreenLine> {
    fn line(&mut self, text: &str, start: usize, end: usize, marks: LineMarks) {
        self.push(ScreenLine {
            text: text.to_string(),
            start,
            end,
            region: marks.region,
            prompt_end: marks.prompt_end,
            abandoned: marks.abandoned,
            shell: marks.shell,
        });
    }
}

/// Interprets terminal output and hands finished lines to a [`LineSink`].
pub struct LineTerminal<S> {
    width: usize,
    window: VecDeque<LineState>,
    /// Index in `window` of the line the cursor is on.
    current: usize,
    /// Cell index within the current line.
    cursor: usize,
    /// The cursor sits past the last column of a row and wraps on the next print.
    pending_wrap: bool,
    alternate_screen: bool,
    region: Option<u32>,
    regions: u32,
    /// Editor regions opened at the start of a line (bash, fish: the prompt is drawn inside)
    /// and after text on the line (zsh: the prompt is drawn before).
    opens_at_line_start: u32,
    opens_after_text: u32,
    /// The keypad was reset (`ESC[?1l`) since the editor opened, and how many editors closed
    /// so: zsh's `zle-line-finish` (Debian, Ubuntu, oh-my-zsh) resets it when a line is
    /// accepted, not when Ctrl-C abandons it.
    keypad_reset_in_region: bool,
    closes_after_keypad_reset: u32,
    /// Whether the last editor that closed had the keypad reset (see [`Screen`]).
    last_close_after_keypad_reset: Option<bool>,
    /// The end-of-line mark (zsh's `%`/`#`, fish's `⏎`) drawn since the editor last closed.
    eol_mark: Option<char>,
    /// A line the open editor erased (`ESC[J` below the cursor) after opening on it past its
    /// prompt: its window index, where the editor opened, and the shell. zsh redraws a
    /// multi-line prompt so (after a resize, `reset-prompt`): the line drawn again at that
    /// index is the same prompt with the editor at the same column.
    erased_editor_line: Option<(usize, usize, Option<&'static str>)>,
    /// Stripped input: the width zsh's end-of-line mark showed (see
    /// [`LineTerminal::learn_zsh_margin`]).
    zsh_margin: Option<usize>,
    /// Stripped input: zsh wrapped its editor line at this cell (see
    /// [`LineTerminal::csi_dispatch`], `K`), and the character printed there since: the row
    /// it starts is printed again from there, that character first.
    zsh_wrapped_at: Option<(usize, Option<char>)>,
    /// Stripped input: the last move was up (colours aside). zsh goes back to column 0 with a
    /// CR before it moves right on the row it went up to; the agent deleted the CR.
    moved_up: bool,
    /// Stripped input: the line editor, open on the line, went up to a row the line does not
    /// have (zsh redrawing a two-line prompt); what it had opened after (see [`OpenEditor`]).
    editor_left_below: Option<OpenEditor>,
    saved_cursor: (usize, usize),
    /// Cursor after the last printed character, when it was a space (readline's wrap).
    last_printed_space_at: Option<usize>,
    /// A wrap at this column is suspected; a print confirms it.
    wrap_candidate: Option<usize>,
    /// Offset up to which input has been fed, for line ranges.
    fed: usize,
    /// Cell buffers of emitted lines, reused for new ones (no allocation per line).
    spare_cells: Vec<Vec<Cell>>,
    /// Input is a stripped stream line: see [`LineTerminal::run_stripped`].
    stripped: bool,
    /// The last action was a backspace (only tracked for stripped input).
    after_backspace: bool,
    /// Stripped input whose moves right followed a CR the agent deleted (fish).
    right_moves_from_row_start: bool,
    /// Something was printed since the line started (stripped fish lines: see `csi_dispatch`).
    printed_since_line_start: bool,
    /// The last action was a CR. A pty with `onlcr` (every pty a shell runs on) puts a CR
    /// before each LF a program writes: a LF after anything else is from a transcript that lost
    /// its CRs (copied through a tool that turned `\r\n` and `\r` into `\n`), shown as that
    /// terminal showed it, starting its line at column 0.
    after_cr: bool,
    /// `vte` may be inside an escape sequence: bytes go to it until a dispatch ends the
    /// sequence. False only when `vte` is surely in its ground state, where this module handles
    /// printable ASCII and C0 controls itself (see [`LineTerminal::advance`]). Only dispatches
    /// that `vte` makes one byte at a time (CSI, ESC, OSC) clear it; a sequence that ends
    /// otherwise leaves it set, which is slower, never wrong.
    in_escape: bool,
    /// Where finished lines go.
    sink: S,
    /// Buffer a finished line is rendered into (no allocation per line).
    text: String,
    /// Byte buffers of emitted lines, reused for new ones.
    spare_ascii: Vec<Vec<u8>>,
    /// Lines that only ever had printable ASCII appended stay bytes (see [`LineState`]); off
    /// only in tests, as the oracle that the two storages show the same.
    byte_lines: bool,
    /// The escape-sequence parser, kept between [`LineTerminal::feed`] calls (boxed: it is
    /// taken out for each line, and a pointer moves cheaper than the parser).
    parser: Option<Box<vte::Parser>>,
    /// Input bytes interpreted so far (offsets of what comes next start here).
    consumed: usize,
    /// The start of an input line whose newline has not arrived yet (see
    /// [`MAX_HELD_LINE_BYTES`]).
    held: Vec<u8>,
}

impl<S> std::fmt::Debug for LineTerminal<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LineTerminal")
            .field("width", &self.width)
            .field("consumed", &self.consumed)
            .field("regions", &self.regions)
            .finish_non_exhaustive()
    }
}

/// The line editor still open where a stripped stream's line ends (zsh: its lines are split
/// where it moves down, and it closes its editor lines later), for the line that closes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenEditor {
    /// The prompt the editor opened after, as the row shows it.
    prompt: String,
    /// Cells of that prompt (where the editor opened).
    column: usize,
    /// The shell whose editor it is.
    shell: Option<&'static str>,
    /// The editor's row is the one above where the next line starts (the line ended on it),
    /// not that row itself (the line ended on the row above it, redrawing a two-line prompt).
    above: bool,
}

impl OpenEditor {
    /// Whether the editor is fish's: carried whole through every line drawn while it is open
    /// (see [`LineTerminal::run_stripped_in_editor`]).
    pub fn is_fish(&self) -> bool {
        self.shell == Some("fish")
    }

    /// The editor's row as carried (fish: prompt and buffer).
    pub fn row(&self) -> &str {
        &self.prompt
    }

    /// Forgets what fish's editor row shows after its prompt: a line the agent stripped
    /// changed it where its lost moves put the text (`ESC[A ESC[15C echo … ESC[K`), so only
    /// a later redraw tells the buffer.
    pub fn forget_buffer(&mut self) {
        if let Some(prompt) = crate::prompt::editor_prompt(&self.prompt) {
            self.prompt.truncate(prompt.len);
        }
    }
}

impl LineTerminal<Vec<ScreenLine>> {
    /// Interprets `bytes` and returns every line, the last unfinished one included.
    pub fn run(width: usize, bytes: &[u8]) -> Screen {
        let mut terminal = LineTerminal::new(width, Vec::new());
        terminal.feed(bytes);
        terminal.interpret_held();
        let last_close_after_keypad_reset = terminal.last_close_after_keypad_reset;
        let (lines, regions) = terminal.finish();
        Screen { lines, regions, last_close_after_keypad_reset }
    }

    /// Interprets one line of a stripped stream (CloudWatch streaming), where the agent deleted
    /// the escape sequences: a run of backspaces followed by text stands for readline's
    /// `backspaces, ESC[K, text`, since the erase that came with it is gone.
    pub fn run_stripped(width: usize, bytes: &[u8]) -> Screen {
        LineTerminal::run_stripped_in_editor(width, bytes, None).0
    }

    /// [`LineTerminal::run_stripped`] for a line drawn while the editor that an earlier line
    /// left open (`open`) is still open: its prompt is on the row where the editor's row is.
    /// Also returns the editor this line leaves open, if any.
    pub fn run_stripped_in_editor(
        width: usize,
        bytes: &[u8],
        open: Option<&OpenEditor>,
    ) -> (Screen, Option<OpenEditor>) {
        let mut terminal = LineTerminal::new(width, Vec::new());
        terminal.stripped = true;
        // fish positions its cursor with CR then a move right (`\r ESC[nC`), and writes
        // `ESC ( B` (terminfo's sgr0) around what it colours: in its lines, with the CRs gone,
        // a move right counts from the start of the row (see `csi_dispatch`, `C`).
        terminal.right_moves_from_row_start = memchr::memmem::find(bytes, b"\x1b(B").is_some();
        if let Some(open) = open {
            terminal.region = Some(0);
            terminal.regions = 1;
            for c in open.prompt.chars() {
                terminal.put_char(c);
            }
            let line = terminal.line();
            // fish's editor opens before its prompt: no column tells where the prompt ends.
            line.editor_from = (open.column > 0).then_some(open.column);
            line.shell = open.shell;
            if open.above {
                terminal.start_new_line();
            }
            terminal.move_to(0);
        }
        terminal.feed(bytes);
        terminal.interpret_held();
        let left_open = terminal.open_editor();
        let last_close_after_keypad_reset = terminal.last_close_after_keypad_reset;
        let (lines, regions) = terminal.finish();
        (Screen { lines, regions, last_close_after_keypad_reset }, left_open)
    }
}

impl<S: LineSink> LineTerminal<S> {
    /// Returns a terminal `width` columns wide.
    pub fn new(width: usize, sink: S) -> Self {
        let mut window = VecDeque::with_capacity(WINDOW + 1);
        window.push_back(LineState::default());
        LineTerminal {
            width: width.max(2),
            window,
            current: 0,
            cursor: 0,
            pending_wrap: false,
            alternate_screen: false,
            region: None,
            regions: 0,
            opens_at_line_start: 0,
            opens_after_text: 0,
            keypad_reset_in_region: false,
            closes_after_keypad_reset: 0,
            last_close_after_keypad_reset: None,
            eol_mark: None,
            erased_editor_line: None,
            zsh_margin: None,
            zsh_wrapped_at: None,
            moved_up: false,
            editor_left_below: None,
            saved_cursor: (0, 0),
            last_printed_space_at: None,
            wrap_candidate: None,
            fed: 0,
            spare_cells: Vec::new(),
            stripped: false,
            after_backspace: false,
            right_moves_from_row_start: false,
            printed_since_line_start: false,
            after_cr: false,
            in_escape: false,
            sink,
            text: String::new(),
            spare_ascii: Vec::new(),
            byte_lines: true,
            parser: Some(Box::new(vte::Parser::new())),
            consumed: 0,
            held: Vec::new(),
        }
    }

    /// The editor left open at the end of a stripped line (see [`OpenEditor`]).
    fn open_editor(&mut self) -> Option<OpenEditor> {
        self.region?;
        if let Some(below) = self.editor_left_below.take() {
            return Some(below);
        }
        self.open_fish_editor().or_else(|| self.open_editor_on_current_line(true))
    }

    /// fish's editor left open: fish opens it before drawing its prompt, draws its pagers below
    /// the prompt's row and goes back up to redraw the buffer there, a stream line at each row
    /// it moves down to. The editor's row is the first the open editor drew on; it is carried
    /// whole (prompt and buffer), for the lines that redraw it or accept it.
    fn open_fish_editor(&self) -> Option<OpenEditor> {
        let line = self.window.iter().find(|line| line.region.is_some())?;
        if line.shell != Some("fish") {
            return None;
        }
        let mut prompt = String::new();
        if line.cells.is_empty() {
            prompt.extend(line.ascii.iter().map(|&byte| char::from(byte)));
        } else {
            render(&line.cells, &mut prompt);
        }
        Some(OpenEditor { prompt, column: 0, shell: line.shell, above: true })
    }

    /// The editor opened on the current line after its prompt, if it did.
    fn open_editor_on_current_line(&mut self, above: bool) -> Option<OpenEditor> {
        let line = &self.window[self.current];
        let column = line.editor_from.filter(|&column| column > 0 && column <= line.len())?;
        let prompt = (0..column).filter_map(|index| line.get(index)).collect();
        Some(OpenEditor { prompt, column, shell: line.shell, above })
    }

    /// Interprets the next bytes of the input, which may come in chunks of any size: the lines
    /// are the same as with the whole input at once (for input lines up to
    /// [`MAX_HELD_LINE_BYTES`]), and memory does not grow with the input.
    pub fn feed(&mut self, bytes: &[u8]) {
        let mut rest = bytes;
        if !self.held.is_empty() {
            let Some(newline) = memchr::memchr(b'\n', rest) else {
                self.held.extend_from_slice(rest);
                if self.held.len() > MAX_HELD_LINE_BYTES {
                    self.interpret_held();
                }
                return;
            };
            self.held.extend_from_slice(&rest[..=newline]);
            rest = &rest[newline + 1..];
            self.interpret_held();
        }
        // Up to each line feed at a time, so that lines know where their bytes end.
        let mut position = 0;
        for newline in memchr::memchr_iter(b'\n', rest) {
            self.interpret(&rest[position..=newline]);
            position = newline + 1;
        }
        let unfinished = &rest[position..];
        if unfinished.len() > MAX_HELD_LINE_BYTES {
            self.interpret(unfinished);
        } else {
            self.held.extend_from_slice(unfinished);
        }
    }

    /// Interprets what is held and returns the sink, having handed it every line, the last
    /// unfinished one included, and the number of editor regions opened.
    pub fn finish(mut self) -> (S, u32) {
        self.interpret_held();
        self.flush_window();
        (self.sink, self.regions)
    }

    fn interpret_held(&mut self) {
        let held = std::mem::take(&mut self.held);
        self.interpret(&held);
        self.held = held;
        self.held.clear();
        // A long unfinished line keeps no big buffer once it is interpreted.
        self.held.shrink_to(MAX_HELD_LINE_BYTES / 16);
    }

    /// Interprets one piece of input: a whole line, or the start of a long one.
    fn interpret(&mut self, piece: &[u8]) {
        if piece.is_empty() {
            return;
        }
        self.consumed += piece.len();
        self.fed = self.consumed;
        let mut parser = self.parser.take().unwrap_or_default();
        // A piece cut inside a UTF-8 character: the rest goes through `vte`, which completes it.
        if piece[piece.len() - 1] != b'\n' && ends_in_partial_utf8(piece) {
            self.advance(&mut parser, piece);
            self.in_escape = true;
        } else {
            self.advance(&mut parser, piece);
        }
        self.parser = Some(parser);
    }

    /// Interprets `bytes` exactly as `parser.advance(self, bytes)` would, faster.
    ///
    /// Most of a transcript is printable ASCII outside any escape sequence. While `vte` is in
    /// its ground state (it leaves it only at ESC), such a run is written to the cells in one
    /// go, and C0 controls are executed directly, as `vte` would; escape sequences and
    /// non-ASCII text (UTF-8 decoding and its errors) still go through `vte`.
    fn advance(&mut self, parser: &mut vte::Parser, bytes: &[u8]) {
        let mut index = 0;
        while index < bytes.len() {
            if self.in_escape {
                // Returns once a dispatch ends the sequence (`terminated`), or at the end.
                index += parser.advance_until_terminated(self, &bytes[index..]);
                continue;
            }
            let byte = bytes[index];
            match byte {
                0x20..=0x7e => {
                    let run = printable_run(&bytes[index..]);
                    self.print_ascii(&bytes[index..index + run]);
                    index += run;
                }
                0x1b => match self.simple_csi(&bytes[index..]) {
                    Some(length) => index += length,
                    None => self.in_escape = true,
                },
                0x00..=0x1f => {
                    vte::Perform::execute(self, byte);
                    index += 1;
                }
                _ => {
                    // DEL or non-ASCII. The run ends at an ASCII byte, never inside a character.
                    let run = bytes[index..]
                        .iter()
                        .position(|b| *b < 0x7f)
                        .unwrap_or(bytes.len() - index);
                    let mut end = index + run;
                    // A character cut short: `vte` keeps its first bytes until the next call.
                    // Give it the byte that ends the attempt now, so that it is resolved.
                    if end < bytes.len() && ends_in_partial_utf8(&bytes[index..end]) {
                        self.in_escape = bytes[end] == 0x1b;
                        end += 1;
                    }
                    parser.advance(self, &bytes[index..end]);
                    index = end;
                }
            }
        }
    }

    /// Reads and dispatches the CSI sequence at the start of `bytes` when it is a simple one
    /// (`ESC [`, perhaps `?`, parameters of digits and `;`, a final character), as `vte` would;
    /// returns its length. Anything else (another escape, intermediates, sub-parameters, a
    /// control character inside, more than [`SIMPLE_CSI_PARAMS`] parameters, a sequence the
    /// piece cuts) is left to `vte`. Most escapes of a line editor's redraws are simple.
    fn simple_csi(&mut self, bytes: &[u8]) -> Option<usize> {
        let rest = bytes.strip_prefix(b"\x1b[")?;
        let (intermediates, rest): (&[u8], _) = match rest.strip_prefix(b"?") {
            Some(rest) => (b"?", rest),
            None => (b"", rest),
        };
        let mut params = [0u16; SIMPLE_CSI_PARAMS];
        let mut count = 0;
        let mut value: u16 = 0;
        for (index, &byte) in rest.iter().enumerate() {
            match byte {
                b'0'..=b'9' => {
                    value = value.saturating_mul(10).saturating_add(u16::from(byte - b'0'))
                }
                b';' => {
                    *params.get_mut(count)? = value;
                    count += 1;
                    value = 0;
                }
                0x40..=0x7e => {
                    *params.get_mut(count)? = value;
                    count += 1;
                    self.csi(params[..count].iter().copied(), intermediates, char::from(byte));
                    return Some(bytes.len() - rest.len() + index + 1);
                }
                _ => return None,
            }
        }
        None
    }

    /// Prints a run of printable ASCII: what `print` does for each byte, in one go.
    fn print_ascii(&mut self, run: &[u8]) {
        self.after_cr = false;
        self.moved_up = false;
        self.printed_since_line_start = true;
        if self.alternate_screen || run.is_empty() {
            return;
        }
        let mut run = run;
        // After zsh's wrap the first two characters settle it (see `print`).
        while self.zsh_wrapped_at.is_some()
            && let Some((&first, rest)) = run.split_first()
        {
            vte::Perform::print(self, first as char);
            run = rest;
        }
        if run.is_empty() {
            return;
        }
        // The first character settles what the previous action left pending (a stripped
        // backspace's erase, a suspected wrap).
        if self.after_backspace || self.wrap_candidate.is_some() {
            vte::Perform::print(self, run[0] as char);
            run = &run[1..];
            if run.is_empty() {
                return;
            }
        }
        let cursor = self.cursor;
        let end = cursor + run.len();
        if end > MAX_LINE_CELLS {
            for &byte in run {
                vte::Perform::print(self, byte as char);
            }
            return;
        }
        let region = self.region;
        let byte_lines = self.byte_lines;
        let line = self.line();
        if region.is_some() {
            line.region = region;
        }
        if byte_lines && line.cells.is_empty() && cursor == line.ascii.len() {
            line.ascii.extend_from_slice(run);
        } else {
            Self::write_ascii_cells(line.cells_mut(), cursor, run);
        }
        self.cursor = end;
        self.pending_wrap = end.is_multiple_of(self.width);
        self.last_printed_space_at = (run[run.len() - 1] == b' ').then_some(end);
    }

    /// Writes a run of printable ASCII into `cells` at `cursor`, as `set_cell` would one by one.
    fn write_ascii_cells(cells: &mut Vec<Cell>, cursor: usize, run: &[u8]) {
        let end = cursor + run.len();
        if cursor > cells.len() {
            cells.resize(cursor, None);
        }
        // Overwriting half of a double-width character blanks its other half.
        if cursor > 0 && cells.get(cursor) == Some(&Some(WIDE_TAIL)) {
            cells[cursor - 1] = Some(' ');
        }
        if cells.get(end) == Some(&Some(WIDE_TAIL)) {
            cells[end] = Some(' ');
        }
        let overwritten = cells.len().min(end) - cursor;
        for (cell, &byte) in cells[cursor..cursor + overwritten].iter_mut().zip(run) {
            *cell = Some(byte as char);
        }
        cells.extend(run[overwritten..].iter().map(|&byte| Some(byte as char)));
    }

    fn line(&mut self) -> &mut LineState {
        let fed = self.fed;
        let line = &mut self.window[self.current];
        line.end = line.end.max(fed);
        line
    }

    fn row_start(&self) -> usize {
        // With a pending wrap the cursor is logically at the start of the next row, but the
        // terminal still shows it on the last column of the row just filled.
        let column_base = if self.pending_wrap { self.cursor - 1 } else { self.cursor };
        column_base - column_base % self.width
    }

    fn last_row_start(&self) -> usize {
        let len = self.window[self.current].len().max(1);
        (len - 1) - (len - 1) % self.width
    }

    fn put_char(&mut self, c: char) {
        let char_width = if c.is_ascii_graphic() || c == ' ' { 1 } else { c.width().unwrap_or(0) };
        if char_width == 0 || self.cursor + char_width > MAX_LINE_CELLS {
            return;
        }
        // A double-width character that does not fit in the row's last column wraps first.
        if char_width == 2 && self.cursor % self.width == self.width - 1 {
            self.set_cell(self.cursor, None);
            self.cursor += 1;
        }
        self.set_cell(self.cursor, Some(c));
        if char_width == 2 {
            self.set_cell(self.cursor + 1, Some(WIDE_TAIL));
        }
        self.cursor += char_width;
        self.pending_wrap = self.cursor.is_multiple_of(self.width);
        if let Some(region) = self.region {
            self.line().region = Some(region);
        }
    }

    fn set_cell(&mut self, index: usize, cell: Cell) {
        let cells = self.line().cells_mut();
        // Typing at the end of the line, the common case.
        if index == cells.len() {
            cells.push(cell);
            return;
        }
        if index > cells.len() {
            cells.resize(index + 1, None);
        }
        // Overwriting half of a double-width character blanks the other half, as terminals do.
        if cells[index] == Some(WIDE_TAIL) && cell != Some(WIDE_TAIL) && index > 0 {
            cells[index - 1] = Some(' ');
        }
        if cell != Some(WIDE_TAIL) && cells.get(index + 1) == Some(&Some(WIDE_TAIL)) {
            cells[index + 1] = Some(' ');
        }
        cells[index] = cell;
    }

    fn move_to(&mut self, cursor: usize) {
        self.cursor = cursor.min(MAX_LINE_CELLS);
        self.pending_wrap = false;
    }

    fn line_feed(&mut self) {
        self.printed_since_line_start = false;
        let row_start = self.row_start();
        let column = self.cursor - row_start;
        // Moving down inside a wrapped line keeps the line.
        if row_start < self.last_row_start() {
            self.move_to(row_start + self.width + column.min(self.width - 1));
            return;
        }
        self.line();
        if self.current + 1 < self.window.len() {
            // Back down into a line drawn before (after the editor moved up to redraw).
            self.current += 1;
            self.move_to(column.min(self.width - 1));
            return;
        }
        let mut line = self.fresh_line();
        if let Some((index, editor_from, shell)) = self.erased_editor_line
            && index == self.window.len()
        {
            // The open editor's prompt line, drawn again after an erase below.
            self.erased_editor_line = None;
            line.editor_from = Some(editor_from);
            line.shell = shell;
        }
        self.window.push_back(line);
        self.current = self.window.len() - 1;
        self.move_to(column);
        while self.window.len() > WINDOW {
            self.finish_front();
        }
    }

    fn start_new_line(&mut self) {
        self.line();
        let line = self.fresh_line();
        self.window.push_back(line);
        self.current = self.window.len() - 1;
        self.move_to(0);
        while self.window.len() > WINDOW {
            self.finish_front();
        }
    }

    fn cursor_up(&mut self, count: usize) {
        let mut remaining = count;
        let mut row_start = self.row_start();
        let column = self.cursor - row_start;
        while remaining > 0 {
            if row_start >= self.width {
                row_start -= self.width;
            } else if self.current > 0 {
                self.current -= 1;
                let len = self.window[self.current].len().max(1);
                row_start = (len - 1) - (len - 1) % self.width;
            } else {
                // A stripped stream's line is alone: the editor went up to a line it does not
                // have, and what it draws next is not where its prompt ended.
                if self.stripped {
                    if self.region.is_some() {
                        self.editor_left_below = self.open_editor_on_current_line(false);
                    }
                    self.line().editor_from = None;
                }
                break;
            }
            remaining -= 1;
        }
        self.move_to(row_start + column.min(self.width - 1));
    }

    fn finish_front(&mut self) {
        if let Some(line) = self.window.pop_front() {
            self.current = self.current.saturating_sub(1);
            self.emit(line);
        }
    }

    /// Returns a fresh line starting at the current input offset, reusing a freed buffer.
    fn fresh_line(&mut self) -> LineState {
        let mut cells = self.spare_cells.pop().unwrap_or_default();
        cells.clear();
        let mut ascii = self.spare_ascii.pop().unwrap_or_default();
        ascii.clear();
        LineState {
            ascii,
            cells,
            start: self.fed,
            end: self.fed,
            region: None,
            editor_from: None,
            right_from: None,
            abandoned: false,
            shell: None,
        }
    }

    fn emit(&mut self, mut line: LineState) {
        let end = line.end.max(line.start);
        if let Some(from) = line.right_from.take()
            && from > 0
            && from < line.len()
            && line.get(from - 1).is_none_or(|c| c == ' ')
        {
            // Still apart from the input: a right prompt, not input.
            let cells = line.cells_mut();
            cells.truncate(from);
        }
        if line.cells.is_empty() {
            // A byte line is its own text.
            let text = std::str::from_utf8(&line.ascii).unwrap_or_default();
            debug_assert!(text.len() == line.ascii.len(), "only printable ASCII is appended");
            let text = text.trim_end_matches(' ');
            let prompt_end = line.editor_from.map(|cells| cells.min(text.len()));
            let marks = LineMarks { prompt_end, ..line.marks() };
            self.sink.line(text, line.start, end, marks);
        } else {
            render(&line.cells, &mut self.text);
            let prompt_end = line.editor_from.map(|cells| {
                let cells = cells.min(line.cells.len());
                rendered_len(&line.cells[..cells]).min(self.text.len())
            });
            let marks = LineMarks { prompt_end, ..line.marks() };
            self.sink.line(&self.text, line.start, end, marks);
        }
        if self.spare_cells.len() < WINDOW {
            self.spare_cells.push(std::mem::take(&mut line.cells));
            self.spare_ascii.push(std::mem::take(&mut line.ascii));
        }
    }

    /// Finalises every line on screen and starts a fresh one (the screen was cleared).
    fn flush_window(&mut self) {
        let fed = self.fed;
        if let Some(last) = self.window.back_mut() {
            last.end = last.end.max(fed);
        }
        let window = std::mem::take(&mut self.window);
        for line in window {
            if !(line.is_empty() && line.region.is_none()) {
                self.emit(line);
            }
        }
        let line = self.fresh_line();
        self.window.push_back(line);
        self.current = 0;
        self.cursor = 0;
        self.pending_wrap = false;
    }

    fn erase(&mut self, from: usize, to: usize) {
        let editing = self.region.is_some();
        let line = self.line();
        if from == 0 && to >= line.len() && !editing {
            // Wiped once the editor is done: what is drawn next tells what the line is (the
            // editor itself wipes its line to redraw it, prompt included).
            line.region = None;
            line.editor_from = None;
            line.right_from = None;
        }
        // Erasing the end of a byte line (`ESC[K` after what was typed) cuts it.
        if line.cells.is_empty() && to >= line.ascii.len() {
            line.ascii.truncate(from);
            return;
        }
        let cells = line.cells_mut();
        let to = to.min(cells.len());
        for cell in cells.iter_mut().take(to).skip(from) {
            *cell = None;
        }
        // Erased cells at the end are simply not there any more.
        while cells.last() == Some(&None) {
            cells.pop();
        }
    }

    fn insert_blanks(&mut self, count: usize) {
        let cursor = self.cursor;
        let cells = self.line().cells_mut();
        let at = cursor.min(cells.len());
        let count = count.min(MAX_LINE_CELLS.saturating_sub(cells.len()));
        cells.splice(at..at, std::iter::repeat_n(Some(' '), count));
    }

    fn delete_chars(&mut self, count: usize) {
        let cursor = self.cursor;
        let cells = self.line().cells_mut();
        if cursor < cells.len() {
            let end = (cursor + count).min(cells.len());
            cells.drain(cursor..end);
        }
    }

    /// zsh and fish mark output left without a final newline (zsh's `%`, fish's `⏎`) before
    /// each prompt: the mark, then blanks to fill exactly one row, then CR. A line that is one
    /// mark and blanks up to the cursor at that CR shows the terminal's width.
    fn learn_width_from_eol_mark(&mut self, cursor: usize) {
        if !(MIN_WIDTH..=MAX_MARK_WIDTH).contains(&cursor) || self.cursor != cursor {
            return;
        }
        let line = &self.window[self.current];
        let Some(mark) = line.get(0).filter(|&mark| mark != ' ') else {
            return;
        };
        if line.len() != cursor || !(1..cursor).all(|index| line.get(index) == Some(' ')) {
            return;
        }
        self.eol_mark = Some(mark);
        if cursor != self.width {
            self.width = cursor;
            self.pending_wrap = true;
        }
    }

    /// In a stripped stream a zsh line starts with its end-of-line mark (`%` or `#`), the
    /// blanks up to the right edge and the blank of the `\r \r` after them, the CRs deleted:
    /// one cell more than the terminal is wide.
    fn learn_zsh_margin(&mut self) {
        let line = &self.window[self.current];
        let len = line.len();
        if len > MIN_WIDTH
            && len <= MAX_MARK_WIDTH + 1
            && matches!(line.get(0), Some('%' | '#'))
            && (1..len).all(|index| line.get(index) == Some(' '))
        {
            self.zsh_margin = Some(len - 1);
        }
    }

    /// Whether the current line holds only an end-of-line mark (zsh's `%`/`#`, fish's `⏎`)
    /// with the blanks after it, perhaps the mark again: what the mark's CRs leave in a stripped
    /// stream.
    fn is_eol_mark_residue(&mut self) -> bool {
        let line = &self.window[self.current];
        let Some(mark) = line.get(0).filter(|&mark| mark != ' ') else {
            return false;
        };
        let len = line.len();
        let residue = (MIN_WIDTH..=MAX_MARK_WIDTH + 1).contains(&len)
            && (1..len).all(|index| line.get(index).is_none_or(|c| c == ' ' || c == mark));
        if residue {
            self.eol_mark = Some(mark);
        }
        residue
    }

    /// The line editor opens with text before the cursor (returns whether it opened after its
    /// prompt). bash (and fish) open it before
    /// drawing their prompt, as if at column 0: what a program printed without a final newline
    /// is a line of its own. zsh opens it after its prompt (and right prompt): the cells before
    /// the cursor are the prompt, cells drawn after it a right prompt. The session tells which:
    /// the way most of its editors opened so far (the first one, for zsh, after its prompt).
    fn open_editor_after_text(&mut self) -> bool {
        if self.opens_after_text < self.opens_at_line_start {
            self.start_new_line();
            return false;
        }
        self.opens_after_text += 1;
        let cursor = self.cursor;
        let line = self.line();
        line.editor_from = Some(cursor);
        line.right_from =
            (cursor..line.len()).find(|&index| line.get(index).is_some_and(|c| c != ' '));
        true
    }

    fn set_private_mode(&mut self, mode: u16, on: bool) {
        match mode {
            2004 => {
                if on {
                    let after_prompt = self.cursor > 0 && !self.pending_wrap;
                    let zsh_style = after_prompt && self.open_editor_after_text();
                    if !after_prompt {
                        self.opens_at_line_start += 1;
                    }
                    let shell = match self.eol_mark {
                        _ if zsh_style => "zsh",
                        Some(FISH_EOL_MARK) => "fish",
                        Some(_) => "zsh",
                        None => "bash",
                    };
                    self.line().shell = Some(shell);
                    self.region = Some(self.regions);
                    self.regions += 1;
                    self.keypad_reset_in_region = false;
                } else {
                    if self.region.is_some() {
                        self.last_close_after_keypad_reset = Some(self.keypad_reset_in_region);
                        if self.keypad_reset_in_region {
                            self.closes_after_keypad_reset += 1;
                        } else if self.closes_after_keypad_reset > 0 {
                            self.line().abandoned = true;
                        }
                    }
                    self.region = None;
                    self.eol_mark = None;
                    self.erased_editor_line = None;
                }
            }
            1 if !on && self.region.is_some() => self.keypad_reset_in_region = true,
            47 | 1047 | 1049 => {
                if on && !self.alternate_screen {
                    self.flush_window();
                    self.alternate_screen = true;
                } else if !on && self.alternate_screen {
                    self.alternate_screen = false;
                    let fed = self.fed;
                    self.window = VecDeque::from([LineState {
                        start: fed,
                        end: fed,
                        ..LineState::default()
                    }]);
                    self.current = 0;
                    self.move_to(0);
                }
            }
            _ => {}
        }
    }

    /// A CSI sequence, dispatched by `vte` or read by [`LineTerminal::simple_csi`]: the first
    /// value of each of its parameters, its intermediates (`?` for a private mode), its final
    /// character.
    fn csi(&mut self, params: impl IntoIterator<Item = u16>, intermediates: &[u8], action: char) {
        self.in_escape = false;
        self.after_cr = false;
        let space_printed_to = self.last_printed_space_at.take();
        self.zsh_wrapped_at = None;
        let after_up = std::mem::take(&mut self.moved_up);
        self.wrap_candidate = None;
        if intermediates == b"?" {
            if matches!(action, 'h' | 'l') {
                for mode in params {
                    self.set_private_mode(mode, action == 'h');
                }
            }
            return;
        }
        if self.alternate_screen || !intermediates.is_empty() {
            return;
        }
        // Colours, the most frequent sequence, move nothing.
        if action == 'm' {
            self.moved_up = after_up;
            return;
        }
        let row_start = self.row_start();
        let mode = params.into_iter().next().unwrap_or(0);
        // The first parameter as a count: absent or 0 means 1.
        let count = if mode == 0 { 1 } else { usize::from(mode) };
        match action {
            'K' => match mode {
                0 if self.stripped && self.is_eol_mark_residue() => {
                    // The CRs that returned over zsh's or fish's end-of-line mark are gone.
                    self.learn_zsh_margin();
                    self.move_to(0);
                    self.erase(0, usize::MAX);
                }
                0 if self.stripped
                    && self.region.is_some()
                    && let Some(margin) = self.zsh_margin
                    && let Some(after) = space_printed_to
                    && after == self.cursor
                    && after > 1
                    && (after - 1).is_multiple_of(margin) =>
                {
                    // zsh's wrap at the right edge: a blank printed into the next row, CR
                    // (deleted), erase. The next row starts where the blank was.
                    let row = after - 1;
                    self.move_to(row);
                    self.erase(row, usize::MAX);
                    self.zsh_wrapped_at = Some((row, None));
                }
                0 => {
                    let from = self.cursor;
                    self.erase(from, row_start + self.width);
                }
                1 => self.erase(row_start, self.cursor + 1),
                _ => self.erase(row_start, row_start + self.width),
            },
            'J' if mode == 0 => {
                // zsh redraws with CR, then erase below: in a stripped stream the CR is gone.
                // (fish erases below right after its prompt.)
                if self.stripped && !self.right_moves_from_row_start {
                    self.learn_zsh_margin();
                    self.move_to(row_start);
                }
                let from = self.cursor;
                self.erase(from, usize::MAX);
                while self.window.len() > self.current + 1 {
                    let index = self.window.len() - 1;
                    if let Some(line) = self.window.pop_back()
                        && self.region.is_some()
                        && let Some(editor_from) = line.editor_from
                    {
                        self.erased_editor_line = Some((index, editor_from, line.shell));
                    }
                }
            }
            'J' | 'H' | 'f' => self.flush_window(),
            'D' => {
                let base = if self.pending_wrap { self.cursor - 1 } else { self.cursor };
                self.move_to(base.saturating_sub(count).max(row_start));
            }
            'C' => {
                // fish moves right from a CR (deleted) once it has printed on the line, and
                // from where the cursor is while it has only moved (into the line, then up to
                // its editor's row: `ESC[10C ESC[A ESC[15C`); zsh from a CR (deleted) after a
                // move up.
                let from_row_start = if self.right_moves_from_row_start {
                    self.printed_since_line_start
                } else {
                    self.stripped && after_up
                };
                let from = if from_row_start { row_start } else { self.cursor };
                let target = (from + count).min(row_start + self.width - 1);
                // The editor jumping past the end of its line, over blanks: a right prompt.
                if self.region.is_some() && target > self.cursor + 1 {
                    let cursor = self.cursor;
                    let line = self.line();
                    if cursor > 0 && cursor >= line.len() && target > line.len() {
                        line.right_from = Some(target);
                    }
                }
                self.move_to(target);
            }
            'A' => {
                self.cursor_up(count);
                self.moved_up = self.stripped;
            }
            // Scrolling the screen up keeps the cursor on its row: the line under it is
            // `count` lines further down, as after moving down (irb's Reline scrolls before
            // it draws its completion dialog below the last row, then moves up to the line).
            'B' | 'S' => {
                for _ in 0..count.min(WINDOW) {
                    self.line_feed();
                }
            }
            'G' | '`' => {
                let column = count - 1;
                self.move_to(row_start + column.min(self.width - 1));
            }
            '@' => self.insert_blanks(count),
            'P' => self.delete_chars(count),
            'X' => {
                let from = self.cursor;
                self.erase(from, from + count);
            }
            _ => {}
        }
    }
}

/// Writes what `cells` show into `text` (cleared first), trailing blanks removed.
fn render(cells: &[Cell], text: &mut String) {
    // Most lines are ASCII: one byte per cell in a loop the compiler vectorises; the rest of
    // a line from its first other character goes char by char.
    let ascii = cells.iter().position(|cell| cell.is_some_and(|c| !c.is_ascii()));
    let ascii = ascii.unwrap_or(cells.len());
    let mut bytes = std::mem::take(text).into_bytes();
    bytes.clear();
    bytes.extend(cells[..ascii].iter().map(|cell| cell.map_or(b' ', |c| c as u8)));
    // The markers (`WIDE_TAIL`, `TAB_FILL`) show nothing.
    if memchr::memchr2(WIDE_TAIL as u8, TAB_FILL as u8, &bytes).is_some() {
        bytes.retain(|byte| *byte != WIDE_TAIL as u8 && *byte != TAB_FILL as u8);
    }
    *text = String::from_utf8(bytes).unwrap_or_else(|error| {
        debug_assert!(false, "only ASCII was written");
        String::from_utf8_lossy(error.as_bytes()).into_owned()
    });
    for cell in &cells[ascii..] {
        match cell {
            Some(WIDE_TAIL | TAB_FILL) => {}
            Some(c) => text.push(*c),
            None => text.push(' '),
        }
    }
    let trimmed = text.trim_end_matches(' ').len();
    text.truncate(trimmed);
}

/// Bytes `render` writes for `cells`, trailing blanks included.
fn rendered_len(cells: &[Cell]) -> usize {
    cells
        .iter()
        .map(|cell| match cell {
            Some(WIDE_TAIL | TAB_FILL) => 0,
            Some(c) => c.len_utf8(),
            None => 1,
        })
        .sum()
}

/// Length of the run of printable ASCII (`0x20..=0x7e`) at the start of `bytes`.
fn printable_run(bytes: &[u8]) -> usize {
    let outside = |byte: u8| byte.wrapping_sub(0x20) > 0x7e - 0x20;
    let mut run = 0;
    // Whole chunks first, without a branch per byte (the compiler vectorises the fold).
    for chunk in bytes.chunks_exact(16) {
        if chunk.iter().fold(false, |any, &byte| any | outside(byte)) {
            break;
        }
        run += 16;
    }
    run + bytes[run..].iter().position(|&byte| outside(byte)).unwrap_or(bytes.len() - run)
}

/// Returns whether `bytes` end inside a UTF-8 character that more bytes could still complete.
fn ends_in_partial_utf8(bytes: &[u8]) -> bool {
    let tail = &bytes[bytes.len().saturating_sub(3)..];
    // A character starts at its lead byte (never a continuation byte), at most 3 bytes back.
    match tail.iter().rposition(|b| *b >= 0xc0) {
        Some(lead) => std::str::from_utf8(&tail[lead..]).is_err_and(|e| e.error_len().is_none()),
        None => false,
    }
}

impl<S: LineSink> vte::Perform for LineTerminal<S> {
    fn print(&mut self, c: char) {
        self.after_cr = false;
        self.moved_up = false;
        self.printed_since_line_start = true;
        // zsh wrapped the editor line, printed the first character of the new row, then
        // (after a CR the agent deleted) printed the row again from its start.
        let mut first_of_row = None;
        match self.zsh_wrapped_at.take() {
            Some((row, None)) if self.cursor == row => first_of_row = Some((row, Some(c))),
            Some((row, Some(first))) if first == c && self.cursor == row + 1 => self.move_to(row),
            _ => {}
        }
        if self.alternate_screen {
            return;
        }
        if std::mem::take(&mut self.after_backspace) {
            let from = self.cursor;
            self.erase(from, usize::MAX);
        }
        if let Some(column) = self.wrap_candidate.take() {
            // Not a wrap: a redraw of the line from its start, or readline's own
            // `(reverse-i-search)` and `(arg: n)` prompts being replaced by the shell prompt.
            let first = self.window[self.current].get(0);
            let redraws_line_start = first == Some(c) || first == Some('(') || c == '(';
            if !redraws_line_start {
                // `<text> \r<text>` inside the editor: readline wrapped at `column`, so that
                // is the terminal's width (the client's window, not our default): re-lay.
                self.width = column;
                self.move_to(column);
            }
        }
        self.put_char(c);
        self.last_printed_space_at = (c == ' ').then_some(self.cursor);
        self.zsh_wrapped_at = first_of_row;
    }

    fn execute(&mut self, byte: u8) {
        let after_cr = std::mem::replace(&mut self.after_cr, byte == b'\r');
        self.zsh_wrapped_at = None;
        self.moved_up = false;
        if self.alternate_screen {
            return;
        }
        if byte != b'\r' {
            self.last_printed_space_at = None;
            self.wrap_candidate = None;
        }
        match byte {
            b'\r' => {
                // A space printed just past what the line editor believes is the last column,
                // then CR: that is readline's wrap, at a width other than the one assumed.
                self.wrap_candidate = match self.last_printed_space_at.take() {
                    Some(after) if self.region.is_some() => {
                        // The space sits at logical index `after - 1`; a wrap there at our
                        // width is ordinary, anywhere else it reveals the real width.
                        let column = after - 1;
                        (column % self.width != 0 && column >= MIN_WIDTH).then_some(column)
                    }
                    Some(after) => {
                        self.learn_width_from_eol_mark(after);
                        None
                    }
                    _ => None,
                };
                let start = self.row_start();
                self.move_to(start);
            }
            b'\n' | 0x0b | 0x0c => {
                if !after_cr && !self.stripped {
                    let start = self.row_start();
                    self.move_to(start);
                }
                self.line_feed();
            }
            0x08 => {
                let cursor =
                    if self.pending_wrap { self.cursor - 1 } else { self.cursor.saturating_sub(1) };
                self.move_to(cursor);
                self.after_backspace = self.stripped;
            }
            b'\t' => {
                let row_end = self.row_start() + self.width - 1;
                let next = ((self.cursor / 8 + 1) * 8).min(row_end);
                for index in self.cursor..next {
                    if self.window[self.current].get(index).is_none() {
                        let cell = if index == self.cursor { '\t' } else { TAB_FILL };
                        self.set_cell(index, Some(cell));
                    }
                }
                self.move_to(next);
            }
            _ => {}
        }
    }

    fn csi_dispatch(
        &mut self,
        params: &vte::Params,
        intermediates: &[u8],
        _ignore: bool,
        action: char,
    ) {
        let first_values = params.iter().map(|param| param.first().copied().unwrap_or(0));
        self.csi(first_values, intermediates, action);
    }

    fn esc_dispatch(&mut self, intermediates: &[u8], _ignore: bool, byte: u8) {
        self.in_escape = false;
        self.after_cr = false;
        self.zsh_wrapped_at = None;
        self.moved_up = false;
        if !intermediates.is_empty() || self.alternate_screen {
            return;
        }
        match byte {
            b'7' => self.saved_cursor = (self.current, self.cursor),
            b'8' => {
                let (line, cursor) = self.saved_cursor;
                self.current = line.min(self.window.len() - 1);
                self.move_to(cursor);
            }
            // Reverse index: the cursor moves up one row.
            b'M' => self.cursor_up(1),
            _ => {}
        }
    }

    fn osc_dispatch(&mut self, params: &[&[u8]], bell_terminated: bool) {
        self.after_cr = false;
        // fish sets the window title, then draws its prompt from a CR the agent deleted.
        if self.stripped
            && self.right_moves_from_row_start
            && matches!(params.first(), Some(&(b"0" | b"2")))
        {
            let row_start = self.row_start();
            self.move_to(row_start);
        }
        // Ended by BEL, `vte` is back in its ground state; ended by ESC, it is in an escape
        // (`ESC \` dispatches next). CAN and SUB also end sequences, but `execute` cannot tell
        // them from the same bytes in the ground state, where `vte` may already have read the
        // next ESC in the same call: `in_escape` stays set until the next dispatch, which is
        // only slower.
        if bell_terminated {
            self.in_escape = false;
        }
    }

    fn terminated(&self) -> bool {
        !self.in_escape
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// The model without the fast path: every byte through `vte`.
    fn run_through_vte(width: usize, bytes: &[u8], stripped: bool) -> Screen {
        let mut terminal = LineTerminal::new(width, Vec::new());
        terminal.stripped = stripped;
        terminal.right_moves_from_row_start =
            stripped && memchr::memmem::find(bytes, b"\x1b(B").is_some();
        terminal.byte_lines = false;
        let mut parser = vte::Parser::new();
        let mut position = 0;
        for newline in memchr::memchr_iter(b'\n', bytes) {
            terminal.fed = newline + 1;
            parser.advance(&mut terminal, &bytes[position..=newline]);
            position = newline + 1;
        }
        terminal.fed = bytes.len();
        parser.advance(&mut terminal, &bytes[position..]);
        terminal.flush_window();
        Screen {
            lines: terminal.sink,
            regions: terminal.regions,
            last_close_after_keypad_reset: terminal.last_close_after_keypad_reset,
        }
    }

    fn assert_fast_path_agrees(bytes: &[u8]) {
        for width in [80, 23] {
            assert_eq!(
                LineTerminal::run(width, bytes),
                run_through_vte(width, bytes, false),
                "{:?}",
                String::from_utf8_lossy(bytes)
            );
            assert_eq!(
                LineTerminal::run_stripped(width, bytes),
                run_through_vte(width, bytes, true)
            );
        }
    }

    #[test]
    fn test_fast_path_agrees_with_vte_on_the_corpus() {
        let corpus = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../corpus");
        let mut checked = 0;
        for entry in std::fs::read_dir(&corpus).unwrap_or_else(|e| panic!("{corpus:?}: {e}")) {
            let dir = entry.unwrap_or_else(|e| panic!("{e}")).path();
            for file in ["raw.bin", "s3.log", "s3-legacy.log"] {
                if let Ok(bytes) = std::fs::read(dir.join(file)) {
                    assert_fast_path_agrees(&bytes);
                    checked += 1;
                }
            }
        }
        assert!(checked >= 24, "only {checked} corpus files");
    }

    #[test]
    fn test_fast_path_agrees_with_vte_on_sequence_edges() {
        let cases: &[&[u8]] = &[
            b"\x1b]0;title\x1b\\$ ls\r\n",
            b"\x1b]0;title\x07$ ls\r\n",
            b"\x1b]0;ti\x18tle$ ls\r\n",
            b"\x1bP1$r\x1b\\text\r\n",
            b"\x1bPq#0\x9cafter\r\n",
            b"\x1b[1;2;3;4;5;6;7;8;9;10;11;12;13;14;15;16;17;18;19;20;21;22;23;24;25;26;27;28;29;30;31;32;33mX\r\n",
            b"\x1b[?1;2$pafter\r\n",
            b"\x1b_apc string\x1b\\after\r\n",
            b"\xe6\x97abc\xe6\x97\x1b[Kdef\r\n",
            b"\xf0\x9f\x98\x80 ok \xc3\r\n\xc3",
            b"a\x7fb\x80\x9bc\r\n",
            b"\x1b\x1b[31mred\r\n",
            // CSI sequences the fast path reads, and the ones it leaves to `vte`.
            b"$ ls\x1b[?2004;1h\x1b[;3Hx\x1b[65535;70000Dy\x1b[2;K\r\n",
            b"\x1b[1;2;3;4;5;6;7;8;9;10;11;12;13;14;15;16;17Dz\r\n",
            b"ab\x1b[?1;?2lc\x1b[1:2md\x1b[1 qe\x1b[1\r5Df\x1b[\x7f5Dg\x1b[<1h\r\n",
            b"abc\x1b[2",
            b"abc\x1b[",
            b"abc\x1b[?\r\n",
        ];
        for case in cases {
            assert_fast_path_agrees(case);
        }
    }

    proptest! {
        #[test]
        fn test_fast_path_agrees_with_vte(parts in proptest::collection::vec(prop_oneof![
            Just(b"\x1b[".to_vec()), Just(b"\x1b]0;t".to_vec()), Just(b"\x1bP".to_vec()),
            Just(b"\x1b\\".to_vec()), Just(b"\x07".to_vec()), Just(b"\x18".to_vec()),
            Just(b"\x9c".to_vec()), Just(b"\r".to_vec()), Just(b"\n".to_vec()),
            Just(b"\x08".to_vec()), Just(b"\t".to_vec()), Just(b"$ ".to_vec()), Just(b" ".to_vec()),
            Just(b"\x1b[?2004h".to_vec()), Just(b"\x1b[?2004l".to_vec()),
            Just(b"\x1b[?1049h".to_vec()), Just(b"\x1b[?1049l".to_vec()),
            Just(b"\x1b[5D".to_vec()), Just(b"\x1b[3@".to_vec()), Just(b"\x1b[K".to_vec()),
            Just(b"\x1b[A".to_vec()), Just(b"1;2m".to_vec()), Just("日本".as_bytes().to_vec()),
            Just(b"\xe6".to_vec()), Just(b"\x97".to_vec()), Just(b"echo hello world".to_vec()),
            proptest::collection::vec(any::<u8>(), 0..8),
        ], 0..120)) {
            let bytes: Vec<u8> = parts.concat();
            for width in [80, 23] {
                prop_assert_eq!(LineTerminal::run(width, &bytes), run_through_vte(width, &bytes, false));
                prop_assert_eq!(
                    LineTerminal::run_stripped(width, &bytes),
                    run_through_vte(width, &bytes, true)
                );
            }
        }
    }

    fn texts(bytes: &[u8]) -> Vec<String> {
        LineTerminal::run(80, bytes).lines.into_iter().map(|line| line.text).collect()
    }

    #[test]
    fn test_line_editing_is_applied() {
        let cases: &[(&[u8], &str)] = &[
            (b"$ ip \x08 \x08\x08 \x08\x08 \x08pwd\r\r\n", "$ pwd"),
            (b"$ lss\x08\x1b[K -l\r\n", "$ ls -l"),
            (b"$ echo world\x1b[5D\x1b[6@hello \r\n", "$ echo hello world"),
            (b"$ ech\x1b[1@o\r\n", "$ echo"),
            (b"$ echo abc\x1b[2D\x1b[P\r\n", "$ echo ac"),
            (b"$ old\r$ new\x1b[K\r\n", "$ new"),
            (b"\x1b]0;user@host:~\x07$ ls\r\n", "$ ls"),
            (b"\x1b[01;34mdir\x1b[0m\r\r\n", "dir"),
        ];
        for (input, expected) in cases {
            assert_eq!(
                texts(input)[0],
                expected.to_string(),
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn test_wrapped_line_is_one_line() {
        let mut input = b"$ echo ".to_vec();
        input.extend(std::iter::repeat_n(b'x', 100));
        input.extend_from_slice(b"\r\n");
        let lines = texts(&input);
        assert_eq!(lines[0].len(), 107);
        // readline's wrap: a space past the edge, then CR, then the rest over it
        let wrapped = b"$ mkdir -p /tmp/alice-scratch && cp logs/app.log /tmp/alice-scratch/xxxxxxxxxxxx \r/more\r\r\n";
        assert_eq!(
            texts(wrapped)[0],
            "$ mkdir -p /tmp/alice-scratch && cp logs/app.log /tmp/alice-scratch/xxxxxxxxxxxx/more"
        );
    }

    #[test]
    fn test_redraw_moves_up_into_earlier_lines() {
        // readline highlights a bracketed paste, then moves up and redraws it plainly.
        let input = b"\x1b[?2004h$ \x1b[7mecho one\x1b[27m\r\r\n\r\x1b[7mecho two\x1b[27m\x1b[A\r\x1b[C\x1b[Cecho one\r\r\n\recho two\r\r\n\x1b[?2004l\rone\r\r\ntwo\r\r\n";
        let screen = LineTerminal::run(80, input);
        let lines: Vec<_> = screen.lines.iter().map(|l| (l.text.as_str(), l.region)).collect();
        assert_eq!(
            lines,
            vec![("$ echo one", Some(0)), ("echo two", Some(0)), ("one", None), ("two", None)]
        );
    }

    #[test]
    fn test_scroll_up_moves_the_line_under_the_cursor_down() {
        // irb at the bottom row: down to the last row, scroll up 2, up 3 to its line, then a
        // dialog below it, erased, and the line entered.
        let input = b"=> 21\r\nirb> p\x1b[1B\x1b[2S\x1b[3A\x1b[1B\x1b[5Gputs\x1b[1B\x1b[5Gputc\
            \x1b[2A\x1b[1Girb> puts 1\x1b[K\x1b[1B\x1b[5G    \x1b[1B\x1b[5G    \x1b[2A\
            \x1b[1B\x1b[1G\x1b[K1\r\n";
        let lines = texts(input);
        assert_eq!(lines[..3], ["=> 21", "irb> puts 1", "1"], "{lines:?}");
    }

    #[test]
    fn test_alternate_screen_is_skipped() {
        let input = b"$ less f\r\n\x1b[?1049hscreen stuff\r\nmore\r\n\x1b[?1049l\r$ ls\r\n";
        assert_eq!(texts(input), vec!["$ less f", "$ ls"]);
    }

    #[test]
    fn test_regions_and_ranges() {
        let input = b"\x1b[?2004h$ ls\r\r\n\x1b[?2004l\rfile\r\r\n\x1b[?2004h$ ";
        let screen = LineTerminal::run(80, input);
        assert_eq!(screen.regions, 2);
        let lines: Vec<_> =
            screen.lines.iter().map(|l| (l.text.as_str(), l.region, l.start, l.end)).collect();
        assert_eq!(
            lines,
            vec![("$ ls", Some(0), 0, 15), ("file", None, 15, 31), ("$", Some(1), 31, 41)]
        );
    }

    #[test]
    fn test_tabs_keep_their_character() {
        assert_eq!(texts(b"$ echo a\tb\r\n"), vec!["$ echo a\tb"]);
    }

    #[test]
    fn test_editor_starting_mid_line_starts_a_line() {
        // bash opens its editor at the start of a line and draws its prompt inside: output a
        // program left without a newline is a line of its own.
        let input = b"\x1b[?2004h$ printf x\r\n\x1b[?2004l\rno newline at the end\x1b[?2004h$ ls\r\n\x1b[?2004l\r";
        let screen = LineTerminal::run(80, input);
        let lines: Vec<_> =
            screen.lines.iter().map(|l| (l.text.as_str(), l.region, l.prompt_end)).collect();
        assert_eq!(
            lines,
            vec![
                ("$ printf x", Some(0), None),
                ("no newline at the end", None, None),
                ("$ ls", Some(1), None)
            ]
        );
    }

    #[test]
    fn test_editor_opening_after_its_prompt_tells_the_prompt() {
        // zsh: PROMPT_SP's mark and blanks (a 100-column terminal), the prompt, a right prompt
        // drawn at the edge, then the editor opens; one line accepted (the keypad reset by
        // zle-line-finish), one abandoned with Ctrl-C (no reset).
        let mut input = b"%".to_vec();
        input.extend(std::iter::repeat_n(b' ', 99));
        input.extend_from_slice(b"\r \r\x1b[J\xe2\x9e\x9c  ~ \x1b[K\x1b[80C[12:00]\x1b[87D\x1b[?1h\x1b=\x1b[?2004hls -l\x1b[?1l\x1b>\x1b[?2004l\r\r\n");
        input.extend_from_slice(
            b"file\r\n\xe2\x9e\x9c  ~ \x1b[K\x1b[?1h\x1b=\x1b[?2004hrm -rf /\x1b[?2004l\r\r\n",
        );
        let screen = LineTerminal::run(80, &input);
        let lines: Vec<_> = screen
            .lines
            .iter()
            .map(|l| (l.text.as_str(), l.region, l.prompt_end, l.abandoned))
            .collect();
        assert_eq!(
            lines,
            vec![
                ("\u{279c}  ~ ls -l", Some(0), Some(7), false),
                ("file", None, None, false),
                ("\u{279c}  ~ rm -rf /", Some(1), Some(7), true),
            ]
        );
    }

    #[test]
    fn test_prompt_redrawn_with_the_editor_open_keeps_its_end() {
        // zsh with a two-line prompt: the editor opens after `> `, then (a resize) zsh goes
        // up to the first prompt line, erases below and draws both lines again.
        let prompt = b"\x1b[Jhost ~\r\r\n> \x1b[K\x1b[20C12:00\x1b[25D";
        let mut input = prompt.to_vec();
        input.extend_from_slice(b"\x1b[?1h\x1b=\x1b[?2004h\r\r\x1b[A");
        input.extend_from_slice(prompt);
        input.extend_from_slice(b"uptime\x1b[?1l\x1b>\x1b[?2004l\r\r\r\nup\r\n");
        let screen = LineTerminal::run(80, &input);
        let lines: Vec<_> =
            screen.lines.iter().map(|l| (l.text.as_str(), l.prompt_end, l.shell)).collect();
        assert_eq!(
            lines,
            vec![("host ~", None, None), ("> uptime", Some(2), Some("zsh")), ("up", None, None)]
        );
    }

    #[test]
    fn test_zsh_wrap_in_a_stripped_stream_line() {
        // A 30-column zsh: its end-of-line mark, 29 blanks and the blank of `\r \r`; the
        // prompt; text typed up to the edge; the wrap (` \r ESC[K`), the next character, and
        // (after `\r`) the row again. The agent deleted the CRs.
        let mut input = b"%".to_vec();
        input.extend(std::iter::repeat_n(b' ', 30));
        input.extend_from_slice(
            b"\x1b[J~ % \x1b[K\x1b[?1h\x1b=\x1b[?2004hecho abcdefghijklmnopqrstu",
        );
        input.extend_from_slice(b" \x1b[Kvvwxyz\x1b[?1l\x1b>\x1b[?2004l");
        let screen = LineTerminal::run_stripped(1 << 20, &input);
        let last = screen.lines.last().expect("a line");
        assert_eq!(last.text, "~ % echo abcdefghijklmnopqrstuvwxyz");
        assert_eq!(last.prompt_end, Some(4));
    }

    #[test]
    fn test_fish_prompt_after_its_window_title_starts_the_row() {
        // fish's first prompt, streamed: drawn, the title set, drawn again and erased below
        // (from the CRs the agent deleted), then the typed text placed by moves right.
        let input = b"\x1b[?2004h\x1b]0;~\x07\x1b(B\x1b[mu@h ~> \x1b[K\x1b[7C\x1b]0;~\x07\x1b(B\x1b[mu@h ~> \x1b[J\x1b[7Cls\x1b[9C";
        let screen = LineTerminal::run_stripped(1 << 20, input);
        let texts: Vec<_> = screen.lines.iter().map(|line| line.text.as_str()).collect();
        assert_eq!(texts, vec!["u@h ~> ls"]);
    }

    #[test]
    fn test_fish_moves_right_from_the_cursor_until_it_prints() {
        // fish-default, streamed (CRs deleted): a line that only moved (into the search row,
        // then up to the editor's row) moves right from the cursor, `ESC[10C ESC[A ESC[15C`
        // to column 25; once it printed on the line, a move right came after a CR.
        let cases: [(&[u8], &str); 2] = [
            (b"\x1b[10C\x1b[A\x1b[15Cls\x1b(B\x1b[m", "                         ls"),
            (b"u@h ~> x\x1b[A\x1b[7Cls\x1b(B\x1b[m", "u@h ~> ls"),
        ];
        for (input, expected) in cases {
            let screen = LineTerminal::run_stripped(1 << 20, input);
            let texts: Vec<_> = screen.lines.iter().map(|line| line.text.as_str()).collect();
            assert_eq!(texts, vec![expected], "{input:?}");
        }
    }

    #[test]
    fn test_wrap_reveals_a_narrower_terminal() {
        // readline in a 60-column terminal wraps with a space and CR at column 60.
        let mut input = b"\x1b[?2004h$ echo ".to_vec();
        input.extend(std::iter::repeat_n(b'x', 53));
        input.extend_from_slice(b" \ryz\r\n");
        let text = &texts(&input)[0];
        assert_eq!(text.len(), 2 + 5 + 53 + 2, "{text}");
        assert!(text.ends_with("xxyz"), "{text}");
    }

    #[test]
    fn test_double_width_characters() {
        assert_eq!(
            texts("$ echo 日本語\x08\x08  \x08\x08\x1b[K\r\n".as_bytes()),
            vec!["$ echo 日本"]
        );
    }
}
