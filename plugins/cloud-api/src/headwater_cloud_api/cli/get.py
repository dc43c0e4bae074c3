"""``headwater get flows|flow-runs|projects|agents``: rich tables."""

from __future__ import annotations

import click

from headwater_cloud_api.cli.common import api_errors, client, table

__all__ = ["get"]


@click.group()
def get() -> None:
    """Tables of flows, flow runs, projects and agents."""


@get.command()
@click.option("--project", "-p", default=None)
@click.option("--all-versions", is_flag=True, help="Include archived versions.")
@click.option("--limit", default=100, show_default=True)
def flows(project: str | None, all_versions: bool, limit: int) -> None:
    with api_errors():
        rows = client().graphql(
            "query($p: String, $a: Boolean!, $l: Int!) { flows(project: $p, include_archived: $a, limit: $l) { id name version project_name archived labels } }",
            {"p": project, "a": all_versions, "l": limit},
        )["flows"]
    table("Flows", ["name", "version", "project", "labels", "archived", "id"],
          [[r["name"], r["version"], r["project_name"], ",".join(r["labels"]), r["archived"], r["id"]] for r in rows])


@get.command("flow-runs")
@click.option("--project", "-p", default=None)
@click.option("--flow", "flow_name", default=None, help="Only runs of this flow (by name).")
@click.option("--state", "states", multiple=True, help="Only runs in these states.")
@click.option("--limit", default=50, show_default=True)
def flow_runs(project: str | None, flow_name: str | None, states: tuple[str, ...], limit: int) -> None:
    with api_errors():
        rows = client().graphql(
            "query($p: String, $f: String, $s: [String!], $l: Int!) { flow_runs(project: $p, flow_name: $f, states: $s, limit: $l) "
            "{ id name labels scheduled_start_time state { type } flow { name version } } }",
            {"p": project, "f": flow_name, "s": list(states) or None, "l": limit},
        )["flow_runs"]
    table("Flow runs", ["id", "flow", "state", "scheduled start", "labels"],
          [[r["id"], f"{r['flow']['name']} v{r['flow']['version']}", r["state"]["type"], r["scheduled_start_time"][:19],
            ",".join(r["labels"])] for r in rows])


@get.command()
def projects() -> None:
    with api_errors():
        rows = client().graphql("{ projects(limit: 1000) { name description created } }")["projects"]
    table("Projects", ["name", "description", "created"], [[r["name"], r["description"], r["created"][:19]] for r in rows])


@get.command()
def agents() -> None:
    with api_errors():
        rows = client().graphql("{ agents { id name labels last_seen } }")["agents"]
    table("Agents", ["name", "labels", "last seen", "id"], [[r["name"], ",".join(r["labels"]), r["last_seen"][:19], r["id"]] for r in rows])
