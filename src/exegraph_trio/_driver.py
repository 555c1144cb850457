"""The Trio driver of one run: each step its own Trio task.

The driver does the I/O of a run and nothing else; every decision is the scheduling
core's (`_core.py`). One run is:

- a nursery, whose body is the *dispatcher*: it starts the steps the core says to start
  and sleeps until completions need a decision;
- one task per step, started in that nursery, named after the step, in a fresh copy of
  the run's context. It calls the hooks and instruments around the action, runs the
  action (inside a cancel scope of its own when the step has a deadline, started when the
  action starts), classifies the outcome and reports it to the core.

Completions are decided together: a step task reports its outcome; the core is asked
what to start at the end of the round of Trio's scheduler, before Trio waits for I/O
(`_Takes`, an instrument), after every task that Trio ran in the round (every completion
of that clock instant so far) has reported, and the dispatcher, woken if the core took
something, starts those steps on its turn in the next round. Asking in the middle of a
round would count the completions of that round that Trio happened to run first. When the
core says no other completion could change the choice (`Core.decide_now`: no other step
running, as in a chain, or none that could release a step), the step task asks the core
itself. Failures are told to the core between two rounds too (`_NextRound`).

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
import logging
import math
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, Final, cast, final

import trio
from trio.lowlevel import enable_ki_protection

from . import _core
from ._attempts import full_step, kwargs_of, retried
from ._errors import (
    RunError,
    StepCancelledError,
    StepSkippedError,
    StepTimeoutError,
)
from ._graph import Graph
from ._instrument import RunInfo
from ._lifecycle import Retry
from ._observers import Observers
from ._options import ErrorPolicy, RunOptions
from ._outcomes import (
    interrupt_in,
    is_cancellation,
    leaves,
    not_awaitable,
    note,
    over_scope_error,
)
from ._pools import demands_of
from ._result import RunResult, StepStatus, StepTiming, _timing
from ._step import Step

__all__ = ["InputsRun", "PlainRun", "RetryRun", "Run", "new_run"]

logger: Final = logging.getLogger("exegraph_trio")

_STATUS: Final = {
    _core.DONE: StepStatus.DONE,
    _core.FAILED: StepStatus.FAILED,
    _core.CANCELLED: StepStatus.CANCELLED,
    _core.SKIPPED: StepStatus.SKIPPED,
}
_DONE: Final = StepStatus.DONE
_INF: Final = math.inf
"""`math.inf`, one attribute lookup fewer on a step's path."""


def _times_of(times: list[float], end: float | None) -> tuple[float, ...]:
    """`StepTiming._attempt_times`: each attempt's start and end, the last one's the step's.

    `times` ends with the last attempt's start (`_attempts.full_step` records them).
    """
    return (*times, end if end is not None else times[-1])


_FITS: Final[dict[type[_core.Core], type[_core.Core]]] = {
    _core.PlainCore: _core.FitCore,
    _core.RetryCore: _core.FitRetryCore,
}
"""The core a run uses in place of its own when every step fits in the bound."""


def new_run(graph: Graph, options: RunOptions) -> Run:
    """The driver for one run of `graph`: `PlainRun` when it uses none of the lifecycle.

    Inputs alone keep a run plain: they change what an action is called with and when a
    value is released, never what the core decides.
    """
    features = graph._features()
    if features.rules is None and not features.resources and not features.pooled:
        if features.retries is not None or options.retry is not None:
            return RetryRun(graph, options)
        if features.inputs is None or options.keep_values:
            return PlainRun(graph, options)
        return InputsRun(graph, options)  # (values to release)
    return Run(graph, options)


class _Facts:
    """What each step of a run did, kept compact: what its `StepTiming`s are made from.

    `Run` keeps them as it goes; its `RunResult` keeps a `_Facts` of its own (the same
    containers, not the whole run) and makes its timings when they are first read.
    """

    __slots__ = (
        "attempt_times",
        "attempts",
        "earlier",
        "ends",
        "errors",
        "order",
        "ready_at",
        "starts",
        "state",
        "steps",
        "teardown_errors",
        "values",
    )

    steps: tuple[Step, ...]
    state: bytearray  # the core's: each step's state (`_core.DONE`, …)
    order: list[int]  # steps in the order their outcome was known
    starts: list[float | None]
    ends: list[float | None]
    values: list[object]
    ready_at: list[float | None] | None
    errors: dict[int, BaseException]
    earlier: dict[int, list[BaseException]]  # earlier attempts' errors
    attempts: dict[int, int]  # attempts begun, for steps that may have several
    # For steps retried: each attempt's start and end, flat; the last attempt's end is
    # the step's (`ends`).
    attempt_times: dict[int, list[float]]
    teardown_errors: dict[int, BaseException]

    def _timing(self, i: int, status: StepStatus) -> StepTiming:
        start = self.starts[i]
        attempts = self.attempts.get(i, int(start is not None))
        earlier = self.earlier.get(i)
        times = self.attempt_times.get(i)
        return _timing(
            self.steps[i].name,
            status,
            start,
            self.ends[i],
            self.errors.get(i),
            self.values[i],
            attempts,
            () if earlier is None else tuple(earlier),
            self.teardown_errors.get(i),
            None if self.ready_at is None else self.ready_at[i],
            () if times is None else _times_of(times, self.ends[i]),
        )

    def _timings(self) -> tuple[StepTiming, ...]:
        """Every settled step's timing, in the order their outcomes were known."""
        state, status = self.state, _STATUS
        return tuple([self._timing(i, status[state[i]]) for i in self.order])

    def _kept(self) -> _Facts:
        """These facts alone (their containers, not copied), for a result read later."""
        facts = object.__new__(_Facts)
        for name in _Facts.__slots__:
            setattr(facts, name, getattr(self, name))
        return facts


@final
class _NextRound(trio.abc.Instrument):
    """Marks the rounds of Trio's scheduler after a failure, fail-fast or an interrupt.

    `stop` (fail-fast, an interrupt): at the start of the next round `run.stop_seen` is
    set, and a step task beginning from then on is withdrawn. `feed` (failures): at the
    start of the round after, before any task of it runs, the core is told every failure
    reported in the two rounds before (`Run._feed_core`), together, in the graph's
    order; the dispatcher records what they skipped on its turn. `cancel` (fail-fast):
    then the steps in flight are cancelled. A step that resumed and ended in between
    ended as it would have, whichever task Trio ran first; and since the core is told
    between two rounds, not by the dispatcher in the middle of one, no completion or
    failure of the round after races with it. (`after_io_wait` is called once a round,
    before any task of the round runs.)
    """

    __slots__ = ("cancel", "feed", "rounds", "run", "stop")

    def __init__(self, run: Run, *, stop: bool, cancel: bool, feed: bool = False) -> None:
        self.run = run
        self.stop = stop
        self.cancel = cancel
        self.feed = feed
        self.rounds = 0

    def after_io_wait(self, timeout: float) -> None:
        run = self.run
        self.rounds += 1
        if self.rounds == 1:
            if self.stop:
                run.stop_seen = True
            if self.cancel or self.feed:
                return
        elif self.feed:
            if run.feed_armed:  # (not if the run is over, or the dispatcher told the core)
                run._at_boundary(run._feed_at_boundary, cancel=self.cancel)
        elif self.cancel:
            run._at_boundary(run._cancel)
        trio.lowlevel.remove_instrument(self)


@final
class _Takes(trio.abc.Instrument):
    """Decides what starts between two rounds of Trio's scheduler, for the dispatcher.

    A step task whose completion leaves the decision to the end of its round
    (`Core.decide_now` is false) sets `run.take_due`. Once every task of the round has
    run, before Trio waits for I/O (`before_io_wait`: once between two rounds, before
    any task of the next runs), the core is asked what starts (`Run._take_at_boundary`),
    and the run's dispatcher, woken if it took something, starts those steps on its turn
    in the next round. Had the dispatcher asked on its turn, a completion of that same
    round would count or not depending on whether Trio ran its task first: the steps it
    releases would start a round earlier or later, and a failure of that instant find
    them in flight or not begun. The steps are started by the dispatcher, a task, not
    here: Trio spawns tasks from tasks (an instrument's `task_spawned` may ask for the
    current task), and a step's task is spawned as any task is.

    The dispatcher is woken only when the core took something: a decision that takes
    nothing (as when the round's last completion had already decided: it clears
    `take_due`) costs it no trip through Trio's run queue (its wake, its turn, its wait
    again: about 4 % of the opcodes of a run of no-op steps under a bound of 4, when it
    was woken for every decision to make sure that a next round came). Trio computes how
    long to wait for I/O before it calls `before_io_wait`: when that is not zero (no task
    runnable, as when the steps in flight all sleep), the dispatcher woken here would
    wait with it, so the wait is cut short (`TrioToken.run_sync_soon`, which wakes
    Trio's I/O wait).

    It also tells the core the failures of a run not failing fast (or failing fast
    already) at the start of the second round after theirs, as `_NextRound` does for
    the failure that makes a run fail fast: those of two rounds are decided together.

    One serves every run of a Trio run (`_TAKES`): installed the first time one is
    needed, it removes itself once no run has asked for `_IDLE_ROUNDS` rounds, so that
    runs one after the other do not each pay for installing it.
    """

    __slots__ = ("due", "feed_later", "feed_next", "fresh", "idle", "removed", "token")

    def __init__(self) -> None:
        self.token = trio.lowlevel.current_trio_token()
        self.due: list[Run] = []
        # Runs whose failures are told to the core at the start of the next round, and of
        # the round after (`Run._failed`; under fail-fast, `_NextRound` does it).
        self.feed_next: list[Run] = []
        self.feed_later: list[Run] = []
        # Runs whose cores count steps started in this round (`Core.fresh`) or retries
        # that began waiting in it (`Core.new_waits`): set back before the next round,
        # before anything else here is decided.
        self.fresh: list[Run] = []
        self.idle = 0
        self.removed = False

    def before_io_wait(self, timeout: float) -> None:
        fresh = self.fresh
        if fresh:
            self.fresh = []
            for run in fresh:
                run.core.fresh = 0
                run.core.new_waits.clear()
        due, feeds = self.due, self.feed_next
        if due or feeds or self.feed_later:
            self.due = []
            self.feed_next, self.feed_later = self.feed_later, []
            self.idle = 0
            woken = False  # a dispatcher woken here (Trio may be about to wait)
            for run in feeds:
                if run.feed_armed:  # (not if the run is over)
                    parked = run.parked
                    run._at_boundary(run._feed_at_boundary)
                    woken = woken or (parked and not run.parked)
            for run in due:
                if not run.take_due:  # (the run is over, told its failures, or decided)
                    continue
                parked = run.parked
                run._at_boundary(run._take_at_boundary)
                # Its dispatcher starts what was taken; nothing else is left for it to do
                # unless the run is being cancelled, has failures to tell the core or
                # skips to record, or was interrupted (as when steps fail-fast cancelled
                # must report before the core takes anything).
                if run.taken or not (
                    run.cancelled_at == _INF
                    and not (run.feed_armed or run.fed)
                    and run.interrupt is None
                ):
                    run._wake()
                woken = woken or (parked and not run.parked)
            if woken and timeout:
                self.token.run_sync_soon(_nothing)
        elif not fresh:
            self.idle += 1
            if self.idle >= _IDLE_ROUNDS:
                self.removed = True
                _TAKES.set(None)
                trio.lowlevel.remove_instrument(self)


def _nothing() -> None:
    """What `_Takes.before_io_wait` has Trio run: its wake-up alone is the point."""


_TAKES: Final[trio.lowlevel.RunVar[_Takes | None]] = trio.lowlevel.RunVar(
    "exegraph_trio.takes", default=None
)
"""The `_Takes` of the Trio run, if one is installed."""
_IDLE_ROUNDS: Final = 1000
_WATCH_FROM = 64
"""A run of this many steps or more under a smaller bound has a watcher (`Run._watch`).

Its task costs about what 1 or 2 steps' checkpoints cost (9 µs a run, measured); under a
bound the dispatcher is often awake, and each step would ask Trio whether the run was
cancelled before it begins. (Not `Final`: the tests lower it.)"""


class Run(_Facts):
    """The state of one run of one graph: the core, plus what Trio needs."""

    # Slots, not a __dict__: with this many fields an instance dict stops sharing its keys
    # and every attribute read of the hot path gets slower (CPython's specialization).
    __slots__ = (
        "bare",
        "boundary_error",
        "cancel_pending",
        "cancelled_at",
        "clock",
        "closing",
        "context",
        "core",
        "deferred",
        "dispatcher",
        "due",
        "errors_while_cancelled",
        "failed_pending",
        "failing_fast",
        "fed",
        "feed_armed",
        "graph",
        "info",
        "inputs",
        "interrupt",
        "left",
        "logged",
        "main",
        "members",
        "now",
        "observe_start",
        "observed",
        "observers",
        "outer",
        "outside_at",
        "parked",
        "past_doomed",
        "pooled",
        "recording",
        "resources",
        "resume",
        "retries",
        "rules",
        "special",
        "split",
        "start_soon",
        "step_timeout",
        "stop_seen",
        "take_due",
        "taken",
        "taken_waiting",
        "takes",
        "told",
        "watch_over",
        "watcher",
        "watching",
    )

    _Core: type[_core.Core] = _core.Core

    def __init__(self, graph: Graph, options: RunOptions) -> None:  # noqa: PLR0915 - the run's state, one field a line
        self.graph = graph
        self.steps = graph.steps
        n = len(graph)
        self.info = RunInfo._new(graph, options)
        self.context = contextvars.copy_context()
        features = graph._features()
        retries = features.retries
        if options.retry is not None:  # every step retries: its own Retry, else the run's
            every = options.retry
            retries = [every] * n if retries is None else [r or every for r in retries]
        self.retries: list[Retry | None] | None = retries
        self.special = features.special if options.retry is None else bytearray(b"\1" * n)
        self.rules = features.rules
        self.inputs = features.inputs
        self.resources = features.resources
        ranking = graph._ranking
        if options.durations is not None:
            estimates = graph._estimates(options.durations)  # refused before any step starts

            def ranking() -> tuple[list[int], list[int]]:
                return graph._critical_ranking(estimates)

        demands, shared = demands_of(graph, options) if features.pooled else (None, frozenset())
        self.pooled = demands is not None
        core_class = self._Core
        if options.concurrency_limit >= n:  # (every step fits: no choice to make)
            core_class = _FITS.get(core_class, core_class)
        self.core = core_class(
            graph._deps,
            graph._dependents,
            ranking,
            limit=options.concurrency_limit,
            fail_fast=options.error_policy is ErrorPolicy.FAIL_FAST,
            rules=features.rules,
            retries=retries,
            resources=features.resources,
            demands=demands,
            shared=shared,
            woken=self._wake_to_decide,
        )
        # Under fail-fast the steps run in a nursery of their own inside the run's, which
        # fail-fast cancels: the dispatcher, outside it, still sees a cancellation from
        # an enclosing scope when it comes (a cleanup failing before it failed before it);
        # steps with a trigger rule, which may run after fail-fast, run in the outer one.
        self.split = self.core.fail_fast
        self.step_timeout = options.step_timeout
        self.observers = Observers(self.info, options, self.context, self._interrupted)
        self.observed = bool(self.observers)
        # Whether to call `step_started` (a hook disabled later is skipped by `Observers`),
        # and then, per step, whether it was called: a step interrupted before is skipped,
        # never told done (`_escaped`).
        self.observe_start = self.observers.want_step_started
        self.told = bytearray(n) if self.observe_start else None
        # A step of this run calls its action bare: no start to tell, no inputs, no
        # deadline of its own or the run's (`_step`'s short path).
        timeout = options.step_timeout
        self.bare = not (
            self.observe_start
            or self.inputs is not None
            or features.timed
            or (timeout and timeout != math.inf)
        )
        # Whether a step's success keeps its times, value and place in the completion
        # order: only what reads them needs them, the result and the observers
        # (`execute`); a `run` with neither keeps none, nothing could read them. A
        # failure always does (it is rare), and so does a value that an input takes.
        self.recording = True
        self.clock = trio.lowlevel.current_clock()

        self.now = self.clock.current_time
        # What each step did, kept compact (`_Facts`); `StepTiming`s are made only when
        # asked for: for the observers as steps settle, for the result when it is read.
        self.state = self.core.state
        self.order = []
        self.starts = [None] * n
        self.ends = [None] * n
        self.values = [None] * n
        self.ready_at = [None] * n if self.pooled else None
        self.left = (
            list(features.consumers)
            if features.consumers is not None and not options.keep_values
            else None
        )  # per step: inputs taking its value whose step has not settled yet (-1: all have)
        self.errors = {}
        self.earlier = {}
        self.attempts = {}
        self.attempt_times = {}
        self.teardown_errors = {}
        self.logged: set[int] = set()  # steps whose teardown error was logged (not raised)
        self.members: list[Exception] = []
        self.errors_while_cancelled = False
        self.interrupt: BaseException | None = None
        self.cancelled_at = math.inf  # when fail-fast or an enclosing scope first cancelled
        self.outside_at = math.inf  # when an enclosing scope or an interrupt did
        self.failing_fast = False
        self.cancel_pending = False  # fail-fast decided; the dispatcher tells the core next
        # Fail-fast or an interrupt decided in an earlier round of Trio's scheduler (set by
        # `_NextRound`): a step task beginning now was started in or after that round.
        self.stop_seen = False
        # The failures that decided it, told to the core on that turn, after every other
        # completion of the instant (`_failed`); and what the core is told after them:
        # the steps that reported cancelled or withdrawn meanwhile (`_after_failures`).
        self.failed_pending: list[int] = []
        self.deferred: list[Callable[[], Sequence[_core.Skip] | None]] = []
        # A `_NextRound` will tell the core the pending failures at the start of a round;
        # what they skipped, for the dispatcher to record (`_feed_failed`).
        self.feed_armed = False
        self.fed: list[Sequence[_core.Skip]] = []
        # The decisions taken between two rounds (`_Takes`): whether one is due at the
        # end of this round, and the steps taken there (the dispatcher starts them).
        self.take_due = False
        self.past_doomed = False
        # An error raised by a decision taken between two rounds (`_at_boundary`).
        self.boundary_error: BaseException | None = None
        self.taken: list[int] = []
        self.taken_waiting: set[int] = set()  # (those of `taken` that were retries waiting)
        self.takes: _Takes | None = None  # (the Trio run's, once this run used it)

        self.outer: trio.Nursery | None = None
        self.main: trio.Nursery | None = None
        self.start_soon: Callable[..., None]  # `main.start_soon`, once it is open
        self.closing: trio.Event | None = None
        self.dispatcher: trio.lowlevel.Task | None = None
        self.parked = False
        # The task that waits in the run's nursery for as long as the run lasts, so that
        # a cancellation from outside is noted the moment it comes (`_watch`).
        self.watcher: trio.lowlevel.Task | None = None
        self.watching = False
        self.watch_over = False
        self.resume: dict[int, trio.Event] = {}  # retried steps waiting for their slot
        self.due: dict[int, trio.Event] = {}  # resources waiting for their teardown

    # -- the run as a whole ----------------------------------------------------------------

    @enable_ki_protection
    async def execute(self, *, want_result: bool) -> RunResult | RunError | None:
        """Run the graph; the `RunResult` (`want_result`), else the `RunError` or `None`."""
        outside = False
        result: RunResult | None = None
        self.recording = want_result or self.observed
        try:
            self.observers.run_started()
            try:
                async with trio.open_nursery() as nursery:
                    self.outer = self.main = nursery
                    self.dispatcher = trio.lowlevel.current_task()
                    if self.split:
                        self.closing = trio.Event()
                        self.main = await nursery.start(self._hold_main)
                    self.start_soon = self.main.start_soon
                    if len(self.steps) >= _WATCH_FROM and self.core.limit < len(self.steps):
                        nursery.start_soon(self._watch)
                    try:
                        await self._dispatch_loop()
                    finally:
                        self._unwatch()
                    if self.closing is not None:
                        self.closing.set()
            except (BaseExceptionGroup, trio.Cancelled) as exc:
                outside = self._absorb(exc)
            outside = outside or trio.current_effective_deadline() == -math.inf
            if outside:
                self._stop()  # nothing may start after an outside cancellation
                await self._take_late_interrupt()
        finally:
            self.take_due = self.feed_armed = False  # (the run is over)
            self.core.close()
            if self.core.running or self.core.retrying or self.resume:
                self._sweep()
            elif self.failed_pending or self.fed:
                self._feed_failed()
            if want_result or self.observers.hooks["run_done"]:
                result = self._result(stopped=outside or self.interrupt is not None)
                self.observers.run_done(result)
        if self.interrupt is not None:
            raise self._interrupt_with_what_it_hides()
        if outside:
            if self.errors_while_cancelled:
                raise RunError(self._message(), self._failures())
            self._log_unraised_teardown_errors()
            await trio.lowlevel.checkpoint()  # raises the enclosing scope's Cancelled
        if result is not None:
            return result if want_result else result.error
        return RunError(self._message(), self._members()) if self.members else None

    async def _take_late_interrupt(self) -> None:
        """Take a Ctrl-C that Trio could not deliver while the run's nursery waited.

        Trio delivers a Ctrl-C to the main task by aborting the wait it is blocked in, but
        tries only once per wait: once a cancellation from outside has tried to abort the
        nursery's wait for the steps in flight (a thread it must wait for, a shielded
        cleanup), a Ctrl-C arriving later stays pending until the task's next checkpoint,
        which would be the caller's, after the run. A shielded checkpoint takes it here
        (and only lets other tasks run when none is pending: a run in another task than
        Trio's main task has none), so that the interrupt wins (SPEC, part 1).
        """
        if self.interrupt is not None:
            return
        try:
            with trio.CancelScope(shield=True):
                await trio.lowlevel.checkpoint()
        except KeyboardInterrupt as exc:
            self._interrupted(exc)

    @enable_ki_protection
    async def _hold_main(
        self, task_status: trio.TaskStatus[trio.Nursery] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Hold open the nursery of the steps fail-fast cancels, until the run is over.

        KI-protected: Trio's `TaskStatus.started` is not, and a Ctrl-C landing inside it
        (it moves this task to the run's nursery) left `nursery.start` waiting forever
        for a child that had already left (a real-SIGINT fuzz found the run hanging).
        """
        async with trio.open_nursery() as main:
            task_status.started(main)
            assert self.closing is not None
            await self.closing.wait()

    @enable_ki_protection
    async def _watch(self) -> None:
        """Wait until the run is over; a cancellation reaching the run is noted at once.

        A step task that begins after a cancellation from outside must not start its
        action (`_step`); the dispatcher, when it waits, notes one in its abort callback,
        but it is often awake. This task only ever waits: while it does, a step need not
        ask Trio whether it was cancelled (a checkpoint a step). Trio calls the abort
        callback the moment a scope around the run is cancelled or its deadline passes.
        """
        if self.watch_over:  # (the run ended before this task began)
            return
        self.watcher = trio.lowlevel.current_task()
        self.watching = True
        await trio.lowlevel.wait_task_rescheduled(self._watch_abort)

    def _watch_abort(self, raise_cancel: object) -> trio.lowlevel.Abort:
        """The run's nursery is cancelled while the watcher waits: note when (`_abort`)."""
        self.watching = False
        self._cancelled_now(outside=self.split or not self.failing_fast)
        return trio.lowlevel.Abort.SUCCEEDED

    def _unwatch(self) -> None:
        """The dispatcher is done: let the watcher end (or never begin)."""
        self.watch_over = True
        if self.watching:
            self.watching = False
            assert self.watcher is not None
            trio.lowlevel.reschedule(self.watcher)

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
            self._skipped(core.start())
            self._start_ready()
            while core.unsettled:
                if self.boundary_error is not None:  # (decided between two rounds)
                    raise self.boundary_error
                if not (
                    self.cancel_pending
                    or self.failed_pending
                    or self.fed
                    or self.take_due
                    or self.taken
                ):
                    self.parked = True
                    await trio.lowlevel.wait_task_rescheduled(self._abort)
                if self.taken:  # taken at the start of this round: they start now
                    self._spawn_taken()
                if self.cancel_pending or self.failed_pending or self.fed:
                    for _ in range(3):  # (two are enough: see `_NextRound`)
                        if not self.feed_armed:
                            break
                        # The core is told the failures at the start of the round after
                        # next (`_NextRound`): make sure there is one, though every step
                        # may be waiting on something else.
                        await trio.lowlevel.cancel_shielded_checkpoint()
                        self._spawn_taken()
                    else:  # (never needed: the instrument did not run)
                        self.feed_armed = False
                        self._arm_take()
                    self._failures_decided()
                    if core.failing and not self.failing_fast:
                        self._cancel()  # (never needed: the instrument did not run)
                if core.doomed_left:
                    await self._let_the_cancelled_report()
                    self.past_doomed = True  # (some may shield themselves: decide now)
                    self._arm_take()
                if self.taken:
                    self._spawn_taken()
                if self.take_due:
                    if core.running >= core.limit or not (core.ready or core.queues):
                        # Nothing may start, whatever the rest of this round does without
                        # asking for a decision again (what frees a slot or makes a step
                        # ready asks): nothing to decide at the end of this one.
                        self.take_due = False
                        continue
                    # Asked for in this round, before this turn: decided at its end
                    # (`_Takes`) with every completion of it, whichever task Trio runs
                    # first; what was taken then starts on the turn after this one.
                    await trio.lowlevel.cancel_shielded_checkpoint()
                    self._spawn_taken()
        except trio.Cancelled:
            if self.split or not self.failing_fast:
                # Cancelled from outside: start nothing more. The steps in flight were
                # woken together with this task; let those that end at once report
                # first, so that the order of the timings does not depend on Trio's.
                self._cancelled_now(outside=True)  # (if not noted while it waited)
                await trio.lowlevel.cancel_shielded_checkpoint()
                self._stop()
            raise
        except BaseException as exc:  # noqa: BLE001 - Ctrl-C delivered to this task
            self._interrupted(exc)

    async def _let_the_cancelled_report(self) -> None:
        """After fail-fast, let the steps it cancelled report before deciding.

        They were woken with this task, in an order Trio picks at random; their freed
        slots and settled dependencies must count in the decision (steps with another
        trigger rule start now). Each round lets every woken task run once (this task
        may run first in its batch, so one idle round proves nothing); it stops when
        all have reported, or after two rounds in a row bring no report (the others
        shield themselves, and will report later).
        """
        core = self.core
        idle = 0
        while core.doomed_left and idle < 2:
            left = core.doomed_left
            await trio.lowlevel.cancel_shielded_checkpoint()
            self._spawn_taken()
            idle = idle + 1 if core.doomed_left == left else 0

    def _abort(self, raise_cancel: object) -> trio.lowlevel.Abort:
        """The dispatcher is cancelled (or interrupted) while it waits: note when."""
        self.parked = False
        self._cancelled_now(outside=self.split or not self.failing_fast)
        return trio.lowlevel.Abort.SUCCEEDED

    def _cancelled_now(self, *, outside: bool) -> None:
        now = self.now()
        if self.cancelled_at == math.inf:
            self.cancelled_at = now
        if outside and self.outside_at == math.inf:
            self.outside_at = now

    def _wake(self) -> None:
        if self.parked:
            self.parked = False
            assert self.dispatcher is not None
            trio.lowlevel.reschedule(self.dispatcher)

    def _wake_to_decide(self) -> None:
        """Have the core asked what starts at the end of this round (`_Takes`).

        Decided then, with every completion of this round, whichever Trio runs first;
        the dispatcher is woken then if the core took something. (`_arm_take`, inlined:
        it is called once a completion, in many runs.)
        """
        if not self.take_due:
            self.take_due = True
            takes = self.takes
            if takes is None or takes.removed:
                takes = self.takes = self._boundaries()
            takes.due.append(self)

    def _arm_take(self) -> None:
        """Ask the core what starts at the end of this round (`_Takes`)."""
        self.take_due = True
        takes = self.takes
        if takes is None or takes.removed:
            takes = self.takes = self._boundaries()
        takes.due.append(self)

    @staticmethod
    def _boundaries() -> _Takes:
        """The `_Takes` of this Trio run, installed if it is not."""
        takes = _TAKES.get()
        if takes is None:
            takes = _Takes()
            _TAKES.set(takes)
            trio.lowlevel.add_instrument(takes)
        return takes

    def _at_boundary(self, decide: Callable[..., None], **kwargs: bool) -> None:
        """Call `decide` between two rounds; an error there goes to the dispatcher.

        (Trio would log an error raised by an instrument and drop the instrument, and the
        runs waiting for its decisions would never get them. The dispatcher raises it
        instead, as it raises an error of its own: the run is stopped, and the caller
        gets the error.)
        """
        try:
            decide(**kwargs)
        except BaseException as exc:  # noqa: BLE001 - the dispatcher raises it
            self.take_due = self.feed_armed = False
            if self.boundary_error is None:
                self.boundary_error = exc
            self._wake()

    def _feed_at_boundary(self, *, cancel: bool = False) -> None:
        """Between two rounds: tell the core the pending failures, then what may start.

        `cancel` (fail-fast): cancel the steps in flight, after telling the core.
        """
        self.feed_armed = False
        self.cancel_pending = False  # (the core is told now)
        self._feed_core()
        if cancel:
            self._cancel()
        self._take_at_boundary()  # what may start after the failures

    def _take_at_boundary(self) -> None:
        """Between two rounds: what the core says starts now, for the dispatcher to start.

        Nothing while steps fail-fast cancelled have not reported: the dispatcher lets
        them report first (`_let_the_cancelled_report`), then asks again.
        """
        self.take_due = False
        if self.core.doomed_left and not self.past_doomed:
            return
        self.past_doomed = False
        taken = self._take()
        if taken:
            self.taken += taken
            core = self.core
            if core.running > len(taken) and core.limit < core.unsettled:
                # Started by the dispatcher in the next round, they begin in the one
                # after: a completion of the next round, before its turn or after it,
                # cannot wait for them to end (`Core.fresh`).
                self._started_fresh(taken)
            resume = self.resume
            if resume:  # (retries that wait for their slot, in their own task)
                self.taken_waiting.update(i for i in taken if i in resume)

    def _spawn_taken(self) -> None:
        """Start the steps taken at the start of this round (the dispatcher's turn).

        Tasks of this round may have run since, before this one: a step settled (a retry
        cancelled while it waited), a retry's waiting task ended (cancelled from outside:
        it reports itself, maybe later, behind pending failures), or the run stopped
        (cancelled from outside, and its steps' nursery maybe closed). A new task is then
        not started: the step is withdrawn, as `_take` would not have taken it. A retry
        still waiting is resumed (it withdraws itself if the run stopped).
        """
        taken, self.taken = self.taken, []
        if not taken:
            return
        waited, self.taken_waiting = self.taken_waiting, set()
        core, resume = self.core, self.resume
        state = core.state
        stopped = self._refuses_starts()
        start: list[int] = []
        for i in taken:
            if state[i] != _core.RUNNING:
                continue  # (settled since)
            if i in resume:
                start.append(i)  # (a retry that waited: resumed)
            elif i in waited:
                continue  # (its waiting task ended: it reports the step)
            elif stopped:
                self._skipped(core.withdraw(i))
                if self.resources:  # (a resource it held may be due: else it waits for ever)
                    self._tear_down_due()
            else:
                start.append(i)
        if start:
            self._spawn(start, counted=True)  # (counted when taken: `_take_at_boundary`)

    def _started_fresh(self, taken: list[int]) -> None:
        """Tell the core which of `taken` it counts in `Core.fresh`, till the round ends.

        Called when other steps run (else no other completion of this round could ask
        for a decision) and some step may have to wait for a slot (else none does).
        """
        core = self.core
        count = _core.releasing_among(core.dependents, taken)
        if count:
            if not core.fresh:
                self._fresh_until_the_round_ends()
            core.fresh += count

    def _fresh_until_the_round_ends(self) -> None:
        """Have `Core.fresh` and `Core.new_waits` set back between this round and the next.

        (`_Takes`; a run listed twice in a round is set back twice.)
        """
        takes = self.takes
        if takes is None or takes.removed:
            takes = self.takes = self._boundaries()
        takes.fresh.append(self)

    def _start_ready(self) -> None:
        """Start every step the core says may start now, each in a new task.

        Nothing starts once the run is being cancelled from outside or interrupted
        (noticed by the dispatcher's abort callback at once, or by the first step that
        ends cancelled, whichever comes first); after fail-fast only steps with another
        trigger rule start, in the outer nursery.
        """
        taken = self._take()
        if taken:
            self._spawn(taken)

    def _take(self) -> list[int]:
        """The steps that may start now (`_start_ready` starts them)."""
        core = self.core
        if self.pooled:
            self._stamp_ready()
        elif not core.ready:
            return []
        if self.cancel_pending or self.feed_armed:
            # Failures of this instant are not told to the core yet (`_failed`): what
            # they release (a trigger-rule step) and free (a slot, pool slots) competes
            # with the rest by rule 3, so the take waits for them; telling them takes
            # (`_feed_at_boundary`), as `plan()` decides after every end of the instant.
            return []
        if self._refuses_starts():
            return []
        return core.take()

    def _refuses_starts(self) -> bool:
        """Whether a cancellation of the run lets no more steps start.

        Any cancellation, unless the run fails fast in a nursery of its own (`split`):
        fail-fast's cancellation still lets steps with another trigger rule start, in the
        outer nursery; one from outside does not. (Cancelled from outside implies
        cancelled: `_cancelled_now`.)
        """
        return self.cancelled_at != math.inf and (not self.split or self.outside_at != math.inf)

    def _spawn(self, taken: list[int], *, counted: bool = False) -> None:
        """Start a task for each step of `taken` (or resume it, a retry that waited).

        Those with dependents count in `Core.fresh` for this round, unless `counted`
        (taken between two rounds: `_take_at_boundary` counted them for this one).
        """
        steps, resume, special = self.steps, self.resume, self.special
        late = self.failing_fast or self.core.failing  # (the cancel may be pending)
        nursery = self.outer if late else self.main
        assert nursery is not None
        start_soon: Callable[..., None] = nursery.start_soon
        enter, plain = self.context.run, self._step
        for i in taken:
            if resume and i in resume:  # a retry that waited for its slot
                resume.pop(i).set()
            elif special is None or not special[i]:
                # Spawned inside the run's context: Trio gives the task a copy of it.
                enter(start_soon, plain, i, name=steps[i].name)
            else:
                enter(start_soon, full_step, self, i, late, name=steps[i].name)
        core = self.core
        if not counted and core.running > len(taken) and core.limit < core.unsettled:
            self._started_fresh(taken)

    def _stamp_ready(self) -> None:
        """Note when each step the core made ready first became so (its wait for slots)."""
        readied, ready_at = self.core.readied, self.ready_at
        if readied and ready_at is not None:
            now = self.now()
            for j in readied:
                if ready_at[j] is None:
                    ready_at[j] = now
            readied.clear()

    def _failures_decided(self) -> None:
        """The dispatcher's turn after failures: record what they skipped, tear down.

        `_NextRound` told the core the failures at the start of the second round of
        Trio's scheduler after the first one's, and under fail-fast cancelled the steps in
        flight.
        """
        self.cancel_pending = False
        self._feed_failed()
        if self.resources:
            self._tear_down_due()

    def _feed_core(self) -> None:
        """Tell the core the pending failures, in the graph's order, then what waited on them.

        Only the core: what they skip is recorded by `_feed_failed`. Called by
        `_NextRound` between two rounds of Trio's scheduler (no task runs), or by
        `_feed_failed`.
        """
        failed, deferred = self.failed_pending, self.deferred
        if failed or deferred:
            fed = self.fed
            if failed:
                self.failed_pending = []
                fed.append(self.core.failed_together(sorted(failed)))
            self.deferred = []
            for event in deferred:
                skips = event()
                if skips:
                    fed.append(skips)

    def _feed_failed(self) -> None:
        """Tell the core the pending failures (if not told yet); record what they skipped."""
        self._feed_core()
        if self.fed:
            fed, self.fed = self.fed, []
            for skips in fed:
                self._skipped(skips)

    def _after_failures(self, event: Callable[[], Sequence[_core.Skip] | None]) -> None:
        """Tell the core `event` now, or after the failures fail-fast is deciding on.

        A step that reports cancelled or withdrawn while they are pending does so because
        of them: what it skips names them, whichever task Trio ran first. So too while
        the run is cancelled from outside and not yet stopped (`_stop`, on the
        dispatcher's next turn): a step that failed at that same instant (its own timeout
        expiring with the outer deadline) may report after this one, and what both skip
        names the failure, whichever task Trio ran first.
        """
        if self.failed_pending or (self.outside_at != math.inf and not self.core.stopped):
            self.deferred.append(event)
        else:
            self._feed_failed()  # (what the failures skipped is recorded first)
            skips = event()
            if skips:
                self._skipped(skips)

    def _stop(self) -> None:
        """Start no more steps; skip every step that has not started."""
        self._feed_failed()
        self._skipped(self.core.stop())
        if self.resources:
            self._tear_down_due()

    def _interrupted(self, exc: BaseException) -> None:
        """A `KeyboardInterrupt`-like exception reached the run: cancel the rest."""
        if self.interrupt is None:
            self.interrupt = exc
            self._stop_in_next_round(cancel=False)  # (cancelled at once, below)
        self._stop()
        self._cancel(outside=True)

    def _stop_in_next_round(self, *, cancel: bool) -> None:
        """Fail-fast or an interrupt was decided: mark the rounds that follow (`_NextRound`).

        Steps started before it whose tasks begin in this round of Trio's scheduler begin
        all the same, whether Trio runs them before or after the task that decided it (an
        order it picks at random): they are in flight, and cancelled as such. Steps whose
        tasks begin in a later round were started in this round or after it, at the
        instant of the failure: they are withdrawn (skipped), as same-instant decisions
        are taken together. `cancel` (fail-fast): the steps in flight are cancelled at
        the start of the round after next, not by whichever task Trio runs first. So a
        step's outcome does not depend on Trio's order.
        """
        if not self.stop_seen:
            trio.lowlevel.add_instrument(_NextRound(self, stop=True, cancel=cancel))

    def _cancel(self, *, outside: bool = False) -> None:
        """Cancel the steps in flight (fail-fast; everything after an interrupt)."""
        self._cancelled_now(outside=outside)
        if self.main is not None:
            self.failing_fast = True
            self.main.cancel_scope.cancel()
            if outside and self.outer is not None:
                self.outer.cancel_scope.cancel()

    def _sweep(self) -> None:
        """Settle, as cancelled, the steps whose task ended without reporting.

        Only an interrupt landing in the few unprotected lines of a step task between its
        action and its report can do that; the step still gets its timing.
        """
        self._feed_failed()  # (those reported, and are no step to sweep)
        core = self.core
        taken, self.taken = self.taken, []
        for i in taken:  # taken between two rounds, never started: withdrawn
            if core.state[i] == _core.RUNNING and i not in self.resume:
                self._skipped(core.withdraw(i))
        for i, state in enumerate(core.state):
            if state in (_core.RUNNING, _core.WAITING, _core.AGAIN):
                core.cancelled(i)
                self.errors[i] = StepCancelledError(self.steps[i].name)
                self.order.append(i)

    def _members(self) -> list[Exception]:
        """The `RunError`'s members: each exception object once.

        A step may raise another step's error (a trigger-rule step unwrapping an
        `outcome.Error` input, a cached failure raised by two steps): it fails with it,
        and the group holds it once.
        """
        members = self.members
        return list({id(m): m for m in members}.values()) if len(members) > 1 else members

    def _failures(self) -> list[Exception]:
        """Every real error of the run (the members that are not skips)."""
        return [m for m in self._members() if not isinstance(m, StepSkippedError)]

    def _message(self) -> str:
        n = len(self.steps)
        failed = self.core.state.count(_core.FAILED)  # an interrupt too, though no member
        # (Skipped steps that are members: a quiet skip is none, a skip re-raised as a
        # step's own failure counts once.)
        skipped = sum(isinstance(m, StepSkippedError) for m in self._members())
        message = f"{failed} of {n} step{'s' if n != 1 else ''} failed"
        if skipped:
            message += f", {skipped} skipped"
        if self.teardown_errors:
            count = len(self.teardown_errors)
            message += f", {count} teardown{'s' if count != 1 else ''} failed"
        return message

    def _tell_done(self, i: int, step: Step, status: StepStatus) -> None:
        """Tell the observers step `i` settled (not skipped)."""
        observers = self.observers
        if observers.want_step_done:
            observers.step_done(step, self._timing(i, status))

    def _result(self, *, stopped: bool) -> RunResult:
        """The run's result; its `StepTiming`s are made when first read (`_Facts`)."""
        if None in self.starts or None in self.ends:  # some never started (skipped) or ended
            starts = [t for t in self.starts if t is not None]
            ends = [t for t in self.ends if t is not None]
        else:  # every step ran: no list to make
            starts, ends = cast("list[float]", self.starts), cast("list[float]", self.ends)
        total = max(ends) - min(starts) if starts else 0.0
        error = RunError(self._message(), self._members()) if self.members else None
        return RunResult._later(
            self._kept()._timings, total, error, graph=self.graph, stopped=stopped
        )

    # -- one step --------------------------------------------------------------------------

    async def _step(self, i: int) -> None:  # noqa: PLR0911, PLR0915 - one task a step: one frame
        """The task of a plain step `i`: hooks, the action, its outcome reported to the core.

        A plain step has no trigger rule, no pool and is no resource: the common case,
        kept short (`_attempts.full_step` does the rest). It may have inputs: its action
        is then called with them. In a `RetryRun` it may have a retry: this makes its
        first attempt, and one that failed goes on in `_attempts.retried`. The
        bookkeeping (`_done`, `_ended`, `_withdraw`) is KI-protected, so that a
        `KeyboardInterrupt` never tears it; the action, hooks and instruments run
        unprotected, as Trio users expect.
        """
        try:
            # Stopped between this task's spawn and its start? (`_attempts._stopped_before`,
            # inlined.) The dispatcher's abort callback notes an outside cancellation at
            # once if the dispatcher was waiting, the run's watcher if it has one; else ask
            # Trio (unless fail-fast cancelled the steps or an interrupt came in this round:
            # a step begun in it begins, as a Trio task would; fail-fast decided but not
            # applied yet leaves the steps' nursery alone, so Trio then says "outside").
            if self.stop_seen or (self.outside_at != _INF and self.interrupt is None):
                self._withdraw(i)
                return
            if not (self.watching or self.parked) and (  # (`_asks_trio`, inlined)
                self.cancelled_at == _INF or not (self.failing_fast or self.interrupt is not None)
            ):
                try:
                    await trio.lowlevel.checkpoint_if_cancelled()
                except trio.Cancelled:
                    self._withdraw(i)
                    return
            step = self.steps[i]
            # `value` holds the action until it holds what the action returned: one local
            # fewer keeps each step's coroutine in a smaller block (10⁵ steps alive at once;
            # `_ended` looks its step up, so that its calls leave room on the stack for
            # `given`: 304 bytes a coroutine, with no partial made for a step's inputs).
            value: Any = step.action
            if self.bare:  # the common case: the action called, nothing else
                start = self.now() if self.recording else 0.0  # (0: never read)
                try:
                    value = await value()
                except BaseException as exc:  # noqa: BLE001 - classified by _ended
                    if self.retries is None:
                        self._ended(i, start, exc, None)
                        return
                    value = exc  # (its later attempts: below, out of this handler)
                else:
                    self._done(i, start, value)
                    return
                await retried(self, i, start, value, cut=False)
                return
            if self.observe_start and self._interrupted_at_start(i, step):
                return
            # The keyword arguments it is called with (in a `PlainRun` only), or `None`.
            given = kwargs_of(self, i) if self.inputs is not None and self.inputs[i] else None
            timeout = step.timeout
            if timeout is None:
                timeout = self.step_timeout
            start = self.now()
            if timeout and timeout != _INF:
                error: BaseException | None = None
                try:
                    with trio.CancelScope(deadline=start + timeout) as scope:
                        try:
                            value = await (value() if given is None else value(**given))
                        except BaseException as exc:  # noqa: BLE001 - classified by _ended
                            error = exc
                            given = None  # (its traceback holds this frame: see below)
                except BaseException as exc:  # noqa: BLE001 - raised by the scope's exit
                    given = None
                    # A scope the action left open (an abandoned async generator's): Trio
                    # says its stack is corrupted, here. That fails this attempt alone,
                    # unless the action was interrupted: the interrupt goes on. (Worked
                    # out first, into `exc`: a shallower stack and one local fewer.)
                    error, cut = over_scope_error(exc, error), False
                else:
                    if error is None:
                        self._done(i, start, value)
                        return
                    # Its own deadline is the cause only if it came no later than any
                    # other cancellation of the run (fail-fast, an enclosing scope).
                    cut = scope.cancel_called and start + timeout <= self.cancelled_at
                if self.retries is None:
                    self._ended(i, start, error, timeout if cut else None)
                    return
                await retried(self, i, start, error, cut=cut)  # (out of the handler)
                return
            try:
                value = await (value() if given is None else value(**given))
            except BaseException as exc:  # noqa: BLE001 - classified by _ended
                # The error's traceback holds this frame, and the error may live as long as
                # the result: it must not hold the values too (`keep_values=False`).
                given = None
                if self.retries is None:
                    self._ended(i, start, exc, None)
                    return
                value = exc  # (its later attempts: below, out of this handler)
            else:
                self._done(i, start, value)
                return
            await retried(self, i, start, value, cut=False)
        except BaseException as exc:  # noqa: BLE001 - escaped the bookkeeping
            self._escaped(i, exc)

    def _asks_trio(self, *, late: bool) -> bool:
        """Whether a step task about to begin must ask Trio if the run was cancelled.

        Not while the dispatcher or the watcher waits: its abort callback notes a
        cancellation from outside the moment it comes. Else yes, unless fail-fast has
        cancelled the steps or an interrupt came (a step begun then begins, as a Trio task
        would); fail-fast decided but not applied yet leaves the steps' nursery alone, so
        what Trio reports there came from outside. `late`: a step spawned after fail-fast,
        in the outer nursery, which fail-fast never cancels: it always asks.
        """
        return not (self.watching or self.parked) and (
            late
            or self.cancelled_at == math.inf
            or not (self.failing_fast or self.interrupt is not None)
        )

    @enable_ki_protection
    def _interrupted_at_start(self, i: int, step: Step) -> bool:
        """Tell the observers step `i` starts; whether they were interrupted (Ctrl-C).

        The step then ends cancelled, its action never begun. An interrupt that came from
        another task before (in this round) does not count: this step is in flight.
        KI-protected (the observers themselves run unprotected): every observer told, and
        the step marked told, or none.
        """
        before = self.interrupt
        assert self.told is not None
        self.told[i] = 1
        self.observers.step_started(step)
        if self.interrupt is before:
            return False
        self.attempts[i] = 0
        self._ended(i, self.now(), None, None)
        return True

    @enable_ki_protection
    def _retrying(
        self,
        i: int,
        step: Step,
        attempt: int,
        error: BaseException,
        delay: float,
        *,
        again: trio.Event | None = None,
    ) -> None:
        """Step `i`'s attempt failed and is retried after `delay` seconds.

        `again` is given for no delay: the step is ready again at once, and competes for
        the slot it freed with the steps already waiting (its priority decides, not
        which task Trio runs first).
        """
        self.earlier.setdefault(i, []).append(error)
        if self.observers.instruments:
            self.observers.step_retrying(step, attempt, error, delay)
        if again is None:
            waits = self.core.new_waits  # (`Core.new_waits`: not ready again in this round)
            if not waits:
                self._fresh_until_the_round_ends()
            waits.append(i)
            self._decide()  # its slot is free
        else:
            self._again(i, again)  # ready again, for the slot it freed

    @enable_ki_protection
    def _again(self, i: int, event: trio.Event) -> None:
        self.resume[i] = event
        self.core.again(i)
        self._decide()

    @enable_ki_protection
    def _done(self, i: int, start: float, value: object, *, resource: bool = False) -> None:
        """Step `i`'s action returned: the common case, kept short."""
        self._succeeded(i, start, value)
        skips = self.core.done(i, resource=resource)
        if skips:
            self._skipped(skips)
        self._decide()

    def _succeeded(self, i: int, start: float, value: object) -> None:
        """Record that step `i`'s action returned `value`, and tell the observers.

        Then drop the values it was the last to take (`keep_values=False`): it has settled
        (rule 4), and what the core decides next never reads them.
        """
        if self.fed:  # skips decided between two rounds (`_NextRound`) come first
            self._feed_failed()
        if self.recording:
            self.starts[i] = start
            self.ends[i] = self.now()
            self.values[i] = value
            if self.observed:
                self._tell_done(i, self.steps[i], _DONE)
            self.order.append(i)
        elif self.inputs is not None:  # (an input may take it)
            self.values[i] = value
        if self.left is not None:
            self._drop_unwanted(i)
            self._release_values(i)

    def _classify(
        self, step: Step, exc: BaseException | None, expired: float | None, *, late: bool = False
    ) -> tuple[int, BaseException]:
        """How the action of `step` raised `exc`: its final state and its error.

        `expired` is the step's timeout when its own deadline cancelled it; `exc` is
        `None` when the run was interrupted before the action could begin.
        """
        if exc is None:
            return _core.CANCELLED, StepCancelledError(step.name)
        if is_cancellation(exc):
            return self._cancellation(step, exc, expired, late=late)
        if isinstance(exc, TypeError) and (returned := not_awaitable(exc)):
            refused = TypeError(
                f"the action of step {step.name!r} returned {returned}, not an awaitable; "
                "make it an async function"
            )
            refused.__cause__ = exc
            return _core.FAILED, refused
        if isinstance(exc, BaseExceptionGroup) and not isinstance(exc, Exception):
            return _core.FAILED, exc.split(trio.Cancelled)[1] or exc  # drop the cancellations
        return _core.FAILED, exc

    def _cancellation(
        self, step: Step, exc: BaseException, expired: float | None, *, late: bool
    ) -> tuple[int, BaseException]:
        """`_classify` for an action that ended cancelled: by what, and so how it ended."""
        if expired is not None:
            timed_out = StepTimeoutError(step.name, expired)
            timed_out.__context__ = exc  # the traceback shows where it was stuck
            return _core.FAILED, timed_out
        if self.cancelled_at == math.inf and (self.watching or self.parked):
            # Nothing cancelled the run: its dispatcher, inside every scope that could
            # (fail-fast's notes itself), still waits undisturbed. A scope of the step's
            # own that it never exited (an abandoned async generator's) did: that fails
            # this step alone (SPEC, "each step is its own Trio task").
            own = RuntimeError(
                f"step {step.name!r} was cancelled by a cancel scope of its own that it "
                "left open (an async generator abandoned inside a cancel scope?); the "
                "run was not cancelled"
            )
            own.__context__ = exc
            return _core.FAILED, own
        # From outside, if fail-fast did not say so first.
        self._cancelled_now(outside=late or not self.failing_fast)
        return _core.CANCELLED, StepCancelledError(step.name)

    @enable_ki_protection
    def _ended(
        self,
        i: int,
        start: float,
        exc: BaseException | None,
        expired: float | None,
        *,
        late: bool = False,
        end: float | None = None,
    ) -> None:
        """Classify how step `i`'s action raised, tell the observers, then the core.

        `end` is when its last attempt ended, if not now (cancelled during a retry's wait).
        """
        step = self.steps[i]
        state, error = self._classify(step, exc, expired, late=late)
        self._report(i, step, start, state, error, end=end)

    @enable_ki_protection
    def _report(
        self,
        i: int,
        step: Step,
        start: float,
        state: int,
        error: BaseException,
        *,
        end: float | None = None,
    ) -> None:
        """Step `i` ended in `state` (`FAILED` or `CANCELLED`) with `error`."""
        if self.fed:  # skips decided between two rounds (`_NextRound`) come first
            self._feed_failed()
        self.starts[i] = start
        self.ends[i] = self.now() if end is None else end
        self.errors[i] = error
        # Whether its task was being cancelled as its action raised: asked before its
        # observers run, which may cancel the run themselves (hooks never change an outcome).
        cancelled = trio.current_effective_deadline() == -math.inf
        if self.observed:
            self._tell_done(i, step, _STATUS[state])
        self.order.append(i)
        if state == _core.CANCELLED:
            self._after_failures(partial(self.core.cancelled, i))
        else:
            self._failed(i, error, cancelled=cancelled)
        if self.left is not None:
            self._release_values(i)
        self._decide()

    def _decide(self) -> None:
        """Start what may start now, or leave it to the dispatcher.

        Other running steps may complete at this same instant: the core is asked for all
        of them together at the end of this round of Trio's scheduler (`_Takes`), and the
        dispatcher starts what it took, unless the core says no later completion could
        change the choice (`Core.decide_now`): then this task decides at once.
        """
        core = self.core
        if self.resources:
            self._tear_down_due()
        if core.decide_now():
            self._start_ready()
            if not core.unsettled:
                self._wake()
        elif core.ready or self.pooled:
            self._wake_to_decide()

    def _failed(self, i: int, error: BaseException, *, cancelled: bool) -> None:
        """Step `i` failed with `error`; `cancelled`: its task was being cancelled then."""
        raised_by = f"exegraph: raised by step {self.steps[i].name!r}"
        note(error, raised_by)
        if isinstance(error, Exception):
            self.members.append(error)
            if (
                cancelled
                and not isinstance(error, StepTimeoutError)
                and not (self.failing_fast and self.outside_at == math.inf)
            ):
                # Raised by a step while it was being cancelled from outside (its cleanup
                # failed): a nursery would raise it, so the run does even if cancelled
                # from outside. One raised while fail-fast cancelled it failed before any
                # outside cancellation: it is in the result, as other earlier failures.
                # (`_failed` runs in the step's own task.)
                self.errors_while_cancelled = True
        core = self.core
        interrupt = interrupt_in(error)
        if interrupt is None and not core.failing and not core.stopped:
            # Told to the core at the start of the second round of Trio's scheduler after
            # this one (`_NextRound`, `_Takes`), after every task of both has run: the
            # steps that end at this same instant count as ended before the failure,
            # whichever of them Trio happened to run first (as in `plan()`), and what
            # several failures skip names the first in the graph. Under fail-fast the
            # steps in flight are cancelled then: the steps ending at this instant end as
            # they would have (done, failed with their own error, or waiting to retry),
            # and nothing starts meanwhile (`cancelled_at` is set).
            self.failed_pending.append(i)
            if not self.feed_armed:
                self.feed_armed = True
                if core.fail_fast and not self.cancel_pending and not self.stop_seen:
                    self.cancel_pending = True
                    self._cancelled_now(outside=False)
                    trio.lowlevel.add_instrument(
                        _NextRound(self, stop=True, cancel=True, feed=True)
                    )
                else:  # (told in two rounds by the instrument every run shares)
                    self._boundaries().feed_later.append(self)
            self._wake()
            return
        self._feed_failed()  # (an interrupt: the failures of this instant before it)
        skips = core.failed(i)
        if interrupt is not None:
            if isinstance(error, BaseExceptionGroup):  # keep the rest as its context
                note(interrupt, raised_by)
                rest = error.split(lambda exc: exc is interrupt)[1]
                if interrupt.__context__ is None:
                    interrupt.__context__ = rest
            self._interrupted(interrupt)
        self._skipped(skips)

    @enable_ki_protection
    def _withdraw(self, i: int) -> None:
        self._after_failures(partial(self.core.withdraw, i))
        self._decide()

    def _skipped(self, skips: Sequence[_core.Skip]) -> None:
        """Record each step the core just skipped, then tell the instruments.

        The records come first, so that an interrupt from an instrument cannot leave a
        step without one. A quiet skip (a `ONE_FAILED` step with nothing failed) has no
        error and is no member of the `RunError`.
        """
        if not skips:
            return
        steps, errors, order, members = self.steps, self.errors, self.order, self.members
        for j, cause in skips:
            order.append(j)
            if cause == _core.QUIET:
                continue
            error = StepSkippedError(steps[j].name, None if cause is None else steps[cause].name)
            errors[j] = error
            members.append(error)
        if self.left is not None:
            for j, _ in skips:
                self._release_values(j)
        if self.observers.want_step_skipped:
            for j, _ in skips:
                self.observers.step_skipped(steps[j], self._timing(j, StepStatus.SKIPPED))

    def _release_values(self, j: int) -> None:
        """Step `j` settled: drop the values only it was still to take (`keep_values=False`).

        A step whose takers have all settled before it succeeded (skipped) keeps no value
        either: its count becomes -1 (`_drop_unwanted`).
        """
        left, values, inputs = self.left, self.values, self.inputs
        assert left is not None
        assert inputs is not None
        for _, d in inputs[j]:
            n = left[d] - 1
            if n:
                left[d] = n
            else:
                left[d] = -1
                values[d] = None

    def _drop_unwanted(self, i: int) -> None:
        """Step `i` succeeded after every step taking its value settled: drop its value."""
        assert self.left is not None
        if self.left[i] < 0:
            self.values[i] = None

    # -- resources -------------------------------------------------------------------------

    @enable_ki_protection
    def _escaped(self, i: int, exc: BaseException) -> None:
        """Something escaped step `i`'s task: settle the step, then interrupt the run.

        Only a `KeyboardInterrupt` landing in the task outside its (protected) bookkeeping
        can: the step is settled as cancelled, so that nothing waits for it (a resource's
        teardown); or, landing before its observers were told it started, withdrawn (it
        never started: they are told it is skipped, not done). Anything else is raised.
        """
        state = self.core.state[i]
        if i in self.errors or state not in (_core.RUNNING, _core.WAITING, _core.AGAIN):
            pass  # reported already (a failure is told to the core with its instant's others)
        elif self.told is not None and not self.told[i] and state == _core.RUNNING:
            self._withdraw(i)
        else:
            step = self.steps[i]
            start = self.starts[i]
            self._report(
                i,
                step,
                self.now() if start is None else start,
                _core.CANCELLED,
                StepCancelledError(step.name),
            )
        interrupt = interrupt_in(exc)
        if interrupt is None:
            raise exc
        self._interrupted(interrupt)

    @enable_ki_protection
    def _interrupt_from(self, exc: BaseException) -> None:
        self._interrupted(exc)

    @enable_ki_protection
    def _torn_down(self, i: int, step: Step, error: BaseException | None) -> None:
        if error is not None:
            note(error, f"exegraph: raised by the teardown of step {step.name!r}")
            self.teardown_errors[i] = error
            interrupt = interrupt_in(error)
            if interrupt is not None:
                self._interrupted(interrupt)
            elif isinstance(error, Exception):
                self.members.append(error)
                if self.outside_at != math.inf:  # the run will not raise it: say it here
                    self._log_teardown_error(i)
        if self.observed:
            self.observers.teardown_done(step, error)
        self.core.torn_down(i)
        self._tear_down_due()

    def _interrupt_with_what_it_hides(self) -> BaseException:
        """The interrupt to raise, and what the run would have raised instead kept.

        The interrupt wins (SPEC, part 1), so the errors steps raised while the run was
        being cancelled, which a nursery would raise beside it, become its `__context__`
        (unless it has one), as a group's other errors do (`_failed`); the teardowns'
        errors are logged (`_log_unraised_teardown_errors`). Both are in the result too.
        """
        interrupt = self.interrupt
        assert interrupt is not None
        self._log_unraised_teardown_errors()
        if self.errors_while_cancelled and interrupt.__context__ is None:
            torn = self._torn_ids()
            failures = [m for m in self._failures() if id(m) not in torn]
            if failures:
                interrupt.__context__ = RunError(self._message(), failures)
        return interrupt

    def _torn_ids(self) -> set[int]:
        return {id(error) for error in self.teardown_errors.values()}

    def _log_teardown_error(self, i: int) -> None:
        """Log the error of step `i`'s teardown, which the run will not raise (once)."""
        if i in self.logged:
            return
        self.logged.add(i)
        error = self.teardown_errors[i]
        logger.error(
            "the teardown of step %r raised while run %d was being %s",
            self.steps[i].name,
            self.info.run_id,
            "cancelled" if self.interrupt is None else "interrupted",
            exc_info=error,
        )

    def _log_unraised_teardown_errors(self) -> None:
        """The run ends interrupted or cancelled from outside: log what its teardowns raised.

        Those that raised once the cancellation was known are logged already; one that
        began before it (a shielded teardown) and raised after, before the run knew, is
        logged here. (Either way `run_done`'s `RunResult` has them.)
        """
        for i, error in self.teardown_errors.items():
            if isinstance(error, Exception):
                self._log_teardown_error(i)

    def _tear_down_due(self) -> None:
        """Let every resource the core says is released begin its teardown."""
        for d in self.core.teardowns():
            self.due.pop(d).set()


class PlainRun(Run):
    """A run whose steps use none of the lifecycle: the common case, kept short.

    No step has a retry, a trigger rule or a pool, and none is a resource (steps may have
    inputs: they never change a decision). Its core is a `PlainCore`; every step runs
    `Run._step`; the decisions leave out what such a run never has (teardowns, skips on
    success, steps that start after fail-fast).
    """

    __slots__ = ()
    _Core = _core.PlainCore
    core: _core.PlainCore

    def _start_ready(self) -> None:
        """`Run._start_ready` for plain steps: start what the core says, in the nursery."""
        core = self.core
        if not core.ready or self.cancelled_at != _INF:
            return
        taken = core.take()
        if taken:
            self._spawn(taken)

    def _take(self) -> list[int]:
        """`Run._take` for plain steps."""
        core = self.core
        if not core.ready or self.cancelled_at != _INF:
            return []
        return core.take()

    def _spawn(self, taken: list[int], *, counted: bool = False) -> None:
        """Start a task for each step of `taken`, in the run's nursery (`Run._spawn`)."""
        nursery, steps, spawn = self.main, self.steps, self._step
        assert nursery is not None
        start_soon: Callable[..., None] = nursery.start_soon
        enter = self.context.run
        for i in taken:
            # Spawned inside the run's context: Trio gives the task a copy of it.
            enter(start_soon, spawn, i, name=steps[i].name)
        core = self.core
        if not counted and core.running > len(taken) and core.limit < core.unsettled:
            self._started_fresh(taken)

    @enable_ki_protection
    def _done(self, i: int, start: float, value: object, *, resource: bool = False) -> None:
        """`Run._done` for plain steps: its success never skips anything."""
        if self.fed:  # skips decided between two rounds (`_NextRound`) come first
            self._feed_failed()
        if self.recording:  # (see `Run.recording`)
            self.starts[i] = start
            self.ends[i] = end = self.now()
            self.values[i] = value
            if self.observed and self.observers.want_step_done:  # `_tell_done`, for a success:
                # one attempt, no earlier errors, no teardown, no pool (as `_timing` finds)
                step = self.steps[i]
                timing = _timing(step.name, _DONE, start, end, None, value, 1, (), None, None)
                self.observers.step_done(step, timing)
            self.order.append(i)
        elif self.inputs is not None:  # (an input may take it)
            self.values[i] = value
        core = self.core
        taken = core.finish(i, self.cancelled_at == _INF)  # `done`, `_decide`
        if taken is None:  # decided with the other completions of this instant
            if core.ready:
                self._wake_to_decide()
            return
        if len(taken) == 1:  # one slot freed: `_spawn`, inlined
            j = taken[0]
            self.context.run(self.start_soon, self._step, j, name=self.steps[j].name)
            if core.running > 1 and core.dependents[j] and core.limit < core.unsettled:
                if not core.fresh:  # (`_started_fresh`, inlined)
                    self._fresh_until_the_round_ends()
                core.fresh += 1
        elif taken:
            # Decided now, with every completion of this round before it: a decision asked
            # for at its end would take nothing more (a later completion asks again).
            # (Where a round's last completion takes several steps, as under a bound.)
            self.take_due = False
            self._spawn(taken)
        if not core.unsettled:
            self._wake()

    def _decide(self) -> None:
        """`Run._decide` for plain steps: no teardowns, no pools."""
        core = self.core
        if core.decide_now():
            self._start_ready()
            if not core.unsettled:
                self._wake()
        elif core.ready:
            self._wake_to_decide()


@final
class InputsRun(PlainRun):
    """A `PlainRun` with `keep_values=False` and inputs: a success also releases values.

    A step that succeeds drops the values it was the last to take once it has settled
    (its `on_step_done` returned, rule 4), as `Run._done` does (its failure goes through
    `Run._report`, which does too); `PlainRun._done` never looks. (The steps it starts
    do not run before this returns: `start_soon` only schedules them.)
    """

    __slots__ = ()

    @enable_ki_protection
    def _done(self, i: int, start: float, value: object, *, resource: bool = False) -> None:
        PlainRun._done(self, i, start, value)  # (a `PlainRun` has no resource)
        if self.left[i] < 0:  # type: ignore[index]  # (`_drop_unwanted`, inlined)
            self.values[i] = None
        self._release_values(i)


@final
class RetryRun(Run):
    """A run whose only lifecycle feature is retries (its steps may have inputs too).

    `Run`, but a success is one call into the core (`RetryCore.finish`), as in `PlainRun`:
    no trigger rule, resource or pool, so a success never skips, tears down or frees a
    pool slot, and nothing starts once the run is being cancelled.
    """

    __slots__ = ()
    _Core = _core.RetryCore
    core: _core.RetryCore

    def _spawn(self, taken: list[int], *, counted: bool = False) -> None:
        """Start a task for each step of `taken` (or resume it, a retry that waited).

        Every step runs `Run._step`, whose first attempt is a plain step's; an attempt
        that fails goes on in `_attempts.retried`. (`Run._spawn`, which starts
        `full_step`, after fail-fast: nothing starts then in such a run, but a step
        spawned late must know it.)
        """
        if self.failing_fast or self.core.failing:
            Run._spawn(self, taken, counted=counted)
            return
        resume, steps, start_soon = self.resume, self.steps, self.start_soon
        enter, spawn = self.context.run, self._step
        for i in taken:
            if resume and i in resume:  # a retry that waited for its slot
                resume.pop(i).set()
            else:  # (spawned inside the run's context: Trio gives the task a copy of it)
                enter(start_soon, spawn, i, name=steps[i].name)
        core = self.core
        if not counted and core.running > len(taken) and core.limit < core.unsettled:
            self._started_fresh(taken)

    @enable_ki_protection
    def _done(self, i: int, start: float, value: object, *, resource: bool = False) -> None:
        """`Run._done` for a run with retries: `Run._decide` folded into the core's call."""
        self._succeeded(i, start, value)
        core = self.core
        taken = core.finish(i, self.cancelled_at == _INF)
        if taken is None:  # decided with the other completions of this instant
            if core.ready:
                self._wake_to_decide()
            return
        if len(taken) == 1 and not (self.resume or self.failing_fast or core.failing):
            j = taken[0]  # one slot freed, a new task (`_spawn`, inlined)
            self.context.run(self.start_soon, self._step, j, name=self.steps[j].name)
            if core.running > 1 and core.dependents[j] and core.limit < core.unsettled:
                if not core.fresh:  # (`_started_fresh`, inlined)
                    self._fresh_until_the_round_ends()
                core.fresh += 1
        elif taken:
            self.take_due = False  # (decided now: as in `PlainRun._done`)
            self._spawn(taken)
        if not core.unsettled:
            self._wake()
