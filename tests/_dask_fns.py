"""Functions that `tests/test_dask.py` runs on Dask workers.

They live in a module of their own, not in the test file, so that workers import them by
name: the worker processes of a `LocalCluster` are spawned with this process's `sys.path`,
which has `tests/` on it while pytest runs.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import distributed
from opentelemetry import trace


def describe(path: str, width: int, *, fmt: str = "png") -> str:
    """A tiny pure function: a string naming its arguments."""
    return f"{path}@{width}.{fmt}"


def add(a: int, b: int) -> int:
    return a + b


def send(client: str, message: str) -> str:
    """A function with a parameter named `client`, a name on_cluster keeps for the Client."""
    return f"{message} to {client}"


def fail(message: str) -> None:
    raise ValueError(message)


def sleep_until_cancelled(folder: str, seconds: float = 30.0) -> str:
    """Sleep up to `seconds`, stopping once the worker marks this task cancelled.

    Writes `started` (holding its key) when it starts and `stopped` (holding why and how
    long after the cancel it noticed) when it ends, in `folder`.
    """
    worker = distributed.get_worker()
    key = worker.get_current_task()
    Path(folder, "started").write_text(str(key))
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        task = worker.state.tasks.get(key)
        if task is None or task.state == "cancelled":
            Path(folder, "stopped").write_text(f"cancelled {time.time()}")
            return "cancelled"
        time.sleep(0.01)
    Path(folder, "stopped").write_text(f"timed out {time.time()}")
    return "slept"


def die_once(marker: str) -> str:
    """Kill the worker process the first time (leaving `marker`), then succeed."""
    path = Path(marker)
    if not path.exists():
        path.write_text(str(os.getpid()))
        os._exit(1)
    return f"survived in {os.getpid()}"


def current_span_ids() -> tuple[str, str, bool]:
    """The trace id and span id current on the worker, in hex, and whether it is remote."""
    context = trace.get_current_span().get_span_context()
    return f"{context.trace_id:032x}", f"{context.span_id:016x}", context.is_remote


def submit_words(key: str, priority: int, *, pure: bool, workers: str) -> str:
    """Parameters named like `Client.submit`'s own: they must reach the function."""
    return f"{key}/{priority}/{pure}/{workers}"


def stop(message: str) -> None:
    """Raise `StopIteration`, which no coroutine can pass on (PEP 479)."""
    raise StopIteration(message)


def cancel_itself(message: str) -> None:
    """Raise `asyncio.CancelledError`, as a library's own cancelled request may."""
    raise asyncio.CancelledError(message)


def _rebuilt_only_in(pid: int) -> BuiltThere:
    if os.getpid() != pid:
        raise ValueError(f"made in process {pid}: cannot be rebuilt in another")
    return BuiltThere()


class BuiltThere:
    """An object that can be unpickled only in the process that pickled it."""

    def __reduce__(self) -> tuple[object, tuple[int]]:
        return _rebuilt_only_in, (os.getpid(),)


def return_built_there() -> BuiltThere:
    """Return what cannot be unpickled where it is sent."""
    return BuiltThere()
