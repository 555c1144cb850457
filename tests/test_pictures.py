"""Pictures (SPEC 2.3): every picture is checked by the tool that reads it.

Testing charter:

- Mermaid pictures are parsed and drawn by the Mermaid the docs vendor
  (`docs/_vendor_mermaid.py`: the pinned release, fetched once with npm) in Debian's
  headless Chromium with the network off, the way `tests/test_docs.py` drives it. What a
  drawing shows is read back from its SVG: each node's and bar's text and classes, each
  arrow. The pictures of 10⁴ steps are parsed only (Mermaid's layout of 10⁴ nodes takes
  minutes), with Mermaid initialised with `maxEdges` and `maxTextSize` large enough, as
  the guide tells users to. Nothing is skipped: without Chromium, or without Mermaid and
  npm to fetch it, these tests fail and say what to install.
- DOT is laid out by Graphviz (`dot -Tsvg`, Debian's `graphviz`, installed by `.ci/run`),
  which must exit 0 without a word on stderr; labels are read back from its SVG. Missing
  Graphviz fails the tests, saying so.
- Chrome traces are checked against the Trace Event Format rules: valid JSON, a complete
  event (`"ph": "X"`) per step that ran, `ts`/`dur` in microseconds, no two events of a
  lane (`tid`) overlapping, as many lanes as steps ran at once, metadata naming them.
- Runs are real runs under Trio's mock clock (`autojump_threshold=0`), so times are exact:
  failures, skips, fail-fast cancellations, retries, resource steps and failing teardowns.
  The pictures browsers must draw are made once per module (one Chromium start for all).
- Names are hostile: quotes, brackets, backslashes, HTML, Mermaid and DOT syntax and
  keywords, entities, control characters, unpaired surrogates, emoji, other scripts.
"""

from __future__ import annotations

import functools
import html
import importlib.util
import itertools
import json
import os
import re
import shutil
import subprocess
import time
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from types import ModuleType
from typing import Any, Final, Protocol, TypeVar

import attrs
import pytest
import trio
import trio.testing

import exegraph_trio as exegraph
from exegraph_trio import (
    Graph,
    Retry,
    RunOptions,
    RunResult,
    Step,
    StepStatus,
    StepTiming,
    TriggerRule,
)

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
T = TypeVar("T")

HOSTILE = [
    'say "hi"',
    "it's",
    "[brackets]",
    "(parens)",
    "{braces}",
    "((double))",
    "x|y",
    "<b>bold</b>",
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    "a\\b",
    "back\\nslash",
    "\\",
    '"',
    "#quot;",
    "#35;",
    "&amp;",
    "&#36;",
    "50%",
    "%%",
    "%% comment",
    "%%{init: {'theme': 'dark'}}%%",
    "a:b;c",
    ":",
    ";",
    "#",
    "=",
    "`code`",
    "**bold**",
    "_it_",
    "$$x$$",
    "fa:fa-car",
    "end",
    "END",
    "graph",
    "subgraph",
    "flowchart",
    "digraph",
    "node",
    "edge",
    "strict",
    "style",
    "style s0 fill:#f00;",
    "classDef x fill:#f00;",
    "click s0 call alert()",
    "section x",
    "title t",
    "dateFormat YYYY",
    "accTitle: t",
    "gantt",
    "1999-01-01",
    "42",
    "s0",
    "t1",
    "A-->B",
    "a --- b",
    "-.->",
    "---",
    "日本語のステップ",
    "🚀 launch",
    "e\u0301",
    "\u202eevil",
    " lead",
    "trail ",
    "two  spaces",
    "tab\there",
    "new\nline",
    "\x00\x07\x1b\x7f",
    "\x85c1",
    "\ud800 lone",
    "ﬂ°°36¶ß",
    "x¶ßy",
]


def shown(name: str) -> str:
    """How every picture shows `name`: control characters as their control pictures
    (U+2400 + code, DEL as ␡), C1 controls and unpaired surrogates as �."""
    out = []
    for char in name:
        code = ord(char)
        if code < 0x20:
            out.append(chr(0x2400 + code))
        elif code == 0x7F:
            out.append("\u2421")
        elif 0x80 <= code < 0xA0 or 0xD800 <= code < 0xE000:
            out.append("\ufffd")
        else:
            out.append(char)
    return "".join(out)


def in_virtual_time(async_fn: Callable[[], Awaitable[T]]) -> T:
    """Run `async_fn()` under the autojump mock clock (for the module's fixtures)."""
    return trio.run(async_fn, clock=trio.testing.MockClock(autojump_threshold=0))


def sleeper(seconds: float) -> exegraph.Action:
    async def action() -> None:
        await trio.sleep(seconds)

    return action


def flaky(seconds: float, failures: int) -> exegraph.Action:
    """Fails its first `failures` attempts, each after `seconds`, then succeeds."""
    attempts = 0

    async def action() -> None:
        nonlocal attempts
        attempts += 1
        await trio.sleep(seconds)
        if attempts <= failures:
            raise ConnectionError(f"attempt {attempts} lost the connection")

    return action


async def database() -> AsyncIterator[str]:
    """A resource step: 1 s to set up; its teardown fails."""
    await trio.sleep(1)
    yield "postgres://db"
    raise RuntimeError("could not drop the database")


async def migrate(db: str) -> None:
    await trio.sleep(2)
    raise ValueError(f"migration 7 failed on {db}")


def hostile_graph() -> Graph:
    """A step per hostile name, each depending on the one two before (and on the first)."""
    steps = []
    for i, name in enumerate(HOSTILE):
        depends = {HOSTILE[i - 2], HOSTILE[0]} - {name} if i >= 2 else set()
        steps.append(Step(name, sleeper(0.25 * (i % 3 + 1)), depends_on=sorted(depends)))
    return Graph(steps)


def lifecycle_graph() -> Graph:
    """Every status under fail-fast: a resource whose teardown fails, a step done after
    two retries, a failure, a step it skips, one fail-fast cancels, a trigger-rule step."""
    return Graph(
        [
            Step("db", database),
            Step('flaky "deploy"', flaky(0.25, 2), retry=Retry(attempts=3, delay=0.5, backoff=1.0)),
            Step("migrate", migrate, inputs={"db": "db"}),
            Step("slow [section]", sleeper(10)),
            Step("end", sleeper(1), depends_on=["migrate"]),
            Step(
                "report",
                sleeper(1),
                depends_on=["migrate", "slow [section]"],
                trigger_rule=TriggerRule.ALL_DONE,
            ),
        ]
    )


LIFECYCLE_OPTIONS = RunOptions(max_concurrency=3)
LIFECYCLE_DURATIONS = {
    "db": 1.0,
    'flaky "deploy"': 1.75,
    "migrate": 2.0,
    "slow [section]": 10.0,
    "end": 1.0,
    "report": 1.0,
}
"""What the lifecycle run's steps take, for its plan."""


def big_graph(n: int = 10_000) -> Graph:
    """`n` steps: each depends on the one before and on one 7 before (2n edges)."""
    steps = []
    for i in range(n):
        depends = [f"step {j}" for j in {i - 1, i - 7} if j >= 0]
        steps.append(Step(f"step {i}", sleeper(0.001 * (1 + i % 5)), depends_on=depends))
    return Graph(steps)


def wide_graph(n: int = 10_000) -> Graph:
    """`n` steps in layers of 100 with varied durations, so that many overlap."""
    steps = []
    for i in range(n):
        depends = [f"w{i - 100}"] if i >= 100 else []
        steps.append(Step(f"w{i}", sleeper(0.001 * (1 + (i * 7919) % 13)), depends_on=depends))
    return Graph(steps)


@attrs.frozen
class Scenes:
    """The graphs, runs and plans the module's pictures are made of."""

    hostile: Graph
    hostile_run: RunResult
    hostile_plan: exegraph.Plan
    lifecycle: Graph
    lifecycle_run: RunResult
    lifecycle_plan: exegraph.Plan
    big: Graph
    big_run: RunResult
    big_plan: exegraph.Plan


@pytest.fixture(scope="module")
def scenes() -> Scenes:
    hostile = hostile_graph()
    lifecycle = lifecycle_graph()
    big = big_graph()
    big_options = RunOptions(max_concurrency=8)
    return Scenes(
        hostile=hostile,
        hostile_run=in_virtual_time(
            lambda: exegraph.run_with_result(hostile, RunOptions(max_concurrency=4))
        ),
        hostile_plan=exegraph.plan(hostile, RunOptions(max_concurrency=4)),
        lifecycle=lifecycle,
        lifecycle_run=in_virtual_time(
            lambda: exegraph.run_with_result(lifecycle, LIFECYCLE_OPTIONS)
        ),
        lifecycle_plan=exegraph.plan(
            lifecycle,
            attrs.evolve(LIFECYCLE_OPTIONS, durations=LIFECYCLE_DURATIONS),
            fail=["migrate"],
        ),
        big=big,
        big_run=in_virtual_time(lambda: exegraph.run_with_result(big, big_options)),
        big_plan=exegraph.plan(big, big_options),
    )


def test_the_lifecycle_run_has_every_status_retries_and_a_failed_teardown(
    scenes: Scenes,
) -> None:
    # What the pictures below are checked against.
    run = scenes.lifecycle_run
    assert {name: (t.status, t.start, t.end) for name, t in _by_name(run).items()} == {
        "db": (StepStatus.DONE, 0, 1),
        'flaky "deploy"': (StepStatus.DONE, 0, 1.75),
        "migrate": (StepStatus.FAILED, 1, 3),
        "slow [section]": (StepStatus.CANCELLED, 0, 3),
        "end": (StepStatus.SKIPPED, None, None),
        "report": (StepStatus.DONE, 3, 4),
    }
    assert run['flaky "deploy"'].attempts == 3
    assert isinstance(run["db"].teardown_error, RuntimeError)


def _by_name(result: RunResult) -> dict[str, StepTiming]:
    return {timing.name: timing for timing in result}


# -- Mermaid, drawn by the vendored Mermaid in headless Chromium ---------------------------


@attrs.frozen
class Drawing:
    """What Mermaid made of one picture: its kind, or the error it raised; what it shows."""

    kind: str | None
    error: str | None
    nodes: dict[str, dict[str, str]]  # s0 -> {"text", "classes"}
    edges: dict[str, str]  # "s0 s1" -> classes
    edge_labels: list[str]
    tasks: dict[str, dict[str, str]]  # t0 -> {"text", "classes"}
    sections: list[str]
    title: str | None
    ticks: list[tuple[float, str]]  # the time axis: (x, label) of each tick


_HARNESS = """
(async () => {
  const pick = (re, id) => { const m = re.exec(id || ""); return m ? m[1] : null; };
  mermaid.initialize({startOnLoad: false, maxTextSize: 1e9, maxEdges: 1e8});
  const out = [];
  for (const [i, text] of DIAGRAMS.entries()) {
    try {
      const parsed = await mermaid.parse(text);
      const drawing = {kind: parsed.diagramType, error: null, nodes: {}, edges: {},
                       edge_labels: [], tasks: {}, sections: [], title: null, ticks: []};
      if (RENDER) {
        const {svg} = await mermaid.render("p" + i, text);
        const box = document.createElement("div");
        box.innerHTML = svg;
        for (const n of box.querySelectorAll("g.node")) {
          const id = pick(/flowchart-(s\\d+)-\\d+$/, n.id);
          drawing.nodes[id] = {text: n.textContent, classes: n.getAttribute("class")};
        }
        for (const e of box.querySelectorAll("path.flowchart-link")) {
          const ends = /^L_(s\\d+)_(s\\d+)_\\d+$/.exec(e.dataset.id);
          drawing.edges[ends[1] + " " + ends[2]] = e.getAttribute("class");
        }
        drawing.edge_labels = [...box.querySelectorAll("g.edgeLabel")]
          .map((l) => l.textContent).filter((t) => t);
        for (const r of box.querySelectorAll("rect.task")) {
          drawing.tasks[pick(/-(t\\d+)$/, r.id)] = {classes: r.getAttribute("class")};
        }
        for (const t of box.querySelectorAll("text[id$='-text']")) {
          drawing.tasks[pick(/-(t\\d+)-text$/, t.id)].text = t.textContent;
        }
        drawing.sections = [...box.querySelectorAll("text.sectionTitle")]
          .map((s) => s.textContent);
        drawing.ticks = [...box.querySelectorAll("g.grid g.tick")].map((t) => [
          parseFloat(/translate\\(([-\\d.e]+)/.exec(t.getAttribute("transform"))[1]),
          t.textContent]);
        const title = box.querySelector("text.titleText");
        drawing.title = title ? title.textContent : null;
      }
      out.push(drawing);
    } catch (error) {
      out.push({kind: null, error: String(error.message || error)});
    }
  }
  document.getElementById("results").textContent = JSON.stringify(out);
})();
"""


def _load_vendor() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "_vendor_mermaid_for_pictures", ROOT / "docs/_vendor_mermaid.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def mermaid_js() -> Path:
    """The vendored Mermaid, fetched with npm if it is not there yet."""
    vendor = _load_vendor()
    try:
        path: Path = vendor.ensure()
    except vendor.MermaidUnavailable as error:
        pytest.fail(f"the Mermaid pictures are checked with the docs' Mermaid: {error}")
    return path


@pytest.fixture(scope="module")
def chromium() -> Path:
    if not CHROMIUM.exists():
        pytest.fail(
            "the Mermaid pictures are checked in headless Chromium, which is not installed: "
            "`apt-get install -y chromium` provides /usr/bin/chromium"
        )
    return CHROMIUM


class DrawFn(Protocol):
    def __call__(self, diagrams: list[str], render: bool, *, tz: str = "UTC") -> list[Drawing]: ...


@pytest.fixture(scope="module")
def draw(mermaid_js: Path, chromium: Path, tmp_path_factory: pytest.TempPathFactory) -> DrawFn:
    """Parse (and, with `render`, draw) Mermaid sources in Chromium; what each became."""

    def run(diagrams: list[str], render: bool, *, tz: str = "UTC") -> list[Drawing]:
        folder = tmp_path_factory.mktemp("mermaid")
        page = folder / "pictures.html"
        data = json.dumps(diagrams).replace("</", "<\\/")
        page.write_text(
            "<!doctype html><meta charset='utf-8'><body><pre id='results'>pending</pre>"
            f"<script src='{mermaid_js.as_uri()}'></script><script>"
            f"const DIAGRAMS = {data}; const RENDER = {json.dumps(render)};{_HARNESS}"
            "</script></body>",
            encoding="utf-8",
        )
        done = subprocess.run(
            [
                str(chromium),
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--host-resolver-rules=MAP * ~NOTFOUND",
                f"--user-data-dir={folder / 'profile'}",
                "--virtual-time-budget=60000",
                "--dump-dom",
                page.as_uri(),
            ],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
            env={**os.environ, "TZ": tz},  # (the reader's time zone: Mermaid draws in it)
        )
        found = re.search(r'<pre id="results">(.*?)</pre>', done.stdout, flags=re.S)
        assert found is not None, f"Chromium said:\n{done.stderr[-3000:]}"
        text = html.unescape(found.group(1))
        assert text != "pending", f"Mermaid did not finish:\n{done.stderr[-3000:]}"
        return [
            Drawing(
                kind=d["kind"],
                error=d["error"],
                nodes=d.get("nodes", {}),
                edges=d.get("edges", {}),
                edge_labels=d.get("edge_labels", []),
                tasks=d.get("tasks", {}),
                sections=d.get("sections", []),
                title=d.get("title"),
                ticks=[tuple(tick) for tick in d.get("ticks", [])],
            )
            for d in json.loads(text)
        ]

    return run


@pytest.fixture(scope="module")
def drawn(scenes: Scenes, draw: DrawFn) -> dict[str, Drawing]:
    """Every small Mermaid picture of the module, drawn in one Chromium run."""
    pictures = {
        "hostile graph": scenes.hostile.to_mermaid(),
        "hostile graph TD": scenes.hostile.to_mermaid(direction="TD"),
        "hostile run": scenes.hostile_run.to_mermaid(),
        "hostile run gantt": scenes.hostile_run.to_gantt(),
        "hostile plan gantt": scenes.hostile_plan.to_gantt(),
        "hostile titled gantt": scenes.hostile_run.to_gantt(title=HOSTILE[21] + HOSTILE[8]),
        "untitled run gantt": scenes.hostile_run.to_gantt(title=""),
        "untitled plan gantt": scenes.hostile_plan.to_gantt(title=" \t"),
        "lifecycle graph": scenes.lifecycle.to_mermaid(),
        "lifecycle run": scenes.lifecycle_run.to_mermaid(direction="BT"),
        "lifecycle run gantt": scenes.lifecycle_run.to_gantt(),
        "lifecycle plan gantt": scenes.lifecycle_plan.to_gantt(),
        "empty gantt": RunResult((), 0.0).to_gantt(),
        "one-step graph": Graph([Step("only", sleeper(1))]).to_mermaid(),
    }
    drawings = draw(list(pictures.values()), True)
    return dict(zip(pictures, drawings, strict=True))


def _text(drawing: Drawing, node: str) -> str:
    return drawing.nodes[node]["text"].replace("\u2060", "")


@pytest.mark.parametrize("name", ["hostile graph", "hostile graph TD"])
def test_a_graph_is_drawn_with_every_name_as_it_is(
    drawn: dict[str, Drawing], scenes: Scenes, name: str
) -> None:
    drawing = drawn[name]
    assert drawing.error is None
    assert drawing.kind == "flowchart-v2"
    assert {node: _text(drawing, node) for node in drawing.nodes} == {
        f"s{i}": shown(step.name) for i, step in enumerate(scenes.hostile)
    }


def test_a_graph_has_an_arrow_from_each_dependency_to_its_dependent(
    drawn: dict[str, Drawing], scenes: Scenes
) -> None:
    index = {name: i for i, name in enumerate(scenes.hostile.names)}
    expected = {
        f"s{index[dep]} s{i}" for i, step in enumerate(scenes.hostile) for dep in step.depends_on
    }
    assert set(drawn["hostile graph"].edges) == expected


def test_a_graph_shows_resources_inputs_and_trigger_rules(drawn: dict[str, Drawing]) -> None:
    drawing = drawn["lifecycle graph"]
    assert drawing.error is None
    # migrate takes db's value as `db`; report runs whatever its dependencies did.
    assert drawing.edge_labels == ["db"]
    assert "edge-pattern-solid" in drawing.edges["s0 s2"]
    assert "edge-pattern-dotted" in drawing.edges["s2 s5"]
    assert "edge-pattern-dotted" in drawing.edges["s3 s5"]
    assert _text(drawing, "s5") == "reportall_done"
    assert [_text(drawing, f"s{i}") for i in range(5)] == [
        "db",
        'flaky "deploy"',
        "migrate",
        "slow [section]",
        "end",
    ]


def test_a_resource_step_is_a_cylinder() -> None:
    text = lifecycle_graph().to_mermaid()
    assert '  s0[("db")]' in text
    assert '  s2["migrate"]' in text


def test_a_run_colours_each_step_by_its_status(drawn: dict[str, Drawing]) -> None:
    drawing = drawn["lifecycle run"]
    assert drawing.error is None
    classes = {node: set(drawing.nodes[node]["classes"].split()) for node in drawing.nodes}
    statuses = ["done", "done", "failed", "cancelled", "skipped", "done"]
    for i, status in enumerate(statuses):
        assert status in classes[f"s{i}"], (i, classes[f"s{i}"])
        assert not ({"done", "failed", "cancelled", "skipped"} - {status}) & classes[f"s{i}"]


def test_a_run_says_status_duration_attempts_errors_and_failed_teardowns(
    drawn: dict[str, Drawing],
) -> None:
    drawing = drawn["lifecycle run"]
    assert [_text(drawing, f"s{i}") for i in range(6)] == [
        "dbDone, 1.00 s, teardown failed",
        'flaky "deploy"Done, 1.75 s, 3 attempts',
        "migrateFailed, 2.00 s, ValueError",
        "slow [section]Cancelled, 3.00 s",
        "endSkipped",
        "reportall_done, Done, 1.00 s",
    ]


def test_a_run_has_the_arrows_of_its_graph(drawn: dict[str, Drawing]) -> None:
    assert drawn["lifecycle run"].edges.keys() == drawn["lifecycle graph"].edges.keys()


def test_a_run_shows_every_hostile_name_as_it_is(drawn: dict[str, Drawing], scenes: Scenes) -> None:
    drawing = drawn["hostile run"]
    assert drawing.error is None
    run = scenes.hostile_run
    durations = {0.25: "250 ms", 0.5: "500 ms", 0.75: "750 ms"}
    for i, step in enumerate(scenes.hostile):
        text = _text(drawing, f"s{i}")
        assert text == shown(step.name) + f"Done, {durations[run[step.name].duration]}"
        assert "done" in drawing.nodes[f"s{i}"]["classes"].split()


def _tasks(drawing: Drawing) -> dict[str, tuple[str, str]]:
    """Each bar's text (Mermaid adds a space) and its status tag."""
    found = {}
    for task in drawing.tasks.values():
        # Mermaid numbers the classes by section: done0, crit1, active2…
        tags = re.findall(r"\b(done|crit|active)\d+\b", task["classes"])
        tag = tags[0] if tags else ""
        found[task["text"].removesuffix(" ").replace("\u2060", "")] = (tag, task["classes"])
    return {text: (tag, classes) for text, (tag, classes) in found.items()}


def test_a_gantt_chart_has_a_bar_per_step_that_ran_tagged_by_status(
    drawn: dict[str, Drawing],
) -> None:
    drawing = drawn["lifecycle run gantt"]
    assert drawing.error is None
    assert drawing.kind == "gantt"
    assert {text: tag for text, (tag, _) in _tasks(drawing).items()} == {
        "db": "done",
        'flaky "deploy"': "done",
        "migrate": "crit",
        "slow [section]": "active",
        "report": "done",
    }  # `end` was skipped: no bar
    assert drawing.title == "exegraph run, 6 steps in 4.00 s"


def test_a_gantt_chart_has_as_many_lanes_as_steps_ran_at_once(
    drawn: dict[str, Drawing], scenes: Scenes
) -> None:
    # db, flaky and slow start together; migrate takes db's lane; report migrate's.
    assert drawn["lifecycle run gantt"].sections == ["lane 1", "lane 2", "lane 3"]
    source = scenes.lifecycle_run.to_gantt()
    lanes = source.split("  section ")[1:]
    assert [re.findall(r"^    (.+?) :", lane, flags=re.M) for lane in lanes] == [
        ["db", "migrate", "report"],
        ["flaky #34;deploy#34;"],
        ["slow #91;section#93;"],
    ]
    assert "    migrate :crit, t2, 1000, 3000" in source


def test_a_plan_is_drawn_like_a_run(drawn: dict[str, Drawing]) -> None:
    drawing = drawn["lifecycle plan gantt"]
    assert drawing.error is None
    assert drawing.title == "exegraph plan, 6 steps in 4.00 s"
    # With the run's durations, the plan is the run: migrate fails at 3 s, which cancels
    # slow and skips end.
    assert {text: tag for text, (tag, _) in _tasks(drawing).items()} == {
        "db": "done",
        'flaky "deploy"': "done",
        "slow [section]": "active",
        "migrate": "crit",
        "report": "done",
    }


@pytest.mark.parametrize("name", ["hostile run gantt", "hostile plan gantt"])
def test_a_gantt_chart_shows_every_hostile_name_as_it_is(
    drawn: dict[str, Drawing], scenes: Scenes, name: str
) -> None:
    drawing = drawn[name]
    assert drawing.error is None
    assert sorted(_tasks(drawing)) == sorted(shown(name) for name in HOSTILE)
    assert len(drawing.tasks) == len(HOSTILE)


def test_a_gantt_title_is_escaped_too(drawn: dict[str, Drawing]) -> None:
    assert drawn["hostile titled gantt"].error is None
    assert drawn["hostile titled gantt"].title == HOSTILE[21] + HOSTILE[8]


@pytest.mark.parametrize("name", ["untitled run gantt", "untitled plan gantt"])
def test_a_gantt_chart_with_a_blank_title_has_none(drawn: dict[str, Drawing], name: str) -> None:
    assert drawn[name].error is None
    assert not drawn[name].title  # (Mermaid draws an empty one)
    assert len(drawn[name].tasks) == len(HOSTILE)


def test_an_empty_run_and_a_single_step_are_drawn(drawn: dict[str, Drawing]) -> None:
    assert drawn["empty gantt"].error is None
    assert drawn["empty gantt"].tasks == {}
    assert drawn["one-step graph"].error is None
    assert _text(drawn["one-step graph"], "s0") == "only"


def test_ten_thousand_steps_are_drawn_fast_and_parse(scenes: Scenes, draw: DrawFn) -> None:
    began = time.perf_counter()
    pictures = [
        scenes.big.to_mermaid(),
        scenes.big_run.to_mermaid(),
        scenes.big_run.to_gantt(),
        scenes.big_plan.to_gantt(),
    ]
    elapsed = time.perf_counter() - began
    assert elapsed < 2.0, f"four pictures of 10⁴ steps took {elapsed:.2f} s"
    assert [(d.kind, d.error) for d in draw(pictures, False)] == [
        ("flowchart-v2", None),
        ("flowchart-v2", None),
        ("gantt", None),
        ("gantt", None),
    ]
    assert pictures[0].count(" --> ") == 2 * len(scenes.big) - 8


def _seconds_read(label: str) -> float:
    """The time a tick's label reads: `250 ms`, `1.500 s`, `3600 s`."""
    number, unit = label.split()
    return float(number) / 1000 if unit == "ms" else float(number)


AXIS_SPANS: Final = (0.4, 3, 40, 170, 300, 1_500, 3_000, 20_000, 200_000, 2_000_000)
"""Makespans (seconds) whose Gantt axes are checked: every kind of interval, 25 s, 50 s."""


@pytest.mark.parametrize("tz", ["UTC", "Africa/Monrovia", "Asia/Kolkata", "America/St_Johns"])
def test_a_gantt_axis_ticks_evenly_and_reads_the_time_since_the_start(
    draw: DrawFn, tz: str
) -> None:
    # Ticks every 25 s or 50 s were put at 0, 25, 50, 60, 85 s… (d3 counts seconds within
    # the minute); in Monrovia's 1970 time zone (−0:44:30) the seconds read 30 s at 0.
    async def act() -> None:
        pass

    graph = Graph([Step("a", act), Step("b", act, depends_on=["a"])])
    charts = [
        exegraph.plan(graph, RunOptions(durations={"a": span / 2, "b": span / 2})).to_gantt()
        for span in AXIS_SPANS
    ]
    for span, drawing in zip(AXIS_SPANS, draw(charts, True, tz=tz), strict=True):
        assert drawing.error is None
        xs = [x for x, _ in drawing.ticks]
        reads = [_seconds_read(label) for _, label in drawing.ticks]
        assert 3 <= len(xs) <= 9, (span, drawing.ticks)
        assert abs(xs[0]) <= 1, (span, drawing.ticks)  # (d3 draws lines half a pixel in)
        assert reads[0] == 0, (span, drawing.ticks)
        step, gap = reads[1], (xs[-1] - xs[0]) / (len(xs) - 1)
        for k in range(1, len(xs)):
            assert reads[k] == pytest.approx(k * step), (span, drawing.ticks)
            assert xs[k] - xs[0] == pytest.approx(k * gap, abs=1), (span, drawing.ticks)
        assert reads[-1] <= span < reads[-1] + step, (span, drawing.ticks)


def test_a_hand_made_result_has_no_flowchart_but_a_gantt_chart_and_a_trace() -> None:
    result = RunResult((StepTiming("a", StepStatus.DONE, start=1.0, end=2.0, attempts=1),), 1.0)
    with pytest.raises(ValueError, match=r"to_mermaid draws the graph that ran.*to_gantt"):
        result.to_mermaid()
    assert "    a :done, t0, 0, 1000\n" in result.to_gantt()
    assert [e["name"] for e in _events(result.to_chrome_trace())] == ["a"]


@pytest.mark.parametrize("method", ["to_mermaid", "to_dot"])
def test_an_unknown_direction_is_refused(method: str) -> None:
    with pytest.raises(ValueError, match="direction must be one of LR, RL, TB, TD, BT, not 'up'"):
        getattr(Graph([Step("a", sleeper(1))]), method)(direction="up")


def test_names_are_labels_and_ids_are_generated() -> None:
    graph = Graph([Step("end", sleeper(1)), Step("s0", sleeper(1), depends_on=["end"])])
    assert graph.to_mermaid() == 'flowchart LR\n  s0["end"]\n  s1["s0"]\n  s0 --> s1\n'


# -- DOT, laid out by Graphviz -------------------------------------------------------------


@pytest.fixture(scope="module")
def dot() -> str:
    found = shutil.which("dot")
    if found is None:
        pytest.fail(
            "the DOT pictures are checked with Graphviz, which is not installed: "
            "`apt-get install -y graphviz` (Debian) provides `dot`"
        )
    return found


def _layout(dot: str, source: str) -> ET.Element:
    """`dot -Tsvg`; it must succeed without a warning."""
    done = subprocess.run(
        [dot, "-Tsvg"], input=source.encode(), capture_output=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    assert done.stderr == b"", done.stderr.decode(errors="replace")
    return ET.fromstring(done.stdout)


_SVG = "{http://www.w3.org/2000/svg}"


def _dot_nodes(svg: ET.Element) -> dict[str, str]:
    """Each node's id (its `<title>`) and its label, lines joined with newlines."""
    nodes = {}
    for group in svg.iter(f"{_SVG}g"):
        if group.get("class") == "node":
            title = group.findtext(f"{_SVG}title")
            assert title is not None
            # Graphviz keeps a run of spaces with no-break spaces.
            texts = [(text.text or "").replace("\xa0", " ") for text in group.iter(f"{_SVG}text")]
            nodes[title] = "\n".join(texts)
    return nodes


def _dot_edges(svg: ET.Element) -> dict[str, str]:
    edges = {}
    for group in svg.iter(f"{_SVG}g"):
        if group.get("class") == "edge":
            title = group.findtext(f"{_SVG}title")
            assert title is not None
            edges[title] = "\n".join(text.text or "" for text in group.iter(f"{_SVG}text"))
    return edges


def test_graphviz_lays_out_every_hostile_name_as_it_is(dot: str, scenes: Scenes) -> None:
    svg = _layout(dot, scenes.hostile.to_dot())
    assert _dot_nodes(svg) == {f"s{i}": shown(step.name) for i, step in enumerate(scenes.hostile)}


def test_graphviz_lays_out_names_longer_than_one_of_its_strings(dot: str) -> None:
    # Graphviz refuses a quoted string of more than 16 384 characters: a long name is
    # written as several, joined with `+`, and drawn whole.
    async def act() -> None:
        pass

    names = ["x" * 17_000, "&" * 4_000, 'q"\\' * 3_000]
    graph = Graph([Step(name, act) for name in names])
    svg = _layout(dot, graph.to_dot())
    assert _dot_nodes(svg) == {f"s{i}": name for i, name in enumerate(names)}


def test_graphviz_draws_an_edge_from_each_dependency(dot: str, scenes: Scenes) -> None:
    index = {name: i for i, name in enumerate(scenes.hostile.names)}
    expected = {
        f"s{index[dep]}->s{i}" for i, step in enumerate(scenes.hostile) for dep in step.depends_on
    }
    assert set(_dot_edges(_layout(dot, scenes.hostile.to_dot()))) == expected


def test_graphviz_shows_resources_inputs_and_trigger_rules(dot: str) -> None:
    source = lifecycle_graph().to_dot(direction="TD")
    svg = _layout(dot, source)
    assert _dot_nodes(svg)["s5"] == "report\n(all_done)"
    assert _dot_edges(svg)["s0->s2"] == "db"
    assert "  rankdir=TB;\n" in source
    assert '  s0 [label="db", shape=cylinder, style=solid];\n' in source
    assert "  s2 -> s5 [style=dashed];\n" in source


def test_graphviz_reads_ten_thousand_steps(dot: str, scenes: Scenes) -> None:
    # Laying out 10⁴ nodes takes `dot` minutes, so Graphviz's own reader checks this one:
    # gvpr parses the DOT and reports each node's label and the counts.
    gvpr = Path(dot).with_name("gvpr")
    began = time.perf_counter()
    source = scenes.big.to_dot()
    assert time.perf_counter() - began < 1.0
    done = subprocess.run(
        [
            str(gvpr),
            'BEG_G { printf("%d nodes %d edges\\n", nNodes($G), nEdges($G)) } '
            'N { printf("%s\\t%s\\n", $.name, $.label) }',
        ],
        input=source,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert (done.returncode, done.stderr) == (0, "")
    counts, *labels = done.stdout.splitlines()
    assert counts == f"10000 nodes {2 * 10_000 - 8} edges"
    assert labels == [f"s{i}\tstep {i}" for i in range(10_000)]


# -- Chrome traces, against the Trace Event Format -----------------------------------------


def _trace(text: str) -> dict[str, Any]:
    trace = json.loads(text)
    assert isinstance(trace, dict)
    assert trace["displayTimeUnit"] == "ms"
    assert isinstance(trace["traceEvents"], list)
    return trace


def _events(text: str) -> list[dict[str, Any]]:
    """The complete events of a trace, checked against the format."""
    events = []
    for event in _trace(text)["traceEvents"]:
        assert event["ph"] in {"X", "M"}, event
        assert isinstance(event["pid"], int)
        assert isinstance(event["tid"], int)
        if event["ph"] == "X":
            assert isinstance(event["name"], str)
            assert isinstance(event["ts"], int)
            assert isinstance(event["dur"], int)
            assert event["ts"] >= 0
            assert event["dur"] >= 0
            assert isinstance(event["args"]["status"], str)
            events.append(event)
    return events


def _max_running(result: RunResult) -> int:
    """The most steps that ran at one instant (intervals touching at an end do not)."""
    changes = sorted(
        [(t.end, -1) for t in result if t.end is not None]
        + [(t.start, 1) for t in result if t.start is not None]
    )
    most = running = 0
    for _, change in changes:
        running += change
        most = max(most, running)
    return most


def _check_lanes(events: list[dict[str, Any]]) -> set[int]:
    """No two events of a lane overlap; the lanes used."""
    by_lane: dict[int, list[tuple[int, int]]] = {}
    for event in events:
        by_lane.setdefault(event["tid"], []).append((event["ts"], event["ts"] + event["dur"]))
    for lane, spans in by_lane.items():
        spans.sort()
        for (_, end), (start, _) in itertools.pairwise(spans):
            assert end <= start, f"lane {lane}: an event ends at {end} after one starts at {start}"
    return set(by_lane)


def test_a_trace_has_a_complete_event_per_step_attempt_in_microseconds(
    scenes: Scenes,
) -> None:
    # SPEC 2.3: a complete event per step attempt. The flaky step ran 0.25 s three times,
    # 0.5 s apart (its retry's delay).
    run = scenes.lifecycle_run
    events: dict[str, list[tuple[int, int]]] = {}
    for event in _events(run.to_chrome_trace()):
        events.setdefault(event["name"], []).append((event["ts"], event["dur"]))
    assert events == {
        "db": [(0, 1_000_000)],
        'flaky "deploy"': [(0, 250_000), (750_000, 250_000), (1_500_000, 250_000)],
        "migrate": [(1_000_000, 2_000_000)],
        "slow [section]": [(0, 3_000_000)],
        "report": [(3_000_000, 1_000_000)],
    }
    for event in _events(run.to_chrome_trace()):
        assert event["pid"] == 1
        assert event["cat"] == ("step attempt" if event["name"] == 'flaky "deploy"' else "step")


def test_a_trace_says_status_attempts_errors_and_teardown_errors(scenes: Scenes) -> None:
    events: dict[str, list[dict[str, Any]]] = {}
    for event in _events(scenes.lifecycle_run.to_chrome_trace()):
        events.setdefault(event["name"], []).append(event)
    assert events["db"][0]["args"] == {
        "status": "Done",
        "attempt": 1,
        "attempts": 1,
        "teardown_error": "RuntimeError: could not drop the database",
    }
    assert [e["args"] for e in events['flaky "deploy"']] == [
        {
            "status": "Failed",
            "attempt": 1,
            "attempts": 3,
            "error": "ConnectionError: attempt 1 lost the connection",
        },
        {
            "status": "Failed",
            "attempt": 2,
            "attempts": 3,
            "error": "ConnectionError: attempt 2 lost the connection",
        },
        {"status": "Done", "attempt": 3, "attempts": 3},
    ]
    (migrate,) = events["migrate"]
    assert migrate["args"]["status"] == "Failed"
    assert migrate["args"]["error"].startswith("ValueError: migration 7 failed on postgres://db")
    (slow,) = events["slow [section]"]
    assert slow["args"]["status"] == "Cancelled"


def test_a_trace_lists_the_skipped_steps_and_names_its_process_and_lanes(
    scenes: Scenes,
) -> None:
    trace = _trace(scenes.lifecycle_run.to_chrome_trace())
    assert trace["otherData"]["skipped"] == ["end"]
    metadata = [e for e in trace["traceEvents"] if e["ph"] == "M"]
    names = {(e["name"], e["tid"]): e["args"] for e in metadata}
    assert names[("process_name", 0)] == {"name": "exegraph run"}
    lanes = {e["tid"] for e in trace["traceEvents"] if e["ph"] == "X"}
    assert lanes == {1, 2, 3}
    for lane in lanes:
        assert names[("thread_name", lane)] == {"name": f"lane {lane}"}
        assert names[("thread_sort_index", lane)] == {"sort_index": lane}


def test_a_trace_uses_one_lane_per_concurrently_running_step_and_reuses_freed_ones(
    scenes: Scenes,
) -> None:
    for run in (scenes.lifecycle_run, scenes.hostile_run):
        lanes = _check_lanes(_events(run.to_chrome_trace()))
        assert lanes == set(range(1, _max_running(run) + 1))


def test_a_trace_keeps_every_hostile_name_exactly(scenes: Scenes) -> None:
    text = scenes.hostile_run.to_chrome_trace()
    assert text.isascii()  # surrogates and all: \\u escapes, safe to write as UTF-8
    assert sorted(e["name"] for e in _events(text)) == sorted(HOSTILE)


async def test_a_trace_of_ten_thousand_overlapping_steps_is_fast_and_valid(
    autojump_clock: trio.testing.MockClock,
) -> None:
    run = await exegraph.run_with_result(wide_graph(), RunOptions(max_concurrency=64))
    began = time.perf_counter()
    text = run.to_chrome_trace()
    assert time.perf_counter() - began < 1.0
    events = _events(text)
    assert len(events) == 10_000
    lanes = _check_lanes(events)
    assert len(lanes) == _max_running(run) == 64  # the bound, reached


async def test_a_trace_of_a_run_with_pools_says_how_long_each_step_waited(
    autojump_clock: trio.testing.MockClock,
) -> None:
    graph = Graph(
        [
            Step("a", sleeper(1), pools=["db"]),
            Step("b", sleeper(1), pools=["db"]),
        ]
    )
    run = await exegraph.run_with_result(graph, RunOptions(pools={"db": 1}))
    events = {e["name"]: e for e in _events(run.to_chrome_trace())}
    assert events["a"]["args"]["waited_for_slots_us"] == 0
    assert events["b"]["args"]["waited_for_slots_us"] == 1_000_000
    assert _check_lanes(list(events.values())) == {1}  # b ran after a, in its lane


def test_a_trace_of_no_step_is_valid() -> None:
    trace = _trace(RunResult((StepTiming("a", StepStatus.SKIPPED),), 0.0).to_chrome_trace())
    assert [e["name"] for e in trace["traceEvents"]] == ["process_name"]
    assert trace["otherData"]["skipped"] == ["a"]


async def test_a_trace_shows_the_attempts_a_step_had_when_the_run_stopped(
    autojump_clock: trio.abc.Clock,
) -> None:
    # `waits` fails at once and is cancelled during its retry's delay: one attempt. `cut`
    # fails once, then its second attempt is cut by fail-fast: two events, the last one
    # cancelled, ending when fail-fast stopped the run.
    calls: dict[str, int] = {}

    def failing_then(seconds: float, name: str) -> exegraph.Action:
        async def action() -> None:
            calls[name] = calls.get(name, 0) + 1
            if calls[name] == 1:
                raise ConnectionError(f"{name} lost its connection")
            await trio.sleep(seconds)

        return action

    async def fails_at(seconds: float) -> None:
        await trio.sleep(seconds)
        raise ValueError("boom")

    graph = exegraph.Graph(
        [
            Step("waits", failing_then(1, "waits"), retry=Retry(attempts=2, delay=10)),
            Step("cut", failing_then(10, "cut"), retry=Retry(attempts=2, delay=1)),
            Step("boom", functools.partial(fails_at, 3)),
        ]
    )
    result = await exegraph.run_with_result(graph)
    events: dict[str, list[tuple[int, int, str]]] = {}
    for event in _events(result.to_chrome_trace()):
        events.setdefault(event["name"], []).append(
            (event["ts"], event["dur"], event["args"]["status"])
        )
    assert events == {
        "waits": [(0, 0, "Cancelled")],
        "cut": [(0, 0, "Failed"), (1_000_000, 2_000_000, "Cancelled")],
        "boom": [(0, 3_000_000, "Failed")],
    }
