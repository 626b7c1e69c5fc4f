//! The `prepare-table` Lambda (state `PrepareTable`, temporary tables only): fails
//! `TableNotReady` while the restored table is CREATING, then tags it as ours, enables
//! point-in-time recovery on it and fails `PitrNotReady` until PITR is ENABLED (ExportTableToPointInTime
//! requires it). The ASL's Retry bounds both waits. Every call is idempotent, so each retry simply
//! starts over. Decisions: [`prepare_table`].

use archiver_core::dynamodb::{prepare_table, temporary_table_tags, PrepareTableInput, TablePreparation};
use aws_sdk_dynamodb::types::{PointInTimeRecoverySpecification, Tag};
use aws_sdk_dynamodb::Client;
use lambda_common::tables::{self, table_error};
use lambda_common::{parse_input, required_env, AwsFailure, StepError, DEPLOYMENT_NAME_ENV};
use lambda_runtime::{service_fn, LambdaEvent};
use serde_json::{json, Value};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let deployment = required_env(DEPLOYMENT_NAME_ENV);
    let dynamodb = Client::new(&lambda_common::aws_config().await);
    let (dynamodb, deployment) = (&dynamodb, &deployment);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        prepare(dynamodb, deployment.as_ref().map_err(Clone::clone)?, parse_input(event.payload)?).await
    }))
    .await
}

#[tracing::instrument(skip_all, fields(table_name = input.table_name))]
async fn prepare(dynamodb: &Client, deployment: &str, input: PrepareTableInput) -> Result<Value, StepError> {
    let name = &input.table_name;
    let decide = |table_status: &str, pitr: Option<&str>| {
        prepare_table(name, table_status, pitr).map_err(|e| StepError::new(e.error_name(), e.to_string()))
    };
    let status = tables::describe(dynamodb, name).await?.map(|t| t.status).unwrap_or_else(|| "DELETED".into());
    if status != "ACTIVE" {
        decide(&status, None)?;
    }
    tag(dynamodb, deployment, &input).await?;
    let pitr = pitr_status(dynamodb, name).await?;
    let pitr = match decide(&status, Some(&pitr))? {
        TablePreparation::Ready => pitr,
        TablePreparation::EnablePitr => {
            let enabled = enable_pitr(dynamodb, name).await?;
            decide(&status, Some(&enabled))?;
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
