"""Functions that `tests/test_offload.py` runs in trio-parallel worker processes.

They live in a module of their own, importing nothing but the standard library: a worker
imports the module of each function it runs (pickled by reference), and importing the test
module would import pytest, Trio and exegraph into every worker. The workers find this
module because they start with the test process's `sys.path`, where pytest put `tests/`.
"""

from __future__ import annotations

import ctypes
import os
import sys
import threading
from pathlib import Path


def add(x: int, y: int) -> int:
    """`x + y`, in the worker."""
    return x + y


def worker_pid() -> int:
    """The worker's process id."""
    return os.getpid()


def fail(message: str) -> None:
    """Raise `ValueError(message)` in the worker."""
    raise ValueError(message)


def spin_forever(pid_file: str) -> None:
    """Write this worker's pid to `pid_file`, then burn CPU until killed."""
    Path(pid_file).write_text(str(os.getpid()), encoding="utf-8")
    while True:
        pass


def return_lock() -> threading.Lock:
    """A value that cannot be pickled back from the worker."""
    return threading.Lock()


class HoldsLockError(Exception):
    """An exception that cannot be pickled back from the worker: it holds a lock."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.lock = threading.Lock()


def raise_holding_lock(message: str) -> None:
    """Raise `HoldsLockError(message)` in the worker."""
    raise HoldsLockError(message)


def cannot_rebuild() -> None:
    """Raise `TypeError`: what unpickling a `Rebuilt` calls."""
    raise TypeError("cannot rebuild a Rebuilt")


class Rebuilt:
    """A value that pickles in the worker but cannot be unpickled back."""

    def __reduce__(self) -> tuple[object, tuple[()]]:
        return cannot_rebuild, ()


def return_rebuilt() -> Rebuilt:
    """A value that the worker pickles and the caller cannot unpickle."""
    return Rebuilt()


def return_pointer() -> object:
    """A ctypes pointer: pickling it raises `ValueError` (not `TypeError`)."""
    return ctypes.pointer(ctypes.c_int(1))


class Refuses:
    """A value whose `__reduce__` raises `RuntimeError`: it cannot be pickled back."""

    def __reduce__(self) -> tuple[object, tuple[()]]:
        raise RuntimeError("not today")


def return_refuses() -> Refuses:
    """A value the worker cannot pickle, with a `RuntimeError`."""
    return Refuses()


def raise_value_error(message: str) -> None:
    """Raise the function's own `ValueError(message)` in the worker."""
    raise ValueError(message)


def raise_type_error(message: str) -> None:
    """Raise the function's own `TypeError(message)` in the worker."""
    raise TypeError(message)


def leave(code: int) -> None:
    """`sys.exit(code)` in the worker."""
    sys.exit(code)


def stop() -> None:
    """Raise `StopIteration` in the worker, as `next()` of an exhausted iterator does."""
    next(iter(()))


class Box:
    """A value with a method, to bind its `self` from a step's input."""

    def __init__(self, size: int) -> None:
        self.size = size

    def scaled(self, factor: int) -> int:
        """`size * factor`."""
        return self.size * factor


def _rebuilt_only_in(pid: int) -> BuiltHere:
    if os.getpid() != pid:
        raise ValueError(f"made in process {pid}: cannot be rebuilt in another")
    return BuiltHere()


class BuiltHere:
    """An object that can be unpickled only in the process that pickled it."""

    def __reduce__(self) -> tuple[object, tuple[int]]:
        return _rebuilt_only_in, (os.getpid(),)


def take(value: object) -> str:
    """Take anything, return a word."""
    return "ran"
