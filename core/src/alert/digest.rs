//! The daily digest: once a day, per account and region, the last 24 hours of AWS Backup's backup,
//! copy and restore jobs summed by state, the failures listed (job, resource, vault, reason,
//! console link), and the archives this product wrote (count, bytes, from their manifests),
//! rendered for Slack, SNS text and Amazon Q Developer in chat applications as the job alerts are
//! ([`super::render`]). The `daily-digest` Lambda lists the jobs and manifests; this module decides
//! what is said and whether anything is.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use bytesize::ByteSize;
use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use serde_json::{json, Value};

use super::render::Message;
use super::{job_console_url, resource_name_of, severity_of, AlertKind, Severity};
use crate::manifest::Manifest;
use crate::message::{escape_mrkdwn, truncate, MAX_CAUSE_CHARS};

/// The span a digest covers, ending when it runs: "the last 24 hours".
pub const DIGEST_WINDOW: Duration = Duration::hours(24);

/// Failures listed one by one; the rest are counted. Slack allows 50 blocks per message and a phone
/// shows a handful: arbitrary, but a day with more failures than this is an incident, not a list.
pub const MAX_LISTED_FAILURES: usize = 15;

/// The job kinds a digest sums, in its order.
pub const DIGEST_KINDS: [AlertKind; 3] = [AlertKind::BackupJob, AlertKind::CopyJob, AlertKind::RestoreJob];

/// One job as ListBackupJobs, ListCopyJobs or ListRestoreJobs describe it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DigestJob {
    pub kind: AlertKind,
    pub job_id: String,
    /// AWS's word: `COMPLETED`, `FAILED`, …
    pub state: String,
    pub resource_arn: Option<String>,
    pub resource_type: Option<String>,
    /// The job's vault (a copy job's source vault).
    pub vault_name: Option<String>,
    pub status_message: Option<String>,
    pub creation_date: DateTime<Utc>,
}

impl DigestJob {
    pub fn severity(&self) -> Severity {
        severity_of(self.kind, &self.state, self.status_message.as_deref().is_some_and(|m| !m.is_empty()))
    }
}

/// When a digest stays silent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DigestSilence {
    /// Always sent: its arrival says the relay is alive.
    Never,
    /// Silent on a day without a single job or archive.
    WhenEmpty,
    /// Silent unless something failed or needs a look.
    WhenNoFailures,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("digest silence {given:?} is not one of never, when-empty, when-no-failures")]
pub struct DigestSilenceError {
    pub given: String,
}

impl FromStr for DigestSilence {
    type Err = DigestSilenceError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim().to_ascii_lowercase().as_str() {
            "never" => Ok(DigestSilence::Never),
            "when-empty" => Ok(DigestSilence::WhenEmpty),
            "when-no-failures" => Ok(DigestSilence::WhenNoFailures),
            _ => Err(DigestSilenceError { given: text.to_string() }),
        }
    }
}

/// A day of jobs and archives in one account and region.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Digest {
    pub account: Option<String>,
    pub region: String,
    pub since: DateTime<Utc>,
    pub until: DateTime<Utc>,
    /// Jobs by kind, then by state; a kind with no job is absent.
    pub counts: BTreeMap<AlertKind, BTreeMap<String, u64>>,
    /// The jobs that failed or need a look, worst and oldest first.
    pub failures: Vec<DigestJob>,
    pub archives: u64,
    pub archive_bytes: u64,
}

/// The digest of the jobs and manifests created in `[now - DIGEST_WINDOW, now)`; anything outside
/// it (a listing's page may run over) is left out, so two days' digests never count a job twice.
pub fn summarize(
    account: Option<String>,
    region: &str,
    now: DateTime<Utc>,
    jobs: &[DigestJob],
    manifests: &[Manifest],
) -> Digest {
    let since = now - DIGEST_WINDOW;
    let within = |t: DateTime<Utc>| since <= t && t < now;
    let mut counts: BTreeMap<AlertKind, BTreeMap<String, u64>> = BTreeMap::new();
    let mut failures = Vec::new();
    for job in jobs.iter().filter(|j| within(j.creation_date) && DIGEST_KINDS.contains(&j.kind)) {
        *counts.entry(job.kind).or_default().entry(job.state.clone()).or_default() += 1;
        if job.severity().needs_attention() {
            failures.push(job.clone());
        }
    }
    failures.sort_by(|a, b| {
        let rank = |j: &DigestJob| j.severity() != Severity::Failure;
        (rank(a), a.creation_date, &a.job_id).cmp(&(rank(b), b.creation_date, &b.job_id))
    });
    let written: Vec<&Manifest> = manifests.iter().filter(|m| within(m.finished_at)).collect();
    Digest {
        account,
        region: region.to_string(),
        since,
        until: now,
        counts,
        failures,
        archives: written.len() as u64,
        archive_bytes: written.iter().map(|m| m.total_size()).sum(),
    }
}

impl Digest {
    pub fn is_empty(&self) -> bool {
        self.counts.is_empty() && self.archives == 0
    }

    /// Whether this digest is sent under `silence`.
    pub fn worth_sending(&self, silence: DigestSilence) -> bool {
        match silence {
            DigestSilence::Never => true,
            DigestSilence::WhenEmpty => !self.is_empty(),
            DigestSilence::WhenNoFailures => !self.failures.is_empty(),
        }
    }

    pub fn severity(&self) -> Severity {
        if self.failures.iter().any(|j| j.severity() == Severity::Failure) {
            Severity::Failure
        } else if !self.failures.is_empty() {
            Severity::Warning
        } else if self.is_empty() {
            Severity::Info
        } else {
            Severity::Success
        }
    }

    fn jobs(&self, kind: AlertKind) -> u64 {
        self.counts.get(&kind).map_or(0, |states| states.values().sum())
    }

    /// One line per kind with jobs: `Backup jobs: 40 COMPLETED, 2 FAILED`, then the archives.
    pub fn count_lines(&self) -> Vec<(String, String)> {
        let mut lines: Vec<(String, String)> = DIGEST_KINDS
            .iter()
            .filter_map(|kind| {
                let states = self.counts.get(kind)?;
                let text = states.iter().map(|(state, n)| format!("{n} {state}")).collect::<Vec<_>>().join(", ");
                Some((format!("{}s", kind.label()), text))
            })
            .collect();
        lines
            .push(("Archives written".to_string(), format!("{} ({})", self.archives, ByteSize::b(self.archive_bytes))));
        lines
    }

    /// The window, as the context line says it.
    fn window_line(&self) -> String {
        format!(
            "backup-archiver | {} to {}",
            self.since.format("%Y-%m-%d %H:%M UTC"),
            self.until.format("%Y-%m-%d %H:%M UTC")
        )
    }

    /// One failure, plain: `Backup job FAILED: EBS vol-1 in vault-a (job 1234): reason`.
    fn failure_line(job: &DigestJob) -> String {
        let mut line = format!("{} {}", job.kind.label(), job.state);
        match (job.resource_type.as_deref(), job.resource_arn.as_deref().map(resource_name_of)) {
            (Some(kind), Some(name)) => line.push_str(&format!(": {kind} {name}")),
            (None, Some(name)) => line.push_str(&format!(": {name}")),
            (Some(kind), None) => line.push_str(&format!(": {kind}")),
            (None, None) => {}
        }
        if let Some(vault) = &job.vault_name {
            line.push_str(&format!(" in {vault}"));
        }
        line.push_str(&format!(" (job {})", job.job_id));
        line
    }

    fn reason(job: &DigestJob) -> Option<String> {
        job.status_message.as_deref().filter(|m| !m.is_empty()).map(|m| truncate(m, MAX_CAUSE_CHARS))
    }

    fn unlisted(&self) -> usize {
        self.failures.len().saturating_sub(MAX_LISTED_FAILURES)
    }
}

impl Message for Digest {
    /// `AWS Backup daily digest 123456789012 / eu-west-1: 3 failed of 42 jobs`.
    fn title(&self) -> String {
        let total: u64 = DIGEST_KINDS.iter().map(|k| self.jobs(*k)).sum();
        let place = match &self.account {
            Some(account) => format!("{account} / {}", self.region),
            None => self.region.clone(),
        };
        let failed = self.failures.iter().filter(|j| j.severity() == Severity::Failure).count();
        let warned = self.failures.len() - failed;
        let mut verdict = match (total, failed) {
            (0, _) => "no jobs".to_string(),
            (_, 0) => format!("{total} {} OK", plural(total, "job", "jobs")),
            _ => format!("{failed} failed of {total} {}", plural(total, "job", "jobs")),
        };
        if warned > 0 {
            verdict.push_str(&format!(", {warned} {}", plural(warned as u64, "warning", "warnings")));
        }
        format!("AWS Backup daily digest {place}: {verdict}")
    }

    /// The incoming-webhook payload, in a colour bar as a job alert is.
    fn slack_payload(&self) -> Value {
        let severity = self.severity();
        let headline = format!("{} {}", severity.emoji(), escape_mrkdwn(&self.title()));
        let mut blocks = vec![json!({"type": "section", "text": {"type": "mrkdwn", "text": format!("*{headline}*")}})];
        let fields: Vec<Value> = self
            .count_lines()
            .into_iter()
            .map(|(label, value)| json!({"type": "mrkdwn", "text": format!("*{label}*\n{}", escape_mrkdwn(&value))}))
            .collect();
        blocks.push(json!({"type": "section", "fields": fields}));
        for job in self.failures.iter().take(MAX_LISTED_FAILURES) {
            let mut text = format!("{} *{}*", job.severity().emoji(), escape_mrkdwn(&Self::failure_line(job)));
            if let Some(reason) = Self::reason(job) {
                text.push_str(&format!("\n>{}", escape_mrkdwn(&reason)));
            }
            let mut block = json!({"type": "section", "text": {"type": "mrkdwn", "text": text}});
            if let Some(url) = job_console_url(job.kind, &job.job_id, &self.region) {
                block["accessory"] =
                    json!({"type": "button", "text": {"type": "plain_text", "text": "Open job"}, "url": url});
            }
            blocks.push(block);
        }
        if self.unlisted() > 0 {
            blocks.push(json!({"type": "section", "text": {"type": "mrkdwn", "text": format!("… and {} more", self.unlisted())}}));
        }
        blocks.push(
            json!({"type": "context", "elements": [{"type": "mrkdwn", "text": escape_mrkdwn(&self.window_line())}]}),
        );
        json!({"text": headline, "attachments": [{"color": severity.colour(), "blocks": blocks}]})
    }

    /// The SNS message, for e-mail: title, counts, then every failure with its reason and link.
    fn text_message(&self) -> String {
        let mut text = format!("{}\n\n", self.title());
        for (label, value) in self.count_lines() {
            text.push_str(&format!("{label}: {value}\n"));
        }
        if !self.failures.is_empty() {
            text.push_str("\nNeeds a look:\n");
        }
        for job in self.failures.iter().take(MAX_LISTED_FAILURES) {
            text.push_str(&format!("- {}\n", Self::failure_line(job)));
            if let Some(reason) = Self::reason(job) {
                text.push_str(&format!("  Reason: {reason}\n"));
            }
            if let Some(url) = job_console_url(job.kind, &job.job_id, &self.region) {
                text.push_str(&format!("  Open job: {url}\n"));
            }
        }
        if self.unlisted() > 0 {
            text.push_str(&format!("… and {} more\n", self.unlisted()));
        }
        text.push_str(&format!("\n{}\n", self.window_line()));
        text
    }

    /// The custom notification Amazon Q Developer in chat applications posts.
    fn chatbot_notification(&self) -> Value {
        let severity = self.severity();
        let mut description = String::new();
        for (label, value) in self.count_lines() {
            description.push_str(&format!("*{label}:* `{value}`\n"));
        }
        for job in self.failures.iter().take(MAX_LISTED_FAILURES) {
            description.push_str(&format!("• {}", Self::failure_line(job)));
            if let Some(reason) = Self::reason(job) {
                description.push_str(&format!(": {reason}"));
            }
            description.push('\n');
        }
        if self.unlisted() > 0 {
            description.push_str(&format!("… and {} more\n", self.unlisted()));
        }
        let next_steps: Vec<String> = self
            .failures
            .iter()
            .take(MAX_LISTED_FAILURES)
            .filter_map(|job| {
                job_console_url(job.kind, &job.job_id, &self.region).map(|u| format!("{}: {u}", job.job_id))
            })
            .collect();
        let related: Vec<&str> = self.failures.iter().filter_map(|j| j.resource_arn.as_deref()).collect();
        json!({
            "version": "1.0",
            "source": "custom",
            "content": {
                "textType": "client-markdown",
                "title": format!("{} {}", severity.emoji(), self.title()),
                "description": description.trim_end(),
                "nextSteps": next_steps,
                "keywords": ["digest", self.region.as_str()],
            },
            "metadata": {
                "threadId": format!("daily-digest-{}", self.until.format("%Y-%m-%d")),
                "summary": self.title(),
                "eventType": "daily-digest",
                "relatedResources": related,
                "additionalContext": {
                    "account": self.account,
                    "region": self.region,
                    "severity": severity,
                    "archives": self.archives,
                    "archive_bytes": self.archive_bytes,
                },
            },
        })
    }
}

impl fmt::Display for DigestSilence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DigestSilence::Never => "never",
            DigestSilence::WhenEmpty => "when-empty",
            DigestSilence::WhenNoFailures => "when-no-failures",
        })
    }
}

fn plural(n: u64, one: &'static str, many: &'static str) -> &'static str {
    if n == 1 {
        one
    } else {
        many
    }
}

#[cfg(test)]
#[path = "digest_tests.rs"]
mod tests;
