"""Test helpers: actions that record what happened, in virtual time.

Every test of the engine runs under Trio's mock clock (`autojump_clock`, or `MockClock`
inside hypothesis properties), so times are exact and nothing sleeps for real.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable

import attrs
import trio

import exegraph_trio as exegraph


@attrs.define
class Event:
    """One thing that happened: `kind` is "start", "end", "error" or a hook's name."""

    seq: int
    kind: str
    step: str
    time: float


@attrs.define
class Recorder:
    """Makes step actions that record their start and end, and counts concurrency."""

    events: list[Event] = attrs.field(factory=list)
    running: int = 0
    max_running: int = 0
    _seq: itertools.count[int] = attrs.field(factory=itertools.count)

    def note(self, kind: str, step: str) -> None:
        """Record an event now."""
        self.events.append(Event(next(self._seq), kind, step, trio.current_time()))

    def action(
        self, name: str, seconds: float = 0.0, *, error: BaseException | None = None
    ) -> exegraph.Action:
        """An action that sleeps `seconds` of virtual time, then raises `error` if given."""

        async def act() -> None:
            self.note("start", name)
            self.running += 1
            self.max_running = max(self.max_running, self.running)
            try:
                await trio.sleep(seconds)
                if error is not None:
                    self.note("error", name)
                    raise error
            finally:
                self.running -= 1
            self.note("end", name)

        return act

    def step(
        self,
        name: str,
        seconds: float = 0.0,
        *,
        depends_on: Iterable[str] = (),
        error: BaseException | None = None,
        timeout: float | None = None,
        tags: Iterable[str] = (),
    ) -> exegraph.Step:
        """A step whose action is `self.action(name, seconds, error=error)`."""
        return exegraph.Step(
            name,
            self.action(name, seconds, error=error),
            depends_on=depends_on,
            timeout=timeout,
            tags=tags,
        )

    def times(self, kind: str) -> dict[str, float]:
        """When each step had an event of `kind` (its last one)."""
        return {e.step: e.time for e in self.events if e.kind == kind}

    def order(self, kind: str) -> list[str]:
        """The steps in the order they had an event of `kind`."""
        return [e.step for e in self.events if e.kind == kind]

    def hooks(self) -> exegraph.RunOptions:
        """Options whose hooks record "hook-start" and "hook-done" events."""
        return exegraph.RunOptions(
            on_step_start=lambda name: self.note("hook-start", name),
            on_step_done=lambda name, error: self.note("hook-done", name),
        )
