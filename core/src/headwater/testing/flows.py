"""Small flows for plugin tests (used by the conformance kits; importable in any flow-run process).

Their tasks live in this installed module, so a flow pickled by any storage loads wherever
headwater is installed. This module imports neither pytest nor anything heavy.

- :func:`sample_flow`: ``x`` -> ``add_one`` -> ``double`` (the result is ``(x + 1) * 2``), and,
  when the ``path`` parameter is given, ``write`` puts that result into the file ``path``;
- :func:`failing_flow`: one task that raises;
- :func:`slow_flow`: a chain of short sleeps (about ``steps * step_seconds`` seconds) that an
  environment can cancel between steps; the last step writes ``"done"`` to ``path`` if given.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from headwater.core.flow import Flow
from headwater.core.parameter import Parameter
from headwater.core.task import task

__all__ = ["sample_flow", "failing_flow", "slow_flow", "expected_result", "result_of"]


@task(name="add_one")
def add_one(x: int) -> int:
    return x + 1


@task(name="double")
def double(y: int) -> int:
    return y * 2


@task(name="triple")
def triple(y: int) -> int:
    return y * 3


@task(name="write")
def write(value: Any, path: str | None) -> Any:
    if path:
        Path(path).write_text(str(value), encoding="utf-8")
    return value


@task(name="boom")
def boom() -> None:
    raise RuntimeError("boom: this task fails on purpose (headwater.testing.flows.failing_flow)")


@task(name="step")
def step(previous: int, seconds: float) -> int:
    time.sleep(seconds)
    return previous + 1


@task(name="finish")
def finish(count: int, path: str | None) -> int:
    if path:
        Path(path).write_text("done", encoding="utf-8")
    return count


def expected_result(x: int = 1, variant: str = "double") -> int:
    """What the last computing task of :func:`sample_flow` returns for ``x``."""
    return (x + 1) * (3 if variant == "triple" else 2)


def sample_flow(name: str = "conformance-flow", variant: str = "double") -> Flow:
    """``Parameter("x", 1)`` -> ``add_one`` -> ``double`` (or ``triple``) -> ``write(path)``.

    Two flows of different ``variant`` differ in code, so content-addressed storages give
    them different locations.
    """
    if variant not in ("double", "triple"):
        raise ValueError(f"sample_flow variant must be 'double' or 'triple', got {variant!r}.")
    compute = double if variant == "double" else triple
    with Flow(name) as flow:
        x = Parameter("x", default=1)
        path = Parameter("path", default=None)
        result = compute(add_one(x))
        write(result, path)
    return flow


def result_of(flow: Flow, state: Any) -> Any:
    """The value the ``double``/``triple`` task of :func:`sample_flow` returned in a run's final ``state``."""
    for task_ in flow.tasks:
        if task_.name in ("double", "triple"):
            return state.result[task_].result
    raise LookupError(f"Flow {flow.name!r} has no 'double' or 'triple' task; it was not made by sample_flow().")


def failing_flow(name: str = "conformance-failing") -> Flow:
    """A flow whose only task raises ``RuntimeError``: its run ends Failed."""
    with Flow(name) as flow:
        boom()
    return flow


def slow_flow(name: str = "conformance-slow", steps: int = 300, step_seconds: float = 0.1) -> Flow:
    """``steps`` chained tasks sleeping ``step_seconds`` each; ``finish`` writes ``"done"`` to ``path``.

    Long enough to be killed while running, and cancellable between steps even in-process.
    """
    with Flow(name) as flow:
        path = Parameter("path", default=None)
        count: Any = 0
        for _ in range(steps):
            count = step(count, step_seconds)
        finish(count, path)
    return flow
