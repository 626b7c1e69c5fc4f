//! Shortening a recovery point's retention once it has been copied where it must live.
//!
//! The organisation flow copies each recovery point into a central backup account (and a second
//! region); the original then only needs to live long enough to be a local, fast restore. This
//! module decides the `UpdateRecoveryPointLifecycle` request from the `DescribeRecoveryPoint`
//! answer, or says why nothing changes. Two promises hold whatever the input:
//! - a retention is never lengthened: the request is made only when it lowers `DeleteAfterDays`;
//! - a point in cold storage is never scheduled for deletion before AWS Backup's 90-day minimum,
//!   which would be billed anyway ("Backups transitioned to cold storage must be stored in cold
//!   storage for a minimum of 90 days",
//!   <https://docs.aws.amazon.com/aws-backup/latest/devguide/API_UpdateRecoveryPointLifecycle.html>).
//!
//! AWS Backup counts lifecycles in whole days from `CreationDate`, which carries a time of day,
//! and deletes "at a randomly chosen point over the following 8 hours". The arithmetic is
//! therefore in whole UTC days with one day of margin: `days_old` counts today as a whole day,
//! and the new `DeleteAfterDays` is one more than the largest lower bound.

use std::fmt;

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use serde::{Deserialize, Deserializer, Serialize};

/// Days a recovery point must stay in cold storage before it may be deleted without paying for
/// the rest of them (AWS Backup's minimum, see the module docs).
pub const COLD_STORAGE_MINIMUM_DAYS: i64 = 90;

/// `MoveToColdStorageAfterDays` that cancels a scheduled transition. AWS Backup's console writes
/// -1 for "never"; sqlxpert/backup-events-aws relies on it for the same cancellation.
pub const NEVER_MOVE_TO_COLD: i64 = -1;

/// The lifecycle of a recovery point, as `DescribeRecoveryPoint` returns it and
/// `UpdateRecoveryPointLifecycle` takes it. Every field is carried over into the update: AWS
/// warns that a field left out "may result in your plan updating with null values".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Lifecycle {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub move_to_cold_storage_after_days: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delete_after_days: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opt_in_to_archive_for_supported_resources: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delete_after_event: Option<String>,
}

/// Where a recovery point's data is kept (`StorageClass` of `DescribeRecoveryPoint`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum StorageClass {
    Warm,
    Cold,
    Deleted,
}

/// What the decision needs of a `DescribeRecoveryPoint` answer (the AWS CLI's JSON output, or
/// the SDK's fields); other fields are ignored.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RecoveryPointDescription {
    pub recovery_point_arn: String,
    pub backup_vault_name: String,
    /// When the backup job started: AWS's clock, not the moment the point completed.
    #[serde(deserialize_with = "aws_timestamp")]
    pub creation_date: DateTime<Utc>,
    /// Absent in some answers (a point still being created); treated as possibly cold.
    #[serde(default)]
    pub storage_class: Option<StorageClass>,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub lifecycle: Option<Lifecycle>,
}

/// A `DeleteAfterDays` the operator configured for copied originals: at least one day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct NewDeleteAfterDays(i64);

impl NewDeleteAfterDays {
    pub fn new(days: i64) -> Result<Self, RetentionError> {
        if days >= 1 {
            Ok(NewDeleteAfterDays(days))
        } else {
            Err(RetentionError::NewDeleteAfterDays(days))
        }
    }

    pub fn days(self) -> i64 {
        self.0
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RetentionError {
    #[error("new_delete_after_days must be at least 1, got {0}")]
    NewDeleteAfterDays(i64),
}

/// The `UpdateRecoveryPointLifecycle` request, in the API's (and `aws backup
/// update-recovery-point-lifecycle --cli-input-json`'s) field names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct LifecycleUpdate {
    pub backup_vault_name: String,
    pub recovery_point_arn: String,
    pub lifecycle: Lifecycle,
}

/// Why a recovery point's lifecycle is left as it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum Unchanged {
    /// Its data is gone already (`StorageClass` DELETED).
    AlreadyDeleted,
    /// AWS Backup is deleting it (`Status` DELETING).
    BeingDeleted,
    /// A continuous backup, whose lifecycle `UpdateRecoveryPointLifecycle` does not support.
    Continuous,
    /// The computed retention would not be shorter than the current one.
    NotShorter { current_delete_after_days: i64, computed_delete_after_days: i64 },
}

impl fmt::Display for Unchanged {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unchanged::AlreadyDeleted => write!(f, "the recovery point is already deleted"),
            Unchanged::BeingDeleted => write!(f, "the recovery point is being deleted"),
            Unchanged::Continuous => {
                write!(f, "a continuous backup: UpdateRecoveryPointLifecycle does not support its lifecycle")
            }
            Unchanged::NotShorter { current_delete_after_days, computed_delete_after_days } => write!(
                f,
                "DeleteAfterDays would become {computed_delete_after_days}, not shorter than the current \
                 {current_delete_after_days}: a retention is never lengthened"
            ),
        }
    }
}

/// What to do with one recovery point's lifecycle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RetentionDecision {
    Shorten(LifecycleUpdate),
    Unchanged(Unchanged),
}

/// Decides the lifecycle update that schedules a copied recovery point for deletion
/// `new_delete_after_days` after its creation, or later where its age or cold storage require,
/// and never later than it is scheduled now. `today` is the caller's UTC date.
pub fn shorten_retention(
    point: &RecoveryPointDescription,
    new_delete_after_days: NewDeleteAfterDays,
    today: NaiveDate,
) -> RetentionDecision {
    if point.storage_class == Some(StorageClass::Deleted) {
        return RetentionDecision::Unchanged(Unchanged::AlreadyDeleted);
    }
    if point.status.as_deref() == Some("DELETING") {
        return RetentionDecision::Unchanged(Unchanged::BeingDeleted);
    }
    if point.recovery_point_arn.contains(":recovery-point:continuous:") {
        return RetentionDecision::Unchanged(Unchanged::Continuous);
    }
    let days_old = (today - point.creation_date.date_naive()).num_days() + 1;
    let mut lifecycle = point.lifecycle.clone().unwrap_or_default();
    let mut keep_at_least = days_old.max(1).max(new_delete_after_days.days());
    let cold_after = lifecycle.move_to_cold_storage_after_days.filter(|days| *days >= 0);
    match (cold_after, point.storage_class) {
        // Still warm and not moving today: cancel the move rather than pay 90 cold days.
        (Some(cold_after), Some(StorageClass::Warm)) if days_old < cold_after => {
            lifecycle.move_to_cold_storage_after_days = Some(NEVER_MOVE_TO_COLD);
            lifecycle.opt_in_to_archive_for_supported_resources = Some(false);
        }
        // Cold, moving today, or of unknown class: the move counts as made.
        (Some(cold_after), _) => keep_at_least = keep_at_least.max(cold_after + COLD_STORAGE_MINIMUM_DAYS),
        // Cold without a scheduled move: it may have arrived as late as today.
        (None, Some(StorageClass::Cold)) => keep_at_least = keep_at_least.max(days_old + COLD_STORAGE_MINIMUM_DAYS),
        (None, _) => {}
    }
    let computed = keep_at_least + 1;
    match lifecycle.delete_after_days {
        Some(current) if computed >= current => RetentionDecision::Unchanged(Unchanged::NotShorter {
            current_delete_after_days: current,
            computed_delete_after_days: computed,
        }),
        _ => {
            lifecycle.delete_after_days = Some(computed);
            RetentionDecision::Shorten(LifecycleUpdate {
                backup_vault_name: point.backup_vault_name.clone(),
                recovery_point_arn: point.recovery_point_arn.clone(),
                lifecycle,
            })
        }
    }
}

/// AWS timestamps as the CLI prints them (ISO 8601) or as epoch seconds (the CLI's
/// `cli_timestamp_format = none`, and the JSON protocol on the wire).
fn aws_timestamp<'de, D: Deserializer<'de>>(deserializer: D) -> Result<DateTime<Utc>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Timestamp {
        Text(String),
        EpochSeconds(f64),
    }
    match Timestamp::deserialize(deserializer)? {
        Timestamp::Text(text) => DateTime::parse_from_rfc3339(&text)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|e| serde::de::Error::custom(format!("CreationDate {text:?} is not an ISO 8601 time: {e}"))),
        Timestamp::EpochSeconds(seconds) => {
            let millis = (seconds * 1000.0).round() as i64;
            Utc.timestamp_millis_opt(millis)
                .single()
                .ok_or_else(|| serde::de::Error::custom(format!("CreationDate {seconds} is out of range")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARN: &str = "arn:aws:ec2:us-east-1::snapshot/snap-0123456789abcdef0";

    fn date(text: &str) -> NaiveDate {
        text.parse().expect("a test date")
    }

    fn point(created: &str, class: StorageClass, lifecycle: Lifecycle) -> RecoveryPointDescription {
        RecoveryPointDescription {
            recovery_point_arn: ARN.into(),
            backup_vault_name: "workload-vault".into(),
            creation_date: created.parse().expect("a test time"),
            storage_class: Some(class),
            status: Some("COMPLETED".into()),
            lifecycle: Some(lifecycle),
        }
    }

    fn keep(days: i64) -> Lifecycle {
        Lifecycle { delete_after_days: Some(days), ..Lifecycle::default() }
    }

    fn cold_after(cold: i64, delete: i64) -> Lifecycle {
        Lifecycle {
            move_to_cold_storage_after_days: Some(cold),
            delete_after_days: Some(delete),
            opt_in_to_archive_for_supported_resources: Some(true),
            delete_after_event: None,
        }
    }

    fn shortened_to(decision: RetentionDecision) -> Lifecycle {
        match decision {
            RetentionDecision::Shorten(update) => {
                assert_eq!(update.recovery_point_arn, ARN);
                assert_eq!(update.backup_vault_name, "workload-vault");
                update.lifecycle
            }
            other => panic!("expected a shorter retention, got {other:?}"),
        }
    }

    fn days(n: i64) -> NewDeleteAfterDays {
        NewDeleteAfterDays::new(n).expect("a valid day count")
    }

    /// The table of the organisation issue: each row is a recovery point, the configured days,
    /// today, and the DeleteAfterDays it gets (None: unchanged).
    #[test]
    fn decisions_follow_the_table() {
        let rows: &[(&str, RecoveryPointDescription, i64, &str, Option<i64>)] = &[
            (
                "warm, created today",
                point("2026-12-05T10:00:00Z", StorageClass::Warm, keep(35)),
                7,
                "2026-12-05",
                Some(8),
            ),
            (
                "warm, older than the configured days",
                point("2026-11-20T10:00:00Z", StorageClass::Warm, keep(35)),
                7,
                "2026-12-05",
                Some(17),
            ),
            (
                "no deletion scheduled",
                point("2026-12-01T10:00:00Z", StorageClass::Warm, Lifecycle::default()),
                7,
                "2026-12-05",
                Some(8),
            ),
            ("would extend", point("2026-12-01T10:00:00Z", StorageClass::Warm, keep(5)), 7, "2026-12-05", None),
            ("equal is not shorter", point("2026-12-01T10:00:00Z", StorageClass::Warm, keep(8)), 7, "2026-12-05", None),
            (
                "cold: 90 days after the move",
                point("2026-10-01T10:00:00Z", StorageClass::Cold, cold_after(30, 365)),
                7,
                "2026-12-05",
                Some(121),
            ),
            (
                "cold without a scheduled move: 90 days from today",
                point("2026-10-01T10:00:00Z", StorageClass::Cold, keep(365)),
                7,
                "2026-12-05",
                Some(157),
            ),
            (
                "warm but moving today",
                point("2026-11-06T10:00:00Z", StorageClass::Warm, cold_after(30, 365)),
                7,
                "2026-12-05",
                Some(121),
            ),
            (
                "cold minimum would extend",
                point("2026-10-01T10:00:00Z", StorageClass::Cold, cold_after(30, 100)),
                7,
                "2026-12-05",
                None,
            ),
        ];
        for (name, point, configured, today, expected) in rows {
            let decision = shorten_retention(point, days(*configured), date(today));
            let got = match decision {
                RetentionDecision::Shorten(update) => update.lifecycle.delete_after_days,
                RetentionDecision::Unchanged(_) => None,
            };
            assert_eq!(got, *expected, "{name}");
        }
    }

    #[test]
    fn warm_point_younger_than_its_transition_cancels_the_move() {
        let lifecycle = shortened_to(shorten_retention(
            &point("2026-12-01T10:00:00Z", StorageClass::Warm, cold_after(30, 365)),
            days(7),
            date("2026-12-05"),
        ));
        assert_eq!(lifecycle.delete_after_days, Some(8));
        assert_eq!(lifecycle.move_to_cold_storage_after_days, Some(NEVER_MOVE_TO_COLD));
        assert_eq!(lifecycle.opt_in_to_archive_for_supported_resources, Some(false));
    }

    #[test]
    fn unknown_storage_class_counts_a_scheduled_move_as_made() {
        let mut unknown = point("2026-12-01T10:00:00Z", StorageClass::Warm, cold_after(30, 365));
        unknown.storage_class = None;
        let lifecycle = shortened_to(shorten_retention(&unknown, days(7), date("2026-12-05")));
        assert_eq!(lifecycle.delete_after_days, Some(121));
        assert_eq!(lifecycle.move_to_cold_storage_after_days, Some(30));
    }

    #[test]
    fn deleted_point_is_left_alone() {
        let decision = shorten_retention(
            &point("2026-12-01T10:00:00Z", StorageClass::Deleted, keep(35)),
            days(7),
            date("2026-12-05"),
        );
        assert_eq!(decision, RetentionDecision::Unchanged(Unchanged::AlreadyDeleted));
    }

    #[test]
    fn point_being_deleted_is_left_alone() {
        let mut deleting = point("2026-12-01T10:00:00Z", StorageClass::Warm, keep(35));
        deleting.status = Some("DELETING".into());
        assert_eq!(
            shorten_retention(&deleting, days(7), date("2026-12-05")),
            RetentionDecision::Unchanged(Unchanged::BeingDeleted)
        );
    }

    #[test]
    fn continuous_backup_is_left_alone() {
        let mut continuous = point("2026-12-01T10:00:00Z", StorageClass::Warm, keep(35));
        continuous.recovery_point_arn =
            "arn:aws:backup:us-east-1:123456789012:recovery-point:continuous:db-abc-1a2b3c".into();
        assert_eq!(
            shorten_retention(&continuous, days(7), date("2026-12-05")),
            RetentionDecision::Unchanged(Unchanged::Continuous)
        );
    }

    /// A point created one second before midnight UTC is a day old one second later: the day it
    /// was created counts whole, so it is kept through the configured days plus the margin.
    #[test]
    fn clock_at_midnight_utc_counts_whole_days() {
        let late = point("2026-12-04T23:59:59Z", StorageClass::Warm, keep(35));
        let just_after = shorten_retention(&late, days(1), date("2026-12-05"));
        assert_eq!(shortened_to(just_after).delete_after_days, Some(3));
        let same_day = shorten_retention(&late, days(1), date("2026-12-04"));
        assert_eq!(shortened_to(same_day).delete_after_days, Some(2));
        // A creation time in another zone is compared as its UTC date.
        let zoned: RecoveryPointDescription = serde_json::from_value(serde_json::json!({
            "RecoveryPointArn": ARN, "BackupVaultName": "workload-vault",
            "CreationDate": "2026-12-05T00:30:00+02:00", "StorageClass": "WARM", "Lifecycle": {"DeleteAfterDays": 35}
        }))
        .expect("a valid description");
        assert_eq!(zoned.creation_date.date_naive(), date("2026-12-04"));
    }

    #[test]
    fn every_lifecycle_field_is_carried_into_the_update() {
        let mut lifecycle = keep(35);
        lifecycle.delete_after_event = Some("DELETE_AFTER_COPY".into());
        lifecycle.opt_in_to_archive_for_supported_resources = Some(false);
        let update = shortened_to(shorten_retention(
            &point("2026-12-01T10:00:00Z", StorageClass::Warm, lifecycle),
            days(7),
            date("2026-12-05"),
        ));
        assert_eq!(update.delete_after_event.as_deref(), Some("DELETE_AFTER_COPY"));
        assert_eq!(update.opt_in_to_archive_for_supported_resources, Some(false));
    }

    #[test]
    fn rejects_new_delete_after_days_below_one() {
        assert_eq!(NewDeleteAfterDays::new(0), Err(RetentionError::NewDeleteAfterDays(0)));
        assert_eq!(NewDeleteAfterDays::new(-3), Err(RetentionError::NewDeleteAfterDays(-3)));
        assert_eq!(days(1).days(), 1);
    }

    #[test]
    fn parses_the_aws_cli_output() {
        let described: RecoveryPointDescription =
            serde_json::from_str(include_str!("../tests/fixtures/describe-recovery-point-ebs.json"))
                .expect("the fixture parses");
        assert_eq!(described.creation_date.to_rfc3339(), "2026-11-20T05:12:48.217+00:00");
        assert_eq!(described.storage_class, Some(StorageClass::Warm));
        assert_eq!(described.lifecycle, Some(cold_after(30, 365)));
    }

    #[test]
    fn parses_epoch_seconds_and_rejects_bad_times() {
        let epoch: RecoveryPointDescription = serde_json::from_value(serde_json::json!({
            "RecoveryPointArn": ARN, "BackupVaultName": "v", "CreationDate": 1764892800.5
        }))
        .expect("epoch seconds parse");
        assert_eq!(epoch.creation_date.to_rfc3339(), "2025-12-05T00:00:00.500+00:00");
        let bad = serde_json::from_value::<RecoveryPointDescription>(serde_json::json!({
            "RecoveryPointArn": ARN, "BackupVaultName": "v", "CreationDate": "yesterday"
        }))
        .expect_err("not a time");
        assert!(bad.to_string().contains("CreationDate"), "{bad}");
        let unknown_class = serde_json::from_value::<RecoveryPointDescription>(serde_json::json!({
            "RecoveryPointArn": ARN, "BackupVaultName": "v", "CreationDate": 0, "StorageClass": "TEPID"
        }))
        .expect_err("an unknown storage class");
        assert!(unknown_class.to_string().contains("TEPID"), "{unknown_class}");
    }

    #[test]
    fn update_serializes_as_the_api_request() {
        let update = LifecycleUpdate {
            backup_vault_name: "v".into(),
            recovery_point_arn: ARN.into(),
            lifecycle: Lifecycle { delete_after_days: Some(8), ..Lifecycle::default() },
        };
        assert_eq!(
            serde_json::to_value(&update).expect("serializes"),
            serde_json::json!({"BackupVaultName": "v", "RecoveryPointArn": ARN, "Lifecycle": {"DeleteAfterDays": 8}})
        );
        let reason =
            serde_json::to_value(Unchanged::NotShorter { current_delete_after_days: 5, computed_delete_after_days: 8 })
                .expect("serializes");
        assert_eq!(
            reason,
            serde_json::json!({"reason": "not_shorter", "current_delete_after_days": 5, "computed_delete_after_days": 8})
        );
    }
}
