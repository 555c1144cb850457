"""Building a graph: `Step`s, `Graph(...)` (validation) and the first `priority()`, timed apart.

`Graph(steps)` checks names, dependencies and cycles and computes the integer adjacency;
priorities are computed lazily for every step on the first `priority()` call. Each is
timed on a fresh graph at every repeat (the steps are made once per repeat too).
"""

from __future__ import annotations

import gc
import statistics
import time
from dataclasses import dataclass

import peers
from shapes import Shape

import exegraph_trio as exegraph


@dataclass(frozen=True)
class BuildTimes:
    """Median seconds of each phase of building one shape's graph.

    Attributes:
        size: number of steps.
        shape: the shape's name.
        edges: number of dependency edges.
        steps: making the `Step` values.
        graph: `Graph(steps)`: validation and adjacency.
        priority: the first `graph.priority(...)`: every step's priority.
    """

    size: int
    shape: str
    edges: int
    steps: float
    graph: float
    priority: float

    @property
    def graph_and_priority(self) -> float:
        """`Graph(...)` plus the first `priority()`: what the build target is about."""
        return self.graph + self.priority


def measure_build(shape: Shape, repeats: int) -> BuildTimes:
    """Time the three phases of building `shape`'s graph, `repeats` times; keep medians."""
    names = shape.names
    phases: list[tuple[float, float, float]] = []
    for _ in range(max(repeats, 1)):
        gc.collect()
        t0 = time.perf_counter()
        steps = [
            exegraph.Step(names[i], peers.noop, depends_on=[names[d] for d in deps])
            for i, deps in enumerate(shape.deps)
        ]
        t1 = time.perf_counter()
        graph = exegraph.Graph(steps)
        t2 = time.perf_counter()
        graph.priority(names[-1])
        t3 = time.perf_counter()
        phases.append((t1 - t0, t2 - t1, t3 - t2))
        del steps, graph
    steps_s, graph_s, priority_s = (
        statistics.median(column) for column in zip(*phases, strict=True)
    )
    return BuildTimes(len(shape), shape.kind, shape.edges, steps_s, graph_s, priority_s)
