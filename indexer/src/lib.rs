//! Turns SSM session transcripts into command records, and command records into Parquet.
//!
//! Parsing is synchronous and pure: [`parse_session`] takes the raw bytes of one session in one
//! of the SSM forms and returns its commands, with byte ranges into those same bytes.
//!
//! ```
//! use sessionlake_indexer::{InputForm, SessionContext, parse_session};
//! let raw = b"Script started on 2026-03-14 09:30:00+00:00\nsh-5.2$ ls\r\r\na  b\r\r\nsh-5.2$ exit\r\r\nexit\r\r\n\nScript done on 2026-03-14 09:30:00+00:00\n";
//! let parsed = parse_session(InputForm::S3Transcript, raw, &SessionContext::new("alice-0123456789abcdef0")).unwrap();
//! let commands: Vec<_> = parsed.commands.iter().map(|c| c.command.as_str()).collect();
//! assert_eq!(commands, ["ls", "exit"]);
//! ```

pub mod bench;
pub mod cloudtrail;
pub mod eval;
pub mod extract;
pub mod input;
pub mod parquet_out;
pub mod prompt;
pub mod redact;
pub mod stripped;
pub mod syntax;
pub mod terminal;

use std::sync::Arc;

use sessionlake_schemas::{CommandRecord, SessionStatus, TimeSource};

use crate::extract::{Assembler, Draft, Evidence, Line};
use crate::input::{LogEvent, StreamMessage};
use crate::terminal::{DEFAULT_WIDTH, LineSink, LineTerminal};

/// Version of the parser, stored in every row it produces. Bump it when output changes.
pub const PARSER_VERSION: u32 = 1;

pub use crate::extract::OUTPUT_CAP;

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

/// What is known about a session from outside its transcript (CloudTrail, the source).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionContext {
    /// Session id.
    pub session_id: String,
    /// Who started it.
    pub principal: Option<String>,
    /// OS user.
    pub run_as: Option<String>,
    /// Managed node.
    pub target: Option<String>,
    /// AWS region.
    pub region: Option<String>,
    /// AWS account.
    pub account: Option<String>,
    /// Start time from CloudTrail `StartSession` (µs).
    pub started_at: Option<i64>,
}

impl SessionContext {
    /// Returns a context that knows only the session id.
    pub fn new(session_id: impl Into<String>) -> Self {
        SessionContext { session_id: session_id.into(), ..Default::default() }
    }
}

/// A parsed session.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedSession {
    /// The commands, in order.
    pub commands: Vec<CommandRecord>,
    /// The session context, completed with what the transcript revealed.
    pub context: SessionContext,
    /// End of the session (µs), when the input tells.
    pub ended_at: Option<i64>,
    /// Parse outcome.
    pub status: SessionStatus,
}

/// Why a session could not be parsed at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct ParseError {
    /// What was wrong, naming the part of the input.
    pub reason: String,
}

/// Parses one session's raw bytes.
pub fn parse_session(
    form: InputForm,
    raw: &[u8],
    context: &SessionContext,
) -> Result<ParsedSession, ParseError> {
    match form {
        InputForm::S3Transcript | InputForm::CloudwatchUpload => parse_transcript(raw, context),
        InputForm::CloudwatchStream => parse_stream(raw, context),
    }
}

fn parse_transcript(raw: &[u8], context: &SessionContext) -> Result<ParsedSession, ParseError> {
    if raw.is_empty() {
        return Err(ParseError { reason: "not a session transcript: the object is empty".into() });
    }
    let script = input::split_script(raw);
    let body = &raw[script.body.clone()];
    if script.header.generated_at.is_none() && !looks_like_terminal_text(body) {
        return Err(ParseError {
            reason: "not a session transcript: no script header and mostly binary".into(),
        });
    }
    // bash >= 5.1 marks what its line editor draws (bracketed paste): look once, up front, so
    // that lines are assembled as they come, with the evidence the whole transcript has.
    let marked = memchr::memmem::find(body, b"\x1b[?2004h").is_some();
    let evidence = if marked { Evidence::EditorMarks } else { Evidence::Raw };
    let mut drafts = assemble_transcript(body, script.body.start, evidence);
    let actual = if drafts.regions > 0 { Evidence::EditorMarks } else { Evidence::Raw };
    if actual != evidence {
        // Bracketed paste switched on in a form the look-up missed (`ESC[?1;2004h`), or the
        // bytes it found were not a sequence of their own (inside a title): once more.
        drafts = assemble_transcript(body, script.body.start, actual);
    }
    let mut drafts = drafts.drafts;
    if script.header.legacy {
        drop_legacy_noise(&mut drafts);
    }
    let mut context = context.clone();
    if context.target.is_none() {
        context.target = script.header.target.clone();
    }
    // The session's OS user is the one its first prompt shows (before any `sudo su`), or the
    // PowerShell transcript's `RunAs User`.
    if context.run_as.is_none() {
        context.run_as = script.header.run_as.clone();
    }
    if context.run_as.is_none() {
        context.run_as = drafts.first().and_then(|draft| draft.user.clone());
    }
    let status =
        if script.header.complete { SessionStatus::Complete } else { SessionStatus::Truncated };
    let commands = records(drafts, &context, TimeSource::None);
    Ok(ParsedSession { commands, context, ended_at: script.header.generated_at, status })
}

/// The commands of a transcript body, and how many editor regions it opened.
struct TranscriptDrafts {
    drafts: Vec<Draft>,
    regions: u32,
}

fn assemble_transcript(body: &[u8], offset: usize, evidence: Evidence) -> TranscriptDrafts {
    let sink = TranscriptLines {
        assembler: Assembler::new(evidence),
        pending: None,
        last_region: None,
        spare: String::new(),
        offset,
    };
    let (mut sink, regions) = LineTerminal::run_into(DEFAULT_WIDTH, body, sink);
    sink.flush();
    TranscriptDrafts { drafts: sink.assembler.finish(), regions }
}

/// Takes the terminal's lines as they are finished, joins the lines drawn in one editor region
/// (one input buffer), and hands the result to the assembler.
struct TranscriptLines {
    assembler: Assembler,
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
            self.assembler.push(&line);
            self.spare = line.text;
        }
    }
}

impl LineSink for TranscriptLines {
    fn line(&mut self, text: &str, start: usize, end: usize, region: Option<u32>) {
        if region.is_some()
            && region == self.last_region
            && let Some(previous) = self.pending.as_mut()
        {
            previous.text.push('\n');
            previous.text.push_str(text);
            previous.end = end + self.offset;
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
        });
    }
}

/// Legacy agents ran the session through a logger shell: its `ssm-session-logger` command and
/// the `exit`s that closed it are not the user's.
fn drop_legacy_noise(drafts: &mut Vec<Draft>) {
    let logger_prompt = drafts
        .iter()
        .find(|draft| draft.command.contains("ssm-session-logger"))
        .map(|draft| draft.prompt.clone());
    drafts.retain(|draft| !draft.command.contains("ssm-session-logger"));
    if let Some(prompt) = logger_prompt {
        while drafts
            .last()
            .is_some_and(|draft| draft.prompt == prompt && draft.command.trim() == "exit")
        {
            drafts.pop();
        }
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
    let mut lines = Vec::new();
    let mut texts = Vec::new();
    let mut offset = 0usize;
    let mut events = 0usize;
    let mut bad = 0usize;
    let mut first_time = None;
    let mut last_time = None;
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
        events += 1;
        let time = message
            .event_time
            .as_deref()
            .and_then(|text| chrono::DateTime::parse_from_rfc3339(text).ok())
            .map(|time| time.timestamp_micros())
            .or(Some(event.timestamp * 1000));
        first_time = first_time.or(time);
        last_time = time.or(last_time);
        fill(&mut context.principal, message.user_identity.and_then(|u| u.arn));
        fill(&mut context.target, message.target.and_then(|t| t.id));
        fill(&mut context.region, message.aws_region);
        fill(&mut context.run_as, message.run_as_user.filter(|user| !user.is_empty()));
        for text in message.session_data {
            texts.push(text);
            lines.push(Line { text: String::new(), start, end: offset, editor: false, time });
        }
    }
    // What the agent's ANSI stripper left (backspaces, a whole line it could not parse) is
    // replayed line by line, with what the whole stream tells about the terminal.
    for (line, shown) in lines.iter_mut().zip(stripped::reconstruct_lines(&texts)) {
        line.text = shown;
    }
    if events == 0 {
        return Err(ParseError {
            reason: format!("no streamed session event could be read ({bad} malformed lines)"),
        });
    }
    if context.account.is_none() {
        context.account = context.principal.as_deref().and_then(account_of_arn);
    }
    extract::merge_stripped_pastes(&mut lines);
    let drafts = extract::assemble(&lines, Evidence::Stripped);
    let commands = records(drafts, &context, TimeSource::CloudwatchEvent);
    if context.started_at.is_none() {
        context.started_at = first_time;
    }
    Ok(ParsedSession { commands, context, ended_at: last_time, status: SessionStatus::Complete })
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

fn records(
    drafts: Vec<Draft>,
    context: &SessionContext,
    line_time_source: TimeSource,
) -> Vec<CommandRecord> {
    let shared = |value: &Option<String>| value.as_deref().map(Arc::<str>::from);
    let session_id: Arc<str> = Arc::from(context.session_id.as_str());
    let (principal, run_as, target) =
        (shared(&context.principal), shared(&context.run_as), shared(&context.target));
    let (region, account) = (shared(&context.region), shared(&context.account));
    drafts
        .into_iter()
        .enumerate()
        .map(|(seq, draft)| {
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
                if draft.time.is_some() { line_time_source } else { TimeSource::None };
            CommandRecord {
                session_id: session_id.clone(),
                seq: seq as u32,
                started_at: draft.time,
                time_source,
                principal: principal.clone(),
                run_as: run_as.clone(),
                target: target.clone(),
                region: region.clone(),
                account: account.clone(),
                cwd: draft.cwd,
                prompt: draft.prompt,
                command,
                output,
                output_truncated,
                output_bytes,
                raw_offset,
                raw_len,
                redactions: command_redactions + output_redactions,
                confidence: draft.confidence,
                parser_version: PARSER_VERSION,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

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
    }
}
