//! The `claim-snapshot` Lambda (state `ClaimSnapshot`, the first of the direct read path): takes
//! the claim on the snapshot's idempotency key exactly as `create-volume` does, so that the
//! two paths share one idempotency, then returns the Batch job that reads the snapshot through
//! the EBS direct APIs. No volume and no AZ: the job runs in the queue the plan chose.
//!
//! The decisions are [`archiver_core::claim`]'s and [`archiver_core::flows::ebs::direct_job`]'s.

use crate::common::claims::take_claim;
use crate::common::{parse_input, StepError};
use archiver_core::flows::ebs::{direct_job, ClaimSnapshotInput, DirectRead};
use lambda_runtime::{service_fn, LambdaEvent};
use serde_json::Value;

/// Serves the `claim-snapshot` handler: builds its client, then answers invocations until the runtime stops.
pub async fn run() -> Result<(), lambda_runtime::Error> {
    let config = crate::common::aws_config().await;
    let s3 = crate::common::s3_client(&config);
    let s3 = &s3;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        claim_snapshot(s3, parse_input(event.payload)?).await
    }))
    .await
}

#[tracing::instrument(skip_all, fields(snapshot_id = input.request.snapshot_id, execution_id = input.execution_id))]
async fn claim_snapshot(s3: &aws_sdk_s3::Client, input: ClaimSnapshotInput) -> Result<DirectRead, StepError> {
    // Checked before the claim: a missing queue is a configuration error, and leaves no claim.
    let job = direct_job(&input.request, &input.execution_id)?;
    take_claim(s3, &input.request, &input.execution_id).await?;
    tracing::info!(queue = job.queue, "claimed; the job reads the snapshot through the EBS direct APIs");
    Ok(DirectRead { job })
}
