//! The metrics and health endpoint: `GET /metrics` (Prometheus text format, rendered by
//! `metrics-exporter-prometheus` from the `metrics` facade) and `GET /healthz`, served with
//! hyper on a loopback address (see [`crate::config::Config::validate`]).
//!
//! `/healthz` answers 200 while the last successful poll (or batch commit, during a long poll)
//! is less than [`HEALTHY_INTERVALS`] poll intervals old, counting from the start before the
//! first one; 503 otherwise, with the age in the body.

use std::convert::Infallible;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Request, Response, StatusCode, header};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::events;

/// Poll intervals without a successful poll after which `/healthz` answers 503.
pub const HEALTHY_INTERVALS: u32 = 3;
/// Time a client gets to send its request headers.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause after a failed `accept` (out of file descriptors), so as not to spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);
/// Content type of the Prometheus text format.
const PROMETHEUS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Returns the handle of the process-wide Prometheus recorder, installing it on first use.
pub fn prometheus_handle() -> anyhow::Result<PrometheusHandle> {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    if let Some(handle) = HANDLE.get() {
        return Ok(handle.clone());
    }
    let recorder = PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder)
        .map_err(|error| anyhow::anyhow!("failed to install the metrics recorder: {error}"))?;
    events::register_metrics();
    Ok(HANDLE.get_or_init(|| handle).clone())
}

/// How recently the service made progress; shared by the poll loop and the endpoint.
#[derive(Debug)]
pub struct Health {
    started: Instant,
    interval: Duration,
    last_success: Mutex<Option<Instant>>,
}

impl Health {
    /// Returns the health of a service that polls every `interval`, started now.
    pub fn new(interval: Duration) -> Health {
        Health { started: Instant::now(), interval, last_success: Mutex::new(None) }
    }

    /// Records a successful poll or commit.
    pub fn record_success(&self) {
        let mut last = self.last_success.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        *last = Some(Instant::now());
    }

    /// Returns the time since the last success (since the start before the first).
    pub fn since_last_success(&self) -> Duration {
        let last = *self.last_success.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        last.unwrap_or(self.started).elapsed()
    }

    /// Returns whether the last success is recent enough.
    pub fn is_healthy(&self) -> bool {
        self.since_last_success() < self.interval.saturating_mul(HEALTHY_INTERVALS)
    }
}

/// Serves `/metrics` and `/healthz` on `listener` until `stop` is cancelled.
pub async fn serve(
    listener: TcpListener,
    handle: PrometheusHandle,
    health: Arc<Health>,
    stop: CancellationToken,
) {
    loop {
        let accepted = tokio::select! {
            () = stop.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(error) => {
                tracing::warn!(error = %error, "metrics endpoint failed to accept a connection");
                tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                continue;
            }
        };
        let handle = handle.clone();
        let health = Arc::clone(&health);
        let connection_stop = stop.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let response = respond(&request, &handle, &health);
                async move { Ok::<_, Infallible>(response) }
            });
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT);
            let connection =
                builder.serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            tokio::pin!(connection);
            tokio::select! {
                result = connection.as_mut() => {
                    if let Err(error) = result {
                        tracing::debug!(error = %error, "metrics connection ended with an error");
                    }
                }
                () = connection_stop.cancelled() => {}
            }
        });
    }
}

fn text(status: StatusCode, content_type: &str, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    if let Ok(value) = header::HeaderValue::from_str(content_type) {
        response.headers_mut().insert(header::CONTENT_TYPE, value);
    }
    response
}

fn respond<B>(
    request: &Request<B>,
    handle: &PrometheusHandle,
    health: &Health,
) -> Response<Full<Bytes>> {
    let plain = "text/plain; charset=utf-8";
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, plain, "only GET\n".to_string());
    }
    match request.uri().path() {
        "/metrics" => {
            metrics::gauge!(events::SECONDS_SINCE_LAST_SUCCESSFUL_POLL)
                .set(health.since_last_success().as_secs_f64());
            handle.run_upkeep();
            text(StatusCode::OK, PROMETHEUS_CONTENT_TYPE, handle.render())
        }
        "/healthz" => {
            let age = health.since_last_success().as_secs();
            if health.is_healthy() {
                text(StatusCode::OK, plain, format!("ok: last successful poll {age}s ago\n"))
            } else {
                text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    plain,
                    format!(
                        "unhealthy: no successful poll for {age}s ({HEALTHY_INTERVALS} poll intervals)\n"
                    ),
                )
            }
        }
        _ => {
            text(StatusCode::NOT_FOUND, plain, "not found: try /metrics or /healthz\n".to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_health_turns_stale_after_three_intervals() {
        let health = Health::new(Duration::from_secs(3600));
        assert!(health.is_healthy(), "a service just started is healthy");
        let Some(started) = Instant::now().checked_sub(Duration::from_secs(10)) else {
            return;
        };
        let stale =
            Health { started, interval: Duration::from_secs(1), last_success: Mutex::new(None) };
        assert!(!stale.is_healthy());
        stale.record_success();
        assert!(stale.is_healthy());
    }
}
