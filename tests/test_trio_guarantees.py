"""What Trio promises holds inside a run: one task per step, nothing lost, interrupts unwrapped.

Each test is one case of the spec's "Clarifications of part 1" (and of the scheduler
rebuild's list of inputs that broke the old, worker-reusing scheduler). Virtual time
throughout (`autojump_clock`, or `MockClock` in a fresh `trio.run`); real `SIGINT`s are
raised with `signal.raise_signal`, so Trio's own handler delivers them; the one test
that must see a process exit runs a child interpreter.
"""

from __future__ import annotations

import contextvars
import dataclasses
import functools
import linecache
import signal
import subprocess
import sys
import textwrap
import types
from collections.abc import AsyncIterator
from typing import Any

import pytest
import trio
import trio.lowlevel
import trio.testing

import exegraph_trio as exegraph
from exegraph_trio import Graph, RunOptions, Step, StepStatus, _attempts, _driver
from exegraph_trio._observers import protected
from support import Recorder

FAIL_FAST = exegraph.ErrorPolicy.FAIL_FAST
CONTINUE = exegraph.ErrorPolicy.CONTINUE_ON_ERROR
ALL_DONE = exegraph.TriggerRule.ALL_DONE
ONE_FAILED = exegraph.TriggerRule.ONE_FAILED


class Results(exegraph.Instrument):
    """Keeps the `RunResult` every run reports to `run_done`."""

    def __init__(self) -> None:
        self.results: list[exegraph.RunResult] = []

    def run_done(self, run: exegraph.RunInfo, result: exegraph.RunResult) -> None:
        self.results.append(result)


async def sleeper(seconds: float = 1.0) -> None:
    await trio.sleep(seconds)


def _sleep(seconds: float) -> exegraph.Action:
    async def act() -> None:
        await trio.sleep(seconds)

    return act


# -- each step is its own Trio task ------------------------------------------------------


async def test_each_step_runs_in_its_own_task_named_after_it(
    autojump_clock: trio.testing.MockClock,
) -> None:
    seen: dict[str, trio.lowlevel.Task] = {}

    def record(name: str) -> exegraph.Action:
        async def act() -> None:
            seen[name] = trio.lowlevel.current_task()
            await trio.lowlevel.checkpoint()

        return act

    await exegraph.run(
        Graph([Step("a", record("a")), Step("b", record("b"), depends_on=["a"])]),
        RunOptions(max_concurrency=1),
    )
    assert seen["a"] is not seen["b"]
    assert seen["a"].name == "a"
    assert seen["b"].name == "b"
    assert seen["a"] is not trio.lowlevel.current_task()


async def test_a_steps_task_context_is_the_context_its_hooks_and_action_see() -> None:
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")
    seen: list[tuple[str, bool]] = []

    def start(name: str) -> None:
        var.set(f"hook of {name}")

    async def act() -> None:
        task_context = trio.lowlevel.current_task().context
        seen.append((var.get(), task_context.get(var) == var.get()))

    await exegraph.run(
        Graph([Step("a", act), Step("b", act, depends_on=["a"])]),
        RunOptions(on_step_start=start),
    )
    assert seen == [("hook of a", True), ("hook of b", True)]
    assert var.get() == "unset"


async def test_a_lock_a_step_leaves_held_belongs_to_that_step_not_the_next() -> None:
    lock = trio.Lock()
    outcome: list[str] = []

    async def grab() -> None:
        await lock.acquire()  # and never release it: a bug of this step

    async def try_it() -> None:
        try:
            lock.acquire_nowait()
        except trio.WouldBlock:
            outcome.append("held by another task")
        else:
            outcome.append("acquired")

    await exegraph.run(
        Graph([Step("a", grab), Step("b", try_it, depends_on=["a"])]),
        RunOptions(max_concurrency=1),
    )
    assert outcome == ["held by another task"]


@pytest.mark.filterwarnings("ignore::ResourceWarning")  # the generator is abandoned on purpose
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
async def test_an_abandoned_generator_holding_a_cancel_scope_damages_only_its_step(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def agen() -> AsyncIterator[int]:
        with trio.move_on_after(0.1):
            yield 1

    async def a() -> None:
        async for _ in agen():
            break  # leaves the generator suspended inside its cancel scope

    rec = Recorder()
    graph = Graph(
        [
            Step("a", a),
            rec.step("b", 0.3, depends_on=["a"]),
            rec.step("c", 0, depends_on=["b"]),
        ]
    )
    result = await exegraph.run_with_result(
        graph, RunOptions(max_concurrency=1, error_policy=CONTINUE)
    )
    assert result["b"].status is StepStatus.DONE
    assert result["b"].duration == 0.3
    assert result["c"].status is StepStatus.DONE


async def _leave_a_scope_open() -> AsyncIterator[int]:
    """Enter a cancel scope (an async generator's, 10 s) in this task and leave it open.

    Returns the generator, suspended inside its scope, for the caller to hold.
    """

    async def agen() -> AsyncIterator[int]:
        with trio.move_on_after(10):
            yield 1

    generator = agen()
    await generator.__anext__()
    return generator


@pytest.mark.filterwarnings("ignore::ResourceWarning")  # the generator is abandoned on purpose
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.parametrize("deadline", ["own timeout", "run's step_timeout", "with a retry"])
async def test_a_step_leaving_a_cancel_scope_open_under_a_deadline_fails_only_itself(
    autojump_clock: trio.testing.MockClock, deadline: str
) -> None:
    # Its deadline's scope cannot close over the generator's: Trio raises that its stack
    # is corrupted, at that scope's exit. That is this step's failure, nobody else's.
    async def bad() -> str:
        generator = await _leave_a_scope_open()  # noqa: F841 - held while the step runs
        await trio.sleep(0.5)
        return "abandoned"

    retry = exegraph.Retry(attempts=2, delay=0, on=OSError) if deadline == "with a retry" else None
    own = None if deadline == "run's step_timeout" else 5.0
    rec = Recorder()
    graph = Graph(
        [
            Step("bad", bad, timeout=own, retry=retry),
            rec.step("other", 2),
            rec.step("after", 1, depends_on=["other"]),
        ]
    )
    options = RunOptions(error_policy=CONTINUE, step_timeout=5)
    result = await exegraph.run_with_result(graph, options)
    bad_timing = result["bad"]
    assert bad_timing.status is StepStatus.FAILED
    assert (bad_timing.start, bad_timing.end, bad_timing.attempts) == (0, 0.5, 1)
    assert isinstance(bad_timing.error, RuntimeError)
    assert str(bad_timing.error).startswith("Cancel scope stack corrupted")
    assert bad_timing.error.__notes__[-1] == "exegraph: raised by step 'bad'"
    assert [result[name].status for name in ("other", "after")] == [StepStatus.DONE] * 2
    assert result.error is not None
    assert result.error.exceptions == (bad_timing.error,)


@pytest.mark.filterwarnings("ignore::ResourceWarning")  # the generator is abandoned on purpose
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.parametrize("shape", ["a retry alone", "with a trigger rule"])
async def test_an_attempt_leaving_a_cancel_scope_open_is_retried_as_any_failure(
    autojump_clock: trio.testing.MockClock, shape: str
) -> None:
    # The scope's exit fails that attempt alone: a retry on `RuntimeError` makes another,
    # whether the first attempt was the plain path's (`Run._step`) or `full_step`'s.
    calls: list[float] = []

    async def bad_once() -> str:
        calls.append(trio.current_time())
        generator = await _leave_a_scope_open() if len(calls) == 1 else None  # noqa: F841 - held
        await trio.sleep(0.5)
        return "made"

    rule = exegraph.TriggerRule.ALL_DONE if shape == "with a trigger rule" else None
    step = Step(
        "bad",
        bad_once,
        timeout=5,
        retry=exegraph.Retry(attempts=2, delay=1, on=RuntimeError),
        trigger_rule=rule or exegraph.TriggerRule.ALL_SUCCESS,
    )
    result = await exegraph.run_with_result(Graph([step]))
    timing = result["bad"]
    assert (timing.status, timing.value, timing.attempts) == (StepStatus.DONE, "made", 2)
    assert calls == [0, 1.5]
    assert (timing.start, timing.end) == (0, 2)


@pytest.mark.filterwarnings("ignore::ResourceWarning")  # the generator is abandoned on purpose
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.parametrize("retry", [None, exegraph.Retry(attempts=2, delay=0)])
async def test_an_interrupt_wins_over_a_cancel_scope_left_open_under_a_deadline(
    retry: exegraph.Retry | None,
) -> None:
    # Trio's complaint about the open scope comes at the deadline scope's exit, after the
    # action raised the interrupt: the interrupt is what reaches the caller.
    async def leaky() -> AsyncIterator[None]:
        with trio.CancelScope():
            yield

    kept = []
    interrupt = KeyboardInterrupt("from the action")

    async def interrupted() -> None:
        generator = leaky()
        await generator.__anext__()  # a cancel scope left open
        kept.append(generator)
        raise interrupt

    graph = Graph([Step("s", interrupted, timeout=5, retry=retry)])
    with pytest.raises(KeyboardInterrupt) as caught:
        await exegraph.run(graph)
    assert caught.value is interrupt


@pytest.mark.filterwarnings("ignore::ResourceWarning")  # the generator is abandoned on purpose
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.parametrize("policy", list(exegraph.ErrorPolicy))
@pytest.mark.parametrize("retry", [None, exegraph.Retry(attempts=2, delay=0, on=OSError)])
async def test_a_step_cancelled_by_a_scope_it_left_open_fails_and_the_run_goes_on(
    autojump_clock: trio.testing.MockClock,
    policy: exegraph.ErrorPolicy,
    retry: exegraph.Retry | None,
) -> None:
    # The Cancelled comes from the step's own scope, not from the run: taken for an
    # outside cancellation, it stopped the run from starting anything, and the run
    # waited for ever.
    async def leaky() -> AsyncIterator[None]:
        with trio.move_on_after(0.5):
            yield

    kept = []

    async def bad() -> None:
        generator = leaky()
        await generator.__anext__()  # its scope stays open in this task
        kept.append(generator)
        await trio.sleep(1)  # cancelled at 0.5 by that scope

    rec = Recorder()
    graph = Graph(
        [
            Step("bad", bad, retry=retry),
            rec.step("good", 2),
            rec.step("after", 1, depends_on=["good"]),
        ]
    )
    with trio.fail_after(100):  # (a hang fails the test)
        result = await exegraph.run_with_result(graph, RunOptions(error_policy=policy))
    error = result["bad"].error
    assert result["bad"].status is StepStatus.FAILED
    assert isinstance(error, RuntimeError)
    assert "cancelled by a cancel scope of its own that it left open" in str(error)
    assert isinstance(error.__context__, trio.Cancelled)
    if policy is exegraph.ErrorPolicy.CONTINUE_ON_ERROR:
        assert [str(result[name].status) for name in ("good", "after")] == ["Done", "Done"]
        assert result["after"].end == 3
    else:  # it failed: fail-fast cancels the others
        assert [str(result[name].status) for name in ("good", "after")] == [
            "Cancelled",
            "Skipped",
        ]
        assert result.total_duration == 0.5


async def test_from_thread_run_in_a_step_sees_the_threads_context_not_the_steps() -> None:
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")
    seen: list[str] = []

    async def in_trio() -> None:
        seen.append(var.get())
        var.set("set by from_thread")

    def in_thread() -> None:
        var.set("thread")
        trio.from_thread.run(in_trio)
        seen.append(var.get())

    async def step() -> None:
        var.set("step")
        await trio.to_thread.run_sync(in_thread)
        seen.append(var.get())

    await exegraph.run(Graph([Step("s", step)]))
    # afn sees the thread's context; what it sets does not leak into the step.
    assert seen[0] == "thread"
    assert seen[-1] == "step"


async def test_a_deadline_starts_when_the_action_starts_not_before_the_hooks(
    autojump_clock: trio.testing.MockClock,
) -> None:
    def slow_hook(name: str) -> None:
        autojump_clock.jump(0.2)  # a hook that takes 0.2 s of (virtual) time

    result = await exegraph.run_with_result(
        Graph([Step("a", _sleep(0.05), timeout=0.1)]), RunOptions(on_step_start=slow_hook)
    )
    assert result["a"].status is StepStatus.DONE
    assert result["a"].duration == pytest.approx(0.05)


# -- nothing is lost -----------------------------------------------------------------------


async def test_ctrl_c_during_cleanup_under_an_outer_cancellation_reaches_the_caller(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def interrupted_cleanup() -> None:
        try:
            await trio.sleep(1)
        finally:
            signal.raise_signal(signal.SIGINT)  # Ctrl-C lands during sync cleanup

    results = Results()
    graph = Graph([Step("a", interrupted_cleanup), Step("b", sleeper)])
    with pytest.raises(KeyboardInterrupt), trio.move_on_after(0.1):
        await exegraph.run(graph, RunOptions(instruments=[results]))
    (result,) = results.results
    assert {t.name for t in result} == {"a", "b"}


@pytest.mark.parametrize("entry", [exegraph.run, exegraph.run_with_result])
def test_ctrl_c_after_an_outer_cancellation_wins_over_a_late_error(entry: object) -> None:
    # The outer scope is cancelled while a step shields its cleanup; a Ctrl-C comes while
    # the run waits for it (from another thread, as a terminal's does: Trio's handler
    # runs in the main thread, which is waiting), and then the cleanup fails. Trio aborts
    # a wait once: the cancellation had, so the Ctrl-C stayed pending and went off at
    # the caller's next checkpoint, after `run` raised the `RunError`. The interrupt
    # wins over both (SPEC, part 1).
    def ctrl_c_then_fail() -> None:
        signal.raise_signal(signal.SIGINT)  # (in this thread: Trio's handler delivers it)
        raise OSError("cleanup failed")

    async def cleanup_in_a_thread() -> None:
        try:
            await trio.sleep(1)
        finally:
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(ctrl_c_then_fail)

    raised: list[str] = []
    hidden: list[BaseException | None] = []

    async def main() -> None:  # (Trio's main task: the one a Ctrl-C is delivered to)
        for where in ("run", "after"):  # (what each raised, if anything)
            try:
                if where == "run":
                    with trio.move_on_after(0.1):
                        await entry(graph, RunOptions(instruments=[results]))  # type: ignore[operator]
                else:
                    await trio.sleep(1)
            except BaseException as exc:  # (recorded, asserted below)
                raised.append(f"{where}: {type(exc).__name__}")
                hidden.append(exc.__context__)

    results = Results()
    graph = Graph([Step("a", cleanup_in_a_thread), Step("b", sleeper)])
    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    assert raised == ["run: KeyboardInterrupt"]
    # What a nursery would have raised beside it is its context, not lost.
    (context,) = hidden
    assert isinstance(context, exegraph.RunError)
    assert [str(e) for e in context.exceptions] == ["cleanup failed"]
    (result,) = results.results
    assert {t.name: t.status for t in result} == {
        "a": StepStatus.FAILED,
        "b": StepStatus.CANCELLED,
    }


@pytest.mark.parametrize("entry", [exegraph.run, exegraph.run_with_result])
async def test_a_real_error_during_an_outer_cancellation_is_raised_as_a_run_error(
    autojump_clock: trio.testing.MockClock, entry: object
) -> None:
    async def failing_cleanup() -> None:
        try:
            await trio.sleep(1)
        finally:
            raise OSError("cleanup failed")

    graph = Graph([Step("a", failing_cleanup), Step("b", sleeper)])
    with pytest.RaisesGroup(pytest.RaisesExc(OSError, match="cleanup failed")) as caught:
        with trio.move_on_after(0.1) as scope:
            await entry(graph)  # type: ignore[operator]
    assert isinstance(caught.value, exegraph.RunError)
    assert not scope.cancelled_caught


async def test_an_outer_cancellation_with_only_cancelled_steps_propagates_cancelled(
    autojump_clock: trio.testing.MockClock,
) -> None:
    results = Results()
    graph = Graph([Step("a", sleeper), Step("b", sleeper)])
    with trio.move_on_after(0.1) as scope:
        await exegraph.run(graph, RunOptions(instruments=[results]))
    assert scope.cancelled_caught
    (result,) = results.results
    assert [str(t.status) for t in result] == ["Cancelled", "Cancelled"]


async def test_earlier_failures_do_not_turn_an_outer_cancellation_into_a_run_error(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def boom() -> None:
        raise ValueError("early")

    results = Results()
    graph = Graph([Step("early", boom), Step("long", sleeper)])
    with trio.move_on_after(0.1) as scope:
        await exegraph.run(graph, RunOptions(error_policy=CONTINUE, instruments=[results]))
    assert scope.cancelled_caught
    (result,) = results.results
    assert result["early"].status is StepStatus.FAILED
    assert result["long"].status is StepStatus.CANCELLED


async def test_a_cleanup_failing_under_fail_fast_before_an_outer_cancellation_is_no_run_error(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # "fails" fails at 1: fail-fast cancels the others; "breaks" raises from its cleanup
    # at 1.5, a failure before the outer cancellation (at 3), like "fails" itself. The run
    # propagates Cancelled; both failures are in the result run_done receives.
    async def fails() -> None:
        await trio.sleep(1)
        raise ValueError("fails")

    results = Results()
    graph = Graph(
        [
            Step("fails", fails),
            Step("breaks", _shielded_rollback(0.5, OSError("cleanup failed"))),
            Step("slow", _shielded_rollback(5)),
        ]
    )
    with trio.move_on_after(3) as scope:
        await exegraph.run_with_result(graph, RunOptions(instruments=[results]))
    assert scope.cancelled_caught
    (result,) = results.results
    assert [(t.name, str(t.status)) for t in result] == [
        ("fails", "Failed"),
        ("breaks", "Failed"),
        ("slow", "Cancelled"),
    ]
    assert result.error is not None
    assert [str(e) for e in result.error.exceptions] == ["fails", "cleanup failed"]


@dataclasses.dataclass(frozen=True)
class FrozenError(Exception):
    """An exception that cannot take a note."""

    code: int


async def test_an_exception_that_cannot_take_a_note_still_fails_its_step() -> None:
    async def frozen() -> None:
        raise FrozenError(7)

    result = await exegraph.run_with_result(Graph([Step("f", frozen)]))
    assert result["f"].status is StepStatus.FAILED
    assert isinstance(result["f"].error, FrozenError)
    assert result.error is not None
    assert result.error.exceptions == (result["f"].error,)


async def test_an_exception_whose_notes_are_not_a_list_still_fails_its_step() -> None:
    error = ValueError("odd notes")
    error.__notes__ = ("a tuple",)  # type: ignore[assignment]

    async def odd() -> None:
        raise error

    result = await exegraph.run_with_result(Graph([Step("o", odd)]))
    assert result["o"].error is error
    assert result["o"].status is StepStatus.FAILED


class AttributeBagError(Exception):
    """An exception whose `__getattr__` reads a dict: looking `__notes__` up raises KeyError."""

    def __init__(self, **data: object) -> None:
        super().__init__(data)
        self.data = data

    def __getattr__(self, name: str) -> object:
        return self.data[name]


async def test_an_exception_whose_notes_cannot_be_looked_up_still_fails_its_step(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def api() -> None:
        await trio.sleep(1)
        raise AttributeBagError(status=500)

    graph = Graph([Step("api", api), Step("other", _sleep(2))])
    result = await exegraph.run_with_result(graph, RunOptions(error_policy=CONTINUE))
    assert [(t.name, t.status) for t in result] == [
        ("api", StepStatus.FAILED),
        ("other", StepStatus.DONE),
    ]
    assert isinstance(result["api"].error, AttributeBagError)
    assert result.error is not None
    assert result.error.exceptions == (result["api"].error,)


async def test_the_same_exception_raised_in_many_runs_carries_one_note() -> None:
    cached = ConnectionError("breaker open")

    async def breaker() -> None:
        raise cached

    for _ in range(1000):
        await exegraph.run_with_result(Graph([Step("call", breaker)]))
    assert cached.__notes__ == ["exegraph: raised by step 'call'"]


async def test_a_timeout_keeps_the_cancellation_as_its_context(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def stuck_here() -> None:
        await trio.sleep_forever()

    result = await exegraph.run_with_result(Graph([Step("s", stuck_here, timeout=1)]))
    error = result["s"].error
    assert isinstance(error, exegraph.StepTimeoutError)
    assert isinstance(error.__context__, trio.Cancelled)
    frames = []
    tb = error.__context__.__traceback__
    while tb is not None:
        frames.append(tb.tb_frame.f_code.co_name)
        tb = tb.tb_next
    assert "stuck_here" in frames


# -- interrupts from anywhere ------------------------------------------------------------


class Raising(exegraph.Instrument):
    """Raises `error` from one method, for one step (or the k-th skip)."""

    def __init__(self, method: str, error: BaseException, *, at: int = 1) -> None:
        self.method, self.error, self.at, self.calls = method, error, at, 0
        self.results: list[exegraph.RunResult] = []

    def _maybe(self, method: str) -> None:
        if method == self.method:
            self.calls += 1
            if self.calls == self.at:
                raise self.error

    def step_started(self, run: exegraph.RunInfo, step: Step) -> None:
        self._maybe("step_started")

    def step_done(self, run: exegraph.RunInfo, step: Step, timing: exegraph.StepTiming) -> None:
        self._maybe("step_done")

    def step_skipped(self, run: exegraph.RunInfo, step: Step, timing: exegraph.StepTiming) -> None:
        self._maybe("step_skipped")


@pytest.mark.parametrize("where", ["on_step_start", "on_step_done"])
@pytest.mark.parametrize("error", [KeyboardInterrupt(), SystemExit(2)])
async def test_an_interrupt_from_a_hook_propagates_unwrapped_with_every_timing(
    autojump_clock: trio.testing.MockClock, where: str, error: BaseException
) -> None:
    def hook(*args: object) -> None:
        raise error

    results = Results()
    rec = Recorder()
    graph = Graph([rec.step("a", 1), rec.step("b", 1), rec.step("c", 1, depends_on=["a"])])
    options = RunOptions(instruments=[results], **{where: hook})  # type: ignore[arg-type]
    with pytest.raises(type(error)) as caught:
        await exegraph.run(graph, options)
    assert caught.value is error
    (result,) = results.results
    assert sorted(t.name for t in result) == ["a", "b", "c"]


@pytest.mark.parametrize("method", ["step_started", "step_done"])
async def test_an_interrupt_from_an_instrument_propagates_unwrapped(
    autojump_clock: trio.testing.MockClock, method: str
) -> None:
    error = KeyboardInterrupt()
    results = Results()
    graph = Graph([Step("a", sleeper), Step("b", sleeper, depends_on=["a"])])
    with pytest.raises(KeyboardInterrupt) as caught:
        await exegraph.run(graph, RunOptions(instruments=[Raising(method, error), results]))
    assert caught.value is error
    (result,) = results.results
    assert sorted(t.name for t in result) == ["a", "b"]


async def test_an_interrupt_while_fail_fast_skips_many_steps_leaves_every_timing(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def boom() -> None:
        raise ValueError("first failure")

    n = 10_000
    error = KeyboardInterrupt()
    results = Results()
    steps = [Step("boom", boom), *(Step(f"s{i}", sleeper, depends_on=["boom"]) for i in range(n))]
    with pytest.raises(KeyboardInterrupt) as caught:
        await exegraph.run(
            Graph(steps), RunOptions(instruments=[Raising("step_skipped", error, at=500), results])
        )
    assert caught.value is error
    (result,) = results.results
    assert len(result) == n + 1
    assert len(result.with_status(StepStatus.SKIPPED)) == n


async def test_a_real_sigint_while_fail_fast_skips_many_steps_leaves_every_timing(
    autojump_clock: trio.testing.MockClock,
) -> None:
    class CtrlC(exegraph.Instrument):
        calls = 0

        def step_skipped(
            self, run: exegraph.RunInfo, step: Step, timing: exegraph.StepTiming
        ) -> None:
            self.calls += 1
            if self.calls == 500:
                signal.raise_signal(signal.SIGINT)

    async def boom() -> None:
        raise ValueError("first failure")

    n = 10_000
    results = Results()
    steps = [Step("boom", boom), *(Step(f"s{i}", sleeper, depends_on=["boom"]) for i in range(n))]
    with pytest.raises(KeyboardInterrupt):
        await exegraph.run(Graph(steps), RunOptions(instruments=[CtrlC(), results]))
    (result,) = results.results
    assert len(result) == n + 1


def test_ctrl_c_while_the_run_waits_propagates_from_run_with_every_timing() -> None:
    results = Results()

    async def press_ctrl_c() -> None:
        # Raised from the run loop itself (KI-protected): Trio delivers it to the main
        # task, which is waiting inside the run, as when Ctrl-C arrives during a sleep.
        token = trio.lowlevel.current_trio_token()
        token.run_sync_soon(signal.raise_signal, signal.SIGINT)
        await trio.sleep(10)

    graph = Graph([Step("ctrl-c", press_ctrl_c), Step("other", sleeper)])
    with pytest.raises(KeyboardInterrupt):
        trio.run(
            exegraph.run,
            graph,
            RunOptions(instruments=[results]),
            clock=trio.testing.MockClock(autojump_threshold=0),
        )
    (result,) = results.results
    assert sorted(str(t.status) for t in result) == ["Cancelled", "Cancelled"]


class _Pairs(exegraph.Instrument):
    """Records the per-step calls of one run, and its result."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self.results: list[exegraph.RunResult] = []

    def step_started(self, run: exegraph.RunInfo, step: Step) -> None:
        self.calls.append(("started", step.name))

    def step_done(self, run: exegraph.RunInfo, step: Step, timing: exegraph.StepTiming) -> None:
        self.calls.append(("done", step.name))

    def step_skipped(self, run: exegraph.RunInfo, step: Step, timing: exegraph.StepTiming) -> None:
        self.calls.append(("skipped", step.name))

    def run_done(self, run: exegraph.RunInfo, result: exegraph.RunResult) -> None:
        self.results.append(result)


@pytest.mark.parametrize("path", ["plain", "with a retry", "with a trigger rule"])
def test_ctrl_c_before_a_step_is_told_started_tells_it_skipped_not_done(path: str) -> None:
    # A real SIGINT landing in a step's task before its `step_started` (in `Run._step`,
    # or `full_step` for a trigger rule): the step never started, so it gets no
    # `step_done` (the spec: exactly once for every step that started) but
    # `step_skipped`, and the run's result still has a timing for every step.
    code = (_attempts.full_step if path == "with a trigger rule" else _driver.Run._step).__code__
    fired: list[str] = []  # the step it landed in

    def local(frame: types.FrameType, event: str, arg: object) -> object:
        line = linecache.getline(frame.f_code.co_filename, frame.f_lineno)
        if event == "line" and not fired and "_interrupted_at_start(i, step)" in line:
            fired.append(graph.steps[frame.f_locals["i"]].name)
            signal.raise_signal(signal.SIGINT)  # handled by Trio's handler, here and now
        return local

    def tracer(frame: types.FrameType, event: str, arg: object) -> object:
        return local if frame.f_code is code else None

    async def sleeper() -> None:
        await trio.sleep(1)

    extra: dict[str, Any] = {}
    if path == "with a retry":
        extra["retry"] = exegraph.Retry(attempts=2)
    elif path == "with a trigger rule":
        extra["trigger_rule"] = exegraph.TriggerRule.ALL_DONE
    graph = Graph([Step("first", sleeper, **extra), Step("second", sleeper, **extra)])
    pairs = _Pairs()
    sys.settrace(tracer)  # type: ignore[arg-type]
    try:
        with pytest.raises(KeyboardInterrupt):
            trio.run(
                exegraph.run,
                graph,
                RunOptions(instruments=[pairs]),
                clock=trio.testing.MockClock(autojump_threshold=0),
            )
    finally:
        sys.settrace(None)
    [interrupted] = fired
    started = [name for kind, name in pairs.calls if kind == "started"]
    done = [name for kind, name in pairs.calls if kind == "done"]
    assert interrupted not in started
    assert sorted(done) == sorted(started)
    assert ("skipped", interrupted) in pairs.calls
    (result,) = pairs.results
    assert sorted(t.name for t in result) == ["first", "second"]
    assert result[interrupted].status is StepStatus.SKIPPED


@pytest.mark.parametrize("path", ["plain", "with a retry"])
def test_ctrl_c_after_a_failure_was_reported_does_not_report_it_again(path: str) -> None:
    # A real SIGINT landing in a failed step's task after its failure was reported (the
    # core is told with the other failures of that instant, so the step still looks
    # in flight): the step was reported once, told done once, and is in the result once.
    # Before, it was settled again as cancelled: two `step_done`, two timings.
    if path == "plain":
        code, before = _driver.Run._step.__code__, "self._ended(i, start, exc, None)"
    else:
        code, before = _attempts._after_attempt.__code__, "run._report(i, step, first, state,"
    fired: list[bool] = []

    def local(frame: types.FrameType, event: str, arg: object) -> object:
        here = linecache.getline(frame.f_code.co_filename, frame.f_lineno).strip()
        previous = linecache.getline(frame.f_code.co_filename, frame.f_lineno - 1)
        if event == "line" and not fired and here.startswith("return") and before in previous:
            fired.append(True)
            signal.raise_signal(signal.SIGINT)  # handled by Trio's handler, here and now
        return local

    def tracer(frame: types.FrameType, event: str, arg: object) -> object:
        return local if frame.f_code is code else None

    async def bad() -> None:
        await trio.sleep(1)
        raise ValueError("bad")

    retry = exegraph.Retry(attempts=2) if path == "with a retry" else None
    graph = Graph([Step("bad", bad, retry=retry)])
    pairs = _Pairs()
    keep_going = exegraph.ErrorPolicy.CONTINUE_ON_ERROR
    sys.settrace(tracer)  # type: ignore[arg-type]
    try:
        with pytest.raises(KeyboardInterrupt):
            trio.run(
                exegraph.run,
                graph,
                RunOptions(instruments=[pairs], error_policy=keep_going),
                clock=trio.testing.MockClock(autojump_threshold=0),
            )
    finally:
        sys.settrace(None)
    assert fired
    assert pairs.calls == [("started", "bad"), ("done", "bad")]
    (result,) = pairs.results
    assert [(t.name, t.status) for t in result] == [("bad", StepStatus.FAILED)]
    assert isinstance(result["bad"].error, ValueError)


def test_sys_exit_in_a_hook_ends_the_process_with_its_status(tmp_path: object) -> None:
    script = textwrap.dedent(
        """
        import sys, trio
        import exegraph_trio as exegraph

        async def act():
            await trio.sleep(0)

        def hook(name, error):
            sys.exit(2)

        graph = exegraph.Graph([exegraph.Step("a", act)])
        trio.run(exegraph.run, graph, exegraph.RunOptions(on_step_done=hook))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr


def test_ctrl_c_while_the_run_starts_its_second_nursery_neither_hangs_nor_crashes_trio() -> None:
    # Found by a real-SIGINT fuzz: a run with a trigger rule keeps its steps' nursery open
    # with `nursery.start`; Trio's `TaskStatus.started` is not KI-protected, and a Ctrl-C
    # landing in it after it moved the task out of its first nursery hung the run (or
    # crashed Trio: `TrioInternalError`). The child raises a real SIGINT exactly there,
    # by a trace hook on the lines of `started` (so it depends on Trio's code: it checks
    # that the hook fired).
    script = textwrap.dedent(
        """
        import linecache, signal, sys, trio, trio.testing
        import exegraph_trio as exegraph
        from trio._core import _run

        fired, armed = [], []

        def local(frame, event, arg):
            if event == "line" and not fired:
                if armed:  # the line after the old nursery's children were moved out
                    fired.append(True)
                    signal.raise_signal(signal.SIGINT)
                elif "_children = set()" in linecache.getline(
                    frame.f_code.co_filename, frame.f_lineno
                ):
                    armed.append(True)
            return local

        def tracer(frame, event, arg):
            return local if frame.f_code is _run._TaskStatus.started.__code__ else None

        async def nothing():
            await trio.sleep(1)

        graph = exegraph.Graph([
            exegraph.Step("a", nothing),
            exegraph.Step(
                "after", nothing, depends_on=["a"],
                trigger_rule=exegraph.TriggerRule.ALL_DONE,
            ),
        ])
        sys.settrace(tracer)
        try:
            trio.run(exegraph.run, graph, clock=trio.testing.MockClock(autojump_threshold=0))
        except KeyboardInterrupt:
            print("KeyboardInterrupt", "fired" if fired else "not fired")
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert (done.returncode, done.stdout) == (0, "KeyboardInterrupt fired\n"), done.stderr
    assert "TrioInternalError" not in done.stderr


def test_ctrl_c_while_a_trigger_rule_step_is_respawned_after_fail_fast_does_not_hang() -> None:
    # The same kind: a trigger-rule step spawned as fail-fast cancelled its nursery is
    # spawned again in the outer nursery; Trio's `start_soon` is not KI-protected, and a
    # Ctrl-C landing after it counted the task in the nursery, before it scheduled it,
    # left the nursery waiting forever. The child retries the same-instant run until
    # the respawn happens (Trio picks which of two tasks runs first), then raises a real
    # SIGINT on that line of `spawn_impl`.
    script = textwrap.dedent(
        """
        import linecache, signal, sys, trio, trio.testing
        import exegraph_trio as exegraph
        from exegraph_trio import _attempts
        from trio._core import _run

        fired = []

        def local(frame, event, arg):
            if event == "line" and not fired and "self.reschedule(task, None)" in (
                linecache.getline(frame.f_code.co_filename, frame.f_lineno)
            ):
                caller = frame.f_back
                while caller is not None and caller.f_code is not _attempts._run_late.__code__:
                    caller = caller.f_back
                if caller is not None:
                    fired.append(True)
                    signal.raise_signal(signal.SIGINT)
            return local

        def tracer(frame, event, arg):
            return local if frame.f_code is _run.Runner.spawn_impl.__code__ else None

        async def ok():
            await trio.sleep(1)

        async def bad():
            await trio.sleep(1)
            raise ValueError("bad")

        graph = exegraph.Graph([
            exegraph.Step("a", ok),
            exegraph.Step("bad", bad),
            exegraph.Step(
                "h", ok, depends_on=["a"], trigger_rule=exegraph.TriggerRule.ALL_DONE
            ),
        ])
        sys.settrace(tracer)
        for _ in range(200):
            try:
                trio.run(exegraph.run, graph, clock=trio.testing.MockClock(autojump_threshold=0))
            except KeyboardInterrupt:
                print("KeyboardInterrupt", "fired" if fired else "not fired")
                break
            except exegraph.RunError:
                pass
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert (done.returncode, done.stdout) == (0, "KeyboardInterrupt fired\n"), done.stderr
    assert "TrioInternalError" not in done.stderr


# -- timed out means its own deadline was the cause -------------------------------------


def _shielded_rollback(seconds: float, error: Exception | None = None) -> exegraph.Action:
    """An action that, cancelled, rolls back for `seconds` shielded, then fails with `error`."""

    async def act() -> None:
        try:
            await trio.sleep(10)
        except trio.Cancelled:
            with trio.CancelScope(shield=True):
                await trio.sleep(seconds)  # rollback
            if error is not None:
                raise error from None
            raise

    return act


async def test_a_step_cancelled_by_fail_fast_is_cancelled_even_past_its_deadline(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def fail_at_2() -> None:
        await trio.sleep(2)
        raise ValueError("boom")

    graph = Graph([Step("slow", _shielded_rollback(4), timeout=5), Step("failing", fail_at_2)])
    result = await exegraph.run_with_result(graph)
    assert result["slow"].status is StepStatus.CANCELLED
    assert isinstance(result["slow"].error, exegraph.StepCancelledError)
    assert result["slow"].end == result["slow"].start + 6  # type: ignore[operator]
    assert result.error is not None
    assert [type(e) for e in result.error.exceptions] == [ValueError]


async def _alone_under_move_on_after(step: Step, seconds: float) -> exegraph.StepTiming:
    """Run `step` alone inside `move_on_after(seconds)`; its timing, as `run_done` saw it."""
    results = Results()
    with trio.move_on_after(seconds) as scope:
        await exegraph.run(Graph([step]), RunOptions(instruments=[results]))
    assert scope.cancelled_caught
    (result,) = results.results
    return result[step.name]


async def test_a_step_cancelled_from_outside_is_cancelled_even_past_its_deadline(
    autojump_clock: trio.testing.MockClock,
) -> None:
    timing = await _alone_under_move_on_after(Step("slow", _shielded_rollback(4), timeout=5), 2)
    assert timing.status is StepStatus.CANCELLED


async def test_a_deadline_expiring_with_the_outer_cancellation_counts_as_a_timeout(
    autojump_clock: trio.testing.MockClock,
) -> None:
    timing = await _alone_under_move_on_after(Step("slow", _sleep(10), timeout=2), 2)
    assert timing.status is StepStatus.FAILED
    assert isinstance(timing.error, exegraph.StepTimeoutError)


# -- same-instant completions are decided together ---------------------------------------


def test_priority_does_not_depend_on_the_order_trio_wakes_tasks() -> None:
    # X and Y finish together at t=1 while R (priority 0) waits; Y's finish makes Q1, Q2
    # (priority 1) ready. With two slots, Q1 and Q2 must win, in every one of 200 runs.
    rec = Recorder()
    graph = Graph(
        [
            rec.step("R", 1),
            rec.step("X", 1),
            rec.step("Z", 1, depends_on=["X"]),
            rec.step("Y", 1),
            rec.step("Q1", 1, depends_on=["Y"]),
            rec.step("Q2", 1, depends_on=["Y"]),
            rec.step("S1", 1, depends_on=["Q1"]),
            rec.step("S2", 1, depends_on=["Q2"]),
        ]
    )
    assert graph.priority("R") == 0 < graph.priority("Q1") == graph.priority("Q2") == 1
    starts = set()
    for _ in range(200):
        result = trio.run(
            exegraph.run_with_result,
            graph,
            RunOptions(max_concurrency=2),
            clock=trio.testing.MockClock(autojump_threshold=0),
        )
        origin = result["X"].start
        assert origin is not None
        starts.add(
            tuple(
                (name, result[name].start - origin)  # type: ignore[operator]
                for name in ("Q1", "Q2", "R", "Z")
            )
        )
    assert starts == {(("Q1", 1.0), ("Q2", 1.0), ("R", 2.0), ("Z", 2.0))}


# -- found by trying it as a new user ----------------------------------------------------


async def test_an_interrupt_in_on_step_start_keeps_that_steps_action_from_running(
    autojump_clock: trio.testing.MockClock,
) -> None:
    ran: list[str] = []

    def interrupt(name: str) -> None:
        raise KeyboardInterrupt

    async def action() -> None:
        ran.append("action")

    results = Results()
    with pytest.raises(KeyboardInterrupt):
        await exegraph.run(
            Graph([Step("a", action)]), RunOptions(on_step_start=interrupt, instruments=[results])
        )
    assert ran == []
    (result,) = results.results
    assert result["a"].status is StepStatus.CANCELLED


async def test_an_interrupt_in_a_group_keeps_the_groups_other_errors_as_its_context() -> None:
    interrupt = KeyboardInterrupt()
    real = ValueError("real failure")

    async def nursery_like() -> None:
        raise BaseExceptionGroup("from my nursery", [interrupt, real])

    with pytest.raises(KeyboardInterrupt) as caught:
        await exegraph.run(Graph([Step("a", nursery_like)]))
    assert caught.value is interrupt
    context = caught.value.__context__
    assert isinstance(context, BaseExceptionGroup)
    assert context.exceptions == (real,)
    assert "exegraph: raised by step 'a'" in caught.value.__notes__


@pytest.mark.filterwarnings("ignore::ResourceWarning")  # the generator is abandoned on purpose
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
async def test_a_step_leaving_a_nursery_open_in_a_generator_fails_the_run_with_a_run_error(
    autojump_clock: trio.testing.MockClock,
) -> None:
    kept: list[AsyncIterator[None]] = []

    async def bad() -> None:
        async def agen() -> AsyncIterator[None]:
            async with trio.open_nursery():
                yield

        generator = agen()
        kept.append(generator)
        await generator.__anext__()

    graph = Graph([Step("bad", bad), Step("ok", sleeper)])
    with pytest.raises(exegraph.RunError) as caught:
        await exegraph.run(graph, RunOptions(error_policy=CONTINUE))
    (corrupted,) = caught.value.failures  # ('ok' is cancelled or skipped: Trio's order)
    assert isinstance(corrupted, RuntimeError)
    assert "Nursery stack corrupted" in str(corrupted)


async def test_an_interrupt_between_an_action_and_its_report_still_tears_resources_down(
    autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Ctrl-C can land on any line that is not KI-protected, such as the one between a
    # step's action returning and its (protected) report. Injected here: the step must
    # still settle, so that the resource it holds is torn down and the run ends.
    from exegraph_trio import _driver

    report = _driver.Run._done
    interrupt = KeyboardInterrupt()

    def interrupted_once(self: _driver.Run, i: int, *args: object, **kwargs: object) -> None:
        if self.steps[i].name == "use":
            raise interrupt
        report(self, i, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(_driver.Run, "_done", interrupted_once)
    torn_down: list[float] = []

    async def cluster() -> AsyncIterator[str]:
        yield "cluster"
        torn_down.append(trio.current_time())

    results = Results()
    graph = Graph([Step("cluster", cluster), Step("use", sleeper, depends_on=["cluster"])])
    with pytest.raises(KeyboardInterrupt) as raised:
        await exegraph.run(graph, RunOptions(instruments=[results]))
    assert raised.value is interrupt
    assert torn_down == [1.0]
    (result,) = results.results
    assert result["cluster"].status is StepStatus.DONE
    assert result["use"].status is StepStatus.CANCELLED


def test_steps_ending_at_the_instant_of_a_fail_fast_failure_end_as_they_would() -> None:
    # Decided together: whichever of them Trio runs first, 'ok' is done and both
    # failures are reported, never cancelled by the other's fail-fast.
    async def ok() -> None:
        await trio.sleep(1)

    async def bad() -> None:
        await trio.sleep(1)
        raise OSError("bad")

    graph = Graph([Step("ok", ok), Step("bad", bad), Step("bad2", bad)])
    for _ in range(20):
        result = trio.run(
            exegraph.run_with_result, graph, clock=trio.testing.MockClock(autojump_threshold=0)
        )
        statuses = {t.name: t.status for t in result.steps}
        assert statuses == {
            "ok": StepStatus.DONE,
            "bad": StepStatus.FAILED,
            "bad2": StepStatus.FAILED,
        }


async def test_a_handler_failing_after_fail_fast_does_not_turn_an_outside_cancel_into_an_error(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def fails(seconds: float) -> None:
        await trio.sleep(seconds)
        raise ValueError(f"after {seconds}")

    graph = Graph(
        [
            Step("a", functools.partial(fails, 1)),
            Step("h", functools.partial(fails, 1), depends_on=["a"], trigger_rule=ONE_FAILED),
            Step("r", functools.partial(sleeper, 10), depends_on=["a"], trigger_rule=ALL_DONE),
        ]
    )
    results = Results()
    with trio.move_on_after(3) as scope:
        await exegraph.run_with_result(graph, RunOptions(instruments=[results]))
    assert scope.cancelled_caught
    (result,) = results.results
    assert result["h"].status is StepStatus.FAILED
    assert result["r"].status is StepStatus.CANCELLED


@pytest.mark.parametrize("retry", [None, exegraph.Retry(attempts=3, delay=0)])
async def test_a_cleanup_error_during_an_outside_cancellation_is_not_retried_away(
    autojump_clock: trio.testing.MockClock, retry: exegraph.Retry | None
) -> None:
    async def stuck() -> None:
        try:
            await trio.sleep(10)
        except trio.Cancelled:
            raise ValueError("cleanup failed") from None

    with pytest.RaisesGroup(ValueError, check=lambda e: isinstance(e, exegraph.RunError)):
        with trio.move_on_after(1):
            await exegraph.run_with_result(Graph([Step("s", stuck, retry=retry)]))


async def test_hooks_and_instruments_run_without_ki_protection_as_user_code_does() -> None:
    # The engine's bookkeeping around them is KI-protected; a Ctrl-C must still be able
    # to stop a hook or an instrument that hangs, as it can any user code.
    seen: dict[str, bool] = {}

    class Watching(exegraph.Instrument):
        def run_started(self, run: exegraph.RunInfo) -> None:
            seen["run_started"] = trio.lowlevel.currently_ki_protected()

        def step_started(self, run: exegraph.RunInfo, step: Step) -> None:
            seen["step_started"] = trio.lowlevel.currently_ki_protected()

        def step_done(self, run: exegraph.RunInfo, step: Step, timing: exegraph.StepTiming) -> None:
            seen["step_done"] = trio.lowlevel.currently_ki_protected()

        def run_done(self, run: exegraph.RunInfo, result: exegraph.RunResult) -> None:
            seen["run_done"] = trio.lowlevel.currently_ki_protected()

    def on_start(name: str) -> None:
        seen["on_step_start"] = trio.lowlevel.currently_ki_protected()

    def on_done(name: str, error: BaseException | None) -> None:
        seen["on_step_done"] = trio.lowlevel.currently_ki_protected()

    options = RunOptions(instruments=[Watching()], on_step_start=on_start, on_step_done=on_done)
    await exegraph.run(Graph([Step("a", trio.lowlevel.checkpoint)]), options)
    assert seen == dict.fromkeys(
        ["run_started", "step_started", "step_done", "run_done", "on_step_start", "on_step_done"],
        False,
    )


async def test_a_method_marked_protected_is_called_directly_and_runs_protected() -> None:
    # `Progress` marks its per-step methods so (its counts and lines are kept whole):
    # the engine then calls them without the frame that unprotects user code.
    seen: list[tuple[str, bool, str]] = []

    class Marked(exegraph.Instrument):
        @protected
        def step_started(self, run: exegraph.RunInfo, step: Step) -> None:
            caller = sys._getframe(1).f_code.co_name
            seen.append(("started", trio.lowlevel.currently_ki_protected(), caller))

        @protected
        def step_done(self, run: exegraph.RunInfo, step: Step, timing: exegraph.StepTiming) -> None:
            caller = sys._getframe(1).f_code.co_name
            seen.append(("done", trio.lowlevel.currently_ki_protected(), caller))

    await exegraph.run(
        Graph([Step("a", trio.lowlevel.checkpoint)]), RunOptions(instruments=[Marked()])
    )
    assert seen == [("started", True, "step_started"), ("done", True, "step_done")]
