"""The plain lines of `Progress` on their way to a file: in order, at most 0.1 s late.

A system call per line costs about as much as a no-op step, so `Progress` does not write
each line as its step settles. It hands the line to `Lines`, and the lines are written
together, each batch in one `write`:

- by the thread that adds the `BATCH`th waiting line (a busy run writes its own lines);
- by a thread of their own, ten times a second while a run goes (so a line is out within
  0.1 s even when the program then blocks in a long synchronous call);
- before any log record is made, in any thread, while lines wait: the program's own log
  records, printed to the same log, come after the lines of the steps that settled
  before them (a `logging` record factory, put in front of the one in place while some
  `Lines` is open);
- when a run ends (`Progress.run_done` writes its summary line after them).

Lines of several runs are written in the order they came; a file that fails stops the
lines of the run that wrote to it (its `Sink.lost`), nothing else.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections import deque
from collections.abc import Callable
from typing import Final, Protocol, final

__all__ = ["BATCH", "INTERVAL", "Lines", "Sink", "Writer"]

INTERVAL: Final = 0.1
"""Seconds between two writes of the waiting lines by the writing thread."""
BATCH: Final = 64
"""Lines that the thread adding the last of them writes at once (it has them in its cache:
the writing thread would be several times slower at it)."""


class Writer(Protocol):
    """A text file, as far as lines need one."""

    def write(self, text: str, /) -> int: ...
    def flush(self) -> None: ...


class Sink(Protocol):
    """Where the lines of one run go: its file, and what to do when that fails."""

    file: Writer

    def lost(self, error: Exception) -> None:
        """Stop writing (the file failed: a closed pipe, a full disk, a closed file)."""


@final
class Lines:
    """Lines waiting to be written, and the thread that writes them (`open` to `close`).

    `add` is what a settled step costs `Progress`: one `deque.append`, safe from any thread
    without a lock. Writing takes a re-entrant lock, so that two writers never interleave
    and a log record made while a batch is written (say, the warning of a failed file)
    does not wait for itself.
    """

    __slots__ = ("__weakref__", "_lock", "_stop", "_thread", "_writing", "pending")

    def __init__(self) -> None:
        self.pending: deque[tuple[Sink, str]] = deque()
        """The lines waiting, oldest first (`add` appends; a hot caller may do it itself)."""
        self._lock = threading.RLock()
        self._writing = False
        self._stop: threading.Event | None = None
        self._thread: threading.Thread | None = None

    def add(self, sink: Sink, line: str) -> None:
        """Queue `line` (ending in a newline) for `sink`'s file; write a full batch."""
        pending = self.pending
        pending.append((sink, line))
        if len(pending) >= BATCH:
            self.write()

    def open(self) -> None:
        """Start the writing thread and write before log records (idempotent)."""
        if self._thread is not None:
            return
        stop = self._stop = threading.Event()
        self._thread = threading.Thread(
            target=_every_interval,
            args=(weakref.ref(self), stop),
            name="exegraph-progress",
            daemon=True,
        )
        self._thread.start()
        _before_records(self)

    def close(self) -> None:
        """Write what waits, then end the thread and the record hook."""
        try:
            self.write()
        finally:
            stop, thread = self._stop, self._thread
            self._stop = self._thread = None
            _no_longer_before_records(self)
            if stop is not None and thread is not None:
                stop.set()
                thread.join()  # at most one batch long: it waits for nothing else

    def write(self) -> None:
        """Write every waiting line now: consecutive lines for one file in one `write`."""
        pending = self.pending
        if not pending:
            return
        with self._lock:
            if self._writing:  # a record made while this thread writes: it comes after
                return
            self._writing = True
            try:
                self._write_all(pending)
            finally:
                self._writing = False

    @staticmethod
    def _write_all(pending: deque[tuple[Sink, str]]) -> None:
        # Only the lines there now: lines added meanwhile (by a run going on in the Trio
        # thread, while this is the writing thread) wait for the next batch, or the two
        # threads would take turns with the GIL until the run pauses.
        popleft = pending.popleft
        left = len(pending)
        while left:
            sink, line = popleft()
            left -= 1
            file, batch = sink.file, [line]
            while left and pending[0][0].file is file:
                batch.append(popleft()[1])
                left -= 1
            try:
                file.write("".join(batch))
                file.flush()
            except Exception as exc:  # noqa: BLE001 - said by `lost`; the run goes on
                sink.lost(exc)


def _every_interval(ref: weakref.ref[Lines], stop: threading.Event) -> None:
    """The writing thread: until `stop`, or until nothing holds the `Lines` any more."""
    while not stop.wait(INTERVAL):
        lines = ref()
        if lines is None:
            return
        lines.write()
        del lines


_open: Final[weakref.WeakSet[Lines]] = weakref.WeakSet()
"""Every open `Lines` (changed in the Trio thread; read from any, by `_record`). Weak: a
`Progress` never closed (an instrument disabled for raising) ends its thread when it goes."""
_wrapped: Callable[..., logging.LogRecord] = logging.LogRecord
"""The record factory `_record` is in front of, while it is installed."""
_installed = False
"""Whether `_record` is in the chain of record factories (even behind someone else's)."""


def _record(*args: object, **kwargs: object) -> logging.LogRecord:
    """The record factory while lines may wait: write them, then make the record."""
    for lines in tuple(_open):
        lines.write()
    return _wrapped(*args, **kwargs)


def _before_records(lines: Lines) -> None:
    global _wrapped, _installed  # noqa: PLW0603 - the one hook, shared by every `Lines`
    _open.add(lines)
    if not _installed:
        _wrapped = logging.getLogRecordFactory()
        logging.setLogRecordFactory(_record)
        _installed = True


def _no_longer_before_records(lines: Lines) -> None:
    global _installed  # noqa: PLW0603 - the one hook, shared by every `Lines`
    _open.discard(lines)
    if not _open and _installed and logging.getLogRecordFactory() is _record:
        # Put back what was there. If someone put a factory in front of `_record` since,
        # `_record` stays in their chain, and with nothing open it only passes records on.
        logging.setLogRecordFactory(_wrapped)
        _installed = False
