"""`upwell serve --forward s3://…`: a finished tus upload is forwarded to S3 (moto, its own
process) by the same engine, multipart with a checksum per part; boto3 reads it back."""

from __future__ import annotations

import io
import os
import secrets

import pytest

from tests.support.services import S3Server
from upwell.aws import AWSSettings
from upwell.server.gateway.forwarding import ForwardTarget
from upwell.targets.s3 import S3Target

from .conftest import TUS, MakeGateway, forwards_settled, json_of, tus_upload

MiB = 1024 * 1024


async def test_a_finished_upload_is_forwarded_to_s3(
    make_gateway: MakeGateway, s3_server: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    for k, v in s3_server.env().items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    bucket = f"upwell-{secrets.token_hex(4)}"
    s3_server.client().create_bucket(Bucket=bucket)
    target = S3Target(f"s3://{bucket}/in/", AWSSettings.from_env())
    client = await make_gateway(
        forwards=(ForwardTarget(target.url, target),), forward_backoff=0.01, real_clock=True
    )
    payload = os.urandom(12 * MiB + 7)
    upload_id = await tus_upload(client, payload, "talk.mp4", "video/mp4", finish=False)
    resp = await client.patch(
        f"/files/{upload_id}",
        data=io.BytesIO(payload),
        headers={**TUS, "Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"},
    )
    assert resp.status == 204, await resp.text()
    await forwards_settled(client)
    record = await json_of(await client.get(f"/uploads/{upload_id}"))
    (forward,) = record["forwards"]
    assert forward["state"] == "done", forward
    assert forward["file_name"] == "in/talk.mp4"
    assert forward["file_uri"] == f"s3://{bucket}/in/talk.mp4"
    got = s3_server.client().get_object(Bucket=bucket, Key="in/talk.mp4")
    assert got["Body"].read() == payload
    assert got["ContentType"] == "video/mp4"
    assert got["ETag"].endswith('-3"')  # three 5 MiB parts: the S3 minimum raised the chunk
