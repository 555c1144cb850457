"""Know what a run will do before you run it: `exegraph.plan`, then the run itself.

Run it with `python examples/plan_before_run.py`.

- `exegraph.plan(graph, options)` runs nothing: it replays the real scheduler on a
  simulated clock, each step taking its estimate from `RunOptions(durations=...)`, with
  the run's bound, pools, priorities and trigger rules. `Plan.table()` prints it.
- The run that follows starts every step exactly when the plan said, since its actions
  take exactly their estimates here; `RunResult.critical_path()` names the same chain
  as `Plan.critical_path`.
- `plan(..., fail=["migrate-db"])` previews a failure: what fail-fast would cancel, what
  would never start, and which on-failure handler would run.

The actions sleep in Trio's virtual time (a `MockClock`, as tests do), so the example
takes minutes of its own clock, finishes at once, and the comparison is exact. In a real
run, start times drift from the plan by however much the real durations differ from the
estimates.
"""

from __future__ import annotations

import trio
import trio.testing

import exegraph_trio as exegraph
from exegraph_trio import Step, TriggerRule

ESTIMATES = {
    "checkout": 5,
    "build-api": 60,
    "build-web": 40,
    "migrate-db": 20,
    "test-api": 90,
    "test-web": 30,
    "deploy": 15,
    "page-on-call": 1,
}
"""Seconds each step takes: what a `DurationLog` would have learned, or your guess."""


def work(seconds: float) -> exegraph.Action:
    async def action() -> None:
        await trio.sleep(seconds)

    return action


# --8<-- [start:graph]
def build_graph() -> exegraph.Graph:
    def step(
        name: str,
        *depends_on: str,
        pools: list[str] | None = None,
        trigger_rule: TriggerRule = TriggerRule.ALL_SUCCESS,
    ) -> Step:
        action = work(ESTIMATES[name])  # takes exactly its estimate
        return Step(name, action, depends_on=depends_on, pools=pools, trigger_rule=trigger_rule)

    return exegraph.Graph(
        [
            step("checkout"),
            step("build-api", "checkout"),
            step("build-web", "checkout"),
            step("migrate-db", "checkout", pools=["db"]),
            step("test-api", "build-api", "migrate-db", pools=["db"]),
            step("test-web", "build-web"),
            step("deploy", "test-api", "test-web"),
            step("page-on-call", "deploy", trigger_rule=TriggerRule.ONE_FAILED),
        ]
    )


OPTIONS = exegraph.RunOptions(max_concurrency=2, pools={"db": 1}, durations=ESTIMATES)
# --8<-- [end:graph]


async def main() -> None:
    graph = build_graph()
    # --8<-- [start:plan]
    preview = exegraph.plan(graph, OPTIONS)
    print(preview.table())

    result = await exegraph.run_with_result(graph, OPTIONS)
    # --8<-- [end:plan]

    print()
    origin = min(t.start for t in result if t.start is not None)
    print(f"{'step':<13} {'planned':>8} {'started':>8}")
    for planned in preview:
        start = result[planned.name].start
        was = "-" if planned.start is None else f"{planned.start:g}"
        came = "-" if start is None else f"{start - origin:g}"
        print(f"{planned.name:<13} {was:>8} {came:>8}")
    agree = all(
        (p.start is None and result[p.name].start is None)
        or (p.start is not None and result[p.name].start == origin + p.start)
        for p in preview
    )
    print(f"every step started as planned: {agree}")
    print(f"makespan: planned {preview.makespan:g} s, ran {result.total_duration:g} s")
    print(f"critical path: {' → '.join(result.critical_path())}")
    print()

    # --8<-- [start:fail]
    failing = exegraph.plan(graph, OPTIONS, fail=["migrate-db"])
    print(failing.table())
    for status in (exegraph.StepStatus.CANCELLED, exegraph.StepStatus.SKIPPED):
        names = [step.name for step in failing if step.status is status]
        print(f"{status}: {', '.join(names)}")
    # --8<-- [end:fail]


if __name__ == "__main__":
    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
