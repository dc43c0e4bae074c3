"""Typed configuration sections: attrs classes registered by name, structured from the merged configuration.

The core registers ``[logging]``, ``[flows]`` and ``[context]``; plugins add theirs through the
``register_config_sections(register)`` hook (or by calling :func:`register_section`): the
cloud-api plugin owns ``[cloud]`` and ``[server]``. A plugin may replace a built-in section,
never another plugin's section unless it says ``replace=True``.

Values are structured field by field, so an error names ``section.key``, the expected type
and where the value came from. Keys a typed section does not know are kept in
``Config.raw`` and, by default, reported with a :class:`ConfigWarning` (``extra_keys="warn"``;
``"allow"`` keeps them silently, ``"error"`` refuses them).
"""

from __future__ import annotations

import importlib
import logging
import re
import threading
import types
import typing
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

import attrs

from headwater.config.errors import ConfigError, ConfigWarning
from headwater.config.masking import MASK, is_secret_key

__all__ = [
    "SectionSpec",
    "register_section",
    "unregister_section",
    "registered_sections",
    "load_plugin_sections",
    "secret_field",
    "secret_paths",
    "structure_section",
    "unstructure",
    "get_converter",
    "LoggingSection",
    "FlowsSection",
    "ContextSection",
]

ExtraKeys = Literal["warn", "allow", "error"]
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
# Names that are attributes of Config: a section with such a name would be hidden behind them.
RESERVED_NAMES = frozenset(
    {"raw", "home", "path", "get", "section", "section_names", "source", "to_dict", "validate", "rows", "secret_paths"}
)
SECRET_METADATA = "secret"
_log = logging.getLogger("headwater.config")


# --- secret fields --------------------------------------------------------------------------


def _masked_repr(value: Any) -> str:
    if value is None:
        return "None"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k!r}: '{MASK}'" for k in value) + "}"
    return repr(MASK)


def secret_field(default: Any = None, **kwargs: Any) -> Any:
    """An attrs field whose value is secret: masked in ``repr``, ``config show`` and error messages.

    ``api_key: str | None = secret_field()``; takes the other ``attrs.field`` arguments too.
    """
    metadata = {**kwargs.pop("metadata", {}), SECRET_METADATA: True}
    if "factory" not in kwargs:
        kwargs["default"] = default
    return attrs.field(repr=_masked_repr, metadata=metadata, **kwargs)


# --- the core's sections --------------------------------------------------------------------

_LEVELS = ("CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG", "NOTSET")


def _upper(value: str) -> str:
    return value.upper()


@attrs.define
class LoggingSection:
    """``[logging]``: level and format of the ``headwater`` logger."""

    level: str = attrs.field(default="INFO", converter=_upper, validator=attrs.validators.in_(_LEVELS))
    format: str = "%(asctime)s %(levelname)-7s %(name)s | %(message)s"
    """The one log format (the same as ``headwater.utilities.logging.FORMAT``): ISO-8601 time, level, logger, message."""


@attrs.define
class FlowsSection:
    """``[flows]``: defaults for ``flow.run()`` and for the runs the API executes."""

    run_on_schedule: bool = True
    """``flow.run()`` of a flow with a schedule waits for and runs every scheduled time (False: runs once now)."""
    checkpointing: bool = False
    """Prefect 1's ``[flows] checkpointing``: a task with no ``result=`` (and no flow ``result=``) has its value written
    to the default result unless ``checkpoint=False``. Off for ``flow.run()``; a run the API executes (the
    ``headwater execute flow-run`` process an agent starts) turns it on unless this key is set in the file or in
    ``HEADWATER__FLOWS__CHECKPOINTING``. Tasks with ``result=`` are checkpointed either way."""
    default_result_dir: str = ""
    """Where the default result writes (a directory or an fsspec URL such as ``s3://bucket/results``); empty:
    ``$HEADWATER_HOME/results``."""


@attrs.define
class ContextSection:
    """``[context]``: ``secrets`` for :class:`headwater.secrets.Secret`; other keys are kept as they are."""

    secrets: dict[str, Any] = secret_field(factory=dict)


# --- the registry ---------------------------------------------------------------------------


@attrs.frozen
class SectionSpec:
    """One registered section: its name, its attrs class (or a lazy ``"module:Class"``) and the unknown-key policy."""

    name: str
    cls: type | str
    extra_keys: ExtraKeys = "warn"
    builtin: bool = False

    def resolve(self) -> type:
        """The attrs class, importing a lazy ``"module:Class"`` on first use."""
        if not isinstance(self.cls, str):
            return self.cls
        module_name, _, attr = self.cls.partition(":")
        try:
            obj: Any = importlib.import_module(module_name)
            for part in attr.split("."):
                obj = getattr(obj, part)
        except (ImportError, AttributeError) as exc:
            raise ConfigError(
                f"Configuration section [{self.name}] is registered as {self.cls!r}, which cannot be imported: {exc}. "
                "Reinstall the plugin that provides it, or fix the 'module:Class' string."
            ) from exc
        if not attrs.has(obj):
            raise ConfigError(f"Configuration section [{self.name}]: {self.cls!r} is not an attrs class.")
        return typing.cast(type, obj)


_lock = threading.RLock()
_sections: dict[str, SectionSpec] = {}
_version = 0
_plugins_key: Any = None


def register_section(
    name: str, cls: type | str, *, extra_keys: ExtraKeys = "warn", replace: bool = False, _builtin: bool = False
) -> None:
    """Make ``[name]`` a typed section structured into ``cls`` (an attrs class or ``"module:Class"``).

    This is the ``register`` a plugin's ``register_config_sections(register)`` hook receives.
    Registering the same class again does nothing; a built-in section may be replaced; replacing
    another plugin's section needs ``replace=True``.
    """
    global _version
    if not isinstance(name, str) or not _NAME.match(name):
        raise ConfigError(
            f"Configuration section name {name!r} is not valid: use lower-case letters, digits and underscores "
            "(one level, like 'mysection')."
        )
    if name in RESERVED_NAMES:
        raise ConfigError(f"Configuration section name {name!r} is reserved (a Config attribute); choose another name.")
    if not isinstance(cls, str) and not (isinstance(cls, type) and attrs.has(cls)):
        raise ConfigError(
            f"Configuration section [{name}] must be an attrs class or a 'module:Class' string, got {cls!r}."
        )
    if extra_keys not in ("warn", "allow", "error"):
        raise ConfigError(
            f"Configuration section [{name}]: extra_keys must be 'warn', 'allow' or 'error', got {extra_keys!r}."
        )
    spec = SectionSpec(name=name, cls=cls, extra_keys=extra_keys, builtin=_builtin)
    with _lock:
        existing = _sections.get(name)
        if existing == spec:
            return
        if existing is not None and not existing.builtin and not replace:
            raise ConfigError(
                f"Configuration section [{name}] is already registered with {_describe_cls(existing.cls)}; "
                f"{_describe_cls(cls)} cannot take it over. Pass replace=True to replace it on purpose, "
                "or choose another section name."
            )
        if existing is not None:
            _log.debug(
                "Configuration section [%s] %s replaced by %s", name, _describe_cls(existing.cls), _describe_cls(cls)
            )
        _sections[name] = spec
        _version += 1


def unregister_section(name: str) -> None:
    """Forget ``[name]`` (its keys become an untyped table again)."""
    global _version
    with _lock:
        if _sections.pop(name, None) is not None:
            _version += 1


def registered_sections() -> dict[str, SectionSpec]:
    """A snapshot of the registered sections by name."""
    with _lock:
        return dict(_sections)


def registry_version() -> int:
    """A counter bumped by every change to the registry (part of the config cache key)."""
    return _version


def load_plugin_sections(force: bool = False, create_manager: bool = True) -> bool:
    """Let plugins register their sections (the ``register_config_sections`` hook); True when they did.

    Called on every load; the hook runs again only when the set of plugins implementing it
    changed (or with ``force``), and registering the same class twice does nothing.
    ``create_manager=False`` does nothing (and answers False) while no plugin manager exists
    yet, so reading a built-in section does not load every plugin.
    """
    global _plugins_key
    try:
        from headwater.plugins import _manager
        from headwater.plugins._manager import call_register_hook, get_plugin_manager
    except ImportError:  # the plugin manager is optional for the configuration
        return True
    if not create_manager and _manager._pm is None and not force:
        return False
    caller = getattr(get_plugin_manager().hook, "register_config_sections", None)
    if caller is None:
        return True
    key = (id(get_plugin_manager()), tuple(impl.plugin_name for impl in caller.get_hookimpls()))
    with _lock:
        if key == _plugins_key and not force:
            return True
        _plugins_key = key
    call_register_hook("register_config_sections", _section_sink, kind="config_section", swap_legacy_order=True)
    return True


def _section_sink(obj: type | str, name: str, *, plugin: str, replace: bool = False, **options: Any) -> None:
    """Where a plugin's ``register(MySection, "name", extra_keys=...)`` lands."""
    register_section(name, obj, replace=replace, **options)


def _describe_cls(cls: type | str) -> str:
    return cls if isinstance(cls, str) else f"{cls.__module__}:{cls.__qualname__}"


# --- structuring ----------------------------------------------------------------------------

_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


def _structure_bool(value: Any, _: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise ValueError("expected true or false")


def _structure_int(value: Any, _: Any) -> int:
    if isinstance(value, bool):
        raise ValueError("expected a whole number, got a boolean")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"\s*[+-]?\d+\s*", value):
        return int(value)
    raise ValueError("expected a whole number")


def _structure_float(value: Any, _: Any) -> float:
    if isinstance(value, bool):
        raise ValueError("expected a number, got a boolean")
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        return float(value)
    raise ValueError("expected a number")


def _structure_str(value: Any, _: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    raise ValueError("expected a string")


_SCALARS: dict[Any, Callable[[Any, Any], Any]] = {
    bool: _structure_bool, int: _structure_int, float: _structure_float, str: _structure_str,
}
_converter: Any = None


def get_converter() -> Any:
    """The cattrs converter for configuration sections: strict about bool/int/float/str, lenient about strings for them.

    Built (and cattrs imported) on first use: reading a section of plain values never needs it.
    """
    global _converter
    if _converter is None:
        import cattrs

        conv = cattrs.Converter()
        for tp, hook in _SCALARS.items():
            conv.register_structure_hook(tp, hook)
        _converter = conv
    return _converter


def __getattr__(name: str) -> Any:
    """``converter``: the lazily built converter (see :func:`get_converter`)."""
    if name == "converter":
        return get_converter()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

Describe = Callable[[tuple[str, ...]], str]
EnvRaw = Callable[[tuple[str, ...]], "str | None"]


def _dotted(path: Sequence[str]) -> str:
    return ".".join(path)


def _type_name(tp: Any) -> str:
    if isinstance(tp, type) and not typing.get_args(tp):
        return tp.__name__
    return str(tp).replace("typing.", "").replace("NoneType", "None")


def _shown(value: Any, path: tuple[str, ...], secret: bool) -> str:
    if secret or any(is_secret_key(p) for p in path):
        return f"a secret {type(value).__name__} value"
    if isinstance(value, Mapping):
        return "a table"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _resolved_fields(cls: type) -> tuple[attrs.Attribute[Any], ...]:
    try:
        attrs.resolve_types(cls)
    except Exception:  # noqa: BLE001 - unresolvable annotations: use them as they are
        pass
    return attrs.fields(cls)


def _is_str_target(tp: Any) -> bool:
    if tp is str:
        return True
    origin = typing.get_origin(tp)
    return origin in (typing.Union, types.UnionType) and str in typing.get_args(tp)


_SEQUENCE_ORIGINS = (list, tuple, set, frozenset, Sequence, typing.get_origin(typing.Sequence[int]))


class _Structurer:
    def __init__(self, describe: Describe, env_raw: EnvRaw) -> None:
        self.describe = describe
        self.env_raw = env_raw

    def attrs_instance(
        self, cls: type, raw: Any, path: tuple[str, ...], extra_keys: ExtraKeys, secret: bool = False
    ) -> Any:
        where = f"[{_dotted(path)}]"
        if raw is None:
            raw = {}
        if not isinstance(raw, Mapping):
            raise ConfigError(
                f"{where} must be a table of keys, got {_shown(raw, path, secret)} from {self.describe(path)}. "
                f"Write it as a [{_dotted(path)}] table (or set HEADWATER__{'__'.join(p.upper() for p in path)}__KEY=value)."
            )
        fields = {f.name: f for f in _resolved_fields(cls) if f.init}
        unknown = [key for key in raw if key not in fields]
        if unknown and extra_keys != "allow":
            keys = ", ".join(f"{_dotted((*path, k))} (from {self.describe((*path, k))})" for k in unknown)
            message = (
                f"Unknown configuration key(s) {keys}: {where} has the keys {', '.join(fields) or 'none'}. "
                "Check the spelling; the value is kept in Config.raw but nothing in headwater reads it."
            )
            if extra_keys == "error":
                raise ConfigError(message)
            warnings.warn(message, ConfigWarning, stacklevel=4)
        kwargs: dict[str, Any] = {}
        secret_fields: set[str] = set()
        for key, field in fields.items():
            if key not in raw:
                continue
            field_secret = secret or bool(field.metadata.get(SECRET_METADATA))
            if field_secret:
                secret_fields.add(key)
            kwargs[field.alias or field.name] = self.value(raw[key], field.type, (*path, key), field_secret)
        try:
            return cls(**kwargs)
        except (TypeError, ValueError) as exc:
            attribute = exc.args[1] if len(exc.args) > 1 and isinstance(exc.args[1], attrs.Attribute) else None
            name = (
                attribute.name
                if attribute is not None
                else _attribute_from_message(str(exc.args[0] if exc.args else exc), fields)
            )
            if name is not None:
                field_path = (*path, name)
                is_secret = name in secret_fields or secret or any(is_secret_key(p) for p in field_path)
                reason = "its value is not valid" if is_secret else str(exc.args[0] if exc.args else exc)
                origin = self.describe(field_path) if name in raw else "the default"
                raise ConfigError(
                    f"{_dotted(field_path)} is not valid: {reason} (value from {origin}). Change that value."
                ) from None
            raise ConfigError(f"{where} could not be built into {cls.__qualname__}: {exc}") from None

    def value(self, value: Any, tp: Any, path: tuple[str, ...], secret: bool) -> Any:
        if tp is None or tp is Any:
            return value
        if isinstance(tp, type) and attrs.has(tp):
            return self.attrs_instance(tp, value, path, "warn", secret)
        origin = typing.get_origin(tp)
        if isinstance(value, str) and origin in _SEQUENCE_ORIGINS:
            raise ConfigError(
                f"{_dotted(path)} must be {_type_name(tp)}, got {_shown(value, path, secret)} from {self.describe(path)}. "
                'Write a list as a TOML array, e.g. ["a", "b"] (in an env var: HEADWATER__...=\'["a", "b"]\').'
            )
        if _is_str_target(tp) and not isinstance(value, str):
            raw = self.env_raw(path)
            if raw is not None:  # HEADWATER__CLOUD__API_KEY=12345 is meant as the string "12345"
                value = raw
        try:
            scalar = _SCALARS.get(tp)
            if scalar is not None:  # what the converter's hook for it does, without importing cattrs
                return scalar(value, tp)
            return get_converter().structure(value, tp)
        except Exception as exc:  # noqa: BLE001 - every failure becomes one clear ConfigError
            detail = "" if secret else f" ({_error_detail(exc)})"
            raise ConfigError(
                f"{_dotted(path)} must be {_type_name(tp)}, got {_shown(value, path, secret)}{detail} "
                f"from {self.describe(path)}. Change that value to {_type_name(tp)}."
            ) from None


def _attribute_from_message(message: str, fields: Mapping[str, Any]) -> str | None:
    match = re.match(r"'([A-Za-z_][A-Za-z0-9_]*)'", message)
    if match and match.group(1) in fields:
        return match.group(1)
    return None


def _error_detail(exc: BaseException) -> str:
    import cattrs

    if isinstance(exc, cattrs.BaseValidationError):
        messages = cattrs.transform_error(exc)
        return "; ".join(messages)
    return str(exc) or type(exc).__name__


def structure_section(spec: SectionSpec, raw: Any, describe: Describe, env_raw: EnvRaw) -> Any:
    """``raw`` (the merged table of ``[spec.name]``) as an instance of the section's attrs class."""
    return _Structurer(describe, env_raw).attrs_instance(spec.resolve(), raw, (spec.name,), spec.extra_keys)


def unstructure(instance: Any) -> Any:
    """A typed section back to plain dicts and values."""
    return get_converter().unstructure(instance)


def secret_paths(specs: Mapping[str, SectionSpec]) -> set[tuple[str, ...]]:
    """Key paths of every field marked with :func:`secret_field` in ``specs`` (nested attrs classes included)."""
    found: set[tuple[str, ...]] = set()

    def walk(cls: type, path: tuple[str, ...], depth: int) -> None:
        if depth > 8:
            return
        for field in _resolved_fields(cls):
            if field.metadata.get(SECRET_METADATA):
                found.add((*path, field.name))
            elif isinstance(field.type, type) and attrs.has(field.type):
                walk(field.type, (*path, field.name), depth + 1)

    for name, spec in specs.items():
        try:
            walk(spec.resolve(), (name,), 0)
        except ConfigError:
            continue
    return found


for _name, _cls, _extra in (
    ("logging", LoggingSection, "warn"),
    ("flows", FlowsSection, "warn"),
    ("context", ContextSection, "allow"),
):
    register_section(_name, _cls, extra_keys=_extra, _builtin=True)  # type: ignore[arg-type]
