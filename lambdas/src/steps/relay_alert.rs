//! The `relay-alert` Lambda: the subscriber of the stack's vault-notification topic and the target
//! of its EventBridge rules for AWS Backup's job and recovery point state changes. Each event is
//! read, filtered and routed by [`archiver_core::alert`], sent once, or set aside:
//!
//! - filtered (a quiet state, another vault or resource type, not a job event): nothing is sent;
//!   a vault notification, which names little more than the job, is completed first by
//!   DescribeBackupJob, DescribeCopyJob or DescribeRestoreJob (the failure's reason, the vault,
//!   sizes), and sent as it is when that fails;
//! - once per job and state: before sending, the relay creates the event's claim object
//!   (`<ArchivePrefix>/.alerts/<kind>/<job>/<state>` in the archive bucket) with a conditional
//!   PutObject (`If-None-Match: *`); S3 refuses (412) a key that exists, atomically and strongly
//!   consistently, so a redelivery, or the same state change arriving by SNS and by EventBridge,
//!   sends nothing. Why S3 rather than a DynamoDB conditional put: the same reasons as the
//!   archives' claim ([`archiver_core::claim`]): no table to deploy, encrypt or pay for, and the
//!   archive bucket's lifecycle and key already apply;
//! - channels: the Slack webhook (`SLACK_WEBHOOK_PARAMETER`), or for failures and warnings the
//!   failure webhook when set (`FAILURE_SLACK_WEBHOOK_PARAMETER`), both SSM SecureString
//!   parameters; the notification topic as text (`SNS_TOPIC_ARN`, e-mail); a topic watched by
//!   Amazon Q Developer in chat applications (`CHATBOT_TOPIC_ARN`). Slack's 429s and 5xx are
//!   retried within the function's timeout ([`crate::common::channels`], shared with `daily-digest`);
//! - dead letters: a malformed event, or one no channel took after its retries, is sent to the
//!   dead-letter queue (`DEAD_LETTER_QUEUE_URL`) with the event and the reason, and the claim of
//!   an event that reached no channel is released, so a replay from the queue sends it. Only when
//!   the queue itself fails does the invocation fail; Lambda's asynchronous retries and the
//!   function's own `DeadLetterConfig` (the same queue) then keep the event.

use std::time::Instant;

use crate::common::channels::Channels;
use crate::common::tables::utc;
use crate::common::{deadline, optional_env, precondition_failed, required_env, AwsFailure, StepError};
use archiver_core::alert::render::Message;
use archiver_core::alert::{
    decide, read_alert, AlertConfig, AlertEvent, AlertKind, Decision, JobAlert, JobDescription, Route,
};
use lambda_runtime::{service_fn, LambdaEvent};
use serde_json::{json, Value};

/// The dead-letter message's `reason` for an event the relay cannot read.
const MALFORMED: &str = "malformed";
/// … and for an event no channel took.
const UNDELIVERED: &str = "undelivered";

struct Relay {
    /// `Err` when the stack's filters are wrong: every event then fails, naming why.
    config: Result<AlertConfig, StepError>,
    s3: aws_sdk_s3::Client,
    backup: aws_sdk_backup::Client,
    sqs: aws_sdk_sqs::Client,
    channels: Channels,
    claim_bucket: Result<String, StepError>,
    claim_prefix: String,
    dead_letter_queue: Result<String, StepError>,
}

/// Serves the `relay-alert` handler: builds its clients, then answers invocations until the runtime stops.
pub async fn run() -> Result<(), lambda_runtime::Error> {
    let config = crate::common::aws_config().await;
    let filters = AlertConfig::from_lists(
        &optional_env("ALERT_STATES").unwrap_or_default(),
        &optional_env("ALERT_VAULTS").unwrap_or_default(),
        &optional_env("ALERT_RESOURCE_TYPES").unwrap_or_default(),
    )
    .map_err(|e| StepError::config(e.to_string()));
    let relay = Relay {
        config: filters,
        s3: crate::common::s3_client(&config),
        backup: aws_sdk_backup::Client::new(&config),
        sqs: aws_sdk_sqs::Client::new(&config),
        channels: Channels::from_env(&config).await,
        claim_bucket: required_env("CLAIM_BUCKET"),
        claim_prefix: optional_env("CLAIM_PREFIX").unwrap_or_default(),
        dead_letter_queue: required_env("DEAD_LETTER_QUEUE_URL"),
    };
    let relay = &relay;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        relay_event(relay, &event.payload, deadline(&event.context)).await
    }))
    .await
}

#[tracing::instrument(skip_all)]
async fn relay_event(relay: &Relay, payload: &Value, deadline: Instant) -> Result<Value, StepError> {
    let event = match read_alert(payload) {
        Ok(event) => event,
        Err(error) => {
            tracing::warn!(%error, "malformed event");
            dead_letter(relay, payload, MALFORMED, &error.to_string()).await?;
            return Ok(json!({"dead_letter": MALFORMED, "error": error.to_string()}));
        }
    };
    let config = relay.config.as_ref().map_err(Clone::clone)?;
    let mut event = event;
    if let (Decision::Send { .. }, AlertEvent::Alert(alert)) = (decide(&event, config), &mut event) {
        if alert.wants_description() {
            // The vault notification's reason, vault and sizes; without them it is still sent.
            match describe(&relay.backup, alert).await {
                Ok(description) => alert.describe_with(description),
                Err(error) => tracing::warn!(error, "the job could not be described; sending what the event says"),
            }
        }
    }
    let route = match decide(&event, config) {
        Decision::Filtered { reason } => {
            tracing::info!(reason, "filtered");
            return Ok(json!({"filtered": reason}));
        }
        Decision::Send { route, .. } => route,
    };
    let AlertEvent::Alert(alert) = event else { unreachable!("only job alerts are sent") };
    let bucket = relay.claim_bucket.as_ref().map_err(Clone::clone)?;
    let key = alert.claim_key(&relay.claim_prefix);
    if !take_claim(&relay.s3, bucket, &key, &alert).await? {
        tracing::info!(claim = key, "already sent: a redelivery");
        return Ok(json!({"duplicate": key}));
    }
    let delivery = relay.channels.deliver(alert.as_ref(), route == Route::Failures, deadline).await;
    let (sent, failures) = (delivery.sent, delivery.failures);
    if failures.is_empty() {
        tracing::info!(title = alert.title(), ?sent, "sent");
        return Ok(json!({"sent": sent, "claim": key}));
    }
    let error = failures.join("; ");
    tracing::warn!(error, ?sent, "not delivered everywhere");
    if sent.is_empty() {
        // Nothing went out: a replay from the dead-letter queue must be able to send it.
        release_claim(&relay.s3, bucket, &key).await?;
    }
    dead_letter(relay, payload, UNDELIVERED, &error).await?;
    Ok(json!({"dead_letter": UNDELIVERED, "error": error, "sent": sent}))
}

/// What AWS Backup says about the job of a vault notification.
async fn describe(backup: &aws_sdk_backup::Client, alert: &JobAlert) -> Result<JobDescription, String> {
    let job = alert.job_id.as_deref().unwrap_or_default();
    let size = |bytes: Option<i64>| bytes.and_then(|b| u64::try_from(b).ok());
    let description = match alert.kind {
        AlertKind::BackupJob => {
            let out = backup
                .describe_backup_job()
                .backup_job_id(job)
                .send()
                .await
                .map_err(|e| AwsFailure::of(&format!("DescribeBackupJob {job}"), &e).message)?;
            JobDescription {
                status_message: out.status_message,
                vault: out.backup_vault_name,
                resource_arn: out.resource_arn,
                resource_type: out.resource_type,
                recovery_point_arn: out.recovery_point_arn,
                size_bytes: size(out.backup_size_in_bytes),
                creation_date: out.creation_date.as_ref().and_then(utc),
                completion_date: out.completion_date.as_ref().and_then(utc),
                ..JobDescription::default()
            }
        }
        AlertKind::CopyJob => {
            let out = backup
                .describe_copy_job()
                .copy_job_id(job)
                .send()
                .await
                .map_err(|e| AwsFailure::of(&format!("DescribeCopyJob {job}"), &e).message)?;
            let Some(copy) = out.copy_job else { return Err(format!("DescribeCopyJob {job}: no job")) };
            JobDescription {
                status_message: copy.status_message,
                vault: copy.source_backup_vault_arn,
                destination_vault: copy.destination_backup_vault_arn,
                resource_arn: copy.resource_arn,
                resource_type: copy.resource_type,
                recovery_point_arn: copy.destination_recovery_point_arn,
                size_bytes: size(copy.backup_size_in_bytes),
                creation_date: copy.creation_date.as_ref().and_then(utc),
                completion_date: copy.completion_date.as_ref().and_then(utc),
                ..JobDescription::default()
            }
        }
        AlertKind::RestoreJob => {
            let out = backup
                .describe_restore_job()
                .restore_job_id(job)
                .send()
                .await
                .map_err(|e| AwsFailure::of(&format!("DescribeRestoreJob {job}"), &e).message)?;
            JobDescription {
                status_message: out.status_message,
                resource_type: out.resource_type,
                recovery_point_arn: out.recovery_point_arn,
                created_resource_arn: out.created_resource_arn,
                size_bytes: size(out.backup_size_in_bytes),
                creation_date: out.creation_date.as_ref().and_then(utc),
                completion_date: out.completion_date.as_ref().and_then(utc),
                ..JobDescription::default()
            }
        }
        AlertKind::RecoveryPoint => JobDescription::default(),
    };
    Ok(description)
}

/// Creates the claim; `false` when it exists (S3 answered 412 to `If-None-Match: *`).
async fn take_claim(s3: &aws_sdk_s3::Client, bucket: &str, key: &str, alert: &JobAlert) -> Result<bool, StepError> {
    let body = serde_json::to_vec(alert).expect("alerts serialize");
    match s3.put_object().bucket(bucket).key(key).if_none_match("*").body(body.into()).send().await {
        Ok(_) => Ok(true),
        Err(e) if precondition_failed(&e) => Ok(false),
        Err(e) => Err(AwsFailure::of(&format!("PutObject s3://{bucket}/{key} (the alert's claim)"), &e)
            .into_step_error(archiver_core::errors::RETRYABLE)),
    }
}

async fn release_claim(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Result<(), StepError> {
    s3.delete_object().bucket(bucket).key(key).send().await.map_err(|e| {
        AwsFailure::of(&format!("DeleteObject s3://{bucket}/{key} (the alert's claim)"), &e)
            .into_step_error(archiver_core::errors::RETRYABLE)
    })?;
    Ok(())
}

/// Puts the event in the dead-letter queue with why; a failure here fails the invocation, so
/// Lambda's own retries and dead-letter configuration keep the event.
async fn dead_letter(relay: &Relay, event: &Value, reason: &str, error: &str) -> Result<(), StepError> {
    let queue = relay.dead_letter_queue.as_ref().map_err(Clone::clone)?;
    let body = json!({"source": "relay-alert", "reason": reason, "error": error, "event": event});
    relay.sqs.send_message().queue_url(queue).message_body(body.to_string()).send().await.map_err(|e| {
        AwsFailure::of("SendMessage to the dead-letter queue", &e).into_step_error(archiver_core::errors::RETRYABLE)
    })?;
    tracing::info!(reason, "sent to the dead-letter queue");
    Ok(())
}
