//! asciicast v2 recordings of a session, for `asciinema play`.
//!
//! # Format
//!
//! One JSON object per line: a header, then `[time, "o", data]` output events, `time` being
//! seconds since the start of the recording (non-decreasing) and `data` a JSON string
//! (<https://docs.asciinema.org/manual/asciicast/v2/>):
//!
//! ```text
//! {"version":2,"width":80,"height":24,"timestamp":1773480410,"title":"…"}
//! [0.0,"o","sh-5.2$ ls\r\n"]
//! ```
//!
//! # Times
//!
//! - Streamed CloudWatch sessions carry the time of each batch of lines (the log event's
//!   `timestamp`, in ms): events play at those real offsets ([`Timing::Recorded`]).
//! - S3, local and uploaded transcripts (`script(1)` output) have no time inside: events are
//!   paced synthetically ([`Timing::Synthetic`]): one event per line, [`SYNTHETIC_LINE_MICROS`]
//!   apart, and a pause of [`SYNTHETIC_COMMAND_PAUSE_MICROS`] where a command starts (the
//!   command's `raw_offset`). The header's title says which.
//!
//! # Bytes
//!
//! Terminal bytes are decoded as UTF-8 across event boundaries (a character split between two
//! chunks is kept whole); bytes that are not UTF-8 become U+FFFD. A line feed with no carriage
//! return before it is played as CR LF, as a terminal with `onlcr` shows it (`script`'s header
//! and footer lines, the `\n` that joins uploaded CloudWatch events). The original bytes are
//! in the bundle's transcript file, untouched.

use serde::Serialize;

/// Pace of synthetic timing: time between two lines.
pub const SYNTHETIC_LINE_MICROS: u64 = 50_000;
/// Pace of synthetic timing: pause before each command.
pub const SYNTHETIC_COMMAND_PAUSE_MICROS: u64 = 1_000_000;
/// Largest event: longer lines are cut into several events (at a character boundary).
pub const MAX_EVENT_BYTES: usize = 16 * 1024;
/// Terminal height of the recording (the sessions do not record theirs).
pub const DEFAULT_HEIGHT: u16 = 24;
/// Narrowest terminal width of the recording.
pub const MIN_WIDTH: u16 = 80;
/// Widest terminal width of the recording, whatever the longest line.
pub const MAX_WIDTH: u16 = 240;

/// Where the times of a recording come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timing {
    /// Real times from the source (CloudWatch event timestamps).
    Recorded,
    /// Made-up pacing: the source has no times.
    Synthetic,
}

impl Timing {
    /// Returns a short description for titles and READMEs.
    pub fn describe(self) -> &'static str {
        match self {
            Timing::Recorded => "times from the CloudWatch log events",
            Timing::Synthetic => "synthetic timing (the transcript records no times)",
        }
    }
}

/// The header line.
#[derive(Debug, Serialize)]
struct Header<'a> {
    version: u32,
    width: u16,
    height: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    timestamp: Option<i64>,
    title: &'a str,
}

/// Decodes UTF-8 that arrives in pieces: a character cut at the end of one piece is completed
/// by the next; invalid bytes become U+FFFD.
#[derive(Debug, Default)]
pub struct Utf8Stream {
    pending: Vec<u8>,
}

impl Utf8Stream {
    /// Decodes `bytes` (after what is pending) into `out`, keeping an incomplete trailing
    /// character for the next call.
    pub fn push(&mut self, bytes: &[u8], out: &mut String) {
        self.pending.extend_from_slice(bytes);
        let mut input: &[u8] = &self.pending;
        let mut consumed = 0;
        loop {
            match std::str::from_utf8(input) {
                Ok(text) => {
                    out.push_str(text);
                    consumed += input.len();
                    break;
                }
                Err(error) => {
                    let valid = error.valid_up_to();
                    // `valid` bytes were just checked as UTF-8.
                    out.push_str(&String::from_utf8_lossy(&input[..valid]));
                    match error.error_len() {
                        Some(bad) => {
                            out.push(char::REPLACEMENT_CHARACTER);
                            consumed += valid + bad;
                            input = &input[valid + bad..];
                        }
                        // An incomplete character at the end: wait for the rest.
                        None => {
                            consumed += valid;
                            break;
                        }
                    }
                }
            }
        }
        self.pending.drain(..consumed);
    }

    /// Flushes what is pending (an incomplete character at the very end) as U+FFFD.
    pub fn finish(&mut self, out: &mut String) {
        if !self.pending.is_empty() {
            out.push_str(&String::from_utf8_lossy(&self.pending));
            self.pending.clear();
        }
    }
}

/// Tracks the widest column terminal text reaches, skipping escape sequences. `script`'s own
/// header line (`Script started on … [COMMAND="…"]`, written to the file, never shown on the
/// terminal) does not count: with the agent's long command in it, it would make every replay
/// 240 columns wide and its font tiny.
#[derive(Debug, Default)]
struct WidthGauge {
    column: u32,
    widest: u32,
    state: Escape,
    /// Lines ended so far (up to 1: only the first is looked at).
    lines: u8,
    /// The start of the first line, up to [`SCRIPT_HEADER`]'s length.
    first: String,
    /// The first line's width, kept apart until it is known not to be `script`'s header.
    first_widest: u32,
    /// The last character drawn was a blank.
    after_blank: bool,
    /// How often readline's wrap (the last column drawn, then a blank and CR, which wrap the
    /// cursor onto the next row's start) was seen, by the width it tells.
    wraps: std::collections::BTreeMap<u32, u32>,
}

/// How `script(1)` starts the header line of its file.
const SCRIPT_HEADER: &str = "Script started on ";

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Escape {
    #[default]
    Ground,
    /// After ESC.
    Start,
    /// Inside `ESC [ …` until a final byte.
    Csi,
    /// Inside `ESC ] …` until BEL or ESC \.
    Osc,
    /// Saw ESC inside an OSC string (the start of its ST terminator).
    OscEnd,
}

impl WidthGauge {
    fn feed(&mut self, text: &str) {
        for c in text.chars() {
            self.state = match (self.state, c) {
                (Escape::Ground, '\u{1b}') => Escape::Start,
                (Escape::Ground, '\r' | '\n') => {
                    if c == '\n' && self.lines == 0 {
                        self.lines = 1;
                    }
                    // readline at the right margin: a blank past the last column, then CR.
                    let width = self.column.saturating_sub(1);
                    if c == '\r' && self.after_blank && width >= u32::from(MIN_WIDTH) {
                        *self.wraps.entry(width).or_default() += 1;
                    }
                    self.after_blank = false;
                    self.column = 0;
                    Escape::Ground
                }
                (Escape::Ground, '\u{8}') => {
                    self.column = self.column.saturating_sub(1);
                    Escape::Ground
                }
                (Escape::Ground, '\t') => {
                    self.column = (self.column / 8 + 1) * 8;
                    self.widest = self.widest.max(self.column);
                    Escape::Ground
                }
                (Escape::Ground, c) if c.is_control() => Escape::Ground,
                (Escape::Ground, _) => {
                    self.after_blank = c == ' ';
                    self.column = self.column.saturating_add(1);
                    if self.lines == 0 {
                        if self.first.len() < SCRIPT_HEADER.len() {
                            self.first.push(c);
                        }
                        self.first_widest = self.first_widest.max(self.column);
                    } else {
                        self.widest = self.widest.max(self.column);
                    }
                    Escape::Ground
                }
                (Escape::Start, '[') => Escape::Csi,
                (Escape::Start, ']') => Escape::Osc,
                (Escape::Start, _) => Escape::Ground,
                (Escape::Csi, '\u{40}'..='\u{7e}') => Escape::Ground,
                (Escape::Csi, _) => Escape::Csi,
                (Escape::Osc, '\u{7}') => Escape::Ground,
                (Escape::Osc, '\u{1b}') => Escape::OscEnd,
                (Escape::Osc, _) => Escape::Osc,
                (Escape::OscEnd, _) => Escape::Ground,
            };
        }
    }

    /// The terminal's width: the one readline's wraps tell (the most often seen), else the
    /// widest line drawn.
    fn width(&self) -> u16 {
        let header = self.first.starts_with(SCRIPT_HEADER.trim_end());
        let widest = if header { self.widest } else { self.widest.max(self.first_widest) };
        let wrapped = self.wraps.iter().max_by_key(|(width, seen)| (**seen, **width));
        let width = wrapped.map_or(widest, |(width, _)| *width);
        u16::try_from(width).unwrap_or(MAX_WIDTH).clamp(MIN_WIDTH, MAX_WIDTH)
    }
}

/// Builds an asciicast v2 recording from timed pieces of terminal output.
#[derive(Debug, Default)]
pub struct CastBuilder {
    events: Vec<(u64, String)>,
    decoder: Utf8Stream,
    gauge: WidthGauge,
    last_micros: u64,
    after_cr: bool,
}

impl CastBuilder {
    /// Returns an empty recording.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `bytes` of terminal output at `micros` after the start. A time earlier than the
    /// previous event's is raised to it, so times never go back.
    pub fn output(&mut self, micros: u64, bytes: &[u8]) {
        let at = micros.max(self.last_micros);
        for piece in bytes.chunks(MAX_EVENT_BYTES) {
            let mut terminal = Vec::with_capacity(piece.len() + 8);
            for &byte in piece {
                if byte == b'\n' && !self.after_cr {
                    terminal.push(b'\r');
                }
                terminal.push(byte);
                self.after_cr = byte == b'\r';
            }
            let mut text = String::new();
            self.decoder.push(&terminal, &mut text);
            self.push_text(at, text);
        }
    }

    fn push_text(&mut self, at: u64, text: String) {
        if text.is_empty() {
            return;
        }
        self.gauge.feed(&text);
        self.last_micros = at;
        self.events.push((at, text));
    }

    /// Returns the recording as JSON Lines: header, then events. `timestamp` is the start in
    /// seconds since the epoch, when known.
    pub fn finish(mut self, timestamp: Option<i64>, title: &str) -> String {
        let mut rest = String::new();
        self.decoder.finish(&mut rest);
        let at = self.last_micros;
        self.push_text(at, rest);
        let header = Header {
            version: 2,
            width: self.gauge.width(),
            height: DEFAULT_HEIGHT,
            timestamp,
            title,
        };
        let mut cast = json_line(&header);
        for (micros, text) in &self.events {
            // µs as f64 is exact up to 2^53 µs (285 years); the shortest repr prints 1.05, not
            // 1.0500000000000000444.
            let seconds = *micros as f64 / 1_000_000.0;
            cast.push_str(&json_line(&(seconds, "o", text)));
        }
        cast
    }
}

fn json_line<T: Serialize>(value: &T) -> String {
    // Serialising strings, numbers and a plain struct cannot fail.
    let mut line = serde_json::to_string(value).unwrap_or_default();
    line.push('\n');
    line
}

/// Returns the synthetic schedule of a transcript without times: `(micros, byte range)` pieces
/// that each end at a line end or where a command starts (`command_offsets`, byte offsets into
/// `raw`). See the module docs for the pace.
pub fn synthetic_schedule(
    raw: &[u8],
    command_offsets: &[u64],
) -> Vec<(u64, std::ops::Range<usize>)> {
    let mut starts: Vec<usize> = command_offsets
        .iter()
        .filter_map(|offset| usize::try_from(*offset).ok())
        .filter(|offset| *offset > 0 && *offset < raw.len())
        .collect();
    starts.sort_unstable();
    starts.dedup();
    let mut schedule = Vec::new();
    let mut micros = 0u64;
    let mut begin = 0usize;
    let mut next_command = starts.iter().peekable();
    while begin < raw.len() {
        let line_end = memchr_newline(&raw[begin..]).map_or(raw.len(), |at| begin + at + 1);
        // Skip command starts already passed (several on one line, or at `begin`).
        while next_command.next_if(|start| **start <= begin).is_some() {}
        let end = match next_command.peek() {
            Some(&&start) if start < line_end => start,
            _ => line_end,
        };
        schedule.push((micros, begin..end));
        let pause = if starts.binary_search(&end).is_ok() {
            SYNTHETIC_COMMAND_PAUSE_MICROS
        } else {
            SYNTHETIC_LINE_MICROS
        };
        micros = micros.saturating_add(pause);
        begin = end;
    }
    schedule
}

fn memchr_newline(bytes: &[u8]) -> Option<usize> {
    bytes.iter().position(|byte| *byte == b'\n')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(cast: &str) -> (serde_json::Value, Vec<(f64, String)>) {
        let mut lines = cast.lines();
        let header: serde_json::Value =
            serde_json::from_str(lines.next().expect("header")).expect("header is JSON");
        let events = lines
            .map(|line| {
                let event: (f64, String, String) = serde_json::from_str(line).expect(line);
                assert_eq!(event.1, "o", "{line}");
                (event.0, event.2)
            })
            .collect();
        (header, events)
    }

    #[test]
    fn test_utf8_stream_keeps_characters_whole_and_replaces_bad_bytes() {
        let cases: [(&[&[u8]], &str); 6] = [
            (&[b"abc"], "abc"),
            // "é" (C3 A9) cut between two pieces.
            (&[b"caf\xc3", b"\xa9!"], "café!"),
            // A 4-byte emoji cut in three.
            (&[b"\xf0\x9f", b"\x98", b"\x80x"], "😀x"),
            (&[b"a\xffb"], "a\u{fffd}b"),
            // An incomplete character at the very end.
            (&[b"ok\xe2\x82"], "ok\u{fffd}"),
            (&[b"\xc3", b"(", b"z"], "\u{fffd}(z"),
        ];
        for (pieces, expected) in cases {
            let mut stream = Utf8Stream::default();
            let mut out = String::new();
            for piece in pieces {
                stream.push(piece, &mut out);
            }
            stream.finish(&mut out);
            assert_eq!(out, expected, "pieces {pieces:?}");
        }
    }

    #[test]
    fn test_cast_header_events_and_times() {
        let mut cast = CastBuilder::new();
        cast.output(0, b"$ echo \xc3");
        cast.output(1_500_000, b"\xa9\r\n\xc3\xa9\r\n");
        // Out of order: raised to the previous time.
        cast.output(1_000_000, b"late\nline");
        let (header, events) = parse(&cast.finish(Some(1_773_480_410), "t"));
        assert_eq!(header["version"], 2);
        assert_eq!(header["width"], u64::from(MIN_WIDTH));
        assert_eq!(header["height"], u64::from(DEFAULT_HEIGHT));
        assert_eq!(header["timestamp"], 1_773_480_410);
        assert_eq!(header["title"], "t");
        let times: Vec<f64> = events.iter().map(|e| e.0).collect();
        assert_eq!(times, vec![0.0, 1.5, 1.5]);
        let text: String = events.iter().map(|e| e.1.as_str()).collect();
        // Bare LF played as CR LF; the split "é" whole, in the event that completes it.
        assert_eq!(text, "$ echo é\r\né\r\nlate\r\nline");
        assert_eq!(events[0].1, "$ echo ");
    }

    #[test]
    fn test_cast_escapes_control_bytes_and_measures_width() {
        let mut cast = CastBuilder::new();
        let wide = "x".repeat(130);
        cast.output(
            0,
            format!("\u{1b}[1;32m{wide}\u{1b}[0m\r\n\u{1b}]0;title\u{7}\x00").as_bytes(),
        );
        let text = cast.finish(None, "t");
        let (header, events) = parse(&text);
        assert_eq!(header["width"], 130, "escape sequences do not count");
        assert!(header.get("timestamp").is_none());
        assert!(events[0].1.ends_with("\u{7}\u{0}"));
        assert!(text.contains("\\u001b[1;32m"), "{text}");
    }

    /// `script`'s header line, however long, does not make the terminal wider; the same line
    /// anywhere else does, and so does a long first line that is no header.
    #[test]
    fn test_the_script_header_does_not_widen_the_replay() {
        let header = format!(
            "Script started on 2026-03-14 09:30:00+00:00 [COMMAND=\"{}\"]",
            "x".repeat(200)
        );
        let width = |text: &str| {
            let mut cast = CastBuilder::new();
            cast.output(0, text.as_bytes());
            parse(&cast.finish(None, "t")).0["width"].as_u64().expect("width")
        };
        assert_eq!(width(&format!("{header}\nsh-5.2$ ls\r\n")), u64::from(MIN_WIDTH));
        assert_eq!(width(&format!("sh-5.2$ ls\r\n{header}\n")), u64::from(MAX_WIDTH));
        assert_eq!(width(&format!("{}\nsh-5.2$ ls\r\n", "y".repeat(130))), 130);
    }

    /// A line readline wrapped at the right margin (the last column drawn, a blank, CR, the
    /// rest) tells the terminal's width, however far the rest reaches; a progress line's
    /// blank and CR before the margin tells nothing.
    #[test]
    fn test_readline_wraps_tell_the_width() {
        let width = |text: &str| {
            let mut cast = CastBuilder::new();
            cast.output(0, text.as_bytes());
            parse(&cast.finish(None, "t")).0["width"].as_u64().expect("width")
        };
        let prompt = "[ssm-user@ip-10-0-0-12 app]$ ";
        let typed = "mkdir -p /tmp/alice-scratch && cp logs/app.log /tmp";
        assert_eq!(prompt.len() + typed.len(), 80);
        let wrapped = format!("{prompt}{typed} \r/alice-scratch/\r\r\n{}\r\n", "z".repeat(100));
        assert_eq!(width(&wrapped), 80);
        let wide = format!("{} \rmore\r\n", "w".repeat(120));
        assert_eq!(width(&wide), 120);
        assert_eq!(width(&format!(" 42% \r 43% \r{}\r\n", "p".repeat(100))), 100);
    }

    #[test]
    fn test_long_lines_are_cut_into_events_without_splitting_characters() {
        let mut cast = CastBuilder::new();
        // One ASCII byte first: every cut at MAX_EVENT_BYTES falls inside a 2-byte "é".
        let line = format!("a{}", "é".repeat(MAX_EVENT_BYTES));
        cast.output(0, line.as_bytes());
        let (_, events) = parse(&cast.finish(None, "t"));
        assert!(events.len() >= 2, "{}", events.len());
        assert!(events.iter().all(|e| !e.1.contains('\u{fffd}')));
        assert_eq!(events.iter().map(|e| e.1.as_str()).collect::<String>(), line);
    }

    #[test]
    fn test_synthetic_schedule() {
        let raw = b"Script started\n$ ls\r\na b\r\n$ pwd\r\n/\r\n";
        let schedule = synthetic_schedule(raw, &[15, 26, 999]);
        let pieces: Vec<(u64, &[u8])> =
            schedule.iter().map(|(t, range)| (*t, &raw[range.clone()])).collect();
        assert_eq!(
            pieces,
            vec![
                (0, &b"Script started\n"[..]),
                (1_000_000, b"$ ls\r\n"),
                (1_050_000, b"a b\r\n"),
                (2_050_000, b"$ pwd\r\n"),
                (2_100_000, b"/\r\n"),
            ]
        );
        // A command that starts mid-line splits the line; the pieces cover every byte once.
        let schedule = synthetic_schedule(b"ab$ x\ny", &[2]);
        let ranges: Vec<_> = schedule.iter().map(|(_, range)| range.clone()).collect();
        assert_eq!(ranges, vec![0..2, 2..6, 6..7]);
        assert_eq!(schedule[1].0, SYNTHETIC_COMMAND_PAUSE_MICROS);
        assert!(synthetic_schedule(b"", &[0]).is_empty());
    }
}
