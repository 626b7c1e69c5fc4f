"""launcher.py's `dynamodb_exports` patch: DynamoDB table exports shaped as AWS's (see test_moto_defects.py for
moto's own behaviour)."""

import json
import urllib.request

import pytest
from botocore.exceptions import ClientError
from conftest import unique


def table_with_backup(aws, pitr: bool = True) -> tuple[str, dict]:
    dynamodb, name = aws.client("dynamodb"), unique("table")
    dynamodb.create_table(TableName=name, KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}],
                          AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}],
                          BillingMode="PAY_PER_REQUEST")
    if pitr:
        dynamodb.update_continuous_backups(TableName=name, PointInTimeRecoverySpecification={
            "PointInTimeRecoveryEnabled": True})
    for k in ("a", "b"):
        dynamodb.put_item(TableName=name, Item={"k": {"S": k}})
    backup = dynamodb.create_backup(TableName=name, BackupName=f"{name}-backup")["BackupDetails"]
    return dynamodb.describe_table(TableName=name)["Table"]["TableArn"], backup


def bucket(aws) -> str:
    name = unique("bucket")
    aws.client("s3").create_bucket(Bucket=name)
    return name


def test_export_progresses_writes_its_manifests_and_honours_the_client_token(aws):
    dynamodb, s3, target = aws.client("dynamodb"), aws.client("s3"), bucket(aws)
    table_arn, backup = table_with_backup(aws)
    start = dict(TableArn=table_arn, ExportTime=backup["BackupCreationDateTime"], S3Bucket=target, S3Prefix="a/b",
                 ExportFormat="DYNAMODB_JSON", ClientToken="token-1")
    export = dynamodb.export_table_to_point_in_time(**start)["ExportDescription"]
    assert export["ExportArn"].startswith(f"{table_arn}/export/") and export["ExportStatus"] == "IN_PROGRESS"
    assert export["ExportTime"] == backup["BackupCreationDateTime"]
    assert dynamodb.export_table_to_point_in_time(**start)["ExportDescription"]["ExportArn"] == export["ExportArn"]
    statuses = [dynamodb.describe_export(ExportArn=export["ExportArn"])["ExportDescription"] for _ in range(3)]
    assert [s["ExportStatus"] for s in statuses][-1] == "COMPLETED"
    done = statuses[-1]
    assert done["ItemCount"] == 2 and done["BilledSizeBytes"] > 0
    export_id = export["ExportArn"].rsplit("/", 1)[1]
    assert done["ExportManifest"] == f"AWSDynamoDB/{export_id}/manifest-summary.json"
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=target)["Contents"]}
    directory = f"a/b/AWSDynamoDB/{export_id}"
    assert {f"{directory}/_started", f"{directory}/manifest-files.json", f"{directory}/manifest-summary.json"} <= keys
    summary = json.loads(s3.get_object(Bucket=target, Key=f"{directory}/manifest-summary.json")["Body"].read())
    assert summary["itemCount"] == 2 and summary["exportArn"] == export["ExportArn"]


def test_export_time_outside_the_pitr_window_and_tables_without_pitr_are_refused(aws):
    dynamodb, target = aws.client("dynamodb"), bucket(aws)
    table_arn, backup = table_with_backup(aws)
    with pytest.raises(ClientError, match="InvalidExportTimeException"):
        dynamodb.export_table_to_point_in_time(TableArn=table_arn, S3Bucket=target, ExportTime=0)
    no_pitr, _ = table_with_backup(aws, pitr=False)
    with pytest.raises(ClientError, match="PointInTimeRecoveryUnavailableException"):
        dynamodb.export_table_to_point_in_time(TableArn=no_pitr, S3Bucket=target)


def test_latest_restorable_time_is_now(aws):
    table_arn, backup = table_with_backup(aws)
    pitr = aws.client("dynamodb").describe_continuous_backups(TableName=table_arn.rsplit("/", 1)[1])[
        "ContinuousBackupsDescription"]["PointInTimeRecoveryDescription"]
    assert pitr["LatestRestorableDateTime"] >= backup["BackupCreationDateTime"]


def test_queued_failures_fail_the_next_exports(aws):
    request = urllib.request.Request(aws.endpoint + "/moto-api/static/dynamodb/export-failures", method="POST",
                                     data=json.dumps({"failures": [{"FailureCode": "X", "FailureMessage": "boom"}]})
                                     .encode())
    assert urllib.request.urlopen(request).status == 201
    dynamodb, target = aws.client("dynamodb"), bucket(aws)
    table_arn, _ = table_with_backup(aws)
    failed = dynamodb.export_table_to_point_in_time(TableArn=table_arn, S3Bucket=target)["ExportDescription"]
    for _ in range(3):
        failed = dynamodb.describe_export(ExportArn=failed["ExportArn"])["ExportDescription"]
    assert (failed["ExportStatus"], failed["FailureCode"], failed["FailureMessage"]) == ("FAILED", "X", "boom")
    fine = dynamodb.export_table_to_point_in_time(TableArn=table_arn, S3Bucket=target)["ExportDescription"]
    for _ in range(3):
        fine = dynamodb.describe_export(ExportArn=fine["ExportArn"])["ExportDescription"]
    assert fine["ExportStatus"] == "COMPLETED", "one failure per queued entry"
