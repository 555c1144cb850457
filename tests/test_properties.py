"""The scheduler's invariants on random graphs (hypothesis).

Charter: each example runs its own `trio.run` under `MockClock(autojump_threshold=0)`, so
durations are virtual and exact; the number of examples is modest to keep CI fast, and
every property is checked on every example.
"""

from __future__ import annotations

import itertools

import attrs
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

import exegraph_trio as exegraph
from exegraph_trio import ErrorPolicy, Graph, RunOptions, RunResult, StepStatus


@attrs.frozen
class Case:
    """A random DAG: deps[i] ⊆ earlier nodes; steps listed in a shuffled order."""

    deps: tuple[tuple[int, ...], ...]
    durations: tuple[int, ...]
    failing: frozenset[int]
    order: tuple[int, ...]
    bound: int
    policy: ErrorPolicy


@st.composite
def cases(draw: st.DrawFn) -> Case:
    n = draw(st.integers(1, 24))
    deps = tuple(
        tuple(sorted(draw(st.sets(st.integers(0, i - 1), max_size=min(i, 4))))) if i else ()
        for i in range(n)
    )
    return Case(
        deps=deps,
        durations=tuple(draw(st.lists(st.integers(0, 5), min_size=n, max_size=n))),
        failing=frozenset(draw(st.sets(st.integers(0, n - 1), max_size=3))),
        order=tuple(draw(st.permutations(range(n)))),
        bound=draw(st.integers(1, 6)),
        policy=draw(st.sampled_from(ErrorPolicy)),
    )


@attrs.define
class Observed:
    log: list[tuple[int, str, str, float]] = attrs.field(factory=list)
    running: int = 0
    max_running: int = 0
    seq: itertools.count[int] = attrs.field(factory=itertools.count)

    def note(self, kind: str, name: str) -> None:
        self.log.append((next(self.seq), kind, name, trio.current_time()))

    def events(self, kind: str) -> dict[str, tuple[int, float]]:
        return {name: (seq, t) for seq, k, name, t in self.log if k == kind}


def run_case(case: Case) -> tuple[RunResult, Observed]:
    seen = Observed()

    def action(i: int) -> exegraph.Action:
        async def act() -> None:
            seen.note("start", f"n{i}")
            seen.running += 1
            seen.max_running = max(seen.max_running, seen.running)
            try:
                await trio.sleep(case.durations[i])
                if i in case.failing:
                    raise ValueError(i)
            finally:
                seen.running -= 1

        return act

    graph = Graph(
        exegraph.Step(f"n{i}", action(i), depends_on=[f"n{j}" for j in case.deps[i]])
        for i in case.order
    )
    options = RunOptions(
        max_concurrency=case.bound,
        error_policy=case.policy,
        on_step_start=lambda name: seen.note("hook-start", name),
        on_step_done=lambda name, error: seen.note("done", name),
    )

    async def main() -> RunResult:
        return await exegraph.run_with_result(graph, options)

    result = trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    return result, seen


def descendants(case: Case, roots: set[int]) -> set[int]:
    found: set[int] = set()
    changed = True
    while changed:
        changed = False
        for i, deps in enumerate(case.deps):
            if i not in found and any(d in roots or d in found for d in deps):
                found.add(i)
                changed = True
    return found


@settings(max_examples=100, deadline=None)
@given(cases())
def test_every_step_is_reported_once_and_started_at_most_once(case: Case) -> None:
    result, seen = run_case(case)
    n = len(case.deps)
    assert sorted(t.name for t in result.steps) == sorted(f"n{i}" for i in range(n))
    starts = [name for _, kind, name, _ in seen.log if kind == "start"]
    assert len(starts) == len(set(starts))
    started = {t.name for t in result.steps if t.start is not None}
    assert started == set(starts)


@settings(max_examples=100, deadline=None)
@given(cases())
def test_a_step_starts_only_after_its_dependencies_finished_with_their_hooks(case: Case) -> None:
    result, seen = run_case(case)
    starts, done = seen.events("hook-start"), seen.events("done")
    for i, deps in enumerate(case.deps):
        if f"n{i}" in starts:
            for d in deps:
                assert result[f"n{d}"].status is StepStatus.DONE
                assert done[f"n{d}"][0] < starts[f"n{i}"][0]


@settings(max_examples=100, deadline=None)
@given(cases())
def test_the_concurrency_bound_holds(case: Case) -> None:
    _, seen = run_case(case)
    assert seen.max_running <= case.bound


@settings(max_examples=100, deadline=None)
@given(cases())
def test_continue_on_error_skips_exactly_the_dependents_of_failures(case: Case) -> None:
    case = attrs.evolve(case, policy=ErrorPolicy.CONTINUE_ON_ERROR)
    result, _ = run_case(case)
    skipped = descendants(case, set(case.failing))
    for i in range(len(case.deps)):
        timing = result[f"n{i}"]
        if i in skipped:
            assert timing.status is StepStatus.SKIPPED
        elif i in case.failing:
            assert timing.status is StepStatus.FAILED
        else:
            assert timing.status is StepStatus.DONE
    assert result.ok == (not case.failing)
    if result.error is not None:
        assert len(result.error.exceptions) == len(case.failing - skipped) + len(skipped)


@settings(max_examples=100, deadline=None)
@given(cases())
def test_nothing_starts_after_a_fail_fast_failure(case: Case) -> None:
    case = attrs.evolve(case, policy=ErrorPolicy.FAIL_FAST)
    result, seen = run_case(case)
    failures = [t for t in result.steps if t.status is StepStatus.FAILED]
    if not failures:
        assert result.ok
        return
    done = seen.events("done")
    first_failure = min(done[t.name][0] for t in failures)
    assert all(seq < first_failure for seq, kind, _, _ in seen.log if kind == "start")
    statuses = {t.status for t in result.steps}
    assert statuses <= {
        StepStatus.DONE,
        StepStatus.FAILED,
        StepStatus.SKIPPED,
        StepStatus.CANCELLED,
    }
    assert result.error is not None
    assert {type(e) for e in result.error.exceptions} <= {ValueError, exegraph.StepSkippedError}


@settings(max_examples=100, deadline=None)
@given(cases())
def test_without_a_binding_bound_each_step_starts_when_its_last_dependency_ends(
    case: Case,
) -> None:
    case = attrs.evolve(case, bound=len(case.deps), failing=frozenset())
    result, _ = run_case(case)
    for i, deps in enumerate(case.deps):
        expected = max((result[f"n{d}"].end or 0.0 for d in deps), default=0.0)
        assert result[f"n{i}"].start == expected
