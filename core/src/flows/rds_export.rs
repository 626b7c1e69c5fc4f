//! The RDS export flow (`state-machines/rds-export.asl.json`): RDS's own snapshot export to S3
//! (Parquet), started, polled and checked. The input and output of each of its states, and the
//! decisions of its Lambdas (`start-export`, `check-export`).
//!
//! The execution's document grows state by state, each writing one field (its `ResultPath`):
//!
//! ```text
//! Plan                -> the whole document: PlanOutcome (ArchiveRequest fields + "outcome")
//! Handoff             -> handoff        (a plan for another flow: that flow's execution)
//! StartExport         -> export         (StartedExport)  ExportQuotaExceeded is retried, bounded
//! WaitForExport, CheckExport -> exported (ExportedFiles)  ExportInProgress is retried, bounded (~24 h)
//! DeleteRecoveryPoint -> recovery_point_deletion
//! Notify*             -> notification   (NotificationReport)
//! any Catch           -> error | cleanup_error | notify_error   (StateError)
//! ```
//!
//! RDS writes an export under `<S3Prefix>/<ExportTaskIdentifier>/`: one `export_info_<id>.json`
//! (the task's summary, written last), `export_tables_info_<id>_from_<n>_to_<m>.json` and the
//! Parquet files `<database>/<schema.table>/<partition>/part-…`. The archive's prefix is the
//! plan's `destination` (as for every flow), so the export's files land at
//! `<destination>/<export task identifier>/`.
//! <https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/USER_ExportSnapshot.FileNames.html>

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::arn::Arn;
use crate::errors::{self, NamedError};
use crate::flows::Flow;
use crate::request::ArchiveRequest;
use crate::s3_location::S3Location;

/// The summary RDS writes once an export is complete: `export_info_<identifier>.json`. Its
/// absence means the export did not finish writing, whatever DescribeExportTasks says.
pub const EXPORT_INFO_PREFIX: &str = "export_info_";
/// The per-table status files, `export_tables_info_<identifier>_from_<n>_to_<m>.json`.
pub const EXPORT_TABLES_INFO_PREFIX: &str = "export_tables_info_";

/// Why an export step cannot go on. Its [`NamedError`] name is the Lambda's error type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExportError {
    #[error("invalid configuration: `{field}` {reason}")]
    InvalidConfig { field: &'static str, reason: String },
    #[error("invalid input: `{field}` {reason}")]
    InvalidInput { field: &'static str, reason: String },
    #[error(
        "the account's limit of concurrent RDS exports is reached; export {export_task_identifier} waits: {detail}"
    )]
    QuotaExceeded { export_task_identifier: String, detail: String },
    #[error("export {export_task_identifier} is {status} ({percent_progress}% done)")]
    InProgress { export_task_identifier: String, status: String, percent_progress: u32 },
    #[error("export {export_task_identifier} ended {status}: {failure_cause}")]
    Failed { export_task_identifier: String, status: String, failure_cause: String },
    #[error("the export at {location} is incomplete: {problem}")]
    Incomplete { location: String, problem: String },
}

impl NamedError for ExportError {
    fn error_name(&self) -> &'static str {
        match self {
            ExportError::InvalidConfig { .. } => errors::INVALID_CONFIG,
            ExportError::InvalidInput { .. } => errors::INVALID_EVENT,
            ExportError::QuotaExceeded { .. } => errors::EXPORT_QUOTA_EXCEEDED,
            ExportError::InProgress { .. } => errors::EXPORT_IN_PROGRESS,
            ExportError::Failed { .. } => errors::EXPORT_FAILED,
            ExportError::Incomplete { .. } => errors::ARCHIVE_INCOMPLETE,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// StartExport.

/// The deployment's export settings, which the `start-export` Lambda reads from its environment:
/// RDS needs a role it can assume to write the bucket and a KMS key to encrypt the export with,
/// whatever the snapshot's own encryption.
/// <https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_StartExportTask.html>
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportConfig {
    /// The role RDS assumes to write the export (`s3:PutObject*`, `s3:ListBucket`, …).
    pub iam_role_arn: String,
    /// Key ARN, key id, alias ARN or alias name; RDS needs `kms:CreateGrant` and `kms:DescribeKey`.
    pub kms_key_id: String,
    /// Databases, schemas or tables to export (`database[.schema][.table]`); empty: everything.
    #[serde(default)]
    pub export_only: Vec<String>,
}

impl ExportConfig {
    /// Checks what can be checked before any call, naming the setting at fault.
    pub fn validate(&self) -> Result<(), ExportError> {
        let config = |field, reason: String| ExportError::InvalidConfig { field, reason };
        let role: Arn = self
            .iam_role_arn
            .parse()
            .map_err(|e| config("iam_role_arn", format!("{:?} is not an ARN: {e}", self.iam_role_arn)))?;
        if role.service != "iam" || role.id_of("iam", "role").is_none() {
            return Err(config("iam_role_arn", format!("{role} is not an IAM role")));
        }
        if self.kms_key_id.trim().is_empty() {
            return Err(config("kms_key_id", "is empty: RDS encrypts every export with a KMS key".into()));
        }
        if let Some(bad) = self.export_only.iter().find(|o| o.trim().is_empty() || o.split('.').count() > 3) {
            return Err(config("export_only", format!("{bad:?} is not database[.schema][.table]")));
        }
        Ok(())
    }
}

/// Input of `start-export`: the plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StartExportInput {
    pub request: ArchiveRequest,
}

/// StartExportTask's parameters, decided here so the Lambda only translates them to the SDK.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportTaskRequest {
    /// Stable for the snapshot (see [`crate::naming::export_task_identifier`]): a retried start
    /// answers `ExportTaskAlreadyExists` instead of starting a second export.
    pub export_task_identifier: String,
    pub source_arn: String,
    pub s3_bucket_name: String,
    /// The plan's destination prefix; RDS adds `/<identifier>/` itself.
    pub s3_prefix: String,
    pub iam_role_arn: String,
    pub kms_key_id: String,
    pub export_only: Vec<String>,
}

/// The StartExportTask call for `request`.
pub fn export_task_request(request: &ArchiveRequest, config: &ExportConfig) -> Result<ExportTaskRequest, ExportError> {
    let input = |field, reason: String| ExportError::InvalidInput { field, reason };
    if request.flow != Flow::RdsExport {
        return Err(input("flow", format!("is {:?}: the plan is not for an RDS export", request.flow)));
    }
    let export_task_identifier = request
        .export_task_identifier
        .clone()
        .ok_or_else(|| input("export_task_identifier", "is null: the plan made no export identifier".into()))?;
    let source_arn = request
        .snapshot_arn
        .as_ref()
        .ok_or_else(|| input("snapshot_arn", "is null: StartExportTask needs the snapshot's ARN".into()))?;
    Ok(ExportTaskRequest {
        export_task_identifier,
        source_arn: source_arn.to_string(),
        s3_bucket_name: request.destination.bucket.clone(),
        s3_prefix: request.destination.prefix.clone(),
        iam_role_arn: config.iam_role_arn.clone(),
        kms_key_id: config.kms_key_id.clone(),
        export_only: config.export_only.clone(),
    })
}

/// Where RDS writes the export of `task`: `<bucket>/<prefix>/<identifier>`.
pub fn export_location(task: &ExportTaskRequest) -> S3Location {
    S3Location {
        bucket: task.s3_bucket_name.clone(),
        prefix: if task.s3_prefix.is_empty() {
            task.export_task_identifier.clone()
        } else {
            format!("{}/{}", task.s3_prefix, task.export_task_identifier)
        },
    }
}

/// What an error of StartExportTask means for the flow, beyond the transient/permanent split
/// every call gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartRefusal {
    /// `ExportTaskAlreadyExists`: an earlier attempt (a retried Lambda whose answer was lost, a
    /// duplicate event) started it: poll it.
    AlreadyStarted,
    /// The account's limit of concurrent exports: wait for a slot (retried with a long backoff).
    QuotaExceeded,
}

/// The code of StartExportTask's "already exists" fault.
/// <https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_StartExportTask.html#API_StartExportTask_Errors>
pub const EXPORT_ALREADY_EXISTS_CODES: &[&str] = &["ExportTaskAlreadyExists", "ExportTaskAlreadyExistsFault"];

/// RDS allows five exports in progress per account; StartExportTask's reference lists no fault
/// for the sixth, and the service model has none, so the code it sends is not documented. RDS
/// names every quota fault after one of these patterns (`SnapshotQuotaExceeded`,
/// `QuotaExceeded.DBSecurityGroup`, `MaxDBShardGroupLimitReached`), and SDKs name throttling
/// `LimitExceededException`: any of them from StartExportTask means "wait for a slot".
/// <https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/USER_ExportSnapshot.Exporting.html>
const QUOTA_CODE_PATTERNS: &[&str] = &["QuotaExceeded", "LimitExceeded", "LimitReached"];

/// Reads StartExportTask's error `code`; `None` for the errors every call shares (transient,
/// not found, refused), which the Lambda classifies as usual.
pub fn start_refusal(code: &str) -> Option<StartRefusal> {
    if EXPORT_ALREADY_EXISTS_CODES.contains(&code) {
        Some(StartRefusal::AlreadyStarted)
    } else if QUOTA_CODE_PATTERNS.iter().any(|pattern| code.contains(pattern)) {
        Some(StartRefusal::QuotaExceeded)
    } else {
        None
    }
}

/// Output of `start-export`, at `$.export`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StartedExport {
    pub export_task_identifier: String,
    /// Where the export's files are (`<destination>/<identifier>`).
    pub location: S3Location,
    /// True when this execution's call started it; false when it had been started before
    /// (`ExportTaskAlreadyExists`).
    pub started: bool,
}

// ---------------------------------------------------------------------------------------------
// CheckExport.

/// Input of `check-export`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckExportInput {
    pub export_task_identifier: String,
    pub location: S3Location,
}

/// An export task as DescribeExportTasks reports it, reduced to what the flow decides on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExportTaskState {
    /// `STARTING | IN_PROGRESS | COMPLETE | CANCELING | CANCELED | FAILED`.
    pub status: String,
    pub percent_progress: Option<u32>,
    pub failure_cause: Option<String>,
}

/// Whether the export is done: `Ok` once COMPLETE; `ExportInProgress` (retried by the ASL,
/// bounded) while it runs or is being canceled; `ExportFailed` with RDS's `FailureCause` once it
/// ended otherwise. An unknown status counts as a failure: a bounded wait for a status nobody
/// knows would only delay the same answer.
/// <https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_ExportTask.html>
pub fn check_export(export_task_identifier: &str, task: &ExportTaskState) -> Result<(), ExportError> {
    match task.status.as_str() {
        "COMPLETE" => Ok(()),
        "STARTING" | "IN_PROGRESS" | "CANCELING" => Err(ExportError::InProgress {
            export_task_identifier: export_task_identifier.to_string(),
            status: task.status.clone(),
            percent_progress: task.percent_progress.unwrap_or(0),
        }),
        status => Err(ExportError::Failed {
            export_task_identifier: export_task_identifier.to_string(),
            status: if status.is_empty() { "in an unknown state".to_string() } else { status.to_string() },
            failure_cause: task.failure_cause.clone().unwrap_or_else(|| "RDS gave no FailureCause".to_string()),
        }),
    }
}

/// The `ExportFailed` error for an export DescribeExportTasks does not know.
pub fn missing_export(export_task_identifier: &str) -> ExportError {
    ExportError::Failed {
        export_task_identifier: export_task_identifier.to_string(),
        status: "missing".to_string(),
        failure_cause: "DescribeExportTasks knows no such export task".to_string(),
    }
}

/// Output of `check-export`, at `$.exported`: the export is complete and its files are there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportedFiles {
    /// `s3://bucket/<destination>/<identifier>/`.
    pub location: String,
    pub export_info_key: String,
    /// Every object under the location, the info files included.
    pub objects: u64,
    /// Bytes stored, summed over those objects.
    pub total_size: u64,
}

/// Checks the listing (key -> size) of a COMPLETE export's location: its `export_info_<id>.json`
/// must be there, and at least one data file beside the info files. A cheap check, no download:
/// RDS wrote and checked the files; this catches an export written elsewhere or deleted since.
pub fn verify_export(
    export_task_identifier: &str,
    location: &S3Location,
    listing: &BTreeMap<String, u64>,
) -> Result<ExportedFiles, ExportError> {
    let url = format!("{location}/");
    let incomplete = |problem: String| ExportError::Incomplete { location: url.clone(), problem };
    let export_info_key = location.key(&format!("{EXPORT_INFO_PREFIX}{export_task_identifier}.json"));
    if !listing.contains_key(&export_info_key) {
        return Err(incomplete(format!("{} is missing", location.url_of(&export_info_key))));
    }
    let info_files = [location.key(EXPORT_INFO_PREFIX), location.key(EXPORT_TABLES_INFO_PREFIX)];
    let data_files = listing.keys().filter(|key| !info_files.iter().any(|info| key.starts_with(info.as_str()))).count();
    if data_files == 0 {
        return Err(incomplete("no data files beside the export's info files".to_string()));
    }
    Ok(ExportedFiles {
        location: url,
        export_info_key,
        objects: listing.len() as u64,
        total_size: listing.values().sum(),
    })
}

// ---------------------------------------------------------------------------------------------
// The whole document.

/// The RDS export flow's steps: the export started, its files checked.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RdsExportSteps {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub export: Option<StartedExport>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exported: Option<ExportedFiles>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::TriggerEvent;
    use crate::request::{plan_archive, PlanConfig, PlanOutcome, SnapshotFacts};

    fn request() -> ArchiveRequest {
        let event =
            TriggerEvent::from_json(include_bytes!("../../tests/fixtures/eventbridge-backup-job-completed-rds.json"))
                .unwrap();
        let config: PlanConfig = serde_json::from_value(
            serde_json::json!({"destination": {"bucket": "example-archive", "prefix": "backups"}}),
        )
        .unwrap();
        let facts = SnapshotFacts { engine: Some("postgres".into()), ..SnapshotFacts::default() };
        let Ok(PlanOutcome::Planned(request)) =
            plan_archive(&event, &facts, &config, "2025-03-04T04:00:00Z".parse().unwrap())
        else {
            panic!("the RDS fixture plans an export")
        };
        *request
    }

    fn config() -> ExportConfig {
        ExportConfig {
            iam_role_arn: "arn:aws:iam::111122223333:role/rds-s3-export".into(),
            kms_key_id: "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab".into(),
            export_only: vec![],
        }
    }

    #[test]
    fn export_task_request_exports_the_snapshot_to_the_plans_destination() {
        let request = request();
        let task = export_task_request(&request, &config()).unwrap();
        assert_eq!(task.export_task_identifier, request.export_task_identifier.clone().unwrap());
        assert_eq!(
            task.source_arn,
            "arn:aws:rds:eu-west-1:111122223333:snapshot:awsbackup:job-3e4f5a6b-7c8d-9e0f-1a2b-3c4d5e6f7a8b"
        );
        assert_eq!(
            (task.s3_bucket_name.as_str(), task.s3_prefix.as_str()),
            ("example-archive", request.destination.prefix.as_str())
        );
        assert_eq!(task.iam_role_arn, config().iam_role_arn);
        let location = export_location(&task);
        assert_eq!(location.to_string(), format!("{}/{}", request.destination, task.export_task_identifier));
    }

    #[test]
    fn export_location_without_a_prefix_is_the_identifier() {
        let mut task = export_task_request(&request(), &config()).unwrap();
        task.s3_prefix.clear();
        assert_eq!(export_location(&task).prefix, task.export_task_identifier);
    }

    #[test]
    fn export_task_request_rejects_a_plan_for_another_flow() {
        let mut request = request();
        request.flow = Flow::RdsDump;
        let error = export_task_request(&request, &config()).unwrap_err();
        assert_eq!(error.error_name(), errors::INVALID_EVENT);
        assert!(error.to_string().contains("`flow`"), "{error}");
        let mut request = self::request();
        request.export_task_identifier = None;
        assert!(export_task_request(&request, &config()).unwrap_err().to_string().contains("export_task_identifier"));
    }

    #[test]
    fn config_validation_names_the_bad_setting() {
        type Breakage = fn(&mut ExportConfig);
        let cases: Vec<(Breakage, &str)> = vec![
            (|c| c.iam_role_arn = "rds-s3-export".into(), "iam_role_arn"),
            (|c| c.iam_role_arn = "arn:aws:iam::111122223333:user/someone".into(), "iam_role_arn"),
            (|c| c.kms_key_id = " ".into(), "kms_key_id"),
            (|c| c.export_only = vec!["db.schema.table.column".into()], "export_only"),
            (|c| c.export_only = vec!["".into()], "export_only"),
        ];
        for (break_it, field) in cases {
            let mut config = config();
            break_it(&mut config);
            let error = config.validate().unwrap_err();
            assert_eq!(error.error_name(), errors::INVALID_CONFIG);
            assert!(error.to_string().contains(field), "{error}");
        }
        let mut fine = config();
        fine.export_only = vec!["appdb".into(), "appdb.public".into(), "appdb.public.orders".into()];
        assert_eq!(fine.validate(), Ok(()));
    }

    #[test]
    fn start_refusals_are_already_started_or_quota() {
        assert_eq!(start_refusal("ExportTaskAlreadyExists"), Some(StartRefusal::AlreadyStarted));
        assert_eq!(start_refusal("ExportTaskAlreadyExistsFault"), Some(StartRefusal::AlreadyStarted));
        for quota in
            ["ExportTaskQuotaExceeded", "QuotaExceeded.ExportTasks", "LimitExceededException", "ExportTaskLimitReached"]
        {
            assert_eq!(start_refusal(quota), Some(StartRefusal::QuotaExceeded), "{quota}");
        }
        for other in [
            "IamRoleNotFound",
            "KMSKeyNotAccessibleFault",
            "InvalidS3BucketFault",
            "ThrottlingException",
            "DBSnapshotNotFound",
        ] {
            assert_eq!(start_refusal(other), None, "{other}");
        }
    }

    fn task(status: &str, cause: Option<&str>) -> ExportTaskState {
        ExportTaskState { status: status.into(), percent_progress: Some(40), failure_cause: cause.map(str::to_string) }
    }

    #[test]
    fn check_export_waits_while_running_and_fails_with_the_cause() {
        assert_eq!(check_export("e", &task("COMPLETE", None)), Ok(()));
        for running in ["STARTING", "IN_PROGRESS", "CANCELING"] {
            let error = check_export("e", &task(running, None)).unwrap_err();
            assert_eq!(error.error_name(), errors::EXPORT_IN_PROGRESS, "{running}");
            assert!(errors::is_retryable(error.error_name()));
        }
        let error = check_export("e", &task("FAILED", Some("The IAM role cannot write the bucket."))).unwrap_err();
        assert_eq!(error.error_name(), errors::EXPORT_FAILED);
        assert_eq!(error.to_string(), "export e ended FAILED: The IAM role cannot write the bucket.");
        for ended in ["CANCELED", "complete", ""] {
            assert_eq!(
                check_export("e", &task(ended, None)).unwrap_err().error_name(),
                errors::EXPORT_FAILED,
                "{ended:?}"
            );
        }
        assert_eq!(missing_export("e").error_name(), errors::EXPORT_FAILED);
    }

    fn location() -> S3Location {
        S3Location { bucket: "archive".into(), prefix: "backups/rds/db/2025/03/04/snap/snap-1234abcd".into() }
    }

    fn listing(names: &[(&str, u64)]) -> BTreeMap<String, u64> {
        names.iter().map(|(name, size)| (location().key(name), *size)).collect()
    }

    #[test]
    fn verify_export_counts_the_files_of_a_complete_export() {
        let files = listing(&[
            ("export_info_snap-1234abcd.json", 100),
            ("export_tables_info_snap-1234abcd_from_1_to_2.json", 50),
            ("appdb/public.orders/1/part-00000-a.gz.parquet", 1000),
            ("appdb/public.customers/1/part-00000-b.gz.parquet", 2000),
        ]);
        let exported = verify_export("snap-1234abcd", &location(), &files).unwrap();
        assert_eq!(exported.location, "s3://archive/backups/rds/db/2025/03/04/snap/snap-1234abcd/");
        assert_eq!((exported.objects, exported.total_size), (4, 3150));
        assert!(exported.export_info_key.ends_with("/export_info_snap-1234abcd.json"));
    }

    #[test]
    fn verify_export_needs_the_info_file_and_data() {
        let no_info = listing(&[("appdb/public.orders/1/part-00000-a.gz.parquet", 1000)]);
        let error = verify_export("snap-1234abcd", &location(), &no_info).unwrap_err();
        assert_eq!(error.error_name(), errors::ARCHIVE_INCOMPLETE);
        assert!(error.to_string().contains("export_info_snap-1234abcd.json is missing"), "{error}");
        let no_data = listing(&[
            ("export_info_snap-1234abcd.json", 100),
            ("export_tables_info_snap-1234abcd_from_1_to_1.json", 5),
        ]);
        assert!(verify_export("snap-1234abcd", &location(), &no_data)
            .unwrap_err()
            .to_string()
            .contains("no data files"));
        assert!(verify_export("snap-1234abcd", &location(), &BTreeMap::new()).is_err());
    }

    #[test]
    fn every_export_error_has_a_known_name() {
        let all = [
            ExportError::InvalidConfig { field: "f", reason: "r".into() },
            ExportError::InvalidInput { field: "f", reason: "r".into() },
            ExportError::QuotaExceeded { export_task_identifier: "e".into(), detail: "d".into() },
            ExportError::InProgress {
                export_task_identifier: "e".into(),
                status: "STARTING".into(),
                percent_progress: 0,
            },
            ExportError::Failed {
                export_task_identifier: "e".into(),
                status: "FAILED".into(),
                failure_cause: "c".into(),
            },
            ExportError::Incomplete { location: "l".into(), problem: "p".into() },
        ];
        for error in all {
            assert!(errors::is_known(error.error_name()), "{error}");
        }
    }
}
