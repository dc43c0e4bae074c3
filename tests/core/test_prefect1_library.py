"""Prefect 1's task library and results through their import paths: Pushbullet, SQL Server, GCS/Azure results, serializers.

Pushbullet runs against a local HTTP server that checks what Pushbullet's API checks (the
path, the ``Access-Token`` header, the note's JSON). There is no SQL Server here: its tests
cover the arguments, the ODBC connection string and the install hint. GCS and Azure results
run on fsspec's memory filesystem (the same calls gcsfs/adlfs get).
"""

from __future__ import annotations

import bz2
import gzip
import json
import lzma
import sys
import threading
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import fsspec
import pytest

from headwater import Flow, task
from headwater.serialization import from_dict, to_dict


def _secret(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(f"HEADWATER__CONTEXT__SECRETS__{name}", json.dumps(value))


# --- Pushbullet -----------------------------------------------------------------------------------------------


class FakePushbullet:
    """Pushbullet's ``POST /v2/pushes``: needs the token, a JSON note with a body; answers the created push."""

    TOKEN = "o.test-token"

    def __init__(self) -> None:
        self.pushes: list[dict[str, Any]] = []
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server API
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.path != "/v2/pushes":
                    return self._answer(404, {"error": {"message": f"no route {self.path}"}})
                if self.headers.get("Access-Token") != api.TOKEN:
                    return self._answer(401, {"error": {"type": "invalid_request", "message": "Access token is missing or invalid."}})
                if self.headers.get("Content-Type") != "application/json":
                    return self._answer(400, {"error": {"message": "expected JSON"}})
                note = json.loads(body)
                if note.get("type") != "note" or not isinstance(note.get("body"), str):
                    return self._answer(400, {"error": {"message": "a note needs type=note and a body"}})
                push = {"iden": f"push{len(api.pushes) + 1}", "active": True, **note}
                api.pushes.append(push)
                self._answer(200, push)

            def _answer(self, code: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}/v2"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(10)


@pytest.fixture()
def pushbullet() -> Iterator[FakePushbullet]:
    api = FakePushbullet()
    try:
        yield api
    finally:
        api.close()


def test_pushbullet_task_in_a_flow_with_the_token_secret(pushbullet: FakePushbullet,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from headwater.tasks.notifications import PushbulletTask

    _secret(monkeypatch, "PUSHBULLET_TOKEN", FakePushbullet.TOKEN)
    notify = PushbulletTask(msg="ETL finished", api_base=pushbullet.base)

    @task
    def rows() -> int:
        return 3

    with Flow("push") as flow:
        r = rows()
        sent = notify(upstream_tasks=[r])
    state = flow.run()
    assert state.is_successful(), state.result[sent].message
    assert pushbullet.pushes == [{"iden": "push1", "active": True, "type": "note", "title": "Flow Notification",
                                  "body": "ETL finished"}]
    assert state.result[sent].result["iden"] == "push1"


def test_pushbullet_run_arguments_and_the_api_base_variable(pushbullet: FakePushbullet,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from headwater.tasks.notifications import PushbulletTask

    monkeypatch.setenv("HEADWATER_PUSHBULLET_API", pushbullet.base + "/")
    push = PushbulletTask(title="Nightly").run(msg="done", access_token=FakePushbullet.TOKEN)
    assert push["title"] == "Nightly" and push["body"] == "done"


def test_pushbullet_errors_name_the_cause(pushbullet: FakePushbullet, monkeypatch: pytest.MonkeyPatch) -> None:
    from headwater.tasks.notifications import NotificationError, PushbulletTask

    t = PushbulletTask(api_base=pushbullet.base)
    with pytest.raises(ValueError, match="needs a message"):
        t.run(access_token=FakePushbullet.TOKEN)
    with pytest.raises(NotificationError, match="HTTP 401.*PUSHBULLET_TOKEN"):
        t.run(msg="x", access_token="wrong")
    closed = FakePushbullet()
    closed.close()
    with pytest.raises(NotificationError, match="could not reach"):
        PushbulletTask(api_base=closed.base).run(msg="x", access_token=FakePushbullet.TOKEN)
    monkeypatch.delenv("HEADWATER__CONTEXT__SECRETS__PUSHBULLET_TOKEN", raising=False)
    with pytest.raises(Exception, match="PUSHBULLET_TOKEN"):
        t.run(msg="x")
    assert pushbullet.pushes == []


# --- SQL Server (no server here: arguments, the connection string and the hint) ------------------------------


def test_sql_server_tasks_take_prefect1_arguments() -> None:
    from headwater.tasks.sql_server import SqlServerExecute, SqlServerExecuteMany, SqlServerFetch

    ex = SqlServerExecute("sales", "etl", "db.local", query="DELETE FROM t WHERE d < ?", data=("2020-01-01",))
    assert (ex.port, ex.driver, ex.commit) == (1433, "ODBC Driver 17 for SQL Server", False)
    fetch = SqlServerFetch(db_name="sales", user="etl", host="db.local", port=1444, fetch="many", fetch_count=5)
    assert (fetch.fetch, fetch.fetch_count, fetch.port) == ("many", 5, 1444)
    many = SqlServerExecuteMany("sales", "etl", "db.local", commit=True)
    assert many.commit is True
    with pytest.raises(ValueError, match="host must be a non-empty string"):
        SqlServerExecute("sales", "etl", "")
    with pytest.raises(ValueError, match="port must be a TCP port"):
        SqlServerFetch("sales", "etl", "h", port=0)


def test_sql_server_checks_its_arguments_before_connecting(monkeypatch: pytest.MonkeyPatch) -> None:
    from headwater.tasks.sql_server import SqlServerExecute, SqlServerExecuteMany, SqlServerFetch

    monkeypatch.setitem(sys.modules, "pyodbc", None)  # any connection attempt would raise the install hint
    with pytest.raises(ValueError, match="a query string must be provided"):
        SqlServerExecute("d", "u", "h").run()
    with pytest.raises(ValueError, match="a data list must be provided"):
        SqlServerExecuteMany("d", "u", "h", query="INSERT INTO t VALUES (?)").run()
    with pytest.raises(ValueError, match="list of parameter tuples"):
        SqlServerExecuteMany("d", "u", "h", query="INSERT INTO t VALUES (?)").run(data="abc")
    with pytest.raises(ValueError, match=r"one of the following - \('one', 'many', 'all'\)"):
        SqlServerFetch("d", "u", "h", query="SELECT 1", fetch="some").run()
    with pytest.raises(ValueError, match="fetch_count must be a positive integer"):
        SqlServerFetch("d", "u", "h", query="SELECT 1", fetch="many", fetch_count=0).run()


def test_sql_server_without_pyodbc_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    from headwater.tasks.sql_server import SqlServerFetch

    monkeypatch.setitem(sys.modules, "pyodbc", None)
    with pytest.raises(ImportError, match="pip install pyodbc"):
        SqlServerFetch("d", "u", "h", query="SELECT 1").run(password="pw")

    @task
    def password() -> str:
        return "pw"

    fetch = SqlServerFetch("d", "u", "h", query="SELECT 1")
    with Flow("sql") as flow:
        rows = fetch(password=password())
    state = flow.run()
    assert state.is_failed() and "pip install pyodbc" in str(state.result[rows].result)


def test_sql_server_connection_string_uses_the_port_and_quotes_values() -> None:
    from headwater.tasks.sql_server import connection_string

    text = connection_string("ODBC Driver 18 for SQL Server", "db.local", 1444, "sales", "etl", "p;w}d")
    assert text == "DRIVER={ODBC Driver 18 for SQL Server};SERVER=db.local,1444;DATABASE=sales;UID=etl;PWD={p;w}}d}"
    assert connection_string("{X}", "h", None, "d", "u", None) == "DRIVER={X};SERVER=h;DATABASE=d;UID=u"


# --- GCSResult and AzureResult --------------------------------------------------------------------------------


@pytest.fixture()
def memfs() -> Iterator[fsspec.AbstractFileSystem]:
    fs = fsspec.filesystem("memory")
    fs.store.clear()
    fs.pseudo_dirs.clear()
    fs.pseudo_dirs.append("")
    yield fs
    fs.store.clear()


def test_gcs_result_writes_reads_and_checks_in_its_bucket(memfs: fsspec.AbstractFileSystem) -> None:
    from headwater.engine.results import GCSResult
    from headwater.results import GCSResult as PublicGCSResult

    assert GCSResult is PublicGCSResult
    result = GCSResult(bucket="etl-results", location="{flow_name}/{task_name}-{day}.pkl", filesystem=memfs)
    written = result.write({"rows": 3}, flow_name="f", task_name="load", parameters={"day": "mon"})
    assert written.location == "gs://etl-results/f/load-mon.pkl" and written.value == {"rows": 3}
    assert memfs.exists("/etl-results/f/load-mon.pkl")
    assert result.read(written.location).value == {"rows": 3}
    assert result.read("f/load-mon.pkl").value == {"rows": 3}  # a key in the bucket
    assert result.exists("{flow_name}/load-mon.pkl", flow_name="f")
    assert not result.exists("f/other.pkl")
    with pytest.raises(FileNotFoundError, match="No result at 'gs://etl-results/f/other.pkl'"):
        result.read("f/other.pkl")
    default = GCSResult("etl-results", filesystem=memfs).format(flow_name="f", flow_run_id="r1", task_slug="t-1")
    assert default == "gs://etl-results/f/r1/t-1.pkl"


def test_gcs_result_checkpoints_a_task_and_serializes_without_its_filesystem(memfs: fsspec.AbstractFileSystem) -> None:
    from headwater.engine.results import GCSResult
    from headwater.engine.serializers import JSONSerializer

    result = GCSResult("etl-results", location="{flow_name}/{task_name}.json", serializer=JSONSerializer(),
                       credentials_secret="GCP_KEY", filesystem=memfs)

    @task(result=result, checkpoint=True)
    def count() -> int:
        return 42

    with Flow("gcs") as flow:
        c = count()
    state = flow.run()
    assert state.result[c].location == "gs://etl-results/gcs/count.json"
    assert memfs.cat_file("/etl-results/gcs/count.json") == b"42"
    data = to_dict(result)
    assert data == {"type": "GCSResult", "location": "{flow_name}/{task_name}.json",
                    "serializer": {"type": "JSONSerializer", "indent": None}, "bucket": "etl-results",
                    "credentials_secret": "GCP_KEY", "project": None}
    again = from_dict(data, "result")
    assert isinstance(again, GCSResult) and again.bucket == "etl-results" and again._filesystem is None


def test_gcs_result_target_is_a_key_in_the_bucket(memfs: fsspec.AbstractFileSystem) -> None:
    from headwater.engine.results import GCSResult

    calls: list[int] = []

    @task(result=GCSResult("cache", filesystem=memfs), target="{task_name}/done.pkl", checkpoint=True)
    def expensive() -> str:
        calls.append(1)
        return "value"

    with Flow("target") as flow:
        e = expensive()
    first = flow.run()
    second = flow.run()
    assert first.result[e].result == second.result[e].result == "value"
    assert calls == [1] and memfs.exists("/cache/expensive/done.pkl")


def test_gcs_result_bucket_checks_and_the_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    from headwater.engine.results import GCSResult

    with pytest.raises(ValueError, match="needs a bucket name"):
        GCSResult("")
    with pytest.raises(ValueError, match="bare bucket name"):
        GCSResult("gs://b/path")
    monkeypatch.setitem(sys.modules, "gcsfs", None)
    with pytest.raises(ImportError, match="pip install gcsfs"):
        GCSResult("b").write(1)


def test_gcs_result_reads_service_account_json_from_the_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    from headwater.engine.results import GCSResult

    _secret(monkeypatch, "GCP_KEY", json.dumps({"type": "service_account", "project_id": "p"}))
    options = GCSResult("b", credentials_secret="GCP_KEY", project="p")._storage_options()
    assert options == {"project": "p", "token": {"type": "service_account", "project_id": "p"}}
    monkeypatch.delenv("HEADWATER__CONTEXT__SECRETS__GCP_CREDENTIALS", raising=False)
    assert GCSResult("b")._storage_options() == {}  # Google's default credentials
    _secret(monkeypatch, "GCP_CREDENTIALS", json.dumps({"type": "service_account", "project_id": "default"}))
    assert GCSResult("b")._storage_options() == {"token": {"type": "service_account", "project_id": "default"}}
    _secret(monkeypatch, "BAD_KEY", "not json")
    with pytest.raises(ValueError, match="not a service account key"):
        GCSResult("b", credentials_secret="BAD_KEY")._storage_options()


def test_azure_result_in_a_container(memfs: fsspec.AbstractFileSystem, monkeypatch: pytest.MonkeyPatch) -> None:
    from headwater.engine.results import AzureResult

    result = AzureResult("results", connection_string_secret="AZ", location="{flow_name}/{task_name}.pkl",
                         filesystem=memfs)
    written = result.write([1, 2], flow_name="f", task_name="t")
    assert written.location == "abfs://results/f/t.pkl" and result.read(written.location).value == [1, 2]
    assert result.exists("f/t.pkl")
    assert to_dict(result) == {"type": "AzureResult", "location": "{flow_name}/{task_name}.pkl",
                               "serializer": {"type": "PickleSerializer"}, "container": "results",
                               "connection_string_secret": "AZ"}
    _secret(monkeypatch, "AZ", "DefaultEndpointsProtocol=https;AccountName=a;AccountKey=k")
    assert result._storage_options() == {"connection_string": "DefaultEndpointsProtocol=https;AccountName=a;AccountKey=k"}


def test_azure_result_connection_string_never_serializes(monkeypatch: pytest.MonkeyPatch) -> None:
    from headwater.engine.results import AzureResult

    with pytest.warns(UserWarning, match="never serialized"):
        result = AzureResult("c", connection_string="AccountName=a;AccountKey=s3cr3tvalue")
    assert "s3cr3tvalue" not in json.dumps(to_dict(result))
    assert "s3cr3tvalue" not in json.dumps(to_dict(result.at("{task_name}.pkl")))
    assert result._storage_options() == {"connection_string": "AccountName=a;AccountKey=s3cr3tvalue"}
    assert result.at("x")._storage_options() == result._storage_options()
    monkeypatch.delenv("AZURE_STORAGE_CONNECTION_STRING", raising=False)
    with pytest.raises(ValueError, match="no connection string"):
        AzureResult("c")._storage_options()
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", "AccountName=env")
    assert AzureResult("c")._storage_options() == {"connection_string": "AccountName=env"}
    monkeypatch.setitem(sys.modules, "adlfs", None)
    with pytest.raises(ImportError, match="pip install adlfs"):
        AzureResult("c").read("k")


# --- serializers ----------------------------------------------------------------------------------------------


def test_datetime_serializer() -> None:
    from headwater.engine.serializers import DateTimeSerializer, ResultSerializationError

    s = DateTimeSerializer()
    when = datetime(2030, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=2)))
    assert s.serialize(when) == b"2030-01-02T03:04:05+02:00"
    assert s.deserialize(s.serialize(when)) == when and s.deserialize(b"2030-01-02T03:04:05+02:00").utcoffset()
    with pytest.raises(ResultSerializationError, match="must be a datetime"):
        s.serialize("2030-01-01")
    with pytest.raises(ResultSerializationError):
        s.deserialize(b"yesterday")


def test_pandas_serializer_round_trips_dataframes() -> None:
    pandas = pytest.importorskip("pandas", reason="pip install -r requirements/prefect1.txt")
    from headwater.engine.serializers import PandasSerializer, ResultSerializationError

    frame = pandas.DataFrame({"a": [1, 2], "b": ["x", "y"]})
    csv = PandasSerializer("csv", serialize_kwargs={"index": False})
    assert csv.serialize(frame) == b"a,b\n1,x\n2,y\n"
    assert csv.deserialize(csv.serialize(frame)).equals(frame)
    as_json = PandasSerializer("json", serialize_kwargs={"orient": "records"},
                               deserialize_kwargs={"orient": "records"})
    assert json.loads(as_json.serialize(frame)) == [{"a": 1, "b": "x"}, {"a": 2, "b": "y"}]
    assert as_json.deserialize(as_json.serialize(frame)).equals(frame)
    pickled = PandasSerializer("pickle")
    assert pickled.deserialize(pickled.serialize(frame)).equals(frame)
    assert csv.extension == ".csv"
    with pytest.raises(ValueError, match="pandas has no read_nope"):
        PandasSerializer("nope")
    with pytest.raises(ResultSerializationError, match="must be a pandas DataFrame"):
        csv.serialize([1, 2])
    assert from_dict(to_dict(csv), "serializer") == csv


def test_pandas_serializer_in_a_flow_result(tmp_path: Any) -> None:
    pandas = pytest.importorskip("pandas", reason="pip install -r requirements/prefect1.txt")
    from headwater.engine.results import LocalResult
    from headwater.engine.serializers import PandasSerializer

    result = LocalResult(dir=tmp_path, location="{task_name}.csv",
                         serializer=PandasSerializer("csv", serialize_kwargs={"index": False}))

    @task(result=result, checkpoint=True)
    def frame() -> Any:
        return pandas.DataFrame({"n": [1, 2, 3]})

    with Flow("pandas") as flow:
        f = frame()
    state = flow.run()
    assert (tmp_path / "frame.csv").read_text() == "n\n1\n2\n3\n"
    assert result.read(state.result[f].location).value["n"].tolist() == [1, 2, 3]


def test_pandas_serializer_without_pandas_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    from headwater.engine.serializers import PandasSerializer

    monkeypatch.setitem(sys.modules, "pandas", None)
    s = PandasSerializer("csv")  # made anywhere; used where pandas is installed
    with pytest.raises(ImportError, match="pip install pandas"):
        s.serialize(object())
    with pytest.raises(ImportError, match="pip install pandas"):
        s.deserialize(b"a\n1\n")
    with pytest.raises(ValueError, match="pandas format name"):
        PandasSerializer("no such")


@pytest.mark.parametrize(("fmt", "module"), [("gzip", gzip), ("bz2", bz2), ("lzma", lzma), ("zlib", zlib)])
def test_compressed_serializer_formats(fmt: str, module: Any) -> None:
    from headwater.engine.serializers import CompressedSerializer, JSONSerializer

    s = CompressedSerializer(JSONSerializer(), format=fmt)
    value = {"rows": list(range(200))}
    data = s.serialize(value)
    assert module.decompress(data) == JSONSerializer().serialize(value)
    assert len(data) < len(JSONSerializer().serialize(value))
    assert s.deserialize(data) == value
    assert from_dict(to_dict(s), "serializer") == s


def test_compressed_serializer_kwargs_functions_and_errors() -> None:
    from headwater.engine.serializers import CompressedSerializer, PickleSerializer, ResultSerializationError

    s = CompressedSerializer(PickleSerializer(), format="gzip", compress_kwargs={"compresslevel": 1})
    assert s.deserialize(s.serialize([1] * 50)) == [1] * 50 and s.extension == ".pkl.gz"
    functions = CompressedSerializer(PickleSerializer(), compress=zlib.compress, decompress=zlib.decompress,
                                     compress_kwargs={"level": 9})
    assert functions.compress == "zlib:compress" and functions.deserialize(functions.serialize("x")) == "x"
    assert from_dict(to_dict(functions), "serializer") == functions
    with pytest.raises(ValueError, match="either format= or compress="):
        CompressedSerializer(PickleSerializer(), format="gzip", compress=zlib.compress)
    with pytest.raises(ValueError, match="give format="):
        CompressedSerializer(PickleSerializer(), compress=zlib.compress)
    with pytest.raises(ValueError, match="module-level function"):
        CompressedSerializer(PickleSerializer(), compress=lambda b: b, decompress=lambda b: b)
    with pytest.raises(ImportError, match="not installed.*gzip"):
        CompressedSerializer(PickleSerializer(), format="no_such_compressor")
    with pytest.raises(ValueError, match="no compress/decompress"):
        CompressedSerializer(PickleSerializer(), format="json")
    with pytest.raises(TypeError, match="serializer instance"):
        CompressedSerializer(PickleSerializer, format="gzip")  # type: ignore[arg-type]
    with pytest.raises(ResultSerializationError):
        CompressedSerializer(PickleSerializer(), format="gzip").deserialize(b"not gzip")


def test_compressed_serializer_with_a_gcs_result_in_a_flow(memfs: fsspec.AbstractFileSystem) -> None:
    from headwater.engine.results import GCSResult
    from headwater.engine.serializers import CompressedSerializer, DateTimeSerializer

    result = GCSResult("b", location="{task_name}.txt.gz", filesystem=memfs,
                       serializer=CompressedSerializer(DateTimeSerializer(), format="gzip"))
    when = datetime(2030, 5, 6, tzinfo=UTC)

    @task(result=result, checkpoint=True)
    def stamp() -> datetime:
        return when

    with Flow("stamp") as flow:
        s = stamp()
    state = flow.run()
    assert gzip.decompress(memfs.cat_file("/b/stamp.txt.gz")) == b"2030-05-06T00:00:00+00:00"
    assert result.read(state.result[s].location).value == when
