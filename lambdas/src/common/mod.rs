//! What every Lambda of the flows shares, so that each step stays a thin adapter: the error
//! type that reaches Step Functions with a stable name, the mapping of AWS SDK errors to those
//! names, and configuration read from the environment once.
//!
//! Error names are [`archiver_core::errors`]'s; the ASL's `Retry` and `Catch` match them.

use std::fmt;

use archiver_core::aws_error::{classify, AwsErrorClass};
use archiver_core::errors::{self, NamedError};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use lambda_runtime::Diagnostic;

pub mod channels;
pub mod claims;
pub mod databases;
pub mod org_copy;
pub mod slack;
pub mod storage;
pub mod tables;
pub mod volumes;

/// An error a Lambda returns: a stable name from [`archiver_core::errors`] and a message for the
/// person reading the failed execution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepError {
    pub name: &'static str,
    pub message: String,
}

impl StepError {
    pub fn new(name: &'static str, message: impl Into<String>) -> Self {
        StepError { name, message: message.into() }
    }

    /// A configuration error: every invocation fails with `InvalidConfig` until it is fixed.
    pub fn config(message: impl Into<String>) -> Self {
        StepError::new(errors::INVALID_CONFIG, message)
    }

    /// The input document is not what the ASL should have passed.
    pub fn input(error: serde_json::Error) -> Self {
        StepError::new(errors::INVALID_EVENT, format!("the state's input does not have the expected fields: {error}"))
    }
}

impl fmt::Display for StepError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.name, self.message)
    }
}

impl std::error::Error for StepError {}

/// A core error becomes the step's error under its stable name, with its message. Coherence
/// allows this blanket impl next to `impl<T> From<T> for T` only because `StepError` itself is
/// no [`NamedError`]: it must never become one.
impl<E: NamedError + fmt::Display> From<E> for StepError {
    fn from(error: E) -> Self {
        StepError::new(error.error_name(), error.to_string())
    }
}

impl From<StepError> for Diagnostic {
    fn from(error: StepError) -> Diagnostic {
        Diagnostic { error_type: error.name.to_string(), error_message: error.message }
    }
}

/// An SDK error reduced to what a step decides on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsFailure {
    pub class: AwsErrorClass,
    /// The service's error code (`VolumeInUse`), when it sent one.
    pub code: Option<String>,
    /// The whole chain, for the message.
    pub message: String,
}

impl AwsFailure {
    /// Classifies `error` of the call described by `operation` ("DeleteVolume vol-1").
    pub fn of<E>(operation: &str, error: &SdkError<E, HttpResponse>) -> AwsFailure
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        let code = error.code().map(str::to_string);
        let status = error.raw_response().map(|response| response.status().as_u16());
        AwsFailure {
            class: classify(code.as_deref(), status),
            code,
            message: format!("{operation}: {}", DisplayErrorContext(error)),
        }
    }

    /// The step's error: `Retryable` for transient failures, else `permanent_name`.
    pub fn into_step_error(self, permanent_name: &'static str) -> StepError {
        match self.class {
            AwsErrorClass::Transient => StepError::new(errors::RETRYABLE, self.message),
            AwsErrorClass::NotFound | AwsErrorClass::Permanent => StepError::new(permanent_name, self.message),
        }
    }
}

/// S3 refused a conditional write (`If-None-Match: *`) because the key exists: 412 Precondition
/// Failed, which the SDK models as no error of the operation.
pub fn precondition_failed<E>(error: &SdkError<E, HttpResponse>) -> bool {
    error.raw_response().is_some_and(|response| response.status().as_u16() == 412)
}

/// The AWS configuration of a Lambda: its role's credentials and region, and `AWS_ENDPOINT_URL`
/// when set (the local emulator).
pub async fn aws_config() -> aws_config::SdkConfig {
    aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await
}

/// An S3 client with path-style addressing, which every S3-compatible endpoint serves (the
/// emulator's included) and AWS still accepts.
pub fn s3_client(config: &aws_config::SdkConfig) -> aws_sdk_s3::Client {
    aws_sdk_s3::Client::from_conf(aws_sdk_s3::config::Builder::from(config).force_path_style(true).build())
}

/// The environment variable naming the deployment (the stack): the value of the managed-by tag
/// on the temporary volumes, which IAM limits each deployment's roles to.
pub const DEPLOYMENT_NAME_ENV: &str = "DEPLOYMENT_NAME";

/// A required environment variable, or a configuration error naming it.
pub fn required_env(name: &str) -> Result<String, StepError> {
    match std::env::var(name) {
        Ok(value) if !value.trim().is_empty() => Ok(value),
        _ => Err(StepError::config(format!("the environment variable {name} is not set"))),
    }
}

/// An optional environment variable; empty counts as unset.
pub fn optional_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|value| !value.trim().is_empty())
}

/// Parses a state's input into its core type, as `InvalidEvent` when it does not fit.
pub fn parse_input<T: serde::de::DeserializeOwned>(payload: serde_json::Value) -> Result<T, StepError> {
    serde_json::from_value(payload).map_err(StepError::input)
}

/// When the invocation of `context` times out, as an [`std::time::Instant`] (the runtime gives
/// milliseconds since the epoch), for retries that must end before it.
pub fn deadline(context: &lambda_runtime::Context) -> std::time::Instant {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    std::time::Instant::now() + std::time::Duration::from_millis(context.deadline.saturating_sub(now_ms))
}

#[cfg(test)]
mod tests {
    use super::*;
    use archiver_core::document::FlowError;

    #[test]
    fn step_errors_reach_step_functions_with_their_stable_name() {
        let diagnostic: Diagnostic = StepError::new(errors::VOLUME_NOT_READY, "vol-1 is creating").into();
        assert_eq!(diagnostic.error_type, "VolumeNotReady");
        assert_eq!(diagnostic.error_message, "vol-1 is creating");
    }

    #[test]
    fn core_errors_keep_their_stable_name_and_message() {
        let refusal = FlowError::VolumeNotReady { volume_id: "vol-1".into(), state: "creating".into() };
        let error = StepError::from(refusal.clone());
        assert_eq!((error.name, error.message), (errors::VOLUME_NOT_READY, refusal.to_string()));
    }

    #[test]
    fn malformed_input_is_an_invalid_event() {
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct Input {
            volume_id: String,
        }
        let error = parse_input::<Input>(serde_json::json!({"volume": 1})).unwrap_err();
        assert_eq!(error.name, errors::INVALID_EVENT);
        assert!(error.message.contains("volume_id"), "{error}");
    }
}
