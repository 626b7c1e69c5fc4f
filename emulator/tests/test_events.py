"""EventBridge rules whose targets are state machines (defect 5): PutEvents starts executions; targets that are
another account's bus get the event as it was sent, and topics get it published (launcher.py's forwarded_events,
function_and_topic_targets)."""

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


def queue_of(aws, region: str, account: str) -> tuple[object, str, str]:
    sqs = aws.client("sqs", region, account)
    url = sqs.create_queue(QueueName=unique("received"))["QueueUrl"]
    return sqs, url, sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]


def test_an_event_forwarded_to_another_account_s_bus_keeps_its_account_region_and_resources(aws):
    central, source = "444455556666", unique("test.source")
    sqs, url, arn = queue_of(aws, "us-west-2", central)
    receiving = aws.client("events", "us-west-2", central)
    receiving.put_rule(Name="received", EventPattern=json.dumps({"source": [source], "account": ["123456789012"]}))
    receiving.put_targets(Rule="received", Targets=[{"Id": "queue", "Arn": arn}])
    events, forward = aws.client("events"), unique("forward")
    events.put_rule(Name=forward, EventPattern=json.dumps({"source": [source]}))
    events.put_targets(Rule=forward, Targets=[
        {"Id": "bus", "Arn": f"arn:aws:events:us-west-2:{central}:event-bus/default", "RoleArn": ROLE_ARN}])
    events.put_events(Entries=[{"Source": source, "DetailType": "t", "Detail": '{"a": 1}', "Resources": ["arn:aws:x"]}])
    [message] = wait_for(lambda: sqs.receive_message(QueueUrl=url).get("Messages"), 5, "the forwarded event")
    forwarded = json.loads(message["Body"])
    assert (forwarded["account"], forwarded["region"], forwarded["resources"], forwarded["detail"]) == \
        ("123456789012", "us-east-1", ["arn:aws:x"], {"a": 1})


def test_a_topic_target_gets_the_transformed_event_published(aws):
    source = unique("test.source")
    sqs, url, arn = queue_of(aws, "us-east-1", "123456789012")
    topic = aws.client("sns").create_topic(Name=unique("topic"))["TopicArn"]
    aws.client("sns").subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn, Attributes={"RawMessageDelivery": "true"})
    events, rule = aws.client("events"), unique("rule")
    events.put_rule(Name=rule, EventPattern=json.dumps({"source": [source]}))
    events.put_targets(Rule=rule, Targets=[{"Id": "topic", "Arn": topic, "InputTransformer": {
        "InputPathsMap": {"state": "$.detail.state"}, "InputTemplate": '{"alert": "job <state>"}'}}])
    events.put_events(Entries=[{"Source": source, "DetailType": "t", "Detail": '{"state": "FAILED"}'}])
    [message] = wait_for(lambda: sqs.receive_message(QueueUrl=url).get("Messages"), 5, "the notification")
    assert json.loads(message["Body"]) == {"alert": "job FAILED"}
