//! The `delete-database` Lambda (states `DeleteDatabase` and `Cleanup`): deletes the execution's
//! temporary DB instance (without a final snapshot, with its automated backups), then its Aurora
//! cluster, and the master password parameter. The names come from the plan and the execution
//! (see [`names_in`]), so a database whose RestoreDatabase failed half-way is found too; a
//! database is deleted only if tagged as ours and this execution's ([`release_database`]).
//!
//! A cluster cannot be deleted while its instance is: the call then fails `DbBusy`, which the
//! ASL retries a bounded number of times; the instance and the parameter are gone by then.

use crate::common::{databases, parse_input, required_env, AwsFailure, StepError, DEPLOYMENT_NAME_ENV};
use archiver_core::aws_error::AwsErrorClass;
use archiver_core::errors;
use archiver_core::flows::rds_dump::{
    names_in, release_database, DatabaseError, DatabaseRelease, DeleteDatabaseInput, DeletedDatabase,
};
use aws_sdk_rds::Client as Rds;
use aws_sdk_ssm::Client as Ssm;
use lambda_runtime::{service_fn, LambdaEvent};
use serde_json::Value;

/// Serves the `delete-database` handler: builds its clients, then answers invocations until the runtime stops.
pub async fn run() -> Result<(), lambda_runtime::Error> {
    let deployment = required_env(DEPLOYMENT_NAME_ENV);
    let aws = crate::common::aws_config().await;
    let (rds, ssm) = (Rds::new(&aws), Ssm::new(&aws));
    let (rds, ssm, deployment) = (&rds, &ssm, &deployment);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        delete_database(rds, ssm, deployment.as_ref().map_err(Clone::clone)?, parse_input(event.payload)?).await
    }))
    .await
}

/// What a refused deletion means: `DbBusy` (retried) while RDS is busy with the database.
fn refused(failure: AwsFailure) -> StepError {
    match failure.code.as_deref() {
        Some("InvalidDBInstanceState" | "InvalidDBClusterStateFault" | "InvalidDBClusterStateFaultException") => {
            StepError::new(errors::DB_BUSY, failure.message)
        }
        _ => failure.into_step_error(errors::DB_OPERATION_FAILED),
    }
}

#[tracing::instrument(skip_all, fields(execution_id = input.execution_id))]
async fn delete_database(
    rds: &Rds,
    ssm: &Ssm,
    deployment: &str,
    input: DeleteDatabaseInput,
) -> Result<DeletedDatabase, StepError> {
    let mut report = DeletedDatabase::default();
    let Some(names) = names_in(&input.state, &input.execution_id) else {
        tracing::info!("no dump plan in the document: nothing was restored");
        return Ok(report);
    };
    let execution_id = &input.execution_id;
    // Every resource gets its action before the first error is returned: a stuck instance must
    // not keep the password parameter alive.
    let mut first_error: Option<StepError> = None;

    let instance_id = &names.instance_identifier;
    let instance = databases::instance(rds, instance_id).await?;
    match release_database(instance.as_ref().map(databases::existing_instance).as_ref(), execution_id, deployment) {
        DatabaseRelease::Gone => report.already_gone.push(instance_id.clone()),
        DatabaseRelease::NotOurs => report.not_ours.push(instance_id.clone()),
        DatabaseRelease::Delete => {
            let call = rds
                .delete_db_instance()
                .db_instance_identifier(instance_id)
                .skip_final_snapshot(true)
                .delete_automated_backups(true);
            match call.send().await {
                Ok(_) => report.deleted.push(instance_id.clone()),
                Err(e) => {
                    let failure = AwsFailure::of(&format!("DeleteDBInstance {instance_id}"), &e);
                    if failure.class == AwsErrorClass::NotFound {
                        report.already_gone.push(instance_id.clone());
                    } else {
                        first_error.get_or_insert(refused(failure));
                    }
                }
            }
        }
    }

    let parameter = &names.password_parameter;
    match ssm.delete_parameter().name(parameter).send().await {
        Ok(_) => report.password_parameter_deleted = true,
        Err(e) => {
            let failure = AwsFailure::of(&format!("DeleteParameter {parameter}"), &e);
            if failure.class != AwsErrorClass::NotFound {
                first_error.get_or_insert(failure.into_step_error(errors::DB_OPERATION_FAILED));
            }
        }
    }

    if let Some(cluster_id) = &names.cluster_identifier {
        if let Err(error) = delete_cluster(rds, cluster_id, instance_id, execution_id, deployment, &mut report).await {
            first_error.get_or_insert(error);
        }
    }
    match first_error {
        Some(error) => {
            tracing::warn!(%error, "database not deleted yet");
            Err(error)
        }
        None => {
            tracing::info!(deleted = ?report.deleted, already_gone = ?report.already_gone, not_ours = ?report.not_ours,
                password_parameter_deleted = report.password_parameter_deleted, "database released");
            Ok(report)
        }
    }
}

async fn delete_cluster(
    rds: &Rds,
    cluster_id: &str,
    instance_id: &str,
    execution_id: &str,
    deployment: &str,
    report: &mut DeletedDatabase,
) -> Result<(), StepError> {
    let cluster = databases::cluster(rds, cluster_id).await?;
    match release_database(cluster.as_ref().map(databases::existing_cluster).as_ref(), execution_id, deployment) {
        DatabaseRelease::Gone => report.already_gone.push(cluster_id.to_string()),
        DatabaseRelease::NotOurs => report.not_ours.push(cluster_id.to_string()),
        DatabaseRelease::Delete => {
            if let Some(instance) = databases::instance(rds, instance_id).await? {
                return Err(DatabaseError::Busy {
                    identifier: cluster_id.to_string(),
                    status: format!(
                        "waiting for its instance {instance_id} ({})",
                        instance.db_instance_status().unwrap_or("unknown")
                    ),
                    what: "deleting the cluster",
                }
                .into());
            }
            match rds.delete_db_cluster().db_cluster_identifier(cluster_id).skip_final_snapshot(true).send().await {
                Ok(_) => report.deleted.push(cluster_id.to_string()),
                Err(e) => {
                    let failure = AwsFailure::of(&format!("DeleteDBCluster {cluster_id}"), &e);
                    if failure.class == AwsErrorClass::NotFound {
                        report.already_gone.push(cluster_id.to_string());
                    } else {
                        return Err(refused(failure));
                    }
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Clients that must not be called: these inputs need no AWS call.
    fn offline() -> (Rds, Ssm) {
        let config = aws_config::SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("eu-west-1"))
            .endpoint_url("http://127.0.0.1:9")
            .build();
        (Rds::new(&config), Ssm::new(&config))
    }

    #[tokio::test]
    async fn a_plan_that_failed_left_nothing_to_delete() {
        // The Cleanup of a Plan that failed gets the raw trigger, which names no database.
        let (rds, ssm) = offline();
        let input = DeleteDatabaseInput {
            execution_id: "arn:aws:states:eu-west-1:111122223333:execution:rds-dump:e1".into(),
            state: json!({"snapshot": "arn:aws:rds:eu-west-1:111122223333:snapshot:orders", "method": "dump",
                          "error": {"Error": "LookupIncomplete", "Cause": "{}"}}),
        };
        let report = delete_database(&rds, &ssm, "archiver-prod", input).await.unwrap();
        assert_eq!(report, DeletedDatabase::default());
    }
}
