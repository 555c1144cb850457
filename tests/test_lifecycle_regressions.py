"""Regressions found by tests/test_lifecycle_properties.py, each once a failing case.

Each depends on the order Trio runs same-instant tasks in, so it is tried many times.
"""

from __future__ import annotations

import trio
import trio.testing

import exegraph_trio as exegraph
from exegraph_trio import (
    ErrorPolicy,
    Graph,
    Retry,
    RunOptions,
    RunResult,
    Step,
    StepStatus,
    TriggerRule,
)

FAIL_FAST = RunOptions(max_concurrency=2, error_policy=ErrorPolicy.FAIL_FAST)


def _run(graph: Graph, options: RunOptions) -> RunResult:
    clock = trio.testing.MockClock(autojump_threshold=0)
    return trio.run(exegraph.run_with_result, graph, options, clock=clock)


def test_a_step_withdrawn_before_it_began_reports_no_attempt() -> None:
    started: list[str] = []

    def action(name: str, *, fail: bool = False) -> exegraph.Action:
        async def act() -> None:
            started.append(name)
            if fail:
                raise ValueError(name)

        return act

    graph = Graph(
        [Step("a", action("a", fail=True)), Step("b", action("b")), Step("c", action("c"))]
    )
    options = RunOptions(max_concurrency=2, retry=Retry(attempts=1))
    for _ in range(30):
        started.clear()
        result = _run(graph, options)
        assert "c" not in started
        assert result["c"].status is StepStatus.SKIPPED
        assert result["c"].attempts == 0


def test_a_retry_cancelled_before_its_attempt_began_counts_attempts_begun() -> None:
    calls: list[float] = []

    async def flaky() -> None:
        calls.append(trio.current_time())
        raise ValueError("flaky")

    async def bad() -> None:
        await trio.sleep(1)
        raise RuntimeError("bad")

    graph = Graph([Step("flaky", flaky, retry=Retry(attempts=2, delay=1)), Step("bad", bad)])
    for _ in range(30):
        calls.clear()
        result = _run(graph, FAIL_FAST)
        assert result["flaky"].status is StepStatus.CANCELLED
        assert result["flaky"].attempts == len(calls) == 1


def test_fail_fast_starts_no_further_attempt_of_an_all_success_step() -> None:
    calls: list[float] = []

    async def flaky() -> None:
        calls.append(trio.current_time())
        if len(calls) == 1:
            raise ValueError("flaky")

    async def hold() -> None:
        await trio.sleep(2)

    async def bad() -> None:
        await trio.sleep(2)
        raise RuntimeError("bad")

    graph = Graph(
        [
            Step("flaky", flaky, retry=Retry(attempts=2, delay=1)),
            Step("hold", hold),
            Step("bad", bad),
        ]
    )
    for _ in range(30):
        calls.clear()
        result = _run(graph, FAIL_FAST)
        assert result["bad"].status is StepStatus.FAILED
        assert calls == [0.0]
        assert result["flaky"].status is StepStatus.CANCELLED
        assert result["flaky"].attempts == 1


def test_a_trigger_rule_step_handed_out_as_fail_fast_begins_keeps_its_retries() -> None:
    calls: list[float] = []

    async def ok() -> None:
        await trio.sleep(1)

    async def bad() -> None:
        await trio.sleep(1)
        raise RuntimeError("f")

    async def flaky() -> None:
        calls.append(trio.current_time())
        if len(calls) == 1:
            raise ValueError("first attempt")

    retry = Retry(attempts=2, delay=0)
    graph = Graph(
        [
            Step("x", ok),
            Step("f", bad),
            Step("t", flaky, trigger_rule=TriggerRule.ALL_DONE, retry=retry),
        ]
    )
    for _ in range(40):
        calls.clear()
        result = _run(graph, FAIL_FAST)
        assert calls == [1.0, 1.0]
        assert (result["t"].status, result["t"].attempts) == (StepStatus.DONE, 2)
