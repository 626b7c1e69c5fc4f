//! The `sns-trigger` Lambda: the subscriber of the stack's trigger topic, for RDS event
//! subscriptions and AWS Backup vault notifications that publish to SNS (a state machine cannot
//! subscribe to a topic itself). It starts the state machine of the flow the event's snapshot
//! enters by ([`ArchiveTarget::entry_flow`]), with the SNS delivery as the execution's input (the
//! shape `plan` reads), named by the target's idempotency key: SNS delivers at least once, and a
//! redelivery then starts nothing. An event that names nothing to archive (another RDS event, a
//! FAILED job) starts nothing; a malformed one fails with the parser's reason, which SNS retries
//! and then leaves in the dead-letter queue. Everything else (the vault check, the lookups, a
//! handoff to another flow) is `plan`'s, as for EventBridge's triggers.

use crate::common::{required_env, AwsFailure, StepError};
use archiver_core::alert::archive_skip;
use archiver_core::errors;
use archiver_core::event::TriggerEvent;
use archiver_core::request::{event_target, ArchiveTarget, Targeting};
use lambda_runtime::{service_fn, LambdaEvent};
use serde_json::{json, Value};

/// The ARN of the stack's state machines up to their flow's stem (`…:stateMachine:<stack>-`),
/// as the ASL's `StateMachineArnPrefix`.
const STATE_MACHINE_ARN_PREFIX_ENV: &str = "STATE_MACHINE_ARN_PREFIX";

/// Serves the `sns-trigger` handler: builds its clients, then answers invocations until the runtime stops.
pub async fn run() -> Result<(), lambda_runtime::Error> {
    let prefix = required_env(STATE_MACHINE_ARN_PREFIX_ENV);
    let sfn = aws_sdk_sfn::Client::new(&crate::common::aws_config().await);
    let (sfn, prefix) = (&sfn, &prefix);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        trigger(sfn, prefix.as_ref().map_err(Clone::clone)?, event.payload).await
    }))
    .await
}

#[tracing::instrument(skip_all)]
async fn trigger(sfn: &aws_sdk_sfn::Client, prefix: &str, delivery: Value) -> Result<Value, StepError> {
    let event = match TriggerEvent::from_value(&delivery) {
        Ok(event) => event,
        // A vault notification about a restore or a recovery point is the relay's: nothing to start.
        Err(error) => match archive_skip(&delivery) {
            Some(reason) => {
                tracing::info!(%reason, "nothing to archive: no execution started");
                return Ok(json!({"skipped": reason.to_string()}));
            }
            None => return Err(StepError::new(errors::INVALID_EVENT, error.to_string())),
        },
    };
    let target = match event_target(&event)? {
        Targeting::Target(target) => target,
        Targeting::Skip(reason) => {
            tracing::info!(event = event.shape(), %reason, "nothing to archive: no execution started");
            return Ok(json!({"skipped": reason.to_string()}));
        }
    };
    start(sfn, prefix, &target, &delivery).await
}

async fn start(
    sfn: &aws_sdk_sfn::Client,
    prefix: &str,
    target: &ArchiveTarget,
    input: &Value,
) -> Result<Value, StepError> {
    let machine = format!("{prefix}{}", target.entry_flow().state_machine());
    let name = target.idempotency_key();
    match sfn.start_execution().state_machine_arn(&machine).name(&name).input(input.to_string()).send().await {
        Ok(started) => {
            tracing::info!(execution = started.execution_arn(), snapshot = target.snapshot_id, "archive started");
            Ok(json!({"started": started.execution_arn()}))
        }
        Err(error) => {
            let failure = AwsFailure::of(&format!("StartExecution {machine} {name}"), &error);
            if failure.code.as_deref() == Some("ExecutionAlreadyExists") {
                tracing::info!(name, "already started by an earlier delivery");
                return Ok(json!({"duplicate": name}));
            }
            Err(failure.into_step_error(errors::START_FAILED))
        }
    }
}
