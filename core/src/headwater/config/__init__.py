"""Configuration: ``~/.headwater/config.toml``, ``HEADWATER__SECTION__KEY`` env vars, explicit arguments.

``get_config()`` is the effective configuration of this process (``config.flows.run_on_schedule``);
``load_config(home=..., env=..., overrides=...)`` reads one explicitly. Typed sections are attrs
classes; plugins add theirs with ``register_section`` (their ``register_config_sections`` hook).
Secrets are masked in ``repr``, ``headwater config show`` and error messages.
"""

from headwater.config.errors import ConfigError, ConfigWarning
from headwater.config.loader import (
    CONFIG_FILE_NAME,
    ENV_PREFIX,
    Config,
    Source,
    config_path,
    env_var_name,
    get_config,
    headwater_home,
    load_config,
)
from headwater.config.masking import MASK, is_secret_key
from headwater.config.sections import (
    ContextSection,
    FlowsSection,
    LoggingSection,
    SectionSpec,
    register_section,
    registered_sections,
    secret_field,
    unregister_section,
)

__all__ = [
    "CONFIG_FILE_NAME",
    "ENV_PREFIX",
    "MASK",
    "Config",
    "ConfigError",
    "ConfigWarning",
    "Source",
    "SectionSpec",
    "ContextSection",
    "FlowsSection",
    "LoggingSection",
    "config_path",
    "env_var_name",
    "get_config",
    "headwater_home",
    "is_secret_key",
    "load_config",
    "register_section",
    "registered_sections",
    "secret_field",
    "unregister_section",
]


_MOVED = {"CloudSection": "headwater_cloud_api.config", "ServerSection": "headwater_cloud_api.config"}


def __getattr__(name: str) -> object:
    """Deprecated names: ``[cloud]`` and ``[server]`` belong to headwater-cloud-api now."""
    module = _MOVED.get(name)
    if module is None:
        raise AttributeError(f"module 'headwater.config' has no attribute {name!r}")
    import warnings

    warnings.warn(
        f"headwater.config.{name} moved to the plugin that owns it: from {module} import {name}.",
        DeprecationWarning,
        stacklevel=2,
    )
    from headwater.plugins import import_plugin_module

    return getattr(import_plugin_module(module, "headwater-cloud-api", f"The {name}"), name)
