"""Prefect 1's ``prefect.tasks.core.function``: a task whose ``run`` is a plain function."""

from headwater.core.task import FunctionTask

__all__ = ["FunctionTask"]
