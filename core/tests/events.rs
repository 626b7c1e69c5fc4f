//! Every fixture under `tests/fixtures` (sources in its README) parses into the expected variant
//! and serializes back to the same JSON, as the `aws_lambda_events` tests do for theirs.

mod common;

use std::path::PathBuf;

use archiver_core::event::{EventError, JobState, ManualSnapshot, SnsMessage, TriggerEvent};
use serde_json::Value;

fn fixture(name: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name);
    let text = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_slice(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Parses a fixture, checks that it serializes back to the same JSON value and that the result
/// parses to an equal event.
fn round_trip(name: &str) -> TriggerEvent {
    let value = fixture(name);
    let event = TriggerEvent::from_value(&value).unwrap_or_else(|e| panic!("{name}: {e}"));
    let back = event.to_value();
    assert_eq!(back, value, "{name} does not serialize back to itself");
    let text = serde_json::to_string(&event).unwrap();
    let again: TriggerEvent = serde_json::from_str(&text).unwrap();
    assert_eq!(again, event, "{name} does not parse back to the same event");
    event
}

use common::TRIGGERS;

const NOT_TRIGGERS: &[&str] = &[
    "rds-start-export-task-request.json",
    "slack-incoming-webhook-payload.json",
    "chatbot-custom-notification.json",
    "describe-recovery-point-ebs.json",
];

#[test]
fn every_fixture_is_listed_in_a_test_and_in_the_readme() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let readme = std::fs::read_to_string(dir.join("README.md")).unwrap();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if name.ends_with(".json") {
            assert!(
                TRIGGERS.contains(&name.as_str()) || NOT_TRIGGERS.contains(&name.as_str()),
                "{name} is tested nowhere"
            );
            assert!(readme.contains(&format!("`{name}`")), "{name} has no source in the README");
        }
    }
}

#[test]
fn every_trigger_fixture_round_trips() {
    for name in TRIGGERS {
        round_trip(name);
    }
}

#[test]
fn payloads_that_are_not_triggers_are_rejected() {
    for name in NOT_TRIGGERS {
        let err = TriggerEvent::from_value(&fixture(name)).expect_err(name);
        assert!(matches!(err, EventError::Unrecognized { .. }), "{name}: {err}");
        assert_eq!(err.field(), "event");
    }
}

#[test]
fn ebs_backup_job_fixture() {
    let TriggerEvent::BackupJob(event) = round_trip("eventbridge-backup-job-completed-ebs.json") else { panic!() };
    assert_eq!(event.detail.backup_job_id, "8F3A2C61-4B7D-1E09-22C4-5D6E7F8A9B0C");
    assert_eq!(event.detail.state, JobState::Completed);
    assert_eq!(event.detail.resource_type.as_deref(), Some("EBS"));
    assert_eq!(event.detail.vault_name(), Some("archive-vault"));
    assert_eq!(event.detail.backup_size_in_bytes, Some(107_374_182_400));
    assert_eq!(event.resources[0].to_string(), "arn:aws:ec2:eu-west-1::snapshot/snap-0a1b2c3d4e5f67890");
    assert_eq!(event.detail.creation_date.unwrap().to_rfc3339(), "2025-03-04T02:00:12.345+00:00");
}

#[test]
fn rds_and_aurora_backup_job_fixtures() {
    let TriggerEvent::BackupJob(rds) = round_trip("eventbridge-backup-job-completed-rds.json") else { panic!() };
    assert_eq!(rds.detail.resource_type.as_deref(), Some("RDS"));
    assert!(rds.resources[0].is("rds", "snapshot"));
    let TriggerEvent::BackupJob(aurora) = round_trip("eventbridge-backup-job-completed-aurora.json") else { panic!() };
    assert_eq!(aurora.detail.resource_type.as_deref(), Some("Aurora"));
    assert!(aurora.resources[0].is("rds", "cluster-snapshot"));
    assert_eq!(aurora.detail.backup_size_in_bytes, None, "the Aurora fixture states no size");
}

#[test]
fn failed_backup_job_fixture() {
    let TriggerEvent::BackupJob(event) = round_trip("eventbridge-backup-job-failed.json") else { panic!() };
    assert_eq!(event.detail.state, JobState::Failed);
    assert!(event.resources.is_empty());
    assert!(event.detail.status_message.as_deref().unwrap().contains("does not exist"));
}

#[test]
fn copy_job_fixtures() {
    let TriggerEvent::CopyJob(done) = round_trip("eventbridge-copy-job-completed.json") else { panic!() };
    assert_eq!(done.detail.state, JobState::Completed);
    assert_eq!(done.detail.backup_size_in_bytes, Some(3_221_225_472), "a number in copy events");
    assert_eq!(done.detail.destination_vault_name(), Some("846869de-4589-45c3-ab60-4fbbabcdd3ec"));
    assert_eq!(
        done.detail.destination_recovery_point_arn.as_ref().unwrap().id_of("ec2", "snapshot"),
        Some("snap-0726fe70935586180")
    );
    let TriggerEvent::CopyJob(failed) = round_trip("eventbridge-copy-job-failed.json") else { panic!() };
    assert_eq!(failed.detail.state, JobState::Failed);
    assert_eq!(failed.detail.destination_recovery_point_arn, None, "`{{}}` reads as absent");
}

#[test]
fn rds_eventbridge_fixtures() {
    let TriggerEvent::RdsSnapshot(db) = round_trip("eventbridge-rds-db-snapshot-event-created.json") else { panic!() };
    assert_eq!(db.detail.event_id, "RDS-EVENT-0091");
    assert_eq!(db.detail.source_identifier, "rds:orders-postgres-2025-03-04-04-00");
    let TriggerEvent::RdsSnapshot(cluster) = round_trip("eventbridge-rds-db-cluster-snapshot-event-created.json")
    else {
        panic!()
    };
    assert_eq!(cluster.detail.event_id, "RDS-EVENT-0169");
    assert!(cluster.detail.source_arn.is("rds", "cluster-snapshot"));
    let TriggerEvent::RdsSnapshot(export) = round_trip("eventbridge-rds-db-cluster-snapshot-export-completed.json")
    else {
        panic!()
    };
    assert_eq!(export.detail.event_id, "RDS-EVENT-0164");
}

#[test]
fn sns_backup_vault_fixtures() {
    for (name, state) in [
        ("sns-backup-vault-backup-job-completed.json", JobState::Completed),
        ("sns-backup-vault-backup-job-failed.json", JobState::Failed),
        ("sns-backup-vault-backup-job-expired.json", JobState::Expired),
    ] {
        let TriggerEvent::Sns(sns) = round_trip(name) else { panic!("{name}") };
        let SnsMessage::BackupVault(n) = &sns.notification().message else { panic!("{name}") };
        assert_eq!(n.event_type, "BACKUP_JOB", "{name}");
        assert_eq!(n.state, Some(state), "{name}");
        assert!(n.backup_job_id.is_some(), "{name}");
        assert!(n.resource_arn.is_some(), "{name}");
        assert_eq!(n.recovery_point_arn.is_some(), state == JobState::Completed, "{name}");
    }
}

#[test]
fn sns_rds_fixtures() {
    for (name, event_id, has_arn) in [
        ("sns-rds-event-cluster-snapshot-automated-created.json", "RDS-EVENT-0169", true),
        ("sns-rds-event-cluster-snapshot-manual-created.json", "RDS-EVENT-0075", true),
        ("sns-rds-event-db-snapshot-automated-created.json", "RDS-EVENT-0091", false),
    ] {
        let TriggerEvent::Sns(sns) = round_trip(name) else { panic!("{name}") };
        let SnsMessage::Rds(n) = &sns.notification().message else { panic!("{name}") };
        assert_eq!(n.event_id(), event_id, "{name}");
        assert_eq!(n.source_arn.is_some(), has_arn, "{name}");
        assert!(n.event_time().is_some(), "{name}");
    }
}

#[test]
fn manual_input_fixtures() {
    let TriggerEvent::Manual(ebs) = round_trip("manual-ebs-snapshot.json") else { panic!() };
    assert!(matches!(ebs.snapshot, ManualSnapshot::Ebs { .. }));
    let TriggerEvent::Manual(aurora) = round_trip("manual-aurora-snapshot-dump.json") else { panic!() };
    assert!(matches!(aurora.snapshot, ManualSnapshot::RdsCluster { .. }));
}

#[test]
fn every_trigger_fixture_names_its_shape() {
    let shapes: Vec<&str> =
        TRIGGERS.iter().map(|name| TriggerEvent::from_value(&fixture(name)).unwrap().shape()).collect();
    assert!(shapes.contains(&"SNS AWS Backup vault notification"));
    assert!(shapes.contains(&"SNS RDS event"));
    assert!(shapes.contains(&"EventBridge Copy Job State Change"));
    assert!(shapes.contains(&"manual input"));
}

/// The malformed variants of the reference fixtures: each is rejected, naming its field.
#[test]
fn malformed_fixture_variants_name_the_bad_field() {
    fn without(mut value: Value, pointer: &str, key: &str) -> Value {
        value.pointer_mut(pointer).unwrap().as_object_mut().unwrap().remove(key);
        value
    }
    fn with(mut value: Value, pointer: &str, new: Value) -> Value {
        *value.pointer_mut(pointer).unwrap() = new;
        value
    }
    let ebs = fixture("eventbridge-backup-job-completed-ebs.json");
    let sns = fixture("sns-backup-vault-backup-job-completed.json");
    let rds_sns = fixture("sns-rds-event-cluster-snapshot-manual-created.json");
    let cases = [
        (without(ebs.clone(), "/detail", "resourceArn"), "detail.resourceArn"),
        (without(ebs.clone(), "/detail", "backupJobId"), "detail.backupJobId"),
        (with(ebs.clone(), "/detail/state", Value::from("FINISHED")), "detail.state"),
        (with(ebs.clone(), "/detail/state", Value::from(1)), "detail.state"),
        (with(ebs.clone(), "/detail-type", Value::from("Backup Plan State Change")), "detail-type"),
        (with(ebs.clone(), "/detail/resourceArn", Value::from("arn:aws:ec2")), "detail.resourceArn"),
        (with(ebs.clone(), "/resources", Value::Array(vec![])), "resources[0]"),
        (with(sns.clone(), "/Records", Value::Array(vec![])), "Records"),
        (without(sns.clone(), "/Records/0/Sns", "Message"), "Records[0].Sns.Message"),
        (
            with(sns, "/Records/0/Sns/Message", Value::from("An AWS Backup job was completed successfully.")),
            "Records[0].Sns.Message",
        ),
        (
            with(
                rds_sns,
                "/Records/0/Sns/Message",
                Value::from(r#"{"Event Source":"db-cluster-snapshot","Event ID":"x#RDS-EVENT-0075"}"#),
            ),
            "Records[0].Sns.Message.Source ID",
        ),
    ];
    for (value, field) in cases {
        let err = TriggerEvent::from_value(&value).expect_err(field);
        assert_eq!(err.field(), field, "{err}");
        assert!(err.to_string().contains(field), "{err}");
    }
}
