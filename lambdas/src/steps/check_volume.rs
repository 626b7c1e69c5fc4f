//! The `check-volume` Lambda (state `CheckVolume`): fails `VolumeNotReady` while the temporary
//! volume is `creating` (the ASL's Retry bounds how long it waits), `VolumeFailed` if it will
//! never be available. See [`archiver_core::flows::ebs::check_volume`].

use crate::common::{parse_input, volumes, StepError};
use archiver_core::flows::ebs::{check_volume, CheckVolumeInput};
use aws_sdk_ec2::Client;
use lambda_runtime::{service_fn, LambdaEvent};
use serde_json::{json, Value};

/// Serves the `check-volume` handler: builds its clients, then answers invocations until the runtime stops.
pub async fn run() -> Result<(), lambda_runtime::Error> {
    let ec2 = Client::new(&crate::common::aws_config().await);
    let ec2 = &ec2;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        check(ec2, parse_input(event.payload)?).await
    }))
    .await
}

#[tracing::instrument(skip_all, fields(volume_id = input.volume_id))]
async fn check(ec2: &Client, input: CheckVolumeInput) -> Result<Value, StepError> {
    let state = match volumes::by_id(ec2, &input.volume_id).await? {
        Some(volume) => volume.state,
        None => "deleted".to_string(),
    };
    tracing::info!(state, "volume state");
    check_volume(&input.volume_id, &state)?;
    Ok(json!({"volume_id": input.volume_id, "state": state}))
}
