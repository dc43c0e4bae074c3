"""The nouns of ``headwater.Client``: building one never sends a request; each action sends exactly one.

``client.flow(name="etl", project="MDS")`` names the latest version; ``flow.query("name version")``
sends half a GraphQL payload (the selection) and returns a dict.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from datetime import datetime
from typing import Any

__all__ = ["ProjectResource", "FlowResource", "FlowRunResource", "KeyValueResource", "state_from_api"]

_SUMMARY = "id name version archived project_name labels schedule_active metadata_hash run_config { type labels } storage schedule parameters"
_STATE = "type message timestamp version"


def state_from_api(data: dict[str, Any]) -> Any:
    """A ``headwater.states`` State object from the API's ``{type, message, timestamp}``."""
    from headwater import states

    cls = getattr(states, data["type"], None)
    if not (isinstance(cls, type) and issubclass(cls, states.State)):
        cls = states.State
    state = cls(message=data.get("message"))
    if data.get("timestamp"):
        state.ts = datetime.fromisoformat(data["timestamp"]).timestamp()
    return state


class _Resource:
    def __init__(self, client: Any) -> None:
        self.client = client

    def _gql(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        return self.client.graphql(query, variables)


class ProjectResource(_Resource):
    """``client.project(name=...)``: ``create()``, ``delete()``, ``flows()``."""

    def __init__(self, client: Any, name: str | None = None, id: str | None = None) -> None:
        super().__init__(client)
        if name is None and id is None:
            raise ValueError("client.project(...) needs name= or id=.")
        self.name = name
        self.id = id

    def __repr__(self) -> str:
        return f"<Project name={self.name!r}>" if self.name else f"<Project id={self.id!r}>"

    def create(self, description: str | None = None) -> ProjectResource:
        """Create the project (error if it exists); returns self with ``id`` set."""
        data = self._gql(
            "mutation($name: String!, $description: String) { create_project(name: $name, description: $description) { id } }",
            {"name": self.name, "description": description},
        )
        self.id = data["create_project"]["id"]
        return self

    def delete(self) -> bool:
        """Delete the project and everything in it."""
        return self._gql(
            "mutation($id: String, $name: String) { delete_project(id: $id, name: $name) }", {"id": self.id, "name": self.name}
        )["delete_project"]

    def flows(self) -> list[dict[str, Any]]:
        data = self._gql("query($id: String, $name: String) { project(id: $id, name: $name) { flows { id name version } } }",
                         {"id": self.id, "name": self.name})
        return data["project"]["flows"]


class FlowResource(_Resource):
    """``client.flow(id=...)`` or ``client.flow(name=..., project=...[, version=...])`` (latest version)."""

    def __init__(self, client: Any, id: str | None = None, name: str | None = None, project: str | None = None,
                 version: int | None = None) -> None:
        super().__init__(client)
        if id is None and (name is None or project is None):
            raise ValueError("client.flow(...) needs id=, or name= and project=.")
        self.id = id
        self.name = name
        self.project = project
        self.version = version

    def _args(self) -> tuple[str, str, dict[str, Any]]:
        """(variable declarations, field arguments, variables) naming this flow."""
        if self.id is not None:
            return "$id: String", "id: $id", {"id": self.id}
        return (
            "$name: String, $project: String, $version: Int",
            "name: $name, project: $project, version: $version",
            {"name": self.name, "project": self.project, "version": self.version},
        )

    def _ref(self) -> dict[str, Any]:
        return {"id": self.id} if self.id is not None else {"name": self.name, "project": self.project}

    def query(self, selection: str) -> dict[str, Any]:
        """Fetch ``selection`` (the inside of ``flow { ... }``) in one request: ``flow.query("name version run_config { labels }")``."""
        decl, args, variables = self._args()
        return self._gql(f"query({decl}) {{ flow({args}) {{ {selection} }} }}", variables)["flow"]

    def get(self, field: str) -> Any:
        """One field: ``flow.get("version")``."""
        return self.query(field)[field]

    def info(self) -> dict[str, Any]:
        """A summary of the flow (one request)."""
        return self.query(_SUMMARY)

    def __str__(self) -> str:
        return json.dumps(self.info(), indent=2, sort_keys=True, default=str)

    def __repr__(self) -> str:
        if self.id is not None:
            return f"<Flow id={self.id!r}>"
        return f"<Flow name={self.name!r} project={self.project!r}>"

    def create_run(self, parameters: dict[str, Any] | None = None, labels: Iterable[str] | None = None,
                   run_name: str | None = None, scheduled_start_time: datetime | None = None,
                   idempotency_key: str | None = None, context: dict[str, Any] | None = None,
                   run_config: Any = None, parent_flow_run_id: str | None = None, parent_task_slug: str | None = None,
                   parent_map_index: int | None = None) -> FlowRunResource:
        """Create a flow run (one request) and return it as a :class:`FlowRunResource`.

        ``run_config`` (a RunConfig/Environment object or its serialized dict) replaces the flow's for
        this run; ``parent_*`` links the new run to the task run that creates it (flow of flows).
        """
        if run_config is not None and not isinstance(run_config, dict):
            from headwater.plugins import to_dict

            run_config = to_dict(run_config)
        variables: dict[str, Any] = {
            "parameters": parameters, "labels": list(labels) if labels is not None else None, "run_name": run_name,
            "scheduled_start_time": scheduled_start_time.isoformat() if scheduled_start_time else None,
            "idempotency_key": idempotency_key, "context": context, "run_config": run_config,
            "parent_flow_run_id": parent_flow_run_id, "parent_task_slug": parent_task_slug, "parent_map_index": parent_map_index,
        }
        if self.id is not None:
            variables["flow_id"] = self.id
        else:
            variables["flow_name"], variables["project_name"] = self.name, self.project
        data = self._gql("mutation($input: CreateFlowRunInput!) { create_flow_run(input: $input) { id } }", {"input": variables})
        return FlowRunResource(self.client, id=data["create_flow_run"]["id"])

    def set_schedule_active(self, active: bool) -> bool:
        return self._gql("mutation($f: FlowRef!, $a: Boolean!) { set_schedule_active(flow: $f, active: $a) }",
                         {"f": self._ref(), "a": active})["set_schedule_active"]

    def update_project(self, project_name: str) -> str:
        """Move the flow (all versions) to ``project_name``; returns the project id."""
        result = self._gql("mutation($f: FlowRef!, $p: String!) { update_flow_project(flow: $f, project_name: $p) }",
                           {"f": self._ref(), "p": project_name})["update_flow_project"]
        if self.id is None:
            self.project = project_name
        return result

    def archive(self) -> bool:
        return self._gql("mutation($f: FlowRef!) { archive_flow(flow: $f) }", {"f": self._ref()})["archive_flow"]

    def delete(self, all_versions: bool = True) -> bool:
        return self._gql("mutation($f: FlowRef!, $all: Boolean!) { delete_flow(flow: $f, all_versions: $all) }",
                         {"f": self._ref(), "all": all_versions})["delete_flow"]


class FlowRunResource(_Resource):
    """``client.flow_run(id=...)``: ``state``, ``wait()``, ``logs()``, ``task_runs()``, ``cancel()``, ``query()``."""

    def __init__(self, client: Any, id: str) -> None:
        super().__init__(client)
        self.id = id

    def __repr__(self) -> str:
        return f"<FlowRun id={self.id!r}>"

    def query(self, selection: str) -> dict[str, Any]:
        return self._gql(f"query($id: String!) {{ flow_run(id: $id) {{ {selection} }} }}", {"id": self.id})["flow_run"]

    def get(self, field: str) -> Any:
        return self.query(field)[field]

    @property
    def state(self) -> Any:
        """The current state (a ``headwater.states`` object), fetched fresh on every access."""
        return state_from_api(self.query(f"state {{ {_STATE} }}")["state"])

    def states(self) -> list[Any]:
        """The full state history, oldest first."""
        return [state_from_api(s) for s in self.query(f"states {{ {_STATE} }}")["states"]]

    def wait(self, timeout: float | None = 60.0, poll_interval: float = 0.5) -> Any:
        """Poll until the run is finished; returns the final state (``TimeoutError`` after ``timeout`` seconds)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            state = self.state
            if state.is_finished():
                return state
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"Flow run {self.id} is still {state.name} after {timeout} s.")
            time.sleep(poll_interval)

    def logs(self, limit: int = 1000, offset: int = 0) -> list[dict[str, Any]]:
        return self._gql(
            "query($id: String!, $l: Int!, $o: Int!) { logs(flow_run_id: $id, limit: $l, offset: $o) { timestamp level name message task_run_id } }",
            {"id": self.id, "l": limit, "o": offset},
        )["logs"]

    def task_runs(self) -> list[dict[str, Any]]:
        return self._gql(
            "query($id: String!) { task_runs(flow_run_id: $id) { id task_slug map_index version state { type message timestamp } } }",
            {"id": self.id},
        )["task_runs"]

    def cancel(self) -> Any:
        """Cancel the run (one request): returns the state it is in now (Cancelled, Cancelling, or its final state)."""
        data = self._gql("mutation($id: String!) { cancel_flow_run(id: $id) { state version } }", {"id": self.id})
        return state_from_api({"type": data["cancel_flow_run"]["state"]})

    def set_state(self, state: Any, version: int | None = None) -> dict[str, Any]:
        """Write a state (a State object or a name) with an optional version check; returns ``{status, version, state}``."""
        name = state if isinstance(state, str) else type(state).__name__
        message = None if isinstance(state, str) else state.message
        data = self._gql(
            "mutation($s: [FlowRunStateInput!]!) { set_flow_run_states(states: $s) { status version state } }",
            {"s": [{"flow_run_id": self.id, "version": version, "state": {"type": name, "message": message}}]},
        )
        return data["set_flow_run_states"][0]

    # --- run records: artifacts, run details, parent and children ------------------------------------------------

    def create_artifact(self, kind: str, text: str, task_slug: str | None = None, map_index: int | None = None,
                        attempt: int | None = None) -> str:
        """A new artifact (``kind`` "link" or "markdown") on task run ``task_slug[map_index]`` of this run; returns its id.

        ``attempt``: the run attempt writing it (a flow-run process passes its own; a superseded one is refused).
        """
        return self._gql(
            "mutation($r: String!, $k: String!, $t: String!, $s: String, $i: Int, $n: Int) { create_artifact(flow_run_id: $r, "
            "kind: $k, text: $t, task_slug: $s, map_index: $i, attempt: $n) { id } }",
            {"r": self.id, "k": kind, "t": text, "s": task_slug, "i": map_index, "n": attempt},
        )["create_artifact"]["id"]

    def update_artifact(self, artifact_id: str, text: str, attempt: int | None = None) -> None:
        """Replace the link or markdown of artifact ``artifact_id``."""
        self._gql("mutation($a: String!, $t: String!, $n: Int) { update_artifact(id: $a, text: $t, attempt: $n) { id } }",
                  {"a": artifact_id, "t": text, "n": attempt})

    def delete_artifact(self, artifact_id: str, attempt: int | None = None) -> bool:
        return self._gql("mutation($a: String!, $n: Int) { delete_artifact(id: $a, attempt: $n) }",
                         {"a": artifact_id, "n": attempt})["delete_artifact"]

    def artifacts(self) -> list[dict[str, Any]]:
        """This run's artifacts, oldest first: ``{id, kind, text, task_slug, map_index, created}``."""
        return self.query("artifacts { id kind text task_slug map_index created updated }")["artifacts"]

    def set_details(self, details: dict[str, str], attempt: int | None = None) -> dict[str, str]:
        """Record what loading the flow resolved (``Storage.run_details()``: repo, ref, commit ...)."""
        return self._gql(
            "mutation($r: String!, $d: JSON!, $a: Int) { set_flow_run_details(flow_run_id: $r, details: $d, attempt: $a) }",
            {"r": self.id, "d": details, "a": attempt},
        )["set_flow_run_details"]

    def children(self) -> list[dict[str, Any]]:
        """The flow runs this run's tasks created: ``{id, name, state {type}, parent_task_slug, parent_map_index}``."""
        return self.query("children { id name flow_id parent_task_slug parent_map_index state { type } }")["children"]

    # --- restart, resume and logs by cursor -----------------------------------------------------------------------

    def restart(self, from_failed: bool = True) -> Any:
        """Restart the finished run as a new attempt (one request); returns its state (Scheduled).

        ``from_failed`` (default, Prefect 1's restart): the task runs that succeeded are kept with their
        checkpointed results and only the others (and what is downstream of them) run again;
        ``from_failed=False`` runs the whole flow again.
        """
        data = self._gql("mutation($id: String!, $f: Boolean!) { restart_flow_run(id: $id, from_failed: $f) { state version } }",
                         {"id": self.id, "f": from_failed})
        return state_from_api({"type": data["restart_flow_run"]["state"]})

    def resume(self, task_run_ids: Iterable[str] | None = None) -> Any:
        """Resume the run's paused task runs (or only ``task_run_ids``); returns the run's state (Scheduled when it was Paused)."""
        data = self._gql("mutation($id: String!, $t: [String!]) { resume_flow_run(id: $id, task_run_ids: $t) { state version } }",
                         {"id": self.id, "t": list(task_run_ids) if task_run_ids is not None else None})
        return state_from_api({"type": data["resume_flow_run"]["state"]})

    def log_page(self, after: str | None = None, before: str | None = None, limit: int = 200,
                 levels: Iterable[str] | None = None, search: str | None = None) -> dict[str, Any]:
        """One page of logs by cursor: ``{logs, start_cursor, end_cursor, has_more}``; pass ``end_cursor`` as ``after`` next."""
        return self._gql(
            "query($id: String!, $a: String, $b: String, $l: Int!, $v: [String!], $s: String) { log_page(flow_run_id: $id, "
            "after: $a, before: $b, limit: $l, levels: $v, search: $s) { logs { id timestamp level name message task_run_id } "
            "start_cursor end_cursor has_more } }",
            {"id": self.id, "a": after, "b": before, "l": limit, "v": list(levels) if levels else None, "s": search},
        )["log_page"]

    def all_logs(self, levels: Iterable[str] | None = None, page_size: int = 1000) -> list[dict[str, Any]]:
        """Every log record of the run, oldest first, read page by page by cursor."""
        records: list[dict[str, Any]] = []
        after = None
        while True:
            page = self.log_page(after=after, limit=page_size, levels=levels)
            records.extend(page["logs"])
            if not page["has_more"]:
                return records
            after = page["end_cursor"]


class KeyValueResource(_Resource):
    """``client.kv()``: ``set(key, value)``, ``get(key)``, ``delete(key)``, ``list()``."""

    def set(self, key: str, value: Any) -> None:
        self._gql("mutation($k: String!, $v: JSON) { set_key_value(key: $k, value: $v) { key } }", {"k": key, "v": value})

    def get(self, key: str) -> Any:
        return self._gql("query($k: String!) { key_value(key: $k) { value } }", {"k": key})["key_value"]["value"]

    def delete(self, key: str) -> bool:
        return self._gql("mutation($k: String!) { delete_key(key: $k) }", {"k": key})["delete_key"]

    def list(self) -> list[str]:
        return self._gql("query { keys }")["keys"]
