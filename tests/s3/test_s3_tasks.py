"""The S3 task library (headwater.tasks.aws.s3) against moto: Prefect 1's arguments and behaviour."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from headwater import Flow, task
from headwater.tasks.aws.s3 import S3Download, S3List, S3Upload
from headwater_s3.errors import S3AccessDeniedError, S3BucketNotFoundError, S3KeyNotFoundError
from s3_helpers import set_auth


def test_upload_download_list_in_a_flow(bucket: str, moto_endpoint: str, s3_client: Any) -> None:
    options = {"endpoint_url": moto_endpoint}
    upload = S3Upload(bucket=bucket, boto_kwargs=options)
    download = S3Download(bucket=bucket, boto_kwargs=options)
    listing = S3List(bucket=bucket, boto_kwargs=options)

    @task
    def shout(text: str) -> str:
        return text.upper()

    with Flow("s3-tasks") as flow:
        key = upload(data="hello s3", key="in/hello.txt")
        text = download(key=key)
        out = upload(data=shout(text), key="out/HELLO.txt", compression="gzip")
        listed = listing(prefix="", upstream_tasks=[out])

    state = flow.run(run_on_schedule=False)
    assert state.is_successful(), state
    assert state.result[key].result == "in/hello.txt"
    assert state.result[text].result == "hello s3"
    assert state.result[listed].result == ["in/hello.txt", "out/HELLO.txt"]
    stored = s3_client.get_object(Bucket=bucket, Key="out/HELLO.txt")["Body"].read()
    assert gzip.decompress(stored) == b"HELLO S3"


def test_run_arguments_override_init_and_bytes_and_compression(bucket: str, moto_endpoint: str, s3_client: Any) -> None:
    options = {"endpoint_url": moto_endpoint}
    generated = S3Upload(bucket="wrong-bucket", boto_kwargs=options).run(data=b"\x00\x01", bucket=bucket)
    assert len(generated) == 36  # a UUID key when none is given
    assert s3_client.get_object(Bucket=bucket, Key=generated)["Body"].read() == b"\x00\x01"
    download = S3Download(boto_kwargs=options)
    assert download.run(key=generated, bucket=bucket, as_bytes=True) == b"\x00\x01"
    S3Upload(bucket=bucket, boto_kwargs=options).run(data="bz", key="c.bz2", compression="bz2")
    assert download.run(key="c.bz2", bucket=bucket, compression="bz2") == "bz"
    with pytest.raises(ValueError, match="gzip"):
        download.run(key="c.bz2", bucket=bucket, compression="gzip")
    with pytest.raises(ValueError, match="unknown compression"):
        download.run(key="c.bz2", bucket=bucket, compression="zip")
    with pytest.raises(ValueError, match="no bucket"):
        S3Download(boto_kwargs=options).run(key="x")


def test_list_prefix_delimiter_max_items_and_time_window(bucket: str, moto_endpoint: str, s3_client: Any) -> None:
    for key in ("a/1.txt", "a/2.txt", "a/sub/3.txt", "b/4.txt"):
        s3_client.put_object(Bucket=bucket, Key=key, Body=b"x")
    listing = S3List(bucket=bucket, boto_kwargs={"endpoint_url": moto_endpoint})
    assert listing.run(prefix="a/") == ["a/1.txt", "a/2.txt", "a/sub/3.txt"]
    assert listing.run(prefix="a/", delimiter="/") == ["a/1.txt", "a/2.txt", "a/sub/"]
    assert listing.run(prefix="", max_items=2, page_size=1) == ["a/1.txt", "a/2.txt"]
    future = datetime.now(UTC) + timedelta(days=1)
    assert listing.run(prefix="", last_modified_begin=future.isoformat()) == []
    assert len(listing.run(prefix="", last_modified_end=future)) == 4


def test_errors_name_bucket_and_key(bucket: str, moto_endpoint: str) -> None:
    options = {"endpoint_url": moto_endpoint}
    with pytest.raises(S3KeyNotFoundError, match=f"s3://{bucket}/missing.txt"):
        S3Download(bucket=bucket, boto_kwargs=options).run(key="missing.txt")
    with pytest.raises(S3BucketNotFoundError, match="no-such-task-bucket"):
        S3Upload(bucket="no-such-task-bucket", boto_kwargs=options).run(data="x", key="k")
    with pytest.raises(S3BucketNotFoundError, match="no-such-task-bucket"):
        S3List(bucket="no-such-task-bucket", boto_kwargs=options).run(prefix="")


def test_credentials_from_a_run_time_input_and_from_a_secret(
    bucket: str, moto_endpoint: str, s3_client: Any, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import boto3

    iam = boto3.client("iam", endpoint_url=moto_endpoint, region_name="us-east-1")
    user = f"tasks-{bucket}"
    iam.create_user(UserName=user)
    iam.put_user_policy(UserName=user, PolicyName="all", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}))
    created = iam.create_access_key(UserName=user)["AccessKey"]
    good = {"ACCESS_KEY": created["AccessKeyId"], "SECRET_ACCESS_KEY": created["SecretAccessKey"]}
    monkeypatch.setenv("HEADWATER__CONTEXT__SECRETS__AWS_CREDENTIALS", json.dumps(good))
    options = {"endpoint_url": moto_endpoint}
    s3_client.put_object(Bucket=bucket, Key="k.txt", Body=b"secret data")
    set_auth(moto_endpoint, True)
    try:
        assert S3Download(bucket=bucket, boto_kwargs=options).run(key="k.txt", credentials=good) == "secret data"
        by_secret = S3Download(bucket=bucket, boto_kwargs=options, credentials_secret="AWS_CREDENTIALS")
        assert by_secret.run(key="k.txt") == "secret data"
        bad = {"ACCESS_KEY": "AKIANOTKNOWN00000000", "SECRET_ACCESS_KEY": "not-the-secret-xyz"}
        with pytest.raises(S3AccessDeniedError) as info:
            S3Download(bucket=bucket, boto_kwargs=options).run(key="k.txt", credentials=bad)
    finally:
        set_auth(moto_endpoint, False)
    message = str(info.value)
    assert "InvalidAccessKeyId" in message and "passed to the task at run time" in message
    assert "AKIANOTKNOWN" not in message and "not-the-secret-xyz" not in message


def test_the_shim_module_lists_the_tasks() -> None:
    import headwater.tasks.aws.s3 as shim

    assert sorted(dir(shim)) == ["S3Download", "S3List", "S3Upload"]
    with pytest.raises(AttributeError):
        shim.S3Copy  # noqa: B018 - not a task of the library
