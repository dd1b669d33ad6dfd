//! S3 session logs: `*.log` transcripts under a bucket's prefix (the session id is each
//! object's base name, or the one its header names). A transcript's position is its ETag; its
//! bytes are streamed at that ETag when parsed and sealed ([`crate::raw`]).

use serde::Deserialize;
use sessionlake_indexer::InputForm;
use sessionlake_schemas::SessionSource;
use sessionlake_storage::cursors::Cursors;

use super::{
    BadInput, Fetched, HEADER_PROBE_BYTES, MAX_OBJECT_BYTES, Notification, Notified, Pending,
    Refused, SessionInput, Source, Work, name_is_session_id, session_id_of, transcript_session_id,
};
use crate::error::{IngestError, IngestErrorKind};
use crate::raw::{ObjectLocation, Raw, RawObject};

/// An S3 location.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3SourceConfig {
    /// Bucket name.
    pub bucket: String,
    /// Key prefix (free-form; the session id is each object's base name).
    #[serde(default)]
    pub prefix: String,
    /// URL of an SQS queue that receives this bucket's S3 event notifications
    /// (`s3:ObjectCreated:*`, directly or through SNS). When set, the bucket is not listed: each
    /// poll reads the queue, fetches the objects its messages name (under `prefix`, `*.log`),
    /// and deletes a message only once every object it names is committed. Objects written
    /// before the notifications were set up are read by one run without the queue.
    /// `sources.s3` only.
    #[serde(default)]
    pub sqs_queue_url: Option<String>,
}

impl S3SourceConfig {
    /// Why it cannot be read as a source of `kind` (`s3`, `cloudtrail`), if it cannot.
    pub fn validate(&self, kind: &str) -> Result<(), String> {
        self.validate_bucket()?;
        if self.sqs_queue_url.as_deref().is_some_and(|url| !url.starts_with("http")) {
            return Err(format!(
                "sources.{kind}: sqs_queue_url of bucket {} is not a queue URL",
                self.bucket
            ));
        }
        Ok(())
    }

    /// Why its bucket is no bucket name, if it is not.
    pub fn validate_bucket(&self) -> Result<(), String> {
        match self.bucket.len() < 3 || self.bucket.contains('/') {
            true => Err(format!("sources: bucket {:?} is not a bucket name", self.bucket)),
            false => Ok(()),
        }
    }

    /// Whether `key` of `bucket` is under this location.
    pub fn holds(&self, bucket: &str, key: &str) -> bool {
        self.bucket == bucket && key.starts_with(&self.prefix)
    }
}

/// Lists and reads S3 session logs.
#[derive(Debug)]
pub struct S3Source {
    client: aws_sdk_s3::Client,
    location: S3SourceConfig,
}

impl S3Source {
    /// Returns the source of `location`, read with `client`.
    pub fn new(client: aws_sdk_s3::Client, location: S3SourceConfig) -> S3Source {
        S3Source { client, location }
    }
}

#[async_trait::async_trait]
impl Source for S3Source {
    fn describe(&self) -> String {
        format!("s3://{}/{}", self.location.bucket, self.location.prefix)
    }

    async fn list(&self, cursors: &Cursors) -> anyhow::Result<Vec<Pending>> {
        let S3SourceConfig { bucket, prefix, .. } = &self.location;
        list_s3(&self.client, bucket, prefix, cursors).await
    }

    fn notified(&self, notification: &Notification<'_>, cursors: &Cursors) -> Option<Notified> {
        notified_transcript(&self.client, &self.location, notification, cursors)
    }
}

/// The work an S3 event notification names when it is a transcript (`*.log`) under
/// `location`: for an S3 source, read through its queue or not.
pub(super) fn notified_transcript(
    client: &aws_sdk_s3::Client,
    location: &S3SourceConfig,
    notification: &Notification<'_>,
    cursors: &Cursors,
) -> Option<Notified> {
    match notification {
        Notification::ObjectCreated(object)
            if object.key.ends_with(".log") && location.holds(object.bucket, object.key) =>
        {
            Some(Notified::Session(pending_s3(client, object, cursors)))
        }
        _ => None,
    }
}

/// An S3 transcript to read.
#[derive(Debug)]
struct S3Work {
    client: aws_sdk_s3::Client,
    bucket: String,
    key: String,
    /// ETag at listing time.
    etag: String,
    /// LastModified (µs).
    observed_at: Option<i64>,
}

#[async_trait::async_trait]
impl Work for S3Work {
    fn source_ref(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.key)
    }

    async fn fetch(self: Box<Self>, _cursors: &Cursors) -> anyhow::Result<Fetched> {
        fetch_s3(&self.client, &self.bucket, &self.key, &self.etag, self.observed_at).await
    }
}

/// Lists the objects under `prefix` whose keys end in one of `suffixes`, every page.
pub(super) async fn list_objects(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    prefix: &str,
    suffixes: &[&str],
) -> anyhow::Result<Vec<aws_sdk_s3::types::Object>> {
    let mut found = Vec::new();
    let mut pages = client.list_objects_v2().bucket(bucket).prefix(prefix).into_paginator().send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| {
            IngestError::from_sdk(&format!("failed to list s3://{bucket}/{prefix}"), e)
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

/// Returns an S3 object's ETag and size now, as a [`RawObject`] whose bytes are streamed at
/// that ETag (`crate::raw`); `None` when it was deleted since it was listed or notified.
pub(super) async fn head_s3(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    listed_etag: &str,
) -> anyhow::Result<Option<(String, RawObject)>> {
    let source_ref = format!("s3://{bucket}/{key}");
    let head = match client.head_object().bucket(bucket).key(key).send().await {
        Ok(head) => head,
        Err(error) => {
            let error = IngestError::from_sdk(&format!("failed to fetch {source_ref}"), error);
            if error.kind() == IngestErrorKind::NotFound {
                return Ok(None);
            }
            return Err(error.into());
        }
    };
    let etag = head.e_tag().unwrap_or(listed_etag).to_string();
    let len = head.content_length().unwrap_or(0).max(0) as u64;
    let location = ObjectLocation::S3 {
        client: client.clone(),
        bucket: bucket.to_string(),
        key: key.to_string(),
        etag: etag.clone(),
    };
    Ok(Some((etag, RawObject { location, len })))
}

/// Lists S3 objects whose keys end in `.log` under `prefix`, skipping those whose ETag the
/// cursors already hold.
pub async fn list_s3(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    prefix: &str,
    cursors: &Cursors,
) -> anyhow::Result<Vec<Pending>> {
    let mut pending = Vec::new();
    for object in list_objects(client, bucket, prefix, &[".log"]).await? {
        let Some(key) = object.key() else { continue };
        let observed_at = object
            .last_modified()
            .and_then(|t| t.to_millis().ok())
            .and_then(|ms| ms.checked_mul(1000));
        let listed = S3Object {
            bucket,
            key,
            etag: object.e_tag().unwrap_or_default(),
            size: object.size().unwrap_or(0).max(0) as u64,
            observed_at,
        };
        pending.extend(pending_s3(client, &listed, cursors));
    }
    Ok(pending)
}

/// An S3 object as a listing or an event notification names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Object<'a> {
    /// Bucket.
    pub bucket: &'a str,
    /// Key (decoded).
    pub key: &'a str,
    /// ETag, quoted as S3 returns it.
    pub etag: &'a str,
    /// Size in bytes.
    pub size: u64,
    /// LastModified or the event's time (µs).
    pub observed_at: Option<i64>,
}

/// Returns the work for one S3 transcript object: none when the cursors hold its ETag, a
/// refusal when its name is no session id or it is too large.
pub fn pending_s3(
    client: &aws_sdk_s3::Client,
    object: &S3Object<'_>,
    cursors: &Cursors,
) -> Option<Pending> {
    let S3Object { bucket, key, etag, size, observed_at } = *object;
    let source_ref = format!("s3://{bucket}/{key}");
    if cursors.positions.get(&source_ref).is_some_and(|position| position == etag) {
        return None;
    }
    // A key whose base name is no session id is fetched all the same: its header may name one.
    let refused = (size > MAX_OBJECT_BYTES)
        .then(|| format!("{source_ref} is {size} bytes, over the {MAX_OBJECT_BYTES}-byte limit"));
    if let Some(reason) = refused {
        let source = SessionSource::S3.as_str();
        let position = etag.to_string();
        return Some(Box::new(Refused(BadInput {
            source,
            source_ref,
            position,
            raw: Raw::from(Vec::new()),
            reason,
        })));
    }
    Some(Box::new(S3Work {
        client: client.clone(),
        bucket: bucket.to_string(),
        key: key.to_string(),
        etag: etag.to_string(),
        observed_at,
    }))
}

/// Reads one S3 transcript. Its cursor position is the ETag of the bytes read (an object
/// rewritten since the listing is read as it is now; one deleted since is
/// [`Fetched::Unchanged`]).
pub async fn fetch_s3(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    listed_etag: &str,
    observed_at: Option<i64>,
) -> anyhow::Result<Fetched> {
    let source_ref = format!("s3://{bucket}/{key}");
    // Its bytes are streamed at the ETag it has now when parsed and sealed (`crate::raw`).
    let Some((etag, object)) = head_s3(client, bucket, key, listed_etag).await? else {
        return Ok(Fetched::Unchanged);
    };
    // A key whose base name is no session id: the id its header names, if any.
    let named = session_id_of(key);
    let session_id = match name_is_session_id(named.as_deref()) {
        true => named,
        false => {
            let range = format!("bytes=0-{}", HEADER_PROBE_BYTES - 1);
            let request = client.get_object().bucket(bucket).key(key).range(range).if_match(&etag);
            let response = request.send().await.map_err(|e| {
                IngestError::from_sdk(&format!("failed to fetch {source_ref:?} at ETag {etag}"), e)
            })?;
            let head = response.body.collect().await.map_err(|error| {
                let reason = format!("failed to read {source_ref:?}: {error}");
                IngestError::new(IngestErrorKind::Unavailable, reason)
            })?;
            transcript_session_id(named, &head.into_bytes())
        }
    };
    let Some(session_id) = session_id else {
        return Ok(Fetched::Bad(BadInput {
            source: SessionSource::S3.as_str(),
            reason: format!(
                "{source_ref:?}: key base name is not a session id, nor does a header name one"
            ),
            source_ref,
            position: etag,
            raw: Raw::from(Vec::new()),
        }));
    };
    let len = object.len;
    if len > MAX_OBJECT_BYTES {
        return Ok(Fetched::Bad(BadInput {
            source: SessionSource::S3.as_str(),
            reason: format!("{source_ref} is {len} bytes, over the {MAX_OBJECT_BYTES}-byte limit"),
            source_ref,
            position: etag,
            raw: Raw::from(Vec::new()),
        }));
    }
    Ok(Fetched::Session(SessionInput {
        session_id,
        source: SessionSource::S3,
        source_ref,
        position: etag,
        form: InputForm::S3Transcript,
        raw: Raw::Object(object),
        observed_at,
    }))
}
