"""`run` and `run_with_result`: the engine's entry points, and what they refuse."""

from __future__ import annotations

import trio

from ._driver import new_run
from ._errors import RunError
from ._graph import Graph
from ._options import RunOptions
from ._result import RunResult

__all__ = ["run", "run_with_result"]


async def run(graph: Graph, options: RunOptions | None = None) -> None:
    """Run every step of `graph`, each as soon as its dependencies succeeded and a slot is free.

    ```python
    trio.run(exegraph.run, graph)
    ```

    Returns when every step succeeded. Under `ErrorPolicy.FAIL_FAST` (the default) the first
    failure cancels the steps in flight and starts no more; under
    `ErrorPolicy.CONTINUE_ON_ERROR` every step not downstream of a failure still runs.
    Each step runs as its own Trio task, named after the step, in the run's nursery.

    Args:
        graph: the steps to run.
        options: concurrency, error policy, deadline, hooks and instruments; the defaults
            when `None`.

    Raises:
        RunError: one or more steps failed. It holds each failed step's own exception (with
            a note naming the step) and a `StepSkippedError` for each step that never ran;
            steps cancelled by fail-fast are not in it. Also raised, as a nursery would,
            when the run was cancelled from outside and a step raised a real error while
            being cancelled.
        BaseException: a `KeyboardInterrupt` or `SystemExit` from a step, a hook, an
            instrument or Ctrl-C, itself (not in a group), after the other steps were
            cancelled.
        trio.Cancelled: an enclosing cancel scope cancelled the run.
        TypeError: `graph` is not a `Graph` (a list of steps, say), or `options` not a
            `RunOptions`; raised before any step starts.
        ValueError: a step takes slots of a pool `options.pools` does not define, or more
            slots than the pool has; or `options.durations` gives a step an estimate that
            is not a finite number of seconds >= 0; raised before any step starts.
        RuntimeError: called outside Trio (under asyncio, say).
    """
    options = _check_arguments(graph, options)
    error = await new_run(graph, options).execute(want_result=False)
    if isinstance(error, RunError):
        raise error


async def run_with_result(graph: Graph, options: RunOptions | None = None) -> RunResult:
    """Run `graph` like [`run`][exegraph_trio.run], and report how every step went.

    It never raises [`RunError`][exegraph_trio.RunError] for step failures: that error is
    in `RunResult.error` instead. An interrupt and cancellation from outside propagate as
    they do from `run`.

    Args:
        graph: the steps to run.
        options: as for `run`.

    Returns:
        A [`RunResult`][exegraph_trio.RunResult] with a timing for every step.

    Raises:
        RunError: the run was cancelled from outside and a step raised a real error while
            being cancelled (as a nursery would: the run did not end, so there is no
            result to return).
        BaseException: a `KeyboardInterrupt` or `SystemExit`, as from `run`.
        trio.Cancelled: an enclosing cancel scope cancelled the run.
        TypeError: as from `run` (`graph` or `options` of the wrong type).
        ValueError: as from `run` (pools, durations).
        RuntimeError: called outside Trio.
    """
    options = _check_arguments(graph, options)
    result = await new_run(graph, options).execute(want_result=True)
    assert isinstance(result, RunResult)
    return result


def _check_arguments(graph: object, options: object) -> RunOptions:
    """Refuse what `run` cannot take, saying what to pass instead; the options to use."""
    if not isinstance(graph, Graph):
        raise TypeError(_not_a_graph(graph))
    if options is None:
        options = RunOptions()
    elif not isinstance(options, RunOptions):
        raise TypeError(
            f"options must be exegraph.RunOptions or None, not {type(options).__name__}"
        )
    _check_trio()
    return options


def _not_a_graph(value: object) -> str:
    if isinstance(value, (list, tuple, set, frozenset)) or (
        hasattr(value, "__iter__") and not isinstance(value, (str, bytes, dict))
    ):
        return (
            f"run takes a Graph, not a {type(value).__name__}; "
            "wrap the steps in one: exegraph.run(exegraph.Graph(steps))"
        )
    return f"run takes an exegraph.Graph, not {type(value).__name__}"


def _check_trio() -> None:
    """Refuse, with advice, to run outside Trio (under asyncio, say)."""
    try:
        trio.lowlevel.current_task()
    except RuntimeError:
        raise RuntimeError(
            "exegraph runs on Trio, not on this event loop: call it from Trio, "
            "as trio.run(exegraph.run, graph) or `await exegraph.run(graph)` inside "
            "trio.run(...)"
        ) from None
