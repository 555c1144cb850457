"""A progress display as an `Instrument`, watching two runs at once.

Run it with `python examples/instrument_progress.py`.

An `Instrument` subclass overrides only the calls it needs. Every call receives the
run's `RunInfo` handle, so one instrument can serve concurrent runs and keep their
state apart (a dict keyed by the handle, dropped in `run_done`); step calls also get
the `Step` itself, with its tags and dependencies.
"""

from __future__ import annotations

from functools import partial

import trio

import exegraph_trio as exegraph


class Progress(exegraph.Instrument):
    """Print `[run 1: 3/5] build done in 30 ms` lines as steps finish."""

    def __init__(self) -> None:
        self.finished: dict[exegraph.RunInfo, int] = {}

    def run_started(self, run: exegraph.RunInfo) -> None:
        """Start counting for `run`."""
        self.finished[run] = 0
        print(f"[run {run.run_id}] started: {len(run.graph)} steps")

    def step_done(
        self, run: exegraph.RunInfo, step: exegraph.Step, timing: exegraph.StepTiming
    ) -> None:
        """Count a step that ran, whatever its outcome."""
        self._count(run, f"{step.name} {timing.status} in {timing.duration * 1000:.0f} ms")

    def step_skipped(
        self, run: exegraph.RunInfo, step: exegraph.Step, timing: exegraph.StepTiming
    ) -> None:
        """Count a step that will never run."""
        self._count(run, f"{step.name} skipped")

    def run_done(self, run: exegraph.RunInfo, result: exegraph.RunResult) -> None:
        """Report the outcome and forget `run`."""
        del self.finished[run]
        outcome = "ok" if result.ok else f"failed ({result.error})"
        print(f"[run {run.run_id}] {outcome} after {result.total_duration * 1000:.0f} ms")

    def _count(self, run: exegraph.RunInfo, what: str) -> None:
        self.finished[run] += 1
        print(f"[run {run.run_id}: {self.finished[run]}/{len(run.graph)}] {what}")


async def sleep_then(seconds: float, *, fail: bool = False) -> None:
    await trio.sleep(seconds)
    if fail:
        raise RuntimeError("disk full")


def chain(*names: str, fail: str = "") -> exegraph.Graph:
    """A chain of steps, each 10 ms longer than the previous one."""
    return exegraph.Graph(
        exegraph.Step(
            name,
            partial(sleep_then, 0.01 * (i + 1), fail=name == fail),
            depends_on=names[i - 1 : i],
        )
        for i, name in enumerate(names)
    )


async def main() -> None:
    progress = Progress()
    options = exegraph.RunOptions(instruments=[progress])
    backup = chain("snapshot", "compress", "upload", fail="compress")
    build = chain("fetch", "compile", "test", "package")
    async with trio.open_nursery() as nursery:
        nursery.start_soon(exegraph.run_with_result, backup, options)
        nursery.start_soon(exegraph.run_with_result, build, options)


if __name__ == "__main__":
    trio.run(main)
