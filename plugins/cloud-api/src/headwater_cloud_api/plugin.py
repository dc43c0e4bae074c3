"""The plugin's hooks (only): client nouns and CLI commands of headwater-cloud-api."""

from __future__ import annotations

from typing import Any

from headwater.plugins import hookimpl

HEADWATER_PLUGIN_API = 1

_R = "headwater_cloud_api.client.resources"


@hookimpl
def register_client_resources(register: Any) -> None:
    register("headwater_cloud_api.client.transport:HttpTransport", "transport")
    register("headwater_cloud_api.registration:Registration", "registration")
    register(f"{_R}:ProjectResource", "project")
    register(f"{_R}:FlowResource", "flow")
    register(f"{_R}:FlowRunResource", "flow_run")
    register(f"{_R}:KeyValueResource", "kv")
    register("headwater_cloud_api.client.states:StateBatch", "state_batch")
    register("headwater_cloud_api.client.agents:AgentResource", "agent")


@hookimpl
def register_types(register: Any) -> None:
    # `headwater run --name FLOW --project P` (a core command) delegates to this function.
    register("api_run", "headwater_cloud_api.cli.run:run_registered_flow", "default")


@hookimpl
def register_commands(cli: Any) -> None:
    from headwater.cli.lazy import LazyCommand

    c = "headwater_cloud_api.cli"
    cli.add_command(LazyCommand("server", f"{c}.server:server", "Run and administer the orchestration API server."))
    cli.add_command(LazyCommand("project", f"{c}.projects:project", "Create and list projects."))
    cli.add_command(LazyCommand("register", f"{c}.register:register", "Register flows with the orchestration API."))
    cli.add_command(LazyCommand("get", f"{c}.get:get", "Tables of flows, flow runs, projects and agents."))
    cli.add_command(LazyCommand("flow-run", f"{c}.flow_run:flow_run", "Logs, cancel and inspect a flow run."))
    cli.add_command(LazyCommand("kv", f"{c}.kv:kv", "The API's key-value store: set, get, delete, list."))
    cli.add_command(LazyCommand("agent", f"{c}.agent:agent", "Agents: claim flow runs and deploy them."))
    cli.add_command(LazyCommand("execute", f"{c}.execute:execute", "Execute a flow run of the API in this process."))
