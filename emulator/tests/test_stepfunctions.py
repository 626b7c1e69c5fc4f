"""The Step Functions interpreter with the launcher's patches: aws-sdk integrations, JSONPath, names, time."""

import json
import time

from conftest import TIME_SCALE, history, run_state_machine

VOLUME_STATE_CHOICE = {
    "StartAt": "DescribeVolume",
    "States": {
        "DescribeVolume": {
            "Type": "Task",
            "Resource": "arn:aws:states:::aws-sdk:ec2:describeVolumes",
            "Parameters": {"VolumeIds.$": "States.Array($.volume_id)"},
            "Next": "IsAvailable",
        },
        "IsAvailable": {
            "Type": "Choice",
            "Choices": [{"Variable": "$.Volumes[0].State", "StringEquals": "available", "Next": "Available"}],
            "Default": "NotAvailable",
        },
        "Available": {"Type": "Pass", "Result": "available", "End": True},
        "NotAvailable": {"Type": "Fail", "Error": "NotAvailable"},
    },
}


def test_choice_on_describe_volumes_state_takes_the_available_branch(aws):
    # Defect 1 (JSONPath `$.Volumes[0].State` gave a list), and defect 3: the result holds CreateTime, a
    # datetime, which made this DescribeExecution fail with 500.
    volume_id = aws.client("ec2").create_volume(AvailabilityZone="us-east-1a", Size=1)["VolumeId"]
    execution = run_state_machine(aws, VOLUME_STATE_CHOICE, {"volume_id": volume_id})
    assert execution["status"] == "SUCCEEDED", execution
    assert json.loads(execution["output"]) == "available"


def test_describe_volumes_result_keeps_its_keys_and_iso_times(aws):
    volume_id = aws.client("ec2").create_volume(AvailabilityZone="us-east-1a", Size=2)["VolumeId"]
    definition = {"StartAt": "D", "States": {"D": {**VOLUME_STATE_CHOICE["States"]["DescribeVolume"], "End": True}}}
    del definition["States"]["D"]["Next"]
    execution = run_state_machine(aws, definition, {"volume_id": volume_id})
    volume = json.loads(execution["output"])["Volumes"][0]
    assert (volume["VolumeId"], volume["Size"], volume["State"]) == (volume_id, 2, "available")
    assert volume["CreateTime"].startswith("20") and "T" in volume["CreateTime"]


def test_missing_volume_error_is_named_as_aws_names_it(aws):
    definition = {"StartAt": "D", "States": {"D": {
        "Type": "Task", "Resource": "arn:aws:states:::aws-sdk:ec2:describeVolumes",
        "Parameters": {"VolumeIds": ["vol-0123456789abcdef0"]},
        "Catch": [{"ErrorEquals": ["Ec2.Ec2Exception"], "ResultPath": "$.error", "Next": "Caught"}], "End": True},
        "Caught": {"Type": "Pass", "End": True}}}
    execution = run_state_machine(aws, definition)
    assert execution["status"] == "SUCCEEDED", execution
    assert "does not exist" in json.loads(execution["output"])["error"]["Cause"]


def test_rds_integration_takes_sfn_cased_parameters(aws):
    # Defect 2: `DbInstanceIdentifier` (Step Functions' casing) must reach RDS as DBInstanceIdentifier.
    aws.client("rds").create_db_instance(
        DBInstanceIdentifier="emulator-db", DBInstanceClass="db.t3.micro", Engine="postgres",
        MasterUsername="admin1", MasterUserPassword="password-1", AllocatedStorage=20)
    definition = {"StartAt": "D", "States": {"D": {
        "Type": "Task", "Resource": "arn:aws:states:::aws-sdk:rds:describeDBInstances",
        "Parameters": {"DbInstanceIdentifier": "emulator-db"},
        "ResultSelector": {"status.$": "$.DbInstances[0].DbInstanceStatus"}, "End": True}}}
    execution = run_state_machine(aws, definition)
    assert execution["status"] == "SUCCEEDED", execution
    assert json.loads(execution["output"]) == {"status": "available"}


def test_rds_export_task_status_is_upper_case(aws):
    # Defect 4.
    rds, s3 = aws.client("rds"), aws.client("s3")
    rds.create_db_instance(DBInstanceIdentifier="export-db", DBInstanceClass="db.t3.micro", Engine="postgres",
                           MasterUsername="admin1", MasterUserPassword="password-1", AllocatedStorage=20)
    snapshot = rds.create_db_snapshot(DBSnapshotIdentifier="export-snap", DBInstanceIdentifier="export-db")
    s3.create_bucket(Bucket="export-bucket")
    rds.start_export_task(ExportTaskIdentifier="export-1", SourceArn=snapshot["DBSnapshot"]["DBSnapshotArn"],
                          S3BucketName="export-bucket", IamRoleArn="arn:aws:iam::123456789012:role/x", KmsKeyId="k")
    tasks = rds.describe_export_tasks(ExportTaskIdentifier="export-1")["ExportTasks"]
    assert [task["Status"] for task in tasks] == ["COMPLETE"]


def test_unnamed_executions_get_distinct_uuid_names(aws):
    # Defect 6: both used to be named "None", and the second start failed.
    sfn = aws.client("stepfunctions")
    first = run_state_machine(aws, {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}})
    arn = first["stateMachineArn"]
    second = sfn.start_execution(stateMachineArn=arn)["executionArn"]
    names = {first["executionArn"].rsplit(":", 1)[1], second.rsplit(":", 1)[1]}
    assert len(names) == 2 and all(len(name) == 36 and name.count("-") == 4 for name in names)


def test_wait_state_is_scaled(aws):
    definition = {"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 100, "End": True}}}
    began = time.monotonic()
    execution = run_state_machine(aws, definition)
    elapsed = time.monotonic() - began
    assert execution["status"] == "SUCCEEDED"
    assert 100 * TIME_SCALE * 0.9 <= elapsed < 100 * TIME_SCALE + 3, elapsed


def test_retry_intervals_are_scaled(aws):
    definition = {"StartAt": "Fail", "States": {
        "Fail": {"Type": "Task", "Resource": "arn:aws:lambda:us-east-1:123456789012:function:echo",
                 "Parameters": {"fail": "Retryable"},
                 "Retry": [{"ErrorEquals": ["Retryable"], "IntervalSeconds": 50, "MaxAttempts": 2, "BackoffRate": 1}],
                 "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "GaveUp"}], "End": True},
        "GaveUp": {"Type": "Pass", "End": True}}}
    began = time.monotonic()
    execution = run_state_machine(aws, definition)
    elapsed = time.monotonic() - began
    attempts = [e for e in history(aws, execution["executionArn"]) if e["type"] == "LambdaFunctionScheduled"]
    assert execution["status"] == "SUCCEEDED" and len(attempts) == 3
    assert 2 * 50 * TIME_SCALE * 0.9 <= elapsed < 2 * 50 * TIME_SCALE + 4, elapsed
