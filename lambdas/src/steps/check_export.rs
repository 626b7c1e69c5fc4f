//! The `check-export` Lambda (state `CheckExport` of the RDS export flow): DescribeExportTasks.
//! While the export is STARTING, IN_PROGRESS or CANCELING it fails `ExportInProgress`, which the
//! ASL retries with a bounded backoff (exports take hours); FAILED or CANCELED fails
//! `ExportFailed` with RDS's `FailureCause`; COMPLETE lists the export's files and returns their
//! count and size, or fails `ArchiveIncomplete` when the `export_info` file or the data is
//! missing. Decisions: [`archiver_core::flows::rds_export`].

use crate::common::{parse_input, storage, AwsFailure, StepError};
use archiver_core::aws_error::AwsErrorClass;
use archiver_core::errors;
use archiver_core::flows::rds_export::{
    check_export, missing_export, verify_export, CheckExportInput, ExportTaskState, ExportedFiles,
};
use lambda_runtime::{service_fn, LambdaEvent};
use serde_json::Value;

/// Serves the `check-export` handler: builds its clients, then answers invocations until the runtime stops.
pub async fn run() -> Result<(), lambda_runtime::Error> {
    let config = crate::common::aws_config().await;
    let (rds, s3) = (aws_sdk_rds::Client::new(&config), crate::common::s3_client(&config));
    let (rds, s3) = (&rds, &s3);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        check(rds, s3, parse_input(event.payload)?).await
    }))
    .await
}

#[tracing::instrument(skip_all, fields(export_task_identifier = input.export_task_identifier))]
async fn check(
    rds: &aws_sdk_rds::Client,
    s3: &aws_sdk_s3::Client,
    input: CheckExportInput,
) -> Result<ExportedFiles, StepError> {
    let identifier = &input.export_task_identifier;
    let task = describe(rds, identifier).await?;
    tracing::info!(status = task.status, percent_progress = task.percent_progress, "export status");
    check_export(identifier, &task)?;
    let listing = storage::list(s3, &input.location).await?;
    let exported = verify_export(identifier, &input.location, &listing)?;
    tracing::info!(objects = exported.objects, total_size = exported.total_size, "export verified");
    Ok(exported)
}

async fn describe(rds: &aws_sdk_rds::Client, identifier: &str) -> Result<ExportTaskState, StepError> {
    let output = match rds.describe_export_tasks().export_task_identifier(identifier).send().await {
        Ok(output) => output,
        Err(e) => {
            let failure = AwsFailure::of(&format!("DescribeExportTasks {identifier}"), &e);
            return Err(match failure.class {
                AwsErrorClass::NotFound => missing_export(identifier).into(),
                _ => failure.into_step_error(errors::EXPORT_OPERATION_FAILED),
            });
        }
    };
    let task = output.export_tasks().first().ok_or_else(|| missing_export(identifier))?;
    Ok(ExportTaskState {
        status: task.status().unwrap_or_default().to_string(),
        percent_progress: task.percent_progress().and_then(|p| u32::try_from(p).ok()),
        failure_cause: task.failure_cause().map(str::to_string),
    })
}
