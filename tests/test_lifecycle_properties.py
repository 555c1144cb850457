"""The step lifecycle's invariants on random graphs (hypothesis): trigger rules, retries, resources.

Charter: the driver properties run each example through the real `run_with_result` in a
`trio.run` of its own under `MockClock(autojump_threshold=0)`. Every action sleeps a whole
number of virtual seconds, so times are exact, and every event an action, a hook or an
instrument sees is noted with a global sequence number, so "before" and "after" are exact
within one instant too. The core properties drive `_core.Core` directly, as the Trio
driver does, on a simulated clock, and check its counters against its states after every
event. Examples are derandomized and few enough for the module to run in seconds.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Sequence
from typing import Any, Final, TypeVar

import attrs
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

import exegraph_trio as exegraph
from exegraph_trio import (
    ErrorPolicy,
    Graph,
    Retry,
    RunOptions,
    RunResult,
    StepStatus,
    StepTiming,
    TriggerRule,
    _core,
)

T = TypeVar("T")

_PROPERTY: Final = settings(max_examples=100, deadline=None, derandomize=True)

OK: Final = 0
FLAKY: Final = 1
"""An attempt that raises `Flaky`, a `ValueError`."""
FATAL: Final = 2
"""An attempt that raises `Fatal`, no `ValueError` (not retried by `on=(ValueError,)`)."""
TIMEOUT: Final = 3
"""An attempt that runs past its step's deadline (`StepTimeoutError`, no `ValueError`)."""

ALL_SUCCESS: Final = TriggerRule.ALL_SUCCESS
ALL_DONE: Final = TriggerRule.ALL_DONE
ONE_FAILED: Final = TriggerRule.ONE_FAILED
DONE: Final = StepStatus.DONE
FAILED: Final = StepStatus.FAILED
SKIPPED: Final = StepStatus.SKIPPED
CANCELLED: Final = StepStatus.CANCELLED


class Flaky(ValueError):
    """What a failing attempt raises when the failure is worth another attempt."""


class Fatal(RuntimeError):
    """What a failing attempt raises when only `Retry(on=Exception)` retries it."""


class TeardownError(Exception):
    """What a failing teardown raises."""


# -- random cases ----------------------------------------------------------------------------


@attrs.frozen
class Case:
    """A random DAG (`deps[i]` ⊆ earlier steps) with a trigger rule, a plan for each
    attempt, a retry and maybe a resource per step."""

    deps: tuple[tuple[int, ...], ...]
    rules: tuple[TriggerRule, ...]
    durations: tuple[int, ...]
    """Per step, how long its first attempt (or resource setup) sleeps; each later attempt
    sleeps one second more, modulo 4."""
    plans: tuple[tuple[int, ...], ...]
    """Per step, what each attempt does after its sleep (`OK`, `FLAKY` or `FATAL`) if its
    deadline did not cut it; the attempts after the plan's last succeed."""
    retries: tuple[Retry | None, ...]
    default_retry: Retry | None
    """`RunOptions.retry`: the retry of the steps without one of their own."""
    teardowns: tuple[int | None, ...]
    """Per resource step, how long its teardown sleeps; `None` for the other steps."""
    teardown_fails: frozenset[int]
    timeouts: tuple[float | None, ...]
    """`Step.timeout` of each step (1.5 or 2.5 s): an attempt or a teardown that would
    sleep longer is cut by its deadline."""
    step_timeout: float | None
    """`RunOptions.step_timeout`."""
    bound: int
    policy: ErrorPolicy

    @property
    def n(self) -> int:
        return len(self.deps)

    @property
    def dependents(self) -> list[list[int]]:
        found: list[list[int]] = [[] for _ in self.deps]
        for i, deps in enumerate(self.deps):
            for d in deps:
                found[d].append(i)
        return found

    def resource(self, i: int) -> bool:
        return self.teardowns[i] is not None

    def retry_of(self, i: int) -> Retry | None:
        own = self.retries[i]
        return self.default_retry if own is None else own

    def timeout_of(self, i: int) -> float | None:
        own = self.timeouts[i]
        return self.step_timeout if own is None else own

    def duration(self, i: int, attempt: int) -> int:
        """How long attempt `attempt` of step `i` sleeps (its deadline may cut it)."""
        return (self.durations[i] + attempt - 1) % 4

    def lasts(self, i: int, attempt: int) -> float:
        """How long the attempt lasts when nothing cancels it."""
        timeout = self.timeout_of(i)
        duration = self.duration(i, attempt)
        return duration if timeout is None else min(duration, timeout)

    def outcome(self, i: int, attempt: int) -> int:
        """What the attempt does when nothing cancels it: `OK`, `FLAKY`, `FATAL`, `TIMEOUT`."""
        timeout = self.timeout_of(i)
        if timeout is not None and self.duration(i, attempt) > timeout:
            return TIMEOUT
        plan = self.plans[i]
        return plan[attempt - 1] if attempt <= len(plan) else OK

    def error(self, i: int, attempt: int) -> Exception:
        """What the attempt fails with (its outcome is not `OK`)."""
        kind = self.outcome(i, attempt)
        if kind == TIMEOUT:
            timeout = self.timeout_of(i)
            assert timeout is not None
            return exegraph.StepTimeoutError(name(i), timeout)
        return Flaky(i, attempt) if kind == FLAKY else Fatal(i, attempt)

    def teardown_lasts(self, i: int) -> float:
        """How long the teardown of resource `i` lasts: its own deadline may cut it."""
        timeout = self.timeout_of(i)
        duration = self.teardowns[i] or 0
        return duration if timeout is None else min(duration, timeout)

    def teardown_cut(self, i: int) -> bool:
        return self.teardown_lasts(i) != (self.teardowns[i] or 0)


# Few draws per step (one for each field) keep the examples cheap to generate.
PLANS: Final = [
    *[()] * 6,
    (FLAKY,),
    (FLAKY,),
    (FATAL,),
    (FLAKY, FLAKY),
    (FLAKY, FATAL),
    (FATAL, FLAKY),
    (FLAKY, FLAKY, FLAKY),
]
RETRIES: Final = [
    *[None] * 4,
    Retry(attempts=1),
    Retry(attempts=2, delay=0),
    Retry(attempts=2, delay=1),
    Retry(attempts=2, delay=2, on=ValueError),
    Retry(attempts=3, delay=1, backoff=2),
    Retry(attempts=3, delay=2, backoff=2, max_delay=3),
    Retry(attempts=3, delay=1, backoff=1, on=ValueError),
    Retry(attempts=3, delay=0, on=(ValueError,)),
]
TEARDOWNS: Final = [None, None, None, None, 0, 1, 2]
TIMEOUTS: Final = [None, None, None, None, None, 1.5, 2.5]
RULES: Final = [ALL_SUCCESS, ALL_SUCCESS, ALL_DONE, ONE_FAILED]


@st.composite
def cases(draw: st.DrawFn, policy: ErrorPolicy | None = None) -> Case:
    n = draw(st.integers(1, 9))
    deps = tuple(
        tuple(sorted(draw(st.sets(st.integers(0, i - 1), max_size=min(i, 3))))) if i else ()
        for i in range(n)
    )

    def each(strategy: st.SearchStrategy[T]) -> tuple[T, ...]:
        return tuple(draw(st.lists(strategy, min_size=n, max_size=n)))

    teardowns = each(st.sampled_from(TEARDOWNS))
    return Case(
        deps=deps,
        rules=each(st.sampled_from(RULES)),
        durations=each(st.integers(0, 3)),
        plans=each(st.sampled_from(PLANS)),
        retries=each(st.sampled_from(RETRIES)),
        default_retry=draw(st.sampled_from(RETRIES)),
        teardowns=teardowns,
        teardown_fails=frozenset(
            i for i in draw(st.sets(st.integers(0, n - 1), max_size=2)) if teardowns[i] is not None
        ),
        timeouts=each(st.sampled_from(TIMEOUTS)),
        step_timeout=draw(st.sampled_from([None, None, 2.5])),
        bound=draw(st.integers(1, 4)),
        policy=draw(st.sampled_from(ErrorPolicy)) if policy is None else policy,
    )


Ended = tuple[StepStatus, bool]
"""How a dependency settled: its status, and whether it was skipped *quietly* (a
`ONE_FAILED` step with nothing failed, and what needed it: no failure)."""


def holds(rule: TriggerRule, deps: Sequence[Ended]) -> bool:
    """Whether `rule` holds for dependencies that settled as `deps` say."""
    if rule is ALL_SUCCESS:
        return all(status is DONE for status, _ in deps)
    if rule is ALL_DONE:
        return True
    return any(status is not DONE and not quiet for status, quiet in deps)


def planned(case: Case, i: int) -> tuple[StepStatus, int]:
    """How step `i` ends when it runs and nothing stops it: its status and attempts."""
    retry = case.retry_of(i)
    most = 1 if retry is None else retry.attempts
    for attempt in range(1, most + 1):
        if case.outcome(i, attempt) == OK:
            return DONE, attempt
        if retry is None or not retry.retries(case.error(i, attempt)):
            return FAILED, attempt
    return FAILED, most


def reference(case: Case) -> list[tuple[StepStatus, int, bool]]:
    """Each step's status, attempts and quietness when nothing stops the run.

    An `ALL_SUCCESS` step skipped because of a quiet skip *and* a failure is skipped for
    the failure, whichever reached it first.
    """
    ended: list[tuple[StepStatus, int, bool]] = []
    for i, deps in enumerate(case.deps):
        before = [(ended[d][0], ended[d][2]) for d in deps]
        rule = case.rules[i]
        if holds(rule, before):
            ended.append((*planned(case, i), False))
        elif rule is ONE_FAILED:  # nothing failed
            ended.append((SKIPPED, 0, True))
        else:
            ended.append((SKIPPED, 0, all(quiet for status, quiet in before if status is not DONE)))
    return ended


# -- a run through the Trio driver, and what it noted ----------------------------------------


@attrs.frozen
class Note:
    seq: int
    time: float
    kind: str
    """"attempt-start", "attempt-end", "teardown-start", "teardown-end" (from the actions),
    "hook-start", "hook-done" (the hooks), "settled", "skipped" (an instrument)."""
    step: int
    attempt: int = 0


@attrs.define
class Observed:
    """One run of a case: its result, and everything noted while it ran."""

    case: Case
    notes: list[Note] = attrs.field(factory=list)
    raised: dict[tuple[int, int], Exception] = attrs.field(factory=dict)
    """Per step and attempt, the exception the attempt raised."""
    torn: dict[int, TeardownError] = attrs.field(factory=dict)
    """Per resource step, the exception its teardown raised."""
    result: RunResult | None = None
    _seq: itertools.count[int] = attrs.field(factory=itertools.count)

    def note(self, kind: str, step: int, attempt: int = 0) -> None:
        self.notes.append(Note(next(self._seq), trio.current_time(), kind, step, attempt))

    def of(self, kind: str, step: int) -> list[Note]:
        return [note for note in self.notes if note.kind == kind and note.step == step]

    def settle(self, step: int) -> Note:
        """When step `step` settled: its one "settled" or "skipped" note."""
        (found,) = self.of("settled", step) + self.of("skipped", step)
        return found

    def timing(self, step: int) -> StepTiming:
        assert self.result is not None
        return self.result[name(step)]

    def status(self, step: int) -> StepStatus:
        return self.timing(step).status

    def quiet(self, step: int) -> bool:
        """Whether `step` was skipped with no error (not because of a failure)."""
        timing = self.timing(step)
        return timing.status is SKIPPED and timing.error is None

    def ended(self, step: int) -> Ended:
        return self.status(step), self.quiet(step)

    def decided(self) -> list[tuple[StepStatus, int, bool]]:
        """Each step's status, attempts and quietness."""
        return [
            (self.status(i), self.timing(i).attempts, self.quiet(i)) for i in range(self.case.n)
        ]

    def own_failures(self, step: int) -> list[int]:
        """The attempts of `step` that failed of their own: raised, or cut by its deadline
        (not cancelled by fail-fast before it)."""
        starts, ends = self.of("attempt-start", step), self.of("attempt-end", step)
        timeout = self.case.timeout_of(step)
        return [
            k
            for k, (start, end) in enumerate(zip(starts, ends, strict=True), start=1)
            if (step, k) in self.raised
            or (
                timeout is not None
                and self.case.outcome(step, k) == TIMEOUT
                and end.time == start.time + timeout
            )
        ]

    def is_error_of(self, step: int, attempt: int, error: BaseException | None) -> bool:
        """Whether `error` is what attempt `attempt` of `step` failed with."""
        if (step, attempt) in self.raised:
            return error is self.raised[step, attempt]
        return isinstance(error, exegraph.StepTimeoutError) and error.step_name == name(step)


def name(i: int) -> str:
    return f"s{i}"


def index(step: str) -> int:
    return int(step[1:])


class Noting(exegraph.Instrument):
    """Notes when each step settled: ran to its end, or was skipped."""

    def __init__(self, seen: Observed) -> None:
        self.seen = seen

    def step_done(self, run: exegraph.RunInfo, step: exegraph.Step, timing: StepTiming) -> None:
        self.seen.note("settled", index(step.name))

    def step_skipped(self, run: exegraph.RunInfo, step: exegraph.Step, timing: StepTiming) -> None:
        self.seen.note("skipped", index(step.name))


def run_case(case: Case) -> Observed:
    seen = Observed(case)
    calls = [0] * case.n

    async def attempt(i: int) -> None:
        """One attempt (or resource setup) of step `i`: sleep, then succeed or raise."""
        calls[i] += 1
        number = calls[i]
        seen.note("attempt-start", i, number)
        try:
            await trio.sleep(case.duration(i, number))
            if case.outcome(i, number) != OK:
                error = seen.raised[i, number] = case.error(i, number)
                raise error
        finally:
            seen.note("attempt-end", i, number)

    def action(i: int) -> exegraph.Action:
        async def act() -> str:
            await attempt(i)
            return name(i)

        return act

    def resource(i: int) -> exegraph.Action:
        async def resource() -> AsyncIterator[str]:
            await attempt(i)
            yield name(i)
            seen.note("teardown-start", i)
            try:
                await trio.sleep(case.teardowns[i] or 0)
                if i in case.teardown_fails:
                    seen.torn[i] = TeardownError(i)
                    raise seen.torn[i]
            finally:
                seen.note("teardown-end", i)

        return resource

    graph = Graph(
        exegraph.Step(
            name(i),
            resource(i) if case.resource(i) else action(i),
            depends_on=[name(d) for d in case.deps[i]],
            timeout=case.timeouts[i],
            retry=case.retries[i],
            trigger_rule=case.rules[i],
        )
        for i in range(case.n)
    )
    options = RunOptions(
        max_concurrency=case.bound,
        error_policy=case.policy,
        step_timeout=case.step_timeout,
        retry=case.default_retry,
        on_step_start=lambda step: seen.note("hook-start", index(step)),
        on_step_done=lambda step, error: seen.note("hook-done", index(step)),
        instruments=[Noting(seen)],
    )
    seen.result = trio.run(
        exegraph.run_with_result,
        graph,
        options,
        clock=trio.testing.MockClock(autojump_threshold=0),
    )
    return seen


# -- properties of runs through the driver ---------------------------------------------------


@_PROPERTY
@given(cases())
def test_every_step_settles_once_and_the_hooks_run_once_around_all_its_attempts(
    case: Case,
) -> None:
    seen = run_case(case)
    assert seen.result is not None
    assert sorted(t.name for t in seen.result.steps) == sorted(name(i) for i in range(case.n))
    for i in range(case.n):
        timing = seen.timing(i)
        settle = seen.settle(i)  # exactly one
        starts, ends = seen.of("attempt-start", i), seen.of("attempt-end", i)
        hook_starts, hook_dones = seen.of("hook-start", i), seen.of("hook-done", i)
        assert len(starts) == len(ends)
        if timing.status in (DONE, FAILED):
            assert timing.attempts == len(starts)
        else:
            # KNOWN BUG (reported): the core counts an attempt when `take()` hands it
            # out, so a step withdrawn before it began, or cancelled after it was handed
            # its next attempt but before that attempt began, counts one attempt too many.
            assert timing.attempts in (len(starts), len(starts) + 1)
        if not starts:
            # Nothing cancels the run from outside: a step that never started is skipped.
            assert timing.status is SKIPPED
            assert settle.kind == "skipped"
            assert not hook_starts
            assert not hook_dones
            assert (timing.start, timing.end) == (None, None)
            continue
        assert timing.status in (DONE, FAILED, CANCELLED)
        assert settle.kind == "settled"
        assert len(hook_starts) == len(hook_dones) == 1
        assert hook_starts[0].seq < starts[0].seq
        assert ends[-1].seq < hook_dones[0].seq < settle.seq
        assert timing.start == starts[0].time
        assert timing.end == ends[-1].time
        assert timing.value == (name(i) if timing.status is DONE else None)


@_PROPERTY
@given(cases())
def test_a_step_starts_only_once_its_trigger_rule_holds_for_its_settled_dependencies(
    case: Case,
) -> None:
    seen = run_case(case)
    for i, deps in enumerate(case.deps):
        hook_starts = seen.of("hook-start", i)
        if not hook_starts:
            continue
        for d in deps:
            assert seen.settle(d).seq < hook_starts[0].seq, (d, i)
        assert holds(case.rules[i], [seen.ended(d) for d in deps]), i


@_PROPERTY
@given(cases(ErrorPolicy.CONTINUE_ON_ERROR))
def test_continue_on_error_runs_exactly_the_steps_whose_rule_holds_with_the_attempts_allowed(
    case: Case,
) -> None:
    seen = run_case(case)
    assert seen.result is not None
    expected = reference(case)
    assert seen.decided() == expected
    failed = any(status is FAILED for status, _, _ in expected)
    torn = any(t.teardown_error is not None for t in seen.result.steps)
    assert (seen.result.error is None) == (not failed and not torn)


@_PROPERTY
@given(cases(ErrorPolicy.FAIL_FAST))
def test_fail_fast_starts_no_all_success_step_after_the_first_failure_but_runs_the_others(
    case: Case,
) -> None:
    seen = run_case(case)
    failures = [seen.settle(i).seq for i in range(case.n) if seen.status(i) is FAILED]
    if not failures:  # nothing stopped the run: it went as under continue-on-error
        assert seen.decided() == reference(case)
        return
    first = min(failures)
    # KNOWN BUG (reported): a retry woken for its slot just before the failure still
    # calls its action once more; so later attempts are not checked here yet.
    late = [
        note
        for note in seen.notes
        if (note.kind == "hook-start" or (note.kind == "attempt-start" and note.attempt == 1))
        and note.seq > first
    ]
    assert all(case.rules[note.step] is not ALL_SUCCESS for note in late), late
    failed_at = min(seen.settle(i).time for i in range(case.n) if seen.status(i) is FAILED)
    for i, deps in enumerate(case.deps):
        if case.rules[i] is ALL_SUCCESS:
            continue
        ran = seen.status(i) is not SKIPPED
        assert ran == holds(case.rules[i], [seen.ended(d) for d in deps]), i
        # Begun after the failure, outside the cancelled scope: it runs as if nothing
        # happened, retries included. KNOWN BUG (reported): a step handed out at the very
        # instant of the failure is denied its retries; only later ones are checked.
        hook_starts = seen.of("hook-start", i)
        if hook_starts and hook_starts[0].time > failed_at:
            assert (seen.status(i), seen.timing(i).attempts) == planned(case, i), i


@_PROPERTY
@given(cases())
def test_attempts_of_a_step_never_overlap_and_each_waits_out_its_retry_delay(
    case: Case,
) -> None:
    seen = run_case(case)
    for i in range(case.n):
        starts, ends = seen.of("attempt-start", i), seen.of("attempt-end", i)
        retry = case.retry_of(i)
        assert len(starts) <= (1 if retry is None else retry.attempts)
        assert [note.attempt for note in starts] == list(range(1, len(starts) + 1))
        assert [note.attempt for note in ends] == list(range(1, len(starts) + 1))
        for k, (start, end) in enumerate(zip(starts, ends, strict=True), start=1):
            assert start.seq < end.seq
            if k < len(starts):
                assert retry is not None
                after, wait = starts[k], retry.wait(k)
                assert end.seq < after.seq
                assert after.time >= end.time + wait
                if case.bound >= case.n:  # a slot is always free: the attempt begins at once
                    assert after.time == end.time + wait


@_PROPERTY
@given(cases())
def test_the_bound_holds_counting_every_attempt_but_no_retry_wait(case: Case) -> None:
    seen = run_case(case)
    running = 0
    for note in seen.notes:  # in sequence order: exact within an instant
        if note.kind == "attempt-start":
            running += 1
            assert running <= case.bound, note
        elif note.kind == "attempt-end":
            running -= 1
    assert running == 0


@_PROPERTY
@given(cases())
def test_every_resource_set_up_is_torn_down_once_as_soon_as_its_dependents_released_it(
    case: Case,
) -> None:
    seen = run_case(case)
    dependents = case.dependents

    def released(j: int) -> Note:
        """When dependent `j` stopped holding what it depends on.

        When it settled; a resource, when it was torn down; an `ALL_SUCCESS` step, no
        later than a dependency of it was skipped quietly (it will never run).
        """
        if case.resource(j) and seen.status(j) is DONE:
            (end,) = seen.of("teardown-end", j)
            return end
        return let_go(j)

    def let_go(j: int) -> Note:
        """When step `j`, not a resource set up, stopped holding: when it settled, or, for
        an `ALL_SUCCESS` step that never ran, when a dependency was skipped quietly or
        let go (it needs that one to succeed)."""
        notes = [seen.settle(j)]
        if case.rules[j] is ALL_SUCCESS and seen.status(j) is SKIPPED:
            for d in case.deps[j]:
                if seen.quiet(d):
                    notes.append(seen.settle(d))
                if case.rules[d] is ALL_SUCCESS and seen.status(d) is SKIPPED:
                    notes.append(let_go(d))
        return min(notes, key=lambda note: note.seq)

    for i in range(case.n):
        if not (case.resource(i) and seen.status(i) is DONE):
            continue
        (start,) = seen.of("teardown-start", i)
        (end,) = seen.of("teardown-end", i)
        assert start.seq < end.seq
        holders = [seen.settle(i)] + [released(j) for j in dependents[i]]
        assert all(holder.seq < start.seq for holder in holders)
        assert start.time == max(holder.time for holder in holders)
        # Shielded from the run's cancellation, under a deadline of its own from its start.
        assert end.time == start.time + case.teardown_lasts(i)


@_PROPERTY
@given(cases())
def test_a_resource_whose_setup_did_not_succeed_is_never_torn_down(case: Case) -> None:
    seen = run_case(case)
    for i in range(case.n):
        if not (case.resource(i) and seen.status(i) is DONE):
            assert not seen.of("teardown-start", i)
            assert seen.timing(i).teardown_error is None


@_PROPERTY
@given(cases())
def test_nothing_is_lost_every_error_raised_is_in_the_run_error_or_the_result(
    case: Case,
) -> None:
    seen = run_case(case)
    assert seen.result is not None
    error = seen.result.error
    members = [] if error is None else list(error.exceptions)
    member_ids = {id(member) for member in members}
    expected_members = 0
    for i in range(case.n):
        timing = seen.timing(i)
        failed = seen.own_failures(i)
        if timing.status is FAILED:
            assert failed[-1] == timing.attempts
            assert seen.is_error_of(i, failed.pop(), timing.error)
            assert id(timing.error) in member_ids
            retry = case.retry_of(i)
            if retry is not None:
                notes = getattr(timing.error, "__notes__", [])
                assert f"exegraph: attempt {timing.attempts} of {retry.attempts}" in notes
            expected_members += 1
        assert len(timing.earlier_errors) == len(failed)
        for k, earlier in zip(failed, timing.earlier_errors, strict=True):
            assert seen.is_error_of(i, k, earlier)
        if timing.status is SKIPPED and timing.error is not None:
            assert isinstance(timing.error, exegraph.StepSkippedError)
            assert id(timing.error) in member_ids
            expected_members += 1
        if timing.status is DONE and case.resource(i) and case.teardown_cut(i):
            assert isinstance(timing.teardown_error, exegraph.StepTimeoutError)
        else:
            assert timing.teardown_error is seen.torn.get(i)
        if timing.teardown_error is not None:
            assert id(timing.teardown_error) in member_ids
            expected_members += 1
    assert len(members) == expected_members
    failed_steps = any(seen.status(i) is FAILED for i in range(case.n))
    torn = any(t.teardown_error is not None for t in seen.result.steps)
    assert (error is None) == (not failed_steps and not torn)


def _outline(result: RunResult) -> dict[str, tuple[object, ...]]:
    """What a run decided, step by step: all of it but the order of the timings."""
    outline: dict[str, tuple[object, ...]] = {}
    for t in result.steps:
        error = t.error
        skipped_for = (
            error.failed_dependency if isinstance(error, exegraph.StepSkippedError) else None
        )
        outline[t.name] = (
            t.status,
            t.start,
            t.end,
            t.attempts,
            type(error).__name__,
            skipped_for,
            type(t.teardown_error).__name__,
        )
    return outline


@settings(max_examples=60, deadline=None, derandomize=True)
@given(cases())
def test_the_same_case_runs_the_same_way_whatever_order_trio_runs_its_tasks_in(
    case: Case,
) -> None:
    # SPEC, "same-instant completions are decided together": under a MockClock, what a
    # run does depends only on the graph, the options and when each action finishes.
    # Trio runs the tasks of one batch in a random order: run the case a few times.
    outlines = []
    for _ in range(4):
        result = run_case(case).result
        assert result is not None
        outlines.append(_outline(result))
        members = [] if result.error is None else result.error.exceptions
        outlines[-1]["members"] = tuple(sorted(type(m).__name__ for m in members))
    assert all(outline == outlines[0] for outline in outlines[1:])


# -- the sans-I/O core driven directly -------------------------------------------------------

_FINAL: Final = frozenset({_core.DONE, _core.FAILED, _core.SKIPPED, _core.CANCELLED})
_RULE_CODES: Final = {
    ALL_SUCCESS: _core.ALL_SUCCESS,
    ALL_DONE: _core.ALL_DONE,
    ONE_FAILED: _core.ONE_FAILED,
}
_STATUS: Final = {
    _core.DONE: DONE,
    _core.FAILED: FAILED,
    _core.SKIPPED: SKIPPED,
    _core.CANCELLED: CANCELLED,
}


@attrs.frozen
class CoreCase:
    """A case for the core alone: `stop_at` is when the run is cancelled from outside (if
    it is); `cancel_later` delivers fail-fast's cancellations after a `take()` of the same
    instant instead of before it."""

    case: Case
    stop_at: int | None
    cancel_later: bool


@st.composite
def core_cases(
    draw: st.DrawFn, policy: ErrorPolicy | None = None, *, stop: bool = True
) -> CoreCase:
    return CoreCase(
        case=draw(cases(policy)),
        stop_at=draw(st.none() | st.integers(0, 8)) if stop else None,
        cancel_later=draw(st.booleans()),
    )


@attrs.frozen
class CoreEvent:
    """What the simulated driver did or was told. Kinds: "take" (a first attempt),
    "resume" (a later attempt), "done", "retry" (`delay`), "again", "failed",
    "cancelled", "withdrawn", "skipped" (`cause`), "teardown" (became due), "torn_down",
    "stop", and a final "end" for each step left unsettled."""

    kind: str
    step: int
    time: float
    cause: int | None = None
    delay: float | None = None


@attrs.define
class Simulation:
    """Drives a `Core` as the Trio driver does, checking it after every event."""

    cc: CoreCase
    core: _core.Core
    log: list[CoreEvent] = attrs.field(factory=list)
    now: float = 0.0
    ends: dict[int, float] = attrs.field(factory=dict)
    """Running attempts: when each ends."""
    taken_at: dict[int, float] = attrs.field(factory=dict)
    fresh: set[int] = attrs.field(factory=set)
    """Steps whose first attempt was taken at this instant: their tasks have not begun."""
    late: set[int] = attrs.field(factory=set)
    """Steps started after fail-fast stopped the run (outside the cancelled nursery)."""
    waits: dict[int, float] = attrs.field(factory=dict)
    """Steps waiting to retry: when the wait is over."""
    eager: bool = False
    """Decide after each success when `decide_now()` allows, as the driver does (else
    once after every event of the instant)."""
    resuming: set[int] = attrs.field(factory=set)
    """Steps whose wait is over, waiting for a slot."""
    tearing: dict[int, float] = attrs.field(factory=dict)
    doomed: set[int] = attrs.field(factory=set)
    """The steps in flight when fail-fast stopped the run: no further attempt for them."""
    causes: dict[int, int | None] = attrs.field(factory=dict)
    """The cause the core named for each step it skipped."""
    set_up: set[int] = attrs.field(factory=set)
    torn: set[int] = attrs.field(factory=set)
    attempts: list[int] = attrs.field(factory=list)

    @property
    def case(self) -> Case:
        return self.cc.case

    def rule(self, i: int) -> TriggerRule:
        return self.case.rules[i]

    def may_run_again(self, i: int) -> bool:
        """Whether a step waiting to retry may have another attempt (fail-fast stops the
        `ALL_SUCCESS` steps and the steps it found in flight)."""
        return not (self.core.failing and (self.rule(i) is ALL_SUCCESS or i in self.doomed))

    # -- checks --------------------------------------------------------------------------

    def check(self) -> None:
        """The core's counters agree with its states, and its states with the driver's."""
        core, case = self.core, self.case
        states = list(core.state)
        dependents = case.dependents
        assert core.running == states.count(_core.RUNNING)
        assert core.retrying == states.count(_core.WAITING)
        assert core.unsettled == sum(state not in _FINAL for state in states)
        assert core.releasing == sum(
            1 for i, state in enumerate(states) if state == _core.RUNNING and dependents[i]
        )
        assert 0 <= core.running <= core.limit
        assert {i for i, s in enumerate(states) if s == _core.RUNNING} == set(self.ends)
        assert {i for i, s in enumerate(states) if s == _core.WAITING} == set(self.waits)
        assert {i for i, s in enumerate(states) if s == _core.AGAIN} == self.resuming
        in_heap = [core.by_rank[key] for key in core.ready]
        waiting_for_a_slot = {
            i
            for i, s in enumerate(states)
            if s == _core.READY or (s == _core.AGAIN and self.may_run_again(i))
        }
        assert waiting_for_a_slot <= set(in_heap)
        if any(t is not None for t in case.teardowns):
            for d in range(case.n):
                holding = [
                    j
                    for j in dependents[d]
                    if (states[j] not in _FINAL and not self.quietly_doomed(j)) or core.up[j]
                ]
                assert core.holders[d] == len(holding), (d, holding)
                assert core.up[d] == (d in self.set_up and d not in self.torn)

    def settled_ok(self, i: int) -> bool:
        return self.core.state[i] == _core.DONE

    def quietly_doomed(self, j: int) -> bool:
        """Whether `ALL_SUCCESS` step `j` will never run for a dependency skipped quietly,
        or needs one that will not (it holds nothing from then on), as the core marks
        them (`check` runs before the skips of an event are recorded here)."""
        return bool(self.core.let_go and self.core.let_go[j])

    # -- events --------------------------------------------------------------------------

    def record(
        self, kind: str, i: int, *, cause: int | None = None, delay: float | None = None
    ) -> None:
        self.log.append(CoreEvent(kind, i, self.now, cause, delay))

    def skipped(self, skips: Sequence[_core.Skip]) -> None:
        assert len({j for j, _ in skips}) == len(skips), "a step skipped twice at once"
        for j, cause in skips:
            assert self.core.state[j] == _core.SKIPPED
            self.causes[j] = cause
            self.record("skipped", j, cause=cause)
        self.check()

    def take(self) -> None:
        core = self.core
        before = bytes(core.state)
        was_failing, was_stopped = core.failing, core.stopped
        taken = core.take()
        for i in taken:
            assert before[i] in (_core.READY, _core.AGAIN), (i, before[i])
            assert (before[i] == _core.AGAIN) == (i in self.resuming), i
        self.hand_out(taken, was_failing=was_failing, was_stopped=was_stopped)

    def hand_out(self, taken: list[int], *, was_failing: bool, was_stopped: bool) -> None:
        """Start (or resume, for a step back from its retry's wait) each step of `taken`."""
        assert len(set(taken)) == len(taken), "a step handed out twice at once"
        for i in taken:
            assert i not in self.ends, "a running step handed out again"
            assert not was_stopped
            if was_failing:
                assert self.rule(i) is not ALL_SUCCESS
            self.attempts[i] += 1
            if i in self.resuming:  # (it was AGAIN)
                self.resuming.remove(i)
                self.record("resume", i)
            else:
                assert self.attempts[i] == 1
                self.fresh.add(i)
                if was_failing:
                    self.late.add(i)
                self.record("take", i)
            self.ends[i] = self.now + self.case.lasts(i, self.attempts[i])
            self.taken_at[i] = self.now
        self.check()

    def end_attempt(self, i: int) -> None:
        core, case = self.core, self.case
        del self.ends[i]
        attempt = self.attempts[i]
        kind = case.outcome(i, attempt)
        if kind == OK:
            resource = case.resource(i)
            if resource:
                self.set_up.add(i)
            self.record("done", i)
            if isinstance(core, _core.RetryCore):  # as `RetryRun._done`: one call
                was_failing, was_stopped = core.failing, core.stopped
                taken = core.finish(i, take=not (was_failing or was_stopped))
                # (`hand_out` checks the core once the steps taken are running)
                self.hand_out(taken or [], was_failing=was_failing, was_stopped=was_stopped)
                return
            skips = core.done(i, resource=resource)
            self.check()
            self.skipped(skips)
            if self.eager and core.decide_now():  # as `Run._decide`, after each success
                self.take()
            return
        error = case.error(i, attempt)
        retry = case.retry_of(i)
        allowed = (
            retry is not None
            and attempt < retry.attempts
            and retry.retries(error)
            and not core.stopped
            and self.may_run_again(i)
        )
        delay = core.retry(i, error)
        assert (delay is not None) == allowed, (i, attempt, delay)
        if delay is not None:
            assert retry is not None
            assert delay == retry.wait(attempt)
            self.waits[i] = self.now + delay
            self.record("retry", i, delay=delay)
            self.check()
            return
        self.record("failed", i)
        failing = core.failing
        skips = core.failed(i)
        if core.failing and not failing:
            self.doomed = {*self.ends, *self.waits, *self.resuming}
        self.check()
        self.skipped(skips)

    def cancel_in_flight(self, *, outside: bool) -> None:
        """Fail-fast cancels the steps in its nursery; an outside cancellation, all."""
        core = self.core
        for i in sorted(self.ends):
            if i in self.late and not outside:
                continue
            if i in self.fresh:
                if outside or self.rule(i) is ALL_SUCCESS:
                    del self.ends[i]
                    self.record("withdrawn", i)
                    skips = core.withdraw(i)
                    assert skips[0] == (i, None)
                    self.skipped(skips[1:])
                else:  # its task had not begun: respawned outside the cancelled nursery
                    self.late.add(i)
                continue
            del self.ends[i]
            self.record("cancelled", i)
            self.skipped(core.cancelled(i))
        for i in sorted({*self.waits, *self.resuming}):
            if i in self.late and not outside:
                continue
            self.waits.pop(i, None)
            self.resuming.discard(i)
            self.record("cancelled", i)
            self.skipped(core.cancelled(i))

    def tear_down_due(self) -> None:
        case, core = self.case, self.core
        for d in core.teardowns():
            assert case.resource(d)
            assert core.state[d] == _core.DONE
            assert d not in self.tearing
            assert d not in self.torn
            for j in case.dependents[d]:  # (settled, or never to run: doomed quietly)
                assert core.state[j] in _FINAL or self.quietly_doomed(j), (d, j)
                assert not (j in self.set_up and j not in self.torn), (d, j)
            self.tearing[d] = self.now + case.teardown_lasts(d)
            self.record("teardown", d)

    def run(self) -> list[CoreEvent]:
        core, cc = self.core, self.cc
        self.attempts = [0] * self.case.n
        self.check()
        self.skipped(core.start())
        self.tear_down_due()
        self.take()
        stop_pending = cc.stop_at is not None
        while self.ends or self.waits or self.tearing:
            times = [*self.ends.values(), *self.waits.values(), *self.tearing.values()]
            self.now = min(times)
            stopping = stop_pending and cc.stop_at is not None and cc.stop_at <= self.now
            if stopping and cc.stop_at is not None:
                self.now = cc.stop_at
            self.fresh = {i for i in self.fresh if self.taken_at[i] == self.now}
            for d in sorted(i for i, t in self.tearing.items() if t == self.now):
                del self.tearing[d]
                self.torn.add(d)
                self.record("torn_down", d)
                core.torn_down(d)
                self.check()
            for i in sorted(i for i, t in self.waits.items() if t == self.now):
                del self.waits[i]
                self.resuming.add(i)
                self.record("again", i)
                core.again(i)
                self.check()
            failing = core.failing
            for i in sorted(i for i, t in self.ends.items() if t == self.now):
                self.fresh.discard(i)
                self.end_attempt(i)
            if stopping:
                stop_pending = False
                self.record("stop", -1)
                self.skipped(core.stop())
                self.cancel_in_flight(outside=True)
            cancel = core.failing and not failing and not core.stopped
            if cancel and not cc.cancel_later:
                self.cancel_in_flight(outside=False)
            self.tear_down_due()
            self.take()
            if cancel and cc.cancel_later:
                self.cancel_in_flight(outside=False)
                self.tear_down_due()
                self.take()
        for i in range(self.case.n):
            if core.state[i] not in _FINAL:
                self.record("end", i)
        return self.log


def simulate(
    cc: CoreCase, core_class: type[_core.Core] = _core.Core, *, eager: bool = False
) -> tuple[list[CoreEvent], Simulation]:
    case = cc.case
    dependents = case.dependents
    priorities = [len(descendants(dependents, [i])) for i in range(case.n)]

    def ranking() -> tuple[list[int], list[int]]:
        by_rank = sorted(range(case.n), key=lambda i: (-priorities[i], i))
        rank = [0] * case.n
        for place, i in enumerate(by_rank):
            rank[i] = place
        return rank, by_rank

    rules = [_RULE_CODES[rule] for rule in case.rules]
    retries = [case.retry_of(i) for i in range(case.n)]
    core = core_class(
        case.deps,
        dependents,
        ranking,
        limit=case.bound,
        fail_fast=case.policy is ErrorPolicy.FAIL_FAST,
        rules=rules if any(rules) else None,  # as the driver: None when all ALL_SUCCESS
        retries=retries if any(r is not None for r in retries) else None,
        resources=any(t is not None for t in case.teardowns),
    )
    sim = Simulation(cc, core, eager=eager)
    return sim.run(), sim


def descendants(dependents: Sequence[Sequence[int]], roots: Sequence[int]) -> set[int]:
    found: set[int] = set()
    todo = list(roots)
    while todo:
        for j in dependents[todo.pop()]:
            if j not in found:
                found.add(j)
                todo.append(j)
    return found


_SETTLING: Final = frozenset({"done", "failed", "cancelled", "withdrawn", "skipped"})


@_PROPERTY
@given(core_cases())
def test_core_counters_agree_with_its_states_and_every_step_settles_once(cc: CoreCase) -> None:
    log, sim = simulate(cc)  # checks the counters after every event
    settles = sorted(event.step for event in log if event.kind in _SETTLING)
    assert settles == list(range(cc.case.n))
    assert not [event for event in log if event.kind == "end"]
    core = sim.core
    assert (core.running, core.retrying, core.unsettled) == (0, 0, 0)
    assert not sim.resuming


def _retries_only(cc: CoreCase, **changes: Any) -> CoreCase:
    """`cc` as a run with retries alone: no trigger rule, no resource, some step retrying."""
    case = attrs.evolve(
        cc.case,
        rules=(TriggerRule.ALL_SUCCESS,) * cc.case.n,
        teardowns=(None,) * cc.case.n,
        teardown_fails=frozenset(),
        **changes,
    )
    if case.default_retry is None and not any(case.retries):
        case = attrs.evolve(case, default_retry=Retry(attempts=2, delay=1))
    return attrs.evolve(cc, case=case)


@_PROPERTY
@given(core_cases())
def test_the_retry_core_decides_as_the_full_core_does(cc: CoreCase) -> None:
    # `RetryCore.finish` (what `RetryRun` calls for a success) is `done`, `decide_now`
    # and `take`: on a case without trigger rules or resources, the same run, event for
    # event, as `Core` deciding after each success.
    plain = _retries_only(cc)
    full, _ = simulate(plain, eager=True)
    fused, sim = simulate(plain, _core.RetryCore)
    assert fused == full
    assert (sim.core.running, sim.core.retrying, sim.core.unsettled) == (0, 0, 0)


@settings(_PROPERTY, max_examples=1000)  # (a retry ready again as a step ends: rare)
@given(core_cases())
def test_the_fit_retry_core_decides_as_the_retry_core_does(cc: CoreCase) -> None:
    # `FitRetryCore` (a run with retries whose bound holds every step) starts what a
    # success frees in `finish` itself: the same run, event for event, as `RetryCore`'s,
    # with retries that wait and retries ready again at once, failures and fail-fast.
    fit = _retries_only(cc, bound=cc.case.n + cc.case.bound)  # (every step fits)
    expected, _ = simulate(fit, _core.RetryCore)
    got, sim = simulate(fit, _core.FitRetryCore)
    assert got == expected
    assert (sim.core.running, sim.core.retrying, sim.core.unsettled) == (0, 0, 0)


@_PROPERTY
@given(core_cases())
def test_core_never_hands_out_a_step_that_is_running_or_settled(cc: CoreCase) -> None:
    log, _ = simulate(cc)
    running: set[int] = set()
    settled: set[int] = set()
    for event in log:
        if event.kind in ("take", "resume"):
            assert event.step not in running
            assert event.step not in settled
            running.add(event.step)
        elif event.kind in ("done", "failed", "retry", "withdrawn") or (
            event.kind == "cancelled" and event.step in running
        ):
            running.discard(event.step)
        if event.kind in _SETTLING:
            settled.add(event.step)


@_PROPERTY
@given(core_cases())
def test_core_hands_out_a_step_only_when_its_rule_holds_for_its_settled_dependencies(
    cc: CoreCase,
) -> None:
    log, _ = simulate(cc)
    case = cc.case
    ended: dict[int, Ended] = {}
    kinds = {"done": DONE, "failed": FAILED, "cancelled": CANCELLED}
    kinds |= {"withdrawn": SKIPPED, "skipped": SKIPPED}
    for event in log:
        if event.kind == "take":
            deps = case.deps[event.step]
            assert all(d in ended for d in deps)
            assert holds(case.rules[event.step], [ended[d] for d in deps])
        elif event.kind in kinds:
            ended[event.step] = kinds[event.kind], event.cause == _core.QUIET


@_PROPERTY
@given(core_cases(ErrorPolicy.CONTINUE_ON_ERROR, stop=False))
def test_core_decides_as_the_reference_when_nothing_stops_the_run(cc: CoreCase) -> None:
    _, sim = simulate(cc)

    def quiet(i: int) -> bool:
        return sim.causes.get(i) == _core.QUIET

    decided = [
        (_STATUS[state], attempts, quiet(i))
        for i, (state, attempts) in enumerate(zip(sim.core.state, sim.attempts, strict=True))
    ]
    assert decided == reference(cc.case)


@_PROPERTY
@given(core_cases(ErrorPolicy.FAIL_FAST))
def test_core_under_fail_fast_takes_no_all_success_step_after_the_first_failure(
    cc: CoreCase,
) -> None:
    log, _ = simulate(cc)
    failures = [n for n, event in enumerate(log) if event.kind == "failed"]
    if not failures:
        return
    for event in log[failures[0] :]:
        if event.kind in ("take", "resume"):
            assert cc.case.rules[event.step] is not ALL_SUCCESS


@_PROPERTY
@given(core_cases())
def test_core_tears_down_every_resource_set_up_once_and_no_other(cc: CoreCase) -> None:
    log, sim = simulate(cc)
    due = [event.step for event in log if event.kind == "teardown"]
    torn = [event.step for event in log if event.kind == "torn_down"]
    assert sorted(due) == sorted(torn) == sorted(sim.set_up)
    assert len(set(due)) == len(due)
    set_up = {i for i, state in enumerate(sim.core.state) if state == _core.DONE}
    assert sim.set_up == {i for i in set_up if cc.case.resource(i)}


# -- regressions -----------------------------------------------------------------------------


def test_regression_a_trigger_rule_step_waiting_for_a_slot_gets_no_attempt_after_fail_fast() -> (
    None
):
    """Shrunk from `test_every_step_settles_once_and_the_hooks_run_once_around_all_its_attempts`.

    `notify` (ALL_DONE, 2 attempts, 1 s apart) fails its first attempt at 0 and waits for
    the only slot, which `bad` holds until it fails at 2. Fail-fast cancels `notify`, which
    was in flight; `take()` must not hand it the slot `bad` freed (it did, counting a
    second attempt that never began). It ends CANCELLED after the one attempt it started.
    """
    calls: list[float] = []

    async def notify() -> None:
        calls.append(trio.current_time())
        raise ValueError("flaky")

    async def bad() -> None:
        await trio.sleep(2)
        raise RuntimeError("bad")

    graph = Graph(
        [
            exegraph.Step(
                "notify", notify, trigger_rule=ALL_DONE, retry=Retry(attempts=2, delay=1)
            ),
            exegraph.Step("bad", bad),
        ]
    )
    options = RunOptions(max_concurrency=1, error_policy=ErrorPolicy.FAIL_FAST)
    result = trio.run(
        exegraph.run_with_result,
        graph,
        options,
        clock=trio.testing.MockClock(autojump_threshold=0),
    )
    assert calls == [0.0]
    assert (result["notify"].status, result["notify"].attempts) == (CANCELLED, 1)
    assert (result["notify"].start, result["notify"].end) == (0.0, 0.0)
