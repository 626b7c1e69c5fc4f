//! The stable names of the errors our Lambdas raise, which the ASL's `Retry` and `Catch` match by
//! `ErrorEquals`.
//!
//! A Lambda reports an error as a `Diagnostic { error_type, error_message }`. lambda_runtime's
//! default `error_type` is the Rust type name, which changes with a refactor and says nothing to
//! the state machine, so every handler maps its error to one of these names instead, through
//! [`NamedError`] for core's error types. They are an API: a name is never renamed or reused,
//! only added.
//!
//! Two families, because the ASL treats them differently:
//! - *retryable* names go into a `Retry` with backoff and a bounded `MaxAttempts` (the snapshot
//!   or volume is not ready yet, AWS throttled us);
//! - the others go straight to the `Catch` that cleans up and fails the execution.
//!
//! A skipped event is not an error: `plan` returns `{"outcome": "skipped"}` and the ASL ends in
//! a Succeed state, so an EFS backup reaching the rule does not page anyone.
//!
//! Step Functions' own names (`States.ALL`, `States.TaskFailed`, `States.Timeout`, …) are valid
//! in `ErrorEquals` too; [`is_known`] accepts them.

/// The event or manual input is malformed, or asks for the impossible (`method: dump` for an
/// engine that cannot be dumped). Retrying cannot help. Raised by `plan`.
pub const INVALID_EVENT: &str = "InvalidEvent";
/// The deployment's configuration is wrong (an empty AZ list for EBS, an initialization rate
/// outside 100-300 MiB/s). Raised by any step that reads configuration.
pub const INVALID_CONFIG: &str = "InvalidConfig";
/// The `plan` Lambda's lookup did not yield a fact planning needs (the vault of an SNS
/// notification, the engine of an RDS snapshot). A bug or a permission gap, not a transient.
pub const LOOKUP_INCOMPLETE: &str = "LookupIncomplete";
/// The snapshot or recovery point no longer exists (deleted, expired). Raised by `plan`.
pub const SNAPSHOT_NOT_FOUND: &str = "SnapshotNotFound";
/// The snapshot is still being created or copied. Retryable: AWS Backup may report a job
/// COMPLETED a little before the snapshot is `completed`/`available`.
pub const SNAPSHOT_NOT_READY: &str = "SnapshotNotReady";
/// The snapshot is in a state it will not leave (error, deleted, in the recycle bin).
pub const SNAPSHOT_UNUSABLE: &str = "SnapshotUnusable";
/// The temporary volume is still `creating`. Retryable, a bounded number of times.
pub const VOLUME_NOT_READY: &str = "VolumeNotReady";
/// The temporary volume went to `error`: create no job for it; clean up.
pub const VOLUME_FAILED: &str = "VolumeFailed";
/// DeleteVolume found the volume still attached (a worker that died without detaching). The
/// cleanup path detaches it and retries, a bounded number of times.
pub const VOLUME_STILL_ATTACHED: &str = "VolumeStillAttached";
/// The temporary DB instance or cluster of a dump is not `available` yet. Retryable.
pub const DB_NOT_READY: &str = "DbNotReady";
/// The temporary DB instance or cluster went to a state it will not leave (`failed`,
/// `incompatible-restore`, `storage-full`, deleted meanwhile): no dump; clean up.
pub const DB_FAILED: &str = "DbFailed";
/// The temporary DB instance or cluster refuses an operation for now: a cluster whose instance
/// is still being deleted, an instance still `creating` or `modifying` when it is deleted, or the
/// database of an archive that ended still `deleting` when a replay restores it. Retryable, a
/// bounded number of times.
pub const DB_BUSY: &str = "DbBusy";
/// An RDS or SSM call about the temporary database or its password failed for a reason that is
/// not transient (a permission, a quota, a parameter): the cause carries the service's code.
pub const DB_OPERATION_FAILED: &str = "DbOperationFailed";
/// The account's limit of concurrent RDS exports is reached. Retryable with a long backoff:
/// waiting is the remedy, failing is not.
pub const EXPORT_QUOTA_EXCEEDED: &str = "ExportQuotaExceeded";
/// The export task (RDS) or table export (DynamoDB) is STARTING or IN_PROGRESS. Retryable: the polling loop's
/// bounded retry.
pub const EXPORT_IN_PROGRESS: &str = "ExportInProgress";
/// The export ended FAILED or CANCELED; the message carries RDS's `FailureCause`, or DynamoDB's
/// `FailureCode` and `FailureMessage`.
pub const EXPORT_FAILED: &str = "ExportFailed";
/// An RDS export call (StartExportTask, DescribeExportTasks) was refused for a reason that is
/// not transient: the export role or its permissions, the KMS key, the bucket, a snapshot in
/// the wrong state. The cause carries RDS's code and message.
pub const EXPORT_OPERATION_FAILED: &str = "ExportOperationFailed";
/// `verify` found no manifest, or objects that do not match it, or `check-export` found no
/// `export_info` file or no data under a COMPLETE export: the archive must not count, and the
/// recovery point must not be deleted.
pub const ARCHIVE_INCOMPLETE: &str = "ArchiveIncomplete";
/// `notify` could not deliver (Slack or SNS) after its own retries. Raised last, after the
/// archive's outcome is settled, so it never triggers cleanup of a good archive.
pub const NOTIFICATION_FAILED: &str = "NotificationFailed";
/// A transient failure of an AWS call (throttling, 5xx, timeout) that the Lambda's SDK retries
/// did not absorb. Retryable with backoff.
pub const RETRYABLE: &str = "Retryable";
/// Another execution is already archiving the same snapshot (a duplicate event, or an SNS and an
/// EventBridge delivery of one backup job), or its archive already exists. The execution makes
/// no second archive; it fails and notifies, so a duplicate delivery is seen, never silent.
pub const DUPLICATE_ARCHIVE: &str = "DuplicateArchive";
/// The trigger names a resource no flow can archive (EFS, an AMI recovery point, an Oracle
/// snapshot) although a rule or an operator sent it here: a gap in someone's archive.
pub const NOT_ARCHIVABLE: &str = "NotArchivable";
/// The trigger is not about a ready snapshot (a FAILED job, another vault): an expected skip,
/// named for `status` and the plan's output; such executions succeed quietly.
pub const NOTHING_TO_ARCHIVE: &str = "NothingToArchive";
/// The Batch job ended FAILED: the worker exited non-zero, was killed, or ran past the job's
/// timeout. The cause is the job's description (exit code, `statusReason`). The ASL renames
/// Step Functions' `States.TaskFailed` of the job step to this, so the execution can end with a
/// name that says which step failed (a Fail state may not re-raise a `States.` name).
pub const JOB_FAILED: &str = "JobFailed";
/// A state failed with one of Step Functions' own errors (`States.Timeout`, `States.Runtime`, …),
/// which a Fail state may not re-raise; the cause starts with the original name.
pub const STEP_FAILED: &str = "StepFailed";
/// AWS Backup refused to delete the recovery point (a copy or restore is using it, a vault lock
/// forbids it, a permission is missing). The archive is verified; the recovery point is kept.
pub const RECOVERY_POINT_NOT_DELETED: &str = "RecoveryPointNotDeleted";
/// An EC2 call about the temporary volume failed for a reason that is not transient (a
/// permission, a quota, a parameter): the cause carries EC2's code and message.
pub const VOLUME_OPERATION_FAILED: &str = "VolumeOperationFailed";
/// The archive's bucket could not be read (a permission, a missing bucket): the cause carries
/// S3's code and message.
pub const STORAGE_ACCESS_FAILED: &str = "StorageAccessFailed";

/// The temporary DynamoDB table restored from a backup is still `CREATING` (or `UPDATING`), so it
/// can be neither exported nor deleted yet. Retryable, a bounded number of times.
pub const TABLE_NOT_READY: &str = "TableNotReady";
/// Point-in-time recovery is not usable yet: being enabled on the temporary table, or the source
/// table's window has not reached the backup's time (it trails the present by minutes). Retryable.
pub const PITR_NOT_READY: &str = "PitrNotReady";
/// A DynamoDB call about a table failed for a reason that is not transient (a permission, a
/// quota, a table in a state it will not leave): the cause carries DynamoDB's code and message.
pub const TABLE_OPERATION_FAILED: &str = "TableOperationFailed";

/// A trigger could not start its flow's state machine (a permission, a missing state machine):
/// the cause carries Step Functions' code and message. Raised by `sns-trigger`, outside any
/// execution; SNS retries the delivery, then the dead-letter queue keeps it.
pub const START_FAILED: &str = "StartFailed";

/// AWS Backup refused a copy of the organisation flow (StartCopyJob): a missing iam:PassRole of
/// the copy role, an unknown vault or recovery point. The message names the role, the vaults and
/// the key. Raised by `start-copy`, outside any execution: Lambda's own retries, then the error
/// queue.
pub const COPY_NOT_STARTED: &str = "CopyNotStarted";

/// A copied original's retention could not be read or shortened (DescribeRecoveryPoint,
/// UpdateRecoveryPointLifecycle); the message names the role, the vault and the key. Raised by
/// `shorten-retention`, outside any execution.
pub const RETENTION_NOT_UPDATED: &str = "RetentionNotUpdated";

/// One error name with how the state machines treat it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorName {
    pub name: &'static str,
    /// Goes into a `Retry` with backoff (bounded) rather than straight to `Catch`.
    pub retryable: bool,
}

/// Every name above, for the test that checks each `ErrorEquals` under `state-machines/`.
pub const ALL: &[ErrorName] = &[
    ErrorName { name: INVALID_EVENT, retryable: false },
    ErrorName { name: INVALID_CONFIG, retryable: false },
    ErrorName { name: LOOKUP_INCOMPLETE, retryable: false },
    ErrorName { name: SNAPSHOT_NOT_FOUND, retryable: false },
    ErrorName { name: SNAPSHOT_NOT_READY, retryable: true },
    ErrorName { name: SNAPSHOT_UNUSABLE, retryable: false },
    ErrorName { name: VOLUME_NOT_READY, retryable: true },
    ErrorName { name: VOLUME_FAILED, retryable: false },
    ErrorName { name: VOLUME_STILL_ATTACHED, retryable: true },
    ErrorName { name: DB_NOT_READY, retryable: true },
    ErrorName { name: DB_FAILED, retryable: false },
    ErrorName { name: DB_BUSY, retryable: true },
    ErrorName { name: DB_OPERATION_FAILED, retryable: false },
    ErrorName { name: EXPORT_QUOTA_EXCEEDED, retryable: true },
    ErrorName { name: EXPORT_IN_PROGRESS, retryable: true },
    ErrorName { name: EXPORT_FAILED, retryable: false },
    ErrorName { name: EXPORT_OPERATION_FAILED, retryable: false },
    ErrorName { name: ARCHIVE_INCOMPLETE, retryable: false },
    ErrorName { name: NOTIFICATION_FAILED, retryable: false },
    ErrorName { name: RETRYABLE, retryable: true },
    ErrorName { name: DUPLICATE_ARCHIVE, retryable: false },
    ErrorName { name: NOT_ARCHIVABLE, retryable: false },
    ErrorName { name: NOTHING_TO_ARCHIVE, retryable: false },
    ErrorName { name: JOB_FAILED, retryable: false },
    ErrorName { name: STEP_FAILED, retryable: false },
    ErrorName { name: RECOVERY_POINT_NOT_DELETED, retryable: false },
    ErrorName { name: VOLUME_OPERATION_FAILED, retryable: false },
    ErrorName { name: STORAGE_ACCESS_FAILED, retryable: false },
    ErrorName { name: TABLE_NOT_READY, retryable: true },
    ErrorName { name: PITR_NOT_READY, retryable: true },
    ErrorName { name: TABLE_OPERATION_FAILED, retryable: false },
    ErrorName { name: START_FAILED, retryable: false },
    ErrorName { name: COPY_NOT_STARTED, retryable: false },
    ErrorName { name: RETENTION_NOT_UPDATED, retryable: false },
];

/// Errors the Lambda *service* raises before or around a function (not our handlers): a `Retry`
/// names them so a throttled or briefly unavailable Lambda does not fail an archive.
/// <https://docs.aws.amazon.com/step-functions/latest/dg/bp-lambda-serviceexception.html>
pub const LAMBDA_SERVICE_ERRORS: &[&str] = &[
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
];

/// Errors of the Batch integration's own calls (SubmitJob, DescribeJobs) that are worth a retry:
/// Step Functions names them `Batch.<code>`.
/// <https://docs.aws.amazon.com/step-functions/latest/dg/connect-batch.html>
pub const BATCH_SERVICE_ERRORS: &[&str] = &["Batch.AWSBatchException", "Batch.ServerException", "Batch.BatchException"];

/// The handoff to another flow's state machine (an `aws-sdk:sfn:startExecution` task): a
/// second trigger of one snapshot finds the execution the first one started, named by the
/// idempotency key, and Step Functions refuses the name.
/// <https://docs.aws.amazon.com/step-functions/latest/apireference/API_StartExecution.html>
pub const HANDOFF_DUPLICATE: &str = "Sfn.ExecutionAlreadyExistsException";
/// Handoff failures worth a retry: too many open executions, and the generic service error
/// that throttling and 5xx answers of an SDK integration arrive as.
pub const HANDOFF_RETRYABLE: &[&str] = &["Sfn.ExecutionLimitExceededException", "Sfn.SfnException"];

/// Step Functions' reserved prefix (`States.ALL`, `States.TaskFailed`, …).
/// <https://docs.aws.amazon.com/step-functions/latest/dg/concepts-error-handling.html>
pub const STATES_PREFIX: &str = "States.";

/// True for a name an `ErrorEquals` may use: one of ours, one of Step Functions', or one of the
/// Lambda, Batch and Step Functions service errors listed above.
pub fn is_known(name: &str) -> bool {
    name.starts_with(STATES_PREFIX)
        || ALL.iter().any(|e| e.name == name)
        || LAMBDA_SERVICE_ERRORS.contains(&name)
        || BATCH_SERVICE_ERRORS.contains(&name)
        || name == HANDOFF_DUPLICATE
        || HANDOFF_RETRYABLE.contains(&name)
}

/// True for our names that belong in a `Retry`.
pub fn is_retryable(name: &str) -> bool {
    ALL.iter().any(|e| e.name == name && e.retryable)
}

/// A core error that a Lambda reports, or an execution ends with, under one of the names above.
pub trait NamedError {
    /// The stable name a state machine's `Retry` and `Catch` match on (the ASL files'
    /// `ErrorEquals` strings): one of [`ALL`], never the Rust type's name.
    fn error_name(&self) -> &'static str;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique() {
        for (i, a) in ALL.iter().enumerate() {
            assert!(ALL[i + 1..].iter().all(|b| b.name != a.name), "{} listed twice", a.name);
        }
    }

    #[test]
    fn names_are_pascal_case_identifiers() {
        // ErrorEquals matches exactly; a space or a dot in a name would be an invitation to typos.
        for e in ALL {
            assert!(e.name.starts_with(|c: char| c.is_ascii_uppercase()), "{}", e.name);
            assert!(e.name.chars().all(|c| c.is_ascii_alphanumeric()), "{}", e.name);
        }
    }

    #[test]
    fn accepts_our_names_and_step_functions_names_only() {
        assert!(is_known(INVALID_EVENT));
        assert!(is_known("States.ALL"));
        assert!(is_known("States.TaskFailed"));
        assert!(!is_known("InvalidEvents"));
        assert!(!is_known("invalidevent"));
    }

    #[test]
    fn waiting_names_are_retryable_and_verdicts_are_not() {
        assert!(is_retryable(VOLUME_NOT_READY));
        assert!(is_retryable(EXPORT_QUOTA_EXCEEDED));
        assert!(is_retryable(RETRYABLE));
        assert!(!is_retryable(INVALID_EVENT));
        assert!(!is_retryable(ARCHIVE_INCOMPLETE));
        assert!(!is_retryable("States.ALL"));
    }
}
