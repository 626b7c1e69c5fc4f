"""The EBS direct APIs as the worker and the CLI use them (launcher.ebs_direct_apis): 512 KiB blocks with SHA-256
checksums checked on write, a LINEAR aggregate checksum checked at completion, block listings in index order
and in pages, block tokens, and snapshots that EC2 sees pending until they complete."""

import base64
import hashlib

import pytest
from botocore.exceptions import ClientError

BLOCK = 512 * 1024


def sha256_b64(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def block(fill: int) -> bytes:
    return bytes([fill]) * BLOCK


def put(ebs, snapshot_id: str, index: int, data: bytes, checksum: str | None = None) -> None:
    ebs.put_snapshot_block(SnapshotId=snapshot_id, BlockIndex=index, BlockData=data, DataLength=len(data),
                           Checksum=checksum or sha256_b64(data), ChecksumAlgorithm="SHA256")


def linear(blocks: dict[int, bytes]) -> str:
    digests = b"".join(hashlib.sha256(blocks[i]).digest() for i in sorted(blocks))
    return base64.b64encode(hashlib.sha256(digests).digest()).decode()


def complete(ebs, snapshot_id: str, blocks: dict[int, bytes], count: int | None = None) -> str:
    return ebs.complete_snapshot(SnapshotId=snapshot_id, ChangedBlocksCount=len(blocks) if count is None else count,
                                 Checksum=linear(blocks), ChecksumAlgorithm="SHA256",
                                 ChecksumAggregationMethod="LINEAR")["Status"]


def ec2_state(aws, snapshot_id: str) -> str:
    return aws.client("ec2").describe_snapshots(SnapshotIds=[snapshot_id])["Snapshots"][0]["State"]


def test_a_written_snapshot_reads_back_block_by_block_in_index_order(aws):
    ebs = aws.client("ebs")
    started = ebs.start_snapshot(VolumeSize=1, Description="restore", Tags=[{"Key": "k", "Value": "v"}])
    snapshot_id = started["SnapshotId"]
    assert started["BlockSize"] == BLOCK
    assert ec2_state(aws, snapshot_id) == "pending"
    blocks = {7: block(7), 2: block(2), 1000: block(9)}
    for index, data in blocks.items():
        put(ebs, snapshot_id, index, data)
    assert complete(ebs, snapshot_id, blocks) == "pending"
    assert ec2_state(aws, snapshot_id) == "completed"
    listed = ebs.list_snapshot_blocks(SnapshotId=snapshot_id)
    assert (listed["BlockSize"], listed["VolumeSize"]) == (BLOCK, 1)
    assert [b["BlockIndex"] for b in listed["Blocks"]] == [2, 7, 1000]
    for entry in listed["Blocks"]:
        got = ebs.get_snapshot_block(SnapshotId=snapshot_id, BlockIndex=entry["BlockIndex"],
                                     BlockToken=entry["BlockToken"])
        data = got["BlockData"].read()
        assert data == blocks[entry["BlockIndex"]]
        assert got["Checksum"] == sha256_b64(data)


def test_block_listings_come_in_pages(aws):
    ebs = aws.client("ebs")
    snapshot_id = ebs.start_snapshot(VolumeSize=1)["SnapshotId"]
    blocks = {i: block(1) for i in range(0, 2 * 102, 2)}  # MaxResults is at least 100
    for index, data in blocks.items():
        put(ebs, snapshot_id, index, data)
    complete(ebs, snapshot_id, blocks)
    seen, token = [], None
    while True:
        page = ebs.list_snapshot_blocks(SnapshotId=snapshot_id, MaxResults=100,
                                        **({"NextToken": token} if token else {}))
        seen.append([b["BlockIndex"] for b in page["Blocks"]])
        token = page.get("NextToken")
        if not token:
            break
    assert seen == [sorted(blocks)[:100], sorted(blocks)[100:]]
    listed = ebs.list_snapshot_blocks(SnapshotId=snapshot_id, StartingBlockIndex=199)["Blocks"]
    assert [b["BlockIndex"] for b in listed] == [200, 202]


def test_a_block_with_a_wrong_checksum_is_refused(aws):
    ebs = aws.client("ebs")
    snapshot_id = ebs.start_snapshot(VolumeSize=1)["SnapshotId"]
    with pytest.raises(ClientError, match="ValidationException") as raised:
        put(ebs, snapshot_id, 0, block(1), checksum=sha256_b64(block(2)))
    assert raised.value.response["Reason"] == "INVALID_CHECKSUM"
    with pytest.raises(ClientError, match="ValidationException"):
        put(ebs, snapshot_id, 0, b"short")


def test_a_completion_with_a_wrong_count_or_checksum_fails_the_snapshot(aws):
    ebs = aws.client("ebs")
    blocks = {0: block(1)}
    for count, checksum_of in ((2, blocks), (1, {0: block(2)})):
        snapshot_id = ebs.start_snapshot(VolumeSize=1)["SnapshotId"]
        put(ebs, snapshot_id, 0, blocks[0])
        status = ebs.complete_snapshot(SnapshotId=snapshot_id, ChangedBlocksCount=count,
                                       Checksum=linear(checksum_of), ChecksumAlgorithm="SHA256",
                                       ChecksumAggregationMethod="LINEAR")["Status"]
        assert status == "error"
        assert ec2_state(aws, snapshot_id) == "error"


def test_a_wrong_block_token_and_a_deleted_snapshot_are_refused(aws):
    ebs, ec2 = aws.client("ebs"), aws.client("ec2")
    snapshot_id = ebs.start_snapshot(VolumeSize=1, Encrypted=True)["SnapshotId"]
    assert not [v for v in ec2.describe_volumes()["Volumes"] if v["VolumeId"] in str(ec2.describe_snapshots(
        SnapshotIds=[snapshot_id]))], "StartSnapshot made no volume"
    assert ec2.describe_snapshots(SnapshotIds=[snapshot_id])["Snapshots"][0]["Encrypted"] is True
    put(ebs, snapshot_id, 1, block(1))
    complete(ebs, snapshot_id, {1: block(1)})
    with pytest.raises(ClientError, match="ValidationException"):
        ebs.get_snapshot_block(SnapshotId=snapshot_id, BlockIndex=1, BlockToken="not-a-token")
    with pytest.raises(ClientError, match="ValidationException"):
        ebs.get_snapshot_block(SnapshotId=snapshot_id, BlockIndex=2, BlockToken="not-a-token")
    ec2.delete_snapshot(SnapshotId=snapshot_id)
    with pytest.raises(ClientError, match="ResourceNotFoundException"):
        ebs.list_snapshot_blocks(SnapshotId=snapshot_id)
