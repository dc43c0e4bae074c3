"""Branching in a flow: ``case``, ``merge``, ``ifelse`` and ``switch`` (Prefect-1 compatible).

A branch is a set of tasks behind a :class:`CompareValue` task that raises
:class:`~headwater.signals.SKIP` unless the condition's result equals the branch's value.
A branch not taken therefore ends Skipped, and the engine skips everything downstream of it
(``skip_on_upstream_skip``). :func:`merge` joins branches again: it runs as long as not
every branch was skipped and returns the first result that is not None.

Example::

    with Flow("branching") as flow:
        cond = Parameter("cond")
        with case(cond, True):
            a = do_this()
        with case(cond, False):
            b = do_that()
        result = merge(a, b)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from headwater import signals
from headwater.core.collections import Constant
from headwater.core.parameter import Parameter
from headwater.core.task import Task, as_task
from headwater.triggers import not_all_skipped

if TYPE_CHECKING:
    from headwater.core.flow import Flow

__all__ = ["CompareValue", "Merge", "FilterTask", "case", "merge", "ifelse", "switch"]


def _require_flow(flow: Flow | None, what: str) -> Flow:
    from headwater.core.flow import Flow

    active = flow or Flow._active()
    if active is None:
        raise ValueError(
            f"{what} needs a flow to add its tasks to, and no flow is active. Use it inside "
            "`with Flow(...) as flow:` (or pass flow=...)."
        )
    return active


class CompareValue(Task):
    """Succeeds (returning None) when its input equals ``value``; raises SKIP otherwise."""

    def __init__(self, value: Any, **kwargs: Any) -> None:
        self.value = value
        kwargs.setdefault("name", f"case({value!r})")
        kwargs.setdefault("checkpoint", False)
        super().__init__(**kwargs)

    def run(self, value: Any) -> None:
        if value != self.value:
            raise signals.SKIP(f"Provided value {value!r} did not match {self.value!r}: this branch is not taken.")
        return None


class Merge(Task):
    """Returns the first upstream result that is not None, in argument order (joins branches).

    Runs unless every upstream task was skipped (trigger ``not_all_skipped``) and never skips
    because one upstream branch did (``skip_on_upstream_skip=False``).
    """

    def __init__(self, **kwargs: Any) -> None:
        if kwargs.setdefault("skip_on_upstream_skip", False):
            raise ValueError("Merge tasks must have skip_on_upstream_skip=False: a skipped branch is expected.")
        kwargs.setdefault("trigger", not_all_skipped)
        super().__init__(**kwargs)

    def run(self, **task_results: Any) -> Any:
        ordered = sorted(task_results.items(), key=lambda item: _branch_number(item[0]))
        return next((value for _, value in ordered if value is not None), None)


def _branch_number(key: str) -> tuple[int, str]:
    """``task12`` sorts after ``task2`` (numeric order of the ``taskN`` keys)."""
    digits = key[len("task"):] if key.startswith("task") else ""
    return (int(digits), key) if digits.isdigit() else (1 << 62, key)


def merge(*tasks: Any, flow: Flow | None = None) -> Task:
    """A :class:`Merge` task fed by ``tasks``: the result of whichever branch ran.

    With several branches that ran, the first (in argument order) whose result is not None wins.
    """
    if not tasks:
        raise ValueError("merge() needs at least one task to merge, e.g. merge(branch_a, branch_b).")
    active = _require_flow(flow, "merge()")
    return Merge().bind(**{f"task{i}": t for i, t in enumerate(tasks, start=1)}, flow=active)


class case:  # noqa: N801 - Prefect-1 spelling
    """``with case(task, value):`` — the tasks added inside run only when ``task``'s result equals ``value``.

    On leaving the block a :class:`CompareValue` task is bound to ``task``, and every task
    added in the block that has no upstream task among the block's tasks gets it as an
    upstream. Cases nest: an inner case's comparison becomes part of the outer branch.
    Parameters and constants first used inside the block are flow inputs, not branch work, and
    are left alone. The block may sit inside ``with headwater.context(...)`` (or contain one):
    cases belong to the flow being built, not to the context. As in Prefect 1, ``value`` cannot
    be a task, and one case object belongs to one flow.
    """

    def __init__(self, task: Any, value: Any) -> None:
        if isinstance(value, Task):
            raise TypeError(
                f"case(task, value): `value` cannot be a task (got {value!r}); compare with a plain value, "
                "or branch on a task that computes the comparison: with case(a == b, True): ..."
            )
        self.task = task
        self.value = value
        self._added: list[Task] = []  # added to the flow during the open block (the flow appends to it)
        self._tasks: dict[Task, None] = {}  # every block's tasks, in order (Prefect 1's case._tasks)
        self._flow: Flow | None = None

    def __enter__(self) -> case:
        flow = _require_flow(None, f"case({self.value!r})")
        if self._flow is not None and self._flow is not flow:
            raise ValueError(
                f"case({self.value!r}) was already used in flow {self._flow.name!r}: multiple flows cannot be "
                f"used with the same case statement. Create a new case(...) for flow {flow.name!r}."
            )
        if self in flow._cases:
            raise RuntimeError(f"case({self.value!r}) is already open; a case block cannot be nested in itself.")
        if isinstance(self.task, Task):
            # The condition is upstream of the branch: it must not count as one of the branch's tasks.
            flow.add_task(self.task)
        self._flow = flow
        flow._cases.append(self)
        return self

    def __exit__(self, exc_type: Any, *exc: Any) -> None:
        flow = self._flow
        assert flow is not None
        if flow._cases and flow._cases[-1] is self:
            flow._cases.pop()
        elif self in flow._cases:
            flow._cases.remove(self)
        if exc_type is not None:
            self._added = []
            return
        # As in Prefect 1, a case object used for a second block keeps the first block's tasks:
        # the second comparison is wired to them too (same condition and value: same outcome).
        for t in self._added:
            if not isinstance(t, (Parameter, Constant)):
                self._tasks[t] = None
        self._added = []
        added = {t: None for t in self._tasks if t in flow._tasks}
        if not added:
            return
        compare = CompareValue(self.value).bind(value=self.task, flow=flow)
        for child in added:
            if not any(up in added for up in flow.upstream_tasks(child)):
                flow.add_edge(compare, child)

    def __repr__(self) -> str:
        return f"<case: {self.task!r} == {self.value!r}>"


def switch(condition: Any, cases: Mapping[Any, Any], flow: Flow | None = None) -> None:
    """Run ``cases[v]`` only when ``condition``'s result equals ``v``; every other case is Skipped.

    Each case task (and what runs downstream of it) waits on a :class:`CompareValue` of the
    condition, so exactly the matching branch runs. Join the branches with :func:`merge`.
    """
    active = _require_flow(flow, "switch()")
    if not isinstance(cases, Mapping) or not cases:
        raise ValueError(f"switch() takes a non-empty dict {{value: task}} of cases, got {cases!r}.")
    for value, branch in cases.items():
        target = as_task(branch, flow=active)
        compare = CompareValue(value).bind(value=condition, flow=active)
        active.add_edge(compare, target)


class _AsBool(Task):
    """``bool(x)``: the condition of :func:`ifelse`."""

    def run(self, x: Any) -> bool:
        return bool(x)


def ifelse(condition: Any, true_task: Any, false_task: Any, flow: Flow | None = None) -> None:
    """Run ``true_task`` when ``condition``'s result is truthy, else ``false_task`` (either may be None)."""
    active = _require_flow(flow, "ifelse()")
    cases = {value: t for value, t in ((True, true_task), (False, false_task)) if t is not None}
    if not cases:
        raise ValueError("ifelse() needs a true_task or a false_task (both were None).")
    as_bool = _AsBool(name="as_bool", checkpoint=False).bind(x=condition, flow=active)
    switch(as_bool, cases, flow=active)


def _keep_by_default(result: Any) -> bool:
    """FilterTask's default: drop None (skipped or no result) and exceptions (failed mapped children)."""
    return not isinstance(result, (BaseException, type(None)))


class FilterTask(Task):
    """Filters a list result (typically a mapped task's): ``FilterTask()(mapped_task)`` drops failures and Nones.

    ``filter_func(item) -> bool`` decides what is kept (default: not None and not an exception);
    ``log_func(kept)`` may return a message to log. As in Prefect 1 it runs whatever happened
    upstream (``all_finished``) and is not skipped when an upstream task was.
    """

    def __init__(self, filter_func: Any = None, log_func: Any = None, **kwargs: Any) -> None:
        from headwater.triggers import all_finished

        kwargs.setdefault("skip_on_upstream_skip", False)
        kwargs.setdefault("trigger", all_finished)
        self.filter_func = filter_func or _keep_by_default
        self.log_func = log_func
        super().__init__(**kwargs)

    def run(self, task_result: Any) -> list[Any]:
        kept = [item for item in task_result if self.filter_func(item)]
        if self.log_func is not None:
            message = self.log_func(kept)
            if message is not None:
                self.logger.info(message)
        return kept
