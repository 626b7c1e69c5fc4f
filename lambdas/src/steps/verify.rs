//! The `verify` Lambda (state `Verify`): the archive counts only if its manifest is present and
//! S3 reports every segment of every object it lists with the manifest's size and full-object
//! CRC64NVME; otherwise `ArchiveIncomplete`, and the recovery point is kept. One GetObject and one
//! HeadObject (checksum mode) per segment, no download: S3 validated each checksum against the
//! bytes when the worker completed the segment, and `backup-archiver verify --deep` re-reads them.
//! Decisions: [`verify_segments`].

use std::collections::BTreeMap;

use crate::common::{parse_input, AwsFailure, StepError};
use archiver_core::archive_job::{missing_manifest, verify_segments, Verification, VerifyInput};
use archiver_core::aws_error::AwsErrorClass;
use archiver_core::errors;
use archiver_core::manifest::{Manifest, StoredObject, MANIFEST_NAME};
use archiver_core::s3_location::S3Location;
use aws_sdk_s3::types::ChecksumMode;
use aws_sdk_s3::Client;
use futures::{StreamExt, TryStreamExt};
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
    let keys: Vec<String> = manifest.objects.iter().flat_map(|o| o.stored_segments()).map(|s| s.key).collect();
    let stored: BTreeMap<String, Option<StoredObject>> = futures::stream::iter(keys)
        .map(|key| async move {
            let stored = head_segment(s3, destination, &key).await?;
            Ok::<_, StepError>((key, stored))
        })
        .buffer_unordered(HEADS_IN_FLIGHT)
        .try_collect()
        .await?;
    let verification = verify_segments(destination, &manifest, &stored)?;
    tracing::info!(
        objects = verification.objects,
        total_size = verification.total_size,
        checksums_verified = verification.checksums_verified,
        "verified"
    );
    Ok(verification)
}

/// HeadObject calls in flight at once: a many-segment archive is checked in a few round trips
/// without bursting past S3's per-prefix request rate or the Lambda's connection pool.
const HEADS_IN_FLIGHT: usize = 8;

/// What S3 reports about one segment, with its full-object checksum; `None` when it does not
/// exist. The function's `s3:ListBucket` lets S3 answer 404 rather than 403 for a missing key.
async fn head_segment(s3: &Client, destination: &S3Location, key: &str) -> Result<Option<StoredObject>, StepError> {
    match s3.head_object().bucket(&destination.bucket).key(key).checksum_mode(ChecksumMode::Enabled).send().await {
        Ok(head) => Ok(Some(StoredObject {
            size: head.content_length.and_then(|n| u64::try_from(n).ok()).unwrap_or(0),
            checksum_crc64nvme: head.checksum_crc64_nvme,
        })),
        Err(e) => {
            let failure = AwsFailure::of(&format!("HeadObject {}", destination.url_of(key)), &e);
            match failure.class {
                AwsErrorClass::NotFound => Ok(None),
                _ => Err(storage_error(failure)),
            }
        }
    }
}

async fn read_manifest(s3: &Client, destination: &S3Location) -> Result<Manifest, StepError> {
    let key = destination.key(MANIFEST_NAME);
    let incomplete = |why: String| StepError::from(missing_manifest(destination, &why));
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
