"""Retries, trigger rules and resource steps in traces and metrics.

Charter: an SDK `TracerProvider` with an `InMemorySpanExporter` (and an SDK `MeterProvider`
with an `InMemoryMetricReader`) is injected into each instrument; the global providers are
never touched. Real graphs run under the autojump clock, so every span time is asserted
exactly. Each test asserts the whole tree it is about: names, parents, times, results,
status, links, attributes and events. No test may leave an OpenTelemetry complaint
(see `conftest.py`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio
from opentelemetry import trace
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

import exegraph_otel
import exegraph_trio as exegraph
from exegraph_trio import Graph, Retry, RunOptions, TriggerRule

from .helpers import RUN, flaky, key, links, metric_points, outline, resource, step, timeline

DEPENDS = "depends_on"
TEARDOWN_OF = "teardown_of"


def options(instrument: exegraph_otel.OtelInstrument, **kwargs: Any) -> RunOptions:
    return exegraph_otel.traced(RunOptions(**kwargs), instrument=instrument)


def span(spans: Sequence[ReadableSpan], name: str, parent: str | None = None) -> ReadableSpan:
    """The one span called `name` (under a span called `parent`, when given)."""
    names = {s.context.span_id: s.name for s in spans if s.context is not None}
    found = [
        s
        for s in spans
        if s.name == name
        and (parent is None or (s.parent is not None and names.get(s.parent.span_id) == parent))
    ]
    assert len(found) == 1, f"{len(found)} spans called {name!r} under {parent!r}"
    return found[0]


def attributes(s: ReadableSpan) -> dict[str, object]:
    return dict(s.attributes or {})


def events(s: ReadableSpan, origin: ReadableSpan) -> list[tuple[str, float, dict[str, object]]]:
    """The events of `s`: name, seconds after `origin` started, attributes."""
    return [
        (
            event.name,
            (event.timestamp - (origin.start_time or 0)) / 1e9,
            dict(event.attributes or {}),
        )
        for event in s.events
    ]


# -- retries ----------------------------------------------------------------------------------


async def test_a_retried_step_has_a_span_per_attempt_and_a_retry_event_per_wait(
    autojump_clock: trio.testing.MockClock,
    instrument: exegraph_otel.OtelInstrument,
    span_exporter: InMemorySpanExporter,
) -> None:
    graph = Graph(
        [
            flaky("deploy", 1, 2, retry=Retry(attempts=3, delay=1, backoff=2)),
            step("notify", 1, depends_on=["deploy"]),
        ]
    )
    result = await exegraph.run_with_result(graph, options(instrument))
    assert result.ok

    spans = span_exporter.get_finished_spans()
    assert timeline(spans) == [
        "RUN exegraph <- - [0, 7]: success",
        "attempt 1 <- deploy [0, 1]: failure ERROR(refused 1)",
        "deploy <- RUN exegraph [0, 6]: success",
        "attempt 2 <- deploy [2, 3]: failure ERROR(refused 2)",
        "attempt 3 <- deploy [5, 6]: success",
        "notify <- RUN exegraph [6, 7]: success",
    ]
    run = span(spans, RUN)
    deploy = span(spans, "deploy")
    assert events(deploy, run) == [
        (
            "exegraph.retry",
            1,
            {
                "exegraph.step.attempt": 1,
                "exegraph.retry.delay": 1.0,
                "error.type": "ConnectionError",
                "exception.message": "refused 1",
            },
        ),
        (
            "exegraph.retry",
            3,
            {
                "exegraph.step.attempt": 2,
                "exegraph.retry.delay": 2.0,
                "error.type": "ConnectionError",
                "exception.message": "refused 2",
            },
        ),
    ]
    assert attributes(deploy)["exegraph.step.attempts"] == 3
    assert attributes(span(spans, "notify"))["exegraph.step.attempts"] == 1
    run_id = attributes(run)["exegraph.run.id"]
    unique = attributes(run)["cicd.pipeline.run.id"]
    assert attributes(span(spans, "attempt 1")) == {
        "cicd.pipeline.name": "exegraph",
        "cicd.pipeline.task.name": "deploy",
        "cicd.pipeline.task.run.id": f"{unique}/deploy",
        "cicd.pipeline.task.run.result": "failure",
        "exegraph.run.id": run_id,
        "exegraph.step.attempt": 1,
        "error.type": "ConnectionError",
    }
    assert attributes(span(spans, "attempt 3"))["exegraph.step.attempt"] == 3
    assert "error.type" not in attributes(span(spans, "attempt 3"))
    assert not any(s.events for s in spans if s is not deploy)
    assert links(spans) == {"notify": [("deploy", DEPENDS)]}  # attempts link to nothing


async def test_the_trace_drawn_in_the_tracing_guide_is_what_the_instrument_makes(
    autojump_clock: trio.testing.MockClock,
    instrument: exegraph_otel.OtelInstrument,
    span_exporter: InMemorySpanExporter,
) -> None:
    # docs/guides/tracing.md, "Retries and teardowns": keep the two in step.
    graph = Graph(
        [
            flaky("deploy", 1, 2, retry=Retry(attempts=3, delay=1, backoff=2)),
            resource("db", 1, 1),
            step("migrate", 2, depends_on=["db"]),
        ]
    )
    await exegraph.run(graph, options(instrument))

    spans = span_exporter.get_finished_spans()
    assert timeline(spans) == [
        "RUN exegraph <- - [0, 6]: success",
        "attempt 1 <- deploy [0, 1]: failure ERROR(refused 1)",
        "db <- RUN exegraph [0, 1]: success",
        "deploy <- RUN exegraph [0, 6]: success",
        "migrate <- RUN exegraph [1, 3]: success",
        "attempt 2 <- deploy [2, 3]: failure ERROR(refused 2)",
        "teardown db <- RUN exegraph [3, 4]: ?",
        "attempt 3 <- deploy [5, 6]: success",
    ]
    assert links(spans) == {"migrate": [("db", DEPENDS)], "teardown db": [("db", TEARDOWN_OF)]}
    run, deploy = span(spans, RUN), span(spans, "deploy")
    assert [(name, at, a["exegraph.retry.delay"]) for name, at, a in events(deploy, run)] == [
        ("exegraph.retry", 1, 1.0),
        ("exegraph.retry", 3, 2.0),
    ]


async def test_a_step_that_runs_out_of_attempts_ends_like_its_last_attempt(
    autojump_clock: trio.testing.MockClock,
    instrument: exegraph_otel.OtelInstrument,
    span_exporter: InMemorySpanExporter,
) -> None:
    graph = Graph([flaky("deploy", 1, 9, retry=Retry(attempts=2, delay=0.5))])
    with pytest.RaisesGroup(ConnectionError):
        await exegraph.run(graph, options(instrument))

    spans = span_exporter.get_finished_spans()
    assert timeline(spans) == [
        "RUN exegraph <- - [0, 2.5]: failure ERROR(1 of 1 step failed)",
        "attempt 1 <- deploy [0, 1]: failure ERROR(refused 1)",
        "deploy <- RUN exegraph [0, 2.5]: failure ERROR(refused 2)",
        "attempt 2 <- deploy [1.5, 2.5]: failure ERROR(refused 2)",
    ]
    deploy = attributes(span(spans, "deploy"))
    assert (deploy["exegraph.step.attempts"], deploy["error.type"]) == (2, "ConnectionError")
    assert attributes(span(spans, "attempt 2"))["error.type"] == "ConnectionError"
    retries = [dict(e.attributes or {}) for e in span(spans, "deploy").events]
    assert [e["exegraph.step.attempt"] for e in retries] == [1]


async def test_timed_out_attempts_are_retried_and_say_timeout(
    autojump_clock: trio.testing.MockClock,
    instrument: exegraph_otel.OtelInstrument,
    span_exporter: InMemorySpanExporter,
) -> None:
    graph = Graph([flaky("fetch", 5, 0, retry=Retry(attempts=2, delay=0), timeout=2)])
    result = await exegraph.run_with_result(graph, options(instrument))
    assert not result.ok

    spans = span_exporter.get_finished_spans()
    assert outline(spans)[1:] == [
        f"attempt 1 <- fetch: timeout ERROR({result['fetch'].earlier_errors[0]})",
        f"fetch <- RUN exegraph: timeout ERROR({result['fetch'].error})",
        f"attempt 2 <- fetch: timeout ERROR({result['fetch'].error})",
    ]
    (retry,) = span(spans, "fetch").events
    assert (retry.attributes or {})["error.type"] == "exegraph_trio.StepTimeoutError"
    assert (retry.attributes or {})["exegraph.retry.delay"] == 0.0
    assert attributes(span(spans, "attempt 1"))["error.type"] == "exegraph_trio.StepTimeoutError"


async def test_a_wait_for_a_slot_after_the_retry_delay_shows_as_a_longer_gap(
    autojump_clock: trio.testing.MockClock,
    instrument: exegraph_otel.OtelInstrument,
    span_exporter: InMemorySpanExporter,
) -> None:
    # One slot: while flaky waits its 1 s, long takes the slot until 4 s.
    graph = Graph([flaky("flaky", 1, 1, retry=Retry(attempts=2, delay=1)), step("long", 3)])
    await exegraph.run(graph, options(instrument, max_concurrency=1))

    spans = span_exporter.get_finished_spans()
    assert timeline(spans) == [
        "RUN exegraph <- - [0, 5]: success",
        "attempt 1 <- flaky [0, 1]: failure ERROR(refused 1)",
        "flaky <- RUN exegraph [0, 5]: success",
        "long <- RUN exegraph [1, 4]: success",
        "attempt 2 <- flaky [4, 5]: success",
    ]
    (retry,) = span(spans, "flaky").events
    assert (retry.attributes or {})["exegraph.retry.delay"] == 1.0


async def test_spans_made_in_an_attempt_nest_under_that_attempt(
    autojump_clock: trio.testing.MockClock,
    instrument: exegraph_otel.OtelInstrument,
    tracer_provider: TracerProvider,
    span_exporter: InMemorySpanExporter,
) -> None:
    tracer = tracer_provider.get_tracer("app")
    seen: list[str] = []

    async def call(n: int) -> None:
        with tracer.start_as_current_span(f"call {n}"):
            await trio.sleep(1)

    attempts = 0

    async def deploy() -> None:
        nonlocal attempts
        attempts += 1
        seen.append(getattr(trace.get_current_span(), "name", "?"))
        async with trio.open_nursery() as nursery:
            nursery.start_soon(call, attempts)
        if attempts == 1:
            raise ConnectionError("refused")

    graph = Graph([exegraph.Step("deploy", deploy, retry=Retry(attempts=2, delay=1))])
    await exegraph.run(graph, options(instrument))

    assert seen == ["attempt 1", "attempt 2"]
    # The app's spans are in real time, the steps' in virtual time: compare parents only.
    assert sorted(outline(span_exporter.get_finished_spans())) == [
        "RUN exegraph <- -: success",
        "attempt 1 <- deploy: failure ERROR(refused)",
        "attempt 2 <- deploy: success",
        "call 1 <- attempt 1: ?",
        "call 2 <- attempt 2: ?",
        "deploy <- RUN exegraph: success",
    ]


async def test_a_step_that_may_be_retried_has_an_attempt_span_even_if_it_succeeds_at_once(
    autojump_clock: trio.testing.MockClock,
    instrument: exegraph_otel.OtelInstrument,
    span_exporter: InMemorySpanExporter,
) -> None:
    graph = Graph(
        [
            flaky("default", 1, 0, retry=None),  # takes the run's Retry(attempts=3)
            flaky("once", 1, 0, retry=Retry(attempts=1)),  # never retried: no attempt span
        ]
    )
    await exegraph.run(graph, options(instrument, retry=Retry(attempts=3)))

    spans = span_exporter.get_finished_spans()
    assert timeline(spans) == [
        "RUN exegraph <- - [0, 1]: success",
        "attempt 1 <- default [0, 1]: success",
        "default <- RUN exegraph [0, 1]: success",
        "once <- RUN exegraph [0, 1]: success",
    ]
    assert not any(s.events for s in spans)
    assert attributes(span(spans, "default"))["exegraph.step.attempts"] == 1


async def test_a_step_cancelled_while_it_waits_to_retry_has_no_open_attempt(
    autojump_clock: trio.testing.MockClock,
    instrument: exegraph_otel.OtelInstrument,
    span_exporter: InMemorySpanExporter,
) -> None:
    graph = Graph(
        [
            flaky("flaky", 1, 1, retry=Retry(attempts=2, delay=10)),
            step("bad", 2, error=ValueError("boom")),
        ]
    )
    with pytest.RaisesGroup(ValueError):
        await exegraph.run(graph, options(instrument))

    spans = span_exporter.get_finished_spans()
    assert timeline(spans) == [
        "RUN exegraph <- - [0, 2]: failure ERROR(1 of 2 steps failed)",
        "attempt 1 <- flaky [0, 1]: failure ERROR(refused 1)",
        "bad <- RUN exegraph [0, 2]: failure ERROR(boom)",
        "flaky <- RUN exegraph [0, 1]: cancellation",  # ends with its last attempt
    ]
    assert attributes(span(spans, "flaky"))["exegraph.step.attempts"] == 1
    assert len(span(spans, "flaky").events) == 1


async def test_exception_events_go_on_retried_attempts_and_on_the_step_for_the_last_error(
    autojump_clock: trio.testing.MockClock,
    tracer_provider: TracerProvider,
    span_exporter: InMemorySpanExporter,
) -> None:
    loud = exegraph_otel.OtelInstrument(tracer_provider=tracer_provider, record_exceptions=True)
    graph = Graph([flaky("deploy", 1, 9, retry=Retry(attempts=2, delay=1))])
    await exegraph.run_with_result(graph, options(loud))

    spans = span_exporter.get_finished_spans()
    first, last, deploy = span(spans, "attempt 1"), span(spans, "attempt 2"), span(spans, "deploy")
    (event,) = first.events
    assert (event.name, (event.attributes or {})["exception.message"]) == ("exception", "refused 1")
    assert event.timestamp == first.end_time
    assert not last.events  # its error is the step's: recorded once, on the step span
    assert [e.name for e in deploy.events] == ["exegraph.retry", "exception"]
    assert (deploy.events[1].attributes or {})["exception.message"] == "refused 2"


# -- trigger rules ----------------------------------------------------------------------------


async def test_trigger_rule_steps_say_their_rule_and_run_after_a_failure(
    autojump_clock: trio.testing.MockClock,
    instrument: exegraph_otel.OtelInstrument,
    span_exporter: InMemorySpanExporter,
) -> None:
    graph = Graph(
        [
            step("build", 1),
            step("test", 1, depends_on=["build"], error=AssertionError("red")),
            step("slow", 5),
            exegraph.Step(
                "report",
                step("r", 1).action,
                depends_on=["test"],
                trigger_rule=TriggerRule.ALL_DONE,
            ),
            exegraph.Step(
                "page",
                step("p", 1).action,
                depends_on=["test"],
                trigger_rule=TriggerRule.ONE_FAILED,
            ),
            step("deploy", 1, depends_on=["test"]),
        ]
    )
    with pytest.RaisesGroup(AssertionError, exegraph.StepSkippedError):
        await exegraph.run(graph, options(instrument))  # fail-fast: slow is cancelled

    spans = span_exporter.get_finished_spans()
    assert timeline(spans) == [
        "RUN exegraph <- - [0, 3]: failure ERROR(1 of 6 steps failed, 1 skipped)",
        "build <- RUN exegraph [0, 1]: success",
        "slow <- RUN exegraph [0, 2]: cancellation",
        "test <- RUN exegraph [1, 2]: failure ERROR(red)",
        "deploy <- RUN exegraph [2, 2]: skip",
        "page <- RUN exegraph [2, 3]: success",
        "report <- RUN exegraph [2, 3]: success",
    ]
    rules = {s.name: attributes(s)["exegraph.step.trigger_rule"] for s in spans if s.name != RUN}
    assert rules == {
        "build": "all_success",
        "test": "all_success",
        "slow": "all_success",
        "deploy": "all_success",
        "report": "all_done",
        "page": "one_failed",
    }
    assert links(spans) == {
        "test": [("build", DEPENDS)],
        "deploy": [("test", DEPENDS), ("test", "failed_dependency")],
        "report": [("test", DEPENDS)],
        "page": [("test", DEPENDS)],
    }
    assert attributes(span(spans, "deploy"))["exegraph.step.attempts"] == 0


async def test_a_one_failed_step_skipped_because_nothing_failed_says_trigger_rule(
    autojump_clock: trio.testing.MockClock,
    instrument: exegraph_otel.OtelInstrument,
    span_exporter: InMemorySpanExporter,
) -> None:
    graph = Graph(
        [
            step("test", 1),
            exegraph.Step(
                "page",
                step("p", 1).action,
                depends_on=["test"],
                trigger_rule=TriggerRule.ONE_FAILED,
            ),
        ]
    )
    await exegraph.run(graph, options(instrument))  # returns normally

    spans = span_exporter.get_finished_spans()
    assert timeline(spans) == [
        "RUN exegraph <- - [0, 1]: success",
        "test <- RUN exegraph [0, 1]: success",
        "page <- RUN exegraph [1, 1]: skip",
    ]
    page = attributes(span(spans, "page"))
    assert page["exegraph.step.skip_reason"] == "trigger_rule"
    assert page["exegraph.step.trigger_rule"] == "one_failed"
    assert "exegraph.step.failed_dependency" not in page
    assert "exegraph.step.stopped_by" not in page
    assert {s.status.status_code for s in spans} == {StatusCode.UNSET}


# -- resource steps ---------------------------------------------------------------------------


async def test_a_teardown_is_a_span_under_the_run_linked_to_its_step(
    autojump_clock: trio.testing.MockClock,
    instrument: exegraph_otel.OtelInstrument,
    span_exporter: InMemorySpanExporter,
) -> None:
    graph = Graph([resource("db", 1, 2), step("migrate", 2, depends_on=["db"]), step("lint", 6)])
    await exegraph.run(graph, options(instrument))

    spans = span_exporter.get_finished_spans()
    assert timeline(spans) == [
        "RUN exegraph <- - [0, 6]: success",
        "db <- RUN exegraph [0, 1]: success",  # the setup: the step's own duration
        "lint <- RUN exegraph [0, 6]: success",
        "migrate <- RUN exegraph [1, 3]: success",
        "teardown db <- RUN exegraph [3, 5]: ?",  # as soon as migrate settled
    ]
    assert links(spans) == {
        "migrate": [("db", DEPENDS)],
        "teardown db": [("db", TEARDOWN_OF)],
    }
    run_id = attributes(span(spans, RUN))["exegraph.run.id"]
    unique = attributes(span(spans, RUN))["cicd.pipeline.run.id"]
    assert attributes(span(spans, "teardown db")) == {
        "cicd.pipeline.name": "exegraph",
        "cicd.pipeline.task.name": "db",
        "cicd.pipeline.task.run.id": f"{unique}/db",
        "exegraph.run.id": run_id,
    }
    assert attributes(span(spans, "db"))["exegraph.step.attempts"] == 1
    assert len({s.context.trace_id for s in spans if s.context is not None}) == 1


async def test_resources_are_torn_down_in_reverse_dependency_order(
    autojump_clock: trio.testing.MockClock,
    instrument: exegraph_otel.OtelInstrument,
    span_exporter: InMemorySpanExporter,
) -> None:
    graph = Graph(
        [
            resource("cluster", 1, 3),
            resource("db", 1, 1, depends_on=["cluster"]),
            step("test", 2, depends_on=["db"]),
        ]
    )
    await exegraph.run(graph, options(instrument))

    spans = span_exporter.get_finished_spans()
    assert timeline(spans) == [
        "RUN exegraph <- - [0, 8]: success",
        "cluster <- RUN exegraph [0, 1]: success",
        "db <- RUN exegraph [1, 2]: success",
        "test <- RUN exegraph [2, 4]: success",
        "teardown db <- RUN exegraph [4, 5]: ?",
        "teardown cluster <- RUN exegraph [5, 8]: ?",
    ]
    assert links(spans)["teardown cluster"] == [("cluster", TEARDOWN_OF)]
    assert links(spans)["teardown db"] == [("db", TEARDOWN_OF)]


async def test_spans_made_in_a_setup_nest_under_the_step_and_in_a_teardown_under_it(
    autojump_clock: trio.testing.MockClock,
    instrument: exegraph_otel.OtelInstrument,
    tracer_provider: TracerProvider,
    span_exporter: InMemorySpanExporter,
) -> None:
    log: list[str] = []
    tracer = tracer_provider.get_tracer("app")
    graph = Graph([resource("db", 1, 1, log=log, tracer=tracer), step("use", 1, depends_on=["db"])])
    await exegraph.run(graph, options(instrument))

    assert log == ["db up in db", "db down in teardown db"]
    assert sorted(outline(span_exporter.get_finished_spans())) == [
        "RUN exegraph <- -: success",
        "db <- RUN exegraph: success",
        "release db <- teardown db: ?",
        "teardown db <- RUN exegraph: ?",
        "use <- RUN exegraph: success",
    ]


async def test_a_failed_teardown_has_status_error_and_fails_the_run_span(
    autojump_clock: trio.testing.MockClock,
    tracer_provider: TracerProvider,
    span_exporter: InMemorySpanExporter,
) -> None:
    loud = exegraph_otel.OtelInstrument(tracer_provider=tracer_provider, record_exceptions=True)
    graph = Graph(
        [resource("db", 1, 1, error=OSError("port still bound")), step("use", 1, depends_on=["db"])]
    )
    with pytest.RaisesGroup(OSError):
        await exegraph.run(graph, options(loud))

    spans = span_exporter.get_finished_spans()
    assert timeline(spans) == [
        "RUN exegraph <- - [0, 3]: failure ERROR(0 of 2 steps failed, 1 teardown failed)",
        "db <- RUN exegraph [0, 1]: success",  # the step stays done
        "use <- RUN exegraph [1, 2]: success",
        "teardown db <- RUN exegraph [2, 3]: ? ERROR(port still bound)",
    ]
    teardown = span(spans, "teardown db")
    assert attributes(teardown)["error.type"] == "OSError"
    (event,) = teardown.events
    assert (event.name, (event.attributes or {})["exception.type"]) == ("exception", "OSError")
    assert event.timestamp == teardown.end_time
    assert attributes(span(spans, RUN))["error.type"] == "exegraph_trio.RunError"


async def test_a_teardown_cut_by_its_deadline_says_step_timeout_error(
    autojump_clock: trio.testing.MockClock,
    instrument: exegraph_otel.OtelInstrument,
    span_exporter: InMemorySpanExporter,
) -> None:
    graph = Graph([resource("db", 1, 10, timeout=2)])
    result = await exegraph.run_with_result(graph, options(instrument))
    error = result["db"].teardown_error
    assert isinstance(error, exegraph.StepTimeoutError)

    spans = span_exporter.get_finished_spans()
    assert timeline(spans) == [
        "RUN exegraph <- - [0, 3]: failure ERROR(0 of 1 step failed, 1 teardown failed)",
        "db <- RUN exegraph [0, 1]: success",
        f"teardown db <- RUN exegraph [1, 3]: ? ERROR({error})",
    ]
    assert attributes(span(spans, "teardown db"))["error.type"] == "exegraph_trio.StepTimeoutError"


async def test_an_async_context_manager_is_torn_down_in_a_span_also_on_fail_fast(
    autojump_clock: trio.testing.MockClock,
    instrument: exegraph_otel.OtelInstrument,
    span_exporter: InMemorySpanExporter,
) -> None:
    given: list[type[BaseException] | None] = []

    @asynccontextmanager
    async def server() -> AsyncIterator[str]:
        await trio.sleep(1)
        try:
            yield "http://127.0.0.1:1"
        except BaseException as exc:
            given.append(type(exc))
            raise
        finally:
            await trio.sleep(1)

    graph = Graph(
        [
            exegraph.Step("server", server),
            step("test", 1, depends_on=["server"], error=AssertionError("red")),
            step("soak", 10, depends_on=["server"]),
        ]
    )
    with pytest.RaisesGroup(AssertionError):
        await exegraph.run(graph, options(instrument))
    assert given == [AssertionError]

    spans = span_exporter.get_finished_spans()
    assert timeline(spans) == [
        "RUN exegraph <- - [0, 3]: failure ERROR(1 of 3 steps failed)",
        "server <- RUN exegraph [0, 1]: success",
        "soak <- RUN exegraph [1, 2]: cancellation",
        "test <- RUN exegraph [1, 2]: failure ERROR(red)",
        "teardown server <- RUN exegraph [2, 3]: ?",  # __aexit__ re-raising is no error
    ]


async def test_a_teardown_after_an_outside_cancellation_is_traced_under_the_run(
    autojump_clock: trio.testing.MockClock,
    instrument: exegraph_otel.OtelInstrument,
    tracer_provider: TracerProvider,
    span_exporter: InMemorySpanExporter,
) -> None:
    graph = Graph([resource("db", 1, 1), step("use", 5, depends_on=["db"])])
    with tracer_provider.get_tracer("app").start_as_current_span("caller") as caller:
        with trio.move_on_after(1.5) as scope:
            await exegraph.run(graph, options(instrument))
        assert scope.cancelled_caught
        assert trace.get_current_span() is caller

    finished = span_exporter.get_finished_spans()
    assert outline(finished)[:2] == ["caller <- -: ?", "RUN exegraph <- caller: cancellation"]
    spans = [s for s in finished if s.name != "caller"]  # in real time: no times to compare
    assert timeline(spans) == [
        "RUN exegraph <- ? [0, 2.5]: cancellation",
        "db <- RUN exegraph [0, 1]: success",
        "use <- RUN exegraph [1, 1.5]: cancellation",
        "teardown db <- RUN exegraph [1.5, 2.5]: ?",  # shielded: it runs to its end
    ]
    assert links(spans)["teardown db"] == [("db", TEARDOWN_OF)]


async def test_a_resource_set_up_after_a_retry_has_attempts_and_a_teardown(
    autojump_clock: trio.testing.MockClock,
    instrument: exegraph_otel.OtelInstrument,
    span_exporter: InMemorySpanExporter,
) -> None:
    attempts = 0

    async def cluster() -> AsyncIterator[str]:
        nonlocal attempts
        attempts += 1
        await trio.sleep(1)
        if attempts == 1:
            raise TimeoutError("no quorum")
        yield "cluster"
        await trio.sleep(1)

    graph = Graph(
        [
            exegraph.Step("cluster", cluster, retry=Retry(attempts=2, delay=1)),
            step("test", 1, depends_on=["cluster"]),
        ]
    )
    await exegraph.run(graph, options(instrument))

    spans = span_exporter.get_finished_spans()
    assert timeline(spans) == [
        "RUN exegraph <- - [0, 5]: success",
        "attempt 1 <- cluster [0, 1]: failure ERROR(no quorum)",
        "cluster <- RUN exegraph [0, 3]: success",
        "attempt 2 <- cluster [2, 3]: success",
        "test <- RUN exegraph [3, 4]: success",
        "teardown cluster <- RUN exegraph [4, 5]: ?",
    ]
    assert links(spans)["teardown cluster"] == [("cluster", TEARDOWN_OF)]


# -- metrics ----------------------------------------------------------------------------------


async def test_retries_are_counted_and_a_waiting_step_is_not_active(
    autojump_clock: trio.testing.MockClock,
    instrument: exegraph_otel.OtelInstrument,
    metric_reader: InMemoryMetricReader,
) -> None:
    active: list[int | float] = []

    async def probe() -> None:
        await trio.sleep(1.5)  # flaky is waiting to retry: from 1 s to 2 s
        points = metric_points(metric_reader, "exegraph.step.active")
        active.append(
            getattr(
                points[key(cicd_pipeline_name="exegraph", cicd_pipeline_task_name="flaky")],
                "value",
                -1,
            )
        )

    graph = Graph(
        [
            flaky("flaky", 1, 2, retry=Retry(attempts=3, delay=1, backoff=1)),
            exegraph.Step("probe", probe),
        ]
    )
    await exegraph.run(graph, options(instrument))

    assert active == [0]
    points = metric_points(metric_reader, "exegraph.step.retries")
    assert {k: getattr(p, "value", None) for k, p in points.items()} == {
        key(cicd_pipeline_name="exegraph", cicd_pipeline_task_name="flaky")
        | {("error.type", "ConnectionError")}: 2
    }
    active_points = metric_points(metric_reader, "exegraph.step.active")
    assert {getattr(p, "value", None) for p in active_points.values()} == {0}
    durations = metric_points(metric_reader, "exegraph.step.duration")
    flaky_key = key(
        cicd_pipeline_name="exegraph",
        cicd_pipeline_task_name="flaky",
        cicd_pipeline_task_run_result="success",
    )
    assert getattr(durations[flaky_key], "sum", None) == 5.0  # three attempts, two waits


async def test_a_step_cancelled_while_waiting_to_retry_leaves_active_at_zero(
    autojump_clock: trio.testing.MockClock,
    instrument: exegraph_otel.OtelInstrument,
    metric_reader: InMemoryMetricReader,
) -> None:
    graph = Graph(
        [
            flaky("flaky", 1, 1, retry=Retry(attempts=2, delay=10)),
            step("bad", 2, error=ValueError("boom")),
        ]
    )
    with pytest.RaisesGroup(ValueError):
        await exegraph.run(graph, options(instrument))

    points = metric_points(metric_reader, "exegraph.step.active")
    assert {getattr(p, "value", None) for p in points.values()} == {0}


async def test_teardown_durations_are_a_histogram_by_step_with_the_error_type(
    autojump_clock: trio.testing.MockClock,
    instrument: exegraph_otel.OtelInstrument,
    metric_reader: InMemoryMetricReader,
) -> None:
    graph = Graph(
        [
            resource("db", 1, 2),
            resource("cache", 1, 0.5, error=OSError("busy")),
            step("use", 1, depends_on=["db", "cache"]),
        ]
    )
    await exegraph.run_with_result(graph, options(instrument))

    points = metric_points(metric_reader, "exegraph.teardown.duration")
    assert {k: (getattr(p, "count", None), getattr(p, "sum", None)) for k, p in points.items()} == {
        key(cicd_pipeline_name="exegraph", cicd_pipeline_task_name="db"): (1, 2.0),
        key(cicd_pipeline_name="exegraph", cicd_pipeline_task_name="cache")
        | {("error.type", "OSError")}: (1, 0.5),
    }
    runs = metric_points(metric_reader, "exegraph.run.duration")
    assert list(runs) == [
        key(cicd_pipeline_name="exegraph", cicd_pipeline_result="failure")
        | {("error.type", "exegraph_trio.RunError")}
    ]
