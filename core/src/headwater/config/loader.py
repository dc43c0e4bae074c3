"""Loading the configuration: ``config.toml`` in HEADWATER_HOME, then ``HEADWATER__*`` env vars, then explicit arguments.

Later sources win key by key (a deeper table is merged, a value replaces). Every value
remembers where it came from, so errors and ``headwater config show`` can say so.
"""

from __future__ import annotations

import copy
import os
import re
import threading
import tomllib
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from headwater.config import sections as _sections
from headwater.config._toml import format_key, parse_scalar
from headwater.config.errors import ConfigError, ConfigWarning
from headwater.config.masking import mask_tree

__all__ = [
    "ENV_PREFIX",
    "CONFIG_FILE_NAME",
    "Config",
    "Source",
    "headwater_home",
    "config_path",
    "env_var_name",
    "load_config",
    "get_config",
]

ENV_PREFIX = "HEADWATER__"
HOME_ENV_VAR = "HEADWATER_HOME"
CONFIG_FILE_NAME = "config.toml"
_SECRETS_PATH = ("context", "secrets")


def headwater_home(env: Mapping[str, str] | None = None) -> Path:
    """The headwater folder: ``$HEADWATER_HOME`` when set, else ``~/.headwater``."""
    env = os.environ if env is None else env
    value = env.get(HOME_ENV_VAR, "").strip()
    return Path(value).expanduser() if value else Path.home() / ".headwater"


def config_path(home: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None) -> Path:
    """The configuration file: ``<home>/config.toml``."""
    return (Path(home).expanduser() if home is not None else headwater_home(env)) / CONFIG_FILE_NAME


def env_var_name(*path: str) -> str:
    """The environment variable that sets ``path``: ``env_var_name("server", "port") == "HEADWATER__SERVER__PORT"``."""
    keep_case = tuple(p.lower() for p in path[:2]) == _SECRETS_PATH
    parts = [p if keep_case and i >= 2 else p.upper() for i, p in enumerate(path)]
    return ENV_PREFIX + "__".join(parts)


@attrs.frozen
class Source:
    """Where a value came from: ``kind`` is ``"file"``, ``"env"``, ``"argument"`` or ``"default"``."""

    kind: str
    detail: str = ""
    raw: str | None = attrs.field(default=None, repr=False, eq=False)
    """For env vars: the text of the variable (used when a str field receives a TOML number)."""

    def describe(self) -> str:
        """A phrase for error messages: ``the environment variable HEADWATER__SERVER__PORT``."""
        if self.kind == "file":
            return f"the file {self.detail}"
        if self.kind == "env":
            return f"the environment variable {self.detail}"
        if self.kind == "argument":
            return "an explicit argument"
        return "the default"

    def short(self) -> str:
        """A table cell for ``config show``."""
        if self.kind in ("file", "env"):
            return f"{self.kind} {self.detail}"
        return self.kind


DEFAULT_SOURCE = Source("default")


class Config:
    """The effective configuration: typed sections by attribute (``config.flows.run_on_schedule``), raw tables by key.

    ``config.raw`` holds the merged tables as read (file, env vars, arguments); ``config.source("server.port")``
    says where a value came from. Typed sections are built on first access, so a bad value in
    one section does not break code that reads another; :meth:`validate` builds them all.
    """

    def __init__(
        self,
        home: Path,
        raw: dict[str, Any],
        sources: dict[tuple[str, ...], Source],
        specs: Mapping[str, _sections.SectionSpec],
        plugins_loaded: bool = True,
    ) -> None:
        self.home = home
        self.path = home / CONFIG_FILE_NAME
        self.raw = raw
        self._sources = sources
        self._specs = dict(specs)
        self._plugins_loaded = plugins_loaded
        """False while plugins' sections are not registered yet: they are on the first use that needs them."""
        self._typed: dict[str, Any] = {}
        self._lock = threading.Lock()

    def _all_specs(self) -> dict[str, _sections.SectionSpec]:
        """Every section spec, plugins' included (loading the plugin manager if this config was built without it)."""
        if not self._plugins_loaded:
            _sections.load_plugin_sections()
            self._plugins_loaded = True
            fresh = _sections.registered_sections()
            with self._lock:
                for name, spec in fresh.items():
                    if self._specs.get(name) != spec:
                        self._specs[name] = spec
                        self._typed.pop(name, None)
        return self._specs

    # --- reading ------------------------------------------------------------------------

    @property
    def section_names(self) -> list[str]:
        """Typed sections (registered) first, then the other tables present, each sorted."""
        specs = self._all_specs()
        return sorted(specs) + sorted(k for k in self.raw if k not in specs)

    def section(self, name: str) -> Any:
        """``[name]``: an attrs instance for a typed section, the raw value otherwise (KeyError when absent)."""
        spec = self._specs.get(name)
        if spec is None and not self._plugins_loaded:
            spec = self._all_specs().get(name)
        if spec is None:
            if name in self.raw:
                return self.raw[name]
            raise KeyError(
                f"No configuration section {name!r}; sections: {', '.join(self.section_names) or 'none'}. "
                "A plugin registers its section when it is installed."
            )
        with self._lock:
            if name not in self._typed:
                self._typed[name] = _sections.structure_section(spec, self.raw.get(name), self._describe, self._env_raw)
            return self._typed[name]

    __getitem__ = section

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self.section(name)
        except KeyError as exc:
            raise AttributeError(exc.args[0]) from None

    def __contains__(self, name: object) -> bool:
        return name in self.raw or name in self._all_specs()

    def get(self, key: str, default: Any = None) -> Any:
        """The effective value at dotted ``key`` (``"server.port"``), or ``default``."""
        parts = key.split(".")
        try:
            value = self.section(parts[0])
        except KeyError:
            return default
        raw: Any = self.raw.get(parts[0])
        for part in parts[1:]:
            if attrs.has(type(value)) and hasattr(value, part):
                value = getattr(value, part)
            elif isinstance(value, Mapping) and part in value:
                value = value[part]
            elif isinstance(raw, Mapping) and part in raw:  # an extra key of a typed section
                value = raw[part]
            else:
                return default
            raw = raw.get(part) if isinstance(raw, Mapping) else None
        return value

    def source(self, key: str | tuple[str, ...]) -> Source:
        """Where the value at ``key`` came from (``default`` for values no source set)."""
        path = tuple(key.split(".")) if isinstance(key, str) else key
        node: Any = self.raw
        for part in path:
            if not isinstance(node, Mapping) or part not in node:
                return DEFAULT_SOURCE
            node = node[part]
        for end in range(len(path), 0, -1):
            found = self._sources.get(path[:end])
            if found is not None:
                return found
        return DEFAULT_SOURCE

    def _describe(self, path: tuple[str, ...]) -> str:
        return self.source(path).describe()

    def _env_raw(self, path: tuple[str, ...]) -> str | None:
        found = self._sources.get(path)
        return found.raw if found is not None and found.kind == "env" else None

    def validate(self) -> Config:
        """Build every typed section now, raising the first :class:`ConfigError`."""
        for name in list(self._all_specs()):
            self.section(name)
        return self

    def secret_paths(self) -> set[tuple[str, ...]]:
        """Key paths marked secret by the typed sections (masked whatever their names)."""
        return _sections.secret_paths(self._all_specs())

    # --- writing ------------------------------------------------------------------------

    def to_dict(self, mask: bool = True) -> dict[str, Any]:
        """The effective configuration as plain tables (defaults included), secrets masked unless ``mask=False``."""
        result: dict[str, Any] = {}
        for name in self.section_names:
            if name in self._specs:  # section_names loaded every spec
                table = _sections.unstructure(self.section(name))
                raw = self.raw.get(name)
                if isinstance(raw, Mapping):
                    for key, value in raw.items():
                        if key not in table:
                            table[key] = copy.deepcopy(value)
                result[name] = table
            else:
                result[name] = copy.deepcopy(self.raw[name])
        return mask_tree(result, (), self.secret_paths()) if mask else result

    def rows(self) -> list[tuple[str, Any, Source]]:
        """``(dotted key, masked value, source)`` for every leaf of the effective configuration."""
        rows: list[tuple[str, Any, Source]] = []

        def walk(value: Any, path: tuple[str, ...]) -> None:
            if isinstance(value, Mapping) and value:
                for key, child in value.items():
                    walk(child, (*path, str(key)))
            else:
                rows.append((".".join(format_key(p) for p in path), value, self.source(path)))

        walk(self.to_dict(mask=True), ())
        return rows

    def __repr__(self) -> str:
        try:
            shown: Any = self.to_dict(mask=True)
        except ConfigError:
            shown = mask_tree(self.raw, (), self.secret_paths())
        return f"Config(path={str(self.path)!r}, {shown!r})"


# --- reading the sources ----------------------------------------------------------------------

_LINE = re.compile(r"\(at line (\d+), column (\d+)\)")


def read_config_file(path: Path) -> dict[str, Any]:
    """The tables of ``path`` (``{}`` when it does not exist); a clear :class:`ConfigError` when it is malformed."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ConfigError(
            f"The configuration file {path} cannot be read: {exc.strerror or exc}. "
            f"Fix its permissions, or point {HOME_ENV_VAR} at another folder."
        ) from None
    try:
        return tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ConfigError(
            f"The configuration file {path} is not valid TOML: line {line}: it is not UTF-8 text. Save it as UTF-8."
        ) from None
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        match = _LINE.search(message)
        reason = _LINE.sub("", message).strip().rstrip(".")
        where = f"line {match.group(1)}, column {match.group(2)}" if match else "at the end of the file"
        raise ConfigError(
            f"The configuration file {path} is not valid TOML: {where}: {reason}. "
            "Fix that line (see https://toml.io), or move the file away to use the defaults."
        ) from None


def env_entries(env: Mapping[str, str]) -> list[tuple[tuple[str, ...], Any, str, str]]:
    """``(path, parsed value, variable name, raw text)`` for each ``HEADWATER__A__B`` variable, shallow paths first.

    Names are case-insensitive and lowered, except secret names under ``context.secrets``,
    which keep their case (``HEADWATER__CONTEXT__SECRETS__GITHUB_TOKEN`` sets ``GITHUB_TOKEN``).
    """
    entries: list[tuple[tuple[str, ...], Any, str, str]] = []
    prefix_length = len(ENV_PREFIX)
    for var, text in env.items():
        if not var.upper().startswith(ENV_PREFIX):
            continue
        parts = var[prefix_length:].split("__")
        if not all(parts):
            warnings.warn(
                f"Ignoring the environment variable {var}: its name has an empty part. "
                "Write HEADWATER__SECTION__KEY with exactly two underscores between names.",
                ConfigWarning,
                stacklevel=3,
            )
            continue
        lowered = [p.lower() for p in parts]
        if tuple(lowered[:2]) == _SECRETS_PATH:
            path = (*lowered[:2], *parts[2:])
        else:
            path = tuple(lowered)
        entries.append((path, parse_scalar(text), var, text))
    entries.sort(key=lambda entry: (len(entry[0]), entry[2]))
    return entries


def _normalise_overrides(overrides: Mapping[str, Any]) -> list[tuple[tuple[str, ...], Any]]:
    items: list[tuple[tuple[str, ...], Any]] = []
    for key, value in overrides.items():
        if not isinstance(key, str) or not key:
            raise ConfigError(f"Configuration override keys must be non-empty strings like 'server.port', got {key!r}.")
        items.append((tuple(key.split(".")), value))
    items.sort(key=lambda item: len(item[0]))
    return items


def _set(
    data: dict[str, Any],
    sources: dict[tuple[str, ...], Source],
    path: tuple[str, ...],
    value: Any,
    source: Source,
) -> None:
    """Set ``path`` to ``value`` (tables merge into tables, anything else replaces) and record its source."""
    node = data
    for i, part in enumerate(path[:-1]):
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
            sources[path[: i + 1]] = source
        node = child
    key = path[-1]
    if isinstance(value, Mapping) and isinstance(node.get(key), dict):
        for child_key, child_value in value.items():
            _set(data, sources, (*path, str(child_key)), child_value, source)
        return
    for recorded in [p for p in sources if p[: len(path)] == path]:
        del sources[recorded]
    if isinstance(value, Mapping):
        node[key] = {}
        sources[path] = source
        for child_key, child_value in value.items():
            _set(data, sources, (*path, str(child_key)), child_value, source)
    else:
        node[key] = copy.deepcopy(value)
        sources[path] = source


def load_config(
    home: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Config:
    """Read the configuration: ``<home>/config.toml``, then ``HEADWATER__*`` vars of ``env``, then ``overrides``.

    ``home`` defaults to :func:`headwater_home` (``$HEADWATER_HOME`` or ``~/.headwater``), ``env``
    to ``os.environ``. ``overrides`` are explicit values that win over everything, nested
    (``{"server": {"port": 1}}``) or dotted (``{"server.port": 1}``).
    """
    env = os.environ if env is None else env
    home_path = Path(home).expanduser() if home is not None else headwater_home(env)
    # Plugins' sections register when a plugin manager exists; otherwise on the first use that needs them.
    plugins_loaded = _sections.load_plugin_sections(create_manager=False)
    raw: dict[str, Any] = {}
    sources: dict[tuple[str, ...], Source] = {}
    path = home_path / CONFIG_FILE_NAME
    file_source = Source("file", str(path))
    for key, value in read_config_file(path).items():
        _set(raw, sources, (key,), value, file_source)
    for env_path, value, var, text in env_entries(env):
        _set(raw, sources, env_path, value, Source("env", var, text))
    for override_path, value in _normalise_overrides(overrides or {}):
        _set(raw, sources, override_path, value, Source("argument"))
    return Config(home_path, raw, sources, _sections.registered_sections(), plugins_loaded)


# --- the process-wide configuration -------------------------------------------------------------

_cache_lock = threading.Lock()
_cached: tuple[Any, Config] | None = None


def _cache_key() -> tuple[Any, ...]:
    env_items = tuple(sorted((k, v) for k, v in os.environ.items() if k.upper().startswith("HEADWATER")))
    path = config_path()
    try:
        stat = path.stat()
        file_key: tuple[int, int] | None = (stat.st_mtime_ns, stat.st_size)
    except OSError:
        file_key = None
    return (str(path), file_key, env_items, _sections.registry_version())


def get_config(reload: bool = False) -> Config:
    """The effective configuration of this process, read again whenever the file, a HEADWATER env var or a section changes.

    ``reload=True`` reads it again regardless and asks plugins for their sections again.
    """
    global _cached
    if reload:
        _sections.load_plugin_sections(force=True)
    # Otherwise plugins' sections register when a section needs them (Config._all_specs), which
    # bumps the registry version and so refreshes this cache once.
    key = _cache_key()
    with _cache_lock:
        if not reload and _cached is not None and _cached[0] == key:
            return _cached[1]
    config = load_config()
    with _cache_lock:
        _cached = (key, config)
    return config
