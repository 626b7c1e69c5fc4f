//! The `start-export` Lambda (state `StartExport` of the RDS export flow): StartExportTask of the
//! planned snapshot to the plan's destination. `ExportTaskAlreadyExists` means an earlier attempt
//! started it (its answer was lost, or a duplicate event came first): the flow polls that export.
//! The account's limit of concurrent exports fails `ExportQuotaExceeded`, which the ASL retries
//! with a long, bounded backoff. Decisions: [`archiver_core::flows::rds_export`].
//!
//! Configuration, read once at start (a bad one fails every invocation with `InvalidConfig`):
//! - `EXPORT_IAM_ROLE_ARN`: the role RDS assumes to write the bucket;
//! - `EXPORT_KMS_KEY_ID`: the KMS key RDS encrypts the export with;
//! - `EXPORT_ONLY` (optional): a JSON list of `database[.schema][.table]` to export.

use crate::common::{optional_env, parse_input, required_env, AwsFailure, StepError};
use archiver_core::errors;
use archiver_core::flows::rds_export::{
    export_location, export_task_request, start_refusal, ExportConfig, ExportError, ExportTaskRequest,
    StartExportInput, StartRefusal, StartedExport,
};
use aws_sdk_rds::Client;
use lambda_runtime::{service_fn, LambdaEvent};
use serde_json::Value;

const ROLE_ENV: &str = "EXPORT_IAM_ROLE_ARN";
const KMS_KEY_ENV: &str = "EXPORT_KMS_KEY_ID";
const EXPORT_ONLY_ENV: &str = "EXPORT_ONLY";

/// Serves the `start-export` handler: builds its clients, then answers invocations until the runtime stops.
pub async fn run() -> Result<(), lambda_runtime::Error> {
    let config = export_config();
    if let Err(error) = &config {
        tracing::error!(%error, "bad configuration: every invocation will fail");
    }
    let rds = Client::new(&crate::common::aws_config().await);
    let (rds, config) = (&rds, &config);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        start(rds, config.as_ref().map_err(Clone::clone)?, parse_input(event.payload)?).await
    }))
    .await
}

fn export_config() -> Result<ExportConfig, StepError> {
    let export_only = match optional_env(EXPORT_ONLY_ENV) {
        Some(text) => serde_json::from_str(&text)
            .map_err(|e| StepError::config(format!("{EXPORT_ONLY_ENV} is not a JSON list of names: {e}")))?,
        None => Vec::new(),
    };
    let config =
        ExportConfig { iam_role_arn: required_env(ROLE_ENV)?, kms_key_id: required_env(KMS_KEY_ENV)?, export_only };
    config.validate()?;
    Ok(config)
}

#[tracing::instrument(skip_all, fields(snapshot_id = input.request.snapshot_id))]
async fn start(rds: &Client, config: &ExportConfig, input: StartExportInput) -> Result<StartedExport, StepError> {
    let task = export_task_request(&input.request, config)?;
    let started = match send(rds, &task).await {
        Ok(()) => true,
        Err(failure) => match failure.code.as_deref().and_then(start_refusal) {
            Some(StartRefusal::AlreadyStarted) => false,
            Some(StartRefusal::QuotaExceeded) => {
                return Err(StepError::from(ExportError::QuotaExceeded {
                    export_task_identifier: task.export_task_identifier,
                    detail: failure.message,
                }))
            }
            None => return Err(failure.into_step_error(errors::EXPORT_OPERATION_FAILED)),
        },
    };
    let location = export_location(&task);
    tracing::info!(export_task_identifier = task.export_task_identifier, %location, started, "export under way");
    Ok(StartedExport { export_task_identifier: task.export_task_identifier, location, started })
}

async fn send(rds: &Client, task: &ExportTaskRequest) -> Result<(), AwsFailure> {
    rds.start_export_task()
        .export_task_identifier(&task.export_task_identifier)
        .source_arn(&task.source_arn)
        .s3_bucket_name(&task.s3_bucket_name)
        .s3_prefix(&task.s3_prefix)
        .iam_role_arn(&task.iam_role_arn)
        .kms_key_id(&task.kms_key_id)
        .set_export_only((!task.export_only.is_empty()).then(|| task.export_only.clone()))
        .send()
        .await
        .map(|_| ())
        .map_err(|e| {
            AwsFailure::of(&format!("StartExportTask {} of {}", task.export_task_identifier, task.source_arn), &e)
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use archiver_core::event::TriggerEvent;
    use archiver_core::request::{plan_archive, PlanConfig, PlanOutcome, SnapshotFacts};

    #[test]
    fn configuration_errors_name_the_setting() {
        std::env::set_var(ROLE_ENV, "arn:aws:iam::111122223333:role/rds-s3-export");
        std::env::set_var(KMS_KEY_ENV, "alias/archive");
        std::env::set_var(EXPORT_ONLY_ENV, r#"["appdb.public.orders"]"#);
        assert_eq!(export_config().unwrap().export_only, ["appdb.public.orders"]);
        std::env::set_var(EXPORT_ONLY_ENV, "appdb");
        let error = export_config().unwrap_err();
        assert_eq!(error.name, errors::INVALID_CONFIG);
        assert!(error.message.contains(EXPORT_ONLY_ENV), "{error}");
        std::env::remove_var(EXPORT_ONLY_ENV);
        std::env::set_var(ROLE_ENV, "rds-s3-export");
        assert!(export_config().unwrap_err().message.contains("iam_role_arn"));
    }

    #[tokio::test]
    async fn a_plan_for_another_flow_is_refused_without_a_call() {
        let config = aws_sdk_rds::Config::builder()
            .behavior_version(aws_sdk_rds::config::BehaviorVersion::latest())
            .region(aws_sdk_rds::config::Region::new("eu-west-1"))
            .endpoint_url("http://127.0.0.1:9")
            .build();
        let event = TriggerEvent::from_value(&serde_json::json!({"snapshot": "snap-0a1b2c3d4e5f67890"})).unwrap();
        let plan_config: PlanConfig = serde_json::from_value(serde_json::json!({
            "destination": {"bucket": "example-archive", "prefix": ""}, "availability_zones": ["eu-west-1a"]
        }))
        .unwrap();
        let facts = SnapshotFacts { source_resource_id: Some("vol-1".into()), ..SnapshotFacts::default() };
        let Ok(PlanOutcome::Planned(request)) =
            plan_archive(&event, &facts, &plan_config, "2025-03-04T03:00:00Z".parse().unwrap())
        else {
            panic!("a manual EBS input plans")
        };
        let input = StartExportInput { request: *request };
        let exporter =
            ExportConfig { iam_role_arn: "arn:aws:iam::1:role/r".into(), kms_key_id: "k".into(), export_only: vec![] };
        let error = start(&Client::from_conf(config), &exporter, input).await.unwrap_err();
        assert_eq!(error.name, errors::INVALID_EVENT);
        assert!(error.message.contains("`flow`"), "{error}");
    }
}
