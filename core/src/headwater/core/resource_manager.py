"""Temporary resources in a flow: ``@resource_manager`` (Prefect 1's ``prefect.resource_manager``).

A resource class has ``__init__(...)``, ``setup() -> resource`` and ``cleanup(resource)``.
Calling the decorated class inside a flow adds three tasks: an *init* task (builds the
manager object from the arguments, which may be tasks), a *setup* task (``mgr.setup()``) and
a *cleanup* task (``mgr.cleanup(resource)``). ``with MyResource(...) as resource:`` then makes
every task added in the block that has no upstream task in the block wait for setup, and
every one with no downstream task in the block run before cleanup. Cleanup runs whatever
happened in the block, unless init or setup did not succeed (then it is Skipped), and it is
not one of the flow's default reference tasks, so it never decides the flow's state.

Example::

    @resource_manager
    class TempDir:
        def __init__(self, prefix):
            self.prefix = prefix

        def setup(self):
            self.path = tempfile.mkdtemp(prefix=self.prefix)
            return self.path

        def cleanup(self, path):
            shutil.rmtree(path)

    with Flow("etl") as flow:
        with TempDir("etl-") as path:
            load(extract(path))
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, overload

from headwater import signals
from headwater.core.collections import Constant
from headwater.core.parameter import Parameter
from headwater.core.task import Task, task

if TYPE_CHECKING:
    import contextvars
    from collections.abc import Mapping

    from headwater.core.flow import Flow
    from headwater.states import State

__all__ = [
    "ResourceManager",
    "ResourceContext",
    "ResourceSetupTask",
    "ResourceCleanupTask",
    "resource_cleanup_trigger",
    "resource_manager",
]


class ResourceSetupTask(Task):
    """Sets a resource up with its manager: returns ``mgr.setup()`` (the block's ``as`` value).

    Run again when a flow run restarts, even if given a finished state (Prefect 1): a resource
    does not outlive the run that set it up.
    """

    _rerun_on_restart = True
    """Marks tasks a restarted run runs again unless their given state is Cached (see FlowRunner)."""

    def run(self, mgr: Any) -> Any:
        return mgr.setup()


class ResourceCleanupTask(Task):
    """Cleans a resource up with its manager: ``mgr.cleanup(resource)``.

    Not a default reference task of its flow (``Flow.reference_tasks``): the flow's state is
    decided by the work in the block, not by the cleanup.
    """

    _not_a_reference_task = True
    """Marks tasks the flow leaves out of its default reference tasks (and looks through: see Flow.reference_tasks)."""
    _rerun_on_restart = True

    def run(self, mgr: Any, resource: Any) -> None:
        mgr.cleanup(resource)


def resource_cleanup_trigger(upstream_states: Mapping[Any, State]) -> bool:
    """The cleanup task's trigger: run once every upstream task is finished, if init and setup succeeded.

    Raises TRIGGERFAIL while an upstream task is not finished, and SKIP when the init (edge
    key ``mgr``) or setup (edge key ``resource``) task failed or was skipped: there is nothing
    to clean up then. Failed or skipped tasks of the block do not stop it (Prefect 1). Keys are
    edges, or ``(edge, map_index)`` for each child of a mapped upstream task.
    """
    for key, state in upstream_states.items():
        edge = key[0] if isinstance(key, tuple) else key  # (edge, map index): a mapped upstream's child
        if not state.is_finished():
            raise signals.TRIGGERFAIL(
                "Trigger was 'resource_cleanup_trigger' but some of the upstream tasks were not finished."
            )
        if edge.key == "mgr":
            if state.is_skipped():
                raise signals.SKIP("Resource manager init skipped")
            if not state.is_successful():
                raise signals.SKIP("Resource manager init failed")
        elif edge.key == "resource":
            if state.is_skipped():
                raise signals.SKIP("Resource manager setup skipped")
            if not state.is_successful():
                raise signals.SKIP("Resource manager setup failed")
    return True


class ResourceContext:
    """The ``with`` block of one resource: ``with manager(...) as resource:`` (made by :class:`ResourceManager`).

    Entering returns the setup task (its result is the resource); leaving wires the tasks
    added inside the block between the setup and cleanup tasks. Only the innermost open
    resource block claims a task, as in Prefect 1.
    """

    def __init__(self, init_task: Task, setup_task: Task, cleanup_task: Task, flow: Flow) -> None:
        self.init_task = init_task
        self.setup_task = setup_task
        self.cleanup_task = cleanup_task
        self._flow = flow
        self._tasks: dict[Task, None] = {}  # the tasks of every block of this context, in order
        self._added: list[Task] = []  # the flow appends each task it adds while the block is open (Flow._cases)
        self._token: contextvars.Token[Mapping[str, Any]] | None = None

    def add_task(self, task: Task, flow: Flow) -> None:
        """Put ``task`` under this resource block (what the flow does for tasks added inside it)."""
        if flow is not self._flow:
            raise ValueError(
                f"Multiple flows cannot be used with the same resource block: {self.setup_task.name!r} belongs to "
                f"flow {self._flow.name!r}, not {flow.name!r}. Create the resource in each flow."
            )
        self._tasks[task] = None

    def __enter__(self) -> Task:
        from headwater.utilities.context import _current

        flow = self._flow
        if self in flow._cases:
            raise RuntimeError(f"{self!r} is already open; a resource block cannot be nested in itself.")
        self._outer = next((c for c in reversed(flow._cases) if isinstance(c, ResourceContext)), None)
        flow._cases.append(self)  # the flow reports every task it adds to the open blocks
        self._token = _current.set({**_current.get(), "resource": self})  # Prefect 1: context["resource"]
        return self.setup_task

    def __exit__(self, exc_type: Any, *exc: Any) -> None:
        from headwater.utilities.context import _current

        flow = self._flow
        if self._token is not None:
            _current.reset(self._token)
            self._token = None
        if flow._cases and flow._cases[-1] is self:
            flow._cases.pop()
        elif self in flow._cases:
            flow._cases.remove(self)
        added, self._added = self._added, []
        outer = self.__dict__.pop("_outer", None)
        if exc_type is not None:
            return
        own = (self.init_task, self.setup_task, self.cleanup_task)
        for t in added:
            if t in own or isinstance(t, (Parameter, Constant)):  # flow inputs, not work in the block
                continue
            self.add_task(t, flow)
        if outer is not None:  # the tasks of this (inner) block are not the outer block's
            claimed = set(self._tasks)
            outer._added = [t for t in outer._added if t not in claimed]
        children = [t for t in self._tasks if t in flow._tasks]
        inside = set(children)
        for child in children:
            upstream = flow.upstream_tasks(child)
            if not inside & upstream and self.setup_task not in upstream:
                flow.add_edge(self.setup_task, child)
            downstream = flow.downstream_tasks(child)
            if not inside & downstream and self.cleanup_task not in downstream:
                flow.add_edge(child, self.cleanup_task)

    def __repr__(self) -> str:
        return f"<ResourceContext: {self.init_task.name}>"


class ResourceManager:
    """Makes the init, setup and cleanup tasks of a resource class each time it is called in a flow.

    Usually made with the :func:`resource_manager` decorator. ``name`` defaults to the class
    name; ``init_task_kwargs``, ``setup_task_kwargs`` and ``cleanup_task_kwargs`` are Task
    options for the three tasks. Defaults (Prefect 1): the tasks are named ``name``,
    ``name.setup`` and ``name.cleanup``; setup and cleanup are not checkpointed (a restarted
    run sets the resource up again); cleanup has :func:`resource_cleanup_trigger` and
    ``skip_on_upstream_skip=False``.
    """

    def __init__(
        self,
        resource_class: Callable[..., Any],
        name: str | None = None,
        init_task_kwargs: dict[str, Any] | None = None,
        setup_task_kwargs: dict[str, Any] | None = None,
        cleanup_task_kwargs: dict[str, Any] | None = None,
    ) -> None:
        if not callable(resource_class):
            raise TypeError(
                f"resource_manager needs a class (or callable) with setup() and cleanup(resource), got {resource_class!r}."
            )
        self.resource_class = resource_class
        self.init_task_kwargs = dict(init_task_kwargs or {})
        self.setup_task_kwargs = dict(setup_task_kwargs or {})
        self.cleanup_task_kwargs = dict(cleanup_task_kwargs or {})
        if name is None:
            name = getattr(resource_class, "__name__", "resource")
        self.name = name
        self.init_task_kwargs.setdefault("name", name)
        self.setup_task_kwargs.setdefault("name", f"{name}.setup")
        self.setup_task_kwargs.setdefault("checkpoint", False)
        self.cleanup_task_kwargs.setdefault("name", f"{name}.cleanup")
        self.cleanup_task_kwargs.setdefault("trigger", resource_cleanup_trigger)
        self.cleanup_task_kwargs.setdefault("skip_on_upstream_skip", False)
        self.cleanup_task_kwargs.setdefault("checkpoint", False)

    def __call__(self, *args: Any, flow: Flow | None = None, **kwargs: Any) -> ResourceContext:
        """Add the init, setup and cleanup tasks to ``flow`` (the active one); ``args``/``kwargs`` go to ``__init__``."""
        from headwater.core.flow import Flow

        if flow is None:
            flow = Flow._active()
            if flow is None:
                raise ValueError(
                    f"Could not infer an active Flow context: use {self.name}(...) inside `with Flow(...) as flow:` "
                    "or pass flow=..."
                )
        init_task = task(self.resource_class, **self.init_task_kwargs)(*args, flow=flow, **kwargs)
        setup_task = ResourceSetupTask(**self.setup_task_kwargs)(init_task, flow=flow)
        cleanup_task = ResourceCleanupTask(**self.cleanup_task_kwargs)(init_task, setup_task, flow=flow)
        return ResourceContext(init_task, setup_task, cleanup_task, flow)

    def __repr__(self) -> str:
        return f"<ResourceManager: {self.name}>"


@overload
def resource_manager(
    resource_class: Callable[..., Any],
    *,
    name: str | None = None,
    init_task_kwargs: dict[str, Any] | None = None,
    setup_task_kwargs: dict[str, Any] | None = None,
    cleanup_task_kwargs: dict[str, Any] | None = None,
) -> ResourceManager: ...


@overload
def resource_manager(
    *,
    name: str | None = None,
    init_task_kwargs: dict[str, Any] | None = None,
    setup_task_kwargs: dict[str, Any] | None = None,
    cleanup_task_kwargs: dict[str, Any] | None = None,
) -> Callable[[Callable[..., Any]], ResourceManager]: ...


def resource_manager(
    resource_class: Callable[..., Any] | None = None,
    *,
    name: str | None = None,
    init_task_kwargs: dict[str, Any] | None = None,
    setup_task_kwargs: dict[str, Any] | None = None,
    cleanup_task_kwargs: dict[str, Any] | None = None,
) -> ResourceManager | Callable[[Callable[..., Any]], ResourceManager]:
    """Decorate a resource class (``__init__``, ``setup()``, ``cleanup(resource)``) into a :class:`ResourceManager`.

    ``@resource_manager`` or ``@resource_manager(name=..., setup_task_kwargs=...)``.
    """

    def inner(cls: Callable[..., Any]) -> ResourceManager:
        return ResourceManager(
            cls,
            name=name,
            init_task_kwargs=init_task_kwargs,
            setup_task_kwargs=setup_task_kwargs,
            cleanup_task_kwargs=cleanup_task_kwargs,
        )

    return inner if resource_class is None else inner(resource_class)
