"""`Graph.select` on a large random DAG: the target of issue 11 is ≤ 0.5 s at 10⁵ steps.

The graph is `shapes.random_dag` (steps `s0`, `s1`, …), each step tagged `team-K`
(`K = i % 20`), one in 50 also `slow`. Each selector below is timed `--repeats` times on the
same prebuilt graph (after a `gc.collect()`), in CPU time (`time.process_time`, which a
busy machine disturbs far less than the wall clock) and in wall time; the best of each is
printed, with the size of the result, and the target is judged on the worst best CPU time.
`Graph(steps)` of the same steps is timed too, as a yardstick of the machine's speed (the
last full benchmark measured it at 0.51 s): a selection should cost well under a build.

This file is not called `select.py`: run as a script, its directory comes first on
`sys.path`, and it would shadow the standard library's `select` (which Trio imports).

```sh
.venv/bin/python bench/selection.py                 # 10⁵ steps, 5 repeats
.venv/bin/python bench/selection.py --size 10000 --repeats 3
```
"""

from __future__ import annotations

import argparse
import functools
import gc
import time
from collections.abc import Callable, Sequence

import shapes

from exegraph_trio import Graph, Step

TARGET = 0.5
"""Seconds: the most `select` may take on a 10⁵-step random DAG (issue 11)."""

SELECTORS: tuple[tuple[str, bool], ...] = (
    ("s{last}", True),  # one step and every dependency: most of the graph
    ("s{half}+", True),  # the second half, and what it needs
    ("s{half}+", False),  # the second half alone, edges into the first half dropped
    ("tag:team-3", True),  # 5% of the steps and their dependencies
    ("tag:team-3", False),  # 5% of the steps alone: almost every one is copied
    ("tag:team-[0-9]", False),  # half the steps alone: the most copies
    ("s1*, s2* !tag:slow", False),  # globs and a removal
    ("!tag:slow+", True),  # removals only: the whole graph but the slow steps' cone
    ("s{quarter} s{half} s{last}", True),  # a few names
    ("*", True),  # everything: the graph itself
    # 1 000 literal tag terms: each is looked up, not a scan of every step's tags
    (" ".join(f"tag:team-{k % 20}" for k in range(1000)), False),
)


async def noop() -> None:
    pass


def build(size: int) -> Graph:
    shape = shapes.random_dag(size)
    return Graph(
        Step(
            name,
            noop,
            depends_on=deps,
            tags=(f"team-{i % 20}", "slow") if i % 50 == 0 else (f"team-{i % 20}",),
        )
        for i, (name, deps) in enumerate(zip(shape.names, shape.dep_names, strict=True))
    )


def timed(fn: Callable[[], object], repeats: int) -> tuple[float, float, object]:
    """The best CPU and the best wall seconds of `repeats` calls of `fn`, and its result."""
    cpu: list[float] = []
    wall: list[float] = []
    result: object = None
    for _ in range(repeats):
        result = None
        gc.collect()
        start_cpu, start_wall = time.process_time(), time.perf_counter()
        result = fn()
        wall.append(time.perf_counter() - start_wall)
        cpu.append(time.process_time() - start_cpu)
    return min(cpu), min(wall), result


def row(what: str, kept: int, cpu: float, wall: float) -> None:
    print(f"| {what:<48} | {kept:>7} | {cpu:>7.3f} | {wall:>7.3f} |")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=100_000, help="steps (default 10⁵)")
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats per selector")
    args = parser.parse_args(argv)
    size: int = args.size
    repeats: int = args.repeats
    graph = build(size)
    edges = sum(len(step.depends_on) for step in graph)
    print(f"random DAG: {size} steps, {edges} edges; best of {repeats} repeats\n")
    print(f"| {'what':<48} | {'kept':>7} | {'cpu s':>7} | {'wall s':>7} |")
    print(f"|{'-' * 50}|{'-' * 9}|{'-' * 9}|{'-' * 9}|")
    cpu, wall, _ = timed(lambda: Graph(graph.steps), repeats)
    row("Graph(steps) (yardstick)", size, cpu, wall)
    worst = 0.0
    for template, with_dependencies in SELECTORS:
        selector = template.format(last=size - 1, half=size // 2, quarter=size // 4)

        select = functools.partial(graph.select, selector, with_dependencies=with_dependencies)
        cpu, wall, result = timed(select, repeats)
        assert isinstance(result, Graph)
        shown = repr(selector) if len(selector) < 40 else f"{len(selector.split())} terms"
        what = f"{shown}{'' if with_dependencies else ', with_dependencies=False'}"
        row(what, len(result), cpu, wall)
        worst = max(worst, cpu)
    verdict = "met" if worst <= TARGET else "NOT met"
    if size != 100_000:
        verdict = "not judged (it is at 10⁵ steps)"
    print(f"\nworst best CPU time {worst:.3f} s; target ≤ {TARGET} s at 10⁵ steps: {verdict}")


if __name__ == "__main__":
    main()
