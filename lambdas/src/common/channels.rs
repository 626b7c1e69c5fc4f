//! Where `relay-alert` and `daily-digest` send what they have to say: the Slack webhook
//! (`SLACK_WEBHOOK_PARAMETER`), or for a message that needs attention the failure webhook when one
//! is set (`FAILURE_SLACK_WEBHOOK_PARAMETER`); the notification topic as text (`SNS_TOPIC_ARN`,
//! for e-mail); a topic watched by Amazon Q Developer in chat applications (`CHATBOT_TOPIC_ARN`).
//! Every channel is optional; one that fails does not keep the others from their message.

use std::time::Instant;

use archiver_core::alert::render::{Format, Message};

use super::optional_env;
use super::slack::{post_to_slack, slack_from_env, Slack};
use super::{AwsFailure, StepError};

/// The channels configured for the function.
pub struct Channels {
    sns: aws_sdk_sns::Client,
    /// `Err` when the webhook's parameter cannot be read: sending to it then fails, naming why.
    slack: Option<Result<Slack, StepError>>,
    failure_slack: Option<Result<Slack, StepError>>,
    topic_arn: Option<String>,
    chatbot_topic_arn: Option<String>,
}

/// What became of one message: the channels that took it, and why the others did not.
#[derive(Debug, Default)]
pub struct Delivery {
    pub sent: Vec<&'static str>,
    pub failures: Vec<String>,
}

impl Channels {
    /// The channels the function's environment names; the webhooks are read from SSM once, at start.
    pub async fn from_env(config: &aws_config::SdkConfig) -> Channels {
        let ssm = aws_sdk_ssm::Client::new(config);
        let slack = slack_from_env(&ssm, "SLACK_WEBHOOK_PARAMETER").await;
        let failure_slack = slack_from_env(&ssm, "FAILURE_SLACK_WEBHOOK_PARAMETER").await;
        let channels = Channels {
            sns: aws_sdk_sns::Client::new(config),
            slack,
            failure_slack,
            topic_arn: optional_env("SNS_TOPIC_ARN"),
            chatbot_topic_arn: optional_env("CHATBOT_TOPIC_ARN"),
        };
        tracing::info!(
            slack = channels.slack.is_some(),
            failure_slack = channels.failure_slack.is_some(),
            sns = channels.topic_arn.is_some(),
            chatbot = channels.chatbot_topic_arn.is_some(),
            "channels"
        );
        channels
    }

    /// Sends `message` to every channel, Slack retried up to the function's `deadline`;
    /// `needs_attention` picks the failure webhook when there is one.
    pub async fn deliver(&self, message: &impl Message, needs_attention: bool, deadline: Instant) -> Delivery {
        let mut delivery = Delivery::default();
        let slack = match (&self.failure_slack, needs_attention) {
            (Some(failure_slack), true) => Some(("failure Slack webhook", failure_slack)),
            _ => self.slack.as_ref().map(|slack| ("Slack webhook", slack)),
        };
        match slack {
            Some((channel, Ok(slack))) => match post_to_slack(slack, &message.slack_payload(), Some(deadline)).await {
                Ok(()) => delivery.sent.push(channel),
                Err(e) => delivery.failures.push(format!("{channel}: {e}")),
            },
            Some((channel, Err(e))) => delivery.failures.push(format!("{channel}: {}", e.message)),
            None => {}
        }
        let topics = [
            ("SNS topic", &self.topic_arn, Some(message.sns_subject()), message.text_message()),
            ("chat topic", &self.chatbot_topic_arn, None, message.render(Format::Chatbot).to_string()),
        ];
        for (channel, topic, subject, text) in topics {
            let Some(topic) = topic else { continue };
            match self.sns.publish().topic_arn(topic).set_subject(subject).message(text).send().await {
                Ok(_) => delivery.sent.push(channel),
                Err(e) => delivery.failures.push(AwsFailure::of(&format!("Publish to {topic}"), &e).message),
            }
        }
        delivery
    }
}
