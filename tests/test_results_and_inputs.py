"""Section 2.1, results: a step's value, `inputs`, `keep_values`, and `Outcome` inputs.

What an action returns is its step's value (`StepTiming.value`); `Step(inputs=...)` hands
other steps' values to an action as keyword arguments; `RunOptions(keep_values=False)`
drops a value as soon as every step taking it has settled; a step whose trigger rule is
not `ALL_SUCCESS` receives its inputs as `outcome.Value` / `outcome.Error`.

Charter: virtual time only (`autojump_clock`), asserted exactly. Releases are observed
with a `weakref` to the value, checked by a step that runs after the consumers settled:
no garbage-collector timing is involved (CPython frees an object when its last reference
goes).
"""

from __future__ import annotations

import functools
import weakref

import outcome
import pytest
import trio

import exegraph_trio as exegraph
from exegraph_trio import ErrorPolicy, Graph, RunOptions, Step, StepStatus, TriggerRule
from support import Recorder

CONTINUE = ErrorPolicy.CONTINUE_ON_ERROR


class Blob:
    """A large intermediate: an object a `weakref` can watch."""

    def __init__(self, label: str) -> None:
        self.label = label


def returning(value: object, seconds: float = 0.0) -> exegraph.Action:
    """An action that sleeps `seconds`, then returns `value`."""

    async def act() -> object:
        await trio.sleep(seconds)
        return value

    return act


def producing(refs: list[weakref.ref[Blob]]) -> exegraph.Action:
    """An action returning a new `Blob("big")`, watched through a `weakref` in `refs`."""

    async def produce() -> Blob:
        blob = Blob("big")
        refs.append(weakref.ref(blob))
        return blob

    return produce


def failing(error: BaseException, seconds: float = 0.0) -> exegraph.Action:
    """An action that sleeps `seconds`, then raises `error`."""

    async def act() -> None:
        await trio.sleep(seconds)
        raise error

    return act


# -- values ------------------------------------------------------------------------------


async def test_a_steps_value_is_what_its_action_returned(
    autojump_clock: trio.testing.MockClock,
) -> None:
    payload = {"image": "registry/app:1.2"}
    result = await exegraph.run_with_result(
        Graph([Step("build", returning(payload, 2)), Step("count", returning(3))])
    )
    assert result["build"].value is payload
    assert result["count"].value == 3
    assert result["build"].end == 2


async def test_a_step_returning_nothing_has_the_value_none() -> None:
    result = await exegraph.run_with_result(Graph([Step("quiet", Recorder().action("quiet"))]))
    assert result["quiet"].status is StepStatus.DONE
    assert result["quiet"].value is None


async def test_steps_that_did_not_finish_have_no_value(
    autojump_clock: trio.testing.MockClock,
) -> None:
    graph = Graph(
        [
            Step("boom", failing(ValueError("boom"), 1)),
            Step("slow", returning("never returned", 10)),
            Step("after", returning("never run"), depends_on=["boom"]),
        ]
    )
    result = await exegraph.run_with_result(graph)
    assert [(t.name, t.status, t.value) for t in result.steps] == [
        ("boom", StepStatus.FAILED, None),
        ("after", StepStatus.SKIPPED, None),
        ("slow", StepStatus.CANCELLED, None),
    ]


# -- inputs ------------------------------------------------------------------------------


async def test_inputs_call_the_action_with_each_named_steps_value_as_a_keyword(
    autojump_clock: trio.testing.MockClock,
) -> None:
    received: list[tuple[str, int]] = []

    async def deploy(image: str, replicas: int) -> str:
        received.append((image, replicas))
        return f"{image} x{replicas}"

    graph = Graph(
        [
            Step("build", returning("registry/app:1.2", 3)),
            Step("size", returning(4, 1)),
            Step("deploy", deploy, inputs={"image": "build", "replicas": "size"}),
        ]
    )
    result = await exegraph.run_with_result(graph)
    assert received == [("registry/app:1.2", 4)]
    assert result["deploy"].value == "registry/app:1.2 x4"
    assert result["deploy"].start == 3


async def test_a_step_named_in_inputs_is_added_to_depends_on() -> None:
    async def deploy(image: str, config: str) -> None: ...

    step = Step(
        "deploy", deploy, depends_on=["lint", "build"], inputs={"image": "build", "config": "cfg"}
    )
    assert step.depends_on == ("lint", "build", "cfg")
    assert dict(step.inputs) == {"image": "build", "config": "cfg"}


async def test_one_step_may_feed_several_keywords_and_is_one_dependency() -> None:
    async def compare(left: int, right: int) -> None: ...

    step = Step("compare", compare, inputs={"left": "x", "right": "x"})
    assert step.depends_on == ("x",)


async def test_inputs_may_go_to_a_partial_or_a_callable_object(
    autojump_clock: trio.testing.MockClock,
) -> None:
    received: list[tuple[str, int]] = []

    async def tag(prefix: str, number: int) -> None:
        received.append((prefix, number))

    class Tagger:
        async def __call__(self, number: int) -> None:
            received.append(("object", number))

    graph = Graph(
        [
            Step("n", returning(7)),
            Step("partial", functools.partial(tag, "partial"), inputs={"number": "n"}),
            Step("object", Tagger(), inputs={"number": "n"}),
        ]
    )
    await exegraph.run(graph, RunOptions(max_concurrency=1))
    assert received == [("partial", 7), ("object", 7)]


async def test_a_step_with_an_input_starts_when_that_step_has_finished(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def use(value: str) -> None:
        assert value == "v"

    result = await exegraph.run_with_result(
        Graph([Step("use", use, inputs={"value": "make"}), Step("make", returning("v", 5))])
    )
    assert result["use"].start == 5
    assert [t.name for t in result.steps] == ["make", "use"]


async def test_a_failed_input_skips_an_all_success_consumer(
    autojump_clock: trio.testing.MockClock,
) -> None:
    called: list[object] = []

    async def use(value: object) -> None:
        called.append(value)

    result = await exegraph.run_with_result(
        Graph(
            [Step("make", failing(OSError("disk"), 1)), Step("use", use, inputs={"value": "make"})]
        )
    )
    assert called == []
    assert result["use"].status is StepStatus.SKIPPED
    assert isinstance(result["use"].error, exegraph.StepSkippedError)
    assert result["use"].error.failed_dependency == "make"


# -- keep_values -------------------------------------------------------------------------


async def test_by_default_every_value_is_kept_for_the_result(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def double(x: int) -> int:
        return 2 * x

    graph = Graph([Step("x", returning(21, 1)), Step("y", double, inputs={"x": "x"})])
    result = await exegraph.run_with_result(graph)
    assert (result["x"].value, result["y"].value) == (21, 42)
    assert RunOptions().keep_values is True


async def test_without_keep_values_a_value_is_released_once_every_consumer_settled(
    autojump_clock: trio.testing.MockClock,
) -> None:
    refs: list[weakref.ref[Blob]] = []
    alive: dict[str, bool] = {}

    async def quick(blob: Blob) -> str:
        return f"quick saw {blob.label}"

    async def slow(blob: Blob) -> str:
        await trio.sleep(5)
        return f"slow saw {blob.label}"

    def look(name: str) -> exegraph.Action:
        async def act() -> None:
            alive[name] = refs[0]() is not None

        return act

    graph = Graph(
        [
            Step("produce", producing(refs)),
            Step("quick", quick, inputs={"blob": "produce"}),
            Step("slow", slow, inputs={"blob": "produce"}),
            Step("after-quick", look("after-quick"), depends_on=["quick"]),
            Step("after-both", look("after-both"), depends_on=["quick", "slow"]),
        ]
    )
    result = await exegraph.run_with_result(graph, RunOptions(keep_values=False))
    assert alive == {"after-quick": True, "after-both": False}
    assert result["after-both"].start == 5
    assert result["produce"].value is None  # released
    # Values nobody takes as an input are kept.
    assert result["quick"].value == "quick saw big"
    assert result["slow"].value == "slow saw big"


async def test_without_keep_values_a_value_nobody_takes_is_kept(
    autojump_clock: trio.testing.MockClock,
) -> None:
    blob = Blob("report")
    graph = Graph(
        [
            Step("report", returning(blob, 1)),
            Step("after", returning("done"), depends_on=["report"]),  # depends, takes nothing
        ]
    )
    result = await exegraph.run_with_result(graph, RunOptions(keep_values=False))
    assert result["report"].value is blob
    assert result["after"].value == "done"


async def test_without_keep_values_a_value_is_released_when_its_consumer_is_skipped(
    autojump_clock: trio.testing.MockClock,
) -> None:
    refs: list[weakref.ref[Blob]] = []
    alive: list[bool] = []

    async def use(blob: Blob, other: None) -> None: ...

    async def look() -> None:
        await trio.sleep(1)
        alive.append(refs[0]() is not None)

    graph = Graph(
        [
            Step("produce", producing(refs)),
            Step("broken", failing(ValueError("broken"))),
            Step("use", use, inputs={"blob": "produce", "other": "broken"}),
            Step("look", look, depends_on=["produce"]),
        ]
    )
    result = await exegraph.run_with_result(
        graph, RunOptions(keep_values=False, error_policy=CONTINUE)
    )
    assert result["use"].status is StepStatus.SKIPPED
    assert alive == [False]
    assert result["produce"].value is None


@pytest.mark.parametrize("plain", [True, False], ids=["plain-producer", "retried-producer"])
async def test_without_keep_values_a_value_whose_takers_were_all_skipped_first_is_not_kept(
    autojump_clock: trio.testing.MockClock, *, plain: bool
) -> None:
    # Its only taker settled (skipped) at t=0; the value comes at t=2: it is dropped at
    # once, not kept for the whole run (and in the result).
    refs: list[weakref.ref[Blob]] = []
    alive: list[bool] = []

    async def produce() -> Blob:
        await trio.sleep(2)
        blob = Blob("big")
        refs.append(weakref.ref(blob))
        return blob

    async def consume(data: Blob) -> None: ...

    async def later() -> None:
        await trio.sleep(5)
        alive.append(refs[0]() is not None)

    retry = None if plain else exegraph.Retry(attempts=2)  # (the full driver's path)
    graph = Graph(
        [
            Step("produce", produce, retry=retry),
            Step("check", failing(ValueError("check failed"))),
            Step("consume", consume, inputs={"data": "produce"}, depends_on=["check"]),
            Step("later", later),
        ]
    )
    result = await exegraph.run_with_result(
        graph, RunOptions(keep_values=False, error_policy=CONTINUE)
    )
    assert result["consume"].status is StepStatus.SKIPPED
    assert result["produce"].status is StepStatus.DONE
    assert alive == [False]
    assert result["produce"].value is None


@pytest.mark.parametrize("seconds", [None, 10.0], ids=["no-deadline", "deadline"])
@pytest.mark.parametrize("plain", [True, False], ids=["plain", "retried"])
async def test_without_keep_values_a_failed_takers_error_does_not_hold_its_inputs(
    autojump_clock: trio.testing.MockClock, *, seconds: float | None, plain: bool
) -> None:
    # The error lives as long as the result; its traceback holds the step's own frames,
    # which must not hold the values handed to the action (the action let go of its own).
    refs: list[weakref.ref[Blob]] = []

    async def parse(data: Blob) -> None:
        del data
        raise ValueError("bad format")

    retry = None if plain else exegraph.Retry(attempts=1)
    graph = Graph(
        [
            Step("load", producing(refs)),
            Step("parse", parse, inputs={"data": "load"}, timeout=seconds, retry=retry),
        ]
    )
    result = await exegraph.run_with_result(
        graph, RunOptions(keep_values=False, error_policy=CONTINUE)
    )
    assert isinstance(result["parse"].error, ValueError)
    assert refs[0]() is None


async def test_an_outcome_input_is_the_error_itself_even_when_the_error_is_falsy(
    autojump_clock: trio.testing.MockClock,
) -> None:
    class ValidationErrors(Exception):
        """An exception that is a collection of problems: falsy when it has none."""

        def __len__(self) -> int:
            return 0

    error = ValidationErrors()
    seen: list[outcome.Outcome[object]] = []

    async def report(v: outcome.Outcome[object]) -> None:
        seen.append(v)

    graph = Graph(
        [
            Step("validate", failing(error)),
            Step("report", report, inputs={"v": "validate"}, trigger_rule=TriggerRule.ALL_DONE),
        ]
    )
    await exegraph.run_with_result(graph, RunOptions(error_policy=CONTINUE))
    assert len(seen) == 1
    assert isinstance(seen[0], outcome.Error)
    assert seen[0].error is error


async def test_without_keep_values_a_value_stays_for_a_consumers_later_attempts(
    autojump_clock: trio.testing.MockClock,
) -> None:
    seen: list[str] = []

    async def flaky(blob: Blob) -> str:
        seen.append(blob.label)
        if len(seen) == 1:
            raise OSError("first attempt fails")
        return blob.label

    graph = Graph(
        [
            Step("produce", returning(Blob("big"))),
            Step(
                "flaky",
                flaky,
                inputs={"blob": "produce"},
                retry=exegraph.Retry(attempts=2, delay=1),
            ),
        ]
    )
    result = await exegraph.run_with_result(graph, RunOptions(keep_values=False))
    assert seen == ["big", "big"]
    assert result["flaky"].value == "big"
    assert result["produce"].value is None


async def test_without_keep_values_a_cancelled_consumer_releases_its_inputs(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # Inputs alone keep a run on the plain driver (`InputsRun`): its failure and
    # cancellation paths release values as the full one's do.
    refs: list[weakref.ref[Blob]] = []
    alive: list[bool] = []

    async def use(blob: Blob) -> None:
        await trio.sleep(10)

    async def look() -> None:
        await trio.sleep(1)
        alive.append(refs[0]() is not None)
        raise OSError("stops the run")

    graph = Graph(
        [
            Step("produce", producing(refs)),
            Step("use", use, inputs={"blob": "produce"}),
            Step("look", look, depends_on=["produce"]),
        ]
    )
    result = await exegraph.run_with_result(graph, RunOptions(keep_values=False))
    assert alive == [True]  # `use` was still running, holding it
    assert result["use"].status is StepStatus.CANCELLED
    assert result["produce"].value is None
    assert refs[0]() is None


@pytest.mark.parametrize("keep_values", [True, False])
async def test_a_step_with_inputs_keeps_its_deadline_from_its_start(
    autojump_clock: trio.testing.MockClock, keep_values: bool
) -> None:
    got: list[tuple[float, str]] = []

    async def quick(word: str) -> str:
        await trio.sleep(1)
        got.append((trio.current_time(), word))
        return word.upper()

    async def stuck(word: str) -> None:
        await trio.sleep(10)

    graph = Graph(
        [
            Step("word", returning("hi", 2)),
            Step("quick", quick, inputs={"word": "word"}, timeout=1.5),
            Step("stuck", stuck, inputs={"word": "word"}, timeout=3),
        ]
    )
    result = await exegraph.run_with_result(
        graph, RunOptions(keep_values=keep_values, error_policy=CONTINUE)
    )
    assert got == [(3.0, "hi")]
    assert result["quick"].value == "HI"
    assert result["stuck"].status is StepStatus.FAILED
    assert isinstance(result["stuck"].error, exegraph.StepTimeoutError)
    assert result["stuck"].end == 5.0
    assert (result["word"].value is None) is not keep_values


def test_inputs_alone_keep_a_run_on_the_plain_driver() -> None:
    # Inputs never change a decision; `Run` (the full driver) is for what does.
    from exegraph_trio._driver import InputsRun, PlainRun, RetryRun, Run, new_run

    async def take(blob: object) -> None: ...

    steps = [Step("a", returning(1)), Step("b", take, inputs={"blob": "a"})]
    retried = [steps[0], Step("b", take, inputs={"blob": "a"}, retry=exegraph.Retry())]
    ruled = [steps[0], Step("b", take, inputs={"blob": "a"}, trigger_rule=TriggerRule.ALL_DONE)]

    async def made(graph: Graph, options: RunOptions) -> type[object]:
        return type(new_run(graph, options))

    assert trio.run(made, Graph(steps), RunOptions()) is PlainRun
    assert trio.run(made, Graph(steps), RunOptions(keep_values=False)) is InputsRun
    assert trio.run(made, Graph(retried), RunOptions(keep_values=False)) is RetryRun
    assert trio.run(made, Graph(steps), RunOptions(retry=exegraph.Retry())) is RetryRun
    assert trio.run(made, Graph(ruled), RunOptions()) is Run


# -- trigger-rule steps receive outcomes -------------------------------------------------


async def test_an_all_done_step_receives_each_input_as_an_outcome(
    autojump_clock: trio.testing.MockClock,
) -> None:
    boom = ValueError("boom")
    got: dict[str, outcome.Outcome[object]] = {}

    async def report(
        ok: outcome.Outcome[object],
        failed: outcome.Outcome[object],
        cancelled: outcome.Outcome[object],
        skipped: outcome.Outcome[object],
    ) -> None:
        got.update(ok=ok, failed=failed, cancelled=cancelled, skipped=skipped)

    graph = Graph(
        [
            Step("ok", returning("fine", 1)),
            Step("boom", failing(boom, 2)),
            Step("slow", returning("late", 10)),
            Step("never", returning("never"), depends_on=["boom"]),
            Step(
                "report",
                report,
                inputs={"ok": "ok", "failed": "boom", "cancelled": "slow", "skipped": "never"},
                trigger_rule=TriggerRule.ALL_DONE,
            ),
        ]
    )
    result = await exegraph.run_with_result(graph)  # fail-fast: "slow" is cancelled
    assert result["slow"].status is StepStatus.CANCELLED
    assert result["never"].status is StepStatus.SKIPPED
    assert result["report"].status is StepStatus.DONE
    assert result["report"].start == 2

    assert got["ok"] == outcome.Value("fine")
    failed = got["failed"]
    assert isinstance(failed, outcome.Error)
    assert failed.error is boom
    cancelled = got["cancelled"]
    assert isinstance(cancelled, outcome.Error)
    assert isinstance(cancelled.error, exegraph.StepCancelledError)
    skipped = got["skipped"]
    assert isinstance(skipped, outcome.Error)
    assert isinstance(skipped.error, exegraph.StepSkippedError)
    assert skipped.error.step_name == "never"


async def test_a_one_failed_step_receives_each_input_as_an_outcome(
    autojump_clock: trio.testing.MockClock,
) -> None:
    boom = OSError("deploy failed")
    got: list[tuple[outcome.Outcome[object], outcome.Outcome[object]]] = []

    async def notify(build: outcome.Outcome[object], deploy: outcome.Outcome[object]) -> str:
        got.append((build, deploy))
        return "paged"

    graph = Graph(
        [
            Step("build", returning("image", 1)),
            Step("deploy", failing(boom, 1), depends_on=["build"]),
            Step(
                "notify",
                notify,
                inputs={"build": "build", "deploy": "deploy"},
                trigger_rule=TriggerRule.ONE_FAILED,
            ),
        ]
    )
    result = await exegraph.run_with_result(graph)
    assert result["notify"].value == "paged"
    assert result["notify"].start == 2
    [(build, deploy)] = got
    assert build == outcome.Value("image")
    assert isinstance(deploy, outcome.Error)
    assert deploy.error is boom


async def test_a_trigger_rule_step_gets_values_wrapped_even_when_all_succeeded(
    autojump_clock: trio.testing.MockClock,
) -> None:
    got: list[object] = []

    async def summarise(a: outcome.Outcome[int], b: outcome.Outcome[int]) -> int:
        got.extend([a, b])
        return a.unwrap() + b.unwrap()

    graph = Graph(
        [
            Step("a", returning(1, 1)),
            Step("b", returning(2, 2)),
            Step("sum", summarise, inputs={"a": "a", "b": "b"}, trigger_rule=TriggerRule.ALL_DONE),
        ]
    )
    result = await exegraph.run_with_result(graph)
    assert got == [outcome.Value(1), outcome.Value(2)]
    assert result["sum"].value == 3


async def test_an_all_success_step_gets_plain_values_not_outcomes(
    autojump_clock: trio.testing.MockClock,
) -> None:
    got: list[object] = []

    async def use(a: object) -> None:
        got.append(a)

    await exegraph.run(Graph([Step("a", returning(1)), Step("use", use, inputs={"a": "a"})]))
    assert got == [1]


@pytest.mark.parametrize("keep_values", [True, False])
async def test_a_trigger_rule_step_under_continue_on_error_gets_the_failure_itself(
    autojump_clock: trio.testing.MockClock, keep_values: bool
) -> None:
    boom = KeyError("missing")
    got: list[outcome.Outcome[object]] = []

    async def cleanup(work: outcome.Outcome[object]) -> None:
        got.append(work)

    graph = Graph(
        [
            Step("work", failing(boom, 3)),
            Step("cleanup", cleanup, inputs={"work": "work"}, trigger_rule=TriggerRule.ALL_DONE),
        ]
    )
    result = await exegraph.run_with_result(
        graph, RunOptions(error_policy=CONTINUE, keep_values=keep_values)
    )
    assert result["cleanup"].start == 3
    [work] = got
    assert isinstance(work, outcome.Error)
    assert work.error is boom
