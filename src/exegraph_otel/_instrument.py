"""`OtelInstrument`, the instrument that does it all, and `traced`, the one-line turn-on."""

from __future__ import annotations

import functools
import logging
from typing import TYPE_CHECKING, Final, final

import attrs

import exegraph_trio

from ._metrics import Metrics
from ._tracing import Tracing

if TYPE_CHECKING:
    from opentelemetry.metrics import MeterProvider
    from opentelemetry.trace import TracerProvider

    from exegraph_trio import RunInfo, RunOptions, RunResult, Step, StepTiming

__all__ = ["OtelInstrument", "traced"]

logger: Final = logging.getLogger("exegraph_otel")

_Part = Tracing | Metrics


@final
class OtelInstrument(exegraph_trio.Instrument):
    """Trace and measure exegraph runs with OpenTelemetry.

    Attach it to a run (or use [`traced`][exegraph_otel.traced]) and every run becomes
    one trace, and feeds six metrics:

    ```python
    import exegraph_trio as exegraph
    import exegraph_otel

    otel = exegraph_otel.OtelInstrument(pipeline_name="release")
    await exegraph.run(graph, exegraph.RunOptions(instruments=[otel]))
    ```

    **Spans.** The run gets a span named `RUN {pipeline_name}` (kind `SERVER`, as the
    CI/CD conventions ask of a pipeline run; `cicd.pipeline.run.id` a random UUID), a
    child of the span that is current where `run` is called. Each step that starts gets a
    span named after the step, a child of the run span, from the moment this instrument
    is told it starts to the moment it ends: instruments are told first, in the order
    given, then `on_step_start`, then the action begins, so the span also covers what
    the instruments after this one and that hook take (none under a mock clock; the
    step's `StepTiming` and `exegraph.step.duration` start with the action). It is the
    current span inside the action, so spans the action makes (also in
    tasks it spawns in its own nurseries, and nested exegraph runs) are its children. Each
    step span links to the spans of the steps it depends on. A skipped step gets a
    zero-length span at the moment the skip is decided, also linked to the spans its
    dependencies have by then (a trigger-rule step that runs after fail-fast has none
    yet), and says why it never ran in `exegraph.step.skip_reason`:
    `failed_dependency` (a step upstream failed: named in
    `exegraph.step.failed_dependency` and linked with link type `failed_dependency`),
    `fail_fast` or `interrupted` (a step that is not upstream failed, or raised
    `KeyboardInterrupt`, and stopped the run: named in `exegraph.step.stopped_by` and
    linked with link type `stopped_by`), or `cancelled` (the run was cancelled from
    outside) or `trigger_rule` (a `ONE_FAILED` step with nothing failed upstream: a skip
    without error). Every link carries its kind in `exegraph.link.type`.

    **Retries.** A step that may be retried (its [`Retry`][exegraph_trio.Retry], or the
    run's, allows more than one attempt) gets a child span per attempt, named
    `attempt N` (with `exegraph.step.attempt`), which is the current span while that
    attempt runs: spans the action makes nest under the attempt that made them. An
    attempt that failed and is retried ends with its own result (`failure` or `timeout`),
    `error.type` and status `ERROR`; the last one ends as the step does. Each retry is also
    an `exegraph.retry` event on the step span, at the failed attempt's end, with the
    attempt number, the delay (`exegraph.retry.delay`), `error.type` and
    `exception.message`: the wait is the gap between two attempt spans (longer than the
    delay when the step then waited for a slot). `exegraph.step.attempts` on the step span
    counts the attempts started. Steps that cannot be retried get no attempt spans.

    **Resource steps.** The step span covers the setup (the step's own duration). The
    teardown gets its own span, `teardown {step}`, from its start to its end, a child of
    the run span (not of the step span, which ended long before: a child outliving its
    parent draws badly in trace viewers, and the teardown belongs to the run's timeline,
    after the dependents) with a link of type `teardown_of` to the step span. It is the
    current span while the teardown runs; if the teardown raised (or overran its
    deadline), it has `error.type` and status `ERROR`, and the run span is a `failure`.

    **Pools.** A step that takes pool slots (`Step(pools=...)`) says which in
    `exegraph.step.pools`, a string array of `"{pool}:{slots}"` entries (`("db:2",)`). In
    a run whose steps use pools, each step span also has `exegraph.step.slot_wait`: the
    seconds the step waited, ready, for its concurrency slot and pool slots before its
    first attempt started (`start - ready` of its
    [`StepTiming`][exegraph_trio.StepTiming]).

    Attributes follow the OpenTelemetry CI/CD conventions:
    `cicd.pipeline.task.run.result` is `success`, `failure`, `timeout`, `cancellation`
    (cancelled mid-flight by fail-fast) or `skip`; a failed or timed-out step has
    `error.type` (the exception's class) and status `ERROR` with the exception's message,
    and its exception is recorded as a span event when `record_exceptions` is true. A
    successful step leaves the status unset. `exegraph.step.tags`,
    `exegraph.step.depends_on`, `exegraph.step.priority`, `exegraph.step.trigger_rule`,
    `exegraph.step.attempts` and `exegraph.run.id` add what the conventions lack. Step
    values never go on spans.

    **Metrics.** `exegraph.step.duration`, `exegraph.teardown.duration` and
    `exegraph.run.duration` (histograms, in seconds), `exegraph.step.active` (steps
    running now; not those waiting to be retried), `exegraph.step.outcomes` (steps by
    result) and `exegraph.step.retries` (failed attempts that were retried), with
    low-cardinality attributes only: pipeline name, step name, result and `error.type`.

    One instance serves any number of runs, also concurrent ones: create it once and
    reuse it. It never changes a run's outcome: if the tracer or meter raises, the
    instrument logs the error (logger `exegraph_otel`) and stops that signal for the rest
    of that run, ending the spans it had started (the run's and the running steps') at
    that moment; the run goes on as if it were not there.

    Times are the Trio clock (`trio.current_time()`, which `StepTiming` uses) placed on the
    wall clock at the start of each run, so spans (but a step span's start, above) and
    metrics agree exactly with the [`RunResult`][exegraph_trio.RunResult] (and show
    virtual time under a mock clock: there
    every run of one `trio.run` is placed from the first one's start, so that a run nested
    in a step lies inside it).

    Args:
        tracer_provider: where spans go; the global tracer provider when `None` (set it
            with `opentelemetry.trace.set_tracer_provider`, even after this instrument is
            made). Pass `opentelemetry.trace.NoOpTracerProvider()` for metrics only.
        meter_provider: where measurements go; the global meter provider when `None`.
            Pass `opentelemetry.metrics.NoOpMeterProvider()` for traces only.
        pipeline_name: the `cicd.pipeline.name` of every run this instrument sees, and
            the second word of the run span's name. Keep it low-cardinality: it is a
            metric attribute.
        record_exceptions: also record the exception of each failed step, retried
            attempt and teardown as an `exception` event on its span (with its
            traceback), stamped at the span's end (a step's last error goes on the step
            span only). Off by default: the status
            and `error.type` already say what failed, and tracebacks can be large or hold
            secrets.

    Raises:
        TypeError: `pipeline_name` is not a `str`.
        ValueError: `pipeline_name` is empty.
    """

    def __init__(
        self,
        *,
        tracer_provider: TracerProvider | None = None,
        meter_provider: MeterProvider | None = None,
        pipeline_name: str = "exegraph",
        record_exceptions: bool = False,
    ) -> None:
        if not isinstance(pipeline_name, str):
            raise TypeError(
                f"pipeline_name must be a str, not {type(pipeline_name).__name__}: "
                f"{pipeline_name!r}"
            )
        if not pipeline_name:
            raise ValueError("pipeline_name must be a non-empty string, such as 'release'")
        self._pipeline_name = pipeline_name
        self._record_exceptions = bool(record_exceptions)
        parts: list[_Part] = []
        try:
            parts.append(
                Tracing(tracer_provider, pipeline_name, record_exceptions=self._record_exceptions)
            )
        except Exception:
            logger.exception("exegraph_otel: could not get a tracer; runs will not be traced")
        try:
            parts.append(Metrics(meter_provider, pipeline_name))
        except Exception:
            logger.exception(
                "exegraph_otel: could not create its metrics; runs will not be measured"
            )
        self._parts: tuple[_Part, ...] = tuple(parts)

    @property
    def pipeline_name(self) -> str:
        """The `cicd.pipeline.name` this instrument gives every run."""
        return self._pipeline_name

    @property
    def record_exceptions(self) -> bool:
        """Whether failed steps' exceptions are recorded as span events."""
        return self._record_exceptions

    def __repr__(self) -> str:
        return (
            f"OtelInstrument(pipeline_name={self._pipeline_name!r}, "
            f"record_exceptions={self._record_exceptions!r})"
        )

    def run_started(self, run: RunInfo) -> None:
        """Start the run span and make it current for the run; note the start time."""
        self._each("run_started", run)

    def step_started(self, run: RunInfo, step: Step) -> None:
        """Start the step's span and make it current for the step; count it as active."""
        self._each("step_started", run, step)

    def step_done(self, run: RunInfo, step: Step, timing: StepTiming) -> None:
        """End the step's span with its result and restore the context; measure the step."""
        self._each("step_done", run, step, timing)

    def step_retrying(
        self, run: RunInfo, step: Step, attempt: int, error: BaseException, delay: float
    ) -> None:
        """End the failed attempt's span; note the retry on the step span; count it."""
        self._each("step_retrying", run, step, attempt, error, delay)

    def attempt_started(self, run: RunInfo, step: Step, attempt: int) -> None:
        """Start the next attempt's span under the step span and make it current."""
        self._each("attempt_started", run, step, attempt)

    def teardown_started(self, run: RunInfo, step: Step) -> None:
        """Start the teardown span, linked to the step's span, and make it current."""
        self._each("teardown_started", run, step)

    def teardown_done(self, run: RunInfo, step: Step, error: BaseException | None) -> None:
        """End the teardown span (with the error, if any); measure the teardown."""
        self._each("teardown_done", run, step, error)

    def step_skipped(self, run: RunInfo, step: Step, timing: StepTiming) -> None:
        """Record the skipped step as a zero-length span: why, and links to what caused it."""
        self._each("step_skipped", run, step, timing)

    def run_done(self, run: RunInfo, result: RunResult) -> None:
        """End the run span with the run's result and restore the context; measure the run."""
        self._each("run_done", run, result)

    def _each(self, method: str, run: RunInfo, *args: object) -> None:
        """Call `method` on tracing and on metrics, each guarded on its own.

        An `Exception` of one part is logged and disables that part for the run. A
        `KeyboardInterrupt` or `SystemExit` (Ctrl-C during a blocking export) is raised
        once every part has been called, so that the other part still counts the step
        (`exegraph.step.active` goes back down): the first such interrupt is raised.
        """
        interrupt: BaseException | None = None
        for part in self._parts:
            try:
                getattr(part, method)(run, *args)
            except Exception:  # noqa: BLE001 - a broken provider must not reach the engine
                self._failed(part, run, method)
            except BaseException as exc:  # noqa: BLE001 - raised below, after the other part
                if interrupt is None:
                    interrupt = exc
        if interrupt is not None:
            raise interrupt

    @staticmethod
    def _failed(part: _Part, run: RunInfo, method: str) -> None:
        signal = "tracing" if isinstance(part, Tracing) else "metrics"
        logger.exception(
            "exegraph_otel: %s raised in %s; no more %s for run %d (the run goes on)",
            signal,
            method,
            signal,
            run.run_id,
        )
        part.forget(run)


@functools.cache
def _shared_instrument() -> OtelInstrument:
    return OtelInstrument()


def traced(
    options: RunOptions | None = None, *, instrument: OtelInstrument | None = None
) -> RunOptions:
    """Run options that trace and measure the run: `options` plus an `OtelInstrument`.

    The one-line way to turn OpenTelemetry on, once your application has set up the
    global tracer and meter providers (or with the instrument you pass):

    ```python
    await exegraph.run(graph, exegraph_otel.traced())
    await exegraph.run(graph, exegraph_otel.traced(RunOptions(max_concurrency=4)))
    ```

    Args:
        options: the options to extend (they are not changed: this returns a copy made
            with `attrs.evolve`); the defaults when `None`.
        instrument: the instrument to add; when `None`, one shared
            [`OtelInstrument`][exegraph_otel.OtelInstrument] that uses the global
            providers (created on first use, and reused so that calling `traced` for every
            run costs nothing). Pass your own for a pipeline name, explicit providers or
            exception events.

    Returns:
        A copy of `options` whose `instruments` end with `instrument`, or `options` itself
        if it already holds that instrument.

    Raises:
        TypeError: `options` is not an `exegraph.RunOptions` (or `None`), or `instrument`
            not an `OtelInstrument` (or `None`).
    """
    if options is None:
        options = exegraph_trio.RunOptions()
    elif not isinstance(options, exegraph_trio.RunOptions):
        raise TypeError(
            f"traced takes exegraph.RunOptions or None, not {type(options).__name__}: {options!r}"
        )
    if instrument is not None and not isinstance(instrument, OtelInstrument):
        raise TypeError(
            f"instrument must be an exegraph_otel.OtelInstrument or None, not "
            f"{type(instrument).__name__}: {instrument!r}"
        )
    if instrument is None:
        instrument = _shared_instrument()
    if any(existing is instrument for existing in options.instruments):
        return options
    return attrs.evolve(options, instruments=(*options.instruments, instrument))
