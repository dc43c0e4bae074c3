"""Flows: a graph of tasks with its schedule, storage, run config and result settings."""

from __future__ import annotations

import contextvars
import copy as _copy
import functools
import gc
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, KeysView, Mapping, Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, TypeVar

from headwater.core import task as _task_module
from headwater.core.edge import Edge
from headwater.core.parameter import Parameter
from headwater.core.task import Task, TaskCallError, as_task
from headwater.utilities.context import _current as _current_context

if TYPE_CHECKING:
    import logging

    from headwater.executors.base import Executor
    from headwater.spec.model import SpecFlow
    from headwater.states import State

__all__ = ["Flow", "FlowGraph", "FlowValidationError", "CycleError"]

_active_flows: contextvars.ContextVar[tuple[Flow, ...]] = contextvars.ContextVar("headwater_active_flows", default=())

_gc_lock = threading.Lock()
_gc_builders = [0, False]
"""``[open `with Flow` blocks in the process, whether the first one paused the cyclic GC]``.

Building a graph allocates many objects that all stay alive; collecting them again and again
while the graph grows cost about half of building 10 000 tasks. The collector is paused while
any ``with Flow(...)`` block is open and resumed (if it was on) when the last one closes.
"""


def _pause_gc() -> None:
    with _gc_lock:
        if _gc_builders[0] == 0:
            _gc_builders[1] = gc.isenabled()
            gc.disable()
        _gc_builders[0] += 1


def _resume_gc() -> None:
    with _gc_lock:
        _gc_builders[0] -= 1
        if _gc_builders[0] == 0 and _gc_builders[1]:
            gc.enable()


class FlowValidationError(ValueError):
    """The flow's graph cannot run as it is (names what is wrong and where)."""


class CycleError(FlowValidationError):
    """The graph has a cycle; ``cycle`` lists the tasks around it."""

    def __init__(self, message: str, cycle: list[Task]) -> None:
        super().__init__(message)
        self.cycle = cycle


_F = TypeVar("_F", bound=Callable[..., Any])


class _Atomic:
    """One wiring call as a unit: if it raises, every task, edge and constant it added is taken out again.

    Nested calls (a task call that wires a collection task, ``set_dependencies`` adding edges)
    join the outermost one, so a bad argument never leaves half a call in the graph.
    """

    __slots__ = ("flow", "outer")

    def __init__(self, flow: Flow) -> None:
        self.flow = flow
        self.outer = False

    def __enter__(self) -> _Atomic:
        if self.flow._journal is None:
            self.outer = True
            self.flow._journal = []
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if self.outer:
            journal, self.flow._journal = self.flow._journal, None
            if exc_type is not None and journal:
                self.flow._undo(journal)


_RUN_CONTEXT_KEYS = frozenset({
    "flow_name", "flow_run_id", "flow_run_name", "parameters", "scheduled_start_time", "date", "today",
    "today_nodash", "yesterday", "yesterday_nodash", "tomorrow", "tomorrow_nodash", "logger", "map_index",
})
"""Context keys each flow run sets itself: never inherited from an enclosing ``headwater.context`` (or run)."""


def _count(items: Iterable[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for item in items:
        counts[item] = counts.get(item, 0) + 1
    return counts


def _atomic(method: _F) -> _F:
    @functools.wraps(method)
    def wrapper(self: Flow, *args: Any, **kwargs: Any) -> Any:
        with _Atomic(self):
            return method(self, *args, **kwargs)

    return wrapper  # type: ignore[return-value]


class TerminalStateHandler:
    """The flow state handler ``terminal_state_handler=fn`` adds: on the final state, ``fn`` may return another.

    ``fn(flow, state, reference_task_states)`` runs before the other state handlers see the
    final state; returning None keeps it. A class, not a closure, so flows pickle with any pickler.
    """

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn = fn

    def __call__(self, flow: Flow, old: State, new: State) -> State:
        if not new.is_finished() or old.is_finished():
            return new
        states = new.result if isinstance(new.result, dict) else {}
        references = {t: states[t] for t in flow.reference_tasks() if t in states}
        replaced = self.fn(flow, new, references)
        return replaced if replaced is not None else new

    def __repr__(self) -> str:
        return f"terminal_state_handler({getattr(self.fn, '__qualname__', self.fn)!r})"


class FlowGraph:
    """A read-only view of a flow's graph, without copies (the public way to walk it fast).

    ``tasks`` and ``edges`` are in insertion order; ``upstream[task]`` and ``downstream[task]``
    are the edges into and out of ``task``, in the order they were added. Do not mutate them:
    change a flow through ``add_task`` / ``add_edge`` / ``set_dependencies``.
    """

    __slots__ = ("tasks", "edges", "upstream", "downstream")

    def __init__(self, flow: Flow) -> None:
        self.tasks: KeysView[Task] = flow._tasks.keys()
        self.edges: KeysView[Edge] = flow._edges.keys()
        self.upstream: Mapping[Task, Sequence[Edge]] = MappingProxyType(flow._upstream)
        self.downstream: Mapping[Task, Sequence[Edge]] = MappingProxyType(flow._downstream)

    def __len__(self) -> int:
        return len(self.tasks)


class Flow:
    """A graph of tasks. Build it with ``with Flow("name") as flow:`` and call tasks inside the block.

    ``flow.run()`` runs it locally and returns the final :class:`~headwater.states.State`,
    whose ``result`` maps every task to its state.
    """

    _journal: list[tuple[Any, ...]] | None = None  # undo log of the wiring call in progress (see _Atomic)

    def __init__(
        self,
        name: str,
        schedule: Any = None,
        executor: Executor | None = None,
        environment: Any = None,
        run_config: Any = None,
        storage: Any = None,
        tasks: Iterable[Task] | None = None,
        edges: Iterable[Edge] | None = None,
        reference_tasks: Iterable[Task] | None = None,
        state_handlers: Iterable[Callable[..., Any]] | None = None,
        result: Any = None,
        validate: bool | None = None,
        terminal_state_handler: Callable[..., Any] | None = None,
    ) -> None:
        if not name or not isinstance(name, str):
            raise ValueError(f"A flow needs a non-empty string name, got {name!r}.")
        if environment is not None and run_config is not None:
            raise ValueError(f"Flow {name!r}: pass run_config= or environment=, not both (they are the same thing).")
        self.name = name
        self.schedule = schedule
        self.executor = executor
        self.run_config = run_config if run_config is not None else environment
        self.storage = storage
        self.result = result
        self.state_handlers = list(state_handlers or ())
        self.terminal_state_handler = terminal_state_handler
        """Prefect 1's ``terminal_state_handler(flow, state, reference_task_states)``: may replace the final state."""
        if terminal_state_handler is not None:
            if not callable(terminal_state_handler):
                raise TypeError(
                    f"Flow {name!r}: terminal_state_handler must be a callable (flow, state, reference_task_states), "
                    f"got {terminal_state_handler!r}."
                )
            self.state_handlers.insert(0, TerminalStateHandler(terminal_state_handler))
        self._tasks: dict[Task, None] = {}
        self._edges: dict[Edge, None] = {}
        self._upstream: dict[Task, list[Edge]] = {}
        self._downstream: dict[Task, list[Edge]] = {}
        self._slugs: dict[str, Task] = {}
        self._slug_counts: dict[str, int] = {}
        self._reference_tasks: dict[Task, None] = {}
        self.constants: dict[Task, dict[str, Any]] = {}
        self._bound_keys: dict[Task, dict[str, Task]] = {}
        self._cases: list[Any] = []
        for t in tasks or ():
            self.add_task(t)
        for e in edges or ():
            self.add_edge(e.upstream_task, e.downstream_task, key=e.key, mapped=e.mapped, flattened=e.flattened)
        if reference_tasks:
            self.set_reference_tasks(reference_tasks)

    # --- the active flow ------------------------------------------------------------------

    @staticmethod
    def _active() -> Flow | None:
        stack = _active_flows.get()
        return stack[-1] if stack else None

    def __enter__(self) -> Flow:
        self._token = _active_flows.set((*_active_flows.get(), self))
        self._created: list[Task] = []  # tasks made inside the block (Task.__init__ adds them)
        _task_module._TRACKING[0] += 1
        _pause_gc()
        return self

    def __exit__(self, *exc: Any) -> None:
        _resume_gc()
        _active_flows.reset(self._token)
        del self._token
        _task_module._TRACKING[0] -= 1
        created = self.__dict__.pop("_created", [])
        if exc and exc[0] is not None:
            return
        unused = [t for t in created if t not in self._tasks]
        if unused:  # a task whose copies were called (``MyTask()(x)``) is used: copies share its signature cache
            copied = {id(t.__dict__.get("_signature_cache")) for t in self._tasks}
            unused = [t for t in unused if id(t.__dict__.get("_signature_cache")) not in copied]
        if unused:
            import warnings

            warnings.warn(
                f"Flow {self.name!r}: tasks were created but not added to the flow: {', '.join(map(repr, unused))}. "
                "This happens when a Task (or a Parameter) is instantiated inside a `with Flow(...)` block but never "
                "called, bound or used as another task's input; call it (e.g. my_task()) or create it outside the block.",
                UserWarning,
                stacklevel=2,
            )

    def __getstate__(self) -> dict[str, Any]:
        """Pickle state: no context tokens, and storage without its not-yet-built flows."""
        state = dict(self.__dict__)
        state.pop("_token", None)
        state["_cases"] = []
        storage = state.get("storage")
        if storage is not None and getattr(storage, "_pending", None):
            import attrs

            if attrs.has(type(storage)):
                state["storage"] = attrs.evolve(storage)
        return state

    @property
    def environment(self) -> Any:
        """Alias of ``run_config``: where a flow run executes."""
        return self.run_config

    @environment.setter
    def environment(self, value: Any) -> None:
        self.run_config = value

    # --- tasks and edges ------------------------------------------------------------------

    @property
    def graph(self) -> FlowGraph:
        """A read-only view of the graph (no copies): for engines, storage and plugins that walk it."""
        return FlowGraph(self)

    @property
    def tasks(self) -> set[Task]:
        return set(self._tasks)

    @property
    def edges(self) -> set[Edge]:
        return set(self._edges)

    def sorted_edges(self) -> list[Edge]:
        """Edges in insertion order (deterministic)."""
        return list(self._edges)

    def ordered_tasks(self) -> list[Task]:
        """Tasks in the order they were added (deterministic)."""
        return list(self._tasks)

    def add_task(self, task: Task) -> Task:
        """Add ``task`` (no edges). Gives it a unique ``slug`` within this flow."""
        if not isinstance(task, Task):
            raise TypeError(f"Flow {self.name!r}: add_task() takes a Task, got {task!r}. Did you forget @task?")
        if task in self._tasks:
            return task
        name = task.name
        old_slug, old_count = task.slug, self._slug_counts.get(name)
        if isinstance(task, Parameter):
            other = self._slugs.get(task.name)
            if other is not None:
                raise FlowValidationError(
                    f"Flow {self.name!r} already has a task or parameter with slug {task.name!r}; "
                    "parameter names must be unique within a flow."
                )
            slug = task.name
        elif task.slug is not None and task.slug not in self._slugs:
            slug = task.slug
        else:
            n = old_count or 0
            while True:
                n += 1
                slug = f"{name}-{n}"
                if slug not in self._slugs:
                    break
            self._slug_counts[name] = n
        task.slug = slug
        self._slugs[slug] = task
        self._tasks[task] = None
        self._upstream[task] = []
        self._downstream[task] = []
        if self._cases:
            for case in self._cases:
                case._added.append(task)
        if self._journal is not None:
            self._journal.append(("task", task, old_slug, old_count))
        return task

    @_atomic
    def add_edge(
        self,
        upstream_task: Any,
        downstream_task: Any,
        key: str | None = None,
        mapped: bool = False,
        flattened: bool = False,
        validate: bool | None = None,
    ) -> Edge:
        """Make ``downstream_task`` depend on ``upstream_task`` (passing its result as ``key``).

        Adding an edge that closes a cycle raises :class:`CycleError` naming the cycle.
        """
        upstream = as_task(upstream_task, flow=self)
        downstream = as_task(downstream_task, flow=self)
        self.add_task(upstream)
        self.add_task(downstream)
        if key is not None:
            if not isinstance(key, str):
                raise TypeError(f"Flow {self.name!r}: edge keys are argument names (str), got {key!r}.")
            bound = self._bound_keys.setdefault(downstream, {})
            if key in bound and not any(
                e.key == key and e.upstream_task is upstream and e.mapped == mapped and e.flattened == flattened
                for e in self._upstream[downstream]
            ):
                raise FlowValidationError(
                    f"Flow {self.name!r}: argument {key!r} of task {downstream.slug!r} is already bound to "
                    f"{bound[key].slug!r}; a task argument takes one input."
                )
            if key not in downstream._input_names() and not downstream._takes_var_keyword():
                raise TaskCallError(
                    f"Task {downstream.name!r} has no argument {key!r}; run() takes ({', '.join(downstream.inputs())})."
                )
        edge = Edge(upstream, downstream, key=key, mapped=mapped, flattened=flattened)
        if edge in self._edges:
            return edge
        if upstream is downstream:
            raise CycleError(f"Flow {self.name!r}: task {upstream.slug!r} cannot depend on itself.", [upstream])
        # validate=False defers the cycle check to flow.validate() (which flow.run() calls).
        path = self._path(downstream, upstream) if validate is not False else None
        if path is not None:
            cycle = [*path, downstream]
            raise CycleError(
                f"Flow {self.name!r}: the edge {upstream.slug} -> {downstream.slug} would make a cycle: "
                + " -> ".join(t.slug or t.name for t in cycle),
                cycle,
            )
        self._edges[edge] = None
        self._upstream[downstream].append(edge)
        self._downstream[upstream].append(edge)
        if key is not None:
            self._bound_keys.setdefault(downstream, {})[key] = upstream
        if self._journal is not None:
            self._journal.append(("edge", edge))
        return edge

    def _add_fresh_edge(self, upstream: Task, downstream: Task, key: str | None, mapped: bool = False) -> None:
        """:meth:`add_edge` for a task a wiring call has just added (``Task._wire(fresh=True)``).

        Nothing is downstream of ``downstream`` yet, so the edge cannot close a cycle; its keys
        come from binding, so they are valid and distinct: only the inserts remain. Both tasks
        are in the flow already.
        """
        edge = Edge(upstream, downstream, key, mapped)
        self._edges[edge] = None
        self._upstream[downstream].append(edge)
        self._downstream[upstream].append(edge)
        if key is not None:
            bound = self._bound_keys.get(downstream)
            if bound is None:
                bound = self._bound_keys[downstream] = {}
            bound[key] = upstream
        if self._journal is not None:
            self._journal.append(("edge", edge))

    def _set_constant(self, task: Task, key: str, value: Any) -> None:
        """Pass ``value`` to ``task`` as argument ``key`` (undone with the wiring call if it fails)."""
        constants = self.constants.setdefault(task, {})
        if self._journal is not None:
            self._journal.append(("constant", task, key, key in constants, constants.get(key)))
        constants[key] = value

    def _undo(self, journal: list[tuple[Any, ...]]) -> None:
        """Take out what a failed wiring call added, newest first."""
        for entry in reversed(journal):
            kind = entry[0]
            if kind == "edge":
                edge = entry[1]
                if edge not in self._edges:
                    continue
                del self._edges[edge]
                self._upstream[edge.downstream_task].remove(edge)
                self._downstream[edge.upstream_task].remove(edge)
                bound = self._bound_keys.get(edge.downstream_task)
                if edge.key is not None and bound and bound.get(edge.key) is edge.upstream_task:
                    del bound[edge.key]
            elif kind == "constant":
                _, task, key, had, old = entry
                constants = self.constants.get(task, {})
                if had:
                    constants[key] = old
                else:
                    constants.pop(key, None)
                    if not constants:
                        self.constants.pop(task, None)
            else:
                _, added, old_slug, old_count = entry
                if added is None or added not in self._tasks:
                    continue
                del self._tasks[added]
                del self._upstream[added], self._downstream[added]
                slug = added.slug
                if slug is not None and self._slugs.get(slug) is added:
                    del self._slugs[slug]
                if old_count is None:
                    self._slug_counts.pop(added.name, None)
                else:
                    self._slug_counts[added.name] = old_count
                added.slug = old_slug
                self.constants.pop(added, None)
                self._bound_keys.pop(added, None)
                self._reference_tasks.pop(added, None)
                for case in self._cases:
                    if added in case._added:
                        case._added.remove(added)

    def _path(self, start: Task, goal: Task) -> list[Task] | None:
        """A downstream path from ``start`` to ``goal``, or None (iterative DFS)."""
        if not self._downstream.get(start):
            return None
        parents: dict[Task, Task | None] = {start: None}
        stack = [start]
        while stack:
            node = stack.pop()
            for edge in self._downstream.get(node, ()):
                nxt = edge.downstream_task
                if nxt is goal:  # checked first, so start == goal finds a cycle back to start
                    path = [nxt]
                    cur: Task | None = node
                    while cur is not None:
                        path.append(cur)
                        cur = parents[cur]
                    return path[::-1]
                if nxt in parents:
                    continue
                parents[nxt] = node
                stack.append(nxt)
        return None

    @_atomic
    def chain(self, *tasks: Any, validate: bool | None = None) -> list[Edge]:
        """Make each task depend on the one before it."""
        found = [as_task(t, flow=self) for t in tasks]
        return [self.add_edge(a, b) for a, b in zip(found, found[1:], strict=False)]

    @_atomic
    def set_dependencies(
        self,
        task: Any,
        upstream_tasks: Iterable[Any] | None = None,
        downstream_tasks: Iterable[Any] | None = None,
        keyword_tasks: dict[str, Any] | None = None,
        mapped: bool = False,
        validate: bool | None = None,
    ) -> None:
        """Add ``task`` with edges from ``upstream_tasks``, to ``downstream_tasks``, and keyword inputs."""
        task = as_task(task, flow=self)
        self.add_task(task)
        for t in upstream_tasks or ():
            self.add_edge(t, task, mapped=mapped)
        for t in downstream_tasks or ():
            self.add_edge(task, t, mapped=mapped)
        for key, t in (keyword_tasks or {}).items():
            if isinstance(t, Task) or mapped:
                self.add_edge(t, task, key=key, mapped=mapped)
            else:
                self._set_constant(task, key, t)

    def upstream_tasks(self, task: Task) -> set[Task]:
        return {e.upstream_task for e in self._upstream.get(task, ())}

    def downstream_tasks(self, task: Task) -> set[Task]:
        return {e.downstream_task for e in self._downstream.get(task, ())}

    def edges_to(self, task: Task) -> set[Edge]:
        return set(self._upstream.get(task, ()))

    def edges_from(self, task: Task) -> set[Edge]:
        return set(self._downstream.get(task, ()))

    def root_tasks(self) -> set[Task]:
        return {t for t in self._tasks if not self._upstream[t]}

    def terminal_tasks(self) -> set[Task]:
        return {t for t in self._tasks if not self._downstream[t]}

    def parameters(self) -> set[Parameter]:
        return {t for t in self._tasks if isinstance(t, Parameter)}

    def set_reference_tasks(self, tasks: Iterable[Task]) -> None:
        """The tasks whose states decide the flow's state (default: the terminal tasks)."""
        tasks = list(tasks)
        missing = [t for t in tasks if t not in self._tasks]
        if missing:
            raise FlowValidationError(
                f"Flow {self.name!r}: reference tasks must be in the flow; not found: {', '.join(map(repr, missing))}."
            )
        self._reference_tasks = dict.fromkeys(tasks)

    def reference_tasks(self) -> set[Task]:
        """The tasks whose states decide the flow run's: those set, else the terminal tasks.

        As in Prefect 1, a resource manager's cleanup task is looked through: the tasks it
        follows count as terminal, so a failed task in a resource block fails the flow run
        even though its cleanup succeeded.
        """
        if self._reference_tasks:
            return set(self._reference_tasks)
        if not any(getattr(t, "_not_a_reference_task", False) for t in self._tasks):
            return self.terminal_tasks()

        def looked_through(t: Task) -> bool:
            return bool(getattr(t, "_not_a_reference_task", False))

        return {t for t in self._tasks if not looked_through(t)
                and all(looked_through(e.downstream_task) for e in self._downstream[t])}

    @property
    def slugs(self) -> dict[Task, str]:
        """Each task's slug, as Prefect 1's ``Flow.slugs``."""
        return {task: task.slug for task in self._tasks if task.slug is not None}

    def get_tasks(self, name: str | None = None, slug: str | None = None, tags: Iterable[str] | None = None) -> list[Task]:
        """Tasks matching every given filter."""
        tags = set(tags or ())
        return [
            t
            for t in self._tasks
            if (name is None or t.name == name) and (slug is None or t.slug == slug) and tags <= t.tags
        ]

    def task_by_slug(self, slug: str) -> Task:
        try:
            return self._slugs[slug]
        except KeyError:
            raise KeyError(f"Flow {self.name!r} has no task with slug {slug!r}.") from None

    def sorted_tasks(self) -> list[Task]:
        """Tasks in a topological order (ties in insertion order). Raises CycleError on a cycle."""
        remaining = {t: len({e.upstream_task for e in self._upstream[t]}) for t in self._tasks}
        ready = deque(t for t, n in remaining.items() if n == 0)
        order: list[Task] = []
        while ready:
            t = ready.popleft()
            order.append(t)
            for d in dict.fromkeys(e.downstream_task for e in self._downstream[t]):
                remaining[d] -= 1
                if remaining[d] == 0:
                    ready.append(d)
        if len(order) != len(self._tasks):
            stuck = [t for t in self._tasks if remaining[t] > 0]
            cycle = self._find_cycle(stuck)
            raise CycleError(
                f"Flow {self.name!r} has a cycle: " + " -> ".join(t.slug or t.name for t in cycle), cycle
            )
        return order

    def _find_cycle(self, candidates: list[Task]) -> list[Task]:
        for start in candidates:
            path = self._path(start, start)
            if path:
                return path
        return candidates

    # --- checks ----------------------------------------------------------------------------

    def validate(self) -> None:
        """Raise :class:`FlowValidationError` if the graph cannot run (cycles, dangling edges, bad references)."""
        for edge in self._edges:
            for t in (edge.upstream_task, edge.downstream_task):
                if t not in self._tasks:
                    raise FlowValidationError(f"Flow {self.name!r}: an edge refers to {t!r}, which is not in the flow.")
        for t in self._reference_tasks:
            if t not in self._tasks:
                raise FlowValidationError(f"Flow {self.name!r}: reference task {t!r} is not in the flow.")
        self.sorted_tasks()

    # --- copying -----------------------------------------------------------------------------

    def copy(self) -> Flow:
        """A new flow with the same tasks, edges and settings; changing its graph leaves this one alone."""
        new = _copy.copy(self)
        new._tasks = dict(self._tasks)
        new._edges = dict(self._edges)
        new._upstream = {t: list(es) for t, es in self._upstream.items()}
        new._downstream = {t: list(es) for t, es in self._downstream.items()}
        new._slugs = dict(self._slugs)
        new._slug_counts = dict(self._slug_counts)
        new._reference_tasks = dict(self._reference_tasks)
        new.constants = {t: dict(c) for t, c in self.constants.items()}
        new._bound_keys = {t: dict(k) for t, k in self._bound_keys.items()}
        new.state_handlers = list(self.state_handlers)
        new._cases = []
        return new

    def __iter__(self) -> Iterator[Task]:
        return iter(self.sorted_tasks())

    def __len__(self) -> int:
        return len(self._tasks)

    def __bool__(self) -> bool:
        """Always true: an empty flow is still a flow (``flow or Flow._active()`` must keep it)."""
        return True

    def __repr__(self) -> str:
        return f"<Flow: name={self.name!r}, tasks={len(self._tasks)}>"

    # --- serialization -----------------------------------------------------------------------

    def serialize(self) -> dict[str, Any]:
        """The flow's metadata (never its code) as JSON-ready data; deterministic across processes."""
        from headwater.serialization.flow_metadata import serialize_flow

        return serialize_flow(self)

    def serialized_hash(self) -> str:
        """sha256 of :meth:`serialize` as canonical JSON: equal hashes mean unchanged metadata."""
        from headwater.serialization.flow_metadata import flow_hash

        return flow_hash(self)

    # --- declarative specs (headwater.spec) ----------------------------------------------------

    @classmethod
    def from_flow_spec(cls, spec: Any) -> SpecFlow:
        """A flow from a declarative spec: a dict, or a YAML/JSON file path (see ``headwater.spec``)."""
        from headwater.spec.spec import flow_from_spec

        return flow_from_spec(spec, flow_class=cls)

    @classmethod
    def from_flow_dict(cls, flow_dict: Any) -> SpecFlow:
        """A spec flow from its flow dict (the inverse of :meth:`to_flow_dict`)."""
        from headwater.spec.model import flow_from_dict

        return flow_from_dict(flow_dict, flow_class=cls)

    def to_flow_dict(self) -> dict[str, Any]:
        """This spec flow with its whole run state, as a JSON-ready dict."""
        from headwater.spec.model import SpecError, SpecFlow, flow_to_dict

        if not isinstance(self, SpecFlow):
            raise SpecError(
                f"Flow {self.name!r} is not a spec flow: to_flow_dict() is for flows built with Flow.from_flow_spec() "
                "or Flow.from_flow_dict(); serialize a Python flow's metadata with flow.serialize()."
            )
        return flow_to_dict(self)

    # --- running ---------------------------------------------------------------------------

    def run(
        self,
        parameters: dict[str, Any] | None = None,
        *,
        run_on_schedule: bool | None = None,
        executor: Executor | None = None,
        context: dict[str, Any] | None = None,
        cancel: Any = None,
        on_task_state: Callable[..., Any] | None = None,
        **kwargs: Any,
    ) -> State:
        """Run the flow locally and return its final state (``state.result[task]`` is each task's state).

        With a schedule, runs at each scheduled time until the schedule ends or the process
        is stopped, unless ``run_on_schedule=False`` (or ``HEADWATER__FLOWS__RUN_ON_SCHEDULE=false``).
        Extra keyword arguments are parameters too, as in Prefect 1, except the ``FlowRunner.run``
        arguments (``task_states``, ``return_tasks``) that are not parameter names: those go to
        the runner.
        """
        from headwater.engine.flow_runner import RUNNER_ARGUMENTS, run_flow
        from headwater.utilities.debug import RaisedInTask

        runner_args = {}
        if kwargs:
            names = {p.name for p in self.parameters()}
            runner_args = {k: kwargs.pop(k) for k in list(kwargs) if k in RUNNER_ARGUMENTS and k not in names}
        params = {**(parameters or {}), **kwargs}
        ambient = _current_context.get()
        if ambient:  # ``with headwater.context(who="x"): flow.run()``: tasks see ``who``, as in Prefect 1
            inherited = {k: v for k, v in ambient.items() if k not in _RUN_CONTEXT_KEYS and not k.startswith("task_")}
            if inherited:
                context = {**inherited, **(context or {})}
        try:
            return run_flow(
                self,
                parameters=params,
                run_on_schedule=run_on_schedule,
                executor=executor,
                context=context,
                cancel=cancel,
                on_task_state=on_task_state,
                **runner_args,
            )
        except RaisedInTask as carrier:  # ``with raise_on_exception():`` the task's own exception, unchanged
            raise carrier.exc.with_traceback(carrier.exc.__traceback__) from None

    # --- Prefect 1's graph editing and helpers -----------------------------------------------------

    @property
    def logger(self) -> logging.Logger:
        """The flow's logger (``headwater.<flow name>``), as ``flow.logger`` in Prefect 1."""
        from headwater.utilities.logging import get_logger

        return get_logger(self.name)

    def _remove(self, task: Task) -> None:
        """Take ``task`` and its edges out of the graph (for :meth:`replace`)."""
        for edge in list(self._upstream.get(task, ())) + list(self._downstream.get(task, ())):
            self._edges.pop(edge, None)
            if edge in self._downstream.get(edge.upstream_task, ()):
                self._downstream[edge.upstream_task].remove(edge)
            if edge in self._upstream.get(edge.downstream_task, ()):
                self._upstream[edge.downstream_task].remove(edge)
            if edge.key is not None:
                bound = self._bound_keys.get(edge.downstream_task, {})
                if bound.get(edge.key) is edge.upstream_task:
                    del bound[edge.key]
        del self._tasks[task]
        del self._upstream[task], self._downstream[task]
        if task.slug is not None and self._slugs.get(task.slug) is task:
            del self._slugs[task.slug]
        self.constants.pop(task, None)
        self._bound_keys.pop(task, None)

    def replace(self, old: Task, new: Any, validate: bool = True) -> None:
        """Put ``new`` (a task, or a value made a Constant) where ``old`` is: same edges, constants and reference role.

        Inputs of ``old`` (keyed edges and constants) that ``new`` does not take are dropped, so a
        task can be replaced by a value; unkeyed upstream edges are kept.
        """
        if old not in self._tasks:
            raise ValueError(f"Flow {self.name!r}: cannot replace {old!r}, it is not in the flow.")
        new = as_task(new, flow=self)
        incoming = list(self._upstream[old])
        outgoing = list(self._downstream[old])
        constants = dict(self.constants.get(old, {}))
        was_reference = old in self._reference_tasks
        self._remove(old)
        self.add_task(new)
        takes = set(new._input_names())
        takes_any = new._takes_var_keyword()
        for e in incoming:
            if e.key is not None and e.key not in takes and not takes_any:
                continue
            self.add_edge(e.upstream_task, new, key=e.key, mapped=e.mapped, flattened=e.flattened, validate=False)
        for e in outgoing:
            self.add_edge(new, e.downstream_task, key=e.key, mapped=e.mapped, flattened=e.flattened, validate=False)
        for key, value in constants.items():
            if key in takes or takes_any:
                self._set_constant(new, key, value)
        if was_reference:
            self._reference_tasks = {(new if t is old else t): None for t in self._reference_tasks}
        if validate:
            self.validate()

    def update(self, flow: Flow, merge_parameters: bool = False, validate: bool | None = None) -> None:
        """Add every task, edge and constant of ``flow`` to this one.

        ``merge_parameters=True`` makes a parameter of ``flow`` that has the name of one here the
        same parameter (otherwise two parameters of one name are an error, as in Prefect 1).
        """
        same: dict[Task, Task] = {}
        if merge_parameters:
            mine = {p.name: p for p in self.parameters()}
            same = {p: mine[p.name] for p in flow.parameters() if p.name in mine}
        for t in flow._tasks:
            if t not in same:
                self.add_task(t)
        for e in flow._edges:
            self.add_edge(same.get(e.upstream_task, e.upstream_task), same.get(e.downstream_task, e.downstream_task),
                          key=e.key, mapped=e.mapped, flattened=e.flattened, validate=validate)
        for t, constants in flow.constants.items():
            for key, value in constants.items():
                self._set_constant(same.get(t, t), key, value)

    def diagnostic(self, secrets: bool = False) -> str:
        """JSON describing this machine and this flow, for bug reports (no values of secrets or parameters).

        ``secrets=True`` also lists the names (never the values) of secrets set in the environment.
        """
        import json
        import os
        import platform

        from headwater._version import __version__

        info: dict[str, Any] = {
            "system_information": {
                "headwater_version": __version__,
                "platform": platform.platform(),
                "python_version": platform.python_version(),
            },
            "config_overrides": sorted(k for k in os.environ if k.startswith("HEADWATER__")
                                       and "SECRETS" not in k and "KEY" not in k and "TOKEN" not in k),
            "flow_information": {
                "name": self.name,
                "tasks": len(self._tasks),
                "edges": len(self._edges),
                "parameters": sorted(p.name for p in self.parameters()),
                "schedule": type(self.schedule).__name__ if self.schedule is not None else None,
                "storage": type(self.storage).__name__ if self.storage is not None else None,
                "run_config": type(self.run_config).__name__ if self.run_config is not None else None,
                "executor": type(self.executor).__name__ if self.executor is not None else None,
                "result": type(self.result).__name__ if self.result is not None else None,
                "task_types": dict(sorted(_count(type(t).__name__ for t in self._tasks).items())),
            },
        }
        if secrets:
            prefix = "HEADWATER__CONTEXT__SECRETS__"
            info["secret_names"] = sorted(k[len(prefix):] for k in os.environ if k.startswith(prefix))
        return json.dumps(info, indent=4, sort_keys=True)

    def register(
        self,
        project_name: str | None = None,
        build: bool = True,
        labels: Iterable[str] | None = None,
        set_schedule_active: bool = True,
        **kwargs: Any,
    ) -> str:
        """Register this flow with the API (``headwater.Client().register``); returns the flow id.

        Needs the headwater-cloud-api plugin (``pip install headwater-cloud-api``). ``build=False``
        (Prefect 1's "storage is already built") is not supported: registration builds storage.
        """
        if not project_name:
            raise ValueError(
                f"Flow {self.name!r}: register() needs project_name=..., the project to register into "
                "(create it with `headwater project create NAME`)."
            )
        if not build:
            raise ValueError(
                f"Flow {self.name!r}: register(build=False) is not supported; headwater builds the flow's storage "
                "when it registers (unchanged storage is not rebuilt). Drop build=False."
            )
        from headwater.client import INSTALL_HINT, Client, MissingClientResourceError

        client = Client()
        try:
            client._resource_class("registration")
        except MissingClientResourceError:
            raise MissingClientResourceError(
                f"Flow {self.name!r}: register() needs the orchestration API plugin, which is not installed: "
                f"{INSTALL_HINT}. To run the flow without an API, call flow.run()."
            ) from None
        return client.register(self, project_name, labels=list(labels or ()), schedule=set_schedule_active, **kwargs)

    # --- pictures ----------------------------------------------------------------------------

    def visualize(self, flow_state: State | None = None, filename: Any = None, format: str | None = None) -> str:
        """The DAG schematic as SVG text (the web UI's drawing); colored by ``flow_state`` (a finished run's state).

        ``filename``: also write it there (``.svg``; ``.png``/``.pdf`` or ``format`` need graphviz's ``dot``).
        """
        from headwater.utilities.visualization import visualize_flow

        return visualize_flow(self, flow_state, filename, format)
