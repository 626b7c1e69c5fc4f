"""launcher.py's backup_copy_jobs, backup_vault_access_policies and the accounts and regions of
backup_recovery_points: a workload account's recovery point copied into a central backup account's vault in another
region, as the organisation flow of issue 10 does."""

import datetime
import json
import time

import pytest
from botocore.exceptions import ClientError
from conftest import unique, wait_for

WORKLOAD, CENTRAL = "111122223333", "444455556666"  # neither is moto's default account
SOURCE_REGION, BACKUP_REGION = "us-east-1", "us-west-2"
COPY_ROLE = "backup-copy"
ROLE_ARN = f"arn:aws:iam::{WORKLOAD}:role/{COPY_ROLE}"
COPY_TIMEOUT = 10  # seconds; a copy takes under one here


def vault_arn(account: str, region: str, name: str) -> str:
    return f"arn:aws:backup:{region}:{account}:backup-vault:{name}"


def policy(*statements: dict) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def allow_copy_into(account: str) -> dict:
    return {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{account}:root"},
            "Action": "backup:CopyIntoBackupVault", "Resource": "*"}


class Workload:
    """Account WORKLOAD in SOURCE_REGION: its copy role, and a queue that an EventBridge rule of its default bus
    fills with every AWS Backup event."""

    def __init__(self, aws):
        self.aws = aws
        self.backup = aws.client("backup", SOURCE_REGION, WORKLOAD)
        self.ec2 = aws.client("ec2", SOURCE_REGION, WORKLOAD)
        self.sqs = aws.client("sqs", SOURCE_REGION, WORKLOAD)
        events = aws.client("events", SOURCE_REGION, WORKLOAD)
        aws.client("iam", account=WORKLOAD).create_role(RoleName=COPY_ROLE, AssumeRolePolicyDocument="{}")
        self.queue = self.sqs.create_queue(QueueName=unique("backup-events"))["QueueUrl"]
        queue_arn = self.sqs.get_queue_attributes(QueueUrl=self.queue, AttributeNames=["QueueArn"])[
            "Attributes"]["QueueArn"]
        rule = unique("backup-events")
        events.put_rule(Name=rule, EventPattern=json.dumps({"source": ["aws.backup"]}))
        events.put_targets(Rule=rule, Targets=[{"Id": "queue", "Arn": queue_arn}])
        self.received: list[dict] = []

    def vault(self) -> str:
        name = unique("vault")
        self.backup.create_backup_vault(BackupVaultName=name)
        return name

    def recovery_point(self, vault: str, **registered) -> str:
        """An EBS snapshot registered as a recovery point of `vault`; returns its ARN."""
        volume_id = self.ec2.create_volume(AvailabilityZone=f"{SOURCE_REGION}a", Size=1)["VolumeId"]
        snapshot_id = self.ec2.create_snapshot(VolumeId=volume_id)["SnapshotId"]
        arn = f"arn:aws:ec2:{SOURCE_REGION}::snapshot/{snapshot_id}"
        self.aws.add_recovery_point({
            "RecoveryPointArn": arn, "BackupVaultName": vault, "CreationDate": time.time(),
            "ResourceArn": f"arn:aws:ec2:{SOURCE_REGION}:{WORKLOAD}:volume/{volume_id}", **registered},
            account=WORKLOAD)
        return arn

    def copy(self, vault: str, point: str, destination: str, **extra) -> str:
        return self.backup.start_copy_job(RecoveryPointArn=point, SourceBackupVaultName=vault, IamRoleArn=ROLE_ARN,
                                          DestinationBackupVaultArn=destination, **extra)["CopyJobId"]

    def finished(self, job_id: str) -> dict:
        def done():
            job = self.backup.describe_copy_job(CopyJobId=job_id)["CopyJob"]
            return job if job["State"] in ("COMPLETED", "FAILED") else None

        return wait_for(done, COPY_TIMEOUT, f"copy job {job_id}")

    def events(self, detail_type: str, key: str, value: str, count: int) -> list[dict]:
        """The first `count` events of this type whose detail[key] is `value`, in the order received."""
        def arrived():
            for message in self.sqs.receive_message(QueueUrl=self.queue, MaxNumberOfMessages=10).get("Messages", []):
                self.received.append(json.loads(message["Body"]))
                self.sqs.delete_message(QueueUrl=self.queue, ReceiptHandle=message["ReceiptHandle"])
            found = [e for e in self.received if e["detail-type"] == detail_type and e["detail"].get(key) == value]
            return found[:count] if len(found) >= count else None

        return wait_for(arrived, COPY_TIMEOUT, f"{count} {detail_type} event(s) with {key} {value}")


class Central:
    """Account CENTRAL in BACKUP_REGION, where the copies go."""

    def __init__(self, aws):
        self.backup = aws.client("backup", BACKUP_REGION, CENTRAL)
        self.ec2 = aws.client("ec2", BACKUP_REGION, CENTRAL)

    def vault(self, access_policy: str | None) -> str:
        name = unique("central")
        self.backup.create_backup_vault(BackupVaultName=name)
        if access_policy:
            self.backup.put_backup_vault_access_policy(BackupVaultName=name, Policy=access_policy)
        return name

    def copies(self, description: str) -> list[dict]:
        return [s for s in self.ec2.describe_snapshots(OwnerIds=["self"])["Snapshots"]
                if description in s.get("Description", "")]


@pytest.fixture(scope="module")
def workload(aws):
    return Workload(aws)


@pytest.fixture(scope="module")
def central(aws):
    return Central(aws)


def test_a_copy_into_the_central_account_and_region_is_a_snapshot_there_and_an_event_in_the_workload_account(
        aws, workload, central):
    vault, central_vault = workload.vault(), central.vault(policy(allow_copy_into(WORKLOAD)))
    point = workload.recovery_point(vault)
    destination = vault_arn(CENTRAL, BACKUP_REGION, central_vault)
    job_id = workload.copy(vault, point, destination, Lifecycle={"DeleteAfterDays": 365})
    job = workload.finished(job_id)
    assert (job["State"], job["AccountId"], job["SourceRecoveryPointArn"]) == ("COMPLETED", WORKLOAD, point)
    assert job["SourceBackupVaultArn"] == vault_arn(WORKLOAD, SOURCE_REGION, vault)
    copy_arn = job["DestinationRecoveryPointArn"]
    assert copy_arn.startswith(f"arn:aws:ec2:{BACKUP_REGION}::snapshot/snap-"), copy_arn
    snapshot_id = copy_arn.rsplit("/", 1)[1]
    assert central.ec2.describe_snapshots(SnapshotIds=[snapshot_id])["Snapshots"][0]["OwnerId"] == CENTRAL
    for elsewhere in (aws.client("ec2", BACKUP_REGION, WORKLOAD), aws.client("ec2", SOURCE_REGION, CENTRAL)):
        with pytest.raises(ClientError, match="InvalidSnapshot.NotFound"):
            elsewhere.describe_snapshots(SnapshotIds=[snapshot_id])
    copied = central.backup.describe_recovery_point(BackupVaultName=central_vault, RecoveryPointArn=copy_arn)
    assert copied["SourceBackupVaultArn"] == vault_arn(WORKLOAD, SOURCE_REGION, vault)
    assert copied["BackupVaultArn"] == destination and copied["Lifecycle"] == {"DeleteAfterDays": 365}
    listed = central.backup.list_recovery_points_by_backup_vault(BackupVaultName=central_vault)["RecoveryPoints"]
    assert [p["RecoveryPointArn"] for p in listed] == [copy_arn]

    events = workload.events("Copy Job State Change", "copyJobId", job_id, 3)
    assert [e["detail"]["state"] for e in events] == ["CREATED", "RUNNING", "COMPLETED"]
    completed = events[-1]
    assert (completed["account"], completed["region"], completed["resources"]) == (WORKLOAD, SOURCE_REGION, [point])
    assert completed["detail"]["destinationRecoveryPointArn"] == copy_arn
    assert completed["detail"]["destinationBackupVaultArn"] == destination
    assert completed["detail"]["sourceBackupVaultArn"] == vault_arn(WORKLOAD, SOURCE_REGION, vault)
    assert completed["detail"]["iamRoleArn"] == ROLE_ARN and completed["detail"]["resourceType"] == "EBS"


def test_the_same_idempotency_token_returns_the_first_job_and_copies_once(workload, central):
    vault, central_vault = workload.vault(), central.vault(policy(allow_copy_into(WORKLOAD)))
    point = workload.recovery_point(vault)
    destination = vault_arn(CENTRAL, BACKUP_REGION, central_vault)
    first = workload.copy(vault, point, destination, IdempotencyToken=point + destination)
    assert workload.copy(vault, point, destination, IdempotencyToken=point + destination) == first
    workload.finished(first)
    assert workload.copy(vault, point, destination, IdempotencyToken=point + destination) == first, "also once done"
    assert len(central.copies(first)) == 1
    jobs = workload.backup.list_copy_jobs(ByAccountId=WORKLOAD, ByState="COMPLETED")["CopyJobs"]
    assert [j["CopyJobId"] for j in jobs if j["SourceRecoveryPointArn"] == point] == [first]
    with pytest.raises(ClientError, match="InvalidRequestException"):
        workload.copy(vault, point, destination, IdempotencyToken=point + destination, Lifecycle={"DeleteAfterDays": 9})


@pytest.mark.parametrize("access_policy", [
    policy(allow_copy_into("999988887777")), None,
    policy(allow_copy_into(WORKLOAD), {**allow_copy_into(WORKLOAD), "Effect": "Deny", "Principal": "*"})],
                         ids=["another account allowed", "no policy", "denied"])
def test_a_central_vault_that_does_not_let_the_workload_account_in_fails_the_copy_naming_the_vault(
        workload, central, access_policy):
    vault, central_vault = workload.vault(), central.vault(access_policy)
    point = workload.recovery_point(vault)
    destination = vault_arn(CENTRAL, BACKUP_REGION, central_vault)
    job_id = workload.copy(vault, point, destination)
    job = workload.finished(job_id)
    assert job["State"] == "FAILED" and destination in job["StatusMessage"], job
    assert "DestinationRecoveryPointArn" not in job
    assert central.backup.list_recovery_points_by_backup_vault(BackupVaultName=central_vault)["RecoveryPoints"] == []
    failed = workload.events("Copy Job State Change", "copyJobId", job_id, 3)[-1]
    assert failed["detail"]["state"] == "FAILED" and failed["detail"]["statusMessage"] == job["StatusMessage"]
    assert failed["detail"]["destinationRecoveryPointArn"] == {}


def test_a_workload_vault_that_denies_copies_elsewhere_fails_those_naming_itself(workload, central):
    allowed, other = (central.vault(policy(allow_copy_into(WORKLOAD))) for _ in range(2))
    allowed_arn, other_arn = (vault_arn(CENTRAL, BACKUP_REGION, name) for name in (allowed, other))
    vault = workload.vault()
    workload.backup.put_backup_vault_access_policy(BackupVaultName=vault, Policy=policy({
        "Effect": "Deny", "Principal": "*", "Action": "backup:CopyFromBackupVault", "Resource": "*",
        "Condition": {"StringNotEquals": {"backup:CopyTargets": [allowed_arn]}}}))
    point = workload.recovery_point(vault)
    assert workload.finished(workload.copy(vault, point, allowed_arn))["State"] == "COMPLETED"
    refused = workload.finished(workload.copy(vault, point, other_arn))
    assert refused["State"] == "FAILED" and vault_arn(WORKLOAD, SOURCE_REGION, vault) in refused["StatusMessage"]


def test_a_copy_within_the_account_to_another_region_needs_no_vault_policy(aws, workload):
    vault = workload.vault()
    backup_region = aws.client("backup", BACKUP_REGION, WORKLOAD)
    backup_region.create_backup_vault(BackupVaultName=vault)
    job = workload.finished(workload.copy(vault, workload.recovery_point(vault),
                                          vault_arn(WORKLOAD, BACKUP_REGION, vault)))
    assert job["State"] == "COMPLETED"
    snapshot_id = job["DestinationRecoveryPointArn"].rsplit("/", 1)[1]
    assert aws.client("ec2", BACKUP_REGION, WORKLOAD).describe_snapshots(SnapshotIds=[snapshot_id])["Snapshots"]


def test_start_copy_job_refuses_a_missing_role_and_an_unknown_vault_or_point(workload, central):
    vault, central_vault = workload.vault(), central.vault(policy(allow_copy_into(WORKLOAD)))
    point = workload.recovery_point(vault)
    destination = vault_arn(CENTRAL, BACKUP_REGION, central_vault)
    start = dict(RecoveryPointArn=point, SourceBackupVaultName=vault, DestinationBackupVaultArn=destination)
    for role in (f"arn:aws:iam::{WORKLOAD}:role/missing", f"arn:aws:iam::{CENTRAL}:role/{COPY_ROLE}"):
        with pytest.raises(ClientError, match="InvalidParameterValueException") as error:
            workload.backup.start_copy_job(**start, IamRoleArn=role)
        assert role in str(error.value)
    with pytest.raises(ClientError, match="ResourceNotFoundException"):
        workload.backup.start_copy_job(**{**start, "SourceBackupVaultName": unique("missing")}, IamRoleArn=ROLE_ARN)
    with pytest.raises(ClientError, match="ResourceNotFoundException"):
        workload.backup.start_copy_job(**{**start, "RecoveryPointArn": point + "0"}, IamRoleArn=ROLE_ARN)
    with pytest.raises(ClientError, match="InvalidParameterValueException"):
        workload.backup.start_copy_job(**{**start, "DestinationBackupVaultArn": central_vault}, IamRoleArn=ROLE_ARN)
    assert not [j for j in workload.backup.list_copy_jobs()["CopyJobs"] if j["SourceRecoveryPointArn"] == point]


def test_a_destination_vault_that_does_not_exist_fails_the_copy_naming_it(workload):
    vault = workload.vault()
    destination = vault_arn(CENTRAL, BACKUP_REGION, unique("missing"))
    job = workload.finished(workload.copy(vault, workload.recovery_point(vault), destination))
    assert job["State"] == "FAILED" and destination in job["StatusMessage"]


def test_copy_jobs_are_listed_and_described_in_their_account_and_region_only(aws, workload, central):
    vault, central_vault = workload.vault(), central.vault(policy(allow_copy_into(WORKLOAD)))
    job_id = workload.copy(vault, workload.recovery_point(vault), vault_arn(CENTRAL, BACKUP_REGION, central_vault))
    workload.finished(job_id)
    for outsider in (aws.client("backup"), aws.client("backup", BACKUP_REGION, WORKLOAD)):
        with pytest.raises(ClientError, match="ResourceNotFoundException"):
            outsider.describe_copy_job(CopyJobId=job_id)
        assert job_id not in [j["CopyJobId"] for j in outsider.list_copy_jobs()["CopyJobs"]]
    assert job_id in [j["CopyJobId"] for j in workload.backup.list_copy_jobs(ByState="COMPLETED")["CopyJobs"]]
    assert job_id not in [j["CopyJobId"] for j in workload.backup.list_copy_jobs(ByState="FAILED")["CopyJobs"]]
    assert workload.backup.list_copy_jobs(ByAccountId=CENTRAL)["CopyJobs"] == []


def test_recovery_points_belong_to_their_account_and_region(aws, workload):
    vault = workload.vault()
    point = workload.recovery_point(vault)
    aws.client("backup").create_backup_vault(BackupVaultName=vault)
    for outsider in (aws.client("backup"), aws.client("backup", BACKUP_REGION, WORKLOAD)):
        with pytest.raises(ClientError, match="ResourceNotFoundException"):
            outsider.describe_recovery_point(BackupVaultName=vault, RecoveryPointArn=point)
    assert aws.client("backup").list_recovery_points_by_backup_vault(BackupVaultName=vault)["RecoveryPoints"] == []
    assert workload.backup.describe_recovery_point(BackupVaultName=vault, RecoveryPointArn=point)["Status"] == \
        "COMPLETED"


def test_a_registered_backup_job_sends_its_completed_event_to_the_workload_account(workload):
    vault, job_id = workload.vault(), unique("job").upper()
    point = workload.recovery_point(vault, BackupJobId=job_id, BackupSizeInBytes=1 << 30)
    [event] = workload.events("Backup Job State Change", "backupJobId", job_id, 1)
    assert (event["account"], event["region"], event["resources"]) == (WORKLOAD, SOURCE_REGION, [point])
    assert event["detail"]["state"] == "COMPLETED" and event["detail"]["backupVaultName"] == vault
    assert event["detail"]["backupVaultArn"] == vault_arn(WORKLOAD, SOURCE_REGION, vault)
    assert event["detail"]["backupSizeInBytes"] == str(1 << 30) and "createdBy" not in event["detail"]


def test_update_recovery_point_lifecycle_round_trips_through_describe(workload):
    vault = workload.vault()
    created = datetime.datetime(2026, 3, 1, tzinfo=datetime.UTC)
    point = workload.recovery_point(vault, CreationDate=created.timestamp(), Lifecycle={"DeleteAfterDays": 35})
    described = workload.backup.describe_recovery_point(BackupVaultName=vault, RecoveryPointArn=point)
    assert (described["StorageClass"], described["Lifecycle"]) == ("WARM", {"DeleteAfterDays": 35})
    assert described["CreationDate"] == created
    assert described["CalculatedLifecycle"] == {"DeleteAt": created + datetime.timedelta(days=35)}
    lifecycle = {"MoveToColdStorageAfterDays": 8, "DeleteAfterDays": 98, "OptInToArchiveForSupportedResources": False}
    updated = workload.backup.update_recovery_point_lifecycle(BackupVaultName=vault, RecoveryPointArn=point,
                                                              Lifecycle=lifecycle)
    assert updated["Lifecycle"] == lifecycle and updated["RecoveryPointArn"] == point
    described = workload.backup.describe_recovery_point(BackupVaultName=vault, RecoveryPointArn=point)
    assert described["Lifecycle"] == lifecycle
    assert described["CalculatedLifecycle"] == {"MoveToColdStorageAt": created + datetime.timedelta(days=8),
                                                "DeleteAt": created + datetime.timedelta(days=98)}
    with pytest.raises(ClientError, match="InvalidParameterValueException"):  # less than 90 days cold
        workload.backup.update_recovery_point_lifecycle(BackupVaultName=vault, RecoveryPointArn=point, Lifecycle={
            "MoveToColdStorageAfterDays": 8, "DeleteAfterDays": 97})
    assert workload.backup.describe_recovery_point(BackupVaultName=vault, RecoveryPointArn=point)["Lifecycle"] == \
        lifecycle, "a refused update changes nothing"
    with pytest.raises(ClientError, match="ResourceNotFoundException"):
        workload.backup.update_recovery_point_lifecycle(BackupVaultName=unique("other"), RecoveryPointArn=point,
                                                        Lifecycle={"DeleteAfterDays": 1})


def test_a_point_registered_cold_is_described_cold_and_keeps_its_cold_transition(workload):
    vault = workload.vault()
    lifecycle = {"MoveToColdStorageAfterDays": 7, "DeleteAfterDays": 365}
    point = workload.recovery_point(vault, StorageClass="COLD", Lifecycle=lifecycle)
    described = workload.backup.describe_recovery_point(BackupVaultName=vault, RecoveryPointArn=point)
    assert described["StorageClass"] == "COLD"
    with pytest.raises(ClientError, match="InvalidParameterValueException"):
        workload.backup.update_recovery_point_lifecycle(BackupVaultName=vault, RecoveryPointArn=point, Lifecycle={
            "MoveToColdStorageAfterDays": 30, "DeleteAfterDays": 365})
    shorter = {"MoveToColdStorageAfterDays": 7, "DeleteAfterDays": 97}
    assert workload.backup.update_recovery_point_lifecycle(BackupVaultName=vault, RecoveryPointArn=point,
                                                           Lifecycle=shorter)["Lifecycle"] == shorter


def test_vault_access_policies_are_put_read_and_deleted(central):
    name = central.vault(None)
    with pytest.raises(ClientError, match="ResourceNotFoundException"):
        central.backup.get_backup_vault_access_policy(BackupVaultName=name)
    text = policy(allow_copy_into(WORKLOAD))
    central.backup.put_backup_vault_access_policy(BackupVaultName=name, Policy=text)
    got = central.backup.get_backup_vault_access_policy(BackupVaultName=name)
    assert (got["Policy"], got["BackupVaultArn"]) == (text, vault_arn(CENTRAL, BACKUP_REGION, name))
    central.backup.delete_backup_vault_access_policy(BackupVaultName=name)
    with pytest.raises(ClientError, match="ResourceNotFoundException"):
        central.backup.get_backup_vault_access_policy(BackupVaultName=name)
    with pytest.raises(ClientError, match="InvalidParameterValueException"):
        central.backup.put_backup_vault_access_policy(BackupVaultName=name, Policy="{not json")


def test_a_central_stack_makes_the_vault_and_its_access_policy_that_copies_go_into(aws, workload):
    name, stack = unique("central"), unique("central-stack")
    cloudformation = aws.client("cloudformation", BACKUP_REGION, CENTRAL)
    cloudformation.create_stack(StackName=stack, TemplateBody=json.dumps({
        "Resources": {"Vault": {"Type": "AWS::Backup::BackupVault", "Properties": {
            "BackupVaultName": name, "AccessPolicy": json.loads(policy(allow_copy_into(WORKLOAD)))}}},
        "Outputs": {"Arn": {"Value": {"Fn::GetAtt": ["Vault", "BackupVaultArn"]}},
                    "Name": {"Value": {"Ref": "Vault"}}}}))
    outputs = {o["OutputKey"]: o["OutputValue"]
               for o in cloudformation.describe_stacks(StackName=stack)["Stacks"][0]["Outputs"]}
    destination = vault_arn(CENTRAL, BACKUP_REGION, name)
    assert outputs == {"Arn": destination, "Name": name}
    vault = workload.vault()
    assert workload.finished(workload.copy(vault, workload.recovery_point(vault), destination))["State"] == "COMPLETED"
    cloudformation.delete_stack(StackName=stack)
    with pytest.raises(ClientError, match="ResourceNotFoundException"):
        aws.client("backup", BACKUP_REGION, CENTRAL).describe_backup_vault(BackupVaultName=name)


def test_an_rds_copy_is_a_db_snapshot_of_the_central_account_and_region(aws, workload, central):
    rds, db = aws.client("rds", SOURCE_REGION, WORKLOAD), unique("db")
    rds.create_db_instance(DBInstanceIdentifier=db, DBInstanceClass="db.t3.micro", Engine="postgres",
                           MasterUsername="dbadmin", MasterUserPassword="password-1", AllocatedStorage=20)
    snapshot = rds.create_db_snapshot(DBSnapshotIdentifier=unique("rp"), DBInstanceIdentifier=db)["DBSnapshot"]
    vault, central_vault = workload.vault(), central.vault(policy(allow_copy_into(WORKLOAD)))
    workload.aws.add_recovery_point({"RecoveryPointArn": snapshot["DBSnapshotArn"], "BackupVaultName": vault,
                                     "ResourceArn": f"arn:aws:rds:{SOURCE_REGION}:{WORKLOAD}:db:{db}",
                                     "CreationDate": time.time()}, account=WORKLOAD)
    job = workload.finished(workload.copy(vault, snapshot["DBSnapshotArn"],
                                          vault_arn(CENTRAL, BACKUP_REGION, central_vault)))
    assert (job["State"], job["ResourceType"]) == ("COMPLETED", "RDS"), job
    copy_arn = job["DestinationRecoveryPointArn"]
    assert copy_arn.startswith(f"arn:aws:rds:{BACKUP_REGION}:{CENTRAL}:snapshot:awsbackup:copyjob-"), copy_arn
    [copied] = aws.client("rds", BACKUP_REGION, CENTRAL).describe_db_snapshots(
        DBSnapshotIdentifier=copy_arn.split(":snapshot:", 1)[1], SnapshotType="awsbackup")["DBSnapshots"]
    assert (copied["DBInstanceIdentifier"], copied["SnapshotType"]) == (db, "awsbackup")


def test_a_central_vault_open_to_the_organisation_lets_its_accounts_in(aws, workload, central):
    organization = aws.client("organizations", account=WORKLOAD).create_organization(FeatureSet="ALL")["Organization"]
    vault = workload.vault()
    for org_id, state in ((organization["Id"], "COMPLETED"), ("o-0000000000", "FAILED")):
        central_vault = central.vault(policy({
            "Effect": "Allow", "Principal": "*", "Action": "backup:CopyIntoBackupVault", "Resource": "*",
            "Condition": {"StringEquals": {"aws:PrincipalOrgID": org_id}}}))
        job = workload.finished(workload.copy(vault, workload.recovery_point(vault),
                                              vault_arn(CENTRAL, BACKUP_REGION, central_vault)))
        assert job["State"] == state, (org_id, job)


def test_a_vault_policy_the_emulator_cannot_evaluate_fails_the_copy_saying_so(workload, central):
    central_vault = central.vault(policy({**allow_copy_into(WORKLOAD), "Condition": {
        "DateGreaterThan": {"aws:CurrentTime": "2020-01-01T00:00:00Z"}}}))
    vault = workload.vault()
    job = workload.finished(workload.copy(vault, workload.recovery_point(vault),
                                          vault_arn(CENTRAL, BACKUP_REGION, central_vault)))
    assert job["State"] == "FAILED" and "not evaluated by the emulator" in job["StatusMessage"], job
    assert vault_arn(CENTRAL, BACKUP_REGION, central_vault) in job["StatusMessage"]
