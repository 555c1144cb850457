"""Trace and measure an exegraph run with the OpenTelemetry SDK, printed to the console.

```console
$ pip install "exegraph-trio[otlp]"     # the OpenTelemetry SDK (and the OTLP exporter)
$ python examples/otel_console.py
```

A small CI-like pipeline runs once under `ErrorPolicy.CONTINUE_ON_ERROR`: `docs` fails, so
`publish-docs` is skipped, and everything else succeeds. `test` runs two shards in its own
nursery, each with a span of its own, which nest under the `test` step span.

What it prints:

1. one line per span as the `ConsoleSpanExporter` receives it (children end, and so
   print, before their parents; pass no `formatter` to see the full JSON of each span);
2. the same spans as a tree: name, result, duration, and the steps each one links to;
3. the run's metrics, from a `ConsoleMetricExporter`, when the meter provider shuts down.

The providers are passed to the instrument explicitly here; in an application you would
rather set them once as the global providers (see `examples/otel_jaeger.py`) and use
`exegraph_otel.traced()`.
"""

from __future__ import annotations

from functools import partial

import trio
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    ConsoleMetricExporter,
    HistogramDataPoint,
    MetricsData,
    NumberDataPoint,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Tracer

import exegraph_otel
import exegraph_trio as exegraph


def build_graph(tracer: Tracer) -> exegraph.Graph:
    """The pipeline.

    checkout → lint, test, docs; lint + test → build → package; docs → publish-docs.
    """

    async def work(seconds: float) -> None:
        await trio.sleep(seconds)

    async def shard(n: int) -> None:
        with tracer.start_as_current_span(f"shard {n}", attributes={"shard": n}):
            await trio.sleep(0.01 * n)

    async def test() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(shard, 1)
            nursery.start_soon(shard, 2)

    async def docs() -> None:
        await trio.sleep(0.005)
        raise RuntimeError("sphinx: 2 warnings treated as errors")

    builder = exegraph.GraphBuilder()
    builder.add_step(exegraph.Step("checkout", partial(work, 0.01)))
    builder.add_step(exegraph.Step("lint", partial(work, 0.015), depends_on=["checkout"]))
    builder.add_step(exegraph.Step("test", test, depends_on=["checkout"], tags=["check"]))
    builder.add_step(exegraph.Step("docs", docs, depends_on=["checkout"]))
    builder.add_step(exegraph.Step("build", partial(work, 0.01), depends_on=["lint", "test"]))
    builder.add_step(exegraph.Step("package", partial(work, 0.005), depends_on=["build"]))
    builder.add_step(exegraph.Step("publish-docs", partial(work, 0.005), depends_on=["docs"]))
    return builder.build()


def one_line(span: ReadableSpan) -> str:
    """A `ConsoleSpanExporter` formatter: one line per span instead of a JSON document."""
    attributes = span.attributes or {}
    result = attributes.get("cicd.pipeline.task.run.result", attributes.get("cicd.pipeline.result"))
    span_id = span.context.span_id if span.context else 0
    parent = f"{span.parent.span_id:016x}" if span.parent else "-" * 16
    millis = ((span.end_time or 0) - (span.start_time or 0)) / 1e6
    name, result = span.name, result or ""
    return f"span {span_id:016x} parent {parent}  {name:<14} {result:<12} {millis:6.1f} ms\n"


def link_summary(span: ReadableSpan, names: dict[int, str]) -> str:
    """The spans `span` links to, each once, with any link type but `depends_on`.

    A skipped step links to each dependency (`depends_on`) and to the failed step that
    caused the skip (`failed_dependency`), often the same span: `docs (failed_dependency)`.
    """
    types: dict[str, list[str]] = {}
    for link in span.links:
        kind = str((link.attributes or {}).get("exegraph.link.type", ""))
        found = types.setdefault(names.get(link.context.span_id, "?"), [])
        if kind != "depends_on":
            found.append(kind)
    return ", ".join(
        f"{name} ({', '.join(kinds)})" if kinds else name for name, kinds in types.items()
    )


def tree(spans: tuple[ReadableSpan, ...]) -> str:
    """The spans as an indented tree, children in start order."""
    names = {span.context.span_id: span.name for span in spans if span.context}
    children: dict[int | None, list[ReadableSpan]] = {}
    for span in spans:
        children.setdefault(span.parent.span_id if span.parent else None, []).append(span)
    lines: list[str] = []

    def show(parent: int | None, depth: int) -> None:
        for span in sorted(children.get(parent, []), key=lambda s: (s.start_time or 0, s.name)):
            attributes = span.attributes or {}
            result = attributes.get(
                "cicd.pipeline.task.run.result", attributes.get("cicd.pipeline.result", "")
            )
            millis = ((span.end_time or 0) - (span.start_time or 0)) / 1e6
            label = f"{'  ' * depth}{span.name}"
            linked = link_summary(span, names)
            extra = f"  links: {linked}" if linked else ""
            lines.append(f"{label:<20} {result!s:<12} {millis:6.1f} ms{extra}")
            if span.context:
                show(span.context.span_id, depth + 1)

    show(None, 0)
    return "\n".join(lines)


def metric_lines(data: MetricsData) -> str:
    """A `ConsoleMetricExporter` formatter: one line per data point."""
    lines = []
    for resource_metrics in data.resource_metrics:
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                for point in metric.data.data_points:
                    labels = ", ".join(
                        f"{k.removeprefix('cicd.pipeline.')}={v!s}"
                        for k, v in (point.attributes or {}).items()
                    )
                    if isinstance(point, HistogramDataPoint):
                        value = f"count={point.count} sum={point.sum:.3f}{metric.unit}"
                    elif isinstance(point, NumberDataPoint):
                        value = f"{point.value}"
                    else:  # pragma: no cover - no other kinds here
                        continue
                    lines.append(f"{metric.name:<24} {value:<24} {labels}")
    return "\n".join(lines) + "\n"


async def run_pipeline(instrument: exegraph_otel.OtelInstrument, tracer: Tracer) -> None:
    options = exegraph.RunOptions(error_policy=exegraph.ErrorPolicy.CONTINUE_ON_ERROR)
    result = await exegraph.run_with_result(
        build_graph(tracer), exegraph_otel.traced(options, instrument=instrument)
    )
    print("\n== run result ==")
    print(result.table())


def main() -> None:
    resource = Resource.create({"service.name": "exegraph-console-example"})
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter(formatter=one_line)))
    collected = InMemorySpanExporter()
    tracer_provider.add_span_processor(SimpleSpanProcessor(collected))
    metric_reader = PeriodicExportingMetricReader(
        ConsoleMetricExporter(formatter=metric_lines), export_interval_millis=3_600_000
    )
    meter_provider = MeterProvider(metric_readers=[metric_reader], resource=resource)

    instrument = exegraph_otel.OtelInstrument(
        tracer_provider=tracer_provider,
        meter_provider=meter_provider,
        pipeline_name="ci",
        record_exceptions=True,
    )
    print("== spans, as they end ==")
    trio.run(run_pipeline, instrument, tracer_provider.get_tracer("examples.otel_console"))

    print("\n== the trace ==")
    print(tree(collected.get_finished_spans()))
    print("\n== metrics ==")
    tracer_provider.shutdown()
    meter_provider.shutdown()  # exports the metrics one last time


if __name__ == "__main__":
    main()
