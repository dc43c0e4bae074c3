"""The plugin API: everything a plugin author imports from the core, and nothing else.

Write a plugin::

    from headwater.plugins import Registrar, hookimpl

    @hookimpl
    def register_storage(register: Registrar) -> None:
        register("my_package.storage:MyStorage")

and point an entry point at the module: ``[project.entry-points.headwater] my = "my_package.plugin"``.
Every ``register_*`` hook receives one :class:`Registrar`:
``register(obj_or_"module:attr", name=None, *, replace=False)``.

Plugins import only from this module (and the public user API: ``headwater.Flow``,
``headwater.task``, ``headwater.states``...). Its names are imported lazily, so importing it
stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

import pluggy

hookimpl = pluggy.HookimplMarker("headwater")
"""Marks a plugin's hook implementations."""

hookspec = pluggy.HookspecMarker("headwater")
"""Marks hook specifications (used by :mod:`headwater.plugins.hookspecs`)."""

_LAZY: dict[str, str] = {
    # the plugin system
    "PLUGIN_API_VERSION": "headwater.plugins._manager",
    "PluginRecord": "headwater.plugins._manager",
    "get_plugin_manager": "headwater.plugins._manager",
    "reset_plugin_manager": "headwater.plugins._manager",
    "plugin_records": "headwater.plugins._manager",
    "register_plugin": "headwater.plugins._manager",
    "unregister_plugin": "headwater.plugins._manager",
    "registry": "headwater.plugins._manager",
    "lifecycle_hooks": "headwater.plugins._manager",
    "call_register_hook": "headwater.plugins._manager",
    "Registry": "headwater.plugins._registry",
    "RegistrationConflictError": "headwater.plugins._registry",
    "Registrar": "headwater.plugins._registry",
    "RegistryKind": "headwater.plugins._registry",
    "UnknownTypeError": "headwater.plugins._registry",
    "import_string": "headwater.plugins._registry",
    "install_hint": "headwater.plugins._registry",
    "plugin_attribute": "headwater.plugins._registry",
    "import_plugin_module": "headwater.plugins._registry",
    "known_distribution": "headwater.plugins.known",
    # storage
    "Storage": "headwater.storage.base",
    "FlowNotInStorageError": "headwater.storage.base",
    "code_hash": "headwater.storage.base",
    "content_location": "headwater.storage.base",
    "slugify": "headwater.storage.base",
    "env_runner_variables": "headwater.storage.base",
    "FlowLoadError": "headwater.storage.pickling",
    "dumps_flow": "headwater.storage.pickling",
    "loads_flow": "headwater.storage.pickling",
    "script_source": "headwater.storage.script",
    "script_path": "headwater.storage.script",
    "source_hash": "headwater.storage.script",
    "flow_from_script": "headwater.storage.script",
    "relative_path": "headwater.storage.script",
    "load_flows_from_file": "headwater.utilities.flow_files",
    "load_flows_from_module": "headwater.utilities.flow_files",
    "atomic_write": "headwater.utilities.files",
    "DagLayout": "headwater.utilities.visualization",
    # environments and run configs
    "Environment": "headwater.environments.base",
    "RunHandle": "headwater.environments.base",
    "labels_converter": "headwater.environments.base",
    "SubprocessEnvironment": "headwater.environments.subprocess",
    "env_converter": "headwater.environments.subprocess",
    "RUN_FROM_ENV_MODULE": "headwater.environments.subprocess",
    "RunConfig": "headwater.run_configs",
    # executors
    "Executor": "headwater.executors.base",
    "FIRST_COMPLETED": "headwater.executors.base",
    "ALL_COMPLETED": "headwater.executors.base",
    "install_log_capture": "headwater.executors.worker_logs",
    "collecting_logs": "headwater.executors.worker_logs",
    "portable_record": "headwater.executors.worker_logs",
    "replay_logs": "headwater.executors.worker_logs",
    # results and serializers
    "Result": "headwater.results.result",
    "ResultLocationError": "headwater.results.result",
    "default_result_key": "headwater.results.result",
    "DefaultResult": "headwater.results.default",
    "not_persisted_reason": "headwater.results.default",
    "NONE_MARK": "headwater.results.default",
    "NOT_PERSISTED_MARK": "headwater.results.default",
    "Serializer": "headwater.results.serializers",
    "PickleSerializer": "headwater.results.serializers",
    "ResultSerializationError": "headwater.results.serializers",
    # the authoring model
    "Task": "headwater.core.task",
    "Flow": "headwater.core.flow",
    "FlowGraph": "headwater.core.flow",
    "Parameter": "headwater.core.parameter",
    "Edge": "headwater.core.edge",
    # serialization
    "to_dict": "headwater.serialization.converter",
    "from_dict": "headwater.serialization.converter",
    "canonical_json": "headwater.serialization.converter",
    "SerializationError": "headwater.serialization.converter",
    # configuration and secrets
    "get_config": "headwater.config",
    "headwater_home": "headwater.config",
    "secret_field": "headwater.config.sections",
    "ConfigError": "headwater.config.errors",
    "Secret": "headwater.secrets",
    "SecretNotFoundError": "headwater.secrets",
    "mask_tree": "headwater.config.masking",
    "mask_url": "headwater.config.masking",
    # CLI
    "LazyCommand": "headwater.cli.lazy",
    "ExtensibleCommand": "headwater.cli.lazy",
    # logging
    "get_logger": "headwater.utilities.logging",
    # conformance kits
    "StorageConformance": "headwater.testing.conformance",
    "EnvironmentConformance": "headwater.testing.conformance",
    "ExecutorConformance": "headwater.testing.conformance",
}

__all__ = [
    "hookimpl",
    "hookspec",
    "PLUGIN_API_VERSION",
    "PluginRecord",
    "get_plugin_manager",
    "reset_plugin_manager",
    "plugin_records",
    "register_plugin",
    "unregister_plugin",
    "registry",
    "lifecycle_hooks",
    "call_register_hook",
    "Registry",
    "RegistrationConflictError",
    "Registrar",
    "RegistryKind",
    "UnknownTypeError",
    "import_string",
    "install_hint",
    "plugin_attribute",
    "import_plugin_module",
    "known_distribution",
    "Storage",
    "FlowNotInStorageError",
    "code_hash",
    "content_location",
    "slugify",
    "env_runner_variables",
    "FlowLoadError",
    "dumps_flow",
    "loads_flow",
    "script_source",
    "script_path",
    "source_hash",
    "flow_from_script",
    "relative_path",
    "load_flows_from_file",
    "load_flows_from_module",
    "atomic_write",
    "DagLayout",
    "Environment",
    "RunHandle",
    "labels_converter",
    "SubprocessEnvironment",
    "env_converter",
    "RUN_FROM_ENV_MODULE",
    "RunConfig",
    "Executor",
    "FIRST_COMPLETED",
    "ALL_COMPLETED",
    "install_log_capture",
    "collecting_logs",
    "portable_record",
    "replay_logs",
    "Result",
    "ResultLocationError",
    "default_result_key",
    "DefaultResult",
    "not_persisted_reason",
    "NONE_MARK",
    "NOT_PERSISTED_MARK",
    "Serializer",
    "PickleSerializer",
    "ResultSerializationError",
    "Task",
    "Flow",
    "FlowGraph",
    "Parameter",
    "Edge",
    "to_dict",
    "from_dict",
    "canonical_json",
    "SerializationError",
    "get_config",
    "headwater_home",
    "secret_field",
    "ConfigError",
    "Secret",
    "SecretNotFoundError",
    "mask_tree",
    "mask_url",
    "LazyCommand",
    "ExtensibleCommand",
    "get_logger",
    "StorageConformance",
    "EnvironmentConformance",
    "ExecutorConformance",
]

if TYPE_CHECKING:  # pragma: no cover - static names for type checkers
    from headwater.cli.lazy import ExtensibleCommand, LazyCommand
    from headwater.config import get_config, headwater_home
    from headwater.config.errors import ConfigError
    from headwater.config.masking import mask_tree, mask_url
    from headwater.config.sections import secret_field
    from headwater.core.edge import Edge
    from headwater.core.flow import Flow, FlowGraph
    from headwater.core.parameter import Parameter
    from headwater.core.task import Task
    from headwater.environments.base import Environment, RunHandle, labels_converter
    from headwater.environments.subprocess import RUN_FROM_ENV_MODULE, SubprocessEnvironment, env_converter
    from headwater.executors.base import ALL_COMPLETED, FIRST_COMPLETED, Executor
    from headwater.executors.worker_logs import collecting_logs, install_log_capture, portable_record, replay_logs
    from headwater.plugins._manager import (
        PLUGIN_API_VERSION,
        PluginRecord,
        call_register_hook,
        get_plugin_manager,
        lifecycle_hooks,
        plugin_records,
        register_plugin,
        registry,
        reset_plugin_manager,
        unregister_plugin,
    )
    from headwater.plugins._registry import (
        Registrar,
        RegistrationConflictError,
        Registry,
        RegistryKind,
        UnknownTypeError,
        import_plugin_module,
        import_string,
        install_hint,
        plugin_attribute,
    )
    from headwater.plugins.known import known_distribution
    from headwater.results.default import NONE_MARK, NOT_PERSISTED_MARK, DefaultResult, not_persisted_reason
    from headwater.results.result import Result, ResultLocationError, default_result_key
    from headwater.results.serializers import PickleSerializer, ResultSerializationError, Serializer
    from headwater.run_configs import RunConfig
    from headwater.secrets import Secret, SecretNotFoundError
    from headwater.serialization.converter import SerializationError, canonical_json, from_dict, to_dict
    from headwater.storage.base import (
        FlowNotInStorageError,
        Storage,
        code_hash,
        content_location,
        env_runner_variables,
        slugify,
    )
    from headwater.storage.pickling import FlowLoadError, dumps_flow, loads_flow
    from headwater.storage.script import flow_from_script, relative_path, script_path, script_source, source_hash
    from headwater.testing.conformance import EnvironmentConformance, ExecutorConformance, StorageConformance
    from headwater.utilities.files import atomic_write
    from headwater.utilities.flow_files import load_flows_from_file, load_flows_from_module
    from headwater.utilities.logging import get_logger
    from headwater.utilities.visualization import DagLayout


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'headwater.plugins' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
