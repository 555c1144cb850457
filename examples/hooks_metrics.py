"""Count steps and time them with the two hooks, `on_step_start` and `on_step_done`.

Run it with `python examples/hooks_metrics.py`.

Both hooks run in the step's own task and context, just before and just after its
action. So a context variable set by `on_step_start` is seen by the action (here: a
logger that prefixes every line with the step's name) and by `on_step_done`, and by no
other step. Hooks observe: a hook that raises is logged and switched off for the rest
of the run, and never changes a step's outcome.
"""

from __future__ import annotations

import collections
import contextvars
from functools import partial

import attrs
import trio

import exegraph_trio as exegraph

current_step: contextvars.ContextVar[str] = contextvars.ContextVar("current_step")


def log(message: str) -> None:
    """Print `message` prefixed with the step it comes from, like a logging filter would."""
    print(f"[{current_step.get('-')}] {message}")


# --8<-- [start:metrics]
@attrs.define
class StepMetrics:
    """Durations and outcome counts, filled in by the two hooks."""

    started: dict[str, float] = attrs.Factory(dict)
    durations: dict[str, float] = attrs.Factory(dict)
    outcomes: collections.Counter[str] = attrs.Factory(collections.Counter)

    def on_step_start(self, name: str) -> None:
        """Remember when `name` started, and make it the current step of its context."""
        current_step.set(name)  # visible to this step's action and its on_step_done only
        self.started[name] = trio.current_time()

    def on_step_done(self, name: str, error: BaseException | None) -> None:
        """Record how long `name` took and how it ended."""
        assert current_step.get() == name  # same task, same context as on_step_start
        self.durations[name] = trio.current_time() - self.started.pop(name)
        self.outcomes["ok" if error is None else type(error).__name__] += 1

    def install(self, options: exegraph.RunOptions) -> exegraph.RunOptions:
        """A copy of `options` with both hooks installed."""
        return attrs.evolve(
            options, on_step_start=self.on_step_start, on_step_done=self.on_step_done
        )


# --8<-- [end:metrics]


async def resize(image: str, seconds: float) -> None:
    log(f"resizing {image}")
    await trio.sleep(seconds)
    if image.endswith(".bmp"):
        raise ValueError(f"unsupported format: {image}")


async def publish() -> None:
    log("publishing the gallery")


def build_graph() -> exegraph.Graph:
    images = {"cat.png": 0.03, "dog.jpg": 0.02, "old.bmp": 0.01, "owl.png": 0.04}
    resize_steps = [
        exegraph.Step(f"resize:{image}", partial(resize, image, seconds))
        for image, seconds in images.items()
    ]
    return exegraph.Graph(
        [
            *resize_steps,
            exegraph.Step("publish", publish, depends_on=[s.name for s in resize_steps]),
        ]
    )


async def main() -> None:
    metrics = StepMetrics()
    options = metrics.install(
        exegraph.RunOptions(error_policy=exegraph.ErrorPolicy.CONTINUE_ON_ERROR)
    )
    result = await exegraph.run_with_result(build_graph(), options)
    log(f"run {'succeeded' if result.ok else 'failed'}")  # outside any step: no name
    print(f"outcomes: {dict(metrics.outcomes)}")
    for name, seconds in sorted(metrics.durations.items(), key=lambda item: item[1]):
        print(f"  {name:<16} {seconds * 1000:5.1f} ms")


if __name__ == "__main__":
    trio.run(main)
