"""A name that is not there is reported with the closest names that are: "did you mean …?".

Every way of naming a step that does not exist says which steps were probably meant:
a misspelt dependency (`MissingDependencyError`), `graph[name]`, `graph.dependents(name)`,
`graph.priority(name)` and `result[name]` (each a `KeyError`).
"""

from __future__ import annotations

import copy
import pickle
import time
from collections.abc import Callable

import pytest
import trio

import exegraph_trio as exegraph
from exegraph_trio import Graph, GraphBuilder, MissingDependencyError, Step


async def noop() -> None:
    pass


def s(name: str, *deps: str) -> Step:
    return Step(name, noop, depends_on=deps)


PIPELINE = [s("fetch"), s("build", "fetch"), s("lint", "fetch"), s("deploy", "build")]


def test_a_misspelt_dependency_suggests_the_step_it_resembles() -> None:
    with pytest.raises(MissingDependencyError) as info:
        Graph([s("fetch"), s("build", "fecth")])
    assert str(info.value) == (
        "missing dependency: 'build' depends on 'fecth' (did you mean 'fetch'?); "
        "add the missing steps or remove these names from depends_on"
    )
    assert info.value.suggestions == {"fecth": ("fetch",)}


def test_the_error_keeps_every_edge_and_suggests_only_where_a_name_is_close() -> None:
    with pytest.raises(MissingDependencyError) as info:
        Graph([*PIPELINE, s("ship", "deplyo", "zzzzzz"), s("test", "buidl")])
    error = info.value
    assert error.edges == (("ship", "deplyo"), ("ship", "zzzzzz"), ("test", "buidl"))
    assert error.missing == ("deplyo", "zzzzzz", "buidl")
    assert error.suggestions == {"deplyo": ("deploy",), "buidl": ("build",)}
    message = str(error)
    assert "'ship' depends on 'deplyo' (did you mean 'deploy'?)" in message
    assert "'ship' depends on 'zzzzzz';" in message
    assert "'test' depends on 'buidl' (did you mean 'build'?)" in message


def test_a_misspelt_input_is_said_to_be_an_input() -> None:
    # The name is in the step's `inputs`, not in the depends_on the user wrote.
    async def deploy(image: str) -> None: ...

    with pytest.raises(MissingDependencyError) as info:
        Graph([s("build"), Step("deploy", deploy, inputs={"image": "biuld"}), s("x", "y")])
    assert info.value.inputs == {("deploy", "biuld"): "image"}
    assert str(info.value) == (
        "missing dependencies: 'deploy' takes its input 'image' from 'biuld' "
        "(did you mean 'build'?); 'x' depends on 'y'; add the missing steps or remove these "
        "names from depends_on or inputs"
    )


def test_up_to_three_close_names_are_offered_best_first() -> None:
    with pytest.raises(MissingDependencyError) as info:
        Graph([s("commit"), s("compute"), s("compiler"), s("comply"), s("deploy", "compile")])
    assert info.value.suggestions == {"compile": ("compiler", "comply", "compute")}  # not "commit"
    assert "'compile' (did you mean 'compiler', 'comply' or 'compute'?)" in str(info.value)


def test_the_builder_and_add_step_suggest_too() -> None:
    builder = GraphBuilder()
    for step in PIPELINE:
        builder.add_step(step)
    builder.add_step(s("ship", "depoly"))
    with pytest.raises(MissingDependencyError, match=r"'depoly' \(did you mean 'deploy'\?\)"):
        builder.build()
    with pytest.raises(MissingDependencyError, match=r"'lnit' \(did you mean 'lint'\?\)"):
        Graph(PIPELINE).add_step(s("ship", "lnit"))


def test_close_names_are_looked_for_only_for_the_first_few_missing_names() -> None:
    misspelt = [f"fetch{i}x" for i in range(exegraph._errors.MAX_SUGGESTED + 3)]
    with pytest.raises(MissingDependencyError) as info:
        Graph([*(s(name[:-1]) for name in misspelt), s("all", *misspelt)])
    assert list(info.value.suggestions) == misspelt[: exegraph._errors.MAX_SUGGESTED]
    assert len(info.value.edges) == len(misspelt)


@pytest.mark.parametrize(
    "error",
    [
        MissingDependencyError([("build", "fecth")], {"fecth": ["fetch"]}),
        MissingDependencyError([("build", "fecth")]),
        MissingDependencyError([("build", "fecth")], {}, {("build", "fecth"): "source"}),
    ],
    ids=["with-suggestions", "without", "from-inputs"],
)
def test_the_error_pickles_and_copies_with_its_suggestions(error: MissingDependencyError) -> None:
    for clone in (pickle.loads(pickle.dumps(error)), copy.copy(error)):
        assert type(clone) is MissingDependencyError
        assert str(clone) == str(error)
        assert (clone.edges, clone.suggestions) == (error.edges, error.suggestions)
        assert clone.inputs == error.inputs


LOOKUPS: dict[str, Callable[[Graph, str], object]] = {
    "graph[name]": lambda graph, name: graph[name],
    "graph.dependents(name)": Graph.dependents,
    "graph.priority(name)": Graph.priority,
}


@pytest.mark.parametrize("lookup", LOOKUPS.values(), ids=LOOKUPS.keys())
def test_a_graph_lookup_of_a_misspelt_name_suggests_the_step(
    lookup: Callable[[Graph, str], object],
) -> None:
    with pytest.raises(KeyError) as info:
        lookup(Graph(PIPELINE), "fecth")
    assert str(info.value) == "no step named 'fecth' in this graph (did you mean 'fetch'?)"


@pytest.mark.parametrize("lookup", LOOKUPS.values(), ids=LOOKUPS.keys())
def test_a_graph_lookup_of_a_name_like_none_suggests_nothing(
    lookup: Callable[[Graph, str], object],
) -> None:
    with pytest.raises(KeyError) as info:
        lookup(Graph(PIPELINE), "zzzzzz")
    assert str(info.value) == "no step named 'zzzzzz' in this graph"


def test_a_lookup_of_a_name_that_is_not_a_string_says_so_plainly() -> None:
    with pytest.raises(KeyError) as info:
        Graph(PIPELINE)[3]  # type: ignore[index]
    assert str(info.value) == "no step named 3 in this graph"


async def test_a_result_lookup_of_a_misspelt_name_suggests_the_step(
    autojump_clock: trio.testing.MockClock,
) -> None:
    result = await exegraph.run_with_result(Graph(PIPELINE))
    with pytest.raises(KeyError) as info:
        result["deplyo"]
    assert str(info.value) == "no step named 'deplyo' in this run (did you mean 'deploy'?)"


def test_a_missed_lookup_in_a_large_graph_costs_nothing_until_it_is_shown() -> None:
    graph = Graph(s(f"step-{i}") for i in range(50_000))
    start = time.perf_counter()
    for _ in range(100):
        with pytest.raises(KeyError):
            graph["step-12x"]
    assert time.perf_counter() - start < 0.5  # 100 eager searches of 50 000 names take ~50 s
    with pytest.raises(KeyError) as info:
        graph["step-12x"]
    assert "did you mean 'step-12'" in str(info.value)


def test_a_missed_lookup_pickles_and_copies_with_its_message() -> None:
    with pytest.raises(KeyError) as info:
        Graph(PIPELINE)["fecth"]
    for clone in (pickle.loads(pickle.dumps(info.value)), copy.deepcopy(info.value)):
        assert type(clone) is KeyError
        assert str(clone) == "no step named 'fecth' in this graph (did you mean 'fetch'?)"
