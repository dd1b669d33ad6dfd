//! S3 event notifications through SQS: an S3 source with `sqs_queue_url` is not listed; each
//! poll receives the queue's messages, turns the `ObjectCreated` records they hold into
//! pending work, and deletes a message only once every object it names is committed
//! (DESIGN.md's order: acknowledgements after the commit).
//!
//! A message that names an object the poll could not commit stays in the queue: it comes back
//! after the queue's visibility timeout (or goes to the queue's redrive target), and the object
//! is read then. A message that is not an S3 event notification is reported and deleted: it can
//! never name anything to ingest. So is the `s3:TestEvent` S3 sends when notifications are set
//! up, and records of other events (`ObjectRemoved:*`) or of objects outside the source.

use std::collections::HashSet;
use std::sync::{Mutex, PoisonError};

use serde_json::Value;
use sessionlake_storage::cursors::Cursors;

use super::s3::{notified_transcript, pending_s3};
use super::{Notification, Notified, Pending, S3Object, S3SourceConfig, Source};
use crate::error::IngestError;
use crate::events;

/// An S3 source read through its bucket's event notifications.
#[derive(Debug)]
pub struct S3QueueSource {
    sqs: aws_sdk_sqs::Client,
    s3: aws_sdk_s3::Client,
    location: S3SourceConfig,
    queue_url: String,
    /// The messages received by the poll under way, deleted by [`Source::acknowledge`].
    received: Mutex<Vec<Received>>,
}

impl S3QueueSource {
    /// Returns the source of `location`, whose notifications `queue_url` receives.
    pub fn new(
        sqs: aws_sdk_sqs::Client,
        s3: aws_sdk_s3::Client,
        location: S3SourceConfig,
        queue_url: String,
    ) -> S3QueueSource {
        S3QueueSource { sqs, s3, location, queue_url, received: Mutex::default() }
    }
}

#[async_trait::async_trait]
impl Source for S3QueueSource {
    fn describe(&self) -> String {
        self.queue_url.clone()
    }

    async fn list(&self, cursors: &Cursors) -> anyhow::Result<Vec<Pending>> {
        let (pending, received) =
            receive(&self.sqs, &self.s3, &self.queue_url, &self.location, cursors).await?;
        self.received.lock().unwrap_or_else(PoisonError::into_inner).extend(received);
        Ok(pending)
    }

    /// A Lambda triggered by the bucket itself reads what it names, as without the queue.
    fn notified(&self, notification: &Notification<'_>, cursors: &Cursors) -> Option<Notified> {
        notified_transcript(&self.s3, &self.location, notification, cursors)
    }

    /// Deletes the messages whose every object is committed; the others stay and come back.
    async fn acknowledge(&self, done: &HashSet<String>, cursors: &Cursors) -> anyhow::Result<()> {
        let received =
            std::mem::take(&mut *self.received.lock().unwrap_or_else(PoisonError::into_inner));
        if !received.is_empty() {
            acknowledge(&self.sqs, received, done, cursors).await?;
        }
        Ok(())
    }
}

/// Most messages one receive call returns (SQS's limit).
const RECEIVE_BATCH: i32 = 10;
/// Most messages one poll takes from one queue; the rest wait for the next poll.
pub const MAX_MESSAGES_PER_POLL: usize = 1000;

/// An object an S3 event notification says was created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Created {
    /// Bucket.
    pub bucket: String,
    /// Key, decoded (notifications URL-encode it, spaces as `+`).
    pub key: String,
    /// ETag, quoted as S3's own listings return it.
    pub etag: String,
    /// Size in bytes.
    pub size: u64,
    /// The event's time (µs).
    pub event_time: Option<i64>,
}

/// Parses an SQS message body holding an S3 event notification (directly, or in an SNS
/// envelope's `Message`); returns the objects it says were created. `s3:TestEvent` and records
/// of other events give none. A body that is not a notification is an error with the reason.
pub fn parse_notification(body: &str) -> Result<Vec<Created>, String> {
    let value: Value = serde_json::from_str(body).map_err(|error| {
        format!("not JSON: {}", sessionlake_schemas::json_error_position(&error))
    })?;
    // S3 -> SNS -> SQS: the notification is the envelope's `Message`, as text.
    if value.get("Type").and_then(Value::as_str) == Some("Notification")
        && let Some(inner) = value.get("Message").and_then(Value::as_str)
    {
        return parse_notification(inner);
    }
    if value.get("Event").and_then(Value::as_str) == Some("s3:TestEvent") {
        return Ok(Vec::new());
    }
    created_objects(&value)
}

/// Returns the objects the `Records` of an S3 event notification say were created (records of
/// other events or services are skipped).
pub fn created_objects(value: &Value) -> Result<Vec<Created>, String> {
    let Some(records) = value.get("Records").and_then(Value::as_array) else {
        return Err("neither S3 event records nor s3:TestEvent".to_string());
    };
    let mut created = Vec::new();
    for (index, record) in records.iter().enumerate() {
        let event = record.get("eventName").and_then(Value::as_str).unwrap_or_default();
        if record.get("eventSource").and_then(Value::as_str) != Some("aws:s3")
            || !event.starts_with("ObjectCreated:")
        {
            continue;
        }
        let text = |pointer: &str| record.pointer(pointer).and_then(Value::as_str);
        let (Some(bucket), Some(encoded)) = (text("/s3/bucket/name"), text("/s3/object/key"))
        else {
            return Err(format!("record {index} has no s3.bucket.name or s3.object.key"));
        };
        let key = decode_key(encoded).ok_or_else(|| {
            format!("record {index}: object key {encoded:?} is not URL-encoded UTF-8")
        })?;
        let etag = text("/s3/object/eTag").unwrap_or_default();
        let etag = if etag.starts_with('"') { etag.to_string() } else { format!("\"{etag}\"") };
        let event_time = text("/eventTime")
            .and_then(|time| chrono::DateTime::parse_from_rfc3339(time).ok())
            .map(|time| time.timestamp_micros());
        created.push(Created {
            bucket: bucket.to_string(),
            key,
            etag,
            size: record.pointer("/s3/object/size").and_then(Value::as_u64).unwrap_or(0),
            event_time,
        });
    }
    Ok(created)
}

/// Decodes an object key of an S3 event notification (form encoding: `+` is a space).
fn decode_key(encoded: &str) -> Option<String> {
    let spaced = encoded.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced).decode_utf8().ok().map(|key| key.into_owned())
}

/// A received message, to delete once what it names is committed.
#[derive(Debug, Clone)]
pub struct Received {
    /// The queue.
    pub queue_url: String,
    /// The receipt handle that deletes it.
    pub receipt: String,
    /// The inputs it names (`s3://bucket/key`) with the ETag it names: each must be committed
    /// (or found unchanged, or gone) before the message goes.
    pub objects: Vec<(String, String)>,
}

/// Receives up to [`MAX_MESSAGES_PER_POLL`] messages of `source`'s queue and returns the work
/// they name (objects under the source's prefix ending in `.log`, each once, those whose ETag
/// the cursors hold left out) and the messages.
pub async fn receive(
    client: &aws_sdk_sqs::Client,
    s3: &aws_sdk_s3::Client,
    queue_url: &str,
    source: &S3SourceConfig,
    cursors: &Cursors,
) -> anyhow::Result<(Vec<Pending>, Vec<Received>)> {
    let mut pending = Vec::new();
    let mut received = Vec::new();
    let mut named = HashSet::new();
    while received.len() < MAX_MESSAGES_PER_POLL {
        let response = client
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(RECEIVE_BATCH)
            .wait_time_seconds(0)
            .send()
            .await
            .map_err(|e| {
                IngestError::from_sdk(&format!("failed to receive from {queue_url}"), e)
            })?;
        let messages = response.messages();
        if messages.is_empty() {
            break;
        }
        for message in messages {
            let Some(receipt) = message.receipt_handle() else { continue };
            let body = message.body().unwrap_or_default();
            let created = parse_notification(body).unwrap_or_else(|reason| {
                let message_id = message.message_id().unwrap_or_default();
                events::QueueMessageMalformed { queue_url, message_id, reason: &reason }.emit();
                Vec::new()
            });
            let mut objects = Vec::new();
            for object in created {
                if object.bucket != source.bucket
                    || !object.key.starts_with(&source.prefix)
                    || !object.key.ends_with(".log")
                {
                    continue;
                }
                let listed = S3Object {
                    bucket: &object.bucket,
                    key: &object.key,
                    etag: &object.etag,
                    size: object.size,
                    observed_at: object.event_time,
                };
                let source_ref = format!("s3://{}/{}", object.bucket, object.key);
                if named.insert(source_ref.clone()) {
                    pending.extend(pending_s3(s3, &listed, cursors));
                }
                objects.push((source_ref, object.etag));
            }
            received.push(Received {
                queue_url: queue_url.to_string(),
                receipt: receipt.to_string(),
                objects,
            });
        }
    }
    Ok((pending, received))
}

/// Deletes the messages every object of which is in `done` (committed by this poll, found
/// unchanged or gone) or has the named ETag as its cursor; returns how many were deleted. The
/// others stay and come back after the queue's visibility timeout.
pub async fn acknowledge(
    client: &aws_sdk_sqs::Client,
    received: Vec<Received>,
    done: &HashSet<String>,
    cursors: &Cursors,
) -> anyhow::Result<usize> {
    let mut deleted = 0;
    for message in received {
        let committed = |(source_ref, etag): &(String, String)| {
            done.contains(source_ref) || cursors.positions.get(source_ref) == Some(etag)
        };
        if !message.objects.iter().all(committed) {
            continue;
        }
        client
            .delete_message()
            .queue_url(&message.queue_url)
            .receipt_handle(&message.receipt)
            .send()
            .await
            .map_err(|e| {
                IngestError::from_sdk(
                    &format!("failed to delete a message from {}", message.queue_url),
                    e,
                )
            })?;
        deleted += 1;
    }
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(event: &str, key: &str) -> Value {
        serde_json::json!({
            "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
            "eventTime": "2026-03-14T09:30:00.000Z", "eventName": event,
            "s3": {"bucket": {"name": "logs"}, "object": {"key": key, "size": 42, "eTag": "abc"}}
        })
    }

    #[test]
    fn test_notifications_parse_into_created_objects() {
        let created = Created {
            bucket: "logs".into(),
            key: "ssm/team a/alice-0123456789abcdef0.log".into(),
            etag: "\"abc\"".into(),
            size: 42,
            event_time: Some(1_773_480_600_000_000),
        };
        let direct = serde_json::json!({"Records": [
            record("ObjectCreated:Put", "ssm/team+a/alice-0123456789abcdef0.log"),
            record("ObjectRemoved:Delete", "ssm/gone.log"),
        ]})
        .to_string();
        let through_sns =
            serde_json::json!({"Type": "Notification", "Message": direct.clone()}).to_string();
        let test_event = r#"{"Service":"Amazon S3","Event":"s3:TestEvent","Bucket":"logs"}"#;
        let cases: [(&str, Result<Vec<Created>, &str>); 6] = [
            (&direct, Ok(vec![created.clone()])),
            (&through_sns, Ok(vec![created])),
            (test_event, Ok(vec![])),
            ("not json", Err("not JSON")),
            (r#"{"hello":"world"}"#, Err("neither S3 event records")),
            (
                r#"{"Records":[{"eventSource":"aws:s3","eventName":"ObjectCreated:Put","s3":{}}]}"#,
                Err("record 0 has no s3.bucket.name"),
            ),
        ];
        for (body, expected) in cases {
            match (parse_notification(body), expected) {
                (Ok(found), Ok(expected)) => assert_eq!(found, expected, "{body}"),
                (Err(found), Err(expected)) => assert!(found.contains(expected), "{body}: {found}"),
                (found, expected) => panic!("{body}: {found:?}, expected {expected:?}"),
            }
        }
    }

    #[test]
    fn test_keys_decode_or_are_refused() {
        assert_eq!(decode_key("a%2Fb+c%C3%A9.log").as_deref(), Some("a/b cé.log"));
        assert_eq!(decode_key("bad%FF.log"), None);
    }
}
