//! The S3 client, configured from the standard AWS chain (`AWS_ENDPOINT_URL`, profiles, the
//! container or instance role), and the checks made before any device is touched.

use aws_config::retry::RetryConfig;
use aws_config::SdkConfig;
use aws_sdk_s3::config::ProvideCredentials;
use aws_sdk_s3::error::DisplayErrorContext;
use aws_sdk_s3::Client;
use std::time::Duration;

/// Attempts per request, parts included. The standard retry mode backs off exponentially with
/// jitter between them and retries throttling, 5xx answers and dropped connections.
const MAX_ATTEMPTS: u32 = 6;
const INITIAL_BACKOFF: Duration = Duration::from_millis(200);

#[derive(Debug, thiserror::Error)]
pub enum S3Error {
    #[error(
        "no AWS credentials found (set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or run with a role): {0}"
    )]
    NoCredentials(String),
    #[error("bucket {0} does not exist")]
    NoSuchBucket(String),
    #[error("access to bucket {0} is denied")]
    AccessDenied(String),
    #[error("cannot reach bucket {bucket}: {message}")]
    Bucket { bucket: String, message: String },
}

/// Loads the AWS configuration from the environment.
pub async fn load_config() -> SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .retry_config(RetryConfig::standard().with_max_attempts(MAX_ATTEMPTS).with_initial_backoff(INITIAL_BACKOFF))
        .load()
        .await
}

/// An S3 client; path-style addressing when the endpoint is overridden (a local server on
/// 127.0.0.1 has no per-bucket host names).
pub fn client(config: &SdkConfig) -> Client {
    let s3_config = aws_sdk_s3::config::Builder::from(config)
        .force_path_style(config.endpoint_url().is_some() || std::env::var_os("AWS_ENDPOINT_URL_S3").is_some())
        // Multipart objects carry part-level checksums the SDK cannot check on download; every
        // download here is checked against the manifest's SHA-256 instead.
        .response_checksum_validation(aws_sdk_s3::config::ResponseChecksumValidation::WhenRequired)
        .build();
    Client::from_conf(s3_config)
}

/// Fails early, before anything is attached or mounted, if there are no credentials or the
/// bucket cannot be reached.
pub async fn preflight(config: &SdkConfig, client: &Client, bucket: &str) -> Result<(), S3Error> {
    let provider = config
        .credentials_provider()
        .ok_or_else(|| S3Error::NoCredentials("no credentials provider is configured".into()))?;
    provider.provide_credentials().await.map_err(|e| S3Error::NoCredentials(DisplayErrorContext(e).to_string()))?;
    match client.head_bucket().bucket(bucket).send().await {
        Ok(_) => Ok(()),
        Err(e) => {
            let status = e.raw_response().map(|r| r.status().as_u16());
            match status {
                Some(404) => Err(S3Error::NoSuchBucket(bucket.into())),
                Some(403) => Err(S3Error::AccessDenied(bucket.into())),
                _ => Err(S3Error::Bucket { bucket: bucket.into(), message: DisplayErrorContext(e).to_string() }),
            }
        }
    }
}
