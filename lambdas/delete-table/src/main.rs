//! The `delete-table` Lambda (states `DeleteTable` and `Cleanup`): deletes the execution's
//! temporary table, found by the name [`temporary_table_in`] derives from the plan and the
//! execution (so a table whose restore never answered is still found), and only if it was
//! restored from this execution's backup. A table still CREATING cannot be deleted yet: the step
//! fails `TableNotReady` and the ASL's bounded Retry comes back. Nothing to delete (the
//! point-in-time path, a Plan that failed) is a success. Decisions: [`release_table`].

use archiver_core::aws_error::AwsErrorClass;
use archiver_core::dynamodb::{release_table, temporary_table_in, DeleteTableInput, DeletedTables, TableRelease};
use archiver_core::errors;
use aws_sdk_dynamodb::Client;
use lambda_common::tables::{self, table_error};
use lambda_common::{parse_input, AwsFailure, StepError};
use lambda_runtime::{service_fn, LambdaEvent};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let dynamodb = Client::new(&lambda_common::aws_config().await);
    let dynamodb = &dynamodb;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        delete_table(dynamodb, parse_input(event.payload)?).await
    }))
    .await
}

#[tracing::instrument(skip_all, fields(execution_id = input.execution_id))]
async fn delete_table(dynamodb: &Client, input: DeleteTableInput) -> Result<DeletedTables, StepError> {
    let mut report = DeletedTables::default();
    let Some((name, backup_arn)) = temporary_table_in(&input.state, &input.execution_id) else {
        tracing::info!("no plan for a DynamoDB backup: no temporary table");
        return Ok(report);
    };
    let Some(table) = tables::describe(dynamodb, &name).await? else {
        report.already_gone.push(name);
        return Ok(report);
    };
    match release_table(&table, backup_arn.as_deref()) {
        TableRelease::Gone => report.already_gone.push(name),
        TableRelease::Foreign => tracing::warn!(table = name, "not restored from this execution's backup: left alone"),
        TableRelease::Wait => {
            return Err(StepError::new(errors::TABLE_NOT_READY, format!("table {name} is {}: deleted once ACTIVE", table.status)))
        }
        TableRelease::Delete => match dynamodb.delete_table().table_name(&name).send().await {
            Ok(_) => {
                tracing::info!(table = name, "temporary table deleted");
                report.deleted.push(name);
            }
            Err(e) => {
                let failure = AwsFailure::of(&format!("DeleteTable {name}"), &e);
                match (failure.class, failure.code.as_deref()) {
                    (AwsErrorClass::NotFound, _) => report.already_gone.push(name),
                    (_, Some("ResourceInUseException")) => return Err(StepError::new(errors::TABLE_NOT_READY, failure.message)),
                    _ => return Err(table_error(failure)),
                }
            }
        },
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A client that must not be called: these documents need no lookup.
    fn offline_client() -> Client {
        let config = aws_sdk_dynamodb::Config::builder()
            .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
            .region(aws_sdk_dynamodb::config::Region::new("eu-west-1"))
            .endpoint_url("http://127.0.0.1:9")
            .build();
        Client::from_conf(config)
    }

    #[tokio::test]
    async fn a_plan_that_failed_leaves_nothing_to_delete_and_makes_no_call() {
        let input = DeleteTableInput {
            execution_id: "arn:aws:states:eu-west-1:1:execution:m:e".into(),
            state: serde_json::json!({"detail": {}, "error": {"Error": "InvalidEvent"}}),
        };
        assert_eq!(delete_table(&offline_client(), input).await.unwrap(), DeletedTables::default());
    }
}
