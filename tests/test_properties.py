"""The scheduler's invariants on random graphs (hypothesis).

Charter: each example runs its own `trio.run` under `MockClock(autojump_threshold=0)`, so
durations are virtual and exact; the number of examples is modest to keep CI fast, and
every property is checked on every example.
"""

from __future__ import annotations

import itertools
import logging
import math

import attrs
import trio
import trio.testing
from hypothesis import example, given, settings
from hypothesis import strategies as st

import exegraph_trio as exegraph
from exegraph_trio import ErrorPolicy, Graph, RunOptions, RunResult, StepStatus, StepTiming


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


# -- cancellation from outside ---------------------------------------------------------------
#
# Every event of a run is noted with a global sequence number and its virtual time, so that
# "before" and "after" are exact even within one clock instant. A `move_on_after(T)` scope
# is cancelled when Trio expires deadlines at `T`, before any task runs at `T`: its key is
# `(T, -1)`. A sibling task's `cancel()` has the key of the note it makes just before it.


class CleanupError(Exception):
    """A step's shielded cleanup failed after it was cancelled: a real error."""


@attrs.frozen
class CancelCase:
    """A random DAG cancelled from outside at `cancel_at` (a deadline, or a sibling task)."""

    deps: tuple[tuple[int, ...], ...]
    durations: tuple[int, ...]
    failing: frozenset[int]
    timeouts: tuple[int | None, ...]
    cleanup: dict[int, int]
    """Steps that, once cancelled, sleep this long shielded before re-raising."""
    cleanup_fails: frozenset[int]
    """Of those, the steps whose cleanup raises `CleanupError` instead."""
    bound: int
    policy: ErrorPolicy
    cancel_at: float
    sibling: bool


def dags(draw: st.DrawFn, most: int) -> tuple[tuple[int, ...], ...]:
    n = draw(st.integers(1, most))
    return tuple(
        tuple(sorted(draw(st.sets(st.integers(0, i - 1), max_size=min(i, 3))))) if i else ()
        for i in range(n)
    )


@st.composite
def cancel_cases(draw: st.DrawFn) -> CancelCase:
    deps = dags(draw, 12)
    n = len(deps)
    steps = st.integers(0, n - 1)
    cleanup = draw(st.dictionaries(steps, st.integers(1, 3), max_size=4))
    whole = draw(st.integers(0, 10))
    return CancelCase(
        deps=deps,
        durations=tuple(draw(st.lists(st.integers(0, 5), min_size=n, max_size=n))),
        failing=frozenset(draw(st.sets(steps, max_size=3))),
        timeouts=tuple(draw(st.lists(st.none() | st.integers(1, 4), min_size=n, max_size=n))),
        cleanup=cleanup,
        cleanup_fails=frozenset(i for i in cleanup if draw(st.booleans())),
        bound=draw(st.integers(1, 4)),
        policy=draw(st.sampled_from(ErrorPolicy)),
        cancel_at=whole + draw(st.sampled_from([0.0, 0.5])),
        sibling=draw(st.booleans()),
    )


Key = tuple[float, int]
"""When something happened: (virtual time, sequence number)."""


@attrs.define
class Log:
    """Notes of everything that happened in one run, in order."""

    notes: list[tuple[int, str, str, float]] = attrs.field(factory=list)
    seq: itertools.count[int] = attrs.field(factory=itertools.count)

    def note(self, kind: str, name: str = "") -> Key:
        seq, now = next(self.seq), trio.current_time()
        self.notes.append((seq, kind, name, now))
        return now, seq

    def keys(self, kind: str) -> dict[str, list[Key]]:
        found: dict[str, list[Key]] = {}
        for seq, k, name, t in self.notes:
            if k == kind:
                found.setdefault(name, []).append((t, seq))
        return found


class RecordRun(exegraph.Instrument):
    """Keeps the `RunResult` given to `run_done`, and notes when the run began and ended."""

    def __init__(self, log: Log) -> None:
        self.log = log
        self.results: list[RunResult] = []
        self.started: Key | None = None
        self.done: Key | None = None

    def run_started(self, run: exegraph.RunInfo) -> None:
        self.started = self.log.note("run-started")

    def run_done(self, run: exegraph.RunInfo, result: RunResult) -> None:
        self.done = self.log.note("run-done")
        self.results.append(result)


@attrs.define
class CancelOutcome:
    log: Log
    recorder: RecordRun
    raised: BaseException | None
    cancelled_caught: bool
    cancel_key: Key | None
    """When the outside cancellation came (`None`: a sibling that never got to cancel)."""
    step_errors: dict[str, Exception] = attrs.field(factory=dict)
    """The exception each step raised of its own."""


def run_cancel_case(case: CancelCase) -> CancelOutcome:
    log = Log()
    recorder = RecordRun(log)
    outcome = CancelOutcome(log, recorder, None, False, None)

    def own_error(i: int, error: Exception) -> Exception:
        log.note("raise", f"n{i}")
        outcome.step_errors[f"n{i}"] = error
        return error

    def action(i: int) -> exegraph.Action:
        async def act() -> None:
            log.note("start", f"n{i}")
            try:
                await trio.sleep(case.durations[i])
            except trio.Cancelled:
                if i in case.cleanup:
                    with trio.CancelScope(shield=True):
                        await trio.sleep(case.cleanup[i])
                    if i in case.cleanup_fails:
                        raise own_error(i, CleanupError(i)) from None
                raise
            if i in case.failing:
                raise own_error(i, ValueError(i))

        return act

    graph = Graph(
        exegraph.Step(
            f"n{i}",
            action(i),
            depends_on=[f"n{j}" for j in case.deps[i]],
            timeout=case.timeouts[i],
        )
        for i in range(len(case.deps))
    )
    options = RunOptions(
        max_concurrency=case.bound,
        error_policy=case.policy,
        on_step_start=lambda name: log.note("hook-start", name),
        on_step_done=lambda name, error: log.note("hook-done", name),
        instruments=[recorder],
    )

    async def canceller(scope: trio.CancelScope) -> None:
        await trio.sleep(case.cancel_at)
        outcome.cancel_key = log.note("cancel")
        scope.cancel()

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            if case.sibling:
                scope = trio.CancelScope()
                nursery.start_soon(canceller, scope)
            else:
                scope = trio.move_on_after(case.cancel_at)
                outcome.cancel_key = (case.cancel_at, -1)
            try:
                with scope:
                    await exegraph.run(graph, options)
            except BaseException as exc:
                outcome.raised = exc
            outcome.cancelled_caught = scope.cancelled_caught
            nursery.cancel_scope.cancel()

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    return outcome


def real_errors(result: RunResult) -> list[BaseException]:
    """The steps' own exceptions: what a failed step raised, not a timeout or a skip."""
    return [
        t.error
        for t in result.steps
        if t.status is StepStatus.FAILED
        and t.error is not None
        and not isinstance(t.error, exegraph.StepTimeoutError)
    ]


@settings(max_examples=120, deadline=None)
@given(cancel_cases())
@example(  # at t=4 n2 fails, n0's cleanup of its own timeout fails, the scope cancels
    CancelCase(
        deps=((), (), ()),
        durations=(1, 1, 3),
        failing=frozenset({2}),
        timeouts=(1, None, None),
        cleanup={1: 1, 0: 3},
        cleanup_fails=frozenset({0}),
        bound=2,
        policy=ErrorPolicy.FAIL_FAST,
        cancel_at=4.0,
        sibling=True,
    )
)
def test_a_run_cancelled_from_outside_loses_nothing_and_ends_as_a_nursery_would(
    case: CancelCase,
) -> None:
    out = run_cancel_case(case)
    log, recorder = out.log, out.recorder
    n = len(case.deps)
    names = {f"n{i}" for i in range(n)}

    # run_done got one RunResult, with exactly one timing for every step.
    assert len(recorder.results) == 1
    result = recorder.results[0]
    assert sorted(t.name for t in result.steps) == sorted(names)
    assert recorder.started is not None
    assert recorder.done is not None

    # The hooks: on_step_done once for every step that started, never for the others.
    hook_starts, hook_dones, starts = (
        log.keys("hook-start"),
        log.keys("hook-done"),
        log.keys("start"),
    )
    assert all(len(keys) == 1 for keys in hook_starts.values())
    assert all(len(keys) == 1 for keys in hook_dones.values())
    assert set(hook_dones) == set(hook_starts) == set(starts)
    assert {t.name for t in result.steps if t.start is not None} == set(starts)

    # Timings lie within the run.
    began, ended = recorder.started[0], recorder.done[0]
    for t in result.steps:
        if t.start is not None:
            assert t.end is not None
            assert began <= t.start <= t.end <= ended

    # When the run was first cancelled: from outside (if that came before the run ended),
    # or by fail-fast (its first failure's on_step_done note comes just before).
    reached = out.cancel_key is not None and out.cancel_key < recorder.done
    first: Key = out.cancel_key if reached and out.cancel_key is not None else (math.inf, 0)
    if case.policy is ErrorPolicy.FAIL_FAST:
        failed_at = [hook_dones[t.name][0] for t in result.with_status(StepStatus.FAILED)]
        first = min([first, *failed_at])
    first_time = first[0]

    # Nothing starts after the run was cancelled.
    for name, (key,) in hook_starts.items():
        assert key < first, name

    for i in range(n):
        t = result[f"n{i}"]
        timeout = case.timeouts[i]
        own_deadline = None if t.start is None or timeout is None else t.start + timeout
        if t.status is StepStatus.CANCELLED:
            assert t.start is not None
            assert t.end is not None
            assert starts[t.name][0] < first  # it was in flight
            assert t.end >= first_time
            assert own_deadline is None or own_deadline > first_time, t
        elif isinstance(t.error, exegraph.StepTimeoutError):
            assert t.status is StepStatus.FAILED
            assert own_deadline is not None
            assert own_deadline <= first_time, t
            assert t.end is not None
            assert t.end >= own_deadline
        elif t.status is StepStatus.DONE:
            assert t.start is not None
            assert t.end == t.start + case.durations[i] <= first_time
        elif isinstance(t.error, ValueError):
            assert t.status is StepStatus.FAILED
            assert i in case.failing
        elif isinstance(t.error, CleanupError):
            assert t.status is StepStatus.FAILED
            assert i in case.cleanup_fails
        else:
            assert t.status is StepStatus.SKIPPED, t

    # How the run ended.
    errors = real_errors(result)
    # Raised while the enclosing scope was cancelling the run: any error raised after the
    # outside cancellation (Trio cancels at once; SPEC, "nothing is lost"). A cleanup
    # that failed while fail-fast cancelled its step, before that, failed like any
    # earlier failure: it is in the result, not raised.
    outside_key = out.cancel_key if reached else None
    raised_late = [
        key
        for keys in log.keys("raise").values()
        for key in keys
        if outside_key is not None and key > outside_key
    ]
    if not reached:
        assert not out.cancelled_caught
        if result.error is None:
            assert out.raised is None
        else:
            assert isinstance(out.raised, exegraph.RunError), out.raised
            assert [id(e) for e in out.raised.exceptions] == [
                id(e) for e in result.error.exceptions
            ]
    elif raised_late:
        # A step raised a real error while the run was being cancelled: a RunError holding
        # every real error escapes, as from a nursery.
        assert isinstance(out.raised, exegraph.RunError), out.raised
        members = {id(e) for e in out.raised.exceptions}
        assert {id(e) for e in errors} <= members
        failed = {id(t.error) for t in result.with_status(StepStatus.FAILED)}
        assert members <= failed
    else:
        assert out.raised is None, out.raised
        assert out.cancelled_caught
    # Every real error reached the RunResult given to run_done, as its step's error.
    for name, error in out.step_errors.items():
        assert result[name].status is StepStatus.FAILED
        assert result[name].error is error
    assert len(errors) == len(out.step_errors)


def started_after_an_outside_cancellation() -> set[str]:
    """`a` holds the only slot and `b` waits for it; the scope is cancelled at 0.5."""
    log = Log()

    async def sleeper() -> None:
        await trio.sleep(1)

    graph = Graph([exegraph.Step("a", sleeper), exegraph.Step("b", sleeper)])
    options = RunOptions(
        max_concurrency=1,
        on_step_start=lambda name: log.note("hook-start", name),
        on_step_done=lambda name, error: log.note("hook-done", name),
    )
    results: list[RunResult] = []

    async def main() -> None:
        with trio.move_on_after(0.5):
            results.append(await exegraph.run_with_result(graph, options))

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    assert not results
    return set(log.keys("hook-start"))


def test_regression_no_step_starts_after_an_outside_cancellation() -> None:
    """Shrunk from the property above.

    The enclosing scope is cancelled at 0.5 while `a` sleeps. `a` ends by cancellation and
    frees the slot before the dispatcher has stopped the core, so `b` is spawned; whenever
    Trio runs `b`'s task before the dispatcher (its batch order is random, so this is tried
    30 times), `b`'s hooks and action start after the cancellation and it ends CANCELLED,
    though it was never in flight when the cancellation came. It must be SKIPPED, unstarted.
    """
    for _ in range(30):
        assert started_after_an_outside_cancellation() == {"a"}


def test_regression_a_step_spawned_before_an_outside_cancellation_does_not_begin_after_it() -> None:
    """Shrunk from the property above: four independent steps of no duration, two slots.

    `n0` and `n1` end at 0; the last of them to end spawns `n2` and `n3`. A sibling task
    then cancels the enclosing scope, still at 0, while the dispatcher, woken by `n1`'s
    end, is runnable and not waiting (so its abort callback does not note the
    cancellation). Whenever Trio runs `n2`'s and `n3`'s tasks before the dispatcher (the
    batch order is random, so this is tried 30 times), they find the run not stopped, call
    their hooks and actions after the cancellation, and end CANCELLED though they were not
    in flight when it came. They must be withdrawn (SKIPPED) without starting.
    """
    case = CancelCase(
        deps=((), (), (), ()),
        durations=(0, 0, 0, 0),
        failing=frozenset(),
        timeouts=(None, None, None, None),
        cleanup={},
        cleanup_fails=frozenset(),
        bound=2,
        policy=ErrorPolicy.FAIL_FAST,
        cancel_at=0.0,
        sibling=True,
    )
    for _ in range(30):
        out = run_cancel_case(case)
        assert out.cancel_key is not None
        late = {name for name, (key,) in out.log.keys("hook-start").items() if key > out.cancel_key}
        assert not late
        result = out.recorder.results[0]
        assert result["n2"].status is StepStatus.SKIPPED
        assert result["n3"].status is StepStatus.SKIPPED
        assert out.cancelled_caught


# -- failing observers -----------------------------------------------------------------------


class ObserverError(Exception):
    """What a failing hook or instrument raises."""


@attrs.frozen
class ObserverCase:
    """A random DAG whose hooks and instruments raise at random calls.

    Durations are distinct powers of two, so no two steps ever end at the same instant:
    the run's outcome does not depend on the order Trio runs a batch in, and the run can
    be compared with the same run without the failing observers.
    """

    deps: tuple[tuple[int, ...], ...]
    durations: tuple[float, ...]
    failing: frozenset[int]
    bound: int
    policy: ErrorPolicy
    start_fails_at: int | None
    """The call of `on_step_start` that raises (counting from 0); `None`: none does."""
    done_fails_at: int | None
    instruments_fail_at: tuple[int | None, ...]
    """For each instrument, the call (of any of its methods) that raises."""


@st.composite
def observer_cases(draw: st.DrawFn) -> ObserverCase:
    deps = dags(draw, 12)
    n = len(deps)
    calls = st.none() | st.integers(0, n + 2)
    return ObserverCase(
        deps=deps,
        durations=tuple(2.0 ** (e - 4) for e in draw(st.permutations(range(n)))),
        failing=frozenset(draw(st.sets(st.integers(0, n - 1), max_size=3))),
        bound=draw(st.integers(1, 4)),
        policy=draw(st.sampled_from(ErrorPolicy)),
        start_fails_at=draw(calls),
        done_fails_at=draw(calls),
        instruments_fail_at=tuple(draw(st.lists(calls, max_size=3))),
    )


class Calls:
    """Counts calls to one observer, raising `ObserverError` at call `fails_at`."""

    def __init__(self, log: Log, label: str, fails_at: int | None) -> None:
        self.log = log
        self.label = label
        self.fails_at = fails_at
        self.calls: list[str] = []
        self.raised: ObserverError | None = None

    def call(self, what: str) -> None:
        self.log.note(self.label, what)
        self.calls.append(what)
        if len(self.calls) - 1 == self.fails_at:
            self.raised = ObserverError(self.label, what)
            raise self.raised


class FailingInstrument(exegraph.Instrument):
    def __init__(self, calls: Calls) -> None:
        self.c = calls

    def run_started(self, run: exegraph.RunInfo) -> None:
        self.c.call("run_started")

    def step_started(self, run: exegraph.RunInfo, step: exegraph.Step) -> None:
        self.c.call(f"step_started {step.name}")

    def step_done(self, run: exegraph.RunInfo, step: exegraph.Step, timing: StepTiming) -> None:
        self.c.call(f"step_done {step.name}")

    def step_skipped(self, run: exegraph.RunInfo, step: exegraph.Step, timing: StepTiming) -> None:
        self.c.call(f"step_skipped {step.name}")

    def run_done(self, run: exegraph.RunInfo, result: RunResult) -> None:
        self.c.call("run_done")


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def observer_graph(case: ObserverCase, log: Log) -> Graph:
    def action(i: int) -> exegraph.Action:
        async def act() -> None:
            log.note("start", f"n{i}")
            await trio.sleep(case.durations[i])
            if i in case.failing:
                raise ValueError(i)

        return act

    return Graph(
        exegraph.Step(f"n{i}", action(i), depends_on=[f"n{j}" for j in case.deps[i]])
        for i in range(len(case.deps))
    )


def outcome_of(result: RunResult) -> tuple[dict[str, StepStatus], list[str]]:
    """What a run decided: every step's status, and the RunError's members (described)."""
    members = [] if result.error is None else result.error.exceptions
    described = sorted(
        f"{type(e).__name__}{e.args!r}"
        + (
            f" {e.step_name} {e.failed_dependency}"
            if isinstance(e, exegraph.StepSkippedError)
            else ""
        )
        for e in members
    )
    return {t.name: t.status for t in result.steps}, described


@settings(max_examples=80, deadline=None)
@given(observer_cases())
def test_failing_hooks_and_instruments_are_logged_disabled_and_change_nothing(
    case: ObserverCase,
) -> None:
    clock = trio.testing.MockClock
    baseline = trio.run(
        exegraph.run_with_result,
        observer_graph(case, Log()),
        RunOptions(max_concurrency=case.bound, error_policy=case.policy),
        clock=clock(autojump_threshold=0),
    )

    log = Log()
    on_start = Calls(log, "on_step_start", case.start_fails_at)
    on_done = Calls(log, "on_step_done", case.done_fails_at)
    instruments = [
        Calls(log, f"instrument{k}", fails_at)
        for k, fails_at in enumerate(case.instruments_fail_at)
    ]
    options = RunOptions(
        max_concurrency=case.bound,
        error_policy=case.policy,
        on_step_start=on_start.call,
        on_step_done=lambda name, error: on_done.call(name),
        instruments=[FailingInstrument(c) for c in instruments],
    )
    handler = Collect()
    logger = logging.getLogger("exegraph_trio")
    logger.addHandler(handler)
    try:
        result = trio.run(
            exegraph.run_with_result,
            observer_graph(case, log),
            options,
            clock=clock(autojump_threshold=0),
        )
    finally:
        logger.removeHandler(handler)

    # The outcome is the same as without the observers.
    assert outcome_of(result) == outcome_of(baseline)

    # Each observer that raised was logged once, with its exception, and never called again.
    observers = [on_start, on_done, *instruments]
    raised = [c.raised for c in observers if c.raised is not None]
    logged = [r.exc_info[1] for r in handler.records if r.exc_info is not None]
    assert len(handler.records) == len(raised)
    assert sorted(map(id, logged)) == sorted(map(id, raised))
    for c in observers:
        if c.raised is not None:
            assert c.fails_at is not None
            assert len(c.calls) == c.fails_at + 1

    # Until it is disabled, each hook is called once for each step that started, in order.
    started = [name for name, keys in sorted(log.keys("start").items(), key=lambda kv: kv[1])]
    finished = [t.name for t in result.steps if t.status is not StepStatus.SKIPPED]
    assert sorted(started) == sorted(finished)
    for hook, order in ((on_start, started), (on_done, finished)):
        if hook.raised is None:
            assert hook.calls == order
        else:
            assert hook.calls == order[: len(hook.calls)]


# -- interrupts ------------------------------------------------------------------------------


@attrs.frozen
class InterruptCase:
    """A random DAG in which one place raises `KeyboardInterrupt`.

    `where` is `("action", i, after)` (step `i` raises it `after` seconds into its action),
    or `(hook, k, 0)` for the `k`-th call of `on_step_start`, `on_step_done` or the
    instrument's methods.
    """

    deps: tuple[tuple[int, ...], ...]
    durations: tuple[int, ...]
    failing: frozenset[int]
    bound: int
    policy: ErrorPolicy
    where: tuple[str, int, int]


@st.composite
def interrupt_cases(draw: st.DrawFn) -> InterruptCase:
    deps = dags(draw, 10)
    n = len(deps)
    durations = tuple(draw(st.lists(st.integers(0, 4), min_size=n, max_size=n)))
    kind = draw(st.sampled_from(["action", "on_step_start", "on_step_done", "instrument"]))
    if kind == "action":
        i = draw(st.integers(0, n - 1))
        where = (kind, i, draw(st.integers(0, durations[i])))
    else:
        where = (kind, draw(st.integers(0, 2 * n + 1)), 0)
    return InterruptCase(
        deps=deps,
        durations=durations,
        failing=frozenset(draw(st.sets(st.integers(0, n - 1), max_size=2))),
        bound=draw(st.integers(1, 4)),
        policy=draw(st.sampled_from(ErrorPolicy)),
        where=where,
    )


@settings(max_examples=100, deadline=None)
@given(interrupt_cases())
def test_an_interrupt_from_a_step_or_a_hook_propagates_itself_and_loses_nothing(
    case: InterruptCase,
) -> None:
    log = Log()
    recorder = RecordRun(log)
    interrupt = KeyboardInterrupt("from the property")
    raised: list[str] = []
    kind, at, after = case.where
    counts = dict.fromkeys(("on_step_start", "on_step_done", "instrument"), 0)

    def maybe_interrupt(place: str) -> None:
        calls = counts[place]
        counts[place] += 1
        if place == kind and calls == at and not raised:
            raised.append(place)
            raise interrupt

    class Interrupting(exegraph.Instrument):
        def run_started(self, run: exegraph.RunInfo) -> None:
            maybe_interrupt("instrument")

        def step_started(self, run: exegraph.RunInfo, step: exegraph.Step) -> None:
            maybe_interrupt("instrument")

        def step_done(self, run: exegraph.RunInfo, step: exegraph.Step, timing: StepTiming) -> None:
            maybe_interrupt("instrument")

        def step_skipped(
            self, run: exegraph.RunInfo, step: exegraph.Step, timing: StepTiming
        ) -> None:
            maybe_interrupt("instrument")

        def run_done(self, run: exegraph.RunInfo, result: RunResult) -> None:
            maybe_interrupt("instrument")

    def action(i: int) -> exegraph.Action:
        async def act() -> None:
            log.note("start", f"n{i}")
            if kind == "action" and at == i:
                await trio.sleep(after)
                raised.append("action")
                raise interrupt
            await trio.sleep(case.durations[i])
            if i in case.failing:
                raise ValueError(i)

        return act

    def on_start(name: str) -> None:
        log.note("hook-start", name)
        maybe_interrupt("on_step_start")

    def on_done(name: str, error: BaseException | None) -> None:
        log.note("hook-done", name)
        maybe_interrupt("on_step_done")

    graph = Graph(
        exegraph.Step(f"n{i}", action(i), depends_on=[f"n{j}" for j in case.deps[i]])
        for i in range(len(case.deps))
    )
    options = RunOptions(
        max_concurrency=case.bound,
        error_policy=case.policy,
        on_step_start=on_start,
        on_step_done=on_done,
        instruments=[recorder, Interrupting()],
    )
    caught: list[BaseException] = []

    async def main() -> None:
        try:
            await exegraph.run(graph, options)
        except BaseException as exc:
            caught.append(exc)

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))

    # run_done got a RunResult with a timing for every step, whatever happened.
    assert len(recorder.results) == 1
    result = recorder.results[0]
    assert sorted(t.name for t in result.steps) == sorted(f"n{i}" for i in range(len(case.deps)))
    # on_step_done once for every step that started.
    hook_starts, hook_dones = log.keys("hook-start"), log.keys("hook-done")
    assert all(len(keys) == 1 for keys in hook_dones.values())
    assert set(hook_dones) == set(hook_starts)
    assert {t.name for t in result.steps if t.start is not None} == set(hook_starts)
    if raised:
        # The very same object, not wrapped in a group.
        assert len(caught) == 1
        assert caught[0] is interrupt
    else:
        assert all(isinstance(exc, exegraph.RunError) for exc in caught)
        assert bool(caught) == (result.error is not None)
