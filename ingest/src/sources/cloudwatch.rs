//! A CloudWatch Logs group of session logs: one stream per session (stream name = session
//! id), streamed JSON or uploaded text. A stream's position is its last event and ingestion
//! times; a stream that grew is read whole again and replaces the earlier version.

use serde::Deserialize;
use sessionlake_indexer::InputForm;
use sessionlake_indexer::input::{LogEvent, cloudwatch_raw, event_micros};
use sessionlake_schemas::SessionSource;
use sessionlake_storage::cursors::Cursors;

use super::{
    BadInput, Fetched, Notification, Notified, Pending, SessionInput, Source, Work, session_id_of,
};
use crate::error::IngestError;
use crate::raw::Raw;

/// Most GetLogEvents pages read for one stream (10,000 events or 1 MB each).
const MAX_STREAM_PAGES: usize = 100_000;

/// A CloudWatch Logs group.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloudwatchSourceConfig {
    /// Log group name.
    pub log_group: String,
}

impl CloudwatchSourceConfig {
    /// Why it cannot be read, if it cannot.
    pub fn validate(&self) -> Result<(), String> {
        match self.log_group.is_empty() {
            true => Err("sources.cloudwatch: log_group is empty".to_string()),
            false => Ok(()),
        }
    }
}

/// Lists and reads the streams of a log group.
#[derive(Debug)]
pub struct CloudwatchSource {
    client: aws_sdk_cloudwatchlogs::Client,
    group: String,
}

impl CloudwatchSource {
    /// Returns the source of the log group `group`, read with `client`.
    pub fn new(client: aws_sdk_cloudwatchlogs::Client, group: String) -> CloudwatchSource {
        CloudwatchSource { client, group }
    }
}

#[async_trait::async_trait]
impl Source for CloudwatchSource {
    fn describe(&self) -> String {
        format!("cwl://{}", self.group)
    }

    async fn list(&self, cursors: &Cursors) -> anyhow::Result<Vec<Pending>> {
        list_cloudwatch(&self.client, &self.group, cursors).await
    }

    /// A subscription payload of one of its streams: the stream is read whole (a session is
    /// always written from its whole transcript).
    fn notified(&self, notification: &Notification<'_>, _cursors: &Cursors) -> Option<Notified> {
        match notification {
            Notification::Subscription { group, stream, first_id } if *group == self.group => {
                Some(Notified::Session(Some(Box::new(StreamWork {
                    client: self.client.clone(),
                    group: self.group.clone(),
                    stream: stream.to_string(),
                    position: format!("subscription:{first_id}"),
                }))))
            }
            _ => None,
        }
    }
}

/// A log stream to read.
#[derive(Debug)]
struct StreamWork {
    client: aws_sdk_cloudwatchlogs::Client,
    group: String,
    /// Stream name (the session id).
    stream: String,
    /// Position at listing time (last event and ingestion times).
    position: String,
}

#[async_trait::async_trait]
impl Work for StreamWork {
    fn source_ref(&self) -> String {
        format!("cwl://{}/{}", self.group, self.stream)
    }

    async fn fetch(self: Box<Self>, _cursors: &Cursors) -> anyhow::Result<Fetched> {
        fetch_cloudwatch(&self.client, &self.group, &self.stream, &self.position).await
    }
}

/// Lists the streams of a log group (stream name = session id) that changed since the cursors.
pub async fn list_cloudwatch(
    client: &aws_sdk_cloudwatchlogs::Client,
    group: &str,
    cursors: &Cursors,
) -> anyhow::Result<Vec<Pending>> {
    let mut pending: Vec<Pending> = Vec::new();
    let mut pages = client.describe_log_streams().log_group_name(group).into_paginator().send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| {
            IngestError::from_sdk(&format!("failed to list streams of log group {group}"), e)
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
            pending.push(Box::new(StreamWork {
                client: client.clone(),
                group: group.to_string(),
                stream: name.to_string(),
                position,
            }));
        }
    }
    Ok(pending)
}

/// Reads one log stream whole.
pub async fn fetch_cloudwatch(
    client: &aws_sdk_cloudwatchlogs::Client,
    group: &str,
    stream: &str,
    position: &str,
) -> anyhow::Result<Fetched> {
    let source_ref = format!("cwl://{group}/{stream}");
    let events = read_stream(client, group, stream).await?;
    let (form, raw) = cloudwatch_raw(&events);
    let Some(session_id) = session_id_of(stream) else {
        return Ok(Fetched::Bad(BadInput {
            source: SessionSource::CloudwatchStream.as_str(),
            reason: format!("{source_ref:?}: stream name is not a session id"),
            source_ref,
            position: position.to_string(),
            raw: Raw::from(raw),
        }));
    };
    let source = match form {
        InputForm::CloudwatchStream => SessionSource::CloudwatchStream,
        _ => SessionSource::CloudwatchUpload,
    };
    Ok(Fetched::Session(SessionInput {
        session_id,
        source,
        source_ref,
        position: position.to_string(),
        form,
        raw: Raw::from(raw),
        observed_at: events.last().and_then(|e| event_micros(e.timestamp)),
    }))
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
                IngestError::from_sdk(&format!("failed to read cwl://{group}/{stream}"), e)
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
