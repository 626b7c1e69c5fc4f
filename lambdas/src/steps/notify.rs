//! The `notify` Lambda (states `NotifySuccess` and `NotifyFailure`): sends the one notification
//! of an execution, to a Slack incoming webhook and/or an SNS topic, both optional:
//!
//! - `SLACK_WEBHOOK_PARAMETER`: the name of the SSM SecureString parameter holding the webhook's
//!   URL, read once per cold start (the URL is a credential: it is never in the function's
//!   configuration, nor logged); a 429 is retried after its `Retry-After`, a 5xx or a lost
//!   connection with backoff, a bounded number of times ([`slack_retry_delay`]);
//! - `SNS_TOPIC_ARN`: the topic.
//!
//! The text is [`archiver_core::message`]'s. The ASL does not retry this step on our errors, so
//! an execution sends at most one message per channel; a channel that failed after its own
//! retries makes the step fail `NotificationFailed`.

use std::time::Duration;

use crate::common::{optional_env, parse_input, AwsFailure, StepError};
use archiver_core::document::{NotificationReport, NotifyInput};
use archiver_core::errors;
use archiver_core::message::{notification, slack_retry_delay, FlowView, Notification};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::rt::TokioExecutor;
use lambda_runtime::{service_fn, LambdaEvent};
use serde_json::Value;

/// The environment variable naming the SecureString parameter of the Slack webhook.
const SLACK_WEBHOOK_PARAMETER_ENV: &str = "SLACK_WEBHOOK_PARAMETER";

/// One Slack request's longest wait for an answer (arbitrary: Slack answers in well under 1 s).
const SLACK_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

type Https = hyper_rustls::HttpsConnector<HttpConnector>;

/// The configured channels.
struct Notifier {
    sns: aws_sdk_sns::Client,
    topic_arn: Option<String>,
    /// `Err` when the webhook is set but unusable: every notification then fails, naming why.
    slack: Option<Result<Slack, StepError>>,
}

struct Slack {
    url: http::Uri,
    client: HttpClient<Https, Full<Bytes>>,
}

/// Serves the `notify` handler: builds its clients, then answers invocations until the runtime stops.
pub async fn run() -> Result<(), lambda_runtime::Error> {
    let config = crate::common::aws_config().await;
    let slack = match optional_env(SLACK_WEBHOOK_PARAMETER_ENV) {
        Some(name) => Some(slack_from_parameter(&aws_sdk_ssm::Client::new(&config), &name).await),
        None => None,
    };
    let notifier = Notifier { sns: aws_sdk_sns::Client::new(&config), topic_arn: optional_env("SNS_TOPIC_ARN"), slack };
    let slack = match &notifier.slack {
        Some(Ok(_)) => "configured",
        Some(Err(_)) => "misconfigured",
        None => "off",
    };
    tracing::info!(slack, sns = notifier.topic_arn.is_some(), "notification channels");
    let notifier = &notifier;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        notify(notifier, parse_input(event.payload)?, Utc::now()).await
    }))
    .await
}

/// The webhook named by the SecureString parameter `name`. SSM's errors name the parameter, never
/// its value; a value that is not a URL is reported without it.
async fn slack_from_parameter(ssm: &aws_sdk_ssm::Client, name: &str) -> Result<Slack, StepError> {
    let output = ssm.get_parameter().name(name).with_decryption(true).send().await.map_err(|e| {
        StepError::config(AwsFailure::of(&format!("GetParameter {name} (the Slack webhook)"), &e).message)
    })?;
    let url = output.parameter.and_then(|p| p.value).unwrap_or_default();
    slack_client(&url).map_err(|e| StepError::config(format!("parameter {name}: {}", e.message)))
}

/// A client for the webhook `url` (https, or http for a local stand-in).
fn slack_client(url: &str) -> Result<Slack, StepError> {
    let url: http::Uri = url.parse().map_err(|_| StepError::config("the Slack webhook is not a URL"))?;
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_provider_and_native_roots(rustls::crypto::aws_lc_rs::default_provider())
        .map_err(|e| StepError::config(format!("no TLS root certificates for Slack: {e}")))?
        .https_or_http()
        .enable_http1()
        .build();
    Ok(Slack { url, client: HttpClient::builder(TokioExecutor::new()).build(https) })
}

impl Notifier {
    fn slack(&self) -> Option<Result<&Slack, StepError>> {
        self.slack.as_ref().map(|s| s.as_ref().map_err(Clone::clone))
    }
}

#[tracing::instrument(skip_all, fields(execution_id = input.execution_id, outcome = ?input.outcome))]
async fn notify(notifier: &Notifier, input: NotifyInput, now: DateTime<Utc>) -> Result<NotificationReport, StepError> {
    let view = FlowView::from_value(&input.state);
    let duration = (now - input.started_at).to_std().unwrap_or_default();
    let message = notification(input.outcome, &view, &input.execution_id, duration);
    tracing::info!(title = message.title, "notifying");
    let mut report = NotificationReport::default();
    let mut failures = Vec::new();
    match notifier.slack() {
        Some(Ok(slack)) => match post_to_slack(slack, &message).await {
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

/// Posts the message, retrying as [`slack_retry_delay`] says.
async fn post_to_slack(slack: &Slack, message: &Notification) -> Result<(), String> {
    let body = Bytes::from(serde_json::to_vec(&message.slack_payload()).expect("JSON values serialize"));
    let mut attempt = 1;
    loop {
        let request = http::Request::post(slack.url.clone())
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Full::new(body.clone()))
            .expect("a POST with a parsed URI is a valid request");
        let (status, retry_after, detail) =
            match tokio::time::timeout(SLACK_REQUEST_TIMEOUT, slack.client.request(request)).await {
                Ok(Ok(response)) => {
                    let status = response.status();
                    let retry_after = response
                        .headers()
                        .get(http::header::RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_string);
                    let text = match response.into_body().collect().await {
                        Ok(body) => String::from_utf8_lossy(&body.to_bytes()).chars().take(200).collect(),
                        Err(e) => e.to_string(),
                    };
                    if status.is_success() {
                        tracing::info!(attempt, "Slack accepted the message");
                        return Ok(());
                    }
                    (Some(status.as_u16()), retry_after, format!("HTTP {status}: {text}"))
                }
                Ok(Err(e)) => (None, None, e.to_string()),
                Err(_) => (None, None, format!("no answer within {SLACK_REQUEST_TIMEOUT:?}")),
            };
        match slack_retry_delay(attempt, status, retry_after.as_deref()) {
            Some(delay) => {
                tracing::warn!(attempt, detail, ?delay, "Slack did not take the message; retrying");
                tokio::time::sleep(delay).await;
                attempt += 1;
            }
            None => return Err(format!("Slack webhook failed after {attempt} attempt(s): {detail}")),
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// A Slack stand-in on loopback answering each request with the next of `answers`, and
    /// recording the bodies it got.
    async fn fake_slack(answers: Vec<&'static str>) -> (String, Arc<Mutex<Vec<String>>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/services/T/B/X", listener.local_addr().unwrap());
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let seen = bodies.clone();
        tokio::spawn(async move {
            for answer in answers {
                let (mut socket, _) = listener.accept().await.unwrap();
                let mut request = Vec::new();
                let mut buf = [0u8; 4096];
                // Headers, then the body by Content-Length.
                loop {
                    let n = socket.read(&mut buf).await.unwrap();
                    request.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&request).to_string();
                    if let Some(end) = text.find("\r\n\r\n") {
                        let length: usize = text
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().parse().unwrap())
                            })
                            .unwrap_or(0);
                        if request.len() >= end + 4 + length {
                            seen.lock().unwrap().push(text[end + 4..].to_string());
                            break;
                        }
                    }
                }
                socket.write_all(answer.as_bytes()).await.unwrap();
                socket.shutdown().await.unwrap();
            }
        });
        (url, bodies)
    }

    fn slack(url: &str) -> Slack {
        slack_client(url).unwrap()
    }

    fn message() -> Notification {
        notification(
            archiver_core::document::FlowOutcome::Failed,
            &FlowView::default(),
            "arn:aws:states:us-east-1:1:execution:m:e",
            Duration::from_secs(3),
        )
    }

    #[tokio::test]
    async fn slack_429_is_retried_after_retry_after() {
        let (url, bodies) = fake_slack(vec![
            "HTTP/1.1 429 Too Many Requests\r\nRetry-After: 1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
        ])
        .await;
        let started = std::time::Instant::now();
        post_to_slack(&slack(&url), &message()).await.unwrap();
        assert!(started.elapsed() >= Duration::from_secs(1), "waited for Retry-After");
        let bodies = bodies.lock().unwrap();
        assert_eq!(bodies.len(), 2);
        assert_eq!(bodies[0], bodies[1], "the same message again");
        assert!(bodies[0].contains("FAILED"), "{}", bodies[0]);
    }

    #[tokio::test]
    async fn slack_client_error_is_not_retried() {
        let (url, bodies) =
            fake_slack(vec!["HTTP/1.1 404 Not Found\r\nContent-Length: 13\r\nConnection: close\r\n\r\nno_such_token"])
                .await;
        let error = post_to_slack(&slack(&url), &message()).await.unwrap_err();
        assert!(error.contains("404") && error.contains("no_such_token"), "{error}");
        assert_eq!(bodies.lock().unwrap().len(), 1);
    }
}
