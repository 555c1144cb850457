"""`plan`: what a run would do, replayed by the scheduling core on a simulated clock.

The planner is the core's second driver (the Trio driver is the first): it feeds the same
`Core` the same events a run would, but each step "runs" by taking its estimated seconds
on a simulated clock, and no action, hook or instrument is called. Completions at one
instant are reported together and decided together, as the Trio driver does, so a plan's
start times are those of a real run under `trio.testing.MockClock` whose actions sleep
exactly their estimates (up to floating point: see `plan`).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator
from typing import Final, final

import attrs

from . import _core
from ._collector import collector_paused
from ._errors import MAX_SUGGESTED, close_names, did_you_mean, short_repr, unknown_step
from ._graph import Graph
from ._options import ErrorPolicy, RunOptions
from ._pictures import plan_gantt
from ._pools import demands_of
from ._result import StepStatus, critical_path, name_width, pad, printable

__all__ = ["Plan", "PlannedStep", "plan"]

_STATUS = {
    _core.DONE: StepStatus.DONE,
    _core.FAILED: StepStatus.FAILED,
    _core.CANCELLED: StepStatus.CANCELLED,
    _core.SKIPPED: StepStatus.SKIPPED,
}


@final
@attrs.frozen
class PlannedStep:
    """What [`plan`][exegraph_trio.plan] predicts for one step.

    Attributes:
        name: the step's name.
        status: `DONE`; with `fail=`, `FAILED` for the failing steps, `CANCELLED` for the
            steps fail-fast would cancel, `SKIPPED` for those that would never start.
        start: simulated seconds from the run's start; `None` when skipped.
        end: likewise, when it would end.
    """

    name: str
    status: StepStatus
    start: float | None
    end: float | None

    @property
    def duration(self) -> float:
        """`end - start`, `0.0` for a skipped step."""
        if self.start is None or self.end is None:
            return 0.0
        return self.end - self.start


# `PlannedStep(...)` for the planner's 10⁵ steps, its slots set directly (the frozen
# class's `__init__` costs three times as much); tests/test_plan.py checks they agree.
_set_name, _set_status, _set_start, _set_end = (
    PlannedStep.__dict__[field.name].__set__ for field in attrs.fields(PlannedStep)
)


def _planned(name: str, status: StepStatus, start: float | None, end: float | None) -> PlannedStep:
    planned: PlannedStep = object.__new__(PlannedStep)
    _set_name(planned, name)
    _set_status(planned, status)
    _set_start(planned, start)
    _set_end(planned, end)
    return planned


@final
@attrs.frozen
class Plan:
    """What a run of a graph would do: from [`plan`][exegraph_trio.plan].

    ```python
    print(exegraph.plan(graph, RunOptions(max_concurrency=4, durations=log)).table())
    ```

    Attributes:
        steps: a [`PlannedStep`][exegraph_trio.PlannedStep] for every step, in start
            order (ties in graph order); skipped steps last.
        makespan: simulated seconds from the first start to the last end.
        critical_path: the names of the chain of steps that decides the makespan, first
            to last (as [`RunResult.critical_path`][exegraph_trio.RunResult.critical_path]).
        graph: the graph planned.
    """

    steps: tuple[PlannedStep, ...] = attrs.field(repr=short_repr)
    makespan: float
    critical_path: tuple[str, ...] = attrs.field(repr=short_repr)
    graph: Graph = attrs.field(eq=False, repr=False)
    _by_name: dict[str, PlannedStep] = attrs.field(
        init=False, repr=False, eq=False, hash=False, alias="_by_name"
    )

    @_by_name.default
    def _index(self) -> dict[str, PlannedStep]:
        return {step.name: step for step in self.steps}

    def __getitem__(self, name: str) -> PlannedStep:
        """The planned step called `name` (`KeyError` if the graph has none)."""
        try:
            return self._by_name[name]
        except KeyError:
            raise unknown_step(name, self._by_name, "plan") from None

    def __iter__(self) -> Iterator[PlannedStep]:
        return iter(self.steps)

    def __len__(self) -> int:
        return len(self.steps)

    def table(self) -> str:
        r"""A plain-text table of the planned steps, in start order.

        Columns: name, status, start, end and duration (seconds); a last line gives the
        makespan and the critical path. A character of a name that is not printable (a
        line break, an escape code) is escaped as Python would (`\n`, `\x1b`), and the name
        column is at most 40 cells wide, as in
        [`RunResult.table`][exegraph_trio.RunResult.table].
        """
        names = [printable(step.name) for step in self.steps]
        width = name_width(names)
        lines = [f"{'step':<{width}}  {'status':<9}  {'start':>8}  {'end':>8}  {'duration':>8}"]
        for name, step in zip(names, self.steps, strict=True):
            start = "-" if step.start is None else f"{step.start:8.3f}"
            end = "-" if step.end is None else f"{step.end:8.3f}"
            lines.append(
                f"{pad(name, width)}  {step.status!s:<9}  {start:>8}  {end:>8}  "
                f"{step.duration:8.3f}"
            )
        path = " → ".join(map(printable, self.critical_path)) or "(none)"
        lines.append(f"makespan {self.makespan:.3f} s; critical path: {path}")
        return "\n".join(lines)

    def to_gantt(self, *, title: str | None = None) -> str:
        """A Mermaid Gantt chart of the plan: a bar per step that would run, in lanes.

        Drawn as [`RunResult.to_gantt`][exegraph_trio.RunResult.to_gantt] draws a run
        (with `fail=`, failing steps are red and cancelled ones yellow; skipped steps
        have no bar).

        ```python
        print(exegraph.plan(graph, RunOptions(max_concurrency=4)).to_gantt())
        ```

        Args:
            title: the chart's title; by default the number of steps and the makespan;
                `""` for none.

        Returns:
            Mermaid source (without the Markdown fence), ending with a newline.
        """
        return plan_gantt(self, title=title)


@collector_paused
def plan(graph: Graph, options: RunOptions | None = None, *, fail: Iterable[str] = ()) -> Plan:
    """Predict what [`run`][exegraph_trio.run] would do, without running anything.

    Drives the same scheduling core as `run` on a simulated clock: each step takes its
    estimate (`options.durations`; a step missing from it takes the median of the known
    estimates, 1 s each when there are none), honouring the bound, pools, priorities and
    trigger rules, every step succeeding. No action, hook or instrument is called. The
    start times equal a real run's under `trio.testing.MockClock` with actions that sleep
    exactly their estimates, up to floating point: exactly when the estimates are whole
    numbers or binary fractions (2, 0.5); with others (0.6, 3.3) the clock's sums can round
    differently (3.9 against 3.9000000000000004), so two steps the plan ends at one instant
    may end 1e-16 s apart, and what is decided at that instant may differ.

    ```python
    preview = exegraph.plan(graph, RunOptions(max_concurrency=2, durations=log))
    print(preview.table())
    print(exegraph.plan(graph, fail=["migrate"])["deploy"].status)  # what a failure skips
    ```

    Args:
        graph: the graph to plan.
        options: the run's options: its bound, error policy, pools and durations are
            honoured; its timeouts, retries, hooks and instruments play no part. The
            defaults when `None`. Shared `Pool`s are planned as if the run had them to
            itself.
        fail: names of steps that fail: each runs its estimate, then fails, and the plan
            shows what the error policy then cancels and skips (a failure is final: the
            planner does not replay retries; steps ending at the same instant as a
            failure are counted as done before it).

    Raises:
        TypeError: `graph` is not a `Graph`, `options` not a `RunOptions`, or `fail` not
            an iterable of step names (a bare `str` is refused: write `fail=["x"]`).
        ValueError: a name in `fail` is not a step of the graph (close names are
            suggested), a pool the run cannot give (as `run`), a bad estimate.
    """
    if options is None:
        options = RunOptions()
    if not isinstance(graph, Graph):
        raise TypeError(
            f"plan takes a Graph, not {type(graph).__name__}; wrap steps in exegraph.Graph(steps)"
        )
    if not isinstance(options, RunOptions):
        raise TypeError(f"plan's options must be a RunOptions, not {type(options).__name__}")
    failing = _positions(graph, fail)
    features = graph._features()
    estimates = graph._estimates(options.durations or {})
    ranking = graph._ranking
    if options.durations is not None:

        def ranking() -> tuple[list[int], list[int]]:
            return graph._critical_ranking(estimates)

    demands = demands_of(graph, options, private=True)[0] if features.pooled else None
    plain = features.rules is None and demands is None
    core = (_core.PlainCore if plain else _core.Core)(
        graph._deps,
        graph._dependents,
        ranking,
        limit=options.concurrency_limit,
        fail_fast=options.error_policy is ErrorPolicy.FAIL_FAST,
        rules=features.rules,
        demands=demands,
    )
    n = len(graph)
    starts: list[float | None] = [None] * n
    ends: list[float | None] = [None] * n
    running: list[tuple[float, int]] = []  # (end, step) heap
    now = 0.0

    def take() -> None:
        for i in core.take():
            starts[i] = now
            heapq.heappush(running, (now + estimates[i], i))

    core.start()
    take()
    cancelled = False
    while running:
        now = running[0][0]
        batch: list[int] = []
        while running and running[0][0] == now:
            batch.append(heapq.heappop(running)[1])
        if failing and not failing.isdisjoint(batch):
            batch.sort(key=lambda i: i in failing)  # the others count as done before
            for i in batch:
                ends[i] = now
                if i in failing:
                    core.failed(i)
                else:
                    core.done(i)
        else:
            for i in batch:
                ends[i] = now
                core.done(i)
        if core.failing and not cancelled:
            # Fail-fast cancels every step in flight at once (the trigger-rule steps
            # that start from now on run outside the cancelled scope).
            cancelled = True
            for _, i in running:
                ends[i] = now
                core.cancelled(i)
            running.clear()
        take()
    return _plan_of(graph, core, starts, ends)


_SHOWN: Final = 20
"""How many of the names `fail` gives that the graph does not have an error shows."""


def _positions(graph: Graph, names: Iterable[str]) -> set[int]:
    if isinstance(names, str):
        raise TypeError(
            f"fail must be a list of step names, not the str {names!r}; write fail=[{names!r}]"
        )
    if not isinstance(names, Iterable):
        raise TypeError(
            f"fail must be a list of step names, like fail=['deploy'], not "
            f"{type(names).__name__}: {names!r}"
        )
    positions: set[int] = set()
    missing: list[str] = []
    for name in names:
        if not isinstance(name, str):
            raise TypeError(
                f"fail must be a list of step names (str), got {type(name).__name__}: {name!r}"
            )
        if name in graph:
            positions.add(graph._index[name])
        elif len(missing) < MAX_SUGGESTED:  # (close names for the first few: each costs V)
            missing.append(f"{name!r}{did_you_mean(close_names(name, graph.names))}")
        else:
            missing.append(repr(name))
    if missing:
        shown = ", ".join(missing[:_SHOWN])
        more = f", …and {len(missing) - _SHOWN} more" if len(missing) > _SHOWN else ""
        raise ValueError(f"fail names steps the graph does not have: {shown}{more}")
    return positions


def _plan_of(
    graph: Graph, core: _core.Core, starts: list[float | None], ends: list[float | None]
) -> Plan:
    steps, state = graph.steps, core.state
    started = sorted((start, i) for i, start in enumerate(starts) if start is not None)
    skipped = [i for i, start in enumerate(starts) if start is None]
    planned = tuple(
        _planned(steps[i].name, _STATUS[state[i]], starts[i], ends[i])
        for i in [i for _, i in started] + skipped
    )
    began = [t for t in starts if t is not None]
    ended = [t for t in ends if t is not None]
    makespan = max(ended) - min(began) if began else 0.0
    return Plan(planned, makespan, critical_path(graph, starts, ends), graph)
