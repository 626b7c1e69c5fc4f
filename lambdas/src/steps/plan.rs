//! The `plan` Lambda, first state of every flow: any trigger (EventBridge, SNS, manual input)
//! becomes an [`ArchiveRequest`](archiver_core::request::ArchiveRequest), a skip, or an error
//! with a stable name. Its AWS calls are lookups: the snapshot the event names, described with
//! DescribeSnapshots (EBS), DescribeDBSnapshots (RDS) or DescribeDBClusterSnapshots (Aurora) for its
//! state, size, encryption, engine and source, and a HeadObject of the planned archive's manifest, whose presence
//! makes a
//! later duplicate of the trigger a `DuplicateArchive` instead of a second archive. Every
//! decision is [`archiver_core::request`]'s.
//!
//! Configuration: `PLAN_CONFIG`, the JSON of [`PlanConfig`], read once at start. A bad one fails
//! every invocation with `InvalidConfig` and a message naming the setting.

use crate::common::{required_env, AwsFailure, StepError};
use archiver_core::alert::archive_skip;
use archiver_core::aws_error::AwsErrorClass;
use archiver_core::document::FlowError;
use archiver_core::errors;
use archiver_core::event::TriggerEvent;
use archiver_core::manifest::MANIFEST_NAME;
use archiver_core::request::{
    archive_target, plan_archive, rds_snapshot_type, ArchiveRequest, PlanConfig, PlanError, PlanOutcome, SnapshotFacts,
    Targeting,
};
use archiver_core::resource::ResourceKind;
use aws_sdk_ec2::Client;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use chrono::{DateTime, Utc};
use lambda_runtime::{service_fn, LambdaEvent};
use serde_json::Value;

/// The environment variable holding [`PlanConfig`] as JSON.
const PLAN_CONFIG_ENV: &str = "PLAN_CONFIG";
/// EC2 reports volume sizes, and RDS allocated storage, in GiB.
const GIB: u64 = 1 << 30;
/// The volume id EC2 gives snapshots copied from another region or account: not a real volume.
/// <https://docs.aws.amazon.com/ebs/latest/userguide/ebs-copy-snapshot.html>
const PLACEHOLDER_VOLUME_ID: &str = "vol-ffffffff";

/// Serves the `plan` handler: builds its clients, then answers invocations until the runtime stops.
pub async fn run() -> Result<(), lambda_runtime::Error> {
    let config = plan_config();
    if let Err(error) = &config {
        tracing::error!(%error, "bad configuration: every invocation will fail");
    }
    let aws = crate::common::aws_config().await;
    let clients =
        Clients { ec2: Client::new(&aws), rds: aws_sdk_rds::Client::new(&aws), s3: crate::common::s3_client(&aws) };
    let (clients, config) = (&clients, &config);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        plan(clients, config.as_ref().map_err(Clone::clone)?, &event.payload, Utc::now()).await
    }))
    .await
}

/// The services `plan` looks things up in.
struct Clients {
    ec2: Client,
    rds: aws_sdk_rds::Client,
    s3: aws_sdk_s3::Client,
}

fn plan_config() -> Result<PlanConfig, StepError> {
    let text = required_env(PLAN_CONFIG_ENV)?;
    let config: PlanConfig = serde_json::from_str(&text)
        .map_err(|e| StepError::config(format!("{PLAN_CONFIG_ENV} is not a plan configuration: {e}")))?;
    config.validate()?;
    Ok(config)
}

/// Plans the archive `payload` asks for. Skips and malformed events make no AWS call.
#[tracing::instrument(skip_all)]
async fn plan(
    clients: &Clients,
    config: &PlanConfig,
    payload: &Value,
    now: DateTime<Utc>,
) -> Result<PlanOutcome, StepError> {
    let event = match TriggerEvent::from_value(payload) {
        Ok(event) => event,
        Err(error) => match archive_skip(payload) {
            // A valid AWS Backup event that is no trigger: the relay's, not an invalid input.
            Some(reason) => {
                tracing::info!(%reason, "skipped");
                return Ok(PlanOutcome::skipped(reason));
            }
            None => return Err(PlanError::InvalidEvent(error).into()),
        },
    };
    let target = match archive_target(&event, config)? {
        Targeting::Skip(reason) => {
            tracing::info!(shape = event.shape(), %reason, "skipped");
            return Ok(PlanOutcome::skipped(reason));
        }
        Targeting::Target(target) => target,
    };
    let facts = match target.kind {
        ResourceKind::Ebs => describe_snapshot(&clients.ec2, &target.snapshot_id).await?,
        ResourceKind::Rds => describe_db_snapshot(&clients.rds, &target.snapshot_id).await?,
        ResourceKind::Aurora => describe_cluster_snapshot(&clients.rds, &target.snapshot_id).await?,
        // A DynamoDB backup's plan needs no fact beyond the event's.
        ResourceKind::DynamoDb => SnapshotFacts::default(),
    };
    let outcome = plan_archive(&event, &facts, config, now)?;
    if let PlanOutcome::Planned(request) = &outcome {
        refuse_if_archived(&clients.s3, request).await?;
    }
    match &outcome {
        PlanOutcome::Planned(request) => tracing::info!(
            snapshot_id = request.snapshot_id,
            idempotency_key = request.idempotency_key,
            destination = %request.destination,
            "planned"
        ),
        PlanOutcome::Skipped { message, .. } => tracing::info!(message, "skipped"),
    }
    Ok(outcome)
}

/// A second trigger of a snapshot whose archive is complete (a duplicate delivered after the
/// first execution ended, an operator's second start) must not archive it again: the manifest,
/// written last, is the proof of a complete archive.
async fn refuse_if_archived(s3: &aws_sdk_s3::Client, request: &ArchiveRequest) -> Result<(), StepError> {
    if !request.flow.writes_manifest() {
        return Ok(());
    }
    let destination = &request.destination;
    let key = destination.key(MANIFEST_NAME);
    let manifest_url = destination.url_of(&key);
    match s3.head_object().bucket(&destination.bucket).key(&key).send().await {
        Ok(_) => Err(FlowError::AlreadyArchived { snapshot_id: request.snapshot_id.clone(), manifest_url }.into()),
        Err(e) => {
            let failure = AwsFailure::of(&format!("HeadObject {manifest_url}"), &e);
            match failure.class {
                AwsErrorClass::NotFound => Ok(()),
                _ => Err(failure.into_step_error(errors::STORAGE_ACCESS_FAILED)),
            }
        }
    }
}

/// The facts of an EBS snapshot: state, size, encryption, source volume, start time.
async fn describe_snapshot(ec2: &Client, snapshot_id: &str) -> Result<SnapshotFacts, StepError> {
    let operation = format!("DescribeSnapshots {snapshot_id}");
    let output =
        ec2.describe_snapshots().snapshot_ids(snapshot_id).send().await.map_err(|e| lookup_error(&operation, &e))?;
    let snapshot = output.snapshots().first().ok_or_else(|| no_such_snapshot(&operation))?;
    Ok(SnapshotFacts {
        status: snapshot.state().map(|s| s.as_str().to_string()),
        size_bytes: snapshot.volume_size().and_then(gib_to_bytes),
        encrypted: snapshot.encrypted(),
        kms_key_id: snapshot.kms_key_id().map(str::to_string),
        source_resource_id: snapshot.volume_id().filter(|id| *id != PLACEHOLDER_VOLUME_ID).map(str::to_string),
        vault_name: None,
        engine: None,
        created_at: snapshot.start_time().and_then(utc),
    })
}

/// The facts of an RDS DB snapshot: status, engine, allocated storage, encryption, DB instance,
/// creation time. By identifier: the ARN names a snapshot of this account and region, where
/// the identifier is unique.
async fn describe_db_snapshot(rds: &aws_sdk_rds::Client, snapshot_id: &str) -> Result<SnapshotFacts, StepError> {
    let operation = format!("DescribeDBSnapshots {snapshot_id}");
    let output = rds
        .describe_db_snapshots()
        .db_snapshot_identifier(snapshot_id)
        .set_snapshot_type(rds_snapshot_type(snapshot_id).map(str::to_string))
        .send()
        .await
        .map_err(|e| lookup_error(&operation, &e))?;
    let snapshot = output.db_snapshots().first().ok_or_else(|| no_such_snapshot(&operation))?;
    Ok(SnapshotFacts {
        status: snapshot.status().map(str::to_string),
        size_bytes: snapshot.allocated_storage().and_then(gib_to_bytes),
        encrypted: snapshot.encrypted(),
        kms_key_id: snapshot.kms_key_id().map(str::to_string),
        engine: snapshot.engine().map(str::to_string),
        source_resource_id: snapshot.db_instance_identifier().map(str::to_string),
        vault_name: None,
        created_at: snapshot.snapshot_create_time().and_then(utc),
    })
}

/// The facts of an Aurora (DB cluster) snapshot, as [`describe_db_snapshot`]'s.
async fn describe_cluster_snapshot(rds: &aws_sdk_rds::Client, snapshot_id: &str) -> Result<SnapshotFacts, StepError> {
    let operation = format!("DescribeDBClusterSnapshots {snapshot_id}");
    let output = rds
        .describe_db_cluster_snapshots()
        .db_cluster_snapshot_identifier(snapshot_id)
        .set_snapshot_type(rds_snapshot_type(snapshot_id).map(str::to_string))
        .send()
        .await
        .map_err(|e| lookup_error(&operation, &e))?;
    let snapshot = output.db_cluster_snapshots().first().ok_or_else(|| no_such_snapshot(&operation))?;
    Ok(SnapshotFacts {
        status: snapshot.status().map(str::to_string),
        size_bytes: snapshot.allocated_storage().and_then(gib_to_bytes),
        encrypted: snapshot.storage_encrypted(),
        kms_key_id: snapshot.kms_key_id().map(str::to_string),
        engine: snapshot.engine().map(str::to_string),
        source_resource_id: snapshot.db_cluster_identifier().map(str::to_string),
        vault_name: None,
        created_at: snapshot.snapshot_create_time().and_then(utc),
    })
}

/// A describe call's error: `SnapshotNotFound` when the service says so, else transient or
/// `LookupIncomplete`.
fn lookup_error<E>(operation: &str, error: &SdkError<E, HttpResponse>) -> StepError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let failure = AwsFailure::of(operation, error);
    match failure.class {
        AwsErrorClass::NotFound => StepError::new(errors::SNAPSHOT_NOT_FOUND, failure.message),
        _ => failure.into_step_error(errors::LOOKUP_INCOMPLETE),
    }
}

fn no_such_snapshot(operation: &str) -> StepError {
    StepError::new(errors::SNAPSHOT_NOT_FOUND, format!("{operation}: no such snapshot"))
}

fn gib_to_bytes(gib: i32) -> Option<u64> {
    u64::try_from(gib).ok().map(|gib| gib * GIB)
}

fn utc(time: &aws_smithy_types::DateTime) -> Option<DateTime<Utc>> {
    DateTime::<Utc>::from_timestamp(time.secs(), time.subsec_nanos())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Clients that must not be called: these events need no lookup.
    fn offline_clients() -> Clients {
        let config = aws_config::SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("eu-west-1"))
            .endpoint_url("http://127.0.0.1:9")
            .build();
        Clients {
            ec2: Client::new(&config),
            rds: aws_sdk_rds::Client::new(&config),
            s3: crate::common::s3_client(&config),
        }
    }

    fn config() -> PlanConfig {
        serde_json::from_value(serde_json::json!({
            "destination": {"bucket": "example-archive", "prefix": "backups"},
            "availability_zones": ["eu-west-1a"],
            "job_queues": {"eu-west-1a": "arn:aws:batch:eu-west-1:111122223333:job-queue/archive-a"}
        }))
        .unwrap()
    }

    fn fixture(name: &str) -> Value {
        let path = format!("{}/../core/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
        serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
    }

    #[tokio::test]
    async fn efs_backup_is_skipped_without_a_lookup() {
        let mut event = fixture("eventbridge-backup-job-completed-ebs.json");
        event["detail"]["resourceType"] = "EFS".into();
        let outcome = plan(&offline_clients(), &config(), &event, Utc::now()).await.unwrap();
        let json = serde_json::to_value(outcome).unwrap();
        assert_eq!(json["outcome"], "skipped");
        assert_eq!(json["reason"]["code"], "unsupported_resource_type");
    }

    #[tokio::test]
    async fn malformed_event_is_rejected_with_the_field_named() {
        let mut event = fixture("eventbridge-backup-job-completed-ebs.json");
        event["detail"].as_object_mut().unwrap().remove("backupJobId");
        let error = plan(&offline_clients(), &config(), &event, Utc::now()).await.unwrap_err();
        assert_eq!(error.name, errors::INVALID_EVENT);
        assert!(error.message.contains("detail.backupJobId"), "{error}");
    }

    #[test]
    fn configuration_errors_name_the_setting() {
        std::env::set_var(
            PLAN_CONFIG_ENV,
            r#"{"destination": {"bucket": "b", "prefix": ""}, "availability_zones": ["a"], "job_queues": {"b": "q"}}"#,
        );
        let error = plan_config().unwrap_err();
        assert_eq!(error.name, errors::INVALID_CONFIG);
        assert!(error.message.contains("job_queues"), "{error}");
    }
}
