"""The Storage interface: where a flow's code is kept so an agent can load it (PIN "Storage and Execution")."""

from __future__ import annotations

import abc
import hashlib
import inspect
import json
import os
import re
from collections.abc import Callable, Mapping
from typing import Any

import attrs

__all__ = ["Storage", "FlowNotInStorageError", "code_hash", "slugify", "env_runner_variables", "content_location"]

ENV_FLOW_LOCATION = "HEADWATER__RUN__FLOW_LOCATION"
ENV_STORAGE = "HEADWATER__RUN__STORAGE"
ENV_PARAMETERS = "HEADWATER__RUN__PARAMETERS"
ENV_CONTEXT = "HEADWATER__RUN__CONTEXT"


class FlowNotInStorageError(KeyError):
    """A location or flow name the storage does not hold."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "flow not in storage"


def content_location(location: str, data: bytes) -> str:
    """``location`` with the hash of ``data`` added (``etl/ab12.flow`` -> ``etl/ab12-9f3c....flow``).

    A storage uses it when bytes different from those already stored would land on an existing
    location (a pickle that captured an import-time value, e.g. ``datetime.now()``): locations are
    immutable, so new content gets a new location, and the flow's metadata (hence its version) changes.
    """
    head, dot, ext = location.rpartition(".")
    digest = hashlib.sha256(data).hexdigest()[:16]
    return f"{head}-{digest}.{ext}" if dot and "/" not in ext else f"{location}-{digest}"


def slugify(name: str) -> str:
    """A file-name-safe version of a flow name."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.")
    return slug or "flow"


def code_hash(flow: Any) -> str:
    """A short content hash of the flow: its metadata plus the source of every task's code.

    Deterministic across processes and machines (no paths, no ids), so a location built from
    it changes exactly when the flow or its code changes.
    """
    from headwater.serialization.converter import canonical_json
    from headwater.serialization.flow_metadata import serialize_flow

    digest = hashlib.sha256()
    meta = serialize_flow(flow)
    meta.pop("storage", None)  # the storage holds this very hash
    digest.update(canonical_json(meta).encode())
    for task in sorted(flow.graph.tasks, key=lambda t: t.slug or ""):
        fn = getattr(task, "__wrapped__", None) or type(task).run
        try:
            source = inspect.getsource(fn)
        except (OSError, TypeError):
            code = getattr(fn, "__code__", None)
            source = repr((code.co_code, code.co_consts)) if code is not None else repr(fn)
        digest.update(source.encode())
        constants = flow.constants.get(task)
        if constants:
            digest.update(repr(sorted((k, repr(v)) for k, v in constants.items())).encode())
    from headwater.storage.pickling import project_modules

    for module in project_modules(flow):  # helper modules travel with the flow: their code counts too
        try:
            source = inspect.getsource(module)
        except (OSError, TypeError):
            source = ""
        digest.update(module.__name__.encode() + b"\0" + source.encode())
    return digest.hexdigest()[:16]


def env_runner_variables(
    storage: Storage, location: str, parameters: Mapping[str, Any] | None = None, context: Mapping[str, Any] | None = None
) -> dict[str, str]:
    """Environment variables that tell ``python -m headwater.environments.run_from_env`` what to run."""
    return {
        ENV_STORAGE: json.dumps(storage.serialize(), sort_keys=True),
        ENV_FLOW_LOCATION: location,
        ENV_PARAMETERS: json.dumps(dict(parameters or {}), sort_keys=True, default=str),
        ENV_CONTEXT: json.dumps(dict(context or {}), sort_keys=True, default=str),
    }


@attrs.define
class Storage(abc.ABC):
    """Keeps flows' code where a flow-run process can load it.

    ``add_flow`` only assigns a location (no I/O); ``build`` does the I/O once. Locations
    are content-addressed: the flow's name plus a hash of its code, never a timestamp.
    """

    flows: dict[str, str] = attrs.field(factory=dict, kw_only=True)
    """Flow name -> location, filled by :meth:`add_flow`."""
    _pending: dict[str, Any] = attrs.field(factory=dict, init=False, repr=False, eq=False)
    _built: bool = attrs.field(default=False, init=False, repr=False, eq=False)

    @property
    def name(self) -> str:
        """The storage's type tag (``Local``, ``FileSystem``, ``S3`` ...)."""
        from headwater.plugins._manager import registry

        return registry("storage").name_for(type(self)) or type(self).__name__

    # --- the interface ----------------------------------------------------------------------

    def add_flow(self, flow: Any) -> str:
        """Assign ``flow`` a location in this storage and remember it for :meth:`build` (no I/O)."""
        if flow.name in self.flows:
            raise ValueError(
                f"{type(self).__name__} storage already has a flow named {flow.name!r}; "
                "use one storage object per flow name (or a new storage object)."
            )
        location = self.location_for(flow)
        self.flows[flow.name] = location
        self._pending[flow.name] = flow
        self._built = False
        return location

    @abc.abstractmethod
    def location_for(self, flow: Any) -> str:
        """The content-addressed location ``flow`` gets (pure)."""

    def __contains__(self, obj: object) -> bool:
        name = getattr(obj, "name", obj)
        return isinstance(name, str) and (name in self.flows or name in self.flows.values())

    def build(self) -> Storage:
        """Write every added flow (once; calling again without new flows does nothing). Returns self."""
        if self._built and not self._pending:
            return self
        for name, flow in list(self._pending.items()):
            self._write(flow, self.flows[name])
            del self._pending[name]
        self._built = True
        return self

    @abc.abstractmethod
    def _write(self, flow: Any, location: str) -> None:
        """Persist ``flow`` at ``location`` (called by :meth:`build`)."""

    @abc.abstractmethod
    def get_flow(self, location: str) -> Any:
        """Load the flow stored at ``location`` (in the flow-run process)."""

    def get_runner(self, location: str) -> Callable[..., Any]:
        """A callable ``runner(parameters=None, **run_kwargs) -> State`` that loads and runs the flow."""

        def runner(parameters: Mapping[str, Any] | None = None, **run_kwargs: Any) -> Any:
            flow = self.get_flow(location)
            run_kwargs.setdefault("run_on_schedule", False)
            return flow.run(parameters=dict(parameters or {}), **run_kwargs)

        return runner

    def get_env_runner(self, location: str) -> Callable[[Mapping[str, str]], Any]:
        """A callable ``run(env)`` for environments driven by variables (``HEADWATER__RUN__PARAMETERS``...)."""

        def env_runner(env: Mapping[str, str] | None = None) -> Any:
            env = os.environ if env is None else env
            parameters = json.loads(env.get(ENV_PARAMETERS) or "{}")
            context = json.loads(env.get(ENV_CONTEXT) or "{}")
            return self.get_runner(location)(parameters=parameters, context=context)

        return env_runner

    def run_details(self) -> dict[str, str]:
        """What this storage resolved when it last loaded a flow (:meth:`get_flow`), as short strings.

        The flow-run process records it on the flow run in the API, so every run says exactly which
        code it ran: repository storage gives ``repo``, ``ref`` and ``commit``; others may give an
        object version or an image digest. The default is ``{}`` (nothing beyond the stored location).
        """
        return {}

    def serialize(self) -> dict[str, Any]:
        """This storage as JSON-ready data with its ``"type"`` tag."""
        from headwater.serialization.converter import to_dict

        return to_dict(self)

    def _require(self, location: str) -> None:
        if location not in self.flows.values():
            known = ", ".join(f"{n} -> {loc}" for n, loc in sorted(self.flows.items())) or "none"
            raise FlowNotInStorageError(
                f"{type(self).__name__} storage has no flow at location {location!r}; it holds: {known}."
            )

    def _name_at(self, location: str) -> str:
        for name, loc in self.flows.items():
            if loc == location:
                return name
        raise FlowNotInStorageError(f"{type(self).__name__} storage has no flow at location {location!r}.")
