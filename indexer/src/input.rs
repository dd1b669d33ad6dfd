//! The input forms of ../shared/docs/ssm-log-formats.md, decoded into terminal bytes or lines.

use std::sync::LazyLock;

use regex::bytes::Regex;
use serde::Deserialize;

/// Metadata a transcript's own bytes reveal.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TranscriptHeader {
    /// Instance id from the `cat /var/lib/amazon/ssm/<instance>/…` path in new-style headers.
    pub target: Option<String>,
    /// Session id from that path.
    pub session_id: Option<String>,
    /// When `script` generated the log (µs): at session END, never the start.
    pub generated_at: Option<i64>,
    /// The footer (`Script done on …`) is present.
    pub complete: bool,
    /// Written by a legacy agent (< 2.3.978): `ssm-session-logger` noise around the session.
    pub legacy: bool,
    /// A Windows PowerShell transcript (Windows Server 2016+ agents).
    pub powershell: bool,
    /// `RunAs User:` of a PowerShell transcript header.
    pub run_as: Option<String>,
}

/// Where the terminal bytes of an S3-form transcript lie, and what its header says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptTranscript {
    /// Byte range of the session's terminal output inside the object.
    pub body: std::ops::Range<usize>,
    /// What the header and footer say.
    pub header: TranscriptHeader,
}

static STARTED: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^Script started on (?P<date>\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}(?:[+-]\d{2}:?\d{2}|Z)?)[^\n]*\n")
        .unwrap_or_else(|error| unreachable!("{error}"))
});

static DONE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\n?Script done on (?P<date>\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}(?:[+-]\d{2}:?\d{2}|Z)?)[^\n]*\n?\z")
        .unwrap_or_else(|error| unreachable!("{error}"))
});

static SSM_PATH: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"/var/lib/amazon/ssm/(?P<target>[A-Za-z0-9:_.-]{1,400})/session/orchestration/(?P<session>[^/\s\x22]{1,96})/")
        .unwrap_or_else(|error| unreachable!("{error}"))
});

/// Parses a `script` timestamp (`2025-09-29 16:58:03+00:00`, `2021-08-24 09:12:51+0000`) into µs.
pub fn parse_script_time(text: &str) -> Option<i64> {
    let normalized = text.replacen('T', " ", 1);
    for format in ["%Y-%m-%d %H:%M:%S%:z", "%Y-%m-%d %H:%M:%S%z"] {
        if let Ok(time) = chrono::DateTime::parse_from_str(&normalized, format) {
            return Some(time.timestamp_micros());
        }
    }
    let naive = chrono::NaiveDateTime::parse_from_str(
        normalized.trim_end_matches('Z'),
        "%Y-%m-%d %H:%M:%S",
    )
    .ok()?;
    Some(naive.and_utc().timestamp_micros())
}

/// Splits an S3-form transcript into header, body and footer.
pub fn split_script(bytes: &[u8]) -> ScriptTranscript {
    let mut script = script_head(bytes);
    script_footer(&mut script, bytes, 0);
    if !script.header.powershell {
        let body = script.body.clone();
        script.header.legacy = is_legacy(&bytes[body.start..body.end.min(body.start + 4096)]);
    }
    script
}

/// Bytes at the end of a transcript that hold its footer, if it has one: [`script_footer`]
/// needs at least these (or all of the body).
pub const SCRIPT_FOOTER_BYTES: usize = 1024;

/// Reads what the start of a transcript (`head`, the whole transcript or its first bytes)
/// says: the header, and where the body starts. The body runs to the end of `head` until
/// [`script_footer`] finds where it ends.
pub fn script_head(head: &[u8]) -> ScriptTranscript {
    if head.starts_with(POWERSHELL_RULE) {
        return powershell_head(head);
    }
    let mut header = TranscriptHeader::default();
    let mut body_start = 0;
    if let Some(captures) = STARTED.captures(head) {
        body_start = captures.get(0).map_or(0, |m| m.end());
        header.generated_at = captures
            .name("date")
            .and_then(|m| std::str::from_utf8(m.as_bytes()).ok())
            .and_then(parse_script_time);
    }
    let start = &head[..head.len().min(body_start + 4096)];
    if let Some(captures) = SSM_PATH.captures(start) {
        let text = |name| {
            captures
                .name(name)
                .and_then(|m| std::str::from_utf8(m.as_bytes()).ok())
                .map(str::to_string)
        };
        header.target = text("target");
        header.session_id = text("session");
    }
    header.legacy = is_legacy(&start[body_start.min(start.len())..]);
    ScriptTranscript { body: body_start..head.len(), header }
}

fn is_legacy(body_start: &[u8]) -> bool {
    memchr::memmem::find(body_start, b"ssm-session-logger").is_some()
}

/// Finds the footer in the last bytes of a transcript, `tail`, which start at `tail_offset`
/// (at most [`SCRIPT_FOOTER_BYTES`] before the end, or at the body's start), and completes
/// `script` (read by [`script_head`]): where the body ends, whether the transcript is
/// complete, and the footer's time.
pub fn script_footer(script: &mut ScriptTranscript, tail: &[u8], tail_offset: usize) {
    let len = tail_offset + tail.len();
    let body_start = script.body.start;
    script.body.end = len.max(body_start);
    // The footer is at the very end; look only at the tail so a huge body is not scanned twice.
    let window = if script.header.powershell { 1024 } else { 512 };
    let window_start = len.saturating_sub(window).max(body_start).max(tail_offset);
    let Some(searched) = tail.get(window_start - tail_offset..) else {
        return;
    };
    let header = &mut script.header;
    if header.powershell {
        if let Some(captures) = POWERSHELL_END.captures(searched) {
            header.complete = true;
            script.body.end = window_start + captures.get(0).map_or(0, |m| m.start());
            let end = captures.name("end").and_then(|m| std::str::from_utf8(m.as_bytes()).ok());
            header.generated_at = end.and_then(parse_powershell_time).or(header.generated_at);
        }
    } else if let Some(captures) = DONE.captures(searched) {
        header.complete = true;
        script.body.end = window_start + captures.get(0).map_or(0, |m| m.start());
        if header.generated_at.is_none() {
            header.generated_at = captures
                .name("date")
                .and_then(|m| std::str::from_utf8(m.as_bytes()).ok())
                .and_then(parse_script_time);
        }
    }
}

/// The line of asterisks around a PowerShell transcript's header and footer.
const POWERSHELL_RULE: &[u8] = b"**********************";

static POWERSHELL_FIELD: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?m)^(?P<name>Start time|End time|RunAs User|Username|Machine): (?P<value>[^\r\n]*)\r?$",
    )
    .unwrap_or_else(|error| unreachable!("{error}"))
});

static POWERSHELL_BODY_START: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?m)^Transcript started, output file is [^\r\n]*\r?\n")
        .unwrap_or_else(|error| unreachable!("{error}"))
});

static POWERSHELL_END: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?m)^\*{22}\r?\n(?:Windows PowerShell|PowerShell) transcript end\r?\nEnd time: (?P<end>\d{14})")
        .unwrap_or_else(|error| unreachable!("{error}"))
});

/// Parses PowerShell's `yyyyMMddHHmmss` (local time of the instance; UTC on EC2 by default).
fn parse_powershell_time(text: &str) -> Option<i64> {
    let naive = chrono::NaiveDateTime::parse_from_str(text.trim(), "%Y%m%d%H%M%S").ok()?;
    Some(naive.and_utc().timestamp_micros())
}

/// Reads the header of a PowerShell transcript (the Windows agent's S3 form,
/// PowerShell/PowerShell#8720): a header between lines of asterisks, `Transcript started,
/// output file is …`, the session, then a footer with `End time:` ([`script_footer`]). The
/// agent generates it at session end, like `script`.
fn powershell_head(bytes: &[u8]) -> ScriptTranscript {
    let head = &bytes[..bytes.len().min(8192)];
    let mut header = TranscriptHeader { powershell: true, ..TranscriptHeader::default() };
    let mut body_start = 0;
    if let Some(found) = POWERSHELL_BODY_START.find(head) {
        body_start = found.end();
    }
    for captures in POWERSHELL_FIELD.captures_iter(&head[..body_start.max(head.len().min(4096))]) {
        let value = captures.name("value").and_then(|m| std::str::from_utf8(m.as_bytes()).ok());
        match captures.name("name").map(|m| m.as_bytes()) {
            Some(b"RunAs User") => header.run_as = value.map(str::to_string),
            Some(b"Start time") if header.generated_at.is_none() => {
                header.generated_at = value.and_then(parse_powershell_time);
            }
            _ => {}
        }
    }
    ScriptTranscript { body: body_start..bytes.len(), header }
}

pub use sessionlake_schemas::streamed::{LogEvent, StreamIdentity, StreamMessage, StreamTarget};

/// Returns whether a CloudWatch event message is a streamed JSON message (vs uploaded text).
pub fn is_stream_message(message: &str) -> bool {
    let trimmed = message.trim_start();
    trimmed.starts_with('{') && serde_json::from_str::<StreamMessage>(trimmed).is_ok()
}

/// Builds the raw bytes of a CloudWatch stream: streamed JSON events as JSON Lines of
/// `{"timestamp","message"}`; uploaded text re-joined with the `\n` the agent dropped.
pub fn cloudwatch_raw(events: &[LogEvent]) -> (crate::InputForm, Vec<u8>) {
    let streamed = events
        .iter()
        .find(|e| !e.message.trim().is_empty())
        .is_some_and(|e| is_stream_message(&e.message));
    if streamed {
        let mut raw = Vec::new();
        for event in events {
            // Serialising a struct of an i64 and a String cannot fail.
            if let Ok(line) = serde_json::to_vec(event) {
                raw.extend_from_slice(&line);
                raw.push(b'\n');
            }
        }
        (crate::InputForm::CloudwatchStream, raw)
    } else {
        let joined = events.iter().map(|e| e.message.as_str()).collect::<Vec<_>>().join("\n");
        (crate::InputForm::CloudwatchUpload, joined.into_bytes())
    }
}

/// `aws logs get-log-events --output json`, as saved in a local folder.
#[derive(Debug, serde::Deserialize)]
pub struct GetLogEventsFile {
    /// The stream's events, oldest first.
    pub events: Vec<LogEvent>,
}

/// Largest decompressed CloudWatch Logs subscription payload (a gzip-bomb guard; real ones are
/// at most 1 MiB compressed and a few MiB decompressed).
pub const MAX_SUBSCRIPTION_PAYLOAD: u64 = 64 * 1024 * 1024;

/// A CloudWatch Logs subscription delivery (to Lambda, Kinesis or Firehose), decoded.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionPayload {
    /// `DATA_MESSAGE`, or `CONTROL_MESSAGE` for the reachability check CloudWatch sends.
    pub message_type: String,
    /// Log group.
    #[serde(default)]
    pub log_group: String,
    /// Log stream: the session id.
    #[serde(default)]
    pub log_stream: String,
    /// The events.
    #[serde(default)]
    pub log_events: Vec<LogEvent>,
}

/// Decodes a subscription payload: base64 (as Lambda receives it in `awslogs.data`) or raw
/// bytes, gzip-compressed, JSON. Errors name what was wrong.
pub fn decode_subscription_payload(data: &[u8]) -> Result<SubscriptionPayload, String> {
    use base64::Engine as _;
    use std::io::Read as _;
    let trimmed = data.trim_ascii();
    let compressed = if trimmed.starts_with(&[0x1f, 0x8b]) {
        trimmed.to_vec()
    } else {
        base64::engine::general_purpose::STANDARD
            .decode(trimmed)
            .map_err(|error| format!("subscription payload is neither gzip nor base64: {error}"))?
    };
    // One byte past the cap tells a payload over it from one exactly at it.
    let mut json = Vec::new();
    flate2::read::GzDecoder::new(&compressed[..])
        .take(MAX_SUBSCRIPTION_PAYLOAD + 1)
        .read_to_end(&mut json)
        .map_err(|error| format!("subscription payload does not decompress: {error}"))?;
    if json.len() as u64 > MAX_SUBSCRIPTION_PAYLOAD {
        return Err(format!(
            "subscription payload decompresses to more than {MAX_SUBSCRIPTION_PAYLOAD} bytes"
        ));
    }
    serde_json::from_slice(&json)
        .map_err(|error| format!("subscription payload is not valid JSON: {error}"))
}

/// Latest time a CloudWatch event may carry: the end of year 9999 (ms since the epoch).
const MAX_EVENT_MS: i64 = 253_402_300_799_999;

/// Returns a CloudWatch event time (ms since the epoch) in µs, or `None` when it is out of range
/// (before 1970 or after year 9999): such a time is bad input, never wrapped.
pub fn event_micros(timestamp_ms: i64) -> Option<i64> {
    (0..=MAX_EVENT_MS).contains(&timestamp_ms).then(|| timestamp_ms * 1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_split_new_style_script() {
        let bytes = b"Script started on 2026-11-24 07:00:46+00:00 [COMMAND=\"cat /var/lib/amazon/ssm/i-0123456789abcdef0/session/orchestration/alice-0123456789abcdef0/Standard_Stream/ipcTempFile.log\" <not executed on terminal>]\nsh-4.2$ ls\r\r\n\nScript done on 2026-11-24 07:00:46+00:00 [COMMAND_EXIT_CODE=\"0\"]\n";
        let split = split_script(bytes);
        assert_eq!(&bytes[split.body.clone()], b"sh-4.2$ ls\r\r\n");
        assert!(split.header.complete);
        assert_eq!(split.header.target.as_deref(), Some("i-0123456789abcdef0"));
        assert_eq!(split.header.session_id.as_deref(), Some("alice-0123456789abcdef0"));
        assert_eq!(split.header.generated_at, parse_script_time("2026-11-24 07:00:46+00:00"));
    }

    #[test]
    fn test_subscription_payload_round_trip_and_bomb() {
        use base64::Engine as _;
        use std::io::Write as _;
        let json = br#"{"messageType":"DATA_MESSAGE","owner":"111122223333","logGroup":"/ssm/sessions","logStream":"alice-0123456789abcdef0","subscriptionFilters":["f"],"logEvents":[{"id":"1","timestamp":1710408000000,"message":"{\"sessionData\":[\"$ ls\"]}"}]}"#;
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        encoder.write_all(json).unwrap();
        let gz = encoder.finish().unwrap();
        let encoded = base64::engine::general_purpose::STANDARD.encode(&gz);
        let payload = decode_subscription_payload(encoded.as_bytes()).unwrap();
        assert_eq!(payload.log_stream, "alice-0123456789abcdef0");
        assert_eq!(payload.log_events.len(), 1);
        assert_eq!(decode_subscription_payload(&gz).unwrap(), payload);

        let mut bomb = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        for _ in 0..(MAX_SUBSCRIPTION_PAYLOAD / (1 << 20) + 1) {
            bomb.write_all(&vec![b' '; 1 << 20]).unwrap();
        }
        let error = decode_subscription_payload(&bomb.finish().unwrap()).unwrap_err();
        assert!(error.contains("decompress"), "{error}");
        assert!(decode_subscription_payload(b"!!not base64!!").is_err());
    }

    #[test]
    fn test_split_powershell_transcript() {
        let bytes = b"**********************\r\nWindows PowerShell transcript start\r\nStart time: 20260314093000\r\nUsername: EC2AMAZ-1\\ssm-user\r\nRunAs User: EC2AMAZ-1\\ssm-user\r\nMachine: EC2AMAZ-1 (Microsoft Windows NT 10.0.17763.0)\r\nHost Application: C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe\r\nProcess ID: 4242\r\n**********************\r\nTranscript started, output file is C:\\ProgramData\\Amazon\\SSM\\alice-0123456789abcdef0.log\r\nPS C:\\Windows\\system32> whoami\r\nec2amaz-1\\ssm-user\r\nPS C:\\Windows\\system32> exit\r\n**********************\r\nWindows PowerShell transcript end\r\nEnd time: 20260314094500\r\n**********************\r\n";
        let split = split_script(bytes);
        assert!(split.header.powershell && split.header.complete);
        assert_eq!(split.header.run_as.as_deref(), Some("EC2AMAZ-1\\ssm-user"));
        assert_eq!(split.header.generated_at, parse_powershell_time("20260314094500"));
        let body = std::str::from_utf8(&bytes[split.body]).unwrap();
        assert!(body.starts_with("PS C:\\Windows\\system32> whoami"), "{body:?}");
        assert!(body.ends_with("> exit\r\n"), "{body:?}");
    }

    #[test]
    fn test_split_old_style_and_truncated() {
        let bytes = b"Script started on 2021-08-24 09:12:51+0000\nsh-4.2$ ls\r\r\n";
        let split = split_script(bytes);
        assert!(!split.header.complete);
        assert_eq!(split.body.end, bytes.len());
        assert_eq!(split.header.generated_at, Some(1_629_796_371_000_000));
    }
}
