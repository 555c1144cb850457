"""Helpers for the `exegraph_otel` tests: span outlines, metric points, an OTLP receiver.

Everything here is local: the receiver listens on 127.0.0.1 on a port the OS picks, and
step actions sleep in virtual time only.
"""

from __future__ import annotations

import http.server
import threading
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import trio
from opentelemetry import trace
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.sdk.metrics.export import (
    HistogramDataPoint,
    InMemoryMetricReader,
    NumberDataPoint,
)
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import StatusCode

import exegraph_trio as exegraph
from exegraph_trio import Retry

RUN = "RUN exegraph"
RESULT = "cicd.pipeline.task.run.result"
RUN_RESULT = "cicd.pipeline.result"


def action(seconds: float = 0.0, *, error: BaseException | None = None) -> exegraph.Action:
    """An action that sleeps `seconds` of virtual time, then raises `error` if given."""

    async def act() -> None:
        await trio.sleep(seconds)
        if error is not None:
            raise error

    return act


def step(
    name: str,
    seconds: float = 0.0,
    *,
    depends_on: Sequence[str] = (),
    error: BaseException | None = None,
    tags: Sequence[str] = (),
    timeout: float | None = None,
) -> exegraph.Step:
    """A step whose action sleeps `seconds`, then raises `error` if given."""
    return exegraph.Step(
        name, action(seconds, error=error), depends_on=depends_on, tags=tags, timeout=timeout
    )


def flaky(
    name: str,
    seconds: float,
    failures: int,
    *,
    retry: Retry | None,
    error: Callable[[int], Exception] = lambda n: ConnectionError(f"refused {n}"),
    depends_on: Sequence[str] = (),
    timeout: float | None = None,
) -> exegraph.Step:
    """A step whose attempts sleep `seconds`; the first `failures` then raise `error(n)`."""
    attempts = 0

    async def act() -> None:
        nonlocal attempts
        attempts += 1
        await trio.sleep(seconds)
        if attempts <= failures:
            raise error(attempts)

    return exegraph.Step(name, act, retry=retry, depends_on=depends_on, timeout=timeout)


def resource(
    name: str,
    setup: float,
    teardown: float,
    *,
    depends_on: Sequence[str] = (),
    error: Exception | None = None,
    log: list[str] | None = None,
    tracer: trace.Tracer | None = None,
    timeout: float | None = None,
) -> exegraph.Step:
    """A resource step (an async generator): setup, yield, teardown (raising `error`)."""

    async def hold() -> AsyncIterator[str]:
        await trio.sleep(setup)
        if log is not None:
            log.append(f"{name} up in {getattr(trace.get_current_span(), 'name', '?')}")
        yield name
        if log is not None:
            log.append(f"{name} down in {getattr(trace.get_current_span(), 'name', '?')}")
        if tracer is not None:
            with tracer.start_as_current_span(f"release {name}"):
                await trio.sleep(teardown)
        else:
            await trio.sleep(teardown)
        if error is not None:
            raise error

    return exegraph.Step(name, hold, depends_on=depends_on, timeout=timeout)


# -- spans ------------------------------------------------------------------------------------


def by_name(spans: Sequence[ReadableSpan]) -> dict[str, ReadableSpan]:
    """The spans by name (names must be unique in the spans given)."""
    named = {span.name: span for span in spans}
    assert len(named) == len(spans), f"span names repeat: {[s.name for s in spans]}"
    return named


def outline(spans: Sequence[ReadableSpan]) -> list[str]:
    """One line per span, in start order: `name <- parent: result`, plus `ERROR(message)`.

    The parent is the parent span's name, `-` for a root, `?` for a span not given.
    """
    names = {span.context.span_id: span.name for span in spans if span.context is not None}
    lines = []
    for span in sorted(spans, key=lambda s: (s.start_time or 0, s.name)):
        parent = "-" if span.parent is None else names.get(span.parent.span_id, "?")
        attributes = span.attributes or {}
        result = attributes.get(RESULT, attributes.get(RUN_RESULT, "?"))
        line = f"{span.name} <- {parent}: {result}"
        if span.status.status_code is StatusCode.ERROR:
            line += f" ERROR({span.status.description})"
        elif span.status.status_code is not StatusCode.UNSET:  # pragma: no cover - a bug
            line += f" {span.status.status_code.name}"
        lines.append(line)
    return lines


def timeline(spans: Sequence[ReadableSpan]) -> list[str]:
    """`outline` with each span's start and end, in seconds after the first run span started.

    For the instrument's spans only (all in virtual time): `name <- parent [start, end]:
    result`, where the result is `?` when the span has none (attempt spans have one,
    teardown spans do not).
    """
    origin = min(span.start_time or 0 for span in spans if span.name.startswith("RUN "))
    lines = outline(spans)
    ordered = sorted(spans, key=lambda s: (s.start_time or 0, s.name))
    timed = []
    for line, span in zip(lines, ordered, strict=True):
        start = ((span.start_time or 0) - origin) / 1e9
        end = ((span.end_time or 0) - origin) / 1e9
        head, _, tail = line.partition(": ")
        timed.append(f"{head} [{start:g}, {end:g}]: {tail}")
    return timed


def links(spans: Sequence[ReadableSpan]) -> dict[str, list[tuple[str, str]]]:
    """For each span with links: the linked spans' names and the links' `exegraph.link.type`."""
    names = {span.context.span_id: span.name for span in spans if span.context is not None}
    found: dict[str, list[tuple[str, str]]] = {}
    for span in spans:
        if span.links:
            found[span.name] = [
                (
                    names.get(link.context.span_id, "?"),
                    str((link.attributes or {}).get("exegraph.link.type")),
                )
                for link in span.links
            ]
    return found


def seconds(spans: Sequence[ReadableSpan]) -> dict[str, tuple[float, float]]:
    """Each span's start and end, in seconds after the (first) run span started.

    Only the instrument's spans are in virtual time under a mock clock; spans made by
    the test's own tracer are in real time, so they are not compared.
    """
    origin = min(span.start_time or 0 for span in spans if span.name.startswith("RUN "))
    return {
        span.name: (((span.start_time or 0) - origin) / 1e9, ((span.end_time or 0) - origin) / 1e9)
        for span in spans
    }


# -- metrics ----------------------------------------------------------------------------------

Attrs = frozenset[tuple[str, Any]]


def metric_points(
    reader: InMemoryMetricReader, name: str
) -> dict[Attrs, NumberDataPoint | HistogramDataPoint]:
    """The current data points of the metric `name`, keyed by their attributes."""
    data = reader.get_metrics_data()
    found: dict[Attrs, NumberDataPoint | HistogramDataPoint] = {}
    if data is None:
        return found
    for resource_metrics in data.resource_metrics:
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                if metric.name == name:
                    for point in metric.data.data_points:
                        assert isinstance(point, NumberDataPoint | HistogramDataPoint)
                        found[frozenset((point.attributes or {}).items())] = point
    return found


def key(**attributes: str) -> Attrs:
    """A `metric_points` key, with `_` for `.` in names (`cicd_pipeline_name="exegraph"`)."""
    return frozenset((name.replace("_", "."), value) for name, value in attributes.items())


# -- an OTLP/HTTP receiver ----------------------------------------------------------------------


class Received:
    """What an `otlp_receiver` got: the decoded export requests and their paths."""

    def __init__(self) -> None:
        self.requests: list[ExportTraceServiceRequest] = []
        self.paths: list[str] = []
        self.lock = threading.Lock()

    def spans(self) -> list[WireSpan]:
        """Every span received, with its resource's attributes."""
        with self.lock:
            requests = list(self.requests)
        found: list[WireSpan] = []
        for request in requests:
            for resource_spans in request.resource_spans:
                resource = _attributes(resource_spans.resource.attributes)
                for scope_spans in resource_spans.scope_spans:
                    scope = scope_spans.scope.name
                    found.extend(WireSpan(span, resource, scope) for span in scope_spans.spans)
        return found


class WireSpan:
    """A span as decoded from OTLP protobuf, with plain-Python attributes."""

    def __init__(self, span: Any, resource: dict[str, object], scope: str) -> None:
        self.name: str = span.name
        self.span_id: bytes = span.span_id
        self.trace_id: bytes = span.trace_id
        self.parent_span_id: bytes = span.parent_span_id
        self.start: int = span.start_time_unix_nano
        self.end: int = span.end_time_unix_nano
        self.kind: int = span.kind
        self.status_code: int = span.status.code
        self.status_message: str = span.status.message
        self.attributes = _attributes(span.attributes)
        self.links: list[tuple[bytes, dict[str, object]]] = [
            (link.span_id, _attributes(link.attributes)) for link in span.links
        ]
        self.events: list[tuple[str, dict[str, object]]] = [
            (event.name, _attributes(event.attributes)) for event in span.events
        ]
        self.resource = resource
        self.scope = scope


def wire_outline(spans: Sequence[WireSpan]) -> list[str]:
    """`outline` for spans received over the wire."""
    names = {span.span_id: span.name for span in spans}
    lines = []
    for span in sorted(spans, key=lambda s: (s.start, s.name)):
        parent = names.get(span.parent_span_id, "?") if span.parent_span_id else "-"
        result = span.attributes.get(RESULT, span.attributes.get(RUN_RESULT, "?"))
        line = f"{span.name} <- {parent}: {result}"
        if span.status_code == 2:  # STATUS_CODE_ERROR
            line += f" ERROR({span.status_message})"
        lines.append(line)
    return lines


def wire_links(spans: Sequence[WireSpan]) -> dict[str, list[tuple[str, str]]]:
    """`links` for spans received over the wire."""
    names = {span.span_id: span.name for span in spans}
    return {
        span.name: [
            (names.get(sid, "?"), str(a.get("exegraph.link.type"))) for sid, a in span.links
        ]
        for span in spans
        if span.links
    }


def _attributes(key_values: Any) -> dict[str, object]:
    return {kv.key: _value(kv.value) for kv in key_values}


def _value(value: AnyValue) -> object:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return tuple(_value(item) for item in value.array_value.values)
    if kind is None:
        return None
    return getattr(value, kind)


@contextmanager
def otlp_receiver() -> Iterator[tuple[str, Received]]:
    """Serve OTLP/HTTP trace exports on 127.0.0.1 in a thread; yield its base URL.

    Only `POST /v1/traces` with a protobuf body is accepted (404 otherwise).
    """
    received = Received()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            if self.path != "/v1/traces":
                self.send_error(404)
                return
            request = ExportTraceServiceRequest()
            request.ParseFromString(body)
            with received.lock:
                received.requests.append(request)
                received.paths.append(self.path)
            reply = ExportTraceServiceResponse().SerializeToString()
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(
        target=server.serve_forever, args=(0.01,), name="otlp-receiver", daemon=True
    )
    thread.start()
    try:
        host, port = server.server_address[:2]
        yield f"http://{host!s}:{port}", received
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def proxyless_env(environ: Mapping[str, str]) -> dict[str, str]:
    """A copy of `environ` without proxy settings, so that 127.0.0.1 is reached directly."""
    env = {k: v for k, v in environ.items() if k.lower() not in _PROXY_VARS}
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    return env


_PROXY_VARS = frozenset({"http_proxy", "https_proxy", "all_proxy", "no_proxy"})
