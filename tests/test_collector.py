"""The cyclic garbage collector is paused while a graph, its priorities or a result's
timings are made, and left as it was afterwards, whatever happens."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

import exegraph_trio as exegraph
from exegraph_trio import Graph, Step, StepTiming
from exegraph_trio._collector import collector_paused


@pytest.fixture
def collector_on() -> Iterator[None]:
    was = gc.isenabled()
    gc.enable()
    yield
    (gc.enable if was else gc.disable)()


async def noop() -> None:
    pass


def test_the_collector_is_paused_during_the_work_and_back_on_after(collector_on: None) -> None:
    seen = []

    @collector_paused
    def work(x: int, *, y: int) -> int:
        seen.append(gc.isenabled())
        return x + y

    assert work(1, y=2) == 3
    assert seen == [False]
    assert gc.isenabled()
    assert work.__name__ == "work"


def test_the_collector_is_back_on_when_the_work_raises(collector_on: None) -> None:
    @collector_paused
    def work() -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        work()
    assert gc.isenabled()


def test_an_interrupt_as_the_collector_is_paused_still_turns_it_back_on(
    collector_on: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A signal handler runs as soon as a call into C returns: a Ctrl-C can land just after
    # `gc.disable()`, before the work, and must not leave the collector off for good.
    disable = gc.disable

    def disable_then_interrupted() -> None:
        disable()
        raise KeyboardInterrupt

    monkeypatch.setattr(gc, "disable", disable_then_interrupted)
    with pytest.raises(KeyboardInterrupt):
        Graph([Step("a", noop)])
    assert gc.isenabled()


def test_a_collector_the_program_turned_off_stays_off(collector_on: None) -> None:
    seen = []

    @collector_paused
    def work() -> None:
        seen.append(gc.isenabled())

    gc.disable()
    work()
    assert seen == [False]
    assert not gc.isenabled()


def test_making_a_graph_and_its_priorities_leaves_the_collector_on(collector_on: None) -> None:
    graph = Graph([Step("a", noop), Step("b", noop, depends_on=["a"]), Step("c", noop)])
    assert graph.priority("a") == 1
    assert gc.isenabled()
    with pytest.raises(exegraph.DuplicateStepError):
        Graph([Step("a", noop), Step("a", noop)])
    assert gc.isenabled()
    with pytest.raises(exegraph.CycleError):
        Graph([Step("a", noop, depends_on=["b"]), Step("b", noop, depends_on=["a"])])
    assert gc.isenabled()


async def test_a_results_timings_are_made_with_the_collector_paused(
    collector_on: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from exegraph_trio import _driver

    graph = Graph([Step("a", noop), Step("b", noop, depends_on=["a"])])
    result = await exegraph.run_with_result(graph)
    seen: list[bool] = []
    real = _driver._timing  # type: ignore[attr-defined]

    def watching(name: str, *rest: object) -> StepTiming:
        seen.append(gc.isenabled())
        return real(name, *rest)  # type: ignore[arg-type]

    monkeypatch.setattr(_driver, "_timing", watching)
    assert [t.name for t in result.steps] == ["a", "b"]
    assert seen == [False, False]
    assert gc.isenabled()


def test_a_plan_is_made_with_the_collector_paused(collector_on: None) -> None:
    from collections.abc import Mapping

    seen: list[bool] = []

    class Durations(Mapping[str, float]):
        def __getitem__(self, name: str) -> float:
            seen.append(gc.isenabled())
            return {"a": 1.0, "b": 2.0}[name]

        def __iter__(self) -> Iterator[str]:
            seen.append(gc.isenabled())
            return iter(["a", "b"])

        def __len__(self) -> int:
            return 2

    graph = Graph([Step("a", noop), Step("b", noop, depends_on=["a"])])
    planned = exegraph.plan(graph, exegraph.RunOptions(durations=Durations()))
    assert planned["b"].start == 1.0
    assert seen
    assert not any(seen)
    assert gc.isenabled()
