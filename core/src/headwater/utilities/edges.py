"""Prefect 1's ``prefect.utilities.edges``: the annotations that change how an input is wired."""

from headwater.core.edge import flatten, mapped, unmapped

__all__ = ["unmapped", "mapped", "flatten"]
