"""`Step`: one named async action and the names it depends on."""

from __future__ import annotations

import inspect
import math
import types
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeAlias, final

import attrs

__all__ = ["Action", "Step", "is_async_callable"]

Action: TypeAlias = Callable[[], Awaitable[object]]
"""What a step runs: an async callable that takes no arguments."""


def is_async_callable(action: object) -> bool:
    """Whether calling `action()` is known to return a coroutine.

    True for `async def` functions and methods, `functools.partial` objects wrapping one,
    and objects whose class defines `async def __call__`.
    """
    if type(action) is types.FunctionType and action.__code__.co_flags & inspect.CO_COROUTINE:
        return True  # the common case, without inspect's unwrapping
    if inspect.iscoroutinefunction(action):
        return True
    call = getattr(type(action), "__call__", None)  # noqa: B004 - we want the class attribute
    return not inspect.isroutine(action) and inspect.iscoroutinefunction(call)


def _check_name(step: Step, attribute: attrs.Attribute[str], value: object) -> None:
    if not isinstance(value, str):
        raise TypeError(f"Step name must be a str, not {type(value).__name__}: {value!r}")
    if not value:
        raise ValueError("Step name must be a non-empty string")


def _check_action(step: Step, attribute: attrs.Attribute[Action], value: object) -> None:
    if value is None or not callable(value):
        raise TypeError(
            f"action of step {step.name!r} must be an async callable taking no arguments, "
            f"not {type(value).__name__}: {value!r}"
        )
    if not is_async_callable(value):
        raise TypeError(
            f"action of step {step.name!r} is a plain (sync) callable {value!r}; "
            "a step's action must be async: write `async def`, pass "
            "`functools.partial(async_fn, *args)` for arguments, and run blocking code "
            "inside it with `await trio.to_thread.run_sync(blocking_fn)`"
        )


def _names(value: Any, field: str) -> tuple[str, ...]:
    """Any iterable of names as a tuple without repeats; a bare `str` is refused."""
    if type(value) is tuple and not value:
        return ()
    if isinstance(value, str):
        raise TypeError(
            f"{field} must be an iterable of names, not the str {value!r} "
            f"(it would be read as its characters); write {field}=[{value!r}]"
        )
    if value is None:
        return ()
    try:
        items = tuple(value)
    except TypeError:
        raise TypeError(
            f"{field} must be an iterable of str, not {type(value).__name__}: {value!r}"
        ) from None
    bad = [item for item in items if not isinstance(item, str) or not item]
    if bad:
        raise TypeError(f"{field} must hold non-empty str names only, got {_repr_list(bad)}")
    return tuple(dict.fromkeys(items))


def _convert_depends_on(value: Iterable[str]) -> tuple[str, ...]:
    return _names(value, "depends_on")


def _convert_tags(value: Iterable[str]) -> tuple[str, ...]:
    return _names(value, "tags")


def _repr_list(items: Iterable[object]) -> str:
    return ", ".join(repr(item) for item in items)


def _convert_timeout(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(
            f"timeout must be a number of seconds or None, not {type(value).__name__}: {value!r}"
        )
    timeout = float(value)
    if math.isnan(timeout) or timeout < 0:
        raise ValueError(f"timeout must be >= 0 seconds (0 means none), got {value!r}")
    return timeout


@final
@attrs.frozen
class Step:
    """One named async action of a [`Graph`][exegraph_trio.Graph], and what it waits for.

    ```python
    async def migrate() -> None:
        await trio.sleep(1)

    Step("migrate", migrate, depends_on=["provision-db"], tags=["db"], timeout=30)
    ```

    A step is a value: comparing, hashing and copying it (`attrs.evolve`) are safe.

    Args:
        name: a non-empty name, unique within its graph.
        action: an async callable taking no arguments: an `async def` function, a
            `functools.partial` of one, or an object with `async def __call__`. Its return
            value is ignored; raising fails the step. A sync function is refused with a
            `TypeError`: run blocking code inside an async action with
            `trio.to_thread.run_sync`.
        depends_on: names of the steps that must finish successfully before this one
            starts; any iterable of `str` (not a bare `str`). Repeats are dropped.
        tags: labels for finding related steps (`Graph.with_tag`); repeats are dropped.
        timeout: seconds this step may run before it fails with
            [`StepTimeoutError`][exegraph_trio.StepTimeoutError]. Overrides
            `RunOptions.step_timeout`; `None` uses the run's, `0` or `math.inf` means no
            deadline for this step even when the run has one.

    Raises:
        TypeError: a field has the wrong type (a sync `action`, a `str` for `depends_on`).
        ValueError: an empty name, a negative timeout, or a step depending on itself.
    """

    name: str = attrs.field(validator=_check_name)
    action: Action = attrs.field(validator=_check_action)
    depends_on: tuple[str, ...] = attrs.field(
        default=(), converter=_convert_depends_on, kw_only=True
    )
    tags: tuple[str, ...] = attrs.field(default=(), converter=_convert_tags, kw_only=True)
    timeout: float | None = attrs.field(default=None, converter=_convert_timeout, kw_only=True)

    def __attrs_post_init__(self) -> None:
        if self.name in self.depends_on:
            raise ValueError(f"step {self.name!r} depends on itself; remove it from depends_on")
