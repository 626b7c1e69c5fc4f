//! The `daily-digest` Lambda: once a day (the stack's `DigestRule`, at `DigestHourUtc`), in its
//! account and region, lists the last 24 hours of backup, copy and restore jobs
//! (ListBackupJobs/ListCopyJobs/ListRestoreJobs by creation time) and the manifests the archive
//! flows wrote under the archive prefix, and sends what [`archiver_core::alert::digest`] makes of
//! them to the relay's channels: the Slack webhook (the failure webhook when something failed and
//! one is set), the notification topic as text, the chat topic. `DIGEST_SILENCE` says when it
//! sends nothing. A failure to list fails the invocation (EventBridge retries it); a channel that
//! does not take the message fails it too, naming the channel.

use std::time::Instant;

use crate::common::slack::{post_to_slack, slack_from_env, Slack};
use crate::common::storage::read_optional;
use crate::common::tables::utc;
use crate::common::{deadline, optional_env, required_env, AwsFailure, StepError};
use archiver_core::alert::digest::{summarize, Digest, DigestJob, DigestSilence, DIGEST_WINDOW};
use archiver_core::alert::render::Format;
use archiver_core::alert::AlertKind;
use archiver_core::errors;
use archiver_core::manifest::{Manifest, MANIFEST_NAME};
use chrono::{DateTime, Utc};
use lambda_runtime::{service_fn, LambdaEvent};
use serde_json::{json, Value};

struct DigestStep {
    silence: Result<DigestSilence, StepError>,
    account: Option<String>,
    region: String,
    s3: aws_sdk_s3::Client,
    backup: aws_sdk_backup::Client,
    sns: aws_sdk_sns::Client,
    slack: Option<Result<Slack, StepError>>,
    failure_slack: Option<Result<Slack, StepError>>,
    topic_arn: Option<String>,
    chatbot_topic_arn: Option<String>,
    bucket: Result<String, StepError>,
    prefix: String,
}

/// Serves the `daily-digest` handler: builds its clients, then answers invocations until the runtime stops.
pub async fn run() -> Result<(), lambda_runtime::Error> {
    let config = crate::common::aws_config().await;
    let ssm = aws_sdk_ssm::Client::new(&config);
    let slack = slack_from_env(&ssm, "SLACK_WEBHOOK_PARAMETER").await;
    let failure_slack = slack_from_env(&ssm, "FAILURE_SLACK_WEBHOOK_PARAMETER").await;
    let silence = optional_env("DIGEST_SILENCE")
        .unwrap_or_else(|| DigestSilence::WhenEmpty.to_string())
        .parse::<DigestSilence>()
        .map_err(|e| StepError::config(e.to_string()));
    let step = DigestStep {
        silence,
        account: optional_env("ACCOUNT_ID"),
        region: config.region().map(|r| r.to_string()).unwrap_or_default(),
        s3: crate::common::s3_client(&config),
        backup: aws_sdk_backup::Client::new(&config),
        sns: aws_sdk_sns::Client::new(&config),
        slack,
        failure_slack,
        topic_arn: optional_env("SNS_TOPIC_ARN"),
        chatbot_topic_arn: optional_env("CHATBOT_TOPIC_ARN"),
        bucket: required_env("ARCHIVE_BUCKET"),
        prefix: optional_env("ARCHIVE_PREFIX").unwrap_or_default(),
    };
    let step = &step;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        daily_digest(step, &event.payload, deadline(&event.context)).await
    }))
    .await
}

/// The end of the digest's window: the scheduled event's `time` (so a retried or late invocation
/// still covers the day it was scheduled for), else now.
fn window_end(event: &Value) -> DateTime<Utc> {
    event.get("time").and_then(Value::as_str).and_then(|t| t.parse().ok()).unwrap_or_else(Utc::now)
}

#[tracing::instrument(skip_all)]
async fn daily_digest(step: &DigestStep, event: &Value, deadline: Instant) -> Result<Value, StepError> {
    let silence = *step.silence.as_ref().map_err(Clone::clone)?;
    let now = window_end(event);
    let since = now - DIGEST_WINDOW;
    let mut jobs = backup_jobs(&step.backup, since, now).await?;
    jobs.extend(copy_jobs(&step.backup, since, now).await?);
    jobs.extend(restore_jobs(&step.backup, since, now).await?);
    let manifests = manifests(step, since).await?;
    let digest = summarize(step.account.clone(), &step.region, now, &jobs, &manifests);
    tracing::info!(jobs = jobs.len(), failures = digest.failures.len(), archives = digest.archives, "digest");
    if !digest.worth_sending(silence) {
        tracing::info!(%silence, "nothing to report");
        return Ok(json!({"silent": silence.to_string(), "title": digest.title()}));
    }
    let (sent, failures) = send(step, &digest, deadline).await;
    if !failures.is_empty() {
        return Err(StepError::new(errors::RETRYABLE, format!("daily digest not delivered: {}", failures.join("; "))));
    }
    tracing::info!(title = digest.title(), ?sent, "sent");
    Ok(json!({"sent": sent, "title": digest.title()}))
}

fn smithy_time(time: DateTime<Utc>) -> aws_smithy_types::DateTime {
    aws_smithy_types::DateTime::from_secs(time.timestamp())
}

async fn backup_jobs(
    backup: &aws_sdk_backup::Client,
    since: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<Vec<DigestJob>, StepError> {
    let mut pages = backup
        .list_backup_jobs()
        .by_created_after(smithy_time(since))
        .by_created_before(smithy_time(now))
        .into_paginator()
        .send();
    let mut jobs = Vec::new();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| AwsFailure::of("ListBackupJobs", &e).into_step_error(errors::RETRYABLE))?;
        jobs.extend(page.backup_jobs().iter().filter_map(|job| {
            Some(DigestJob {
                kind: AlertKind::BackupJob,
                job_id: job.backup_job_id()?.to_string(),
                state: job.state()?.as_str().to_string(),
                resource_arn: job.resource_arn().map(str::to_string),
                resource_type: job.resource_type().map(str::to_string),
                vault_name: job.backup_vault_name().map(str::to_string),
                status_message: job.status_message().map(str::to_string),
                creation_date: job.creation_date().and_then(utc)?,
            })
        }));
    }
    Ok(jobs)
}

async fn copy_jobs(
    backup: &aws_sdk_backup::Client,
    since: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<Vec<DigestJob>, StepError> {
    let mut pages = backup
        .list_copy_jobs()
        .by_created_after(smithy_time(since))
        .by_created_before(smithy_time(now))
        .into_paginator()
        .send();
    let mut jobs = Vec::new();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| AwsFailure::of("ListCopyJobs", &e).into_step_error(errors::RETRYABLE))?;
        jobs.extend(page.copy_jobs().iter().filter_map(|job| {
            let source_vault = job.source_backup_vault_arn().map(|arn| match arn.parse::<archiver_core::arn::Arn>() {
                Ok(parsed) => archiver_core::event::vault_name_of(&parsed).unwrap_or(arn).to_string(),
                Err(_) => arn.to_string(),
            });
            Some(DigestJob {
                kind: AlertKind::CopyJob,
                job_id: job.copy_job_id()?.to_string(),
                state: job.state()?.as_str().to_string(),
                resource_arn: job.resource_arn().map(str::to_string),
                resource_type: job.resource_type().map(str::to_string),
                vault_name: source_vault,
                status_message: job.status_message().map(str::to_string),
                creation_date: job.creation_date().and_then(utc)?,
            })
        }));
    }
    Ok(jobs)
}

async fn restore_jobs(
    backup: &aws_sdk_backup::Client,
    since: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<Vec<DigestJob>, StepError> {
    let mut pages = backup
        .list_restore_jobs()
        .by_created_after(smithy_time(since))
        .by_created_before(smithy_time(now))
        .into_paginator()
        .send();
    let mut jobs = Vec::new();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| AwsFailure::of("ListRestoreJobs", &e).into_step_error(errors::RETRYABLE))?;
        jobs.extend(page.restore_jobs().iter().filter_map(|job| {
            Some(DigestJob {
                kind: AlertKind::RestoreJob,
                job_id: job.restore_job_id()?.to_string(),
                state: job.status()?.as_str().to_string(),
                // What the restore made, else what it restored from: the resource a reader looks for.
                resource_arn: job.created_resource_arn().or(job.recovery_point_arn()).map(str::to_string),
                resource_type: job.resource_type().map(str::to_string),
                vault_name: None,
                status_message: job.status_message().map(str::to_string),
                creation_date: job.creation_date().and_then(utc)?,
            })
        }));
    }
    Ok(jobs)
}

/// The manifests written under the archive prefix since `since` (by their objects' LastModified;
/// [`summarize`] then keeps those that finished in the window). A manifest that does not parse is
/// logged and left out: the digest reports, the `verify` step judges.
async fn manifests(step: &DigestStep, since: DateTime<Utc>) -> Result<Vec<Manifest>, StepError> {
    let bucket = step.bucket.as_ref().map_err(Clone::clone)?;
    let prefix = step.prefix.trim_matches('/');
    let prefix = if prefix.is_empty() { String::new() } else { format!("{prefix}/") };
    let mut pages = step.s3.list_objects_v2().bucket(bucket).prefix(&prefix).into_paginator().send();
    let mut keys = Vec::new();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| {
            AwsFailure::of(&format!("ListObjectsV2 s3://{bucket}/{prefix}"), &e)
                .into_step_error(errors::STORAGE_ACCESS_FAILED)
        })?;
        keys.extend(page.contents().iter().filter_map(|object| {
            let key = object.key()?;
            let recent = object.last_modified().and_then(utc).is_some_and(|t| t >= since);
            (recent && key.ends_with(&format!("/{MANIFEST_NAME}"))).then(|| key.to_string())
        }));
    }
    let mut manifests = Vec::new();
    for key in keys {
        let Some(body) = read_optional(&step.s3, bucket, &key).await? else { continue };
        match Manifest::from_json(&body) {
            Ok(manifest) => manifests.push(manifest),
            Err(error) => tracing::warn!(key, %error, "manifest left out of the digest"),
        }
    }
    Ok(manifests)
}

/// Sends to every configured channel; returns the channels that took it and the failures.
async fn send(step: &DigestStep, digest: &Digest, deadline: Instant) -> (Vec<&'static str>, Vec<String>) {
    let (mut sent, mut failures) = (Vec::new(), Vec::new());
    let slack = match (&step.failure_slack, digest.severity().needs_attention()) {
        (Some(failure_slack), true) => Some(("failure Slack webhook", failure_slack)),
        _ => step.slack.as_ref().map(|slack| ("Slack webhook", slack)),
    };
    match slack {
        Some((channel, Ok(slack))) => match post_to_slack(slack, &digest.slack_payload(), Some(deadline)).await {
            Ok(()) => sent.push(channel),
            Err(e) => failures.push(format!("{channel}: {e}")),
        },
        Some((channel, Err(e))) => failures.push(format!("{channel}: {}", e.message)),
        None => {}
    }
    let topics = [
        ("SNS topic", &step.topic_arn, Some(digest.sns_subject()), digest.text_message()),
        ("chat topic", &step.chatbot_topic_arn, None, digest.render(Format::Chatbot).to_string()),
    ];
    for (channel, topic, subject, message) in topics {
        let Some(topic) = topic else { continue };
        match step.sns.publish().topic_arn(topic).set_subject(subject).message(message).send().await {
            Ok(_) => sent.push(channel),
            Err(e) => failures.push(AwsFailure::of(&format!("Publish to {topic}"), &e).message),
        }
    }
    (sent, failures)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_ends_at_the_scheduled_time() {
        let event = json!({"detail-type": "Scheduled Event", "source": "aws.events", "time": "2026-11-22T07:00:00Z"});
        assert_eq!(window_end(&event), "2026-11-22T07:00:00Z".parse::<DateTime<Utc>>().unwrap());
    }

    #[test]
    fn an_event_without_a_time_ends_the_window_now() {
        let before = Utc::now();
        let end = window_end(&json!({}));
        assert!(before <= end && end <= Utc::now());
    }
}
