r"""Send exegraph runs to Jaeger as OpenTelemetry traces, over OTLP/HTTP.

Start Jaeger — the all-in-one container has an OTLP receiver (4317 gRPC, 4318 HTTP) and
its web UI (16686):

```console
$ docker run --rm --name jaeger -p 16686:16686 -p 4317:4317 -p 4318:4318 \
      jaegertracing/all-in-one:latest
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
- `OTEL_EXPORTER_OTLP_TIMEOUT`, `OTEL_EXPORTER_OTLP_HEADERS`, ...: as usual. With no
  collector listening, the exporter retries for its timeout (10 s by default), then logs
  that the export failed; the run itself is never affected.

This is the set-up an application would use: the SDK's tracer provider is set once as the
global one, and each run gets `exegraph_otel.traced()`.
"""

from __future__ import annotations

import os

import trio
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

import exegraph_otel
import exegraph_trio as exegraph

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


def main() -> None:
    service = os.environ.get("OTEL_SERVICE_NAME", "exegraph-example")
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)

    endpoint = os.environ.get(
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "http://localhost:4318"),
    )
    try:
        trio.run(release)
        print(f"sending the trace of service {service!r} to {endpoint} ...")
    finally:
        provider.shutdown()  # sends what is still buffered (the SDK logs it if that fails)
    print(f"done; in Jaeger: http://localhost:16686/search?service={service}")


if __name__ == "__main__":
    main()
