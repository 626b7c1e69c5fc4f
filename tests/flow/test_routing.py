"""Every flow starts with Plan and hands a trigger it planned for another flow to that flow's state machine, in
an execution named by the idempotency key: a trigger sent to the wrong entry still archives, and only once."""

import json

from conftest import finished, states_entered
from test_rds_export import rds_snapshot


def test_a_database_snapshot_sent_to_the_ebs_flow_is_handed_to_its_flow_once(aws, keep_stack, slack):
    sfn = aws.client("stepfunctions")
    _, snapshot_arn = rds_snapshot(aws)
    manual = json.dumps({"snapshot": snapshot_arn})

    first = sfn.start_execution(stateMachineArn=keep_stack.state_machine_arn, input=manual)["executionArn"]
    execution = finished(aws, first)
    assert execution["status"] == "SUCCEEDED", execution
    assert states_entered(aws, first) == ["Plan", "Route", "Handoff", "HandedOff"]
    output = json.loads(execution["output"])
    assert output["state_machine"] == "rds-export"
    handed = output["handoff"]["execution_arn"]
    described = sfn.describe_execution(executionArn=handed)
    assert described["stateMachineArn"] == keep_stack.state_machines["rds-export"]
    assert described["name"] == output["idempotency_key"]
    assert json.loads(described["input"]) == json.loads(manual), "the same trigger, planned again by its flow"
    assert finished(aws, handed)["status"] == "SUCCEEDED", "the export flow archived it"

    slack.reset()
    second = sfn.start_execution(stateMachineArn=keep_stack.state_machine_arn, input=manual)["executionArn"]
    duplicate = finished(aws, second)
    assert duplicate["status"] == "FAILED" and duplicate["error"] == "DuplicateArchive", duplicate
    assert "rds-export" in duplicate["cause"], duplicate["cause"]
    [message] = slack.delivered()
    assert "FAILED: DuplicateArchive" in message["text"], message
