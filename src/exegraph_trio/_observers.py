"""The observers of one run: its `RunOptions` hooks and its instruments.

Hooks and instruments observe, they never change an outcome (the spec): one that raises
an `Exception` is logged with its traceback (logger `exegraph_trio`) and not called again
during that run. One that raises a `KeyboardInterrupt` or `SystemExit` is not at fault (the
user pressed Ctrl-C while it ran): it stays attached, and the run is interrupted through
the `interrupted` callback. Every call runs without Trio's KI protection, like user code
anywhere, whatever protected bookkeeping it is called from.
"""

from __future__ import annotations

import contextvars
import functools
import logging
from collections.abc import Callable
from types import MethodType
from typing import Final, TypeVar, final

from trio.lowlevel import disable_ki_protection, enable_ki_protection

from ._instrument import Instrument, RunInfo
from ._options import RunOptions
from ._result import RunResult, StepTiming
from ._step import Step

__all__ = ["Observers", "protected"]

_F = TypeVar("_F", bound=Callable[..., object])

_METHODS: Final = (
    "run_started",
    "run_done",
    "step_started",
    "step_done",
    "step_retrying",
    "attempt_started",
    "teardown_started",
    "teardown_done",
    "step_skipped",
)
"""The methods of `Instrument` the engine calls."""

logger: Final = logging.getLogger("exegraph_trio")


@final
class Observers:
    """The hooks and instruments of one run, each disabled on its own when it raises.

    Args:
        info: the run's handle, given to every instrument call.
        options: where the hooks and instruments come from.
        context: the run's own context, where run-level calls run.
        interrupted: called with a `KeyboardInterrupt`-like exception an observer raised.
    """

    __slots__ = (
        "context",
        "disabled",
        "done_calls",
        "hooks",
        "info",
        "instruments",
        "interrupted",
        "on_done",
        "on_start",
        "reversed_hooks",
        "start_calls",
        "want_step_done",
        "want_step_skipped",
        "want_step_started",
    )

    def __init__(
        self,
        info: RunInfo,
        options: RunOptions,
        context: contextvars.Context,
        interrupted: Callable[[BaseException], None],
    ) -> None:
        self.info = info
        self.context = context
        self.interrupted = interrupted
        self.on_start = options.on_step_start
        self.on_done = options.on_step_done
        # Each instrument once, however often it is listed: one serves any number of
        # runs, but it is told of each event of a run once (it keys its state by run).
        self.instruments: tuple[Instrument, ...] = tuple(
            {id(instrument): instrument for instrument in options.instruments}.values()
        )
        self.disabled: set[int] = set()  # ids of the instruments that raised
        # Per method, the instruments that implement it (as Trio's own instruments do: a
        # method inherited unchanged from `Instrument` is never called), each with its
        # bound method; the reversed order is kept too, for the methods called in it.
        self.hooks: dict[str, tuple[tuple[Instrument, Callable[..., None]], ...]] = {}
        self.reversed_hooks: dict[str, tuple[tuple[Instrument, Callable[..., None]], ...]] = {}
        for name in _METHODS:
            prototype = getattr(Instrument, name)
            calls = []
            for instrument in self.instruments:
                bound = getattr(instrument, name)
                if not (isinstance(bound, MethodType) and bound.__func__ is prototype):
                    calls.append((instrument, bound))
            self.hooks[name] = tuple(calls)
            self.reversed_hooks[name] = tuple(reversed(calls))
        self.want_step_done = False
        """Whether anything takes `step_done` (and so a `StepTiming` is worth making)."""
        self.want_step_skipped = False
        """Whether an instrument implements `step_skipped`."""
        self.want_step_started = False
        """Whether anything takes `step_started` (an instrument or `on_step_start`)."""
        self._wanted()

    def _wanted(self) -> None:
        """Note which timings are worth making (after any observer is disabled)."""
        starts, dones = self.hooks["step_started"], self.reversed_hooks["step_done"]
        self.start_calls = tuple((instrument, _caller(bound)) for instrument, bound in starts)
        self.done_calls = tuple((instrument, _caller(bound)) for instrument, bound in dones)
        self.want_step_done = self.on_done is not None or bool(self.hooks["step_done"])
        self.want_step_skipped = bool(self.hooks["step_skipped"])
        self.want_step_started = self.on_start is not None or bool(self.hooks["step_started"])

    def __bool__(self) -> bool:
        """Whether any step-level observer is attached."""
        return bool(self.instruments) or self.on_start is not None or self.on_done is not None

    def run_started(self) -> None:
        """`run_started` of every instrument, in the run's context.

        An interrupt raised by one reaches the run only once every instrument has had its
        `run_started`: stopping the run tells them of every skipped step, and none may
        hear of a step of a run it was not told of.
        """
        interrupts: list[BaseException] = []
        interrupted, self.interrupted = self.interrupted, interrupts.append
        try:
            self._notify(self.context, "run_started")
        finally:
            self.interrupted = interrupted
        for exc in interrupts:
            interrupted(exc)

    def run_done(self, result: RunResult) -> None:
        """`run_done` of every instrument, in the run's context."""
        self._notify(self.context, "run_done", result)

    def step_started(self, step: Step) -> None:
        """`step_started` of each instrument, then `on_step_start` (in the step's task)."""
        for instrument, call in self.start_calls:  # `_call`, inlined
            if self.disabled and id(instrument) in self.disabled:
                continue  # disabled by an earlier call
            try:
                call(self.info, step)
            except Exception:  # noqa: BLE001 - logged with its traceback by _failed
                self._failed(instrument, "step_started")
            except BaseException as exc:  # noqa: BLE001 - an interrupt: the run stops
                self.interrupted(exc)  # not the instrument's fault: it stays attached
        if self.on_start is not None:
            try:
                _observe(self.on_start, step.name)
            except Exception:  # noqa: BLE001 - logged with its traceback by _hook_failed
                self._hook_failed("on_step_start", step.name)
                self.on_start = None
            except BaseException as exc:  # noqa: BLE001 - an interrupt: the run stops
                self.interrupted(exc)

    def step_done(self, step: Step, timing: StepTiming) -> None:
        """`on_step_done`, then `step_done` of each instrument in reverse order."""
        if self.on_done is not None:
            try:
                _observe(self.on_done, step.name, timing.error)
            except Exception:  # noqa: BLE001 - logged with its traceback by _hook_failed
                self._hook_failed("on_step_done", step.name)
                self.on_done = None
                self._wanted()
            except BaseException as exc:  # noqa: BLE001 - an interrupt: the run stops
                self.interrupted(exc)
        for instrument, call in self.done_calls:  # `_call`, inlined
            if self.disabled and id(instrument) in self.disabled:
                continue  # disabled by an earlier call
            try:
                call(self.info, step, timing)
            except Exception:  # noqa: BLE001 - logged with its traceback by _failed
                self._failed(instrument, "step_done")
            except BaseException as exc:  # noqa: BLE001 - an interrupt: the run stops
                self.interrupted(exc)  # not the instrument's fault: it stays attached

    def step_retrying(self, step: Step, attempt: int, error: BaseException, delay: float) -> None:
        """`step_retrying` of every instrument (in the step's task)."""
        self._notify(None, "step_retrying", step, attempt, error, delay)

    def attempt_started(self, step: Step, attempt: int) -> None:
        """`attempt_started` of every instrument (in the step's task)."""
        if self.instruments:
            self._notify(None, "attempt_started", step, attempt)

    def teardown_started(self, step: Step) -> None:
        """`teardown_started` of every instrument (in the resource's task)."""
        if self.instruments:
            self._notify(None, "teardown_started", step)

    def teardown_done(self, step: Step, error: BaseException | None) -> None:
        """`teardown_done` of every instrument, in reverse order (in the resource's task)."""
        if self.instruments:
            self._notify(None, "teardown_done", step, error, reverse=True)

    def step_skipped(self, step: Step, timing: StepTiming) -> None:
        """`step_skipped` of every instrument, in the run's context."""
        self._notify(self.context, "step_skipped", step, timing)

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
        method: str,
        *args: object,
        reverse: bool = False,
    ) -> None:
        """Call `method` of every instrument that implements it (in `context`, else here)."""
        calls = (self.reversed_hooks if reverse else self.hooks)[method]
        if calls:
            self._call(calls, context, method, args)

    def _call(
        self,
        calls: tuple[tuple[Instrument, Callable[..., None]], ...],
        context: contextvars.Context | None,
        method: str,
        args: tuple[object, ...],
    ) -> None:
        """Call each bound method of `calls` (in `context`, else here) with `args`."""
        for instrument, bound in calls:
            if self.disabled and id(instrument) in self.disabled:
                continue  # disabled by an earlier call
            try:
                if context is None:
                    _observe(bound, self.info, *args)
                else:
                    context.run(_observe, bound, self.info, *args)
            except Exception:  # noqa: BLE001 - logged with its traceback by _failed
                self._failed(instrument, method)
            except BaseException as exc:  # noqa: BLE001 - an interrupt: the run stops
                self.interrupted(exc)  # not the instrument's fault: it stays attached

    def _failed(self, instrument: Instrument, method: str) -> None:
        """Log what `instrument` raised in `method` (being handled) and disable it."""
        logger.exception(
            "instrument %r raised in %s; it is disabled for the rest of run %d",
            instrument,
            method,
            self.info.run_id,
        )
        self._disable(instrument)

    def _disable(self, instrument: Instrument) -> None:
        """Call `instrument` no more during this run."""
        self.disabled.add(id(instrument))
        self.instruments = tuple(x for x in self.instruments if x is not instrument)
        self.hooks, self.reversed_hooks = (
            {
                name: tuple(call for call in calls if call[0] is not instrument)
                for name, calls in hooks.items()
            }
            for hooks in (self.hooks, self.reversed_hooks)
        )
        self._wanted()


@disable_ki_protection
def _observe(callback: Callable[..., object], *args: object) -> None:
    """Call a hook or an instrument method, without KI protection (it is user code)."""
    callback(*args)


def protected(method: _F) -> _F:
    """Mark an instrument method of this package as KI-protected in its own frame.

    The engine calls hooks and instruments through `_observe`, a frame that takes Trio's
    `KeyboardInterrupt` protection off, as user code expects. A method marked so keeps
    its work whole (a Ctrl-C waits for it: `trio.lowlevel.enable_ki_protection`), which its
    own frame decides, so the per-step calls skip that frame (`Observers.step_started`,
    `Observers.step_done`).
    """
    enable_ki_protection(method)
    method._exegraph_protected = True  # type: ignore[attr-defined]
    return method


def _caller(bound: Callable[..., object]) -> Callable[..., object]:
    """How a per-step call reaches `bound`: directly if `protected`, else through `_observe`."""
    if getattr(getattr(bound, "__func__", None), "_exegraph_protected", False):
        return bound
    return functools.partial(_observe, bound)
