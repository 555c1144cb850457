"""Resource steps (SPEC 2.1): a setup that is the step, a teardown tied to its last consumer.

Charter: virtual time (`autojump_clock`) everywhere and exact times for every setup and
teardown; each test is one sentence of section 2.1's "Resource steps", or one of the
documented choices it left open:

- an async generator resource is resumed with `__anext__` at teardown, like a pytest
  yield fixture: the code after a bare `yield` always runs, even when the run failed;
- an async context manager's `__aexit__` gets the run's exception: the interrupt if any,
  else the run's first real failure so far, else `StepCancelledError` when cancelled from
  outside, else `None`.

Most tests run for both kinds of resource (the `kind` parameter). Outcomes of runs that
propagate `Cancelled` or an interrupt are read from the `RunResult` an instrument's
`run_done` receives. Real `SIGINT`s are raised with `signal.raise_signal`, so Trio's own
handler delivers them.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import logging
import math
import signal
import sys
import types
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterable
from contextlib import asynccontextmanager
from typing import Any, ParamSpec

import attrs
import outcome
import pytest
import trio
import trio.lowlevel
import trio.testing

import exegraph_trio as exegraph
from exegraph_trio import (
    ErrorPolicy,
    Graph,
    RunOptions,
    Step,
    StepStatus,
    TriggerRule,
    _attempts,
    _resources,
)
from support import Recorder

P = ParamSpec("P")

GEN = "generator"
ACM = "context manager"
KINDS = [GEN, ACM]
CONTINUE = RunOptions(error_policy=ErrorPolicy.CONTINUE_ON_ERROR)

# `run` is typed `-> None`; the spec says it *returns* None when nothing failed.
run_returning: Callable[..., Awaitable[object]] = exegraph.run


@attrs.define
class Resources:
    """Makes resource actions of either kind that record setup and teardown on a `Recorder`.

    Events: "start" and "end" around the setup, "error" when it raises, "teardown" when
    the teardown begins and "torn-down" when it ends without raising. `given` keeps, per
    step, what the code at the `yield` was resumed with: `None` for `__anext__` (or a
    clean `__aexit__`), else the exception `__aexit__` threw in.
    """

    rec: Recorder = attrs.field(factory=Recorder)
    given: dict[str, BaseException | None] = attrs.field(factory=dict)

    def action(
        self,
        kind: str,
        name: str,
        *,
        setup: float = 0.0,
        teardown: float = 0.0,
        value: object = None,
        error: BaseException | None = None,
        teardown_error: BaseException | None = None,
    ) -> exegraph.Action:
        rec, given = self.rec, self.given

        async def resource() -> AsyncIterator[object]:
            rec.note("start", name)
            await trio.sleep(setup)
            if error is not None:
                rec.note("error", name)
                raise error
            rec.note("end", name)
            try:
                yield value
            except BaseException as exc:
                given[name] = exc
                raise
            else:
                given[name] = None
            finally:
                rec.note("teardown", name)
                await trio.sleep(teardown)
                if teardown_error is not None:
                    raise teardown_error
                rec.note("torn-down", name)

        return resource if kind == GEN else asynccontextmanager(resource)

    def step(
        self,
        kind: str,
        name: str,
        *,
        setup: float = 0.0,
        teardown: float = 0.0,
        value: object = None,
        error: BaseException | None = None,
        teardown_error: BaseException | None = None,
        depends_on: Iterable[str] = (),
        timeout: float | None = None,
        retry: exegraph.Retry | None = None,
    ) -> Step:
        action = self.action(
            kind,
            name,
            setup=setup,
            teardown=teardown,
            value=value,
            error=error,
            teardown_error=teardown_error,
        )
        return Step(name, action, depends_on=depends_on, timeout=timeout, retry=retry)


class Watch(exegraph.Instrument):
    """Records the teardown calls (and step_done) with their times, and the `RunResult`."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, float, BaseException | None]] = []
        self.results: list[exegraph.RunResult] = []

    def step_done(self, run: exegraph.RunInfo, step: Step, timing: exegraph.StepTiming) -> None:
        self.calls.append(("step_done", step.name, trio.current_time(), timing.error))

    def teardown_started(self, run: exegraph.RunInfo, step: Step) -> None:
        self.calls.append(("teardown_started", step.name, trio.current_time(), None))

    def teardown_done(self, run: exegraph.RunInfo, step: Step, error: BaseException | None) -> None:
        self.calls.append(("teardown_done", step.name, trio.current_time(), error))

    def run_done(self, run: exegraph.RunInfo, result: exegraph.RunResult) -> None:
        self.results.append(result)

    def of(self, name: str) -> list[tuple[str, float]]:
        return [(method, time) for method, step, time, _ in self.calls if step == name]


def outcome_value(value: object) -> outcome.Value[object]:
    return outcome.Value(value)


STOPS = ["fail-fast", "outside", "interrupt"]


def stopper(rec: Recorder, stop: str) -> list[Step]:
    """The step that stops a run at t=3 by `stop` (none for "outside": the caller's scope)."""
    if stop == "fail-fast":
        return [rec.step("bad", 3, error=ValueError("bad"))]
    if stop == "interrupt":
        return [rec.step("stop", 3, error=KeyboardInterrupt())]
    return []


async def run_stopped(graph: Graph, stop: str, options: RunOptions | None = None) -> None:
    """Run `graph` that `stop` stops at t=3; check that the run ended as `stop` says."""
    with trio.move_on_after(3 if stop == "outside" else math.inf) as scope:
        if stop == "fail-fast":
            with pytest.raises(exegraph.RunError):
                await exegraph.run(graph, options)
        elif stop == "interrupt":
            with pytest.raises(KeyboardInterrupt):
                await exegraph.run(graph, options)
        else:
            await exegraph.run(graph, options)
    assert scope.cancelled_caught == (stop == "outside")


def teardown_note(name: str) -> str:
    return f"exegraph: raised by the teardown of step {name!r}"


# -- the setup is the step -------------------------------------------------------------------


def test_both_kinds_of_action_make_a_resource_step() -> None:
    res = Resources()
    assert res.step(GEN, "g").is_resource
    assert res.step(ACM, "c").is_resource
    assert not res.rec.step("plain").is_resource


@pytest.mark.parametrize("kind", KINDS)
async def test_the_setup_is_the_steps_action_and_the_yielded_value_its_value(
    autojump_clock: trio.testing.MockClock, kind: str
) -> None:
    res = Resources()
    got: list[tuple[float, object]] = []

    async def use(conn: object) -> None:
        got.append((trio.current_time(), conn))

    graph = Graph(
        [
            res.step(kind, "db", setup=2, teardown=1, value="conn-1"),
            Step("use", use, inputs={"conn": "db"}),
        ]
    )
    result = await exegraph.run_with_result(graph)
    timing = result["db"]
    assert timing.status is StepStatus.DONE
    assert (timing.start, timing.end, timing.duration) == (0, 2, 2)
    assert timing.value == "conn-1"
    assert timing.attempts == 1
    assert timing.teardown_error is None
    assert got == [(2, "conn-1")]
    assert res.rec.times("torn-down") == {"db": 3}
    assert result.ok


@pytest.mark.parametrize("kind", KINDS)
async def test_the_setup_has_the_steps_deadline_and_a_timed_out_setup_is_not_torn_down(
    autojump_clock: trio.testing.MockClock, kind: str
) -> None:
    res = Resources()
    graph = Graph(
        [
            res.step(kind, "db", setup=5, timeout=2),
            res.rec.step("use", 1, depends_on=["db"]),
        ]
    )
    result = await exegraph.run_with_result(graph, CONTINUE)
    timing = result["db"]
    assert timing.status is StepStatus.FAILED
    assert isinstance(timing.error, exegraph.StepTimeoutError)
    assert timing.end == 2
    assert result["use"].status is StepStatus.SKIPPED
    assert res.rec.order("teardown") == []
    assert trio.current_time() == 2


async def test_a_setup_that_outlived_its_deadline_still_gets_a_teardown_with_its_own(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # A setup that cannot be cancelled (here shielded; a thread in real life) ends after
    # its deadline: it is set up, so it is done and torn down later, and its teardown has
    # a deadline of its own counted from its start (SPEC 2.1), not the setup's, long gone.
    torn: list[float] = []

    async def resource() -> AsyncIterator[str]:
        with trio.CancelScope(shield=True):
            await trio.sleep(3)  # past the step's 2 s deadline
        try:
            yield "handle"
        finally:
            await trio.sleep(1)  # the teardown: within its own 2 s
            torn.append(trio.current_time())

    async def use(handle: str) -> None:
        await trio.sleep(1)

    graph = Graph([Step("db", resource, timeout=2), Step("use", use, inputs={"handle": "db"})])
    result = await exegraph.run_with_result(graph)
    assert result.ok, result.error
    assert result["db"].status is StepStatus.DONE
    assert result["db"].teardown_error is None
    assert torn == [5]  # set up at 3, used until 4, torn down from 4 to 5


@pytest.mark.parametrize("kind", KINDS)
async def test_a_failed_setup_is_never_torn_down(
    autojump_clock: trio.testing.MockClock, kind: str
) -> None:
    res = Resources()
    boom = ConnectionError("refused")
    watch = Watch()
    graph = Graph(
        [res.step(kind, "db", setup=1, error=boom), res.rec.step("use", depends_on=["db"])]
    )
    with pytest.RaisesGroup(
        pytest.RaisesExc(ConnectionError, check=lambda e: e is boom),
        pytest.RaisesExc(exegraph.StepSkippedError),
    ):
        await exegraph.run(graph, RunOptions(instruments=[watch]))
    assert res.rec.order("teardown") == []
    assert watch.of("db") == [("step_done", 1)]


@pytest.mark.parametrize("kind", KINDS)
async def test_a_setup_is_retried_and_only_the_successful_one_is_torn_down(
    autojump_clock: trio.testing.MockClock, kind: str
) -> None:
    rec = Recorder()
    attempts: list[float] = []
    torn_down: list[float] = []

    async def flaky() -> AsyncIterator[int]:
        attempts.append(trio.current_time())
        await trio.sleep(1)
        if len(attempts) == 1:
            raise ConnectionError("not yet")
        try:
            yield len(attempts)
        finally:
            torn_down.append(trio.current_time())

    action: exegraph.Action = flaky if kind == GEN else asynccontextmanager(flaky)
    graph = Graph(
        [
            Step("db", action, retry=exegraph.Retry(attempts=3, delay=0.5)),
            rec.step("use", 2, depends_on=["db"]),
        ]
    )
    result = await exegraph.run_with_result(graph)
    assert attempts == [0, 1.5]
    assert result["db"].status is StepStatus.DONE
    assert result["db"].attempts == 2
    assert result["db"].value == 2
    assert (result["db"].start, result["db"].end) == (0, 2.5)
    assert rec.times("start") == {"use": 2.5}
    assert torn_down == [4.5]


@pytest.mark.parametrize("kind", KINDS)
async def test_a_setup_cancelled_by_fail_fast_is_cancelled_and_not_torn_down(
    autojump_clock: trio.testing.MockClock, kind: str
) -> None:
    res = Resources()
    graph = Graph([res.rec.step("bad", 1, error=ValueError("bad")), res.step(kind, "db", setup=5)])
    result = await exegraph.run_with_result(graph)
    assert result["db"].status is StepStatus.CANCELLED
    assert result["db"].end == 1
    assert res.rec.order("teardown") == []


@pytest.mark.parametrize("kind", KINDS)
async def test_a_setup_cancelled_from_outside_is_not_torn_down(
    autojump_clock: trio.testing.MockClock, kind: str
) -> None:
    res = Resources()
    watch = Watch()
    with trio.move_on_after(1) as scope:
        await exegraph.run(Graph([res.step(kind, "db", setup=5)]), RunOptions(instruments=[watch]))
    assert scope.cancelled_caught
    (result,) = watch.results
    assert result["db"].status is StepStatus.CANCELLED
    assert res.rec.order("teardown") == []


# -- when the teardown runs ------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
async def test_a_resource_without_dependents_is_torn_down_right_after_its_setup(
    autojump_clock: trio.testing.MockClock, kind: str
) -> None:
    res = Resources()
    graph = Graph([res.step(kind, "db", setup=2, teardown=1), res.rec.step("other", 10)])
    await exegraph.run(graph)
    assert res.rec.times("teardown") == {"db": 2}
    assert res.rec.times("torn-down") == {"db": 3}


@pytest.mark.parametrize("kind", KINDS)
async def test_the_teardown_runs_when_the_last_dependent_settled_value_taken_or_not(
    autojump_clock: trio.testing.MockClock, kind: str
) -> None:
    res = Resources()

    async def takes(conn: object) -> None:
        await trio.sleep(2)

    graph = Graph(
        [
            res.step(kind, "db", setup=1, value="conn"),
            Step("takes-it", takes, inputs={"conn": "db"}),
            res.rec.step("only-waits", 5, depends_on=["db"]),
            res.rec.step("unrelated", 20),
        ]
    )
    await exegraph.run(graph)
    assert res.rec.times("teardown") == {"db": 6}
    assert trio.current_time() == 20


@pytest.mark.parametrize("kind", KINDS)
async def test_resources_are_torn_down_in_reverse_dependency_order_each_as_early_as_it_can(
    autojump_clock: trio.testing.MockClock, kind: str
) -> None:
    res = Resources()
    graph = Graph(
        [
            res.step(kind, "cluster", setup=1, teardown=3),
            res.step(kind, "db", setup=1, teardown=2, depends_on=["cluster"]),
            res.rec.step("test-db", 2, depends_on=["db"]),
            res.rec.step("test-cluster", 1, depends_on=["cluster"]),
            res.rec.step("unrelated", 30),
        ]
    )
    await exegraph.run(graph)
    # cluster up at 1, db up at 2, test-cluster 1-2, test-db 2-4: db is released at 4,
    # torn down 4-6; only then is the cluster released, torn down 6-9.
    ends = res.rec.times("end")
    assert (ends["cluster"], ends["db"], ends["test-cluster"], ends["test-db"]) == (1, 2, 2, 4)
    assert res.rec.times("teardown") == {"db": 4, "cluster": 6}
    assert res.rec.times("torn-down") == {"db": 6, "cluster": 9}
    assert res.rec.order("teardown") == ["db", "cluster"]


@pytest.mark.parametrize("kind", KINDS)
async def test_a_dependent_resources_failed_teardown_still_releases_its_dependency(
    autojump_clock: trio.testing.MockClock, kind: str
) -> None:
    res = Resources()
    leak = OSError("leak")
    graph = Graph(
        [
            res.step(kind, "cluster", setup=1, teardown=1),
            res.step(kind, "db", setup=1, teardown=2, depends_on=["cluster"], teardown_error=leak),
            res.rec.step("test", 2, depends_on=["db"]),
            res.rec.step("unrelated", 30),
        ]
    )
    result = await exegraph.run_with_result(graph)
    assert result["db"].teardown_error is leak
    assert res.rec.times("teardown") == {"db": 4, "cluster": 6}
    assert res.rec.times("torn-down") == {"cluster": 7}


@pytest.mark.parametrize("kind", KINDS)
async def test_a_failed_or_skipped_dependent_has_settled_and_releases_the_resource(
    autojump_clock: trio.testing.MockClock, kind: str
) -> None:
    res = Resources()
    graph = Graph(
        [
            res.step(kind, "db", setup=1),
            res.rec.step("migrate", 2, depends_on=["db"], error=ValueError("bad migration")),
            res.rec.step("query", 5, depends_on=["db", "migrate"]),
            res.rec.step("unrelated", 30),
        ]
    )
    result = await exegraph.run_with_result(graph, CONTINUE)
    assert result["query"].status is StepStatus.SKIPPED
    assert res.rec.times("teardown") == {"db": 3}


@pytest.mark.parametrize("kind", KINDS)
async def test_a_dependent_resource_whose_setup_failed_releases_its_dependency_at_once(
    autojump_clock: trio.testing.MockClock, kind: str
) -> None:
    res = Resources()
    graph = Graph(
        [
            res.step(kind, "cluster", setup=1, teardown=1),
            res.step(kind, "db", setup=2, depends_on=["cluster"], error=OSError("no disk")),
            res.rec.step("unrelated", 30),
        ]
    )
    result = await exegraph.run_with_result(graph, CONTINUE)
    assert result["db"].status is StepStatus.FAILED
    assert res.rec.times("teardown") == {"cluster": 3}
    assert res.rec.order("teardown") == ["cluster"]


@pytest.mark.parametrize("kind", KINDS)
async def test_a_resource_stays_up_for_a_handler_that_runs_after_fail_fast(
    autojump_clock: trio.testing.MockClock, kind: str
) -> None:
    res = Resources()

    async def report(db: object) -> None:
        await trio.sleep(3)

    graph = Graph(
        [
            res.step(kind, "db", setup=1, value="conn"),
            res.rec.step("use", 10, depends_on=["db"]),
            res.rec.step("bad", 2, error=ValueError("bad")),
            Step(
                "report",
                report,
                depends_on=["use"],
                inputs={"db": "db"},
                trigger_rule=TriggerRule.ALL_DONE,
            ),
        ]
    )
    result = await exegraph.run_with_result(graph)
    assert result["use"].status is StepStatus.CANCELLED
    assert result["report"].status is StepStatus.DONE
    assert (result["report"].start, result["report"].end) == (2, 5)
    assert res.rec.times("teardown") == {"db": 5}


@pytest.mark.parametrize("kind", KINDS)
async def test_a_dependent_waiting_to_retry_still_holds_the_resource(
    autojump_clock: trio.testing.MockClock, kind: str
) -> None:
    res = Resources()
    calls: list[float] = []

    async def flaky() -> None:
        calls.append(trio.current_time())
        await trio.sleep(1)
        if len(calls) == 1:
            raise ConnectionError("flaky")

    graph = Graph(
        [
            res.step(kind, "db", setup=1),
            Step("use", flaky, depends_on=["db"], retry=exegraph.Retry(attempts=2, delay=3)),
        ]
    )
    result = await exegraph.run_with_result(graph)
    assert result.ok
    assert calls == [1, 5]
    assert res.rec.times("teardown") == {"db": 6}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("stop", STOPS)
async def test_a_resource_whose_dependents_will_never_run_is_torn_down_when_the_run_stops(
    autojump_clock: trio.testing.MockClock, kind: str, stop: str
) -> None:
    res = Resources()
    watch = Watch()
    steps = [
        res.step(kind, "db", setup=1),
        res.rec.step("slow", 10),
        res.rec.step("later", 1, depends_on=["db", "slow"]),
    ]
    await run_stopped(Graph(steps + stopper(res.rec, stop)), stop, RunOptions(instruments=[watch]))
    (result,) = watch.results
    assert result["later"].status is StepStatus.SKIPPED
    assert res.rec.times("teardown") == {"db": 3}
    assert trio.current_time() == 3


@pytest.mark.parametrize("kind", KINDS)
async def test_a_resource_with_a_trigger_rule_is_set_up_and_torn_down_after_fail_fast(
    autojump_clock: trio.testing.MockClock, kind: str
) -> None:
    res = Resources()
    action = res.action(kind, "scratch", setup=1, teardown=1, value="dir")
    seen: list[tuple[float, object]] = []

    async def report(scratch: object) -> None:
        seen.append((trio.current_time(), scratch))
        await trio.sleep(2)

    graph = Graph(
        [
            res.rec.step("bad", 1, error=ValueError("bad")),
            Step("scratch", action, depends_on=["bad"], trigger_rule=TriggerRule.ALL_DONE),
            Step(
                "report", report, inputs={"scratch": "scratch"}, trigger_rule=TriggerRule.ALL_DONE
            ),
        ]
    )
    result = await exegraph.run_with_result(graph)
    assert result["scratch"].status is StepStatus.DONE
    assert (result["scratch"].start, result["scratch"].end) == (1, 2)
    assert seen == [(2, outcome_value("dir"))]
    assert res.rec.times("teardown") == {"scratch": 4}
    assert res.rec.times("torn-down") == {"scratch": 5}


# -- how the teardown runs -------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
async def test_a_teardown_holds_no_concurrency_slot(
    autojump_clock: trio.testing.MockClock, kind: str
) -> None:
    res = Resources()
    graph = Graph([res.step(kind, "db", setup=1, teardown=5), res.rec.step("other", 2)])
    await exegraph.run(graph, RunOptions(max_concurrency=1))
    assert res.rec.times("start") == {"db": 0, "other": 1}
    assert res.rec.times("teardown") == {"db": 1}
    assert res.rec.times("torn-down") == {"db": 6}
    assert res.rec.times("end") == {"db": 1, "other": 3}


@pytest.mark.parametrize("kind", KINDS)
async def test_the_teardown_runs_in_the_setups_context_and_task(
    autojump_clock: trio.testing.MockClock, kind: str
) -> None:
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")
    seen: list[tuple[str, str, trio.lowlevel.Task]] = []

    async def conn() -> AsyncIterator[None]:
        var.set("set in the setup")
        seen.append(("setup", var.get(), trio.lowlevel.current_task()))
        yield
        seen.append(("teardown", var.get(), trio.lowlevel.current_task()))

    async def user() -> None:
        seen.append(("user", var.get(), trio.lowlevel.current_task()))
        await trio.sleep(1)

    action: exegraph.Action = conn if kind == GEN else asynccontextmanager(conn)
    await exegraph.run(Graph([Step("db", action), Step("user", user, depends_on=["db"])]))
    (setup, used, teardown) = seen
    assert setup[:2] == ("setup", "set in the setup")
    assert used[:2] == ("user", "unset")
    assert teardown[:2] == ("teardown", "set in the setup")
    assert teardown[2] is setup[2]
    assert setup[2].name == "db"
    assert var.get() == "unset"


@pytest.mark.parametrize("kind", KINDS)
async def test_the_teardown_deadline_is_the_steps_timeout_counted_from_the_teardown(
    autojump_clock: trio.testing.MockClock, kind: str
) -> None:
    res = Resources()
    graph = Graph(
        [
            res.step(kind, "db", setup=1.5, teardown=1.5, timeout=2),
            res.rec.step("use", 5, depends_on=["db"]),
        ]
    )
    result = await exegraph.run_with_result(graph)
    assert result.ok
    assert result["db"].teardown_error is None
    assert res.rec.times("teardown") == {"db": 6.5}
    assert res.rec.times("torn-down") == {"db": 8}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("where", ["step", "run"])
async def test_a_teardown_cut_short_by_its_deadline_is_a_failed_teardown(
    autojump_clock: trio.testing.MockClock, kind: str, where: str
) -> None:
    res = Resources()
    watch = Watch()
    step_timeout = 2.0 if where == "step" else None
    run_timeout = 2.0 if where == "run" else None
    graph = Graph(
        [
            res.step(kind, "db", setup=1, teardown=5, timeout=step_timeout),
            res.rec.step("use", 1, depends_on=["db"]),
        ]
    )
    options = RunOptions(step_timeout=run_timeout, instruments=[watch])
    result = await exegraph.run_with_result(graph, options)
    timing = result["db"]
    assert timing.status is StepStatus.DONE
    error = timing.teardown_error
    assert isinstance(error, exegraph.StepTimeoutError)
    assert error.step_name == "db"
    assert error.timeout == 2
    assert teardown_note("db") in getattr(error, "__notes__", [])
    assert result.error is not None
    assert result.error.exceptions == (error,)
    assert watch.of("db") == [("step_done", 1), ("teardown_started", 2), ("teardown_done", 4)]
    assert "db" not in res.rec.times("torn-down")
    assert trio.current_time() == 4


# -- a teardown that raises ------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
async def test_a_teardown_that_raises_fails_the_run_and_the_step_stays_done(
    autojump_clock: trio.testing.MockClock, kind: str
) -> None:
    res = Resources()
    leak = OSError("could not drop the database")
    graph = Graph(
        [
            res.step(kind, "db", setup=1, teardown=1, teardown_error=leak),
            res.rec.step("use", 1, depends_on=["db"]),
        ]
    )
    with pytest.RaisesGroup(pytest.RaisesExc(OSError, check=lambda e: e is leak)) as info:
        await exegraph.run(graph)
    assert isinstance(info.value, exegraph.RunError)
    assert leak.__notes__ == [teardown_note("db")]
    assert str(info.value).startswith("0 of 2 steps failed, 1 teardown failed")

    result = await exegraph.run_with_result(graph)
    assert result["db"].status is StepStatus.DONE
    assert result["db"].error is None
    assert result["db"].teardown_error is leak
    assert leak.__notes__ == [teardown_note("db")]  # one note, however often it is raised


@pytest.mark.parametrize("kind", KINDS)
async def test_instruments_see_each_teardown_start_and_end_after_the_steps_done(
    autojump_clock: trio.testing.MockClock, kind: str
) -> None:
    res = Resources()
    watch = Watch()
    leak = OSError("leak")
    graph = Graph(
        [
            res.step(kind, "ok", setup=1, teardown=2),
            res.step(kind, "leaky", setup=2, teardown=1, teardown_error=leak),
            res.rec.step("use", 3, depends_on=["ok", "leaky"]),
        ]
    )
    await exegraph.run_with_result(graph, RunOptions(instruments=[watch]))
    assert watch.of("ok") == [("step_done", 1), ("teardown_started", 5), ("teardown_done", 7)]
    assert watch.of("leaky") == [("step_done", 2), ("teardown_started", 5), ("teardown_done", 6)]
    errors = {step: error for method, step, _, error in watch.calls if method == "teardown_done"}
    assert errors == {"ok": None, "leaky": leak}


async def test_teardown_instruments_are_called_in_the_resources_task_and_context(
    autojump_clock: trio.testing.MockClock,
) -> None:
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")
    seen: list[tuple[str, str, str]] = []

    class InTask(exegraph.Instrument):
        def teardown_started(self, run: exegraph.RunInfo, step: Step) -> None:
            seen.append(("started", trio.lowlevel.current_task().name, var.get()))

        def teardown_done(
            self, run: exegraph.RunInfo, step: Step, error: BaseException | None
        ) -> None:
            seen.append(("done", trio.lowlevel.current_task().name, var.get()))

    async def db() -> AsyncIterator[None]:
        var.set("db's")
        yield

    await exegraph.run(Graph([Step("db", db)]), RunOptions(instruments=[InTask()]))
    assert seen == [("started", "db", "db's"), ("done", "db", "db's")]


@pytest.mark.parametrize("kind", KINDS)
async def test_a_teardown_that_raises_after_an_outside_cancellation_is_logged_and_reported(
    autojump_clock: trio.testing.MockClock, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    res = Resources()
    watch = Watch()
    leak = OSError("leak")
    graph = Graph(
        [
            res.step(kind, "db", setup=1, teardown=1, teardown_error=leak),
            res.rec.step("use", 10, depends_on=["db"]),
        ]
    )
    with trio.move_on_after(3) as scope:
        await exegraph.run(graph, RunOptions(instruments=[watch]))
    assert scope.cancelled_caught
    assert res.rec.times("teardown") == {"db": 3}
    assert trio.current_time() == 4
    (result,) = watch.results
    assert result["db"].status is StepStatus.DONE
    assert result["db"].teardown_error is leak
    assert result["use"].status is StepStatus.CANCELLED
    assert result.error is not None
    assert leak in result.error.exceptions
    (record,) = [r for r in caplog.records if r.name == "exegraph_trio"]
    assert record.levelno == logging.ERROR
    assert "'db'" in record.getMessage()
    assert record.exc_info is not None
    assert record.exc_info[1] is leak


@pytest.mark.parametrize("kind", KINDS)
async def test_a_teardown_begun_before_an_outside_cancellation_that_raises_after_it_is_logged(
    autojump_clock: trio.testing.MockClock, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    # Its teardown begins at 2 (the run is going well), the run is cancelled at 2.5 while
    # it runs (shielded), and it raises at 3: the run propagates `Cancelled`, so nothing
    # raises the error; it was in `run_done`'s result only, and not logged.
    res = Resources()
    watch = Watch()
    leak = OSError("leak")
    graph = Graph(
        [
            res.step(kind, "db", setup=1, teardown=1, teardown_error=leak),
            res.rec.step("use", 1, depends_on=["db"]),
        ]
    )
    with trio.move_on_after(2.5) as scope:
        await exegraph.run(graph, RunOptions(instruments=[watch]))
    assert scope.cancelled_caught
    assert res.rec.times("teardown") == {"db": 2}
    (result,) = watch.results
    assert result["db"].teardown_error is leak
    records = [r for r in caplog.records if r.name == "exegraph_trio"]
    assert [(r.levelno, r.exc_info[1] if r.exc_info else None) for r in records] == [
        (logging.ERROR, leak)
    ]
    assert "while run" in records[0].getMessage()
    assert "was being cancelled" in records[0].getMessage()


# -- torn down whatever stops the run --------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
async def test_fail_fast_tears_down_at_once_shielded_from_the_cancellation(
    autojump_clock: trio.testing.MockClock, kind: str
) -> None:
    res = Resources()
    boom = ValueError("boom")
    graph = Graph(
        [
            res.step(kind, "db", setup=1, teardown=2),
            res.rec.step("use", 10, depends_on=["db"]),
            res.rec.step("bad", 3, error=boom),
        ]
    )
    result = await exegraph.run_with_result(graph)
    assert result["use"].status is StepStatus.CANCELLED
    assert res.rec.times("teardown") == {"db": 3}
    assert res.rec.times("torn-down") == {"db": 5}
    assert result["db"].teardown_error is None
    assert result.error is not None
    assert result.error.exceptions == (boom,)
    assert trio.current_time() == 5


@pytest.mark.parametrize("kind", KINDS)
async def test_an_outside_cancellation_tears_down_shielded_and_still_propagates(
    autojump_clock: trio.testing.MockClock, kind: str
) -> None:
    res = Resources()
    watch = Watch()
    graph = Graph(
        [
            res.step(kind, "db", setup=1, teardown=2),
            res.rec.step("use", 10, depends_on=["db"]),
        ]
    )
    with trio.move_on_after(3) as scope:
        await exegraph.run(graph, RunOptions(instruments=[watch]))
    assert scope.cancelled_caught
    assert res.rec.times("teardown") == {"db": 3}
    assert res.rec.times("torn-down") == {"db": 5}
    (result,) = watch.results
    assert result["db"].status is StepStatus.DONE
    assert result["db"].teardown_error is None
    assert result["use"].status is StepStatus.CANCELLED


@pytest.mark.parametrize("kind", KINDS)
async def test_an_outside_cancellation_during_the_teardown_does_not_cut_it_short(
    autojump_clock: trio.testing.MockClock, kind: str
) -> None:
    res = Resources()
    watch = Watch()
    graph = Graph([res.step(kind, "db", setup=1, teardown=5), res.rec.step("other", 10)])
    with trio.move_on_after(3) as scope:
        await exegraph.run(graph, RunOptions(instruments=[watch]))
    assert scope.cancelled_caught
    assert res.rec.times("torn-down") == {"db": 6}
    (result,) = watch.results
    assert result["db"].teardown_error is None


@pytest.mark.parametrize("kind", KINDS)
async def test_a_teardown_after_an_outside_cancellation_keeps_its_own_deadline(
    autojump_clock: trio.testing.MockClock, kind: str
) -> None:
    res = Resources()
    watch = Watch()
    graph = Graph(
        [
            res.step(kind, "db", setup=1, teardown=5, timeout=2),
            res.rec.step("use", 10, depends_on=["db"]),
        ]
    )
    with trio.move_on_after(3) as scope:
        await exegraph.run(graph, RunOptions(instruments=[watch]))
    assert scope.cancelled_caught
    assert trio.current_time() == 5
    (result,) = watch.results
    assert isinstance(result["db"].teardown_error, exegraph.StepTimeoutError)
    assert watch.of("db")[-1] == ("teardown_done", 5)


def ctrl_c_step(how: str, interrupt: KeyboardInterrupt, rec: Recorder) -> Step:
    """A step that is interrupted at t=3: it raises `interrupt`, or Ctrl-C arrives."""

    async def real_sigint() -> None:
        await trio.sleep(3)
        signal.raise_signal(signal.SIGINT)  # delivered by Trio's own handler
        await trio.sleep(1)  # not reached: the interrupt lands here or in the run

    if how == "raised":
        return rec.step("stop", 3, error=interrupt)
    return Step("stop", real_sigint)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("how", ["raised", "sigint"])
async def test_an_interrupt_tears_down_shielded_and_still_propagates(
    autojump_clock: trio.testing.MockClock, kind: str, how: str
) -> None:
    res = Resources()
    watch = Watch()
    interrupt = KeyboardInterrupt()
    graph = Graph(
        [
            res.step(kind, "db", setup=1, teardown=2),
            res.rec.step("use", 10, depends_on=["db"]),
            ctrl_c_step(how, interrupt, res.rec),
        ]
    )
    with pytest.raises(KeyboardInterrupt) as info:
        await exegraph.run(graph, RunOptions(instruments=[watch]))
    if how == "raised":
        assert info.value is interrupt
    assert res.rec.times("teardown") == {"db": 3}
    assert res.rec.times("torn-down") == {"db": 5}
    (result,) = watch.results
    assert result["db"].status is StepStatus.DONE
    assert result["db"].teardown_error is None
    assert result["use"].status is StepStatus.CANCELLED


@pytest.mark.parametrize("kind", KINDS)
async def test_a_teardown_that_raises_after_an_interrupt_is_reported_and_the_interrupt_wins(
    autojump_clock: trio.testing.MockClock, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    res = Resources()
    watch = Watch()
    leak = OSError("leak")
    interrupt = KeyboardInterrupt()
    graph = Graph(
        [
            res.step(kind, "db", setup=1, teardown=1, teardown_error=leak),
            res.rec.step("use", 10, depends_on=["db"]),
            res.rec.step("stop", 3, error=interrupt),
        ]
    )
    with pytest.raises(KeyboardInterrupt) as info:
        await exegraph.run(graph, RunOptions(instruments=[watch]))
    assert info.value is interrupt
    (result,) = watch.results
    assert result["db"].teardown_error is leak
    assert [r.exc_info[1] for r in caplog.records if r.exc_info] == [leak]


@pytest.mark.parametrize("kind", KINDS)
async def test_a_teardown_that_raises_after_fail_fast_joins_the_run_error(
    autojump_clock: trio.testing.MockClock, kind: str
) -> None:
    res = Resources()
    boom, leak = ValueError("boom"), OSError("leak")
    graph = Graph(
        [
            res.step(kind, "db", setup=1, teardown=1, teardown_error=leak),
            res.rec.step("use", 10, depends_on=["db"]),
            res.rec.step("bad", 3, error=boom),
        ]
    )
    with pytest.RaisesGroup(
        pytest.RaisesExc(ValueError, check=lambda e: e is boom),
        pytest.RaisesExc(OSError, check=lambda e: e is leak),
    ) as info:
        await exegraph.run(graph)
    assert str(info.value).startswith("1 of 3 steps failed, 1 teardown failed")
    assert leak.__notes__ == [teardown_note("db")]
    assert trio.current_time() == 4


def test_ctrl_c_while_the_run_waits_tears_down_the_held_resource() -> None:
    res = Resources()
    watch = Watch()

    async def press_ctrl_c() -> None:
        await trio.sleep(3)
        # Raised from the run loop itself (KI-protected): Trio delivers it to the main
        # task, which is waiting inside the run, as when Ctrl-C arrives during a sleep.
        trio.lowlevel.current_trio_token().run_sync_soon(signal.raise_signal, signal.SIGINT)
        await trio.sleep(10)

    graph = Graph(
        [
            res.step(GEN, "db", setup=1, teardown=2),
            res.rec.step("use", 10, depends_on=["db"]),
            Step("ctrl-c", press_ctrl_c),
        ]
    )
    with pytest.raises(KeyboardInterrupt):
        trio.run(
            exegraph.run,
            graph,
            RunOptions(instruments=[watch]),
            clock=trio.testing.MockClock(autojump_threshold=0),
        )
    assert res.rec.times("teardown") == {"db": 3}
    assert res.rec.times("torn-down") == {"db": 5}
    (result,) = watch.results
    assert result["db"].status is StepStatus.DONE
    assert result["db"].teardown_error is None
    assert result["use"].status is StepStatus.CANCELLED


def _sigint_on_first_line_of(function: Callable[..., object]) -> Callable[..., object]:
    """A `sys.settrace` hook that raises a real SIGINT once, as `function` begins."""
    code = function.__code__
    fired: list[bool] = []

    def local(frame: types.FrameType, event: str, arg: object) -> object:
        if event == "line" and not fired:
            fired.append(True)
            signal.raise_signal(signal.SIGINT)  # handled by Trio's handler, here and now
        return local

    def tracer(frame: types.FrameType, event: str, arg: object) -> object:
        return local if frame.f_code is code else None

    return tracer


@pytest.mark.parametrize("kind", KINDS)
def test_ctrl_c_just_after_the_setup_still_holds_and_tears_the_resource_down(kind: str) -> None:
    # Found by a real-SIGINT fuzz: a Ctrl-C landing between the setup's `yield` and the
    # wait for its dependents left the resource set up, the step Cancelled, and its
    # teardown never ran. That stretch is KI-protected now: Trio gives the interrupt to
    # the main task, here the run's own (so this test calls `trio.run` itself).
    res = Resources()
    watch = Watch()
    graph = Graph(
        [
            res.step(kind, "db", setup=1, teardown=2, value="conn"),
            res.rec.step("use", 10, depends_on=["db"]),
        ]
    )
    sys.settrace(_sigint_on_first_line_of(_resources.hold))  # type: ignore[arg-type]
    try:
        with pytest.raises(KeyboardInterrupt):
            trio.run(
                exegraph.run,
                graph,
                RunOptions(instruments=[watch]),
                clock=trio.testing.MockClock(autojump_threshold=0),
            )
    finally:
        sys.settrace(None)
    assert res.rec.times("torn-down") == {"db": 3}
    (result,) = watch.results
    assert result["db"].status is StepStatus.DONE
    assert result["db"].value == "conn"
    assert result["db"].teardown_error is None


@pytest.mark.parametrize("kind", KINDS)
async def test_an_interrupt_after_the_setup_ended_before_its_value_was_taken_still_tears_down(
    autojump_clock: trio.testing.MockClock, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The last stretch a Ctrl-C can land in unprotected: the setup's generator has
    # yielded, its value not yet taken. The generator, suspended at its `yield`, says
    # the setup ended: the resource is held and torn down, its value unknown (None).
    real_set_up = _resources.set_up  # (what `_attempts` calls, under that name)

    async def set_up_then_ctrl_c(run: object, step: Step, holder: object) -> object:
        await real_set_up(run, step, holder)  # type: ignore[arg-type]
        raise KeyboardInterrupt

    monkeypatch.setattr(_attempts, "set_up", set_up_then_ctrl_c)
    res = Resources()
    watch = Watch()
    graph = Graph(
        [
            res.step(kind, "db", setup=1, teardown=2, value="conn"),
            res.rec.step("use", 10, depends_on=["db"]),
        ]
    )
    with pytest.raises(KeyboardInterrupt):
        await exegraph.run(graph, RunOptions(instruments=[watch]))
    assert res.rec.times("torn-down") == {"db": 3}
    (result,) = watch.results
    assert result["db"].status is StepStatus.DONE
    assert result["db"].value is None
    assert result["use"].status is StepStatus.SKIPPED


@pytest.mark.parametrize("kind", KINDS)
async def test_an_interrupt_before_the_setup_began_leaves_nothing_to_tear_down(
    autojump_clock: trio.testing.MockClock, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Found by the fuzz after the fix above: a new generator of a closure (every one
    # `Resources` makes) looked as if it had run, and a Ctrl-C before the setup began
    # had its teardown run the setup ("yielded a second time").
    async def ctrl_c_first(run: object, step: Step, holder: object) -> object:
        raise KeyboardInterrupt

    monkeypatch.setattr(_attempts, "set_up", ctrl_c_first)
    res = Resources()
    watch = Watch()
    graph = Graph([res.step(kind, "db", setup=1, teardown=2)])
    with pytest.raises(KeyboardInterrupt):
        await exegraph.run(graph, RunOptions(instruments=[watch]))
    assert res.rec.times("start") == {}  # the setup never ran, nor did a teardown
    (result,) = watch.results
    assert result["db"].status is not StepStatus.DONE
    assert result["db"].teardown_error is None


@pytest.mark.parametrize("kind", KINDS)
async def test_a_setup_has_ended_only_at_its_yield(kind: str) -> None:
    released = trio.Event()

    async def resource() -> AsyncIterator[str]:  # a closure, as most actions are
        await released.wait()
        yield "conn"

    action = resource if kind == GEN else asynccontextmanager(resource)
    step = Step("db", action)
    holder: Any = action()
    generator = holder if kind == GEN else holder.gen
    assert not _resources.set_up_ended(step, holder)  # created, not started
    async with trio.open_nursery() as nursery:
        nursery.start_soon(generator.asend, None)
        await trio.testing.wait_all_tasks_blocked()
        assert generator.ag_await is not None  # suspended at the setup's `await`
        assert not _resources.set_up_ended(step, holder)
        released.set()
    assert _resources.set_up_ended(step, holder)  # suspended at its `yield`
    await generator.aclose()
    assert not _resources.set_up_ended(step, holder)  # finished


@pytest.mark.parametrize("kind", KINDS)
async def test_an_interrupt_inside_the_setup_leaves_nothing_to_tear_down(
    autojump_clock: trio.testing.MockClock, kind: str
) -> None:
    # The setup did not reach its `yield`: nothing was set up, nothing is torn down.
    res = Resources()
    watch = Watch()
    interrupt = KeyboardInterrupt()
    graph = Graph([res.step(kind, "db", setup=1, error=interrupt)])
    with pytest.raises(KeyboardInterrupt) as info:
        await exegraph.run(graph, RunOptions(instruments=[watch]))
    assert info.value is interrupt
    assert res.rec.times("teardown") == {}
    (result,) = watch.results
    assert result["db"].status is not StepStatus.DONE


async def test_a_class_whose_instances_are_async_context_managers_makes_a_resource_step(
    autojump_clock: trio.testing.MockClock,
) -> None:
    exits: list[tuple[float, object]] = []

    class Pool:
        async def __aenter__(self) -> Pool:
            await trio.sleep(1)
            return self

        async def __aexit__(self, *exc_info: object) -> None:
            exits.append((trio.current_time(), exc_info[0]))

    rec = Recorder()
    graph = Graph([Step("pool", Pool), rec.step("use", 2, depends_on=["pool"])])
    result = await exegraph.run_with_result(graph)
    assert isinstance(result["pool"].value, Pool)
    assert (result["pool"].start, result["pool"].end) == (0, 1)
    assert exits == [(3, None)]


# -- what the code at the yield is resumed with ----------------------------------------------


async def test_a_generator_runs_the_code_after_a_bare_yield_even_when_the_run_failed(
    autojump_clock: trio.testing.MockClock,
) -> None:
    after_yield: list[float] = []

    async def db() -> AsyncIterator[None]:
        await trio.sleep(1)
        yield  # no try/finally: resumed with __anext__, as pytest resumes a yield fixture
        after_yield.append(trio.current_time())

    rec = Recorder()
    graph = Graph(
        [
            Step("db", db),
            rec.step("use", 10, depends_on=["db"]),
            rec.step("bad", 2, error=ValueError("bad")),
        ]
    )
    result = await exegraph.run_with_result(graph)
    assert result.error is not None
    assert after_yield == [2]
    assert result["db"].teardown_error is None


@pytest.mark.parametrize("stop", STOPS)
async def test_a_generator_is_resumed_with_anext_whatever_stopped_the_run(
    autojump_clock: trio.testing.MockClock, stop: str
) -> None:
    res = Resources()
    steps = [res.step(GEN, "db", setup=1), res.rec.step("use", 10, depends_on=["db"])]
    await run_stopped(Graph(steps + stopper(res.rec, stop)), stop)
    assert res.given == {"db": None}
    assert res.rec.times("torn-down") == {"db": 3}


async def test_a_context_manager_exits_with_none_when_nothing_went_wrong(
    autojump_clock: trio.testing.MockClock,
) -> None:
    res = Resources()
    graph = Graph([res.step(ACM, "db", setup=1), res.rec.step("use", 1, depends_on=["db"])])
    await exegraph.run(graph)
    assert res.given == {"db": None}


@pytest.mark.parametrize("policy", list(ErrorPolicy))
async def test_a_context_manager_exits_with_the_runs_first_failure_so_far(
    autojump_clock: trio.testing.MockClock, policy: ErrorPolicy
) -> None:
    res = Resources()
    first, second = ValueError("first"), KeyError("second")
    graph = Graph(
        [
            res.step(ACM, "db", setup=1),
            res.rec.step("use", 4, depends_on=["db"]),
            res.rec.step("skipped", 1, depends_on=["first"]),
            res.rec.step("first", 2, error=first),
            res.rec.step("second", 3, error=second),
            res.step(ACM, "late", setup=0.5),
        ]
    )
    result = await exegraph.run_with_result(graph, RunOptions(error_policy=policy))
    assert res.given["late"] is None  # torn down at 0.5, before any failure
    assert res.given["db"] is first
    assert result["db"].teardown_error is None  # re-raising what it was given is no error
    assert result.error is not None
    assert result.error.exceptions.count(first) == 1
    assert first.__notes__ == ["exegraph: raised by step 'first'"]


async def test_a_context_manager_is_not_given_another_resources_teardown_error(
    autojump_clock: trio.testing.MockClock,
) -> None:
    res = Resources()
    torn = OSError("teardown")
    graph = Graph(
        [
            res.step(ACM, "db", setup=1),
            res.step(ACM, "cache", setup=1, teardown_error=torn, depends_on=["db"]),
            res.rec.step("use", 1, depends_on=["cache"]),
        ]
    )
    result = await exegraph.run_with_result(graph)
    assert res.given == {"cache": None, "db": None}  # no step failed
    assert result["cache"].teardown_error is torn
    assert result.error is not None
    assert list(result.error.exceptions) == [torn]


async def test_a_context_manager_exits_with_a_step_cancelled_error_when_cancelled_from_outside(
    autojump_clock: trio.testing.MockClock,
) -> None:
    res = Resources()
    graph = Graph([res.step(ACM, "db", setup=1), res.rec.step("use", 10, depends_on=["db"])])
    with trio.move_on_after(3):
        await exegraph.run(graph)
    given = res.given["db"]
    assert isinstance(given, exegraph.StepCancelledError)
    assert (given.step_name, given.in_use) == ("db", True)  # (its setup had finished)
    assert str(given) == "the run was cancelled while resource step 'db' was in use"


async def test_a_context_manager_exits_with_the_earlier_failure_when_cancelled_from_outside(
    autojump_clock: trio.testing.MockClock,
) -> None:
    res = Resources()
    early = ValueError("early")
    graph = Graph(
        [
            res.step(ACM, "db", setup=1),
            res.rec.step("use", 10, depends_on=["db"]),
            res.rec.step("early", 2, error=early),
        ]
    )
    with trio.move_on_after(3):
        await exegraph.run(graph, CONTINUE)
    assert res.given["db"] is early


@pytest.mark.parametrize("how", ["raised", "sigint"])
async def test_a_context_manager_exits_with_the_interrupt(
    autojump_clock: trio.testing.MockClock, how: str
) -> None:
    res = Resources()
    interrupt = KeyboardInterrupt()
    graph = Graph(
        [
            res.step(ACM, "db", setup=1),
            res.rec.step("use", 10, depends_on=["db"]),
            res.rec.step("bad", 2, error=ValueError("bad")),
            ctrl_c_step(how, interrupt, res.rec),
        ]
    )
    watch = Watch()
    options = RunOptions(error_policy=ErrorPolicy.CONTINUE_ON_ERROR, instruments=[watch])
    with pytest.raises(KeyboardInterrupt) as info:
        await exegraph.run(graph, options)
    assert res.given["db"] is info.value
    if how == "raised":
        assert info.value is interrupt
    (result,) = watch.results
    assert result["db"].teardown_error is None  # re-raising what it was given is no error


# -- resources that hold scopes of their own -------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
async def test_a_resource_whose_nursery_spans_its_yield_works_and_tears_down_cleanly(
    autojump_clock: trio.testing.MockClock, kind: str
) -> None:
    ticks: list[float] = []
    served: list[float] = []

    async def server() -> None:
        try:
            while True:
                ticks.append(trio.current_time())
                await trio.sleep(1)
        finally:
            served.append(trio.current_time())

    async def service() -> AsyncIterator[trio.Nursery]:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(server)
            yield nursery
            nursery.cancel_scope.cancel()

    async def client(service: trio.Nursery) -> None:
        service.start_soon(trio.sleep, 1)  # the resource's nursery is usable by its users
        await trio.sleep(7.5)

    action: exegraph.Action = service if kind == GEN else asynccontextmanager(service)
    graph = Graph(
        [
            Step("service", action, timeout=2),
            Step("client", client, inputs={"service": "service"}),
        ]
    )
    result = await exegraph.run_with_result(graph)
    assert result.ok, result.table()
    assert result["service"].status is StepStatus.DONE
    assert result["service"].teardown_error is None
    assert ticks == [0, 1, 2, 3, 4, 5, 6, 7]
    assert served == [7.5]
    assert trio.current_time() == 7.5


@pytest.mark.parametrize("kind", KINDS)
async def test_a_resource_whose_cancel_scope_spans_its_yield_tears_down_cleanly(
    autojump_clock: trio.testing.MockClock, kind: str
) -> None:
    after: list[float] = []

    async def scoped() -> AsyncIterator[int]:
        with trio.move_on_after(100):
            yield 1
            after.append(trio.current_time())

    action: exegraph.Action = scoped if kind == GEN else asynccontextmanager(scoped)
    rec = Recorder()
    graph = Graph([Step("scoped", action, timeout=2), rec.step("use", 5, depends_on=["scoped"])])
    result = await exegraph.run_with_result(graph)
    assert result.ok, result.table()
    assert after == [5]


async def test_a_resource_whose_nursery_spans_its_yield_is_torn_down_on_fail_fast(
    autojump_clock: trio.testing.MockClock,
) -> None:
    stopped: list[float] = []

    async def server() -> None:
        try:
            await trio.sleep_forever()
        finally:
            stopped.append(trio.current_time())

    async def service() -> AsyncIterator[None]:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(server)
            yield
            nursery.cancel_scope.cancel()

    rec = Recorder()
    boom = ValueError("boom")
    graph = Graph(
        [
            Step("service", service, timeout=2),
            rec.step("client", 10, depends_on=["service"]),
            rec.step("bad", 3, error=boom),
        ]
    )
    result = await exegraph.run_with_result(graph)
    assert stopped == [3]
    assert result["service"].teardown_error is None
    assert result.error is not None
    assert result.error.exceptions == (boom,)


# -- generators that break the protocol ------------------------------------------------------


async def test_a_generator_that_never_yields_fails_its_step(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def empty() -> AsyncIterator[None]:
        await trio.sleep(1)
        if trio.current_time() < 0:  # never: it returns without yielding
            yield

    result = await exegraph.run_with_result(Graph([Step("empty", empty)]))
    error = result["empty"].error
    assert result["empty"].status is StepStatus.FAILED
    assert isinstance(error, RuntimeError)
    assert "returned without yielding" in str(error)


async def test_a_generator_that_yields_twice_fails_its_teardown_and_is_closed(
    autojump_clock: trio.testing.MockClock,
) -> None:
    closed: list[float] = []

    async def twice() -> AsyncIterator[int]:
        try:
            yield 1
            await trio.sleep(1)
            yield 2
        finally:
            closed.append(trio.current_time())

    result = await exegraph.run_with_result(Graph([Step("twice", twice)]))
    assert result["twice"].status is StepStatus.DONE
    error = result["twice"].teardown_error
    assert isinstance(error, RuntimeError)
    assert "yielded a second time" in str(error)
    assert closed == [1]
    assert result.error is not None
    assert result.error.exceptions == (error,)


@pytest.mark.parametrize("kind", KINDS)
async def test_a_cancel_scope_around_the_yield_that_expires_while_held_stays_in_the_resource(
    autojump_clock: trio.testing.MockClock, kind: str
) -> None:
    after: list[float] = []

    async def scoped() -> AsyncIterator[int]:
        with trio.move_on_after(2):  # expires while the resource is held, at t=2
            yield 1
            after.append(trio.current_time())

    action: exegraph.Action = scoped if kind == GEN else asynccontextmanager(scoped)
    rec = Recorder()
    graph = Graph([Step("scoped", action), rec.step("use", 5, depends_on=["scoped"])])
    result = await exegraph.run_with_result(graph)
    assert result.ok, result.table()
    assert result["use"].status is StepStatus.DONE
    assert result["use"].end == 5
    assert result["scoped"].teardown_error is None
    assert after == [5]


@pytest.mark.parametrize("kind", KINDS)
async def test_a_crash_in_a_held_resources_nursery_is_its_teardowns_error(
    autojump_clock: trio.testing.MockClock, kind: str
) -> None:
    crash = OSError("server crashed")

    async def server() -> None:
        await trio.sleep(3)
        raise crash

    async def service() -> AsyncIterator[trio.Nursery]:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(server)
            yield nursery
            nursery.cancel_scope.cancel()

    action: exegraph.Action = service if kind == GEN else asynccontextmanager(service)
    rec = Recorder()
    graph = Graph([Step("service", action), rec.step("client", 5, depends_on=["service"])])
    result = await exegraph.run_with_result(graph)
    assert result["client"].status is StepStatus.DONE
    assert result["client"].end == 5
    assert result["service"].status is StepStatus.DONE
    error = result["service"].teardown_error
    assert isinstance(error, ExceptionGroup)
    assert error.exceptions == (crash,)
    assert result.error is not None
    assert result.error.exceptions == (error,)


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


_WITHDRAWN_HOLDER = """
import contextlib, trio, trio.testing
from trio._core import _run as trio_run_mod
import exegraph_trio as exegraph
from exegraph_trio import ErrorPolicy, Graph, RunOptions, Step

@contextlib.asynccontextmanager
async def resource():
    yield "r"

async def ok(): pass
async def fails(): raise ValueError("x")
async def interrupts():
    await trio.lowlevel.checkpoint()
    raise KeyboardInterrupt
async def fails_later():
    await trio.sleep(1)
    raise ValueError("later")

graph = Graph([
    Step("r", resource), Step("a", ok), Step("c", fails, depends_on=["r"]),
    Step("k", interrupts), Step("f", fails, depends_on=["a"]),
    Step("g", fails, depends_on=["f"]), Step("h", fails_later, depends_on=["k"]),
])
options = RunOptions(max_concurrency=4, error_policy=ErrorPolicy.CONTINUE_ON_ERROR)
for seed in range(20):
    trio_run_mod._r.seed(seed)
    try:
        trio.run(exegraph.run, graph, options, clock=trio.testing.MockClock(autojump_threshold=0))
    except KeyboardInterrupt:
        pass
    else:
        raise AssertionError("the step's KeyboardInterrupt was not raised")
print("every run ended")
"""


def test_a_step_withdrawn_as_an_interrupt_stops_the_run_lets_its_resource_be_torn_down() -> None:
    # Found by a review's fuzzer. `c`, which needs the resource `r`, is taken between two
    # rounds; `k`'s KeyboardInterrupt stops the run before the dispatcher starts it, and
    # it is withdrawn: `r` is then due for teardown. It was never told so, and waited,
    # shielded, for ever, and the run with it (Ctrl-C could not end it), in about half
    # of Trio's orders. A subprocess, so that a hang fails the test instead of the suite.
    import subprocess

    done = subprocess.run(
        [sys.executable, "-c", _WITHDRAWN_HOLDER],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "every run ended" in done.stdout
