"""Handle a failed run with `except*`: one handler per kind of failure.

Run it with `python examples/except_star.py`.

`run` raises `RunError`, an `ExceptionGroup` whose direct members are each failed step's
own exception (with a note naming the step) and a `StepSkippedError` for each step that
never ran. The group is flat, so `group.exceptions` in each handler holds exactly the
matching step errors. Handlers you leave out let their part of the group propagate, still
as a `RunError`.
"""

from __future__ import annotations

import trio

import exegraph_trio as exegraph


def work(seconds: float, *, error: Exception | None = None) -> exegraph.Action:
    """An action that takes `seconds`, then raises `error` if given."""

    async def action() -> None:
        await trio.sleep(seconds)
        if error is not None:
            raise error

    return action


def build_graph() -> exegraph.Graph:
    """Three sources that fail in three different ways, and a step that needs them all."""
    return exegraph.Graph(
        [
            exegraph.Step("mirror-eu", work(0.01, error=ConnectionError("connection reset"))),
            exegraph.Step("mirror-us", work(1.0), timeout=0.05),
            exegraph.Step("parse-config", work(0.01, error=ValueError("bad port: 'eighty'"))),
            exegraph.Step("checksums", work(0.02)),
            exegraph.Step(
                "publish", work(0.01), depends_on=["mirror-eu", "mirror-us", "parse-config"]
            ),
        ]
    )


OPTIONS = exegraph.RunOptions(error_policy=exegraph.ErrorPolicy.CONTINUE_ON_ERROR)


# --8<-- [start:handlers]
async def run_with_handlers(graph: exegraph.Graph) -> None:
    """Sort the failures of one run by kind, each handler seeing only its own."""
    try:
        await exegraph.run(graph, OPTIONS)
    except* exegraph.StepTimeoutError as group:  # also caught by `except* TimeoutError`
        for late in group.exceptions:
            if isinstance(late, exegraph.StepTimeoutError):
                print(f"too slow: {late.step_name} (limit {late.timeout:g} s)")
    except* ConnectionError as group:
        for refused in group.exceptions:
            print(f"network: {refused} ({refused.__notes__[-1]})")  # the note names the step
    except* exegraph.StepSkippedError as group:
        names = [e.step_name for e in group.exceptions if isinstance(e, exegraph.StepSkippedError)]
        print(f"never ran: {', '.join(names)}")
    # ValueError has no handler: it propagates, as a RunError holding just that failure.


# --8<-- [end:handlers]


async def main() -> None:
    try:
        await run_with_handlers(build_graph())
    except exegraph.RunError as rest:
        print(f"left for the caller: {rest!r}")


if __name__ == "__main__":
    trio.run(main)
