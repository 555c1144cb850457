"""Hooks and instruments: when they are called, where, and that they never change outcomes.

Charter: virtual time (`autojump_clock`); log records are checked with `caplog`.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import AsyncIterator

import pytest
import trio

import exegraph_trio as exegraph
from exegraph_trio import ErrorPolicy, Graph, RunInfo, RunOptions, RunResult, Step, StepTiming
from support import Recorder

var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")


class Log(exegraph.Instrument):
    """Records every call as a tuple, with the run id and the current value of `var`."""

    def __init__(self, label: str = "") -> None:
        self.label = label
        self.calls: list[tuple[object, ...]] = []
        self.results: list[RunResult] = []

    def run_started(self, run: RunInfo) -> None:
        self.calls.append((self.label, "run_started", run.run_id))

    def step_started(self, run: RunInfo, step: Step) -> None:
        self.calls.append((self.label, "step_started", run.run_id, step.name, var.get()))

    def step_done(self, run: RunInfo, step: Step, timing: StepTiming) -> None:
        self.calls.append((self.label, "step_done", run.run_id, step.name, str(timing.status)))

    def step_skipped(self, run: RunInfo, step: Step, timing: StepTiming) -> None:
        assert isinstance(timing.error, exegraph.StepSkippedError)
        self.calls.append((self.label, "step_skipped", run.run_id, step.name))

    def run_done(self, run: RunInfo, result: RunResult) -> None:
        self.results.append(result)
        self.calls.append((self.label, "run_done", run.run_id, result.ok))


async def test_an_instrument_sees_the_whole_run_in_order(
    autojump_clock: trio.testing.MockClock,
) -> None:
    rec = Recorder()
    log = Log()
    graph = Graph(
        [
            rec.step("a", 1),
            rec.step("b", 2, depends_on=["a"], error=ValueError()),
            rec.step("c", depends_on=["b"]),
        ]
    )
    result = await exegraph.run_with_result(graph, RunOptions(instruments=[log]))
    run_id = log.calls[0][2]
    assert [call[1:] for call in log.calls] == [
        ("run_started", run_id),
        ("step_started", run_id, "a", "unset"),
        ("step_done", run_id, "a", "Done"),
        ("step_started", run_id, "b", "unset"),
        ("step_done", run_id, "b", "Failed"),
        ("step_skipped", run_id, "c"),
        ("run_done", run_id, False),
    ]
    assert log.results == [result]


async def test_instruments_wrap_the_hooks_like_nested_context_managers(
    autojump_clock: trio.testing.MockClock,
) -> None:
    order: list[str] = []

    class Mark(exegraph.Instrument):
        def __init__(self, label: str) -> None:
            self.label = label

        def step_started(self, run: RunInfo, step: Step) -> None:
            order.append(f"{self.label} start")

        def step_done(self, run: RunInfo, step: Step, timing: StepTiming) -> None:
            order.append(f"{self.label} done")

    options = RunOptions(
        instruments=[Mark("outer"), Mark("inner")],
        on_step_start=lambda name: order.append("hook start"),
        on_step_done=lambda name, error: order.append("hook done"),
    )
    await exegraph.run(Graph([Recorder().step("a", 1)]), options)
    assert order == [
        "outer start",
        "inner start",
        "hook start",
        "hook done",
        "inner done",
        "outer done",
    ]


async def test_a_context_variable_set_in_run_started_is_seen_by_every_step_only(
    autojump_clock: trio.testing.MockClock,
) -> None:
    class SetsVar(Log):
        def run_started(self, run: RunInfo) -> None:
            self.token = var.set(f"run {run.run_id}")

        def run_done(self, run: RunInfo, result: RunResult) -> None:
            var.reset(self.token)

    seen: list[str] = []

    async def action() -> None:
        seen.append(var.get())

    instrument = SetsVar()
    await exegraph.run(
        Graph([Step("a", action), Step("b", action, depends_on=["a"])]),
        RunOptions(instruments=[instrument]),
    )
    assert len(set(seen)) == 1
    assert seen[0].startswith("run ")
    assert var.get() == "unset"


async def test_run_done_gets_every_timing_though_nothing_else_observes(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # A `run` that nobody observes keeps no step's times (`Run.recording`); an instrument
    # with `run_done` alone is an observer: its result has them all, as `run_with_result`'s.
    class AtTheEnd(exegraph.Instrument):
        results: list[RunResult]

        def __init__(self) -> None:
            self.results = []

        def run_done(self, run: RunInfo, result: RunResult) -> None:
            self.results.append(result)

    async def one_second() -> str:
        await trio.sleep(1)
        return "made"

    graph = Graph([Step("a", one_second), Step("b", one_second, depends_on=["a"])])
    instrument = AtTheEnd()
    await exegraph.run(graph, RunOptions(instruments=[instrument]))
    [result] = instrument.results
    assert [(t.name, t.start, t.end, t.value) for t in result.steps] == [
        ("a", 0.0, 1.0, "made"),
        ("b", 1.0, 2.0, "made"),
    ]
    assert result.total_duration == 2.0
    alone = await exegraph.run_with_result(graph)
    assert [(t.name, t.duration) for t in alone.steps] == [("a", 1.0), ("b", 1.0)]


async def test_one_instrument_keeps_concurrent_runs_apart(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log = Log()
    options = RunOptions(instruments=[log])
    rec = Recorder()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(exegraph.run, Graph([rec.step("a", 1)]), options)
        nursery.start_soon(exegraph.run, Graph([rec.step("a", 2)]), options)
    runs = {call[2] for call in log.calls}
    assert len(runs) == 2
    for run_id in runs:
        assert [c[1] for c in log.calls if c[2] == run_id] == [
            "run_started",
            "step_started",
            "step_done",
            "run_done",
        ]


async def test_instruments_get_the_step_itself_with_its_tags(
    autojump_clock: trio.testing.MockClock,
) -> None:
    seen: list[Step] = []

    class Keep(exegraph.Instrument):
        def step_started(self, run: RunInfo, step: Step) -> None:
            seen.append(step)

    step = Recorder().step("a", tags=["deploy"])
    await exegraph.run(Graph([step]), RunOptions(instruments=[Keep()]))
    assert seen == [step]
    assert seen[0].tags == ("deploy",)


async def test_run_done_is_called_when_the_run_is_cancelled_from_outside(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log = Log()
    with trio.move_on_after(1):
        await exegraph.run(
            Graph([Recorder().step("a", 5), Recorder().step("b", 1, depends_on=["a"])]),
            RunOptions(instruments=[log]),
        )
    assert log.calls[-1][1] == "run_done"
    (result,) = log.results
    assert [(t.name, str(t.status)) for t in result.steps] == [
        ("a", "Cancelled"),
        ("b", "Skipped"),
    ]


# -- a hook that raises is logged and disabled; the outcome stands -----------------------


async def test_a_raising_on_step_start_is_logged_once_and_disabled(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[str] = []

    def bad_hook(name: str) -> None:
        calls.append(name)
        raise RuntimeError("hook bug")

    rec = Recorder()
    graph = Graph([rec.step("a", 1), rec.step("b", 1, depends_on=["a"])])
    result = await exegraph.run_with_result(graph, RunOptions(on_step_start=bad_hook))
    assert result.ok
    assert calls == ["a"]
    assert rec.order("end") == ["a", "b"]
    (record,) = caplog.records
    assert record.name == "exegraph_trio"
    assert record.levelno == logging.ERROR
    assert record.exc_info is not None
    assert "on_step_start" in record.getMessage()
    assert "'a'" in record.getMessage()


async def test_a_raising_on_step_done_does_not_change_the_steps_result(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    def bad_hook(name: str, error: BaseException | None) -> None:
        raise RuntimeError("hook bug")

    rec = Recorder()
    graph = Graph([rec.step("a", 1, error=ValueError("real")), rec.step("b", 2)])
    result = await exegraph.run_with_result(
        graph, RunOptions(on_step_done=bad_hook, error_policy=ErrorPolicy.CONTINUE_ON_ERROR)
    )
    assert isinstance(result["a"].error, ValueError)
    assert result["b"].status is exegraph.StepStatus.DONE
    assert len(caplog.records) == 1


@pytest.mark.parametrize(
    "method", ["run_started", "step_started", "step_done", "step_skipped", "run_done"]
)
async def test_a_raising_instrument_is_disabled_and_the_others_go_on(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture, method: str
) -> None:
    class Broken(Log):
        pass

    broken = Broken("broken")

    def fail(*args: object) -> None:
        broken.calls.append(("broken", method))
        raise RuntimeError(f"{method} bug")

    setattr(broken, method, fail)
    healthy = Log("healthy")
    rec = Recorder()
    graph = Graph(
        [rec.step("a", 1, error=ValueError()), rec.step("b", depends_on=["a"]), rec.step("c", 2)]
    )
    result = await exegraph.run_with_result(
        graph,
        RunOptions(instruments=[broken, healthy], error_policy=ErrorPolicy.CONTINUE_ON_ERROR),
    )
    assert [t.name for t in result.with_status(exegraph.StepStatus.DONE)] == ["c"]
    assert broken.calls[-1] == ("broken", method)
    assert sum(1 for call in broken.calls if call[1] == method) == 1
    assert [c[1] for c in healthy.calls].count("step_done") == 2
    assert len(caplog.records) == 1
    assert method in caplog.records[0].getMessage()


def test_the_instrument_base_class_does_nothing() -> None:
    instrument = exegraph.Instrument()
    info = RunInfo(1, Graph(), RunOptions())
    step = Recorder().step("a")
    timing = StepTiming("a", exegraph.StepStatus.DONE, 0, 1)
    instrument.run_started(info)
    instrument.step_started(info, step)
    instrument.step_done(info, step, timing)
    instrument.step_skipped(info, step, timing)
    instrument.run_done(info, RunResult((timing,), 1))


# -- what instruments are given, and the result after them ------------------------------------


class _Seen(exegraph.Instrument):
    """Keeps every timing `step_done` and `step_skipped` are given."""

    def __init__(self) -> None:
        self.timings: dict[str, StepTiming] = {}

    def step_done(self, run: RunInfo, step: Step, timing: StepTiming) -> None:
        self.timings[step.name] = timing

    def step_skipped(self, run: RunInfo, step: Step, timing: StepTiming) -> None:
        self.timings[step.name] = timing


async def test_the_result_says_what_changed_after_an_instrument_saw_a_step(
    autojump_clock: trio.abc.Clock,
) -> None:
    # The result's timings are made when it is read, from what the run knows then: a
    # step that changed after an instrument saw it (its value released with
    # keep_values=False, its teardown failed) shows the change; the others read as the
    # instrument was told.
    async def make() -> bytes:
        return b"payload"

    async def take(data: bytes) -> int:
        return len(data)

    async def resource() -> AsyncIterator[str]:
        yield "handle"
        raise OSError("teardown broke")

    async def use() -> None:
        pass

    async def boom() -> None:
        raise ValueError("boom")

    async def never() -> None:
        pass

    seen = _Seen()
    graph = Graph(
        [
            Step("make", make),
            Step("take", take, inputs={"data": "make"}),
            Step("resource", resource),
            Step("use", use, depends_on=["resource"]),  # (its value is not released)
            Step("boom", boom),
            Step("never", never, depends_on=["boom"]),
        ]
    )
    result = await exegraph.run_with_result(
        graph,
        RunOptions(
            keep_values=False, error_policy=ErrorPolicy.CONTINUE_ON_ERROR, instruments=[seen]
        ),
    )
    assert seen.timings["make"].value == b"payload"  # what the instrument was told then
    assert result["make"].value is None  # released once `take` had it
    assert result["take"].value == 7
    assert seen.timings["resource"].teardown_error is None  # not torn down yet then
    assert isinstance(result["resource"].teardown_error, OSError)
    assert result["resource"].value == "handle"
    for name in ("take", "boom", "never", "use"):  # unchanged since: the same timing
        told, read = seen.timings[name], result[name]
        assert read == told
        assert (read.value, read.error, read.attempts) == (told.value, told.error, told.attempts)
    assert result["never"].status is exegraph.StepStatus.SKIPPED


async def test_an_instrument_with_only_run_done_gets_every_timing(
    autojump_clock: trio.abc.Clock,
) -> None:
    # No instrument takes step_done, so none is made during the run: the result makes
    # them all, with the same content as when they are made for an instrument.
    results: list[RunResult] = []

    class OnlyTheEnd(exegraph.Instrument):
        def run_done(self, run: RunInfo, result: RunResult) -> None:
            results.append(result)

    async def one() -> int:
        await trio.sleep(1)
        return 1

    graph = Graph([Step("a", one), Step("b", one, depends_on=["a"])])
    await exegraph.run(graph, RunOptions(instruments=[OnlyTheEnd()]))
    seen = _Seen()
    again = await exegraph.run_with_result(graph, RunOptions(instruments=[seen]))
    (result,) = results
    assert [(t.name, t.status, t.duration, t.value) for t in result.steps] == [
        ("a", exegraph.StepStatus.DONE, 1.0, 1),
        ("b", exegraph.StepStatus.DONE, 1.0, 1),
    ]
    assert [(t.name, t.duration, t.value) for t in again.steps] == [
        (t.name, t.duration, t.value) for t in result.steps
    ]


# -- interrupts and outside cancellation, as instruments see them -------------------------


async def test_an_interrupt_in_run_started_reaches_the_run_after_every_run_started(
    autojump_clock: trio.abc.Clock,
) -> None:
    # Stopping the run tells the instruments of every skipped step: each must have been
    # told of the run first, also those after the one that raised.
    class Interrupts(exegraph.Instrument):
        def run_started(self, run: RunInfo) -> None:
            raise KeyboardInterrupt

    before, after = Log("before"), Log("after")
    graph = Graph([Recorder().step("a", 1), Recorder().step("b", 1)])
    with pytest.raises(KeyboardInterrupt):
        await exegraph.run(graph, RunOptions(instruments=[before, Interrupts(), after]))
    for log in (before, after):
        assert [call[1:2] + call[3:] for call in log.calls] == [
            ("run_started",),
            ("step_skipped", "a"),
            ("step_skipped", "b"),
            ("run_done", False),
        ]


async def test_an_instrument_listed_twice_is_told_of_each_event_once(
    autojump_clock: trio.abc.Clock,
) -> None:
    # It keys its state by run (a tracer's open spans): a second `run_started` of the same
    # run would overwrite it, and what was started under the first would never end.
    log, other = Log("log"), Log("other")
    graph = Graph([Recorder().step("a", 1)])
    await exegraph.run(graph, RunOptions(instruments=[log, other, log]))
    assert [call[:2] for call in log.calls] == [
        ("log", "run_started"),
        ("log", "step_started"),
        ("log", "step_done"),
        ("log", "run_done"),
    ]
    assert len(other.calls) == 4


async def test_a_run_interrupted_after_its_last_step_is_not_ok(
    autojump_clock: trio.abc.Clock,
) -> None:
    log = Log()

    def interrupt(name: str, error: BaseException | None) -> None:
        raise KeyboardInterrupt

    graph = Graph([Recorder().step("only", 1)])
    with pytest.raises(KeyboardInterrupt):
        await exegraph.run(graph, RunOptions(on_step_done=interrupt, instruments=[log]))
    (result,) = log.results
    assert [str(t.status) for t in result.steps] == ["Done"]
    assert result.error is None
    assert not result.ok
    assert result.table().endswith("1 step in 1.000 s: all done; the run was stopped")


async def test_a_run_cancelled_from_outside_is_not_ok_even_if_its_steps_finished(
    autojump_clock: trio.abc.Clock,
) -> None:
    log = Log()

    async def stubborn() -> None:
        with trio.CancelScope(shield=True):
            await trio.sleep(2)

    with trio.move_on_after(1) as scope:
        await exegraph.run(Graph([Step("only", stubborn)]), RunOptions(instruments=[log]))
    assert scope.cancelled_caught
    (result,) = log.results
    assert [str(t.status) for t in result.steps] == ["Done"]
    assert not result.ok


@pytest.mark.parametrize("observer", ["hook", "instrument"])
@pytest.mark.parametrize("retry", [None, exegraph.Retry(attempts=1)])
async def test_a_failure_whose_observer_cancels_the_run_is_a_failure_before_the_cancel(
    autojump_clock: trio.abc.Clock, observer: str, retry: exegraph.Retry | None
) -> None:
    # The action raised before anything cancelled the run: its error is in the result,
    # and the caller's scope gets its Cancelled, as when the cancel comes from anywhere
    # else at that instant. (Hooks never change an outcome; a RunError was raised here.)
    log = Log()

    async def boom() -> None:
        await trio.sleep(1)
        raise ValueError("boom")

    with trio.CancelScope() as scope:

        def cancel(name: str, error: BaseException | None) -> None:
            if name == "boom":
                scope.cancel()

        class Cancels(exegraph.Instrument):
            def step_done(self, run: RunInfo, step: Step, timing: StepTiming) -> None:
                cancel(step.name, timing.error)

        options = (
            RunOptions(on_step_done=cancel, instruments=[log])
            if observer == "hook"
            else RunOptions(instruments=[log, Cancels()])
        )
        graph = Graph([Step("boom", boom, retry=retry), Recorder().step("long", 10)])
        await exegraph.run(graph, options)
    assert scope.cancelled_caught
    (result,) = log.results
    assert isinstance(result["boom"].error, ValueError)
    assert str(result["long"].status) == "Cancelled"


@pytest.mark.parametrize("retry", [None, exegraph.Retry(attempts=3)])
async def test_a_step_whose_action_an_interrupt_kept_from_beginning_made_no_attempt(
    autojump_clock: trio.abc.Clock, retry: exegraph.Retry | None
) -> None:
    class Interrupts(exegraph.Instrument):
        def step_started(self, run: RunInfo, step: Step) -> None:
            raise KeyboardInterrupt

    log = Log()
    recorder = Recorder()
    graph = Graph([Step("a", recorder.action("a", 1), retry=retry)])
    with pytest.raises(KeyboardInterrupt):
        await exegraph.run(graph, RunOptions(instruments=[Interrupts(), log]))
    (result,) = log.results
    assert (str(result["a"].status), result["a"].attempts) == ("Cancelled", 0)
    assert recorder.events == []  # the action never began
