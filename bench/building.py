"""Building a graph, side by side with what the graphlib peer builds for the same graph.

Exegraph's build is the `Step`s, `Graph(...)` (validation, adjacency) and the first
`priority()` (every priority, computed on first use), each phase timed apart. The graphlib
peer's build (`peers.graphlib_build`) is its actions and a `graphlib.TopologicalSorter`
with every node added and `prepare()` called (which checks for cycles). Each side starts
from its input made beforehand (`Shape.dep_names` for exegraph, `Shape.deps` for the peer).

At every repeat both are built afresh, one after the other, the order alternating, after a
`gc.collect()`; the ratio exegraph ÷ peer is taken within each repeat (both sides saw the
same machine weather) and its median reported, like the per-step ratios of `overhead.py`.
"""

from __future__ import annotations

import gc
import statistics
import time
from dataclasses import dataclass

import peers
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


def _peer(shape: Shape, timing: Timing) -> float:
    t0 = time.perf_counter()
    built = peers.graphlib_build(shape.deps, timing.trio)
    seconds = time.perf_counter() - t0
    del built
    return seconds


def measure_build(shape: Shape, timing: Timing, repeats: int) -> BuildTimes:
    """Build `shape` with exegraph and with the graphlib peer `repeats` times, paired."""
    phases: list[tuple[float, float, float]] = []
    peer: list[float] = []
    for repeat in range(max(repeats, 1)):
        for side in ("exegraph", "peer") if repeat % 2 == 0 else ("peer", "exegraph"):
            gc.collect()
            if side == "exegraph":
                phases.append(_exegraph_phases(shape, timing))
            else:
                peer.append(_peer(shape, timing))
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
    )
