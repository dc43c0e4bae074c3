"""Chunks of mapped children: an executor may answer for the first children of a chunk only, and a
cancelled run cancels what its chunks have not started.

An executor answering part of a chunk (the process pool does once a chunk has run for
``CHUNK_SECONDS``) gets the rest submitted again; an answer for no child, or for more
children than the chunk has, fails the flow run with a message naming the task. Cancelling a
run while chunks are in flight ends it Cancelled, every child Success or Cancelled.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

import pytest

from headwater import Flow, task
from headwater.engine.task_runner import run_task_batch
from headwater.executors import LocalExecutor, ProcessExecutor, ThreadExecutor
from headwater.executors.base import Executor
from headwater.executors.local import DoneFuture
from headwater.states import Cancelled, Success


class PrefixExecutor(Executor):
    """Runs each call at once; a chunk of mapped children is answered for at most ``answer`` of them."""

    def __init__(self, answer: int, chunksize: int = 5) -> None:
        self.answer, self.chunksize = answer, chunksize
        self.chunk_lengths: list[int] = []

    def map_chunksize(self, children: int) -> int:
        return self.chunksize

    def submit(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if fn is run_task_batch:
            task, chunk, *rest = args
            self.chunk_lengths.append(len(chunk))
            return DoneFuture(fn(task, chunk[:self.answer] if self.answer >= 0 else chunk, *rest), None)
        return DoneFuture(fn(*args, **kwargs), None)

    def wait(self, futures: Iterable[Any], timeout: float | None = None,
             return_when: str = "FIRST_COMPLETED") -> tuple[set[Any], set[Any]]:
        return set(futures), set()


@task
def double(x: int) -> int:
    return 2 * x


def test_an_executor_answering_part_of_a_chunk_gets_the_rest_again() -> None:
    with Flow("prefix") as flow:
        out = double.map(list(range(12)))
    executor = PrefixExecutor(answer=2, chunksize=5)
    state = flow.run(executor=executor)
    assert state.is_successful(), state
    children = state.result[out].map_states
    assert [c.result for c in children] == [2 * x for x in range(12)]
    assert all(type(c) is Success for c in children)
    # chunks of 5, 5 and 2, each answered two children at a time: 5 -> 3 -> 1, 5 -> 3 -> 1, 2
    assert sorted(executor.chunk_lengths) == sorted([5, 3, 1, 5, 3, 1, 2])


def test_an_executor_answering_no_child_of_a_chunk_fails_the_run_by_name() -> None:
    with Flow("no-answer") as flow:
        double.map(list(range(6)))
    state = flow.run(executor=PrefixExecutor(answer=0, chunksize=3))
    assert state.is_failed()
    assert "Executor returned 0 states for a chunk of 3 children of task 'double'" in str(state.message)


@task
def slow(x: int) -> int:
    time.sleep(0.02)
    return x


@pytest.mark.parametrize("executor", [ThreadExecutor(max_workers=2), ProcessExecutor(max_workers=2)],
                         ids=["threads", "processes"])
def test_cancelling_a_run_while_chunks_run_cancels_what_they_did_not_start(executor: Executor) -> None:
    with Flow("cancel-chunks") as flow:
        out = slow.map(list(range(300)))
    cancel = threading.Event()
    started = threading.Event()

    def on_state(task: Any, state: Any, map_index: int | None) -> None:
        if map_index is not None and state.is_successful():
            started.set()

    timer = threading.Thread(target=lambda: (started.wait(30), cancel.set()), daemon=True)
    timer.start()
    state = flow.run(executor=executor, cancel=cancel, on_task_state=on_state)
    timer.join(5)
    assert isinstance(state, Cancelled), state
    children = state.result[out].map_states
    assert len(children) == 300
    kinds = Counter(type(c) for c in children)
    assert set(kinds) == {Success, Cancelled}, kinds
    assert all(c.result == i for i, c in enumerate(children) if type(c) is Success)


def test_local_executor_still_answers_whole_chunks() -> None:
    with Flow("whole") as flow:
        out = double.map(list(range(3000)))
    state = flow.run(executor=LocalExecutor())
    assert [c.result for c in state.result[out].map_states] == [2 * x for x in range(3000)]


@pytest.mark.parametrize("handlers", [None, [lambda task, old, new: new]], ids=["plain", "with-handler"])
def test_run_task_batch_stops_starting_children_once_its_seconds_pass(handlers: Any) -> None:
    from headwater import Task

    class Nap(Task):
        def run(self, x: int) -> int:
            time.sleep(0.01)
            return x

    nap = Nap(name="nap", state_handlers=handlers)
    runs = [(i, {"x": i}) for i in range(5)]
    context = {"task_name": "nap"}
    assert [s.result for s in run_task_batch(nap, runs, None, context, seconds=0.0)] == [0]  # the first always runs
    assert [s.result for s in run_task_batch(nap, runs, None, context, seconds=None)] == [0, 1, 2, 3, 4]
