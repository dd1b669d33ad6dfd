//! Errors of the ingest crate, classified once at the edge (AWS SDK, lake) so that logs, metrics
//! and the service loop can branch on the class: retry next poll, or stop.

use std::fmt;

use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use sessionlake_keep::KeepError;
use sessionlake_storage::{LakeError, LakeErrorKind};

/// What went wrong, as an operator sees it. The `as_str` names are the `kind` label of the
/// `sessionlake_ingest_errors_total` metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum IngestErrorKind {
    /// The service asked us to slow down (throttling, HTTP 429, `SlowDown`), after the SDK's
    /// retries.
    Throttled,
    /// The service or the network failed (HTTP 5xx, timeout, connection), after retries.
    Unavailable,
    /// Credentials or permissions (HTTP 401/403, `AccessDenied`, KMS policy).
    Denied,
    /// A bucket, log group or object that is not there.
    NotFound,
    /// Any other refused request (HTTP 4xx).
    Request,
    /// Writing to the lake failed (objects, manifest, cursors).
    Lake,
    /// A local file or folder could not be read.
    Io,
    /// Anything else (a task that panicked, a bug).
    Internal,
}

impl IngestErrorKind {
    /// Every kind, in label order (each is registered at 0 when the service starts).
    pub const ALL: [IngestErrorKind; 8] = [
        IngestErrorKind::Throttled,
        IngestErrorKind::Unavailable,
        IngestErrorKind::Denied,
        IngestErrorKind::NotFound,
        IngestErrorKind::Request,
        IngestErrorKind::Lake,
        IngestErrorKind::Io,
        IngestErrorKind::Internal,
    ];

    /// Returns the label used in logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            IngestErrorKind::Throttled => "throttled",
            IngestErrorKind::Unavailable => "unavailable",
            IngestErrorKind::Denied => "denied",
            IngestErrorKind::NotFound => "not_found",
            IngestErrorKind::Request => "request",
            IngestErrorKind::Lake => "lake",
            IngestErrorKind::Io => "io",
            IngestErrorKind::Internal => "internal",
        }
    }
}

impl fmt::Display for IngestErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error with its class; the message names the object it is about.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct IngestError {
    kind: IngestErrorKind,
    message: String,
}

impl IngestError {
    /// Returns a new error of `kind`.
    pub fn new(kind: IngestErrorKind, message: impl Into<String>) -> Self {
        IngestError { kind, message: message.into() }
    }

    /// Returns the class.
    pub fn kind(&self) -> IngestErrorKind {
        self.kind
    }

    /// Converts an AWS SDK error once: classified by variant, HTTP status and error code, with
    /// the SDK's full text (`DisplayErrorContext`) after `action`.
    pub fn from_sdk<E>(action: &str, error: SdkError<E, HttpResponse>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let kind = classify_sdk(&error);
        IngestError::new(kind, format!("{action}: {}", sdk_message(&error)))
    }
}

/// Returns one line for an AWS SDK error: the service's error code and message, then each
/// cause once (never the SDK's `Debug` dump), and a hint where the cause is a setting the
/// user can fix (no region, no credentials).
fn sdk_message<E>(error: &SdkError<E, HttpResponse>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let mut clauses: Vec<String> = Vec::new();
    if let SdkError::ServiceError(context) = error {
        // The code the SDK parsed, else the one the response's XML body names (a response the
        // SDK could not match to an operation error: `unhandled error`).
        let body = context.raw().body().bytes().unwrap_or_default();
        let text = String::from_utf8_lossy(body);
        let from_body = text
            .split_once("<Code>")
            .and_then(|(_, rest)| rest.split_once("</Code>"))
            .map(|(code, _)| code.trim())
            .filter(|code| !code.is_empty() && code.len() < 64);
        // A response with no body (to a HEAD) names its error in a header, if anywhere.
        let headers = context.raw().headers();
        let from_header = headers.get("x-amz-error-code").or(headers.get("x-amzn-errortype"));
        let status = context.raw().status().as_u16();
        let code = context.err().code().or(from_body).or(from_header);
        match (code, context.err().message()) {
            (Some(code), Some(message)) => clauses.push(format!("{code}: {message}")),
            (Some(code), None) => clauses.push(format!("{code} (HTTP {status})")),
            (None, _) => clauses.push(format!("HTTP {status}")),
        }
    }
    let mut cause: Option<&dyn std::error::Error> = Some(error);
    while let Some(current) = cause {
        // One line: the credential chain lists each provider it tried on a line of its own.
        let text = current.to_string();
        let text = text.lines().next().unwrap_or_default().trim_end_matches(" Attempted:");
        let text = text.to_string();
        if !text.is_empty() && !clauses.iter().any(|said| said.contains(&text)) {
            clauses.push(text);
        }
        cause = current.source();
    }
    let joined = clauses.join(": ");
    let hint = sessionlake_storage::aws::settings_hint(&joined);
    format!("{joined}{hint}")
}

/// Throttling error codes across AWS services (the SDK's own list, plus S3's `SlowDown`).
const THROTTLING_CODES: [&str; 12] = [
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottledException",
    "TooManyRequestsException",
    "ProvisionedThroughputExceededException",
    "TransactionInProgressException",
    "RequestLimitExceeded",
    "BandwidthLimitExceeded",
    "LimitExceededException",
    "RequestThrottled",
    "SlowDown",
];

/// Classifies an SDK error by variant, then error code, then HTTP status.
fn classify_sdk<E: ProvideErrorMetadata>(error: &SdkError<E, HttpResponse>) -> IngestErrorKind {
    let code = match error {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) => {
            return IngestErrorKind::Unavailable;
        }
        SdkError::ConstructionFailure(_) => return IngestErrorKind::Internal,
        SdkError::ServiceError(context) => context.err().code(),
        _ => None,
    };
    let status = error.raw_response().map(|response| response.status().as_u16());
    classify_code_and_status(code, status)
}

fn classify_code_and_status(code: Option<&str>, status: Option<u16>) -> IngestErrorKind {
    if code.is_some_and(|code| THROTTLING_CODES.contains(&code)) || status == Some(429) {
        return IngestErrorKind::Throttled;
    }
    if code.is_some_and(|code| {
        code.starts_with("AccessDenied")
            || code == "UnrecognizedClientException"
            || code == "InvalidAccessKeyId"
            || code == "SignatureDoesNotMatch"
            || code == "ExpiredToken"
    }) || matches!(status, Some(401 | 403))
    {
        return IngestErrorKind::Denied;
    }
    if code.is_some_and(|code| {
        code.starts_with("NoSuch") || code == "ResourceNotFoundException" || code == "NotFound"
    }) || status == Some(404)
    {
        return IngestErrorKind::NotFound;
    }
    match status {
        Some(500..=599) | None => IngestErrorKind::Unavailable,
        Some(_) => IngestErrorKind::Request,
    }
}

/// Returns the class of any error of this crate: the first classified cause in its chain.
pub fn kind_of(error: &anyhow::Error) -> IngestErrorKind {
    for cause in error.chain() {
        if let Some(ingest) = cause.downcast_ref::<IngestError>() {
            return ingest.kind();
        }
        // A lake error the keep library passes on as it is sits under its `KeepError`, whose
        // chain of causes starts below it.
        let passed = || cause.downcast_ref::<KeepError>().and_then(KeepError::lake);
        if let Some(lake) = cause.downcast_ref::<LakeError>().or_else(passed) {
            return match lake.kind() {
                LakeErrorKind::Denied => IngestErrorKind::Denied,
                // The store or KMS down (after retries): the same class as a source down.
                LakeErrorKind::Unavailable => IngestErrorKind::Unavailable,
                _ => IngestErrorKind::Lake,
            };
        }
        if cause.downcast_ref::<std::io::Error>().is_some() {
            return IngestErrorKind::Io;
        }
    }
    IngestErrorKind::Internal
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_codes_and_statuses_are_classified() {
        let cases = [
            (Some("SlowDown"), Some(503), IngestErrorKind::Throttled),
            (Some("ThrottlingException"), Some(400), IngestErrorKind::Throttled),
            (None, Some(429), IngestErrorKind::Throttled),
            (Some("AccessDenied"), Some(403), IngestErrorKind::Denied),
            (None, Some(403), IngestErrorKind::Denied),
            (Some("NoSuchBucket"), Some(404), IngestErrorKind::NotFound),
            (Some("ResourceNotFoundException"), Some(400), IngestErrorKind::NotFound),
            (Some("InternalError"), Some(500), IngestErrorKind::Unavailable),
            (None, Some(502), IngestErrorKind::Unavailable),
            (Some("InvalidArgument"), Some(400), IngestErrorKind::Request),
        ];
        for (code, status, expected) in cases {
            assert_eq!(classify_code_and_status(code, status), expected, "{code:?} {status:?}");
        }
    }

    #[test]
    fn test_kind_of_finds_the_class_under_context() {
        use anyhow::Context as _;
        let error = Err::<(), _>(IngestError::new(IngestErrorKind::Throttled, "slow"))
            .context("failed to poll")
            .expect_err("error");
        assert_eq!(kind_of(&error), IngestErrorKind::Throttled);
        let io = Err::<(), _>(std::io::Error::other("disk")).context("read").expect_err("error");
        assert_eq!(kind_of(&io), IngestErrorKind::Io);
        assert_eq!(kind_of(&anyhow::anyhow!("x")), IngestErrorKind::Internal);
        let down = LakeError::new(LakeErrorKind::Unavailable, "s3://b/manifest/1.json: timeout");
        let passed = anyhow::Error::from(KeepError::from(down)).context("compact");
        assert_eq!(kind_of(&passed), IngestErrorKind::Unavailable);
    }
}
