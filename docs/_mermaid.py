"""Mermaid pictures of exegraph graphs and runs, for the documentation site.

Documentation tooling, not exegraph's API (a later release will add official pictures):
`docs/hooks.py` calls these functions while the site builds, so every picture on the
site is drawn from the project's own code and a real run of it.

- [`flowchart`][] draws a graph, each edge going from a dependency to its dependent,
  optionally coloured by how each step did in a run.
- [`gantt`][] draws a run as a timeline: one bar per step that ran, grouped into as
  many lanes as the run used at once (so the concurrency bound is visible);
  [`timeline`][] draws any list of [`Bar`][]s, such as the spans of a trace.
- [`exception_tree`][] draws a class hierarchy, for the exception tree page.
- [`run_virtually`][] runs an async function under `trio.testing.MockClock` with
  `autojump_threshold=0`, so sleeps take no wall time and the timings are exact.

Every function returns Mermaid source; [`fenced`][] wraps it in the fence that
`pymdownx.superfences` hands to mkdocs-material, which renders it in the browser.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable
from typing import TypeVar

import attrs
import trio
import trio.testing

import exegraph_trio as exegraph

__all__ = ["Bar", "exception_tree", "fenced", "flowchart", "gantt", "run_virtually", "timeline"]

T = TypeVar("T")

_CLASS_DEFS = {
    exegraph.StepStatus.DONE: "fill:#d3f2dc,stroke:#1e8e3e,color:#0b3d1b",
    exegraph.StepStatus.FAILED: "fill:#fbd5d5,stroke:#c62828,color:#5c0b0b",
    exegraph.StepStatus.CANCELLED: "fill:#fff1c2,stroke:#b28704,color:#4d3a00",
    exegraph.StepStatus.SKIPPED: "fill:#eceff1,stroke:#78909c,color:#37474f,stroke-dasharray:5 4",
}
# Mermaid draws a Gantt chart as wide as the page it renders in, which mkdocs-material
# then shrinks into the content column: draw it about that wide, with bars to read.
_GANTT_CONFIG = (
    '%%{init: {"gantt": {"useWidth": 800, "barHeight": 22, "barGap": 5, "fontSize": 13, '
    '"sectionFontSize": 13, "leftPadding": 60, "topPadding": 40}}}%%',
)
# How Gantt tasks are tagged by status: Mermaid knows `done`, `active` and `crit`.
_GANTT_TAGS = {
    exegraph.StepStatus.DONE: "done",
    exegraph.StepStatus.FAILED: "crit",
    exegraph.StepStatus.CANCELLED: "active",
}


def fenced(diagram: str) -> str:
    """Wrap Mermaid source in a ```` ```mermaid ```` fence, ready to include in a page."""
    return f"```mermaid\n{diagram.rstrip()}\n```\n"


def _label(text: str) -> str:
    """Text safe inside a quoted Mermaid label."""
    return text.replace('"', "#quot;")


def flowchart(
    graph: exegraph.Graph,
    result: exegraph.RunResult | None = None,
    *,
    direction: str = "LR",
) -> str:
    """A Mermaid flowchart of `graph`: one node per step, an arrow from each dependency.

    Args:
        graph: the graph to draw.
        result: a run of `graph`; when given, each node is coloured by its step's status
            and labelled with its duration (or "skipped"), and a legend is added.
        direction: Mermaid's direction, `LR` (left to right) or `TD` (top down).

    Returns:
        Mermaid source, without the fence.
    """
    ids = {step.name: f"s{i}" for i, step in enumerate(graph)}
    lines = [f"flowchart {direction}"]
    if result is not None:
        lines += [f"  classDef {status.name.lower()} {css}" for status, css in _CLASS_DEFS.items()]
    for step in graph:
        label = step.name
        css = ""
        if result is not None and step.name in result:
            timing = result[step.name]
            if timing.status is exegraph.StepStatus.SKIPPED:
                label += "<br/><small>skipped</small>"
            else:
                label += f"<br/><small>{timing.status} · {timing.duration * 1000:.0f} ms</small>"
            css = f":::{timing.status.name.lower()}"
        lines.append(f'  {ids[step.name]}["{_label(label)}"]{css}')
    for step in graph:
        lines += [f"  {ids[dep]} --> {ids[step.name]}" for dep in step.depends_on]
    return "\n".join(lines) + "\n"


def _gantt_name(name: str) -> str:
    """A task name Mermaid's Gantt parser accepts (no `:`, `;` or `#`)."""
    return re.sub(r"[:;#]", "_", name)


def _lanes(timings: Iterable[exegraph.StepTiming]) -> list[list[exegraph.StepTiming]]:
    """Put the timings into as few lanes as possible, none overlapping within a lane.

    Steps are taken by start time (then name, so the picture does not depend on the
    order steps that ended at the same instant were reported in), each into the first
    lane that is free by then. The number of lanes is the most steps that ran at once.
    """
    lanes: list[list[exegraph.StepTiming]] = []
    for timing in sorted(timings, key=lambda t: (t.start or 0.0, t.name)):
        for lane in lanes:
            last_end = lane[-1].end
            if last_end is not None and timing.start is not None and last_end <= timing.start:
                lane.append(timing)
                break
        else:
            lanes.append([timing])
    return lanes


@attrs.frozen
class Bar:
    """One bar of a [`timeline`][]: a named interval in a section (a group of rows).

    Attributes:
        section: the group the bar is drawn in.
        name: the bar's label.
        start: where it starts, in seconds.
        end: where it ends, in seconds.
        tag: Mermaid's look for it: `done`, `active` or `crit`.
    """

    section: str
    name: str
    start: float
    end: float
    tag: str = "done"


def timeline(bars: Iterable[Bar], *, title: str) -> str:
    """A Mermaid Gantt chart of `bars`, in milliseconds after the earliest start.

    Sections appear in the order of their first bar, bars in the order given.

    Args:
        bars: what to draw.
        title: the chart's title.

    Returns:
        Mermaid source, without the fence.
    """
    bars = list(bars)
    origin = min((bar.start for bar in bars), default=0.0)
    lines = [*_GANTT_CONFIG, "gantt", f"  title {title}", "  dateFormat x", "  axisFormat %S.%L s"]
    sections: dict[str, list[Bar]] = {}
    for bar in bars:
        sections.setdefault(bar.section, []).append(bar)
    for section, members in sections.items():
        lines.append(f"  section {_gantt_name(section)}")
        for bar in members:
            start = round((bar.start - origin) * 1000)
            end = max(round((bar.end - origin) * 1000), start + 1)
            lines.append(f"    {_gantt_name(bar.name)} :{bar.tag}, {start}, {end}")
    return "\n".join(lines) + "\n"


def gantt(result: exegraph.RunResult, *, title: str) -> str:
    """A Mermaid Gantt chart of a run: a bar per step that ran, from its start to its end.

    Bars are grouped into lanes, "slot 1", "slot 2", …: as many as steps ran at once, so
    a run under `max_concurrency=4` never shows more than four. Failed steps are drawn as
    critical (red), steps cancelled mid-flight as active, successful ones as done. Steps
    that never ran have no bar.

    Times are milliseconds after the first step started, so runs under a mock clock give
    the same picture at every build.

    Args:
        result: the run to draw.
        title: the chart's title.

    Returns:
        Mermaid source, without the fence.
    """
    ran = [t for t in result.steps if t.start is not None and t.end is not None]
    return timeline(
        (
            Bar(
                f"slot {number}",
                timing.name,
                timing.start or 0.0,
                timing.end or 0.0,
                _GANTT_TAGS.get(timing.status, "done"),
            )
            for number, lane in enumerate(_lanes(ran), start=1)
            for timing in lane
        ),
        title=title,
    )


def exception_tree(classes: Iterable[type[BaseException]], *, root: type = BaseException) -> str:
    """A Mermaid top-down tree of exception classes and the builtins they derive from.

    Args:
        classes: the classes to show; each is drawn with its bases up to `root` (only
            the first base of each class is followed, as a tree shows one parent).
        root: where the tree starts; classes above it are left out.

    Returns:
        Mermaid source, without the fence.
    """
    nodes: dict[type, str] = {}
    edges: list[tuple[type, type]] = []
    for cls in classes:
        chain = [c for c in cls.__mro__ if issubclass(c, root) and c is not object]
        # Follow the first base only: the tree a reader expects.
        current: type = cls
        nodes.setdefault(current, f"e{len(nodes)}")
        while current is not root:
            parent = next(b for b in current.__bases__ if b in chain)
            nodes.setdefault(parent, f"e{len(nodes)}")
            if (parent, current) not in edges:
                edges.append((parent, current))
            current = parent
    lines = ["flowchart TD", "  classDef ours fill:#e3e8fd,stroke:#3f51b5,color:#1a237e"]
    for cls, node in nodes.items():
        ours = cls.__module__ != "builtins"
        name = cls.__qualname__ if not ours else f"{cls.__module__}.{cls.__qualname__}"
        lines.append(f'  {node}["{name}"]{":::ours" if ours else ""}')
    lines += [f"  {nodes[parent]} --> {nodes[child]}" for parent, child in edges]
    return "\n".join(lines) + "\n"


def run_virtually(async_fn: Callable[[], Awaitable[T]]) -> T:
    """Run `async_fn()` under a mock clock that jumps ahead whenever every task sleeps.

    `trio.sleep(30)` then returns at once and `trio.current_time()` advances by exactly
    30, so a run's timings are exact and the same at every build.
    """
    clock = trio.testing.MockClock(autojump_threshold=0)
    return trio.run(async_fn, clock=clock)
