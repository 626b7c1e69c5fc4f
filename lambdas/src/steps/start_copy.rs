//! The `start-copy` Lambda of the organisation flow (infra/workload.yaml, in each workload account
//! and Region): an EventBridge rule hands it every "Backup Job State Change" and "Copy Job State
//! Change" COMPLETED of the configured vaults; [`archiver_core::flows::org_copy`] decides whether
//! the event asks for the first copy (into the central account's vault in the backup Region) or
//! the second (into the central account's vault in the point's own Region), and this step makes
//! that one StartCopyJob, as the copy role, with an idempotency token from the recovery point and
//! the destination: EventBridge's and Lambda's redeliveries start no second job.
//!
//! Configuration: `ORG_COPY_CONFIG`, the JSON of [`OrgCopyConfig`]; `FUNCTION_ROLE_ARN`, this
//! function's role, named in failure messages (the role that must be allowed to pass the copy
//! role). A refusal fails the invocation with a message naming the roles, the vaults and the
//! recovery point's key; Lambda retries it, then puts it in the error queue.

use crate::common::org_copy::{decision, org_copy_config, FUNCTION_ROLE_ARN_ENV};
use crate::common::{optional_env, AwsFailure, StepError};
use archiver_core::errors;
use archiver_core::flows::org_copy::{copy_failure, CopyRequest, OrgCopyConfig, OrgCopyDecision};
use aws_sdk_backup::Client;
use lambda_runtime::{service_fn, LambdaEvent};
use serde_json::{json, Value};

/// Serves the `start-copy` handler: builds its clients, then answers invocations until the runtime stops.
pub async fn run() -> Result<(), lambda_runtime::Error> {
    let config = org_copy_config();
    if let Err(error) = &config {
        tracing::error!(%error, "bad configuration: every invocation will fail");
    }
    let role = optional_env(FUNCTION_ROLE_ARN_ENV);
    let backup = Client::new(&crate::common::aws_config().await);
    let (backup, config, role) = (&backup, &config, &role);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        start_copy(backup, config.as_ref().map_err(Clone::clone)?, role.as_deref(), &event.payload).await
    }))
    .await
}

#[tracing::instrument(skip_all)]
async fn start_copy(
    backup: &Client,
    config: &OrgCopyConfig,
    role: Option<&str>,
    payload: &Value,
) -> Result<Value, StepError> {
    let (request, copy) = match decision(payload, config)? {
        OrgCopyDecision::Copy { request, copy } => (request, copy),
        other => {
            tracing::info!(decision = ?other, "no copy to start");
            return Ok(json!({"decision": other}));
        }
    };
    let started = backup
        .start_copy_job()
        .source_backup_vault_name(&request.source_backup_vault_name)
        .recovery_point_arn(&request.recovery_point_arn)
        .destination_backup_vault_arn(&request.destination_backup_vault_arn)
        .iam_role_arn(&request.iam_role_arn)
        .idempotency_token(&request.idempotency_token)
        .send()
        .await;
    match started {
        Ok(output) => {
            let copy_job_id = output.copy_job_id().unwrap_or_default();
            tracing::info!(
                copy_job_id,
                ?copy,
                recovery_point_arn = request.recovery_point_arn,
                destination = request.destination_backup_vault_arn,
                "copy started"
            );
            Ok(json!({"decision": {"action": "copy", "copy": copy, "request": request}, "copy_job_id": copy_job_id}))
        }
        Err(error) => {
            let failure = AwsFailure::of("StartCopyJob", &error);
            let key = recovery_point_key(backup, &request).await;
            let message = copy_failure(&request, role, key.as_deref(), &failure.message);
            tracing::error!(message, "copy refused");
            Err(StepError { message, ..failure.into_step_error(errors::COPY_NOT_STARTED) })
        }
    }
}

/// The KMS key of the recovery point a refused copy was of, for the failure message; `None` when
/// it cannot be described either (then the message says so).
async fn recovery_point_key(backup: &Client, request: &CopyRequest) -> Option<String> {
    let described = backup
        .describe_recovery_point()
        .backup_vault_name(&request.source_backup_vault_name)
        .recovery_point_arn(&request.recovery_point_arn)
        .send()
        .await;
    match described {
        Ok(point) => point.encryption_key_arn().map(str::to_string),
        Err(error) => {
            tracing::warn!(error = AwsFailure::of("DescribeRecoveryPoint", &error).message, "no key to name");
            None
        }
    }
}
