"""``headwater flow-run logs|cancel|inspect|explain ID``."""

from __future__ import annotations

import json

import click

from headwater_cloud_api.cli.common import api_errors, client, console, table

__all__ = ["flow_run"]


@click.group("flow-run")
def flow_run() -> None:
    """Logs, cancel and inspect a flow run."""


@flow_run.command()
@click.argument("id")
@click.option("--limit", default=1000, show_default=True)
def logs(id: str, limit: int) -> None:
    """Print the run's logs, oldest first."""
    with api_errors():
        records = client().flow_run(id=id).logs(limit=limit)
    for r in records:
        click.echo(f"{r['timestamp'][:23]} {r['level']:<8} {r['name'] or ''} | {r['message']}")


@flow_run.command()
@click.argument("id")
def cancel(id: str) -> None:
    """Cancel the run (Scheduled -> Cancelled; running -> Cancelling)."""
    with api_errors():
        state = client().flow_run(id=id).cancel()
    click.echo(f"Flow run {id} is {state.name}.")


@flow_run.command()
@click.argument("id")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
def inspect(id: str, as_json: bool) -> None:
    """The run's details, its state history and its task runs."""
    with api_errors():
        info = client().flow_run(id=id).query(
            "id name parameters labels scheduled_start_time start_time end_time agent_id version "
            "flow { name version project_name } state { type message } states { type message timestamp version } "
            "task_runs { task_slug map_index state { type message } }"
        )
    if as_json:
        click.echo(json.dumps(info, indent=2, sort_keys=True))
        return
    console.print(f"[bold]Flow run {info['id']}[/bold] of {info['flow']['name']} v{info['flow']['version']} "
                  f"(project {info['flow']['project_name']}): {info['state']['type']}")
    console.print(f"parameters {json.dumps(info['parameters'])}  labels {','.join(info['labels'])}  "
                  f"scheduled {info['scheduled_start_time'][:19]}")
    table("States", ["version", "state", "message", "at"],
          [[s["version"], s["type"], s["message"], s["timestamp"][:23]] for s in info["states"]])
    table("Task runs", ["task", "map index", "state", "message"],
          [[t["task_slug"], t["map_index"], t["state"]["type"], t["state"]["message"]] for t in info["task_runs"]])


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
                  f"scheduled {e['scheduled_start_time'][:19]}{'' if e['due'] else ' (not due yet)'}")
    for reason in e["reasons"]:
        console.print(f"- {reason}")
    table("Agents", ["name", "labels", "alive", "can run it", "why", "last seen"],
          [[a["name"], ",".join(a["labels"]), a["alive"], a["can_run"], a["why"], a["last_seen"][:19]] for a in e["agents"]])
