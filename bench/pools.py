"""What pools cost a run: the target of issue 11 is ≤ 1.3× per step on a 10⁴-step random DAG.

The graph is `shapes.random_dag` with no-op actions. In the pooled variant three pools
(`db` of 4 slots, `net` of 8, `gpu` of 16) cover half the steps: step `i` with `i % 2 == 0`
takes one slot of pool `("db", "net", "gpu")[i // 2 % 3]`. Both variants run with
`max_concurrency=16` (so the pools, not only the bound, decide what starts), and the
unpooled graph is the same steps without their `pools`.

Time (the default): the two variants run interleaved, repeat after repeat, after a
`gc.collect()`; the best of the repeats is kept, in CPU time of the process
(`time.process_time`) and in wall time.

Instructions (`--instructions`, needs `valgrind`): each variant runs once (after a 50-step
warm-up run) in a fresh process under cachegrind, minus the instructions of the same
process making the graphs without running them. The count is the same to ±0.1 % from one
try to the next, whatever else the machine does (it is blind to cache misses).

```sh
.venv/bin/python bench/pools.py                   # 10⁴ steps, 7 repeats
.venv/bin/python bench/pools.py --instructions    # ~2 min
```
"""

from __future__ import annotations

import argparse
import gc
import os
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Final

import shapes
import trio
from cachegrind import instructions_of

import exegraph_trio as exegraph

TARGET: Final = 1.3
"""The most a pooled run may cost per step, relative to the same run without pools."""

POOLS: Final = {"db": 4, "net": 8, "gpu": 16}
BOUND: Final = 16
VARIANTS: Final = ("plain", "pooled")
WARM_UP: Final = 50


async def noop() -> None:
    pass


def build(size: int, *, pooled: bool) -> exegraph.Graph:
    """The random DAG; pooled: every other step takes one slot of one of the pools."""
    shape = shapes.random_dag(size)
    names = ("db", "net", "gpu")
    return exegraph.Graph(
        exegraph.Step(
            name,
            noop,
            depends_on=deps,
            pools=[names[i // 2 % 3]] if pooled and i % 2 == 0 else None,
        )
        for i, (name, deps) in enumerate(zip(shape.names, shape.dep_names, strict=True))
    )


def options(variant: str) -> exegraph.RunOptions:
    if variant == "pooled":
        return exegraph.RunOptions(max_concurrency=BOUND, pools=POOLS)
    return exegraph.RunOptions(max_concurrency=BOUND)


def run_once(graph: exegraph.Graph, variant: str) -> None:
    trio.run(exegraph.run, graph, options(variant))


def measure(size: int, repeats: int) -> dict[str, tuple[float, float]]:
    """The best CPU and wall seconds of each variant over `repeats` interleaved rounds."""
    graphs = {v: build(size, pooled=v == "pooled") for v in VARIANTS}
    best = {v: (float("inf"), float("inf")) for v in VARIANTS}
    for round_ in range(repeats):
        for variant in VARIANTS if round_ % 2 == 0 else VARIANTS[::-1]:
            gc.collect()
            cpu, wall = time.process_time(), time.perf_counter()
            run_once(graphs[variant], variant)
            wall = time.perf_counter() - wall
            cpu = time.process_time() - cpu
            best[variant] = (min(best[variant][0], cpu), min(best[variant][1], wall))
    return best


def child(variant: str, size: int) -> None:
    """One `--instructions` cell: build the graphs, then (unless `none`) warm up and run."""
    graph = build(size, pooled=variant == "pooled")
    warm = build(WARM_UP, pooled=variant == "pooled")
    if variant == "none":
        return
    run_once(warm, variant)
    gc.collect()
    run_once(graph, variant)


def count(variant: str, size: int) -> int:
    """Instructions of one child process under cachegrind."""
    return instructions_of(__file__, ["--child", variant, "--size", str(size)])


def check(size: int = 500) -> None:
    """Both variants run to completion, every step done (for `run.py --check-only`)."""
    for variant in VARIANTS:
        graph = build(size, pooled=variant == "pooled")
        result = trio.run(exegraph.run_with_result, graph, options(variant))
        assert result.ok, result.error
        assert len(result.steps) == size


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--size", type=int, default=10_000, help="steps (default 10⁴)")
    parser.add_argument("--repeats", type=int, default=7, help="interleaved rounds")
    parser.add_argument("--instructions", action="store_true", help="count, under valgrind")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child, args.size)
        return
    if args.instructions:
        cells = ("none", *VARIANTS)
        with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
            counts = dict(zip(cells, pool.map(lambda v: count(v, args.size), cells), strict=True))
        cost = {v: (counts[v] - counts["none"]) / args.size for v in VARIANTS}
        unit = "instructions per step"
        text = {v: f"{cost[v]:,.0f}" for v in VARIANTS}
    else:
        best = measure(args.size, args.repeats)
        cost = {v: best[v][0] / args.size for v in VARIANTS}
        unit = f"µs CPU per step, best of {args.repeats} interleaved runs"
        text = {
            v: f"{cost[v] * 1e6:.1f} (wall {best[v][1] / args.size * 1e6:.1f})" for v in VARIANTS
        }
    ratio = cost["pooled"] / cost["plain"]
    print(f"random DAG, {args.size} no-op steps, max_concurrency={BOUND}, pools {POOLS}: {unit}")
    print(f"  without pools: {text['plain']}")
    print(f"  three pools over half the steps: {text['pooled']}")
    verdict = "met" if ratio <= TARGET else "MISSED"
    print(f"pooled ÷ without: {ratio:.3f}× (target ≤ {TARGET}×): {verdict}")


if __name__ == "__main__":
    main()
