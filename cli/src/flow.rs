//! The operator's side of the state machines: `plan` (a dry run of the `plan` step, offline),
//! `start` (a one-off archive), `replay` (a failed archive again, with the same input), and
//! `status` (recent executions, or one execution step by step, optionally as it runs).
//!
//! `--json` prints one document per command (`plan`, `start`, `replay`, `status ARN`) and JSON
//! Lines for lists and `--watch`. Fields are only ever added:
//! - `plan`: [`PlanOutcome`] (`outcome` = `planned` | `skipped`), or for an event whose plan
//!   needs the snapshot described first, `{"outcome": "needs_lookup", "field", "message", "target"}`;
//!   with the organisation flow's configuration, plus `org_copy` ([`crate::org_copy`]).
//! - `start`, `replay`: [`Started`]; with `--wait`, [`ExecutionReport`] once it ends.
//! - `status ARN`: [`ExecutionReport`]; `status` alone: one [`ExecutionSummary`] per line;
//!   `status ARN --watch`: one [`Step`] per line as states start and end, then the report.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use archiver_core::alert::archive_skip;
use archiver_core::errors::NamedError;
use archiver_core::event::TriggerEvent;
use archiver_core::request::{
    archive_target, event_target, plan_archive, trigger_snapshot_id, PlanConfig, PlanError, PlanOutcome, SnapshotFacts,
    Targeting,
};
use aws_sdk_sfn::types::{ExecutionStatus, HistoryEvent};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{json, Value};

use crate::{ExitCode, Failure};

/// Where `start`, `replay` and `status` find the state machine when `--state-machine` is absent.
pub const STATE_MACHINE_ENV: &str = "BACKUP_ARCHIVER_STATE_MACHINE";
/// The plan configuration of the `plan` Lambda, which the dry run uses too when set.
pub const PLAN_CONFIG_ENV: &str = "PLAN_CONFIG";
/// A state machine whose name ends with this is taken when only one such exists.
const EBS_STATE_MACHINE_SUFFIX: &str = "ebs-archive";
/// How often `--wait` and `--watch` read the execution's history (arbitrary: quick enough for a
/// person, a few calls a second against a 2,000-per-second quota).
const POLL_INTERVAL: Duration = Duration::from_millis(500);
/// `status` without an execution lists this many (arbitrary; one screen).
const RECENT_EXECUTIONS: i32 = 20;

#[derive(Debug, clap::Args)]
pub struct PlanArgs {
    /// The trigger: an EventBridge event, an SNS delivery, or a manual input (`-` for stdin).
    #[arg(long)]
    pub event: PathBuf,
    /// The plan configuration (JSON, as the `plan` Lambda's PLAN_CONFIG); default: $PLAN_CONFIG,
    /// else a placeholder destination s3://example-archive and one AZ.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// What the Lambda would learn by describing the snapshot (JSON: status, size_bytes,
    /// encrypted, kms_key_id, engine, source_resource_id, vault_name, created_at).
    #[arg(long)]
    pub facts: Option<PathBuf>,
    /// The RDS engine, for database events whose plan depends on it.
    #[arg(long)]
    pub engine: Option<String>,
    /// The organisation flow's configuration (JSON, as the start-copy Lambda's ORG_COPY_CONFIG); default:
    /// $ORG_COPY_CONFIG. With it, `plan` also says which copy a Backup or Copy Job event would start, and where.
    #[arg(long)]
    pub org_copy_config: Option<PathBuf>,
    /// Print one JSON document instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct StartArgs {
    /// The snapshot to archive: an EBS snapshot (snap-… or its ARN), or an RDS DB or Aurora
    /// cluster snapshot ARN.
    #[arg(long)]
    pub snapshot: String,
    /// EBS: what to do with each filesystem (default: files where it mounts, raw bytes otherwise).
    #[arg(long, value_parser = ["auto", "files", "raw"])]
    pub mode: Option<String>,
    /// Databases: `export` (RDS's export to S3, the rds-export state machine) or `dump` (pg_dump /
    /// mysqldump of a temporary instance, the rds-dump state machine). Default: export, unless the
    /// deployment's plan configuration dumps the engine.
    #[arg(long, value_parser = ["export", "dump"])]
    pub method: Option<String>,
    #[command(flatten)]
    pub target: TargetArgs,
}

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("what").required(true).args(["execution_arn", "batch_job"])))]
pub struct ReplayArgs {
    /// The execution to run again with the same input.
    pub execution_arn: Option<String>,
    /// Or: the Batch job of the execution to run again.
    #[arg(long)]
    pub batch_job: Option<String>,
    #[command(flatten)]
    pub target: TargetArgs,
}

#[derive(Debug, clap::Args)]
pub struct TargetArgs {
    /// The state machine (default: $BACKUP_ARCHIVER_STATE_MACHINE, else the only one named after
    /// the input's flow: *ebs-archive, *rds-export, or *rds-dump with `--method dump`).
    #[arg(long)]
    pub state_machine: Option<String>,
    /// Follow the execution until it ends; exit 0 if it succeeded, 1 if not.
    #[arg(long)]
    pub wait: bool,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// One execution, step by step; without it, the recent executions.
    pub execution_arn: Option<String>,
    /// The state machine whose executions to list.
    #[arg(long)]
    pub state_machine: Option<String>,
    /// With an execution: print its steps as they start and end, until it ends.
    #[arg(long, requires = "execution_arn")]
    pub watch: bool,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

// ---------------------------------------------------------------------------------------------
// plan

pub fn plan(args: PlanArgs) -> Result<ExitCode, Failure> {
    let text = crate::read_input(&args.event)?;
    let config = plan_config(args.config.as_ref())?;
    let mut facts: SnapshotFacts = match &args.facts {
        Some(path) => read_json(path)?,
        None => SnapshotFacts::default(),
    };
    if args.engine.is_some() {
        facts.engine = args.engine.clone();
    }
    let org_copy = crate::org_copy::config(args.org_copy_config.as_ref())?;
    let event = match TriggerEvent::from_json(&text) {
        Ok(event) => event,
        Err(error) => {
            // A valid AWS Backup event that is no trigger (a recovery point's state change) is skipped, as the
            // Lambda skips it, never called malformed.
            let skip = serde_json::from_slice::<Value>(&text).ok().and_then(|value| archive_skip(&value));
            let Some(reason) = skip else { return Err(rejected(PlanError::InvalidEvent(error), args.json)) };
            let outcome = PlanOutcome::skipped(reason);
            if args.json {
                print_json(&outcome);
            } else {
                print_plan(&outcome);
            }
            return Ok(ExitCode::No);
        }
    };
    match plan_archive(&event, &facts, &config, Utc::now()) {
        Ok(outcome) => {
            let code = match outcome {
                PlanOutcome::Planned(_) => ExitCode::Success,
                PlanOutcome::Skipped { .. } => ExitCode::No,
            };
            if args.json {
                let mut document = serde_json::to_value(&outcome).expect("outcomes serialize");
                if let Some(org_copy) = &org_copy {
                    document["org_copy"] = crate::org_copy::decision(&event, org_copy);
                }
                print_json(&document);
            } else {
                print_plan(&outcome);
                if let Some(org_copy) = &org_copy {
                    println!("{}", crate::org_copy::describe(&event, org_copy));
                }
            }
            Ok(code)
        }
        Err(PlanError::LookupIncomplete { field, hint }) => {
            // The Lambda would describe the snapshot; offline, say what is known and what is not.
            let target = match archive_target(&event, &config) {
                Ok(Targeting::Target(target)) => serde_json::to_value(&target).expect("targets serialize"),
                _ => Value::Null,
            };
            let message = format!("`{field}` is unknown until the snapshot is described: {hint}");
            if args.json {
                let mut document =
                    json!({"outcome": "needs_lookup", "field": field, "message": message, "target": target});
                if let Some(org_copy) = &org_copy {
                    document["org_copy"] = crate::org_copy::decision(&event, org_copy);
                }
                print_json(&document);
            } else {
                println!("needs lookup: {message}");
                println!("(pass --facts FILE or --engine ENGINE to plan it fully)");
                println!("{}", serde_json::to_string_pretty(&target).expect("JSON values serialize"));
                if let Some(org_copy) = &org_copy {
                    println!("{}", crate::org_copy::describe(&event, org_copy));
                }
            }
            Ok(ExitCode::Success)
        }
        Err(error) => Err(rejected(error, args.json)),
    }
}

/// A rejection: exit 2, with the stable error name that the Lambda would report.
fn rejected(error: PlanError, json: bool) -> Failure {
    if json {
        let message = error.to_string();
        print_json(
            &json!({"outcome": "rejected", "error": error.error_name(), "field": error.field(), "message": message}),
        );
    }
    Failure::usage(format!("rejected ({}): {error}", error.error_name()))
}

fn plan_config(path: Option<&PathBuf>) -> Result<PlanConfig, Failure> {
    let config: PlanConfig = match (path, std::env::var(PLAN_CONFIG_ENV)) {
        (Some(path), _) => read_json(path)?,
        (None, Ok(text)) if !text.trim().is_empty() => serde_json::from_str(&text)
            .map_err(|e| Failure::usage(format!("${PLAN_CONFIG_ENV} is not a plan configuration: {e}")))?,
        _ => serde_json::from_value(json!({
            "destination": {"bucket": "example-archive", "prefix": ""},
            "availability_zones": [format!("{}a", std::env::var("AWS_REGION").unwrap_or_else(|_| "us-east-1".into()))]
        }))
        .expect("the placeholder configuration is valid"),
    };
    config.validate().map_err(|e| Failure::usage(format!("the plan configuration: {e}")))?;
    Ok(config)
}

fn read_json<T: serde::de::DeserializeOwned>(path: &PathBuf) -> Result<T, Failure> {
    let bytes = std::fs::read(path).map_err(|e| Failure::usage(format!("{}: {e}", path.display())))?;
    serde_json::from_slice(&bytes).map_err(|e| Failure::usage(format!("{}: {e}", path.display())))
}

fn print_plan(outcome: &PlanOutcome) {
    match outcome {
        PlanOutcome::Skipped { message, .. } => println!("skipped: {message}"),
        PlanOutcome::Planned(r) => {
            println!("planned: {} {} -> {}", r.kind, r.snapshot_id, r.destination);
            println!(
                "  flow              {}",
                serde_json::to_value(r.flow).expect("serializes").as_str().unwrap_or("")
            );
            println!("  source            {}", r.source_resource_id);
            println!("  idempotency key   {}", r.idempotency_key);
            if let Some(v) = &r.volume {
                println!(
                    "  volume            {} in {}, {} IOPS, {} MiB/s{}",
                    v.volume_type,
                    v.availability_zone,
                    v.iops,
                    v.throughput_mibps,
                    v.initialization_rate_mibps.map(|r| format!(", initialized at {r} MiB/s")).unwrap_or_default()
                );
                println!("  job queue         {}", v.job_queue.as_deref().unwrap_or("(none configured)"));
            }
            if let Some(method) = r.method {
                println!("  method            {method}");
            }
            if let Some(vault) = &r.vault_name {
                println!("  vault             {vault}");
            }
            println!(
                "  recovery point    {}",
                if r.options.delete_recovery_point { "deleted once the archive is verified" } else { "kept" }
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// start, replay, status

/// What `start` and `replay` print.
#[derive(Debug, Serialize)]
pub struct Started {
    pub execution_arn: String,
    pub state_machine_arn: String,
    pub snapshot_id: Option<String>,
    /// `replay` only: the execution replayed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replay_of: Option<String>,
}

/// One state of an execution, from its history.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Step {
    pub name: String,
    pub status: StepStatus,
    pub entered_at: DateTime<Utc>,
    pub exited_at: Option<DateTime<Utc>>,
    /// Failed attempts before the last one (a Retry).
    pub retries: u32,
    /// The last error of the state, retried or not.
    pub error: Option<String>,
    pub cause: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    Running,
    Succeeded,
    /// Its error was caught (the execution went on to the cleanup) or ended the execution.
    Failed,
}

/// One execution, as `status ARN` and `--wait` report it.
#[derive(Debug, Serialize)]
pub struct ExecutionReport {
    pub execution_arn: String,
    pub state_machine_arn: String,
    pub status: String,
    pub started_at: Option<DateTime<Utc>>,
    pub stopped_at: Option<DateTime<Utc>>,
    pub snapshot_id: Option<String>,
    pub error: Option<String>,
    pub cause: Option<String>,
    /// The final document (SUCCEEDED executions).
    pub output: Option<Value>,
    pub steps: Vec<Step>,
}

/// One line of `status`.
#[derive(Debug, Serialize)]
pub struct ExecutionSummary {
    pub execution_arn: String,
    pub name: String,
    pub status: String,
    pub started_at: Option<DateTime<Utc>>,
    pub stopped_at: Option<DateTime<Utc>>,
    pub snapshot_id: Option<String>,
}

/// A history event reduced to what the steps are built from.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryItem {
    /// Step Functions' event type (`TaskStateEntered`, `LambdaFunctionFailed`, …).
    pub kind: String,
    pub time: DateTime<Utc>,
    /// Entered and exited events name their state.
    pub state: Option<String>,
    pub error: Option<String>,
    pub cause: Option<String>,
}

/// The steps of an execution from its history: one per state entered, in order. A failure
/// followed by another attempt of the same state counts as a retry; a state left for another
/// without an exit event, or whose failure ended the execution, failed.
pub fn steps(history: &[HistoryItem]) -> Vec<Step> {
    let mut steps: Vec<Step> = Vec::new();
    // Failures seen in the current state, not yet known to be retried or final.
    let mut pending_failures = 0u32;
    for item in history {
        let kind = item.kind.as_str();
        if kind.ends_with("StateEntered") {
            if let Some(last) = steps.last_mut() {
                if last.status == StepStatus::Running {
                    last.status = StepStatus::Failed;
                }
            }
            pending_failures = 0;
            steps.push(Step {
                name: item.state.clone().unwrap_or_default(),
                status: StepStatus::Running,
                entered_at: item.time,
                exited_at: None,
                retries: 0,
                error: None,
                cause: None,
            });
        } else if kind.ends_with("StateExited") {
            if let Some(last) = steps.last_mut() {
                last.exited_at = Some(item.time);
                // A state that failed and was caught may still report an exit (moto does).
                last.status = if pending_failures > last.retries { StepStatus::Failed } else { StepStatus::Succeeded };
            }
        } else if kind.ends_with("Failed") || kind.ends_with("TimedOut") || kind.ends_with("Aborted") {
            let is_execution = kind.starts_with("Execution");
            if let Some(last) = steps.last_mut() {
                if is_execution {
                    if last.status == StepStatus::Running {
                        last.status = StepStatus::Failed;
                        last.exited_at = Some(item.time);
                    }
                    continue;
                }
                pending_failures += 1;
                last.error = item.error.clone().or_else(|| last.error.clone());
                last.cause = item.cause.clone().or_else(|| last.cause.clone());
            }
        } else if kind.ends_with("Scheduled") || kind.ends_with("Submitted") || kind.ends_with("Started") {
            // A new attempt of the same state after a failure: that failure was retried.
            if let Some(last) = steps.last_mut() {
                if kind.ends_with("Scheduled") && pending_failures > last.retries {
                    last.retries = pending_failures;
                }
            }
        }
    }
    steps
}

fn history_item(event: &HistoryEvent) -> HistoryItem {
    let (error, cause) = failure_of(event);
    HistoryItem {
        kind: event.r#type().as_str().to_string(),
        time: to_utc(event.timestamp()).unwrap_or_default(),
        state: event
            .state_entered_event_details()
            .map(|d| d.name().to_string())
            .or_else(|| event.state_exited_event_details().map(|d| d.name().to_string())),
        error,
        cause,
    }
}

fn failure_of(event: &HistoryEvent) -> (Option<String>, Option<String>) {
    let pair = |e: Option<&str>, c: Option<&str>| (e.map(str::to_string), c.map(str::to_string));
    if let Some(d) = event.task_failed_event_details() {
        return pair(d.error(), d.cause());
    }
    if let Some(d) = event.lambda_function_failed_event_details() {
        return pair(d.error(), d.cause());
    }
    if let Some(d) = event.lambda_function_timed_out_event_details() {
        return pair(d.error(), d.cause());
    }
    if let Some(d) = event.task_timed_out_event_details() {
        return pair(d.error(), d.cause());
    }
    if let Some(d) = event.execution_failed_event_details() {
        return pair(d.error(), d.cause());
    }
    (None, None)
}

fn to_utc(time: &aws_sdk_sfn::primitives::DateTime) -> Option<DateTime<Utc>> {
    DateTime::<Utc>::from_timestamp(time.secs(), time.subsec_nanos())
}

async fn sfn_client() -> aws_sdk_sfn::Client {
    aws_sdk_sfn::Client::new(&aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await)
}

fn aws_failure(operation: &str, error: impl std::error::Error + 'static) -> Failure {
    Failure::no(format!("{operation}: {}", aws_sdk_sfn::error::DisplayErrorContext(error)))
}

/// The state machine to use: the flag, the environment, or the only one named *`suffix` (a
/// flow's [`archiver_core::flows::Flow::state_machine`]).
async fn state_machine_arn(sfn: &aws_sdk_sfn::Client, flag: Option<&str>, suffix: &str) -> Result<String, Failure> {
    if let Some(arn) =
        flag.map(str::to_string).or_else(|| std::env::var(STATE_MACHINE_ENV).ok().filter(|v| !v.is_empty()))
    {
        return Ok(arn);
    }
    let mut pages = sfn.list_state_machines().into_paginator().send();
    let mut found = Vec::new();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| aws_failure("ListStateMachines", e))?;
        found.extend(
            page.state_machines()
                .iter()
                .filter(|m| m.name().ends_with(suffix))
                .map(|m| m.state_machine_arn().to_string()),
        );
    }
    match found.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(Failure::usage(format!(
            "no state machine named *{suffix}: pass --state-machine ARN or set ${STATE_MACHINE_ENV}"
        ))),
        several => Err(Failure::usage(format!(
            "{} state machines are named *{suffix} ({}): pass --state-machine ARN",
            several.len(),
            several.join(", ")
        ))),
    }
}

/// The running execution of `state_machine` that archives `snapshot_id`, other than `except`.
async fn running_archive_of(
    sfn: &aws_sdk_sfn::Client,
    state_machine: &str,
    snapshot_id: &str,
    except: Option<&str>,
) -> Result<Option<String>, Failure> {
    let mut pages = sfn
        .list_executions()
        .state_machine_arn(state_machine)
        .status_filter(ExecutionStatus::Running)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| aws_failure("ListExecutions", e))?;
        for execution in page.executions() {
            let arn = execution.execution_arn();
            if Some(arn) == except {
                continue;
            }
            let described = sfn
                .describe_execution()
                .execution_arn(arn)
                .send()
                .await
                .map_err(|e| aws_failure("DescribeExecution", e))?;
            let input = described.input().and_then(|i| serde_json::from_str::<Value>(i).ok()).unwrap_or(Value::Null);
            if trigger_snapshot_id(&input).as_deref() == Some(snapshot_id) {
                return Ok(Some(arn.to_string()));
            }
        }
    }
    Ok(None)
}

pub async fn start(args: StartArgs) -> Result<ExitCode, Failure> {
    let mut input = json!({"snapshot": args.snapshot});
    if let Some(mode) = &args.mode {
        input["mode"] = json!(mode);
    }
    if let Some(method) = &args.method {
        input["method"] = json!(method);
    }
    // The same check as the plan step's, before anything starts.
    let event = TriggerEvent::from_value(&input).map_err(|e| Failure::usage(format!("invalid input: {e}")))?;
    let Ok(Targeting::Target(target)) = event_target(&event) else {
        return Err(Failure::usage(format!("invalid input: {input} names no snapshot to archive")));
    };
    let sfn = sfn_client().await;
    let suffix = target.entry_flow().state_machine();
    let machine = state_machine_arn(&sfn, args.target.state_machine.as_deref(), suffix).await?;
    run(&sfn, &machine, input, None, &args.target).await
}

pub async fn replay(args: ReplayArgs) -> Result<ExitCode, Failure> {
    let sfn = sfn_client().await;
    let execution_arn = match (&args.execution_arn, &args.batch_job) {
        (Some(arn), _) => arn.clone(),
        (None, Some(job_id)) => execution_of_job(job_id).await?,
        (None, None) => unreachable!("clap requires one"),
    };
    let described = sfn
        .describe_execution()
        .execution_arn(&execution_arn)
        .send()
        .await
        .map_err(|e| aws_failure(&format!("DescribeExecution {execution_arn}"), e))?;
    if described.status() == &ExecutionStatus::Running {
        return Err(Failure::no(format!("refusing to replay {execution_arn}: it is still running")));
    }
    let input: Value = described
        .input()
        .and_then(|i| serde_json::from_str(i).ok())
        .ok_or_else(|| Failure::no(format!("{execution_arn} has no readable input to replay")))?;
    let machine = match &args.target.state_machine {
        Some(arn) => arn.clone(),
        None => described.state_machine_arn().to_string(),
    };
    run(&sfn, &machine, input, Some(execution_arn), &args.target).await
}

/// The execution that submitted Batch job `job_id`: `create-volume` puts it in the job's
/// parameters (`execution_id`).
async fn execution_of_job(job_id: &str) -> Result<String, Failure> {
    let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let batch = aws_sdk_batch::Client::new(&config);
    let output =
        batch.describe_jobs().jobs(job_id).send().await.map_err(|e| {
            Failure::no(format!("DescribeJobs {job_id}: {}", aws_sdk_batch::error::DisplayErrorContext(e)))
        })?;
    let job = output.jobs().first().ok_or_else(|| Failure::usage(format!("no Batch job {job_id}")))?;
    job.parameters().and_then(|p| p.get("execution_id")).cloned().ok_or_else(|| {
        Failure::usage(format!("Batch job {job_id} names no execution_id: not one of this project's jobs"))
    })
}

/// Starts `input` on `machine` unless another execution archives the same snapshot, then
/// prints it or follows it.
async fn run(
    sfn: &aws_sdk_sfn::Client,
    machine: &str,
    input: Value,
    replay_of: Option<String>,
    target: &TargetArgs,
) -> Result<ExitCode, Failure> {
    let snapshot_id = trigger_snapshot_id(&input);
    if let Some(snapshot) = &snapshot_id {
        if let Some(running) = running_archive_of(sfn, machine, snapshot, None).await? {
            return Err(Failure::no(format!("refusing: {running} is archiving {snapshot} right now")));
        }
    }
    let started = sfn
        .start_execution()
        .state_machine_arn(machine)
        .input(input.to_string())
        .send()
        .await
        .map_err(|e| aws_failure(&format!("StartExecution on {machine}"), e))?;
    let started = Started {
        execution_arn: started.execution_arn().to_string(),
        state_machine_arn: machine.to_string(),
        snapshot_id,
        replay_of,
    };
    if target.json && !target.wait {
        print_json(&started);
    } else if !target.json {
        println!("started {}", started.execution_arn);
    }
    if !target.wait {
        return Ok(ExitCode::Success);
    }
    let report = follow(sfn, &started.execution_arn, !target.json, false).await?;
    if target.json {
        print_json(&report);
    } else {
        print_report_footer(&report);
    }
    Ok(if report.status == "SUCCEEDED" { ExitCode::Success } else { ExitCode::No })
}

pub async fn status(args: StatusArgs) -> Result<ExitCode, Failure> {
    let sfn = sfn_client().await;
    let Some(arn) = &args.execution_arn else {
        let machine = state_machine_arn(&sfn, args.state_machine.as_deref(), EBS_STATE_MACHINE_SUFFIX).await?;
        return list(&sfn, &machine, args.json).await;
    };
    let report = if args.watch { follow(&sfn, arn, !args.json, args.json).await? } else { describe(&sfn, arn).await? };
    if args.json {
        print_json(&report);
    } else {
        if !args.watch {
            println!("{} {}", report.status, report.execution_arn);
            for step in &report.steps {
                println!("{}", step_line(step));
            }
        }
        print_report_footer(&report);
    }
    Ok(if matches!(report.status.as_str(), "SUCCEEDED" | "RUNNING") { ExitCode::Success } else { ExitCode::No })
}

async fn list(sfn: &aws_sdk_sfn::Client, machine: &str, json: bool) -> Result<ExitCode, Failure> {
    let page = sfn
        .list_executions()
        .state_machine_arn(machine)
        .max_results(RECENT_EXECUTIONS)
        .send()
        .await
        .map_err(|e| aws_failure("ListExecutions", e))?;
    for execution in page.executions() {
        let described = sfn.describe_execution().execution_arn(execution.execution_arn()).send().await.ok();
        let input = described
            .as_ref()
            .and_then(|d| d.input())
            .and_then(|i| serde_json::from_str::<Value>(i).ok())
            .unwrap_or(Value::Null);
        let summary = ExecutionSummary {
            execution_arn: execution.execution_arn().to_string(),
            name: execution.name().to_string(),
            status: execution.status().as_str().to_string(),
            started_at: to_utc(execution.start_date()),
            stopped_at: execution.stop_date().and_then(to_utc),
            snapshot_id: trigger_snapshot_id(&input),
        };
        if json {
            println!("{}", serde_json::to_string(&summary).expect("summaries serialize"));
        } else {
            println!(
                "{:<10} {}  {:<24} {}",
                summary.status,
                summary.started_at.map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string()).unwrap_or_default(),
                summary.snapshot_id.as_deref().unwrap_or("-"),
                summary.execution_arn
            );
        }
    }
    Ok(ExitCode::Success)
}

async fn history(sfn: &aws_sdk_sfn::Client, arn: &str) -> Result<Vec<HistoryItem>, Failure> {
    let mut pages = sfn.get_execution_history().execution_arn(arn).into_paginator().send();
    let mut items = Vec::new();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| aws_failure(&format!("GetExecutionHistory {arn}"), e))?;
        items.extend(page.events().iter().map(history_item));
    }
    Ok(items)
}

async fn describe(sfn: &aws_sdk_sfn::Client, arn: &str) -> Result<ExecutionReport, Failure> {
    let described = sfn.describe_execution().execution_arn(arn).send().await.map_err(|e| {
        let not_found = e.as_service_error().is_some_and(|s| s.is_execution_does_not_exist());
        if not_found {
            Failure::usage(format!("no execution {arn}"))
        } else {
            aws_failure(&format!("DescribeExecution {arn}"), e)
        }
    })?;
    let input = described.input().and_then(|i| serde_json::from_str::<Value>(i).ok()).unwrap_or(Value::Null);
    Ok(ExecutionReport {
        execution_arn: arn.to_string(),
        state_machine_arn: described.state_machine_arn().to_string(),
        status: described.status().as_str().to_string(),
        started_at: to_utc(described.start_date()),
        stopped_at: described.stop_date().and_then(to_utc),
        snapshot_id: trigger_snapshot_id(&input),
        error: described.error().map(str::to_string),
        cause: described.cause().map(str::to_string),
        output: described.output().and_then(|o| serde_json::from_str(o).ok()),
        steps: steps(&history(sfn, arn).await?),
    })
}

/// Polls the execution until it ends, printing each step as it starts and ends (text for
/// people, or JSON Lines of [`Step`]).
async fn follow(
    sfn: &aws_sdk_sfn::Client,
    arn: &str,
    text: bool,
    json_lines: bool,
) -> Result<ExecutionReport, Failure> {
    let mut shown: BTreeMap<usize, StepStatus> = BTreeMap::new();
    loop {
        let report = describe(sfn, arn).await?;
        for (i, step) in report.steps.iter().enumerate() {
            if shown.get(&i) == Some(&step.status) {
                continue;
            }
            shown.insert(i, step.status);
            if json_lines {
                println!("{}", serde_json::to_string(step).expect("steps serialize"));
            } else if text {
                println!("{}", step_line(step));
            }
        }
        if report.status != "RUNNING" {
            return Ok(report);
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// `  03:00:01  ▶ ArchiveJob` while running; `  03:00:04  ✔ ArchiveJob  3.2 s` when done.
fn step_line(step: &Step) -> String {
    let time = step.entered_at.format("%H:%M:%S");
    let took = step
        .exited_at
        .map(|end| format!("{:.1} s", (end - step.entered_at).num_milliseconds() as f64 / 1000.0))
        .unwrap_or_default();
    let retries = match step.retries {
        0 => String::new(),
        n => format!(
            "  ({n} {} after {})",
            if n == 1 { "retry" } else { "retries" },
            step.error.as_deref().unwrap_or("errors")
        ),
    };
    match step.status {
        StepStatus::Running => format!("  {time}  ▶ {}", step.name),
        StepStatus::Succeeded => format!("  {time}  ✔ {:<26} {took:>8}{retries}", step.name),
        StepStatus::Failed => format!(
            "  {time}  ✘ {:<26} {took:>8}  {}: {}",
            step.name,
            step.error.as_deref().unwrap_or("failed"),
            one_line(step.cause.as_deref().unwrap_or(""))
        ),
    }
}

fn one_line(text: &str) -> String {
    let flat = text.replace('\n', " ");
    if flat.chars().count() > 160 {
        format!("{}…", flat.chars().take(160).collect::<String>())
    } else {
        flat
    }
}

fn print_report_footer(report: &ExecutionReport) {
    let took = match (report.started_at, report.stopped_at) {
        (Some(a), Some(b)) => format!(" in {:.1} s", (b - a).num_milliseconds() as f64 / 1000.0),
        _ => String::new(),
    };
    println!("execution {}{took}", report.status);
    if let Some(output) = &report.output {
        if let Some(location) = output.pointer("/verification/location").and_then(Value::as_str) {
            println!("archive: {location}");
        }
        match output.get("outcome").and_then(Value::as_str) {
            Some("skipped") => println!("skipped: {}", output["message"].as_str().unwrap_or("")),
            _ if output.get("duplicate").is_some() => {
                println!("duplicate: {}", output.pointer("/duplicate/Cause").and_then(Value::as_str).unwrap_or(""))
            }
            _ => {}
        }
    }
    if let Some(error) = &report.error {
        println!("error: {error}: {}", one_line(report.cause.as_deref().unwrap_or("")));
    }
}

fn print_json<T: Serialize>(value: &T) {
    println!("{}", serde_json::to_string_pretty(value).expect("reports serialize"));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(kind: &str, second: u32, state: Option<&str>, error: Option<&str>) -> HistoryItem {
        HistoryItem {
            kind: kind.into(),
            time: format!("2025-03-04T03:00:{second:02}Z").parse().unwrap(),
            state: state.map(str::to_string),
            error: error.map(str::to_string),
            cause: error.map(|e| format!("because {e}")),
        }
    }

    #[test]
    fn steps_follow_states_retries_and_catches() {
        let history = vec![
            item("ExecutionStarted", 0, None, None),
            item("TaskStateEntered", 0, Some("Plan"), None),
            item("LambdaFunctionScheduled", 0, None, None),
            item("LambdaFunctionSucceeded", 1, None, None),
            item("TaskStateExited", 1, Some("Plan"), None),
            item("TaskStateEntered", 1, Some("CheckVolume"), None),
            item("LambdaFunctionScheduled", 1, None, None),
            item("LambdaFunctionFailed", 2, None, Some("VolumeNotReady")),
            item("LambdaFunctionScheduled", 3, None, None),
            item("LambdaFunctionSucceeded", 4, None, None),
            item("TaskStateExited", 4, Some("CheckVolume"), None),
            item("TaskStateEntered", 4, Some("ArchiveJob"), None),
            item("TaskSubmitted", 4, None, None),
            item("TaskFailed", 9, None, Some("States.TaskFailed")),
            item("PassStateEntered", 9, Some("JobFailed"), None),
            item("PassStateExited", 9, Some("JobFailed"), None),
            item("FailStateEntered", 10, Some("Failed"), None),
            item("ExecutionFailed", 10, None, Some("JobFailed")),
        ];
        let steps = steps(&history);
        let summary: Vec<(&str, StepStatus, u32)> =
            steps.iter().map(|s| (s.name.as_str(), s.status, s.retries)).collect();
        assert_eq!(
            summary,
            [
                ("Plan", StepStatus::Succeeded, 0),
                ("CheckVolume", StepStatus::Succeeded, 1),
                ("ArchiveJob", StepStatus::Failed, 0),
                ("JobFailed", StepStatus::Succeeded, 0),
                ("Failed", StepStatus::Failed, 0),
            ]
        );
        assert_eq!(steps[1].error.as_deref(), Some("VolumeNotReady"));
        assert_eq!(steps[2].error.as_deref(), Some("States.TaskFailed"));
        assert!(step_line(&steps[1]).contains("1 retry after VolumeNotReady"), "{}", step_line(&steps[1]));
    }

    #[test]
    fn a_caught_failure_with_an_exit_event_is_still_a_failure() {
        let history = vec![
            item("TaskStateEntered", 0, Some("Verify"), None),
            item("LambdaFunctionScheduled", 0, None, None),
            item("LambdaFunctionFailed", 1, None, Some("ArchiveIncomplete")),
            item("TaskStateExited", 1, Some("Verify"), None),
            item("TaskStateEntered", 1, Some("Cleanup"), None),
        ];
        let steps = steps(&history);
        assert_eq!(steps[0].status, StepStatus::Failed);
        assert_eq!(steps[1].status, StepStatus::Running);
    }
}
