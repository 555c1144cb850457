"""What running and building a graph cost at the least, in instructions: issue 8's budget.

Issue 8 asks `run` of no-op steps for ≤ 1.3× the floor (bare tasks started at once in one
nursery) and a build (`Step`s + `Graph` + priorities) for ≤ 1.2× the graphlib peer's.
This script counts, with valgrind's cachegrind (one fresh process per cell, the same to
±0.1 % from one try to the next), what the least a scheduler or a build could do costs,
beside what exegraph costs:

- run (`--part run`), instructions per step of a second run at full size (as `run.py`
  times repeated runs of one graph: each cell counted with one run and with two, in two
  processes, the difference taken; `--first`: the first run, less the warm-ups), after a
  50-step warm-up run of every runner:
  - `floor`: the n tasks started at once in one nursery (the targets' floor);
  - `minimal`: the least task-per-step scheduler: dependencies counted down, a step
    started as its own task (by the task of the step that freed it) when its count is
    zero and fewer than the bound run, first in first out; no priorities, no timing, no
    hooks, no errors handled, no cancellation handled;
  - `required`: `minimal` plus only what part 1 of the spec makes observable for such a
    run, each done the cheapest way known: rule 3's order (a heap of ranks, the ranks
    made beforehand like exegraph's), each step's start and end on Trio's clock and the
    completion order, each task named after its step and spawned in the run's context,
    an action's exception cancelling the rest (fail-fast), and item 9 of issue 8 (while
    other running steps could still make steps ready at this instant, and not every
    unfinished step fits in the bound, a completion leaves the choice to the end of
    its round of Trio's scheduler, taken once for all the completions of the round, the
    steps chosen started there: exegraph's rule);
  - `run`: `exegraph.run` of the same graph, built (priorities too) beforehand.
- run with a deadline on every step (`--part timeout`): `floor_scope` (each bare task in
  its own `trio.CancelScope(deadline=...)`), `required_timeout` (`required`, each action in
  such a scope, its deadline read from the step's start, `StepTimeoutError` if it passes)
  and `run_timeout` (`exegraph.run` with `step_timeout`);
- whole jobs, build and run (`--part job`, `--actions noop|yield`): `peer` (the
  graphlib-trio peer, `peers.graphlib_trio`), `least` (`unchecked`, the priorities counted
  by exegraph's own function, then `required`: a lower bound on any job keeping part 1),
  `core` (`least_job(core=True)`, run.py's `least+core`: the `checked` build, then
  `required` split into a sans-IO core and a driver as issue 8 asks: a lower bound on any
  job keeping part 1, the spec's checks of a build and issue 8's design) and `job`
  (exegraph's `Step`s, `Graph(...)` and `run`);
- build (`--part build`), instructions per step of making the graph from its names:
  - `graphlib`: the peer's build (`peers.graphlib_build`: its actions and a prepared
    `TopologicalSorter`);
  - `unchecked`: the least an engine keeping one object per step could do: a slotted
    class of `Step`'s ten fields set from the arguments (no check), a name index and
    each step's dependencies as positions;
  - `least`: `unchecked`, each step's dependents, and every priority counted by
    exegraph's own function: a lower bound on any build keeping rule 3 (the cheapest
    exact way known to count them, see `bench/README.md`);
  - `checked`: `least` with what part 1 of the spec has `Step(...)` and `Graph(...)`
    refuse, each checked the cheapest way (`least.checked_build`): a lower bound on any
    build keeping rule 3 and the spec's checks;
  - `steps`, `graph`, `priorities`: exegraph's `Step`s, then `Graph(...)`, then the first
    `priority()`, each counted on its own (the difference from the step before).

```sh
.venv/bin/python bench/budget.py                       # run and build, ~6 min on 2 cores
.venv/bin/python bench/budget.py --part all --actions yield   # every part, ~10 min
.venv/bin/python bench/budget.py --part build --size 100000 --shapes layered
```
"""

from __future__ import annotations

import argparse
import functools
import gc
import os
import random
import sys
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Final, cast

import peers
import shapes
import trio
import trio.testing
from cachegrind import instructions_of
from least import (
    Checked,
    _counted,
    checked_build,
    checked_graph,
    least_build,
    least_job,
    ranks_of,
    required,
    required_core,
    unchecked_build,
)
from peers import noop

import exegraph_trio as exegraph

RUN_VARIANTS: Final = ("none", "floor", "minimal", "required", "run")
TIMEOUT_VARIANTS: Final = ("none", "floor_scope", "required_timeout", "run_timeout")
JOB_VARIANTS: Final = ("none", "peer", "least", "core", "job")
STEP_TIMEOUT: Final = 3600.0
"""The deadline of every step in the timeout part (as `runners.STEP_TIMEOUT`: never reached)."""
BUILD_VARIANTS: Final = (
    "none",
    "graphlib",
    "unchecked",
    "least",
    "checked",
    "steps",
    "graph",
    "priorities",
)
WARM_UP: Final = 50
least_core_job: Final = functools.partial(least_job, core=True)
"""`least_job` built as issue 8 asks (the job part's `core`)."""


async def floor(n: int) -> None:
    """`n` bare tasks started at once in one nursery."""
    async with trio.open_nursery() as nursery:
        for _ in range(n):
            nursery.start_soon(noop)


async def minimal(deps: Sequence[Sequence[int]], bound: int) -> None:
    """The least task-per-step scheduler (see the module's docstring)."""
    n = len(deps)
    waiting, dependents = _counted(deps)
    ready = deque(i for i in range(n) if not waiting[i])
    running = 0
    async with trio.open_nursery() as nursery:
        start_soon = nursery.start_soon

        def launch() -> None:
            nonlocal running
            while ready and running < bound:
                running += 1
                start_soon(task, ready.popleft())

        async def task(i: int) -> None:
            nonlocal running
            await noop()
            running -= 1
            for j in dependents[i]:
                waiting[j] -= 1
                if not waiting[j]:
                    ready.append(j)
            launch()

        launch()


def exegraph_steps(shape: shapes.Shape) -> list[exegraph.Step]:
    return [
        exegraph.Step(name, noop, depends_on=ds)
        for name, ds in zip(shape.names, shape.dep_names, strict=True)
    ]


def ranks(graph: exegraph.Graph) -> list[int]:
    """Each step's place in rule 3's order: higher priority first, then graph order."""
    return ranks_of([graph.priority(name) for name in graph.names])


async def exegraph_job(
    shape: shapes.Shape, bound: int, action: Callable[[], Awaitable[object]]
) -> None:
    """Exegraph's whole job, as `runners.py` times it: the `Step`s, `Graph(...)`, `run`."""
    steps = [
        exegraph.Step(name, a, depends_on=ds)
        for name, a, ds in zip(shape.names, [action] * len(shape), shape.dep_names, strict=True)
    ]
    await exegraph.run(exegraph.Graph(steps), exegraph.RunOptions(max_concurrency=bound))


def _graphs(
    kind: str, size: int
) -> tuple[shapes.Shape, exegraph.Graph, shapes.Shape, exegraph.Graph]:
    """A run cell's shape and graph (its priorities counted), and the warm-up's."""
    shape = shapes.make(kind, size)
    graph = exegraph.Graph(exegraph_steps(shape))
    graph.priority(shape.names[0])
    small = shapes.make(kind, WARM_UP)
    return shape, graph, small, exegraph.Graph(exegraph_steps(small))


def run_child(variant: str, kind: str, size: int, bound: int, runs: int = 1) -> None:
    """One cell of the run part: build everything, warm up, then run `variant` `runs` times."""
    shape, graph, small, small_graph = _graphs(kind, size)
    options = exegraph.RunOptions(max_concurrency=bound)
    rank = ranks(graph)
    actions = [noop] * size
    trio.run(floor, WARM_UP)
    trio.run(minimal, small.deps, bound)
    plain = functools.partial(required, record=False)  # (as `exegraph.run` keeps no times)
    trio.run(plain, small.deps, ranks(small_graph), small.names, bound, [noop] * WARM_UP)
    trio.run(exegraph.run, small_graph, options)
    gc.collect()
    for _ in range(runs):
        if variant == "floor":
            trio.run(floor, size)
        elif variant == "minimal":
            trio.run(minimal, shape.deps, bound)
        elif variant == "required":
            trio.run(plain, shape.deps, rank, shape.names, bound, actions)
        elif variant == "run":
            trio.run(exegraph.run, graph, options)


def timeout_child(variant: str, kind: str, size: int, bound: int, runs: int = 1) -> None:
    """One cell of the timeout part: as `run_child`, a deadline on every step."""
    shape, graph, small, small_graph = _graphs(kind, size)
    options = exegraph.RunOptions(max_concurrency=bound, step_timeout=STEP_TIMEOUT)
    rank = ranks(graph)
    actions = [noop] * size
    trio.run(peers.floor_scoped, actions[:WARM_UP], STEP_TIMEOUT)
    timed = functools.partial(required, step_timeout=STEP_TIMEOUT, record=False)
    trio.run(timed, small.deps, ranks(small_graph), small.names, bound, actions[:WARM_UP])
    trio.run(exegraph.run, small_graph, options)
    gc.collect()
    for _ in range(runs):
        if variant == "floor_scope":
            trio.run(peers.floor_scoped, actions, STEP_TIMEOUT)
        elif variant == "required_timeout":
            trio.run(timed, shape.deps, rank, shape.names, bound, actions)
        elif variant == "run_timeout":
            trio.run(exegraph.run, graph, options)


def job_child(  # noqa: PLR0917 - a cell's coordinates
    variant: str, kind: str, size: int, bound: int, action_kind: str, runs: int = 1
) -> None:
    """One cell of the job part: warm-ups, then `variant`'s whole job (build and run)."""
    shape = shapes.make(kind, size)
    _ = shape.dep_names
    action = peers.noop if action_kind == "noop" else peers.trio_yield
    small = shapes.make(kind, WARM_UP)
    _ = small.dep_names
    trio.run(peers.graphlib_trio, small.deps, [action] * WARM_UP, bound)
    trio.run(least_job, small, bound, [action] * WARM_UP)
    trio.run(least_core_job, small, bound, [action] * WARM_UP)
    trio.run(exegraph_job, small, bound, action)
    gc.collect()
    for _ in range(runs):
        if variant == "peer":
            trio.run(peers.graphlib_trio, shape.deps, [action] * size, bound)
        elif variant == "least":
            trio.run(least_job, shape, bound, [action] * size)
        elif variant == "core":
            trio.run(least_core_job, shape, bound, [action] * size)
        elif variant == "job":
            trio.run(exegraph_job, shape, bound, action)


def build_child(variant: str, kind: str, size: int) -> None:
    """One cell of the build part: the inputs made and a warm-up, then `variant`'s build."""
    shape = shapes.make(kind, size)
    _ = shape.dep_names  # (the input, made beforehand as in building.py)
    small = shapes.make(kind, WARM_UP)
    exegraph.Graph(exegraph_steps(small)).priority(small.names[0])
    peers.graphlib_build(small.deps, noop)
    unchecked_build(small)
    least_build(small)
    checked_build(small)
    gc.collect()
    if variant == "graphlib":
        peers.graphlib_build(shape.deps, noop)
    elif variant == "unchecked":
        unchecked_build(shape)
    elif variant == "least":
        least_build(shape)
    elif variant == "checked":
        checked_build(shape)
    elif variant in ("steps", "graph", "priorities"):
        steps = exegraph_steps(shape)
        if variant != "steps":
            graph = exegraph.Graph(steps)
            if variant == "priorities":
                graph.priority(shape.names[0])


def check(size: int = 300, bounds: Sequence[int] = (1, 2, 3, 4, 7)) -> int:
    """Assert that `required` starts every step when `exegraph.run` does; the cells checked.

    (`required` with a deadline on every step and the dependents given, as the timeout
    and job parts run it, too; `required_core`, its decisions in a core object; and
    `least_job`'s ranks are exegraph's.)

    Under `MockClock`, each step sleeping 1, 2 or 3 s (by its position), on every shape
    and bound: the same start time for every step means the same decisions (rule 3 and
    the decisions of one instant taken together), so `required` is a fair least runner.
    """
    started: dict[str, float] = {}

    async def sleeper() -> None:
        task = trio.lowlevel.current_task()
        started[task.name] = trio.current_time()
        await trio.sleep(1 + durations[task.name])

    # Item 9's case: A and B end together; A's end makes X ready, B's makes Y and Z
    # (which rank higher); with two slots, Y and Z start, whichever end Trio runs first.
    names = ("A", "B", "X", "Y", "Z", "Y2", "Z2")
    fork = exegraph.Graph(
        exegraph.Step(name, sleeper, depends_on=ds)
        for name, ds in zip(names, ((), (), ("A",), ("B",), ("B",), ("Y",), ("Z",)), strict=True)
    )
    fork_deps = [tuple(names.index(d) for d in fork[name].depends_on) for name in names]
    durations = dict.fromkeys(names, 0)
    for _ in range(20):
        started.clear()
        clock = trio.testing.MockClock(autojump_threshold=0)
        trio.run(required, fork_deps, ranks(fork), names, 2, [sleeper] * 7, clock=clock)
        assert (started["X"], started["Z"]) == (2, 1), f"required broke item 9: {started}"
        started.clear()
        clock = trio.testing.MockClock(autojump_threshold=0)
        trio.run(required_core, fork_deps, ranks(fork), names, 2, [sleeper] * 7, clock=clock)
        assert (started["X"], started["Z"]) == (2, 1), f"required_core broke item 9: {started}"
    cells = _check_rounds() + _check_refusals()
    for kind in shapes.SHAPE_NAMES:
        for seed in range(2):
            shape = shapes.make(kind, size, seed)
            durations = {name: i % 3 for i, name in enumerate(shape.names)}
            sleepers = [sleeper] * len(shape)
            graph = exegraph.Graph(
                exegraph.Step(name, sleeper, depends_on=ds)
                for name, ds in zip(shape.names, shape.dep_names, strict=True)
            )
            rank = ranks(graph)
            _, dependents, counted = least_build(shape)
            assert counted is not None
            assert ranks_of(counted) == rank, f"least_build ranks {kind} unlike exegraph"
            checked = checked_build(shape)
            assert checked[1] == dependents, f"checked_build's dependents of {kind} differ"
            assert checked[2] == counted, f"checked_build's priorities of {kind} differ"
            for bound in bounds:
                started.clear()
                clock = trio.testing.MockClock(autojump_threshold=0)
                trio.run(required, shape.deps, rank, shape.names, bound, sleepers, clock=clock)
                least = dict(started)
                started.clear()
                clock = trio.testing.MockClock(autojump_threshold=0)
                timed = functools.partial(required, step_timeout=100, dependents=dependents)
                trio.run(timed, shape.deps, rank, shape.names, bound, sleepers, clock=clock)
                assert started == least, f"required with deadlines differs on {kind}, {bound}"
                started.clear()
                clock = trio.testing.MockClock(autojump_threshold=0)
                cored = functools.partial(required_core, dependents=dependents)
                trio.run(cored, shape.deps, rank, shape.names, bound, sleepers, clock=clock)
                assert started == least, f"required_core differs from required on {kind}, {bound}"
                started.clear()
                clock = trio.testing.MockClock(autojump_threshold=0)
                trio.run(
                    exegraph.run, graph, exegraph.RunOptions(max_concurrency=bound), clock=clock
                )
                assert len(least) == len(shape), f"required missed steps on {kind}, bound {bound}"
                assert least == started, (
                    f"required starts steps unlike exegraph on {kind}[{size}] seed {seed}, "
                    f"bound {bound}: "
                    + ", ".join(
                        f"{name} at {least.get(name)} against {started.get(name)}"
                        for name in shape.names
                        if least.get(name) != started.get(name)
                    )[:500]
                )
                cells += 1
    return cells


def _check_refusals() -> int:
    """Assert that the `checked` build refuses what part 1 of the spec has a build refuse.

    (Else it would be no lower bound on a build keeping those checks.) Returns the number
    of inputs checked.
    """

    def sync() -> None: ...

    bad_steps: list[tuple[Callable[[], object], type[Exception]]] = [
        (lambda: Checked("", noop), TypeError),
        (lambda: Checked(cast("str", 7), noop), TypeError),
        (lambda: Checked("a", cast("Callable[[], object]", None)), TypeError),
        (lambda: Checked("a", sync), TypeError),
        (lambda: Checked("a", noop, depends_on="b"), TypeError),
        (lambda: Checked("a", noop, tags="t"), TypeError),
        (lambda: Checked("a", noop, depends_on=["b", "a"]), ValueError),
    ]
    bad_graphs: list[tuple[list[object], type[Exception]]] = [
        ([Checked("a", noop), "b"], TypeError),
        ([Checked("a", noop), Checked("a", noop)], exegraph.DuplicateStepError),
        ([Checked("a", noop, depends_on=["b"])], exegraph.MissingDependencyError),
        (
            [Checked("a", noop, depends_on=["b"]), Checked("b", noop, depends_on=("a",))],
            exegraph.CycleError,
        ),
    ]
    cases: list[tuple[Callable[[], object], type[Exception]]] = [
        *bad_steps,
        *(
            (functools.partial(checked_graph, cast("list[Checked]", steps)), error)
            for steps, error in bad_graphs
        ),
    ]
    for make, error in cases:
        try:
            make()
        except error:
            continue
        raise AssertionError(f"the checked build took what the spec refuses ({error.__name__})")
    # (and takes what it does not refuse: any iterable of names, steps in any order)
    deps, _, _ = checked_graph(
        [Checked("b", noop, depends_on=iter(["a"]), tags=["t"]), Checked("a", noop)]
    )
    assert deps == ((1,), ()), f"the checked build misread a graph: {deps}"
    # (and counts the priorities of steps given dependents first as exegraph does)
    shape = shapes.Shape("chain", ((1,), (2,), ()))
    counted = checked_build(shape)[2]
    graph = exegraph.Graph(
        exegraph.Step(name, noop, depends_on=ds)
        for name, ds in zip(shape.names, shape.dep_names, strict=True)
    )
    assert counted == [graph.priority(name) for name in shape.names], counted
    return len(cases) + 2


def _check_rounds(seeds: int = 10, repeats: int = 5) -> int:
    """Assert that the least runners keep one schedule, exegraph's, when an instant spans rounds.

    Rule of part 1 (same-instant completions): under `MockClock` the same graph with the
    same durations always starts its steps in the same order. Here the steps of an instant
    end in different rounds of Trio's scheduler (each sleeps 1 or 2 s, then passes 0–3
    checkpoints), and each run is repeated (Trio runs the tasks of a round in a random
    order): every start time must be the same in every run, and the same as exegraph's.
    (A `required` deciding on its dispatcher's turn, not between two rounds, kept more
    than one schedule on 18 of 80 such cells.) `required_core` too. Returns the cells
    checked.
    """
    started: dict[str, float] = {}

    async def action() -> None:
        name = trio.lowlevel.current_task().name
        started[name] = trio.current_time()
        await trio.sleep(sleeps[name])
        for _ in range(checkpoints[name]):
            await trio.lowlevel.checkpoint()

    cells = 0
    for seed in range(seeds):
        choose = random.Random(seed)
        shape = shapes.make("random", 40, seed)
        sleeps = {name: choose.choice((1, 2)) for name in shape.names}
        checkpoints = {name: choose.choice((0, 0, 1, 2, 3)) for name in shape.names}
        graph = exegraph.Graph(
            exegraph.Step(name, action, depends_on=ds)
            for name, ds in zip(shape.names, shape.dep_names, strict=True)
        )
        rank = ranks(graph)
        actions = [action] * len(shape)
        for bound in (2, 3):
            schedules = set()
            for _ in range(repeats):
                for runner in ("required", "required_core", "exegraph"):
                    started.clear()
                    clock = trio.testing.MockClock(autojump_threshold=0)
                    if runner != "exegraph":
                        least = required if runner == "required" else required_core
                        trio.run(least, shape.deps, rank, shape.names, bound, actions, clock=clock)
                    else:
                        options = exegraph.RunOptions(max_concurrency=bound)
                        trio.run(exegraph.run, graph, options, clock=clock)
                    schedules.add(tuple(sorted(started.items())))
            assert len(schedules) == 1, (
                f"required, required_core or exegraph kept {len(schedules)} schedules on "
                f"random[40] seed {seed}, bound {bound}, where steps of an instant end in "
                "different rounds"
            )
            cells += 1
    return cells


def count(  # noqa: PLR0917 - a cell's coordinates
    part: str, variant: str, kind: str, size: int, bound: int, actions: str = "noop", runs: int = 1
) -> int:
    """Instructions of one child process under cachegrind."""
    options = ["--part", part, "--shapes", kind, "--size", str(size), "--bound", str(bound)]
    options += ["--actions", actions, "--runs", str(runs)]
    return instructions_of(__file__, ["--child", variant, *options])


def cell(part: str, variant: str, kind: str, args: argparse.Namespace) -> int:
    """A cell's instructions: of a second run, or of the first or a build.

    A second run is counted as one run and two, in two processes, subtracted (run.py's
    repeats run a graph again and again); the first (`--first`) and a build are counted
    with the warm-ups, whose `none` count is subtracted when printed.
    """
    if part == "build" or args.first:
        return count(part, variant, kind, args.size, args.bound, args.actions)
    if variant == "none":
        return 0
    once, twice = (
        count(part, variant, kind, args.size, args.bound, args.actions, runs) for runs in (1, 2)
    )
    return twice - once


PARTS: Final = {
    "run": RUN_VARIANTS,
    "timeout": TIMEOUT_VARIANTS,
    "job": JOB_VARIANTS,
    "build": BUILD_VARIANTS,
}


def _per_step(
    counts: dict[tuple[str, str], int],
    kind: str,
    variants: Sequence[str],
    args: argparse.Namespace,
) -> dict[str, float]:
    """Each variant's k instructions per step on `kind`, the warm-ups' (`none`) taken off."""
    return {v: (counts[kind, v] - counts[kind, "none"]) / args.size / 1000 for v in variants[1:]}


def _which(args: argparse.Namespace) -> str:
    return " (the first run)" if args.first else " (a second run, as run.py's repeats)"


_TABLES: Final = {
    "run": (
        "run: {size} no-op steps, bound {bound}",
        {"floor": "floor", "minimal": "minimal", "required": "required", "run": "run"},
        (("minimal", "floor"), ("required", "floor"), ("run", "floor")),
    ),
    "timeout": (
        "run+timeout: {size} no-op steps, each with a deadline, bound {bound}",
        {"floor_scope": "floor+scope", "required_timeout": "required", "run_timeout": "run"},
        (("required_timeout", "floor_scope"), ("run_timeout", "floor_scope")),
    ),
    "job": (
        "job (build + run): {size} steps, {actions} actions, bound {bound}",
        {"peer": "graphlib-trio", "least": "least", "core": "least+core", "job": "job"},
        (("peer", "least"), ("peer", "core"), ("peer", "job")),
    ),
}
"""Each counted part's table: its title, its variants' column labels, the ratios shown."""


def _print_table(
    part: str, counts: dict[tuple[str, str], int], kinds: Sequence[str], args: argparse.Namespace
) -> None:
    """A counted part's table: each variant's k instructions per step, then the ratios."""
    title, labels, ratios = _TABLES[part]
    heads = [f"{labels[a]}÷{labels[b]}" for a, b in ratios]
    print(title.format(**vars(args)) + f"; k instructions per step{_which(args)}")
    print(
        f"{'shape':<8}"
        + "".join(f" {label:>8}" for label in labels.values())
        + "  "
        + "  ".join(heads)
    )
    for kind in kinds:
        per = _per_step(counts, kind, PARTS[part], args)
        print(
            f"{kind:<8}"
            + "".join(f" {per[v]:>{max(8, len(labels[v]))}.1f}" for v in labels)
            + "  "
            + "  ".join(
                f"{per[a] / per[b]:>{len(head)}.2f}"
                for (a, b), head in zip(ratios, heads, strict=True)
            )
        )


def _print_build(
    counts: dict[tuple[str, str], int], kinds: Sequence[str], args: argparse.Namespace
) -> None:
    print(f"build: {args.size} steps; k instructions per step")
    print(
        f"{'shape':<8} {'graphlib':>8} {'unchecked':>9} {'least':>6} {'checked':>7} {'Steps':>6}"
        f" {'Graph':>6} {'prio':>6} {'exegraph':>8}   unchecked÷graphlib  least÷graphlib"
        "  checked÷graphlib  exegraph÷graphlib"
    )
    for kind in kinds:
        c = {v: counts[kind, v] / args.size / 1000 for v in BUILD_VARIANTS}
        steps = c["steps"] - c["none"]
        graph = c["graph"] - c["steps"]
        prio = c["priorities"] - c["graph"]
        total = c["priorities"] - c["none"]
        lib = c["graphlib"] - c["none"]
        bare = c["unchecked"] - c["none"]
        least = c["least"] - c["none"]
        checked = c["checked"] - c["none"]
        print(
            f"{kind:<8} {lib:>8.1f} {bare:>9.1f} {least:>6.1f} {checked:>7.1f} {steps:>6.1f}"
            f" {graph:>6.1f} {prio:>6.1f} {total:>8.1f}   {bare / lib:>18.2f}"
            f"  {least / lib:>14.2f}  {checked / lib:>16.2f}  {total / lib:>17.2f}"
        )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "--part",
        choices=(*PARTS, "both", "all"),
        default="both",
        help="both: run and build; all: every part",
    )
    parser.add_argument("--size", type=int, default=3000, help="steps per graph")
    parser.add_argument("--shapes", default="chain,wide,layered,random", help="comma-separated")
    parser.add_argument("--bound", type=int, default=4, help="max_concurrency of the runs")
    parser.add_argument(
        "--actions", choices=("noop", "yield"), default="noop", help="the job part's actions"
    )
    parser.add_argument(
        "--first",
        action="store_true",
        help="count the first run of each runner (exegraph's makes what it caches on the graph)"
        " instead of a second one",
    )
    parser.add_argument("--runs", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        if args.part == "run":
            run_child(args.child, args.shapes, args.size, args.bound, args.runs)
        elif args.part == "timeout":
            timeout_child(args.child, args.shapes, args.size, args.bound, args.runs)
        elif args.part == "job":
            job_child(args.child, args.shapes, args.size, args.bound, args.actions, args.runs)
        else:
            build_child(args.child, args.shapes, args.size)
        return
    kinds = args.shapes.split(",")
    parts = {"both": ("run", "build"), "all": tuple(PARTS)}.get(args.part, (args.part,))
    workers = os.cpu_count() or 1
    for part in parts:
        cells = [(kind, variant) for kind in kinds for variant in PARTS[part]]
        with ThreadPoolExecutor(max_workers=workers) as pool:
            found = pool.map(
                lambda kv, part=part: cell(part, kv[1], kv[0], args),
                cells,
            )
            counts = dict(zip(cells, found, strict=True))
        if part == "build":
            _print_build(counts, kinds, args)
        else:
            _print_table(part, counts, kinds, args)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
