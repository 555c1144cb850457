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


# Found by a fresh-eyes review: a fail-fast failure was told to the core as soon as its
# task ran, so what else ended at that instant depended on Trio's order of the tasks.


async def _ends_at_1() -> None:
    await trio.sleep(1)


async def _fails_at_1() -> None:
    await trio.sleep(1)
    raise ValueError("boom")


def test_an_attempt_failing_at_the_instant_fail_fast_decides_waits_to_retry_then_is_cancelled() -> (
    None
):
    graph = Graph(
        [Step("flaky", _fails_at_1, retry=Retry(attempts=3, delay=1)), Step("boom", _fails_at_1)]
    )
    for _ in range(40):
        result = _run(graph, FAIL_FAST)
        flaky_timing = result["flaky"]
        assert (flaky_timing.status, flaky_timing.attempts) == (StepStatus.CANCELLED, 1)
        assert result.error is not None
        assert list(result.error.exceptions) == [result["boom"].error]


def test_a_retry_without_delay_competes_for_its_slot_at_once() -> None:
    attempts: list[float] = []

    async def a() -> None:
        attempts.append(trio.current_time())
        await trio.sleep(1)
        if len(attempts) == 1:
            raise ValueError("transient")

    graph = Graph(
        [
            Step("a", a, retry=Retry(attempts=2, delay=0)),
            Step("b", _ends_at_1),
            Step("c", _ends_at_1),
        ]
    )
    for _ in range(40):
        attempts.clear()
        result = _run(graph, RunOptions(max_concurrency=1))
        assert attempts == [0.0, 1.0]  # "a" was added first: it keeps the slot
        assert [(t.name, t.start, t.end) for t in result.steps] == [
            ("a", 0.0, 2.0),
            ("b", 2.0, 3.0),
            ("c", 3.0, 4.0),
        ]


def test_a_success_at_the_instant_of_a_failure_counts_as_done_before_it() -> None:
    graph = Graph(
        [
            Step("fail", _fails_at_1),
            Step("ok", _ends_at_1),
            Step("on_fail", _ends_at_1, depends_on=["ok"], trigger_rule=TriggerRule.ONE_FAILED),
            Step("after", _ends_at_1, depends_on=["on_fail"]),
        ]
    )
    for _ in range(40):
        result = _run(graph, FAIL_FAST)
        statuses = {t.name: (t.status, t.error) for t in result.steps}
        assert statuses == {
            "fail": (StepStatus.FAILED, statuses["fail"][1]),
            "ok": (StepStatus.DONE, None),
            "on_fail": (StepStatus.SKIPPED, None),  # nothing it needs failed: quietly
            "after": (StepStatus.SKIPPED, None),
        }
        assert result.error is not None
        assert [type(e) for e in result.error.exceptions] == [ValueError]


def test_failures_of_one_instant_each_name_the_steps_downstream_of_them() -> None:
    graph = Graph(
        [
            Step("f1", _fails_at_1),
            Step("f2", _fails_at_1),
            Step("x", _ends_at_1, depends_on=["f2"]),
            Step("y", _ends_at_1, depends_on=["f1"]),
            Step("z", _ends_at_1),
        ]
    )
    for _ in range(40):
        result = _run(graph, FAIL_FAST)
        skipped = {
            t.name: t.error.failed_dependency
            for t in result.steps
            if isinstance(t.error, exegraph.StepSkippedError)
        }
        assert skipped == {"x": "f2", "y": "f1", "z": None}
        assert [t.name for t in result.steps][2:] == ["x", "y", "z"]


def test_a_step_withdrawn_while_fail_fast_decides_skips_what_follows_naming_the_failure() -> None:
    graph = Graph(
        [
            Step("fail", _fails_at_1),
            Step("ok", _ends_at_1),
            Step("mid", _ends_at_1, depends_on=["ok"]),  # handed out at t=1, then withdrawn
            Step("after", _ends_at_1, depends_on=["fail", "mid"]),
        ]
    )
    for _ in range(40):
        result = _run(graph, RunOptions(max_concurrency=4))
        error = result["after"].error
        assert isinstance(error, exegraph.StepSkippedError)
        assert error.failed_dependency == "fail"
        assert result["mid"].status is StepStatus.SKIPPED


def test_a_retry_cancelled_while_fail_fast_decides_skips_what_follows_naming_the_failure() -> None:
    graph = Graph(
        [
            Step("fail", _fails_at_1),
            Step("flaky", _fails_at_1, retry=Retry(attempts=3, delay=0)),
            Step("after", _ends_at_1, depends_on=["fail", "flaky"]),
        ]
    )
    for _ in range(40):
        result = _run(graph, RunOptions(max_concurrency=4))
        assert result["flaky"].status is StepStatus.CANCELLED
        error = result["after"].error
        assert isinstance(error, exegraph.StepSkippedError)
        assert error.failed_dependency == "fail"


def test_continue_on_error_a_skip_after_failures_of_one_instant_names_the_first_in_the_graph() -> (
    None
):
    graph = Graph(
        [
            Step("f1", _fails_at_1),
            Step("f2", _fails_at_1),
            Step("after", _ends_at_1, depends_on=["f2", "f1"]),
        ]
    )
    options = RunOptions(error_policy=ErrorPolicy.CONTINUE_ON_ERROR)
    for _ in range(40):
        result = _run(graph, options)
        error = result["after"].error
        assert isinstance(error, exegraph.StepSkippedError)
        assert error.failed_dependency == "f1"


def test_a_retry_that_waits_out_a_delay_holds_back_no_decision_of_its_own_round() -> None:
    # Found by a review's fuzzer. `eager` fails at once and is retried at once; `late`
    # fails in the round of `eager`'s second failure and waits a second before its retry.
    # Once, a completion of that round waited for the round's end when `late`'s failure
    # came first in Trio's order (a step waiting to retry might be ready again), and
    # decided at once when it came second: `last` began a round later or not, and
    # `eager`'s final failure found it in flight (cancelled) or not begun (skipped), in
    # about half of the runs each. `late` cannot be ready again in the round it began
    # waiting in (`Core.new_waits`): `last` is always in flight.
    attempts: dict[str, int] = {}

    def failing(name: str, *, first_only: bool, checkpoint: bool) -> exegraph.Action:
        async def act() -> None:
            attempts[name] = attempts.get(name, 0) + 1
            if checkpoint:
                await trio.lowlevel.checkpoint()
            if attempts[name] == 1 or not first_only:
                raise ValueError(name)

        return act

    async def slow() -> None:
        await trio.sleep(1)
        raise ValueError("slow")

    graph = Graph(
        [
            Step("slow", slow),
            Step(
                "eager",
                failing("eager", first_only=False, checkpoint=False),
                retry=Retry(attempts=3, delay=0),
            ),
            Step(
                "late",
                failing("late", first_only=True, checkpoint=True),
                retry=Retry(attempts=2, delay=1),
            ),
            Step(
                "last",
                failing("last", first_only=True, checkpoint=True),
                retry=Retry(attempts=2, delay=0),
            ),
        ]
    )
    options = RunOptions(max_concurrency=3, error_policy=ErrorPolicy.FAIL_FAST)
    for _ in range(40):
        attempts.clear()
        result = _run(graph, options)
        assert result["eager"].status is StepStatus.FAILED
        assert result["eager"].attempts == 3
        assert result["last"].status is StepStatus.CANCELLED
        assert result["last"].attempts == 1
        assert result["late"].status is StepStatus.CANCELLED
