"""Run configs: where and how an agent runs a flow run (``LocalRun``, ``UniversalRun``).

In headwater a run config *is* an environment (see :mod:`headwater.environments`); these
names keep the Prefect-1 spelling that flows in the wild use.
"""

from __future__ import annotations

import attrs

__all__ = ["RunConfig", "LocalRun", "UniversalRun"]


def _labels(value: object) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    return tuple(sorted(set(value)))  # type: ignore[call-overload]


@attrs.frozen
class RunConfig:
    """Base: ``labels`` an agent must have to pick up the run, and extra environment variables."""

    labels: tuple[str, ...] = attrs.field(default=(), converter=_labels)
    env: dict[str, str] = attrs.field(factory=dict, converter=lambda v: dict(v or {}))


@attrs.frozen
class LocalRun(RunConfig):
    """Run as a local process on the agent's machine, optionally in ``working_dir``."""

    working_dir: str | None = None


@attrs.frozen
class UniversalRun(RunConfig):
    """Run on any agent with matching labels, in whatever environment that agent uses."""
