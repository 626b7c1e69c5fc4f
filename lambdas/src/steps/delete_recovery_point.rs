//! The `delete-recovery-point` Lambda (state `DeleteRecoveryPoint`): deletes the AWS Backup
//! recovery point of a verified archive. The ASL reaches it only when the plan says so
//! (`options.delete_recovery_point`: configured, and the snapshot is a vault's recovery point)
//! and only after `Verify` succeeded. A recovery point already gone counts as deleted.

use crate::common::{parse_input, AwsFailure, StepError};
use archiver_core::aws_error::AwsErrorClass;
use archiver_core::document::{DeleteRecoveryPointInput, RecoveryPointDeletion};
use archiver_core::errors;
use aws_sdk_backup::Client;
use lambda_runtime::{service_fn, LambdaEvent};
use serde_json::Value;

/// Serves the `delete-recovery-point` handler: builds its clients, then answers invocations until the runtime stops.
pub async fn run() -> Result<(), lambda_runtime::Error> {
    let backup = Client::new(&crate::common::aws_config().await);
    let backup = &backup;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        delete_recovery_point(backup, parse_input(event.payload)?).await
    }))
    .await
}

#[tracing::instrument(skip_all, fields(vault_name = input.vault_name, recovery_point_arn = %input.recovery_point_arn))]
async fn delete_recovery_point(
    backup: &Client,
    input: DeleteRecoveryPointInput,
) -> Result<RecoveryPointDeletion, StepError> {
    let arn = input.recovery_point_arn.to_string();
    let deleted =
        match backup.delete_recovery_point().backup_vault_name(&input.vault_name).recovery_point_arn(&arn).send().await
        {
            Ok(_) => true,
            Err(e) => {
                let failure = AwsFailure::of(&format!("DeleteRecoveryPoint {arn} in {}", input.vault_name), &e);
                if failure.class != AwsErrorClass::NotFound {
                    return Err(failure.into_step_error(errors::RECOVERY_POINT_NOT_DELETED));
                }
                false
            }
        };
    tracing::info!(deleted, "recovery point released");
    Ok(RecoveryPointDeletion { recovery_point_arn: input.recovery_point_arn, deleted })
}
