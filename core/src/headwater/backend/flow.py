"""Prefect 1's ``prefect.backend.flow``: :class:`FlowView` (defined in :mod:`headwater.backend.flow_run`)."""

from __future__ import annotations

from headwater.backend.flow_run import FlowView

__all__ = ["FlowView"]
