"""Tasks: units of work. Subclass :class:`Task` and implement ``run()``, or decorate a function with ``@task``."""

from __future__ import annotations

import copy
import inspect
import logging
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from headwater.core.edge import flatten, mapped, unmapped

if TYPE_CHECKING:
    from headwater.core.flow import Flow
    from headwater.results import Result

__all__ = ["Task", "FunctionTask", "task", "as_task", "tags", "TaskCallError"]

FLOW_ONLY_ARGUMENTS = ("upstream_tasks", "mapped", "task_args", "flow")
StateHandler = Callable[[Any, Any, Any], Any]


_TRACKING = [0]
"""How many ``with Flow(...)`` blocks are open: while any is, Task.__init__ reports new tasks to the active flow."""

_TAG_STACK: list[frozenset[str]] = []
"""The tags of the open ``with tags(...)`` blocks, innermost last (each includes the outer ones)."""


@contextmanager
def tags(*names: str) -> Iterator[frozenset[str]]:
    """Within the block, every task created or called (copied into a flow) gets these tags too (Prefect 1)."""
    if not all(isinstance(n, str) for n in names):
        raise TypeError(f"tags() takes tag names (strings), got {names!r}.")
    current = (_TAG_STACK[-1] if _TAG_STACK else frozenset()) | frozenset(names)
    _TAG_STACK.append(current)
    try:
        yield current
    finally:
        _TAG_STACK.pop()


class TaskCallError(TypeError, ValueError):
    """A task was called or wired in a way that cannot work (names the task and the fix).

    Both a ``TypeError`` and, as Prefect 1's ``TaskCallError`` usage expects, a ``ValueError``.
    """


_PLAIN_CONSTANTS = frozenset({int, float, str, bool, bytes, type(None), complex})
"""Argument types that are always constants (never a task, a collection of tasks or a marker)."""

_PLAIN_COPY: dict[type, bool] = {}
"""Per task class: copied by ``__dict__`` (no ``__copy__``, no ``__slots__``), as ``copy.copy`` would."""

_lazy: dict[str, Any] = {}
"""Modules that import this one (``headwater.core.flow``, ``headwater.core.collections``), looked up once:
an import statement in a function costs a microsecond on every call, and flow building calls these per task."""


def _flow_module() -> Any:
    module = _lazy.get("flow")
    if module is None:
        from headwater.core import flow as module

        _lazy["flow"] = module
    return module


def _active_flow() -> Any:
    """The innermost flow of an open ``with Flow(...)`` block, or None (``Flow._active()`` without the lookups)."""
    module = _lazy.get("flow") or _flow_module()
    stack = module._active_flows.get()
    return stack[-1] if stack else None


def _seconds(value: float | int | timedelta | None, what: str, task_name: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    raise TypeError(f"Task {task_name!r}: {what} must be seconds (a number) or a datetime.timedelta, got {value!r}.")


class Task:
    """A unit of work in a flow.

    Options are the Prefect-1 ones: ``max_retries``/``retry_delay`` retry a failed run,
    ``timeout`` (seconds or timedelta) ends it TimedOut, ``trigger`` decides from upstream
    states whether to run, ``skip_on_upstream_skip`` propagates skips, ``cache_for``/
    ``cache_key``/``cache_validator`` reuse a recent result, ``checkpoint``/``result``
    persist the return value, ``state_handlers`` see every transition, ``nout`` lets a
    call be unpacked into that many results.
    """

    def __init__(
        self,
        name: str | None = None,
        slug: str | None = None,
        tags: Iterable[str] | None = None,
        max_retries: int = 0,
        retry_delay: float | timedelta | None = None,
        timeout: float | timedelta | None = None,
        trigger: Callable[..., bool] | None = None,
        skip_on_upstream_skip: bool = True,
        cache_for: float | timedelta | None = None,
        cache_key: str | None = None,
        cache_validator: Callable[..., bool] | None = None,
        checkpoint: bool | None = None,
        result: Result | None = None,
        state_handlers: Iterable[StateHandler] | None = None,
        nout: int | None = None,
        log_stdout: bool = False,
        target: str | Callable[..., str] | None = None,
        task_run_name: str | Callable[..., str] | None = None,
        on_failure: Callable[[Any, Any], Any] | None = None,
        retry_on: type[BaseException] | tuple[type[BaseException], ...] | None = None,
    ) -> None:
        self.name = name or type(self).__name__
        self.slug = slug
        self.tags = set(tags or ())
        if _TAG_STACK:  # inside ``with headwater.tags(...)``
            self.tags.update(_TAG_STACK[-1])
        if not isinstance(max_retries, int) or max_retries < 0:
            raise ValueError(f"Task {self.name!r}: max_retries must be a whole number >= 0, got {max_retries!r}.")
        self.max_retries = max_retries
        self.retry_delay = _seconds(retry_delay, "retry_delay", self.name) or 0.0
        self.timeout = _seconds(timeout, "timeout", self.name)
        if self.timeout is not None and self.timeout <= 0:
            raise ValueError(f"Task {self.name!r}: timeout must be positive, got {timeout!r}.")
        if trigger is None:
            from headwater.triggers import all_successful

            trigger = all_successful
        self.trigger = trigger
        self.skip_on_upstream_skip = skip_on_upstream_skip
        self.cache_for = _seconds(cache_for, "cache_for", self.name)
        self.cache_key = cache_key
        if cache_validator is None:
            from headwater.engine.cache import duration_only

            cache_validator = duration_only
        self.cache_validator = cache_validator
        self.checkpoint = checkpoint
        self.result = result
        self.state_handlers = list(state_handlers or ())
        if nout is not None and (not isinstance(nout, int) or nout < 0):
            raise ValueError(f"Task {self.name!r}: nout must be a whole number >= 0, got {nout!r}.")
        self.nout = nout
        self.log_stdout = log_stdout
        if target is not None and not (isinstance(target, str) and target) and not callable(target):
            raise ValueError(
                f"Task {self.name!r}: target must be a location template such as '{{task_name}}-{{today}}.pkl' "
                f"or a callable returning one, got {target!r}."
            )
        self.target = target
        """Where the result lives (Prefect 1's target caching): when it exists, the task is not run."""
        if task_run_name is not None and not isinstance(task_run_name, str) and not callable(task_run_name):
            raise TypeError(
                f"Task {self.name!r}: task_run_name must be a template such as 'load-{{table}}' or a callable "
                f"taking the inputs and context as keywords, got {task_run_name!r}."
            )
        self.task_run_name = task_run_name
        """The name of each task run: a template formatted with the inputs and the context, or a callable."""
        if retry_on is not None:
            classes = retry_on if isinstance(retry_on, tuple) else (retry_on,)
            if not classes or not all(isinstance(c, type) and issubclass(c, BaseException) for c in classes):
                raise TypeError(
                    f"Task {self.name!r}: retry_on must be an exception class or a tuple of them, got {retry_on!r}."
                )
            retry_on = classes
        self.retry_on = retry_on
        """Retry only failures whose exception is one of these (None: every failure)."""
        if on_failure is not None:
            if not callable(on_failure):
                raise TypeError(f"Task {self.name!r}: on_failure must be a callable (task, state), got {on_failure!r}.")
            self.state_handlers.append(OnFailure(on_failure))
        self.on_failure = on_failure
        signature = self._signature()
        if nout is None:
            self.nout = _nout_from_annotation(self, signature)
        reserved = [p for p in signature.parameters if p in FLOW_ONLY_ARGUMENTS]
        if reserved:
            raise TaskCallError(
                f"Task {self.name!r}: run() may not take an argument named {reserved[0]!r}; "
                f"{', '.join(FLOW_ONLY_ARGUMENTS)} are reserved for wiring. Rename the argument."
            )
        if _TRACKING[0]:  # inside `with Flow(...)`: the flow warns at the end if this task is never added
            from headwater.core.flow import Flow

            active = Flow._active()
            if active is not None:
                active.__dict__.setdefault("_created", []).append(self)

    # --- what the task does -------------------------------------------------------------

    def run(self, *args: Any, **kwargs: Any) -> Any:
        """The work. Subclasses override this; its arguments are the task's inputs."""
        raise NotImplementedError(f"Task {self.name!r} ({type(self).__name__}) does not implement run().")

    def _signature(self) -> inspect.Signature:
        """``run()``'s signature, computed once per task (copies share it)."""
        sig = self.__dict__.get("_signature_cache")
        if sig is None:
            sig = self.__dict__["_signature_cache"] = inspect.signature(self.run)
        return sig

    def _simple_binding(self) -> tuple[tuple[str, ...], frozenset[str], frozenset[str]] | None:
        """``(names, all names, required names)`` when run() takes only plain arguments, else None.

        Plain arguments (no ``*args``, ``**kwargs``, positional-only or keyword-only ones) bind
        without ``inspect.Signature.bind``: the hot path of building a flow.
        """
        cached = self.__dict__.get("_simple_binding_cache", False)
        if cached is False:
            params = list(self._signature().parameters.values())
            if all(p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD for p in params):
                names = tuple(p.name for p in params)
                required = frozenset(p.name for p in params if p.default is inspect.Parameter.empty)
                cached = (names, frozenset(names), required)
            else:
                cached = None
            self.__dict__["_simple_binding_cache"] = cached
            self.__dict__["_kwargs_only_cache"] = (
                len(params) == 1 and params[0].kind is inspect.Parameter.VAR_KEYWORD
            )
        return cached

    def inputs(self) -> list[str]:
        """Names of the arguments ``run()`` takes."""
        return list(self._input_names())

    def _input_names(self) -> frozenset[str] | tuple[str, ...]:
        cached = self.__dict__.get("_inputs_cache")
        if cached is None:
            params = self._signature().parameters.values()
            names = tuple(p.name for p in params if p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD))
            var_kw = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params)
            cached = self.__dict__["_inputs_cache"] = (names, var_kw)
        return cached[0]

    def _takes_var_keyword(self) -> bool:
        self._input_names()
        return bool(self.__dict__["_inputs_cache"][1])

    def __getstate__(self) -> dict[str, Any]:
        """The task's attributes without its caches (rebuilt on first use), so pickles are stable."""
        state = dict(self.__dict__)
        for cache in _CACHES:
            state.pop(cache, None)
        return state

    # --- copying and calling ------------------------------------------------------------

    def copy(self, **task_args: Any) -> Task:
        """A shallow copy with ``task_args`` (any constructor option) changed."""
        if "_simple_binding_cache" not in self.__dict__ or "_inputs_cache" not in self.__dict__:
            self._input_names()  # computed once on the original, shared by every copy
            self._simple_binding()
        cls = type(self)
        plain = _PLAIN_COPY.get(cls)
        if plain is None:
            plain = _PLAIN_COPY[cls] = getattr(cls, "__copy__", None) is None and "__slots__" not in cls.__dict__
        if plain:
            new = cls.__new__(cls)  # what copy.copy does, without the __reduce_ex__ round trip
            new.__dict__ = self.__dict__.copy()  # one C-level copy (an update of the empty dict costs twice that)
        else:
            new = copy.copy(self)
        new.slug = None
        new.tags = set(self.tags)
        if _TAG_STACK:  # inside ``with headwater.tags(...)``
            new.tags.update(_TAG_STACK[-1])
        new.state_handlers = list(self.state_handlers)
        for key, value in task_args.items():
            if key in ("retry_delay", "timeout", "cache_for"):
                value = _seconds(value, key, self.name)
                if key == "retry_delay":
                    value = value or 0.0
            elif key == "tags":
                value = set(value)
            elif not hasattr(new, key):
                raise TaskCallError(f"Task {self.name!r}: unknown task option {key!r} in task_args.")
            setattr(new, key, value)
        return new

    def __call__(
        self,
        *args: Any,
        mapped: bool = False,
        task_args: dict[str, Any] | None = None,
        upstream_tasks: Iterable[Any] | None = None,
        flow: Flow | None = None,
        **kwargs: Any,
    ) -> Task:
        """In a flow: a copy of this task bound to ``args``/``kwargs`` (creating edges). Outside: ``run()``.

        Calling outside a flow runs the task's function directly, which is handy in unit
        tests; flow-only arguments (``upstream_tasks``, ``mapped``, ``task_args``, ``flow``)
        or task results as arguments need a flow and are an error there.
        """
        active = flow or _active_flow()
        if active is None:
            flow_only = [
                name
                for name, value in (("upstream_tasks", upstream_tasks), ("mapped", mapped), ("task_args", task_args))
                if value
            ]
            if flow_only or _contains_task((args, kwargs)):
                what = f"flow-only argument {flow_only[0]!r}" if flow_only else "another task's result as an argument"
                raise TaskCallError(
                    f"Task {self.name!r} was called outside a flow with {what}. Wiring needs a flow: call it inside "
                    f"`with Flow(...) as flow:` or pass flow=..., or call `{self.name}.run(...)` to run the function alone."
                )
            bound = self._bind_arguments(args, kwargs)
            return self.run(**bound)
        new = self.copy(**task_args) if task_args else self.copy()
        new._wire(active, new._bind_arguments(args, kwargs), mapped, upstream_tasks, fresh=True)
        return new

    def _bind_arguments(self, args: tuple[Any, ...], kwargs: dict[str, Any], partial: bool = False) -> dict[str, Any]:
        simple = self._simple_binding()
        if simple is None and not args and self.__dict__.get("_kwargs_only_cache"):
            return dict(kwargs)  # run(**kwargs) alone (collection tasks): every keyword binds as it is
        if simple is not None:
            names, known, required = simple
            if len(args) <= len(names):
                result = dict(zip(names, args, strict=False))
                if not kwargs or all(k in known and k not in result for k in kwargs):
                    if kwargs:
                        result.update(kwargs)
                    if partial or len(result) == len(names) or required.issubset(result):
                        return result
            # a mistake: let inspect word the error below
        sig = self._signature()
        try:
            bound = sig.bind_partial(*args, **kwargs) if partial else sig.bind(*args, **kwargs)
        except TypeError as exc:
            raise TaskCallError(f"Task {self.name!r}: {exc}. run() takes ({', '.join(sig.parameters)}).") from None
        result = dict(bound.arguments)
        for name, param in sig.parameters.items():
            if param.kind is inspect.Parameter.VAR_KEYWORD and name in result:
                result.update(result.pop(name))
            elif param.kind is inspect.Parameter.VAR_POSITIONAL and name in result:
                raise TaskCallError(
                    f"Task {self.name!r}: run() takes *{name}; tasks bind inputs by name, so use keyword arguments."
                )
        return result

    def bind(
        self,
        *args: Any,
        mapped: bool = False,
        upstream_tasks: Iterable[Any] | None = None,
        flow: Flow | None = None,
        **kwargs: Any,
    ) -> Task:
        """Bind inputs to this task in ``flow`` (the active one by default), adding the edges."""
        flow = flow or _active_flow()
        if flow is None:
            raise TaskCallError(
                f"Task {self.name!r}: bind() needs a flow; call it inside `with Flow(...) as flow:` or pass flow=..."
            )
        return self._wire(flow, self._bind_arguments(args, kwargs), mapped, upstream_tasks)

    def _wire(
        self, flow: Flow, arguments: dict[str, Any], mapped: bool, upstream_tasks: Iterable[Any] | None,
        fresh: bool = False,
    ) -> Task:
        """Add this task, its argument edges and constants, and its upstream edges to ``flow``, atomically.

        ``fresh``: this task is a copy made by this call and not in any flow yet, so an edge into
        it cannot close a cycle or repeat, and its argument names were just checked by binding:
        argument edges skip those checks (the hot path of building a flow).
        """
        flow_module = _flow_module()
        fast_edge = fresh and type(flow).add_edge is flow_module.Flow.add_edge and self not in flow._tasks
        # One atomic wiring call (what ``_Atomic`` does, inline: this is the hot path): a bad
        # argument takes out this task and the edges already added.
        outer = flow._journal is None
        if outer:
            flow._journal = []
        try:
            flow.add_task(self)
            for key, value in arguments.items():
                if fast_edge:
                    if not mapped and type(value) in _PLAIN_CONSTANTS:  # a number, a string ...: a constant
                        flow._set_constant(self, key, value)
                        continue
                    if isinstance(value, Task):
                        if value not in flow._tasks:
                            flow.add_task(value)
                        flow._add_fresh_edge(value, self, key, mapped)
                        continue
                value, is_mapped, flat = _unwrap(value, mapped)
                if isinstance(value, Task) or is_mapped or flat or _contains_task(value):
                    upstream = as_task(value, flow=flow)
                    flow.add_edge(upstream, self, key=key, mapped=is_mapped, flattened=flat)
                else:
                    flow._set_constant(self, key, value)
            for upstream in upstream_tasks or ():  # mapped too when mapping, unless unmapped(...) (Prefect 1)
                upstream, is_mapped, flat = _unwrap(upstream, mapped)
                flow.add_edge(as_task(upstream, flow=flow), self, mapped=is_mapped, flattened=flat)
        except BaseException:
            if outer:
                journal, flow._journal = flow._journal, None
                if journal:
                    flow._undo(journal)
            raise
        if outer:
            flow._journal = None
        return self

    def map(
        self,
        *args: Any,
        upstream_tasks: Iterable[Any] | None = None,
        flow: Flow | None = None,
        task_args: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> Task:
        """Run one copy of this task per item of the (unmapped-aside) arguments; returns the mapped task."""
        active = flow or _active_flow()
        if active is None:
            raise TaskCallError(
                f"Task {self.name!r}: map() needs a flow; call it inside `with Flow(...) as flow:` or pass flow=..."
            )
        new = self.copy(**task_args) if task_args else self.copy()
        new._wire(active, new._bind_arguments(args, kwargs), True, upstream_tasks, fresh=True)
        return new

    # --- imperative wiring ----------------------------------------------------------------

    def set_upstream(self, task: Any, flow: Flow | None = None, key: str | None = None, mapped: bool = False) -> None:
        """Make ``task`` run before this one (passing its result as ``key`` if given)."""
        self.set_dependencies(flow=flow, upstream_tasks=[task] if key is None else None,
                              keyword_tasks={key: task} if key is not None else None, mapped=mapped)

    def set_downstream(self, task: Task, flow: Flow | None = None, key: str | None = None, mapped: bool = False) -> None:
        """Make this task run before ``task`` (passing this result as ``key`` if given)."""
        task.set_upstream(self, flow=flow, key=key, mapped=mapped)

    def set_dependencies(
        self,
        flow: Flow | None = None,
        upstream_tasks: Iterable[Any] | None = None,
        downstream_tasks: Iterable[Task] | None = None,
        keyword_tasks: dict[str, Any] | None = None,
        mapped: bool = False,
        validate: bool | None = None,
    ) -> None:
        """Add this task and its upstream, downstream and keyword edges to ``flow`` (the active one by default)."""
        from headwater.core.flow import Flow

        flow = flow or Flow._active()
        if flow is None:
            raise TaskCallError(
                f"Task {self.name!r}: set_dependencies() needs a flow; pass flow=... or call it inside `with Flow(...)`."
            )
        flow.set_dependencies(
            self,
            upstream_tasks=upstream_tasks,
            downstream_tasks=downstream_tasks,
            keyword_tasks=keyword_tasks,
            mapped=mapped,
            validate=validate,
        )

    # --- logging -------------------------------------------------------------------------------

    @property
    def logger(self) -> logging.Logger:
        """The task's logger (``headwater.<task name>``): ``self.logger.info(...)`` inside ``run()``."""
        override = self.__dict__.get("_logger")
        if override is not None:
            return override
        from headwater.utilities.logging import get_logger

        return get_logger(self.name)

    @logger.setter
    def logger(self, value: logging.Logger) -> None:
        self.__dict__["_logger"] = value

    # --- results of calls ---------------------------------------------------------------------

    def __getitem__(self, key: Any) -> Task:
        """A task that returns ``self_result[key]``."""
        from headwater.core.collections import GetItem

        return GetItem(name=f"{self.name}[{key!r}]")(self, key)

    # --- operators build tasks (Prefect 1): ``a + b``, ``a > 5`` inside a flow -----------------

    def _operator(self, name: str, *args: Any) -> Task:
        from headwater.tasks.core import operators

        return getattr(operators, name)().bind(*args)

    def __add__(self, other: Any) -> Task:
        return self._operator("Add", self, other)

    def __radd__(self, other: Any) -> Task:
        return self._operator("Add", other, self)

    def __sub__(self, other: Any) -> Task:
        return self._operator("Sub", self, other)

    def __rsub__(self, other: Any) -> Task:
        return self._operator("Sub", other, self)

    def __mul__(self, other: Any) -> Task:
        return self._operator("Mul", self, other)

    def __rmul__(self, other: Any) -> Task:
        return self._operator("Mul", other, self)

    def __truediv__(self, other: Any) -> Task:
        return self._operator("Div", self, other)

    def __rtruediv__(self, other: Any) -> Task:
        return self._operator("Div", other, self)

    def __floordiv__(self, other: Any) -> Task:
        return self._operator("FloorDiv", self, other)

    def __rfloordiv__(self, other: Any) -> Task:
        return self._operator("FloorDiv", other, self)

    def __mod__(self, other: Any) -> Task:
        return self._operator("Mod", self, other)

    def __rmod__(self, other: Any) -> Task:
        return self._operator("Mod", other, self)

    def __pow__(self, other: Any) -> Task:
        return self._operator("Pow", self, other)

    def __rpow__(self, other: Any) -> Task:
        return self._operator("Pow", other, self)

    def __and__(self, other: Any) -> Task:
        return self._operator("And", self, other)

    def __rand__(self, other: Any) -> Task:
        return self._operator("And", other, self)

    def __or__(self, other: Any) -> Task:
        return self._operator("Or", self, other)

    def __ror__(self, other: Any) -> Task:
        return self._operator("Or", other, self)

    def __gt__(self, other: Any) -> Task:
        return self._operator("GreaterThan", self, other)

    def __ge__(self, other: Any) -> Task:
        return self._operator("GreaterThanOrEqual", self, other)

    def __lt__(self, other: Any) -> Task:
        return self._operator("LessThan", self, other)

    def __le__(self, other: Any) -> Task:
        return self._operator("LessThanOrEqual", self, other)

    def is_equal(self, other: Any) -> Task:
        """A task returning ``self_result == other`` (``==`` on tasks keeps meaning identity)."""
        return self._operator("Equal", self, other)

    def is_not_equal(self, other: Any) -> Task:
        """A task returning ``self_result != other``."""
        return self._operator("NotEqual", self, other)

    def not_(self) -> Task:
        """A task returning ``not self_result``."""
        return self._operator("Not", self)

    def and_(self, other: Any) -> Task:
        """A task returning ``bool(self_result and other)``."""
        return self._operator("And", self, other)

    def or_(self, other: Any) -> Task:
        """A task returning ``bool(self_result or other)``."""
        return self._operator("Or", self, other)

    def pipe(self, _task: Task, **kwargs: Any) -> Task:
        """``_task(self, **kwargs)``: chain calls left to right, ``x.pipe(clean).pipe(load, table="t")``."""
        return _task(self, **kwargs)

    def __iter__(self) -> Iterator[Task]:
        if self.nout is None:
            raise TaskCallError(
                f"Task {self.name!r} is not iterable: set nout=N on the task to unpack its result into N tasks."
            )
        return (self[i] for i in range(self.nout))

    def __repr__(self) -> str:
        return f"<Task: {self.name}>"

    # Identity semantics: two tasks are the same node only if they are the same object.
    __hash__ = object.__hash__

    def __eq__(self, other: object) -> bool:  # pragma: no cover - identity
        return self is other


_mapped_marker = mapped


class OnFailure:
    """The state handler ``on_failure=fn`` adds: calls ``fn(task, state)`` when the task enters a Failed state.

    A class, not a closure, so tasks that use it pickle with any pickler.
    """

    def __init__(self, fn: Callable[[Any, Any], Any]) -> None:
        self.fn = fn

    def __call__(self, task: Any, old: Any, new: Any) -> Any:
        if new.is_failed():
            self.fn(task, new)
        return new

    def __repr__(self) -> str:
        return f"on_failure({getattr(self.fn, '__qualname__', self.fn)!r})"


def _nout_from_annotation(task: Task, signature: inspect.Signature) -> int | None:
    """``N`` when ``run()`` is annotated ``-> Tuple[T1, ..., TN]`` (Prefect 1), else None. Once, at creation."""
    annotation = signature.return_annotation
    if annotation is inspect.Signature.empty:
        return None
    if isinstance(annotation, str):  # ``from __future__ import annotations``
        if not annotation.replace(" ", "").lower().startswith(("tuple[", "typing.tuple[")):
            return None
        try:
            import typing

            annotation = typing.get_type_hints(task.run).get("return")
        except Exception:  # an unresolvable name: no nout, as if unannotated
            return None
    import typing

    if typing.get_origin(annotation) is not tuple:
        return None
    args = typing.get_args(annotation)
    if not args or Ellipsis in args or args == ((),):
        return None
    return len(args)


def _contains_task(value: Any, depth: int = 0) -> bool:
    if isinstance(value, Task):
        return True
    if depth > 3:
        return False
    if isinstance(value, (list, tuple, set, frozenset)):
        return any(_contains_task(v, depth + 1) for v in value)
    if isinstance(value, dict):
        return any(_contains_task(v, depth + 1) for v in value.values()) or any(isinstance(k, Task) for k in value)
    return False


def _unwrap(value: Any, mapped: bool) -> tuple[Any, bool, bool]:
    """``(value, is_mapped, flattened)`` with the ``unmapped`` / ``mapped`` / ``flatten`` markers taken off ``value``."""
    flat = False
    while isinstance(value, (unmapped, flatten, _mapped_marker)):
        if isinstance(value, unmapped):
            mapped = False
        elif isinstance(value, _mapped_marker):
            mapped = True
        else:
            flat = True
        value = value.value
    return value, mapped, flat


def as_task(value: Any, flow: Flow | None = None) -> Task:
    """``value`` as a task: tasks pass through, collections of tasks become collection tasks, others Constants."""
    if isinstance(value, Task):
        return value
    from headwater.core.collections import Constant, Dict, List, Set, Tuple

    if isinstance(value, (unmapped, flatten, _mapped_marker)):
        return as_task(value.value, flow=flow)
    if not _contains_task(value):
        return Constant(value)
    if isinstance(value, list):
        return List()(*[as_task(v, flow) for v in value], flow=flow)
    if isinstance(value, tuple):
        return Tuple()(*[as_task(v, flow) for v in value], flow=flow)
    if isinstance(value, (set, frozenset)):
        return Set()(*[as_task(v, flow) for v in value], flow=flow)
    if isinstance(value, dict):
        return Dict()(keys=[as_task(k, flow) if isinstance(k, Task) else k for k in value],
                      values=[as_task(v, flow) for v in value.values()], flow=flow)
    return Constant(value)


class FunctionTask(Task):
    """A task whose ``run`` is a plain function (what ``@task`` makes)."""

    def __init__(self, fn: Callable[..., Any], name: str | None = None, **kwargs: Any) -> None:
        if not callable(fn):
            raise TypeError(f"@task needs a function, got {fn!r}.")
        self.run = fn  # type: ignore[method-assign]
        super().__init__(name=name or getattr(fn, "__name__", "task"), **kwargs)
        self.__doc__ = getattr(fn, "__doc__", None)
        self.__wrapped__ = fn


    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)


_CACHES = ("_signature_cache", "_simple_binding_cache", "_inputs_cache", "_kwargs_only_cache")


def task(fn: Callable[..., Any] | None = None, **task_init_kwargs: Any) -> Any:
    """Turn a function into a task: ``@task`` or ``@task(name=..., max_retries=...)``."""
    if fn is None:
        return lambda f: FunctionTask(fn=f, **task_init_kwargs)
    return FunctionTask(fn=fn, **task_init_kwargs)
