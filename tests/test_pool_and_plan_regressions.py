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
