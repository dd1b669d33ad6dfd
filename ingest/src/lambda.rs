//! The AWS Lambda handler: the same core as the service, driven by events instead of polls.
//!
//! [`LambdaHandler::handle`] takes an event as JSON:
//! - a CloudWatch Logs subscription payload (`{"awslogs":{"data":…}}`: base64 of gzip JSON,
//!   decompressed within [`MAX_PAYLOAD_BYTES`] so that a gzip bomb is refused, not inflated).
//!   Events of a configured session log group (`sources.cloudwatch`) name a session's stream,
//!   which is read whole (as the service reads a stream that changed) and written as a new
//!   version; events of any other group are CloudTrail events, written to the `access` table
//!   (and enriching the sessions they name, see [`crate::enrich`]);
//! - S3 event records (`{"Records":[…]}` from an S3 trigger): created objects of a configured
//!   S3 source (`sources.s3`: bucket, prefix, `*.log`) are transcripts, of a CloudTrail source
//!   (`sources.cloudtrail`) are CloudTrail files; others are ignored.
//!
//! Each event is committed before the handler returns, in the service's order (objects, then
//! the manifest, then the cursors). An event that is neither is quarantined (encrypted, under
//! `quarantine/lambda/`) and the handler succeeds: retrying it cannot help. A failure that may
//! pass (the store, S3, CloudWatch Logs or KMS unavailable) is returned, so that Lambda
//! retries the event; the lake state is then read again at the next event, as another writer
//! may have committed meanwhile. Run the function with reserved concurrency 1 (one writer).

use std::io::Read as _;

use anyhow::Context as _;
use base64::Engine as _;
use serde_json::Value;
use sessionlake_storage::cursors::Cursors;
use sessionlake_storage::store::sha256_hex;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::lake_writer::Input;
use crate::service::{Ingestor, PollReport};
use crate::sources::cloudtrail::InlineTrail;
use crate::sources::s3_queue::created_objects;
use crate::sources::{
    BadInput, Notification, Notified, Pending, S3Object, Source, TrailInput, TrailPending,
};
use crate::telemetry::Health;

/// Largest decompressed CloudWatch Logs subscription payload (CloudWatch sends at most 1 MB of
/// events per payload; a larger one is refused as a gzip bomb).
pub const MAX_PAYLOAD_BYTES: u64 = 16 * 1024 * 1024;
/// Largest `awslogs.data` accepted, base64 (Lambda's own limit for an event is 6 MB).
const MAX_ENCODED_BYTES: usize = 8 * 1024 * 1024;
/// Quarantine folder of events that are neither kind.
pub const LAMBDA_SOURCE: &str = "lambda";

/// What one event asks for.
#[derive(Default)]
pub struct EventWork {
    /// Sessions to read and write.
    pub sessions: Vec<Pending>,
    /// CloudTrail files or events to read into the `access` table.
    pub trails: Vec<TrailPending>,
}

/// Decodes `awslogs.data`: base64, then gzip, refusing more than [`MAX_PAYLOAD_BYTES`].
pub fn decode_awslogs(data: &str) -> Result<Vec<u8>, String> {
    if data.len() > MAX_ENCODED_BYTES {
        return Err(format!("awslogs.data is {} bytes, over {MAX_ENCODED_BYTES}", data.len()));
    }
    let compressed = base64::engine::general_purpose::STANDARD
        .decode(data.trim())
        .map_err(|error| format!("awslogs.data is not base64: {error}"))?;
    let decoder = flate2::read::GzDecoder::new(compressed.as_slice());
    let mut payload = Vec::new();
    sessionlake_storage::decompress::bounded(decoder, MAX_PAYLOAD_BYTES, "awslogs.data")
        .read_to_end(&mut payload)
        .map_err(|error| format!("awslogs.data is not a gzip payload: {error}"))?;
    Ok(payload)
}

/// Returns the work of a Lambda `event` for `sources` (the first that claims a notification
/// reads it); a reason when the event is neither a subscription payload nor S3 event records.
pub fn event_work(
    event: &Value,
    sources: &[Box<dyn Source>],
    cursors: &Cursors,
) -> Result<EventWork, String> {
    let mut work = EventWork::default();
    let mut notify = |notification: Notification<'_>| {
        match sources.iter().find_map(|source| source.notified(&notification, cursors)) {
            Some(Notified::Session(pending)) => work.sessions.extend(pending),
            Some(Notified::Trail(trail)) => work.trails.push(trail),
            None => return false,
        }
        true
    };
    if let Some(data) = event.pointer("/awslogs/data") {
        let data = data.as_str().ok_or("awslogs.data is not text")?;
        let payload = decode_awslogs(data)?;
        let parsed: Value = serde_json::from_slice(&payload).map_err(|error| {
            let why = sessionlake_schemas::json_error_position(&error);
            format!("awslogs.data is not JSON: {why}")
        })?;
        if parsed.get("messageType").and_then(Value::as_str) == Some("CONTROL_MESSAGE") {
            return Ok(work);
        }
        let text = |field: &str| parsed.get(field).and_then(Value::as_str);
        let (Some(group), Some(stream)) = (text("logGroup"), text("logStream")) else {
            return Err("the subscription payload has no logGroup or logStream".to_string());
        };
        let events = parsed.get("logEvents").and_then(Value::as_array);
        let first_id = events
            .and_then(|events| events.first())
            .and_then(|event| event.get("id"))
            .and_then(Value::as_str)
            .unwrap_or_default();
        if !notify(Notification::Subscription { group, stream, first_id }) {
            // One payload of a trail's log group: its events become one `access` input.
            let source_ref = format!("cwl://{group}/{stream}#{first_id}");
            let position = sha256_hex(&payload);
            work.trails.push(Box::new(InlineTrail(TrailInput {
                source_ref,
                position,
                raw: payload.into(),
                expected: None,
            })));
        }
        return Ok(work);
    }
    if event.get("Records").is_none() {
        return Err("neither a CloudWatch Logs subscription payload nor S3 event records".into());
    }
    for object in created_objects(event)? {
        // Objects of no source are ignored.
        notify(Notification::ObjectCreated(S3Object {
            bucket: &object.bucket,
            key: &object.key,
            etag: &object.etag,
            size: object.size,
            observed_at: object.event_time,
        }));
    }
    Ok(work)
}

/// What one event did.
#[derive(Debug, Default, serde::Serialize)]
pub struct EventReport {
    /// Sessions written.
    pub sessions: usize,
    /// Commands written.
    pub commands: usize,
    /// CloudTrail access events written.
    pub access_events: usize,
    /// Inputs quarantined (the event itself, when it was neither kind).
    pub quarantined: usize,
    /// Earlier session versions replaced.
    pub replaced: usize,
    /// Commits made.
    pub commits: usize,
    /// When the lake's newest commit was made (µs since the epoch), if it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_commit_at: Option<i64>,
    /// What a maintenance event did (`{"sessionlake": "maintenance"}`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub maintenance: Option<crate::maintenance::MaintenanceReport>,
}

/// The Lambda function's state: its configuration and, between events, the open lake.
pub struct LambdaHandler {
    config: Config,
    /// AWS configuration given instead of loaded from the environment.
    sdk_config: Option<aws_config::SdkConfig>,
    ingestor: tokio::sync::Mutex<Option<Ingestor>>,
    /// The retention policy maintenance applies (TOML text), from
    /// `SESSIONLAKE_RETENTION_POLICY`.
    retention_policy: Option<String>,
}

impl LambdaHandler {
    /// Returns a handler for `config` (the lake is opened at the first event), with AWS
    /// configuration from the environment.
    pub fn new(config: Config) -> LambdaHandler {
        let config = Config { follow: false, ..config };
        let retention_policy = std::env::var(crate::maintenance::RETENTION_POLICY_VAR)
            .ok()
            .filter(|policy| !policy.trim().is_empty());
        LambdaHandler { config, sdk_config: None, ingestor: Default::default(), retention_policy }
    }

    /// Applies `policy` (a retention policy's TOML text) at maintenance, whatever the
    /// environment says.
    pub fn with_retention_policy(mut self, policy: Option<String>) -> LambdaHandler {
        self.retention_policy = policy;
        self
    }

    /// Uses `sdk_config` for AWS instead of the environment.
    pub fn with_sdk_config(mut self, sdk_config: aws_config::SdkConfig) -> LambdaHandler {
        self.sdk_config = Some(sdk_config);
        self
    }

    /// Handles one event: reads what it names and commits it (see the module's documentation).
    pub async fn handle(&self, event: Value) -> anyhow::Result<EventReport> {
        let mut slot = self.ingestor.lock().await;
        let mut ingestor = match slot.take() {
            Some(ingestor) => ingestor,
            None if self.sdk_config.is_some() => {
                Ingestor::open_with(&self.config, self.sdk_config.clone()).await?
            }
            None => Ingestor::open(&self.config).await?,
        };
        if crate::maintenance::is_maintenance(&event) {
            // Compaction takes the writer lease itself: this writer gives it up, and the next
            // event opens the lake again.
            let parts = ingestor.lake_parts("maintenance");
            ingestor.finish().await;
            let now = chrono::Utc::now().timestamp_micros();
            let policy = self.retention_policy.as_deref();
            let kms_key_id = self.config.kms_key_id.clone();
            let done = crate::maintenance::run(parts, policy, kms_key_id, now).await?;
            tracing::info!(
                sessions_compacted = done.sessions_compacted,
                retention_applied = done.retention_applied,
                "maintenance done"
            );
            return Ok(EventReport { maintenance: Some(done), ..EventReport::default() });
        }
        let mut result = self.handle_with(&mut ingestor, event).await;
        if let Ok(report) = &mut result {
            report.last_commit_at = Some(ingestor.last_commit_at()).filter(|&at| at != i64::MIN);
        }
        // After a failure the lake is read again: another writer may have committed.
        if result.is_ok() {
            *slot = Some(ingestor);
        }
        result
    }

    async fn handle_with(
        &self,
        ingestor: &mut Ingestor,
        event: Value,
    ) -> anyhow::Result<EventReport> {
        ingestor.flush_cursors().await?;
        let shutdown = CancellationToken::new();
        let health = Health::new(self.config.poll_interval);
        let mut report = PollReport::default();
        let work = match event_work(&event, ingestor.sources(), ingestor.cursors()) {
            Ok(work) => work,
            Err(reason) => {
                let raw = serde_json::to_vec(&event).context("failed to encode the event")?;
                let position = sha256_hex(&raw);
                let source_ref = format!("lambda:event/{}", &position[..32]);
                tracing::warn!(event = %source_ref, reason = %reason, "lambda event quarantined");
                let bad = BadInput {
                    source: LAMBDA_SOURCE,
                    source_ref,
                    position,
                    raw: raw.into(),
                    reason,
                };
                ingestor.commit_inputs(vec![Input::Bad(bad)], &health, &mut report).await?;
                return Ok(summary(&report));
            }
        };
        let trails =
            ingestor.ingest_trail_files(work.trails, &shutdown, &health, &mut report).await;
        if let Err(error) = trails {
            // The batches committed before the failure are followed all the same.
            ingestor.sync_delta().await;
            return Err(error);
        }
        ingestor.ingest_pending(work.sessions, &shutdown, &health, &mut report).await;
        ingestor.sync_delta().await;
        if let Some(failure) = report.failure {
            return Err(failure);
        }
        Ok(summary(&report))
    }
}

fn summary(report: &PollReport) -> EventReport {
    EventReport {
        sessions: report.done.sessions,
        commands: report.done.commands,
        access_events: report.done.access_events,
        quarantined: report.done.quarantined,
        replaced: report.done.replaced,
        commits: report.commits,
        last_commit_at: None,
        maintenance: None,
    }
}

/// The CloudWatch namespace of the function's metrics.
pub const METRICS_NAMESPACE: &str = "sessionlake";

/// Returns the metrics of one event as a line of CloudWatch's embedded metric format (printed
/// on stdout, CloudWatch Logs turns it into metrics of namespace [`METRICS_NAMESPACE`] with the
/// dimension `FunctionName`): `SessionsCommitted`, `CommandsCommitted`, `AccessEventsCommitted`,
/// `QuarantinedInputs`, `Commits`, and `SecondsSinceLastCommit` (the lake's newest commit,
/// the function's counterpart of the service's seconds since its last good poll; left out for a
/// lake with none). Alarms watch the last two.
pub fn metrics_line(report: &EventReport, function_name: &str, now_ms: i64) -> String {
    let mut metrics = vec![
        ("SessionsCommitted", "Count", serde_json::json!(report.sessions)),
        ("CommandsCommitted", "Count", serde_json::json!(report.commands)),
        ("AccessEventsCommitted", "Count", serde_json::json!(report.access_events)),
        ("QuarantinedInputs", "Count", serde_json::json!(report.quarantined)),
        ("Commits", "Count", serde_json::json!(report.commits)),
    ];
    if let Some(at) = report.last_commit_at {
        let seconds = (now_ms.saturating_mul(1000).saturating_sub(at) / 1_000_000).max(0);
        metrics.push(("SecondsSinceLastCommit", "Seconds", serde_json::json!(seconds)));
    }
    let names: Vec<Value> = metrics
        .iter()
        .map(|(name, unit, _)| serde_json::json!({"Name": name, "Unit": unit}))
        .collect();
    let mut line = serde_json::json!({
        "_aws": {
            "Timestamp": now_ms,
            "CloudWatchMetrics": [{
                "Namespace": METRICS_NAMESPACE,
                "Dimensions": [["FunctionName"]],
                "Metrics": names,
            }],
        },
        "FunctionName": function_name,
    });
    for (name, _, value) in metrics {
        line[name] = value;
    }
    line.to_string()
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use super::*;

    fn gzip_base64(bytes: &[u8]) -> String {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        encoder.write_all(bytes).expect("gzip");
        base64::engine::general_purpose::STANDARD.encode(encoder.finish().expect("gzip"))
    }

    /// The metrics line is CloudWatch's embedded metric format: every metric named under
    /// `_aws` is a member of the line, with the function as its dimension.
    #[test]
    fn test_metrics_line_is_embedded_metric_format() {
        let report = EventReport {
            sessions: 2,
            quarantined: 1,
            last_commit_at: Some(1_000_000),
            ..EventReport::default()
        };
        let line: Value =
            serde_json::from_str(&metrics_line(&report, "ingest-fn", 61_000)).expect("JSON");
        let directive = &line["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], METRICS_NAMESPACE);
        assert_eq!(directive["Dimensions"], serde_json::json!([["FunctionName"]]));
        assert_eq!(line["FunctionName"], "ingest-fn");
        assert_eq!(line["_aws"]["Timestamp"], 61_000);
        let names: Vec<&str> = directive["Metrics"]
            .as_array()
            .expect("metrics")
            .iter()
            .map(|metric| metric["Name"].as_str().expect("name"))
            .collect();
        assert!(names.iter().all(|name| line.get(*name).is_some()), "{line}");
        assert_eq!(line["SessionsCommitted"], 2);
        assert_eq!(line["QuarantinedInputs"], 1);
        assert_eq!(line["SecondsSinceLastCommit"], 60);
        // A lake with no commit yet: no age to report.
        let fresh = metrics_line(&EventReport::default(), "ingest-fn", 61_000);
        assert!(!fresh.contains("SecondsSinceLastCommit"), "{fresh}");
    }

    #[test]
    fn test_awslogs_data_decodes_within_bounds() {
        assert_eq!(decode_awslogs(&gzip_base64(b"{\"a\":1}")).as_deref(), Ok(&b"{\"a\":1}"[..]));
        // A gzip bomb: 64 MiB of zeros in well under a megabyte.
        let bomb = gzip_base64(&vec![0u8; 64 * 1024 * 1024]);
        assert!(bomb.len() < 1024 * 1024, "{}", bomb.len());
        let refused = decode_awslogs(&bomb).expect_err("bomb");
        assert!(refused.contains("awslogs.data"), "{refused}");
        let cases = ["not base64!", "aGVsbG8=", ""];
        for data in cases {
            assert!(decode_awslogs(data).is_err(), "{data:?}");
        }
    }
}
