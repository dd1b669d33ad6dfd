//! S3 Object Lock for the lake's commits: on a bucket with Object Lock enabled, every manifest
//! (and every checkpoint, under `checkpoint/`) is written with a retention, so that nobody, an
//! attacker with the lake's write access included, can delete the committed version or cut the
//! chain back within it.
//!
//! `object_store` 0.13 cannot send the `x-amz-object-lock-mode` and
//! `x-amz-object-lock-retain-until-date` headers ([`object_store::Attribute`] knows only
//! content headers, storage class and `x-amz-meta-*`; tags become `x-amz-tagging`;
//! `PutOptions::extensions` reach only a custom `HttpConnector`; `ClientOptions` default headers
//! go on every request, with one fixed date), so a commit
//! on such a bucket is one `PutObject` through the AWS SDK, with `If-None-Match: *` (the same
//! conditional create as [`LakeStore::put_new`](crate::store::LakeStore::put_new)), the lock
//! mode and the retain-until date. Whether the bucket has Object Lock is asked once per process
//! (`GetObjectLockConfiguration`); a bucket without it is written as before.
//!
//! What Object Lock does and does not do (S3's semantics): the locked *version* cannot be
//! deleted (`DeleteObject` with its version id is refused) nor shortened in governance mode
//! without `s3:BypassGovernanceRetention`, nor at all in compliance mode. A plain `DeleteObject`
//! still adds a delete marker, and a plain `PutObject` a newer version, over the key: the
//! committed bytes stay in the bucket, recoverable, and `sessionlake verify` then reports the
//! manifest missing or altered.

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata as _};
use aws_sdk_s3::primitives::{ByteStream, DateTime};
use aws_sdk_s3::types::{ObjectLockEnabled, ObjectLockMode as SdkLockMode};
use bytes::Bytes;
use sessionlake_schemas::paths;
use tokio::sync::OnceCell;

use crate::error::{LakeError, LakeErrorKind, LakeResult};

/// Default retention of a locked commit: seven years (of 365.25 days), the longest period
/// the example retention policy keeps anything.
pub const DEFAULT_OBJECT_LOCK_DAYS: u32 = 2557;

/// The Object Lock mode commits are written with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ObjectLockMode {
    /// Governance: a principal with `s3:BypassGovernanceRetention` can still remove the lock.
    #[default]
    Governance,
    /// Compliance: nobody can remove the lock or shorten it, the root account included.
    Compliance,
    /// No retention, even on a bucket with Object Lock (its default retention, if any,
    /// still applies).
    Off,
}

impl std::str::FromStr for ObjectLockMode {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.to_ascii_lowercase().as_str() {
            "governance" => Ok(ObjectLockMode::Governance),
            "compliance" => Ok(ObjectLockMode::Compliance),
            "off" => Ok(ObjectLockMode::Off),
            _ => Err(format!("object lock mode {text:?} is not governance, compliance or off")),
        }
    }
}

impl ObjectLockMode {
    fn sdk(self) -> Option<SdkLockMode> {
        match self {
            ObjectLockMode::Governance => Some(SdkLockMode::Governance),
            ObjectLockMode::Compliance => Some(SdkLockMode::Compliance),
            ObjectLockMode::Off => None,
        }
    }
}

/// How commits are locked on a bucket with Object Lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObjectLockSettings {
    /// Lock mode.
    pub mode: ObjectLockMode,
    /// Retention in days from the commit.
    pub days: u32,
}

impl Default for ObjectLockSettings {
    fn default() -> Self {
        ObjectLockSettings { mode: ObjectLockMode::default(), days: DEFAULT_OBJECT_LOCK_DAYS }
    }
}

impl ObjectLockSettings {
    /// Returns the settings `mode` and `days` give, each defaulted when absent; 0 days is
    /// refused (S3 refuses a retain-until date in the past).
    pub fn from_options(mode: Option<ObjectLockMode>, days: Option<u32>) -> LakeResult<Self> {
        let days = days.unwrap_or(DEFAULT_OBJECT_LOCK_DAYS);
        if days == 0 {
            return Err(LakeError::config(
                "object lock days must be at least 1 (use object lock mode off for no retention)",
            ));
        }
        Ok(ObjectLockSettings { mode: mode.unwrap_or_default(), days })
    }
}

/// Whether a lake path is written under Object Lock: manifests and checkpoints.
pub fn is_commit_path(path: &str) -> bool {
    let folder = path.split('/').next().unwrap_or_default();
    folder == paths::MANIFEST_DIR || folder == paths::CHECKPOINT_DIR
}

/// Writes a lake's commits on S3 under Object Lock when its bucket has it.
#[derive(Debug)]
pub struct CommitLock {
    client: aws_sdk_s3::Client,
    bucket: String,
    /// Key prefix of the lake, `""` or ending with `/`.
    prefix: String,
    settings: ObjectLockSettings,
    /// Whether the bucket has Object Lock enabled: asked once, shared by every copy.
    enabled: Arc<OnceCell<bool>>,
}

impl CommitLock {
    /// Returns the lock writer of the lake at `bucket`/`prefix`.
    pub fn new(config: &aws_config::SdkConfig, bucket: &str, prefix: &str) -> Arc<CommitLock> {
        let mut builder = aws_sdk_s3::config::Builder::from(config);
        if let Some(endpoint) = crate::aws::endpoint_override(config, "S3") {
            builder = builder.endpoint_url(endpoint).force_path_style(true);
        }
        let prefix = if prefix.is_empty() { String::new() } else { format!("{prefix}/") };
        Arc::new(CommitLock {
            client: aws_sdk_s3::Client::from_conf(builder.build()),
            bucket: bucket.to_string(),
            prefix,
            settings: ObjectLockSettings::default(),
            enabled: Arc::new(OnceCell::new()),
        })
    }

    /// Returns a copy that locks with `settings` (the bucket is still asked only once).
    pub fn with_settings(&self, settings: ObjectLockSettings) -> Arc<CommitLock> {
        Arc::new(CommitLock {
            client: self.client.clone(),
            bucket: self.bucket.clone(),
            prefix: self.prefix.clone(),
            settings,
            enabled: Arc::clone(&self.enabled),
        })
    }

    /// Returns the settings.
    pub fn settings(&self) -> ObjectLockSettings {
        self.settings
    }

    /// Returns whether the bucket has Object Lock enabled, asking S3 the first time. A bucket
    /// whose configuration cannot be read (no `s3:GetBucketObjectLockConfiguration`) is taken
    /// as without, with a warning; a failure to reach S3 is an error and is asked again.
    pub async fn bucket_locks(&self) -> LakeResult<bool> {
        self.enabled.get_or_try_init(|| self.ask_bucket()).await.copied()
    }

    /// Asks S3 whether the bucket has Object Lock enabled (see [`CommitLock::bucket_locks`]).
    async fn ask_bucket(&self) -> LakeResult<bool> {
        let bucket = &self.bucket;
        let answer = self.client.get_object_lock_configuration().bucket(bucket).send().await;
        let output = match answer {
            Ok(output) => output,
            Err(error) => {
                let code = error.code().unwrap_or_default().to_string();
                let status = error.raw_response().map(|raw| raw.status().as_u16());
                if code == "ObjectLockConfigurationNotFoundError" || status == Some(404) {
                    tracing::info!(%bucket, enabled = false, "object lock checked");
                    return Ok(false);
                }
                let detail = DisplayErrorContext(&error);
                if status == Some(403) {
                    tracing::warn!(
                        %bucket,
                        error = %detail,
                        "object lock configuration not readable: commits written without retention"
                    );
                    return Ok(false);
                }
                return Err(LakeError::new(
                    LakeErrorKind::Unavailable,
                    format!(
                        "failed to read the object lock configuration of s3://{bucket}: {detail}"
                    ),
                ));
            }
        };
        let lock = output.object_lock_configuration();
        let enabled =
            lock.and_then(|lock| lock.object_lock_enabled()) == Some(&ObjectLockEnabled::Enabled);
        let default_retention =
            lock.and_then(|lock| lock.rule()).and_then(|rule| rule.default_retention());
        if default_retention.is_some() {
            // Every object is locked then, session key records included.
            tracing::warn!(
                %bucket,
                "the bucket locks every object by default: shred cannot destroy session keys \
                 within that retention (lock only the manifests: no default retention)"
            );
        }
        tracing::info!(%bucket, enabled, "object lock checked");
        Ok(enabled)
    }

    /// Creates the commit object `path` (lake path) with `bytes`, only if nothing is there,
    /// locked until `settings.days` from now. `Ok(false)` when the bucket has no Object Lock
    /// or the mode is off: the caller writes it as any other object.
    pub async fn put_new_locked(&self, path: &str, bytes: Bytes) -> LakeResult<bool> {
        let Some(mode) = self.settings.mode.sdk() else {
            return Ok(false);
        };
        if !self.bucket_locks().await? {
            return Ok(false);
        }
        let key = format!("{}{path}", self.prefix);
        let described = format!("s3://{}/{key}", self.bucket);
        let retention = Duration::from_secs(u64::from(self.settings.days) * 86_400);
        let until = std::time::SystemTime::now() + retention;
        let answer = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(&key)
            .if_none_match("*")
            .object_lock_mode(mode)
            .object_lock_retain_until_date(DateTime::from(until))
            .body(ByteStream::from(bytes))
            .send()
            .await;
        match answer {
            Ok(_) => {
                let ObjectLockSettings { mode: lock_mode, days } = self.settings;
                tracing::debug!(object = %described, mode = ?lock_mode, days, "commit locked");
                Ok(true)
            }
            Err(error) => {
                let code = error.code().unwrap_or_default().to_string();
                let status = error.raw_response().map(|raw| raw.status().as_u16());
                let kind = match (status, code.as_str()) {
                    (Some(412), _) | (Some(409), _) | (_, "PreconditionFailed") => {
                        LakeErrorKind::AlreadyExists
                    }
                    (Some(403), _) => LakeErrorKind::Denied,
                    (Some(400), _) => LakeErrorKind::Config,
                    _ => LakeErrorKind::Unavailable,
                };
                Err(LakeError::new(
                    kind,
                    format!(
                        "failed to create {described} under object lock ({:?}, {} days): {}",
                        self.settings.mode,
                        self.settings.days,
                        DisplayErrorContext(&error)
                    ),
                ))
            }
        }
    }
}

/// The stored versions of one commit object on a bucket with Object Lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitVersions {
    /// Lake path of the object.
    pub path: String,
    /// Version ids of the object's versions, oldest first (the first is the commit).
    pub versions: Vec<String>,
    /// The newest version is a delete marker: the key reads as absent.
    pub deleted: bool,
}

impl CommitLock {
    /// Lists the versions of every object under `folder` (a lake folder such as `manifest`)
    /// whose path sorts after `after` (all with `None`), delete markers included, by path.
    /// `None` when the bucket has no Object Lock.
    pub async fn versions(
        &self,
        folder: &str,
        after: Option<&str>,
    ) -> LakeResult<Option<Vec<CommitVersions>>> {
        if !self.bucket_locks().await? {
            return Ok(None);
        }
        let listed_prefix = format!("{}{folder}/", self.prefix);
        // By key: its object versions (time, id), and whether a delete marker is the newest.
        let mut by_key: std::collections::BTreeMap<String, (Vec<(DateTime, String)>, bool)> =
            std::collections::BTreeMap::new();
        let mut markers = (after.map(|path| format!("{}{path}", self.prefix)), None);
        loop {
            let page = self
                .client
                .list_object_versions()
                .bucket(&self.bucket)
                .prefix(&listed_prefix)
                .set_key_marker(markers.0.take())
                .set_version_id_marker(markers.1.take())
                .send()
                .await
                .map_err(|error| {
                    LakeError::new(
                        LakeErrorKind::Unavailable,
                        format!(
                            "failed to list the versions of s3://{}/{listed_prefix}: {}",
                            self.bucket,
                            DisplayErrorContext(&error)
                        ),
                    )
                })?;
            for version in page.versions() {
                let (Some(key), Some(id)) = (version.key(), version.version_id()) else {
                    continue;
                };
                let at = version.last_modified().copied().unwrap_or(DateTime::from_secs(0));
                let entry = by_key.entry(key.to_string()).or_default();
                entry.0.push((at, id.to_string()));
            }
            for marker in page.delete_markers() {
                let Some(key) = marker.key() else { continue };
                let entry = by_key.entry(key.to_string()).or_default();
                if marker.is_latest() == Some(true) {
                    entry.1 = true;
                }
            }
            if page.is_truncated() != Some(true) || page.next_key_marker().is_none() {
                break;
            }
            markers = (
                page.next_key_marker().map(str::to_string),
                page.next_version_id_marker().map(str::to_string),
            );
        }
        let found = by_key
            .into_iter()
            .filter_map(|(key, (mut versions, deleted))| {
                let path = key.strip_prefix(&self.prefix)?.to_string();
                versions.sort_by_key(|(at, _)| *at);
                let versions = versions.into_iter().map(|(_, id)| id).collect();
                Some(CommitVersions { path, versions, deleted })
            })
            .collect();
        Ok(Some(found))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_commit_paths_and_settings() {
        for (path, locked) in [
            ("manifest/00000000000000000012.json", true),
            ("checkpoint/00000000000000000012.json", true),
            ("commands/dt=2026-03-14/a.parquet", false),
            ("manifests/x", false),
            ("state/lease.json", false),
        ] {
            assert_eq!(is_commit_path(path), locked, "{path}");
        }
        assert_eq!(
            ObjectLockSettings::from_options(None, None).expect("default"),
            ObjectLockSettings { mode: ObjectLockMode::Governance, days: 2557 }
        );
        assert!(ObjectLockSettings::from_options(None, Some(0)).is_err());
        assert_eq!("COMPLIANCE".parse::<ObjectLockMode>(), Ok(ObjectLockMode::Compliance));
        assert!("legal-hold".parse::<ObjectLockMode>().is_err());
    }
}
