"""Rule 5: a step past its deadline fails with `StepTimeoutError`, and the policy applies.

Charter: virtual time only (`autojump_clock`); deadlines and ends are asserted exactly.
"""

from __future__ import annotations

import math

import pytest
import trio

import exegraph_trio as exegraph
from exegraph_trio import ErrorPolicy, Graph, RunOptions, StepStatus
from support import Recorder


async def test_a_step_past_the_runs_deadline_fails_with_step_timeout_error(
    autojump_clock: trio.testing.MockClock,
) -> None:
    rec = Recorder()
    result = await exegraph.run_with_result(
        Graph([rec.step("slow", 10), rec.step("quick", 1)]), RunOptions(step_timeout=3)
    )
    timing = result["slow"]
    assert timing.status is StepStatus.FAILED
    assert (timing.start, timing.end) == (0, 3)
    assert isinstance(timing.error, exegraph.StepTimeoutError)
    assert isinstance(timing.error, TimeoutError)
    assert (timing.error.step_name, timing.error.timeout) == ("slow", 3)
    assert str(timing.error) == "step 'slow' timed out after 3 s"
    assert result["quick"].status is StepStatus.DONE


async def test_a_steps_own_timeout_overrides_the_runs(
    autojump_clock: trio.testing.MockClock,
) -> None:
    rec = Recorder()
    graph = Graph([rec.step("strict", 5, timeout=1), rec.step("lenient", 5, timeout=8)])
    result = await exegraph.run_with_result(
        graph, RunOptions(step_timeout=3, error_policy=ErrorPolicy.CONTINUE_ON_ERROR)
    )
    assert result["strict"].end == 1
    assert result["strict"].status is StepStatus.FAILED
    assert result["lenient"].status is StepStatus.DONE
    assert result["lenient"].end == 5


@pytest.mark.parametrize("no_deadline", [0, math.inf])
async def test_a_step_timeout_of_zero_or_inf_lifts_the_runs_deadline(
    autojump_clock: trio.testing.MockClock, no_deadline: float
) -> None:
    rec = Recorder()
    result = await exegraph.run_with_result(
        Graph([rec.step("long", 100, timeout=no_deadline)]), RunOptions(step_timeout=1)
    )
    assert result.ok
    assert result["long"].duration == 100


@pytest.mark.parametrize("no_deadline", [None, 0])
async def test_a_run_timeout_of_none_or_zero_means_no_deadline(
    autojump_clock: trio.testing.MockClock, no_deadline: float | None
) -> None:
    result = await exegraph.run_with_result(
        Graph([Recorder().step("long", 1000)]), RunOptions(step_timeout=no_deadline)
    )
    assert result.ok


async def test_a_timeout_under_fail_fast_cancels_the_others(
    autojump_clock: trio.testing.MockClock,
) -> None:
    rec = Recorder()
    graph = Graph([rec.step("hang", 100, timeout=2), rec.step("other", 10), rec.step("next", 1)])
    with pytest.RaisesGroup(
        exegraph.StepTimeoutError, pytest.RaisesExc(exegraph.StepSkippedError, match="'next'")
    ):
        await exegraph.run(graph, RunOptions(max_concurrency=2))
    assert trio.current_time() == 2


async def test_a_timeout_under_continue_on_error_skips_dependents_only(
    autojump_clock: trio.testing.MockClock,
) -> None:
    rec = Recorder()
    graph = Graph(
        [rec.step("hang", 100, timeout=2), rec.step("after", depends_on=["hang"]), rec.step("x", 5)]
    )
    result = await exegraph.run_with_result(
        graph, RunOptions(error_policy=ErrorPolicy.CONTINUE_ON_ERROR)
    )
    assert result["after"].status is StepStatus.SKIPPED
    assert result["x"].status is StepStatus.DONE
    assert result.error is not None
    assert [type(e) for e in result.error.exceptions] == [
        exegraph.StepTimeoutError,
        exegraph.StepSkippedError,
    ]


async def test_on_step_done_receives_the_timeout_error(
    autojump_clock: trio.testing.MockClock,
) -> None:
    done: dict[str, BaseException | None] = {}
    await exegraph.run_with_result(
        Graph([Recorder().step("hang", 100, timeout=1)]), RunOptions(on_step_done=done.__setitem__)
    )
    assert isinstance(done["hang"], exegraph.StepTimeoutError)


async def test_an_actions_own_inner_deadline_is_not_a_step_timeout(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def patient() -> None:
        with trio.move_on_after(2):
            await trio.sleep(100)

    result = await exegraph.run_with_result(Graph([exegraph.Step("patient", patient, timeout=5)]))
    assert result["patient"].status is StepStatus.DONE
    assert result["patient"].end == 2


async def test_steps_after_a_timeout_on_the_same_worker_keep_their_own_deadlines(
    autojump_clock: trio.testing.MockClock,
) -> None:
    rec = Recorder()
    graph = Graph(
        [
            rec.step("first", 10, timeout=2),
            rec.step("second", 3, timeout=5),
            rec.step("third", 9, timeout=4),
            rec.step("fourth", 1),
        ]
    )
    result = await exegraph.run_with_result(
        graph, RunOptions(max_concurrency=1, error_policy=ErrorPolicy.CONTINUE_ON_ERROR)
    )
    assert [(t.name, str(t.status), t.start, t.end) for t in result.steps] == [
        ("first", "Failed", 0, 2),
        ("second", "Done", 2, 5),
        ("third", "Failed", 5, 9),
        ("fourth", "Done", 9, 10),
    ]


async def test_an_action_that_swallows_its_deadline_does_not_spoil_the_next_step(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def stubborn() -> None:
        try:
            await trio.sleep(10)
        except trio.Cancelled:  # bad manners, but it happens
            return

    rec = Recorder()
    graph = Graph([exegraph.Step("stubborn", stubborn, timeout=1), rec.step("next", 3)])
    result = await exegraph.run_with_result(graph, RunOptions(max_concurrency=1))
    assert result["stubborn"].status is StepStatus.DONE
    assert result["stubborn"].end == 1
    assert result["next"].status is StepStatus.DONE
    assert (result["next"].start, result["next"].end) == (1, 4)


async def test_a_deadline_is_visible_to_the_action_from_its_first_line(
    autojump_clock: trio.testing.MockClock,
) -> None:
    seen: list[float] = []

    async def look() -> None:
        seen.append(trio.current_effective_deadline() - trio.current_time())

    await exegraph.run(Graph([exegraph.Step("look", look, timeout=7)]))
    assert seen == [7]
