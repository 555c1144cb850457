"""Section 2.1, bad input: refused at construction, or failing its step with an error that says so.

`Retry`, `Step(inputs=, retry=, trigger_rule=)` and `RunOptions(retry=, keep_values=)`
check what they are given when they are made: each error is a `TypeError` or
`ValueError` (the builtin it resembles), names the step where one is involved, and says
what to pass instead. A resource generator that breaks the one-`yield` contract fails its
step (never yields) or its teardown (yields twice) with an error saying so, and is closed.

Charter: no I/O; runs use virtual time (`autojump_clock`); messages are matched on the
words a user needs, not on whole sentences.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio

import exegraph_trio as exegraph
from exegraph_trio import Graph, Retry, RunOptions, Step, StepStatus, TriggerRule


async def nothing() -> None:
    """An action without parameters."""


async def takes_image(image: str) -> None:
    """An action taking `image=`."""


# -- Retry -------------------------------------------------------------------------------


@pytest.mark.parametrize("attempts", [0, -1])
def test_retry_refuses_fewer_than_one_attempt(attempts: int) -> None:
    with pytest.raises(ValueError, match=r"attempts.*>= 1.*Retry\(attempts=1\) never retries"):
        Retry(attempts=attempts)


@pytest.mark.parametrize("attempts", [2.0, "3", True, None])
def test_retry_refuses_attempts_that_are_not_an_int(attempts: Any) -> None:
    with pytest.raises(TypeError, match="attempts must be an int"):
        Retry(attempts=attempts)


@pytest.mark.parametrize("field", ["delay", "max_delay"])
@pytest.mark.parametrize("seconds", [-1, -0.001, float("nan")])
def test_retry_refuses_a_negative_delay(field: str, seconds: float) -> None:
    with pytest.raises(ValueError, match=rf"Retry {field} must be >= 0 seconds"):
        Retry(**dict[str, Any]({field: seconds}))


@pytest.mark.parametrize("field", ["delay", "max_delay", "backoff", "jitter"])
def test_retry_refuses_a_number_field_that_is_not_a_number(field: str) -> None:
    with pytest.raises(TypeError, match=rf"Retry {field} must be a number"):
        Retry(**dict[str, Any]({field: "1"}))


@pytest.mark.parametrize("backoff", [0.5, 0, -2, float("nan")])
def test_retry_refuses_a_backoff_below_one(backoff: float) -> None:
    with pytest.raises(ValueError, match=r"backoff.*>= 1 \(1 keeps the delay constant\)"):
        Retry(backoff=backoff)


@pytest.mark.parametrize("jitter", [-0.1, 1.01, 2, float("nan")])
def test_retry_refuses_a_jitter_outside_zero_to_one(jitter: float) -> None:
    with pytest.raises(ValueError, match=r"jitter.*in \[0, 1\]"):
        Retry(jitter=jitter)


@pytest.mark.parametrize("jitter", [0, 0.5, 1])
def test_retry_accepts_jitter_at_and_between_the_bounds(jitter: float) -> None:
    assert Retry(jitter=jitter).jitter == jitter


@pytest.mark.parametrize(
    ("on", "shown"),
    [
        (ValueError("an instance"), "ValueError('an instance')"),
        ((OSError, "TimeoutError"), "'TimeoutError'"),
        (int, "<class 'int'>"),
        ((), "an empty tuple"),
        ([OSError], "[<class 'OSError'>]"),
    ],
)
def test_retry_refuses_an_on_that_is_not_exception_types(on: Any, shown: str) -> None:
    with pytest.raises(TypeError) as caught:
        Retry(on=on)
    message = str(caught.value)
    assert "on must be an exception type or a tuple of them, like on=(OSError," in message
    assert message.endswith(f"got {shown}")


@pytest.mark.parametrize(
    ("on", "shown"),
    [
        (KeyboardInterrupt, "KeyboardInterrupt"),
        (trio.Cancelled, "Cancelled"),
        ((OSError, SystemExit), "SystemExit"),
        (BaseExceptionGroup, "BaseExceptionGroup"),
    ],
)
def test_retry_refuses_to_name_a_base_exception_that_is_never_retried(on: Any, shown: str) -> None:
    with pytest.raises(ValueError, match=rf"Retry on={shown}: only Exceptions are retried"):
        Retry(on=on)


@pytest.mark.parametrize("on", [BaseException, Exception, ExceptionGroup, (OSError, TimeoutError)])
def test_retry_accepts_exception_types_and_what_includes_them(on: Any) -> None:
    assert Retry(on=on).on == (on if isinstance(on, tuple) else (on,))


def test_an_int_too_large_for_a_float_is_infinite_seconds_not_an_overflow() -> None:
    huge = 10**400
    retry = Retry(delay=huge, max_delay=huge, backoff=huge)
    assert (retry.delay, retry.max_delay, retry.backoff) == (float("inf"),) * 3
    assert Step("s", nothing, timeout=huge).timeout == float("inf")
    assert RunOptions(step_timeout=huge).step_timeout == float("inf")
    with pytest.raises(ValueError, match="Retry delay must be >= 0 seconds"):
        Retry(delay=-huge)
    with pytest.raises(ValueError, match=r"jitter.*in \[0, 1\]"):
        Retry(jitter=huge)
    with pytest.raises(ValueError, match="timeout must be >= 0 seconds"):
        Step("s", nothing, timeout=-huge)


# -- Step(inputs=) -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "inputs",
    [
        pytest.param("build", id="a bare str"),
        pytest.param(["build"], id="a list of names"),
        pytest.param(("image", "build"), id="a tuple"),
    ],
)
def test_inputs_that_are_not_a_mapping_are_refused(inputs: Any) -> None:
    with pytest.raises(TypeError) as caught:
        Step("deploy", takes_image, inputs=inputs)
    message = str(caught.value)
    assert "inputs of step 'deploy' must be a mapping" in message
    assert "inputs={'image': 'build'}" in message


@pytest.mark.parametrize(
    "key",
    [
        pytest.param("my-image", id="a dash"),
        pytest.param("2nd", id="a leading digit"),
        pytest.param("", id="empty"),
        pytest.param("class", id="a Python keyword"),
    ],
)
def test_an_inputs_key_that_is_not_an_identifier_is_refused(key: Any) -> None:
    async def takes_anything(**kwargs: object) -> None: ...

    with pytest.raises(
        ValueError,
        match=r"must be a Python identifier and not a keyword \(no parameter can be named "
        + r".class.\), got "
        + repr(key),
    ) as caught:
        Step("deploy", takes_anything, inputs={key: "build"})
    assert "step 'deploy'" in str(caught.value)


def test_an_inputs_key_that_is_not_a_str_is_a_type_error() -> None:
    async def takes_anything(**kwargs: object) -> None: ...

    with pytest.raises(TypeError, match=r"inputs keys of step 'deploy' .* must be a str, got 3"):
        Step("deploy", takes_anything, inputs={3: "build"})  # type: ignore[dict-item]


@pytest.mark.parametrize("name", [3, "", None])
def test_an_inputs_value_that_is_not_a_step_name_is_refused(name: Any) -> None:
    with pytest.raises(
        TypeError, match=r"inputs values of step 'deploy' must be non-empty step names"
    ):
        Step("deploy", takes_image, inputs={"image": name})


def test_a_step_taking_its_own_value_is_refused() -> None:
    with pytest.raises(ValueError, match=r"step 'deploy' takes its own value as an input"):
        Step("deploy", takes_image, inputs={"image": "deploy"})


def test_inputs_naming_a_keyword_the_action_cannot_take_are_refused() -> None:
    with pytest.raises(TypeError) as caught:
        Step("deploy", nothing, inputs={"image": "build"})
    message = str(caught.value)
    assert "step 'deploy'" in message
    assert "'image'" in message
    assert "async def nothing(image): ..." in message  # what to write instead


def test_an_inputs_key_close_to_a_parameter_is_suggested() -> None:
    # The likely mistake is the key, not the function's parameter: say both ways out.
    with pytest.raises(TypeError) as caught:
        Step("deploy", takes_image, inputs={"img": "build"})
    message = str(caught.value)
    assert "did you mean the input 'image' (not 'img'); or give it parameters" in message


def test_inputs_naming_one_keyword_too_many_are_refused() -> None:
    with pytest.raises(TypeError, match=r"step 'deploy' cannot be called.*'image', 'tag'"):
        Step("deploy", takes_image, inputs={"image": "build", "tag": "version"})


def test_inputs_for_a_positional_only_parameter_are_refused() -> None:
    async def positional(image: str, /) -> None: ...

    with pytest.raises(TypeError, match=r"step 'deploy' cannot be called"):
        Step("deploy", positional, inputs={"image": "build"})


def test_inputs_for_an_action_taking_any_keyword_are_accepted() -> None:
    async def flexible(**values: object) -> None: ...

    step = Step("report", flexible, inputs={"a": "x", "b": "y"})
    assert step.depends_on == ("x", "y")


def test_inputs_for_a_resource_generator_are_checked_too() -> None:
    async def cluster(size: int) -> AsyncIterator[str]:
        yield f"cluster of {size}"

    assert Step("cluster", cluster, inputs={"size": "count"}).is_resource
    with pytest.raises(TypeError, match=r"step 'cluster' cannot be called.*'nodes'"):
        Step("cluster", cluster, inputs={"nodes": "count"})


# -- Step(retry=, trigger_rule=) ---------------------------------------------------------


@pytest.mark.parametrize("retry", [3, "3", Retry, {"attempts": 3}])
def test_a_steps_retry_that_is_not_a_retry_is_refused(retry: Any) -> None:
    with pytest.raises(
        TypeError, match=r"retry of step 'deploy' must be an exegraph.Retry or None.*Retry\("
    ):
        Step("deploy", nothing, retry=retry)


@pytest.mark.parametrize("rule", ["all_done", None, 1, exegraph.ErrorPolicy.FAIL_FAST])
def test_a_trigger_rule_that_is_not_a_trigger_rule_is_refused(rule: Any) -> None:
    with pytest.raises(TypeError) as caught:
        Step("cleanup", nothing, trigger_rule=rule)
    message = str(caught.value)
    assert "trigger_rule of step 'cleanup' must be an exegraph.TriggerRule" in message
    assert "ALL_SUCCESS, ALL_DONE or ONE_FAILED" in message


def test_trigger_rule_values_print_as_airflow_names() -> None:
    assert [str(rule) for rule in TriggerRule] == ["all_success", "all_done", "one_failed"]
    assert Step("s", nothing).trigger_rule is TriggerRule.ALL_SUCCESS


# -- RunOptions(retry=, keep_values=) ----------------------------------------------------


@pytest.mark.parametrize("retry", [3, True, Retry, "Retry(attempts=3)"])
def test_run_options_retry_that_is_not_a_retry_is_refused(retry: Any) -> None:
    with pytest.raises(TypeError, match=r"retry must be an exegraph.Retry or None, like retry="):
        RunOptions(retry=retry)


@pytest.mark.parametrize("keep_values", [1, 0, "no", None])
def test_keep_values_that_is_not_a_bool_is_refused(keep_values: Any) -> None:
    with pytest.raises(
        TypeError, match=r"keep_values must be True or False, not " + repr(keep_values)
    ):
        RunOptions(keep_values=keep_values)


# -- resource generators that break the one-yield contract -------------------------------


async def test_a_resource_generator_that_never_yields_fails_its_step(
    autojump_clock: trio.testing.MockClock,
) -> None:
    ran: list[str] = []

    async def never() -> AsyncIterator[str]:
        try:
            await trio.sleep(1)
            if ran:  # never true: the generator returns without yielding
                yield "unreachable"
        finally:
            ran.append("finally")

    result = await exegraph.run_with_result(
        Graph([Step("cluster", never), Step("use", nothing, depends_on=["cluster"])])
    )
    timing = result["cluster"]
    assert timing.status is StepStatus.FAILED
    assert isinstance(timing.error, RuntimeError)
    assert "resource step 'cluster' returned without yielding" in str(timing.error)
    assert "yields its value once" in str(timing.error)
    assert (timing.start, timing.end) == (0, 1)
    assert ran == ["finally"]  # closed: it ran to its end
    assert result["use"].status is StepStatus.SKIPPED
    assert result.error is not None
    assert timing.error in result.error.exceptions


async def test_an_asynccontextmanager_that_never_yields_fails_its_step(
    autojump_clock: trio.testing.MockClock,
) -> None:
    @asynccontextmanager
    async def never() -> AsyncIterator[str]:
        await trio.sleep(1)
        if trio.current_time() < 0:  # never true
            yield "unreachable"

    result = await exegraph.run_with_result(Graph([Step("cluster", never)]))
    timing = result["cluster"]
    assert timing.status is StepStatus.FAILED
    assert isinstance(timing.error, RuntimeError)
    assert "didn't yield" in str(timing.error)


async def test_a_resource_generator_that_yields_twice_fails_its_teardown_and_is_closed(
    autojump_clock: trio.testing.MockClock,
) -> None:
    events: list[tuple[str, float]] = []

    async def twice() -> AsyncIterator[str]:
        try:
            yield "cluster-1"
            await trio.sleep(1)
            events.append(("after first yield", trio.current_time()))
            yield "again"
            events.append(("after second yield", trio.current_time()))  # never reached
        except GeneratorExit:
            events.append(("closed", trio.current_time()))
            raise
        finally:
            events.append(("finally", trio.current_time()))

    used: list[str] = []

    async def use(cluster: str) -> None:
        await trio.sleep(2)
        used.append(cluster)

    graph = Graph([Step("cluster", twice), Step("use", use, inputs={"cluster": "cluster"})])
    result = await exegraph.run_with_result(graph)
    timing = result["cluster"]
    assert timing.status is StepStatus.DONE  # the setup succeeded
    assert timing.value == "cluster-1"
    assert used == ["cluster-1"]
    error = timing.teardown_error
    assert isinstance(error, RuntimeError)
    assert "resource step 'cluster' yielded a second time" in str(error)
    assert "yields once" in str(error)
    assert "exegraph: raised by the teardown of step 'cluster'" in error.__notes__
    # Torn down after "use" settled at 2, then closed at its second yield.
    assert events == [("after first yield", 3), ("closed", 3), ("finally", 3)]
    assert result.error is not None
    assert result.error.exceptions == (error,)


async def test_a_teardown_yielding_twice_makes_run_raise(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def twice() -> AsyncIterator[int]:
        yield 1
        yield 2

    with pytest.RaisesGroup(pytest.RaisesExc(RuntimeError, match="yielded a second time")):
        await exegraph.run(Graph([Step("r", twice)]))


async def test_an_asynccontextmanager_that_yields_twice_fails_its_teardown(
    autojump_clock: trio.testing.MockClock,
) -> None:
    closed: list[bool] = []

    @asynccontextmanager
    async def twice() -> AsyncIterator[int]:
        try:
            yield 1
            yield 2
        finally:
            closed.append(True)

    result = await exegraph.run_with_result(Graph([Step("r", twice)]))
    assert result["r"].status is StepStatus.DONE
    assert isinstance(result["r"].teardown_error, RuntimeError)
    assert "didn't stop" in str(result["r"].teardown_error)
    assert closed == [True]
    assert not result.ok


async def _takes_a_and_any(a: object, **values: object) -> None: ...


class _CallableTakingAny:
    async def __call__(self, **values: object) -> None: ...

    async def method(self, **values: object) -> None: ...


@pytest.mark.parametrize(
    ("action", "keyword"),
    [
        (functools.partial(_takes_a_and_any, 0), "a"),
        (_CallableTakingAny(), "self"),
        (_CallableTakingAny().method, "self"),
    ],
    ids=["partial-binds-it", "callable-object-self", "bound-method-self"],
)
def test_inputs_for_a_parameter_already_bound_are_refused(action: Any, keyword: str) -> None:
    # `**values` would take the keyword, but the call would give it twice ("multiple
    # values for argument"): refused when the step is made, as the spec asks.
    with pytest.raises(TypeError, match=rf"step 'deploy' already has '{keyword}', bound by"):
        Step("deploy", action, inputs={keyword: "build"})
    assert Step("deploy", action, inputs={"other": "build"}).inputs == {"other": "build"}


def test_the_message_quoted_by_the_guide_is_the_one_raised() -> None:
    # docs/guides/recovering.md quotes the error for an input the action cannot take.
    async def deploy(image: str) -> None:
        pass

    guide = Path(__file__).parents[1] / "docs" / "guides" / "recovering.md"
    quoted = [
        line
        for line in guide.read_text(encoding="utf-8").splitlines()
        if line.startswith("TypeError: the action of step 'deploy'")
    ]
    with pytest.raises(TypeError) as info:
        Step("deploy", deploy, inputs={"img": "build"})
    assert quoted == [f"TypeError: {info.value}"]
