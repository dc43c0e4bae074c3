"""``DefaultResult``: where a task's value goes when checkpointing is on and nothing else says where.

Prefect 1 checkpointed every task of a run its backend executed (``[flows] checkpointing``,
turned on by its cloud task runner) to the flow's result, which defaulted to the storage's
(``~/.prefect/results`` for local storage). headwater's flow-run process does the same with a
``DefaultResult`` set as the flow's result: ``$HEADWATER_HOME/results/<flow>/<flow run id>/<task
slug>[-<map index>].pkl``, or under ``[flows] default_result_dir`` (a directory or an fsspec URL).

Two differences from Prefect 1, both on purpose:

* ``None`` is not written (as in Prefect 1), but the flow-run process records that the value was
  ``None``, so a restart and ``get_task_run_result`` give ``None`` back instead of recomputing;
* a value that cannot be pickled does not fail its task (Prefect 1 failed it): the task stays
  Success without a location, a WARNING names the task, the type and the fix, and the reason is
  recorded for ``get_task_run_result``. An explicit ``result=`` still fails such a task loudly.
"""

from __future__ import annotations

import logging
import os
import posixpath
from collections.abc import Mapping
from typing import Any

import attrs
from fsspec.core import split_protocol

from headwater.results.result import Result, default_result_key, default_results_dir
from headwater.results.serializers import PickleSerializer, ResultSerializationError, _type_name

__all__ = ["DefaultResult", "not_persisted_reason", "NONE_MARK", "NOT_PERSISTED_MARK"]

NONE_MARK = "value_is_none"
"""Key of a task-run state's ``serialized`` saying the value was ``None`` (nothing written, nothing to read)."""
NOT_PERSISTED_MARK = "not_persisted"
"""Key of a task-run state's ``serialized`` holding why a default checkpoint was not written."""

_log = logging.getLogger("headwater.results")


def not_persisted_reason(task_name: str, value: Any, cause: BaseException | str) -> str:
    """Why ``task_name``'s value was not checkpointed, and the two ways to settle it."""
    why = cause.cause if isinstance(cause, ResultSerializationError) and cause.cause else str(cause)
    return (f"its value (type {_type_name(value)!r}) cannot be pickled ({why}), so the default checkpoint did not "
            f"write it. Set checkpoint=False on task {task_name!r} if its value need not be kept, or give it a "
            "result= with a serializer for this type")


@attrs.define(slots=False)
class DefaultResult(Result):
    """A pickling :class:`Result` under ``directory`` (default ``$HEADWATER_HOME/results``) that never fails its task.

    ``write`` skips ``None`` and, when the value cannot be pickled, logs a WARNING and returns a
    Result without a location instead of raising; errors of the filesystem itself still raise.
    """

    directory: str | None = None
    serializer: Any = attrs.field(factory=PickleSerializer)

    def base(self) -> str:
        """The directory (or URL) results go under."""
        if not self.directory:
            return default_results_dir()
        if split_protocol(self.directory)[0] is not None:
            return self.directory.rstrip("/")
        return os.path.abspath(os.path.expanduser(self.directory))

    def _default_location(self, ctx: Mapping[str, Any]) -> str:
        base, key = self.base(), default_result_key(ctx, self.serializer)
        if split_protocol(base)[0] is not None:
            return posixpath.join(base, key)
        return os.path.join(base, *key.split("/"))

    def at(self, target: str) -> Result:
        """A task's ``target=`` is an explicit wish to persist: a plain Result (failures stay loud) under :meth:`base`."""
        if split_protocol(target)[0] is not None or os.path.isabs(os.path.expanduser(target)):
            return Result(location=target, serializer=self.serializer)
        base = self.base()
        joined = posixpath.join(base, target) if split_protocol(base)[0] is not None else os.path.join(base, target)
        return Result(location=joined, serializer=self.serializer)

    def write(self, value: Any, **kwargs: Any) -> Result:
        if value is None:  # Prefect 1 does not checkpoint None either; the flow-run process records it
            return self._with(None, None)  # type: ignore[arg-type]
        try:
            return super().write(value, **kwargs)
        except ResultSerializationError as exc:
            name = str(kwargs.get("task_full_name") or kwargs.get("task_name") or "?")
            logger = kwargs.get("logger") or _log
            logger.warning("Task %r: %s. The task stays Success; a restart recomputes it and get_task_run_result "
                           "cannot read it.", name, not_persisted_reason(name, value, exc))
            return self._with(None, value)  # type: ignore[arg-type]
