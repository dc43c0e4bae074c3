"""``headwater agent start``: claim flow runs whose labels this agent has and run them in their environments."""

from __future__ import annotations

import click

__all__ = ["agent"]


@click.group()
def agent() -> None:
    """Agents: processes that claim flow runs and deploy them."""


@agent.command()
@click.option("--label", "-l", "labels", multiple=True, help="A label this agent has (repeatable); runs need a subset of them.")
@click.option("--name", "-n", default=None, help="The agent's name (default agent-HOST-PID).")
@click.option("--max-concurrent-runs", type=int, default=10, show_default=True, help="Most flow runs this agent runs at once.")
@click.option("--poll-interval", type=float, default=0.5, show_default=True, help="Seconds between polls for runs.")
@click.option("--cancel-grace-period", type=float, default=10.0, show_default=True,
              help="Seconds a Cancelling run gets to stop by itself before the agent kills its process.")
@click.option("--accept-unlabeled/--no-accept-unlabeled", default=None,
              help="Take runs without labels (default: only when the agent has no labels).")
@click.option("--env", "-e", "env", multiple=True, help="KEY=VALUE added to every flow run's environment (repeatable).")
@click.option("--api", default=None, help="The API address (default [cloud] api / HEADWATER__CLOUD__API).")
@click.option("--max-backoff", type=float, default=60.0, show_default=True,
              help="Longest wait between polls while the API refuses the key or cannot be reached (doubling from --poll-interval).")
def start(labels: tuple[str, ...], name: str | None, max_concurrent_runs: int, poll_interval: float,
          cancel_grace_period: float, accept_unlabeled: bool | None, env: tuple[str, ...], api: str | None,
          max_backoff: float = 60.0) -> None:
    """Start an agent; it runs until SIGTERM or Ctrl-C, then unregisters (running flow runs continue)."""
    from headwater import Client
    from headwater_cloud_api.agent import Agent
    from headwater_cloud_api.agent.agent import AgentAuthError

    variables = {}
    for item in env:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{item!r} is not KEY=VALUE.", param_hint="--env")
        variables[key] = value
    with Client(api=api) if api else Client() as client:
        runner = Agent(client, labels=list(labels), name=name, max_concurrent_runs=max_concurrent_runs,
                       poll_interval=poll_interval, cancel_grace_period=cancel_grace_period,
                       accepts_unlabeled=accept_unlabeled, env=variables, max_backoff=max_backoff)
        runner.install_signal_handlers()
        try:
            runner.start()
        except AgentAuthError as exc:
            raise click.ClickException(str(exc)) from None
