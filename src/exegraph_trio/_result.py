"""What a run reports: `StepStatus`, `StepTiming` and `RunResult`."""

from __future__ import annotations

import collections
import enum
import functools
import os
import threading
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Final, Literal, final

import attrs

from ._collector import collector_paused
from ._errors import RunError, short_repr, unknown_step
from ._graph import Graph
from ._pictures import chrome_trace, result_gantt, result_mermaid

__all__ = ["RunResult", "StepStatus", "StepTiming"]

_MAKING = threading.Lock()
"""Held while a result makes its `steps` when first read (`RunResult._later`)."""


def _new_lock_after_fork() -> None:
    """In a forked child: a lock held by another thread of the parent would never free."""
    global _MAKING  # noqa: PLW0603 - the process's one lock
    _MAKING = threading.Lock()


os.register_at_fork(after_in_child=_new_lock_after_fork)


@final
class StepStatus(enum.Enum):
    """Where a step is in its life. `str()` gives the capitalised word (`"Done"`)."""

    PENDING = "Pending"
    """Not started yet."""
    RUNNING = "Running"
    """Its action is running."""
    DONE = "Done"
    """Its action returned."""
    FAILED = "Failed"
    """Its action raised, or ran past its deadline."""
    SKIPPED = "Skipped"
    """It never ran: a dependency failed, or fail-fast stopped the run first."""
    CANCELLED = "Cancelled"
    """It was cancelled mid-flight by fail-fast (or by an enclosing cancel scope)."""

    def __str__(self) -> str:
        return self.value


@final
@attrs.frozen(weakref_slot=False)
class StepTiming:
    """How one step of a run went.

    Times are Trio clock seconds (`trio.current_time()`), so under a mock clock they are
    exact.

    Attributes:
        name: the step's name.
        status: `DONE`, `FAILED`, `CANCELLED` or `SKIPPED`.
        start: when the step started, or `None` if it never did (skipped).
        end: when its action finished, or `None` if it never started.
        error: its exception when failed (a
            [`StepTimeoutError`][exegraph_trio.StepTimeoutError] on timeout; after
            retries, the last attempt's, with a note "attempt N of M"), a
            [`StepCancelledError`][exegraph_trio.StepCancelledError] when cancelled, a
            [`StepSkippedError`][exegraph_trio.StepSkippedError] when skipped because of a
            failure or a stop, else `None` (also for a `ONE_FAILED` step skipped because
            nothing failed).
        value: what the action returned (a resource step: what it yielded), or `None`
            when it did not finish, or when `RunOptions(keep_values=False)` released it.
        attempts: how many attempts started (`0` for a skipped step, `1` without retries).
            `start` is the first attempt's start and `end` the last one's end.
        earlier_errors: the exceptions of the attempts before the last, oldest first
            (empty without retries).
        teardown_error: what the teardown of a resource step raised (with a note naming
            the teardown; a [`StepTimeoutError`][exegraph_trio.StepTimeoutError] when its
            deadline cut it short), else `None`. The step itself stays `DONE`.
        ready: in a run with pools, when the step became ready to start (its trigger
            rule held) and began to wait for slots: `start - ready` is that wait.
            `None` in a run whose steps use no pool, and for a step never ready.
    """

    name: str
    status: StepStatus
    start: float | None = None
    end: float | None = None
    error: BaseException | None = attrs.field(default=None, eq=False)
    value: object = attrs.field(default=None, eq=False, repr=False)
    attempts: int = 0
    earlier_errors: tuple[BaseException, ...] = attrs.field(default=(), eq=False, repr=False)
    teardown_error: BaseException | None = attrs.field(default=None, eq=False, repr=False)
    ready: float | None = attrs.field(default=None, repr=False)
    _attempt_times: tuple[float, ...] = attrs.field(
        default=(), eq=False, repr=False, alias="_attempt_times"
    )
    """For a step that had several attempts: each attempt's start and end, flat
    (`(start₁, end₁, start₂, end₂, …)`), for the Chrome trace's event per attempt; else
    empty (its one attempt is `start`–`end`)."""

    @property
    def duration(self) -> float:
        """Seconds from start to end; `0.0` for a step that never started."""
        if self.start is None or self.end is None:
            return 0.0
        return self.end - self.start


# The engine makes one `StepTiming` per step. The frozen class's `__init__` sets each field
# with `object.__setattr__`, which costs more than the step's own scheduling; `_timing`
# fills an instance of `_Fields` (the same slots, in the same order, not frozen: plain
# attribute stores) and then gives it its class, which CPython allows between classes
# of one layout (`__class__` assignment). tests/test_results.py checks that `_timing`
# makes what `StepTiming(...)` makes, field for field.


class _Fields:
    """`StepTiming`'s slots, writable: what `_timing` fills before it becomes one."""

    __slots__ = (  # noqa: RUF023 - StepTiming's order: the layouts must be the same
        "name",
        "status",
        "start",
        "end",
        "error",
        "value",
        "attempts",
        "earlier_errors",
        "teardown_error",
        "ready",
        "_attempt_times",
    )
    name: str
    status: StepStatus
    start: float | None
    end: float | None
    error: BaseException | None
    value: object
    attempts: int
    earlier_errors: tuple[BaseException, ...]
    teardown_error: BaseException | None
    ready: float | None
    _attempt_times: tuple[float, ...]


def _timing(  # noqa: PLR0917 - every field, in order, as fast as can be
    name: str,
    status: StepStatus,
    start: float | None,
    end: float | None,
    error: BaseException | None,
    value: object,
    attempts: int,
    earlier_errors: tuple[BaseException, ...],
    teardown_error: BaseException | None,
    ready: float | None,
    attempt_times: tuple[float, ...] = (),
) -> StepTiming:
    """`StepTiming(...)` with every field given, in the order of its fields, for less."""
    timing = _Fields()  # (a call of the class costs half of `object.__new__(_Fields)`)
    timing.name = name
    timing.status = status
    timing.start = start
    timing.end = end
    timing.error = error
    timing.value = value
    timing.attempts = attempts
    timing.earlier_errors = earlier_errors
    timing.teardown_error = teardown_error
    timing.ready = ready
    timing._attempt_times = attempt_times
    timing.__class__ = StepTiming  # type: ignore[assignment]
    return timing  # type: ignore[return-value]


@final
@attrs.frozen
class RunResult:
    """Everything one run did, from [`run_with_result`][exegraph_trio.run_with_result].

    ```python
    result = await exegraph.run_with_result(graph)
    for timing in result.steps:
        print(f"{timing.name:<12} {timing.status!s:<9} {timing.duration:6.2f}s")
    if not result.ok:
        raise result.error
    ```

    Attributes:
        steps: a [`StepTiming`][exegraph_trio.StepTiming] for every step of the graph, in
            completion order; a skipped step sits where its skip was decided.
        total_duration: seconds from the first step's start to the last one's end
            (`0.0` when no step started).
        error: the [`RunError`][exegraph_trio.RunError] that [`run`][exegraph_trio.run]
            would have raised, or `None` when every step succeeded.
        graph: the graph that ran (`None` for a result made by hand).

    A run's result makes its `StepTiming`s when they are first read (`steps`, an
    index, iteration, comparison, a copy): a run whose result nobody reads, such as one
    whose only instrument counts steps, makes none for it.
    """

    steps: tuple[StepTiming, ...] = attrs.field(repr=short_repr)
    total_duration: float
    error: RunError | None = attrs.field(default=None, eq=False)
    graph: Graph | None = attrs.field(default=None, eq=False, repr=False, kw_only=True)
    _stopped: bool = attrs.field(
        default=False, kw_only=True, eq=False, repr=False, alias="_stopped"
    )
    """The run was cancelled from outside or interrupted (`ok` is then false)."""
    # The engine's results make `steps` when first read (`_later`, `__getattr__`): they
    # hold, in `_make`, what makes them, and a run whose result nobody reads (an
    # instrument's `run_done` that only counts) makes no `StepTiming` for it.
    _by_name: dict[str, StepTiming] = attrs.field(
        init=False, repr=False, eq=False, hash=False, alias="_by_name"
    )
    _make: Callable[[], tuple[StepTiming, ...]] | None = attrs.field(
        init=False, default=None, repr=False, eq=False, hash=False, alias="_make"
    )

    @_by_name.default
    def _index(self) -> dict[str, StepTiming]:
        return {timing.name: timing for timing in self.steps}

    @classmethod
    def _later(
        cls,
        make: Callable[[], tuple[StepTiming, ...]],
        total_duration: float,
        error: RunError | None,
        *,
        graph: Graph,
        stopped: bool,
    ) -> RunResult:
        """A result whose `steps` (and index) are `make()`, made when first read."""
        result = object.__new__(cls)
        for name, value in (
            ("total_duration", total_duration),
            ("error", error),
            ("graph", graph),
            ("_stopped", stopped),
            ("_make", make),
        ):
            object.__setattr__(result, name, value)
        return result

    if not TYPE_CHECKING:  # (so that mypy still refuses a misspelt attribute)

        def __getattr__(self, name: str) -> object:
            """Make `steps` and the index the first time either is read (`_later`)."""
            if name in {"steps", "_by_name"}:
                with _MAKING:  # one thread makes them; the others wait, then read them
                    if object.__getattribute__(self, "_make") is not None:
                        self._make_steps()
                return object.__getattribute__(self, name)
            if hasattr(type(self), name):
                # A property (`ok`) whose own code raised an AttributeError, or a slot
                # never set: the error of the normal lookup, not "no attribute".
                return object.__getattribute__(self, name)
            raise AttributeError(
                f"{type(self).__name__!r} object has no attribute {name!r}", name=name, obj=self
            )

    @collector_paused
    def _make_steps(self) -> None:
        object.__setattr__(self, "steps", object.__getattribute__(self, "_make")())
        object.__setattr__(self, "_by_name", self._index())
        object.__setattr__(self, "_make", None)

    @property
    def ok(self) -> bool:
        """True when every step succeeded; false also for a run cancelled or interrupted.

        A `ONE_FAILED` step skipped because nothing failed counts as succeeded. A run
        cancelled from outside or interrupted is not ok even if each of its steps was done
        (an instrument's `run_done` sees such results; `run_with_result` raises instead).
        """
        return (
            not self._stopped
            and self.error is None
            and all(
                t.status is StepStatus.DONE or (t.status is StepStatus.SKIPPED and t.error is None)
                for t in self.steps
            )
        )

    def __getitem__(self, name: str) -> StepTiming:
        """The timing of the step called `name` (`KeyError` if the graph has none)."""
        try:
            return self._by_name[name]
        except KeyError:
            raise unknown_step(name, self._by_name, "run") from None

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def __iter__(self) -> Iterator[StepTiming]:
        return iter(self.steps)

    def __len__(self) -> int:
        return len(self.steps)

    def critical_path(self) -> tuple[str, ...]:
        """The chain of steps that decided the run's total duration, first to last.

        From the step that ended last, each step's dependency that ended last no later
        than the step started, back to a step with none that ran (SPEC 2.2); through a
        dependency that was skipped, what ended above it (a `ONE_FAILED` step's chain goes
        on to the failure that made it run; skipped steps take no time and are not named).
        Among steps that ended at the same time, the one furthest downstream (latest in
        the graph's topological order) is taken, so that zero-second steps at the end of
        a chain stay on it. Empty when no step ran.

        Raises:
            ValueError: the result was made by hand, without its `graph`.
        """
        if self.graph is None:
            raise ValueError("critical_path needs the graph that ran; this RunResult has none")
        starts: list[float | None] = [None] * len(self.graph)
        ends: list[float | None] = [None] * len(self.graph)
        position = self.graph._index
        for timing in self.steps:
            if timing.end is not None and timing.name in position:
                starts[position[timing.name]] = timing.start
                ends[position[timing.name]] = timing.end
        return critical_path(self.graph, starts, ends)

    def with_status(self, status: StepStatus) -> tuple[StepTiming, ...]:
        """The timings of the steps that ended with `status`, in completion order."""
        return tuple(timing for timing in self.steps if timing.status is status)

    def table(self) -> str:
        r"""A plain-text table of the steps, in completion order, and a line that sums it up.

        Columns: name, status, start (seconds after the first step started), duration and
        error (for a resource step whose teardown raised, `teardown failed: ` and that
        error); a character of a name or an error that is not printable (a line break, an
        escape code) is escaped as Python would (`\n`, `\x1b`), except that an error's line
        breaks become ` ⏎ ` (a traceback-like message stays readable). The name column is as wide
        as the longest name up to 40 cells of a terminal (a CJK character or an emoji takes
        two, a combining accent none); a longer name overflows its row. The last
        line counts the steps by status, as in
        `13 steps in 0.110 s: 10 done, 1 failed, 2 skipped` (or `…: all done`), and the
        teardowns that failed.
        """
        origin = min((t.start for t in self.steps if t.start is not None), default=0.0)
        names = [printable(timing.name) for timing in self.steps]
        width = name_width(names)
        lines = [f"{'step':<{width}}  {'status':<9}  {'start':>8}  {'duration':>8}  error"]
        for name, timing in zip(names, self.steps, strict=True):
            start = "-" if timing.start is None else f"{timing.start - origin:8.3f}"
            error = "" if timing.error is None else _describe(timing.error)
            if timing.teardown_error is not None:  # (its setup succeeded: no error of its own)
                error = f"{error}; " if error else ""
                error += f"teardown failed: {_describe(timing.teardown_error)}"
            lines.append(
                f"{pad(name, width)}  {timing.status!s:<9}  {start:>8}  "
                f"{timing.duration:8.3f}  {error}".rstrip()
            )
        lines.append(self._summary())
        return "\n".join(lines)

    def to_mermaid(self, *, direction: Literal["LR", "RL", "TB", "TD", "BT"] = "LR") -> str:
        """A Mermaid flowchart of the graph that ran, each step coloured by its status.

        The picture of [`Graph.to_mermaid`][exegraph_trio.Graph.to_mermaid], each node
        with the `classDef` of its status (`done`, `failed`, `cancelled`, `skipped`) and a
        second line: status, duration, attempts when retried, the error's type when
        failed, "teardown failed" when a resource's teardown raised.

        ```python
        result = await exegraph.run_with_result(graph)
        print(result.to_mermaid())
        # flowchart LR
        #   classDef done fill:#d3f2dc,stroke:#1e8e3e,color:#0b3d1b
        #   …
        #   s0["fetch
        # Done, 1.00 s"]:::done
        #   s1["build
        # Failed, 2.00 s, ValueError"]:::failed
        #   s0 --> s1
        ```

        Args:
            direction: `"LR"` (left to right), `"TB"`/`"TD"` (top down), `"RL"`, `"BT"`.

        Returns:
            Mermaid source (without the Markdown fence), ending with a newline.

        Raises:
            ValueError: the result was made by hand, without its `graph` (draw it with
                [`to_gantt`][exegraph_trio.RunResult.to_gantt] instead), or an unknown
                `direction`.
        """
        return result_mermaid(self, direction=direction)

    def to_gantt(self, *, title: str | None = None) -> str:
        """A Mermaid Gantt chart of the run: a bar per step that ran, from start to end.

        Bars are grouped into lanes, "lane 1", "lane 2", …: as many as steps ran at once
        (a step that waits between retries keeps its lane). Done steps have Mermaid's
        `done` look, failed ones `crit`, cancelled ones `active`, coloured as in
        [`to_mermaid`][exegraph_trio.RunResult.to_mermaid]; skipped steps have no bar.
        Times are milliseconds after the first start.

        ```python
        print(result.to_gantt(title="nightly build"))
        ```

        Args:
            title: the chart's title; by default the number of steps and the run's
                duration; `""` for none.

        Returns:
            Mermaid source (without the Markdown fence), ending with a newline.
        """
        return result_gantt(self, title=title)

    def to_chrome_trace(self) -> str:
        """The run in the Trace Event Format, for <https://ui.perfetto.dev> or `chrome://tracing`.

        One complete event (`"ph": "X"`) per attempt of each step that ran (SPEC 2.3;
        `ts` and `dur` in whole microseconds after the first start), on one of as few
        lanes (`tid`) as attempts ran at once, named "lane 1", "lane 2", … by metadata
        events; no two events of a lane overlap. Its `args` hold the status (`Failed`
        for an attempt that was retried), the attempt's number, the step's number of
        attempts, the attempt's error, the teardown's error and, in runs with pools, the
        wait for slots (`waited_for_slots_us`). Teardowns have no times of their own, so
        they are shown only by their error. Skipped steps never ran: they are listed in
        `otherData.skipped`.

        ```python
        Path("run.json").write_text(result.to_chrome_trace())
        ```

        Returns:
            A JSON object (`traceEvents`, `displayTimeUnit`, `otherData`), one event per
            line.
        """
        return chrome_trace(self)

    def _summary(self) -> str:
        by_status = collections.Counter(timing.status for timing in self.steps)
        teardowns = sum(timing.teardown_error is not None for timing in self.steps)
        return summary(
            len(self.steps),
            self.total_duration,
            by_status,
            teardowns_failed=teardowns,
            stopped=self._stopped,
        )


def summary(
    steps: int,
    seconds: float,
    by_status: Mapping[StepStatus, int],
    *,
    teardowns_failed: int = 0,
    stopped: bool = False,
) -> str:
    """The last line of `RunResult.table()`: `13 steps in 0.110 s: 10 done, 1 failed, …`.

    `by_status` counts the steps of each status (missing or zero: none); failed teardowns
    and a run stopped from outside (cancelled or interrupted) are said after them.
    """
    head = f"{steps} step{'' if steps == 1 else 's'} in {seconds:.3f} s"
    counts = [(status, by_status.get(status, 0)) for status in StepStatus]
    counts = [(status, count) for status, count in counts if count]
    if counts == [(StepStatus.DONE, steps)] and not teardowns_failed:
        tally = "all done"
    else:
        parts = [f"{count} {str(status).lower()}" for status, count in counts]
        if teardowns_failed:
            parts.append(
                f"{teardowns_failed} teardown{'' if teardowns_failed == 1 else 's'} failed"
            )
        tally = ", ".join(parts) or "none ran"
    return f"{head}: {tally}" + ("; the run was stopped" if stopped else "")


def _describe(error: BaseException) -> str:
    """`Type: message` on one line, also for a message of several lines or a broken `__str__`.

    Its line breaks become ` ⏎ `, and other characters that are not printable (an escape
    code, a bell) are escaped (`printable`): it goes to terminals and logs.
    """
    try:
        message = str(error)
    except Exception:  # noqa: BLE001 - as the traceback module does
        message = "<exception str() failed>"
    text = f"{type(error).__name__}: {message}" if message else type(error).__name__
    return printable(" ⏎ ".join(text.splitlines()))


NAME_WIDTH: Final = 40
"""The widest a table's name column is padded to; a longer name overflows its row."""


def name_width(names: Sequence[str]) -> int:
    """The width of a table's name column: the longest name, from 4 up to `NAME_WIDTH`.

    (Padding every row to one very long name made tables of gigabytes: 10⁴ steps and a
    name of 10⁵ characters.)
    """
    return min(max(4, max(map(cells, names), default=4)), NAME_WIDTH)


def cells(text: str) -> int:
    """How many cells of a terminal `text` takes (printable text: see `printable`).

    Close to `wcwidth`'s rule, from the Unicode data Python has: a wide character (East
    Asian wide or full-width: CJK, most emoji) takes two; a combining mark, a format
    character or a Hangul vowel or final consonant (jamo after the first) none; after a
    symbol (an emoji, `⚠`) or a keycap's digit, a variation selector 16 (`U+FE0F`, emoji
    presentation) makes it two and a skin-tone modifier joins it (none); any other one.
    (Sequences joined by a zero-width joiner do not reach it: `printable` escapes it.)
    """
    if text.isascii():
        return len(text)
    if "\ufe0f" not in text and not any(map(_SKIN_TONES.__contains__, text)):
        return sum(map(_cells_of, text))
    total = last = 0
    symbol = False  # (the character before: a symbol or a keycap's, which these change)
    for char in text:
        if symbol and char == "\ufe0f":
            total += 2 - last  # (an emoji drawn as one: `❤️`)
            last, symbol = 2, False
            continue
        if symbol and char in _SKIN_TONES:
            continue  # (it joins the emoji before it: `👍🏽`)
        last = _cells_of(char)
        total += last
        symbol = unicodedata.category(char) == "So" or char in "0123456789#*"
    return total


_SKIN_TONES: Final = frozenset(map(chr, range(0x1F3FB, 0x1F400)))
"""The emoji modifiers: a skin tone joins the emoji before it (alone, two cells)."""


@functools.cache
def _cells_of(char: str) -> int:
    """The cells of one character alone (`cells`), remembered: few distinct characters."""
    if (
        unicodedata.category(char) in _ZERO_WIDTH
        or "\u1160" <= char <= "\u11ff"  # Hangul jamo after the first
        or "\ud7b0" <= char <= "\ud7ff"
    ):
        return 0
    return 2 if unicodedata.east_asian_width(char) in "WF" else 1


_ZERO_WIDTH: Final = frozenset({"Mn", "Me", "Cf"})
"""Unicode categories that take no cell: marks that combine, format characters."""


def one_cell_each(texts: Iterable[str]) -> bool:
    """Whether each character of `texts` takes one cell (`cells` is then `len`).

    Asked once per distinct character: for a run's 10⁵ step names, a pass in C.
    """
    texts = list(texts)
    if all(map(str.isascii, texts)):
        return True
    used = set().union(*texts)
    return (
        "\ufe0f" not in used
        and used.isdisjoint(_SKIN_TONES)
        and all(_cells_of(char) == 1 for char in used)
    )


def pad(text: str, width: int) -> str:
    """`text` and spaces after it up to `width` cells (`cells`): a column of a table."""
    return text + " " * (width - cells(text))


def printable(text: str) -> str:
    r"""`text` as a terminal or a log may show it: on one line, no escape codes.

    Each character that is not printable (a line break, a tab, an escape, a bell) is
    written as Python escapes it in a string (`\n`, `\t`, `\x1b`, `\x07`).
    """
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def critical_path(
    graph: Graph, starts: Sequence[float | None], ends: Sequence[float | None]
) -> tuple[str, ...]:
    """The names of the chain that decided the makespan, given each step's start and end.

    Shared by `RunResult.critical_path` and `Plan.critical_path` (`None` for a step that
    never ran); ties go to the step latest in topological order. Before each step of the
    chain comes the dependency that ended last no later than it started: a `ONE_FAILED`
    step starts at a failure, before its other dependencies end. A dependency that was
    skipped passes on what ended above it (through skipped steps only): a trigger-rule
    step whose dependency was skipped because a step further up failed started when that
    failure ended, and the chain goes on to it, naming no skipped step. O(V + E), the
    steps above each skipped one worked out once (a set each).
    """
    order = graph._places()
    deps = graph._deps
    ended = [i for i, end in enumerate(ends) if end is not None]
    if not ended:
        return ()
    last = max(ended, key=lambda i: (ends[i], order[i]))
    above: dict[int, frozenset[int]] = {}  # a skipped step's ended steps above it
    path = [last]
    while True:
        step = path[-1]
        start = starts[step]
        before: set[int] = set()
        for d in deps[step]:
            before.update((d,) if ends[d] is not None else _ended_above(deps, ends, d, above))
        found = [
            d for d in before if start is None or ((end := ends[d]) is not None and end <= start)
        ]
        if not found:
            break
        path.append(max(found, key=lambda d: (ends[d], order[d])))
    return tuple(graph.steps[i].name for i in reversed(path))


def _ended_above(
    deps: Sequence[Sequence[int]],
    ends: Sequence[float | None],
    skipped: int,
    above: dict[int, frozenset[int]],
) -> frozenset[int]:
    """The steps that ended above `skipped` through skipped steps only (kept in `above`)."""
    stack = [skipped]
    while stack:  # (depth-first, each skipped step once: its own after those above it)
        d = stack[-1]
        if d in above:
            stack.pop()
            continue
        waiting = [a for a in deps[d] if ends[a] is None and a not in above]
        if waiting:
            stack.extend(waiting)
            continue
        stack.pop()
        parts = [frozenset((a,)) if ends[a] is not None else above[a] for a in deps[d]]
        # (one part, the usual case in a skipped chain: shared, not copied)
        above[d] = parts[0] if len(parts) == 1 else frozenset().union(*parts)
    return above[skipped]
