//! A [`JobAlert`] as a message: for a Slack incoming webhook (Block Kit in a coloured attachment,
//! most important first so the phone's notification and the first screen say what broke), as SNS
//! text for e-mail, and as the custom notification JSON that Amazon Q Developer in chat
//! applications (formerly AWS Chatbot) relays from an SNS topic to Slack, Teams or Chime.
//! <https://api.slack.com/reference/block-kit/blocks>, <https://api.slack.com/reference/messaging/attachments>,
//! <https://docs.aws.amazon.com/chatbot/latest/adminguide/custom-notifs.html>

use bytesize::ByteSize;
use serde_json::{json, Value};

use super::{AlertKind, Delivery, JobAlert, Severity};
use crate::message::{code_span, escape_mrkdwn, human_duration, truncate, MAX_CAUSE_CHARS};

/// The formats `backup-archiver alert --format` and the relay produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    Slack,
    Text,
    Chatbot,
}

/// What the alert channels carry, one rendering per channel: a job alert, or the daily digest.
pub trait Message {
    /// One line saying what happened, where: the headline of every rendering.
    fn title(&self) -> String;

    /// The incoming-webhook payload.
    fn slack_payload(&self) -> Value;

    /// The SNS message, for e-mail.
    fn text_message(&self) -> String;

    /// The custom notification Amazon Q Developer in chat applications posts.
    fn chatbot_notification(&self) -> Value;

    /// The SNS subject: the title, printable ASCII, at most SNS's 100 characters.
    fn sns_subject(&self) -> String {
        crate::message::sns_subject(&self.title())
    }

    fn render(&self, format: Format) -> Value {
        match format {
            Format::Slack => self.slack_payload(),
            Format::Text => json!({"subject": self.sns_subject(), "message": self.text_message()}),
            Format::Chatbot => self.chatbot_notification(),
        }
    }
}

/// Chat titles: Amazon Q Developer truncates longer ones (arbitrary but safe: its documented
/// limits are larger, and a title is one line on a phone).
const MAX_TITLE_CHARS: usize = 200;

impl Severity {
    pub fn emoji(self) -> &'static str {
        match self {
            Severity::Failure => ":rotating_light:",
            Severity::Warning => ":warning:",
            Severity::Success => ":white_check_mark:",
            Severity::Info => ":information_source:",
        }
    }

    /// Attachment bar colours: red, amber, green, grey.
    pub fn colour(self) -> &'static str {
        match self {
            Severity::Failure => "#D0021B",
            Severity::Warning => "#F5A623",
            Severity::Success => "#2EB67D",
            Severity::Info => "#9B9B9B",
        }
    }
}

impl JobAlert {
    /// Why it failed or what was wrong, in AWS's words (a vault notification's prose when that is
    /// all there is), cut to [`MAX_CAUSE_CHARS`].
    pub fn reason(&self) -> Option<String> {
        self.status_message.as_deref().map(|m| truncate(m, MAX_CAUSE_CHARS))
    }

    /// Label and value pairs, plain text, in reading order.
    pub fn fields(&self) -> Vec<(&'static str, String)> {
        let mut fields = Vec::new();
        if let Some(resource) = &self.resource_arn {
            fields.push(("Resource", resource.clone()));
        }
        match (&self.vault_name, &self.destination_vault) {
            (Some(from), Some(to)) => fields.push(("Vaults", format!("{from} -> {to}"))),
            (Some(vault), None) | (None, Some(vault)) => fields.push(("Vault", vault.clone())),
            (None, None) => {}
        }
        if let Some(point) = &self.recovery_point_arn {
            fields.push(("Recovery point", point.clone()));
        }
        if let Some(created) = &self.created_resource_arn {
            fields.push(("Restored as", created.clone()));
        }
        if let Some(size) = self.size_bytes {
            fields.push(("Size", ByteSize::b(size).to_string()));
        }
        if let Some(started) = self.creation_date {
            fields.push(("Started", started.format("%Y-%m-%d %H:%M UTC").to_string()));
        }
        if let (Some(started), Some(ended)) = (self.creation_date, self.completion_date) {
            fields.push(("Duration", human_duration((ended - started).to_std().unwrap_or_default())));
        }
        if let Some(job) = &self.job_id {
            fields.push(("Job", job.clone()));
        }
        let place: Vec<&str> = [self.account.as_deref(), self.region.as_deref()].into_iter().flatten().collect();
        if !place.is_empty() {
            fields.push(("Account", place.join(" / ")));
        }
        fields
    }

    /// `(label, url)` of the console pages to open.
    pub fn links(&self) -> Vec<(&'static str, String)> {
        let mut links = Vec::new();
        if let Some(url) = self.job_console_url() {
            links.push(("Open job", url));
        }
        if let Some(url) = self.recovery_point_console_url() {
            let label = if self.recovery_point_arn.is_some() && self.kind != AlertKind::CopyJob {
                "Open recovery point"
            } else {
                "Open resource"
            };
            links.push((label, url));
        }
        links
    }

    fn source_line(&self) -> String {
        let how = match &self.delivery {
            Delivery::EventBridge { detail_type, .. } => format!("EventBridge {detail_type}"),
            Delivery::VaultNotification { event_type, .. } => format!("vault notification {event_type}"),
        };
        let when = self.event_time.map(|t| format!(" | {}", t.format("%Y-%m-%d %H:%M:%S UTC"))).unwrap_or_default();
        format!("AWS Backup | {how}{when}")
    }
}

impl Message for JobAlert {
    /// One line: `Backup job FAILED: EBS vol-0123… in archive-vault`.
    fn title(&self) -> String {
        let state = if self.completed_with_issues() { "COMPLETED with issues".to_string() } else { self.state.clone() };
        let mut title = format!("{} {state}", self.kind.label());
        match (self.resource_type.as_deref(), self.resource_name()) {
            (Some(kind), Some(name)) => title.push_str(&format!(": {kind} {name}")),
            (None, Some(name)) => title.push_str(&format!(": {name}")),
            (Some(kind), None) => title.push_str(&format!(": {kind}")),
            (None, None) => {}
        }
        match (&self.vault_name, &self.destination_vault) {
            (Some(from), Some(to)) => title.push_str(&format!(" ({from} -> {to})")),
            (Some(vault), None) | (None, Some(vault)) => title.push_str(&format!(" in {vault}")),
            (None, None) => {}
        }
        truncate(&title, MAX_TITLE_CHARS)
    }

    /// The incoming-webhook payload: `text` is the notification's fallback (what a phone shows);
    /// the blocks sit in an attachment for its colour bar.
    fn slack_payload(&self) -> Value {
        let severity = self.severity();
        let headline = format!("{} {}", severity.emoji(), escape_mrkdwn(&self.title()));
        let mut blocks = vec![json!({"type": "section", "text": {"type": "mrkdwn", "text": format!("*{headline}*")}})];
        if let Some(reason) = self.reason() {
            blocks.push(
                json!({"type": "section", "text": {"type": "mrkdwn", "text": format!(">{}", escape_mrkdwn(&reason))}}),
            );
        } else if let Some(text) = &self.notification_text {
            blocks.push(json!({"type": "section", "text": {"type": "mrkdwn", "text": format!(">{}", escape_mrkdwn(&truncate(text, MAX_CAUSE_CHARS)))}}));
        }
        let fields: Vec<Value> = self
            .fields()
            .into_iter()
            .map(|(label, value)| json!({"type": "mrkdwn", "text": format!("*{label}*\n{}", code_span(&value))}))
            .collect();
        // A section holds at most 10 fields.
        blocks.extend(fields.chunks(10).map(|chunk| json!({"type": "section", "fields": chunk})));
        let buttons: Vec<Value> = self
            .links()
            .into_iter()
            .map(|(label, url)| json!({"type": "button", "text": {"type": "plain_text", "text": label}, "url": url}))
            .collect();
        if !buttons.is_empty() {
            blocks.push(json!({"type": "actions", "elements": buttons}));
        }
        blocks.push(
            json!({"type": "context", "elements": [{"type": "mrkdwn", "text": escape_mrkdwn(&self.source_line())}]}),
        );
        json!({
            "text": headline,
            "attachments": [{"color": severity.colour(), "blocks": blocks}],
        })
    }

    /// The SNS message, for e-mail: title, reason, fields, links.
    fn text_message(&self) -> String {
        let mut text = format!("{}\n\n", self.title());
        if let Some(reason) = self.reason() {
            text.push_str(&format!("Reason: {reason}\n\n"));
        } else if let Some(prose) = &self.notification_text {
            text.push_str(&format!("{prose}\n\n"));
        }
        for (label, value) in self.fields() {
            text.push_str(&format!("{label}: {value}\n"));
        }
        for (label, url) in self.links() {
            text.push_str(&format!("{label}: {url}\n"));
        }
        text.push_str(&format!("\n{}\n", self.source_line()));
        text
    }

    /// The custom notification Amazon Q Developer in chat applications posts for a message
    /// published to a topic it watches.
    fn chatbot_notification(&self) -> Value {
        let severity = self.severity();
        let mut description = String::new();
        if let Some(reason) = self.reason() {
            description.push_str(&format!("> {reason}\n"));
        }
        for (label, value) in self.fields() {
            description.push_str(&format!("*{label}:* `{value}`\n"));
        }
        let mut next_steps: Vec<String> = Vec::new();
        if severity.needs_attention() {
            next_steps.extend(self.links().into_iter().map(|(label, url)| format!("{label}: {url}")));
        }
        let related: Vec<&str> =
            [self.resource_arn.as_deref(), self.recovery_point_arn.as_deref()].into_iter().flatten().collect();
        let keywords: Vec<&str> = [Some(self.state.as_str()), self.resource_type.as_deref(), self.region.as_deref()]
            .into_iter()
            .flatten()
            .collect();
        let thread = self.job_id.as_deref().or(self.recovery_point_arn.as_deref()).unwrap_or("aws-backup");
        json!({
            "version": "1.0",
            "source": "custom",
            "content": {
                "textType": "client-markdown",
                "title": format!("{} {}", severity.emoji(), self.title()),
                "description": description.trim_end(),
                "nextSteps": next_steps,
                "keywords": keywords,
            },
            "metadata": {
                "threadId": format!("{}-{thread}", self.kind.slug()),
                "summary": self.title(),
                "eventType": self.kind.slug(),
                "relatedResources": related,
                "additionalContext": {
                    "account": self.account,
                    "region": self.region,
                    "state": self.state,
                    "severity": severity,
                },
            },
        })
    }
}
