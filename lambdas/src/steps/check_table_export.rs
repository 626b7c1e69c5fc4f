//! The `check-table-export` Lambda (state `CheckTableExport`): DescribeExport; fails
//! `ExportInProgress` while the export runs (the ASL's bounded Retry is the poll), `ExportFailed`
//! with DynamoDB's FailureCode and FailureMessage if it failed, and on COMPLETED checks that the
//! export's `manifest-summary.json` is in the bucket (`ArchiveIncomplete` if not): DynamoDB writes
//! it last. Decisions: [`check_table_export`].

use crate::common::tables::{table_error, utc};
use crate::common::{parse_input, AwsFailure, StepError};
use archiver_core::aws_error::AwsErrorClass;
use archiver_core::errors;
use archiver_core::flows::dynamodb::{
    check_table_export, missing_summary, CheckTableExportInput, ExportResult, ExportStatus,
};
use aws_sdk_dynamodb::Client;
use lambda_runtime::{service_fn, LambdaEvent};
use serde_json::Value;

/// Serves the `check-table-export` handler: builds its clients, then answers invocations until the runtime stops.
pub async fn run() -> Result<(), lambda_runtime::Error> {
    let config = crate::common::aws_config().await;
    let dynamodb = Client::new(&config);
    // Path-style addressing works with every S3-compatible endpoint, the emulator's included.
    let s3 = aws_sdk_s3::Client::from_conf(aws_sdk_s3::config::Builder::from(&config).force_path_style(true).build());
    let (dynamodb, s3) = (&dynamodb, &s3);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        check(dynamodb, s3, parse_input(event.payload)?).await
    }))
    .await
}

#[tracing::instrument(skip_all, fields(export_arn = input.export_arn))]
async fn check(
    dynamodb: &Client,
    s3: &aws_sdk_s3::Client,
    input: CheckTableExportInput,
) -> Result<ExportResult, StepError> {
    let status = describe_export(dynamodb, &input.export_arn).await?;
    tracing::info!(status = status.status, "export status");
    let key = check_table_export(&input, &status)?;
    let destination = &input.destination;
    if let Err(e) = s3.head_object().bucket(&destination.bucket).key(&key).send().await {
        let failure = AwsFailure::of(&format!("HeadObject {}", destination.url_of(&key)), &e);
        return Err(match failure.class {
            AwsErrorClass::NotFound => missing_summary(destination, &key, "does not exist").into(),
            _ => failure.into_step_error(errors::STORAGE_ACCESS_FAILED),
        });
    }
    let result = ExportResult {
        export_arn: input.export_arn.clone(),
        location: destination.to_string(),
        manifest_summary_key: key,
        item_count: status.item_count.unwrap_or(0),
        billed_size_bytes: status.billed_size_bytes.unwrap_or(0),
        export_time: status.export_time,
    };
    tracing::info!(item_count = result.item_count, billed_size_bytes = result.billed_size_bytes, "export verified");
    Ok(result)
}

async fn describe_export(dynamodb: &Client, export_arn: &str) -> Result<ExportStatus, StepError> {
    let output = dynamodb
        .describe_export()
        .export_arn(export_arn)
        .send()
        .await
        .map_err(|e| table_error(AwsFailure::of(&format!("DescribeExport {export_arn}"), &e)))?;
    let Some(export) = output.export_description() else {
        return Err(StepError::new(
            errors::LOOKUP_INCOMPLETE,
            format!("DescribeExport {export_arn}: no ExportDescription"),
        ));
    };
    Ok(ExportStatus {
        status: export.export_status().map(|s| s.as_str().to_string()).unwrap_or_default(),
        failure_code: export.failure_code().map(str::to_string),
        failure_message: export.failure_message().map(str::to_string),
        item_count: export.item_count().and_then(|n| u64::try_from(n).ok()),
        billed_size_bytes: export.billed_size_bytes().and_then(|n| u64::try_from(n).ok()),
        export_manifest: export.export_manifest().map(str::to_string),
        export_time: export.export_time().and_then(utc),
    })
}
