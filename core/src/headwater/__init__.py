"""headwater: workflow orchestration for Python.

Write tasks, compose them in ``with Flow("name") as flow:``, run them with ``flow.run()``.
"""

from headwater import executors, signals, states, triggers  # noqa: I001  (submodules as attributes)
from headwater._version import __version__
from headwater.client import Client
from headwater.core.apply_map import apply_map
from headwater.core.edge import flatten, mapped, unmapped
from headwater.core.flow import CycleError, Flow, FlowValidationError
from headwater.core.parameter import Parameter
from headwater.core.resource_manager import ResourceManager, resource_manager
from headwater.core.task import Task, TaskCallError, tags, task
from headwater.tasks.control_flow import case
from headwater.utilities.context import context
from headwater.utilities.logging import configure_logging, get_logger

__all__ = [
    "__version__",
    "Flow",
    "Client",
    "Task",
    "task",
    "Parameter",
    "unmapped",
    "flatten",
    "mapped",
    "case",
    "context",
    "states",
    "signals",
    "triggers",
    "executors",
    "get_logger",
    "configure_logging",
    "CycleError",
    "FlowValidationError",
    "TaskCallError",
    "tags",
    "apply_map",
    "resource_manager",
    "ResourceManager",
]

_LAZY_SUBMODULES = frozenset(
    {"config", "secrets", "results", "schedules", "storage", "environments", "serialization", "plugins",
     "tasks", "run_configs", "spec", "testing", "backend", "engine"}
)


def __getattr__(name: str) -> object:
    """Import submodules on first attribute access (``headwater.storage.Local``) to keep ``import headwater`` light."""
    if name in _LAZY_SUBMODULES:
        import importlib

        return importlib.import_module(f"headwater.{name}")
    raise AttributeError(f"module 'headwater' has no attribute {name!r}")

