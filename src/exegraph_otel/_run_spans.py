"""The tracing state of one run: its clock, its open spans, the tokens that made them current.

`Tracing` (in `_tracing.py`) keeps one `RunSpans` per run it traces, keyed by `RunInfo`,
and drops it at `run_done`. This is bookkeeping only: `Tracing` starts the spans and gives
them their attributes; `abandon` ends whatever is still open when the tracer fails.
"""

from __future__ import annotations

import contextlib
import time
from typing import TYPE_CHECKING

import trio
from opentelemetry import context as otel_context

if TYPE_CHECKING:
    from contextvars import Token

    from opentelemetry.context import Context
    from opentelemetry.trace import Span, SpanContext

__all__ = ["Clock", "Failure", "RunSpans", "Running", "abandon"]


class Clock:
    """Maps Trio clock readings onto wall-clock nanoseconds, anchored at one instant."""

    __slots__ = ("trio_origin", "wall_origin")

    def __init__(self) -> None:
        # Wall clock first: if anything, spans are placed a microsecond early, so that
        # spans made in a step (stamped by the SDK with the wall clock) start inside it.
        self.wall_origin = time.time_ns()
        self.trio_origin = trio.current_time()

    @classmethod
    def for_run(cls) -> Clock:
        """The clock of a run starting now.

        Under Trio's own clock, anchored now: a long-lived process whose wall clock drifts
        from the monotonic one (NTP) places each run right. Under another clock (a
        `MockClock`: virtual time), every run of this `trio.run` shares the first one's
        anchor, so that a run nested in a step, anchored seconds of virtual time later
        while no wall-clock time passed, is still placed inside that step.
        """
        running = trio.lowlevel.current_clock()
        kind = type(running)
        if kind.__name__ == "SystemClock" and kind.__module__.startswith("trio."):
            return cls()
        shared = _SHARED.get()
        if shared is None:
            shared = cls()
            _SHARED.set(shared)
        return shared

    def ns(self, trio_time: float) -> int:
        return self.wall_origin + round((trio_time - self.trio_origin) * 1e9)

    def now(self) -> int:
        return self.ns(trio.current_time())


_SHARED: trio.lowlevel.RunVar[Clock | None] = trio.lowlevel.RunVar(
    "exegraph_otel_clock", default=None
)
"""The anchor every run of one `trio.run` shares under a clock other than Trio's own."""


class Running:
    """A running step's span (or a teardown's), and the token that made it current.

    `attempt` is the span of the attempt in progress of a step that may be retried,
    attached over the step span by `attempt_token`. Both tokens belong to the step's own
    context and are detached only there, innermost first.
    """

    __slots__ = ("attempt", "attempt_token", "span", "token")

    def __init__(self, span: Span) -> None:
        self.span = span
        self.token: Token[Context] | None = None
        self.attempt: Span | None = None
        self.attempt_token: Token[Context] | None = None

    def detach_attempt(self) -> None:
        """Make the step span current again (the attempt span no longer is)."""
        token, self.attempt_token = self.attempt_token, None
        if token is not None:
            otel_context.detach(token)

    def detach(self) -> None:
        """Restore the context as it was before the step (or teardown) span was attached."""
        self.detach_attempt()
        token, self.token = self.token, None
        if token is not None:
            otel_context.detach(token)

    def open_spans(self) -> list[Span]:
        """The spans of this entry not ended yet, innermost first."""
        return [self.span] if self.attempt is None else [self.attempt, self.span]


class Failure:
    """The first failed step of a run: what a step skipped by fail-fast links to."""

    __slots__ = ("context", "error", "name")

    def __init__(self, name: str, error: BaseException, context: SpanContext | None) -> None:
        self.name = name
        self.error = error
        self.context = context


class RunSpans:
    """The spans of one run: its own, the running steps', and the settled steps' contexts."""

    __slots__ = (
        "clock",
        "contexts",
        "first_failure",
        "first_interrupt",
        "forgotten",
        "parent",
        "run_id",
        "running",
        "span",
        "teardowns",
        "token",
    )

    def __init__(self, span: Span, parent: Context, clock: Clock, run_id: str) -> None:
        self.span = span
        self.run_id = run_id  # `cicd.pipeline.run.id`: unique beyond the process
        self.parent = parent  # a context whose current span is the run span
        self.token: Token[Context] | None = None
        self.clock = clock
        self.running: dict[str, Running] = {}
        self.teardowns: dict[str, Running] = {}  # the teardowns under way, by step name
        # The span contexts of ended and skipped steps, for links from dependents.
        self.contexts: dict[str, SpanContext] = {}
        self.first_failure: Failure | None = None
        # (the first step that raised `KeyboardInterrupt` or the like: it stops any run)
        self.first_interrupt: Failure | None = None
        self.forgotten = False  # the tracer failed: end nothing more, only restore contexts


def abandon(state: RunSpans) -> None:
    """End every span `state` still has open, each guarded; make it trace nothing more."""
    if state.forgotten:
        return
    state.forgotten = True
    state.contexts.clear()
    state.first_failure = state.first_interrupt = None
    end: int | None
    try:
        end = state.clock.now()
    except Exception:  # noqa: BLE001 - outside Trio: let the tracer take the time
        end = None
    for entry in (*state.running.values(), *state.teardowns.values()):
        for span in entry.open_spans():
            with contextlib.suppress(Exception):
                span.end(end_time=end)
    with contextlib.suppress(Exception):
        state.span.end(end_time=end)
