"""A second run faster than the first: a `DurationLog` learns which steps are long.

Run it with `python examples/learned_durations.py`.

- `exegraph.DurationLog(path)` is a mapping of step name → estimated seconds, kept in a
  JSON file, and an `Instrument` that learns each successful step's duration when a run
  ends (a moving average: `estimate = (estimate + duration) / 2`) and saves the file.
- Given as `RunOptions(durations=log)`, the estimates decide which ready step starts
  first: the one with the longest *critical path* (its estimate plus the longest chain of
  estimates after it), as ninja does.
- The first run knows nothing yet: every step is estimated at 1 s, so the longest chain
  of steps goes first and `build-image`, long but alone, starts late. The second run
  starts it at once, and is 6 s faster.
- With `max_concurrency=2` the order matters: the bound, not the graph, is what limits
  this run.

The actions sleep in Trio's virtual time (a `MockClock`, as tests do), so this example
takes seconds of its own clock and finishes at once, and every time is exact.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import trio
import trio.testing

import exegraph_trio as exegraph

SECONDS = {
    "fetch-deps": 3,
    "unit-tests": 3,
    "integration-tests": 3,
    "lint": 3,
    "typecheck": 3,
    "build-image": 20,
}
"""How long each step really takes (the log does not know it before the first run)."""


def work(seconds: float) -> exegraph.Action:
    async def action() -> None:
        await trio.sleep(seconds)

    return action


# --8<-- [start:graph]
def build_graph() -> exegraph.Graph:
    def step(name: str, *depends_on: str) -> exegraph.Step:
        return exegraph.Step(name, work(SECONDS[name]), depends_on=depends_on)

    return exegraph.Graph(
        [
            step("fetch-deps"),
            step("unit-tests", "fetch-deps"),
            step("integration-tests", "unit-tests"),
            step("lint"),
            step("typecheck", "lint"),
            step("build-image"),  # long, and nothing waits for it
        ]
    )


async def two_runs(folder: Path) -> None:
    log = exegraph.DurationLog(folder / "durations.json")  # empty: no file yet
    options = exegraph.RunOptions(max_concurrency=2, durations=log, instruments=[log])
    graph = build_graph()

    first = await exegraph.run_with_result(graph, options)  # learns, then saves the file
    predicted = exegraph.plan(graph, options).makespan  # what the log now predicts
    second = await exegraph.run_with_result(graph, options)  # ordered by what it learned
    # --8<-- [end:graph]

    show("first run, every step estimated at 1 s", first)
    print("learned:", ", ".join(f"{step.name} {log[step.name]:g} s" for step in graph))
    print(f"plan() with these estimates predicts {predicted:g} s")
    print()
    show("second run, ordered by the learned durations", second)
    saved = first.total_duration - second.total_duration
    print(f"the second run took {second.total_duration:g} s, {saved:g} s less than the first")
    print()
    print(f"{log.path.name}:")
    print(log.path.read_text(encoding="utf-8").rstrip())


def show(title: str, result: exegraph.RunResult) -> None:
    """A text Gantt chart of `result`: a row per step, one character per second."""
    print(f"{title}: {result.total_duration:g} s")
    origin = min(t.start for t in result if t.start is not None)
    width = max(len(t.name) for t in result)
    print(f"  {'':<{width}}  0    5    10   15   20   25")
    assert result.graph is not None
    order = {name: i for i, name in enumerate(result.graph.names)}
    for timing in sorted(result, key=lambda t: (t.start or 0.0, order[t.name])):
        assert timing.start is not None
        offset = round(timing.start - origin)
        print(f"  {timing.name:<{width}}  {' ' * offset}{'█' * round(timing.duration)}")
    print(f"  critical path: {' → '.join(result.critical_path())}")


async def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        await two_runs(Path(folder))


if __name__ == "__main__":
    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
