"""The plugin: registered names, the [k8s] section, an import-light plugin module, the agent manifest."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import kubernetes_validate
import pytest
import yaml

from fake_k8s import K8S_VERSION
from headwater.testing.distributions import run_headwater


def test_registered_names_and_lazy_import() -> None:
    code = ("import sys, headwater_k8s.plugin; from headwater.plugins import registry; "
            "print(registry('environment').name_for(__import__('headwater_k8s.run_config').run_config.KubernetesRun), "
            "'kubernetes' in sys.modules)")
    # a fresh interpreter: importing the plugin module must not import the kubernetes client
    done = subprocess.run([sys.executable, "-c", "import sys, headwater_k8s.plugin; print('kubernetes' in sys.modules)"],
                          capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split()[0] == "KubernetesRun"
    from headwater.run_configs import KubernetesRun

    assert KubernetesRun.__module__ == "headwater_k8s.run_config"


def test_config_section(monkeypatch: pytest.MonkeyPatch) -> None:
    from headwater_k8s.config import K8sSection, k8s_settings

    monkeypatch.setenv("HEADWATER__K8S__NAMESPACE", "flows")
    monkeypatch.setenv("HEADWATER__K8S__START_TIMEOUT", "42")
    monkeypatch.setenv("HEADWATER__K8S__IN_CLUSTER", "true")
    settings = k8s_settings()
    assert isinstance(settings, K8sSection)
    assert (settings.namespace, settings.start_timeout, settings.in_cluster) == ("flows", 42.0, True)
    with pytest.raises(ValueError, match="start_timeout"):
        K8sSection(start_timeout=0)


def test_plugins_lists_it() -> None:
    done = run_headwater(["plugins", "--json"])
    assert done.returncode == 0, done.stderr
    rows = {row["name"]: row for row in json.loads(done.stdout)}
    assert rows["k8s"]["distribution"] == "headwater-k8s" and rows["k8s"]["status"] == "loaded"
    assert rows["k8s"]["tags"]["environment"] == ["KubernetesRun"]


def _manifest(*args: str) -> list[dict[str, Any]]:
    done = run_headwater(["k8s", "agent-manifest", *args])
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def test_agent_manifest_is_valid_with_least_privilege() -> None:
    objects = _manifest("--namespace", "flows", "--label", "k8s", "--label", "gpu", "--api", "https://hw.example/graphql",
                        "--api-key-secret", "headwater-api-key", "--env", "HEADWATER__K8S__START_TIMEOUT=600")
    for obj in objects:
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
    kinds = [o["kind"] for o in objects]
    assert kinds == ["ServiceAccount", "Role", "RoleBinding", "Deployment"]
    assert all(o["metadata"]["namespace"] == "flows" for o in objects)
    role = objects[1]
    verbs = {(g, r): set(rule["verbs"]) for rule in role["rules"] for g in rule["apiGroups"] for r in rule["resources"]}
    assert verbs == {("batch", "jobs"): {"create", "get", "list", "delete"}, ("", "pods"): {"list"}, ("", "pods/log"): {"get"},
                     ("", "events"): {"list"}}
    assert not any("*" in rule["verbs"] or "*" in rule["resources"] for rule in role["rules"])
    binding = objects[2]
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "headwater-agent", "namespace": "flows"}]
    pod = objects[3]["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "headwater-agent"
    container = pod["containers"][0]
    assert container["args"] == ["agent", "start", "--name", "headwater-agent", "--label", "k8s", "--label", "gpu"]
    env = {e["name"]: e for e in container["env"]}
    assert env["HEADWATER__CLOUD__API"]["value"] == "https://hw.example/graphql"
    assert env["HEADWATER__K8S__IN_CLUSTER"]["value"] == "true" and env["HEADWATER__K8S__NAMESPACE"]["value"] == "flows"
    assert env["HEADWATER__CLOUD__API_KEY"]["valueFrom"] == {"secretKeyRef": {"name": "headwater-api-key", "key": "api-key"}}
    assert env["HEADWATER__K8S__START_TIMEOUT"]["value"] == "600"
    assert env["HEADWATER__K8S__API_KEY_SECRET"]["value"] == "headwater-api-key", "flow-run Jobs reference the Secret too"


def test_agent_manifest_json_and_errors() -> None:
    done = run_headwater(["k8s", "agent-manifest", "--api", "http://x/graphql", "-o", "json"])
    assert done.returncode == 0, done.stderr
    listing = json.loads(done.stdout)
    assert listing["kind"] == "List" and len(listing["items"]) == 4
    for obj in listing["items"]:
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
    done = run_headwater(["k8s", "agent-manifest", "--namespace", "Not_Valid", "--api", "http://x/graphql"])
    assert done.returncode != 0 and "RFC 1123" in done.stderr
