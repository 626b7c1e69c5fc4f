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
    statuses = [rds.describe_export_tasks(ExportTaskIdentifier="export-1")["ExportTasks"][0]["Status"]
                for _ in range(4)]
    assert statuses == ["STARTING", "IN_PROGRESS", "COMPLETE", "COMPLETE"]


def test_rds_export_writes_its_files_when_complete_or_fails_as_told(aws):
    # Addition: export_progress. RDS's layout under <S3Prefix>/<ExportTaskIdentifier>/.
    rds, s3 = aws.client("rds"), aws.client("s3")
    rds.create_db_instance(DBInstanceIdentifier="files-db", DBInstanceClass="db.t3.micro", Engine="mysql",
                           MasterUsername="admin1", MasterUserPassword="password-1", AllocatedStorage=20)
    snapshot = rds.create_db_snapshot(DBSnapshotIdentifier="files-snap", DBInstanceIdentifier="files-db")
    s3.create_bucket(Bucket="files-bucket")

    def export(identifier):
        rds.start_export_task(ExportTaskIdentifier=identifier, SourceArn=snapshot["DBSnapshot"]["DBSnapshotArn"],
                              S3BucketName="files-bucket", S3Prefix="archive/rds", KmsKeyId="k",
                              IamRoleArn="arn:aws:iam::123456789012:role/x")
        for _ in range(3):
            task = rds.describe_export_tasks(ExportTaskIdentifier=identifier)["ExportTasks"][0]
        return task

    assert export("files-1")["Status"] == "COMPLETE"
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="files-bucket", Prefix="archive/rds/files-1/")["Contents"]]
    assert "archive/rds/files-1/export_info_files-1.json" in keys
    assert any(k.startswith("archive/rds/files-1/export_tables_info_files-1_from_1_to_") for k in keys)
    assert any(k.endswith(".gz.parquet") for k in keys), keys

    aws.fail_next_export("The S3 bucket is not in the snapshot's Region.")
    failed = export("files-2")
    assert (failed["Status"], failed["FailureCause"]) == ("FAILED", "The S3 bucket is not in the snapshot's Region.")
    assert "Contents" not in s3.list_objects_v2(Bucket="files-bucket", Prefix="archive/rds/files-2/")
    assert export("files-3")["Status"] == "COMPLETE", "only the next export fails"


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
