"""S3 storage on a real (moto) S3 server: the conformance kit, content-addressed keys, scripts, errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from headwater.plugins import FlowNotInStorageError, StorageConformance, from_dict
from headwater.storage import S3
from headwater.testing.flows import expected_result, sample_flow
from headwater_s3.errors import S3AccessDeniedError, S3BucketNotFoundError, S3ConfigurationError, S3CorruptObjectError
from s3_helpers import keys, set_auth


class TestS3StorageConformance(StorageConformance):
    @pytest.fixture
    def storage(self, bucket: str, moto_endpoint: str) -> Any:
        return S3(bucket=bucket, client_options={"endpoint_url": moto_endpoint})


class TestS3StorageWithPrefixAndConfigEndpoint(StorageConformance):
    """The same kit with the endpoint from ``[s3]`` (HEADWATER__S3__ENDPOINT_URL) and a key prefix."""

    @pytest.fixture
    def storage(self, bucket: str, endpoint_env: str) -> Any:
        return S3(bucket=bucket, prefix="flows")


def _storage(bucket: str, endpoint: str, **kwargs: Any) -> S3:
    return S3(bucket=bucket, client_options={"endpoint_url": endpoint}, **kwargs)


def test_keys_are_content_addressed_and_rebuilding_uploads_nothing(bucket: str, moto_endpoint: str, s3_client: Any) -> None:
    storage = _storage(bucket, moto_endpoint)
    location = storage.add_flow(sample_flow("etl"))
    storage.build()
    assert keys(s3_client, bucket) == [location]
    assert location.startswith("etl/") and location.endswith(".flow")
    # From now on nobody may upload to the bucket: a build of the same code must still succeed.
    deny_put = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Deny", "Principal": "*", "Action": "s3:PutObject", "Resource": f"arn:aws:s3:::{bucket}/*"}],
    }
    s3_client.put_bucket_policy(Bucket=bucket, Policy=json.dumps(deny_put))
    again = _storage(bucket, moto_endpoint)
    assert again.add_flow(sample_flow("etl")) == location
    again.build()  # HEAD finds the object: no PutObject
    changed = _storage(bucket, moto_endpoint)
    with pytest.raises(S3AccessDeniedError, match=bucket):
        changed.add_flow(sample_flow("etl", variant="triple"))
        changed.build()  # other code, other key: this one must upload, and the policy refuses it
    s3_client.delete_bucket_policy(Bucket=bucket)


def test_an_object_without_a_digest_is_compared_by_its_bytes(bucket: str, moto_endpoint: str, s3_client: Any) -> None:
    """Objects uploaded by an older headwater-s3 carry no digest: the same bytes are kept, other bytes go elsewhere."""
    from headwater.plugins import dumps_flow

    flow = sample_flow("legacy")
    storage = _storage(bucket, moto_endpoint)
    location = storage.add_flow(flow)
    data = dumps_flow(flow)
    s3_client.put_object(Bucket=bucket, Key=location, Body=data)  # no headwater-sha256 metadata
    storage.build()
    assert storage.flows["legacy"] == location and keys(s3_client, bucket) == [location]
    s3_client.put_object(Bucket=bucket, Key=location, Body=data + b"other")  # not what this flow pickles to
    again = _storage(bucket, moto_endpoint)
    again.add_flow(sample_flow("legacy"))
    again.build()
    moved = again.flows["legacy"]
    assert moved != location and moved.startswith(location.removesuffix(".flow") + "-")
    assert s3_client.get_object(Bucket=bucket, Key=location)["Body"].read() == data + b"other"  # never rewritten
    head = s3_client.head_object(Bucket=bucket, Key=moved)
    assert len(head["Metadata"]["headwater-sha256"]) == 64


def test_fixed_key_holds_one_flow(bucket: str, moto_endpoint: str, s3_client: Any) -> None:
    storage = _storage(bucket, moto_endpoint, key="team/etl.flow")
    assert storage.add_flow(sample_flow("etl")) == "team/etl.flow"
    with pytest.raises(ValueError, match="one flow"):
        storage.add_flow(sample_flow("other"))
    storage.build()
    assert keys(s3_client, bucket) == ["team/etl.flow"]
    loaded = from_dict(storage.serialize(), "storage").get_flow("team/etl.flow")
    assert loaded.name == "etl"


def test_stored_as_script_with_project_dir_imports_helpers(
    bucket: str, moto_endpoint: str, s3_client: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = tmp_path / "project"
    (project / "flows").mkdir(parents=True)
    (project / "helpers.py").write_text("def shout(text):\n    return text.upper() + '!'\n")
    (project / "flows" / "hello.py").write_text(
        "import helpers\nfrom headwater import Flow, task\n\n\n@task\ndef greet(name):\n    return helpers.shout(name)\n\n\n"
        "with Flow('script-flow') as flow:\n    greet('s3')\n"
    )
    monkeypatch.chdir(project)
    monkeypatch.syspath_prepend(str(project))
    from headwater.plugins import load_flows_from_file

    flow = load_flows_from_file("flows/hello.py")["script-flow"]
    storage = _storage(bucket, moto_endpoint, stored_as_script=True, local_script_path="flows/hello.py", project_dir=".")
    location = storage.add_flow(flow)
    storage.build()
    stored = keys(s3_client, bucket)
    prefix = location.rsplit("/", 2)[0]
    assert location.endswith("/flows/hello.py")
    assert {f"{prefix}/helpers.py", f"{prefix}/flows/hello.py", f"{prefix}/.complete"} <= set(stored)
    # The agent: elsewhere, without the project on its path.
    elsewhere = tmp_path / "agent"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    monkeypatch.delitem(__import__("sys").modules, "helpers", raising=False)
    agent_side = from_dict(json.loads(json.dumps(storage.serialize())), "storage")
    state = agent_side.get_flow(location).run(run_on_schedule=False)
    assert state.is_successful(), state
    assert [s.result for s in state.result.values()] == ["S3!"]


def test_stored_as_script_single_file(bucket: str, moto_endpoint: str, s3_client: Any, tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    script = tmp_path / "one.py"
    script.write_text("from headwater import Flow, task\n\n\n@task\ndef one():\n    return 1\n\n\nwith Flow('one') as flow:\n    one()\n")
    monkeypatch.chdir(tmp_path)
    from headwater.plugins import load_flows_from_file

    flow = load_flows_from_file("one.py")["one"]
    storage = _storage(bucket, moto_endpoint, stored_as_script=True, local_script_path="one.py")
    location = storage.add_flow(flow)
    storage.build()
    body = s3_client.get_object(Bucket=bucket, Key=location)["Body"].read().decode()
    assert body == script.read_text()
    assert from_dict(storage.serialize(), "storage").get_flow(location).name == "one"


def test_missing_bucket_names_bucket_key_and_fix(moto_endpoint: str) -> None:
    storage = _storage("no-such-bucket-here", moto_endpoint)
    location = storage.add_flow(sample_flow("etl"))
    with pytest.raises(S3BucketNotFoundError) as info:
        storage.build()
    message = str(info.value)
    assert "no-such-bucket-here" in message and location in message and "aws s3 mb" in message
    with pytest.raises(S3BucketNotFoundError, match="does not exist"):
        storage.get_flow(location)


def test_missing_key_is_flow_not_in_storage(bucket: str, moto_endpoint: str, s3_client: Any) -> None:
    storage = _storage(bucket, moto_endpoint)
    location = storage.add_flow(sample_flow("etl"))
    storage.build()
    s3_client.delete_object(Bucket=bucket, Key=location)
    with pytest.raises(FlowNotInStorageError) as info:
        from_dict(storage.serialize(), "storage").get_flow(location)
    assert f"s3://{bucket}/{location}" in str(info.value) and "register the flow again" in str(info.value)
    assert isinstance(info.value, FileNotFoundError)


def test_corrupt_object_is_a_clear_error(bucket: str, moto_endpoint: str, s3_client: Any) -> None:
    storage = _storage(bucket, moto_endpoint)
    location = storage.add_flow(sample_flow("etl"))
    storage.build()
    data = s3_client.get_object(Bucket=bucket, Key=location)["Body"].read()
    s3_client.put_object(Bucket=bucket, Key=location, Body=data[: len(data) // 2])
    with pytest.raises(S3CorruptObjectError) as info:
        storage.get_flow(location)
    assert f"s3://{bucket}/{location}" in str(info.value) and "truncated" in str(info.value)


def test_bucket_policy_deny_is_access_denied(bucket: str, moto_endpoint: str, s3_client: Any) -> None:
    storage = _storage(bucket, moto_endpoint)
    location = storage.add_flow(sample_flow("etl"))
    storage.build()
    policy = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Deny", "Principal": "*", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{bucket}/*"}],
    }
    s3_client.put_bucket_policy(Bucket=bucket, Policy=json.dumps(policy))
    try:
        with pytest.raises(S3AccessDeniedError) as info:
            storage.get_flow(location)
    finally:
        s3_client.delete_bucket_policy(Bucket=bucket)
    message = str(info.value)
    assert f"s3://{bucket}/{location}" in message and "bucket policy" in message
    assert "default AWS credential chain" in message


def test_wrong_credentials_are_access_denied_without_showing_them(
    bucket: str, moto_endpoint: str, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage = _storage(bucket, moto_endpoint)
    location = storage.add_flow(sample_flow("etl"))
    storage.build()
    monkeypatch.setenv(
        "HEADWATER__CONTEXT__SECRETS__AWS_CREDENTIALS",
        '{ACCESS_KEY = "AKIAWRONGWRONGWRONG1", SECRET_ACCESS_KEY = "very-secret-value-123"}',
    )
    agent_side = S3(bucket=bucket, client_options={"endpoint_url": moto_endpoint}, secrets=["AWS_CREDENTIALS"],
                    flows=dict(storage.flows))
    set_auth(moto_endpoint, True)  # moto now checks access keys: this one is unknown
    try:
        with pytest.raises(S3AccessDeniedError) as info:
            agent_side.get_flow(location)
    finally:
        set_auth(moto_endpoint, False)
    message = str(info.value)
    assert "denied" in message and "'AWS_CREDENTIALS'" in message and bucket in message
    assert "AKIAWRONG" not in message and "very-secret-value-123" not in message
    assert "very-secret" not in repr(agent_side) and "very-secret" not in json.dumps(agent_side.serialize())


def test_credentials_in_client_options_are_refused(bucket: str) -> None:
    with pytest.raises(S3ConfigurationError, match="credentials_secret"):
        S3(bucket=bucket, client_options={"aws_secret_access_key": "x"})


def test_secret_credentials_are_used(bucket: str, moto_endpoint: str, home: Path, monkeypatch: pytest.MonkeyPatch,
                                     s3_client: Any) -> None:
    """With auth on, only a real IAM user's keys (given through a secret) can read the flow."""
    storage = _storage(bucket, moto_endpoint)
    location = storage.add_flow(sample_flow("etl"))
    storage.build()
    iam = __import__("boto3").client("iam", endpoint_url=moto_endpoint, region_name="us-east-1")
    user = f"reader-{bucket}"
    iam.create_user(UserName=user)
    iam.put_user_policy(UserName=user, PolicyName="read", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}))
    created = iam.create_access_key(UserName=user)["AccessKey"]
    monkeypatch.setenv("HEADWATER__CONTEXT__SECRETS__READER", json.dumps(
        {"ACCESS_KEY": created["AccessKeyId"], "SECRET_ACCESS_KEY": created["SecretAccessKey"]}))
    reader = S3(bucket=bucket, client_options={"endpoint_url": moto_endpoint}, credentials_secret="READER",
                flows=dict(storage.flows))
    set_auth(moto_endpoint, True)
    try:
        state = reader.get_flow(location).run(parameters={"x": 1}, run_on_schedule=False)
        with pytest.raises(S3AccessDeniedError):  # the dummy chain credentials are refused now
            storage.get_flow(location)
    finally:
        set_auth(moto_endpoint, False)
    assert state.is_successful()
    assert expected_result(1) in [s.result for s in state.result.values()]


def test_invalid_bucket_names_are_refused() -> None:
    with pytest.raises(ValueError, match="bucket"):
        S3(bucket="s3://x/y")
    with pytest.raises(ValueError, match="project_dir"):
        S3(bucket="abc", project_dir=".")
