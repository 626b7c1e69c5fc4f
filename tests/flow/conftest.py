"""Fixtures of the end-to-end flows: one emulator for the session (stopped at the end, also after a failure),
the project deployed into it twice from infra/template.yaml (recovery points kept / deleted), a real ext4 image
on a loop device for the worker, a Slack webhook stand-in and a fault-injecting proxy in front of the emulator
for the Lambdas and the worker. After each test, every AWS call the deployment's functions, jobs and state
machines made is evaluated against their roles' policies (emulator/iam_check.py): a call AWS would deny fails
the test. Helpers to emit events and read executions follow."""

import copy
import json
import os
import subprocess
import time
import uuid
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from emulator import iam_check
from emulator.control import running
from emulator.deploy import REGION, Settings, deploy, target_dir

from faults import FaultProxy, wait_until
from images import loop_device, populate
from slack import FakeSlack

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "core" / "tests" / "fixtures"
TIME_SCALE = 0.01  # Wait states and Retry intervals: a 60 s backoff takes 0.6 s
# The CLI, the worker, and the one binary every Lambda function runs (infra/template.yaml's Code: lambdas.zip).
BINARIES = ["backup-archiver", "batch-worker", "lambdas"]
EXECUTION_TIMEOUT = 60  # seconds for one flow, end to end (they take a few)

KEEP_VAULT = "archive-vault"  # the "keep" stack's vault: recovery points are kept
DELETE_VAULT = "delete-vault"  # the "delete" stack's vault: recovery points are deleted once verified


def bin_dir() -> Path:
    return target_dir() / "debug"


@pytest.fixture(scope="session")
def binaries():
    missing = [name for name in BINARIES if not os.access(bin_dir() / name, os.X_OK)]
    if missing:
        pytest.fail(f"missing in {bin_dir()}: {', '.join(missing)}; run `cargo build --workspace --bins` first")
    return bin_dir()


@pytest.fixture(scope="session")
def source_tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("disk") / "root"
    root.mkdir()
    return root, populate(root)


@pytest.fixture(scope="session")
def device(tmp_path_factory, source_tree):
    image = tmp_path_factory.mktemp("image") / "disk.img"
    with loop_device(image, source_tree[0]) as path:
        yield path


@pytest.fixture(scope="session")
def slack():
    server = FakeSlack()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def aws(tmp_path_factory, binaries):
    tmp = tmp_path_factory.mktemp("emulator")
    lambda_map = tmp / "lambdas.json"
    lambda_map.write_text("{}\n")
    env = {"BA_EMULATOR_TIME_SCALE": str(TIME_SCALE), "BA_LAMBDA_MAP": str(lambda_map), "BA_BIN_DIR": str(binaries)}
    with running(tmp / "state", env) as emulator:
        emulator.lambda_map = lambda_map
        yield emulator


class IamAudit:
    """The deployed roles' policies, and how many of the recorded calls have been evaluated."""

    def __init__(self, aws):
        self.aws = aws
        self.roles: dict = {}
        self.resource_policies: dict = {}
        self.checked = 0
        self.approximations: set = set()

    def take(self) -> list[dict]:
        """The calls recorded since the last evaluation, which no longer belong to the next one."""
        calls = self.aws.calls(self.checked)
        self.checked += len(calls)
        self.approximations.update(iam_check.approximations(calls))
        return calls

    def evaluate(self, calls: list[dict]) -> list[iam_check.Finding]:
        return iam_check.evaluate(calls, self.roles, self.resource_policies)

    def fail_on_denials(self) -> None:
        """Fails the running test (or the session's end) if AWS would deny a call made since the last check."""
        findings = self.evaluate(self.take())
        if findings:
            pytest.fail("AWS would deny these calls (role, call: action on resource: why):\n"
                        + "\n".join(f"  {finding}" for finding in findings), pytrace=False)


@pytest.fixture(scope="session")
def iam(aws, pytestconfig):
    audit = IamAudit(aws)
    pytestconfig.iam_audit = audit  # for pytest_terminal_summary
    yield audit
    audit.fail_on_denials()  # what executions still running after the last test did


def pytest_terminal_summary(terminalreporter, config):
    audit = getattr(config, "iam_audit", None)
    if audit is not None and audit.approximations:
        terminalreporter.section("IAM evaluation: approximations (emulator/calls.py)")
        for line in sorted(audit.approximations):
            terminalreporter.write_line(line)


@pytest.fixture(autouse=True)
def iam_checked(request):
    """After the test, every call made since the last check must be one that AWS would allow."""
    if "aws" not in request.fixturenames:
        yield
        return
    audit = request.getfixturevalue("iam")
    yield
    audit.fail_on_denials()


@pytest.fixture(scope="session")
def proxy(aws):
    server = FaultProxy(int(aws.endpoint.rsplit(":", 1)[1])).start()
    yield server
    server.stop()


def settings(name: str, vault: str, delete: bool, device: str, proxy, slack) -> Settings:
    return Settings(
        device=device, name=name, vaults=[vault], bucket=f"{name}-archive", delete_recovery_point=delete,
        lambda_endpoint=proxy.endpoint, job_endpoint=proxy.endpoint, slack_webhook_url=slack.url, sns_topic=True,
        # One SDK attempt: an injected transient fault reaches the state machine's Retry instead of being
        # absorbed by the SDK's own retries (3 attempts in production).
        lambda_environment={"AWS_MAX_ATTEMPTS": "1"}, job_timeout_seconds=60, bin_dir=str(bin_dir()),
    )


@pytest.fixture(scope="session")
def keep_stack(aws, proxy, slack, device, iam):
    s = settings("keep", KEEP_VAULT, False, device, proxy, slack)
    stack = deploy(aws, s, aws.lambda_map)
    stack.settings = s
    iam.roles.update(stack.roles)
    iam.resource_policies.update(stack.resource_policies)
    return stack


@pytest.fixture(scope="session")
def delete_stack(aws, proxy, slack, device, iam):
    s = settings("delete", DELETE_VAULT, True, device, proxy, slack)
    stack = deploy(aws, s, aws.lambda_map)
    stack.settings = s
    iam.roles.update(stack.roles)
    iam.resource_policies.update(stack.resource_policies)
    return stack


@pytest.fixture(autouse=True)
def fresh_faults(request):
    """Every test starts with no faults armed, no Slack messages recorded and no SNS messages queued (an earlier
    test may not have read its own), so that a test's "one message" is its own whatever the order."""
    if "proxy" in request.fixturenames:
        request.getfixturevalue("proxy").reset()
    if "slack" in request.fixturenames:
        request.getfixturevalue("slack").reset()
    for stack in ("keep_stack", "delete_stack"):
        if stack in request.fixturenames:
            sns_messages(request.getfixturevalue("aws"), request.getfixturevalue(stack))
    yield
    if "proxy" in request.fixturenames:
        request.getfixturevalue("proxy").reset()


# ---------------------------------------------------------------------------------------------------------------
# Helpers.

def snapshot(aws) -> tuple[str, str]:
    """A volume and its snapshot in moto: the recovery point an AWS Backup job would have made."""
    ec2 = aws.client("ec2")
    volume_id = ec2.create_volume(AvailabilityZone=f"{REGION}a", Size=1, VolumeType="gp3")["VolumeId"]
    snapshot_id = ec2.create_snapshot(VolumeId=volume_id, Description="AWS Backup recovery point")["SnapshotId"]
    return volume_id, snapshot_id


def backup_event(snapshot_id: str, volume_id: str, vault: str, resource_type: str = "EBS") -> dict:
    """The reference EventBridge `Backup Job State Change` (COMPLETED, EBS), about this snapshot and vault."""
    event = json.loads((FIXTURES / "eventbridge-backup-job-completed-ebs.json").read_text())
    event = copy.deepcopy(event)
    detail = event["detail"]
    detail["backupJobId"] = str(uuid.uuid4()).upper()
    detail["backupVaultName"] = vault
    detail["backupVaultArn"] = f"arn:aws:backup:{REGION}:123456789012:backup-vault:{vault}"
    detail["resourceArn"] = f"arn:aws:ec2:{REGION}:123456789012:volume/{volume_id}"
    detail["resourceType"] = resource_type
    detail["backupSizeInBytes"] = str(1 << 30)
    event["resources"] = [f"arn:aws:ec2:{REGION}::snapshot/{snapshot_id}"]
    event["region"] = REGION
    event["account"] = "123456789012"
    return event


def backup_job(aws, vault: str, resource_type: str = "EBS") -> tuple[str, dict]:
    """What an AWS Backup EBS job leaves behind: a snapshot, registered as a recovery point in `vault` (the
    emulator's AWS Backup; DeleteRecoveryPoint deletes the snapshot), and the job's COMPLETED event about it.
    Returns (snapshot id, event)."""
    volume_id, snapshot_id = snapshot(aws)
    event = backup_event(snapshot_id, volume_id, vault, resource_type)
    aws.add_recovery_point({"RecoveryPointArn": event["resources"][0], "BackupVaultName": vault,
                            "ResourceArn": event["detail"]["resourceArn"], "CreationDate": time.time()})
    return snapshot_id, event


def recovery_point_fate(aws, event: dict) -> str:
    """"kept" when the recovery point of a `backup_job` event is still in its vault and its snapshot in EC2,
    "deleted" when neither is; one without the other fails."""
    vault, arn = event["detail"]["backupVaultName"], event["resources"][0]
    try:
        aws.client("backup").describe_recovery_point(BackupVaultName=vault, RecoveryPointArn=arn)
        point = True
    except ClientError as error:
        assert error.response["Error"]["Code"] == "ResourceNotFoundException", error
        point = False
    try:
        aws.client("ec2").describe_snapshots(SnapshotIds=[arn.rsplit("/", 1)[1]])
        snapshot_left = True
    except ClientError as error:
        assert error.response["Error"]["Code"] == "InvalidSnapshot.NotFound", error
        snapshot_left = False
    assert point == snapshot_left, f"{arn}: recovery point exists: {point}, its snapshot exists: {snapshot_left}"
    return "kept" if point else "deleted"


def put_event(aws, event: dict) -> None:
    answer = aws.client("events").put_events(Entries=[{
        "Source": event["source"], "DetailType": event["detail-type"], "Detail": json.dumps(event["detail"]),
        "Resources": event["resources"],
    }])
    assert answer["FailedEntryCount"] == 0, answer


def executions(aws, stack) -> list[str]:
    sfn = aws.client("stepfunctions")
    return [e["executionArn"] for e in sfn.list_executions(stateMachineArn=stack.state_machine_arn)["executions"]]


def new_executions(aws, stack, before: list[str], count: int = 1, timeout: float = 10) -> list[str]:
    return wait_until(lambda: (lambda new: new if len(new) >= count else None)(
        [arn for arn in executions(aws, stack) if arn not in before]), timeout, f"{count} new execution(s)")


def finished(aws, execution_arn: str, timeout: float = EXECUTION_TIMEOUT) -> dict:
    sfn = aws.client("stepfunctions")

    def done():
        d = sfn.describe_execution(executionArn=execution_arn)
        return d if d["status"] != "RUNNING" else None

    return wait_until(done, timeout, f"execution {execution_arn}")


def history(aws, execution_arn: str) -> list[dict]:
    sfn = aws.client("stepfunctions")
    events, token = [], None
    while True:
        page = sfn.get_execution_history(executionArn=execution_arn, **({"nextToken": token} if token else {}))
        events += page["events"]
        token = page.get("nextToken")
        if not token:
            return events


def states_entered(aws, execution_arn: str) -> list[str]:
    return [e["stateEnteredEventDetails"]["name"] for e in history(aws, execution_arn)
            if e["type"].endswith("StateEntered")]


def submitted_jobs(aws, execution_arn: str) -> list[str]:
    return [json.loads(e["taskSubmittedEventDetails"]["output"])["JobId"] for e in history(aws, execution_arn)
            if e["type"] == "TaskSubmitted"]


def volumes_of(aws, execution_arn: str) -> list[dict]:
    """Volumes tagged with the execution that still exist (moto forgets deleted volumes)."""
    return aws.client("ec2").describe_volumes(
        Filters=[{"Name": "tag:backup-archiver:execution", "Values": [execution_arn]}])["Volumes"]


def created_volume_ids(aws, execution_arn: str) -> list[str]:
    """The volumes CreateVolume returned, from the history."""
    ids = []
    for e in history(aws, execution_arn):
        if e["type"] == "TaskStateExited" and e["stateExitedEventDetails"]["name"] == "CreateVolume":
            output = json.loads(e["stateExitedEventDetails"]["output"])
            if "temporary_volume" in output:
                ids.append(output["temporary_volume"]["volume_id"])
    return ids


def sns_messages(aws, stack) -> list[str]:
    sqs = aws.client("sqs")
    messages = []
    while True:
        got = sqs.receive_message(QueueUrl=stack.sns_queue_url, MaxNumberOfMessages=10).get("Messages", [])
        if not got:
            return messages
        for m in got:
            messages.append(m["Body"])
            sqs.delete_message(QueueUrl=stack.sns_queue_url, ReceiptHandle=m["ReceiptHandle"])


def cli(aws, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "AWS_ENDPOINT_URL": aws.endpoint, "AWS_ACCESS_KEY_ID": "test",
           "AWS_SECRET_ACCESS_KEY": "test", "AWS_REGION": REGION, "AWS_DEFAULT_REGION": REGION}
    for unwanted in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
        env.pop(unwanted, None)
    return subprocess.run([str(bin_dir() / "backup-archiver"), "--no-progress", *args], env=env,
                          capture_output=True, text=True, timeout=timeout)


def output_of(execution: dict) -> dict:
    return json.loads(execution.get("output") or "null")


def wait_for_running_job(aws, timeout: float = 20) -> dict:
    """The one Batch job the router reports RUNNING, with its pid."""
    import http.client

    host, port = aws.endpoint.removeprefix("http://").split(":")

    def running_job():
        connection = http.client.HTTPConnection(host, int(port), timeout=5)
        connection.request("GET", "/_emulator/jobs")
        jobs = json.loads(connection.getresponse().read())
        connection.close()
        # The router marks a job RUNNING a moment before its process (and pid) exists.
        live = [dict(job, job_id=job_id) for job_id, job in jobs.items() if job["status"] == "RUNNING" and job["pid"]]
        return live[0] if live else None

    return wait_until(running_job, timeout, "a running Batch job")


def settle(seconds: float = 1.0) -> None:
    """Give asynchronous deliveries (EventBridge targets) a moment before asserting that nothing happened."""
    time.sleep(seconds)
