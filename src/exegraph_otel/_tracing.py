"""Spans: one trace per run, one span per step, nested where the code runs.

The run span is started in `run_started` as a child of the caller's current span and
attached (made current) in the run's own context, which every step's context is then
copied from. Each step span is started in `step_started` as a child of the run span and
attached in the step's own context, so spans the action makes — in its own task or in
tasks it spawns — nest under it; `step_done` detaches it in that same context and ends
it. Contexts are restored by the very `Context` object that attached them, so OpenTelemetry
never logs "Failed to detach context", whatever the outcome (cancelled and timed-out
steps included).

Span times are the Trio clock (`trio.current_time()`, the clock `StepTiming` uses) placed
on the wall clock once per run: spans agree exactly with the `RunResult`, and under a mock
clock they show virtual time.
"""

from __future__ import annotations

import contextlib
import math
import time
from typing import TYPE_CHECKING, Final

import trio
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Link, SpanKind, Status, StatusCode

import exegraph_trio

from . import _attributes as attr

if TYPE_CHECKING:
    from contextvars import Token

    from opentelemetry.context import Context
    from opentelemetry.trace import Span, SpanContext, TracerProvider
    from opentelemetry.util.types import Attributes

    from exegraph_trio import RunInfo, RunResult, Step, StepTiming

__all__ = ["Tracing"]

_DEPENDS_ON_LINK: Final[Attributes] = {attr.EXEGRAPH_LINK_TYPE: attr.LINK_DEPENDS_ON}
_FAILED_DEPENDENCY_LINK: Final[Attributes] = {attr.EXEGRAPH_LINK_TYPE: attr.LINK_FAILED_DEPENDENCY}
_STOPPED_BY_LINK: Final[Attributes] = {attr.EXEGRAPH_LINK_TYPE: attr.LINK_STOPPED_BY}


class _Clock:
    """Maps Trio clock readings onto wall-clock nanoseconds, anchored at one instant."""

    __slots__ = ("trio_origin", "wall_origin")

    def __init__(self) -> None:
        # Wall clock first: if anything, spans are placed a microsecond early, so that
        # spans made in a step (stamped by the SDK with the wall clock) start inside it.
        self.wall_origin = time.time_ns()
        self.trio_origin = trio.current_time()

    def ns(self, trio_time: float) -> int:
        return self.wall_origin + round((trio_time - self.trio_origin) * 1e9)

    def now(self) -> int:
        return self.ns(trio.current_time())


class _Running:
    """A running step's span, and the token that made it current in the step's context."""

    __slots__ = ("span", "token")

    def __init__(self, span: Span) -> None:
        self.span = span
        self.token: Token[Context] | None = None


class _Failure:
    """The first failed step of a run: what a step skipped by fail-fast links to."""

    __slots__ = ("context", "error", "name")

    def __init__(self, name: str, error: BaseException, context: SpanContext | None) -> None:
        self.name = name
        self.error = error
        self.context = context


class _RunSpans:
    """The spans of one run: its own, the running steps', and the settled steps' contexts."""

    __slots__ = (
        "clock",
        "contexts",
        "first_failure",
        "forgotten",
        "parent",
        "running",
        "span",
        "token",
    )

    def __init__(self, span: Span, parent: Context, clock: _Clock) -> None:
        self.span = span
        self.parent = parent  # a context whose current span is the run span
        self.token: Token[Context] | None = None
        self.clock = clock
        self.running: dict[str, _Running] = {}
        # The span contexts of ended and skipped steps, for links from dependents.
        self.contexts: dict[str, SpanContext] = {}
        self.first_failure: _Failure | None = None
        self.forgotten = False  # the tracer failed: end nothing more, only restore contexts


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
        self._runs: dict[RunInfo, _RunSpans] = {}

    def forget(self, run: RunInfo) -> None:
        """Stop tracing `run` after an error: end the spans it has open, make no more.

        The running steps' spans and the run span are ended now, each on its own guard
        (a tracer that failed once may fail again). The contexts they were made current
        in stay so until that step or the run ends: a context is restored only from
        within itself, which `step_done` and `run_done` still do.
        """
        state = self._runs.get(run)
        if state is not None:
            _abandon(state)

    # -- the run -------------------------------------------------------------------------------

    def run_started(self, run: RunInfo) -> None:
        clock = _Clock()
        options = run.options
        span = self._tracer.start_span(
            f"{attr.ACTION_RUN} {self._pipeline_name}",
            kind=SpanKind.INTERNAL,
            attributes={
                attr.CICD_PIPELINE_NAME: self._pipeline_name,
                attr.CICD_PIPELINE_ACTION_NAME: attr.ACTION_RUN,
                attr.CICD_PIPELINE_RUN_ID: str(run.run_id),
                attr.EXEGRAPH_RUN_ID: run.run_id,
                attr.EXEGRAPH_RUN_ERROR_POLICY: str(options.error_policy),
                attr.EXEGRAPH_RUN_MAX_CONCURRENCY: options.concurrency_limit,
                attr.EXEGRAPH_GRAPH_STEPS: len(run.graph),
            },
            start_time=clock.wall_origin,
            record_exception=False,
            set_status_on_exception=False,
        )
        parent = trace.set_span_in_context(span)
        state = _RunSpans(span, parent, clock)
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
                    _abandon(state)
                    raise
        finally:
            if state.token is not None:
                otel_context.detach(state.token)

    @staticmethod
    def _end_run(state: _RunSpans, result: RunResult) -> None:
        end = state.clock.now()
        for entry in state.running.values():  # pragma: no cover - defensive
            # The engine always calls step_done first; should it not, end the span
            # rather than lose it (its token belongs to the step's own context).
            entry.span.end(end_time=end)
        span = state.span
        if span.is_recording():
            outcome, error = attr.run_result(result)
            span.set_attribute(attr.CICD_PIPELINE_RESULT, outcome)
            if error is not None:
                span.set_attribute(attr.ERROR_TYPE, attr.error_type(error))
                span.set_status(Status(StatusCode.ERROR, _describe(error)))
        span.end(end_time=end)

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
            attributes=self._step_attributes(run, step),
            links=links,
            start_time=state.clock.now(),
            record_exception=False,
            set_status_on_exception=False,
        )
        entry = state.running[step.name] = _Running(span)  # from here on, `forget` ends it
        if span.is_recording():
            span.set_attributes(_step_details(run, step))
        # We are in the step's own context, the one its action runs in.
        entry.token = otel_context.attach(trace.set_span_in_context(span))

    def step_done(self, run: RunInfo, step: Step, timing: StepTiming) -> None:
        state = self._runs.get(run)
        if state is None:
            return
        entry = state.running.get(step.name)
        if entry is None:
            return
        try:
            if state.forgotten:  # `forget` ended the span: only restore the context
                del state.running[step.name]
                return
            span = entry.span
            end = state.clock.ns(timing.end if timing.end is not None else trio.current_time())
            outcome = attr.step_result(timing)
            error = timing.error
            failed = error is not None and outcome in (attr.RESULT_FAILURE, attr.RESULT_TIMEOUT)
            if span.is_recording():
                span.set_attribute(attr.CICD_PIPELINE_TASK_RUN_RESULT, outcome)
                if failed:
                    assert error is not None
                    span.set_attribute(attr.ERROR_TYPE, attr.error_type(error))
                    span.set_status(Status(StatusCode.ERROR, _describe(error)))
                    if self._record_exceptions:
                        # At the span's end, not "now": the wall clock runs on from the
                        # anchor, so "now" would land after the end of a Trio-timed span.
                        span.record_exception(error, timestamp=end)
            del state.running[step.name]  # from here on, ending it is up to us alone
            span.end(end_time=end)
            span_context = span.get_span_context()
            valid = span_context if span_context.is_valid else None
            if valid is not None:
                state.contexts[step.name] = valid
            if failed and state.first_failure is None:
                assert error is not None
                state.first_failure = _Failure(step.name, error, valid)
        finally:
            if entry.token is not None:
                otel_context.detach(entry.token)
                entry.token = None

    def step_skipped(self, run: RunInfo, step: Step, timing: StepTiming) -> None:
        state = self._runs.get(run)
        if state is None or state.forgotten:
            return
        links = [Link(context, _DEPENDS_ON_LINK) for context in _dependencies(state, step)]
        attributes: dict[str, str | int] = dict(self._step_attributes(run, step))
        attributes[attr.CICD_PIPELINE_TASK_RUN_RESULT] = attr.RESULT_SKIP
        names: dict[str, str] = {}  # which steps caused the skip, for recorded spans
        error = timing.error
        if isinstance(error, exegraph_trio.StepSkippedError):
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

    def _step_attributes(self, run: RunInfo, step: Step) -> dict[str, str | int]:
        """The cheap, sampling-relevant attributes, given when the span starts."""
        return {
            attr.CICD_PIPELINE_NAME: self._pipeline_name,
            attr.CICD_PIPELINE_TASK_NAME: step.name,
            attr.CICD_PIPELINE_TASK_RUN_ID: f"{run.run_id}/{step.name}",
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
    timeout = run.options.step_timeout if step.timeout is None else step.timeout
    if timeout and timeout != math.inf:
        details[attr.EXEGRAPH_STEP_TIMEOUT] = timeout
    return details


def _dependencies(state: _RunSpans, step: Step) -> list[SpanContext]:
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


def _stopped_by(state: _RunSpans, run: RunInfo) -> _Failure | None:
    """The failed step that stopped the run, when a step skipped with no cause tells of one.

    An interrupt (`KeyboardInterrupt`, ...) stops any run; an ordinary failure stops a
    `FAIL_FAST` run only: under `CONTINUE_ON_ERROR` such a skip means the run was
    cancelled from outside.
    """
    failure = state.first_failure
    if failure is None:
        return None
    if isinstance(failure.error, Exception) and (
        run.options.error_policy is not exegraph_trio.ErrorPolicy.FAIL_FAST
    ):
        return None
    return failure


def _abandon(state: _RunSpans) -> None:
    """End every span `state` still has open, each guarded; make it trace nothing more."""
    if state.forgotten:
        return
    state.forgotten = True
    state.contexts.clear()
    state.first_failure = None
    end: int | None
    try:
        end = state.clock.now()
    except Exception:  # noqa: BLE001 - outside Trio: let the tracer take the time
        end = None
    for entry in state.running.values():
        with contextlib.suppress(Exception):
            entry.span.end(end_time=end)
    with contextlib.suppress(Exception):
        state.span.end(end_time=end)


def _describe(error: BaseException) -> str:
    """A span status description: the exception's message, or its type if it has none."""
    if isinstance(error, BaseExceptionGroup):  # a RunError: without "(3 sub-exceptions)"
        return error.message
    return str(error) or attr.error_type(error)
