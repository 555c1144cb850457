"""Suite-wide guard: a `trio.Cancelled` escaping a test fails it.

pytest-trio runs each async test inside its own nursery, which cancels its own scope on
the way out; that scope absorbs a `Cancelled` escaping the test body, so a test whose run
leaked one would pass with its remaining asserts skipped. Every async test is wrapped so
that such a `Cancelled` becomes an `AssertionError` instead.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Coroutine, Generator

import pytest
import trio


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
