"""Wire: a run exported by the real OTLP/HTTP exporter arrives whole at a collector.

Charter: localhost only. The test starts a tiny OTLP/HTTP receiver on 127.0.0.1 (port chosen
by the OS) in a thread, points the real `OTLPSpanExporter` (behind the SDK's
`BatchSpanProcessor`, as in production) at it, decodes what arrives with
`opentelemetry-proto` and asserts the same tree, links, attributes and status as the
in-memory tests. Proxy variables are removed so 127.0.0.1 is reached directly; every
network wait is bounded by the exporter's timeout. Jaeger ingests this same OTLP stream.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import trio
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

import exegraph_otel
import exegraph_trio as exegraph
from exegraph_trio import ErrorPolicy, Graph, RunOptions

from .helpers import Received, otlp_receiver, step, wire_links, wire_outline

PROXY_VARIABLES = (
    "http_proxy",
    "https_proxy",
    "all_proxy",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
)


@pytest.fixture
def receiver(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, Received]]:
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    with otlp_receiver() as found:
        yield found


async def test_a_run_exported_over_otlp_http_arrives_as_the_same_tree(
    autojump_clock: trio.testing.MockClock, receiver: tuple[str, Received]
) -> None:
    url, received = receiver
    provider = TracerProvider(
        resource=Resource.create({"service.name": "wire-test"}), shutdown_on_exit=False
    )
    exporter = OTLPSpanExporter(endpoint=f"{url}/v1/traces", timeout=10)
    provider.add_span_processor(BatchSpanProcessor(exporter))
    instrument = exegraph_otel.OtelInstrument(
        tracer_provider=provider, pipeline_name="wire", record_exceptions=True
    )
    tracer = provider.get_tracer("app")

    async def build() -> None:
        with tracer.start_as_current_span("compile"):
            await trio.sleep(1)

    graph = Graph(
        [
            step("fetch", 1, tags=["io"]),
            exegraph.Step("build", build, depends_on=["fetch"]),
            step("test", 1, depends_on=["fetch"], error=AssertionError("3 tests failed")),
            step("publish", 1, depends_on=["build", "test"]),
        ]
    )
    options = RunOptions(error_policy=ErrorPolicy.CONTINUE_ON_ERROR)
    try:
        result = await exegraph.run_with_result(
            graph, exegraph_otel.traced(options, instrument=instrument)
        )
        assert provider.force_flush(timeout_millis=10_000)
    finally:
        provider.shutdown()
    assert not result.ok

    assert set(received.paths) == {"/v1/traces"}
    spans = received.spans()
    assert sorted(wire_outline(spans)) == [
        "RUN wire <- -: failure ERROR(1 of 4 steps failed, 1 skipped)",
        "build <- RUN wire: success",
        "compile <- build: ?",
        "fetch <- RUN wire: success",
        "publish <- RUN wire: skip",
        "test <- RUN wire: failure ERROR(3 tests failed)",
    ]
    assert wire_links(spans) == {
        "build": [("fetch", "depends_on")],
        "test": [("fetch", "depends_on")],
        "publish": [
            ("build", "depends_on"),
            ("test", "depends_on"),
            ("test", "failed_dependency"),
        ],
    }
    assert len({span.trace_id for span in spans}) == 1
    assert {span.resource.get("service.name") for span in spans} == {"wire-test"}

    named = {span.name: span for span in spans}
    run_id = named["RUN wire"].attributes["exegraph.run.id"]
    unique = named["RUN wire"].attributes["cicd.pipeline.run.id"]
    assert named["fetch"].attributes == {
        "cicd.pipeline.name": "wire",
        "cicd.pipeline.task.name": "fetch",
        "cicd.pipeline.task.run.id": f"{unique}/fetch",
        "cicd.pipeline.task.run.result": "success",
        "exegraph.run.id": run_id,
        "exegraph.step.priority": 3,
        "exegraph.step.tags": ("io",),
        "exegraph.step.trigger_rule": "all_success",
        "exegraph.step.attempts": 1,
    }
    assert named["test"].attributes["error.type"] == "AssertionError"
    ((event, event_attributes),) = named["test"].events
    assert (event, event_attributes["exception.type"]) == ("exception", "AssertionError")
    assert not named["fetch"].events
    assert named["fetch"].scope == "exegraph_otel"
    assert named["fetch"].kind == 1  # SPAN_KIND_INTERNAL
    assert named["RUN wire"].kind == 2  # SPAN_KIND_SERVER
    assert named["fetch"].end - named["fetch"].start == 1_000_000_000
    assert named["publish"].end == named["publish"].start
    assert named["publish"].attributes["exegraph.step.skip_reason"] == "failed_dependency"
