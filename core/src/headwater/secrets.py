"""Secrets: ``Secret("NAME").get()`` resolves a credential at run time, never storing or showing it.

Lookup order, first found wins:

1. the environment variable ``HEADWATER__CONTEXT__SECRETS__NAME`` (its value read as a TOML
   scalar, like every ``HEADWATER__`` variable);
2. ``NAME`` under ``[context.secrets]`` in the configuration file (``$HEADWATER_HOME/config.toml``);
3. plugins implementing the ``get_secret(name)`` hook (a vault, a cloud secret manager ...).

A :class:`Secret` holds only its name: its ``repr``, ``str`` and pickled form never contain the
value, so a flow that uses one can be serialized, logged and shipped safely.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import attrs

from headwater.utilities.logging import get_logger

__all__ = ["Secret", "SecretNotFoundError", "secret_env_var"]

_log = get_logger("secrets")
_PREFIX = "HEADWATER__CONTEXT__SECRETS__"


class SecretNotFoundError(LookupError):
    """No source had the secret; the message lists every place looked at and how to set it."""

    def __init__(self, name: str, places: list[str]) -> None:
        self.name = name
        self.places = places
        looked = "\n".join(f"  {i}. {place}" for i, place in enumerate(places, start=1))
        super().__init__(
            f"Secret {name!r} was not found. headwater looked in:\n{looked}\n"
            f'Set it with the environment variable {secret_env_var(name)}=..., or add {_toml_key(name)} = "..." '
            "under [context.secrets] in that file, or install a plugin that provides it."
        )

    def __str__(self) -> str:
        return str(self.args[0])


def secret_env_var(name: str) -> str:
    """The environment variable that sets secret ``name``: ``HEADWATER__CONTEXT__SECRETS__<name>``."""
    return _PREFIX + name


def _toml_key(name: str) -> str:
    from headwater.config._toml import format_key

    return format_key(name)


def _from_env(name: str, env: Mapping[str, str]) -> tuple[bool, Any]:
    from headwater.config._toml import parse_scalar

    exact = secret_env_var(name)
    if exact in env:
        return True, parse_scalar(env[exact])
    wanted = exact.upper()
    for var, text in env.items():  # names are case-insensitive, like every HEADWATER__ variable
        if var.upper() == wanted:
            return True, parse_scalar(text)
    return False, None


def _from_config(name: str) -> tuple[bool, Any, str]:
    """``(found, value, description of where it looked)`` from ``[context.secrets]`` of the effective configuration."""
    from headwater.config import get_config

    config = get_config()
    where = f"[context.secrets] in the configuration file {config.path}"
    secrets = config.context.secrets
    if name in secrets:
        return True, secrets[name], where
    lowered = name.lower()
    for key, value in secrets.items():
        if key.lower() == lowered:
            return True, value, where
    state = "no such key" if config.path.exists() else "the file does not exist"
    return False, None, f"{where} ({state})"


def _from_plugins(name: str) -> tuple[bool, Any, str]:
    where = "plugins implementing the get_secret(name) hook"
    try:
        from headwater.plugins._manager import get_plugin_manager

        hook = getattr(get_plugin_manager().hook, "get_secret", None)
    except (ImportError, AttributeError):
        return False, None, f"{where} (the plugin manager is not available)"
    if hook is None:
        return False, None, f"{where} (no get_secret hook is declared)"
    value = hook(name=name)
    if isinstance(value, list):  # a hook not declared firstresult returns every answer
        value = next((v for v in value if v is not None), None)
    if value is None:
        return False, None, f"{where} (none returned a value)"
    return True, value, where


@attrs.frozen(repr=False)
class Secret:
    """A named secret, resolved only by :meth:`get`; safe to log, print, pickle and put in a flow."""

    name: str = attrs.field()

    @name.validator
    def _check_name(self, attribute: attrs.Attribute[str], value: str) -> None:
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"A secret name must be a non-empty string, got {value!r}.")

    def get(self) -> Any:
        """The secret's value from the environment, the configuration file or a plugin (in that order).

        Raises :class:`SecretNotFoundError` naming the three places when none has it.
        """
        found, value = _from_env(self.name, os.environ)
        if found:
            _log.debug("Secret %r read from the environment variable %s", self.name, secret_env_var(self.name))
            return value
        places = [f"the environment variable {secret_env_var(self.name)} (not set)"]
        found, value, where = _from_config(self.name)
        if found:
            _log.debug("Secret %r read from %s", self.name, where)
            return value
        places.append(where)
        found, value, where = _from_plugins(self.name)
        if found:
            _log.debug("Secret %r provided by a plugin", self.name)
            from headwater.utilities.logging import remember_secret

            remember_secret(value)  # masked in logs and tracebacks from now on, like env and config secrets
            return value
        places.append(where)
        raise SecretNotFoundError(self.name, places)

    def exists(self) -> bool:
        """True when :meth:`get` would find a value."""
        try:
            self.get()
        except SecretNotFoundError:
            return False
        return True

    def __repr__(self) -> str:
        return f"<Secret: {self.name!r}>"

    __str__ = __repr__
