//! Sources of session logs: a local folder, S3, CloudWatch Logs; and CloudTrail for who/where.
//!
//! Each source returns what changed since the cursors: whole sessions as raw bytes in one of the
//! SSM forms, or bad input with the reason (quarantined by the pipeline, never fatal).

use std::collections::BTreeMap;
use std::io::Read as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use sessionlake_indexer::input::{GetLogEventsFile, LogEvent, cloudwatch_raw};
use sessionlake_indexer::{InputForm, SessionContext, account_of_arn};
use sessionlake_lake::cursors::Cursors;
use sessionlake_lake::store::sha256_hex;
use sessionlake_schemas::{SessionSource, session_id};

/// Largest single session object read (a transcript beyond this is quarantined, not loaded).
pub const MAX_OBJECT_BYTES: u64 = 2 * 1024 * 1024 * 1024;
/// Most GetLogEvents pages read for one stream (10,000 events or 1 MB each).
const MAX_STREAM_PAGES: usize = 100_000;
/// Largest decompressed CloudTrail file.
const MAX_CLOUDTRAIL_BYTES: u64 = 512 * 1024 * 1024;

/// One session's raw bytes, ready for the indexer.
#[derive(Debug, Clone)]
pub struct SessionInput {
    /// Session id (the object's base name or the log stream name).
    pub session_id: String,
    /// Which delivery.
    pub source: SessionSource,
    /// Where: `s3://bucket/key`, `cwl://group/stream`, or a file path.
    pub source_ref: String,
    /// Cursor value after this input (ETag, stream position, content hash).
    pub position: String,
    /// Form of `raw`.
    pub form: InputForm,
    /// The bytes stored as the raw transcript and parsed.
    pub raw: Vec<u8>,
    /// A time the source attaches (object LastModified, last event), for partitioning when the
    /// session's own start is unknown (µs).
    pub observed_at: Option<i64>,
}

/// Input that cannot be a session, with the reason.
#[derive(Debug, Clone)]
pub struct BadInput {
    /// Which delivery.
    pub source: SessionSource,
    /// Where.
    pub source_ref: String,
    /// Cursor value after this input.
    pub position: String,
    /// The bytes as received (quarantined encrypted).
    pub raw: Vec<u8>,
    /// Why it was refused.
    pub reason: String,
}

/// What a poll found.
#[derive(Debug, Default)]
pub struct Polled {
    /// Sessions to index.
    pub sessions: Vec<SessionInput>,
    /// Input to quarantine.
    pub bad: Vec<BadInput>,
    /// CloudTrail `StartSession` facts by session id.
    pub cloudtrail: BTreeMap<String, SessionContext>,
}

/// Returns the session id for an object key or file name: its base name without `.log`.
pub fn session_id_of(name: &str) -> Option<String> {
    let base = name.rsplit('/').next()?;
    let id = base.strip_suffix(".log").unwrap_or(base);
    session_id::is_valid(id).then(|| id.to_string())
}

/// Reads `StartSession` records from a CloudTrail file (`{"Records":[…]}`, gzip or not).
pub fn parse_cloudtrail(
    bytes: &[u8],
    name: &str,
) -> anyhow::Result<BTreeMap<String, SessionContext>> {
    let json = if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        sessionlake_lake::decompress::bounded(
            flate2::read::GzDecoder::new(bytes),
            MAX_CLOUDTRAIL_BYTES,
            name,
        )
        .read_to_end(&mut out)
        .with_context(|| format!("failed to decompress {name}"))?;
        out
    } else {
        bytes.to_vec()
    };
    let document: serde_json::Value =
        serde_json::from_slice(&json).with_context(|| format!("{name} is not CloudTrail JSON"))?;
    let mut found = BTreeMap::new();
    let records =
        document.get("Records").and_then(|r| r.as_array()).map(Vec::as_slice).unwrap_or_default();
    for record in records {
        let text = |path: &[&str]| {
            let mut value = record;
            for key in path {
                value = value.get(key)?;
            }
            value.as_str().map(str::to_string)
        };
        if text(&["eventSource"]).as_deref() != Some("ssm.amazonaws.com")
            || text(&["eventName"]).as_deref() != Some("StartSession")
        {
            continue;
        }
        let Some(session) = text(&["responseElements", "sessionId"]) else {
            continue;
        };
        let principal = text(&["userIdentity", "arn"]);
        let started_at = text(&["eventTime"])
            .and_then(|time| chrono::DateTime::parse_from_rfc3339(&time).ok())
            .map(|time| time.timestamp_micros());
        let account = text(&["recipientAccountId"])
            .or_else(|| text(&["userIdentity", "accountId"]))
            .or_else(|| principal.as_deref().and_then(account_of_arn));
        found.insert(
            session.clone(),
            SessionContext {
                session_id: session,
                principal,
                run_as: None,
                target: text(&["requestParameters", "target"]),
                region: text(&["awsRegion"]),
                account,
                started_at,
            },
        );
    }
    Ok(found)
}

fn walk(dir: &Path, files: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|entry| entry.path());
    for entry in entries {
        let kind = entry.file_type()?;
        if kind.is_dir() {
            walk(&entry.path(), files)?;
        } else if kind.is_file() {
            files.push(entry.path());
        }
    }
    Ok(())
}

/// Polls a local folder: `*.log` files are S3-form transcripts, `*.json` under a `cloudwatch`
/// folder are `get-log-events` outputs (one stream each), files under `cloudtrail` or
/// `AWSLogs` are CloudTrail logs.
pub fn poll_local(dir: &Path, cursors: &Cursors, polled: &mut Polled) -> anyhow::Result<()> {
    let mut files = Vec::new();
    walk(dir, &mut files).with_context(|| format!("failed to list {}", dir.display()))?;
    for file in files {
        let relative = file.strip_prefix(dir).unwrap_or(&file).to_string_lossy().to_string();
        let source_ref = file.to_string_lossy().to_string();
        let in_folder = |name: &str| relative.split('/').any(|part| part == name);
        let name = file.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
        let metadata =
            std::fs::metadata(&file).with_context(|| format!("failed to stat {source_ref}"))?;
        if metadata.len() > MAX_OBJECT_BYTES {
            polled.bad.push(BadInput {
                source: SessionSource::Local,
                source_ref: source_ref.clone(),
                position: format!("size:{}", metadata.len()),
                raw: Vec::new(),
                reason: format!(
                    "{source_ref} is {} bytes, over the {MAX_OBJECT_BYTES}-byte limit",
                    metadata.len()
                ),
            });
            continue;
        }
        let observed_at = metadata
            .modified()
            .ok()
            .and_then(|time| time.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|since| since.as_micros() as i64);
        if in_folder("cloudtrail") || in_folder("AWSLogs") {
            let bytes =
                std::fs::read(&file).with_context(|| format!("failed to read {source_ref}"))?;
            match parse_cloudtrail(&bytes, &source_ref) {
                Ok(found) => polled.cloudtrail.extend(found),
                Err(error) => {
                    tracing::warn!(file = %source_ref, error = %format!("{error:#}"), "cloudtrail file skipped")
                }
            }
            continue;
        }
        let is_log = name.ends_with(".log");
        let is_stream = name.ends_with(".json") && in_folder("cloudwatch");
        if !is_log && !is_stream {
            continue;
        }
        let bytes = std::fs::read(&file).with_context(|| format!("failed to read {source_ref}"))?;
        let position = sha256_hex(&bytes);
        if cursors.positions.get(&source_ref) == Some(&position) {
            continue;
        }
        let stem = name.trim_end_matches(".json").trim_end_matches(".log");
        let Some(session_id) = session_id_of(stem) else {
            polled.bad.push(BadInput {
                source: SessionSource::Local,
                source_ref: source_ref.clone(),
                position,
                raw: bytes,
                reason: format!("{source_ref}: file name {name:?} is not a session id"),
            });
            continue;
        };
        if is_log {
            polled.sessions.push(SessionInput {
                session_id,
                source: SessionSource::Local,
                source_ref,
                position,
                form: InputForm::S3Transcript,
                raw: bytes,
                observed_at,
            });
            continue;
        }
        match serde_json::from_slice::<GetLogEventsFile>(&bytes) {
            Ok(file) => {
                let (form, raw) = cloudwatch_raw(&file.events);
                let observed_at =
                    file.events.last().and_then(|e| e.timestamp.checked_mul(1000)).or(observed_at);
                // Tagged as the CloudWatch form it is, so that a transcript of the same session
                // in the same folder (`*.log`) stays a separate version.
                let source = match form {
                    InputForm::CloudwatchStream => SessionSource::CloudwatchStream,
                    _ => SessionSource::CloudwatchUpload,
                };
                polled.sessions.push(SessionInput {
                    session_id,
                    source,
                    source_ref,
                    position,
                    form,
                    raw,
                    observed_at,
                });
            }
            Err(error) => polled.bad.push(BadInput {
                source: SessionSource::Local,
                source_ref: source_ref.clone(),
                position,
                raw: bytes,
                reason: format!("{source_ref} is not get-log-events JSON: {error}"),
            }),
        }
    }
    Ok(())
}

/// Lists the objects under `prefix` whose keys end in one of `suffixes`, every page.
async fn list_objects(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    prefix: &str,
    suffixes: &[&str],
) -> anyhow::Result<Vec<aws_sdk_s3::types::Object>> {
    let mut found = Vec::new();
    let mut pages = client.list_objects_v2().bucket(bucket).prefix(prefix).into_paginator().send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| {
            anyhow::anyhow!(
                "failed to list s3://{bucket}/{prefix}: {}",
                aws_sdk_s3::error::DisplayErrorContext(e)
            )
        })?;
        found.extend(
            page.contents()
                .iter()
                .filter(|object| {
                    object
                        .key()
                        .is_some_and(|key| suffixes.iter().any(|suffix| key.ends_with(suffix)))
                })
                .cloned(),
        );
    }
    Ok(found)
}

/// Reads a whole object.
async fn get_object(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
) -> anyhow::Result<Vec<u8>> {
    let name = format!("s3://{bucket}/{key}");
    let response = client.get_object().bucket(bucket).key(key).send().await.map_err(|e| {
        anyhow::anyhow!("failed to fetch {name}: {}", aws_sdk_s3::error::DisplayErrorContext(e))
    })?;
    let body = response.body.collect().await.with_context(|| format!("failed to read {name}"))?;
    Ok(body.into_bytes().to_vec())
}

/// Reads S3 objects whose keys end in `.log` under `prefix`, skipping those whose ETag the
/// cursors already hold.
pub async fn poll_s3(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    prefix: &str,
    cursors: &Cursors,
    polled: &mut Polled,
) -> anyhow::Result<()> {
    for object in list_objects(client, bucket, prefix, &[".log"]).await? {
        let Some(key) = object.key() else { continue };
        let source_ref = format!("s3://{bucket}/{key}");
        let position = object.e_tag().unwrap_or_default().to_string();
        if cursors.positions.get(&source_ref) == Some(&position) {
            continue;
        }
        let observed_at = object
            .last_modified()
            .and_then(|t| t.to_millis().ok())
            .and_then(|ms| ms.checked_mul(1000));
        let size = object.size().unwrap_or(0).max(0) as u64;
        let session_id = session_id_of(key);
        let refused = match &session_id {
            None => Some(format!("{source_ref}: key base name is not a session id")),
            Some(_) if size > MAX_OBJECT_BYTES => Some(format!(
                "{source_ref} is {size} bytes, over the {MAX_OBJECT_BYTES}-byte limit"
            )),
            Some(_) => None,
        };
        if let Some(reason) = refused {
            let source = SessionSource::S3;
            polled.bad.push(BadInput { source, source_ref, position, raw: Vec::new(), reason });
            continue;
        }
        let Some(session_id) = session_id else { continue };
        let raw = get_object(client, bucket, key).await?;
        polled.sessions.push(SessionInput {
            session_id,
            source: SessionSource::S3,
            source_ref,
            position,
            form: InputForm::S3Transcript,
            raw,
            observed_at,
        });
    }
    Ok(())
}

/// Reads every stream of a log group (stream name = session id) that changed since the cursors.
pub async fn poll_cloudwatch(
    client: &aws_sdk_cloudwatchlogs::Client,
    group: &str,
    cursors: &Cursors,
    polled: &mut Polled,
) -> anyhow::Result<()> {
    let mut pages = client.describe_log_streams().log_group_name(group).into_paginator().send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| {
            anyhow::anyhow!(
                "failed to list streams of log group {group}: {}",
                aws_sdk_cloudwatchlogs::error::DisplayErrorContext(e)
            )
        })?;
        for stream in page.log_streams() {
            let Some(name) = stream.log_stream_name() else {
                continue;
            };
            let source_ref = format!("cwl://{group}/{name}");
            let position = format!(
                "{}:{}",
                stream.last_event_timestamp().unwrap_or(0),
                stream.last_ingestion_time().unwrap_or(0)
            );
            if cursors.positions.get(&source_ref) == Some(&position) {
                continue;
            }
            let events = read_stream(client, group, name).await?;
            let Some(session_id) = session_id_of(name) else {
                polled.bad.push(BadInput {
                    source: SessionSource::CloudwatchStream,
                    source_ref: source_ref.clone(),
                    position,
                    raw: cloudwatch_raw(&events).1,
                    reason: format!("{source_ref}: stream name is not a session id"),
                });
                continue;
            };
            let (form, raw) = cloudwatch_raw(&events);
            let source = match form {
                InputForm::CloudwatchStream => SessionSource::CloudwatchStream,
                _ => SessionSource::CloudwatchUpload,
            };
            polled.sessions.push(SessionInput {
                session_id,
                source,
                source_ref,
                position,
                form,
                raw,
                observed_at: events.last().and_then(|e| e.timestamp.checked_mul(1000)),
            });
        }
    }
    Ok(())
}

async fn read_stream(
    client: &aws_sdk_cloudwatchlogs::Client,
    group: &str,
    stream: &str,
) -> anyhow::Result<Vec<LogEvent>> {
    let mut events = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0usize;
    loop {
        let page = client
            .get_log_events()
            .log_group_name(group)
            .log_stream_name(stream)
            .start_from_head(true)
            .set_next_token(token.clone())
            .send()
            .await
            .map_err(|e| {
                anyhow::anyhow!(
                    "failed to read cwl://{group}/{stream}: {}",
                    aws_sdk_cloudwatchlogs::error::DisplayErrorContext(e)
                )
            })?;
        for event in page.events() {
            events.push(LogEvent {
                timestamp: event.timestamp().unwrap_or(0),
                message: event.message().unwrap_or_default().to_string(),
            });
        }
        // The forward token repeats once the end of the stream is reached. An empty page does
        // not mean the end: GetLogEvents pages by time, and a session idle for a while has
        // empty pages in the middle.
        let next = page.next_forward_token().map(str::to_string);
        if next.is_none() || next == token {
            break;
        }
        pages += 1;
        if pages >= MAX_STREAM_PAGES {
            anyhow::bail!("cwl://{group}/{stream} did not end after {MAX_STREAM_PAGES} pages");
        }
        token = next;
    }
    Ok(events)
}

/// Reads CloudTrail files (`.json.gz` or `.json`) under an S3 prefix.
pub async fn poll_cloudtrail_s3(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    prefix: &str,
    polled: &mut Polled,
) -> anyhow::Result<()> {
    for object in list_objects(client, bucket, prefix, &[".json.gz", ".json"]).await? {
        let Some(key) = object.key() else { continue };
        let name = format!("s3://{bucket}/{key}");
        let bytes = get_object(client, bucket, key).await?;
        match parse_cloudtrail(&bytes, &name) {
            Ok(found) => polled.cloudtrail.extend(found),
            Err(error) => {
                tracing::warn!(object = %name, error = %format!("{error:#}"), "cloudtrail file skipped")
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_session_id_of_keys() {
        assert_eq!(
            session_id_of("ssm/123/alice-0123456789abcdef0.log").as_deref(),
            Some("alice-0123456789abcdef0")
        );
        assert_eq!(session_id_of("a/../.log"), None);
    }

    #[test]
    fn test_cloudwatch_forms_are_told_apart() {
        let upload = vec![
            LogEvent {
                timestamp: 1,
                message: "Script started on 2026-03-14 09:30:00+00:00\nsh-5.2$ ls\r".into(),
            },
            LogEvent { timestamp: 2, message: "a\r".into() },
        ];
        let (form, raw) = cloudwatch_raw(&upload);
        assert_eq!(form, InputForm::CloudwatchUpload);
        assert_eq!(raw, b"Script started on 2026-03-14 09:30:00+00:00\nsh-5.2$ ls\r\na\r");
        let stream = vec![LogEvent {
            timestamp: 3,
            message: r#"{"eventVersion":"1.0","sessionData":["$ ls"]}"#.into(),
        }];
        assert_eq!(cloudwatch_raw(&stream).0, InputForm::CloudwatchStream);
    }

    #[test]
    fn test_cloudtrail_start_session() {
        let json = br#"{"Records":[{"eventSource":"ssm.amazonaws.com","eventName":"StartSession","eventTime":"2020-05-18T17:00:24Z","awsRegion":"us-east-1","userIdentity":{"arn":"arn:aws:iam::354114410416:user/garland.kan.temp","accountId":"354114410416"},"requestParameters":{"target":"i-02311671588e96626"},"responseElements":{"sessionId":"garland.kan.temp-0e34861185201706f"},"recipientAccountId":"354114410416"},{"eventSource":"s3.amazonaws.com","eventName":"GetObject"}]}"#;
        let found = parse_cloudtrail(json, "t.json").expect("parse");
        let context = &found["garland.kan.temp-0e34861185201706f"];
        assert_eq!(context.target.as_deref(), Some("i-02311671588e96626"));
        assert_eq!(context.account.as_deref(), Some("354114410416"));
        assert_eq!(context.started_at, Some(1_589_821_224_000_000));
        assert_eq!(found.len(), 1);
    }
}
