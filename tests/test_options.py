"""`RunOptions`: defaults, normalisation and the errors for bad values."""

from __future__ import annotations

import math
import os
from typing import Any

import attrs
import pytest

import exegraph_trio as exegraph
from exegraph_trio import ErrorPolicy, RunOptions


def test_defaults() -> None:
    options = RunOptions()
    assert options.max_concurrency == 0
    assert options.error_policy is ErrorPolicy.FAIL_FAST
    assert options.step_timeout is None
    assert options.on_step_start is None
    assert options.on_step_done is None
    assert options.instruments == ()


def test_the_concurrency_limit_resolves_zero_to_twice_the_cpus(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(os, "cpu_count", lambda: 4)
    assert RunOptions().concurrency_limit == 8
    assert RunOptions(max_concurrency=-3).max_concurrency == 0
    assert RunOptions(max_concurrency=-3).concurrency_limit == 8
    assert RunOptions(max_concurrency=3).concurrency_limit == 3
    monkeypatch.setattr(os, "cpu_count", lambda: None)
    assert RunOptions().concurrency_limit == 2


def test_a_zero_step_timeout_means_none() -> None:
    assert RunOptions(step_timeout=0).step_timeout is None
    assert RunOptions(step_timeout=2).step_timeout == 2.0


@pytest.mark.parametrize(
    ("field", "value", "error"),
    [
        ("max_concurrency", 2.5, TypeError),
        ("max_concurrency", True, TypeError),
        ("error_policy", "FailFast", TypeError),
        ("step_timeout", -1, ValueError),
        ("step_timeout", math.nan, ValueError),
        ("step_timeout", "1", TypeError),
        ("on_step_start", 3, TypeError),
        ("on_step_done", "print", TypeError),
        ("instruments", [object()], TypeError),
        ("instruments", 3, TypeError),
    ],
)
def test_bad_values_are_refused(field: str, value: Any, error: type[Exception]) -> None:
    with pytest.raises(error, match=field.split("_", maxsplit=1)[0]):
        RunOptions(**{field: value})


def test_a_single_instrument_is_accepted_as_a_sequence_of_one() -> None:
    instrument = exegraph.Instrument()
    assert RunOptions(instruments=instrument).instruments == (instrument,)


def test_options_are_frozen_and_evolve() -> None:
    options = RunOptions(max_concurrency=2)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        options.max_concurrency = 3  # type: ignore[misc]
    assert attrs.evolve(options, step_timeout=5).step_timeout == 5


@pytest.mark.parametrize("hook", ["on_step_start", "on_step_done"])
def test_an_async_hook_is_refused_because_nothing_would_await_it(hook: str) -> None:
    async def never_awaited(*args: object) -> None:
        pass

    with pytest.raises(TypeError, match=rf"{hook} must be a plain \(sync\) function"):
        RunOptions(**{hook: never_awaited})  # type: ignore[arg-type]


def test_an_instrument_with_async_methods_is_refused_because_nothing_would_await_them() -> None:
    # A run calls an instrument's methods on the scheduler's path: an `async def` one
    # made a coroutine that was never awaited (a RuntimeWarning) and never ran.
    class Late(exegraph.Instrument):
        async def step_started(self, run: object, step: object) -> None:  # type: ignore[override]
            pass

        async def run_done(self, run: object, result: object) -> None:  # type: ignore[override]
            pass

    with pytest.raises(TypeError, match="never awaited") as info:
        RunOptions(instruments=[exegraph.Instrument(), Late()])
    assert "Late.step_started and Late.run_done are async functions" in str(info.value)
    assert "send_nowait" in str(info.value)
    one = exegraph.Instrument()
    one.step_done = Late().run_done  # type: ignore[method-assign,assignment]
    with pytest.raises(TypeError, match=r"Instrument\.step_done is an async function"):
        RunOptions(instruments=one)
    assert "Instrument" not in _hint_of_an_async_hook()


def _hint_of_an_async_hook() -> str:
    async def hook(name: str) -> None:
        pass

    with pytest.raises(TypeError) as info:
        RunOptions(on_step_start=hook)
    return str(info.value)
