"""The organisation flow of issue 10 end to end on the emulator, across two accounts and two Regions: a workload
account (infra/workload.yaml, deployed from the template by emulator/workload.py) copies each recovery point of
its vault into the central account's vault of the same name in the backup Region (where the archive stack runs),
then into the central vault of its own Region; the first copy's COMPLETED event is forwarded to the central
account's bus, where the archive stack's copy rule archives the copy; after the second copy the original's
retention is shortened. The central vaults come from infra/central.yaml (moto's CloudFormation), open to the
organisation. Failures: a FAILED copy reaches the error queue and the error topic and leaves the retention alone;
a refused StartCopyJob (a missing iam:PassRole) reaches the error queue with a message naming the roles, the vaults
and the key; the IAM check names a PassRole the template would not grant."""

import copy
import json
import time

import pytest
from conftest import FIXTURES, ROOT, bin_dir, finished, output_of, settings, wait_until

from emulator import iam_check
from emulator.deploy import REGION, deploy, queue_arn
from emulator.workload import deploy_workload

WORKLOAD = "111122223333"
CENTRAL = "123456789012"  # moto's default account: where emulator/deploy.py deploys the archive stack
WORKLOAD_REGION = "us-west-2"  # the originals'
BACKUP_REGION = REGION  # the first copies' and the archive stack's
ALTERNATE_REGION = "eu-west-1"
VAULT = "org-vault"  # the workload vault's name, and the central vaults'
NEW_DELETE_AFTER_DAYS = 7
FLOW_TIMEOUT = 60  # seconds from the backup event to the shortened retention (it takes a few)


def vault_arn(account: str, region: str) -> str:
    return f"arn:aws:backup:{region}:{account}:backup-vault:{VAULT}"


@pytest.fixture(scope="module")
def organisation(aws):
    """The organisation the central vaults are open to. The emulator knows an account's organisation from moto's
    Organizations, where the workload account is the one that creates it here."""
    return aws.client("organizations", account=WORKLOAD).create_organization(FeatureSet="ALL")["Organization"]["Id"]


@pytest.fixture(scope="module")
def central_vaults(aws, organisation):
    """infra/central.yaml in the central account, in the backup Region and in the workload's Region."""
    body = (ROOT / "infra" / "central.yaml").read_text()
    for region in (BACKUP_REGION, WORKLOAD_REGION):
        aws.client("cloudformation", region, CENTRAL).create_stack(
            StackName="org-central-vault", TemplateBody=body,
            Parameters=[{"ParameterKey": "VaultName", "ParameterValue": VAULT},
                        {"ParameterKey": "OrganizationId", "ParameterValue": organisation}])
    return {region: vault_arn(CENTRAL, region) for region in (BACKUP_REGION, WORKLOAD_REGION)}


@pytest.fixture(scope="module")
def archive_stack(aws, proxy, slack, device, iam, central_vaults):
    s = settings("orgc", VAULT, False, device, proxy, slack)
    stack = deploy(aws, s, aws.lambda_map)
    iam.roles.update(stack.roles)
    iam.resource_policies.update(stack.resource_policies)
    return stack


@pytest.fixture(scope="module")
def workload(aws, proxy, iam, archive_stack):
    aws.client("backup", WORKLOAD_REGION, WORKLOAD).create_backup_vault(BackupVaultName=VAULT)
    deployed = deploy_workload(aws, "org-workload", WORKLOAD, WORKLOAD_REGION, {
        "CentralAccountId": CENTRAL, "BackupRegion": BACKUP_REGION, "AlternateRegion": ALTERNATE_REGION,
        "VaultNames": VAULT, "JobSelection": "all", "SecondCopy": "true",
        "NewDeleteAfterDays": str(NEW_DELETE_AFTER_DAYS)}, bin_dir(), aws.lambda_map,
        environment={"AWS_ENDPOINT_URL": proxy.endpoint, "AWS_MAX_ATTEMPTS": "1"})
    iam.roles.update(deployed.roles)
    sqs, sns = aws.client("sqs", WORKLOAD_REGION, WORKLOAD), aws.client("sns", WORKLOAD_REGION, WORKLOAD)
    # What the topic publishes, readable by the test (an e-mail subscription in a real deployment).
    deployed.topic_queue_url = sqs.create_queue(QueueName="org-workload-notifications")["QueueUrl"]
    sns.subscribe(TopicArn=deployed.error_topic_arn, Protocol="sqs", Endpoint=queue_arn(sqs, deployed.topic_queue_url),
                  Attributes={"RawMessageDelivery": "true"})
    return deployed


@pytest.fixture(autouse=True)
def empty_queues(request):
    """Every test starts with empty error and notification queues (an earlier test may have left messages)."""
    if "workload" in request.fixturenames:
        aws, workload = request.getfixturevalue("aws"), request.getfixturevalue("workload")
        for url in (workload.error_queue_url, workload.topic_queue_url):
            received(aws, url)


def received(aws, url: str) -> list[dict]:
    sqs, messages = aws.client("sqs", WORKLOAD_REGION, WORKLOAD), []
    while True:
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        if not got:
            return messages
        for message in got:
            messages.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])


def original(aws, delete_after_days: int = 35) -> tuple[str, dict]:
    """A recovery point of the workload vault made now (an EBS snapshot), and its backup job's COMPLETED event."""
    ec2 = aws.client("ec2", WORKLOAD_REGION, WORKLOAD)
    volume_id = ec2.create_volume(AvailabilityZone=f"{WORKLOAD_REGION}a", Size=1)["VolumeId"]
    snapshot_id = ec2.create_snapshot(VolumeId=volume_id, Description="AWS Backup recovery point")["SnapshotId"]
    point = f"arn:aws:ec2:{WORKLOAD_REGION}::snapshot/{snapshot_id}"
    resource = f"arn:aws:ec2:{WORKLOAD_REGION}:{WORKLOAD}:volume/{volume_id}"
    aws.add_recovery_point({"RecoveryPointArn": point, "BackupVaultName": VAULT, "ResourceArn": resource,
                            "CreationDate": time.time(), "Lifecycle": {"DeleteAfterDays": delete_after_days}},
                           account=WORKLOAD, region=WORKLOAD_REGION)
    event = json.loads((FIXTURES / "eventbridge-backup-job-completed-ebs.json").read_text())
    event["detail"].update(backupJobId=f"job-{snapshot_id}", backupVaultName=VAULT,
                           backupVaultArn=vault_arn(WORKLOAD, WORKLOAD_REGION), resourceArn=resource,
                           resourceType="EBS", backupSizeInBytes=str(1 << 30))
    event["detail"].pop("createdBy", None)
    event["resources"] = [point]
    return point, event


def put_backup_event(aws, event: dict) -> None:
    """The event on the workload account's default bus in its Region, as AWS Backup sends it."""
    answer = aws.client("events", WORKLOAD_REGION, WORKLOAD).put_events(Entries=[{
        "Source": "aws.backup", "DetailType": event["detail-type"], "Detail": json.dumps(event["detail"]),
        "Resources": event["resources"]}])
    assert answer["FailedEntryCount"] == 0, answer


def lifecycle(aws, point: str) -> dict:
    return aws.client("backup", WORKLOAD_REGION, WORKLOAD).describe_recovery_point(
        BackupVaultName=VAULT, RecoveryPointArn=point)["Lifecycle"]


def archive_executions(aws, stack) -> list[str]:
    sfn = aws.client("stepfunctions")
    return [e["executionArn"] for e in sfn.list_executions(stateMachineArn=stack.state_machine_arn)["executions"]]


def test_a_backup_is_copied_to_both_central_vaults_archived_there_and_its_retention_shortened(
        aws, iam, archive_stack, workload):
    calls_before = len(aws.calls(0))
    before = archive_executions(aws, archive_stack)
    point, event = original(aws)
    put_backup_event(aws, event)
    put_backup_event(aws, event)  # EventBridge delivers at least once: the same event again starts no copy

    # The retention is shortened only after the second copy COMPLETED: days_old 1, so max(1, 1, 7) + 1 days.
    wait_until(lambda: lifecycle(aws, point).get("DeleteAfterDays") == NEW_DELETE_AFTER_DAYS + 1, FLOW_TIMEOUT,
               "the original's retention shortened")
    backup = aws.client("backup", WORKLOAD_REGION, WORKLOAD)
    jobs = [job for job in backup.list_copy_jobs()["CopyJobs"] if job["SourceRecoveryPointArn"] == point]
    destinations = sorted((job["DestinationBackupVaultArn"], job["State"]) for job in jobs)
    assert destinations == sorted([(vault_arn(CENTRAL, BACKUP_REGION), "COMPLETED"),
                                   (vault_arn(CENTRAL, WORKLOAD_REGION), "COMPLETED")]), jobs
    assert {job["IamRoleArn"] for job in jobs} == {workload.copy_role_arn}
    for job in jobs:
        region = job["DestinationBackupVaultArn"].split(":")[3]
        copied = aws.client("backup", region, CENTRAL).describe_recovery_point(
            BackupVaultName=VAULT, RecoveryPointArn=job["DestinationRecoveryPointArn"])
        assert copied["SourceBackupVaultArn"] == vault_arn(WORKLOAD, WORKLOAD_REGION)

    # The first copy's event, forwarded to the central account, started the archive there.
    [first] = [job for job in jobs if job["DestinationBackupVaultArn"] == vault_arn(CENTRAL, BACKUP_REGION)]
    [execution_arn] = wait_until(lambda: [e for e in archive_executions(aws, archive_stack) if e not in before]
                                 or None, FLOW_TIMEOUT, "the central archive")
    execution = finished(aws, execution_arn)
    assert execution["status"] == "SUCCEEDED", execution
    output = output_of(execution)
    assert output["snapshot_id"] == first["DestinationRecoveryPointArn"].rsplit("/", 1)[1], "the copy, not the original"
    assert output["copy_job_id"] == first["CopyJobId"]
    assert output["verification"]["location"].startswith(f"s3://{archive_stack.bucket}/")

    assert received(aws, workload.error_queue_url) == [], "nothing failed"

    # The same calls without the start-copy role's iam:PassRole: the IAM check names it (AWS would refuse the copy).
    roles = copy.deepcopy(iam.roles)
    start_copy_role = next(role for role in roles if role.endswith("org-workload-start-copy-function"))
    for document in roles[start_copy_role]:
        document["Statement"] = [statement for statement in document["Statement"]
                                 if statement.get("Sid") != "PassOnlyTheCopyRoleOnlyToAwsBackup"]
    findings = iam_check.evaluate(aws.calls(calls_before), roles, iam.resource_policies)
    assert findings and all(f.action == "iam:PassRole" and f.resource == workload.copy_role_arn for f in findings), \
        "\n".join(map(str, findings))


def test_a_failed_copy_goes_to_the_error_queue_and_the_topic_and_leaves_the_retention_alone(
        aws, archive_stack, workload):
    central = aws.client("backup", BACKUP_REGION, CENTRAL)
    policy = central.get_backup_vault_access_policy(BackupVaultName=VAULT)["Policy"]
    central.delete_backup_vault_access_policy(BackupVaultName=VAULT)
    try:
        point, event = original(aws)
        put_backup_event(aws, event)
        [alert] = wait_until(lambda: received(aws, workload.error_queue_url) or None, FLOW_TIMEOUT, "the alert")
    finally:
        central.put_backup_vault_access_policy(BackupVaultName=VAULT, Policy=policy)
    [job] = [job for job in aws.client("backup", WORKLOAD_REGION, WORKLOAD).list_copy_jobs()["CopyJobs"]
             if job["SourceRecoveryPointArn"] == point]
    assert job["State"] == "FAILED"
    assert alert["alert"] == "AWS Backup copy job FAILED" and alert["job_id"] == job["CopyJobId"], alert
    assert alert["vault"] == vault_arn(WORKLOAD, WORKLOAD_REGION)
    assert alert["destination_vault"] == vault_arn(CENTRAL, BACKUP_REGION)
    assert alert["status_message"] == job["StatusMessage"]
    assert vault_arn(CENTRAL, BACKUP_REGION) in alert["status_message"]
    assert alert["resource"] == event["detail"]["resourceArn"] and alert["account"] == WORKLOAD
    [notification] = wait_until(lambda: received(aws, workload.topic_queue_url) or None, 10, "the notification")
    assert notification == alert
    time.sleep(1)  # what would shorten the retention has had its chance
    assert lifecycle(aws, point) == {"DeleteAfterDays": 35}, "no copy: the original keeps its retention"


def test_a_copy_refused_for_a_missing_pass_role_reaches_the_error_queue_naming_roles_vaults_and_key(
        aws, proxy, archive_stack, workload):
    point, event = original(aws)
    start_copy_role = f"arn:aws:iam::{WORKLOAD}:role/org-workload-start-copy-function"
    denial = (f"User: arn:aws:sts::{WORKLOAD}:assumed-role/org-workload-start-copy-function/org-workload-start-copy "
              f"is not authorized to perform: iam:PassRole on resource: {workload.copy_role_arn}")
    proxy.fail_backup("StartCopyJob", 3, 400, "AccessDeniedException", denial)  # the call and Lambda's 2 retries
    put_backup_event(aws, event)
    [failure] = wait_until(lambda: received(aws, workload.error_queue_url) or None, FLOW_TIMEOUT, "the failure")
    assert failure["requestContext"]["condition"] == "RetriesExhausted"
    assert failure["requestContext"]["approximateInvokeCount"] == 3
    assert failure["requestPayload"]["resources"] == [point]
    error = failure["responsePayload"]
    assert error["errorType"] == "CopyNotStarted", error
    for named in (start_copy_role, workload.copy_role_arn, "iam:PassRole", vault_arn(CENTRAL, BACKUP_REGION),
                  f"vault {VAULT}", "KMS key", denial):
        assert named in error["errorMessage"], f"{named} missing from: {error['errorMessage']}"
    assert [job for job in aws.client("backup", WORKLOAD_REGION, WORKLOAD).list_copy_jobs()["CopyJobs"]
            if job["SourceRecoveryPointArn"] == point] == []
    assert lifecycle(aws, point) == {"DeleteAfterDays": 35}
