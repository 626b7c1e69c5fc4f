//! The `delete-table` Lambda (states `DeleteTable` and `Cleanup`): deletes the execution's
//! temporary table, found by the name [`temporary_table_in`] derives from the plan and the
//! execution (so a table whose restore never answered is still found), and only if it was
//! restored from this execution's backup or created by its AWS Backup restore job. A table still
//! CREATING, or one AWS Backup's restore job has yet to create, cannot be deleted yet: the step
//! fails `TableNotReady` and the ASL's bounded Retry comes back. The table is tagged as the
//! deployment's before it is deleted (IAM lets this role delete only such tables, and a table
//! whose PrepareTable never ran is not tagged yet). Nothing to delete (the point-in-time path, a
//! Plan that failed) is a success. Decisions: [`release_table`], [`restore_job_progress`].

use crate::common::tables::{self, table_error};
use crate::common::{parse_input, required_env, AwsFailure, StepError, DEPLOYMENT_NAME_ENV};
use archiver_core::aws_error::AwsErrorClass;
use archiver_core::errors::{self, NamedError};
use archiver_core::flows::dynamodb::{
    release_table, restore_job_progress, temporary_table_in, temporary_table_tags, DeleteTableInput, DeletedTables,
    TableRelease, TemporaryTable,
};
use aws_sdk_dynamodb::types::Tag;
use aws_sdk_dynamodb::Client;
use lambda_runtime::{service_fn, LambdaEvent};
use serde_json::Value;

/// Serves the `delete-table` handler: builds its clients, then answers invocations until the runtime stops.
pub async fn run() -> Result<(), lambda_runtime::Error> {
    let deployment = required_env(DEPLOYMENT_NAME_ENV);
    let config = crate::common::aws_config().await;
    let (dynamodb, backup) = (Client::new(&config), aws_sdk_backup::Client::new(&config));
    let (dynamodb, backup, deployment) = (&dynamodb, &backup, &deployment);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        delete_table(dynamodb, backup, deployment, parse_input(event.payload)?).await
    }))
    .await
}

#[tracing::instrument(skip_all, fields(execution_id = input.execution_id))]
async fn delete_table(
    dynamodb: &Client,
    backup: &aws_sdk_backup::Client,
    deployment: &Result<String, StepError>,
    input: DeleteTableInput,
) -> Result<DeletedTables, StepError> {
    let mut report = DeletedTables::default();
    let Some(temporary) = temporary_table_in(&input.state, &input.execution_id) else {
        tracing::info!("no plan for a DynamoDB backup: no temporary table");
        return Ok(report);
    };
    let deployment = deployment.as_ref().map_err(Clone::clone)?;
    let execution_id = input.execution_id.as_str();
    let name = temporary.table_name.clone();
    let job = match &temporary.restore_job_id {
        Some(job_id) => Some(tables::restore_job(backup, job_id).await?),
        None => None,
    };
    let Some(table) = tables::describe(dynamodb, &name).await? else {
        if let Some(job) = &job {
            // A running restore job creates the table later: wait for it rather than leave it behind.
            // (A job that failed or was aborted created nothing.)
            let progress = restore_job_progress(&name, &job.job_id, &job.status, job.status_message.as_deref());
            if let Some(e) = progress.err().filter(|e| e.error_name() == errors::TABLE_NOT_READY) {
                return Err(e.into());
            }
        }
        report.already_gone.push(name);
        return Ok(report);
    };
    let created_by_job = job.as_ref().and_then(|j| j.created_resource_arn.as_deref()) == Some(table.table_arn.as_str());
    match release_table(&table, temporary.backup_arn.as_deref(), created_by_job) {
        TableRelease::Gone => report.already_gone.push(name),
        TableRelease::Foreign => tracing::warn!(table = name, "not restored for this execution: left alone"),
        TableRelease::Wait => {
            return Err(StepError::new(
                errors::TABLE_NOT_READY,
                format!("table {name} is {}: deleted once ACTIVE", table.status),
            ))
        }
        TableRelease::Delete => {
            tag(dynamodb, deployment, execution_id, &temporary, &table.table_arn).await?;
            match dynamodb.delete_table().table_name(&name).send().await {
                Ok(_) => {
                    tracing::info!(table = name, "temporary table deleted");
                    report.deleted.push(name);
                }
                Err(e) => {
                    let failure = AwsFailure::of(&format!("DeleteTable {name}"), &e);
                    match (failure.class, failure.code.as_deref()) {
                        (AwsErrorClass::NotFound, _) => report.already_gone.push(name),
                        (_, Some("ResourceInUseException")) => {
                            return Err(StepError::new(errors::TABLE_NOT_READY, failure.message))
                        }
                        _ => return Err(table_error(failure)),
                    }
                }
            }
        }
    }
    Ok(report)
}

/// TagResource with the temporary table's tags (idempotent: PrepareTable set the same ones).
async fn tag(
    dynamodb: &Client,
    deployment: &str,
    execution_id: &str,
    temporary: &TemporaryTable,
    table_arn: &str,
) -> Result<(), StepError> {
    let tags = temporary_table_tags(deployment, execution_id, &temporary.idempotency_key, &temporary.snapshot_id)
        .into_iter()
        .map(|(key, value)| Tag::builder().key(key).value(value).build().expect("key and value are set"));
    dynamodb
        .tag_resource()
        .resource_arn(table_arn)
        .set_tags(Some(tags.collect()))
        .send()
        .await
        .map_err(|e| table_error(AwsFailure::of(&format!("TagResource {table_arn}"), &e)))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Clients that must not be called: these documents need no lookup.
    fn offline_clients() -> (Client, aws_sdk_backup::Client) {
        let dynamodb = aws_sdk_dynamodb::Config::builder()
            .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
            .region(aws_sdk_dynamodb::config::Region::new("eu-west-1"))
            .endpoint_url("http://127.0.0.1:9")
            .build();
        let backup = aws_sdk_backup::Config::builder()
            .behavior_version(aws_sdk_backup::config::BehaviorVersion::latest())
            .region(aws_sdk_backup::config::Region::new("eu-west-1"))
            .endpoint_url("http://127.0.0.1:9")
            .build();
        (Client::from_conf(dynamodb), aws_sdk_backup::Client::from_conf(backup))
    }

    #[tokio::test]
    async fn a_plan_that_failed_leaves_nothing_to_delete_and_makes_no_call() {
        let input = DeleteTableInput {
            execution_id: "arn:aws:states:eu-west-1:1:execution:m:e".into(),
            state: serde_json::json!({"detail": {}, "error": {"Error": "InvalidEvent"}}),
        };
        let (dynamodb, backup) = offline_clients();
        let unset = Err(StepError::config("DEPLOYMENT_NAME is not needed for nothing".to_string()));
        assert_eq!(delete_table(&dynamodb, &backup, &unset, input).await.unwrap(), DeletedTables::default());
    }
}
