//! The EBS archive flow (`state-machines/ebs-archive.asl.json`): the input and output of each of
//! its states, and the decisions its Lambdas make about the temporary volume, the Batch job and
//! the archive's verification.
//!
//! The execution's document grows state by state, each writing one field (its `ResultPath`):
//!
//! ```text
//! Plan                -> the whole document: PlanOutcome (ArchiveRequest fields + "outcome")
//! CreateVolume        -> temporary_volume     (CreatedVolume: the volume and its Batch job)
//! CheckVolume         -> (nothing)            fails VolumeNotReady until `available`, bounded
//! ArchiveJob          -> job                  (JobResult, from batch:submitJob.sync)
//! DeleteVolume        -> deleted_volumes      (DeletedVolumes)
//! Verify              -> verification         (Verification)
//! DeleteRecoveryPoint -> recovery_point_deletion
//! Notify*             -> notification         (NotificationReport)
//! any Catch           -> error | cleanup_error | notify_error   (StateError)
//! ```
//!
//! [`FlowDocument`]`<`[`EbsArchiveSteps`]`>` is that document; `core/tests/asl.rs` checks every JSONPath of the ASL
//! against it, so a renamed field fails a test instead of an execution.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::arn::Arn;
use crate::dynamodb::{DeletedTables, ExportResult, TableSource};
use crate::errors;
use crate::event::TriggerEvent;
use crate::export::{ExportedFiles, StartedExport};
use crate::manifest::{Manifest, MANIFEST_NAME};
use crate::naming::short_hash;
use crate::request::{archive_target, ArchiveRequest, PlanConfig, Targeting};
use crate::s3_location::S3Location;

/// Tags on every temporary volume. The managed-by tag holds the deployment's name (the stack's):
/// IAM lets a deployment's roles attach, detach and delete only volumes that carry their own
/// name, so two deployments in one account never touch each other's volumes. The execution tag
/// is what the cleanup finds volumes by (so a volume whose id never reached the state machine is
/// still deleted), the key tag is what a duplicate execution finds the first one's volume by.
pub const TAG_MANAGED_BY: &str = "backup-archiver:managed-by";
pub const TAG_EXECUTION: &str = "backup-archiver:execution";
pub const TAG_IDEMPOTENCY_KEY: &str = "backup-archiver:idempotency-key";
pub const TAG_SNAPSHOT_ID: &str = "backup-archiver:snapshot-id";

/// `ClientToken` of CreateVolume: at most 64 ASCII characters.
/// <https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_CreateVolume.html>
const MAX_CLIENT_TOKEN_LEN: usize = 64;

/// After this many retries of DeleteVolume on an attached volume, the detach is forced. The
/// worker detaches on its own when it ends normally (also on SIGTERM); a volume still attached
/// here belongs to a worker that was killed, and a plain detach of a volume nobody unmounted can
/// hang on a live instance. Two plain attempts (one ASL retry interval apart) give a detach that
/// was already under way the time to finish. Arbitrary, but bounded by the ASL's MaxAttempts.
pub const FORCE_DETACH_AFTER_RETRIES: u32 = 2;

/// Why a flow step cannot go on. [`FlowError::error_name`] is the Lambda's error type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FlowError {
    #[error("invalid configuration: `{field}` {reason}")]
    InvalidConfig { field: &'static str, reason: String },
    #[error("invalid input: `{field}` {reason}")]
    InvalidInput { field: &'static str, reason: String },
    #[error("snapshot {snapshot_id} is already being archived by {execution} (volume {volume_id})")]
    Duplicate { snapshot_id: String, execution: String, volume_id: String },
    #[error("snapshot {snapshot_id} is already archived: {manifest_url} exists (delete that archive to make a new one)")]
    AlreadyArchived { snapshot_id: String, manifest_url: String },
    #[error("volume {volume_id} is {state}, not available yet")]
    VolumeNotReady { volume_id: String, state: String },
    #[error("volume {volume_id} is {state} and will not become available")]
    VolumeFailed { volume_id: String, state: String },
    #[error("volume {volume_id} is still attached to {instance_id} ({attachment_state}); detach requested{}", if *forced { " with force" } else { "" })]
    VolumeStillAttached { volume_id: String, instance_id: String, attachment_state: String, forced: bool },
    #[error("the archive at {location} is incomplete: {problem}")]
    ArchiveIncomplete { location: String, problem: String },
}

impl FlowError {
    pub fn error_name(&self) -> &'static str {
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
// CreateVolume.

/// Input of the `create-volume` Lambda: the plan and the execution that owns the volume.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreateVolumeInput {
    pub request: ArchiveRequest,
    pub execution_id: String,
}

/// CreateVolume's parameters, decided here so the Lambda only translates them to the SDK.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeRequest {
    pub availability_zone: String,
    pub snapshot_id: String,
    pub volume_type: String,
    pub iops: u32,
    pub throughput_mibps: u32,
    pub initialization_rate_mibps: Option<u32>,
    /// Set for encrypted snapshots: the volume is encrypted with the snapshot's key (EBS would
    /// do so anyway; saying it makes a missing key grant fail at CreateVolume, not later).
    pub kms_key_id: Option<String>,
    pub encrypted: bool,
    /// Makes a retried CreateVolume of one execution return the same volume. Unique per
    /// execution, so a replay (a new execution) creates a volume of its own.
    pub client_token: String,
    pub tags: Vec<(String, String)>,
}

/// The CreateVolume call for `request`, owned by `execution_id` of the deployment `deployment`.
pub fn volume_request(request: &ArchiveRequest, execution_id: &str, deployment: &str) -> Result<VolumeRequest, FlowError> {
    let volume = request.volume.as_ref().ok_or(FlowError::InvalidInput {
        field: "volume",
        reason: format!("is null: the plan is for a {} archive, not an EBS one", request.kind),
    })?;
    if execution_id.is_empty() {
        return Err(FlowError::InvalidInput { field: "execution_id", reason: "is empty".into() });
    }
    if deployment.is_empty() {
        return Err(FlowError::InvalidConfig { field: "deployment", reason: "is empty: volumes are tagged with it".into() });
    }
    let encrypted = request.encrypted.unwrap_or(false);
    Ok(VolumeRequest {
        availability_zone: volume.availability_zone.clone(),
        snapshot_id: request.snapshot_id.clone(),
        volume_type: volume.volume_type.clone(),
        iops: volume.iops,
        throughput_mibps: volume.throughput_mibps,
        initialization_rate_mibps: volume.initialization_rate_mibps,
        kms_key_id: if encrypted { request.kms_key_id.clone() } else { None },
        encrypted,
        client_token: client_token(&request.idempotency_key, execution_id),
        tags: vec![
            ("Name".to_string(), format!("backup-archiver {}", request.snapshot_id)),
            (TAG_MANAGED_BY.to_string(), deployment.to_string()),
            (TAG_EXECUTION.to_string(), execution_id.to_string()),
            (TAG_IDEMPOTENCY_KEY.to_string(), request.idempotency_key.clone()),
            (TAG_SNAPSHOT_ID.to_string(), request.snapshot_id.clone()),
        ],
    })
}

/// `<idempotency key cut short>-<hash of key and execution>`: readable, at most 64 characters of
/// `[a-z0-9-]`. Also the DynamoDB export's client token and the temporary table's name.
pub(crate) fn client_token(idempotency_key: &str, execution_id: &str) -> String {
    let hash = short_hash(&format!("{idempotency_key}\n{execution_id}"));
    let room = MAX_CLIENT_TOKEN_LEN - hash.len() - 1;
    let readable = &idempotency_key[..idempotency_key.len().min(room)];
    format!("{}-{hash}", readable.trim_end_matches('-'))
}

/// A volume as DescribeVolumes reports it, reduced to what the flow decides on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExistingVolume {
    pub volume_id: String,
    /// `creating | available | in-use | deleting | deleted | error`.
    pub state: String,
    pub create_time: Option<DateTime<Utc>>,
    /// The value of [`TAG_EXECUTION`].
    pub execution: Option<String>,
    /// The value of [`TAG_MANAGED_BY`]: only volumes of this deployment are ever deleted.
    #[serde(default)]
    pub managed_by: Option<String>,
    /// Instance and state of each attachment.
    #[serde(default)]
    pub attachments: Vec<VolumeAttachment>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeAttachment {
    pub instance_id: String,
    /// `attaching | attached | detaching | detached | busy`.
    pub state: String,
}

impl ExistingVolume {
    fn is_live(&self) -> bool {
        !matches!(self.state.as_str(), "deleting" | "deleted")
    }
}

/// What `create-volume` does, given the volumes already tagged with the snapshot's idempotency key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// This execution created it on an earlier attempt (a retried Lambda): use it.
    Reuse { volume_id: String },
    /// Another execution is archiving the snapshot.
    Duplicate { execution: String, volume_id: String },
    /// Nobody is: create one.
    Create,
}

/// The first volume in creation order: the one that wins when two executions raced.
fn first_created<'a>(volumes: impl Iterator<Item = &'a ExistingVolume>) -> Option<&'a ExistingVolume> {
    volumes.min_by(|a, b| (a.create_time, &a.volume_id).cmp(&(b.create_time, &b.volume_id)))
}

/// Decides whether to create a volume (see [`Claim`]). Deleted and deleting volumes do not count:
/// they belong to archives that have ended.
pub fn claim_volume(existing: &[ExistingVolume], execution_id: &str) -> Claim {
    let live = || existing.iter().filter(|v| v.is_live());
    if let Some(own) = live().find(|v| v.execution.as_deref() == Some(execution_id)) {
        return Claim::Reuse { volume_id: own.volume_id.clone() };
    }
    match first_created(live()) {
        Some(other) => Claim::Duplicate {
            execution: other.execution.clone().unwrap_or_else(|| "an unknown execution".into()),
            volume_id: other.volume_id.clone(),
        },
        None => Claim::Create,
    }
}

/// After creating `own_volume_id`, with every live volume of the key listed again: `None` if this
/// execution won (its volume is the first created), else the winner, and this execution must
/// delete its own volume and stop. Both racers see the same list, so exactly one wins.
pub fn lost_race<'a>(existing: &'a [ExistingVolume], own_volume_id: &str) -> Option<&'a ExistingVolume> {
    first_created(existing.iter().filter(|v| v.is_live())).filter(|first| first.volume_id != own_volume_id)
}

/// The Batch job that archives the volume. The ASL passes these fields to `batch:submitJob.sync`
/// as they are: the job definition's command refers to the parameters as `Ref::volume_id`, …
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArchiveJob {
    /// The queue of the volume's AZ.
    pub queue: String,
    /// The snapshot's idempotency key: the same for every attempt, readable in the Batch console.
    pub name: String,
    /// `volume_id`, `snapshot_id`, `destination` (an `s3://` URL), `mode`, `execution_id`.
    pub parameters: BTreeMap<String, String>,
}

/// The names of [`ArchiveJob::parameters`]; the job definition's command uses them.
pub const JOB_PARAMETERS: &[&str] = &["volume_id", "snapshot_id", "destination", "mode", "execution_id"];

/// The archive job for `request`'s volume `volume_id`.
pub fn archive_job(request: &ArchiveRequest, volume_id: &str, execution_id: &str) -> Result<ArchiveJob, FlowError> {
    let queue = request.volume.as_ref().and_then(|v| v.job_queue.clone()).ok_or_else(|| FlowError::InvalidConfig {
        field: "job_queues",
        reason: format!(
            "names no Batch job queue for {}",
            request.volume.as_ref().map_or("the volume's AZ", |v| v.availability_zone.as_str())
        ),
    })?;
    let mode = request.mode.unwrap_or_default();
    let mode = serde_json::to_value(mode).expect("a unit enum serializes");
    let parameters = BTreeMap::from([
        ("volume_id".to_string(), volume_id.to_string()),
        ("snapshot_id".to_string(), request.snapshot_id.clone()),
        ("destination".to_string(), request.destination.to_string()),
        ("mode".to_string(), mode.as_str().expect("modes serialize as strings").to_string()),
        ("execution_id".to_string(), execution_id.to_string()),
    ]);
    Ok(ArchiveJob { queue, name: request.idempotency_key.clone(), parameters })
}

/// Output of `create-volume`, at `$.temporary_volume`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatedVolume {
    pub volume_id: String,
    pub availability_zone: String,
    pub job: ArchiveJob,
}

// ---------------------------------------------------------------------------------------------
// CheckVolume.

/// Input of `check-volume`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckVolumeInput {
    pub volume_id: String,
}

/// Whether a temporary volume in `state` can be attached now: `creating` is worth waiting for
/// (the ASL's Retry bounds the wait); anything but `available` will never be.
pub fn check_volume(volume_id: &str, state: &str) -> Result<(), FlowError> {
    match state {
        "available" => Ok(()),
        "creating" => Err(FlowError::VolumeNotReady { volume_id: volume_id.into(), state: state.into() }),
        _ => Err(FlowError::VolumeFailed { volume_id: volume_id.into(), state: state.into() }),
    }
}

// ---------------------------------------------------------------------------------------------
// DeleteVolume.

/// Input of `delete-volume`, used both on the way out of a successful archive and by the
/// cleanup path, where the document may hold anything from a raw event to a full state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeleteVolumeInput {
    pub execution_id: String,
    /// `$$.State.RetryCount`: how often the ASL has retried this state (forces the detach).
    #[serde(default)]
    pub retry_count: u32,
    /// The execution's document (`$`).
    pub state: Value,
}

/// What to do with one of the execution's volumes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Release {
    /// Gone already (deleted, or deleting).
    Gone,
    /// Not tagged as ours: never touched, whatever the document says.
    Foreign,
    Delete,
    /// Still attached: detach (forced once [`FORCE_DETACH_AFTER_RETRIES`] is reached), then
    /// fail `VolumeStillAttached` so the ASL retries the deletion after its interval.
    Detach { instance_id: String, force: bool },
    /// Detaching: wait for the next retry.
    Wait,
}

/// Decides how `deployment` gets rid of `volume` on the `retry_count`-th retry of the
/// DeleteVolume state.
pub fn release_volume(volume: &ExistingVolume, retry_count: u32, deployment: &str) -> Release {
    let force = retry_count >= FORCE_DETACH_AFTER_RETRIES;
    if !volume.is_live() {
        return Release::Gone;
    }
    if volume.managed_by.as_deref() != Some(deployment) {
        return Release::Foreign;
    }
    if let Some(attached) = volume.attachments.iter().find(|a| matches!(a.state.as_str(), "attaching" | "attached" | "busy")) {
        return Release::Detach { instance_id: attached.instance_id.clone(), force };
    }
    if let Some(detaching) = volume.attachments.iter().find(|a| a.state == "detaching") {
        return if force { Release::Detach { instance_id: detaching.instance_id.clone(), force } } else { Release::Wait };
    }
    match volume.state.as_str() {
        // Tried: a volume stuck in `creating` must not outlive the execution either; if EC2
        // refuses, the error is retried like a wait.
        "creating" => Release::Delete,
        // `in-use` without an attachment listed: the attachment is on its way out.
        "in-use" => Release::Wait,
        _ => Release::Delete,
    }
}

/// The volume ids the document names: `temporary_volume.volume_id`, once CreateVolume returned.
pub fn volume_ids_in(state: &Value) -> Vec<String> {
    state
        .pointer("/temporary_volume/volume_id")
        .and_then(Value::as_str)
        .map(|id| vec![id.to_string()])
        .unwrap_or_default()
}

/// Output of `delete-volume`, at `$.deleted_volumes`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeletedVolumes {
    /// Volumes this call deleted.
    pub deleted: Vec<String>,
    /// Volumes that were already gone.
    pub already_gone: Vec<String>,
}

// ---------------------------------------------------------------------------------------------
// ArchiveJob.

/// What the ASL keeps of `batch:submitJob.sync`'s job description, at `$.job`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobResult {
    pub job_id: String,
    pub status: String,
}

// ---------------------------------------------------------------------------------------------
// Verify.

/// Input of `verify`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifyInput {
    pub destination: S3Location,
}

/// Output of `verify`, at `$.verification`: the archive is complete.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verification {
    /// `s3://bucket/prefix`.
    pub location: String,
    pub manifest_key: String,
    pub objects: u64,
    /// Bytes stored, the manifest's objects summed.
    pub total_size: u64,
}

/// Checks that every object `manifest` lists exists in `listing` (key -> size, as ListObjectsV2
/// reported the prefix) with the manifest's size. A cheap check (no download): the worker
/// computed the checksums while uploading, and `backup-archiver verify` recomputes them.
pub fn verify_listing(
    destination: &S3Location,
    manifest: &Manifest,
    listing: &BTreeMap<String, u64>,
) -> Result<Verification, FlowError> {
    let incomplete = |problem: String| FlowError::ArchiveIncomplete { location: destination.to_string(), problem };
    for object in &manifest.objects {
        match listing.get(&object.key) {
            None => return Err(incomplete(format!("{} is missing", destination.url_of(&object.key)))),
            Some(&size) if size != object.size => {
                return Err(incomplete(format!(
                    "{} has {size} bytes, the manifest says {}",
                    destination.url_of(&object.key),
                    object.size
                )))
            }
            Some(_) => {}
        }
    }
    Ok(Verification {
        location: destination.to_string(),
        manifest_key: destination.key(MANIFEST_NAME),
        objects: manifest.objects.len() as u64,
        total_size: manifest.total_size(),
    })
}

/// The `ArchiveIncomplete` error for a prefix without a readable manifest.
pub fn missing_manifest(destination: &S3Location, why: &str) -> FlowError {
    FlowError::ArchiveIncomplete {
        location: destination.to_string(),
        problem: format!("{} {why}", destination.url_of(&destination.key(MANIFEST_NAME))),
    }
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

// ---------------------------------------------------------------------------------------------
// The whole document.

/// An execution's document once every state has run, in any flow: the plan's fields, the flow's
/// own steps `S` (each writes one field, its `ResultPath`), and the fields every flow shares.
/// Fields of states that have not run are absent, hence `Option`. `core/tests/asl.rs` checks every
/// JSONPath of each ASL file against its flow's document; [`FlowView`] reads one leniently where
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

/// The EBS flow's steps: the temporary volume, the archive job, the volume's deletion, the
/// archive's verification.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EbsArchiveSteps {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temporary_volume: Option<CreatedVolume>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<JobResult>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted_volumes: Option<DeletedVolumes>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification: Option<Verification>,
}

/// What the `Handoff` state keeps of StartExecution's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Handoff {
    pub execution_arn: String,
}

/// What the `notify`, `delete-volume` and `delete-table` Lambdas can read from any document the
/// cleanup path may carry, in any flow: a full state, a plan, or the raw trigger event of a Plan
/// that failed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FlowView {
    pub request: Option<ArchiveRequest>,
    /// The snapshot the raw event names, when there is no plan.
    pub event_snapshot_id: Option<String>,
    pub temporary_volume: Option<CreatedVolume>,
    /// The dump flow's temporary database, once RestoreDatabase returned.
    pub temporary_database: Option<crate::database::TemporaryDatabase>,
    /// What the dump flow's DeleteDatabase or Cleanup deleted.
    pub deleted_database: Option<crate::database::DeletedDatabase>,
    pub job: Option<JobResult>,
    pub verification: Option<Verification>,
    /// The RDS export flow's export, once started, and its files, once checked.
    pub export: Option<StartedExport>,
    pub exported: Option<ExportedFiles>,
    pub recovery_point_deletion: Option<RecoveryPointDeletion>,
    pub error: Option<StateError>,
    pub cleanup_error: Option<StateError>,
    /// DynamoDB flow: where the export read from, what it wrote, which temporary table went.
    pub table_source: Option<TableSource>,
    pub export_result: Option<ExportResult>,
    pub deleted_tables: Option<DeletedTables>,
}

impl FlowView {
    pub fn from_value(state: &Value) -> FlowView {
        fn field<T: serde::de::DeserializeOwned>(state: &Value, name: &str) -> Option<T> {
            state.get(name).and_then(|v| serde_json::from_value(v.clone()).ok())
        }
        let request = serde_json::from_value::<ArchiveRequest>(state.clone()).ok();
        let event_snapshot_id = if request.is_none() { trigger_snapshot_id(state) } else { None };
        FlowView {
            request,
            event_snapshot_id,
            temporary_volume: field(state, "temporary_volume"),
            temporary_database: field(state, "temporary_database"),
            deleted_database: field(state, "deleted_database"),
            job: field(state, "job"),
            verification: field(state, "verification"),
            export: field(state, "export"),
            exported: field(state, "exported"),
            recovery_point_deletion: field(state, "recovery_point_deletion"),
            error: field(state, "error"),
            cleanup_error: field(state, "cleanup_error"),
            table_source: field(state, "table_source"),
            export_result: field(state, "export_result"),
            deleted_tables: field(state, "deleted_tables"),
        }
    }

    /// The snapshot, from the plan or else from the event.
    pub fn snapshot_id(&self) -> Option<&str> {
        self.request.as_ref().map(|r| r.snapshot_id.as_str()).or(self.event_snapshot_id.as_deref())
    }
}

/// The snapshot a raw trigger event names (the input of an execution, or the document of a Plan
/// that failed), if it parses. Any fields a Catch added are ignored.
pub fn trigger_snapshot_id(state: &Value) -> Option<String> {
    let mut event = state.clone();
    for added in ["error", "cleanup_error", "notify_error", "deleted_volumes", "deleted_tables", "deleted_database", "notification"] {
        event.as_object_mut()?.remove(added);
    }
    let event = TriggerEvent::from_value(&event).ok()?;
    // Any vault is allowed here: this only names the snapshot in a failure message.
    let config = PlanConfig {
        destination: S3Location { bucket: "unused".into(), prefix: String::new() },
        allowed_vaults: vec![],
        availability_zones: vec![],
        db_methods: BTreeMap::new(),
        delete_recovery_point: false,
        volume_initialization_rate_mibps: None,
        job_queues: BTreeMap::new(),
    };
    match archive_target(&event, &config).ok()? {
        Targeting::Target(target) => Some(target.snapshot_id),
        Targeting::Skip(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEPLOYMENT: &str = "archiver-prod";
    use chrono::TimeZone;

    fn volume(id: &str, state: &str, second: u32, execution: &str) -> ExistingVolume {
        ExistingVolume {
            volume_id: id.into(),
            state: state.into(),
            create_time: Some(Utc.with_ymd_and_hms(2025, 3, 4, 2, 20, second).unwrap()),
            execution: Some(execution.into()),
            managed_by: Some(DEPLOYMENT.into()),
            attachments: vec![],
        }
    }

    #[test]
    fn client_token_is_short_stable_and_per_execution() {
        let key = "backup-job-8f3a2c61-4b7d-1e09-22c4-5d6e7f8a9b0c";
        let a = client_token(key, "arn:exec:1");
        assert_eq!(a, client_token(key, "arn:exec:1"));
        assert_ne!(a, client_token(key, "arn:exec:2"), "a replay gets a volume of its own");
        assert!(a.len() <= MAX_CLIENT_TOKEN_LEN && a.is_ascii(), "{a}");
        let long = "x".repeat(64);
        assert!(client_token(&long, "e").len() <= MAX_CLIENT_TOKEN_LEN);
    }

    #[test]
    fn claim_creates_when_nothing_is_live() {
        assert_eq!(claim_volume(&[], "e1"), Claim::Create);
        assert_eq!(claim_volume(&[volume("vol-1", "deleted", 0, "e0")], "e1"), Claim::Create);
    }

    #[test]
    fn claim_reuses_the_executions_own_volume() {
        let existing = [volume("vol-1", "available", 0, "e1")];
        assert_eq!(claim_volume(&existing, "e1"), Claim::Reuse { volume_id: "vol-1".into() });
    }

    #[test]
    fn claim_reports_another_executions_volume_as_a_duplicate() {
        let existing = [volume("vol-2", "in-use", 5, "e2"), volume("vol-1", "available", 1, "e0")];
        assert_eq!(claim_volume(&existing, "e1"), Claim::Duplicate { execution: "e0".into(), volume_id: "vol-1".into() });
    }

    #[test]
    fn exactly_one_of_two_racers_wins() {
        let both = [volume("vol-b", "creating", 3, "e2"), volume("vol-a", "creating", 3, "e1")];
        assert_eq!(lost_race(&both, "vol-a"), None, "same second: the smaller id wins");
        assert_eq!(lost_race(&both, "vol-b").map(|v| v.volume_id.as_str()), Some("vol-a"));
        let earlier = [volume("vol-b", "creating", 1, "e2"), volume("vol-a", "creating", 3, "e1")];
        assert_eq!(lost_race(&earlier, "vol-b"), None);
    }

    #[test]
    fn release_deletes_detaches_and_forces_in_turn() {
        let mut v = volume("vol-1", "in-use", 0, "e");
        v.attachments = vec![VolumeAttachment { instance_id: "i-1".into(), state: "attached".into() }];
        assert_eq!(release_volume(&v, 0, DEPLOYMENT), Release::Detach { instance_id: "i-1".into(), force: false });
        assert_eq!(
            release_volume(&v, FORCE_DETACH_AFTER_RETRIES, DEPLOYMENT),
            Release::Detach { instance_id: "i-1".into(), force: true }
        );
        v.attachments[0].state = "detaching".into();
        assert_eq!(release_volume(&v, 0, DEPLOYMENT), Release::Wait);
        assert_eq!(release_volume(&v, 5, DEPLOYMENT), Release::Detach { instance_id: "i-1".into(), force: true });
        v.attachments.clear();
        v.state = "available".into();
        assert_eq!(release_volume(&v, 0, DEPLOYMENT), Release::Delete);
        v.state = "error".into();
        assert_eq!(release_volume(&v, 0, DEPLOYMENT), Release::Delete, "a failed volume is deleted too");
        v.state = "deleting".into();
        assert_eq!(release_volume(&v, 0, DEPLOYMENT), Release::Gone);
        v.state = "creating".into();
        assert_eq!(release_volume(&v, 0, DEPLOYMENT), Release::Delete, "a volume stuck in creating is deleted too");
    }

    #[test]
    fn release_never_touches_a_volume_that_is_not_ours() {
        let mut v = volume("vol-1", "available", 0, "e");
        v.managed_by = None;
        assert_eq!(release_volume(&v, 0, DEPLOYMENT), Release::Foreign);
        v.attachments = vec![VolumeAttachment { instance_id: "i-1".into(), state: "attached".into() }];
        assert_eq!(release_volume(&v, 9, DEPLOYMENT), Release::Foreign, "not even detached");
        v.managed_by = Some("archiver-staging".into());
        assert_eq!(release_volume(&v, 0, DEPLOYMENT), Release::Foreign, "another deployment's volume");
    }

    #[test]
    fn check_volume_waits_only_for_creating() {
        assert_eq!(check_volume("vol-1", "available"), Ok(()));
        assert_eq!(check_volume("vol-1", "creating").unwrap_err().error_name(), errors::VOLUME_NOT_READY);
        for never in ["error", "deleting", "deleted", "in-use"] {
            assert_eq!(check_volume("vol-1", never).unwrap_err().error_name(), errors::VOLUME_FAILED, "{never}");
        }
    }

    #[test]
    fn volume_ids_come_from_the_temporary_volume_only() {
        let state = serde_json::json!({"temporary_volume": {"volume_id": "vol-1"}, "volume": {"availability_zone": "a"}});
        assert_eq!(volume_ids_in(&state), ["vol-1"]);
        assert!(volume_ids_in(&serde_json::json!({"detail": {}})).is_empty());
    }

    #[test]
    fn every_flow_error_has_a_known_name() {
        let all = [
            FlowError::InvalidConfig { field: "f", reason: "r".into() },
            FlowError::InvalidInput { field: "f", reason: "r".into() },
            FlowError::Duplicate { snapshot_id: "s".into(), execution: "e".into(), volume_id: "v".into() },
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

    #[test]
    fn flow_view_reads_a_raw_event_with_an_error() {
        let mut event: Value =
            serde_json::from_str(include_str!("../tests/fixtures/eventbridge-backup-job-completed-ebs.json")).unwrap();
        event["error"] = serde_json::json!({"Error": "SnapshotNotFound", "Cause": "gone"});
        let view = FlowView::from_value(&event);
        assert!(view.request.is_none());
        assert_eq!(view.snapshot_id(), Some("snap-0a1b2c3d4e5f67890"));
        assert_eq!(view.error.unwrap().error, "SnapshotNotFound");
    }

    #[test]
    fn flow_view_of_garbage_is_empty_not_an_error() {
        let view = FlowView::from_value(&serde_json::json!({"error": {"Error": "InvalidEvent"}, "x": 1}));
        assert_eq!(view.snapshot_id(), None);
        assert_eq!(view.error.unwrap().cause, None);
        assert_eq!(FlowView::from_value(&serde_json::json!("text")), FlowView::default());
    }
}
