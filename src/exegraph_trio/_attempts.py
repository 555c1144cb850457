"""The task of a step with inputs, retries or a trigger rule, attempt by attempt.

Plain steps run in `Run._step` (`_driver.py`), kept short; a step that takes inputs, may
be retried, has a trigger rule or is a resource runs here. Each attempt calls the action
with its inputs' values (`outcome.Outcome`s for a trigger-rule step), inside a cancel
scope only when it has a deadline or is a resource's setup (`_resources.py` holds and
tears the resource down). A failed attempt the core says to retry (`Core.retry`) waits
out its delay holding no slot, then waits to be taken again by priority. All bookkeeping
goes through the run's KI-protected methods.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from functools import partial
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final

import outcome
import trio
from trio.lowlevel import enable_ki_protection

from . import _core
from ._errors import StepSkippedError
from ._outcomes import interrupt_in, note, over_scope_error
from ._resources import hold, set_up, set_up_ended
from ._step import COROUTINE, Step

if TYPE_CHECKING:
    from ._driver import Run

__all__ = ["full_step", "kwargs_of", "retried"]

_NO_KWARGS: Final[Mapping[str, Any]] = MappingProxyType({})
_UNSET: Final = object()
"""What a resource's holder or value is before it is had (`_resource_attempt`)."""


async def full_step(run: Run, i: int, late: bool) -> None:  # noqa: FBT001 - start_soon
    """The task of step `i` with inputs, retries, a trigger rule or a resource.

    `late`: spawned in the outer nursery after fail-fast (a trigger-rule step): only
    an outside cancellation or an interrupt counts against it.
    """
    try:
        # Stopped between this task's spawn and its start? As in `Run._step`.
        if _stopped_before(run, late=late):
            _not_begun(run, i, late=late)
            return
        if run._asks_trio(late=late):
            try:
                await trio.lowlevel.checkpoint_if_cancelled()
            except trio.Cancelled:
                _not_begun(run, i, late=late)
                return
        step = run.steps[i]
        if run.observe_start and run._interrupted_at_start(i, step):
            return
        await _attempts(run, i, step, _how(run, i, step, late=late), run.now())
    except BaseException as exc:  # noqa: BLE001 - escaped the bookkeeping
        run._escaped(i, exc)


async def retried(run: Run, i: int, first: float, error: BaseException, *, cut: bool) -> None:
    """Step `i`'s first attempt, made by `Run._step`, failed with `error`: the rest of it.

    `Run._step` makes the first attempt of a step whose only part 2 feature is a retry
    (and inputs), as cheaply as a plain step's; when it fails, its later attempts are
    `full_step`'s. `first` is when it began; `cut`: its own deadline ended it. Its task's
    bookkeeping escapes are `Run._step`'s to settle.
    """
    step = run.steps[i]
    how = _how(run, i, step, late=False)
    await _attempts(run, i, step, how, first, failed=(error, cut))


def _how(run: Run, i: int, step: Step, *, late: bool) -> tuple[float | None, bool, bool]:
    """`_attempts`' `how` for step `i`: its deadline in seconds or None, inputs, `late`."""
    timeout = step.timeout
    if timeout is None:
        timeout = run.step_timeout
    if timeout == math.inf:
        timeout = None
    return timeout, bool(run.inputs is not None and run.inputs[i]), late


async def _attempts(
    run: Run,
    i: int,
    step: Step,
    how: tuple[float | None, bool, bool],
    first: float,
    *,
    failed: tuple[BaseException, bool] | None = None,
) -> None:
    """Step `i`'s attempts until one is reported: from the first, or after it `failed`.

    `how` is `(its deadline in seconds or None, whether it has inputs, late)`; `first`
    when its first attempt began; `failed`, when the first attempt was made already (by
    `Run._step`), is `(its error, whether its own deadline cut it)`.
    """
    timeout, inputs, late = how
    start = first
    attempt = 1
    error: BaseException | None
    error, cut = (None, False) if failed is None else failed
    while True:
        if error is None:  # an attempt
            if not timeout and step._kind == COROUTINE:  # no scope needed: as cheap as _step
                try:
                    if inputs:
                        value = await step.action(**kwargs_of(run, i))  # type: ignore[misc]
                    else:
                        value = await step.action()  # type: ignore[misc]
                except BaseException as exc:  # noqa: BLE001 - classified below
                    error = exc
                else:
                    run._done(i, first, value)
                    return
            else:
                kwargs = kwargs_of(run, i) if inputs else _NO_KWARGS
                attempted = await _scoped_attempt(
                    run, i, step, kwargs, (first, start), seconds=timeout, late=late
                )
                if attempted is None:
                    return
                error, cut = attempted
        state, error = run._classify(step, error, timeout if cut else None, late=late)
        ended = run.now()
        if not await _after_attempt(run, i, step, (first, attempt), (state, error), late=late):
            return
        attempt += 1
        run.attempts[i] = attempt  # attempts begun (StepTiming.attempts; 1 by default)
        start = run.now()
        _attempt_began(run, i, (first, ended, start))
        if run.observed:
            run.observers.attempt_started(step, attempt)
        error, cut = None, False


async def _scoped_attempt(
    run: Run,
    i: int,
    step: Step,
    kwargs: Mapping[str, Any],
    times: tuple[float, float],
    *,
    seconds: float | None,
    late: bool,
) -> tuple[BaseException, bool] | None:
    """One attempt inside a cancel scope: with a deadline, or of a resource's setup.

    `times` is `(first attempt's start, this one's)`; `seconds` the deadline. Returns
    `None` when the step is reported (done; a resource also held and torn down), else
    the attempt's error and whether its own deadline cut it.
    """
    first, start = times
    error: BaseException | None = None
    try:
        with trio.CancelScope() as scope:
            if seconds:
                scope.deadline = start + seconds
            if step._kind != COROUTINE:
                error = await _resource_attempt(run, i, step, kwargs, first, seconds=seconds)
                if error is None:
                    return None  # set up, held, torn down
            else:
                try:
                    value = await step.action(**kwargs)  # type: ignore[misc]
                except BaseException as exc:  # noqa: BLE001 - classified by the caller
                    error = exc
                    # Its traceback holds this frame: it must not hold the inputs too.
                    kwargs = _NO_KWARGS
    except BaseException as exc:
        if step._kind != COROUTINE:  # (a resource's own scopes are `hold`'s concern)
            raise
        kwargs = _NO_KWARGS
        # Raised by the scope's exit: a scope the action left open (an abandoned async
        # generator's), which Trio says corrupted its stack. That fails this attempt,
        # unless the action was interrupted: the interrupt goes on.
        return over_scope_error(exc, error), False
    if error is None:
        run._done(i, first, value)
        return None
    limit = run.outside_at if late else run.cancelled_at
    return error, seconds is not None and scope.cancel_called and start + seconds <= limit


async def _resource_attempt(
    run: Run,
    i: int,
    step: Step,
    kwargs: Mapping[str, Any],
    first: float,
    *,
    seconds: float | None,
) -> BaseException | None:
    """Set up resource `i` inside the setup's scope, then hold it and tear it down.

    The setup runs in a scope of its own (`life`) nested in the setup's deadline scope;
    once set up, `life` lives on, shielded, until the teardown, which runs inside it
    under its own deadline: the resource's own scopes and nurseries (entered in its
    setup) are left inside the scope they were entered in. The setup's deadline scope
    cannot reach inside `life` any more, even if its deadline passed while a setup that
    could not be cancelled (a thread) finished: the teardown keeps its own deadline.
    Returns the setup's error, or `None` once the resource is torn down.
    """
    returned: object = _UNSET
    value: object = _UNSET
    with trio.CancelScope() as life:
        try:
            returned = step.action(**kwargs)
            value = await set_up(run, step, returned)
            await hold(run, i, step, returned, (first, value), seconds=seconds, scope=life)
        except BaseException as exc:  # (the setup's error is classified by the caller)
            if life.shield:  # raised by `hold` itself (which shields `life` first)
                raise
            kwargs = _NO_KWARGS  # (the error's traceback holds this frame)
            interrupt = interrupt_in(exc)
            if interrupt is None or returned is _UNSET:
                return exc
            if value is _UNSET and not set_up_ended(step, returned):
                return exc
            # A Ctrl-C landed after the setup ended, before `hold` (KI-protected) began:
            # the resource is set up all the same, so it is held and torn down (SPEC
            # 2.1), and the interrupt stops the run. (Its value, if not taken yet, is lost.)
            run._interrupt_from(interrupt)
            value = None if value is _UNSET else value
            await hold(run, i, step, returned, (first, value), seconds=seconds, scope=life)
    return None


def _attempt_began(run: Run, i: int, times: tuple[float, float, float]) -> None:
    """Note when step `i`'s previous attempt ended and its next one began.

    `times`: `(first attempt's start, previous attempt's end, this one's start)`; the
    driver gives each attempt its own event in the Chrome trace
    (`StepTiming._attempt_times`).
    """
    first, ended, start = times
    recorded = run.attempt_times.get(i)
    if recorded is None:
        run.attempt_times[i] = [first, ended, start]
    else:
        recorded += (ended, start)


def _stopped_before(run: Run, *, late: bool) -> bool:
    """Whether a step task (or a retry given its slot) resuming now may not begin.

    As in `Run._step`: cancelled from outside, or fail-fast or an interrupt decided in an
    earlier round of Trio's scheduler (one decided in this round finds the step in
    flight, whichever task Trio ran first). `late`: spawned after fail-fast, in the outer
    nursery, which only an interrupt or an outside cancellation stops.
    """
    if run.outside_at != math.inf and run.interrupt is None:
        return True
    return run.stop_seen and (not late or run.interrupt is not None)


@enable_ki_protection
def _not_begun(run: Run, i: int, *, late: bool) -> None:
    """Step `i`'s task found the run stopping before its action began: it is withdrawn.

    A trigger-rule step spawned just as fail-fast cancelled its nursery runs after all,
    in the outer nursery. KI-protected bookkeeping: Trio's `start_soon` is not protected,
    and a Ctrl-C landing inside it could leave a nursery counting a task never scheduled.
    """
    if not late and _run_late(run, i):
        return
    run._withdraw(i)


async def _after_attempt(
    run: Run,
    i: int,
    step: Step,
    progress: tuple[float, int],
    ended: tuple[int, BaseException],
    *,
    late: bool,
) -> bool:
    """An attempt ended in `state` with `error`: retry it (`True`) or report it.

    `progress` is `(first attempt's start, attempt number)`; `ended` is `(state, error)`.
    """
    first, attempt = progress
    state, error = ended
    # Never retried while its task is being cancelled (fail-fast, from outside): the
    # error raised meanwhile (a cleanup's, a deadline at the same instant) is the step's.
    cancelled = trio.current_effective_deadline() == -math.inf
    if state == _core.FAILED and isinstance(error, Exception) and not cancelled:
        # Fail-fast decided at this instant and not yet cancelling (`_NextRound`): the
        # attempt waits for its retry and is cancelled then, whether or not the dispatcher
        # told the core the failure before this task ran (Trio's order).
        with_failure = (
            not late
            and run.cancelled_at != math.inf
            and run.outside_at == math.inf  # (fail-fast's: not from outside, no interrupt)
            and not run.failing_fast
        )
        delay = run.core.retry(i, error, with_failure=with_failure)
        if delay is not None:
            return await _wait_to_retry(
                run, i, step, (first, attempt), error, delay=delay, late=late
            )
    retry = run.retries[i] if run.retries is not None else None
    if retry is not None and state == _core.FAILED:
        note(error, f"exegraph: attempt {attempt} of {retry.attempts}")
    run._report(i, step, first, state, error)
    return False


def _run_late(run: Run, i: int) -> bool:
    """Respawn a trigger-rule step in the outer nursery; whether it was one.

    It was spawned just as fail-fast cancelled its nursery: it runs after all.
    """
    if not (run.split and run.outside_at == math.inf and run.rules is not None):
        return False
    if run.rules[i] == _core.ALL_SUCCESS or run.outer is None:
        return False
    # Not among the steps fail-fast cancels: it may still be retried. (Told after the
    # failures, if they are pending: the core counts what fail-fast cancels then.)
    run._after_failures(partial(run.core.spare, i))
    start_soon: Callable[..., None] = run.outer.start_soon
    run.context.run(start_soon, full_step, run, i, True, name=run.steps[i].name)
    core = run.core
    if core.running > 1 and core.limit < core.unsettled:
        run._started_fresh([i])
    return True


def kwargs_of(run: Run, i: int) -> dict[str, Any]:
    """The keyword arguments of step `i`'s action: the values its inputs name.

    With a trigger rule other than `ALL_SUCCESS`, each is an `outcome.Outcome`.
    """
    assert run.inputs is not None
    values = run.values
    kwargs: dict[str, Any] = {}
    if run.rules is None or run.rules[i] == _core.ALL_SUCCESS:
        for keyword, j in run.inputs[i]:  # (a loop: a comprehension's frame costs more)
            kwargs[keyword] = values[j]
        return kwargs
    state, errors, steps = run.core.state, run.errors, run.steps
    for keyword, j in run.inputs[i]:
        if state[j] == _core.DONE:
            kwargs[keyword] = outcome.Value(values[j])
        else:
            error = errors.get(j)  # (an exception may be falsy: it may define `__len__`)
            if error is None:
                error = StepSkippedError(steps[j].name)
            kwargs[keyword] = outcome.Error(error)
    return kwargs


async def _wait_to_retry(
    run: Run,
    i: int,
    step: Step,
    progress: tuple[float, int],
    error: BaseException,
    *,
    delay: float,
    late: bool,
) -> bool:
    """Wait out a retry's delay holding no slot, then wait for a slot; whether to go on.

    Cancelled meanwhile (fail-fast, from outside), the step ends `CANCELLED`.
    """
    first, attempt = progress
    ended = run.now()  # the step's end, if it is cancelled before another attempt
    event = trio.Event()
    if delay > 0:
        run._retrying(i, step, attempt, error, delay)
    else:  # ready again at this instant: it competes for its slot now
        run._retrying(i, step, attempt, error, delay, again=event)
    try:
        if delay > 0:
            await trio.sleep(delay)
            run._again(i, event)
        await event.wait()
    except BaseException as exc:  # noqa: BLE001 - classified by _ended
        run.resume.pop(i, None)
        run._ended(i, first, exc, None, late=late, end=ended)
        return False
    if _stopped_before(run, late=late):
        # Given its slot after the run began stopping: no attempt begins after that.
        run._ended(i, first, None, None, late=late, end=ended)
        return False
    if run._asks_trio(late=late):  # (as before a first attempt: `full_step`)
        try:
            await trio.lowlevel.checkpoint_if_cancelled()
        except trio.Cancelled:  # cancelled from outside as it was given its slot
            run._ended(i, first, None, None, late=late, end=ended)
            return False
    return True
