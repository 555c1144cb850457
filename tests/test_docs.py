"""The documentation site builds strictly, documents every public name, and renders.

Testing charter:

- The site is built once for this module with `mkdocs build --strict` in a subprocess,
  exactly as CI builds it, into a temporary directory (the build's hooks also refresh the
  git-ignored `docs/generated/`). In strict mode a broken cross-reference, a dead snippet
  path, a docstring parameter missing from its signature or a link to a missing page
  fails the build. Running mkdocs in its own process keeps its plugins' deprecation
  warnings out of this one, where `filterwarnings = error` would turn them into failures.
- The browser checks serve the built site on 127.0.0.1 (an ephemeral port) and run
  Debian's headless Chromium with background networking off and every host name but
  127.0.0.1 unresolvable, so nothing leaves the machine. Every Chromium call has a
  timeout. They are skipped, saying why, when `/usr/bin/chromium` is absent.
- Everything is skipped, saying why, when the docs tools are not installed.
"""

from __future__ import annotations

import functools
import html
import importlib
import importlib.util
import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from html.parser import HTMLParser
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
DOCS_TOOLS = ("mkdocs", "material", "mkdocstrings", "mkdocstrings_handlers", "pymdownx")
MISSING_TOOLS = [name for name in DOCS_TOOLS if importlib.util.find_spec(name) is None]

pytestmark = pytest.mark.skipif(
    bool(MISSING_TOOLS),
    reason=(
        f"the docs tools are not installed ({', '.join(MISSING_TOOLS)} missing): "
        "pip install mkdocs-material 'mkdocstrings[python]'"
    ),
)
needs_chromium = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="Chromium is not installed: `apt-get install -y chromium` provides /usr/bin/chromium",
)

PAGES = [
    "index.html",
    "getting-started/index.html",
    "guides/graphs/index.html",
    "guides/running/index.html",
    "guides/errors/index.html",
    "guides/timeouts/index.html",
    "guides/observing/index.html",
    "guides/tracing/index.html",
    "guides/metrics/index.html",
    "guides/testing/index.html",
    "examples/index.html",
    "reference/exegraph_trio/index.html",
    "reference/exegraph_otel/index.html",
    "reference/exceptions/index.html",
    "comparison/index.html",
    "changelog/index.html",
]


class _Page(HTMLParser):
    """What the tests read from a built page: ids, documented objects, diagrams."""

    def __init__(self, prefix: str = "") -> None:
        super().__init__()
        self.prefix = prefix
        self.ids: set[str] = set()
        self.documented: set[str] = set()
        self.diagrams: list[str] = []
        self._current: str | None = None
        self._in_mermaid = False
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if (ident := attributes.get("id")) is not None:
            self.ids.add(ident)
            if self.prefix and ident.startswith(self.prefix) and re.fullmatch(r"h\d", tag):
                self._current = ident
        if tag == "p" and self._current is not None:
            self.documented.add(self._current)
        if tag == "pre" and "mermaid" in (attributes.get("class") or "").split():
            self._in_mermaid, self._text = True, []

    def handle_endtag(self, tag: str) -> None:
        if tag == "pre" and self._in_mermaid:
            self._in_mermaid = False
            self.diagrams.append("".join(self._text))

    def handle_data(self, data: str) -> None:
        if self._in_mermaid:
            self._text.append(data)


def _read(site: Path, page: str, prefix: str = "") -> _Page:
    parser = _Page(prefix)
    parser.feed((site / page).read_text(encoding="utf-8"))
    return parser


@pytest.fixture(scope="module")
def build(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, subprocess.CompletedProcess[str]]:
    site = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    env.pop("EXEGRAPH_DOCS_INVENTORIES", None)
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    return site, done


@pytest.fixture(scope="module")
def site(build: tuple[Path, subprocess.CompletedProcess[str]]) -> Path:
    path, done = build
    if done.returncode:
        pytest.fail(f"mkdocs build --strict failed:\n{done.stdout}\n{done.stderr}")
    return path


def test_the_site_builds_strictly_without_a_warning(
    build: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    _, done = build
    assert done.returncode == 0, done.stderr
    assert "WARNING" not in done.stderr, done.stderr
    assert "ERROR" not in done.stderr, done.stderr


@pytest.mark.parametrize("page", PAGES)
def test_every_page_of_the_nav_is_built(site: Path, page: str) -> None:
    assert (site / page).stat().st_size > 0


@pytest.mark.parametrize("package", ["exegraph_trio", "exegraph_otel"])
def test_every_public_name_is_in_the_api_reference_with_its_docstring(
    site: Path, package: str
) -> None:
    public = importlib.import_module(package).__all__
    page = _read(site, f"reference/{package}/index.html", prefix=f"{package}.")
    assert public, f"{package} exports nothing"
    missing = [name for name in public if f"{package}.{name}" not in page.ids]
    assert not missing, f"not in reference/{package}: {missing}"
    undocumented = [name for name in public if f"{package}.{name}" not in page.documented]
    assert not undocumented, f"no docstring shown in reference/{package}: {undocumented}"


def test_the_pictures_are_drawn_from_the_demo_pipeline(site: Path) -> None:
    diagrams = _read(site, "index.html").diagrams
    flowchart = next(d for d in diagrams if d.startswith("flowchart"))
    gantt = next(d for d in diagrams if "\ngantt\n" in d)
    for step in ("checkout", "test-billing", "smoke-test"):
        assert f'"{step}' in flowchart
    assert ":::failed" in flowchart  # coloured by the run: test-billing fails
    assert "section slot 4" in gantt
    assert "section slot 5" not in gantt  # the run's bound is 4
    assert "test-billing :crit" in gantt


def test_the_trace_and_the_exception_tree_are_drawn_from_the_code(site: Path) -> None:
    trace = _read(site, "guides/tracing/index.html").diagrams
    assert any("RUN deploy :crit" in diagram for diagram in trace)
    tree = _read(site, "reference/exceptions/index.html").diagrams
    assert any("exegraph_trio.RunError" in d and "ExceptionGroup" in d for d in tree)


def test_the_changelog_is_included(site: Path) -> None:
    text = (site / "changelog/index.html").read_text(encoding="utf-8")
    assert "Unreleased" in text


def _snippet_paths(markdown: str) -> set[str]:
    """The files a page pulls in with `pymdownx.snippets`, inline or in block form."""
    inline = re.findall(r'--8<-- "([^"]+)"', markdown)
    blocks = re.findall(r"^\s*--8<--\s*\n(.*?)^\s*--8<--\s*$", markdown, flags=re.M | re.S)
    paths = inline + [line.strip() for block in blocks for line in block.splitlines()]
    return {path.split(":")[0] for path in paths if path}


def test_every_example_is_pulled_into_a_hand_written_page() -> None:
    pages = [p for p in (ROOT / "docs").rglob("*.md") if "generated" not in p.parts]
    included = set().union(*(_snippet_paths(p.read_text(encoding="utf-8")) for p in pages))
    examples = {f"examples/{p.name}" for p in (ROOT / "examples").glob("*.py")}
    assert examples <= included, f"examples no guide includes: {sorted(examples - included)}"


# -- in a real browser ----------------------------------------------------------------


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def served(site: Path) -> Iterator[str]:
    handler = functools.partial(_QuietHandler, directory=str(site))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def _chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            str(CHROMIUM),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
            f"--user-data-dir={tmp_path / 'chromium-profile'}",
            "--virtual-time-budget=10000",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _headings(dom: str) -> list[str]:
    found = re.findall(r"<h([12])[^>]*>(.*?)</h\1>", dom, flags=re.S)
    return [html.unescape(re.sub(r"<[^>]+>|¶", "", text)).strip() for _, text in found]


@needs_chromium
@pytest.mark.parametrize(
    ("page", "headings"),
    [
        ("", ["exegraph", "Fifteen lines", "What a run looks like", "Where next"]),
        (
            "guides/tracing/",
            [
                "Tracing with OpenTelemetry and Jaeger",
                "One line to turn it on",
                "What a trace holds",
                "To the console",
                "To Jaeger",
            ],
        ),
    ],
    ids=["index", "tracing"],
)
def test_the_page_renders_in_chromium_with_its_headings(
    served: str, tmp_path: Path, page: str, headings: list[str]
) -> None:
    screenshot = tmp_path / "page.png"
    shot = _chromium(
        tmp_path, f"--screenshot={screenshot}", "--window-size=1280,900", served + page
    )
    assert screenshot.exists(), shot.stderr
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert screenshot.stat().st_size > 10_000, "the screenshot looks blank"
    dom = _chromium(tmp_path, "--dump-dom", served + page)
    assert dom.returncode == 0, dom.stderr
    assert _headings(dom.stdout)[: len(headings)] == headings


@needs_chromium
def test_every_diagram_of_the_site_is_valid_mermaid(
    site: Path, served: str, tmp_path: Path
) -> None:
    mermaid = site / "assets/javascripts/mermaid.min.js"
    if not mermaid.exists():
        pytest.skip(
            "Mermaid is not vendored (the site would load it from a CDN): "
            "run `bash docs/vendor-mermaid.sh` before the tests"
        )
    diagrams = [d for page in PAGES for d in _read(site, page).diagrams]
    assert len(diagrams) >= 8
    check = site / "check-mermaid.html"
    check.write_text(
        "<!doctype html><html><body><pre id='results'>pending</pre>"
        "<script src='assets/javascripts/mermaid.min.js'></script><script>"
        f"const diagrams = {json.dumps(diagrams)};"
        "(async () => {"
        "  mermaid.initialize({startOnLoad: false});"
        "  const results = [];"
        "  for (const text of diagrams) {"
        "    try { await mermaid.parse(text); results.push('ok'); }"
        "    catch (error) { results.push(String(error.message || error)); }"
        "  }"
        "  document.getElementById('results').textContent = JSON.stringify(results);"
        "})();"
        "</script></body></html>",
        encoding="utf-8",
    )
    dom = _chromium(tmp_path, "--dump-dom", served + "check-mermaid.html")
    found = re.search(r"<pre id=\"results\">(.*?)</pre>", dom.stdout, flags=re.S)
    assert found is not None, dom.stdout[-2000:]
    results = json.loads(html.unescape(found.group(1)))
    bad = {
        diagram.splitlines()[0]: result
        for diagram, result in zip(diagrams, results, strict=True)
        if result != "ok"
    }
    assert not bad, bad
