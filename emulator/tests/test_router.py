"""The router's proxying of everything else to moto: bodies in both directions, streamed or chunked."""

import hashlib
import http.client
import io
import json
import os

from boto3.s3.transfer import TransferConfig


def test_s3_multipart_upload_and_download_round_trip(aws):
    s3 = aws.client("s3")
    s3.create_bucket(Bucket="round-trip")
    data = os.urandom(12 * 1024 * 1024 + 5)  # three parts of 5 MiB, the last one short
    config = TransferConfig(multipart_threshold=5 * 1024 * 1024, multipart_chunksize=5 * 1024 * 1024)
    s3.upload_fileobj(io.BytesIO(data), "round-trip", "archive.tar.gz", Config=config)
    head = s3.head_object(Bucket="round-trip", Key="archive.tar.gz")
    assert head["ContentLength"] == len(data)
    downloaded = s3.get_object(Bucket="round-trip", Key="archive.tar.gz")["Body"].read()
    assert hashlib.sha256(downloaded).digest() == hashlib.sha256(data).digest()


def test_chunked_request_body_is_forwarded(aws):
    host, port = aws.endpoint.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    body = iter([b'{"chunked": ', b'"yes"}'])
    connection.request("POST", "/2015-03-31/functions/echo/invocations", body=body, encode_chunked=True,
                       headers={"Transfer-Encoding": "chunked"})
    response = connection.getresponse()
    assert response.status == 200
    assert json.loads(response.read())["event"] == {"chunked": "yes"}


def test_unknown_paths_get_moto_answers(aws):
    host, port = aws.endpoint.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    connection.request("GET", "/moto-api/config")
    response = connection.getresponse()
    assert response.status == 201 and json.loads(response.read())["batch"] == {"use_docker": False}
