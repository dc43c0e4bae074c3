"""S3Result on a real (moto) S3 server: templating, serializers, checkpointing in flows, multipart, atomicity."""

from __future__ import annotations

import json
import pickle
import re
from pathlib import Path
from typing import Any

import pytest

from headwater import Flow, Parameter, task
from headwater.plugins import ResultLocationError, from_dict, to_dict
from headwater.results import JSONSerializer, S3Result
from headwater_s3.errors import S3AccessDeniedError, S3BucketNotFoundError, S3ConnectionError, S3KeyNotFoundError
from s3_helpers import CuttableProxy, keys, set_auth


def _result(bucket: str, endpoint: str, **kwargs: Any) -> S3Result:
    return S3Result(bucket=bucket, boto3_kwargs={"endpoint_url": endpoint}, **kwargs)


def test_write_read_exists_round_trip(bucket: str, moto_endpoint: str, s3_client: Any) -> None:
    result = _result(bucket, moto_endpoint, location="{flow_name}/{task_name}/{today}-{x}.pickle")
    ctx = {"flow_name": "etl", "task_name": "extract", "today": "2026-12-01", "parameters": {"x": 7}}
    assert not result.exists(**ctx)
    written = result.write({"rows": [1, 2, 3]}, **ctx)
    assert written.location == f"s3://{bucket}/etl/extract/2026-12-01-7.pickle"
    assert written.value == {"rows": [1, 2, 3]}
    assert keys(s3_client, bucket) == ["etl/extract/2026-12-01-7.pickle"]
    assert result.exists(**ctx) and result.exists(written.location) and result.exists("etl/extract/2026-12-01-7.pickle")
    assert result.exists("{flow_name}/extract/2026-12-01-{x}.pickle", **ctx)
    assert result.read(written.location).value == {"rows": [1, 2, 3]}
    assert result.read("etl/extract/2026-12-01-7.pickle").value == {"rows": [1, 2, 3]}  # a bare key works too
    assert pickle.loads(s3_client.get_object(Bucket=bucket, Key="etl/extract/2026-12-01-7.pickle")["Body"].read()) == {
        "rows": [1, 2, 3]
    }


def test_any_serializer_and_round_trip_through_the_registry(bucket: str, moto_endpoint: str, s3_client: Any) -> None:
    result = _result(bucket, moto_endpoint, location="data/{task_slug}.json", serializer=JSONSerializer(indent=1))
    restored = from_dict(json.loads(json.dumps(to_dict(result))), "result")
    assert restored == result and type(restored) is S3Result
    written = restored.write([1, "two"], task_slug="t-1")
    assert s3_client.get_object(Bucket=bucket, Key="data/t-1.json")["Body"].read() == b'[\n 1,\n "two"\n]'
    assert result.read(written.location).value == [1, "two"]


def test_unknown_template_key_names_the_template_and_the_keys(bucket: str, moto_endpoint: str) -> None:
    result = _result(bucket, moto_endpoint, location="{flow_name}/{nope}.pkl")
    with pytest.raises(ResultLocationError) as info:
        result.write(1, flow_name="f", task_name="t")
    assert "{flow_name}/{nope}.pkl" in str(info.value) and "'nope'" in str(info.value) and "task_name" in str(info.value)


def test_checkpointing_in_a_flow_with_mapping_and_parameters(bucket: str, moto_endpoint: str, s3_client: Any) -> None:
    result = _result(bucket, moto_endpoint, location="{flow_name}/{task_name}/{n}/{map_index}.pickle")

    @task(result=result)
    def square(v: int) -> int:
        return v * v

    @task
    def numbers(n: int) -> list[int]:
        return list(range(n))

    with Flow("mapped", result=_result(bucket, moto_endpoint)) as flow:
        squares = square.map(numbers(Parameter("n", default=3)))

    state = flow.run(parameters={"n": 3}, run_on_schedule=False)
    assert state.is_successful(), state
    stored = keys(s3_client, bucket)
    assert [k for k in stored if k.startswith("mapped/square/")] == [f"mapped/square/3/{i}.pickle" for i in range(3)]
    # numbers() has no result of its own: the flow's S3Result (default location) checkpoints it
    others = [k for k in stored if not k.startswith("mapped/square/")]
    assert len(others) == 1 and re.fullmatch(r"mapped/[0-9a-f-]{36}/numbers-1\.pkl", others[0]), others
    children = state.result[squares].map_states
    assert [result.read(c.location).value for c in children] == [0, 1, 4]


def test_large_results_use_multipart_upload(bucket: str, endpoint_env: str, s3_client: Any,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEADWATER__S3__MULTIPART_THRESHOLD", str(6 * 2**20))
    monkeypatch.setenv("HEADWATER__S3__MULTIPART_CHUNKSIZE", str(5 * 2**20))
    value = bytes(range(256)) * (12 * 2**20 // 256)  # 12 MiB
    result = S3Result(bucket=bucket, location="big/{task_name}.pkl")
    written = result.write(value, task_name="blob")
    etag = s3_client.head_object(Bucket=bucket, Key="big/blob.pkl")["ETag"]
    assert etag.strip('"').endswith("-3"), f"expected 3 parts of 5 MiB (12 MiB), got ETag {etag}"
    assert result.read(written.location).value == value
    small = result.write(b"x", task_name="small")
    assert "-" not in s3_client.head_object(Bucket=bucket, Key="big/small.pkl")["ETag"]
    assert result.read(small.location).value == b"x"


def test_an_upload_cut_mid_way_is_never_read(bucket: str, moto_endpoint: str, s3_client: Any, home: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """The connection dies in the middle of a multipart upload: the old result stays whole, no half is read."""
    monkeypatch.setenv("HEADWATER__S3__MULTIPART_THRESHOLD", str(5 * 2**20))
    monkeypatch.setenv("HEADWATER__S3__MULTIPART_CHUNKSIZE", str(5 * 2**20))
    monkeypatch.setenv("HEADWATER__S3__MAX_ATTEMPTS", "1")
    monkeypatch.setenv("HEADWATER__S3__READ_TIMEOUT", "10")
    port = int(moto_endpoint.rsplit(":", 1)[1])
    direct = _result(bucket, moto_endpoint, location="cut/{task_name}.pkl")
    old = direct.write("the old, complete value", task_name="t")
    proxy = CuttableProxy(port, cut_after=12 * 2**20)
    through_proxy = _result(bucket, proxy.endpoint, location="cut/{task_name}.pkl")
    big = b"n" * (40 * 2**20)
    try:
        with pytest.raises(S3ConnectionError) as info:
            through_proxy.write(big, task_name="t")
    finally:
        proxy.cut()
    assert proxy.sent >= 12 * 2**20  # the upload was under way when the "server" died
    assert f"s3://{bucket}/cut/t.pkl" in str(info.value) and proxy.endpoint in str(info.value)
    assert direct.read(old.location).value == "the old, complete value"
    assert keys(s3_client, bucket) == ["cut/t.pkl"]
    # a result that never existed stays missing
    fresh_proxy = CuttableProxy(port, cut_after=12 * 2**20)
    try:
        with pytest.raises(S3ConnectionError):
            _result(bucket, fresh_proxy.endpoint, location="cut/new.pkl").write(big)
    finally:
        fresh_proxy.cut()
    assert not direct.exists("cut/new.pkl")
    with pytest.raises(S3KeyNotFoundError, match="cut/new.pkl"):
        direct.read("cut/new.pkl")


def test_missing_bucket_and_denied_access(bucket: str, moto_endpoint: str, s3_client: Any) -> None:
    with pytest.raises(S3BucketNotFoundError, match="no-such-results-bucket"):
        _result("no-such-results-bucket", moto_endpoint).write(1, flow_name="f", task_name="t")
    result = _result(bucket, moto_endpoint, location="x.pkl")
    written = result.write(1)
    s3_client.put_bucket_policy(Bucket=bucket, Policy=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Deny", "Principal": "*", "Action": ["s3:GetObject", "s3:PutObject"],
                       "Resource": f"arn:aws:s3:::{bucket}/*"}],
    }))
    try:
        with pytest.raises(S3AccessDeniedError, match=f"s3://{bucket}/x.pkl"):
            result.read(written.location)
        with pytest.raises(S3AccessDeniedError, match="write the result"):
            result.write(2)
    finally:
        s3_client.delete_bucket_policy(Bucket=bucket)
    set_auth(moto_endpoint, True)  # moto checks access keys now: the session's dummy key is unknown
    try:
        with pytest.raises(S3AccessDeniedError, match="default AWS credential chain"):  # denied is not "missing"
            result.exists("x.pkl")
    finally:
        set_auth(moto_endpoint, False)


def test_a_failed_checkpoint_fails_the_task_with_the_s3_error(moto_endpoint: str) -> None:
    @task(result=_result("no-such-results-bucket", moto_endpoint))
    def value() -> int:
        return 1

    with Flow("no-bucket") as flow:
        value()
    state = flow.run(run_on_schedule=False)
    assert state.is_failed()
    [task_state] = state.result.values()
    assert "no-such-results-bucket" in task_state.message and "aws s3 mb" in task_state.message


def test_plain_fsspec_filesystem_storage_and_result(bucket: str, moto_endpoint: str, s3_client: Any,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """With headwater-s3 installed (s3fs), the core's FileSystem storage and Result take s3:// URLs."""
    from headwater.results import Result
    from headwater.storage import FileSystem
    from headwater.testing.flows import sample_flow

    storage = FileSystem(f"s3://{bucket}/fsflows", storage_options={"client_kwargs": {"endpoint_url": moto_endpoint}})
    location = storage.add_flow(sample_flow("plain"))
    storage.build()
    assert keys(s3_client, bucket, "fsflows/") == [f"fsflows/{location}"]
    assert from_dict(storage.serialize(), "storage").get_flow(location).name == "plain"
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)  # the core Result has no options: botocore reads this
    written = Result(f"s3://{bucket}/fsresults/{{task_name}}.pkl").write([1], task_name="t")
    assert written.location == f"s3://{bucket}/fsresults/t.pkl"
    assert Result().read(written.location).value == [1]


@pytest.mark.parametrize("executor_name", ["ThreadExecutor", "ProcessExecutor"])
def test_checkpointing_from_worker_threads_and_processes(bucket: str, moto_endpoint: str, s3_client: Any,
                                                         executor_name: str) -> None:
    import headwater.executors as executors

    executor = getattr(executors, executor_name)(max_workers=2)
    result = _result(bucket, moto_endpoint, location="{flow_name}/{map_index}.pickle")

    @task(result=result)
    def cube(v: int) -> int:
        return v**3

    with Flow(f"workers-{executor_name}") as flow:
        cube.map(list(range(6)))
    state = flow.run(executor=executor, run_on_schedule=False)
    assert state.is_successful(), state
    assert keys(s3_client, bucket) == sorted(f"workers-{executor_name}/{i}.pickle" for i in range(6))
    assert [result.read(f"workers-{executor_name}/{i}.pickle").value for i in range(6)] == [i**3 for i in range(6)]


def test_target_skips_the_task_and_reads_the_result_back(bucket: str, moto_endpoint: str, s3_client: Any) -> None:
    """Prefect 1's target caching: a task whose target object exists is not run; its result is read."""
    calls: list[int] = []
    result = _result(bucket, moto_endpoint, location="{flow_name}/{task_name}/{flow_run_id}.pkl")

    @task(result=result, target="{flow_name}/targets/{task_name}-{x}.pkl")
    def expensive(x: int) -> dict[str, int]:
        calls.append(x)
        return {"x": x, "squared": x * x}

    @task
    def report(value: dict[str, int]) -> str:
        return f"{value['x']}^2={value['squared']}"

    with Flow("targeted") as flow:
        out = report(expensive(Parameter("x", default=3)))

    first = flow.run(parameters={"x": 3}, run_on_schedule=False)
    assert first.is_successful() and calls == [3]
    assert first.result[out].result == "3^2=9"
    assert keys(s3_client, bucket) == ["targeted/targets/expensive-3.pkl"]  # the target, not the location
    second = flow.run(parameters={"x": 3}, run_on_schedule=False)
    assert second.is_successful() and calls == [3], "the target exists: the task must not run again"
    [cached] = [s for t, s in second.result.items() if t.name == "expensive"]
    assert cached.is_cached(), cached
    assert second.result[out].result == "3^2=9"
    third = flow.run(parameters={"x": 4}, run_on_schedule=False)  # another target key: runs
    assert third.result[out].result == "4^2=16" and calls == [3, 4]
    # A target that is not a whole result (replaced by garbage) is not a cache hit: the task runs again.
    s3_client.put_object(Bucket=bucket, Key="targeted/targets/expensive-3.pkl", Body=b"\x80garbage")
    fourth = flow.run(parameters={"x": 3}, run_on_schedule=False)
    assert fourth.result[out].result == "3^2=9" and calls == [3, 4, 3]
    assert result.read("targeted/targets/expensive-3.pkl").value == {"x": 3, "squared": 9}
