"""Spans: one trace per run, one span per step, nested where the code runs.

Charter: an SDK `TracerProvider` with an `InMemorySpanExporter` is injected into each
instrument (the global providers are never touched); steps sleep in virtual time
(`autojump_clock`), so span times are asserted exactly. Each test asserts the whole tree:
names, parents, results, status, links and attributes. No test may leave a
"Failed to detach context" or any other OpenTelemetry complaint (see `conftest.py`).
"""

from __future__ import annotations

import re
from typing import Any

import pytest
import trio
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
from opentelemetry.trace import SpanKind, StatusCode

import exegraph_otel
import exegraph_trio as exegraph
from exegraph_trio import ErrorPolicy, Graph, RunOptions

from .helpers import RUN, by_name, links, outline, seconds, step

DEPENDS = "depends_on"
FAILED = "failed_dependency"
STOPPED = "stopped_by"
SKIP_REASON = "exegraph.step.skip_reason"


def options(instrument: exegraph_otel.OtelInstrument, **kwargs: Any) -> RunOptions:
    return exegraph_otel.traced(RunOptions(**kwargs), instrument=instrument)


def diamond() -> Graph:
    return Graph(
        [
            step("a", 1),
            step("b", 2, depends_on=["a"]),
            step("c", 1, depends_on=["a"]),
            step("d", 1, depends_on=["b", "c"]),
        ]
    )


# -- a run that succeeds ----------------------------------------------------------------------


async def test_a_run_is_one_trace_with_a_child_span_per_step(
    autojump_clock: trio.testing.MockClock,
    instrument: exegraph_otel.OtelInstrument,
    span_exporter: InMemorySpanExporter,
) -> None:
    await exegraph.run(diamond(), options(instrument))

    spans = span_exporter.get_finished_spans()
    assert outline(spans) == [
        "RUN exegraph <- -: success",
        "a <- RUN exegraph: success",
        "b <- RUN exegraph: success",
        "c <- RUN exegraph: success",
        "d <- RUN exegraph: success",
    ]
    assert len({span.context.trace_id for span in spans if span.context}) == 1
    assert {span.status.status_code for span in spans} == {StatusCode.UNSET}
    # A pipeline run is a SERVER span (the CI/CD conventions), its steps INTERNAL ones.
    assert {span.name: span.kind for span in spans} == {
        RUN: SpanKind.SERVER,
        **dict.fromkeys("abcd", SpanKind.INTERNAL),
    }


async def test_step_spans_have_the_steps_real_start_and_end(
    autojump_clock: trio.testing.MockClock,
    instrument: exegraph_otel.OtelInstrument,
    span_exporter: InMemorySpanExporter,
) -> None:
    result = await exegraph.run_with_result(diamond(), options(instrument))

    assert seconds(span_exporter.get_finished_spans()) == {
        RUN: (0, 4),
        "a": (0, 1),
        "b": (1, 3),
        "c": (1, 2),
        "d": (3, 4),
    }
    assert {t.name: (t.start, t.end) for t in result} == {
        "a": (0, 1),
        "b": (1, 3),
        "c": (1, 2),
        "d": (3, 4),
    }


async def test_each_step_span_links_to_the_spans_of_its_dependencies(
    autojump_clock: trio.testing.MockClock,
    instrument: exegraph_otel.OtelInstrument,
    span_exporter: InMemorySpanExporter,
) -> None:
    await exegraph.run(diamond(), options(instrument))

    assert links(span_exporter.get_finished_spans()) == {
        "b": [("a", DEPENDS)],
        "c": [("a", DEPENDS)],
        "d": [("b", DEPENDS), ("c", DEPENDS)],
    }


async def test_spans_carry_the_ci_cd_and_exegraph_attributes(
    autojump_clock: trio.testing.MockClock,
    instrument: exegraph_otel.OtelInstrument,
    span_exporter: InMemorySpanExporter,
) -> None:
    graph = Graph(
        [
            step("fetch", 1, tags=["io"]),
            step("build", 1, depends_on=["fetch"], tags=["cpu", "slow"], timeout=30),
        ]
    )
    await exegraph.run(graph, options(instrument, max_concurrency=3, step_timeout=10))

    spans = by_name(span_exporter.get_finished_spans())
    run_attributes = dict(spans[RUN].attributes or {})
    run_id = run_attributes["exegraph.run.id"]
    assert isinstance(run_id, int)
    # (unique beyond the process, as the conventions ask: a random UUID's 32 hex digits)
    unique = run_attributes["cicd.pipeline.run.id"]
    assert isinstance(unique, str)
    assert re.fullmatch("[0-9a-f]{32}", unique)
    assert run_attributes == {
        "cicd.pipeline.name": "exegraph",
        "cicd.pipeline.action.name": "RUN",
        "cicd.pipeline.run.id": unique,
        "cicd.pipeline.result": "success",
        "exegraph.run.id": run_id,
        "exegraph.run.error_policy": "FailFast",
        "exegraph.run.max_concurrency": 3,
        "exegraph.graph.steps": 2,
    }
    assert dict(spans["fetch"].attributes or {}) == {
        "cicd.pipeline.name": "exegraph",
        "cicd.pipeline.task.name": "fetch",
        "cicd.pipeline.task.run.id": f"{unique}/fetch",
        "cicd.pipeline.task.run.result": "success",
        "exegraph.run.id": run_id,
        "exegraph.step.priority": 1,
        "exegraph.step.tags": ("io",),
        "exegraph.step.timeout": 10.0,
        "exegraph.step.trigger_rule": "all_success",
        "exegraph.step.attempts": 1,
    }
    assert dict(spans["build"].attributes or {}) == {
        "cicd.pipeline.name": "exegraph",
        "cicd.pipeline.task.name": "build",
        "cicd.pipeline.task.run.id": f"{unique}/build",
        "cicd.pipeline.task.run.result": "success",
        "exegraph.run.id": run_id,
        "exegraph.step.priority": 0,
        "exegraph.step.tags": ("cpu", "slow"),
        "exegraph.step.depends_on": ("fetch",),
        "exegraph.step.timeout": 30.0,
        "exegraph.step.trigger_rule": "all_success",
        "exegraph.step.attempts": 1,
    }
    scope = spans[RUN].instrumentation_scope
    assert scope is not None
    assert (scope.name, scope.version, scope.schema_url) == (
        "exegraph_otel",
        exegraph.__version__,
        "https://opentelemetry.io/schemas/1.44.0",
    )


async def test_the_pipeline_name_names_the_run_span(
    autojump_clock: trio.testing.MockClock,
    tracer_provider: TracerProvider,
    span_exporter: InMemorySpanExporter,
) -> None:
    release = exegraph_otel.OtelInstrument(tracer_provider=tracer_provider, pipeline_name="release")
    await exegraph.run(Graph([step("tag", 1)]), options(release))

    spans = by_name(span_exporter.get_finished_spans())
    assert outline(list(spans.values())) == [
        "RUN release <- -: success",
        "tag <- RUN release: success",
    ]
    assert {(s.attributes or {})["cicd.pipeline.name"] for s in spans.values()} == {"release"}


async def test_the_run_span_is_a_child_of_the_callers_span_which_stays_current(
    autojump_clock: trio.testing.MockClock,
    instrument: exegraph_otel.OtelInstrument,
    tracer_provider: TracerProvider,
    span_exporter: InMemorySpanExporter,
) -> None:
    tracer = tracer_provider.get_tracer("app")
    with tracer.start_as_current_span("deploy") as caller:
        await exegraph.run(Graph([step("a", 1)]), options(instrument))
        assert trace.get_current_span() is caller
    assert trace.get_current_span() is trace.INVALID_SPAN

    assert outline(span_exporter.get_finished_spans()) == [
        "deploy <- -: ?",
        "RUN exegraph <- deploy: success",
        "a <- RUN exegraph: success",
    ]


# -- failures, timeouts, cancellation, skips ----------------------------------------------------


async def test_fail_fast_failure_cancellation_and_skips_are_all_visible(
    autojump_clock: trio.testing.MockClock,
    instrument: exegraph_otel.OtelInstrument,
    span_exporter: InMemorySpanExporter,
) -> None:
    graph = Graph(
        [
            step("a", 1),
            step("b", 1, depends_on=["a"], error=ValueError("boom")),
            step("c", 5, depends_on=["a"]),
            step("d", 1, depends_on=["b"]),
            step("e", 1, depends_on=["c"]),
        ]
    )
    with pytest.RaisesGroup(ValueError, exegraph.StepSkippedError, exegraph.StepSkippedError):
        await exegraph.run(graph, options(instrument))

    spans = span_exporter.get_finished_spans()
    assert outline(spans) == [
        "RUN exegraph <- -: failure ERROR(1 of 5 steps failed, 2 skipped)",
        "a <- RUN exegraph: success",
        "b <- RUN exegraph: failure ERROR(boom)",
        "c <- RUN exegraph: cancellation",
        "d <- RUN exegraph: skip",
        "e <- RUN exegraph: skip",
    ]
    assert links(spans) == {
        "b": [("a", DEPENDS)],
        "c": [("a", DEPENDS)],
        "d": [("b", DEPENDS), ("b", FAILED)],
        "e": [("c", DEPENDS), ("b", STOPPED)],  # not downstream of b: stopped, not caused
    }
    assert seconds(spans) == {
        RUN: (0, 2),
        "a": (0, 1),
        "b": (1, 2),
        "c": (1, 2),
        "d": (2, 2),
        "e": (2, 2),
    }
    named = by_name(spans)
    assert (named["b"].attributes or {})["error.type"] == "ValueError"
    assert (named[RUN].attributes or {})["error.type"] == "exegraph_trio.RunError"
    for name in "acde":
        assert "error.type" not in (named[name].attributes or {}), name
    assert (named["d"].attributes or {})["exegraph.step.failed_dependency"] == "b"
    assert "exegraph.step.failed_dependency" not in (named["e"].attributes or {})
    assert not any(span.events for span in spans)


async def test_continue_on_error_skips_link_to_the_failed_step_that_caused_them(
    autojump_clock: trio.testing.MockClock,
    instrument: exegraph_otel.OtelInstrument,
    span_exporter: InMemorySpanExporter,
) -> None:
    graph = Graph(
        [
            step("a", 1, error=KeyError("no such key")),
            step("b", 1, depends_on=["a"]),
            step("c", 1, depends_on=["b"]),
            step("d", 2),
        ]
    )
    result = await exegraph.run_with_result(
        graph, options(instrument, error_policy=ErrorPolicy.CONTINUE_ON_ERROR)
    )
    assert not result.ok

    spans = span_exporter.get_finished_spans()
    assert outline(spans) == [
        "RUN exegraph <- -: failure ERROR(1 of 4 steps failed, 2 skipped)",
        "a <- RUN exegraph: failure ERROR('no such key')",
        "d <- RUN exegraph: success",
        "b <- RUN exegraph: skip",
        "c <- RUN exegraph: skip",
    ]
    assert links(spans) == {
        "b": [("a", DEPENDS), ("a", FAILED)],
        "c": [("b", DEPENDS), ("a", FAILED)],
    }
    assert seconds(spans) == {RUN: (0, 2), "a": (0, 1), "d": (0, 2), "b": (1, 1), "c": (1, 1)}
    named = by_name(spans)
    assert (named["a"].attributes or {})["error.type"] == "KeyError"
    assert (named["c"].attributes or {})["exegraph.step.failed_dependency"] == "a"


async def test_a_step_skipped_by_fail_fast_says_so_and_names_the_step_that_stopped_the_run(
    autojump_clock: trio.testing.MockClock,
    instrument: exegraph_otel.OtelInstrument,
    span_exporter: InMemorySpanExporter,
) -> None:
    graph = Graph(
        [
            step("bad", 1, error=ValueError("boom")),
            step("slow", 3),
            step("late", 1, depends_on=["slow"]),
        ]
    )
    with pytest.RaisesGroup(ValueError, exegraph.StepSkippedError):
        await exegraph.run(graph, options(instrument))

    spans = span_exporter.get_finished_spans()
    late = by_name(spans)["late"].attributes or {}
    assert (late[SKIP_REASON], late["exegraph.step.stopped_by"]) == ("fail_fast", "bad")
    assert "exegraph.step.failed_dependency" not in late
    assert links(spans)["late"] == [("slow", DEPENDS), ("bad", STOPPED)]


async def test_a_step_skipped_downstream_of_a_failure_gives_failed_dependency_as_its_reason(
    autojump_clock: trio.testing.MockClock,
    instrument: exegraph_otel.OtelInstrument,
    span_exporter: InMemorySpanExporter,
) -> None:
    graph = Graph([step("bad", 1, error=ValueError("boom")), step("next", 1, depends_on=["bad"])])
    with pytest.RaisesGroup(ValueError, exegraph.StepSkippedError):
        await exegraph.run(graph, options(instrument))

    after = by_name(span_exporter.get_finished_spans())["next"].attributes or {}
    assert (after[SKIP_REASON], after["exegraph.step.failed_dependency"]) == (
        "failed_dependency",
        "bad",
    )
    assert "exegraph.step.stopped_by" not in after


async def test_steps_skipped_because_the_run_was_cancelled_from_outside_say_cancelled(
    autojump_clock: trio.testing.MockClock,
    instrument: exegraph_otel.OtelInstrument,
    span_exporter: InMemorySpanExporter,
) -> None:
    graph = Graph(
        [
            step("bad", 1, error=ValueError("boom")),
            step("slow", 3),
            step("late", 1, depends_on=["slow"]),
        ]
    )
    with trio.move_on_after(2):  # after bad failed: under ContinueOnError that stops nothing
        await exegraph.run(graph, options(instrument, error_policy=ErrorPolicy.CONTINUE_ON_ERROR))

    spans = span_exporter.get_finished_spans()
    late = by_name(spans)["late"].attributes or {}
    assert late[SKIP_REASON] == "cancelled"
    assert "exegraph.step.stopped_by" not in late
    assert links(spans)["late"] == [("slow", DEPENDS)]


@pytest.mark.parametrize("failed_before", [False, True])
async def test_steps_skipped_after_a_step_raised_keyboard_interrupt_say_interrupted(
    autojump_clock: trio.testing.MockClock,
    instrument: exegraph_otel.OtelInstrument,
    span_exporter: InMemorySpanExporter,
    failed_before: bool,
) -> None:
    # Under ContinueOnError an earlier ordinary failure stops nothing: the interrupt does.
    earlier = [step("bad", 0.5, error=ValueError("bad"))] if failed_before else []
    graph = Graph(
        [
            *earlier,
            step("stop", 1, error=KeyboardInterrupt()),
            step("slow", 3),
            step("late", 1, depends_on=["slow"]),
        ]
    )
    with pytest.raises(KeyboardInterrupt):
        await exegraph.run(graph, options(instrument, error_policy=ErrorPolicy.CONTINUE_ON_ERROR))

    spans = span_exporter.get_finished_spans()
    late = by_name(spans)["late"].attributes or {}
    assert (late[SKIP_REASON], late["exegraph.step.stopped_by"]) == ("interrupted", "stop")
    assert links(spans)["late"] == [("slow", DEPENDS), ("stop", STOPPED)]


async def test_a_skipped_step_links_to_every_dependency_that_has_a_span(
    autojump_clock: trio.testing.MockClock,
    instrument: exegraph_otel.OtelInstrument,
    span_exporter: InMemorySpanExporter,
) -> None:
    graph = Graph(
        [
            step("done", 1),
            step("bad", 2, error=ValueError("boom")),
            step("skipped", 1, depends_on=["bad"]),
            step("cancelled", 5),
            step("never", 1, depends_on=["done", "skipped", "cancelled", "bad"]),
        ]
    )
    with pytest.RaisesGroup(ValueError, exegraph.StepSkippedError, exegraph.StepSkippedError):
        await exegraph.run(graph, options(instrument))

    assert links(span_exporter.get_finished_spans())["never"] == [
        ("done", DEPENDS),
        ("skipped", DEPENDS),
        ("cancelled", DEPENDS),  # still running when the skip was decided
        ("bad", DEPENDS),
        ("bad", FAILED),
    ]


async def test_a_timed_out_step_ends_with_result_timeout_at_its_deadline(
    autojump_clock: trio.testing.MockClock,
    instrument: exegraph_otel.OtelInstrument,
    span_exporter: InMemorySpanExporter,
) -> None:
    graph = Graph([step("slow", 10, timeout=1), step("quick", 2)])
    result = await exegraph.run_with_result(
        graph, options(instrument, error_policy=ErrorPolicy.CONTINUE_ON_ERROR)
    )

    spans = span_exporter.get_finished_spans()
    assert outline(spans) == [
        "RUN exegraph <- -: failure ERROR(1 of 2 steps failed)",
        "quick <- RUN exegraph: success",
        f"slow <- RUN exegraph: timeout ERROR({result['slow'].error})",
    ]
    assert seconds(spans) == {RUN: (0, 2), "slow": (0, 1), "quick": (0, 2)}
    slow = by_name(spans)["slow"].attributes or {}
    assert slow["error.type"] == "exegraph_trio.StepTimeoutError"
    assert slow["exegraph.step.timeout"] == 1.0


async def test_a_run_cancelled_from_outside_ends_its_spans_with_result_cancellation(
    autojump_clock: trio.testing.MockClock,
    instrument: exegraph_otel.OtelInstrument,
    tracer_provider: TracerProvider,
    span_exporter: InMemorySpanExporter,
) -> None:
    graph = Graph([step("a", 1), step("b", 5, depends_on=["a"]), step("c", 1, depends_on=["b"])])
    with tracer_provider.get_tracer("app").start_as_current_span("caller") as caller:
        with trio.move_on_after(2.5) as scope:
            await exegraph.run(graph, options(instrument))
        assert scope.cancelled_caught
        assert trace.get_current_span() is caller

    spans = span_exporter.get_finished_spans()
    assert outline(spans) == [
        "caller <- -: ?",
        "RUN exegraph <- caller: cancellation",
        "a <- RUN exegraph: success",
        "b <- RUN exegraph: cancellation",
        "c <- RUN exegraph: skip",
    ]
    assert seconds(spans)["b"] == (1, 2.5)
    assert links(spans) == {"b": [("a", DEPENDS)], "c": [("b", DEPENDS)]}


@pytest.mark.parametrize("how", ["cancelled during a teardown", "interrupted by a hook"])
async def test_a_run_stopped_after_its_steps_all_succeeded_is_a_cancellation(
    autojump_clock: trio.testing.MockClock,
    instrument: exegraph_otel.OtelInstrument,
    span_exporter: InMemorySpanExporter,
    how: str,
) -> None:
    # `RunResult.ok` is false for such a run: the run span must not say success.
    async def db() -> Any:
        yield "conn"
        await trio.sleep(5)  # a slow teardown, cancelled from outside

    if how == "cancelled during a teardown":
        graph = Graph([exegraph.Step("db", db), step("use", 1, depends_on=["db"])])
        with trio.move_on_after(3) as scope:
            await exegraph.run(graph, options(instrument))
        assert scope.cancelled_caught
    else:

        def interrupt(name: str, error: BaseException | None) -> None:
            raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            await exegraph.run(Graph([step("use", 1)]), options(instrument, on_step_done=interrupt))
    spans = by_name(span_exporter.get_finished_spans())
    assert (spans[RUN].attributes or {})["cicd.pipeline.result"] == "cancellation"
    assert (spans["use"].attributes or {})["cicd.pipeline.task.run.result"] == "success"


async def test_exception_events_are_recorded_only_when_asked(
    autojump_clock: trio.testing.MockClock,
    tracer_provider: TracerProvider,
    span_exporter: InMemorySpanExporter,
) -> None:
    graph = Graph([step("bad", 1, error=ValueError("boom")), step("good", 1)])
    quiet = exegraph_otel.OtelInstrument(tracer_provider=tracer_provider)
    loud = exegraph_otel.OtelInstrument(tracer_provider=tracer_provider, record_exceptions=True)
    assert (quiet.record_exceptions, loud.record_exceptions) == (False, True)
    policy = ErrorPolicy.CONTINUE_ON_ERROR

    await exegraph.run_with_result(graph, options(quiet, error_policy=policy))
    assert not any(span.events for span in span_exporter.get_finished_spans())
    span_exporter.clear()

    await exegraph.run_with_result(graph, options(loud, error_policy=policy))
    spans = by_name(span_exporter.get_finished_spans())
    assert not spans["good"].events
    assert not spans[RUN].events
    (event,) = spans["bad"].events
    assert event.name == "exception"
    attributes = event.attributes or {}
    assert attributes["exception.type"] == "ValueError"
    assert attributes["exception.message"] == "boom"
    assert "raise error" in str(attributes["exception.stacktrace"])


async def test_an_exception_event_is_stamped_at_the_end_of_its_span(
    autojump_clock: trio.testing.MockClock,
    tracer_provider: TracerProvider,
    span_exporter: InMemorySpanExporter,
) -> None:
    loud = exegraph_otel.OtelInstrument(tracer_provider=tracer_provider, record_exceptions=True)
    graph = Graph([step("bad", 1.5, error=ValueError("boom"))])
    await exegraph.run_with_result(graph, options(loud))

    bad = by_name(span_exporter.get_finished_spans())["bad"]
    (event,) = bad.events
    assert event.timestamp == bad.end_time
    assert bad.end_time is not None
    assert bad.start_time == bad.end_time - 1_500_000_000


class _Unprintable(Exception):
    """An exception whose `__str__` raises (it reads an attribute that was never set)."""

    def __str__(self) -> str:
        return f"HTTP {self.status}"  # type: ignore[attr-defined]


@pytest.mark.parametrize("record_exceptions", [False, True])
async def test_an_exception_whose_str_raises_is_traced_like_any_other(
    autojump_clock: trio.testing.MockClock,
    tracer_provider: TracerProvider,
    span_exporter: InMemorySpanExporter,
    caplog: pytest.LogCaptureFixture,
    record_exceptions: bool,
) -> None:
    # The CLI's table and `Progress` show it as traceback does; tracing did not go on.
    instrument = exegraph_otel.OtelInstrument(
        tracer_provider=tracer_provider, record_exceptions=record_exceptions
    )
    graph = Graph(
        [
            step("bad", 1, error=_Unprintable()),
            step("other", 1),
            step("after", 1, depends_on=["other"]),
        ]
    )
    policy = ErrorPolicy.CONTINUE_ON_ERROR
    await exegraph.run_with_result(graph, options(instrument, error_policy=policy))

    assert not caplog.records  # nothing disabled
    spans = by_name(span_exporter.get_finished_spans())
    assert set(spans) == {RUN, "bad", "other", "after"}
    assert spans["bad"].status.status_code is StatusCode.ERROR
    assert spans["bad"].status.description == "<exception str() failed>"
    assert spans[RUN].status.status_code is StatusCode.ERROR
    if record_exceptions:
        (event,) = spans["bad"].events
        attributes = event.attributes or {}
        assert event.name == "exception"
        assert event.timestamp == spans["bad"].end_time
        assert str(attributes["exception.type"]).endswith("._Unprintable")
        assert attributes["exception.message"] == "<exception str() failed>"
        assert "raise error" in str(attributes["exception.stacktrace"])
    else:
        assert not spans["bad"].events


# -- spans made by the steps themselves ---------------------------------------------------------


async def test_spans_made_in_an_action_and_its_nursery_tasks_nest_under_its_step(
    autojump_clock: trio.testing.MockClock,
    instrument: exegraph_otel.OtelInstrument,
    tracer_provider: TracerProvider,
    span_exporter: InMemorySpanExporter,
) -> None:
    tracer = tracer_provider.get_tracer("app")

    async def shard(n: int) -> None:
        with tracer.start_as_current_span(f"shard-{n}"):
            await trio.sleep(n)

    async def test() -> None:
        with tracer.start_as_current_span("collect"):
            await trio.sleep(1)
        async with trio.open_nursery() as nursery:  # tasks spawned directly by the step
            nursery.start_soon(shard, 1)
            with tracer.start_as_current_span("suite"):
                async with trio.open_nursery() as inner:  # and inside one of its spans
                    inner.start_soon(shard, 2)

    async def package() -> None:
        with tracer.start_as_current_span("upload"):
            await trio.sleep(1)

    graph = Graph(
        [exegraph.Step("test", test), exegraph.Step("package", package, depends_on=["test"])]
    )
    await exegraph.run(graph, options(instrument))

    spans = span_exporter.get_finished_spans()
    # The app's spans are in real time, the steps' in virtual time: compare parents only.
    assert sorted(outline(spans)) == [
        "RUN exegraph <- -: success",
        "collect <- test: ?",
        "package <- RUN exegraph: success",
        "shard-1 <- test: ?",
        "shard-2 <- suite: ?",
        "suite <- test: ?",
        "test <- RUN exegraph: success",
        "upload <- package: ?",
    ]
    assert len({span.context.trace_id for span in spans if span.context}) == 1


async def test_inside_its_action_a_step_sees_its_own_span_as_current(
    autojump_clock: trio.testing.MockClock,
    instrument: exegraph_otel.OtelInstrument,
    span_exporter: InMemorySpanExporter,
) -> None:
    seen: dict[str, str] = {}

    def recorder(name: str) -> exegraph.Step:
        async def act() -> None:
            await trio.sleep(1)
            span = trace.get_current_span()
            seen[name] = getattr(span, "name", "?")

        return exegraph.Step(name, act, depends_on=[] if name == "first" else ["first"])

    # A chain runs on one worker task: the second step must not see the first's span.
    graph = Graph([recorder("first"), recorder("second"), recorder("third")])
    await exegraph.run(graph, options(instrument, max_concurrency=1))

    assert seen == {"first": "first", "second": "second", "third": "third"}


async def test_a_run_inside_a_step_is_a_subtree_of_that_step(
    autojump_clock: trio.testing.MockClock,
    instrument: exegraph_otel.OtelInstrument,
    span_exporter: InMemorySpanExporter,
) -> None:
    inner = Graph([step("migrate", 1), step("seed", 1, depends_on=["migrate"])])

    async def provision() -> None:
        await trio.sleep(5)  # (virtual time: the inner run starts 5 s into the step)
        await exegraph.run(inner, options(instrument))

    outer = Graph(
        [exegraph.Step("provision", provision), step("serve", 1, depends_on=["provision"])]
    )
    await exegraph.run(outer, options(instrument))

    spans = span_exporter.get_finished_spans()
    ids: dict[str, list[int]] = {}
    for span in spans:
        assert span.context is not None
        ids.setdefault(span.name, []).append(span.context.span_id)
    outer_run, inner_run = ids[RUN][1], ids[RUN][0]  # the inner run ends first
    parents = {(s.name, s.parent.span_id if s.parent else None) for s in spans}
    assert parents == {
        (RUN, None),
        (RUN, ids["provision"][0]),
        ("provision", outer_run),
        ("serve", outer_run),
        ("migrate", inner_run),
        ("seed", inner_run),
    }
    assert len({span.context.trace_id for span in spans if span.context}) == 1
    # Placed in virtual time as they ran: the inner run inside the step that made it.
    origin = min(span.start_time or 0 for span in spans)
    placed = sorted(
        (span.name, ((span.start_time or 0) - origin) / 1e9, ((span.end_time or 0) - origin) / 1e9)
        for span in spans
    )
    assert placed == [
        (RUN, 0, 8),
        (RUN, 5, 7),
        ("migrate", 5, 6),
        ("provision", 0, 7),
        ("seed", 6, 7),
        ("serve", 7, 8),
    ]


# -- one instrument, many runs ------------------------------------------------------------------


async def test_one_instrument_keeps_concurrent_runs_apart(
    autojump_clock: trio.testing.MockClock,
    instrument: exegraph_otel.OtelInstrument,
    span_exporter: InMemorySpanExporter,
) -> None:
    def graph(prefix: str, fail: bool) -> Graph:
        return Graph(
            [
                step(f"{prefix}1", 1),
                step(
                    f"{prefix}2", 2, depends_on=[f"{prefix}1"], error=ValueError() if fail else None
                ),
                step(f"{prefix}3", 1, depends_on=[f"{prefix}2"]),
            ]
        )

    async with trio.open_nursery() as nursery:
        nursery.start_soon(exegraph.run_with_result, graph("x", False), options(instrument))
        nursery.start_soon(exegraph.run_with_result, graph("y", True), options(instrument))

    spans = span_exporter.get_finished_spans()
    traces: dict[int, list[ReadableSpan]] = {}
    for span in spans:
        assert span.context is not None
        traces.setdefault(span.context.trace_id, []).append(span)
    assert sorted(outline(trace_spans) for trace_spans in traces.values()) == [
        [
            "RUN exegraph <- -: failure ERROR(1 of 3 steps failed, 1 skipped)",
            "y1 <- RUN exegraph: success",
            "y2 <- RUN exegraph: failure ERROR(ValueError)",
            "y3 <- RUN exegraph: skip",
        ],
        [
            "RUN exegraph <- -: success",
            "x1 <- RUN exegraph: success",
            "x2 <- RUN exegraph: success",
            "x3 <- RUN exegraph: success",
        ],
    ]
    run_ids = {(s.attributes or {})["exegraph.run.id"] for s in spans if s.name == RUN}
    assert len(run_ids) == 2


async def test_the_instrument_keeps_no_state_once_its_runs_are_done(
    autojump_clock: trio.testing.MockClock,
    instrument: exegraph_otel.OtelInstrument,
) -> None:
    for _ in range(3):
        await exegraph.run_with_result(diamond(), options(instrument))
    # White-box: the per-run dictionaries must not grow with the number of runs.
    for part in instrument._parts:
        assert not vars(part).get("_runs"), part


# -- cost when nothing is recorded --------------------------------------------------------------


async def test_priority_is_computed_only_for_recorded_spans(
    autojump_clock: trio.testing.MockClock,
    monkeypatch: pytest.MonkeyPatch,
    span_exporter: InMemorySpanExporter,
) -> None:
    calls: list[str] = []
    original = Graph.priority

    def spy(self: Graph, name: str) -> int:
        calls.append(name)
        return original(self, name)

    monkeypatch.setattr(Graph, "priority", spy)
    unsampled = TracerProvider(sampler=ALWAYS_OFF, shutdown_on_exit=False)
    instrument = exegraph_otel.OtelInstrument(tracer_provider=unsampled)
    await exegraph.run(diamond(), options(instrument))
    assert calls == []

    sampled = TracerProvider(shutdown_on_exit=False)
    instrument = exegraph_otel.OtelInstrument(tracer_provider=sampled)
    await exegraph.run(diamond(), options(instrument))
    assert sorted(calls) == ["a", "b", "c", "d"]


# -- the one-line turn-on ---------------------------------------------------------------------


def test_traced_adds_a_shared_instrument_to_a_copy_of_the_options() -> None:
    base = RunOptions(max_concurrency=3, error_policy=ErrorPolicy.CONTINUE_ON_ERROR)
    options = exegraph_otel.traced(base)
    assert base.instruments == ()
    (instrument,) = options.instruments
    assert isinstance(instrument, exegraph_otel.OtelInstrument)
    assert (options.max_concurrency, options.error_policy) == (3, ErrorPolicy.CONTINUE_ON_ERROR)
    assert exegraph_otel.traced().instruments == (instrument,)
    assert exegraph_otel.traced(options) is options  # never twice


def test_traced_appends_the_instrument_given_after_the_others(
    instrument: exegraph_otel.OtelInstrument,
) -> None:
    other = exegraph.Instrument()
    options = exegraph_otel.traced(RunOptions(instruments=[other]), instrument=instrument)
    assert options.instruments == (other, instrument)


def test_traced_refuses_what_is_not_run_options_or_an_instrument() -> None:
    with pytest.raises(TypeError, match=r"traced takes exegraph\.RunOptions or None, not dict"):
        exegraph_otel.traced({"max_concurrency": 2})  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"instrument must be an exegraph_otel\.OtelInstrument"):
        exegraph_otel.traced(instrument=exegraph.Instrument())  # type: ignore[arg-type]


def test_the_instrument_refuses_a_bad_pipeline_name() -> None:
    with pytest.raises(TypeError, match="pipeline_name must be a str"):
        exegraph_otel.OtelInstrument(pipeline_name=None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="non-empty"):
        exegraph_otel.OtelInstrument(pipeline_name="")


def test_the_instrument_says_what_it_is(tracer_provider: TracerProvider) -> None:
    instrument = exegraph_otel.OtelInstrument(tracer_provider=tracer_provider, pipeline_name="ci")
    assert repr(instrument) == "OtelInstrument(pipeline_name='ci', record_exceptions=False)"
    assert instrument.pipeline_name == "ci"
    assert type(instrument).__module__ == "exegraph_otel"
