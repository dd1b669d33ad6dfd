//! Turns SSM session transcripts into command records, and CloudTrail records into access
//! records ([`cloudtrail`]). Writing records to Parquet is `sessionlake-tables`' work, not
//! this crate's.
//!
//! Parsing is synchronous and pure: no tokio, no store, no keys; of the workspace's crates,
//! this one depends on `sessionlake-schemas` alone. [`parse_session`] takes the raw bytes of one session in one of
//! the SSM forms and returns its commands, with byte ranges into those same bytes;
//! [`SessionParser`] takes the same bytes in chunks.
//!
//! ```
//! use sessionlake_indexer::{InputForm, SessionContext, parse_session};
//! let raw = b"Script started on 2026-03-14 09:30:00+00:00\nsh-5.2$ ls\r\r\na  b\r\r\nsh-5.2$ exit\r\r\nexit\r\r\n\nScript done on 2026-03-14 09:30:00+00:00\n";
//! let parsed = parse_session(InputForm::S3Transcript, raw, &SessionContext::new("alice-0123456789abcdef0")).unwrap();
//! let commands: Vec<_> = parsed.commands.iter().map(|c| c.command.as_str()).collect();
//! assert_eq!(commands, ["ls", "exit"]);
//! ```

pub mod cloudtrail;
pub mod extract;
pub mod input;
pub mod prompt;
pub mod redact;
pub mod repl;
mod rows;
pub mod stripped;
pub mod syntax;
pub mod terminal;
pub mod users;

use sessionlake_schemas::{
    CommandRecord, SessionConfidence, SessionStatus, TimeSource, Understanding,
};

use crate::extract::{Assembler, Evidence, Line};
use crate::input::{LogEvent, StreamMessage};
pub use crate::rows::RowSink;
use crate::rows::{Keep, Rows, RowsSummary};
use crate::terminal::{DEFAULT_WIDTH, LineMarks, LineSink, LineTerminal};

/// Version of the parser, stored in every row it produces. Bump it when output changes.
pub const PARSER_VERSION: u32 = 1;

pub use crate::extract::OUTPUT_CAP;
pub use sessionlake_schemas::SessionContext;

/// The SSM delivery forms a session's raw bytes can be in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputForm {
    /// An S3 object: `script(1)` output with header and footer, `\r\r\n` line ends.
    S3Transcript,
    /// Uploaded CloudWatch text, events re-joined with `\n` (the same transcript, `\r\n` ends).
    CloudwatchUpload,
    /// Streamed CloudWatch JSON: one `{"timestamp":…,"message":"…"}` per line.
    CloudwatchStream,
}

/// A parsed session.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedSession {
    /// The commands, in order (none from [`SessionParser::planning`] and
    /// [`SessionParser::replaying`]: see [`ParsedSession::command_count`]).
    pub commands: Vec<CommandRecord>,
    /// How many commands the session has.
    pub command_count: usize,
    /// What a second pass over the same bytes needs to give the rows one by one
    /// ([`SessionParser::planning`]; `None` otherwise).
    pub plan: Option<ReplayPlan>,
    /// The session context, completed with what the transcript revealed.
    pub context: SessionContext,
    /// End of the session (µs), when the input tells.
    pub ended_at: Option<i64>,
    /// Parse outcome.
    pub status: SessionStatus,
    /// How well the session was understood.
    pub understanding: Understanding,
    /// The session id the input's own content names: the agent's orchestration path in the
    /// `script` header, or the streamed events' `sessionId` (the first that names one). A
    /// delivery whose name says another id is flagged (see `sessionlake-ingest`).
    pub claimed_session_id: Option<String>,
}

/// What the first pass over a transcript too big to hold in rows tells the second
/// ([`SessionParser::planning`], [`SessionParser::replaying`]): which reading of its lines
/// holds, and the shells that marks seen later give prompts first seen as bash's. With them,
/// the second pass gives each row as it is made, the same rows one pass holding them all
/// gives.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ReplayPlan {
    /// The lines are read as a line editor marked them (bash ≥ 5.1), not raw.
    marked: bool,
    /// Prompts first seen as bash's, with the shell a mark told for them.
    fixes: std::collections::HashMap<String, std::sync::Arc<str>>,
    /// The rows come in the order of their times (rows without one first), so that a file
    /// sorted by time can be written as they come.
    pub in_time_order: bool,
}

/// What a [`SessionParser`] does with the rows it makes.
enum Mode {
    /// Holds them ([`parse_session`]).
    Hold,
    /// Holds none: the first pass of two.
    Plan,
    /// Gives them to a sink as they are made: the second pass.
    Replay(ReplayPlan, Option<RowSink>),
}

impl std::fmt::Debug for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Mode::Hold => "Hold",
            Mode::Plan => "Plan",
            Mode::Replay(..) => "Replay",
        })
    }
}

impl Mode {
    /// What the reading of `evidence` does with its rows; `Replay` hands the sink to the
    /// reading the plan says holds.
    fn keep(&mut self, evidence: Evidence) -> Keep {
        match self {
            Mode::Hold => Keep::All,
            Mode::Plan => Keep::None,
            Mode::Replay(plan, sink) => {
                let holds = plan.marked == (evidence == Evidence::EditorMarks);
                match sink.take_if(|_| holds) {
                    Some(sink) => Keep::Stream { fixes: plan.fixes.clone(), sink },
                    None => Keep::None,
                }
            }
        }
    }
}

/// Why a session could not be parsed at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct ParseError {
    /// What was wrong, naming the part of the input.
    pub reason: String,
}

/// Parses one session's raw bytes (a [`SessionParser`] fed them at once).
pub fn parse_session(
    form: InputForm,
    raw: &[u8],
    context: &SessionContext,
) -> Result<ParsedSession, ParseError> {
    let mut parser = SessionParser::new(form, context);
    parser.feed(raw);
    parser.finish()
}

/// Bytes of a transcript's start read before its header is: the header line, and the first
/// 64 KiB of the body that tell text from binary.
const HEAD_BYTES: usize = 1024 * 1024;

/// Longest run of lines of one editor region joined into one line (one input buffer), in
/// bytes; the rest of the region's lines are dropped (their bytes stay in the line's range).
const REGION_CAP: usize = 64 * 1024;

/// Parses one session from its raw bytes in chunks of any size: [`SessionParser::feed`] them
/// in order, then [`SessionParser::finish`]. The result is [`parse_session`]'s for the same
/// bytes.
///
/// A transcript (the S3 form, uploaded CloudWatch text) is parsed as it comes, in memory
/// bounded whatever its size: the terminal keeps a window of lines, each line at most
/// [`terminal::MAX_LINE_CELLS`] cells, a command at most [`extract::COMMAND_CAP`] bytes and its
/// output [`OUTPUT_CAP`]; what is kept grows only with the number of commands. Streamed
/// CloudWatch JSON is held and parsed whole at the end (its stripped lines are replayed with
/// what the whole stream tells about the terminal).
///
/// ```
/// use sessionlake_indexer::{InputForm, SessionContext, SessionParser};
/// let raw = b"Script started on 2026-03-14 09:30:00+00:00\nsh-5.2$ ls\r\r\na  b\r\r\nsh-5.2$ exit\r\r\nexit\r\r\n\nScript done on 2026-03-14 09:30:00+00:00\n";
/// let mut parser = SessionParser::new(InputForm::S3Transcript, &SessionContext::new("alice-0123456789abcdef0"));
/// for chunk in raw.chunks(7) {
///     parser.feed(chunk);
/// }
/// let parsed = parser.finish().unwrap();
/// assert_eq!(parsed.commands.len(), 2);
/// ```
#[derive(Debug)]
pub struct SessionParser {
    context: SessionContext,
    state: ParserState,
    /// Until the body starts (then the body's).
    mode: Option<Mode>,
    /// [`HEAD_BYTES`], smaller only in tests (to take the streaming path with small inputs).
    head_limit: usize,
}

#[derive(Debug)]
enum ParserState {
    /// Streamed CloudWatch JSON, parsed whole by `finish`.
    Stream(Vec<u8>),
    /// The first bytes of a transcript, until [`HEAD_BYTES`] tell the header.
    Head(Vec<u8>),
    /// A transcript's body, going through the terminal.
    Body(Box<TranscriptBody>),
}

impl SessionParser {
    /// Returns a parser of one session in `form`, with what is known from outside it.
    pub fn new(form: InputForm, context: &SessionContext) -> Self {
        let state = match form {
            InputForm::S3Transcript | InputForm::CloudwatchUpload => ParserState::Head(Vec::new()),
            InputForm::CloudwatchStream => ParserState::Stream(Vec::new()),
        };
        SessionParser {
            context: context.clone(),
            state,
            mode: Some(Mode::Hold),
            head_limit: HEAD_BYTES,
        }
    }

    /// Returns a parser that holds no row: its [`ParsedSession`] has the session's facts, the
    /// number of its commands and the [`ReplayPlan`] with which
    /// [`SessionParser::replaying`] gives them one by one, in bounded memory whatever the
    /// transcript's size. A transcript only (streamed CloudWatch JSON is held whole).
    pub fn planning(form: InputForm, context: &SessionContext) -> Self {
        SessionParser { mode: Some(Mode::Plan), ..SessionParser::new(form, context) }
    }

    /// Returns a parser that gives each row to `sink` as it is made, for the same bytes
    /// [`SessionParser::planning`] made `plan` from: the rows [`parse_session`] would return,
    /// in order.
    pub fn replaying(
        form: InputForm,
        context: &SessionContext,
        plan: &ReplayPlan,
        sink: RowSink,
    ) -> Self {
        let mode = Mode::Replay(plan.clone(), Some(sink));
        SessionParser { mode: Some(mode), ..SessionParser::new(form, context) }
    }

    /// Takes the next bytes of the session.
    pub fn feed(&mut self, bytes: &[u8]) {
        match &mut self.state {
            ParserState::Stream(raw) => raw.extend_from_slice(bytes),
            ParserState::Body(body) => body.feed(bytes),
            ParserState::Head(head) => {
                let take = self.head_limit.saturating_sub(head.len()).min(bytes.len());
                head.extend_from_slice(&bytes[..take]);
                if head.len() < self.head_limit {
                    return;
                }
                let script = input::script_head(head);
                let body_start = script.body.start;
                let text = looks_like_terminal_text(&head[body_start..]);
                let mode = self.mode.take().unwrap_or(Mode::Hold);
                let mut body = Box::new(TranscriptBody::new(script, text, &self.context, mode));
                body.feed(&head[body_start..]);
                body.feed(&bytes[take..]);
                self.state = ParserState::Body(body);
            }
        }
    }

    /// Returns the parsed session, or why the bytes are no session.
    pub fn finish(self) -> Result<ParsedSession, ParseError> {
        let SessionParser { context, state, mode, .. } = self;
        match state {
            ParserState::Stream(raw) => parse_stream(&raw, &context),
            ParserState::Head(head) => {
                // The whole transcript is here: read it as it is.
                if head.is_empty() {
                    return Err(ParseError {
                        reason: "not a session transcript: the object is empty".into(),
                    });
                }
                let script = input::split_script(&head);
                let body = script.body.clone();
                let text = looks_like_terminal_text(&head[body.clone()]);
                let mode = mode.unwrap_or(Mode::Hold);
                let mut parsing = TranscriptBody::new(script, text, &context, mode);
                parsing.terminal.feed(&head[body]);
                parsing.conclude()
            }
            ParserState::Body(mut body) => {
                let (tail, tail_offset) = (std::mem::take(&mut body.tail), body.tail_offset);
                input::script_footer(&mut body.script, &tail, tail_offset);
                let body_end = body.script.body.end.max(tail_offset);
                body.terminal.feed(&tail[..body_end - tail_offset]);
                body.conclude()
            }
        }
    }
}

/// A transcript whose header is read, its body going through the terminal as it comes; the
/// last [`input::SCRIPT_FOOTER_BYTES`] are held back, since the footer is not body.
#[derive(Debug)]
struct TranscriptBody {
    script: input::ScriptTranscript,
    /// The start of the body looks like terminal text, not binary.
    text: bool,
    terminal: LineTerminal<TranscriptLines>,
    /// The last bytes fed, not yet interpreted.
    tail: Vec<u8>,
    /// Offset of `tail` in the input.
    tail_offset: usize,
}

impl TranscriptBody {
    fn new(
        script: input::ScriptTranscript,
        text: bool,
        context: &SessionContext,
        mut mode: Mode,
    ) -> Self {
        let mut context = context.clone();
        if context.target.is_none() {
            context.target = script.header.target.clone();
        }
        // The session's OS user is the one the header tells (the PowerShell transcript's `RunAs
        // User`), else the one its first prompt shows (see `Rows`).
        if context.run_as.is_none() {
            context.run_as = script.header.run_as.clone();
        }
        let legacy = script.header.legacy;
        let raw = Reading::new(Evidence::Raw, &context, legacy, mode.keep(Evidence::Raw));
        let sink = TranscriptLines {
            marked: None,
            raw: Some(raw),
            mode,
            context,
            legacy,
            pending: None,
            last_region: None,
            spare: String::new(),
            offset: script.body.start,
        };
        let tail_offset = script.body.start;
        TranscriptBody {
            script,
            text,
            terminal: LineTerminal::new(DEFAULT_WIDTH, sink),
            tail: Vec::new(),
            tail_offset,
        }
    }

    fn feed(&mut self, bytes: &[u8]) {
        let held = self.tail.len() + bytes.len();
        if held <= input::SCRIPT_FOOTER_BYTES {
            self.tail.extend_from_slice(bytes);
            return;
        }
        let release = held - input::SCRIPT_FOOTER_BYTES;
        if release <= self.tail.len() {
            self.terminal.feed(&self.tail[..release]);
            self.tail.drain(..release);
            self.tail.extend_from_slice(bytes);
        } else {
            let from_bytes = release - self.tail.len();
            self.terminal.feed(&self.tail);
            self.tail.clear();
            self.terminal.feed(&bytes[..from_bytes]);
            self.tail.extend_from_slice(&bytes[from_bytes..]);
        }
        self.tail_offset += release;
    }

    /// Ends the terminal (the whole body fed) and returns the session.
    fn conclude(self) -> Result<ParsedSession, ParseError> {
        let TranscriptBody { script, text, terminal, .. } = self;
        if script.header.generated_at.is_none() && !text {
            return Err(ParseError {
                reason: "not a session transcript: no script header and mostly binary".into(),
            });
        }
        let (mut sink, regions) = terminal.finish();
        sink.flush();
        let planning = matches!(sink.mode, Mode::Plan);
        // bash >= 5.1 marks what its line editor draws (bracketed paste): with marks, a
        // prompt-shaped line it did not draw is output. Both readings were kept until the
        // first marked line told which one holds.
        let (reading, marked) = match sink.raw {
            Some(raw) if regions == 0 => (raw, false),
            _ => {
                let marked = sink.marked.unwrap_or_else(|| {
                    let keep = sink.mode.keep(Evidence::EditorMarks);
                    Reading::new(Evidence::EditorMarks, &sink.context, sink.legacy, keep)
                });
                (marked, true)
            }
        };
        let editor_lines = reading.assembler.editor_lines();
        let (commands, context, mut summary) = reading.finish();
        let plan = planning.then(|| ReplayPlan {
            marked,
            fixes: std::mem::take(&mut summary.fixes),
            in_time_order: summary.in_time_order || summary.rows == 0,
        });
        let command_count = summary.rows;
        let status =
            if script.header.complete { SessionStatus::Complete } else { SessionStatus::Truncated };
        let understanding = understand(summary, script.body.len(), editor_lines, false);
        Ok(ParsedSession {
            commands,
            command_count,
            plan,
            context,
            ended_at: script.header.generated_at,
            status,
            understanding,
            claimed_session_id: script.header.session_id.clone(),
        })
    }
}

/// One reading of a transcript's lines: the assembler, and the rows of the commands it settled.
#[derive(Debug)]
struct Reading {
    assembler: Assembler,
    rows: Rows,
}

impl Reading {
    fn new(evidence: Evidence, context: &SessionContext, legacy: bool, keep: Keep) -> Self {
        Reading {
            assembler: Assembler::new(evidence),
            rows: Rows::new(context.clone(), TimeSource::None, legacy).keeping(keep),
        }
    }

    fn push(&mut self, line: &Line) {
        let Reading { assembler, rows } = self;
        assembler.push(line);
        assembler.drain_settled(|draft| rows.push(draft));
    }

    fn finish(self) -> (Vec<CommandRecord>, SessionContext, RowsSummary) {
        let Reading { assembler, mut rows } = self;
        for draft in assembler.finish() {
            rows.push(draft);
        }
        rows.finish()
    }
}

/// Takes the terminal's lines as they are finished, joins the lines drawn in one editor region
/// (one input buffer), and hands the result to the assembler: to two, one reading the lines
/// as marked by the line editor and one as raw, until a marked line shows which one holds.
#[derive(Debug)]
struct TranscriptLines {
    /// Made at the first line drawn in an editor region: before it, reading lines as marked
    /// finds nothing (a line no editor drew is output, and there is no command yet to own
    /// it), so a transcript without marks (bash 4, dash) is read once, not twice.
    marked: Option<Reading>,
    /// Dropped at the first line drawn in an editor region.
    raw: Option<Reading>,
    /// What the readings do with their rows (the marked one is made later).
    mode: Mode,
    /// The session as known before its lines (the source, the transcript's header).
    context: SessionContext,
    /// The transcript is a legacy agent's (see `Rows::new`).
    legacy: bool,
    /// The line being built (an editor region may add lines to it).
    pending: Option<Line>,
    last_region: Option<u32>,
    /// A text buffer to reuse for the next line.
    spare: String,
    /// Offset of the body in the raw input.
    offset: usize,
}

impl TranscriptLines {
    fn flush(&mut self) {
        if let Some(line) = self.pending.take() {
            if let Some(marked) = self.marked.as_mut() {
                marked.push(&line);
            }
            if let Some(raw) = self.raw.as_mut() {
                raw.push(&line);
            }
            self.spare = line.text;
        }
    }
}

impl LineSink for TranscriptLines {
    fn line(&mut self, text: &str, start: usize, end: usize, marks: LineMarks) {
        let LineMarks { region, prompt_end, abandoned, shell } = marks;
        if region.is_some() {
            self.raw = None;
            if self.marked.is_none() {
                let keep = self.mode.keep(Evidence::EditorMarks);
                let marked = Reading::new(Evidence::EditorMarks, &self.context, self.legacy, keep);
                self.marked = Some(marked);
            }
        }
        if region.is_some()
            && region == self.last_region
            && let Some(previous) = self.pending.as_mut()
        {
            if previous.text.len() + 1 + text.len() <= REGION_CAP {
                // A prompt of several lines (the editor opened after its last one).
                if previous.prompt_end.is_none()
                    && let Some(prompt_end) = prompt_end
                {
                    previous.prompt_end = Some(previous.text.len() + 1 + prompt_end);
                }
                previous.text.push('\n');
                previous.text.push_str(text);
            }
            previous.end = end + self.offset;
            previous.abandoned |= abandoned;
            previous.shell = previous.shell.or(shell);
            return;
        }
        self.last_region = region;
        self.flush();
        let mut buffer = std::mem::take(&mut self.spare);
        buffer.clear();
        buffer.push_str(text);
        self.pending = Some(Line {
            text: buffer,
            start: start + self.offset,
            end: end + self.offset,
            editor: region.is_some(),
            time: None,
            prompt_end,
            abandoned,
            shell,
        });
    }
}

/// Whether bytes are mostly text: at most 10% of the first 64 KiB are control bytes other than
/// the ones terminals use (ESC, CR, LF, BS, TAB, BEL).
fn looks_like_terminal_text(bytes: &[u8]) -> bool {
    let sample = &bytes[..bytes.len().min(64 * 1024)];
    if sample.is_empty() {
        return false;
    }
    let odd = sample
        .iter()
        .filter(|&&b| b < 0x20 && !matches!(b, 0x1b | b'\r' | b'\n' | 0x08 | b'\t' | 0x07))
        .count();
    odd * 10 <= sample.len()
}

fn parse_stream(raw: &[u8], context: &SessionContext) -> Result<ParsedSession, ParseError> {
    let mut context = context.clone();
    // Each streamed line's text, and where it is in the input and its time.
    let mut texts = Vec::new();
    let mut spans = Vec::new();
    let mut offset = 0usize;
    let mut events = 0usize;
    let mut bad = 0usize;
    let mut first_time = None;
    let mut last_time = None;
    let mut claimed_session_id = None;
    for event_line in raw.split_inclusive(|b| *b == b'\n') {
        let start = offset;
        offset += event_line.len();
        let trimmed = event_line.strip_suffix(b"\n").unwrap_or(event_line);
        if trimmed.is_empty() {
            continue;
        }
        let Ok(event) = serde_json::from_slice::<LogEvent>(trimmed) else {
            bad += 1;
            continue;
        };
        let Ok(message) = serde_json::from_str::<StreamMessage>(&event.message) else {
            bad += 1;
            continue;
        };
        // A time out of range is bad input, never wrapped into another century (retention
        // would take a session "from 1969" as long expired).
        let Some(time) = message
            .event_time
            .as_deref()
            .and_then(|text| chrono::DateTime::parse_from_rfc3339(text).ok())
            .map(|time| time.timestamp_micros())
            .or_else(|| input::event_micros(event.timestamp))
        else {
            bad += 1;
            continue;
        };
        let time = Some(time);
        events += 1;
        first_time = first_time.or(time);
        last_time = time.or(last_time);
        fill(&mut context.principal, message.user_identity.and_then(|u| u.arn));
        fill(&mut context.target, message.target.and_then(|t| t.id));
        fill(&mut context.region, message.aws_region);
        fill(&mut context.run_as, message.run_as_user.filter(|user| !user.is_empty()));
        fill(&mut claimed_session_id, message.session_id);
        for text in message.session_data {
            texts.push(text);
            spans.push((start, offset, time));
        }
    }
    // What the agent's ANSI stripper left (backspaces, a whole line it could not parse) is
    // replayed line by line, with what the whole stream tells about the terminal.
    // zsh's zle-line-finish resets the keypad when a line is accepted, not when Ctrl-C
    // abandons it: in a stream whose lines show that, a line closed without it was abandoned
    // (see `ShownLine::closes_after_keypad_reset`).
    let shown_lines = stripped::ShownStream::new(texts);
    let keypad_evidence = shown_lines.keypad_reset_seen();
    let mut lines: Vec<Line> = spans
        .into_iter()
        .zip(shown_lines)
        .map(|((start, end, time), shown)| Line {
            abandoned: keypad_evidence && shown.closes_after_keypad_reset == Some(false),
            text: shown.text,
            start,
            end,
            editor: shown.editor,
            time,
            prompt_end: shown.prompt_end,
            shell: shown.shell,
        })
        .collect();
    if events == 0 {
        return Err(ParseError {
            reason: format!("no streamed session event could be read ({bad} malformed lines)"),
        });
    }
    if context.account.is_none() {
        context.account = context.principal.as_deref().and_then(account_of_arn);
    }
    extract::merge_stripped_pastes(&mut lines);
    let mut reading =
        Reading { assembler: Assembler::new(Evidence::Stripped), rows: Rows::streamed(context) };
    for line in &lines {
        reading.push(line);
    }
    let editor_lines = reading.assembler.editor_lines();
    let (commands, mut context, summary) = reading.finish();
    if context.started_at.is_none() {
        context.started_at = first_time;
    }
    let command_count = commands.len();
    let understanding = understand(summary, raw.len(), editor_lines, true);
    Ok(ParsedSession {
        commands,
        command_count,
        plan: None,
        context,
        ended_at: last_time,
        status: SessionStatus::Complete,
        understanding,
        claimed_session_id,
    })
}

/// Share of the lines a line editor drew that may go not understood in a `high` session, and
/// in a `medium` one.
const HIGH_NOT_UNDERSTOOD: f64 = 0.05;
const MEDIUM_NOT_UNDERSTOOD: f64 = 0.2;

/// Without editor marks, the share of the input's bytes in rows below which a session is
/// `low`, and below which it is `medium`.
const LOW_BYTES_IN_ROWS: f64 = 0.5;
const HIGH_BYTES_IN_ROWS: f64 = 0.9;

/// Input bytes below which nothing is expected to be understood (a session closed at once).
const TRIVIAL_INPUT: usize = 256;

/// Says how well a session was understood. Where the input shows what the line editor drew
/// (bracketed paste), `input_explained` is the share of those lines understood (a prompt and
/// its command, a continuation, a REPL line): an unrecognised prompt leaves its lines
/// unexplained. Without editor marks (dash, bash 4), it is the share of the input's bytes the
/// rows cover. `streamed`: the agent deleted escapes and CRs, so the session is at most
/// `medium`.
fn understand(
    rows: RowsSummary,
    input_len: usize,
    editor_lines: extract::EditorLines,
    streamed: bool,
) -> Understanding {
    let RowsSummary { rows, shells, raw_bytes: covered, .. } = rows;
    let (input_explained, what) = if editor_lines.seen > 0 {
        let understood = editor_lines.seen - editor_lines.not_understood;
        (
            understood as f64 / editor_lines.seen as f64,
            format!("{understood} of {} lines the line editor drew understood", editor_lines.seen),
        )
    } else {
        let share = if input_len == 0 { 1.0 } else { (covered as f64 / input_len as f64).min(1.0) };
        (share, format!("{}% of the input's bytes in rows", (share * 100.0).round()))
    };
    let not_understood = 1.0 - input_explained;
    let (confidence, reason) = if rows == 0 && input_len >= TRIVIAL_INPUT {
        (SessionConfidence::Low, format!("no prompt recognised in {input_len} bytes"))
    } else if editor_lines.seen > 0 && not_understood > MEDIUM_NOT_UNDERSTOOD {
        (SessionConfidence::Low, format!("prompts not recognised: {what}"))
    } else if streamed {
        (
            SessionConfidence::Medium,
            format!("streamed form (escapes and CRs deleted by the agent); {what}"),
        )
    } else if editor_lines.seen > 0 && not_understood > HIGH_NOT_UNDERSTOOD {
        (SessionConfidence::Medium, format!("some prompts not recognised: {what}"))
    } else if editor_lines.seen == 0 && input_explained < LOW_BYTES_IN_ROWS {
        (SessionConfidence::Low, format!("prompts not recognised: {what}"))
    } else if editor_lines.seen == 0 && input_explained < HIGH_BYTES_IN_ROWS {
        (SessionConfidence::Medium, format!("some prompts not recognised: {what}"))
    } else {
        (SessionConfidence::High, what)
    };
    Understanding { shells, input_explained, confidence, reason }
}

fn fill(slot: &mut Option<String>, value: Option<String>) {
    if slot.is_none() {
        *slot = value;
    }
}

/// Returns the account id of an ARN (`arn:aws:sts::111122223333:assumed-role/…`).
pub fn account_of_arn(arn: &str) -> Option<String> {
    let account = arn.split(':').nth(4)?;
    (account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit()))
        .then(|| account.to_string())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use sessionlake_schemas::Confidence;

    use super::*;

    #[test]
    fn test_stream_form() {
        let message = r#"{"eventVersion":"1.0","eventTime":"2024-01-04T05:46:00Z","awsRegion":"ap-northeast-1","target":{"id":"i-0123456789abcdef0"},"userIdentity":{"arn":"arn:aws:sts::111122223333:assumed-role/Admin/alice"},"runAsUser":"ssm-user","sessionId":"alice-0123456789abcdef0","sessionData":["sh-4.2$ sh-4.2$ ls -l \u003e out.txt \u0026\u0026 date","Thu Jan  4 05:45:59 UTC 2024"]}"#;
        let raw = serde_json::to_string(&LogEvent {
            timestamp: 1_704_347_160_000,
            message: message.into(),
        })
        .unwrap()
            + "\n";
        let parsed = parse_session(
            InputForm::CloudwatchStream,
            raw.as_bytes(),
            &SessionContext::new("alice-0123456789abcdef0"),
        )
        .unwrap();
        assert_eq!(parsed.commands.len(), 1);
        let command = &parsed.commands[0];
        assert_eq!(command.command, "ls -l > out.txt && date");
        assert_eq!(command.output, "Thu Jan  4 05:45:59 UTC 2024");
        assert_eq!(command.started_at, Some(1_704_347_160_000_000));
        assert_eq!(command.time_source, TimeSource::CloudwatchEvent);
        assert_eq!(command.target.as_deref(), Some("i-0123456789abcdef0"));
        assert_eq!(command.account.as_deref(), Some("111122223333"));
        assert_eq!(command.run_as.as_deref(), Some("ssm-user"));
    }

    /// An event time out of range (without the agent's own `eventTime`) is bad input: the
    /// event is not read, and a stream of only such events is refused, never dated 1969.
    #[test]
    fn test_a_stream_event_time_out_of_range_is_refused_not_wrapped() {
        let message = r#"{"sessionId":"alice-0123456789abcdef0","sessionData":["sh-4.2$ date"]}"#;
        let context = SessionContext::new("alice-0123456789abcdef0");
        for timestamp in [i64::MAX / 100, -1, 253_402_300_800_000] {
            let raw = serde_json::to_string(&LogEvent { timestamp, message: message.into() })
                .unwrap()
                + "\n";
            let error = parse_session(InputForm::CloudwatchStream, raw.as_bytes(), &context)
                .expect_err("out of range");
            assert!(error.reason.contains("1 malformed lines"), "{timestamp}: {error}");
        }
        assert_eq!(input::event_micros(253_402_300_799_999), Some(253_402_300_799_999_000));
        assert_eq!(input::event_micros(0), Some(0));
    }

    /// A transcript copied through a tool that turned `\r\r\n` into `\n\n`: every command,
    /// as a terminal with `onlcr` shows it, and the same commands as with its CRs.
    #[test]
    fn test_a_transcript_without_crs_reads_as_with_them() {
        let with_crs = b"Script started on 2026-03-14 09:30:00+00:00\n\x1b[?2004h[ec2-user@ip-10-0-0-12 ~]$ ls\r\r\n\x1b[?2004l\ra  b\r\r\n\x1b[?2004h[ec2-user@ip-10-0-0-12 ~]$ sudo su -\r\r\n\x1b[?2004l\r\x1b[?2004h[root@ip-10-0-0-12 ~]# id -un\r\r\n\x1b[?2004l\rroot\r\r\n\x1b[?2004h[root@ip-10-0-0-12 ~]# exit\r\r\n\x1b[?2004l\rlogout\r\r\n\x1b[?2004h[ec2-user@ip-10-0-0-12 ~]$ exit\r\r\n\x1b[?2004l\rexit\r\r\n\nScript done on 2026-03-14 09:30:00+00:00\n";
        let text = String::from_utf8(with_crs.to_vec()).unwrap();
        let without_crs = text.replace("\r\n", "\n").replace('\r', "\n");
        let context = SessionContext::new("alice-0123456789abcdef0");
        let rows = |raw: &[u8]| -> Vec<(String, Option<String>, Option<String>)> {
            let parsed = parse_session(InputForm::S3Transcript, raw, &context).expect("parsed");
            parsed
                .commands
                .into_iter()
                .map(|c| {
                    let user = c.effective_user.map(|u| u.to_string());
                    (c.command, user, c.shell.map(|s| s.to_string()))
                })
                .collect()
        };
        let expected = rows(with_crs);
        let commands: Vec<&str> = expected.iter().map(|row| row.0.as_str()).collect();
        assert_eq!(commands, ["ls", "sudo su -", "id -un", "exit", "exit"]);
        let users: Vec<Option<&str>> = expected.iter().map(|row| row.1.as_deref()).collect();
        assert_eq!(
            users,
            [Some("ec2-user"), Some("ec2-user"), Some("root"), Some("root"), Some("ec2-user")]
        );
        assert!(expected.iter().all(|row| row.2.as_deref() == Some("bash")), "{expected:?}");
        assert_eq!(rows(without_crs.as_bytes()), expected);
    }

    /// A session whose prompts nothing recognises is never silently empty: it says `low`.
    #[test]
    fn test_understanding_says_how_well_a_session_was_read() {
        let context = SessionContext::new("alice-0123456789abcdef0");
        let mut unknown = b"Script started on 2026-03-14 09:30:00+00:00\n".to_vec();
        for _ in 0..20 {
            unknown.extend_from_slice(
                b"%%% uptime\r\r\n 10:00:00 up 3 days, load average: 0.00\r\r\n",
            );
        }
        let parsed = parse_session(InputForm::S3Transcript, &unknown, &context).expect("parsed");
        assert!(parsed.commands.is_empty());
        assert_eq!(parsed.understanding.confidence, SessionConfidence::Low);
        assert!(
            parsed.understanding.reason.starts_with("no prompt recognised"),
            "{:?}",
            parsed.understanding
        );
        let mut known = b"Script started on 2026-03-14 09:30:00+00:00\n".to_vec();
        for _ in 0..20 {
            known.extend_from_slice(b"\x1b[?2004h[ec2-user@ip-10-0-0-12 ~]$ uptime\r\r\n\x1b[?2004l\r 10:00:00 up 3 days\r\r\n");
        }
        let parsed = parse_session(InputForm::S3Transcript, &known, &context).expect("parsed");
        assert_eq!(parsed.commands.len(), 20);
        assert_eq!(
            parsed.understanding.confidence,
            SessionConfidence::High,
            "{:?}",
            parsed.understanding
        );
        assert_eq!(parsed.understanding.shells, ["bash"]);
        assert!(parsed.understanding.input_explained > 0.9);
        // The line editor drew lines whose prompt (`❯ `) nothing here recognises: `low`.
        let mut themed = b"Script started on 2026-03-14 09:30:00+00:00\n".to_vec();
        for _ in 0..20 {
            themed.extend_from_slice(
                "\x1b[?2004h\u{276f} uptime\r\r\n\x1b[?2004l\r up 3 days\r\r\n".as_bytes(),
            );
        }
        let parsed = parse_session(InputForm::S3Transcript, &themed, &context).expect("parsed");
        assert_eq!(
            parsed.understanding.confidence,
            SessionConfidence::Low,
            "{:?}",
            parsed.understanding
        );
        assert!(parsed.understanding.input_explained < 0.1);
    }

    #[test]
    fn test_powershell_transcript_commands() {
        let raw = b"**********************\r\nWindows PowerShell transcript start\r\nStart time: 20260314093000\r\nRunAs User: EC2AMAZ-1\\ssm-user\r\n**********************\r\nTranscript started, output file is C:\\x.log\r\nPS C:\\Windows\\system32> Get-Service sshd\r\nStatus   Name\r\nPS C:\\Windows\\system32> cd C:\\Users\r\nPS C:\\Users> Remove-Item -Recurse -Force .\\temp\r\nPS C:\\Users> exit\r\n**********************\r\nWindows PowerShell transcript end\r\nEnd time: 20260314094500\r\n**********************\r\n";
        let parsed = parse_session(
            InputForm::S3Transcript,
            raw,
            &SessionContext::new("alice-0123456789abcdef0"),
        )
        .unwrap();
        let commands: Vec<_> =
            parsed.commands.iter().map(|c| (c.command.as_str(), c.cwd.as_deref())).collect();
        assert_eq!(
            commands,
            vec![
                ("Get-Service sshd", Some("C:\\Windows\\system32")),
                ("cd C:\\Users", Some("C:\\Windows\\system32")),
                ("Remove-Item -Recurse -Force .\\temp", Some("C:\\Users")),
                ("exit", Some("C:\\Users")),
            ]
        );
        assert_eq!(parsed.commands[0].output, "Status   Name");
        assert_eq!(parsed.status, SessionStatus::Complete);
        assert_eq!(parsed.context.run_as.as_deref(), Some("EC2AMAZ-1\\ssm-user"));
    }

    #[test]
    fn test_garbage_is_an_error_not_a_panic() {
        let garbage: Vec<u8> = (0..4096u32).map(|i| (i % 7) as u8).collect();
        assert!(
            parse_session(InputForm::S3Transcript, &garbage, &SessionContext::new("x")).is_err()
        );
        assert!(
            parse_session(InputForm::CloudwatchStream, b"{not json", &SessionContext::new("x"))
                .is_err()
        );
    }

    /// Parses `raw` fed in chunks of `size` bytes.
    fn parse_in_chunks(
        form: InputForm,
        raw: &[u8],
        size: usize,
    ) -> Result<ParsedSession, ParseError> {
        parse_streaming(form, raw, size, HEAD_BYTES)
    }

    /// Parses `raw` fed in chunks of `size` bytes, the header read from the first `head_limit`.
    fn parse_streaming(
        form: InputForm,
        raw: &[u8],
        size: usize,
        head_limit: usize,
    ) -> Result<ParsedSession, ParseError> {
        let mut parser = SessionParser::new(form, &SessionContext::new("alice-0123456789abcdef0"));
        parser.head_limit = head_limit;
        for chunk in raw.chunks(size.max(1)) {
            parser.feed(chunk);
        }
        parser.finish()
    }

    /// Every transcript of the corpus (`corpus/*/*.log`): its path and bytes.
    fn corpus_transcripts() -> Vec<(std::path::PathBuf, Vec<u8>)> {
        let corpus = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../corpus");
        let mut transcripts = Vec::new();
        for session in std::fs::read_dir(&corpus).expect("corpus") {
            let session = session.expect("entry").path();
            for file in std::fs::read_dir(&session).expect("session folder") {
                let path = file.expect("entry").path();
                if path.extension().is_some_and(|ext| ext == "log") {
                    let raw = std::fs::read(&path).expect("read");
                    transcripts.push((path, raw));
                }
            }
        }
        assert!(transcripts.len() >= 20, "only {} corpus transcripts", transcripts.len());
        transcripts
    }

    #[test]
    fn test_chunked_feeding_parses_as_the_whole_on_the_corpus() {
        for (path, raw) in corpus_transcripts() {
            let whole = parse_session(
                InputForm::S3Transcript,
                &raw,
                &SessionContext::new("alice-0123456789abcdef0"),
            );
            for size in [1, 5, 4093, 65_536] {
                // A head of 16 KiB: the body streams through the terminal, the footer is found
                // in the held tail.
                let chunked = parse_streaming(InputForm::S3Transcript, &raw, size, 16 * 1024);
                assert_eq!(chunked, whole, "{} in chunks of {size}", path.display());
            }
        }
    }

    /// A transcript parsed in two passes, the first holding no row and the second giving each
    /// row as it is made ([`SessionParser::planning`], [`SessionParser::replaying`]), gives
    /// what one pass holding the rows gives, on the whole corpus and in chunks: the same rows
    /// in the same order (shells that later marks give already given), the same facts and
    /// understanding.
    #[test]
    fn test_two_passes_give_what_one_pass_holding_the_rows_gives_on_the_corpus() {
        let context = SessionContext::new("alice-0123456789abcdef0");
        let (mut fixed, mut marked, mut raw_read) = (0, 0, 0);
        for (path, raw) in corpus_transcripts() {
            let form = InputForm::S3Transcript;
            let whole = parse_session(form, &raw, &context);
            for size in [7, 65_536] {
                let feed = |mut parser: SessionParser| {
                    parser.head_limit = 16 * 1024;
                    for chunk in raw.chunks(size) {
                        parser.feed(chunk);
                    }
                    parser.finish()
                };
                let planned = feed(SessionParser::planning(form, &context));
                let (whole, planned) = match (&whole, planned) {
                    (Ok(whole), Ok(planned)) => (whole, planned),
                    (Err(whole), planned) => {
                        assert_eq!(planned.err().as_ref(), Some(whole), "{}", path.display());
                        continue;
                    }
                    (Ok(_), Err(error)) => panic!("{}: {error}", path.display()),
                };
                let plan = planned.plan.clone().expect("a plan");
                assert!(planned.commands.is_empty(), "{}", path.display());
                assert_eq!(
                    ParsedSession { commands: whole.commands.clone(), plan: None, ..planned },
                    *whole,
                    "{} in chunks of {size}",
                    path.display()
                );
                let rows = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
                let sink = {
                    let rows = std::sync::Arc::clone(&rows);
                    Box::new(move |row| rows.lock().expect("rows").push(row))
                };
                let replayed =
                    feed(SessionParser::replaying(form, &context, &plan, sink)).expect("replayed");
                let rows = std::mem::take(&mut *rows.lock().expect("rows"));
                assert_eq!(rows, whole.commands, "{} in chunks of {size}", path.display());
                assert_eq!(replayed.command_count, whole.command_count);
                assert!(replayed.commands.is_empty());
                let in_order =
                    whole.commands.windows(2).all(|w| w[0].started_at <= w[1].started_at);
                assert_eq!(plan.in_time_order, in_order, "{}", path.display());
                fixed += usize::from(!plan.fixes.is_empty() && size == 7);
                marked += usize::from(plan.marked && size == 7);
                raw_read += usize::from(!plan.marked && size == 7);
            }
        }
        assert!(fixed > 0 && marked > 0 && raw_read > 0, "{fixed} fixed, {marked} marked");
    }

    /// A transcript longer than the head read before the header: the header and the footer
    /// (which the terminal must never see as body) are still found, whatever the chunks.
    #[test]
    fn test_a_long_transcript_keeps_its_header_and_footer() {
        let mut raw = b"Script started on 2026-03-14 09:30:00+00:00\n".to_vec();
        let mut expected = Vec::new();
        let mut n = 0;
        while raw.len() < 3 * HEAD_BYTES {
            raw.extend_from_slice(format!("sh-5.2$ echo {n}\r\r\n{n}\r\r\n").as_bytes());
            expected.push(format!("echo {n}"));
            n += 1;
        }
        raw.extend_from_slice(
            b"sh-5.2$ exit\r\r\nexit\r\r\n\nScript done on 2026-03-14 10:00:00+00:00\n",
        );
        expected.push("exit".to_string());
        let whole = parse_session(
            InputForm::S3Transcript,
            &raw,
            &SessionContext::new("alice-0123456789abcdef0"),
        )
        .expect("parsed");
        assert_eq!(whole.status, SessionStatus::Complete);
        assert_eq!(whole.ended_at, input::parse_script_time("2026-03-14 09:30:00+00:00"));
        let commands: Vec<&str> = whole.commands.iter().map(|c| c.command.as_str()).collect();
        assert_eq!(commands, expected);
        let last = whole.commands.last().expect("exit");
        assert_eq!(last.output, "exit", "the footer is no output");
        for size in [1000, 65_536, 1 << 20] {
            let chunked = parse_in_chunks(InputForm::S3Transcript, &raw, size).expect("parsed");
            assert_eq!(chunked, whole, "in chunks of {size}");
        }
    }

    /// A line that never ends keeps a capped prefix; its byte range covers all of it.
    // See: issue 9 (hostile input: a 1 GiB single line, memory bounded).
    #[test]
    fn test_a_huge_line_is_capped_and_its_range_covers_it() {
        let mut raw =
            b"Script started on 2026-03-14 09:30:00+00:00\nsh-5.2$ cat big\r\r\n".to_vec();
        raw.resize(raw.len() + 5 * HEAD_BYTES, b'x');
        let parsed = parse_in_chunks(InputForm::S3Transcript, &raw, 1 << 16).expect("parsed");
        let command = &parsed.commands[0];
        assert_eq!(command.command, "cat big");
        assert!(command.output.len() <= OUTPUT_CAP, "{} bytes of output", command.output.len());
        assert!(command.output_truncated);
        assert_eq!(command.raw_offset + command.raw_len, raw.len() as u64);
    }

    /// An unclosed quote followed by endless continuation lines: the command is cut and says so.
    #[test]
    fn test_an_endless_command_is_cut_and_flagged() {
        let mut raw =
            b"Script started on 2026-03-14 09:30:00+00:00\nsh-5.2$ echo 'open\r\r\n".to_vec();
        while raw.len() < 2 * extract::COMMAND_CAP {
            raw.extend_from_slice(b"> more text\r\r\n");
        }
        let parsed = parse_in_chunks(InputForm::S3Transcript, &raw, 4096).expect("parsed");
        let command = &parsed.commands[0];
        assert!(command.command.starts_with("echo 'open\nmore text"));
        assert!(command.command.len() <= extract::COMMAND_CAP);
        assert_eq!(command.confidence, Confidence::Low);
    }

    proptest! {
        #[test]
        fn test_any_bytes_parse_without_panic_and_ranges_stay_inside(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
            for form in [InputForm::S3Transcript, InputForm::CloudwatchStream] {
                let first = parse_session(form, &bytes, &SessionContext::new("x"));
                let second = parse_session(form, &bytes, &SessionContext::new("x"));
                prop_assert_eq!(&first, &second);
                if let Ok(parsed) = first {
                    for command in parsed.commands {
                        prop_assert!(command.raw_offset + command.raw_len <= bytes.len() as u64);
                    }
                }
            }
        }

        #[test]
        fn test_terminal_like_bytes_never_panic(parts in proptest::collection::vec(prop_oneof![
            Just(b"\x1b[".to_vec()), Just(b"\r".to_vec()), Just(b"\n".to_vec()), Just(b"\x08".to_vec()),
            Just(b"$ ".to_vec()), Just(b"\x1b[?2004h".to_vec()), Just(b"\x1b[?2004l".to_vec()),
            Just(b"\x1b[?1049h".to_vec()), Just(b"\x1b[?1049l".to_vec()), Just(b"\x1b[5D".to_vec()),
            Just(b"\x1b[3@".to_vec()), Just(b"\x1b[K".to_vec()), Just(b"\x1b[A".to_vec()), Just("日".as_bytes().to_vec()),
            proptest::collection::vec(any::<u8>(), 0..8),
        ], 0..200)) {
            let bytes: Vec<u8> = parts.concat();
            let _ = parse_session(InputForm::S3Transcript, &bytes, &SessionContext::new("x"));
        }

        #[test]
        fn test_chunks_of_any_size_parse_as_the_whole(parts in proptest::collection::vec(prop_oneof![
            Just(b"\x1b[".to_vec()), Just(b"\r".to_vec()), Just(b"\n".to_vec()), Just(b"\x08".to_vec()),
            Just(b"$ ".to_vec()), Just(b"\x1b[?2004h".to_vec()), Just(b"\x1b[?2004l".to_vec()),
            Just(b"ls -l".to_vec()), Just(b"> ".to_vec()), Just(b"'".to_vec()), Just(b"\x1b[5D".to_vec()),
            Just("日".as_bytes().to_vec()), Just(b"Script done on 2026-03-14 10:00:00+00:00\n".to_vec()),
            proptest::collection::vec(any::<u8>(), 0..8),
        ], 0..200), size in 1usize..64) {
            let mut bytes = b"Script started on 2026-03-14 09:30:00+00:00\n".to_vec();
            bytes.extend(parts.concat());
            let whole = parse_session(InputForm::S3Transcript, &bytes, &SessionContext::new("alice-0123456789abcdef0"));
            prop_assert_eq!(parse_streaming(InputForm::S3Transcript, &bytes, size, 64), whole);
        }
    }
}
