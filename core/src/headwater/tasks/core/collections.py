"""Prefect 1's ``prefect.tasks.core.collections``: tasks that gather results into a collection."""

from headwater.core.collections import Dict, GetItem, List, Set, Tuple

__all__ = ["List", "Tuple", "Set", "Dict", "GetItem"]
