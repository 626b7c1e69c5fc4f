//! The `set-database-password` Lambda (state `SetPassword`): sets the master password of the
//! temporary DB instance (or Aurora cluster) to the one `restore-database` stored in SSM, with
//! ModifyDBInstance / ModifyDBCluster and `ApplyImmediately`. A restored database keeps the
//! snapshot's password, which nobody here knows. The password is read (decrypted) and handed to
//! the one RDS call: it is never logged or returned. `CheckPassword` then waits until RDS has
//! applied it.

use crate::common::{parse_input, AwsFailure, StepError};
use archiver_core::errors;
use archiver_core::flows::rds_dump::{CheckDatabaseInput, DatabaseShape};
use aws_sdk_rds::Client as Rds;
use aws_sdk_ssm::Client as Ssm;
use lambda_runtime::{service_fn, LambdaEvent};
use serde_json::{json, Value};

/// Serves the `set-database-password` handler: builds its clients, then answers invocations until the runtime stops.
pub async fn run() -> Result<(), lambda_runtime::Error> {
    let aws = crate::common::aws_config().await;
    let (rds, ssm) = (Rds::new(&aws), Ssm::new(&aws));
    let (rds, ssm) = (&rds, &ssm);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        set_password(rds, ssm, parse_input(event.payload)?).await
    }))
    .await
}

#[tracing::instrument(skip_all, fields(instance = input.database.names.instance_identifier))]
async fn set_password(rds: &Rds, ssm: &Ssm, input: CheckDatabaseInput) -> Result<Value, StepError> {
    let names = &input.database.names;
    let parameter = &names.password_parameter;
    let output = ssm.get_parameter().name(parameter).with_decryption(true).send().await.map_err(|e| {
        AwsFailure::of(&format!("GetParameter {parameter}"), &e).into_step_error(errors::DB_OPERATION_FAILED)
    })?;
    let password = output.parameter().and_then(|p| p.value()).ok_or_else(|| {
        StepError::new(errors::DB_OPERATION_FAILED, format!("GetParameter {parameter}: the parameter has no value"))
    })?;
    let (identifier, result) = match (input.database.names.shape, &names.cluster_identifier) {
        (DatabaseShape::Cluster, Some(cluster)) => (
            cluster,
            rds.modify_db_cluster()
                .db_cluster_identifier(cluster)
                .master_user_password(password)
                .apply_immediately(true)
                .send()
                .await
                .map(drop)
                .map_err(|e| AwsFailure::of(&format!("ModifyDBCluster {cluster}"), &e)),
        ),
        _ => (
            &names.instance_identifier,
            rds.modify_db_instance()
                .db_instance_identifier(&names.instance_identifier)
                .master_user_password(password)
                .apply_immediately(true)
                .send()
                .await
                .map(drop)
                .map_err(|e| AwsFailure::of(&format!("ModifyDBInstance {}", names.instance_identifier), &e)),
        ),
    };
    match result {
        Ok(()) => {
            tracing::info!(identifier, password_parameter = parameter, "master password change requested");
            Ok(json!({"identifier": identifier, "password_parameter": parameter}))
        }
        // Still modifying or backing up after all: the ASL retries after its interval.
        Err(failure)
            if matches!(failure.code.as_deref(), Some("InvalidDBInstanceState" | "InvalidDBClusterStateFault")) =>
        {
            Err(StepError::new(errors::DB_NOT_READY, failure.message))
        }
        Err(failure) => Err(failure.into_step_error(errors::DB_OPERATION_FAILED)),
    }
}
