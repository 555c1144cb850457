"""Deadlines per step and per run, cleanup on timeout, and cancelling a run from outside.

Run it with `python examples/timeouts.py`.

- `RunOptions.step_timeout` gives every step a deadline; `Step.timeout` overrides it for
  one step (`0` means no deadline for that step).
- A step past its deadline is cancelled and fails with `StepTimeoutError`, and the
  error policy treats it like any failure.
- A step can clean up when cancelled, in a shielded cancel scope.
- Cancelling an enclosing scope cancels every step in flight; the run reports them as
  cancelled and Trio's `Cancelled` propagates, as from any Trio function.
"""

from __future__ import annotations

import trio

import exegraph_trio as exegraph


def sleeper(seconds: float) -> exegraph.Action:
    async def action() -> None:
        await trio.sleep(seconds)

    return action


# --8<-- [start:cleanup]
async def upload() -> None:
    """A slow upload that removes its partial file when it is cancelled."""
    try:
        await trio.sleep(1.0)  # the upload itself
    except trio.Cancelled:
        with trio.CancelScope(shield=True):  # may await even though cancelled
            await trio.sleep(0.01)  # e.g. delete the partial upload
            print("upload: cancelled, partial upload removed")
        raise  # always re-raise Cancelled


# --8<-- [end:cleanup]


# --8<-- [start:graph]
def build_graph() -> exegraph.Graph:
    return exegraph.Graph(
        [
            exegraph.Step("quick", sleeper(0.01)),  # well within the run's 0.1 s
            exegraph.Step("upload", upload, timeout=0.05),  # its own, shorter deadline
            exegraph.Step("index", sleeper(0.15), timeout=0),  # no deadline at all
            exegraph.Step("notify", sleeper(0.01), depends_on=["upload"]),
        ]
    )


OPTIONS = exegraph.RunOptions(step_timeout=0.1, error_policy=exegraph.ErrorPolicy.CONTINUE_ON_ERROR)
# --8<-- [end:graph]


async def deadlines() -> None:
    result = await exegraph.run_with_result(build_graph(), OPTIONS)
    print(result.table())


# --8<-- [start:outside]
async def cancel_from_outside() -> None:
    """Give a whole run 30 ms: steps still running then are cancelled."""
    cancelled: list[str] = []

    def on_step_done(name: str, error: BaseException | None) -> None:
        if isinstance(error, exegraph.StepCancelledError):
            cancelled.append(name)

    graph = exegraph.Graph([exegraph.Step("a", sleeper(0.01)), exegraph.Step("b", sleeper(1))])
    with trio.move_on_after(0.03) as scope:
        await exegraph.run(graph, exegraph.RunOptions(on_step_done=on_step_done))
    print(f"run cancelled: {scope.cancelled_caught}; steps cancelled mid-flight: {cancelled}")


# --8<-- [end:outside]


async def main() -> None:
    await deadlines()
    print()
    await cancel_from_outside()


if __name__ == "__main__":
    trio.run(main)
