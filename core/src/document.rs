//! What every flow's execution shares: the document that grows state by state
//! ([`FlowDocument`], with each flow's own steps), the errors its steps fail with ([`FlowError`])
//! and the error object a `Catch` writes ([`StateError`]), the handoff to another flow, the
//! recovery point's deletion, and the outcome and notification every flow ends with.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::arn::Arn;
use crate::errors::{self, NamedError};
use crate::request::ArchiveRequest;

// ---------------------------------------------------------------------------------------------
// The whole document.

/// An execution's document once every state has run, in any flow: the plan's fields, the flow's
/// own steps `S` (each writes one field, its `ResultPath`), and the fields every flow shares.
/// Fields of states that have not run are absent, hence `Option`. `core/tests/asl.rs` checks every
/// JSONPath of each ASL file against its flow's document; [`FlowView`](crate::message::FlowView) reads one leniently
/// where
/// a state may see less.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlowDocument<S> {
    /// `planned`: the tag of [`crate::request::PlanOutcome`].
    pub outcome: String,
    #[serde(flatten)]
    pub request: ArchiveRequest,
    #[serde(flatten)]
    pub steps: S,
    /// The execution of the snapshot's own flow, when this one handed the trigger over.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handoff: Option<Handoff>,
    /// The handoff's refusal: the snapshot's flow already has an execution of this name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duplicate: Option<StateError>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery_point_deletion: Option<RecoveryPointDeletion>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notification: Option<NotificationReport>,
    /// The error that sent the execution to the cleanup path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<StateError>,
    /// The cleanup's own failure (what it was to delete or cancel may be left over).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cleanup_error: Option<StateError>,
    /// The notification's failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify_error: Option<StateError>,
}

/// What the `Handoff` state keeps of StartExecution's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Handoff {
    pub execution_arn: String,
}

/// Why a flow step cannot go on. Its [`NamedError`] name is the Lambda's error type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FlowError {
    #[error("invalid configuration: `{field}` {reason}")]
    InvalidConfig { field: &'static str, reason: String },
    #[error("invalid input: `{field}` {reason}")]
    InvalidInput { field: &'static str, reason: String },
    #[error("snapshot {snapshot_id} is already being archived by {execution}: it holds the claim {claim_url}")]
    Duplicate { snapshot_id: String, execution: String, claim_url: String },
    #[error(
        "snapshot {snapshot_id} is already archived: {manifest_url} exists (delete that archive to make a new one)"
    )]
    AlreadyArchived { snapshot_id: String, manifest_url: String },
    #[error("volume {volume_id} is {state}, not available yet")]
    VolumeNotReady { volume_id: String, state: String },
    #[error("volume {volume_id} is {state} and will not become available")]
    VolumeFailed { volume_id: String, state: String },
    #[error(
        "volume {volume_id} is still attached to {instance_id} ({attachment_state}); detach requested{}",
        if *forced { " with force" } else { "" }
    )]
    VolumeStillAttached { volume_id: String, instance_id: String, attachment_state: String, forced: bool },
    #[error("the archive at {location} is incomplete: {problem}")]
    ArchiveIncomplete { location: String, problem: String },
}

impl NamedError for FlowError {
    fn error_name(&self) -> &'static str {
        match self {
            FlowError::InvalidConfig { .. } => errors::INVALID_CONFIG,
            FlowError::InvalidInput { .. } => errors::INVALID_EVENT,
            FlowError::Duplicate { .. } | FlowError::AlreadyArchived { .. } => errors::DUPLICATE_ARCHIVE,
            FlowError::VolumeNotReady { .. } => errors::VOLUME_NOT_READY,
            FlowError::VolumeFailed { .. } => errors::VOLUME_FAILED,
            FlowError::VolumeStillAttached { .. } => errors::VOLUME_STILL_ATTACHED,
            FlowError::ArchiveIncomplete { .. } => errors::ARCHIVE_INCOMPLETE,
        }
    }
}

/// What a `Catch` writes at its `ResultPath`: Step Functions' error object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateError {
    #[serde(rename = "Error")]
    pub error: String,
    #[serde(rename = "Cause", default)]
    pub cause: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// DeleteRecoveryPoint.

/// Input of `delete-recovery-point`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteRecoveryPointInput {
    pub vault_name: String,
    pub recovery_point_arn: Arn,
}

/// Output of `delete-recovery-point`, at `$.recovery_point_deletion`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecoveryPointDeletion {
    pub recovery_point_arn: Arn,
    /// False when it was already gone (a retry, or deleted by hand).
    pub deleted: bool,
}

// ---------------------------------------------------------------------------------------------
// Notify.

/// How an execution ended, as the notification tells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FlowOutcome {
    Succeeded,
    Failed,
}

/// Input of `notify`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NotifyInput {
    pub outcome: FlowOutcome,
    pub execution_id: String,
    /// `$$.Execution.StartTime`: the duration in the message is measured from it.
    pub started_at: DateTime<Utc>,
    /// The execution's document (`$`).
    pub state: Value,
}

/// Output of `notify`, at `$.notification`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotificationReport {
    /// True when a Slack webhook is configured and accepted the message.
    pub slack: bool,
    /// SNS's message id, when a topic is configured.
    pub sns_message_id: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_flow_error_has_a_known_name() {
        let all = [
            FlowError::InvalidConfig { field: "f", reason: "r".into() },
            FlowError::InvalidInput { field: "f", reason: "r".into() },
            FlowError::Duplicate {
                snapshot_id: "s".into(),
                execution: "e".into(),
                claim_url: "s3://b/p/.claims/k".into(),
            },
            FlowError::VolumeNotReady { volume_id: "v".into(), state: "creating".into() },
            FlowError::VolumeFailed { volume_id: "v".into(), state: "error".into() },
            FlowError::VolumeStillAttached {
                volume_id: "v".into(),
                instance_id: "i".into(),
                attachment_state: "attached".into(),
                forced: true,
            },
            FlowError::ArchiveIncomplete { location: "l".into(), problem: "p".into() },
        ];
        for error in all {
            assert!(errors::is_known(error.error_name()), "{error}");
        }
    }
}
