"""`Progress`: a live progress display on a terminal, plain lines in a CI log.

It draws with `rich`, an optional dependency (the `progress` extra), imported only when a
`Progress` is made: the engine itself never imports it.

On the scheduler's path a `Progress` only updates counters and a dict of running steps, or
queues a line. On a terminal, everything that reaches the screen is written by a thread of
its own, at most ten times a second; off a terminal, the lines of settled steps are written
together at most a tenth of a second later (those left over from a burst of steps
settling, up to a second), and always before the program's next log
record (`_lines.py`).
"""

from __future__ import annotations

import heapq
import logging
import math
import sys
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Final, final

import trio
from trio.lowlevel import enable_ki_protection

from ._errors import StepSkippedError
from ._instrument import Instrument, RunInfo
from ._lines import BATCH, INTERVAL, LINES, Writer
from ._live import Screen
from ._observers import protected
from ._result import (
    RunResult,
    StepStatus,
    StepTiming,
    cells,
    one_cell_each,
    pad,
    printable,
    summary,
)
from ._result import _describe as _type_and_message
from ._step import Step

if TYPE_CHECKING:
    from rich.console import Console
    from rich.text import Text

__all__ = ["Progress"]

logger: Final = logging.getLogger("exegraph_trio")

_INSTALL: Final = (
    "pip install 'exegraph-trio[progress]' (or, in a clone of the repository: "
    "pip install -e '.[progress]')"
)
_RUNNING_SHOWN: Final = 10
"""Running steps listed per run in the live area, longest-running first; then `… N more`."""
_BAR_WIDTH: Final = 24
"""Cells of the live area's bar, at most (fewer on a narrow terminal)."""
_BAR_LEAST: Final = 6
"""Cells of the bar below which it is left out, for the counts."""
_DONE: Final = StepStatus.DONE
_FAILED: Final = StepStatus.FAILED
_SKIPPED: Final = StepStatus.SKIPPED
_UNDER_A_MILLISECOND: Final = 0.0005
"""Seconds under which `%7.3f` reads `  0.000` (a float costs more to format than a step)."""
_NAME_WIDTH: Final = 40
"""Plain lines pad step names to the graph's longest name, and the live area to the longest
running one, up to this many cells of a terminal (`cells`)."""


@final
class Progress(Instrument):
    """Show how runs are going: a live area on a terminal, one line per step in a CI log.

    Attach it like any [`Instrument`][exegraph_trio.Instrument]. It draws with `rich`,
    shipped as an extra: `pip install 'exegraph-trio[progress]'`.

    ```python
    log = exegraph.DurationLog(".exegraph/durations.json")  # for the ETA
    options = exegraph.RunOptions(durations=log, instruments=[log, exegraph.Progress()])
    await exegraph.run(graph, options)
    ```

    **On a terminal** (`console.is_terminal`) one live area at the bottom of the screen
    shows each run: a bar, `settled/total`, how many steps are done, failed, skipped or
    cancelled, how many are running, the time since the run started and, given
    durations, an ETA; below, the running steps, longest-running first (ten at most, then
    `… N more`), each with its elapsed time, and its attempt number after a retry, or
    `teardown` while a resource is released. Failures, retries and failed teardowns are
    printed above the area as they happen, and a summary line when a run ends
    (`✓`, or `✗` when a step failed or was cancelled). The area goes away when the last
    run ends, also when a run is cancelled or interrupted, leaving those lines:

    ```text
    ✗ lint failed after 1.0s: RuntimeError: E501 line too long
    ━━━━━━━━━━────────────── 3/7 · 2 done · 1 failed · 2 running · 3.2s · ETA 3.4s
      build-api  2.6s
      test-web   0.6s
    ```

    The area is redrawn by a thread of the `Progress`, ten times a second at most, and the
    lines above it are printed by that thread too: on the scheduler's path a step only
    updates counters and a dict of running steps, so a run of 10⁴ no-op steps pays no
    drawing per step, and a slow terminal never holds up the run. Times are read from the
    run's Trio clock (virtual under a `MockClock`).

    The ETA is a lower bound under the estimates: the longer of the longest chain of
    steps still to go (a running step counts its estimate minus its elapsed time) and the
    estimated work left spread over the run's concurrency bound. A step without an
    estimate counts the median of the others, as the scheduler does.

    While the area is shown, what the program writes to `sys.stdout` or `sys.stderr` is
    printed above it (rich redirects both), and so are `logging` records: the root
    logger's handlers that write to the terminal's `stdout` or `stderr` (those of
    `logging.basicConfig()`) are pointed at the redirections until the area closes, then
    given their streams back, so a record is never torn by a redraw. For coloured
    records, use `rich.logging.RichHandler(console=progress.console)` instead: it prints
    through the same console.

    **Not on a terminal** (a CI log, a file) each settled step is one plain line on
    `console.file`, and a run ends with a summary line; no ANSI codes. Lines are written
    in batches (a system call per line would cost about what a no-op step costs): at most
    a tenth of a second after their step settled, even while the program blocks, always
    before the program's next `logging` record (so a step's own log records come after
    the lines of the steps that settled before it), and all of a run's lines before the
    run returns. One exception: while steps settle by the dozen the run writes its own
    batches, and the lines left over from such a burst (fewer than a batch) may wait up
    to a second if no other line comes and the program blocks or the run goes on:

    ```text
    [1/7] checkout   Done        0.503 s
    [2/7] lint       Failed      1.001 s  RuntimeError: E501 line too long
    [3/7] build-web  Done        2.002 s
    ...
    [7/7] package    Done        1.001 s
    7 steps in 6.511 s: 6 done, 1 failed
    ```

    A skipped step says why (`its dependency 'lint' failed`); a retry
    (`fetch: attempt 1 failed, retrying in 2.000 s: …`) and a failed teardown
    (`db: teardown failed: …`) are lines of their own.

    **Several runs at once** (one `Progress` in the options of concurrent runs) share the
    one live area: each run has its own bar and running steps, in the order the runs
    started. From the moment a second run starts, every line of each run in progress,
    above the area or off a terminal, and its bar, begins with `run N: ` (its
    [`run_id`][exegraph_trio.RunInfo]).

    Args:
        console: the `rich.console.Console` to draw on (live when rich takes its file
            for a terminal, `console.is_terminal`). `None`: a new one on standard error,
            so that the display does not mix with what a program prints on its standard
            output; live only if standard error is a terminal (`isatty()`), whatever
            `FORCE_COLOR` or `TTY_COMPATIBLE` say (set for colours in many CI logs, where
            a live area would be cursor codes instead of lines).
        durations: estimated seconds per step name (a `dict`, an
            [`exegraph.DurationLog`][exegraph_trio.DurationLog]) for the ETA. `None`: the
            run's own `RunOptions.durations`; with neither, or when they know none of the
            graph's steps (an empty log), no ETA is shown.

    Raises:
        ImportError: `rich` is not installed (`pip install 'exegraph-trio[progress]'`),
            or it is but cannot be imported (the message says what failed: a file of the
            program's named like a module rich imports, `colorsys.py`, stands in for it).
    """

    def __init__(
        self,
        *,
        console: Console | None = None,
        durations: Mapping[str, float] | None = None,
    ) -> None:
        try:
            from rich.console import Console  # noqa: PLC0415 - rich is an optional extra
        except ImportError as exc:
            if exc.name is not None and exc.name.partition(".")[0] != "rich":
                # A module rich imports failed (or a file of the program's, colorsys.py,
                # stood in for it): not a missing rich.
                raise ImportError(
                    f"exegraph.Progress draws with rich, which cannot be imported: {exc}",
                    name=exc.name,
                ) from exc
            raise ImportError(
                f"exegraph.Progress draws with rich, which is not installed: {_INSTALL}",
                name="rich",
            ) from exc
        if console is None:
            # The live area moves the cursor: it needs stderr to be a terminal. rich also
            # takes a file for a terminal when FORCE_COLOR or TTY_COMPATIBLE is set (for
            # colours, as many CI setups ask): that gives plain lines here.
            console = Console(stderr=True, force_terminal=None if _is_a_tty(sys.stderr) else False)
        self._console = console
        self._durations = durations
        self._live_mode = self._console.is_terminal and not self._console.is_dumb_terminal
        if not self._live_mode:
            # Plain lines need nothing when a step starts: the inherited no-op, which the
            # engine does not call at all (it skips what an instrument leaves as is).
            self.step_started = super().step_started  # type: ignore[method-assign]
            self.step_done = self._plain_step_done  # type: ignore[method-assign]
        self._runs: dict[RunInfo, _RunState] = {}
        self._screen: Screen | None = None

    @property
    def console(self) -> Console:
        """The `rich` console the display is drawn on."""
        return self._console

    @enable_ki_protection  # its counts and lines are kept whole (a Ctrl-C waits)
    def run_started(self, run: RunInfo) -> None:
        """Start following `run` (and open the live area, on a terminal)."""
        durations = self._durations if self._durations is not None else run.options.durations
        state = _RunState(run, durations if self._live_mode else None)
        state.file = self._console.file
        if self._runs:  # several runs at once: each one's lines say which it is, from now on
            for other in (*self._runs.values(), state):
                other.label = f"run {other.run_id}: "
        self._runs[run] = state
        if not self._live_mode:
            try:
                LINES.open()
            except BaseException:
                del self._runs[run]
                raise
        elif self._screen is None:
            try:
                self._screen = Screen(self._console, self._runs)
            except BaseException:
                del self._runs[run]
                raise

    @protected  # its counts are kept whole (a Ctrl-C waits); called directly
    def step_started(self, run: RunInfo, step: Step) -> None:
        """Count `step` as running (nothing is drawn here)."""
        if self._live_mode:
            state = self._runs.get(run)
            if state is None:  # a run it never saw start: nothing to show
                return
            state.running[step.name] = state.clock.current_time()
            if state.seen is not None:
                state.seen.add(step.name)

    @protected  # its counts and lines are kept whole (a Ctrl-C waits); called directly
    def step_done(self, run: RunInfo, step: Step, timing: StepTiming) -> None:
        """Count `step` as settled; a failure is printed (above the live area)."""
        if not self._live_mode:  # (called through the class: the instance has its own)
            self._plain_step_done(run, step, timing)
            return
        state = self._runs.get(run)
        if state is None:  # a run it never saw start: nothing to show
            return
        status = timing.status
        if status is _DONE and state.seen is None:
            # The common case (no estimates to take off), kept short: `settle` inlined.
            state.settled += 1
            state.running.pop(step.name, None)
            if state.notes:
                state.notes.pop(step.name, None)
            return
        state.settle(step.name, status)
        state.running.pop(step.name, None)
        state.notes.pop(step.name, None)
        if timing.status is _FAILED and self._screen is not None:
            self._screen.say(state.label, "✗", "red", _failure(timing, state.show(timing.name)))

    @protected  # its counts and lines are kept whole (a Ctrl-C waits); called directly
    def _plain_step_done(self, run: RunInfo, step: Step, timing: StepTiming) -> None:
        """`step_done` off a terminal (set in `__init__`): queue the line of `step`."""
        state = self._runs.get(run)
        if state is None:  # a run it never saw start: nothing to show
            return
        start, end = timing.start, timing.end
        if timing.status is not _DONE or timing.error is not None or start is None or end is None:
            state.settle(step.name, timing.status)
            self._line(state, timing)
            return
        # The common case, kept short: `settle` and `_line` inlined.
        state.settled += 1
        name = timing.name if not state.plain else state.plain.get(timing.name, timing.name)
        if end - start < _UNDER_A_MILLISECOND:  # it reads 0.000: no float to format
            # (`state.done_line` with `0.000`: `rjust` and `ljust` cost less than `%`.)
            line = (
                f"{state.label}[{str(state.settled).rjust(state.count_width)}{state.of_total}"
                f"{name.ljust(state.name_width)}{state.done_at_once}"
            )
        else:
            line = state.label + state.done_line % (state.settled, name, end - start)
        pending = LINES.pending  # `LINES.add`, inlined (a call costs ~10 % of this)
        if not pending:
            LINES.since = time.monotonic()
        if LINES.napping and time.monotonic() - LINES.last_batch >= INTERVAL:
            LINES.rouse()
        pending.append((state, line))
        if len(pending) >= BATCH:
            LINES.write(wait=False)

    @enable_ki_protection  # its counts and lines are kept whole (a Ctrl-C waits)
    def step_skipped(self, run: RunInfo, step: Step, timing: StepTiming) -> None:
        """Count `step` as settled, skipped."""
        state = self._runs.get(run)
        if state is None:  # a run it never saw start: nothing to show
            return
        state.settle(step.name, timing.status)
        if timing.error is not None:  # not a `ONE_FAILED` step skipped as nothing failed
            state.stopped += 1
        if state.seen is not None:
            state.seen.add(step.name)
        if not self._live_mode:
            self._line(state, timing)

    @enable_ki_protection  # its counts and lines are kept whole (a Ctrl-C waits)
    def step_retrying(
        self, run: RunInfo, step: Step, attempt: int, error: BaseException, delay: float
    ) -> None:
        """Say that an attempt of `step` failed and when the next one comes."""
        text = f"attempt {attempt} failed, retrying in {delay:.3f} s: {_describe(error)}"
        state = self._runs.get(run)
        if state is None:  # a run it never saw start: nothing to show
            return
        if self._live_mode:
            state.notes[step.name] = "waiting to retry"
            if self._screen is not None:
                self._screen.say(state.label, "↻", "yellow", f"{state.show(step.name)}: {text}")
        else:
            self._write(state, f"{state.show(step.name)}: {text}")

    def attempt_started(self, run: RunInfo, step: Step, attempt: int) -> None:
        """Show the attempt number next to `step`."""
        if self._live_mode:
            state = self._runs.get(run)
            if state is not None:
                state.notes[step.name] = f"attempt {attempt}"

    def teardown_started(self, run: RunInfo, step: Step) -> None:
        """List the teardown of `step` among the running steps."""
        if self._live_mode:
            state = self._runs.get(run)
            if state is None:
                return
            state.notes[step.name] = "teardown"
            state.running[step.name] = state.clock.current_time()

    @enable_ki_protection  # its counts and lines are kept whole (a Ctrl-C waits)
    def teardown_done(self, run: RunInfo, step: Step, error: BaseException | None) -> None:
        """Take the teardown off the running steps; a failed one is printed."""
        state = self._runs.get(run)
        if state is None:  # a run it never saw start: nothing to show
            return
        name = state.show(step.name)  # (on one line, escaped, also in the live area)
        text = None if error is None else f"{name}: teardown failed: {_describe(error)}"
        if error is not None:
            state.teardowns_failed += 1
        if self._live_mode:
            state.running.pop(step.name, None)
            state.notes.pop(step.name, None)
            if text is not None and self._screen is not None:
                self._screen.say(state.label, "✗", "red", text)
        elif text is not None:
            self._write(state, text)

    @enable_ki_protection  # its counts and lines are kept whole (a Ctrl-C waits)
    def run_done(self, run: RunInfo, result: RunResult) -> None:
        """Print the run's summary; the live area closes when no run is left."""
        state = self._runs.pop(run, None)
        label = "" if state is None else state.label
        screen = self._screen
        try:
            text = _summary(state, result)
            if screen is None:
                self._write(state, text)
            else:
                mark, style = ("✓", "green") if _succeeded(state, result) else ("✗", "red")
                screen.say(label, mark, style, text)
        finally:
            if state is not None and not self._live_mode:
                LINES.close()  # the run's lines are out when it returns
            if screen is not None and not self._runs:
                self._screen = None
                screen.close()

    def _line(self, state: _RunState, timing: StepTiming) -> None:
        start, end, error = timing.start, timing.end, timing.error
        if error is None and start is not None and end is not None:  # kept short: most steps
            line = state.line % (
                state.settled,
                state.show(timing.name),
                timing.status._value_,
                end - start,
            )
        else:
            if error is None:
                why = ""
            elif isinstance(error, StepSkippedError):
                why = (
                    "the run stopped before it could start"
                    if error.failed_dependency is None
                    else f"its dependency {error.failed_dependency!r} failed"
                )
            else:
                why = _describe(error)
            duration = "-" if start is None or end is None else f"{end - start:.3f} s"
            line = (
                f"[{state.settled:>{state.count_width}}/{state.total}] "
                f"{state.plain.get(timing.name, timing.name):<{state.name_width}}  "
                f"{timing.status!s:<9} {duration:>9}  {why}"
            ).rstrip() + "\n"
        self._write(state, line)

    def _write(self, state: _RunState | None, line: str) -> None:
        """Queue the plain `line` (after the run's label), or write it for an unknown run."""
        if state is not None:
            LINES.add(state, state.label + line.rstrip() + "\n")
        else:
            LINES.write()
            self._console.file.write(line.rstrip() + "\n")
            self._console.file.flush()


def _is_a_tty(stream: object) -> bool:
    try:
        return bool(stream.isatty())  # type: ignore[attr-defined]
    except Exception:  # noqa: BLE001 - none (pythonw), closed, or not a file at all
        return False


def _describe(error: BaseException) -> str:
    """`Type: message` on one line; `Type` alone when the message is empty."""
    return _type_and_message(error)


def _failure(timing: StepTiming, name: str) -> str:
    """The line of a failed step, `name` as it is shown (escaped)."""
    error = "" if timing.error is None else f": {_describe(timing.error)}"
    return f"{name} failed after {_clock(timing.duration)}{error}"


def _summary(state: _RunState | None, result: RunResult) -> str:
    """`result`'s summary line, from the counts `state` kept when they cover every step.

    (Its `steps` are left unread then: they are made when first read.)
    """
    if state is None or state.settled != state.total:
        return result._summary()
    counts = {
        StepStatus.DONE: state.done,
        StepStatus.FAILED: state.failed,
        StepStatus.SKIPPED: state.skipped,
        StepStatus.CANCELLED: state.cancelled,
    }
    return summary(
        state.settled,
        result.total_duration,
        counts,
        teardowns_failed=state.teardowns_failed,
        stopped=result._stopped,
    )


def _succeeded(state: _RunState | None, result: RunResult) -> bool:
    """`result.ok`, from the counts `state` kept when they cover every step."""
    if state is None or state.settled != state.total:
        return result.ok
    if result._stopped or result.error is not None:
        return False
    return not (state.failed or state.cancelled or state.stopped)


def _clock(seconds: float) -> str:
    """`2.5s` under a minute, then `1:05`, then `1:02:05`."""
    if seconds < 60:
        return f"{seconds:.1f}s"
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


@final
class _RunState:
    """What one run has done so far: counters, running steps and the ETA's estimates.

    Written by the Trio thread; read by the drawing thread, which copies each container
    in one C-level call before using it.
    """

    def __init__(self, run: RunInfo, durations: Mapping[str, float] | None) -> None:
        graph = run.graph
        self.run_id = run.run_id
        self.position = graph._position  # running steps started together: in graph order
        self.label = ""
        """`run N: ` once another run shares the `Progress`, else empty."""
        self.clock = trio.lowlevel.current_clock()
        self.start = self.clock.current_time()
        self.total = len(graph)
        self.count_width = len(str(self.total))
        self.shown = {
            name: printable(str(name))
            for name in graph.names
            if name.__class__ is not str or not name.isprintable()
        }
        """Names with a line break or a control character, or of a subclass of `str` (an
        `enum` member: printed as `str()` gives it), as plain lines show them."""
        shown = [self.shown.get(name, name) for name in graph.names] if self.shown else graph.names
        self.plain = self.shown
        """Names as plain lines show them, `shown`'s; padded to the name column's width in
        cells (`name_width` is then 0) when some name has characters two cells wide or
        none (East Asian ones, most emoji, combining marks): `%-Ns` counts characters."""
        if one_cell_each(shown):
            self.name_width = min(_NAME_WIDTH, max(map(len, shown), default=0))
        else:
            width = min(_NAME_WIDTH, max(map(cells, shown), default=0))
            named = zip(graph.names, shown, strict=True)
            self.plain = {name: pad(seen, width) for name, seen in named}
            self.name_width = 0
        count_and_name = f"[%{self.count_width}d/{self.total}] %-{self.name_width}s  "
        self.line = count_and_name + "%-9s %7.3f s\n"
        """The plain line of a step that ran without error: settled count, name, status, seconds."""
        self.done_line = count_and_name + f"{_DONE._value_:<9} %7.3f s\n"
        """`line` of a step that is done: settled count, name, seconds."""
        self.of_total = f"/{self.total}] "
        """What follows the settled count in a plain line."""
        self.done_at_once = f"  {_DONE._value_:<9} {0.0:7.3f} s\n"
        """What follows the name in the line of a step done in under half a millisecond."""
        self.settled = self.failed = self.skipped = self.cancelled = 0
        self.stopped = 0
        self.teardowns_failed = 0
        """Steps skipped for a failure or a stop (a `StepSkippedError`): the run is not ok."""
        self.running: dict[str, float] = {}
        self.notes: dict[str, str] = {}
        self.seen: set[str] | None = None
        self.file: Writer = sys.stdout
        """Where plain lines go: the console's file, looked up once per run."""
        if durations is None or not any(map(durations.__contains__, graph.names)):
            return  # (none of its steps known: every estimate would be the 1 s default)
        estimates = graph._estimates(durations)
        paths = graph._path_lengths(estimates)
        names = graph.names
        self.estimates = dict(zip(names, estimates, strict=True))
        self.tails = {n: p - e for n, p, e in zip(names, paths, estimates, strict=True)}
        self.work_left = math.fsum(estimates)
        self.by_path = sorted(zip(paths, names, strict=True), key=lambda pair: -pair[0])
        self.next_unstarted = 0
        self.slots = run.options.concurrency_limit
        self.seen = set()

    @property
    def done(self) -> int:
        """Steps done: the settled ones not counted otherwise (one count less per step)."""
        return self.settled - self.failed - self.skipped - self.cancelled

    def show(self, name: str) -> str:
        """`name` as a plain line shows it: on one line, control characters escaped."""
        return self.shown.get(name, name) if self.shown else name

    def lost(self, error: Exception) -> None:
        """The console's file failed (a closed pipe, a full disk): say so, once."""
        logger.warning(
            "the progress lines of run %d could not be written (%s); no more are written",
            self.run_id,
            _describe(error),
        )

    def settle(self, name: str, status: StepStatus) -> None:
        # Its kind first: the drawing thread, reading between the two, shows one step
        # fewer done, never a failed one as done.
        if status is _FAILED:
            self.failed += 1
        elif status is _SKIPPED:
            self.skipped += 1
        elif status is not _DONE:
            self.cancelled += 1
        self.settled += 1
        if self.seen is not None:
            self.work_left -= self.estimates[name]

    def eta(self, now: float, running: dict[str, float], notes: dict[str, str]) -> float | None:
        """Seconds left under the estimates (a lower bound), or `None` without them."""
        seen = self.seen
        if seen is None:
            return None
        work = self.work_left
        longest = 0.0
        for name, start in running.items():
            estimate = self.estimates.get(name)
            if estimate is None or notes.get(name) == "teardown":
                continue  # a teardown: its step is settled, its estimate already spent
            elapsed = now - start
            work -= min(estimate, elapsed)
            longest = max(longest, max(0.0, estimate - elapsed) + self.tails[name])
        by_path = self.by_path
        while self.next_unstarted < len(by_path) and by_path[self.next_unstarted][1] in seen:
            self.next_unstarted += 1
        if self.next_unstarted < len(by_path):
            longest = max(longest, by_path[self.next_unstarted][0])
        return max(longest, max(0.0, work) / self.slots)

    def render(self, width: int) -> list[Text]:
        """The lines of this run in the live area, `width` cells wide at most.

        The bar takes what the label and the counts leave of `width`, up to `_BAR_WIDTH`
        cells, and is left out when under `_BAR_LEAST`: on a narrow terminal the counts
        come first (they are cut at the end, the ETA first).
        """
        from rich.text import Text  # noqa: PLC0415 - rich is an optional extra

        now = self.clock.current_time()
        running = self.running.copy()
        notes = self.notes.copy()
        settled = self.settled
        parts = [f"{settled}/{self.total}", f"{self.done} done"]
        for count, word in (
            (self.failed, "failed"),
            (self.skipped, "skipped"),
            (self.cancelled, "cancelled"),
        ):
            if count:
                parts.append(f"{count} {word}")
        position = self.position
        # (The first few only: `nsmallest` keeps a heap of them, not all 10⁵ sorted.)
        shown = heapq.nsmallest(
            _RUNNING_SHOWN, running.items(), key=lambda item: (item[1], position(item[0]))
        )
        parts.append(f"{sum(1 for name in running if notes.get(name) != 'teardown')} running")
        parts.append(_clock(now - self.start))
        eta = self.eta(now, running, notes)
        if eta is not None:
            parts.append(f"ETA {_clock(eta)}")
        summary = " · ".join(parts)
        header = Text(self.label, style="bold", no_wrap=True, overflow="ellipsis")
        bar = min(_BAR_WIDTH, width - cells(self.label) - 1 - len(summary))
        if bar >= _BAR_LEAST:
            filled = bar if not self.total else bar * settled // self.total
            header.append("━" * filled, style="green" if not self.failed else "red")
            header.append("─" * (bar - filled), style="bright_black")
            header.append(" ")
        header.append(summary)
        lines = [header]
        names = [self.show(name) for name, _ in shown]  # (escaped)
        width = min(_NAME_WIDTH, max(map(cells, names), default=0))  # (longer: its row runs on)
        for (name, start), seen_as in zip(shown, names, strict=True):
            line = Text(
                f"  {pad(seen_as, width)}  {_clock(now - start)}",
                no_wrap=True,
                overflow="ellipsis",
            )
            if name in notes:
                line.append(f"  {notes[name]}", style="yellow")
            lines.append(line)
        if len(running) > _RUNNING_SHOWN:
            lines.append(Text(f"  … {len(running) - _RUNNING_SHOWN} more", style="dim"))
        return lines
