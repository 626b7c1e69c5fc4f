//! Slack incoming webhooks, for `notify` and [`super::channels`]: the webhook's URL read from its SSM
//! SecureString parameter (the URL is a credential: never in the function's configuration, nor
//! logged), and a POST retried as [`archiver_core::message::slack_retry_delay`] says (a 429 after
//! its `Retry-After`, a 5xx or a lost connection with backoff), bounded by the function's deadline.
//! <https://api.slack.com/messaging/webhooks>

use std::time::{Duration, Instant};

use archiver_core::message::slack_retry_delay;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

use super::{AwsFailure, StepError};

/// One Slack request's longest wait for an answer (arbitrary: Slack answers in well under 1 s).
pub const SLACK_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

type Https = hyper_rustls::HttpsConnector<HttpConnector>;

/// What is kept of the function's time after giving up on Slack: enough for the calls that
/// report the failure (arbitrary; each takes well under a second).
const MARGIN: Duration = Duration::from_secs(5);

/// An incoming webhook and the client that posts to it.
pub struct Slack {
    url: http::Uri,
    client: HttpClient<Https, Full<Bytes>>,
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

/// The webhook whose parameter the environment variable `env` names, or `None` when it names none.
pub async fn slack_from_env(ssm: &aws_sdk_ssm::Client, env: &str) -> Option<Result<Slack, StepError>> {
    match super::optional_env(env) {
        Some(parameter) => Some(slack_from_parameter(ssm, &parameter).await),
        None => None,
    }
}

/// A client for the webhook `url` (https, or http for a local stand-in).
pub fn slack_client(url: &str) -> Result<Slack, StepError> {
    let url: http::Uri = url.parse().map_err(|_| StepError::config("the Slack webhook is not a URL"))?;
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_provider_and_native_roots(rustls::crypto::aws_lc_rs::default_provider())
        .map_err(|e| StepError::config(format!("no TLS root certificates for Slack: {e}")))?
        .https_or_http()
        .enable_http1()
        .build();
    Ok(Slack { url, client: HttpClient::builder(TokioExecutor::new()).build(https) })
}

/// Posts `payload`, retrying as [`slack_retry_delay`] says, but never past `deadline` (the
/// function's own, from its invocation's context): a wait that would outlast it gives up at once,
/// so the caller still has time to report the failure (the relay's dead-letter queue).
pub async fn post_to_slack(slack: &Slack, payload: &Value, deadline: Option<Instant>) -> Result<(), String> {
    let body = Bytes::from(serde_json::to_vec(payload).expect("JSON values serialize"));
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
            Some(delay) if deadline.is_some_and(|d| Instant::now() + delay + SLACK_REQUEST_TIMEOUT + MARGIN > d) => {
                return Err(format!(
                    "Slack webhook failed after {attempt} attempt(s): {detail}; waiting {delay:?} more would outlast \
                     the function's timeout"
                ));
            }
            Some(delay) => {
                tracing::warn!(attempt, detail, ?delay, "Slack did not take the message; retrying");
                tokio::time::sleep(delay).await;
                attempt += 1;
            }
            None => return Err(format!("Slack webhook failed after {attempt} attempt(s): {detail}")),
        }
    }
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

    fn message() -> Value {
        serde_json::json!({"text": "Archive of snap-1 FAILED"})
    }

    #[tokio::test]
    async fn slack_429_is_retried_after_retry_after() {
        let (url, bodies) = fake_slack(vec![
            "HTTP/1.1 429 Too Many Requests\r\nRetry-After: 1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
        ])
        .await;
        let started = std::time::Instant::now();
        post_to_slack(&slack(&url), &message(), None).await.unwrap();
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
        let error = post_to_slack(&slack(&url), &message(), None).await.unwrap_err();
        assert!(error.contains("404") && error.contains("no_such_token"), "{error}");
        assert_eq!(bodies.lock().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn a_retry_after_past_the_deadline_gives_up_at_once() {
        let (url, bodies) = fake_slack(vec![
            "HTTP/1.1 429 Too Many Requests\r\nRetry-After: 20\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        ])
        .await;
        let started = Instant::now();
        let deadline = started + Duration::from_secs(30);
        let error = post_to_slack(&slack(&url), &message(), Some(deadline)).await.unwrap_err();
        assert!(error.contains("outlast the function's timeout") && error.contains("429"), "{error}");
        assert!(started.elapsed() < Duration::from_secs(5), "did not wait for a retry it could not make");
        assert_eq!(bodies.lock().unwrap().len(), 1);
    }
}
