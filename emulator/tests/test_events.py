"""EventBridge rules whose targets are state machines (defect 5): PutEvents starts executions."""

import json
import re

from conftest import ROLE_ARN, create_state_machine, unique, wait_for

PASS = {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}
ISO_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def execution_input(aws, state_machine_arn: str) -> dict:
    sfn = aws.client("stepfunctions")
    executions = wait_for(lambda: sfn.list_executions(stateMachineArn=state_machine_arn)["executions"], 5,
                          f"an execution of {state_machine_arn}")
    assert len(executions) == 1
    return json.loads(sfn.describe_execution(executionArn=executions[0]["executionArn"])["input"])


def test_put_events_starts_the_targeted_state_machines(aws):
    events = aws.client("events")
    source = unique("test.backup")
    rule = unique("rule")
    events.put_rule(Name=rule, EventPattern=json.dumps(
        {"source": [source], "detail-type": ["Backup Job State Change"], "detail": {"state": ["COMPLETED"]}}))
    whole, path, transformed, constant = (create_state_machine(aws, PASS) for _ in range(4))
    events.put_targets(Rule=rule, Targets=[
        {"Id": "whole", "Arn": whole, "RoleArn": ROLE_ARN},
        {"Id": "path", "Arn": path, "RoleArn": ROLE_ARN, "InputPath": "$.detail"},
        {"Id": "transformed", "Arn": transformed, "RoleArn": ROLE_ARN, "InputTransformer": {
            "InputPathsMap": {"job": "$.detail.backupJobId", "time": "$.time"},
            "InputTemplate": '{"backup_job": "<job>", "at": "<time>"}'}},
        {"Id": "constant", "Arn": constant, "RoleArn": ROLE_ARN, "Input": '{"snapshot": "snap-0123"}'},
    ])
    detail = {"state": "COMPLETED", "backupJobId": "job-1"}
    entries = [
        {"Source": source, "DetailType": "Backup Job State Change", "Detail": json.dumps(detail)},
        # Not matched by the rule: it must start nothing.
        {"Source": source, "DetailType": "Backup Job State Change", "Detail": json.dumps({"state": "FAILED"})},
    ]
    assert events.put_events(Entries=entries)["FailedEntryCount"] == 0

    event = execution_input(aws, whole)
    assert (event["source"], event["detail-type"], event["detail"]) == (source, "Backup Job State Change", detail)
    assert ISO_TIME.match(event["time"]), event["time"]
    assert {"version", "id", "account", "region", "resources"} <= set(event)
    assert execution_input(aws, path) == detail
    transformed_input = execution_input(aws, transformed)
    assert transformed_input["backup_job"] == "job-1" and ISO_TIME.match(transformed_input["at"])
    assert execution_input(aws, constant) == {"snapshot": "snap-0123"}
