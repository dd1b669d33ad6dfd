//! What may reach a log.

/// Whether an event may be written to a log: anything from sessionlake's own crates (which
/// never log plaintext, at any level), and from other crates (the AWS SDK, hyper, h2, rustls)
/// nothing finer than DEBUG. At TRACE they print request and response bodies, which hold
/// command text and output (CloudWatch `GetLogEvents`, S3 `GetObject`) and key material (KMS
/// `GenerateDataKey`, `Decrypt`), whatever level the operator asked for.
pub fn loggable(metadata: &tracing::Metadata<'_>) -> bool {
    *metadata.level() <= tracing::Level::DEBUG || metadata.target().starts_with("sessionlake")
}
