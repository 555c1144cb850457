r"""Pictures of graphs, runs and plans, as text: Mermaid, Graphviz DOT and Chrome traces.

`Graph.to_mermaid`/`to_dot`, `RunResult.to_mermaid`/`to_gantt`/`to_chrome_trace` and
`Plan.to_gantt` are thin methods over the functions here. Each returns text and needs
nothing but the standard library: paste a Mermaid picture into a Markdown file that
GitHub, GitLab or mkdocs-material renders, pipe DOT into `dot -Tsvg`, open a trace in
<https://ui.perfetto.dev> or `chrome://tracing`.

Every name is escaped so that the output always parses, whatever the step is called.
Nodes, bars and trace events are identified by generated ids (`s0`, `s1`, … in graph
order), never by the name, so no name can collide with a keyword (`end`, `graph`,
`subgraph`, `section`) or another step's id; the name is only ever a label:

- Everywhere: a C0 control character or DEL is drawn as its Unicode control picture
  (a newline as `␊`, a tab as `␉`), a C1 control character or an unpaired surrogate as
  `�`. Everything else is kept.
- Mermaid: labels are quoted (`s0["name"]`); within them, letters and digits of any
  script, spaces and `-_.,/()+=!?@'*~` are written as they are, every other character as
  Mermaid's numeric entity (`#35;` for `#`, `#34;` for `"`, `#128640;` for 🚀), which
  Mermaid turns back into the character when it draws. So no label can end its quotes,
  start a comment or a directive (`%%`), be read as Markdown (a backtick), HTML (`<b>`)
  or an icon (`fa:fa-car`), or be changed by Mermaid's entity decoding. A space at either
  end is an entity too (Mermaid would trim it); a status line goes under the name after a
  line break in the quotes, never `<br/>` (which would make Mermaid read the decoded label
  as HTML: `$$x$$` as maths). Mermaid decodes a label twice and takes `ﬂ°` and `¶ß` for
  its own entity markers the second time: an invisible word joiner (U+2060) keeps those
  two characters apart. A Gantt task name is not quoted: when it starts with a digit or
  a word Mermaid's Gantt grammar reads as a statement (`section`, `title`, `click`…), its
  first character is written as an entity too.
- DOT: labels are quoted; `\` → `\\`, `"` → `\"`, and `&` → `&amp;` (Graphviz
  decodes HTML entities in every label).
- Chrome traces are JSON made by `json.dumps`: names are kept exactly.
"""

from __future__ import annotations

import heapq
import json
import math
import re
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Final, Protocol, TypeVar

from ._lifecycle import TriggerRule

if TYPE_CHECKING:
    from ._graph import Graph
    from ._plan import Plan
    from ._result import RunResult, StepStatus, StepTiming

__all__ = [
    "chrome_trace",
    "gantt",
    "graph_dot",
    "graph_mermaid",
    "plan_gantt",
    "result_gantt",
    "result_mermaid",
]

_DIRECTIONS = ("LR", "RL", "TB", "TD", "BT")
"""Which way the arrows go: left to right (`LR`), top down (`TB` or `TD`), and back."""


class _Bar(Protocol):
    """What a Gantt chart or a trace needs of a step: a `StepTiming` or a `PlannedStep`."""

    @property
    def name(self) -> str: ...
    @property
    def status(self) -> StepStatus: ...
    @property
    def start(self) -> float | None: ...
    @property
    def end(self) -> float | None: ...


# -- looks ---------------------------------------------------------------------------------

# fill, stroke, text colour, dashed border: the looks of the documentation site's pictures.
_LOOKS = {
    "done": ("#d3f2dc", "#1e8e3e", "#0b3d1b", False),
    "failed": ("#fbd5d5", "#c62828", "#5c0b0b", False),
    "cancelled": ("#fff1c2", "#b28704", "#4d3a00", False),
    "skipped": ("#eceff1", "#78909c", "#37474f", True),
}
# Mermaid's Gantt charts know three tags, coloured from theme variables set to the looks
# of the statuses they stand for.
_GANTT_TAGS = {"DONE": "done", "FAILED": "crit", "CANCELLED": "active"}
_GANTT_THEME = {
    "doneTaskBkgColor": _LOOKS["done"][0],
    "doneTaskBorderColor": _LOOKS["done"][1],
    "critBkgColor": _LOOKS["failed"][0],
    "critBorderColor": _LOOKS["failed"][1],
    "activeTaskBkgColor": _LOOKS["cancelled"][0],
    "activeTaskBorderColor": _LOOKS["cancelled"][1],
    # Every bar is light, so every label on it is dark (Mermaid writes some in white).
    **dict.fromkeys(
        ("taskTextColor", "taskTextLightColor", "taskTextDarkColor", "taskTextOutsideColor"),
        "#1b1b1f",
    ),
}


def _class_def(status: str) -> str:
    fill, stroke, text, dashed = _LOOKS[status]
    style = f"fill:{fill},stroke:{stroke},color:{text}"
    return f"  classDef {status} {style}{',stroke-dasharray:5 4' if dashed else ''}"


# -- escaping ------------------------------------------------------------------------------


def _printable_char(char: str) -> str:
    code = ord(char)
    if code < 0x20:
        return chr(0x2400 + code)  # the control pictures: ␀ … ␟
    if code == 0x7F:
        return "\u2421"  # ␡
    if 0x80 <= code < 0xA0 or 0xD800 <= code < 0xE000:
        return "\ufffd"
    return char


_PRINTABLE = {code: _printable_char(chr(code)) for code in [*range(0x20), *range(0x7F, 0xA0)]}
_PRINTABLE.update(dict.fromkeys(range(0xD800, 0xE000), "\ufffd"))


_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def _printable(text: str) -> str:
    """`text` with its control characters and unpaired surrogates replaced by visible ones."""
    return text.translate(_PRINTABLE) if _UNPRINTABLE.search(text) else text


# Letters and digits of any script (`\w`), spaces and `-_.,/()+=!?@'*~` are written as
# they are; any other character as an entity.
_MERMAID_ENTITY = re.compile(r"[^\w \-.,/()+=!?@'*~]")
# What Mermaid's Gantt lexer reads as a statement when a task name starts with it
# (case-insensitively): a task name starting so has its first character written as an entity.
_GANTT_STATEMENTS = (
    "acc",
    "axisformat",
    "call",
    "click",
    "dateformat",
    "excludes",
    "gantt",
    "href",
    "inclusiveenddates",
    "includes",
    "section",
    "tickinterval",
    "title",
    "todaymarker",
    "topaxis",
    "weekday",
    "weekend",
)


def _entity(char: str) -> str:
    return f"#{ord(char)};"


def _entity_of_match(match: re.Match[str]) -> str:
    return f"#{ord(match.group())};"


def _mermaid_text(text: str, *, unquoted: bool = False) -> str:
    """`text` written so that Mermaid draws it as it is (see the module docstring).

    With `unquoted`, also safe at the start of a Gantt task line.
    """
    # Mermaid decodes entities twice when it draws (the label, then the whole SVG), and
    # reads `ﬂ°` and `¶ß` as the markers of an entity the second time: a word joiner
    # (U+2060, invisible) keeps them apart.
    text = _printable(text).replace("ﬂ°", "ﬂ\u2060°").replace("¶ß", "¶\u2060ß")
    if not text:
        return text
    head = tail = ""
    # Mermaid trims labels: spaces at either end are written as entities to stay.
    if text[0] == " " or (
        unquoted and (text[0].isdigit() or text.lower().startswith(_GANTT_STATEMENTS))
    ):
        head, text = _entity(text[0]), text[1:]
    if text.endswith(" "):
        text, tail = text[:-1], _entity(" ")
    return head + _MERMAID_ENTITY.sub(_entity_of_match, text) + tail


_DOT_CHUNK: Final = 3000
"""Characters of a name per quoted DOT string: escaped, at most 5 each (`&amp;`), they stay
under the 16 384 characters Graphviz takes in one string."""


def _dot_text(text: str) -> str:
    """`text` for a quoted DOT string that Graphviz draws as it is.

    A long one is cut into strings joined with DOT's `+` (`"…" + "…"`): Graphviz refuses a
    quoted string longer than 16 384 characters.
    """
    text = _printable(text)
    chunks = [text[k : k + _DOT_CHUNK] for k in range(0, len(text), _DOT_CHUNK)] or [""]
    return '" + "'.join(
        chunk.replace("\\", "\\\\").replace('"', '\\"').replace("&", "&amp;") for chunk in chunks
    )


def _check_direction(direction: str) -> None:
    if direction not in _DIRECTIONS:
        raise ValueError(f"direction must be one of {', '.join(_DIRECTIONS)}, not {direction!r}")


# -- the graph -----------------------------------------------------------------------------


def _edges(graph: Graph) -> Iterable[tuple[int, int, str, bool]]:
    """Every edge as (dependency, dependent, input keywords, dashed), in graph order.

    An edge is labelled with the keywords under which the dependent takes the
    dependency's value, and dashed when the dependent's trigger rule is not
    `ALL_SUCCESS` (it runs whatever the dependency's outcome).
    """
    index = graph._index
    for i, step in enumerate(graph.steps):
        keywords: dict[str, list[str]] = {}
        for keyword, source in step.inputs.items():
            keywords.setdefault(source, []).append(keyword)
        dashed = step.trigger_rule is not TriggerRule.ALL_SUCCESS
        for dep in step.depends_on:
            yield index[dep], i, ", ".join(keywords.get(dep, ())), dashed


def _flowchart(graph: Graph, details: dict[str, tuple[str, str]] | None, direction: str) -> str:
    """A Mermaid flowchart of `graph`; `details` gives steps a class and a second line."""
    _check_direction(direction)
    lines = [f"flowchart {direction}"]
    if details is not None:
        lines += [_class_def(status) for status in _LOOKS]
    for i, step in enumerate(graph.steps):
        label = _mermaid_text(step.name)
        notes = []
        if step.trigger_rule is not TriggerRule.ALL_SUCCESS:
            notes.append(str(step.trigger_rule))
        css = ""
        if details is not None and step.name in details:
            status, detail = details[step.name]
            notes.append(detail)
            css = f":::{status}" if status in _LOOKS else ""
        if notes:
            # A line break in the quotes; `<br/>` would make Mermaid read the label as
            # HTML after decoding its entities (`$$…$$` as maths, `fa:fa-x` as an icon).
            label += "\n" + _mermaid_text(", ".join(notes))
        if step.is_resource:
            lines.append(f'  s{i}[("{label}")]{css}')
        else:
            lines.append(f'  s{i}["{label}"]{css}')
    for dep, i, keywords, dashed in _edges(graph):
        arrow = "-.->" if dashed else "-->"
        text = f'|"{_mermaid_text(keywords)}"|' if keywords else ""
        lines.append(f"  s{dep} {arrow}{text} s{i}")
    return "\n".join(lines) + "\n"


def graph_mermaid(graph: Graph, *, direction: str = "LR") -> str:
    """A Mermaid flowchart of `graph` (see `Graph.to_mermaid`)."""
    return _flowchart(graph, None, direction)


def graph_dot(graph: Graph, *, direction: str = "LR") -> str:
    """A Graphviz DOT digraph of `graph` (see `Graph.to_dot`)."""
    _check_direction(direction)
    lines = [
        "digraph exegraph {",
        f"  rankdir={'TB' if direction == 'TD' else direction};",
        '  node [shape=box, style=rounded, fontname="Helvetica"];',
        '  edge [fontname="Helvetica", fontsize=10];',
    ]
    for i, step in enumerate(graph.steps):
        label = _dot_text(step.name)
        if step.trigger_rule is not TriggerRule.ALL_SUCCESS:
            label += f"\\n({step.trigger_rule})"
        shape = ", shape=cylinder, style=solid" if step.is_resource else ""
        lines.append(f'  s{i} [label="{label}"{shape}];')
    for dep, i, keywords, dashed in _edges(graph):
        attributes = []
        if keywords:
            attributes.append(f'label="{_dot_text(keywords)}"')
        if dashed:
            attributes.append("style=dashed")
        shown = f" [{', '.join(attributes)}]" if attributes else ""
        lines.append(f"  s{dep} -> s{i}{shown};")
    lines.append("}")
    return "\n".join(lines) + "\n"


# -- runs ----------------------------------------------------------------------------------


def _seconds(seconds: float) -> str:
    """A duration for a label: `0 s`, `250 ms`, `1.50 s`, `42.0 s`, `1234 s`."""
    if seconds == 0:
        return "0 s"
    if seconds < 1:
        return f"{seconds * 1000:.3g} ms"
    if seconds < 10:
        return f"{seconds:.2f} s"
    if seconds < 100:
        return f"{seconds:.1f} s"
    return f"{seconds:.0f} s"


def _describe(error: BaseException) -> str:
    """`Type: message` on one line, also for a message of several lines or a broken `__str__`."""
    try:
        message = str(error)
    except Exception:  # noqa: BLE001 - as the traceback module does
        message = "<exception str() failed>"
    text = f"{type(error).__name__}: {message}" if message else type(error).__name__
    return " ⏎ ".join(text.splitlines())


def result_mermaid(result: RunResult, *, direction: str = "LR") -> str:
    """A Mermaid flowchart of the graph that ran, coloured by status (`RunResult.to_mermaid`)."""
    graph = result.graph
    if graph is None:
        raise ValueError(
            "to_mermaid draws the graph that ran, and this RunResult has none (it was made "
            "by hand): pass RunResult(..., graph=graph), or draw it with to_gantt() or "
            "to_chrome_trace(), which need only the timings"
        )
    details: dict[str, tuple[str, str]] = {}
    for timing in result.steps:
        parts = [str(timing.status)]
        if timing.start is not None:
            parts.append(_seconds(timing.duration))
        if timing.attempts > 1:
            parts.append(f"{timing.attempts} attempts")
        if timing.status.name == "FAILED" and timing.error is not None:
            parts.append(type(timing.error).__name__)
        if timing.teardown_error is not None:
            parts.append("teardown failed")
        details[timing.name] = (timing.status.name.lower(), ", ".join(parts))
    return _flowchart(graph, details, direction)


def _lanes(spans: Sequence[tuple[int, int]]) -> list[int]:
    """A lane (from 1) for each `(start, end)`, none overlapping another of its lane.

    Intervals are taken by start (then end), each into the lowest lane free by then
    (one whose last interval ended at or before its start): as many lanes as intervals
    overlap at the busiest instant, the fewest possible.
    """
    order = sorted(range(len(spans)), key=lambda k: spans[k])
    lanes = [0] * len(spans)
    busy: list[tuple[int, int]] = []  # (end, lane) heap
    free: list[int] = []  # lane heap
    count = 0
    for k in order:
        start, end = spans[k]
        while busy and busy[0][0] <= start:
            heapq.heappush(free, heapq.heappop(busy)[1])
        if free:
            lane = heapq.heappop(free)
        else:
            count += 1
            lane = count
        lanes[k] = lane
        heapq.heappush(busy, (end, lane))
    return lanes


B = TypeVar("B", bound=_Bar)


def _ran(bars: Iterable[B]) -> list[B]:
    return [bar for bar in bars if bar.start is not None and bar.end is not None]


_TICKS_MS: Final = (
    *(1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500),
    *(1000 * step for step in (1, 2, 5, 10, 15, 20, 30)),
    *(60_000 * step for step in (1, 2, 5, 10, 15, 20, 30)),
    *(3_600_000 * step for step in (1, 2, 3, 6, 12)),
)
"""The intervals between the axis's ticks, in milliseconds: round in the unit they are read
in (seconds and minutes divide a minute and an hour, hours a day)."""


def _tick_interval(span_ms: int, *, most: int = 8) -> tuple[int, str]:
    """A round interval between the axis's ticks: at most `most` intervals over `span_ms`.

    Given to Mermaid in milliseconds, whatever its size: d3 spaces ticks of milliseconds
    evenly from the epoch, where the chart's times start; ticks of seconds, minutes or
    hours it puts at the multiples of the interval *within* the minute, hour or day (every
    25 s: 0, 25, 50, 60, 85 s…), and ticks of minutes and hours where the reader's time
    zone has them (in one whose offset in 1970 was not whole minutes, half a minute off).
    """
    span_ms = max(span_ms, 1)
    for size in _TICKS_MS:
        if size * most >= span_ms:
            break
    else:  # (days: any number of them is evenly spaced in milliseconds)
        size = 86_400_000 * math.ceil(span_ms / (86_400_000 * most))
    return size, f"{size}millisecond"


def _axis_format(span_ms: int, interval_ms: int) -> str:
    """How the axis reads: `250 ms`, `1.500 s`, `30 s`, or `3600 s` for longer runs.

    The times are milliseconds after the start, which Mermaid draws as dates of 1970 in
    the reader's time zone: only the fields that do not depend on it are shown (`%s`, the
    seconds since the epoch, is the elapsed time in seconds; `%L`, the milliseconds of
    the second). The seconds of the minute (`%S`) do: in a time zone whose offset in 1970
    was not whole minutes (Monrovia's, −0:44:30), 0 s reads `30 s`.
    """
    if span_ms < 1000 and interval_ms < 1000:
        return "%-L ms"
    return "%s.%L s" if interval_ms < 1000 else "%s s"


def gantt(bars: Iterable[_Bar], *, title: str) -> str:
    """A Mermaid Gantt chart: a bar per step that ran, in lanes (`to_gantt`)."""
    ran = _ran(bars)
    origin = min((bar.start for bar in ran if bar.start is not None), default=0.0)
    spans = [
        (round(((bar.start or 0.0) - origin) * 1000), round(((bar.end or 0.0) - origin) * 1000))
        for bar in ran
    ]
    span_ms = max((end for _, end in spans), default=0)
    interval_ms, interval = _tick_interval(span_ms)
    lines = [
        f"%%{{init: {json.dumps({'themeVariables': _GANTT_THEME})}}}%%",
        "gantt",
        # (no title: no line, for a bare `title` is no statement of Mermaid's Gantt grammar)
        *([f"  title {_mermaid_text(title)}"] if title.strip() else []),
        "  dateFormat x",
        f"  axisFormat {_axis_format(span_ms, interval_ms)}",
        f"  tickInterval {interval}",
        "  todayMarker off",
    ]
    lanes = _lanes(spans)
    by_lane: dict[int, list[int]] = {}
    for k in sorted(range(len(ran)), key=lambda k: (lanes[k], spans[k])):
        by_lane.setdefault(lanes[k], []).append(k)
    for lane in sorted(by_lane):
        lines.append(f"  section lane {lane}")
        for k in by_lane[lane]:
            bar = ran[k]
            start, end = spans[k]
            tag = _GANTT_TAGS.get(bar.status.name)
            data = f"{tag}, t{k}" if tag else f"t{k}"
            # A bar of zero length would not show: draw it 1 ms long.
            lines.append(
                f"    {_mermaid_text(bar.name, unquoted=True)} :{data}, {start}, "
                f"{max(end, start + 1)}"
            )
    return "\n".join(lines) + "\n"


def result_gantt(result: RunResult, *, title: str | None) -> str:
    """`RunResult.to_gantt`."""
    if title is None:
        count = len(result.steps)
        title = (
            f"exegraph run, {count} step{'' if count == 1 else 's'} in "
            f"{_seconds(result.total_duration)}"
        )
    return gantt(result.steps, title=title)


def plan_gantt(plan: Plan, *, title: str | None) -> str:
    """`Plan.to_gantt`."""
    if title is None:
        count = len(plan.steps)
        title = (
            f"exegraph plan, {count} step{'' if count == 1 else 's'} in {_seconds(plan.makespan)}"
        )
    return gantt(plan.steps, title=title)


# -- Chrome traces -------------------------------------------------------------------------

_PID = 1


def _earlier_error(timing: StepTiming, attempt: int) -> BaseException | None:
    """The error of attempt `attempt` (from 1) of `timing`'s step, not its last."""
    earlier = timing.earlier_errors
    return earlier[attempt - 1] if attempt - 1 < len(earlier) else None


def chrome_trace(result: RunResult) -> str:
    """The run in the Trace Event Format (`RunResult.to_chrome_trace`)."""
    ran = _ran(result.steps)
    origin = min((t.start for t in ran if t.start is not None), default=0.0)

    def micros(time: float | None) -> int:
        return round(((time or 0.0) - origin) * 1_000_000)

    # One complete event per attempt (SPEC 2.3): a retried step's earlier attempts failed.
    bars: list[tuple[StepTiming, int, int, int]] = []  # (timing, attempt, start µs, end µs)
    for t in ran:
        times = t._attempt_times
        if times:
            bars.extend(
                (t, k + 1, micros(times[2 * k]), micros(times[2 * k + 1]))
                for k in range(len(times) // 2)
            )
        else:
            bars.append((t, max(t.attempts, 1), micros(t.start), micros(t.end)))
    spans = [(start, end) for _, _, start, end in bars]
    lanes = _lanes(spans)
    events: list[dict[str, object]] = [
        {
            "name": "process_name",
            "ph": "M",
            "pid": _PID,
            "tid": 0,
            "args": {"name": "exegraph run"},
        }
    ]
    for lane in range(1, max(lanes, default=0) + 1):
        events.append(
            {"name": "thread_name", "ph": "M", "pid": _PID, "tid": lane,
             "args": {"name": f"lane {lane}"}}
        )  # fmt: skip
        events.append(
            {"name": "thread_sort_index", "ph": "M", "pid": _PID, "tid": lane,
             "args": {"sort_index": lane}}
        )  # fmt: skip
    for k in sorted(range(len(bars)), key=lambda k: (spans[k], lanes[k])):
        timing, attempt, start, end = bars[k]
        last = attempt >= timing.attempts
        args: dict[str, object] = {
            "status": str(timing.status) if last else "Failed",  # (an earlier attempt failed)
            "attempt": attempt,
            "attempts": timing.attempts,
        }
        error = timing.error if last else _earlier_error(timing, attempt)
        if error is not None:
            args["error"] = _describe(error)
        if last and timing.teardown_error is not None:
            args["teardown_error"] = _describe(timing.teardown_error)
        if attempt == 1 and timing.ready is not None and timing.start is not None:
            args["waited_for_slots_us"] = round((timing.start - timing.ready) * 1_000_000)
        events.append(
            {
                "name": timing.name,
                "cat": "step" if timing.attempts <= 1 else "step attempt",
                "ph": "X",
                "ts": start,
                "dur": end - start,
                "pid": _PID,
                "tid": lanes[k],
                "args": args,
            }
        )
    other = {
        "source": "exegraph",
        "steps": len(result.steps),
        "total_duration_s": result.total_duration,
        "ok": result.ok,
        "skipped": [t.name for t in result.steps if t.start is None],
    }
    body = ",\n".join(json.dumps(event, allow_nan=False) for event in events)
    return (
        f'{{"displayTimeUnit": "ms", "otherData": {json.dumps(other, allow_nan=False)}, '
        f'"traceEvents": [\n{body}\n]}}\n'
    )
