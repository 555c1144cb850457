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


class _RunSpans:
    """The spans of one run: its own, the running steps', and the ended steps' contexts."""

    __slots__ = ("clock", "parent", "running", "span", "step_ends", "token")

    def __init__(
        self, span: Span, parent: Context, token: Token[Context] | None, clock: _Clock
    ) -> None:
        self.span = span
        self.parent = parent  # a context whose current span is the run span
        self.token = token
        self.clock = clock
        self.running: dict[str, tuple[Span, Token[Context]]] = {}
        self.step_ends: dict[str, SpanContext] = {}  # for links from dependents


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
        """Stop tracing `run` (after an error): drop its state, make no more spans."""
        self._runs.pop(run, None)

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
        state = _RunSpans(span, parent, None, clock)
        self._runs[run] = state
        # We are in the run's own context: every step context is copied from it later.
        state.token = otel_context.attach(parent)

    def run_done(self, run: RunInfo, result: RunResult) -> None:
        state = self._runs.pop(run, None)
        if state is None:
            return
        try:
            end = state.clock.now()
            for step_span, _ in state.running.values():  # pragma: no cover - defensive
                # The engine always calls step_done first; should it not, end the span
                # rather than lose it (its token belongs to the step's own context).
                step_span.end(end_time=end)
            span = state.span
            if span.is_recording():
                outcome, error = attr.run_result(result)
                span.set_attribute(attr.CICD_PIPELINE_RESULT, outcome)
                if error is not None:
                    span.set_attribute(attr.ERROR_TYPE, attr.error_type(error))
                    span.set_status(Status(StatusCode.ERROR, _describe(error)))
            span.end(end_time=end)
        finally:
            if state.token is not None:
                otel_context.detach(state.token)

    # -- steps ---------------------------------------------------------------------------------

    def step_started(self, run: RunInfo, step: Step) -> None:
        state = self._runs.get(run)
        if state is None:
            return
        ends = state.step_ends
        links = [Link(ends[dep], _DEPENDS_ON_LINK) for dep in step.depends_on if dep in ends]
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
        if span.is_recording():
            span.set_attributes(_step_details(run, step))
        # We are in the step's own context, the one its action runs in.
        token = otel_context.attach(trace.set_span_in_context(span))
        state.running[step.name] = (span, token)

    def step_done(self, run: RunInfo, step: Step, timing: StepTiming) -> None:
        state = self._runs.get(run)
        if state is None:
            return
        entry = state.running.pop(step.name, None)
        if entry is None:
            return
        span, token = entry
        try:
            if span.is_recording():
                outcome = attr.step_result(timing)
                span.set_attribute(attr.CICD_PIPELINE_TASK_RUN_RESULT, outcome)
                error = timing.error
                if error is not None and outcome in (attr.RESULT_FAILURE, attr.RESULT_TIMEOUT):
                    span.set_attribute(attr.ERROR_TYPE, attr.error_type(error))
                    span.set_status(Status(StatusCode.ERROR, _describe(error)))
                    if self._record_exceptions:
                        span.record_exception(error)
            end = timing.end if timing.end is not None else trio.current_time()
            span.end(end_time=state.clock.ns(end))
            span_context = span.get_span_context()
            if span_context.is_valid:
                state.step_ends[step.name] = span_context
        finally:
            otel_context.detach(token)

    def step_skipped(self, run: RunInfo, step: Step, timing: StepTiming) -> None:
        state = self._runs.get(run)
        if state is None:
            return
        error = timing.error
        failed = getattr(error, "failed_dependency", None)
        links = []
        if isinstance(failed, str) and failed in state.step_ends:
            links.append(Link(state.step_ends[failed], _FAILED_DEPENDENCY_LINK))
        attributes = dict(self._step_attributes(run, step))
        attributes[attr.CICD_PIPELINE_TASK_RUN_RESULT] = attr.RESULT_SKIP
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
        if span.is_recording():
            span.set_attributes(_step_details(run, step))
            if isinstance(failed, str):
                span.set_attribute(attr.EXEGRAPH_STEP_FAILED_DEPENDENCY, failed)
        span.end(end_time=now)

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


def _describe(error: BaseException) -> str:
    """A span status description: the exception's message, or its type if it has none."""
    if isinstance(error, BaseExceptionGroup):  # a RunError: without "(3 sub-exceptions)"
        return error.message
    return str(error) or attr.error_type(error)
