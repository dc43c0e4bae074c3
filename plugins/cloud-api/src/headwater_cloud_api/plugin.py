"""The plugin's hooks (only): client nouns and CLI commands of headwater-cloud-api."""

from __future__ import annotations

from typing import Any

from headwater.plugins import Registrar, hookimpl

HEADWATER_PLUGIN_API = 1

_R = "headwater_cloud_api.client.resources"


@hookimpl
def register_client_resources(register: Registrar) -> None:
    register("headwater_cloud_api.client.transport:HttpTransport", "transport")
    register("headwater_cloud_api.registration:Registration", "registration")
    register(f"{_R}:ProjectResource", "project")
    register(f"{_R}:FlowResource", "flow")
    register(f"{_R}:FlowRunResource", "flow_run")
    register(f"{_R}:KeyValueResource", "kv")
    register("headwater_cloud_api.client.states:StateBatch", "state_batch")
    register("headwater_cloud_api.client.agents:AgentResource", "agent")


@hookimpl
def register_config_sections(register: Registrar) -> None:
    register("headwater_cloud_api.config:CloudSection", "cloud")
    register("headwater_cloud_api.config:ServerSection", "server")


@hookimpl
def register_commands(cli: Any) -> None:
    from headwater.plugins import LazyCommand

    c = "headwater_cloud_api.cli"
    cli.add_command(LazyCommand("server", f"{c}.server:server", "Run and administer the orchestration API server."))
    cli.add_command(LazyCommand("project", f"{c}.projects:project", "Create and list projects."))
    cli.add_command(LazyCommand("register", f"{c}.register:register", "Register flows with the orchestration API."))
    cli.add_command(LazyCommand("get", f"{c}.get:get", "Tables of flows, flow runs, projects and agents."))
    cli.add_command(LazyCommand("flow-run", f"{c}.flow_run:flow_run", "Logs, cancel and inspect a flow run."))
    cli.add_command(LazyCommand("kv", f"{c}.kv:kv", "The API's key-value store: set, get, delete, list."))
    cli.add_command(LazyCommand("agent", f"{c}.agent:agent", "Agents: claim flow runs and deploy them."))
    cli.add_command(LazyCommand("execute", f"{c}.execute:execute", "Execute a flow run of the API in this process."))
    cli.add_command(LazyCommand("auth", f"{c}.auth:auth", "Log in to the API (store an API key), log out, status."))


@hookimpl
def extend_command(name: str, command: Any) -> None:
    """``headwater run --name FLOW --project P [--label L] [--watch]``: run a registered flow through the API."""
    if name != "run":
        return
    import click

    command.params.extend([
        click.Option(["--name", "flow_name"], default=None, help="With --project: run a registered flow through the API."),
        click.Option(["--project"], default=None, help="With --name: the project of the registered flow."),
        click.Option(["--label", "-l", "labels"], multiple=True, help="With --name: a label of the new run (repeatable)."),
        click.Option(["--watch", "-w"], is_flag=True, help="With --name: follow the run's states and logs until it finishes."),
    ])


@hookimpl
def run_target(target: str | None, parameters: dict[str, Any], options: dict[str, Any]) -> int | None:
    """Handle ``headwater run`` when ``--name``/``--project`` are given."""
    flow_name, project = options.get("flow_name"), options.get("project")
    if not (flow_name or project):
        return None
    import click

    if target is not None:
        raise click.UsageError("Give either a flow file to run locally, or --name and --project, not both.")
    if not (flow_name and project):
        raise click.UsageError("Running a registered flow needs both --name FLOW and --project PROJECT.")
    from headwater_cloud_api.cli.run import run_registered_flow

    return int(run_registered_flow(flow_name, project, parameters, options.get("labels") or (), bool(options.get("watch"))))
