"""What `run` says when it is called wrongly: the mistakes a newcomer makes first."""

from __future__ import annotations

import asyncio

import pytest
import trio

import exegraph_trio as exegraph


async def noop() -> None:
    await trio.lowlevel.checkpoint()


STEPS = [exegraph.Step(f"s{i}", noop) for i in range(1000)]


@pytest.mark.parametrize("entry", [exegraph.run, exegraph.run_with_result])
async def test_a_list_of_steps_is_refused_with_what_to_write_instead(entry: object) -> None:
    with pytest.raises(TypeError, match=r"exegraph\.Graph\(steps\)") as caught:
        await entry(STEPS)  # type: ignore[operator]
    assert "list" in str(caught.value)
    assert len(str(caught.value)) < 120  # the steps themselves are not printed


async def test_a_non_graph_is_refused_by_type_name_only() -> None:
    with pytest.raises(TypeError, match=r"^run takes an exegraph\.Graph, not int$"):
        await exegraph.run(42)  # type: ignore[arg-type]


async def test_options_of_the_wrong_type_are_refused() -> None:
    with pytest.raises(TypeError, match=r"options must be exegraph\.RunOptions or None, not dict"):
        await exegraph.run(exegraph.Graph(STEPS[:1]), {"max_concurrency": 2})  # type: ignore[arg-type]


def test_running_under_asyncio_says_exegraph_runs_on_trio_and_how_to_call_it() -> None:
    graph = exegraph.Graph(STEPS[:1])
    with pytest.raises(RuntimeError, match=r"exegraph runs on Trio") as caught:
        asyncio.run(exegraph.run(graph))
    assert "trio.run(exegraph.run, graph)" in str(caught.value)
