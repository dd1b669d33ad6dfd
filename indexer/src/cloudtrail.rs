//! CloudTrail log files to access events: the rows of the `access` table.
//!
//! # Input
//!
//! One file, gzip or not, in any of these shapes:
//! - a CloudTrail log file, `{"Records": [record, …]}` (S3 delivery, `AWSLogs/<account>/
//!   CloudTrail/<region>/YYYY/MM/DD/*.json.gz`);
//! - a CloudWatch Logs subscription payload, `{"messageType": "DATA_MESSAGE", "logEvents":
//!   [{"message": "<record as JSON text>"}, …]}` (a trail delivered to CloudWatch Logs; a
//!   `CONTROL_MESSAGE` holds no events);
//! - an EventBridge event, `{"detail-type": "AWS API Call via CloudTrail", "detail": record}`.
//!
//! A file in none of these shapes, that does not decompress or is not JSON, is an error (the
//! caller quarantines it). Inside a good file, each record is [classified](classify): access
//! events become [`AccessRecord`]s, other events are skipped after looking at `eventSource`
//! and `eventName` only, and an access event that lacks what its row needs is counted as
//! malformed with the reason. An event delivered twice in one file is kept once.
//!
//! ```
//! use sessionlake_indexer::cloudtrail::parse_trail_file;
//! let file = br#"{"Records":[{"eventID":"e1","eventTime":"2026-03-14T09:26:50Z",
//!   "eventSource":"ec2-instance-connect.amazonaws.com","eventName":"SendSSHPublicKey",
//!   "requestParameters":{"instanceId":"i-0a1b2c3d4e5f67890","instanceOSUser":"ec2-user"}}]}"#;
//! let parsed = parse_trail_file(file, "trail.json").unwrap();
//! assert_eq!(parsed.events[0].os_user.as_deref(), Some("ec2-user"));
//! ```

use std::cell::{Cell, RefCell};
use std::collections::HashSet;
use std::fmt;
use std::io::{BufRead, BufReader, Read};

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
use sessionlake_schemas::{AccessKind, AccessRecord};

use crate::{SessionContext, account_of_arn};

/// `eventSource` of Session Manager and Run Command calls.
const SSM_SOURCE: &str = "ssm.amazonaws.com";
/// `eventSource` of EC2 Instance Connect calls.
const INSTANCE_CONNECT_SOURCE: &str = "ec2-instance-connect.amazonaws.com";

/// Request parameters that have columns of their own; the rest go to `parameters`.
const PARAMETERS_WITH_COLUMNS: [&str; 6] =
    ["target", "documentName", "sessionId", "instanceId", "instanceIds", "instanceOSUser"];

/// What one CloudTrail file held.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TrailFile {
    /// Access events, in file order, each event id once.
    pub events: Vec<AccessRecord>,
    /// Access events that could not be read, with the reason (no record content).
    pub malformed: Vec<String>,
    /// Events skipped as unrelated to access.
    pub skipped: usize,
    /// Events dropped because the same event id came earlier in the file.
    pub duplicates: usize,
    /// Where reading stopped before the end of a file over its limits ([`TrailLimits`]).
    pub cut: Option<TrailCut>,
}

/// What [`classify`] made of one CloudTrail record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Classified {
    /// Not an access event (decided from `eventSource` and `eventName` alone).
    Unrelated,
    /// An access event.
    Access(Box<AccessRecord>),
    /// An access event (or something that is no record) missing what its row needs.
    Malformed(String),
}

/// Returns the access kind of an (`eventSource`, `eventName`) pair, if it is one.
pub fn access_kind(event_source: &str, event_name: &str) -> Option<AccessKind> {
    match (event_source, event_name) {
        (SSM_SOURCE, "StartSession") => Some(AccessKind::SsmSession),
        (SSM_SOURCE, "ResumeSession") => Some(AccessKind::SsmResume),
        (SSM_SOURCE, "TerminateSession") => Some(AccessKind::SsmTerminate),
        (SSM_SOURCE, "SendCommand") => Some(AccessKind::RunCommand),
        (INSTANCE_CONNECT_SOURCE, "SendSSHPublicKey") => Some(AccessKind::Ec2InstanceConnect),
        _ => None,
    }
}

/// Reads one field: absent and `null` are `None`; any other non-string is an error naming it.
fn text(object: &Map<String, Value>, path: &[&str]) -> Result<Option<String>, String> {
    let Some((first, rest)) = path.split_first() else { return Ok(None) };
    let mut value = object.get(*first);
    for key in rest {
        value = match value {
            Some(Value::Object(inner)) => inner.get(*key),
            Some(Value::Null) | None => None,
            Some(_) => return Err(format!("{first} is not an object")),
        };
    }
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(found)) => Ok(Some(found.clone())),
        Some(_) => Err(format!("{} is not a string", path.join("."))),
    }
}

/// Reads a list of strings (`instanceIds`); a non-list or a non-string item is an error.
fn texts(value: Option<&Value>, name: &str) -> Result<Vec<String>, String> {
    match value {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| item.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| format!("{name} holds a non-string")),
        Some(_) => Err(format!("{name} is not a list")),
    }
}

/// Reads Run Command's `targets` (`[{"key": "tag:Env", "values": ["prod"]}]`) as
/// `tag:Env=prod`; `InstanceIds` targets give the instance ids themselves.
fn run_command_targets(value: Option<&Value>) -> Result<Vec<String>, String> {
    let mut found = Vec::new();
    let Some(Value::Array(targets)) = value else {
        return match value {
            None | Some(Value::Null) => Ok(found),
            Some(_) => Err("requestParameters.targets is not a list".to_string()),
        };
    };
    for target in targets {
        let key = target.get("key").and_then(Value::as_str);
        let values = texts(target.get("values"), "requestParameters.targets.values")?;
        match key {
            Some("InstanceIds") => found.extend(values),
            Some(key) => found.extend(values.into_iter().map(|value| format!("{key}={value}"))),
            None => return Err("requestParameters.targets has an item without a key".to_string()),
        }
    }
    Ok(found)
}

/// Returns the request parameters that have no column of their own, as JSON text.
fn other_parameters(request: Option<&Map<String, Value>>) -> Option<String> {
    let rest: Map<String, Value> = request?
        .iter()
        .filter(|(key, value)| !PARAMETERS_WITH_COLUMNS.contains(&key.as_str()) && !value.is_null())
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect();
    (!rest.is_empty()).then(|| Value::Object(rest).to_string())
}

/// Classifies one CloudTrail record read from `source_ref`. Only `eventSource` and
/// `eventName` are looked at before the record is known to be an access event.
pub fn classify(record: &Value, source_ref: &str) -> Classified {
    let Some(object) = record.as_object() else {
        return Classified::Malformed("record is not a JSON object".to_string());
    };
    let event_source = object.get("eventSource").and_then(Value::as_str).unwrap_or_default();
    let event_name = object.get("eventName").and_then(Value::as_str).unwrap_or_default();
    let Some(kind) = access_kind(event_source, event_name) else {
        return Classified::Unrelated;
    };
    match access_record(object, kind, source_ref) {
        Ok(record) => Classified::Access(Box::new(record)),
        Err(reason) => Classified::Malformed(format!("{event_name} event: {reason}")),
    }
}

fn access_record(
    object: &Map<String, Value>,
    kind: AccessKind,
    source_ref: &str,
) -> Result<AccessRecord, String> {
    let event_id = text(object, &["eventID"])?.ok_or("eventID is missing")?;
    let event_time = text(object, &["eventTime"])?.ok_or("eventTime is missing")?;
    let event_time = chrono::DateTime::parse_from_rfc3339(&event_time)
        .map_err(|_| format!("eventTime {event_time:?} is not an RFC 3339 time"))?
        .timestamp_micros();
    let request = match object.get("requestParameters") {
        None | Some(Value::Null) => None,
        Some(Value::Object(request)) => Some(request),
        Some(_) => return Err("requestParameters is not an object".to_string()),
    };
    let empty = Map::new();
    let request_map = request.unwrap_or(&empty);
    let response = match object.get("responseElements") {
        Some(Value::Object(response)) => response,
        _ => &empty,
    };
    let error_code = text(object, &["errorCode"])?;
    let principal_type = text(object, &["userIdentity", "type"])?;
    let principal = match text(object, &["userIdentity", "arn"])? {
        Some(arn) => Some(arn),
        None => text(object, &["userIdentity", "invokedBy"])?
            .or(text(object, &["userIdentity", "principalId"])?),
    };
    let account = match text(object, &["recipientAccountId"])? {
        Some(account) => Some(account),
        None => text(object, &["userIdentity", "accountId"])?
            .or_else(|| principal.as_deref().and_then(account_of_arn)),
    };
    let mut record = AccessRecord {
        event_id,
        event_time,
        kind,
        principal,
        principal_type,
        source_ip: text(object, &["sourceIPAddress"])?,
        user_agent: text(object, &["userAgent"])?,
        targets: Vec::new(),
        os_user: None,
        document_name: text(request_map, &["documentName"])?,
        parameters: other_parameters(request),
        session_id: None,
        command_id: None,
        region: text(object, &["awsRegion"])?,
        account,
        error_code,
        source_ref: source_ref.to_string(),
    };
    let failed = record.error_code.is_some();
    match kind {
        AccessKind::SsmSession => {
            record.targets.extend(text(request_map, &["target"])?);
            record.session_id = text(response, &["sessionId"])?;
            if record.session_id.is_none() && !failed {
                return Err("responseElements.sessionId is missing".to_string());
            }
        }
        AccessKind::SsmResume | AccessKind::SsmTerminate => {
            record.session_id = match text(request_map, &["sessionId"])? {
                Some(session) => Some(session),
                None => text(response, &["sessionId"])?,
            };
            if record.session_id.is_none() {
                return Err("sessionId is missing".to_string());
            }
        }
        AccessKind::Ec2InstanceConnect => {
            record.targets.extend(text(request_map, &["instanceId"])?);
            record.os_user = text(request_map, &["instanceOSUser"])?;
        }
        AccessKind::RunCommand => {
            record.targets =
                texts(request_map.get("instanceIds"), "requestParameters.instanceIds")?;
            record.targets.extend(run_command_targets(request_map.get("targets"))?);
            let command = response.get("command").and_then(Value::as_object).unwrap_or(&empty);
            record.command_id = text(command, &["commandId"])?;
            if record.targets.is_empty() {
                record.targets = texts(command.get("instanceIds"), "command.instanceIds")?;
            }
        }
    }
    let needs_target = !matches!(kind, AccessKind::SsmResume | AccessKind::SsmTerminate);
    if needs_target && record.targets.is_empty() && !failed {
        return Err("the request names no target".to_string());
    }
    Ok(record)
}

/// What the documents of a file held so far: access events (their `source_ref` not yet set),
/// malformed access events and the count of unrelated ones.
#[derive(Debug, Default)]
struct Tally {
    events: Vec<AccessRecord>,
    malformed: Vec<String>,
    skipped: usize,
}

impl Tally {
    fn add(&mut self, classified: Classified) {
        match classified {
            Classified::Unrelated => self.skipped += 1,
            Classified::Malformed(reason) => self.malformed.push(reason),
            Classified::Access(record) => self.events.push(*record),
        }
    }

    /// Records held in memory (access events and the reasons of malformed ones).
    fn kept(&self) -> usize {
        self.events.len() + self.malformed.len()
    }

    fn merge(&mut self, other: Tally) {
        self.events.extend(other.events);
        self.malformed.extend(other.malformed);
        self.skipped += other.skipped;
    }
}

/// The malformed-record reason of a record that is no JSON object.
const NOT_AN_OBJECT: &str = "record is not a JSON object";

/// Implements the visits of every JSON type but objects and arrays, each returning `$result`.
macro_rules! visit_scalars {
    ($result:expr) => {
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
            $result
        }
        fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
            $result
        }
        fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
            $result
        }
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
            $result
        }
        fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
            $result
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            $result
        }
    };
}

/// One CloudTrail record, classified as it is read: the fields are read into values until
/// `eventSource` and `eventName` are known (CloudTrail writes them near the start); the rest
/// of an unrelated record is skipped without building anything.
struct Record(Classified);

impl<'de> Deserialize<'de> for Record {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(RecordVisitor)
    }
}

struct RecordVisitor;

impl<'de> Visitor<'de> for RecordVisitor {
    type Value = Record;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a CloudTrail record")
    }

    visit_scalars!(Ok(Record(Classified::Malformed(NOT_AN_OBJECT.to_string()))));

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Record, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Record(Classified::Malformed(NOT_AN_OBJECT.to_string())))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Record, A::Error> {
        let mut fields = Map::new();
        let (mut source, mut name) = (None, None);
        let mut unrelated = false;
        while let Some(key) = map.next_key::<String>()? {
            if unrelated {
                map.next_value::<IgnoredAny>()?;
                continue;
            }
            let value: Value = map.next_value()?;
            // As `classify` reads them: a non-string is no source or name.
            let as_text = || value.as_str().unwrap_or_default().to_string();
            match key.as_str() {
                "eventSource" => source = Some(as_text()),
                "eventName" => name = Some(as_text()),
                _ => {}
            }
            fields.insert(key, value);
            if let (Some(source), Some(name)) = (&source, &name) {
                unrelated = access_kind(source, name).is_none();
            }
        }
        if unrelated {
            return Ok(Record(Classified::Unrelated));
        }
        Ok(Record(classify(&Value::Object(fields), "")))
    }
}

/// Limits on reading one CloudTrail file: memory holds at most `max_records` records and one
/// record of `max_record_bytes`, whatever the file's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrailLimits {
    /// Most access records (and malformed access records) kept from one file; the records
    /// after them are counted, not read ([`DEFAULT_MAX_TRAIL_RECORDS`]).
    pub max_records: usize,
    /// Largest record, and largest part of a document outside its list of records, in bytes
    /// ([`MAX_TRAIL_RECORD_BYTES`]).
    pub max_record_bytes: u64,
    /// Most bytes of one file read, after decompression ([`MAX_TRAIL_FILE_BYTES`]).
    pub max_file_bytes: u64,
}

/// Default of [`TrailLimits::max_records`]: unrelated records cost no memory and do not count.
pub const DEFAULT_MAX_TRAIL_RECORDS: usize = 100_000;
/// Largest CloudTrail record read (CloudTrail's own events are at most 256 KB).
pub const MAX_TRAIL_RECORD_BYTES: u64 = 1024 * 1024;
/// Most bytes of one CloudTrail file read, after decompression (CloudTrail's own files are a
/// few MB): a bound on time, memory does not grow with it.
pub const MAX_TRAIL_FILE_BYTES: u64 = 4 * 1024 * 1024 * 1024;

impl Default for TrailLimits {
    fn default() -> Self {
        TrailLimits {
            max_records: DEFAULT_MAX_TRAIL_RECORDS,
            max_record_bytes: MAX_TRAIL_RECORD_BYTES,
            max_file_bytes: MAX_TRAIL_FILE_BYTES,
        }
    }
}

/// Where and why the reading of a file stopped before its end; what came before is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrailCut {
    /// Records read before the cut (kept, skipped or malformed).
    pub records_read: usize,
    /// Records after the cut, counted without being read; `None` when the rest of the file was
    /// not read at all (a record or the file over its byte limit).
    pub unread: Option<usize>,
    /// Why, naming the file, the limit and the byte offset (of the decompressed file).
    pub reason: String,
}

/// Why [`Metered`] refused to hand over more bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    RecordTooLarge,
    FileTooLarge,
}

/// The state of one file's reading, shared by the visitors and the reader under them.
struct Reading {
    limits: TrailLimits,
    /// Bytes handed to the JSON parser so far.
    offset: Cell<u64>,
    /// Where the record (or document part) being read started, and the offset it may not pass.
    record: Cell<(u64, u64)>,
    /// Why the reader refused to go on.
    stopped: Cell<Option<Stop>>,
    /// Records read (any kind).
    records: Cell<usize>,
    /// The number (from 1) and offset of the first access record over `max_records`; it and
    /// the records after it are counted in `unread`.
    capped_at: Cell<Option<(usize, u64)>>,
    unread: Cell<usize>,
    tally: RefCell<Tally>,
    /// A subscription payload's records, taken into `tally` once its document is known to be
    /// one (a `CONTROL_MESSAGE` holds none).
    log_events: RefCell<Tally>,
}

impl Reading {
    fn new(limits: TrailLimits) -> Self {
        Reading {
            limits,
            offset: Cell::new(0),
            record: Cell::new((0, limits.max_record_bytes)),
            stopped: Cell::new(None),
            records: Cell::new(0),
            capped_at: Cell::new(None),
            unread: Cell::new(0),
            tally: RefCell::default(),
            log_events: RefCell::default(),
        }
    }

    /// A record (or the rest of a document) starts here: it may take `max_record_bytes`.
    fn start_record(&self) {
        let offset = self.offset.get();
        self.record.set((offset, offset.saturating_add(self.limits.max_record_bytes)));
    }

    /// Keeps a record read into `into`, or, when it is one more access record than
    /// `max_records`, counts it as the first not read: from it on, records are only counted.
    fn add(&self, into: &RefCell<Tally>, classified: Classified) {
        let kept = self.tally.borrow().kept() + self.log_events.borrow().kept();
        if !matches!(classified, Classified::Unrelated) && kept >= self.limits.max_records {
            let (record_start, _) = self.record.get();
            self.capped_at.set(Some((self.records.get() + 1, record_start)));
            self.unread.set(self.unread.get() + 1);
            return;
        }
        self.records.set(self.records.get() + 1);
        into.borrow_mut().add(classified);
    }

    /// Reads the next item of a list as `T` and classifies it with `classify` into `into` (or
    /// counts it, past the cap); `false` at the end of the list.
    fn next_record<'de, A: SeqAccess<'de>, T: Deserialize<'de>>(
        &self,
        seq: &mut A,
        into: &RefCell<Tally>,
        classify: impl FnOnce(T) -> Classified,
    ) -> Result<bool, A::Error> {
        self.start_record();
        if self.capped_at.get().is_some() {
            let more = seq.next_element::<IgnoredAny>()?.is_some();
            self.unread.set(self.unread.get() + usize::from(more));
            return Ok(more);
        }
        let Some(item) = seq.next_element::<T>()? else { return Ok(false) };
        self.add(into, classify(item));
        Ok(true)
    }

    /// The reason of a cut, if the file was not read to its end.
    fn cut(&self, source_ref: &str, gzip: bool) -> Option<TrailCut> {
        let records_read = self.records.get();
        let (record_start, _) = self.record.get();
        let stopped = self.stopped.get().map(|stop| match stop {
            Stop::RecordTooLarge => format!(
                "record {} (near byte offset {record_start}) is over {} bytes: the \
                 {records_read} records before it are read, the rest of the file is not",
                records_read + 1,
                self.limits.max_record_bytes
            ),
            Stop::FileTooLarge => format!(
                "it {} to more than {} bytes: the {records_read} records before record {} are \
                 read, the rest is not",
                if gzip { "decompresses" } else { "comes" },
                self.limits.max_file_bytes,
                records_read + 1
            ),
        });
        let capped = self.capped_at.get().map(|(record, at)| {
            let unread = self.unread.get();
            let counted = if stopped.is_some() { "at least " } else { "" };
            format!(
                "it holds more than {} access records: those are kept, {counted}{unread} \
                 records from record {record} (near byte offset {at}) on are not read",
                self.limits.max_records
            )
        });
        let reason = match (capped, stopped) {
            (None, None) => return None,
            (Some(capped), None) => capped,
            (None, Some(stopped)) => stopped,
            (Some(capped), Some(stopped)) => format!("{capped}; then {stopped}"),
        };
        let unread = (self.stopped.get().is_none()).then(|| self.unread.get());
        let records_read = records_read + self.unread.get();
        Some(TrailCut { records_read, unread, reason: format!("{source_ref}: {reason}") })
    }
}

/// `Records`: classified one record at a time (memory holds one record, not the file's tree).
struct RecordsSeed<'a>(&'a Reading);

impl<'de> DeserializeSeed<'de> for RecordsSeed<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for RecordsSeed<'_> {
    type Value = ();

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a list of records")
    }

    visit_scalars!(Err(E::custom("has Records that is not a list")));

    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        Err(de::Error::custom("has Records that is not a list"))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let reading = self.0;
        while reading.next_record(&mut seq, &reading.tally, |Record(classified)| classified)? {}
        reading.start_record();
        Ok(())
    }
}

/// A subscription payload's `logEvents`: each message is one record as JSON text, one that
/// is not JSON a malformed record. `false` when `logEvents` is not a list.
struct LogEventsSeed<'a>(&'a Reading);

impl<'de> DeserializeSeed<'de> for LogEventsSeed<'_> {
    type Value = bool;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<bool, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for LogEventsSeed<'_> {
    type Value = bool;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a list of log events")
    }

    visit_scalars!(Ok(false));

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(false)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<bool, A::Error> {
        let reading = self.0;
        let message = |event: Value| {
            let message = event.get("message").and_then(Value::as_str);
            match message.map(serde_json::from_str::<Record>) {
                Some(Ok(Record(classified))) => classified,
                _ => Classified::Malformed(NOT_AN_OBJECT.to_string()),
            }
        };
        while reading.next_record(&mut seq, &reading.log_events, message)? {}
        reading.start_record();
        Ok(true)
    }
}

/// One JSON document of a file, in one of the shapes the module accepts, its records read
/// into the [`Reading`]; a document in none of them is an error with the reason.
struct DocumentSeed<'a>(&'a Reading);

impl<'de> DeserializeSeed<'de> for DocumentSeed<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for DocumentSeed<'_> {
    type Value = ();

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a CloudTrail document")
    }

    visit_scalars!(Err(E::custom("is not a JSON object")));

    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        Err(de::Error::custom("is not a JSON object"))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let reading = self.0;
        let mut records = false;
        let mut message_type = None;
        let mut log_events = None;
        let mut detail_type = false;
        let mut detail = None;
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                // The first `Records` counts; the file is not read further for another shape.
                "Records" if !records => {
                    map.next_value_seed(RecordsSeed(reading))?;
                    records = true;
                }
                "messageType" => message_type = Some(map.next_value::<Value>()?),
                "logEvents" => log_events = Some(map.next_value_seed(LogEventsSeed(reading))?),
                "detail-type" => {
                    map.next_value::<IgnoredAny>()?;
                    detail_type = true;
                }
                "detail" => detail = Some(map.next_value::<Value>()?),
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        let log_events_tally = reading.log_events.take();
        if records {
            return Ok(());
        }
        if let Some(message_type) = message_type.as_ref().and_then(Value::as_str) {
            if message_type == "CONTROL_MESSAGE" {
                return Ok(());
            }
            if log_events != Some(true) {
                return Err(de::Error::custom("is a CloudWatch Logs payload without logEvents"));
            }
            reading.tally.borrow_mut().merge(log_events_tally);
            return Ok(());
        }
        if let (true, Some(detail)) = (detail_type, detail) {
            if reading.capped_at.get().is_some() {
                reading.unread.set(reading.unread.get() + 1);
            } else {
                reading.add(&reading.tally, classify(&detail, ""));
            }
            return Ok(());
        }
        Err(de::Error::custom("is not CloudTrail: no Records, logEvents or detail"))
    }
}

/// The bytes of a file on their way to the JSON parser's buffer, counted: refuses to hand
/// over more than the record being read or the file may take (the error ends the parse;
/// [`Reading`] says why). The parser reads through a buffer of [`PARSE_BUFFER_BYTES`], so the
/// count runs ahead of the parser by at most that: a record may take that much more.
struct Metered<'a, R> {
    inner: R,
    reading: &'a Reading,
}

impl<R: Read> Read for Metered<'_, R> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        let offset = self.reading.offset.get();
        let (_, record_end) = self.reading.record.get();
        let file_end = self.reading.limits.max_file_bytes;
        let (end, stop) = if record_end < file_end {
            (record_end, Stop::RecordTooLarge)
        } else {
            (file_end, Stop::FileTooLarge)
        };
        if offset >= end {
            self.reading.stopped.set(Some(stop));
            return Err(std::io::Error::other("over the limit"));
        }
        let room = usize::try_from(end - offset).unwrap_or(usize::MAX).min(out.len());
        let read = self.inner.read(&mut out[..room])?;
        self.reading.offset.set(offset + read as u64);
        Ok(read)
    }
}

/// Bytes of a file buffered at a time, before decompression.
const READ_BUFFER_BYTES: usize = 64 * 1024;
/// Bytes the JSON parser reads ahead (see [`Metered`]).
const PARSE_BUFFER_BYTES: usize = 8 * 1024;

/// Reads one CloudTrail file from `source_ref` (gzip or not; see the module for the shapes).
/// Returns the reason, naming `source_ref`, when the file as a whole cannot be read.
///
/// A file may hold several JSON documents one after the other (Firehose writes subscription
/// payloads so, each its own gzip member): their records are read as one file's. Records are
/// classified as they are read, from the stream: memory holds one record and the access
/// records kept, never the file. A file over `limits` is cut ([`TrailFile::cut`]): what came
/// before the limit is kept, the rest is counted (past `max_records`) or not read at all (a
/// record or the file over its size), and the cut says which.
pub fn read_trail_file<R: Read>(
    reader: R,
    source_ref: &str,
    limits: TrailLimits,
) -> Result<TrailFile, String> {
    let mut source = BufReader::with_capacity(READ_BUFFER_BYTES, reader);
    let gzip = source
        .fill_buf()
        .map_err(|error| format!("failed to read {source_ref}: {error}"))?
        .starts_with(&[0x1f, 0x8b]);
    let json: Box<dyn Read> = if gzip {
        Box::new(flate2::bufread::MultiGzDecoder::new(source))
    } else {
        Box::new(source)
    };
    let reading = Reading::new(limits);
    let metered = Metered { inner: json, reading: &reading };
    // One parser over the whole file, reading through a buffer it owns (the fast way through
    // `io::Bytes`); `end` tells whether another document follows (it only peeks at it).
    let input = BufReader::with_capacity(PARSE_BUFFER_BYTES, metered);
    let mut deserializer = serde_json::Deserializer::from_reader(input);
    let failed = |error: &dyn fmt::Display| {
        if gzip {
            format!("failed to decompress {source_ref}: {error}")
        } else {
            format!("failed to read {source_ref}: {error}")
        }
    };
    let mut documents = 0_usize;
    loop {
        match deserializer.end() {
            Ok(()) => break,
            Err(_) if reading.stopped.get().is_some() => break,
            Err(error) if error.classify() == serde_json::error::Category::Io => {
                return Err(failed(&error));
            }
            // Not the end: a document follows.
            Err(_) => {}
        }
        reading.start_record();
        match DocumentSeed(&reading).deserialize(&mut deserializer) {
            Ok(()) => documents += 1,
            Err(_) if reading.stopped.get().is_some() => {
                // The records of a payload cut short count too.
                let pending = reading.log_events.take();
                reading.tally.borrow_mut().merge(pending);
                documents += 1;
                break;
            }
            Err(error) => {
                return Err(match error.classify() {
                    serde_json::error::Category::Io => failed(&error),
                    serde_json::error::Category::Data => format!("{source_ref} {error}"),
                    _ => format!("{source_ref} is not JSON: {error}"),
                });
            }
        }
    }
    if documents == 0 {
        return Err(format!("{source_ref} is not JSON: it holds no document"));
    }
    drop(deserializer);
    let cut = reading.cut(source_ref, gzip);
    let tally = reading.tally.into_inner();
    let mut parsed = TrailFile {
        malformed: tally.malformed,
        skipped: tally.skipped,
        cut,
        ..TrailFile::default()
    };
    let mut seen = HashSet::new();
    for mut record in tally.events {
        if seen.insert(record.event_id.clone()) {
            record.source_ref = source_ref.to_string();
            parsed.events.push(record);
        } else {
            parsed.duplicates += 1;
        }
    }
    Ok(parsed)
}

/// Reads one CloudTrail file held in memory, with the default limits ([`read_trail_file`]).
pub fn parse_trail_file(bytes: &[u8], source_ref: &str) -> Result<TrailFile, String> {
    read_trail_file(bytes, source_ref, TrailLimits::default())
}

/// Returns what a successful `StartSession` tells about its session (the transcript's
/// enrichment), or `None` for any other event.
pub fn session_context(record: &AccessRecord) -> Option<SessionContext> {
    if record.kind != AccessKind::SsmSession || record.error_code.is_some() {
        return None;
    }
    let session_id = record.session_id.clone()?;
    Some(SessionContext {
        session_id,
        principal: record.principal.clone(),
        run_as: None,
        target: record.targets.first().cloned(),
        region: record.region.clone(),
        account: record.account.clone(),
        started_at: Some(record.event_time),
    })
}

/// Returns whether two `StartSession` facts for one session id disagree on who started it,
/// where or when: a session id names one `StartSession`, so a second event that says otherwise
/// is forged (or a different session reusing the id) and must never re-attribute the first.
pub fn attribution_conflicts(first: &SessionContext, second: &SessionContext) -> bool {
    first.principal != second.principal
        || first.target != second.target
        || first.account != second.account
        || first.started_at != second.started_at
}

#[cfg(test)]
mod tests {
    use super::*;

    /// §6.1 (a) of ssm-log-formats.md, verbatim.
    const START_SESSION: &str = r#"{"eventVersion":"1.05","userIdentity":{"type":"IAMUser","principalId":"AIDAVE4W5C6YOXXF5XPOR","arn":"arn:aws:iam::354114410416:user/garland.kan.temp","accountId":"354114410416","accessKeyId":"AKIAVE4W5C6YJPLGCFU5","userName":"garland.kan.temp"},"eventTime":"2020-05-18T17:00:24Z","eventSource":"ssm.amazonaws.com","eventName":"StartSession","awsRegion":"us-east-1","sourceIPAddress":"38.30.8.138","userAgent":"aws-cli/2.0.0 Python/3.7.3 Linux/5.4.0-29-generic botocore/2.0.0dev4","requestParameters":{"target":"i-02311671588e96626","documentName":"SSM-sudo"},"responseElements":{"sessionId":"garland.kan.temp-0e34861185201706f","tokenValue":"Value hidden due to security reasons.","streamUrl":"wss://ssmmessages.us-east-1.amazonaws.com/v1/data-channel/garland.kan.temp-0e34861185201706f?role=publish_subscribe"},"requestID":"35714caa-4b64-47c1-9842-2dc6d4786070","eventID":"4b7a66fc-bffb-4179-be64-69bba2bf714c","readOnly":false,"eventType":"AwsApiCall","recipientAccountId":"354114410416"}"#;

    fn access(json: &str) -> AccessRecord {
        let value: Value = serde_json::from_str(json).expect("test record is JSON");
        match classify(&value, "trail.json") {
            Classified::Access(record) => *record,
            other => panic!("{json}: {other:?}"),
        }
    }

    fn with(base: &str, edits: &[(&str, Value)]) -> String {
        let mut value: Value = serde_json::from_str(base).expect("json");
        for (key, edit) in edits {
            value[*key] = edit.clone();
        }
        value.to_string()
    }

    #[test]
    fn test_start_session_verbatim() {
        let record = access(START_SESSION);
        assert_eq!(record.kind, AccessKind::SsmSession);
        assert_eq!(record.event_id, "4b7a66fc-bffb-4179-be64-69bba2bf714c");
        assert_eq!(record.event_time, 1_589_821_224_000_000);
        assert_eq!(
            record.principal.as_deref(),
            Some("arn:aws:iam::354114410416:user/garland.kan.temp")
        );
        assert_eq!(record.principal_type.as_deref(), Some("IAMUser"));
        assert_eq!(record.source_ip.as_deref(), Some("38.30.8.138"));
        assert_eq!(record.targets, vec!["i-02311671588e96626".to_string()]);
        assert_eq!(record.document_name.as_deref(), Some("SSM-sudo"));
        assert_eq!(record.session_id.as_deref(), Some("garland.kan.temp-0e34861185201706f"));
        assert_eq!(record.account.as_deref(), Some("354114410416"));
        assert_eq!(record.parameters, None);
        let context = session_context(&record).expect("context");
        assert_eq!(context.target.as_deref(), Some("i-02311671588e96626"));
        assert_eq!(context.started_at, Some(1_589_821_224_000_000));
    }

    #[test]
    fn test_classifier_kinds_and_fields() {
        let port_forwarding = with(
            START_SESSION,
            &[(
                "requestParameters",
                serde_json::json!({"target": "i-1", "documentName": "AWS-StartPortForwardingSession",
                    "parameters": {"localPortNumber": ["8089"], "portNumber": ["18089"]}}),
            )],
        );
        let resume = r#"{"eventID":"r1","eventTime":"2026-03-14T09:30:00Z","eventSource":"ssm.amazonaws.com","eventName":"ResumeSession","requestParameters":{"sessionId":"alice-0123456789abcdef0"},"responseElements":{"sessionId":"alice-0123456789abcdef0","tokenValue":"Value hidden due to security reasons."}}"#;
        let terminate = r#"{"eventID":"t1","eventTime":"2026-03-14T09:31:00Z","eventSource":"ssm.amazonaws.com","eventName":"TerminateSession","requestParameters":{"sessionId":"alice-0123456789abcdef0"},"responseElements":{"sessionId":"alice-0123456789abcdef0"}}"#;
        let instance_connect = r#"{"eventID":"c1","eventTime":"2026-03-14T09:32:00Z","eventSource":"ec2-instance-connect.amazonaws.com","eventName":"SendSSHPublicKey","userIdentity":{"type":"AssumedRole","arn":"arn:aws:sts::111122223333:assumed-role/Admin/alice"},"requestParameters":{"instanceId":"i-0a1b2c3d4e5f67890","instanceOSUser":"ec2-user","sshPublicKey":"ssh-ed25519 AAAAC3 alice"},"responseElements":{"requestId":"x","success":true}}"#;
        let run_command = r#"{"eventID":"s1","eventTime":"2026-03-14T09:33:00Z","eventSource":"ssm.amazonaws.com","eventName":"SendCommand","requestParameters":{"instanceIds":["i-1","i-2"],"targets":[{"key":"tag:Env","values":["prod"]}],"documentName":"AWS-RunShellScript","parameters":{"commands":["cat /etc/shadow"]}},"responseElements":{"command":{"commandId":"cmd-1","instanceIds":["i-1","i-2"]}}}"#;
        /// Input, kind, targets, document, parameters, session id.
        type Case<'a> = (String, AccessKind, Vec<&'a str>, Option<&'a str>, Option<&'a str>);
        let cases: Vec<(Case, Option<&str>)> = vec![
            (
                (
                    port_forwarding,
                    AccessKind::SsmSession,
                    vec!["i-1"],
                    Some("AWS-StartPortForwardingSession"),
                    Some(r#"{"parameters":{"localPortNumber":["8089"],"portNumber":["18089"]}}"#),
                ),
                Some("garland.kan.temp-0e34861185201706f"),
            ),
            (
                (resume.into(), AccessKind::SsmResume, vec![], None, None),
                Some("alice-0123456789abcdef0"),
            ),
            (
                (terminate.into(), AccessKind::SsmTerminate, vec![], None, None),
                Some("alice-0123456789abcdef0"),
            ),
            (
                (
                    instance_connect.into(),
                    AccessKind::Ec2InstanceConnect,
                    vec!["i-0a1b2c3d4e5f67890"],
                    None,
                    Some(r#"{"sshPublicKey":"ssh-ed25519 AAAAC3 alice"}"#),
                ),
                None,
            ),
            (
                (
                    run_command.into(),
                    AccessKind::RunCommand,
                    vec!["i-1", "i-2", "tag:Env=prod"],
                    Some("AWS-RunShellScript"),
                    Some(
                        r#"{"parameters":{"commands":["cat /etc/shadow"]},"targets":[{"key":"tag:Env","values":["prod"]}]}"#,
                    ),
                ),
                None,
            ),
        ];
        for ((json, kind, targets, document, parameters), session) in cases {
            let record = access(&json);
            assert_eq!(record.kind, kind, "{json}");
            assert_eq!(record.targets, targets, "{json}");
            assert_eq!(record.document_name.as_deref(), document, "{json}");
            assert_eq!(record.parameters.as_deref(), parameters, "{json}");
            assert_eq!(record.session_id.as_deref(), session, "{json}");
        }
        let connect = access(instance_connect);
        assert_eq!(connect.os_user.as_deref(), Some("ec2-user"));
        assert_eq!(connect.account, Some("111122223333".to_string()), "account from the ARN");
        assert_eq!(access(run_command).command_id.as_deref(), Some("cmd-1"));
        assert_eq!(session_context(&connect), None);
    }

    #[test]
    fn test_classifier_skips_unrelated_and_names_malformed() {
        let unrelated = [
            r#"{"eventSource":"s3.amazonaws.com","eventName":"GetObject"}"#,
            r#"{"eventSource":"ssm.amazonaws.com","eventName":"DescribeInstanceInformation"}"#,
            r#"{"eventSource":"ec2.amazonaws.com","eventName":"StartSession"}"#,
            // Unrelated records are not checked further: even a broken one is skipped.
            r#"{"eventSource":"kms.amazonaws.com","eventName":"Decrypt","eventTime":7}"#,
        ];
        for json in unrelated {
            let value: Value = serde_json::from_str(json).expect("json");
            assert_eq!(classify(&value, "f"), Classified::Unrelated, "{json}");
        }
        let malformed = [
            ("[1]", "not a JSON object"),
            (&*with(START_SESSION, &[("eventID", Value::Null)]), "eventID is missing"),
            (&*with(START_SESSION, &[("eventTime", "yesterday".into())]), "not an RFC 3339"),
            (&*with(START_SESSION, &[("eventTime", 5.into())]), "eventTime is not a string"),
            (&*with(START_SESSION, &[("requestParameters", "x".into())]), "not an object"),
            (&*with(START_SESSION, &[("responseElements", Value::Null)]), "sessionId is missing"),
            (&*with(START_SESSION, &[("userIdentity", 3.into())]), "userIdentity is not an object"),
            (
                r#"{"eventID":"s","eventTime":"2026-03-14T09:33:00Z","eventSource":"ssm.amazonaws.com","eventName":"SendCommand","requestParameters":{"instanceIds":"i-1"}}"#,
                "instanceIds is not a list",
            ),
            (
                r#"{"eventID":"c","eventTime":"2026-03-14T09:33:00Z","eventSource":"ec2-instance-connect.amazonaws.com","eventName":"SendSSHPublicKey","requestParameters":{}}"#,
                "names no target",
            ),
        ];
        for (json, reason) in malformed {
            let value: Value = serde_json::from_str(json).expect("json");
            match classify(&value, "f") {
                Classified::Malformed(found) => assert!(found.contains(reason), "{json}: {found}"),
                other => panic!("{json}: {other:?}"),
            }
        }
        // A refused StartSession has no session id, and is kept: an attempt is evidence too.
        let refused = with(
            START_SESSION,
            &[("responseElements", Value::Null), ("errorCode", "AccessDenied".into())],
        );
        let record = access(&refused);
        assert_eq!(record.error_code.as_deref(), Some("AccessDenied"));
        assert_eq!(session_context(&record), None);
    }

    #[test]
    fn test_trail_file_shapes_dedupe_and_errors() {
        let records = format!(
            r#"{{"Records":[{START_SESSION},{START_SESSION},{{"eventSource":"s3.amazonaws.com","eventName":"GetObject"}},{{"eventSource":"ssm.amazonaws.com","eventName":"StartSession"}}]}}"#
        );
        let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        std::io::Write::write_all(&mut gzip, records.as_bytes()).expect("gzip");
        let gzipped = gzip.finish().expect("gzip");
        for bytes in [records.as_bytes(), &gzipped[..]] {
            let parsed = parse_trail_file(bytes, "t.json.gz").expect("parse");
            assert_eq!(parsed.events.len(), 1);
            assert_eq!((parsed.duplicates, parsed.skipped, parsed.malformed.len()), (1, 1, 1));
        }
        let subscription = serde_json::json!({
            "messageType": "DATA_MESSAGE", "logGroup": "trail", "logStream": "111122223333_CloudTrail_us-east-1",
            "logEvents": [{"id": "1", "timestamp": 1, "message": START_SESSION}, {"id": "2", "timestamp": 2, "message": "{not json"}]
        });
        let parsed = parse_trail_file(subscription.to_string().as_bytes(), "cwl").expect("parse");
        assert_eq!((parsed.events.len(), parsed.malformed.len()), (1, 1));
        let control =
            br#"{"messageType":"CONTROL_MESSAGE","logEvents":[{"message":"CWL CONTROL MESSAGE"}]}"#;
        assert_eq!(parse_trail_file(control, "cwl").expect("parse"), TrailFile::default());
        let eventbridge = format!(
            r#"{{"detail-type":"AWS API Call via CloudTrail","source":"aws.ssm","detail":{START_SESSION}}}"#
        );
        assert_eq!(parse_trail_file(eventbridge.as_bytes(), "eb").expect("parse").events.len(), 1);

        for (bytes, reason) in [
            (&b"\x1f\x8b\x08garbage"[..], "failed to decompress bad.json.gz"),
            (b"{\"Records\": [", "bad.json.gz is not JSON"),
            (b"[]", "bad.json.gz is not a JSON object"),
            (b"{\"Records\": 3}", "Records that is not a list"),
            (b"{\"hello\": 1}", "is not CloudTrail"),
        ] {
            let error = parse_trail_file(bytes, "bad.json.gz").expect_err("refused");
            assert!(error.contains(reason), "{bytes:?}: {error}");
        }
    }

    fn gzip(text: &str) -> Vec<u8> {
        let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        std::io::Write::write_all(&mut gzip, text.as_bytes()).expect("gzip");
        gzip.finish().expect("gzip")
    }

    /// Firehose writes several subscription payloads into one object, each its own gzip
    /// member: every member is read, and an event in two of them is kept once.
    #[test]
    fn test_concatenated_documents_and_gzip_members() {
        let payload = |id: &str, message: &str| {
            serde_json::json!({"messageType": "DATA_MESSAGE", "logGroup": "trail",
                "logEvents": [{"id": id, "timestamp": 1, "message": message}]})
            .to_string()
        };
        let resume = r#"{"eventID":"r1","eventTime":"2026-03-14T09:30:00Z","eventSource":"ssm.amazonaws.com","eventName":"ResumeSession","requestParameters":{"sessionId":"alice-0123456789abcdef0"}}"#;
        let first = payload("1", START_SESSION);
        let second = payload("2", resume);
        let third = payload("3", START_SESSION);
        let mut members = gzip(&first);
        members.extend(gzip(&second));
        members.extend(gzip(&third));
        let plain = format!("{first}\n{second}{third}");
        for (bytes, name) in [(&members[..], "members.gz"), (plain.as_bytes(), "plain")] {
            let parsed = parse_trail_file(bytes, name).expect(name);
            let ids: Vec<&str> = parsed.events.iter().map(|e| e.event_id.as_str()).collect();
            assert_eq!(ids, vec!["4b7a66fc-bffb-4179-be64-69bba2bf714c", "r1"], "{name}");
            assert_eq!(parsed.duplicates, 1, "{name}");
            assert!(parsed.events.iter().all(|e| e.source_ref == name), "{name}");
        }
        // A broken document after good ones: the file as a whole is refused, named.
        let mut broken = gzip(&first);
        broken.extend(gzip("{\"Records\": ["));
        let error = parse_trail_file(&broken, "broken.gz").expect_err("refused");
        assert!(error.contains("broken.gz is not JSON"), "{error}");
        let error = parse_trail_file(b"  \n", "empty.json").expect_err("refused");
        assert!(error.contains("empty.json is not JSON"), "{error}");
        let error = parse_trail_file(b"{\"Records\": []} []", "two.json").expect_err("refused");
        assert!(error.contains("two.json is not a JSON object"), "{error}");
    }

    /// Records are classified as they are read: the rest of an unrelated record is not built
    /// (a broken field after its name does not matter), and an access record is read whole
    /// whatever the order of its fields.
    #[test]
    fn test_records_are_classified_while_read() {
        let start_last = {
            let mut value: Value = serde_json::from_str(START_SESSION).expect("json");
            let object = value.as_object_mut().expect("object");
            let source = object.remove("eventSource").expect("source");
            let name = object.remove("eventName").expect("name");
            object.insert("eventName".into(), name);
            object.insert("eventSource".into(), source);
            value.to_string()
        };
        let file = format!(
            r#"{{"Records":[{{"eventSource":"kms.amazonaws.com","eventName":"Decrypt","eventTime":7,"requestParameters":[1,{{"a":[]}}]}},{start_last},3,[1,2],null,{{"eventSource":5,"eventName":"StartSession"}}]}}"#
        );
        let parsed = parse_trail_file(file.as_bytes(), "t.json").expect("parse");
        assert_eq!(parsed.events.len(), 1);
        assert_eq!(
            parsed.events[0].session_id.as_deref(),
            Some("garland.kan.temp-0e34861185201706f")
        );
        assert_eq!(parsed.skipped, 2, "{parsed:?}");
        assert_eq!(parsed.malformed, vec![NOT_AN_OBJECT.to_string(); 3]);
    }

    /// A file over its limits is cut, never refused whole: the records before the limit are
    /// kept and the cut says where and why; past the record cap the rest is counted (issue 18,
    /// requirement 7).
    #[test]
    fn test_a_file_over_its_limits_keeps_what_came_before() {
        let start = |n: usize| START_SESSION.replace("4b7a66fc", &format!("{n:08x}"));
        let unrelated = r#"{"eventSource":"s3.amazonaws.com","eventName":"GetObject"}"#;
        let records: Vec<String> =
            (0..10).map(|n| if n % 2 == 0 { start(n) } else { unrelated.to_string() }).collect();
        let file = format!(r#"{{"Records":[{}]}}"#, records.join(","));
        let limits = TrailLimits { max_records: 3, ..TrailLimits::default() };
        for (bytes, name) in [(file.as_bytes().to_vec(), "plain.json"), (gzip(&file), "t.json.gz")]
        {
            let parsed = read_trail_file(&bytes[..], name, limits).expect(name);
            assert_eq!((parsed.events.len(), parsed.skipped), (3, 3), "{name}");
            let cut = parsed.cut.expect("cut");
            assert_eq!((cut.records_read, cut.unread), (10, Some(4)), "{name}");
            assert!(cut.reason.starts_with(&format!("{name}: it holds more than 3")), "{cut:?}");
            assert!(cut.reason.contains("4 records from record 7 (near byte offset"), "{cut:?}");
        }
        // Firehose payloads: the cap is the file's, across documents.
        let payload = |n: usize| {
            serde_json::json!({"messageType": "DATA_MESSAGE", "logEvents": [
                {"message": start(2 * n)}, {"message": start(2 * n + 1)}]})
            .to_string()
        };
        let payloads = format!("{}{}{}", payload(0), payload(1), payload(2));
        let parsed = read_trail_file(payloads.as_bytes(), "p", limits).expect("payloads");
        assert_eq!(parsed.events.len(), 3);
        assert_eq!(parsed.cut.expect("cut").unread, Some(3));
        // Exactly at the cap, then unrelated records: nothing is cut.
        let file = format!(r#"{{"Records":[{},{},{},{unrelated}]}}"#, start(1), start(2), start(3));
        let parsed = read_trail_file(file.as_bytes(), "full.json", limits).expect("full");
        assert_eq!((parsed.events.len(), parsed.skipped, parsed.cut), (3, 1, None));

        // A record over its size: the records before it kept, the rest not read.
        let big = format!(
            r#"{{"eventSource":"ssm.amazonaws.com","eventName":"StartSession","pad":"{}"}}"#,
            "x".repeat(64 * 1024)
        );
        let file = format!(r#"{{"Records":[{},{},{big},{}]}}"#, start(1), start(2), start(3));
        let limits = TrailLimits { max_record_bytes: 2048, ..TrailLimits::default() };
        let parsed = read_trail_file(file.as_bytes(), "big.json", limits).expect("big");
        assert_eq!(parsed.events.len(), 2);
        let cut = parsed.cut.expect("cut");
        assert_eq!(cut.unread, None);
        assert!(cut.reason.contains("record 3 (near byte offset"), "{cut:?}");
        assert!(cut.reason.contains("is over 2048 bytes: the 2 records before it"), "{cut:?}");
        assert!(!cut.reason.contains("xxxx"), "record content in the reason: {cut:?}");

        // The file over its size (a bound on time): the same.
        let file = format!(r#"{{"Records":[{},{}]}}"#, start(1), start(2));
        let limits = TrailLimits { max_file_bytes: file.len() as u64 - 10, ..limits };
        let parsed = read_trail_file(file.as_bytes(), "long.json", limits).expect("long");
        assert_eq!(parsed.events.len(), 1);
        assert!(parsed.cut.expect("cut").reason.contains("comes to more than"));
        let gzipped = gzip(&" ".repeat(1 << 20));
        let limits = TrailLimits { max_file_bytes: 1000, ..limits };
        let error = read_trail_file(&gzipped[..], "blank.json.gz", limits).expect_err("blank");
        assert!(error.contains("holds no document"), "{error}");
    }

    /// Bench of the cheap skipping (BENCHMARKS.md): a file of `SESSIONLAKE_TRAIL_BENCH_MB`
    /// (default 32) MB of which 99% of the events are unrelated; prints the time and the peak
    /// RSS of reading it. `cargo nextest run -p sessionlake-indexer --run-ignored only
    /// trail_bench --no-capture`
    #[test]
    #[ignore = "a measurement, not a check"]
    fn test_trail_bench() {
        let megabytes: usize = std::env::var("SESSIONLAKE_TRAIL_BENCH_MB")
            .ok()
            .and_then(|value| value.parse().ok())
            .unwrap_or(32);
        let unrelated = r#"{"eventVersion":"1.08","userIdentity":{"type":"AssumedRole","principalId":"AROAEXAMPLE:i-0a1b2c3d","arn":"arn:aws:sts::111122223333:assumed-role/app/i-0a1b2c3d","accountId":"111122223333","sessionContext":{"attributes":{"creationDate":"2026-03-14T09:00:00Z","mfaAuthenticated":"false"}}},"eventTime":"2026-03-14T09:26:50Z","eventSource":"s3.amazonaws.com","eventName":"GetObject","awsRegion":"us-east-1","sourceIPAddress":"10.0.0.12","userAgent":"aws-sdk-java/2.20.0","requestParameters":{"bucketName":"data","key":"part-00001.parquet","Host":"data.s3.amazonaws.com"},"responseElements":null,"additionalEventData":{"bytesTransferredIn":0,"bytesTransferredOut":1048576},"requestID":"REQ","eventID":"EVENT","readOnly":true,"resources":[{"type":"AWS::S3::Object","ARN":"arn:aws:s3:::data/part-00001.parquet"}],"eventType":"AwsApiCall","managementEvent":false,"recipientAccountId":"111122223333"}"#;
        let mut text = String::from(r#"{"Records":["#);
        let mut n = 0_usize;
        while text.len() < megabytes * 1024 * 1024 {
            if n > 0 {
                text.push(',');
            }
            if n.is_multiple_of(100) {
                text.push_str(&START_SESSION.replace("4b7a66fc", &format!("{n:08x}")));
            } else {
                text.push_str(unrelated);
            }
            n += 1;
        }
        text.push_str("]}");
        let bytes = gzip(&text);
        drop(text);
        // The peak from here on only (Linux: 5 to clear_refs resets VmHWM).
        let _ = std::fs::write("/proc/self/clear_refs", "5");
        let started = std::time::Instant::now();
        let parsed = parse_trail_file(&bytes, "bench.json.gz").expect("parse");
        let elapsed = started.elapsed();
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let peak = status.lines().find(|line| line.starts_with("VmHWM")).unwrap_or("VmHWM: ?");
        println!(
            "trail bench: {megabytes} MB, {n} events ({} access, {} skipped), {} gzip bytes: \
             {:.2} s, peak RSS {}",
            parsed.events.len(),
            parsed.skipped,
            bytes.len(),
            elapsed.as_secs_f64(),
            peak.trim_start_matches("VmHWM:").trim()
        );
        assert_eq!(parsed.events.len() + parsed.skipped, n);
    }
}
