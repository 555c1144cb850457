"""exegraph_otel: every exegraph run as an OpenTelemetry trace, plus metrics.

```python
import trio
import exegraph_trio as exegraph
import exegraph_otel

# once, at start-up: an SDK TracerProvider / MeterProvider set as the global providers
trio.run(exegraph.run, graph, exegraph_otel.traced())
```

Each run becomes one trace: a `RUN exegraph` span (child of whatever span is current
where `run` is called) with one child span per step, from its start to its end. Spans made
inside a step's action nest under that step's span; each step span links to its
dependencies' spans; skipped and cancelled steps are visible; a retried step has a child
span per attempt, and a resource step's teardown a span of its own. Attributes follow the
OpenTelemetry CI/CD semantic conventions (`cicd.pipeline.task.run.result`, ...). See
[`OtelInstrument`][exegraph_otel.OtelInstrument] for the details and the metrics.

The package needs `opentelemetry-api` only (`pip install exegraph-trio[otel]`); the SDK and
an exporter are yours to choose (`exegraph-trio[otlp]` brings the SDK and the OTLP/HTTP
exporter that Jaeger ingests). Without an SDK every call is a cheap no-op.

This module is the only public location of every name; the implementation lives in
private modules.
"""

try:
    import opentelemetry.metrics
    import opentelemetry.trace  # noqa: F401 - fail here, with advice, not deep inside
except ModuleNotFoundError as _missing:
    if (_missing.name or "").partition(".")[0] != "opentelemetry":
        raise
    raise ModuleNotFoundError(
        "exegraph_otel needs the OpenTelemetry API (the package opentelemetry-api), which is "
        f"not installed ({_missing}). Install exegraph with its otel extra: "
        'pip install "exegraph-trio[otel]" (or, in a clone of the repository: '
        'pip install -e ".[otel]").',
        name=_missing.name,
    ) from _missing

from exegraph_trio import __version__ as __version__

from ._instrument import OtelInstrument as OtelInstrument
from ._instrument import traced as traced

__all__ = ["OtelInstrument", "traced"]


from exegraph_trio._public import rewrite_module_names as _rewrite_module_names

_rewrite_module_names(__name__, globals(), __all__)
del _rewrite_module_names
