"""``headwater.Client`` with this plugin's nouns: the issue's example API, one request per action, plugin nouns."""

from __future__ import annotations

import pytest

from headwater import Flow, Parameter, task
from headwater.client import Client, MissingClientResourceError
from headwater.plugins import hookimpl, register_plugin, registry, unregister_plugin
from headwater.run_configs import LocalRun
from headwater_cloud_api.client.transport import APIClientError, APIConnectionError


@task
def add(x, y):
    return x + y


def make_flow(name="etl", y=2):
    with Flow(name, run_config=LocalRun(labels=["staging"])) as flow:
        add(Parameter("x", default=1), y)
    return flow


def test_the_example_api_and_request_counts(sqlite_client):
    client = sqlite_client
    count = lambda: client.transport.request_count  # noqa: E731
    client.project(name="MDS").create()
    client.project(name="other").create()
    flow_id = client.register(make_flow(), project_name="MDS")
    before = count()
    by_id = client.flow(id=flow_id)
    flow = client.flow(name="etl", project="MDS")
    assert count() == before  # creating objects never queries
    text = str(flow)
    assert count() == before + 1 and '"name": "etl"' in text and '"version": 1' in text
    assert flow.query("name version run_config { labels }") == {"name": "etl", "version": 1, "run_config": {"labels": ["staging"]}}
    assert by_id.get("name") == "etl"
    assert count() == before + 3
    run = flow.create_run(parameters={"x": 1}, labels=["staging"])
    assert count() == before + 4
    assert run.state.is_scheduled() and count() == before + 5
    run.set_state("Running", version=1)
    assert run.state.is_running()
    before = count()
    cancelled = client.flow_run(id=run.id).cancel()
    assert count() == before + 1  # exactly one request, no preceding query
    assert cancelled.is_cancelling()
    run.set_state("Cancelled")
    final = run.wait(timeout=10)
    assert final.is_cancelled()
    assert run.logs() == [] and run.task_runs() == []
    assert [s.name for s in run.states()] == ["Scheduled", "Running", "Cancelling", "Cancelled"]
    before = count()
    assert flow.set_schedule_active(False) is False
    flow.update_project("other")
    assert client.flow(name="etl", project="other").get("project_name") == "other"
    assert flow.archive() is True
    assert flow.delete() is True
    assert count() == before + 5
    with pytest.raises(APIClientError) as err:
        client.flow(id=flow_id).get("name")
    assert err.value.code == "NOT_FOUND"
    assert client.graphql("query { projects { name } }")["projects"] == [{"name": "MDS"}, {"name": "other"}]


def test_register_returns_the_same_id_when_unchanged_and_a_new_version_when_code_changes(sqlite_client):
    sqlite_client.project(name="MDS").create()
    first = sqlite_client.register(make_flow(y=2), project_name="MDS")
    assert sqlite_client.register(make_flow(y=2), project_name="MDS") == first
    second = sqlite_client.register(make_flow(y=3), project_name="MDS")
    assert second != first and sqlite_client.flow(id=second).get("version") == 2


def test_kv_backend_functions(sqlite_client, monkeypatch):
    from headwater import backend

    monkeypatch.setenv("HEADWATER__CLOUD__API", sqlite_client.api)
    backend.set_key_value("threshold", {"value": 3})
    assert backend.get_key_value("threshold") == {"value": 3}
    assert backend.list_keys() == ["threshold"]
    assert backend.delete_key("threshold") is True


class Greeting:
    """A noun from a third-party plugin."""

    def __init__(self, client, name):
        self.client, self.name = client, name

    def say(self):
        return f"hello {self.name} from {self.client.api}"


class GreetingPlugin:
    @hookimpl
    def register_client_resources(self, register):
        register(Greeting, "greeting")


def test_a_third_party_plugin_adds_a_noun():
    plugin = GreetingPlugin()
    name = register_plugin(plugin, name="greeting-test")
    try:
        client = Client(api="http://127.0.0.1:9/graphql", api_key="")
        assert client.greeting(name="ada").say() == "hello ada from http://127.0.0.1:9/graphql"
        assert "greeting" in Client.resource_names()
    finally:
        unregister_plugin(name)
        registry("client_resource").unregister("greeting")


def test_missing_noun_names_the_plugin_to_install():
    client = Client(api="http://127.0.0.1:9/graphql", api_key="")
    with pytest.raises(MissingClientResourceError, match="pip install headwater-cloud-api"):
        client.widget(id="x")


def test_config_and_unreachable_api(monkeypatch):
    monkeypatch.setenv("HEADWATER__CLOUD__API", "http://127.0.0.1:9/graphql")
    monkeypatch.setenv("HEADWATER__CLOUD__API_KEY", "hw_secret")
    client = Client()
    assert client.api == "http://127.0.0.1:9/graphql" and client.api_key == "hw_secret"
    with pytest.raises(APIConnectionError, match="Cannot reach the headwater API at http://127.0.0.1:9/graphql"):
        client.project(name="x").create()
