"""The OpenTelemetry examples run as documented: `python examples/NAME.py`.

Charter: each example runs in a fresh interpreter (`-W error`, so a warning fails it; the
Jaeger example sets the global tracer provider, which must not leak into other tests), with
a bounded timeout. The Jaeger example is pointed at a receiver on 127.0.0.1 started by the
test, through `OTEL_EXPORTER_OTLP_ENDPOINT`, exactly as a user points it at Jaeger; proxy
variables are removed from its environment. "No collector" is a port on 127.0.0.1 that the
test holds bound but not listening, so the connection is refused at once and no other
process can take the port meanwhile.
"""

from __future__ import annotations

import errno
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from .helpers import otlp_receiver, proxyless_env, wire_links, wire_outline

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def jaeger_env(endpoint: str) -> dict[str, str]:
    """The environment that points the Jaeger example at `endpoint` (a base URL)."""
    env = proxyless_env(os.environ)
    env["OTEL_EXPORTER_OTLP_ENDPOINT"] = endpoint
    env["OTEL_SERVICE_NAME"] = "examples-under-test"
    for name in ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_TRACES_EXPORTER"):
        env.pop(name, None)
    return env


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A port on 127.0.0.1 that refuses connections: bound (nobody else gets it), not listening."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


def run_example(name: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-W", "error", str(EXAMPLES / name)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_console_example_prints_the_trace_and_the_metrics() -> None:
    done = run_example("otel_console.py", proxyless_env(os.environ))

    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    out = done.stdout
    trace = out.split("== the trace ==\n", 1)[1].split("\n\n", 1)[0].splitlines()
    # Indented name and result (siblings that start together may come in either order).
    assert sorted(line[:33].rstrip() for line in trace) == sorted(
        [
            "RUN ci               failure",
            "  checkout           success",
            "  lint               success",
            "  docs               failure",
            "  test               success",
            "    shard 1",
            "    shard 2",
            "  publish-docs       skip",
            "  build              success",
            "  package            success",
        ]
    )
    assert trace[0].startswith("RUN ci")
    assert "publish-docs       skip            0.0 ms  links: docs (failed_dependency)\n" in out
    (build,) = [line for line in trace if line.startswith("  build ")]
    assert build.endswith("  links: lint, test")
    assert "exegraph.run.duration" in out
    assert "result=failure, error.type=exegraph_trio.RunError" in out


def test_the_jaeger_example_exports_its_trace_over_otlp_http() -> None:
    with otlp_receiver() as (url, received):
        done = run_example("otel_jaeger.py", jaeger_env(url))

    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert done.stdout.splitlines()[-2:] == [
        f"sending the trace of service 'examples-under-test' to {url}/v1/traces ...",
        "done: 9 spans exported; in Jaeger: http://localhost:16686/search?service=examples-under-test",
    ]
    spans = received.spans()
    assert sorted(wire_outline(spans)) == [
        "RUN release <- release: success",
        "compile <- RUN release: success",
        "compile cli <- compile: ?",
        "compile core <- compile: ?",
        "deploy <- RUN release: success",
        "fetch <- RUN release: success",
        "pytest <- test: ?",
        "release <- -: ?",
        "test <- RUN release: success",
    ]
    assert wire_links(spans) == {
        "compile": [("fetch", "depends_on")],
        "test": [("compile", "depends_on")],
        "deploy": [("test", "depends_on")],
    }
    assert {span.resource.get("service.name") for span in spans} == {"examples-under-test"}


def test_the_jaeger_example_with_no_collector_says_nothing_was_exported_and_how_to_start_one(
    closed_port: int,
) -> None:
    url = f"http://127.0.0.1:{closed_port}"
    done = run_example("otel_jaeger.py", jaeger_env(url))

    assert done.returncode == 0, done.stderr
    assert done.stderr == ""  # no exporter retrying, then logging its failure
    refused = os.strerror(errno.ECONNREFUSED)
    assert done.stdout.splitlines() == [
        f"nothing was exported: no collector answers at {url}/v1/traces "
        f"([Errno {errno.ECONNREFUSED}] {refused}).",
        "Start Jaeger, then run this again:",
        "    docker run --rm -p 16686:16686 -p 4318:4318 jaegertracing/all-in-one:latest",
    ]


def test_the_jaeger_example_says_nothing_was_exported_when_the_collector_refuses_it() -> None:
    with otlp_receiver() as (url, received):
        env = jaeger_env(url)
        env["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"] = f"{url}/not-traces"  # answered with 404
        done = run_example("otel_jaeger.py", env)

    assert done.returncode == 0, done.stderr
    assert done.stderr.startswith("Failed to export spans batch")  # the exporter's own log
    assert done.stdout.splitlines()[-1] == (
        f"nothing was exported: the collector at {url}/not-traces did not accept 9 spans "
        "(the exporter's error is above)."
    )
    assert received.spans() == []
