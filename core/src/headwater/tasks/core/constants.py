"""Prefect 1's ``prefect.tasks.core.constants``."""

from headwater.core.collections import Constant

__all__ = ["Constant"]
