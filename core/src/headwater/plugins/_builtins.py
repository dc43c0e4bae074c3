"""The core's own implementations, registered through the same hooks as any plugin.

They are ``tryfirst``, so they register before every plugin and a plugin registering the same
name overrides them (no ``replace=True`` needed to override a built-in).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from headwater.plugins._registry import Registrar

hookimpl = pluggy.HookimplMarker("headwater")


@hookimpl(tryfirst=True)
def register_storage(register: Registrar) -> None:
    register("headwater.storage.local:Local", "Local")
    register("headwater.storage.module:Module", "Module")
    register("headwater.storage.filesystem:FileSystem", "FileSystem")


@hookimpl(tryfirst=True)
def register_environments(register: Registrar) -> None:
    register("headwater.environments.local:LocalEnvironment", "LocalEnvironment")
    register("headwater.environments.subprocess:SubprocessEnvironment", "SubprocessEnvironment")
    register("headwater.run_configs:LocalRun", "LocalRun")
    register("headwater.run_configs:UniversalRun", "UniversalRun")


@hookimpl(tryfirst=True)
def register_executors(register: Registrar) -> None:
    register("headwater.executors.local:LocalExecutor", "LocalExecutor")
    register("headwater.executors.pool:ThreadExecutor", "ThreadExecutor")
    register("headwater.executors.pool:ProcessExecutor", "ProcessExecutor")


@hookimpl(tryfirst=True)
def register_results(register: Registrar) -> None:
    register("headwater.results:Result", "Result")
    register("headwater.results.default:DefaultResult", "DefaultResult")
    for name in ("PrefectResult", "ConstantResult", "SecretResult"):  # Prefect 1's, in headwater.engine.results
        register(f"headwater.engine.results:{name}", name)
    for name in ("GCSResult", "AzureResult"):  # on fsspec: gcsfs / adlfs when used
        register(f"headwater.results.cloud:{name}", name)


@hookimpl(tryfirst=True)
def register_serializers(register: Registrar) -> None:
    for name in ("PickleSerializer", "JSONSerializer", "TextSerializer", "BytesSerializer", "DateTimeSerializer",
                 "PandasSerializer", "CompressedSerializer"):
        register(f"headwater.results.serializers:{name}", name)


@hookimpl(tryfirst=True)
def register_schedules(register: Registrar) -> None:
    register("headwater.schedules:Schedule", "Schedule")


@hookimpl(tryfirst=True)
def register_clocks(register: Registrar) -> None:
    for name in ("IntervalClock", "CronClock", "DatesClock", "RRuleClock"):
        register(f"headwater.schedules.clocks:{name}", name)


@hookimpl(tryfirst=True)
def register_schedule_filters(register: Registrar) -> None:
    for name in ("IsWeekday", "IsWeekend", "IsMonthStart", "IsMonthEnd", "AtTime", "BetweenTimes", "OnDate", "BetweenDates",
                 "BetweenDatetimes", "OnDatetime"):
        register(f"headwater.schedules.filters:{name}", name)
    for name in ("Add", "NextWeekday"):  # adjustments share the filters' registry (Schedule(adjustments=...))
        register(f"headwater.schedules.adjustments:{name}", name)


@hookimpl(tryfirst=True)
def register_commands(cli: Any) -> None:
    from headwater.cli.lazy import LazyCommand

    cli.add_command(LazyCommand("spec", "headwater.cli.spec:spec", "Declarative flow specs: submit, show, worker."))
    cli.add_command(LazyCommand("config", "headwater.cli.config:config", "Show the effective configuration."))
