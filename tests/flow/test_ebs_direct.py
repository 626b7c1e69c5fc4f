"""The EBS flow's direct read path (ReadPath direct) end to end on the emulator: the test writes a real ext4 disk's
blocks into an encrypted snapshot with the EBS direct APIs (StartSnapshot, PutSnapshotBlock, CompleteSnapshot),
leaving holes, and registers it as an AWS Backup recovery point; the event about it runs the real ASL, whose job
reads those blocks back through ListSnapshotBlocks/GetSnapshotBlock with no volume at all. The archive must restore
to the snapshot's bytes, holes as zeros; the claim, Verify, the recovery point's deletion and the failure path are
the volume path's."""

import base64
import hashlib
import time

import pytest

from conftest import (
    backup_event, cli, executions, finished, new_executions, output_of, put_event, recovery_point_fate,
    settings, sns_messages, states_entered, volumes_of,
)
from emulator.deploy import deploy

DIRECT_VAULT = "direct-vault"  # the "direct" stack's vault: read through the EBS direct APIs, then deleted
BLOCK = 512 * 1024  # the EBS direct APIs' only block size
SNAPSHOT_GIB = 1
# A block written far past the disk image, so that the snapshot ends neither at its data nor at a hole boundary
# the image chose: the holes between are the archive's to fill with zeros.
FAR_BLOCK_INDEX = 1500
DIRECT_PATH = ["Plan", "Route", "ChooseReadPath", "ClaimSnapshot", "DirectArchiveJob", "Verify",
               "ShouldDeleteRecoveryPoint"]


@pytest.fixture(scope="module")
def snapshot_key(aws):
    """The customer managed key the test's snapshots are encrypted with: the template's SnapshotKmsKeyArns."""
    return aws.client("kms").create_key(Description="backup-archiver test: EBS snapshots")["KeyMetadata"]["Arn"]


@pytest.fixture(scope="module")
def direct_stack(aws, proxy, slack, device, iam, snapshot_key):
    s = settings("direct", DIRECT_VAULT, True, device, proxy, slack)
    s.parameters = {"ReadPath": "direct", "SnapshotKmsKeyArns": snapshot_key}
    stack = deploy(aws, s, aws.lambda_map)
    stack.settings = s
    iam.roles.update(stack.roles)
    iam.resource_policies.update(stack.resource_policies)
    return stack


def sha256_b64(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def snapshot_of_disk(aws, device: str, key_arn: str) -> tuple[str, bytes, list[int]]:
    """A new encrypted snapshot holding the disk's bytes, as a restore to a snapshot writes one: only the blocks that
    are not all zero, plus one block at FAR_BLOCK_INDEX. Returns (snapshot id, the snapshot's expected bytes up to
    and including that block, the written block indexes)."""
    with open(device, "rb") as disk:
        image = disk.read()
    far = bytes(range(256)) * (BLOCK // 256)
    expected = image.ljust(FAR_BLOCK_INDEX * BLOCK, b"\0") + far
    ebs = aws.client("ebs")
    snapshot_id = ebs.start_snapshot(VolumeSize=SNAPSHOT_GIB, Encrypted=True, KmsKeyArn=key_arn,
                                     Description="AWS Backup recovery point (written by the test)")["SnapshotId"]
    written = []
    for index in range(len(expected) // BLOCK):
        block = expected[index * BLOCK:(index + 1) * BLOCK]
        if block.count(0) == BLOCK:
            continue
        ebs.put_snapshot_block(SnapshotId=snapshot_id, BlockIndex=index, BlockData=block, DataLength=BLOCK,
                               Checksum=sha256_b64(block), ChecksumAlgorithm="SHA256")
        written.append(index)
    linear = hashlib.sha256(b"".join(hashlib.sha256(expected[i * BLOCK:(i + 1) * BLOCK]).digest()
                                     for i in written)).digest()
    ebs.complete_snapshot(SnapshotId=snapshot_id, ChangedBlocksCount=len(written),
                          Checksum=base64.b64encode(linear).decode(), ChecksumAlgorithm="SHA256",
                          ChecksumAggregationMethod="LINEAR")
    [described] = aws.client("ec2").describe_snapshots(SnapshotIds=[snapshot_id])["Snapshots"]
    assert described["State"] == "completed" and described["Encrypted"], described
    return snapshot_id, expected, written


def recovery_point(aws, snapshot_id: str) -> dict:
    """The snapshot as an AWS Backup recovery point of DIRECT_VAULT, and the job's COMPLETED event about it."""
    event = backup_event(snapshot_id, "vol-0d1rec7read000000", DIRECT_VAULT)
    aws.add_recovery_point({"RecoveryPointArn": event["resources"][0], "BackupVaultName": DIRECT_VAULT,
                            "ResourceArn": event["detail"]["resourceArn"], "CreationDate": time.time()})
    return event


def run(aws, stack, event) -> dict:
    before = executions(aws, stack)
    put_event(aws, event)
    [execution_arn] = new_executions(aws, stack, before)
    return finished(aws, execution_arn)


def ebs_calls(aws, start: int, operation: str) -> list[dict]:
    return [call for call in aws.calls(start) if call["call"] == f"ebs:{operation}"]


def test_the_archive_is_read_from_the_snapshots_blocks_with_no_volume(aws, direct_stack, proxy, slack, device,
                                                                       snapshot_key, tmp_path):
    snapshot_id, expected, written = snapshot_of_disk(aws, device, snapshot_key)
    holes = len(expected) // BLOCK - len(written)
    assert holes > 0 and written[-1] == FAR_BLOCK_INDEX, "the snapshot has holes, and data after them"
    first_call = len(aws.calls())
    event = recovery_point(aws, snapshot_id)

    execution = run(aws, direct_stack, event)
    arn = execution["executionArn"]
    assert execution["status"] == "SUCCEEDED", execution
    assert states_entered(aws, arn) == DIRECT_PATH + ["DeleteRecoveryPoint", "NotifySuccess", "Archived"]
    output = output_of(execution)
    assert output["read_path"] == "direct" and output["volume"] is None

    # No volume: none created, none tagged with the execution; the bytes came from the blocks the test wrote, each
    # read once by the job's role through the EBS direct APIs.
    assert proxy.actions("CreateVolume") == [] and proxy.actions("AttachVolume") == []
    assert volumes_of(aws, arn) == [] and "temporary_volume" not in output
    gets = ebs_calls(aws, first_call, "GetSnapshotBlock")
    assert len(gets) == len(written), f"{len(gets)} blocks read, {len(written)} written"
    assert {call["role"].rsplit("/", 1)[1] for call in gets} == {"direct-direct-job"}, "the direct job's own role"
    # Encrypted: each read was also EBS's kms:Decrypt with the job's permission, which iam_check evaluated.
    assert all(any(check["action"] == "kms:Decrypt" and check["resource"] == snapshot_key for check in call["checks"])
               for call in gets), gets[0]
    assert ebs_calls(aws, first_call, "ListSnapshotBlocks")

    # The archive restores to the snapshot's bytes: the disk, zeros for every hole, the far block, zeros to 1 GiB.
    location = output["verification"]["location"]
    verified = cli(aws, "verify", location)
    assert verified.returncode == 0, verified.stderr
    restored = cli(aws, "restore", location, "--to", str(tmp_path / "restored"))
    assert restored.returncode == 0, restored.stderr
    image = tmp_path / "restored" / "disk.img"
    assert image.stat().st_size == SNAPSHOT_GIB << 30
    with open(image, "rb") as restored_image:
        assert restored_image.read(len(expected)) == expected
        tail = restored_image.read()
    assert tail.count(0) == len(tail), "the snapshot's trailing holes are zeros"

    # Verified, so the recovery point is deleted, as on the volume path; one notification.
    [call] = proxy.actions("DeleteRecoveryPoint")
    assert call.params["RecoveryPointArn"] == event["resources"][0]
    assert recovery_point_fate(aws, event) == "deleted"
    [message] = slack.delivered()
    assert f"Archived {snapshot_id}" in message["text"]
    assert len(sns_messages(aws, direct_stack)) == 1


def test_a_failed_direct_read_keeps_the_recovery_point_and_releases_the_claim(aws, direct_stack, proxy, slack,
                                                                              device, snapshot_key):
    snapshot_id, _, _ = snapshot_of_disk(aws, device, snapshot_key)
    event = recovery_point(aws, snapshot_id)
    proxy.fail_uploads()
    execution = run(aws, direct_stack, event)
    assert execution["status"] == "FAILED", execution
    assert execution["error"] == "JobFailed", execution
    entered = states_entered(aws, execution["executionArn"])
    assert entered[:5] == DIRECT_PATH[:5] and entered[-4:] == ["Cleanup", "NotifyFailure", "FailureRoute", "Failed"], entered
    assert "Verify" not in entered and "DeleteRecoveryPoint" not in entered
    assert proxy.actions("DeleteRecoveryPoint") == [] and recovery_point_fate(aws, event) == "kept"
    assert proxy.actions("CreateVolume") == []
    assert len(slack.delivered()) == 1

    # The claim was released: a replay of the same event archives the snapshot.
    proxy.reset()
    replay = run(aws, direct_stack, event)
    assert replay["status"] == "SUCCEEDED", replay
    assert recovery_point_fate(aws, event) == "deleted"

