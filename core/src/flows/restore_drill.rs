//! The restore drill (`state-machines/restore-drill.asl.json`): on a schedule, a sample of the
//! bucket's archives is read back in full in Batch jobs and checked against their manifests, and
//! one report is kept and sent. This module owns every decision of the drill: which archives
//! ([`pick_archives`], seeded so a test can repeat it), each job's parameters ([`plan_drill`]),
//! the verdict of each archive and of the drill ([`drill_report`]), and the message.
//!
//! The execution's document, state by state:
//!
//! ```text
//! PickDrill    -> drill      (DrillPlan: the archives picked, each with its Batch job)
//! DrillArchive -> outcomes   (Map: one DrillOutcome per archive, the job's result or its error)
//! DrillReport  -> report     (DrillReportOutput: the report's key, the verdict, the notification)
//! any Catch    -> error      (StateError) -> ReportFailure (drill-report sends the error) -> Fail
//! ```
//!
//! The worker (`batch-worker drill`) writes a [`DrillResult`] per archive to the plan's
//! `result_key`; `drill-report` reads them, writes the [`DrillReport`] to
//! `<prefix>/.drills/<drill id>.json` and sends it.

use std::collections::BTreeMap;

use bytesize::ByteSize;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::alert::Severity;
use crate::archive_job::{ArchiveJob, JobResult};
use crate::document::{FlowError, NotificationReport, StateError};
use crate::manifest::archive_prefix_of;
use crate::message::{escape_mrkdwn, truncate, MAX_CAUSE_CHARS};
use crate::s3_location::S3Location;

/// The folder under the archive prefix that holds every drill's report and the workers' results.
/// Its leading dot keeps it apart from archive keys (`<prefix>/<resource type>/…`).
pub const DRILLS_DIR: &str = ".drills";
/// Archives per drill when the stack does not say (`DrillArchives`): the issue's example.
pub const DEFAULT_DRILL_ARCHIVES: u32 = 3;
/// The most archives one drill reads. Arbitrary: each is a Batch job reading the whole archive, so
/// a drill larger than this is a migration, not a weekly check; it also bounds the Map's output,
/// which must stay under Step Functions' 256 KiB payload limit.
pub const MAX_DRILL_ARCHIVES: u32 = 50;
/// The names of each drill job's parameters; the job definition's command uses them as `Ref::…`.
pub const DRILL_JOB_PARAMETERS: &[&str] = &["archive", "result", "restore_to_snapshot", "drill_id", "deployment"];

/// An archive the drill may pick: a prefix holding a manifest, as the bucket lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrillCandidate {
    /// `s3://bucket/prefix` of the archive.
    pub location: String,
    /// When its manifest was written (LastModified): the manifest is written last, so this is when
    /// the archive was complete.
    pub archived_at: DateTime<Utc>,
}

/// Storage classes S3 serves at once, without RestoreObject.
/// <https://docs.aws.amazon.com/AmazonS3/latest/userguide/storage-class-intro.html>
pub const READABLE_CLASSES: &[&str] = &[
    "STANDARD",
    "STANDARD_IA",
    "ONEZONE_IA",
    "INTELLIGENT_TIERING",
    "GLACIER_IR",
    "REDUCED_REDUNDANCY",
    "EXPRESS_ONEZONE",
];

/// One object of the bucket's listing (ListObjectsV2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedObject {
    pub key: String,
    pub last_modified: DateTime<Utc>,
    /// As S3 lists it; absent means STANDARD.
    pub storage_class: Option<String>,
}

/// The archives of a listing of `bucket` (the prefixes holding a manifest), split into those whose
/// every object is readable at once (the candidates) and the number of the others (cold).
pub fn drill_candidates(bucket: &str, objects: &[ListedObject]) -> (Vec<DrillCandidate>, u64) {
    let mut archives: BTreeMap<&str, (DateTime<Utc>, bool)> = BTreeMap::new();
    for object in objects {
        if let Some(prefix) = archive_prefix_of(&object.key) {
            archives.insert(prefix, (object.last_modified, true));
        }
    }
    for object in objects {
        let readable = object.storage_class.as_deref().is_none_or(|class| READABLE_CLASSES.contains(&class));
        if readable {
            continue;
        }
        // The object's archive: the nearest enclosing prefix that holds a manifest.
        let mut dir = object.key.as_str();
        while let Some((parent, _)) = dir.rsplit_once('/') {
            if let Some((_, all_readable)) = archives.get_mut(parent) {
                *all_readable = false;
                break;
            }
            dir = parent;
        }
    }
    let cold = archives.values().filter(|(_, readable)| !readable).count() as u64;
    let candidates = archives
        .into_iter()
        .filter(|(_, (_, readable))| *readable)
        .map(|(prefix, (archived_at, _))| DrillCandidate {
            location: S3Location { bucket: bucket.to_string(), prefix: prefix.to_string() }.to_string(),
            archived_at,
        })
        .collect();
    (candidates, cold)
}

/// The execution's input: EventBridge's Scheduled Event (none of these fields: the stack's
/// settings apply) or a manual StartExecution input that overrides them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct DrillTrigger {
    /// How many archives (the newest among them).
    pub archives: Option<u32>,
    /// The random choice's seed; default: a fresh one, recorded in the report so a drill can be
    /// repeated.
    pub seed: Option<u64>,
    pub restore_to_snapshot: Option<bool>,
}

/// Input of `pick-drill`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PickDrillInput {
    /// The execution's input (`$`).
    pub trigger: DrillTrigger,
    /// `$$.Execution.Name`: names the drill's report, so two drills never share one.
    pub execution_name: String,
    /// `$$.Execution.StartTime`.
    pub started_at: DateTime<Utc>,
}

/// The stack's drill settings, as `pick-drill` reads them from its environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DrillConfig {
    pub location: S3Location,
    pub archives: u32,
    pub restore_to_snapshot: bool,
    /// The Batch queue the drill jobs run in (no AZ matters: they read S3 only).
    pub job_queue: String,
    /// The stack's name: the drill's snapshots are tagged with it, and only those may be deleted.
    pub deployment: String,
}

/// One archive of the drill and the Batch job that reads it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrillTarget {
    pub location: String,
    pub archived_at: DateTime<Utc>,
    /// Whether this is the newest archive of the bucket (always drilled).
    pub newest: bool,
    /// Where the worker writes its [`DrillResult`].
    pub result_key: String,
    pub job: ArchiveJob,
}

/// Output of `pick-drill`, at `$.drill`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrillPlan {
    /// `2026-12-06T03-00-00Z-<execution name>`: sorts by time, unique per execution.
    pub drill_id: String,
    pub bucket: String,
    /// Where the report goes: `<prefix>/.drills/<drill id>.json`.
    pub report_key: String,
    pub started_at: DateTime<Utc>,
    pub seed: u64,
    /// Archives in the bucket when the drill began whose objects are all readable at once.
    pub candidates: u64,
    /// Archives left out because some of their objects are in a class that needs a thaw first
    /// (Glacier Flexible Retrieval, Deep Archive): reading them would fail, not test them.
    pub cold: u64,
    pub restore_to_snapshot: bool,
    pub targets: Vec<DrillTarget>,
}

/// A tiny seeded generator (SplitMix64, Steele et al. 2014): core has no randomness of its own, and
/// a drill's choice must be repeatable from the seed the report records. Not for cryptography.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..bound` (bound > 0), by rejection so no value is favoured.
    fn below(&mut self, bound: u64) -> u64 {
        let zone = u64::MAX - u64::MAX % bound;
        loop {
            let value = self.next();
            if value < zone {
                return value % bound;
            }
        }
    }
}

/// `count` archives of `candidates`: the newest (latest `archived_at`, then the smallest location),
/// and `count - 1` others drawn uniformly without replacement with `seed`. Newest first, then in
/// drawing order. Fewer candidates than `count`: all of them.
pub fn pick_archives(candidates: &[DrillCandidate], count: u32, seed: u64) -> Vec<(DrillCandidate, bool)> {
    if count == 0 {
        return Vec::new();
    }
    let Some(newest) = candidates
        .iter()
        .enumerate()
        .max_by(|(_, a), (_, b)| a.archived_at.cmp(&b.archived_at).then_with(|| b.location.cmp(&a.location)))
        .map(|(i, _)| i)
    else {
        return Vec::new();
    };
    let mut picked = vec![(candidates[newest].clone(), true)];
    let mut rest: Vec<usize> = (0..candidates.len()).filter(|i| *i != newest).collect();
    let mut rng = SplitMix64(seed);
    // A partial Fisher-Yates shuffle: the first `count - 1` places are the draw.
    let draws = (count as usize - 1).min(rest.len());
    for place in 0..draws {
        let other = place + rng.below((rest.len() - place) as u64) as usize;
        rest.swap(place, other);
        picked.push((candidates[rest[place]].clone(), false));
    }
    picked
}

/// The drill of the execution `input` over the bucket's readable `candidates` (and `cold` others),
/// under `config`; `fresh_seed` is used when the input names no seed.
pub fn plan_drill(
    input: &PickDrillInput,
    config: &DrillConfig,
    candidates: &[DrillCandidate],
    cold: u64,
    fresh_seed: u64,
) -> Result<DrillPlan, FlowError> {
    let archives = input.trigger.archives.unwrap_or(config.archives);
    if !(1..=MAX_DRILL_ARCHIVES).contains(&archives) {
        return Err(FlowError::InvalidInput {
            field: "archives",
            reason: format!("is {archives}: a drill reads 1 to {MAX_DRILL_ARCHIVES} archives"),
        });
    }
    if config.job_queue.is_empty() || config.deployment.is_empty() {
        return Err(FlowError::InvalidConfig {
            field: if config.job_queue.is_empty() { "job_queue" } else { "deployment" },
            reason: "is empty".into(),
        });
    }
    let seed = input.trigger.seed.unwrap_or(fresh_seed);
    let restore_to_snapshot = input.trigger.restore_to_snapshot.unwrap_or(config.restore_to_snapshot);
    let drill_id = format!("{}-{}", input.started_at.format("%Y-%m-%dT%H-%M-%SZ"), input.execution_name);
    let drills = config.location.key(DRILLS_DIR);
    let targets = pick_archives(candidates, archives, seed)
        .into_iter()
        .enumerate()
        .map(|(n, (candidate, newest))| {
            let result_key = format!("{drills}/{drill_id}/{n}.json");
            let parameters = BTreeMap::from([
                ("archive".to_string(), candidate.location.clone()),
                ("result".to_string(), config.location.url_of(&result_key)),
                ("restore_to_snapshot".to_string(), restore_to_snapshot.to_string()),
                ("drill_id".to_string(), drill_id.clone()),
                ("deployment".to_string(), config.deployment.clone()),
            ]);
            // Batch job names: up to 128 letters, digits, hyphens and underscores.
            let job = ArchiveJob { queue: config.job_queue.clone(), name: format!("restore-drill-{n}"), parameters };
            DrillTarget { location: candidate.location, archived_at: candidate.archived_at, newest, result_key, job }
        })
        .collect();
    Ok(DrillPlan {
        report_key: format!("{drills}/{drill_id}.json"),
        drill_id,
        bucket: config.location.bucket.clone(),
        started_at: input.started_at,
        seed,
        candidates: candidates.len() as u64,
        cold,
        restore_to_snapshot,
        targets,
    })
}

// ---------------------------------------------------------------------------------------------
// The worker's result.

/// One object of the archive, as the deep verification found it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrillObject {
    pub key: String,
    pub ok: bool,
    /// Bytes read (the stored object).
    pub bytes: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

/// A raw object restored into a new EBS snapshot, which was then deleted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrillRestore {
    pub key: String,
    /// The snapshot made, when StartSnapshot succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_id: Option<String>,
    pub blocks_written: u64,
    /// The snapshot no longer exists: deleted after the restore (or by the restore's own cleanup).
    pub deleted: bool,
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

impl DrillRestore {
    /// A restore that failed before it left a snapshot (the restore deletes the one it started on
    /// any error), so there is nothing to delete.
    pub fn failed(key: String, problem: String) -> DrillRestore {
        DrillRestore { key, snapshot_id: None, blocks_written: 0, deleted: true, ok: false, problem: Some(problem) }
    }
}

/// What `batch-worker drill` writes to its target's `result_key` and prints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DrillResult {
    pub location: String,
    pub ok: bool,
    /// Why the archive could not be checked at all (no manifest, an unreadable one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
    pub objects: Vec<DrillObject>,
    #[serde(default)]
    pub restores: Vec<DrillRestore>,
    pub seconds: f64,
}

impl DrillResult {
    /// Passed: every object matched its manifest, every restore completed and its snapshot is gone.
    pub fn judge(
        location: String,
        problem: Option<String>,
        objects: Vec<DrillObject>,
        restores: Vec<DrillRestore>,
        seconds: f64,
    ) -> DrillResult {
        let ok = problem.is_none()
            && !objects.is_empty()
            && objects.iter().all(|o| o.ok)
            && restores.iter().all(|r| r.ok && r.deleted);
        DrillResult { location, ok, problem, objects, restores, seconds }
    }
}

// ---------------------------------------------------------------------------------------------
// DrillArchive (the Map) and DrillReport.

/// One item of the Map's output, at `$.outcomes[n]`: the target and how its job ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrillOutcome {
    pub target: DrillTarget,
    /// The job ended SUCCEEDED.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<JobResult>,
    /// The job ended FAILED (a failed drill exits 1) or could not be submitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<StateError>,
}

/// Input of `drill-report`: the plan and the Map's outcomes, or (from the failure path) the error
/// that stopped the drill, with the plan when there was one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrillReportInput {
    pub execution_id: String,
    pub drill: Option<DrillPlan>,
    pub outcomes: Option<Vec<DrillOutcome>>,
    pub error: Option<StateError>,
}

/// Output of `drill-report`, at `$.report`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrillReportOutput {
    /// Where the report was written (none when the drill stopped before it had a plan).
    pub report_key: Option<String>,
    /// The Choice after DrillReport fails the execution unless this is true.
    pub passed: bool,
    /// The locations of the archives that failed.
    pub failed: Vec<String>,
    pub notification: NotificationReport,
}

/// An archive's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Every byte read and matched; restores (if asked) made and deleted.
    Passed,
    /// The archive does not match its manifest, or does not restore: it needs a look today.
    Failed,
    /// The drill could not say (the job failed without a result): as urgent as a failure, since
    /// nobody knows whether the archive restores.
    Unchecked,
}

/// One archive in the report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArchiveDrill {
    pub location: String,
    pub archived_at: DateTime<Utc>,
    pub newest: bool,
    pub verdict: Verdict,
    /// What failed, one line each, the worker's words.
    pub problems: Vec<String>,
    pub objects: u64,
    pub bytes_read: u64,
    pub restores: Vec<DrillRestore>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
    pub seconds: Option<f64>,
}

/// The report an auditor reads, at `<prefix>/.drills/<drill id>.json`. Fields are only added.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DrillReport {
    pub drill_id: Option<String>,
    pub execution_id: String,
    pub bucket: Option<String>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: DateTime<Utc>,
    pub seed: Option<u64>,
    pub candidates: u64,
    /// Archives not drilled because their data needs a thaw first.
    pub cold: u64,
    pub restore_to_snapshot: bool,
    /// True when every archive passed and the drill ran to its end.
    pub passed: bool,
    pub archives: Vec<ArchiveDrill>,
    /// Why the drill itself stopped (a listing, a Map or a report that failed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<StateError>,
}

/// The verdict of one archive from its job's outcome and the result its worker wrote (if any).
fn judge_archive(outcome: &DrillOutcome, result: Option<&DrillResult>) -> ArchiveDrill {
    let target = &outcome.target;
    let job_id = outcome.job.as_ref().map(|j| j.job_id.clone());
    let mut drill = ArchiveDrill {
        location: target.location.clone(),
        archived_at: target.archived_at,
        newest: target.newest,
        verdict: Verdict::Unchecked,
        problems: Vec::new(),
        objects: 0,
        bytes_read: 0,
        restores: Vec::new(),
        job_id,
        seconds: None,
    };
    match result {
        Some(result) => {
            drill.verdict = if result.ok && outcome.error.is_none() { Verdict::Passed } else { Verdict::Failed };
            drill.problems.extend(result.problem.clone());
            for object in &result.objects {
                if let Some(problem) = &object.problem {
                    drill.problems.push(format!("{}: {problem}", object.key));
                }
            }
            for restore in &result.restores {
                match (&restore.problem, restore.deleted) {
                    (Some(problem), _) => drill.problems.push(format!("restore of {}: {problem}", restore.key)),
                    (None, false) => drill.problems.push(format!(
                        "snapshot {} of {} was not deleted",
                        restore.snapshot_id.as_deref().unwrap_or("?"),
                        restore.key
                    )),
                    (None, true) => {}
                }
            }
            drill.objects = result.objects.len() as u64;
            drill.bytes_read = result.objects.iter().map(|o| o.bytes).sum();
            drill.restores = result.restores.clone();
            drill.seconds = Some(result.seconds);
        }
        None => {
            let why = match &outcome.error {
                Some(error) => format!(
                    "the drill job failed without a result: {}: {}",
                    error.error,
                    truncate(error.cause.as_deref().unwrap_or("no cause"), MAX_CAUSE_CHARS)
                ),
                None => format!("the drill job succeeded but wrote no result at {}", target.result_key),
            };
            drill.problems.push(why);
        }
    }
    if drill.verdict == Verdict::Failed && drill.problems.is_empty() {
        drill.problems.push("the drill job failed".into());
    }
    drill
}

/// The drill's report from the plan, the Map's outcomes and the result each worker wrote
/// (`results[n]` for `outcomes[n]`, `None` when there is none), or from the error that stopped it.
pub fn drill_report(
    input: &DrillReportInput,
    results: &[Option<DrillResult>],
    finished_at: DateTime<Utc>,
) -> DrillReport {
    let outcomes = input.outcomes.as_deref().unwrap_or_default();
    let archives: Vec<ArchiveDrill> =
        outcomes.iter().enumerate().map(|(n, o)| judge_archive(o, results.get(n).and_then(Option::as_ref))).collect();
    let plan = input.drill.as_ref();
    DrillReport {
        drill_id: plan.map(|p| p.drill_id.clone()),
        execution_id: input.execution_id.clone(),
        bucket: plan.map(|p| p.bucket.clone()),
        started_at: plan.map(|p| p.started_at),
        finished_at,
        seed: plan.map(|p| p.seed),
        candidates: plan.map_or(0, |p| p.candidates),
        cold: plan.map_or(0, |p| p.cold),
        restore_to_snapshot: plan.is_some_and(|p| p.restore_to_snapshot),
        passed: input.error.is_none() && archives.iter().all(|a| a.verdict == Verdict::Passed),
        archives,
        error: input.error.clone(),
    }
}

impl DrillReport {
    /// The archives that did not pass, worst first in the plan's order.
    pub fn failed(&self) -> Vec<&ArchiveDrill> {
        self.archives.iter().filter(|a| a.verdict != Verdict::Passed).collect()
    }

    /// Failure as soon as one archive fails or the drill stops; a drill of an empty bucket is a
    /// warning (nothing proves the archives restore); else success.
    pub fn severity(&self) -> Severity {
        if !self.passed {
            Severity::Failure
        } else if self.archives.is_empty() {
            Severity::Warning
        } else {
            Severity::Success
        }
    }

    fn place(&self) -> String {
        self.bucket.as_deref().map_or_else(|| "the archive bucket".to_string(), |b| format!("s3://{b}"))
    }

    /// `Restore drill FAILED: 1 of 3 archives in s3://bucket`, `… passed: 3 archives …`.
    pub fn title(&self) -> String {
        let place = self.place();
        let n = self.archives.len();
        let archives = if n == 1 { "archive" } else { "archives" };
        if let Some(error) = &self.error {
            return format!("Restore drill FAILED in {place}: {}", error.error);
        }
        match self.failed().len() {
            _ if n == 0 => format!("Restore drill in {place}: no archive to drill"),
            0 => format!("Restore drill passed: {n} {archives} in {place} read back and matched"),
            failed => format!("Restore drill FAILED: {failed} of {n} {archives} in {place}"),
        }
    }

    /// One line per archive: `FAILED s3://… (archived 2026-12-01 03:00 UTC)`.
    fn archive_line(archive: &ArchiveDrill) -> String {
        let verdict = match archive.verdict {
            Verdict::Passed => "passed",
            Verdict::Failed => "FAILED",
            Verdict::Unchecked => "NOT CHECKED",
        };
        let newest = if archive.newest { ", the newest" } else { "" };
        let mut line = format!(
            "{verdict} {} (archived {}{newest}; {} read",
            archive.location,
            archive.archived_at.format("%Y-%m-%d %H:%M UTC"),
            ByteSize::b(archive.bytes_read)
        );
        let restored = archive.restores.iter().filter(|r| r.ok && r.deleted).count();
        if restored > 0 {
            line.push_str(&format!(", restored to {restored} snapshot(s), deleted"));
        }
        line.push(')');
        line
    }

    fn context_line(&self) -> String {
        let mut line = format!("backup-archiver restore drill | {}", self.finished_at.format("%Y-%m-%d %H:%M UTC"));
        if let Some(seed) = self.seed {
            line.push_str(&format!(" | seed {seed}"));
        }
        line.push_str(&format!(" | {} archive(s) readable in the bucket", self.candidates));
        if self.cold > 0 {
            line.push_str(&format!(", {} in a Glacier class not drilled", self.cold));
        }
        line
    }

    /// The incoming-webhook payload: the verdict, then each archive (failures first), with problems.
    pub fn slack_payload(&self, report_url: Option<&str>) -> Value {
        let severity = self.severity();
        let headline = format!("{} {}", severity.emoji(), escape_mrkdwn(&self.title()));
        let mut blocks = vec![json!({"type": "section", "text": {"type": "mrkdwn", "text": format!("*{headline}*")}})];
        if let Some(error) = &self.error {
            let cause = truncate(error.cause.as_deref().unwrap_or("no cause"), MAX_CAUSE_CHARS);
            blocks.push(
                json!({"type": "section", "text": {"type": "mrkdwn", "text": format!(">{}", escape_mrkdwn(&cause))}}),
            );
        }
        let mut ordered: Vec<&ArchiveDrill> = self.failed();
        ordered.extend(self.archives.iter().filter(|a| a.verdict == Verdict::Passed));
        for archive in ordered {
            let mut text = escape_mrkdwn(&Self::archive_line(archive));
            for problem in &archive.problems {
                text.push_str(&format!("\n>{}", escape_mrkdwn(&truncate(problem, MAX_CAUSE_CHARS))));
            }
            blocks.push(json!({"type": "section", "text": {"type": "mrkdwn", "text": text}}));
        }
        let mut context = self.context_line();
        if let Some(url) = report_url {
            context.push_str(&format!(" | report {url}"));
        }
        blocks.push(json!({"type": "context", "elements": [{"type": "mrkdwn", "text": escape_mrkdwn(&context)}]}));
        json!({"text": headline, "attachments": [{"color": severity.colour(), "blocks": blocks}]})
    }

    /// The SNS subject: the title, printable ASCII, at most SNS's 100 characters.
    pub fn sns_subject(&self) -> String {
        crate::message::sns_subject(&self.title())
    }

    /// The SNS message, for e-mail: the title, each archive (failures first) with its problems.
    pub fn text_message(&self, report_url: Option<&str>) -> String {
        let mut text = format!("{}\n\n", self.title());
        if let Some(error) = &self.error {
            text.push_str(&format!(
                "Cause: {}\n\n",
                truncate(error.cause.as_deref().unwrap_or("none"), MAX_CAUSE_CHARS)
            ));
        }
        let mut ordered: Vec<&ArchiveDrill> = self.failed();
        ordered.extend(self.archives.iter().filter(|a| a.verdict == Verdict::Passed));
        for archive in ordered {
            text.push_str(&format!("- {}\n", Self::archive_line(archive)));
            for problem in &archive.problems {
                text.push_str(&format!("  {}\n", truncate(problem, MAX_CAUSE_CHARS)));
            }
        }
        if let Some(url) = report_url {
            text.push_str(&format!("\nReport: {url}\n"));
        }
        text.push_str(&format!("\n{}\n", self.context_line()));
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidate(n: u32) -> DrillCandidate {
        DrillCandidate {
            location: format!("s3://example-archive/backups/ebs/vol-{n}/2026/12/0{}/snap-{n}", n % 9 + 1),
            archived_at: format!("2026-11-{:02}T03:00:00Z", n + 1).parse().unwrap(),
        }
    }

    fn candidates(n: u32) -> Vec<DrillCandidate> {
        (0..n).map(candidate).collect()
    }

    fn config() -> DrillConfig {
        DrillConfig {
            location: "s3://example-archive/backups".parse().unwrap(),
            archives: DEFAULT_DRILL_ARCHIVES,
            restore_to_snapshot: false,
            job_queue: "arn:aws:batch:eu-west-1:111122223333:job-queue/q".into(),
            deployment: "stack".into(),
        }
    }

    fn input(trigger: DrillTrigger) -> PickDrillInput {
        PickDrillInput { trigger, execution_name: "e1".into(), started_at: "2026-12-06T03:00:00Z".parse().unwrap() }
    }

    #[test]
    fn the_newest_is_always_picked_first() {
        let all = candidates(20);
        for seed in 0..50 {
            let picked = pick_archives(&all, 3, seed);
            assert_eq!(picked.len(), 3);
            assert_eq!(picked[0], (candidate(19), true), "seed {seed}");
            assert!(picked[1..].iter().all(|(c, newest)| !newest && *c != candidate(19)));
            assert_ne!(picked[1].0, picked[2].0, "drawn without replacement");
        }
    }

    #[test]
    fn the_same_seed_picks_the_same_archives_and_seeds_differ() {
        let all = candidates(20);
        assert_eq!(pick_archives(&all, 5, 7), pick_archives(&all, 5, 7));
        let choices: std::collections::BTreeSet<Vec<String>> =
            (0..20).map(|seed| pick_archives(&all, 3, seed).into_iter().map(|(c, _)| c.location).collect()).collect();
        assert!(choices.len() > 10, "20 seeds gave only {} choices", choices.len());
    }

    #[test]
    fn every_archive_can_be_drawn() {
        let all = candidates(6);
        let mut seen = std::collections::BTreeSet::new();
        for seed in 0..200 {
            for (c, _) in pick_archives(&all, 2, seed) {
                seen.insert(c.location);
            }
        }
        assert_eq!(seen.len(), 6);
    }

    #[test]
    fn fewer_archives_than_asked_are_all_drilled_and_none_is_nothing() {
        assert_eq!(pick_archives(&candidates(2), 3, 1).len(), 2);
        assert_eq!(pick_archives(&candidates(1), 3, 1), vec![(candidate(0), true)]);
        assert!(pick_archives(&[], 3, 1).is_empty());
        assert!(pick_archives(&candidates(3), 0, 1).is_empty());
    }

    #[test]
    fn ties_on_time_pick_the_smallest_location_as_newest() {
        let mut all = vec![candidate(1), candidate(1)];
        all[0].location = "s3://example-archive/z".into();
        all[1].location = "s3://example-archive/a".into();
        assert_eq!(pick_archives(&all, 1, 0)[0].0.location, "s3://example-archive/a");
    }

    fn listed(key: &str, at: &str, class: Option<&str>) -> ListedObject {
        ListedObject { key: key.into(), last_modified: at.parse().unwrap(), storage_class: class.map(Into::into) }
    }

    #[test]
    fn archives_with_objects_in_a_glacier_class_are_counted_not_drilled() {
        let objects = [
            listed("p/ebs/vol-1/snap-1/disk.raw.gz", "2026-11-01T03:00:00Z", Some("DEEP_ARCHIVE")),
            listed("p/ebs/vol-1/snap-1/manifest.json", "2026-11-01T03:00:01Z", None),
            listed("p/ebs/vol-2/snap-2/part1.tar.gz", "2026-11-02T03:00:00Z", Some("STANDARD")),
            listed("p/ebs/vol-2/snap-2/part1.tar.index", "2026-11-02T03:00:00Z", Some("STANDARD")),
            listed("p/ebs/vol-2/snap-2/manifest.json", "2026-11-02T03:00:01Z", Some("STANDARD")),
            listed("p/ebs/vol-3/snap-3/disk.raw.gz.0001", "2026-11-03T03:00:00Z", Some("GLACIER")),
            listed("p/ebs/vol-3/snap-3/manifest.json", "2026-11-03T03:00:01Z", None),
            listed("p/.drills/x.json", "2026-11-04T03:00:00Z", None),
        ];
        let (candidates, cold) = drill_candidates("example-archive", &objects);
        assert_eq!(cold, 2);
        assert_eq!(
            candidates,
            [DrillCandidate {
                location: "s3://example-archive/p/ebs/vol-2/snap-2".into(),
                archived_at: "2026-11-02T03:00:01Z".parse().unwrap()
            }]
        );
    }

    #[test]
    fn the_plan_names_each_job_its_archive_result_and_report() {
        let plan = plan_drill(&input(DrillTrigger::default()), &config(), &candidates(5), 0, 42).unwrap();
        assert_eq!(plan.drill_id, "2026-12-06T03-00-00Z-e1");
        assert_eq!(plan.report_key, "backups/.drills/2026-12-06T03-00-00Z-e1.json");
        assert_eq!((plan.seed, plan.candidates, plan.targets.len()), (42, 5, 3));
        let first = &plan.targets[0];
        assert!(first.newest);
        assert_eq!(first.result_key, "backups/.drills/2026-12-06T03-00-00Z-e1/0.json");
        let names: Vec<&str> = first.job.parameters.keys().map(String::as_str).collect();
        let mut expected = DRILL_JOB_PARAMETERS.to_vec();
        expected.sort();
        assert_eq!(names, expected);
        assert_eq!(first.job.parameters["archive"], first.location);
        assert_eq!(first.job.parameters["result"], format!("s3://example-archive/{}", first.result_key));
        assert_eq!(first.job.parameters["restore_to_snapshot"], "false");
        assert_eq!(first.job.parameters["deployment"], "stack");
        assert_eq!(first.job.name, "restore-drill-0");
    }

    #[test]
    fn the_input_overrides_the_stacks_settings() {
        let trigger = DrillTrigger { archives: Some(1), seed: Some(9), restore_to_snapshot: Some(true) };
        let plan = plan_drill(&input(trigger), &config(), &candidates(5), 0, 42).unwrap();
        assert_eq!((plan.seed, plan.targets.len(), plan.restore_to_snapshot), (9, 1, true));
        assert_eq!(plan.targets[0].job.parameters["restore_to_snapshot"], "true");
    }

    #[test]
    fn a_scheduled_event_is_a_trigger_with_the_stacks_settings() {
        let event = json!({"version": "0", "id": "1", "detail-type": "Scheduled Event", "source": "aws.events",
                           "time": "2026-12-06T03:00:00Z", "resources": [], "detail": {}});
        assert_eq!(serde_json::from_value::<DrillTrigger>(event).unwrap(), DrillTrigger::default());
    }

    #[test]
    fn rejects_a_drill_of_no_archives_or_too_many_naming_the_field() {
        for archives in [0, MAX_DRILL_ARCHIVES + 1] {
            let trigger = DrillTrigger { archives: Some(archives), ..DrillTrigger::default() };
            let error = plan_drill(&input(trigger), &config(), &candidates(3), 0, 1).unwrap_err();
            assert!(matches!(error, FlowError::InvalidInput { field: "archives", .. }), "{error}");
        }
        let config = DrillConfig { job_queue: String::new(), ..config() };
        let error = plan_drill(&input(DrillTrigger::default()), &config, &candidates(3), 0, 1).unwrap_err();
        assert!(matches!(error, FlowError::InvalidConfig { field: "job_queue", .. }), "{error}");
    }

    fn outcomes(plan: &DrillPlan) -> Vec<DrillOutcome> {
        plan.targets
            .iter()
            .map(|t| DrillOutcome {
                target: t.clone(),
                job: Some(JobResult { job_id: format!("job-{}", t.job.name), status: "SUCCEEDED".into() }),
                error: None,
            })
            .collect()
    }

    fn result(location: &str, problem: Option<&str>) -> DrillResult {
        let object = DrillObject {
            key: "p/disk.raw.gz".into(),
            ok: problem.is_none(),
            bytes: 1024,
            problem: problem.map(str::to_string),
        };
        DrillResult::judge(location.into(), None, vec![object], Vec::new(), 1.5)
    }

    fn report_of(plan: DrillPlan, outcomes: Vec<DrillOutcome>, results: &[Option<DrillResult>]) -> DrillReport {
        let input = DrillReportInput {
            execution_id: "arn:e1".into(),
            drill: Some(plan),
            outcomes: Some(outcomes),
            error: None,
        };
        drill_report(&input, results, "2026-12-06T03:10:00Z".parse().unwrap())
    }

    #[test]
    fn a_corrupted_archive_fails_the_drill_and_is_named_first() {
        let plan = plan_drill(&input(DrillTrigger::default()), &config(), &candidates(3), 0, 1).unwrap();
        let mut outcomes = outcomes(&plan);
        let bad = plan.targets[1].location.clone();
        outcomes[1].job = None;
        outcomes[1].error = Some(StateError { error: "States.TaskFailed".into(), cause: Some("{\"exit\": 1}".into()) });
        let results: Vec<Option<DrillResult>> = plan
            .targets
            .iter()
            .map(|t| Some(result(&t.location, (t.location == bad).then_some("SHA-256 differs from the manifest's"))))
            .collect();
        let report = report_of(plan, outcomes, &results);
        assert!(!report.passed);
        assert_eq!(report.severity(), Severity::Failure);
        assert_eq!(report.failed().iter().map(|a| a.location.as_str()).collect::<Vec<_>>(), [bad.as_str()]);
        assert_eq!(report.archives[1].verdict, Verdict::Failed);
        assert_eq!(report.archives[1].problems, ["p/disk.raw.gz: SHA-256 differs from the manifest's"]);
        assert_eq!(report.archives[0].verdict, Verdict::Passed);
        assert_eq!(report.title(), "Restore drill FAILED: 1 of 3 archives in s3://example-archive");
        let text = report.text_message(Some("s3://example-archive/r.json"));
        assert!(
            text.starts_with(&format!(
                "Restore drill FAILED: 1 of 3 archives in s3://example-archive\n\n- FAILED {bad}"
            )),
            "{text}"
        );
        assert!(text.contains("SHA-256 differs"), "{text}");
        let slack = report.slack_payload(None);
        assert!(slack["text"].as_str().unwrap().starts_with(":rotating_light: Restore drill FAILED"), "{slack}");
        assert!(slack["attachments"][0]["blocks"][1]["text"]["text"].as_str().unwrap().contains(&bad), "{slack}");
    }

    #[test]
    fn a_drill_where_every_archive_matched_passes() {
        let plan = plan_drill(&input(DrillTrigger::default()), &config(), &candidates(3), 0, 1).unwrap();
        let results: Vec<Option<DrillResult>> = plan.targets.iter().map(|t| Some(result(&t.location, None))).collect();
        let report = report_of(plan.clone(), outcomes(&plan), &results);
        assert!(report.passed, "{report:?}");
        assert_eq!(report.severity(), Severity::Success);
        assert_eq!(report.title(), "Restore drill passed: 3 archives in s3://example-archive read back and matched");
        assert_eq!(report.archives[0].bytes_read, 1024);
        assert_eq!(report.archives[0].job_id.as_deref(), Some("job-restore-drill-0"));
    }

    #[test]
    fn a_job_without_a_result_is_unchecked_and_fails_the_drill() {
        let plan = plan_drill(&input(DrillTrigger::default()), &config(), &candidates(1), 0, 1).unwrap();
        let mut outcomes = outcomes(&plan);
        outcomes[0].error = Some(StateError { error: "States.TaskFailed".into(), cause: Some("killed".into()) });
        let report = report_of(plan, outcomes, &[None]);
        assert!(!report.passed);
        assert_eq!(report.archives[0].verdict, Verdict::Unchecked);
        assert!(report.archives[0].problems[0].contains("killed"), "{:?}", report.archives[0].problems);
    }

    #[test]
    fn a_snapshot_left_behind_fails_the_archive() {
        let restore = DrillRestore {
            key: "p/disk.raw.gz".into(),
            snapshot_id: Some("snap-1".into()),
            blocks_written: 3,
            deleted: false,
            ok: true,
            problem: None,
        };
        let object = DrillObject { key: "p/disk.raw.gz".into(), ok: true, bytes: 1, problem: None };
        assert!(
            !DrillResult::judge(
                "s3://example-archive/p".into(),
                None,
                vec![object.clone()],
                vec![restore.clone()],
                1.0
            )
            .ok
        );
        let deleted = DrillRestore { deleted: true, ..restore };
        assert!(DrillResult::judge("s3://example-archive/p".into(), None, vec![object], vec![deleted], 1.0).ok);
        assert!(
            !DrillResult::judge("s3://example-archive/p".into(), None, Vec::new(), Vec::new(), 1.0).ok,
            "nothing checked"
        );
    }

    #[test]
    fn a_drill_that_stopped_reports_its_error() {
        let input = DrillReportInput {
            execution_id: "arn:e1".into(),
            drill: None,
            outcomes: None,
            error: Some(StateError {
                error: "StorageAccessFailed".into(),
                cause: Some("ListObjectsV2: denied".into()),
            }),
        };
        let report = drill_report(&input, &[], "2026-12-06T03:10:00Z".parse().unwrap());
        assert!(!report.passed);
        assert_eq!(report.title(), "Restore drill FAILED in the archive bucket: StorageAccessFailed");
        assert!(report.text_message(None).contains("ListObjectsV2: denied"));
    }

    #[test]
    fn an_empty_bucket_passes_with_a_warning() {
        let plan = plan_drill(&input(DrillTrigger::default()), &config(), &[], 0, 1).unwrap();
        let report = report_of(plan, Vec::new(), &[]);
        assert!(report.passed);
        assert_eq!(report.severity(), Severity::Warning);
        assert_eq!(report.title(), "Restore drill in s3://example-archive: no archive to drill");
    }

    #[test]
    fn the_report_round_trips() {
        let plan = plan_drill(&input(DrillTrigger::default()), &config(), &candidates(2), 0, 1).unwrap();
        let results: Vec<Option<DrillResult>> = plan.targets.iter().map(|t| Some(result(&t.location, None))).collect();
        let report = report_of(plan.clone(), outcomes(&plan), &results);
        let value = serde_json::to_value(&report).unwrap();
        assert_eq!(serde_json::from_value::<DrillReport>(value.clone()).unwrap(), report);
        assert_eq!(value["archives"][0]["verdict"], "passed");
    }
}
