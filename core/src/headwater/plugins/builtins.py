"""The core's own implementations, registered through the same hooks as any plugin (first)."""

from __future__ import annotations

from typing import Any

import pluggy

hookimpl = pluggy.HookimplMarker("headwater")


@hookimpl
def register_storage(register: Any) -> None:
    register("headwater.storage.local:Local", "Local")
    register("headwater.storage.module:Module", "Module")
    register("headwater.storage.filesystem:FileSystem", "FileSystem")


@hookimpl
def register_environments(register: Any) -> None:
    register("headwater.environments.local:LocalEnvironment", "LocalEnvironment")
    register("headwater.environments.subprocess:SubprocessEnvironment", "SubprocessEnvironment")
    register("headwater.run_configs:LocalRun", "LocalRun")
    register("headwater.run_configs:UniversalRun", "UniversalRun")


@hookimpl
def register_executors(register: Any) -> None:
    register("headwater.executors.local:LocalExecutor", "LocalExecutor")
    register("headwater.executors.pool:ThreadExecutor", "ThreadExecutor")
    register("headwater.executors.pool:ProcessExecutor", "ProcessExecutor")


@hookimpl
def register_types(register: Any) -> None:
    register("result", "headwater.results:Result", "Result")
    for name in ("PickleSerializer", "JSONSerializer", "TextSerializer", "BytesSerializer"):
        register("serializer", f"headwater.results.serializers:{name}", name)
    register("schedule", "headwater.schedules:Schedule", "Schedule")
    for name in ("IntervalClock", "CronClock", "DatesClock"):
        register("clock", f"headwater.schedules.clocks:{name}", name)
    for name in ("IsWeekday", "IsWeekend", "IsMonthStart", "IsMonthEnd", "AtTime", "BetweenTimes", "OnDate", "BetweenDates"):
        register("schedule_filter", f"headwater.schedules.filters:{name}", name)


@hookimpl
def register_commands(cli: Any) -> None:
    from headwater.cli.lazy import LazyCommand

    cli.add_command(LazyCommand("spec", "headwater.cli.spec:spec", "Declarative flow specs: submit, show, worker."))
    cli.add_command(LazyCommand("config", "headwater.cli.config:config", "Show the effective configuration."))
