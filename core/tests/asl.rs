//! The state machines under `state-machines/` against the core crate: every `ErrorEquals` name is
//! one of [`errors`]'s (or Step Functions', Lambda's, Batch's), every JSONPath resolves in the
//! execution's document as core serializes it ([`FlowDocument`] with each flow's steps), every Lambda's `Parameters`
//! build exactly its input
//! type, and the graph has no loop, no dead end, no Task without a catch-all and no Retry without a
//! bound. Every `*.asl.json` is checked; a new flow needs its document in [`flows`]. Every flow
//! plans, routes, hands off and fails with the EBS flow's states ([`SHARED_STATES`]). A renamed
//! field or error name fails here, not in an execution.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use archiver_core::archive_job::{ArchiveJob, JobResult, Verification, VerifyInput};
use archiver_core::document::{
    DeleteRecoveryPointInput, FlowDocument, Handoff, NotificationReport, NotifyInput, RecoveryPointDeletion, StateError,
};
use archiver_core::errors;
use archiver_core::event::TriggerEvent;
use archiver_core::flows::dynamodb::{
    CheckTableExportInput, DeleteTableInput, DeletedTables, DynamodbExportSteps, ExportResult, ExportSource,
    ExportTableInput, PrepareTableInput, StartTableExportInput, TableExport, TableSource,
};
use archiver_core::flows::ebs::{
    CheckVolumeInput, ClaimSnapshotInput, CreateVolumeInput, CreatedVolume, DeleteVolumeInput, DeletedVolumes,
    DirectRead, EbsArchiveSteps, DIRECT_JOB_PARAMETERS, JOB_PARAMETERS,
};
use archiver_core::flows::rds_dump::{
    CheckDatabaseInput, DatabaseEndpoint, DatabaseNames, DatabaseShape, DeleteDatabaseInput, DeletedDatabase,
    RdsDumpSteps, RestoreDatabaseInput, TemporaryDatabase, DUMP_JOB_PARAMETERS,
};
use archiver_core::flows::rds_export::{
    CheckExportInput, ExportedFiles, RdsExportSteps, StartExportInput, StartedExport,
};
use archiver_core::flows::restore_drill::{
    plan_drill, DrillCandidate, DrillConfig, DrillOutcome, DrillPlan, DrillReportInput, DrillReportOutput,
    DrillTrigger, PickDrillInput, DRILL_JOB_PARAMETERS,
};
use archiver_core::flows::Flow;
use archiver_core::request::{
    plan_archive, ArchiveRequest, PlanConfig, PlanOutcome, ReadPath, SkipReason, SnapshotFacts,
};
use archiver_core::s3_location::S3Location;
use serde_json::{json, Value};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn load(relative: &str) -> Value {
    let path = repo().join(relative);
    serde_json::from_slice(&std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// One state machine: its ASL, the document its states read (every field present), and the
/// value of `$.flow` that its `Route` keeps.
struct FlowFile {
    stem: String,
    asl: Value,
    document: Value,
    flow: Flow,
}

/// Every `state-machines/*.asl.json` with its document; a file without one fails here.
fn flows() -> Vec<FlowFile> {
    let mut flows = Vec::new();
    for entry in std::fs::read_dir(repo().join("state-machines")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        let Some(stem) = name.strip_suffix(".asl.json") else { continue };
        let (document, flow) = match stem {
            "ebs-archive" => (full_state(), Flow::EbsArchive),
            "rds-export" => (full_export_state(), Flow::RdsExport),
            "rds-dump" => (dump_state(), Flow::RdsDump),
            "dynamodb-export" => (dynamodb_full_state(), Flow::DynamodbExport),
            // Not an archive flow (no plan, no snapshot): checked by the restore_drill tests below.
            "restore-drill" => continue,
            other => panic!("{other}.asl.json: no document for it in core/tests/asl.rs::flows"),
        };
        assert_eq!(flow.state_machine(), stem, "the file is named after its flow");
        flows.push(FlowFile { asl: load(&format!("state-machines/{name}")), stem: stem.to_string(), document, flow });
    }
    assert!(flows.len() >= 2, "no state machines found");
    flows
}

fn dynamodb_asl() -> Value {
    load("state-machines/dynamodb-export.asl.json")
}

/// The placeholders the ASL may use: what infra's DefinitionSubstitutions and the emulator deploy fill.
const PLACEHOLDERS: &[&str] = &[
    "PlanFunctionArn",
    "CreateVolumeFunctionArn",
    "CheckVolumeFunctionArn",
    "DeleteVolumeFunctionArn",
    "VerifyFunctionArn",
    "DeleteRecoveryPointFunctionArn",
    "NotifyFunctionArn",
    "StartExportFunctionArn",
    "CheckExportFunctionArn",
    "JobDefinitionArn",
    "ClaimSnapshotFunctionArn",
    "DirectJobDefinitionArn",
    "StateMachineArnPrefix",
    "StartTableExportFunctionArn",
    "PrepareTableFunctionArn",
    "ExportTableFunctionArn",
    "CheckTableExportFunctionArn",
    "DeleteTableFunctionArn",
    "RestoreDatabaseFunctionArn",
    "CheckDatabaseFunctionArn",
    "SetDatabasePasswordFunctionArn",
    "DeleteDatabaseFunctionArn",
    "DumpJobDefinitionArn",
];

/// The AWS SDK integration that hands a trigger to another flow's state machine, and what it
/// returns that the ASL may select.
/// <https://docs.aws.amazon.com/step-functions/latest/apireference/API_StartExecution.html>
const HANDOFF_RESOURCE: &str = "arn:aws:states:::aws-sdk:sfn:startExecution";
const START_EXECUTION_FIELDS: &[&str] = &["ExecutionArn", "StartDate"];

/// The cleanup of the RDS export flow: cancel an export the execution gave up on.
const CANCEL_EXPORT_RESOURCE: &str = "arn:aws:states:::aws-sdk:rds:cancelExportTask";

/// What `batch:submitJob.sync` returns (the job's description in Step Functions' casing) that
/// the ASL may select. <https://docs.aws.amazon.com/batch/latest/APIReference/API_JobDetail.html>
const BATCH_JOB_FIELDS: &[&str] = &["JobId", "JobName", "Status", "StatusReason", "JobArn"];

/// A flow's document with every field present: the plan `request`, the flow's `steps` and every
/// field the flows share, checked to round-trip through core's type.
fn full_document<S>(request: ArchiveRequest, steps: S) -> Value
where
    S: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let error = || Some(StateError { error: "JobFailed".into(), cause: Some("{}".into()) });
    let document = FlowDocument {
        outcome: "planned".into(),
        recovery_point_deletion: Some(RecoveryPointDeletion {
            recovery_point_arn: request
                .recovery_point_arn
                .clone()
                .expect("a document that may delete its recovery point"),
            deleted: true,
        }),
        request,
        steps,
        handoff: Some(Handoff { execution_arn: "arn:aws:states:eu-west-1:111122223333:execution:rds-export:k".into() }),
        duplicate: error(),
        notification: Some(NotificationReport::default()),
        error: error(),
        cleanup_error: error(),
        notify_error: error(),
    };
    let value = serde_json::to_value(&document).unwrap();
    assert_eq!(serde_json::from_value::<FlowDocument<S>>(value.clone()).unwrap(), document, "the document round-trips");
    value
}

/// The plan of `event` under a configuration that every flow can plan with (an AZ with its queue,
/// recovery points deleted), at a fixed time.
fn planned(event: &TriggerEvent, facts: &SnapshotFacts, what: &str) -> ArchiveRequest {
    let config: PlanConfig = serde_json::from_value(json!({
        "destination": {"bucket": "example-archive", "prefix": "backups"},
        "availability_zones": ["eu-west-1a"],
        "job_queues": {"eu-west-1a": "arn:aws:batch:eu-west-1:111122223333:job-queue/archive-a"},
        "delete_recovery_point": true
    }))
    .unwrap();
    match plan_archive(event, facts, &config, "2025-03-04T03:00:00Z".parse().unwrap()) {
        Ok(PlanOutcome::Planned(request)) => *request,
        other => panic!("{what}: {other:?}"),
    }
}

/// The execution's document with every field present, built from the core's types.
fn full_state() -> Value {
    let event = TriggerEvent::from_json(include_bytes!("fixtures/eventbridge-backup-job-completed-ebs.json")).unwrap();
    let request = planned(&event, &SnapshotFacts::default(), "the EBS fixture plans");
    let steps = EbsArchiveSteps {
        temporary_volume: Some(CreatedVolume {
            volume_id: "vol-1".into(),
            availability_zone: "eu-west-1a".into(),
            job: ArchiveJob {
                queue: "q".into(),
                name: request.idempotency_key.clone(),
                parameters: JOB_PARAMETERS.iter().map(|p| (p.to_string(), "x".to_string())).collect(),
            },
        }),
        direct_read: Some(DirectRead {
            job: ArchiveJob {
                queue: "q".into(),
                name: request.idempotency_key.clone(),
                parameters: DIRECT_JOB_PARAMETERS.iter().map(|p| (p.to_string(), "x".to_string())).collect(),
            },
        }),
        job: Some(JobResult { job_id: "j".into(), status: "SUCCEEDED".into() }),
        deleted_volumes: Some(DeletedVolumes::default()),
        verification: Some(Verification {
            location: "s3://b/p".into(),
            manifest_key: "p/manifest.json".into(),
            objects: 1,
            total_size: 1,
            checksums_verified: 1,
        }),
    };
    full_document(request, steps)
}

/// The DynamoDB flow's document with every field present, built from the core's types.
fn dynamodb_full_state() -> Value {
    let event = TriggerEvent::from_value(&json!({
        "snapshot": "arn:aws:dynamodb:eu-west-1:111122223333:table/Orders/backup/01568804569000-d3306d76"
    }))
    .unwrap();
    let mut request = planned(&event, &SnapshotFacts::default(), "the DynamoDB backup plans");
    // As from a vault's event: the recovery point and vault the deletion names.
    request.recovery_point_arn = request.snapshot_arn.clone();
    request.vault_name = Some("archive-vault".into());
    let time = "2025-03-04T02:00:00Z".parse().unwrap();
    let steps = DynamodbExportSteps {
        table_source: Some(TableSource {
            source: ExportSource::TemporaryTable,
            table_name: "backup-archiver-t".into(),
            table_arn: "arn:aws:dynamodb:eu-west-1:111122223333:table/backup-archiver-t".into(),
            export_time: Some(time),
            backup_arn: "b".into(),
            backup_created_at: time,
            reason: "r".into(),
            restore_job_id: Some("job-1".into()),
        }),
        table_export: Some(TableExport { export_arn: "e".into(), table_arn: "t".into(), export_time: Some(time) }),
        export_result: Some(ExportResult {
            export_arn: "e".into(),
            location: "s3://b/p".into(),
            manifest_summary_key: "p/AWSDynamoDB/1/manifest-summary.json".into(),
            item_count: 1,
            billed_size_bytes: 1,
            export_time: Some(time),
        }),
        deleted_tables: Some(DeletedTables::default()),
    };
    full_document(request, steps)
}

/// The RDS export flow's document with every field present.
fn full_export_state() -> Value {
    let event = TriggerEvent::from_json(include_bytes!("fixtures/eventbridge-backup-job-completed-rds.json")).unwrap();
    let facts = SnapshotFacts { engine: Some("postgres".into()), ..SnapshotFacts::default() };
    let request = planned(&event, &facts, "the RDS fixture plans an export");
    let steps = RdsExportSteps {
        export: Some(StartedExport {
            export_task_identifier: request.export_task_identifier.clone().unwrap(),
            location: S3Location { bucket: "example-archive".into(), prefix: "backups/x".into() },
            started: true,
        }),
        exported: Some(ExportedFiles {
            location: "s3://b/p/".into(),
            export_info_key: "k".into(),
            objects: 1,
            total_size: 1,
        }),
    };
    full_document(request, steps)
}

/// The dump flow's document with every field present.
fn dump_state() -> Value {
    let event = TriggerEvent::from_json(include_bytes!("fixtures/manual-aurora-snapshot-dump.json")).unwrap();
    let facts = SnapshotFacts { source_resource_id: Some("billing".into()), ..SnapshotFacts::default() };
    let mut request = planned(&event, &facts, "the Aurora dump fixture plans");
    // A manual snapshot has no recovery point; the document may still carry one (a backup job's).
    request.recovery_point_arn =
        Some("arn:aws:rds:eu-west-1:111122223333:cluster-snapshot:awsbackup:job-1".parse().unwrap());
    request.vault_name = Some("archive-vault".into());
    let job = ArchiveJob {
        queue: "q".into(),
        name: request.idempotency_key.clone(),
        parameters: DUMP_JOB_PARAMETERS.iter().map(|p| (p.to_string(), "x".to_string())).collect(),
    };
    let steps = RdsDumpSteps {
        temporary_database: Some(TemporaryDatabase {
            names: DatabaseNames {
                shape: DatabaseShape::Cluster,
                instance_identifier: "ba-x-1".into(),
                cluster_identifier: Some("ba-x".into()),
                password_parameter: "/backup-archiver/k/e/master-password".into(),
            },
            engine: "aurora-postgresql".into(),
            instance_class: "db.t4g.medium".into(),
            master_username: "postgres".into(),
            job: job.clone(),
        }),
        database_endpoint: Some(DatabaseEndpoint {
            address: "ba-x.cluster-1.eu-west-1.rds.amazonaws.com".into(),
            port: 5432,
            job,
        }),
        job: Some(JobResult { job_id: "j".into(), status: "SUCCEEDED".into() }),
        deleted_database: Some(DeletedDatabase::default()),
        verification: Some(Verification {
            location: "s3://b/p".into(),
            manifest_key: "p/manifest.json".into(),
            objects: 1,
            total_size: 1,
            checksums_verified: 1,
        }),
    };
    full_document(request, steps)
}

/// The document after a Plan that skipped: the skip's fields, and what the failure path adds.
fn skipped_state(full: &Value) -> Value {
    let mut skipped =
        serde_json::to_value(PlanOutcome::skipped(SkipReason::UnsupportedResourceType { resource_type: "EFS".into() }))
            .unwrap();
    for field in
        ["deleted_volumes", "deleted_tables", "deleted_database", "notification", "cleanup_error", "notify_error"]
    {
        if let Some(value) = full.get(field) {
            skipped[field] = value.clone();
        }
    }
    skipped
}

/// The most time a Retry rule can wait in all: its MaxAttempts intervals, each the previous one
/// times BackoffRate, capped at MaxDelaySeconds (before jitter, which only shortens them).
fn retry_budget_seconds(rule: &Value) -> f64 {
    let attempts = rule["MaxAttempts"].as_u64().unwrap_or(3);
    let mut interval = rule["IntervalSeconds"].as_f64().unwrap_or(1.0);
    let backoff = rule["BackoffRate"].as_f64().unwrap_or(2.0);
    let cap = rule["MaxDelaySeconds"].as_f64().unwrap_or(f64::INFINITY);
    let mut total = 0.0;
    for _ in 0..attempts {
        total += interval.min(cap);
        interval *= backoff;
    }
    total
}

/// The longest any Retry may wait in all: an RDS export of a large database takes hours, and the
/// export flow polls it for about a day; anything longer is a loop that counts nothing.
const MAX_RETRY_BUDGET_SECONDS: f64 = 25.0 * 3600.0;

/// The states that read the skipped document rather than a plan.
const SKIP_STATES: &[&str] = &["Unarchivable"];

/// Every Choice rule's `Variable`, within `And`/`Or`/`Not` too.
fn choice_variables(rule: &Value) -> Vec<&str> {
    let nested = ["And", "Or"].iter().flat_map(|k| rule[*k].as_array().into_iter().flatten()).chain(rule.get("Not"));
    rule["Variable"].as_str().into_iter().chain(nested.flat_map(choice_variables)).collect()
}

/// The context object (`$$`) as far as the ASL reads it.
fn context() -> Value {
    json!({
        "Execution": {"Id": "arn:aws:states:eu-west-1:111122223333:execution:ebs-archive:e1", "Name": "e1",
                      "StartTime": "2025-03-04T03:00:00.000Z",
                      "Input": serde_json::from_slice::<Value>(include_bytes!("fixtures/eventbridge-backup-job-completed-ebs.json")).unwrap()},
        "State": {"Name": "S", "EnteredTime": "2025-03-04T03:00:01.000Z", "RetryCount": 0}
    })
}

/// Resolves a definite JSONPath (`$`, `$.a.b`, `$$.Execution.Id`), the only kind the ASL uses.
fn resolve(path: &str, document: &Value, context: &Value) -> Result<Value, String> {
    let (mut node, rest) = if let Some(rest) = path.strip_prefix("$$") {
        (context, rest)
    } else if let Some(rest) = path.strip_prefix('$') {
        (document, rest)
    } else {
        return Err(format!("{path:?} is not a JSONPath"));
    };
    for segment in rest.split('.').skip(1) {
        if segment.is_empty() || segment.contains(['[', '*']) {
            return Err(format!("{path:?}: only definite paths of names are used here"));
        }
        node = node.get(segment).ok_or_else(|| format!("{path:?}: no field {segment:?}"))?;
    }
    Ok(node.clone())
}

/// The paths an intrinsic function's arguments name: `States.Format('{}', $.a)` gives `$.a`.
fn intrinsic_paths(expression: &str) -> Vec<String> {
    expression.split(['(', ',', ')']).map(str::trim).filter(|arg| arg.starts_with('$')).map(str::to_string).collect()
}

/// Evaluates a `Parameters`/`ResultSelector` template the way Step Functions does.
fn evaluate(template: &Value, document: &Value, context: &Value) -> Result<Value, String> {
    match template {
        Value::Object(map) => {
            let mut out = serde_json::Map::new();
            for (key, value) in map {
                match key.strip_suffix(".$") {
                    Some(name) => {
                        let expression = value.as_str().ok_or(format!("{key}: a path must be a string"))?;
                        let resolved = if expression.starts_with("States.") {
                            for path in intrinsic_paths(expression) {
                                resolve(&path, document, context)?;
                            }
                            Value::String("<intrinsic>".into())
                        } else {
                            resolve(expression, document, context)?
                        };
                        out.insert(name.to_string(), resolved);
                    }
                    None => {
                        out.insert(key.clone(), evaluate(value, document, context)?);
                    }
                }
            }
            Ok(Value::Object(out))
        }
        other => Ok(other.clone()),
    }
}

fn states(asl: &Value) -> &serde_json::Map<String, Value> {
    asl["States"].as_object().expect("States is an object")
}

fn placeholder_of(resource: &str) -> Option<&str> {
    resource.strip_prefix("${").and_then(|r| r.strip_suffix('}'))
}

/// Deserializes `input` into `T` and checks that the Parameters named exactly `T`'s fields.
fn check_input<T: serde::de::DeserializeOwned + serde::Serialize>(state: &str, input: &Value) {
    let typed: T = serde_json::from_value(input.clone())
        .unwrap_or_else(|e| panic!("{state}: Parameters do not build {}: {e}\n{input:#}", std::any::type_name::<T>()));
    let names = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<BTreeSet<_>>();
    assert_eq!(
        names(input),
        names(&serde_json::to_value(typed).unwrap()),
        "{state}: Parameters must name exactly the fields of {}",
        std::any::type_name::<T>()
    );
}

#[test]
fn every_error_name_is_known_to_core() {
    for flow in flows() {
        let (asl, path) = (&flow.asl, &flow.stem);
        let mut checked = 0;
        for (name, state) in states(asl) {
            for clause in ["Retry", "Catch"] {
                for rule in state[clause].as_array().into_iter().flatten() {
                    for error in rule["ErrorEquals"].as_array().expect("ErrorEquals is a list") {
                        let error = error.as_str().unwrap();
                        assert!(errors::is_known(error), "{path}: {name}: unknown error name {error:?}");
                        checked += 1;
                    }
                }
            }
        }
        assert!(checked > 0, "{path}: no ErrorEquals at all?");
    }
}

#[test]
fn retried_names_are_retryable_and_verdicts_are_never_retried() {
    for flow in flows() {
        for (name, state) in states(&flow.asl) {
            for rule in state["Retry"].as_array().into_iter().flatten() {
                for error in rule["ErrorEquals"].as_array().unwrap() {
                    let error = error.as_str().unwrap();
                    let ours = errors::ALL.iter().any(|e| e.name == error);
                    assert!(!ours || errors::is_retryable(error), "{}: {name}: retries {error}, a verdict", flow.stem);
                    assert_ne!(error, "States.ALL", "{}: {name}: retrying everything would retry verdicts", flow.stem);
                }
            }
        }
    }
}

#[test]
fn every_json_path_resolves_in_the_documents_core_defines() {
    for flow in flows() {
        json_paths_resolve(&flow);
    }
}

fn json_paths_resolve(flow: &FlowFile) {
    let (planned, skipped) = (&flow.document, skipped_state(&flow.document));
    let context = context();
    for (name, state) in states(&flow.asl) {
        let document = if SKIP_STATES.contains(&name.as_str()) { &skipped } else { planned };
        let at = |what: &str| format!("{}: {name}.{what}", flow.stem);
        for key in ["InputPath", "OutputPath"] {
            if let Some(path) = state[key].as_str() {
                resolve(path, document, &context).unwrap_or_else(|e| panic!("{}: {e}", at(key)));
            }
        }
        for choice in state["Choices"].as_array().into_iter().flatten() {
            let paths = choice_variables(choice);
            assert!(!paths.is_empty(), "{}: a rule without a Variable", at("Choices"));
            for path in paths {
                // A skip's fields exist on the skipped document only.
                resolve(path, document, &context)
                    .or_else(|_| resolve(path, &skipped, &context))
                    .unwrap_or_else(|e| panic!("{}: {e}", at("Variable")));
            }
        }
        for key in ["ErrorPath", "CausePath"] {
            if let Some(expression) = state[key].as_str() {
                let paths = if expression.starts_with("States.") {
                    intrinsic_paths(expression)
                } else {
                    vec![expression.into()]
                };
                for path in paths {
                    resolve(&path, document, &context).unwrap_or_else(|e| panic!("{}: {e}", at(key)));
                }
            }
        }
        // Where a state writes must be a field of the document (or nothing at all).
        let mut result_paths: Vec<&Value> = vec![&state["ResultPath"]];
        result_paths.extend(state["Catch"].as_array().into_iter().flatten().map(|c| &c["ResultPath"]));
        for result_path in result_paths {
            match result_path {
                Value::Null => {}
                Value::String(path) if path == "$" => {}
                Value::String(path) => {
                    resolve(path, document, &context).unwrap_or_else(|e| panic!("{}: {e}", at("ResultPath")));
                }
                other => panic!("{}: {other}", at("ResultPath")),
            }
        }
        if let Some(parameters) = state.get("Parameters") {
            let input =
                evaluate(parameters, document, &context).unwrap_or_else(|e| panic!("{}: {e}", at("Parameters")));
            let resource = state["Resource"].as_str().unwrap_or("");
            match placeholder_of(resource) {
                Some("CreateVolumeFunctionArn") => check_input::<CreateVolumeInput>(name, &input),
                Some("ClaimSnapshotFunctionArn") => check_input::<ClaimSnapshotInput>(name, &input),
                Some("CheckVolumeFunctionArn") => check_input::<CheckVolumeInput>(name, &input),
                Some("DeleteVolumeFunctionArn") => check_input::<DeleteVolumeInput>(name, &input),
                Some("VerifyFunctionArn") => check_input::<VerifyInput>(name, &input),
                Some("DeleteRecoveryPointFunctionArn") => check_input::<DeleteRecoveryPointInput>(name, &input),
                Some("NotifyFunctionArn") => check_input::<NotifyInput>(name, &input),
                Some("StartTableExportFunctionArn") => check_input::<StartTableExportInput>(name, &input),
                Some("PrepareTableFunctionArn") => check_input::<PrepareTableInput>(name, &input),
                Some("ExportTableFunctionArn") => check_input::<ExportTableInput>(name, &input),
                Some("CheckTableExportFunctionArn") => check_input::<CheckTableExportInput>(name, &input),
                Some("DeleteTableFunctionArn") => check_input::<DeleteTableInput>(name, &input),
                Some("StartExportFunctionArn") => check_input::<StartExportInput>(name, &input),
                Some("CheckExportFunctionArn") => check_input::<CheckExportInput>(name, &input),
                Some("RestoreDatabaseFunctionArn") => check_input::<RestoreDatabaseInput>(name, &input),
                Some("CheckDatabaseFunctionArn" | "SetDatabasePasswordFunctionArn") => {
                    check_input::<CheckDatabaseInput>(name, &input)
                }
                Some("DeleteDatabaseFunctionArn") => check_input::<DeleteDatabaseInput>(name, &input),
                Some(other) => panic!("{name}: Parameters for {other}, which takes the raw event"),
                None if resource == "arn:aws:states:::batch:submitJob.sync" => {
                    let parameters = input["Parameters"].as_object().expect("the job's parameters are an object");
                    let names: BTreeSet<&str> = parameters.keys().map(String::as_str).collect();
                    let expected = match (flow.flow, input["JobDefinition"].as_str()) {
                        (Flow::RdsDump, _) => DUMP_JOB_PARAMETERS,
                        (_, Some("${DirectJobDefinitionArn}")) => DIRECT_JOB_PARAMETERS,
                        _ => JOB_PARAMETERS,
                    };
                    assert_eq!(names, expected.iter().copied().collect(), "{}: job parameters", at("Parameters"));
                    assert!(input["JobName"].is_string() && input["JobQueue"].is_string(), "{name}: {input}");
                }
                // <https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_CancelExportTask.html>
                None if resource == CANCEL_EXPORT_RESOURCE => {
                    let names: BTreeSet<&str> = input.as_object().unwrap().keys().map(String::as_str).collect();
                    assert_eq!(names, BTreeSet::from(["ExportTaskIdentifier"]), "{name}: {input}");
                    assert!(input["ExportTaskIdentifier"].is_string(), "{name}: {input}");
                }
                None if resource == HANDOFF_RESOURCE => {
                    for field in ["StateMachineArn", "Name", "Input"] {
                        assert!(input[field].is_string(), "{name}: {field} in {input}");
                    }
                }
                None if state["Type"] == "Pass" => {
                    serde_json::from_value::<StateError>(input.clone())
                        .unwrap_or_else(|e| panic!("{name}: a Pass here builds a StateError: {e}"));
                }
                None => panic!("{name}: Parameters for an unexpected resource {resource:?}"),
            }
        }
        if let Some(selector) = state.get("ResultSelector") {
            let answer = |fields: &[&str]| -> Value {
                fields.iter().map(|f| (f.to_string(), json!("x"))).collect::<serde_json::Map<_, _>>().into()
            };
            match state["Resource"].as_str() {
                Some("arn:aws:states:::batch:submitJob.sync") => {
                    let selected = evaluate(selector, &answer(BATCH_JOB_FIELDS), &context)
                        .unwrap_or_else(|e| panic!("{}: {e}", at("ResultSelector")));
                    serde_json::from_value::<JobResult>(selected).unwrap_or_else(|e| panic!("{name}: JobResult: {e}"));
                }
                Some(HANDOFF_RESOURCE) => {
                    let selected = evaluate(selector, &answer(START_EXECUTION_FIELDS), &context)
                        .unwrap_or_else(|e| panic!("{}: {e}", at("ResultSelector")));
                    serde_json::from_value::<Handoff>(selected).unwrap_or_else(|e| panic!("{name}: Handoff: {e}"));
                }
                other => panic!("{name}: ResultSelector on an unexpected resource {other:?}"),
            }
        }
    }
}

#[test]
fn choices_compare_with_the_values_core_serializes() {
    for flow in flows() {
        route_compares_with_core(&flow);
    }
}

fn route_compares_with_core(flow: &FlowFile) {
    let route = &states(&flow.asl)["Route"];
    let unsupported =
        serde_json::to_value(PlanOutcome::skipped(SkipReason::UnsupportedResourceType { resource_type: "EFS".into() }))
            .unwrap();
    let quiet =
        serde_json::to_value(PlanOutcome::skipped(SkipReason::VaultNotAllowed { vault_name: "v".into() })).unwrap();
    let [attention, skip, own_flow] = route["Choices"].as_array().unwrap().as_slice() else {
        panic!("Route has three rules: {route}")
    };
    assert_eq!(attention["And"][0], json!({"Variable": "$.outcome", "StringEquals": unsupported["outcome"]}));
    assert_eq!(attention["And"][1], json!({"Variable": "$.attention", "BooleanEquals": unsupported["attention"]}));
    assert_eq!(attention["Next"], "Unarchivable");
    assert_eq!(quiet["attention"], false, "a quiet skip does not match the first rule");
    assert_eq!(skip["Variable"], "$.outcome");
    assert_eq!(skip["StringEquals"], quiet["outcome"]);
    assert_eq!(skip["Next"], "Skipped");
    assert_eq!(own_flow["Variable"], "$.flow");
    assert_eq!(own_flow["StringEquals"], serde_json::to_value(flow.flow).unwrap(), "{}", flow.stem);
    assert_eq!(route["Default"], "Handoff", "another flow's plan is handed over");
}

#[test]
fn the_ebs_flow_chooses_its_read_path_with_the_values_core_serializes() {
    let asl = load("state-machines/ebs-archive.asl.json");
    let choose = &states(&asl)["ChooseReadPath"];
    let [direct] = choose["Choices"].as_array().unwrap().as_slice() else { panic!("one rule: {choose}") };
    assert_eq!(direct["Variable"], "$.read_path");
    assert_eq!(direct["StringEquals"], serde_json::to_value(ReadPath::Direct).unwrap());
    assert_eq!(direct["Next"], "ClaimSnapshot");
    assert_eq!(choose["Default"], "CreateVolume", "the volume path, also for a plan without read_path");
    assert_eq!(states(&asl)["ClaimSnapshot"]["Next"], "DirectArchiveJob");
    assert_eq!(states(&asl)["DirectArchiveJob"]["Next"], "Verify", "no volume to delete");
}

#[test]
fn plan_output_is_the_document_later_states_read() {
    // Plan replaces the document with its output: the rest of the ASL reads it at the top level.
    for flow in flows() {
        assert_eq!(flow.asl["StartAt"], "Plan", "{}", flow.stem);
        let plan = &states(&flow.asl)["Plan"];
        assert!(plan.get("Parameters").is_none() && plan.get("ResultPath").is_none(), "{}: {plan}", flow.stem);
        assert_eq!(placeholder_of(plan["Resource"].as_str().unwrap()), Some("PlanFunctionArn"));
    }
}

#[test]
fn placeholders_are_the_documented_ones() {
    let known: BTreeSet<String> = PLACEHOLDERS.iter().map(|p| p.to_string()).collect();
    let mut used = BTreeSet::new();
    for flow in flows() {
        let text = serde_json::to_string(&flow.asl).unwrap();
        for piece in text.split("${").skip(1) {
            let placeholder = piece.split('}').next().unwrap().to_string();
            assert!(known.contains(&placeholder), "{}: unknown placeholder ${{{placeholder}}}", flow.stem);
            used.insert(placeholder);
        }
    }
    assert_eq!(used, known, "every documented placeholder is used by some flow");
}

/// Every state a state can go to next, with why.
fn transitions(state: &Value) -> Vec<String> {
    let mut next: Vec<String> = Vec::new();
    for key in ["Next", "Default"] {
        if let Some(n) = state[key].as_str() {
            next.push(n.into());
        }
    }
    for list in ["Choices", "Catch"] {
        for item in state[list].as_array().into_iter().flatten() {
            next.push(item["Next"].as_str().expect("a choice or catch names its Next").into());
        }
    }
    next
}

#[test]
fn graph_has_no_loop_no_dead_end_and_no_unreachable_state() {
    for flow in flows() {
        graph_is_a_bounded_tree(&flow.asl);
    }
}

fn graph_is_a_bounded_tree(asl: &Value) {
    let all = states(asl);
    let graph: BTreeMap<&str, Vec<String>> = all.iter().map(|(name, s)| (name.as_str(), transitions(s))).collect();
    for (name, next) in &graph {
        for target in next {
            assert!(all.contains_key(target), "{name} goes to a missing state {target}");
        }
        let terminal = matches!(all[*name]["Type"].as_str(), Some("Succeed" | "Fail")) || all[*name]["End"] == true;
        assert!(terminal || !next.is_empty(), "{name} is a dead end");
    }
    // Depth-first search from StartAt: every state reached, none on its own path (no cycle, so
    // no loop can run unbounded; waiting is done by Retry, which is bounded below).
    fn visit<'a>(
        name: &'a str,
        graph: &'a BTreeMap<&str, Vec<String>>,
        path: &mut Vec<&'a str>,
        seen: &mut BTreeSet<&'a str>,
    ) {
        assert!(!path.contains(&name), "loop: {} -> {name}", path.join(" -> "));
        if !seen.insert(name) {
            return;
        }
        path.push(name);
        for next in &graph[name] {
            visit(next, graph, path, seen);
        }
        path.pop();
    }
    let mut seen = BTreeSet::new();
    visit(asl["StartAt"].as_str().unwrap(), &graph, &mut Vec::new(), &mut seen);
    let unreachable: Vec<_> = graph.keys().filter(|s| !seen.contains(*s)).collect();
    assert!(unreachable.is_empty(), "unreachable: {unreachable:?}");
}

/// Whether one of the state's `Catch` rules takes `States.ALL`.
fn catches_all(state: &Value) -> bool {
    state["Catch"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["ErrorEquals"].as_array().unwrap().iter().any(|e| e == "States.ALL"))
}

#[test]
fn every_task_catches_everything_and_every_retry_is_bounded() {
    for flow in flows() {
        for (name, state) in states(&flow.asl) {
            if state["Type"] != "Task" {
                continue;
            }
            assert!(
                catches_all(state),
                "{}: {name} has no catch-all: an error would end the execution without cleanup",
                flow.stem
            );
            for rule in state["Retry"].as_array().into_iter().flatten() {
                assert!(rule["MaxAttempts"].as_u64().is_some(), "{}: {name}: MaxAttempts must be explicit", flow.stem);
                let budget = retry_budget_seconds(rule);
                assert!(budget <= MAX_RETRY_BUDGET_SECONDS, "{}: {name}: a Retry may wait {budget} s", flow.stem);
            }
        }
    }
}

#[test]
fn export_polling_waits_about_a_day_and_the_quota_most_of_one() {
    // RDS exports of large databases take hours; five may run per account at once.
    let asl = load("state-machines/rds-export.asl.json");
    let rule = |state: &str, error: &str| {
        states(&asl)[state]["Retry"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["ErrorEquals"].as_array().unwrap().iter().any(|e| e == error))
            .unwrap_or_else(|| panic!("{state} does not retry {error}"))
            .clone()
    };
    let polling = retry_budget_seconds(&rule("CheckExport", errors::EXPORT_IN_PROGRESS));
    assert!((22.0 * 3600.0..=MAX_RETRY_BUDGET_SECONDS).contains(&polling), "CheckExport polls for {polling} s");
    let quota = retry_budget_seconds(&rule("StartExport", errors::EXPORT_QUOTA_EXCEEDED));
    assert!((12.0 * 3600.0..=MAX_RETRY_BUDGET_SECONDS).contains(&quota), "StartExport waits for a slot {quota} s");
}

#[test]
fn every_failure_reaches_the_cleanup_before_failing() {
    // The one failure path: every catch-all goes to Cleanup (the EBS flow's volume deletion, the
    // export flow's cancellation), and the only Fail states come after NotifyFailure.
    for flow in flows() {
        let all = states(&flow.asl);
        for (name, state) in all {
            for catch in state["Catch"].as_array().into_iter().flatten() {
                let target = catch["Next"].as_str().unwrap();
                let allowed: &[&str] = match name.as_str() {
                    "Cleanup" | "CancelExport" => &["NotifyFailure"],
                    "NotifyFailure" => &["FailureRoute"],
                    "NotifySuccess" => &["Archived", "Exported"],
                    "Handoff" => &["AlreadyHandedOff", "Cleanup"],
                    "ArchiveJob" | "DirectArchiveJob" | "DumpJob" => &["JobFailed", "Cleanup"],
                    _ => &["Cleanup"],
                };
                assert!(allowed.contains(&target), "{}: {name} catches into {target}", flow.stem);
            }
            if state["Type"] == "Fail" {
                let from: Vec<&String> =
                    all.iter().filter(|(_, s)| transitions(s).contains(name)).map(|(n, _)| n).collect();
                assert_eq!(from, ["FailureRoute"], "{}: {name} is reached only after NotifyFailure", flow.stem);
            }
        }
        for pass in ["Unarchivable", "AlreadyHandedOff"] {
            assert_eq!(all[pass]["Next"], "Cleanup", "{}: {pass}", flow.stem);
        }
    }
    for stem in ["ebs-archive", "rds-dump"] {
        assert_eq!(states(&load(&format!("state-machines/{stem}.asl.json")))["JobFailed"]["Next"], "Cleanup", "{stem}");
    }
}

/// The states every flow shares with the EBS flow, word for word: how a trigger is planned,
/// routed, skipped or handed off, and how a failure ends (after each flow's own cleanup).
const SHARED_STATES: &[&str] = &[
    "Plan",
    "Unarchivable",
    "Skipped",
    "Handoff",
    "AlreadyHandedOff",
    "HandedOff",
    "NotifyFailure",
    "FailureRoute",
    "Failed",
    "FailedInStepFunctions",
];

#[test]
fn every_flow_starts_and_fails_like_the_ebs_flow() {
    let ebs = load("state-machines/ebs-archive.asl.json");
    for flow in flows() {
        let asl = flow.asl;
        assert_eq!(asl["StartAt"], "Plan", "{}", flow.stem);
        for name in SHARED_STATES {
            assert_eq!(
                states(&asl).get(*name),
                states(&ebs).get(*name),
                "{}: {name} differs from the EBS flow's",
                flow.stem
            );
        }
        // Route differs only in the flow its third rule names and where that rule goes.
        let (route, ebs_route) = (&states(&asl)["Route"], &states(&ebs)["Route"]);
        assert_eq!(route["Choices"][0], ebs_route["Choices"][0], "{}", flow.stem);
        assert_eq!(route["Choices"][1], ebs_route["Choices"][1], "{}", flow.stem);
        assert_eq!(route["Default"], ebs_route["Default"], "{}", flow.stem);
        let first_step = route["Choices"][2]["Next"].as_str().expect("the own-flow rule has a Next");
        assert!(!SHARED_STATES.contains(&first_step), "{}: the own-flow rule goes to {first_step}", flow.stem);
        // The failure path: the flow's cleanup (a Task, or a Choice of Tasks where there may be
        // nothing to undo), then the shared end.
        let all = states(&asl);
        let cleanup = &all["Cleanup"];
        let tasks: Vec<&Value> = match cleanup["Type"].as_str() {
            Some("Task") => vec![cleanup],
            Some("Choice") => transitions(cleanup).iter().filter(|n| *n != "NotifyFailure").map(|n| &all[n]).collect(),
            other => panic!("{}: Cleanup is a {other:?}", flow.stem),
        };
        for task in tasks {
            assert_eq!(task["Type"], "Task", "{}", flow.stem);
            assert_eq!(task["Next"], "NotifyFailure", "{}", flow.stem);
        }
    }
}

#[test]
fn event_patterns_match_completed_jobs_of_the_configured_vaults() {
    let backup = load("state-machines/events/backup-job-completed.json");
    assert_eq!(backup["detail-type"], json!([archiver_core::event::BACKUP_JOB_STATE_CHANGE]));
    assert_eq!(backup["source"], json!([archiver_core::event::SOURCE_BACKUP]));
    assert_eq!(backup["detail"]["state"], json!(["COMPLETED"]));
    assert_eq!(backup["detail"]["backupVaultName"], "${ArchiveVaultNames}");
    let copy = load("state-machines/events/copy-job-completed.json");
    assert_eq!(copy["detail-type"], json!([archiver_core::event::COPY_JOB_STATE_CHANGE]));
    assert_eq!(copy["detail"]["destinationBackupVaultArn"], "${ArchiveVaultArns}");
}

#[test]
fn every_dynamodb_failure_deletes_the_temporary_table_before_failing() {
    let asl = dynamodb_asl();
    let all = states(&asl);
    for (name, state) in all {
        for catch in state["Catch"].as_array().into_iter().flatten() {
            let target = catch["Next"].as_str().unwrap();
            let allowed: &[&str] = match name.as_str() {
                "Cleanup" => &["NotifyFailure"],
                "NotifyFailure" => &["FailureRoute"],
                "NotifySuccess" => &["Archived"],
                "Handoff" => &["AlreadyHandedOff", "Cleanup"],
                _ => &["Cleanup"],
            };
            assert!(allowed.contains(&target), "{name} catches into {target}");
        }
    }
    assert_eq!(all["Cleanup"]["Resource"], all["DeleteTable"]["Resource"], "the cleanup is the same deletion");
    for pass in ["Unarchivable", "AlreadyHandedOff"] {
        assert_eq!(all[pass]["Next"], "Cleanup", "{pass}");
    }
    // Only a temporary table needs PrepareTable; the point-in-time path goes straight to ExportTable.
    let choice = &all["NeedsTemporaryTable"]["Choices"][0];
    assert_eq!(choice["Variable"], "$.table_source.source");
    assert_eq!(choice["StringEquals"], serde_json::to_value(ExportSource::TemporaryTable).unwrap());
    assert_eq!(choice["Next"], "WaitForTable");
    assert_eq!(all["NeedsTemporaryTable"]["Default"], "ExportTable");
    let own_flow = &all["Route"]["Choices"][2];
    assert_eq!(own_flow["StringEquals"], serde_json::to_value(Flow::DynamodbExport).unwrap());
    assert_eq!(own_flow["Next"], "StartTableExport");
}

#[test]
fn the_dynamodb_pattern_matches_completed_dynamodb_jobs_of_the_configured_vaults() {
    let pattern = load("state-machines/events/dynamodb-backup-job-completed.json");
    assert_eq!(pattern["detail-type"], json!([archiver_core::event::BACKUP_JOB_STATE_CHANGE]));
    assert_eq!(pattern["source"], json!([archiver_core::event::SOURCE_BACKUP]));
    assert_eq!(pattern["detail"]["state"], json!(["COMPLETED"]));
    assert_eq!(pattern["detail"]["resourceType"], json!(["DynamoDB"]));
    assert_eq!(pattern["detail"]["backupVaultName"], "${ArchiveVaultNames}");
}

#[test]
fn rds_patterns_match_ready_snapshots_and_database_backup_jobs() {
    use archiver_core::event::{RDS_DB_CLUSTER_SNAPSHOT_EVENT, RDS_DB_SNAPSHOT_EVENT, SOURCE_RDS};
    use archiver_core::request::{CLUSTER_SNAPSHOT_READY_EVENTS, DB_SNAPSHOT_READY_EVENTS};
    let ready = load("state-machines/events/rds-snapshot-ready.json");
    assert_eq!(ready["source"], json!([SOURCE_RDS]));
    assert_eq!(ready["detail-type"], json!([RDS_DB_SNAPSHOT_EVENT, RDS_DB_CLUSTER_SNAPSHOT_EVENT]));
    let ids: BTreeSet<&str> =
        ready["detail"]["EventID"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    let core: BTreeSet<&str> = DB_SNAPSHOT_READY_EVENTS.iter().chain(CLUSTER_SNAPSHOT_READY_EVENTS).copied().collect();
    assert_eq!(ids, core, "the rule sends exactly the events plan takes as 'snapshot ready'");
    let backup = load("state-machines/events/rds-backup-job-completed.json");
    assert_eq!(backup["detail-type"], json!([archiver_core::event::BACKUP_JOB_STATE_CHANGE]));
    assert_eq!(backup["detail"]["state"], json!(["COMPLETED"]));
    assert_eq!(backup["detail"]["resourceType"], json!(["RDS", "Aurora"]));
    assert_eq!(backup["detail"]["backupVaultName"], "${ArchiveVaultNames}");
}

// ---------------------------------------------------------------------------------------------
// The restore drill (state-machines/restore-drill.asl.json): no plan, no snapshot, its own document.

/// The placeholders of the drill's ASL.
const DRILL_PLACEHOLDERS: &[&str] = &["PickDrillFunctionArn", "DrillReportFunctionArn", "DrillJobDefinitionArn"];

fn drill_asl() -> Value {
    load("state-machines/restore-drill.asl.json")
}

/// The drill's execution document with every field present, from core's types: the trigger (a
/// manual input), the plan, the Map's outcomes, the report and an error.
fn drill_document() -> (Value, DrillPlan) {
    let input = PickDrillInput {
        trigger: DrillTrigger { archives: Some(2), seed: Some(7), restore_to_snapshot: Some(true) },
        execution_name: "e1".into(),
        started_at: "2025-03-04T03:00:00Z".parse().unwrap(),
    };
    let config = DrillConfig {
        location: "s3://example-archive/backups".parse().unwrap(),
        archives: 3,
        restore_to_snapshot: false,
        job_queue: "q".into(),
        deployment: "stack".into(),
    };
    let candidates: Vec<DrillCandidate> = (1..4)
        .map(|n| DrillCandidate {
            location: format!("s3://example-archive/backups/ebs/vol-{n}"),
            archived_at: format!("2025-03-0{n}T03:00:00Z").parse().unwrap(),
        })
        .collect();
    let plan = plan_drill(&input, &config, &candidates, 0, 1).unwrap();
    let outcomes: Vec<DrillOutcome> = plan
        .targets
        .iter()
        .map(|target| DrillOutcome {
            target: target.clone(),
            job: Some(JobResult { job_id: "j".into(), status: "SUCCEEDED".into() }),
            error: Some(StateError { error: "States.TaskFailed".into(), cause: Some("{}".into()) }),
        })
        .collect();
    let report = DrillReportOutput {
        report_key: Some(plan.report_key.clone()),
        passed: true,
        failed: Vec::new(),
        notification: NotificationReport::default(),
    };
    let mut document = serde_json::to_value(&input.trigger).unwrap();
    document["drill"] = serde_json::to_value(&plan).unwrap();
    document["outcomes"] = serde_json::to_value(&outcomes).unwrap();
    document["report"] = serde_json::to_value(&report).unwrap();
    document["error"] = json!({"Error": "States.TaskFailed", "Cause": "{}"});
    document["report_error"] = document["error"].clone();
    (document, plan)
}

/// Every state of the drill: the top level's and the Map's.
fn drill_states(asl: &Value) -> Vec<(String, Value)> {
    let mut all = Vec::new();
    for (name, state) in states(asl) {
        if let Some(processor) = state.get("ItemProcessor") {
            all.extend(states(processor).iter().map(|(n, s)| (n.clone(), s.clone())));
        }
        all.push((name.clone(), state.clone()));
    }
    all
}

#[test]
fn the_drill_has_no_loop_and_every_task_catches_everything_with_bounded_retries() {
    let asl = drill_asl();
    graph_is_a_bounded_tree(&asl);
    graph_is_a_bounded_tree(&states(&asl)["DrillArchives"]["ItemProcessor"]);
    for (name, state) in drill_states(&asl) {
        if !matches!(state["Type"].as_str(), Some("Task" | "Map")) {
            continue;
        }
        assert!(catches_all(&state), "{name} has no catch-all: an error would end the drill without a message");
        for clause in ["Retry", "Catch"] {
            for rule in state[clause].as_array().into_iter().flatten() {
                for error in rule["ErrorEquals"].as_array().unwrap() {
                    let error = error.as_str().unwrap();
                    assert!(errors::is_known(error), "{name}: unknown error name {error:?}");
                    let ours = errors::ALL.iter().any(|e| e.name == error);
                    assert!(clause == "Catch" || !ours || errors::is_retryable(error), "{name}: retries {error}");
                }
                if clause == "Retry" {
                    assert!(rule["MaxAttempts"].as_u64().is_some(), "{name}: MaxAttempts must be explicit");
                    assert!(retry_budget_seconds(rule) <= 3600.0, "{name}: a Retry may wait too long");
                }
            }
        }
    }
    let text = serde_json::to_string(&asl).unwrap();
    let used: BTreeSet<&str> = text.split("${").skip(1).map(|piece| piece.split('}').next().unwrap()).collect();
    assert_eq!(used, DRILL_PLACEHOLDERS.iter().copied().collect(), "the drill's placeholders");
}

#[test]
fn the_drills_paths_and_parameters_are_cores_types() {
    let asl = drill_asl();
    let (document, plan) = drill_document();
    let mut context = context();
    context["Execution"]["Input"] = json!({"detail-type": "Scheduled Event"});
    for (name, state) in states(&asl) {
        let at = |what: &str| format!("restore-drill: {name}.{what}");
        for result_path in std::iter::once(&state["ResultPath"])
            .chain(state["Catch"].as_array().into_iter().flatten().map(|c| &c["ResultPath"]))
        {
            if let Value::String(path) = result_path {
                resolve(path, &document, &context).unwrap_or_else(|e| panic!("{}: {e}", at("ResultPath")));
            }
        }
        for choice in state["Choices"].as_array().into_iter().flatten() {
            for path in choice_variables(choice) {
                let value = resolve(path, &document, &context).unwrap_or_else(|e| panic!("{}: {e}", at("Variable")));
                assert!(value.is_boolean() == choice.get("BooleanEquals").is_some(), "{}: {value}", at("Variable"));
            }
        }
        if let Some(items) = state["ItemsPath"].as_str() {
            let targets = resolve(items, &document, &context).unwrap();
            assert_eq!(targets, serde_json::to_value(&plan.targets).unwrap(), "{}", at("ItemsPath"));
        }
        let Some(parameters) = state.get("Parameters") else { continue };
        let input = evaluate(parameters, &document, &context).unwrap_or_else(|e| panic!("{}: {e}", at("Parameters")));
        match placeholder_of(state["Resource"].as_str().unwrap_or("")) {
            // The trigger is the execution's input ($): whatever the document holds, read as a DrillTrigger.
            Some("PickDrillFunctionArn") => check_input::<PickDrillInput>(name, &input),
            Some("DrillReportFunctionArn") => check_input::<DrillReportInput>(name, &input),
            other => panic!("{name}: Parameters for {other:?}"),
        }
    }
    // The Map's item: its selector builds the processor's input; the job's parameters are core's.
    let map = &states(&asl)["DrillArchives"];
    let mut item_context = context.clone();
    item_context["Map"] = json!({"Item": {"Index": 0, "Value": serde_json::to_value(&plan.targets[0]).unwrap()}});
    let item = evaluate(&map["ItemSelector"], &document, &item_context).unwrap();
    let job_state = &states(&map["ItemProcessor"])["DrillArchive"];
    let submitted = evaluate(&job_state["Parameters"], &item, &item_context).unwrap();
    let names: BTreeSet<&str> = submitted["Parameters"].as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(names, DRILL_JOB_PARAMETERS.iter().copied().collect(), "the drill job's parameters");
    assert!(submitted["JobName"].is_string() && submitted["JobQueue"].is_string(), "{submitted}");
    let answer: Value =
        BATCH_JOB_FIELDS.iter().map(|f| (f.to_string(), json!("x"))).collect::<serde_json::Map<_, _>>().into();
    let mut done = item.clone();
    done["job"] = evaluate(&job_state["ResultSelector"], &answer, &item_context).unwrap();
    serde_json::from_value::<DrillOutcome>(done).expect("a succeeded job's item is a DrillOutcome");
    let mut failed = item;
    failed["error"] = json!({"Error": "States.TaskFailed", "Cause": "{}"});
    serde_json::from_value::<DrillOutcome>(failed).expect("a failed job's item is a DrillOutcome");
}
