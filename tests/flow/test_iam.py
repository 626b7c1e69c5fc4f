"""The IAM check of the flow tests (conftest's iam_checked, emulator/iam_check.py) can fail: calls signed as the
deployment's roles are recorded under those roles, evaluated against infra/template.yaml's policies, and the
calls a least-privilege role must not make are denied, each naming the role, action, resource and statement."""

from conftest import KEEP_VAULT, backup_event, finished, new_executions, executions, put_event, snapshot

from emulator.deploy import ACCOUNT, REGION
from emulator.template import role_name


def role(stack, logical_id: str) -> str:
    return f"arn:aws:iam::{ACCOUNT}:role/{role_name(stack.settings.name, logical_id)}"


def test_a_flows_calls_are_recorded_under_each_functions_role_and_allowed(aws, keep_stack, iam):
    iam.take()  # what earlier tests left
    volume_id, snapshot_id = snapshot(aws)
    before = executions(aws, keep_stack)
    put_event(aws, backup_event(snapshot_id, volume_id, KEEP_VAULT))
    [arn] = new_executions(aws, keep_stack, before)
    assert finished(aws, arn)["status"] == "SUCCEEDED"
    calls = iam.take()
    made = {(call["role"], call["call"]) for call in calls}
    assert (role(keep_stack, "CreateVolumeFunctionRole"), "ec2:CreateVolume") in made, sorted(made)
    assert (role(keep_stack, "DeleteVolumeFunctionRole"), "ec2:DeleteVolume") in made
    assert (role(keep_stack, "WorkerJobRole"), "ec2:AttachVolume") in made, "the worker runs as the job role"
    assert (role(keep_stack, "WorkerJobRole"), "s3:CompleteMultipartUpload") in made
    assert (role(keep_stack, "StateMachineRole"), "lambda:Invoke") in made, "the interpreter calls as the states role"
    assert (role(keep_stack, "StateMachineRole"), "batch:SubmitJob") in made
    [create] = [c for c in calls if c["call"] == "ec2:CreateVolume"]
    tag_on_create = [c for c in create["checks"] if c["action"] == "ec2:CreateTags"]
    assert tag_on_create and tag_on_create[0]["context"]["ec2:CreateAction"] == "CreateVolume"
    assert iam.evaluate(calls) == []


def test_deleting_a_volume_without_our_tag_is_denied(aws, keep_stack, iam):
    iam.take()
    ec2 = aws.client("ec2")
    theirs = ec2.create_volume(AvailabilityZone=f"{REGION}a", Size=1, TagSpecifications=[
        {"ResourceType": "volume", "Tags": [{"Key": "backup-archiver:managed-by", "Value": "another-stack"}]}])
    ours = ec2.create_volume(AvailabilityZone=f"{REGION}a", Size=1, TagSpecifications=[
        {"ResourceType": "volume", "Tags": [{"Key": "backup-archiver:managed-by", "Value": "keep"}]}])
    as_delete_volume = aws.client("ec2", role=role(keep_stack, "DeleteVolumeFunctionRole"))
    as_delete_volume.delete_volume(VolumeId=theirs["VolumeId"])  # the emulator does it; AWS would refuse
    as_delete_volume.delete_volume(VolumeId=ours["VolumeId"])
    findings = iam.evaluate(iam.take())
    assert [(f.action, f.resource) for f in findings] == [
        ("ec2:DeleteVolume", f"arn:aws:ec2:{REGION}:{ACCOUNT}:volume/{theirs['VolumeId']}")], findings
    [denied] = findings
    assert denied.role == role(keep_stack, "DeleteVolumeFunctionRole")
    assert "DetachAndDeleteOnlyOurVolumes" in denied.reason and "another-stack" in denied.reason, denied.reason


def test_reading_another_bucket_is_denied(aws, keep_stack, iam):
    iam.take()
    s3 = aws.client("s3")
    s3.create_bucket(Bucket="someone-elses-bucket")
    s3.put_object(Bucket="someone-elses-bucket", Key="backups/secret", Body=b"not ours")
    as_verify = aws.client("s3", role=role(keep_stack, "VerifyFunctionRole"))
    assert as_verify.get_object(Bucket="someone-elses-bucket", Key="backups/secret")["Body"].read() == b"not ours"
    findings = iam.evaluate(iam.take())
    assert [(f.action, f.resource) for f in findings] == [
        ("s3:GetObject", "arn:aws:s3:::someone-elses-bucket/backups/secret")], findings
    assert "ReadArchives" in findings[0].reason


def test_passing_the_export_role_to_another_service_is_denied(aws, keep_stack, iam):
    iam.take()
    export_role = role(keep_stack, "RdsExportRole")
    as_start_export = aws.client("backup", role=role(keep_stack, "StartExportFunctionRole"))
    try:  # AWS Backup assuming the export role: the recovery point does not exist, which does not matter here
        as_start_export.start_restore_job(RecoveryPointArn=f"arn:aws:backup:{REGION}:{ACCOUNT}:recovery-point:x",
                                          IamRoleArn=export_role, Metadata={})
    except as_start_export.exceptions.ClientError:
        pass
    findings = iam.evaluate(iam.take())
    passes = [f for f in findings if f.action == "iam:PassRole"]
    assert [(f.resource, f.role) for f in passes] == [(export_role, role(keep_stack, "StartExportFunctionRole"))]
    assert "PassTheExportRoleToRdsOnly" in passes[0].reason and "backup.amazonaws.com" in passes[0].reason
