//! Every AWS Backup fixture read, decided and rendered; malformed variants named by their field.

use super::render::{Format, Message};
use super::*;
use serde_json::{json, Value};

fn fixture(name: &str) -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

fn alert(name: &str) -> JobAlert {
    match read_alert(&fixture(name)) {
        Ok(AlertEvent::Alert(alert)) => *alert,
        other => panic!("{name}: {other:?}"),
    }
}

fn rejects(value: Value, field: &str) {
    match read_alert(&value) {
        Err(error) => assert_eq!(error.field(), field, "{error}"),
        Ok(read) => panic!("accepted: {read:?}"),
    }
}

/// `value` with the field at `pointer` set (added when absent).
fn set(mut value: Value, pointer: &str, new: Value) -> Value {
    let (parent, key) = pointer.rsplit_once('/').unwrap();
    let target = value.pointer_mut(parent).unwrap_or_else(|| panic!("{parent}"));
    match target {
        Value::Object(map) => {
            map.insert(key.to_string(), new);
        }
        Value::Array(items) => items[key.parse::<usize>().unwrap()] = new,
        _ => panic!("{parent} holds no fields"),
    }
    value
}

fn remove(mut value: Value, pointer: &str) -> Value {
    let (parent, key) = pointer.rsplit_once('/').unwrap();
    value.pointer_mut(parent).unwrap().as_object_mut().unwrap().remove(key).unwrap();
    value
}

/// Every job event fixture: its kind, state, and what the default configuration does with it.
const JOB_EVENTS: &[(&str, AlertKind, &str, Option<Route>)] = &[
    ("eventbridge-backup-job-completed-ebs.json", AlertKind::BackupJob, "COMPLETED", None),
    ("eventbridge-backup-job-completed-rds.json", AlertKind::BackupJob, "COMPLETED", None),
    ("eventbridge-backup-job-completed-aurora.json", AlertKind::BackupJob, "COMPLETED", None),
    ("eventbridge-backup-job-failed.json", AlertKind::BackupJob, "FAILED", Some(Route::Failures)),
    ("alerts/eventbridge-backup-job-aborted.json", AlertKind::BackupJob, "ABORTED", Some(Route::Failures)),
    ("alerts/eventbridge-backup-job-expired.json", AlertKind::BackupJob, "EXPIRED", Some(Route::Failures)),
    ("alerts/eventbridge-backup-job-partial.json", AlertKind::BackupJob, "PARTIAL", Some(Route::Failures)),
    ("alerts/eventbridge-backup-job-created.json", AlertKind::BackupJob, "CREATED", None),
    ("alerts/eventbridge-backup-job-running.json", AlertKind::BackupJob, "RUNNING", None),
    ("eventbridge-copy-job-completed.json", AlertKind::CopyJob, "COMPLETED", None),
    ("eventbridge-copy-job-failed.json", AlertKind::CopyJob, "FAILED", Some(Route::Failures)),
    ("alerts/eventbridge-copy-job-running.json", AlertKind::CopyJob, "RUNNING", None),
    ("alerts/eventbridge-restore-job-completed.json", AlertKind::RestoreJob, "COMPLETED", None),
    ("alerts/eventbridge-restore-job-failed.json", AlertKind::RestoreJob, "FAILED", Some(Route::Failures)),
    ("alerts/eventbridge-recovery-point-state-change-completed.json", AlertKind::RecoveryPoint, "COMPLETED", None),
    (
        "alerts/eventbridge-recovery-point-state-change-expired.json",
        AlertKind::RecoveryPoint,
        "EXPIRED",
        Some(Route::Failures),
    ),
    (
        "alerts/eventbridge-recovery-point-state-change-partial.json",
        AlertKind::RecoveryPoint,
        "PARTIAL",
        Some(Route::Failures),
    ),
    ("sns-backup-vault-backup-job-completed.json", AlertKind::BackupJob, "COMPLETED", None),
    ("sns-backup-vault-backup-job-failed.json", AlertKind::BackupJob, "FAILED", Some(Route::Failures)),
    ("sns-backup-vault-backup-job-expired.json", AlertKind::BackupJob, "EXPIRED", Some(Route::Failures)),
    ("alerts/sns-backup-vault-copy-job-failed.json", AlertKind::CopyJob, "FAILED", Some(Route::Failures)),
    ("alerts/sns-backup-vault-restore-job-completed.json", AlertKind::RestoreJob, "COMPLETED", None),
    ("alerts/sns-backup-vault-recovery-point-modified.json", AlertKind::RecoveryPoint, "MODIFIED", None),
    ("alerts/sns-backup-vault-backup-job-started-older-name.json", AlertKind::BackupJob, "STARTED", None),
    ("alerts/sns-backup-vault-backup-job-completed-older-name.json", AlertKind::BackupJob, "COMPLETED", None),
    (
        "alerts/sns-backup-vault-backup-job-failed-older-name.json",
        AlertKind::BackupJob,
        "FAILED",
        Some(Route::Failures),
    ),
    (
        "alerts/sns-backup-vault-backup-job-expired-older-name.json",
        AlertKind::BackupJob,
        "EXPIRED",
        Some(Route::Failures),
    ),
    ("alerts/sns-eventbridge-backup-job-failed.json", AlertKind::BackupJob, "FAILED", Some(Route::Failures)),
];

#[test]
fn every_job_event_fixture_is_read_and_decided() {
    let config = AlertConfig::default();
    for &(name, kind, state, route) in JOB_EVENTS {
        let read = alert(name);
        assert_eq!((read.kind, read.state.as_str()), (kind, state), "{name}");
        let decision = decide(&AlertEvent::Alert(Box::new(read.clone())), &config);
        match (route, &decision) {
            (Some(expected), Decision::Send { route, .. }) => assert_eq!(*route, expected, "{name}"),
            (None, Decision::Filtered { reason }) => assert!(reason.contains(state), "{name}: {reason}"),
            _ => panic!("{name}: {decision:?}"),
        }
        for format in [Format::Slack, Format::Text, Format::Chatbot] {
            let rendered = read.render(format).to_string();
            assert!(rendered.contains(state) || rendered.contains("with issues"), "{name} {format:?}: {rendered}");
        }
    }
}

#[test]
fn completed_is_sent_when_configured() {
    let config = AlertConfig::from_lists("FAILED,completed", "", "").unwrap();
    let completed = AlertEvent::Alert(Box::new(alert("eventbridge-backup-job-completed-ebs.json")));
    assert_eq!(decide(&completed, &config), Decision::Send { route: Route::Others, severity: Severity::Success });
}

#[test]
fn other_backup_and_service_events_are_filtered_not_malformed() {
    for (name, what) in [
        ("alerts/eventbridge-backup-vault-state-change.json", "Backup Vault State Change"),
        ("alerts/sns-backup-vault-backup-plan-created.json", "BACKUP_PLAN_CREATED"),
        ("eventbridge-rds-db-snapshot-event-created.json", "aws.rds"),
        ("sns-rds-event-cluster-snapshot-automated-created.json", "RDS event"),
    ] {
        let event = read_alert(&fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        let Decision::Filtered { reason } = decide(&event, &AlertConfig::default()) else { panic!("{name}") };
        assert!(reason.contains(what), "{name}: {reason}");
    }
}

#[test]
fn a_failed_job_reads_alike_by_sns_and_by_eventbridge() {
    let by_rule = alert("eventbridge-backup-job-failed.json");
    let by_vault = alert("sns-backup-vault-backup-job-failed.json");
    let forwarded = alert("alerts/sns-eventbridge-backup-job-failed.json");
    assert_eq!(by_rule.dedup_key(), "backup-job/6A5B4C3D-2E1F-0A9B-8C7D-6E5F4A3B2C1D/FAILED");
    assert_eq!(by_vault.dedup_key(), by_rule.dedup_key(), "one message whichever way it came");
    assert_eq!(
        forwarded,
        JobAlert { delivery: forwarded.delivery.clone(), ..by_rule.clone() },
        "a forwarded event is the event"
    );
    assert_eq!(by_vault.resource_arn, by_rule.resource_arn);
    assert_eq!(by_vault.resource_type.as_deref(), Some("EBS"), "guessed from the volume's ARN");
    assert_eq!(by_vault.account.as_deref(), Some("111122223333"));
    assert_eq!(by_vault.region.as_deref(), Some("eu-west-1"), "from the topic's ARN");
    assert_eq!(
        by_rule.status_message.as_deref(),
        Some("Backup job failed because the volume vol-0123456789abcdef0 does not exist."),
        "AWS's own quotes removed"
    );
}

#[test]
fn a_different_state_of_the_same_job_is_another_message() {
    let failed = alert("eventbridge-backup-job-failed.json");
    let aborted = alert("alerts/eventbridge-backup-job-aborted.json");
    assert_ne!(failed.dedup_key(), aborted.dedup_key());
    assert_eq!(failed.claim_key("backups/"), format!("backups/.alerts/{}", failed.dedup_key()));
    assert_eq!(failed.claim_key(""), format!(".alerts/{}", failed.dedup_key()));
}

#[test]
fn events_without_a_job_are_keyed_by_recovery_point_or_delivery() {
    let point = alert("alerts/eventbridge-recovery-point-state-change-expired.json");
    assert!(point.dedup_key().starts_with("recovery-point/") && point.dedup_key().ends_with("/EXPIRED"));
    let mut anonymous = point.clone();
    anonymous.recovery_point_arn = None;
    assert_eq!(anonymous.dedup_key(), "recovery-point/delivery-2a3b4c5d-6e7f-8a9b-0c1d-2e3f4a5bexpi/EXPIRED");
    anonymous.delivery = Delivery::EventBridge { detail_type: "Recovery Point State Change".into(), id: None };
    assert_eq!(anonymous.dedup_key(), anonymous.clone().dedup_key(), "stable");
    assert!(!anonymous.dedup_key().contains(' '));
}

#[test]
fn older_event_names_decide_on_their_state_unless_state_is_given() {
    let value = fixture("alerts/sns-backup-vault-backup-job-failed-older-name.json");
    let with_state = set(
        value.clone(),
        "/Records/0/Sns/MessageAttributes",
        json!({"EventType": {"Type": "String", "Value": "BACKUP_JOB_FAILED"}, "State": {"Type": "String", "Value": "ABORTED"}}),
    );
    let AlertEvent::Alert(read) = read_alert(&with_state).unwrap() else { panic!() };
    assert_eq!(read.state, "ABORTED", "the State attribute decides");
    let successful = set(value, "/Records/0/Sns/MessageAttributes/EventType/Value", json!("COPY_JOB_SUCCESSFUL"));
    let AlertEvent::Alert(read) = read_alert(&successful).unwrap() else { panic!() };
    assert_eq!((read.kind, read.state.as_str()), (AlertKind::CopyJob, "COMPLETED"));
}

#[test]
fn filters_by_vault_and_resource_type() {
    let failed = AlertEvent::Alert(Box::new(alert("eventbridge-backup-job-failed.json")));
    let other_vault = AlertConfig::from_lists("", "prod-vault, other", "").unwrap();
    let Decision::Filtered { reason } = decide(&failed, &other_vault) else { panic!() };
    assert!(reason.contains("archive-vault"), "{reason}");
    let our_vault = AlertConfig::from_lists("", "archive-vault", "").unwrap();
    assert!(matches!(decide(&failed, &our_vault), Decision::Send { .. }));
    let rds_only = AlertConfig::from_lists("", "", "RDS,Aurora").unwrap();
    let Decision::Filtered { reason } = decide(&failed, &rds_only) else { panic!() };
    assert!(reason.contains("EBS"), "{reason}");
    assert!(matches!(decide(&failed, &AlertConfig::from_lists("", "", "ebs").unwrap()), Decision::Send { .. }));
    // A vault notification names no vault: the vault that chose the topic passes the filter.
    let by_vault = AlertEvent::Alert(Box::new(alert("sns-backup-vault-backup-job-failed.json")));
    assert!(matches!(decide(&by_vault, &other_vault), Decision::Send { .. }));
    // A copy matches by its source or destination vault.
    let copy = AlertEvent::Alert(Box::new(alert("eventbridge-copy-job-failed.json")));
    let destination = AlertConfig::from_lists("", "55aa945e-c46a-421b-aa27-f94b074e31b7", "").unwrap();
    assert!(matches!(decide(&copy, &destination), Decision::Send { .. }));
}

#[test]
fn config_names_an_unknown_state_and_defaults_are_quiet() {
    let error = AlertConfig::from_lists("FAILED,FAILD", "", "").unwrap_err();
    assert!(error.to_string().contains("\"FAILD\""), "{error}");
    let config = AlertConfig::from_lists(" ", "", "").unwrap();
    assert_eq!(config, AlertConfig::default());
    for quiet in ["COMPLETED", "STARTED", "CREATED", "RUNNING"] {
        assert!(!config.states.contains(quiet), "{quiet} is noise by default");
    }
    let parsed: AlertConfig = serde_json::from_value(json!({"states": ["COMPLETED"]})).unwrap();
    assert_eq!(parsed.states.len(), 1);
    assert!(serde_json::from_value::<AlertConfig>(json!({"state": ["FAILED"]})).is_err(), "typos are errors");
}

#[test]
fn an_unknown_state_is_filtered_not_malformed() {
    let value = set(fixture("eventbridge-backup-job-failed.json"), "/detail/state", json!("HIBERNATING"));
    let event = read_alert(&value).unwrap();
    assert!(matches!(decide(&event, &AlertConfig::default()), Decision::Filtered { .. }));
}

#[test]
fn malformed_events_name_their_field() {
    let failed = fixture("eventbridge-backup-job-failed.json");
    rejects(remove(failed.clone(), "/detail/state"), "detail.state");
    rejects(set(failed.clone(), "/detail/state", json!(3)), "detail.state");
    rejects(remove(failed.clone(), "/detail/backupJobId"), "detail.backupJobId");
    rejects(set(failed.clone(), "/detail/resourceArn", json!("vol-1")), "detail.resourceArn");
    rejects(set(failed.clone(), "/detail/creationDate", json!("yesterday")), "detail.creationDate");
    rejects(set(failed.clone(), "/detail/backupSizeInBytes", json!("big")), "detail.backupSizeInBytes");
    rejects(set(failed.clone(), "/resources", json!(["snap-1"])), "resources[0]");
    rejects(remove(failed.clone(), "/detail"), "detail");
    rejects(set(failed, "/source", json!(7)), "source");
    let restore = fixture("alerts/eventbridge-restore-job-completed.json");
    rejects(remove(restore, "/detail/status"), "detail.state");
    let sns = fixture("sns-backup-vault-backup-job-failed.json");
    rejects(
        remove(sns.clone(), "/Records/0/Sns/MessageAttributes/State"),
        "Records[0].Sns.MessageAttributes.State.Value",
    );
    rejects(
        remove(sns.clone(), "/Records/0/Sns/MessageAttributes/EventType"),
        "Records[0].Sns.MessageAttributes.EventType.Value",
    );
    let not_backup = remove(sns.clone(), "/Records/0/Sns/MessageAttributes");
    rejects(
        set(remove(not_backup, "/Records/0/Sns/Subject"), "/Records/0/Sns/Message", json!("hello")),
        "Records[0].Sns.Message",
    );
    rejects(set(sns.clone(), "/Records/0/Sns/Message", json!("{\"a\": 1}")), "Records[0].Sns.Message");
    rejects(
        set(sns.clone(), "/Records/0/Sns/MessageAttributes/StartTime/Value", json!("noon")),
        "Records[0].Sns.MessageAttributes.StartTime.Value",
    );
    rejects(set(sns.clone(), "/Records", json!([])), "Records");
    rejects(remove(sns, "/Records/0/Sns"), "Records[0].Sns");
    let forwarded = fixture("alerts/sns-eventbridge-backup-job-failed.json");
    let mut inner = fixture("eventbridge-backup-job-failed.json");
    inner["detail"].as_object_mut().unwrap().remove("state");
    rejects(set(forwarded, "/Records/0/Sns/Message", json!(inner.to_string())), "Records[0].Sns.Message.detail.state");
    rejects(json!({"snapshot": "snap-0123456789abcdef0"}), "event");
    rejects(json!([]), "event");
}

#[test]
fn slack_message_puts_what_broke_first_with_colour_and_links() {
    let failed = alert("eventbridge-backup-job-failed.json");
    assert_eq!(failed.title(), "Backup job FAILED: EBS vol-0123456789abcdef0 in archive-vault");
    let payload = failed.slack_payload();
    assert_eq!(payload["text"], ":rotating_light: Backup job FAILED: EBS vol-0123456789abcdef0 in archive-vault");
    let attachment = &payload["attachments"][0];
    assert_eq!(attachment["color"], "#D0021B");
    let blocks = attachment["blocks"].as_array().unwrap();
    assert_eq!(
        blocks[1]["text"]["text"],
        ">Backup job failed because the volume vol-0123456789abcdef0 does not exist."
    );
    let actions = blocks.iter().find(|b| b["type"] == "actions").unwrap();
    assert_eq!(
        actions["elements"][0]["url"],
        "https://eu-west-1.console.aws.amazon.com/backup/home?region=eu-west-1#/jobs/backup/details/6A5B4C3D-2E1F-0A9B-8C7D-6E5F4A3B2C1D"
    );
    assert_eq!(
        actions["elements"][1]["url"],
        "https://eu-west-1.console.aws.amazon.com/backup/home?region=eu-west-1#/resources/arn%3Aaws%3Aec2%3Aeu-west-1%3A111122223333%3Avolume%2Fvol-0123456789abcdef0",
        "no recovery point: the protected resource's page"
    );
    for block in blocks.iter().filter(|b| b["type"] == "section" && b.get("fields").is_some()) {
        assert!(block["fields"].as_array().unwrap().len() <= 10);
    }
    let completed = alert("eventbridge-backup-job-completed-ebs.json");
    let links = completed.links();
    assert_eq!(links[1].0, "Open recovery point");
    assert!(links[1].1.ends_with(
        "#/backupvaults/details/archive-vault/arn%3Aaws%3Aec2%3Aeu-west-1%3A%3Asnapshot%2Fsnap-0a1b2c3d4e5f67890"
    ));
    assert_eq!(completed.slack_payload()["attachments"][0]["color"], "#2EB67D");
}

#[test]
fn slack_escapes_what_aws_wrote() {
    let value = set(fixture("eventbridge-backup-job-failed.json"), "/detail/statusMessage", json!("<b>&</b>"));
    let AlertEvent::Alert(read) = read_alert(&value).unwrap() else { panic!() };
    let payload = read.slack_payload().to_string();
    assert!(payload.contains("&lt;b&gt;&amp;&lt;/b&gt;") && !payload.contains("<b>"), "{payload}");
}

#[test]
fn severity_and_colour_follow_the_state() {
    assert_eq!(alert("alerts/eventbridge-backup-job-partial.json").severity(), Severity::Warning);
    assert_eq!(alert("alerts/eventbridge-backup-job-expired.json").severity(), Severity::Failure);
    assert_eq!(alert("alerts/eventbridge-recovery-point-state-change-expired.json").severity(), Severity::Warning);
    assert_eq!(alert("alerts/eventbridge-backup-job-running.json").severity(), Severity::Info);
    let issues =
        set(fixture("eventbridge-backup-job-completed-ebs.json"), "/detail/statusMessage", json!("1 file skipped"));
    let AlertEvent::Alert(read) = read_alert(&issues).unwrap() else { panic!() };
    assert_eq!(read.severity(), Severity::Warning);
    assert!(read.title().starts_with("Backup job COMPLETED with issues"), "{}", read.title());
}

#[test]
fn text_message_has_subject_reason_fields_and_links() {
    let failed = alert("alerts/eventbridge-restore-job-failed.json");
    assert_eq!(failed.sns_subject(), "Restore job FAILED: EBS");
    let text = failed.text_message();
    assert!(text.starts_with("Restore job FAILED: EBS\n\nReason: Encountered an error while restoring"), "{text}");
    assert!(text.contains("Recovery point: arn:aws:ec2:eu-west-1::snapshot/snap-0a1b2c3d4e5f67890\n"), "{text}");
    assert!(text.contains(
        "Open job: https://eu-west-1.console.aws.amazon.com/backup/home?region=eu-west-1#/jobs/restore/details/"
    ));
    assert!(text.contains("Duration: 11 min"), "{text}");
    let completed = alert("alerts/eventbridge-restore-job-completed.json");
    assert!(completed
        .text_message()
        .contains("Restored as: arn:aws:ec2:eu-west-1:111122223333:volume/vol-0badc0ffee0ddf00d"));
    let long = JobAlert { resource_arn: Some(format!("arn:aws:s3:::{}", "é".repeat(300))), ..failed };
    assert!(long.sns_subject().len() <= crate::message::MAX_SNS_SUBJECT_CHARS && long.sns_subject().is_ascii());
    let prose = alert("sns-backup-vault-backup-job-expired.json").text_message();
    assert!(prose.contains("An AWS Backup job failed to complete in time."), "the prose is all there is: {prose}");
}

#[test]
fn chatbot_notification_follows_the_custom_schema() {
    let reference = fixture("chatbot-custom-notification.json");
    let failed = alert("alerts/sns-backup-vault-copy-job-failed.json").chatbot_notification();
    assert_eq!(failed["version"], reference["version"]);
    assert_eq!(failed["source"], reference["source"]);
    assert_eq!(failed["content"]["textType"], reference["content"]["textType"]);
    for key in ["title", "description"] {
        assert!(failed["content"][key].as_str().is_some_and(|s| !s.is_empty()), "{key}");
    }
    let steps = failed["content"]["nextSteps"].as_array().unwrap();
    assert!(
        steps[0].as_str().unwrap().contains("#/jobs/copy/details/0D1E2F3A-4B5C-6D7E-8F9A-0B1C2D3E4F5A"),
        "{steps:?}"
    );
    assert_eq!(failed["metadata"]["threadId"], "copy-job-0D1E2F3A-4B5C-6D7E-8F9A-0B1C2D3E4F5A");
    let completed = alert("eventbridge-backup-job-completed-ebs.json").chatbot_notification();
    assert_eq!(completed["content"]["nextSteps"], json!([]), "nothing to do after a success");
}

#[test]
fn console_links_follow_the_partition() {
    let mut failed = alert("eventbridge-backup-job-failed.json");
    failed.region = Some("cn-north-1".into());
    assert!(failed
        .job_console_url()
        .unwrap()
        .starts_with("https://console.amazonaws.cn/backup/home?region=cn-north-1#"));
    failed.region = None;
    assert_eq!(failed.job_console_url(), None, "no region, no link");
}

#[test]
fn the_plan_skips_backup_events_that_start_no_archive() {
    for name in [
        "alerts/eventbridge-recovery-point-state-change-completed.json",
        "alerts/eventbridge-restore-job-completed.json",
        "alerts/eventbridge-backup-vault-state-change.json",
        "alerts/sns-backup-vault-recovery-point-modified.json",
    ] {
        let skip = archive_skip(&fixture(name)).unwrap_or_else(|| panic!("{name}"));
        assert!(!skip.needs_attention(), "{name}");
    }
    assert_eq!(archive_skip(&json!({"detail-type": "Backup Job State Change"})), None, "malformed stays malformed");
    let rds = set(
        fixture("sns-rds-event-cluster-snapshot-automated-created.json"),
        "/Records/0/Sns/Message",
        json!("{\"Event Source\": 7}"),
    );
    assert_eq!(archive_skip(&rds), None, "another service's malformed event is the trigger parser's to reject");
}

#[test]
fn a_vault_notification_is_completed_by_the_jobs_description() {
    let mut by_vault = alert("sns-backup-vault-backup-job-failed.json");
    assert!(by_vault.wants_description());
    assert!(!alert("eventbridge-backup-job-failed.json").wants_description(), "EventBridge says it all");
    assert!(!alert("alerts/sns-backup-vault-recovery-point-modified.json").wants_description(), "no job");
    by_vault.describe_with(JobDescription {
        status_message: Some("Backup job failed because the volume does not exist.".into()),
        vault: Some("arn:aws:backup:eu-west-1:111122223333:backup-vault:archive-vault".into()),
        resource_type: Some("EC2".into()),
        size_bytes: Some(0),
        ..JobDescription::default()
    });
    assert_eq!(by_vault.vault_name.as_deref(), Some("archive-vault"), "the vault's name out of its ARN");
    assert_eq!(by_vault.resource_type.as_deref(), Some("EBS"), "the event's own value wins");
    assert_eq!(by_vault.reason().as_deref(), Some("Backup job failed because the volume does not exist."));
    assert!(by_vault.slack_payload().to_string().contains(">Backup job failed because the volume does not exist."));
    // Now the vault is known, a vault filter applies to it.
    let other = AlertConfig::from_lists("", "prod-vault", "").unwrap();
    assert!(matches!(decide(&AlertEvent::Alert(Box::new(by_vault)), &other), Decision::Filtered { .. }));
}
