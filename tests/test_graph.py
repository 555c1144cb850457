"""`Graph` and `GraphBuilder`: validation, reads, priorities, and building incrementally."""

from __future__ import annotations

import inspect
import random
import sys
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import exegraph_trio as exegraph
from exegraph_trio import Graph, GraphBuilder, Step
from exegraph_trio import _graph as exegraph_graph


async def noop() -> None:
    pass


def s(name: str, *deps: str, tags: tuple[str, ...] = ()) -> Step:
    return Step(name, noop, depends_on=deps, tags=tags)


def test_steps_may_come_in_any_order() -> None:
    graph = Graph([s("c", "b"), s("b", "a"), s("a")])
    assert graph.names == ("c", "b", "a")


def test_an_empty_graph_is_valid() -> None:
    assert len(Graph()) == 0
    assert len(Graph([])) == 0


def test_a_graph_reads_like_a_mapping_of_names_to_steps() -> None:
    a, b = s("a"), s("b", "a")
    graph = Graph([a, b])
    assert len(graph) == 2
    assert "a" in graph
    assert "z" not in graph
    assert graph["b"] is b
    assert list(graph) == [a, b]
    assert graph.steps == (a, b)
    with pytest.raises(KeyError, match="'z'"):
        graph["z"]


def test_a_graph_is_frozen_and_compares_by_its_steps() -> None:
    graph = Graph([s("a")])
    assert graph == Graph([s("a")])
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        graph.steps = ()  # type: ignore[misc]


def test_repr_is_short_even_for_big_graphs() -> None:
    graph = Graph(s(f"n{i}") for i in range(100))
    assert repr(graph).startswith("<Graph of 100 steps: 'n0', 'n1'")
    assert len(repr(graph)) < 120


def test_non_step_items_are_a_type_error_naming_each() -> None:
    with pytest.raises(TypeError, match=r"#1: None, #2: 'b'"):
        Graph([s("a"), None, "b"])  # type: ignore[list-item]


def test_a_mapping_of_steps_is_told_to_give_its_values() -> None:
    with pytest.raises(TypeError, match=r"#0: 'a' \(a mapping gives its keys: pass its "):
        Graph({"a": s("a")})  # type: ignore[dict-item]


def test_a_single_step_instead_of_an_iterable_is_a_type_error() -> None:
    with pytest.raises(TypeError, match=r"Graph\(\[step\]\)"):
        Graph(s("a"))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="iterable"):
        Graph(3)  # type: ignore[arg-type]


def test_duplicate_names_are_all_reported() -> None:
    with pytest.raises(exegraph.DuplicateStepError) as info:
        Graph([s("a"), s("b"), s("a"), s("b"), s("c")])
    assert info.value.names == ("a", "b")
    assert "'a', 'b'" in str(info.value)


def test_every_missing_dependency_edge_is_reported() -> None:
    with pytest.raises(exegraph.MissingDependencyError) as info:
        Graph([s("a", "x"), s("b", "a", "y", "x")])
    assert info.value.edges == (("a", "x"), ("b", "y"), ("b", "x"))
    assert info.value.missing == ("x", "y")
    message = str(info.value)
    assert "'a' depends on 'x'" in message
    assert "'b' depends on 'y'" in message


def test_a_cycle_is_reported_as_a_path_in_the_message_and_attribute() -> None:
    with pytest.raises(exegraph.CycleError) as info:
        Graph([s("start"), s("a", "c", "start"), s("b", "a"), s("c", "b"), s("end", "a")])
    assert info.value.cycle == ("a", "c", "b", "a")
    assert "a → c → b → a" in str(info.value)


def test_a_two_step_cycle() -> None:
    with pytest.raises(exegraph.CycleError) as info:
        Graph([s("a", "b"), s("b", "a")])
    assert info.value.cycle == ("a", "b", "a")


@pytest.mark.parametrize(
    "error",
    [exegraph.DuplicateStepError, exegraph.MissingDependencyError, exegraph.CycleError],
)
def test_graph_errors_are_value_errors(error: type[Exception]) -> None:
    assert issubclass(error, exegraph.GraphError)
    assert issubclass(error, ValueError)


def test_add_step_returns_a_new_graph_and_leaves_the_old_one() -> None:
    graph = Graph([s("a")])
    bigger = graph.add_step(s("b", "a"))
    assert bigger.names == ("a", "b")
    assert graph.names == ("a",)


@pytest.mark.parametrize(
    ("step", "error"),
    [
        (None, TypeError),
        (s("a"), exegraph.DuplicateStepError),
        (s("b", "zzz"), exegraph.MissingDependencyError),
    ],
)
def test_add_step_validates_like_the_constructor(step: Any, error: type[Exception]) -> None:
    graph = Graph([s("a")])
    with pytest.raises(error):
        graph.add_step(step)
    assert graph.names == ("a",)


def test_dependents_and_with_tag() -> None:
    graph = Graph([s("a", tags=("x",)), s("b", "a"), s("c", "a", tags=("x", "y")), s("d", "b")])
    assert [step.name for step in graph.dependents("a")] == ["b", "c"]
    assert graph.dependents("d") == ()
    assert [step.name for step in graph.with_tag("x")] == ["a", "c"]
    assert graph.with_tag("nope") == ()
    with pytest.raises(KeyError):
        graph.dependents("zzz")


def test_priority_counts_transitive_dependents_once_each() -> None:
    # a → b → d, a → c → d, d → e; x alone
    graph = Graph([s("a"), s("b", "a"), s("c", "a"), s("d", "b", "c"), s("e", "d"), s("x")])
    assert {n: graph.priority(n) for n in graph.names} == {
        "a": 4,
        "b": 2,
        "c": 2,
        "d": 1,
        "e": 0,
        "x": 0,
    }
    with pytest.raises(KeyError):
        graph.priority("zzz")


def test_priority_of_trees_fans_and_chains() -> None:
    fan_out = Graph([s("root"), *(s(f"leaf{i}", "root") for i in range(5))])
    assert fan_out.priority("root") == 5
    fan_in = Graph([*(s(f"src{i}") for i in range(5)), s("sink", *(f"src{i}" for i in range(5)))])
    assert [fan_in.priority(f"src{i}") for i in range(5)] == [1] * 5
    chain = Graph([s("n0"), *(s(f"n{i}", f"n{i - 1}") for i in range(1, 10))])
    assert [chain.priority(f"n{i}") for i in range(10)] == list(range(9, -1, -1))


def brute_force_priorities(graph: Graph) -> dict[str, int]:
    dependents: dict[str, list[str]] = {n: [] for n in graph.names}
    for step in graph:
        for dep in step.depends_on:
            dependents[dep].append(step.name)
    result = {}
    for name in graph.names:
        seen: set[str] = set()
        todo = list(dependents[name])
        while todo:
            current = todo.pop()
            if current not in seen:
                seen.add(current)
                todo.extend(dependents[current])
        result[name] = len(seen)
    return result


@pytest.mark.parametrize("shuffled", [False, True], ids=["added-in-order", "shuffled"])
@pytest.mark.parametrize("seed", range(20))
def test_priority_matches_a_brute_force_count_on_random_dags(seed: int, shuffled: bool) -> None:
    rng = random.Random(seed)
    n = rng.randint(1, 40)
    steps = [s(f"n{i}", *(f"n{j}" for j in range(i) if rng.random() < 0.15)) for i in range(n)]
    if shuffled:
        rng.shuffle(steps)
    graph = Graph(steps)
    assert {name: graph.priority(name) for name in graph.names} == brute_force_priorities(graph)


def dependents_by_sets(graph: Graph) -> dict[str, int]:
    """Transitive dependents counted with Python sets: the obvious way, for larger graphs."""
    below: dict[str, set[str]] = {}
    for name in reversed(graph.names):  # (the graphs below list dependencies first)
        below[name] = set()
        for dependent in graph.dependents(name):
            below[name] |= below[dependent.name] | {dependent.name}
    return {name: len(found) for name, found in below.items()}


def layers(count: int, width: int, fan_in: int, seed: int) -> list[Step]:
    rng = random.Random(seed)
    steps = [s(f"l0-{j}") for j in range(width)]
    for layer in range(1, count):
        for j in range(width):
            deps = rng.sample(range(width), fan_in)
            steps.append(s(f"l{layer}-{j}", *(f"l{layer - 1}-{d}" for d in deps)))
    return steps


def test_priority_of_a_deep_graph_whose_dependents_become_runs_of_bits() -> None:
    # 300 layers of 10: past 2 048 steps from the end, an early step's dependents are a run
    # of every later step, which the count keeps as a pair (`_RUN_MASK`).
    graph = Graph(layers(300, 10, 3, seed=1))
    assert {name: graph.priority(name) for name in graph.names} == dependents_by_sets(graph)
    assert graph.priority("l0-0") > 2_048


@settings(max_examples=300, deadline=None)
@given(
    st.integers(1, 60),
    st.integers(1, 4),
    st.sampled_from([1, 3, 0xF, 0xFF]),
    st.booleans(),
    st.randoms(use_true_random=False),
)
def test_priority_matches_a_brute_force_count_whatever_the_run_threshold(
    n: int, most: int, mask: int, shuffled: bool, rng: random.Random
) -> None:
    # A small `_RUN_MASK` makes pairs (run, rest) of small graphs, and pairs meet plain
    # bitsets and other pairs with other runs: every way two unions can merge. Steps with
    # one dependency among steps with more hang below a step that counts them (a block of
    # bits that may straddle a run's end).
    steps = [
        s(
            f"n{i}",
            *(f"n{j}" for j in rng.sample(range(max(0, i - 8), i), min(i, rng.randint(0, most)))),
        )
        for i in range(n)
    ]
    if shuffled:
        rng.shuffle(steps)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(exegraph_graph, "_RUN_MASK", mask)
        graph = Graph(steps)
        found = {name: graph.priority(name) for name in graph.names}
    assert found == brute_force_priorities(graph)


@settings(max_examples=300, deadline=None)
@given(
    st.integers(1, 80),
    st.integers(2, 5),
    st.sampled_from([1, 3, 0xFF, (1 << 2048) - 1]),
    st.sampled_from([0, 1, 6, 40, 300]),
    st.sampled_from([1, 2, 5]),
    st.booleans(),
    st.randoms(use_true_random=False),
)
def test_priority_counted_a_window_of_bits_at_a_time_is_the_same(  # noqa: PLR0917
    n: int,
    most: int,
    mask: int,
    alive_bits: int,
    least_window: int,
    shuffled: bool,
    rng: random.Random,
) -> None:
    # With a tiny `_ALIVE_BITS`, the unions alive at once are soon "too many": the count
    # starts again a window of bits at a time, windows shrinking to `_LEAST_WINDOW` as more
    # unions are seen alive; blocks of hanging steps straddle windows, runs form inside one.
    # Edges go anywhere behind a step, as in the graphs whose memory this bounds.
    steps = [
        s(f"n{i}", *(f"n{j}" for j in rng.sample(range(i), min(i, rng.randint(0, most)))))
        for i in range(n)
    ]
    if shuffled:
        rng.shuffle(steps)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(exegraph_graph, "_RUN_MASK", mask)
        patch.setattr(exegraph_graph, "_ALIVE_BITS", alive_bits)
        patch.setattr(exegraph_graph, "_LEAST_WINDOW", least_window)
        patch.setattr(exegraph_graph, "_LOOK_EVERY", 1)
        graph = Graph(steps)
        found = {name: graph.priority(name) for name in graph.names}
    assert found == brute_force_priorities(graph)


def test_priority_of_a_graph_whose_unions_would_fill_the_memory_is_counted_in_windows() -> None:
    # 6 000 steps, each depending on three anywhere behind it: nearly every union is alive
    # until the end. With `_ALIVE_BITS` at 2¹⁶ the count goes by windows, to the same counts.
    rng = random.Random(3)
    steps = [
        s(f"n{i}", *(f"n{j}" for j in ({rng.randrange(i) for _ in range(3)} if i else ())))
        for i in range(6_000)
    ]
    whole = Graph(steps)
    expected = [whole.priority(name) for name in whole.names]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(exegraph_graph, "_ALIVE_BITS", 1 << 16)
        patch.setattr(exegraph_graph, "_LEAST_WINDOW", 64)
        walks = _walks(patch)
        windowed = Graph(steps)
        assert [windowed.priority(name) for name in windowed.names] == expected
    assert walks[0] == (0, 6_001)  # (the first walk: every bit, stopped)
    windows = walks[1:]
    assert len(windows) > 3
    assert all(width < 6_000 for _, width in windows)
    assert sorted({lo for lo, _ in windows}) == [lo for lo, _ in windows]  # (one walk each)


def test_priority_of_steps_added_dependents_first_is_counted_in_windows_too() -> None:
    # The same kind of graph added in reverse: the walk's order is Kahn's, not the
    # positions; the unions it weighs are those of the steps it has not walked yet, and
    # the windows give the counts of one walk.
    rng = random.Random(5)
    steps = [
        s(
            f"n{i}",
            *(f"n{j}" for j in ({i - 1, *(rng.randrange(i) for _ in range(3))} if i else ())),
        )
        for i in range(3_000)
    ]
    expected = [Graph(steps).priority(f"n{i}") for i in range(3_000)]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(exegraph_graph, "_ALIVE_BITS", 20_000)
        patch.setattr(exegraph_graph, "_LEAST_WINDOW", 64)
        patch.setattr(exegraph_graph, "_LOOK_EVERY", 1)
        walks = _walks(patch)
        weighed: list[tuple[int, int]] = []
        real = exegraph_graph._bits_alive

        def weigh(given: list[Any]) -> tuple[int, int]:
            # (what the walk gave, against every union its list holds at that moment)
            held = [union for union in sys._getframe(1).f_locals["unions"] if union]
            weighed.append((real(given)[1], real(held)[1]))
            return real(given)

        patch.setattr(exegraph_graph, "_bits_alive", weigh)
        graph = Graph(steps[::-1])
        assert [graph.priority(f"n{i}") for i in range(3_000)] == expected
    assert len(walks) > 1  # (windowed, as the same steps added in order are)
    assert weighed
    assert all(seen == alive for seen, alive in weighed)


def _walks(patch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    """The `(first bit, width)` of every walk the priorities' count makes from now on."""
    walks: list[tuple[int, int]] = []
    walk = exegraph_graph._bitset_walk

    def counted(*args: Any, **kwargs: Any) -> int:
        walks.append((args[7], args[8]))
        return walk(*args, **kwargs)

    patch.setattr(exegraph_graph, "_bitset_walk", counted)
    return walks


def test_priority_of_many_steps_sharing_one_small_union_is_counted_in_one_walk() -> None:
    # 3 000 steps depend on both roots and a sink on all of them: 3 000 unions alive at
    # once, but all the same two-bit set (the first push shares it). Bounding them by
    # their number times the bits given would window this graph; weighing them does not.
    k = 3_000
    steps = [s("a"), s("b"), *(s(f"m{i}", "a", "b") for i in range(k))]
    steps.append(s("sink", *(f"m{i}" for i in range(k))))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(exegraph_graph, "_ALIVE_BITS", 50_000)  # (< 3 000 × 3 001 bits)
        patch.setattr(exegraph_graph, "_LEAST_WINDOW", 64)
        patch.setattr(exegraph_graph, "_LOOK_EVERY", 1)
        walks = _walks(patch)
        graph = Graph(steps)
        assert graph.priority("a") == graph.priority("b") == k + 1
    assert walks == [(0, k + 4)]


def test_priority_cuts_a_block_of_hanging_steps_at_the_end_of_each_window() -> None:
    # `x` depends on 400 steps `y{k}` (each on two roots) and 3 000 steps hang below it:
    # its block of 3 001 bits reaches every `y{k}`'s union and, through them, the roots'.
    # Windows of 64 bits cut it; the count is the same.
    m, h = 400, 3_000
    steps = [s(f"r{k}") for k in range(m)]
    steps += [s(f"y{k}", f"r{k}", f"r{(k + 1) % m}") for k in range(m)]
    steps += [s("x", *(f"y{k}" for k in range(m))), *(s(f"h{j}", "x") for j in range(h))]
    steps.append(s("w", "r0", "r1"))  # (walked first: its bit keeps runs of bits from forming)
    expected = brute_force_priorities(Graph(steps))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(exegraph_graph, "_ALIVE_BITS", 100_000)
        patch.setattr(exegraph_graph, "_LEAST_WINDOW", 64)
        patch.setattr(exegraph_graph, "_LOOK_EVERY", 1)
        walks = _walks(patch)
        graph = Graph(steps)
        assert {name: graph.priority(name) for name in graph.names} == expected
    assert expected["r0"] == 1 + 2 + 1 + h  # (w, y0 and y399, x, what hangs below x)
    width = walks[-1][1]  # (the last windows' width: the block is cut into windows)
    assert width < h
    assert sum(1 for _, each in walks if each == width) >= h // width


def test_priority_of_a_fan_out_and_back_in_with_steps_hanging_below() -> None:
    # root -> 50 000 middles -> sink, each middle also with a step of its own below it, and
    # the sink with a chain of 3 below: the steps with one dependency take no bit (see
    # `_count_dependents`), so this is counted in linear time (it was quadratic).
    k = 50_000
    steps = [s("root")]
    for i in range(k):
        steps += [s(f"m{i}", "root"), s(f"leaf{i}", f"m{i}")]
    steps += [s("sink", *(f"m{i}" for i in range(k))), s("t1", "sink"), s("t2", "t1")]
    steps.append(s("t3", "t2"))
    graph = Graph(steps)
    assert graph.priority("root") == len(steps) - 1
    assert graph.priority("m0") == graph.priority(f"m{k - 1}") == 1 + 1 + 3  # leaf, sink, t1-3
    assert graph.priority("sink") == 3
    assert graph.priority("leaf7") == graph.priority("t3") == 0
    small = Graph([*steps[:41], s("sink", *(f"m{i}" for i in range(20)))])
    assert {name: small.priority(name) for name in small.names} == dependents_by_sets(small)


def test_a_100_000_step_chain_validates_and_prioritises_without_recursion() -> None:
    n = 100_000
    graph = Graph([s("n0"), *(s(f"n{i}", f"n{i - 1}") for i in range(1, n))])
    assert graph.priority("n0") == n - 1
    assert graph.priority(f"n{n - 1}") == 0


def test_a_100_000_step_cycle_is_found_without_recursion() -> None:
    n = 100_000
    with pytest.raises(exegraph.CycleError) as info:
        Graph([s("n0", f"n{n - 1}"), *(s(f"n{i}", f"n{i - 1}") for i in range(1, n))])
    assert len(info.value.cycle) == n + 1


def test_the_builder_refuses_bad_steps_at_once() -> None:
    builder = GraphBuilder()
    builder.add_step(s("a"))
    with pytest.raises(TypeError, match="None"):
        builder.add_step(None)  # type: ignore[arg-type]
    with pytest.raises(exegraph.DuplicateStepError):
        builder.add_step(s("a"))
    assert len(builder) == 1
    assert "a" in builder


def test_the_builder_checks_dependencies_when_building() -> None:
    builder = GraphBuilder()
    builder.add_step(s("b", "a"))  # "a" may come later
    with pytest.raises(exegraph.MissingDependencyError):
        builder.build()
    builder.add_step(s("a"))
    assert builder.build().names == ("b", "a")


def test_the_step_decorator_names_steps_after_functions_and_returns_them() -> None:
    builder = GraphBuilder()

    @builder.step
    async def fetch() -> None:
        pass

    @builder.step(depends_on=["fetch"], tags=["ci"], timeout=5)
    async def build() -> None:
        pass

    @builder.step(name="test-all", depends_on=["build"])
    async def test() -> None:
        pass

    graph = builder.build()
    assert graph.names == ("fetch", "build", "test-all")
    assert graph["fetch"].action is fetch
    assert graph["build"].tags == ("ci",)
    assert graph["build"].timeout == 5
    assert graph["test-all"].action is test


def test_the_step_decorator_takes_every_keyword_of_step_pools_included() -> None:
    # `@builder.step` takes what `Step` takes: the two signatures' keywords agree.
    step_keywords = set(inspect.signature(Step).parameters) - {"name", "action"}
    decorator_keywords = set(inspect.signature(GraphBuilder.step).parameters) - {
        "self",
        "action",
        "name",
    }
    assert decorator_keywords == step_keywords
    builder = GraphBuilder()

    @builder.step(pools=["db"])
    async def migrate() -> None:
        pass

    @builder.step(pools={"db": 2})
    async def backup() -> None:
        pass

    graph = builder.build()
    assert graph["migrate"].pools == {"db": 1}
    assert graph["backup"].pools == {"db": 2}


def test_the_step_decorator_refuses_sync_functions_and_duplicates() -> None:
    builder = GraphBuilder()
    with pytest.raises(TypeError, match="async"):

        @builder.step  # type: ignore[type-var]
        def sync() -> None:
            pass

    @builder.step
    async def once() -> None:
        pass

    with pytest.raises(exegraph.DuplicateStepError):
        builder.step(name="once")(noop)


def test_a_step_depending_on_itself_past_steps_own_check_is_a_cycle() -> None:
    # `Step` refuses it; a subclass with attrs' own `__init__` does not check. The graph,
    # whose steps come in dependency order otherwise, must still see the cycle.
    @attrs.frozen
    class Noted(Step):  # type: ignore[misc]  # `@final`, but Python allows it
        note: str = ""

    looped = Noted("a", noop, depends_on=("z", "a"))
    with pytest.raises(exegraph.CycleError) as caught:
        Graph([s("z"), looped])
    assert caught.value.cycle == ("a", "a")


def test_a_missing_dependency_error_has_no_lookup_error_as_its_context() -> None:
    with pytest.raises(exegraph.MissingDependencyError) as caught:
        Graph([s("a", "nope")])
    assert caught.value.__context__ is None


async def _noop_action() -> None:
    pass


async def _taking(a: object) -> None:
    pass


async def _resource() -> Any:
    yield 1


def test_features_find_each_step_that_needs_more_than_the_plain_path() -> None:
    # A graph's first run finds these in C, by comparing each step's parts with a plain
    # step's: each feature alone must still be found, and an empty `inputs` is plain.
    graph = Graph(
        [
            Step("a", _noop_action),
            Step("empty", _noop_action, inputs={}),
            Step("takes", _taking, inputs={"a": "a"}),
            Step("again", _noop_action, retry=exegraph.Retry(attempts=2)),
            Step("rule", _noop_action, trigger_rule=exegraph.TriggerRule.ALL_DONE),
            Step("res", _resource),
            Step("pooled", _noop_action, pools={"db": 1}),
        ]
    )
    features = graph._features()
    assert features.special is not None
    assert [graph.names[i] for i, flag in enumerate(features.special) if flag] == [
        "takes",
        "again",
        "rule",
        "res",
    ]
    assert features.rules is not None
    assert features.rules[graph.names.index("rule")] != 0
    assert features.retries is not None
    assert features.retries[graph.names.index("again")]
    assert features.resources
    assert features.pooled
    assert features.inputs is not None
    assert features.inputs[2] == (("a", 0),)
    assert features.consumers is not None
    assert features.consumers[0] == 1


def test_a_graph_of_plain_steps_has_no_features() -> None:
    features = Graph([Step("a", _noop_action), Step("b", _noop_action, inputs={})])._features()
    assert features.special is None
    assert features.rules is None
    assert features.retries is None
    assert features.inputs is None
    assert not features.resources
    assert not features.pooled


def _cycle_of(n: int) -> list[Step]:
    """`n` steps, each depending on the next, the last on the first."""
    return [Step(f"s{i}", _noop_action, depends_on=[f"s{(i + 1) % n}"]) for i in range(n)]


def test_errors_about_many_names_list_twenty_and_count_the_rest() -> None:
    # 10⁵ mistakes made messages of megabytes; the attributes keep every one.
    n = 100
    with pytest.raises(exegraph.CycleError) as cycle:
        Graph(_cycle_of(n))
    assert len(cycle.value.cycle) == n + 1
    assert " → s19 → …80 more… → s0 (each step" in str(cycle.value)
    with pytest.raises(exegraph.MissingDependencyError) as missing:
        Graph([Step(f"s{i}", _noop_action, depends_on=[f"x{i}"]) for i in range(n)])
    assert len(missing.value.edges) == n
    assert "'s19' depends on 'x19'; …and 80 more; add the missing" in str(missing.value)
    with pytest.raises(exegraph.DuplicateStepError) as duplicate:
        Graph([Step(f"d{i}", _noop_action) for i in range(n)] * 2)
    assert len(duplicate.value.names) == n
    assert "'d19', …and 80 more; every step" in str(duplicate.value)


def test_the_repr_of_an_error_about_many_names_is_short_too() -> None:
    with pytest.raises(exegraph.CycleError) as cycle:
        Graph(_cycle_of(1000))
    assert repr(cycle.value).startswith("CycleError(('s0', 's1', ")
    assert repr(cycle.value).endswith("…and 981 more))")
    with pytest.raises(exegraph.DuplicateStepError) as duplicate:
        Graph([Step("a", _noop_action)] * 2)
    assert repr(duplicate.value) == "DuplicateStepError(('a',))"
