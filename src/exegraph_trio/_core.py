"""The scheduling core: every decision of a run, as a sans-I/O state machine.

Like h11's connection object, the core is plain data and methods: no Trio, no clock, no
tasks. Whoever drives it — the Trio driver (`_driver.py`) today, a planner on a simulated
clock later — feeds it *events* and carries out the *decisions* it returns:

| event (method)        | what the core decides                                          |
|-----------------------|----------------------------------------------------------------|
| `start()`             | the steps with no dependency become ready (or are skipped)     |
| `take()`              | which ready steps start now (best first, within the bound)     |
| `done(i)`             | releases `i`'s dependents (they become ready)                  |
| `retry(i, error)`     | whether a failed attempt is tried again, and after how long    |
| `again(i)`            | a retry's wait is over: `i` is ready for its next attempt      |
| `failed(i)`           | what the failure skips; under fail-fast, stop the run          |
| `cancelled(i)`        | what the cancellation skips (the run is already stopping)      |
| `withdraw(i)`         | a started step that never began is skipped after all           |
| `torn_down(i)`        | resource `i` is released: maybe its own dependencies can be    |
| `stop()`              | start nothing more; every step not started is skipped          |

Resources to tear down are decided as a side effect of the events that release them and
collected by `teardowns()`.

The driver calls `take()` once after a batch of events — for all the completions of one
clock instant together — so that the steps they release and the steps already waiting
compete for the freed slots by rule 3, whatever order the events came in.

Steps are integer positions in the graph. Each step is in one state:

```text
PENDING ─(rule holds)─> READY ─take()─> RUNNING ──> DONE / FAILED / CANCELLED
   │                      │              │   ▲
   │                      │   retry(i) ──┘   └── take() ── AGAIN <─ again(i) ── WAITING
   └───(rule fails)───────┴──> SKIPPED <─── (withdrawn before it began)
```

**Trigger rules** (`TriggerRule`). An `ALL_SUCCESS` step waits for each dependency to be
done and is skipped, with the failure that caused it, as soon as one is not. A dependency
skipped quietly dooms it too, but then it waits for the others to settle: it is skipped
for a failure if one of them brings one, else quietly (the same whichever settles first),
and holds no resource meanwhile, nor do the `ALL_SUCCESS` steps that need it.
Any other step waits for each dependency to *settle* and counts those that did not
succeed; once all have settled an `ALL_DONE` step is ready, and a `ONE_FAILED` step is
ready if one did not succeed, else skipped *quietly* (cause `QUIET`: not a failure).
Under fail-fast the first failure skips every `ALL_SUCCESS` step not started, and steps
with other rules still run once their dependencies settle; `stop()` (an outside
cancellation, an interrupt) skips everything not started.

**Retries.** `retry(i, error)` decides whether attempt `k` of `i` is tried again (the
step's `Retry` allows it, the run is not stopping) and returns the wait; the step gives up
its slot (`WAITING`) until `again(i)`, then competes for one by priority (`AGAIN`).

**Resources.** A resource step is *held* by its dependents: once each of them has settled
(and each dependent resource has been torn down), the resource is due for teardown. The
core counts, for each step, the dependents that still hold it — only when the graph has
resources, so that a graph without them pays nothing.

Ready steps wait in a heap. Its keys are step positions (graph order) until more steps are
ready than there are free slots; from then on they are ranks — higher priority first, then
graph order — computed once by `ranking()`, so priorities cost nothing when they cannot
matter.
"""

from __future__ import annotations

import random as _random
from collections.abc import Callable, Sequence
from heapq import heapify, heappop, heappush
from itertools import compress
from operator import countOf, not_
from typing import TYPE_CHECKING, Final, TypeAlias, final

from ._pools import Pool, tickets

if TYPE_CHECKING:
    from ._lifecycle import Retry

__all__ = [
    "AGAIN",
    "ALL_DONE",
    "ALL_SUCCESS",
    "CANCELLED",
    "DONE",
    "FAILED",
    "ONE_FAILED",
    "PENDING",
    "QUIET",
    "READY",
    "RUNNING",
    "SKIPPED",
    "WAITING",
    "Core",
    "FitCore",
    "FitRetryCore",
    "PlainCore",
    "RetryCore",
    "Skip",
]

PENDING: Final = 0
"""Waiting for its dependencies."""
READY: Final = 1
"""Its trigger rule holds; waiting for a slot."""
RUNNING: Final = 2
"""Handed to the driver by `take()`: an attempt is running."""
WAITING: Final = 3
"""An attempt failed and will be retried: waiting out the delay, holding no slot."""
AGAIN: Final = 4
"""The retry's wait is over: waiting for a slot for the next attempt."""
DONE: Final = 5
FAILED: Final = 6
SKIPPED: Final = 7
CANCELLED: Final = 8

_READY_UNLESS: Final = (READY, PENDING)
"""A plain step's state at the start, by whether it waits on a dependency (`bool(count)`)."""

ALL_SUCCESS: Final = 0
"""Trigger rule codes (`rules` of `Core`): every dependency done."""
ALL_DONE: Final = 1
"""Every dependency settled."""
ONE_FAILED: Final = 2
"""Every dependency settled, at least one did not succeed."""

QUIET: Final = -1
"""The cause of a skip that is no failure: a `ONE_FAILED` rule found nothing failed
(and the steps that needed that step)."""

Skip: TypeAlias = tuple[int, int | None]
"""A decision to skip step `i`: `(i, cause)`, where `cause` is the failed step upstream
of `i` that caused it, `None` when the run stopped before `i` could start, or `QUIET`."""

_SETTLED: Final = frozenset({DONE, FAILED, SKIPPED, CANCELLED})


class Core:
    """The decisions of one run of one graph.

    Args:
        deps: for each step, the positions of its dependencies.
        dependents: for each step, the positions of the steps that depend on it.
        ranking: computes the start order when it first matters: `(rank, by_rank)`,
            the rank of each step (0 starts first) and the step of each rank.
        limit: the most steps running at once (`>= 1`).
        fail_fast: stop the run at the first failure (else skip its dependents).
        rules: the trigger rule code of each step (`ALL_SUCCESS`, `ALL_DONE`,
            `ONE_FAILED`), or `None` when every step is `ALL_SUCCESS`.
        retries: the `Retry` of each step (or `None`), or `None` when no step retries.
        resources: whether some steps may be resources (their teardowns are tracked).
        random: a source of numbers in `[0, 1)` for the retries' jitter.
    """

    __slots__ = (
        "_teardowns",
        "attempts",
        "bad",
        "by_rank",
        "demands",
        "dependents",
        "deps",
        "doomed",
        "doomed_left",
        "fail_fast",
        "failing",
        "fresh",
        "holders",
        "key",
        "let_go",
        "limit",
        "new_waits",
        "queues",
        "random",
        "ranked",
        "ranking",
        "readied",
        "ready",
        "releasing",
        "retries",
        "retrying",
        "rules",
        "running",
        "shared",
        "state",
        "stopped",
        "tickets",
        "unsettled",
        "up",
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
        rules: Sequence[int] | None = None,
        retries: Sequence[Retry | None] | None = None,
        resources: bool = False,
        random: Callable[[], float] = _random.random,
        demands: Sequence[tuple[tuple[Pool, int], ...]] | None = None,
        shared: frozenset[Pool] = frozenset(),
        woken: Callable[[], None] | None = None,
    ) -> None:
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit!r}")
        n = len(deps)
        self.deps = deps
        self.dependents = dependents
        self.ranking = ranking
        self.limit = limit
        self.fail_fast = fail_fast
        self.rules = rules
        self.retries = retries
        self.random = random
        self.waiting = list(map(len, deps))
        """Per step: dependencies not done (or, with a trigger rule, not settled) yet."""
        self.bad: list[int] = [0] * n if rules is not None else []
        """Per step with a trigger rule: dependencies settled without succeeding. Per
        `ALL_SUCCESS` step (in a run with trigger rules): its dependencies skipped quietly
        so far (from the first it never runs, and waits for the others: one may fail)."""
        self.attempts: list[int] = [1] * n if retries is not None else []
        """Per step (when some step retries): the attempt it is on, or begins when taken.

        1 from the start: a step's first `take()` leaves it; each one `AGAIN` adds one."""
        self.holders: list[int] = [len(d) for d in dependents] if resources else []
        """Per step (when there are resources): dependents still holding it."""
        self.up: bytearray = bytearray(n if resources else 0)
        """Per step (when there are resources): 1 while it is a resource set up and not
        torn down yet."""
        self.let_go: bytearray = bytearray(n if resources else 0)
        """Per step (when there are resources): 1 once it let go of its dependencies
        before it settled: an `ALL_SUCCESS` step a quiet skip doomed (`_let_go`)."""
        self._teardowns: list[int] = []
        self.state = bytearray(n)
        self.ready: list[int] = []
        """Heap of the keys of the ready steps (`READY` or `AGAIN`)."""
        self.key: range | list[int] = range(n)
        """Heap key of each step: its position, or its rank once ranks matter."""
        self.by_rank: range | list[int] = range(n)
        """Step of each heap key."""
        self.ranked = False
        """Whether the heap keys are the ranks (`by_rank` a list), not the positions."""
        self.running = 0
        """Steps handed out by `take()` and not settled, waiting or withdrawn yet."""
        self.releasing = self.fresh = 0
        """`releasing`: running steps that have dependents (whose completion may make
        steps ready). `fresh`: those of them handed to a task in this round of Trio's
        scheduler.

        `fresh` is kept by the driver, which starts the tasks: it adds the steps it starts
        (and the retries it resumes), and sets it back to 0 between two rounds. A task
        started in a round begins in the next one at the earliest, so such a step cannot
        end in this round, and a completion of this round need not wait for it
        (`decide_now`). Counted, a completion that came after another one's decision in
        the same round waited for the step that decision had just started, so what the
        two took began a round apart, and a failure at that instant found one in flight
        and not the other: which, Trio's order decided. `plan()` decides instant by
        instant and leaves it at 0.
        """
        self.retrying = 0
        self.new_waits: list[int] = []
        """`retrying`: steps waiting out a retry's delay (`WAITING`). `new_waits`: those of
        them that began waiting in this round of Trio's scheduler.

        `new_waits` is kept by the driver, as `fresh` is: it adds each step whose retry
        waits (a delay over 0; with none, the step is ready again at once), and empties it
        between two rounds. Such a step waits in a sleep, which ends in a later round at
        the earliest, so a completion of this round need not wait for it to be ready again
        (`decide_now`); one that began waiting in an earlier round may be ready again in
        this one (at this instant). Counted, a completion in the round of a retry's
        failure waited for the end of the round if that failure came first in Trio's
        order, and decided at once if it came second: what it took began a round later
        or not, and a failure at that instant found it in flight or not begun. `plan()`
        leaves it empty.
        """
        self.unsettled = n
        """Steps not done, failed, cancelled or skipped yet."""
        self.failing = self.stopped = False
        """`failing`: true once fail-fast stopped the `ALL_SUCCESS` steps (others may still
        start). `stopped`: true once the run starts no more steps (`stop()`)."""
        self.doomed: set[int] = set()
        """The steps in flight when the run began failing fast (they are being cancelled)."""
        self.doomed_left = 0
        """How many of `doomed` have not reported yet."""
        self._use_pools(demands, shared, woken)

    # -- events ----------------------------------------------------------------------------

    def start(self) -> list[Skip]:
        """The run begins: the steps without dependencies become ready.

        Returns the steps skipped at once: a `ONE_FAILED` step without dependencies (none
        of them failed), and what needed it.
        """
        state, ready = self.state, self.ready
        rules = self.rules
        quiet: list[int] = []
        if self.queues is not None:  # pools: priorities matter from the start
            self.key, self.by_rank = self.ranking()
            self.ranked = True
        for i, count in enumerate(self.waiting):
            if not count and state[i] == PENDING:  # (not skipped by an early stop())
                if rules is not None and rules[i] == ONE_FAILED:
                    quiet.append(i)
                elif self.queues is not None:
                    self._push(i, READY)
                else:
                    state[i] = READY
                    ready.append(i)  # positions in order: already a heap
        if not quiet:
            return []
        skips = self._skip([(i, QUIET) for i in quiet])
        return skips + self._release_all([(i, QUIET) for i in quiet])

    def take(self) -> list[int]:
        """Decide which ready steps start now: the best ones, as many as slots are free.

        Each step returned is `RUNNING` from now on; the caller starts it (or resumes it,
        for a step that was `AGAIN`).
        """
        if self.queues is not None:
            return self._take_pooled()
        ready = self.ready
        free = self.limit - self.running
        if not ready or free <= 0 or self.stopped:
            return []
        if len(ready) > free and not self.ranked:
            self._rank_ready()
            ready = self.ready
        by_rank, state = self.by_rank, self.state
        if free == 1 or len(ready) == 1:  # a chain, or one slot freed: kept short
            i = by_rank[ready[0]]
            if state[i] == READY:
                heappop(ready)
                state[i] = RUNNING  # (`_started`, inlined; its first attempt: counted)
                self.running += 1
                if self.dependents[i]:
                    self.releasing += 1
                return [i]
        taken: list[int] = []
        dependents, attempts = self.dependents, self.attempts
        releasing = 0
        while ready and len(taken) < free:
            i = by_rank[heappop(ready)]
            before = state[i]
            if before == READY or (before == AGAIN and self._may_run_again(i)):
                state[i] = RUNNING  # (`_started`, inlined)
                if dependents[i]:
                    releasing += 1
                if before == AGAIN:  # its next attempt
                    attempts[i] += 1
                taken.append(i)
            # else: an AGAIN step the run is cancelling; its driver reports it
        self.running += len(taken)
        self.releasing += releasing
        return taken

    def done(self, i: int, *, resource: bool = False) -> Sequence[Skip]:
        """Step `i` succeeded: its dependents whose rule now holds become ready.

        Args:
            i: the step.
            resource: `i` is a resource step now set up: it is due for teardown once its
                dependents release it (at once when it has none).

        Returns the steps skipped as a result (a `ONE_FAILED` dependent whose other
        dependencies all succeeded, an `ALL_SUCCESS` one a quiet skip doomed, and what
        needed them).
        """
        state = self.state
        state[i] = DONE
        self.running -= 1
        self.unsettled -= 1
        if self.doomed_left and i in self.doomed:
            self.doomed_left -= 1
        if self.demands is not None:
            self._release(i)
        if self.up:
            if resource:
                self.up[i] = 1
                if not self.holders[i]:
                    self._teardowns.append(i)
            else:
                self._unhold(i)
        dependents = self.dependents[i]
        if not dependents:
            return []
        self.releasing -= 1
        if self.rules is not None:
            quiet = [skip for j in dependents if (skip := self._notify(j, None, ok=True))]
            return quiet + self._release_all(quiet) if quiet else []
        waiting, ready, key = self.waiting, self.ready, self.key
        if self.queues is not None:
            for j in dependents:
                waiting[j] -= 1
                if not waiting[j] and state[j] == PENDING:
                    self._push(j, READY)
            return []
        for j in dependents:
            waiting[j] -= 1
            if not waiting[j] and state[j] == PENDING:
                state[j] = READY
                heappush(ready, key[j])
        return []

    def retry(self, i: int, error: BaseException, *, with_failure: bool = False) -> float | None:
        """Attempt of step `i` failed with `error`: will it be tried again?

        Returns the seconds to wait before the next attempt (`i` is `WAITING` from now
        on, holding no slot; call `again(i)` when the wait is over), or `None`: no more
        attempts (report `failed(i)`). The caller never asks for a cancellation or an
        interrupt: those are never retried.

        `with_failure`: the attempt ended at the instant of the failure that made the run
        fail fast, before the driver cancelled the steps in flight: it waits for its retry
        as if it had ended just before that failure (the wait is then cancelled), whether
        or not the driver told the core that failure yet.
        """
        retries = self.retries
        if retries is None:
            return None
        retry = retries[i]
        attempt = self.attempts[i]
        if (
            retry is None
            or attempt >= retry.attempts
            or self.stopped
            or not (with_failure or self._may_run_again(i))
            or not retry.retries(error)
        ):
            return None
        self.state[i] = WAITING
        self.running -= 1
        if self.dependents[i]:
            self.releasing -= 1
        self.retrying += 1
        if self.demands is not None:
            self._release(i)
        return retry.wait(attempt, self.random() if retry.jitter else 0.0)

    def again(self, i: int) -> None:
        """Step `i`'s wait before its next attempt is over: it competes for a slot."""
        if self.state[i] != WAITING:  # cancelled while it waited
            return
        self.retrying -= 1
        if self.new_waits and i in self.new_waits:
            self.new_waits.remove(i)
        self._push(i, AGAIN)

    def failed(self, i: int) -> list[Skip]:
        """Step `i` failed for good; return the steps this skips.

        Under fail-fast the first failure stops the `ALL_SUCCESS` steps: every one not
        started is skipped (naming `i` for those downstream of it) and the caller cancels
        the steps in flight; steps with another trigger rule still run once their
        dependencies have settled. Otherwise only what needed `i` is skipped.
        """
        return self.failed_together([i])

    def failed_together(self, failures: Sequence[int]) -> list[Skip]:
        """Steps that failed for good at one instant; return the steps this skips.

        As `failed` for each in the order given (the driver gives the graph's order, not
        the order their tasks happened to report in): a step skipped because of several
        names the first. Under fail-fast they stop the run together: a step not started
        that is downstream of some of them is skipped naming the first of those.
        """
        for i in failures:
            self._ended(i, FAILED)
        if not self.fail_fast or self.failing or self.stopped:
            return self._release_all([(i, i) for i in failures])
        self.failing = True
        if self.rules is not None:  # what is in flight now is cancelled, whatever its rule
            self.doomed = {j for j, s in enumerate(self.state) if RUNNING <= s <= AGAIN}
            self.doomed_left = len(self.doomed)
        cause: dict[int, int] = {}
        seen: set[int] = set()
        for i in failures:
            for j in self._downstream(i, seen):
                cause[j] = i
        if self.rules is None:
            return self._skip([(j, cause.get(j)) for j in self._unstarted()])
        rules = self.rules
        skips = [(j, cause.get(j)) for j in self._unstarted() if rules[j] == ALL_SUCCESS]
        self._skip(skips)
        return skips + self._release_all([*((i, i) for i in failures), *skips])

    def cancelled(self, i: int) -> list[Skip]:
        """Step `i` ended because the run was cancelled (fail-fast, or from outside).

        Returns what this skips: usually nothing, since the run stopping skipped it
        already.
        """
        self._ended(i, CANCELLED)
        return self._release_all([(i, None)])

    def withdraw(self, i: int) -> list[Skip]:
        """Step `i` was handed out but the run stopped before it began: it is skipped.

        Returns the steps this skips: `i` first.
        """
        self._ended(i, SKIPPED)
        return [(i, None), *self._release_all([(i, None)])]

    def spare(self, i: int) -> None:
        """Step `i`, in flight when fail-fast began, was not cancelled after all.

        It had not begun, and its driver runs it outside the cancelled scope: it may
        still be retried.
        """
        if i in self.doomed:
            self.doomed.discard(i)
            self.doomed_left -= 1

    def torn_down(self, i: int) -> None:
        """The teardown of resource `i` ended: it no longer holds its own dependencies."""
        self.up[i] = 0
        self._unhold(i)

    def stop(self) -> list[Skip]:
        """Start nothing more (cancelled from outside, interrupted); skip what has not started.

        Idempotent: a second call skips nothing.
        """
        self.stopped = True
        return self._skip([(j, None) for j in self._unstarted()])

    # -- queries ---------------------------------------------------------------------------

    def teardowns(self) -> list[int]:
        """The resources due for teardown since the last call, in the order they became due.

        Each is due once: every dependent has released it.
        """
        due, self._teardowns = self._teardowns, []
        return due

    def decide_now(self) -> bool:
        """Whether `take()` may be called after this one event, not after all of this instant.

        Completions at one instant must be decided together (rule 3 over everything they
        release), unless no other completion could change the choice: when no step is
        running or waiting to retry, when every step left fits in the free slots, or when
        no running step has a dependent and none waits to retry (the ready steps are all
        there will be, so taking the best now and the next best after each later
        completion takes the same steps). A step started in this round of Trio's
        scheduler (`fresh`) cannot end in it, and one that began waiting to retry in it
        (`new_waits`) cannot be ready again in it: they do not count.
        """
        if self.doomed_left:  # fail-fast is cancelling steps: decide once they reported
            return False
        waits = self.retrying and self.retrying > len(self.new_waits)  # (may end now)
        if self.queues is not None:  # every completion frees pool slots: decide together
            return not self.running and not waits
        if waits:
            return self.limit >= self.unsettled
        return not self.running or self.limit >= self.unsettled or self.releasing <= self.fresh

    def settled(self, i: int) -> bool:
        """Whether step `i` has its final state."""
        return self.state[i] in _SETTLED

    # -- internals -------------------------------------------------------------------------

    def _rule(self, i: int) -> int:
        return ALL_SUCCESS if self.rules is None else self.rules[i]

    def _may_run_again(self, i: int) -> bool:
        """Whether a step ready for another attempt may have it.

        Fail-fast stops them: every `ALL_SUCCESS` step, and every step that was in flight
        when the run began failing (the driver cancels those).
        """
        return not (self.failing and (self._rule(i) == ALL_SUCCESS or i in self.doomed))

    def _started(self, i: int) -> None:
        if self.state[i] == AGAIN:  # its next attempt (a first one is counted already)
            self.attempts[i] += 1
        self.state[i] = RUNNING
        self.running += 1
        if self.dependents[i]:
            self.releasing += 1

    def _ended(self, i: int, state: int) -> None:
        """Step `i`, handed out by `take()`, ends in `state` without releasing anything."""
        before = self.state[i]
        self.state[i] = state
        self.unsettled -= 1
        if self.doomed_left and i in self.doomed:
            self.doomed_left -= 1
        if before == WAITING:
            self.retrying -= 1
            if self.new_waits and i in self.new_waits:
                self.new_waits.remove(i)
        elif before == RUNNING:
            self.running -= 1
            if self.dependents[i]:
                self.releasing -= 1
            if self.demands is not None:
                self._release(i)
        # (an AGAIN step's heap entry is dropped when `take` meets it)
        if before == AGAIN and self.shared:
            self._left_queue(i)
        if self.up:
            self._unhold(i)

    def _release_all(self, settled: list[Skip]) -> list[Skip]:
        """Steps that settled without succeeding, and what that does to their dependents.

        Each item is `(i, cause)`: `i` failed, was cancelled or skipped, and `cause` is
        what its `ALL_SUCCESS` dependents are skipped with. Walks breadth first through
        the skips this makes; returns them (not the steps given).
        """
        skips: list[Skip] = []
        todo = list(settled)
        for i, cause in todo:  # `todo` grows while we walk it
            for j in self.dependents[i]:
                skip = self._notify(j, cause, ok=False)
                if skip is not None:
                    skips.append(skip)
                    todo.append(skip)
        return skips

    def _notify(self, j: int, cause: int | None, *, ok: bool) -> Skip | None:
        """A dependency of `j` settled (`ok`: it succeeded); the skip of `j` this makes."""
        if self.state[j] != PENDING:
            return None
        rules = self.rules
        rule = ALL_SUCCESS if rules is None else rules[j]
        if not ok:
            if cause != QUIET:  # a failure, or what one skipped or cancelled
                if rule == ALL_SUCCESS:
                    return self._skip_one(j, cause)
                self.bad[j] += 1
            elif rule == ALL_SUCCESS:
                # `j` will never run, but why is not known yet: a dependency of it that
                # fails later makes it a skip for that failure, whichever settles first.
                # Meanwhile it holds nothing: the resources it needs may go.
                if self.up:
                    self._let_go(j)
                self.bad[j] += 1  # (a quiet skip comes with trigger rules: `bad` is there)
            # (a quiet skip is no failure to the other rules: it does not count)
        waiting = self.waiting
        waiting[j] -= 1
        if waiting[j]:
            return None
        if rule == ALL_SUCCESS:  # skipped quietly if a dependency was, and none failed
            quiet = rules is not None and self.bad[j] > 0
        else:  # an `ALL_DONE` step runs; a `ONE_FAILED` one if something failed
            quiet = rule == ONE_FAILED and not self.bad[j]
        if quiet:
            return self._skip_one(j, QUIET)
        self._push(j, READY)
        return None

    def _skip_one(self, j: int, cause: int | None) -> Skip:
        self.state[j] = SKIPPED
        self.unsettled -= 1
        if self.up and not self.let_go[j]:
            self._unhold(j)
        return (j, cause)

    def _let_go(self, j: int) -> None:
        """`ALL_SUCCESS` step `j`, not started, will never run: it holds nothing now.

        Nor does any `ALL_SUCCESS` step not started below it through `ALL_SUCCESS` steps
        (it needs `j` to succeed). Each lets go once; their skips come when they settle.
        """
        rules, state, let_go, dependents = self.rules, self.state, self.let_go, self.dependents
        todo = [j]
        while todo:
            k = todo.pop()
            if let_go[k]:
                continue
            let_go[k] = 1
            self._unhold(k)
            todo.extend(
                d
                for d in dependents[k]
                if state[d] == PENDING and (rules is None or rules[d] == ALL_SUCCESS)
            )

    def _unhold(self, j: int) -> None:
        """Step `j` settled (or was torn down): it no longer holds its dependencies."""
        holders, up, due = self.holders, self.up, self._teardowns
        for d in self.deps[j]:
            holders[d] -= 1
            if not holders[d] and up[d]:
                due.append(d)

    def _use_pools(
        self,
        demands: Sequence[tuple[tuple[Pool, int], ...]] | None,
        shared: frozenset[Pool],
        woken: Callable[[], None] | None,
    ) -> None:
        self.demands = demands
        """Per step, the `(pool, slots)` it takes while it runs; `None` without pools."""
        self.queues: dict[tuple[tuple[Pool, int], ...], list[int]] | None = None
        """With pools: a heap of ready steps per demand (`ready` holds those with none);
        a heap is dropped once emptied, so `take` walks only the demands now waiting."""
        self.shared = shared
        """The pools other runs may use too (their slots go to the oldest ticket first)."""
        self.tickets: list[int] = []
        """With shared pools: each step's ticket, drawn when it last became ready."""
        self.readied: list[int] | None = None
        """With pools: the steps that became ready since the driver last looked (it
        stamps when each first became ready: the wait for slots begins)."""
        if demands is None:
            return
        self.queues = {}
        self.readied = []
        if shared:
            self.tickets = [0] * len(self.state)
            for pool in shared:
                pool._join(self, self._waits, woken or (lambda: None))

    def _push(self, i: int, state: int) -> None:
        """Step `i` becomes `READY` (or `AGAIN`): into the heap of its demand."""
        self.state[i] = state
        key = self.key[i]
        queues = self.queues
        if queues is None:
            heappush(self.ready, key)
            return
        assert self.demands is not None
        assert self.readied is not None
        self.readied.append(i)
        demand = self.demands[i]
        if not demand:
            heappush(self.ready, key)
            return
        heap = queues.get(demand)
        if heap is None:
            queues[demand] = heap = [key]
        else:
            heappush(heap, key)
        if self.shared:
            ticket = next(tickets)
            self.tickets[i] = ticket
            for pool, _ in demand:
                if pool in self.shared:
                    pool._wait(self, ticket, i)

    def _waits(self, i: int, ticket: int) -> bool:
        """Whether step `i` still waits for slots with `ticket` (for `Pool._may_take`)."""
        return self.state[i] in (READY, AGAIN) and self.tickets[i] == ticket

    def _take_pooled(self) -> list[int]:
        """`take()` with pools: the best ready step that fits, again and again.

        Ready steps wait in one heap per demand (the steps needing no pool in `ready`),
        so only the best step of each demand is looked at: a step whose pool is busy
        never holds back a lower-priority step that fits (no head-of-line blocking).
        Every step of a heap needs the same slots, so the head says whether any fits.
        A heap may hold steps no longer ready (skipped, an `AGAIN` step being cancelled):
        they are dropped when they come out on top. A head a shared pool refuses because
        another run's step has waited longer (`Pool._may_take`) gives way, for that pool,
        to this run's own oldest waiter, which may be inside a heap: the oldest waiter of
        all runs can always go, so runs sharing pools never wait on each other for ever.
        """
        assert self.queues is not None
        assert self.demands is not None
        free = self.limit - self.running
        if free <= 0 or self.stopped:
            return []
        ready, demands = self.ready, self.demands
        waiting = self.queues
        taken: list[int] = []
        by_rank, state, shared = self.by_rank, self.state, self.shared
        while free > 0:
            best: list[int] | None = None
            best_key = ready[0] if ready else None
            if best_key is not None:
                best = ready
            held_back: set[Pool] | None = None  # shared pools that refused a head by age
            for demand, heap in waiting.items():
                if best_key is not None and heap[0] > best_key:
                    continue
                for pool, n in demand:  # does its head fit?
                    if pool.size - pool.in_use < n:
                        break
                    if (
                        shared
                        and pool in shared
                        and not pool._may_take(self, self.tickets[by_rank[heap[0]]])
                    ):
                        held_back = held_back or set()
                        held_back.add(pool)
                        break
                else:
                    best, best_key = heap, heap[0]
            # The run's oldest waiter, taken from inside its heap, if it beats the best.
            outside_heap = self._oldest_that_may(held_back, best_key) if held_back else None
            if outside_heap is not None:
                i = outside_heap  # its heap entry is dropped when it comes out on top
            else:
                if best is None or best_key is None:
                    break
                heappop(best)
                i = by_rank[best_key]
                if not best and best is not ready:  # an emptied heap: no demand waits
                    del waiting[demands[i]]
            if state[i] != READY and not (state[i] == AGAIN and self._may_run_again(i)):
                continue  # no longer ready
            if outside_heap is not None:
                best = None  # (not `ready`: it takes its pool slots)
            if best is not ready:
                for pool, n in demands[i]:
                    pool.in_use += n
            self._started(i)
            if shared:
                self._left_queue(i)
            taken.append(i)
            free -= 1
        return taken

    def _oldest_that_may(self, held_back: set[Pool], best_key: int | None) -> int | None:
        """This run's oldest waiter for a pool of `held_back`, if it may start now.

        Only one whose key beats `best_key` (of several such pools, the best one).
        """
        found: int | None = None
        for pool in held_back:
            j = pool._oldest_step(self)
            if j is None or (best_key is not None and self.key[j] > best_key):
                continue
            if self._takable(j) and self._fits(j):
                found, best_key = j, self.key[j]
        return found

    def _fits(self, i: int) -> bool:
        """Whether ready step `i`'s slots are free and no older waiter holds them."""
        assert self.demands is not None
        ticket = self.tickets[i]
        return all(
            pool.size - pool.in_use >= n
            and (pool not in self.shared or pool._may_take(self, ticket))
            for pool, n in self.demands[i]
        )

    def _left_queue(self, i: int) -> None:
        """Step `i` no longer waits for its pools (it started, or was skipped).

        A run it held back by an older ticket may go now, so the other runs are woken.
        """
        if self.shared and self.demands is not None:
            for pool, _ in self.demands[i]:
                if pool in self.shared:
                    pool._changed(self)

    def _takable(self, i: int) -> bool:
        state = self.state[i]
        return state == READY or (state == AGAIN and self._may_run_again(i))

    def _release(self, i: int) -> None:
        """Step `i`'s action ended (or waits to be retried): its pool slots come free."""
        assert self.demands is not None
        for pool, n in self.demands[i]:
            pool._release(n, self)

    def close(self) -> None:
        """The run is over: leave the shared pools (forget this run's tickets)."""
        for pool in self.shared:
            pool._leave(self)
            pool._changed(self)

    def _rank_ready(self) -> None:
        rank, self.by_rank = self.ranking()
        self.ranked = True
        self.key = rank
        self.ready = [rank[i] for i in self.ready]
        heapify(self.ready)

    def _unstarted(self) -> list[int]:
        state = self.state
        return [j for j in range(len(state)) if state[j] <= READY]

    def _downstream(self, i: int, seen: set[int] | None = None) -> list[int]:
        """The transitive dependents of `i` not started yet, breadth first.

        Only through `ALL_SUCCESS` steps: a step with another trigger rule still runs
        after a failure (rules look at direct dependencies only, SPEC 2.1), so what
        needs it is not downstream of the failure (fail-fast skips it, with no cause).
        `seen` is shared by the walks from several steps: each finds only what the
        walks before it did not (together they walk each edge once).
        """
        found: list[int] = []
        if seen is None:
            seen = set()
        seen.add(i)
        dependents, state, rules = self.dependents, self.state, self.rules
        todo = [i]
        for current in todo:  # `todo` grows while we walk it
            for j in dependents[current]:
                if j not in seen:
                    seen.add(j)
                    if rules is not None and rules[j] != ALL_SUCCESS:
                        continue
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
                if self.shared:
                    self._left_queue(j)
            state[j] = SKIPPED
        self.unsettled -= len(skips)
        if self.up:
            let_go = self.let_go
            for j, _ in skips:
                if not let_go[j]:
                    self._unhold(j)
        if unready and self.queues is None:  # drop the skipped steps from the heap
            by_rank = self.by_rank
            self.ready = [k for k in self.ready if state[by_rank[k]] in (READY, AGAIN)]
            heapify(self.ready)
        # (with pools, `_take_pooled` drops them when it meets them)
        return skips


def releasing_among(dependents: Sequence[Sequence[int]], steps: list[int]) -> int:
    """How many of `steps` have dependents (counted in C: `Core.releasing`'s share)."""
    return countOf(map(bool, map(dependents.__getitem__, steps)), True)


def _in_heap_order(core: Core) -> list[int]:
    """Every ready step, in the order the heap gives them (sorted in C: still a heap)."""
    ready = core.ready
    ready.sort()
    return list(map(core.by_rank.__getitem__, ready)) if core.ranked else ready


def _start_plain(core: Core) -> list[Skip]:
    """`Core.start` for a core with no trigger rule and no pool: the roots become ready."""
    state, ready, waiting = core.state, core.ready, core.waiting
    if not core.stopped and not ready:
        # Every step is `PENDING`: the states and the heap made in C, not a loop a step
        # (a wide graph starts 10⁵ steps here). Positions in order: already a heap.
        state[:] = bytes(map(_READY_UNLESS.__getitem__, map(bool, waiting)))
        ready += compress(range(len(waiting)), map(not_, waiting))
        return []
    for i, count in enumerate(waiting):
        if not count and state[i] == PENDING:  # (not skipped by an early stop())
            state[i] = READY
            ready.append(i)  # positions in order: already a heap
    return []


class PlainCore(Core):
    """The decisions of a run that uses none of the lifecycle: the common case, kept short.

    Every step is `ALL_SUCCESS` and runs once, none is a resource and no pool is in play
    (`rules`, `retries`, `demands` are `None`, `resources` is false). `take`, `done` and
    `decide_now` then make the same decisions as `Core`'s, without consulting what the run
    does not use (tests/test_core.py checks the two agree on random graphs and events).
    The driver picks this class for such runs; everything else is `Core`'s.
    """

    __slots__ = ()

    def start(self) -> list[Skip]:
        """`Core.start` for plain steps: those without dependencies become ready."""
        return _start_plain(self)

    def take(self) -> list[int]:
        """`Core.take` for plain steps: the best ready steps, as many as slots are free."""
        ready = self.ready
        free = self.limit - self.running
        if not ready or free <= 0 or self.stopped:
            return []
        if len(ready) > free:
            if not self.ranked:
                self._rank_ready()
                ready = self.ready
            count = free
        else:
            count = len(ready)
        by_rank, state, dependents = self.by_rank, self.state, self.dependents
        if count == 1:  # a chain, or one slot freed
            i = by_rank[heappop(ready)]
            state[i] = RUNNING
            self.running += 1
            if dependents[i]:
                self.releasing += 1
            return [i]
        if count == len(ready):
            # All of them (every step fits, as under no bound): in the order the heap
            # would give them, sorted in C rather than popped one by one.
            taken = _in_heap_order(self)
            self.ready = []
        else:
            taken = [by_rank[heappop(ready)] for _ in range(count)]
        for i in taken:
            state[i] = RUNNING
        self.running += count
        self.releasing += releasing_among(dependents, taken)
        return taken

    def done(self, i: int, *, resource: bool = False) -> Sequence[Skip]:
        """`Core.done` for plain steps: the dependents now waiting on nothing become ready.

        Returns `()`: a success skips nothing (and a tuple costs no allocation).
        """
        self.finish(i, take=False)  # (the driver calls `finish` itself)
        return ()

    def decide_now(self) -> bool:
        """`Core.decide_now` for plain steps (nothing retries, no pool, no soft stop)."""
        return not self.running or self.limit >= self.unsettled or self.releasing <= self.fresh

    def finish(self, i: int, take: bool = True) -> list[int] | None:  # noqa: FBT001, FBT002 - one call a step
        """Step `i` succeeded: `done(i)`, then `take()` if `decide_now()`, in one call.

        What the driver calls for a success (`PlainCore.done` is this without the take).

        Args:
            i: the step that succeeded.
            take: whether steps may start (false once the run is being cancelled).

        Returns:
            The steps to start now, best first (maybe none); `None` when the decision
            must wait for every completion of this instant (`decide_now()` is false).
        """
        state, ready = self.state, self.ready
        state[i] = DONE
        self.running = running = self.running - 1
        self.unsettled -= 1
        dependents = self.dependents[i]
        if dependents:
            self.releasing -= 1
            waiting, key = self.waiting, self.key
            for j in dependents:
                waiting[j] -= 1
                if not waiting[j] and state[j] == PENDING:
                    state[j] = READY
                    heappush(ready, key[j])
        if running and self.releasing > self.fresh and self.limit < self.unsettled:
            return None
        if not ready or not take or self.stopped:
            return []
        if (self.ranked and self.limit - running == 1) or len(ready) == 1:
            # One step ready (a slot is free: this one's), or one slot freed and the heap's
            # order is the ranks': `take()`'s short path, inlined, since this is what a
            # bounded run does for nearly every step.
            j = self.by_rank[heappop(ready)]
            state[j] = RUNNING
            self.running = running + 1
            if self.dependents[j]:
                self.releasing += 1
            return [j]
        return self.take()


@final
class FitCore(PlainCore):
    """A `PlainCore` whose bound is at least the number of steps: every step fits.

    Rule 3 then never chooses: whatever is ready starts at once, and a success starts the
    steps it frees itself (`finish`), with no heap. The driver picks this class for a
    plain run under no bound (or a bound as large as the graph); tests/test_core.py checks
    that it decides as `PlainCore` does.
    """

    __slots__ = ()

    def finish(self, i: int, take: bool = True) -> list[int] | None:  # noqa: FBT001, FBT002 - one call a step
        """`PlainCore.finish`: the steps freed by step `i`'s success, to start now.

        Args:
            i: the step that succeeded.
            take: whether steps may start (false once the run is being cancelled).

        Returns:
            The steps to start now, in `take()`'s order (maybe none).
        """
        if self.ready or not take or self.stopped:  # (none is ready after a take)
            return PlainCore.finish(self, i, take=take)
        return _fit_finish(self, i)


def _fit_finish(core: Core, i: int) -> list[int]:
    """Step `i` succeeded and every step fits: the steps it frees, started (`RUNNING`).

    What `finish` then decides, with no heap: nothing is ready (every step ready was
    taken), and a freed step starts at once, in the order `take()` would give (its key).
    """
    state = core.state
    state[i] = DONE
    core.running -= 1
    core.unsettled -= 1
    dependents = core.dependents[i]
    if not dependents:
        return []
    core.releasing -= 1
    waiting = core.waiting
    taken = []
    for j in dependents:
        waiting[j] -= 1
        if not waiting[j] and state[j] == PENDING:
            state[j] = RUNNING
            taken.append(j)
    if taken:
        if len(taken) > 1:
            key = core.key
            taken.sort(key=key.__getitem__ if core.ranked else None)
        core.running += len(taken)
        core.releasing += releasing_among(core.dependents, taken)
    return taken


class RetryCore(Core):
    """The decisions of a run whose only lifecycle feature is retries.

    No step has a trigger rule, none is a resource and no pool is in play (`rules` and
    `demands` are `None`, `resources` is false): a success never skips anything, frees no
    pool slot and holds no resource. `finish` is `done`, `decide_now` and `take` in one
    call, as `PlainCore.finish` is (tests/test_lifecycle_properties.py checks that it
    decides as those three do); the rest (retries, failures, stops) is `Core`'s.
    """

    __slots__ = ()

    def start(self) -> list[Skip]:
        """`Core.start` for steps with no trigger rule and no pool: the roots become ready."""
        return _start_plain(self)

    def take(self) -> list[int]:
        """`Core.take`; when the steps it takes are all `READY`, mostly in C.

        Every ready step, when all fit: in the heap's order (a sorted list is a heap), as
        `Core.take` pops them. Else the best as many as slots are free, popped as
        `PlainCore.take` pops them. When one of those is `AGAIN` (it must be asked whether
        it may run again), they go back on the heap, and `Core.take` decides.
        """
        ready = self.ready
        free = self.limit - self.running
        if len(ready) < 2 or free <= 0 or self.stopped:
            return Core.take(self)
        state = self.state
        if free >= len(ready):
            taken = _in_heap_order(self)
            if countOf(map(state.__getitem__, taken), READY) == len(taken):
                self.ready = []
                for i in taken:  # (each on its first attempt: counted already)
                    state[i] = RUNNING
                self.running += len(taken)
                self.releasing += releasing_among(self.dependents, taken)
                return taken
            return Core.take(self)
        if not self.ranked:
            self._rank_ready()
            ready = self.ready
        by_rank = self.by_rank
        taken = [by_rank[heappop(ready)] for _ in range(free)]
        if countOf(map(state.__getitem__, taken), READY) == free:
            for i in taken:
                state[i] = RUNNING
            self.running += free
            self.releasing += releasing_among(self.dependents, taken)
            return taken
        key = self.key
        for i in taken:  # (as they were: the heap holds the same keys)
            heappush(ready, key[i])
        return Core.take(self)

    def finish(self, i: int, take: bool = True) -> list[int] | None:  # noqa: FBT001, FBT002 - one call a step
        """Step `i` succeeded: `done(i)`, then `take()` if `decide_now()`, in one call.

        Args:
            i: the step that succeeded.
            take: whether steps may start (false once the run is being cancelled).

        Returns:
            The steps to start now (or to resume, for a step that was `AGAIN`), best
            first (maybe none); `None` when the decision must wait for every completion
            of this instant (`decide_now()` is false).
        """
        state, ready = self.state, self.ready
        state[i] = DONE
        self.running = running = self.running - 1
        self.unsettled -= 1
        if self.doomed_left and i in self.doomed:
            self.doomed_left -= 1
        dependents = self.dependents[i]
        if dependents:
            self.releasing -= 1
            waiting, key = self.waiting, self.key
            for j in dependents:
                waiting[j] -= 1
                if not waiting[j] and state[j] == PENDING:
                    state[j] = READY
                    heappush(ready, key[j])
        # `decide_now()`, inlined (no pool in such a run)
        if self.doomed_left:  # fail-fast is cancelling steps: decide once they reported
            return None
        retrying = self.retrying
        if (
            (retrying and retrying > len(self.new_waits)) or self.releasing > self.fresh
        ) and self.limit < self.unsettled:
            return None
        if not ready or not take or self.stopped:
            return []
        if (self.ranked and self.limit - running == 1) or len(ready) == 1:
            # One step ready (a slot is free: this one's), or one slot freed and the heap's
            # order is the ranks': `take()`'s short path, inlined (a step that is `AGAIN`
            # goes through `take()`, which asks whether it may run again).
            j = self.by_rank[ready[0]]
            if state[j] == READY:
                heappop(ready)
                state[j] = RUNNING
                self.running = running + 1
                if self.dependents[j]:
                    self.releasing += 1
                return [j]  # (its first attempt: counted already)
        return self.take()


@final
class FitRetryCore(RetryCore):
    """A `RetryCore` whose bound is at least the number of steps: every step fits.

    As `FitCore` is to `PlainCore`: a success starts the steps it frees itself, with no
    heap, unless a step is ready (a retry ready again) or fail-fast is stopping the run.
    The driver picks it for a run with retries under no bound (or one as large as the
    graph); tests/test_lifecycle_properties.py checks it decides as `RetryCore` does.
    """

    __slots__ = ()

    def finish(self, i: int, take: bool = True) -> list[int] | None:  # noqa: FBT001, FBT002 - one call a step
        """`RetryCore.finish`, as `FitCore.finish` is `PlainCore.finish`.

        (`RetryCore`'s while fail-fast cancels steps: it decides once they reported.)
        """
        if self.ready or not take or self.stopped or self.doomed_left:
            return RetryCore.finish(self, i, take=take)
        return _fit_finish(self, i)  # (first attempts: counted already)
