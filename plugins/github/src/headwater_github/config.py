"""``[github]`` configuration section (``HEADWATER__GITHUB__CACHE_MAX_MB=200`` etc.)."""

from __future__ import annotations

from typing import Any

import attrs

__all__ = ["GitHubSection", "section", "PIN_OVERRIDE"]

PIN_OVERRIDE = False
"""Set by ``headwater register --pin`` for this process: pin every GitHub/Git storage it builds."""


@attrs.define
class GitHubSection:
    """``[github]``: settings shared by GitHub and Git storage."""

    cache_dir: str | None = None
    """Where downloaded commits are kept (default ``$HEADWATER_HOME/cache/repos``)."""
    cache_max_mb: float = 1024.0
    """When the cache grows past this size, the least recently used commits are evicted."""
    retries: int = 4
    """Attempts for a request or fetch that failed with a network error or a 5xx answer."""
    backoff: float = 0.5
    """First delay between attempts in seconds (doubled each time, at most 10 s)."""
    timeout: float = 30.0
    """Seconds one HTTP request or git command may take before it counts as a network error."""
    pin: bool = False
    """Resolve ``ref``/``branch_name``/``tag`` to a commit at registration for every storage (like ``pin=True``)."""


def section() -> GitHubSection:
    """The effective ``[github]`` section (defaults when the plugin's section is not registered)."""
    try:
        from headwater.plugins import get_config

        value: Any = getattr(get_config(), "github", None)
    except Exception:  # a broken config file must not hide the storage's own error
        value = None
    settings = value if isinstance(value, GitHubSection) else GitHubSection()
    if PIN_OVERRIDE and not settings.pin:
        settings = attrs.evolve(settings, pin=True)
    return settings
