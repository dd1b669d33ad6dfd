//! The scheduled upkeep of a lake that the Lambda function runs when a schedule sends it
//! `{"sessionlake": "maintenance"}` (`deploy/template.yaml`): `compact` (session versions a day
//! old), then `retention apply` with the policy in `SESSIONLAKE_RETENTION_POLICY` (its TOML
//! text; no policy, no retention), then the tables' Delta logs brought to the new head.
//!
//! It runs as the ingest writer of the same process, with its store, keys, signer and pins,
//! after that writer gave its lease up (compaction takes the lease itself): a function with
//! reserved concurrency 1 never compacts while it ingests.

use anyhow::Context as _;
use serde::Serialize;
use serde_json::Value;
use sessionlake_keep::compact::{self, CompactObserver, CompactOptions};
use sessionlake_keep::lake::{Lake, LakeParts};
use sessionlake_keep::policy::Policy;
use sessionlake_keep::retention;

/// The environment variable that holds the retention policy (TOML text).
pub const RETENTION_POLICY_VAR: &str = "SESSIONLAKE_RETENTION_POLICY";

/// Session versions compacted: those committed at least this long ago (µs), as `sessionlake
/// compact`'s default (a stream still growing is left alone).
const COMPACT_MIN_AGE: i64 = 24 * 3600 * 1_000_000;

/// Returns whether `event` asks for maintenance: `{"sessionlake": "maintenance"}`, as the
/// schedule's constant input sends it.
pub fn is_maintenance(event: &Value) -> bool {
    event.get("sessionlake").and_then(Value::as_str) == Some("maintenance")
}

/// What a maintenance run did.
#[derive(Debug, Default, Serialize)]
pub struct MaintenanceReport {
    /// Session versions compacted, and the files that replaced them.
    pub sessions_compacted: usize,
    pub files_compacted: usize,
    /// Retention lines applied (sessions or objects), and held ones left alone.
    pub retention_applied: usize,
    pub retention_held: usize,
    /// The chain sequence retention committed, if it did.
    pub retention_commit: Option<u64>,
    /// Whether a policy was given.
    pub retention_policy: bool,
}

struct Quiet;
impl CompactObserver for Quiet {}

/// Compacts, applies the retention policy `policy` (TOML text; `None`: none), and brings the
/// Delta logs up to date, on the lake `parts` opens. `kms_key_id` wraps the compacted files'
/// keys (else the keyring).
pub async fn run(
    parts: LakeParts,
    policy: Option<&str>,
    kms_key_id: Option<String>,
    now: i64,
) -> anyhow::Result<MaintenanceReport> {
    let policy = policy
        .map(Policy::parse)
        .transpose()
        .with_context(|| format!("{RETENTION_POLICY_VAR} is not a valid retention policy"))?;
    let mut lake = Lake::open(parts).await?;
    let mut report = MaintenanceReport { retention_policy: policy.is_some(), ..Default::default() };
    let options = CompactOptions { min_age: COMPACT_MIN_AGE, kms_key_id, ..Default::default() };
    let compacted = compact::compact(&mut lake, &options, &Quiet).await.context("compact")?;
    report.sessions_compacted = compacted.sessions;
    report.files_compacted = compacted.files_after;
    if let Some(policy) = &policy {
        let as_of = chrono::DateTime::from_timestamp_micros(now)
            .map(|time| time.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
            .unwrap_or_default();
        let provenance =
            retention::Provenance { policy, policy_file: RETENTION_POLICY_VAR, as_of: &as_of };
        let applied = retention::apply_due(&mut lake, provenance, now, &retention::Unattended)
            .await
            .context("retention apply")?;
        report.retention_held = applied.planned.iter().filter(|p| p.held_by.is_some()).count();
        report.retention_applied = applied.planned.len() - report.retention_held;
        report.retention_commit = applied.applied.map(|done| done.link.manifest.body.sequence);
    }
    Ok(report)
}
