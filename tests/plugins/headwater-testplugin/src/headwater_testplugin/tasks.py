"""Spec task types of headwater-testplugin."""

from __future__ import annotations

from typing import Any


def shout(task: Any, ctx: Any) -> str:
    """``shout``: ``msg`` in capitals, as the task's result."""
    return str(ctx.params.get("msg", "")).upper() + "!"
