"""Section 2.2, plan: `exegraph.plan(graph, options, fail=...)` -> `Plan` of `PlannedStep`s.

The planner drives the run's scheduling core on a simulated clock: each step takes its
estimate (`durations`, the median of the known ones for a step without one, 1 s each
without durations), no action, hook or instrument is called, and its start times and
makespan are those of a real run under `MockClock` whose actions sleep exactly their
estimates. Documented choices tested here: shared pools are planned as private, a planned
failure is final (no retries replayed).

Charter: the property runs each example through the real `run_with_result` in a `trio.run`
of its own under `MockClock(autojump_threshold=0)` and compares every time with `==`.
In half the cases with failures, failing steps end at instants no other step ends at
(their estimates carry a distinct binary fraction); in the other half they may end with
others: the completions of one instant are decided together whatever order Trio runs
their tasks in, so a planner can know those too.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from typing import Final

import attrs
import pytest
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

import exegraph_trio as exegraph
from exegraph_trio import (
    ErrorPolicy,
    Graph,
    Instrument,
    Plan,
    PlannedStep,
    Pool,
    RunOptions,
    Step,
    StepStatus,
    TriggerRule,
)

CONTINUE: Final = ErrorPolicy.CONTINUE_ON_ERROR
DONE: Final = StepStatus.DONE
FAILED: Final = StepStatus.FAILED
SKIPPED: Final = StepStatus.SKIPPED
CANCELLED: Final = StepStatus.CANCELLED
ALL_DONE: Final = TriggerRule.ALL_DONE
ONE_FAILED: Final = TriggerRule.ONE_FAILED


class Boom(Exception):
    """What a step planned to fail raises in the real run."""


def sleeping(seconds: float, *, fails: bool = False) -> exegraph.Action:
    async def act() -> None:
        await trio.sleep(seconds)
        if fails:
            raise Boom

    return act


def chain_graph(spec: Mapping[str, Sequence[str]], **pools: Mapping[str, int]) -> Graph:
    """Steps named by `spec` (name -> dependencies) that sleep 1 s, with `pools[name]`."""
    return Graph(
        Step(name, sleeping(1), depends_on=deps, pools=pools.get(name))
        for name, deps in spec.items()
    )


def summary(plan: Plan) -> list[tuple[str, StepStatus, float | None, float | None]]:
    return [(s.name, s.status, s.start, s.end) for s in plan.steps]


# -- what a plan holds -------------------------------------------------------------------------


def test_a_plan_lists_steps_in_start_order_with_times_makespan_and_critical_path() -> None:
    graph = chain_graph({"a": [], "b": ["a"], "c": []})
    durations = {"a": 2.0, "b": 1.0, "c": 3.0}
    plan = exegraph.plan(graph, RunOptions(max_concurrency=2, durations=durations))
    # 'c' has the longest path (3 s, as a -> b): graph order puts 'a' first.
    assert summary(plan) == [
        ("a", DONE, 0.0, 2.0),
        ("c", DONE, 0.0, 3.0),
        ("b", DONE, 2.0, 3.0),
    ]
    assert plan.makespan == 3.0
    assert plan.critical_path == ("a", "b")  # of the two ending last, first in graph order
    assert plan["b"] == PlannedStep("b", DONE, 2.0, 3.0)
    assert plan["b"].duration == 1.0
    assert len(plan) == 3
    assert [s.name for s in plan] == ["a", "c", "b"]
    assert plan.graph is graph


def test_without_durations_each_step_takes_one_second() -> None:
    plan = exegraph.plan(chain_graph({"a": [], "b": ["a"], "c": ["b"], "d": []}))
    assert summary(plan) == [
        ("a", DONE, 0.0, 1.0),
        ("d", DONE, 0.0, 1.0),
        ("b", DONE, 1.0, 2.0),
        ("c", DONE, 2.0, 3.0),
    ]
    assert plan.makespan == 3.0
    assert plan.critical_path == ("a", "b", "c")


@pytest.mark.parametrize(
    ("known", "default"),
    [
        ({"a": 1.0, "b": 3.0, "c": 10.0}, 3.0),
        ({"a": 1.0, "b": 4.0}, 2.5),
        ({}, 1.0),
        ({"a": 1e308, "b": 1e308}, 1e308),  # halved before added: no overflow to inf
    ],
)
def test_a_step_without_an_estimate_takes_the_median_of_the_known_ones(
    known: dict[str, float], default: float
) -> None:
    graph = chain_graph({"a": [], "b": [], "c": [], "d": []})
    plan = exegraph.plan(graph, RunOptions(max_concurrency=4, durations=known))
    assert plan["d"].duration == default
    for name, seconds in known.items():
        assert plan[name].duration == seconds


def test_an_unknown_name_is_a_key_error_with_close_names() -> None:
    plan = exegraph.plan(chain_graph({"build": [], "test": ["build"]}))
    with pytest.raises(KeyError, match="did you mean 'build'") as caught:
        plan["biuld"]
    assert "'biuld'" in str(caught.value)


def test_the_table_shows_every_step_in_start_order_and_sums_up() -> None:
    graph = chain_graph({"fetch": [], "build": ["fetch"], "lint": []})
    plan = exegraph.plan(
        graph,
        RunOptions(
            max_concurrency=2,
            error_policy=CONTINUE,
            durations={"fetch": 1.5, "build": 2.0, "lint": 0.25},
        ),
        fail=["fetch"],
    )
    assert plan.table() == "\n".join(
        [
            "step   status        start       end  duration",
            "fetch  Failed        0.000     1.500     1.500",
            "lint   Done          0.000     0.250     0.250",
            "build  Skipped           -         -     0.000",
            "makespan 1.500 s; critical path: fetch",
        ]
    )


def test_the_table_escapes_names_that_are_not_printable() -> None:
    # As `RunResult.table`: a name goes to terminals and logs, one line per step.
    graph = chain_graph({"two\nlines": [], "b\x1bname": ["two\nlines"]})
    table = exegraph.plan(graph, RunOptions(durations={"two\nlines": 1, "b\x1bname": 1})).table()
    assert table == "\n".join(
        [
            "step        status        start       end  duration",
            "two\\nlines  Done          0.000     1.000     1.000",
            "b\\x1bname   Done          1.000     2.000     1.000",
            "makespan 2.000 s; critical path: two\\nlines → b\\x1bname",
        ]
    )


def test_the_table_pads_names_by_the_cells_a_terminal_gives_them() -> None:
    # Padded by characters, a name of wide characters (CJK, emoji: two cells each) or
    # with a combining accent (none) pushed its row's columns out of line.
    graph = chain_graph({"日本語": [], "build": ["日本語"], "e\u0301": []})
    durations = {"日本語": 1, "build": 1, "e\u0301": 1}
    assert exegraph.plan(graph, RunOptions(durations=durations)).table() == "\n".join(
        [
            "step    status        start       end  duration",
            "日本語  Done          0.000     1.000     1.000",
            "e\u0301       Done          0.000     1.000     1.000",
            "build   Done          1.000     2.000     1.000",
            "makespan 2.000 s; critical path: 日本語 → build",
        ]
    )


def test_the_table_pads_emoji_with_a_variation_selector_or_a_skin_tone_as_two_cells() -> None:
    # `⚠️` is `⚠` and U+FE0F (drawn as an emoji: two cells), `👍🏽` an emoji and a skin
    # tone (which joins it), `각` three Hangul jamo (one syllable): two cells each.
    # A skin tone alone takes two cells, and U+FE0F after a letter none (as wcwidth says).
    names = ["⚠️ alert", "👍🏽 ok", "\u1100\u1161\u11a8 x", "build", "🏽 tone", "a\ufe0f b"]
    graph = chain_graph({name: [] for name in names})
    options = RunOptions(durations=dict.fromkeys(names, 1), max_concurrency=8)
    assert exegraph.plan(graph, options).table().splitlines()[1:7] == [
        "⚠️ alert  Done          0.000     1.000     1.000",
        "👍🏽 ok     Done          0.000     1.000     1.000",
        "\u1100\u1161\u11a8 x      Done          0.000     1.000     1.000",
        "build     Done          0.000     1.000     1.000",
        "🏽 tone   Done          0.000     1.000     1.000",
        "a\ufe0f b       Done          0.000     1.000     1.000",
    ]


def test_the_table_of_an_empty_graph() -> None:
    plan = exegraph.plan(Graph([]))
    assert (plan.steps, plan.makespan, plan.critical_path) == ((), 0.0, ())
    assert plan.table() == "\n".join(
        [
            "step  status        start       end  duration",
            "makespan 0.000 s; critical path: (none)",
        ]
    )


def test_the_critical_path_follows_the_last_finishing_dependency() -> None:
    graph = chain_graph(
        {"src": [], "fast": ["src"], "slow": ["src"], "join": ["fast", "slow"], "side": []}
    )
    durations = {"src": 1.0, "fast": 1.0, "slow": 5.0, "join": 1.0, "side": 2.0}
    plan = exegraph.plan(graph, RunOptions(max_concurrency=4, durations=durations))
    assert plan.critical_path == ("src", "slow", "join")
    assert plan.makespan == 7.0


@pytest.mark.parametrize("rule", [ONE_FAILED, ALL_DONE])
async def test_the_critical_path_goes_through_a_skipped_dependency_to_the_failure(
    autojump_clock: trio.testing.MockClock, rule: TriggerRule
) -> None:
    # `notify` started when `migrate` failed (its dependency `deploy`, skipped then, took
    # no time), not when the run began; `ok`, which ended earlier, does not decide it
    # either. The plan (every step 1 s: no estimates) and the run say so alike.
    def graph(migrate: exegraph.Action) -> Graph:
        return Graph(
            [
                Step("checkout", sleeping(1)),
                Step("migrate", migrate, depends_on=["checkout"]),
                Step("deploy", sleeping(1), depends_on=["migrate"]),
                Step("ok", sleeping(1)),
                Step("notify", sleeping(1), depends_on=["deploy", "ok"], trigger_rule=rule),
            ]
        )

    options = RunOptions(error_policy=CONTINUE, max_concurrency=4)
    planned = exegraph.plan(graph(sleeping(2)), options, fail=["migrate"])
    assert planned.critical_path == ("checkout", "migrate", "notify")
    assert planned.makespan == 3.0
    result = await exegraph.run_with_result(graph(sleeping(2, fails=True)), options)
    assert result.critical_path() == ("checkout", "migrate", "notify")
    assert result.total_duration == 4.0


async def test_the_critical_path_never_takes_a_step_that_ended_after_the_next_one_started(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # `skipped` was skipped when `fail` failed at 1 s, though `long` ran on to 10 s:
    # `handler` (ALL_DONE) started at 1 s, so `long` decided nothing of it.
    graph = Graph(
        [
            Step("fail", sleeping(1, fails=True)),
            Step("long", sleeping(10)),
            Step("skipped", sleeping(1), depends_on=["fail", "long"]),
            Step("handler", sleeping(20), depends_on=["skipped"], trigger_rule=ALL_DONE),
        ]
    )
    durations = {"fail": 1.0, "long": 10.0, "skipped": 1.0, "handler": 20.0}
    options = RunOptions(error_policy=CONTINUE, durations=durations)
    assert exegraph.plan(graph, options, fail=["fail"]).critical_path == ("fail", "handler")
    result = await exegraph.run_with_result(graph, options)
    assert result.critical_path() == ("fail", "handler")
    assert result.total_duration == 21.0


def test_the_critical_path_through_a_long_skipped_chain_is_found_once_for_all() -> None:
    # Every `c` depends on the end of one skipped chain: what ended above it (`F`) is
    # worked out once, not once per `c` (which was quadratic).
    n = 2_000
    steps = [Step("F", sleeping(0))]
    steps += [Step(f"s{j}", sleeping(0), depends_on=[f"s{j - 1}" if j else "F"]) for j in range(n)]
    steps += [
        Step(
            f"c{i}",
            sleeping(0),
            depends_on=[f"s{n - 1}", *([f"c{i - 1}"] if i else [])],
            trigger_rule=ALL_DONE,
        )
        for i in range(n)
    ]
    planned = exegraph.plan(Graph(steps), RunOptions(error_policy=CONTINUE), fail=["F"])
    assert planned.critical_path == ("F", *(f"c{i}" for i in range(n)))


# -- fail= -------------------------------------------------------------------------------------


def test_fail_fast_cancels_what_is_in_flight_and_skips_the_rest_last() -> None:
    graph = chain_graph({"a": [], "b": [], "c": ["b"], "d": []})
    durations = {"a": 1.0, "b": 3.0, "c": 1.0, "d": 1.0}
    plan = exegraph.plan(graph, RunOptions(max_concurrency=2, durations=durations), fail=["a"])
    assert summary(plan) == [
        ("a", FAILED, 0.0, 1.0),
        ("b", CANCELLED, 0.0, 1.0),
        ("c", SKIPPED, None, None),
        ("d", SKIPPED, None, None),
    ]
    assert plan.makespan == 1.0


def test_continue_on_error_skips_the_dependents_of_a_failure_and_lists_them_last() -> None:
    graph = chain_graph({"a": [], "b": ["a"], "c": [], "d": ["c"], "e": ["b"]})
    plan = exegraph.plan(graph, RunOptions(max_concurrency=1, error_policy=CONTINUE), fail=["a"])
    assert summary(plan) == [
        ("a", FAILED, 0.0, 1.0),
        ("c", DONE, 1.0, 2.0),
        ("d", DONE, 2.0, 3.0),
        ("b", SKIPPED, None, None),
        ("e", SKIPPED, None, None),
    ]


def test_a_planned_failure_is_final_even_with_a_retry() -> None:
    graph = Graph(
        [
            Step("flaky", sleeping(1), retry=exegraph.Retry(attempts=3, delay=1)),
            Step("after", sleeping(1), depends_on=["flaky"]),
        ]
    )
    plan = exegraph.plan(graph, fail=["flaky"])
    assert summary(plan) == [("flaky", FAILED, 0.0, 1.0), ("after", SKIPPED, None, None)]


def test_trigger_rule_steps_run_after_a_planned_failure() -> None:
    graph = Graph(
        [
            Step("a", sleeping(1)),
            Step("long", sleeping(5)),
            Step("cleanup", sleeping(1), depends_on=["a", "long"], trigger_rule=ALL_DONE),
            Step("alert", sleeping(1), depends_on=["a"], trigger_rule=ONE_FAILED),
            Step("cancelled", sleeping(1), depends_on=["long"], trigger_rule=ONE_FAILED),
            Step("early", sleeping(1)),
            Step("quiet", sleeping(1), depends_on=["early"], trigger_rule=ONE_FAILED),
        ]
    )
    durations = {"a": 1.0, "long": 5.0, "early": 0.5}
    plan = exegraph.plan(graph, RunOptions(max_concurrency=8, durations=durations), fail=["a"])
    # Estimates: the median of the known ones, 1 s, for the steps without one. 'long' was
    # cancelled: it did not succeed, so the ONE_FAILED step after it runs; 'early' did.
    assert summary(plan) == [
        ("a", FAILED, 0.0, 1.0),
        ("long", CANCELLED, 0.0, 1.0),
        ("early", DONE, 0.0, 0.5),
        ("cleanup", DONE, 1.0, 2.0),
        ("alert", DONE, 1.0, 2.0),
        ("cancelled", DONE, 1.0, 2.0),
        ("quiet", SKIPPED, None, None),
    ]


def test_fail_names_an_unknown_step_with_close_names() -> None:
    graph = chain_graph({"deploy": [], "build": []})
    with pytest.raises(ValueError, match=r"'deplyo' \(did you mean 'deploy'\?\)") as caught:
        exegraph.plan(graph, fail=["build", "deplyo", "zzz"])
    assert "'zzz'" in str(caught.value)
    assert "'build'" not in str(caught.value)


def test_fail_as_a_bare_str_is_a_type_error() -> None:
    graph = chain_graph({"x": []})
    with pytest.raises(TypeError, match=r"fail=\['x'\]"):
        exegraph.plan(graph, fail="x")


# -- what plan does not do ---------------------------------------------------------------------


class Recording(Instrument):
    """Notes every instrument call."""

    def __init__(self, calls: list[str]) -> None:
        self.calls = calls

    def run_started(self, run: exegraph.RunInfo) -> None:
        self.calls.append("run_started")

    def step_started(self, run: exegraph.RunInfo, step: Step) -> None:
        self.calls.append("step_started")

    def step_done(self, run: exegraph.RunInfo, step: Step, timing: exegraph.StepTiming) -> None:
        self.calls.append("step_done")

    def step_skipped(self, run: exegraph.RunInfo, step: Step, timing: exegraph.StepTiming) -> None:
        self.calls.append("step_skipped")

    def run_done(self, run: exegraph.RunInfo, result: exegraph.RunResult) -> None:
        self.calls.append("run_done")


def test_plan_calls_no_action_hook_or_instrument() -> None:
    calls: list[str] = []

    def step(name: str, *deps: str) -> Step:
        async def act() -> None:
            calls.append(f"action {name}")

        return Step(name, act, depends_on=deps)

    graph = Graph([step("a"), step("b", "a"), step("c", "a"), step("d", "b")])
    options = RunOptions(
        error_policy=CONTINUE,
        on_step_start=lambda name: calls.append(f"start {name}"),
        on_step_done=lambda name, error: calls.append(f"done {name}"),
        instruments=[Recording(calls)],
    )
    plan = exegraph.plan(graph, options)
    failed = exegraph.plan(graph, options, fail=["b"])
    assert calls == []
    assert [s.status for s in plan] == [DONE] * 4
    assert failed["d"].status is SKIPPED


async def test_plan_treats_a_shared_pool_as_its_own_and_leaves_it_alone(
    autojump_clock: trio.testing.MockClock,
) -> None:
    db = Pool(1)
    graph = Graph([Step("x", sleeping(1), pools=["db"]), Step("y", sleeping(1), pools=["db"])])
    holder = Graph([Step("hold", sleeping(10), pools=["db"])])
    async with trio.open_nursery() as nursery:
        nursery.start_soon(exegraph.run, holder, RunOptions(pools={"db": db}))
        await trio.sleep(1)
        assert db.in_use == 1
        plan = exegraph.plan(graph, RunOptions(pools={"db": db}))
        assert db.in_use == 1
    assert summary(plan) == [("x", DONE, 0.0, 1.0), ("y", DONE, 1.0, 2.0)]


def test_plan_refuses_pools_the_run_would_refuse() -> None:
    graph = Graph([Step("x", sleeping(1), pools=["db"]), Step("y", sleeping(1), pools={"db": 3})])
    with pytest.raises(ValueError, match="'y'") as caught:
        exegraph.plan(graph, RunOptions(pools={"db": 2}))
    assert "'x'" not in str(caught.value)
    with pytest.raises(ValueError, match="'x'"):
        exegraph.plan(graph)


def test_plan_honours_pools_and_the_bound() -> None:
    graph = chain_graph(
        {"a": [], "b": [], "c": [], "d": []},
        a={"db": 2},
        b={"db": 1},
        c={"db": 1},
    )
    plan = exegraph.plan(graph, RunOptions(max_concurrency=2, pools={"db": 2}))
    assert summary(plan) == [
        ("a", DONE, 0.0, 1.0),
        ("d", DONE, 0.0, 1.0),
        ("b", DONE, 1.0, 2.0),
        ("c", DONE, 1.0, 2.0),
    ]


# -- plan == run: a property -------------------------------------------------------------------

_PROPERTY: Final = settings(max_examples=200, deadline=None, derandomize=True)

NONE: Final = 0
"""No `durations`: every step takes 1 s."""
SOME: Final = 1
"""`durations` for some steps; the others take the median of those."""
ALL: Final = 2


@attrs.frozen
class PlanCase:
    """A random DAG (`deps[i]` ⊆ earlier steps) with what a run of it needs."""

    deps: tuple[tuple[int, ...], ...]
    durations: tuple[int, ...]
    given: int
    known: frozenset[int]
    """With `SOME`: the steps that have an estimate."""
    rules: tuple[TriggerRule, ...]
    sizes: tuple[int, ...]
    shared: tuple[bool, ...]
    demands: tuple[tuple[tuple[int, int], ...], ...]
    bound: int
    policy: ErrorPolicy
    fail: frozenset[int]
    coincident: bool = False
    """Whether failing steps may end at the instants other steps end at."""

    def estimates(self) -> dict[str, float] | None:
        """`RunOptions.durations`: a failing step's carries a binary fraction of its own.

        (Unless `coincident`: whole seconds, as every other step's.)
        """
        if self.given == NONE:
            return None
        fail = () if self.coincident else sorted(self.fail)
        fractions = {i: 2.0 ** -(k + 1) for k, i in enumerate(fail)}
        return {
            f"s{i}": self.durations[i] + fractions.get(i, 0.0)
            for i in range(len(self.deps))
            if self.given == ALL or i in self.known
        }

    def seconds(self) -> list[float]:
        """What each action sleeps: its estimate, as the planner reckons it."""
        estimates = self.estimates()
        if estimates is None:
            return [1.0] * len(self.deps)
        default = statistics.median(estimates.values()) if estimates else 1.0
        return [estimates.get(f"s{i}", default) for i in range(len(self.deps))]

    def options(self) -> RunOptions:
        return RunOptions(
            max_concurrency=self.bound,
            error_policy=self.policy,
            durations=self.estimates(),
            pools={
                f"p{p}": Pool(size) if self.shared[p] else size for p, size in enumerate(self.sizes)
            },
        )

    def graph(self) -> Graph:
        seconds = self.seconds()
        return Graph(
            Step(
                f"s{i}",
                sleeping(seconds[i], fails=i in self.fail),
                depends_on=[f"s{d}" for d in deps],
                trigger_rule=self.rules[i],
                pools={f"p{p}": n for p, n in self.demands[i]} or None,
            )
            for i, deps in enumerate(self.deps)
        )


@st.composite
def plan_cases(draw: st.DrawFn, *, failures: bool, rules_after_fail_fast: bool = True) -> PlanCase:
    """Random cases; `failures`: with steps planned to fail (and every estimate given).

    `rules_after_fail_fast=False`: no trigger rules in a fail-fast case with failures.
    """
    n = draw(st.integers(1, 9))
    deps = tuple(
        tuple(sorted(draw(st.sets(st.integers(0, i - 1), max_size=3)))) if i else ()
        for i in range(n)
    )
    k = draw(st.integers(0, 2))
    sizes = tuple(draw(st.lists(st.integers(1, 3), min_size=k, max_size=k)))
    demands = []
    for _ in range(n):
        chosen = draw(st.sets(st.integers(0, k - 1), max_size=k)) if k else set()
        demands.append(tuple((p, draw(st.integers(1, sizes[p]))) for p in sorted(chosen)))
    fail = frozenset(draw(st.sets(st.integers(0, n - 1), max_size=3))) if failures else frozenset()
    policy = draw(st.sampled_from(list(ErrorPolicy)))
    rules = tuple(draw(st.lists(st.sampled_from(list(TriggerRule)), min_size=n, max_size=n)))
    if fail and policy is ErrorPolicy.FAIL_FAST and not rules_after_fail_fast:
        rules = (TriggerRule.ALL_SUCCESS,) * n
    return PlanCase(
        deps=deps,
        durations=tuple(draw(st.lists(st.integers(1, 4), min_size=n, max_size=n))),
        given=ALL if fail else draw(st.sampled_from([NONE, SOME, ALL])),
        known=frozenset(draw(st.sets(st.integers(0, n - 1)))),
        rules=rules,
        sizes=sizes,
        shared=tuple(draw(st.lists(st.booleans(), min_size=k, max_size=k))),
        demands=tuple(demands),
        bound=draw(st.integers(1, 4)),
        policy=policy,
        fail=fail,
        coincident=bool(fail) and draw(st.booleans()),
    )


def check_plan_equals_run(case: PlanCase) -> None:
    graph = case.graph()
    options = case.options()
    plan = exegraph.plan(graph, options, fail=[f"s{i}" for i in case.fail])

    async def main() -> exegraph.RunResult:
        with trio.fail_after(10_000):
            return await exegraph.run_with_result(graph, options)

    result = trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    actual = {t.name: (t.status, t.start, t.end) for t in result.steps}
    planned = {s.name: (s.status, s.start, s.end) for s in plan.steps}
    assert planned == actual
    index = {name: i for i, name in enumerate(graph.names)}
    order = sorted(result.steps, key=lambda t: (t.start is None, t.start or 0.0, index[t.name]))
    assert [s.name for s in plan.steps] == [t.name for t in order]
    assert plan.makespan == result.total_duration


@_PROPERTY
@given(plan_cases(failures=False))
def test_a_plan_starts_every_step_when_a_run_does(case: PlanCase) -> None:
    check_plan_equals_run(case)


@_PROPERTY
@given(plan_cases(failures=True, rules_after_fail_fast=False))
def test_a_plan_with_failures_predicts_the_run_statuses_and_times(case: PlanCase) -> None:
    # Fail-fast cases have no trigger rules here: the steps fail-fast cancels end at the
    # failure's instant, and a real run decides what the trigger-rule steps then start
    # before or after those cancellations report, as Trio's batch order falls.
    check_plan_equals_run(case)


def test_the_planners_fast_planned_step_is_a_planned_step_like_any_other() -> None:
    # plan() makes its PlannedSteps by setting their slots; a field added to PlannedStep
    # without it would be left unset, and this fails.
    import attrs

    from exegraph_trio._plan import _planned

    values = ("a", exegraph.StepStatus.DONE, 1.0, 2.5)
    assert len(attrs.fields(exegraph.PlannedStep)) == len(values)
    fast, slow = _planned(*values), exegraph.PlannedStep(*values)
    assert type(fast) is exegraph.PlannedStep
    assert (fast, hash(fast), repr(fast)) == (slow, hash(slow), repr(slow))
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        fast.start = 0.0  # type: ignore[misc]


def test_fail_that_is_not_a_list_of_names_is_a_type_error_saying_so() -> None:
    async def act() -> None:
        pass

    graph = exegraph.Graph([exegraph.Step("a", act)])
    with pytest.raises(TypeError, match=r"fail must be a list of step names, like .* not NoneType"):
        exegraph.plan(graph, fail=None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"step names \(str\), got list"):
        exegraph.plan(graph, fail=[["a"]])  # type: ignore[list-item]


def test_fail_naming_steps_the_graph_lacks_says_which_and_suggests_for_the_first_few() -> None:
    # Close names cost a pass over the graph each: the first few get them, the message
    # names 20 and counts the rest.
    async def act() -> None:
        pass

    graph = exegraph.Graph([exegraph.Step(f"step-{i}", act) for i in range(100)])
    with pytest.raises(ValueError, match="does not have") as caught:
        exegraph.plan(graph, fail=["step-1", *(f"stepx-{i}" for i in range(30))])
    message = str(caught.value)
    assert "'stepx-0' (did you mean 'step-0'" in message
    assert "'stepx-4' (did you mean" in message
    assert "'stepx-5' (did you mean" not in message
    assert "'stepx-5'" in message
    assert "'stepx-19'" in message
    assert "'stepx-20'" not in message
    assert message.endswith(", …and 10 more")
