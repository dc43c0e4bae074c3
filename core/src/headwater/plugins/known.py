"""Type names that headwater's own plugin distributions provide, for exact install hints.

Like fsspec's ``known_implementations``: when a name is not registered, this table says
which distribution provides it, so the error says exactly what to install. Names match
exactly (``DigitalOceanSpaces`` gets no hint); protocols are fsspec URL schemes.
"""

from __future__ import annotations

__all__ = ["KNOWN_IMPLEMENTATIONS", "KNOWN_PROTOCOLS", "known_distribution", "protocol_hint"]

KNOWN_IMPLEMENTATIONS: dict[str, dict[str, str]] = {
    "storage": {
        "GitHub": "headwater-github",
        "Git": "headwater-github",
        "S3": "headwater-s3",
        "Docker": "headwater-docker",
    },
    "environment": {
        "DockerRun": "headwater-docker",
        "DockerEnvironment": "headwater-docker",
        "KubernetesRun": "headwater-k8s",
        "KubernetesJobEnvironment": "headwater-k8s",
    },
    "executor": {
        "DaskExecutor": "headwater-dask",
        "LocalDaskExecutor": "headwater-dask",
    },
    "result": {
        "S3Result": "headwater-s3",
    },
    "client_resource": {
        "flow": "headwater-cloud-api",
        "flow_run": "headwater-cloud-api",
        "project": "headwater-cloud-api",
        "kv": "headwater-cloud-api",
    },
    "command": {
        "server": "headwater-cloud-api",
        "agent": "headwater-cloud-api",
        "register": "headwater-cloud-api",
        "execute": "headwater-cloud-api",
        "flow-run": "headwater-cloud-api",
        "flow": "headwater-cloud-api",
        "project": "headwater-cloud-api",
        "kv": "headwater-cloud-api",
        "k8s": "headwater-k8s",
    },
    "run_option": {
        "--name": "headwater-cloud-api",
        "--project": "headwater-cloud-api",
        "--watch": "headwater-cloud-api",
        "--label": "headwater-cloud-api",
    },
    "register_option": {
        "--pin": "headwater-github",
    },
}
"""``{registry kind: {exact name: distribution}}``."""

KNOWN_PROTOCOLS: dict[str, str] = {
    "s3": "s3fs",
    "s3a": "s3fs",
    "gs": "gcsfs",
    "gcs": "gcsfs",
    "abfs": "adlfs",
    "az": "adlfs",
    "github": "headwater-github",
}
"""fsspec URL schemes and the distribution that implements each."""


def known_distribution(kind: str, name: str) -> str | None:
    """The distribution that provides ``name`` in registry ``kind``, if it is one of ours."""
    return KNOWN_IMPLEMENTATIONS.get(kind, {}).get(name)


def protocol_hint(protocol: str) -> str | None:
    """``pip install X`` for an fsspec protocol with a known implementation."""
    dist = KNOWN_PROTOCOLS.get(protocol)
    return f"pip install {dist}" if dist else None
