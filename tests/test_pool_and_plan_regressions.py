"""Regressions found by the pool and plan properties (SPEC 2.2), each once a failing case.

- A shared pool deadlocked when a run's best step by priority held a younger ticket than
  another run's waiter, itself younger than the run's oldest waiter: runs now take turns
  by their oldest waiting ticket.
- Under fail-fast, what started after the failure depended on the order Trio woke the
  cancelled steps: the run now lets them report before deciding.
"""

from __future__ import annotations

import trio
import trio.testing
from hypothesis import given

import exegraph_trio as exegraph
from exegraph_trio import Graph, Pool, RunOptions, Step, TriggerRule
from test_plan import _PROPERTY as _PLAN_PROPERTY
from test_plan import PlanCase, check_plan_equals_run, plan_cases
from test_pools import (
    _PROPERTY,
    PoolCase,
    Slots,
    check_bounds,
    check_settled,
    pool_cases,
    run_concurrently,
)


async def test_a_shared_pool_never_deadlocks_when_rank_and_ticket_orders_differ(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # 'early' (ready at 0, waiting for its run's only slot) holds the oldest ticket;
    # 'other' (ready at 0.5) waits behind it; 'late' (ready at 1) ranks before 'early'
    # in its run's heap for the same demand but has the newest ticket, so it waits behind
    # 'other', and 'early' is never looked at: all three wait forever with 'db' free.
    slots = Slots({"db": 1})
    db = Pool(1)
    first = Graph(
        [
            slots.step("gate", 1),
            slots.step("late", 1, {"db": 1}, depends_on=["gate"]),
            slots.step("early", 1, {"db": 1}),
        ]
    )
    second = Graph(
        [slots.step("gate2", 0.5), slots.step("other", 1, {"db": 1}, depends_on=["gate2"])]
    )
    with trio.fail_after(100):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(exegraph.run, first, RunOptions(max_concurrency=1, pools={"db": db}))
            nursery.start_soon(exegraph.run, second, RunOptions(pools={"db": db}))
    assert sorted(slots.starts) == ["early", "gate", "gate2", "late", "other"]


@_PROPERTY
@given(pool_cases(runs=(2, 3), shared=True))
def test_concurrent_runs_sharing_pools_never_deadlock(case: PoolCase) -> None:
    results, slots, shared = run_concurrently(case)
    check_bounds(case, slots)
    check_settled(case, results)
    assert [pool.in_use for pool in shared] == [0] * len(shared)


def sleeping(seconds: float, *, fails: bool = False) -> exegraph.Action:
    async def act() -> None:
        await trio.sleep(seconds)
        if fails:
            raise ValueError("boom")

    return act


def test_what_fail_fast_starts_after_a_failure_does_not_depend_on_trio_batch_order() -> None:
    # At 1.5 s 'boom' fails and 'long' is cancelled at the same instant. 'h1' and 'h2'
    # (released by 'long') outrank 'waiting' (ready since 0): decided together, they take
    # the two freed slots. The run takes 'waiting' first in about half of the runs.
    ALL_DONE = TriggerRule.ALL_DONE
    graph = Graph(
        [
            Step("boom", sleeping(1.5, fails=True)),
            Step("long", sleeping(10)),
            Step("waiting", sleeping(1), trigger_rule=ALL_DONE),
            Step("h1", sleeping(1), depends_on=["long"], trigger_rule=ALL_DONE),
            Step("h2", sleeping(1), depends_on=["long"], trigger_rule=ALL_DONE),
            Step("h1a", sleeping(1), depends_on=["h1"], trigger_rule=ALL_DONE),
            Step("h2a", sleeping(1), depends_on=["h2"], trigger_rule=ALL_DONE),
            Step("after_boom", sleeping(1), depends_on=["boom"]),
        ]
    )
    options = RunOptions(max_concurrency=2)

    async def main() -> dict[str, float | None]:
        result = await exegraph.run_with_result(graph, options)
        return {t.name: t.start for t in result.steps}

    for _ in range(20):
        starts = trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
        assert (starts["h1"], starts["h2"], starts["waiting"]) == (1.5, 1.5, 2.5)


@_PLAN_PROPERTY
@given(plan_cases(failures=True, rules_after_fail_fast=True))
def test_a_plan_with_failures_and_trigger_rules_under_fail_fast(case: PlanCase) -> None:
    check_plan_equals_run(case)


Starts = dict[str, tuple[exegraph.StepStatus, float | None]]


def _starts_of_plan_and_run(
    graph: Graph, options: RunOptions, fail: list[str]
) -> tuple[Starts, list[Starts]]:
    """The plan's (status, start) of each step, and those of 10 runs under a MockClock."""
    plan = exegraph.plan(graph, options, fail=fail)

    async def main() -> exegraph.RunResult:
        return await exegraph.run_with_result(graph, options)

    planned = {s.name: (s.status, s.start) for s in plan.steps}
    runs = [trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0)) for _ in range(10)]
    return planned, [{t.name: (t.status, t.start) for t in r.steps} for r in runs]


def test_continue_on_error_decides_a_failure_with_the_successes_of_its_instant() -> None:
    # At 1 s 'f' fails and 'c' succeeds. 'r1' and 'r2' (released by the failure) outrank
    # 'w' (ready since 0): decided together, they take the two freed slots. The run used
    # to take 'w' with 'c's completion a round before it told the core 'f' failed.
    graph = Graph(
        [
            Step("f", sleeping(1, fails=True)),
            Step("c", sleeping(1)),
            Step("r1", sleeping(1), depends_on=["f"], trigger_rule=TriggerRule.ONE_FAILED),
            Step("r2", sleeping(1), depends_on=["f"], trigger_rule=TriggerRule.ALL_DONE),
            Step("w", sleeping(1)),
        ]
    )
    options = RunOptions(max_concurrency=2, error_policy=exegraph.ErrorPolicy.CONTINUE_ON_ERROR)
    planned, runs = _starts_of_plan_and_run(graph, options, ["f"])
    assert {name: start for name, (_, start) in planned.items()} == {
        "f": 0.0,
        "c": 0.0,
        "r1": 1.0,
        "r2": 1.0,
        "w": 2.0,
    }
    for run in runs:
        assert run == planned


def test_continue_on_error_frees_a_failed_steps_pool_slots_with_its_instant() -> None:
    # At 1 s 'f' (pool p) fails and 'c' succeeds, releasing 'w' (pool q). 'hi' (p and q,
    # ready since 0) outranks 'w': it takes both pools; 'w' waits for q.
    graph = Graph(
        [
            Step("f", sleeping(1, fails=True), pools=["p"]),
            Step("c", sleeping(1)),
            Step("d", sleeping(1), depends_on=["f"]),
            Step("hi", sleeping(1), pools=["p", "q"]),
            Step("w", sleeping(1), depends_on=["c"], pools=["q"]),
        ]
    )
    options = RunOptions(
        max_concurrency=3,
        error_policy=exegraph.ErrorPolicy.CONTINUE_ON_ERROR,
        pools={"p": 1, "q": 1},
    )
    planned, runs = _starts_of_plan_and_run(graph, options, ["f"])
    assert planned["hi"][1] == 1.0
    assert planned["w"][1] == 2.0
    for run in runs:
        assert run == planned
