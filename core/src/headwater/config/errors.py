"""Errors and warnings raised while reading the configuration."""

from __future__ import annotations

__all__ = ["ConfigError", "ConfigWarning"]


class ConfigError(ValueError):
    """The configuration cannot be used: names the key or file, where the value came from, and the fix."""


class ConfigWarning(UserWarning):
    """Something in the configuration is probably a mistake (an unknown key in a typed section, a bad env var name)."""
