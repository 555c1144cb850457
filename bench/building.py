"""Building a graph, side by side with what the graphlib peer builds for the same graph.

Exegraph's build is the `Step`s, `Graph(...)` (validation, adjacency) and the first
`priority()` (every priority, computed on first use), each phase timed apart. The graphlib
peer's build (`peers.graphlib_build`) is its actions and a `graphlib.TopologicalSorter`
with every node added and `prepare()` called (which checks for cycles). Each side starts
from its input made beforehand (`Shape.dep_names` for exegraph, `Shape.deps` for the peer).
Beside them, the `least` build (`least.least_build`: one unchecked object per step, the
index, dependencies and dependents as positions, and every priority): a lower bound on any
build that keeps rule 3; and the `checked` build (`least.checked_build`: `least` with what
part 1 of the spec has `Step(...)` and `Graph(...)` refuse, each checked the cheapest way):
a lower bound on any build that keeps rule 3 and those checks.

At every repeat the four are built afresh, one after the other, the order rotating, after
a `gc.collect()`; the ratios exegraph ÷ peer and least ÷ peer are taken within each repeat
(the sides saw the same machine weather) and their medians reported, like the per-step
ratios of `overhead.py`.
"""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import peers
from least import checked_build, least_build
from runners import Timing, build_steps
from shapes import Shape

import exegraph_trio as exegraph


@dataclass(frozen=True)
class BuildTimes:
    """Median seconds of each phase of building one shape's graph, and the peer's build.

    Attributes:
        size: number of steps.
        shape: the shape's name.
        action: the actions' name (`noop`, `yield`).
        edges: number of dependency edges.
        steps: making the `Step` values.
        graph: `Graph(steps)`: validation and adjacency.
        priority: the first `graph.priority(...)`: every step's priority.
        total: steps + graph + priorities (median of the sums).
        peer: the graphlib peer's build: its actions and a prepared `TopologicalSorter`.
        ratio: median over repeats of `total ÷ peer`, paired within each repeat.
        least: the `least` build (`least.least_build`), a lower bound on any build
            keeping rule 3's priorities.
        least_ratio: median over repeats of `least ÷ peer`, paired within each repeat.
        checked: the `checked` build (`least.checked_build`), a lower bound on any build
            keeping rule 3 and refusing what part 1 of the spec has a build refuse.
        checked_ratio: median over repeats of `checked ÷ peer`, paired within each repeat.
    """

    size: int
    shape: str
    action: str
    edges: int
    steps: float
    graph: float
    priority: float
    total: float
    peer: float
    ratio: float
    least: float
    least_ratio: float
    checked: float
    checked_ratio: float

    @property
    def graph_and_priority(self) -> float:
        """`Graph(...)` plus the first `priority()` (the issue 5 build target)."""
        return self.graph + self.priority


def _exegraph_phases(shape: Shape, timing: Timing) -> tuple[float, float, float]:
    t0 = time.perf_counter()
    steps = build_steps(shape, [timing.trio] * len(shape))
    t1 = time.perf_counter()
    graph = exegraph.Graph(steps)
    t2 = time.perf_counter()
    graph.priority(shape.names[-1])
    t3 = time.perf_counter()
    return t1 - t0, t2 - t1, t3 - t2


def _seconds_of(build: Callable[[], object]) -> float:
    """Seconds `build()` takes; what it made is dropped after the clock stops."""
    t0 = time.perf_counter()
    built = build()
    seconds = time.perf_counter() - t0
    del built
    return seconds


def measure_build(shape: Shape, timing: Timing, repeats: int) -> BuildTimes:
    """Build `shape` with exegraph, the peer, `least` and `checked`, `repeats` times, paired."""
    phases: list[tuple[float, float, float]] = []
    peer: list[float] = []
    least: list[float] = []
    checked: list[float] = []
    sides = ("exegraph", "peer", "least", "checked")
    for repeat in range(max(repeats, 1)):
        for k in range(len(sides)):
            side = sides[(repeat + k) % len(sides)]
            gc.collect()
            if side == "exegraph":
                phases.append(_exegraph_phases(shape, timing))
            elif side == "peer":
                peer.append(_seconds_of(lambda: peers.graphlib_build(shape.deps, timing.trio)))
            elif side == "least":
                least.append(_seconds_of(lambda: least_build(shape, timing.trio)))
            else:
                checked.append(_seconds_of(lambda: checked_build(shape, timing.trio)))
    totals = [sum(p) for p in phases]
    steps_s, graph_s, priority_s = (
        statistics.median(column) for column in zip(*phases, strict=True)
    )
    return BuildTimes(
        size=len(shape),
        shape=shape.kind,
        action=timing.name,
        edges=shape.edges,
        steps=steps_s,
        graph=graph_s,
        priority=priority_s,
        total=statistics.median(totals),
        peer=statistics.median(peer),
        ratio=statistics.median(t / p for t, p in zip(totals, peer, strict=True)),
        least=statistics.median(least),
        least_ratio=statistics.median(x / p for x, p in zip(least, peer, strict=True)),
        checked=statistics.median(checked),
        checked_ratio=statistics.median(x / p for x, p in zip(checked, peer, strict=True)),
    )
