"""The RDS export flow end to end on the emulator: an AWS Backup job, an RDS event or a manual start reaches the
rds-export state machine, which runs the real Lambdas: plan describes the snapshot in moto, start-export starts
RDS's export, check-export polls it (the emulator's export goes STARTING -> IN_PROGRESS -> COMPLETE and writes
RDS's files) and checks the files, notify reports the location and size. Failures: an export that ends FAILED,
the account's export limit, and a start whose answer was lost."""

import copy
import json
import uuid

from conftest import FIXTURES, KEEP_VAULT, cli, finished, output_of, put_event, states_entered
from emulator.deploy import ACCOUNT, REGION

HAPPY_PATH = ["Plan", "Route", "StartExport", "WaitForExport", "CheckExport", "ShouldDeleteRecoveryPoint",
              "NotifySuccess", "Exported"]


def rds_snapshot(aws, engine="postgres") -> tuple[str, str]:
    """A DB instance and a manual snapshot of it in moto: (instance id, snapshot ARN)."""
    rds = aws.client("rds")
    db = f"orders-{uuid.uuid4().hex[:8]}"
    rds.create_db_instance(DBInstanceIdentifier=db, DBInstanceClass="db.t3.micro", Engine=engine,
                           MasterUsername="admin1", MasterUserPassword="password-1", AllocatedStorage=20)
    snapshot = rds.create_db_snapshot(DBInstanceIdentifier=db, DBSnapshotIdentifier=f"{db}-snap")["DBSnapshot"]
    return db, snapshot["DBSnapshotArn"]


def cluster_snapshot(aws) -> tuple[str, str]:
    """An Aurora PostgreSQL cluster and a snapshot of it: (cluster id, snapshot ARN)."""
    rds = aws.client("rds")
    cluster = f"billing-{uuid.uuid4().hex[:8]}"
    rds.create_db_cluster(DBClusterIdentifier=cluster, Engine="aurora-postgresql", MasterUsername="admin1",
                          MasterUserPassword="password-1")
    snapshot = rds.create_db_cluster_snapshot(DBClusterIdentifier=cluster, DBClusterSnapshotIdentifier=f"{cluster}-snap")
    return cluster, snapshot["DBClusterSnapshot"]["DBClusterSnapshotArn"]


def rds_backup_event(db: str, snapshot_arn: str, vault: str) -> dict:
    """The reference `Backup Job State Change` (COMPLETED, RDS) about this snapshot and vault."""
    event = copy.deepcopy(json.loads((FIXTURES / "eventbridge-backup-job-completed-rds.json").read_text()))
    detail = event["detail"]
    detail["backupJobId"] = str(uuid.uuid4())
    detail["backupVaultName"] = vault
    detail["backupVaultArn"] = f"arn:aws:backup:{REGION}:{ACCOUNT}:backup-vault:{vault}"
    detail["resourceArn"] = f"arn:aws:rds:{REGION}:{ACCOUNT}:db:{db}"
    event.update(resources=[snapshot_arn], region=REGION, account=ACCOUNT)
    return event


def machine(stack) -> str:
    return stack.state_machines["rds-export"]


def executions_of(aws, arn: str) -> list[str]:
    sfn = aws.client("stepfunctions")
    return [e["executionArn"] for e in sfn.list_executions(stateMachineArn=arn)["executions"]]


def run_event(aws, stack, event) -> dict:
    from faults import wait_until

    before = executions_of(aws, machine(stack))
    put_event(aws, event)
    [arn] = wait_until(lambda: [a for a in executions_of(aws, machine(stack)) if a not in before], 10, "an execution")
    return finished(aws, arn)


def exported_keys(aws, stack, output) -> list[str]:
    prefix = output["export"]["location"]["prefix"] + "/"
    listed = aws.client("s3").list_objects_v2(Bucket=stack.bucket, Prefix=prefix)
    return [o["Key"] for o in listed.get("Contents", [])]


def assert_exported(aws, stack, slack, execution, snapshot_id):
    arn = execution["executionArn"]
    assert execution["status"] == "SUCCEEDED", execution
    assert states_entered(aws, arn) == HAPPY_PATH
    output = output_of(execution)
    assert output["flow"] == "rds_export" and output["snapshot_id"] == snapshot_id
    export = output["export"]
    identifier = output["export_task_identifier"]
    assert export["export_task_identifier"] == identifier
    location = f"s3://{stack.bucket}/{output['destination']['prefix']}/{identifier}/"
    assert output["exported"]["location"] == location
    keys = exported_keys(aws, stack, output)
    assert f"{output['destination']['prefix']}/{identifier}/export_info_{identifier}.json" in keys
    assert output["exported"]["objects"] == len(keys) and output["exported"]["total_size"] > 0
    task = aws.client("rds").describe_export_tasks(ExportTaskIdentifier=identifier)["ExportTasks"][0]
    assert task["Status"] == "COMPLETE" and task["SourceArn"] == output["snapshot_arn"]
    assert task["IamRoleArn"].endswith(f":role/{stack.settings.name}-rds-export")
    # RDS events reach every deployment (both test stacks): each archives into its own bucket and says so once.
    [message] = [m for m in slack.delivered() if location in json.dumps(m)]
    text = json.dumps(message)
    assert f"Archived {snapshot_id}" in message["text"] and "Size" in text, text
    return output


def test_backup_job_of_an_rds_snapshot_is_exported_checked_and_reported(aws, keep_stack, proxy, slack):
    db, snapshot_arn = rds_snapshot(aws)
    execution = run_event(aws, keep_stack, rds_backup_event(db, snapshot_arn, KEEP_VAULT))
    output = assert_exported(aws, keep_stack, slack, execution, snapshot_arn.rsplit(":", 1)[1])
    assert output["engine"] == "postgres" and output["method"] == "export"
    assert output["source_resource_id"] == db and output["snapshot_size_bytes"] == 20 << 30
    assert output["recovery_point_arn"] == snapshot_arn
    # Kept: the keep stack does not delete recovery points.
    assert proxy.actions("DeleteRecoveryPoint") == [] and "recovery_point_deletion" not in output
    assert "kept" in json.dumps(slack.delivered()[0])


def test_aurora_cluster_snapshot_event_is_exported(aws, keep_stack, slack):
    cluster, snapshot_arn = cluster_snapshot(aws)
    event = copy.deepcopy(json.loads((FIXTURES / "eventbridge-rds-db-cluster-snapshot-event-created.json").read_text()))
    snapshot_id = snapshot_arn.rsplit(":", 1)[1]
    event["resources"] = [snapshot_arn]
    event["detail"].update(SourceArn=snapshot_arn, SourceIdentifier=snapshot_id, EventID="RDS-EVENT-0169")
    execution = run_event(aws, keep_stack, event)
    output = assert_exported(aws, keep_stack, slack, execution, snapshot_id)
    assert (output["kind"], output["engine"], output["source_resource_id"]) == ("aurora", "aurora-postgresql", cluster)


def test_manual_start_picks_the_export_flow_and_waits(aws, keep_stack, delete_stack, slack):
    _, snapshot_arn = rds_snapshot(aws, engine="mysql")
    # Two stacks are deployed here: the CLI looks for the export flow's state machine and finds both.
    ambiguous = cli(aws, "start", "--snapshot", snapshot_arn)
    assert ambiguous.returncode == 2, ambiguous.stdout + ambiguous.stderr
    assert machine(keep_stack) in ambiguous.stderr and machine(delete_stack) in ambiguous.stderr
    started = cli(aws, "start", "--snapshot", snapshot_arn, "--method", "export", "--state-machine", machine(keep_stack),
                  "--wait", "--json")
    assert started.returncode == 0, started.stdout + started.stderr
    report = json.loads(started.stdout)
    assert report["status"] == "SUCCEEDED" and report["state_machine_arn"] == machine(keep_stack), report
    assert report["output"]["exported"]["objects"] >= 3
    assert [s["name"] for s in report["steps"]] == HAPPY_PATH


def test_failed_export_is_reported_with_its_cause_and_fails_the_execution(aws, keep_stack, proxy, slack):
    cause = "The S3 bucket keep-archive is in another Region than the snapshot."
    aws.fail_next_export(cause)
    db, snapshot_arn = rds_snapshot(aws)
    execution = run_event(aws, keep_stack, rds_backup_event(db, snapshot_arn, KEEP_VAULT))
    assert execution["status"] == "FAILED" and execution["error"] == "ExportFailed", execution
    assert cause in execution["cause"]
    entered = states_entered(aws, execution["executionArn"])
    assert entered[-5:] == ["CheckExport", "Cleanup", "NotifyFailure", "FailureRoute", "Failed"], entered
    assert "CancelExport" not in entered, "an export that ended needs no cancel"
    assert proxy.actions("DeleteRecoveryPoint") == []
    [message] = slack.delivered()
    assert "FAILED: ExportFailed" in message["text"] and cause in json.dumps(message)
    assert "kept" in json.dumps(message)


def test_export_limit_is_waited_out(aws, keep_stack, proxy, slack):
    # StartExportTask's documented errors have no quota fault; RDS names quota faults `...QuotaExceeded`.
    proxy.fail("StartExportTask", times=2, status=400, code="ExportTaskQuotaExceeded",
               message="You have reached the maximum number of concurrent export tasks.")
    db, snapshot_arn = rds_snapshot(aws)
    execution = run_event(aws, keep_stack, rds_backup_event(db, snapshot_arn, KEEP_VAULT))
    assert_exported(aws, keep_stack, slack, execution, snapshot_arn.rsplit(":", 1)[1])
    calls = proxy.actions("StartExportTask")
    assert [c.faulted for c in calls] == [True, True, False]


def test_start_whose_answer_was_lost_polls_the_export_it_started(aws, keep_stack, proxy, slack):
    # The first StartExportTask starts the export, but its answer is lost (a 503 in its place): the retry gets
    # ExportTaskAlreadyExists, which means "started", and the flow polls that one export.
    proxy.fail("StartExportTask", times=1, after_forward=True)
    db, snapshot_arn = rds_snapshot(aws)
    execution = run_event(aws, keep_stack, rds_backup_event(db, snapshot_arn, KEEP_VAULT))
    output = assert_exported(aws, keep_stack, slack, execution, snapshot_arn.rsplit(":", 1)[1])
    assert output["export"]["started"] is False
    assert len(proxy.actions("StartExportTask")) == 2
    tasks = aws.client("rds").describe_export_tasks()["ExportTasks"]
    assert [t["ExportTaskIdentifier"] for t in tasks if t["SourceArn"] == snapshot_arn] == [output["export_task_identifier"]]


def sns_delivery(message: dict) -> dict:
    """What SNS hands its Lambda subscriber: one record whose message is the RDS event notification's JSON."""
    return {"Records": [{"EventSource": "aws:sns", "EventVersion": "1.0", "Sns": {
        "Type": "Notification", "MessageId": str(uuid.uuid4()), "TopicArn": f"arn:aws:sns:{REGION}:{ACCOUNT}:rds-events",
        "Subject": "RDS Notification Message", "Message": json.dumps(message), "Timestamp": "2025-03-04T04:02:32.451Z",
        "SignatureVersion": "1", "Signature": "EXAMPLE", "SigningCertUrl": "EXAMPLE", "UnsubscribeUrl": "EXAMPLE",
        "MessageAttributes": {}}}]}


def rds_notification(source_type: str, source_id: str, event_id: str, text: str) -> dict:
    """An RDS event notification as RDS publishes it to an event subscription's topic."""
    return {"Event Source": source_type, "Event Time": "2025-03-04 04:02:31.338", "Source ID": source_id,
            "Identifier Link": f"https://console.aws.amazon.com/rds/home?region={REGION}#snapshot:id={source_id}",
            "Event ID": f"http://docs.amazonwebservices.com/AmazonRDS/latest/UserGuide/USER_Events.html#{event_id}",
            "Event Message": text}


def invoke_trigger(aws, stack, delivery: dict) -> dict:
    """Invokes the stack's sns-trigger as SNS does (the emulator's SNS cannot deliver to the local Lambda host)."""
    response = aws.client("lambda").invoke(FunctionName=stack.functions["sns-trigger"], Payload=json.dumps(delivery))
    return {"error": response.get("FunctionError"), **json.loads(response["Payload"].read())}


def test_rds_event_delivered_by_sns_starts_the_export_once(aws, keep_stack, slack):
    _, snapshot_arn = rds_snapshot(aws)
    snapshot_id = snapshot_arn.rsplit(":", 1)[1]
    delivery = sns_delivery(rds_notification("db-snapshot", snapshot_id, "RDS-EVENT-0042", "Manual snapshot created"))
    started = invoke_trigger(aws, keep_stack, delivery)
    assert started["error"] is None and started["started"].startswith(machine(keep_stack).replace(
        ":stateMachine:", ":execution:")), started
    assert_exported(aws, keep_stack, slack, finished(aws, started["started"]), snapshot_id)

    redelivered = invoke_trigger(aws, keep_stack, delivery)
    assert redelivered["error"] is None and "duplicate" in redelivered, "SNS's redelivery starts nothing"
    assert len([a for a in executions_of(aws, machine(keep_stack)) if a == started["started"]]) == 1

    restarted = sns_delivery(rds_notification("db-instance", "orders", "RDS-EVENT-0006", "DB instance restarted"))
    assert "skipped" in invoke_trigger(aws, keep_stack, restarted), "an event about no snapshot starts nothing"
    malformed = invoke_trigger(aws, keep_stack, {"Records": [{"Sns": {"Message": "{\"Event Source\": 7}"}}]})
    assert malformed["error"] and malformed["errorType"] == "InvalidEvent", malformed
