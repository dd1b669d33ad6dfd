//! CloudTrail log files in S3 (`AWSLogs/<account>/CloudTrail/…/*.json.gz`; the digest files
//! beside them are skipped): access events for the `access` table, and the `StartSession`
//! facts (who, where) of sessions. A file's position is its ETag. Local CloudTrail files are
//! read by the local source ([`super::local`]); a CloudWatch Logs subscription of a trail's
//! log group gives [`InlineTrail`]s.

use sessionlake_storage::cursors::Cursors;

use super::s3::{head_s3, list_objects};
use super::{Notification, Notified, S3SourceConfig, Source, TrailInput, TrailPending, TrailWork};
use crate::raw::Raw;

/// Quarantine folder (and `BadInput::source`) of CloudTrail files that cannot be read.
pub const CLOUDTRAIL_SOURCE: &str = "cloudtrail";

/// The folder CloudTrail writes its digest files to (`AWSLogs/<account>/CloudTrail-Digest/…`):
/// they sign the log files and hold no event, so they are skipped, not quarantined.
pub const CLOUDTRAIL_DIGEST_FOLDER: &str = "CloudTrail-Digest";

/// Suffixes of CloudTrail log files (gzip or not).
pub(super) const CLOUDTRAIL_SUFFIXES: [&str; 2] = [".json.gz", ".json"];

/// Whether `key` (an S3 key or a `/`-separated path) is in a CloudTrail digest folder.
pub fn is_cloudtrail_digest(key: &str) -> bool {
    key.split('/').any(|part| part == CLOUDTRAIL_DIGEST_FOLDER)
}

/// Lists CloudTrail files (`.json.gz` or `.json`) under an S3 prefix as `(key, etag)`, without
/// the digest files (in a `CloudTrail-Digest` folder).
pub async fn list_cloudtrail_s3(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    prefix: &str,
) -> anyhow::Result<Vec<(String, String)>> {
    Ok(list_objects(client, bucket, prefix, &CLOUDTRAIL_SUFFIXES)
        .await?
        .into_iter()
        .filter_map(|object| {
            let key = object.key()?.to_string();
            if is_cloudtrail_digest(&key) {
                return None;
            }
            Some((key, object.e_tag().unwrap_or_default().to_string()))
        })
        .collect())
}

/// Finds one CloudTrail file in S3 (its ETag and size now; its bytes are streamed at that
/// ETag when read); its position is the ETag. `None` when it was deleted since it was listed.
pub async fn fetch_trail_s3(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    listed_etag: &str,
) -> anyhow::Result<Option<TrailInput>> {
    let Some((etag, object)) = head_s3(client, bucket, key, listed_etag).await? else {
        return Ok(None);
    };
    Ok(Some(TrailInput {
        source_ref: format!("s3://{bucket}/{key}"),
        position: etag,
        raw: Raw::Object(object),
        expected: None,
    }))
}

/// Lists and finds CloudTrail files in S3.
#[derive(Debug)]
pub struct CloudtrailSource {
    client: aws_sdk_s3::Client,
    location: S3SourceConfig,
}

impl CloudtrailSource {
    /// Returns the source of `location`, read with `client`.
    pub fn new(client: aws_sdk_s3::Client, location: S3SourceConfig) -> CloudtrailSource {
        CloudtrailSource { client, location }
    }

    fn work(&self, bucket: &str, key: &str, etag: &str) -> TrailPending {
        Box::new(S3Trail {
            client: self.client.clone(),
            bucket: bucket.to_string(),
            key: key.to_string(),
            etag: etag.to_string(),
        })
    }
}

#[async_trait::async_trait]
impl Source for CloudtrailSource {
    fn describe(&self) -> String {
        format!("s3://{}/{}", self.location.bucket, self.location.prefix)
    }

    async fn list_trails(&self, cursors: &Cursors) -> anyhow::Result<Vec<TrailPending>> {
        let S3SourceConfig { bucket, prefix, .. } = &self.location;
        let mut pending = Vec::new();
        for (key, etag) in list_cloudtrail_s3(&self.client, bucket, prefix).await? {
            if cursors.positions.get(&format!("s3://{bucket}/{key}")) != Some(&etag) {
                pending.push(self.work(bucket, &key, &etag));
            }
        }
        Ok(pending)
    }

    fn notified(&self, notification: &Notification<'_>, _cursors: &Cursors) -> Option<Notified> {
        match notification {
            Notification::ObjectCreated(object)
                if CLOUDTRAIL_SUFFIXES.iter().any(|suffix| object.key.ends_with(suffix))
                    && self.location.holds(object.bucket, object.key) =>
            {
                Some(Notified::Trail(self.work(object.bucket, object.key, object.etag)))
            }
            _ => None,
        }
    }
}

/// A CloudTrail file in S3, with its ETag at listing or notification time.
struct S3Trail {
    client: aws_sdk_s3::Client,
    bucket: String,
    key: String,
    etag: String,
}

#[async_trait::async_trait]
impl TrailWork for S3Trail {
    fn source_ref(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.key)
    }

    async fn read(self: Box<Self>, _cursors: &Cursors) -> anyhow::Result<Option<TrailInput>> {
        fetch_trail_s3(&self.client, &self.bucket, &self.key, &self.etag).await
    }
}

/// CloudTrail events already read: one CloudWatch Logs subscription payload of a trail's log
/// group.
pub struct InlineTrail(pub TrailInput);

#[async_trait::async_trait]
impl TrailWork for InlineTrail {
    fn source_ref(&self) -> String {
        self.0.source_ref.clone()
    }

    async fn read(self: Box<Self>, cursors: &Cursors) -> anyhow::Result<Option<TrailInput>> {
        let cursor = cursors.positions.get(&self.0.source_ref);
        Ok((cursor != Some(&self.0.position)).then_some(self.0))
    }
}
