//! The `pick-drill` Lambda (state `PickDrill` of the restore drill): lists the archive prefix (the
//! listing alone, no manifest read, so a bucket of thousands of archives costs a few requests:
//! every `manifest.json` with its LastModified, every object's storage class) and returns the drill
//! [`plan_drill`] makes of the archives readable at once: the newest and a seeded random sample,
//! each with its Batch job.
//!
//! Environment: `ARCHIVE_BUCKET`, `ARCHIVE_PREFIX`, `DRILL_ARCHIVES` (default
//! [`DEFAULT_DRILL_ARCHIVES`]), `DRILL_RESTORE_TO_SNAPSHOT` (`true`/`false`, default false),
//! `DRILL_JOB_QUEUE`, `DEPLOYMENT_NAME`.

use archiver_core::errors;
use archiver_core::flows::restore_drill::{
    drill_candidates, plan_drill, DrillConfig, DrillPlan, ListedObject, PickDrillInput, DEFAULT_DRILL_ARCHIVES,
};
use archiver_core::s3_location::S3Location;
use lambda_runtime::{service_fn, LambdaEvent};
use serde_json::Value;

use crate::common::tables::utc;
use crate::common::{optional_env, parse_input, required_env, storage, StepError, DEPLOYMENT_NAME_ENV};

struct PickStep {
    s3: aws_sdk_s3::Client,
    config: Result<DrillConfig, StepError>,
}

/// Serves the `pick-drill` handler: builds its client, then answers invocations until the runtime stops.
pub async fn run() -> Result<(), lambda_runtime::Error> {
    let config = crate::common::aws_config().await;
    let step = PickStep { s3: crate::common::s3_client(&config), config: drill_config() };
    let step = &step;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        pick_drill(step, parse_input(event.payload)?, fresh_seed()?).await
    }))
    .await
}

fn drill_config() -> Result<DrillConfig, StepError> {
    let bucket = required_env("ARCHIVE_BUCKET")?;
    let prefix = optional_env("ARCHIVE_PREFIX").unwrap_or_default().trim_matches('/').to_string();
    let archives = match optional_env("DRILL_ARCHIVES") {
        Some(text) => text
            .parse()
            .map_err(|_| StepError::config(format!("DRILL_ARCHIVES is {text:?}, not a number of archives")))?,
        None => DEFAULT_DRILL_ARCHIVES,
    };
    let restore_to_snapshot = match optional_env("DRILL_RESTORE_TO_SNAPSHOT").as_deref() {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(StepError::config(format!("DRILL_RESTORE_TO_SNAPSHOT is {other:?}, not true or false")))
        }
    };
    Ok(DrillConfig {
        location: S3Location { bucket, prefix },
        archives,
        restore_to_snapshot,
        job_queue: required_env("DRILL_JOB_QUEUE")?,
        deployment: required_env(DEPLOYMENT_NAME_ENV)?,
    })
}

/// A seed for a drill whose input names none (core has no randomness of its own).
fn fresh_seed() -> Result<u64, StepError> {
    let mut bytes = [0u8; 8];
    getrandom::getrandom(&mut bytes)
        .map_err(|e| StepError::new(errors::RETRYABLE, format!("no random seed from the system: {e}")))?;
    Ok(u64::from_le_bytes(bytes))
}

#[tracing::instrument(skip_all, fields(execution = input.execution_name))]
async fn pick_drill(step: &PickStep, input: PickDrillInput, fresh_seed: u64) -> Result<DrillPlan, StepError> {
    let config = step.config.as_ref().map_err(Clone::clone)?;
    let (candidates, cold) = drill_candidates(&config.location.bucket, &listing(&step.s3, &config.location).await?);
    let plan = plan_drill(&input, config, &candidates, cold, fresh_seed)?;
    tracing::info!(
        candidates = plan.candidates,
        cold = plan.cold,
        picked = plan.targets.len(),
        seed = plan.seed,
        drill_id = plan.drill_id,
        "picked"
    );
    Ok(plan)
}

/// Every object under `location`, as the listing names it: enough to know the archives, their age
/// and whether they are readable at once ([`drill_candidates`]).
async fn listing(s3: &aws_sdk_s3::Client, location: &S3Location) -> Result<Vec<ListedObject>, StepError> {
    Ok(storage::objects(s3, location)
        .await?
        .iter()
        .filter_map(|object| {
            Some(ListedObject {
                key: object.key()?.to_string(),
                last_modified: object.last_modified().and_then(utc)?,
                storage_class: object.storage_class().map(|c| c.as_str().to_string()),
            })
        })
        .collect())
}
