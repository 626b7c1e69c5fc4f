"""launcher.py's `backup_recovery_points` patch: AWS Backup's DynamoDB recovery points and the restore jobs that
restore them (moto has neither)."""

import json
import time
import urllib.request

import pytest
from botocore.exceptions import ClientError
from conftest import unique
from test_dynamodb import table_with_backup

from emulator.launcher import RECOVERY_POINTS_PATH

ACCOUNT, REGION = "123456789012", "us-east-1"


def recovery_point(aws) -> tuple[str, str]:
    """A recovery point of a table holding items a and b; returns its ARN and the table's ARN."""
    table_arn, backup = table_with_backup(aws, pitr=False)
    arn = f"arn:aws:backup:{REGION}:{ACCOUNT}:recovery-point:{unique('rp')}"
    point = {"RecoveryPointArn": arn, "BackupVaultName": "vault", "ResourceArn": table_arn,
             "CreationDate": backup["BackupCreationDateTime"].timestamp(), "SourceBackupArn": backup["BackupArn"]}
    request = urllib.request.Request(aws.endpoint + RECOVERY_POINTS_PATH, method="POST", data=json.dumps(point).encode(),
                                     headers={"Content-Type": "application/json"})
    assert urllib.request.urlopen(request).status == 201
    return arn, table_arn


def until_done(backup, job_id: str) -> list[str]:
    seen = []
    for _ in range(10):
        job = backup.describe_restore_job(RestoreJobId=job_id)
        seen.append(job["Status"])
        if job["Status"] in ("COMPLETED", "FAILED", "ABORTED"):
            return seen
        time.sleep(0.05)
    raise AssertionError(seen)


def test_recovery_point_is_described_and_restored_by_a_job_into_the_named_table(aws):
    backup, dynamodb = aws.client("backup"), aws.client("dynamodb")
    arn, table_arn = recovery_point(aws)
    described = backup.describe_recovery_point(BackupVaultName="vault", RecoveryPointArn=arn)
    assert (described["ResourceArn"], described["Status"], described["ResourceType"]) == (table_arn, "COMPLETED", "DynamoDB")
    target = unique("restored")
    start = dict(RecoveryPointArn=arn, ResourceType="DynamoDB", IamRoleArn=f"arn:aws:iam::{ACCOUNT}:role/restore",
                 IdempotencyToken="token-1", Metadata={"targetTableName": target, "encryptionType": "Default"})
    job = backup.start_restore_job(**start)["RestoreJobId"]
    assert backup.start_restore_job(**start)["RestoreJobId"] == job, "the idempotency token returns the first job"
    with pytest.raises(ClientError, match="ResourceNotFoundException"):
        dynamodb.describe_table(TableName=target)  # nothing until the job has run
    assert until_done(backup, job) == ["RUNNING", "COMPLETED"]
    table = dynamodb.describe_table(TableName=target)["Table"]
    assert backup.describe_restore_job(RestoreJobId=job)["CreatedResourceArn"] == table["TableArn"]
    assert table["RestoreSummary"]["SourceBackupArn"] == arn
    assert dynamodb.scan(TableName=target)["Count"] == 2


def test_a_restore_job_without_a_role_fails_and_unknown_points_are_not_found(aws):
    backup = aws.client("backup")
    arn, _ = recovery_point(aws)
    job = backup.start_restore_job(RecoveryPointArn=arn, ResourceType="DynamoDB",
                                   Metadata={"targetTableName": unique("t")})["RestoreJobId"]
    described = backup.describe_restore_job(RestoreJobId=job)
    assert described["Status"] == "FAILED" and "IamRoleArn" in described["StatusMessage"]
    with pytest.raises(ClientError, match="ResourceNotFoundException"):
        backup.describe_recovery_point(BackupVaultName="vault", RecoveryPointArn=arn + "-missing")
