"""Hook specifications: the extension points of headwater (declarations only).

A plugin is a module or object with functions marked ``@headwater.plugins.hookimpl`` whose
names match the hooks below, registered through the ``headwater`` entry-point group::

    [project.entry-points.headwater]
    s3 = "headwater_s3.plugin"

Every ``register_*`` hook (but ``register_commands``) receives one
:class:`~headwater.plugins.Registrar`, called as
``register(obj_or_"module:attr", name=None, *, replace=False)``. The hooks are called through
``pm.hook`` the first time their registry is used; their results are ignored. Built-ins
register first (``tryfirst``), so a plugin registering the same name overrides a built-in;
taking over another plugin's name needs ``replace=True``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    import click

    from headwater.core.flow import Flow
    from headwater.core.task import Task
    from headwater.plugins._registry import Registrar
    from headwater.states import State

hookspec = pluggy.HookspecMarker("headwater")


@hookspec
def register_storage(register: Registrar) -> None:
    """Add :class:`~headwater.plugins.Storage` classes.

    :param register: ``register("pkg.module:MyStorage", "MyStorage")``; the name is the
        ``"type"`` tag in serialized storage and the name ``from headwater.storage import ...``
        resolves.

    Called when the storage registry is first used (serialization, ``headwater plugins``).
    """


@hookspec
def register_environments(register: Registrar) -> None:
    """Add :class:`~headwater.plugins.Environment` (run config) classes.

    :param register: ``register("pkg.module:DockerRun", "DockerRun")``; agents look
        environments up by the ``"type"`` tag of a flow's run config, and
        ``from headwater.run_configs import ...`` resolves the name.
    """


@hookspec
def register_executors(register: Registrar) -> None:
    """Add :class:`~headwater.plugins.Executor` classes.

    :param register: ``register("pkg.module:DaskExecutor", "DaskExecutor")``; used by
        serialized flows, ``--executor`` options and ``from headwater.executors import ...``.
    """


@hookspec
def register_results(register: Registrar) -> None:
    """Add :class:`~headwater.plugins.Result` classes (where task results are checkpointed).

    :param register: ``register("pkg.module:S3Result", "S3Result")``; also resolves
        ``from headwater.results import ...``.
    """


@hookspec
def register_serializers(register: Registrar) -> None:
    """Add :class:`~headwater.plugins.Serializer` classes (the bytes of a result).

    :param register: ``register("pkg.module:ParquetSerializer", "ParquetSerializer")``.
    """


@hookspec
def register_schedules(register: Registrar) -> None:
    """Add schedule classes (serialized with a flow's metadata).

    :param register: ``register("pkg.module:MySchedule", "MySchedule")``.
    """


@hookspec
def register_clocks(register: Registrar) -> None:
    """Add clock classes (what emits a schedule's run times).

    :param register: ``register("pkg.module:RRuleClock", "RRuleClock")``.
    """


@hookspec
def register_schedule_filters(register: Registrar) -> None:
    """Add schedule filter classes (which run times a schedule keeps).

    :param register: ``register("pkg.module:IsHoliday", "IsHoliday")``.
    """


@hookspec
def register_client_resources(register: Registrar) -> None:
    """Add nouns to :class:`headwater.Client`.

    :param register: ``register("pkg.module:FlowResource", "flow")``; ``client.flow(...)``
        then builds that resource.
    """


@hookspec
def register_task_types(register: Registrar) -> None:
    """Add ``task_type`` handlers for declarative flow specs.

    :param register: ``register(handler_or_"module:function", "my_type")``; a handler is
        ``handler(task, ctx)`` (see :mod:`headwater.spec.task_types`).
    """


@hookspec
def register_config_sections(register: Registrar) -> None:
    """Add typed configuration sections (``[name]`` in config.toml, ``HEADWATER__NAME__KEY``).

    :param register: ``register(MySection, "mysection", extra_keys="warn")`` with an attrs
        class (or ``"module:Class"``); mark secret fields with ``secret_field()``.

    Called when the configuration is first loaded.
    """


@hookspec
def register_types(register: Any) -> None:
    """Deprecated: use ``register_results``, ``register_serializers``, ``register_schedules``...

    :param register: ``register(kind, obj_or_"module:Class", name=None)``; ``kind`` names the
        registry. Still called, with a warning in ``headwater plugins``.
    """


@hookspec
def register_commands(cli: click.Group) -> None:
    """Add click commands or groups to the ``headwater`` command line.

    :param cli: the ``headwater`` group: ``cli.add_command(LazyCommand("k8s", "pkg.cli:k8s", "help"))``
        keeps ``headwater --help`` from importing the command's module.

    Called once when the CLI starts.
    """


@hookspec
def extend_command(name: str, command: click.Command) -> None:
    """Add options to one of the core's commands, when it is first loaded.

    :param name: the command's name (``run``).
    :param command: the click command; append ``click.Option`` objects to ``command.params``.

    Values of added options reach :func:`run_target` (for ``headwater run``). The cloud-api
    plugin adds ``--name``, ``--project``, ``--label`` and ``--watch`` to ``headwater run`` this way.
    """


@hookspec(firstresult=True)
def run_target(target: str | None, parameters: dict[str, Any], options: dict[str, Any]) -> int | None:
    """Run what ``headwater run`` was asked to run, if the options added by this plugin say it is ours.

    :param target: the TARGET argument (a flow file, ``file.py:flow``, a spec), or None.
    :param parameters: the ``--param KEY=VALUE`` values, parsed.
    :param options: the values of every option plugins added with :func:`extend_command`.
    :return: the exit code when this plugin ran it, else None (the core runs TARGET locally).
    """


@hookspec(firstresult=True)
def get_secret(name: str) -> str | None:
    """Return the value of secret ``name``, or None if this plugin does not know it.

    :param name: the secret's name, as in ``Secret("GITHUB_ACCESS_TOKEN")``.

    Called by ``Secret(name).get()`` after the environment and the config file; the first
    non-None result wins.
    """


@hookspec
def before_flow_run(flow: Flow, parameters: dict[str, Any], context: dict[str, Any]) -> None:
    """Called in the flow-run process just before a flow run starts (tracing, metrics).

    :param flow: the flow about to run.
    :param parameters: the run's parameter values.
    :param context: the run's context (read it; changes are not guaranteed to apply).
    """


@hookspec
def after_flow_run(flow: Flow, state: State) -> None:
    """Called in the flow-run process after a flow run ends.

    :param flow: the flow that ran.
    :param state: its final state.
    """


@hookspec
def before_task_run(task: Task, map_index: int | None, context: dict[str, Any]) -> None:
    """Called by the engine (in the flow-run process) when a task run is submitted.

    :param task: the task.
    :param map_index: the child's index for a mapped task run, else None.
    :param context: the task run's context.
    """


@hookspec
def after_task_run(task: Task, map_index: int | None, state: State) -> None:
    """Called by the engine (in the flow-run process) when a task run attempt ends.

    :param task: the task.
    :param map_index: the child's index for a mapped task run, else None.
    :param state: the attempt's state.
    """
