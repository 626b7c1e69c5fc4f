//! The DynamoDB flow's tables as its Lambdas see them: DescribeTable reduced to an
//! [`ExistingTable`], for `prepare-table` and `delete-table`, continuous backups reduced to a
//! [`PitrWindow`], AWS Backup's restore jobs reduced to a [`RestoreJob`], and the SDK's times as
//! chrono's.

use archiver_core::aws_error::AwsErrorClass;
use archiver_core::errors;
use archiver_core::flows::dynamodb::{ExistingTable, PitrWindow};
use aws_sdk_dynamodb::types::ContinuousBackupsDescription;
use aws_sdk_dynamodb::Client;
use chrono::{DateTime, Utc};

use crate::common::{AwsFailure, StepError};

/// A DynamoDB error of `operation` as the step's error: `Retryable` or `TableOperationFailed`.
pub fn table_error(failure: AwsFailure) -> StepError {
    failure.into_step_error(errors::TABLE_OPERATION_FAILED)
}

/// One table by name; `None` when DynamoDB says it does not exist.
pub async fn describe(client: &Client, table_name: &str) -> Result<Option<ExistingTable>, StepError> {
    match client.describe_table().table_name(table_name).send().await {
        Ok(output) => Ok(output.table().map(|table| ExistingTable {
            table_name: table.table_name().unwrap_or(table_name).to_string(),
            table_arn: table.table_arn().unwrap_or_default().to_string(),
            status: table.table_status().map(|s| s.as_str().to_string()).unwrap_or_default(),
            restored_from: table.restore_summary().and_then(|r| r.source_backup_arn()).map(str::to_string),
        })),
        Err(e) => {
            let failure = AwsFailure::of(&format!("DescribeTable {table_name}"), &e);
            match failure.class {
                AwsErrorClass::NotFound => Ok(None),
                _ => Err(table_error(failure)),
            }
        }
    }
}

/// AWS Backup's restore job of a temporary table, as DescribeRestoreJob reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreJob {
    pub job_id: String,
    /// `PENDING | RUNNING | COMPLETED | ABORTED | FAILED`.
    pub status: String,
    pub status_message: Option<String>,
    /// The table it restored, once COMPLETED.
    pub created_resource_arn: Option<String>,
}

/// DescribeRestoreJob.
pub async fn restore_job(backup: &aws_sdk_backup::Client, job_id: &str) -> Result<RestoreJob, StepError> {
    let output = backup
        .describe_restore_job()
        .restore_job_id(job_id)
        .send()
        .await
        .map_err(|e| table_error(AwsFailure::of(&format!("DescribeRestoreJob {job_id}"), &e)))?;
    Ok(RestoreJob {
        job_id: job_id.to_string(),
        status: output.status().map(|s| s.as_str().to_string()).unwrap_or_default(),
        status_message: output.status_message().map(str::to_string),
        created_resource_arn: output.created_resource_arn().map(str::to_string),
    })
}

/// An SDK timestamp as a UTC instant.
pub fn utc(time: &aws_smithy_types::DateTime) -> Option<DateTime<Utc>> {
    DateTime::<Utc>::from_timestamp(time.secs(), time.subsec_nanos())
}

/// The PITR window DescribeContinuousBackups or UpdateContinuousBackups reports (`DISABLED` when
/// it reports none).
pub fn pitr_window(description: Option<&ContinuousBackupsDescription>) -> PitrWindow {
    let pitr = description.and_then(|d| d.point_in_time_recovery_description());
    PitrWindow {
        status: pitr.and_then(|p| p.point_in_time_recovery_status()).map_or("DISABLED", |s| s.as_str()).to_string(),
        earliest: pitr.and_then(|p| p.earliest_restorable_date_time()).and_then(utc),
        latest: pitr.and_then(|p| p.latest_restorable_date_time()).and_then(utc),
    }
}
