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

/// Returns what a person can set when `message` (an AWS SDK error, in words) says a setting is
/// missing: no region, no credentials. Empty otherwise.
pub fn settings_hint(message: &str) -> &'static str {
    let lower = message.to_ascii_lowercase();
    if lower.contains("region must be set") {
        " (give --region, or set AWS_REGION)"
    } else if [
        "no credentials",
        "credentials not loaded",
        "lacked valid authentication credentials",
    ]
    .iter()
    .any(|said| lower.contains(said))
    {
        " (no AWS credentials: set AWS_PROFILE or --profile, run `aws configure`, or run where a \
         role is attached)"
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
