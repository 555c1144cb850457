"""The scheduling core: every decision of a run, as a sans-I/O state machine.

Like h11's connection object, the core is plain data and methods: no Trio, no clock, no
tasks. Whoever drives it — the Trio driver (`_driver.py`) today, a planner on a simulated
clock later — feeds it *events* and carries out the *decisions* it returns:

| event (method)        | what the core decides                                         |
|-----------------------|---------------------------------------------------------------|
| `start()`             | nothing yet: the steps with no dependency become ready        |
| `take()`              | which ready steps to start now (best first, within the bound) |
| `done(i)`             | releases `i`'s dependents (they become ready)                 |
| `failed(i)`           | what the failure skips; under fail-fast, stop the run         |
| `cancelled(i)`        | nothing more (the run is already stopping)                    |
| `withdraw(i)`         | a started step that never began is skipped after all          |
| `stop()`              | start nothing more; every step not started is skipped         |

The driver calls `take()` once after a batch of events — for all the completions of one
clock instant together — so that the steps they release and the steps already waiting
compete for the freed slots by rule 3, whatever order the events came in.

Steps are integer positions in the graph. Each step is in one state:

```text
PENDING ──(dependencies done)──> READY ──take()──> RUNNING ──> DONE / FAILED / CANCELLED
   │                               │                  │
   └──────────(skipped)────────────┴──> SKIPPED <─────┘ (withdrawn before it began)
```

Ready steps wait in a heap. Its keys are step positions (graph order) until more steps are
ready than there are free slots; from then on they are ranks — higher priority first, then
graph order — computed once by `ranking()`, so priorities cost nothing when they cannot
matter.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from heapq import heapify, heappop, heappush
from typing import Final, TypeAlias, final

__all__ = [
    "CANCELLED",
    "DONE",
    "FAILED",
    "PENDING",
    "READY",
    "RUNNING",
    "SKIPPED",
    "Core",
    "Skip",
]

PENDING: Final = 0
"""Waiting for a dependency."""
READY: Final = 1
"""Every dependency is done; waiting for a slot."""
RUNNING: Final = 2
"""Handed to the driver by `take()`."""
DONE: Final = 3
FAILED: Final = 4
SKIPPED: Final = 5
CANCELLED: Final = 6

Skip: TypeAlias = tuple[int, int | None]
"""A decision to skip step `i`: `(i, failed)`, where `failed` is the failed step upstream
of `i` that caused it, or `None` when the run stopped before `i` could start."""

_SETTLED: Final = frozenset({DONE, FAILED, SKIPPED, CANCELLED})


@final
class Core:
    """The decisions of one run of one graph.

    Args:
        deps: for each step, the positions of its dependencies.
        dependents: for each step, the positions of the steps that depend on it.
        ranking: computes the start order when it first matters: `(rank, by_rank)`,
            the rank of each step (0 starts first) and the step of each rank.
        limit: the most steps running at once (`>= 1`).
        fail_fast: stop the whole run at the first failure (else skip its dependents).
    """

    __slots__ = (
        "by_rank",
        "dependents",
        "deps",
        "fail_fast",
        "key",
        "limit",
        "ranking",
        "ready",
        "releasing",
        "running",
        "state",
        "stopped",
        "unsettled",
        "waiting",
    )

    def __init__(
        self,
        deps: Sequence[Sequence[int]],
        dependents: Sequence[Sequence[int]],
        ranking: Callable[[], tuple[list[int], list[int]]],
        *,
        limit: int,
        fail_fast: bool,
    ) -> None:
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit!r}")
        n = len(deps)
        self.deps = deps
        self.dependents = dependents
        self.ranking = ranking
        self.limit = limit
        self.fail_fast = fail_fast
        self.waiting = [len(d) for d in deps]
        """Per step: dependencies not done yet."""
        self.state = bytearray(n)
        self.ready: list[int] = []
        """Heap of the keys of the ready steps."""
        self.key: range | list[int] = range(n)
        """Heap key of each step: its position, or its rank once ranks matter."""
        self.by_rank: range | list[int] = range(n)
        """Step of each heap key."""
        self.running = 0
        """Steps handed out by `take()` and not settled yet."""
        self.releasing = 0
        """Running steps that have dependents (whose completion may make steps ready)."""
        self.unsettled = n
        """Steps not done, failed, cancelled or skipped yet."""
        self.stopped = False
        """True once the run starts no more steps (fail-fast, `stop()`)."""

    # -- events ----------------------------------------------------------------------------

    def start(self) -> None:
        """The run begins: the steps without dependencies become ready."""
        state, ready = self.state, self.ready
        for i, count in enumerate(self.waiting):
            if not count and state[i] == PENDING:  # (not skipped by an early stop())
                state[i] = READY
                ready.append(i)  # positions in order: already a heap

    def take(self) -> list[int]:
        """Decide which ready steps start now: the best ones, as many as slots are free.

        Each step returned is `RUNNING` from now on; the caller starts it.
        """
        ready = self.ready
        free = self.limit - self.running
        if not ready or free <= 0 or self.stopped:
            return []
        if len(ready) > free:
            if isinstance(self.by_rank, range):
                self._rank_ready()
                ready = self.ready
            count = free
        else:
            count = len(ready)
        by_rank, state = self.by_rank, self.state
        dependents = self.dependents
        if count == 1:  # a chain, or one slot freed: the common case, kept short
            i = by_rank[heappop(ready)]
            state[i] = RUNNING
            self.running += 1
            if dependents[i]:
                self.releasing += 1
            return [i]
        taken = [by_rank[heappop(ready)] for _ in range(count)]
        releasing = 0
        for i in taken:
            state[i] = RUNNING
            if dependents[i]:
                releasing += 1
        self.running += count
        self.releasing += releasing
        return taken

    def done(self, i: int) -> None:
        """Step `i` succeeded: its dependents whose dependencies are all done become ready."""
        self.state[i] = DONE
        self.running -= 1
        self.unsettled -= 1
        dependents = self.dependents[i]
        if not dependents:
            return
        self.releasing -= 1
        waiting, state, ready, key = self.waiting, self.state, self.ready, self.key
        for j in dependents:
            waiting[j] -= 1
            if not waiting[j] and state[j] == PENDING:
                state[j] = READY
                heappush(ready, key[j])

    def failed(self, i: int) -> list[Skip]:
        """Step `i` failed; return the steps this skips.

        Under fail-fast the run stops: every step not started is skipped (naming `i` for
        those downstream of it) and the caller cancels the steps in flight. Otherwise only
        the transitive dependents of `i` are skipped.
        """
        self._ended(i, FAILED)
        downstream = self._downstream(i)
        if not self.fail_fast:
            return self._skip([(j, i) for j in downstream])
        below = set(downstream)
        self.stopped = True
        return self._skip([(j, i if j in below else None) for j in self._unstarted()])

    def cancelled(self, i: int) -> None:
        """Step `i` ended because the run was cancelled (fail-fast, or from outside)."""
        self._ended(i, CANCELLED)

    def withdraw(self, i: int) -> None:
        """Step `i` was handed out but the run stopped before it began: it is skipped."""
        self._ended(i, SKIPPED)

    def stop(self) -> list[Skip]:
        """Start nothing more (cancelled from outside, interrupted); skip what has not started.

        Idempotent: a second call skips nothing.
        """
        self.stopped = True
        return self._skip([(j, None) for j in self._unstarted()])

    # -- queries ---------------------------------------------------------------------------

    def decide_now(self) -> bool:
        """Whether `take()` may be called after this one event, not after all of this instant.

        Completions at one instant must be decided together (rule 3 over everything they
        release), unless no other completion could change the choice: when no step is
        running, when every step left fits in the free slots, or when no running step
        has a dependent (the ready steps are all there will be, so taking the best now
        and the next best after each later completion takes the same steps).
        """
        return not self.running or self.limit >= self.unsettled or not self.releasing

    def settled(self, i: int) -> bool:
        """Whether step `i` has its final state."""
        return self.state[i] in _SETTLED

    # -- internals -------------------------------------------------------------------------

    def _ended(self, i: int, state: int) -> None:
        """Step `i`, handed out by `take()`, ends in `state` without releasing anything."""
        self.state[i] = state
        self.running -= 1
        self.unsettled -= 1
        if self.dependents[i]:
            self.releasing -= 1

    def _rank_ready(self) -> None:
        rank, self.by_rank = self.ranking()
        self.key = rank
        self.ready = [rank[i] for i in self.ready]
        heapify(self.ready)

    def _unstarted(self) -> list[int]:
        state = self.state
        return [j for j in range(len(state)) if state[j] <= READY]

    def _downstream(self, i: int) -> list[int]:
        """The transitive dependents of `i` not started yet, breadth first."""
        found: list[int] = []
        seen = {i}
        dependents, state = self.dependents, self.state
        todo = [i]
        for current in todo:  # `todo` grows while we walk it
            for j in dependents[current]:
                if j not in seen:
                    seen.add(j)
                    todo.append(j)
                    if state[j] <= READY:
                        found.append(j)
        return found

    def _skip(self, skips: list[Skip]) -> list[Skip]:
        state = self.state
        unready = False
        for j, _ in skips:
            if state[j] == READY:
                unready = True
            state[j] = SKIPPED
        self.unsettled -= len(skips)
        if unready:  # drop the skipped steps from the heap
            by_rank = self.by_rank
            self.ready = [k for k in self.ready if state[by_rank[k]] == READY]
            heapify(self.ready)
        return skips
