"""The Trio driver of one run: each step its own Trio task.

The driver does the I/O of a run and nothing else; every decision is the scheduling
core's (`_core.py`). One run is:

- a nursery, whose body is the *dispatcher*: it starts the steps the core says to start
  and sleeps until completions need a decision;
- one task per step, started in that nursery, named after the step, in a fresh copy of
  the run's context. It calls the hooks and instruments around the action, runs the
  action (inside a cancel scope of its own when the step has a deadline, started when the
  action starts), classifies the outcome and reports it to the core.

Completions are decided together: a step task reports its outcome and wakes the
dispatcher, which asks the core what to start only on its next turn, after every task
that Trio runs in the same batch (every completion of that clock instant) has reported.
When the core says no other completion could change the choice (`Core.decide_now`: no
other step running, as in a chain, or none that could release a step), the step task asks
the core itself and saves the dispatcher a turn.

The observers (hooks and instruments) live in `_observers.py`, the reading of exceptions
in `_outcomes.py`, and the entry points `run` and `run_with_result` in `_run.py`.

Fail-fast cancels the nursery's scope. A step's cancellation counts as its own timeout
only if its deadline came no later than the first cancellation of the run (fail-fast, or
an enclosing scope: the dispatcher's abort callback notes when that reached the run).
Every piece of bookkeeping that must not be torn by a `KeyboardInterrupt` runs with Trio's
KI protection; the actions, hooks and instruments run without it, as Trio users expect.
"""

from __future__ import annotations

import contextvars
import math
from collections.abc import Callable
from typing import Final, final

import trio
from trio.lowlevel import enable_ki_protection

from . import _core
from ._errors import RunError, StepCancelledError, StepSkippedError, StepTimeoutError
from ._graph import Graph
from ._instrument import RunInfo
from ._observers import Observers
from ._options import ErrorPolicy, RunOptions
from ._outcomes import interrupt_in, is_cancellation, leaves, not_awaitable, note
from ._result import RunResult, StepStatus, StepTiming
from ._step import Step

__all__ = ["Run"]

_STATUS: Final = {
    _core.DONE: StepStatus.DONE,
    _core.FAILED: StepStatus.FAILED,
    _core.CANCELLED: StepStatus.CANCELLED,
    _core.SKIPPED: StepStatus.SKIPPED,
}


@final
class Run:
    """The state of one run of one graph: the core, plus what Trio needs."""

    def __init__(self, graph: Graph, options: RunOptions) -> None:
        self.steps = graph.steps
        self.info = RunInfo._new(graph, options)
        self.context = contextvars.copy_context()
        self.core = _core.Core(
            graph._deps,
            graph._dependents,
            graph._ranking,
            limit=options.concurrency_limit,
            fail_fast=options.error_policy is ErrorPolicy.FAIL_FAST,
        )
        self.step_timeout = options.step_timeout
        self.observers = Observers(self.info, options, self.context, self._interrupted)
        self.observed = bool(self.observers)
        self.clock = trio.lowlevel.current_clock()

        self.now = self.clock.current_time
        n = len(graph)
        # What each step did, kept compact; `StepTiming`s are made only when asked for.
        self.order: list[int] = []  # steps in the order their outcome was known
        self.starts: list[float | None] = [None] * n
        self.ends: list[float | None] = [None] * n
        self.errors: dict[int, BaseException] = {}
        self.members: list[Exception] = []
        self.errors_while_cancelled = False
        self.interrupt: BaseException | None = None
        self.cancelled_at = math.inf  # when fail-fast or an enclosing scope first cancelled
        self.failing_fast = False

        self.nursery: trio.Nursery | None = None
        self.dispatcher: trio.lowlevel.Task | None = None
        self.parked = False

    # -- the run as a whole ----------------------------------------------------------------

    @enable_ki_protection
    async def execute(self, *, want_result: bool) -> RunResult | RunError | None:
        """Run the graph; the `RunResult` (`want_result`), else the `RunError` or `None`."""
        outside = False
        result: RunResult | None = None
        try:
            self.observers.run_started()
            try:
                async with trio.open_nursery() as nursery:
                    self.nursery = nursery
                    self.dispatcher = trio.lowlevel.current_task()
                    await self._dispatch_loop()
            except (BaseExceptionGroup, trio.Cancelled) as exc:
                outside = self._absorb(exc)
            outside = outside or trio.current_effective_deadline() == -math.inf
            if outside:
                self._stop()  # nothing may start after an outside cancellation
        finally:
            if self.core.running:
                self._sweep()
            if want_result or self.observers.instruments:
                result = self._result()
                self.observers.run_done(result)
        if self.interrupt is not None:
            raise self.interrupt
        if outside:
            if self.errors_while_cancelled:
                raise RunError(self._message(), self._failures())
            await trio.lowlevel.checkpoint()  # raises the enclosing scope's Cancelled
        if result is not None:
            return result if want_result else result.error
        return RunError(self._message(), self.members) if self.members else None

    def _absorb(self, exc: BaseException) -> bool:
        """Take what the nursery raised; whether it was a cancellation from outside."""
        interrupt = interrupt_in(exc)
        if interrupt is not None:
            self._interrupted(interrupt)
            return False
        if is_cancellation(exc):
            return True
        # Trio's own error about a step that corrupted its task (it left a nursery open
        # in an abandoned async generator): that step's failure is the run's.
        errors = exc.split(trio.Cancelled)[1] if isinstance(exc, BaseExceptionGroup) else exc
        assert errors is not None
        for error in leaves(errors):
            if isinstance(error, Exception):
                self.members.append(error)
        return False

    async def _dispatch_loop(self) -> None:
        """Start what the core says, then sleep until a completion needs a decision."""
        core = self.core
        try:
            await trio.lowlevel.checkpoint_if_cancelled()  # cancelled already: start nothing
            core.start()
            self._start_ready()
            while core.unsettled:
                self.parked = True
                await trio.lowlevel.wait_task_rescheduled(self._abort)
                self._start_ready()
        except trio.Cancelled:
            if not self.failing_fast:
                # Cancelled from outside: start nothing more. The steps in flight were
                # woken together with this task; let those that end at once report
                # first, so that the order of the timings does not depend on Trio's.
                await trio.lowlevel.cancel_shielded_checkpoint()
                self._stop()
            raise
        except BaseException as exc:  # noqa: BLE001 - Ctrl-C delivered to this task
            self._interrupted(exc)

    def _abort(self, raise_cancel: object) -> trio.lowlevel.Abort:
        """The dispatcher is cancelled (or interrupted) while it waits: note when."""
        self.parked = False
        self._cancelled_now()
        return trio.lowlevel.Abort.SUCCEEDED

    def _cancelled_now(self) -> None:
        if self.cancelled_at == math.inf:
            self.cancelled_at = self.now()

    def _wake(self) -> None:
        if self.parked:
            self.parked = False
            assert self.dispatcher is not None
            trio.lowlevel.reschedule(self.dispatcher)

    def _start_ready(self) -> None:
        """Start every step the core says may start now, each in a new task.

        Nothing starts once the run is being cancelled: by fail-fast or an interrupt, or
        from outside (noticed by the dispatcher's abort callback at once, or by the first
        step that ends cancelled, whichever comes first).
        """
        core = self.core
        if not core.ready or self.cancelled_at != math.inf:
            return
        taken = core.take()
        if taken:
            nursery, steps, spawn = self.nursery, self.steps, self._step
            assert nursery is not None
            start_soon: Callable[..., None] = nursery.start_soon
            enter = self.context.run
            for i in taken:
                # Spawned inside the run's context: Trio gives the task a copy of it.
                enter(start_soon, spawn, i, name=steps[i].name)

    def _stop(self) -> None:
        """Start no more steps; skip every step that has not started."""
        self._skipped(self.core.stop())

    def _interrupted(self, exc: BaseException) -> None:
        """A `KeyboardInterrupt`-like exception reached the run: cancel the rest."""
        if self.interrupt is None:
            self.interrupt = exc
        self._stop()
        self._cancel()

    def _cancel(self) -> None:
        """Cancel the steps in flight (fail-fast, or after an interrupt)."""
        self._cancelled_now()
        if self.nursery is not None:
            self.failing_fast = True
            self.nursery.cancel_scope.cancel()

    def _sweep(self) -> None:
        """Settle, as cancelled, the steps whose task ended without reporting.

        Only an interrupt landing in the few unprotected lines of a step task between its
        action and its report can do that; the step still gets its timing.
        """
        core = self.core
        for i, state in enumerate(core.state):
            if state == _core.RUNNING:
                core.cancelled(i)
                self.errors[i] = StepCancelledError(self.steps[i].name)
                self.order.append(i)

    def _failures(self) -> list[Exception]:
        """Every real error of the run (the members that are not skips)."""
        return [m for m in self.members if not isinstance(m, StepSkippedError)]

    def _message(self) -> str:
        n = len(self.steps)
        failed = self.core.state.count(_core.FAILED)  # an interrupt too, though no member
        skipped = len(self.members) - len(self._failures())
        message = f"{failed} of {n} step{'s' if n != 1 else ''} failed"
        if skipped:
            message += f", {skipped} skipped"
        return message

    def _timing(self, i: int, status: StepStatus) -> StepTiming:
        return StepTiming(
            self.steps[i].name, status, self.starts[i], self.ends[i], self.errors.get(i)
        )

    def _result(self) -> RunResult:
        state, status = self.core.state, _STATUS
        timings = tuple(self._timing(i, status[state[i]]) for i in self.order)
        starts = [t for t in self.starts if t is not None]
        ends = [t for t in self.ends if t is not None]
        total = max(ends) - min(starts) if starts else 0.0
        error = RunError(self._message(), self.members) if self.members else None
        return RunResult(timings, total, error)

    # -- one step --------------------------------------------------------------------------

    async def _step(self, i: int) -> None:
        """The task of step `i`: hooks, the action, and its outcome reported to the core.

        The bookkeeping (`_done`, `_ended`, `_withdraw`) is KI-protected, so that a
        `KeyboardInterrupt` never tears it; the action, hooks and instruments run
        unprotected, as Trio users expect.
        """
        # Cancelled between this task's spawn and its start? The dispatcher's abort
        # callback notes it at once if the dispatcher was waiting; else ask Trio.
        if self.cancelled_at != math.inf:
            self._withdraw(i)
            return
        if not self.parked:
            try:
                await trio.lowlevel.checkpoint_if_cancelled()
            except trio.Cancelled:
                self._withdraw(i)
                return
        step = self.steps[i]
        if self.observed:
            self.observers.step_started(step)
            if self.interrupt is not None:  # Ctrl-C in a hook: the action never begins
                self._ended(i, step, self.now(), None, None)
                return
        timeout = step.timeout
        if timeout is None:
            timeout = self.step_timeout
        start = self.now()
        if timeout and timeout != math.inf:
            error: BaseException | None = None
            with trio.CancelScope(deadline=start + timeout) as scope:
                try:
                    await step.action()
                except BaseException as exc:  # noqa: BLE001 - classified by _ended
                    error = exc
            # Its own deadline is the cause only if it came no later than any other
            # cancellation of the run (fail-fast, an enclosing scope).
            if error is None:
                self._done(i, start)
            elif scope.cancel_called and start + timeout <= self.cancelled_at:
                self._ended(i, step, start, error, timeout)
            else:
                self._ended(i, step, start, error, None)
            return
        try:
            await step.action()
        except BaseException as exc:  # noqa: BLE001 - classified by _ended
            self._ended(i, step, start, exc, None)
        else:
            self._done(i, start)

    @enable_ki_protection
    def _done(self, i: int, start: float) -> None:
        """Step `i`'s action returned: the common case, kept short."""
        self.starts[i] = start
        self.ends[i] = self.now()
        if self.observed:
            self.observers.step_done(self.steps[i], self._timing(i, StepStatus.DONE))
        self.order.append(i)
        self.core.done(i)
        self._decide()

    @enable_ki_protection
    def _ended(
        self,
        i: int,
        step: Step,
        start: float,
        exc: BaseException | None,
        expired: float | None,
    ) -> None:
        """Classify how step `i`'s action raised, tell the observers, then the core.

        `expired` is the step's timeout when its own deadline cancelled it; `exc` is
        `None` when the run was interrupted before the action could begin.
        """
        self.starts[i] = start
        self.ends[i] = self.now()
        error: BaseException
        if exc is None:
            state, error = _core.CANCELLED, StepCancelledError(step.name)
        elif is_cancellation(exc):
            if expired is not None:
                state, error = _core.FAILED, StepTimeoutError(step.name, expired)
                error.__context__ = exc  # the traceback shows where it was stuck
            else:
                state, error = _core.CANCELLED, StepCancelledError(step.name)
                self._cancelled_now()  # from outside, if fail-fast did not say so first
        elif isinstance(exc, TypeError) and (returned := not_awaitable(exc)):
            state = _core.FAILED
            error = TypeError(
                f"the action of step {step.name!r} returned {returned}, not an awaitable; "
                "make it an async function"
            )
            error.__cause__ = exc
        else:
            state, error = _core.FAILED, exc
            if isinstance(exc, BaseExceptionGroup) and not isinstance(exc, Exception):
                error = exc.split(trio.Cancelled)[1] or exc  # drop the cancellation part
        self.errors[i] = error
        if self.observed:
            self.observers.step_done(step, self._timing(i, _STATUS[state]))
        self.order.append(i)
        if state == _core.CANCELLED:
            self.core.cancelled(i)
        else:
            self._failed(i, error)
        self._decide()

    def _decide(self) -> None:
        """Start what may start now, or leave it to the dispatcher.

        Other running steps may complete at this same instant: the dispatcher decides for
        all of them together on its next turn, unless the core says no later completion
        could change the choice (`Core.decide_now`): then this task decides at once.
        """
        core = self.core
        if core.decide_now():
            self._start_ready()
            if not core.unsettled:
                self._wake()
        elif core.ready:
            self._wake()

    def _failed(self, i: int, error: BaseException) -> None:
        raised_by = f"exegraph: raised by step {self.steps[i].name!r}"
        note(error, raised_by)
        if isinstance(error, Exception):
            self.members.append(error)
            if self.cancelled_at != math.inf and not isinstance(error, StepTimeoutError):
                self.errors_while_cancelled = True
        skips = self.core.failed(i)
        interrupt = interrupt_in(error)
        if interrupt is not None:
            if isinstance(error, BaseExceptionGroup):  # keep the rest as its context
                note(interrupt, raised_by)
                rest = error.split(lambda exc: exc is interrupt)[1]
                if interrupt.__context__ is None:
                    interrupt.__context__ = rest
            self._interrupted(interrupt)
        elif self.core.fail_fast:
            self._cancel()
        self._skipped(skips)

    @enable_ki_protection
    def _withdraw(self, i: int) -> None:
        self.core.withdraw(i)
        self._skipped([(i, None)])
        self._decide()

    def _skipped(self, skips: list[_core.Skip]) -> None:
        """Record each step the core just skipped, then tell the instruments.

        The records come first, so that an interrupt from an instrument cannot leave a
        step without one.
        """
        steps, errors, order, members = self.steps, self.errors, self.order, self.members
        for j, failed in skips:
            error = StepSkippedError(steps[j].name, None if failed is None else steps[failed].name)
            errors[j] = error
            order.append(j)
            members.append(error)
        if self.observers.instruments:
            for j, _ in skips:
                self.observers.step_skipped(steps[j], self._timing(j, StepStatus.SKIPPED))
