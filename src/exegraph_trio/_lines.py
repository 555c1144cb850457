"""The plain lines of `Progress` on their way to their files: in order, at most 0.1 s late.

A system call per line costs about as much as a no-op step, so `Progress` does not write
each line as its step settles. It queues the line in `LINES`, the one queue of the
process (so lines keep their order whichever `Progress` and run they come from), and the
lines are written together, each run of lines for one file in one `write`:

- by the thread that queues the `BATCH`th waiting line (a busy run writes its own lines),
  unless another thread is writing (then it leaves them to it);
- by a thread of their own, while a run is open, when the oldest line waited `INTERVAL`
  (it sleeps until then, or an interval when none waits: a line is out within 0.1 s even
  when the program then blocks in a long synchronous call). Each wake of that thread
  costs a busy run some milliseconds (see `_every_interval`), so while the runs write
  full batches themselves (a batch in the last `INTERVAL`) it naps `BUSY` seconds, and
  the first line queued once they went quiet (no batch for an interval) rouses it. The
  lines left over from a burst of steps wait up to `BUSY` then, unless another line
  comes; so do lines queued while a step keeps the program busy right after a burst;
- before any log record is made, in any thread, while a run is open: the program's own
  log records, printed to the same log, come after the lines of the steps that settled
  before them (a `logging` record factory in front of the one in place);
- when a run ends (`Progress.run_done` writes its summary line after them).

A file that fails (a closed pipe, a closed file, a line it cannot encode) stops the lines
of the runs whose lines failed, nothing else: their `Sink.file` becomes `DISCARD`, and
their `Sink.lost` is told, outside the queue's lock (it logs a warning, and a log record
makes the queue write). A batch that failed to encode is tried line by line, so only the
run of the line that cannot be encoded stops; other failures are not retried, as part of
the batch may be written. A `KeyboardInterrupt` may stop a write (a pipe nobody reads):
what the file took stays taken, nothing is written twice, and a file whose write it
stopped after a tenth of a second or more gets no more lines. A forked child starts with
an empty queue of its own. One file that blocks holds up the lines of every run, the log
records made while runs are open, and the end of each run, until it takes them (a
Ctrl-C stops that wait); a thread that writes to it (the run's own, for a full batch)
waits too. A file slow to write slows the runs that write to it, by a write per batch.

"Within 0.1 s" needs the writing thread to get the GIL: a step that holds it in one
long call into C (a huge `pow`, a regular expression that backtracks) holds the lines
up for as long.
"""

from __future__ import annotations

import logging
import math
import operator
import os
import threading
import time
from collections.abc import Callable
from typing import Final, Protocol, final

from trio.lowlevel import disable_ki_protection, enable_ki_protection

__all__ = ["BATCH", "BUSY", "DISCARD", "INTERVAL", "LINES", "Lines", "Sink", "Writer"]

INTERVAL: Final = 0.1
"""Seconds a line may wait before it is written, at most (while a run is open)."""
BUSY: Final = 1.0
"""Seconds the writing thread naps after a wake that found a full batch written by a run
in the last `INTERVAL` (the runs write their own lines), unless roused (`Lines.rouse`)."""
BATCH: Final = 64
"""Lines that the thread queueing the last of them writes at once (it has them in its
cache: the writing thread is several times slower at it)."""


class Writer(Protocol):
    """A text file, as far as lines need one."""

    def write(self, text: str, /) -> int: ...
    def flush(self) -> None: ...


class Sink(Protocol):
    """Where the lines of one run go: its file, and who to tell when it fails."""

    file: Writer

    def lost(self, error: Exception) -> None:
        """The file failed with `error`; the sink's lines go to `DISCARD` from now on."""


@final
class _Discard:
    """Where the lines of a sink go once its file failed: nowhere."""

    def write(self, text: str, /) -> int:
        return len(text)

    def flush(self) -> None:
        pass


DISCARD: Final = _Discard()

_sink_of: Final = operator.itemgetter(0)
_line_of: Final = operator.itemgetter(1)


@final
class Lines:
    """Lines waiting to be written, and the thread that writes them while runs are open.

    Queueing a line is what a settled step costs `Progress`: a `list.append`, safe from
    any thread without a lock. Writing takes a re-entrant lock, so that two writers never
    interleave, and a log record made by the writer itself does not wait for itself.
    """

    __slots__ = (
        "_lock",
        "_signal",
        "_thread",
        "_users",
        "_writing",
        "last_batch",
        "napping",
        "pending",
        "since",
    )

    def __init__(self) -> None:
        self.pending: list[tuple[Sink, str]] = []
        """The lines waiting, oldest first (`add` appends, `_write_all` takes)."""
        self.since = 0.0
        """When the oldest waiting line was queued (`time.monotonic()`), roughly."""
        self.last_batch = -math.inf
        """When a thread that queued lines last wrote a full batch (`time.monotonic()`)."""
        self.napping = False
        """Whether the writing thread naps `BUSY` seconds (the runs write their batches)."""
        self._lock = threading.RLock()
        self._writing = False
        self._users = 0
        self._signal: _Signal | None = None
        self._thread: threading.Thread | None = None

    def add(self, sink: Sink, line: str) -> None:
        """Queue `line` (ending in a newline) for `sink`'s file; write a full batch.

        `Progress._plain_step_done` does the same inline for a step done (keep the two alike).
        """
        pending = self.pending
        if not pending:
            self.since = time.monotonic()
        if self.napping and time.monotonic() - self.last_batch >= INTERVAL:
            self.rouse()  # the runs went quiet: this line is out within an interval
        pending.append((sink, line))
        if len(pending) >= BATCH:
            self.write(wait=False)

    def rouse(self) -> None:
        """End the writing thread's nap: the runs went quiet, a line waits."""
        self.napping = False
        signal = self._signal
        if signal is not None:
            signal.rouse()

    def open(self) -> None:
        """One more run writes lines: the writing thread and the record hook run.

        Raises:
            RuntimeError: the thread could not be started (the process may have no more);
                nothing is opened then.
        """
        with self._lock:
            if self._thread is None:
                signal = _Signal()
                thread = threading.Thread(
                    target=self._every_interval,
                    args=(signal,),
                    name="exegraph-progress",
                    daemon=True,
                )
                thread.start()
                self._signal, self._thread = signal, thread
            self._users += 1
            _hook_records()  # again: a program may have put its factory back meanwhile

    def close(self) -> None:
        """A run is done: write what waits; with no run left, end the thread and hook.

        A Ctrl-C that stops the write (a pipe nobody reads) still closes; the file keeps
        what it took, and nothing is written twice.
        """
        try:
            self.write()
        finally:
            self._release()

    @disable_ki_protection  # a Ctrl-C may stop the wait for a writer stuck on a pipe
    def _release(self) -> None:
        with self._lock:
            self._users = max(0, self._users - 1)
            if self._users:
                return
            signal, thread = self._signal, self._thread
            self._signal = self._thread = None
            self.napping = False
            _unhook_records()
        if signal is not None and thread is not None:
            signal.stop()
            thread.join()  # it waits for nothing but the lock, which is free

    @property
    def open_runs(self) -> int:
        """How many runs are open (between `open` and `close`)."""
        return self._users

    @disable_ki_protection  # a Ctrl-C may stop the wait for a writer stuck on a pipe
    def write(self, *, wait: bool = True) -> None:
        """Write every waiting line now: consecutive lines for one file in one `write`.

        Args:
            wait: whether to wait while another thread writes (else leave the lines to
                it, or to the next call: a run goes on even if its file blocks).
        """
        failed: list[tuple[Sink, Exception]] = []
        if not wait:  # a full batch (`add`): the runs write their own lines
            self.last_batch = time.monotonic()
        if not self._lock.acquire(blocking=wait):
            return
        try:
            if self._writing:  # a record made while this thread writes: it comes after
                return
            self._writing = True
            try:
                self._write_all(failed)
            finally:
                self._writing = False
        finally:
            self._lock.release()
        for sink, error in failed:  # outside the lock: `lost` logs
            sink.lost(error)

    @enable_ki_protection  # a Ctrl-C waits, but for `_put` (see there)
    def _write_all(self, failed: list[tuple[Sink, Exception]]) -> None:
        # Only the lines there now: lines queued meanwhile (by a run going on in the Trio
        # thread, while this is the writing thread) wait for the next batch, or the two
        # threads would take turns with the GIL until the run pauses. `add` only appends
        # and only this method, under the lock, takes from the front: the copy and the
        # deletion of the first `count` (one C call each) take exactly those lines,
        # whatever another thread appends between them.
        pending = self.pending
        count = len(pending)
        if not count:
            return
        taken = pending[:count]
        del pending[:count]
        sinks = list(map(_sink_of, taken))
        if sinks.count(sinks[0]) == count:  # the common case: one run's lines
            groups = [taken]
        else:  # consecutive lines for one file together, in order
            groups = []
            for item in taken:
                if groups and groups[-1][0][0].file is item[0].file:
                    groups[-1].append(item)
                else:
                    groups.append([item])
        for index, group in enumerate(groups):
            began = time.monotonic()
            try:
                _put(group[0][0].file, "".join(map(_line_of, group)))
            except UnicodeError:  # raised before anything is written: which line?
                _one_by_one(group, failed)
            except Exception as exc:  # noqa: BLE001 - told to each sink, outside the lock
                # Some of it may be written (a partial write): no retry, no line twice.
                for sink, _ in group:
                    _fail(sink, exc, failed)
            except KeyboardInterrupt:
                # It propagates. The file may have taken the text already (a flush
                # stopped): it is not written again. A file that blocked that long (a
                # pipe nobody reads) gets no more lines, or each later batch would block
                # in turn and take a Ctrl-C of its own; its sinks are not told (a warning
                # would go to the same stuck stream). The other files' lines wait.
                if time.monotonic() - began >= INTERVAL:
                    for sink, _ in group:
                        sink.file = DISCARD
                pending[0:0] = [item for later in groups[index + 1 :] for item in later]
                raise

    def _every_interval(self, signal: _Signal) -> None:
        # Only lines that waited: while a run queues lines, its own thread writes them
        # (the lock held here while this thread waits for the GIL would turn that
        # thread away, and its lines would pile up for this slower one). It wakes when
        # the oldest line is due, else an interval later. Each wake costs a busy run more
        # than the wake itself: this thread waits for the GIL while the Trio thread lets
        # go of it and takes it back at every turn of its loop, each time with a futex
        # call to wake this one. Ten wakes a second cost a run of no-op steps 5-15 %
        # (bench/progress.py), so while the runs write full batches themselves it naps
        # `BUSY` seconds, until a line queued once they went quiet rouses it (`add`).
        wait = INTERVAL
        while not signal.wait(wait):
            wait = INTERVAL
            if self.pending:
                age = time.monotonic() - self.since
                if age >= INTERVAL * 0.9:  # due, or nearly: now, not in a few ms
                    self.write()
                else:
                    wait = INTERVAL - age
            busy = time.monotonic() - self.last_batch < INTERVAL
            self.napping = busy
            if busy:
                wait = BUSY

    def _forget(self) -> None:
        """In a forked child: the parent's lines, thread and lock are not the child's."""
        self.pending.clear()
        self._lock = threading.RLock()
        self._writing = False
        self._users = 0
        self.napping = False
        self._signal = self._thread = None


@final
class _Signal:
    """What the writing thread sleeps on: its stop, or a rouse from its nap."""

    __slots__ = ("_event", "_stopped")

    def __init__(self) -> None:
        self._event = threading.Event()
        self._stopped = False

    def wait(self, timeout: float) -> bool:
        """Sleep up to `timeout` seconds, or until roused or stopped; whether stopped."""
        self._event.wait(timeout)
        self._event.clear()  # (a rouse or stop after the wake: this one is already up)
        return self._stopped

    def rouse(self) -> None:
        self._event.set()

    def stop(self) -> None:
        self._stopped = True
        self._event.set()


@disable_ki_protection  # a Ctrl-C may stop a write that blocks (a pipe nobody reads)
def _put(file: Writer, text: str) -> None:
    file.write(text)
    file.flush()


def _one_by_one(group: list[tuple[Sink, str]], failed: list[tuple[Sink, Exception]]) -> None:
    """Write `group` line by line: a line that fails stops its own sink only."""
    for sink, line in group:
        try:
            _put(sink.file, line)
        except Exception as exc:  # noqa: BLE001 - told to the sink, outside the lock
            _fail(sink, exc, failed)


def _fail(sink: Sink, error: Exception, failed: list[tuple[Sink, Exception]]) -> None:
    """`sink`'s file failed: its lines go nowhere from now on; it is told once, later."""
    if sink.file is not DISCARD:
        sink.file = DISCARD
        failed.append((sink, error))


LINES: Final = Lines()
"""The queue of the process: every `Progress` off a terminal writes through it."""

_hook: Callable[..., logging.LogRecord] | None = None
"""The record factory `_hook_records` put in front, while it is there."""
_under: Callable[..., logging.LogRecord] | None = None
"""The factory `_hook` makes its records with (the one in place when it was put there)."""


def _hook_records() -> None:
    """Put a record factory in front of the one in place: it writes the lines first.

    Each time a new one, with the factory it found: a program may have put its own in
    front of an earlier one (it stays in their chain and, with no run open, only passes
    records on), or put back what was there before (then it is simply gone).
    """
    global _hook, _under
    under = logging.getLogRecordFactory()
    if under is _hook:
        return

    def make_record(*args: object, **kwargs: object) -> logging.LogRecord:
        if LINES.open_runs:
            LINES.write()
        return under(*args, **kwargs)

    _hook, _under = make_record, under
    logging.setLogRecordFactory(make_record)


def _unhook_records() -> None:
    """Take the record factory of `_hook_records` away, if it is still in front."""
    global _hook, _under  # noqa: PLW0603 - the process's one hook
    if _hook is not None and _under is not None and logging.getLogRecordFactory() is _hook:
        logging.setLogRecordFactory(_under)
    _hook = _under = None


os.register_at_fork(after_in_child=LINES._forget)
