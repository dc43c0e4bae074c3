"""headwater's pytest plugin: isolated plugin manager, converter and home directory for tests.

Loaded by the ``pytest11`` entry point ``headwater``, so it is there in every test session of
an environment where headwater is installed. Where headwater is only on ``PYTHONPATH``, load
it with ``-p headwater.testing.pytest_plugin`` (with the entry point installed too, add
``-p no:headwater`` first: pytest refuses one module under two names). It defines fixtures
only (none is autouse) and imports headwater lazily, so it costs nothing in test sessions
that do not use it.

- ``headwater_plugin_manager``: a fresh plugin manager with entry-point autoload disabled;
  returns a :class:`PluginHelper` to register plugins. Global plugin state is reset before
  and after the test.
- ``headwater_converter``: the serializer with those isolated registries (:class:`ConverterHelper`).
- ``headwater_home``: a temporary ``HEADWATER_HOME`` (flows, config) for the test.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

if "headwater.testing.conformance" not in sys.modules:  # rich assertion messages in the kits' tests
    pytest.register_assert_rewrite("headwater.testing.conformance")

__all__ = [
    "PluginHelper",
    "ConverterHelper",
    "isolated_plugins",
    "headwater_plugin_manager",
    "headwater_converter",
    "headwater_home",
]

_SWITCHES = ("HEADWATER_DISABLE_PLUGIN_AUTOLOAD", "HEADWATER_PLUGINS", "HEADWATER_BLOCKED_PLUGINS")


class PluginHelper:
    """What ``headwater_plugin_manager`` returns: register plugins and look at the result."""

    def __init__(self) -> None:
        self._cli_snapshot: tuple[dict[str, Any], bool] | None = None

    @property
    def pm(self) -> Any:
        """The (isolated) ``pluggy.PluginManager``."""
        from headwater.plugins import get_plugin_manager

        return get_plugin_manager()

    @property
    def hook(self) -> Any:
        """``pm.hook``: call hooks directly, e.g. ``hook.before_flow_run(...)``."""
        return self.pm.hook

    def register(self, plugin: Any, name: str | None = None) -> str:
        """Register a module, class or object with ``@hookimpl`` functions; returns its name."""
        from headwater.plugins import register_plugin

        return register_plugin(plugin, name=name)

    def unregister(self, name: str) -> None:
        from headwater.plugins import unregister_plugin

        unregister_plugin(name)

    def registry(self, kind: str) -> Any:
        """The registry of ``kind`` (``storage``, ``environment``, ``executor``...), filled on first use."""
        from headwater.plugins import registry

        return registry(kind)

    def records(self) -> list[Any]:
        """``PluginRecord``s as ``headwater plugins --all`` shows them."""
        from headwater.plugins import plugin_records

        return plugin_records()

    def invoke(self, *args: str) -> Any:
        """Run the ``headwater`` command line in-process (plugin commands included); a click ``Result``."""
        from click.testing import CliRunner

        from headwater.cli import main as cli_main

        if self._cli_snapshot is None:
            self._cli_snapshot = (dict(cli_main.cli.commands), cli_main._plugins_loaded)
            cli_main._plugins_loaded = False
        cli_main.load_plugin_commands()
        return CliRunner().invoke(cli_main.cli, list(args), prog_name="headwater")

    def _restore_cli(self) -> None:
        if self._cli_snapshot is None:
            return
        from headwater.cli import main as cli_main

        commands, loaded = self._cli_snapshot
        cli_main.cli.commands.clear()
        cli_main.cli.commands.update(commands)
        cli_main._plugins_loaded = loaded


class ConverterHelper:
    """What ``headwater_converter`` returns: the serializer, working on the isolated registries."""

    @property
    def converter(self) -> Any:
        """The cattrs converter every headwater object goes through."""
        from headwater.serialization import converter

        return converter

    def to_dict(self, obj: Any) -> Any:
        from headwater.serialization import to_dict

        return to_dict(obj)

    def from_dict(self, data: Any, cls_or_kind: type | str) -> Any:
        from headwater.serialization import from_dict

        return from_dict(data, cls_or_kind)

    def dumps(self, obj: Any) -> str:
        from headwater.serialization import dumps

        return dumps(obj)

    def round_trip(self, obj: Any) -> Any:
        """``obj`` through JSON and back (restored by its ``"type"`` tag where it has one)."""
        data = json.loads(json.dumps(self.to_dict(obj)))
        return self.from_dict(data, type(obj))


@contextlib.contextmanager
def isolated_plugins() -> Iterator[PluginHelper]:
    """A fresh plugin manager with entry-point autoload disabled, for the ``with`` block.

    Global plugin state (manager, registries, plugin CLI commands) is reset on entry and on
    exit, and the plugin switches (``HEADWATER_DISABLE_PLUGIN_AUTOLOAD``, ``HEADWATER_PLUGINS``,
    ``HEADWATER_BLOCKED_PLUGINS``) are restored.
    """
    from headwater.plugins import reset_plugin_manager

    saved = {name: os.environ.get(name) for name in _SWITCHES}
    os.environ["HEADWATER_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    os.environ.pop("HEADWATER_PLUGINS", None)
    os.environ.pop("HEADWATER_BLOCKED_PLUGINS", None)
    reset_plugin_manager()
    helper = PluginHelper()
    try:
        yield helper
    finally:
        helper._restore_cli()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        reset_plugin_manager()


@pytest.fixture
def headwater_plugin_manager() -> Iterator[PluginHelper]:
    """A fresh plugin manager (built-ins only: entry-point autoload disabled) for one test."""
    with isolated_plugins() as helper:
        yield helper


@pytest.fixture
def headwater_converter(headwater_plugin_manager: PluginHelper) -> Iterator[ConverterHelper]:
    """The serializer with isolated registries; per-class caches made during the test are dropped."""
    from headwater.serialization import converter as module

    caches = [getattr(module, name) for name in ("_unstructure_fns", "_structure_fns") if hasattr(module, name)]
    before = [dict(cache) for cache in caches]
    try:
        yield ConverterHelper()
    finally:
        for cache, saved in zip(caches, before, strict=True):
            cache.clear()
            cache.update(saved)


@pytest.fixture
def headwater_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A temporary ``HEADWATER_HOME`` (created, empty) for one test, with no ``HEADWATER__*``
    variables from the outer environment (so the user's own configuration cannot leak in)."""
    import os

    for var in list(os.environ):
        if var.upper().startswith("HEADWATER__"):
            monkeypatch.delenv(var)
    home = tmp_path / "headwater-home"
    home.mkdir()
    monkeypatch.setenv("HEADWATER_HOME", str(home))
    return home
