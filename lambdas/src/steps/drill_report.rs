//! The `drill-report` Lambda (states `DrillReport` and `ReportFailure` of the restore drill): reads
//! the result each drill job wrote, makes the drill's report ([`drill_report`]), keeps it in the
//! bucket at the plan's `report_key` (`<prefix>/.drills/<drill id>.json`) and sends it as one
//! message: to the Slack webhook (the failure webhook, when one is set, for a failed drill) and
//! the notification topic. From the failure path it reports the error that stopped the drill.
//!
//! A failed write is `StorageAccessFailed` (or `Retryable`); a channel that did not take the
//! message after its retries is `NotificationFailed`, after the report was written.

use std::time::Instant;

use archiver_core::document::NotificationReport;
use archiver_core::errors;
use archiver_core::flows::restore_drill::{
    drill_report, DrillReport, DrillReportInput, DrillReportOutput, DrillResult,
};
use aws_sdk_s3::primitives::ByteStream;
use chrono::Utc;
use lambda_runtime::{service_fn, LambdaEvent};
use serde_json::Value;

use crate::common::slack::{post_to_slack, slack_from_env, Slack};
use crate::common::storage::read_optional;
use crate::common::{deadline, optional_env, parse_input, precondition_failed, AwsFailure, StepError};

struct ReportStep {
    s3: aws_sdk_s3::Client,
    sns: aws_sdk_sns::Client,
    topic_arn: Option<String>,
    slack: Option<Result<Slack, StepError>>,
    failure_slack: Option<Result<Slack, StepError>>,
}

/// Serves the `drill-report` handler: builds its clients, then answers invocations until the runtime stops.
pub async fn run() -> Result<(), lambda_runtime::Error> {
    let config = crate::common::aws_config().await;
    let ssm = aws_sdk_ssm::Client::new(&config);
    let slack = slack_from_env(&ssm, "SLACK_WEBHOOK_PARAMETER").await;
    let failure_slack = slack_from_env(&ssm, "FAILURE_SLACK_WEBHOOK_PARAMETER").await;
    let step = ReportStep {
        s3: crate::common::s3_client(&config),
        sns: aws_sdk_sns::Client::new(&config),
        topic_arn: optional_env("SNS_TOPIC_ARN"),
        slack,
        failure_slack,
    };
    let step = &step;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        report(step, parse_input(event.payload)?, deadline(&event.context)).await
    }))
    .await
}

#[tracing::instrument(skip_all, fields(execution_id = input.execution_id))]
async fn report(step: &ReportStep, input: DrillReportInput, deadline: Instant) -> Result<DrillReportOutput, StepError> {
    let mut results: Vec<Option<DrillResult>> = Vec::new();
    if let Some(plan) = &input.drill {
        for outcome in input.outcomes.iter().flatten() {
            let body = read_optional(&step.s3, &plan.bucket, &outcome.target.result_key).await?;
            results.push(body.and_then(|bytes| match serde_json::from_slice(&bytes) {
                Ok(result) => Some(result),
                Err(error) => {
                    tracing::warn!(key = outcome.target.result_key, %error, "unreadable drill result");
                    None
                }
            }));
        }
    }
    let report = drill_report(&input, &results, Utc::now());
    let report_url = match &input.drill {
        // From the failure path the message comes first; a report DrillReport already kept (its
        // message then failed) is not replaced by one without the archives' verdicts.
        Some(plan) if input.error.is_some() => {
            match write(&step.s3, &plan.bucket, &plan.report_key, &report, true).await {
                Ok(()) => {}
                Err(e) => tracing::warn!(error = %e, "the stopped drill's report was not kept"),
            }
            Some(format!("s3://{}/{}", plan.bucket, plan.report_key))
        }
        Some(plan) => {
            write(&step.s3, &plan.bucket, &plan.report_key, &report, false).await?;
            Some(format!("s3://{}/{}", plan.bucket, plan.report_key))
        }
        None => None,
    };
    let failed: Vec<String> = report.failed().iter().map(|a| a.location.clone()).collect();
    tracing::info!(passed = report.passed, ?failed, report = report_url, "drill reported");
    let notification = send(step, &report, report_url.as_deref(), deadline).await?;
    Ok(DrillReportOutput {
        report_key: input.drill.map(|plan| plan.report_key),
        passed: report.passed,
        failed,
        notification,
    })
}

/// Writes the report; `only_if_new` keeps an existing one (S3's conditional write: If-None-Match).
async fn write(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    report: &DrillReport,
    only_if_new: bool,
) -> Result<(), StepError> {
    let body = serde_json::to_vec_pretty(report).expect("reports serialize");
    let written = s3
        .put_object()
        .bucket(bucket)
        .key(key)
        .content_type("application/json")
        .set_if_none_match(only_if_new.then(|| "*".to_string()))
        .body(ByteStream::from(body))
        .send()
        .await;
    match written {
        Ok(_) => Ok(()),
        Err(e) if only_if_new && precondition_failed(&e) => {
            tracing::info!(key, "the drill's report is already kept");
            Ok(())
        }
        Err(e) => Err(AwsFailure::of(&format!("PutObject s3://{bucket}/{key}"), &e)
            .into_step_error(errors::STORAGE_ACCESS_FAILED)),
    }
}

/// Sends the report to every configured channel, or fails naming those that did not take it.
async fn send(
    step: &ReportStep,
    report: &DrillReport,
    report_url: Option<&str>,
    deadline: Instant,
) -> Result<NotificationReport, StepError> {
    let mut sent = NotificationReport::default();
    let mut failures = Vec::new();
    let slack = match (&step.failure_slack, report.severity().needs_attention()) {
        (Some(failure_slack), true) => Some(failure_slack),
        _ => step.slack.as_ref(),
    };
    match slack {
        Some(Ok(slack)) => match post_to_slack(slack, &report.slack_payload(report_url), Some(deadline)).await {
            Ok(()) => sent.slack = true,
            Err(e) => failures.push(e),
        },
        Some(Err(e)) => failures.push(e.message.clone()),
        None => {}
    }
    if let Some(topic) = &step.topic_arn {
        let published = step
            .sns
            .publish()
            .topic_arn(topic)
            .subject(report.sns_subject())
            .message(report.text_message(report_url))
            .send()
            .await;
        match published {
            Ok(output) => sent.sns_message_id = output.message_id().map(str::to_string),
            Err(e) => failures.push(AwsFailure::of(&format!("Publish to {topic}"), &e).message),
        }
    }
    if failures.is_empty() {
        Ok(sent)
    } else {
        Err(StepError::new(errors::NOTIFICATION_FAILED, failures.join("; ")))
    }
}
