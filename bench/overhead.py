"""Per-step overhead: every runner on one shape and bound, verified first, then timed.

A *cell* is one shape at one size under one concurrency bound, with one kind of action
(no-op, or yielding once). In a cell, every runner is first run once with `Probe` actions
and checked (each step once, after its dependencies, within the bound); then all runners
are timed with the cell's actions, `repeats` times, one after the other, the order rotated
at each repeat. Ratios are taken pair by pair within a
repeat (so both sides of a ratio saw the same machine weather) and their median is
reported.
"""

from __future__ import annotations

import gc
import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from runners import NOOP, Runner, Timing
from shapes import Shape


class VerificationError(AssertionError):
    """A runner did not run a graph correctly."""


@dataclass
class Cell:
    """The timings of every runner in one cell.

    Attributes:
        size: number of steps.
        shape: the shape's name.
        limit: the concurrency bound.
        width: the shape's largest level (what an unbounded run could overlap).
        action: the timing actions' name (`noop`, `yield`).
        times: seconds of each repeat, by runner key.
        verified: the runners verified on this cell before timing.
    """

    size: int
    shape: str
    limit: int
    width: int
    action: str = "noop"
    times: dict[str, list[float]] = field(default_factory=dict)
    verified: list[str] = field(default_factory=list)

    def has(self, key: str) -> bool:
        """Whether runner `key` was timed in this cell."""
        return bool(self.times.get(key))

    def per_step_us(self, key: str) -> float:
        """Median microseconds per step of runner `key`."""
        if not self.has(key):
            return math.nan
        return statistics.median(self.times[key]) / self.size * 1e6

    def ratio(self, key: str, base: str) -> float:
        """Median over repeats of `time(key) / time(base)`, paired repeat by repeat."""
        if not (self.has(key) and self.has(base)):
            return math.nan
        pairs = zip(self.times[key], self.times[base], strict=False)
        return statistics.median(a / b for a, b in pairs)


def verify(runner: Runner, shape: Shape, limit: int) -> None:
    """Run `runner` once on `shape` with probe actions; raise if anything went wrong."""
    probe = runner.probe(shape, limit)
    try:
        runner.prepare(shape, probe)(limit)
    except Exception as exc:
        raise VerificationError(
            f"{runner.key} on {shape.kind}[{len(shape)}] limit {limit} raised {exc!r}"
        ) from exc
    problems = probe.problems()
    if problems:
        raise VerificationError(
            f"{runner.key} on {shape.kind}[{len(shape)}] limit {limit}: " + "; ".join(problems)
        )


def measure(
    shape: Shape,
    limit: int,
    runners: Sequence[Runner],
    repeats: int,
    *,
    secondary_repeats: int | None = None,
    timing: Timing = NOOP,
    verify_keys: Sequence[str],
    log: Callable[[str], None] = print,
) -> Cell:
    """Verify the runners in `verify_keys`, then time all `runners` on `shape` under `limit`.

    Args:
        shape: the graph.
        limit: the concurrency bound.
        runners: what to time (the floor among them, for the ratios).
        repeats: how many times each runner is timed.
        secondary_repeats: how many of those repeats include the runners that are not
            `primary` (all when `None`); at 10⁵ steps timing the peers once keeps the suite
            short.
        timing: the actions of the timed runs.
        verify_keys: the runners to verify on this cell first.
        log: where to report the cell's medians.
    """
    cell = Cell(len(shape), shape.kind, limit, shape.width, timing.name)
    runners = [runner for runner in runners if runner.times(timing)]
    for runner in runners:
        if runner.key in verify_keys:
            verify(runner, shape, limit)
            cell.verified.append(runner.key)
    if repeats <= 0:
        return cell
    prepared = [(runner.key, runner.prepare(shape, timing)) for runner in runners]
    primary = {runner.key: runner.primary for runner in runners}
    for repeat in range(repeats):
        now = [
            (key, go)
            for key, go in prepared
            if secondary_repeats is None or repeat < secondary_repeats or primary[key]
        ]
        shift = repeat % len(now)
        for key, go in now[shift:] + now[:shift]:
            gc.collect()
            cell.times.setdefault(key, []).append(go(limit))
    line = " ".join(f"{key}={cell.per_step_us(key):.1f}" for key, _ in prepared)
    log(f"  {shape.kind:>8} n={len(shape):<7} limit={limit:<7} {timing.name:>5} µs/step: {line}")
    return cell
