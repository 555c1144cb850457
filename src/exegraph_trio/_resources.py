"""Resource steps: the setup up to the `yield`, the hold, and the teardown.

A resource's setup runs in its step's task inside a cancel scope of its own, nested in
the setup's deadline scope (`_attempts.py`); once it succeeded that scope lives on,
shielded, while the task waits for the core to say every dependent has released the
resource; the teardown then runs inside that same scope, under a deadline of its own
(even when the setup's deadline passed while a setup that could not be cancelled ended).
So the resource's own cancel scopes and nurseries (entered in its setup) are left in the
task and scope they were entered in, whatever cancels the run meanwhile.
"""

from __future__ import annotations

import dis
import math
from typing import TYPE_CHECKING, Any

import trio
from trio.lowlevel import disable_ki_protection, enable_ki_protection

from ._errors import StepCancelledError, StepSkippedError, StepTimeoutError
from ._outcomes import interrupt_in, is_cancellation
from ._step import GENERATOR, Step

if TYPE_CHECKING:
    from ._driver import Run

__all__ = ["hold", "set_up", "set_up_ended", "tear_down"]


async def set_up(run: Run, step: Step, holder: object) -> object:
    """Run a resource's setup: up to its generator's `yield`, or its `__aenter__`."""
    if step._kind == GENERATOR:
        anext = getattr(holder, "__anext__", None)
        if anext is None:
            raise TypeError(
                f"the action of resource step {step.name!r} returned {holder!r}, not an "
                "async generator"
            )
        try:
            return await anext()
        except StopAsyncIteration:
            raise RuntimeError(
                f"the async generator of resource step {step.name!r} returned without "
                "yielding; a resource step yields its value once"
            ) from None
    enter = getattr(holder, "__aenter__", None)
    if enter is None or not hasattr(holder, "__aexit__"):
        raise TypeError(
            f"the action of resource step {step.name!r} returned {holder!r}, not an "
            "async context manager"
        )
    return await enter()


@enable_ki_protection
def set_up_ended(step: Step, holder: object) -> bool:
    """Whether the setup of `holder` (what `step`'s action returned) reached its `yield`.

    For a `KeyboardInterrupt` raised after the setup ended, before its value was taken:
    an async generator (or an `@asynccontextmanager`'s) suspended at a `yield`, not at
    an `await` (which is a `yield` too, of the awaited object: `ag_await`) and not before
    its first line, has ended its setup. Of any other context manager nothing is known.
    """
    generator = holder if step._kind == GENERATOR else getattr(holder, "gen", None)
    frame = getattr(generator, "ag_frame", None)
    if frame is None or generator.ag_running or generator.ag_await is not None:  # type: ignore[union-attr]
        return False
    suspended = getattr(generator, "ag_suspended", None)  # Python 3.12+: not "created"
    if suspended is not None:
        return bool(suspended)
    # Python 3.11: the last instruction run is the `yield`. (Not `f_lasti > 0`: a new
    # generator of a closure has run `COPY_FREE_VARS` before its `RETURN_GENERATOR`.)
    lasti: int = frame.f_lasti
    return lasti >= 0 and dis.opname[frame.f_code.co_code[lasti]] == "YIELD_VALUE"


@enable_ki_protection
async def hold(
    run: Run,
    i: int,
    step: Step,
    holder: object,
    result: tuple[float, object],
    *,
    seconds: float | None,
    scope: trio.CancelScope,
) -> None:
    """Resource `i` is set up: report it, wait until it is released, tear it down.

    `result` is `(start, value)` of its setup; `seconds` its teardown's deadline.
    Runs inside the step's scope, which it shields first: the teardown runs whatever
    cancels the run, under its own deadline. KI-protected up to the teardown (whose own
    code, `tear_down`, is not): a Ctrl-C landing between the setup and the wait would
    leave the resource set up and never torn down (it goes to the run instead).
    """
    scope.shield = True
    event = trio.Event()
    run.due[i] = event
    start, value = result
    run._done(i, start, value, resource=True)
    # Shielded here too: a cancel scope or nursery of the resource's own, entered in its
    # setup, may be cancelled while it is held (its deadline, a crashed task); that is
    # for its teardown to meet, not for this wait.
    with trio.CancelScope(shield=True):
        while not event.is_set():
            try:
                await event.wait()
            except BaseException as exc:
                interrupt = interrupt_in(exc)
                if interrupt is None:
                    raise
                run._interrupt_from(interrupt)
    if run.observed:
        run.observers.teardown_started(step)
    if seconds:
        scope.deadline = run.now() + seconds
    error: BaseException | None = None
    try:
        await tear_down(run, step, holder)
    except BaseException as exc:  # noqa: BLE001 - reported below
        error = exc
    if error is not None and is_cancellation(error) and seconds and scope.cancel_called:
        expired = StepTimeoutError(step.name, seconds)
        expired.__context__ = error
        error = expired
    run._torn_down(i, step, error)


@disable_ki_protection  # the resource's own code: a Ctrl-C may stop it, as any step's
async def tear_down(run: Run, step: Step, holder: Any) -> None:
    """Run a resource's teardown: the rest of its generator, or its `__aexit__`.

    A generator is resumed as pytest resumes a yield fixture, so the code after its
    `yield` always runs; an async context manager's `__aexit__` is given the run's
    exception, if any (`_teardown_exception`), as an `async with` block would be.
    """
    if step._kind == GENERATOR:
        try:
            await holder.__anext__()
        except StopAsyncIteration:
            return
        finally:
            await holder.aclose()  # nothing leaks (a no-op once it has ended)
        raise RuntimeError(
            f"the async generator of resource step {step.name!r} yielded a second "
            "time; a resource step yields once (its teardown follows the yield)"
        )
    exc = _teardown_exception(run, step)
    if exc is None:
        await holder.__aexit__(None, None, None)
        return
    traceback = exc.__traceback__
    try:
        await holder.__aexit__(type(exc), exc, traceback)
    except BaseException as raised:
        if raised is not exc:  # `__aexit__` re-raising what it was given is no error
            raise
    finally:
        exc.__traceback__ = traceback  # the run's error keeps its own traceback


def _teardown_exception(run: Run, step: Step) -> BaseException | None:
    """The exception an async context manager's `__aexit__` is given.

    The interrupt, else the run's first step failure so far (not a skip, not another
    resource's teardown error), else a `StepCancelledError` when cancelled from
    outside, else `None`.
    """
    if run.interrupt is not None:
        return run.interrupt
    torn = {id(error) for error in run.teardown_errors.values()}
    for member in run.members:
        if not isinstance(member, StepSkippedError) and id(member) not in torn:
            return member
    if run.outside_at != math.inf:
        return StepCancelledError(step.name, in_use=True)
    return None
