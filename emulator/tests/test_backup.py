"""launcher.py's `backup_recovery_points` patch: AWS Backup's recovery points (EBS snapshots, and DynamoDB backups
with advanced features) and the restore jobs that restore DynamoDB's (moto has neither)."""

import time

import pytest
from botocore.exceptions import ClientError
from conftest import ACCOUNT, REGION, unique
from test_dynamodb import table_with_backup


def recovery_point(aws) -> tuple[str, str]:
    """A recovery point of a table holding items a and b; returns its ARN and the table's ARN."""
    table_arn, backup = table_with_backup(aws, pitr=False)
    arn = f"arn:aws:backup:{REGION}:{ACCOUNT}:recovery-point:{unique('rp')}"
    aws.add_recovery_point({"RecoveryPointArn": arn, "BackupVaultName": "vault", "ResourceArn": table_arn,
                            "CreationDate": backup["BackupCreationDateTime"].timestamp(),
                            "SourceBackupArn": backup["BackupArn"]})
    return arn, table_arn


def ebs_recovery_point(aws, vault: str) -> tuple[str, str]:
    """An EBS snapshot registered as a recovery point of `vault`, as AWS Backup's EBS backup job makes it:
    (the point's ARN, the snapshot id)."""
    ec2 = aws.client("ec2")
    volume_id = ec2.create_volume(AvailabilityZone=f"{REGION}a", Size=1)["VolumeId"]
    snapshot_id = ec2.create_snapshot(VolumeId=volume_id)["SnapshotId"]
    arn = f"arn:aws:ec2:{REGION}::snapshot/{snapshot_id}"
    aws.add_recovery_point({"RecoveryPointArn": arn, "BackupVaultName": vault, "CreationDate": time.time(),
                            "ResourceArn": f"arn:aws:ec2:{REGION}:{ACCOUNT}:volume/{volume_id}"})
    return arn, snapshot_id


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


def test_deleting_an_ebs_recovery_point_deletes_its_snapshot(aws):
    backup, ec2 = aws.client("backup"), aws.client("ec2")
    arn, snapshot_id = ebs_recovery_point(aws, "vault")
    _, kept_snapshot_id = ebs_recovery_point(aws, "vault")
    assert backup.describe_recovery_point(BackupVaultName="vault", RecoveryPointArn=arn)["ResourceType"] == "EBS"
    backup.delete_recovery_point(BackupVaultName="vault", RecoveryPointArn=arn)
    with pytest.raises(ClientError, match="InvalidSnapshot.NotFound"):
        ec2.describe_snapshots(SnapshotIds=[snapshot_id])
    with pytest.raises(ClientError, match="ResourceNotFoundException"):
        backup.describe_recovery_point(BackupVaultName="vault", RecoveryPointArn=arn)
    with pytest.raises(ClientError, match="ResourceNotFoundException"):
        backup.delete_recovery_point(BackupVaultName="vault", RecoveryPointArn=arn)  # a second time: gone
    assert ec2.describe_snapshots(SnapshotIds=[kept_snapshot_id])["Snapshots"], "only that point's snapshot"


def test_a_recovery_point_is_not_found_in_another_vault_and_is_kept(aws):
    backup, ec2 = aws.client("backup"), aws.client("ec2")
    arn, snapshot_id = ebs_recovery_point(aws, "vault")
    for call in (backup.describe_recovery_point, backup.delete_recovery_point):
        with pytest.raises(ClientError, match="ResourceNotFoundException") as error:
            call(BackupVaultName="other-vault", RecoveryPointArn=arn)
        assert error.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert ec2.describe_snapshots(SnapshotIds=[snapshot_id])["Snapshots"]
    assert backup.describe_recovery_point(BackupVaultName="vault", RecoveryPointArn=arn)["Status"] == "COMPLETED"
