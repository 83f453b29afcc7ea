"""Smoke test for tests/support/s3server.py: a real SeaweedFS S3 server on loopback."""

from __future__ import annotations

import io
import os
import pathlib
import random
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.support.s3server import (
    AWS_ENV_TO_UNSET,
    S3Server,
    aws_isolation_env,
    require_weed_binary,
    start_s3_server,
)

MIB = 1024 * 1024
PART_SIZE = 5 * MIB
PREFIX = "uploads/smoke/"


@pytest.fixture
def isolated_aws_env(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Point boto3 at AWS config files that do not exist; drop AWS_* from the environment."""
    for name in AWS_ENV_TO_UNSET:
        monkeypatch.delenv(name, raising=False)
    for name, value in aws_isolation_env(tmp_path).items():
        monkeypatch.setenv(name, value)


StartServer = Callable[..., S3Server]


@pytest.fixture
def s3_servers(tmp_path: pathlib.Path, isolated_aws_env: None) -> Iterator[StartServer]:
    """Start SeaweedFS S3 servers under tmp_path (``s3_servers(**kwargs)``); stop them afterwards."""
    started: list[S3Server] = []

    def start(**kwargs: Any) -> S3Server:
        server = start_s3_server(tmp_path / f"seaweedfs{len(started)}", **kwargs)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def _pid_gone(pid: int) -> bool:
    """Whether no process (zombie included) has this PID any more."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def _group_gone(pgid: int) -> bool:
    """Whether no process is left in process group ``pgid``."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return False


@pytest.mark.s3
@pytest.mark.timeout(300)
def test_multipart_roundtrip_ranged_get_and_prefix_delete(s3_servers: StartServer) -> None:
    """Multipart upload of 20 MiB + 1 byte, read back whole and by ranges, delete by prefix."""
    from boto3.s3.transfer import TransferConfig

    # In the test body, not a fixture, so that a missing weed under $CI is a FAILED test.
    s3_server = s3_servers(weed=require_weed_binary())

    client = s3_server.client()
    bucket = s3_server.bucket
    assert s3_server.endpoint_url.startswith("http://127.0.0.1:")
    assert s3_server.object_keys() == []

    data = random.Random(20240521).randbytes(20 * MIB + 1)
    big_key = f"{PREFIX}big.bin"
    transfer = TransferConfig(multipart_threshold=PART_SIZE, multipart_chunksize=PART_SIZE, max_concurrency=4)
    client.upload_fileobj(io.BytesIO(data), bucket, big_key, Config=transfer)
    client.put_object(Bucket=bucket, Key=f"{PREFIX}small/one.txt", Body=b"one")
    client.put_object(Bucket=bucket, Key=f"{PREFIX}small/two.txt", Body=b"two")
    client.put_object(Bucket=bucket, Key="elsewhere/keep.txt", Body=b"other")

    head = client.head_object(Bucket=bucket, Key=big_key)
    assert head["ContentLength"] == len(data)
    assert head["ETag"].strip('"').endswith("-5"), head["ETag"]  # 4 x 5 MiB + 1 byte

    whole = client.get_object(Bucket=bucket, Key=big_key)["Body"].read()
    assert whole == data

    ranges = [
        (0, 0),  # first byte
        (PART_SIZE - 10, PART_SIZE + 10),  # across a part boundary
        (3 * PART_SIZE + 12345, 4 * PART_SIZE),  # into the final 1-byte part
        (len(data) - 1, len(data) - 1),  # last byte
    ]
    for start, end in ranges:
        response = client.get_object(Bucket=bucket, Key=big_key, Range=f"bytes={start}-{end}")
        assert response["ContentRange"] == f"bytes {start}-{end}/{len(data)}"
        assert response["Body"].read() == data[start : end + 1], (start, end)
    suffix = client.get_object(Bucket=bucket, Key=big_key, Range="bytes=-100")["Body"].read()
    assert suffix == data[-100:]
    # A range past the end is cut to the object's size, as S3 does.
    response = client.get_object(Bucket=bucket, Key=big_key, Range=f"bytes={len(data) - 3}-")
    assert response["ContentRange"] == f"bytes {len(data) - 3}-{len(data) - 1}/{len(data)}"
    assert response["Body"].read() == data[-3:]

    listed = client.list_objects_v2(Bucket=bucket, Prefix=PREFIX)
    keys = sorted(item["Key"] for item in listed["Contents"])
    assert keys == [big_key, f"{PREFIX}small/one.txt", f"{PREFIX}small/two.txt"]
    assert s3_server.object_keys(PREFIX) == keys
    assert s3_server.object_keys() == sorted([*keys, "elsewhere/keep.txt"])

    result = client.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": key} for key in keys], "Quiet": False})
    assert sorted(item["Key"] for item in result.get("Deleted", [])) == keys
    assert not result.get("Errors")
    assert s3_server.object_keys(PREFIX) == []
    assert s3_server.object_keys() == ["elsewhere/keep.txt"]

    client.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "elsewhere/keep.txt"}]})
    assert s3_server.object_keys() == []
    assert client.list_objects_v2(Bucket=bucket)["KeyCount"] == 0

    pid = s3_server.pid
    sockets = [
        pathlib.Path(f"/tmp/seaweedfs-{kind}-{s3_server.ports[name]}.sock")
        for kind, name in (("master-grpc", "master_grpc"), ("s3-grpc", "s3_grpc"))
    ]
    s3_server.stop()
    assert _pid_gone(pid), f"weed (pid {pid}) still exists after stop()"
    assert _group_gone(pid), f"processes of group {pid} still exist after stop()"
    assert not [path for path in sockets if path.exists()]
    s3_server.stop()  # idempotent
