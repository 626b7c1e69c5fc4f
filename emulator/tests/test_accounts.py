"""Two accounts on one emulator: clients of another account (control.py's `client(account=…)`); launcher.py's
state_machine_identity: a state machine's calls are made in its own account, or in the account of a task's
Credentials.RoleArn; and the Lambda host's functions and the router's Batch jobs act in their role's account,
with keys that name the role (emulator/identity.py)."""

import io
import json
import zipfile

import boto3
import pytest
from botocore.exceptions import ClientError
from conftest import finished, unique, wait_for

from emulator import identity
from emulator.control import DEFAULT_ACCOUNT

CENTRAL = "444455556666"
REGION = "us-west-2"


def describe_volume(credentials: dict | None = None) -> dict:
    state = {"Type": "Task", "Resource": "arn:aws:states:::aws-sdk:ec2:describeVolumes", "End": True,
             "Parameters": {"VolumeIds.$": "States.Array($.volume_id)"},
             "ResultSelector": {"Id.$": "$.Volumes[0].VolumeId"}}
    return {**state, "Credentials": credentials} if credentials else state


def run(aws, account: str, definition: dict, execution_input: dict) -> dict:
    sfn = aws.client("stepfunctions", REGION, account)
    arn = sfn.create_state_machine(name=unique("sm"), definition=json.dumps(definition),
                                   roleArn=f"arn:aws:iam::{account}:role/flow")["stateMachineArn"]
    return finished(aws, sfn.start_execution(stateMachineArn=arn, input=json.dumps(execution_input))["executionArn"])


def acts_as(aws, key: str) -> str:
    """The role `key` names, after checking that a call signed with it acts in CENTRAL (through the router)."""
    caller = boto3.client("sts", endpoint_url=aws.endpoint, region_name=REGION, aws_access_key_id=key,
                          aws_secret_access_key="unchecked").get_caller_identity()
    assert caller["Account"] == CENTRAL, caller
    return identity.role_of(key)


@pytest.fixture(scope="module")
def central_volume(aws) -> str:
    return aws.client("ec2", REGION, CENTRAL).create_volume(AvailabilityZone=f"{REGION}a", Size=1)["VolumeId"]


def test_a_client_of_another_account_sees_only_that_account(aws, central_volume):
    with pytest.raises(ClientError, match="InvalidVolume.NotFound"):
        aws.client("ec2", REGION).describe_volumes(VolumeIds=[central_volume])
    caller = aws.client("sts", REGION, CENTRAL).get_caller_identity()
    assert caller["Account"] == CENTRAL and aws.client("sts").get_caller_identity()["Account"] == DEFAULT_ACCOUNT


def test_a_state_machine_calls_aws_in_its_own_account_also_in_parallel_branches(aws, central_volume):
    definition = {"StartAt": "Both", "States": {"Both": {"Type": "Parallel", "End": True, "Branches": [
        {"StartAt": "Describe", "States": {"Describe": describe_volume()}} for _ in range(2)]}}}
    execution = run(aws, CENTRAL, definition, {"volume_id": central_volume})
    assert execution["status"] == "SUCCEEDED", execution
    assert json.loads(execution["output"]) == [{"Id": central_volume}] * 2


def test_a_task_with_credentials_calls_aws_in_the_role_s_account(aws, central_volume):
    definition = {"StartAt": "Describe", "States": {
        "Describe": describe_volume({"RoleArn": f"arn:aws:iam::{CENTRAL}:role/reader"})}}
    execution = run(aws, DEFAULT_ACCOUNT, definition, {"volume_id": central_volume})
    assert execution["status"] == "SUCCEEDED", execution
    own = run(aws, DEFAULT_ACCOUNT, {"StartAt": "Describe", "States": {"Describe": describe_volume()}},
              {"volume_id": central_volume})
    assert own["status"] == "FAILED", "without the credentials, the volume is another account's"


def test_a_function_of_another_account_acts_in_that_account_with_its_role(aws):
    aws.client("iam", account=CENTRAL).create_role(RoleName="central-function", AssumeRolePolicyDocument="{}")
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as archive:
        archive.writestr("bootstrap", "")
    functions = aws.client("lambda", REGION, CENTRAL)
    functions.create_function(FunctionName="central", Runtime="provided.al2023", Handler="bootstrap",
                              Role=f"arn:aws:iam::{CENTRAL}:role/central-function", Code={"ZipFile": code.getvalue()})
    answer = json.loads(functions.invoke(FunctionName="central", Payload=b"{}")["Payload"].read())
    assert acts_as(aws, answer["env"]["AWS_ACCESS_KEY_ID"]) == f"arn:aws:iam::{CENTRAL}:role/central-function"


def test_a_batch_job_of_another_account_acts_in_that_account_with_its_job_role(aws):
    batch, iam = aws.client("batch", REGION, CENTRAL), aws.client("iam", account=CENTRAL)
    service_role = iam.create_role(RoleName=unique("batch"), AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    environment = batch.create_compute_environment(computeEnvironmentName=unique("local"), type="UNMANAGED",
                                                   state="ENABLED", serviceRole=service_role)
    queue = batch.create_job_queue(jobQueueName=unique("queue"), state="ENABLED", priority=1, computeEnvironmentOrder=[
        {"order": 1, "computeEnvironment": environment["computeEnvironmentArn"]}])["jobQueueArn"]
    definition = batch.register_job_definition(
        jobDefinitionName=unique("identity"), type="container", containerProperties={
            "image": "worker", "command": ["sh", "-c", "echo key=$AWS_ACCESS_KEY_ID"], "jobRoleArn": service_role,
            "resourceRequirements": [{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "512"}]})
    job_id = batch.submit_job(jobName="identity", jobQueue=queue,
                              jobDefinition=definition["jobDefinitionArn"])["jobId"]
    wait_for(lambda: batch.describe_jobs(jobs=[job_id])["jobs"][0]["status"] == "SUCCEEDED", 10, f"job {job_id}")
    assert acts_as(aws, aws.job_log(job_id).read_text().split("key=", 1)[1].split()[0]) == service_role
