"""Spans: one trace per run, one span per step, nested where the code runs.

The run span is started in `run_started` as a child of the caller's current span and
attached (made current) in the run's own context, which every step's context is then
copied from. Each step span is started in `step_started` as a child of the run span and
attached in the step's own context, so spans the action makes — in its own task or in
tasks it spawns — nest under it; `step_done` detaches it in that same context and ends
it. Contexts are restored by the very `Context` object that attached them, so OpenTelemetry
never logs "Failed to detach context", whatever the outcome (cancelled and timed-out
steps included).

A step that may be retried (its `Retry` allows more than one attempt) also gets an
`attempt N` child span per attempt, attached over the step span for the attempt's
duration (so the action's own spans nest under the attempt that made them); each failed
attempt that is retried is also an `exegraph.retry` event on the step span. The teardown
of a resource step is a `teardown {step}` span, a child of the run span linked to the
step's span, attached in the resource's task while the teardown runs.

Span times are the Trio clock (`trio.current_time()`, the clock `StepTiming` uses) placed
on the wall clock once per run (`Clock.for_run`): spans agree exactly with the `RunResult`
(a step span starts when `step_started` is called, before `on_step_start` and the
instruments listed after this one; the `StepTiming` when the action starts), and under a
mock clock they show virtual time.
"""

from __future__ import annotations

import math
import traceback
import uuid
from typing import TYPE_CHECKING, Final

import trio
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Link, SpanKind, Status, StatusCode

import exegraph_trio

from . import _attributes as attr
from ._run_spans import Clock, Failure, Running, RunSpans, abandon

if TYPE_CHECKING:
    from opentelemetry.trace import Span, SpanContext, TracerProvider
    from opentelemetry.util.types import Attributes

    from exegraph_trio import RunInfo, RunResult, Step, StepTiming

__all__ = ["Tracing"]

_DEPENDS_ON_LINK: Final[Attributes] = {attr.EXEGRAPH_LINK_TYPE: attr.LINK_DEPENDS_ON}
_FAILED_DEPENDENCY_LINK: Final[Attributes] = {attr.EXEGRAPH_LINK_TYPE: attr.LINK_FAILED_DEPENDENCY}
_STOPPED_BY_LINK: Final[Attributes] = {attr.EXEGRAPH_LINK_TYPE: attr.LINK_STOPPED_BY}
_TEARDOWN_OF_LINK: Final[Attributes] = {attr.EXEGRAPH_LINK_TYPE: attr.LINK_TEARDOWN_OF}


class Tracing:
    """Turns one instrument's calls into spans; per-run state is keyed by `RunInfo`.

    Every method may raise if the tracer does: the caller
    ([`OtelInstrument`][exegraph_otel.OtelInstrument]) catches it and calls `forget`.
    """

    def __init__(
        self,
        tracer_provider: TracerProvider | None,
        pipeline_name: str,
        *,
        record_exceptions: bool,
    ) -> None:
        self._tracer = trace.get_tracer(
            attr.SCOPE_NAME,
            exegraph_trio.__version__,
            tracer_provider,
            schema_url=attr.SCHEMA_URL,
        )
        self._pipeline_name = pipeline_name
        self._record_exceptions = record_exceptions
        self._runs: dict[RunInfo, RunSpans] = {}

    def forget(self, run: RunInfo) -> None:
        """Stop tracing `run` after an error: end the spans it has open, make no more.

        The running steps' spans and the run span are ended now, each on its own guard
        (a tracer that failed once may fail again). The contexts they were made current
        in stay so until that step or the run ends: a context is restored only from
        within itself, which `step_done` and `run_done` still do.
        """
        state = self._runs.get(run)
        if state is not None:
            abandon(state)

    # -- the run -------------------------------------------------------------------------------

    def run_started(self, run: RunInfo) -> None:
        clock = Clock.for_run()
        options = run.options
        run_id = uuid.uuid4().hex  # (`RunInfo.run_id` is unique within the process only)
        span = self._tracer.start_span(
            f"{attr.ACTION_RUN} {self._pipeline_name}",
            kind=SpanKind.SERVER,  # (the conventions' kind for a pipeline run)
            attributes={
                attr.CICD_PIPELINE_NAME: self._pipeline_name,
                attr.CICD_PIPELINE_ACTION_NAME: attr.ACTION_RUN,
                attr.CICD_PIPELINE_RUN_ID: run_id,
                attr.EXEGRAPH_RUN_ID: run.run_id,
                attr.EXEGRAPH_RUN_ERROR_POLICY: str(options.error_policy),
                attr.EXEGRAPH_RUN_MAX_CONCURRENCY: options.concurrency_limit,
                attr.EXEGRAPH_GRAPH_STEPS: len(run.graph),
            },
            start_time=clock.now(),
            record_exception=False,
            set_status_on_exception=False,
        )
        parent = trace.set_span_in_context(span)
        state = RunSpans(span, parent, clock, run_id)
        self._runs[run] = state
        # We are in the run's own context: every step context is copied from it later.
        state.token = otel_context.attach(parent)

    def run_done(self, run: RunInfo, result: RunResult) -> None:
        state = self._runs.pop(run, None)
        if state is None:
            return
        try:
            if not state.forgotten:
                try:
                    self._end_run(state, result)
                except BaseException:
                    abandon(state)
                    raise
        finally:
            if state.token is not None:
                otel_context.detach(state.token)

    @staticmethod
    def _end_run(state: RunSpans, result: RunResult) -> None:
        end = state.clock.now()
        for entry in (*state.running.values(), *state.teardowns.values()):  # pragma: no cover
            # The engine always calls step_done and teardown_done first; should it not,
            # end the spans rather than lose them (the tokens belong to the step's context).
            for span in entry.open_spans():
                span.end(end_time=end)
        span = state.span
        if span.is_recording():
            outcome, error = attr.run_result(result)
            span.set_attribute(attr.CICD_PIPELINE_RESULT, outcome)
            if error is not None:
                span.set_attribute(attr.ERROR_TYPE, attr.error_type(error))
                span.set_status(Status(StatusCode.ERROR, _describe(error)))
        try:
            span.end(end_time=end)
        except BaseException:
            # Ended (its processor raised), or as ended as it will be: `abandon` must not
            # end it again (the SDK would warn of a span ended twice).
            state.forgotten = True
            raise

    # -- steps ---------------------------------------------------------------------------------

    def step_started(self, run: RunInfo, step: Step) -> None:
        state = self._runs.get(run)
        if state is None or state.forgotten:
            return
        links = [Link(context, _DEPENDS_ON_LINK) for context in _dependencies(state, step)]
        span = self._tracer.start_span(
            step.name,
            context=state.parent,
            kind=SpanKind.INTERNAL,
            attributes=self._step_attributes(run, state, step),
            links=links,
            start_time=state.clock.now(),
            record_exception=False,
            set_status_on_exception=False,
        )
        entry = state.running[step.name] = Running(span)  # from here on, `forget` ends it
        if span.is_recording():
            span.set_attributes(_step_details(run, step))
        # We are in the step's own context, the one its action runs in.
        entry.token = otel_context.attach(trace.set_span_in_context(span))
        retry = run.options.retry if step.retry is None else step.retry
        if retry is not None and retry.attempts > 1:
            self._start_attempt(run, step, state, entry, 1)

    def attempt_started(self, run: RunInfo, step: Step, attempt: int) -> None:
        state = self._runs.get(run)
        if state is None or state.forgotten:
            return
        entry = state.running.get(step.name)
        if entry is not None and entry.attempt is None:
            self._start_attempt(run, step, state, entry, attempt)

    def _start_attempt(
        self, run: RunInfo, step: Step, state: RunSpans, entry: Running, attempt: int
    ) -> None:
        """Start the span of attempt number `attempt`, a child of the step span, and attach it."""
        attributes = self._step_attributes(run, state, step)
        attributes[attr.EXEGRAPH_STEP_ATTEMPT] = attempt
        span = self._tracer.start_span(
            f"attempt {attempt}",
            context=trace.set_span_in_context(entry.span),
            kind=SpanKind.INTERNAL,
            attributes=attributes,
            start_time=state.clock.now(),
            record_exception=False,
            set_status_on_exception=False,
        )
        entry.attempt = span  # from here on, `forget` ends it
        # Still in the step's own context: the action's spans nest under the attempt.
        entry.attempt_token = otel_context.attach(trace.set_span_in_context(span))

    def step_retrying(
        self, run: RunInfo, step: Step, attempt: int, error: BaseException, delay: float
    ) -> None:
        state = self._runs.get(run)
        if state is None:
            return
        entry = state.running.get(step.name)
        if entry is None:
            return
        try:
            if state.forgotten:  # `forget` ended the spans: only restore the context
                return
            now = state.clock.now()
            span = entry.attempt
            if span is not None:
                if span.is_recording():
                    result = attr.attempt_result(error)
                    _settle(span, {attr.CICD_PIPELINE_TASK_RUN_RESULT: result}, error)
                    if self._record_exceptions:
                        _record_exception(span, error, now)
                entry.attempt = None  # from here on, ending it is up to us alone
                span.end(end_time=now)
            if entry.span.is_recording():
                entry.span.add_event(
                    attr.EVENT_RETRY,
                    {
                        attr.EXEGRAPH_STEP_ATTEMPT: attempt,
                        attr.EXEGRAPH_RETRY_DELAY: delay,
                        attr.ERROR_TYPE: attr.error_type(error),
                        attr.EXCEPTION_MESSAGE: _describe(error),
                    },
                    timestamp=now,
                )
        finally:
            entry.detach_attempt()

    def step_done(self, run: RunInfo, step: Step, timing: StepTiming) -> None:
        state = self._runs.get(run)
        if state is None:
            return
        entry = state.running.get(step.name)
        if entry is None:
            return
        try:
            if state.forgotten:  # `forget` ended the spans: only restore the context
                del state.running[step.name]
                return
            span = entry.span
            end = state.clock.ns(timing.end if timing.end is not None else trio.current_time())
            outcome = attr.step_result(timing)
            failed = outcome in (attr.RESULT_FAILURE, attr.RESULT_TIMEOUT)
            error = timing.error if failed else None  # not for a cancelled step
            attempt = entry.attempt
            if attempt is not None:  # the last attempt ends as the step does
                if attempt.is_recording():
                    _settle(attempt, {attr.CICD_PIPELINE_TASK_RUN_RESULT: outcome}, error)
                entry.attempt = None  # from here on, ending it is up to us alone
                attempt.end(end_time=end)
            if span.is_recording():
                closing: dict[str, str | int | float] = {
                    attr.CICD_PIPELINE_TASK_RUN_RESULT: outcome,
                    attr.EXEGRAPH_STEP_ATTEMPTS: timing.attempts,
                }
                if timing.ready is not None and timing.start is not None:
                    closing[attr.EXEGRAPH_STEP_SLOT_WAIT] = timing.start - timing.ready
                _settle(span, closing, error)
                if error is not None and self._record_exceptions:
                    # At the span's end, not "now": the wall clock runs on from the
                    # anchor, so "now" would land after the end of a Trio-timed span.
                    _record_exception(span, error, end)
            del state.running[step.name]  # from here on, ending it is up to us alone
            span.end(end_time=end)
            span_context = span.get_span_context()
            valid = span_context if span_context.is_valid else None
            if valid is not None:
                state.contexts[step.name] = valid
            if error is not None and state.first_failure is None:
                state.first_failure = Failure(step.name, error, valid)
            if state.first_interrupt is None and not isinstance(error, Exception | None):
                state.first_interrupt = Failure(step.name, error, valid)
        finally:
            entry.detach()

    def step_skipped(self, run: RunInfo, step: Step, timing: StepTiming) -> None:
        state = self._runs.get(run)
        if state is None or state.forgotten:
            return
        links = [Link(context, _DEPENDS_ON_LINK) for context in _dependencies(state, step)]
        attributes: dict[str, str | int] = dict(self._step_attributes(run, state, step))
        attributes[attr.CICD_PIPELINE_TASK_RUN_RESULT] = attr.RESULT_SKIP
        attributes[attr.EXEGRAPH_STEP_ATTEMPTS] = timing.attempts
        names: dict[str, str] = {}  # which steps caused the skip, for recorded spans
        error = timing.error
        if error is None:  # a quiet skip: a ONE_FAILED step with nothing failed upstream
            attributes[attr.EXEGRAPH_STEP_SKIP_REASON] = attr.SKIP_REASON_TRIGGER_RULE
        elif isinstance(error, exegraph_trio.StepSkippedError):
            failed = error.failed_dependency
            if failed is not None:
                attributes[attr.EXEGRAPH_STEP_SKIP_REASON] = attr.SKIP_REASON_FAILED_DEPENDENCY
                names[attr.EXEGRAPH_STEP_FAILED_DEPENDENCY] = failed
                if failed in state.contexts:
                    links.append(Link(state.contexts[failed], _FAILED_DEPENDENCY_LINK))
            else:
                stopper = _stopped_by(state, run)
                if stopper is None:
                    attributes[attr.EXEGRAPH_STEP_SKIP_REASON] = attr.SKIP_REASON_CANCELLED
                else:
                    reason = (
                        attr.SKIP_REASON_FAIL_FAST
                        if isinstance(stopper.error, Exception)
                        else attr.SKIP_REASON_INTERRUPTED
                    )
                    attributes[attr.EXEGRAPH_STEP_SKIP_REASON] = reason
                    names[attr.EXEGRAPH_STEP_STOPPED_BY] = stopper.name
                    if stopper.context is not None:
                        links.append(Link(stopper.context, _STOPPED_BY_LINK))
        now = state.clock.now()
        span = self._tracer.start_span(
            step.name,
            context=state.parent,
            kind=SpanKind.INTERNAL,
            attributes=attributes,
            links=links,
            start_time=now,
            record_exception=False,
            set_status_on_exception=False,
        )
        try:
            if span.is_recording():
                span.set_attributes({**_step_details(run, step), **names})
        finally:
            span.end(end_time=now)
        span_context = span.get_span_context()
        if span_context.is_valid:
            state.contexts[step.name] = span_context

    # -- teardowns -----------------------------------------------------------------------------

    def teardown_started(self, run: RunInfo, step: Step) -> None:
        state = self._runs.get(run)
        if state is None or state.forgotten:
            return
        setup = state.contexts.get(step.name)
        span = self._tracer.start_span(
            f"teardown {step.name}",
            context=state.parent,
            kind=SpanKind.INTERNAL,
            attributes=self._step_attributes(run, state, step),
            links=[] if setup is None else [Link(setup, _TEARDOWN_OF_LINK)],
            start_time=state.clock.now(),
            record_exception=False,
            set_status_on_exception=False,
        )
        entry = state.teardowns[step.name] = Running(span)  # from here on, `forget` ends it
        # We are in the resource's task and context, where its teardown runs.
        entry.token = otel_context.attach(trace.set_span_in_context(span))

    def teardown_done(self, run: RunInfo, step: Step, error: BaseException | None) -> None:
        state = self._runs.get(run)
        if state is None:
            return
        entry = state.teardowns.get(step.name)
        if entry is None:
            return
        try:
            if state.forgotten:  # `forget` ended the span: only restore the context
                del state.teardowns[step.name]
                return
            span = entry.span
            end = state.clock.now()
            if error is not None and span.is_recording():
                _settle(span, {}, error)
                if self._record_exceptions:
                    _record_exception(span, error, end)
            del state.teardowns[step.name]  # from here on, ending it is up to us alone
            span.end(end_time=end)
        finally:
            entry.detach()

    def _step_attributes(self, run: RunInfo, state: RunSpans, step: Step) -> dict[str, str | int]:
        """The cheap, sampling-relevant attributes, given when the span starts."""
        return {
            attr.CICD_PIPELINE_NAME: self._pipeline_name,
            attr.CICD_PIPELINE_TASK_NAME: step.name,
            attr.CICD_PIPELINE_TASK_RUN_ID: f"{state.run_id}/{step.name}",
            attr.EXEGRAPH_RUN_ID: run.run_id,
        }


def _step_details(run: RunInfo, step: Step) -> dict[str, str | int | float | tuple[str, ...]]:
    """The attributes worth computing only for a recorded span (priority costs a graph pass)."""
    details: dict[str, str | int | float | tuple[str, ...]] = {
        attr.EXEGRAPH_STEP_PRIORITY: run.graph.priority(step.name),
    }
    if step.tags:
        details[attr.EXEGRAPH_STEP_TAGS] = step.tags
    if step.depends_on:
        details[attr.EXEGRAPH_STEP_DEPENDS_ON] = step.depends_on
    if step.pools:
        details[attr.EXEGRAPH_STEP_POOLS] = tuple(
            f"{pool}:{slots}" for pool, slots in step.pools.items()
        )
    timeout = run.options.step_timeout if step.timeout is None else step.timeout
    if timeout and timeout != math.inf:
        details[attr.EXEGRAPH_STEP_TIMEOUT] = timeout
    details[attr.EXEGRAPH_STEP_TRIGGER_RULE] = str(step.trigger_rule)
    return details


def _settle(
    span: Span, attributes: dict[str, str | int | float], error: BaseException | None
) -> None:
    """Set a recorded span's closing `attributes` and, if `error`, `error.type` and status."""
    if error is not None:
        attributes[attr.ERROR_TYPE] = attr.error_type(error)
    if attributes:
        span.set_attributes(attributes)
    if error is not None:
        span.set_status(Status(StatusCode.ERROR, _describe(error)))


def _dependencies(state: RunSpans, step: Step) -> list[SpanContext]:
    """The span contexts of `step`'s dependencies that have a span, in `depends_on` order.

    A started step's dependencies have all ended; a skipped step's may be skipped too, or
    still running (cancelled by fail-fast, and not ended yet).
    """
    found = []
    for name in step.depends_on:
        context = state.contexts.get(name)
        if context is None and name in state.running:
            running = state.running[name].span.get_span_context()
            context = running if running.is_valid else None
        if context is not None:
            found.append(context)
    return found


def _stopped_by(state: RunSpans, run: RunInfo) -> Failure | None:
    """The failed step that stopped the run, when a step skipped with no cause tells of one.

    An interrupt (`KeyboardInterrupt`, ...) stops any run; an ordinary failure stops a
    `FAIL_FAST` run only (the first failure, whichever kind, stopped it): under
    `CONTINUE_ON_ERROR` the first interrupt did, after any number of failures, and
    without one such a skip means the run was cancelled from outside.
    """
    if run.options.error_policy is exegraph_trio.ErrorPolicy.FAIL_FAST:
        return state.first_failure
    return state.first_interrupt


def _describe(error: BaseException) -> str:
    """A span status description: the exception's message, or its type if it has none."""
    if isinstance(error, BaseExceptionGroup):  # a RunError: without "(3 sub-exceptions)"
        return error.message
    return _message(error) or attr.error_type(error)


def _message(error: BaseException) -> str:
    """`str(error)`, or what `traceback` shows when that raises (a broken `__str__`)."""
    try:
        return str(error)
    except Exception:  # noqa: BLE001 - the exception's own bug must not stop the tracing
        return "<exception str() failed>"


def _record_exception(span: Span, error: BaseException, timestamp: int) -> None:
    """`span.record_exception(error)`, also when `str(error)` raises.

    The SDK's `record_exception` reads `str(error)`: for an exception whose `__str__`
    raises, the same `exception` event is made here, with `traceback`'s stand-in message.
    """
    try:
        span.record_exception(error, timestamp=timestamp)
    except Exception:  # noqa: BLE001 - see above
        attributes = {
            attr.EXCEPTION_TYPE: attr.error_type(error),
            attr.EXCEPTION_MESSAGE: _message(error),
            attr.EXCEPTION_STACKTRACE: "".join(traceback.format_exception(error)),
        }
        span.add_event(attr.EVENT_EXCEPTION, attributes, timestamp=timestamp)
