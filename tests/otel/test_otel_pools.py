"""Pools in traces: the slots a step takes, and how long it waited for them.

Charter: an SDK `TracerProvider` with an `InMemorySpanExporter` is injected into each
instrument (the global providers are never touched); steps sleep in virtual time
(`autojump_clock`), so span times and waits are asserted exactly, and each wait is also
checked against the `StepTiming` it comes from. No test may leave an OpenTelemetry
complaint (see `conftest.py`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pytest
import trio
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import exegraph_otel
import exegraph_trio as exegraph
from exegraph_trio import Graph, Retry, RunOptions, RunResult

from .helpers import RUN, action, by_name, seconds

POOLS = "exegraph.step.pools"
WAIT = "exegraph.step.slot_wait"


def options(instrument: exegraph_otel.OtelInstrument, **kwargs: Any) -> RunOptions:
    return exegraph_otel.traced(RunOptions(**kwargs), instrument=instrument)


def pooled(
    name: str,
    seconds: float,
    pools: Iterable[str] | Mapping[str, int] | None = None,
    *,
    depends_on: Sequence[str] = (),
    error: BaseException | None = None,
) -> exegraph.Step:
    """A step whose action sleeps `seconds` holding `pools`, then raises `error` if given."""
    return exegraph.Step(name, action(seconds, error=error), depends_on=depends_on, pools=pools)


def pool_attributes(spans: Sequence[ReadableSpan]) -> dict[str, dict[str, object]]:
    """For each step span: its `exegraph.step.pools` and `exegraph.step.slot_wait`, if set."""
    return {
        span.name: {
            key: value for key, value in (span.attributes or {}).items() if key in (POOLS, WAIT)
        }
        for span in spans
        if span.name != RUN
    }


def waits(result: RunResult) -> dict[str, float | None]:
    """`start - ready` of each started step, as the `RunResult` tells it."""
    return {
        t.name: None if t.ready is None or t.start is None else t.start - t.ready
        for t in result
        if t.start is not None
    }


async def test_a_step_span_names_the_pool_slots_it_took_and_how_long_it_waited_for_them(
    autojump_clock: trio.testing.MockClock,
    instrument: exegraph_otel.OtelInstrument,
    span_exporter: InMemorySpanExporter,
) -> None:
    # docs/guides/tracing.md, "Pools and waits", draws this run: keep the two in step.
    # db has 2 slots. vacuum needs both, so it waits while migrate holds one; report,
    # ready at 1 s, fits in the other and starts at once (no head-of-line blocking).
    graph = Graph(
        [
            pooled("migrate", 2, ["db"]),
            pooled("vacuum", 1, {"db": 2}),
            pooled("lint", 1),
            pooled("report", 1, {"db": 1}, depends_on=["lint"]),
        ]
    )
    result = await exegraph.run_with_result(graph, options(instrument, pools={"db": 2}))
    assert result.ok

    spans = span_exporter.get_finished_spans()
    assert seconds(spans) == {
        RUN: (0, 3),
        "migrate": (0, 2),
        "lint": (0, 1),
        "report": (1, 2),
        "vacuum": (2, 3),
    }
    assert pool_attributes(spans) == {
        "migrate": {POOLS: ("db:1",), WAIT: 0.0},
        "vacuum": {POOLS: ("db:2",), WAIT: 2.0},
        "lint": {WAIT: 0.0},  # in a run with pools every started step reports its wait
        "report": {POOLS: ("db:1",), WAIT: 0.0},
    }
    assert waits(result) == {"migrate": 0.0, "vacuum": 2.0, "lint": 0.0, "report": 0.0}


async def test_the_wait_includes_waiting_for_a_concurrency_slot(
    autojump_clock: trio.testing.MockClock,
    instrument: exegraph_otel.OtelInstrument,
    span_exporter: InMemorySpanExporter,
) -> None:
    # Slots are taken all at once: a step whose pool is free still waits for the bound.
    graph = Graph([pooled("a", 1), pooled("b", 3), pooled("c", 1, ["net"])])
    result = await exegraph.run_with_result(
        graph, options(instrument, max_concurrency=2, pools={"net": 1})
    )

    assert pool_attributes(span_exporter.get_finished_spans()) == {
        "a": {WAIT: 0.0},
        "b": {WAIT: 0.0},
        "c": {POOLS: ("net:1",), WAIT: 1.0},
    }
    assert waits(result)["c"] == 1.0


async def test_a_step_taking_several_pools_lists_them_in_its_own_order(
    autojump_clock: trio.testing.MockClock,
    instrument: exegraph_otel.OtelInstrument,
    span_exporter: InMemorySpanExporter,
) -> None:
    graph = Graph([pooled("sync", 1, {"net": 3, "db": 1, "ns:eu": 1})])
    await exegraph.run(graph, options(instrument, pools={"db": 1, "net": 4, "ns:eu": 2}))

    spans = by_name(span_exporter.get_finished_spans())
    assert (spans["sync"].attributes or {})[POOLS] == ("net:3", "db:1", "ns:eu:1")


async def test_a_run_without_pools_puts_neither_attribute_on_its_spans(
    autojump_clock: trio.testing.MockClock,
    instrument: exegraph_otel.OtelInstrument,
    span_exporter: InMemorySpanExporter,
) -> None:
    # No step takes a pool: the run notes no readiness (`StepTiming.ready` is None), so
    # there is no wait to report, although b waited 1 s for the single slot.
    graph = Graph([pooled("a", 1), pooled("b", 1)])
    result = await exegraph.run_with_result(
        graph, options(instrument, max_concurrency=1, pools={"db": 1})
    )

    assert pool_attributes(span_exporter.get_finished_spans()) == {"a": {}, "b": {}}
    assert waits(result) == {"a": None, "b": None}


async def test_a_retried_step_reports_the_wait_before_its_first_attempt(
    autojump_clock: trio.testing.MockClock,
    instrument: exegraph_otel.OtelInstrument,
    span_exporter: InMemorySpanExporter,
) -> None:
    # deploy holds db for its first attempt (0-1 s), gives it back while it waits to be
    # retried, and finds it taken by migrate (1-4 s): its second attempt runs 4-5 s. Only
    # the wait before the first attempt is on the span (`StepTiming.ready` is when the step
    # first became ready); later waits are the gaps between the attempt spans.
    attempts = 0

    async def deploy() -> None:
        nonlocal attempts
        attempts += 1
        await trio.sleep(1)
        if attempts == 1:
            raise ConnectionError("refused")

    graph = Graph(
        [
            exegraph.Step("deploy", deploy, pools=["db"], retry=Retry(attempts=2, delay=1)),
            pooled("migrate", 3, ["db"]),
        ]
    )
    result = await exegraph.run_with_result(graph, options(instrument, pools={"db": 1}))
    assert result.ok

    spans = span_exporter.get_finished_spans()
    assert seconds(spans) == {
        RUN: (0, 5),
        "deploy": (0, 5),
        "attempt 1": (0, 1),
        "migrate": (1, 4),
        "attempt 2": (4, 5),
    }
    assert pool_attributes(spans) == {
        "deploy": {POOLS: ("db:1",), WAIT: 0.0},
        "attempt 1": {},
        "attempt 2": {},
        "migrate": {POOLS: ("db:1",), WAIT: 1.0},
    }


async def test_a_skipped_step_names_its_pools_but_has_no_wait(
    autojump_clock: trio.testing.MockClock,
    instrument: exegraph_otel.OtelInstrument,
    span_exporter: InMemorySpanExporter,
) -> None:
    graph = Graph(
        [
            pooled("build", 1, ["cpu"], error=ValueError("broken")),
            pooled("publish", 1, ["net"], depends_on=["build"]),
        ]
    )
    with pytest.RaisesGroup(ValueError, exegraph.StepSkippedError):
        await exegraph.run(graph, options(instrument, pools={"cpu": 1, "net": 1}))

    assert pool_attributes(span_exporter.get_finished_spans()) == {
        "build": {POOLS: ("cpu:1",), WAIT: 0.0},
        "publish": {POOLS: ("net:1",)},
    }


async def test_a_shared_pool_shows_one_runs_step_waiting_for_the_others(
    autojump_clock: trio.testing.MockClock,
    instrument: exegraph_otel.OtelInstrument,
    span_exporter: InMemorySpanExporter,
) -> None:
    # Two pipelines share one database slot: the second run's load waits for the first's.
    db = exegraph.Pool(1)
    results: dict[str, RunResult] = {}

    async def pipeline(prefix: str, delay: float) -> None:
        await trio.sleep(delay)
        graph = Graph([pooled(f"{prefix}-load", 2, ["db"])])
        results[prefix] = await exegraph.run_with_result(
            graph, options(instrument, pools={"db": db})
        )

    async with trio.open_nursery() as nursery:
        nursery.start_soon(pipeline, "orders", 0)
        nursery.start_soon(pipeline, "users", 0.5)

    spans = [s for s in span_exporter.get_finished_spans() if s.name != RUN]
    assert pool_attributes(spans) == {
        "orders-load": {POOLS: ("db:1",), WAIT: 0.0},
        "users-load": {POOLS: ("db:1",), WAIT: 1.5},  # ready at 0.5 s, started at 2 s
    }
    assert waits(results["users"]) == {"users-load": 1.5}
