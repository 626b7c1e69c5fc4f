//! Shared by the integration tests: the fixtures that are triggers of the state machines.

/// Every trigger fixture under `core/tests/fixtures` (the others are API payloads, not events).
pub const TRIGGERS: &[&str] = &[
    "eventbridge-backup-job-completed-aurora.json",
    "eventbridge-backup-job-completed-ebs.json",
    "eventbridge-backup-job-completed-rds.json",
    "eventbridge-backup-job-failed.json",
    "eventbridge-copy-job-completed.json",
    "eventbridge-copy-job-failed.json",
    "eventbridge-rds-db-cluster-snapshot-event-created.json",
    "eventbridge-rds-db-cluster-snapshot-export-completed.json",
    "eventbridge-rds-db-snapshot-event-created.json",
    "sns-backup-vault-backup-job-completed.json",
    "sns-backup-vault-backup-job-expired.json",
    "sns-backup-vault-backup-job-failed.json",
    "sns-rds-event-cluster-snapshot-automated-created.json",
    "sns-rds-event-cluster-snapshot-manual-created.json",
    "sns-rds-event-db-snapshot-automated-created.json",
    "manual-ebs-snapshot.json",
    "manual-aurora-snapshot-dump.json",
];
