"""Two pipelines in one Trio program share a database: one `Pool` caps them together.

Run it with `python examples/shared_database_pool.py`.

- `exegraph.Pool(2)` is a pool of two slots. Given to several runs in
  `RunOptions(pools={"db": db})`, it is shared by all of them: at most two steps that
  take a `db` slot run at once, whichever pipeline they belong to. (An `int` there,
  `pools={"db": 2}`, would make a pool private to each run.)
- `Step(..., pools=["db"])` takes one slot for as long as the action runs; steps without
  pools only need one of their run's `max_concurrency` slots.
- The fake database counts its sessions: the peak never exceeds the pool's size,
  although each pipeline alone would open two at once.
- A shared pool is fair between runs: waiting steps get its slots in the order they
  became ready. `billing`'s loads, ready at 30 ms, go before `orders`' `reindex`, ready
  later, and `orders`' `reindex` before `billing`'s.
- In a run whose steps use pools, `StepTiming.ready` says when each step became ready:
  `start - ready` is how long it waited for its slots.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import trio

import exegraph_trio as exegraph


class Database:
    """A fake database that counts the sessions open at once and notes each one."""

    def __init__(self) -> None:
        self.origin = 0.0
        self.open = 0
        self.peak = 0
        self.sessions: list[tuple[float, float, str]] = []

    def ms(self, t: float) -> float:
        """Milliseconds from the program's start to Trio time `t`."""
        return (t - self.origin) * 1000

    @asynccontextmanager
    async def session(self, who: str) -> AsyncIterator[None]:
        """Open a session for `who` (a step), and close it on the way out."""
        self.open += 1
        self.peak = max(self.peak, self.open)
        opened = trio.current_time()
        try:
            yield
        finally:
            self.open -= 1
            self.sessions.append((self.ms(opened), self.ms(trio.current_time()), who))


database = Database()


def query(who: str, seconds: float) -> exegraph.Action:
    """An action that holds a database session for `seconds`."""

    async def action() -> None:
        async with database.session(who):
            await trio.sleep(seconds)

    return action


def compute(seconds: float) -> exegraph.Action:
    """An action that does not touch the database."""

    async def action() -> None:
        await trio.sleep(seconds)

    return action


# --8<-- [start:graph]
def pipeline(name: str, tables: dict[str, float]) -> exegraph.Graph:
    """Extract, load each table (in its seconds), reindex, report.

    The loads and the reindex take a slot of the pool called "db".
    """
    loads = [f"load-{table}" for table in tables]
    return exegraph.Graph(
        [
            exegraph.Step("extract", compute(0.02)),
            *(
                exegraph.Step(
                    load, query(f"{name}/{load}", seconds), depends_on=["extract"], pools=["db"]
                )
                for load, seconds in zip(loads, tables.values(), strict=True)
            ),
            exegraph.Step(
                "reindex", query(f"{name}/reindex", 0.03), depends_on=loads, pools=["db"]
            ),
            exegraph.Step("report", compute(0.02), depends_on=["reindex"]),
        ]
    )


DB = exegraph.Pool(2)  # at most two database sessions, for both pipelines together
OPTIONS = exegraph.RunOptions(max_concurrency=4, pools={"db": DB})


async def main() -> None:
    database.origin = trio.current_time()
    orders = pipeline("orders", {"customers": 0.05, "orders": 0.05})
    billing = pipeline("billing", {"invoices": 0.03, "payments": 0.05})
    results: dict[str, exegraph.RunResult] = {}

    async def run(name: str, graph: exegraph.Graph, delay: float) -> None:
        await trio.sleep(delay)
        results[name] = await exegraph.run_with_result(graph, OPTIONS)

    async with trio.open_nursery() as nursery:  # both pipelines at once
        nursery.start_soon(run, "orders", orders, 0.0)
        nursery.start_soon(run, "billing", billing, 0.01)  # 10 ms later
    # --8<-- [end:graph]

    print("database sessions, ms after the start:")
    for opened, closed, who in sorted(database.sessions):
        print(f"  {opened:3.0f} → {closed:3.0f}  {who}")
    print(f"peak: {database.peak} sessions at once (the pool has {DB.size} slots)")
    print()
    print("each step: ready → started (ms), and its wait for slots")
    for name, graph in (("orders", orders), ("billing", billing)):
        for step in graph:
            timing = results[name][step.name]
            assert timing.start is not None
            assert timing.ready is not None  # noted in runs whose steps use pools
            ready, start = database.ms(timing.ready), database.ms(timing.start)
            line = f"  {name + '/' + step.name:<24} {ready:3.0f} → {start:3.0f}"
            print(f"{line}  waited {start - ready:.0f} ms" if start - ready >= 1 else line)
    print(f"the pool after both runs: {DB!r}")


if __name__ == "__main__":
    trio.run(main)
