"""Each defect that launcher.py patches, shown on an unpatched moto 5.2.5 (BA_EMULATOR_PATCHES=none).

When one of these fails after a moto upgrade, moto has fixed that defect: drop its patch from launcher.py.
The patched behaviour is tested in the other files.
"""

import json

import pytest
from botocore.exceptions import ClientError
from conftest import (
    ROLE_ARN, create_job_queue, create_role, create_state_machine, emulator_env, finished, run_state_machine, unique,
)
from test_cloudformation import NESTED_CONDITION, stack_set_over_a_member

from emulator.control import running

PASS_THEN_CHOICE = {"StartAt": "P", "States": {
    "P": {"Type": "Pass", "Parameters": {"Volumes": [{"State": "available"}]}, "Next": "C"},
    "C": {"Type": "Choice", "Choices": [{"Variable": "$.Volumes[0].State", "StringEquals": "available",
                                         "Next": "Yes"}], "Default": "No"},
    "Yes": {"Type": "Succeed"}, "No": {"Type": "Fail", "Error": "NoMatch"}}}


def task(resource: str, parameters: dict) -> dict:
    return {"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": resource, "Parameters": parameters,
                                             "End": True}}}


@pytest.fixture(scope="module")
def unpatched(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("unpatched")
    with running(tmp / "state", {**emulator_env(tmp), "BA_EMULATOR_PATCHES": "none"}) as emulator:
        create_role(emulator)
        yield emulator


def test_1_definite_path_yields_a_list(unpatched):
    execution = run_state_machine(unpatched, PASS_THEN_CHOICE)
    assert (execution["status"], execution["error"]) == ("FAILED", "NoMatch")


def test_2_integration_parameters_are_not_normalised(unpatched):
    execution = run_state_machine(unpatched, task("arn:aws:states:::batch:submitJob",
                                                  {"JobName": "j", "JobQueue": "q", "JobDefinition": "d"}))
    assert execution["status"] == "FAILED" and "'JobName'" in execution["cause"]
    execution = run_state_machine(unpatched, task("arn:aws:states:::aws-sdk:rds:describeDBInstances",
                                                  {"DbInstanceIdentifier": "db"}))
    assert execution["status"] == "FAILED" and "'DbInstanceIdentifier'" in execution["cause"]


def test_3_datetime_in_a_result_breaks_describe_execution(unpatched):
    volume_id = unpatched.client("ec2").create_volume(AvailabilityZone="us-east-1a", Size=1)["VolumeId"]
    arn = create_state_machine(unpatched, task("arn:aws:states:::aws-sdk:ec2:describeVolumes",
                                               {"VolumeIds": [volume_id]}))
    sfn = unpatched.client("stepfunctions")
    execution_arn = sfn.start_execution(stateMachineArn=arn)["executionArn"]
    with pytest.raises(ClientError, match=r"\(500\)"):
        finished(unpatched, execution_arn)


def test_4_export_task_status_is_lower_case(unpatched):
    rds, s3 = unpatched.client("rds"), unpatched.client("s3")
    rds.create_db_instance(DBInstanceIdentifier="db1", DBInstanceClass="db.t3.micro", Engine="postgres",
                           MasterUsername="admin1", MasterUserPassword="password-1", AllocatedStorage=20)
    snapshot = rds.create_db_snapshot(DBSnapshotIdentifier="snap1", DBInstanceIdentifier="db1")["DBSnapshot"]
    s3.create_bucket(Bucket="exports")
    rds.start_export_task(ExportTaskIdentifier="e1", SourceArn=snapshot["DBSnapshotArn"], S3BucketName="exports",
                          IamRoleArn=ROLE_ARN, KmsKeyId="k")
    assert rds.describe_export_tasks()["ExportTasks"][0]["Status"] == "complete"
    # And (export_progress) complete at once, having written nothing.
    assert "Contents" not in s3.list_objects_v2(Bucket="exports")


def test_5_put_events_to_a_state_machine_target_fails(unpatched):
    events = unpatched.client("events")
    arn = create_state_machine(unpatched, {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}})
    source = unique("test.source")
    events.put_rule(Name="r", EventPattern=json.dumps({"source": [source]}))
    events.put_targets(Rule="r", Targets=[{"Id": "1", "Arn": arn, "RoleArn": ROLE_ARN}])
    with pytest.raises(ClientError, match=r"\(500\)"):
        events.put_events(Entries=[{"Source": source, "DetailType": "t", "Detail": "{}"}])


def test_6_unnamed_executions_are_all_named_none(unpatched):
    sfn = unpatched.client("stepfunctions")
    arn = create_state_machine(unpatched, {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}})
    first = sfn.start_execution(stateMachineArn=arn)["executionArn"]
    assert first.endswith(":None")
    # moto takes a start with a RUNNING execution's name and input as a retry of it; once it has ended, it refuses.
    finished(unpatched, first)
    with pytest.raises(sfn.exceptions.ExecutionAlreadyExists):
        sfn.start_execution(stateMachineArn=arn)


def test_found_string_output_is_not_json_encoded(unpatched):
    execution = run_state_machine(unpatched, {"StartAt": "P", "States": {
        "P": {"Type": "Pass", "Result": "available", "End": True}}})
    assert execution["output"] == "available"  # AWS: "\"available\""


def test_found_aws_sdk_error_service_name_is_lower_case(unpatched):
    execution = run_state_machine(unpatched, task("arn:aws:states:::aws-sdk:ec2:describeVolumes",
                                                  {"VolumeIds": ["vol-0123456789abcdef0"]}))
    assert execution["error"] == "ec2.ec2Exception"  # AWS: Ec2.Ec2Exception


def pitr_table_with_backup(emulator) -> tuple[str, dict]:
    dynamodb, name = emulator.client("dynamodb"), unique("table")
    dynamodb.create_table(TableName=name, KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}],
                          AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}],
                          BillingMode="PAY_PER_REQUEST")
    dynamodb.update_continuous_backups(TableName=name, PointInTimeRecoverySpecification={
        "PointInTimeRecoveryEnabled": True})
    dynamodb.put_item(TableName=name, Item={"k": {"S": "1"}})
    return dynamodb.describe_table(TableName=name)["Table"]["TableArn"], dynamodb.create_backup(
        TableName=name, BackupName=f"{name}-backup")["BackupDetails"]


def test_found_dynamodb_exports_are_misnamed_instant_and_without_manifests(unpatched):
    table_arn, _ = pitr_table_with_backup(unpatched)
    dynamodb, s3, bucket = unpatched.client("dynamodb"), unpatched.client("s3"), unique("bucket")
    s3.create_bucket(Bucket=bucket)
    first = dynamodb.export_table_to_point_in_time(TableArn=table_arn, S3Bucket=bucket, S3Prefix="p",
                                                   ClientToken="token")["ExportDescription"]
    again = dynamodb.export_table_to_point_in_time(TableArn=table_arn, S3Bucket=bucket, S3Prefix="p",
                                                   ClientToken="token")["ExportDescription"]
    assert first["ExportArn"] != again["ExportArn"], "the client token is ignored"
    assert f"table/{table_arn}/import/" in first["ExportArn"]
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
    assert not [k for k in keys if k.endswith("manifest-summary.json")], keys


def test_found_pitr_window_never_moves(unpatched):
    dynamodb = unpatched.client("dynamodb")
    table_arn, backup = pitr_table_with_backup(unpatched)
    pitr = dynamodb.describe_continuous_backups(TableName=table_arn.rsplit("/", 1)[1])[
        "ContinuousBackupsDescription"]["PointInTimeRecoveryDescription"]
    assert pitr["LatestRestorableDateTime"] < backup["BackupCreationDateTime"], "a later backup is never covered"


def test_found_cluster_restore_refuses_a_snapshot_arn(unpatched):
    rds = unpatched.client("rds")
    rds.create_db_cluster(DBClusterIdentifier="c", Engine="aurora-postgresql", MasterUsername="dbadmin",
                          MasterUserPassword="password-1")
    arn = rds.create_db_cluster_snapshot(DBClusterIdentifier="c", DBClusterSnapshotIdentifier="c-snap")[
        "DBClusterSnapshot"]["DBClusterSnapshotArn"]
    with pytest.raises(rds.exceptions.DBClusterSnapshotNotFoundFault):  # AWS: restores it
        rds.restore_db_cluster_from_snapshot(DBClusterIdentifier="r", SnapshotIdentifier=arn,
                                             Engine="aurora-postgresql")


def test_found_a_tls_only_bucket_policy_denies_everything(unpatched):
    s3, bucket = unpatched.client("s3"), unique("bucket")
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps({"Version": "2012-10-17", "Statement": [{
        "Effect": "Deny", "Principal": "*", "Action": "s3:*", "Resource": f"arn:aws:s3:::{bucket}/*",
        "Condition": {"Bool": {"aws:SecureTransport": "false"}}}]}))
    with pytest.raises(ClientError, match="403"):  # AWS: allowed over HTTPS
        s3.put_object(Bucket=bucket, Key="k", Body=b"x")


CFN_KEY_AND_LIST = """
Parameters:
  Names: {Type: CommaDelimitedList, Default: "a,b"}
Resources:
  Key:
    Type: AWS::KMS::Key
    Properties:
      KeyPolicy: {Version: "2012-10-17", Statement: [{Effect: Allow, Principal: {AWS: "*"}, Action: "kms:*", Resource: "*"}]}
  Joined:
    Type: AWS::SSM::Parameter
    Properties: {Name: /joined, Type: String, Value: !Join ["+", !Ref Names]}
Outputs:
  KeyArn: {Value: !GetAtt Key.Arn}
"""


def test_found_cloudformation_key_policies_lists_and_change_set_outputs(unpatched):
    cloudformation, name = unpatched.client("cloudformation"), unique("stack")
    cloudformation.create_change_set(StackName=name, ChangeSetName="c1", ChangeSetType="CREATE",
                                     TemplateBody=CFN_KEY_AND_LIST)
    cloudformation.execute_change_set(StackName=name, ChangeSetName="c1")
    stack = cloudformation.describe_stacks(StackName=name)["Stacks"][0]
    assert "Outputs" not in stack, "a change set's stack has no outputs"
    joined = unpatched.client("ssm").get_parameter(Name="/joined")["Parameter"]["Value"]
    assert joined == "a+,+b", "!Ref of a CommaDelimitedList left at its default is the string 'a,b'"
    key = cloudformation.describe_stack_resource(StackName=name, LogicalResourceId="Key")[
        "StackResourceDetail"]["PhysicalResourceId"]
    with pytest.raises(ClientError, match="500"):  # AWS: describes it
        unpatched.client("kms").describe_key(KeyId=key)


def test_found_backup_has_no_recovery_points_copy_jobs_or_vault_access_policies(unpatched):
    backup, vault = unpatched.client("backup"), unique("vault")
    backup.create_backup_vault(BackupVaultName=vault)
    point = "arn:aws:ec2:us-east-1::snapshot/snap-0123456789abcdef0"
    calls = {
        "StartCopyJob": lambda: backup.start_copy_job(
            RecoveryPointArn=point, SourceBackupVaultName=vault, IamRoleArn=ROLE_ARN,
            DestinationBackupVaultArn="arn:aws:backup:us-west-2:444455556666:backup-vault:central"),
        "DescribeCopyJob": lambda: backup.describe_copy_job(CopyJobId="0175DE71-5784-589F-D8AC-541ACCB4CAC8"),
        "ListCopyJobs": backup.list_copy_jobs,
        "DescribeRecoveryPoint": lambda: backup.describe_recovery_point(BackupVaultName=vault, RecoveryPointArn=point),
        "ListRecoveryPointsByBackupVault": lambda: backup.list_recovery_points_by_backup_vault(BackupVaultName=vault),
        "UpdateRecoveryPointLifecycle": lambda: backup.update_recovery_point_lifecycle(
            BackupVaultName=vault, RecoveryPointArn=point, Lifecycle={"DeleteAfterDays": 8}),
        "PutBackupVaultAccessPolicy": lambda: backup.put_backup_vault_access_policy(BackupVaultName=vault,
                                                                                    Policy="{}"),
        "GetBackupVaultAccessPolicy": lambda: backup.get_backup_vault_access_policy(BackupVaultName=vault),
    }
    for name, call in calls.items():
        with pytest.raises(ClientError) as error:  # moto has no route for it: AWS answers each
            call()
        assert error.value.response["Error"]["Code"] == "404", name


def test_found_events_delivered_to_a_queue_lack_their_account(unpatched):
    events, sqs = unpatched.client("events"), unpatched.client("sqs")
    queue = sqs.create_queue(QueueName=unique("events"))["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    source, rule = unique("test.source"), unique("rule")
    events.put_rule(Name=rule, EventPattern=json.dumps({"source": [source]}))
    events.put_targets(Rule=rule, Targets=[{"Id": "queue", "Arn": queue_arn}])
    events.put_events(Entries=[{"Source": source, "DetailType": "t", "Detail": "{}"}])
    [message] = sqs.receive_message(QueueUrl=queue)["Messages"]
    delivered = json.loads(message["Body"])
    assert delivered["source"] == source and "account" not in delivered  # AWS: "account": "123456789012"


def test_found_cloudformation_makes_no_backup_vault(unpatched):
    cloudformation, name = unpatched.client("cloudformation"), unique("vault")
    cloudformation.create_stack(StackName=unique("stack"), TemplateBody=json.dumps({"Resources": {"Vault": {
        "Type": "AWS::Backup::BackupVault", "Properties": {"BackupVaultName": name}}}}))
    with pytest.raises(ClientError, match="ResourceNotFoundException"):  # AWS: the stack made it
        unpatched.client("backup").describe_backup_vault(BackupVaultName=name)


def test_found_a_state_machine_calls_aws_in_the_default_account(unpatched):
    account, region = "444455556666", "us-west-2"
    volume_id = unpatched.client("ec2", region, account).create_volume(AvailabilityZone=f"{region}a", Size=1)[
        "VolumeId"]
    sfn = unpatched.client("stepfunctions", region, account)
    definition = task("arn:aws:states:::aws-sdk:ec2:describeVolumes", {"VolumeIds": [volume_id]})
    arn = sfn.create_state_machine(name=unique("sm"), roleArn=f"arn:aws:iam::{account}:role/flow",
                                   definition=json.dumps(definition))["stateMachineArn"]
    execution = finished(unpatched, sfn.start_execution(stateMachineArn=arn)["executionArn"])
    assert execution["status"] == "FAILED" and volume_id in execution["cause"]  # AWS: its own account's volume


def test_found_describe_jobs_leaves_out_the_job_role(unpatched):
    batch = unpatched.client("batch")
    queue = create_job_queue(unpatched)
    definition = batch.register_job_definition(
        jobDefinitionName=unique("roled"), type="container", containerProperties={
            "image": "worker", "command": ["true"], "jobRoleArn": ROLE_ARN,
            "resourceRequirements": [{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "512"}]})
    job_id = batch.submit_job(jobName="roled", jobQueue=queue["JobQueue"],
                              jobDefinition=definition["jobDefinitionArn"])["jobId"]
    assert "jobRoleArn" not in batch.describe_jobs(jobs=[job_id])["jobs"][0]["container"]  # AWS: ROLE_ARN


def full_object_upload(s3, bucket: str, parts: list[bytes]) -> str:
    """A multipart upload with full-object CRC64NVME checksums, its parts uploaded; returns its upload id."""
    s3.create_bucket(Bucket=bucket)
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="k", ChecksumAlgorithm="CRC64NVME",
                                           ChecksumType="FULL_OBJECT")["UploadId"]
    for number, part in enumerate(parts, 1):
        s3.upload_part(Bucket=bucket, Key="k", UploadId=upload_id, PartNumber=number, Body=part,
                       ChecksumAlgorithm="CRC64NVME")
    return upload_id


def completed_parts(s3, bucket: str, upload_id: str) -> dict:
    parts = s3.list_parts(Bucket=bucket, Key="k", UploadId=upload_id)["Parts"]
    return {"Parts": [{"PartNumber": p["PartNumber"], "ETag": p["ETag"]} for p in parts]}


# A valid CRC64NVME that is not the one of the bytes uploaded (base64 of 8 bytes).
WRONG_CRC64NVME = "AAAAAAAAAAA="


def test_found_complete_multipart_upload_ignores_the_full_object_checksum(unpatched):
    s3, bucket = unpatched.client("s3"), unique("bucket")
    upload_id = full_object_upload(s3, bucket, [b"a" * (5 << 20), b"b"])
    s3.complete_multipart_upload(Bucket=bucket, Key="k", UploadId=upload_id, ChecksumType="FULL_OBJECT",
                                 ChecksumCRC64NVME=WRONG_CRC64NVME,
                                 MultipartUpload=completed_parts(s3, bucket, upload_id))
    assert s3.head_object(Bucket=bucket, Key="k")["ContentLength"] == (5 << 20) + 1  # AWS: BadDigest, no object


def test_found_backup_has_no_backup_jobs_nor_restore_job_listings(unpatched):
    backup, vault = unpatched.client("backup"), unique("vault")
    backup.create_backup_vault(BackupVaultName=vault)
    volume = unpatched.client("ec2").create_volume(AvailabilityZone="us-east-1a", Size=1)["VolumeId"]
    calls = {
        "StartBackupJob": lambda: backup.start_backup_job(
            BackupVaultName=vault, ResourceArn=f"arn:aws:ec2:us-east-1:123456789012:volume/{volume}",
            IamRoleArn=ROLE_ARN),
        "DescribeBackupJob": lambda: backup.describe_backup_job(BackupJobId="0175DE71-5784-589F-D8AC-541ACCB4CAC8"),
        "ListBackupJobs": backup.list_backup_jobs,
        "ListRestoreJobs": backup.list_restore_jobs,
    }
    for name, call in calls.items():
        with pytest.raises(ClientError) as error:  # moto has no route for it: AWS answers each
            call()
        assert error.value.response["Error"]["Code"] == "404", name


def test_found_ebs_direct_apis_skip_every_check(unpatched):
    from test_ebs import block, ec2_state, put, sha256_b64

    ebs, ec2 = unpatched.client("ebs"), unpatched.client("ec2")
    started = ebs.start_snapshot(VolumeSize=1, Encrypted=True)
    snapshot_id = started["SnapshotId"]
    assert started["BlockSize"] == 512  # AWS: 524288
    assert ec2_state(unpatched, snapshot_id) == "completed"  # AWS: pending until CompleteSnapshot
    snapshot = ec2.describe_snapshots(SnapshotIds=[snapshot_id])["Snapshots"][0]
    assert snapshot["Encrypted"] is False  # AWS: encrypted
    assert snapshot["VolumeId"] in [v["VolumeId"] for v in ec2.describe_volumes()["Volumes"]]  # AWS: no volume
    put(ebs, snapshot_id, 9, block(9), checksum=sha256_b64(b"other"))  # AWS: ValidationException INVALID_CHECKSUM
    put(ebs, snapshot_id, 3, block(3))
    status = ebs.complete_snapshot(SnapshotId=snapshot_id, ChangedBlocksCount=5, Checksum="AAAA",
                                   ChecksumAlgorithm="SHA256", ChecksumAggregationMethod="LINEAR")["Status"]
    assert status == "completed"  # AWS: the count and checksum are wrong, the snapshot ends in error
    listed = ebs.list_snapshot_blocks(SnapshotId=snapshot_id, StartingBlockIndex=5)
    assert [b["BlockIndex"] for b in listed["Blocks"]] == [9, 3]  # AWS: [9], from block 5 in index order
    assert listed["BlockSize"] == 512  # AWS: 524288
    got = ebs.get_snapshot_block(SnapshotId=snapshot_id, BlockIndex=3, BlockToken="not-a-token")
    assert got["BlockData"].read() == block(3)  # AWS: ValidationException INVALID_BLOCK_TOKEN
    with pytest.raises(ClientError, match=r"\(500\)"):  # AWS: ValidationException
        ebs.get_snapshot_block(SnapshotId=snapshot_id, BlockIndex=4, BlockToken="not-a-token")
    ec2.delete_snapshot(SnapshotId=snapshot_id)
    assert len(ebs.list_snapshot_blocks(SnapshotId=snapshot_id)["Blocks"]) == 2  # AWS: ResourceNotFoundException
    with pytest.raises(ClientError, match=r"\(500\)"):  # AWS: ResourceNotFoundException
        ebs.list_snapshot_blocks(SnapshotId="snap-0123456789abcdef0")


def test_found_put_events_to_a_function_or_topic_target_fails(unpatched):
    events, source = unpatched.client("events"), unique("test.source")
    topic = unpatched.client("sns").create_topic(Name=unique("topic"))["TopicArn"]
    for target in (f"arn:aws:lambda:us-east-1:123456789012:function:{unique('f')}", topic):
        rule = unique("rule")
        events.put_rule(Name=rule, EventPattern=json.dumps({"source": [source]}))
        events.put_targets(Rule=rule, Targets=[{"Id": "1", "Arn": target}])
        with pytest.raises(ClientError, match=r"\(500\)"):
            events.put_events(Entries=[{"Source": source, "DetailType": "t", "Detail": "{}"}])
        events.remove_targets(Rule=rule, Ids=["1"])


def test_found_an_event_forwarded_to_another_account_becomes_that_account_s(unpatched):
    central, source = "444455556666", unique("test.source")
    sqs = unpatched.client("sqs", "us-west-2", central)
    queue = sqs.create_queue(QueueName=unique("forwarded"))["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    receiving = unpatched.client("events", "us-west-2", central)
    receiving.put_rule(Name="received", EventPattern=json.dumps({"source": [source]}))
    receiving.put_targets(Rule="received", Targets=[{"Id": "queue", "Arn": queue_arn}])
    events, forward = unpatched.client("events"), unique("forward")
    events.put_rule(Name=forward, EventPattern=json.dumps({"source": [source]}))
    events.put_targets(Rule=forward, Targets=[
        {"Id": "bus", "Arn": f"arn:aws:events:us-west-2:{central}:event-bus/default", "RoleArn": ROLE_ARN}])
    events.put_events(Entries=[{"Source": source, "DetailType": "t", "Detail": "{}", "Resources": ["arn:aws:x"]}])
    [message] = sqs.receive_message(QueueUrl=queue)["Messages"]
    forwarded = json.loads(message["Body"])
    # AWS keeps the sender's envelope: region us-east-1, resources ["arn:aws:x"].
    assert (forwarded["region"], forwarded["resources"]) == ("us-west-2", [])


def test_found_a_short_form_condition_in_a_condition_is_false(unpatched):
    name = f"/{unique('either')}"
    unpatched.client("cloudformation").create_stack(StackName=unique("stack"),
                                                    TemplateBody=NESTED_CONDITION.format(name=name))
    with pytest.raises(ClientError, match="ParameterNotFound"):  # AWS: Either holds, the parameter is made
        unpatched.client("ssm").get_parameter(Name=name)


def test_found_a_service_managed_stack_instance_is_hidden_and_named_after_the_stack_set(unpatched):
    member, stack_set, _ = stack_set_over_a_member(unpatched, ["us-east-1"])
    # AWS: a stack StackSet-NAME-UUID in the member account, whose parameter is /StackSet-NAME-UUID.
    assert unpatched.client("cloudformation", account=member).describe_stacks()["Stacks"] == []
    assert unpatched.client("ssm", account=member).get_parameter(Name=f"/{stack_set}")["Parameter"]["Value"] == "v"
