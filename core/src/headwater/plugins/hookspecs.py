"""Hook specifications: the extension points of headwater (declarations only).

A plugin is a module or object with functions marked ``@headwater.plugins.hookimpl`` whose
names match the hooks below, registered through the ``headwater`` entry-point group::

    [project.entry-points.headwater]
    s3 = "headwater_s3.plugin"

``register`` hooks are called once per registry, when it is first used; their results are
ignored. Built-ins register first, so a plugin registering the same name overrides them.
"""

from __future__ import annotations

from typing import Any

import pluggy

hookspec = pluggy.HookspecMarker("headwater")


@hookspec
def register_storage(register: Any) -> None:
    """Add Storage classes: call ``register(cls_or_"module:Class", name=None)`` for each.

    Called when the storage registry is first used (serialization, ``headwater plugins``).
    The name is the ``"type"`` tag in serialized storage. Results are ignored.
    """


@hookspec
def register_environments(register: Any) -> None:
    """Add Environment (run config) classes: ``register(cls_or_"module:Class", name=None)``.

    Called when the environment registry is first used. Agents look environments up here by
    the ``"type"`` tag of a flow's run config. Results are ignored.
    """


@hookspec
def register_executors(register: Any) -> None:
    """Add Executor classes: ``register(cls_or_"module:Class", name=None)``.

    Called when the executor registry is first used (serialized flows, ``--executor`` options).
    Results are ignored.
    """


@hookspec
def register_client_resources(register: Any) -> None:
    """Add nouns to :class:`headwater.Client`: ``register(cls_or_"module:Class", name)``.

    ``client.<name>(...)`` then builds that resource. Called when the client registry is
    first used. Results are ignored.
    """


@hookspec
def register_task_types(register: Any) -> None:
    """Add ``task_type`` handlers for declarative flow specs: ``register(name, handler_or_"module:attr")``.

    Called when the task-type registry is first used. Results are ignored.
    """


@hookspec
def register_types(register: Any) -> None:
    """Add other serializable attrs classes (schedules, clocks, results, serializers...).

    ``register(kind, cls_or_"module:Class", name=None)``; ``kind`` names the registry.
    Called when a registry of that kind is first used. Results are ignored.
    """


@hookspec
def register_config_sections(register: Any) -> None:
    """Add typed configuration sections: ``register(section_name, attrs_class)``.

    Called when the configuration is first loaded. Results are ignored.
    """


@hookspec
def register_commands(cli: Any) -> None:
    """Add click commands or groups to the ``headwater`` command line: ``cli.add_command(cmd)``.

    Called once when the CLI starts. Results are ignored.
    """


@hookspec(firstresult=True)
def get_secret(name: str) -> str | None:
    """Return the value of secret ``name``, or None if this plugin does not know it.

    Called by ``Secret(name).get()`` after the environment and the config file; the first
    non-None result wins.
    """


@hookspec
def before_flow_run(flow: Any, parameters: dict[str, Any], context: dict[str, Any]) -> None:
    """Called in the flow-run process just before a flow run starts (tracing, metrics). Results are ignored."""


@hookspec
def after_flow_run(flow: Any, state: Any) -> None:
    """Called in the flow-run process after a flow run ends, with its final state. Results are ignored."""


@hookspec
def before_task_run(task: Any, map_index: int | None, context: dict[str, Any]) -> None:
    """Called by the engine (in the flow-run process) when a task run is submitted. Results are ignored."""


@hookspec
def after_task_run(task: Any, map_index: int | None, state: Any) -> None:
    """Called by the engine (in the flow-run process) when a task run attempt ends, with its state. Results are ignored."""
