"""Test a graph with pytest-trio and its autojump clock: virtual time, exact asserts.

Run it with `python examples/testing_with_pytest.py` (it runs pytest on itself), or
`pytest examples/testing_with_pytest.py`.

With the `autojump_clock` fixture, `trio.sleep(30)` returns at once while
`trio.current_time()` advances by exactly 30, so tests of timing-dependent behaviour
are fast, deterministic, and can assert times with `==`. Choose durations that are
exact in binary floating point (whole seconds are) and distinct where the order of
completion matters: steps that end at the same virtual instant may wake in any order.
"""

from __future__ import annotations

import pytest
import trio
import trio.testing

import exegraph_trio as exegraph

pytestmark = pytest.mark.trio  # not needed where `trio_mode = true` is configured


def sleeper(seconds: float, *, error: Exception | None = None) -> exegraph.Action:
    async def action() -> None:
        await trio.sleep(seconds)
        if error is not None:
            raise error

    return action


# --8<-- [start:tests]
def pipeline(*, fail: bool = False) -> exegraph.Graph:
    """`fetch` (10 s) and `compile` (20 s) in parallel, then `link` (5 s) after both."""
    return exegraph.Graph(
        [
            exegraph.Step("fetch", sleeper(10)),
            exegraph.Step("compile", sleeper(20, error=OSError("disk full") if fail else None)),
            exegraph.Step("link", sleeper(5), depends_on=["fetch", "compile"]),
        ]
    )


async def test_independent_steps_run_in_parallel(autojump_clock: trio.testing.MockClock) -> None:
    result = await exegraph.run_with_result(pipeline())
    assert result.ok
    assert result.total_duration == 25  # max(10, 20) + 5, not 10 + 20 + 5
    assert result["link"].start == 20


async def test_a_concurrency_bound_of_one_serialises(
    autojump_clock: trio.testing.MockClock,
) -> None:
    result = await exegraph.run_with_result(pipeline(), exegraph.RunOptions(max_concurrency=1))
    assert [t.name for t in result.steps] == ["fetch", "compile", "link"]
    assert result.total_duration == 35


async def test_a_failure_skips_what_depends_on_it(autojump_clock: trio.testing.MockClock) -> None:
    with pytest.RaisesGroup(
        pytest.RaisesExc(OSError, match="disk full"),
        pytest.RaisesExc(exegraph.StepSkippedError, match="'link'"),
    ):
        await exegraph.run(pipeline(fail=True))
    assert trio.current_time() == 20  # it stopped when compile failed


async def test_a_step_past_its_deadline_times_out(autojump_clock: trio.testing.MockClock) -> None:
    graph = exegraph.Graph([exegraph.Step("hang", trio.sleep_forever, timeout=30)])
    result = await exegraph.run_with_result(graph)
    assert isinstance(result["hang"].error, exegraph.StepTimeoutError)
    assert result["hang"].duration == 30


# --8<-- [end:tests]


def main() -> int:
    """Run the tests above with pytest; return its exit code."""
    return pytest.main([__file__, "-q", "-p", "no:cacheprovider"])


if __name__ == "__main__":
    raise SystemExit(main())
