"""`_lines.Lines`, the batches of plain lines behind `Progress` off a terminal.

Through `Progress`, `test_progress.py` checks what a user sees (order against log
records, lines out while the loop blocks, all out when a run returns); here, the batching
itself.
"""

from __future__ import annotations

import io
import threading

import attrs

from exegraph_trio._lines import BATCH, Lines, Writer


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
        self.file = io.StringIO()  # somewhere else, as `Progress` discards


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


def test_a_file_that_fails_loses_its_own_batch_only() -> None:
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
    assert [type(e) for e in bad.errors] == [BrokenPipeError]
    assert bad.file.getvalue() == "after\n"  # type: ignore[attr-defined]


def test_close_writes_what_waits_and_ends_the_thread() -> None:
    out = io.StringIO()
    sink, lines = Sink(out), Lines()
    lines.open()
    lines.open()  # idempotent: one thread
    assert [t.name for t in threading.enumerate()].count("exegraph-progress") == 1
    lines.add(sink, "a\n")
    lines.close()
    assert out.getvalue() == "a\n"
    assert "exegraph-progress" not in [t.name for t in threading.enumerate()]
    lines.close()  # and so is closing
