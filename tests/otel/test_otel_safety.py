"""Safety: telemetry never changes a run, whatever the provider, tracer, meter or exporter does.

Charter: each test runs the same graph with and without a broken OpenTelemetry piece and
asserts the run's outcome is identical (statuses, virtual times, error types); the instrument
logs the breakage once (logger `exegraph_otel`) and is never disabled by the engine (which
would log under `exegraph_trio`). Broken pieces are small fakes built on the API classes; no
global provider is touched. Virtual time only.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import pytest
import trio
from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader, NumberDataPoint
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import NonRecordingSpan, Span, SpanContext, TraceFlags

import exegraph_otel
import exegraph_trio as exegraph
from exegraph_trio import ErrorPolicy, Graph, Retry, RunOptions, RunResult

from .helpers import flaky, key, metric_points, outline, resource, seconds, step

Outcome = list[tuple[str, str, float | None, float | None, str | None]]


def graph() -> Graph:
    return Graph(
        [
            step("a", 1),
            step("b", 1, depends_on=["a"], error=ValueError("boom")),
            step("c", 3, depends_on=["a"]),
            step("d", 1, depends_on=["b"]),
            step("e", 5, timeout=2.5),
        ]
    )


def outcome(result: RunResult) -> Outcome:
    return sorted(
        (t.name, str(t.status), t.start, t.end, None if t.error is None else type(t.error).__name__)
        for t in result
    )


async def run_both(instrument: exegraph_otel.OtelInstrument) -> tuple[Outcome, Outcome]:
    """The outcome of the graph without and with `instrument`, both from time 0."""
    policy = ErrorPolicy.CONTINUE_ON_ERROR
    start = trio.current_time()
    plain = await exegraph.run_with_result(graph(), RunOptions(error_policy=policy))
    shift = trio.current_time() - start
    traced = await exegraph.run_with_result(
        graph(), exegraph_otel.traced(RunOptions(error_policy=policy), instrument=instrument)
    )
    shifted = [
        (n, s, None if a is None else a - shift, None if b is None else b - shift, e)
        for n, s, a, b, e in outcome(traced)
    ]
    return outcome(plain), shifted


def complaints(caplog: pytest.LogCaptureFixture, logger: str) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.get_records("call")
        if record.name == logger and record.levelno >= logging.WARNING
    ]


# -- broken fakes -----------------------------------------------------------------------------


class RaisingTracer(trace.Tracer):
    def start_span(self, *args: Any, **kwargs: Any) -> Span:
        raise RuntimeError("tracer down")

    def start_as_current_span(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("tracer down")


class SpanThatCannotEnd(NonRecordingSpan):
    def end(self, end_time: int | None = None) -> None:
        raise RuntimeError("cannot end")


class TracerOfUnendingSpans(trace.Tracer):
    def start_span(self, *args: Any, **kwargs: Any) -> Span:
        return SpanThatCannotEnd(SpanContext(1, 2, is_remote=False, trace_flags=TraceFlags(1)))

    def start_as_current_span(self, *args: Any, **kwargs: Any) -> Any:  # pragma: no cover
        raise NotImplementedError


class FakeTracerProvider(trace.TracerProvider):
    def __init__(self, tracer: trace.Tracer | None) -> None:
        self.tracer = tracer

    def get_tracer(self, *args: Any, **kwargs: Any) -> trace.Tracer:
        if self.tracer is None:
            raise RuntimeError("no tracers today")
        return self.tracer


class RaisingMeterProvider(metrics.MeterProvider):
    def get_meter(self, *args: Any, **kwargs: Any) -> metrics.Meter:
        raise RuntimeError("no meters today")


class RaisingCounter(metrics.NoOpUpDownCounter):
    def add(self, *args: Any, **kwargs: Any) -> None:
        raise RuntimeError("counter down")


class MeterOfRaisingCounters(metrics.NoOpMeter):
    def create_up_down_counter(self, *args: Any, **kwargs: Any) -> metrics.UpDownCounter:
        return RaisingCounter("broken")


class MeterProviderOfRaisingCounters(metrics.MeterProvider):
    def get_meter(self, *args: Any, **kwargs: Any) -> metrics.Meter:
        return MeterOfRaisingCounters("broken")


class RaisingExporter(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        raise ConnectionError("collector down")


class Budget:
    """How many more calls of each method succeed; the next one raises (absent: unlimited)."""

    def __init__(self, **calls: int) -> None:
        self.calls = calls

    def spend(self, method: str) -> None:
        left = self.calls.get(method)
        if left is None:
            return
        if left == 0:
            raise RuntimeError(f"{method} down")
        self.calls[method] = left - 1


class FlakySpan(trace.Span):
    """An SDK span whose methods fail once their budget is spent; `end` always works."""

    def __init__(self, span: trace.Span, budget: Budget) -> None:
        self.span = span
        self.budget = budget

    def end(self, end_time: int | None = None) -> None:
        self.span.end(end_time)

    def get_span_context(self) -> SpanContext:
        self.budget.spend("get_span_context")
        return self.span.get_span_context()

    def set_attributes(self, attributes: Any) -> None:
        self.budget.spend("set_attributes")
        self.span.set_attributes(attributes)

    def set_attribute(self, key: str, value: Any) -> None:
        self.budget.spend("set_attribute")
        self.span.set_attribute(key, value)

    def add_event(self, name: str, attributes: Any = None, timestamp: int | None = None) -> None:
        self.budget.spend("add_event")
        self.span.add_event(name, attributes, timestamp)

    def update_name(self, name: str) -> None:
        self.budget.spend("update_name")  # pragma: no cover - not called
        self.span.update_name(name)  # pragma: no cover

    def is_recording(self) -> bool:
        self.budget.spend("is_recording")
        return self.span.is_recording()

    def set_status(self, status: Any, description: str | None = None) -> None:
        self.budget.spend("set_status")
        self.span.set_status(status, description)

    def record_exception(
        self,
        exception: BaseException,
        attributes: Any = None,
        timestamp: int | None = None,
        escaped: bool = False,  # noqa: FBT002 - the API method's signature
    ) -> None:
        self.budget.spend("record_exception")  # pragma: no cover - not called
        self.span.record_exception(exception, attributes, timestamp, escaped)  # pragma: no cover


class FlakyTracer(trace.Tracer):
    """Starts SDK spans wrapped in `FlakySpan`, until `start_span`'s own budget is spent."""

    def __init__(self, tracer: trace.Tracer, budget: Budget) -> None:
        self.tracer = tracer
        self.budget = budget
        self.started: list[FlakySpan] = []

    def start_span(self, *args: Any, **kwargs: Any) -> Span:
        self.budget.spend("start_span")
        span = FlakySpan(self.tracer.start_span(*args, **kwargs), self.budget)
        self.started.append(span)
        return span

    def all_ended(self) -> bool:
        """Whether every span this tracer started has ended."""
        return all(getattr(s.span, "end_time", None) is not None for s in self.started)

    def start_as_current_span(self, *args: Any, **kwargs: Any) -> Any:  # pragma: no cover
        raise NotImplementedError


def flaky_instrument(
    provider: TracerProvider, meter_provider: metrics.MeterProvider, **calls: int
) -> exegraph_otel.OtelInstrument:
    """An instrument whose tracer (over `provider`) fails once `calls` are spent."""
    return flaky_instrument_and_tracer(provider, meter_provider, **calls)[0]


def flaky_instrument_and_tracer(
    provider: TracerProvider, meter_provider: metrics.MeterProvider, **calls: int
) -> tuple[exegraph_otel.OtelInstrument, FlakyTracer]:
    """`flaky_instrument`, and its tracer (to check that every span it started ended)."""
    tracer = FlakyTracer(provider.get_tracer("flaky"), Budget(**calls))
    instrument = exegraph_otel.OtelInstrument(
        tracer_provider=FakeTracerProvider(tracer), meter_provider=meter_provider
    )
    return instrument, tracer


@pytest.fixture
def no_meter() -> metrics.MeterProvider:
    return metrics.NoOpMeterProvider()


# -- tests ------------------------------------------------------------------------------------


async def test_a_tracer_that_raises_changes_nothing_and_is_reported_once_per_run(
    autojump_clock: trio.testing.MockClock,
    caplog: pytest.LogCaptureFixture,
    no_meter: metrics.MeterProvider,
) -> None:
    instrument = exegraph_otel.OtelInstrument(
        tracer_provider=FakeTracerProvider(RaisingTracer()), meter_provider=no_meter
    )
    plain, traced = await run_both(instrument)
    assert traced == plain

    (message,) = complaints(caplog, "exegraph_otel")
    assert message.startswith("exegraph_otel: tracing raised in run_started; no more tracing")
    assert complaints(caplog, "exegraph_trio") == []  # the engine never had to disable it
    caplog.clear()


async def test_a_span_that_cannot_end_still_restores_every_context(
    autojump_clock: trio.testing.MockClock,
    caplog: pytest.LogCaptureFixture,
    tracer_provider: TracerProvider,
    no_meter: metrics.MeterProvider,
) -> None:
    instrument = exegraph_otel.OtelInstrument(
        tracer_provider=FakeTracerProvider(TracerOfUnendingSpans()), meter_provider=no_meter
    )
    with tracer_provider.get_tracer("app").start_as_current_span("caller") as caller:
        plain, traced = await run_both(instrument)
        assert trace.get_current_span() is caller
    assert traced == plain

    (message,) = complaints(caplog, "exegraph_otel")
    assert message.startswith("exegraph_otel: tracing raised in step_done")
    assert complaints(caplog, "opentelemetry.context") == []  # no "Failed to detach context"
    caplog.clear()


@pytest.mark.parametrize("when", ["on_start", "on_end"])
async def test_ctrl_c_inside_the_tracer_still_leaves_the_metrics_whole(
    autojump_clock: trio.testing.MockClock,
    meter_provider: MeterProvider,
    metric_reader: InMemoryMetricReader,
    when: str,
) -> None:
    # A `KeyboardInterrupt` raised in the tracing part (Ctrl-C during a blocking export
    # of a span processor) skipped the metrics part: `exegraph.step.active` stayed at 1
    # (or -1) and the step's outcome was never counted (a review found it).
    class CtrlCDuringExport(SpanProcessor):
        def on_start(self, span: Any, parent_context: Any = None) -> None:
            if when == "on_start" and span.name == "a":
                raise KeyboardInterrupt

        def on_end(self, span: ReadableSpan) -> None:
            if when == "on_end" and span.name == "a":
                raise KeyboardInterrupt

    tracer_provider = TracerProvider(shutdown_on_exit=False)
    tracer_provider.add_span_processor(CtrlCDuringExport())
    instrument = exegraph_otel.OtelInstrument(
        tracer_provider=tracer_provider, meter_provider=meter_provider
    )

    async def one_second() -> None:
        await trio.sleep(1)

    graph = Graph([exegraph.Step("a", one_second), exegraph.Step("b", one_second)])
    with pytest.raises(KeyboardInterrupt):
        await exegraph.run(graph, RunOptions(instruments=[instrument]))
    active = metric_points(metric_reader, "exegraph.step.active")
    assert all(isinstance(point, NumberDataPoint) for point in active.values())
    values = {
        dict(attrs)["cicd.pipeline.task.name"]: point.value  # type: ignore[union-attr]
        for attrs, point in active.items()
    }
    # (`b` started, or was skipped first: Trio picks which of the two tasks runs first)
    assert values in ({"a": 0}, {"a": 0, "b": 0})
    outcomes = metric_points(metric_reader, "exegraph.step.outcomes")
    assert {dict(attrs)["cicd.pipeline.task.name"] for attrs in outcomes} == {"a", "b"}


async def test_a_provider_that_cannot_give_a_tracer_leaves_metrics_working(
    autojump_clock: trio.testing.MockClock,
    caplog: pytest.LogCaptureFixture,
    meter_provider: MeterProvider,
    metric_reader: InMemoryMetricReader,
) -> None:
    instrument = exegraph_otel.OtelInstrument(
        tracer_provider=FakeTracerProvider(None), meter_provider=meter_provider
    )
    (message,) = complaints(caplog, "exegraph_otel")
    assert message == "exegraph_otel: could not get a tracer; runs will not be traced"
    caplog.clear()

    plain, traced = await run_both(instrument)
    assert traced == plain
    runs = metric_points(metric_reader, "exegraph.run.duration")
    assert list(runs) == [
        key(cicd_pipeline_name="exegraph", cicd_pipeline_result="failure")
        | {("error.type", "exegraph_trio.RunError")}
    ]


async def test_a_provider_that_cannot_give_a_meter_leaves_tracing_working(
    autojump_clock: trio.testing.MockClock,
    caplog: pytest.LogCaptureFixture,
    tracer_provider: TracerProvider,
    span_exporter: InMemorySpanExporter,
) -> None:
    instrument = exegraph_otel.OtelInstrument(
        tracer_provider=tracer_provider, meter_provider=RaisingMeterProvider()
    )
    (message,) = complaints(caplog, "exegraph_otel")
    assert message == "exegraph_otel: could not create its metrics; runs will not be measured"
    caplog.clear()

    plain, traced = await run_both(instrument)
    assert traced == plain
    assert len(outline(span_exporter.get_finished_spans())) == 6


async def test_a_meter_that_raises_stops_metrics_for_the_run_but_not_tracing(
    autojump_clock: trio.testing.MockClock,
    caplog: pytest.LogCaptureFixture,
    tracer_provider: TracerProvider,
    span_exporter: InMemorySpanExporter,
) -> None:
    instrument = exegraph_otel.OtelInstrument(
        tracer_provider=tracer_provider, meter_provider=MeterProviderOfRaisingCounters()
    )
    plain, traced = await run_both(instrument)
    assert traced == plain

    (message,) = complaints(caplog, "exegraph_otel")
    assert message.startswith("exegraph_otel: metrics raised in step_started; no more metrics")
    caplog.clear()
    assert len(outline(span_exporter.get_finished_spans())) == 6


class _Delegating:
    """Everything of `inner`, through `__getattr__`."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class _HistogramFailingFor(_Delegating):
    def __init__(self, inner: Any, step: str) -> None:
        super().__init__(inner)
        self._step = step

    def record(self, value: float, attributes: Any = None, **kwargs: Any) -> None:
        if (attributes or {}).get("cicd.pipeline.task.name") == self._step:
            raise RuntimeError("histogram down")
        self._inner.record(value, attributes, **kwargs)


class _MeterProviderWhoseHistogramsFailFor(_Delegating):
    def __init__(self, inner: MeterProvider, step: str) -> None:
        super().__init__(inner)
        self._step = step

    def get_meter(self, *args: Any, **kwargs: Any) -> Any:
        meter = self._inner.get_meter(*args, **kwargs)
        step = self._step

        class Meter(_Delegating):
            def create_histogram(self, *args: Any, **kwargs: Any) -> Any:
                return _HistogramFailingFor(meter.create_histogram(*args, **kwargs), step)

        return Meter(meter)


async def test_a_meter_failing_mid_run_leaves_no_step_counted_active(
    autojump_clock: trio.testing.MockClock,
    caplog: pytest.LogCaptureFixture,
    meter_provider: MeterProvider,
    metric_reader: InMemoryMetricReader,
) -> None:
    # `a` ends first, and its duration cannot be recorded: metrics stop for the run while
    # `b` still runs, counted in `exegraph.step.active`, which must come back down.
    instrument = exegraph_otel.OtelInstrument(
        tracer_provider=trace.NoOpTracerProvider(),
        meter_provider=_MeterProviderWhoseHistogramsFailFor(meter_provider, "a"),  # type: ignore[arg-type]
    )
    await exegraph.run(Graph([step("a", 1), step("b", 3)]), RunOptions(instruments=[instrument]))
    active = metric_points(metric_reader, "exegraph.step.active")
    counted = {dict(k)["cicd.pipeline.task.name"]: point for k, point in active.items()}
    assert {name: point.value for name, point in counted.items()} == {"a": 0, "b": 0}  # type: ignore[union-attr]
    (message,) = complaints(caplog, "exegraph_otel")
    assert message.startswith("exegraph_otel: metrics raised in step_done; no more metrics")
    caplog.clear()


class _CounterFailingAt(_Delegating):
    """An up-down counter whose `add` number `at` (from 0) raises, once."""

    def __init__(self, inner: Any, at: int) -> None:
        super().__init__(inner)
        self._left = at

    def add(self, amount: int, attributes: Any = None, **kwargs: Any) -> None:
        self._left -= 1
        if self._left == -1:
            raise RuntimeError("counter down")
        self._inner.add(amount, attributes, **kwargs)


@pytest.mark.parametrize("at", range(8))
async def test_a_counter_failing_at_any_add_leaves_no_step_counted_active(
    autojump_clock: trio.testing.MockClock,
    caplog: pytest.LogCaptureFixture,
    meter_provider: MeterProvider,
    metric_reader: InMemoryMetricReader,
    at: int,
) -> None:
    # Whichever +1 or -1 fails (a retried step makes several), what was counted is given
    # back: a -1 that failed leaves its step counted, for the run's end to give back.
    real = meter_provider.get_meter("exegraph_otel")

    class Meter(_Delegating):
        def create_up_down_counter(self, *args: Any, **kwargs: Any) -> Any:
            return _CounterFailingAt(real.create_up_down_counter(*args, **kwargs), at)

    class Provider(_Delegating):
        def get_meter(self, *args: Any, **kwargs: Any) -> Any:
            return Meter(real)

    instrument = exegraph_otel.OtelInstrument(
        tracer_provider=trace.NoOpTracerProvider(),
        meter_provider=Provider(meter_provider),  # type: ignore[arg-type]
    )
    graph = Graph([flaky("flaky", 1, 2, retry=Retry(attempts=3, delay=1)), step("slow", 5)])
    await exegraph.run(graph, RunOptions(instruments=[instrument]))
    active = metric_points(metric_reader, "exegraph.step.active")
    assert {point.value for point in active.values()} <= {0}  # type: ignore[union-attr]
    caplog.clear()  # (the failing call is logged, and metrics stop for that run)


async def test_an_exporter_that_raises_changes_nothing(
    autojump_clock: trio.testing.MockClock,
    caplog: pytest.LogCaptureFixture,
    no_meter: metrics.MeterProvider,
) -> None:
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(RaisingExporter()))
    instrument = exegraph_otel.OtelInstrument(tracer_provider=provider, meter_provider=no_meter)
    plain, traced = await run_both(instrument)
    assert traced == plain

    assert complaints(caplog, "exegraph_otel") == []  # the SDK swallows and logs it
    assert complaints(caplog, "exegraph_trio") == []
    assert complaints(caplog, "opentelemetry.sdk.trace.export")
    caplog.clear()
    provider.shutdown()


async def test_without_an_sdk_every_call_is_a_no_op(
    autojump_clock: trio.testing.MockClock,
) -> None:
    instrument = exegraph_otel.OtelInstrument(
        tracer_provider=trace.NoOpTracerProvider(), meter_provider=metrics.NoOpMeterProvider()
    )
    plain, traced = await run_both(instrument)
    assert traced == plain


async def test_with_the_global_providers_unset_the_instrument_is_harmless(
    autojump_clock: trio.testing.MockClock,
) -> None:
    plain, traced = await run_both(exegraph_otel.OtelInstrument())
    assert traced == plain


async def test_a_keyboard_interrupt_in_a_step_still_ends_every_span(
    autojump_clock: trio.testing.MockClock,
    instrument: exegraph_otel.OtelInstrument,
    span_exporter: InMemorySpanExporter,
) -> None:
    g = Graph(
        [step("a", 1), step("stop", 0.5, error=KeyboardInterrupt()), step("b", 1, depends_on=["a"])]
    )
    with pytest.raises(KeyboardInterrupt):
        await exegraph.run(g, exegraph_otel.traced(instrument=instrument))

    assert outline(span_exporter.get_finished_spans()) == [
        "RUN exegraph <- -: failure ERROR(KeyboardInterrupt)",
        "a <- RUN exegraph: cancellation",
        "stop <- RUN exegraph: failure ERROR(KeyboardInterrupt)",
        "b <- RUN exegraph: skip",
    ]


async def test_a_tracer_that_stops_starting_spans_mid_run_still_ends_the_open_ones(
    autojump_clock: trio.testing.MockClock,
    caplog: pytest.LogCaptureFixture,
    tracer_provider: TracerProvider,
    span_exporter: InMemorySpanExporter,
    no_meter: metrics.MeterProvider,
) -> None:
    # Spans for the run, a and b start; c's, at 1 s, does not.
    instrument = flaky_instrument(tracer_provider, no_meter, start_span=3)
    g = Graph([step("a", 1), step("b", 3), step("c", 1, depends_on=["a"])])
    result = await exegraph.run_with_result(g, exegraph_otel.traced(instrument=instrument))

    assert outcome(result) == [
        ("a", "Done", 0, 1, None),
        ("b", "Done", 0, 3, None),
        ("c", "Done", 1, 2, None),
    ]
    spans = span_exporter.get_finished_spans()
    assert outline(spans) == [
        "RUN exegraph <- -: ?",
        "a <- RUN exegraph: success",
        "b <- RUN exegraph: ?",
    ]
    assert seconds(spans) == {"RUN exegraph": (0, 1), "a": (0, 1), "b": (0, 1)}
    (message,) = complaints(caplog, "exegraph_otel")
    assert message.startswith("exegraph_otel: tracing raised in step_started; no more tracing")
    caplog.clear()


async def test_a_span_method_that_fails_mid_run_still_ends_every_open_span(
    autojump_clock: trio.testing.MockClock,
    caplog: pytest.LogCaptureFixture,
    tracer_provider: TracerProvider,
    span_exporter: InMemorySpanExporter,
    no_meter: metrics.MeterProvider,
) -> None:
    # a's step_done fails on set_status, before it ends a's span.
    instrument = flaky_instrument(tracer_provider, no_meter, set_status=0)
    g = Graph([step("a", 1, error=ValueError("boom")), step("b", 3)])
    options = RunOptions(error_policy=ErrorPolicy.CONTINUE_ON_ERROR)
    result = await exegraph.run_with_result(g, exegraph_otel.traced(options, instrument=instrument))

    assert outcome(result) == [("a", "Failed", 0, 1, "ValueError"), ("b", "Done", 0, 3, None)]
    spans = span_exporter.get_finished_spans()
    assert outline(spans) == [
        "RUN exegraph <- -: ?",
        "a <- RUN exegraph: failure",
        "b <- RUN exegraph: ?",
    ]
    assert seconds(spans) == {"RUN exegraph": (0, 1), "a": (0, 1), "b": (0, 1)}
    (message,) = complaints(caplog, "exegraph_otel")
    assert message.startswith("exegraph_otel: tracing raised in step_done; no more tracing")
    caplog.clear()


async def test_a_run_span_whose_result_cannot_be_set_is_still_ended(
    autojump_clock: trio.testing.MockClock,
    caplog: pytest.LogCaptureFixture,
    tracer_provider: TracerProvider,
    span_exporter: InMemorySpanExporter,
    no_meter: metrics.MeterProvider,
) -> None:
    # Steps set their closing attributes all at once (`set_attributes`): the run span's
    # own `set_attribute`, its result, is the first call of that method.
    instrument = flaky_instrument(tracer_provider, no_meter, set_attribute=0)
    g = Graph([step("a", 1), step("b", 2, depends_on=["a"])])
    await exegraph.run(g, exegraph_otel.traced(instrument=instrument))

    spans = span_exporter.get_finished_spans()
    assert outline(spans) == [
        "RUN exegraph <- -: ?",
        "a <- RUN exegraph: success",
        "b <- RUN exegraph: success",
    ]
    assert seconds(spans) == {"RUN exegraph": (0, 3), "a": (0, 1), "b": (1, 3)}
    (message,) = complaints(caplog, "exegraph_otel")
    assert message.startswith("exegraph_otel: tracing raised in run_done; no more tracing")
    caplog.clear()


async def test_a_run_span_whose_processor_raises_as_it_ends_is_ended_once(
    autojump_clock: trio.testing.MockClock,
    caplog: pytest.LogCaptureFixture,
    span_exporter: InMemorySpanExporter,
    no_meter: metrics.MeterProvider,
) -> None:
    # The span ended before its processor raised: ending it again as the run is
    # abandoned made the SDK warn of a span ended twice (this fixture fails on it).
    class Raising(SpanProcessor):
        def on_end(self, span: ReadableSpan) -> None:
            if span.name.startswith("RUN "):
                raise RuntimeError("processor down")

    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(span_exporter))
    provider.add_span_processor(Raising())
    instrument = exegraph_otel.OtelInstrument(tracer_provider=provider, meter_provider=no_meter)
    await exegraph.run(Graph([step("a", 1)]), RunOptions(instruments=[instrument]))
    assert outline(span_exporter.get_finished_spans()) == [
        "RUN exegraph <- -: success",
        "a <- RUN exegraph: success",
    ]
    assert not [r for r in caplog.get_records("call") if r.name.startswith("opentelemetry")]
    (message,) = complaints(caplog, "exegraph_otel")
    assert message.startswith("exegraph_otel: tracing raised in run_done; no more tracing")
    caplog.clear()


# -- retries, trigger rules, resources ----------------------------------------------------------


def lifecycle_graph() -> Graph:
    """Every lifecycle call: a retried step, a resource whose teardown fails, a trigger rule.

    fetch fails at 1 s and succeeds at 3 s; db is set up at 1 s; use runs from 3 s to 4 s;
    then db's teardown (failing at 5 s) and report (ALL_DONE, 4 s to 5 s).
    """
    return Graph(
        [
            flaky("fetch", 1, 1, retry=Retry(attempts=2, delay=1)),
            resource("db", 1, 1, error=OSError("busy")),
            step("use", 1, depends_on=["db", "fetch"]),
            exegraph.Step(
                "report",
                step("r", 1).action,
                depends_on=["use"],
                trigger_rule=exegraph.TriggerRule.ALL_DONE,
            ),
        ]
    )


LifecycleOutcome = list[tuple[str, str, float | None, float | None, int, str | None, str | None]]


def lifecycle_outcome(result: RunResult, shift: float = 0.0) -> LifecycleOutcome:
    def name(error: BaseException | None) -> str | None:
        return None if error is None else type(error).__name__

    return sorted(
        (
            t.name,
            str(t.status),
            None if t.start is None else t.start - shift,
            None if t.end is None else t.end - shift,
            t.attempts,
            name(t.error),
            name(t.teardown_error),
        )
        for t in result
    )


async def run_lifecycle_both(
    instrument: exegraph_otel.OtelInstrument,
) -> tuple[LifecycleOutcome, LifecycleOutcome]:
    """The outcome of `lifecycle_graph` without and with `instrument`, both from time 0."""
    start = trio.current_time()
    plain = await exegraph.run_with_result(lifecycle_graph())
    shift = trio.current_time() - start
    traced = await exegraph.run_with_result(
        lifecycle_graph(), exegraph_otel.traced(instrument=instrument)
    )
    return lifecycle_outcome(plain), lifecycle_outcome(traced, shift)


async def test_the_lifecycle_graph_is_traced_whole_when_nothing_breaks(
    autojump_clock: trio.testing.MockClock,
    tracer_provider: TracerProvider,
    span_exporter: InMemorySpanExporter,
    no_meter: metrics.MeterProvider,
) -> None:
    instrument, tracer = flaky_instrument_and_tracer(tracer_provider, no_meter)
    plain, traced = await run_lifecycle_both(instrument)
    assert traced == plain
    assert plain == [
        ("db", "Done", 0, 1, 1, None, "OSError"),
        ("fetch", "Done", 0, 3, 2, None, None),
        ("report", "Done", 4, 5, 1, None, None),
        ("use", "Done", 3, 4, 1, None, None),
    ]
    assert tracer.all_ended()
    assert len(span_exporter.get_finished_spans()) == 8  # run, 4 steps, 2 attempts, teardown


@pytest.mark.parametrize(
    "case",
    [
        ({"start_span": 2}, "step_started"),  # fetch's first attempt span
        ({"set_status": 0}, "step_retrying"),  # before fetch's attempt 1 span ends
        ({"add_event": 0}, "step_retrying"),  # the retry event, after it ended
        ({"start_span": 4}, "attempt_started"),  # fetch's second attempt span
        ({"set_status": 1}, "teardown_done"),  # before db's teardown span ends
    ],
)
async def test_a_tracer_failing_in_a_lifecycle_call_changes_nothing_and_ends_every_span(
    autojump_clock: trio.testing.MockClock,
    caplog: pytest.LogCaptureFixture,
    tracer_provider: TracerProvider,
    no_meter: metrics.MeterProvider,
    case: tuple[dict[str, int], str],
) -> None:
    calls, method = case
    instrument, tracer = flaky_instrument_and_tracer(tracer_provider, no_meter, **calls)
    with tracer_provider.get_tracer("app").start_as_current_span("caller") as caller:
        plain, traced = await run_lifecycle_both(instrument)
        assert trace.get_current_span() is caller
    assert traced == plain
    assert tracer.all_ended()

    (message,) = complaints(caplog, "exegraph_otel")
    assert message.startswith(f"exegraph_otel: tracing raised in {method}; no more tracing")
    assert complaints(caplog, "exegraph_trio") == []
    caplog.clear()


async def test_a_tracer_that_cannot_start_the_teardown_span_changes_nothing(
    autojump_clock: trio.testing.MockClock,
    caplog: pytest.LogCaptureFixture,
    tracer_provider: TracerProvider,
    span_exporter: InMemorySpanExporter,
    no_meter: metrics.MeterProvider,
) -> None:
    # Spans for the run, db and use start; db's teardown span, at 2 s, does not.
    instrument, tracer = flaky_instrument_and_tracer(tracer_provider, no_meter, start_span=3)
    graph = Graph([resource("db", 1, 1), step("use", 1, depends_on=["db"])])
    with tracer_provider.get_tracer("app").start_as_current_span("caller") as caller:
        result = await exegraph.run_with_result(graph, exegraph_otel.traced(instrument=instrument))
        assert trace.get_current_span() is caller
    assert result.ok
    assert [(t.name, t.start, t.end) for t in result] == [("db", 0, 1), ("use", 1, 2)]
    assert tracer.all_ended()
    spans = span_exporter.get_finished_spans()
    assert outline(spans) == [
        "caller <- -: ?",
        "RUN exegraph <- caller: ?",  # ended when the teardown span could not start
        "db <- RUN exegraph: success",
        "use <- RUN exegraph: success",
    ]
    assert seconds([s for s in spans if s.name != "caller"]) == {
        "RUN exegraph": (0, 2),
        "db": (0, 1),
        "use": (1, 2),
    }

    (message,) = complaints(caplog, "exegraph_otel")
    assert message.startswith("exegraph_otel: tracing raised in teardown_started; no more")
    caplog.clear()


async def test_spans_that_cannot_end_in_a_lifecycle_run_still_restore_every_context(
    autojump_clock: trio.testing.MockClock,
    caplog: pytest.LogCaptureFixture,
    tracer_provider: TracerProvider,
    no_meter: metrics.MeterProvider,
) -> None:
    instrument = exegraph_otel.OtelInstrument(
        tracer_provider=FakeTracerProvider(TracerOfUnendingSpans()), meter_provider=no_meter
    )
    with tracer_provider.get_tracer("app").start_as_current_span("caller") as caller:
        plain, traced = await run_lifecycle_both(instrument)
        assert trace.get_current_span() is caller
    assert traced == plain

    (message,) = complaints(caplog, "exegraph_otel")
    assert message.startswith("exegraph_otel: tracing raised in ")
    assert complaints(caplog, "opentelemetry.context") == []  # no "Failed to detach context"
    caplog.clear()


async def test_a_tracer_failing_during_a_teardown_ends_its_span_and_restores_its_context(
    autojump_clock: trio.testing.MockClock,
    caplog: pytest.LogCaptureFixture,
    tracer_provider: TracerProvider,
    span_exporter: InMemorySpanExporter,
    no_meter: metrics.MeterProvider,
) -> None:
    # db's teardown runs from 2 s to 5 s; after's span, at 3 s, is the sixth: it fails.
    instrument, tracer = flaky_instrument_and_tracer(tracer_provider, no_meter, start_span=5)
    graph = Graph(
        [
            resource("db", 1, 3),
            step("other", 3),
            step("use", 1, depends_on=["db"]),
            step("after", 1, depends_on=["other"]),
        ]
    )
    with tracer_provider.get_tracer("app").start_as_current_span("caller") as caller:
        result = await exegraph.run_with_result(graph, exegraph_otel.traced(instrument=instrument))
        assert trace.get_current_span() is caller
    assert result.ok
    assert tracer.all_ended()
    spans = [s for s in span_exporter.get_finished_spans() if s.name != "caller"]
    assert seconds(spans) == {
        "RUN exegraph": (0, 3),
        "db": (0, 1),
        "use": (1, 2),
        "other": (0, 3),
        "teardown db": (2, 3),  # ended when tracing stopped, not left open
    }

    (message,) = complaints(caplog, "exegraph_otel")
    assert message.startswith("exegraph_otel: tracing raised in step_started; no more tracing")
    caplog.clear()
