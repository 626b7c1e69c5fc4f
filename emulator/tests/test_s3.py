"""S3 as the worker uses it: multipart uploads with full-object CRC64NVME checksums, which S3 checks at
completion and reports on HeadObject and GetObjectAttributes (launcher.full_object_checksums)."""

import pytest
from awscrt import checksums
from botocore.exceptions import ClientError
from conftest import unique
from test_moto_defects import WRONG_CRC64NVME, completed_parts, full_object_upload

PARTS = [b"a" * (5 << 20), b"b" * 1000]


def crc64nvme(data: bytes) -> str:
    import base64

    return base64.b64encode(checksums.crc64nvme(data).to_bytes(8, "big")).decode()


def test_a_wrong_full_object_checksum_is_refused_and_the_upload_stays_open(aws):
    s3, bucket = aws.client("s3"), unique("bucket")
    upload_id = full_object_upload(s3, bucket, PARTS)
    with pytest.raises(ClientError, match="BadDigest"):
        s3.complete_multipart_upload(Bucket=bucket, Key="k", UploadId=upload_id, ChecksumType="FULL_OBJECT",
                                     ChecksumCRC64NVME=WRONG_CRC64NVME,
                                     MultipartUpload=completed_parts(s3, bucket, upload_id))
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket)
    assert [u["UploadId"] for u in s3.list_multipart_uploads(Bucket=bucket)["Uploads"]] == [upload_id]


def test_the_right_full_object_checksum_completes_and_is_reported(aws):
    s3, bucket = aws.client("s3"), unique("bucket")
    upload_id = full_object_upload(s3, bucket, PARTS)
    expected = crc64nvme(b"".join(PARTS))
    s3.complete_multipart_upload(Bucket=bucket, Key="k", UploadId=upload_id, ChecksumType="FULL_OBJECT",
                                 ChecksumCRC64NVME=expected, MultipartUpload=completed_parts(s3, bucket, upload_id))
    head = s3.head_object(Bucket=bucket, Key="k", ChecksumMode="ENABLED")
    assert (head["ChecksumCRC64NVME"], head["ChecksumType"]) == (expected, "FULL_OBJECT")
    attributes = s3.get_object_attributes(Bucket=bucket, Key="k", ObjectAttributes=["Checksum", "ObjectSize"])
    assert attributes["Checksum"]["ChecksumCRC64NVME"] == expected
    assert attributes["ObjectSize"] == sum(map(len, PARTS))
