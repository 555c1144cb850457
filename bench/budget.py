"""What running and building a graph cost at the least, in instructions: issue 8's budget.

Issue 8 asks `run` of no-op steps for ≤ 1.3× the floor (bare tasks started at once in one
nursery) and a build (`Step`s + `Graph` + priorities) for ≤ 1.2× the graphlib peer's.
This script counts, with valgrind's cachegrind (one fresh process per cell, the same to
±0.1 % from one try to the next), what the least a scheduler or a build could do costs,
beside what exegraph costs:

- run (`--part run`), instructions per step of one run at full size, after a 50-step
  warm-up run of every runner:
  - `floor`: the n tasks started at once in one nursery (the targets' floor);
  - `minimal`: the least task-per-step scheduler: dependencies counted down, a step
    started as its own task (by the task of the step that freed it) when its count is
    zero and fewer than the bound run, first in first out; no priorities, no timing, no
    hooks, no errors handled, no cancellation handled;
  - `run`: `exegraph.run` of the same graph, built (priorities too) beforehand.
- build (`--part build`), instructions per step of making the graph from its names:
  - `graphlib`: the peer's build (`peers.graphlib_build`: its actions and a prepared
    `TopologicalSorter`);
  - `unchecked`: the least an engine keeping one object per step could do: a slotted
    class of `Step`'s ten fields set from the arguments (no check), a name index and
    each step's dependencies as positions;
  - `steps`, `graph`, `priorities`: exegraph's `Step`s, then `Graph(...)`, then the first
    `priority()`, each counted on its own (the difference from the step before).

```sh
.venv/bin/python bench/budget.py                       # both parts, ~6 min on 2 cores
.venv/bin/python bench/budget.py --part build --size 100000 --shapes layered
```
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Final

import peers
import shapes
import trio
from cachegrind import instructions_of

import exegraph_trio as exegraph

RUN_VARIANTS: Final = ("none", "floor", "minimal", "run")
BUILD_VARIANTS: Final = ("none", "graphlib", "unchecked", "steps", "graph", "priorities")
WARM_UP: Final = 50


async def noop() -> None:
    pass


async def floor(n: int) -> None:
    """`n` bare tasks started at once in one nursery."""
    async with trio.open_nursery() as nursery:
        for _ in range(n):
            nursery.start_soon(noop)


async def minimal(deps: Sequence[Sequence[int]], bound: int) -> None:
    """The least task-per-step scheduler (see the module's docstring)."""
    n = len(deps)
    waiting = [len(ds) for ds in deps]
    dependents: list[list[int]] = [[] for _ in range(n)]
    for i, ds in enumerate(deps):
        for d in ds:
            dependents[d].append(i)
    ready = deque(i for i in range(n) if not waiting[i])
    running = 0
    async with trio.open_nursery() as nursery:
        start_soon = nursery.start_soon

        def launch() -> None:
            nonlocal running
            while ready and running < bound:
                running += 1
                start_soon(task, ready.popleft())

        async def task(i: int) -> None:
            nonlocal running
            await noop()
            running -= 1
            for j in dependents[i]:
                waiting[j] -= 1
                if not waiting[j]:
                    ready.append(j)
            launch()

        launch()


class Unchecked:
    """`Step`'s ten fields in slots, set as given: no check at all."""

    __slots__ = (
        "_kind",
        "action",
        "depends_on",
        "inputs",
        "name",
        "pools",
        "retry",
        "tags",
        "timeout",
        "trigger_rule",
    )

    def __init__(
        self,
        name: str,
        action: Callable[[], object],
        *,
        depends_on: tuple[str, ...] = (),
        tags: tuple[str, ...] = (),
        timeout: float | None = None,
        inputs: object = None,
        retry: object = None,
        trigger_rule: object = None,
        pools: object = None,
    ) -> None:
        self.name = name
        self.action = action
        self.depends_on = depends_on
        self.tags = tags
        self.timeout = timeout
        self.inputs = inputs
        self.retry = retry
        self.trigger_rule = trigger_rule
        self.pools = pools
        self._kind = 0


def unchecked_build(shape: shapes.Shape) -> tuple[list[Unchecked], list[tuple[int, ...]]]:
    """The `unchecked` build: the objects, a name index, dependencies as positions."""
    steps = [
        Unchecked(name, noop, depends_on=ds)
        for name, ds in zip(shape.names, shape.dep_names, strict=True)
    ]
    index = {step.name: i for i, step in enumerate(steps)}
    return steps, [tuple(index[d] for d in step.depends_on) for step in steps]


def exegraph_steps(shape: shapes.Shape) -> list[exegraph.Step]:
    return [
        exegraph.Step(name, noop, depends_on=ds)
        for name, ds in zip(shape.names, shape.dep_names, strict=True)
    ]


def run_child(variant: str, kind: str, size: int, bound: int) -> None:
    """One cell of the run part: build everything, warm up, then run `variant` once."""
    shape = shapes.make(kind, size)
    graph = exegraph.Graph(exegraph_steps(shape))
    graph.priority(shape.names[0])
    small = shapes.make(kind, WARM_UP)
    small_graph = exegraph.Graph(exegraph_steps(small))
    options = exegraph.RunOptions(max_concurrency=bound)
    trio.run(floor, WARM_UP)
    trio.run(minimal, small.deps, bound)
    trio.run(exegraph.run, small_graph, options)
    gc.collect()
    if variant == "floor":
        trio.run(floor, size)
    elif variant == "minimal":
        trio.run(minimal, shape.deps, bound)
    elif variant == "run":
        trio.run(exegraph.run, graph, options)


def build_child(variant: str, kind: str, size: int) -> None:
    """One cell of the build part: the inputs made and a warm-up, then `variant`'s build."""
    shape = shapes.make(kind, size)
    _ = shape.dep_names  # (the input, made beforehand as in building.py)
    small = shapes.make(kind, WARM_UP)
    exegraph.Graph(exegraph_steps(small)).priority(small.names[0])
    peers.graphlib_build(small.deps, noop)
    unchecked_build(small)
    gc.collect()
    if variant == "graphlib":
        peers.graphlib_build(shape.deps, noop)
    elif variant == "unchecked":
        unchecked_build(shape)
    elif variant in ("steps", "graph", "priorities"):
        steps = exegraph_steps(shape)
        if variant != "steps":
            graph = exegraph.Graph(steps)
            if variant == "priorities":
                graph.priority(shape.names[0])


def count(part: str, variant: str, kind: str, size: int, bound: int) -> int:
    """Instructions of one child process under cachegrind."""
    options = ["--part", part, "--shapes", kind, "--size", str(size), "--bound", str(bound)]
    return instructions_of(__file__, ["--child", variant, *options])


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--part", choices=("run", "build", "both"), default="both")
    parser.add_argument("--size", type=int, default=3000, help="steps per graph")
    parser.add_argument("--shapes", default="chain,wide,layered,random", help="comma-separated")
    parser.add_argument("--bound", type=int, default=4, help="max_concurrency of the run part")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        if args.part == "run":
            run_child(args.child, args.shapes, args.size, args.bound)
        else:
            build_child(args.child, args.shapes, args.size)
        return
    kinds = args.shapes.split(",")
    parts = ("run", "build") if args.part == "both" else (args.part,)
    workers = os.cpu_count() or 1
    for part in parts:
        variants = RUN_VARIANTS if part == "run" else BUILD_VARIANTS
        cells = [(kind, variant) for kind in kinds for variant in variants]
        with ThreadPoolExecutor(max_workers=workers) as pool:
            found = pool.map(
                lambda cell, part=part: count(part, cell[1], cell[0], args.size, args.bound),
                cells,
            )
            counts = dict(zip(cells, found, strict=True))
        if part == "run":
            print(f"run: {args.size} no-op steps, bound {args.bound}; k instructions per step")
            print(f"{'shape':<8} {'floor':>7} {'minimal':>8} {'run':>7}   minimal÷floor  run÷floor")
            for kind in kinds:
                per = {
                    v: (counts[kind, v] - counts[kind, "none"]) / args.size / 1000
                    for v in RUN_VARIANTS[1:]
                }
                print(
                    f"{kind:<8} {per['floor']:>7.1f} {per['minimal']:>8.1f} {per['run']:>7.1f}"
                    f"   {per['minimal'] / per['floor']:>13.2f}  {per['run'] / per['floor']:>9.2f}"
                )
        else:
            print(f"build: {args.size} steps; k instructions per step")
            print(
                f"{'shape':<8} {'graphlib':>8} {'unchecked':>9} {'Steps':>6} {'Graph':>6}"
                f" {'prio':>6} {'exegraph':>8}   unchecked÷graphlib  exegraph÷graphlib"
            )
            for kind in kinds:
                c = {v: counts[kind, v] / args.size / 1000 for v in BUILD_VARIANTS}
                steps = c["steps"] - c["none"]
                graph = c["graph"] - c["steps"]
                prio = c["priorities"] - c["graph"]
                total = c["priorities"] - c["none"]
                lib = c["graphlib"] - c["none"]
                bare = c["unchecked"] - c["none"]
                print(
                    f"{kind:<8} {lib:>8.1f} {bare:>9.1f} {steps:>6.1f} {graph:>6.1f}"
                    f" {prio:>6.1f} {total:>8.1f}   {bare / lib:>18.2f}  {total / lib:>17.2f}"
                )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
