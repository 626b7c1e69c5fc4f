//! The temporary volumes as the flow sees them: DescribeVolumes reduced to
//! [`ExistingVolume`]s, for `create-volume`, `check-volume` and `delete-volume`.

use archiver_core::errors;
use archiver_core::flows::ebs::{ExistingVolume, VolumeAttachment};
use archiver_core::naming::{TAG_EXECUTION, TAG_MANAGED_BY};
use aws_sdk_ec2::types::{Filter, Volume};
use aws_sdk_ec2::Client;

use crate::common::{AwsFailure, StepError};

/// The volumes tagged `tag` = `value` (in any state: the caller decides what counts).
pub async fn tagged(client: &Client, tag: &str, value: &str) -> Result<Vec<ExistingVolume>, StepError> {
    let filter = Filter::builder().name(format!("tag:{tag}")).values(value).build();
    let mut pages = client.describe_volumes().filters(filter).into_paginator().send();
    let mut volumes = Vec::new();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| {
            AwsFailure::of(&format!("DescribeVolumes tagged {tag}={value}"), &e)
                .into_step_error(errors::VOLUME_OPERATION_FAILED)
        })?;
        volumes.extend(page.volumes().iter().map(existing));
    }
    Ok(volumes)
}

/// One volume by id; `None` when EC2 says it does not exist.
pub async fn by_id(client: &Client, volume_id: &str) -> Result<Option<ExistingVolume>, StepError> {
    match client.describe_volumes().volume_ids(volume_id).send().await {
        Ok(output) => Ok(output.volumes().first().map(existing)),
        Err(e) => {
            let failure = AwsFailure::of(&format!("DescribeVolumes {volume_id}"), &e);
            if failure.class == archiver_core::aws_error::AwsErrorClass::NotFound {
                Ok(None)
            } else {
                Err(failure.into_step_error(errors::VOLUME_OPERATION_FAILED))
            }
        }
    }
}

fn existing(volume: &Volume) -> ExistingVolume {
    let tag =
        |key: &str| volume.tags().iter().find(|t| t.key() == Some(key)).and_then(|t| t.value()).map(str::to_string);
    ExistingVolume {
        volume_id: volume.volume_id().unwrap_or_default().to_string(),
        state: volume.state().map(|s| s.as_str().to_string()).unwrap_or_default(),
        execution: tag(TAG_EXECUTION),
        managed_by: tag(TAG_MANAGED_BY),
        attachments: volume
            .attachments()
            .iter()
            .map(|a| VolumeAttachment {
                instance_id: a.instance_id().unwrap_or_default().to_string(),
                state: a.state().map(|s| s.as_str().to_string()).unwrap_or_default(),
            })
            .collect(),
    }
}
