//! The `start-table-export` Lambda (state `StartTableExport`): describes the backup and the
//! backed-up table's point-in-time recovery, and either names the table and time to export
//! (PITR covers the backup) or restores the backup into the execution's temporary table. The
//! decision is [`plan_table_export`]'s; this handler makes the calls.
//!
//! Native DynamoDB backups (`…:table/T/backup/…`) are described with DescribeBackup and restored
//! with RestoreTableFromBackup; AWS Backup advanced recovery points (`…:backup:…:recovery-point:…`)
//! are described with AWS Backup's DescribeRecoveryPoint and restored with its StartRestoreJob,
//! as the role `RESTORE_ROLE_ARN` names (AWS Backup assumes it to create the table).

use crate::common::tables::{self, table_error, utc};
use crate::common::{parse_input, required_env, AwsFailure, StepError};
use archiver_core::arn::Arn;
use archiver_core::aws_error::AwsErrorClass;
use archiver_core::errors;
use archiver_core::flows::dynamodb::{
    plan_table_export, restore_job_request, sibling_table_arn, table_name_of, BackupFacts, DynamoDbError, ExportPlan,
    ExportSource, PitrWindow, Restorer, StartTableExportInput, TableSource,
};
use aws_sdk_dynamodb::Client;
use lambda_runtime::{service_fn, LambdaEvent};
use serde_json::Value;

/// The role AWS Backup assumes to restore a recovery point into a temporary table.
const RESTORE_ROLE_ENV: &str = "RESTORE_ROLE_ARN";

/// Serves the `start-table-export` handler: builds its clients, then answers invocations until the runtime stops.
pub async fn run() -> Result<(), lambda_runtime::Error> {
    let config = crate::common::aws_config().await;
    let (dynamodb, backup) = (Client::new(&config), aws_sdk_backup::Client::new(&config));
    let (dynamodb, backup) = (&dynamodb, &backup);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        start_table_export(dynamodb, backup, parse_input(event.payload)?).await
    }))
    .await
}

#[tracing::instrument(skip_all, fields(snapshot_id = input.request.snapshot_id, retry_count = input.retry_count))]
async fn start_table_export(
    dynamodb: &Client,
    backup: &aws_sdk_backup::Client,
    input: StartTableExportInput,
) -> Result<TableSource, StepError> {
    let arn = input.request.snapshot_arn.clone().ok_or_else(|| {
        StepError::from(DynamoDbError::InvalidInput {
            field: "snapshot_arn",
            reason: "is null: the backup has no ARN".into(),
        })
    })?;
    let facts = if arn.service == "backup" {
        describe_recovery_point(backup, input.request.vault_name.as_deref(), &arn).await?
    } else {
        describe_backup(dynamodb, &arn.to_string()).await?
    };
    let pitr = continuous_backups(dynamodb, &facts.table_arn).await?;
    let plan = plan_table_export(&input, &facts, pitr.as_ref())?;
    let source = match plan {
        ExportPlan::PointInTime { table_arn, export_time, reason } => TableSource {
            source: ExportSource::PointInTime,
            table_name: table_name_of(&table_arn).unwrap_or_else(|| table_arn.clone()),
            table_arn,
            export_time: Some(export_time),
            backup_arn: facts.backup_arn.clone(),
            backup_created_at: facts.created_at,
            reason,
            restore_job_id: None,
        },
        ExportPlan::Restore { table_name, reason, restorer } => {
            let (table_arn, restore_job_id) = match restorer {
                Restorer::DynamoDb => (restore(dynamodb, &facts.backup_arn, &table_name).await?, None),
                Restorer::AwsBackup => {
                    let job = start_restore_job(backup, &input, &facts.backup_arn, &table_name).await?;
                    let table_arn = sibling_table_arn(&facts.table_arn, &table_name).ok_or_else(|| {
                        StepError::new(errors::LOOKUP_INCOMPLETE, format!("{} is not a table ARN", facts.table_arn))
                    })?;
                    (table_arn, Some(job))
                }
            };
            TableSource {
                source: ExportSource::TemporaryTable,
                table_arn,
                table_name,
                export_time: None,
                backup_arn: facts.backup_arn.clone(),
                backup_created_at: facts.created_at,
                reason,
                restore_job_id,
            }
        }
    };
    tracing::info!(source = ?source.source, table = source.table_name, reason = source.reason, "export source chosen");
    Ok(source)
}

fn not_found_or(failure: AwsFailure) -> StepError {
    match failure.class {
        AwsErrorClass::NotFound => StepError::new(errors::SNAPSHOT_NOT_FOUND, failure.message),
        _ => table_error(failure),
    }
}

async fn describe_backup(dynamodb: &Client, backup_arn: &str) -> Result<BackupFacts, StepError> {
    let output = dynamodb
        .describe_backup()
        .backup_arn(backup_arn)
        .send()
        .await
        .map_err(|e| not_found_or(AwsFailure::of(&format!("DescribeBackup {backup_arn}"), &e)))?;
    let incomplete =
        |what: &str| StepError::new(errors::LOOKUP_INCOMPLETE, format!("DescribeBackup {backup_arn}: no {what}"));
    let description = output.backup_description().ok_or_else(|| incomplete("BackupDescription"))?;
    let details = description.backup_details().ok_or_else(|| incomplete("BackupDetails"))?;
    let table_arn = description
        .source_table_details()
        .and_then(|t| t.table_arn())
        .ok_or_else(|| incomplete("SourceTableDetails.TableArn"))?;
    Ok(BackupFacts {
        backup_arn: backup_arn.to_string(),
        table_arn: table_arn.to_string(),
        created_at: utc(details.backup_creation_date_time()).ok_or_else(|| incomplete("BackupCreationDateTime"))?,
        status: details.backup_status().as_str().to_string(),
        restorer: Restorer::DynamoDb,
    })
}

async fn describe_recovery_point(
    backup: &aws_sdk_backup::Client,
    vault_name: Option<&str>,
    arn: &Arn,
) -> Result<BackupFacts, StepError> {
    let vault_name = vault_name.ok_or_else(|| {
        StepError::from(DynamoDbError::InvalidInput {
            field: "vault_name",
            reason: "is null: DescribeRecoveryPoint needs it".into(),
        })
    })?;
    let output = backup
        .describe_recovery_point()
        .backup_vault_name(vault_name)
        .recovery_point_arn(arn.to_string())
        .send()
        .await
        .map_err(|e| not_found_or(AwsFailure::of(&format!("DescribeRecoveryPoint {arn}"), &e)))?;
    let incomplete =
        |what: &str| StepError::new(errors::LOOKUP_INCOMPLETE, format!("DescribeRecoveryPoint {arn}: no {what}"));
    Ok(BackupFacts {
        backup_arn: arn.to_string(),
        table_arn: output.resource_arn().ok_or_else(|| incomplete("ResourceArn"))?.to_string(),
        created_at: output
            .creation_date()
            .and_then(|t| chrono::DateTime::from_timestamp(t.secs(), t.subsec_nanos()))
            .ok_or_else(|| incomplete("CreationDate"))?,
        status: output.status().map(|s| s.as_str().to_string()).unwrap_or_default(),
        restorer: Restorer::AwsBackup,
    })
}

/// The table's PITR window; `None` when the table no longer exists.
async fn continuous_backups(dynamodb: &Client, table_arn: &str) -> Result<Option<PitrWindow>, StepError> {
    let table_name = table_name_of(table_arn).unwrap_or_else(|| table_arn.to_string());
    let output = match dynamodb.describe_continuous_backups().table_name(&table_name).send().await {
        Ok(output) => output,
        Err(e) => {
            let failure = AwsFailure::of(&format!("DescribeContinuousBackups {table_name}"), &e);
            return match failure.class {
                AwsErrorClass::NotFound => Ok(None),
                _ => Err(table_error(failure)),
            };
        }
    };
    Ok(Some(tables::pitr_window(output.continuous_backups_description())))
}

/// RestoreTableFromBackup into `table_name`; a table of that name restored from the same backup
/// is this execution's own from an earlier attempt, and is reused. Returns the table's ARN.
async fn restore(dynamodb: &Client, backup_arn: &str, table_name: &str) -> Result<String, StepError> {
    let operation = format!("RestoreTableFromBackup {backup_arn} as {table_name}");
    match dynamodb.restore_table_from_backup().backup_arn(backup_arn).target_table_name(table_name).send().await {
        Ok(output) => output
            .table_description()
            .and_then(|t| t.table_arn())
            .map(str::to_string)
            .ok_or_else(|| StepError::new(errors::LOOKUP_INCOMPLETE, format!("{operation}: no TableArn"))),
        Err(e) => {
            let failure = AwsFailure::of(&operation, &e);
            if failure.code.as_deref() != Some("TableAlreadyExistsException") {
                return Err(table_error(failure));
            }
            match tables::describe(dynamodb, table_name).await? {
                Some(table) if table.restored_from.as_deref() == Some(backup_arn) => {
                    tracing::info!(table_name, "reusing the table an earlier attempt restored");
                    Ok(table.table_arn)
                }
                _ => Err(table_error(failure)),
            }
        }
    }
}

/// AWS Backup's StartRestoreJob of the recovery point into `table_name`; returns the job's id.
async fn start_restore_job(
    backup: &aws_sdk_backup::Client,
    input: &StartTableExportInput,
    recovery_point_arn: &str,
    table_name: &str,
) -> Result<String, StepError> {
    let role = required_env(RESTORE_ROLE_ENV)?;
    let operation = format!("StartRestoreJob {recovery_point_arn} as {table_name}");
    let request = restore_job_request(input, table_name);
    let output = backup
        .start_restore_job()
        .recovery_point_arn(recovery_point_arn)
        .resource_type(request.resource_type)
        .iam_role_arn(role)
        .idempotency_token(request.idempotency_token)
        .set_metadata(Some(request.metadata.into_iter().collect()))
        .send()
        .await
        .map_err(|e| table_error(AwsFailure::of(&operation, &e)))?;
    let job = output
        .restore_job_id()
        .map(str::to_string)
        .ok_or_else(|| StepError::new(errors::LOOKUP_INCOMPLETE, format!("{operation}: no RestoreJobId")))?;
    tracing::info!(restore_job_id = job, table_name, "AWS Backup restores the recovery point");
    Ok(job)
}
