"""``LocalEnvironment``: run the flow in the current process, synchronously.

Useful for tests, notebooks and single-process agents: no child process, no pickling of the
run variables, the final State object itself on the handle. It cannot be killed from outside
(``execute`` only returns when the run is over) and does not apply ``env`` or ``command``
from the run context: use :class:`~headwater.environments.SubprocessEnvironment` for those.
"""

from __future__ import annotations

import traceback
from typing import Any

import attrs

from headwater.environments.base import Environment, RunHandle

__all__ = ["LocalEnvironment", "status_of_state"]


def status_of_state(state: Any) -> str:
    """``success``, ``cancelled`` or ``failed`` for a final flow State (``running`` while there is none)."""
    if state is None:
        return "running"
    if state.is_successful():
        return "success"
    if state.is_cancelled():
        return "cancelled"
    return "failed"


def _tag(environment: Environment) -> str:
    from headwater.plugins._manager import registry

    return registry("environment").name_for(type(environment)) or type(environment).__name__


@attrs.define
class LocalEnvironment(Environment):
    """Run flow runs in this process: ``execute`` loads the flow with ``storage.get_runner`` and runs it.

    ``run_context`` keys used: ``parameters`` and ``context`` (``flow_run_id`` is added to the
    context). The handle's ``state`` is the final flow State; a flow that cannot be loaded or
    started gives a ``Failed`` state whose message says why.
    """

    def execute(self, storage: Any, flow_location: str, **run_context: Any) -> RunHandle:
        from headwater.states import Failed

        handle = RunHandle(environment=_tag(self), id=run_context.get("flow_run_id"))
        context = dict(run_context.get("context") or {})
        if run_context.get("flow_run_id") is not None:
            context.setdefault("flow_run_id", run_context["flow_run_id"])
        try:
            runner = storage.get_runner(flow_location)
            state = runner(parameters=run_context.get("parameters"), context=context)
        except Exception as exc:  # the flow could not be loaded or started: a failed run, not a crashed agent
            state = Failed(
                f"LocalEnvironment could not run the flow at {flow_location!r} from {type(storage).__name__} "
                f"storage: {exc}",
                result=exc,
                traceback=traceback.format_exc(),
            )
        handle.state = state
        handle.status = status_of_state(state)
        return handle

    def status(self, handle: RunHandle) -> str:
        handle.status = status_of_state(handle.state)
        return handle.status

    def kill(self, handle: RunHandle, grace_period: float = 10.0) -> None:
        """Nothing to do: ``execute`` returned only after the run finished."""
        return None
