"""DAG schematics of flows: a layered layout and an SVG rendering (``flow.visualize`` and the web UI use both).

Pure functions of a flow's serialized metadata (``flow.serialize()``: ``tasks`` and ``edges`` by
slug), so the API server can draw a registered flow without its code. The layout is the classic
layered one (Sugiyama): each task sits on the layer of its longest path from a root, nodes of a
layer are ordered by the barycenter of their neighbours (a few down and up sweeps, which removes
most crossings), and every edge points down. Mapped tasks are one node that carries the counts of
its children's states ("x 1000: 990 Success, 10 Failed"), so a map over 10 000 items stays one box.

Colors come from :data:`STATE_COLORS`, the CLI's palette (green success, red failure, cyan mapped,
yellow cached, amber running, dim cancelled/skipped); the SVG carries its own light/dark styles.
"""

from __future__ import annotations

import html
from collections import defaultdict, deque
from collections.abc import Callable, Iterable, Mapping
from typing import Any, ClassVar

import attrs

__all__ = ["STATE_COLORS", "DagNode", "DagEdge", "DagLayout", "state_color", "state_css", "flow_dag_svg"]

STATE_COLORS: dict[str, str] = {
    "Success": "#2f9e44",
    "Cached": "#c9a400",
    "Mapped": "#1c9fb8",
    "Skipped": "#8d949e",
    "Failed": "#e03131",
    "TriggerFailed": "#e03131",
    "TimedOut": "#c92a2a",
    "Cancelled": "#868e96",
    "Cancelling": "#ae3ec9",
    "Running": "#f08c00",
    "Submitted": "#4c6ef5",
    "Scheduled": "#748ffc",
    "Retrying": "#fd7e14",
    "Pending": "#adb5bd",
    "Finished": "#2f9e44",
    "State": "#adb5bd",
}
"""Fill color per state name (the CLI's palette; unknown names fall back by family in :func:`state_color`)."""

_FAMILY = (("Failed", "Failed"), ("Success", "Success"), ("Running", "Running"), ("Pending", "Pending"))
NODE_WIDTH = 176.0
NODE_HEIGHT = 46.0
H_GAP = 28.0
V_GAP = 56.0
MARGIN = 16.0


def state_color(state: str | None) -> str:
    """The palette color of ``state`` (a state name); no state: the neutral color."""
    if not state:
        return "#ced4da"
    if state in STATE_COLORS:
        return STATE_COLORS[state]
    for needle, family in _FAMILY:
        if needle in state:
            return STATE_COLORS[family]
    return STATE_COLORS["State"]


def state_css() -> str:
    """CSS custom properties and ``.state-<Name>`` classes for every state of the palette (the UI links this)."""
    lines = [":root {"]
    lines += [f"  --state-{name}: {color};" for name, color in STATE_COLORS.items()]
    lines.append("}")
    lines += [f".state-{name} {{ --state: var(--state-{name}); }}" for name in STATE_COLORS]
    return "\n".join(lines) + "\n"


@attrs.define
class DagNode:
    """One box of the schematic: a task (a mapped task stands for all of its children)."""

    slug: str
    name: str
    layer: int
    order: int
    x: float = 0.0
    y: float = 0.0
    width: float = NODE_WIDTH
    height: float = NODE_HEIGHT
    mapped: bool = False
    parameter: bool = False
    state: str | None = None
    counts: dict[str, int] = attrs.field(factory=dict)

    @property
    def total(self) -> int:
        """How many task runs this node stands for (children of a mapped task)."""
        return sum(self.counts.values())


@attrs.define
class DagEdge:
    """An edge between two nodes by slug; ``mapped`` edges are drawn dashed."""

    upstream: str
    downstream: str
    key: str | None = None
    mapped: bool = False


def _get(obj: Any, name: str, default: Any = None) -> Any:
    return obj.get(name, default) if isinstance(obj, Mapping) else getattr(obj, name, default)


def _summary(value: Any) -> tuple[str | None, dict[str, int]]:
    """A task's state: a name, or ``{state: count}`` for mapped children (the worst one wins the color)."""
    if value is None:
        return None, {}
    if isinstance(value, str):
        return value, {}
    counts = {str(k): int(v) for k, v in dict(value).items() if int(v)}
    return _dominant(counts), counts


_PRIORITY = ("Failed", "TimedOut", "TriggerFailed", "Cancelling", "Running", "Retrying", "Submitted", "Scheduled", "Pending",
             "Cancelled", "Cached", "Mapped", "Skipped", "Success")


def _dominant(counts: Mapping[str, int]) -> str | None:
    """The state that colors a group: any failure first, then anything still in flight, else the success kind."""
    if not counts:
        return None
    for name in _PRIORITY:
        if counts.get(name):
            return name
    return max(counts, key=lambda k: counts[k])


@attrs.define
class DagLayout:
    """Positions for every node of a flow's DAG (top to bottom); ``svg()`` draws it."""

    nodes: list[DagNode]
    edges: list[DagEdge]
    width: float
    height: float

    palette: ClassVar[dict[str, str]] = STATE_COLORS
    """The state colors (:data:`STATE_COLORS`), for pages that draw states next to the schematic."""

    @staticmethod
    def state_css() -> str:
        """The palette as CSS (see :func:`state_css`), so a UI colors badges exactly like the schematic."""
        return state_css()

    @property
    def by_slug(self) -> dict[str, DagNode]:
        return {n.slug: n for n in self.nodes}

    @classmethod
    def build(cls, tasks: Iterable[Any], edges: Iterable[Any], states: Mapping[str, Any] | None = None) -> DagLayout:
        """Lay out ``tasks`` (dicts or objects with ``slug``, ``name``, ``mapped``, ``parameter``) joined by ``edges``
        (``upstream``, ``downstream`` slugs, ``key``, ``mapped``); ``states``: per slug a state name or ``{state: count}``.

        Raises ``ValueError`` naming the tasks of a cycle or an edge to an unknown task.
        """
        states = states or {}
        nodes: dict[str, DagNode] = {}
        for t in tasks:
            slug = str(_get(t, "slug"))
            state, counts = _summary(states.get(slug))
            nodes[slug] = DagNode(slug=slug, name=str(_get(t, "name") or slug), layer=0, order=0,
                                  mapped=bool(_get(t, "mapped", False)), parameter=_get(t, "parameter") is not None,
                                  state=state, counts=counts)
        dag_edges: list[DagEdge] = []
        seen: set[tuple[str, str]] = set()
        for e in edges:
            up, down = str(_get(e, "upstream")), str(_get(e, "downstream"))
            for end in (up, down):
                if end not in nodes:
                    raise ValueError(f"Edge {up!r} -> {down!r} names task {end!r}, which is not among the flow's tasks.")
            dag_edges.append(DagEdge(up, down, _get(e, "key"), bool(_get(e, "mapped", False))))
            seen.add((up, down))
        children: dict[str, list[str]] = defaultdict(list)
        parents: dict[str, list[str]] = defaultdict(list)
        for up, down in sorted(seen):
            children[up].append(down)
            parents[down].append(up)
        order = _topological(list(nodes), children, parents)
        for slug in order:  # longest path from a root
            node = nodes[slug]
            node.layer = max((nodes[p].layer + 1 for p in parents[slug]), default=0)
        layers: dict[int, list[str]] = defaultdict(list)
        for slug in order:
            layers[nodes[slug].layer].append(slug)
        _reduce_crossings(layers, nodes, children, parents)
        widest = max((len(v) for v in layers.values()), default=0)
        full = widest * NODE_WIDTH + max(widest - 1, 0) * H_GAP
        for layer, slugs in layers.items():
            row = len(slugs) * NODE_WIDTH + (len(slugs) - 1) * H_GAP
            left = MARGIN + (full - row) / 2
            for i, slug in enumerate(slugs):
                node = nodes[slug]
                node.order = i
                node.x = left + i * (NODE_WIDTH + H_GAP)
                node.y = MARGIN + layer * (NODE_HEIGHT + V_GAP)
        depth = len(layers)
        height = 2 * MARGIN + depth * NODE_HEIGHT + max(depth - 1, 0) * V_GAP
        ordered = sorted(nodes.values(), key=lambda n: (n.layer, n.order))
        return cls(ordered, dag_edges, 2 * MARGIN + full, height)

    @classmethod
    def from_metadata(cls, serialized: Mapping[str, Any], states: Mapping[str, Any] | None = None) -> DagLayout:
        """The layout of a flow from its serialized metadata (``flow.serialize()`` or the API's ``Flow.serialized``)."""
        return cls.build(serialized.get("tasks") or [], serialized.get("edges") or [], states)

    def svg(self, *, link: Callable[[DagNode], str | None] | None = None, title: str | None = None,
            standalone: bool = True) -> str:
        """The schematic as SVG text; ``link(node)`` may give each node an ``href``; ``standalone`` adds its own styles."""
        w, h = max(self.width, 120.0), max(self.height, 60.0)
        out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="hw-dag" viewBox="0 0 {w:.0f} {h:.0f}" '
               f'width="{w:.0f}" height="{h:.0f}" role="img" aria-label="{html.escape(title or "flow DAG")}">']
        if title:
            out.append(f"<title>{html.escape(title)}</title>")
        if standalone:
            out.append(f"<style>{_SVG_STYLE}</style>")
        out.append('<defs><marker id="hw-arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
                   'orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" class="hw-arrowhead"/></marker></defs>')
        nodes = self.by_slug
        out.append('<g class="hw-edges">')
        for e in self.edges:
            a, b = nodes[e.upstream], nodes[e.downstream]
            x1, y1 = a.x + a.width / 2, a.y + a.height
            x2, y2 = b.x + b.width / 2, b.y
            mid = (y1 + y2) / 2
            dash = ' stroke-dasharray="5 4"' if e.mapped else ""
            label = f"<title>{html.escape(e.upstream)} → {html.escape(e.downstream)}{' (' + html.escape(e.key) + ')' if e.key else ''}</title>"
            out.append(f'<path class="hw-edge" d="M{x1:.1f},{y1:.1f} C{x1:.1f},{mid:.1f} {x2:.1f},{mid:.1f} {x2:.1f},{y2 - 2:.1f}"'
                       f'{dash} marker-end="url(#hw-arrow)">{label}</path>')
        out.append("</g><g class=\"hw-nodes\">")
        for n in self.nodes:
            out.append(_node_svg(n, link(n) if link else None))
        out.append("</g></svg>")
        return "".join(out)


def _topological(slugs: list[str], children: Mapping[str, list[str]], parents: Mapping[str, list[str]]) -> list[str]:
    indegree = {s: len(parents.get(s, ())) for s in slugs}
    queue = deque(s for s in slugs if indegree[s] == 0)
    order: list[str] = []
    while queue:
        s = queue.popleft()
        order.append(s)
        for c in children.get(s, ()):
            indegree[c] -= 1
            if indegree[c] == 0:
                queue.append(c)
    if len(order) != len(slugs):
        stuck = sorted(s for s in slugs if indegree[s] > 0)
        raise ValueError(f"The flow's edges form a cycle through {', '.join(stuck[:10])}; a DAG cannot have cycles.")
    return order


def _reduce_crossings(layers: dict[int, list[str]], nodes: dict[str, DagNode], children: Mapping[str, list[str]],
                      parents: Mapping[str, list[str]], sweeps: int = 4) -> None:
    """Order each layer by the mean position of its neighbours in the previous (down) or next (up) layer."""
    position = {slug: i for slugs in layers.values() for i, slug in enumerate(slugs)}
    depth = max(layers, default=-1) + 1
    for sweep in range(sweeps):
        down = sweep % 2 == 0
        for layer in (range(1, depth) if down else range(depth - 2, -1, -1)):
            neighbours = parents if down else children
            near_layer = layer + (-1 if down else 1)
            slugs = layers[layer]
            keys: dict[str, tuple[float, int]] = {}
            for slug in slugs:
                near = [position[n] for n in neighbours.get(slug, ()) if nodes[n].layer == near_layer]
                keys[slug] = (sum(near) / len(near) if near else float(position[slug]), position[slug])
            slugs.sort(key=keys.__getitem__)
            for i, slug in enumerate(slugs):
                position[slug] = i


def _fit(text: str, limit: int = 22) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _node_svg(n: DagNode, href: str | None) -> str:
    color = state_color(n.state)
    state_class = f" state-{html.escape(n.state)}" if n.state else ""
    kind = " hw-mapped" if n.mapped else (" hw-parameter" if n.parameter else "")
    tip = [n.name, f"state: {n.state or 'not run'}"]
    if n.counts:
        tip.append(", ".join(f"{v} {k}" for k, v in sorted(n.counts.items(), key=lambda kv: -kv[1])))
    parts = [f'<g class="hw-node{kind}{state_class}" data-slug="{html.escape(n.slug)}" transform="translate({n.x:.1f},{n.y:.1f})">',
             f"<title>{html.escape(' | '.join(tip))}</title>"]
    if n.mapped:  # a stack of cards: one box stands for many children
        parts.append(f'<rect class="hw-stack" x="6" y="-6" width="{n.width:.0f}" height="{n.height:.0f}" rx="7"/>')
        parts.append(f'<rect class="hw-stack" x="3" y="-3" width="{n.width:.0f}" height="{n.height:.0f}" rx="7"/>')
    parts.append(f'<rect class="hw-box" width="{n.width:.0f}" height="{n.height:.0f}" rx="7"/>')
    parts.append(f'<rect class="hw-band" width="7" height="{n.height:.0f}" rx="3" fill="{color}"/>')
    parts.append(f'<text class="hw-name" x="16" y="19">{html.escape(_fit(n.name))}</text>')
    sub = n.state or ("parameter" if n.parameter else "not run")
    if n.mapped:
        sub = (f"× {n.total} · " + ", ".join(f"{v} {k}" for k, v in sorted(n.counts.items(), key=lambda kv: -kv[1])[:2])
               if n.counts else f"mapped{' · ' + n.state if n.state else ''}")
    parts.append(f'<text class="hw-sub" x="16" y="36">{html.escape(_fit(sub, 28))}</text>')
    if n.counts and n.total:  # a thin bar of the children's states
        x = 16.0
        span = n.width - 24
        for name, count in sorted(n.counts.items(), key=lambda kv: _PRIORITY.index(kv[0]) if kv[0] in _PRIORITY else 99):
            width = span * count / n.total
            parts.append(f'<rect x="{x:.1f}" y="{n.height - 6:.0f}" width="{max(width, 1):.1f}" height="3" fill="{state_color(name)}"/>')
            x += width
    parts.append("</g>")
    body = "".join(parts)
    return f'<a href="{html.escape(href)}">{body}</a>' if href else body


_SVG_STYLE = """
.hw-dag { font-family: system-ui, -apple-system, 'Segoe UI', sans-serif; }
.hw-box { fill: #ffffff; stroke: #ced4da; }
.hw-stack { fill: #f1f3f5; stroke: #ced4da; }
.hw-name { font-size: 13px; font-weight: 600; fill: #212529; }
.hw-sub { font-size: 11px; fill: #495057; }
.hw-edge { fill: none; stroke: #868e96; stroke-width: 1.4; }
.hw-arrowhead { fill: #868e96; }
.hw-node.state-Running .hw-box { stroke: #f08c00; stroke-width: 2; }
.hw-node.state-Failed .hw-box, .hw-node.state-TimedOut .hw-box { stroke: #e03131; stroke-width: 1.6; }
@media (prefers-color-scheme: dark) {
  .hw-box { fill: #1f2329; stroke: #495057; }
  .hw-stack { fill: #2b3036; stroke: #495057; }
  .hw-name { fill: #e9ecef; }
  .hw-sub { fill: #adb5bd; }
  .hw-edge { stroke: #6c757d; }
  .hw-arrowhead { fill: #6c757d; }
}
"""


def flow_dag_svg(serialized: Mapping[str, Any], states: Mapping[str, Any] | None = None, title: str | None = None) -> str:
    """The standalone SVG of a flow's DAG from its serialized metadata (``states``: per slug, see :meth:`DagLayout.build`)."""
    return DagLayout.from_metadata(serialized, states).svg(title=title or str(serialized.get("name") or "flow"))


def _dot(serialized: Mapping[str, Any], states: Mapping[str, Any] | None) -> str:
    """Graphviz DOT of the same schematic (for PNG/PDF output through the ``dot`` program)."""
    lines = ["digraph flow {", '  node [shape=box, style="rounded,filled", fontname="Helvetica"];']
    states = states or {}
    for t in serialized.get("tasks") or []:
        slug = str(_get(t, "slug"))
        state, counts = _summary(states.get(slug))
        label = str(_get(t, "name") or slug) + (f"\\n{state}" if state else "")
        if counts:
            label += f" ({sum(counts.values())} mapped)"
        color = state_color(state) if state else "#f1f3f5"
        lines.append(f'  "{slug}" [label="{label}", fillcolor="{color}"{", peripheries=2" if _get(t, "mapped") else ""}];')
    for e in serialized.get("edges") or []:
        style = ", style=dashed" if _get(e, "mapped") else ""
        key = _get(e, "key")
        lines.append(f'  "{_get(e, "upstream")}" -> "{_get(e, "downstream")}" [label="{key or ""}"{style}];')
    lines.append("}")
    return "\n".join(lines)


def flow_states_by_slug(flow: Any, flow_state: Any) -> dict[str, Any]:
    """Per task slug, the state name (or ``{state: count}`` of a mapped task's children) from a flow-run state."""
    out: dict[str, Any] = {}
    results = getattr(flow_state, "result", None)
    if not isinstance(results, Mapping):
        return out
    for task, state in results.items():
        slug = getattr(task, "slug", None) or str(task)
        children = getattr(state, "map_states", None)
        if children:
            counts: dict[str, int] = defaultdict(int)
            for child in children:
                counts[type(child).__name__] += 1
            out[slug] = dict(counts)
        else:
            out[slug] = type(state).__name__
    return out


def visualize_flow(flow: Any, flow_state: Any = None, filename: Any = None, format: str | None = None) -> str:
    """``flow.visualize``: the flow's DAG as SVG text; written to ``filename`` (``.svg``, or ``.png``/``.pdf`` via graphviz)."""
    import shutil
    import subprocess
    from pathlib import Path

    serialized = flow.serialize()
    states = flow_states_by_slug(flow, flow_state) if flow_state is not None else None
    svg = flow_dag_svg(serialized, states, title=getattr(flow, "name", None))
    if filename is None:
        return svg
    path = Path(filename)
    fmt = (format or path.suffix.lstrip(".") or "svg").lower()
    if not path.suffix:
        path = path.with_suffix("." + fmt)
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "svg":
        path.write_text(svg, encoding="utf-8")
        return svg
    dot = shutil.which("dot")
    if dot is None:
        raise RuntimeError(f"Writing {path} as {fmt.upper()} needs graphviz's `dot` program (apt-get install graphviz); "
                           "SVG needs nothing: use a .svg filename.")
    subprocess.run([dot, f"-T{fmt}", "-o", str(path)], input=_dot(serialized, states).encode(), check=True, timeout=120)
    return svg

