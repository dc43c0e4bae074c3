"""Testing tools for plugin authors (and headwater's own tests).

- :mod:`headwater.testing.pytest_plugin`: fixtures ``headwater_plugin_manager``,
  ``headwater_converter``, ``headwater_home`` (loaded by the ``pytest11`` entry point);
- :mod:`headwater.testing.conformance`: :class:`StorageConformance` and
  :class:`EnvironmentConformance`, the tests every storage and environment must pass;
- :mod:`headwater.testing.flows`: small flows the kits store and run;
- :mod:`headwater.testing.distributions`: build plugin distributions into a temporary
  directory and run ``headwater`` with them on ``PYTHONPATH``;
- :mod:`headwater.testing.processes`: ``headwater server start`` and ``headwater agent start``
  as child processes on 127.0.0.1 (:class:`ServerProcess`, :class:`AgentProcess`).

Names are imported lazily, so ``import headwater.testing`` (done by pytest when it loads the
plugin, in every test session of an environment with headwater) stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "StorageConformance",
    "EnvironmentConformance",
    "ExecutorConformance",
    "sample_flow",
    "failing_flow",
    "slow_flow",
    "install_distributions",
    "run_headwater",
    "run_python",
    "plugin_env",
    "ServerProcess",
    "AgentProcess",
    "free_port",
    "wait_for",
]

_LAZY = {
    "StorageConformance": "headwater.testing.conformance",
    "EnvironmentConformance": "headwater.testing.conformance",
    "ExecutorConformance": "headwater.testing.conformance",
    "sample_flow": "headwater.testing.flows",
    "failing_flow": "headwater.testing.flows",
    "slow_flow": "headwater.testing.flows",
    "install_distributions": "headwater.testing.distributions",
    "run_headwater": "headwater.testing.distributions",
    "run_python": "headwater.testing.distributions",
    "plugin_env": "headwater.testing.distributions",
    "ServerProcess": "headwater.testing.processes",
    "AgentProcess": "headwater.testing.processes",
    "free_port": "headwater.testing.processes",
    "wait_for": "headwater.testing.processes",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'headwater.testing' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted(__all__)
