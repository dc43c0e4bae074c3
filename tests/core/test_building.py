"""Building flows: the fast binding path gives the same answers and errors as inspect, and pickles stay stable."""

from __future__ import annotations

import pickle

import pytest

from headwater import Flow, Task, TaskCallError, task


@task
def add(x: int, y: int = 1) -> int:
    return x + y


def test_fast_binding_matches_inspect() -> None:
    with Flow("f") as flow:
        a = add(1)
        b = add(a, y=a)
        c = add(x=b)
    assert {e.key for e in flow.edges_to(b)} == {"x", "y"}
    assert flow.run().result[c].result == 5


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        ((1, 2, 3), {}, "too many positional arguments"),
        ((), {"x": 1, "z": 1}, "got an unexpected keyword argument 'z'"),
        ((), {}, "missing a required argument: 'x'"),
        ((1,), {"x": 2}, "multiple values for argument 'x'"),
    ],
)
def test_binding_mistakes_are_worded_by_inspect(args: tuple[int, ...], kwargs: dict[str, int], message: str) -> None:
    with Flow("f"), pytest.raises(TaskCallError, match=message):
        add(*args, **kwargs)


def test_caches_never_reach_a_pickle() -> None:
    before = add.__getstate__()
    with Flow("f"):
        add(1)  # computes and shares the signature caches
    assert add.__getstate__() == before and "_signature_cache" in add.__dict__
    assert pickle.loads(pickle.dumps(Flow("empty"))).name == "empty"

    class Double(Task):
        def run(self, x: int) -> int:
            return 2 * x

    double = Double()
    state = double.__getstate__()
    with Flow("g"):
        double(3)
    assert double.__getstate__() == state and "_signature_cache" in double.__dict__


def test_the_cyclic_gc_pauses_while_a_flow_is_built_and_resumes_after() -> None:
    """Building keeps every object it makes alive; collecting them again and again cost half of a big build."""
    import gc

    assert gc.isenabled()
    with Flow("outer"):
        assert not gc.isenabled()
        with Flow("inner"):
            assert not gc.isenabled()
        assert not gc.isenabled()  # still inside the outer block
    assert gc.isenabled()
    with pytest.raises(ValueError, match="boom"), Flow("failing"):
        raise ValueError("boom")
    assert gc.isenabled()
    gc.disable()
    try:
        with Flow("already-off"):
            pass
        assert not gc.isenabled()  # left as the caller had it
    finally:
        gc.enable()
