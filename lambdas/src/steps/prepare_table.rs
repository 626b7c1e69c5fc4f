//! The `prepare-table` Lambda (state `PrepareTable`, temporary tables only): fails
//! `TableNotReady` while AWS Backup's restore job (if any) runs and while the restored table is
//! CREATING, then tags it as ours, enables
//! point-in-time recovery on it and fails `PitrNotReady` until PITR is ENABLED (ExportTableToPointInTime
//! requires it). The ASL's Retry bounds both waits. Every call is idempotent, so each retry simply
//! starts over. Decisions: [`prepare_table`].

use crate::common::tables::{self, table_error};
use crate::common::{parse_input, required_env, AwsFailure, StepError, DEPLOYMENT_NAME_ENV};
use archiver_core::flows::dynamodb::{
    prepare_table, restore_job_progress, temporary_table_tags, PrepareTableInput, TablePreparation,
};
use aws_sdk_dynamodb::types::{PointInTimeRecoverySpecification, Tag};
use aws_sdk_dynamodb::Client;
use lambda_runtime::{service_fn, LambdaEvent};
use serde_json::{json, Value};

/// Serves the `prepare-table` handler: builds its clients, then answers invocations until the runtime stops.
pub async fn run() -> Result<(), lambda_runtime::Error> {
    let deployment = required_env(DEPLOYMENT_NAME_ENV);
    let config = crate::common::aws_config().await;
    let (dynamodb, backup) = (Client::new(&config), aws_sdk_backup::Client::new(&config));
    let (dynamodb, backup, deployment) = (&dynamodb, &backup, &deployment);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        prepare(dynamodb, backup, deployment.as_ref().map_err(Clone::clone)?, parse_input(event.payload)?).await
    }))
    .await
}

#[tracing::instrument(skip_all, fields(table_name = input.table_name))]
async fn prepare(
    dynamodb: &Client,
    backup: &aws_sdk_backup::Client,
    deployment: &str,
    input: PrepareTableInput,
) -> Result<Value, StepError> {
    let name = &input.table_name;
    let mut table = tables::describe(dynamodb, name).await?;
    if let (None, Some(job_id)) = (&table, &input.restore_job_id) {
        // AWS Backup creates the table when its restore job has run; until then it does not exist.
        let job = tables::restore_job(backup, job_id).await?;
        restore_job_progress(name, job_id, &job.status, job.status_message.as_deref())?;
        table = tables::describe(dynamodb, name).await?;
    }
    let status = table.map_or_else(|| "DELETED".to_string(), |t| t.status);
    if status != "ACTIVE" {
        prepare_table(name, &status, None)?;
    }
    tag(dynamodb, deployment, &input).await?;
    let pitr = pitr_status(dynamodb, name).await?;
    let pitr = match prepare_table(name, &status, Some(&pitr))? {
        TablePreparation::Ready => pitr,
        TablePreparation::EnablePitr => {
            let enabled = enable_pitr(dynamodb, name).await?;
            prepare_table(name, &status, Some(&enabled))?;
            enabled
        }
    };
    tracing::info!(status, pitr, "table ready to export");
    Ok(json!({"table_name": name, "status": status, "pitr": pitr}))
}

async fn tag(dynamodb: &Client, deployment: &str, input: &PrepareTableInput) -> Result<(), StepError> {
    let tags = temporary_table_tags(deployment, &input.execution_id, &input.idempotency_key, &input.snapshot_id)
        .into_iter()
        .map(|(key, value)| Tag::builder().key(key).value(value).build().expect("key and value are set"));
    dynamodb
        .tag_resource()
        .resource_arn(&input.table_arn)
        .set_tags(Some(tags.collect()))
        .send()
        .await
        .map_err(|e| table_error(AwsFailure::of(&format!("TagResource {}", input.table_arn), &e)))?;
    Ok(())
}

async fn pitr_status(dynamodb: &Client, name: &str) -> Result<String, StepError> {
    let output = dynamodb
        .describe_continuous_backups()
        .table_name(name)
        .send()
        .await
        .map_err(|e| table_error(AwsFailure::of(&format!("DescribeContinuousBackups {name}"), &e)))?;
    Ok(tables::pitr_window(output.continuous_backups_description()).status)
}

/// UpdateContinuousBackups; the PITR status it answers with.
async fn enable_pitr(dynamodb: &Client, name: &str) -> Result<String, StepError> {
    let specification = PointInTimeRecoverySpecification::builder()
        .point_in_time_recovery_enabled(true)
        .build()
        .expect("the one required field is set");
    let output = dynamodb
        .update_continuous_backups()
        .table_name(name)
        .point_in_time_recovery_specification(specification)
        .send()
        .await
        .map_err(|e| table_error(AwsFailure::of(&format!("UpdateContinuousBackups {name}"), &e)))?;
    tracing::info!("point-in-time recovery enabled");
    Ok(tables::pitr_window(output.continuous_backups_description()).status)
}
