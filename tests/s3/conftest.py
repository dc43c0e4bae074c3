"""Fixtures of the headwater-s3 tests: one moto S3 server per session on 127.0.0.1, dummy credentials.

The server is moto's ``ThreadedMotoServer`` in this process; tests that must kill a server start
their own :class:`s3_helpers.MotoProcess`. Dummy AWS credentials are set for the whole session
(and inherited by every subprocess), so botocore never looks for credentials on a metadata address.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from s3_helpers import DUMMY_AWS, boto3_client, set_auth

pytest.importorskip("moto", reason="the S3 tests need moto[s3]==5.2.5 (requirements/s3.txt)")


@pytest.fixture(scope="session", autouse=True)
def aws_environment() -> Iterator[None]:
    """Dummy credentials and region in the environment for the whole session (and its subprocesses)."""
    patch = pytest.MonkeyPatch()
    for name, value in DUMMY_AWS.items():
        patch.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        patch.delenv(name, raising=False)
    yield
    patch.undo()


@pytest.fixture(scope="session")
def moto_endpoint(aws_environment: None) -> Iterator[str]:
    """``http://127.0.0.1:PORT`` of the session's moto S3 server."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        set_auth(f"http://{host}:{port}", False)
        server.stop()


@pytest.fixture
def s3_client(moto_endpoint: str) -> Any:
    """A plain boto3 client of the session's server (to create buckets and look at objects)."""
    return boto3_client(moto_endpoint)


@pytest.fixture
def bucket(s3_client: Any) -> str:
    """A new, empty bucket for this test."""
    name = f"hw-{uuid.uuid4().hex[:12]}"
    s3_client.create_bucket(Bucket=name)
    return name


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An isolated HEADWATER_HOME with no HEADWATER__ variables (secrets and [s3] config go here)."""
    import os

    for name in list(os.environ):
        if name.upper().startswith("HEADWATER__"):
            monkeypatch.delenv(name)
    path = tmp_path / "home"
    path.mkdir()
    monkeypatch.setenv("HEADWATER_HOME", str(path))
    return path


@pytest.fixture
def endpoint_env(moto_endpoint: str, home: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """The session's server as the ``[s3] endpoint_url`` (HEADWATER__S3__ENDPOINT_URL) of this test."""
    monkeypatch.setenv("HEADWATER__S3__ENDPOINT_URL", moto_endpoint)
    return moto_endpoint
