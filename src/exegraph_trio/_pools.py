"""`Pool`: a number of slots that steps take while they run, shared by any number of runs.

A pool is plain data, like the scheduling core that uses it (no Trio here): how many
slots it has, how many are taken, which runs have steps waiting for it and since when,
and who to tell when slots come free. Each run's core takes and gives back slots; the
Trio driver of each run registers a callback that wakes its dispatcher.

Fairness between runs follows SPEC 2.2: waiting steps of different runs get a shared
pool's slots in the order they became ready. Every step that needs a shared pool draws a
ticket (a number from one counter for the whole process) when it becomes ready; a run may
give a pool's slots to one of its steps only if no other run has a step with an older
ticket still waiting for that pool. Within one run, rule 3's order (the highest priority
that fits) holds among the steps that may.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from heapq import heappop, heappush
from typing import TYPE_CHECKING, Final, final

from ._errors import LISTED, MAX_SUGGESTED, close_names, did_you_mean, listed

if TYPE_CHECKING:
    from ._graph import Graph
    from ._options import RunOptions

__all__ = ["Pool", "demands_of", "tickets"]

tickets: Final = itertools.count()
"""The process-wide counter of readiness tickets (older = smaller)."""


@final
class Pool:
    """Slots that steps take while they run, shared by every run given this object.

    ```python
    db = exegraph.Pool(2)  # at most two steps talk to the database at once...
    options = exegraph.RunOptions(pools={"db": db, "net": 8})
    Step("migrate", migrate, pools=["db"])
    Step("backfill", backfill, pools={"db": 2})  # ...or one step taking both slots
    await exegraph.run(pipeline_a, options)  # ...across both pipelines, when they run
    await exegraph.run(pipeline_b, options)  # concurrently in one Trio program
    ```

    In `RunOptions(pools=...)` an `int` makes a pool private to that run; a `Pool`
    object is shared by every run it is given to (concurrent runs in one Trio program,
    such as several pipelines sharing one database). A step takes its slots when it
    starts and gives them back when its action ends, whatever the outcome, and while it
    waits to be retried. Between runs, slots go to waiting steps in the order they
    became ready (SPEC 2.2), strictly: a step waiting for more slots than are free, or
    for its own run's bound, keeps its place, and other runs' younger steps wait behind
    it; within one run, the highest-priority step that may go goes first.

    Args:
        size: how many slots (`>= 1`).

    Raises:
        TypeError: `size` is not an `int`.
        ValueError: `size < 1`.
    """

    __slots__ = ("_runs", "_waiting", "in_use", "size")

    def __init__(self, size: int) -> None:
        if isinstance(size, bool) or not isinstance(size, int):
            raise TypeError(f"Pool size must be an int, not {type(size).__name__}: {size!r}")
        if size < 1:
            raise ValueError(f"Pool size must be >= 1, got {size!r}")
        self.size: Final = size
        """How many slots the pool has."""
        self.in_use = 0
        """How many slots running steps hold now."""
        self._waiting: dict[object, list[tuple[int, int]]] = {}
        # Per run (its core): a heap of `(ticket, step)` of its steps waiting for this
        # pool. Those no longer waiting are dropped lazily, by `_may_take`.
        self._runs: dict[object, tuple[Callable[[int, int], bool], Callable[[], None]]] = {}

    def __repr__(self) -> str:
        return f"Pool({self.size}) with {self.in_use} in use"

    @property
    def free(self) -> int:
        """How many slots are free now."""
        return self.size - self.in_use

    # -- for the scheduling core (one per run) ---------------------------------------------

    def _join(
        self, run: object, waits: Callable[[int, int], bool], woken: Callable[[], None]
    ) -> None:
        """`run` will use this pool.

        `waits(i, ticket)` tells whether its step `i` still waits with `ticket` (not
        started, skipped or cancelled since); `woken()` is called whenever another run
        freed slots or stopped waiting.
        """
        self._runs[run] = (waits, woken)

    def _leave(self, run: object) -> None:
        """`run` is over: forget its tickets and its callback."""
        self._runs.pop(run, None)
        self._waiting.pop(run, None)

    def _wait(self, run: object, ticket: int, i: int) -> None:
        """Step `i` of `run`, which needs this pool, became ready with `ticket`."""
        heap = self._waiting.get(run)
        if heap is None:
            self._waiting[run] = [(ticket, i)]
        else:
            heappush(heap, (ticket, i))

    def _may_take(self, run: object, ticket: int) -> bool:
        """Whether a step of `run` holding `ticket` may take slots now.

        It may unless a step of another run has waited for this pool since before it
        (an older ticket): between runs, slots go in the order steps became ready. The
        oldest waiter of all may always take, so each run also offers its own oldest
        waiter (`_oldest_step`) when its best step by priority may not: no deadlock.
        Within the run, rule 3's order decides among the steps that may.
        """
        return not any(other is not run and self._oldest(other) < ticket for other in self._waiting)

    def _oldest(self, run: object) -> float:
        """The oldest ticket of `run` still waiting (dropping stale ones), or infinity."""
        heap = self._waiting.get(run)
        if not heap:
            return math.inf
        waits = self._runs[run][0]
        while heap and not waits(heap[0][1], heap[0][0]):
            heappop(heap)
        return heap[0][0] if heap else math.inf

    def _oldest_step(self, run: object) -> int | None:
        """The step of `run` that has waited longest for this pool, if any."""
        return self._waiting[run][0][1] if self._oldest(run) != math.inf else None

    def _release(self, n: int, run: object) -> None:
        """`n` slots come free: tell every other run using the pool."""
        self.in_use -= n
        self._changed(run)

    def _changed(self, run: object) -> None:
        """Slots came free, or a step of `run` stopped waiting: wake the other runs."""
        if len(self._runs) > 1:
            for other, (_, woken) in list(self._runs.items()):
                if other is not run:
                    woken()


def _size(value: int | Pool) -> int:
    return value.size if isinstance(value, Pool) else value


def demands_of(
    graph: Graph, options: RunOptions, *, private: bool = False
) -> tuple[list[tuple[tuple[Pool, int], ...]], frozenset[Pool]]:
    """Each step's `(pool, slots)`, and the shared pools; refuses what cannot run.

    `private`: a fresh copy of every shared pool, as if each were private (the planner).

    Raises:
        ValueError: naming every step that uses a pool the options do not have, or
            asks more slots than its size (SPEC 2.2: before any step starts).
    """
    pools = {
        name: value if isinstance(value, Pool) and not private else Pool(_size(value))
        for name, value in options.pools.items()
    }
    unknown: dict[str, list[str]] = {}  # pool name -> the steps using it
    too_big: list[str] = []
    demands: list[tuple[tuple[Pool, int], ...]] = []
    # Steps asking the same slots share one demand (most graphs have few distinct ones).
    known: dict[tuple[tuple[str, int], ...], tuple[tuple[Pool, int], ...]] = {}
    for step in graph.steps:
        if not step.pools:
            demands.append(())
            continue
        asked = tuple(step.pools.items())
        demand = known.get(asked)
        if demand is not None:
            demands.append(demand)
            continue
        refused = False  # (a request refused is not shared: every step asking it is named)
        for name, slots in step.pools.items():
            pool = pools.get(name)
            if pool is None:
                unknown.setdefault(name, []).append(step.name)
                refused = True
            elif slots > pool.size:
                too_big.append(
                    f"step {step.name!r} asks {slots} slots of pool {name!r}, which has {pool.size}"
                )
                refused = True
        if refused:
            demand = ()
        else:
            demand = tuple((pools[name], slots) for name, slots in sorted(asked))
            known[asked] = demand
        demands.append(demand)
    if unknown or too_big:
        problems = [
            f"pool {name!r}{did_you_mean(close_names(name, pools)) if k < MAX_SUGGESTED else ''}"
            f" is not one of the run's, used by step{'s' if len(users) > 1 else ''} "
            f"{listed([repr(user) for user in users[:LISTED]], len(users))}"
            for k, (name, users) in enumerate(list(unknown.items())[:LISTED])
        ]
        problems += too_big[: max(LISTED - len(problems), 1)]
        count = len(unknown) + len(too_big)
        have = listed(
            [f"{name!r}: {pool.size}" for name, pool in list(pools.items())[:LISTED]], len(pools)
        )
        raise ValueError(
            "steps ask for pools this run cannot give: "
            + listed(problems, count, "; ")
            + f" (RunOptions(pools=...) is {{{have}}}; give every pool the steps use, "
            "at least as large as any step's request)"
        )
    given = {id(value) for value in options.pools.values() if isinstance(value, Pool)}
    shared = frozenset(pool for pool in pools.values() if id(pool) in given)
    return demands, shared
