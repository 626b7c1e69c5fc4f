//! The archive claim both EBS read paths take before they read a snapshot (`create-volume`,
//! `claim-snapshot`): one S3 conditional write per idempotency key, decided by [`archiver_core::claim`].

use archiver_core::claim::{refused_claim, ArchiveClaim, ClaimRefused};
use archiver_core::document::FlowError;
use archiver_core::errors;
use archiver_core::naming::claim_key;
use archiver_core::request::ArchiveRequest;

use super::{precondition_failed, AwsFailure, StepError};

/// Takes the claim on the request's idempotency key (for `create-volume` and `claim-snapshot`,
/// the volume and the direct read paths): PutObject with `If-None-Match: *`, which S3 refuses with 412 when the claim exists.
/// Refused, the claim is read back: this execution's own (an earlier attempt took it) goes on,
/// another's is `DuplicateArchive`.
pub async fn take_claim(
    s3: &aws_sdk_s3::Client,
    request: &ArchiveRequest,
    execution_id: &str,
) -> Result<(), StepError> {
    let destination = &request.destination;
    let key = claim_key(destination, &request.idempotency_key);
    let url = destination.url_of(&key);
    let claim = ArchiveClaim {
        execution_id: execution_id.to_string(),
        snapshot_id: request.snapshot_id.clone(),
        idempotency_key: request.idempotency_key.clone(),
    };
    let put = s3
        .put_object()
        .bucket(&destination.bucket)
        .key(&key)
        .if_none_match("*")
        .content_type("application/json")
        .body(claim.to_json().into())
        .send()
        .await;
    let refused = match put {
        Ok(_) => {
            tracing::info!(claim = url, "claimed");
            return Ok(());
        }
        Err(e) if precondition_failed(&e) => e,
        // 409 ConditionalRequestConflict: another conditional write of the key is in flight.
        Err(e) => {
            let failure = AwsFailure::of(&format!("PutObject {url} (If-None-Match)"), &e);
            let name = if failure.code.as_deref() == Some("ConditionalRequestConflict") {
                errors::RETRYABLE
            } else {
                errors::STORAGE_ACCESS_FAILED
            };
            return Err(failure.into_step_error(name));
        }
    };
    tracing::info!(claim = url, error = %aws_sdk_s3::error::DisplayErrorContext(&refused), "the claim exists");
    let holder = super::storage::read_optional(s3, &destination.bucket, &key).await?;
    match refused_claim(holder.as_deref(), execution_id) {
        ClaimRefused::Ours => Ok(()),
        ClaimRefused::HeldBy { execution } => {
            Err(FlowError::Duplicate { snapshot_id: request.snapshot_id.clone(), execution, claim_url: url }.into())
        }
        ClaimRefused::Released => {
            Err(StepError::new(errors::RETRYABLE, format!("{url} was released while this execution claimed it")))
        }
    }
}
