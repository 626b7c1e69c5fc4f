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

use crate::common::claims::take_claim;
use crate::common::{parse_input, required_env, volumes, AwsFailure, StepError, DEPLOYMENT_NAME_ENV};
use archiver_core::errors;
use archiver_core::flows::ebs::{
    archive_job, own_volume, volume_request, CreateVolumeInput, CreatedVolume, VolumeRequest,
};
use archiver_core::naming::TAG_IDEMPOTENCY_KEY;
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

#[tracing::instrument(skip_all, fields(snapshot_id = input.request.snapshot_id, execution_id = input.execution_id))]
async fn create_volume(
    ec2: &Client,
    s3: &aws_sdk_s3::Client,
    deployment: &str,
    input: CreateVolumeInput,
) -> Result<CreatedVolume, StepError> {
    let request = &input.request;
    let spec = volume_request(request, &input.execution_id, deployment)?;
    // Checked before anything is created: a missing queue is a configuration error.
    let mut job = archive_job(request, "", &input.execution_id)?;
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

/// The core's sizes fit gp3's limits (16,000 IOPS, 1,000 MiB/s), far below `i32::MAX`.
fn to_i32(value: u32) -> i32 {
    i32::try_from(value).expect("gp3 IOPS, throughput and rates are far below i32::MAX")
}
