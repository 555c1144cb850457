"""Learned critical path (SPEC 2.2): `RunOptions(durations=...)` and `RunResult.critical_path()`.

Virtual time throughout; each action sleeps a fixed number of seconds, so start times and
paths are exact. With `max_concurrency=1` the start order is the priority order.
"""

from __future__ import annotations

from collections.abc import Mapping

import pytest
import trio
import trio.testing

import exegraph_trio as exegraph
from exegraph_trio import Graph, RunOptions, Step


def sleeping(seconds: float, log: list[str], name: str) -> exegraph.Action:
    async def act() -> None:
        log.append(name)
        await trio.sleep(seconds)

    return act


def graph_of(spec: Mapping[str, tuple[float, list[str]]], log: list[str]) -> Graph:
    return Graph(
        Step(name, sleeping(seconds, log, name), depends_on=deps)
        for name, (seconds, deps) in spec.items()
    )


async def test_with_durations_the_longest_path_starts_first(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: list[str] = []
    # 'short' has more dependents (2), 'long' the longer path (5 + 1 = 6 s > 1 + 1 + 1).
    graph = graph_of(
        {
            "short": (1, []),
            "long": (5, []),
            "a": (1, ["short"]),
            "b": (1, ["short"]),
            "after": (1, ["long"]),
        },
        log,
    )
    durations = {"short": 1.0, "long": 5.0, "a": 1.0, "b": 1.0, "after": 1.0}
    await exegraph.run(graph, RunOptions(max_concurrency=1, durations=durations))
    # At 6 s 'a', 'b' and 'after' are ready with equal paths (1 s) and no dependents:
    # graph order decides.
    assert log == ["long", "short", "a", "b", "after"]


async def test_without_durations_the_count_of_dependents_decides(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: list[str] = []
    graph = graph_of(
        {"short": (1, []), "long": (5, []), "a": (1, ["short"]), "b": (1, ["short"])}, log
    )
    await exegraph.run(graph, RunOptions(max_concurrency=1))
    assert log[0] == "short"


async def test_equal_paths_go_to_more_dependents_then_to_graph_order(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: list[str] = []
    graph = graph_of(
        {
            "x": (2, []),
            "y": (1, []),  # path 1 + 1 = 2, like x's, but one dependent
            "z": (2, []),  # path 2, no dependent, after x in graph order
            "y1": (1, ["y"]),
        },
        log,
    )
    durations = {"x": 2.0, "y": 1.0, "z": 2.0, "y1": 1.0}
    await exegraph.run(graph, RunOptions(max_concurrency=1, durations=durations))
    assert log == ["y", "x", "z", "y1"]


async def test_a_step_without_an_estimate_gets_the_median_of_the_known_ones(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: list[str] = []
    graph = graph_of({"a": (1, []), "b": (1, []), "c": (1, []), "unknown": (1, [])}, log)
    # Known: 1, 2, 9 -> median 2: 'unknown' ties with 'b' (graph order puts 'b' first),
    # after 'c' (9 s) and before 'a' (1 s).
    durations = {"a": 1.0, "b": 2.0, "c": 9.0}
    await exegraph.run(graph, RunOptions(max_concurrency=1, durations=durations))
    assert log == ["c", "b", "unknown", "a"]


async def test_with_no_known_estimate_every_step_counts_one_second(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: list[str] = []
    graph = graph_of({"a": (1, []), "b": (1, []), "b1": (1, ["b"])}, log)
    await exegraph.run(graph, RunOptions(max_concurrency=1, durations={"elsewhere": 5.0}))
    assert log == ["b", "a", "b1"]  # b's path is 2 s, a's 1 s


@pytest.mark.parametrize("bad", [-1.0, float("nan"), float("inf"), "1", True])
async def test_a_bad_estimate_is_refused_before_any_step_starts(bad: object) -> None:
    log: list[str] = []
    graph = graph_of({"a": (0, [])}, log)
    with pytest.raises(ValueError, match=r"durations must map step names to finite seconds"):
        await exegraph.run(graph, RunOptions(durations={"a": bad}))  # type: ignore[dict-item]
    assert log == []


def test_durations_must_be_a_mapping() -> None:
    with pytest.raises(TypeError, match=r"durations must be a mapping"):
        RunOptions(durations=[("a", 1.0)])  # type: ignore[arg-type]


async def test_the_critical_path_follows_each_steps_last_finishing_dependency(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: list[str] = []
    graph = graph_of(
        {
            "fetch": (1, []),
            "compile": (4, ["fetch"]),
            "lint": (1, ["fetch"]),
            "assets": (2, []),
            "package": (1, ["compile", "lint", "assets"]),
            "docs": (1, []),
        },
        log,
    )
    result = await exegraph.run_with_result(graph)
    assert result.critical_path() == ("fetch", "compile", "package")
    assert result.total_duration == 6


def test_the_critical_path_of_a_run_where_nothing_ran_is_empty() -> None:
    graph = graph_of({"a": (0, [])}, [])
    skipped = exegraph.StepTiming("a", exegraph.StepStatus.SKIPPED)
    assert exegraph.RunResult((skipped,), 0.0, graph=graph).critical_path() == ()


def test_a_result_made_by_hand_has_no_critical_path() -> None:
    result = exegraph.RunResult((), 0.0)
    with pytest.raises(ValueError, match=r"needs the graph"):
        result.critical_path()
