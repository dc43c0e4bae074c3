"""``client.agent(...)``: the API calls an agent makes (register, claim, heartbeat, end a run, log, unregister).

Each method is one request. ``client.agent(name="local", labels=["staging"]).register()`` sets ``id``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

__all__ = ["AgentResource", "CLAIM_SELECTION"]

CLAIM_SELECTION = "id version attempt labels parameters context run_config scheduled_start_time flow { id name storage }"
"""What ``claim`` returns per run: enough to restore the storage and the environment."""


class AgentResource:
    """One agent's session with the API (building it sends nothing)."""

    def __init__(self, client: Any, name: str = "agent", labels: Iterable[str] = (), accepts_unlabeled: bool | None = None,
                 type: str = "local", id: str | None = None) -> None:
        self.client = client
        self.name = name
        self.labels = sorted(set(labels))
        self.accepts_unlabeled = (not self.labels) if accepts_unlabeled is None else accepts_unlabeled
        self.type = type
        self.id = id

    def __repr__(self) -> str:
        return f"<Agent name={self.name!r} labels={self.labels} id={self.id!r}>"

    def _gql(self, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        return self.client.graphql(query, variables)

    def _require_id(self) -> str:
        if self.id is None:
            raise RuntimeError(f"Agent {self.name!r} is not registered yet: call register() first.")
        return self.id

    def register(self) -> str:
        data = self._gql(
            "mutation($n: String!, $l: [String!]!, $t: String, $u: Boolean!) { register_agent(name: $n, labels: $l, type: $t, accepts_unlabeled: $u) { id } }",
            {"n": self.name, "l": self.labels, "t": self.type, "u": self.accepts_unlabeled},
        )
        self.id = data["register_agent"]["id"]
        return self.id

    def claim(self, limit: int) -> list[dict[str, Any]]:
        """Atomically claim up to ``limit`` due runs (they are Submitted to this agent)."""
        return self._gql(
            f"mutation($a: String!, $n: Int!) {{ claim_flow_runs(agent_id: $a, limit: $n) {{ {CLAIM_SELECTION} }} }}",
            {"a": self._require_id(), "n": limit},
        )["claim_flow_runs"]

    def heartbeat(self, flow_run_ids: Sequence[str] = (), renew: Sequence[str] = ()) -> dict[str, dict[str, Any]]:
        """Say the agent is alive (renewing the leases of ``renew``); returns ``{run id: {state, version, message}}`` for ``flow_run_ids``."""
        rows = self._gql(
            "mutation($a: String!, $r: [String!], $n: [String!]) { agent_heartbeat(agent_id: $a, flow_run_ids: $r, renew: $n) "
            "{ id state version message } }",
            {"a": self._require_id(), "r": list(flow_run_ids), "n": list(renew)},
        )["agent_heartbeat"]
        return {r["id"]: r for r in rows}

    def end_run(self, flow_run_id: str, state: str, message: str, task_state: str | None = None,
                attempt: int | None = None) -> dict[str, Any]:
        """Failed / Cancelled for an unfinished run (and its unfinished task runs when ``task_state`` is given).

        ``attempt``: the attempt this agent claimed; if the run has since been rescheduled (another
        attempt owns it) the API refuses with SUPERSEDED and the run is left alone.
        """
        return self._gql(
            "mutation($r: String!, $s: String!, $m: String!, $t: String, $a: Int) { end_flow_run(flow_run_id: $r, state: $s, "
            "message: $m, task_state: $t, attempt: $a) { state version } }",
            {"r": flow_run_id, "s": state, "m": message, "t": task_state, "a": attempt},
        )["end_flow_run"]

    def log(self, flow_run_id: str, message: str, level: str = "INFO", attempt: int | None = None) -> None:
        """One log record on the run (``attempt``: refused as SUPERSEDED once the run belongs to a newer attempt)."""
        self._gql(
            "mutation($l: [LogInput!]!) { write_logs(logs: $l) }",
            {"l": [{"flow_run_id": flow_run_id, "message": message, "level": level, "name": f"headwater.agent.{self.name}",
                    "timestamp": datetime.now(UTC).isoformat(), "attempt": attempt}]},
        )

    def unregister(self) -> bool:
        if self.id is None:
            return False
        return self._gql("mutation($a: String!) { unregister_agent(agent_id: $a) }", {"a": self.id})["unregister_agent"]
