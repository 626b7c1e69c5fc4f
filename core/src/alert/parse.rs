//! Reading every AWS Backup job event shape into a [`JobAlert`]: EventBridge's four job and
//! recovery point state changes (straight from a rule, or forwarded by a rule to SNS), and vault
//! notifications with their `EventType`/`State` attributes or the older event names
//! (`BACKUP_JOB_COMPLETED`, …). Errors name the field by its JSON path, as [`crate::event`] does.
//! <https://docs.aws.amazon.com/aws-backup/latest/devguide/eventbridge.html>,
//! <https://docs.aws.amazon.com/aws-backup/latest/devguide/backup-notifications.html>

use serde_json::Value;

use super::{resource_type_of, AlertEvent, AlertKind, Delivery, EventError, JobAlert};
use crate::arn::Arn;
use crate::event::{labelled_value, only_sns_record, parse_date, type_name, vault_name_of, Obj, SOURCE_BACKUP};

/// Reads an EventBridge event or an SNS delivery (one record) of AWS Backup.
pub fn read_alert(value: &Value) -> Result<AlertEvent, EventError> {
    let obj = Obj::new(value, "")?;
    if obj.has("detail-type") {
        read_eventbridge(&obj)
    } else if obj.has("Records") {
        read_sns(&obj)
    } else {
        Err(EventError::Invalid {
            field: "event".into(),
            reason: "neither an EventBridge event (with `detail-type`) nor an SNS delivery (with `Records`)".into(),
        })
    }
}

const JOB_DETAIL_TYPES: [(&str, AlertKind); 4] = [
    ("Backup Job State Change", AlertKind::BackupJob),
    ("Copy Job State Change", AlertKind::CopyJob),
    ("Restore Job State Change", AlertKind::RestoreJob),
    ("Recovery Point State Change", AlertKind::RecoveryPoint),
];

fn read_eventbridge(obj: &Obj<'_>) -> Result<AlertEvent, EventError> {
    let detail_type = obj.str("detail-type")?;
    let source = obj.str("source")?;
    if source != SOURCE_BACKUP {
        return Ok(AlertEvent::NotAJob {
            what: format!("{source} {detail_type:?}, not an AWS Backup event"),
            from_backup: false,
        });
    }
    let Some(&(_, kind)) = JOB_DETAIL_TYPES.iter().find(|(name, _)| *name == detail_type) else {
        return Ok(AlertEvent::NotAJob { what: format!("AWS Backup {detail_type:?}"), from_backup: true });
    };
    let detail = obj.obj("detail")?;
    let resources = arns(obj, "resources")?;
    // AWS writes `state` for backup and copy jobs and `status` for restore jobs and recovery points.
    let state = match (detail.opt_str("state")?, detail.opt_str("status")?) {
        (Some(state), _) | (None, Some(state)) if !state.is_empty() => state.to_ascii_uppercase(),
        _ => return Err(EventError::Missing { field: detail.at("state") }),
    };
    let job_key = match kind {
        AlertKind::BackupJob => Some("backupJobId"),
        AlertKind::CopyJob => Some("copyJobId"),
        AlertKind::RestoreJob => Some("restoreJobId"),
        AlertKind::RecoveryPoint => None,
    };
    let job_id = job_key.map(|key| detail.opt_string(key)).transpose()?.flatten().filter(|id| !id.is_empty());
    if kind == AlertKind::BackupJob && job_id.is_none() {
        return Err(EventError::Missing { field: detail.at("backupJobId") });
    }
    let vault_arn = detail.opt_arn("backupVaultArn")?;
    let source_vault_arn = detail.opt_arn("sourceBackupVaultArn")?;
    let destination_vault_arn = detail.opt_arn("destinationBackupVaultArn")?;
    let vault_name = detail
        .opt_string("backupVaultName")?
        .or_else(|| vault_arn.as_ref().and_then(vault_name_of).map(str::to_string))
        .or_else(|| source_vault_arn.as_ref().and_then(vault_name_of).map(str::to_string));
    // Until a copy exists AWS writes `"destinationRecoveryPointArn": {}`.
    let destination_point = match detail.get("destinationRecoveryPointArn") {
        Some(Value::Object(empty)) if empty.is_empty() => None,
        _ => detail.opt_arn("destinationRecoveryPointArn")?,
    };
    let recovery_point_arn = destination_point
        .or(detail.opt_arn("recoveryPointArn")?)
        .or_else(|| resources.first().cloned())
        .map(|arn| arn.to_string());
    let resource_arn = detail.opt_arn("resourceArn")?;
    let created_resource_arn = detail.opt_arn("createdResourceArn")?;
    let resource_type = detail.opt_string("resourceType")?.or_else(|| {
        resource_arn.as_ref().or(created_resource_arn.as_ref()).and_then(resource_type_of).map(str::to_string)
    });
    let destination_vault = destination_vault_arn.map(|arn| {
        let same_place = source_vault_arn.as_ref().is_some_and(|s| s.account == arn.account && s.region == arn.region);
        match vault_name_of(&arn) {
            Some(name) if same_place => name.to_string(),
            _ => arn.to_string(),
        }
    });
    Ok(AlertEvent::Alert(Box::new(JobAlert {
        kind,
        state,
        delivery: Delivery::EventBridge { detail_type: detail_type.to_string(), id: obj.opt_string("id")? },
        job_id,
        account: obj.opt_string("account")?,
        region: obj.opt_string("region")?,
        vault_name,
        destination_vault,
        resource_arn: resource_arn.map(|a| a.to_string()),
        resource_type,
        recovery_point_arn,
        created_resource_arn: created_resource_arn.map(|a| a.to_string()),
        size_bytes: detail.opt_size("backupSizeInBytes")?,
        creation_date: detail.opt_date("creationDate")?,
        completion_date: detail.opt_date("completionDate")?,
        event_time: obj.opt_date("time")?,
        status_message: detail.opt_string("statusMessage")?.map(|m| unquote(&m)).filter(|m| !m.is_empty()),
        notification_text: None,
    })))
}

fn read_sns(obj: &Obj<'_>) -> Result<AlertEvent, EventError> {
    let (_, sns) = only_sns_record(obj)?;
    let text = sns.str("Message")?;
    let message_path = sns.at("Message");
    if let Ok(inner @ Value::Object(_)) = serde_json::from_str::<Value>(text) {
        let message = Obj::new(&inner, &message_path)?;
        if message.has("detail-type") {
            return read_eventbridge(&message);
        }
        if message.has("Event Source") || message.has("Event ID") {
            return Ok(AlertEvent::NotAJob { what: "an RDS event notification".into(), from_backup: false });
        }
        return Err(EventError::Invalid {
            field: message_path,
            reason: "JSON, but neither an EventBridge event nor an RDS event".into(),
        });
    }
    read_vault_notification(&sns, text)
}

/// The event types of vault notifications and what they are about, with the state an older event
/// name carries (`BACKUP_JOB_COMPLETED`).
/// <https://docs.aws.amazon.com/aws-backup/latest/devguide/API_PutBackupVaultNotifications.html>
fn event_type_meaning(event_type: &str) -> Option<(AlertKind, Option<&'static str>)> {
    let kinds = [
        ("BACKUP_JOB", AlertKind::BackupJob),
        ("COPY_JOB", AlertKind::CopyJob),
        ("RESTORE_JOB", AlertKind::RestoreJob),
        ("RECOVERY_POINT", AlertKind::RecoveryPoint),
    ];
    for (prefix, kind) in kinds {
        let Some(rest) = event_type.strip_prefix(prefix) else { continue };
        let state = match rest {
            "" => None,
            "_STARTED" => Some("STARTED"),
            "_COMPLETED" | "_SUCCESSFUL" => Some("COMPLETED"),
            "_FAILED" => Some("FAILED"),
            "_EXPIRED" => Some("EXPIRED"),
            "_ABORTED" => Some("ABORTED"),
            "_MODIFIED" => Some("MODIFIED"),
            _ => continue,
        };
        return Some((kind, state));
    }
    None
}

fn read_vault_notification(sns: &Obj<'_>, text: &str) -> Result<AlertEvent, EventError> {
    let attributes_path = sns.at("MessageAttributes");
    let attributes = match sns.get("MessageAttributes") {
        Some(value) => Some(Obj::new(value, &attributes_path)?),
        None => None,
    };
    let attribute = |name: &str| -> Result<Option<String>, EventError> {
        let Some(attributes) = &attributes else { return Ok(None) };
        let Some((key, _)) = attributes.map.iter().find(|(key, _)| key.eq_ignore_ascii_case(name)) else {
            return Ok(None);
        };
        let value = attributes.obj(key)?.opt_string("Value")?;
        Ok(value.filter(|v| !v.is_empty()))
    };
    let value_path = |name: &str| format!("{attributes_path}.{name}.Value");
    let Some(event_type) = attribute("EventType")? else {
        let from_backup =
            sns.opt_str("Subject")?.is_some_and(|s| s.contains("AWS Backup")) || text.starts_with("An AWS Backup");
        return Err(if from_backup {
            EventError::Missing { field: value_path("EventType") }
        } else {
            EventError::Invalid {
                field: sns.at("Message"),
                reason: "neither JSON (an EventBridge event) nor an AWS Backup vault notification".into(),
            }
        });
    };
    let Some((kind, named_state)) = event_type_meaning(&event_type) else {
        return Ok(AlertEvent::NotAJob { what: format!("vault notification {event_type}"), from_backup: true });
    };
    // The `State` attribute decides; the older names carry the state in themselves.
    let state = match (attribute("State")?, named_state) {
        (Some(state), _) => state.to_ascii_uppercase(),
        (None, Some(state)) => state.to_string(),
        (None, None) => return Err(EventError::Missing { field: value_path("State") }),
    };
    let message_path = sns.at("Message");
    let text_arn = |labels: &[&str]| -> Result<Option<String>, EventError> {
        labelled_value(text, labels)
            .map(|value| {
                value.parse::<Arn>().map(|a| a.to_string()).map_err(|e| EventError::Invalid {
                    field: message_path.clone(),
                    reason: format!("{}: {e}", labels[0]),
                })
            })
            .transpose()
    };
    let topic = sns.opt_arn("TopicArn")?;
    let resource_arn = text_arn(&["Backed up Resource ARN", "Resource ARN"])?;
    let job_labels: &[&str] = match kind {
        AlertKind::BackupJob => &["BackupJob ID", "Backup Job Id", "Backup Job ID"],
        AlertKind::CopyJob => &["Copy Job ID", "CopyJob ID"],
        AlertKind::RestoreJob => &["Restore Job ID", "RestoreJob ID"],
        AlertKind::RecoveryPoint => &[],
    };
    let job_id = attribute("Id")?.or_else(|| labelled_value(text, job_labels).map(str::to_string));
    let start_time = attribute("StartTime")?.map(|t| parse_date(&t, &value_path("StartTime"))).transpose()?;
    Ok(AlertEvent::Alert(Box::new(JobAlert {
        kind,
        state,
        delivery: Delivery::VaultNotification { event_type, message_id: sns.opt_string("MessageId")? },
        job_id: if kind == AlertKind::RecoveryPoint { None } else { job_id },
        account: attribute("AccountId")?.or_else(|| topic.as_ref().map(|t| t.account.clone())),
        region: topic.as_ref().map(|t| t.region.clone()),
        vault_name: None,
        destination_vault: None,
        resource_type: resource_arn
            .as_deref()
            .and_then(|a| a.parse::<Arn>().ok())
            .and_then(|a| resource_type_of(&a).map(str::to_string)),
        resource_arn,
        recovery_point_arn: text_arn(&["Recovery point ARN"])?,
        created_resource_arn: None,
        size_bytes: None,
        creation_date: start_time,
        completion_date: None,
        event_time: sns.opt_date("Timestamp")?,
        status_message: None,
        notification_text: Some(text.to_string()),
    })))
}

/// AWS's example writes the status message inside its own quotes.
fn unquote(text: &str) -> String {
    let trimmed = text.trim();
    trimmed.strip_prefix('"').and_then(|t| t.strip_suffix('"')).unwrap_or(trimmed).to_string()
}

/// `resources`: ARNs, each checked.
fn arns(obj: &Obj<'_>, key: &str) -> Result<Vec<Arn>, EventError> {
    match obj.get(key) {
        None => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                let field = format!("{}[{i}]", obj.at(key));
                match item {
                    Value::String(text) => {
                        text.parse::<Arn>().map_err(|e| EventError::Invalid { field, reason: e.to_string() })
                    }
                    other => Err(EventError::WrongType { field, expected: "a string", found: type_name(other) }),
                }
            })
            .collect(),
        Some(other) => Err(EventError::WrongType { field: obj.at(key), expected: "an array", found: type_name(other) }),
    }
}
