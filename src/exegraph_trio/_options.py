"""`RunOptions` and `ErrorPolicy`: how one run behaves."""

from __future__ import annotations

import enum
import inspect
import math
import os
import types
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Final, final

import attrs

from ._instrument import Instrument
from ._lifecycle import Retry, to_float
from ._pools import Pool
from ._step import is_async_callable

__all__ = ["ErrorPolicy", "RunOptions"]


@final
class ErrorPolicy(enum.Enum):
    """What a run does when a step fails.

    `str()` gives the name used by the Go original and in traces: `"FailFast"`,
    `"ContinueOnError"`.
    """

    FAIL_FAST = "FailFast"
    """At the first failure, cancel the steps in flight and start no more."""

    CONTINUE_ON_ERROR = "ContinueOnError"
    """Keep going: every step not downstream of a failure runs to completion; the
    transitive dependents of failed steps are skipped."""

    def __str__(self) -> str:
        return self.value


def _convert_concurrency(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(
            f"max_concurrency must be an int (0 for the default), not {type(value).__name__}: "
            f"{value!r}"
        )
    return max(value, 0)


def _convert_step_timeout(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(
            f"step_timeout must be a number of seconds or None, not {type(value).__name__}: "
            f"{value!r}"
        )
    seconds = to_float(value)
    if math.isnan(seconds) or seconds < 0:
        raise ValueError(f"step_timeout must be >= 0 seconds (0 means none), got {value!r}")
    return seconds if seconds else None


def _check_policy(options: RunOptions, attribute: attrs.Attribute[ErrorPolicy], value: Any) -> None:
    if not isinstance(value, ErrorPolicy):
        raise TypeError(
            f"error_policy must be an ErrorPolicy (ErrorPolicy.FAIL_FAST or "
            f"ErrorPolicy.CONTINUE_ON_ERROR), not {type(value).__name__}: {value!r}"
        )


def _check_hook(options: RunOptions, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None and not callable(value):
        raise TypeError(f"{attribute.name} must be a callable or None, not {value!r}")
    if is_async_callable(value):
        raise TypeError(
            f"{attribute.name} must be a plain (sync) function: hooks run on the scheduler's "
            f"path and are never awaited, so {value!r} would never run; do async work in "
            "the step's action, or hand it to a task of your own (send it on a Trio "
            "memory channel with `send_nowait`)"
        )


def _convert_instruments(value: Any) -> tuple[Instrument, ...]:
    if value is None:
        return ()
    if not isinstance(value, Iterable | Instrument):
        raise TypeError(f"instruments must be a sequence of Instrument, not {value!r}")
    items = (value,) if isinstance(value, Instrument) else tuple(value)
    bad = [item for item in items if not isinstance(item, Instrument)]
    if bad:
        raise TypeError(
            "instruments must be exegraph_trio.Instrument instances (subclass it and override "
            f"the methods you need), got {', '.join(repr(item) for item in bad)}"
        )
    for item in items:
        _check_sync_methods(item)
    return items


_INSTRUMENT_METHODS: Final = tuple(
    name for name, value in vars(Instrument).items() if inspect.isfunction(value)
)
"""The methods of `Instrument` that a run calls (`run_started`, `step_done`, ...)."""


def _check_sync_methods(instrument: Instrument) -> None:
    """Refuse an instrument with an `async def` method: a run calls them and never awaits."""
    cls = type(instrument).__name__
    awaited = [
        f"{cls}.{name}"
        for name in _INSTRUMENT_METHODS
        if is_async_callable(getattr(instrument, name))
    ]
    if awaited:
        named = " and ".join([", ".join(awaited[:-1]), awaited[-1]] if awaited[1:] else awaited)
        raise TypeError(
            f"{named} "
            f"{'is an async function' if len(awaited) == 1 else 'are async functions'}: "
            "an Instrument's methods run on the scheduler's path and are never awaited, so "
            f"{'it' if len(awaited) == 1 else 'they'} would never run; make "
            f"{'it a plain def' if len(awaited) == 1 else 'them plain defs'}, and hand async "
            "work to a task of your own (send it on a Trio memory channel with "
            "`send_nowait`)"
        )


def _check_retry(options: RunOptions, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None and not isinstance(value, Retry):
        raise TypeError(
            "retry must be an exegraph.Retry or None, like retry=Retry(attempts=3), not "
            f"{type(value).__name__}: {value!r}"
        )


def _check_bool(options: RunOptions, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not isinstance(value, bool):
        raise TypeError(f"{attribute.name} must be True or False, not {value!r}")


def _check_durations(options: RunOptions, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None and not isinstance(value, Mapping):
        raise TypeError(
            "durations must be a mapping of step name -> estimated seconds (a dict, or an "
            f"exegraph.DurationLog), not {type(value).__name__}: {value!r}"
        )


def _convert_pools(value: Any) -> Mapping[str, int | Pool]:
    if value is None:
        return types.MappingProxyType({})
    if not isinstance(value, Mapping):
        raise TypeError(
            "pools must be a mapping of pool name -> size (an int, private to the run) or "
            f"exegraph.Pool (shared by runs), like pools={{'db': 2}}, not "
            f"{type(value).__name__}: {value!r}"
        )
    bad = {
        k: v
        for k, v in value.items()
        if not isinstance(k, str)
        or not k
        or not (isinstance(v, Pool) or (isinstance(v, int) and not isinstance(v, bool)))
    }
    if bad:
        raise TypeError(
            "pools must map non-empty names to an int size or an exegraph.Pool, got "
            + ", ".join(f"{k!r}: {v!r}" for k, v in bad.items())
        )
    small = {k: v for k, v in value.items() if isinstance(v, int) and v < 1}
    if small:
        raise ValueError(
            "a pool's size must be >= 1, got "
            + ", ".join(f"{k!r}: {v!r}" for k, v in small.items())
        )
    names: dict[int, list[str]] = {}  # a shared pool's names, by the object's id
    for k, v in value.items():
        if isinstance(v, Pool):
            names.setdefault(id(v), []).append(k)
    twice = [aliases for aliases in names.values() if len(aliases) > 1]
    if twice:
        raise ValueError(
            "one exegraph.Pool is given under several names, "
            + "; ".join(" and ".join(map(repr, aliases)) for aliases in twice)
            + ": a step naming two of them would take its slots twice over; give each "
            "Pool object one name"
        )
    return types.MappingProxyType(dict(value))


@final
@attrs.frozen
class RunOptions:
    """How [`run`][exegraph_trio.run] executes a graph. Every field is optional.

    ```python
    options = RunOptions(
        max_concurrency=8,
        error_policy=ErrorPolicy.CONTINUE_ON_ERROR,
        step_timeout=60,
        on_step_done=lambda name, error: print(name, error or "ok"),
    )
    await exegraph.run(graph, options)
    ```

    Make a changed copy with `attrs.evolve(options, max_concurrency=2)`.

    Args:
        max_concurrency: most step actions running at once. `0` (the default) means twice
            the number of CPUs; a negative value is treated as `0`.
        error_policy: what a failure does to the rest of the run.
        step_timeout: seconds each step may run; `None` or `0` means no deadline.
            `Step.timeout` overrides it per step.
        on_step_start: called with the step's name just before its action, in the step's
            own task and context. Hooks are plain (sync) functions: an `async def` hook
            is refused with a `TypeError`, since nothing would await it.
        on_step_done: called with the step's name and `None` on success, its exception on
            failure, a [`StepTimeoutError`][exegraph_trio.StepTimeoutError] on timeout or a
            [`StepCancelledError`][exegraph_trio.StepCancelledError] when cancelled mid-flight;
            exactly once for every step that started, in the same task and context as
            `on_step_start`. The step's dependents start only after it returns.
        instruments: richer observers; see [`Instrument`][exegraph_trio.Instrument].
        retry: how to retry the steps that have no `Step.retry` of their own
            ([`Retry`][exegraph_trio.Retry]); `None` (the default): no retries.
        keep_values: keep every step's value for the
            [`RunResult`][exegraph_trio.RunResult] (`StepTiming.value`; the default).
            With `False`, a value is released as soon as every step that takes it as an
            input has settled, so large intermediates do not live for the whole run
            (values nobody takes as an input are kept).
        pools: the pools steps may take slots of (`Step(pools=...)`), by name: an `int`
            size makes a pool private to this run, an [`exegraph.Pool`][exegraph_trio.Pool]
            is shared by every run given it. A step starts when a slot of the run and
            all its pool slots are free, taken at once; among ready steps, the
            highest-priority one that fits starts first. `run` refuses, before any step
            starts, a step using a pool that is not here or asking more slots than its
            size (`ValueError` naming every such step). One `Pool` object under two
            names is a `ValueError` (a step naming both would take its slots twice).
        durations: estimated seconds of each step, by name (a `dict`, or an
            [`exegraph.DurationLog`][exegraph_trio.DurationLog] that learns them). When
            given, rule 3's priority is the step's *critical-path length*: its estimate
            plus the longest estimated path through its dependents (ninja's rule), ties
            broken by transitive dependent count, then graph order. A step without an
            estimate gets the median of the known ones (1 s when none). Names that are
            not in the graph are ignored; an estimate that is not a finite number of
            seconds >= 0 (negative, NaN, infinite, not a number) is a `ValueError` when
            the run starts.

    Hooks and instruments observe, they never change an outcome: one that raises is logged
    (logger `exegraph_trio`) with its traceback and not called again during that run.

    Raises:
        TypeError: a field has the wrong type: `max_concurrency` not an `int` (a `bool`
            or a `float` is refused too), `step_timeout` not a number or `None`,
            `error_policy` not an `ErrorPolicy`, a hook not a plain (sync) callable,
            an instrument not an `Instrument` or with an `async def` method, `retry` not
            a `Retry` or `None`, `keep_values` not a `bool`, `pools` not a mapping of
            names to an `int` or a `Pool`, `durations` not a mapping or a `DurationLog`.
        ValueError: a negative or NaN `step_timeout`, a pool size below 1, or one `Pool`
            object under two names.
    """

    max_concurrency: int = attrs.field(default=0, converter=_convert_concurrency)
    error_policy: ErrorPolicy = attrs.field(default=ErrorPolicy.FAIL_FAST, validator=_check_policy)
    step_timeout: float | None = attrs.field(default=None, converter=_convert_step_timeout)
    on_step_start: Callable[[str], object] | None = attrs.field(default=None, validator=_check_hook)
    on_step_done: Callable[[str, BaseException | None], object] | None = attrs.field(
        default=None, validator=_check_hook
    )
    instruments: Sequence[Instrument] = attrs.field(default=(), converter=_convert_instruments)
    retry: Retry | None = attrs.field(default=None, validator=_check_retry)
    keep_values: bool = attrs.field(default=True, validator=_check_bool)
    pools: Mapping[str, int | Pool] = attrs.field(
        factory=dict, converter=_convert_pools, hash=False
    )
    durations: Mapping[str, float] | None = attrs.field(
        default=None, validator=_check_durations, hash=False
    )

    @property
    def concurrency_limit(self) -> int:
        """The bound this run applies: `max_concurrency`, or twice the CPU count when it is 0."""
        if self.max_concurrency:
            return self.max_concurrency
        return 2 * (os.cpu_count() or 1)
