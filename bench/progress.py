"""What `exegraph.Progress` costs a run: the target of issue 12 is ≤ 1.5× at 10⁴ no-op steps.

Each shape (`shapes.py`, no-op actions) is built once; then `exegraph.run` of it is timed
with these options:

- `bare`: no instrument (the baseline);
- `result`: no instrument, through `exegraph.run_with_result`, its result not read: a
  `RunResult` makes its `StepTiming`s when first read, and `Progress` never reads them
  (its `run_done` gets a result too);
- `instrument`: one `exegraph.Instrument()` that overrides nothing: the engine skips
  the methods an instrument leaves as they are, so this is what attaching one costs,
  before `Progress` does anything;
- `plain`: `Progress` on a console that is not a terminal (a CI log), writing its line per
  step to the null device and flushing it;
- `live`: `Progress` on a console forced to be a terminal, drawing its live area into the
  null device (its thread redraws ten times a second while the run goes).

Time (the default): the variants run interleaved, repeat after repeat (in a rotating
order, after a `gc.collect()`), so that a machine busy with something else disturbs them
alike, in CPU time of the whole process (`time.process_time`: the drawing thread's work
counts) and in wall time. Two ratios to `bare` come of it: the ratio of the best runs
(each variant's luckiest repeat, taken apart), and the median over the repeats of each
repeat's own ratio (a variant's run to the `bare` run of the same repeat, made within a
second of it). The verdict goes by the second: on a machine whose speed drifts (a virtual
machine whose host is busy: `bare` alone moved by 20 % from one round to the next here),
one lucky `bare` run skews every ratio of the best, while a ratio within a repeat sees
the same machine on both sides and the median drops the repeats a burst disturbed. Even
so the median moves by ±0.03 from one invocation to the next here at 31 rounds (±0.05 at
21), hence 31 by default (about two minutes).

Instructions (`--instructions`, needs `valgrind`): each variant runs once (after a 50-step
warm-up run) in a fresh process under cachegrind, and the instructions of the same process
making the graph without running it are subtracted. The count is the same to ±0.1 % from
one try to the next, whatever else the machine does; it is blind to cache misses. Under
valgrind a run lasts some 50 times longer, so `live` redraws some 50 times more often
than it would at full speed, and its count also holds the first import of `rich.live`:
an overestimate.

The target is judged against `bare`; for `plain` and `live` the table also gives the ratio
to `instrument`, which is what `Progress` itself adds.

```sh
.venv/bin/python bench/progress.py                  # 10⁴ steps, chain/wide/layered, 31 rounds
.venv/bin/python bench/progress.py --size 2000 --repeats 3
.venv/bin/python bench/progress.py --instructions   # ~10 min on a busy 2-core machine
```
"""

from __future__ import annotations

import argparse
import gc
import os
import stat
import statistics
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Final, TextIO

import shapes
import trio
from cachegrind import instructions_of
from rich.console import Console

import exegraph_trio as exegraph

TARGET: Final = 1.5
"""The most a run with `Progress` attached may cost, relative to the same run without."""

VARIANTS: Final = ("bare", "result", "instrument", "plain", "live")
WARM_UP: Final = 50
"""Steps of the run made first in an `--instructions` child (imports, first-call caches)."""


async def noop() -> None:
    pass


def build(kind: str, size: int) -> exegraph.Graph:
    shape = shapes.make(kind, size)
    return exegraph.Graph(
        exegraph.Step(name, noop, depends_on=deps)
        for name, deps in zip(shape.names, shape.dep_names, strict=True)
    )


def options_for(variant: str, null: TextIO) -> Callable[[], exegraph.RunOptions]:
    """A fresh `RunOptions` for each run (a `Progress` per run, as a program would make)."""

    def make() -> exegraph.RunOptions:
        if variant in ("bare", "result"):
            return exegraph.RunOptions()
        if variant == "instrument":
            return exegraph.RunOptions(instruments=[exegraph.Instrument()])
        console = Console(file=null, force_terminal=variant == "live", width=100)
        return exegraph.RunOptions(instruments=[exegraph.Progress(console=console)])

    return make


def run_once(graph: exegraph.Graph, variant: str, make: Callable[[], exegraph.RunOptions]) -> None:
    entry = exegraph.run_with_result if variant == "result" else exegraph.run
    trio.run(entry, graph, make())


def measure(
    graph: exegraph.Graph, repeats: int
) -> tuple[dict[str, tuple[float, float]], dict[str, float]]:
    """Each variant's best CPU and wall seconds over `repeats` interleaved rounds.

    And the median over the rounds of its CPU time's ratio to `bare`'s within a round.
    """
    best: dict[str, tuple[float, float]] = {v: (float("inf"), float("inf")) for v in VARIANTS}
    ratios: dict[str, list[float]] = {v: [] for v in VARIANTS}
    with open(os.devnull, "w", encoding="utf-8") as null:
        makers = {variant: options_for(variant, null) for variant in VARIANTS}
        for round_ in range(repeats):
            order = VARIANTS[round_ % len(VARIANTS) :] + VARIANTS[: round_ % len(VARIANTS)]
            cpus = {}
            for variant in order:
                gc.collect()
                cpu, wall = time.process_time(), time.perf_counter()
                run_once(graph, variant, makers[variant])
                wall = time.perf_counter() - wall
                cpus[variant] = cpu = time.process_time() - cpu
                old_cpu, old_wall = best[variant]
                best[variant] = (min(old_cpu, cpu), min(old_wall, wall))
            for variant in VARIANTS:
                ratios[variant].append(cpus[variant] / cpus["bare"])
    return best, {variant: statistics.median(found) for variant, found in ratios.items()}


def child(variant: str, kind: str, size: int) -> None:
    """One `--instructions` cell: build the graph, then (unless `none`) warm up and run."""
    graph = build(kind, size)
    if variant == "none":
        return
    with open(os.devnull, "w", encoding="utf-8") as null:
        make = options_for(variant, null)
        run_once(build(kind, WARM_UP), variant, make)
        gc.collect()
        run_once(graph, variant, make)


def count(variant: str, kind: str, size: int) -> int:
    """Instructions of one child process under cachegrind."""
    return instructions_of(__file__, ["--child", variant, "--shapes", kind, "--size", str(size)])


def _check_null_device() -> None:
    """Warn when the null device is not one (a plain file on one machine of ours)."""
    if not stat.S_ISCHR(os.stat(os.devnull).st_mode):
        print(f"warning: {os.devnull} is not a device here: the lines are really written")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--size", type=int, default=10_000, help="steps per graph")
    parser.add_argument("--shapes", default="chain,wide,layered", help="comma-separated")
    parser.add_argument("--repeats", type=int, default=31, help="interleaved rounds")
    parser.add_argument("--instructions", action="store_true", help="count, under valgrind")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child, args.shapes, args.size)
        return
    kinds = args.shapes.split(",")
    _check_null_device()
    if args.instructions:
        print(f"{args.size} no-op steps; instructions (millions)")
        print("× bare; plain, live: also × instrument")
        cells = [(kind, variant) for kind in kinds for variant in ("none", *VARIANTS)]
        with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
            found = pool.map(lambda cell: count(cell[1], cell[0], args.size), cells)
            counts = dict(zip(cells, found, strict=True))
        best = {
            kind: {v: (counts[kind, v] - counts[kind, "none"]) / 1e6 for v in VARIANTS}
            for kind in kinds
        }
        cell_format = "{:.0f}M {:.2f}×"
    else:
        print(f"{args.size} no-op steps, {args.repeats} interleaved rounds")
        print("best CPU s, × bare; plain, live: also × instrument")
        best = {}
        paired = {}
        for kind in kinds:
            timed, paired[kind] = measure(build(kind, args.size), args.repeats)
            best[kind] = {v: timed[v][0] for v in VARIANTS}
            walls = {v: timed[v][1] for v in VARIANTS}
            print(f"  {kind} best wall s: " + ", ".join(f"{v} {walls[v]:.3f}" for v in VARIANTS))
        cell_format = "{:.3f} s {:.2f}×"
    print(f"{'shape':<8} " + " ".join(f"{v:>20}" for v in VARIANTS))
    worst = 0.0
    for kind in kinds:
        cost = best[kind]
        cells_text = []
        for variant in VARIANTS:
            text = cell_format.format(cost[variant], cost[variant] / cost["bare"])
            if variant in ("plain", "live"):
                worst = max(worst, cost[variant] / cost["bare"])
                text += f" {cost[variant] / cost['instrument']:.2f}×"
            cells_text.append(text)
        print(f"{kind:<8} " + " ".join(f"{text:>20}" for text in cells_text))
    if args.instructions:
        verdict = "met" if worst <= TARGET else "MISSED"
        print(f"worst Progress ratio to bare {worst:.2f}× (target ≤ {TARGET}×): {verdict}")
        return
    print(f"worst ratio of the best runs {worst:.2f}×")
    print("median over the rounds of each round's CPU time × bare:")
    print(f"{'shape':<8} " + " ".join(f"{v:>11}" for v in VARIANTS))
    for kind in kinds:
        print(f"{kind:<8} " + " ".join(f"{paired[kind][v]:>10.2f}×" for v in VARIANTS))
    worst = max(paired[kind][v] for kind in kinds for v in ("plain", "live"))
    verdict = "met" if worst <= TARGET else "MISSED"
    print(f"worst Progress ratio to bare {worst:.2f}× (target ≤ {TARGET}×): {verdict}")


if __name__ == "__main__":
    main()
