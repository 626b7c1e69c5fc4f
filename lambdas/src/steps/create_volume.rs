//! The `create-volume` Lambda (state `CreateVolume`): takes the claim on the snapshot's
//! idempotency key, then creates the temporary gp3 volume an EBS archive is read from, tagged
//! with the execution that owns it, and returns it with the Batch job that will archive it.
//! Across executions of one snapshot (duplicate events, a replay while the first runs) the claim,
//! an S3 conditional write, lets exactly one through and the others end with `DuplicateArchive`
//! before any volume exists. Idempotent within an execution: a retried invocation finds its own
//! claim and its volume, and CreateVolume's client token is per execution.
//!
//! The decisions are [`archiver_core::claim`]'s ([`refused_claim`]) and
//! [`archiver_core::flows::ebs`]'s: [`volume_request`], [`own_volume`], [`archive_job`].

use crate::common::{parse_input, required_env, volumes, AwsFailure, StepError, DEPLOYMENT_NAME_ENV};
use archiver_core::claim::{refused_claim, ArchiveClaim, ClaimRefused};
use archiver_core::document::FlowError;
use archiver_core::errors;
use archiver_core::flows::ebs::{
    archive_job, own_volume, volume_request, CreateVolumeInput, CreatedVolume, VolumeRequest,
};
use archiver_core::naming::{claim_key, TAG_IDEMPOTENCY_KEY};
use archiver_core::request::ArchiveRequest;
use aws_sdk_ec2::types::{ResourceType, Tag, TagSpecification, VolumeType};
use aws_sdk_ec2::Client;
use lambda_runtime::{service_fn, LambdaEvent};
use serde_json::Value;

/// Serves the `create-volume` handler: builds its clients, then answers invocations until the runtime stops.
pub async fn run() -> Result<(), lambda_runtime::Error> {
    let deployment = required_env(DEPLOYMENT_NAME_ENV);
    let config = crate::common::aws_config().await;
    let (ec2, s3) = (Client::new(&config), crate::common::s3_client(&config));
    let (ec2, s3, deployment) = (&ec2, &s3, &deployment);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        create_volume(ec2, s3, deployment.as_ref().map_err(Clone::clone)?, parse_input(event.payload)?).await
    }))
    .await
}

pub(crate) fn flow_error(error: FlowError) -> StepError {
    StepError::new(error.error_name(), error.to_string())
}

#[tracing::instrument(skip_all, fields(snapshot_id = input.request.snapshot_id, execution_id = input.execution_id))]
async fn create_volume(
    ec2: &Client,
    s3: &aws_sdk_s3::Client,
    deployment: &str,
    input: CreateVolumeInput,
) -> Result<CreatedVolume, StepError> {
    let request = &input.request;
    let spec = volume_request(request, &input.execution_id, deployment).map_err(flow_error)?;
    // Checked before anything is created: a missing queue is a configuration error.
    let mut job = archive_job(request, "", &input.execution_id).map_err(flow_error)?;
    take_claim(s3, request, &input.execution_id).await?;
    let existing = volumes::tagged(ec2, TAG_IDEMPOTENCY_KEY, &request.idempotency_key).await?;
    let volume_id = match own_volume(&existing, &input.execution_id) {
        Some(own) => {
            tracing::info!(volume_id = own.volume_id, "reusing the volume an earlier attempt created");
            own.volume_id.clone()
        }
        None => create(ec2, &spec).await?,
    };
    job.parameters.insert("volume_id".to_string(), volume_id.clone());
    tracing::info!(volume_id, availability_zone = spec.availability_zone, "volume ready to be awaited");
    Ok(CreatedVolume { volume_id, availability_zone: spec.availability_zone, job })
}

async fn create(ec2: &Client, spec: &VolumeRequest) -> Result<String, StepError> {
    let tags: Vec<Tag> = spec.tags.iter().map(|(k, v)| Tag::builder().key(k).value(v).build()).collect();
    let mut call = ec2
        .create_volume()
        .availability_zone(&spec.availability_zone)
        .snapshot_id(&spec.snapshot_id)
        .volume_type(VolumeType::from(spec.volume_type.as_str()))
        .iops(to_i32(spec.iops))
        .throughput(to_i32(spec.throughput_mibps))
        .encrypted(spec.encrypted)
        .client_token(&spec.client_token)
        .tag_specifications(
            TagSpecification::builder().resource_type(ResourceType::Volume).set_tags(Some(tags)).build(),
        );
    if let Some(rate) = spec.initialization_rate_mibps {
        call = call.volume_initialization_rate(to_i32(rate));
    }
    if let Some(key) = &spec.kms_key_id {
        call = call.kms_key_id(key);
    }
    let output = call.send().await.map_err(|e| {
        AwsFailure::of(&format!("CreateVolume from {}", spec.snapshot_id), &e)
            .into_step_error(errors::VOLUME_OPERATION_FAILED)
    })?;
    let volume_id = output.volume_id().unwrap_or_default().to_string();
    tracing::info!(volume_id, "created volume");
    Ok(volume_id)
}

/// Takes the claim on the request's idempotency key (also for `claim-snapshot`, the direct read
/// path's): PutObject with `If-None-Match: *`, which S3 refuses with 412 when the claim exists.
/// Refused, the claim is read back: this execution's own (an earlier attempt took it) goes on,
/// another's is `DuplicateArchive`.
pub(crate) async fn take_claim(
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
        Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 412) => e,
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
    let holder = crate::common::storage::read_optional(s3, &destination.bucket, &key).await?;
    match refused_claim(holder.as_deref(), execution_id) {
        ClaimRefused::Ours => Ok(()),
        ClaimRefused::HeldBy { execution } => Err(flow_error(FlowError::Duplicate {
            snapshot_id: request.snapshot_id.clone(),
            execution,
            claim_url: url,
        })),
        ClaimRefused::Released => {
            Err(StepError::new(errors::RETRYABLE, format!("{url} was released while this execution claimed it")))
        }
    }
}

/// The core's sizes fit gp3's limits (16,000 IOPS, 1,000 MiB/s), far below `i32::MAX`.
fn to_i32(value: u32) -> i32 {
    i32::try_from(value).expect("gp3 IOPS, throughput and rates are far below i32::MAX")
}
