"""What a step on a Dask cluster costs over submitting the task by hand (issue 13's target).

The target: 1 000 tiny steps through `exegraph_dask.on_cluster` on a 2-worker
`LocalCluster` cost ≤ 1.3× what `client.submit` of the same 1 000 tasks plus one
`client.gather` of their futures costs from plain Python.

The tiny task is `operator.neg(i)` (a builtin: workers unpickle it by reference). The
variants, each making the same 1 000 tasks on the same cluster (2 worker processes, one
thread each, started once and reused):

- `plain`: no Trio, no exegraph: `[client.submit(neg, i, pure=False) for i in ...]`, then
  `client.gather(futures)`: the least a Python program can spend on 1 000 tasks;
- `exegraph`: `trio.run(exegraph.run_with_result, graph)` of 1 000 independent steps, each
  `on_cluster(neg, i, client=client)`, with `RunOptions(max_concurrency=1000)` so that every
  task is in flight at once, as in `plain` (the default bound, twice the local CPU count,
  would keep four tasks on the cluster at a time: steps that wait on a cluster want a
  bound of the cluster's size or more). The graph is built inside the timing.

The variants run interleaved, round after round (rotating order, `gc.collect()` first),
after a warm-up round; times are medians of wall seconds, and the ratio is the median over
rounds of the ratio within a round. The CPU time of this process (the client, Trio and the
`LocalCluster`'s scheduler, which runs in it) is shown too: it is less disturbed by other
load on the machine than the wall time.

```sh
.venv/bin/python bench/dask_overhead.py                # 1 000 steps, 7 rounds (~1 min)
.venv/bin/python bench/dask_overhead.py --steps 300 --rounds 3
.venv/bin/python bench/dask_overhead.py --check-only   # both variants' values checked
```
"""

from __future__ import annotations

import argparse
import gc
import operator
import statistics
import sys
import time
from collections.abc import Callable
from typing import Final

import distributed
import trio

import exegraph_dask
import exegraph_trio as exegraph

TARGET: Final = 1.3
"""The most a step through `on_cluster` may cost relative to submit + gather."""


def plain(client: distributed.Client, n: int) -> list[int]:
    futures = [client.submit(operator.neg, i, pure=False) for i in range(n)]
    values: list[int] = client.gather(futures)  # type: ignore[no-untyped-call]
    return values


def through_exegraph(client: distributed.Client, n: int) -> list[int]:
    graph = exegraph.Graph(
        [
            exegraph.Step(str(i), exegraph_dask.on_cluster(operator.neg, i, client=client))
            for i in range(n)
        ]
    )
    options = exegraph.RunOptions(max_concurrency=n)
    result = trio.run(exegraph.run_with_result, graph, options)
    return [result[str(i)].value for i in range(n)]  # type: ignore[misc]


VARIANTS: Final[dict[str, Callable[[distributed.Client, int], list[int]]]] = {
    "plain": plain,
    "exegraph": through_exegraph,
}


def check(client: distributed.Client, n: int) -> None:
    expected = [-i for i in range(n)]
    for name, variant in VARIANTS.items():
        values = variant(client, n)
        if values != expected:
            raise AssertionError(f"{name} returned {values[:5]}... instead of {expected[:5]}...")
        print(f"{name}: {n} values checked")


def measure(client: distributed.Client, n: int, rounds: int) -> None:
    names = list(VARIANTS)
    for name in names:  # warm-up: imports on the workers, connections, caches
        VARIANTS[name](client, n)
    seconds: dict[str, list[float]] = {name: [] for name in names}
    cpu: dict[str, list[float]] = {name: [] for name in names}
    ratios: list[float] = []
    cpu_ratios: list[float] = []
    for round_ in range(rounds):
        order = names[round_ % len(names) :] + names[: round_ % len(names)]
        took: dict[str, float] = {}
        for name in order:
            gc.collect()
            start, start_cpu = time.perf_counter(), time.process_time()
            VARIANTS[name](client, n)
            took[name] = time.perf_counter() - start
            seconds[name].append(took[name])
            cpu[name].append(time.process_time() - start_cpu)
        ratios.append(took["exegraph"] / took["plain"])
        cpu_ratios.append(cpu["exegraph"][-1] / cpu["plain"][-1])
        print(
            f"round {round_ + 1}: plain {took['plain'] * 1e6 / n:.0f} µs/step, "
            f"exegraph {took['exegraph'] * 1e6 / n:.0f} µs/step",
            file=sys.stderr,
        )
    ratio = statistics.median(ratios)
    plain_us = statistics.median(seconds["plain"]) * 1e6 / n
    exe_us = statistics.median(seconds["exegraph"]) * 1e6 / n
    cpu_ratio = statistics.median(cpu_ratios)
    plain_cpu = statistics.median(cpu["plain"]) * 1e6 / n
    exe_cpu = statistics.median(cpu["exegraph"]) * 1e6 / n
    verdict = "met" if ratio <= TARGET else "MISSED"
    print(f"| measure | plain µs/step | exegraph µs/step | exegraph ÷ plain (target ≤ {TARGET}×) |")
    print("|---|---|---|---|")
    print(f"| wall | {plain_us:.0f} | {exe_us:.0f} | {ratio:.2f}× ({verdict}) |")
    print(f"| CPU, this process | {plain_cpu:.0f} | {exe_cpu:.0f} | {cpu_ratio:.2f}× |")
    print(f"ratios by round: {', '.join(f'{r:.2f}' for r in ratios)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=1000, help="tasks per variant")
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds")
    parser.add_argument("--check-only", action="store_true", help="check values, no timing")
    args = parser.parse_args()
    cluster = distributed.LocalCluster(  # type: ignore[no-untyped-call]
        n_workers=2, processes=True, threads_per_worker=1, dashboard_address="127.0.0.1:0"
    )
    client = distributed.Client(cluster, set_as_default=False)  # type: ignore[no-untyped-call]
    try:
        if args.check_only:
            check(client, min(args.steps, 100))
        else:
            measure(client, args.steps, args.rounds)
    finally:
        client.close()  # type: ignore[no-untyped-call]
        cluster.close()


if __name__ == "__main__":
    main()
