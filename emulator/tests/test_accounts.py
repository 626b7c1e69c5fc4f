"""Two accounts on one emulator: clients of another account (control.py's `client(account=…)`), and launcher.py's
execution_accounts: a state machine's calls are made in its own account, or in the account of a task's
Credentials.RoleArn."""

import json

import pytest
from botocore.exceptions import ClientError
from conftest import finished, unique

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


@pytest.fixture(scope="module")
def central_volume(aws) -> str:
    return aws.client("ec2", REGION, CENTRAL).create_volume(AvailabilityZone=f"{REGION}a", Size=1)["VolumeId"]


def test_a_client_of_another_account_sees_only_that_account(aws, central_volume):
    with pytest.raises(ClientError, match="InvalidVolume.NotFound"):
        aws.client("ec2", REGION).describe_volumes(VolumeIds=[central_volume])
    identity = aws.client("sts", REGION, CENTRAL).get_caller_identity()
    assert identity["Account"] == CENTRAL and aws.client("sts").get_caller_identity()["Account"] == DEFAULT_ACCOUNT


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
