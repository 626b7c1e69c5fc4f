//! The `export-table` Lambda (state `ExportTable`): ExportTableToPointInTime of the table
//! `StartTableExport` chose, at the backup's time (PITR) or now (temporary table), into the
//! archive's prefix as DynamoDB JSON. The client token is per execution, so a retried call
//! returns the export the first one started. Parameters: [`export_request`].

use crate::common::tables::{table_error, utc};
use crate::common::{parse_input, AwsFailure, StepError};
use archiver_core::errors;
use archiver_core::flows::dynamodb::{export_request, ExportTableInput, TableExport};
use aws_sdk_dynamodb::types::ExportFormat;
use aws_sdk_dynamodb::Client;
use lambda_runtime::{service_fn, LambdaEvent};
use serde_json::Value;

/// Serves the `export-table` handler: builds its clients, then answers invocations until the runtime stops.
pub async fn run() -> Result<(), lambda_runtime::Error> {
    let dynamodb = Client::new(&crate::common::aws_config().await);
    let dynamodb = &dynamodb;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        export(dynamodb, parse_input(event.payload)?).await
    }))
    .await
}

#[tracing::instrument(skip_all, fields(table = input.table_source.table_name, destination = %input.destination))]
async fn export(dynamodb: &Client, input: ExportTableInput) -> Result<TableExport, StepError> {
    let request = export_request(&input);
    let export_time = request.export_time.map(|t| aws_smithy_types::DateTime::from_millis(t.timestamp_millis()));
    let prefix = Some(request.prefix.clone()).filter(|p| !p.is_empty());
    let output = dynamodb
        .export_table_to_point_in_time()
        .table_arn(&request.table_arn)
        .set_export_time(export_time)
        .s3_bucket(&request.bucket)
        .set_s3_prefix(prefix)
        .export_format(ExportFormat::from(request.export_format))
        .client_token(&request.client_token)
        .send()
        .await
        .map_err(|e| {
            let failure = AwsFailure::of(&format!("ExportTableToPointInTime {}", request.table_arn), &e);
            match failure.code.as_deref() {
                // Just enabled on a temporary table and not usable yet: the bounded Retry waits.
                Some("PointInTimeRecoveryUnavailableException") => {
                    StepError::new(errors::PITR_NOT_READY, failure.message)
                }
                _ => table_error(failure),
            }
        })?;
    let description = output.export_description().ok_or_else(|| {
        StepError::new(
            errors::LOOKUP_INCOMPLETE,
            format!("ExportTableToPointInTime {}: no ExportDescription", request.table_arn),
        )
    })?;
    let export = TableExport {
        export_arn: description.export_arn().unwrap_or_default().to_string(),
        table_arn: request.table_arn,
        export_time: description.export_time().and_then(utc).or(request.export_time),
    };
    tracing::info!(export_arn = export.export_arn, "export started");
    Ok(export)
}
