//! The `verify` Lambda (state `Verify`): the archive counts only if its manifest is present and
//! every object it lists exists with the manifest's size; otherwise `ArchiveIncomplete`, and the
//! recovery point is kept. One GetObject and one listing, no download: the worker hashed every
//! byte on the way up, and `backup-archiver verify` re-hashes them on demand.
//! Decisions: [`verify_listing`].

use crate::common::{parse_input, storage, AwsFailure, StepError};
use archiver_core::archive_job::{missing_manifest, verify_listing, Verification, VerifyInput};
use archiver_core::aws_error::AwsErrorClass;
use archiver_core::errors;
use archiver_core::manifest::{Manifest, MANIFEST_NAME};
use archiver_core::s3_location::S3Location;
use aws_sdk_s3::Client;
use lambda_runtime::{service_fn, LambdaEvent};
use serde_json::Value;

/// Serves the `verify` handler: builds its clients, then answers invocations until the runtime stops.
pub async fn run() -> Result<(), lambda_runtime::Error> {
    let s3 = crate::common::s3_client(&crate::common::aws_config().await);
    let s3 = &s3;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        verify(s3, parse_input(event.payload)?).await
    }))
    .await
}

fn storage_error(failure: AwsFailure) -> StepError {
    failure.into_step_error(errors::STORAGE_ACCESS_FAILED)
}

#[tracing::instrument(skip_all, fields(destination = %input.destination))]
async fn verify(s3: &Client, input: VerifyInput) -> Result<Verification, StepError> {
    let destination = &input.destination;
    let manifest = read_manifest(s3, destination).await?;
    let listing = storage::list(s3, destination).await?;
    let verification =
        verify_listing(destination, &manifest, &listing).map_err(|e| StepError::new(e.error_name(), e.to_string()))?;
    tracing::info!(objects = verification.objects, total_size = verification.total_size, "verified");
    Ok(verification)
}

async fn read_manifest(s3: &Client, destination: &S3Location) -> Result<Manifest, StepError> {
    let key = destination.key(MANIFEST_NAME);
    let incomplete = |why: String| {
        let e = missing_manifest(destination, &why);
        StepError::new(e.error_name(), e.to_string())
    };
    let output = match s3.get_object().bucket(&destination.bucket).key(&key).send().await {
        Ok(output) => output,
        Err(e) => {
            let failure = AwsFailure::of(&format!("GetObject {}", destination.url_of(&key)), &e);
            return Err(match failure.class {
                AwsErrorClass::NotFound => incomplete("does not exist".into()),
                _ => storage_error(failure),
            });
        }
    };
    let bytes = output
        .body
        .collect()
        .await
        .map_err(|e| StepError::new(errors::RETRYABLE, format!("reading {}: {e}", destination.url_of(&key))))?
        .into_bytes();
    Manifest::from_json(&bytes).map_err(|e| incomplete(format!("is not a valid manifest: {e}")))
}
