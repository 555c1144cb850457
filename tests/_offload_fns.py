"""Functions that `tests/test_offload.py` runs in trio-parallel worker processes.

They live in a module of their own, importing nothing but the standard library: a worker
imports the module of each function it runs (pickled by reference), and importing the test
module would import pytest, Trio and exegraph into every worker. The workers find this
module because they start with the test process's `sys.path`, where pytest put `tests/`.
"""

from __future__ import annotations

import os
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
