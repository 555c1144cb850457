"""The scheduler: `run` and `run_with_result`.

One run is a small state machine over plain lists indexed by step position:

- `waiting[i]` counts the dependencies of step `i` that have not succeeded yet;
- `state[i]` is one of the `_PENDING` … `_CANCELLED` codes below;
- `ready` is a heap of the steps whose dependencies all succeeded and that no worker has
  taken yet. Its keys are step positions until more steps are ready than there are free
  slots; then the graph's priorities are computed once and the keys become ranks
  (higher priority first, then graph order), so priority costs nothing when it cannot
  matter.

Steps run on at most `limit` worker tasks in one nursery. A worker that finishes a step
releases its dependents and takes the best ready step itself. It hands the other ready
steps to idle workers (parked with `wait_task_rescheduled`) or to new ones only when its
own action suspends: until then nothing else could run anyway (Trio runs one task at a
time), so each step still starts the moment its last dependency is done and a slot is
free, with no polling and no level-by-level waves, while steps that never suspend cost no
task and no task switch. A worker with nothing to do parks while some step still waits for
a dependency, and ends otherwise. Step deadlines are set on one cancel scope per worker,
not a scope per step.

Each step runs in a fresh copy of the run's context (rule 6): its action's coroutine is
driven inside that copy by `_resume`, so reusing the worker task leaks nothing from
one step to the next.
"""

from __future__ import annotations

import contextvars
import logging
import math
import types
from collections.abc import Awaitable, Callable, Generator, Iterator
from heapq import heapify, heappop, heappush
from typing import Any, Final

import trio

from ._errors import RunError, StepCancelledError, StepSkippedError, StepTimeoutError
from ._graph import Graph
from ._instrument import Instrument, RunInfo
from ._options import ErrorPolicy, RunOptions
from ._result import RunResult, StepStatus, StepTiming
from ._step import Step

__all__ = ["run", "run_with_result"]

logger: Final = logging.getLogger("exegraph_trio")

_PENDING, _CLAIMED, _RUNNING, _DONE, _FAILED, _SKIPPED, _CANCELLED = range(7)
_STEPS_PER_YIELD: Final = 64
"""A worker going from step to step yields to other tasks after this many steps in a row
that finished without suspending."""
_STATUS: Final = {
    _DONE: StepStatus.DONE,
    _FAILED: StepStatus.FAILED,
    _CANCELLED: StepStatus.CANCELLED,
}


async def run(graph: Graph, options: RunOptions | None = None) -> None:
    """Run every step of `graph`, each as soon as its dependencies succeeded and a slot is free.

    ```python
    trio.run(exegraph.run, graph)
    ```

    Returns when every step succeeded. Under `ErrorPolicy.FAIL_FAST` (the default) the first
    failure cancels the steps in flight and starts no more; under
    `ErrorPolicy.CONTINUE_ON_ERROR` every step not downstream of a failure still runs.

    Args:
        graph: the steps to run.
        options: concurrency, error policy, deadline, hooks and instruments; the defaults
            when `None`.

    Raises:
        RunError: one or more steps failed. It holds each failed step's own exception (with
            a note naming the step) and a `StepSkippedError` for each step that never ran;
            steps cancelled by fail-fast are not in it.
        BaseException: a `KeyboardInterrupt` or `SystemExit` raised by a step, itself,
            after the other steps were cancelled.
        trio.Cancelled: an enclosing cancel scope cancelled the run.
    """
    result = await run_with_result(graph, options)
    if result.error is not None:
        raise result.error


async def run_with_result(graph: Graph, options: RunOptions | None = None) -> RunResult:
    """Run `graph` like [`run`][exegraph_trio.run], and report how every step went.

    It never raises [`RunError`][exegraph_trio.RunError]: that error is in
    `RunResult.error` instead. A `KeyboardInterrupt`-like exception from a step and
    cancellation from outside still propagate.

    Args:
        graph: the steps to run.
        options: as for `run`.

    Returns:
        A [`RunResult`][exegraph_trio.RunResult] with a timing for every step.
    """
    if not isinstance(graph, Graph):
        raise TypeError(f"run takes a Graph, not {type(graph).__name__}: {graph!r}")
    if options is None:
        options = RunOptions()
    elif not isinstance(options, RunOptions):
        raise TypeError(f"options must be RunOptions or None, not {options!r}")
    return await _Run(graph, options).execute()


@types.coroutine
def _resume(
    inner: Any, context: contextvars.Context, message: object
) -> Generator[Any, Any, object]:
    """Go on awaiting `inner`, suspended at `message`, resuming it inside `context` each time.

    Trio talks to a task by sending values into (or throwing into) the coroutine at the
    bottom of the await chain; this passes each one through `context.run`, so the action
    runs in its step's context although the task's own context is the worker's.
    """
    enter = context.run
    try:
        while True:
            try:
                reply = yield message
            except GeneratorExit:
                enter(inner.close)
                raise
            except BaseException as exc:  # noqa: BLE001 - thrown in by Trio, passed on
                message = enter(inner.throw, exc)
            else:
                message = enter(inner.send, reply)
    except StopIteration as stop:
        return stop.value


def _only_cancelled(exc: BaseException) -> bool:
    if isinstance(exc, trio.Cancelled):
        return True
    if isinstance(exc, BaseExceptionGroup):
        return exc.split(trio.Cancelled)[1] is None
    return False


def _leaves(exc: BaseException) -> Iterator[BaseException]:
    todo = [exc]
    while todo:
        current = todo.pop()
        if isinstance(current, BaseExceptionGroup):
            todo.extend(reversed(current.exceptions))
        else:
            yield current


class _Expired(Exception):
    """A worker's deadline scope expired; the worker goes on with `next_step` in a new one."""

    def __init__(self, next_step: int | None) -> None:
        super().__init__(next_step)
        self.next_step = next_step


class _Idle:
    """A parked worker, and the step handed to it when it is woken."""

    __slots__ = ("step", "task")

    def __init__(self, task: trio.lowlevel.Task) -> None:
        self.task = task
        self.step: int | None = None


class _Run:
    """The state of one run of one graph."""

    def __init__(self, graph: Graph, options: RunOptions) -> None:
        n = len(graph)
        self.graph = graph
        self.steps = graph.steps
        self.dependents = graph._dependents
        self.info = RunInfo._new(graph, options)
        self.context = contextvars.copy_context()
        self.error_policy = options.error_policy
        self.step_timeout = options.step_timeout
        self.on_start = options.on_step_start
        self.on_done = options.on_step_done
        self.instruments: tuple[Instrument, ...] = tuple(options.instruments)
        self.limit = options.concurrency_limit

        self.waiting = [len(deps) for deps in graph._deps]
        self.state = bytearray(n)
        self.ready: list[int] = []
        self.key_of: range | list[int] = range(n)  # heap key of a step position
        self.step_of: range | list[int] = range(n)  # step position of a heap key
        self.idle: list[_Idle] = []
        self.workers = 0
        self.unsettled = n  # steps not yet done, failed, cancelled or skipped
        self.unreleased = n  # steps still waiting for a dependency
        self.stopping = False
        self.nursery: trio.Nursery | None = None

        self.timings: list[StepTiming] = []
        self.members: list[Exception] = []
        self.interrupt: BaseException | None = None
        self.unyielded = 0  # steps in a row that finished without suspending
        self.clock = trio.lowlevel.current_clock()

    # -- the run as a whole --------------------------------------------------------------

    async def execute(self) -> RunResult:
        self._notify_run(Instrument.run_started)
        try:
            try:
                async with trio.open_nursery() as nursery:
                    self.nursery = nursery
                    self.ready = [i for i, count in enumerate(self.waiting) if not count]
                    self.unreleased -= len(self.ready)
                    if self.ready:
                        self._order_ready(self.limit)
                        self._spawn()
            except BaseExceptionGroup as group:
                if not _only_cancelled(group):
                    raise
                # Cancelled from outside: propagate it the way a lone Trio task would.
                raise next(_leaves(group)) from None
        finally:
            result = self._result()
            self._notify_run(Instrument.run_done, result)
        if self.interrupt is not None:
            raise self.interrupt
        return result

    def _result(self) -> RunResult:
        if self.unsettled:  # interrupted: what never started is skipped
            self._skip((i for i, s in enumerate(self.state) if s in (_PENDING, _CLAIMED)), None)
        starts = [t.start for t in self.timings if t.start is not None]
        ends = [t.end for t in self.timings if t.end is not None]
        total = max(ends) - min(starts) if starts else 0.0
        error = None
        if self.members:
            # A step that raised KeyboardInterrupt failed too, though it is not a member.
            failed = sum(t.status is StepStatus.FAILED for t in self.timings)
            skipped = sum(isinstance(m, StepSkippedError) for m in self.members)
            message = (
                f"{failed} of {len(self.steps)} step{'s' if len(self.steps) != 1 else ''} failed"
            )
            if skipped:
                message += f", {skipped} skipped"
            error = RunError(message, self.members)
        return RunResult(tuple(self.timings), total, error)

    # -- handing out steps ---------------------------------------------------------------

    def _take(self) -> int | None:
        """Claim the best ready step for the calling worker, which is free; `None` if none."""
        if not self.ready:
            return None
        self._order_ready(len(self.idle) + self.limit - self.workers + 1)
        return self._claim()

    def _hand_out(self) -> None:
        """Start every ready step that has a free slot, on idle workers or new ones.

        Called when the calling worker is about to block in an action: until then it runs
        the ready steps itself, one after another, which starts each of them exactly as
        early (Trio runs one task at a time) without a task switch.
        """
        ready, idle = self.ready, self.idle
        self._order_ready(len(idle) + self.limit - self.workers)
        while ready and idle:
            self._hand(idle.pop(), self._claim())
        while ready and self.workers < self.limit:
            self._spawn()

    def _spawn(self) -> None:
        assert self.nursery is not None
        self.workers += 1
        self.nursery.start_soon(self._worker, self._claim(), name="exegraph-worker")

    def _order_ready(self, slots: int) -> None:
        """Rank the ready steps by priority once more of them are ready than `slots`."""
        if len(self.ready) > slots and isinstance(self.step_of, range):
            self._rank_ready()

    def _rank_ready(self) -> None:
        rank, self.step_of = self.graph._ranking()
        self.key_of = rank
        self.ready = [rank[i] for i in self.ready]
        heapify(self.ready)

    def _claim(self) -> int:
        i = self.step_of[heappop(self.ready)]
        self.state[i] = _CLAIMED
        return i

    async def _park(self) -> int | None:
        """Wait, idle, until handed a step (or `None`: the run needs no more workers)."""
        slot = _Idle(trio.lowlevel.current_task())
        self.idle.append(slot)

        def abort(_: object) -> trio.lowlevel.Abort:
            self.idle.remove(slot)
            return trio.lowlevel.Abort.SUCCEEDED

        await trio.lowlevel.wait_task_rescheduled(abort)
        return slot.step

    @staticmethod
    def _hand(slot: _Idle, step: int | None) -> None:
        slot.step = step
        trio.lowlevel.reschedule(slot.task)

    def _wake_idle(self) -> None:
        while self.idle:
            self._hand(self.idle.pop(), None)

    async def _worker(self, step: int | None) -> None:
        """Run steps until none is left for this worker.

        From its first step with a timeout on, a worker runs inside one cancel scope of its
        own, whose deadline is set for each step that has a timeout: much cheaper than a
        scope per step. When a step's deadline expires the scope is spent, so the step
        leaves it with `_Expired`, and the worker goes on in a new one.
        """
        try:
            await trio.lowlevel.checkpoint_if_cancelled()
            step = await self._work(step, None)
            while step is not None:  # a step with a deadline: go on in a deadline scope
                try:
                    with trio.CancelScope() as deadline:
                        step = await self._work(step, deadline)
                except _Expired as expired:
                    step = expired.next_step
        finally:
            self.workers -= 1

    async def _work(self, step: int | None, deadline: trio.CancelScope | None) -> int | None:
        """Run steps until none is left for this worker.

        Without a `deadline` scope, return the first step that has a timeout instead of
        running it.
        """
        while True:
            if step is not None and self.state[step] == _CLAIMED:
                timeout = self._timeout(self.steps[step])
                if timeout and deadline is None:
                    return step
                step = await self._run_step(step, deadline, timeout)
                if step is not None:
                    # Straight on to the next step: yield to other tasks now and then (each
                    # action that suspends has yielded already), but notice cancellation
                    # at once.
                    if self.unyielded >= _STEPS_PER_YIELD:
                        self.unyielded = 0
                        await trio.lowlevel.checkpoint()
                    else:
                        await trio.lowlevel.checkpoint_if_cancelled()
                    continue
            if self.stopping or self.unreleased <= len(self.idle):
                return None  # no step left that could need this worker
            step = await self._park()
            if step is None:
                return None
            await trio.lowlevel.checkpoint_if_cancelled()

    def _timeout(self, step: Step) -> float:
        """The seconds `step` may run, or `0.0` for no deadline."""
        timeout = self.step_timeout if step.timeout is None else step.timeout
        return timeout if timeout and timeout != math.inf else 0.0

    # -- one step ------------------------------------------------------------------------

    async def _run_step(
        self,
        i: int,
        deadline: trio.CancelScope | None,
        timeout: float,  # noqa: ASYNC109 - set on the worker's scope, not awaited here
    ) -> int | None:
        """Run step `i` with its hooks and settle it; return the step to run next, if any.

        `deadline` is the worker's deadline scope, present whenever `timeout` is set.
        """
        step = self.steps[i]
        self.state[i] = _RUNNING
        context = self.context.copy()
        start = self.clock.current_time()
        for instrument in self.instruments:
            self._call_instrument(context, instrument, Instrument.step_started, step)
        if self.on_start is not None:
            self._call_start_hook(context, step.name)

        error: BaseException | None = None
        state = _DONE
        cancelled: BaseException | None = None
        try:
            if timeout:
                assert deadline is not None
                deadline.deadline = start + timeout
                try:
                    await self._drive(step, context)
                finally:
                    deadline.deadline = math.inf
            else:
                await self._drive(step, context)
        except BaseException as exc:  # noqa: BLE001 - every outcome is classified below
            if _only_cancelled(exc):
                if timeout and deadline and deadline.cancel_called:  # its own deadline expired
                    error, state = StepTimeoutError(step.name, timeout), _FAILED
                else:
                    error, state, cancelled = StepCancelledError(step.name), _CANCELLED, exc
            else:
                if isinstance(exc, BaseExceptionGroup) and not isinstance(exc, Exception):
                    exc = exc.split(trio.Cancelled)[1] or exc  # drop the cancellation part
                error, state = exc, _FAILED
                if not isinstance(exc, Exception) and self.interrupt is None:
                    self.interrupt = exc
        end = self.clock.current_time()

        timing = StepTiming(step.name, _STATUS[state], start, end, error)
        if self.on_done is not None:
            self._call_done_hook(context, step.name, error)
        for instrument in reversed(self.instruments):
            self._call_instrument(context, instrument, Instrument.step_done, step, timing)
        nxt = self._settle(i, state, timing)
        if cancelled is not None:
            raise cancelled
        if timeout and deadline and deadline.cancel_called:
            raise _Expired(nxt)  # leave the spent scope (also if the action ignored it)
        return nxt

    async def _drive(self, step: Step, context: contextvars.Context) -> None:
        """Call `step`'s action and await what it returns, all inside `context`.

        The first resumption happens here: an action that finishes without suspending (a
        no-op, a cache hit) costs no generator and no trip through Trio's run loop.
        """
        awaitable = context.run(step.action)
        if type(awaitable) is types.CoroutineType:
            inner: Any = awaitable
        elif isinstance(awaitable, Awaitable):
            inner = awaitable.__await__()
        else:
            raise TypeError(
                f"the action of step {step.name!r} returned {type(awaitable).__name__}, "
                "not an awaitable; make it an async function"
            )
        try:
            message = context.run(inner.send, None)
        except StopIteration:
            self.unyielded += 1
            return
        self.unyielded = 0
        if self.ready:
            self._hand_out()
        await _resume(inner, context, message)

    def _settle(self, i: int, state: int, timing: StepTiming) -> int | None:
        """Record a finished step and release its dependents; return a step to run next."""
        self.state[i] = state
        self.timings.append(timing)
        self.unsettled -= 1
        if state == _DONE:
            waiting, ready, key_of, states = self.waiting, self.ready, self.key_of, self.state
            for j in self.dependents[i]:
                waiting[j] -= 1
                if not waiting[j] and states[j] == _PENDING:
                    heappush(ready, key_of[j])
                    self.unreleased -= 1
        elif state == _FAILED:
            error = timing.error
            assert error is not None
            error.add_note(f"exegraph: raised by step {timing.name!r}")
            if isinstance(error, Exception):
                self.members.append(error)
            if self.error_policy is ErrorPolicy.FAIL_FAST or self.interrupt is not None:
                self._stop(i)
            else:
                self._skip(self._downstream(i), timing.name)
        if self.stopping or state == _CANCELLED:
            return None
        if not self.unsettled:
            self._wake_idle()
            return None
        return self._take()

    # -- failures ------------------------------------------------------------------------

    def _downstream(self, i: int) -> list[int]:
        """The transitive dependents of step `i` that are still pending, breadth first."""
        found: list[int] = []
        seen = {i}
        dependents, state = self.dependents, self.state
        todo = [i]
        for current in todo:  # `todo` grows while we walk it
            for j in dependents[current]:
                if j not in seen:
                    seen.add(j)
                    todo.append(j)
                    if state[j] in (_PENDING, _CLAIMED):
                        found.append(j)
        return found

    def _stop(self, failed: int) -> None:
        """Fail fast: skip every step that has not started and cancel those in flight."""
        self.stopping = True
        downstream = set(self._downstream(failed))
        name = self.steps[failed].name
        for i, state in enumerate(self.state):
            if state in (_PENDING, _CLAIMED):
                self._skip((i,), name if i in downstream else None)
        self.ready.clear()
        self._wake_idle()
        assert self.nursery is not None
        self.nursery.cancel_scope.cancel()

    def _skip(self, positions: Any, failed_dependency: str | None) -> None:
        for i in list(positions):
            step = self.steps[i]
            if self.waiting[i]:
                self.unreleased -= 1
            self.state[i] = _SKIPPED
            self.unsettled -= 1
            error = StepSkippedError(step.name, failed_dependency)
            timing = StepTiming(step.name, StepStatus.SKIPPED, None, None, error)
            self.timings.append(timing)
            self.members.append(error)
            self._notify_run(Instrument.step_skipped, step, timing)

    # -- hooks and instruments -----------------------------------------------------------

    def _call_start_hook(self, context: contextvars.Context, name: str) -> None:
        try:
            context.run(self.on_start, name)  # type: ignore[arg-type]
        except Exception:
            logger.exception(
                "on_step_start hook raised for step %r; it is disabled for the rest of run %d",
                name,
                self.info.run_id,
            )
            self.on_start = None

    def _call_done_hook(
        self, context: contextvars.Context, name: str, error: BaseException | None
    ) -> None:
        try:
            context.run(self.on_done, name, error)  # type: ignore[arg-type]
        except Exception:
            logger.exception(
                "on_step_done hook raised for step %r; it is disabled for the rest of run %d",
                name,
                self.info.run_id,
            )
            self.on_done = None

    def _call_instrument(
        self,
        context: contextvars.Context,
        instrument: Instrument,
        method: Callable[..., None],
        *args: object,
    ) -> None:
        if instrument not in self.instruments:
            return
        try:
            context.run(getattr(instrument, method.__name__), self.info, *args)
        except Exception:
            logger.exception(
                "instrument %r raised in %s; it is disabled for the rest of run %d",
                instrument,
                method.__name__,
                self.info.run_id,
            )
            self.instruments = tuple(x for x in self.instruments if x is not instrument)

    def _notify_run(self, method: Callable[..., None], *args: object) -> None:
        for instrument in self.instruments:
            self._call_instrument(self.context, instrument, method, *args)
