"""`Instrument`: the observer interface, and `RunInfo`, the handle it receives."""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, final

import attrs

if TYPE_CHECKING:
    from ._graph import Graph
    from ._options import RunOptions
    from ._result import RunResult, StepTiming
    from ._step import Step

__all__ = ["Instrument", "RunInfo"]

_run_ids = itertools.count(1)


@final
@attrs.frozen(eq=False)
class RunInfo:
    """The handle of one run, given to every [`Instrument`][exegraph_trio.Instrument] call.

    It compares and hashes by identity, so an instrument serving several concurrent runs
    keeps per-run state in a `dict` keyed by it (and drops it in `run_done`).

    Attributes:
        run_id: a number unique to this run within the process, counting from 1.
        graph: the graph being run.
        options: the options of the run (with the instruments it carries).
    """

    run_id: int
    graph: Graph
    options: RunOptions

    @classmethod
    def _new(cls, graph: Graph, options: RunOptions) -> RunInfo:
        return cls(next(_run_ids), graph, options)


class Instrument:
    """Observe runs: subclass it and override the methods you need; the rest do nothing.

    Like `trio.abc.Instrument`: attach any number through `RunOptions.instruments`
    (tracing, metrics, a progress display and logging can watch one run together); one
    listed twice is called once.
    Instruments observe, they never change an outcome: a method that raises is logged with
    its traceback (logger `exegraph_trio`) and that instrument is not called again during
    that run.

    Order and place of the calls, for one run:

    - `run_started` first, in the run's own context (a private copy of the caller's, which
      every step's context is then copied from: a context variable set here, such as the
      current span, is seen by every step and restored for nobody else).
    - `step_started` just before a step's action and `step_done` just after it, both in
      the step's own task and context (like the `RunOptions` hooks: instruments in the
      order given, wrapped around the `on_step_start`/`on_step_done` hooks, so `step_done`
      goes in reverse order). `step_done` is called exactly once for every step that
      started, whatever its outcome; its dependents start only after it returns.
    - `step_retrying` when an attempt failed and the step will be tried again, and
      `attempt_started` before each later attempt (both in the step's task): a step with
      retries still gets one `step_started` and one `step_done`.
    - `teardown_started` and `teardown_done` around the teardown of a resource step (in
      its task and context, after its `step_done`).
    - `step_skipped` once for each step that will never run, when that is decided.
    - `run_done` last, in the run's context, with the
      [`RunResult`][exegraph_trio.RunResult], also when the run is cancelled from outside
      or a step raised `KeyboardInterrupt` (it then reports the unfinished steps as
      cancelled or skipped before the exception propagates).

    All methods are synchronous and must not block: they run on the scheduler's path
    (`RunOptions` refuses an instrument with an `async def` one: a `TypeError`).

    ```python
    class PrintProgress(exegraph.Instrument):
        def step_done(self, run, step, timing):
            print(f"[run {run.run_id}] {step.name}: {timing.status}")
    ```
    """

    def run_started(self, run: RunInfo) -> None:
        """The run `run` is about to start its first steps."""

    def step_started(self, run: RunInfo, step: Step) -> None:
        """`step` is about to run its action (in its own task and context)."""

    def step_done(self, run: RunInfo, step: Step, timing: StepTiming) -> None:
        """`step`'s action finished (called in the step's own task and context).

        `timing.status` is `DONE`, `FAILED` or `CANCELLED`; `timing.error` is the
        exception, if any.
        """

    def step_retrying(
        self, run: RunInfo, step: Step, attempt: int, error: BaseException, delay: float
    ) -> None:
        """Attempt number `attempt` (from 1) of `step` failed with `error`; another follows.

        The step now waits `delay` seconds, holding no slot, then competes for one again
        ([`Retry`][exegraph_trio.Retry]). Called in the step's task.
        """

    def attempt_started(self, run: RunInfo, step: Step, attempt: int) -> None:
        """Attempt number `attempt` (2 or more) of `step` is about to start, in its task."""

    def teardown_started(self, run: RunInfo, step: Step) -> None:
        """The teardown of resource step `step` is about to run, in the step's task."""

    def teardown_done(self, run: RunInfo, step: Step, error: BaseException | None) -> None:
        """The teardown of resource step `step` ended: `error` is what it raised, or `None`."""

    def step_skipped(self, run: RunInfo, step: Step, timing: StepTiming) -> None:
        """`step` will never run.

        `timing.error` is the [`StepSkippedError`][exegraph_trio.StepSkippedError] saying
        why; `None` for a `ONE_FAILED` step skipped because nothing it depends on failed
        (no failure, see [`TriggerRule`][exegraph_trio.TriggerRule]).
        """

    def run_done(self, run: RunInfo, result: RunResult) -> None:
        """The run is over; `result` tells how every step went."""
