//! The `check-database` Lambda (states `CheckDatabase` and `CheckPassword`): fails `DbNotReady`
//! while the temporary DB instance (and, for Aurora, its cluster) is not available or a master
//! password change is pending (the ASL's Retry bounds how long it waits), `DbFailed` if it never
//! will be; else returns its endpoint and the complete dump job. See
//! [`archiver_core::flows::rds_dump::check_database`].

use crate::common::{databases, parse_input, StepError};
use archiver_core::flows::rds_dump::{check_database, CheckDatabaseInput, DatabaseEndpoint, DatabaseObservation};
use aws_sdk_rds::Client;
use lambda_runtime::{service_fn, LambdaEvent};
use serde_json::Value;

/// Serves the `check-database` handler: builds its clients, then answers invocations until the runtime stops.
pub async fn run() -> Result<(), lambda_runtime::Error> {
    let rds = Client::new(&crate::common::aws_config().await);
    let rds = &rds;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        check(rds, parse_input(event.payload)?).await
    }))
    .await
}

#[tracing::instrument(skip_all, fields(instance = input.database.names.instance_identifier))]
async fn check(rds: &Client, input: CheckDatabaseInput) -> Result<DatabaseEndpoint, StepError> {
    let names = &input.database.names;
    let instance = databases::instance(rds, &names.instance_identifier).await?;
    let cluster = match &names.cluster_identifier {
        Some(identifier) => databases::cluster(rds, identifier).await?,
        None => None,
    };
    let port = |p: Option<i32>| p.and_then(|p| u16::try_from(p).ok());
    let mut observed = DatabaseObservation {
        instance_status: instance.as_ref().and_then(|i| i.db_instance_status()).map(str::to_string),
        cluster_status: cluster.as_ref().and_then(|c| c.status()).map(str::to_string),
        password_pending: instance
            .as_ref()
            .and_then(|i| i.pending_modified_values())
            .is_some_and(|p| p.master_user_password().is_some())
            || cluster
                .as_ref()
                .and_then(|c| c.pending_modified_values())
                .is_some_and(|p| p.master_user_password().is_some()),
        address: instance.as_ref().and_then(|i| i.endpoint()).and_then(|e| e.address()).map(str::to_string),
        port: port(instance.as_ref().and_then(|i| i.endpoint()).and_then(|e| e.port())),
    };
    // An Aurora cluster's writer endpoint outlives any one instance of it.
    if let Some(cluster) = &cluster {
        observed.address = cluster.endpoint().map(str::to_string);
        observed.port = port(cluster.port());
    }
    tracing::info!(
        instance_status = observed.instance_status,
        cluster_status = observed.cluster_status,
        password_pending = observed.password_pending,
        "database state"
    );
    check_database(&input.database, &observed).map_err(StepError::from)
}
