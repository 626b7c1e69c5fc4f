//! The EBS archive flow (`state-machines/ebs-archive.asl.json`): the input and output of each of
//! its states, and the decisions its Lambdas make about the temporary volume, the Batch job and
//! the archive's verification.
//!
//! The execution's document grows state by state, each writing one field (its `ResultPath`):
//!
//! ```text
//! Plan                -> the whole document: PlanOutcome (ArchiveRequest fields + "outcome")
//! ChooseReadPath      -> (nothing)            `read_path`: volume (next three states) or direct
//! CreateVolume        -> temporary_volume     (CreatedVolume: the volume and its Batch job)
//! CheckVolume         -> (nothing)            fails VolumeNotReady until `available`, bounded
//! ArchiveJob          -> job                  (JobResult, from batch:submitJob.sync)
//! DeleteVolume        -> deleted_volumes      (DeletedVolumes)
//! ClaimSnapshot       -> direct_read          (DirectRead: the Batch job; the direct path)
//! DirectArchiveJob    -> job                  (JobResult; then Verify, as the volume path)
//! Verify              -> verification         (Verification)
//! DeleteRecoveryPoint -> recovery_point_deletion
//! Notify*             -> notification         (NotificationReport)
//! any Catch           -> error | cleanup_error | notify_error   (StateError)
//! ```
//!
//! [`FlowDocument`](crate::document::FlowDocument)`<`[`EbsArchiveSteps`]`>` is that document; `core/tests/asl.rs`
//! checks every JSONPath of the ASL
//! against it, so a renamed field fails a test instead of an execution.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::archive_job::{ArchiveJob, JobResult, Verification};
use crate::document::FlowError;
use crate::naming::{client_token, TAG_EXECUTION, TAG_IDEMPOTENCY_KEY, TAG_MANAGED_BY, TAG_SNAPSHOT_ID};
use crate::request::ArchiveRequest;

/// After this many retries of DeleteVolume on an attached volume, the detach is forced. The
/// worker detaches on its own when it ends normally (also on SIGTERM); a volume still attached
/// here belongs to a worker that was killed, and a plain detach of a volume nobody unmounted can
/// hang on a live instance. Two plain attempts (one ASL retry interval apart) give a detach that
/// was already under way the time to finish. Arbitrary, but bounded by the ASL's MaxAttempts.
pub const FORCE_DETACH_AFTER_RETRIES: u32 = 2;

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
pub fn volume_request(
    request: &ArchiveRequest,
    execution_id: &str,
    deployment: &str,
) -> Result<VolumeRequest, FlowError> {
    let volume = request.volume.as_ref().ok_or(FlowError::InvalidInput {
        field: "volume",
        reason: format!("is null: the plan is for a {} archive, not an EBS one", request.kind),
    })?;
    if execution_id.is_empty() {
        return Err(FlowError::InvalidInput { field: "execution_id", reason: "is empty".into() });
    }
    if deployment.is_empty() {
        return Err(FlowError::InvalidConfig {
            field: "deployment",
            reason: "is empty: volumes are tagged with it".into(),
        });
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

/// A volume as DescribeVolumes reports it, reduced to what the flow decides on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExistingVolume {
    pub volume_id: String,
    /// `creating | available | in-use | deleting | deleted | error`.
    pub state: String,
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

/// The volume an earlier attempt of this execution created (a retried Lambda whose answer was
/// lost), given the volumes tagged with the snapshot's idempotency key: reuse it rather than make
/// a second. Deleted and deleting volumes do not count. Another execution's volume is no
/// concern here: the claim ([`crate::claim`]) already decided that this execution archives.
pub fn own_volume<'a>(existing: &'a [ExistingVolume], execution_id: &str) -> Option<&'a ExistingVolume> {
    existing.iter().filter(|v| v.is_live()).find(|v| v.execution.as_deref() == Some(execution_id))
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
    let mut parameters = job_parameters(request, execution_id);
    parameters.insert("volume_id".to_string(), volume_id.to_string());
    Ok(ArchiveJob { queue, name: request.idempotency_key.clone(), parameters })
}

/// The parameters both read paths' jobs take: [`DIRECT_JOB_PARAMETERS`].
fn job_parameters(request: &ArchiveRequest, execution_id: &str) -> BTreeMap<String, String> {
    let mode = request.mode.unwrap_or_default();
    let mode = serde_json::to_value(mode).expect("a unit enum serializes");
    BTreeMap::from([
        ("snapshot_id".to_string(), request.snapshot_id.clone()),
        ("destination".to_string(), request.destination.to_string()),
        ("mode".to_string(), mode.as_str().expect("modes serialize as strings").to_string()),
        ("execution_id".to_string(), execution_id.to_string()),
    ])
}

// ---------------------------------------------------------------------------------------------
// ClaimSnapshot (the direct read path).

/// Input of the `claim-snapshot` Lambda: the plan and the execution that claims the snapshot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClaimSnapshotInput {
    pub request: ArchiveRequest,
    pub execution_id: String,
}

/// The names of the direct path's [`ArchiveJob::parameters`]: the volume job's but the volume.
pub const DIRECT_JOB_PARAMETERS: &[&str] = &["snapshot_id", "destination", "mode", "execution_id"];

/// The job that reads `request`'s snapshot through the EBS direct APIs, in the queue the plan
/// chose (`job_queue`: any AZ's, nothing ties the job to one).
pub fn direct_job(request: &ArchiveRequest, execution_id: &str) -> Result<ArchiveJob, FlowError> {
    let queue = request.job_queue.clone().ok_or(FlowError::InvalidConfig {
        field: "job_queues",
        reason: "names no Batch job queue for the direct read path's job".into(),
    })?;
    Ok(ArchiveJob { queue, name: request.idempotency_key.clone(), parameters: job_parameters(request, execution_id) })
}

/// Output of `claim-snapshot`, at `$.direct_read`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectRead {
    pub job: ArchiveJob,
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
    /// Set by `Cleanup` only: the execution failed, so it releases its claim on the snapshot
    /// ([`crate::claim`]) for a replay; `DeleteVolume`, on the way to Verify, keeps it (and
    /// names no such field: absent is false).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub release_claim: bool,
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
    Detach {
        instance_id: String,
        force: bool,
    },
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
    if let Some(attached) =
        volume.attachments.iter().find(|a| matches!(a.state.as_str(), "attaching" | "attached" | "busy"))
    {
        return Release::Detach { instance_id: attached.instance_id.clone(), force };
    }
    if let Some(detaching) = volume.attachments.iter().find(|a| a.state == "detaching") {
        return if force {
            Release::Detach { instance_id: detaching.instance_id.clone(), force }
        } else {
            Release::Wait
        };
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

/// The EBS flow's steps: the temporary volume, the archive job, the volume's deletion, the
/// archive's verification.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EbsArchiveSteps {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temporary_volume: Option<CreatedVolume>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direct_read: Option<DirectRead>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<JobResult>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted_volumes: Option<DeletedVolumes>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification: Option<Verification>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::errors::{self, NamedError};

    const DEPLOYMENT: &str = "archiver-prod";

    fn volume(id: &str, state: &str, execution: &str) -> ExistingVolume {
        ExistingVolume {
            volume_id: id.into(),
            state: state.into(),
            execution: Some(execution.into()),
            managed_by: Some(DEPLOYMENT.into()),
            attachments: vec![],
        }
    }

    #[test]
    fn a_retried_attempt_reuses_its_own_live_volume_only() {
        assert_eq!(own_volume(&[], "e1"), None);
        let existing = [volume("vol-0", "in-use", "e0"), volume("vol-1", "available", "e1")];
        assert_eq!(own_volume(&existing, "e1").map(|v| v.volume_id.as_str()), Some("vol-1"));
        assert_eq!(own_volume(&[volume("vol-1", "deleted", "e1")], "e1"), None);
        assert_eq!(own_volume(&[volume("vol-0", "available", "e0")], "e1"), None, "another execution's is not ours");
    }

    #[test]
    fn release_deletes_detaches_and_forces_in_turn() {
        let mut v = volume("vol-1", "in-use", "e");
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
        let mut v = volume("vol-1", "available", "e");
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
        let state =
            serde_json::json!({"temporary_volume": {"volume_id": "vol-1"}, "volume": {"availability_zone": "a"}});
        assert_eq!(volume_ids_in(&state), ["vol-1"]);
        assert!(volume_ids_in(&serde_json::json!({"detail": {}})).is_empty());
    }

    fn planned(read_path: &str) -> ArchiveRequest {
        let event = crate::event::TriggerEvent::from_json(include_bytes!(
            "../../tests/fixtures/eventbridge-backup-job-completed-ebs.json"
        ))
        .unwrap();
        let config: crate::request::PlanConfig = serde_json::from_value(serde_json::json!({
            "destination": {"bucket": "example-archive", "prefix": "backups"},
            "availability_zones": ["eu-west-1a"],
            "job_queues": {"eu-west-1a": "queue-a"},
            "read_path": read_path
        }))
        .unwrap();
        let facts = crate::request::SnapshotFacts::default();
        match crate::request::plan_archive(&event, &facts, &config, "2025-03-04T03:00:00Z".parse().unwrap()) {
            Ok(crate::request::PlanOutcome::Planned(request)) => *request,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_direct_job_is_the_volume_job_without_the_volume() {
        let execution = "arn:aws:states:eu-west-1:111122223333:execution:ebs-archive:e1";
        let direct = direct_job(&planned("direct"), execution).unwrap();
        let volume = archive_job(&planned("volume"), "vol-1", execution).unwrap();
        assert_eq!(direct.queue, "queue-a");
        assert_eq!(direct.name, volume.name, "one idempotency key, whichever the path");
        let names: Vec<&str> = direct.parameters.keys().map(String::as_str).collect();
        let mut expected = DIRECT_JOB_PARAMETERS.to_vec();
        expected.sort_unstable();
        assert_eq!(names, expected);
        let mut without_volume = volume.parameters.clone();
        assert_eq!(without_volume.remove("volume_id").as_deref(), Some("vol-1"));
        assert_eq!(direct.parameters, without_volume);
    }

    #[test]
    fn a_direct_plan_without_a_queue_is_a_configuration_error() {
        let request = ArchiveRequest { job_queue: None, ..planned("direct") };
        let error = direct_job(&request, "e").unwrap_err();
        assert_eq!(error.error_name(), errors::INVALID_CONFIG);
        assert!(error.to_string().contains("job_queues"), "{error}");
    }
}
