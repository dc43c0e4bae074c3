"""``headwater run --name FLOW --project P``: create a run of a registered flow through the API, optionally follow it.

The core owns ``headwater run``; with ``--name``/``--project`` it calls :func:`run_registered_flow`,
which this plugin registers as the ``api_run`` type ``default`` (``register_types`` hook).
Following prints every new state and log line until the run is finished, polling the API
(one request per poll: state history and the next page of logs together, by cursor: each poll
asks for the records after the last one it printed, so none is skipped or printed twice).
A Paused run is followed on (it goes on once resumed), with how to resume it printed once.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

import click

from headwater.states import SCHEDULED_STATE_NAMES

__all__ = ["run_registered_flow", "follow_flow_run"]

_PAGE = 500
_FOLLOW = (
    "query($id: String!, $a: String) { flow_run(id: $id) { states { type message timestamp version } } "
    f"log_page(flow_run_id: $id, after: $a, limit: {_PAGE}) {{ logs {{ timestamp level name message }} end_cursor has_more }} }}"
)


_EXPLAIN = (
    "query($id: String!, $a: Float!) { explain_flow_run(id: $id, alive_within: $a) { state labels due reasons } }"
)
_WAITING = SCHEDULED_STATE_NAMES | {"Submitted"}  # waiting for an agent or for its process to start


def follow_flow_run(client: Any, flow_run_id: str, *, poll_interval: float = 1.0, timeout: float | None = None,
                    echo: Callable[[str], None] = click.echo, explain_after: float = 5.0,
                    alive_within: float = 60.0) -> Any:
    """Print the run's states and logs, in the order they happened, until it is finished; returns its final state.

    While the run waits (Scheduled or Submitted) for more than ``explain_after`` seconds, the
    ``flow-run explain`` answer is printed (no live agent, missing labels, not due yet), again
    whenever it changes, and following goes on. ``TimeoutError`` after ``timeout`` seconds
    (None: wait as long as it takes).
    """
    from headwater_cloud_api.cli.common import iso, log_line
    from headwater_cloud_api.client.resources import state_from_api

    seen_states = 0
    cursor: str | None = None
    paused_hint = False
    deadline = None if timeout is None else time.monotonic() + timeout
    waiting_since: float | None = None
    explained: list[str] | None = None
    while True:
        data = client.graphql(_FOLLOW, {"id": flow_run_id, "a": cursor})
        states = data["flow_run"]["states"]
        page = data["log_page"]
        # One poll's new states and logs, merged by time: the final state comes after the run's last logs.
        lines: list[tuple[str, int, str]] = []
        for s in states[seen_states:]:
            lines.append((iso(s["timestamp"]), 0, f"{iso(s['timestamp'])} state    {s['type']}"
                          + (f": {s['message']}" if s["message"] else "")))
        for i, record in enumerate(page["logs"]):
            lines.append((iso(record["timestamp"]), 1 + i, log_line(record)))
        for _, _, line in sorted(lines, key=lambda item: (item[0], item[1])):
            echo(line)
        seen_states = len(states)
        cursor = page["end_cursor"]
        final = state_from_api(states[-1])
        if final.is_finished() and not page["has_more"]:
            return final
        if final.name == "Paused":
            if not paused_hint:
                echo(f"Flow run {flow_run_id} is Paused: a task waits to be resumed. Resume it with "
                     f"`headwater flow-run resume {flow_run_id}` (or the Resume button on its page); still watching.")
                paused_hint = True
            waiting_since, explained = None, None
        elif final.name in _WAITING:
            paused_hint = False
            waiting_since = waiting_since if waiting_since is not None else time.monotonic()
            if time.monotonic() - waiting_since >= explain_after:
                reasons = _explain(client, flow_run_id, alive_within)
                if reasons and reasons != explained:
                    echo(f"Flow run {flow_run_id} is still {final.name} after {explain_after:g} s:")
                    for reason in reasons:
                        echo(f"  - {reason}")
                    echo("  (still watching; Ctrl-C stops watching, the run stays)")
                    explained = reasons
        else:
            waiting_since, explained, paused_hint = None, None, False
        if deadline is not None and time.monotonic() >= deadline:
            raise TimeoutError(f"Flow run {flow_run_id} is still {final.name} after {timeout} s.")
        if not page["has_more"]:  # with more logs waiting (a full page), the next poll comes at once
            time.sleep(poll_interval)


def _explain(client: Any, flow_run_id: str, alive_within: float) -> list[str]:
    """The reasons of ``flow-run explain`` (empty when the API cannot say)."""
    try:
        answer = client.graphql(_EXPLAIN, {"id": flow_run_id, "a": alive_within})["explain_flow_run"]
    except Exception as exc:  # an older server, or a hiccup: watching goes on
        return [f"(could not ask the API why: {exc})"]
    return list(answer.get("reasons") or [])


def run_registered_flow(name: str, project: str, parameters: dict[str, Any] | None = None, labels: Iterable[str] = (),
                        watch: bool = False, *, client: Any = None, poll_interval: float = 1.0,
                        timeout: float | None = None, echo: Callable[[str], None] = click.echo) -> int:
    """Create a run of the latest version of flow ``name`` in ``project``; with ``watch`` follow it to the end.

    Returns the exit code: 0 when created (without ``watch``) or when the run succeeded, 1 when it
    finished in another state. API errors raise ``click.ClickException`` (one clean line).
    """
    from headwater_cloud_api.cli.common import api_errors

    if client is None:
        from headwater import Client

        client = Client()
    labels = list(labels)
    with api_errors():
        run = client.flow(name=name, project=project).create_run(parameters=parameters or None, labels=labels or None)
        echo(f"Created flow run {run.id} of flow {name!r} (project {project!r}).")
        if not watch:
            echo(f"Follow it with `headwater flow-run inspect {run.id}` or `headwater flow-run logs {run.id}`.")
            return 0
        from headwater_cloud_api.ui import client_run_url

        echo(f"Watch it in the browser: {client_run_url(client, run.id)}")
        try:
            final = follow_flow_run(client, run.id, poll_interval=poll_interval, timeout=timeout, echo=echo)
        except KeyboardInterrupt:
            echo(f"Stopped following; flow run {run.id} goes on (cancel it with `headwater flow-run cancel {run.id}`).")
            return 130
    echo(f"Flow run {run.id} finished: {final.name}" + (f" ({final.message})" if final.message else ""))
    return 0 if final.is_successful() else 1
