"""`RunResult` and `StepTiming`: what a run reports, in completion order and exact times."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import attrs
import pytest
import trio

import exegraph_trio as exegraph
from exegraph_trio import ErrorPolicy, Graph, RunOptions, Step, StepStatus, StepTiming
from support import Recorder


async def test_timings_come_in_completion_order_with_exact_times(
    autojump_clock: trio.testing.MockClock,
) -> None:
    rec = Recorder()
    start = trio.current_time()
    graph = Graph(
        [rec.step("slow", 3), rec.step("fast", 1), rec.step("next", 1, depends_on=["fast"])]
    )
    result = await exegraph.run_with_result(graph)
    assert [(t.name, t.start, t.end, t.duration) for t in result.steps] == [
        ("fast", start, start + 1, 1),
        ("next", start + 1, start + 2, 1),
        ("slow", start, start + 3, 3),
    ]
    assert result.total_duration == 3
    assert result.ok
    assert result.error is None


async def test_a_result_reads_like_a_mapping_of_names_to_timings(
    autojump_clock: trio.testing.MockClock,
) -> None:
    rec = Recorder()
    graph = Graph([rec.step("a", 1, error=ValueError("x")), rec.step("b", depends_on=["a"])])
    result = await exegraph.run_with_result(graph)
    assert len(result) == 2
    assert "a" in result
    assert "zzz" not in result
    assert result["a"].status is StepStatus.FAILED
    assert [t.name for t in result] == ["a", "b"]
    assert [t.name for t in result.with_status(StepStatus.SKIPPED)] == ["b"]
    with pytest.raises(KeyError, match="zzz"):
        result["zzz"]


async def test_a_skipped_step_has_no_times_and_zero_duration(
    autojump_clock: trio.testing.MockClock,
) -> None:
    rec = Recorder()
    graph = Graph([rec.step("a", 1, error=ValueError()), rec.step("b", depends_on=["a"])])
    timing = (await exegraph.run_with_result(graph))["b"]
    assert (timing.start, timing.end, timing.duration) == (None, None, 0.0)
    assert isinstance(timing.error, exegraph.StepSkippedError)


async def test_the_table_lists_every_step(autojump_clock: trio.testing.MockClock) -> None:
    rec = Recorder()
    graph = Graph(
        [rec.step("build", 2), rec.step("test", 1, depends_on=["build"], error=ValueError("red"))]
    )
    table = (
        await exegraph.run_with_result(
            graph, RunOptions(error_policy=ErrorPolicy.CONTINUE_ON_ERROR)
        )
    ).table()
    lines = table.splitlines()
    assert lines[0].split() == ["step", "status", "start", "duration", "error"]
    assert lines[1].split() == ["build", "Done", "0.000", "2.000"]
    assert lines[2].split() == ["test", "Failed", "2.000", "1.000", "ValueError:", "red"]
    assert lines[3] == "2 steps in 3.000 s: 1 done, 1 failed"


async def test_the_table_pads_names_by_the_cells_a_terminal_gives_them(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # Two cells for a wide character (CJK, most emoji), none for a combining accent.
    rec = Recorder()
    graph = Graph([rec.step("🚀 日本", 1), rec.step("build", 1, depends_on=["🚀 日本"])])
    assert (await exegraph.run_with_result(graph)).table().splitlines()[:3] == [
        "step     status        start  duration  error",
        "🚀 日本  Done          0.000     1.000",
        "build    Done          1.000     1.000",
    ]


async def test_the_table_shows_what_a_teardown_raised(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def db() -> AsyncIterator[str]:
        yield "conn"
        raise OSError("could not drop database")

    graph = Graph([Step("db", db), Recorder().step("migrate", 1, depends_on=["db"])])
    result = await exegraph.run_with_result(graph)
    lines = result.table().splitlines()
    assert lines[1].split(maxsplit=4) == [
        "db",
        "Done",
        "0.000",
        "0.000",
        "teardown failed: OSError: could not drop database",
    ]
    assert lines[2].split() == ["migrate", "Done", "0.000", "1.000"]
    assert lines[3] == "2 steps in 1.000 s: 2 done, 1 teardown failed"


async def test_the_table_ends_with_the_steps_counted_by_status(
    autojump_clock: trio.testing.MockClock,
) -> None:
    rec = Recorder()
    graph = Graph(
        [
            rec.step("slow", 5),
            rec.step("fails", 1, error=ValueError("red")),
            rec.step("after", 1, depends_on=["fails"]),
        ]
    )
    result = await exegraph.run_with_result(graph)
    assert result.table().splitlines()[-1] == "3 steps in 1.000 s: 1 failed, 1 skipped, 1 cancelled"


async def test_the_table_of_a_run_where_everything_succeeded_says_all_done(
    autojump_clock: trio.testing.MockClock,
) -> None:
    rec = Recorder()
    one = await exegraph.run_with_result(Graph([rec.step("only", 2)]))
    assert one.table().splitlines()[-1] == "1 step in 2.000 s: all done"
    two = await exegraph.run_with_result(Graph([rec.step("a", 1), rec.step("b", 1)]))
    assert two.table().splitlines()[-1] == "2 steps in 1.000 s: all done"
    empty = await exegraph.run_with_result(Graph())
    assert empty.table().splitlines()[-1] == "0 steps in 0.000 s: none ran"


def test_statuses_and_policies_print_as_words() -> None:
    assert [str(s) for s in StepStatus] == [
        "Pending",
        "Running",
        "Done",
        "Failed",
        "Skipped",
        "Cancelled",
    ]
    assert str(ErrorPolicy.FAIL_FAST) == "FailFast"
    assert str(ErrorPolicy.CONTINUE_ON_ERROR) == "ContinueOnError"


def test_timings_are_frozen_values() -> None:
    timing = StepTiming("a", StepStatus.DONE, 1.0, 3.5)
    assert timing.duration == 2.5
    assert timing == StepTiming("a", StepStatus.DONE, 1.0, 3.5)


class _Unprintable(Exception):
    def __str__(self) -> str:
        raise ValueError("str() fails")


def test_the_table_survives_an_exception_whose_str_fails() -> None:
    result = exegraph.RunResult(
        (StepTiming("a", StepStatus.FAILED, 0.0, 1.0, _Unprintable()),), 1.0
    )
    assert "_Unprintable: <exception str() failed>" in result.table()


def test_the_table_keeps_a_multi_line_message_on_one_row() -> None:
    error = ValueError("first line\nsecond line")
    result = exegraph.RunResult((StepTiming("a", StepStatus.FAILED, 0.0, 1.0, error),), 1.0)
    row = result.table().splitlines()[1]
    assert row.endswith("ValueError: first line ⏎ second line")


def test_the_engines_fast_timing_is_a_step_timing_like_any_other() -> None:
    # The driver makes its timings with `_timing`, which fills a writable twin of the
    # class and then gives it StepTiming's class; a field added to StepTiming without it
    # would be left unset (or the layouts would differ), and this fails.
    from exegraph_trio._result import _Fields, _timing

    assert _Fields.__slots__ == StepTiming.__slots__  # type: ignore[attr-defined]

    error, earlier, teardown = ValueError("x"), (OSError("y"),), RuntimeError("z")
    values = ("a", StepStatus.FAILED, 1.0, 2.5, error, b"v", 2, earlier, teardown, 0.5)
    times = (1.0, 1.5, 2.0, 2.5)  # two attempts' starts and ends (a private field)
    fields = attrs.fields(StepTiming)
    assert len(fields) == len(values) + 1
    fast, slow = _timing(*values, times), StepTiming(*values, _attempt_times=times)
    assert type(fast) is StepTiming
    for field in fields:
        assert getattr(fast, field.name) is getattr(slow, field.name)
    assert fast == slow
    assert hash(fast) == hash(slow)
    assert repr(fast) == repr(slow)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        fast.start = 0.0  # type: ignore[misc]


# A run's `RunResult` makes its `StepTiming`s when they are first read (an instrument's
# `run_done` that only counts, such as `Progress`, never makes them); it must read, compare,
# copy and pickle like a result made by hand.


async def _value() -> int:
    return 7


async def _boom() -> None:
    raise ValueError("boom")


async def _a_result() -> exegraph.RunResult:
    graph = Graph(
        [
            exegraph.Step("value", _value),
            exegraph.Step("boom", _boom),
            exegraph.Step("after", _value, depends_on=["boom"]),
        ]
    )
    options = RunOptions(error_policy=ErrorPolicy.CONTINUE_ON_ERROR)
    return await exegraph.run_with_result(graph, options)


_NAMES = ["after", "boom", "value"]  # sorted: which of `boom` and `value` ends first is Trio's


def _by_hand(result: exegraph.RunResult) -> exegraph.RunResult:
    return exegraph.RunResult(
        tuple(result.steps),
        result.total_duration,
        result.error,
        graph=result.graph,
        _stopped=result._stopped,
    )


async def test_a_runs_result_reads_compares_and_hashes_like_one_made_by_hand(
    autojump_clock: trio.testing.MockClock,
) -> None:
    import copy

    for read_first in ("steps", "index", "eq", "repr", "hash"):
        result = await _a_result()
        if read_first == "steps":
            assert sorted(t.name for t in result.steps) == _NAMES
        elif read_first == "index":
            assert result["value"].value == 7
        elif read_first == "eq":
            assert result == copy.copy(result)  # (made by `__reduce__` from its fields)
        elif read_first == "repr":
            assert "StepTiming(name='boom'" in repr(result)
        else:
            assert hash(result) == hash(_by_hand(result))
        assert result.steps is result.steps  # made once, then kept
        assert sorted(t.name for t in result) == _NAMES
        assert result["after"].status is StepStatus.SKIPPED
        assert repr(result) == repr(_by_hand(result))
        assert result == _by_hand(result)
        assert not result.ok


async def test_a_runs_result_pickles_and_copies_with_its_timings(
    autojump_clock: trio.testing.MockClock,
) -> None:
    import copy
    import pickle

    def pickled(result: exegraph.RunResult) -> exegraph.RunResult:
        clone: exegraph.RunResult = pickle.loads(pickle.dumps(result))
        return clone

    clone_of: Callable[[exegraph.RunResult], exegraph.RunResult]
    for clone_of in (pickled, copy.copy, copy.deepcopy):
        result = await _a_result()
        clone = clone_of(result)
        assert clone == result
        assert [t.name for t in clone] == [t.name for t in result]
        assert clone["value"].value == 7
        assert clone.graph is not None
        assert clone.critical_path() == result.critical_path()
        assert not clone.ok


@pytest.fixture
def made(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the `StepTiming`s the driver makes, in order, from now on."""
    from exegraph_trio import _driver

    made: list[str] = []
    real = _driver._timing  # type: ignore[attr-defined]

    def counting(name: str, *rest: object) -> StepTiming:
        made.append(name)
        return real(name, *rest)  # type: ignore[arg-type]

    monkeypatch.setattr(_driver, "_timing", counting)
    return made


async def test_a_result_nobody_reads_makes_no_timings(
    autojump_clock: trio.testing.MockClock, made: list[str]
) -> None:

    class Counts(exegraph.Instrument):
        def run_done(self, run: exegraph.RunInfo, result: exegraph.RunResult) -> None:
            self.result = result
            self.ok = result.error is None and result.total_duration == 0

    async def noop() -> None:
        pass

    counts = Counts()
    graph = Graph(exegraph.Step(f"s{i}", noop) for i in range(100))
    await exegraph.run(graph, RunOptions(instruments=[counts]))
    assert counts.ok
    assert made == []
    assert len(counts.result.steps) == 100  # read later: made then, from the run's facts
    assert sorted(made) == sorted(f"s{i}" for i in range(100))
    assert all(t.status is StepStatus.DONE for t in counts.result)


def test_a_result_made_by_hand_has_no_attribute_it_does_not_declare() -> None:
    result = exegraph.RunResult((StepTiming("a", StepStatus.DONE, 0.0, 1.0),), 1.0)
    with pytest.raises(AttributeError, match="'RunResult' object has no attribute 'stpes'"):
        result.stpes  # type: ignore[attr-defined]  # noqa: B018
    assert result["a"].end == 1.0


def test_an_attribute_error_inside_a_property_is_not_reported_as_a_missing_property() -> None:
    # `__getattr__` (which makes a run's result's timings) is also what Python calls when
    # a property raises AttributeError: the property's own error must come out.
    @attrs.frozen
    class Named:
        name: str  # no `status`

    result = exegraph.RunResult((Named("a"),), 1.0)  # type: ignore[arg-type]
    with pytest.raises(AttributeError, match="'Named' object has no attribute 'status'"):
        _ = result.ok


async def test_a_deep_copy_of_a_result_keeps_a_cycle_back_to_it(
    autojump_clock: trio.testing.MockClock,
) -> None:
    import copy

    result = await _a_result()
    holder: dict[str, object] = {"result": result}
    object.__setattr__(result, "error", holder)  # (a cycle: result -> holder -> result)
    clone = copy.deepcopy(result)
    assert clone.error["result"] is clone  # type: ignore[index]
    assert sorted(t.name for t in clone) == _NAMES


async def test_threads_reading_a_new_result_at_once_make_its_timings_once(
    autojump_clock: trio.testing.MockClock, made: list[str]
) -> None:
    import threading

    async def noop() -> None:
        pass

    result = await exegraph.run_with_result(
        Graph(exegraph.Step(f"s{i}", noop) for i in range(2000))
    )
    assert made == []  # (a run without instruments makes none)
    seen: list[object] = []
    start = threading.Barrier(8)

    def read() -> None:
        start.wait()
        seen.append(result.steps)

    threads = [threading.Thread(target=read) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(made) == 2000
    assert all(steps is result.steps for steps in seen)


async def test_the_repr_of_a_big_result_its_error_and_its_plan_shows_the_first_twenty(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # A run of 10⁶ steps made reprs of hundreds of megabytes (a REPL echo, an assertion).
    async def bad() -> None:
        raise ValueError("bad")

    graph = exegraph.Graph([exegraph.Step(f"s{i}", bad) for i in range(100)])
    result = await exegraph.run_with_result(
        graph, exegraph.RunOptions(error_policy=exegraph.ErrorPolicy.CONTINUE_ON_ERROR)
    )
    assert result.error is not None
    for shown in (repr(result), repr(result.error), repr(exegraph.plan(graph))):
        assert "…and 80 more" in shown
        assert "'s19'" in shown or "ValueError('bad')" in shown
        assert len(shown) < 5_000
    assert repr(result.error).startswith("RunError('100 of 100 steps failed', [ValueError(")


def test_a_very_long_name_does_not_widen_every_row_of_the_table() -> None:
    # The name column stops at 40 characters: a name of 10⁵ overflows its own row, and
    # the other rows stay short (every row was padded to it: gigabytes at 10⁴ steps).
    long = "x" * 100_000
    steps = [StepTiming(long, StepStatus.DONE, 0.0, 1.0, attempts=1)] + [
        StepTiming(f"s{i}", StepStatus.DONE, 0.0, 1.0, attempts=1) for i in range(10)
    ]
    table = exegraph.RunResult(tuple(steps), 1.0).table()
    lines = table.splitlines()
    assert lines[1].startswith(long + "  Done")
    assert all(len(line) < 100 for line in lines[2:])
    assert lines[2].startswith("s0" + " " * 38 + "  Done")
