"""Pausing Python's cyclic garbage collector while a large structure is made."""

from __future__ import annotations

import functools
import gc
from collections.abc import Callable
from typing import ParamSpec, TypeVar

_P = ParamSpec("_P")
_R = TypeVar("_R")


def collector_paused(work: Callable[_P, _R]) -> Callable[_P, _R]:
    """`work`, with Python's cyclic garbage collector paused while it runs.

    For code that makes a container or more per step and no cycle: a graph's index and
    adjacency (`Graph(...)`), its priorities, a result's timings, a plan. Each 700 new
    containers start a collection, and every so often one that walks every object alive,
    the user's steps included: at 10⁵ steps that was 40 % of `Graph(...)` (450 → 150 ms)
    and of making a result's `steps` (320 → 185 ms). Mercurial pauses the collector the
    same way when it builds its large indexes (`util.nogc`). Only for code that waits for
    nothing and runs no user code but a step's or a name's own methods (or a durations
    mapping's). A collector the program turned off stays off; one that another thread
    turns off while a graph is being made is on again when it is made (the collector has
    one switch for the whole process; `util.nogc` has the same race).
    """

    @functools.wraps(work)
    def paused(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        was_on = gc.isenabled()
        try:  # (a signal's KeyboardInterrupt raised as `disable` returns still enables)
            gc.disable()
            return work(*args, **kwargs)
        finally:
            if was_on:
                gc.enable()

    return paused
