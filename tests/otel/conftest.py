"""Fixtures: SDK providers with in-memory exporters, injected (never the global ones).

Every test also checks that OpenTelemetry and the engine stayed silent: no
"Failed to detach context", no instrument disabled by the engine, no SDK complaint. A test
that provokes such a log on purpose asserts it and then calls `caplog.clear()`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import exegraph_otel

WATCHED_LOGGERS = ("opentelemetry", "exegraph_trio", "exegraph_otel")


@pytest.fixture
def span_exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def tracer_provider(span_exporter: InMemorySpanExporter) -> Iterator[TracerProvider]:
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(span_exporter))
    yield provider
    provider.shutdown()


@pytest.fixture
def metric_reader() -> InMemoryMetricReader:
    return InMemoryMetricReader()


@pytest.fixture
def meter_provider(metric_reader: InMemoryMetricReader) -> Iterator[MeterProvider]:
    provider = MeterProvider(metric_readers=[metric_reader], shutdown_on_exit=False)
    yield provider
    provider.shutdown()


@pytest.fixture
def instrument(
    tracer_provider: TracerProvider, meter_provider: MeterProvider
) -> exegraph_otel.OtelInstrument:
    return exegraph_otel.OtelInstrument(
        tracer_provider=tracer_provider, meter_provider=meter_provider
    )


@pytest.fixture(autouse=True)
def _no_complaints(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    caplog.set_level(logging.DEBUG, logger="opentelemetry.context")
    yield
    noisy = [
        f"{record.name}: {record.getMessage()}"
        for record in caplog.get_records("call")
        if record.name.startswith(WATCHED_LOGGERS) and record.levelno >= logging.WARNING
    ]
    assert not noisy, noisy
