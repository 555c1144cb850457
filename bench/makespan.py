"""Makespan quality: how close exegraph's schedule comes to the best possible one.

On random DAGs whose steps sleep for random durations, under Trio's `MockClock` (with
`autojump_threshold=0`, so virtual time is exact and the run takes no real time), the
makespan of a run with `max_concurrency=P` is compared with the lower bound
`max(critical path, total work / P)` that no schedule can beat, and with the makespan of
the FIFO `graphlib` runner (`peers.graphlib_trio`) on the same instance. exegraph runs
twice: with no durations (its count rule: the most transitive dependents first) and with
the exact durations given (`RunOptions(durations=...)`: the longest path to the end
first, SPEC 2.2). Every run is also
checked with a `Probe` (each step once, after its dependencies, within the bound), which
costs no virtual time.

Instance families (seeded):

- `random`: the benchmark's `random` shape (local and long-range edges), 300 steps;
- `erdos`: 120 steps, each earlier step a dependency with probability 0.05;
- `narrow`: layers of 4 to 16 steps, each step depending on 1 to 3 of the layer above,
  about 240 steps.

Durations are uniform in [1, 10) seconds.
"""

from __future__ import annotations

import functools
import heapq
import random
import statistics
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Final

import peers
import shapes
import trio
import trio.testing
from probe import Probe

import exegraph_trio as exegraph

PS: Final = (2, 4, 8)


def erdos(n: int, seed: int) -> shapes.Shape:
    """`n` steps; each earlier step is a dependency with probability 0.05."""
    rng = random.Random(seed)
    return shapes.Shape(
        "erdos", tuple(tuple(j for j in range(i) if rng.random() < 0.05) for i in range(n))
    )


def narrow(n: int, seed: int) -> shapes.Shape:
    """Layers of 4 to 16 steps, each depending on 1 to 3 steps of the layer above."""
    rng = random.Random(seed)
    deps: list[tuple[int, ...]] = []
    above: range = range(0)
    while len(deps) < n:
        layer = range(len(deps), len(deps) + rng.randint(4, 16))
        for _ in layer:
            k = min(len(above), rng.randint(1, 3))
            deps.append(tuple(sorted(rng.sample(above, k))))
        above = layer
    return shapes.Shape("narrow", tuple(deps))


FAMILIES: Final[dict[str, Callable[[int], shapes.Shape]]] = {
    "random": lambda seed: shapes.random_dag(300, seed),
    "erdos": lambda seed: erdos(120, seed),
    "narrow": lambda seed: narrow(240, seed),
}


@dataclass(frozen=True)
class Instance:
    """One makespan measurement.

    Attributes:
        family: the instance family.
        seed: its seed.
        p: the concurrency bound.
        bound: `max(critical path, total work / p)`.
        exegraph: exegraph's makespan without durations (the count rule).
        fifo: the FIFO graphlib runner's makespan.
        exact: exegraph's makespan given the exact durations (the critical-path rule).
    """

    family: str
    seed: int
    p: int
    bound: float
    exegraph: float
    fifo: float
    exact: float


def by_the_rule(deps: Sequence[Sequence[int]], durations: Sequence[float], p: int) -> float:
    """The makespan of SPEC 2.2's critical-path rule, worked out without exegraph.

    List scheduling on a simulated clock: at each instant every step that finished then
    releases its dependents, and the ready steps take the free slots (at most `p` running)
    by the rule: the longest path to the end (own duration included) first, then the most
    transitive dependents, then insertion order. A step starts the instant it is ready and
    a slot is free. `measure_instance` checks that exegraph's run with exact durations
    ends at this very time: then whatever that rule loses against FIFO, the rule loses,
    not its implementation.
    """
    n = len(deps)
    dependents: list[list[int]] = [[] for _ in range(n)]
    for i, ds in enumerate(deps):
        for d in ds:
            dependents[d].append(i)
    # Every shape lists dependencies before their dependents (`shapes.critical_path` too).
    path = [0.0] * n
    below = [0] * n  # transitive dependents, as a bit set
    for i in reversed(range(n)):
        path[i] = durations[i] + max((path[c] for c in dependents[i]), default=0.0)
        for c in dependents[i]:
            below[i] |= below[c] | (1 << c)
    key = [(-path[i], -below[i].bit_count(), i) for i in range(n)]
    waiting = [len(ds) for ds in deps]
    ready = [key[i] for i in range(n) if not waiting[i]]
    heapq.heapify(ready)
    running: list[tuple[float, int]] = []
    now = end = 0.0
    while ready or running:
        while ready and len(running) < p:
            i = heapq.heappop(ready)[2]
            heapq.heappush(running, (now + durations[i], i))
        now, i = heapq.heappop(running)
        finished = [i]
        while running and running[0][0] == now:  # same-instant completions, together
            finished.append(heapq.heappop(running)[1])
        end = now
        for i in finished:
            for c in dependents[i]:
                waiting[c] -= 1
                if not waiting[c]:
                    heapq.heappush(ready, key[c])
    return end


async def _sleep_step(probe: Probe, i: int, seconds: float) -> None:
    probe.enter(i)
    await trio.sleep(seconds)
    probe.leave(i)


def _actions(probe: Probe, durations: Sequence[float]) -> list[peers.AsyncAction]:
    return [functools.partial(_sleep_step, probe, i, d) for i, d in enumerate(durations)]


async def _clocked(fn: Callable[[], Awaitable[object]]) -> float:
    start = trio.current_time()
    await fn()
    return trio.current_time() - start


def _virtual(fn: Callable[[], Awaitable[object]]) -> float:
    return trio.run(_clocked, fn, clock=trio.testing.MockClock(autojump_threshold=0))


def _checked(name: str, probe: Probe) -> None:
    problems = probe.problems()
    if problems:
        raise AssertionError(f"{name}: " + "; ".join(problems))


def measure_instance(family: str, seed: int, p: int) -> Instance:
    """Run one instance under exegraph and the FIFO runner, checking both runs."""
    shape = FAMILIES[family](seed)
    rng = random.Random(f"{family}-{seed}-durations")
    durations = [rng.uniform(1.0, 10.0) for _ in range(len(shape))]
    bound = max(shapes.critical_path(shape.deps, durations), sum(durations) / p)

    probe = Probe(shape.deps, p)
    actions = _actions(probe, durations)
    names = shape.names
    graph = exegraph.Graph(
        exegraph.Step(names[i], actions[i], depends_on=[names[d] for d in deps])
        for i, deps in enumerate(shape.deps)
    )
    options = exegraph.RunOptions(max_concurrency=p)
    ours = _virtual(lambda: exegraph.run(graph, options))
    _checked(f"exegraph on {family}#{seed} P={p}", probe)

    probe = Probe(shape.deps, p)
    actions = _actions(probe, durations)
    fifo = _virtual(lambda: peers.graphlib_trio(shape.deps, actions, p))
    _checked(f"graphlib FIFO on {family}#{seed} P={p}", probe)

    probe = Probe(shape.deps, p)
    actions = _actions(probe, durations)
    graph = exegraph.Graph(
        exegraph.Step(names[i], actions[i], depends_on=[names[d] for d in deps])
        for i, deps in enumerate(shape.deps)
    )
    given = exegraph.RunOptions(
        max_concurrency=p, durations=dict(zip(names, durations, strict=True))
    )
    exact = _virtual(lambda: exegraph.run(graph, given))
    _checked(f"exegraph with durations on {family}#{seed} P={p}", probe)
    rule = by_the_rule(shape.deps, durations, p)
    if abs(exact - rule) > 1e-9 * rule:
        raise AssertionError(
            f"exegraph with durations on {family}#{seed} P={p}: makespan {exact!r}, "
            f"while SPEC 2.2's rule, worked out by hand, gives {rule!r}"
        )
    return Instance(family, seed, p, bound, ours, fifo, exact)


@dataclass(frozen=True)
class MakespanRow:
    """Makespan / lower bound over the instances of one bound (and family, or `all`).

    Attributes:
        p: the concurrency bound.
        family: the instance family, or `all`.
        count: number of instances.
        mean: exegraph's mean ratio to the lower bound.
        worst: exegraph's largest ratio.
        fifo_mean: the FIFO runner's mean ratio.
        fifo_worst: the FIFO runner's largest ratio.
        worse: instances where exegraph's makespan exceeds the FIFO runner's.
        better: instances where it is shorter.
        worst_vs_fifo: the largest ratio of exegraph's makespan to the FIFO runner's.
        exact_mean: with exact durations given, exegraph's mean ratio to the lower bound.
        exact_worst: its largest ratio.
        exact_worse: instances where it is longer than the FIFO runner's.
        exact_better: instances where it is shorter.
    """

    p: int
    family: str
    count: int
    mean: float
    worst: float
    fifo_mean: float
    fifo_worst: float
    worse: int
    better: int
    worst_vs_fifo: float
    exact_mean: float
    exact_worst: float
    exact_worse: int
    exact_better: int


def summarise(p: int, family: str, instances: Sequence[Instance]) -> MakespanRow:
    """One table row for `instances`."""
    ours = [i.exegraph / i.bound for i in instances]
    fifo = [i.fifo / i.bound for i in instances]
    exact = [i.exact / i.bound for i in instances]
    eps = 1e-9
    return MakespanRow(
        p,
        family,
        len(instances),
        statistics.fmean(ours),
        max(ours),
        statistics.fmean(fifo),
        max(fifo),
        sum(i.exegraph > i.fifo * (1 + eps) for i in instances),
        sum(i.exegraph < i.fifo * (1 - eps) for i in instances),
        max(i.exegraph / i.fifo for i in instances),
        statistics.fmean(exact),
        max(exact),
        sum(i.exact > i.fifo * (1 + eps) for i in instances),
        sum(i.exact < i.fifo * (1 - eps) for i in instances),
    )


def measure_makespan(seeds: int) -> list[MakespanRow]:
    """Every family × `seeds` seeds × P in `PS`; a row per (P, family) and per P overall."""
    rows: list[MakespanRow] = []
    for p in PS:
        everything: list[Instance] = []
        for family in FAMILIES:
            found = [measure_instance(family, seed, p) for seed in range(seeds)]
            rows.append(summarise(p, family, found))
            everything += found
        rows.append(summarise(p, "all", everything))
    return rows
