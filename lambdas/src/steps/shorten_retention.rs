//! The `shorten-retention` Lambda of the organisation flow (infra/workload.yaml): an EventBridge
//! rule hands it every "Copy Job State Change" COMPLETED from the configured vaults;
//! [`archiver_core::flows::org_copy`] says whether that copy is the last one configured, and then
//! this step reads the original recovery point (DescribeRecoveryPoint) and, when
//! [`archiver_core::retention`] finds a shorter `DeleteAfterDays`, sends that
//! UpdateRecoveryPointLifecycle. A retention is never lengthened; a point already deleted is left
//! alone.
//!
//! Configuration: `ORG_COPY_CONFIG` (as `start-copy`), `NEW_DELETE_AFTER_DAYS` (at least 1) and
//! `FUNCTION_ROLE_ARN` (named in failure messages).

use crate::common::org_copy::{decision, org_copy_config, FUNCTION_ROLE_ARN_ENV};
use crate::common::{optional_env, required_env, AwsFailure, StepError};
use archiver_core::errors;
use archiver_core::flows::org_copy::{retention_failure, OrgCopyConfig, OrgCopyDecision, RetentionTarget};
use archiver_core::retention::{
    shorten_retention, Lifecycle, NewDeleteAfterDays, RecoveryPointDescription, RetentionDecision, StorageClass,
};
use aws_sdk_backup::types::{Lifecycle as SdkLifecycle, LifecycleDeleteAfterEvent, StorageClass as SdkStorageClass};
use aws_sdk_backup::Client;
use chrono::{DateTime, NaiveDate, Utc};
use lambda_runtime::{service_fn, LambdaEvent};
use serde_json::{json, Value};

/// The environment variable holding the `DeleteAfterDays` wanted for copied originals.
const NEW_DELETE_AFTER_DAYS_ENV: &str = "NEW_DELETE_AFTER_DAYS";

/// What the step needs besides the client.
struct Settings {
    config: OrgCopyConfig,
    days: NewDeleteAfterDays,
    role: Option<String>,
}

/// Serves the `shorten-retention` handler: builds its clients, then answers invocations until the runtime stops.
pub async fn run() -> Result<(), lambda_runtime::Error> {
    let settings = settings();
    if let Err(error) = &settings {
        tracing::error!(%error, "bad configuration: every invocation will fail");
    }
    let backup = Client::new(&crate::common::aws_config().await);
    let (backup, settings) = (&backup, &settings);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        shorten(backup, settings.as_ref().map_err(Clone::clone)?, &event.payload, Utc::now().date_naive()).await
    }))
    .await
}

fn settings() -> Result<Settings, StepError> {
    let text = required_env(NEW_DELETE_AFTER_DAYS_ENV)?;
    let days = text
        .trim()
        .parse::<i64>()
        .map_err(|e| StepError::config(format!("{NEW_DELETE_AFTER_DAYS_ENV} {text:?} is not a number of days: {e}")))
        .and_then(|days| NewDeleteAfterDays::new(days).map_err(|e| StepError::config(e.to_string())))?;
    Ok(Settings { config: org_copy_config()?, days, role: optional_env(FUNCTION_ROLE_ARN_ENV) })
}

#[tracing::instrument(skip_all)]
async fn shorten(backup: &Client, settings: &Settings, payload: &Value, today: NaiveDate) -> Result<Value, StepError> {
    let target = match decision(payload, &settings.config)? {
        OrgCopyDecision::ShortenRetention { target } => target,
        other => {
            tracing::info!(decision = ?other, "no retention to shorten");
            return Ok(json!({"decision": other}));
        }
    };
    let role = settings.role.as_deref();
    let failed = |operation: &str, key: Option<&str>, failure: AwsFailure| {
        let message = retention_failure(operation, &target, role, key, &failure.message);
        tracing::error!(message, "retention not updated");
        StepError { message, ..failure.into_step_error(errors::RETENTION_NOT_UPDATED) }
    };
    let described = backup
        .describe_recovery_point()
        .backup_vault_name(&target.backup_vault_name)
        .recovery_point_arn(&target.recovery_point_arn)
        .send()
        .await
        .map_err(|e| failed("DescribeRecoveryPoint", None, AwsFailure::of("DescribeRecoveryPoint", &e)))?;
    let key = described.encryption_key_arn().map(str::to_string);
    let point = description(&target, &described);
    match shorten_retention(&point, settings.days, today) {
        RetentionDecision::Unchanged(reason) => {
            tracing::info!(%reason, recovery_point_arn = target.recovery_point_arn, "retention unchanged");
            Ok(json!({"outcome": "unchanged", "reason": reason, "message": reason.to_string()}))
        }
        RetentionDecision::Shorten(update) => {
            backup
                .update_recovery_point_lifecycle()
                .backup_vault_name(&update.backup_vault_name)
                .recovery_point_arn(&update.recovery_point_arn)
                .lifecycle(sdk_lifecycle(&update.lifecycle))
                .send()
                .await
                .map_err(|e| {
                    let failure = AwsFailure::of("UpdateRecoveryPointLifecycle", &e);
                    failed("UpdateRecoveryPointLifecycle", key.as_deref(), failure)
                })?;
            tracing::info!(
                recovery_point_arn = update.recovery_point_arn,
                delete_after_days = update.lifecycle.delete_after_days,
                "retention shortened"
            );
            Ok(json!({"outcome": "changed", "request": update}))
        }
    }
}

/// The DescribeRecoveryPoint answer as core reads it (the CLI's dry run reads the same fields from
/// the AWS CLI's JSON).
fn description(
    target: &RetentionTarget,
    described: &aws_sdk_backup::operation::describe_recovery_point::DescribeRecoveryPointOutput,
) -> RecoveryPointDescription {
    let creation_date = described
        .creation_date()
        .and_then(|t| DateTime::<Utc>::from_timestamp(t.secs(), t.subsec_nanos()))
        // Without a creation date the point counts as made today: the shortest age, so the
        // longest retention the arithmetic can ask for.
        .unwrap_or_else(Utc::now);
    RecoveryPointDescription {
        recovery_point_arn: target.recovery_point_arn.clone(),
        backup_vault_name: target.backup_vault_name.clone(),
        creation_date,
        storage_class: described.storage_class().and_then(|class| match class {
            SdkStorageClass::Warm => Some(StorageClass::Warm),
            SdkStorageClass::Cold => Some(StorageClass::Cold),
            SdkStorageClass::Deleted => Some(StorageClass::Deleted),
            _ => None,
        }),
        status: described.status().map(|status| status.as_str().to_string()),
        lifecycle: described.lifecycle().map(|l| Lifecycle {
            move_to_cold_storage_after_days: l.move_to_cold_storage_after_days(),
            delete_after_days: l.delete_after_days(),
            opt_in_to_archive_for_supported_resources: l.opt_in_to_archive_for_supported_resources(),
            delete_after_event: l.delete_after_event().map(|e| e.as_str().to_string()),
        }),
    }
}

fn sdk_lifecycle(lifecycle: &Lifecycle) -> SdkLifecycle {
    SdkLifecycle::builder()
        .set_move_to_cold_storage_after_days(lifecycle.move_to_cold_storage_after_days)
        .set_delete_after_days(lifecycle.delete_after_days)
        .set_opt_in_to_archive_for_supported_resources(lifecycle.opt_in_to_archive_for_supported_resources)
        .set_delete_after_event(lifecycle.delete_after_event.as_deref().map(LifecycleDeleteAfterEvent::from))
        .build()
}
