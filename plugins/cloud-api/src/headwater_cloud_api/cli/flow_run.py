"""``headwater flow-run logs|show|cancel|restart|resume|inspect|explain ID``."""

from __future__ import annotations

import json
from typing import Any

import click

from headwater.states import FAILED_STATE_NAMES
from headwater_cloud_api.cli.common import api_errors, client, console, iso, log_line, table

__all__ = ["flow_run"]


@click.group("flow-run")
def flow_run() -> None:
    """Logs, cancel, restart, resume and inspect a flow run."""


@flow_run.command()
@click.argument("id")
@click.option("--limit", default=None, type=click.IntRange(min=1), help="At most this many records (default: all of them).")
@click.option("--level", "levels", multiple=True, help="Only records of this level (repeatable): ERROR, WARNING ...")
def logs(id: str, limit: int | None, levels: tuple[str, ...]) -> None:
    """Print the run's logs, oldest first (read page by page by cursor)."""
    run = client().flow_run(id=id)
    after, shown = None, 0
    while True:
        with api_errors():
            page = run.log_page(after=after, limit=1000 if limit is None else min(1000, limit - shown), levels=levels or None)
        for r in page["logs"]:
            click.echo(log_line(r))
        shown += len(page["logs"])
        if not page["has_more"] or (limit is not None and shown >= limit):
            return
        after = page["end_cursor"]


@flow_run.command()
@click.argument("id")
@click.option("--open", "open_browser", is_flag=True, help="Open the page in the default web browser.")
def show(id: str, open_browser: bool) -> None:
    """The run's web UI address, what it ran (the commit), its parent, children and artifacts."""
    from headwater_cloud_api.ui import client_run_url

    c = client()
    with api_errors():
        info = c.flow_run(id=id).query("state { type } run_details parent_flow_run_id parent_task_slug parent_map_index "
                                       "children { id state { type } } artifacts { kind text task_slug map_index }")
    state = info["state"]["type"]
    url = client_run_url(c, id)
    click.echo(f"Flow run {id} is {state}: {url}")
    # run records (helper B): what it ran, its parent and children (flow of flows), its artifacts
    if info.get("run_details"):
        click.echo("ran: " + ", ".join(f"{k} {v}" for k, v in sorted(info["run_details"].items())))
    if info.get("parent_flow_run_id"):
        index = info.get("parent_map_index")
        task = f"{info['parent_task_slug']}[{index}]" if index not in (None, -1) else info["parent_task_slug"]
        click.echo(f"parent: flow run {info['parent_flow_run_id']}" + (f" (task {task})" if task else ""))
    for child in info.get("children") or []:
        click.echo(f"child: flow run {child['id']} is {child['state']['type']}")
    for art in info.get("artifacts") or []:
        first = (art["text"].strip().splitlines() or [""])[0][:100]
        click.echo(f"artifact ({art['kind']}, task {art['task_slug']}): {first}")
    if open_browser:
        import webbrowser

        if not webbrowser.open(url):
            click.echo("No web browser could be started here; open the address above yourself.", err=True)


@flow_run.command()
@click.argument("id")
def cancel(id: str) -> None:
    """Cancel the run (Scheduled -> Cancelled; running -> Cancelling)."""
    with api_errors():
        state = client().flow_run(id=id).cancel()
    click.echo(f"Flow run {id} is {state.name}.")


@flow_run.command()
@click.argument("id")
@click.option("--from-failed/--all", "from_failed", default=True, show_default=True,
              help="--from-failed keeps the task runs that succeeded (their checkpointed results feed the rest) and runs "
                   "only the failed, cancelled or not-run ones and what is downstream of them; --all runs the whole flow again.")
def restart(id: str, from_failed: bool) -> None:
    """Restart a finished flow run as a new attempt (an agent picks it up again)."""
    from headwater_cloud_api.ui import client_run_url

    c = client()
    with api_errors():
        state = c.flow_run(id=id).restart(from_failed=from_failed)
    what = "from its failed task runs" if from_failed else "from the beginning"
    click.echo(f"Flow run {id} restarted {what}: {state.name}. Follow it: {client_run_url(c, id)}")


@flow_run.command()
@click.argument("id")
@click.option("--task-run", "task_run_ids", multiple=True, metavar="TASK_RUN_ID",
              help="Resume only this paused task run (repeatable; default: every paused task run of the flow run).")
def resume(id: str, task_run_ids: tuple[str, ...]) -> None:
    """Resume a paused flow run: its paused task runs run (their trigger bypassed), then the rest of the flow."""
    c = client()
    with api_errors():
        state = c.flow_run(id=id).resume(task_run_ids or None)
    click.echo(f"Flow run {id} resumed: {state.name}.")


_RAISED = FAILED_STATE_NAMES - {"TriggerFailed"}  # the tasks that raised (or timed out), not those that did not run
_CONSTANT_TYPES = ("headwater.core.collections:Constant",)
_TRACEBACK_MARK = "exception encountered during task execution"


def task_labels(tasks: list[dict[str, Any]]) -> tuple[dict[str, str], set[str]]:
    """``({slug: name as written}, {slugs of internal constant tasks})`` from the flow's task metadata.

    A name two tasks share keeps its slug (``double-2``) so rows stay tellable apart.
    """
    counts: dict[str, int] = {}
    for t in tasks:
        counts[t.get("name") or ""] = counts.get(t.get("name") or "", 0) + 1
    names = {t["slug"]: (t["name"] if t.get("name") and counts[t["name"]] == 1 else t["slug"]) for t in tasks}
    constants = {t["slug"] for t in tasks if t.get("type") in _CONSTANT_TYPES or str(t.get("type", "")).endswith(":Constant")}
    return names, constants


@flow_run.command()
@click.argument("id")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
@click.option("--all-tasks", is_flag=True, help="Also show the internal constant tasks headwater adds for literal arguments.")
def inspect(id: str, as_json: bool, all_tasks: bool) -> None:
    """The run's details, its state history, its task runs (names as written) and the tracebacks of failed tasks."""
    with api_errors():
        run = client().flow_run(id=id)
        info = run.query(
            "id name parameters labels scheduled_start_time start_time end_time agent_id version "
            "flow { name version project_name tasks } state { type message } states { type message timestamp version } "
            "task_runs { task_slug map_index state { type message } }"
        )
        failed = {t["task_slug"] for t in info["task_runs"] if t["state"]["type"] in _RAISED}
        tasks = list(info["flow"].get("tasks") or [])
        loggers = {f"headwater.{t['name']}" for t in tasks if t["slug"] in failed}
        tracebacks = [r for r in _tracebacks(run) if r.get("name") in loggers] if failed else []
    if as_json:
        info["tracebacks"] = tracebacks
        click.echo(json.dumps(info, indent=2, sort_keys=True))
        return
    names, constants = task_labels(tasks)
    console.print(f"[bold]Flow run {info['id']}[/bold] of {info['flow']['name']} v{info['flow']['version']} "
                  f"(project {info['flow']['project_name']}): {info['state']['type']}", markup=True)
    console.print(f"parameters {json.dumps(info['parameters'])}  labels {','.join(info['labels'])}  "
                  f"scheduled {iso(info['scheduled_start_time'])}", markup=False)
    table("States", ["version", "state", "message", "at"],
          [[s["version"], s["type"], s["message"], iso(s["timestamp"])] for s in info["states"]])
    rows = []
    for t in info["task_runs"]:
        if t["task_slug"] in constants and not all_tasks:
            continue
        name = names.get(t["task_slug"], t["task_slug"])
        if t["map_index"] is not None and t["map_index"] >= 0:
            name = f"{name}[{t['map_index']}]"
        message = str(t["state"]["message"] or "").split("\n", 1)[0]
        rows.append([name, t["state"]["type"], message])
    table("Task runs", ["task", "state", "message"], rows)
    for record in tracebacks:
        console.print(f"\n[bold red]{record['name']}[/bold red] at {iso(record['timestamp'])}:", markup=True)
        console.print(record["message"], markup=False, highlight=False)


def _tracebacks(run: Any) -> list[dict[str, Any]]:
    """The ERROR log records that carry a task's traceback (the engine logs one per exception), read by cursor."""
    records = run.all_logs(levels=["ERROR", "CRITICAL"])
    return [r for r in records if _TRACEBACK_MARK in (r.get("message") or "")]


@flow_run.command()
@click.argument("id")
@click.option("--alive-within", type=float, default=60.0, show_default=True, help="Agents seen within this many seconds count as alive.")
def explain(id: str, alive_within: float) -> None:
    """Why the run is (not) picked up: its state and start time, which agents are alive, which labels each lacks."""
    with api_errors():
        e = client().graphql(
            "query($id: String!, $a: Float!) { explain_flow_run(id: $id, alive_within: $a) "
            "{ state labels scheduled_start_time due agents reasons } }", {"id": id, "a": alive_within},
        )["explain_flow_run"]
    console.print(f"Flow run {id}: {e['state']}, labels {','.join(e['labels']) or '(none)'}, "
                  f"scheduled {iso(e['scheduled_start_time'])}{'' if e['due'] else ' (not due yet)'}")
    for reason in e["reasons"]:
        console.print(f"- {reason}")
    table("Agents", ["name", "labels", "alive", "can run it", "why", "last seen"],
          [[a["name"], ",".join(a["labels"]), a["alive"], a["can_run"], a["why"], a["last_seen"][:19]] for a in e["agents"]])
