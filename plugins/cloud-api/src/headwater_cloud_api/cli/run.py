"""``headwater run --name FLOW --project P``: create a run of a registered flow through the API, optionally follow it.

The core owns ``headwater run``; with ``--name``/``--project`` it calls :func:`run_registered_flow`,
which this plugin registers as the ``api_run`` type ``default`` (``register_types`` hook).
Following prints every new state and log line until the run is finished, polling the API
(one request per poll: state history and the next page of logs together).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

import click

__all__ = ["run_registered_flow", "follow_flow_run"]

_FOLLOW = (
    "query($id: String!, $o: Int!) { flow_run(id: $id) { states { type message timestamp version } } "
    "logs(flow_run_id: $id, offset: $o, limit: 500) { timestamp level name message } }"
)


def follow_flow_run(client: Any, flow_run_id: str, *, poll_interval: float = 1.0, timeout: float | None = None,
                    echo: Callable[[str], None] = click.echo) -> Any:
    """Print the run's states and logs as they appear until it is finished; returns its final state.

    ``TimeoutError`` after ``timeout`` seconds (None: wait as long as it takes).
    """
    from headwater_cloud_api.client.resources import state_from_api

    seen_states = 0
    seen_logs = 0
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        data = client.graphql(_FOLLOW, {"id": flow_run_id, "o": seen_logs})
        states = data["flow_run"]["states"]
        for s in states[seen_states:]:
            echo(f"{s['timestamp'][:23]} state    {s['type']}" + (f": {s['message']}" if s["message"] else ""))
        seen_states = len(states)
        for record in data["logs"]:
            echo(f"{record['timestamp'][:23]} {record['level']:<8} {record['name'] or ''} | {record['message']}")
        seen_logs += len(data["logs"])
        final = state_from_api(states[-1])
        if final.is_finished() and len(data["logs"]) < 500:
            return final
        if deadline is not None and time.monotonic() >= deadline:
            raise TimeoutError(f"Flow run {flow_run_id} is still {final.name} after {timeout} s.")
        if len(data["logs"]) < 500:  # a full page: more logs are waiting, fetch them at once
            time.sleep(poll_interval)


def run_registered_flow(name: str, project: str, parameters: dict[str, Any] | None = None, labels: Iterable[str] = (),
                        watch: bool = False, *, client: Any = None, poll_interval: float = 1.0,
                        timeout: float | None = None, echo: Callable[[str], None] = click.echo) -> int:
    """Create a run of the latest version of flow ``name`` in ``project``; with ``watch`` follow it to the end.

    Returns the exit code: 0 when created (without ``watch``) or when the run succeeded, 1 when it
    finished in another state. API errors raise ``click.ClickException`` (one clean line).
    """
    from headwater_cloud_api.cli.common import api_errors

    if client is None:
        from headwater.client import Client

        client = Client()
    labels = list(labels)
    with api_errors():
        run = client.flow(name=name, project=project).create_run(parameters=parameters or None, labels=labels or None)
        echo(f"Created flow run {run.id} of flow {name!r} (project {project!r}).")
        if not watch:
            echo(f"Follow it with `headwater flow-run inspect {run.id}` or `headwater flow-run logs {run.id}`.")
            return 0
        try:
            final = follow_flow_run(client, run.id, poll_interval=poll_interval, timeout=timeout, echo=echo)
        except KeyboardInterrupt:
            echo(f"Stopped following; flow run {run.id} goes on (cancel it with `headwater flow-run cancel {run.id}`).")
            return 130
    echo(f"Flow run {run.id} finished: {final.name}" + (f" ({final.message})" if final.message else ""))
    return 0 if final.is_successful() else 1
