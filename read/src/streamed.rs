//! A session streamed to CloudWatch Logs, as a reader replays it: the lake stores its log
//! events (JSON Lines, [`sessionlake_schemas::streamed`]); a person wants the terminal lines
//! they carry. [`events`] reads them with their times (for a replay paced as recorded),
//! [`event_line_times`] says where each event starts (to place a command), and
//! [`StreamedTerminal`] writes the lines of a transcript of any size as it streams by.
//!
//! ```
//! use std::io::Write as _;
//! use sessionlake_read::streamed::StreamedTerminal;
//!
//! let stored = br#"{"timestamp":1710408000000,"message":"{\"sessionData\":[\"$ ls\",\"a b\"]}"}"#;
//! let mut shown = Vec::new();
//! StreamedTerminal::new(&mut shown).write_all(stored).unwrap();
//! assert_eq!(shown, b"$ ls\na b\n");
//! ```

use sessionlake_schemas::json_error_position;
use sessionlake_schemas::streamed::{LogEvent, StreamMessage};

use crate::error::{ErrorKind as _, ReadError, ReadErrorKind};

/// Returns the streamed events of a `cloudwatch-stream` transcript: (ms, terminal lines).
pub fn events(raw: &[u8]) -> Result<Vec<(i64, Vec<String>)>, ReadError> {
    let mut events = Vec::new();
    for (number, line) in raw.split(|byte| *byte == b'\n').enumerate() {
        if line.trim_ascii().is_empty() {
            continue;
        }
        // serde_json's own message would quote the line: the terminal's text, never an
        // error's. Kind and position only.
        let event: LogEvent = serde_json::from_slice(line).map_err(|error| {
            ReadErrorKind::Format.message(format!(
                "line {} is not a log event ({})",
                number + 1,
                json_error_position(&error)
            ))
        })?;
        events.push((event.timestamp, terminal_lines(event.message)));
    }
    Ok(events)
}

/// Returns the terminal lines an event's message carries: its `sessionData`; a message that is
/// not the agent's JSON as the indexer reads it is one line, as it is (the indexer skipped it:
/// a replay shows it apart, never as lines it parsed).
fn terminal_lines(message: String) -> Vec<String> {
    match serde_json::from_str::<StreamMessage>(&message) {
        Ok(parsed) => parsed.session_data,
        Err(_) => vec![message],
    }
}

/// Returns where each event line of a `cloudwatch-stream` transcript starts (byte offset) and
/// its timestamp (ms), in order; lines that are no event are left out.
pub fn event_line_times(raw: &[u8]) -> Vec<(u64, i64)> {
    let mut found = Vec::new();
    let mut start = 0u64;
    for line in raw.split(|byte| *byte == b'\n') {
        if let Ok(event) = serde_json::from_slice::<LogEvent>(line) {
            found.push((start, event.timestamp));
        }
        start = start.saturating_add(line.len() as u64 + 1);
    }
    found
}

/// Writes a `cloudwatch-stream` transcript (one log event per line) as the terminal lines its
/// events carry, for `show --raw`: what replays in a terminal, not the agent's JSON. It works
/// line by line, so a transcript of any size is never held whole; a line that is no event, or
/// an event whose message is not the agent's JSON, is written as it is (nothing is dropped).
pub struct StreamedTerminal<W: std::io::Write> {
    out: W,
    pending: Vec<u8>,
}

impl<W: std::io::Write> StreamedTerminal<W> {
    /// Writes to `out`.
    pub fn new(out: W) -> Self {
        StreamedTerminal { out, pending: Vec::new() }
    }

    fn line(&mut self, line: &[u8]) -> std::io::Result<()> {
        if line.trim_ascii().is_empty() {
            return Ok(());
        }
        let Ok(event) = serde_json::from_slice::<LogEvent>(line) else {
            self.out.write_all(line)?;
            return self.out.write_all(b"\n");
        };
        for text in terminal_lines(event.message) {
            self.out.write_all(text.as_bytes())?;
            self.out.write_all(b"\n")?;
        }
        Ok(())
    }
}

impl<W: std::io::Write> std::io::Write for StreamedTerminal<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.pending.extend_from_slice(buf);
        let mut buffer = std::mem::take(&mut self.pending);
        let mut start = 0;
        while let Some(at) = buffer[start..].iter().position(|byte| *byte == b'\n') {
            self.line(&buffer[start..start + at])?;
            start += at + 1;
        }
        // The unfinished line stays, in the same buffer.
        buffer.drain(..start);
        self.pending = buffer;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let rest = std::mem::take(&mut self.pending);
        self.line(&rest)?;
        self.out.flush()
    }
}

impl<W: std::io::Write> Drop for StreamedTerminal<W> {
    fn drop(&mut self) {
        // The last line when it has no line feed; a failed write was reported by `flush`.
        let _ = std::io::Write::flush(self);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A streamed delivery written for `show --raw`: the terminal lines of its events, whatever
    /// the write boundaries; a line that is no event, or a message that is not the agent's
    /// JSON, is kept as it is; the last line needs no line feed.
    #[test]
    fn test_streamed_terminal_writes_the_events_lines() {
        use std::io::Write as _;
        let raw = b"{\"timestamp\":1000,\"message\":\"{\\\"sessionData\\\":[\\\"$ ls\\\",\\\"a\\\"]}\"}\n\
                    not an event\n\
                    {\"timestamp\":2000,\"message\":\"plain text\"}\n\
                    {\"timestamp\":3000,\"message\":\"{\\\"sessionData\\\":[\\\"$ exit\\\"]}\"}";
        for chunk in [1, 7, raw.len()] {
            let mut out = Vec::new();
            {
                let mut terminal = StreamedTerminal::new(&mut out);
                for piece in raw.chunks(chunk) {
                    terminal.write_all(piece).expect("write");
                }
            }
            assert_eq!(
                String::from_utf8(out).expect("utf-8"),
                "$ ls\na\nnot an event\nplain text\n$ exit\n",
                "chunks of {chunk}"
            );
        }
    }

    /// A stream is read as the indexer reads it: a message whose fields are not the agent's
    /// types (a `target` that is text) is shown as it is, not as the lines the indexer
    /// skipped; a line that is no event is an error that quotes none of its text.
    #[test]
    fn test_events_are_read_as_the_indexer_reads_them() {
        let raw =
            br#"{"timestamp":1000,"message":"{\"sessionData\":[\"$ id\"],\"target\":\"i-0abc\"}"}"#;
        let events = events(raw).expect("events");
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].1, [r#"{"sessionData":["$ id"],"target":"i-0abc"}"#]);
        let error = events_error(br#"{"timestamp":"rm -rf /secret","message":"x"}"#);
        assert!(error.starts_with("line 1 is not a log event"), "{error}");
        assert!(!error.contains("secret"), "{error}");
    }

    fn events_error(raw: &[u8]) -> String {
        format!("{:#}", events(raw).expect_err("not an event"))
    }
}
