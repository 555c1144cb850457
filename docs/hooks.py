"""MkDocs hooks of the exegraph site (`hooks:` in `mkdocs.yml`).

Before a build, [`on_pre_build`][] runs the project's own examples under Trio's mock
clock and writes what they show into `docs/generated/` (ignored by git, excluded from
the page list), for pages to pull in with `pymdownx.snippets`:

- `demo_flowchart.md`, `demo_gantt.md`: Mermaid pictures of the demo pipeline's graph
  and of a run of it (`examples/demo_pipeline.py`);
- `policy_*_gantt.md`, `policy_*_flowchart.md`: one graph under both error policies
  (`examples/fail_fast_vs_continue.py`);
- `demo_trace.md`: the trace `exegraph_otel` makes of that run, as a timeline of its
  spans (what Jaeger draws) and as a tree with each span's result and links;
- `exception_tree.md`: the exception classes of `exegraph_trio`, drawn from the classes;
- `pictures/*.md`: the guide "Pictures": what each picture method of exegraph draws of
  a real run (`examples/cluster_resource.py` failing, `examples/demo_pipeline.py`
  planned), and of a graph of awkward names;
- `examples.md`: the gallery: each example's docstring and source, so a new example
  appears on the site by itself;
- `output/NAME.md`: what `python examples/NAME.py` prints, for every example whose
  `main` is async (run in a subprocess, under the mock clock, so times are exact).

Every picture coloured by status (or by kind) is followed by its legend.

So a picture or a printed table can never disagree with the code. The files are
rewritten only when a source (`src/`, `examples/`, this file or `_mermaid.py`) is newer
than the last generation, so `mkdocs serve` does not rebuild in a loop.

[`on_config`][] makes the site self-contained and adds one optional thing:

- Mermaid, which draws the diagrams in the reader's browser, is served from the site
  itself (`assets/javascripts/mermaid.min.js`), never from a CDN, so the pictures render
  offline. `docs/_vendor_mermaid.py` fetches the pinned version from npm the first time
  (into `docs/generated/`); when it cannot, the build fails and says why, rather than
  shipping diagrams that would show as raw text;
- the Python, Trio and attrs object inventories, when `EXEGRAPH_DOCS_INVENTORIES=1`.
  They are off by default because mkdocstrings reports an inventory it cannot download
  as an error, which fails a strict build on a machine that cannot reach those sites.
"""

from __future__ import annotations

import ast
import contextlib
import importlib.util
import io
import logging
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import attrs
from mkdocs.config.config_options import ExtraScriptValue
from mkdocs.config.defaults import MkDocsConfig
from mkdocs.exceptions import PluginError
from mkdocs.plugins import event_priority
from mkdocs.structure.files import File, Files
from opentelemetry.metrics import NoOpMeterProvider
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

import exegraph_otel
import exegraph_trio as exegraph

if str(Path(__file__).parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).parent))
import _mermaid  # the helpers sit next to this file, found through sys.path
import _vendor_mermaid

INVENTORIES = (
    "https://docs.python.org/3/objects.inv",
    "https://trio.readthedocs.io/en/stable/objects.inv",
    "https://www.attrs.org/en/stable/objects.inv",
)
MERMAID_JS = "assets/javascripts/mermaid.min.js"
"""Where the site serves its copy of Mermaid (mkdocs-material uses it instead of its CDN)."""
MERMAID_LICENCE = "assets/javascripts/mermaid.LICENSE.txt"

log = logging.getLogger(f"mkdocs.hooks.{__name__}")

NO_OUTPUT = {
    "testing_with_pytest": "its main runs pytest, whose report has wall-clock times",
    "otel_console": "the spans it prints carry random ids and wall-clock timestamps",
    "otel_jaeger": "it exports to a collector instead of printing",
}
"""Examples whose output is not shown on the site, and why."""

# Run an example's async `main` under a mock clock that jumps to the next deadline as soon
# as every task sleeps, without running its `if __name__ == "__main__"` block.
_RUN_EXAMPLE = """
import os, runpy, sys, trio, trio.testing
sys.path.insert(0, os.path.dirname(sys.argv[1]))  # as `python examples/NAME.py` would
main = runpy.run_path(sys.argv[1], run_name="__exegraph_docs__")["main"]
trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
"""


def _root(config: MkDocsConfig) -> Path:
    return Path(config.config_file_path).parent


def _generated(config: MkDocsConfig) -> Path:
    return Path(config.docs_dir) / "generated"


def _example(config: MkDocsConfig, name: str) -> ModuleType:
    """Import `examples/NAME.py` without running its `__main__` block."""
    path = _root(config) / "examples" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"_exegraph_docs_example_{name}", path)
    if spec is None or spec.loader is None:  # pragma: no cover - a missing file raises below
        raise ImportError(f"cannot load example {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_written: list[Path] = []


def _write(path: Path, text: str) -> None:
    """Write `text` to `path` unless it already holds exactly that."""
    _written.append(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists() or path.read_text(encoding="utf-8") != text:
        path.write_text(text, encoding="utf-8")


def _sources(root: Path) -> Iterator[Path]:
    """The files the generated snippets are made from."""
    yield Path(__file__)
    yield Path(_mermaid.__file__)
    for folder in ("src", "examples"):
        yield from (root / folder).rglob("*.py")


def _up_to_date(stamp: Path, root: Path) -> bool:
    """Whether the last generation is newer than every source and all its files exist."""
    if not stamp.exists():
        return False
    made = stamp.stat().st_mtime
    outputs = [stamp.parent / line for line in stamp.read_text(encoding="utf-8").splitlines()]
    return all(path.exists() for path in outputs) and all(
        path.stat().st_mtime <= made for path in _sources(root)
    )


@event_priority(100)  # before mkdocstrings starts downloading inventories
def on_config(config: MkDocsConfig) -> MkDocsConfig:
    """Serve Mermaid from the site (fetching it once), and add the object inventories.

    Args:
        config: the site's configuration.

    Returns:
        The configuration, changed as the module docstring says.

    Raises:
        PluginError: Mermaid is not there and cannot be fetched.
    """
    if os.environ.get("EXEGRAPH_DOCS_INVENTORIES") == "1":
        plugin: Any = config.plugins["mkdocstrings"]
        python = plugin.config.handlers.setdefault("python", {})
        known = python.setdefault("inventories", [])
        known.extend(url for url in INVENTORIES if url not in known)
    generated = _generated(config)
    if not _vendor_mermaid.is_current(generated):
        log.info("Fetching Mermaid %s from npm (once) for the diagrams", _vendor_mermaid.VERSION)
    try:
        _vendor_mermaid.ensure(generated)
    except _vendor_mermaid.MermaidUnavailable as error:
        raise PluginError(f"cannot build the site's diagrams: {error}") from error
    # mkdocs-material uses a `mermaid` global when a page defines one, else its CDN.
    config.extra_javascript.append(ExtraScriptValue(MERMAID_JS))
    return config


def on_files(files: Files, config: MkDocsConfig) -> Files:
    """Serve the copy of Mermaid and its licence.

    Args:
        files: the site's files.
        config: the site's configuration.

    Returns:
        The files, with Mermaid's added.
    """
    generated = _generated(config)
    for url, name in (
        (MERMAID_JS, _vendor_mermaid.SCRIPT),
        (MERMAID_LICENCE, _vendor_mermaid.LICENCE),
    ):
        files.append(File.generated(config, url, abs_src_path=str(generated / name)))
    return files


def on_pre_build(config: MkDocsConfig) -> None:
    """Write the generated snippets into `docs/generated/`, if any source changed.

    Args:
        config: the site's configuration.
    """
    root = _root(config)
    out = Path(config.docs_dir) / "generated"
    stamp = out / ".stamp"
    if _up_to_date(stamp, root):
        return
    _written.clear()
    _write_demo(config, out)
    _write_trace(config, out)
    _write_policies(config, out)
    _write_exception_tree(out)
    _write_outputs(root, out)
    _write_gallery(root, out)
    _write_pictures(config, out)
    stamp.write_text(
        "".join(f"{path.relative_to(out).as_posix()}\n" for path in _written), encoding="utf-8"
    )


def _write_demo(config: MkDocsConfig, out: Path) -> None:
    demo = _example(config, "demo_pipeline")
    graph: exegraph.Graph = demo.build_graph()
    with contextlib.redirect_stdout(io.StringIO()):
        result: exegraph.RunResult = _mermaid.run_virtually(demo.main)
    _write(out / "demo_flowchart.md", _flowchart(graph, result))
    title = "demo_pipeline.py: ContinueOnError, max_concurrency=4"
    _write(out / "demo_gantt.md", _gantt(result, title))


def _flowchart(graph: exegraph.Graph, result: exegraph.RunResult) -> str:
    """A flowchart coloured by `result`, and its legend."""
    statuses = [(str(status).lower(), look) for status, look in _mermaid.LOOKS.items()]
    return _mermaid.fenced(_mermaid.flowchart(graph, result)) + "\n" + _mermaid.legend(statuses)


def _gantt(result: exegraph.RunResult, title: str) -> str:
    """A Gantt chart of `result`, and its legend (skipped steps have no bar)."""
    looks = _mermaid.LOOKS
    statuses = [
        (str(status).lower(), look)
        for status, look in looks.items()
        if status is not exegraph.StepStatus.SKIPPED
    ]
    return _mermaid.fenced(_mermaid.gantt(result, title=title)) + "\n" + _mermaid.legend(statuses)


def _write_trace(config: MkDocsConfig, out: Path) -> None:
    demo = _example(config, "demo_pipeline")
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    otel = exegraph_otel.OtelInstrument(
        tracer_provider=provider, meter_provider=NoOpMeterProvider(), pipeline_name="deploy"
    )
    options = exegraph.RunOptions(
        max_concurrency=4,
        error_policy=exegraph.ErrorPolicy.CONTINUE_ON_ERROR,
        instruments=[otel],
    )

    async def run() -> None:
        await exegraph.run_with_result(demo.build_graph(), options)

    _mermaid.run_virtually(run)
    spans = sorted(
        exporter.get_finished_spans(), key=lambda s: (s.parent is not None, s.start_time or 0)
    )
    names = {span.context.span_id: span.name for span in spans if span.context is not None}
    bars = [
        _mermaid.Bar(
            "run" if span.parent is None else "steps",
            span.name,
            (span.start_time or 0) / 1e9,
            (span.end_time or 0) / 1e9,
            "crit" if span.status.status_code is StatusCode.ERROR else "done",
        )
        for span in spans
        if span.end_time != span.start_time  # skipped steps: zero-length spans
    ]
    title = "the trace of one demo run, one bar per span"
    origin = min(span.start_time or 0 for span in spans)
    looks = _mermaid.LOOKS
    key = [
        ("span ended OK", looks[exegraph.StepStatus.DONE]),
        ("span with status ERROR", looks[exegraph.StepStatus.FAILED]),
    ]
    _write(
        out / "demo_trace.md",
        _mermaid.fenced(_mermaid.timeline(bars, title=title))
        + "\n"
        + _mermaid.legend(key)
        + "\n```text\n"
        + "\n".join(
            _span_line(span, names, origin, last=i == len(spans) - 1)
            for i, span in enumerate(spans)
        )
        + "\n```\n",
    )


def _span_line(span: ReadableSpan, names: dict[int, str], origin: int, *, last: bool) -> str:
    """One line of the span tree: name, result, times, links."""
    attributes = span.attributes or {}
    result = attributes.get("cicd.pipeline.task.run.result") or attributes.get(
        "cicd.pipeline.result", ""
    )
    start = ((span.start_time or 0) - origin) / 1e6
    end = ((span.end_time or 0) - origin) / 1e6
    branch = "" if span.parent is None else "└─ " if last else "├─ "
    line = f"{branch + span.name:<20} {result!s:<8}"
    line += f" {start:5.0f} → {end:4.0f} ms"
    if span.status.status_code is StatusCode.ERROR:
        line += f"  ERROR {span.status.description}"
    links = dict.fromkeys(names.get(link.context.span_id, "?") for link in span.links)
    if links:  # a skipped step links to a failed dependency twice (two link types)
        line += f"  links: {', '.join(links)}"
    return line.rstrip()


def _write_policies(config: MkDocsConfig, out: Path) -> None:
    example = _example(config, "fail_fast_vs_continue")
    graph: exegraph.Graph = example.build_graph()
    for policy in exegraph.ErrorPolicy:
        options = attrs.evolve(example.OPTIONS, error_policy=policy)

        async def run(options: exegraph.RunOptions = options) -> exegraph.RunResult:
            return await exegraph.run_with_result(graph, options)

        result = _mermaid.run_virtually(run)
        name = policy.name.lower()
        title = f"fail_fast_vs_continue.py: {policy}"
        _write(out / f"policy_{name}_gantt.md", _gantt(result, title))
        _write(out / f"policy_{name}_flowchart.md", _flowchart(graph, result))


def _write_exception_tree(out: Path) -> None:
    errors = [
        obj
        for name in exegraph.__all__
        if isinstance(obj := getattr(exegraph, name), type) and issubclass(obj, BaseException)
    ]
    tree = _mermaid.exception_tree(errors, root=Exception)
    key = [("exegraph_trio's", _mermaid.OURS), ("Python's builtins", _mermaid.BUILTIN)]
    _write(out / "exception_tree.md", _mermaid.fenced(tree) + "\n" + _mermaid.legend(key))


def _write_outputs(root: Path, out: Path) -> None:
    for path in sorted((root / "examples").glob("*.py")):
        if path.stem in NO_OUTPUT or not _has_async_main(path):
            continue
        completed = subprocess.run(
            [sys.executable, "-c", _RUN_EXAMPLE, str(path)],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if completed.returncode:
            raise RuntimeError(
                f"examples/{path.name} failed under the mock clock "
                f"(exit {completed.returncode}):\n{completed.stderr}"
            )
        _write(
            out / "output" / f"{path.stem}.md",
            f"```text\n$ python examples/{path.name}\n{completed.stdout.rstrip()}\n```\n",
        )


def _write_gallery(root: Path, out: Path) -> None:
    parts = []
    for path in sorted((root / "examples").glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        paragraphs = (ast.get_docstring(tree) or "").split("\n\n")
        # The gallery says how to run each example itself: drop the docstring's sentence.
        trimmed = (re.sub(r"^Run it with .*?\.(\s+|$)", "", p, flags=re.S) for p in paragraphs)
        about = "\n\n".join(p for p in trimmed if p)
        output = out / "output" / f"{path.stem}.md"
        shown = f'--8<-- "docs/generated/output/{path.stem}.md"\n\n' if output.exists() else ""
        parts.append(
            f"## {path.name}\n\n{about}\n\n"
            f"```bash\npython examples/{path.name}\n```\n\n{shown}"
            f'??? example "examples/{path.name}"\n\n'
            f'    ````python\n    --8<-- "examples/{path.name}"\n    ````\n'
        )
    _write(out / "examples.md", "\n".join(parts))


async def _nothing() -> None:
    """An action for the steps of the escaping example."""


AWKWARD_NAMES = ['say "hi"', "end", "<b>not bold</b>", "%%{init: {}}%%", "a\\b [c]", "日本語 🚀"]
"""Names the guide "Pictures" draws to show the escaping."""


def _write_pictures(config: MkDocsConfig, out: Path) -> None:
    """What `to_mermaid`, `to_gantt`, `to_dot` and `to_chrome_trace` make of real runs."""
    folder = out / "pictures"
    cluster = _example(config, "cluster_resource")
    graph: exegraph.Graph = cluster.build_graph(api_fails=True)

    async def run_cluster() -> exegraph.RunResult:
        return await exegraph.run_with_result(graph)  # fail-fast, as the example runs it

    with contextlib.redirect_stdout(io.StringIO()):  # the example logs its teardowns
        result = _mermaid.run_virtually(run_cluster)
    looks = _mermaid.LOOKS
    every = [(str(status).lower(), look) for status, look in looks.items()]
    ran = [(name, look) for name, look in every if name != "skipped"]
    _write(folder / "graph.md", _mermaid.fenced(graph.to_mermaid()))
    _write(folder / "graph_source.md", f"```text\n{graph.to_mermaid()}```\n")
    _write(folder / "run.md", _mermaid.fenced(result.to_mermaid()) + "\n" + _mermaid.legend(every))
    _write(
        folder / "run_gantt.md", _mermaid.fenced(result.to_gantt()) + "\n" + _mermaid.legend(ran)
    )
    _write(folder / "dot.md", f"```dot\n{graph.to_dot()}```\n")
    _write(folder / "trace.md", f"```json\n{result.to_chrome_trace()}```\n")
    _write(folder / "table.md", f"```text\n{result.table()}\n```\n")

    demo = _example(config, "demo_pipeline")
    pipeline: exegraph.Graph = demo.build_graph()
    with contextlib.redirect_stdout(io.StringIO()):
        demo_run: exegraph.RunResult = _mermaid.run_virtually(demo.main)
    durations = {t.name: t.duration for t in demo_run if t.start is not None}
    options = exegraph.RunOptions(
        max_concurrency=2,
        error_policy=exegraph.ErrorPolicy.CONTINUE_ON_ERROR,
        durations=durations,
    )
    preview = exegraph.plan(pipeline, options, fail=[demo.STAGED_FAILURE])
    _write(
        folder / "plan_gantt.md", _mermaid.fenced(preview.to_gantt()) + "\n" + _mermaid.legend(ran)
    )

    awkward = exegraph.Graph(
        exegraph.Step(name, _nothing, depends_on=AWKWARD_NAMES[:1] if i else ())
        for i, name in enumerate(AWKWARD_NAMES)
    )
    _write(folder / "escaping.md", _mermaid.fenced(awkward.to_mermaid()))
    _write(folder / "escaping_source.md", f"```text\n{awkward.to_mermaid()}```\n")


def _has_async_main(path: Path) -> bool:
    """Whether the example defines `async def main` (found without importing it)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    return any(isinstance(node, ast.AsyncFunctionDef) and node.name == "main" for node in tree.body)
