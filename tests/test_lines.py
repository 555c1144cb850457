"""`_lines.Lines`, the batches of plain lines behind `Progress` off a terminal.

Through `Progress`, `test_progress.py` checks what a user sees (order against log
records, lines out while the loop blocks, all out when a run returns); here, the batching
itself.
"""

from __future__ import annotations

import io
import logging
import os
import threading
from collections.abc import Callable

import attrs
import pytest

from exegraph_trio import _lines
from exegraph_trio._lines import BATCH, BUSY, DISCARD, INTERVAL, LINES, Lines, Writer


class Counting(io.StringIO):
    """A file that counts its `write` calls."""

    writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)


@attrs.define
class Sink:
    file: Writer
    errors: list[Exception] = attrs.Factory(list)

    def lost(self, error: Exception) -> None:
        self.errors.append(error)


def test_a_full_batch_is_written_by_the_thread_that_adds_it_in_one_write() -> None:
    out = Counting()
    sink, lines = Sink(out), Lines()
    for i in range(BATCH - 1):
        lines.add(sink, f"{i}\n")
    assert out.writes == 0
    lines.add(sink, "last\n")
    assert out.writes == 1
    assert out.getvalue().splitlines() == [*map(str, range(BATCH - 1)), "last"]
    assert not lines.pending


def test_lines_for_several_files_keep_their_order_one_write_per_run_of_one_file() -> None:
    first, second = Counting(), Counting()
    a, b, lines = Sink(first), Sink(second), Lines()
    for sink, text in [(a, "1"), (a, "2"), (b, "3"), (a, "4"), (b, "5"), (b, "6")]:
        lines.add(sink, text + "\n")
    lines.write()
    assert (first.getvalue(), second.getvalue()) == ("1\n2\n4\n", "3\n5\n6\n")
    assert (first.writes, second.writes) == (2, 2)


@attrs.define
class Sleeps:
    """What `Lines._every_interval` sleeps on (its `_Signal`), in virtual time.

    Each `wait` notes its timeout and moves the clock on by it, calling the `events` due
    meanwhile at their times (they may queue lines); a rouse (`Lines.rouse`, once
    `Lines._signal` is this) ends the wait there. The `rounds`th wait returns true (stop).
    """

    rounds: int
    events: dict[float, Callable[[float], None]]
    now: float = 0.0
    waits: list[float] = attrs.Factory(list)
    roused: bool = False

    def monotonic(self) -> float:
        return self.now

    def wait(self, timeout: float) -> bool:
        self.waits.append(round(timeout, 6))
        end = round(self.now + timeout, 6)
        for at in sorted(self.events):
            if self.now < at <= end:
                self.now = at
                self.events.pop(at)(at)
                if self.roused:
                    self.roused = False
                    return len(self.waits) >= self.rounds
        self.now = end
        return len(self.waits) >= self.rounds

    def rouse(self) -> None:
        self.roused = True


def stamped(clock: Sleeps, written: list[tuple[float, str]]) -> Sink:
    """A sink whose file notes each `write` with `clock`'s time then."""

    class Stamped(io.StringIO):
        def write(self, text: str) -> int:
            written.append((clock.now, text))
            return len(text)

    return Sink(Stamped())


def test_the_writing_thread_sleeps_until_the_oldest_line_is_due(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Each wake of that thread costs a busy run more than the wake itself (it waits for
    # the GIL while the Trio thread lets go of it and takes it back at every turn of its
    # loop): it wakes once an interval at most, yet writes each line no later than an
    # interval after it was queued.
    lines = Lines()
    written: list[tuple[float, str]] = []

    def first(now: float) -> None:  # nothing waited; a line comes at once
        lines.add(sink, "a\n")

    def second(now: float) -> None:  # one came at 0.25, while the thread slept
        lines.add(sink, "b\n")
        lines.since = 0.25

    ticks = Sleeps(rounds=5, events={0.1: first, 0.3: second})
    sink = stamped(ticks, written)
    monkeypatch.setattr(_lines.time, "monotonic", ticks.monotonic)  # type: ignore[attr-defined]
    lines._every_interval(ticks)  # type: ignore[arg-type]
    assert written == [(0.2, "a\n"), (0.35, "b\n")]
    assert ticks.waits == [INTERVAL, INTERVAL, INTERVAL, 0.05, INTERVAL]


def test_the_writing_thread_looks_once_a_busy_interval_while_runs_write_their_batches(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A wake costs a busy run some milliseconds (the GIL, above); while the runs write
    # full batches themselves the thread is not needed, and sleeps `BUSY` seconds (a
    # line left over then may wait that long). Once they stop, it is back to the
    # interval.
    lines = Lines()
    written: list[tuple[float, str]] = []
    late = round(INTERVAL + BUSY + INTERVAL, 6)

    def burst(now: float) -> None:  # a full batch, written by the thread that queued it
        for _ in range(BATCH + 1):
            lines.add(sink, "x\n")
        lines.since = now

    def later(now: float) -> None:  # a step done later: the thread is back to the interval
        lines.add(sink, "late\n")
        lines.since = now

    ticks = Sleeps(rounds=5, events={INTERVAL: burst, late: later})
    sink = stamped(ticks, written)
    monkeypatch.setattr(_lines.time, "monotonic", ticks.monotonic)  # type: ignore[attr-defined]
    lines._every_interval(ticks)  # type: ignore[arg-type]
    assert ticks.waits == [INTERVAL, BUSY, INTERVAL, INTERVAL, INTERVAL]
    assert [(at, text.count("\n")) for at, text in written] == [
        (INTERVAL, BATCH),  # the full batch, at once, by the run
        (round(INTERVAL + BUSY, 6), 1),  # the line left over, at the thread's next look
        (round(late + INTERVAL, 6), 1),  # `late`: an interval after it came
    ]


def test_a_line_queued_once_the_runs_went_quiet_rouses_the_napping_thread(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # After a burst (a batch written by the run) the thread naps; a step settling later,
    # the Trio loop idle in between, must not wait for the nap to end: its line rouses
    # the thread, which writes it (and what the burst left over) within an interval.
    lines = Lines()
    written: list[tuple[float, str]] = []

    def burst(now: float) -> None:
        for _ in range(BATCH + 1):  # one left over
            lines.add(sink, "x\n")

    def slow(now: float) -> None:
        lines.add(sink, "slow\n")

    def later(now: float) -> None:
        lines.add(sink, "later\n")

    naps = Sleeps(rounds=7, events={0.1: burst, 0.5: slow, 0.8: later})
    sink = stamped(naps, written)
    lines._signal = naps  # type: ignore[assignment]
    monkeypatch.setattr(_lines.time, "monotonic", naps.monotonic)  # type: ignore[attr-defined]
    lines._every_interval(naps)  # type: ignore[arg-type]
    assert naps.waits == [INTERVAL, BUSY, *[INTERVAL] * 5]
    assert [(at, text.count("\n")) for at, text in written] == [
        (0.1, BATCH),  # the burst's batch, by the run
        (0.5, 2),  # roused by `slow` at 0.5: the left-over line was due, `slow` with it
        (0.9, 1),  # `later`: the thread was awake, an interval after it came
    ]
    assert not lines.napping


def test_a_file_that_fails_stops_its_own_sink_only_and_the_sink_is_told() -> None:
    class Broken(io.StringIO):
        def write(self, text: str) -> int:
            raise BrokenPipeError(32, "Broken pipe")

    good = io.StringIO()
    bad, fine, lines = Sink(Broken()), Sink(good), Lines()
    lines.add(bad, "lost\n")
    lines.add(fine, "kept\n")
    lines.add(bad, "after\n")
    lines.write()
    assert good.getvalue() == "kept\n"
    assert [type(e) for e in bad.errors] == [BrokenPipeError]  # told once
    assert bad.file is DISCARD
    assert fine.errors == []


def test_a_sink_is_told_of_its_failure_outside_the_lock() -> None:
    # `lost` logs a warning, and a log record makes the queue write: were the lock held,
    # another thread writing then (another display's writer) would wait for it, and two
    # displays whose files failed together deadlocked.
    lines = Lines()
    wrote: list[bool] = []

    class Telling(Sink):
        def lost(self, error: Exception) -> None:
            super().lost(error)
            other = threading.Thread(target=lambda: wrote.append(lines.write() is None))
            other.start()
            other.join(timeout=30)

    class Broken(io.StringIO):
        def write(self, text: str) -> int:
            raise BrokenPipeError(32, "Broken pipe")

    sink = Telling(Broken())
    lines.add(sink, "a\n")
    lines.write()
    assert wrote == [True]
    assert [type(e) for e in sink.errors] == [BrokenPipeError]


def test_a_line_that_cannot_be_encoded_stops_its_own_run_not_the_batch() -> None:
    out = io.TextIOWrapper(io.BytesIO(), encoding="ascii")
    first, second, lines = Sink(out), Sink(out), Lines()
    for i in range(3):
        lines.add(first, f"first {i}\n")
        lines.add(second, "café\n" if i == 1 else f"second {i}\n")
    lines.write()
    out.flush()
    written = out.buffer.getvalue().decode()
    assert written.splitlines() == ["first 0", "second 0", "first 1", "first 2"]
    assert (first.errors, [type(e) for e in second.errors]) == ([], [UnicodeEncodeError])


def test_a_ctrl_c_that_stops_a_write_writes_nothing_twice() -> None:
    class Interrupted(io.StringIO):
        """A file whose first write takes the text, then is stopped (a flush)."""

        calls = 0

        def write(self, text: str) -> int:
            self.calls += 1
            written = super().write(text)
            if self.calls == 1:
                raise KeyboardInterrupt
            return written

    out = Interrupted()
    sink, lines = Sink(out), Lines()
    lines.add(sink, "a\n")
    lines.add(sink, "b\n")
    with pytest.raises(KeyboardInterrupt):
        lines.write()
    lines.add(sink, "c\n")
    lines.write()
    assert out.getvalue() == "a\nb\nc\n"


def test_a_ctrl_c_that_stops_a_blocked_write_gives_that_file_no_more_lines(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A pipe nobody reads: each batch would block in turn and take a Ctrl-C of its own.
    clock = [0.0]
    monkeypatch.setattr(_lines.time, "monotonic", lambda: clock[0])  # type: ignore[attr-defined]

    class Stuck(io.StringIO):
        def write(self, text: str) -> int:
            clock[0] += INTERVAL  # blocked that long, then the Ctrl-C
            raise KeyboardInterrupt

    stuck, other = Sink(Stuck()), Sink(io.StringIO())
    lines = Lines()
    lines.add(stuck, "a\n")
    lines.add(other, "b\n")
    with pytest.raises(KeyboardInterrupt):
        lines.write()
    assert stuck.file is DISCARD
    assert stuck.errors == []  # not told: its warning would go to the same stuck stream
    assert [line for _, line in lines.pending] == ["b\n"]  # the other file's line waits
    lines.add(stuck, "c\n")
    lines.write()
    assert other.file.getvalue() == "b\n"  # type: ignore[attr-defined]


def test_a_write_that_fails_part_way_is_not_retried() -> None:
    class Partial(io.StringIO):
        """A non-blocking pipe that takes part of a write, then raises."""

        def write(self, text: str) -> int:
            super().write(text[:3])
            raise BlockingIOError(11, "Resource temporarily unavailable", 3)

    out = Partial()
    first, second, lines = Sink(out), Sink(out), Lines()
    lines.add(first, "one\n")
    lines.add(second, "two\n")
    lines.write()
    assert out.getvalue() == "one"  # no line twice
    assert first.file is DISCARD
    assert second.file is DISCARD
    assert [type(e) for e in first.errors + second.errors] == [BlockingIOError] * 2


def test_a_ctrl_c_during_the_last_write_still_closes() -> None:
    class Interrupted(io.StringIO):
        def write(self, text: str) -> int:
            raise KeyboardInterrupt

    sink, lines = Sink(Interrupted()), Lines()
    lines.open()
    lines.add(sink, "a\n")
    with pytest.raises(KeyboardInterrupt):
        lines.close()
    assert lines.open_runs == 0
    assert "exegraph-progress" not in [t.name for t in threading.enumerate()]
    assert not lines.pending  # the file took them, or they are lost: never written twice


def test_a_thread_that_cannot_start_opens_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(self: threading.Thread) -> None:
        raise RuntimeError("can't start new thread")

    lines = Lines()
    with monkeypatch.context() as patch:
        patch.setattr(threading.Thread, "start", refuse)
        with pytest.raises(RuntimeError, match="can't start new thread"):
            lines.open()
    assert lines.open_runs == 0
    lines.open()  # and the next run opens as if nothing happened
    assert "exegraph-progress" in [t.name for t in threading.enumerate()]
    lines.close()
    assert lines.open_runs == 0


def test_open_and_close_count_runs_one_thread_for_all() -> None:
    out = io.StringIO()
    sink, lines = Sink(out), Lines()
    lines.open()
    lines.open()  # a second run: still one thread
    assert [t.name for t in threading.enumerate()].count("exegraph-progress") == 1
    lines.add(sink, "a\n")
    lines.close()  # one run left: everything waiting is written, the thread goes on
    assert out.getvalue() == "a\n"
    assert "exegraph-progress" in [t.name for t in threading.enumerate()]
    lines.close()
    assert "exegraph-progress" not in [t.name for t in threading.enumerate()]
    lines.close()  # more closes than opens: nothing happens
    assert lines.open_runs == 0


def test_a_forked_child_has_none_of_the_parent_s_lines() -> None:
    out = io.StringIO()
    LINES.open()
    try:
        LINES.add(Sink(out), "the parent's\n")
        reader, writer = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: nothing waits, no run is open, logging works
            logging.getLogger("tests.lines.child").warning("from the child")
            os.write(writer, b"%d %d" % (len(LINES.pending), LINES.open_runs))
            os._exit(0)
        os.close(writer)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert os.read(reader, 100) == b"0 0"
        os.close(reader)
    finally:
        LINES.close()
    assert out.getvalue() == "the parent's\n"
