"""``.map(upstream_tasks=[...])``: non-keyed upstream tasks are mapped over too, unless ``unmapped`` (Prefect 1)."""

from __future__ import annotations

from headwater import Flow, task, unmapped
from headwater.engine.state import Mapped


@task
def inc(x: int) -> int:
    if x == 2:
        raise ValueError("two")
    return x + 1


@task
def after() -> str:
    return "after"


def test_non_keyed_upstream_tasks_are_mapped_child_by_child() -> None:
    with Flow("map-upstream") as flow:
        a = inc.map([1, 2, 3])
        b = after.map(upstream_tasks=[a])
    edge = next(iter(flow.edges_to(b)))
    assert edge.mapped and edge.key is None
    state = flow.run()
    children = state.result[b].map_states
    assert isinstance(state.result[b], Mapped) and len(children) == 3
    assert [type(s).__name__ for s in children] == ["Success", "TriggerFailed", "Success"]  # each after its own item


def test_unmapped_upstream_task_is_one_dependency_of_an_unmapped_run() -> None:
    @task
    def items() -> list[int]:
        return [1, 3]

    @task
    def double(x: int) -> int:
        return 2 * x

    with Flow("unmapped-upstream") as flow:
        gate = after()
        d = double.map(items(), upstream_tasks=[unmapped(gate)])
    assert not next(e for e in flow.edges_to(d) if e.upstream_task is gate).mapped
    state = flow.run()
    assert state.result[d].result == [2, 6]
