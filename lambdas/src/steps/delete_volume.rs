//! The `delete-volume` Lambda (states `DeleteVolume` and `Cleanup`): deletes every temporary
//! volume of the execution, the one the document names and any tagged with the execution (a
//! volume whose id never reached the state machine). An attached volume is detached (forced
//! after [`FORCE_DETACH_AFTER_RETRIES`](archiver_core::flows::ebs::FORCE_DETACH_AFTER_RETRIES) retries)
//! and the call fails `VolumeStillAttached`, which the ASL retries a bounded number of times.
//! Volumes not tagged as ours are never touched. In `Cleanup` it also releases the execution's
//! claim on the snapshot, so that a replay can archive it; never another execution's claim.
//! Decisions: [`release_volume`], [`releases`].

use std::collections::BTreeMap;

use crate::common::{parse_input, required_env, storage, volumes, AwsFailure, StepError, DEPLOYMENT_NAME_ENV};
use archiver_core::aws_error::AwsErrorClass;
use archiver_core::claim::{claim_in, releases};
use archiver_core::errors;
use archiver_core::flows::ebs::{
    release_volume, volume_ids_in, DeleteVolumeInput, DeletedVolumes, ExistingVolume, Release,
};
use archiver_core::naming::TAG_EXECUTION;
use aws_sdk_ec2::Client;
use lambda_runtime::{service_fn, LambdaEvent};
use serde_json::Value;

/// Serves the `delete-volume` handler: builds its clients, then answers invocations until the runtime stops.
pub async fn run() -> Result<(), lambda_runtime::Error> {
    let deployment = required_env(DEPLOYMENT_NAME_ENV);
    let config = crate::common::aws_config().await;
    let (ec2, s3) = (Client::new(&config), crate::common::s3_client(&config));
    let (ec2, s3, deployment) = (&ec2, &s3, &deployment);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        delete_volumes(ec2, s3, deployment.as_ref().map_err(Clone::clone)?, parse_input(event.payload)?).await
    }))
    .await
}

#[tracing::instrument(skip_all, fields(execution_id = input.execution_id, retry_count = input.retry_count))]
async fn delete_volumes(
    ec2: &Client,
    s3: &aws_sdk_s3::Client,
    deployment: &str,
    input: DeleteVolumeInput,
) -> Result<DeletedVolumes, StepError> {
    let mut found: BTreeMap<String, ExistingVolume> = volumes::tagged(ec2, TAG_EXECUTION, &input.execution_id)
        .await?
        .into_iter()
        .map(|v| (v.volume_id.clone(), v))
        .collect();
    let mut report = DeletedVolumes::default();
    for volume_id in volume_ids_in(&input.state) {
        if found.contains_key(&volume_id) {
            continue;
        }
        match volumes::by_id(ec2, &volume_id).await? {
            Some(volume) => {
                found.insert(volume_id, volume);
            }
            None => report.already_gone.push(volume_id),
        }
    }
    // Every volume gets its action before the first error is returned: one stuck volume must
    // not keep the others alive.
    let mut first_error: Option<StepError> = None;
    for volume in found.values() {
        let volume_id = volume.volume_id.as_str();
        let outcome = match release_volume(volume, input.retry_count, deployment) {
            Release::Gone => {
                report.already_gone.push(volume_id.to_string());
                Ok(())
            }
            Release::Foreign => Err(StepError::new(
                errors::VOLUME_OPERATION_FAILED,
                format!("refusing to delete {volume_id}: it is not tagged as a volume of the deployment {deployment}"),
            )),
            Release::Delete => delete(ec2, volume, &mut report).await,
            Release::Detach { instance_id, force } => detach(ec2, volume_id, &instance_id, force).await,
            Release::Wait => Err(waiting(volume)),
        };
        if let Err(error) = outcome {
            tracing::warn!(volume_id, %error, "volume not deleted yet");
            first_error.get_or_insert(error);
        }
    }
    if input.release_claim {
        if let Err(error) = release_claim(s3, &input).await {
            first_error.get_or_insert(error);
        }
    }
    match first_error {
        Some(error) => Err(error),
        None => {
            tracing::info!(deleted = ?report.deleted, already_gone = ?report.already_gone, "volumes released");
            Ok(report)
        }
    }
}

/// Deletes the execution's claim on its snapshot, if it holds it: read, compared, then deleted
/// (safe, as only the holder ever deletes a claim and none can be replaced while it exists).
async fn release_claim(s3: &aws_sdk_s3::Client, input: &DeleteVolumeInput) -> Result<(), StepError> {
    let Some((bucket, key)) = claim_in(&input.state) else {
        return Ok(());
    };
    let holder = storage::read_optional(s3, &bucket, &key).await?;
    if !releases(holder.as_deref(), &input.execution_id) {
        tracing::info!(claim = key, held = holder.is_some(), "no claim of this execution to release");
        return Ok(());
    }
    s3.delete_object().bucket(&bucket).key(&key).send().await.map_err(|e| {
        AwsFailure::of(&format!("DeleteObject s3://{bucket}/{key}"), &e).into_step_error(errors::STORAGE_ACCESS_FAILED)
    })?;
    tracing::info!(claim = key, "claim released");
    Ok(())
}

async fn delete(ec2: &Client, volume: &ExistingVolume, report: &mut DeletedVolumes) -> Result<(), StepError> {
    let volume_id = &volume.volume_id;
    match ec2.delete_volume().volume_id(volume_id).send().await {
        Ok(_) => {
            report.deleted.push(volume_id.clone());
            Ok(())
        }
        Err(e) => {
            let failure = AwsFailure::of(&format!("DeleteVolume {volume_id}"), &e);
            match (failure.class, failure.code.as_deref()) {
                (AwsErrorClass::NotFound, _) => {
                    report.already_gone.push(volume_id.clone());
                    Ok(())
                }
                // Still creating, or attached since it was described: the next retry deals with it.
                (_, Some("IncorrectState")) if volume.state == "creating" => {
                    Err(StepError::new(errors::VOLUME_NOT_READY, failure.message))
                }
                (_, Some("VolumeInUse" | "IncorrectState")) => {
                    Err(StepError::new(errors::VOLUME_STILL_ATTACHED, failure.message))
                }
                _ => Err(failure.into_step_error(errors::VOLUME_OPERATION_FAILED)),
            }
        }
    }
}

/// Requests the detach and fails `VolumeStillAttached`: the deletion is retried after the ASL's
/// interval, by when the detach has had time to finish.
async fn detach(ec2: &Client, volume_id: &str, instance_id: &str, force: bool) -> Result<(), StepError> {
    tracing::info!(volume_id, instance_id, force, "detaching");
    let still_attached = |detail: &str| {
        StepError::new(
            errors::VOLUME_STILL_ATTACHED,
            format!(
                "volume {volume_id} is still attached to {instance_id}; detach requested{}{detail}",
                if force { " with force" } else { "" }
            ),
        )
    };
    match ec2.detach_volume().volume_id(volume_id).instance_id(instance_id).force(force).send().await {
        Ok(_) => Err(still_attached("")),
        Err(e) => {
            let failure = AwsFailure::of(&format!("DetachVolume {volume_id} from {instance_id}"), &e);
            match (failure.class, failure.code.as_deref()) {
                // Detached meanwhile, or already detaching: the next retry deletes it.
                (AwsErrorClass::NotFound, _) | (_, Some("IncorrectState")) => Err(still_attached("")),
                (AwsErrorClass::Transient, _) => Err(StepError::new(errors::RETRYABLE, failure.message)),
                _ => Err(failure.into_step_error(errors::VOLUME_OPERATION_FAILED)),
            }
        }
    }
}

fn waiting(volume: &ExistingVolume) -> StepError {
    StepError::new(errors::VOLUME_STILL_ATTACHED, format!("volume {} is still detaching", volume.volume_id))
}
