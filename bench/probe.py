"""Instrumented actions that check a runner did its job, used before any timing.

A `Probe` hands out one action per step. Each action records its start and its end and
yields once in between (so that steps really overlap and the concurrency bound is put to
the test). Afterwards `Probe.problems()` lists what went wrong:

- a step that ran twice, or never;
- a step that started before one of its dependencies had finished;
- more than `limit` actions running at once.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Sequence
from typing import Final

import trio
from peers import AsyncAction, SyncAction

_MAX_REPORTED: Final = 5


class Probe:
    """Records every action's start and end, and checks them against the graph.

    Args:
        deps: the dependencies of each step, by position.
        limit: the concurrency bound the runner was given.
        check_deps: whether to check the order (not for the floor, which has no edges).
    """

    def __init__(self, deps: Sequence[Sequence[int]], limit: int, *, check_deps: bool = True):
        self.deps = deps if check_deps else [()] * len(deps)
        self.limit = limit
        self.started = bytearray(len(deps))
        self.finished = bytearray(len(deps))
        self.running = 0
        self.peak = 0
        self.errors: list[str] = []

    def _error(self, message: str) -> None:
        if len(self.errors) < _MAX_REPORTED:
            self.errors.append(message)

    def enter(self, i: int) -> None:
        """Record that step `i` started, checking it had not and its dependencies are done."""
        if self.started[i]:
            self._error(f"step {i} started twice")
        self.started[i] = 1
        finished = self.finished
        for d in self.deps[i]:
            if not finished[d]:
                self._error(f"step {i} started before its dependency {d} finished")
        self.running += 1
        self.peak = max(self.peak, self.running)

    def leave(self, i: int) -> None:
        """Record that step `i` finished."""
        self.finished[i] = 1
        self.running -= 1

    async def _trio_action(self, i: int) -> None:
        self.enter(i)
        await trio.lowlevel.checkpoint()
        self.leave(i)

    async def _asyncio_action(self, i: int) -> None:
        self.enter(i)
        await asyncio.sleep(0)
        self.leave(i)

    def _sync_action(self, i: int, *args: object) -> None:
        self.enter(i)
        self.leave(i)

    def trio_actions(self) -> list[AsyncAction]:
        """One async action per step, yielding to Trio once while it runs."""
        return [functools.partial(self._trio_action, i) for i in range(len(self.deps))]

    def asyncio_actions(self) -> list[AsyncAction]:
        """One async action per step, yielding to asyncio once while it runs."""
        return [functools.partial(self._asyncio_action, i) for i in range(len(self.deps))]

    def sync_actions(self) -> list[SyncAction]:
        """One sync function per step (for dask), taking its dependencies' results."""
        return [functools.partial(self._sync_action, i) for i in range(len(self.deps))]

    def problems(self) -> list[str]:
        """What went wrong, empty when every step ran once, in order, within the bound."""
        problems = list(self.errors)
        never = self.started.count(0)
        if never:
            problems.append(f"{never} step(s) never started (first: {self.started.index(0)})")
        unfinished = self.finished.count(0)
        if unfinished:
            problems.append(f"{unfinished} step(s) never finished")
        if self.peak > self.limit:
            problems.append(f"{self.peak} actions ran at once, over the bound of {self.limit}")
        return problems
