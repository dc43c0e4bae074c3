"""The flow-run child process: ``python -m headwater.environments.run_from_env``.

Reads the run from ``HEADWATER__RUN__*`` variables (set by
:func:`headwater.storage.base.env_runner_variables`): restores the storage from
``HEADWATER__RUN__STORAGE`` with the serialization converter (so plugin storages work too),
then calls ``storage.get_env_runner(HEADWATER__RUN__FLOW_LOCATION)(os.environ)``.

Exit status: 0 when the final state is successful, 1 when it is not (or the run raised),
2 when the storage or the flow cannot be loaded — with a message on stderr saying why.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from collections.abc import Mapping
from types import TracebackType
from typing import Any, TextIO

__all__ = ["main", "load_storage", "EXIT_SUCCESS", "EXIT_FAILED", "EXIT_CANNOT_LOAD"]

EXIT_SUCCESS = 0
EXIT_FAILED = 1
EXIT_CANNOT_LOAD = 2


class CannotLoad(Exception):
    """The run variables, the storage or the flow could not be loaded (exit status 2)."""


def load_storage(env: Mapping[str, str]) -> tuple[Any, str]:
    """``(storage, location)`` from the run variables; :class:`CannotLoad` with the reason if impossible."""
    from headwater.storage.base import ENV_FLOW_LOCATION, ENV_STORAGE

    raw = env.get(ENV_STORAGE)
    if not raw:
        raise CannotLoad(
            f"{ENV_STORAGE} is not set. This module runs a flow run described by HEADWATER__RUN__* variables; "
            "it is started by an environment (e.g. SubprocessEnvironment.execute), not by hand."
        )
    location = env.get(ENV_FLOW_LOCATION)
    if not location:
        raise CannotLoad(f"{ENV_FLOW_LOCATION} is not set: which stored flow to run is unknown.")
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise CannotLoad(f"{ENV_STORAGE} is not valid JSON ({exc}); it must be storage.serialize() as JSON.") from None
    from headwater.serialization.converter import from_dict

    try:
        storage = from_dict(data, "storage")
    except Exception as exc:
        raise CannotLoad(f"the storage in {ENV_STORAGE} cannot be restored: {exc}") from None
    return storage, location


def _raised_inside_run(tb: TracebackType | None) -> bool:
    """True if the traceback passes through the engine's flow runner (the flow was loaded)."""
    from headwater.engine import flow_runner

    engine_file = os.path.normcase(os.path.abspath(flow_runner.__file__))
    while tb is not None:
        if os.path.normcase(os.path.abspath(tb.tb_frame.f_code.co_filename)) == engine_file:
            return True
        tb = tb.tb_next
    return False


def main(env: Mapping[str, str] | None = None, err: TextIO | None = None) -> int:
    """Run the flow described by ``env`` (default ``os.environ``); returns the exit status."""
    env = os.environ if env is None else env
    err = sys.stderr if err is None else err
    try:
        storage, location = load_storage(env)
    except CannotLoad as exc:
        print(f"headwater run_from_env: cannot load the flow run: {exc}", file=err)
        return EXIT_CANNOT_LOAD
    where = f"the flow at {location!r} from {type(storage).__name__} storage"
    try:
        state = storage.get_env_runner(location)(env)
    except Exception as exc:
        if _raised_inside_run(exc.__traceback__):
            print(f"headwater run_from_env: the run of {where} raised: {exc!r}\n{traceback.format_exc()}", file=err)
            return EXIT_FAILED
        from headwater.storage.base import FlowNotInStorageError
        from headwater.storage.pickling import FlowLoadError
        from headwater.utilities.flow_files import FlowFileError

        described = isinstance(exc, (FlowNotInStorageError, FlowLoadError, FlowFileError))  # their messages say it all
        detail = "" if described else f"\n\n{traceback.format_exc()}"
        print(f"headwater run_from_env: cannot load {where}: {exc}{detail}", file=err)
        return EXIT_CANNOT_LOAD
    successful = bool(getattr(state, "is_successful", lambda: False)())
    print(f"headwater run_from_env: {where} finished: {state!r}", file=err)
    if not successful:
        _print_failed_tasks(state, err)
    return EXIT_SUCCESS if successful else EXIT_FAILED


def _print_failed_tasks(state: Any, err: TextIO) -> None:
    """One line per failed task (what an operator reading the child's stderr needs first)."""
    task_states = getattr(state, "result", None)
    if not isinstance(task_states, Mapping):
        return
    for task, task_state in task_states.items():
        if getattr(task_state, "is_failed", lambda: False)():
            name = getattr(task, "slug", None) or getattr(task, "name", task)
            print(f"  task {name}: {task_state!r}", file=err)


if __name__ == "__main__":
    sys.exit(main())
