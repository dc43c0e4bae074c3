"""``headwater agent start`` (and Prefect 1's ``headwater agent local start``): claim flow runs and run them.

``agent start`` runs each flow run in the environment its run config names. ``agent local start``
is Prefect 1's local agent: the same agent, which by default also has this machine's hostname as
a label (``--no-hostname-label`` turns that off) and adds ``--import-path`` folders to every flow
run's ``PYTHONPATH``, so flows can import the team's modules from a checkout.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

__all__ = ["agent", "agent_labels", "import_path_env"]


def _common_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """The options every agent command takes."""
    options = [
        click.option("--label", "-l", "labels", multiple=True,
                     help="A label this agent has (repeatable); runs need a subset of them."),
        click.option("--name", "-n", default=None, help="The agent's name (default agent-HOST-PID)."),
        click.option("--max-concurrent-runs", type=int, default=10, show_default=True,
                     help="Most flow runs this agent runs at once."),
        click.option("--poll-interval", type=float, default=0.5, show_default=True, help="Seconds between polls for runs."),
        click.option("--cancel-grace-period", type=float, default=10.0, show_default=True,
                     help="Seconds a Cancelling run gets to stop by itself before the agent kills its process."),
        click.option("--accept-unlabeled/--no-accept-unlabeled", default=None,
                     help="Take runs without labels (default: only when the agent has no labels of its own)."),
        click.option("--env", "-e", "env", multiple=True, help="KEY=VALUE added to every flow run's environment (repeatable)."),
        click.option("--api", default=None, help="The API address (default [cloud] api / HEADWATER__CLOUD__API)."),
        click.option("--max-backoff", type=float, default=60.0, show_default=True,
                     help="Longest wait between polls while the API refuses the key or cannot be reached "
                          "(doubling from --poll-interval)."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def _variables(env: tuple[str, ...]) -> dict[str, str]:
    variables = {}
    for item in env:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{item!r} is not KEY=VALUE.", param_hint="--env")
        variables[key] = value
    return variables


def agent_labels(labels: tuple[str, ...] | list[str], hostname_label: bool) -> list[str]:
    """The local agent's labels: the given ones, then this machine's hostname unless turned off (Prefect 1)."""
    result = list(dict.fromkeys(labels))
    if hostname_label:
        host = socket.gethostname()
        if host and host not in result:
            result.append(host)
    return result


def import_path_env(import_paths: tuple[str, ...] | list[str], variables: dict[str, str],
                    environ: dict[str, str] | None = None) -> dict[str, str]:
    """``variables`` with ``PYTHONPATH`` = the import paths (absolute), then any PYTHONPATH already given or set."""
    if not import_paths:
        return variables
    base = variables.get("PYTHONPATH", (environ if environ is not None else dict(os.environ)).get("PYTHONPATH", ""))
    parts = [str(Path(p).expanduser().resolve()) for p in import_paths]
    parts += [p for p in base.split(os.pathsep) if p and p not in parts]
    return {**variables, "PYTHONPATH": os.pathsep.join(parts)}


def _run_agent(labels: list[str], name: str | None, max_concurrent_runs: int, poll_interval: float,
               cancel_grace_period: float, accept_unlabeled: bool | None, variables: dict[str, str],
               api: str | None, max_backoff: float, api_key: str | None = None) -> None:
    from headwater import Client
    from headwater_cloud_api.agent import Agent
    from headwater_cloud_api.agent.agent import AgentAuthError

    kwargs: dict[str, Any] = {}
    if api:
        kwargs["api"] = api
    if api_key is not None:
        kwargs["api_key"] = api_key
    with Client(**kwargs) as client:
        runner = Agent(client, labels=labels, name=name, max_concurrent_runs=max_concurrent_runs,
                       poll_interval=poll_interval, cancel_grace_period=cancel_grace_period,
                       accepts_unlabeled=accept_unlabeled, env=variables, max_backoff=max_backoff)
        runner.install_signal_handlers()
        try:
            runner.start()
        except AgentAuthError as exc:
            raise click.ClickException(str(exc)) from None


@click.group()
def agent() -> None:
    """Agents: processes that claim flow runs and deploy them."""


@agent.command()
@_common_options
def start(labels: tuple[str, ...], name: str | None, max_concurrent_runs: int, poll_interval: float,
          cancel_grace_period: float, accept_unlabeled: bool | None, env: tuple[str, ...], api: str | None,
          max_backoff: float = 60.0) -> None:
    """Start an agent; it runs until SIGTERM or Ctrl-C, then unregisters (running flow runs continue)."""
    _run_agent(list(labels), name, max_concurrent_runs, poll_interval, cancel_grace_period, accept_unlabeled,
               _variables(env), api, max_backoff)


@agent.group("local")
def local() -> None:
    """Prefect 1's local agent: flow runs on this machine, the hostname as a label."""


@local.command("start")
@_common_options
@click.option("--import-path", "-p", "import_paths", multiple=True, type=click.Path(exists=True, file_okay=False),
              help="A folder added to every flow run's PYTHONPATH (repeatable), e.g. the repository's root.")
@click.option("--hostname-label/--no-hostname-label", default=True, show_default=True,
              help="Add this machine's hostname to the agent's labels (Prefect 1's local agent does).")
@click.option("--key", "-k", "api_key", default=None, help="The API key (default [cloud] api_key / HEADWATER__CLOUD__API_KEY).")
def local_start(labels: tuple[str, ...], name: str | None, max_concurrent_runs: int, poll_interval: float,
                cancel_grace_period: float, accept_unlabeled: bool | None, env: tuple[str, ...], api: str | None,
                max_backoff: float, import_paths: tuple[str, ...], hostname_label: bool,
                api_key: str | None) -> None:
    """Start a local agent: `agent start` plus the hostname label and --import-path folders.

    Runs without labels are taken unless the agent was given labels with -l (the hostname label
    does not count), as with `agent start`.
    """
    if accept_unlabeled is None:
        accept_unlabeled = not labels
    variables = import_path_env(import_paths, _variables(env))
    all_labels = agent_labels(labels, hostname_label)
    click.echo(f"Local agent with labels {all_labels or '(none)'}"
               + (f", PYTHONPATH {variables['PYTHONPATH']}" if import_paths else "") + ".", err=True)
    _run_agent(all_labels, name, max_concurrent_runs, poll_interval, cancel_grace_period, accept_unlabeled,
               variables, api, max_backoff, api_key=api_key)
