"""Every runner of the benchmark behind one interface: prepare once, then time runs.

A `Runner` prepares a shape (untimed: building exegraph's `Graph`, dask's task dict) and
returns a `Go`: a function that runs the whole graph once under a concurrency bound, in a
fresh event loop, and returns the seconds spent inside it. The clock starts inside the
loop, so `trio.run` / `asyncio.run` start-up is not counted for anyone.

Two kinds of timed run:

- *run* (`run`, `run_with_result`, `run+timeout`): exegraph's `Graph` is built, validated
  and its priorities computed during preparation (building is timed on its own by
  `building.py`); only running it is timed.
- *whole job* (`job`, and every peer): making the actions and everything the runner needs
  (exegraph's `Step`s and `Graph`; the peers' `TopologicalSorter(...).prepare()`, their
  events) is inside the timed run, as it is in a user's program. The input (the positions
  of each step's dependencies for the peers, the names for exegraph) is made beforehand.
"""

from __future__ import annotations

import asyncio
import functools
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final, TypeVar

import least
import peers
import trio
from probe import Probe
from shapes import Shape

import exegraph_trio as exegraph

T = TypeVar("T")
Go = Callable[[int], float]
"""Run the prepared graph once with the given bound; return the seconds it took."""

STEP_TIMEOUT: Final = 3600.0
"""The deadline given to every step in `run+timeout` and `floor+scope` (never reached)."""


async def _timed(fn: Callable[[], Awaitable[T]]) -> tuple[float, T]:
    start = time.perf_counter()
    value = await fn()
    return time.perf_counter() - start, value


def time_trio(fn: Callable[[], Awaitable[T]]) -> tuple[float, T]:
    """Seconds `fn()` takes inside a fresh `trio.run`, and what it returned."""
    return trio.run(_timed, fn)


def time_asyncio(fn: Callable[[], Awaitable[T]]) -> tuple[float, T]:
    """Seconds `fn()` takes inside a fresh `asyncio.run`, and what it returned."""
    return asyncio.run(_timed(fn))


@dataclass(frozen=True)
class Timing:
    """The actions of timed runs: the same function for every step.

    Attributes:
        name: `noop` or `yield`.
        trio: the action of Trio runners.
        asyncio: the action of the asyncio runner.
        sync: the function given to dask (`None`: dask is not timed with these actions).
    """

    name: str
    trio: peers.AsyncAction
    asyncio: peers.AsyncAction
    sync: peers.SyncAction | None


NOOP: Final = Timing("noop", peers.noop, peers.noop, peers.noop_sync)
"""Actions that return at once."""
YIELD: Final = Timing("yield", peers.trio_yield, peers.asyncio_yield, None)
"""Actions that yield to the event loop once, as any action that really waits does."""
TIMINGS: Final = {timing.name: timing for timing in (NOOP, YIELD)}

Work = Probe | Timing
"""What a prepared run executes: probe actions (to verify it) or timing actions."""


@dataclass(frozen=True)
class Runner:
    """One way of running a graph.

    Attributes:
        key: short name used in tables (`run`, `graphlib-trio`, …).
        description: what it is, for the README.
        prepare: untimed set-up for a shape, with the probe's actions when verifying or the
            `Timing` actions otherwise; returns the `Go` that times one run.
        kind: `floor`, `exegraph` (the subject), `least` (the least runners keeping part 1,
            `least.py`) or `peer`.
        trio_peer: a hand-written Trio runner (the "best hand-written Trio runner" target).
        bounded: whether it honours the concurrency bound (the floors have none).
        every_bound: whether it depends on the bound at all; dask's synchronous scheduler
            runs one function at a time whatever the bound, so it is timed once per shape.
        primary: timed at every repeat even at 10⁵ steps, where the others (the peers and
            `run_with_result`, which shares `run`'s code) are timed fewer times.
        whole_job: its timed run includes building what it runs (see the module docstring).
        sync: runs sync functions (dask), so it is timed with no-op actions only.
    """

    key: str
    description: str
    prepare: Callable[[Shape, Work], Go]
    kind: str = "peer"
    trio_peer: bool = False
    bounded: bool = True
    every_bound: bool = True
    primary: bool = False
    whole_job: bool = False
    sync: bool = False

    def probe(self, shape: Shape, limit: int) -> Probe:
        """The probe that checks one run of this runner on `shape` under `limit`."""
        if not self.bounded:
            return Probe(shape.deps, len(shape), check_deps=False)
        return Probe(shape.deps, limit)

    def times(self, timing: Timing) -> bool:
        """Whether this runner can be timed with `timing`'s actions."""
        return not self.sync or timing.sync is not None


def _trio_actions(shape: Shape, work: Work) -> Callable[[], Sequence[peers.AsyncAction]]:
    """What makes a run's Trio actions.

    A list of the timing action (made inside the timed run, as a program makes its
    actions), or the probe's (made once: they are only verified).
    """
    if isinstance(work, Probe):
        probed = work.trio_actions()
        return lambda: probed
    action, n = work.trio, len(shape)
    return lambda: [action] * n


# -- the floors and the peers --------------------------------------------------------------


def _prepare_floor(shape: Shape, work: Work) -> Go:
    actions = _trio_actions(shape, work)()  # the floor's list is made before the clock

    def go(limit: int) -> float:
        return time_trio(lambda: peers.floor(actions))[0]

    return go


def _prepare_floor_scoped(shape: Shape, work: Work) -> Go:
    actions = _trio_actions(shape, work)()

    def go(limit: int) -> float:
        return time_trio(lambda: peers.floor_scoped(actions, STEP_TIMEOUT))[0]

    return go


def _prepare_graphlib_trio(shape: Shape, work: Work) -> Go:
    make = _trio_actions(shape, work)

    def go(limit: int) -> float:
        return time_trio(lambda: peers.graphlib_trio(shape.deps, make(), limit))[0]

    return go


def _prepare_events_trio(shape: Shape, work: Work) -> Go:
    make = _trio_actions(shape, work)

    def go(limit: int) -> float:
        return time_trio(lambda: peers.events_trio(shape.deps, make(), limit))[0]

    return go


def _prepare_graphlib_asyncio(shape: Shape, work: Work) -> Go:
    if isinstance(work, Probe):
        probed = work.asyncio_actions()

        def make() -> Sequence[peers.AsyncAction]:
            return probed

    else:
        action, n = work.asyncio, len(shape)

        def make() -> Sequence[peers.AsyncAction]:
            return [action] * n

    def go(limit: int) -> float:
        return time_asyncio(lambda: peers.graphlib_asyncio(shape.deps, make(), limit))[0]

    return go


def _prepare_dask(shape: Shape, work: Work) -> Go:
    if isinstance(work, Probe):
        functions = work.sync_actions()
    elif work.sync is None:
        raise ValueError(f"dask cannot be timed with {work.name} actions")
    else:
        functions = [work.sync] * len(shape)
    graph = peers.dask_graph(shape.names, shape.deps, functions)
    keys = list(shape.names)

    def go(limit: int) -> float:
        start = time.perf_counter()
        peers.dask_get(graph, keys)
        return time.perf_counter() - start

    return go


# -- the least runners keeping part 1 (`least.py`) ------------------------------------------


def _least_run(*, step_timeout: float | None, core: bool = False) -> Callable[[Shape, Work], Go]:
    """`least.required` on a prebuilt graph: its dependents and ranks made beforehand.

    `core`: `least.required_core` instead (its decisions in a sans-IO core object, as
    issue 8 asks; no deadlines). Timed beside `exegraph.run` with no observer, it keeps
    no step's times (`record=False`).
    """

    def prepare(shape: Shape, work: Work) -> Go:
        actions = _trio_actions(shape, work)()  # (a prebuilt graph holds its actions)
        _deps, dependents, priorities = least.least_build(shape)
        assert priorities is not None
        rank = least.ranks_of(priorities)
        # (no step's times kept: timed beside `exegraph.run`, which keeps none either)
        given: dict[str, Any] = {"actions": actions, "dependents": dependents, "record": False}
        if not core:
            given["step_timeout"] = step_timeout
        runner: Callable[..., Awaitable[list[int]]] = (
            least.required_core if core else least.required
        )
        run = functools.partial(runner, shape.deps, rank, shape.names, **given)

        def go(limit: int) -> float:
            return time_trio(lambda: run(limit))[0]

        return go

    return prepare


def _least_job(*, core: bool) -> Callable[[Shape, Work], Go]:
    """`least.least_job` (`core`: run by `least.required_core`), built afresh each time."""

    def prepare(shape: Shape, work: Work) -> Go:
        make = _trio_actions(shape, work)

        def go(limit: int) -> float:
            return time_trio(lambda: least.least_job(shape, limit, make(), core=core))[0]

        return go

    return prepare


# -- exegraph ------------------------------------------------------------------------------


def build_steps(shape: Shape, actions: Sequence[peers.AsyncAction]) -> list[exegraph.Step]:
    """Exegraph's steps for `shape`: `s0`, `s1`, … with the given actions."""
    step = exegraph.Step
    return [
        step(name, action, depends_on=ds)
        for name, action, ds in zip(shape.names, actions, shape.dep_names, strict=True)
    ]


def build_graph(shape: Shape, actions: Sequence[peers.AsyncAction]) -> exegraph.Graph:
    """Exegraph's graph for `shape` (priorities not computed: `graph.priority` forces them)."""
    return exegraph.Graph(build_steps(shape, actions))


_last_graph: list[tuple[Shape, Timing, exegraph.Graph]] = []


def timing_graph(shape: Shape, timing: Timing) -> exegraph.Graph:
    """The graph of `shape` with `timing` actions, built once for all exegraph variants."""
    if not _last_graph or _last_graph[0][0] is not shape or _last_graph[0][1] is not timing:
        _last_graph.clear()  # the previous graph goes before the next one is built
        graph = build_graph(shape, [timing.trio] * len(shape))
        graph.priority(shape.names[0])  # timed on its own in building.py
        _last_graph[:] = [(shape, timing, graph)]
    return _last_graph[0][2]


def _exegraph(*, with_result: bool, step_timeout: float | None) -> Callable[[Shape, Work], Go]:
    def prepare(shape: Shape, work: Work) -> Go:
        if isinstance(work, Timing):
            graph = timing_graph(shape, work)
        else:
            graph = build_graph(shape, work.trio_actions())
            graph.priority(shape.names[0])

        def go(limit: int) -> float:
            options = exegraph.RunOptions(max_concurrency=limit, step_timeout=step_timeout)
            if not with_result:
                return time_trio(lambda: exegraph.run(graph, options))[0]

            async def read() -> exegraph.RunResult:
                # A result makes its timings when first read: timed with them made.
                result = await exegraph.run_with_result(graph, options)
                _ = result.steps
                return result

            seconds, result = time_trio(read)
            if not result.ok or len(result.steps) != len(graph):
                raise AssertionError(f"run_with_result did not succeed: {result.error!r}")
            return seconds

        return go

    return prepare


def _prepare_job(shape: Shape, work: Work) -> Go:
    make = _trio_actions(shape, work)

    async def job(limit: int) -> None:
        graph = exegraph.Graph(build_steps(shape, make()))
        await exegraph.run(graph, exegraph.RunOptions(max_concurrency=limit))

    def go(limit: int) -> float:
        return time_trio(lambda: job(limit))[0]

    return go


FLOOR: Final = Runner(
    "floor",
    "n bare tasks started in one Trio nursery, each running the action (no dependencies, no bound)",
    _prepare_floor,
    kind="floor",
    bounded=False,
    primary=True,
)
FLOOR_SCOPE: Final = Runner(
    "floor+scope",
    "the floor, each task running its action inside its own "
    f"`trio.CancelScope(deadline=current_time() + {STEP_TIMEOUT:g})`",
    _prepare_floor_scoped,
    kind="floor",
    bounded=False,
    primary=True,
)
EXEGRAPH: Final = (
    Runner(
        "run",
        "`exegraph.run` of a prebuilt graph (steps, graph and priorities made beforehand)",
        _exegraph(with_result=False, step_timeout=None),
        kind="exegraph",
        primary=True,
    ),
    Runner(
        "run_with_result",
        "`exegraph.run_with_result` of the prebuilt graph, the `RunResult` checked after the "
        "clock stops",
        _exegraph(with_result=True, step_timeout=None),
        kind="exegraph",
    ),
    Runner(
        "run+timeout",
        f"`exegraph.run` of the prebuilt graph with `RunOptions(step_timeout={STEP_TIMEOUT:g})`:"
        " a deadline on every step",
        _exegraph(with_result=False, step_timeout=STEP_TIMEOUT),
        kind="exegraph",
        primary=True,
    ),
    Runner(
        "job",
        "the whole job: the actions, the `Step`s and `Graph(...)` made, then `exegraph.run` "
        "(priorities left to the run)",
        _prepare_job,
        kind="exegraph",
        primary=True,
        whole_job=True,
    ),
)
LEAST: Final = (
    Runner(
        "required",
        "`least.required` on the prebuilt graph: the least task-per-step runner keeping part "
        "1's observable promises (rule 3's order, times, names, context, fail-fast, item 9)",
        _least_run(step_timeout=None),
        kind="least",
        primary=True,
    ),
    Runner(
        "required+core",
        "`least.required_core` on the prebuilt graph: `required` built as issue 8 asks, its "
        "decisions in a sans-IO core object told of each success by a call, its bookkeeping "
        "KI-protected",
        _least_run(step_timeout=None, core=True),
        kind="least",
        primary=True,
    ),
    Runner(
        "required+timeout",
        f"`least.required` with a deadline on every step (`step_timeout={STEP_TIMEOUT:g}`, rule 5)",
        _least_run(step_timeout=STEP_TIMEOUT),
        kind="least",
        primary=True,
    ),
    Runner(
        "least",
        "the least whole job keeping part 1: `least.least_build` (no checks) then `least.required`",
        _least_job(core=False),
        kind="least",
        whole_job=True,
    ),
    Runner(
        "least+core",
        "the least whole job built as issue 8 and the spec ask: `least.checked_build` (what "
        "the spec has a build refuse, checked) then `least.required_core`",
        _least_job(core=True),
        kind="least",
        whole_job=True,
    ),
)
"""The least runners keeping part 1 (`least.py`): a target they miss too is impossible
(`required+core`, `least+core`: impossible for a runner built as issue 8 asks)."""
PEERS: Final = (
    Runner(
        "graphlib-trio",
        "`graphlib.TopologicalSorter` driver over a Trio nursery, FIFO, ≤ bound in flight",
        _prepare_graphlib_trio,
        trio_peer=True,
        whole_job=True,
    ),
    Runner(
        "events-trio",
        "one Trio task per step awaiting its dependencies' `trio.Event`s, then a `trio.Semaphore`",
        _prepare_events_trio,
        trio_peer=True,
        whole_job=True,
    ),
    *(
        ()
        if sys.version_info < (3, 11)
        else (
            Runner(
                "graphlib-asyncio",
                "the same `TopologicalSorter` driver over `asyncio.TaskGroup` "
                "+ `asyncio.Semaphore`",
                _prepare_graphlib_asyncio,
                whole_job=True,
            ),
        )
    ),
    Runner(
        "dask",
        "`dask.get` (synchronous local scheduler) on the equivalent task dict, sync no-ops "
        "(task dict made beforehand)",
        _prepare_dask,
        every_bound=False,
        sync=True,
    ),
)
ALL: Final = (FLOOR, FLOOR_SCOPE, *EXEGRAPH, *LEAST, *PEERS)
BY_KEY: Final = {runner.key: runner for runner in ALL}
