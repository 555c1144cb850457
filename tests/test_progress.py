"""`exegraph.Progress` (SPEC 2.3): a live area on a terminal, plain lines in a CI log.

Charter: the live form is read the way a person sees it, through a terminal emulator
(`pyte`): a `rich` console forced to be a terminal writes into a `pyte` screen, and the
tests assert what the screen shows. Runs are real runs under virtual time
(`autojump_clock`), so every count, elapsed time and ETA is exact. The drawing thread of
`Progress` works in real time: a step that wants to see the screen waits, in a worker
thread, until the screen shows exactly what is expected (or fails after 10 s, showing the
screen), while every other step waits on a `trio.Event`, so virtual time stands still.
The plain form is compared line for line.
"""

from __future__ import annotations

import contextlib
import enum
import io
import logging
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Mapping
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

import pyte
import pytest
import trio
import trio.lowlevel
import trio.testing
from rich.console import Console

import exegraph_trio as exegraph
from exegraph_trio import ErrorPolicy, Graph, Progress, Retry, RunOptions, Step

CONTINUE = ErrorPolicy.CONTINUE_ON_ERROR
WAIT = 10.0
"""Real seconds a test waits for the screen before it fails."""


class Screen(io.StringIO):
    """A file for a `rich` console that feeds a `pyte` terminal, and counts the writes.

    A terminal turns each `\\n` into a new line at column 0 (the tty's `onlcr`); `pyte`
    does so in its LNM mode.
    """

    def __init__(self, columns: int = 100, lines: int = 30) -> None:
        super().__init__()
        self.screen = pyte.Screen(columns, lines)
        self.screen.set_mode(pyte.modes.LNM)
        self.stream = pyte.Stream(self.screen)
        self.changed = threading.Condition()
        self.writes = 0

    def write(self, text: str) -> int:
        with self.changed:
            self.stream.feed(text)
            self.writes += 1
            self.changed.notify_all()
        return len(text)

    def flush(self) -> None:
        pass

    def _text(self) -> str:
        return "\n".join(line.rstrip() for line in self.screen.display).rstrip("\n")

    def text(self) -> str:
        """What the screen shows: its lines without trailing blanks, without blank lines below."""
        with self.changed:
            return self._text()

    @property
    def cursor_hidden(self) -> bool:
        with self.changed:
            return bool(self.screen.cursor.hidden)

    def wait_for(self, wanted: Callable[[str], bool]) -> str:
        """Block (in a worker thread) until the screen's text satisfies `wanted`; return it."""
        with self.changed:
            if not self.changed.wait_for(lambda: wanted(self._text()), WAIT):
                raise AssertionError(f"the screen never showed that; it shows:\n{self._text()}")
            return self._text()

    async def shows(self, expected: str) -> str:
        """Wait until the screen shows exactly `expected`."""
        return await trio.to_thread.run_sync(self.wait_for, lambda text: text == expected)


@pytest.fixture
def screen(monkeypatch: pytest.MonkeyPatch) -> Screen:
    monkeypatch.setenv("TERM", "xterm-256color")  # not "dumb": rich would draw no live area
    return Screen()


def terminal(screen: Screen) -> Console:
    return Console(
        file=screen,
        force_terminal=True,
        width=screen.screen.columns,
        height=screen.screen.lines,
        color_system="standard",
        legacy_windows=False,
    )


def dedent(text: str) -> str:
    """The lines of a triple-quoted screen, without the first newline."""
    return text.removeprefix("\n").rstrip("\n")


async def noop() -> None:
    pass


async def sleep_then(seconds: float, *, error: Exception | None = None) -> None:
    await trio.sleep(seconds)
    if error is not None:
        raise error


@contextlib.contextmanager
def released(event: trio.Event) -> Iterator[None]:
    """Set `event` on the way out, also when the screen was not as expected (no hang)."""
    try:
        yield
    finally:
        event.set()


class RunIds(exegraph.Instrument):
    """The `run_id` of each run, in the order they started."""

    def __init__(self) -> None:
        self.ids: list[int] = []

    def __iter__(self) -> Iterator[int]:
        return iter(self.ids)

    def run_started(self, run: exegraph.RunInfo) -> None:
        self.ids.append(run.run_id)


def drawing_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "exegraph-progress"]


# -- the live area ---------------------------------------------------------------------------

DURATIONS = {"fetch": 1.0, "lint": 1.5, "compile": 3.0, "docs": 1.0, "watch": 2.0, "package": 1.0}

MID_RUN = dedent("""
✗ lint failed after 1.5s: RuntimeError: E501 line too long
━━━━━━━━──────────────── 2/6 · 1 done · 1 failed · 3 running · 2.0s · ETA 3.0s
  watch    2.0s
  compile  1.0s
  docs     1.0s
""")


def pipeline(watch: Callable[[], Awaitable[None]], release: trio.Event) -> Graph:
    """fetch (1 s) → compile, docs (until released) → package (1 s); lint fails at 1.5 s."""
    return Graph(
        [
            Step("fetch", partial(sleep_then, 1.0)),
            Step("lint", partial(sleep_then, 1.5, error=RuntimeError("E501 line too long"))),
            Step("compile", release.wait, depends_on=["fetch"]),
            Step("docs", release.wait, depends_on=["fetch"]),
            Step("watch", watch),
            Step("package", partial(sleep_then, 1.0), depends_on=["compile", "docs"]),
        ]
    )


async def run_pipeline(
    screen: Screen,
    *,
    in_options: bool = False,
    durations: bool = True,
    estimates: Mapping[str, float] = DURATIONS,
    eta: str | None = "3.0s",
) -> tuple[str, exegraph.RunResult]:
    """Run `pipeline` and return what the screen showed at 2 s, and the result.

    `estimates` are the durations given (to `Progress`, or with `in_options` to the run);
    the screen is expected to show `eta` then, or no ETA if it is `None` (or without
    `durations`).
    """
    shown = f" · ETA {eta}" if durations and eta is not None else ""
    release = trio.Event()
    seen: list[str] = []

    async def watch() -> None:
        await trio.sleep(2.0)
        expected = MID_RUN.replace(" · ETA 3.0s", shown)
        try:
            seen.append(await screen.shows(expected))
        finally:
            release.set()

    progress = Progress(
        console=terminal(screen), durations=estimates if durations and not in_options else None
    )
    options = RunOptions(
        instruments=[progress],
        max_concurrency=4,
        error_policy=CONTINUE,
        durations=estimates if in_options else None,
    )
    result = await exegraph.run_with_result(pipeline(watch, release), options)
    if result["watch"].error is not None:
        raise result["watch"].error
    return seen[0], result


async def test_the_live_area_shows_counts_running_steps_elapsed_times_and_eta(
    autojump_clock: trio.testing.MockClock, screen: Screen
) -> None:
    seen, _ = await run_pipeline(screen)
    assert seen == MID_RUN


@pytest.mark.parametrize(
    ("columns", "header"),
    [
        (60, "━━──── 2/6 · 1 done · 1 failed · 3 running · 2.0s · ETA 3.0s"),
        (40, "2/6 · 1 done · 1 failed · 3 running · 2…"),
        (20, "2/6 · 1 done · 1 fa…"),
    ],
)
async def test_on_a_narrow_terminal_the_bar_gives_way_to_the_counts(
    autojump_clock: trio.testing.MockClock,
    monkeypatch: pytest.MonkeyPatch,
    columns: int,
    header: str,
) -> None:
    # The bar took its 24 cells whatever the width: at 20 columns it was all there was.
    monkeypatch.setenv("TERM", "xterm-256color")
    screen = Screen(columns=columns)
    release = trio.Event()
    seen: list[str] = []

    async def watch() -> None:
        await trio.sleep(2.0)
        try:
            seen.append(
                await trio.to_thread.run_sync(
                    screen.wait_for, lambda text: header in text.splitlines()
                )
            )
        finally:
            release.set()

    options = RunOptions(
        instruments=[Progress(console=terminal(screen), durations=DURATIONS)],
        max_concurrency=4,
        error_policy=CONTINUE,
    )
    result = await exegraph.run_with_result(pipeline(watch, release), options)
    if result["watch"].error is not None:
        raise result["watch"].error
    assert all(len(line) <= columns for line in seen[0].splitlines())


async def test_a_very_long_running_name_does_not_push_the_others_elapsed_times_off(
    autojump_clock: trio.testing.MockClock, screen: Screen
) -> None:
    # Running names were padded to the longest: one of 120 cells cut every row's time.
    release = trio.Event()
    seen: list[str] = []
    long = "x" * 120

    async def watch() -> None:
        await trio.sleep(2.0)
        try:
            seen.append(
                await trio.to_thread.run_sync(
                    screen.wait_for,
                    lambda text: any(
                        line.startswith("  watch ") and line.endswith("  2.0s")
                        for line in text.splitlines()
                    ),
                )
            )
        finally:
            release.set()

    graph = Graph([Step("watch", watch), Step(long, release.wait)])
    options = RunOptions(instruments=[Progress(console=terminal(screen))])
    result = await exegraph.run_with_result(graph, options)
    if result["watch"].error is not None:
        raise result["watch"].error
    assert f"  watch{' ' * 35}  2.0s" in seen[0].splitlines()


async def test_a_failure_is_printed_above_the_live_area_while_the_run_goes_on(
    autojump_clock: trio.testing.MockClock, screen: Screen
) -> None:
    seen, result = await run_pipeline(screen)
    lines = seen.splitlines()
    assert lines[0] == "✗ lint failed after 1.5s: RuntimeError: E501 line too long"
    assert lines[1].startswith("━")
    assert result["package"].end == 3.0  # the run went on after the failure


async def test_the_eta_comes_from_the_runs_own_durations_too(
    autojump_clock: trio.testing.MockClock, screen: Screen
) -> None:
    seen, _ = await run_pipeline(screen, in_options=True)
    assert seen == MID_RUN


async def test_without_durations_there_is_no_eta(
    autojump_clock: trio.testing.MockClock, screen: Screen
) -> None:
    seen, _ = await run_pipeline(screen, durations=False)
    assert "ETA" not in seen


@pytest.mark.parametrize("in_options", [False, True])
@pytest.mark.parametrize("known", ["empty", "other steps", "a new log"])
async def test_durations_that_know_no_step_of_the_graph_show_no_eta(
    autojump_clock: trio.testing.MockClock,
    screen: Screen,
    tmp_path: Path,
    known: str,
    in_options: bool,
) -> None:
    # They gave every step the default estimate (1 s): an ETA made up (observing.md: "the
    # ETA is shown when there are estimates").
    estimates: Mapping[str, float] = {
        "empty": {},
        "other steps": {"deploy": 30.0},
        "a new log": exegraph.DurationLog(tmp_path / "durations.json"),
    }[known]
    seen, _ = await run_pipeline(screen, in_options=in_options, estimates=estimates, eta=None)
    assert "ETA" not in seen


async def test_durations_that_know_one_step_show_an_eta(
    autojump_clock: trio.testing.MockClock, screen: Screen
) -> None:
    # Every other step counts the median of the known estimates (3 s): compile's 2 s left
    # and package's 3 s after it.
    seen, _ = await run_pipeline(screen, estimates={"compile": 3.0}, eta="5.0s")
    assert "ETA 5.0s" in seen


async def test_when_the_run_ends_the_area_goes_and_its_printed_lines_stay(
    autojump_clock: trio.testing.MockClock, screen: Screen
) -> None:
    stdout, stderr = sys.stdout, sys.stderr
    await run_pipeline(screen)
    assert screen.text() == dedent("""
✗ lint failed after 1.5s: RuntimeError: E501 line too long
✗ 6 steps in 3.000 s: 5 done, 1 failed
""")
    assert not screen.cursor_hidden
    assert (sys.stdout, sys.stderr) == (stdout, stderr)
    assert drawing_threads() == []


async def test_a_retry_is_printed_and_the_step_shows_its_attempt(
    autojump_clock: trio.testing.MockClock, screen: Screen
) -> None:
    release = trio.Event()
    attempts = 0

    async def flaky() -> None:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            raise ConnectionError("reset by peer")
        await release.wait()

    async def watch() -> None:
        await trio.sleep(3.0)
        with released(release):
            await screen.shows(
                dedent("""
↻ fetch: attempt 1 failed, retrying in 2.000 s: ConnectionError: reset by peer
──────────────────────── 0/2 · 0 done · 2 running · 3.0s
  fetch  3.0s  attempt 2
  watch  3.0s
""")
            )

    graph = Graph([Step("fetch", flaky, retry=Retry(attempts=2, delay=2.0)), Step("watch", watch)])
    await exegraph.run(graph, RunOptions(instruments=[Progress(console=terminal(screen))]))


async def test_concurrent_runs_share_one_area_each_with_its_own_bar(
    autojump_clock: trio.testing.MockClock, screen: Screen
) -> None:
    release = trio.Event()
    ids = RunIds()
    progress = Progress(console=terminal(screen))

    async def watch() -> None:
        await trio.sleep(1.0)
        first, second = ids
        with released(release):
            await screen.shows(
                dedent(f"""
run {first}: ──────────────────────── 0/2 · 0 done · 2 running · 1.0s
  build  1.0s
  watch  1.0s
run {second}: ──────────────────────── 0/1 · 0 done · 1 running · 1.0s
  backup  1.0s
""")
            )

    build = Graph([Step("build", release.wait), Step("watch", watch)])
    backup = Graph([Step("backup", release.wait)])
    options = RunOptions(instruments=[ids, progress])
    async with trio.open_nursery() as nursery:
        nursery.start_soon(exegraph.run, build, options)
        await trio.lowlevel.checkpoint()  # the first run starts first
        nursery.start_soon(exegraph.run, backup, options)
    first, second = ids
    assert sorted(screen.text().splitlines()) == [
        f"run {first}: ✓ 2 steps in 1.000 s: all done",
        f"run {second}: ✓ 1 step in 1.000 s: all done",
    ]


async def test_at_most_ten_running_steps_are_listed_longest_running_first(
    autojump_clock: trio.testing.MockClock, screen: Screen
) -> None:
    release = trio.Event()

    async def watch() -> None:
        await trio.sleep(12.0)
        with released(release):
            await screen.shows(
                dedent("""
━━━━━━━━━━━───────────── 12/25 · 12 done · 13 running · 12.0s
  watch  12.0s
  s0     12.0s
  s1     11.0s
  s2     10.0s
  s3     9.0s
  s4     8.0s
  s5     7.0s
  s6     6.0s
  s7     5.0s
  s8     4.0s
  … 3 more
""")
            )

    # s<i> starts at i seconds (when t<i> is over) and runs until released
    steps = [Step("watch", watch)]
    for i in range(12):
        steps.append(Step(f"t{i}", partial(trio.sleep, i)))
        steps.append(Step(f"s{i}", release.wait, depends_on=[f"t{i}"]))
    options = RunOptions(instruments=[Progress(console=terminal(screen))], max_concurrency=30)
    await exegraph.run(Graph(steps), options)


async def test_log_records_and_prints_go_above_the_area_whole(
    autojump_clock: trio.testing.MockClock, screen: Screen
) -> None:
    release = trio.Event()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    stream = handler.stream
    root = logging.getLogger()
    root.addHandler(handler)
    log = logging.getLogger("pipeline")
    log.setLevel(logging.INFO)

    async def talk() -> None:
        log.info("compiling 12 files")
        print("a line printed by a step")
        await release.wait()

    async def watch() -> None:
        await trio.sleep(1.0)
        with released(release):
            await screen.shows(
                dedent("""
INFO pipeline: compiling 12 files
a line printed by a step
──────────────────────── 0/2 · 0 done · 2 running · 1.0s
  talk   1.0s
  watch  1.0s
""")
            )

    try:
        graph = Graph([Step("talk", talk), Step("watch", watch)])
        await exegraph.run(graph, RunOptions(instruments=[Progress(console=terminal(screen))]))
    finally:
        root.removeHandler(handler)
    assert handler.stream is stream  # given back when the area closed


# -- redrawing -------------------------------------------------------------------------------


async def test_the_live_area_escapes_line_breaks_and_control_characters_in_names(
    autojump_clock: trio.testing.MockClock, screen: Screen
) -> None:
    # As the plain lines do: a name never moves the cursor, clears the screen or colours.
    release = trio.Event()
    seen: list[str] = []
    seen_flaky: list[bool] = []

    async def running() -> None:
        await release.wait()

    async def failing() -> None:
        await trio.sleep(0.5)
        raise ValueError("oops")

    async def resource() -> AsyncIterator[int]:
        yield 1
        raise ValueError("td")

    async def flaky() -> None:  # (its retry waits, with no deadline the clock could jump to)
        if not seen_flaky:
            seen_flaky.append(True)
            await trio.sleep(0.1)
            raise RuntimeError("nope")
        await release.wait()

    async def watch() -> None:
        await trio.sleep(2.0)
        with released(release):
            seen.append(
                await trio.to_thread.run_sync(
                    screen.wait_for, lambda text: "\\x1b[2Jrunning" in text
                )
            )

    graph = Graph(
        [
            Step("\x1b[2Jrunning", running),
            Step("watch", watch),
            Step("two\nlines", failing),
            Step("\x1b[32mres", resource),
            Step("after", noop, depends_on=["\x1b[32mres"]),
            Step("re\ntry", flaky, retry=Retry(attempts=2, delay=0)),
        ]
    )
    progress = Progress(console=terminal(screen))
    options = RunOptions(instruments=[progress], error_policy=CONTINUE)
    await exegraph.run_with_result(graph, options)
    lines = seen[0].splitlines()
    assert lines[0] == "✗ \\x1b[32mres: teardown failed: ValueError: td"
    assert lines[1] == "↻ re\\ntry: attempt 1 failed, retrying in 0.000 s: RuntimeError: nope"
    assert lines[2] == "✗ two\\nlines failed after 0.5s: ValueError: oops"
    assert "  \\x1b[2Jrunning  2.0s" in lines


async def test_the_area_is_redrawn_at_most_ten_times_a_second(screen: Screen) -> None:
    writes: list[int] = []

    async def block() -> None:
        await trio.to_thread.run_sync(screen.wait_for, lambda text: "running" in text)
        writes.append(screen.writes)
        await trio.to_thread.run_sync(time.sleep, 1.0)
        writes.append(screen.writes)

    graph = Graph([Step("block", block)])
    await exegraph.run(graph, RunOptions(instruments=[Progress(console=terminal(screen))]))
    redraws = writes[1] - writes[0]
    assert 2 <= redraws <= 11  # a tenth of a second apart: ten in the second, give or take one


async def test_steps_settling_cost_no_redraw(
    autojump_clock: trio.testing.MockClock, screen: Screen
) -> None:
    async def noop() -> None:
        pass

    graph = Graph(Step(f"s{i}", noop, depends_on=[f"s{i - 1}"] if i else []) for i in range(2000))
    start = time.perf_counter()
    await exegraph.run(graph, RunOptions(instruments=[Progress(console=terminal(screen))]))
    seconds = time.perf_counter() - start
    # hiding the cursor, the redraws of a tenth of a second each, the summary, closing
    assert screen.writes <= 10 * seconds + 6
    assert screen.text() == "✓ 2000 steps in 0.000 s: all done"


# -- cleaning up -----------------------------------------------------------------------------


def leaves_no_area(screen: Screen, stdout: object, stderr: object) -> None:
    assert "running" not in screen.text()
    assert not screen.cursor_hidden
    assert (sys.stdout, sys.stderr) == (stdout, stderr)
    assert drawing_threads() == []


async def test_the_area_closes_when_the_run_is_cancelled(
    autojump_clock: trio.testing.MockClock, screen: Screen
) -> None:
    stdout, stderr = sys.stdout, sys.stderr
    with trio.CancelScope() as scope:

        async def cancel() -> None:
            await screen.shows(
                "━━━━━━━━━━━━──────────── 1/2 · 1 done · 1 running · 0.0s\n  cancel  0.0s"
            )
            scope.cancel()
            await trio.sleep_forever()

        async def noop() -> None:
            pass

        graph = Graph([Step("noop", noop), Step("cancel", cancel, depends_on=["noop"])])
        await exegraph.run(graph, RunOptions(instruments=[Progress(console=terminal(screen))]))
    assert scope.cancelled_caught
    leaves_no_area(screen, stdout, stderr)
    assert screen.text() == "✗ 2 steps in 0.000 s: 1 done, 1 cancelled; the run was stopped"


async def test_the_area_closes_when_a_step_raises_keyboard_interrupt(
    autojump_clock: trio.testing.MockClock, screen: Screen
) -> None:
    stdout, stderr = sys.stdout, sys.stderr

    async def interrupt() -> None:
        await screen.shows(
            "──────────────────────── 0/2 · 0 done · 2 running · 0.0s\n"
            "  interrupt  0.0s\n"
            "  wait       0.0s"
        )
        raise KeyboardInterrupt

    graph = Graph([Step("interrupt", interrupt), Step("wait", trio.sleep_forever)])
    with pytest.raises(KeyboardInterrupt):
        await exegraph.run(graph, RunOptions(instruments=[Progress(console=terminal(screen))]))
    leaves_no_area(screen, stdout, stderr)
    assert screen.text() == dedent("""
✗ interrupt failed after 0.0s: KeyboardInterrupt
✗ 2 steps in 0.000 s: 1 failed, 1 cancelled; the run was stopped
""")


# -- plain lines -----------------------------------------------------------------------------


def plain() -> tuple[Progress, io.StringIO]:
    out = io.StringIO()
    return Progress(console=Console(file=out, force_terminal=False, width=100)), out


async def plain_lines(steps: Iterable[Step], **options: Any) -> str:
    """What `Progress` writes off a terminal for a run of `steps` with `options`."""
    progress, out = plain()
    await exegraph.run_with_result(Graph(steps), RunOptions(instruments=[progress], **options))
    return out.getvalue()


async def test_off_a_terminal_each_settled_step_is_one_plain_line(
    autojump_clock: trio.testing.MockClock,
) -> None:
    steps = [
        Step("fetch", partial(sleep_then, 1.0)),
        Step("lint", partial(sleep_then, 1.5, error=RuntimeError("E501 line too long"))),
        Step("compile", partial(sleep_then, 2.0), depends_on=["fetch"]),
        Step("package", partial(sleep_then, 1.0), depends_on=["compile", "lint"]),
    ]
    assert await plain_lines(steps, error_policy=CONTINUE, durations=DURATIONS) == (
        "[1/4] fetch    Done        1.000 s\n"
        "[2/4] lint     Failed      1.500 s  RuntimeError: E501 line too long\n"
        "[3/4] package  Skipped           -  its dependency 'lint' failed\n"
        "[4/4] compile  Done        2.000 s\n"
        "4 steps in 3.000 s: 2 done, 1 failed, 1 skipped\n"
    )


async def test_plain_lines_pad_names_by_the_cells_a_terminal_gives_them(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # Two cells for a wide character (CJK, most emoji), none for a combining accent; the
    # step done at once has its line made another way (`ljust`), padded the same.
    steps = [
        Step("日本語 🚀", partial(sleep_then, 1.0)),
        Step("e\u0301clair", noop),
        Step("build", partial(sleep_then, 1.0), depends_on=["日本語 🚀"]),
    ]
    assert await plain_lines(steps) == (
        "[1/3] e\u0301clair     Done        0.000 s\n"
        "[2/3] 日本語 🚀  Done        1.000 s\n"
        "[3/3] build      Done        1.000 s\n"
        "3 steps in 2.000 s: all done\n"
    )


async def test_a_name_of_a_str_subclass_is_printed_as_str_prints_it_however_long_its_step(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # A step done at once has its line made with `ljust` (cheaper than `%s`), which
    # would print the bare value of an `enum` member that is also a `str`.
    class Stage(str, enum.Enum):  # noqa: UP042 - not StrEnum: its str() is the member's name
        FETCH = "fetch"
        BUILD = "build"

    steps = [
        Step(Stage.FETCH, noop),
        Step(Stage.BUILD, partial(sleep_then, 1.0), depends_on=[Stage.FETCH]),
    ]
    assert await plain_lines(steps) == (
        "[1/2] Stage.FETCH  Done        0.000 s\n"
        "[2/2] Stage.BUILD  Done        1.000 s\n"
        "2 steps in 1.000 s: all done\n"
    )


async def test_plain_lines_say_retries_cancellations_and_failed_teardowns(
    autojump_clock: trio.testing.MockClock,
) -> None:
    progress, out = plain()
    attempts = 0

    async def flaky() -> None:
        nonlocal attempts
        attempts += 1
        await trio.sleep(0.5)
        if attempts == 1:
            raise ConnectionError("reset by peer")

    @asynccontextmanager
    async def database() -> AsyncIterator[str]:
        yield "db"
        raise OSError("disk gone")

    graph = Graph(
        [
            Step("db", database),
            Step("fetch", flaky, retry=Retry(attempts=2, delay=2.0)),
            Step("slow", trio.sleep_forever),
            Step("fail", partial(sleep_then, 5.0, error=ValueError("bad input"))),
            Step("after", partial(sleep_then, 1.0), depends_on=["slow"]),
        ]
    )
    await exegraph.run_with_result(graph, RunOptions(instruments=[progress]))
    assert out.getvalue() == (
        "[1/5] db     Done        0.000 s\n"
        "db: teardown failed: OSError: disk gone\n"
        "fetch: attempt 1 failed, retrying in 2.000 s: ConnectionError: reset by peer\n"
        "[2/5] fetch  Done        3.000 s\n"
        "[3/5] fail   Failed      5.000 s  ValueError: bad input\n"
        "[4/5] after  Skipped           -  the run stopped before it could start\n"
        "[5/5] slow   Cancelled   5.000 s  "
        "StepCancelledError: step 'slow' was cancelled while it ran\n"
        "5 steps in 5.000 s: 2 done, 1 failed, 1 skipped, 1 cancelled, 1 teardown failed\n"
    )


async def test_plain_lines_of_concurrent_runs_say_which_run(
    autojump_clock: trio.testing.MockClock,
) -> None:
    progress, out = plain()
    ids = RunIds()
    options = RunOptions(instruments=[ids, progress])
    build = Graph([Step("build", partial(sleep_then, 1.0))])
    backup = Graph([Step("backup", partial(sleep_then, 2.0))])
    async with trio.open_nursery() as nursery:
        nursery.start_soon(exegraph.run, build, options)
        await trio.lowlevel.checkpoint()
        nursery.start_soon(exegraph.run, backup, options)
    first, second = ids
    assert out.getvalue() == (
        f"run {first}: [1/1] build  Done        1.000 s\n"
        f"run {first}: 1 step in 1.000 s: all done\n"
        f"run {second}: [1/1] backup  Done        2.000 s\n"
        f"run {second}: 1 step in 2.000 s: all done\n"
    )


class Watched(io.StringIO):
    """A file that lets another thread wait, without sleeping, until some text is in it."""

    def __init__(self) -> None:
        super().__init__()
        self.changed = threading.Condition()

    def write(self, text: str) -> int:
        with self.changed:
            written = super().write(text)
            self.changed.notify_all()
        return written

    def wait_for(self, text: str, timeout: float = 30.0) -> bool:
        with self.changed:
            return self.changed.wait_for(lambda: text in self.getvalue(), timeout)


async def test_a_plain_line_is_out_within_a_tenth_of_a_second_even_if_the_loop_blocks(
    autojump_clock: trio.testing.MockClock,
) -> None:
    out = Watched()
    progress = Progress(console=Console(file=out, force_terminal=False, width=100))
    written: list[bool] = []

    async def block_until_a_is_written() -> None:
        # Synchronous, on Trio's own thread: only the writing thread can write `a`'s line.
        written.append(out.wait_for("[1/2] a  Done"))

    graph = Graph([Step("a", noop), Step("b", block_until_a_is_written, depends_on=["a"])])
    await exegraph.run(graph, RunOptions(instruments=[progress]))
    assert written == [True]
    assert out.getvalue() == (
        "[1/2] a  Done        0.000 s\n[2/2] b  Done        0.000 s\n2 steps in 0.000 s: all done\n"
    )


@contextlib.contextmanager
def logged_into(out: io.StringIO, log: logging.Logger) -> Iterator[None]:
    """While inside, `log`'s records are `log: MESSAGE` lines in `out`, and nowhere else."""
    handler = logging.StreamHandler(out)
    handler.setFormatter(logging.Formatter("log: %(message)s"))
    propagate, log.propagate = log.propagate, False
    log.addHandler(handler)
    try:
        yield
    finally:
        log.removeHandler(handler)
        log.propagate = propagate


async def warn_then_sleep(log: logging.Logger, text: str) -> None:
    log.warning(text)
    await trio.sleep(1.0)


async def test_a_log_record_comes_after_the_lines_of_the_steps_settled_before_it(
    autojump_clock: trio.testing.MockClock,
) -> None:
    progress, out = plain()
    log = logging.getLogger("tests.progress.order")
    factory = logging.getLogRecordFactory()
    graph = Graph(
        [
            Step("a", partial(warn_then_sleep, log, "a runs")),
            Step("b", partial(warn_then_sleep, log, "b runs"), depends_on=["a"]),
            Step("c", partial(warn_then_sleep, log, "c runs"), depends_on=["b"]),
        ]
    )
    with logged_into(out, log):
        await exegraph.run(graph, RunOptions(instruments=[progress]))
    assert out.getvalue() == (
        "log: a runs\n"
        "[1/3] a  Done        1.000 s\n"
        "log: b runs\n"
        "[2/3] b  Done        1.000 s\n"
        "log: c runs\n"
        "[3/3] c  Done        1.000 s\n"
        "3 steps in 3.000 s: all done\n"
    )
    # The record factory in front of logging's is gone with the run.
    assert logging.getLogRecordFactory() is factory


async def test_a_record_factory_put_in_front_during_a_run_stays_and_still_works(
    autojump_clock: trio.testing.MockClock,
) -> None:
    progress, out = plain()
    before = logging.getLogRecordFactory()
    made: list[str] = []
    below: list[Callable[..., logging.LogRecord]] = []

    def counting(*args: object, **kwargs: object) -> logging.LogRecord:
        record = below[0](*args, **kwargs)
        made.append(record.getMessage())
        return record

    async def install() -> None:  # what a program might do while a run goes
        below.append(logging.getLogRecordFactory())
        logging.setLogRecordFactory(counting)

    log = logging.getLogger("tests.progress.factory")
    log.addHandler(logging.NullHandler())
    log.propagate = False
    try:
        await exegraph.run(Graph([Step("a", install)]), RunOptions(instruments=[progress]))
        assert logging.getLogRecordFactory() is counting  # theirs stays, in front
        log.warning("after %d", 1)
        # Another run with the hook still in their chain: it is not installed twice.
        await exegraph.run(Graph([Step("b", noop)]), RunOptions(instruments=[progress]))
        assert logging.getLogRecordFactory() is counting
        log.warning("after %d", 2)
        # They put back what they found: the next run leaves just that in place.
        logging.setLogRecordFactory(below[0])
        await exegraph.run(Graph([Step("c", noop)]), RunOptions(instruments=[progress]))
        assert logging.getLogRecordFactory() is below[0]
        assert isinstance(below[0]("n", logging.INFO, "p", 1, "m", (), None), logging.LogRecord)
    finally:
        logging.setLogRecordFactory(before)
    assert made == ["after 1", "after 2"]
    assert out.getvalue().count("all done") == 3


async def test_a_program_that_puts_back_the_factory_it_found_keeps_records_in_order(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # The usual "wrap, then restore" idiom, ending while a run goes: later runs still
    # write their lines before the program's records.
    progress, out = plain()
    log = logging.getLogger("tests.progress.restore")
    before = logging.getLogRecordFactory()

    async def wrap_and_restore() -> None:
        found = logging.getLogRecordFactory()

        def theirs(*args: object, **kwargs: object) -> logging.LogRecord:
            return found(*args, **kwargs)

        logging.setLogRecordFactory(theirs)
        await trio.sleep(1.0)
        logging.setLogRecordFactory(before)  # not what it found: ours is gone

    said = partial(warn_then_sleep, log, "b runs")
    try:
        with logged_into(out, log):
            await exegraph.run(
                Graph([Step("wrap", wrap_and_restore)]), RunOptions(instruments=[progress])
            )
            graph = Graph([Step("a", noop), Step("b", said, depends_on=["a"])])
            await exegraph.run(graph, RunOptions(instruments=[progress]))
    finally:
        logging.setLogRecordFactory(before)
    assert out.getvalue().splitlines()[2:] == [
        "[1/2] a  Done        0.000 s",
        "log: b runs",
        "[2/2] b  Done        1.000 s",
        "2 steps in 1.000 s: all done",
    ]


async def test_a_run_s_lines_are_all_out_when_it_returns(
    autojump_clock: trio.testing.MockClock,
) -> None:
    progress, out = plain()
    graph = Graph([Step(f"s{i}", noop) for i in range(200)])
    await exegraph.run(graph, RunOptions(instruments=[progress]))
    lines = out.getvalue().splitlines()
    assert len(lines) == 201
    assert lines[-1] == "200 steps in 0.000 s: all done"
    assert [line.split("]")[0] for line in lines[:-1]] == [f"[{i:>3}/200" for i in range(1, 201)]


async def test_a_file_that_fails_stops_the_lines_of_that_run_only(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    class Closing(Watched):
        """A pipe whose reader goes away after the first line."""

        broken = False

        def write(self, text: str) -> int:
            if self.broken:
                raise BrokenPipeError(32, "Broken pipe")
            self.broken = True
            return super().write(text)

    out = Closing()

    async def after_a_is_written() -> None:
        assert out.wait_for("[1/2] a")
        await trio.sleep(1.0)

    progress = Progress(console=Console(file=out, force_terminal=False, width=100))
    graph = Graph([Step("a", noop), Step("b", after_a_is_written, depends_on=["a"])])
    result = await exegraph.run_with_result(graph, RunOptions(instruments=[progress]))
    assert result.ok
    assert out.getvalue() == "[1/2] a  Done        0.000 s\n"
    (record,) = [r for r in caplog.records if r.name == "exegraph_trio"]
    assert record.levelname == "WARNING"
    assert "BrokenPipeError" in record.getMessage()
    # The next run, alone, has its own lines on a file that works (no `run N:` label).
    progress.console.file = again = io.StringIO()
    await exegraph.run(
        Graph([Step("c", partial(sleep_then, 1.0))]), RunOptions(instruments=[progress])
    )
    assert again.getvalue() == "[1/1] c  Done        1.000 s\n1 step in 1.000 s: all done\n"


async def test_a_closed_file_stops_the_lines_too(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    progress, out = plain()
    out.close()
    result = await exegraph.run_with_result(
        Graph([Step("a", noop)]), RunOptions(instruments=[progress])
    )
    assert result.ok
    (record,) = [r for r in caplog.records if r.name == "exegraph_trio"]
    assert "ValueError: I/O operation on closed file" in record.getMessage()


async def test_plain_lines_have_no_ansi_codes(autojump_clock: trio.testing.MockClock) -> None:
    lines = await plain_lines([Step("fail", partial(sleep_then, 1.0, error=RuntimeError("boom")))])
    assert "\x1b" not in lines
    assert lines.endswith("1 step in 1.000 s: 1 failed\n")


async def test_plain_lines_escape_line_breaks_and_control_characters_in_names(
    autojump_clock: trio.testing.MockClock,
) -> None:
    names = ["a\nb", "cr\rname", "ansi\x1b[31mred", "café-🚀"]
    steps = [Step(name, partial(sleep_then, 1.0)) for name in names]
    assert (await plain_lines(steps, max_concurrency=1)).splitlines() == [
        "[1/4] a\\nb             Done        1.000 s",
        "[2/4] cr\\rname         Done        1.000 s",
        "[3/4] ansi\\x1b[31mred  Done        1.000 s",
        "[4/4] café-🚀          Done        1.000 s",  # (🚀 takes two cells)
        "4 steps in 4.000 s: all done",
    ]


async def test_durations_round_to_the_millisecond_as_printf_does_short_ones_included(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # A step under half a millisecond reads 0.000 without a float being formatted.
    seconds = [0.0, 0.0004999, 0.0005, 0.0015, 2.0625]
    steps = [Step(f"s{i}", partial(sleep_then, t)) for i, t in enumerate(seconds)]
    lines = (await plain_lines(steps, max_concurrency=1)).splitlines()[:-1]
    assert [line.split()[-2] for line in lines] == [f"{t:.3f}" for t in seconds]
    assert [line.split()[-2] for line in lines] == ["0.000", "0.000", "0.001", "0.002", "2.062"]


async def test_lines_of_two_progress_displays_on_one_file_keep_their_order(
    autojump_clock: trio.testing.MockClock,
) -> None:
    out = io.StringIO()

    def display() -> Progress:
        return Progress(console=Console(file=out, force_terminal=False, width=100))

    async def nested() -> None:
        graph = Graph(
            [
                Step("inner0", noop),
                Step("inner1", noop, depends_on=["inner0"]),
                Step("inner2", noop, depends_on=["inner1"]),
            ]
        )
        await exegraph.run(graph, RunOptions(instruments=[display()]))

    outer = Graph([Step("before", noop), Step("nested", nested, depends_on=["before"])])
    await exegraph.run(outer, RunOptions(instruments=[display()]))
    assert [line.split()[1] for line in out.getvalue().splitlines()] == [
        "before",
        "inner0",
        "inner1",
        "inner2",
        "steps",
        "nested",
        "steps",
    ]


def test_two_displays_whose_files_fail_each_warn_once_and_their_runs_end() -> None:
    # In a process of its own: a hang would hang it, not the test suite. (That a sink is
    # told outside the queue's lock, which once made two such displays deadlock, is
    # `test_lines.py::test_a_sink_is_told_of_its_failure_outside_the_lock`.)
    code = """if True:
        import io, trio, exegraph_trio as exegraph
        from rich.console import Console

        class Failing(io.StringIO):
            def write(self, text):
                raise BrokenPipeError(32, "Broken pipe")

        async def step():
            await trio.sleep(0)

        async def main():
            async with trio.open_nursery() as nursery:
                for prefix in "ab":
                    console = Console(file=Failing(), force_terminal=False)
                    graph = exegraph.Graph(
                        exegraph.Step(f"{prefix}{i}", step) for i in range(2000)
                    )
                    options = exegraph.RunOptions(instruments=[exegraph.Progress(console=console)])
                    nursery.start_soon(exegraph.run, graph, options)
            print("both runs returned")

        trio.run(main)
    """
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.stdout == "both runs returned\n", done.stderr
    assert done.stderr.count("could not be written (BrokenPipeError") == 2


# -- the extra -------------------------------------------------------------------------------


def test_without_rich_progress_says_which_extra_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "rich.console", None)
    with pytest.raises(ImportError, match=r"pip install 'exegraph-trio\[progress\]'"):
        Progress()


def test_the_engine_does_not_import_rich() -> None:
    code = "import sys, exegraph_trio; print('rich' in sys.modules)"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout == "False\n"


def test_the_default_console_is_standard_error() -> None:
    assert Progress().console.file is sys.stderr


@pytest.fixture(autouse=True)
def no_area_left_behind() -> Iterator[None]:
    yield
    assert drawing_threads() == []
