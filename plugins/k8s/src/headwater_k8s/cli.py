"""``headwater k8s``: Kubernetes commands (``agent-manifest``)."""

from __future__ import annotations

import json

import click

__all__ = ["k8s"]


@click.group()
def k8s() -> None:
    """Kubernetes: the agent's manifest (flow runs themselves are KubernetesRun run configs)."""


@k8s.command("agent-manifest")
@click.option("--namespace", "-n", default="default", show_default=True, help="Namespace of the agent and of its flow-run Jobs.")
@click.option("--label", "-l", "labels", multiple=True, help="A label of the agent (repeat for several).")
@click.option("--api", default=None, help="The orchestration API URL the agent and its flow runs reach (default: [cloud] api).")
@click.option("--image", default="headwater/headwater:0.1.0", show_default=True, help="The agent's image (headwater and headwater-k8s installed).")
@click.option("--name", default="headwater-agent", show_default=True, help="Name of the Deployment, ServiceAccount, Role and RoleBinding.")
@click.option("--api-key-secret", default=None, help="A Secret with the API key under 'api-key' (HEADWATER__CLOUD__API_KEY).")
@click.option("--env", "-e", "env", multiple=True, help="KEY=VALUE for the agent's environment (repeat).")
@click.option("--image-pull-secret", "image_pull_secrets", multiple=True, help="An image pull secret for the agent's image (repeat).")
@click.option("--output", "-o", type=click.Choice(["yaml", "json"]), default="yaml", show_default=True)
def agent_manifest_command(namespace: str, labels: tuple[str, ...], api: str | None, image: str, name: str,
                           api_key_secret: str | None, env: tuple[str, ...], image_pull_secrets: tuple[str, ...], output: str) -> None:
    """Print the agent's Deployment, ServiceAccount, Role and RoleBinding (pipe it to `kubectl apply -f -`)."""
    from headwater_k8s.manifest import agent_manifest, to_yaml

    if api is None:
        from headwater.plugins import get_config

        api = str(get_config().cloud.api)
    variables = {}
    for item in env:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{item!r} is not KEY=VALUE.", param_hint="--env")
        variables[key] = value
    try:
        objects = agent_manifest(namespace=namespace, labels=labels, api=api, image=image, name=name,
                                 api_key_secret=api_key_secret, env=variables, image_pull_secrets=image_pull_secrets)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    if output == "json":
        click.echo(json.dumps({"apiVersion": "v1", "kind": "List", "items": objects}, indent=2))
    else:
        click.echo(to_yaml(objects), nl=False)
