"""Section 2.1, retries: `Retry`, `Step(retry=)`, `RunOptions(retry=)`.

A failed attempt is tried again after `min(max_delay, delay * backoff ** (k - 1))`
seconds (shortened by at most `jitter` of itself), only for exceptions in `on`, each
attempt under the step's whole timeout; the wait holds no slot, and a failed attempt that
will be retried fails nothing. Hooks see a step once; instruments see every attempt.

Charter: virtual time only (`autojump_clock`); every attempt's start is read with
`trio.current_time()` and asserted with `==` (jitter, being random, is asserted by its
bounds over many waits).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

import pytest
import trio
import trio.testing

import exegraph_trio as exegraph
from exegraph_trio import ErrorPolicy, Graph, Retry, RunOptions, Step, StepStatus

CONTINUE = ErrorPolicy.CONTINUE_ON_ERROR


class Attempts:
    """Makes actions that record when each attempt starts and decide how it ends."""

    def __init__(self) -> None:
        self.starts: dict[str, list[float]] = {}
        self.errors: dict[str, list[BaseException]] = {}

    def action(
        self,
        name: str,
        seconds: float = 0.0,
        *,
        fail: Callable[[int], BaseException | None] = lambda attempt: OSError("flaky"),
        value: object = None,
    ) -> exegraph.Action:
        """Each attempt sleeps `seconds`, then raises `fail(attempt)` unless that is `None`."""

        async def act() -> object:
            starts = self.starts.setdefault(name, [])
            starts.append(trio.current_time())
            await trio.sleep(seconds)
            error = fail(len(starts))
            if error is not None:
                self.errors.setdefault(name, []).append(error)
                raise error
            return value

        return act

    def waits(self, name: str, seconds: float) -> list[float]:
        """The wait before each later attempt, given that each attempt lasts `seconds`."""
        starts = self.starts[name]
        return [later - (earlier + seconds) for earlier, later in itertools.pairwise(starts)]


def fails_until(success: int) -> Callable[[int], BaseException | None]:
    """Attempts before number `success` raise a fresh `OSError`; that one succeeds."""
    return lambda attempt: None if attempt >= success else OSError(f"attempt {attempt}")


class Calls(exegraph.Instrument):
    """Records the retry-related instrument calls, with the time of each."""

    def __init__(self) -> None:
        self.calls: list[tuple[object, ...]] = []

    def step_started(self, run: exegraph.RunInfo, step: Step) -> None:
        self.calls.append(("step_started", step.name, trio.current_time()))

    def step_retrying(
        self, run: exegraph.RunInfo, step: Step, attempt: int, error: BaseException, delay: float
    ) -> None:
        self.calls.append(("step_retrying", step.name, attempt, error, delay, trio.current_time()))

    def attempt_started(self, run: exegraph.RunInfo, step: Step, attempt: int) -> None:
        self.calls.append(("attempt_started", step.name, attempt, trio.current_time()))

    def step_done(self, run: exegraph.RunInfo, step: Step, timing: exegraph.StepTiming) -> None:
        self.calls.append(("step_done", step.name, timing.status, trio.current_time()))


# -- the value type ----------------------------------------------------------------------


def test_retry_defaults_are_the_specs() -> None:
    retry = Retry()
    assert (retry.attempts, retry.delay, retry.backoff, retry.max_delay, retry.jitter) == (
        3,
        1.0,
        2.0,
        60.0,
        0.0,
    )
    assert retry.on == (Exception,)


def test_retry_accepts_a_single_exception_type_for_on() -> None:
    assert Retry(on=OSError).on == (OSError,)
    assert Retry(on=(OSError, TimeoutError)).on == (OSError, TimeoutError)


# -- succeeding after failures -----------------------------------------------------------


async def test_a_failing_step_is_tried_again_until_it_succeeds(
    autojump_clock: trio.testing.MockClock,
) -> None:
    att = Attempts()
    step = Step(
        "deploy",
        att.action("deploy", 1, fail=fails_until(3), value="deployed"),
        retry=Retry(attempts=3, delay=1),
    )
    result = await exegraph.run_with_result(Graph([step]))
    timing = result["deploy"]
    assert result.ok
    assert timing.status is StepStatus.DONE
    assert timing.value == "deployed"
    assert timing.attempts == 3
    assert att.starts["deploy"] == [0, 2, 5]  # waits of 1, then 2
    assert (timing.start, timing.end) == (0, 6)
    assert timing.error is None
    assert timing.earlier_errors == tuple(att.errors["deploy"])


async def test_a_step_without_any_retry_has_one_attempt(
    autojump_clock: trio.testing.MockClock,
) -> None:
    att = Attempts()
    result = await exegraph.run_with_result(
        Graph(
            [
                Step("once", att.action("once", 1)),
                Step("fine", att.action("fine", fail=fails_until(1))),
            ]
        ),
        RunOptions(error_policy=CONTINUE),
    )
    assert att.starts["once"] == [0]
    assert result["once"].status is StepStatus.FAILED
    assert (result["once"].attempts, result["fine"].attempts) == (1, 1)
    assert result["once"].earlier_errors == ()


async def test_a_skipped_step_made_no_attempt(autojump_clock: trio.testing.MockClock) -> None:
    att = Attempts()
    graph = Graph(
        [
            Step("a", att.action("a", 1), retry=Retry(attempts=2, delay=1)),
            Step("b", att.action("b"), depends_on=["a"], retry=Retry(attempts=2)),
        ]
    )
    result = await exegraph.run_with_result(graph)
    assert result["b"].status is StepStatus.SKIPPED
    assert result["b"].attempts == 0
    assert result["a"].attempts == 2


# -- the waits ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("retry", "expected"),
    [
        (Retry(attempts=5, delay=1, backoff=2, max_delay=60), [1, 2, 4, 8]),
        (Retry(attempts=5, delay=1, backoff=3, max_delay=5), [1, 3, 5, 5]),
        (Retry(attempts=4, delay=2.5, backoff=1), [2.5, 2.5, 2.5]),
        (Retry(attempts=3, delay=0), [0, 0]),
        (Retry(attempts=4, delay=10, backoff=2, max_delay=0), [0, 0, 0]),
        (Retry(attempts=4, delay=0.5, backoff=4, max_delay=7.5), [0.5, 2, 7.5]),
    ],
)
async def test_the_wait_after_attempt_k_is_delay_times_backoff_to_k_minus_1_capped(
    autojump_clock: trio.testing.MockClock, retry: Retry, expected: list[float]
) -> None:
    att = Attempts()
    result = await exegraph.run_with_result(Graph([Step("s", att.action("s", 2), retry=retry)]))
    formula = [
        min(retry.max_delay, retry.delay * retry.backoff ** (k - 1))
        for k in range(1, retry.attempts)
    ]
    assert formula == expected
    assert att.waits("s", 2) == expected
    assert result["s"].attempts == retry.attempts
    assert result["s"].start == 0
    assert result["s"].end == 2 * retry.attempts + sum(expected)


async def test_jitter_shortens_each_wait_by_at_most_its_fraction(
    autojump_clock: trio.testing.MockClock,
) -> None:
    att = Attempts()
    calls = Calls()
    retry = Retry(attempts=60, delay=4, backoff=1, jitter=0.25)
    await exegraph.run_with_result(
        Graph([Step("s", att.action("s", 1), retry=retry)]), RunOptions(instruments=[calls])
    )
    waits = att.waits("s", 1)
    assert len(waits) == 59
    assert all(3 <= wait <= 4 for wait in waits)
    assert len(set(waits)) > 1  # random: 59 equal draws do not happen
    announced = [call[4] for call in calls.calls if call[0] == "step_retrying"]
    assert waits == pytest.approx(announced)


async def test_full_jitter_keeps_every_wait_between_zero_and_the_delay(
    autojump_clock: trio.testing.MockClock,
) -> None:
    att = Attempts()
    retry = Retry(attempts=40, delay=3, backoff=1, jitter=1)
    await exegraph.run_with_result(Graph([Step("s", att.action("s", 1), retry=retry)]))
    waits = att.waits("s", 1)
    assert all(0 <= wait <= 3 for wait in waits)
    assert min(waits) < 3


def test_jitter_scales_the_wait_by_one_minus_jitter_times_the_draw() -> None:
    retry = Retry(delay=8, backoff=2, max_delay=20, jitter=0.5)
    assert retry.wait(1, 0.0) == 8
    assert retry.wait(2, 0.5) == 16 * 0.75
    assert retry.wait(3, 0.999) == pytest.approx(20 * (1 - 0.5 * 0.999))
    assert Retry(delay=8).wait(1, 0.9) == 8  # no jitter: the draw is ignored


async def test_the_wait_starts_when_the_attempt_ends(
    autojump_clock: trio.testing.MockClock,
) -> None:
    att = Attempts()
    graph = Graph([Step("s", att.action("s", 3, fail=fails_until(2)), retry=Retry(delay=4))])
    await exegraph.run(graph)
    assert att.starts["s"] == [0, 7]


# -- which errors are retried ------------------------------------------------------------


async def test_only_exceptions_that_are_instances_of_on_are_retried(
    autojump_clock: trio.testing.MockClock,
) -> None:
    att = Attempts()
    value_error = ValueError("not transient")
    graph = Graph(
        [
            Step(
                "s",
                att.action("s", 1, fail=lambda attempt: value_error),
                retry=Retry(attempts=3, delay=1, on=(OSError,)),
            )
        ]
    )
    result = await exegraph.run_with_result(graph)
    assert att.starts["s"] == [0]
    assert result["s"].attempts == 1
    assert result["s"].error is value_error
    assert result["s"].status is StepStatus.FAILED


async def test_retrying_stops_at_the_first_error_not_in_on(
    autojump_clock: trio.testing.MockClock,
) -> None:
    att = Attempts()
    errors: list[BaseException] = [ConnectionResetError("reset"), KeyError("k")]
    graph = Graph(
        [
            Step(
                "s",
                att.action("s", 1, fail=lambda attempt: errors[attempt - 1]),
                retry=Retry(attempts=5, delay=1, on=OSError),  # ConnectionResetError is one
            )
        ]
    )
    result = await exegraph.run_with_result(graph)
    assert att.starts["s"] == [0, 2]
    assert result["s"].attempts == 2
    assert result["s"].error is errors[1]
    assert result["s"].earlier_errors == (errors[0],)


async def test_a_timeout_is_retried_by_default(autojump_clock: trio.testing.MockClock) -> None:
    att = Attempts()
    durations = [10, 1]

    async def slow_then_quick() -> str:
        att.starts.setdefault("s", []).append(trio.current_time())
        await trio.sleep(durations[len(att.starts["s"]) - 1])
        return "ok"

    result = await exegraph.run_with_result(
        Graph([Step("s", slow_then_quick, timeout=2, retry=Retry(attempts=2, delay=1))])
    )
    timing = result["s"]
    assert timing.status is StepStatus.DONE
    assert att.starts["s"] == [0, 3]
    assert (timing.start, timing.end) == (0, 4)
    [first] = timing.earlier_errors
    assert isinstance(first, exegraph.StepTimeoutError)


async def test_a_timeout_is_not_retried_when_on_leaves_it_out(
    autojump_clock: trio.testing.MockClock,
) -> None:
    att = Attempts()
    graph = Graph([Step("s", att.action("s", 10), timeout=2, retry=Retry(on=(ValueError,)))])
    result = await exegraph.run_with_result(graph)
    assert att.starts["s"] == [0]
    assert isinstance(result["s"].error, exegraph.StepTimeoutError)


async def test_each_attempt_gets_the_steps_whole_timeout(
    autojump_clock: trio.testing.MockClock,
) -> None:
    deadlines: list[float] = []

    async def hang() -> None:
        deadlines.append(trio.current_effective_deadline() - trio.current_time())
        await trio.sleep(100)

    result = await exegraph.run_with_result(
        Graph([Step("hang", hang, timeout=2, retry=Retry(attempts=3, delay=1))])
    )
    timing = result["hang"]
    assert deadlines == [2, 2, 2]
    assert (timing.start, timing.end) == (0, 9)  # 0-2, wait 1, 3-5, wait 2, 7-9
    assert isinstance(timing.error, exegraph.StepTimeoutError)
    assert [type(e) for e in timing.earlier_errors] == [exegraph.StepTimeoutError] * 2


async def test_the_runs_step_timeout_applies_to_each_attempt(
    autojump_clock: trio.testing.MockClock,
) -> None:
    deadlines: list[float] = []

    async def hang() -> None:
        deadlines.append(trio.current_effective_deadline() - trio.current_time())
        await trio.sleep(100)

    result = await exegraph.run_with_result(
        Graph([Step("hang", hang, retry=Retry(attempts=2, delay=0))]),
        RunOptions(step_timeout=3),
    )
    assert deadlines == [3, 3]
    assert result["hang"].end == 6


@pytest.mark.parametrize("interrupt", [KeyboardInterrupt, SystemExit])
async def test_an_interrupt_is_never_retried_even_when_on_names_it(
    autojump_clock: trio.testing.MockClock, interrupt: type[BaseException]
) -> None:
    att = Attempts()
    graph = Graph(
        [
            Step(
                "s",
                att.action("s", 1, fail=lambda attempt: interrupt()),
                retry=Retry(attempts=3, delay=1, on=(BaseException,)),
            )
        ]
    )
    with pytest.raises(interrupt):
        await exegraph.run(graph)
    assert att.starts["s"] == [0]


async def test_cancellation_from_outside_is_never_retried(
    autojump_clock: trio.testing.MockClock,
) -> None:
    att = Attempts()
    results: list[exegraph.RunResult] = []

    class Keep(exegraph.Instrument):
        def run_done(self, run: exegraph.RunInfo, result: exegraph.RunResult) -> None:
            results.append(result)

    graph = Graph(
        [Step("s", att.action("s", 10), retry=Retry(attempts=3, delay=1, on=(BaseException,)))]
    )
    with trio.move_on_after(1):
        await exegraph.run(graph, RunOptions(instruments=[Keep()]))
    assert trio.current_time() == 1
    assert att.starts["s"] == [0]
    assert results[0]["s"].status is StepStatus.CANCELLED
    assert results[0]["s"].attempts == 1


async def test_a_cancellation_by_fail_fast_is_never_retried(
    autojump_clock: trio.testing.MockClock,
) -> None:
    att = Attempts()
    graph = Graph(
        [
            Step("boom", att.action("boom", 1, fail=lambda attempt: ValueError("boom"))),
            Step("slow", att.action("slow", 10), retry=Retry(attempts=3, on=(BaseException,))),
        ]
    )
    result = await exegraph.run_with_result(graph)
    assert att.starts["slow"] == [0]
    assert result["slow"].status is StepStatus.CANCELLED
    assert result["slow"].attempts == 1


# -- where the Retry comes from ----------------------------------------------------------


async def test_the_runs_retry_is_the_default_for_steps_without_one(
    autojump_clock: trio.testing.MockClock,
) -> None:
    att = Attempts()
    graph = Graph(
        [
            Step("default", att.action("default", 1)),
            Step("own", att.action("own", 1), retry=Retry(attempts=1)),
            Step("more", att.action("more", 1), retry=Retry(attempts=4, delay=0)),
        ]
    )
    result = await exegraph.run_with_result(
        graph, RunOptions(retry=Retry(attempts=2, delay=3), error_policy=CONTINUE)
    )
    assert att.starts == {"default": [0, 4], "own": [0], "more": [0, 1, 2, 3]}
    assert [result[name].attempts for name in ("default", "own", "more")] == [2, 1, 4]


def test_no_step_is_retried_by_default() -> None:
    assert RunOptions().retry is None
    assert Step("s", Attempts().action("s")).retry is None


# -- waits hold no slot ------------------------------------------------------------------


async def test_a_step_waiting_to_retry_holds_no_slot(
    autojump_clock: trio.testing.MockClock,
) -> None:
    att = Attempts()
    graph = Graph(
        [
            Step("flaky", att.action("flaky", 1, fail=fails_until(2)), retry=Retry(delay=5)),
            Step("other", att.action("other", 3, fail=fails_until(1))),
        ]
    )
    result = await exegraph.run_with_result(graph, RunOptions(max_concurrency=1))
    assert att.starts == {"flaky": [0, 6], "other": [1]}
    assert result["other"].end == 4
    assert result["flaky"].end == 7


async def test_after_its_wait_a_step_competes_for_a_slot_by_priority(
    autojump_clock: trio.testing.MockClock,
) -> None:
    att = Attempts()
    ok = fails_until(1)
    graph = Graph(
        [
            Step("root", att.action("root", 1, fail=ok)),
            # priority 0; its wait ends at 3, when both slots are busy
            Step("flaky", att.action("flaky", 1, fail=fails_until(2)), retry=Retry(delay=2)),
            Step("busy", att.action("busy", 9, fail=ok), depends_on=["root"]),
            Step("hold", att.action("hold", 19, fail=ok), depends_on=["root"]),
            Step("low", att.action("low", 1, fail=ok), depends_on=["root"]),  # priority 0
            Step("high", att.action("high", 5, fail=ok), depends_on=["busy"]),  # priority 1
            Step("child", att.action("child", 1, fail=ok), depends_on=["high"]),
            Step("x", att.action("x", 1, fail=ok), depends_on=["hold"]),
        ]
    )
    await exegraph.run(graph, RunOptions(max_concurrency=2))
    # At 10 "busy" frees a slot: "high", ready only now, beats "flaky", ready since 3.
    # At 15 "high" frees it: "flaky", "low" and "child" tie at priority 0, and "flaky"
    # comes first in the graph.
    assert att.starts == {
        "root": [0],
        "flaky": [0, 15],
        "busy": [1],
        "hold": [1],
        "high": [10],
        "low": [16],
        "child": [17],
        "x": [20],
    }


async def test_a_waiting_step_of_higher_priority_goes_before_earlier_ready_steps(
    autojump_clock: trio.testing.MockClock,
) -> None:
    att = Attempts()
    ok = fails_until(1)
    graph = Graph(
        [
            Step("filler", att.action("filler", 1, fail=ok)),
            Step("flaky", att.action("flaky", 1, fail=fails_until(2)), retry=Retry(delay=1)),
            Step("after", att.action("after", 1, fail=ok), depends_on=["flaky"]),
            Step("tail", att.action("tail", 1, fail=ok), depends_on=["after"]),
            Step("first", att.action("first", 4, fail=ok)),
        ]
    )
    # Priorities: flaky 2, after 1, the rest 0. One slot.
    await exegraph.run(graph, RunOptions(max_concurrency=1))
    # 0-1 flaky fails; 1-2 filler (graph order before "first"); flaky ready again at 2
    # and goes before "first", which has waited since 0.
    assert att.starts == {
        "flaky": [0, 2],
        "filler": [1],
        "after": [3],
        "tail": [4],
        "first": [5],
    }


# -- a retried attempt fails nothing -----------------------------------------------------


async def test_a_failed_attempt_that_will_be_retried_does_not_fail_fast(
    autojump_clock: trio.testing.MockClock,
) -> None:
    att = Attempts()
    graph = Graph(
        [
            Step("flaky", att.action("flaky", 1, fail=fails_until(2)), retry=Retry(delay=1)),
            Step("long", att.action("long", 5, fail=fails_until(1))),
            Step("after", att.action("after", 1, fail=fails_until(1)), depends_on=["flaky"]),
        ]
    )
    result = await exegraph.run_with_result(graph)  # fail-fast
    assert result.ok
    assert [(t.name, t.status, t.start, t.end) for t in result.steps] == [
        ("flaky", StepStatus.DONE, 0, 3),
        ("after", StepStatus.DONE, 3, 4),
        ("long", StepStatus.DONE, 0, 5),
    ]


async def test_fail_fast_during_the_wait_ends_the_waiting_step_cancelled(
    autojump_clock: trio.testing.MockClock,
) -> None:
    att = Attempts()
    done: list[tuple[str, BaseException | None]] = []
    boom = ValueError("boom")
    graph = Graph(
        [
            Step("flaky", att.action("flaky", 1), retry=Retry(attempts=3, delay=10)),
            Step("boom", att.action("boom", 3, fail=lambda attempt: boom)),
        ]
    )
    result = await exegraph.run_with_result(
        graph, RunOptions(on_step_done=lambda name, error: done.append((name, error)))
    )
    assert trio.current_time() == 3
    assert att.starts["flaky"] == [0]
    timing = result["flaky"]
    assert timing.status is StepStatus.CANCELLED
    assert isinstance(timing.error, exegraph.StepCancelledError)
    assert timing.attempts == 1
    assert timing.start == 0
    assert timing.earlier_errors == tuple(att.errors["flaky"])
    assert [name for name, _ in done] == ["boom", "flaky"]
    assert isinstance(done[1][1], exegraph.StepCancelledError)
    assert result.error is not None
    assert result.error.exceptions == (boom,)  # the cancelled step is no member


async def test_fail_fast_while_a_retried_step_waits_for_a_slot_ends_it_cancelled(
    autojump_clock: trio.testing.MockClock,
) -> None:
    att = Attempts()
    graph = Graph(
        [
            Step("flaky", att.action("flaky", 1), retry=Retry(attempts=3, delay=1)),
            Step("boom", att.action("boom", 2, fail=lambda attempt: ValueError("boom"))),
        ]
    )
    result = await exegraph.run_with_result(graph, RunOptions(max_concurrency=1))
    # 0-1 flaky fails; 1-3 boom; flaky is ready again at 2 but has no slot; boom fails at 3.
    assert att.starts == {"flaky": [0], "boom": [1]}
    assert result["flaky"].status is StepStatus.CANCELLED
    assert result["flaky"].attempts == 1
    assert trio.current_time() == 3


async def test_under_continue_a_retried_attempt_skips_no_dependent(
    autojump_clock: trio.testing.MockClock,
) -> None:
    att = Attempts()
    graph = Graph(
        [
            Step("flaky", att.action("flaky", 1, fail=fails_until(3)), retry=Retry(delay=1)),
            Step("after", att.action("after", 1, fail=fails_until(1)), depends_on=["flaky"]),
        ]
    )
    result = await exegraph.run_with_result(graph, RunOptions(error_policy=CONTINUE))
    assert result.ok
    assert result["after"].start == 6  # attempts 0-1, 2-3, 5-6


# -- what observers and the result see ---------------------------------------------------


async def test_hooks_see_a_retried_step_once(autojump_clock: trio.testing.MockClock) -> None:
    att = Attempts()
    seen: list[tuple[str, str, object, float]] = []
    options = RunOptions(
        on_step_start=lambda name: seen.append(("start", name, None, trio.current_time())),
        on_step_done=lambda name, error: seen.append(("done", name, error, trio.current_time())),
    )
    graph = Graph([Step("s", att.action("s", 1, fail=fails_until(3)), retry=Retry(delay=1))])
    await exegraph.run(graph, options)
    assert seen == [("start", "s", None, 0), ("done", "s", None, 6)]


async def test_on_step_done_gets_the_last_attempts_error_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    att = Attempts()
    done: list[tuple[str, BaseException | None]] = []
    graph = Graph([Step("s", att.action("s", 1), retry=Retry(attempts=3, delay=1))])
    await exegraph.run_with_result(
        graph, RunOptions(on_step_done=lambda name, error: done.append((name, error)))
    )
    assert done == [("s", att.errors["s"][2])]


async def test_the_final_error_is_the_last_attempts_with_a_note_and_the_earlier_ones_kept(
    autojump_clock: trio.testing.MockClock,
) -> None:
    att = Attempts()
    graph = Graph([Step("s", att.action("s", 1), retry=Retry(attempts=3, delay=1))])
    result = await exegraph.run_with_result(graph)
    first, second, last = att.errors["s"]
    timing = result["s"]
    assert timing.status is StepStatus.FAILED
    assert timing.error is last
    assert "exegraph: attempt 3 of 3" in last.__notes__
    assert timing.earlier_errors == (first, second)
    assert timing.earlier_errors[0] is first
    assert timing.earlier_errors[1] is second
    assert (timing.start, timing.end, timing.attempts) == (0, 6, 3)
    assert result.error is not None
    assert result.error.exceptions == (last,)


async def test_an_error_raised_again_in_a_later_run_has_that_runs_attempt_note_and_the_step_last(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # A circuit breaker raises one exception object again and again: each run replaces
    # the attempt note the previous one left, and the step's note stays the last.
    breaker_open = ConnectionError("circuit open")

    async def call() -> None:
        await trio.sleep(1)
        raise breaker_open

    graph = Graph([Step("call", call)])
    for attempts in (3, 2, 2):
        result = await exegraph.run_with_result(
            graph, RunOptions(retry=Retry(attempts=attempts, delay=1))
        )
        assert result["call"].error is breaker_open
        assert breaker_open.__notes__ == [
            f"exegraph: attempt {attempts} of {attempts}",
            "exegraph: raised by step 'call'",
        ]
    # Without retries now: no attempt note is added, the step's note is still last.
    await exegraph.run_with_result(graph)
    assert breaker_open.__notes__[-1] == "exegraph: raised by step 'call'"
    assert len(breaker_open.__notes__) == 2


async def test_a_retried_failure_still_matches_except_star(
    autojump_clock: trio.testing.MockClock,
) -> None:
    att = Attempts()
    graph = Graph([Step("s", att.action("s"), retry=Retry(attempts=2, delay=0))])
    with pytest.RaisesGroup(pytest.RaisesExc(OSError, match="flaky")) as caught:
        await exegraph.run(graph)
    [error] = caught.value.exceptions
    assert "exegraph: attempt 2 of 2" in error.__notes__
    assert "exegraph: raised by step 's'" in error.__notes__


async def test_instruments_hear_of_each_retry_and_each_later_attempt(
    autojump_clock: trio.testing.MockClock,
) -> None:
    att = Attempts()
    calls = Calls()
    graph = Graph(
        [Step("s", att.action("s", 1, fail=fails_until(3)), retry=Retry(delay=1, backoff=3))]
    )
    await exegraph.run(graph, RunOptions(instruments=[calls]))
    first, second = att.errors["s"]
    assert calls.calls == [
        ("step_started", "s", 0),
        ("step_retrying", "s", 1, first, 1.0, 1),
        ("attempt_started", "s", 2, 2),
        ("step_retrying", "s", 2, second, 3.0, 3),
        ("attempt_started", "s", 3, 6),
        ("step_done", "s", StepStatus.DONE, 7),
    ]


async def test_an_instrument_sees_a_step_without_retries_start_and_end_only(
    autojump_clock: trio.testing.MockClock,
) -> None:
    calls = Calls()
    att = Attempts()
    await exegraph.run_with_result(
        Graph([Step("s", att.action("s", 1))]), RunOptions(instruments=[calls])
    )
    assert [call[0] for call in calls.calls] == ["step_started", "step_done"]


async def test_a_timing_spans_the_first_attempts_start_to_the_last_ones_end(
    autojump_clock: trio.testing.MockClock,
) -> None:
    att = Attempts()
    graph = Graph(
        [
            Step("wait", att.action("wait", 2, fail=fails_until(1))),
            Step(
                "s",
                att.action("s", 1, fail=fails_until(4)),
                depends_on=["wait"],
                retry=Retry(attempts=4, delay=0.5, backoff=2),
            ),
        ]
    )
    result = await exegraph.run_with_result(graph)
    assert att.starts["s"] == [2, 3.5, 5.5, 8.5]
    assert (result["s"].start, result["s"].end) == (2, 9.5)
    assert result["s"].duration == 7.5
    assert result.total_duration == 9.5


def test_the_wait_after_a_huge_attempt_number_is_max_delay() -> None:
    assert Retry(delay=1, backoff=10, max_delay=30).wait(10_000) == 30
    assert not math.isnan(Retry(delay=1, backoff=10, max_delay=30).wait(10_000, 0.5))


async def test_a_step_cancelled_while_waiting_to_retry_ends_at_its_last_attempts_end(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def flaky() -> None:
        await trio.sleep(1)
        raise OSError("flaky")

    async def boom() -> None:
        await trio.sleep(3)
        raise ValueError("boom")

    graph = Graph([Step("flaky", flaky, retry=Retry(attempts=3, delay=10)), Step("boom", boom)])
    result = await exegraph.run_with_result(graph)
    timing = result["flaky"]
    assert timing.status is StepStatus.CANCELLED
    assert timing.attempts == 1
    # SPEC 2.1: "`start` is the first attempt's start, `end` the last one's end".
    assert (timing.start, timing.end) == (0, 1)


def test_no_retry_attempt_begins_after_the_run_is_cancelled_from_outside() -> None:
    # A retry given its slot back at the instant the caller cancels the run, while the
    # dispatcher is busy (another step's failure of that instant) and no watcher runs:
    # the next attempt must not begin (spec: a run cancelled from outside cancels every
    # step in flight; cancellation is never retried). It asks Trio first, as a first
    # attempt does. (A pool sends the retries through `full_step`. Trio runs a round's
    # tasks in an order of its own choosing, hence the repeats: 14 of 160 such runs
    # began an attempt before.)
    log: list[tuple[str, float]] = []

    async def flaky() -> None:  # cut by its own deadline at t=2, retried at once
        log.append(("attempt", trio.current_time()))
        await trio.sleep(5)

    async def slow() -> None:  # fails at t=2 too: the dispatcher tells the core
        await trio.sleep(5)

    async def after() -> None:
        pass

    graph = Graph(
        [
            Step("flaky", flaky, retry=Retry(attempts=3, delay=0)),
            Step("slow", slow),
            Step("after", after, depends_on=["flaky"], pools=["p"]),
        ]
    )
    options = RunOptions(error_policy=ErrorPolicy.CONTINUE_ON_ERROR, step_timeout=2, pools={"p": 1})

    async def main(k: int) -> None:
        with trio.CancelScope() as scope:

            async def canceller() -> None:
                await trio.sleep(2)
                for _ in range(k):
                    await trio.lowlevel.checkpoint()
                log.append(("cancel", trio.current_time()))
                scope.cancel()

            async with trio.open_nursery() as nursery:
                nursery.start_soon(canceller)
                nursery.start_soon(exegraph.run, graph, options)

    for k in range(4):
        for _ in range(50):
            log.clear()
            trio.run(main, k, clock=trio.testing.MockClock(autojump_threshold=0))
            cancelled = log.index(("cancel", 2))
            assert ("attempt", 2) not in log[cancelled:], (k, log)
