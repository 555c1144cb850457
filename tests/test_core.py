"""The scheduling core (`_core.Core`) driven directly: events in, decisions out.

Charter: no event loop, no clock, no actions. Each test feeds the core the events a driver
would (`start`, `take`, `done`, `failed`, `cancelled`, `withdraw`, `stop`) on a small
hand-written graph and checks the decisions; every event is followed by a check that the
core's counters agree with its states. The hypothesis properties at the end drive the core
exactly as the Trio driver does, on a simulated clock with random durations and failures,
and compare each decision with a naive reference computed from the graph alone.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Final

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exegraph_trio import Graph, Retry, Step
from exegraph_trio._core import (
    CANCELLED,
    DONE,
    FAILED,
    PENDING,
    READY,
    RUNNING,
    SKIPPED,
    Core,
    FitCore,
    PlainCore,
    RetryCore,
    Skip,
)

Ranking = Callable[[], tuple[list[int], list[int]]]

_FINAL = frozenset({DONE, FAILED, SKIPPED, CANCELLED})


def assert_consistent(core: Core) -> None:
    """The counters say what the states say, and the bound holds."""
    states = list(core.state)
    assert core.running == states.count(RUNNING)
    assert core.unsettled == sum(state not in _FINAL for state in states)
    assert 0 <= core.running <= core.limit


async def _idle() -> None:
    """The action of every step here: the core never calls it."""


@attrs.define
class Driven:
    """A core over a graph of named steps, driven by name, checked after every event."""

    graph: Graph
    core: Core
    index: dict[str, int]

    @classmethod
    def of(
        cls, spec: Mapping[str, Sequence[str]], *, limit: int, fail_fast: bool = False
    ) -> Driven:
        """Steps in the order of `spec` (name → dependencies), the run not started yet."""
        graph = Graph(Step(name, _idle, depends_on=deps) for name, deps in spec.items())
        core = Core(
            graph._deps, graph._dependents, graph._ranking, limit=limit, fail_fast=fail_fast
        )
        return cls(graph, core, {name: i for i, name in enumerate(graph.names)})

    def name(self, i: int) -> str:
        return self.graph.names[i]

    def state(self, name: str) -> int:
        return self.core.state[self.index[name]]

    def states(self) -> dict[str, int]:
        return {name: self.core.state[i] for name, i in self.index.items()}

    def start(self) -> None:
        self.core.start()
        assert_consistent(self.core)

    def take(self) -> list[str]:
        taken = [self.name(i) for i in self.core.take()]
        assert_consistent(self.core)
        return taken

    def done(self, *names: str) -> None:
        for name in names:
            self.core.done(self.index[name])
            assert_consistent(self.core)

    def failed(self, name: str) -> dict[str, str | None]:
        return self._skips(self.core.failed(self.index[name]))

    def cancelled(self, name: str) -> None:
        self.core.cancelled(self.index[name])
        assert_consistent(self.core)

    def withdraw(self, name: str) -> None:
        self.core.withdraw(self.index[name])
        assert_consistent(self.core)

    def stop(self) -> dict[str, str | None]:
        return self._skips(self.core.stop())

    def _skips(self, skips: list[Skip]) -> dict[str, str | None]:
        assert_consistent(self.core)
        named = {self.name(j): None if cause is None else self.name(cause) for j, cause in skips}
        assert len(named) == len(skips), "a step skipped twice in one decision"
        return named


# -- start() and take() ----------------------------------------------------------------------


def test_start_makes_only_the_steps_without_dependencies_ready() -> None:
    run = Driven.of({"a": [], "b": ["a"], "c": [], "d": ["b", "c"]}, limit=4)
    run.start()
    assert run.states() == {"a": READY, "b": PENDING, "c": READY, "d": PENDING}


def test_take_hands_out_nothing_before_start() -> None:
    run = Driven.of({"a": [], "b": []}, limit=2)
    assert run.take() == []
    assert run.core.running == 0


def test_take_returns_the_ready_steps_in_graph_order_when_slots_suffice() -> None:
    # Graph order differs from priority order: "idle" has no dependent, "busy" has two.
    run = Driven.of({"idle": [], "mid": [], "busy": [], "x": ["busy"], "y": ["x", "mid"]}, limit=3)
    run.start()
    assert run.take() == ["idle", "mid", "busy"]
    assert run.states() == {
        "idle": RUNNING,
        "mid": RUNNING,
        "busy": RUNNING,
        "x": PENDING,
        "y": PENDING,
    }


def test_take_twice_without_events_hands_out_nothing_more() -> None:
    run = Driven.of({"a": [], "b": []}, limit=4)
    run.start()
    assert run.take() == ["a", "b"]
    assert run.take() == []


def test_an_empty_graph_is_settled_from_the_start() -> None:
    core = Core([], [], _no_ranking, limit=1, fail_fast=True)
    core.start()
    assert core.take() == []
    assert core.unsettled == 0
    assert core.running == 0


# -- the bound ----------------------------------------------------------------------------


def test_take_never_hands_out_more_than_the_limit() -> None:
    run = Driven.of({name: [] for name in "abcde"}, limit=2)
    run.start()
    assert run.take() == ["a", "b"]
    assert run.core.running == 2
    assert run.take() == []


def test_take_hands_out_only_the_slots_left_free() -> None:
    run = Driven.of({name: [] for name in "abcdef"}, limit=3)
    run.start()
    assert run.take() == ["a", "b", "c"]
    run.done("b")
    assert run.take() == ["d"]
    assert run.core.running == 3


def test_done_frees_a_slot_for_the_next_ready_step() -> None:
    run = Driven.of({"a": [], "b": []}, limit=1)
    run.start()
    assert run.take() == ["a"]
    assert run.take() == []
    run.done("a")
    assert run.core.running == 0
    assert run.take() == ["b"]


def test_a_failure_frees_its_slot_under_continue_on_error() -> None:
    run = Driven.of({"a": [], "b": []}, limit=1)
    run.start()
    assert run.take() == ["a"]
    run.failed("a")
    assert run.take() == ["b"]


@pytest.mark.parametrize("limit", [0, -1, -100])
def test_a_limit_below_one_is_refused(limit: int) -> None:
    with pytest.raises(ValueError, match=r"limit must be >= 1"):
        Core([[]], [[]], _no_ranking, limit=limit, fail_fast=False)


# -- rule 3: priority, then graph order ---------------------------------------------------


def test_the_step_with_most_transitive_dependents_goes_first_when_slots_are_short() -> None:
    run = Driven.of(
        {"none": [], "one": [], "two": [], "p": ["one"], "q": ["two"], "r": ["q"]}, limit=1
    )
    run.start()
    assert run.take() == ["two"]


def test_priority_counts_transitive_dependents_not_only_direct_ones() -> None:
    # "wide" has 3 direct dependents; "deep" has 1 direct and 4 transitive ones.
    run = Driven.of(
        {
            "wide": [],
            "deep": [],
            "w1": ["wide"],
            "w2": ["wide"],
            "w3": ["wide"],
            "d1": ["deep"],
            "d2": ["d1"],
            "d3": ["d2"],
            "d4": ["d3"],
        },
        limit=1,
    )
    run.start()
    assert run.take() == ["deep"]


def test_equal_priorities_go_in_graph_order() -> None:
    run = Driven.of({"b": [], "a": [], "c": [], "xb": ["b"], "xa": ["a"]}, limit=1)
    run.start()
    assert run.take() == ["b"]
    run.done("b")
    assert run.take() == ["a"]  # "xb" is ready too, but has no dependents
    run.done("a")
    assert run.take() == ["c"]  # "c", "xb", "xa": all priority 0, graph order


def test_when_slots_are_short_take_returns_the_best_steps_best_first() -> None:
    run = Driven.of(
        {"z": [], "y": [], "x": [], "w": [], "x1": ["x"], "x2": ["x1"], "w1": ["w"]}, limit=2
    )
    run.start()
    assert run.take() == ["x", "w"]
    run.done("x", "w")
    assert run.take() == ["x1", "z"]  # x1 (1) beats w1, y, z (0); then graph order


def test_steps_released_after_ranking_still_go_by_priority() -> None:
    # The first take needs ranks; steps released afterwards must be keyed by rank too.
    run = Driven.of(
        {"a": [], "b": [], "c": [], "low": ["a"], "high": ["a"], "h1": ["high"], "h2": ["h1"]},
        limit=1,
    )
    run.start()
    assert run.take() == ["a"]
    run.done("a")
    assert run.take() == ["high"]  # ready: b, c, low, high; high has 2 dependents
    run.done("high")
    assert run.take() == ["h1"]


def test_completions_of_one_instant_are_decided_together() -> None:
    # The spec's example: limit 2, X and Y finish together while R (priority 0) waits;
    # Y's finish makes Q1 and Q2 (priority 1) ready; they take both slots.
    run = Driven.of(
        {"X": [], "Y": [], "R": [], "Q1": ["Y"], "Q2": ["Y"], "T": ["Q1", "Q2"]}, limit=2
    )
    run.start()
    assert run.take() == ["Y", "X"]
    run.done("X", "Y")
    assert run.take() == ["Q1", "Q2"]
    assert run.state("R") == READY


def test_same_instant_completions_decide_the_same_in_any_order() -> None:
    run = Driven.of(
        {"X": [], "Y": [], "R": [], "Q1": ["Y"], "Q2": ["Y"], "T": ["Q1", "Q2"]}, limit=2
    )
    run.start()
    assert run.take() == ["Y", "X"]
    run.done("Y", "X")
    assert run.take() == ["Q1", "Q2"]


def test_deciding_after_each_completion_would_let_the_waiting_step_in_first() -> None:
    # The contrast that makes batching matter: one take() per completion lets R in.
    run = Driven.of(
        {"X": [], "Y": [], "R": [], "Q1": ["Y"], "Q2": ["Y"], "T": ["Q1", "Q2"]}, limit=2
    )
    run.start()
    assert run.take() == ["Y", "X"]
    run.done("X")
    assert run.take() == ["R"]
    run.done("Y")
    assert run.take() == ["Q1"]  # R holds the other slot; Q2 waits


def test_priorities_are_computed_only_when_more_steps_are_ready_than_slots() -> None:
    calls: list[None] = []
    deps: list[list[int]] = [[], [], [0, 1], []]
    dependents = _dependents_of(deps)

    def ranking() -> tuple[list[int], list[int]]:
        calls.append(None)
        return _reference_ranking(_priorities_of(dependents))()

    core = Core(deps, dependents, ranking, limit=3, fail_fast=False)
    core.start()
    assert core.take() == [0, 1, 3]
    assert calls == []
    core = Core(deps, dependents, ranking, limit=1, fail_fast=False)
    core.start()
    assert core.take() == [0]
    core.done(0)
    assert core.take() == [1]
    assert len(calls) == 1  # computed once, then kept


# -- done(): releasing dependents ---------------------------------------------------------


def test_done_releases_a_dependent_only_when_all_its_dependencies_are_done() -> None:
    run = Driven.of({"a": [], "b": [], "c": ["a", "b"]}, limit=3)
    run.start()
    assert run.take() == ["a", "b"]
    run.done("a")
    assert run.state("c") == PENDING
    assert run.take() == []
    run.done("b")
    assert run.state("c") == READY
    assert run.take() == ["c"]


def test_a_chain_runs_to_the_end_one_step_at_a_time() -> None:
    run = Driven.of({"a": [], "b": ["a"], "c": ["b"]}, limit=5)
    run.start()
    for name in "abc":
        assert run.take() == [name]
        run.done(name)
    assert run.core.unsettled == 0


# -- failed() under continue-on-error -----------------------------------------------------

_BRANCHES: Final = {
    "a": [],
    "b": ["a"],
    "c": ["b"],
    "e": [],
    "d": ["a", "e"],
    "f": ["e"],
    "g": ["f"],
}


def test_continue_on_error_skips_exactly_the_transitive_dependents_of_a_failure() -> None:
    run = Driven.of(_BRANCHES, limit=1)
    run.start()
    assert run.take() == ["a"]
    assert run.failed("a") == {"b": "a", "d": "a", "c": "a"}
    assert run.states() == {
        "a": FAILED,
        "b": SKIPPED,
        "c": SKIPPED,
        "e": READY,
        "d": SKIPPED,
        "f": PENDING,
        "g": PENDING,
    }
    assert not run.core.stopped


def test_continue_on_error_other_branches_still_run_after_a_failure() -> None:
    run = Driven.of(_BRANCHES, limit=1)
    run.start()
    assert run.take() == ["a"]
    run.failed("a")
    for name in "efg":
        assert run.take() == [name]
        run.done(name)
    assert run.take() == []
    assert run.core.unsettled == 0
    assert run.core.running == 0


def test_continue_on_error_does_not_skip_a_step_twice() -> None:
    run = Driven.of({"a": [], "b": [], "both": ["a", "b"], "after": ["both"]}, limit=2)
    run.start()
    assert run.take() == ["a", "b"]
    assert run.failed("a") == {"both": "a", "after": "a"}
    assert run.failed("b") == {}
    assert run.core.unsettled == 0


def test_continue_on_error_a_failure_leaves_running_steps_running() -> None:
    run = Driven.of({"a": [], "b": [], "c": ["b"]}, limit=2)
    run.start()
    assert run.take() == ["a", "b"]
    assert run.failed("a") == {}
    assert run.state("b") == RUNNING
    run.done("b")
    assert run.take() == ["c"]


# -- failed() under fail-fast -------------------------------------------------------------

_FAST: Final = {"a": [], "b": [], "c": ["a"], "d": ["b"], "e": [], "f": ["c"]}


def _failing_fast() -> Driven:
    """a and b running, e ready, c, d, f pending; then a fails."""
    run = Driven.of(_FAST, limit=2, fail_fast=True)
    run.start()
    assert run.take() == ["a", "b"]
    return run


def test_fail_fast_a_failure_stops_the_run() -> None:
    run = _failing_fast()
    assert not run.core.failing
    run.failed("a")
    assert run.core.failing


def test_fail_fast_a_failure_skips_every_step_not_started() -> None:
    run = _failing_fast()
    assert set(run.failed("a")) == {"c", "d", "e", "f"}
    assert run.states() == {
        "a": FAILED,
        "b": RUNNING,
        "c": SKIPPED,
        "d": SKIPPED,
        "e": SKIPPED,
        "f": SKIPPED,
    }


def test_fail_fast_names_the_failed_step_only_for_the_steps_downstream_of_it() -> None:
    run = _failing_fast()
    assert run.failed("a") == {"c": "a", "d": None, "e": None, "f": "a"}


def test_fail_fast_takes_nothing_after_a_failure() -> None:
    run = _failing_fast()
    run.failed("a")
    assert run.core.ready == []  # "e" was waiting; it no longer is
    assert run.take() == []
    run.done("b")  # its dependent "d" was skipped: nothing is released
    assert run.take() == []


def test_fail_fast_running_steps_stay_running_until_they_report() -> None:
    run = _failing_fast()
    run.failed("a")
    assert run.state("b") == RUNNING
    assert run.core.running == 1
    assert run.core.unsettled == 1
    run.cancelled("b")
    assert run.state("b") == CANCELLED
    assert run.core.running == 0
    assert run.core.unsettled == 0


def test_fail_fast_a_running_step_may_still_finish_after_the_failure() -> None:
    run = _failing_fast()
    run.failed("a")
    run.done("b")
    assert run.state("b") == DONE
    assert run.state("d") == SKIPPED
    assert run.core.unsettled == 0


def test_fail_fast_a_second_failure_skips_nothing_more() -> None:
    run = _failing_fast()
    run.failed("a")
    assert run.failed("b") == {}
    assert run.core.unsettled == 0


def test_fail_fast_failures_of_one_instant_each_name_the_steps_downstream_of_them() -> None:
    run = _failing_fast()
    skips = run._skips(run.core.failed_together([run.index["b"], run.index["a"]]))
    assert skips == {"c": "a", "d": "b", "e": None, "f": "a"}
    assert run.states()["a"] == run.states()["b"] == FAILED
    assert run.core.failing
    assert run.core.running == 0
    assert run.core.unsettled == 0


def test_failed_together_without_fail_fast_is_failed_for_each() -> None:
    run = Driven.of(_FAST, limit=2)
    run.start()
    assert run.take() == ["a", "b"]
    skips = run._skips(run.core.failed_together([run.index["a"], run.index["b"]]))
    assert skips == {"c": "a", "d": "b", "f": "a"}
    assert not run.core.failing
    assert run.take() == ["e"]


# -- withdraw(), stop(), settled() --------------------------------------------------------


def test_withdraw_skips_a_taken_step_and_frees_its_slot() -> None:
    run = Driven.of({"a": [], "b": [], "c": ["a"]}, limit=2)
    run.start()
    assert run.take() == ["a", "b"]
    assert run.stop() == {"c": None}
    run.withdraw("b")
    assert run.state("b") == SKIPPED
    assert run.core.settled(run.index["b"])
    assert run.core.running == 1
    assert run.core.unsettled == 1


def test_stop_skips_every_step_not_started_without_a_cause() -> None:
    run = Driven.of({"a": [], "b": [], "c": ["a"], "d": []}, limit=2)
    run.start()
    assert run.take() == ["a", "b"]
    assert run.stop() == {"c": None, "d": None}
    assert run.core.stopped
    assert run.states() == {"a": RUNNING, "b": RUNNING, "c": SKIPPED, "d": SKIPPED}


def test_stop_before_start_skips_everything() -> None:
    run = Driven.of({"a": [], "b": ["a"]}, limit=1)
    assert run.stop() == {"a": None, "b": None}
    assert run.core.unsettled == 0


def test_stop_leaves_no_step_waiting_for_a_slot() -> None:
    # The driver reads `ready` to know whether a slot can be filled.
    run = Driven.of({"a": [], "b": [], "c": [], "d": ["a"]}, limit=1)
    run.start()
    assert run.take() == ["a"]
    run.stop()
    assert run.core.ready == []


def test_take_hands_out_nothing_after_stop() -> None:
    run = Driven.of({"a": [], "b": [], "c": []}, limit=1)
    run.start()
    assert run.take() == ["a"]
    run.stop()
    run.done("a")
    assert run.take() == []


def test_stop_is_idempotent() -> None:
    run = Driven.of({"a": [], "b": [], "c": ["a"]}, limit=1)
    run.start()
    assert run.take() == ["a"]
    assert run.stop() == {"b": None, "c": None}
    assert run.stop() == {}
    assert run.core.unsettled == 1
    assert run.core.running == 1


def test_stop_after_a_fail_fast_failure_skips_nothing_more() -> None:
    run = _failing_fast()
    run.failed("a")
    assert run.stop() == {}


def test_settled_is_true_exactly_for_the_final_states() -> None:
    run = Driven.of(
        {"ok": [], "bad": [], "cut": [], "gone": [], "ready": [], "later": ["ok"]}, limit=4
    )

    def settled() -> set[str]:
        return {name for name, i in run.index.items() if run.core.settled(i)}

    assert settled() == set()
    run.start()
    assert run.take() == ["ok", "bad", "cut", "gone"]
    assert settled() == set()  # running, ready and pending steps are not settled
    run.done("ok")
    run.failed("bad")
    assert settled() == {"ok", "bad"}
    run.stop()
    assert settled() == {"ok", "bad", "ready", "later"}
    run.cancelled("cut")
    run.withdraw("gone")
    assert settled() == set(run.index)


def test_counters_stay_consistent_through_every_kind_of_event() -> None:
    # Driven checks the counters after each event; this walks through all of them.
    run = Driven.of({"a": [], "b": [], "c": [], "d": ["a"], "e": ["b"], "f": []}, limit=3)
    run.start()
    assert (run.core.running, run.core.unsettled) == (0, 6)
    assert run.take() == ["a", "b", "c"]
    assert (run.core.running, run.core.unsettled) == (3, 6)
    run.done("a")
    assert (run.core.running, run.core.unsettled) == (2, 5)
    assert run.failed("b") == {"e": "b"}
    assert (run.core.running, run.core.unsettled) == (1, 3)
    assert run.take() == ["d", "f"]
    assert (run.core.running, run.core.unsettled) == (3, 3)
    run.stop()
    run.cancelled("c")
    run.withdraw("d")
    run.done("f")
    assert (run.core.running, run.core.unsettled) == (0, 0)


# -- properties: simulated runs, driven as the Trio driver drives the core --------------------


def _no_ranking() -> tuple[list[int], list[int]]:
    raise AssertionError("priorities were computed although they could not matter")


def _dependents_of(deps: Sequence[Sequence[int]]) -> list[list[int]]:
    dependents: list[list[int]] = [[] for _ in deps]
    for i, step_deps in enumerate(deps):
        for dep in step_deps:
            dependents[dep].append(i)
    return dependents


def _descendants(dependents: Sequence[Sequence[int]], roots: Iterable[int]) -> set[int]:
    found: set[int] = set()
    todo = list(roots)
    while todo:
        for j in dependents[todo.pop()]:
            if j not in found:
                found.add(j)
                todo.append(j)
    return found


def _priorities_of(dependents: Sequence[Sequence[int]]) -> list[int]:
    return [len(_descendants(dependents, [i])) for i in range(len(dependents))]


def _reference_ranking(priorities: Sequence[int]) -> Ranking:
    """Rule 3 written out: higher priority first, then graph order."""

    def ranking() -> tuple[list[int], list[int]]:
        by_rank = sorted(range(len(priorities)), key=lambda i: (-priorities[i], i))
        rank = [0] * len(by_rank)
        for place, i in enumerate(by_rank):
            rank[i] = place
        return rank, by_rank

    return ranking


@attrs.frozen
class Case:
    """A random DAG in a shuffled graph order, with durations, failures and a policy.

    `stop_at`: the instant the run is cancelled from outside (`stop()`), if it is.
    """

    deps: tuple[tuple[int, ...], ...]
    durations: tuple[int, ...]
    failing: frozenset[int]
    limit: int
    fail_fast: bool
    stop_at: int | None = None

    @property
    def dependents(self) -> list[list[int]]:
        return _dependents_of(self.deps)


@st.composite
def cases(draw: st.DrawFn, fail_fast: bool | None = None, *, stop: bool = False) -> Case:
    n = draw(st.integers(0, 16))
    # Each pair (x, y) of topological indices is an edge: the later one depends on the
    # earlier one. place[k] is the graph position of topological node k.
    node = st.integers(0, max(n - 1, 0))
    pairs = draw(st.lists(st.tuples(node, node), max_size=2 * n))
    place = draw(st.permutations(range(n)))
    chosen: list[set[int]] = [set() for _ in range(n)]
    for x, y in pairs:
        if x != y:
            chosen[max(x, y)].add(min(x, y))
    deps: list[tuple[int, ...]] = [()] * n
    for k in range(n):
        deps[place[k]] = tuple(sorted(place[d] for d in chosen[k]))
    return Case(
        deps=tuple(deps),
        durations=tuple(draw(st.lists(st.integers(0, 3), min_size=n, max_size=n))),
        failing=frozenset(draw(st.sets(st.integers(0, n - 1), max_size=3)) if n else ()),
        limit=draw(st.integers(1, 5)),
        fail_fast=draw(st.booleans()) if fail_fast is None else fail_fast,
        stop_at=draw(st.none() | st.integers(0, 6)) if stop else None,
    )


@attrs.frozen
class Event:
    """One thing the simulated driver did or was told: `kind` and the steps concerned.

    Kinds: "take" (the steps `take()` returned, in order), "done", "failed", "cancelled",
    "withdrawn", "skipped" (with the `cause` the core named), "stop" (cancelled from
    outside), and a final "end" listing the steps left unsettled once nothing runs.
    """

    kind: str
    steps: tuple[int, ...]
    time: int
    cause: int | None = None


def simulate(
    case: Case,
    shuffle: random.Random | None = None,
    *,
    core_class: type[Core] = Core,
    decide_now: list[bool] | None = None,
    fused: bool = False,
) -> list[Event]:
    """Drive a core as the Trio driver does, on a simulated clock.

    Each step taken at time t ends at t + its duration, failing if it is in `case.failing`.
    All the steps ending at the earliest instant report together (in graph order, or
    shuffled), then `take()` decides once. At `case.stop_at` the run is cancelled from
    outside: the steps ending at that instant report first, then `stop()`. Once the core
    has stopped (that, or a fail-fast failure) the steps still running are cancelled,
    except those taken at this very instant, which are withdrawn (their tasks never began).
    `decide_now`, when given, collects `Core.decide_now()` after every completion.
    `fused` (a `PlainCore`): a success goes through `finish`, as `PlainRun._done` does,
    and the steps it returns start at once.
    """
    dependents = case.dependents
    core = core_class(
        case.deps,
        dependents,
        _reference_ranking(_priorities_of(dependents)),
        limit=case.limit,
        fail_fast=case.fail_fast,
    )
    log: list[Event] = []
    ends: dict[int, int] = {}
    began: dict[int, int] = {}
    now = 0

    def take() -> None:
        taken = core.take()
        log.append(Event("take", tuple(taken), now))
        for i in taken:
            ends[i] = now + case.durations[i]
            began[i] = now
        assert_consistent(core)

    core.start()
    assert_consistent(core)
    take()
    while ends:
        now = min(ends.values())
        outside = case.stop_at is not None and case.stop_at <= now
        if outside and case.stop_at is not None:
            now = case.stop_at
        batch = sorted(i for i, end in ends.items() if end == now)
        if shuffle is not None:
            shuffle.shuffle(batch)
        for i in batch:
            del ends[i]
            if i in case.failing:
                log.append(Event("failed", (i,), now))
                for j, cause in core.failed(i):
                    log.append(Event("skipped", (j,), now, cause))
            elif fused:
                assert isinstance(core, PlainCore)
                log.append(Event("done", (i,), now))
                taken = core.finish(i)
                if taken:
                    log.append(Event("take", tuple(taken), now))
                    for j in taken:
                        ends[j] = now + case.durations[j]
                        began[j] = now
            else:
                log.append(Event("done", (i,), now))
                core.done(i)
            assert_consistent(core)
            if decide_now is not None:
                decide_now.append(core.decide_now())
        if outside:
            log.append(Event("stop", (), now))
            for j, cause in core.stop():
                log.append(Event("skipped", (j,), now, cause))
            assert_consistent(core)
        if core.stopped or core.failing:
            for i in sorted(ends):
                if began[i] == now:
                    log.append(Event("withdrawn", (i,), now))
                    core.withdraw(i)
                else:
                    log.append(Event("cancelled", (i,), now))
                    core.cancelled(i)
                assert_consistent(core)
            ends.clear()
        take()
    unsettled = tuple(i for i in range(len(case.deps)) if not core.settled(i))
    log.append(Event("end", unsettled, now))
    assert core.unsettled == len(unsettled)
    return log


_SETTLING: Final = frozenset({"done", "failed", "cancelled", "withdrawn", "skipped"})


def _outcomes(log: Sequence[Event]) -> dict[int, str]:
    return {event.steps[0]: event.kind for event in log if event.kind in _SETTLING}


def _ready_before_each_take(case: Case, log: Sequence[Event]) -> list[tuple[set[int], int]]:
    """For each take(): the steps a naive reference says are ready, and the free slots."""
    done: set[int] = set()
    gone: set[int] = set()  # taken, or skipped
    running = 0
    seen: list[tuple[set[int], int]] = []
    for event in log:
        if event.kind == "take":
            ready = {
                i
                for i in range(len(case.deps))
                if i not in gone and all(d in done for d in case.deps[i])
            }
            seen.append((ready, case.limit - running))
            gone.update(event.steps)
            running += len(event.steps)
        elif event.kind == "skipped":
            gone.update(event.steps)
        elif event.kind in _SETTLING:
            running -= 1
            if event.kind == "done":
                done.update(event.steps)
    return seen


_PROPERTY: Final = settings(max_examples=100, deadline=None)


@_PROPERTY
@given(cases(stop=True))
def test_every_step_settles_exactly_once_and_the_run_always_ends(case: Case) -> None:
    log = simulate(case)
    settles = [event.steps[0] for event in log if event.kind in _SETTLING]
    assert sorted(settles) == list(range(len(case.deps)))
    taken = [i for event in log if event.kind == "take" for i in event.steps]
    assert len(taken) == len(set(taken))
    assert log[-1] == Event("end", (), log[-1].time)


@_PROPERTY
@given(cases(stop=True))
def test_no_step_is_taken_before_all_its_dependencies_are_done(case: Case) -> None:
    done: set[int] = set()
    for event in simulate(case):
        if event.kind == "take":
            for i in event.steps:
                assert set(case.deps[i]) <= done, (i, case.deps[i], done)
        elif event.kind == "done":
            done.update(event.steps)


@_PROPERTY
@given(cases(stop=True))
def test_running_steps_never_exceed_the_limit(case: Case) -> None:
    running = 0
    for event in simulate(case):
        if event.kind == "take":
            running += len(event.steps)
            assert running <= case.limit
        elif event.kind in _SETTLING - {"skipped"}:
            running -= 1
    assert running == 0


@_PROPERTY
@given(cases(fail_fast=False, stop=True))
def test_a_slot_never_stays_free_while_a_step_is_ready(case: Case) -> None:
    log = simulate(case)
    takes = [event for event in log if event.kind == "take"]
    for event, (ready, free) in zip(takes, _ready_before_each_take(case, log), strict=True):
        assert len(event.steps) == min(len(ready), free)


@_PROPERTY
@given(cases(stop=True))
def test_take_chooses_by_priority_then_graph_order(case: Case) -> None:
    priorities = _priorities_of(case.dependents)
    log = simulate(case)
    takes = [event for event in log if event.kind == "take"]
    for event, (ready, free) in zip(takes, _ready_before_each_take(case, log), strict=True):
        if not event.steps:
            continue
        best = sorted(ready, key=lambda i: (-priorities[i], i))[:free]
        assert sorted(event.steps) == sorted(best)


@_PROPERTY
@given(cases(fail_fast=False))
def test_continue_on_error_skips_a_step_iff_a_dependency_chain_leads_to_a_failure(
    case: Case,
) -> None:
    dependents = case.dependents
    log = simulate(case)
    outcomes = _outcomes(log)
    failed = {i for i, kind in outcomes.items() if kind == "failed"}
    skipped = {i for i, kind in outcomes.items() if kind == "skipped"}
    assert skipped == _descendants(dependents, failed)
    assert failed == case.failing - skipped
    assert {i for i, kind in outcomes.items() if kind == "done"} == (
        set(range(len(case.deps))) - failed - skipped
    )
    for event in log:
        if event.kind == "skipped":
            assert event.cause in failed
            assert event.steps[0] in _descendants(dependents, [event.cause])


@_PROPERTY
@given(cases(fail_fast=True))
def test_fail_fast_takes_nothing_after_the_first_failure(case: Case) -> None:
    log = simulate(case)
    failures = [n for n, event in enumerate(log) if event.kind == "failed"]
    if not failures:
        assert set(_outcomes(log).values()) <= {"done"}
        return
    first = failures[0]
    after = [event for event in log[first:] if event.kind == "take"]
    assert all(not event.steps for event in after)
    taken = {i for event in log[:first] if event.kind == "take" for i in event.steps}
    outcomes = _outcomes(log)
    assert {i for i, kind in outcomes.items() if kind == "skipped"} == (
        set(range(len(case.deps))) - taken
    )
    culprit = log[first].steps[0]
    below = _descendants(case.dependents, [culprit])
    for event in log:
        if event.kind == "skipped":
            assert event.cause == (culprit if event.steps[0] in below else None)


@_PROPERTY
@given(cases(stop=True), st.randoms(use_true_random=False))
def test_the_start_order_depends_only_on_the_inputs_not_on_the_event_order(
    case: Case, shuffle: random.Random
) -> None:
    first, again, shuffled = simulate(case), simulate(case), simulate(case, shuffle)

    def takes(log: list[Event]) -> list[tuple[int, tuple[int, ...]]]:
        return [(event.time, event.steps) for event in log if event.kind == "take"]

    assert takes(first) == takes(again)
    assert takes(first) == takes(shuffled)
    assert _outcomes(first) == _outcomes(shuffled)


def _plain_run(case: Case, *, fused: bool) -> list[tuple[int, str, tuple[int, ...]]]:
    """Drive a `PlainCore` through a run where every step succeeds, as the driver does.

    After each completion the decision is taken at once when `decide_now()` allows it,
    else once every completion of that instant has reported. `fused`: through `finish`,
    else through `done`, `decide_now` and `take`.
    """
    core = PlainCore(
        case.deps,
        case.dependents,
        _reference_ranking(_priorities_of(case.dependents)),
        limit=case.limit,
        fail_fast=case.fail_fast,
    )
    log: list[tuple[int, str, tuple[int, ...]]] = []
    ends: dict[int, int] = {}
    now = 0

    def started(taken: list[int], how: str) -> None:
        log.append((now, how, tuple(taken)))
        for i in taken:
            ends[i] = now + case.durations[i]

    core.start()
    started(core.take(), "first")
    while ends:
        now = min(ends.values())
        for i in sorted(i for i, end in ends.items() if end == now):
            del ends[i]
            if fused:
                taken = core.finish(i)
            else:
                core.done(i)
                taken = core.take() if core.decide_now() else None
            assert_consistent(core)
            if taken is not None:
                started(taken, f"after {i}")
        started(core.take(), "instant")
    assert not core.unsettled
    return log


@_PROPERTY
@given(cases())
def test_finish_is_done_then_take_when_the_decision_may_be_taken_at_once(case: Case) -> None:
    # `PlainCore.finish` is the driver's one call for a success (`PlainRun._done`).
    assert _plain_run(case, fused=True) == _plain_run(case, fused=False)


@settings(max_examples=400, deadline=None)
@given(cases(stop=True), st.integers(0, 3))
def test_the_fit_core_decides_as_the_plain_core_does(case: Case, more: int) -> None:
    # FitCore (a plain run whose bound holds every step) starts what a success frees in
    # `finish` itself: every step starts when, and ends as, it would with a PlainCore.
    # (Through `done` then `take`, it makes the same calls as a PlainCore.)
    fit = attrs.evolve(case, limit=len(case.deps) + more or 1)
    assert simulate(fit, core_class=FitCore) == simulate(fit, core_class=PlainCore)
    assert simulate(fit, core_class=FitCore, fused=True) == simulate(
        fit, core_class=PlainCore, fused=True
    )


def test_the_fit_core_never_starts_a_step_skipped_after_a_failure() -> None:
    # c needs a and b; a fails (continue-on-error: c is skipped), then b succeeds: c's
    # last dependency is done, but it was skipped, and must not start.
    deps = ((), (), (0, 1))
    core = FitCore(
        deps, _dependents_of(deps), _reference_ranking([1, 1, 0]), limit=3, fail_fast=False
    )
    core.start()
    assert core.take() == [0, 1]
    assert core.failed(0) == [(2, 0)]
    assert core.finish(1) == []
    assert core.state[2] == SKIPPED
    assert not core.unsettled


def test_finish_does_not_take_once_the_run_is_being_cancelled() -> None:
    core = PlainCore(
        ((), (), ()), ((), (), ()), _reference_ranking([0, 0, 0]), limit=1, fail_fast=True
    )
    core.start()
    assert core.take() == [0]
    assert core.finish(0, take=False) == []
    assert core.take() == [1]  # (still ready: nothing was taken)


@_PROPERTY
@given(cases(stop=True), st.randoms(use_true_random=False))
def test_the_plain_core_decides_as_the_full_core_does(case: Case, shuffle: random.Random) -> None:
    # PlainCore (what the driver uses for a run with none of the lifecycle) is Core with
    # the unused features left out: every decision, skip and decide_now() must agree.
    seed = shuffle.random()
    full_decisions: list[bool] = []
    plain_decisions: list[bool] = []
    full = simulate(case, random.Random(seed), decide_now=full_decisions)
    plain = simulate(case, random.Random(seed), core_class=PlainCore, decide_now=plain_decisions)
    assert plain == full
    assert plain_decisions == full_decisions


@pytest.mark.parametrize("core_class", [Core, PlainCore])
def test_a_step_started_in_this_round_does_not_hold_a_decision_back(
    core_class: type[Core],
) -> None:
    # a -> c -> e and b -> d under a bound of 2, x waiting. `a` ends while `b` runs:
    # `b`'s end could make `d` ready, to compete with `c` and `x`, so the decision waits
    # for the round's end and takes `c`, whose task the driver starts in the next round
    # (`fresh`). When `b` ends in that round, `c` cannot have ended (its task begins a
    # round later): that decision is taken at once, not a round later than the steps
    # it competes with.
    deps = [(), (), (0,), (1,), (), (2,)]  # a, b, c, d, x, e
    dependents = [(2,), (3,), (5,), (), (), ()]
    ranking = _reference_ranking([2, 1, 1, 0, 0, 0])
    core = core_class(deps, dependents, ranking, limit=2, fail_fast=True)
    core.start()
    assert core.take() == [0, 1]
    core.done(0)
    assert not core.decide_now()  # (`b` may end in this round too)
    assert core.take() == [2]  # (at the round's end)
    core.fresh += 1  # the driver started `c`'s task in this round
    core.done(1)
    assert core.releasing == 1
    assert core.decide_now()
    core.fresh -= 1  # had it started `c` a round before, `c` might end in this one:
    assert not core.decide_now()


@pytest.mark.parametrize("core_class", [Core, RetryCore])
def test_a_retry_that_began_waiting_in_this_round_does_not_hold_a_decision_back(
    core_class: type[Core],
) -> None:
    # a -> c, b retried after a delay, x waiting; a bound of 2. `b` fails and waits out
    # its delay in the round in which `a` ends. Its wait ends in a later round at the
    # earliest (`new_waits`), so `a`'s end is decided at once, whether Trio ran `b`'s
    # task or `a`'s first; had `b` begun waiting a round before, it might be ready again
    # in this one, and the decision would wait for the round's end.
    deps = [(), (), (0,), ()]  # a, b, c, x
    dependents = [(2,), (), (), ()]
    retries = [None, Retry(attempts=2, delay=1.0), None, None]
    ranking = _reference_ranking([1, 0, 0, 0])

    def ends_a(new_waits: list[int]) -> list[int] | None:
        """The steps `a`'s end takes at once, or `None`: left to the round's end."""
        core = core_class(deps, dependents, ranking, limit=2, fail_fast=True, retries=retries)
        core.start()
        assert core.take() == [0, 1]
        assert core.retry(1, ValueError("b")) == 1.0
        core.new_waits[:] = new_waits  # (as the driver lists it)
        if isinstance(core, RetryCore):
            return core.finish(0)
        assert core.done(0) == []
        return core.take() if core.decide_now() else None

    assert ends_a([1]) == [2, 3]
    assert ends_a([]) is None
