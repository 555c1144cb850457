"""The scheduling rules of the spec, one test (or a few) per rule, in virtual time.

Charter: every test uses the `autojump_clock` fixture, so `trio.sleep` costs nothing and
every time asserted is exact (but the few that test what the clock cannot show: Trio's
wait for I/O, steps that never suspend). Steps that end at the same virtual instant may wake in any
order, so wherever order matters, durations differ.
"""

from __future__ import annotations

import contextvars
import functools
import os

import pytest
import trio

import exegraph_trio as exegraph
from exegraph_trio import Graph, RunOptions
from support import Recorder

# -- rule 1: a step starts as soon as its dependencies are done and a slot is free -------


async def test_there_are_no_level_barriers(autojump_clock: trio.testing.MockClock) -> None:
    rec = Recorder()
    graph = Graph([rec.step("a", 1), rec.step("slow", 5), rec.step("b", 1, depends_on=["a"])])
    await exegraph.run(graph)
    assert rec.times("start") == {"a": 0, "slow": 0, "b": 1}


async def test_a_step_waits_for_all_of_its_dependencies(
    autojump_clock: trio.testing.MockClock,
) -> None:
    rec = Recorder()
    graph = Graph([rec.step("a", 1), rec.step("b", 3), rec.step("c", 1, depends_on=["a", "b"])])
    await exegraph.run(graph)
    assert rec.times("start")["c"] == 3


async def test_a_ready_step_takes_the_first_free_slot(
    autojump_clock: trio.testing.MockClock,
) -> None:
    rec = Recorder()
    graph = Graph([rec.step("a", 1), rec.step("b", 2), rec.step("c", 1)])
    await exegraph.run(graph, RunOptions(max_concurrency=2))
    assert rec.times("start") == {"a": 0, "b": 0, "c": 1}


async def test_a_diamond_runs_its_middle_in_parallel(
    autojump_clock: trio.testing.MockClock,
) -> None:
    rec = Recorder()
    graph = Graph(
        [
            rec.step("top", 1),
            rec.step("left", 2, depends_on=["top"]),
            rec.step("right", 3, depends_on=["top"]),
            rec.step("bottom", 1, depends_on=["left", "right"]),
        ]
    )
    result = await exegraph.run_with_result(graph)
    assert rec.times("start") == {"top": 0, "left": 1, "right": 1, "bottom": 4}
    assert result.total_duration == 5


# -- rule 2: never more than max_concurrency actions at once -----------------------------


@pytest.mark.parametrize("bound", [1, 2, 3, 7])
async def test_never_more_than_max_concurrency_steps_run_at_once(
    autojump_clock: trio.testing.MockClock, bound: int
) -> None:
    rec = Recorder()
    graph = Graph(rec.step(f"s{i}", 1 + i % 3) for i in range(20))
    await exegraph.run(graph, RunOptions(max_concurrency=bound))
    assert rec.max_running == bound


async def test_the_default_bound_is_twice_the_cpu_count(
    autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(os, "cpu_count", lambda: 3)
    rec = Recorder()
    await exegraph.run(Graph(rec.step(f"s{i}", 1) for i in range(20)))
    assert rec.max_running == 6


async def test_a_negative_bound_means_the_default(
    autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(os, "cpu_count", lambda: 1)
    rec = Recorder()
    await exegraph.run(
        Graph(rec.step(f"s{i}", 1) for i in range(9)), RunOptions(max_concurrency=-5)
    )
    assert rec.max_running == 2


async def test_an_unbounded_wide_graph_runs_all_at_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    rec = Recorder()
    result = await exegraph.run_with_result(
        Graph(rec.step(f"s{i}", 1) for i in range(500)), RunOptions(max_concurrency=10_000)
    )
    assert rec.max_running == 500
    assert result.total_duration == 1


# -- rule 3: the higher priority starts first, ties go to the step added first -----------


async def test_with_one_slot_the_order_follows_priority_then_insertion(
    autojump_clock: trio.testing.MockClock,
) -> None:
    rec = Recorder()
    graph = Graph(
        [
            rec.step("lone1", 1),
            rec.step("lone2", 1),
            rec.step("root", 1),  # 3 transitive dependents
            rec.step("mid", 1, depends_on=["root"]),  # 2
            rec.step("leaf1", 1, depends_on=["mid"]),
            rec.step("leaf2", 1, depends_on=["mid"]),
            rec.step("hub", 1),  # 1
            rec.step("after-hub", 1, depends_on=["hub"]),
        ]
    )
    await exegraph.run(graph, RunOptions(max_concurrency=1))
    assert rec.order("start") == [
        "root",
        "mid",
        "hub",
        "lone1",
        "lone2",
        "leaf1",
        "leaf2",
        "after-hub",
    ]


async def test_newly_ready_steps_compete_with_waiting_ones_by_priority(
    autojump_clock: trio.testing.MockClock,
) -> None:
    rec = Recorder()
    graph = Graph(
        [
            rec.step("gate", 1),
            rec.step("filler", 1),
            rec.step("urgent", 1, depends_on=["gate"]),
            rec.step("x", 1, depends_on=["urgent"]),
            rec.step("y", 1, depends_on=["urgent"]),
        ]
    )
    # gate (priority 3) runs first; then urgent (2) beats filler (0), which waited longer;
    # then x and y (0) tie with filler, which was added first.
    await exegraph.run(graph, RunOptions(max_concurrency=1))
    assert rec.order("start") == ["gate", "urgent", "filler", "x", "y"]


# -- rule 4: at most once; hooks wrap the action; dependents wait for on_step_done ---------


async def test_each_step_runs_exactly_once(autojump_clock: trio.testing.MockClock) -> None:
    rec = Recorder()
    names = [f"s{i}" for i in range(30)]
    graph = Graph(
        rec.step(name, i % 4, depends_on=names[max(0, i - 3) : i]) for i, name in enumerate(names)
    )
    await exegraph.run(graph, RunOptions(max_concurrency=3))
    assert sorted(rec.order("start")) == sorted(names)


async def test_hooks_wrap_the_action_and_dependents_wait_for_on_step_done(
    autojump_clock: trio.testing.MockClock,
) -> None:
    rec = Recorder()
    graph = Graph([rec.step("a", 1), rec.step("b", 1, depends_on=["a"])])
    await exegraph.run(graph, rec.hooks())
    assert [(e.kind, e.step) for e in rec.events] == [
        ("hook-start", "a"),
        ("start", "a"),
        ("end", "a"),
        ("hook-done", "a"),
        ("hook-start", "b"),
        ("start", "b"),
        ("end", "b"),
        ("hook-done", "b"),
    ]


# -- rule 6: each step starts in a fresh copy of the caller's context ---------------------

var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")


async def test_steps_see_the_callers_context_but_not_each_others(
    autojump_clock: trio.testing.MockClock,
) -> None:
    seen: dict[str, str] = {}

    def step(name: str, *deps: str) -> exegraph.Step:
        async def action() -> None:
            seen[name] = var.get()
            var.set(f"set by {name}")
            await trio.sleep(1)

        return exegraph.Step(name, action, depends_on=deps)

    var.set("caller")
    graph = Graph([step("a"), step("b", "a"), step("c", "b"), step("d")])
    await exegraph.run(graph, RunOptions(max_concurrency=1))
    assert seen == {"a": "caller", "b": "caller", "c": "caller", "d": "caller"}
    assert var.get() == "caller"


async def test_a_reused_worker_does_not_carry_context_changes_between_steps(
    autojump_clock: trio.testing.MockClock,
) -> None:
    seen: list[str] = []

    async def action() -> None:  # no checkpoint at all: the same worker runs them all
        seen.append(var.get())
        var.set("dirty")

    graph = Graph(
        exegraph.Step(f"s{i}", action, depends_on=[f"s{i - 1}"] if i else []) for i in range(50)
    )
    await exegraph.run(graph)
    assert seen == ["unset"] * 50
    assert var.get() == "unset"


async def test_a_context_variable_set_by_on_step_start_is_seen_by_its_action_and_on_step_done(
    autojump_clock: trio.testing.MockClock,
) -> None:
    in_action: dict[str, str] = {}
    in_done: dict[str, str] = {}

    def action(name: str) -> exegraph.Action:
        async def act() -> None:
            in_action[name] = var.get()
            await trio.sleep(len(name))

        return act

    options = RunOptions(
        on_step_start=lambda name: var.set(f"hook:{name}"),
        on_step_done=lambda name, error: in_done.__setitem__(name, var.get()),
    )
    graph = Graph([exegraph.Step("a", action("a")), exegraph.Step("bb", action("bb"))])
    await exegraph.run(graph, options)
    assert in_action == {"a": "hook:a", "bb": "hook:bb"}
    assert in_done == {"a": "hook:a", "bb": "hook:bb"}
    assert var.get() == "unset"


async def test_tasks_spawned_by_an_action_inherit_the_steps_context(
    autojump_clock: trio.testing.MockClock,
) -> None:
    seen: list[str] = []

    async def child() -> None:
        await trio.sleep(1)
        seen.append(var.get())

    async def action() -> None:
        var.set("step value")
        async with trio.open_nursery() as nursery:
            nursery.start_soon(child)
            nursery.start_soon(trio.to_thread.run_sync, lambda: seen.append(var.get()))

    await exegraph.run(Graph([exegraph.Step("a", action)]))
    assert seen == ["step value", "step value"]


# -- odds and ends of running ---------------------------------------------------------


async def test_an_empty_graph_runs_and_reports_nothing() -> None:
    result = await exegraph.run_with_result(Graph())
    assert result.ok
    assert result.steps == ()
    assert result.total_duration == 0


async def test_an_action_may_be_any_awaitable_factory(
    autojump_clock: trio.testing.MockClock,
) -> None:
    class Sleeper:
        def __init__(self) -> None:
            self.calls = 0

        async def __call__(self) -> None:
            self.calls += 1
            await trio.sleep(1)

    sleeper = Sleeper()
    result = await exegraph.run_with_result(Graph([exegraph.Step("a", sleeper)]))
    assert sleeper.calls == 1
    assert result["a"].duration == 1


async def test_run_refuses_what_is_not_a_graph_or_options() -> None:
    with pytest.raises(TypeError, match="Graph"):
        await exegraph.run([])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="RunOptions"):
        await exegraph.run(Graph(), {"max_concurrency": 1})  # type: ignore[arg-type]


async def test_a_100_000_step_chain_runs(autojump_clock: trio.testing.MockClock) -> None:
    count = 0

    async def action() -> None:
        nonlocal count
        count += 1

    n = 100_000
    graph = Graph(
        exegraph.Step(f"n{i}", action, depends_on=[f"n{i - 1}"] if i else []) for i in range(n)
    )
    result = await exegraph.run_with_result(graph)
    assert count == n
    assert [t.name for t in result.steps[:3]] == ["n0", "n1", "n2"]


@pytest.mark.parametrize("failing", [False, True])
async def test_a_step_freed_while_every_other_step_waits_starts_without_waiting_for_them(
    failing: bool,
) -> None:
    # Real time, on purpose: what is tested is that Trio's wait for I/O does not hold it.
    # Under a bound of 2, `a` and `b` start; `a`'s end leaves the choice to the end of its
    # round (`b` could still free a step at that instant), where `c` is taken and the
    # dispatcher woken to start it. No task is runnable then (`b` waits for `c`): Trio was
    # about to wait for I/O with no deadline, and `c` would never have run (the virtual
    # clock's autojump, at threshold 0, never waits, so it cannot show this). `failing`:
    # `a` fails under CONTINUE_ON_ERROR, so the decision waits for the failure to be told
    # to the core.
    go = trio.Event()

    async def a() -> None:
        if failing:
            raise ValueError("a")

    async def b() -> None:
        await go.wait()

    async def c() -> None:
        go.set()

    async def d() -> None:
        pass

    graph = Graph(
        [
            exegraph.Step("a", a),
            exegraph.Step("b", b),
            exegraph.Step("c", c),
            exegraph.Step("d", d, depends_on=["b"]),
        ]
    )
    policy = exegraph.ErrorPolicy.CONTINUE_ON_ERROR
    with trio.fail_after(20):  # (it takes milliseconds; without the wake-up, forever)
        result = await exegraph.run_with_result(
            graph, RunOptions(max_concurrency=2, error_policy=policy)
        )
    assert [t.name for t in result.steps] == ["a", "c", "b", "d"]


async def test_every_step_task_is_spawned_by_a_task(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # Trio spawns tasks from tasks, and a Trio instrument's `task_spawned` may ask which
    # one (`current_task()`): were a step spawned between two rounds (where the decisions
    # of an instant are taken), it would raise, and Trio would disable the instrument for
    # the rest of the program. Here decisions are left to the end of a round (`a` ends
    # while `b`, which frees `after_b`, still runs) and taken there.
    parents: dict[str, str] = {}

    class Parents(trio.abc.Instrument):
        def task_spawned(self, task: trio.lowlevel.Task) -> None:
            parents[task.name] = trio.lowlevel.current_task().name

    async def sleeps(seconds: float) -> None:
        await trio.sleep(seconds)

    graph = Graph(
        [
            exegraph.Step("a", functools.partial(sleeps, 1)),
            exegraph.Step("b", functools.partial(sleeps, 3)),
            exegraph.Step("after_b", functools.partial(sleeps, 0), depends_on=["b"]),
            exegraph.Step("c", functools.partial(sleeps, 0)),
            exegraph.Step("d", functools.partial(sleeps, 1)),
        ]
    )
    instrument = Parents()
    trio.lowlevel.add_instrument(instrument)
    try:
        result = await exegraph.run_with_result(graph, RunOptions(max_concurrency=2))
    finally:
        trio.lowlevel.remove_instrument(instrument)  # (raises if Trio disabled it)
    assert result.ok
    assert set(graph.names) <= set(parents)


async def test_a_long_run_of_steps_that_never_suspend_still_lets_other_tasks_run() -> None:
    finished = False
    ticks = 0

    async def other_task() -> None:
        nonlocal ticks
        while not finished:
            ticks += 1
            await trio.lowlevel.checkpoint()

    async def noop() -> None:
        pass

    graph = Graph(
        exegraph.Step(f"n{i}", noop, depends_on=[f"n{i - 1}"] if i else []) for i in range(6400)
    )
    async with trio.open_nursery() as nursery:
        nursery.start_soon(other_task)
        await exegraph.run(graph)
        finished = True
    assert ticks >= 6400 // 64


async def test_cancellation_stops_a_run_of_steps_that_never_suspend_promptly() -> None:
    count = 0

    async def count_step() -> None:
        nonlocal count
        count += 1

    graph = Graph(
        exegraph.Step(f"n{i}", count_step, depends_on=[f"n{i - 1}"] if i else [])
        for i in range(10_000)
    )
    at_cancel = 0
    async with trio.open_nursery() as nursery:

        async def cancel_soon() -> None:
            nonlocal at_cancel
            while not count:  # once the steps have begun
                await trio.lowlevel.checkpoint()
            at_cancel = count
            nursery.cancel_scope.cancel()

        nursery.start_soon(cancel_soon)
        await exegraph.run(graph)
    assert 0 < at_cancel <= count <= at_cancel + 2 * 64
