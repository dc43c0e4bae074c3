"""Checkpointing in the flow-run process, as Prefect 1's backend runs did it.

Prefect 1's cloud task runner set ``checkpointing`` on for every run its backend executed, and
each task without ``result=`` wrote its value to the flow's result, the storage's default
(``~/.prefect/results``). Here :func:`apply_default_result` gives a flow with no ``result=`` a
:class:`~headwater.results.default.DefaultResult` when ``[flows] checkpointing`` is on, which it is
in this process unless the configuration sets it (``HEADWATER__FLOWS__CHECKPOINTING=false``):
the engine then checkpoints every task whose ``checkpoint`` is not False, and restarts and
``get_task_run_result`` read the values back from the location each state records.

:func:`checkpoint_note` is what a task-run state records when its default checkpoint wrote
nothing: that the value was ``None``, or why it could not be pickled.
"""

from __future__ import annotations

import logging
from typing import Any

from headwater import states as st
from headwater.plugins import NONE_MARK, NOT_PERSISTED_MARK, DefaultResult, not_persisted_reason

__all__ = ["checkpointing_enabled", "apply_default_result", "checkpoint_note"]


def checkpointing_enabled(config: Any = None) -> bool:
    """``[flows] checkpointing`` for a run the API executes: True unless the file or an env var sets it."""
    if config is None:
        from headwater.plugins import get_config

        config = get_config()
    if config.source("flows.checkpointing").kind == "default":
        return True  # Prefect 1's CloudTaskRunner: context.update(checkpointing=True)
    return bool(config.flows.checkpointing)


def apply_default_result(flow: Any, config: Any = None, logger: logging.Logger | None = None) -> DefaultResult | None:
    """Set ``flow.result`` to the default result when checkpointing is on and the flow has none; the result set, or None."""
    if config is None:
        from headwater.plugins import get_config

        config = get_config()
    if getattr(flow, "result", None) is not None or not checkpointing_enabled(config):
        return None
    default = DefaultResult(directory=config.flows.default_result_dir or None)
    flow.result = default
    (logger or logging.getLogger("headwater.execute")).debug(
        "Checkpointing is on: the values of tasks without result= go to %s (set HEADWATER__FLOWS__CHECKPOINTING=false, "
        "or checkpoint=False on a task, to skip it).", default.base())
    return default


def checkpoint_note(task: Any, state: Any, default: DefaultResult) -> dict[str, Any] | None:
    """What a Success without a location records when ``task`` checkpointed to ``default``: ``None`` or why not."""
    if type(state) is not st.Success or getattr(state, "location", None) or task.result is not None or task.checkpoint is False:
        return None
    value = state.result
    if value is None:
        return {NONE_MARK: True}
    try:
        default.serializer.serialize(value)
    except Exception as exc:  # noqa: BLE001 - the reason is recorded, the state stays Success
        return {NOT_PERSISTED_MARK: not_persisted_reason(task.name, value, exc)}
    return None  # written elsewhere or not at all for another reason (nothing to say)
