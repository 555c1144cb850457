"""A shared `Pool` wakes the runs waiting for it whenever they may go (SPEC 2.2).

Each case is a fresh `trio.run` under `MockClock`, repeated, so that Trio's task order
varies: the schedule must not depend on it.
"""

from __future__ import annotations

import pytest
import trio
import trio.testing

import exegraph_trio as exegraph
from exegraph_trio import Step


def sleeping(seconds: float, *, fail: bool = False) -> exegraph.Action:
    async def act() -> None:
        await trio.sleep(seconds)
        if fail:
            raise RuntimeError("boom")

    return act


async def _runs(
    options: exegraph.RunOptions, **graphs: exegraph.Graph
) -> dict[str, exegraph.RunResult]:
    out: dict[str, exegraph.RunResult] = {}

    async def go(name: str, graph: exegraph.Graph) -> None:
        out[name] = await exegraph.run_with_result(graph, options)

    async with trio.open_nursery() as nursery:
        for name, graph in graphs.items():
            nursery.start_soon(go, name, graph)
    return out


@pytest.mark.parametrize("repeat", range(20))
def test_a_run_held_back_by_an_older_waiter_goes_when_that_waiter_takes_its_slot(
    repeat: int,
) -> None:
    # At 10 s run B's step becomes ready while run A's older step also waits for the
    # 2-slot pool; A's step takes one slot, and B's must take the other at once.
    async def main() -> tuple[float | None, float | None]:
        options = exegraph.RunOptions(pools={"db": exegraph.Pool(2)})
        a = exegraph.Graph(
            [
                Step("a-first", sleeping(1)),
                Step("a-wait", sleeping(10), depends_on=["a-first"], pools=["db"]),
            ]
        )
        b = exegraph.Graph(
            [
                Step("b-load1", sleeping(10), pools=["db"]),
                Step("b-load2", sleeping(10), pools=["db"]),
                Step("b-next", sleeping(1), depends_on=["b-load1", "b-load2"], pools=["db"]),
            ]
        )
        out = await _runs(options, a=a, b=b)
        return out["b"]["b-next"].ready, out["b"]["b-next"].start

    assert trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0)) == (10, 10)


@pytest.mark.parametrize("repeat", range(10))
def test_a_run_held_back_by_an_older_waiter_goes_when_that_waiter_is_skipped(
    repeat: int,
) -> None:
    # Run A's `a-wait` (both slots) is older than B's `b-next`; fail-fast skips it at
    # 12 s, when one slot is free: `b-next` starts then, not when `c-hold` ends at 20 s.
    async def main() -> tuple[str, float | None, float | None]:
        options = exegraph.RunOptions(pools={"db": exegraph.Pool(2)})
        a = exegraph.Graph(
            [
                Step("a-first", sleeping(1)),
                Step("a-fail", sleeping(12, fail=True)),
                Step("a-wait", sleeping(10), depends_on=["a-first"], pools={"db": 2}),
            ]
        )
        b = exegraph.Graph(
            [
                Step("b-load", sleeping(10), pools=["db"]),
                Step("b-next", sleeping(1), depends_on=["b-load"], pools=["db"]),
            ]
        )
        c = exegraph.Graph([Step("c-hold", sleeping(20), pools=["db"])])
        out = await _runs(options, a=a, b=b, c=c)
        waiting = out["a"]["a-wait"]
        return str(waiting.status), out["b"]["b-next"].ready, out["b"]["b-next"].start

    result = trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    assert result == ("Skipped", 10, 12)


@pytest.mark.parametrize("repeat", range(10))
def test_a_younger_step_of_the_run_with_the_oldest_waiter_does_not_pass_another_runs_older_one(
    repeat: int,
) -> None:
    # Pool(2): B's `b-long` holds a slot until 10 s. A's `x` (both slots) waits from
    # 0.1 s, B's `y` from 1 s, A's `z` from 2.1 s. In the order they became ready: `x`
    # when both slots are free (10 s), then `y` and `z` (11 s) — `z` never before `y`.
    async def main() -> dict[str, float | None]:
        pool = exegraph.Pool(2)
        a = exegraph.Graph(
            [
                Step("a-gate", sleeping(2)),
                Step("x", sleeping(1), pools={"db": 2}),
                Step("z", sleeping(1), depends_on=["a-gate"], pools=["db"]),
            ]
        )
        b = exegraph.Graph(
            [
                Step("b-long", sleeping(10), pools=["db"]),
                Step("b-gate", sleeping(1)),
                Step("y", sleeping(1), depends_on=["b-gate"], pools=["db"]),
            ]
        )
        out: dict[str, exegraph.RunResult] = {}

        async def go(name: str, graph: exegraph.Graph) -> None:
            out[name] = await exegraph.run_with_result(
                graph, exegraph.RunOptions(pools={"db": pool})
            )

        async with trio.open_nursery() as nursery:
            nursery.start_soon(go, "b", b)
            await trio.sleep(0.1)
            nursery.start_soon(go, "a", a)
        return {name: out[run][name].start for run, name in [("a", "x"), ("b", "y"), ("a", "z")]}

    starts = trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    assert starts == {"x": 10, "y": 11, "z": 11}
