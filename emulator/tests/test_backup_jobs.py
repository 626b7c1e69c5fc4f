"""launcher.py's backup_jobs and the ByCreatedAfter/ByCreatedBefore and pagination of listed_jobs: what the
daily digest reads (ListBackupJobs, ListCopyJobs, ListRestoreJobs)."""

import datetime
import json
import time

import pytest
from botocore.exceptions import ClientError
from conftest import ROLE_ARN, unique, wait_for

ACCOUNT, REGION = "777788889999", "eu-west-1"  # an account of its own: the listings hold only this file's jobs
ROLE = f"arn:aws:iam::{ACCOUNT}:role/backup-role"
JOB_TIMEOUT = 10  # seconds; a job takes under one here


class Account:
    def __init__(self, aws):
        self.backup = aws.client("backup", REGION, ACCOUNT)
        self.ec2 = aws.client("ec2", REGION, ACCOUNT)
        self.sqs = aws.client("sqs", REGION, ACCOUNT)
        aws.client("iam", account=ACCOUNT).create_role(RoleName="backup-role", AssumeRolePolicyDocument="{}")
        self.vault = unique("vault")
        self.backup.create_backup_vault(BackupVaultName=self.vault)
        events = aws.client("events", REGION, ACCOUNT)
        self.queue = self.sqs.create_queue(QueueName=unique("backup-events"))["QueueUrl"]
        queue_arn = self.sqs.get_queue_attributes(QueueUrl=self.queue, AttributeNames=["QueueArn"])[
            "Attributes"]["QueueArn"]
        rule = unique("backup-events")
        events.put_rule(Name=rule, EventPattern=json.dumps({"source": ["aws.backup"]}))
        events.put_targets(Rule=rule, Targets=[{"Id": "queue", "Arn": queue_arn}])

    def volume_arn(self) -> str:
        volume = self.ec2.create_volume(AvailabilityZone=f"{REGION}a", Size=2)["VolumeId"]
        return f"arn:aws:ec2:{REGION}:{ACCOUNT}:volume/{volume}"

    def start(self, resource_arn: str, **extra) -> str:
        return self.backup.start_backup_job(BackupVaultName=self.vault, ResourceArn=resource_arn, IamRoleArn=ROLE,
                                            **extra)["BackupJobId"]

    def finished(self, job_id: str) -> dict:
        def done():
            job = self.backup.describe_backup_job(BackupJobId=job_id)
            return job if job["State"] in ("COMPLETED", "FAILED") else None

        return wait_for(done, JOB_TIMEOUT, f"backup job {job_id}")

    def states(self, job_id: str, count: int) -> list[str]:
        received: list[dict] = []

        def arrived():
            for message in self.sqs.receive_message(QueueUrl=self.queue, MaxNumberOfMessages=10).get("Messages", []):
                received.append(json.loads(message["Body"]))
                self.sqs.delete_message(QueueUrl=self.queue, ReceiptHandle=message["ReceiptHandle"])
            found = [e["detail"]["state"] for e in received if e["detail-type"] == "Backup Job State Change"
                     and e["detail"]["backupJobId"] == job_id]
            return found if len(found) >= count else None

        return wait_for(arrived, JOB_TIMEOUT, f"{count} events of backup job {job_id}")


@pytest.fixture(scope="module")
def account(aws):
    return Account(aws)


def test_a_backup_of_a_volume_completes_with_a_snapshot_a_recovery_point_and_events(account):
    volume = account.volume_arn()
    job_id = account.start(volume, Lifecycle={"DeleteAfterDays": 35})
    job = account.finished(job_id)
    assert (job["State"], job["AccountId"], job["ResourceType"], job["BackupVaultName"]) == (
        "COMPLETED", ACCOUNT, "EBS", account.vault)
    assert job["BackupSizeInBytes"] == 2 * 2**30 and "StatusMessage" not in job
    point = job["RecoveryPointArn"]
    assert point.startswith(f"arn:aws:ec2:{REGION}::snapshot/snap-"), point
    snapshot = account.ec2.describe_snapshots(SnapshotIds=[point.rsplit("/", 1)[1]])["Snapshots"][0]
    assert snapshot["VolumeId"] == volume.rsplit("/", 1)[1]
    described = account.backup.describe_recovery_point(BackupVaultName=account.vault, RecoveryPointArn=point)
    assert (described["ResourceArn"], described["Lifecycle"]) == (volume, {"DeleteAfterDays": 35})
    assert account.states(job_id, 3) == ["CREATED", "RUNNING", "COMPLETED"]


def test_a_backup_of_a_missing_volume_fails_with_a_reason(account):
    missing = f"arn:aws:ec2:{REGION}:{ACCOUNT}:volume/vol-0000000000000dead"
    job = account.finished(account.start(missing))
    assert job["State"] == "FAILED" and "vol-0000000000000dead" in job["StatusMessage"], job
    assert "RecoveryPointArn" not in job
    assert account.states(job["BackupJobId"], 3)[-1] == "FAILED"


def test_a_start_is_refused_for_an_unknown_vault_or_role_and_an_idempotency_token_returns_the_first_job(account):
    volume = account.volume_arn()
    with pytest.raises(ClientError, match="ResourceNotFoundException"):
        account.backup.start_backup_job(BackupVaultName=unique("nowhere"), ResourceArn=volume, IamRoleArn=ROLE)
    with pytest.raises(ClientError, match="InvalidParameterValueException"):
        account.backup.start_backup_job(BackupVaultName=account.vault, ResourceArn=volume, IamRoleArn=ROLE_ARN)
    token = unique("token")
    first = account.start(volume, IdempotencyToken=token)
    assert account.start(volume, IdempotencyToken=token) == first
    with pytest.raises(ClientError, match="InvalidRequestException"):
        account.start(account.volume_arn(), IdempotencyToken=token)
    with pytest.raises(ClientError, match="ResourceNotFoundException"):
        account.backup.describe_backup_job(BackupJobId="0175DE71-5784-589F-D8AC-541ACCB4CAC8")
    account.finished(first)


def test_list_backup_jobs_filters_by_creation_time_and_state_and_pages(account):
    before = datetime.datetime.now(datetime.UTC)
    time.sleep(0.01)
    ids = [account.start(account.volume_arn()) for _ in range(3)]
    failed = account.start(f"arn:aws:ec2:{REGION}:{ACCOUNT}:volume/vol-0000000000000beef")
    for job_id in [*ids, failed]:
        account.finished(job_id)
    after = datetime.datetime.now(datetime.UTC)

    def listed(**query) -> list[str]:
        pages = account.backup.get_paginator("list_backup_jobs").paginate(**query, PaginationConfig={"PageSize": 2})
        return [job["BackupJobId"] for page in pages for job in page["BackupJobs"]]

    assert listed(ByCreatedAfter=before) == [*ids, failed]
    assert listed(ByCreatedAfter=before, ByState="FAILED") == [failed]
    assert listed(ByCreatedAfter=after) == []
    assert set(listed(ByCreatedBefore=before)).isdisjoint(ids)
    assert listed(ByCreatedAfter=before, ByResourceArn=account.backup.describe_backup_job(BackupJobId=ids[1])[
        "ResourceArn"]) == [ids[1]]
    page = account.backup.list_backup_jobs(ByCreatedAfter=before, MaxResults=3)
    assert len(page["BackupJobs"]) == 3 and page["NextToken"]
    rest = account.backup.list_backup_jobs(ByCreatedAfter=before, MaxResults=3, NextToken=page["NextToken"])
    assert [job["BackupJobId"] for job in rest["BackupJobs"]] == [failed] and "NextToken" not in rest


def test_list_copy_and_restore_jobs_filter_by_creation_time(account):
    before = datetime.datetime.now(datetime.UTC)
    point = account.finished(account.start(account.volume_arn()))["RecoveryPointArn"]
    destination = f"arn:aws:backup:{REGION}:{ACCOUNT}:backup-vault:{account.vault}"
    copy = account.backup.start_copy_job(RecoveryPointArn=point, SourceBackupVaultName=account.vault,
                                         IamRoleArn=ROLE, DestinationBackupVaultArn=destination)["CopyJobId"]
    restore = account.backup.start_restore_job(RecoveryPointArn=point, IamRoleArn=ROLE, Metadata={})["RestoreJobId"]
    later = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=1)
    copies = account.backup.list_copy_jobs(ByCreatedAfter=before)["CopyJobs"]
    assert [job["CopyJobId"] for job in copies] == [copy]
    assert account.backup.list_copy_jobs(ByCreatedAfter=later)["CopyJobs"] == []
    restores = account.backup.list_restore_jobs(ByCreatedAfter=before)["RestoreJobs"]
    assert [(job["RestoreJobId"], job["Status"]) for job in restores] == [(restore, "FAILED")]
    assert account.backup.list_restore_jobs(ByCreatedBefore=before)["RestoreJobs"] == []
    assert account.backup.list_restore_jobs(ByCreatedAfter=later)["RestoreJobs"] == []
