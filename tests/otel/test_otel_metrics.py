"""Metrics: step and run durations, steps in flight, step outcomes by result.

Charter: an SDK `MeterProvider` with an `InMemoryMetricReader` is injected (no global
state); steps sleep in virtual time, so durations are asserted exactly. Attribute sets are
asserted whole, which is also how we check that no high-cardinality attribute (a run id, a
message) ever reaches a metric.
"""

from __future__ import annotations

import trio
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    HistogramDataPoint,
    InMemoryMetricReader,
    NumberDataPoint,
)

import exegraph_otel
import exegraph_trio as exegraph
from exegraph_trio import ErrorPolicy, Graph, RunOptions

from .helpers import key, metric_points, step

BUCKETS = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0,
)  # fmt: skip


def mixed_graph() -> Graph:
    """ok (1 s), bad fails (2 s), slow times out (at 3 s), after is skipped."""
    return Graph(
        [
            step("ok", 1),
            step("bad", 2, error=ValueError("a message that must not be an attribute")),
            step("slow", 10, timeout=3),
            step("after", 1, depends_on=["bad"]),
        ]
    )


def histogram_summary(
    reader: InMemoryMetricReader, name: str
) -> dict[frozenset[tuple[str, object]], tuple[int, float]]:
    """(count, sum) of each point of the histogram `name`, checking its bucket bounds."""
    summary: dict[frozenset[tuple[str, object]], tuple[int, float]] = {}
    for attributes, point in metric_points(reader, name).items():
        assert isinstance(point, HistogramDataPoint)
        assert tuple(point.explicit_bounds) == BUCKETS
        summary[attributes] = (point.count, point.sum)
    return summary


async def run_mixed(instrument: exegraph_otel.OtelInstrument) -> None:
    options = RunOptions(error_policy=ErrorPolicy.CONTINUE_ON_ERROR)
    await exegraph.run_with_result(
        mixed_graph(), exegraph_otel.traced(options, instrument=instrument)
    )


def step_key(name: str, result: str, error_type: str | None = None) -> frozenset[tuple[str, str]]:
    attributes = key(
        cicd_pipeline_name="exegraph",
        cicd_pipeline_task_name=name,
        cicd_pipeline_task_run_result=result,
    )
    if error_type is not None:
        attributes |= {("error.type", error_type)}
    return attributes


async def test_step_durations_are_a_histogram_in_seconds_by_step_and_result(
    autojump_clock: trio.testing.MockClock,
    instrument: exegraph_otel.OtelInstrument,
    metric_reader: InMemoryMetricReader,
) -> None:
    await run_mixed(instrument)

    summary = histogram_summary(metric_reader, "exegraph.step.duration")
    assert summary == {
        step_key("ok", "success"): (1, 1.0),
        step_key("bad", "failure", "ValueError"): (1, 2.0),
        step_key("slow", "timeout", "exegraph_trio.StepTimeoutError"): (1, 3.0),
    }


async def test_outcomes_count_every_step_by_result_including_skips(
    autojump_clock: trio.testing.MockClock,
    instrument: exegraph_otel.OtelInstrument,
    metric_reader: InMemoryMetricReader,
) -> None:
    await run_mixed(instrument)
    await run_mixed(instrument)

    points = metric_points(metric_reader, "exegraph.step.outcomes")
    assert {attributes: getattr(point, "value", None) for attributes, point in points.items()} == {
        step_key("ok", "success"): 2,
        step_key("bad", "failure", "ValueError"): 2,
        step_key("slow", "timeout", "exegraph_trio.StepTimeoutError"): 2,
        step_key("after", "skip"): 2,
    }


async def test_cancelled_steps_are_counted_as_cancellation(
    autojump_clock: trio.testing.MockClock,
    instrument: exegraph_otel.OtelInstrument,
    metric_reader: InMemoryMetricReader,
) -> None:
    graph = Graph([step("bad", 1, error=ValueError()), step("long", 5)])
    await exegraph.run_with_result(graph, exegraph_otel.traced(instrument=instrument))

    durations = metric_points(metric_reader, "exegraph.step.duration")
    assert {k: getattr(p, "sum", None) for k, p in durations.items()} == {
        step_key("bad", "failure", "ValueError"): 1.0,
        step_key("long", "cancellation"): 1.0,
    }


async def test_active_steps_go_up_while_they_run_and_back_to_zero(
    autojump_clock: trio.testing.MockClock,
    instrument: exegraph_otel.OtelInstrument,
    metric_reader: InMemoryMetricReader,
) -> None:
    seen: dict[str, dict[str, int | float]] = {}

    def probe(name: str) -> exegraph.Step:
        async def act() -> None:
            await trio.sleep(1)
            points = metric_points(metric_reader, "exegraph.step.active")
            seen[name] = {
                dict(k)["cicd.pipeline.task.name"]: getattr(p, "value", -1)
                for k, p in points.items()
            }

        return exegraph.Step(name, act)

    await exegraph.run(
        Graph([probe("one"), probe("two")]), exegraph_otel.traced(instrument=instrument)
    )

    # Both run at once: whichever probes second sees both at 1 or the other at 0.
    assert seen["one"]["one"] == 1
    assert seen["two"]["two"] == 1
    points = metric_points(metric_reader, "exegraph.step.active")
    assert {k: getattr(p, "value", None) for k, p in points.items()} == {
        key(cicd_pipeline_name="exegraph", cicd_pipeline_task_name="one"): 0,
        key(cicd_pipeline_name="exegraph", cicd_pipeline_task_name="two"): 0,
    }
    for point in points.values():
        assert isinstance(point, NumberDataPoint)


async def test_run_durations_are_a_histogram_by_result(
    autojump_clock: trio.testing.MockClock,
    instrument: exegraph_otel.OtelInstrument,
    metric_reader: InMemoryMetricReader,
) -> None:
    await run_mixed(instrument)
    await exegraph.run(Graph([step("quick", 0.5)]), exegraph_otel.traced(instrument=instrument))

    summary = histogram_summary(metric_reader, "exegraph.run.duration")
    assert summary == {
        key(cicd_pipeline_name="exegraph", cicd_pipeline_result="failure")
        | {("error.type", "exegraph_trio.RunError")}: (1, 3.0),
        key(cicd_pipeline_name="exegraph", cicd_pipeline_result="success"): (1, 0.5),
    }


async def test_metrics_are_named_and_described_by_the_otel_rules(
    autojump_clock: trio.testing.MockClock,
    instrument: exegraph_otel.OtelInstrument,
    metric_reader: InMemoryMetricReader,
) -> None:
    await run_mixed(instrument)

    data = metric_reader.get_metrics_data()
    assert data is not None
    (resource_metrics,) = data.resource_metrics
    (scope_metrics,) = resource_metrics.scope_metrics
    assert scope_metrics.scope.name == "exegraph_otel"
    assert scope_metrics.scope.version == exegraph.__version__
    units = {metric.name: metric.unit for metric in scope_metrics.metrics}
    assert units == {
        "exegraph.step.duration": "s",
        "exegraph.step.active": "{step}",
        "exegraph.step.outcomes": "{step}",
        "exegraph.run.duration": "s",
    }
    assert all(metric.description for metric in scope_metrics.metrics)
    allowed = {
        "cicd.pipeline.name",
        "cicd.pipeline.task.name",
        "cicd.pipeline.task.run.result",
        "cicd.pipeline.result",
        "error.type",
    }
    for metric in scope_metrics.metrics:
        for point in metric.data.data_points:
            assert set(point.attributes or {}) <= allowed, metric.name


async def test_the_pipeline_name_is_a_metric_attribute(
    autojump_clock: trio.testing.MockClock,
    metric_reader: InMemoryMetricReader,
    meter_provider: MeterProvider,
) -> None:
    release = exegraph_otel.OtelInstrument(meter_provider=meter_provider, pipeline_name="release")
    await exegraph.run(Graph([step("tag", 1)]), exegraph_otel.traced(instrument=release))

    points = metric_points(metric_reader, "exegraph.run.duration")
    assert list(points) == [key(cicd_pipeline_name="release", cicd_pipeline_result="success")]
