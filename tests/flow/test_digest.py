"""The daily digest end to end (issue 11, item 6): the real daily-digest Lambda, deployed from infra/template.yaml
into the emulator, over a seeded day of AWS Backup jobs (StartBackupJob in the emulator: volumes that exist complete
with a recovery point, missing ones fail with a reason) and an archive's manifest in its stack's bucket, sends one
Slack message and one SNS text with the day's counts and failures; a day with nothing in it sends nothing under the
default DigestSilence (when-empty). Every call it makes passes the IAM check.

The emulator does not run schedule rules, so each test invokes the function with the "Scheduled Event" EventBridge
would hand it at DigestHourUtc; its `time` ends the digest's 24 hours."""

import datetime
import json
import time

import pytest
from botocore.exceptions import ClientError

from conftest import REGION, settings, sns_messages
from emulator.deploy import deploy

ACCOUNT = "123456789012"
WORKLOAD_VAULT = "digest-workload-vault"  # no stack archives from it: its COMPLETED jobs start no flow
BACKUP_ROLE = "digest-backup-role"
JOB_TIMEOUT = 20  # seconds; a job takes under one in the emulator
ARCHIVE_BYTES = 3 * 2**20 + 17


@pytest.fixture(scope="module")
def digest_stack(aws, proxy, slack, device, iam):
    """A stack of its own, so that its bucket holds only this file's archives (jobs are the account's anyway)."""
    s = settings("digest", "digest-archive-vault", False, device, proxy, slack)
    stack = deploy(aws, s, aws.lambda_map)
    stack.settings = s
    iam.roles.update(stack.roles)
    iam.resource_policies.update(stack.resource_policies)
    return stack


def scheduled_event(at: datetime.datetime) -> dict:
    """EventBridge's Scheduled Event, as the DigestRule delivers it."""
    return {"version": "0", "id": "89d1a02d-5ec7-412e-82f5-13505f849b41", "detail-type": "Scheduled Event",
            "source": "aws.events", "account": ACCOUNT, "time": at.strftime("%Y-%m-%dT%H:%M:%SZ"), "region": REGION,
            "resources": [f"arn:aws:events:{REGION}:{ACCOUNT}:rule/digest-daily-digest"], "detail": {}}


def run_digest(aws, stack, at: datetime.datetime) -> dict:
    response = aws.client("lambda").invoke(FunctionName=stack.functions["daily-digest"],
                                           Payload=json.dumps(scheduled_event(at)))
    answer = json.loads(response["Payload"].read())
    assert "FunctionError" not in response, answer
    return answer


def seed_jobs(aws) -> tuple[list[str], list[str]]:
    """Two backup jobs that complete and two that fail, finished; returns (completed ids, failed ids)."""
    backup, ec2 = aws.client("backup"), aws.client("ec2")
    try:
        backup.create_backup_vault(BackupVaultName=WORKLOAD_VAULT)
        aws.client("iam").create_role(RoleName=BACKUP_ROLE, AssumeRolePolicyDocument="{}")
    except ClientError as error:  # a rerun in the same emulator
        assert error.response["Error"]["Code"] in ("AlreadyExistsException", "EntityAlreadyExists"), error

    def start(volume_id: str) -> str:
        return backup.start_backup_job(BackupVaultName=WORKLOAD_VAULT, IamRoleArn=f"arn:aws:iam::{ACCOUNT}:role/"
                                       f"{BACKUP_ROLE}", ResourceArn=f"arn:aws:ec2:{REGION}:{ACCOUNT}:volume/"
                                       f"{volume_id}")["BackupJobId"]

    completed = [start(ec2.create_volume(AvailabilityZone=f"{REGION}a", Size=1)["VolumeId"]) for _ in range(2)]
    failed = [start(f"vol-00000000000{n}dead") for n in (1, 2)]
    deadline = time.monotonic() + JOB_TIMEOUT
    for job_id in completed + failed:
        while backup.describe_backup_job(BackupJobId=job_id)["State"] not in ("COMPLETED", "FAILED"):
            assert time.monotonic() < deadline, f"backup job {job_id} did not finish"
            time.sleep(0.1)
    return completed, failed


def write_archive(aws, stack, finished: datetime.datetime) -> None:
    """The manifest an archive flow leaves last, in the stack's bucket under its prefix."""
    stamp = finished.strftime("%Y-%m-%dT%H:%M:%SZ")
    manifest = {
        "format": 1, "tool_version": "0.1.0", "source": {"device": "/dev/nvme1n1", "size": 1 << 30},
        "objects": [{"key": "backups/ebs/vol-digest/disk.raw.gz", "mode": "raw", "compression": "gzip",
                     "size": ARCHIVE_BYTES, "sha256": "ab" * 32, "bytes_in": 1 << 30, "bytes_out": ARCHIVE_BYTES,
                     "content_sha256": "cd" * 32}],
        "started_at": stamp, "finished_at": stamp}
    key = f"{stack.settings.prefix}/ebs/vol-digest/{finished:%Y/%m/%d}/snap-digest/manifest.json"
    aws.client("s3").put_object(Bucket=stack.bucket, Key=key, Body=json.dumps(manifest).encode())


def listed(aws, operation: str, key: str, state: str, since: datetime.datetime, until: datetime.datetime) -> str:
    """`2 COMPLETED, 1 FAILED` for the account's jobs of one kind in the window, as the emulator lists them."""
    counts: dict[str, int] = {}
    pages = aws.client("backup").get_paginator(operation).paginate(ByCreatedAfter=since, ByCreatedBefore=until)
    for job in (job for page in pages for job in page[key]):
        counts[job[state]] = counts.get(job[state], 0) + 1
    return ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))


def test_a_day_of_jobs_and_an_archive_is_one_message_with_its_counts_and_failures(aws, digest_stack, slack):
    completed, failed = seed_jobs(aws)
    now = datetime.datetime.now(datetime.UTC).replace(microsecond=0) + datetime.timedelta(seconds=1)
    write_archive(aws, digest_stack, now - datetime.timedelta(minutes=5))
    write_archive(aws, digest_stack, now - datetime.timedelta(hours=30))  # yesterday's: not counted
    answer = run_digest(aws, digest_stack, now)
    assert answer["sent"] == ["Slack webhook", "SNS topic"], answer

    [message] = slack.delivered()
    since = now - datetime.timedelta(hours=24)
    backups = listed(aws, "list_backup_jobs", "BackupJobs", "State", since, now)
    # Every backup job of the session is this test's (nothing else starts one): two of each.
    assert backups == "2 COMPLETED, 2 FAILED"
    assert message["text"].startswith(":rotating_light: AWS Backup daily digest 123456789012 / us-east-1: "), message
    blocks = message["attachments"][0]["blocks"]
    fields = {f["text"].split("\n")[0].strip("*"): f["text"].split("\n")[1] for f in blocks[1]["fields"]}
    assert fields["Backup jobs"] == backups
    assert fields["Archives written"] == "1 (3.0 MiB)"
    for kind, operation, key, state in (("Copy jobs", "list_copy_jobs", "CopyJobs", "State"),
                                        ("Restore jobs", "list_restore_jobs", "RestoreJobs", "Status")):
        assert fields.get(kind, "") == listed(aws, operation, key, state, since, now), (kind, fields)
    failures = "\n".join(b["text"]["text"] for b in blocks[2:-1] if b["type"] == "section")
    for job_id, volume in zip(failed, ("vol-000000000001dead", "vol-000000000002dead")):
        assert f"Backup job FAILED: EBS {volume} in {WORKLOAD_VAULT} (job {job_id})" in failures, failures
        assert f"Resource arn:aws:ec2:{REGION}:{ACCOUNT}:volume/{volume} was not found" in failures, failures
    urls = [b["accessory"]["url"] for b in blocks if "accessory" in b]
    for job_id in failed:
        assert (f"https://{REGION}.console.aws.amazon.com/backup/home?region={REGION}#/jobs/backup/details/{job_id}"
                in urls), urls
    assert not any(job_id in failures for job_id in completed)

    [text] = sns_messages(aws, digest_stack)
    assert "Backup jobs: 2 COMPLETED, 2 FAILED" in text and "Archives written: 1 (3.0 MiB)" in text, text


def test_an_empty_day_sends_nothing_when_silent(aws, digest_stack, slack):
    # A day long before the session: no job, no archive.
    answer = run_digest(aws, digest_stack, datetime.datetime(2020, 1, 2, 7, tzinfo=datetime.UTC))
    assert answer == {"silent": "when-empty", "title": "AWS Backup daily digest 123456789012 / us-east-1: no jobs"}
    assert slack.delivered() == []
    assert sns_messages(aws, digest_stack) == []
