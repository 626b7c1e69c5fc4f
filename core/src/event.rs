//! Trigger events: every shape that can start an archive, parsed into one typed enum before the
//! `plan` step decides anything. This is the first thing a state machine execution runs.
//!
//! The shapes, with the AWS pages they come from (fixtures under `core/tests/fixtures`):
//! - EventBridge `Backup Job State Change` and `Copy Job State Change` from `aws.backup`
//!   (<https://docs.aws.amazon.com/aws-backup/latest/devguide/eventbridge.html>).
//! - EventBridge `RDS DB Snapshot Event` and `RDS DB Cluster Snapshot Event` from `aws.rds`
//!   (<https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/rds-cloud-watch-events.html>).
//! - SNS deliveries (`{"Records": [{"Sns": {"Message": …}}]}`) whose message is one of: the plain
//!   text of an AWS Backup vault notification
//!   (<https://docs.aws.amazon.com/aws-backup/latest/devguide/backup-notifications.html>), the JSON
//!   of an RDS event notification (<https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/USER_Events.html>),
//!   or an EventBridge event that a rule forwarded to a topic.
//! - The manual input `{"snapshot": "snap-…" | "<RDS snapshot ARN>" | "<DynamoDB backup ARN>", "method": …,
//!   "mode": …}`.
//!
//! Parsing validates everything the planner will rely on and names the offending field in the
//! error (`detail.resourceArn`, `Records[0].Sns.Message`), because the person reading a failed
//! execution has only that message. Fields the planner does not use are kept verbatim in `other`
//! maps, so an event serializes back to the shape it came in (the fixtures test this).
//!
//! What parsing does *not* decide: whether an event is worth archiving (a FAILED job, an EFS
//! backup, a vault outside the allowed list). Those are well-formed events that the planner skips
//! ([`crate::request::plan_archive`]); only malformed input is an error here.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::{Deserialize, Serialize, Serializer};
use serde_json::{Map, Value};

use crate::arn::Arn;
use crate::manifest::ModeRequest;
use crate::resource::DbMethod;

/// EventBridge `source` of AWS Backup events.
pub const SOURCE_BACKUP: &str = "aws.backup";
/// EventBridge `source` of RDS events.
pub const SOURCE_RDS: &str = "aws.rds";
pub const BACKUP_JOB_STATE_CHANGE: &str = "Backup Job State Change";
pub const COPY_JOB_STATE_CHANGE: &str = "Copy Job State Change";
pub const RDS_DB_SNAPSHOT_EVENT: &str = "RDS DB Snapshot Event";
pub const RDS_DB_CLUSTER_SNAPSHOT_EVENT: &str = "RDS DB Cluster Snapshot Event";

/// The path printed for the event as a whole.
const ROOT: &str = "event";

/// Why an input is not an event this project can read. Every variant names the field by its
/// JSON path as AWS spells it, so it can be found in the input without reading this code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    #[error("`{field}` is missing")]
    Missing { field: String },
    #[error("`{field}` must be {expected}, not {found}")]
    WrongType { field: String, expected: &'static str, found: &'static str },
    #[error("`{field}` is invalid: {reason}")]
    Invalid { field: String, reason: String },
    #[error("`{field}` is not a field of the manual input (expected `snapshot`, `method`, `mode`)")]
    UnknownField { field: String },
    #[error(
        "`{field}` is not an event this project reads: expected an EventBridge event (with `detail-type`), \
         an SNS delivery (with `Records`) or a manual input (with `snapshot`)"
    )]
    Unrecognized { field: String },
}

impl EventError {
    /// The JSON path of the offending field (`detail.resourceArn`), or `event` for the whole input.
    pub fn field(&self) -> &str {
        match self {
            EventError::Missing { field }
            | EventError::WrongType { field, .. }
            | EventError::Invalid { field, .. }
            | EventError::UnknownField { field }
            | EventError::Unrecognized { field } => field,
        }
    }

    fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        EventError::Invalid { field: field.into(), reason: reason.into() }
    }
}

/// The state of an AWS Backup job, as both `Backup Job State Change` and `Copy Job State Change`
/// report it. Unknown states are rejected rather than guessed at: the EventBridge rule only
/// forwards `COMPLETED`, so anything unexpected is a sign of a hand-made or corrupted event.
/// <https://docs.aws.amazon.com/aws-backup/latest/devguide/API_BackupJob.html>
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum JobState {
    Created,
    Pending,
    Running,
    Aborting,
    Aborted,
    Completed,
    Failed,
    Expired,
    Partial,
}

impl JobState {
    pub const ALL: [JobState; 9] = [
        JobState::Created,
        JobState::Pending,
        JobState::Running,
        JobState::Aborting,
        JobState::Aborted,
        JobState::Completed,
        JobState::Failed,
        JobState::Expired,
        JobState::Partial,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Created => "CREATED",
            JobState::Pending => "PENDING",
            JobState::Running => "RUNNING",
            JobState::Aborting => "ABORTING",
            JobState::Aborted => "ABORTED",
            JobState::Completed => "COMPLETED",
            JobState::Failed => "FAILED",
            JobState::Expired => "EXPIRED",
            JobState::Partial => "PARTIAL",
        }
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for JobState {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        JobState::ALL
            .into_iter()
            .find(|state| state.as_str() == text)
            .ok_or_else(|| format!("{text:?} is not a job state (expected one of {})", state_list()))
    }
}

fn state_list() -> String {
    JobState::ALL.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
}

/// Any input that can start an archive. Serializes back to the wire shape it was parsed from.
// One event exists per invocation: boxing the larger variants would save nothing worth the noise.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum TriggerEvent {
    /// EventBridge `Backup Job State Change`.
    BackupJob(EventBridgeEvent<BackupJobDetail>),
    /// EventBridge `Copy Job State Change`.
    CopyJob(EventBridgeEvent<CopyJobDetail>),
    /// EventBridge `RDS DB Snapshot Event` or `RDS DB Cluster Snapshot Event`.
    RdsSnapshot(EventBridgeEvent<RdsEventDetail>),
    /// An SNS delivery carrying one of the messages in [`SnsMessage`].
    Sns(SnsEvent),
    /// `{"snapshot": …}` from an operator or `backup-archiver start`.
    Manual(ManualInput),
}

impl TriggerEvent {
    /// Reads any supported event from JSON text.
    pub fn from_json(text: &[u8]) -> Result<Self, EventError> {
        let value: Value =
            serde_json::from_slice(text).map_err(|e| EventError::invalid(ROOT, format!("not JSON: {e}")))?;
        Self::from_value(&value)
    }

    /// Reads any supported event from a JSON value (what the Lambda runtime hands over).
    pub fn from_value(value: &Value) -> Result<Self, EventError> {
        parse_event(value, "")
    }

    /// The wire shape again, as AWS (or the operator) wrote it.
    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).expect("events hold only strings, numbers, maps and RFC 3339 dates")
    }

    /// A short name of the shape, for logs: `EventBridge Backup Job State Change`, `SNS RDS event`.
    pub fn shape(&self) -> &'static str {
        match self {
            TriggerEvent::BackupJob(_) => "EventBridge Backup Job State Change",
            TriggerEvent::CopyJob(_) => "EventBridge Copy Job State Change",
            TriggerEvent::RdsSnapshot(_) => "EventBridge RDS snapshot event",
            TriggerEvent::Sns(sns) => match &sns.notification().message {
                SnsMessage::Published(inner) => match **inner {
                    TriggerEvent::BackupJob(_) => "SNS Backup Job State Change",
                    TriggerEvent::CopyJob(_) => "SNS Copy Job State Change",
                    TriggerEvent::RdsSnapshot(_) => "SNS RDS snapshot event",
                    _ => "SNS manual input",
                },
                SnsMessage::BackupVault(_) => "SNS AWS Backup vault notification",
                SnsMessage::Rds(_) => "SNS RDS event",
            },
            TriggerEvent::Manual(_) => "manual input",
        }
    }
}

impl<'de> Deserialize<'de> for TriggerEvent {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        TriggerEvent::from_value(&value).map_err(serde::de::Error::custom)
    }
}

/// The EventBridge envelope. Only `detail-type`, `source` and `detail` are required: an event
/// reshaped by an input transformer or replayed by hand may lack the rest, and nothing here
/// depends on them.
/// <https://docs.aws.amazon.com/eventbridge/latest/ref/overiew-event-structure.html>
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EventBridgeEvent<D> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// EventBridge's id of this delivery; a retried delivery keeps it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(rename = "detail-type")]
    pub detail_type: String,
    pub source: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// When the event was emitted: the date of last resort for the archive's key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// AWS Backup puts the recovery point here (the snapshot ARN for EBS and RDS); RDS puts the
    /// snapshot here.
    pub resources: Vec<Arn>,
    pub detail: D,
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// `detail` of `Backup Job State Change`. AWS sends `backupSizeInBytes` as a string here.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BackupJobDetail {
    #[serde(rename = "backupJobId")]
    pub backup_job_id: String,
    pub state: JobState,
    #[serde(rename = "backupVaultName", skip_serializing_if = "Option::is_none")]
    pub backup_vault_name: Option<String>,
    #[serde(rename = "backupVaultArn", skip_serializing_if = "Option::is_none")]
    pub backup_vault_arn: Option<Arn>,
    /// The backed-up resource: volume, DB instance, cluster, table, file system.
    #[serde(rename = "resourceArn", skip_serializing_if = "Option::is_none")]
    pub resource_arn: Option<Arn>,
    /// AWS Backup's name for the resource type: `EBS`, `RDS`, `Aurora`, `DynamoDB`, `EFS`, ….
    #[serde(rename = "resourceType", skip_serializing_if = "Option::is_none")]
    pub resource_type: Option<String>,
    #[serde(rename = "backupSizeInBytes", serialize_with = "size_as_string", skip_serializing_if = "Option::is_none")]
    pub backup_size_in_bytes: Option<u64>,
    /// When the job was created: the same in every delivery of this job's events, so it dates
    /// the archive's key.
    #[serde(rename = "creationDate", skip_serializing_if = "Option::is_none")]
    pub creation_date: Option<DateTime<Utc>>,
    #[serde(rename = "completionDate", skip_serializing_if = "Option::is_none")]
    pub completion_date: Option<DateTime<Utc>>,
    #[serde(rename = "statusMessage", skip_serializing_if = "Option::is_none")]
    pub status_message: Option<String>,
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

impl BackupJobDetail {
    /// The vault name, from `backupVaultName` or else from the vault ARN.
    pub fn vault_name(&self) -> Option<&str> {
        self.backup_vault_name.as_deref().or_else(|| self.backup_vault_arn.as_ref().and_then(vault_name_of))
    }
}

/// `detail` of `Copy Job State Change`. AWS sends `backupSizeInBytes` as a number here, and
/// `destinationRecoveryPointArn` as `{}` until the copy exists.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CopyJobDetail {
    #[serde(rename = "copyJobId", skip_serializing_if = "Option::is_none")]
    pub copy_job_id: Option<String>,
    pub state: JobState,
    #[serde(rename = "sourceBackupVaultArn", skip_serializing_if = "Option::is_none")]
    pub source_backup_vault_arn: Option<Arn>,
    #[serde(rename = "destinationBackupVaultArn", skip_serializing_if = "Option::is_none")]
    pub destination_backup_vault_arn: Option<Arn>,
    /// The copy: this, not the source recovery point in `resources`, is what lives in our vault.
    #[serde(rename = "destinationRecoveryPointArn", skip_serializing_if = "Option::is_none")]
    pub destination_recovery_point_arn: Option<Arn>,
    #[serde(rename = "resourceArn", skip_serializing_if = "Option::is_none")]
    pub resource_arn: Option<Arn>,
    #[serde(rename = "resourceType", skip_serializing_if = "Option::is_none")]
    pub resource_type: Option<String>,
    #[serde(rename = "backupSizeInBytes", skip_serializing_if = "Option::is_none")]
    pub backup_size_in_bytes: Option<u64>,
    #[serde(rename = "creationDate", skip_serializing_if = "Option::is_none")]
    pub creation_date: Option<DateTime<Utc>>,
    #[serde(rename = "completionDate", skip_serializing_if = "Option::is_none")]
    pub completion_date: Option<DateTime<Utc>>,
    #[serde(rename = "statusMessage", skip_serializing_if = "Option::is_none")]
    pub status_message: Option<String>,
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

impl CopyJobDetail {
    /// The destination vault's name, from its ARN.
    pub fn destination_vault_name(&self) -> Option<&str> {
        self.destination_backup_vault_arn.as_ref().and_then(vault_name_of)
    }
}

/// `detail` of the EventBridge RDS snapshot events. RDS capitalises these field names.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RdsEventDetail {
    #[serde(rename = "EventCategories")]
    pub event_categories: Vec<String>,
    /// `SNAPSHOT` or `CLUSTER_SNAPSHOT`.
    #[serde(rename = "SourceType")]
    pub source_type: String,
    /// The snapshot; its resource type agrees with the `detail-type` (checked when parsed).
    #[serde(rename = "SourceArn")]
    pub source_arn: Arn,
    #[serde(rename = "Date", skip_serializing_if = "Option::is_none")]
    pub date: Option<DateTime<Utc>>,
    /// The snapshot identifier, e.g. `rds:orders-postgres-2025-03-04-04-00`.
    #[serde(rename = "SourceIdentifier")]
    pub source_identifier: String,
    #[serde(rename = "Message", skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// `RDS-EVENT-0091` and the like: which of them mean "a snapshot is ready" is the planner's call.
    #[serde(rename = "EventID")]
    pub event_id: String,
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// An SNS delivery to Lambda: always exactly one record per invocation, and one record is one
/// archive, so more than one is rejected rather than half-processed.
/// <https://docs.aws.amazon.com/lambda/latest/dg/with-sns.html>
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SnsEvent {
    #[serde(rename = "Records")]
    pub records: Vec<SnsRecord>,
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

impl SnsEvent {
    /// The only record's notification.
    pub fn notification(&self) -> &SnsNotification {
        &self.records[0].sns
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SnsRecord {
    #[serde(rename = "Sns")]
    pub sns: SnsNotification,
    /// `EventSource`, `EventVersion`, `EventSubscriptionArn`: kept, not used.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SnsNotification {
    #[serde(rename = "MessageId", skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    /// Its region and account complete an RDS snapshot ARN when the message lacks one.
    #[serde(rename = "TopicArn", skip_serializing_if = "Option::is_none")]
    pub topic_arn: Option<Arn>,
    #[serde(rename = "Subject", skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    #[serde(rename = "Message", serialize_with = "message_as_string")]
    pub message: SnsMessage,
    #[serde(rename = "Timestamp", skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<DateTime<Utc>>,
    /// `None` when absent, to tell it apart from `{}` when serializing back.
    #[serde(rename = "MessageAttributes", skip_serializing_if = "Option::is_none")]
    pub message_attributes: Option<BTreeMap<String, SnsAttribute>>,
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

impl SnsNotification {
    /// The value of a message attribute, looked up without regard to the case of its name
    /// (AWS Backup writes `EventType`, its EKS events `eventType`).
    pub fn attribute(&self, name: &str) -> Option<&str> {
        find_attribute(self.message_attributes.as_ref(), name)
    }
}

fn find_attribute<'a>(attributes: Option<&'a BTreeMap<String, SnsAttribute>>, name: &str) -> Option<&'a str> {
    attributes
        .into_iter()
        .flatten()
        .find(|(key, _)| key.eq_ignore_ascii_case(name))
        .map(|(_, attribute)| attribute.value.as_str())
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnsAttribute {
    #[serde(rename = "Type")]
    pub r#type: String,
    #[serde(rename = "Value")]
    pub value: String,
}

/// What an SNS message says; it travels as a string in `Message`.
#[derive(Debug, Clone, PartialEq)]
pub enum SnsMessage {
    /// JSON of an EventBridge event (a rule with an SNS target) or of a manual input.
    Published(Box<TriggerEvent>),
    /// AWS Backup's own vault notification: English text plus message attributes.
    BackupVault(BackupVaultNotification),
    /// An RDS event subscription's JSON message.
    Rds(RdsNotification),
}

/// AWS Backup's vault notification. Its message is prose ("An AWS Backup job was completed
/// successfully. Recovery point ARN: …. Resource ARN : …. BackupJob ID : …"), so the typed
/// fields are read from the message attributes first and from the prose only where the
/// attributes say nothing (the ARNs). The vault is not named at all: the topic belongs to one
/// vault, and the planner asks for the vault to be looked up.
#[derive(Debug, Clone, PartialEq)]
pub struct BackupVaultNotification {
    /// The message as delivered; it is what serializes back.
    pub text: String,
    /// `BACKUP_JOB`, `COPY_JOB`, `RESTORE_JOB`, … (attribute `EventType`).
    pub event_type: String,
    /// Attribute `State`; absent on events that are not about a job.
    pub state: Option<JobState>,
    /// Attribute `Id`, else the `BackupJob ID :` of the text.
    pub backup_job_id: Option<String>,
    pub recovery_point_arn: Option<Arn>,
    pub resource_arn: Option<Arn>,
    /// Attribute `StartTime`: the job's creation, the same instant as `creationDate` in
    /// EventBridge, so both deliveries of one job date its archive alike.
    pub start_time: Option<DateTime<Utc>>,
}

/// An RDS event notification as SNS carries it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RdsNotification {
    /// `db-snapshot`, `db-cluster-snapshot`, `db-instance`, ….
    #[serde(rename = "Event Source")]
    pub event_source: String,
    /// UTC without a zone, as RDS writes it: `2025-03-04 03:21:07.512`. Checked when parsed.
    #[serde(rename = "Event Time", skip_serializing_if = "Option::is_none")]
    pub event_time: Option<String>,
    #[serde(rename = "Identifier Link", skip_serializing_if = "Option::is_none")]
    pub identifier_link: Option<String>,
    /// The snapshot identifier.
    #[serde(rename = "Source ID")]
    pub source_id: String,
    /// Present in current messages; older ones name only the identifier.
    #[serde(rename = "Source ARN", skip_serializing_if = "Option::is_none")]
    pub source_arn: Option<Arn>,
    /// A documentation link ending in `#RDS-EVENT-0091`; see [`RdsNotification::event_id`].
    #[serde(rename = "Event ID")]
    pub event_id_link: String,
    #[serde(rename = "Event Message", skip_serializing_if = "Option::is_none")]
    pub event_message: Option<String>,
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

impl RdsNotification {
    /// `RDS-EVENT-0091` out of the documentation link (or the whole value if it is not a link).
    pub fn event_id(&self) -> &str {
        self.event_id_link.rsplit('#').next().unwrap_or(&self.event_id_link)
    }

    /// `Event Time` as an instant.
    pub fn event_time(&self) -> Option<DateTime<Utc>> {
        self.event_time.as_deref().and_then(parse_rds_time)
    }
}

/// `{"snapshot": …, "method": …, "mode": …}`: what an operator types, so unknown fields are
/// errors (a typo such as `"methd"` must not silently become the default).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ManualInput {
    #[serde(serialize_with = "display_string")]
    pub snapshot: ManualSnapshot,
    /// Databases only: export to S3 or a native dump. Absent: the configured method per engine.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<DbMethod>,
    /// EBS only: files, raw, or auto (the worker's [`ModeRequest`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<ModeRequest>,
}

/// The snapshot a manual input names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ManualSnapshot {
    /// `snap-…`, or its ARN (kept so it prints back as given).
    Ebs { snapshot_id: String, arn: Option<Arn> },
    /// An RDS DB snapshot ARN (`…:snapshot:…`).
    RdsDb { arn: Arn },
    /// An Aurora (DB cluster) snapshot ARN (`…:cluster-snapshot:…`).
    RdsCluster { arn: Arn },
    /// A DynamoDB backup ARN (`…:table/T/backup/ID`).
    DynamoDb { arn: Arn },
}

impl fmt::Display for ManualSnapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ManualSnapshot::Ebs { arn: Some(arn), .. } => arn.fmt(f),
            ManualSnapshot::Ebs { snapshot_id, arn: None } => f.write_str(snapshot_id),
            ManualSnapshot::RdsDb { arn } | ManualSnapshot::RdsCluster { arn } | ManualSnapshot::DynamoDb { arn } => {
                arn.fmt(f)
            }
        }
    }
}

/// True for an EBS snapshot id: `snap-` and 8 or 17 lowercase hex digits.
/// <https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_Snapshot.html>
pub fn is_ebs_snapshot_id(text: &str) -> bool {
    text.strip_prefix("snap-").is_some_and(|hex| {
        (hex.len() == 8 || hex.len() == 17) && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// The vault name in `arn:…:backup-vault:NAME`.
pub fn vault_name_of(arn: &Arn) -> Option<&str> {
    arn.id_of("backup", "backup-vault")
}

// ---------------------------------------------------------------------------------------------
// Parsing. A small reader over `serde_json::Value` that carries the JSON path along, so every
// error names its field without serde's "at line 1 column 482".

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

pub(crate) fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A JSON object and the path it was found at.
pub(crate) struct Obj<'v> {
    pub(crate) map: &'v Map<String, Value>,
    pub(crate) path: String,
}

impl<'v> Obj<'v> {
    pub(crate) fn new(value: &'v Value, path: &str) -> Result<Self, EventError> {
        match value {
            Value::Object(map) => Ok(Obj { map, path: path.to_string() }),
            other => Err(EventError::WrongType {
                field: if path.is_empty() { ROOT.to_string() } else { path.to_string() },
                expected: "an object",
                found: type_name(other),
            }),
        }
    }

    pub(crate) fn at(&self, key: &str) -> String {
        join(&self.path, key)
    }

    /// The value of `key`; JSON `null` counts as absent.
    pub(crate) fn get(&self, key: &str) -> Option<&'v Value> {
        self.map.get(key).filter(|v| !v.is_null())
    }

    pub(crate) fn has(&self, key: &str) -> bool {
        self.map.contains_key(key)
    }

    pub(crate) fn opt_str(&self, key: &str) -> Result<Option<&'v str>, EventError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => {
                Err(EventError::WrongType { field: self.at(key), expected: "a string", found: type_name(other) })
            }
        }
    }

    /// A required, non-empty string.
    pub(crate) fn str(&self, key: &str) -> Result<&'v str, EventError> {
        match self.opt_str(key)? {
            None => Err(EventError::Missing { field: self.at(key) }),
            Some("") => Err(EventError::invalid(self.at(key), "it is empty")),
            Some(s) => Ok(s),
        }
    }

    pub(crate) fn opt_string(&self, key: &str) -> Result<Option<String>, EventError> {
        Ok(self.opt_str(key)?.map(str::to_string))
    }

    pub(crate) fn obj(&self, key: &str) -> Result<Obj<'v>, EventError> {
        let value = self.get(key).ok_or_else(|| EventError::Missing { field: self.at(key) })?;
        Obj::new(value, &self.at(key))
    }

    pub(crate) fn opt_arn(&self, key: &str) -> Result<Option<Arn>, EventError> {
        self.opt_str(key)?.map(|text| parse_arn(text, &self.at(key))).transpose()
    }

    pub(crate) fn arn(&self, key: &str) -> Result<Arn, EventError> {
        parse_arn(self.str(key)?, &self.at(key))
    }

    pub(crate) fn opt_date(&self, key: &str) -> Result<Option<DateTime<Utc>>, EventError> {
        self.opt_str(key)?.map(|text| parse_date(text, &self.at(key))).transpose()
    }

    /// A byte count sent as a number or as a string of digits (AWS Backup does both).
    pub(crate) fn opt_size(&self, key: &str) -> Result<Option<u64>, EventError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Number(n)) => n
                .as_u64()
                .map(Some)
                .ok_or_else(|| EventError::invalid(self.at(key), format!("{n} is not a whole number of bytes"))),
            Some(Value::String(s)) => s
                .parse::<u64>()
                .map(Some)
                .map_err(|_| EventError::invalid(self.at(key), format!("{s:?} is not a whole number of bytes"))),
            Some(other) => Err(EventError::WrongType {
                field: self.at(key),
                expected: "a number or a string of digits",
                found: type_name(other),
            }),
        }
    }

    pub(crate) fn opt_state(&self, key: &str) -> Result<Option<JobState>, EventError> {
        self.opt_str(key)?
            .map(|text| text.parse::<JobState>().map_err(|reason| EventError::invalid(self.at(key), reason)))
            .transpose()
    }

    pub(crate) fn state(&self, key: &str) -> Result<JobState, EventError> {
        self.opt_state(key)?.ok_or_else(|| EventError::Missing { field: self.at(key) })
    }

    /// Every field not in `known`, kept so the event serializes back whole.
    pub(crate) fn rest(&self, known: &[&str]) -> Map<String, Value> {
        self.map.iter().filter(|(k, _)| !known.contains(&k.as_str())).map(|(k, v)| (k.clone(), v.clone())).collect()
    }
}

fn parse_arn(text: &str, field: &str) -> Result<Arn, EventError> {
    text.parse::<Arn>().map_err(|e| EventError::invalid(field, e.to_string()))
}

pub(crate) fn parse_date(text: &str, field: &str) -> Result<DateTime<Utc>, EventError> {
    DateTime::parse_from_rfc3339(text)
        .map(|d| d.with_timezone(&Utc))
        .map_err(|e| EventError::invalid(field, format!("{text:?} is not an RFC 3339 date ({e})")))
}

fn parse_rds_time(text: &str) -> Option<DateTime<Utc>> {
    NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f").ok().map(|naive| naive.and_utc())
}

/// `path` is where the event sits: empty at the top, `Records[0].Sns.Message` inside SNS.
fn parse_event(value: &Value, path: &str) -> Result<TriggerEvent, EventError> {
    let obj = Obj::new(value, path)?;
    if obj.has("detail-type") {
        parse_eventbridge(&obj)
    } else if obj.has("Records") {
        parse_sns(&obj).map(TriggerEvent::Sns)
    } else if obj.has("snapshot") {
        parse_manual(&obj).map(TriggerEvent::Manual)
    } else {
        Err(EventError::Unrecognized { field: if path.is_empty() { ROOT.to_string() } else { path.to_string() } })
    }
}

const ENVELOPE_FIELDS: [&str; 9] =
    ["version", "id", "detail-type", "source", "account", "time", "region", "resources", "detail"];

fn parse_envelope<D>(
    obj: &Obj<'_>,
    detail_type: &str,
    source: &str,
    detail: D,
) -> Result<EventBridgeEvent<D>, EventError> {
    let resources = match obj.get("resources") {
        None => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                let field = format!("{}[{i}]", obj.at("resources"));
                match item {
                    Value::String(text) => parse_arn(text, &field),
                    other => Err(EventError::WrongType { field, expected: "a string", found: type_name(other) }),
                }
            })
            .collect::<Result<_, _>>()?,
        Some(other) => {
            return Err(EventError::WrongType {
                field: obj.at("resources"),
                expected: "an array",
                found: type_name(other),
            })
        }
    };
    Ok(EventBridgeEvent {
        version: obj.opt_string("version")?,
        id: obj.opt_string("id")?,
        detail_type: detail_type.to_string(),
        source: source.to_string(),
        account: obj.opt_string("account")?,
        time: obj.opt_date("time")?,
        region: obj.opt_string("region")?,
        resources,
        detail,
        other: obj.rest(&ENVELOPE_FIELDS),
    })
}

fn parse_eventbridge(obj: &Obj<'_>) -> Result<TriggerEvent, EventError> {
    let detail_type = obj.str("detail-type")?;
    let source = obj.str("source")?;
    let expected_source = match detail_type {
        BACKUP_JOB_STATE_CHANGE | COPY_JOB_STATE_CHANGE => SOURCE_BACKUP,
        RDS_DB_SNAPSHOT_EVENT | RDS_DB_CLUSTER_SNAPSHOT_EVENT => SOURCE_RDS,
        other => {
            return Err(EventError::invalid(
                obj.at("detail-type"),
                format!(
                    "{other:?} is not a trigger (expected {BACKUP_JOB_STATE_CHANGE:?}, {COPY_JOB_STATE_CHANGE:?}, \
                     {RDS_DB_SNAPSHOT_EVENT:?} or {RDS_DB_CLUSTER_SNAPSHOT_EVENT:?})"
                ),
            ))
        }
    };
    if source != expected_source {
        return Err(EventError::invalid(
            obj.at("source"),
            format!("{source:?} does not send {detail_type:?} (expected {expected_source:?})"),
        ));
    }
    let detail = obj.obj("detail")?;
    let event = match detail_type {
        BACKUP_JOB_STATE_CHANGE => {
            let event = parse_envelope(obj, detail_type, source, parse_backup_job_detail(&detail)?)?;
            if event.detail.state == JobState::Completed && event.resources.is_empty() {
                // AWS Backup names the recovery point only here; without it there is nothing to archive.
                return Err(EventError::Missing { field: format!("{}[0]", obj.at("resources")) });
            }
            TriggerEvent::BackupJob(event)
        }
        COPY_JOB_STATE_CHANGE => {
            TriggerEvent::CopyJob(parse_envelope(obj, detail_type, source, parse_copy_job_detail(&detail)?)?)
        }
        _ => {
            let parsed = parse_rds_detail(&detail)?;
            let (wanted, label) = if detail_type == RDS_DB_SNAPSHOT_EVENT {
                ("snapshot", "a DB snapshot")
            } else {
                ("cluster-snapshot", "a DB cluster snapshot")
            };
            if !parsed.source_arn.is("rds", wanted) {
                return Err(EventError::invalid(
                    detail.at("SourceArn"),
                    format!("{} is not {label}, as {detail_type:?} requires", parsed.source_arn),
                ));
            }
            TriggerEvent::RdsSnapshot(parse_envelope(obj, detail_type, source, parsed)?)
        }
    };
    Ok(event)
}

const BACKUP_JOB_FIELDS: [&str; 10] = [
    "backupJobId",
    "state",
    "backupVaultName",
    "backupVaultArn",
    "resourceArn",
    "resourceType",
    "backupSizeInBytes",
    "creationDate",
    "completionDate",
    "statusMessage",
];

fn parse_backup_job_detail(detail: &Obj<'_>) -> Result<BackupJobDetail, EventError> {
    let parsed = BackupJobDetail {
        backup_job_id: detail.str("backupJobId")?.to_string(),
        state: detail.state("state")?,
        backup_vault_name: detail.opt_string("backupVaultName")?,
        backup_vault_arn: detail.opt_arn("backupVaultArn")?,
        resource_arn: detail.opt_arn("resourceArn")?,
        resource_type: detail.opt_string("resourceType")?,
        backup_size_in_bytes: detail.opt_size("backupSizeInBytes")?,
        creation_date: detail.opt_date("creationDate")?,
        completion_date: detail.opt_date("completionDate")?,
        status_message: detail.opt_string("statusMessage")?,
        other: detail.rest(&BACKUP_JOB_FIELDS),
    };
    if parsed.state == JobState::Completed {
        // A completed job is the one we archive: everything the planner needs must be here.
        detail.str("resourceArn")?;
        detail.str("resourceType")?;
        if parsed.vault_name().is_none() {
            detail.str("backupVaultName")?;
        }
    }
    if let Some(arn) = &parsed.backup_vault_arn {
        if vault_name_of(arn).is_none() {
            return Err(EventError::invalid(detail.at("backupVaultArn"), format!("{arn} is not a backup vault ARN")));
        }
    }
    Ok(parsed)
}

const COPY_JOB_FIELDS: [&str; 11] = [
    "copyJobId",
    "state",
    "sourceBackupVaultArn",
    "destinationBackupVaultArn",
    "destinationRecoveryPointArn",
    "resourceArn",
    "resourceType",
    "backupSizeInBytes",
    "creationDate",
    "completionDate",
    "statusMessage",
];

fn parse_copy_job_detail(detail: &Obj<'_>) -> Result<CopyJobDetail, EventError> {
    // Until the copy exists AWS writes `"destinationRecoveryPointArn": {}`.
    let destination_recovery_point_arn = match detail.get("destinationRecoveryPointArn") {
        Some(Value::Object(map)) if map.is_empty() => None,
        _ => detail.opt_arn("destinationRecoveryPointArn")?,
    };
    let mut other = detail.rest(&COPY_JOB_FIELDS);
    if destination_recovery_point_arn.is_none() {
        // Keep a `{}` as it came, so the event serializes back unchanged.
        if let Some(empty @ Value::Object(_)) = detail.get("destinationRecoveryPointArn") {
            other.insert("destinationRecoveryPointArn".to_string(), empty.clone());
        }
    }
    let parsed = CopyJobDetail {
        copy_job_id: detail.opt_string("copyJobId")?,
        state: detail.state("state")?,
        source_backup_vault_arn: detail.opt_arn("sourceBackupVaultArn")?,
        destination_backup_vault_arn: detail.opt_arn("destinationBackupVaultArn")?,
        destination_recovery_point_arn,
        resource_arn: detail.opt_arn("resourceArn")?,
        resource_type: detail.opt_string("resourceType")?,
        backup_size_in_bytes: detail.opt_size("backupSizeInBytes")?,
        creation_date: detail.opt_date("creationDate")?,
        completion_date: detail.opt_date("completionDate")?,
        status_message: detail.opt_string("statusMessage")?,
        other,
    };
    if parsed.state == JobState::Completed {
        detail.str("copyJobId")?;
        detail.str("resourceArn")?;
        detail.str("resourceType")?;
        if parsed.destination_recovery_point_arn.is_none() {
            return Err(EventError::Missing { field: detail.at("destinationRecoveryPointArn") });
        }
        if parsed.destination_vault_name().is_none() {
            detail.str("destinationBackupVaultArn")?;
            return Err(EventError::invalid(detail.at("destinationBackupVaultArn"), "it is not a backup vault ARN"));
        }
    }
    Ok(parsed)
}

const RDS_DETAIL_FIELDS: [&str; 7] =
    ["EventCategories", "SourceType", "SourceArn", "Date", "SourceIdentifier", "Message", "EventID"];

fn parse_rds_detail(detail: &Obj<'_>) -> Result<RdsEventDetail, EventError> {
    let event_categories = match detail.get("EventCategories") {
        None => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, item)| match item {
                Value::String(s) => Ok(s.clone()),
                other => Err(EventError::WrongType {
                    field: format!("{}[{i}]", detail.at("EventCategories")),
                    expected: "a string",
                    found: type_name(other),
                }),
            })
            .collect::<Result<_, _>>()?,
        Some(other) => {
            return Err(EventError::WrongType {
                field: detail.at("EventCategories"),
                expected: "an array",
                found: type_name(other),
            })
        }
    };
    Ok(RdsEventDetail {
        event_categories,
        source_type: detail.str("SourceType")?.to_string(),
        source_arn: detail.arn("SourceArn")?,
        date: detail.opt_date("Date")?,
        source_identifier: detail.str("SourceIdentifier")?.to_string(),
        message: detail.opt_string("Message")?,
        event_id: detail.str("EventID")?.to_string(),
        other: detail.rest(&RDS_DETAIL_FIELDS),
    })
}

/// The only record of an SNS delivery, and its `Sns` object: SNS hands a Lambda one record per
/// invocation, and one record is one archive (or one alert), so more are rejected rather than
/// half-processed.
pub(crate) fn only_sns_record<'v>(obj: &Obj<'v>) -> Result<(Obj<'v>, Obj<'v>), EventError> {
    let records_path = obj.at("Records");
    let records = match obj.get("Records") {
        Some(Value::Array(records)) => records,
        Some(other) => {
            return Err(EventError::WrongType { field: records_path, expected: "an array", found: type_name(other) })
        }
        None => return Err(EventError::Missing { field: records_path }),
    };
    match records.len() {
        0 => return Err(EventError::invalid(records_path, "there are no records")),
        1 => {}
        n => return Err(EventError::invalid(records_path, format!("{n} records; one execution archives one record"))),
    }
    let record = Obj::new(&records[0], &format!("{records_path}[0]"))?;
    let sns = record.obj("Sns")?;
    Ok((record, sns))
}

fn parse_sns(obj: &Obj<'_>) -> Result<SnsEvent, EventError> {
    let (record, sns) = only_sns_record(obj)?;
    let message_attributes = parse_attributes(&sns)?;
    let subject = sns.opt_string("Subject")?;
    let message = parse_sns_message(&sns, message_attributes.as_ref(), subject.as_deref())?;
    let notification = SnsNotification {
        message_id: sns.opt_string("MessageId")?,
        topic_arn: sns.opt_arn("TopicArn")?,
        subject,
        message,
        timestamp: sns.opt_date("Timestamp")?,
        message_attributes,
        other: sns.rest(&["MessageId", "TopicArn", "Subject", "Message", "Timestamp", "MessageAttributes"]),
    };
    Ok(SnsEvent {
        records: vec![SnsRecord { sns: notification, other: record.rest(&["Sns"]) }],
        other: obj.rest(&["Records"]),
    })
}

fn parse_attributes(sns: &Obj<'_>) -> Result<Option<BTreeMap<String, SnsAttribute>>, EventError> {
    let Some(value) = sns.get("MessageAttributes") else { return Ok(None) };
    let attributes = Obj::new(value, &sns.at("MessageAttributes"))?;
    let mut out = BTreeMap::new();
    for name in attributes.map.keys() {
        let attribute = attributes.obj(name)?;
        out.insert(
            name.clone(),
            SnsAttribute {
                r#type: attribute.str("Type")?.to_string(),
                value: attribute.opt_str("Value")?.unwrap_or("").to_string(),
            },
        );
    }
    Ok(Some(out))
}

type Attributes = BTreeMap<String, SnsAttribute>;

fn parse_sns_message(
    sns: &Obj<'_>,
    attributes: Option<&Attributes>,
    subject: Option<&str>,
) -> Result<SnsMessage, EventError> {
    let text = sns.str("Message")?;
    let path = sns.at("Message");
    if let Ok(value @ Value::Object(_)) = serde_json::from_str::<Value>(text) {
        let message = Obj::new(&value, &path)?;
        if message.has("Event ID") || message.has("Event Source") {
            return parse_rds_notification(&message).map(SnsMessage::Rds);
        }
        return match parse_event(&value, &path)? {
            TriggerEvent::Sns(_) => Err(EventError::invalid(path, "an SNS delivery inside an SNS message")),
            event => Ok(SnsMessage::Published(Box::new(event))),
        };
    }
    let from_backup = find_attribute(attributes, "EventType").is_some()
        || subject.is_some_and(|s| s.contains("AWS Backup"))
        || text.starts_with("An AWS Backup");
    if !from_backup {
        return Err(EventError::invalid(
            path,
            "neither JSON (an EventBridge event, an RDS event, a manual input) nor an AWS Backup notification",
        ));
    }
    parse_backup_vault_notification(text, sns, attributes).map(SnsMessage::BackupVault)
}

fn parse_backup_vault_notification(
    text: &str,
    sns: &Obj<'_>,
    attributes: Option<&Attributes>,
) -> Result<BackupVaultNotification, EventError> {
    let attribute = |name: &str| find_attribute(attributes, name);
    let attributes_path = sns.at("MessageAttributes");
    let attribute_path = |name: &str| format!("{attributes_path}.{name}.Value");
    let event_type = attribute("EventType")
        .filter(|t| !t.is_empty())
        .ok_or_else(|| EventError::Missing { field: attribute_path("EventType") })?
        .to_string();
    let state = attribute("State")
        .map(|s| s.parse::<JobState>().map_err(|reason| EventError::invalid(attribute_path("State"), reason)))
        .transpose()?;
    let start_time = attribute("StartTime").map(|t| parse_date(t, &attribute_path("StartTime"))).transpose()?;
    let message_path = sns.at("Message");
    let text_arn = |labels: &[&str]| -> Result<Option<Arn>, EventError> {
        labelled_value(text, labels)
            .map(|value| {
                value.parse::<Arn>().map_err(|e| EventError::invalid(&message_path, format!("{}: {e}", labels[0])))
            })
            .transpose()
    };
    let parsed = BackupVaultNotification {
        text: text.to_string(),
        backup_job_id: attribute("Id")
            .filter(|id| !id.is_empty())
            .map(str::to_string)
            .or_else(|| labelled_value(text, &["BackupJob ID", "Backup Job Id"]).map(str::to_string)),
        recovery_point_arn: text_arn(&["Recovery point ARN"])?,
        resource_arn: text_arn(&["Resource ARN"])?,
        event_type,
        state,
        start_time,
    };
    if parsed.event_type == "BACKUP_JOB" {
        if parsed.state.is_none() {
            return Err(EventError::Missing { field: attribute_path("State") });
        }
        if parsed.backup_job_id.is_none() {
            return Err(EventError::Missing { field: attribute_path("Id") });
        }
        if parsed.state == Some(JobState::Completed) {
            if parsed.recovery_point_arn.is_none() {
                return Err(EventError::invalid(message_path, "it names no `Recovery point ARN:`"));
            }
            if parsed.resource_arn.is_none() {
                return Err(EventError::invalid(message_path, "it names no `Resource ARN :`"));
            }
        }
    }
    Ok(parsed)
}

/// The word after `<label> :` in AWS Backup's prose, without the sentence's full stop. Labels
/// are matched without regard to case, and with or without a space before the colon, because
/// AWS has written both `Resource ARN :` and `Backed up Resource ARN :`, `BackupJob ID :` and
/// `Backup Job Id :`. ARNs and ids contain no spaces, so a value ends at the first whitespace.
pub(crate) fn labelled_value<'t>(text: &'t str, labels: &[&str]) -> Option<&'t str> {
    let lower = text.to_ascii_lowercase();
    for label in labels {
        let needle = label.to_ascii_lowercase();
        let mut from = 0;
        while let Some(found) = lower[from..].find(&needle) {
            let after = from + found + needle.len();
            from = after;
            let rest = text[after..].trim_start();
            let Some(rest) = rest.strip_prefix(':') else { continue };
            let rest = rest.trim_start();
            let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
            let mut value = &rest[..end];
            // A full stop followed by more text ends the sentence, not the value.
            if end < rest.len() {
                value = value.strip_suffix('.').unwrap_or(value);
            }
            if !value.is_empty() {
                return Some(value);
            }
        }
    }
    None
}

const RDS_NOTIFICATION_FIELDS: [&str; 7] =
    ["Event Source", "Event Time", "Identifier Link", "Source ID", "Source ARN", "Event ID", "Event Message"];

fn parse_rds_notification(message: &Obj<'_>) -> Result<RdsNotification, EventError> {
    let event_time = message.opt_string("Event Time")?;
    if let Some(time) = &event_time {
        if parse_rds_time(time).is_none() {
            return Err(EventError::invalid(
                message.at("Event Time"),
                format!("{time:?} is not a time like \"2025-03-04 03:21:07.512\""),
            ));
        }
    }
    let parsed = RdsNotification {
        event_source: message.str("Event Source")?.to_string(),
        event_time,
        identifier_link: message.opt_string("Identifier Link")?,
        source_id: message.str("Source ID")?.to_string(),
        source_arn: message.opt_arn("Source ARN")?,
        event_id_link: message.str("Event ID")?.to_string(),
        event_message: message.opt_string("Event Message")?,
        other: message.rest(&RDS_NOTIFICATION_FIELDS),
    };
    if !parsed.event_id().starts_with("RDS-EVENT-") {
        return Err(EventError::invalid(
            message.at("Event ID"),
            format!("{:?} does not end in an RDS event id such as #RDS-EVENT-0091", parsed.event_id_link),
        ));
    }
    Ok(parsed)
}

fn parse_manual(obj: &Obj<'_>) -> Result<ManualInput, EventError> {
    if let Some(unknown) = obj.map.keys().find(|k| !["snapshot", "method", "mode"].contains(&k.as_str())) {
        return Err(EventError::UnknownField { field: obj.at(unknown) });
    }
    let field = obj.at("snapshot");
    let text = obj.str("snapshot")?;
    let snapshot = if is_ebs_snapshot_id(text) {
        ManualSnapshot::Ebs { snapshot_id: text.to_string(), arn: None }
    } else if text.starts_with("arn:") {
        let arn = parse_arn(text, &field)?;
        if let Some(id) = arn.id_of("ec2", "snapshot") {
            if !is_ebs_snapshot_id(id) {
                return Err(EventError::invalid(field, format!("{id:?} is not an EBS snapshot id")));
            }
            ManualSnapshot::Ebs { snapshot_id: id.to_string(), arn: Some(arn) }
        } else if arn.id_of("rds", "snapshot").is_some() {
            ManualSnapshot::RdsDb { arn }
        } else if arn.id_of("rds", "cluster-snapshot").is_some() {
            ManualSnapshot::RdsCluster { arn }
        } else if arn.id_of("dynamodb", "table").is_some_and(|path| {
            path.split_once("/backup/").is_some_and(|(table, id)| !table.is_empty() && !id.is_empty())
        }) {
            ManualSnapshot::DynamoDb { arn }
        } else {
            return Err(EventError::invalid(
                field,
                format!("{arn} is neither an EBS snapshot, an RDS DB or cluster snapshot, nor a DynamoDB backup"),
            ));
        }
    } else {
        return Err(EventError::invalid(
            field,
            format!(
                "{text:?} is neither an EBS snapshot id (snap- and 8 or 17 hex digits) nor a snapshot ARN \
                 (an RDS snapshot needs its ARN: the same name can be a DB and a cluster snapshot)"
            ),
        ));
    };
    let method = obj
        .opt_str("method")?
        .map(|m| m.parse::<DbMethod>().map_err(|reason| EventError::invalid(obj.at("method"), reason)))
        .transpose()?;
    let mode = obj
        .opt_str("mode")?
        .map(|m| match m {
            "auto" => Ok(ModeRequest::Auto),
            "files" => Ok(ModeRequest::Files),
            "raw" => Ok(ModeRequest::Raw),
            other => Err(EventError::invalid(obj.at("mode"), format!("{other:?} is not one of auto, files, raw"))),
        })
        .transpose()?;
    match (&snapshot, method, mode) {
        (ManualSnapshot::Ebs { .. }, Some(_), _) => {
            Err(EventError::invalid(obj.at("method"), "applies to RDS and Aurora snapshots only, not to EBS"))
        }
        (ManualSnapshot::DynamoDb { .. }, Some(_), _) => {
            Err(EventError::invalid(obj.at("method"), "applies to RDS and Aurora snapshots only; DynamoDB is exported"))
        }
        (
            ManualSnapshot::RdsDb { .. } | ManualSnapshot::RdsCluster { .. } | ManualSnapshot::DynamoDb { .. },
            _,
            Some(_),
        ) => Err(EventError::invalid(obj.at("mode"), "applies to EBS snapshots only; use `method` for databases")),
        _ => Ok(ManualInput { snapshot, method, mode }),
    }
}

// ---------------------------------------------------------------------------------------------
// Serializing back to the wire shape.

fn size_as_string<S: Serializer>(size: &Option<u64>, serializer: S) -> Result<S::Ok, S::Error> {
    match size {
        Some(size) => serializer.collect_str(size),
        None => serializer.serialize_none(),
    }
}

fn display_string<S: Serializer, T: fmt::Display>(value: &T, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_str(value)
}

fn message_as_string<S: Serializer>(message: &SnsMessage, serializer: S) -> Result<S::Ok, S::Error> {
    let text = match message {
        SnsMessage::Published(event) => serde_json::to_string(event).map_err(serde::ser::Error::custom)?,
        SnsMessage::Rds(notification) => serde_json::to_string(notification).map_err(serde::ser::Error::custom)?,
        SnsMessage::BackupVault(notification) => notification.text.clone(),
    };
    serializer.serialize_str(&text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn backup_job_completed() -> Value {
        json!({
            "version": "0",
            "id": "5b1c7e2a-3f4d-4c1e-9a0b-7d2e8f6a1c3b",
            "detail-type": "Backup Job State Change",
            "source": "aws.backup",
            "account": "111122223333",
            "time": "2025-03-04T02:17:41Z",
            "region": "eu-west-1",
            "resources": ["arn:aws:ec2:eu-west-1::snapshot/snap-0a1b2c3d4e5f67890"],
            "detail": {
                "backupJobId": "8F3A2C61-4B7D-1E09-22C4-5D6E7F8A9B0C",
                "backupSizeInBytes": "107374182400",
                "backupVaultArn": "arn:aws:backup:eu-west-1:111122223333:backup-vault:archive-vault",
                "backupVaultName": "archive-vault",
                "creationDate": "2025-03-04T02:00:12.345Z",
                "resourceArn": "arn:aws:ec2:eu-west-1:111122223333:volume/vol-0fedcba9876543210",
                "resourceType": "EBS",
                "state": "COMPLETED",
                "percentDone": 100
            }
        })
    }

    fn copy_job_completed() -> Value {
        json!({
            "version": "0",
            "id": "47deb974-6473-aef1-56c2-52c3eaedfceb",
            "detail-type": "Copy Job State Change",
            "source": "aws.backup",
            "account": "111122223333",
            "time": "2025-03-04T22:08:04Z",
            "region": "eu-west-1",
            "resources": ["arn:aws:ec2:eu-west-1::snapshot/snap-03886bc8d6ef3a1f9"],
            "detail": {
                "copyJobId": "0175DE71-5784-589F-D8AC-541ACCB4CAC8",
                "backupSizeInBytes": 3221225472u64,
                "creationDate": "2025-03-04T22:06:27.234Z",
                "resourceArn": "arn:aws:ec2:eu-west-1:111122223333:volume/vol-050eba21ee4d3c001",
                "resourceType": "EBS",
                "sourceBackupVaultArn": "arn:aws:backup:eu-west-1:111122223333:backup-vault:Default",
                "state": "COMPLETED",
                "destinationBackupVaultArn": "arn:aws:backup:eu-west-1:111122223333:backup-vault:archive-vault",
                "destinationRecoveryPointArn": "arn:aws:ec2:eu-west-1::snapshot/snap-0726fe70935586180"
            }
        })
    }

    fn rds_snapshot_event() -> Value {
        json!({
            "version": "0",
            "detail-type": "RDS DB Snapshot Event",
            "source": "aws.rds",
            "time": "2025-03-04T04:02:31Z",
            "region": "eu-west-1",
            "resources": ["arn:aws:rds:eu-west-1:111122223333:snapshot:rds:orders-postgres-2025-03-04-04-00"],
            "detail": {
                "EventCategories": ["creation"],
                "SourceType": "SNAPSHOT",
                "SourceArn": "arn:aws:rds:eu-west-1:111122223333:snapshot:rds:orders-postgres-2025-03-04-04-00",
                "Date": "2025-03-04T04:02:31.338Z",
                "SourceIdentifier": "rds:orders-postgres-2025-03-04-04-00",
                "Message": "Automated snapshot created",
                "EventID": "RDS-EVENT-0091"
            }
        })
    }

    fn sns_of(message: &str, attributes: Value) -> Value {
        json!({
            "Records": [{
                "EventSource": "aws:sns",
                "EventVersion": "1.0",
                "Sns": {
                    "Type": "Notification",
                    "MessageId": "6f1e2d3c-4b5a-5968-a7b6-c5d4e3f2a1b0",
                    "TopicArn": "arn:aws:sns:eu-west-1:111122223333:backup-vault-events",
                    "Subject": "Notification from AWS Backup",
                    "Message": message,
                    "Timestamp": "2025-03-04T02:17:42.118Z",
                    "MessageAttributes": attributes
                }
            }]
        })
    }

    fn vault_attributes(state: &str) -> Value {
        json!({
            "EventType": {"Type": "String", "Value": "BACKUP_JOB"},
            "State": {"Type": "String", "Value": state},
            "Id": {"Type": "String", "Value": "8F3A2C61-4B7D-1E09-22C4-5D6E7F8A9B0C"},
            "StartTime": {"Type": "String", "Value": "2025-03-04T02:00:12.345Z"}
        })
    }

    const VAULT_COMPLETED: &str = "An AWS Backup job was completed successfully. Recovery point ARN: \
        arn:aws:ec2:eu-west-1::snapshot/snap-0a1b2c3d4e5f67890. Resource ARN : \
        arn:aws:ec2:eu-west-1:111122223333:volume/vol-0fedcba9876543210. BackupJob ID : \
        8F3A2C61-4B7D-1E09-22C4-5D6E7F8A9B0C";

    fn rejects(value: Value, field: &str) -> EventError {
        let err = TriggerEvent::from_value(&value).expect_err("accepted a malformed event");
        assert_eq!(err.field(), field, "{err}");
        assert!(err.to_string().contains(field), "message does not name {field}: {err}");
        err
    }

    fn remove(mut value: Value, pointer: &str, key: &str) -> Value {
        value.pointer_mut(pointer).unwrap().as_object_mut().unwrap().remove(key);
        value
    }

    fn set(mut value: Value, pointer: &str, new: Value) -> Value {
        *value.pointer_mut(pointer).unwrap() = new;
        value
    }

    #[test]
    fn parses_completed_backup_job() {
        let TriggerEvent::BackupJob(event) = TriggerEvent::from_value(&backup_job_completed()).unwrap() else {
            panic!("wrong variant")
        };
        assert_eq!(event.detail.state, JobState::Completed);
        assert_eq!(event.detail.backup_size_in_bytes, Some(107_374_182_400));
        assert_eq!(event.detail.vault_name(), Some("archive-vault"));
        assert_eq!(event.resources[0].id_of("ec2", "snapshot"), Some("snap-0a1b2c3d4e5f67890"));
        assert_eq!(event.detail.other["percentDone"], 100);
    }

    #[test]
    fn backup_job_serializes_back_to_the_same_json() {
        let value = backup_job_completed();
        assert_eq!(TriggerEvent::from_value(&value).unwrap().to_value(), value);
    }

    #[test]
    fn copy_job_serializes_back_to_the_same_json() {
        let value = copy_job_completed();
        assert_eq!(TriggerEvent::from_value(&value).unwrap().to_value(), value);
    }

    #[test]
    fn rejects_event_without_resource_arn() {
        rejects(remove(backup_job_completed(), "/detail", "resourceArn"), "detail.resourceArn");
    }

    #[test]
    fn rejects_completed_backup_job_without_resource_type() {
        rejects(remove(backup_job_completed(), "/detail", "resourceType"), "detail.resourceType");
    }

    #[test]
    fn rejects_completed_backup_job_without_vault() {
        let value = remove(remove(backup_job_completed(), "/detail", "backupVaultName"), "/detail", "backupVaultArn");
        rejects(value, "detail.backupVaultName");
    }

    #[test]
    fn takes_vault_name_from_arn_when_name_is_absent() {
        let value = remove(backup_job_completed(), "/detail", "backupVaultName");
        let TriggerEvent::BackupJob(event) = TriggerEvent::from_value(&value).unwrap() else { panic!() };
        assert_eq!(event.detail.vault_name(), Some("archive-vault"));
    }

    #[test]
    fn rejects_vault_arn_that_is_not_a_vault() {
        let value = set(backup_job_completed(), "/detail/backupVaultArn", json!("arn:aws:s3:::bucket"));
        rejects(value, "detail.backupVaultArn");
    }

    #[test]
    fn rejects_completed_backup_job_without_recovery_point() {
        rejects(set(backup_job_completed(), "/resources", json!([])), "resources[0]");
    }

    #[test]
    fn rejects_event_without_backup_job_id() {
        rejects(remove(backup_job_completed(), "/detail", "backupJobId"), "detail.backupJobId");
    }

    #[test]
    fn rejects_empty_backup_job_id() {
        let err = rejects(set(backup_job_completed(), "/detail/backupJobId", json!("")), "detail.backupJobId");
        assert!(err.to_string().contains("empty"), "{err}");
    }

    #[test]
    fn rejects_backup_job_id_of_wrong_type() {
        let err = rejects(set(backup_job_completed(), "/detail/backupJobId", json!(42)), "detail.backupJobId");
        assert!(matches!(err, EventError::WrongType { found: "a number", .. }), "{err}");
    }

    #[test]
    fn rejects_unknown_job_state() {
        let err = rejects(set(backup_job_completed(), "/detail/state", json!("DONE")), "detail.state");
        assert!(err.to_string().contains("COMPLETED"), "the message lists the valid states: {err}");
    }

    #[test]
    fn rejects_lowercase_job_state() {
        rejects(set(backup_job_completed(), "/detail/state", json!("completed")), "detail.state");
    }

    #[test]
    fn rejects_missing_state() {
        rejects(remove(backup_job_completed(), "/detail", "state"), "detail.state");
    }

    #[test]
    fn accepts_failed_job_without_resources_or_recovery_point() {
        let value = json!({
            "detail-type": "Backup Job State Change",
            "source": "aws.backup",
            "resources": [],
            "detail": {"backupJobId": "x", "state": "FAILED"}
        });
        let TriggerEvent::BackupJob(event) = TriggerEvent::from_value(&value).unwrap() else { panic!() };
        assert_eq!(event.detail.state, JobState::Failed);
    }

    #[test]
    fn rejects_bad_resource_arn() {
        let err = rejects(
            set(backup_job_completed(), "/detail/resourceArn", json!("vol-0fedcba9876543210")),
            "detail.resourceArn",
        );
        assert!(err.to_string().contains("not an ARN"), "{err}");
    }

    #[test]
    fn rejects_bad_recovery_point_arn_in_resources() {
        rejects(set(backup_job_completed(), "/resources/0", json!("snap-0a1b2c3d")), "resources[0]");
    }

    #[test]
    fn rejects_resources_that_is_not_a_list() {
        rejects(set(backup_job_completed(), "/resources", json!("arn:aws:ec2:x::snapshot/snap-1")), "resources");
    }

    #[test]
    fn rejects_size_that_is_not_a_number() {
        rejects(set(backup_job_completed(), "/detail/backupSizeInBytes", json!("100 GiB")), "detail.backupSizeInBytes");
        rejects(set(backup_job_completed(), "/detail/backupSizeInBytes", json!(-1)), "detail.backupSizeInBytes");
        rejects(set(backup_job_completed(), "/detail/backupSizeInBytes", json!(true)), "detail.backupSizeInBytes");
    }

    #[test]
    fn rejects_bad_dates() {
        rejects(set(backup_job_completed(), "/detail/creationDate", json!("yesterday")), "detail.creationDate");
        rejects(set(backup_job_completed(), "/time", json!("2025-03-04 02:17:41")), "time");
    }

    #[test]
    fn rejects_unknown_detail_type() {
        let err =
            rejects(set(backup_job_completed(), "/detail-type", json!("Restore Job State Change")), "detail-type");
        assert!(err.to_string().contains("Backup Job State Change"), "lists the accepted types: {err}");
    }

    #[test]
    fn rejects_detail_type_from_the_wrong_source() {
        rejects(set(backup_job_completed(), "/source", json!("aws.rds")), "source");
        rejects(set(rds_snapshot_event(), "/source", json!("aws.backup")), "source");
    }

    #[test]
    fn rejects_missing_detail() {
        rejects(remove(backup_job_completed(), "", "detail"), "detail");
        rejects(set(backup_job_completed(), "/detail", json!("x")), "detail");
    }

    #[test]
    fn accepts_envelope_without_optional_fields() {
        let mut value = backup_job_completed();
        for key in ["version", "id", "account", "time", "region"] {
            value = remove(value, "", key);
        }
        assert!(TriggerEvent::from_value(&value).is_ok());
    }

    #[test]
    fn rejects_completed_copy_without_destination_recovery_point() {
        let value = set(copy_job_completed(), "/detail/destinationRecoveryPointArn", json!({}));
        rejects(value, "detail.destinationRecoveryPointArn");
    }

    #[test]
    fn accepts_running_copy_with_empty_destination_recovery_point() {
        let value = set(
            set(copy_job_completed(), "/detail/destinationRecoveryPointArn", json!({})),
            "/detail/state",
            json!("RUNNING"),
        );
        let TriggerEvent::CopyJob(event) = TriggerEvent::from_value(&value).unwrap() else { panic!() };
        assert_eq!(event.detail.destination_recovery_point_arn, None);
    }

    #[test]
    fn rejects_completed_copy_without_destination_vault() {
        rejects(
            remove(copy_job_completed(), "/detail", "destinationBackupVaultArn"),
            "detail.destinationBackupVaultArn",
        );
        let not_a_vault = set(copy_job_completed(), "/detail/destinationBackupVaultArn", json!("arn:aws:s3:::b"));
        rejects(not_a_vault, "detail.destinationBackupVaultArn");
    }

    #[test]
    fn rejects_completed_copy_without_copy_job_id() {
        rejects(remove(copy_job_completed(), "/detail", "copyJobId"), "detail.copyJobId");
    }

    #[test]
    fn rejects_rds_event_whose_arn_is_not_a_snapshot() {
        let value = set(rds_snapshot_event(), "/detail/SourceArn", json!("arn:aws:rds:eu-west-1:1:db:orders"));
        rejects(value, "detail.SourceArn");
    }

    #[test]
    fn rejects_db_snapshot_event_naming_a_cluster_snapshot() {
        let value = set(
            rds_snapshot_event(),
            "/detail/SourceArn",
            json!("arn:aws:rds:eu-west-1:1:cluster-snapshot:rds:billing"),
        );
        rejects(value, "detail.SourceArn");
    }

    #[test]
    fn rejects_rds_event_without_event_id() {
        rejects(remove(rds_snapshot_event(), "/detail", "EventID"), "detail.EventID");
        rejects(remove(rds_snapshot_event(), "/detail", "SourceIdentifier"), "detail.SourceIdentifier");
        rejects(set(rds_snapshot_event(), "/detail/EventCategories", json!("backup")), "detail.EventCategories");
    }

    #[test]
    fn parses_backup_vault_notification_prose() {
        let value = sns_of(VAULT_COMPLETED, vault_attributes("COMPLETED"));
        let TriggerEvent::Sns(sns) = TriggerEvent::from_value(&value).unwrap() else { panic!() };
        let SnsMessage::BackupVault(n) = &sns.notification().message else { panic!() };
        assert_eq!(n.event_type, "BACKUP_JOB");
        assert_eq!(n.state, Some(JobState::Completed));
        assert_eq!(n.backup_job_id.as_deref(), Some("8F3A2C61-4B7D-1E09-22C4-5D6E7F8A9B0C"));
        assert_eq!(
            n.recovery_point_arn.as_ref().unwrap().to_string(),
            "arn:aws:ec2:eu-west-1::snapshot/snap-0a1b2c3d4e5f67890"
        );
        assert_eq!(
            n.resource_arn.as_ref().unwrap().to_string(),
            "arn:aws:ec2:eu-west-1:111122223333:volume/vol-0fedcba9876543210"
        );
        assert_eq!(TriggerEvent::from_value(&value).unwrap().to_value(), value);
    }

    #[test]
    fn reads_the_older_backup_vault_wording() {
        // Wording seen in the wild: "Backed up Resource ARN :" and "Backup Job Id :", no Id attribute.
        let text = "An AWS Backup job was completed successfully. Recovery point ARN: \
            arn:aws:dynamodb:us-east-1:111122223333:table/My.Table/backup/01568804569000-d3306d76. \
            Backed up Resource ARN : arn:aws:dynamodb:us-east-1:111122223333:table/My.Table. \
            Backup Job Id : 5a772b5a-36d5-4a69-9b18-ed2f5213c659";
        let attributes = json!({
            "EventType": {"Type": "String", "Value": "BACKUP_JOB"},
            "State": {"Type": "String", "Value": "COMPLETED"}
        });
        let TriggerEvent::Sns(sns) = TriggerEvent::from_value(&sns_of(text, attributes)).unwrap() else { panic!() };
        let SnsMessage::BackupVault(n) = &sns.notification().message else { panic!() };
        assert_eq!(n.backup_job_id.as_deref(), Some("5a772b5a-36d5-4a69-9b18-ed2f5213c659"));
        assert_eq!(n.resource_arn.as_ref().unwrap().resource, "table/My.Table", "keeps dots inside the name");
    }

    #[test]
    fn labelled_value_handles_trailing_dots_and_missing_labels() {
        assert_eq!(labelled_value("A. Resource ARN : arn:x:y:z:a:b.. Next", &["Resource ARN"]), Some("arn:x:y:z:a:b."));
        assert_eq!(labelled_value("Id : last.", &["Id"]), Some("last."));
        assert_eq!(labelled_value("no label here", &["Resource ARN"]), None);
        assert_eq!(labelled_value("Resource ARN without colon", &["Resource ARN"]), None);
    }

    #[test]
    fn rejects_empty_sns_records() {
        rejects(json!({"Records": []}), "Records");
    }

    #[test]
    fn rejects_more_than_one_sns_record() {
        let one = sns_of(VAULT_COMPLETED, vault_attributes("COMPLETED"))["Records"][0].clone();
        rejects(json!({"Records": [one.clone(), one]}), "Records");
    }

    #[test]
    fn rejects_sns_record_without_message() {
        let value = remove(sns_of(VAULT_COMPLETED, vault_attributes("COMPLETED")), "/Records/0/Sns", "Message");
        rejects(value, "Records[0].Sns.Message");
    }

    #[test]
    fn rejects_sns_record_without_sns() {
        rejects(json!({"Records": [{"EventSource": "aws:sns"}]}), "Records[0].Sns");
    }

    #[test]
    fn rejects_vault_notification_without_recovery_point() {
        let text = "An AWS Backup job was completed successfully. Resource ARN : arn:aws:ec2:r:1:volume/vol-1. BackupJob ID : x";
        rejects(sns_of(text, vault_attributes("COMPLETED")), "Records[0].Sns.Message");
    }

    #[test]
    fn rejects_vault_notification_with_bad_state() {
        rejects(sns_of(VAULT_COMPLETED, vault_attributes("SUCCEEDED")), "Records[0].Sns.MessageAttributes.State.Value");
    }

    #[test]
    fn rejects_vault_notification_without_event_type() {
        let mut attributes = vault_attributes("COMPLETED");
        attributes.as_object_mut().unwrap().remove("EventType");
        rejects(sns_of(VAULT_COMPLETED, attributes), "Records[0].Sns.MessageAttributes.EventType.Value");
    }

    #[test]
    fn accepts_failed_vault_notification_without_recovery_point() {
        let text = "An AWS Backup job failed. Resource ARN : arn:aws:ec2:r:1:volume/vol-1. BackupJob ID : x";
        assert!(TriggerEvent::from_value(&sns_of(text, vault_attributes("FAILED"))).is_ok());
    }

    #[test]
    fn rejects_sns_message_that_is_neither_json_nor_backup_prose() {
        let mut value = sns_of("This is a message to notify you that the subscription was confirmed", json!({}));
        value["Records"][0]["Sns"]["Subject"] = json!("RDS Notification Message");
        rejects(value, "Records[0].Sns.Message");
    }

    #[test]
    fn reads_eventbridge_event_forwarded_through_sns() {
        let message = serde_json::to_string(&backup_job_completed()).unwrap();
        let value = sns_of(&message, json!({}));
        let event = TriggerEvent::from_value(&value).unwrap();
        let TriggerEvent::Sns(sns) = &event else { panic!() };
        assert!(
            matches!(&sns.notification().message, SnsMessage::Published(inner) if matches!(**inner, TriggerEvent::BackupJob(_)))
        );
        assert_eq!(event.shape(), "SNS Backup Job State Change");
        let again = TriggerEvent::from_value(&event.to_value()).unwrap();
        assert_eq!(again, event);
    }

    #[test]
    fn names_fields_inside_a_forwarded_event_by_their_full_path() {
        let inner = remove(backup_job_completed(), "/detail", "resourceArn");
        let value = sns_of(&serde_json::to_string(&inner).unwrap(), json!({}));
        rejects(value, "Records[0].Sns.Message.detail.resourceArn");
    }

    #[test]
    fn rejects_sns_inside_sns() {
        let inner = sns_of(VAULT_COMPLETED, vault_attributes("COMPLETED"));
        rejects(sns_of(&serde_json::to_string(&inner).unwrap(), json!({})), "Records[0].Sns.Message");
    }

    #[test]
    fn reads_rds_notification_and_its_event_id() {
        let message = json!({
            "Event Source": "db-snapshot",
            "Event Time": "2019-08-18 10:41:43.322",
            "Identifier Link": "https://console.aws.amazon.com/rds/home?region=us-west-2#snapshot:id=rds:vmwatm-2019-08-18-10-36",
            "Source ID": "rds:vmwatm-2019-08-18-10-36",
            "Event ID": "http://docs.amazonwebservices.com/AmazonRDS/latest/UserGuide/USER_Events.html#RDS-EVENT-0091",
            "Event Message": "Automated snapshot created"
        });
        let value = sns_of(&message.to_string(), json!({}));
        let TriggerEvent::Sns(sns) = TriggerEvent::from_value(&value).unwrap() else { panic!() };
        let SnsMessage::Rds(n) = &sns.notification().message else { panic!() };
        assert_eq!(n.event_id(), "RDS-EVENT-0091");
        assert_eq!(n.source_arn, None, "older messages carry no ARN");
        assert_eq!(n.event_time().unwrap().to_rfc3339(), "2019-08-18T10:41:43.322+00:00");
    }

    #[test]
    fn rejects_rds_notification_with_bad_fields() {
        let good = json!({"Event Source": "db-snapshot", "Source ID": "s", "Event ID": "x#RDS-EVENT-0042"});
        let mut no_source = good.clone();
        no_source.as_object_mut().unwrap().remove("Source ID");
        rejects(sns_of(&no_source.to_string(), json!({})), "Records[0].Sns.Message.Source ID");
        let mut bad_id = good.clone();
        bad_id["Event ID"] = json!("http://docs/#SOMETHING");
        rejects(sns_of(&bad_id.to_string(), json!({})), "Records[0].Sns.Message.Event ID");
        let mut bad_time = good.clone();
        bad_time["Event Time"] = json!("04/03/2025");
        rejects(sns_of(&bad_time.to_string(), json!({})), "Records[0].Sns.Message.Event Time");
        let mut bad_arn = good;
        bad_arn["Source ARN"] = json!("rds:snap");
        rejects(sns_of(&bad_arn.to_string(), json!({})), "Records[0].Sns.Message.Source ARN");
    }

    #[test]
    fn parses_manual_inputs() {
        let ebs = TriggerEvent::from_value(&json!({"snapshot": "snap-0a1b2c3d4e5f67890", "mode": "raw"})).unwrap();
        let TriggerEvent::Manual(input) = &ebs else { panic!() };
        assert!(
            matches!(&input.snapshot, ManualSnapshot::Ebs { snapshot_id, .. } if snapshot_id == "snap-0a1b2c3d4e5f67890")
        );
        assert_eq!(input.mode, Some(ModeRequest::Raw));

        let rds = json!({"snapshot": "arn:aws:rds:eu-west-1:111122223333:snapshot:rds:orders-2025", "method": "dump"});
        let TriggerEvent::Manual(input) = TriggerEvent::from_value(&rds).unwrap() else { panic!() };
        assert!(matches!(input.snapshot, ManualSnapshot::RdsDb { .. }));
        assert_eq!(input.method, Some(DbMethod::Dump));

        let aurora = json!({"snapshot": "arn:aws:rds:eu-west-1:111122223333:cluster-snapshot:billing-pre-migration"});
        let TriggerEvent::Manual(input) = TriggerEvent::from_value(&aurora).unwrap() else { panic!() };
        assert!(matches!(input.snapshot, ManualSnapshot::RdsCluster { .. }));

        let ebs_arn = json!({"snapshot": "arn:aws:ec2:eu-west-1::snapshot/snap-0a1b2c3d"});
        let event = TriggerEvent::from_value(&ebs_arn).unwrap();
        assert_eq!(event.to_value(), ebs_arn, "an ARN given prints back as an ARN");
    }

    #[test]
    fn rejects_manual_input_with_bad_snapshot() {
        for bad in [
            json!({"snapshot": "snap-XYZ"}),
            json!({"snapshot": "snap-0123"}),
            json!({"snapshot": "rds:orders-2025"}),
            json!({"snapshot": "arn:aws:rds:eu-west-1:1:db:orders"}),
            json!({"snapshot": "arn:aws:ec2:eu-west-1::snapshot/snap-nothex00"}),
            json!({"snapshot": "arn:aws:ec2:eu-west-1::snapshot"}),
            json!({"snapshot": ""}),
            json!({"snapshot": 12}),
        ] {
            rejects(bad, "snapshot");
        }
    }

    #[test]
    fn rejects_manual_input_with_unknown_field() {
        let err = rejects(json!({"snapshot": "snap-0a1b2c3d", "methd": "dump"}), "methd");
        assert!(matches!(err, EventError::UnknownField { .. }));
    }

    #[test]
    fn rejects_manual_input_with_bad_method_or_mode() {
        let rds = "arn:aws:rds:eu-west-1:1:snapshot:s";
        rejects(json!({"snapshot": rds, "method": "copy"}), "method");
        rejects(json!({"snapshot": rds, "mode": "raw"}), "mode");
        rejects(json!({"snapshot": "snap-0a1b2c3d", "method": "export"}), "method");
        rejects(json!({"snapshot": "snap-0a1b2c3d", "mode": "tar"}), "mode");
    }

    #[test]
    fn rejects_inputs_of_no_known_shape() {
        rejects(json!({"hello": "world"}), "event");
        rejects(json!([1, 2]), "event");
        let err = TriggerEvent::from_json(b"{not json").unwrap_err();
        assert_eq!(err.field(), "event");
    }

    #[test]
    fn deserializes_through_serde() {
        let event: TriggerEvent = serde_json::from_value(backup_job_completed()).unwrap();
        assert!(matches!(event, TriggerEvent::BackupJob(_)));
        let err = serde_json::from_value::<TriggerEvent>(remove(backup_job_completed(), "/detail", "resourceArn"))
            .unwrap_err();
        assert!(err.to_string().contains("detail.resourceArn"), "{err}");
    }

    #[test]
    fn recognises_ebs_snapshot_ids() {
        assert!(is_ebs_snapshot_id("snap-0a1b2c3d4e5f67890"));
        assert!(is_ebs_snapshot_id("snap-0a1b2c3d"));
        assert!(!is_ebs_snapshot_id("snap-0A1B2C3D"));
        assert!(!is_ebs_snapshot_id("snap-0a1b2c3d4"));
        assert!(!is_ebs_snapshot_id("vol-0a1b2c3d"));
    }

    #[test]
    fn job_states_print_as_aws_spells_them() {
        for state in JobState::ALL {
            assert_eq!(state.as_str().parse::<JobState>(), Ok(state));
            assert_eq!(serde_json::to_value(state).unwrap(), state.as_str());
        }
    }
}
