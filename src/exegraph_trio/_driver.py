"""The Trio driver: `run` and `run_with_result`, each step its own Trio task.

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
When no other step is running, nothing else can complete at this instant, so the step
task asks the core itself and saves the dispatcher a turn (a chain never waits for it).

Fail-fast cancels the nursery's scope. A step's cancellation counts as its own timeout
only if its deadline came no later than the first cancellation of the run (fail-fast, or
an enclosing scope: the dispatcher's abort callback notes when that reached the run).
Every piece of bookkeeping that must not be torn by a `KeyboardInterrupt` runs with Trio's
KI protection; the actions, hooks and instruments run without it, as Trio users expect.
"""

from __future__ import annotations

import contextvars
import logging
import math
import re
from collections.abc import Callable, Iterator
from typing import Final

import trio
from trio.lowlevel import disable_ki_protection, enable_ki_protection

from . import _core
from ._errors import RunError, StepCancelledError, StepSkippedError, StepTimeoutError
from ._graph import Graph
from ._instrument import Instrument, RunInfo
from ._options import ErrorPolicy, RunOptions
from ._result import RunResult, StepStatus, StepTiming
from ._step import Step

__all__ = ["run", "run_with_result"]

logger: Final = logging.getLogger("exegraph_trio")

_STATUS: Final = {
    _core.DONE: StepStatus.DONE,
    _core.FAILED: StepStatus.FAILED,
    _core.CANCELLED: StepStatus.CANCELLED,
    _core.SKIPPED: StepStatus.SKIPPED,
}


async def run(graph: Graph, options: RunOptions | None = None) -> None:
    """Run every step of `graph`, each as soon as its dependencies succeeded and a slot is free.

    ```python
    trio.run(exegraph.run, graph)
    ```

    Returns when every step succeeded. Under `ErrorPolicy.FAIL_FAST` (the default) the first
    failure cancels the steps in flight and starts no more; under
    `ErrorPolicy.CONTINUE_ON_ERROR` every step not downstream of a failure still runs.
    Each step runs as its own Trio task, named after the step, in the run's nursery.

    Args:
        graph: the steps to run.
        options: concurrency, error policy, deadline, hooks and instruments; the defaults
            when `None`.

    Raises:
        RunError: one or more steps failed. It holds each failed step's own exception (with
            a note naming the step) and a `StepSkippedError` for each step that never ran;
            steps cancelled by fail-fast are not in it. Also raised, as a nursery would,
            when the run was cancelled from outside and a step raised a real error while
            being cancelled.
        BaseException: a `KeyboardInterrupt` or `SystemExit` from a step, a hook, an
            instrument or Ctrl-C, itself (not in a group), after the other steps were
            cancelled.
        trio.Cancelled: an enclosing cancel scope cancelled the run.
    """
    options = _check_arguments(graph, options)
    error = await _Run(graph, options).execute(want_result=False)
    if isinstance(error, RunError):
        raise error


async def run_with_result(graph: Graph, options: RunOptions | None = None) -> RunResult:
    """Run `graph` like [`run`][exegraph_trio.run], and report how every step went.

    It never raises [`RunError`][exegraph_trio.RunError] for step failures: that error is
    in `RunResult.error` instead. An interrupt and cancellation from outside propagate as
    they do from `run`.

    Args:
        graph: the steps to run.
        options: as for `run`.

    Returns:
        A [`RunResult`][exegraph_trio.RunResult] with a timing for every step.
    """
    options = _check_arguments(graph, options)
    result = await _Run(graph, options).execute(want_result=True)
    assert isinstance(result, RunResult)
    return result


def _check_arguments(graph: object, options: object) -> RunOptions:
    """Refuse what `run` cannot take, saying what to pass instead; the options to use."""
    if not isinstance(graph, Graph):
        raise TypeError(_not_a_graph(graph))
    if options is None:
        options = RunOptions()
    elif not isinstance(options, RunOptions):
        raise TypeError(
            f"options must be exegraph.RunOptions or None, not {type(options).__name__}"
        )
    _check_trio()
    return options


def _not_a_graph(value: object) -> str:
    if isinstance(value, (list, tuple, set, frozenset)) or (
        hasattr(value, "__iter__") and not isinstance(value, (str, bytes, dict))
    ):
        return (
            f"run takes a Graph, not a {type(value).__name__}; "
            "wrap the steps in one: exegraph.run(exegraph.Graph(steps))"
        )
    return f"run takes an exegraph.Graph, not {type(value).__name__}"


def _check_trio() -> None:
    """Refuse, with advice, to run outside Trio (under asyncio, say)."""
    try:
        trio.lowlevel.current_task()
    except RuntimeError:
        raise RuntimeError(
            "exegraph runs on Trio, not on this event loop: call it from Trio, "
            "as trio.run(exegraph.run, graph) or `await exegraph.run(graph)` inside "
            "trio.run(...)"
        ) from None


def _is_cancellation(exc: BaseException) -> bool:
    """`Cancelled`, or a group of nothing but `Cancelled`."""
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


def _interrupt_in(exc: BaseException) -> BaseException | None:
    """The `KeyboardInterrupt`-like exception `exc` is or holds (first one), if any."""
    if isinstance(exc, Exception):
        return None
    for leaf in _leaves(exc):
        if not isinstance(leaf, (Exception, trio.Cancelled)):
            return leaf
    return None


def _not_awaitable(exc: TypeError) -> str:
    """What the action returned, if `exc` is the step task's own `await` refusing it.

    `exc` reads `object int can't be used in 'await' expression`; the result is then
    `"int"`, else `""` (a `TypeError` raised inside the action).
    """
    tb = exc.__traceback__
    if tb is None or tb.tb_next is not None:
        return ""  # raised inside the action, not by our await
    found = re.fullmatch(r"object (\S+) can't be used in 'await' expression", str(exc))
    return found[1] if found else ""


def _note(exc: BaseException, note: str) -> None:
    """Add `note` to `exc` once; an exception that cannot take notes keeps none."""
    notes = getattr(exc, "__notes__", None)
    if isinstance(notes, list) and note in notes:
        return  # raised again (a cached error): one note per step, not one per run
    try:
        exc.add_note(note)
    except Exception:  # noqa: BLE001 - frozen, or __notes__ is not a list: leave it be
        return


class _Run:
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
        self.on_start = options.on_step_start
        self.on_done = options.on_step_done
        self.instruments: tuple[Instrument, ...] = tuple(options.instruments)
        self.observed = (
            bool(self.instruments) or self.on_start is not None or (self.on_done is not None)
        )
        self.clock = trio.lowlevel.current_clock()

        self.now = self.clock.current_time
        n = len(graph)
        # What each step did, kept compact; `StepTiming`s are made only when asked for.
        self.order: list[int] = []  # steps in the order their outcome was known
        self.starts: list[float | None] = [None] * n
        self.ends: list[float | None] = [None] * n
        self.errors: dict[int, BaseException] = {}
        self.members: list[Exception] = []
        self.failures: list[Exception] = []  # every real error of a step, for a nursery-like end
        self.failed = 0  # steps that failed (an interrupt too, though it is no member)
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
            self._notify_run(Instrument.run_started)
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
            if want_result or self.instruments:
                result = self._result()
                self._notify_run(Instrument.run_done, result)
        if self.interrupt is not None:
            raise self.interrupt
        if outside:
            if self.errors_while_cancelled:
                raise RunError(self._message(), self.failures)
            await trio.lowlevel.checkpoint()  # raises the enclosing scope's Cancelled
        if want_result:
            return result
        return RunError(self._message(), self.members) if self.members else None

    def _absorb(self, exc: BaseException) -> bool:
        """Take what the nursery raised; whether it was a cancellation from outside."""
        interrupt = _interrupt_in(exc)
        if interrupt is not None:
            self._interrupted(interrupt)
            return False
        if _is_cancellation(exc):
            return True
        raise exc  # a bug of ours: nothing else may come out of the nursery

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
        self._cancelled_now()
        self._skipped(self.core.stop())
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

    def _message(self) -> str:
        n = len(self.steps)
        failed = self.failed
        skipped = len(self.members) - len(self.failures)
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
            self._begin(step)
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
            self._end_observers(self.steps[i], self._timing(i, StepStatus.DONE))
        self.order.append(i)
        self.core.done(i)
        self._decide()

    @enable_ki_protection
    def _ended(
        self,
        i: int,
        step: Step,
        start: float,
        exc: BaseException,
        expired: float | None,
    ) -> None:
        """Classify how step `i`'s action raised, tell the observers, then the core.

        `expired` is the step's timeout when its own deadline cancelled it.
        """
        self.starts[i] = start
        self.ends[i] = self.now()
        error: BaseException
        if _is_cancellation(exc):
            if expired is not None:
                state, error = _core.FAILED, StepTimeoutError(step.name, expired)
                error.__context__ = exc  # the traceback shows where it was stuck
            else:
                state, error = _core.CANCELLED, StepCancelledError(step.name)
                self._cancelled_now()  # from outside, if fail-fast did not say so first
        elif isinstance(exc, TypeError) and (returned := _not_awaitable(exc)):
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
            self._end_observers(step, self._timing(i, _STATUS[state]))
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
        self.failed += 1
        _note(error, f"exegraph: raised by step {self.steps[i].name!r}")
        if isinstance(error, Exception):
            self.members.append(error)
            self.failures.append(error)
            if self.cancelled_at != math.inf and not isinstance(error, StepTimeoutError):
                self.errors_while_cancelled = True
        skips = self.core.failed(i)
        interrupt = _interrupt_in(error)
        if interrupt is not None:
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
        if self.instruments:
            for j, _ in skips:
                timing = self._timing(j, StepStatus.SKIPPED)
                self._notify(self.context, Instrument.step_skipped, steps[j], timing)

    # -- hooks and instruments -------------------------------------------------------------

    def _begin(self, step: Step) -> None:
        """`step_started` for each instrument, then `on_step_start` (in the step's task)."""
        if self.instruments:
            self._notify(None, Instrument.step_started, step)
        if self.on_start is not None:
            try:
                _observe(self.on_start, step.name)
            except Exception:  # noqa: BLE001 - logged with its traceback by _hook_failed
                self._hook_failed("on_step_start", step.name)
                self.on_start = None
            except BaseException as exc:  # noqa: BLE001 - an interrupt: the run stops
                self._interrupted(exc)

    def _end_observers(self, step: Step, timing: StepTiming) -> None:
        """`on_step_done`, then `step_done` for each instrument in reverse order."""
        if self.on_done is not None:
            try:
                _observe(self.on_done, step.name, timing.error)
            except Exception:  # noqa: BLE001 - logged with its traceback by _hook_failed
                self._hook_failed("on_step_done", step.name)
                self.on_done = None
            except BaseException as exc:  # noqa: BLE001 - an interrupt: the run stops
                self._interrupted(exc)
        if self.instruments:
            self._notify(None, Instrument.step_done, step, timing, reverse=True)

    def _hook_failed(self, hook: str, name: str) -> None:
        logger.exception(
            "%s hook raised for step %r; it is disabled for the rest of run %d",
            hook,
            name,
            self.info.run_id,
        )

    def _notify(
        self,
        context: contextvars.Context | None,
        method: Callable[..., None],
        *args: object,
        reverse: bool = False,
    ) -> None:
        """Call `method` of every instrument (in `context`, else in the current one)."""
        instruments = self.instruments[::-1] if reverse else self.instruments
        for instrument in instruments:
            if instrument not in self.instruments:
                continue  # disabled by an earlier call
            bound = getattr(instrument, method.__name__)
            try:
                if context is None:
                    _observe(bound, self.info, *args)
                else:
                    context.run(_observe, bound, self.info, *args)
            except Exception:
                logger.exception(
                    "instrument %r raised in %s; it is disabled for the rest of run %d",
                    instrument,
                    method.__name__,
                    self.info.run_id,
                )
                self._disable(instrument)
            except BaseException as exc:  # noqa: BLE001 - an interrupt: the run stops
                self._interrupted(exc)  # not the instrument's fault: it stays attached

    def _disable(self, instrument: Instrument) -> None:
        self.instruments = tuple(x for x in self.instruments if x is not instrument)

    def _notify_run(self, method: Callable[..., None], *args: object) -> None:
        self._notify(self.context, method, *args)


@disable_ki_protection
def _observe(callback: Callable[..., object], *args: object) -> None:
    """Call a hook or an instrument method, without KI protection (it is user code)."""
    callback(*args)
