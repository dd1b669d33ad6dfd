//! AWS configuration shared by every binary: the SDK's own credential chain, region and endpoint
//! resolution (`AWS_PROFILE`, SSO, `AWS_ENDPOINT_URL`, …), handed to `object_store` as well, so
//! that the lake and the sources authenticate the same way the AWS CLI does.

use std::sync::Arc;

use async_trait::async_trait;
use aws_credential_types::provider::ProvideCredentials as _;
use object_store::ObjectStore;
use object_store::aws::{AmazonS3Builder, AwsCredential};

use crate::error::{LakeError, LakeResult};

/// Loads the SDK configuration from the environment, with `region` overriding the chain's.
pub async fn load_sdk_config(region: Option<&str>, profile: Option<&str>) -> aws_config::SdkConfig {
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
    if let Some(profile) = profile {
        loader = loader.profile_name(profile);
    }
    if let Some(region) = region {
        loader = loader.region(aws_config::Region::new(region.to_string()));
    }
    loader.load().await
}

/// Returns what a person can do when `message` (an AWS SDK or `object_store` error, in words)
/// says a setting is missing or wrong: no region, no credentials, an endpoint that cannot be
/// reached, a permission the role lacks. Empty otherwise.
pub fn settings_hint(message: &str) -> &'static str {
    let lower = message.to_ascii_lowercase();
    let said = |phrases: &[&str]| phrases.iter().any(|phrase| lower.contains(phrase));
    // A missing region or credentials comes wrapped as a dispatch failure: asked first.
    if said(&["region must be set"]) {
        " (give --region, or set AWS_REGION)"
    } else if said(&[
        "no credentials",
        "credentials not loaded",
        "lacked valid authentication credentials",
    ]) {
        " (no AWS credentials: set AWS_PROFILE or --profile, run `aws configure`, or run where a \
         role is attached)"
    } else if said(&["access denied", "accessdenied", "not authorized to perform"]) {
        " (access denied: the role or user lacks a permission; README.md lists the IAM actions \
         each binary needs)"
    } else if said(&[
        "dispatch failure",
        "error sending request",
        "connection refused",
        "dns error",
    ]) {
        " (the AWS endpoint cannot be reached: check the network, --region, and AWS_ENDPOINT_URL \
         if it is set)"
    } else {
        ""
    }
}

/// Returns the endpoint override for `service` (e.g. `S3`), as the AWS CLI resolves it:
/// `AWS_ENDPOINT_URL_<SERVICE>`, then `AWS_ENDPOINT_URL` (already in `config`).
pub fn endpoint_override(config: &aws_config::SdkConfig, service: &str) -> Option<String> {
    std::env::var(format!("AWS_ENDPOINT_URL_{service}"))
        .ok()
        .filter(|value| !value.is_empty())
        .or_else(|| config.endpoint_url().map(str::to_string))
}

/// Bridges the SDK's credential chain into `object_store`.
#[derive(Debug)]
struct SdkCredentials(aws_credential_types::provider::SharedCredentialsProvider);

#[async_trait]
impl object_store::CredentialProvider for SdkCredentials {
    type Credential = AwsCredential;

    async fn get_credential(&self) -> object_store::Result<Arc<AwsCredential>> {
        let credentials = self.0.provide_credentials().await.map_err(|error| {
            object_store::Error::Unauthenticated { path: String::new(), source: Box::new(error) }
        })?;
        Ok(Arc::new(AwsCredential {
            key_id: credentials.access_key_id().to_string(),
            secret_key: credentials.secret_access_key().to_string(),
            token: credentials.session_token().map(str::to_string),
        }))
    }
}

/// Returns an `object_store` for `bucket` that uses the SDK's region, endpoint and credentials.
pub fn object_store_for_bucket(
    config: &aws_config::SdkConfig,
    bucket: &str,
) -> LakeResult<Arc<dyn ObjectStore>> {
    let mut builder = AmazonS3Builder::new().with_bucket_name(bucket);
    if let Some(region) = config.region() {
        builder = builder.with_region(region.to_string());
    }
    if let Some(endpoint) = endpoint_override(config, "S3") {
        // Emulators and S3-compatible stores: path-style requests, plain HTTP on loopback.
        builder = builder
            .with_allow_http(endpoint.starts_with("http://"))
            .with_virtual_hosted_style_request(false)
            .with_endpoint(endpoint);
    }
    if let Some(provider) = config.credentials_provider() {
        builder = builder.with_credentials(Arc::new(SdkCredentials(provider)));
    }
    let store = builder.build().map_err(|error| {
        LakeError::config(format!("failed to configure s3://{bucket}: {error}"))
    })?;
    Ok(Arc::new(store))
}

#[cfg(test)]
mod tests {
    use super::settings_hint;

    /// Each kind of setting error gets its own hint; a missing region or credentials wins over
    /// the dispatch failure that wraps it; anything else gets none.
    #[test]
    fn test_settings_hints_name_what_to_do() {
        let cases = [
            ("dispatch failure: a region must be set when sending requests", "--region"),
            ("dispatch failure: no credentials in the credential chain", "AWS_PROFILE"),
            ("The operation lacked valid authentication credentials for path", "aws configure"),
            ("AccessDenied: User: arn:aws:iam::1:user/a is not authorized to perform", "IAM"),
            (
                "Error performing GET http://127.0.0.1:1/b in 1.5s - error sending request",
                "reached",
            ),
            ("dispatch failure: io error: Connection refused (os error 111)", "AWS_ENDPOINT_URL"),
        ];
        for (message, expected) in cases {
            assert!(
                settings_hint(message).contains(expected),
                "{message}: {}",
                settings_hint(message)
            );
        }
        assert_eq!(settings_hint("NoSuchKey: the key does not exist"), "");
    }
}
