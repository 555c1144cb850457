"""`Graph.select`: the selector language of SPEC 2.2, both dependency modes, and its errors.

Charter: pure graph operations, no run except one that checks a selected graph runs; every
grammar rule is one test; a hypothesis property compares `select` with a naive reference
written with sets and `fnmatch` on random graphs and selectors; a 10⁴-step chain checks that
nothing recurses.
"""

from __future__ import annotations

import fnmatch
import functools
import pickle
import re
from collections.abc import AsyncIterator

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import exegraph_trio as exegraph
from exegraph_trio import Graph, Retry, Step, TriggerRule
from exegraph_trio import _select as select_module


async def noop() -> None:
    pass


async def consume(image: object) -> None:
    pass


def s(name: str, *deps: str, tags: tuple[str, ...] = ()) -> Step:
    return Step(name, noop, depends_on=deps, tags=tags)


# fetch ─┬─ build ─┬─ test-unit ──┐
#        │         ├─ test-slow ──┼─ deploy-web
#        │         └─ package ────┴─ deploy-db
#        └─ lint
# docs (alone)
PIPELINE = Graph(
    [
        s("fetch", tags=("io",)),
        s("build", "fetch", tags=("ci",)),
        s("lint", "fetch", tags=("ci", "quick")),
        s("test-unit", "build", tags=("ci", "test", "quick")),
        s("test-slow", "build", tags=("ci", "test", "slow")),
        s("package", "build", tags=("release",)),
        s("deploy-web", "test-unit", "test-slow", "package", tags=("release", "web")),
        s("deploy-db", "package", tags=("release", "db")),
        s("docs", tags=("docs",)),
    ]
)


def names(selector: str, *, with_dependencies: bool = True, graph: Graph = PIPELINE) -> list[str]:
    return list(graph.select(selector, with_dependencies=with_dependencies).names)


def assert_consistent(graph: Graph) -> None:
    """The tables of a selected graph are those a freshly validated graph would have."""
    fresh = Graph(graph.steps)
    assert graph._index == fresh._index
    assert graph._deps == fresh._deps
    assert graph._dependents == fresh._dependents
    place = {i: k for k, i in enumerate(graph._order)}
    assert sorted(place) == list(range(len(graph)))
    assert all(place[d] < place[i] for i, deps in enumerate(graph._deps) for d in deps)
    assert [graph.priority(name) for name in graph.names] == [
        fresh.priority(name) for name in fresh.names
    ]


# -- the grammar ----------------------------------------------------------------------------


def test_a_name_selects_that_step_and_its_transitive_dependencies() -> None:
    assert names("test-unit") == ["fetch", "build", "test-unit"]


def test_a_name_glob_selects_every_step_whose_name_matches() -> None:
    assert names("deploy-*", with_dependencies=False) == ["deploy-web", "deploy-db"]


def test_question_mark_and_sets_match_one_character() -> None:
    assert names("?int", with_dependencies=False) == ["lint"]
    assert names("deploy-[dx]*", with_dependencies=False) == ["deploy-db"]
    assert names("deploy-[!d]*", with_dependencies=False) == ["deploy-web"]


def test_globs_are_case_sensitive() -> None:
    with pytest.raises(ValueError, match="'Build' matches no step name"):
        PIPELINE.select("Build")
    with pytest.raises(ValueError, match="'tag:CI' matches no tag"):
        PIPELINE.select("tag:CI")


def test_a_tag_term_selects_the_steps_carrying_that_tag() -> None:
    assert names("tag:test", with_dependencies=False) == ["test-unit", "test-slow"]
    assert names("tag:db") == ["fetch", "build", "package", "deploy-db"]


def test_a_tag_glob_matches_any_of_a_steps_tags() -> None:
    assert names("tag:*e*", with_dependencies=False) == [
        "test-unit",
        "test-slow",
        "package",
        "deploy-web",
        "deploy-db",
    ]
    assert names("tag:d?", with_dependencies=False) == ["deploy-db"]


def test_a_trailing_plus_adds_every_transitive_dependent() -> None:
    assert names("package+", with_dependencies=False) == ["package", "deploy-web", "deploy-db"]
    assert names("build+", with_dependencies=False) == [
        "build",
        "test-unit",
        "test-slow",
        "package",
        "deploy-web",
        "deploy-db",
    ]


def test_a_plus_term_also_gets_the_dependencies_of_what_it_adds() -> None:
    assert names("test-slow+") == [
        "fetch",
        "build",
        "test-unit",
        "test-slow",
        "package",
        "deploy-web",
    ]


def test_plus_works_on_globs_and_tags() -> None:
    assert names("tag:quick+", with_dependencies=False) == ["lint", "test-unit", "deploy-web"]
    assert names("test-*+", with_dependencies=False) == ["test-unit", "test-slow", "deploy-web"]


def test_a_plus_term_follows_dependents_through_steps_other_terms_named() -> None:
    # `test-unit` is named on its own first; `build+` must still reach `deploy-web` through it.
    assert names("test-unit build+", with_dependencies=False) == names(
        "build+", with_dependencies=False
    )


def test_a_leading_bang_removes_what_the_term_matches() -> None:
    assert names("tag:ci !lint") == ["fetch", "build", "test-unit", "test-slow"]


def test_removals_are_applied_last_whatever_their_place() -> None:
    assert names("!lint tag:ci") == names("tag:ci !lint")


def test_a_removal_with_plus_removes_the_dependents_too() -> None:
    assert names("!test-slow+") == [
        "fetch",
        "build",
        "lint",
        "test-unit",
        "package",
        "deploy-db",
        "docs",
    ]


def test_a_removal_may_use_a_tag() -> None:
    assert names("deploy-db docs !tag:docs") == ["fetch", "build", "package", "deploy-db"]


def test_a_selector_of_removals_only_starts_from_the_whole_graph() -> None:
    assert names("!docs, !lint") == [
        "fetch",
        "build",
        "test-unit",
        "test-slow",
        "package",
        "deploy-web",
        "deploy-db",
    ]


def test_a_removal_matching_only_steps_outside_the_selection_removes_nothing() -> None:
    assert names("lint !docs") == ["fetch", "lint"]


def test_terms_are_separated_by_spaces_commas_or_both() -> None:
    expected = ["lint", "package", "docs"]
    for selector in ("lint package docs", "lint,package,docs", " lint ,\tpackage,,\n docs , "):
        assert names(selector, with_dependencies=False) == expected


def test_terms_selecting_the_same_steps_twice_select_them_once() -> None:
    assert names("lint lint ?int tag:quick", with_dependencies=False) == ["lint", "test-unit"]


# -- order and identity --------------------------------------------------------------------


def test_the_result_keeps_the_graphs_order_not_the_selectors() -> None:
    assert names("docs package fetch", with_dependencies=False) == ["fetch", "package", "docs"]


def test_the_result_keeps_insertion_order_even_when_it_is_not_topological() -> None:
    graph = Graph([s("c", "b"), s("x"), s("b", "a"), s("a")])
    assert names("c", graph=graph) == ["c", "b", "a"]
    assert_consistent(graph.select("c"))


def test_selecting_everything_returns_the_graph_itself() -> None:
    assert PIPELINE.select("*") is PIPELINE
    assert PIPELINE.select("deploy-* lint docs") is PIPELINE
    assert PIPELINE.select("*", with_dependencies=False) is PIPELINE


def test_the_original_graph_is_unchanged() -> None:
    before = PIPELINE.steps
    PIPELINE.select("lint", with_dependencies=False)
    assert PIPELINE.steps == before
    assert PIPELINE["lint"].depends_on == ("fetch",)


# -- with_dependencies ---------------------------------------------------------------------


def test_with_dependencies_the_selected_steps_are_the_very_same_step_objects() -> None:
    selected = PIPELINE.select("deploy-db")
    assert all(step is PIPELINE[step.name] for step in selected)


def test_without_dependencies_edges_to_steps_left_out_are_dropped() -> None:
    selected = PIPELINE.select("test-* deploy-web", with_dependencies=False)
    assert selected.names == ("test-unit", "test-slow", "deploy-web")
    assert selected["test-unit"].depends_on == ()
    assert selected["deploy-web"].depends_on == ("test-unit", "test-slow")
    assert [step.name for step in selected.dependents("test-slow")] == ["deploy-web"]
    assert_consistent(selected)


def test_without_dependencies_a_step_keeps_every_other_field() -> None:
    retry = Retry(attempts=2, delay=0)
    step = Step(
        "b",
        noop,
        depends_on=["a", "k"],
        tags=["t"],
        timeout=3,
        retry=retry,
        trigger_rule=TriggerRule.ALL_DONE,
    )
    graph = Graph([s("a"), s("k"), step])
    selected = graph.select("b k", with_dependencies=False)
    copy = selected["b"]
    assert copy == attrs.evolve(step, depends_on=("k",))
    assert copy.action is noop
    assert (copy.tags, copy.timeout, copy.retry, copy.trigger_rule) == (
        ("t",),
        3.0,
        retry,
        TriggerRule.ALL_DONE,
    )
    assert selected["k"] is graph["k"]  # a step that lost no edge is not copied


def test_without_dependencies_a_resource_step_stays_a_resource_step() -> None:
    async def resource() -> AsyncIterator[int]:
        yield 1

    graph = Graph([s("a"), Step("r", resource, depends_on=["a"])])
    assert graph.select("r", with_dependencies=False)["r"].is_resource


def test_without_dependencies_an_input_from_a_step_left_out_is_an_error() -> None:
    graph = Graph([s("build"), Step("deploy", consume, inputs={"image": "build"})])
    with pytest.raises(ValueError, match="with_dependencies=False") as info:
        graph.select("deploy", with_dependencies=False)
    assert "'deploy' takes input 'image' from 'build'" in str(info.value)


def test_without_dependencies_an_input_from_a_kept_step_is_kept() -> None:
    graph = Graph(
        [s("fetch"), s("build", "fetch"), Step("deploy", consume, inputs={"image": "build"})]
    )
    selected = graph.select("build deploy", with_dependencies=False)
    assert selected["deploy"] is graph["deploy"]
    assert selected["build"].depends_on == ()


def test_without_dependencies_removing_a_needed_step_just_drops_the_edge() -> None:
    selected = PIPELINE.select("build+ !package", with_dependencies=False)
    assert selected.names == ("build", "test-unit", "test-slow", "deploy-web", "deploy-db")
    assert selected["deploy-db"].depends_on == ()
    assert selected["deploy-web"].depends_on == ("test-unit", "test-slow")


async def test_a_selected_graph_runs_only_its_steps() -> None:
    ran: list[str] = []

    async def record(name: str) -> None:
        ran.append(name)

    graph = Graph(
        Step(
            step.name,
            functools.partial(record, step.name),
            depends_on=step.depends_on,
            tags=step.tags,
        )
        for step in PIPELINE
    )
    await exegraph.run(graph.select("deploy-db"), exegraph.RunOptions(max_concurrency=1))
    assert ran == ["fetch", "build", "package", "deploy-db"]
    ran.clear()
    await exegraph.run(graph.select("tag:release", with_dependencies=False))
    assert sorted(ran) == ["deploy-db", "deploy-web", "package"]


# -- errors --------------------------------------------------------------------------------


def test_removing_a_step_a_kept_step_needs_names_both() -> None:
    with pytest.raises(ValueError, match="'deploy-db' depends on 'package'") as info:
        PIPELINE.select("deploy-db !package")
    assert "'!package+'" in str(info.value)
    assert "with_dependencies=False" in str(info.value)


def test_the_way_out_of_a_removal_is_a_selector_that_parses() -> None:
    # A name with a space would be two terms: the suggestion writes it as a glob.
    graph = Graph([s("db setup"), s("app", "db setup"), s("docs")])
    with pytest.raises(ValueError, match="'app' depends on 'db setup'") as info:
        graph.select("!db?setup")
    assert "'!db?setup+'" in str(info.value)
    assert graph.select("!db?setup+").names == ("docs",)
    again = pickle.loads(pickle.dumps(info.value))  # (both messages kept)
    assert (str(again), again.without_keyword) == (str(info.value), info.value.without_keyword)  # type: ignore[attr-defined]


async def _deploy(image: str) -> None:
    pass


def test_a_removal_whose_dependent_takes_its_value_offers_no_with_dependencies_false() -> None:
    # Dropping `build` from `deploy`'s dependencies would leave its input without a
    # value, which `with_dependencies=False` refuses: the message must not offer it.
    graph = Graph([s("build"), Step("deploy", _deploy, inputs={"image": "build"}), s("docs")])
    with pytest.raises(select_module.RemovalError, match="'deploy' depends on 'build'") as info:
        graph.select("!build")
    message = str(info.value)
    assert "or pass with_dependencies=False" not in message
    assert "would not do either, as kept steps take their values" in message
    assert "'deploy' takes input 'image' from 'build'" in message
    assert info.value.without_keyword.endswith("like '!build+')")
    with pytest.raises(ValueError, match="takes input 'image' from 'build'"):
        graph.select("deploy", with_dependencies=False)  # (what it would have led to)
    assert graph.select("!build+").names == ("docs",)


def test_removing_a_dependency_of_the_whole_graph_names_every_kept_dependent() -> None:
    with pytest.raises(ValueError, match="would remove steps that kept steps need") as info:
        PIPELINE.select("!build")
    message = str(info.value)
    for dependent in ("test-unit", "test-slow", "package"):
        assert f"{dependent!r} depends on 'build'" in message


def test_a_long_list_of_conflicts_is_cut_short() -> None:
    graph = Graph([s("root"), *(s(f"leaf{i}", "root") for i in range(30))])
    with pytest.raises(ValueError, match=r"; and 20 more;") as info:
        graph.select("!root")
    assert str(info.value).count("depends on 'root'") == 10


def test_a_term_matching_no_step_suggests_close_names() -> None:
    with pytest.raises(
        ValueError, match=r"'biuld' matches no step name \(did you mean 'build'\?\)"
    ):
        PIPELINE.select("biuld")


def test_a_suggestion_keeps_the_terms_bang_and_plus() -> None:
    with pytest.raises(ValueError, match=r"did you mean '!package\+'\?"):
        PIPELINE.select("!pakage+")


@pytest.mark.parametrize(
    ("name", "suggested"), [("!notify", "?notify"), ("!x+", "?x[+]"), ("!tag:y", "?tag:y")]
)
def test_a_removal_term_written_as_a_steps_name_suggests_selecting_that_step(
    name: str, suggested: str
) -> None:
    # It suggested the removal term '!?notify', which removes the step and selects the rest.
    graph = Graph([Step(name, noop), Step("build", noop)])
    with pytest.raises(ValueError, match=re.escape(f"(did you mean {suggested!r}?)")):
        graph.select(name)
    assert graph.select(suggested).names == (name,)


@pytest.mark.parametrize(("name", "suggested"), [("c++", "c[+][+]+"), ("x+", "x[+]+")])
def test_a_term_written_as_a_steps_name_ending_in_plus_still_suggests_it(
    name: str, suggested: str
) -> None:
    # (The suggestion for a removal term written as a name must not take this one away.)
    graph = Graph([Step(name, noop), Step("lint", noop, depends_on=[name])])
    with pytest.raises(ValueError, match=re.escape(f"(did you mean {suggested!r}?)")):
        graph.select(name)


def test_a_tag_term_matching_no_tag_suggests_close_tags() -> None:
    with pytest.raises(ValueError, match=r"'tag:relase' matches no tag of any step") as info:
        PIPELINE.select("tag:relase")
    assert "(did you mean 'tag:release'?)" in str(info.value)


def test_a_name_that_is_a_tag_suggests_the_tag_term() -> None:
    with pytest.raises(ValueError, match=r"did you mean 'tag:release'\?"):
        PIPELINE.select("release")


def test_a_tag_term_that_is_a_step_name_suggests_the_name() -> None:
    with pytest.raises(ValueError, match=r"did you mean 'lint'\?"):
        PIPELINE.select("tag:lint")


def test_every_term_matching_nothing_is_reported_at_once() -> None:
    with pytest.raises(ValueError, match="matches no step name") as info:
        PIPELINE.select("lint biuld deploy-x* tag:nope")
    message = str(info.value)
    assert message.startswith("selector 'lint biuld deploy-x* tag:nope': 'biuld' matches")
    assert "'deploy-x*' matches no step name" in message
    assert "'tag:nope' matches no tag of any step" in message
    assert "'lint' matches" not in message


def test_a_glob_matching_nothing_is_an_error_too() -> None:
    with pytest.raises(ValueError, match=r"'zz\*' matches no step name"):
        PIPELINE.select("zz*")


def test_any_term_of_an_empty_graph_matches_nothing() -> None:
    with pytest.raises(ValueError, match="the graph has no steps"):
        Graph().select("*")


@pytest.mark.parametrize("selector", ["", "   ", ",", " , ,\n"])
def test_an_empty_selector_is_a_value_error(selector: str) -> None:
    with pytest.raises(ValueError, match="empty selector"):
        PIPELINE.select(selector)


@pytest.mark.parametrize("term", ["!", "+", "!+", "tag:", "!tag:+"])
def test_a_term_with_nothing_to_match_is_a_value_error(term: str) -> None:
    with pytest.raises(ValueError, match=re.escape(f"selector term {term!r} has nothing to")):
        PIPELINE.select(f"lint {term}")


def test_selecting_nothing_after_removals_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="'lint !lint' selects no step: '!lint' removes every"):
        PIPELINE.select("lint !lint", with_dependencies=False)
    with pytest.raises(ValueError, match="selects no step: '!\\*' removes every step of the"):
        PIPELINE.select("!*")


@pytest.mark.parametrize("selector", [None, 3, b"lint", ["lint", "docs"]])
def test_a_selector_that_is_not_a_str_is_a_type_error(selector: object) -> None:
    with pytest.raises(TypeError, match="select takes a selector string"):
        PIPELINE.select(selector)  # type: ignore[arg-type]


def test_a_list_of_names_gets_a_hint_to_join_them() -> None:
    with pytest.raises(TypeError, match=r"' '\.join\(names\)"):
        PIPELINE.select(["lint", "docs"])  # type: ignore[arg-type]


def test_with_dependencies_must_be_a_bool() -> None:
    with pytest.raises(TypeError, match="with_dependencies must be True or False"):
        PIPELINE.select("lint", with_dependencies="no")  # type: ignore[arg-type]


# -- special characters --------------------------------------------------------------------


def test_regex_characters_in_names_match_themselves() -> None:
    graph = Graph([s("a.b"), s("axb"), s("f(x)"), s("$^|\\"), s("q{1}")])
    assert names("a.b", graph=graph, with_dependencies=False) == ["a.b"]
    assert names("a.*", graph=graph, with_dependencies=False) == ["a.b"]
    assert names("f(x)", graph=graph) == ["f(x)"]
    assert names("$^|\\ q{1}", graph=graph) == ["$^|\\", "q{1}"]


def test_a_plus_or_bang_in_a_name_is_matched_with_a_set_or_a_question_mark() -> None:
    graph = Graph([s("c++"), s("c+"), s("!x"), s("a+b")])
    assert names("c[+][+]", graph=graph) == ["c++"]
    assert names("c[+]", graph=graph) == ["c+"]
    assert names("c++", graph=graph) == ["c+"]  # `c+` and its dependents
    with pytest.raises(ValueError, match="'c\\+' matches no step name"):
        graph.select("c+")  # the step `c` and its dependents
    assert names("?x", graph=graph) == ["!x"]
    assert names("a+b", graph=graph) == ["a+b"]  # only a trailing `+` is the operator


def test_a_bracket_in_a_name_is_matched_with_a_set_of_one_bracket() -> None:
    graph = Graph([s("build[1]"), s("build1")])
    assert names("build[1]", graph=graph) == ["build1"]  # a set, as in fnmatch
    assert names("build[[]1]", graph=graph) == ["build[1]"]
    assert names("build[*", graph=graph) == ["build[1]"]  # an unclosed `[` is itself


def test_the_tag_prefix_is_only_a_prefix() -> None:
    graph = Graph([s("tag:x"), s("y", tags=("x",))])
    assert names("tag:x", graph=graph) == ["y"]
    assert names("[t]ag:x", graph=graph) == ["tag:x"]
    assert names("!tag:x", graph=graph) == ["tag:x"]


# -- size ----------------------------------------------------------------------------------


def test_a_ten_thousand_step_chain_is_selected_without_recursion() -> None:
    n = 10_000
    chain = Graph(s(f"s{i}", *([f"s{i - 1}"] if i else [])) for i in range(n))
    assert chain.select(f"s{n - 1}") is chain
    assert chain.select("s0+") is chain
    half = chain.select("s5000+", with_dependencies=False)
    assert half.names == tuple(f"s{i}" for i in range(5000, n))
    assert half["s5000"].depends_on == ()
    assert half.priority("s5000") == 4999
    head = chain.select("!s5000+")
    assert len(head) == 5000
    assert head.priority("s0") == 4999
    assert_consistent(head)
    assert chain.select("s4999 s9999", with_dependencies=False).names == ("s4999", "s9999")


# -- the fast path -------------------------------------------------------------------------


def test_the_graph_layout_is_the_one_select_assembles_directly() -> None:
    # If this fails, `Graph` gained or lost a field: update `_select._assemble` and its
    # `_GRAPH_FIELDS`, or selections fall back to validating their result from scratch.
    assert tuple(f.name for f in attrs.fields(Graph)) == select_module._GRAPH_FIELDS


def test_an_unknown_graph_layout_falls_back_to_validating_the_result(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(select_module, "_GRAPH_FIELDS", ("steps",))
    selected = PIPELINE.select("test-* deploy-web", with_dependencies=False)
    assert selected.names == ("test-unit", "test-slow", "deploy-web")
    assert_consistent(selected)


# -- against a reference -------------------------------------------------------------------


@attrs.frozen
class Case:
    graph: Graph
    selector: str
    with_dependencies: bool


TAGS = ("x", "y", "zz")
LABELS = tuple(f"{c}{k}" for c in "abc" for k in range(4))
PATTERNS = (*LABELS, "a*", "?1", "[ab]?", "[!a]*", "*2", "tag:x", "tag:?", "tag:z*")
# Module-level strategies: hypothesis caches them, so each example only draws.
TERMS = st.lists(
    st.tuples(st.booleans(), st.sampled_from(PATTERNS), st.booleans()).map(
        lambda t: f"{'!' if t[0] else ''}{t[1]}{'+' if t[2] else ''}"
    ),
    min_size=1,
    max_size=4,
)
MASKS = st.lists(st.integers(0, 2 ** len(LABELS) - 1), min_size=len(LABELS), max_size=len(LABELS))


@st.composite
def cases(draw: st.DrawFn) -> Case:
    labels = draw(st.permutations(LABELS))[: draw(st.integers(1, len(LABELS)))]
    dep_masks, tag_masks = draw(MASKS), draw(MASKS)
    steps = []
    for i, name in enumerate(labels):
        deps = [labels[j] for j in range(i) if dep_masks[i] >> j & 1][:3]
        tags = [tag for k, tag in enumerate(TAGS) if tag_masks[i] >> k & 1]
        steps.append(s(name, *deps, tags=tuple(tags)))
    order = draw(st.permutations(steps))
    separator = draw(st.sampled_from([" ", ",", " , "]))
    return Case(Graph(order), separator.join(draw(TERMS)), draw(st.booleans()))


def reference(case: Case) -> list[str] | None:
    """What `select` should keep, with sets; `None` when it should raise `ValueError`."""
    graph = case.graph
    deps = {step.name: set(step.depends_on) for step in graph}

    def closure(start: set[str], step_of: dict[str, set[str]]) -> set[str]:
        found = set(start)
        while True:
            more = {m for name in found for m in step_of[name]} - found
            if not more:
                return found
            found |= more

    dependents = {name: {m for m in deps if name in deps[m]} for name in deps}
    add: set[str] = set()
    remove: set[str] = set()
    adding = False
    for text in case.selector.replace(",", " ").split():
        bang, plus = text.startswith("!"), text.endswith("+")
        glob = text[int(bang) : len(text) - int(plus)]
        if glob.startswith("tag:"):
            matched = {
                step.name
                for step in graph
                if any(fnmatch.fnmatchcase(tag, glob[4:]) for tag in step.tags)
            }
        else:
            matched = {name for name in deps if fnmatch.fnmatchcase(name, glob)}
        if not matched:
            return None
        if plus:
            matched = closure(matched, dependents)
        if bang:
            remove |= matched
        else:
            adding = True
            add |= matched
    selected = add if adding else set(deps)
    if case.with_dependencies:
        selected = closure(selected, deps)
        if any(d in remove for name in selected - remove for d in deps[name]):
            return None
    kept = selected - remove
    return [name for name in graph.names if name in kept] or None


@settings(max_examples=300, deadline=None)
@given(cases())
def test_select_agrees_with_a_naive_reference(case: Case) -> None:
    expected = reference(case)
    if expected is None:
        with pytest.raises(ValueError, match="selector"):
            case.graph.select(case.selector, with_dependencies=case.with_dependencies)
        return
    selected = case.graph.select(case.selector, with_dependencies=case.with_dependencies)
    assert list(selected.names) == expected
    for step in selected:
        original = case.graph[step.name]
        if case.with_dependencies:
            assert step is original
        else:
            assert step.depends_on == tuple(d for d in original.depends_on if d in selected)
            assert step == attrs.evolve(original, depends_on=step.depends_on)
    assert_consistent(selected)


@pytest.mark.parametrize(
    ("typed", "name"),
    [
        ("br", "[br]"),
        ("job1", "job[1]"),
        ("bang", "!bang"),
        ("c", "c+"),
        ("ace", "sp ace"),
        ("tagx", "tag:x"),
        ("star", "st*r"),
    ],
)
def test_a_suggestion_is_a_term_that_selects_the_step_it_names(typed: str, name: str) -> None:
    graph = Graph([Step(name, noop), Step("zzz-unrelated", noop)])
    with pytest.raises(ValueError, match="did you mean") as info:
        graph.select(typed)
    suggested = re.findall(r"did you mean '([^']*)'", str(info.value))[0]
    assert graph.select(suggested).names == (name,)


def test_a_selected_part_breaks_critical_path_ties_as_the_whole_graph_orders_them() -> None:
    # Ties of the critical path go to the step latest in the graph's (Kahn's) topological
    # order; a part made by `select` keeps the whole graph's order of its steps.
    async def one() -> None: ...

    graph = Graph([Step("x", one), Step("a", one, depends_on=["x"]), Step("b", one)])
    part = graph.select("a,b", with_dependencies=False)
    assert exegraph.plan(part).critical_path == ("a",)  # x, b, a: a is the latest
    assert exegraph.plan(Graph([Step("a", one), Step("b", one)])).critical_path == ("b",)


def test_an_error_quotes_at_most_200_characters_of_the_selector() -> None:
    selector = " ".join(f"zz{i}" for i in range(20_000))
    with pytest.raises(ValueError, match="matches no step name") as info:
        PIPELINE.select(selector)
    assert f"selector {selector[:200]!r}…: " in str(info.value)
    assert len(str(info.value)) < 2_000
