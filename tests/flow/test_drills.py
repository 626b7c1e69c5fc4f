"""Restore drills end to end (issue 14, items 5 and 6): three archives made by the real CLI from the session's ext4
loop device (two files archives, one raw) in a stack of their own, one of them corrupted on purpose (bytes of one
segment overwritten in S3, its size kept), then the drill's state machine, deployed from infra/template.yaml, run
as its schedule would start it: pick-drill picks all three (the newest among them), a real `batch-worker drill` job
per archive reads it back in full (the raw one also restored into an EBS snapshot through the emulator's EBS direct
APIs, then deleted), drill-report keeps the report under <prefix>/.drills/ and sends one message. The report and
the message name the corrupted archive as failed and the others as passed; no snapshot is left. A drill of the
sound newest archive passes; a drill that cannot run (a bad input) sends its error once and fails. Every call the
functions, jobs and state machine made passes the IAM check.

The emulator does not run schedule rules, so the test starts the execution with the Scheduled Event the
DrillScheduleRule would hand it."""

import json
import time

import pytest

from conftest import REGION, cli, finished, history, settings, sns_messages
from emulator.deploy import deploy

PREFIX = "backups"
ARCHIVES = [("vol-0000000000000d001", "auto"), ("vol-0000000000000d002", "raw"), ("vol-0000000000000d003", "auto")]
CORRUPTED = 0  # the oldest: the newest is always drilled, the others by the seed


@pytest.fixture(scope="module")
def drill_stack(aws, proxy, slack, device, iam):
    """A stack of its own, so that its bucket holds only this file's archives; drills restore raw archives into
    snapshots (DrillRestoreToSnapshot), so that the job role's EBS statements are exercised too."""
    s = settings("drill", "drill-vault", False, device, proxy, slack)
    s.parameters = {"DrillRestoreToSnapshot": "true"}
    stack = deploy(aws, s, aws.lambda_map)
    stack.settings = s
    iam.roles.update(stack.roles)
    iam.resource_policies.update(stack.resource_policies)
    return stack


@pytest.fixture(scope="module")
def archives(aws, drill_stack, device) -> list[str]:
    """Three archives of the session's device under the stack's prefix, oldest first; returns their locations."""
    locations = []
    for n, (volume, mode) in enumerate(ARCHIVES, start=1):
        location = f"s3://{drill_stack.bucket}/{PREFIX}/ebs/{volume}/2026/12/0{n}/snap-drill{n}"
        done = cli(aws, "archive", "--device", device, "--to", location, "--mode", mode, "--json")
        assert done.returncode == 0, done.stderr
        locations.append(location)
        # The drill knows an archive's age by its manifest's LastModified, which S3 keeps to the second.
        time.sleep(1.1)
    return locations


def corrupt(aws, location: str) -> str:
    """Overwrites bytes in the middle of the archive's first segment, keeping its size; returns the segment's key."""
    s3 = aws.client("s3")
    bucket, prefix = location.removeprefix("s3://").split("/", 1)
    manifest = json.loads(s3.get_object(Bucket=bucket, Key=f"{prefix}/manifest.json")["Body"].read())
    key = manifest["objects"][0].get("segments", [{"key": manifest["objects"][0]["key"]}])[0]["key"]
    body = bytearray(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    middle = len(body) // 2
    body[middle:middle + 64] = bytes(b ^ 0xFF for b in body[middle:middle + 64])
    s3.put_object(Bucket=bucket, Key=key, Body=bytes(body))
    assert s3.head_object(Bucket=bucket, Key=key)["ContentLength"] == len(body)
    return key


def scheduled_event() -> dict:
    """EventBridge's Scheduled Event, as the DrillScheduleRule delivers it to the state machine."""
    return {"version": "0", "id": "7bf73129-1428-4cd3-a780-95db273d1602", "detail-type": "Scheduled Event",
            "source": "aws.events", "account": "123456789012", "time": "2026-12-06T03:00:00Z", "region": REGION,
            "resources": [f"arn:aws:events:{REGION}:123456789012:rule/drill-restore-drill"], "detail": {}}


def snapshots_of_drills(aws) -> list[str]:
    return [s["SnapshotId"] for s in aws.client("ec2").describe_snapshots(
        Filters=[{"Name": "tag-key", "Values": ["backup-archiver:drill"]}])["Snapshots"]]


def test_a_drill_over_three_archives_names_the_corrupted_one(aws, drill_stack, archives, slack):
    corrupted_key = corrupt(aws, archives[CORRUPTED])
    sfn = aws.client("stepfunctions")
    execution = sfn.start_execution(stateMachineArn=drill_stack.state_machines["restore-drill"],
                                    input=json.dumps(scheduled_event()))["executionArn"]
    result = finished(aws, execution, timeout=180)
    assert result["status"] == "FAILED", result
    failures = [e for e in history(aws, execution) if "Failed" in e["type"] or "Caught" in e["type"]]
    assert result.get("error") == "DrillFailed", json.dumps(failures, default=str)
    jobs = [e for e in history(aws, execution) if e["type"] == "TaskSubmitted"]
    assert len(jobs) == 3, "one Batch job per archive"

    # The report, kept under <prefix>/.drills/<drill id>.json.
    s3 = aws.client("s3")
    listed = s3.list_objects_v2(Bucket=drill_stack.bucket, Prefix=f"{PREFIX}/.drills/")["Contents"]
    [report_key] = [o["Key"] for o in listed if o["Key"].count("/") == 2 and o["Key"].endswith(".json")]
    report = json.loads(s3.get_object(Bucket=drill_stack.bucket, Key=report_key)["Body"].read())
    verdicts = {a["location"]: a["verdict"] for a in report["archives"]}
    assert verdicts == {archives[0]: "failed", archives[1]: "passed", archives[2]: "passed"}, report
    assert report["passed"] is False and report["candidates"] == 3, report
    newest = [a["location"] for a in report["archives"] if a["newest"]]
    assert newest == [archives[2]], report
    [failed] = [a for a in report["archives"] if a["verdict"] == "failed"]
    assert any(p.startswith(f"{corrupted_key}: ") for p in failed["problems"]), failed
    [raw] = [a for a in report["archives"] if a["location"] == archives[1]]
    [restore] = raw["restores"]
    assert restore["ok"] and restore["deleted"] and restore["snapshot_id"].startswith("snap-"), raw
    assert restore["blocks_written"] > 0, raw
    assert snapshots_of_drills(aws) == [], "the drill's snapshot was deleted"

    # One message, at once, naming the corrupted archive.
    [message] = slack.delivered()
    assert message["text"].startswith(":rotating_light: Restore drill FAILED: 1 of 3 archives"), message
    blocks = json.dumps(message["attachments"][0]["blocks"])
    assert archives[0] in blocks and corrupted_key in blocks, blocks
    [text] = sns_messages(aws, drill_stack)
    assert text.startswith(f"Restore drill FAILED: 1 of 3 archives in s3://{drill_stack.bucket}\n\n- FAILED "
                           f"{archives[0]}"), text
    assert f"s3://{drill_stack.bucket}/{report_key}" in text, text


def test_a_drill_of_sound_archives_passes_and_reports_once(aws, drill_stack, archives, slack):
    sfn = aws.client("stepfunctions")
    # The newest only (archives 1 of 3): sound, so the drill passes.
    execution = sfn.start_execution(stateMachineArn=drill_stack.state_machines["restore-drill"],
                                    input=json.dumps({"archives": 1, "seed": 1}))["executionArn"]
    result = finished(aws, execution, timeout=120)
    assert result["status"] == "SUCCEEDED", result
    output = json.loads(result["output"])
    assert output["report"]["passed"] is True and output["report"]["failed"] == [], output
    assert output["drill"]["seed"] == 1 and [t["location"] for t in output["drill"]["targets"]] == [archives[2]]
    [message] = slack.delivered()
    assert message["text"] == (f":white_check_mark: Restore drill passed: 1 archive in s3://{drill_stack.bucket} "
                               "read back and matched"), message
    assert len(sns_messages(aws, drill_stack)) == 1


def test_a_drill_that_cannot_run_says_why_once_and_fails(aws, drill_stack, slack):
    sfn = aws.client("stepfunctions")
    execution = sfn.start_execution(stateMachineArn=drill_stack.state_machines["restore-drill"],
                                    input=json.dumps({"archives": 0}))["executionArn"]
    result = finished(aws, execution, timeout=60)
    assert (result["status"], result.get("error")) == ("FAILED", "DrillStopped"), result
    [message] = slack.delivered()
    assert message["text"] == ":rotating_light: Restore drill FAILED in the archive bucket: InvalidEvent", message
    assert "a drill reads 1 to 50 archives" in json.dumps(message["attachments"][0]["blocks"]), message
    [text] = sns_messages(aws, drill_stack)
    assert text.startswith("Restore drill FAILED in the archive bucket: InvalidEvent\n\nCause: "), text
