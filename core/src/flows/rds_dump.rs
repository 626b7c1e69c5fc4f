//! The RDS native-dump flow (`state-machines/rds-dump.asl.json`): the input and output of each
//! of its states, and the decisions its Lambdas make about the temporary database (its names,
//! class, tags and master password), its readiness, the dump job, and its deletion.
//!
//! The execution's document grows state by state, each writing one field (its `ResultPath`):
//!
//! ```text
//! Plan                 -> the whole document: PlanOutcome (ArchiveRequest fields + "outcome")
//! RestoreDatabase      -> temporary_database  (TemporaryDatabase: names, engine, the job to run)
//! CheckDatabase        -> database_endpoint   (DatabaseEndpoint), fails DbNotReady until available
//! SetPassword          -> (nothing)           ModifyDB*(MasterUserPassword) from the parameter
//! CheckPassword        -> database_endpoint   the same Lambda, once the new password is applied
//! DumpJob              -> job                 (JobResult, from batch:submitJob.sync)
//! DeleteDatabase       -> deleted_database    (DeletedDatabase)
//! Verify               -> verification        (Verification)
//! DeleteRecoveryPoint  -> recovery_point_deletion
//! Notify*              -> notification        (NotificationReport)
//! any Catch            -> error | cleanup_error | notify_error   (StateError)
//! ```
//!
//! RDS restores keep the snapshot's master password, which we do not know; the flow sets a new
//! one once the instance is available. The password exists only in the SSM SecureString
//! parameter that `restore-database` creates: states, logs and the job's arguments carry the
//! parameter's *name*. [`FlowDocument`](crate::document::FlowDocument)`<`[`RdsDumpSteps`]`>` is the document;
//! `core/tests/asl.rs` checks every
//! JSONPath of the ASL against it.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::archive_job::{ArchiveJob, JobResult, Verification};
use crate::errors::{self, NamedError};
use crate::naming::{
    database_identifier, password_parameter_name, TAG_EXECUTION, TAG_IDEMPOTENCY_KEY, TAG_MANAGED_BY, TAG_SNAPSHOT_ID,
};
use crate::request::ArchiveRequest;
use crate::resource::{supported_methods, DbMethod, ResourceKind};

/// The class of a temporary RDS instance (PostgreSQL, MySQL, MariaDB): the dump is one client
/// reading sequentially, so the smallest burstable class with 2 GiB of memory does; `micro`'s
/// 1 GiB leaves too little for the server's buffers once a large table is read. Graviton is the
/// cheaper generation. <https://aws.amazon.com/rds/instance-types/>
pub const RDS_INSTANCE_CLASS: &str = "db.t4g.small";
/// Aurora's smallest provisioned class: Aurora does not offer `small` or `micro`.
/// <https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/Concepts.DBInstanceClass.SupportAurora.html>
pub const AURORA_INSTANCE_CLASS: &str = "db.t4g.medium";

/// Length of a master password. MySQL and MariaDB accept at most 41 characters, PostgreSQL 128;
/// 32 characters from [`PASSWORD_CHARSET`] carry about 198 bits.
/// <https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_ModifyDBInstance.html>
pub const PASSWORD_LEN: usize = 32;
/// The characters of a master password. RDS accepts any printable ASCII but `/`, `"`, `@` and
/// space; these 74 are a stricter subset that also needs no quoting in a MySQL option file (no `#`,
/// `;`, quotes, backslash), a libpq keyword string or a shell.
pub const PASSWORD_CHARSET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~!*+=,:^%";
/// Random bytes the Lambda draws for one password. Bytes that would bias the choice of a
/// character are skipped (rejection sampling); with 74 characters 87 % of bytes (0-221) are kept,
/// so 128 bytes fall short of 32 characters with a probability below 10^-40.
pub const PASSWORD_RANDOM_BYTES: usize = 128;

/// The engine's family of the temporary database: a DB instance, or an Aurora cluster and one
/// instance in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DatabaseShape {
    /// RestoreDBInstanceFromDBSnapshot.
    Instance,
    /// RestoreDBClusterFromSnapshot, then CreateDBInstance in the cluster.
    Cluster,
}

/// Why a step of the dump flow cannot go on. Its [`NamedError`] name is the Lambda's error
/// type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DatabaseError {
    #[error("invalid configuration: `{field}` {reason}")]
    InvalidConfig { field: &'static str, reason: String },
    #[error("invalid input: `{field}` {reason}")]
    InvalidInput { field: &'static str, reason: String },
    #[error("snapshot {snapshot_id} is already being dumped by {execution} (DB {identifier})")]
    Duplicate { snapshot_id: String, execution: String, identifier: String },
    #[error("DB {identifier} is {status}, not available yet")]
    NotReady { identifier: String, status: String },
    #[error("DB {identifier} is {status} and will not become available")]
    Failed { identifier: String, status: String },
    #[error("DB {identifier} is {status}: {what} must wait")]
    Busy { identifier: String, status: String, what: &'static str },
    #[error("the random source gave too few usable bytes for a password ({got} of {PASSWORD_LEN} characters)")]
    ShortRandom { got: usize },
}

impl NamedError for DatabaseError {
    fn error_name(&self) -> &'static str {
        match self {
            DatabaseError::InvalidConfig { .. } => errors::INVALID_CONFIG,
            DatabaseError::InvalidInput { .. } => errors::INVALID_EVENT,
            DatabaseError::Duplicate { .. } => errors::DUPLICATE_ARCHIVE,
            DatabaseError::NotReady { .. } => errors::DB_NOT_READY,
            DatabaseError::Failed { .. } => errors::DB_FAILED,
            DatabaseError::Busy { .. } => errors::DB_BUSY,
            DatabaseError::ShortRandom { .. } => errors::RETRYABLE,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Names.

/// Where one execution's temporary database and password live. Derived, never stored: the
/// cleanup finds them from the plan and the execution even when RestoreDatabase failed before
/// returning anything.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatabaseNames {
    pub shape: DatabaseShape,
    /// The DB instance (for a cluster, the instance created in it).
    pub instance_identifier: String,
    /// The Aurora cluster; `None` for a DB instance.
    pub cluster_identifier: Option<String>,
    /// The SSM SecureString parameter holding the master password.
    pub password_parameter: String,
}

/// The names for `request`'s dump, owned by `execution_id`.
pub fn database_names(request: &ArchiveRequest, execution_id: &str) -> Result<DatabaseNames, DatabaseError> {
    if request.method != Some(DbMethod::Dump) {
        return Err(DatabaseError::InvalidInput {
            field: "method",
            reason: format!("is {:?}: this flow dumps databases", request.method.map(DbMethod::as_str)),
        });
    }
    if execution_id.is_empty() {
        return Err(DatabaseError::InvalidInput { field: "execution_id", reason: "is empty".into() });
    }
    let base = database_identifier(&request.idempotency_key);
    let password_parameter = password_parameter_name(&request.idempotency_key, execution_id);
    match request.kind {
        ResourceKind::Rds => Ok(DatabaseNames {
            shape: DatabaseShape::Instance,
            instance_identifier: base,
            cluster_identifier: None,
            password_parameter,
        }),
        ResourceKind::Aurora => Ok(DatabaseNames {
            shape: DatabaseShape::Cluster,
            instance_identifier: format!("{base}-1"),
            cluster_identifier: Some(base),
            password_parameter,
        }),
        other => Err(DatabaseError::InvalidInput {
            field: "kind",
            reason: format!("is {other}: only RDS and Aurora snapshots are dumped"),
        }),
    }
}

/// The tags on the temporary instance, cluster and parameter: [`TAG_MANAGED_BY`] (the
/// deployment's name, which IAM limits each deployment's roles to) and [`TAG_EXECUTION`] are what
/// the cleanup checks before it deletes anything, the others tell an operator whose it is.
pub fn database_tags(request: &ArchiveRequest, execution_id: &str, deployment: &str) -> Vec<(String, String)> {
    vec![
        ("Name".to_string(), format!("backup-archiver dump of {}", request.snapshot_id)),
        (TAG_MANAGED_BY.to_string(), deployment.to_string()),
        (TAG_EXECUTION.to_string(), execution_id.to_string()),
        (TAG_IDEMPOTENCY_KEY.to_string(), request.idempotency_key.clone()),
        (TAG_SNAPSHOT_ID.to_string(), request.snapshot_id.clone()),
    ]
}

/// The instance class for an RDS engine (see [`RDS_INSTANCE_CLASS`], [`AURORA_INSTANCE_CLASS`]).
pub fn instance_class(shape: DatabaseShape) -> &'static str {
    match shape {
        DatabaseShape::Instance => RDS_INSTANCE_CLASS,
        DatabaseShape::Cluster => AURORA_INSTANCE_CLASS,
    }
}

// ---------------------------------------------------------------------------------------------
// The master password.

/// A master password. Its `Debug` prints nothing of it, so a stray `{:?}` cannot log it.
#[derive(Clone, PartialEq, Eq)]
pub struct MasterPassword(String);

impl MasterPassword {
    /// The password itself, for the one SDK call that stores or sets it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for MasterPassword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterPassword(<redacted>)")
    }
}

/// A password of [`PASSWORD_LEN`] characters of [`PASSWORD_CHARSET`], chosen uniformly from
/// `random` (bytes of a CSPRNG, [`PASSWORD_RANDOM_BYTES`] of them) by rejection sampling.
pub fn master_password(random: &[u8]) -> Result<MasterPassword, DatabaseError> {
    let n = PASSWORD_CHARSET.len();
    // The largest multiple of n that fits a byte: bytes at or above it would favour the first
    // characters.
    let limit = 256 - 256 % n;
    let password: String = random
        .iter()
        .map(|&b| usize::from(b))
        .filter(|&b| b < limit)
        .map(|b| char::from(PASSWORD_CHARSET[b % n]))
        .take(PASSWORD_LEN)
        .collect();
    if password.len() < PASSWORD_LEN {
        return Err(DatabaseError::ShortRandom { got: password.len() });
    }
    Ok(MasterPassword(password))
}

// ---------------------------------------------------------------------------------------------
// RestoreDatabase.

/// Input of `restore-database`: the plan and the execution that owns the database.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RestoreDatabaseInput {
    pub request: ArchiveRequest,
    pub execution_id: String,
}

/// The deployment's network for temporary databases, read by `restore-database` from its
/// environment: the worker's compute must reach them there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreConfig {
    /// A DB subnet group of the VPC the Batch compute runs in.
    pub db_subnet_group_name: String,
    /// Security groups that let the worker's security group in on the engine's port.
    pub vpc_security_group_ids: Vec<String>,
    /// The deployment's (stack's) name: the value of [`TAG_MANAGED_BY`] on what it restores.
    pub deployment: String,
}

impl RestoreConfig {
    /// From the variables' values: the subnet group and a comma-separated list of security groups.
    pub fn from_values(
        db_subnet_group_name: &str,
        vpc_security_group_ids: &str,
        deployment: &str,
    ) -> Result<RestoreConfig, DatabaseError> {
        if deployment.trim().is_empty() {
            return Err(DatabaseError::InvalidConfig {
                field: "deployment",
                reason: "is empty: databases are tagged with it".into(),
            });
        }
        if db_subnet_group_name.trim().is_empty() {
            return Err(DatabaseError::InvalidConfig { field: "db_subnet_group_name", reason: "is empty".into() });
        }
        let groups: Vec<String> =
            vpc_security_group_ids.split(',').map(str::trim).filter(|g| !g.is_empty()).map(str::to_string).collect();
        if groups.is_empty() {
            return Err(DatabaseError::InvalidConfig {
                field: "vpc_security_group_ids",
                reason: "names no security group: the worker could not reach the database".into(),
            });
        }
        Ok(RestoreConfig {
            db_subnet_group_name: db_subnet_group_name.trim().to_string(),
            vpc_security_group_ids: groups,
            deployment: deployment.trim().to_string(),
        })
    }
}

/// What DescribeDBSnapshots or DescribeDBClusterSnapshots says about the snapshot.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DbSnapshotFacts {
    pub status: Option<String>,
    pub engine: Option<String>,
    pub master_username: Option<String>,
    pub port: Option<u16>,
}

/// The `SnapshotType` that DescribeDBSnapshots and DescribeDBClusterSnapshots need to find a
/// snapshot by identifier: automated (`rds:…`) and AWS Backup (`awsbackup:…`) snapshots are only
/// listed when their type is asked for.
/// <https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_DescribeDBSnapshots.html>
pub fn snapshot_type(snapshot_id: &str) -> Option<&'static str> {
    if snapshot_id.starts_with("rds:") {
        Some("automated")
    } else if snapshot_id.starts_with("awsbackup:") {
        Some("awsbackup")
    } else {
        None
    }
}

/// The restore calls' parameters, decided here so the Lambda only translates them to the SDK.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreRequest {
    pub names: DatabaseNames,
    /// What the restore names the snapshot by: its ARN when known (works across accounts that
    /// shared it), else its identifier.
    pub snapshot: String,
    pub engine: String,
    pub instance_class: &'static str,
    pub port: Option<u16>,
    pub db_subnet_group_name: String,
    pub vpc_security_group_ids: Vec<String>,
    pub tags: Vec<(String, String)>,
}

/// The restore of `request`'s snapshot, described by `facts`, for `execution_id`. Always not
/// publicly accessible and without deletion protection (set by the Lambda on every call).
pub fn restore_request(
    request: &ArchiveRequest,
    execution_id: &str,
    facts: &DbSnapshotFacts,
    config: &RestoreConfig,
) -> Result<RestoreRequest, DatabaseError> {
    let names = database_names(request, execution_id)?;
    let engine = facts.engine.clone().or_else(|| request.engine.clone()).ok_or(DatabaseError::InvalidInput {
        field: "engine",
        reason: "is unknown: the snapshot's description names none".into(),
    })?;
    if supported_methods(&engine).iter().all(|m| *m != DbMethod::Dump) {
        return Err(DatabaseError::InvalidInput { field: "engine", reason: format!("{engine} cannot be dumped") });
    }
    let is_cluster_engine = engine.starts_with("aurora");
    if is_cluster_engine != (names.shape == DatabaseShape::Cluster) {
        return Err(DatabaseError::InvalidInput {
            field: "kind",
            reason: format!("is {} but the engine is {engine}", request.kind),
        });
    }
    Ok(RestoreRequest {
        instance_class: instance_class(names.shape),
        names,
        snapshot: request.snapshot_arn.as_ref().map_or_else(|| request.snapshot_id.clone(), ToString::to_string),
        engine,
        port: facts.port,
        db_subnet_group_name: config.db_subnet_group_name.clone(),
        vpc_security_group_ids: config.vpc_security_group_ids.clone(),
        tags: database_tags(request, execution_id, &config.deployment),
    })
}

/// A DB instance or cluster as DescribeDBInstances or DescribeDBClusters reports it, reduced
/// to what the flow decides on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExistingDatabase {
    pub identifier: String,
    /// `DBInstanceStatus` or the cluster's `Status`: `creating`, `available`, `deleting`, …
    pub status: String,
    /// The value of [`TAG_EXECUTION`].
    pub execution: Option<String>,
    /// The value of [`TAG_MANAGED_BY`]: only databases of this deployment are ever deleted.
    pub managed_by: Option<String>,
}

impl ExistingDatabase {
    /// Tagged as `deployment`'s and `execution_id`'s: the only databases an execution reuses or deletes.
    pub fn is_owned_by(&self, execution_id: &str, deployment: &str) -> bool {
        self.managed_by.as_deref() == Some(deployment) && self.execution.as_deref() == Some(execution_id)
    }
}

/// What `restore-database` does given the database already using our identifier, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseClaim {
    /// An earlier attempt of this execution restored it.
    Reuse,
    /// Another execution is dumping the snapshot with it.
    Duplicate { execution: String },
    /// The database of an archive that ended is being deleted: retry later (`DbBusy`).
    Wait { status: String },
    /// Nobody has it: restore.
    Restore,
}

/// Decides whether to restore (see [`DatabaseClaim`]).
pub fn claim_database(existing: Option<&ExistingDatabase>, execution_id: &str, deployment: &str) -> DatabaseClaim {
    match existing {
        None => DatabaseClaim::Restore,
        Some(db) if db.is_owned_by(execution_id, deployment) => DatabaseClaim::Reuse,
        Some(db) if db.status == "deleting" => DatabaseClaim::Wait { status: db.status.clone() },
        Some(db) => DatabaseClaim::Duplicate {
            execution: db.execution.clone().unwrap_or_else(|| "something that is not backup-archiver".into()),
        },
    }
}

/// Output of `restore-database`, at `$.temporary_database`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemporaryDatabase {
    #[serde(flatten)]
    pub names: DatabaseNames,
    pub engine: String,
    pub instance_class: String,
    /// The snapshot's master user, whose password the flow sets.
    pub master_username: String,
    /// The dump job, all but its `host` and `port`, which [`check_database`] fills.
    pub job: ArchiveJob,
}

/// The names of the dump job's parameters; the job definition's command uses them
/// (`batch-worker dump --engine Ref::engine …`).
pub const DUMP_JOB_PARAMETERS: &[&str] =
    &["engine", "host", "port", "user", "password_parameter", "destination", "snapshot_id"];

/// The temporary database `restore` describes, with the dump job for it.
pub fn temporary_database(
    request: &ArchiveRequest,
    restore: &RestoreRequest,
    master_username: &str,
) -> Result<TemporaryDatabase, DatabaseError> {
    let queue = request.job_queue.clone().ok_or(DatabaseError::InvalidConfig {
        field: "job_queues",
        reason: "names no Batch job queue for the dump job".into(),
    })?;
    if master_username.is_empty() {
        return Err(DatabaseError::InvalidInput {
            field: "master_username",
            reason: "is unknown: the snapshot's description names none".into(),
        });
    }
    let parameters = BTreeMap::from([
        ("engine".to_string(), restore.engine.clone()),
        ("user".to_string(), master_username.to_string()),
        ("password_parameter".to_string(), restore.names.password_parameter.clone()),
        ("destination".to_string(), request.destination.to_string()),
        ("snapshot_id".to_string(), request.snapshot_id.clone()),
    ]);
    Ok(TemporaryDatabase {
        names: restore.names.clone(),
        engine: restore.engine.clone(),
        instance_class: restore.instance_class.to_string(),
        master_username: master_username.to_string(),
        job: ArchiveJob { queue, name: request.idempotency_key.clone(), parameters },
    })
}

// ---------------------------------------------------------------------------------------------
// CheckDatabase.

/// Input of `check-database` (and of `set-database-password`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckDatabaseInput {
    pub database: TemporaryDatabase,
}

/// What `check-database` saw of the instance (and, for Aurora, its cluster).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DatabaseObservation {
    /// `None`: it does not exist.
    pub instance_status: Option<String>,
    pub cluster_status: Option<String>,
    /// A ModifyDB* of the master password not applied yet (`PendingModifiedValues`).
    pub password_pending: bool,
    /// The instance's endpoint, or the cluster's (writer) endpoint for Aurora.
    pub address: Option<String>,
    pub port: Option<u16>,
}

/// Whether a DB instance or cluster in `status` can be used now, later, or never.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatabaseReadiness {
    Ready,
    NotYet,
    Never,
}

/// Reads `DBInstanceStatus` and a cluster's `Status`.
/// <https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/accessing-monitoring.html#Overview.DBInstance.Status>
pub fn database_readiness(status: &str) -> DatabaseReadiness {
    match status {
        "available" => DatabaseReadiness::Ready,
        // On the way to available: a restore creates, backs up and configures; ModifyDB*
        // (the password) modifies or resets the master credentials.
        "creating"
        | "backing-up"
        | "modifying"
        | "resetting-master-credentials"
        | "configuring-enhanced-monitoring"
        | "configuring-iam-database-auth"
        | "configuring-log-exports"
        | "rebooting"
        | "renaming"
        | "starting"
        | "upgrading"
        | "maintenance"
        | "storage-optimization"
        | "migrating"
        | "preparing-data-migration" => DatabaseReadiness::NotYet,
        // failed, restore-error, incompatible-*, inaccessible-encryption-credentials*,
        // storage-full, stopped, stopping, deleting, …
        _ => DatabaseReadiness::Never,
    }
}

/// Output of `check-database`, at `$.database_endpoint`: where the worker connects, and the
/// complete dump job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatabaseEndpoint {
    pub address: String,
    pub port: u16,
    pub job: ArchiveJob,
}

/// Fails `DbNotReady` until everything of `database` is available with no password change
/// pending, `DbFailed` if it never will be; else its endpoint and the job to run against it.
pub fn check_database(
    database: &TemporaryDatabase,
    observed: &DatabaseObservation,
) -> Result<DatabaseEndpoint, DatabaseError> {
    let mut parts = vec![(&database.names.instance_identifier, &observed.instance_status)];
    if let Some(cluster) = &database.names.cluster_identifier {
        parts.insert(0, (cluster, &observed.cluster_status));
    }
    for (identifier, status) in parts {
        let status = status.clone().unwrap_or_else(|| "deleted".to_string());
        match database_readiness(&status) {
            DatabaseReadiness::Ready => {}
            DatabaseReadiness::NotYet => {
                return Err(DatabaseError::NotReady { identifier: identifier.clone(), status })
            }
            DatabaseReadiness::Never => return Err(DatabaseError::Failed { identifier: identifier.clone(), status }),
        }
    }
    let identifier = &database.names.instance_identifier;
    if observed.password_pending {
        return Err(DatabaseError::NotReady {
            identifier: identifier.clone(),
            status: "available with the master password change pending".into(),
        });
    }
    let (Some(address), Some(port)) = (observed.address.clone(), observed.port) else {
        return Err(DatabaseError::NotReady {
            identifier: identifier.clone(),
            status: "available without an endpoint".into(),
        });
    };
    let mut job = database.job.clone();
    job.parameters.insert("host".to_string(), address.clone());
    job.parameters.insert("port".to_string(), port.to_string());
    Ok(DatabaseEndpoint { address, port, job })
}

// ---------------------------------------------------------------------------------------------
// DeleteDatabase.

/// Input of `delete-database` (states `DeleteDatabase` and `Cleanup`): the execution and its
/// whole document, which may be a full state, a plan, or the raw event of a Plan that failed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeleteDatabaseInput {
    pub execution_id: String,
    pub state: Value,
}

/// What `delete-database` does with one instance or cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseRelease {
    /// It does not exist, or is being deleted.
    Gone,
    /// Not tagged as ours and this execution's (a duplicate's, or someone else's): left alone.
    NotOurs,
    Delete,
}

/// Decides how to get rid of `existing`, which carries one of this execution's identifiers.
pub fn release_database(existing: Option<&ExistingDatabase>, execution_id: &str, deployment: &str) -> DatabaseRelease {
    match existing {
        None => DatabaseRelease::Gone,
        Some(db) if db.status == "deleting" => DatabaseRelease::Gone,
        Some(db) if db.is_owned_by(execution_id, deployment) => DatabaseRelease::Delete,
        Some(_) => DatabaseRelease::NotOurs,
    }
}

/// The names of this execution's database, from its document: `None` when the document holds no
/// plan for the dump flow (a Plan that failed: nothing was restored).
pub fn names_in(state: &Value, execution_id: &str) -> Option<DatabaseNames> {
    let request: ArchiveRequest = serde_json::from_value(state.clone()).ok()?;
    database_names(&request, execution_id).ok()
}

/// Output of `delete-database`, at `$.deleted_database`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeletedDatabase {
    /// Instances and clusters this call deleted (or asked RDS to delete).
    pub deleted: Vec<String>,
    /// Those already gone or being deleted.
    pub already_gone: Vec<String>,
    /// Those using our identifiers that belong to another execution: never touched.
    #[serde(default)]
    pub not_ours: Vec<String>,
    /// The password parameter was deleted by this call (false: it was already gone).
    pub password_parameter_deleted: bool,
}

// ---------------------------------------------------------------------------------------------
// The whole document.

/// The dump flow's steps: the temporary database, its endpoint once available, the dump job, the
/// database's deletion, the archive's verification.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RdsDumpSteps {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temporary_database: Option<TemporaryDatabase>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database_endpoint: Option<DatabaseEndpoint>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<JobResult>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted_database: Option<DeletedDatabase>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification: Option<Verification>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::TriggerEvent;
    use crate::request::{plan_archive, PlanConfig, PlanOutcome, SnapshotFacts};

    const EXECUTION: &str = "arn:aws:states:eu-west-1:111122223333:execution:rds-dump:e1";
    const DEPLOYMENT: &str = "archiver-prod";

    fn request(fixture: &str) -> ArchiveRequest {
        let event = TriggerEvent::from_json(fixture.as_bytes()).unwrap();
        let config: PlanConfig = serde_json::from_value(serde_json::json!({
            "destination": {"bucket": "example-archive", "prefix": "backups"},
            "availability_zones": ["eu-west-1a"],
            "job_queues": {"eu-west-1a": "arn:aws:batch:eu-west-1:111122223333:job-queue/archive-a"},
        }))
        .unwrap();
        let facts = SnapshotFacts { source_resource_id: Some("orders".into()), ..SnapshotFacts::default() };
        let Ok(PlanOutcome::Planned(request)) =
            plan_archive(&event, &facts, &config, "2025-03-04T03:00:00Z".parse().unwrap())
        else {
            panic!("{fixture} plans")
        };
        *request
    }

    fn rds() -> ArchiveRequest {
        request(r#"{"snapshot": "arn:aws:rds:eu-west-1:111122223333:snapshot:orders-2025-03-04", "method": "dump"}"#)
    }

    fn aurora() -> ArchiveRequest {
        request(include_str!("../../tests/fixtures/manual-aurora-snapshot-dump.json"))
    }

    fn config() -> RestoreConfig {
        RestoreConfig::from_values("backup-archiver-dumps", "sg-1, sg-2", DEPLOYMENT).unwrap()
    }

    fn facts(engine: &str) -> DbSnapshotFacts {
        DbSnapshotFacts {
            status: Some("available".into()),
            engine: Some(engine.into()),
            master_username: Some("admin".into()),
            port: Some(5432),
        }
    }

    #[test]
    fn a_db_snapshot_restores_to_a_small_instance_of_ours() {
        let request = rds();
        let restore = restore_request(&request, EXECUTION, &facts("postgres"), &config()).unwrap();
        assert_eq!(restore.names.shape, DatabaseShape::Instance);
        assert_eq!(restore.names.cluster_identifier, None);
        assert_eq!(restore.instance_class, "db.t4g.small");
        assert_eq!(restore.snapshot, "arn:aws:rds:eu-west-1:111122223333:snapshot:orders-2025-03-04");
        assert_eq!(restore.vpc_security_group_ids, ["sg-1", "sg-2"]);
        assert!(restore.tags.contains(&(TAG_EXECUTION.to_string(), EXECUTION.to_string())));
        assert!(restore.tags.contains(&(TAG_MANAGED_BY.to_string(), DEPLOYMENT.to_string())));
        assert_eq!(restore, restore_request(&request, EXECUTION, &facts("postgres"), &config()).unwrap(), "stable");
    }

    #[test]
    fn a_cluster_snapshot_restores_to_a_cluster_and_one_medium_instance() {
        let request = aurora();
        let restore = restore_request(&request, EXECUTION, &facts("aurora-postgresql"), &config()).unwrap();
        let cluster = restore.names.cluster_identifier.clone().unwrap();
        assert_eq!(restore.names.instance_identifier, format!("{cluster}-1"));
        assert_eq!(restore.instance_class, "db.t4g.medium");
        assert!(restore.names.instance_identifier.len() <= 63);
    }

    #[test]
    fn restore_rejects_a_mismatched_engine_or_an_unknown_one() {
        let error = restore_request(&rds(), EXECUTION, &facts("aurora-mysql"), &config()).unwrap_err();
        assert_eq!((error.error_name(), error.to_string().contains("kind")), (errors::INVALID_EVENT, true), "{error}");
        let error = restore_request(&rds(), EXECUTION, &facts("oracle-ee"), &config()).unwrap_err();
        assert!(error.to_string().contains("`engine`"), "{error}");
        let unknown = DbSnapshotFacts { engine: None, ..facts("postgres") };
        let error = restore_request(&rds(), EXECUTION, &unknown, &config()).unwrap_err();
        assert!(error.to_string().contains("`engine`"), "{error}");
    }

    #[test]
    fn names_refuse_an_export_plan_and_an_empty_execution() {
        let mut export = rds();
        export.method = Some(DbMethod::Export);
        assert!(database_names(&export, EXECUTION).unwrap_err().to_string().contains("`method`"));
        assert!(database_names(&rds(), "").unwrap_err().to_string().contains("`execution_id`"));
    }

    #[test]
    fn automated_and_aws_backup_snapshots_are_described_by_type() {
        assert_eq!(snapshot_type("rds:orders-2025-03-04-02-17"), Some("automated"));
        assert_eq!(snapshot_type("awsbackup:job-3e4f"), Some("awsbackup"));
        assert_eq!(snapshot_type("orders-before-upgrade"), None);
    }

    #[test]
    fn restore_config_names_the_bad_setting() {
        assert!(RestoreConfig::from_values(" ", "sg-1", DEPLOYMENT)
            .unwrap_err()
            .to_string()
            .contains("db_subnet_group_name"));
        assert!(RestoreConfig::from_values("g", " , ", DEPLOYMENT)
            .unwrap_err()
            .to_string()
            .contains("vpc_security_group_ids"));
        assert!(RestoreConfig::from_values("g", "sg-1", " ").unwrap_err().to_string().contains("deployment"));
    }

    #[test]
    fn passwords_use_the_charset_and_the_length_rds_accepts() {
        let random: Vec<u8> = (0..PASSWORD_RANDOM_BYTES).map(|i| (i * 37 % 256) as u8).collect();
        let password = master_password(&random).unwrap();
        assert_eq!(password.expose().len(), PASSWORD_LEN);
        assert!(password.expose().bytes().all(|b| PASSWORD_CHARSET.contains(&b)));
        for forbidden in [b'/', b'"', b'@', b' ', b'\'', b'\\', b'#', b';', b'$', b'`'] {
            assert!(!PASSWORD_CHARSET.contains(&forbidden), "{}", forbidden as char);
        }
        assert!(PASSWORD_CHARSET.iter().all(|b| b.is_ascii_graphic()));
        assert_eq!(format!("{password:?}"), "MasterPassword(<redacted>)", "Debug never shows it");
    }

    #[test]
    fn passwords_skip_biased_bytes_and_need_enough_of_them() {
        // The first byte that would bias the choice: it and all above it are skipped.
        let first_biased = (256 - 256 % PASSWORD_CHARSET.len()) as u8;
        assert_eq!(
            master_password(&[first_biased; PASSWORD_RANDOM_BYTES]).unwrap_err(),
            DatabaseError::ShortRandom { got: 0 }
        );
        assert_eq!(
            master_password(&[255u8; PASSWORD_RANDOM_BYTES]).unwrap_err(),
            DatabaseError::ShortRandom { got: 0 }
        );
        assert_eq!(master_password(&[0u8; 10]).unwrap_err().error_name(), errors::RETRYABLE);
        let mut random = vec![first_biased; 40];
        random.extend([0u8; PASSWORD_LEN]);
        assert_eq!(master_password(&random).unwrap().expose(), "A".repeat(PASSWORD_LEN));
    }

    #[test]
    fn claim_reuses_its_own_database_and_refuses_another_executions() {
        let db = |execution: &str, status: &str| ExistingDatabase {
            identifier: "ba-x".into(),
            status: status.into(),
            execution: Some(execution.into()),
            managed_by: Some(DEPLOYMENT.into()),
        };
        assert_eq!(claim_database(None, EXECUTION, DEPLOYMENT), DatabaseClaim::Restore);
        assert_eq!(claim_database(Some(&db(EXECUTION, "creating")), EXECUTION, DEPLOYMENT), DatabaseClaim::Reuse);
        assert_eq!(
            claim_database(Some(&db("other", "available")), EXECUTION, DEPLOYMENT),
            DatabaseClaim::Duplicate { execution: "other".into() }
        );
        assert_eq!(
            claim_database(Some(&db("other", "deleting")), EXECUTION, DEPLOYMENT),
            DatabaseClaim::Wait { status: "deleting".into() }
        );
    }

    #[test]
    fn release_deletes_only_this_executions_databases() {
        let mut db = ExistingDatabase {
            identifier: "ba-x".into(),
            status: "creating".into(),
            execution: Some(EXECUTION.into()),
            managed_by: Some(DEPLOYMENT.into()),
        };
        assert_eq!(
            release_database(Some(&db), EXECUTION, DEPLOYMENT),
            DatabaseRelease::Delete,
            "even one stuck in creating"
        );
        assert_eq!(release_database(Some(&db), "another", DEPLOYMENT), DatabaseRelease::NotOurs);
        db.status = "deleting".into();
        assert_eq!(release_database(Some(&db), EXECUTION, DEPLOYMENT), DatabaseRelease::Gone);
        db.status = "available".into();
        db.managed_by = None;
        assert_eq!(release_database(Some(&db), EXECUTION, DEPLOYMENT), DatabaseRelease::NotOurs);
        db.managed_by = Some("archiver-staging".into());
        assert_eq!(
            release_database(Some(&db), EXECUTION, DEPLOYMENT),
            DatabaseRelease::NotOurs,
            "another deployment's"
        );
        assert_eq!(release_database(None, EXECUTION, DEPLOYMENT), DatabaseRelease::Gone);
    }

    fn temporary(request: &ArchiveRequest, engine: &str) -> TemporaryDatabase {
        let restore = restore_request(request, EXECUTION, &facts(engine), &config()).unwrap();
        temporary_database(request, &restore, "admin").unwrap()
    }

    #[test]
    fn check_waits_for_instance_cluster_and_password_then_completes_the_job() {
        let database = temporary(&aurora(), "aurora-postgresql");
        let mut seen = DatabaseObservation {
            instance_status: Some("creating".into()),
            cluster_status: Some("creating".into()),
            password_pending: false,
            address: Some("ba-x.cluster-abc.eu-west-1.rds.amazonaws.com".into()),
            port: Some(5432),
        };
        let not_ready = check_database(&database, &seen).unwrap_err();
        assert_eq!(not_ready.error_name(), errors::DB_NOT_READY);
        assert!(not_ready
            .to_string()
            .starts_with(&format!("DB {} ", database.names.cluster_identifier.as_ref().unwrap())));
        seen.cluster_status = Some("available".into());
        assert_eq!(check_database(&database, &seen).unwrap_err().error_name(), errors::DB_NOT_READY);
        seen.instance_status = Some("available".into());
        seen.password_pending = true;
        assert_eq!(check_database(&database, &seen).unwrap_err().error_name(), errors::DB_NOT_READY);
        seen.password_pending = false;
        let endpoint = check_database(&database, &seen).unwrap();
        let names: Vec<&str> = endpoint.job.parameters.keys().map(String::as_str).collect();
        let mut expected = DUMP_JOB_PARAMETERS.to_vec();
        expected.sort_unstable();
        assert_eq!(names, expected);
        assert_eq!(endpoint.job.parameters["port"], "5432");
        assert_eq!(endpoint.job.parameters["password_parameter"], database.names.password_parameter);
        assert!(
            !serde_json::to_string(&endpoint).unwrap().contains("password\":"),
            "only the parameter's name travels"
        );
    }

    #[test]
    fn check_gives_up_on_a_database_that_will_never_be_available() {
        let database = temporary(&rds(), "postgres");
        for never in ["failed", "incompatible-restore", "restore-error", "storage-full", "deleting"] {
            let seen = DatabaseObservation { instance_status: Some(never.into()), ..Default::default() };
            assert_eq!(check_database(&database, &seen).unwrap_err().error_name(), errors::DB_FAILED, "{never}");
        }
        let gone = DatabaseObservation::default();
        assert_eq!(check_database(&database, &gone).unwrap_err().error_name(), errors::DB_FAILED);
    }

    #[test]
    fn temporary_database_needs_a_queue_and_a_master_user() {
        let mut request = rds();
        let restore = restore_request(&request, EXECUTION, &facts("postgres"), &config()).unwrap();
        assert!(temporary_database(&request, &restore, "").unwrap_err().to_string().contains("master_username"));
        request.job_queue = None;
        assert_eq!(temporary_database(&request, &restore, "admin").unwrap_err().error_name(), errors::INVALID_CONFIG);
    }

    #[test]
    fn names_come_from_the_plan_in_the_document() {
        let request = rds();
        let mut state = serde_json::to_value(&request).unwrap();
        state["error"] = serde_json::json!({"Error": "DbNotReady", "Cause": "creating"});
        assert_eq!(names_in(&state, EXECUTION), Some(database_names(&request, EXECUTION).unwrap()));
        assert_eq!(names_in(&serde_json::json!({"snapshot": "x"}), EXECUTION), None, "a failed Plan restored nothing");
    }

    #[test]
    fn every_database_error_has_a_known_name() {
        let all = [
            DatabaseError::InvalidConfig { field: "f", reason: "r".into() },
            DatabaseError::InvalidInput { field: "f", reason: "r".into() },
            DatabaseError::Duplicate { snapshot_id: "s".into(), execution: "e".into(), identifier: "i".into() },
            DatabaseError::NotReady { identifier: "i".into(), status: "creating".into() },
            DatabaseError::Failed { identifier: "i".into(), status: "failed".into() },
            DatabaseError::Busy { identifier: "i".into(), status: "deleting".into(), what: "w" },
            DatabaseError::ShortRandom { got: 0 },
        ];
        for error in all {
            assert!(errors::is_known(error.error_name()), "{error}");
        }
    }
}
