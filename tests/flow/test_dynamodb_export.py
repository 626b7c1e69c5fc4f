"""The DynamoDB flow end to end on the emulator: an AWS Backup COMPLETED event for a DynamoDB backup starts the
real ASL and Lambdas. A table with point-in-time recovery is exported at the backup's time; a table without it is
restored into a temporary table, exported and deleted; an AWS Backup recovery point with advanced features is
restored by AWS Backup's restore job; a failed export fails the execution after the cleanup. The recovery point is
kept, and no temporary table outlives its execution."""

import json
import urllib.request
import uuid

from conftest import KEEP_VAULT, cli, finished, output_of, put_event, sns_messages, states_entered, wait_until

from emulator.deploy import REGION

ACCOUNT = "123456789012"
TAG_MANAGED_BY = "backup-archiver:managed-by"  # core::naming::TAG_MANAGED_BY
TEMPORARY_TABLE_PREFIX = "backup-archiver-"  # core::flows::dynamodb::TEMPORARY_TABLE_PREFIX
POINT_IN_TIME_PATH = ["Plan", "Route", "StartTableExport", "NeedsTemporaryTable", "ExportTable", "WaitForExport",
                      "CheckTableExport", "DeleteTable", "ShouldDeleteRecoveryPoint", "NotifySuccess", "Archived"]


def backed_up_table(aws, pitr: bool, items: int = 3) -> tuple[str, dict]:
    """A table with `items` items (and PITR when asked) and a DynamoDB backup of it: what AWS Backup makes."""
    dynamodb = aws.client("dynamodb")
    name = f"orders-{uuid.uuid4().hex[:8]}"
    dynamodb.create_table(TableName=name, KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
                          AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
                          BillingMode="PAY_PER_REQUEST")
    if pitr:
        dynamodb.update_continuous_backups(TableName=name, PointInTimeRecoverySpecification={
            "PointInTimeRecoveryEnabled": True})
    for i in range(items):
        dynamodb.put_item(TableName=name, Item={"id": {"S": f"order-{i}"}, "total": {"N": str(10 * i)}})
    backup = dynamodb.create_backup(TableName=name, BackupName=f"awsbackup-{name}")["BackupDetails"]
    return name, backup


def dynamodb_backup_event(table: str, backup_arn: str, vault: str) -> dict:
    """AWS Backup's `Backup Job State Change` (COMPLETED) for a DynamoDB backup (recovery point = backup ARN)."""
    return {
        "version": "0", "id": str(uuid.uuid4()), "detail-type": "Backup Job State Change", "source": "aws.backup",
        "account": ACCOUNT, "time": "2025-03-04T02:10:00Z", "region": REGION, "resources": [backup_arn],
        "detail": {
            "backupJobId": str(uuid.uuid4()).upper(), "backupSizeInBytes": "123", "backupVaultName": vault,
            "backupVaultArn": f"arn:aws:backup:{REGION}:{ACCOUNT}:backup-vault:{vault}",
            "creationDate": "2025-03-04T02:00:00.000Z", "iamRoleArn": f"arn:aws:iam::{ACCOUNT}:role/backup",
            "resourceArn": f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{table}", "resourceType": "DynamoDB",
            "state": "COMPLETED", "percentDone": "100.0",
        },
    }


def run(aws, stack, table: str, backup: dict, recovery_point_arn: str | None = None) -> dict:
    machine = stack.state_machines["dynamodb-export"]
    sfn = aws.client("stepfunctions")
    before = {e["executionArn"] for e in sfn.list_executions(stateMachineArn=machine)["executions"]}
    put_event(aws, dynamodb_backup_event(table, recovery_point_arn or backup["BackupArn"], KEEP_VAULT))
    [arn] = wait_until(lambda: [e["executionArn"] for e in sfn.list_executions(stateMachineArn=machine)["executions"]
                                if e["executionArn"] not in before] or None, 10, "the DynamoDB flow's execution")
    return finished(aws, arn)


def our_tables(aws) -> list[str]:
    """Tables tagged as ours or named as our temporary tables: none may outlive an execution."""
    dynamodb = aws.client("dynamodb")
    found = []
    for name in dynamodb.list_tables()["TableNames"]:
        table = dynamodb.describe_table(TableName=name)["Table"]
        tags = dynamodb.list_tags_of_resource(ResourceArn=table["TableArn"]).get("Tags", [])
        if name.startswith(TEMPORARY_TABLE_PREFIX) or any(t["Key"] == TAG_MANAGED_BY for t in tags):
            found.append(name)
    return found


def assert_one_sns_message(aws, stack, backup: dict) -> None:
    """One message per execution on the stack's topic (read off, so the next test sees only its own)."""
    [message] = sns_messages(aws, stack)
    assert backup["BackupArn"].rsplit("/", 1)[1] in message, message


def assert_backup_kept(aws, backup: dict) -> None:
    details = aws.client("dynamodb").describe_backup(BackupArn=backup["BackupArn"])["BackupDescription"]
    assert details["BackupDetails"]["BackupStatus"] == "AVAILABLE"


def assert_recovery_point_kept(aws, point_arn: str) -> None:
    """The keep stack leaves the recovery point in its vault (DeleteRecoveryPoint would remove it)."""
    point = aws.client("backup").describe_recovery_point(BackupVaultName=KEEP_VAULT, RecoveryPointArn=point_arn)
    assert point["Status"] == "COMPLETED", point


def export_objects(aws, stack, prefix: str) -> list[str]:
    listed = aws.client("s3").list_objects_v2(Bucket=stack.bucket, Prefix=prefix + "/").get("Contents", [])
    return [o["Key"] for o in listed]


def test_table_with_pitr_is_exported_at_the_backups_time(aws, keep_stack, slack):
    table, backup = backed_up_table(aws, pitr=True)
    execution = run(aws, keep_stack, table, backup)
    arn = execution["executionArn"]
    assert execution["status"] == "SUCCEEDED", execution
    assert states_entered(aws, arn) == POINT_IN_TIME_PATH
    output = output_of(execution)
    assert output["table_source"]["source"] == "point_in_time"
    assert output["table_source"]["table_name"] == table

    # Exported from the source table at the backup's creation time, into the archive's prefix.
    export = aws.client("dynamodb").describe_export(ExportArn=output["table_export"]["export_arn"])["ExportDescription"]
    assert export["TableArn"].endswith(f":table/{table}")
    assert abs((export["ExportTime"] - backup["BackupCreationDateTime"]).total_seconds()) < 0.01, export
    prefix = output["destination"]["prefix"]
    assert prefix.startswith(f"backups/dynamodb/{table}/") and export["S3Prefix"] == prefix
    result = output["export_result"]
    assert result["item_count"] == 3 and result["manifest_summary_key"] in export_objects(aws, keep_stack, prefix)
    assert result["manifest_summary_key"].endswith("/manifest-summary.json")

    [message] = slack.delivered()
    text = json.dumps(message)
    assert f"Archived {backup['BackupArn'].rsplit('/', 1)[1]}" in message["text"], message
    assert "3 items" in text and table in text and "point-in-time recovery" in text, text
    assert output["deleted_tables"]["deleted"] == []
    assert_one_sns_message(aws, keep_stack, backup)
    assert_backup_kept(aws, backup)
    assert our_tables(aws) == []


def test_table_without_pitr_is_restored_exported_and_deleted(aws, keep_stack, slack):
    table, backup = backed_up_table(aws, pitr=False, items=5)
    execution = run(aws, keep_stack, table, backup)
    arn = execution["executionArn"]
    assert execution["status"] == "SUCCEEDED", execution
    entered = states_entered(aws, arn)
    assert entered[:4] == ["Plan", "Route", "StartTableExport", "NeedsTemporaryTable"]
    assert ["WaitForTable", "PrepareTable", "ExportTable"] == entered[4:7], entered
    output = output_of(execution)
    source = output["table_source"]
    assert source["source"] == "temporary_table" and source["table_name"].startswith(TEMPORARY_TABLE_PREFIX)
    assert source["export_time"] is None
    export = aws.client("dynamodb").describe_export(ExportArn=output["table_export"]["export_arn"])["ExportDescription"]
    assert export["TableArn"] == source["table_arn"], "the temporary table was exported"
    assert output["export_result"]["item_count"] == 5, "it held the backup's items"
    assert output["deleted_tables"]["deleted"] == [source["table_name"]]
    assert our_tables(aws) == [], "the temporary table is gone"
    assert table in aws.client("dynamodb").list_tables()["TableNames"], "the source table is untouched"
    [message] = slack.delivered()
    assert "restored from the backup" in json.dumps(message)
    assert_one_sns_message(aws, keep_stack, backup)
    assert_backup_kept(aws, backup)


def test_failed_export_fails_the_execution_after_deleting_the_temporary_table(aws, keep_stack, slack):
    request = urllib.request.Request(
        aws.endpoint + "/moto-api/static/dynamodb/export-failures", method="POST",
        data=json.dumps({"failures": [{"FailureCode": "S3AccessDenied", "FailureMessage": "injected"}]}).encode())
    assert urllib.request.urlopen(request).status == 201
    table, backup = backed_up_table(aws, pitr=False)
    execution = run(aws, keep_stack, table, backup)
    arn = execution["executionArn"]
    assert execution["status"] == "FAILED", execution
    assert execution["error"] == "ExportFailed"
    assert "S3AccessDenied: injected" in execution["cause"], execution["cause"]
    entered = states_entered(aws, arn)
    assert entered[-4:] == ["Cleanup", "NotifyFailure", "FailureRoute", "Failed"], entered
    assert "DeleteRecoveryPoint" not in entered
    assert our_tables(aws) == [], "the temporary table was deleted on the failure path"
    [message] = slack.delivered()
    assert "FAILED: ExportFailed" in message["text"]
    assert " deleted" in json.dumps(message), message
    assert_one_sns_message(aws, keep_stack, backup)
    assert_backup_kept(aws, backup)


def test_plan_of_dynamodb_events(aws, tmp_path):
    backup_arn = (f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/Orders/backup/01568804569000-d3306d76")
    cases = {
        "native": dynamodb_backup_event("Orders", backup_arn, KEEP_VAULT),
        "advanced": dynamodb_backup_event(
            "Orders", f"arn:aws:backup:{REGION}:{ACCOUNT}:recovery-point:8f3a2c61-4b7d-1e09", KEEP_VAULT),
        "manual": {"snapshot": backup_arn},
    }
    for name, event in cases.items():
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(event))
        planned = cli(aws, "plan", "--event", str(path), "--json")
        assert planned.returncode == 0, planned.stdout + planned.stderr
        plan = json.loads(planned.stdout)
        assert plan["outcome"] == "planned" and plan["flow"] == "dynamodb_export", plan
        assert plan["source_resource_id"] == "Orders" and plan["kind"] == "dynamodb", plan
        assert "/dynamodb/Orders/" in f"/{plan['destination']['prefix']}/", plan


def recovery_point_of_a_deleted_table(aws, items: int, **extra) -> tuple[str, dict, str]:
    """A recovery point with AWS Backup's advanced features (DynamoDB cannot restore it, only StartRestoreJob can)
    of a table that is gone, so no PITR can be read from: (table, the backup holding its items, the point's ARN)."""
    table, backup = backed_up_table(aws, pitr=False, items=items)
    dynamodb = aws.client("dynamodb")
    table_arn = dynamodb.describe_table(TableName=table)["Table"]["TableArn"]
    point_arn = f"arn:aws:backup:{REGION}:{ACCOUNT}:recovery-point:{uuid.uuid4()}"
    aws.add_recovery_point({"RecoveryPointArn": point_arn, "BackupVaultName": KEEP_VAULT, "ResourceArn": table_arn,
                            "CreationDate": backup["BackupCreationDateTime"].timestamp(),
                            "SourceBackupArn": backup["BackupArn"], **extra})
    dynamodb.delete_table(TableName=table)
    return table, backup, point_arn


def test_aws_backup_recovery_point_of_a_deleted_table_is_restored_by_aws_backup(aws, keep_stack, slack):
    table, backup, point_arn = recovery_point_of_a_deleted_table(aws, items=4)
    execution = run(aws, keep_stack, table, backup, point_arn)
    assert execution["status"] == "SUCCEEDED", (execution.get("error"), execution.get("cause"))
    output = output_of(execution)
    source = output["table_source"]
    assert source["source"] == "temporary_table" and source["restore_job_id"], source
    job = aws.client("backup").describe_restore_job(RestoreJobId=source["restore_job_id"])
    assert job["Status"] == "COMPLETED" and job["CreatedResourceArn"] == source["table_arn"]
    assert job["IamRoleArn"].endswith(f"{keep_stack.settings.name}-dynamodb-restore"), "the deployment's restore role"
    history = aws.client("stepfunctions").get_execution_history(executionArn=execution["executionArn"])["events"]
    retried = [e for e in history if e["type"] == "LambdaFunctionFailed"
               and e["lambdaFunctionFailedEventDetails"].get("error") == "TableNotReady"]
    assert retried, "PrepareTable waited for the restore job"
    assert output["export_result"]["item_count"] == 4, "the export holds the recovery point's items"
    assert output["deleted_tables"]["deleted"] == [source["table_name"]]
    assert our_tables(aws) == [], "the table AWS Backup restored is gone"
    [message] = slack.delivered()
    assert "restored from the backup" in json.dumps(message)
    [sns] = sns_messages(aws, keep_stack)
    assert point_arn.rsplit(":", 1)[1] in sns, sns
    assert_recovery_point_kept(aws, point_arn)


def test_a_failed_aws_backup_restore_fails_the_execution_and_leaves_nothing(aws, keep_stack, slack):
    table, backup, point_arn = recovery_point_of_a_deleted_table(
        aws, items=2, RestoreFailure="Access denied: the restore role cannot write the table")
    execution = run(aws, keep_stack, table, backup, point_arn)
    assert execution["status"] == "FAILED" and execution["error"] == "TableOperationFailed", execution
    assert "Access denied: the restore role cannot write the table" in execution["cause"], execution["cause"]
    entered = states_entered(aws, execution["executionArn"])
    assert entered[-5:] == ["PrepareTable", "Cleanup", "NotifyFailure", "FailureRoute", "Failed"], entered
    assert our_tables(aws) == []
    [message] = slack.delivered()
    assert "FAILED: TableOperationFailed" in message["text"], message
    [sns] = sns_messages(aws, keep_stack)
    assert "kept" in sns, "the recovery point is kept"
    assert_recovery_point_kept(aws, point_arn)
