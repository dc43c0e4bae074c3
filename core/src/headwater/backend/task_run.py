"""Prefect 1's ``prefect.backend.task_run``: :class:`TaskRunView` (defined in :mod:`headwater.backend.flow_run`)."""

from __future__ import annotations

from headwater.backend.flow_run import TaskRunView

__all__ = ["TaskRunView"]
