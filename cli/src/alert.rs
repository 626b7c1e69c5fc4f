//! `backup-archiver alert`: the relay's dry run. Reads one SNS delivery or EventBridge event of
//! AWS Backup and prints the message the `relay-alert` Lambda would send (exit 0), or `filtered`
//! and why (exit 1), or why the event is malformed (exit 2). Offline: no AWS call.
//!
//! `--json` prints one document, whose fields are only ever added:
//! - sent: `{"outcome": "send", "route": "failures" | "others", "severity", "dedup_key", "format",
//!   "message"}`, `message` being the Slack payload, `{"subject", "message"}` for text, or the
//!   Amazon Q Developer custom notification;
//! - filtered: `{"outcome": "filtered", "reason"}`;
//! - malformed: `{"outcome": "malformed", "field", "message"}`.

use std::path::PathBuf;

use archiver_core::alert::render::{Format, Message};
use archiver_core::alert::{decide, read_alert, AlertConfig, AlertEvent, Decision};
use serde_json::{json, Value};

use crate::output::print_json;
use crate::{ExitCode, Failure};

#[derive(Debug, clap::Args)]
pub struct AlertArgs {
    /// The event: an SNS delivery (`{"Records": [...]}`) or an EventBridge event, or - for stdin.
    #[arg(long)]
    pub event: PathBuf,
    /// What to print: the Slack webhook payload, the SNS/e-mail text, or the Amazon Q Developer
    /// in chat applications custom notification.
    #[arg(long, value_enum, default_value = "slack")]
    pub format: FormatArg,
    /// The filters as JSON: {"states": [...], "vaults": [...], "resource_types": [...]}; absent
    /// fields take the relay's defaults (states FAILED, ABORTED, EXPIRED, PARTIAL; every vault
    /// and resource type).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Print one JSON document (see the module's documentation) instead of the message alone.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum FormatArg {
    Slack,
    Text,
    Chatbot,
}

impl From<FormatArg> for Format {
    fn from(format: FormatArg) -> Self {
        match format {
            FormatArg::Slack => Format::Slack,
            FormatArg::Text => Format::Text,
            FormatArg::Chatbot => Format::Chatbot,
        }
    }
}

pub fn alert(args: AlertArgs) -> Result<ExitCode, Failure> {
    let config = match &args.config {
        Some(path) => {
            let text = crate::read_input(path)?;
            let config: AlertConfig = serde_json::from_slice(&text)
                .map_err(|e| Failure::usage(format!("{}: not an alert configuration: {e}", path.display())))?;
            config.validate().map_err(|e| Failure::usage(format!("{}: {e}", path.display())))?;
            config
        }
        None => AlertConfig::default(),
    };
    let text = crate::read_input(&args.event)?;
    let value: Value =
        serde_json::from_slice(&text).map_err(|e| malformed("event", &format!("not JSON: {e}"), args.json))?;
    let event = read_alert(&value).map_err(|e| malformed(e.field(), &e.to_string(), args.json))?;
    match decide(&event, &config) {
        Decision::Filtered { reason } => {
            if args.json {
                print_json(&json!({"outcome": "filtered", "reason": reason}));
            } else {
                println!("filtered: {reason}");
            }
            Ok(ExitCode::No)
        }
        Decision::Send { route, severity } => {
            let AlertEvent::Alert(alert) = event else { unreachable!("only job alerts are sent") };
            let format = Format::from(args.format);
            let message = alert.render(format);
            if args.json {
                print_json(&json!({
                    "outcome": "send", "route": route, "severity": severity, "dedup_key": alert.dedup_key(),
                    "format": format, "message": message,
                }));
            } else if format == Format::Text {
                println!("Subject: {}\n\n{}", alert.sns_subject(), alert.text_message());
            } else {
                print_json(&message);
            }
            Ok(ExitCode::Success)
        }
    }
}

/// A malformed event: exit 2, naming the field.
fn malformed(field: &str, message: &str, json: bool) -> Failure {
    if json {
        print_json(&json!({"outcome": "malformed", "field": field, "message": message}));
    }
    Failure::usage(format!("malformed: {message}"))
}
