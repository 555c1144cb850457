"""Trigger rules (SPEC 2.1): when a step runs, given how its direct dependencies ended.

Charter: virtual time (`autojump_clock`) everywhere and exact start times; each test is
one sentence of section 2.1's "Trigger rules", under the policy it names. Outcomes are read
from `run_with_result`, or from the `RunResult` an instrument's `run_done` receives when the
run propagates `Cancelled` or an interrupt.
"""

from __future__ import annotations

import functools
import inspect
import signal
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterable
from typing import ParamSpec

import attrs
import outcome
import pytest
import trio
import trio.testing

import exegraph_trio as exegraph
from exegraph_trio import ErrorPolicy, Graph, RunOptions, Step, StepStatus, TriggerRule
from support import Recorder

P = ParamSpec("P")

ALL_SUCCESS = TriggerRule.ALL_SUCCESS
ALL_DONE = TriggerRule.ALL_DONE
ONE_FAILED = TriggerRule.ONE_FAILED
FAIL_FAST = RunOptions(error_policy=ErrorPolicy.FAIL_FAST)
CONTINUE = RunOptions(error_policy=ErrorPolicy.CONTINUE_ON_ERROR)

# `run` is typed `-> None`; the spec says it *returns* None when nothing failed, so the
# tests look at what it returns through a wider type.
run_returning: Callable[..., Awaitable[object]] = exegraph.run


class Results(exegraph.Instrument):
    """Keeps the `RunResult` every run reports to `run_done`."""

    def __init__(self) -> None:
        self.results: list[exegraph.RunResult] = []

    def run_done(self, run: exegraph.RunInfo, result: exegraph.RunResult) -> None:
        self.results.append(result)


def ruled(
    rec: Recorder,
    name: str,
    seconds: float = 0.0,
    rule: TriggerRule = ALL_SUCCESS,
    *,
    depends_on: Iterable[str] = (),
    error: BaseException | None = None,
    timeout: float | None = None,
) -> Step:
    """A recorded step (`Recorder.action`) with a trigger rule."""
    return Step(
        name,
        rec.action(name, seconds, error=error),
        depends_on=depends_on,
        timeout=timeout,
        trigger_rule=rule,
    )


def skip_of(step: str) -> Callable[[BaseException], bool]:
    def check(error: BaseException) -> bool:
        return isinstance(error, exegraph.StepSkippedError) and error.step_name == step

    return check


def statuses(result: exegraph.RunResult) -> dict[str, StepStatus]:
    return {t.name: t.status for t in result}


# -- the rules themselves ------------------------------------------------------------------


def test_str_of_each_trigger_rule_is_its_airflow_name() -> None:
    assert [str(rule) for rule in TriggerRule] == ["all_success", "all_done", "one_failed"]


def test_a_step_is_all_success_unless_told_otherwise() -> None:
    rec = Recorder()
    assert rec.step("a").trigger_rule is ALL_SUCCESS
    assert ruled(rec, "b", rule=ONE_FAILED).trigger_rule is ONE_FAILED


def test_a_trigger_rule_that_is_not_a_trigger_rule_is_refused() -> None:
    with pytest.raises(TypeError, match=r"trigger_rule of step 'a' must be an exegraph"):
        Step("a", Recorder().action("a"), trigger_rule="all_done")  # type: ignore[arg-type]


async def test_all_done_runs_once_every_dependency_settled_whatever_its_outcome(
    autojump_clock: trio.testing.MockClock,
) -> None:
    rec = Recorder()
    graph = Graph(
        [
            rec.step("bad", 1, error=ValueError("bad")),
            rec.step("ok", 4),
            ruled(rec, "report", 2, ALL_DONE, depends_on=["bad", "ok"]),
        ]
    )
    result = await exegraph.run_with_result(graph, CONTINUE)
    assert rec.times("start") == {"bad": 0, "ok": 0, "report": 4}
    assert result["report"].status is StepStatus.DONE
    assert result["report"].end == 6


@pytest.mark.parametrize("rule", [ALL_DONE, ONE_FAILED])
async def test_a_step_after_a_handler_that_runs_is_skipped_by_fail_fast_not_by_the_failure(
    autojump_clock: trio.testing.MockClock, rule: TriggerRule
) -> None:
    # Rules look at direct dependencies only: `notify` needs `handler`, which runs and
    # succeeds; `build`'s failure is no failure of a dependency of `notify`'s. Fail-fast
    # skips it (no `failed_dependency`); under continue-on-error it runs. (A review
    # found it named `build`, and its span said `failed_dependency`.)
    rec = Recorder()
    graph = Graph(
        [
            rec.step("build", 1, error=ValueError("build")),
            ruled(rec, "handler", 1, rule, depends_on=["build"]),
            rec.step("notify", 1, depends_on=["handler"]),
        ]
    )
    result = await exegraph.run_with_result(graph, FAIL_FAST)
    assert result["handler"].status is StepStatus.DONE
    assert result["notify"].status is StepStatus.SKIPPED
    assert isinstance(result["notify"].error, exegraph.StepSkippedError)
    assert result["notify"].error.failed_dependency is None
    result = await exegraph.run_with_result(graph, CONTINUE)
    assert result["notify"].status is StepStatus.DONE


async def test_all_done_runs_when_every_dependency_succeeded(
    autojump_clock: trio.testing.MockClock,
) -> None:
    rec = Recorder()
    graph = Graph(
        [rec.step("a", 1), rec.step("b", 3), ruled(rec, "c", 1, ALL_DONE, depends_on=["a", "b"])]
    )
    assert await run_returning(graph) is None
    assert rec.times("start") == {"a": 0, "b": 0, "c": 3}


async def test_an_all_done_step_without_dependencies_runs_at_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    rec = Recorder()
    result = await exegraph.run_with_result(Graph([ruled(rec, "alone", 1, ALL_DONE)]))
    assert rec.times("start") == {"alone": 0}
    assert result["alone"].status is StepStatus.DONE


async def test_one_failed_runs_once_every_dependency_settled_and_one_failed(
    autojump_clock: trio.testing.MockClock,
) -> None:
    rec = Recorder()
    graph = Graph(
        [
            rec.step("bad", 1, error=ValueError("bad")),
            rec.step("ok", 5),
            ruled(rec, "alert", 1, ONE_FAILED, depends_on=["bad", "ok"]),
        ]
    )
    result = await exegraph.run_with_result(graph, CONTINUE)
    assert rec.times("start") == {"bad": 0, "ok": 0, "alert": 5}
    assert result["alert"].status is StepStatus.DONE


async def test_one_failed_counts_a_skipped_dependency_as_not_succeeded(
    autojump_clock: trio.testing.MockClock,
) -> None:
    rec = Recorder()
    graph = Graph(
        [
            rec.step("bad", 2, error=ValueError("bad")),
            rec.step("next", 1, depends_on=["bad"]),
            ruled(rec, "alert", 1, ONE_FAILED, depends_on=["next"]),
        ]
    )
    result = await exegraph.run_with_result(graph, CONTINUE)
    assert statuses(result) == {
        "bad": StepStatus.FAILED,
        "next": StepStatus.SKIPPED,
        "alert": StepStatus.DONE,
    }
    assert rec.times("start") == {"bad": 0, "alert": 2}


async def test_one_failed_is_skipped_without_error_when_nothing_failed(
    autojump_clock: trio.testing.MockClock,
) -> None:
    rec = Recorder()
    graph = Graph(
        [
            rec.step("a", 1),
            rec.step("b", 2),
            ruled(rec, "alert", 1, ONE_FAILED, depends_on=["a", "b"]),
        ]
    )
    result = await exegraph.run_with_result(graph)
    assert result["alert"].status is StepStatus.SKIPPED
    assert result["alert"].error is None
    assert result["alert"].start is None
    assert result.ok
    assert result.error is None
    assert [t.name for t in result] == ["a", "b", "alert"]  # skipped when b settled
    assert "alert" not in rec.times("start")


async def test_a_run_where_nothing_failed_returns_none_though_a_handler_was_skipped(
    autojump_clock: trio.testing.MockClock,
) -> None:
    rec = Recorder()
    graph = Graph([rec.step("a", 1), ruled(rec, "alert", 1, ONE_FAILED, depends_on=["a"])])
    for options in (FAIL_FAST, CONTINUE):
        assert await run_returning(graph, options) is None


async def test_a_one_failed_step_without_dependencies_is_skipped_without_error(
    autojump_clock: trio.testing.MockClock,
) -> None:
    rec = Recorder()
    result = await exegraph.run_with_result(Graph([ruled(rec, "alert", 1, ONE_FAILED)]))
    assert result["alert"].status is StepStatus.SKIPPED
    assert result["alert"].error is None
    assert result.ok
    assert rec.events == []


async def test_what_needs_a_quietly_skipped_handler_is_skipped_quietly_too(
    autojump_clock: trio.testing.MockClock,
) -> None:
    rec = Recorder()
    graph = Graph(
        [
            rec.step("a", 1),
            ruled(rec, "alert", 1, ONE_FAILED, depends_on=["a"]),
            rec.step("after-alert", 1, depends_on=["alert"]),
        ]
    )
    result = await exegraph.run_with_result(graph)
    assert result["after-alert"].status is StepStatus.SKIPPED
    assert result["after-alert"].error is None
    assert result.ok
    assert await run_returning(graph) is None


def needing_a_failure_and_a_quiet_skip(rec: Recorder, fails_at: float) -> Graph:
    """`deploy` needs `migrate` (fails at `fails_at`) and `rollback-build`, a handler of
    `build` skipped quietly at 2; `page` handles `deploy`'s failure."""
    return Graph(
        [
            rec.step("migrate", fails_at, error=ValueError("migrate failed")),
            rec.step("build", 2),
            ruled(rec, "rollback-build", 1, ONE_FAILED, depends_on=["build"]),
            rec.step("deploy", 1, depends_on=["migrate", "rollback-build"]),
            ruled(rec, "page", 1, ONE_FAILED, depends_on=["deploy"]),
        ]
    )


@pytest.mark.parametrize("options", [CONTINUE, FAIL_FAST], ids=["continue", "fail-fast"])
@pytest.mark.parametrize("fails_at", [1, 3], ids=["failure-first", "quiet-skip-first"])
async def test_a_step_needing_a_failed_step_and_a_quietly_skipped_one_is_skipped_for_the_failure(
    autojump_clock: trio.testing.MockClock, fails_at: float, options: RunOptions
) -> None:
    # It was skipped by whichever reached it first: after the quiet skip, quietly, out
    # of the `RunError`, and its own on-failure handler never ran.
    rec = Recorder()
    graph = needing_a_failure_and_a_quiet_skip(rec, fails_at)
    result = await exegraph.run_with_result(graph, options)
    deploy = result["deploy"]
    assert deploy.status is StepStatus.SKIPPED
    assert isinstance(deploy.error, exegraph.StepSkippedError)
    assert deploy.error.failed_dependency == "migrate"
    assert result.error is not None
    assert deploy.error in result.error.exceptions
    assert result["page"].status is StepStatus.DONE
    assert rec.times("start")["page"] == fails_at  # (as `deploy` is skipped: at the failure)
    planned = exegraph.plan(
        graph,
        attrs.evolve(options, durations={"migrate": fails_at, "build": 2, "page": 1}),
        fail=["migrate"],
    )
    assert {t.name: (t.status, t.start) for t in planned.steps} == {
        t.name: (t.status, t.start) for t in result.steps
    }


async def run_beside_a_quiet_skip_and_a_resource(
    rec: Recorder, *steps: Step
) -> tuple[exegraph.RunResult, list[float]]:
    """Run `steps` after `build` (1 s), `rollback` (its handler, skipped quietly at 1), a
    resource `db` and `long` (10 s), continuing on errors; the result, when `db` went."""
    teardowns: list[float] = []

    async def db() -> AsyncIterator[str]:
        yield "connection"
        teardowns.append(trio.current_time())

    graph = Graph(
        [
            rec.step("build", 1),
            ruled(rec, "rollback", 1, ONE_FAILED, depends_on=["build"]),
            Step("db", db),
            rec.step("long", 10),
            *steps,
        ]
    )
    return await exegraph.run_with_result(graph, CONTINUE), teardowns


async def test_a_step_doomed_by_a_quiet_skip_holds_no_resource_while_it_waits(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # `deploy` waits for `long` to know why it is skipped (a failure may come), but it
    # will never run: `db` is torn down when `rollback` is skipped, not when `long` ends.
    rec = Recorder()
    result, teardowns = await run_beside_a_quiet_skip_and_a_resource(
        rec,
        rec.step("deploy", 1, depends_on=["rollback", "db", "long"]),
        ruled(rec, "report", 1, ALL_DONE, depends_on=["deploy"]),
    )
    assert teardowns == [1]
    assert result["deploy"].status is StepStatus.SKIPPED
    assert result["deploy"].error is None  # (nothing failed)
    assert rec.times("start")["report"] == 10  # (it waits for `deploy` to settle)
    assert result.ok


async def test_a_step_needing_a_doomed_step_holds_no_resource_while_it_waits_either(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # `smoke` needs `deploy`, doomed at 1 (it waits for `long`): `smoke` will never run
    # either, and `db` goes at 1, not when `long` ends.
    rec = Recorder()
    result, teardowns = await run_beside_a_quiet_skip_and_a_resource(
        rec,
        rec.step("deploy", 1, depends_on=["rollback", "long"]),
        rec.step("smoke", 1, depends_on=["deploy", "db"]),
    )
    assert teardowns == [1]
    assert result["smoke"].status is StepStatus.SKIPPED
    assert result.ok


async def test_a_step_skipped_because_of_a_failure_is_a_skipped_error_in_the_run_error(
    autojump_clock: trio.testing.MockClock,
) -> None:
    rec = Recorder()
    boom = ValueError("boom")
    graph = Graph(
        [
            rec.step("bad", 1, error=boom),
            rec.step("next", 1, depends_on=["bad"]),
            ruled(rec, "alert", 1, ONE_FAILED, depends_on=["bad"]),
        ]
    )
    with pytest.RaisesGroup(
        pytest.RaisesExc(ValueError, check=lambda e: e is boom),
        pytest.RaisesExc(exegraph.StepSkippedError, check=skip_of("next")),
    ) as info:
        await exegraph.run(graph, CONTINUE)
    assert isinstance(info.value, exegraph.RunError)
    assert rec.times("start") == {"bad": 0, "alert": 1}


async def test_rules_look_at_direct_dependencies_only(
    autojump_clock: trio.testing.MockClock,
) -> None:
    rec = Recorder()
    graph = Graph(
        [
            rec.step("bad", 1, error=ValueError("bad")),
            ruled(rec, "cleanup", 2, ALL_DONE, depends_on=["bad"]),
            rec.step("after-cleanup", 1, depends_on=["cleanup"]),
        ]
    )
    result = await exegraph.run_with_result(graph, CONTINUE)
    assert rec.times("start") == {"bad": 0, "cleanup": 1, "after-cleanup": 3}
    assert statuses(result) == {
        "bad": StepStatus.FAILED,
        "cleanup": StepStatus.DONE,
        "after-cleanup": StepStatus.DONE,
    }
    assert result.error is not None
    assert len(result.error.exceptions) == 1


async def test_one_failed_ignores_a_failure_further_upstream(
    autojump_clock: trio.testing.MockClock,
) -> None:
    rec = Recorder()
    graph = Graph(
        [
            rec.step("bad", 1, error=ValueError("bad")),
            ruled(rec, "cleanup", 2, ALL_DONE, depends_on=["bad"]),
            ruled(rec, "alert", 1, ONE_FAILED, depends_on=["cleanup"]),
        ]
    )
    result = await exegraph.run_with_result(graph, CONTINUE)
    assert result["alert"].status is StepStatus.SKIPPED
    assert result["alert"].error is None
    assert "alert" not in rec.times("start")


# -- under continue-on-error ---------------------------------------------------------------


async def test_continue_on_error_runs_handlers_beside_the_unaffected_branches(
    autojump_clock: trio.testing.MockClock,
) -> None:
    rec = Recorder()
    graph = Graph(
        [
            rec.step("bad", 1, error=ValueError("bad")),
            rec.step("slow", 10),
            rec.step("after-slow", 1, depends_on=["slow"]),
            ruled(rec, "alert", 3, ONE_FAILED, depends_on=["bad"]),
            ruled(rec, "report", 1, ALL_DONE, depends_on=["alert", "after-slow"]),
        ]
    )
    result = await exegraph.run_with_result(graph, CONTINUE)
    assert rec.times("start") == {"bad": 0, "slow": 0, "alert": 1, "after-slow": 10, "report": 11}
    assert statuses(result)["report"] is StepStatus.DONE
    assert result.total_duration == 12


async def test_continue_on_error_a_failing_handler_joins_the_run_error(
    autojump_clock: trio.testing.MockClock,
) -> None:
    rec = Recorder()
    bad, worse = ValueError("bad"), OSError("alert failed")
    graph = Graph(
        [
            rec.step("bad", 1, error=bad),
            ruled(rec, "alert", 1, ONE_FAILED, depends_on=["bad"], error=worse),
        ]
    )
    with pytest.RaisesGroup(
        pytest.RaisesExc(ValueError, check=lambda e: e is bad),
        pytest.RaisesExc(OSError, check=lambda e: e is worse),
    ):
        await exegraph.run(graph, CONTINUE)
    assert worse.__notes__ == ["exegraph: raised by step 'alert'"]


# -- under fail-fast -----------------------------------------------------------------------


def fail_fast_graph(rec: Recorder) -> list[Step]:
    """`bad` fails at 2 while `slow` runs; `late` (after `slow`) and `next` never run."""
    return [
        rec.step("bad", 2, error=ValueError("bad")),
        rec.step("slow", 10),
        rec.step("late", 1, depends_on=["slow"]),
        rec.step("next", 1, depends_on=["bad"]),
    ]


async def test_fail_fast_runs_all_done_steps_after_the_failure_cancelled_the_rest(
    autojump_clock: trio.testing.MockClock,
) -> None:
    rec = Recorder()
    graph = Graph(
        [*fail_fast_graph(rec), ruled(rec, "cleanup", 3, ALL_DONE, depends_on=["bad", "slow"])]
    )
    result = await exegraph.run_with_result(graph, FAIL_FAST)
    assert rec.times("start") == {"bad": 0, "slow": 0, "cleanup": 2}
    assert statuses(result) == {
        "bad": StepStatus.FAILED,
        "slow": StepStatus.CANCELLED,
        "late": StepStatus.SKIPPED,
        "next": StepStatus.SKIPPED,
        "cleanup": StepStatus.DONE,
    }
    assert result["cleanup"].end == 5
    assert trio.current_time() == 5


async def test_fail_fast_counts_steps_that_will_never_run_as_settled(
    autojump_clock: trio.testing.MockClock,
) -> None:
    rec = Recorder()
    graph = Graph(
        [
            *fail_fast_graph(rec),
            ruled(rec, "cleanup", 1, ALL_DONE, depends_on=["late", "next"]),
            ruled(rec, "alert", 1, ONE_FAILED, depends_on=["late"]),
        ]
    )
    result = await exegraph.run_with_result(graph, FAIL_FAST)
    assert rec.times("start") == {"bad": 0, "slow": 0, "cleanup": 2, "alert": 2}
    assert result["cleanup"].status is StepStatus.DONE
    assert result["alert"].status is StepStatus.DONE


async def test_fail_fast_counts_a_ready_step_that_never_got_a_slot_as_settled(
    autojump_clock: trio.testing.MockClock,
) -> None:
    rec = Recorder()
    graph = Graph(
        [
            rec.step("bad", 1, error=ValueError("bad")),
            rec.step("next", 1, depends_on=["bad"]),
            rec.step("queued", 1),  # as high a priority as bad, added later: waits
            ruled(rec, "cleanup", 1, ALL_DONE, depends_on=["queued"]),
        ]
    )
    result = await exegraph.run_with_result(
        graph, RunOptions(max_concurrency=1, error_policy=ErrorPolicy.FAIL_FAST)
    )
    assert rec.times("start") == {"bad": 0, "cleanup": 1}
    assert result["queued"].status is StepStatus.SKIPPED
    assert result["cleanup"].status is StepStatus.DONE


async def test_fail_fast_starts_no_all_success_step_after_the_failure(
    autojump_clock: trio.testing.MockClock,
) -> None:
    rec = Recorder()
    graph = Graph(
        [
            *fail_fast_graph(rec),
            ruled(rec, "cleanup", 1, ALL_DONE, depends_on=["bad"]),
            rec.step("after-cleanup", 1, depends_on=["cleanup"]),
        ]
    )
    result = await exegraph.run_with_result(graph, FAIL_FAST)
    assert rec.times("start") == {"bad": 0, "slow": 0, "cleanup": 2}
    assert result["cleanup"].status is StepStatus.DONE
    assert result["after-cleanup"].status is StepStatus.SKIPPED
    assert result.error is not None
    assert "after-cleanup" in {e.step_name for e in result.error.skipped}


async def test_fail_fast_a_one_failed_step_sees_a_cancelled_dependency_as_not_succeeded(
    autojump_clock: trio.testing.MockClock,
) -> None:
    rec = Recorder()
    graph = Graph([*fail_fast_graph(rec), ruled(rec, "alert", 1, ONE_FAILED, depends_on=["slow"])])
    result = await exegraph.run_with_result(graph, FAIL_FAST)
    assert rec.times("start") == {"bad": 0, "slow": 0, "alert": 2}
    assert result["alert"].status is StepStatus.DONE


async def test_fail_fast_trigger_rule_steps_run_outside_the_cancelled_scope(
    autojump_clock: trio.testing.MockClock,
) -> None:
    seen: list[tuple[float, bool]] = []

    async def cleanup() -> None:
        await trio.sleep(4)  # would raise Cancelled at once inside the cancelled nursery
        seen.append((trio.current_time(), trio.current_effective_deadline() == float("inf")))

    rec = Recorder()
    graph = Graph(
        [*fail_fast_graph(rec), Step("cleanup", cleanup, depends_on=["bad"], trigger_rule=ALL_DONE)]
    )
    result = await exegraph.run_with_result(graph, FAIL_FAST)
    assert seen == [(6, True)]
    assert result["cleanup"].status is StepStatus.DONE
    assert (result["cleanup"].start, result["cleanup"].end) == (2, 6)


async def test_fail_fast_a_trigger_rule_step_keeps_its_own_deadline(
    autojump_clock: trio.testing.MockClock,
) -> None:
    rec = Recorder()
    graph = Graph(
        [*fail_fast_graph(rec), ruled(rec, "cleanup", 5, ALL_DONE, depends_on=["bad"], timeout=1.5)]
    )
    result = await exegraph.run_with_result(graph, FAIL_FAST)
    timing = result["cleanup"]
    assert timing.status is StepStatus.FAILED
    assert isinstance(timing.error, exegraph.StepTimeoutError)
    assert (timing.start, timing.end) == (2, 3.5)
    assert result.error is not None
    assert timing.error in result.error.failures


async def test_fail_fast_a_trigger_rule_step_keeps_the_runs_step_timeout(
    autojump_clock: trio.testing.MockClock,
) -> None:
    rec = Recorder()
    graph = Graph(
        [
            rec.step("bad", 2, error=ValueError("bad")),
            ruled(rec, "cleanup", 5, ALL_DONE, depends_on=["bad"]),
        ]
    )
    result = await exegraph.run_with_result(
        graph, RunOptions(error_policy=ErrorPolicy.FAIL_FAST, step_timeout=2.5)
    )
    assert isinstance(result["cleanup"].error, exegraph.StepTimeoutError)
    assert result["cleanup"].end == 4.5


async def test_fail_fast_failures_of_trigger_rule_steps_join_the_run_error(
    autojump_clock: trio.testing.MockClock,
) -> None:
    rec = Recorder()
    bad, alert_failed = ValueError("bad"), OSError("pager down")
    graph = Graph(
        [
            rec.step("bad", 2, error=bad),
            rec.step("next", 1, depends_on=["bad"]),
            ruled(rec, "alert", 1, ONE_FAILED, depends_on=["bad"], error=alert_failed),
        ]
    )
    with pytest.RaisesGroup(
        pytest.RaisesExc(ValueError, check=lambda e: e is bad),
        pytest.RaisesExc(exegraph.StepSkippedError, check=skip_of("next")),
        pytest.RaisesExc(OSError, check=lambda e: e is alert_failed),
    ) as info:
        await exegraph.run(graph, FAIL_FAST)
    assert str(info.value).startswith("2 of 3 steps failed, 1 skipped")
    assert rec.times("error") == {"bad": 2, "alert": 3}


async def test_fail_fast_a_failing_trigger_rule_step_cancels_nothing_more(
    autojump_clock: trio.testing.MockClock,
) -> None:
    rec = Recorder()
    graph = Graph(
        [
            rec.step("bad", 1, error=ValueError("bad")),
            ruled(rec, "alert", 1, ONE_FAILED, depends_on=["bad"], error=OSError("alert")),
            ruled(rec, "report", 3, ALL_DONE, depends_on=["bad"]),
            ruled(rec, "summary", 1, ALL_DONE, depends_on=["alert", "report"]),
        ]
    )
    result = await exegraph.run_with_result(graph, FAIL_FAST)
    assert rec.times("start") == {"bad": 0, "alert": 1, "report": 1, "summary": 4}
    assert statuses(result) == {
        "bad": StepStatus.FAILED,
        "alert": StepStatus.FAILED,
        "report": StepStatus.DONE,
        "summary": StepStatus.DONE,
    }


async def test_fail_fast_cancels_a_trigger_rule_step_already_in_flight(
    autojump_clock: trio.testing.MockClock,
) -> None:
    rec = Recorder()
    graph = Graph([rec.step("bad", 1, error=ValueError("bad")), ruled(rec, "watch", 5, ALL_DONE)])
    result = await exegraph.run_with_result(graph, FAIL_FAST)
    assert result["watch"].status is StepStatus.CANCELLED
    assert result["watch"].end == 1


async def test_fail_fast_a_trigger_rule_step_released_at_the_instant_of_the_failure_runs(
    autojump_clock: trio.testing.MockClock,
) -> None:
    rec = Recorder()
    graph = Graph(
        [
            rec.step("ok", 2),
            rec.step("bad", 2, error=ValueError("bad")),
            ruled(rec, "cleanup", 1, ALL_DONE, depends_on=["ok"]),
            ruled(rec, "alert", 1, ONE_FAILED, depends_on=["bad"]),
        ]
    )
    result = await exegraph.run_with_result(graph, FAIL_FAST)
    assert rec.times("start") == {"ok": 0, "bad": 0, "cleanup": 2, "alert": 2}
    assert result["cleanup"].status is StepStatus.DONE
    assert result["alert"].status is StepStatus.DONE


async def test_fail_fast_a_trigger_rule_step_waits_for_a_dependency_that_outlives_the_cancel(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def stubborn() -> None:
        with trio.CancelScope(shield=True):
            await trio.sleep(10)

    rec = Recorder()
    graph = Graph(
        [
            rec.step("bad", 2, error=ValueError("bad")),
            Step("stubborn", stubborn),
            ruled(rec, "cleanup", 1, ALL_DONE, depends_on=["stubborn"]),
        ]
    )
    result = await exegraph.run_with_result(graph, FAIL_FAST)
    assert rec.times("start") == {"bad": 0, "cleanup": 10}
    assert result["cleanup"].status is StepStatus.DONE


async def test_fail_fast_trigger_rule_steps_still_respect_the_concurrency_bound(
    autojump_clock: trio.testing.MockClock,
) -> None:
    rec = Recorder()
    graph = Graph(
        [
            rec.step("bad", 1, error=ValueError("bad")),
            ruled(rec, "first", 2, ALL_DONE, depends_on=["bad"]),
            ruled(rec, "second", 2, ONE_FAILED, depends_on=["bad"]),
        ]
    )
    await exegraph.run_with_result(
        graph, RunOptions(max_concurrency=1, error_policy=ErrorPolicy.FAIL_FAST)
    )
    assert rec.times("start") == {"bad": 0, "first": 1, "second": 3}
    assert rec.max_running == 1


async def test_fail_fast_a_handler_is_still_retried_after_the_failure(
    autojump_clock: trio.testing.MockClock,
) -> None:
    calls: list[float] = []

    async def flaky_alert() -> None:
        calls.append(trio.current_time())
        if len(calls) < 2:
            raise OSError("pager busy")

    rec = Recorder()
    graph = Graph(
        [
            rec.step("bad", 1, error=ValueError("bad")),
            Step(
                "alert",
                flaky_alert,
                depends_on=["bad"],
                trigger_rule=ONE_FAILED,
                retry=exegraph.Retry(attempts=2, delay=0.5),
            ),
        ]
    )
    result = await exegraph.run_with_result(graph, FAIL_FAST)
    assert calls == [1, 1.5]
    assert result["alert"].status is StepStatus.DONE
    assert result["alert"].attempts == 2


# -- cancelled from outside, interrupted -------------------------------------------------


@pytest.mark.parametrize("policy", list(ErrorPolicy))
async def test_trigger_rule_steps_do_not_run_after_an_outside_cancellation(
    autojump_clock: trio.testing.MockClock, policy: ErrorPolicy
) -> None:
    rec = Recorder()
    results = Results()
    graph = Graph(
        [
            rec.step("a", 1),
            rec.step("b", 5),
            ruled(rec, "cleanup", 1, ALL_DONE, depends_on=["a", "b"]),
            ruled(rec, "alert", 1, ONE_FAILED, depends_on=["b"]),
        ]
    )
    with trio.move_on_after(3) as scope:
        await exegraph.run(graph, RunOptions(error_policy=policy, instruments=[results]))
    assert scope.cancelled_caught
    (result,) = results.results
    assert statuses(result) == {
        "a": StepStatus.DONE,
        "b": StepStatus.CANCELLED,
        "cleanup": StepStatus.SKIPPED,
        "alert": StepStatus.SKIPPED,
    }
    assert rec.times("start") == {"a": 0, "b": 0}


async def test_an_outside_cancellation_after_fail_fast_cancels_handlers_and_skips_the_rest(
    autojump_clock: trio.testing.MockClock,
) -> None:
    rec = Recorder()
    results = Results()
    graph = Graph(
        [
            rec.step("bad", 1, error=ValueError("bad")),
            ruled(rec, "alert", 10, ONE_FAILED, depends_on=["bad"]),
            ruled(rec, "report", 1, ALL_DONE, depends_on=["alert"]),
        ]
    )
    with trio.move_on_after(3) as scope:
        await exegraph.run(graph, RunOptions(instruments=[results]))
    assert scope.cancelled_caught
    (result,) = results.results
    assert statuses(result) == {
        "bad": StepStatus.FAILED,
        "alert": StepStatus.CANCELLED,
        "report": StepStatus.SKIPPED,
    }
    assert result["alert"].end == 3
    assert rec.times("start") == {"bad": 0, "alert": 1}


async def ctrl_c() -> None:
    await trio.sleep(1)
    signal.raise_signal(signal.SIGINT)  # delivered by Trio's own handler
    await trio.sleep(1)  # not reached: the interrupt lands in this task or the run's


@pytest.mark.parametrize("policy", list(ErrorPolicy))
@pytest.mark.parametrize("how", ["raised", "sigint"])
async def test_trigger_rule_steps_do_not_run_after_an_interrupt(
    autojump_clock: trio.testing.MockClock, policy: ErrorPolicy, how: str
) -> None:
    rec = Recorder()
    results = Results()
    stop = (
        rec.step("stop", 1, error=KeyboardInterrupt()) if how == "raised" else Step("stop", ctrl_c)
    )
    graph = Graph(
        [
            stop,
            rec.step("b", 5),
            ruled(rec, "cleanup", 1, ALL_DONE, depends_on=["stop", "b"]),
            ruled(rec, "alert", 1, ONE_FAILED, depends_on=["stop"]),
        ]
    )
    with pytest.raises(KeyboardInterrupt):
        await exegraph.run(graph, RunOptions(error_policy=policy, instruments=[results]))
    (result,) = results.results
    assert result["cleanup"].status is StepStatus.SKIPPED
    assert result["alert"].status is StepStatus.SKIPPED
    assert result["b"].status is StepStatus.CANCELLED
    assert "cleanup" not in rec.times("start")
    assert "alert" not in rec.times("start")
    assert trio.current_time() == 1


async def test_an_interrupt_in_a_handler_after_fail_fast_skips_the_remaining_handlers(
    autojump_clock: trio.testing.MockClock,
) -> None:
    rec = Recorder()
    results = Results()
    interrupt = KeyboardInterrupt()
    graph = Graph(
        [
            rec.step("bad", 1, error=ValueError("bad")),
            ruled(rec, "alert", 1, ONE_FAILED, depends_on=["bad"], error=interrupt),
            ruled(rec, "report", 5, ALL_DONE, depends_on=["bad"]),
            ruled(rec, "summary", 1, ALL_DONE, depends_on=["alert"]),
        ]
    )
    with pytest.raises(KeyboardInterrupt) as info:
        await exegraph.run(graph, RunOptions(instruments=[results]))
    assert info.value is interrupt
    (result,) = results.results
    assert statuses(result)["report"] is StepStatus.CANCELLED
    assert statuses(result)["summary"] is StepStatus.SKIPPED
    assert rec.times("start") == {"bad": 0, "alert": 1, "report": 1}
    assert trio.current_time() == 2


async def test_an_on_failure_handler_after_a_quietly_skipped_handler_is_skipped_quietly(
    autojump_clock: trio.testing.MockClock,
) -> None:
    rec = Recorder()
    graph = Graph(
        [
            rec.step("a", 1),
            ruled(rec, "alert", 1, ONE_FAILED, depends_on=["a"]),
            ruled(rec, "escalate", 1, ONE_FAILED, depends_on=["alert"]),
        ]
    )
    result = await exegraph.run_with_result(graph)
    assert result.ok
    assert result["alert"].status is StepStatus.SKIPPED
    assert result["escalate"].status is StepStatus.SKIPPED  # nothing failed anywhere
    assert result["escalate"].error is None
    assert rec.times("start") == {"a": 0}


async def test_fail_fast_cancels_a_handler_waiting_for_a_slot_to_retry_counting_one_attempt(
    autojump_clock: trio.testing.MockClock,
) -> None:
    calls: list[float] = []

    async def flaky() -> None:
        calls.append(trio.current_time())
        raise OSError("flaky")

    rec = Recorder()
    graph = Graph(
        [
            Step("flaky", flaky, trigger_rule=ALL_DONE, retry=exegraph.Retry(attempts=2, delay=1)),
            rec.step("bad", 2, error=ValueError("bad")),
        ]
    )
    # flaky fails at 0 and waits 1 s; at 1 it waits for the only slot, which bad holds
    # until it fails at 2: fail-fast stops the run during flaky's wait.
    result = await exegraph.run_with_result(graph, RunOptions(max_concurrency=1))
    assert calls == [0]
    assert result["flaky"].status is StepStatus.CANCELLED
    assert result["flaky"].attempts == 1


# -- a guard on every test ---------------------------------------------------------------
# A `trio.Cancelled` escaping a test is swallowed by pytest-trio (its fixture nursery
# cancels its own scope on the way out, which absorbs it): the test would pass with its
# remaining asserts skipped. A run that leaks one must fail the test instead.


def _fail_on_stray_cancelled(
    test: Callable[P, Coroutine[object, object, None]],
) -> Callable[P, Coroutine[object, object, None]]:
    @functools.wraps(test)
    async def guarded(*args: P.args, **kwargs: P.kwargs) -> None:
        try:
            await test(*args, **kwargs)
        except trio.Cancelled as exc:
            raise AssertionError(
                "a trio.Cancelled escaped the test: no scope of the test was cancelled"
            ) from exc

    return guarded


for _name, _test in list(globals().items()):
    if _name.startswith("test_") and inspect.iscoroutinefunction(_test):
        globals()[_name] = _fail_on_stray_cancelled(_test)


@pytest.mark.parametrize("upstream", ["failed", "skipped"])
async def test_a_step_raising_another_steps_error_fails_with_it_and_the_run_error_holds_it_once(
    autojump_clock: trio.testing.MockClock, upstream: str
) -> None:
    # An ALL_DONE step unwrapping its `outcome.Error` input raises the same exception
    # object as the step it came from: it fails with that error, and the RunError (and
    # its message) counts each exception once.
    async def build() -> None:
        raise ValueError("build broke")

    async def test(image: object) -> str:
        return "tested"

    async def summary(results: outcome.Outcome[object]) -> object:
        return results.unwrap()

    source = "build" if upstream == "failed" else "test"
    graph = Graph(
        [
            Step("build", build),
            Step("test", test, inputs={"image": "build"}),
            Step("summary", summary, inputs={"results": source}, trigger_rule=ALL_DONE),
        ]
    )
    result = await exegraph.run_with_result(graph, CONTINUE)
    assert result["summary"].status is StepStatus.FAILED
    assert result["summary"].error is result[source].error
    assert result.error is not None
    assert len({id(e) for e in result.error.exceptions}) == len(result.error.exceptions) == 2
    assert result.error.message == "2 of 3 steps failed, 1 skipped"
