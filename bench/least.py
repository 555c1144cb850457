"""The least build, run and job that keep part 1 of the spec: lower bounds on exegraph's.

Build: `unchecked_build` keeps one object per step (`Step`'s ten fields, set without a check), a
name index and each step's dependencies as positions; `least_build` adds each step's
dependents and every priority (rule 3's number of transitive dependents), counted by
exegraph's own function, the cheapest exact way known (bitsets of the dependents; see
`bench/README.md`). Each pass is made the way `Graph(...)` makes it, in C where it can be,
with the garbage collector paused as there. No validation at all.

Run: `required`, the least task-per-step runner keeping part 1's observable promises,
each the cheapest way known: rule 3's order (a heap of ranks made beforehand, as
exegraph's are), each step's start and end on Trio's clock and the completion order
(unless nothing reads them: `record=False`, the least `exegraph.run` with no observer,
which keeps none either), each task named after its step and spawned in the run's
context, an action's exception cancelling the rest (fail-fast), a deadline on each step
when asked (rule 5), and item 9 of issue 8 (the choices of one instant taken together).
`budget.check()` checks that it starts every step at the instant exegraph does. Job:
`least_job`, `least_build` then `required`.

`budget.py` counts their instructions; `building.py` and the suite (`runners.py`'s
`required`, `required+timeout` and `least` columns) time them beside exegraph, so that a
target one of them misses too is shown impossible in the same run.
"""

from __future__ import annotations

import contextvars
import heapq
import inspect
import types
from collections.abc import Awaitable, Callable, Iterable, Sequence
from itertools import compress, repeat
from operator import attrgetter, countOf
from typing import Final

import shapes
import trio
from peers import noop

import exegraph_trio as exegraph
from exegraph_trio._collector import collector_paused
from exegraph_trio._graph import _count_dependents, _find_cycle, _topological_order

_name_of: Final = attrgetter("name")
_FUNCTION: Final = types.FunctionType
_coroutine_code: types.CodeType | None = None
"""The code of the last plain function `Checked` found to be a coroutine function's."""
_needs: Final = attrgetter("depends_on")


class Unchecked:
    """`Step`'s ten fields in slots, set as given: no check at all."""

    __slots__ = (
        "_kind",
        "action",
        "depends_on",
        "inputs",
        "name",
        "pools",
        "retry",
        "tags",
        "timeout",
        "trigger_rule",
    )

    def __init__(
        self,
        name: str,
        action: Callable[[], object],
        *,
        depends_on: tuple[str, ...] = (),
        tags: tuple[str, ...] = (),
        timeout: float | None = None,
        inputs: object = None,
        retry: object = None,
        trigger_rule: object = None,
        pools: object = None,
    ) -> None:
        self.name = name
        self.action = action
        self.depends_on = depends_on
        self.tags = tags
        self.timeout = timeout
        self.inputs = inputs
        self.retry = retry
        self.trigger_rule = trigger_rule
        self.pools = pools
        self._kind = 0


def unchecked_build(
    shape: shapes.Shape, actions: Iterable[Callable[[], Awaitable[object]]] = repeat(noop)
) -> tuple[list[Unchecked], list[tuple[int, ...]]]:
    """The `unchecked` build: the objects, a name index, dependencies as positions.

    Step `i` gets the `i`-th of `actions` (the same no-op for every step by default).
    """
    steps = [
        Unchecked(name, action, depends_on=ds)
        for name, action, ds in zip(shape.names, actions, shape.dep_names, strict=False)
    ]
    return steps, _positions(steps)


@collector_paused  # (as `Graph(...)`: each pass makes a container a step, and no cycle)
def _positions(steps: list[Unchecked]) -> list[tuple[int, ...]]:
    index = dict(zip(map(_name_of, steps), range(len(steps)), strict=True))
    return list(map(tuple, map(map, repeat(index.__getitem__), map(_needs, steps))))


@collector_paused
def _dependents(deps: Sequence[tuple[int, ...]]) -> tuple[list[int], ...]:
    dependents: list[list[int]] = [[] for _ in deps]
    for i in compress(range(len(deps)), deps):  # (the steps without a dependency skipped)
        for d in deps[i]:
            dependents[d].append(i)
    return tuple(dependents)  # (the lists kept, as `Graph(...)` keeps them)


class Checked(Unchecked):
    """`Unchecked`, with what the spec has `Step(...)` refuse, each checked the cheapest way.

    Part 1 of the spec: a name that is not a non-empty `str`, an action that is not async
    (a plain function's code flags read directly, unless its code is the last code found to
    be a coroutine function's, as `Step` does; anything else through `inspect`), a bare
    `str` for `depends_on` or `tags` (any other iterable is stored as a tuple), a step
    depending on itself. Part 2's fields are checked only for being absent (the suite never
    gives them; a build taking them would check more). No more than that: repeats are kept,
    a dependency that is not a `str` is left for the graph to miss, a `timeout` is stored
    as given (exegraph checks each of those too).
    """

    __slots__ = ()

    def __init__(
        self,
        name: str,
        action: Callable[[], object],
        *,
        depends_on: Iterable[str] = (),
        tags: Iterable[str] = (),
        timeout: float | None = None,
        inputs: object = None,
        retry: object = None,
        trigger_rule: object = None,
        pools: object = None,
    ) -> None:
        global _coroutine_code  # noqa: PLW0603 - a one-entry cache, as `Step` keeps one
        if type(name) is not str or not name:
            raise TypeError(f"a step's name must be a non-empty str, not {name!r}")
        if type(action) is _FUNCTION and (code := action.__code__) is _coroutine_code:
            pass  # (this code was checked before: a coroutine function's)
        elif type(action) is _FUNCTION and code.co_flags & inspect.CO_COROUTINE:
            _coroutine_code = code
        elif not inspect.iscoroutinefunction(action):
            raise TypeError(f"the action of step {name!r} is not async: {action!r}")
        if type(depends_on) is not tuple:
            depends_on = _stored(depends_on, "depends_on")
        if name in depends_on:
            raise ValueError(f"step {name!r} depends on itself")
        if type(tags) is not tuple:
            tags = _stored(tags, "tags")
        if inputs is not None or retry is not None or trigger_rule is not None or pools is not None:
            raise NotImplementedError("the least checked step takes none of part 2's fields")
        # `Unchecked.__init__`'s stores, written out: calling it would add a call a step to
        # a bound that must cost no more than it has to.
        self.name = name
        self.action = action
        self.depends_on = depends_on
        self.tags = tags
        self.timeout = timeout
        self.inputs = inputs
        self.retry = retry
        self.trigger_rule = trigger_rule
        self.pools = pools
        self._kind = 0


def _stored(names: Iterable[str], field: str) -> tuple[str, ...]:
    """`names` as a tuple; a bare `str` refused (it would be read as characters)."""
    if isinstance(names, str):
        raise TypeError(f"{field} takes an iterable of names, not a bare str: {names!r}")
    return tuple(names)


@collector_paused  # (as `Graph(...)`)
def checked_graph(
    steps: Iterable[Checked],
) -> tuple[tuple[tuple[int, ...], ...], tuple[list[int], ...], Sequence[int]]:
    """What the spec has `Graph(...)` refuse, each checked the cheapest way, and its passes.

    Any iterable of steps, each a `Checked` (`TypeError`), no name twice
    (`DuplicateStepError`), no dependency on a missing name (`MissingDependencyError`), no
    cycle (`CycleError`: Kahn's algorithm, only when a step depends on one given after it,
    as `Graph(...)` does, told while the dependents are made). Returns the dependencies and the
    dependents as positions (`least`'s passes), and a topological order.
    """
    given = tuple(steps)
    n = len(given)
    if not all(map(isinstance, given, repeat(Checked))):
        raise TypeError("a graph takes only steps")
    index = dict(zip(map(_name_of, given), range(n), strict=True))
    if len(index) < n:  # (the errors' details are worked out only when one is raised)
        names = list(map(_name_of, given))
        raise exegraph.DuplicateStepError(sorted({x for x in names if countOf(names, x) > 1}))
    try:
        deps = tuple(map(tuple, map(map, repeat(index.__getitem__), map(_needs, given))))
    except KeyError:
        missing = [(s.name, d) for s in given for d in s.depends_on if d not in index]
        raise exegraph.MissingDependencyError(missing) from None
    lists: list[list[int]] = [[] for _ in range(n)]
    later = False  # (a cycle needs a step depending on one given at or after it)
    for i in compress(range(n), deps):  # (`Graph(...)`'s loop: cheaper than a C-level `max`)
        for d in deps[i]:
            lists[d].append(i)
            if d >= i:
                later = True
    dependents = tuple(lists)  # (the lists kept, as `Graph(...)` keeps them)
    order: Sequence[int] = range(n)  # (steps given dependencies first: in order already)
    if later:
        order = _topological_order(deps, dependents)
        if len(order) < n:
            raise exegraph.CycleError([given[i].name for i in _find_cycle(deps, order)])
    return deps, dependents, order


def checked_build(
    shape: shapes.Shape,
    action: Callable[[], Awaitable[object]] = noop,
    *,
    actions: Sequence[Callable[[], Awaitable[object]]] | None = None,
    priorities: bool = True,
) -> tuple[tuple[tuple[int, ...], ...], tuple[list[int], ...], list[int] | None]:
    """The `checked` build: `least_build` with what the spec has a build refuse.

    `Checked` steps, `checked_graph`'s checks and passes, and every priority (as in
    `least_build`, and with the same arguments): a lower bound on any build that keeps
    rule 3 and refuses what part 1 of the spec says a `Step` and a `Graph` refuse.
    Returns what `least_build` returns.
    """
    steps = [
        Checked(name, action, depends_on=ds)
        for name, action, ds in zip(
            shape.names,
            repeat(action) if actions is None else actions,
            shape.dep_names,
            strict=False,
        )
    ]
    deps, dependents, order = checked_graph(steps)
    if not priorities:
        return deps, dependents, None
    return deps, dependents, _count_dependents(deps, dependents, order)


def least_build(
    shape: shapes.Shape,
    action: Callable[[], Awaitable[object]] = noop,
    *,
    actions: Sequence[Callable[[], Awaitable[object]]] | None = None,
    priorities: bool = True,
) -> tuple[list[tuple[int, ...]], tuple[list[int], ...], list[int] | None]:
    """The `least` build: `unchecked_build`, each step's dependents and every priority.

    Every step runs `action`, or step `i` runs `actions[i]` when `actions` is given. The
    priorities are counted unless `priorities` is false (a run where every step fits in
    the bound never needs them). Returns the dependencies and the dependents as
    positions, and the priorities or `None`.
    """
    _steps, deps = unchecked_build(shape, repeat(action) if actions is None else actions)
    frozen = _dependents(deps)
    if not priorities:
        return deps, frozen, None
    return deps, frozen, _count_dependents(tuple(deps), frozen, range(len(deps)))


def _counted(deps: Sequence[Sequence[int]]) -> tuple[list[int], list[list[int]]]:
    """Each step's number of dependencies (left to finish), and its dependents."""
    waiting = [len(ds) for ds in deps]
    dependents: list[list[int]] = [[] for _ in deps]
    for i, ds in enumerate(deps):
        for d in ds:
            dependents[d].append(i)
    return waiting, dependents


def _prepared(
    deps: Sequence[Sequence[int]],
    rank: Sequence[int],
    dependents: Sequence[Sequence[int]] | None = None,
) -> tuple[list[int], Sequence[Sequence[int]], list[int], list[int]]:
    """`required`'s state: dependencies left, dependents, the step of each rank, a heap."""
    n = len(deps)
    if dependents is None:
        waiting, dependents = _counted(deps)
    else:
        waiting = [len(ds) for ds in deps]
    by_rank = [0] * n
    for i, r in enumerate(rank):
        by_rank[r] = i
    ready = [rank[i] for i in range(n) if not waiting[i]]
    heapq.heapify(ready)
    return waiting, dependents, by_rank, ready


async def required(  # noqa: PLR0915 - one function, as a hand-written runner would be
    deps: Sequence[Sequence[int]],
    rank: Sequence[int],
    names: Sequence[str],
    bound: int,
    actions: Sequence[Callable[[], Awaitable[object]]],
    *,
    step_timeout: float | None = None,
    dependents: Sequence[Sequence[int]] | None = None,
    record: bool = True,
) -> list[int]:
    """The least runner keeping part 1's observable promises (see the module's docstring).

    Step `i` runs `actions[i]`, inside a cancel scope with a deadline `step_timeout` seconds
    after its start when it is given (`StepTimeoutError` if it passes: rule 5);
    `dependents`, when given, are each step's dependents (a build made them already).
    Returns the completion order (which `exegraph.run_with_result` gives too), or `[]`
    with `record=False`: no step's times nor the order are kept then (as `exegraph.run`
    keeps none when nothing observes it). `check()` compares its starts with exegraph's.
    """
    n = len(deps)
    waiting, dependents, by_rank, ready = _prepared(deps, rank, dependents)
    starts = [0.0] * n
    ends = [0.0] * n
    order: list[int] = []
    settled = 0  # steps completed
    now = trio.lowlevel.current_clock().current_time  # (as exegraph: one call less)
    context = contextvars.copy_context()
    token = trio.lowlevel.current_trio_token()
    running = releasing = 0  # running steps, and those of them with a dependent
    parked: list[trio.lowlevel.Task] = []
    due = False  # a completion left the choice to the end of its round
    taken: list[int] = []  # chosen then, for `decide` to start on its turn
    below_of: Sequence[Sequence[int]] = dependents

    class Boundary(trio.abc.Instrument):
        """Chooses at the end of a round, once all of its tasks ran (as exegraph).

        A completion that leaves the choice (item 9) counts every completion of its
        round, whichever Trio ran first: the schedule does not depend on Trio's order.
        `decide` (a task: Trio spawns tasks from tasks) is woken to start the steps
        chosen, if any, and Trio's wait for I/O cut short if it was to wait
        (`_driver._Takes`).
        """

        def before_io_wait(self, timeout: float) -> None:
            nonlocal due, running, releasing
            if due:
                due = False
                while ready and running < bound:
                    running += 1
                    i = by_rank[heapq.heappop(ready)]
                    if below_of[i]:
                        releasing += 1
                    taken.append(i)
                if taken and parked:
                    trio.lowlevel.reschedule(parked.pop())
                    if timeout:
                        token.run_sync_soon(_nothing)

    boundary = Boundary()
    trio.lowlevel.add_instrument(boundary)
    try:
        async with trio.open_nursery() as nursery:
            start_soon: Callable[..., None] = nursery.start_soon

            def launch() -> None:
                nonlocal running, releasing
                while ready and running < bound:
                    running += 1
                    i = by_rank[heapq.heappop(ready)]
                    if dependents[i]:
                        releasing += 1
                    context.run(start_soon, task, i, name=names[i])

            async def task(i: int) -> None:
                nonlocal running, releasing, due, settled
                start = 0.0  # (read by a deadline, and by a record, only)
                if record or step_timeout is not None:
                    starts[i] = start = now()
                try:
                    if step_timeout is None:
                        await actions[i]()
                    else:
                        with trio.CancelScope(deadline=start + step_timeout) as scope:
                            await actions[i]()
                        if scope.cancelled_caught:
                            raise exegraph.StepTimeoutError(names[i], step_timeout)
                except BaseException:
                    nursery.cancel_scope.cancel()
                    raise
                if record:
                    ends[i] = now()
                    order.append(i)
                settled += 1
                running -= 1
                below = dependents[i]
                if below:
                    releasing -= 1
                    for j in below:
                        waiting[j] -= 1
                        if not waiting[j]:
                            heapq.heappush(ready, rank[j])
                if not running or not releasing or bound >= n - settled:
                    launch()
                    if settled == n and parked:  # the last one: let `decide` end
                        trio.lowlevel.reschedule(parked.pop())
                elif ready:
                    due = True  # (chosen at the end of this round: `Boundary`)

            async def decide() -> None:
                """Start what `Boundary` chose, when it wakes this task; end with the run."""
                while settled < n:
                    if taken:
                        for i in taken:
                            context.run(start_soon, task, i, name=names[i])
                        taken.clear()
                    else:
                        parked.append(trio.lowlevel.current_task())
                        await trio.lowlevel.wait_task_rescheduled(
                            lambda _: trio.lowlevel.Abort.SUCCEEDED
                        )

            launch()
            nursery.start_soon(decide)
    finally:
        trio.lowlevel.remove_instrument(boundary)
    return order


class LeastCore:
    """The least scheduling core: `required`'s decisions as plain data and methods, no Trio.

    What issue 8 asks exegraph's core to be (a sans-IO state machine: events in, decisions
    out, no Trio import), holding only what `required` keeps: each step's dependencies left,
    its dependents, the heap of ready ranks, the steps running and those of them with a
    dependent. No step states, no skips, no hooks: a run of steps that all succeed needs
    none. `required_core` is its driver.
    """

    __slots__ = (
        "by_rank",
        "dependents",
        "limit",
        "rank",
        "ready",
        "releasing",
        "running",
        "unsettled",
        "waiting",
    )

    def __init__(
        self,
        deps: Sequence[Sequence[int]],
        rank: Sequence[int],
        limit: int,
        dependents: Sequence[Sequence[int]] | None = None,
    ) -> None:
        self.waiting, self.dependents, self.by_rank, self.ready = _prepared(deps, rank, dependents)
        self.rank = rank
        self.limit = limit
        self.running = self.releasing = 0
        self.unsettled = len(deps)

    def take(self) -> list[int]:
        """The best ready steps, as many as slots are free: they start now.

        (Each pass in C where exegraph's core makes it so: one step popped on its own,
        more by a list comprehension, the releasing ones counted by `map`.)
        """
        ready = self.ready
        count = min(len(ready), self.limit - self.running)
        if count <= 0:
            return []
        by_rank, dependents = self.by_rank, self.dependents
        if count == 1:
            i = by_rank[heapq.heappop(ready)]
            self.running += 1
            if dependents[i]:
                self.releasing += 1
            return [i]
        taken = [by_rank[heapq.heappop(ready)] for _ in range(count)]
        self.running += count
        self.releasing += countOf(map(bool, map(dependents.__getitem__, taken)), True)
        return taken

    def finish(self, i: int) -> list[int] | None:
        """Step `i` succeeded: the steps to start now, or `None` to decide with the round.

        `None` (item 9): other running steps could still make steps ready at this instant,
        and not every unsettled step fits in the bound.
        """
        self.unsettled -= 1
        self.running = running = self.running - 1
        below = self.dependents[i]
        if below:
            self.releasing -= 1
            waiting, ready, rank = self.waiting, self.ready, self.rank
            for j in below:
                waiting[j] -= 1
                if not waiting[j]:
                    heapq.heappush(ready, rank[j])
        if running and self.releasing and self.limit < self.unsettled:
            return None
        return self.take()

    def failed(self, i: int) -> bool:
        """Step `i` failed: whether the run stops (fail-fast: always)."""
        self.unsettled -= 1
        self.running -= 1
        return True


async def required_core(  # noqa: PLR0915 - one function, as `required`
    deps: Sequence[Sequence[int]],
    rank: Sequence[int],
    names: Sequence[str],
    bound: int,
    actions: Sequence[Callable[[], Awaitable[object]]],
    *,
    dependents: Sequence[Sequence[int]] | None = None,
    record: bool = True,
) -> list[int]:
    """`required` built the way issue 8 asks exegraph to be: a sans-IO core and a driver.

    The decisions are `LeastCore`'s, each event one method call; the driver is Trio's
    side: a task a step, named after it and spawned in the run's context, the choices of
    one instant taken at the end of their round (item 9) as `required` takes them.
    A step's bookkeeping after its action (its times, telling the core, starting what
    the core says) runs in a KI-protected function of its own, so that a Ctrl-C never
    leaves a step taken but not started, or ended without a timing (items 7 and 10):
    Trio protects code objects (`enable_ki_protection`, free to call), and the step's
    task runs its action unprotected, so the bookkeeping is a separate call. Everything
    else is `required`'s: the least driver of the least core, the lower bound on any
    runner built as the issue asks. Returns the completion order (`[]` with
    `record=False`).
    """
    n = len(deps)
    core = LeastCore(deps, rank, bound, dependents)
    starts = [0.0] * n
    ends = [0.0] * n
    order: list[int] = []
    now = trio.lowlevel.current_clock().current_time
    context = contextvars.copy_context()
    token = trio.lowlevel.current_trio_token()
    parked: list[trio.lowlevel.Task] = []
    due = False  # a completion left the choice to the end of its round
    taken: list[int] = []  # chosen then, for `decide` to start on its turn

    class Boundary(trio.abc.Instrument):
        """Asks the core at the end of a round; wakes `decide` to start it (as exegraph)."""

        def before_io_wait(self, timeout: float) -> None:
            nonlocal due
            if due:
                due = False
                taken.extend(core.take())
                if taken and parked:
                    trio.lowlevel.reschedule(parked.pop())
                    if timeout:  # (Trio was to wait for I/O: cut it short)
                        token.run_sync_soon(_nothing)

    boundary = Boundary()
    trio.lowlevel.add_instrument(boundary)
    try:
        async with trio.open_nursery() as nursery:
            start_soon: Callable[..., None] = nursery.start_soon

            async def task(i: int) -> None:
                start = now() if record else 0.0
                try:
                    await actions[i]()
                except BaseException:
                    failed(i)
                    raise
                done(i, start)

            @trio.lowlevel.enable_ki_protection
            def done(i: int, start: float) -> None:
                nonlocal due
                if record:
                    starts[i] = start
                    ends[i] = now()
                    order.append(i)
                chosen = core.finish(i)
                if chosen is None:
                    if core.ready:
                        due = True  # (chosen at the end of this round: `Boundary`)
                    return
                for j in chosen:
                    context.run(start_soon, task, j, name=names[j])
                if not core.unsettled and parked:  # the last one: let `decide` end
                    trio.lowlevel.reschedule(parked.pop())

            @trio.lowlevel.enable_ki_protection
            def failed(i: int) -> None:
                if core.failed(i):
                    nursery.cancel_scope.cancel()

            async def decide() -> None:
                """Start what `Boundary` took, when it wakes this task; end with the run."""
                while core.unsettled:
                    if taken:
                        for i in taken:
                            context.run(start_soon, task, i, name=names[i])
                        taken.clear()
                    else:
                        parked.append(trio.lowlevel.current_task())
                        await trio.lowlevel.wait_task_rescheduled(
                            lambda _: trio.lowlevel.Abort.SUCCEEDED
                        )

            for j in core.take():
                context.run(start_soon, task, j, name=names[j])
            nursery.start_soon(decide)
    finally:
        trio.lowlevel.remove_instrument(boundary)
    return order


def _nothing() -> None:
    """What a `Boundary` has Trio run: its wake-up of Trio's I/O wait is the point."""


def ranks_of(priorities: Sequence[int]) -> list[int]:
    """`ranks` from the priorities themselves (higher first, then position)."""
    by_rank = sorted(range(len(priorities)), key=lambda i: -priorities[i])
    rank = [0] * len(by_rank)
    for place, i in enumerate(by_rank):
        rank[i] = place
    return rank


async def least_job(
    shape: shapes.Shape,
    bound: int,
    actions: Sequence[Callable[[], Awaitable[object]]],
    *,
    core: bool = False,
) -> None:
    """The least whole job keeping part 1's promises: `unchecked`, priorities, `required`.

    With `core`, the least job built as issue 8 asks: `checked_build` (the spec's checks
    of a build; the least run's promises include none), then `required_core`.

    The priorities are counted by exegraph's own function (the cheapest exact way known,
    see `bench/README.md`), unless every step fits in the bound (exegraph does not count
    them then either); the dependents it needs are made once and given to `required`,
    which keeps no step's times (the `job` it is timed beside is an `exegraph.run` with
    no observer, which keeps none). Without `core`, no validation at all (a graph's checks
    are left out: this is a lower bound).
    """
    build = checked_build if core else least_build
    deps, frozen, priorities = build(shape, actions=actions, priorities=bound < len(shape))
    # (when every step fits, rule 3 never decides, and no priority is needed)
    rank = list(range(len(deps))) if priorities is None else ranks_of(priorities)
    runner = required_core if core else required
    await runner(deps, rank, shape.names, bound, actions, dependents=frozen, record=False)
