//! The `plan` step end to end over the fixtures: what each trigger becomes, which are skipped and
//! why, and that duplicates of one backup, however delivered, plan the same archive.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;

use archiver_core::errors::{self, NamedError};
use archiver_core::event::{JobState, TriggerEvent};
use archiver_core::flows::Flow;
use archiver_core::manifest::ModeRequest;
use archiver_core::request::{
    archive_target, plan_archive, ArchiveRequest, Home, PlanConfig, PlanError, PlanOutcome, ReadPath, SkipReason,
    SnapshotFacts, Targeting, TriggerKind, VolumePerformance,
};
use archiver_core::resource::{DbMethod, ResourceKind};
use chrono::{DateTime, NaiveDate, Utc};
use serde_json::{json, Value};

fn fixture(name: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name);
    serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap()
}

fn event(name: &str) -> TriggerEvent {
    TriggerEvent::from_value(&fixture(name)).unwrap()
}

fn config() -> PlanConfig {
    PlanConfig {
        destination: "s3://example-archive/backups".parse().unwrap(),
        allowed_vaults: vec!["archive-vault".into()],
        availability_zones: vec!["eu-west-1a".into(), "eu-west-1b".into(), "eu-west-1c".into()],
        db_methods: BTreeMap::new(),
        delete_recovery_point: true,
        volume_initialization_rate_mibps: Some(300),
        job_queues: BTreeMap::new(),
        home: None,
        read_path: ReadPath::Volume,
    }
}

fn now() -> DateTime<Utc> {
    "2025-03-09T12:00:00Z".parse().unwrap()
}

const GIB: u64 = 1024 * 1024 * 1024;

fn ebs_facts() -> SnapshotFacts {
    SnapshotFacts {
        status: Some("completed".into()),
        size_bytes: Some(100 * GIB),
        encrypted: Some(true),
        kms_key_id: Some("arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab".into()),
        ..SnapshotFacts::default()
    }
}

fn rds_facts(engine: &str) -> SnapshotFacts {
    SnapshotFacts {
        status: Some("available".into()),
        size_bytes: Some(20 * GIB),
        encrypted: Some(true),
        engine: Some(engine.into()),
        ..SnapshotFacts::default()
    }
}

fn planned(outcome: Result<PlanOutcome, PlanError>) -> ArchiveRequest {
    match outcome {
        Ok(PlanOutcome::Planned(request)) => *request,
        other => panic!("expected a plan, got {other:?}"),
    }
}

fn skipped(outcome: Result<PlanOutcome, PlanError>) -> SkipReason {
    match outcome {
        Ok(PlanOutcome::Skipped { reason, message, attention, error }) => {
            assert_eq!(message, reason.to_string());
            assert_eq!(attention, reason.needs_attention());
            assert_eq!(error, reason.error_name());
            reason
        }
        other => panic!("expected a skip, got {other:?}"),
    }
}

fn with(mut value: Value, pointer: &str, new: Value) -> Value {
    *value.pointer_mut(pointer).unwrap() = new;
    value
}

#[test]
fn ebs_backup_job_plans_an_ebs_archive() {
    let request =
        planned(plan_archive(&event("eventbridge-backup-job-completed-ebs.json"), &ebs_facts(), &config(), now()));
    assert_eq!(request.kind, ResourceKind::Ebs);
    assert_eq!(request.flow, Flow::EbsArchive);
    assert_eq!(request.trigger, TriggerKind::BackupJob);
    assert_eq!(request.snapshot_id, "snap-0a1b2c3d4e5f67890");
    assert_eq!(request.source_resource_id, "vol-0fedcba9876543210");
    assert_eq!(
        request.source_resource_arn.as_ref().unwrap().to_string(),
        "arn:aws:ec2:eu-west-1:111122223333:volume/vol-0fedcba9876543210"
    );
    assert_eq!(request.vault_name.as_deref(), Some("archive-vault"));
    assert_eq!(request.backup_job_id.as_deref(), Some("8F3A2C61-4B7D-1E09-22C4-5D6E7F8A9B0C"));
    assert_eq!(request.idempotency_key, "backup-job-8f3a2c61-4b7d-1e09-22c4-5d6e7f8a9b0c");
    assert_eq!(request.destination.bucket, "example-archive");
    assert_eq!(request.destination.prefix, "backups/ebs/vol-0fedcba9876543210/2025/03/04/snap-0a1b2c3d4e5f67890");
    assert_eq!(request.snapshot_size_bytes, Some(100 * GIB), "the described size wins over backupSizeInBytes");
    assert_eq!(request.encrypted, Some(true));
    assert!(request.kms_key_id.is_some());
    assert_eq!(request.mode, Some(ModeRequest::Auto));
    assert_eq!(request.method, None);
    assert_eq!(request.export_task_identifier, None);
    let volume = request.volume.as_ref().unwrap();
    assert!(config().availability_zones.contains(&volume.availability_zone));
    assert_eq!(volume.volume_type, "gp3");
    assert_eq!((volume.iops, volume.throughput_mibps), (4_000, 1_000));
    assert_eq!(volume.initialization_rate_mibps, Some(300));
    assert!(request.options.delete_recovery_point);
    assert_eq!(request.planned_at, now());
}

#[test]
fn archive_date_is_the_backup_jobs_not_the_planning_day() {
    let request =
        planned(plan_archive(&event("eventbridge-backup-job-completed-ebs.json"), &ebs_facts(), &config(), now()));
    assert_eq!(request.snapshot_date, NaiveDate::from_ymd_opt(2025, 3, 4).unwrap());
    assert!(request.destination.prefix.contains("/2025/03/04/"));
}

#[test]
fn duplicate_event_plans_the_same_archive() {
    let first =
        planned(plan_archive(&event("eventbridge-backup-job-completed-ebs.json"), &ebs_facts(), &config(), now()));
    let later = now() + chrono::Duration::days(3);
    let again =
        planned(plan_archive(&event("eventbridge-backup-job-completed-ebs.json"), &ebs_facts(), &config(), later));
    assert_eq!(ArchiveRequest { planned_at: first.planned_at, ..again }, first);
}

#[test]
fn sns_notification_of_the_same_job_plans_the_same_archive() {
    let facts = SnapshotFacts { vault_name: Some("archive-vault".into()), ..ebs_facts() };
    let by_sns = planned(plan_archive(&event("sns-backup-vault-backup-job-completed.json"), &facts, &config(), now()));
    let by_eventbridge =
        planned(plan_archive(&event("eventbridge-backup-job-completed-ebs.json"), &ebs_facts(), &config(), now()));
    assert_eq!(by_sns.idempotency_key, by_eventbridge.idempotency_key);
    assert_eq!(by_sns.destination, by_eventbridge.destination);
    assert_eq!(by_sns.volume, by_eventbridge.volume);
    assert_eq!(by_sns.snapshot_id, by_eventbridge.snapshot_id);
    assert_eq!(by_sns.recovery_point_arn, by_eventbridge.recovery_point_arn);
}

#[test]
fn eventbridge_event_forwarded_by_sns_plans_like_the_original() {
    let inner = fixture("eventbridge-backup-job-completed-ebs.json");
    let mut sns = fixture("sns-backup-vault-backup-job-completed.json");
    sns["Records"][0]["Sns"]["Message"] = Value::from(inner.to_string());
    sns["Records"][0]["Sns"]["MessageAttributes"] = json!({});
    let forwarded = planned(plan_archive(&TriggerEvent::from_value(&sns).unwrap(), &ebs_facts(), &config(), now()));
    let direct =
        planned(plan_archive(&event("eventbridge-backup-job-completed-ebs.json"), &ebs_facts(), &config(), now()));
    assert_eq!(forwarded, direct);
}

#[test]
fn sns_notification_needs_its_vault_looked_up_when_vaults_are_restricted() {
    let err =
        plan_archive(&event("sns-backup-vault-backup-job-completed.json"), &ebs_facts(), &config(), now()).unwrap_err();
    assert_eq!(err.field(), Some("vault_name"));
    assert_eq!(err.error_name(), errors::LOOKUP_INCOMPLETE);
    let open = PlanConfig { allowed_vaults: vec![], ..config() };
    let request =
        planned(plan_archive(&event("sns-backup-vault-backup-job-completed.json"), &ebs_facts(), &open, now()));
    assert!(!request.options.delete_recovery_point, "no vault known, so nothing is deleted");
}

#[test]
fn sns_notification_from_another_vault_is_skipped() {
    let facts = SnapshotFacts { vault_name: Some("Default".into()), ..ebs_facts() };
    let reason = skipped(plan_archive(&event("sns-backup-vault-backup-job-completed.json"), &facts, &config(), now()));
    assert_eq!(reason, SkipReason::VaultNotAllowed { vault_name: "Default".into() });
}

#[test]
fn failed_and_expired_jobs_are_skipped() {
    for name in [
        "eventbridge-backup-job-failed.json",
        "eventbridge-copy-job-failed.json",
        "sns-backup-vault-backup-job-failed.json",
        "sns-backup-vault-backup-job-expired.json",
    ] {
        let reason = skipped(plan_archive(&event(name), &SnapshotFacts::default(), &config(), now()));
        assert!(matches!(reason, SkipReason::JobNotCompleted { .. }), "{name}: {reason:?}");
    }
}

#[test]
fn skip_needs_no_lookup() {
    let targeting = archive_target(&event("eventbridge-backup-job-failed.json"), &config()).unwrap();
    assert!(matches!(targeting, Targeting::Skip(SkipReason::JobNotCompleted { .. })));
}

#[test]
fn efs_backup_is_skipped() {
    let mut efs = fixture("eventbridge-backup-job-completed-ebs.json");
    efs["detail"]["resourceType"] = json!("EFS");
    efs["detail"]["resourceArn"] =
        json!("arn:aws:elasticfilesystem:eu-west-1:111122223333:file-system/fs-0123456789abcdef0");
    efs["resources"] =
        json!(["arn:aws:backup:eu-west-1:111122223333:recovery-point:1EB3B5E7-9EB0-435A-A80B-108B488B0D45"]);
    let reason =
        skipped(plan_archive(&TriggerEvent::from_value(&efs).unwrap(), &SnapshotFacts::default(), &config(), now()));
    assert_eq!(reason, SkipReason::UnsupportedResourceType { resource_type: "EFS".into() });
}

#[test]
fn a_skip_that_leaves_a_gap_fails_loudly_and_noise_stays_quiet() {
    let efs = PlanOutcome::skipped(SkipReason::UnsupportedResourceType { resource_type: "EFS".into() });
    let json = serde_json::to_value(&efs).unwrap();
    assert_eq!(json["attention"], true);
    assert_eq!(json["error"], "NotArchivable");
    let failed_job = PlanOutcome::skipped(SkipReason::JobNotCompleted { state: JobState::Failed });
    let json = serde_json::to_value(&failed_job).unwrap();
    assert_eq!(json["attention"], false);
    assert_eq!(json["error"], "NothingToArchive");
}

#[test]
fn efs_backup_notified_by_sns_is_skipped() {
    let text = "An AWS Backup job was completed successfully. Recovery point ARN: \
        arn:aws:backup:eu-west-1:111122223333:recovery-point:1EB3B5E7. Resource ARN : \
        arn:aws:elasticfilesystem:eu-west-1:111122223333:file-system/fs-0123. BackupJob ID : 1";
    let value = with(fixture("sns-backup-vault-backup-job-completed.json"), "/Records/0/Sns/Message", json!(text));
    let reason =
        skipped(plan_archive(&TriggerEvent::from_value(&value).unwrap(), &SnapshotFacts::default(), &config(), now()));
    assert_eq!(reason, SkipReason::UnsupportedResourceType { resource_type: "elasticfilesystem:file-system".into() });
}

#[test]
fn ebs_recovery_point_that_is_not_a_snapshot_is_skipped() {
    let air_gapped = with(
        fixture("eventbridge-backup-job-completed-ebs.json"),
        "/resources/0",
        json!("arn:aws:backup:eu-west-1:111122223333:recovery-point:1EB3B5E7-9EB0-435A-A80B-108B488B0D45"),
    );
    let reason = skipped(plan_archive(&TriggerEvent::from_value(&air_gapped).unwrap(), &ebs_facts(), &config(), now()));
    assert!(matches!(reason, SkipReason::UnsupportedRecoveryPoint { .. }), "{reason:?}");
}

#[test]
fn vault_not_in_the_allowed_list_is_skipped() {
    let other = PlanConfig { allowed_vaults: vec!["another-vault".into()], ..config() };
    let reason =
        skipped(plan_archive(&event("eventbridge-backup-job-completed-ebs.json"), &ebs_facts(), &other, now()));
    assert_eq!(reason, SkipReason::VaultNotAllowed { vault_name: "archive-vault".into() });
}

#[test]
fn rds_backup_job_is_exported_by_default() {
    let request = planned(plan_archive(
        &event("eventbridge-backup-job-completed-rds.json"),
        &rds_facts("postgres"),
        &config(),
        now(),
    ));
    assert_eq!(request.kind, ResourceKind::Rds);
    assert_eq!(request.flow, Flow::RdsExport);
    assert_eq!(request.method, Some(DbMethod::Export));
    assert_eq!(request.engine.as_deref(), Some("postgres"));
    assert_eq!(request.snapshot_id, "awsbackup:job-3e4f5a6b-7c8d-9e0f-1a2b-3c4d5e6f7a8b");
    assert_eq!(request.source_resource_id, "orders-postgres");
    assert_eq!(request.idempotency_key, "backup-job-3e4f5a6b-7c8d-9e0f-1a2b-3c4d5e6f7a8b");
    let export_id = request.export_task_identifier.as_deref().unwrap();
    assert!(export_id.starts_with("awsbackup-job-3e4f5a6b-7c8d-9e0f-1a2b-3c4d5e6f7a8b-"), "{export_id}");
    assert!(request.destination.prefix.starts_with("backups/rds/orders-postgres/2025/03/04/awsbackup-job-3e4f5a6b"));
    assert!(!request.destination.prefix.contains(':'));
    assert_eq!(request.volume, None);
    assert_eq!(request.mode, None);
}

#[test]
fn rds_engine_configured_for_dump_is_dumped() {
    let mut config = config();
    config.db_methods.insert("postgres".into(), DbMethod::Dump);
    let request = planned(plan_archive(
        &event("eventbridge-backup-job-completed-rds.json"),
        &rds_facts("postgres"),
        &config,
        now(),
    ));
    assert_eq!(request.flow, Flow::RdsDump);
    assert_eq!(request.method, Some(DbMethod::Dump));
    assert_eq!(request.export_task_identifier, None);
    assert_eq!(request.job_queue, None, "no queues configured");
}

#[test]
fn dump_gets_one_of_the_configured_queues_and_other_flows_none() {
    let mut config = config();
    config.db_methods.insert("postgres".into(), DbMethod::Dump);
    for az in config.availability_zones.clone() {
        config.job_queues.insert(az.clone(), format!("queue-{az}"));
    }
    let dump = planned(plan_archive(
        &event("eventbridge-backup-job-completed-rds.json"),
        &rds_facts("postgres"),
        &config,
        now(),
    ));
    let queue = dump.job_queue.clone().expect("a dump job needs a queue");
    assert!(config.job_queues.values().any(|q| *q == queue), "{queue}");
    let again = planned(plan_archive(
        &event("eventbridge-backup-job-completed-rds.json"),
        &rds_facts("postgres"),
        &config,
        now(),
    ));
    assert_eq!(again.job_queue, dump.job_queue, "stable for a snapshot");
    let ebs = planned(plan_archive(&event("eventbridge-backup-job-completed-ebs.json"), &ebs_facts(), &config, now()));
    assert_eq!(ebs.job_queue, None, "EBS's queue is its volume's AZ's");
}

#[test]
fn rds_engine_that_nothing_can_archive_is_skipped() {
    let reason = skipped(plan_archive(
        &event("eventbridge-backup-job-completed-rds.json"),
        &rds_facts("sqlserver-se"),
        &config(),
        now(),
    ));
    assert_eq!(reason, SkipReason::UnsupportedEngine { engine: "sqlserver-se".into() });
}

#[test]
fn rds_snapshot_without_known_engine_asks_for_the_lookup() {
    let err =
        plan_archive(&event("eventbridge-backup-job-completed-rds.json"), &SnapshotFacts::default(), &config(), now())
            .unwrap_err();
    assert_eq!(err.field(), Some("engine"));
    assert_eq!(err.error_name(), errors::LOOKUP_INCOMPLETE);
}

#[test]
fn aurora_backup_job_plans_a_cluster_export() {
    let request = planned(plan_archive(
        &event("eventbridge-backup-job-completed-aurora.json"),
        &rds_facts("aurora-postgresql"),
        &config(),
        now(),
    ));
    assert_eq!(request.kind, ResourceKind::Aurora);
    assert_eq!(request.flow, Flow::RdsExport);
    assert_eq!(request.source_resource_id, "billing-aurora");
    assert_eq!(request.snapshot_arn.as_ref().unwrap().resource_type_and_id().0, "cluster-snapshot");
    let export_request = fixture("rds-start-export-task-request.json");
    assert_eq!(request.snapshot_arn.as_ref().unwrap().to_string(), export_request["SourceArn"]);
    let ours = request.export_task_identifier.unwrap();
    let theirs = export_request["ExportTaskIdentifier"].as_str().unwrap();
    assert!(ours.starts_with(&format!("{theirs}-")), "the reference identifier plus our hash: {ours}");
}

#[test]
fn rds_event_for_an_aws_backup_snapshot_maps_to_the_backup_jobs_key() {
    let mut rds_event = fixture("eventbridge-rds-db-cluster-snapshot-event-created.json");
    let arn = "arn:aws:rds:eu-west-1:111122223333:cluster-snapshot:awsbackup:job-9a8b7c6d-5e4f-3a2b-1c0d-9e8f7a6b5c4d";
    rds_event["resources"] = json!([arn]);
    rds_event["detail"]["SourceArn"] = json!(arn);
    rds_event["detail"]["SourceIdentifier"] = json!("awsbackup:job-9a8b7c6d-5e4f-3a2b-1c0d-9e8f7a6b5c4d");
    rds_event["detail"]["EventID"] = json!("RDS-EVENT-0075");
    let facts = SnapshotFacts { source_resource_id: Some("billing-aurora".into()), ..rds_facts("aurora-postgresql") };
    let from_rds = planned(plan_archive(&TriggerEvent::from_value(&rds_event).unwrap(), &facts, &config(), now()));
    let from_backup = planned(plan_archive(
        &event("eventbridge-backup-job-completed-aurora.json"),
        &rds_facts("aurora-postgresql"),
        &config(),
        now(),
    ));
    assert_eq!(from_rds.idempotency_key, from_backup.idempotency_key);
    assert_eq!(from_rds.export_task_identifier, from_backup.export_task_identifier);
    assert!(!from_rds.options.delete_recovery_point, "an RDS event names no recovery point to delete");
}

#[test]
fn rds_snapshot_event_plans_an_export() {
    let facts = SnapshotFacts { source_resource_id: Some("orders-postgres".into()), ..rds_facts("postgres") };
    let request =
        planned(plan_archive(&event("eventbridge-rds-db-snapshot-event-created.json"), &facts, &config(), now()));
    assert_eq!(request.trigger, TriggerKind::RdsEvent);
    assert_eq!(request.kind, ResourceKind::Rds);
    assert_eq!(request.snapshot_id, "rds:orders-postgres-2025-03-04-04-00");
    assert_eq!(
        request.source_resource_arn.as_ref().unwrap().to_string(),
        "arn:aws:rds:eu-west-1:111122223333:db:orders-postgres"
    );
    assert!(request.idempotency_key.starts_with("rds-snapshot-rds-orders-postgres-2025-03-04-04-00-"));
    assert_eq!(request.vault_name, None);
    assert!(!request.options.delete_recovery_point, "never delete a snapshot outside our vaults");
    assert!(request.export_task_identifier.unwrap().starts_with("rds-orders-postgres-2025-03-04-04-00-"));
}

#[test]
fn rds_snapshot_event_without_source_id_asks_for_the_lookup() {
    let err = plan_archive(
        &event("eventbridge-rds-db-snapshot-event-created.json"),
        &rds_facts("postgres"),
        &config(),
        now(),
    )
    .unwrap_err();
    assert_eq!(err.field(), Some("source_resource_id"));
}

#[test]
fn cluster_snapshot_by_eventbridge_and_by_sns_plan_the_same_archive() {
    let facts = SnapshotFacts { source_resource_id: Some("billing-aurora".into()), ..rds_facts("aurora-mysql") };
    let by_eventbridge = planned(plan_archive(
        &event("eventbridge-rds-db-cluster-snapshot-event-created.json"),
        &facts,
        &config(),
        now(),
    ));
    let by_sns = planned(plan_archive(
        &event("sns-rds-event-cluster-snapshot-automated-created.json"),
        &facts,
        &config(),
        now(),
    ));
    assert_eq!(by_eventbridge, by_sns);
    assert_eq!(by_sns.kind, ResourceKind::Aurora);
    assert_eq!(by_sns.destination.prefix.split('/').nth(2), Some("billing-aurora"));
}

#[test]
fn manual_cluster_snapshot_by_sns_is_planned() {
    let facts = SnapshotFacts { source_resource_id: Some("billing-aurora".into()), ..rds_facts("aurora-postgresql") };
    let request =
        planned(plan_archive(&event("sns-rds-event-cluster-snapshot-manual-created.json"), &facts, &config(), now()));
    assert_eq!(request.snapshot_id, "billing-aurora-pre-migration");
    assert_eq!(request.idempotency_key, "aurora-snapshot-billing-aurora-pre-migration");
    assert_eq!(request.snapshot_date, NaiveDate::from_ymd_opt(2025, 3, 4).unwrap());
}

#[test]
fn older_rds_notification_without_an_arn_gets_one_from_its_topic() {
    let facts = SnapshotFacts { source_resource_id: Some("orders-postgres".into()), ..rds_facts("postgres") };
    let by_sns =
        planned(plan_archive(&event("sns-rds-event-db-snapshot-automated-created.json"), &facts, &config(), now()));
    let by_eventbridge =
        planned(plan_archive(&event("eventbridge-rds-db-snapshot-event-created.json"), &facts, &config(), now()));
    assert_eq!(by_sns.snapshot_arn, by_eventbridge.snapshot_arn);
    assert_eq!(by_sns.export_task_identifier, by_eventbridge.export_task_identifier);
    assert_eq!(by_sns.idempotency_key, by_eventbridge.idempotency_key);
}

#[test]
fn rds_notification_resource_attribute_names_the_snapshot() {
    let mut value = fixture("sns-rds-event-db-snapshot-automated-created.json");
    value["Records"][0]["Sns"]["MessageAttributes"] = json!({
        "Resource": {"Type": "String", "Value": "arn:aws:rds:eu-west-1:999999999999:snapshot:rds:orders-postgres-2025-03-04-04-00"}
    });
    let target = archive_target(&TriggerEvent::from_value(&value).unwrap(), &config()).unwrap();
    let Targeting::Target(target) = target else { panic!() };
    assert_eq!(target.snapshot_arn.unwrap().account, "999999999999");

    value["Records"][0]["Sns"]["MessageAttributes"]["Resource"]["Value"] = json!("not-an-arn");
    let err = archive_target(&TriggerEvent::from_value(&value).unwrap(), &config()).unwrap_err();
    assert_eq!(err.field(), Some("Records[0].Sns.MessageAttributes.Resource.Value"));
}

#[test]
fn rds_events_that_do_not_mean_a_ready_snapshot_are_skipped() {
    let reason = skipped(plan_archive(
        &event("eventbridge-rds-db-cluster-snapshot-export-completed.json"),
        &SnapshotFacts::default(),
        &config(),
        now(),
    ));
    assert_eq!(reason, SkipReason::NotSnapshotReady { event_id: "RDS-EVENT-0164".into() });
    let creating =
        with(fixture("eventbridge-rds-db-snapshot-event-created.json"), "/detail/EventID", json!("RDS-EVENT-0040"));
    let reason = skipped(plan_archive(
        &TriggerEvent::from_value(&creating).unwrap(),
        &SnapshotFacts::default(),
        &config(),
        now(),
    ));
    assert!(reason.to_string().contains("RDS-EVENT-0091"), "lists the events that count: {reason}");
}

#[test]
fn cluster_event_id_on_a_db_snapshot_is_skipped() {
    let mismatched =
        with(fixture("eventbridge-rds-db-snapshot-event-created.json"), "/detail/EventID", json!("RDS-EVENT-0169"));
    let reason = skipped(plan_archive(
        &TriggerEvent::from_value(&mismatched).unwrap(),
        &SnapshotFacts::default(),
        &config(),
        now(),
    ));
    assert!(matches!(reason, SkipReason::NotSnapshotReady { .. }));
}

#[test]
fn copy_job_into_our_vault_plans_the_copy() {
    let config = PlanConfig { allowed_vaults: vec![], availability_zones: vec!["us-west-2a".into()], ..config() };
    let request = planned(plan_archive(&event("eventbridge-copy-job-completed.json"), &ebs_facts(), &config, now()));
    assert_eq!(request.trigger, TriggerKind::CopyJob);
    assert_eq!(request.snapshot_id, "snap-0726fe70935586180", "the copy, not the source");
    assert_eq!(request.copy_job_id.as_deref(), Some("0175DE71-5784-589F-D8AC-541ACCB4CAC8"));
    assert_eq!(request.idempotency_key, "copy-job-0175de71-5784-589f-d8ac-541accb4cac8");
    assert_eq!(request.vault_name.as_deref(), Some("846869de-4589-45c3-ab60-4fbbabcdd3ec"));
    assert_eq!(request.volume.unwrap().availability_zone, "us-west-2a");
    assert!(request.options.delete_recovery_point);
}

/// Issue 10: AWS Backup tells only the source account about a copy; the workload account forwards
/// the event, its `account` and `region` unchanged, to the central account, whose plan knows where
/// it runs (`home`).
#[test]
fn a_copy_forwarded_from_the_source_account_plans_where_its_vault_is_home() {
    let central = "arn:aws:backup:eu-central-1:999988887777:backup-vault:846869de-4589-45c3-ab60-4fbbabcdd3ec";
    let forwarded = TriggerEvent::from_value(&with(
        fixture("eventbridge-copy-job-completed.json"),
        "/detail/destinationBackupVaultArn",
        json!(central),
    ))
    .unwrap();
    let home = |account: &str, region: &str| Home { account: account.into(), region: region.into() };
    let config = PlanConfig {
        allowed_vaults: vec![],
        availability_zones: vec!["eu-central-1a".into()],
        home: Some(home("999988887777", "eu-central-1")),
        ..config()
    };
    let request = planned(plan_archive(&forwarded, &ebs_facts(), &config, now()));
    assert_eq!(request.snapshot_id, "snap-0726fe70935586180", "the copy, not the source");
    for (elsewhere, why) in [
        (PlanConfig { home: None, ..config.clone() }, "without home, the event's own account is home"),
        (PlanConfig { home: Some(home("999988887777", "eu-west-1")), ..config.clone() }, "another Region"),
        (PlanConfig { home: Some(home("111122223333", "eu-central-1")), ..config }, "another account"),
    ] {
        let reason = skipped(plan_archive(&forwarded, &ebs_facts(), &elsewhere, now()));
        assert!(matches!(reason, SkipReason::CopyLandsElsewhere { .. }), "{why}: {reason:?}");
    }
}

#[test]
fn copy_job_into_another_region_is_skipped() {
    let value = with(
        fixture("eventbridge-copy-job-completed.json"),
        "/detail/destinationBackupVaultArn",
        json!("arn:aws:backup:eu-central-1:1112233445566:backup-vault:archive-vault"),
    );
    let reason = skipped(plan_archive(&TriggerEvent::from_value(&value).unwrap(), &ebs_facts(), &config(), now()));
    assert!(matches!(reason, SkipReason::CopyLandsElsewhere { .. }), "{reason:?}");
}

#[test]
fn manual_ebs_snapshot_needs_its_volume_looked_up() {
    let err = plan_archive(&event("manual-ebs-snapshot.json"), &ebs_facts(), &config(), now()).unwrap_err();
    assert_eq!(err.field(), Some("source_resource_id"));
    assert_eq!(err.error_name(), errors::LOOKUP_INCOMPLETE);
}

#[test]
fn manual_ebs_snapshot_is_dated_by_the_snapshot() {
    let facts = SnapshotFacts {
        source_resource_id: Some("vol-0fedcba9876543210".into()),
        created_at: Some("2025-02-28T23:59:59Z".parse().unwrap()),
        ..ebs_facts()
    };
    let request = planned(plan_archive(&event("manual-ebs-snapshot.json"), &facts, &config(), now()));
    assert_eq!(request.trigger, TriggerKind::Manual);
    assert_eq!(request.destination.prefix, "backups/ebs/vol-0fedcba9876543210/2025/02/28/snap-0a1b2c3d4e5f67890");
    assert_eq!(request.idempotency_key, "ebs-snapshot-snap-0a1b2c3d4e5f67890");
    assert_eq!(request.vault_name, None);
    assert!(!request.options.delete_recovery_point, "a manual snapshot is never deleted");
    let undated = SnapshotFacts { created_at: None, ..facts };
    let request = planned(plan_archive(&event("manual-ebs-snapshot.json"), &undated, &config(), now()));
    assert_eq!(request.snapshot_date, now().date_naive(), "today when nothing else dates it");
}

#[test]
fn manual_mode_reaches_the_request() {
    let value = json!({"snapshot": "snap-0a1b2c3d4e5f67890", "mode": "raw"});
    let facts = SnapshotFacts { source_resource_id: Some("vol-1".into()), ..ebs_facts() };
    let request = planned(plan_archive(&TriggerEvent::from_value(&value).unwrap(), &facts, &config(), now()));
    assert_eq!(request.mode, Some(ModeRequest::Raw));
}

#[test]
fn the_direct_read_path_plans_no_volume_and_a_queue_of_any_az() {
    let queues = [("eu-west-1a", "qa"), ("eu-west-1b", "qb"), ("eu-west-1c", "qc")];
    let config = PlanConfig {
        read_path: ReadPath::Direct,
        job_queues: queues.iter().map(|(az, q)| (az.to_string(), q.to_string())).collect(),
        ..config()
    };
    let request =
        planned(plan_archive(&event("eventbridge-backup-job-completed-ebs.json"), &ebs_facts(), &config, now()));
    assert_eq!(request.read_path, Some(ReadPath::Direct));
    assert_eq!(request.volume, None, "nothing to create");
    let queue = request.job_queue.as_deref().expect("the job still needs a queue");
    assert!(queues.iter().any(|(_, q)| *q == queue), "{queue}");
    let value = serde_json::to_value(&request).unwrap();
    assert_eq!(value["read_path"], "direct", "the ASL's ChooseReadPath compares with this");
    assert!(value["volume"].is_null());
}

#[test]
fn files_mode_takes_the_volume_path_whatever_the_configuration() {
    let config = PlanConfig { read_path: ReadPath::Direct, ..config() };
    let facts = SnapshotFacts { source_resource_id: Some("vol-1".into()), ..ebs_facts() };
    for (mode, read_path) in [("files", ReadPath::Volume), ("raw", ReadPath::Direct), ("auto", ReadPath::Direct)] {
        let value = json!({"snapshot": "snap-0a1b2c3d4e5f67890", "mode": mode});
        let request = planned(plan_archive(&TriggerEvent::from_value(&value).unwrap(), &facts, &config, now()));
        assert_eq!(request.read_path, Some(read_path), "{mode}");
        assert_eq!(request.volume.is_some(), read_path == ReadPath::Volume, "{mode}");
    }
}

#[test]
fn only_ebs_archives_have_a_read_path() {
    let config = PlanConfig { read_path: ReadPath::Direct, ..config() };
    let facts = SnapshotFacts { source_resource_id: Some("billing-aurora".into()), ..rds_facts("aurora-postgresql") };
    let request = planned(plan_archive(&event("manual-aurora-snapshot-dump.json"), &facts, &config, now()));
    assert_eq!(request.read_path, None);
}

#[test]
fn the_read_path_setting_defaults_to_the_volume() {
    let config: PlanConfig = serde_json::from_value(json!({"destination": {"bucket": "b", "prefix": ""}})).unwrap();
    assert_eq!(config.read_path, ReadPath::Volume);
    let direct: PlanConfig =
        serde_json::from_value(json!({"destination": {"bucket": "b", "prefix": ""}, "read_path": "direct"})).unwrap();
    assert_eq!(direct.read_path, ReadPath::Direct);
}

#[test]
fn manual_method_overrides_the_default() {
    let facts = SnapshotFacts { source_resource_id: Some("billing-aurora".into()), ..rds_facts("aurora-postgresql") };
    let request = planned(plan_archive(&event("manual-aurora-snapshot-dump.json"), &facts, &config(), now()));
    assert_eq!(request.flow, Flow::RdsDump);
    assert_eq!(request.kind, ResourceKind::Aurora);
    assert_eq!(
        request.source_resource_arn.unwrap().to_string(),
        "arn:aws:rds:eu-west-1:111122223333:cluster:billing-aurora"
    );
}

#[test]
fn manual_method_the_engine_cannot_do_is_rejected() {
    let value = json!({"snapshot": "arn:aws:rds:eu-west-1:111122223333:cluster-snapshot:legacy", "method": "export"});
    let facts = SnapshotFacts { source_resource_id: Some("legacy".into()), ..rds_facts("aurora") };
    let err = plan_archive(&TriggerEvent::from_value(&value).unwrap(), &facts, &config(), now()).unwrap_err();
    assert_eq!(err.field(), Some("method"));
    assert_eq!(err.error_name(), errors::INVALID_EVENT);
}

#[test]
fn manual_method_is_enough_without_the_engine() {
    let facts = SnapshotFacts { source_resource_id: Some("billing-aurora".into()), ..SnapshotFacts::default() };
    let request = planned(plan_archive(&event("manual-aurora-snapshot-dump.json"), &facts, &config(), now()));
    assert_eq!(request.method, Some(DbMethod::Dump));
}

#[test]
fn snapshot_still_pending_is_a_retryable_error() {
    let facts = SnapshotFacts { status: Some("pending".into()), ..ebs_facts() };
    let err = plan_archive(&event("eventbridge-backup-job-completed-ebs.json"), &facts, &config(), now()).unwrap_err();
    assert_eq!(err.error_name(), errors::SNAPSHOT_NOT_READY);
    assert!(errors::is_retryable(err.error_name()));
}

#[test]
fn snapshot_in_error_is_not_retried() {
    let facts = SnapshotFacts { status: Some("error".into()), ..ebs_facts() };
    let err = plan_archive(&event("eventbridge-backup-job-completed-ebs.json"), &facts, &config(), now()).unwrap_err();
    assert_eq!(err.error_name(), errors::SNAPSHOT_UNUSABLE);
    assert!(!errors::is_retryable(err.error_name()));
}

#[test]
fn ebs_without_availability_zones_is_a_configuration_error() {
    let config = PlanConfig { availability_zones: vec![], ..config() };
    let err =
        plan_archive(&event("eventbridge-backup-job-completed-ebs.json"), &ebs_facts(), &config, now()).unwrap_err();
    assert_eq!(err.field(), Some("availability_zones"));
    assert_eq!(err.error_name(), errors::INVALID_CONFIG);
    let rds = plan_archive(&event("eventbridge-backup-job-completed-rds.json"), &rds_facts("postgres"), &config, now());
    assert!(rds.is_ok(), "databases need no AZ");
}

#[test]
fn invalid_configuration_is_reported_before_the_event_is_read() {
    let config = PlanConfig { volume_initialization_rate_mibps: Some(1_000), ..config() };
    let err = plan_archive(&event("eventbridge-backup-job-failed.json"), &SnapshotFacts::default(), &config, now())
        .unwrap_err();
    assert_eq!(err.field(), Some("volume_initialization_rate_mibps"));
}

#[test]
fn unknown_size_gets_baseline_volume_performance() {
    let facts = SnapshotFacts { size_bytes: None, ..ebs_facts() };
    let mut value = fixture("eventbridge-backup-job-completed-ebs.json");
    value["detail"].as_object_mut().unwrap().remove("backupSizeInBytes");
    let request = planned(plan_archive(&TriggerEvent::from_value(&value).unwrap(), &facts, &config(), now()));
    let volume = request.volume.unwrap();
    assert_eq!(
        (volume.iops, volume.throughput_mibps),
        (VolumePerformance::BASELINE.iops, VolumePerformance::BASELINE.throughput_mibps)
    );
}

#[test]
fn dynamodb_backup_job_plans_a_table_export() {
    let mut value = fixture("eventbridge-backup-job-completed-ebs.json");
    value["detail"]["resourceType"] = json!("DynamoDB");
    value["detail"]["resourceArn"] = json!("arn:aws:dynamodb:eu-west-1:111122223333:table/Orders.v2");
    value["resources"] =
        json!(["arn:aws:dynamodb:eu-west-1:111122223333:table/Orders.v2/backup/01741053612345-a1b2c3d4"]);
    let facts = SnapshotFacts { status: Some("AVAILABLE".into()), size_bytes: Some(123), ..SnapshotFacts::default() };
    let request = planned(plan_archive(&TriggerEvent::from_value(&value).unwrap(), &facts, &config(), now()));
    assert_eq!(request.kind, ResourceKind::DynamoDb);
    assert_eq!(request.flow, Flow::DynamodbExport);
    assert_eq!(request.method, Some(DbMethod::Export));
    assert_eq!(request.snapshot_id, "01741053612345-a1b2c3d4");
    assert_eq!(request.source_resource_id, "Orders.v2");
    assert_eq!(request.destination.prefix, "backups/dynamodb/Orders.v2/2025/03/04/01741053612345-a1b2c3d4");
    assert_eq!(request.volume, None);
}

#[test]
fn ec2_instance_backup_is_skipped() {
    let mut value = fixture("eventbridge-backup-job-completed-ebs.json");
    value["detail"]["resourceType"] = json!("EC2");
    value["detail"]["resourceArn"] = json!("arn:aws:ec2:eu-west-1:111122223333:instance/i-0515aee7de03f58e1");
    value["resources"] = json!(["arn:aws:ec2:eu-west-1::image/ami-00179b33a7a88cac5"]);
    let reason =
        skipped(plan_archive(&TriggerEvent::from_value(&value).unwrap(), &SnapshotFacts::default(), &config(), now()));
    assert_eq!(reason, SkipReason::UnsupportedResourceType { resource_type: "EC2".into() });
}

#[test]
fn deletion_follows_the_configuration() {
    let keep = PlanConfig { delete_recovery_point: false, ..config() };
    let request =
        planned(plan_archive(&event("eventbridge-backup-job-completed-ebs.json"), &ebs_facts(), &keep, now()));
    assert!(!request.options.delete_recovery_point);
}

#[test]
fn planned_outcome_is_flat_json_with_every_field_present() {
    let outcome =
        plan_archive(&event("eventbridge-backup-job-completed-ebs.json"), &ebs_facts(), &config(), now()).unwrap();
    let value = serde_json::to_value(&outcome).unwrap();
    assert_eq!(value["outcome"], "planned");
    assert_eq!(value["kind"], "ebs");
    assert_eq!(value["flow"], "ebs_archive");
    assert_eq!(value["trigger"], "backup_job");
    assert_eq!(value["snapshot_id"], "snap-0a1b2c3d4e5f67890");
    assert_eq!(value["destination"]["bucket"], "example-archive");
    assert_eq!(value["volume"]["availability_zone"].as_str().map(|az| az.starts_with("eu-west-1")), Some(true));
    assert_eq!(value["snapshot_date"], "2025-03-04");
    assert_eq!(value["mode"], "auto");
    assert_eq!(value["read_path"], "volume");
    // A JSONPath to an absent field fails a state, so unknown values are null, never missing.
    for field in ["method", "engine", "copy_job_id", "export_task_identifier", "job_queue"] {
        assert!(value.as_object().unwrap().contains_key(field), "{field} missing");
        assert!(value[field].is_null(), "{field}");
    }
    let back: PlanOutcome = serde_json::from_value(value).unwrap();
    assert_eq!(back, outcome);
}

#[test]
fn later_states_read_the_request_from_the_plan_output() {
    let outcome =
        plan_archive(&event("eventbridge-backup-job-completed-ebs.json"), &ebs_facts(), &config(), now()).unwrap();
    let mut state = serde_json::to_value(&outcome).unwrap();
    state["volume_id"] = json!("vol-0123456789abcdef0"); // a ResultPath added by CreateVolume
    let request: ArchiveRequest = serde_json::from_value(state).unwrap();
    let PlanOutcome::Planned(planned) = outcome else { panic!() };
    assert_eq!(request, *planned);
}

#[test]
fn skipped_outcome_json_names_the_reason() {
    let outcome =
        plan_archive(&event("eventbridge-backup-job-failed.json"), &SnapshotFacts::default(), &config(), now())
            .unwrap();
    let value = serde_json::to_value(&outcome).unwrap();
    assert_eq!(value["outcome"], "skipped");
    assert_eq!(value["reason"], json!({"code": "job_not_completed", "state": "FAILED"}));
    assert!(value["message"].as_str().unwrap().contains("FAILED"));
    assert_eq!(serde_json::from_value::<PlanOutcome>(value).unwrap(), outcome);
}

#[test]
fn every_trigger_fixture_is_planned_or_skipped_with_full_facts() {
    let facts = SnapshotFacts {
        source_resource_id: Some("resource-1".into()),
        vault_name: Some("archive-vault".into()),
        ..rds_facts("postgres")
    };
    let config = PlanConfig { allowed_vaults: vec![], ..config() };
    for name in common::TRIGGERS.iter().copied() {
        let outcome = plan_archive(&event(name), &facts, &config, now());
        assert!(outcome.is_ok(), "{name}: {outcome:?}");
    }
}
