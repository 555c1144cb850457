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
A status has one look everywhere: a flowchart's node and a Gantt chart's bar of a
cancelled step have the same colours, and [`legend`][] writes the key to them.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Awaitable, Callable, Iterable
from typing import TypeVar

import attrs
import trio
import trio.testing

import exegraph_trio as exegraph

__all__ = [
    "BUILTIN",
    "LOOKS",
    "OURS",
    "Bar",
    "Look",
    "exception_tree",
    "fenced",
    "flowchart",
    "gantt",
    "legend",
    "run_virtually",
    "timeline",
]

T = TypeVar("T")


@attrs.frozen
class Look:
    """How a status is drawn: fill, border and text colours, and a dashed border or not."""

    fill: str
    stroke: str
    text: str
    dashed: bool = False

    def class_def(self) -> str:
        """The style of a Mermaid `classDef`."""
        return f"fill:{self.fill},stroke:{self.stroke},color:{self.text}" + (
            ",stroke-dasharray:5 4" if self.dashed else ""
        )

    def swatch(self) -> str:
        """The inline CSS of a legend's swatch."""
        border = "dashed" if self.dashed else "solid"
        return f"background:{self.fill};border:2px {border} {self.stroke}"


LOOKS = {
    exegraph.StepStatus.DONE: Look("#d3f2dc", "#1e8e3e", "#0b3d1b"),
    exegraph.StepStatus.FAILED: Look("#fbd5d5", "#c62828", "#5c0b0b"),
    exegraph.StepStatus.CANCELLED: Look("#fff1c2", "#b28704", "#4d3a00"),
    exegraph.StepStatus.SKIPPED: Look("#eceff1", "#78909c", "#37474f", dashed=True),
}
"""The look of each status a run ends with, in flowcharts, Gantt charts and legends."""

OURS = Look("#e3e8fd", "#3f51b5", "#1a237e")
"""The look of exegraph's classes in the exception tree."""
BUILTIN = Look("#fbe9e7", "#d84315", "#3e2723")
"""The look of Python's builtin classes in the exception tree."""

# How Gantt bars are tagged: Mermaid knows `done`, `crit` and `active`, and colours them
# from its theme variables, set below to the looks of the statuses they stand for.
_GANTT_TAGS = {
    exegraph.StepStatus.DONE: "done",
    exegraph.StepStatus.FAILED: "crit",
    exegraph.StepStatus.CANCELLED: "active",
}
_TAG_LOOKS = {tag: LOOKS[status] for status, tag in _GANTT_TAGS.items()}
_SECTION_BACKGROUND = "#f1f3fb"  # lanes alternate this and white; no colour of a status
_TEXT = "#1b1b1f"

# mkdocs-material shrinks a diagram wider than the content column (about 690 px wide on
# a 1280 px screen) to fit, and its text with it: draw Gantt charts that wide, so their
# text keeps its size. Bars are coloured like the flowchart's nodes.
_GANTT_INIT = {
    "gantt": {
        "useWidth": 680,
        "barHeight": 24,
        "barGap": 6,
        "fontSize": 14,
        "sectionFontSize": 14,
        "leftPadding": 64,
        "rightPadding": 40,
        "topPadding": 44,
    },
    "themeVariables": {
        "doneTaskBkgColor": _TAG_LOOKS["done"].fill,
        "doneTaskBorderColor": _TAG_LOOKS["done"].stroke,
        "critBkgColor": _TAG_LOOKS["crit"].fill,
        "critBorderColor": _TAG_LOOKS["crit"].stroke,
        "activeTaskBkgColor": _TAG_LOOKS["active"].fill,
        "activeTaskBorderColor": _TAG_LOOKS["active"].stroke,
        # Every bar is light, so its label is dark (Mermaid writes some on white).
        **dict.fromkeys(
            ("taskTextColor", "taskTextLightColor", "taskTextDarkColor", "taskTextOutsideColor"),
            _TEXT,
        ),
        "sectionBkgColor": _SECTION_BACKGROUND,
        "sectionBkgColor2": _SECTION_BACKGROUND,
        "altSectionBkgColor": "#ffffff",
    },
    # The axis's tick labels are 10 px by default: as large as the other labels.
    "themeCSS": ".tick text { font-size: 13px; }",
}


def fenced(diagram: str) -> str:
    """Wrap Mermaid source in a ```` ```mermaid ```` fence, ready to include in a page."""
    return f"```mermaid\n{diagram.rstrip()}\n```\n"


def legend(entries: Iterable[tuple[str, Look]]) -> str:
    """A key to a diagram's colours: one swatch and label per entry, as a line of HTML.

    Args:
        entries: each label and the look it names, in the order to show them.

    Returns:
        Markdown (a paragraph of inline HTML, styled by `docs/stylesheets/extra.css`).
    """
    items = "".join(
        f'<span class="exegraph-legend__item"><span class="exegraph-legend__swatch" '
        f'style="{look.swatch()}"></span>{html.escape(label)}</span>'
        for label, look in entries
    )
    return f'<span class="exegraph-legend">{items}</span>\n'


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
            (see [`LOOKS`][] and [`legend`][]) and labelled with its duration (or
            "skipped").
        direction: Mermaid's direction, `LR` (left to right) or `TD` (top down).

    Returns:
        Mermaid source, without the fence.
    """
    ids = {step.name: f"s{i}" for i, step in enumerate(graph)}
    lines = [f"flowchart {direction}"]
    if result is not None:
        lines += [
            f"  classDef {status.name.lower()} {look.class_def()}" for status, look in LOOKS.items()
        ]
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
    span = max((bar.end for bar in bars), default=0.0) - origin
    interval = _tick_interval(span)
    lines = [
        f"%%{{init: {json.dumps(_GANTT_INIT)}}}%%",
        "gantt",
        f"  title {title}",
        "  dateFormat x",
        f"  axisFormat {_axis_format(span, interval)}",
        f"  tickInterval {interval}",
    ]
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


def _tick_interval(span: float, *, most: int = 8) -> str:
    """A round interval between the axis's ticks, for at most `most` intervals in `span`.

    d3 would choose ticks so dense that their labels touch; Mermaid takes the interval
    as `NUMBERunit`.
    """
    span_ms = max(round(span * 1000), 1)
    for unit, size in (("millisecond", 1), ("second", 1000), ("minute", 60_000)):
        for step in (1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500):
            if step * size * most >= span_ms and (unit == "millisecond" or step < 60):
                return f"{step}{unit}"
    return "10minute"


def _axis_format(span: float, interval: str) -> str:
    """How the time axis reads, ticks `interval` apart: `20 ms`, `1.500 s`, `5 s`, `2:30`.

    The times are milliseconds after the start, drawn by Mermaid as dates of 1970, so the
    format shows only the fields that change, without padding (d3's `%-` directives).
    """
    if interval.endswith("millisecond"):
        return "%-L ms" if span < 1 else "%-S.%L s"
    if interval.endswith("second") and span < 60:
        return "%-S s"
    return "%-M:%S"


def gantt(result: exegraph.RunResult, *, title: str) -> str:
    """A Mermaid Gantt chart of a run: a bar per step that ran, from its start to its end.

    Bars are grouped into lanes, "slot 1", "slot 2", …: as many as steps ran at once, so
    a run under `max_concurrency=4` never shows more than four. Each bar has the look of
    its step's status in [`LOOKS`][], as in a [`flowchart`][]: done, failed (Mermaid's
    `crit`) or cancelled mid-flight (Mermaid's `active`). Steps that never ran have no bar.

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
    """A Mermaid tree of exception classes and the builtins they derive from.

    The tree grows left to right, so that it is about as wide as its depth rather than
    its number of leaves, and fits the content column with its text at full size. Our
    classes are named without their module and drawn in blue, builtins in orange (see
    [`OURS`][] and [`BUILTIN`][]).

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
    lines = [
        "flowchart LR",
        f"  classDef ours {OURS.class_def()}",
        f"  classDef builtin {BUILTIN.class_def()}",
    ]
    for cls, node in nodes.items():
        look = "builtin" if cls.__module__ == "builtins" else "ours"
        lines.append(f'  {node}["{cls.__qualname__}"]:::{look}')
    lines += [f"  {nodes[parent]} --> {nodes[child]}" for parent, child in edges]
    return "\n".join(lines) + "\n"


def run_virtually(async_fn: Callable[[], Awaitable[T]]) -> T:
    """Run `async_fn()` under a mock clock that jumps ahead whenever every task sleeps.

    `trio.sleep(30)` then returns at once and `trio.current_time()` advances by exactly
    30, so a run's timings are exact and the same at every build.
    """
    clock = trio.testing.MockClock(autojump_threshold=0)
    return trio.run(async_fn, clock=clock)
