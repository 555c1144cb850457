"""Suite-wide guards: a `trio.Cancelled` escaping a test fails it, and so does a run whose
core is left counting steps started in a round of Trio's scheduler that never ended.

pytest-trio runs each async test inside its own nursery, which cancels its own scope on
the way out; that scope absorbs a `Cancelled` escaping the test body, so a test whose run
leaked one would pass with its remaining asserts skipped. Every async test is wrapped so
that such a `Cancelled` becomes an `AssertionError` instead.

The driver counts, in `Core.fresh`, the steps it started (or retries it resumed) in the
current round, and lists in `Core.new_waits` the steps that began waiting out a retry's
delay in it; it sets both back between two rounds. A run's nursery waits for the tasks it
started, which begin in a later round, and for every retry's wait, which ends in a later
round, so both are empty when a run ends, however it ends. Every run of every test is
checked.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Coroutine, Generator

import pytest
import trio
from trio.lowlevel import enable_ki_protection

from exegraph_trio import _driver


def _fail_on_stray_cancelled(
    test: Callable[..., Coroutine[object, object, None]],
) -> Callable[..., Coroutine[object, object, None]]:
    @functools.wraps(test)
    async def guarded(*args: object, **kwargs: object) -> None:
        try:
            await test(*args, **kwargs)
        except trio.Cancelled as exc:
            raise AssertionError(
                "a trio.Cancelled escaped the test, though no scope of the test was cancelled"
            ) from exc

    return guarded


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    if (
        isinstance(item, pytest.Function)
        and inspect.iscoroutinefunction(item.obj)
        and not hasattr(item.obj, "hypothesis")
    ):
        item.obj = _fail_on_stray_cancelled(item.obj)
    yield


@pytest.fixture(autouse=True)
def _no_round_is_left_counting(monkeypatch: pytest.MonkeyPatch) -> Generator[None, None, None]:
    left: list[int] = []
    execute = _driver.Run.execute

    @enable_ki_protection
    async def counted(self: _driver.Run, *, want_result: bool) -> object:
        try:
            return await execute(self, want_result=want_result)
        finally:
            if self.core.fresh or self.core.new_waits:
                left.append(self.core.fresh + len(self.core.new_waits))

    monkeypatch.setattr(_driver.Run, "execute", counted)
    yield
    assert not left, f"runs ended counting steps started in a round not over: {left}"
