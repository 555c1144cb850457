"""`Retry` and `TriggerRule`: how a step recovers from a failure, and when it runs at all."""

from __future__ import annotations

import enum
import math
from typing import Any, final

import attrs

__all__ = ["Retry", "TriggerRule"]


@final
class TriggerRule(enum.Enum):
    """When a step runs, given how its direct dependencies ended (Airflow's trigger rules).

    `str()` gives the lower-case name used by Airflow and in traces: `"all_success"`,
    `"all_done"`, `"one_failed"`.

    A rule looks at the step's direct dependencies only. A rule that does not hold skips
    the step. A step whose rule is not `ALL_SUCCESS` receives its `inputs` as
    `outcome.Outcome` objects, since a dependency may not have a value.
    """

    ALL_SUCCESS = "all_success"
    """Every dependency finished successfully (the default, and part 1's rule)."""

    ALL_DONE = "all_done"
    """Every dependency settled, whatever its outcome: cleanups, reports. Under fail-fast
    such a step still runs once its dependencies have settled."""

    ONE_FAILED = "one_failed"
    """Every dependency settled and at least one did not succeed (failed, cancelled or
    skipped because of a failure): on-failure handlers. When none failed, the step is
    skipped without error (quietly); a dependency skipped quietly counts as no failure."""

    def __str__(self) -> str:
        return self.value


def _check_attempts(retry: Retry, attribute: attrs.Attribute[int], value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"Retry attempts must be an int, not {type(value).__name__}: {value!r}")
    if value < 1:
        raise ValueError(
            f"Retry attempts counts every attempt, the first included: it must be >= 1, "
            f"got {value!r} (Retry(attempts=1) never retries)"
        )


def to_float(value: float) -> float:
    """`float(value)`, and an int too large for a float is infinite (no `OverflowError`).

    So `10**400` seconds means what `math.inf` means wherever seconds are taken.
    """
    try:
        return float(value)
    except OverflowError:
        return math.inf if value > 0 else -math.inf


def _seconds(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(
            f"Retry {name} must be a number of seconds, not {type(value).__name__}: {value!r}"
        )
    seconds = to_float(value)
    if math.isnan(seconds) or seconds < 0:
        raise ValueError(f"Retry {name} must be >= 0 seconds, got {value!r}")
    return seconds


def _convert_delay(value: Any) -> float:
    return _seconds("delay", value)


def _convert_max_delay(value: Any) -> float:
    return _seconds("max_delay", value)


def _convert_backoff(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"Retry backoff must be a number, not {type(value).__name__}: {value!r}")
    number = to_float(value)
    if math.isnan(number) or number < 1:
        raise ValueError(
            f"Retry backoff multiplies each wait by itself: it must be >= 1 (1 keeps the "
            f"delay constant), got {value!r}"
        )
    return number


def _convert_jitter(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"Retry jitter must be a number, not {type(value).__name__}: {value!r}")
    number = to_float(value)
    if math.isnan(number) or not 0 <= number <= 1:
        raise ValueError(
            f"Retry jitter is the largest fraction of a wait cut at random: it must be in "
            f"[0, 1], got {value!r}"
        )
    return number


def _convert_on(value: Any) -> tuple[type[BaseException], ...]:
    items = value if isinstance(value, tuple) else (value,)
    bad = [
        item for item in items if not (isinstance(item, type) and issubclass(item, BaseException))
    ]
    if bad or not items:
        shown = ", ".join(repr(item) for item in bad) or "an empty tuple"
        raise TypeError(
            f"Retry on must be an exception type or a tuple of them, like "
            f"on=(OSError, TimeoutError); got {shown}"
        )
    # A BaseException that is no Exception (KeyboardInterrupt, trio.Cancelled) is never
    # retried (SPEC 2.1): naming one would promise what never happens.
    never = [
        item for item in items if not (issubclass(item, Exception) or issubclass(Exception, item))
    ]
    if never:
        shown = ", ".join(item.__qualname__ for item in never)
        raise ValueError(
            f"Retry on={shown}: only Exceptions are retried; cancellation, "
            f"KeyboardInterrupt, SystemExit and other BaseExceptions end the step as they "
            f"are. Name Exception subclasses, like on=(OSError, TimeoutError)"
        )
    return items


@final
@attrs.frozen
class Retry:
    """How often, and after how long, a failed step is tried again.

    ```python
    Step("deploy", deploy, retry=Retry(attempts=5, delay=1.0, backoff=2.0, on=(OSError,)))
    ```

    The wait before attempt `k + 1` starts when attempt `k` ends and lasts
    `min(max_delay, delay * backoff ** (k - 1))` seconds, shortened by a random fraction of
    at most `jitter` of itself (so with `jitter=0` it is exact, also in virtual time). While
    it waits the step holds no concurrency slot; once the wait is over it is ready again
    and competes for a slot by priority. Each attempt gets the step's whole timeout.

    Only exceptions that are instances of `on` are retried. A
    [`StepTimeoutError`][exegraph_trio.StepTimeoutError] is an `Exception`, so timeouts are
    retried by default; cancellation, `KeyboardInterrupt` and `SystemExit` never are.

    Args:
        attempts: how many attempts in all, the first included (`>= 1`; `1` never retries).
        delay: seconds to wait before the second attempt (`>= 0`).
        backoff: factor each later wait grows by (`>= 1`).
        max_delay: the longest wait, in seconds (`>= 0`).
        jitter: the largest fraction of a wait cut at random, in `[0, 1]`.
        on: the exception type, or tuple of types, worth another attempt.

    Raises:
        TypeError: a field has the wrong type (`on` holding something not an exception type).
        ValueError: a field is out of range (`attempts=0`, a negative delay, `backoff < 1`,
            `jitter` outside `[0, 1]`), or `on` names a `BaseException` that is no
            `Exception` (`KeyboardInterrupt`, `trio.Cancelled`: never retried).
    """

    attempts: int = attrs.field(default=3, validator=_check_attempts)
    delay: float = attrs.field(default=1.0, converter=_convert_delay)
    backoff: float = attrs.field(default=2.0, converter=_convert_backoff)
    max_delay: float = attrs.field(default=60.0, converter=_convert_max_delay)
    jitter: float = attrs.field(default=0.0, converter=_convert_jitter)
    on: tuple[type[BaseException], ...] = attrs.field(default=(Exception,), converter=_convert_on)

    def wait(self, attempt: int, random: float = 0.0) -> float:
        """Seconds to wait after attempt number `attempt` (from 1) failed.

        Args:
            attempt: the attempt that just failed, counting from 1.
            random: a number in `[0, 1)`; the wait is cut by `random * jitter` of itself.
        """
        try:
            base = self.delay * self.backoff ** (attempt - 1) if self.delay else 0.0
        except OverflowError:  # a huge attempt number: the wait is capped anyway
            base = math.inf
        wait = min(self.max_delay, base)
        return wait * (1.0 - self.jitter * random) if self.jitter else wait

    def retries(self, error: BaseException) -> bool:
        """Whether `error` is worth another attempt (an instance of `on`).

        Cancellation and interrupts are never retried, whatever `on` says; the run
        decides that before asking.
        """
        return isinstance(error, self.on)
