//! Job-event alerts: every AWS Backup job event (a vault's SNS notification, an EventBridge
//! `Backup`/`Copy`/`Restore Job State Change` or `Recovery Point State Change`) read into one
//! [`JobAlert`], filtered and routed by an [`AlertConfig`], and rendered for Slack, for SNS
//! (text, e-mail) and for Amazon Q Developer in chat applications ([`render`]). The
//! `relay-alert` Lambda and `backup-archiver alert` only send or print what this module decides.
//!
//! Reading never calls a valid AWS Backup event malformed: an event about something else than a
//! job or a recovery point (a vault or plan change, an RDS event) is [`AlertEvent::NotAJob`] and
//! is filtered with that reason; only input that is not an event, or an event whose fields have
//! the wrong shape, is an [`EventError`].

pub mod digest;
mod parse;
pub mod render;

use std::collections::BTreeSet;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use crate::event::EventError;
pub use parse::read_alert;

/// What an alert is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    BackupJob,
    CopyJob,
    RestoreJob,
    RecoveryPoint,
}

impl AlertKind {
    /// `Backup job`, as a message's title starts.
    pub fn label(self) -> &'static str {
        match self {
            AlertKind::BackupJob => "Backup job",
            AlertKind::CopyJob => "Copy job",
            AlertKind::RestoreJob => "Restore job",
            AlertKind::RecoveryPoint => "Recovery point",
        }
    }

    /// `backup-job`: the claim key's and the chat thread's word.
    pub fn slug(self) -> &'static str {
        match self {
            AlertKind::BackupJob => "backup-job",
            AlertKind::CopyJob => "copy-job",
            AlertKind::RestoreJob => "restore-job",
            AlertKind::RecoveryPoint => "recovery-point",
        }
    }
}

/// How the event arrived, for logs and for the claim of an event that names no job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "via", rename_all = "snake_case")]
pub enum Delivery {
    /// An EventBridge event (straight from a rule, or forwarded by a rule to an SNS topic).
    EventBridge { detail_type: String, id: Option<String> },
    /// A vault notification (PutBackupVaultNotifications): prose plus message attributes.
    VaultNotification { event_type: String, message_id: Option<String> },
}

/// One AWS Backup job event, whatever its shape. Every field but `kind`, `state` and `delivery`
/// is optional: AWS sends different fields for each kind, and a vault notification names little
/// more than the job and the resource.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JobAlert {
    pub kind: AlertKind,
    /// AWS's word, upper case: `FAILED`, `COMPLETED`, `EXPIRED`, … (`state` or `status` in the
    /// event, the `State` attribute or the older event name of a vault notification).
    pub state: String,
    pub delivery: Delivery,
    pub job_id: Option<String>,
    pub account: Option<String>,
    pub region: Option<String>,
    /// The vault the job wrote to or read from; a copy job's source vault.
    pub vault_name: Option<String>,
    /// A copy job's destination vault (its name, or its ARN when in another account or region).
    pub destination_vault: Option<String>,
    pub resource_arn: Option<String>,
    /// AWS Backup's name (`EBS`, `RDS`, `Aurora`, …), else guessed from the resource's ARN.
    pub resource_type: Option<String>,
    pub recovery_point_arn: Option<String>,
    /// What a restore job created.
    pub created_resource_arn: Option<String>,
    pub size_bytes: Option<u64>,
    pub creation_date: Option<DateTime<Utc>>,
    pub completion_date: Option<DateTime<Utc>>,
    /// When the event was emitted.
    pub event_time: Option<DateTime<Utc>>,
    /// Why a job failed (or what was wrong with a completed one), as AWS wrote it.
    pub status_message: Option<String>,
    /// A vault notification's prose: all there is when the attributes say little.
    pub notification_text: Option<String>,
}

/// How urgent an alert is: its colour, emoji and route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// No backup, copy or restore happened: FAILED, ABORTED, a job that EXPIRED before it ran.
    Failure,
    /// Something needs a look: PARTIAL, an EXPIRED recovery point that could not be deleted, a
    /// job that completed with a status message (the console's "Completed with issues").
    Warning,
    Success,
    /// Progress: CREATED, RUNNING, STARTED, MODIFIED, ….
    Info,
}

impl Severity {
    /// Whether this goes to the failure webhook, when one is configured.
    pub fn needs_attention(self) -> bool {
        matches!(self, Severity::Failure | Severity::Warning)
    }
}

/// Every state AWS Backup reports for jobs and recovery points, plus the older vault event names'
/// `STARTED` and the notification `MODIFIED`: what [`AlertConfig::states`] may name.
/// <https://docs.aws.amazon.com/aws-backup/latest/devguide/API_BackupJob.html>,
/// <https://docs.aws.amazon.com/aws-backup/latest/devguide/API_RecoveryPointByBackupVault.html>
pub const KNOWN_STATES: &[&str] = &[
    "CREATED",
    "PENDING",
    "RUNNING",
    "STARTED",
    "ABORTING",
    "ABORTED",
    "COMPLETED",
    "FAILED",
    "EXPIRED",
    "PARTIAL",
    "AVAILABLE",
    "CREATING",
    "DELETING",
    "STOPPED",
    "MODIFIED",
];

/// The states sent unless configured otherwise: the ones someone must act on the same day.
/// COMPLETED (every nightly success) and the progress states would bury them.
pub const DEFAULT_STATES: &[&str] = &["FAILED", "ABORTED", "EXPIRED", "PARTIAL"];

impl JobAlert {
    pub fn severity(&self) -> Severity {
        severity_of(self.kind, &self.state, self.status_message.is_some())
    }

    /// AWS's "Completed with issues": a COMPLETED backup job that carries a status message.
    /// <https://docs.aws.amazon.com/aws-backup/latest/devguide/eventbridge.html>
    pub fn completed_with_issues(&self) -> bool {
        self.kind == AlertKind::BackupJob && self.state == "COMPLETED" && self.status_message.is_some()
    }

    /// The key that makes one message per event: the job (or recovery point) and its state, so a
    /// redelivery, and the same state change arriving both by SNS and by EventBridge, send once.
    /// An event that names neither falls back to its delivery's id, then to a digest of itself.
    pub fn dedup_key(&self) -> String {
        let subject = match (&self.job_id, &self.recovery_point_arn, &self.delivery) {
            (Some(job), _, _) => safe_segment(job),
            (None, Some(point), _) => digest(point),
            (None, None, Delivery::EventBridge { id: Some(id), .. })
            | (None, None, Delivery::VaultNotification { message_id: Some(id), .. }) => {
                format!("delivery-{}", safe_segment(id))
            }
            (None, None, _) => digest(&serde_json::to_string(self).expect("alerts serialize")),
        };
        format!("{}/{subject}/{}", self.kind.slug(), safe_segment(&self.state))
    }

    /// The S3 key of this event's claim under the archive prefix `prefix` (see
    /// [`crate::claim`] for why an S3 conditional write).
    pub fn claim_key(&self, prefix: &str) -> String {
        let prefix = prefix.trim_matches('/');
        if prefix.is_empty() {
            format!(".alerts/{}", self.dedup_key())
        } else {
            format!("{prefix}/.alerts/{}", self.dedup_key())
        }
    }

    /// The AWS Backup console page of the job.
    pub fn job_console_url(&self) -> Option<String> {
        job_console_url(self.kind, self.job_id.as_deref()?, self.region.as_deref()?)
    }

    /// The console page of the recovery point (in its vault), else of the protected resource.
    pub fn recovery_point_console_url(&self) -> Option<String> {
        let home = self.console_home()?;
        match (&self.recovery_point_arn, &self.vault_name, &self.resource_arn) {
            (Some(point), Some(vault), _) if self.kind != AlertKind::CopyJob => {
                Some(format!("{home}#/backupvaults/details/{}/{}", percent_encode(vault), percent_encode(point)))
            }
            (_, _, Some(resource)) => Some(format!("{home}#/resources/{}", percent_encode(resource))),
            _ => None,
        }
    }

    fn console_home(&self) -> Option<String> {
        console_home(self.region.as_deref()?)
    }

    /// `vol-0123…` out of the resource's ARN, or the ARN itself.
    pub fn resource_name(&self) -> Option<String> {
        Some(resource_name_of(self.resource_arn.as_deref().or(self.created_resource_arn.as_deref())?))
    }
}

/// What DescribeBackupJob, DescribeCopyJob or DescribeRestoreJob says about a job: a vault
/// notification names little more than the job, and the reason of a failure is only here.
/// Vaults may be given by name or by ARN.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobDescription {
    pub status_message: Option<String>,
    pub vault: Option<String>,
    pub destination_vault: Option<String>,
    pub resource_arn: Option<String>,
    pub resource_type: Option<String>,
    pub recovery_point_arn: Option<String>,
    pub created_resource_arn: Option<String>,
    pub size_bytes: Option<u64>,
    pub creation_date: Option<DateTime<Utc>>,
    pub completion_date: Option<DateTime<Utc>>,
}

impl JobAlert {
    /// Whether the relay should describe the job before sending: a vault notification of a job.
    pub fn wants_description(&self) -> bool {
        matches!(self.delivery, Delivery::VaultNotification { .. })
            && self.job_id.is_some()
            && self.kind != AlertKind::RecoveryPoint
    }

    /// Fills what the event did not say from the job's description; the event's own values win.
    pub fn describe_with(&mut self, description: JobDescription) {
        fn fill<T>(slot: &mut Option<T>, value: Option<T>) {
            if slot.is_none() {
                *slot = value;
            }
        }
        let vault_name = |text: String| match text.parse::<crate::arn::Arn>() {
            Ok(arn) => crate::event::vault_name_of(&arn).map_or(text.clone(), str::to_string),
            Err(_) => text,
        };
        fill(&mut self.status_message, description.status_message.filter(|m| !m.is_empty()));
        fill(&mut self.vault_name, description.vault.map(vault_name));
        fill(&mut self.destination_vault, description.destination_vault.map(vault_name));
        fill(&mut self.resource_arn, description.resource_arn);
        fill(&mut self.resource_type, description.resource_type);
        fill(&mut self.recovery_point_arn, description.recovery_point_arn);
        fill(&mut self.created_resource_arn, description.created_resource_arn);
        fill(&mut self.size_bytes, description.size_bytes);
        fill(&mut self.creation_date, description.creation_date);
        fill(&mut self.completion_date, description.completion_date);
    }
}

/// AWS Backup's resource type for an ARN whose event did not say it.
/// <https://docs.aws.amazon.com/aws-backup/latest/devguide/backup-feature-availability.html>
pub fn resource_type_of(arn: &crate::arn::Arn) -> Option<&'static str> {
    let (kind, _) = arn.resource_type_and_id();
    Some(match (arn.service.as_str(), kind) {
        ("ec2", "volume") | ("ec2", "snapshot") => "EBS",
        ("ec2", "instance") | ("ec2", "image") => "EC2",
        ("rds", "cluster") | ("rds", "cluster-snapshot") => "Aurora",
        ("rds", _) => "RDS",
        ("dynamodb", _) => "DynamoDB",
        ("elasticfilesystem", _) => "EFS",
        ("fsx", _) => "FSx",
        ("s3", _) => "S3",
        ("storagegateway", _) => "Storage Gateway",
        _ => return None,
    })
}

/// A read event: a job alert, or a valid event that is about something else.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AlertEvent {
    Alert(Box<JobAlert>),
    /// A vault or plan change, an S3 object failure notification, an event of another service:
    /// `what` says which, for the "filtered" reason.
    NotAJob {
        /// Whether AWS Backup sent it (a vault change, a plan notification), or another service.
        from_backup: bool,
        what: String,
    },
}

/// Which states, vaults and resource types are sent. Empty `vaults` or `resource_types` mean all.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlertConfig {
    pub states: BTreeSet<String>,
    pub vaults: BTreeSet<String>,
    pub resource_types: BTreeSet<String>,
}

impl Default for AlertConfig {
    fn default() -> Self {
        AlertConfig {
            states: DEFAULT_STATES.iter().map(|s| s.to_string()).collect(),
            vaults: BTreeSet::new(),
            resource_types: BTreeSet::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AlertConfigError {
    #[error("alert state {state:?} is not one AWS Backup reports (expected some of {})", KNOWN_STATES.join(", "))]
    UnknownState { state: String },
}

impl AlertConfig {
    /// The configuration from comma-separated lists, as the stack's parameters pass them: an empty
    /// `states` means [`DEFAULT_STATES`]; names are trimmed and states upper-cased.
    pub fn from_lists(states: &str, vaults: &str, resource_types: &str) -> Result<Self, AlertConfigError> {
        let list = |text: &str| -> BTreeSet<String> {
            text.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect()
        };
        let mut config = AlertConfig { vaults: list(vaults), resource_types: list(resource_types), ..Self::default() };
        let states: BTreeSet<String> = list(states).into_iter().map(|s| s.to_ascii_uppercase()).collect();
        if !states.is_empty() {
            config.states = states;
        }
        config.validate()?;
        Ok(config)
    }

    pub fn validate(&self) -> Result<(), AlertConfigError> {
        match self.states.iter().find(|s| !KNOWN_STATES.contains(&s.as_str())) {
            Some(state) => Err(AlertConfigError::UnknownState { state: state.clone() }),
            None => Ok(()),
        }
    }
}

/// Where a sent alert goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Route {
    /// The failure webhook, when one is configured, else the usual one.
    Failures,
    Others,
}

/// Whether an event is sent, and where; or why not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Decision {
    Send { route: Route, severity: Severity },
    Filtered { reason: String },
}

/// Decides an event against `config`.
pub fn decide(event: &AlertEvent, config: &AlertConfig) -> Decision {
    let alert = match event {
        AlertEvent::Alert(alert) => alert,
        AlertEvent::NotAJob { what, .. } => {
            return Decision::Filtered { reason: format!("{what}: not about a job or a recovery point") }
        }
    };
    if !config.states.contains(&alert.state) {
        let sent = config.states.iter().map(String::as_str).collect::<Vec<_>>().join(", ");
        return Decision::Filtered {
            reason: format!("{} state {} is not among the alerted states ({sent})", alert.kind.label(), alert.state),
        };
    }
    // A vault notification names no vault (the vault chose this topic), so it passes a vault filter.
    if !config.vaults.is_empty() {
        let vaults = [alert.vault_name.as_deref(), alert.destination_vault.as_deref()];
        let named: Vec<&str> = vaults.into_iter().flatten().collect();
        if !named.is_empty() && !named.iter().any(|v| config.vaults.contains(*v)) {
            return Decision::Filtered {
                reason: format!("vault {} is not among the alerted vaults", named.join(" -> ")),
            };
        }
    }
    if !config.resource_types.is_empty() {
        if let Some(kind) = &alert.resource_type {
            if !config.resource_types.iter().any(|t| t.eq_ignore_ascii_case(kind)) {
                return Decision::Filtered {
                    reason: format!("resource type {kind} is not among the alerted resource types"),
                };
            }
        }
    }
    let severity = alert.severity();
    let route = if severity.needs_attention() { Route::Failures } else { Route::Others };
    Decision::Send { route, severity }
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Decision::Send { route: Route::Failures, .. } => f.write_str("send (failure route)"),
            Decision::Send { route: Route::Others, .. } => f.write_str("send"),
            Decision::Filtered { reason } => write!(f, "filtered: {reason}"),
        }
    }
}

/// The `plan` step's answer to an event its trigger parser rejected: when it is nonetheless a
/// valid AWS Backup event (a `Recovery Point State Change`, a restore job, a vault notification of
/// a recovery point), a quiet skip naming it instead of `InvalidEvent`; `None` for input that is
/// malformed for the relay too.
pub fn archive_skip(value: &serde_json::Value) -> Option<crate::request::SkipReason> {
    let event = match read_alert(value).ok()? {
        AlertEvent::Alert(alert) => {
            let via = match &alert.delivery {
                Delivery::EventBridge { detail_type, .. } => format!("EventBridge {detail_type:?}"),
                Delivery::VaultNotification { event_type, .. } => format!("vault notification {event_type}"),
            };
            format!("{via} ({})", alert.state)
        }
        AlertEvent::NotAJob { what, from_backup: true } => what,
        // Another service's event that the trigger parser rejected is malformed for the plan too.
        AlertEvent::NotAJob { from_backup: false, .. } => return None,
    };
    Some(crate::request::SkipReason::NotArchiveTrigger { event })
}

/// `vol-0123…` out of a resource's ARN, or the ARN itself.
pub fn resource_name_of(arn: &str) -> String {
    match arn.parse::<crate::arn::Arn>() {
        Ok(parsed) if !parsed.resource_type_and_id().1.is_empty() => parsed.resource_type_and_id().1.to_string(),
        _ => arn.to_string(),
    }
}

/// `kind`'s severity in `state`; `has_status_message` tells a COMPLETED backup job "with issues".
pub fn severity_of(kind: AlertKind, state: &str, has_status_message: bool) -> Severity {
    match state {
        "FAILED" | "ABORTED" => Severity::Failure,
        "EXPIRED" if kind == AlertKind::RecoveryPoint => Severity::Warning,
        "EXPIRED" => Severity::Failure,
        "PARTIAL" => Severity::Warning,
        "COMPLETED" if kind == AlertKind::BackupJob && has_status_message => Severity::Warning,
        "COMPLETED" | "AVAILABLE" => Severity::Success,
        _ => Severity::Info,
    }
}

/// The AWS Backup console page of a job in `region`; `None` for a recovery point, which has no job.
pub fn job_console_url(kind: AlertKind, job_id: &str, region: &str) -> Option<String> {
    let page = match kind {
        AlertKind::BackupJob => "backup",
        AlertKind::CopyJob => "copy",
        AlertKind::RestoreJob => "restore",
        AlertKind::RecoveryPoint => return None,
    };
    Some(format!("{}#/jobs/{page}/details/{}", console_home(region)?, percent_encode(job_id)))
}

/// The AWS Backup console in `region`, in its partition.
fn console_home(region: &str) -> Option<String> {
    let region = Some(region).filter(|r| !r.is_empty())?;
    let host = if region.starts_with("cn-") {
        "console.amazonaws.cn".to_string()
    } else if region.starts_with("us-gov-") {
        "console.amazonaws-us-gov.com".to_string()
    } else {
        format!("{region}.console.aws.amazon.com")
    };
    Some(format!("https://{host}/backup/home?region={region}"))
}

/// Ids are upper-case hex and hyphens; anything else is replaced, so a key segment is plain.
fn safe_segment(text: &str) -> String {
    text.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect()
}

fn digest(text: &str) -> String {
    Sha256::digest(text.as_bytes()).iter().take(16).map(|b| format!("{b:02x}")).collect()
}

/// Percent-encodes everything but unreserved characters, for an ARN inside a console fragment.
fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests;
