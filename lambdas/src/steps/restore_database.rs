//! The `restore-database` Lambda (state `RestoreDatabase`): restores the snapshot of a dump to a
//! temporary DB instance (or an Aurora cluster and one instance in it) that is not publicly
//! accessible, in the configured DB subnet group and security groups, tagged with the execution
//! that owns it; and stores a new random master password in an SSM SecureString parameter, which
//! `set-database-password` applies once the instance is available (a restore keeps the
//! snapshot's password). Returns the names and the dump job; never the password.
//!
//! Idempotent: the identifiers are the snapshot's, so a retried invocation finds the database its
//! first attempt restored (tagged with this execution) and reuses it, while another execution's
//! restore fails `DBInstanceAlreadyExists` and ends `DuplicateArchive`.
//!
//! Configuration: `DB_SUBNET_GROUP_NAME` and `DB_SECURITY_GROUP_IDS` (comma-separated).
//! Decisions: [`archiver_core::flows::rds_dump`]'s [`restore_request`], [`claim_database`],
//! [`master_password`], [`temporary_database`].

use crate::common::{databases, parse_input, required_env, AwsFailure, StepError, DEPLOYMENT_NAME_ENV};
use archiver_core::aws_error::AwsErrorClass;
use archiver_core::errors;
use archiver_core::flows::rds_dump::{
    claim_database, master_password, restore_request, temporary_database, DatabaseClaim, DatabaseError, DatabaseShape,
    DbSnapshotFacts, ExistingDatabase, RestoreConfig, RestoreDatabaseInput, RestoreRequest, TemporaryDatabase,
    PASSWORD_RANDOM_BYTES,
};
use archiver_core::request::{snapshot_readiness, Readiness};
use aws_sdk_rds::Client as Rds;
use aws_sdk_ssm::types::{ParameterType, Tag as SsmTag};
use aws_sdk_ssm::Client as Ssm;
use lambda_runtime::{service_fn, LambdaEvent};
use serde_json::Value;

struct Clients {
    rds: Rds,
    ssm: Ssm,
}

/// Serves the `restore-database` handler: builds its clients, then answers invocations until the runtime stops.
pub async fn run() -> Result<(), lambda_runtime::Error> {
    let config = restore_config();
    if let Err(error) = &config {
        tracing::error!(%error, "bad configuration: every invocation will fail");
    }
    let aws = crate::common::aws_config().await;
    let clients = Clients { rds: Rds::new(&aws), ssm: Ssm::new(&aws) };
    let (clients, config) = (&clients, &config);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        let config = config.as_ref().map_err(Clone::clone)?;
        restore_database(clients, config, parse_input(event.payload)?).await
    }))
    .await
}

fn restore_config() -> Result<RestoreConfig, StepError> {
    RestoreConfig::from_values(
        &required_env("DB_SUBNET_GROUP_NAME")?,
        &required_env("DB_SECURITY_GROUP_IDS")?,
        &required_env(DEPLOYMENT_NAME_ENV)?,
    )
    .map_err(StepError::from)
}

#[tracing::instrument(skip_all, fields(snapshot_id = input.request.snapshot_id, execution_id = input.execution_id))]
async fn restore_database(
    clients: &Clients,
    config: &RestoreConfig,
    input: RestoreDatabaseInput,
) -> Result<TemporaryDatabase, StepError> {
    let request = &input.request;
    let execution_id = &input.execution_id;
    let shape = archiver_core::flows::rds_dump::database_names(request, execution_id)?.shape;
    let facts = describe_snapshot(&clients.rds, &request.snapshot_id, shape).await?;
    let restore = restore_request(request, execution_id, &facts, config)?;
    let master_username = facts.master_username.as_deref().unwrap_or_default();
    let database = temporary_database(request, &restore, master_username)?;
    let names = &restore.names;
    let primary = names.cluster_identifier.as_ref().unwrap_or(&names.instance_identifier);

    match claim_database(owner(&clients.rds, shape, primary).await?.as_ref(), execution_id, &config.deployment) {
        DatabaseClaim::Reuse => {
            tracing::info!(identifier = primary, "reusing the database an earlier attempt restored")
        }
        DatabaseClaim::Restore => {
            store_password(&clients.ssm, &restore).await?;
            if !restore_from_snapshot(&clients.rds, &restore).await? {
                // Another execution restored it between our look and our call.
                let existing = owner(&clients.rds, shape, primary).await?;
                if claim_database(existing.as_ref(), execution_id, &config.deployment) != DatabaseClaim::Reuse {
                    return Err(duplicate(request, existing.and_then(|e| e.execution), primary));
                }
            }
        }
        DatabaseClaim::Duplicate { execution } => return Err(duplicate(request, Some(execution), primary)),
        DatabaseClaim::Wait { status } => {
            return Err(StepError::from(DatabaseError::Busy {
                identifier: primary.clone(),
                status,
                what: "restoring the snapshot again",
            }))
        }
    }
    if shape == DatabaseShape::Cluster {
        create_cluster_instance(&clients.rds, &restore).await?;
    }
    tracing::info!(
        instance = names.instance_identifier,
        cluster = names.cluster_identifier,
        engine = database.engine,
        instance_class = database.instance_class,
        password_parameter = names.password_parameter,
        "restore under way"
    );
    Ok(database)
}

fn duplicate(
    request: &archiver_core::request::ArchiveRequest,
    execution: Option<String>,
    identifier: &str,
) -> StepError {
    StepError::from(DatabaseError::Duplicate {
        snapshot_id: request.snapshot_id.clone(),
        execution: execution.unwrap_or_else(|| "another execution".into()),
        identifier: identifier.to_string(),
    })
}

/// The instance (or cluster) already using the primary identifier.
async fn owner(rds: &Rds, shape: DatabaseShape, identifier: &str) -> Result<Option<ExistingDatabase>, StepError> {
    Ok(match shape {
        DatabaseShape::Instance => {
            databases::instance(rds, identifier).await?.as_ref().map(databases::existing_instance)
        }
        DatabaseShape::Cluster => databases::cluster(rds, identifier).await?.as_ref().map(databases::existing_cluster),
    })
}

/// The snapshot's state, engine, port and master user (DescribeDBSnapshots or
/// DescribeDBClusterSnapshots).
async fn describe_snapshot(rds: &Rds, snapshot_id: &str, shape: DatabaseShape) -> Result<DbSnapshotFacts, StepError> {
    let not_found = |failure: AwsFailure| match failure.class {
        AwsErrorClass::NotFound => StepError::new(errors::SNAPSHOT_NOT_FOUND, failure.message),
        _ => failure.into_step_error(errors::DB_OPERATION_FAILED),
    };
    let snapshot_type = archiver_core::flows::rds_dump::snapshot_type(snapshot_id);
    let facts = match shape {
        DatabaseShape::Instance => {
            let output = rds
                .describe_db_snapshots()
                .db_snapshot_identifier(snapshot_id)
                .set_snapshot_type(snapshot_type.map(str::to_string))
                .send()
                .await
                .map_err(|e| not_found(AwsFailure::of(&format!("DescribeDBSnapshots {snapshot_id}"), &e)))?;
            let s = output.db_snapshots().first().ok_or_else(|| missing(snapshot_id))?;
            DbSnapshotFacts {
                status: s.status().map(str::to_string),
                engine: s.engine().map(str::to_string),
                master_username: s.master_username().map(str::to_string),
                port: s.port().and_then(|p| u16::try_from(p).ok()),
            }
        }
        DatabaseShape::Cluster => {
            let output = rds
                .describe_db_cluster_snapshots()
                .db_cluster_snapshot_identifier(snapshot_id)
                .set_snapshot_type(snapshot_type.map(str::to_string))
                .send()
                .await
                .map_err(|e| not_found(AwsFailure::of(&format!("DescribeDBClusterSnapshots {snapshot_id}"), &e)))?;
            let s = output.db_cluster_snapshots().first().ok_or_else(|| missing(snapshot_id))?;
            DbSnapshotFacts {
                status: s.status().map(str::to_string),
                engine: s.engine().map(str::to_string),
                master_username: s.master_username().map(str::to_string),
                port: s.port().and_then(|p| u16::try_from(p).ok()),
            }
        }
    };
    match facts.status.as_deref().map(snapshot_readiness) {
        Some(Readiness::Ready) | None => Ok(facts),
        Some(Readiness::NotYet) => Err(StepError::new(
            errors::SNAPSHOT_NOT_READY,
            format!("snapshot {snapshot_id} is {}", facts.status.as_deref().unwrap_or_default()),
        )),
        Some(Readiness::Unusable) => Err(StepError::new(
            errors::SNAPSHOT_UNUSABLE,
            format!("snapshot {snapshot_id} is {}", facts.status.as_deref().unwrap_or_default()),
        )),
    }
}

fn missing(snapshot_id: &str) -> StepError {
    StepError::new(errors::SNAPSHOT_NOT_FOUND, format!("snapshot {snapshot_id}: no such snapshot"))
}

/// Creates the password parameter with a new password, unless an earlier attempt of this
/// execution did (the name is per execution, so an existing one is ours).
async fn store_password(ssm: &Ssm, restore: &RestoreRequest) -> Result<(), StepError> {
    let mut random = [0u8; PASSWORD_RANDOM_BYTES];
    getrandom::getrandom(&mut random)
        .map_err(|e| StepError::new(errors::RETRYABLE, format!("the operating system's random source failed: {e}")))?;
    let password = master_password(&random)?;
    let name = &restore.names.password_parameter;
    let tags: Vec<SsmTag> = restore
        .tags
        .iter()
        .map(|(k, v)| SsmTag::builder().key(k).value(v).build().expect("key and value are set"))
        .collect();
    let call = ssm
        .put_parameter()
        .name(name)
        .description("backup-archiver: master password of a temporary database restored for a dump")
        .value(password.expose())
        .r#type(ParameterType::SecureString)
        .overwrite(false)
        .set_tags(Some(tags));
    match call.send().await {
        Ok(_) => {
            tracing::info!(password_parameter = name, "stored a new master password");
            Ok(())
        }
        Err(e) => {
            let failure = AwsFailure::of(&format!("PutParameter {name}"), &e);
            if failure.code.as_deref() == Some("ParameterAlreadyExists") {
                tracing::info!(password_parameter = name, "an earlier attempt stored the password");
                return Ok(());
            }
            Err(failure.into_step_error(errors::DB_OPERATION_FAILED))
        }
    }
}

/// Starts the restore; `false` when the identifier is taken already.
async fn restore_from_snapshot(rds: &Rds, restore: &RestoreRequest) -> Result<bool, StepError> {
    let names = &restore.names;
    let tags = databases::tags(&restore.tags);
    let groups = Some(restore.vpc_security_group_ids.clone());
    let result = match &names.cluster_identifier {
        None => rds
            .restore_db_instance_from_db_snapshot()
            .db_instance_identifier(&names.instance_identifier)
            .db_snapshot_identifier(&restore.snapshot)
            .db_instance_class(restore.instance_class)
            .db_subnet_group_name(&restore.db_subnet_group_name)
            .set_vpc_security_group_ids(groups)
            .publicly_accessible(false)
            .multi_az(false)
            .deletion_protection(false)
            .set_tags(Some(tags))
            .send()
            .await
            .map(drop)
            .map_err(|e| AwsFailure::of(&format!("RestoreDBInstanceFromDBSnapshot {}", names.instance_identifier), &e)),
        Some(cluster) => rds
            .restore_db_cluster_from_snapshot()
            .db_cluster_identifier(cluster)
            .snapshot_identifier(&restore.snapshot)
            .engine(&restore.engine)
            .db_subnet_group_name(&restore.db_subnet_group_name)
            .set_vpc_security_group_ids(groups)
            .deletion_protection(false)
            .set_tags(Some(tags))
            .send()
            .await
            .map(drop)
            .map_err(|e| AwsFailure::of(&format!("RestoreDBClusterFromSnapshot {cluster}"), &e)),
    };
    match result {
        Ok(()) => Ok(true),
        Err(failure)
            if matches!(failure.code.as_deref(), Some("DBInstanceAlreadyExists" | "DBClusterAlreadyExistsFault")) =>
        {
            Ok(false)
        }
        Err(failure) => Err(failure.into_step_error(errors::DB_OPERATION_FAILED)),
    }
}

/// The one instance of a restored Aurora cluster (a cluster restores without any), unless an
/// earlier attempt created it.
async fn create_cluster_instance(rds: &Rds, restore: &RestoreRequest) -> Result<(), StepError> {
    let names = &restore.names;
    let cluster = names.cluster_identifier.as_deref().expect("a cluster's names have a cluster");
    if databases::instance(rds, &names.instance_identifier).await?.is_some() {
        return Ok(());
    }
    let call = rds
        .create_db_instance()
        .db_instance_identifier(&names.instance_identifier)
        .db_cluster_identifier(cluster)
        .engine(&restore.engine)
        .db_instance_class(restore.instance_class)
        .publicly_accessible(false)
        .set_tags(Some(databases::tags(&restore.tags)));
    match call.send().await {
        Ok(_) => Ok(()),
        Err(e) => {
            let failure = AwsFailure::of(&format!("CreateDBInstance {} in {cluster}", names.instance_identifier), &e);
            if failure.code.as_deref() == Some("DBInstanceAlreadyExists") {
                return Ok(());
            }
            Err(failure.into_step_error(errors::DB_OPERATION_FAILED))
        }
    }
}
