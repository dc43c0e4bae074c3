"""``DefaultResult``: where a task's value goes when checkpointing is on and nothing else says where.

Prefect 1 checkpointed every task of a run its backend executed (``[flows] checkpointing``,
turned on by its cloud task runner) to the flow's result, which defaulted to the storage's
(``~/.prefect/results`` for local storage). headwater's flow-run process does the same with a
``DefaultResult`` set as the flow's result, under ``$HEADWATER_HOME/results/<flow>/<flow run
id>/`` or under ``[flows] default_result_dir`` (a directory or an fsspec URL).

On a local disk the values of one run go into one append-only *pack* file per process
(``checkpoints-<pid>-<token>.pack``), each value's location being ``<pack>#<offset>:<length>``:
creating one file per task cost 0.5-1 ms on an ext4 disk, more than the rest of an orchestrated
task run, while appending costs microseconds. Under an fsspec URL each value is one object
(``<flow>/<run id>/<task slug>[-<map index>].pkl``). Nothing is ``fsync``-ed (Prefect 1's
LocalResult did not either): a value lost with its machine, or torn by a crash, does not read
back and a restart recomputes it.

Three differences from Prefect 1, all on purpose:

* ``None`` is not written (as in Prefect 1), but the flow-run process records that the value was
  ``None``, so a restart and ``get_task_run_result`` give ``None`` back instead of recomputing;
* a value that cannot be pickled does not fail its task (Prefect 1 failed it): the task stays
  Success without a location, a WARNING names the task, the type and the fix, and the reason is
  recorded for ``get_task_run_result``. An explicit ``result=`` still fails such a task loudly;
* a task's ``target=`` under the default result is a plain :class:`Result` file (an explicit
  wish to persist: its failures stay loud).
"""

from __future__ import annotations

import logging
import os
import posixpath
import re
import threading
import uuid
from collections.abc import Mapping
from typing import Any

import attrs
from fsspec.core import split_protocol, url_to_fs

from headwater.results.result import Result, default_result_key, default_results_dir
from headwater.results.serializers import ResultSerializationError, _type_name

__all__ = ["DefaultResult", "not_persisted_reason", "close_packs", "NONE_MARK", "NOT_PERSISTED_MARK"]

NONE_MARK = "value_is_none"
"""Key of a task-run state's ``serialized`` saying the value was ``None`` (nothing written, nothing to read)."""
NOT_PERSISTED_MARK = "not_persisted"
"""Key of a task-run state's ``serialized`` holding why a default checkpoint was not written."""

_log = logging.getLogger("headwater.results")
_PACK_LOCATION = re.compile(r"^(?P<path>.+\.pack)#(?P<offset>\d+):(?P<length>\d+)$")


def not_persisted_reason(task_name: str, value: Any, cause: BaseException | str) -> str:
    """Why ``task_name``'s value was not checkpointed, and the two ways to settle it."""
    why = cause.cause if isinstance(cause, ResultSerializationError) and cause.cause else str(cause)
    return (f"its value (type {_type_name(value)!r}) cannot be pickled ({why}), so the default checkpoint did not "
            f"write it. Set checkpoint=False on task {task_name!r} if its value need not be kept, or give it a "
            "result= with a serializer for this type")


class _Pack:
    """One append-only file of checkpoints, written by this process only (one writer: offsets are known)."""

    def __init__(self, folder: str) -> None:
        self.path = os.path.join(folder, f"checkpoints-{os.getpid()}-{uuid.uuid4().hex[:8]}.pack")
        self.fd: int | None = None
        self.offset = 0
        self.lock = threading.Lock()

    def append(self, data: bytes) -> str:
        """Write ``data`` at the end; its location ``<pack>#<offset>:<length>``."""
        with self.lock:
            if self.fd is None:
                os.makedirs(os.path.dirname(self.path), exist_ok=True)
                self.fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o666)
                self.offset = os.fstat(self.fd).st_size
            start, view = self.offset, memoryview(data)
            while view:
                view = view[os.write(self.fd, view):]
            self.offset += len(data)
        return f"{self.path}#{start}:{len(data)}"

    def close(self) -> None:
        with self.lock:
            if self.fd is not None:
                os.close(self.fd)
                self.fd = None


_packs: dict[tuple[str, int], _Pack] = {}
_packs_lock = threading.Lock()


MAX_OPEN_PACKS = 32
"""Pack files a process keeps open; a long-lived worker (Dask) serving many runs closes the oldest beyond that."""


def _pack_for(folder: str) -> _Pack:
    key = (folder, os.getpid())  # a forked worker gets packs of its own
    pack = _packs.get(key)
    if pack is None:
        stale: list[_Pack] = []
        with _packs_lock:
            pack = _packs.get(key)
            if pack is None:
                while len(_packs) >= MAX_OPEN_PACKS:
                    stale.append(_packs.pop(next(iter(_packs))))
                pack = _packs[key] = _Pack(folder)
        for old in stale:  # a later write to its run opens a new pack: every location stays exact
            old.close()
    return pack


def close_packs(under: str | None = None) -> None:
    """Close this process's pack files (those under ``under``, or all); later writes open new ones."""
    with _packs_lock:
        keys = [k for k in _packs if k[1] == os.getpid() and (under is None or k[0].startswith(under))]
        packs = [_packs.pop(k) for k in keys]
    for pack in packs:
        pack.close()


@attrs.define(slots=False)
class DefaultResult(Result):
    """A pickling :class:`Result` under ``directory`` (default ``$HEADWATER_HOME/results``) that never fails its task.

    ``write`` skips ``None`` and, when the value cannot be pickled, logs a WARNING and returns a
    Result without a location instead of raising; errors of the filesystem itself still raise.
    ``read`` reads pack locations and every location a plain :class:`Result` reads.
    """

    directory: str | None = None

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
        """Pickle ``value`` for this task run; ``None`` and unpicklable values are not written (see the module)."""
        if value is None:  # Prefect 1 does not checkpoint None either; the flow-run process records it
            return self._with(None, None)  # type: ignore[arg-type]
        try:
            data = bytes(self.serializer.serialize(value))
        except ResultSerializationError as exc:
            name = str(kwargs.get("task_full_name") or kwargs.get("task_name") or "?")
            logger = kwargs.get("logger") or _log
            logger.warning("Task %r: %s. The task stays Success; a restart recomputes it and get_task_run_result "
                           "cannot read it.", name, not_persisted_reason(name, value, exc))
            return self._with(None, value)  # type: ignore[arg-type]
        folder = self._local_folder(kwargs)
        if folder is not None:
            return self._with(_pack_for(folder).append(data), value)
        location = self.format(**kwargs)
        fs, path = url_to_fs(location)
        parent = posixpath.dirname(path)
        if parent and parent != "/":
            fs.makedirs(parent, exist_ok=True)
        fs.pipe_file(path, data)
        return self._with(location, value)

    def _local_folder(self, ctx: Mapping[str, Any]) -> str | None:
        """``<base>/<flow>/<flow run id>`` on a local disk (None under a URL); cached per run: the hot path."""
        folders: dict[Any, str | None] = self.__dict__.setdefault("_folders", {})
        key = (ctx.get("flow_name"), ctx.get("flow_run_id"))
        folder = folders.get(key, "")
        if folder == "":
            base = self.base()
            if split_protocol(base)[0] is not None:
                folder = None
            else:
                flow, run, _ = default_result_key(ctx).split("/", 2)
                folder = os.path.join(base, flow, run)
            folders[key] = folder
        return folder

    def _with(self, location: str, value: Any) -> Result:
        new = object.__new__(type(self))  # attrs.evolve validates and converts again: too slow for every task
        new.__dict__.update(self.__dict__)
        new.location, new.value = location, value
        return new

    def read(self, location: str) -> Result:
        match = _PACK_LOCATION.match(location)
        if match is None:
            return super().read(location)
        offset, length = int(match["offset"]), int(match["length"])
        try:
            with open(match["path"], "rb") as fh:
                fh.seek(offset)
                data = fh.read(length)
        except FileNotFoundError as exc:
            raise FileNotFoundError(f"No checkpoint at {location!r}: its pack file was removed, or is on another "
                                    "machine's disk (set [flows] default_result_dir to a place every reader reaches).") from exc
        if len(data) != length:
            raise FileNotFoundError(f"The checkpoint at {location!r} is incomplete ({len(data)} of {length} bytes): "
                                    "its run was interrupted while writing it.")
        return self._with(location, self.serializer.deserialize(data))

    def exists(self, location: str | None = None, **kwargs: Any) -> bool:
        match = _PACK_LOCATION.match(location) if location is not None else None
        if match is None:
            return super().exists(location, **kwargs)
        try:
            return os.path.getsize(match["path"]) >= int(match["offset"]) + int(match["length"])
        except OSError:
            return False

    def close(self) -> None:
        """Close the pack files this process writes under :meth:`base` (the flow-run process does at the end)."""
        close_packs(self.base())
