"""The documentation site builds strictly, documents every public name, and renders.

Testing charter:

- The site is built once for this module with `mkdocs build --strict` in a subprocess,
  exactly as CI builds it, into a temporary directory (the build's hooks also refresh the
  git-ignored `docs/generated/`). In strict mode a broken cross-reference, a dead snippet
  path, a docstring parameter missing from its signature or a link to a missing page
  fails the build. Running mkdocs in its own process keeps its plugins' deprecation
  warnings out of this one, where `filterwarnings = error` would turn them into failures.
- The build serves its own pinned copy of Mermaid, fetched once with npm into
  `docs/generated/` (`docs/_vendor_mermaid.py`). Where it is not there yet and npm is
  missing, the tests that need the built site are skipped, saying why (the build itself
  fails, as it should, and `test_the_build_fails_clearly_without_mermaid` checks how).
- The browser checks serve the built site on 127.0.0.1 (an ephemeral port) and run
  Debian's headless Chromium with background networking off and every host name but
  127.0.0.1 unresolvable, so the network is as good as off: a diagram renders only if
  the site brings everything it needs. Every Chromium call has a timeout. They are
  skipped, saying why, when `/usr/bin/chromium` is absent.
- The layout checks load a page with a probe script added at the top of its `<head>`
  (a copy of the page, in the built site's temporary directory): it opens the shadow
  roots mkdocs-material draws diagrams into, waits until no diagram is left unrendered,
  and reports what it measured on a 1280×900 screen as JSON.
- Everything is skipped, saying why, when the docs tools are not installed.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import html
import importlib
import importlib.util
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import threading
from collections.abc import Callable, Iterator
from html.parser import HTMLParser
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any

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
    "guides/recovering/index.html",
    "guides/capacity/index.html",
    "guides/observing/index.html",
    "guides/tracing/index.html",
    "guides/metrics/index.html",
    "guides/testing/index.html",
    "guides/pictures/index.html",
    "guides/command-line/index.html",
    "guides/scaling-out/index.html",
    "examples/index.html",
    "reference/exegraph_trio/index.html",
    "reference/exegraph_otel/index.html",
    "reference/exegraph_dask/index.html",
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


def _mermaid_is_available() -> bool:
    """Whether the build can serve Mermaid: fetched already, or npm can fetch it."""
    fetched = (ROOT / "docs/generated/mermaid.min.js").exists()
    return fetched or shutil.which("npm") is not None


@pytest.fixture(scope="module")
def build(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, subprocess.CompletedProcess[str]]:
    if not _mermaid_is_available():
        pytest.skip(
            "the docs build needs Mermaid, fetched once with npm, and npm is not installed: "
            "install npm, or run `python docs/_vendor_mermaid.py` where it is"
        )
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


@pytest.mark.parametrize("package", ["exegraph_trio", "exegraph_otel", "exegraph_dask"])
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
    assert any('["RunError"]:::ours' in d and '["ExceptionGroup"]:::builtin' in d for d in tree)


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
                "Retries and teardowns",
                "Pools and waits",
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
    assert (site / "assets/javascripts/mermaid.min.js").exists()
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


# -- Mermaid, fetched once with npm ----------------------------------------------------


def _vendor_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "_vendor_mermaid_under_test", ROOT / "docs/_vendor_mermaid.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _fake_npm(folder: Path, tarball: bytes, *, exit_code: int = 0) -> str:
    """An `npm` whose `pack` writes `tarball` as the pinned version's package."""
    version = _vendor_module().VERSION
    (folder / "package.tgz").write_bytes(tarball)
    npm = folder / "npm"
    npm.write_text(
        "#!/bin/sh\n"
        f'echo "npm $*" >> "{folder}/calls"\n'
        f'[ {exit_code} = 0 ] || {{ echo "npm error ENOTFOUND registry" >&2; exit {exit_code}; }}\n'
        f'cp "{folder}/package.tgz" "mermaid-{version}.tgz"\n'
        f'echo \'[{{"filename": "mermaid-{version}.tgz"}}]\'\n',
        encoding="utf-8",
    )
    npm.chmod(0o755)
    return str(npm)


def _package(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


FAKE_MERMAID = {"package/dist/mermaid.min.js": b"var mermaid;", "package/LICENSE": b"MIT"}


def test_mermaid_is_fetched_once_and_checked_against_its_pinned_hash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    vendor = _vendor_module()
    tarball = _package(FAKE_MERMAID)
    digest = base64.b64encode(hashlib.sha512(tarball).digest()).decode()
    monkeypatch.setattr(vendor, "INTEGRITY", f"sha512-{digest}")
    npm = _fake_npm(tmp_path, tarball)
    generated = tmp_path / "generated"
    assert not vendor.is_current(generated)
    script = vendor.ensure(generated, npm=npm)
    assert script.read_bytes() == b"var mermaid;"
    assert (generated / "mermaid.LICENSE.txt").read_bytes() == b"MIT"
    assert vendor.is_current(generated)
    assert vendor.ensure(generated, npm=npm) == script
    calls = (tmp_path / "calls").read_text().splitlines()
    assert calls == [f"npm pack --json mermaid@{vendor.VERSION}"]  # once, the pinned version


def test_a_package_that_is_not_the_pinned_one_is_refused(tmp_path: Path) -> None:
    vendor = _vendor_module()
    generated = tmp_path / "generated"
    with pytest.raises(vendor.MermaidUnavailable, match="is not the pinned package"):
        vendor.ensure(generated, npm=_fake_npm(tmp_path, _package(FAKE_MERMAID)))
    assert not (generated / "mermaid.min.js").exists()
    assert not vendor.is_current(generated)


def test_a_failing_npm_is_reported_with_its_error(tmp_path: Path) -> None:
    vendor = _vendor_module()
    npm = _fake_npm(tmp_path, b"", exit_code=1)
    with pytest.raises(vendor.MermaidUnavailable, match=r"(?s)failed \(exit 1\).*ENOTFOUND"):
        vendor.ensure(tmp_path / "generated", npm=npm)


def test_the_build_fails_clearly_without_mermaid(tmp_path: Path) -> None:
    # Where Mermaid is not there and npm is missing, the build stops and says what to do,
    # instead of shipping diagrams that would show as raw text.
    code = (
        "import sys, types; sys.path.insert(0, 'docs'); import hooks\n"
        f"hooks.on_config(types.SimpleNamespace(docs_dir={str(tmp_path)!r}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**os.environ, "PATH": str(tmp_path)},  # no npm on it
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode != 0
    assert "PluginError: cannot build the site's diagrams" in done.stderr, done.stderr
    assert "npm is not installed" in done.stderr
    assert not (tmp_path / "generated/mermaid.min.js").exists()


# -- layout, measured in a real browser with the network off ----------------------------

PROBE = (Path(__file__).parent / "docs_probe.js").read_text(encoding="utf-8")
"""The probe script (see the testing charter)."""

DIAGRAM_PAGES = [
    "index.html",
    "getting-started/index.html",
    "guides/running/index.html",
    "guides/errors/index.html",
    "guides/tracing/index.html",
    "reference/exceptions/index.html",
]


@pytest.fixture(scope="module")
def probe(
    site: Path, served: str, tmp_path_factory: pytest.TempPathFactory
) -> Callable[[str], dict[str, Any]]:
    """Load a page with the probe, on a 1280×900 screen; what it reports (cached)."""
    if not CHROMIUM.exists():
        pytest.skip("Chromium is not installed: `apt-get install -y chromium`")
    found: dict[str, dict[str, Any]] = {}

    def load(page: str) -> dict[str, Any]:
        if page not in found:
            original = site / page
            copy = original.with_name(f"probe-{original.name}")
            copy.write_text(
                original.read_text(encoding="utf-8").replace(
                    "<head>", "<head><script>" + PROBE + "</script>", 1
                ),
                encoding="utf-8",
            )
            url = served + copy.relative_to(site).as_posix()
            dom = _chromium(
                tmp_path_factory.mktemp("chromium"),
                "--window-size=1280,900",
                "--virtual-time-budget=20000",
                "--dump-dom",
                url,
            )
            report = re.search(r'<pre id="exegraph-probe">(.*?)</pre>', dom.stdout, flags=re.S)
            assert report is not None, f"the probe did not report on {page}:\n{dom.stderr}"
            found[page] = json.loads(html.unescape(report.group(1)))
        return found[page]

    return load


@needs_chromium
@pytest.mark.parametrize("page", DIAGRAM_PAGES)
def test_every_diagram_renders_as_svg_with_the_network_off(
    site: Path, served: str, probe: Callable[[str], dict[str, Any]], page: str
) -> None:
    expected = len(_read(site, page).diagrams)
    assert expected > 0
    report = probe(page)
    assert report["unrendered"] == 0, "Mermaid source left as text"
    assert len(report["diagrams"]) == expected
    assert all(d["svg"] for d in report["diagrams"]), report["diagrams"]
    # Mermaid came from the site itself, not from a CDN.
    assert served + "assets/javascripts/mermaid.min.js" in report["scripts"]
    assert all(src.startswith(served) for src in report["scripts"]), report["scripts"]


@needs_chromium
@pytest.mark.parametrize("page", DIAGRAM_PAGES)
def test_no_diagram_text_is_smaller_than_12_px_on_a_1280_px_screen(
    probe: Callable[[str], dict[str, Any]], page: str
) -> None:
    shown = [d for d in probe(page)["diagrams"] if d["svg"] and d["visible"]]
    assert shown
    assert [round(d["smallestText"], 1) for d in shown if d["smallestText"] < 12] == []


@needs_chromium
@pytest.mark.parametrize("page", ["index.html", "guides/errors/index.html"])
def test_gantt_axes_read_as_times_from_zero(
    probe: Callable[[str], dict[str, Any]], page: str
) -> None:
    gantts = [d for d in probe(page)["diagrams"] if d["svg"] and d["kind"] == "gantt"]
    assert gantts
    for gantt in gantts:
        assert gantt["ticks"][0] == "0 ms"
        assert all(re.fullmatch(r"[1-9]\d* ms", tick) for tick in gantt["ticks"][1:]), gantt


@needs_chromium
def test_a_status_has_one_colour_in_flowcharts_gantt_charts_and_their_legends(
    probe: Callable[[str], dict[str, Any]],
) -> None:
    report = probe("guides/errors/index.html")  # the fail-fast run: every status occurs
    shown = [d for d in report["diagrams"] if d["svg"] and d["visible"]]
    flowchart = next(d for d in shown if d["kind"] == "flowchart-v2")
    gantt = next(d for d in shown if d["kind"] == "gantt")
    assert set(flowchart["fills"]) == {"failed", "cancelled", "skipped"}
    assert set(gantt["fills"]) == {"failed", "cancelled"}
    for status, fill in gantt["fills"].items():
        assert fill == flowchart["fills"][status], status
    legends = report["legends"]
    assert len(legends) == 4  # one under each coloured diagram, in both tabs
    for legend in legends:
        for status, fill in flowchart["fills"].items():
            if status in legend:
                assert legend[status] == fill, status
    assert "skipped" in legends[0]  # the flowchart's legend
    assert set(legends[1]) == {"done", "failed", "cancelled"}  # the Gantt chart's: no skips


@needs_chromium
@pytest.mark.parametrize("page", PAGES)
def test_code_blocks_fit_the_column_on_a_1280_px_screen(
    probe: Callable[[str], dict[str, Any]], page: str
) -> None:
    assert probe(page)["wideCode"] == []


@needs_chromium
@pytest.mark.parametrize(
    "page",
    [
        "reference/exceptions/index.html",
        "guides/graphs/index.html",
        "guides/observing/index.html",
        "guides/metrics/index.html",
        "guides/capacity/index.html",
        "guides/tracing/index.html",
        "comparison/index.html",
        "reference/exegraph_trio/index.html",
    ],
)
def test_identifiers_in_tables_never_break_inside_a_word(
    probe: Callable[[str], dict[str, Any]], page: str
) -> None:
    assert probe(page)["brokenNames"] == []
