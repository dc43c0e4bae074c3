"""Prefect 1's ``prefect.backend`` views: read-only snapshots of flows, flow runs and task runs in the API.

``FlowRunView.from_flow_run_id(id)`` fetches a run once (one request); ``get_latest()`` fetches it
again. ``TaskRunView.get_result()`` loads a task run's return value from the location its state
recorded, through the task's ``Result`` as registered in the flow's metadata.
:func:`watch_flow_run` follows a run until it finishes, yielding its state changes and (optionally)
its logs. Everything goes through ``headwater.Client()`` (``headwater-cloud-api``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs

from headwater import states as st
from headwater.backend._api import api_client

__all__ = ["FlowView", "FlowRunView", "TaskRunView", "FlowRunLog", "watch_flow_run"]

_STATE = "type message timestamp"
_RUN = (f"id name flow_id labels parameters context run_details parent_flow_run_id parent_task_slug parent_map_index "
        f"state {{ {_STATE} }} flow {{ id name version project_name }}")
_TASK_RUNS = "task_runs { id task_slug map_index state { type message timestamp } }"


def _state(data: dict[str, Any] | None) -> st.State:
    if not data:
        return st.Pending()
    cls = getattr(st, str(data.get("type")), None)
    if not (isinstance(cls, type) and issubclass(cls, st.State)):
        cls = st.State
    state = cls(message=data.get("message"))
    if data.get("timestamp"):
        state.ts = datetime.fromisoformat(data["timestamp"]).timestamp()
    return state


@attrs.define
class FlowView:
    """A registered flow version: ``flow_id``, ``name``, ``project_name``, ``version``, ``serialized`` metadata."""

    flow_id: str
    name: str
    project_name: str
    version: int
    serialized: dict[str, Any] = attrs.field(factory=dict, repr=False)

    @classmethod
    def _of(cls, data: dict[str, Any]) -> FlowView:
        return cls(flow_id=data["id"], name=data["name"], project_name=data.get("project_name") or "",
                   version=int(data.get("version") or 0), serialized=data.get("serialized") or {})

    @classmethod
    def from_id(cls, flow_id: str, client: Any = None) -> FlowView:
        """The flow version with id ``flow_id``."""
        c = api_client("FlowView", client)
        return cls._of(c.graphql("query($id: String!) { flow(id: $id) { id name version project_name serialized } }",
                                 {"id": flow_id})["flow"])

    @classmethod
    def from_flow_name(cls, flow_name: str, project_name: str = "", client: Any = None) -> FlowView:
        """The latest unarchived version of ``flow_name`` (in ``project_name``; needed when several projects have one)."""
        c = api_client("FlowView", client)
        flows = c.graphql(
            "query($n: String!) { flows(name: $n, limit: 1000) { id name version project_name serialized } }", {"n": flow_name}
        )["flows"]
        if project_name:
            flows = [f for f in flows if f.get("project_name") == project_name]
        if not flows:
            where = f" in project {project_name!r}" if project_name else ""
            raise ValueError(f"No flow found with name {flow_name!r}{where}: register it first (`headwater register`).")
        projects = sorted({f.get("project_name") or "" for f in flows})
        if len(projects) > 1:
            raise ValueError(f"Found flows named {flow_name!r} in several projects ({', '.join(projects)}); "
                             "pass project_name= to choose one.")
        return cls._of(max(flows, key=lambda f: int(f.get("version") or 0)))


@attrs.define
class TaskRunView:
    """A task run: ``task_run_id``, ``task_slug``, ``map_index``, ``state``; :meth:`get_result` loads its value."""

    task_run_id: str
    task_slug: str
    map_index: int
    flow_run_id: str
    state: st.State
    _client: Any = attrs.field(default=None, repr=False, eq=False, alias="client")

    def _records(self) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """(the flow's serialized metadata, this task's runs with their state histories)."""
        c = api_client("TaskRunView.get_result", self._client)
        data = c.graphql(
            "query($id: String!) { flow_run(id: $id) { flow { name serialized } "
            "task_runs { id task_slug map_index state { type message } states { type serialized } } } }",
            {"id": self.flow_run_id},
        )["flow_run"]
        runs = [r for r in data["task_runs"] if r["task_slug"] == self.task_slug]
        return data["flow"], runs

    def get_result(self) -> Any:
        """The task run's return value, read from its checkpointed result (every child's, for a mapped parent)."""
        flow, runs = self._records()
        if self.map_index == -1 and self.state.is_mapped():
            children = sorted((r for r in runs if r["map_index"] >= 0), key=lambda r: r["map_index"])
            return [_load(flow, self.flow_run_id, r) for r in children]
        run = next((r for r in runs if r["map_index"] == self.map_index), None)
        if run is None:
            raise ValueError(f"Flow run {self.flow_run_id} has no task run {self.task_slug!r}[{self.map_index}].")
        return _load(flow, self.flow_run_id, run)


def _load(flow: dict[str, Any], flow_run_id: str, run: dict[str, Any]) -> Any:
    """Read one task run's value: the location its state recorded, the task's (else the flow's) Result."""
    from headwater.results.default import NONE_MARK, NOT_PERSISTED_MARK, DefaultResult
    from headwater.serialization.converter import from_dict

    slug, index = run["task_slug"], run["map_index"]
    name = f"{slug!r}" if index == -1 else f"'{slug}[{index}]'"
    state = run["state"]["type"]
    if state not in st.SUCCESS_STATE_NAMES:
        raise ValueError(f"Task run {name} of flow run {flow_run_id} is {state}, not successful: it has no result to load.")
    meta = flow.get("serialized") or {}
    task = next((t for t in meta.get("tasks") or [] if t.get("slug") == slug), None)
    result_data = (task or {}).get("result") or meta.get("result")
    history = [h["serialized"] for h in run.get("states") or [] if isinstance(h.get("serialized"), dict)]
    location = next((h.get("location") for h in reversed(history) if h.get("location")), None)
    note = history[-1] if history else {}
    if location is None and note.get(NONE_MARK):  # the default checkpoint does not write None; it recorded it
        return None
    if location is None and note.get(NOT_PERSISTED_MARK):
        raise ValueError(f"Task run {name} of flow run {flow_run_id} succeeded but its result was not persisted: "
                         f"{note[NOT_PERSISTED_MARK]}.")
    result = from_dict(result_data, "result") if result_data else None
    if location is None and result is not None:
        # no location recorded: the one the flow-run process computed, when the template needs only the run's identity
        task_name = (task or {}).get("name") or slug
        try:
            location = result.format(flow_name=flow.get("name"), flow_run_id=flow_run_id, task_slug=slug, task_name=task_name,
                                     task_full_name=task_name if index == -1 else f"{task_name}[{index}]",
                                     map_index=None if index == -1 else index)
        except (KeyError, IndexError, ValueError):
            location = None
        if location is not None and not result.exists(location):
            location = None
    if location is None:
        raise ValueError(
            f"Task run {name} of flow run {flow_run_id} has no checkpointed result to load: give the task or its flow "
            f"{flow.get('name')!r} a result (e.g. Flow(..., result=LocalResult(dir=...)) or @task(result=...)) "
            "at a location this process can read, or leave [flows] checkpointing on (not checkpoint=False), "
            "and run it again."
        )
    reader = result if result is not None else DefaultResult()  # the default checkpoint (pack files), or any pickle
    return reader.read(location).value


@attrs.define
class FlowRunView:
    """A snapshot of a flow run: ``flow_run_id``, ``name``, ``flow_id``, ``state``, ``parameters``, ``labels`` ...

    ``run_details`` is what its process resolved loading the flow (GitHub/Git: repo, ref, commit);
    ``parent_flow_run_id`` the flow run whose task created it.
    """

    flow_run_id: str
    name: str | None
    flow_id: str
    state: st.State
    labels: list[str] = attrs.field(factory=list)
    parameters: dict[str, Any] = attrs.field(factory=dict)
    context: dict[str, Any] = attrs.field(factory=dict)
    run_details: dict[str, str] = attrs.field(factory=dict)
    parent_flow_run_id: str | None = None
    flow_name: str | None = None
    _client: Any = attrs.field(default=None, repr=False, eq=False, alias="client")

    @classmethod
    def _of(cls, data: dict[str, Any], client: Any) -> FlowRunView:
        return cls(flow_run_id=data["id"], name=data.get("name"), flow_id=data["flow_id"], state=_state(data.get("state")),
                   labels=list(data.get("labels") or []), parameters=dict(data.get("parameters") or {}),
                   context=dict(data.get("context") or {}), run_details=dict(data.get("run_details") or {}),
                   parent_flow_run_id=data.get("parent_flow_run_id"), flow_name=(data.get("flow") or {}).get("name"),
                   client=client)

    @classmethod
    def from_flow_run_id(cls, flow_run_id: str, client: Any = None) -> FlowRunView:
        c = api_client("FlowRunView", client)
        return cls._of(c.graphql(f"query($id: String!) {{ flow_run(id: $id) {{ {_RUN} }} }}", {"id": flow_run_id})["flow_run"], c)

    def get_latest(self) -> FlowRunView:
        """The run as it is now (a new view)."""
        return type(self).from_flow_run_id(self.flow_run_id, client=self._client)

    def get_all_task_runs(self) -> list[TaskRunView]:
        c = api_client("FlowRunView", self._client)
        data = c.graphql(f"query($id: String!) {{ flow_run(id: $id) {{ {_TASK_RUNS} }} }}", {"id": self.flow_run_id})["flow_run"]
        return [TaskRunView(task_run_id=r["id"], task_slug=r["task_slug"], map_index=r["map_index"], flow_run_id=self.flow_run_id,
                            state=_state(r["state"]), client=c) for r in data["task_runs"]]

    def get_task_run(self, task_slug: str | None = None, task_run_id: str | None = None, map_index: int = -1) -> TaskRunView:
        """One task run, by slug (and map index) or by id."""
        if task_slug is None and task_run_id is None:
            raise ValueError("get_task_run needs task_slug= or task_run_id=.")
        for run in self.get_all_task_runs():
            if run.task_run_id == task_run_id or (task_run_id is None and run.task_slug == task_slug and run.map_index == map_index):
                return run
        what = f"id {task_run_id!r}" if task_run_id else (f"slug {task_slug!r}" + (f" and map index {map_index}" if map_index != -1 else ""))
        raise ValueError(f"Flow run {self.flow_run_id} has no task run with {what} (task slugs are like 'my_task' or 'my_task-2').")

    def get_logs(self) -> list[dict[str, Any]]:
        """Every log record of the run, oldest first."""
        return list(api_client("FlowRunView", self._client).flow_run(id=self.flow_run_id).logs(limit=10000))

    def get_artifacts(self) -> list[dict[str, Any]]:
        return list(api_client("FlowRunView", self._client).flow_run(id=self.flow_run_id).artifacts())

    def get_children(self) -> list[FlowRunView]:
        """The flow runs this run's tasks created (flow of flows)."""
        c = api_client("FlowRunView", self._client)
        data = c.graphql(f"query($id: String!) {{ flow_run(id: $id) {{ children {{ {_RUN} }} }} }}", {"id": self.flow_run_id})
        return [type(self)._of(r, c) for r in data["flow_run"]["children"]]


@attrs.define(frozen=True)
class FlowRunLog:
    """One line :func:`watch_flow_run` yields: ``timestamp``, ``level`` (a ``logging`` level number), ``message``."""

    timestamp: datetime
    level: int
    message: str


_LOG_PAGE = ("query($id: String!, $after: String) { log_page(flow_run_id: $id, after: $after, limit: 500) "
             "{ logs { timestamp level name message } end_cursor } }")


def watch_flow_run(flow_run_id: str, stream_states: bool = True, stream_logs: bool = False,
                   max_duration: timedelta = timedelta(hours=12), poll_interval: float = 5.0,
                   client: Any = None) -> Iterator[FlowRunLog]:
    """Follow a flow run until it finishes: yield its state changes (and its logs with ``stream_logs``).

    Polls quickly at first and backs off to ``poll_interval`` seconds. Raises ``RuntimeError`` after
    ``max_duration``. A run still Scheduled after a while gets a hint to check for a matching agent.
    """
    c = api_client("watch_flow_run", client)
    run = c.flow_run(id=flow_run_id)
    start = time.monotonic()
    seen_version: int | None = None
    cursor: str | None = None
    delay = 0.25
    warned_agent = False
    while True:
        data = run.query("version labels state { type message timestamp }")
        state = data["state"]
        changed = data["version"] != seen_version
        if changed:
            seen_version = data["version"]
            if stream_states:
                text = f"Entered state <{state['type']}>" + (f": {state['message']}" if state.get("message") else "")
                yield FlowRunLog(datetime.fromisoformat(state["timestamp"]), logging.INFO, text)
        if stream_logs and stream_states:
            while True:
                page = c.graphql(_LOG_PAGE, {"id": flow_run_id, "after": cursor})["log_page"]
                for record in page["logs"]:
                    level = logging.getLevelName(str(record["level"]).upper())
                    yield FlowRunLog(datetime.fromisoformat(record["timestamp"]), level if isinstance(level, int) else logging.INFO,
                                     str(record["message"]))
                cursor = page["end_cursor"] or cursor
                if len(page["logs"]) < 500:
                    break
        if state["type"] in st.FINISHED_STATE_NAMES:
            return
        elapsed = time.monotonic() - start
        if elapsed > max_duration.total_seconds():
            raise RuntimeError(f"Flow run {flow_run_id} exceeded the maximum duration of {max_duration} and is still "
                               f"{state['type']}; it keeps running (cancel it with `headwater flow-run cancel {flow_run_id}`).")
        if not warned_agent and state["type"] == "Scheduled" and elapsed > 15:
            warned_agent = True
            if stream_states:
                labels = ", ".join(data.get("labels") or []) or "none"
                yield FlowRunLog(datetime.now(UTC), logging.WARNING,
                                 f"It has been {int(elapsed)} seconds and the flow run has not been submitted by an agent: "
                                 f"is an agent running whose labels include the run's ({labels})?")
        time.sleep(delay)
        delay = poll_interval if changed is False and delay >= poll_interval else min(poll_interval, delay * 2)
