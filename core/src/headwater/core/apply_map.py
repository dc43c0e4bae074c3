"""``apply_map``: map a function that builds several tasks over its inputs (Prefect 1's ``prefect.apply_map``).

``apply_map(func, xs)`` calls ``func`` once, in a temporary flow, on the inputs as tasks, and
copies the subgraph it built into the real flow with every edge mapped: each task ``func``
made runs once per item, and the i-th run of a task feeds the i-th run of the next. So
control flow works per item::

    def inc_if_even(x):
        with case(is_even(x), True):
            x2 = inc(x)
        return merge(x, x2)

    with Flow("example") as flow:
        apply_map(inc_if_even, range(10))

Arguments wrapped in :class:`~headwater.unmapped` are passed whole to every run. Every task
``func`` makes that has no upstream task among the others made by ``func`` gets every
mapped argument (and every unmapped argument that is a task) as an upstream task, so all
mapped inputs have one length and the whole subgraph waits for all of them (Prefect 1).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from headwater.core.collections import Constant
from headwater.core.edge import flatten, mapped, unmapped
from headwater.core.task import Task, _unwrap, as_task

if TYPE_CHECKING:
    from headwater.core.flow import Flow

__all__ = ["apply_map"]

_MARKERS = (unmapped, mapped, flatten)


def apply_map(func: Callable[..., Any], *args: Any, flow: Flow | None = None, **kwargs: Any) -> Any:
    """Map ``func``, a function that adds tasks to a flow, element-wise over ``args`` and ``kwargs``.

    ``flow``: the flow to add to (default: the active one); when given, ``func`` must take a
    ``flow`` keyword argument. Returns what ``func`` returned (its tasks, now mapped ones).
    """
    from headwater.core.flow import Flow

    no_flow_provided = flow is None
    if flow is None:
        flow = Flow._active()
        if flow is None:
            raise ValueError(
                "apply_map: couldn't infer a flow in the current context; call it inside `with Flow(...) as flow:` "
                "or pass flow=..."
            )
    for x in itertools.chain(args, kwargs.values()):
        if not isinstance(x, (Task, *_MARKERS, Sequence)):
            raise TypeError(
                f"apply_map: cannot map over non-sequence object of type `{type(x).__name__}` ({x!r}); pass a task, "
                "a list/tuple/range, or wrap the argument in unmapped(...) to pass it whole to every call."
            )

    # The temporary flow holds what ``func`` builds, on its inputs as tasks (added first, so a
    # ``case`` or resource block inside ``func`` sees them as inputs, not as its own tasks).
    sub = Flow("temporary flow")
    arg_info: dict[Task, tuple[bool, bool, bool]] = {}  # input task -> (is mapped, is a constant, flattened)
    consumed: list[Task] = []

    def preprocess(value: Any) -> Task:
        _, is_mapped, flat = _unwrap(value, True)
        # A collection of tasks becomes a collection task in the temporary flow: its edges are
        # mapped with the rest, so it zips the mapped results it collects (Prefect 1).
        arg = as_task(value, flow=sub)
        is_constant = isinstance(arg, Constant)
        if not is_constant:
            flow.add_task(arg)
        sub.add_task(arg)
        arg_info[arg] = (is_mapped, is_constant, flat)
        consumed.append(arg)
        return arg

    args2 = [preprocess(a) for a in args]
    kwargs2 = {k: preprocess(v) for k, v in kwargs.items()}
    inputs = set(sub.ordered_tasks())  # the inputs and the tasks their collections collect

    with sub:
        result = func(*args2, **kwargs2) if no_flow_provided else func(*args2, flow=sub, **kwargs2)

    mapped_inside = [e for e in sub.sorted_edges() if e.mapped]
    if mapped_inside:
        e = mapped_inside[0]
        raise ValueError(
            f"apply_map: cannot set `mapped=True` when running from inside a mapped context ({func!r} maps "
            f"{e.upstream_task.name!r} into {e.downstream_task.name!r}); call the task directly: apply_map maps it."
        )

    new_tasks = [t for t in sub.ordered_tasks() if t not in inputs]
    for t in new_tasks:
        if t.slug is not None and re.fullmatch(r".+-\d+", t.slug):
            t.slug = None  # numbered by the real flow, as if built there
        flow.add_task(t)
    for t in sub.ordered_tasks():
        if t in inputs and t not in flow._tasks and not isinstance(t, Constant):
            flow.add_task(t)

    # Every edge becomes mapped, except those from inputs marked unmapped; an unmapped constant
    # input is passed as a constant (what Prefect 1 stores for it).
    for edge in sub.sorted_edges():
        up, down = edge.upstream_task, edge.downstream_task
        is_mapped, is_constant, flat = arg_info.get(up, (True, False, False))
        if is_constant and not is_mapped and edge.key is not None:
            flow._set_constant(down, edge.key, up.value)  # type: ignore[attr-defined]
            continue
        flow.add_edge(up, down, key=edge.key, mapped=is_mapped, flattened=flat or edge.flattened)

    for t, constants in sub.constants.items():
        for key, value in constants.items():
            flow._set_constant(t, key, value)

    # Each task made by ``func`` with no upstream task among them waits for every input but
    # unmapped constants: mapped inputs have one length, and the subgraph maps even where a
    # task takes no input at all.
    made = set(new_tasks)
    for t in new_tasks:
        upstream = flow.upstream_tasks(t)
        if upstream & made:
            continue
        for arg, (is_mapped, is_constant, flat) in arg_info.items():
            if arg not in upstream and (is_mapped or not is_constant):
                flow.add_edge(arg, t, mapped=is_mapped, flattened=flat)

    # Inputs apply_map made (or took) and did not need are used, not forgotten: no "created but not added" warning.
    for active in (Flow._active(), flow):
        created = active.__dict__.get("_created") if active is not None else None
        if created:
            unused = {id(t) for t in consumed if t not in flow._tasks}
            if unused:
                created[:] = [t for t in created if id(t) not in unused]
    return result
