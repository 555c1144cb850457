"""What `exegraph.Progress` costs a run: the target of issue 12 is ≤ 1.5× at 10⁴ no-op steps.

Each shape (`shapes.py`, no-op actions) is built once; then `exegraph.run` of it is timed
with four sets of options, interleaved repeat after repeat (in a rotating order, after a
`gc.collect()`), so that a machine busy with something else disturbs them alike:

- `bare`: no instrument (the baseline);
- `result`: no instrument, through `exegraph.run_with_result`: `run` alone never builds a
  `RunResult`, while a run with any instrument does, for `run_done`;
- `instrument`: one `exegraph.Instrument()` that overrides nothing: what the engine's
  calls to any instrument cost (the `StepTiming` of each `step_done`, the `RunResult`
  of `run_done`), before `Progress` does anything;
- `plain`: `Progress` on a console that is not a terminal (a CI log), writing its line per
  step to the null device and flushing it;
- `live`: `Progress` on a console forced to be a terminal, drawing its live area into the
  null device (its thread redraws ten times a second while the run goes).

The best of the repeats is kept for each, in CPU time of the whole process
(`time.process_time`: the drawing thread's work counts; a busy machine disturbs it far less
than the wall clock) and in wall time. The target is judged on CPU time against `bare`;
the table also gives each `Progress` run against `instrument`, which is what `Progress`
itself adds.

```sh
.venv/bin/python bench/progress.py                      # 10⁴ steps, chain/wide/layered, 7 repeats
.venv/bin/python bench/progress.py --size 2000 --repeats 3
```
"""

from __future__ import annotations

import argparse
import gc
import os
import time
from collections.abc import Callable, Sequence
from typing import Final

import shapes
import trio
from rich.console import Console

import exegraph_trio as exegraph

TARGET: Final = 1.5
"""The most a run with `Progress` attached may cost, relative to the same run without."""

VARIANTS: Final = ("bare", "result", "instrument", "plain", "live")


async def noop() -> None:
    pass


def build(kind: str, size: int) -> exegraph.Graph:
    shape = shapes.make(kind, size)
    return exegraph.Graph(
        exegraph.Step(name, noop, depends_on=deps)
        for name, deps in zip(shape.names, shape.dep_names, strict=True)
    )


def options_for(variant: str, null: object) -> Callable[[], exegraph.RunOptions]:
    """A fresh `RunOptions` for each run (a `Progress` per run, as a program would make)."""

    def make() -> exegraph.RunOptions:
        if variant in ("bare", "result"):
            return exegraph.RunOptions()
        if variant == "instrument":
            return exegraph.RunOptions(instruments=[exegraph.Instrument()])
        console = Console(file=null, force_terminal=variant == "live", width=100)  # type: ignore[arg-type]
        return exegraph.RunOptions(instruments=[exegraph.Progress(console=console)])

    return make


def measure(graph: exegraph.Graph, repeats: int) -> dict[str, tuple[float, float]]:
    """The best CPU and wall seconds of each variant over `repeats` interleaved rounds."""
    best: dict[str, tuple[float, float]] = {v: (float("inf"), float("inf")) for v in VARIANTS}
    with open(os.devnull, "w", encoding="utf-8") as null:
        makers = {variant: options_for(variant, null) for variant in VARIANTS}
        for round_ in range(repeats):
            order = VARIANTS[round_ % len(VARIANTS) :] + VARIANTS[: round_ % len(VARIANTS)]
            for variant in order:
                options = makers[variant]()
                gc.collect()
                cpu, wall = time.process_time(), time.perf_counter()
                entry = exegraph.run_with_result if variant == "result" else exegraph.run
                trio.run(entry, graph, options)
                wall = time.perf_counter() - wall
                cpu = time.process_time() - cpu
                old_cpu, old_wall = best[variant]
                best[variant] = (min(old_cpu, cpu), min(old_wall, wall))
    return best


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--size", type=int, default=10_000, help="steps per graph")
    parser.add_argument("--shapes", default="chain,wide,layered", help="comma-separated")
    parser.add_argument("--repeats", type=int, default=7, help="interleaved rounds")
    args = parser.parse_args(argv)
    print(f"{args.size} no-op steps, best of {args.repeats} interleaved runs")
    print("CPU s (wall s); × bare; for plain and live also × instrument")
    print(f"{'shape':<8} " + " ".join(f"{v:>26}" for v in VARIANTS))
    worst = 0.0
    for kind in args.shapes.split(","):
        best = measure(build(kind, args.size), args.repeats)
        base, instrument = best["bare"][0], best["instrument"][0]
        cells = []
        for variant in VARIANTS:
            cpu, wall = best[variant]
            cell = f"{cpu:.3f} ({wall:.3f}) {cpu / base:.2f}×"
            if variant in ("plain", "live"):
                worst = max(worst, cpu / base)
                cell += f" {cpu / instrument:.2f}×"
            cells.append(cell)
        print(f"{kind:<8} " + " ".join(f"{cell:>26}" for cell in cells))
    verdict = "met" if worst <= TARGET else "MISSED"
    print(f"worst Progress ratio to bare {worst:.2f}× (target ≤ {TARGET}×): {verdict}")


if __name__ == "__main__":
    main()
