"""What `exegraph.in_thread` and `exegraph.in_process` cost per call (issue 13's targets).

The targets: 1 000 tiny calls through `in_thread` cost ≤ 1.1× as many direct
`trio.to_thread.run_sync` calls, and through `in_process` ≤ 1.1× as many direct
`trio_parallel.run_sync` calls. The tiny call is `math.sqrt(2.0)` (a builtin: a worker
process unpickles it by reference, with nothing to import).

For each hop (`thread`, `process`) and each shape, three variants make the same 1 000 calls:

- `direct`: no exegraph: a Trio nursery with a task per call, each holding a slot of a
  `trio.CapacityLimiter` of the run's bound around `trio.to_thread.run_sync(fn, arg)` (or
  `trio_parallel.run_sync(fn, arg, kill_on_cancel=True)`, as `in_process` calls it); for a
  chain, the calls one after the other in one task;
- `hand`: an exegraph graph of 1 000 steps whose actions are written by hand,
  `async def act(): return await trio.to_thread.run_sync(fn, arg)` (or trio-parallel's):
  what a user wrote before this issue;
- `wrapped`: the same graph with `exegraph.in_thread(fn, arg)` (or `in_process`) as each
  step's action.

Shapes: `loop` (no graph: the 1 000 calls awaited one after the other in one task, the
action `in_thread(fn, arg)` itself against `trio.to_thread.run_sync(fn, arg)`: what the
wrapper costs, which is the target's comparison, "1 000 tiny calls each"), `wide` (1 000
independent steps, the run's default bound: twice the CPU count) and `chain` (each step
depends on the one before, so the calls never overlap: the hop's latency plus exegraph's
per-step cost, one after the other).

`wrapped ÷ direct` on `loop` is the issue's target. On `wide` and `chain` it also holds
exegraph's own per-step cost (a task, scheduling, bookkeeping: issue 8's subject) on top
of the hop, reported beside it. `wrapped ÷ hand`
is what the wrapper itself adds to a hand-written action. The variants run interleaved,
round after round (rotating order, `gc.collect()` first, one `trio.run` each), and each
ratio is the median over rounds of the ratio within a round; times are medians of wall
seconds (a process hop's cost is mostly in the worker and in waiting, not in this
process's CPU time). trio-parallel's workers are started before the first round and reused.

```sh
.venv/bin/python bench/offload.py                 # 1 000 calls, loop, wide and chain, 7 rounds
.venv/bin/python bench/offload.py --calls 300 --rounds 3
.venv/bin/python bench/offload.py --check-only    # every variant's values checked, no timing
```
"""

from __future__ import annotations

import argparse
import gc
import importlib
import math
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Final

import trio

import exegraph_trio as exegraph

trio_parallel = importlib.import_module("trio_parallel")  # untyped: no py.typed marker

TARGET: Final = 1.1
"""The most `in_thread` / `in_process` may cost relative to the direct calls."""
HOPS: Final = ("thread", "process")
SHAPES: Final = ("loop", "wide", "chain")
VARIANTS: Final = ("direct", "hand", "wrapped")
FN: Final = math.sqrt
ARG: Final = 2.0
EXPECTED: Final = math.sqrt(2.0)

Hop = Callable[[], Awaitable[float]]


async def by_thread() -> float:
    return await trio.to_thread.run_sync(FN, ARG)


async def by_process() -> float:
    result: float = await trio_parallel.run_sync(FN, ARG, kill_on_cancel=True)
    return result


HAND: Final[dict[str, Hop]] = {"thread": by_thread, "process": by_process}


def wrapped(hop: str) -> Hop:
    return exegraph.in_thread(FN, ARG) if hop == "thread" else exegraph.in_process(FN, ARG)


def graph_of(action: Callable[[], Hop] | None, hop: str, shape: str, calls: int) -> exegraph.Graph:
    steps = []
    for i in range(calls):
        act = HAND[hop] if action is None else action()
        depends_on = [f"s{i - 1}"] if shape == "chain" and i else []
        steps.append(exegraph.Step(f"s{i}", act, depends_on=depends_on))
    return exegraph.Graph(steps)


async def direct(hop: str, shape: str, calls: int, bound: int) -> list[float]:
    call = HAND[hop]
    if shape == "loop":  # the library's own call, awaited in a loop: nothing in between
        if hop == "thread":
            return [await trio.to_thread.run_sync(FN, ARG) for _ in range(calls)]
        return [await trio_parallel.run_sync(FN, ARG, kill_on_cancel=True) for _ in range(calls)]
    if shape == "chain":
        return [await call() for _ in range(calls)]
    values: list[float] = []
    limiter = trio.CapacityLimiter(bound)

    async def one() -> None:
        async with limiter:
            values.append(await call())

    async with trio.open_nursery() as nursery:
        for _ in range(calls):
            nursery.start_soon(one)
    return values


async def looped(action: Hop, calls: int) -> list[float]:
    return [await action() for _ in range(calls)]


async def through(graph: exegraph.Graph) -> list[float]:
    result = await exegraph.run_with_result(graph)
    values = [timing.value for timing in result.steps]
    assert all(isinstance(v, float) for v in values), "a step returned something else"
    return [v for v in values if isinstance(v, float)]


def runner(variant: str, hop: str, shape: str, calls: int, bound: int) -> Callable[[], list[float]]:
    """A function doing one `trio.run` of the variant, returning the calls' values."""
    if variant == "direct":
        return lambda: trio.run(direct, hop, shape, calls, bound)
    if shape == "loop":  # the action awaited in a loop, no graph: what the wrapper adds
        action = HAND[hop] if variant == "hand" else wrapped(hop)
        return lambda: trio.run(looped, action, calls)
    graph = graph_of(None if variant == "hand" else lambda: wrapped(hop), hop, shape, calls)
    return lambda: trio.run(through, graph)


def check(values: list[float], calls: int, name: str) -> None:
    if len(values) != calls or any(v != EXPECTED for v in values):
        raise AssertionError(f"{name}: expected {calls} values {EXPECTED}, got {values[:3]}…")


def check_all(hops: Sequence[str] = HOPS, shapes: Sequence[str] = SHAPES, calls: int = 50) -> None:
    """Run every variant once at `calls` calls and check its values (`AssertionError`)."""
    bound = exegraph.RunOptions().concurrency_limit
    for hop in hops:
        for shape in shapes:
            for variant in VARIANTS:
                name = f"{hop} {shape} {variant}"
                check(runner(variant, hop, shape, calls, bound)(), calls, name)


def measure(
    hop: str, shape: str, calls: int, bound: int, rounds: int
) -> tuple[dict[str, float], dict[str, float]]:
    """Median wall seconds of each variant, and the median in-round ratio to `direct`."""
    runs = {v: runner(v, hop, shape, calls, bound) for v in VARIANTS}
    seconds: dict[str, list[float]] = {v: [] for v in VARIANTS}
    for round_ in range(rounds):
        order = VARIANTS[round_ % len(VARIANTS) :] + VARIANTS[: round_ % len(VARIANTS)]
        for variant in order:
            gc.collect()
            start = time.perf_counter()
            values = runs[variant]()
            seconds[variant].append(time.perf_counter() - start)
            check(values, calls, f"{hop} {shape} {variant}")
    medians = {v: statistics.median(seconds[v]) for v in VARIANTS}
    ratios = {
        "wrapped/direct": statistics.median(
            w / d for w, d in zip(seconds["wrapped"], seconds["direct"], strict=True)
        ),
        "wrapped/hand": statistics.median(
            w / h for w, h in zip(seconds["wrapped"], seconds["hand"], strict=True)
        ),
        "hand/direct": statistics.median(
            h / d for h, d in zip(seconds["hand"], seconds["direct"], strict=True)
        ),
    }
    return medians, ratios


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n", 1)[0])
    parser.add_argument("--calls", type=int, default=1000, help="calls (steps) per run")
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds")
    parser.add_argument("--hops", default=",".join(HOPS), help="thread,process")
    parser.add_argument("--shapes", default=",".join(SHAPES), help="wide,chain")
    parser.add_argument(
        "--check-only", action="store_true", help="run each variant once at 50 calls, no timing"
    )
    args = parser.parse_args(argv)
    hops, shapes = args.hops.split(","), args.shapes.split(",")
    bound = exegraph.RunOptions().concurrency_limit
    if args.check_only:
        check_all(hops, shapes)
        print(f"offload: every variant of {', '.join(hops)} × {', '.join(shapes)} checked")
        return 0
    trio.run(direct, "process", "wide", 100, bound)  # start the workers, import in them
    print(
        f"{args.calls} calls of math.sqrt(2.0), bound {bound}, median of {args.rounds} "
        "interleaved rounds (wall µs per call; ratios: median of in-round ratios)"
    )
    header = f"{'hop':<8} {'shape':<6} " + " ".join(f"{v:>8}" for v in VARIANTS)
    print(header + f" {'wrapped/direct':>15} {'wrapped/hand':>13} {'hand/direct':>12}")
    worst = 0.0
    for hop in hops:
        for shape in shapes:
            medians, ratios = measure(hop, shape, args.calls, bound, args.rounds)
            if shape == "loop":
                worst = max(worst, ratios["wrapped/direct"])
            per_call = " ".join(f"{medians[v] / args.calls * 1e6:>8.0f}" for v in VARIANTS)
            print(
                f"{hop:<8} {shape:<6} {per_call} {ratios['wrapped/direct']:>14.2f}× "
                f"{ratios['wrapped/hand']:>12.2f}× {ratios['hand/direct']:>11.2f}×"
            )
    if "loop" in shapes:
        verdict = "met" if worst <= TARGET else "MISSED"
        print(f"worst wrapped/direct on loop {worst:.2f}× (target ≤ {TARGET}×): {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
