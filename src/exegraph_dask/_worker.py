"""What runs on a Dask worker: the step's function, under the step's trace context.

Workers import it (with the package) when they unpickle a task that carries a trace
context, or keyword arguments `Client.submit` would take as its own; other tasks are the
step's function itself. `call` costs an attach and a detach when a context came along.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

try:
    from opentelemetry import context as _context
    from opentelemetry import propagate as _propagate
except ImportError:  # a worker without OpenTelemetry: nothing could record a span anyway
    _context = _propagate = None  # type: ignore[assignment]

__all__ = ["call"]

T = TypeVar("T")


def call(
    carrier: Mapping[str, str],
    fn: Callable[..., T],
    args: tuple[object, ...],
    kwargs: Mapping[str, Any],
) -> T:
    """Call `fn(*args, **kwargs)`, with the context `carrier` describes attached if any.

    `carrier` holds W3C Trace Context headers (`traceparent`, maybe `tracestate` and
    `baggage`) injected where the task was submitted, or nothing when no span was current
    there. While `fn` runs, the span they name is the current span, so spans `fn` starts
    are its children — exported if the worker has an OpenTelemetry SDK set up.
    """
    if not carrier or _propagate is None:
        return fn(*args, **kwargs)
    token = _context.attach(_propagate.extract(carrier))
    try:
        return fn(*args, **kwargs)
    finally:
        _context.detach(token)
