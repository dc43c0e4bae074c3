"""The DAG layout (headwater.utilities.visualization through headwater.plugins.DagLayout): no overlaps, edges go down,
mapped tasks are one node with their children's counts, cycles and unknown tasks are named; flow.visualize writes it."""

from __future__ import annotations

import itertools
import os
import random
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from headwater import Flow, Parameter, task
from headwater.plugins import DagLayout


def _overlap(a: object, b: object) -> bool:
    return not (a.x + a.width <= b.x or b.x + b.width <= a.x or a.y + a.height <= b.y or b.y + b.height <= a.y)  # type: ignore[attr-defined]


def _check(layout: DagLayout) -> None:
    for a, b in itertools.combinations(layout.nodes, 2):
        assert not _overlap(a, b), (a.slug, b.slug)
    nodes = layout.by_slug
    for e in layout.edges:
        up, down = nodes[e.upstream], nodes[e.downstream]
        assert up.layer < down.layer and up.y + up.height < down.y, (e.upstream, e.downstream)
    for n in layout.nodes:
        assert 0 <= n.x and n.x + n.width <= layout.width and 0 <= n.y and n.y + n.height <= layout.height


def _tasks(*slugs: str) -> list[dict[str, object]]:
    return [{"slug": s, "name": s.split("-")[0]} for s in slugs]


def test_diamond_is_layered_and_edges_point_down() -> None:
    layout = DagLayout.build(_tasks("a", "b", "c", "d"), [{"upstream": "a", "downstream": "b"}, {"upstream": "a", "downstream": "c"},
                                                           {"upstream": "b", "downstream": "d"}, {"upstream": "c", "downstream": "d"}])
    _check(layout)
    layers = {n.slug: n.layer for n in layout.nodes}
    assert layers == {"a": 0, "b": 1, "c": 1, "d": 2}


def test_long_edges_put_a_task_on_its_longest_path() -> None:
    edges = [{"upstream": "a", "downstream": "b"}, {"upstream": "b", "downstream": "c"}, {"upstream": "a", "downstream": "c"}]
    layout = DagLayout.build(_tasks("a", "b", "c"), edges)
    _check(layout)
    assert layout.by_slug["c"].layer == 2


@pytest.mark.parametrize("seed", range(8))
def test_random_dags_never_overlap(seed: int) -> None:
    rng = random.Random(seed)
    n = rng.randint(5, 120)
    slugs = [f"t{i}" for i in range(n)]
    edges = [{"upstream": slugs[i], "downstream": slugs[j]} for i in range(n) for j in range(i + 1, min(n, i + 8)) if rng.random() < 0.25]
    layout = DagLayout.build(_tasks(*slugs), edges)
    _check(layout)
    assert len(layout.nodes) == n and len(layout.edges) == len(edges)


def test_crossing_reduction_orders_children_under_their_parents() -> None:
    # a1 -> b2, a2 -> b1: the barycenter sweep swaps b1/b2 so the two edges do not cross
    layout = DagLayout.build(_tasks("a1", "a2", "b1", "b2"), [{"upstream": "a1", "downstream": "b2"}, {"upstream": "a2", "downstream": "b1"}])
    nodes = layout.by_slug
    assert (nodes["a1"].x < nodes["a2"].x) == (nodes["b2"].x < nodes["b1"].x)


def test_mapped_task_is_one_node_with_counts_and_the_worst_state_colors_it() -> None:
    tasks = [{"slug": "items", "name": "items"}, {"slug": "square", "name": "square", "mapped": True}]
    layout = DagLayout.build(tasks, [{"upstream": "items", "downstream": "square", "mapped": True}],
                             {"items": "Success", "square": {"Success": 9998, "Failed": 2}})
    square = layout.by_slug["square"]
    assert square.mapped and square.total == 10000 and square.state == "Failed"
    svg = layout.svg()
    assert "× 10000" in svg and 'stroke-dasharray="5 4"' in svg
    root = ET.fromstring(svg)  # well-formed XML
    assert root.tag.endswith("svg")


def test_cycles_and_unknown_tasks_are_named() -> None:
    with pytest.raises(ValueError, match="cycle through a, b"):
        DagLayout.build(_tasks("a", "b"), [{"upstream": "a", "downstream": "b"}, {"upstream": "b", "downstream": "a"}])
    with pytest.raises(ValueError, match="names task 'ghost'"):
        DagLayout.build(_tasks("a"), [{"upstream": "a", "downstream": "ghost"}])


def test_names_are_escaped_in_the_svg() -> None:
    svg = DagLayout.build([{"slug": "x", "name": "<script>&"}], []).svg(link=lambda n: f"/t?slug={n.slug}&a=1")
    assert "<script>" not in svg and "&lt;script&gt;&amp;" in svg
    ET.fromstring(svg)


def test_a_wide_flow_lays_out_quickly_and_correctly() -> None:
    slugs = ["root"] + [f"leaf{i}" for i in range(2000)]
    layout = DagLayout.build(_tasks(*slugs), [{"upstream": "root", "downstream": s} for s in slugs[1:]])
    assert len({(n.x, n.y) for n in layout.nodes}) == len(slugs)
    assert max(n.layer for n in layout.nodes) == 1


@task
def inc(x: int) -> int:
    return x + 1


@task
def add(x: int, y: int) -> int:
    return x + y


def _flow() -> Flow:
    with Flow("pictured") as flow:
        numbers = Parameter("numbers", default=[1, 2, 3])
        add(inc.map(numbers), 1)
    return flow


def test_flow_visualize_writes_the_same_dag_as_svg_with_states(tmp_path: Path) -> None:
    flow = _flow()
    plain = flow.visualize()
    assert plain.startswith("<svg") and "pictured" in plain
    state = flow.run()
    target = tmp_path / "out" / "dag"
    svg = flow.visualize(flow_state=state, filename=target)
    written = (tmp_path / "out" / "dag.svg").read_text()
    assert written == svg
    root = ET.fromstring(written)
    classes = " ".join(el.get("class") or "" for el in root.iter())
    assert "hw-mapped" in classes and "state-Success" in classes and "state-Failed" in classes  # add fails: list + int
    assert "× 3" in written
    if os.environ.get("HEADWATER_UI_DOCS_SCREENSHOTS") == "1":  # the picture in docs/ui.md
        docs = Path(__file__).resolve().parents[2] / "docs" / "images" / "ui"
        docs.mkdir(parents=True, exist_ok=True)
        (docs / "flow-visualize.svg").write_text(written)
    expected = DagLayout.from_metadata(flow.serialize()).svg(title="pictured")
    assert len(ET.fromstring(expected).findall(".//{http://www.w3.org/2000/svg}g")) == len(root.findall(".//{http://www.w3.org/2000/svg}g"))


def test_flow_visualize_png_needs_graphviz(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no `dot` here
    with pytest.raises(RuntimeError, match="graphviz"):
        _flow().visualize(filename=tmp_path / "dag.png")
