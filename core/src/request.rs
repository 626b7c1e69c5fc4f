//! The `plan` step: turns a [`TriggerEvent`] into one [`ArchiveRequest`], the input and output
//! type of every state machine, or says why there is nothing to archive.
//!
//! Planning happens in two halves around the one AWS call the `plan` Lambda makes:
//!
//! 1. [`archive_target`] reads the event alone: which snapshot, of which kind, from which job
//!    and vault, or a [`SkipReason`] when the event is not worth a lookup (a FAILED job, an EFS
//!    backup, a vault outside the allowed list).
//! 2. The Lambda describes that snapshot (size, encryption, engine, state) into
//!    [`SnapshotFacts`] and calls [`plan_archive`], which makes every decision: whether the
//!    snapshot is ready, which flow and method, where the archive goes, which AZ and volume
//!    performance, which idempotency key. `plan_archive` with `SnapshotFacts::default()` is the
//!    CLI's offline dry run.
//!
//! Nothing here reads a clock, the environment or a random source: the caller passes `now`,
//! the configuration and the facts, so every decision is a tested function of its inputs.
//!
//! A skip is an outcome, not an error: an EFS backup reaching the rule is expected, and an
//! error would mark the execution failed and page someone. Errors are for input that is wrong
//! ([`PlanError`]), and each maps to a stable name in [`crate::errors`].

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::arn::Arn;
use crate::errors::{self, NamedError};
use crate::event::{
    BackupJobDetail, BackupVaultNotification, CopyJobDetail, EventBridgeEvent, EventError, JobState, ManualInput,
    ManualSnapshot, RdsEventDetail, RdsNotification, SnsEvent, SnsMessage, TriggerEvent,
};
use crate::flows::Flow;
use crate::manifest::ModeRequest;
use crate::naming::{self, IdempotencyBasis};
use crate::resource::{supported_methods, DbMethod, ResourceKind};
use crate::s3_location::S3Location;

/// Which kind of trigger started the archive, for the notification and for `status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TriggerKind {
    /// An AWS Backup backup job (EventBridge or SNS).
    BackupJob,
    /// An AWS Backup copy job into one of our vaults.
    CopyJob,
    /// An RDS snapshot event (EventBridge or SNS).
    RdsEvent,
    /// `{"snapshot": …}`.
    Manual,
}

// ---------------------------------------------------------------------------------------------
// EBS volume decisions.

/// gp3 limits, valid in every region and partition (some regions now allow more; these are the
/// values every region accepts).
/// <https://docs.aws.amazon.com/ebs/latest/userguide/general-purpose.html#gp3-ebs-volume-type>
pub const GP3_BASELINE_IOPS: u32 = 3_000;
pub const GP3_BASELINE_THROUGHPUT_MIBPS: u32 = 125;
pub const GP3_MAX_IOPS: u32 = 16_000;
pub const GP3_MAX_THROUGHPUT_MIBPS: u32 = 1_000;
/// IOPS above the baseline cost at most 500 per GiB of volume size.
pub const GP3_MAX_IOPS_PER_GIB: u32 = 500;
/// Throughput above the baseline needs 4 IOPS per MiB/s (0.25 MiB/s per provisioned IOPS).
pub const GP3_IOPS_PER_MIBPS: u32 = 4;
/// The provisioned rate for volume initialization: 100 to 300 MiB/s.
/// <https://docs.aws.amazon.com/ebs/latest/userguide/initalize-volume.html>
pub const VOLUME_INITIALIZATION_RATE_MIBPS: std::ops::RangeInclusive<u32> = 100..=300;

const GIB: u64 = 1024 * 1024 * 1024;

/// IOPS and throughput of a temporary gp3 volume.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumePerformance {
    pub iops: u32,
    pub throughput_mibps: u32,
}

impl VolumePerformance {
    /// What every gp3 volume gets for free; used when the size is unknown, because anything
    /// above it may be invalid for a small volume.
    pub const BASELINE: VolumePerformance =
        VolumePerformance { iops: GP3_BASELINE_IOPS, throughput_mibps: GP3_BASELINE_THROUGHPUT_MIBPS };
}

/// The gp3 performance for reading a whole volume of `size_bytes` once, as fast as gp3 allows.
///
/// A full archive is one long sequential read, so throughput is what matters: the target is
/// gp3's maximum throughput, with just the IOPS that throughput requires (4 per MiB/s), since
/// extra IOPS would cost without speeding a sequential read. Small volumes cannot carry that
/// (IOPS are capped at 500 per GiB), so they get the most their size allows, never less than
/// the free baseline. The volume lives for minutes to hours and is billed per second, so the
/// premium is small against a faster archive and a shorter-lived volume.
pub fn volume_performance(size_bytes: u64) -> VolumePerformance {
    let size_gib = size_bytes.div_ceil(GIB).max(1);
    let max_iops = size_gib.saturating_mul(GP3_MAX_IOPS_PER_GIB.into()).min(GP3_MAX_IOPS.into()) as u32;
    let throughput_mibps =
        (max_iops / GP3_IOPS_PER_MIBPS).clamp(GP3_BASELINE_THROUGHPUT_MIBPS, GP3_MAX_THROUGHPUT_MIBPS);
    let iops = (throughput_mibps * GP3_IOPS_PER_MIBPS).max(GP3_BASELINE_IOPS);
    VolumePerformance { iops, throughput_mibps }
}

/// The AZ for a job's temporary volume and Batch job: deterministic, so a retried or duplicated
/// execution reuses the same AZ (and finds the volume its first attempt created with the same
/// client token), and spread evenly across `availability_zones`.
///
/// This is rendezvous (highest-random-weight) hashing: every AZ gets a score from SHA-256 of the
/// key and its name, and the best score wins. Unlike `hash % len`, the answer does not depend
/// on the order of the list, and removing an AZ moves only the keys that were on it.
pub fn choose_availability_zone<'a>(idempotency_key: &str, availability_zones: &'a [String]) -> Option<&'a str> {
    availability_zones
        .iter()
        .map(|az| {
            let mut hasher = Sha256::new();
            hasher.update(idempotency_key.as_bytes());
            hasher.update([0]);
            hasher.update(az.as_bytes());
            let digest = hasher.finalize();
            let score = u64::from_be_bytes(digest[..8].try_into().expect("SHA-256 has 32 bytes"));
            (score, az.as_str())
        })
        .max()
        .map(|(_, az)| az)
}

// ---------------------------------------------------------------------------------------------
// The request.

/// The temporary EBS volume an archive is read from (CreateVolume's parameters).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeSpec {
    /// Where the volume and the Batch job that reads it must both be.
    pub availability_zone: String,
    /// Always `gp3`: the only type whose throughput can be bought separately from its size.
    pub volume_type: String,
    pub iops: u32,
    pub throughput_mibps: u32,
    /// How fast EBS fetches the snapshot's blocks (`null`: EBS's default, uneven rate).
    pub initialization_rate_mibps: Option<u32>,
    /// The Batch job queue whose compute runs in `availability_zone` (`null` when the
    /// configuration names no queues, as in the CLI's dry run): a volume can only be attached to
    /// an instance in its own AZ.
    #[serde(default)]
    pub job_queue: Option<String>,
}

/// How an EBS archive reads its snapshot: the deployment's `ReadPath` (infra/template.yaml), the
/// ASL's `$.read_path` (state `ChooseReadPath`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReadPath {
    /// A temporary gp3 volume restored from the snapshot and attached to the worker's instance in
    /// its AZ: files or raw.
    #[default]
    Volume,
    /// The snapshot's written blocks through the EBS direct APIs (ListSnapshotBlocks,
    /// GetSnapshotBlock): no volume, no AZ, no lazy loading; raw only, so a run that asks for
    /// files mode takes the volume path.
    Direct,
}

/// Options that change what a flow does after archiving.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ArchiveOptions {
    /// Delete the recovery point once the archive is verified. True only when configured *and*
    /// the snapshot is an AWS Backup recovery point in a vault: a manual or RDS-event snapshot is
    /// someone else's, and is never deleted.
    pub delete_recovery_point: bool,
}

/// The state machines' input and output: one snapshot to archive, with every decision made.
///
/// Field names are an interface: the ASL files use them verbatim (`$.snapshot_id`,
/// `$.volume.availability_zone`), so they change only by adding fields. Every field is always
/// present, `null` when unknown, because a JSONPath to a missing field fails the state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArchiveRequest {
    pub kind: ResourceKind,
    pub flow: Flow,
    /// `flow`'s state machine ([`Flow::state_machine`]): where the ASL's `Handoff` state sends
    /// a trigger that reached another flow.
    pub state_machine: String,
    pub trigger: TriggerKind,
    /// Derived from the backup job (else the snapshot): the execution name and every client
    /// token, so a duplicate event cannot make a second archive.
    pub idempotency_key: String,
    /// The volume, DB instance, cluster or table that was backed up.
    pub source_resource_arn: Option<Arn>,
    /// Its id (`vol-…`, DB identifier, table name): a segment of the archive's key.
    pub source_resource_id: String,
    /// `snap-…`, the RDS snapshot identifier, or the DynamoDB backup id.
    pub snapshot_id: String,
    pub snapshot_arn: Option<Arn>,
    pub vault_name: Option<String>,
    pub recovery_point_arn: Option<Arn>,
    pub backup_job_id: Option<String>,
    pub copy_job_id: Option<String>,
    /// The source's size: the EBS volume size, the RDS allocated storage, the DynamoDB backup size.
    pub snapshot_size_bytes: Option<u64>,
    pub encrypted: Option<bool>,
    pub kms_key_id: Option<String>,
    /// The RDS engine (`postgres`, `aurora-mysql`, …), which decided `method`.
    pub engine: Option<String>,
    /// Databases only.
    pub method: Option<DbMethod>,
    /// EBS only: what the worker is asked to do with each filesystem.
    pub mode: Option<ModeRequest>,
    /// Bucket and key prefix of this archive (see [`naming::archive_prefix`]).
    pub destination: S3Location,
    /// The date in the key: the snapshot's, not the day the archive ran.
    pub snapshot_date: NaiveDate,
    /// EBS only: how the snapshot is read. `volume` when the plan predates the setting.
    #[serde(default)]
    pub read_path: Option<ReadPath>,
    /// EBS read through a volume only.
    pub volume: Option<VolumeSpec>,
    /// RDS export only (see [`naming::export_task_identifier`]).
    pub export_task_identifier: Option<String>,
    /// The Batch job queue of a job that is not tied to an AZ: the dump flow's worker reaches its
    /// database over the network, the direct read path's reads its snapshot through the EBS direct
    /// APIs. `null` for other flows (the volume path's is `volume.job_queue`) and where the
    /// configuration names no queues.
    #[serde(default)]
    pub job_queue: Option<String>,
    pub options: ArchiveOptions,
    pub planned_at: DateTime<Utc>,
}

/// What the `plan` Lambda returns: `{"outcome": "planned", …request fields…}` or
/// `{"outcome": "skipped", "reason": {"code": …}, "message": …, "attention": …, "error": …}`.
/// The ASL branches on `$.outcome` (and on `$.attention` for skips); later states read the
/// request's fields at the top level.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum PlanOutcome {
    Planned(Box<ArchiveRequest>),
    Skipped {
        reason: SkipReason,
        message: String,
        /// [`SkipReason::needs_attention`]: the execution fails and the failure is notified.
        attention: bool,
        /// The stable error name the execution fails with when `attention` is set.
        error: String,
    },
}

impl PlanOutcome {
    pub fn skipped(reason: SkipReason) -> Self {
        PlanOutcome::Skipped {
            message: reason.to_string(),
            attention: reason.needs_attention(),
            error: reason.error_name().to_string(),
            reason,
        }
    }
}

/// Why a well-formed event leads to no archive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "code", rename_all = "snake_case")]
pub enum SkipReason {
    /// The job ended in another state than COMPLETED: there is no recovery point to archive.
    JobNotCompleted { state: JobState },
    /// EFS, EC2, FSx, S3, …: not handled by any flow.
    UnsupportedResourceType { resource_type: String },
    /// The recovery point is not a snapshot we can read (an EBS recovery point in a logically
    /// air-gapped vault, an AMI).
    UnsupportedRecoveryPoint { recovery_point_arn: String },
    /// The vault is not in `allowed_vaults`.
    VaultNotAllowed { vault_name: String },
    /// A copy into a vault of another region or account: archive it where it lands.
    CopyLandsElsewhere { destination_vault_arn: String },
    /// An RDS event that does not mean "a snapshot is ready" (an export finished, a snapshot is
    /// being created, an instance event).
    NotSnapshotReady { event_id: String },
    /// An AWS Backup vault notification about something else than a backup job.
    NotBackupJob { event_type: String },
    /// An RDS engine for which neither export nor dump works (Oracle, SQL Server, Db2, …).
    UnsupportedEngine { engine: String },
    /// A valid AWS Backup event that starts no archive (a restore job, a recovery point's state,
    /// a vault notification in a state the trigger parser does not know): the relay's, not ours.
    NotArchiveTrigger { event: String },
}

impl SkipReason {
    /// Whether someone must hear of this skip. Skips of events that are simply not about a ready
    /// snapshot (a FAILED job, another vault, an RDS "snapshot creating" event) are expected
    /// noise on broad triggers and end quietly. A resource that someone asked us to archive,
    /// by a rule or by hand, but that no flow can read is a gap in their archive: the execution
    /// fails and the failure is notified.
    pub fn needs_attention(&self) -> bool {
        match self {
            SkipReason::UnsupportedResourceType { .. }
            | SkipReason::UnsupportedRecoveryPoint { .. }
            | SkipReason::UnsupportedEngine { .. } => true,
            SkipReason::JobNotCompleted { .. }
            | SkipReason::VaultNotAllowed { .. }
            | SkipReason::CopyLandsElsewhere { .. }
            | SkipReason::NotSnapshotReady { .. }
            | SkipReason::NotBackupJob { .. }
            | SkipReason::NotArchiveTrigger { .. } => false,
        }
    }
}

/// The name of an execution that ends on this skip.
impl NamedError for SkipReason {
    fn error_name(&self) -> &'static str {
        if self.needs_attention() {
            errors::NOT_ARCHIVABLE
        } else {
            errors::NOTHING_TO_ARCHIVE
        }
    }
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SkipReason::JobNotCompleted { state } => write!(f, "the job is {state}, not COMPLETED: nothing to archive"),
            SkipReason::UnsupportedResourceType { resource_type } => {
                write!(f, "resource type {resource_type} is not archived (only EBS, RDS, Aurora and DynamoDB are)")
            }
            SkipReason::UnsupportedRecoveryPoint { recovery_point_arn } => {
                write!(f, "recovery point {recovery_point_arn} is not a snapshot this project can read")
            }
            SkipReason::VaultNotAllowed { vault_name } => {
                write!(f, "vault {vault_name} is not in the configured allowed_vaults")
            }
            SkipReason::CopyLandsElsewhere { destination_vault_arn } => {
                write!(f, "the copy lands in {destination_vault_arn}, in another region or account: archive it there")
            }
            SkipReason::NotSnapshotReady { event_id } => {
                write!(f, "{event_id} does not mean a snapshot is ready (expected one of {})", ready_event_list())
            }
            SkipReason::NotBackupJob { event_type } => {
                write!(f, "AWS Backup notification of type {event_type}, not BACKUP_JOB")
            }
            SkipReason::UnsupportedEngine { engine } => {
                write!(f, "engine {engine} can be neither exported nor dumped")
            }
            SkipReason::NotArchiveTrigger { event } => write!(f, "{event} starts no archive"),
        }
    }
}

/// RDS events that mean "this snapshot now exists and is available".
/// <https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/USER_Events.Messages.html>
pub const DB_SNAPSHOT_READY_EVENTS: &[&str] = &[
    "RDS-EVENT-0042", // Manual snapshot created
    "RDS-EVENT-0091", // Automated snapshot created
];
/// <https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/USER_Events.Messages.html>
pub const CLUSTER_SNAPSHOT_READY_EVENTS: &[&str] = &[
    "RDS-EVENT-0075", // Manual cluster snapshot created
    "RDS-EVENT-0169", // Automated cluster snapshot created
];

/// The `SnapshotType` to describe an RDS snapshot by id with: RDS names automated snapshots
/// `rds:<instance>-<date>`, and DescribeDBSnapshots and DescribeDBClusterSnapshots find an
/// automated snapshot by id only when asked for that type. `None`: the default types do.
/// <https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_DescribeDBSnapshots.html>
pub fn rds_snapshot_type(snapshot_id: &str) -> Option<&'static str> {
    snapshot_id.starts_with("rds:").then_some("automated")
}

fn ready_event_list() -> String {
    DB_SNAPSHOT_READY_EVENTS.iter().chain(CLUSTER_SNAPSHOT_READY_EVENTS).copied().collect::<Vec<_>>().join(", ")
}

/// The deployment's choices, passed in by the Lambda (which reads them from its environment).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanConfig {
    /// Bucket and base prefix of every archive.
    pub destination: S3Location,
    /// Vault names whose recovery points are archived; empty means every vault. The EventBridge
    /// rule filters vaults already: this list guards against a rule edited by hand and against
    /// SNS topics, which cannot filter.
    #[serde(default)]
    pub allowed_vaults: Vec<String>,
    /// The AZs that have a Batch job queue for the worker: the temporary volume is created in
    /// one of them.
    #[serde(default)]
    pub availability_zones: Vec<String>,
    /// Method per RDS engine (`{"postgres": "dump"}`). Engines not listed use export where
    /// supported, else dump.
    #[serde(default)]
    pub db_methods: BTreeMap<String, DbMethod>,
    /// Delete a recovery point after its archive is verified.
    #[serde(default)]
    pub delete_recovery_point: bool,
    /// EBS's provisioned rate for volume initialization, 100-300 MiB/s; `None` for EBS's default.
    #[serde(default)]
    pub volume_initialization_rate_mibps: Option<u32>,
    /// The Batch job queue of each AZ in `availability_zones` (`{"eu-west-1a": "arn:…"}`). Empty
    /// only where no job is submitted (the CLI's dry run); otherwise every AZ needs one.
    #[serde(default)]
    pub job_queues: BTreeMap<String, String>,
    /// Where this deployment runs. AWS Backup sends a Copy Job State Change to the copy's source
    /// account only; an organisation's workload accounts forward the event, `account` and `region`
    /// unchanged, to the central account's bus (infra/workload.yaml). With `home` set, a copy counts
    /// as landing here when its destination vault is in this account and Region, whoever sent the
    /// event; without it, when the destination is the event's own account and Region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub home: Option<Home>,
    /// How EBS snapshots are read: through a temporary volume (the default) or the EBS direct APIs.
    #[serde(default)]
    pub read_path: ReadPath,
}

/// An account and a Region.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Home {
    pub account: String,
    pub region: String,
}

impl PlanConfig {
    /// Checks what can be checked without an event, so a bad deployment fails on its first
    /// event with a message that names the setting.
    pub fn validate(&self) -> Result<(), PlanError> {
        if let Some(rate) = self.volume_initialization_rate_mibps {
            if !VOLUME_INITIALIZATION_RATE_MIBPS.contains(&rate) {
                return Err(PlanError::config(
                    "volume_initialization_rate_mibps",
                    format!("{rate} is outside 100-300 MiB/s"),
                ));
            }
        }
        if let Some(empty) = self.allowed_vaults.iter().find(|v| v.trim().is_empty()) {
            return Err(PlanError::config("allowed_vaults", format!("contains an empty name ({empty:?})")));
        }
        for (i, az) in self.availability_zones.iter().enumerate() {
            if az.trim().is_empty() {
                return Err(PlanError::config("availability_zones", "contains an empty name"));
            }
            if self.availability_zones[..i].contains(az) {
                return Err(PlanError::config("availability_zones", format!("lists {az} twice")));
            }
        }
        if !self.job_queues.is_empty() {
            if let Some(az) = self.availability_zones.iter().find(|az| !self.job_queues.contains_key(*az)) {
                return Err(PlanError::config(
                    "job_queues",
                    format!("has no queue for {az}, one of the availability_zones"),
                ));
            }
            if let Some((az, _)) = self.job_queues.iter().find(|(_, queue)| queue.trim().is_empty()) {
                return Err(PlanError::config("job_queues", format!("names an empty queue for {az}")));
            }
        }
        for (engine, method) in &self.db_methods {
            let possible = supported_methods(engine);
            if possible.is_empty() {
                return Err(PlanError::config(
                    "db_methods",
                    format!("engine {engine:?} can be neither exported nor dumped"),
                ));
            }
            if !possible.contains(method) {
                return Err(PlanError::config(
                    "db_methods",
                    format!("engine {engine:?} cannot be archived by {method}"),
                ));
            }
        }
        Ok(())
    }

    /// Whether recovery points of `vault_name` are archived.
    pub fn allows_vault(&self, vault_name: &str) -> bool {
        self.allowed_vaults.is_empty() || self.allowed_vaults.iter().any(|v| v == vault_name)
    }
}

/// What the `plan` Lambda learned by describing the snapshot (DescribeSnapshots,
/// DescribeDBSnapshots, DescribeDBClusterSnapshots, DescribeBackup, DescribeBackupJob). Every
/// field is optional: the planner says which missing one it needed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SnapshotFacts {
    /// The snapshot's state as the describe call spells it (`completed`, `pending`,
    /// `available`, `creating`, `AVAILABLE`, …); see [`snapshot_readiness`].
    pub status: Option<String>,
    pub size_bytes: Option<u64>,
    pub encrypted: Option<bool>,
    pub kms_key_id: Option<String>,
    /// RDS only.
    pub engine: Option<String>,
    /// `VolumeId`, `DBInstanceIdentifier`, `DBClusterIdentifier`, table name: needed when the
    /// event named only the snapshot.
    pub source_resource_id: Option<String>,
    /// From DescribeBackupJob, for AWS Backup's SNS notifications, which name no vault.
    pub vault_name: Option<String>,
    /// When the snapshot was taken: dates the key when the event did not.
    pub created_at: Option<DateTime<Utc>>,
}

/// Whether a snapshot in a given state can be archived now, later, or never.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readiness {
    Ready,
    /// Still being created or copied: the `plan` step fails with a retryable error.
    NotYet,
    /// Failed, deleted, in the recycle bin: retrying will not help.
    Unusable,
}

/// Reads the states of EBS snapshots (`pending | completed | error | recoverable | recovering`),
/// RDS snapshots (`creating | available | copying | …`) and DynamoDB backups
/// (`CREATING | AVAILABLE | DELETED`), without regard to case.
pub fn snapshot_readiness(status: &str) -> Readiness {
    match status.to_ascii_lowercase().as_str() {
        "completed" | "available" => Readiness::Ready,
        "pending" | "creating" | "copying" | "recovering" | "in_progress" => Readiness::NotYet,
        _ => Readiness::Unusable,
    }
}

/// Why an event could not be planned. Its [`NamedError`] name is what the Lambda reports.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("invalid event: {0}")]
    InvalidEvent(#[from] EventError),
    #[error("invalid plan configuration: `{field}` {reason}")]
    InvalidConfig { field: &'static str, reason: String },
    #[error("`{field}` is unknown: {hint}")]
    LookupIncomplete { field: &'static str, hint: &'static str },
    #[error("`method`: {method} is not possible for engine {engine} (possible: {possible})")]
    MethodNotSupported { engine: String, method: DbMethod, possible: String },
    #[error("snapshot {snapshot_id} is {status}, not ready yet")]
    SnapshotNotReady { snapshot_id: String, status: String },
    #[error("snapshot {snapshot_id} is {status} and cannot be archived")]
    SnapshotUnusable { snapshot_id: String, status: String },
}

impl PlanError {
    fn config(field: &'static str, reason: impl Into<String>) -> Self {
        PlanError::InvalidConfig { field, reason: reason.into() }
    }

    /// The input field or setting at fault, where there is one.
    pub fn field(&self) -> Option<&str> {
        match self {
            PlanError::InvalidEvent(e) => Some(e.field()),
            PlanError::InvalidConfig { field, .. } | PlanError::LookupIncomplete { field, .. } => Some(field),
            PlanError::MethodNotSupported { .. } => Some("method"),
            PlanError::SnapshotNotReady { .. } | PlanError::SnapshotUnusable { .. } => None,
        }
    }
}

impl NamedError for PlanError {
    fn error_name(&self) -> &'static str {
        match self {
            PlanError::InvalidEvent(_) | PlanError::MethodNotSupported { .. } => errors::INVALID_EVENT,
            PlanError::InvalidConfig { .. } => errors::INVALID_CONFIG,
            PlanError::LookupIncomplete { .. } => errors::LOOKUP_INCOMPLETE,
            PlanError::SnapshotNotReady { .. } => errors::SNAPSHOT_NOT_READY,
            PlanError::SnapshotUnusable { .. } => errors::SNAPSHOT_UNUSABLE,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Step 1: what the event names.

/// The snapshot an event names and what the event says about it, before any lookup.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ArchiveTarget {
    pub trigger: TriggerKind,
    pub kind: ResourceKind,
    /// What the Lambda describes: `snap-…`, an RDS snapshot identifier, a DynamoDB backup id.
    pub snapshot_id: String,
    pub snapshot_arn: Option<Arn>,
    pub source_resource_arn: Option<Arn>,
    pub source_resource_id: Option<String>,
    pub recovery_point_arn: Option<Arn>,
    /// `None` when the event does not say (AWS Backup's SNS prose): the Lambda looks it up.
    pub vault_name: Option<String>,
    pub backup_job_id: Option<String>,
    pub copy_job_id: Option<String>,
    pub size_bytes: Option<u64>,
    /// When the job started or the snapshot was taken, as the event says.
    pub snapshot_time: Option<DateTime<Utc>>,
    /// When the event was sent.
    pub event_time: Option<DateTime<Utc>>,
    pub requested_method: Option<DbMethod>,
    pub mode: Option<ModeRequest>,
}

impl ArchiveTarget {
    /// True for recovery points that live in a vault (and so face `allowed_vaults`).
    pub fn in_vault(&self) -> bool {
        matches!(self.trigger, TriggerKind::BackupJob | TriggerKind::CopyJob)
    }

    /// The key every archive of this target shares ([`naming::idempotency_key`]): the name of
    /// the execution a trigger or a handoff starts, so that a redelivered trigger starts nothing.
    pub fn idempotency_key(&self) -> String {
        naming::idempotency_key(self.idempotency_basis())
    }

    /// The flow whose state machine a trigger of this target enters by: the one its kind archives
    /// with (RDS and Aurora: the export, unless the trigger asks for a dump). Plan may still hand
    /// the trigger on (a deployment that dumps the engine); entering here only saves that hop.
    pub fn entry_flow(&self) -> Flow {
        match (self.kind, self.requested_method) {
            (ResourceKind::Ebs, _) => Flow::EbsArchive,
            (ResourceKind::DynamoDb, _) => Flow::DynamodbExport,
            (ResourceKind::Rds | ResourceKind::Aurora, Some(DbMethod::Dump)) => Flow::RdsDump,
            (ResourceKind::Rds | ResourceKind::Aurora, _) => Flow::RdsExport,
        }
    }

    fn idempotency_basis(&self) -> IdempotencyBasis<'_> {
        if let Some(copy) = &self.copy_job_id {
            IdempotencyBasis::CopyJob(copy)
        } else if let Some(job) = &self.backup_job_id {
            IdempotencyBasis::BackupJob(job)
        } else {
            IdempotencyBasis::Snapshot { kind: self.kind, snapshot_id: &self.snapshot_id }
        }
    }
}

/// The answer of [`archive_target`].
#[derive(Debug, Clone, PartialEq)]
pub enum Targeting {
    Target(Box<ArchiveTarget>),
    Skip(SkipReason),
}

/// Reads what an event names (step 1 of planning), and skips a vault the deployment does not
/// archive. No AWS call is needed, and none should be made for a [`Targeting::Skip`].
pub fn archive_target(event: &TriggerEvent, config: &PlanConfig) -> Result<Targeting, PlanError> {
    let targeting = match (event, &config.home) {
        (TriggerEvent::CopyJob(copy), Some(home)) => target_copy_job(copy, Some(home)),
        _ => event_target(event)?,
    };
    Ok(match targeting {
        Targeting::Target(target) => match &target.vault_name {
            Some(vault) if !config.allows_vault(vault) => {
                Targeting::Skip(SkipReason::VaultNotAllowed { vault_name: vault.clone() })
            }
            _ => Targeting::Target(target),
        },
        skip => skip,
    })
}

/// What an event names, whatever the deployment's configuration: for the steps before `plan`
/// (a trigger choosing the state machine to start), which leave the vault check to it.
pub fn event_target(event: &TriggerEvent) -> Result<Targeting, PlanError> {
    Ok(match event {
        TriggerEvent::BackupJob(event) => target_backup_job(event),
        TriggerEvent::CopyJob(event) => target_copy_job(event, None),
        TriggerEvent::RdsSnapshot(event) => target_rds_event(event),
        TriggerEvent::Sns(sns) => return target_sns(sns),
        TriggerEvent::Manual(input) => target_manual(input),
    })
}

/// The snapshot a raw trigger event names (the input of an execution, or the document of a Plan
/// that failed), if it parses. Any fields a Catch added are ignored.
pub fn trigger_snapshot_id(state: &Value) -> Option<String> {
    let mut event = state.clone();
    for added in [
        "error",
        "cleanup_error",
        "notify_error",
        "deleted_volumes",
        "deleted_tables",
        "deleted_database",
        "notification",
    ] {
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
        home: None,
        read_path: ReadPath::Volume,
    };
    match archive_target(&event, &config).ok()? {
        Targeting::Target(target) => Some(target.snapshot_id),
        Targeting::Skip(_) => None,
    }
}

/// Snapshot id, snapshot ARN, kind and source id read off a recovery point.
struct Located {
    kind: ResourceKind,
    snapshot_id: String,
    snapshot_arn: Option<Arn>,
    source_resource_id: Option<String>,
}

/// Reads a recovery point ARN of a resource of kind `kind`. For RDS the snapshot's own type
/// decides between DB (`snapshot:`) and cluster (`cluster-snapshot:`), since AWS Backup calls
/// a Multi-AZ DB cluster `RDS` although its recovery point is a cluster snapshot.
fn locate(kind: ResourceKind, recovery_point: &Arn, resource_arn: Option<&Arn>) -> Result<Located, SkipReason> {
    let unsupported = || SkipReason::UnsupportedRecoveryPoint { recovery_point_arn: recovery_point.to_string() };
    let id_in_resource = |service: &str, resource_type: &str| {
        resource_arn.and_then(|arn| arn.id_of(service, resource_type)).map(str::to_string)
    };
    match kind {
        ResourceKind::Ebs => {
            let snapshot_id = recovery_point
                .id_of("ec2", "snapshot")
                .filter(|id| crate::event::is_ebs_snapshot_id(id))
                .ok_or_else(unsupported)?;
            Ok(Located {
                kind,
                snapshot_id: snapshot_id.to_string(),
                snapshot_arn: Some(recovery_point.clone()),
                source_resource_id: id_in_resource("ec2", "volume"),
            })
        }
        ResourceKind::Rds | ResourceKind::Aurora => {
            if let Some(id) = recovery_point.id_of("rds", "snapshot") {
                Ok(Located {
                    kind: ResourceKind::Rds,
                    snapshot_id: id.to_string(),
                    snapshot_arn: Some(recovery_point.clone()),
                    source_resource_id: id_in_resource("rds", "db"),
                })
            } else if let Some(id) = recovery_point.id_of("rds", "cluster-snapshot") {
                Ok(Located {
                    kind: ResourceKind::Aurora,
                    snapshot_id: id.to_string(),
                    snapshot_arn: Some(recovery_point.clone()),
                    source_resource_id: id_in_resource("rds", "cluster"),
                })
            } else {
                Err(unsupported())
            }
        }
        ResourceKind::DynamoDb => {
            // `table/T/backup/0156…-d330…`, or an AWS Backup `recovery-point:ID` when the
            // account uses AWS Backup's advanced DynamoDB features.
            let backup_id = match recovery_point.id_of("dynamodb", "table") {
                Some(path) => path.split_once("/backup/").map(|(_, id)| id),
                None => recovery_point.id_of("backup", "recovery-point"),
            };
            let backup_id = backup_id.filter(|id| !id.is_empty()).ok_or_else(unsupported)?;
            Ok(Located {
                kind,
                snapshot_id: backup_id.to_string(),
                snapshot_arn: Some(recovery_point.clone()),
                source_resource_id: id_in_resource("dynamodb", "table"),
            })
        }
    }
}

/// `awsbackup:job-<id>` is how AWS Backup names the RDS snapshots it takes: an RDS event about
/// such a snapshot then maps to the same idempotency key as the backup job's own event.
fn backup_job_of_snapshot(snapshot_id: &str) -> Option<String> {
    snapshot_id.strip_prefix("awsbackup:job-").filter(|id| !id.is_empty()).map(str::to_string)
}

#[allow(clippy::too_many_arguments)]
fn vault_target(
    trigger: TriggerKind,
    kind: ResourceKind,
    recovery_point: &Arn,
    resource_arn: Option<&Arn>,
    vault_name: Option<&str>,
    backup_job_id: Option<&str>,
    copy_job_id: Option<&str>,
    size_bytes: Option<u64>,
    snapshot_time: Option<DateTime<Utc>>,
    event_time: Option<DateTime<Utc>>,
) -> Targeting {
    let located = match locate(kind, recovery_point, resource_arn) {
        Ok(located) => located,
        Err(skip) => return Targeting::Skip(skip),
    };
    Targeting::Target(Box::new(ArchiveTarget {
        trigger,
        kind: located.kind,
        snapshot_id: located.snapshot_id,
        snapshot_arn: located.snapshot_arn,
        source_resource_arn: resource_arn.cloned(),
        source_resource_id: located.source_resource_id,
        recovery_point_arn: Some(recovery_point.clone()),
        vault_name: vault_name.map(str::to_string),
        backup_job_id: backup_job_id.map(str::to_string),
        copy_job_id: copy_job_id.map(str::to_string),
        size_bytes,
        snapshot_time,
        event_time,
        requested_method: None,
        mode: None,
    }))
}

fn unsupported_type(resource_type: Option<&str>) -> Targeting {
    Targeting::Skip(SkipReason::UnsupportedResourceType {
        resource_type: resource_type.unwrap_or("unknown").to_string(),
    })
}

fn target_backup_job(event: &EventBridgeEvent<BackupJobDetail>) -> Targeting {
    let detail = &event.detail;
    if detail.state != JobState::Completed {
        return Targeting::Skip(SkipReason::JobNotCompleted { state: detail.state });
    }
    let Some(kind) = detail.resource_type.as_deref().and_then(ResourceKind::from_backup_resource_type) else {
        return unsupported_type(detail.resource_type.as_deref());
    };
    let recovery_point =
        event.resources.first().expect("a COMPLETED backup job names its recovery point (checked when parsed)");
    vault_target(
        TriggerKind::BackupJob,
        kind,
        recovery_point,
        detail.resource_arn.as_ref(),
        detail.vault_name(),
        Some(&detail.backup_job_id),
        None,
        detail.backup_size_in_bytes,
        detail.creation_date,
        event.time,
    )
}

fn target_copy_job(event: &EventBridgeEvent<CopyJobDetail>, home: Option<&Home>) -> Targeting {
    let detail = &event.detail;
    if detail.state != JobState::Completed {
        return Targeting::Skip(SkipReason::JobNotCompleted { state: detail.state });
    }
    let Some(kind) = detail.resource_type.as_deref().and_then(ResourceKind::from_backup_resource_type) else {
        return unsupported_type(detail.resource_type.as_deref());
    };
    let destination = detail.destination_backup_vault_arn.as_ref().expect("checked when parsed");
    let elsewhere = |ours: Option<&String>, theirs: &str| ours.is_some_and(|ours| !ours.is_empty() && ours != theirs);
    let (region, account) = match home {
        Some(home) => (Some(&home.region), Some(&home.account)),
        None => (event.region.as_ref(), event.account.as_ref()),
    };
    if elsewhere(region, &destination.region) || elsewhere(account, &destination.account) {
        return Targeting::Skip(SkipReason::CopyLandsElsewhere { destination_vault_arn: destination.to_string() });
    }
    vault_target(
        TriggerKind::CopyJob,
        kind,
        detail.destination_recovery_point_arn.as_ref().expect("checked when parsed"),
        detail.resource_arn.as_ref(),
        detail.destination_vault_name(),
        None,
        detail.copy_job_id.as_deref(),
        detail.backup_size_in_bytes,
        detail.creation_date,
        event.time,
    )
}

/// An RDS snapshot that an RDS event names, once the event is known to mean "ready".
fn rds_target(
    snapshot_arn: Option<Arn>,
    snapshot_id: &str,
    cluster: bool,
    snapshot_time: Option<DateTime<Utc>>,
    event_time: Option<DateTime<Utc>>,
) -> Targeting {
    Targeting::Target(Box::new(ArchiveTarget {
        trigger: TriggerKind::RdsEvent,
        kind: if cluster { ResourceKind::Aurora } else { ResourceKind::Rds },
        snapshot_id: snapshot_id.to_string(),
        snapshot_arn,
        source_resource_arn: None,
        source_resource_id: None,
        recovery_point_arn: None,
        vault_name: None,
        backup_job_id: backup_job_of_snapshot(snapshot_id),
        copy_job_id: None,
        size_bytes: None,
        snapshot_time,
        event_time,
        requested_method: None,
        mode: None,
    }))
}

fn is_ready_event(event_id: &str, cluster: bool) -> bool {
    if cluster { CLUSTER_SNAPSHOT_READY_EVENTS } else { DB_SNAPSHOT_READY_EVENTS }.contains(&event_id)
}

fn target_rds_event(event: &EventBridgeEvent<RdsEventDetail>) -> Targeting {
    let detail = &event.detail;
    let cluster = detail.source_arn.is("rds", "cluster-snapshot");
    if !is_ready_event(&detail.event_id, cluster) {
        return Targeting::Skip(SkipReason::NotSnapshotReady { event_id: detail.event_id.clone() });
    }
    // The ARN's id and SourceIdentifier agree; the ARN is what parsing checked.
    let snapshot_id = detail.source_arn.resource_type_and_id().1.to_string();
    rds_target(Some(detail.source_arn.clone()), &snapshot_id, cluster, detail.date, event.time)
}

fn target_sns(sns: &SnsEvent) -> Result<Targeting, PlanError> {
    let notification = sns.notification();
    match &notification.message {
        SnsMessage::Published(inner) => event_target(inner),
        SnsMessage::BackupVault(message) => Ok(target_vault_notification(message)),
        SnsMessage::Rds(message) => target_rds_notification(message, notification),
    }
}

fn target_vault_notification(message: &BackupVaultNotification) -> Targeting {
    if message.event_type != "BACKUP_JOB" {
        return Targeting::Skip(SkipReason::NotBackupJob { event_type: message.event_type.clone() });
    }
    let state = message.state.expect("a BACKUP_JOB notification has a state (checked when parsed)");
    if state != JobState::Completed {
        return Targeting::Skip(SkipReason::JobNotCompleted { state });
    }
    let resource = message.resource_arn.as_ref().expect("checked when parsed");
    let Some(kind) = ResourceKind::from_resource_arn(resource) else {
        let (resource_type, _) = resource.resource_type_and_id();
        return unsupported_type(Some(&format!("{}:{resource_type}", resource.service)));
    };
    vault_target(
        TriggerKind::BackupJob,
        kind,
        message.recovery_point_arn.as_ref().expect("checked when parsed"),
        Some(resource),
        None,
        message.backup_job_id.as_deref(),
        None,
        None,
        message.start_time,
        None,
    )
}

fn target_rds_notification(
    message: &RdsNotification,
    notification: &crate::event::SnsNotification,
) -> Result<Targeting, PlanError> {
    let cluster = match message.event_source.as_str() {
        "db-snapshot" => false,
        "db-cluster-snapshot" => true,
        _ => return Ok(Targeting::Skip(SkipReason::NotSnapshotReady { event_id: message.event_id().to_string() })),
    };
    if !is_ready_event(message.event_id(), cluster) {
        return Ok(Targeting::Skip(SkipReason::NotSnapshotReady { event_id: message.event_id().to_string() }));
    }
    // Older messages carry no `Source ARN`; the `Resource` attribute, or else the topic's own
    // partition, region and account, complete it (RDS publishes only to topics of its account).
    let snapshot_arn = match (&message.source_arn, notification.attribute("Resource")) {
        (Some(arn), _) => Some(arn.clone()),
        (None, Some(resource)) => Some(resource.parse::<Arn>().map_err(|e| EventError::Invalid {
            field: "Records[0].Sns.MessageAttributes.Resource.Value".to_string(),
            reason: e.to_string(),
        })?),
        (None, None) => notification.topic_arn.as_ref().map(|topic| Arn {
            partition: topic.partition.clone(),
            service: "rds".to_string(),
            region: topic.region.clone(),
            account: topic.account.clone(),
            resource: format!("{}:{}", if cluster { "cluster-snapshot" } else { "snapshot" }, message.source_id),
        }),
    };
    Ok(rds_target(snapshot_arn, &message.source_id, cluster, message.event_time(), notification.timestamp))
}

fn target_manual(input: &ManualInput) -> Targeting {
    let (kind, snapshot_id, snapshot_arn) = match &input.snapshot {
        ManualSnapshot::Ebs { snapshot_id, arn } => (ResourceKind::Ebs, snapshot_id.clone(), arn.clone()),
        ManualSnapshot::RdsDb { arn } => {
            (ResourceKind::Rds, arn.resource_type_and_id().1.to_string(), Some(arn.clone()))
        }
        ManualSnapshot::RdsCluster { arn } => {
            (ResourceKind::Aurora, arn.resource_type_and_id().1.to_string(), Some(arn.clone()))
        }
        ManualSnapshot::DynamoDb { arn } => {
            // `table/T/backup/ID` (checked when parsed) names its table: `table/T`.
            let (table, backup_id) = arn
                .id_of("dynamodb", "table")
                .and_then(|path| path.split_once("/backup/"))
                .expect("a manual DynamoDB backup ARN is table/T/backup/ID (checked when parsed)");
            return Targeting::Target(Box::new(ArchiveTarget {
                trigger: TriggerKind::Manual,
                kind: ResourceKind::DynamoDb,
                snapshot_id: backup_id.to_string(),
                snapshot_arn: Some(arn.clone()),
                source_resource_arn: Some(Arn { resource: format!("table/{table}"), ..arn.clone() }),
                source_resource_id: Some(table.to_string()),
                recovery_point_arn: None,
                vault_name: None,
                backup_job_id: None,
                copy_job_id: None,
                size_bytes: None,
                snapshot_time: None,
                event_time: None,
                requested_method: None,
                mode: None,
            }));
        }
    };
    Targeting::Target(Box::new(ArchiveTarget {
        trigger: TriggerKind::Manual,
        kind,
        backup_job_id: if kind == ResourceKind::Ebs { None } else { backup_job_of_snapshot(&snapshot_id) },
        snapshot_id,
        snapshot_arn,
        source_resource_arn: None,
        source_resource_id: None,
        recovery_point_arn: None,
        vault_name: None,
        copy_job_id: None,
        size_bytes: None,
        snapshot_time: None,
        event_time: None,
        requested_method: input.method,
        mode: input.mode,
    }))
}

// ---------------------------------------------------------------------------------------------
// Step 2: every decision.

/// The method for an RDS snapshot of `engine`: the one asked for in the manual input, else the
/// configured one, else export where supported, else dump. `Ok(None)` when no method works for
/// the engine (the planner skips it); an error when the input asked for an impossible method.
pub fn choose_db_method(
    engine: &str,
    requested: Option<DbMethod>,
    config: &PlanConfig,
) -> Result<Option<DbMethod>, PlanError> {
    let possible = supported_methods(engine);
    let Some(&default) = possible.first() else { return Ok(None) };
    if let Some(method) = requested {
        if !possible.contains(&method) {
            return Err(PlanError::MethodNotSupported {
                engine: engine.to_string(),
                method,
                possible: possible.iter().map(|m| m.as_str()).collect::<Vec<_>>().join(", "),
            });
        }
        return Ok(Some(method));
    }
    Ok(Some(config.db_methods.get(engine).copied().filter(|m| possible.contains(m)).unwrap_or(default)))
}

/// The sibling ARN of the DB instance or cluster a snapshot was taken from.
fn rds_source_arn(kind: ResourceKind, snapshot_arn: Option<&Arn>, source_id: &str) -> Option<Arn> {
    let snapshot_arn = snapshot_arn.filter(|arn| arn.service == "rds" && !arn.account.is_empty())?;
    let resource_type = match kind {
        ResourceKind::Rds => "db",
        ResourceKind::Aurora => "cluster",
        _ => return None,
    };
    Some(Arn { resource: format!("{resource_type}:{source_id}"), ..snapshot_arn.clone() })
}

/// Plans the archive of the snapshot `event` names (step 2 of planning), given what the Lambda
/// learned about it. See the module documentation for the two steps.
pub fn plan_archive(
    event: &TriggerEvent,
    facts: &SnapshotFacts,
    config: &PlanConfig,
    now: DateTime<Utc>,
) -> Result<PlanOutcome, PlanError> {
    config.validate()?;
    match archive_target(event, config)? {
        Targeting::Skip(reason) => Ok(PlanOutcome::skipped(reason)),
        Targeting::Target(target) => plan_target(*target, facts, config, now),
    }
}

fn plan_target(
    target: ArchiveTarget,
    facts: &SnapshotFacts,
    config: &PlanConfig,
    now: DateTime<Utc>,
) -> Result<PlanOutcome, PlanError> {
    let vault_name = target.vault_name.clone().or_else(|| facts.vault_name.clone());
    match &vault_name {
        Some(vault) if !config.allows_vault(vault) => {
            return Ok(PlanOutcome::skipped(SkipReason::VaultNotAllowed { vault_name: vault.clone() }))
        }
        None if target.in_vault() && !config.allowed_vaults.is_empty() => {
            return Err(PlanError::LookupIncomplete {
                field: "vault_name",
                hint: "the event names no vault; describe the backup job so allowed_vaults can be checked",
            })
        }
        _ => {}
    }

    if let Some(status) = &facts.status {
        match snapshot_readiness(status) {
            Readiness::Ready => {}
            Readiness::NotYet => {
                return Err(PlanError::SnapshotNotReady { snapshot_id: target.snapshot_id, status: status.clone() })
            }
            Readiness::Unusable => {
                return Err(PlanError::SnapshotUnusable { snapshot_id: target.snapshot_id, status: status.clone() })
            }
        }
    }

    let engine = facts.engine.clone();
    let (flow, method) = match target.kind {
        ResourceKind::Ebs => (Flow::EbsArchive, None),
        ResourceKind::DynamoDb => (Flow::DynamodbExport, Some(DbMethod::Export)),
        ResourceKind::Rds | ResourceKind::Aurora => {
            let method = match (engine.as_deref(), target.requested_method) {
                (Some(engine), requested) => match choose_db_method(engine, requested, config)? {
                    Some(method) => method,
                    None => {
                        return Ok(PlanOutcome::skipped(SkipReason::UnsupportedEngine { engine: engine.to_string() }))
                    }
                },
                (None, Some(requested)) => requested,
                (None, None) => {
                    return Err(PlanError::LookupIncomplete {
                        field: "engine",
                        hint: "the method depends on the engine; describe the snapshot",
                    })
                }
            };
            (if method == DbMethod::Export { Flow::RdsExport } else { Flow::RdsDump }, Some(method))
        }
    };

    let source_resource_id = target.source_resource_id.clone().or_else(|| facts.source_resource_id.clone()).ok_or(
        PlanError::LookupIncomplete {
            field: "source_resource_id",
            hint: "the event names only the snapshot; describe it for its volume, DB instance, cluster or table",
        },
    )?;
    let source_resource_arn = target
        .source_resource_arn
        .clone()
        .or_else(|| rds_source_arn(target.kind, target.snapshot_arn.as_ref(), &source_resource_id));

    let idempotency_key = target.idempotency_key();
    let snapshot_date = target.snapshot_time.or(facts.created_at).or(target.event_time).unwrap_or(now).date_naive();
    let destination = S3Location {
        bucket: config.destination.bucket.clone(),
        prefix: naming::archive_prefix(
            &config.destination.prefix,
            target.kind,
            &source_resource_id,
            snapshot_date,
            &target.snapshot_id,
        ),
    };
    let snapshot_size_bytes = facts.size_bytes.or(target.size_bytes);

    let mode = (target.kind == ResourceKind::Ebs).then(|| target.mode.unwrap_or_default());
    let read_path = mode.map(|mode| read_path_for(mode, config.read_path));
    let volume = if read_path == Some(ReadPath::Volume) {
        let availability_zone = choose_availability_zone(&idempotency_key, &config.availability_zones).ok_or(
            PlanError::config("availability_zones", "is empty: an EBS archive needs an AZ with a Batch job queue"),
        )?;
        let performance = snapshot_size_bytes.map(volume_performance).unwrap_or(VolumePerformance::BASELINE);
        Some(VolumeSpec {
            availability_zone: availability_zone.to_string(),
            volume_type: "gp3".to_string(),
            iops: performance.iops,
            throughput_mibps: performance.throughput_mibps,
            initialization_rate_mibps: config.volume_initialization_rate_mibps,
            job_queue: config.job_queues.get(availability_zone).cloned(),
        })
    } else {
        None
    };

    let export_task_identifier = if flow == Flow::RdsExport {
        let arn = target.snapshot_arn.as_ref().ok_or(PlanError::LookupIncomplete {
            field: "snapshot_arn",
            hint: "StartExportTask needs the snapshot's ARN, and the event gave neither it nor an SNS topic ARN",
        })?;
        Some(naming::export_task_identifier(&arn.to_string(), &destination.to_string()))
    } else {
        None
    };

    // Any AZ's queue does; the same rendezvous choice as a volume's AZ spreads jobs evenly.
    let job_queue = if flow == Flow::RdsDump || read_path == Some(ReadPath::Direct) {
        choose_availability_zone(&idempotency_key, &config.availability_zones)
            .and_then(|az| config.job_queues.get(az).cloned())
    } else {
        None
    };

    let delete_recovery_point = config.delete_recovery_point
        && target.in_vault()
        && target.recovery_point_arn.is_some()
        && vault_name.is_some();

    Ok(PlanOutcome::Planned(Box::new(ArchiveRequest {
        kind: target.kind,
        flow,
        state_machine: flow.state_machine().to_string(),
        trigger: target.trigger,
        idempotency_key,
        source_resource_arn,
        source_resource_id,
        snapshot_id: target.snapshot_id,
        snapshot_arn: target.snapshot_arn,
        vault_name,
        recovery_point_arn: target.recovery_point_arn,
        backup_job_id: target.backup_job_id,
        copy_job_id: target.copy_job_id,
        snapshot_size_bytes,
        encrypted: facts.encrypted,
        kms_key_id: facts.kms_key_id.clone(),
        engine,
        method,
        mode,
        destination,
        snapshot_date,
        read_path,
        volume,
        export_task_identifier,
        job_queue,
        options: ArchiveOptions { delete_recovery_point },
        planned_at: now,
    })))
}

/// The read path of one EBS archive: the configured one, except that files mode needs a mounted
/// filesystem, which only the volume path gives.
pub fn read_path_for(mode: ModeRequest, configured: ReadPath) -> ReadPath {
    match mode {
        ModeRequest::Files => ReadPath::Volume,
        ModeRequest::Auto | ModeRequest::Raw => configured,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> PlanConfig {
        PlanConfig {
            destination: "s3://example-archive/backups".parse().unwrap(),
            allowed_vaults: vec![],
            availability_zones: vec!["eu-west-1a".into(), "eu-west-1b".into(), "eu-west-1c".into()],
            db_methods: BTreeMap::new(),
            delete_recovery_point: false,
            volume_initialization_rate_mibps: None,
            job_queues: BTreeMap::new(),
            home: None,
            read_path: ReadPath::Volume,
        }
    }

    fn event_target_of(input: &serde_json::Value) -> ArchiveTarget {
        match event_target(&TriggerEvent::from_value(input).unwrap()).unwrap() {
            Targeting::Target(target) => *target,
            skip => panic!("{input}: {skip:?}"),
        }
    }

    #[test]
    fn triggers_enter_by_the_flow_of_their_snapshot_and_method() {
        use serde_json::json;
        let flow = |input: serde_json::Value| event_target_of(&input).entry_flow();
        assert_eq!(flow(json!({"snapshot": "snap-0a1b2c3d4e5f67890"})), Flow::EbsArchive);
        let db = "arn:aws:rds:eu-west-1:111122223333:snapshot:orders-2025";
        assert_eq!(flow(json!({"snapshot": db, "method": "dump"})), Flow::RdsDump);
        assert_eq!(flow(json!({"snapshot": db, "method": "export"})), Flow::RdsExport);
        assert_eq!(flow(json!({"snapshot": db})), Flow::RdsExport);
        let cluster = "arn:aws:rds:eu-west-1:111122223333:cluster-snapshot:billing";
        assert_eq!(flow(json!({"snapshot": cluster, "method": "dump"})), Flow::RdsDump);
        let table = "arn:aws:dynamodb:eu-west-1:111122223333:table/Orders/backup/01568804569000-d3306d76";
        assert_eq!(flow(json!({"snapshot": table})), Flow::DynamodbExport);
        let sns: serde_json::Value = serde_json::from_slice(include_bytes!(
            "../tests/fixtures/sns-rds-event-db-snapshot-automated-created.json"
        ))
        .unwrap();
        assert_eq!(flow(sns.clone()), Flow::RdsExport);
        assert_eq!(event_target_of(&sns).idempotency_key(), event_target_of(&sns).idempotency_key(), "stable");
    }

    #[test]
    fn event_target_leaves_the_vault_check_to_archive_target() {
        let event =
            TriggerEvent::from_json(include_bytes!("../tests/fixtures/eventbridge-backup-job-completed-ebs.json"))
                .unwrap();
        assert!(matches!(event_target(&event).unwrap(), Targeting::Target(_)));
        let only_other = PlanConfig { allowed_vaults: vec!["another-vault".into()], ..config() };
        assert!(matches!(
            archive_target(&event, &only_other).unwrap(),
            Targeting::Skip(SkipReason::VaultNotAllowed { .. })
        ));
    }

    #[test]
    fn volume_performance_of_a_large_volume_is_gp3_maximum_throughput() {
        assert_eq!(volume_performance(100 * GIB), VolumePerformance { iops: 4_000, throughput_mibps: 1_000 });
        assert_eq!(volume_performance(16 * 1024 * GIB), VolumePerformance { iops: 4_000, throughput_mibps: 1_000 });
    }

    #[test]
    fn volume_performance_of_a_tiny_volume_is_the_baseline_or_a_little_more() {
        assert_eq!(volume_performance(0), VolumePerformance::BASELINE);
        assert_eq!(volume_performance(1), VolumePerformance::BASELINE);
        assert_eq!(volume_performance(GIB), VolumePerformance::BASELINE);
        assert_eq!(volume_performance(4 * GIB), VolumePerformance { iops: 3_000, throughput_mibps: 500 });
        assert_eq!(volume_performance(8 * GIB), VolumePerformance { iops: 4_000, throughput_mibps: 1_000 });
    }

    #[test]
    fn volume_performance_stays_within_gp3_limits_for_every_size() {
        let mut previous = VolumePerformance::BASELINE;
        let mut size = 1u64;
        while size <= 64 * 1024 * GIB {
            let p = volume_performance(size);
            let gib = size.div_ceil(GIB).max(1);
            assert!((GP3_BASELINE_IOPS..=GP3_MAX_IOPS).contains(&p.iops), "{size}: {p:?}");
            assert!(
                (GP3_BASELINE_THROUGHPUT_MIBPS..=GP3_MAX_THROUGHPUT_MIBPS).contains(&p.throughput_mibps),
                "{size}: {p:?}"
            );
            assert!(
                p.iops == GP3_BASELINE_IOPS || u64::from(p.iops) <= gib * u64::from(GP3_MAX_IOPS_PER_GIB),
                "{size}: {p:?}"
            );
            assert!(
                p.throughput_mibps == GP3_BASELINE_THROUGHPUT_MIBPS
                    || p.throughput_mibps * GP3_IOPS_PER_MIBPS <= p.iops,
                "{size}: {p:?} exceeds 0.25 MiB/s per IOPS"
            );
            assert!(p.throughput_mibps >= previous.throughput_mibps, "a larger volume is never slower: {size}");
            previous = p;
            size = size * 3 / 2 + 1;
        }
    }

    #[test]
    fn availability_zone_is_deterministic_and_ignores_list_order() {
        let azs = config().availability_zones;
        let mut reversed = azs.clone();
        reversed.reverse();
        for i in 0..200 {
            let key = format!("backup-job-{i}");
            let chosen = choose_availability_zone(&key, &azs).unwrap();
            assert_eq!(Some(chosen), choose_availability_zone(&key, &azs));
            assert_eq!(Some(chosen), choose_availability_zone(&key, &reversed));
        }
    }

    #[test]
    fn availability_zone_spreads_keys_evenly() {
        let azs = config().availability_zones;
        let mut counts = BTreeMap::new();
        for i in 0..3_000 {
            *counts.entry(choose_availability_zone(&format!("k{i}"), &azs).unwrap()).or_insert(0) += 1;
        }
        for (az, n) in counts {
            assert!((800..=1_200).contains(&n), "{az} got {n} of 3000");
        }
    }

    #[test]
    fn removing_an_availability_zone_moves_only_its_own_keys() {
        let azs = config().availability_zones;
        let fewer: Vec<String> = azs.iter().filter(|az| *az != "eu-west-1b").cloned().collect();
        for i in 0..1_000 {
            let key = format!("k{i}");
            let before = choose_availability_zone(&key, &azs).unwrap();
            if before != "eu-west-1b" {
                assert_eq!(choose_availability_zone(&key, &fewer), Some(before), "{key} moved needlessly");
            }
        }
    }

    #[test]
    fn no_availability_zone_without_a_list() {
        assert_eq!(choose_availability_zone("k", &[]), None);
    }

    #[test]
    fn db_method_defaults_to_export_where_supported() {
        let config = config();
        assert_eq!(choose_db_method("postgres", None, &config), Ok(Some(DbMethod::Export)));
        assert_eq!(choose_db_method("aurora-mysql", None, &config), Ok(Some(DbMethod::Export)));
    }

    #[test]
    fn db_method_follows_configuration_then_the_request() {
        let mut config = config();
        config.db_methods.insert("postgres".into(), DbMethod::Dump);
        assert_eq!(choose_db_method("postgres", None, &config), Ok(Some(DbMethod::Dump)));
        assert_eq!(choose_db_method("mysql", None, &config), Ok(Some(DbMethod::Export)));
        assert_eq!(choose_db_method("postgres", Some(DbMethod::Export), &config), Ok(Some(DbMethod::Export)));
    }

    #[test]
    fn db_method_is_none_for_engines_nothing_can_archive() {
        for engine in ["oracle-ee", "sqlserver-se", "db2-se", "docdb", "neptune", ""] {
            assert_eq!(choose_db_method(engine, None, &config()), Ok(None), "{engine}");
        }
    }

    #[test]
    fn rejects_a_requested_method_the_engine_cannot_do() {
        let err = choose_db_method("aurora", Some(DbMethod::Export), &config()).unwrap_err();
        assert!(matches!(err, PlanError::MethodNotSupported { .. }), "{err}");
        assert_eq!(err.field(), Some("method"));
        assert_eq!(err.error_name(), errors::INVALID_EVENT);
        assert_eq!(
            choose_db_method("aurora", None, &config()),
            Ok(Some(DbMethod::Dump)),
            "dump where export is not possible"
        );
    }

    #[test]
    fn an_engine_nothing_can_archive_is_skipped_even_when_a_method_was_asked_for() {
        assert_eq!(choose_db_method("oracle-ee", Some(DbMethod::Dump), &config()), Ok(None));
    }

    #[test]
    fn db_method_parses_only_its_two_names() {
        assert_eq!("export".parse::<DbMethod>(), Ok(DbMethod::Export));
        assert_eq!("dump".parse::<DbMethod>(), Ok(DbMethod::Dump));
        assert!("Export".parse::<DbMethod>().is_err());
        assert_eq!(serde_json::to_value(DbMethod::Dump).unwrap(), "dump");
    }

    #[test]
    fn snapshot_readiness_reads_ebs_rds_and_dynamodb_states() {
        for ready in ["completed", "available", "AVAILABLE"] {
            assert_eq!(snapshot_readiness(ready), Readiness::Ready, "{ready}");
        }
        for later in ["pending", "creating", "CREATING", "copying", "recovering"] {
            assert_eq!(snapshot_readiness(later), Readiness::NotYet, "{later}");
        }
        for never in ["error", "recoverable", "deleted", "DELETED", "failed", "incompatible-restore", ""] {
            assert_eq!(snapshot_readiness(never), Readiness::Unusable, "{never}");
        }
    }

    #[test]
    fn automated_rds_snapshots_are_described_as_automated() {
        assert_eq!(rds_snapshot_type("rds:orders-postgres-2025-03-04-04-00"), Some("automated"));
        assert_eq!(rds_snapshot_type("awsbackup:job-3e4f5a6b"), None);
        assert_eq!(rds_snapshot_type("orders-before-migration"), None);
    }

    #[test]
    fn config_validation_names_the_bad_setting() {
        type Breakage = Box<dyn Fn(&mut PlanConfig)>;
        let cases: Vec<(Breakage, &str)> = vec![
            (Box::new(|c| c.volume_initialization_rate_mibps = Some(50)), "volume_initialization_rate_mibps"),
            (Box::new(|c| c.volume_initialization_rate_mibps = Some(301)), "volume_initialization_rate_mibps"),
            (Box::new(|c| c.allowed_vaults = vec!["".into()]), "allowed_vaults"),
            (Box::new(|c| c.availability_zones.push("eu-west-1a".into())), "availability_zones"),
            (Box::new(|c| c.availability_zones.push(" ".into())), "availability_zones"),
            (
                Box::new(|c| {
                    c.job_queues.insert("eu-west-1a".into(), "queue-a".into());
                }),
                "job_queues",
            ),
            (
                Box::new(|c| {
                    for az in c.availability_zones.clone() {
                        c.job_queues.insert(az, " ".into());
                    }
                }),
                "job_queues",
            ),
            (
                Box::new(|c| {
                    c.db_methods.insert("oracle-ee".into(), DbMethod::Export);
                }),
                "db_methods",
            ),
        ];
        for (break_it, field) in cases {
            let mut config = config();
            break_it(&mut config);
            let err = config.validate().unwrap_err();
            assert_eq!(err.field(), Some(field), "{err}");
            assert_eq!(err.error_name(), errors::INVALID_CONFIG);
            assert!(err.to_string().contains(field), "{err}");
        }
        let mut fine = config();
        fine.volume_initialization_rate_mibps = Some(300);
        assert_eq!(fine.validate(), Ok(()));
    }

    #[test]
    fn config_deserializes_with_defaults_and_refuses_unknown_settings() {
        let config: PlanConfig = serde_json::from_value(serde_json::json!({
            "destination": {"bucket": "b", "prefix": ""},
            "availability_zones": ["eu-west-1a"]
        }))
        .unwrap();
        assert!(config.allowed_vaults.is_empty() && !config.delete_recovery_point);
        assert!(config.allows_vault("anything"));
        let typo = serde_json::from_value::<PlanConfig>(serde_json::json!({
            "destination": {"bucket": "b", "prefix": ""},
            "delete_recovery_points": true
        }));
        assert!(typo.unwrap_err().to_string().contains("delete_recovery_points"));
    }

    #[test]
    fn resource_kinds_map_from_aws_backup_and_arns() {
        assert_eq!(ResourceKind::from_backup_resource_type("EBS"), Some(ResourceKind::Ebs));
        assert_eq!(ResourceKind::from_backup_resource_type("DynamoDB"), Some(ResourceKind::DynamoDb));
        assert_eq!(ResourceKind::from_backup_resource_type("EFS"), None);
        assert_eq!(ResourceKind::from_backup_resource_type("ebs"), None, "AWS Backup's spelling only");
        let arn = |s: &str| s.parse::<Arn>().unwrap();
        assert_eq!(ResourceKind::from_resource_arn(&arn("arn:aws:rds:r:1:cluster:c")), Some(ResourceKind::Aurora));
        assert_eq!(ResourceKind::from_resource_arn(&arn("arn:aws:elasticfilesystem:r:1:file-system/fs-1")), None);
        for kind in [ResourceKind::Ebs, ResourceKind::Rds, ResourceKind::Aurora, ResourceKind::DynamoDb] {
            assert_eq!(serde_json::to_value(kind).unwrap(), kind.as_str());
        }
    }

    #[test]
    fn plan_errors_have_stable_names() {
        let event_error = PlanError::InvalidEvent(EventError::Missing { field: "detail.resourceArn".into() });
        assert_eq!(event_error.error_name(), "InvalidEvent");
        assert_eq!(event_error.field(), Some("detail.resourceArn"));
        assert_eq!(
            PlanError::SnapshotNotReady { snapshot_id: "s".into(), status: "pending".into() }.error_name(),
            "SnapshotNotReady"
        );
        assert_eq!(PlanError::LookupIncomplete { field: "engine", hint: "" }.error_name(), "LookupIncomplete");
        for name in [
            errors::INVALID_EVENT,
            errors::INVALID_CONFIG,
            errors::LOOKUP_INCOMPLETE,
            errors::SNAPSHOT_NOT_READY,
            errors::SNAPSHOT_UNUSABLE,
        ] {
            assert!(errors::is_known(name));
        }
    }
}
