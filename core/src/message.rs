//! The notification an execution ends with: one message, built here once and rendered for Slack
//! (an incoming webhook, mrkdwn) and for SNS (a subject and plain text), plus the Slack
//! delivery's retry policy. The `notify` Lambda only sends what this module builds.
//!
//! A message names the snapshot (or DynamoDB backup), the outcome, the archive's location and size,
//! the duration, and on failure the error, its cause in a sentence (an RDS export's
//! `FailureCause`), and whether the cleanup worked (the temporary volume, database or table, the
//! export's cancellation).
//! <https://api.slack.com/messaging/webhooks>, <https://api.slack.com/reference/surfaces/formatting>

use std::time::Duration;

use bytesize::ByteSize;
use serde_json::{json, Value};

use crate::archive_job::{JobResult, Verification};
use crate::document::{FlowOutcome, RecoveryPointDeletion, StateError};
use crate::errors;
use crate::flows::dynamodb::{DeletedTables, ExportResult, ExportSource, TableSource};
use crate::flows::ebs::CreatedVolume;
use crate::flows::rds_dump::{DeletedDatabase, TemporaryDatabase};
use crate::flows::rds_export::{ExportedFiles, StartedExport};
use crate::flows::Flow;
use crate::request::{trigger_snapshot_id, ArchiveRequest};
use crate::resource::ResourceKind;

/// Causes longer than this are cut in messages: a Batch job description is several KiB of JSON,
/// and Slack truncates a section's text at 3,000 characters.
/// <https://api.slack.com/reference/block-kit/blocks#section>
pub const MAX_CAUSE_CHARS: usize = 600;
/// SNS subjects: at most 100 printable ASCII characters.
/// <https://docs.aws.amazon.com/sns/latest/api/API_Publish.html>
pub const MAX_SNS_SUBJECT_CHARS: usize = 100;

/// One notification, independent of where it is sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    pub outcome: FlowOutcome,
    /// One line: "Archived snap-… to s3://…" or "Archive of snap-… FAILED: JobFailed".
    pub title: String,
    /// Label and value pairs, values plain text (rendering escapes them).
    pub fields: Vec<(String, String)>,
    /// The execution, for the footer.
    pub execution_id: String,
}

/// Builds the notification of an execution that ended with `outcome`, having run `duration`.
pub fn notification(outcome: FlowOutcome, view: &FlowView, execution_id: &str, duration: Duration) -> Notification {
    let snapshot = view.snapshot_id().unwrap_or("an unknown snapshot").to_string();
    let dynamodb = view.request.as_ref().is_some_and(|r| r.kind == ResourceKind::DynamoDb);
    let location = view
        .exported
        .as_ref()
        .map(|e| e.location.clone())
        .or_else(|| view.export.as_ref().map(|e| format!("{}/", e.location)))
        .or_else(|| view.export_result.as_ref().map(|e| e.location.clone()))
        .or_else(|| view.verification.as_ref().map(|v| v.location.clone()))
        .or_else(|| view.request.as_ref().map(|r| r.destination.to_string()));
    // The EBS flow reads through a temporary volume; the export flows have an export instead.
    let ebs = view.request.as_ref().is_none_or(|r| r.kind == ResourceKind::Ebs);
    let (snapshot_label, source_label) = if dynamodb { ("Backup", "Table") } else { ("Snapshot", "Source") };
    let mut fields = vec![(snapshot_label.to_string(), snapshot.clone())];
    if let Some(request) = &view.request {
        fields.push((source_label.to_string(), request.source_resource_id.clone()));
        if let Some(job) = &request.backup_job_id {
            fields.push(("Backup job".to_string(), job.clone()));
        }
        if let (Some(engine), Some(method)) = (&request.engine, request.method) {
            fields.push(("Method".to_string(), format!("{method} ({engine})")));
        }
    }
    if let Some(export) = &view.export {
        fields.push(("Export task".to_string(), export.export_task_identifier.clone()));
    }
    let title = match outcome {
        FlowOutcome::Succeeded => format!("Archived {snapshot} to {}", location.as_deref().unwrap_or("S3")),
        FlowOutcome::Failed => format!(
            "Archive of {snapshot} FAILED: {}",
            view.error.as_ref().map_or(errors::STEP_FAILED, |e| e.error.as_str())
        ),
    };
    match outcome {
        FlowOutcome::Succeeded => {
            if let Some(location) = &location {
                fields.push(("Archive".to_string(), location.clone()));
            }
            let stored = view
                .verification
                .as_ref()
                .map(|v| (v.total_size, v.objects))
                .or_else(|| view.exported.as_ref().map(|e| (e.total_size, e.objects)));
            if let Some((total_size, count)) = stored {
                let objects = if count == 1 { "object" } else { "objects" };
                fields
                    .push(("Size".to_string(), format!("{} in {count} {objects}, verified", ByteSize::b(total_size))));
            }
            if let Some(export) = &view.export_result {
                let items = if export.item_count == 1 { "item" } else { "items" };
                fields.push((
                    "Size".to_string(),
                    format!(
                        "{} {items}, {} billed, verified",
                        export.item_count,
                        ByteSize::b(export.billed_size_bytes)
                    ),
                ));
            }
            if let Some(source) = &view.table_source {
                fields.push(("Exported from".to_string(), export_source(source)));
            }
            let recovery_point = match (&view.recovery_point_deletion, view.request.as_ref()) {
                (Some(d), _) => format!("deleted ({})", d.recovery_point_arn),
                (None, Some(r)) if r.recovery_point_arn.is_some() => "kept".to_string(),
                _ => "none (not an AWS Backup recovery point)".to_string(),
            };
            fields.push(("Recovery point".to_string(), recovery_point));
            if is_dump(view) {
                fields.push(("Temporary database".to_string(), database_cleanup(view)));
            }
        }
        FlowOutcome::Failed => {
            if let Some(error) = &view.error {
                fields.push(("Error".to_string(), error.error.clone()));
                fields.push(("Cause".to_string(), summarize_cause(error)));
            }
            if let Some(location) = &location {
                fields.push(("Destination".to_string(), location.clone()));
            }
            if dynamodb {
                fields.push(("Temporary table".to_string(), temporary_table_outcome(view)));
            } else if is_dump(view) {
                fields.push(("Temporary database".to_string(), database_cleanup(view)));
            } else if ebs {
                let volume = match (&view.cleanup_error, &view.temporary_volume) {
                    (Some(e), Some(v)) => format!("{} MAY BE LEFT OVER: {}", v.volume_id, summarize_cause(e)),
                    (Some(e), None) => format!("cleanup failed, a volume may be left over: {}", summarize_cause(e)),
                    (None, Some(v)) => format!("{} deleted", v.volume_id),
                    (None, None) => "none was created".to_string(),
                };
                fields.push(("Temporary volume".to_string(), volume));
            } else if let Some(e) = &view.cleanup_error {
                fields
                    .push(("Cleanup".to_string(), format!("FAILED, an export may still run: {}", summarize_cause(e))));
            }
            if view.request.as_ref().is_some_and(|r| r.recovery_point_arn.is_some()) {
                fields.push(("Recovery point".to_string(), "kept".to_string()));
            }
        }
    }
    fields.push(("Duration".to_string(), human_duration(duration)));
    Notification { outcome, title, fields, execution_id: execution_id.to_string() }
}

/// "Orders at 2025-03-04T02:00:00+00:00 (point-in-time recovery)" or "temporary table … restored
/// from the backup".
fn export_source(source: &TableSource) -> String {
    match (source.source, source.export_time) {
        (ExportSource::PointInTime, Some(time)) => {
            format!("{} at {} (point-in-time recovery)", source.table_name, time.to_rfc3339())
        }
        _ => format!("temporary table {} restored from the backup", source.table_name),
    }
}

/// What became of the DynamoDB flow's temporary table, as far as the document says.
fn temporary_table_outcome(view: &FlowView) -> String {
    let deleted = view.deleted_tables.as_ref().and_then(|d| d.deleted.first());
    let restored = view.table_source.as_ref().filter(|s| s.source == ExportSource::TemporaryTable);
    match (&view.cleanup_error, deleted, restored) {
        (Some(e), _, Some(t)) => format!("{} MAY BE LEFT OVER: {}", t.table_name, summarize_cause(e)),
        (Some(e), _, None) => format!("cleanup failed, a table may be left over: {}", summarize_cause(e)),
        (None, Some(name), _) => format!("{name} deleted"),
        (None, None, _) => "none was left".to_string(),
    }
}

/// True for the dump flow's executions, which restore a database instead of a volume.
fn is_dump(view: &FlowView) -> bool {
    view.temporary_database.is_some() || view.request.as_ref().is_some_and(|r| r.flow == Flow::RdsDump)
}

/// What became of the dump flow's temporary database: the cleanup's report first (it names
/// what it found even when RestoreDatabase failed before returning), then RestoreDatabase's.
fn database_cleanup(view: &FlowView) -> String {
    let restored = view.temporary_database.as_ref().map(|d| {
        let names = &d.names;
        names
            .cluster_identifier
            .as_ref()
            .map_or(names.instance_identifier.clone(), |c| format!("{c} ({})", names.instance_identifier))
    });
    match (&view.cleanup_error, &view.deleted_database, restored) {
        (Some(e), _, Some(db)) => format!("{db} MAY BE LEFT OVER: {}", summarize_cause(e)),
        (Some(e), _, None) => format!("cleanup failed, a database may be left over: {}", summarize_cause(e)),
        (None, Some(deleted), _) if !deleted.deleted.is_empty() => format!("{} deleted", deleted.deleted.join(", ")),
        (None, _, Some(db)) => format!("{db} deleted"),
        (None, _, None) => "none was restored".to_string(),
    }
}

/// A cause in one readable sentence. Batch job failures carry the job's description as JSON: its
/// `StatusReason` and exit code are what a reader needs. Other causes are cut to
/// [`MAX_CAUSE_CHARS`].
pub fn summarize_cause(error: &StateError) -> String {
    let Some(cause) = error.cause.as_deref() else { return "(no cause given)".to_string() };
    if let Ok(job) = serde_json::from_str::<Value>(cause) {
        if let Some(summary) = batch_job_summary(&job) {
            return summary;
        }
    }
    truncate(cause.trim(), MAX_CAUSE_CHARS)
}

/// "Batch job JOB_ID FAILED: exit code 137: Essential container in task exited", from a job
/// description in Step Functions' casing (`JobId`, `Container.ExitCode`) or Batch's (`jobId`).
fn batch_job_summary(job: &Value) -> Option<String> {
    let get = |pascal: &str, camel: &str| job.get(pascal).or_else(|| job.get(camel));
    let id = get("JobId", "jobId")?.as_str()?;
    let status = get("Status", "status").and_then(Value::as_str).unwrap_or("FAILED");
    let reason = get("StatusReason", "statusReason").and_then(Value::as_str);
    let exit_code = get("Container", "container")
        .and_then(|c| c.get("ExitCode").or_else(|| c.get("exitCode")))
        .and_then(Value::as_i64);
    let mut summary = format!("Batch job {id} {status}");
    if let Some(code) = exit_code {
        summary.push_str(&format!(": exit code {code}"));
    }
    if let Some(reason) = reason {
        summary.push_str(&format!(": {reason}"));
    }
    Some(summary)
}

pub(crate) fn truncate(text: &str, max_chars: usize) -> String {
    if text.chars().count() <= max_chars {
        return text.to_string();
    }
    let cut: String = text.chars().take(max_chars).collect();
    format!("{cut}…")
}

/// `1 h 02 min`, `3 min 05 s`, `42 s`.
pub fn human_duration(duration: Duration) -> String {
    let s = duration.as_secs();
    match (s / 3600, s % 3600 / 60, s % 60) {
        (0, 0, s) => format!("{s} s"),
        (0, m, s) => format!("{m} min {s:02} s"),
        (h, m, _) => format!("{h} h {m:02} min"),
    }
}

/// Escapes the three characters Slack's mrkdwn reserves.
/// <https://api.slack.com/reference/surfaces/formatting#escaping>
pub fn escape_mrkdwn(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

impl Notification {
    /// The incoming-webhook payload: `text` (the fallback shown in notifications) and blocks: a
    /// header, the fields as mrkdwn, and a context line naming the execution.
    pub fn slack_payload(&self) -> Value {
        let emoji = match self.outcome {
            FlowOutcome::Succeeded => ":white_check_mark:",
            FlowOutcome::Failed => ":x:",
        };
        let fields: Vec<Value> = self
            .fields
            .iter()
            .map(|(label, value)| json!({"type": "mrkdwn", "text": format!("*{label}:*\n{}", code_span(value))}))
            .collect();
        // A section holds at most 10 fields.
        let sections: Vec<Value> = fields.chunks(10).map(|chunk| json!({"type": "section", "fields": chunk})).collect();
        let mut blocks = vec![json!({
            "type": "section",
            "text": {"type": "mrkdwn", "text": format!("{emoji} *{}*", escape_mrkdwn(&self.title))}
        })];
        blocks.extend(sections);
        blocks.push(json!({
            "type": "context",
            "elements": [{"type": "mrkdwn", "text": format!("backup-archiver | execution `{}`", escape_mrkdwn(&self.execution_id))}]
        }));
        json!({"text": format!("{emoji} {}", escape_mrkdwn(&self.title)), "blocks": blocks})
    }

    /// The SNS subject: the title, cut to SNS's 100 ASCII characters.
    pub fn sns_subject(&self) -> String {
        sns_subject(&self.title)
    }

    /// The SNS message: the title and one `Label: value` line per field.
    pub fn sns_message(&self) -> String {
        let mut text = format!("{}\n\n", self.title);
        for (label, value) in &self.fields {
            text.push_str(&format!("{label}: {value}\n"));
        }
        text.push_str(&format!("\nExecution: {}\n", self.execution_id));
        text
    }
}

/// An SNS subject made of `title`: printable ASCII (SNS refuses the rest), at most
/// [`MAX_SNS_SUBJECT_CHARS`].
pub(crate) fn sns_subject(title: &str) -> String {
    let ascii: String = title.chars().map(|c| if c.is_ascii_graphic() || c == ' ' { c } else { '?' }).collect();
    ascii.chars().take(MAX_SNS_SUBJECT_CHARS).collect()
}

/// Ids, URLs and ARNs read best as code; prose (a cause, a size) does not.
pub(crate) fn code_span(value: &str) -> String {
    let looks_like_an_id = !value.contains(' ') && !value.is_empty() && !value.contains('`');
    if looks_like_an_id {
        format!("`{}`", escape_mrkdwn(value))
    } else {
        escape_mrkdwn(value)
    }
}

/// Slack delivery attempts in all, the first included: a 429 or 5xx is retried, bounded, inside
/// the one `notify` invocation (the ASL does not retry `notify`, so a message is sent at most
/// once per execution).
pub const SLACK_MAX_ATTEMPTS: u32 = 4;
/// The longest `Retry-After` honoured; a longer one gives up. Slack's rate limit for incoming
/// webhooks is about one message per second per channel, so its waits are short; the `notify`
/// Lambda's timeout must cover the attempts' waits.
/// <https://api.slack.com/apis/rate-limits>
pub const SLACK_MAX_RETRY_AFTER: Duration = Duration::from_secs(30);

/// How long to wait before attempt `attempt + 1` after attempt `attempt` (1-based) got
/// `status`, or `None` to stop: after success, on a client error (a bad URL or payload will not
/// get better), or after [`SLACK_MAX_ATTEMPTS`].
pub fn slack_retry_delay(attempt: u32, status: Option<u16>, retry_after: Option<&str>) -> Option<Duration> {
    if attempt >= SLACK_MAX_ATTEMPTS {
        return None;
    }
    match status {
        Some(429) => {
            let wait = retry_after.and_then(|v| v.trim().parse::<u64>().ok()).map(Duration::from_secs);
            match wait {
                Some(wait) if wait > SLACK_MAX_RETRY_AFTER => None,
                Some(wait) => Some(wait),
                None => Some(backoff(attempt)),
            }
        }
        // No answer (a timeout, a reset connection), or Slack's own trouble.
        None => Some(backoff(attempt)),
        Some(status) if status >= 500 => Some(backoff(attempt)),
        Some(_) => None,
    }
}

/// 1 s, 2 s, 4 s, …
fn backoff(attempt: u32) -> Duration {
    Duration::from_secs(1 << attempt.saturating_sub(1).min(4))
}

/// What the `notify`, `delete-volume` and `delete-table` Lambdas can read from any document the
/// cleanup path may carry, in any flow: a full state, a plan, or the raw trigger event of a Plan
/// that failed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FlowView {
    pub request: Option<ArchiveRequest>,
    /// The snapshot the raw event names, when there is no plan.
    pub event_snapshot_id: Option<String>,
    pub temporary_volume: Option<CreatedVolume>,
    /// The dump flow's temporary database, once RestoreDatabase returned.
    pub temporary_database: Option<TemporaryDatabase>,
    /// What the dump flow's DeleteDatabase or Cleanup deleted.
    pub deleted_database: Option<DeletedDatabase>,
    pub job: Option<JobResult>,
    pub verification: Option<Verification>,
    /// The RDS export flow's export, once started, and its files, once checked.
    pub export: Option<StartedExport>,
    pub exported: Option<ExportedFiles>,
    pub recovery_point_deletion: Option<RecoveryPointDeletion>,
    pub error: Option<StateError>,
    pub cleanup_error: Option<StateError>,
    /// DynamoDB flow: where the export read from, what it wrote, which temporary table went.
    pub table_source: Option<TableSource>,
    pub export_result: Option<ExportResult>,
    pub deleted_tables: Option<DeletedTables>,
}

impl FlowView {
    pub fn from_value(state: &Value) -> FlowView {
        fn field<T: serde::de::DeserializeOwned>(state: &Value, name: &str) -> Option<T> {
            state.get(name).and_then(|v| serde_json::from_value(v.clone()).ok())
        }
        let request = serde_json::from_value::<ArchiveRequest>(state.clone()).ok();
        let event_snapshot_id = if request.is_none() { trigger_snapshot_id(state) } else { None };
        FlowView {
            request,
            event_snapshot_id,
            temporary_volume: field(state, "temporary_volume"),
            temporary_database: field(state, "temporary_database"),
            deleted_database: field(state, "deleted_database"),
            job: field(state, "job"),
            verification: field(state, "verification"),
            export: field(state, "export"),
            exported: field(state, "exported"),
            recovery_point_deletion: field(state, "recovery_point_deletion"),
            error: field(state, "error"),
            cleanup_error: field(state, "cleanup_error"),
            table_source: field(state, "table_source"),
            export_result: field(state, "export_result"),
            deleted_tables: field(state, "deleted_tables"),
        }
    }

    /// The snapshot, from the plan or else from the event.
    pub fn snapshot_id(&self) -> Option<&str> {
        self.request.as_ref().map(|r| r.snapshot_id.as_str()).or(self.event_snapshot_id.as_deref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive_job::ArchiveJob;
    use crate::request::{plan_archive, PlanConfig, PlanOutcome, ReadPath, SnapshotFacts};
    use crate::s3_location::S3Location;
    use std::collections::BTreeMap;

    fn planned_view() -> FlowView {
        let event = crate::event::TriggerEvent::from_json(include_bytes!(
            "../tests/fixtures/eventbridge-backup-job-completed-ebs.json"
        ))
        .unwrap();
        let config = PlanConfig {
            destination: "s3://example-archive/backups".parse().unwrap(),
            allowed_vaults: vec![],
            availability_zones: vec!["eu-west-1a".into()],
            db_methods: BTreeMap::new(),
            delete_recovery_point: false,
            volume_initialization_rate_mibps: None,
            job_queues: BTreeMap::new(),
            home: None,
            read_path: ReadPath::Volume,
        };
        let now = "2025-03-04T03:00:00Z".parse().unwrap();
        let Ok(PlanOutcome::Planned(request)) = plan_archive(&event, &SnapshotFacts::default(), &config, now) else {
            panic!("the EBS fixture plans")
        };
        FlowView { request: Some(*request), ..FlowView::default() }
    }

    fn field<'a>(n: &'a Notification, label: &str) -> &'a str {
        &n.fields.iter().find(|(l, _)| l == label).unwrap_or_else(|| panic!("no {label} in {:?}", n.fields)).1
    }

    #[test]
    fn success_names_snapshot_location_size_and_duration() {
        let mut view = planned_view();
        view.verification = Some(Verification {
            location: "s3://example-archive/backups/ebs/vol-0fedcba9876543210/2025/03/04/snap-0a1b2c3d4e5f67890".into(),
            manifest_key: "k".into(),
            objects: 2,
            total_size: 3 * 1024 * 1024,
            checksums_verified: 2,
        });
        let n = notification(FlowOutcome::Succeeded, &view, "arn:exec", Duration::from_secs(125));
        assert!(
            n.title.starts_with("Archived snap-0a1b2c3d4e5f67890 to s3://example-archive/backups/ebs/"),
            "{}",
            n.title
        );
        assert_eq!(field(&n, "Size"), "3.0 MiB in 2 objects, verified");
        assert_eq!(field(&n, "Duration"), "2 min 05 s");
        assert_eq!(field(&n, "Recovery point"), "kept");
        let slack = n.slack_payload();
        assert!(slack["text"].as_str().unwrap().contains("Archived snap-0a1b2c3d4e5f67890"));
        let text = slack.to_string();
        assert!(text.contains("*Archive:*\\n`s3://example-archive/backups/ebs/"), "{text}");
        assert!(text.contains("execution `arn:exec`"), "{text}");
    }

    #[test]
    fn failure_names_the_error_the_cause_and_the_volume() {
        let mut view = planned_view();
        view.error = Some(StateError {
            error: "JobFailed".into(),
            cause: Some(r#"{"JobId":"j-1","Status":"FAILED","StatusReason":"Essential container in task exited","Container":{"ExitCode":137}}"#.into()),
        });
        view.temporary_volume = Some(CreatedVolume {
            volume_id: "vol-9".into(),
            availability_zone: "eu-west-1a".into(),
            job: ArchiveJob { queue: "q".into(), name: "n".into(), parameters: BTreeMap::new() },
        });
        let n = notification(FlowOutcome::Failed, &view, "arn:exec", Duration::from_secs(7));
        assert_eq!(n.title, "Archive of snap-0a1b2c3d4e5f67890 FAILED: JobFailed");
        assert_eq!(field(&n, "Cause"), "Batch job j-1 FAILED: exit code 137: Essential container in task exited");
        assert_eq!(field(&n, "Temporary volume"), "vol-9 deleted");
        assert_eq!(field(&n, "Recovery point"), "kept");
        view.cleanup_error =
            Some(StateError { error: "VolumeStillAttached".into(), cause: Some("still attached".into()) });
        let n = notification(FlowOutcome::Failed, &view, "arn:exec", Duration::from_secs(7));
        assert_eq!(field(&n, "Temporary volume"), "vol-9 MAY BE LEFT OVER: still attached");
    }

    fn export_view() -> FlowView {
        let event = crate::event::TriggerEvent::from_json(include_bytes!(
            "../tests/fixtures/eventbridge-backup-job-completed-rds.json"
        ))
        .unwrap();
        let config: PlanConfig = serde_json::from_value(
            serde_json::json!({"destination": {"bucket": "example-archive", "prefix": "backups"}}),
        )
        .unwrap();
        let facts = SnapshotFacts { engine: Some("postgres".into()), ..SnapshotFacts::default() };
        let Ok(PlanOutcome::Planned(request)) =
            plan_archive(&event, &facts, &config, "2025-03-04T04:00:00Z".parse().unwrap())
        else {
            panic!("the RDS fixture plans")
        };
        let export = StartedExport {
            export_task_identifier: request.export_task_identifier.clone().unwrap(),
            location: S3Location { bucket: "example-archive".into(), prefix: "backups/rds/x/awsbackup-job-1".into() },
            started: true,
        };
        FlowView { request: Some(*request), export: Some(export), ..FlowView::default() }
    }

    #[test]
    fn export_success_names_location_size_and_task() {
        let mut view = export_view();
        view.exported = Some(ExportedFiles {
            location: "s3://example-archive/backups/rds/x/awsbackup-job-1/".into(),
            export_info_key: "k".into(),
            objects: 4,
            total_size: 5 * 1024 * 1024,
        });
        let n = notification(FlowOutcome::Succeeded, &view, "arn:exec", Duration::from_secs(3 * 3600));
        assert_eq!(n.title, "Archived awsbackup:job-3e4f5a6b-7c8d-9e0f-1a2b-3c4d5e6f7a8b to s3://example-archive/backups/rds/x/awsbackup-job-1/");
        assert_eq!(field(&n, "Size"), "5.0 MiB in 4 objects, verified");
        assert_eq!(field(&n, "Method"), "export (postgres)");
        assert!(field(&n, "Export task").starts_with("awsbackup-job-3e4f5a6b"), "{:?}", n.fields);
        assert_eq!(field(&n, "Recovery point"), "kept");
        assert_eq!(field(&n, "Duration"), "3 h 00 min");
    }

    #[test]
    fn export_failure_carries_the_failure_cause_and_no_volume() {
        let mut view = export_view();
        view.error = Some(StateError {
            error: "ExportFailed".into(),
            cause: Some("export awsbackup-job-1 ended FAILED: The IAM role cannot write the bucket.".into()),
        });
        let n = notification(FlowOutcome::Failed, &view, "arn:exec", Duration::from_secs(60));
        assert!(n.title.ends_with("FAILED: ExportFailed"), "{}", n.title);
        assert!(field(&n, "Cause").ends_with("The IAM role cannot write the bucket."));
        assert_eq!(field(&n, "Destination"), "s3://example-archive/backups/rds/x/awsbackup-job-1/");
        assert!(n.fields.iter().all(|(label, _)| label != "Temporary volume"), "{:?}", n.fields);
        assert_eq!(field(&n, "Recovery point"), "kept");
        view.cleanup_error =
            Some(StateError { error: "Rds.InvalidExportTaskStateFault".into(), cause: Some("ended".into()) });
        let n = notification(FlowOutcome::Failed, &view, "arn:exec", Duration::from_secs(60));
        assert_eq!(field(&n, "Cleanup"), "FAILED, an export may still run: ended");
    }

    fn dump_view() -> FlowView {
        let event =
            crate::event::TriggerEvent::from_json(include_bytes!("../tests/fixtures/manual-aurora-snapshot-dump.json"))
                .unwrap();
        let config: PlanConfig = serde_json::from_value(serde_json::json!({
            "destination": {"bucket": "example-archive", "prefix": "backups"},
            "availability_zones": ["eu-west-1a"],
            "job_queues": {"eu-west-1a": "q"}
        }))
        .unwrap();
        let facts = SnapshotFacts { source_resource_id: Some("billing".into()), ..SnapshotFacts::default() };
        let now = "2025-03-04T03:00:00Z".parse().unwrap();
        let Ok(PlanOutcome::Planned(request)) = plan_archive(&event, &facts, &config, now) else { panic!("plans") };
        FlowView { request: Some(*request), ..FlowView::default() }
    }

    #[test]
    fn dump_messages_name_the_temporary_database() {
        let mut view = dump_view();
        let n = notification(FlowOutcome::Failed, &view, "e", Duration::ZERO);
        assert_eq!(field(&n, "Temporary database"), "none was restored");
        assert!(n.fields.iter().all(|(l, _)| l != "Temporary volume"), "a dump has no volume");
        view.deleted_database = Some(DeletedDatabase {
            deleted: vec!["ba-x-1".into(), "ba-x".into()],
            password_parameter_deleted: true,
            ..Default::default()
        });
        view.error = Some(StateError { error: "DbNotReady".into(), cause: Some("DB ba-x-1 is creating".into()) });
        let n = notification(FlowOutcome::Failed, &view, "e", Duration::from_secs(61));
        assert_eq!(n.title, "Archive of billing-aurora-pre-migration FAILED: DbNotReady");
        assert_eq!(field(&n, "Temporary database"), "ba-x-1, ba-x deleted");
        assert_eq!(field(&n, "Cause"), "DB ba-x-1 is creating");
        assert_eq!(field(&n, "Duration"), "1 min 01 s");
        view.error = None;
        view.verification = Some(Verification {
            location: "s3://b/p".into(),
            manifest_key: "p/manifest.json".into(),
            objects: 3,
            total_size: 2048,
            checksums_verified: 2,
        });
        let n = notification(FlowOutcome::Succeeded, &view, "e", Duration::from_secs(5));
        assert_eq!(n.title, "Archived billing-aurora-pre-migration to s3://b/p");
        assert_eq!(field(&n, "Size"), "2.0 KiB in 3 objects, verified");
        assert_eq!(field(&n, "Temporary database"), "ba-x-1, ba-x deleted");
    }

    #[test]
    fn failure_before_planning_names_the_events_snapshot_or_says_unknown() {
        let view = FlowView {
            event_snapshot_id: Some("snap-1".into()),
            error: Some(StateError { error: "SnapshotNotFound".into(), cause: None }),
            ..FlowView::default()
        };
        let n = notification(FlowOutcome::Failed, &view, "e", Duration::ZERO);
        assert_eq!(n.title, "Archive of snap-1 FAILED: SnapshotNotFound");
        assert_eq!(field(&n, "Cause"), "(no cause given)");
        assert_eq!(field(&n, "Temporary volume"), "none was created");
        let n = notification(FlowOutcome::Failed, &FlowView::default(), "e", Duration::ZERO);
        assert!(n.title.contains("an unknown snapshot"), "{}", n.title);
    }

    #[test]
    fn long_causes_are_cut_and_markup_is_escaped() {
        let long = StateError { error: "X".into(), cause: Some("<b>".repeat(1000)) };
        let summary = summarize_cause(&long);
        assert_eq!(summary.chars().count(), MAX_CAUSE_CHARS + 1);
        assert_eq!(escape_mrkdwn("a<b>&c"), "a&lt;b&gt;&amp;c");
        let view = FlowView { error: Some(long), ..FlowView::default() };
        let payload = notification(FlowOutcome::Failed, &view, "e", Duration::ZERO).slack_payload().to_string();
        assert!(!payload.contains("<b>"), "markup must not reach Slack unescaped");
    }

    fn dynamodb_view() -> FlowView {
        let event = crate::event::TriggerEvent::from_value(&serde_json::json!({
            "snapshot": "arn:aws:dynamodb:us-east-1:111122223333:table/Orders/backup/01568804569000-d3306d76"
        }))
        .unwrap();
        let config: PlanConfig =
            serde_json::from_value(serde_json::json!({"destination": {"bucket": "archive", "prefix": ""}})).unwrap();
        let now = "2025-03-04T03:00:00Z".parse().unwrap();
        let Ok(PlanOutcome::Planned(request)) = plan_archive(&event, &SnapshotFacts::default(), &config, now) else {
            panic!("a DynamoDB backup plans")
        };
        FlowView { request: Some(*request), ..FlowView::default() }
    }

    fn table_source(source: ExportSource) -> TableSource {
        TableSource {
            source,
            table_name: if source == ExportSource::PointInTime {
                "Orders".into()
            } else {
                "backup-archiver-k-1".into()
            },
            table_arn: "arn:aws:dynamodb:us-east-1:111122223333:table/Orders".into(),
            export_time: (source == ExportSource::PointInTime).then(|| "2025-03-04T02:00:00Z".parse().unwrap()),
            backup_arn: "b".into(),
            backup_created_at: "2025-03-04T02:00:00Z".parse().unwrap(),
            reason: "r".into(),
            restore_job_id: None,
        }
    }

    #[test]
    fn dynamodb_success_names_table_backup_location_items_and_size() {
        let mut view = dynamodb_view();
        view.table_source = Some(table_source(ExportSource::PointInTime));
        view.export_result = Some(ExportResult {
            export_arn: "arn:aws:dynamodb:us-east-1:111122223333:table/Orders/export/0169-2d87".into(),
            location: "s3://archive/dynamodb/Orders/2025/03/04/01568804569000-d3306d76".into(),
            manifest_summary_key: "k".into(),
            item_count: 3,
            billed_size_bytes: 2048,
            export_time: None,
        });
        let n = notification(FlowOutcome::Succeeded, &view, "arn:exec", Duration::from_secs(61));
        assert_eq!(
            n.title,
            "Archived 01568804569000-d3306d76 to s3://archive/dynamodb/Orders/2025/03/04/01568804569000-d3306d76"
        );
        assert_eq!(field(&n, "Backup"), "01568804569000-d3306d76");
        assert_eq!(field(&n, "Table"), "Orders");
        assert_eq!(field(&n, "Size"), "3 items, 2.0 KiB billed, verified");
        assert_eq!(field(&n, "Exported from"), "Orders at 2025-03-04T02:00:00+00:00 (point-in-time recovery)");
        assert_eq!(field(&n, "Duration"), "1 min 01 s");
    }

    #[test]
    fn dynamodb_failure_names_the_error_and_the_temporary_table() {
        let mut view = dynamodb_view();
        view.error =
            Some(StateError { error: "ExportFailed".into(), cause: Some("export x FAILED: UNKNOWN: boom".into()) });
        let n = notification(FlowOutcome::Failed, &view, "e", Duration::ZERO);
        assert_eq!(n.title, "Archive of 01568804569000-d3306d76 FAILED: ExportFailed");
        assert_eq!(field(&n, "Temporary table"), "none was left");
        view.table_source = Some(table_source(ExportSource::TemporaryTable));
        view.deleted_tables = Some(DeletedTables { deleted: vec!["backup-archiver-k-1".into()], already_gone: vec![] });
        let n = notification(FlowOutcome::Failed, &view, "e", Duration::ZERO);
        assert_eq!(field(&n, "Temporary table"), "backup-archiver-k-1 deleted");
        view.cleanup_error = Some(StateError { error: "TableNotReady".into(), cause: Some("still creating".into()) });
        let n = notification(FlowOutcome::Failed, &view, "e", Duration::ZERO);
        assert_eq!(field(&n, "Temporary table"), "backup-archiver-k-1 MAY BE LEFT OVER: still creating");
        assert!(!n.fields.iter().any(|(label, _)| label == "Temporary volume"));
    }

    #[test]
    fn sns_subject_is_short_ascii() {
        let view = FlowView { event_snapshot_id: Some(format!("snap-{}", "é".repeat(200))), ..FlowView::default() };
        let subject = notification(FlowOutcome::Failed, &view, "e", Duration::ZERO).sns_subject();
        assert!(subject.len() <= MAX_SNS_SUBJECT_CHARS && subject.is_ascii(), "{subject}");
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(human_duration(Duration::from_secs(42)), "42 s");
        assert_eq!(human_duration(Duration::from_secs(3600 + 120 + 5)), "1 h 02 min");
    }

    #[test]
    fn slack_retries_honour_retry_after_and_stop_on_client_errors() {
        assert_eq!(slack_retry_delay(1, Some(429), Some("3")), Some(Duration::from_secs(3)));
        assert_eq!(slack_retry_delay(1, Some(429), Some("3600")), None, "too long to wait inside a Lambda");
        assert_eq!(slack_retry_delay(1, Some(429), None), Some(Duration::from_secs(1)));
        assert_eq!(slack_retry_delay(2, Some(503), None), Some(Duration::from_secs(2)));
        assert_eq!(slack_retry_delay(1, None, None), Some(Duration::from_secs(1)));
        assert_eq!(slack_retry_delay(1, Some(404), None), None);
        assert_eq!(slack_retry_delay(1, Some(400), None), None);
        assert_eq!(slack_retry_delay(SLACK_MAX_ATTEMPTS, Some(429), Some("1")), None, "bounded");
    }

    #[test]
    fn flow_view_reads_a_raw_event_with_an_error() {
        let mut event: Value =
            serde_json::from_str(include_str!("../tests/fixtures/eventbridge-backup-job-completed-ebs.json")).unwrap();
        event["error"] = serde_json::json!({"Error": "SnapshotNotFound", "Cause": "gone"});
        let view = FlowView::from_value(&event);
        assert!(view.request.is_none());
        assert_eq!(view.snapshot_id(), Some("snap-0a1b2c3d4e5f67890"));
        assert_eq!(view.error.unwrap().error, "SnapshotNotFound");
    }

    #[test]
    fn flow_view_of_garbage_is_empty_not_an_error() {
        let view = FlowView::from_value(&serde_json::json!({"error": {"Error": "InvalidEvent"}, "x": 1}));
        assert_eq!(view.snapshot_id(), None);
        assert_eq!(view.error.unwrap().cause, None);
        assert_eq!(FlowView::from_value(&serde_json::json!("text")), FlowView::default());
    }
}
