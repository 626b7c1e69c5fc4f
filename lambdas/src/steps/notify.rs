//! The `notify` Lambda (states `NotifySuccess` and `NotifyFailure`): sends the one notification
//! of an execution, to a Slack incoming webhook and/or an SNS topic, both optional:
//!
//! - `SLACK_WEBHOOK_PARAMETER`: the name of the SSM SecureString parameter holding the webhook's
//!   URL, read once per cold start (the URL is a credential: it is never in the function's
//!   configuration, nor logged); a 429 is retried after its `Retry-After`, a 5xx or a lost
//!   connection with backoff, a bounded number of times, within the function's timeout
//!   ([`crate::common::slack`]);
//! - `SNS_TOPIC_ARN`: the topic.
//!
//! The text is [`archiver_core::message`]'s. The ASL does not retry this step on our errors, so
//! an execution sends at most one message per channel; a channel that failed after its own
//! retries makes the step fail `NotificationFailed`.

use std::time::Instant;

use crate::common::slack::{post_to_slack, slack_from_env, Slack};
use crate::common::{deadline, optional_env, parse_input, AwsFailure, StepError};
use archiver_core::document::{NotificationReport, NotifyInput};
use archiver_core::errors;
use archiver_core::message::{notification, FlowView, Notification};
use chrono::{DateTime, Utc};
use lambda_runtime::{service_fn, LambdaEvent};
use serde_json::Value;

/// The environment variable naming the SecureString parameter of the Slack webhook.
const SLACK_WEBHOOK_PARAMETER_ENV: &str = "SLACK_WEBHOOK_PARAMETER";

/// The configured channels.
struct Notifier {
    sns: aws_sdk_sns::Client,
    topic_arn: Option<String>,
    /// `Err` when the webhook is set but unusable: every notification then fails, naming why.
    slack: Option<Result<Slack, StepError>>,
}

/// Serves the `notify` handler: builds its clients, then answers invocations until the runtime stops.
pub async fn run() -> Result<(), lambda_runtime::Error> {
    let config = crate::common::aws_config().await;
    let slack = slack_from_env(&aws_sdk_ssm::Client::new(&config), SLACK_WEBHOOK_PARAMETER_ENV).await;
    let notifier = Notifier { sns: aws_sdk_sns::Client::new(&config), topic_arn: optional_env("SNS_TOPIC_ARN"), slack };
    let slack = match &notifier.slack {
        Some(Ok(_)) => "configured",
        Some(Err(_)) => "misconfigured",
        None => "off",
    };
    tracing::info!(slack, sns = notifier.topic_arn.is_some(), "notification channels");
    let notifier = &notifier;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        notify(notifier, parse_input(event.payload)?, Utc::now(), deadline(&event.context)).await
    }))
    .await
}

impl Notifier {
    fn slack(&self) -> Option<Result<&Slack, StepError>> {
        self.slack.as_ref().map(|s| s.as_ref().map_err(Clone::clone))
    }
}

#[tracing::instrument(skip_all, fields(execution_id = input.execution_id, outcome = ?input.outcome))]
async fn notify(
    notifier: &Notifier,
    input: NotifyInput,
    now: DateTime<Utc>,
    deadline: Instant,
) -> Result<NotificationReport, StepError> {
    let view = FlowView::from_value(&input.state);
    let duration = (now - input.started_at).to_std().unwrap_or_default();
    let message = notification(input.outcome, &view, &input.execution_id, duration);
    tracing::info!(title = message.title, "notifying");
    let mut report = NotificationReport::default();
    let mut failures = Vec::new();
    match notifier.slack() {
        Some(Ok(slack)) => match post_to_slack(slack, &message.slack_payload(), Some(deadline)).await {
            Ok(()) => report.slack = true,
            Err(e) => failures.push(e),
        },
        Some(Err(e)) => failures.push(e.message),
        None => {}
    }
    if let Some(topic) = &notifier.topic_arn {
        match publish(&notifier.sns, topic, &message).await {
            Ok(id) => report.sns_message_id = Some(id),
            Err(e) => failures.push(e),
        }
    }
    if failures.is_empty() {
        Ok(report)
    } else {
        Err(StepError::new(errors::NOTIFICATION_FAILED, failures.join("; ")))
    }
}

async fn publish(sns: &aws_sdk_sns::Client, topic_arn: &str, message: &Notification) -> Result<String, String> {
    let output = sns
        .publish()
        .topic_arn(topic_arn)
        .subject(message.sns_subject())
        .message(message.sns_message())
        .send()
        .await
        .map_err(|e| AwsFailure::of(&format!("Publish to {topic_arn}"), &e).message)?;
    Ok(output.message_id().unwrap_or_default().to_string())
}
