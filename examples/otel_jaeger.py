r"""Send exegraph runs to Jaeger as OpenTelemetry traces, over OTLP/HTTP.

Start Jaeger — the all-in-one container has an OTLP/HTTP receiver (4318) and its web UI
(16686):

```console
$ docker run --rm -p 16686:16686 -p 4318:4318 jaegertracing/all-in-one:latest
```

(Jaeger 2, `jaegertracing/jaeger:latest`, takes the same command.) Then run the example and
open <http://localhost:16686>, pick the service `exegraph-example` and find the trace
`release` → `RUN release` → one span per step:

```console
$ pip install "exegraph-trio[otlp]"     # the OpenTelemetry SDK and OTLP/HTTP exporter
$ python examples/otel_jaeger.py
```

The standard OpenTelemetry environment variables configure the export:

- `OTEL_EXPORTER_OTLP_ENDPOINT`: where the collector listens, `http://localhost:4318` by
  default (the exporter adds `/v1/traces`); or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` for the
  full URL. Any OTLP/HTTP collector works: Jaeger ingests the same stream as the
  OpenTelemetry Collector, Grafana Tempo or Honeycomb.
- `OTEL_SERVICE_NAME`: the service the traces belong to (`exegraph-example` here if unset).
- `OTEL_EXPORTER_OTLP_TIMEOUT`, `OTEL_EXPORTER_OTLP_HEADERS`, ...: as usual.

Before the run, the example tries a TCP connection to the collector (for one second at
most). With no collector listening it still runs the pipeline, exports nothing, and says
so and how to start Jaeger, instead of letting the exporter retry for its timeout (10 s)
and log a failure. At the end it says how many spans the collector accepted; the run
itself is never affected by the export.

This is the set-up an application would use: the SDK's tracer provider is set once as the
global one, and each run gets `exegraph_otel.traced()`.
"""

from __future__ import annotations

import os
import socket
import urllib.parse
from collections.abc import Sequence

import trio
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExportResult

import exegraph_otel
import exegraph_trio as exegraph

START_JAEGER = "docker run --rm -p 16686:16686 -p 4318:4318 jaegertracing/all-in-one:latest"

tracer = trace.get_tracer("examples.otel_jaeger")  # follows the global provider once set


async def fetch() -> None:
    await trio.sleep(0.01)


async def compile_sources() -> None:
    async def compile_one(module: str) -> None:
        with tracer.start_as_current_span(f"compile {module}"):
            await trio.sleep(0.01)

    async with trio.open_nursery() as nursery:
        for module in ("core", "cli"):
            nursery.start_soon(compile_one, module)


async def run_tests() -> None:
    with tracer.start_as_current_span("pytest", attributes={"tests": 42}):
        await trio.sleep(0.02)


async def deploy() -> None:
    await trio.sleep(0.01)


def build_graph() -> exegraph.Graph:
    return exegraph.Graph(
        [
            exegraph.Step("fetch", fetch, tags=["io"]),
            exegraph.Step("compile", compile_sources, depends_on=["fetch"]),
            exegraph.Step("test", run_tests, depends_on=["compile"], tags=["check"]),
            exegraph.Step("deploy", deploy, depends_on=["test"], tags=["io"]),
        ]
    )


async def release() -> None:
    instrument = exegraph_otel.OtelInstrument(pipeline_name="release")  # global providers
    with tracer.start_as_current_span("release"):  # the run span becomes its child
        await exegraph.run(build_graph(), exegraph_otel.traced(instrument=instrument))


def traces_endpoint() -> str:
    """The URL spans are sent to, resolved from the environment as the exporter does."""
    if full := os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        return full
    base = os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or "http://localhost:4318"
    return f"{base.removesuffix('/')}/v1/traces"


def unreachable(url: str, timeout: float = 1.0) -> str | None:
    """Why no TCP connection to `url`'s host and port can be made; `None` if one can."""
    parts = urllib.parse.urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname or "localhost", port), timeout=timeout):
            return None
    except OSError as error:
        return str(error) or type(error).__name__


class CountingExporter(OTLPSpanExporter):
    """The OTLP/HTTP exporter, counting the spans the collector accepted and those it did not.

    `force_flush` and `shutdown` do not say whether the export succeeded; this does.
    """

    def __init__(self, endpoint: str) -> None:
        super().__init__(endpoint=endpoint)
        self.accepted = 0
        self.lost = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Export `spans` as the OTLP exporter does, and count them by result."""
        result = super().export(spans)
        if result is SpanExportResult.SUCCESS:
            self.accepted += len(spans)
        else:
            self.lost += len(spans)
        return result


def main() -> None:
    service = os.environ.get("OTEL_SERVICE_NAME", "exegraph-example")
    endpoint = traces_endpoint()
    problem = unreachable(endpoint)
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    exporter = CountingExporter(endpoint)
    if problem is None:
        provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)

    try:
        trio.run(release)
        if problem is None:
            print(f"sending the trace of service {service!r} to {endpoint} ...")
    finally:
        provider.shutdown()  # sends what is still buffered

    if problem is not None:
        print(f"nothing was exported: no collector answers at {endpoint} ({problem}).")
        print(f"Start Jaeger, then run this again:\n    {START_JAEGER}")
    elif exporter.lost:
        exported = (
            f"only {exporter.accepted} of {exporter.accepted + exporter.lost} spans were"
            if exporter.accepted
            else "nothing was"
        )
        print(
            f"{exported} exported: the collector at {endpoint} did not accept "
            f"{exporter.lost} spans (the exporter's error is above)."
        )
    else:
        print(
            f"done: {exporter.accepted} spans exported; "
            f"in Jaeger: http://localhost:16686/search?service={service}"
        )


if __name__ == "__main__":
    main()
