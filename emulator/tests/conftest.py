"""Fixtures: one emulator for the session (stopped at the end, also after failures) and helpers to run state
machines on it. Tests that need their own emulator (start/stop, unpatched moto) start it themselves."""

import json
import shutil
import sys
import time
import uuid
from pathlib import Path

import pytest

from emulator.control import running

FIXTURES = Path(__file__).parent / "fixtures"
ACCOUNT = "123456789012"  # moto's default account
REGION = "us-east-1"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/emulator-tests"
TIME_SCALE = 0.01  # a Wait of 100 s takes 1 s


def emulator_env(tmp: Path) -> dict:
    """Settings for an emulator whose Lambdas and Batch jobs are the stand-ins in fixtures/."""
    lambdas, bin_dir = tmp / "lambdas", tmp / "bin"
    lambdas.mkdir()
    bin_dir.mkdir()
    # BA_LAMBDA_DIR/<name>: how the Rust binaries are found (target/debug/<name>).
    for name in ("echo", "registered", "central"):
        shutil.copy(FIXTURES / "runtime_function.py", lambdas / name)
    shutil.copy(FIXTURES / "init_error_function.py", lambdas / "broken")
    # BA_LAMBDA_MAP: a function name mapped to a command line.
    mapping = tmp / "lambdas.json"
    mapping.write_text(json.dumps({"mapped": [sys.executable, str(FIXTURES / "runtime_function.py")]}))
    shutil.copy(FIXTURES / "job.sh", bin_dir / "job.sh")
    return {"BA_EMULATOR_TIME_SCALE": str(TIME_SCALE), "BA_LAMBDA_DIR": str(lambdas),
            "BA_LAMBDA_MAP": str(mapping), "BA_BIN_DIR": str(bin_dir)}


@pytest.fixture(scope="session")
def aws(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("emulator")
    with running(tmp / "state", emulator_env(tmp)) as emulator:
        create_role(emulator)
        yield emulator


def create_role(aws) -> None:
    """The role every resource of the tests names (ROLE_ARN); moto checks that Batch's exists."""
    aws.client("iam").create_role(RoleName="emulator-tests", AssumeRolePolicyDocument="{}")


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def wait_for(condition, timeout: float, what: str):
    """Poll `condition` until it returns something true; fail the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


def create_state_machine(aws, definition: dict) -> str:
    sfn = aws.client("stepfunctions")
    return sfn.create_state_machine(name=unique("sm"), definition=json.dumps(definition),
                                    roleArn=ROLE_ARN)["stateMachineArn"]


def finished(aws, execution_arn: str, timeout: float = 10) -> dict:
    _, _, _, region, account, _ = execution_arn.split(":", 5)  # asked where the execution is, as AWS requires
    sfn = aws.client("stepfunctions", region, account)

    def done():
        description = sfn.describe_execution(executionArn=execution_arn)
        return description if description["status"] != "RUNNING" else None

    return wait_for(done, timeout, f"execution {execution_arn}")


def run_state_machine(aws, definition: dict, execution_input: dict | None = None, timeout: float = 10) -> dict:
    """Create a state machine, run it once, and return DescribeExecution of the finished execution."""
    sfn = aws.client("stepfunctions")
    arn = create_state_machine(aws, definition)
    execution = sfn.start_execution(stateMachineArn=arn, input=json.dumps(execution_input or {}))
    return finished(aws, execution["executionArn"], timeout)


def history(aws, execution_arn: str) -> list[dict]:
    return aws.client("stepfunctions").get_execution_history(executionArn=execution_arn)["events"]


def create_job_queue(aws, command: list[str] | None = None) -> dict:
    """A job queue and a job definition whose command runs fixtures/job.sh (found in BA_BIN_DIR)."""
    batch = aws.client("batch")
    environment = batch.create_compute_environment(
        computeEnvironmentName=unique("local"), type="UNMANAGED", state="ENABLED", serviceRole=ROLE_ARN)
    queue = batch.create_job_queue(jobQueueName=unique("archive"), state="ENABLED", priority=1,
                                   computeEnvironmentOrder=[
                                       {"order": 1, "computeEnvironment": environment["computeEnvironmentArn"]}])
    definition = batch.register_job_definition(
        jobDefinitionName=unique("worker"), type="container", parameters={"seconds": "0", "code": "0"},
        containerProperties={
            "image": "backup-archiver-worker", "command": command or ["job.sh", "Ref::seconds", "Ref::code"],
            "environment": [{"name": "COLOUR", "value": "blue"}],
            "resourceRequirements": [{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "512"}]})
    return {"JobQueue": queue["jobQueueArn"], "JobDefinition": definition["jobDefinitionArn"]}
