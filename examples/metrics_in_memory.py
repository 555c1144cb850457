"""OpenTelemetry metrics of exegraph runs, read back in-process.

Run it with `python examples/metrics_in_memory.py` (needs `pip install -e '.[otlp]'`
for the OpenTelemetry SDK).

`exegraph_otel.OtelInstrument` records six metrics for every run it watches, among them
`exegraph.step.duration` and `exegraph.run.duration` (histograms, in seconds),
`exegraph.step.active` (steps running now) and `exegraph.step.outcomes` (steps by result);
`exegraph.step.retries` and `exegraph.teardown.duration` count retries and time teardowns.
Here the SDK's `InMemoryMetricReader` collects them after three runs of the demo
pipeline, and the script prints a summary; in production you would attach a
`PeriodicExportingMetricReader` with an OTLP or Prometheus exporter instead.
"""

from __future__ import annotations

from collections.abc import Iterator

import demo_pipeline
import trio
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    HistogramDataPoint,
    InMemoryMetricReader,
    Metric,
    NumberDataPoint,
)
from opentelemetry.trace import NoOpTracerProvider

import exegraph_otel
import exegraph_trio as exegraph


# --8<-- [start:setup]
def metrics_only(reader: InMemoryMetricReader) -> exegraph_otel.OtelInstrument:
    """An instrument that records metrics into `reader` and makes no spans."""
    return exegraph_otel.OtelInstrument(
        meter_provider=MeterProvider(metric_readers=[reader]),
        tracer_provider=NoOpTracerProvider(),
        pipeline_name="deploy",
    )


# --8<-- [end:setup]


def collected(reader: InMemoryMetricReader) -> Iterator[Metric]:
    data = reader.get_metrics_data()
    if data is None:
        return
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            yield from scope.metrics


Point = HistogramDataPoint | NumberDataPoint


def attribute(point: Point, key: str) -> str:
    return str((point.attributes or {}).get(key, "-"))


async def main() -> None:
    reader = InMemoryMetricReader()
    options = exegraph.RunOptions(
        max_concurrency=4,
        error_policy=exegraph.ErrorPolicy.CONTINUE_ON_ERROR,
        instruments=[metrics_only(reader)],
    )
    for _ in range(3):
        await exegraph.run_with_result(demo_pipeline.build_graph(), options)

    for metric in collected(reader):
        print(f"{metric.name} ({metric.unit}): {metric.description}")
        points = sorted(
            (p for p in metric.data.data_points if isinstance(p, Point)),
            key=lambda p: (attribute(p, "cicd.pipeline.task.name"), attribute(p, "error.type")),
        )
        for point in points:
            task = attribute(point, "cicd.pipeline.task.name")
            result = attribute(point, "cicd.pipeline.task.run.result")
            if task == "-":  # run-level points
                task, result = "(run)", attribute(point, "cicd.pipeline.result")
            if isinstance(point, HistogramDataPoint):
                mean = point.sum / point.count if point.count else 0.0
                print(f"  {task:<14} {result:<8} count={point.count}  mean={mean * 1000:.0f} ms")
            elif metric.name != "exegraph.step.active":  # all back to 0 after the runs
                print(f"  {task:<14} {result:<8} {point.value}")


if __name__ == "__main__":
    trio.run(main)
