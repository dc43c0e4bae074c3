"""``client.state_batch()``: many flow-run and task-run state writes sent in one request.

A flow runner collects the states it produces and sends them together; each write carries the
version the writer last saw, so a stale writer cannot overwrite a newer state::

    batch = client.state_batch()
    batch.flow_run(run_id, "Running", version=2)
    batch.task_run(run_id, "add-1", "Success", version=0)
    result = batch.send()          # one request, one transaction
    result.stale                   # the writes that were not written (a newer state exists)
"""

from __future__ import annotations

from typing import Any

import attrs

__all__ = ["StateBatch", "BatchResult", "SET_STATES"]

SET_STATES = (
    "mutation($f: [FlowRunStateInput!], $t: [TaskRunStateInput!]) { set_states(flow_runs: $f, task_runs: $t) "
    "{ flow_runs { id status version state } task_runs { id status version state } } }"
)


def _state(state: Any, message: str | None, serialized: dict[str, Any] | None) -> dict[str, Any]:
    """``{type, message, serialized}`` from a state name or a ``headwater.states`` object."""
    if isinstance(state, str):
        return {"type": state, "message": message, "serialized": serialized}
    return {"type": type(state).__name__, "message": message if message is not None else state.message, "serialized": serialized}


@attrs.define
class BatchResult:
    """The server's answer, in input order: ``flow_runs`` and ``task_runs`` are lists of ``{id, status, version, state}``."""

    flow_runs: list[dict[str, Any]]
    task_runs: list[dict[str, Any]]

    @property
    def stale(self) -> list[dict[str, Any]]:
        """The writes that were not written (status STALE): each with the run's current version and state."""
        return [r for r in (*self.flow_runs, *self.task_runs) if r["status"] != "SUCCESS"]

    @property
    def written(self) -> int:
        return sum(r["status"] == "SUCCESS" for r in (*self.flow_runs, *self.task_runs))


class StateBatch:
    """Collects state writes; :meth:`send` writes them in one request and one transaction.

    An unknown run id or state name fails the whole batch (nothing is written, an
    ``APIClientError`` is raised); a write whose ``version`` is not the run's current version is
    reported STALE and not written, while the other writes are. ``version=None`` skips the check.
    """

    def __init__(self, client: Any) -> None:
        self.client = client
        self._flow_runs: list[dict[str, Any]] = []
        self._task_runs: list[dict[str, Any]] = []

    def __len__(self) -> int:
        return len(self._flow_runs) + len(self._task_runs)

    def flow_run(self, flow_run_id: str, state: Any, version: int | None = None, message: str | None = None,
                 serialized: dict[str, Any] | None = None) -> StateBatch:
        """Add a flow-run state write (``state``: a name such as ``"Running"`` or a State object)."""
        self._flow_runs.append({"flow_run_id": flow_run_id, "version": version, "state": _state(state, message, serialized)})
        return self

    def task_run(self, flow_run_id: str, task_slug: str | None, state: Any, version: int | None = None, map_index: int = -1,
                 message: str | None = None, serialized: dict[str, Any] | None = None,
                 task_run_id: str | None = None) -> StateBatch:
        """Add a task-run state write; the task run (by slug and map index) is created on its first write at version 0."""
        self._task_runs.append({
            "flow_run_id": flow_run_id, "task_slug": task_slug, "map_index": map_index, "task_run_id": task_run_id,
            "version": version, "state": _state(state, message, serialized),
        })
        return self

    def send(self) -> BatchResult:
        """Send every collected write in one request; the batch is empty afterwards."""
        if not self:
            return BatchResult([], [])
        data = self.client.graphql(SET_STATES, {"f": self._flow_runs, "t": self._task_runs})["set_states"]
        self._flow_runs, self._task_runs = [], []
        return BatchResult(data["flow_runs"], data["task_runs"])
