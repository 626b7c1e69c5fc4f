//! The DynamoDB export flow (`state-machines/dynamodb-export.asl.json`): the input and output of
//! each of its states, and every decision its Lambdas make: whether point-in-time recovery covers
//! the backup, the temporary table's name and tags, the export's client token and keys, and what
//! each table, PITR and export status means.
//!
//! The execution's document grows state by state, each writing one field (its `ResultPath`):
//!
//! ```text
//! Plan                -> the whole document: PlanOutcome (ArchiveRequest fields + "outcome")
//! Handoff             -> handoff           (another flow's plan: started there; a refusal -> duplicate)
//! StartTableExport    -> table_source      (TableSource: the source table with PITR, or a restored one)
//! PrepareTable        -> (nothing)         temporary table only: TableNotReady / PitrNotReady until ready
//! ExportTable         -> table_export      (TableExport)
//! CheckTableExport    -> export_result     (ExportResult) fails ExportInProgress until done, bounded
//! DeleteTable         -> deleted_tables    (DeletedTables)
//! DeleteRecoveryPoint -> recovery_point_deletion
//! Notify*             -> notification
//! any Catch           -> error | cleanup_error | notify_error
//! ```
//!
//! [`FlowDocument`](crate::document::FlowDocument)`<`[`DynamodbExportSteps`]`>` is that document;
//! `core/tests/asl.rs` checks every JSONPath of the
//! ASL against it.
//!
//! Why two ways: ExportTableToPointInTime reads a table's PITR history, not a backup. When the
//! backed-up table still exists and its PITR window holds the backup's creation time, exporting
//! the table *at that time* gives the backup's content with no table of ours to pay for. Otherwise
//! (the table is gone, PITR is off or was enabled later) the backup is restored into a temporary
//! table, PITR is enabled on it, and it is exported as it is now; the cleanup deletes that table
//! on every path. <https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/S3DataExport.HowItWorks.html>
//!
//! Who restores depends on the backup ([`Restorer`]): DynamoDB restores its own backups
//! (RestoreTableFromBackup, the table exists at once, CREATING); only AWS Backup restores a recovery
//! point with its advanced features (StartRestoreJob, with a role AWS Backup assumes: the table
//! appears when the job has run), so for those PrepareTable and the cleanup follow the restore job.
//! <https://docs.aws.amazon.com/aws-backup/latest/devguide/restoring-dynamodb.html>

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::arn::Arn;
use crate::errors::{self, NamedError};
use crate::naming::{client_token, TAG_EXECUTION, TAG_IDEMPOTENCY_KEY, TAG_MANAGED_BY, TAG_SNAPSHOT_ID};
use crate::request::ArchiveRequest;
use crate::resource::ResourceKind;
use crate::s3_location::S3Location;

/// Every temporary table's name starts with this: an operator listing tables sees whose they are.
pub const TEMPORARY_TABLE_PREFIX: &str = "backup-archiver-";
/// The export format: DynamoDB JSON keeps every attribute type (sets, binary) and is what
/// ImportTable reads back; ION would do too, but fewer tools read it.
/// <https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/S3DataExport.Output.html>
pub const EXPORT_FORMAT: &str = "DYNAMODB_JSON";
/// DynamoDB writes an export under `<prefix>/AWSDynamoDB/<export id>/`: `manifest-summary.json`,
/// `manifest-files.json` and `data/`. The summary is written last, so its presence means the
/// export is whole. <https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/S3DataExport.Output.html>
pub const EXPORT_DIRECTORY: &str = "AWSDynamoDB";
pub const MANIFEST_SUMMARY_NAME: &str = "manifest-summary.json";
/// StartTableExport's retries (any error counts, `$$.State.RetryCount`) after which a PITR window
/// that has not reached the backup's time yet stops being waited for and the backup is restored
/// instead. PITR's latest restorable time trails the present by about five minutes, and a backup
/// job's event can arrive sooner; with the ASL's interval (60 s, x1.5) four retries wait about
/// eight minutes. Arbitrary beyond that, but bounded by the ASL's MaxAttempts.
/// <https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/PointInTimeRecovery.html>
pub const PITR_CATCH_UP_RETRIES: u32 = 4;
/// DynamoDB table names: 3 to 255 characters of `[A-Za-z0-9_.-]`.
/// <https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/HowItWorks.NamingRulesDataTypes.html>
pub const MAX_TABLE_NAME_LEN: usize = 255;

/// Why a step of the DynamoDB flow cannot go on. Its [`NamedError`] name is the Lambda's error
/// type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DynamoDbError {
    #[error("invalid input: `{field}` {reason}")]
    InvalidInput { field: &'static str, reason: String },
    #[error("backup {backup_arn} is {status}, not ready yet")]
    BackupNotReady { backup_arn: String, status: String },
    #[error("backup {backup_arn} is {status} and cannot be exported")]
    BackupUnusable { backup_arn: String, status: String },
    #[error(
        "the PITR window of {table_name} ends at {latest}, before the backup's time {backup_time}: waiting for it"
    )]
    PitrBehind { table_name: String, backup_time: DateTime<Utc>, latest: DateTime<Utc> },
    #[error("table {table_name} is {status}, not ACTIVE yet")]
    TableNotReady { table_name: String, status: String },
    #[error("table {table_name} is {status} and will not become ACTIVE")]
    TableFailed { table_name: String, status: String },
    #[error("point-in-time recovery of {table_name} is {status}, not ENABLED yet")]
    PitrNotReady { table_name: String, status: String },
    #[error("export {export_arn} is {status}")]
    ExportInProgress { export_arn: String, status: String },
    #[error("export {export_arn} FAILED: {failure_code}: {failure_message}")]
    ExportFailed { export_arn: String, failure_code: String, failure_message: String },
    #[error("the export at {location} is incomplete: {problem}")]
    ExportIncomplete { location: String, problem: String },
}

impl NamedError for DynamoDbError {
    fn error_name(&self) -> &'static str {
        match self {
            DynamoDbError::InvalidInput { .. } => errors::INVALID_EVENT,
            DynamoDbError::BackupNotReady { .. } => errors::SNAPSHOT_NOT_READY,
            DynamoDbError::BackupUnusable { .. } => errors::SNAPSHOT_UNUSABLE,
            DynamoDbError::PitrBehind { .. } | DynamoDbError::PitrNotReady { .. } => errors::PITR_NOT_READY,
            DynamoDbError::TableNotReady { .. } => errors::TABLE_NOT_READY,
            DynamoDbError::TableFailed { .. } => errors::TABLE_OPERATION_FAILED,
            DynamoDbError::ExportInProgress { .. } => errors::EXPORT_IN_PROGRESS,
            DynamoDbError::ExportFailed { .. } => errors::EXPORT_FAILED,
            DynamoDbError::ExportIncomplete { .. } => errors::ARCHIVE_INCOMPLETE,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// StartTableExport.

/// Input of `start-table-export`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StartTableExportInput {
    pub request: ArchiveRequest,
    pub execution_id: String,
    /// `$$.State.RetryCount`: after [`PITR_CATCH_UP_RETRIES`] the backup is restored instead.
    #[serde(default)]
    pub retry_count: u32,
}

/// What DescribeBackup (or AWS Backup's DescribeRecoveryPoint) says about the backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupFacts {
    pub backup_arn: String,
    /// The backed-up table's ARN: ExportTableToPointInTime's `TableArn`.
    pub table_arn: String,
    pub created_at: DateTime<Utc>,
    /// `CREATING | AVAILABLE | DELETED` (DynamoDB), `COMPLETED | …` (AWS Backup).
    pub status: String,
    pub restorer: Restorer,
}

/// Who can restore a backup into a table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Restorer {
    /// DynamoDB's RestoreTableFromBackup: a DynamoDB backup (`…:table/T/backup/…`).
    DynamoDb,
    /// AWS Backup's StartRestoreJob: a recovery point with AWS Backup's advanced features
    /// (`…:backup:…:recovery-point:…`), which DynamoDB does not know.
    AwsBackup,
}

/// StartRestoreJob's `ResourceType` for DynamoDB.
/// <https://docs.aws.amazon.com/aws-backup/latest/devguide/API_StartRestoreJob.html>
pub const RESTORE_RESOURCE_TYPE: &str = "DynamoDB";

/// StartRestoreJob's parameters, but for the role (the deployment's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreJobRequest {
    pub resource_type: &'static str,
    /// The new table's name, encrypted as DynamoDB encrypts by default (an AWS owned key: no key
    /// of the account to grant AWS Backup).
    /// <https://docs.aws.amazon.com/aws-backup/latest/devguide/restoring-dynamodb.html>
    pub metadata: Vec<(String, String)>,
    /// The execution's: a retried call returns the job the first call started.
    pub idempotency_token: String,
}

pub fn restore_job_request(input: &StartTableExportInput, table_name: &str) -> RestoreJobRequest {
    RestoreJobRequest {
        resource_type: RESTORE_RESOURCE_TYPE,
        metadata: vec![("targetTableName".into(), table_name.into()), ("encryptionType".into(), "Default".into())],
        idempotency_token: client_token(&input.request.idempotency_key, &input.execution_id),
    }
}

/// The ARN `table_name` will have in the account and region of `source_table_arn`: AWS Backup
/// restores into the recovery point's region, and answers StartRestoreJob with a job id only.
pub fn sibling_table_arn(source_table_arn: &str, table_name: &str) -> Option<String> {
    let (account_and_region, _) = source_table_arn.split_once(":table/")?;
    Some(format!("{account_and_region}:table/{table_name}"))
}

/// Where AWS Backup's restore job stands, for a table that does not exist (yet): `Ok` once the
/// job COMPLETED, `TableNotReady` (retried, bounded) while it runs, `TableOperationFailed` when it
/// failed or was aborted.
/// <https://docs.aws.amazon.com/aws-backup/latest/devguide/API_DescribeRestoreJob.html>
pub fn restore_job_progress(
    table_name: &str,
    job_id: &str,
    job_status: &str,
    status_message: Option<&str>,
) -> Result<(), DynamoDbError> {
    match job_status {
        "COMPLETED" => Ok(()),
        "CREATED" | "PENDING" | "RUNNING" => Err(DynamoDbError::TableNotReady {
            table_name: table_name.into(),
            status: format!("being restored by AWS Backup (restore job {job_id} {job_status})"),
        }),
        _ => Err(DynamoDbError::TableFailed {
            table_name: table_name.into(),
            status: format!(
                "not restored: AWS Backup's restore job {job_id} ended {job_status}: {}",
                status_message.unwrap_or("(no message)")
            ),
        }),
    }
}

/// The source table's continuous backups, as DescribeContinuousBackups reports them; `None` for
/// a table that no longer exists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PitrWindow {
    /// `ENABLED | DISABLED` (and `ENABLING` while it is being turned on).
    pub status: String,
    pub earliest: Option<DateTime<Utc>>,
    pub latest: Option<DateTime<Utc>>,
}

/// Where the export reads from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExportSource {
    /// The backed-up table itself, at the backup's creation time, from its PITR history.
    PointInTime,
    /// A table restored from the backup, exported as it is now.
    TemporaryTable,
}

/// Output of `start-table-export`, at `$.table_source`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableSource {
    pub source: ExportSource,
    /// The table the export reads: the source table, or the temporary one.
    pub table_name: String,
    pub table_arn: String,
    /// The export's point in time: the backup's creation time for `point_in_time`, `null` (now)
    /// for a temporary table, which holds exactly the backup's content.
    pub export_time: Option<DateTime<Utc>>,
    pub backup_arn: String,
    pub backup_created_at: DateTime<Utc>,
    /// Why this source, for the notification: "PITR of Orders covers 2025-03-04T02:00:00Z".
    pub reason: String,
    /// AWS Backup's restore job that creates the temporary table, for a recovery point only
    /// DynamoDB cannot restore; `null` otherwise. Always present, so the ASL can pass it on.
    #[serde(default)]
    pub restore_job_id: Option<String>,
}

/// What `start-table-export` does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExportPlan {
    /// Export `table_arn` at `export_time` (ExportTableToPointInTime, no table of ours).
    PointInTime { table_arn: String, export_time: DateTime<Utc>, reason: String },
    /// Restore into `table_name` (DynamoDB or AWS Backup, as `restorer` says), then prepare and
    /// export it.
    Restore { table_name: String, reason: String, restorer: Restorer },
}

/// The table name in a DynamoDB table ARN (`…:table/Orders`, or a backup's `…:table/Orders/backup/…`).
pub fn table_name_of(arn: &str) -> Option<String> {
    let arn: Arn = arn.parse().ok()?;
    let path = arn.id_of("dynamodb", "table")?;
    path.split('/').next().filter(|name| !name.is_empty()).map(str::to_string)
}

/// The temporary table of one execution: `backup-archiver-<idempotency key>-<hash>`, where the
/// hash is of the key and the execution. Stable for the execution, so a retried Lambda finds the
/// table its first attempt restored and the cleanup finds it by name even if the restore's answer
/// never reached the state machine; different for a replay, which must not trip over a table of
/// the first execution that DynamoDB is still deleting.
pub fn temporary_table_name(idempotency_key: &str, execution_id: &str) -> String {
    let name = format!("{TEMPORARY_TABLE_PREFIX}{}", client_token(idempotency_key, execution_id));
    debug_assert!(name.len() <= MAX_TABLE_NAME_LEN);
    name
}

/// Tags that mark a temporary table as the deployment's, as [`crate::flows::ebs`]'s volumes are tagged.
pub fn temporary_table_tags(
    deployment: &str,
    execution_id: &str,
    idempotency_key: &str,
    snapshot_id: &str,
) -> Vec<(String, String)> {
    vec![
        (TAG_MANAGED_BY.to_string(), deployment.to_string()),
        (TAG_EXECUTION.to_string(), execution_id.to_string()),
        (TAG_IDEMPOTENCY_KEY.to_string(), idempotency_key.to_string()),
        (TAG_SNAPSHOT_ID.to_string(), snapshot_id.to_string()),
    ]
}

/// Whether PITR can export the table as it was at `time`: enabled, and `time` inside the window.
/// `Err` when the window has not reached `time` yet (it trails the present by minutes).
pub fn pitr_covers(window: &PitrWindow, time: DateTime<Utc>) -> Result<bool, (DateTime<Utc>, DateTime<Utc>)> {
    if window.status != "ENABLED" {
        return Ok(false);
    }
    match (window.earliest, window.latest) {
        (Some(earliest), _) if time < earliest => Ok(false),
        (Some(_), Some(latest)) if time > latest => Err((time, latest)),
        (Some(_), Some(_)) => Ok(true),
        // A window without bounds cannot be checked: restoring is always correct.
        _ => Ok(false),
    }
}

/// Decides how to export the backup (see the module documentation).
pub fn plan_table_export(
    input: &StartTableExportInput,
    backup: &BackupFacts,
    source_pitr: Option<&PitrWindow>,
) -> Result<ExportPlan, DynamoDbError> {
    if input.execution_id.is_empty() {
        return Err(DynamoDbError::InvalidInput { field: "execution_id", reason: "is empty".into() });
    }
    match backup.status.to_ascii_uppercase().as_str() {
        "AVAILABLE" | "COMPLETED" => {}
        "CREATING" => {
            return Err(DynamoDbError::BackupNotReady {
                backup_arn: backup.backup_arn.clone(),
                status: backup.status.clone(),
            })
        }
        _ => {
            return Err(DynamoDbError::BackupUnusable {
                backup_arn: backup.backup_arn.clone(),
                status: backup.status.clone(),
            })
        }
    }
    let table = table_name_of(&backup.table_arn).unwrap_or_else(|| backup.table_arn.clone());
    let restore = |reason: String| {
        Ok(ExportPlan::Restore {
            table_name: temporary_table_name(&input.request.idempotency_key, &input.execution_id),
            reason,
            restorer: backup.restorer,
        })
    };
    let Some(window) = source_pitr else {
        return restore(format!("table {table} no longer exists"));
    };
    match pitr_covers(window, backup.created_at) {
        Ok(true) => Ok(ExportPlan::PointInTime {
            table_arn: backup.table_arn.clone(),
            export_time: backup.created_at,
            reason: format!("PITR of {table} covers {}", backup.created_at.to_rfc3339()),
        }),
        Ok(false) if window.status != "ENABLED" => restore(format!("PITR of {table} is {}", window.status)),
        Ok(false) => restore(format!("PITR of {table} starts after the backup")),
        Err(_) if input.retry_count >= PITR_CATCH_UP_RETRIES => {
            restore(format!("PITR of {table} did not reach the backup's time"))
        }
        Err((backup_time, latest)) => Err(DynamoDbError::PitrBehind { table_name: table, backup_time, latest }),
    }
}

// ---------------------------------------------------------------------------------------------
// PrepareTable.

/// Input of `prepare-table` (temporary tables only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrepareTableInput {
    pub table_name: String,
    pub table_arn: String,
    pub execution_id: String,
    pub idempotency_key: String,
    pub snapshot_id: String,
    /// [`TableSource::restore_job_id`]: while it runs, a missing table is not ready yet.
    #[serde(default)]
    pub restore_job_id: Option<String>,
}

/// What `prepare-table` does next, from the table's status and its PITR status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TablePreparation {
    /// ACTIVE with PITR ENABLED: ready to export.
    Ready,
    /// ACTIVE with PITR DISABLED: UpdateContinuousBackups, then fail `PitrNotReady` unless the
    /// answer says ENABLED already.
    EnablePitr,
}

/// `Ok` when the table can go on, or the error the ASL's Retry waits on (bounded).
/// <https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_TableDescription.html>
pub fn prepare_table(
    table_name: &str,
    table_status: &str,
    pitr_status: Option<&str>,
) -> Result<TablePreparation, DynamoDbError> {
    match table_status {
        "ACTIVE" => {}
        "CREATING" | "UPDATING" => {
            return Err(DynamoDbError::TableNotReady { table_name: table_name.into(), status: table_status.into() })
        }
        // DELETING, ARCHIVING, ARCHIVED, INACCESSIBLE_ENCRYPTION_CREDENTIALS, or gone.
        _ => return Err(DynamoDbError::TableFailed { table_name: table_name.into(), status: table_status.into() }),
    }
    match pitr_status {
        Some("ENABLED") => Ok(TablePreparation::Ready),
        Some("DISABLED") | None => Ok(TablePreparation::EnablePitr),
        Some(other) => Err(DynamoDbError::PitrNotReady { table_name: table_name.into(), status: other.into() }),
    }
}

// ---------------------------------------------------------------------------------------------
// ExportTable.

/// Input of `export-table`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportTableInput {
    pub table_source: TableSource,
    pub destination: S3Location,
    pub idempotency_key: String,
    pub execution_id: String,
}

/// ExportTableToPointInTime's parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportRequest {
    pub table_arn: String,
    /// `None`: now (a temporary table). Omitted rather than set to "now", so that a retried call
    /// has the same parameters as the first and its client token returns the first export.
    pub export_time: Option<DateTime<Utc>>,
    pub bucket: String,
    /// The archive's prefix: DynamoDB adds `AWSDynamoDB/<export id>/` under it.
    pub prefix: String,
    pub export_format: &'static str,
    /// Makes a retried call of one execution return the same export (valid 8 hours). Unique per
    /// execution, so a replay after a FAILED export starts a new one instead of getting the
    /// failed one back.
    /// <https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_ExportTableToPointInTime.html>
    pub client_token: String,
}

pub fn export_request(input: &ExportTableInput) -> ExportRequest {
    ExportRequest {
        table_arn: input.table_source.table_arn.clone(),
        export_time: input.table_source.export_time,
        bucket: input.destination.bucket.clone(),
        prefix: input.destination.prefix.clone(),
        export_format: EXPORT_FORMAT,
        client_token: client_token(&input.idempotency_key, &input.execution_id),
    }
}

/// Output of `export-table`, at `$.table_export`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableExport {
    pub export_arn: String,
    pub table_arn: String,
    pub export_time: Option<DateTime<Utc>>,
}

// ---------------------------------------------------------------------------------------------
// CheckTableExport.

/// Input of `check-table-export`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckTableExportInput {
    pub export_arn: String,
    pub destination: S3Location,
}

/// What DescribeExport reports, reduced to what the flow decides on.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportStatus {
    /// `IN_PROGRESS | COMPLETED | FAILED`.
    pub status: String,
    pub failure_code: Option<String>,
    pub failure_message: Option<String>,
    pub item_count: Option<u64>,
    pub billed_size_bytes: Option<u64>,
    /// `ExportManifest`: the summary's key relative to the prefix (`AWSDynamoDB/<id>/manifest-summary.json`).
    pub export_manifest: Option<String>,
    pub export_time: Option<DateTime<Utc>>,
}

/// The export's id: the last segment of `…:table/T/export/<id>`.
pub fn export_id(export_arn: &str) -> Option<&str> {
    export_arn.rsplit_once("/export/").map(|(_, id)| id).filter(|id| !id.is_empty() && !id.contains('/'))
}

/// The key of the export's `manifest-summary.json`: DescribeExport's `ExportManifest` under the
/// prefix, or else the documented layout built from the export id.
pub fn manifest_summary_key(
    destination: &S3Location,
    export_arn: &str,
    export_manifest: Option<&str>,
) -> Option<String> {
    match export_manifest.filter(|m| !m.is_empty()) {
        Some(manifest) => Some(destination.key(manifest.trim_start_matches('/'))),
        None => {
            export_id(export_arn).map(|id| destination.key(&format!("{EXPORT_DIRECTORY}/{id}/{MANIFEST_SUMMARY_NAME}")))
        }
    }
}

/// `Ok(key of the summary to check)` once COMPLETED; the retried or final error otherwise.
/// <https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_ExportDescription.html>
pub fn check_table_export(input: &CheckTableExportInput, status: &ExportStatus) -> Result<String, DynamoDbError> {
    match status.status.as_str() {
        "COMPLETED" => manifest_summary_key(&input.destination, &input.export_arn, status.export_manifest.as_deref())
            .ok_or_else(|| DynamoDbError::ExportIncomplete {
                location: input.destination.to_string(),
                problem: format!("{} names no manifest and its ARN no export id", input.export_arn),
            }),
        "FAILED" => Err(DynamoDbError::ExportFailed {
            export_arn: input.export_arn.clone(),
            failure_code: status.failure_code.clone().unwrap_or_else(|| "Unknown".into()),
            failure_message: status.failure_message.clone().unwrap_or_else(|| "(no message)".into()),
        }),
        other => Err(DynamoDbError::ExportInProgress { export_arn: input.export_arn.clone(), status: other.into() }),
    }
}

/// The error for a COMPLETED export whose summary is not in the bucket.
pub fn missing_summary(destination: &S3Location, key: &str, why: &str) -> DynamoDbError {
    DynamoDbError::ExportIncomplete {
        location: destination.to_string(),
        problem: format!("{} {why}", destination.url_of(key)),
    }
}

/// Output of `check-table-export`, at `$.export_result`: the export is complete and its summary
/// is in the bucket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportResult {
    pub export_arn: String,
    /// `s3://bucket/prefix`.
    pub location: String,
    pub manifest_summary_key: String,
    pub item_count: u64,
    pub billed_size_bytes: u64,
    pub export_time: Option<DateTime<Utc>>,
}

// ---------------------------------------------------------------------------------------------
// DeleteTable.

/// Input of `delete-table`, on the way out of a good export and on the cleanup path, where the
/// document may hold anything from a raw event to a full state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeleteTableInput {
    pub execution_id: String,
    /// The execution's document (`$`).
    pub state: Value,
}

/// A table as DescribeTable reports it, reduced to what the cleanup decides on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExistingTable {
    pub table_name: String,
    pub table_arn: String,
    pub status: String,
    /// `RestoreSummary.SourceBackupArn`: only a table restored from this execution's backup is
    /// deleted, whatever its name says.
    pub restored_from: Option<String>,
}

/// What to do with the temporary table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableRelease {
    Gone,
    /// Not restored from our backup: never touched.
    Foreign,
    Delete,
    /// CREATING: DeleteTable would fail ResourceInUseException; fail `TableNotReady` and retry.
    Wait,
}

/// The temporary table an execution may have restored, as its document tells the cleanup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemporaryTable {
    pub table_name: String,
    /// The backup it is restored from (the plan's snapshot ARN).
    pub backup_arn: Option<String>,
    /// AWS Backup's restore job, once StartTableExport started one.
    pub restore_job_id: Option<String>,
    /// For [`temporary_table_tags`]: the cleanup tags a table before deleting it, since one
    /// whose PrepareTable never ran (AWS Backup's, or one that stayed CREATING) is not tagged yet.
    pub idempotency_key: String,
    pub snapshot_id: String,
}

/// The temporary table this execution may have restored, by name: `None` when the document holds
/// no plan for a DynamoDB backup (a Plan that failed, a skip).
pub fn temporary_table_in(state: &Value, execution_id: &str) -> Option<TemporaryTable> {
    let request = serde_json::from_value::<ArchiveRequest>(state.clone()).ok()?;
    (request.kind == ResourceKind::DynamoDb).then(|| TemporaryTable {
        table_name: temporary_table_name(&request.idempotency_key, execution_id),
        backup_arn: request.snapshot_arn.map(|a| a.to_string()),
        restore_job_id: state["table_source"]["restore_job_id"].as_str().map(str::to_string),
        idempotency_key: request.idempotency_key,
        snapshot_id: request.snapshot_id,
    })
}

/// `created_by_restore_job`: this execution's AWS Backup restore job reports the table as the
/// resource it created (DynamoDB's `RestoreSummary` names AWS Backup's source, not necessarily the
/// recovery point).
pub fn release_table(table: &ExistingTable, backup_arn: Option<&str>, created_by_restore_job: bool) -> TableRelease {
    if table.status == "DELETING" {
        return TableRelease::Gone;
    }
    let restored_from_our_backup = backup_arn.is_some() && table.restored_from.as_deref() == backup_arn;
    if !table.table_name.starts_with(TEMPORARY_TABLE_PREFIX) || !(restored_from_our_backup || created_by_restore_job) {
        return TableRelease::Foreign;
    }
    match table.status.as_str() {
        "CREATING" | "UPDATING" => TableRelease::Wait,
        _ => TableRelease::Delete,
    }
}

/// Output of `delete-table`, at `$.deleted_tables`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeletedTables {
    /// Tables this call deleted.
    pub deleted: Vec<String>,
    /// Temporary tables that were already gone (or never made: the point-in-time path).
    pub already_gone: Vec<String>,
}

// ---------------------------------------------------------------------------------------------
// The whole document.

/// The DynamoDB flow's steps: the export's source, the export, its result, the temporary table's
/// deletion.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DynamodbExportSteps {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table_source: Option<TableSource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table_export: Option<TableExport>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub export_result: Option<ExportResult>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted_tables: Option<DeletedTables>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::{plan_archive, PlanConfig, PlanOutcome, SnapshotFacts};

    const BACKUP_ARN: &str = "arn:aws:dynamodb:us-east-1:111122223333:table/Orders/backup/01568804569000-d3306d76";
    const TABLE_ARN: &str = "arn:aws:dynamodb:us-east-1:111122223333:table/Orders";
    const EXECUTION: &str = "arn:aws:states:us-east-1:111122223333:execution:dynamodb-export:e1";

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    fn request() -> ArchiveRequest {
        let event = crate::event::TriggerEvent::from_value(&serde_json::json!({"snapshot": BACKUP_ARN})).unwrap();
        let config: PlanConfig =
            serde_json::from_value(serde_json::json!({"destination": {"bucket": "archive", "prefix": "backups"}}))
                .unwrap();
        let Ok(PlanOutcome::Planned(request)) =
            plan_archive(&event, &SnapshotFacts::default(), &config, at("2025-03-04T03:00:00Z"))
        else {
            panic!("a manual DynamoDB backup plans")
        };
        *request
    }

    fn input(retry_count: u32) -> StartTableExportInput {
        StartTableExportInput { request: request(), execution_id: EXECUTION.into(), retry_count }
    }

    fn backup() -> BackupFacts {
        BackupFacts {
            backup_arn: BACKUP_ARN.into(),
            table_arn: TABLE_ARN.into(),
            created_at: at("2025-03-04T02:00:00Z"),
            status: "AVAILABLE".into(),
            restorer: Restorer::DynamoDb,
        }
    }

    fn window(status: &str, earliest: &str, latest: &str) -> PitrWindow {
        PitrWindow { status: status.into(), earliest: Some(at(earliest)), latest: Some(at(latest)) }
    }

    #[test]
    fn manual_backup_arn_plans_a_dynamodb_export() {
        let request = request();
        assert_eq!(request.flow, crate::flows::Flow::DynamodbExport);
        assert_eq!(request.snapshot_id, "01568804569000-d3306d76");
        assert_eq!(request.source_resource_id, "Orders");
        assert_eq!(request.source_resource_arn.unwrap().to_string(), TABLE_ARN);
        assert_eq!(request.destination.prefix, "backups/dynamodb/Orders/2025/03/04/01568804569000-d3306d76");
    }

    #[test]
    fn pitr_covering_the_backup_exports_the_source_table_at_the_backups_time() {
        let pitr = window("ENABLED", "2025-02-01T00:00:00Z", "2025-03-04T02:55:00Z");
        let ExportPlan::PointInTime { table_arn, export_time, .. } =
            plan_table_export(&input(0), &backup(), Some(&pitr)).unwrap()
        else {
            panic!("PITR covers the backup")
        };
        assert_eq!((table_arn.as_str(), export_time), (TABLE_ARN, at("2025-03-04T02:00:00Z")));
    }

    #[test]
    fn no_table_no_pitr_or_pitr_enabled_later_restore_the_backup() {
        let cases = [
            None,
            Some(PitrWindow { status: "DISABLED".into(), earliest: None, latest: None }),
            Some(window("ENABLED", "2025-03-04T02:30:00Z", "2025-03-04T02:55:00Z")),
            Some(PitrWindow { status: "ENABLED".into(), earliest: None, latest: None }),
        ];
        for pitr in cases {
            let plan = plan_table_export(&input(0), &backup(), pitr.as_ref()).unwrap();
            let ExportPlan::Restore { table_name, .. } = plan else { panic!("{pitr:?} must restore") };
            assert_eq!(table_name, temporary_table_name(&request().idempotency_key, EXECUTION));
        }
    }

    #[test]
    fn pitr_that_has_not_reached_the_backup_is_waited_for_then_given_up() {
        let pitr = window("ENABLED", "2025-02-01T00:00:00Z", "2025-03-04T01:58:00Z");
        let error = plan_table_export(&input(0), &backup(), Some(&pitr)).unwrap_err();
        assert_eq!(error.error_name(), errors::PITR_NOT_READY);
        assert!(errors::is_retryable(error.error_name()));
        assert!(matches!(
            plan_table_export(&input(PITR_CATCH_UP_RETRIES), &backup(), Some(&pitr)).unwrap(),
            ExportPlan::Restore { .. }
        ));
    }

    #[test]
    fn an_aws_backup_recovery_point_is_exported_through_pitr_or_restored_by_aws_backup() {
        let advanced = BackupFacts {
            backup_arn: "arn:aws:backup:us-east-1:111122223333:recovery-point:8f3a2c61".into(),
            status: "COMPLETED".into(),
            restorer: Restorer::AwsBackup,
            ..backup()
        };
        let pitr = window("ENABLED", "2025-02-01T00:00:00Z", "2025-03-04T02:55:00Z");
        assert!(matches!(
            plan_table_export(&input(0), &advanced, Some(&pitr)).unwrap(),
            ExportPlan::PointInTime { .. }
        ));
        let ExportPlan::Restore { restorer, reason, .. } = plan_table_export(&input(0), &advanced, None).unwrap()
        else {
            panic!("a gone table's recovery point is restored")
        };
        assert_eq!(restorer, Restorer::AwsBackup);
        assert!(reason.contains("no longer exists"), "{reason}");
    }

    #[test]
    fn aws_backup_restores_into_the_named_table_of_the_source_account_and_region() {
        let name = temporary_table_name("k", EXECUTION);
        let request = restore_job_request(&input(0), &name);
        assert!(request.metadata.contains(&("targetTableName".to_string(), name.clone())));
        assert_eq!(request.resource_type, "DynamoDB");
        assert_eq!(
            request.idempotency_token,
            restore_job_request(&input(3), &name).idempotency_token,
            "retries repeat it"
        );
        let replay = StartTableExportInput { execution_id: "e2".into(), ..input(0) };
        assert_ne!(restore_job_request(&replay, &name).idempotency_token, request.idempotency_token);
        assert_eq!(
            sibling_table_arn(TABLE_ARN, &name),
            Some(format!("arn:aws:dynamodb:us-east-1:111122223333:table/{name}"))
        );
        assert_eq!(sibling_table_arn("arn:aws:ec2:us-east-1::snapshot/snap-1", &name), None);
    }

    #[test]
    fn a_restore_job_is_waited_for_until_it_completes_or_fails() {
        let progress = |status, message| restore_job_progress("t", "job-1", status, message);
        assert_eq!(progress("COMPLETED", None), Ok(()));
        for running in ["CREATED", "PENDING", "RUNNING"] {
            let error = progress(running, None).unwrap_err();
            assert_eq!(error.error_name(), errors::TABLE_NOT_READY);
            assert!(errors::is_retryable(error.error_name()));
        }
        let failed = progress("FAILED", Some("Access denied to the table")).unwrap_err();
        assert_eq!(failed.error_name(), errors::TABLE_OPERATION_FAILED);
        assert!(failed.to_string().contains("job-1 ended FAILED: Access denied to the table"), "{failed}");
        assert_eq!(progress("ABORTED", None).unwrap_err().error_name(), errors::TABLE_OPERATION_FAILED);
    }

    #[test]
    fn backups_not_available_are_waited_for_or_refused() {
        let mut creating = backup();
        creating.status = "CREATING".into();
        assert_eq!(plan_table_export(&input(0), &creating, None).unwrap_err().error_name(), errors::SNAPSHOT_NOT_READY);
        creating.status = "DELETED".into();
        assert_eq!(plan_table_export(&input(0), &creating, None).unwrap_err().error_name(), errors::SNAPSHOT_UNUSABLE);
        let mut no_execution = input(0);
        no_execution.execution_id.clear();
        assert_eq!(plan_table_export(&no_execution, &backup(), None).unwrap_err().error_name(), errors::INVALID_EVENT);
    }

    #[test]
    fn temporary_table_name_is_valid_stable_and_per_execution() {
        let key = request().idempotency_key;
        let name = temporary_table_name(&key, EXECUTION);
        assert_eq!(name, temporary_table_name(&key, EXECUTION), "a retried Lambda finds the same table");
        assert_ne!(name, temporary_table_name(&key, "another execution"), "a replay gets a table of its own");
        assert!(name.starts_with(TEMPORARY_TABLE_PREFIX) && (3..=MAX_TABLE_NAME_LEN).contains(&name.len()), "{name}");
        assert!(name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-')), "{name}");
        let long = temporary_table_name(&"k".repeat(64), EXECUTION);
        assert!(long.len() <= MAX_TABLE_NAME_LEN);
    }

    #[test]
    fn temporary_tables_are_tagged_like_volumes() {
        let tags = temporary_table_tags("archiver-prod", EXECUTION, "key", "backup-1");
        assert!(tags.contains(&(TAG_MANAGED_BY.to_string(), "archiver-prod".to_string())));
        assert!(tags.contains(&(TAG_EXECUTION.to_string(), EXECUTION.to_string())));
    }

    #[test]
    fn prepare_table_waits_for_active_then_enables_pitr_then_waits_for_it() {
        let err = |status, pitr| prepare_table("t", status, pitr).unwrap_err().error_name();
        assert_eq!(err("CREATING", None), errors::TABLE_NOT_READY);
        assert_eq!(err("UPDATING", None), errors::TABLE_NOT_READY);
        assert_eq!(err("DELETING", None), errors::TABLE_OPERATION_FAILED);
        assert_eq!(err("INACCESSIBLE_ENCRYPTION_CREDENTIALS", None), errors::TABLE_OPERATION_FAILED);
        assert_eq!(prepare_table("t", "ACTIVE", Some("DISABLED")), Ok(TablePreparation::EnablePitr));
        assert_eq!(err("ACTIVE", Some("ENABLING")), errors::PITR_NOT_READY);
        assert_eq!(prepare_table("t", "ACTIVE", Some("ENABLED")), Ok(TablePreparation::Ready));
    }

    fn source(export_time: Option<DateTime<Utc>>) -> TableSource {
        TableSource {
            source: if export_time.is_some() { ExportSource::PointInTime } else { ExportSource::TemporaryTable },
            table_name: "Orders".into(),
            table_arn: TABLE_ARN.into(),
            export_time,
            backup_arn: BACKUP_ARN.into(),
            backup_created_at: at("2025-03-04T02:00:00Z"),
            reason: "r".into(),
            restore_job_id: None,
        }
    }

    #[test]
    fn export_request_is_idempotent_per_execution_and_lands_under_the_archive_prefix() {
        let request = request();
        let input = ExportTableInput {
            table_source: source(Some(at("2025-03-04T02:00:00Z"))),
            destination: request.destination.clone(),
            idempotency_key: request.idempotency_key.clone(),
            execution_id: EXECUTION.into(),
        };
        let export = export_request(&input);
        assert_eq!(export.export_time, Some(at("2025-03-04T02:00:00Z")));
        assert_eq!((export.bucket.as_str(), export.prefix.as_str()), ("archive", request.destination.prefix.as_str()));
        assert_eq!(export.export_format, "DYNAMODB_JSON");
        assert_eq!(export.client_token, export_request(&input).client_token);
        assert!(export.client_token.len() <= 64 && !export.client_token.contains('$'));
        let replay = ExportTableInput { execution_id: "e2".into(), ..input.clone() };
        assert_ne!(export_request(&replay).client_token, export.client_token);
        let temporary = ExportTableInput { table_source: source(None), ..input };
        assert_eq!(export_request(&temporary).export_time, None, "now, left out so a retry repeats the same call");
    }

    fn check_input() -> CheckTableExportInput {
        CheckTableExportInput {
            export_arn: format!("{TABLE_ARN}/export/01693685827463-2d8752fd"),
            destination: "s3://archive/backups/dynamodb/Orders".parse().unwrap(),
        }
    }

    #[test]
    fn export_status_maps_to_a_retry_a_failure_or_the_manifest_to_check() {
        let input = check_input();
        let in_progress = ExportStatus { status: "IN_PROGRESS".into(), ..ExportStatus::default() };
        let error = check_table_export(&input, &in_progress).unwrap_err();
        assert_eq!(error.error_name(), errors::EXPORT_IN_PROGRESS);
        assert!(errors::is_retryable(error.error_name()));
        let failed = ExportStatus {
            status: "FAILED".into(),
            failure_code: Some("S3NoSuchBucket".into()),
            failure_message: Some("The specified bucket does not exist".into()),
            ..ExportStatus::default()
        };
        let error = check_table_export(&input, &failed).unwrap_err();
        assert_eq!(error.error_name(), errors::EXPORT_FAILED);
        assert!(error.to_string().contains("S3NoSuchBucket: The specified bucket does not exist"), "{error}");
        let completed = ExportStatus {
            status: "COMPLETED".into(),
            export_manifest: Some("AWSDynamoDB/01693685827463-2d8752fd/manifest-summary.json".into()),
            ..ExportStatus::default()
        };
        assert_eq!(
            check_table_export(&input, &completed).unwrap(),
            "backups/dynamodb/Orders/AWSDynamoDB/01693685827463-2d8752fd/manifest-summary.json"
        );
        let without_manifest = ExportStatus { export_manifest: None, ..completed };
        assert_eq!(
            check_table_export(&input, &without_manifest).unwrap(),
            "backups/dynamodb/Orders/AWSDynamoDB/01693685827463-2d8752fd/manifest-summary.json",
            "the documented layout when DescribeExport names no manifest"
        );
    }

    #[test]
    fn export_id_is_the_arns_last_segment() {
        assert_eq!(export_id(&check_input().export_arn), Some("01693685827463-2d8752fd"));
        assert_eq!(export_id(TABLE_ARN), None);
        assert_eq!(export_id(&format!("{TABLE_ARN}/export/")), None);
    }

    #[test]
    fn the_cleanup_deletes_only_a_table_restored_from_our_backup() {
        let table = |name: &str, status: &str, from: Option<&str>| ExistingTable {
            table_name: name.into(),
            table_arn: format!("arn:aws:dynamodb:us-east-1:111122223333:table/{name}"),
            status: status.into(),
            restored_from: from.map(str::to_string),
        };
        let ours = temporary_table_name("k", EXECUTION);
        let release = |t: &ExistingTable, backup: Option<&str>| release_table(t, backup, false);
        assert_eq!(release(&table(&ours, "ACTIVE", Some(BACKUP_ARN)), Some(BACKUP_ARN)), TableRelease::Delete);
        assert_eq!(release(&table(&ours, "CREATING", Some(BACKUP_ARN)), Some(BACKUP_ARN)), TableRelease::Wait);
        assert_eq!(release(&table(&ours, "DELETING", Some(BACKUP_ARN)), Some(BACKUP_ARN)), TableRelease::Gone);
        assert_eq!(release(&table(&ours, "ACTIVE", None), Some(BACKUP_ARN)), TableRelease::Foreign);
        assert_eq!(release(&table(&ours, "ACTIVE", Some("other")), Some(BACKUP_ARN)), TableRelease::Foreign);
        assert_eq!(release(&table("Orders", "ACTIVE", Some(BACKUP_ARN)), Some(BACKUP_ARN)), TableRelease::Foreign);
        assert_eq!(release(&table(&ours, "ACTIVE", None), None), TableRelease::Foreign);
        // A table AWS Backup restored for this execution, whatever its RestoreSummary names.
        assert_eq!(release_table(&table(&ours, "ACTIVE", Some("other")), Some(BACKUP_ARN), true), TableRelease::Delete);
        assert_eq!(release_table(&table("Orders", "ACTIVE", None), Some(BACKUP_ARN), true), TableRelease::Foreign);
    }

    #[test]
    fn the_temporary_table_is_found_from_the_plan_and_the_execution_alone() {
        let mut state = serde_json::to_value(request()).unwrap();
        let table = temporary_table_in(&state, EXECUTION).unwrap();
        assert_eq!(table.table_name, temporary_table_name(&request().idempotency_key, EXECUTION));
        assert_eq!((table.backup_arn.as_deref(), table.restore_job_id), (Some(BACKUP_ARN), None));
        state["table_source"] =
            serde_json::to_value(TableSource { restore_job_id: Some("job-1".into()), ..source(None) }).unwrap();
        assert_eq!(temporary_table_in(&state, EXECUTION).unwrap().restore_job_id.as_deref(), Some("job-1"));
        assert_eq!(temporary_table_in(&serde_json::json!({"detail": {}}), EXECUTION), None);
    }

    #[test]
    fn table_names_come_from_table_and_backup_arns() {
        assert_eq!(table_name_of(TABLE_ARN).as_deref(), Some("Orders"));
        assert_eq!(table_name_of(BACKUP_ARN).as_deref(), Some("Orders"));
        assert_eq!(table_name_of("arn:aws:ec2:us-east-1::snapshot/snap-1"), None);
    }
}
