"""What Trio alone charges for a chain of tasks: the limit under exegraph's chain cells.

```sh
.venv/bin/python bench/trio_limits.py            # 10 000 steps, 15 paired repeats
```

Four plain-Trio runners, no exegraph: `floor` (n no-op tasks started at once in one
nursery), `floor+scope` (each in its own `CancelScope(deadline=...)`), `chain` (each task
runs a no-op and then starts the next: a task per step, one at a time, nothing else) and
`chain+scope`. A task-per-step scheduler can be no cheaper on a chain than `chain` is, so
`chain ÷ floor` and `chain+scope ÷ floor+scope` are the least its chain cells can show.
Process time, medians of paired repeats.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time
from collections.abc import Awaitable, Callable

import trio

DEADLINE = 3600.0


async def noop() -> None:
    """The action every runner runs."""


async def floor(n: int, *, scoped: bool) -> None:
    async def scoped_noop() -> None:
        with trio.CancelScope(deadline=trio.current_time() + DEADLINE):
            await noop()

    async with trio.open_nursery() as nursery:
        for _ in range(n):
            nursery.start_soon(scoped_noop if scoped else noop)


async def chain(n: int, *, scoped: bool) -> None:
    left = n

    async with trio.open_nursery() as nursery:

        async def step() -> None:
            nonlocal left
            if scoped:
                with trio.CancelScope(deadline=trio.current_time() + DEADLINE):
                    await noop()
            else:
                await noop()
            left -= 1
            if left:
                nursery.start_soon(step, name="step")

        nursery.start_soon(step, name="step")


def timed(run: Callable[[], Awaitable[None]]) -> float:
    gc.collect()

    async def main() -> float:
        start = time.process_time()
        await run()
        return time.process_time() - start

    return trio.run(main)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    n = args.steps
    runners: dict[str, Callable[[], Awaitable[None]]] = {
        "floor": lambda: floor(n, scoped=False),
        "floor+scope": lambda: floor(n, scoped=True),
        "chain": lambda: chain(n, scoped=False),
        "chain+scope": lambda: chain(n, scoped=True),
    }
    ratios: dict[str, list[float]] = {"chain ÷ floor": [], "chain+scope ÷ floor+scope": []}
    costs: dict[str, list[float]] = {name: [] for name in runners}
    for _ in range(args.repeats):
        seconds = {name: timed(run) for name, run in runners.items()}
        for name, value in seconds.items():
            costs[name].append(value / n * 1e6)
        ratios["chain ÷ floor"].append(seconds["chain"] / seconds["floor"])
        ratios["chain+scope ÷ floor+scope"].append(seconds["chain+scope"] / seconds["floor+scope"])
    for name, values in costs.items():
        print(f"{name:<12} {statistics.median(values):6.2f} µs/step")
    for name, values in ratios.items():
        print(f"{name:<26} {statistics.median(values):5.2f}")


if __name__ == "__main__":
    main()
