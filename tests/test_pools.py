"""Section 2.2, pools: `RunOptions(pools=...)`, `Step(pools=...)`, `exegraph.Pool`.

A step starts when its dependencies are done and one slot of the run plus all its pool
slots are free, taken at once; among the ready steps the highest-priority one *that fits*
starts first. Slots come back when the action ends, whatever the outcome, and while a step
waits to be retried. `run` refuses unknown pools and oversized requests before any step
starts. A shared `Pool` serves the waiting steps of different runs in the order they
became ready.

Charter: virtual time only (`autojump_clock`, or `MockClock(autojump_threshold=0)` in the
property); every action notes its attempts' starts and ends with `trio.current_time()` and
counts, from inside, the slots of every pool it runs under, so bounds are checked at every
instant and times are asserted with `==`. A run that could deadlock runs under
`trio.fail_after`: a hang is a failure, never a stuck test.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
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
    Pool,
    Retry,
    RunOptions,
    RunResult,
    Step,
    StepStatus,
    StepTimeoutError,
    TriggerRule,
)

CONTINUE: Final = ErrorPolicy.CONTINUE_ON_ERROR
DONE: Final = StepStatus.DONE
FAILED: Final = StepStatus.FAILED
SKIPPED: Final = StepStatus.SKIPPED
CANCELLED: Final = StepStatus.CANCELLED


class Boom(Exception):
    """What a failing action raises."""


@attrs.define
class Slots:
    """Makes actions that note their attempts and count the slots they run under.

    `sizes` maps a pool key to its size. Each action counts itself in every pool key it
    is given and in `running`, and checks, the moment it begins, that no count exceeds
    its size (or `bound`). Several runs may share one `Slots` (a shared pool is one key
    for all of them; give each run's private pools keys of their own).
    """

    sizes: Mapping[str, int]
    bound: int | None = None
    in_use: dict[str, int] = attrs.field(factory=dict)
    peak: dict[str, int] = attrs.field(factory=dict)
    running: int = 0
    peak_running: int = 0
    starts: dict[str, list[float]] = attrs.field(factory=dict)
    ends: dict[str, list[float]] = attrs.field(factory=dict)
    violations: list[str] = attrs.field(factory=list)

    def action(
        self,
        name: str,
        seconds: float = 1.0,
        pools: Mapping[str, int] | None = None,
        *,
        fail: Callable[[int], bool] = lambda attempt: False,
    ) -> exegraph.Action:
        """Sleeps `seconds` holding `pools` (key -> slots), then raises `Boom` if `fail(k)`."""
        held = dict(pools or {})

        async def act() -> None:
            starts = self.starts.setdefault(name, [])
            starts.append(trio.current_time())
            self.running += 1
            self.peak_running = max(self.peak_running, self.running)
            if self.bound is not None and self.running > self.bound:
                self.violations.append(f"{name}: {self.running} running > {self.bound}")
            for key, n in held.items():
                self.in_use[key] = self.in_use.get(key, 0) + n
                self.peak[key] = max(self.peak.get(key, 0), self.in_use[key])
                if self.in_use[key] > self.sizes[key]:
                    self.violations.append(
                        f"{name}: {self.in_use[key]} of {key!r} > {self.sizes[key]}"
                    )
            try:
                await trio.sleep(seconds)
                if fail(len(starts)):
                    raise Boom(name)
            finally:
                self.running -= 1
                for key, n in held.items():
                    self.in_use[key] -= n
                self.ends.setdefault(name, []).append(trio.current_time())

        return act

    def step(
        self,
        name: str,
        seconds: float = 1.0,
        pools: Mapping[str, int] | None = None,
        *,
        depends_on: Iterable[str] = (),
        fail: Callable[[int], bool] = lambda attempt: False,
        timeout: float | None = None,
        retry: Retry | None = None,
        trigger_rule: TriggerRule = TriggerRule.ALL_SUCCESS,
    ) -> Step:
        """A step whose action is `self.action(...)` and whose `pools` are those it counts."""
        return Step(
            name,
            self.action(name, seconds, pools, fail=fail),
            depends_on=depends_on,
            pools=dict(pools) if pools else None,
            timeout=timeout,
            retry=retry,
            trigger_rule=trigger_rule,
        )

    def first_starts(self) -> dict[str, float]:
        """When each step's first attempt started."""
        return {name: times[0] for name, times in self.starts.items()}


def always(attempt: int) -> bool:
    return True


def private_or_shared(size: int, shared: bool) -> int | Pool:
    return Pool(size) if shared else size


SHARED: Final = pytest.mark.parametrize("shared", [False, True], ids=["private", "shared"])


# -- taking slots ----------------------------------------------------------------------------


@SHARED
async def test_a_step_needing_two_slots_never_starts_with_one_free(
    autojump_clock: trio.testing.MockClock, shared: bool
) -> None:
    slots = Slots({"db": 2})
    graph = Graph([slots.step("one", 3, {"db": 1}), slots.step("two", 1, {"db": 2})])
    options = RunOptions(max_concurrency=4, pools={"db": private_or_shared(2, shared)})
    result = await exegraph.run_with_result(graph, options)
    assert slots.first_starts() == {"one": 0.0, "two": 3.0}
    assert result["two"].ready == 0.0
    assert slots.peak == {"db": 2}
    assert slots.violations == []


async def test_a_step_waiting_for_one_pool_holds_no_slot_of_another(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # 'both' waits for 'db' (held by 'hold_db' until 4 s); had it taken 'net' meanwhile,
    # 'net_user', ready at 1 s, could not start before 5 s.
    slots = Slots({"db": 1, "net": 1})
    graph = Graph(
        [
            slots.step("hold_db", 4, {"db": 1}),
            slots.step("both", 1, {"db": 1, "net": 1}),
            slots.step("gate", 1),
            slots.step("net_user", 1, {"net": 1}, depends_on=["gate"]),
        ]
    )
    await exegraph.run(graph, RunOptions(max_concurrency=4, pools={"db": 1, "net": 1}))
    assert slots.first_starts() == {"hold_db": 0.0, "gate": 0.0, "net_user": 1.0, "both": 4.0}
    assert slots.violations == []


@SHARED
async def test_a_step_waiting_for_a_busy_pool_never_holds_back_one_that_fits(
    autojump_clock: trio.testing.MockClock, shared: bool
) -> None:
    # At 1 s 'hi' (2 dependents) and 'lo' (none) are ready and one slot of the run is
    # free. 'hi' ranks first but 'db' is held until 3 s: 'lo' takes the free slot at once.
    slots = Slots({"db": 1}, bound=2)
    graph = Graph(
        [
            slots.step("holder", 3, {"db": 1}),
            slots.step("gate", 1),
            slots.step("hi", 1, {"db": 1}, depends_on=["gate"]),
            slots.step("hi1", 1, depends_on=["hi"]),
            slots.step("hi2", 1, depends_on=["hi"]),
            slots.step("lo", 1, depends_on=["gate"]),
        ]
    )
    options = RunOptions(max_concurrency=2, pools={"db": private_or_shared(1, shared)})
    result = await exegraph.run_with_result(graph, options)
    assert slots.first_starts() == {
        "holder": 0.0,
        "gate": 0.0,
        "lo": 1.0,
        "hi": 3.0,
        "hi1": 4.0,
        "hi2": 4.0,
    }
    assert (result["hi"].ready, result["lo"].ready) == (1.0, 1.0)
    assert slots.violations == []


@SHARED
async def test_the_highest_priority_step_that_fits_starts_first(
    autojump_clock: trio.testing.MockClock, shared: bool
) -> None:
    # Priorities (transitive dependents): gate 6, hi 2, mid 1, the rest 0.
    # 1 s: hi (db busy until 3 s), mid and lo ready, one slot free: mid, not lo.
    # 2 s: mid1 and lo ready (equal priority), one slot: mid1, first in graph order.
    # 3 s: holder and mid1 end; hi fits now and goes first, lo takes the other slot.
    slots = Slots({"db": 1}, bound=2)
    graph = Graph(
        [
            slots.step("holder", 3, {"db": 1}),
            slots.step("gate", 1),
            slots.step("hi", 1, {"db": 1}, depends_on=["gate"]),
            slots.step("hi1", 1, depends_on=["hi"]),
            slots.step("hi2", 1, depends_on=["hi"]),
            slots.step("mid", 1, depends_on=["gate"]),
            slots.step("mid1", 1, depends_on=["mid"]),
            slots.step("lo", 1, depends_on=["gate"]),
        ]
    )
    options = RunOptions(max_concurrency=2, pools={"db": private_or_shared(1, shared)})
    await exegraph.run(graph, options)
    assert slots.first_starts() == {
        "holder": 0.0,
        "gate": 0.0,
        "mid": 1.0,
        "mid1": 2.0,
        "hi": 3.0,
        "lo": 3.0,
        "hi1": 4.0,
        "hi2": 4.0,
    }
    assert slots.violations == []


async def test_among_steps_that_fit_priority_decides_with_max_concurrency_one(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # One slot, 'db' of 2: the order is rule 3's, whatever pools the steps use.
    slots = Slots({"db": 2}, bound=1)
    graph = Graph(
        [
            slots.step("a", 1, {"db": 1}),
            slots.step("b", 1, {"db": 2}),
            slots.step("c", 1),
            slots.step("b1", 1, depends_on=["b"]),
            slots.step("c1", 1, depends_on=["c"]),
            slots.step("c2", 1, depends_on=["c"]),
        ]
    )
    await exegraph.run(graph, RunOptions(max_concurrency=1, pools={"db": 2}))
    order = sorted(slots.first_starts(), key=slots.first_starts().__getitem__)
    assert order == ["c", "b", "a", "b1", "c1", "c2"]


async def test_the_run_bound_holds_whatever_pools_are_free(
    autojump_clock: trio.testing.MockClock,
) -> None:
    slots = Slots({"a": 2, "b": 2}, bound=2)
    graph = Graph(
        [
            slots.step("s1", 1, {"a": 1}),
            slots.step("s2", 1, {"b": 1}),
            slots.step("s3", 1, {"a": 1}),
            slots.step("s4", 1, {"b": 1}),
            slots.step("s5", 1),
        ]
    )
    await exegraph.run(graph, RunOptions(max_concurrency=2, pools={"a": 2, "b": 2}))
    assert slots.first_starts() == {"s1": 0.0, "s2": 0.0, "s3": 1.0, "s4": 1.0, "s5": 2.0}
    assert slots.peak_running == 2
    assert slots.violations == []


# -- giving slots back -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "status"), [("done", DONE), ("failed", FAILED), ("timed out", FAILED)]
)
async def test_slots_come_back_when_the_action_ends(
    autojump_clock: trio.testing.MockClock, kind: str, status: StepStatus
) -> None:
    slots = Slots({"db": 1})
    db = Pool(1)
    first = slots.step(
        "first",
        10 if kind == "timed out" else 2,
        {"db": 1},
        fail=always if kind == "failed" else lambda attempt: False,
        timeout=2 if kind == "timed out" else None,
    )
    graph = Graph([first, slots.step("next", 1, {"db": 1})])
    result = await exegraph.run_with_result(
        graph, RunOptions(max_concurrency=2, error_policy=CONTINUE, pools={"db": db})
    )
    assert result["first"].status is status
    if kind == "timed out":
        assert isinstance(result["first"].error, StepTimeoutError)
    assert slots.first_starts() == {"first": 0.0, "next": 2.0}
    assert db.in_use == 0


async def test_slots_come_back_when_fail_fast_cancels_the_step(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # Observed from a second run sharing the pool: the first run starts nothing after
    # its failure, the second takes the slot the cancelled step gave back.
    slots = Slots({"db": 1})
    db = Pool(1)
    first = Graph([slots.step("victim", 10, {"db": 1}), slots.step("boom", 1, fail=always)])
    second = Graph([slots.step("gate", 0.5), slots.step("user", 1, {"db": 1}, depends_on=["gate"])])
    results: dict[str, RunResult] = {}

    async def run(key: str, graph: Graph) -> None:
        results[key] = await exegraph.run_with_result(graph, RunOptions(pools={"db": db}))

    with trio.fail_after(100):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(run, "first", first)
            nursery.start_soon(run, "second", second)
    victim = results["first"]["victim"]
    assert (victim.status, victim.end) == (CANCELLED, 1.0)
    assert results["second"]["user"].ready == 0.5
    assert slots.first_starts()["user"] == 1.0
    assert db.in_use == 0


async def test_slots_come_back_when_the_run_is_cancelled_from_outside(
    autojump_clock: trio.testing.MockClock,
) -> None:
    slots = Slots({"db": 1})
    db = Pool(1)
    first = Graph([slots.step("victim", 10, {"db": 1})])
    second = Graph([slots.step("gate", 0.5), slots.step("user", 1, {"db": 1}, depends_on=["gate"])])

    async def cancelled_at_one() -> None:
        with trio.move_on_after(1):
            await exegraph.run(first, RunOptions(pools={"db": db}))

    with trio.fail_after(100):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(cancelled_at_one)
            nursery.start_soon(exegraph.run, second, RunOptions(pools={"db": db}))
    assert slots.ends["victim"] == [1.0]
    assert slots.first_starts()["user"] == 1.0
    assert db.in_use == 0


@SHARED
async def test_a_step_waiting_to_retry_holds_no_pool_slot(
    autojump_clock: trio.testing.MockClock, shared: bool
) -> None:
    # 'flaky' fails at 1 s and waits 2 s; 'other' (ready at 0.5 s) takes 'db' at 1 s and
    # holds it until 4 s, so the second attempt, due at 3 s, waits for it until 4 s.
    slots = Slots({"db": 1})
    graph = Graph(
        [
            slots.step(
                "flaky",
                1,
                {"db": 1},
                fail=lambda attempt: attempt == 1,
                retry=Retry(attempts=2, delay=2),
            ),
            slots.step("gate", 0.5),
            slots.step("other", 3, {"db": 1}, depends_on=["gate"]),
        ]
    )
    options = RunOptions(max_concurrency=4, pools={"db": private_or_shared(1, shared)})
    result = await exegraph.run_with_result(graph, options)
    assert slots.starts["flaky"] == [0.0, 4.0]
    assert slots.starts["other"] == [1.0]
    assert (result["flaky"].status, result["flaky"].attempts) == (DONE, 2)
    assert result["flaky"].ready == 0.0  # when it first became ready
    assert slots.violations == []


# -- refusals ----------------------------------------------------------------------------------


async def test_run_refuses_unknown_pools_and_oversized_requests_before_any_step_starts(
    autojump_clock: trio.testing.MockClock,
) -> None:
    called: list[str] = []

    def step(name: str, pools: Sequence[str] | Mapping[str, int] | None = None) -> Step:
        async def act() -> None:
            called.append(name)

        return Step(name, act, pools=pools)

    graph = Graph(
        [
            step("plain"),
            step("typo", ["dbb"]),
            step("greedy", {"db": 3}),
            step("greedy_too", {"db": 3}),  # the same request: named too
            step("fine", ["net"]),
            step("greedy_net", {"net": 2}),
            step("gpu1", ["gpu"]),
            step("gpu2", {"gpu": 1}),
        ]
    )
    options = RunOptions(
        pools={"db": 2, "net": Pool(1)}, on_step_start=lambda name: called.append(f"hook {name}")
    )
    for runner in (exegraph.run, exegraph.run_with_result):
        with pytest.raises(ValueError, match="pool") as caught:
            await runner(graph, options)
        message = str(caught.value)
        for name in ("typo", "greedy", "greedy_too", "greedy_net", "gpu1", "gpu2"):
            assert repr(name) in message
        assert "'fine'" not in message
        assert "'plain'" not in message
        assert "did you mean 'db'" in message
        assert "'gpu'" in message
    assert called == []


async def test_a_step_using_pools_needs_run_options_with_pools(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def act() -> None:
        raise AssertionError("must not run")

    with pytest.raises(ValueError, match="'uses_db'"):
        await exegraph.run(Graph([Step("uses_db", act, pools=["db"])]))


async def test_a_request_equal_to_the_size_is_accepted(
    autojump_clock: trio.testing.MockClock,
) -> None:
    slots = Slots({"db": 2, "net": 3})
    graph = Graph([slots.step("a", 1, {"db": 2}), slots.step("b", 1, {"net": 3})])
    await exegraph.run(graph, RunOptions(pools={"db": 2, "net": Pool(3)}))
    assert slots.first_starts() == {"a": 0.0, "b": 0.0}


async def noop() -> None:
    pass


def test_step_pools_are_stored_as_slots_per_pool() -> None:
    assert dict(Step("a", noop, pools=["db", "net"]).pools) == {"db": 1, "net": 1}
    assert dict(Step("a", noop, pools=("db",)).pools) == {"db": 1}
    assert dict(Step("a", noop, pools={"db": 2}).pools) == {"db": 2}
    assert dict(Step("a", noop, pools=[]).pools) == {}
    assert dict(Step("a", noop).pools) == {}


@pytest.mark.parametrize(
    ("pools", "error", "match"),
    [
        ("db", TypeError, r"str 'db'.*pools=\['db'\]"),
        (["db", "net", "db"], ValueError, r"'db' more than once.*pools=\{'db': 2\}"),
        ({"db": 0}, ValueError, "at least 1 slot"),
        ({"db": -1}, ValueError, "at least 1 slot"),
        ({"db": 1.5}, TypeError, "int number of slots"),
        ({"db": True}, TypeError, "int number of slots"),
        ({"db": "2"}, TypeError, "int number of slots"),
        ([""], TypeError, "non-empty str"),
        ([1], TypeError, "non-empty str"),
        ({2: 1}, TypeError, "non-empty str"),
        (5, TypeError, "list of pool names or a mapping"),
    ],
)
def test_bad_step_pools_are_refused_naming_the_step(
    pools: object, error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match) as caught:
        Step("load", noop, pools=pools)  # type: ignore[arg-type]
    assert "'load'" in str(caught.value)


@pytest.mark.parametrize(
    ("pools", "error", "match"),
    [
        ("db", TypeError, "mapping of pool name"),
        (["db"], TypeError, "mapping of pool name"),
        ({"db": 0}, ValueError, r"size must be >= 1.*'db': 0"),
        ({"db": -2}, ValueError, r"size must be >= 1.*'db': -2"),
        ({"db": 1.5}, TypeError, "'db': 1.5"),
        ({"db": True}, TypeError, "'db': True"),
        ({"db": "2"}, TypeError, "'db': '2'"),
        ({"": 1}, TypeError, "non-empty names"),
        ({1: 1}, TypeError, "non-empty names"),
    ],
)
def test_bad_run_pools_are_refused(pools: object, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        RunOptions(pools=pools)


@pytest.mark.parametrize(
    ("size", "error"), [(0, ValueError), (-1, ValueError), (1.5, TypeError), (True, TypeError)]
)
def test_a_pool_needs_a_positive_int_size(size: object, error: type[Exception]) -> None:
    with pytest.raises(error, match="Pool size"):
        Pool(size)  # type: ignore[arg-type]


def test_a_pool_tells_its_size_and_what_is_free() -> None:
    db = Pool(3)
    assert (db.size, db.in_use, db.free) == (3, 0, 3)
    assert RunOptions(pools=None).pools == {}


# -- shared pools ----------------------------------------------------------------------------


async def test_a_shared_pool_bounds_every_run_using_it_together(
    autojump_clock: trio.testing.MockClock,
) -> None:
    slots = Slots({"db": 2})
    db = Pool(2)

    def graph(prefix: str) -> Graph:
        return Graph(
            [
                slots.step(f"{prefix}1", 1, {"db": 1}),
                slots.step(f"{prefix}2", 1, {"db": 2}),
                slots.step(f"{prefix}3", 1, {"db": 1}),
                slots.step(f"{prefix}4", 1, {"db": 1}),
            ]
        )

    with trio.fail_after(100):
        async with trio.open_nursery() as nursery:
            for prefix in "ab":
                nursery.start_soon(
                    exegraph.run, graph(prefix), RunOptions(max_concurrency=4, pools={"db": db})
                )
    # 10 slot-seconds in a pool of 2: 5 s at best, and the pool never went over.
    assert max(end for ends in slots.ends.values() for end in ends) == 5.0
    assert slots.peak == {"db": 2}
    assert slots.violations == []
    assert db.in_use == 0


async def test_private_pools_of_the_same_name_are_separate_per_run(
    autojump_clock: trio.testing.MockClock,
) -> None:
    slots = Slots({"a.db": 1, "b.db": 1})

    def graph(prefix: str) -> Graph:
        return Graph(
            Step(
                f"{prefix}{k}",
                slots.action(f"{prefix}{k}", 1, {f"{prefix}.db": 1}),
                pools=["db"],
            )
            for k in range(2)
        )

    async with trio.open_nursery() as nursery:
        for prefix in "ab":
            nursery.start_soon(exegraph.run, graph(prefix), RunOptions(pools={"db": 1}))
    assert slots.first_starts() == {"a0": 0.0, "a1": 1.0, "b0": 0.0, "b1": 1.0}
    assert slots.violations == []


@pytest.mark.parametrize(
    ("gate_a", "gate_b", "expected"),
    [(2, 1, {"b_w": 3.0, "a_w": 4.0}), (1, 2, {"a_w": 3.0, "b_w": 4.0})],
    ids=["b-ready-first", "a-ready-first"],
)
async def test_a_shared_pool_serves_runs_in_the_order_their_steps_became_ready(
    autojump_clock: trio.testing.MockClock, gate_a: float, gate_b: float, expected: dict[str, float]
) -> None:
    # 'a_hold' holds the pool until 3 s; 'a_w' and 'b_w' wait for it from their gate's
    # end. When 'a_hold' ends its own run frees the slot, yet the older waiter gets it.
    slots = Slots({"db": 1})
    db = Pool(1)
    first = Graph(
        [
            slots.step("a_hold", 3, {"db": 1}),
            slots.step("a_gate", gate_a),
            slots.step("a_w", 1, {"db": 1}, depends_on=["a_gate"]),
            slots.step("a_after", 1, depends_on=["a_w"]),
        ]
    )
    second = Graph(
        [
            slots.step("b_gate", gate_b),
            slots.step("b_w", 1, {"db": 1}, depends_on=["b_gate"]),
        ]
    )
    results: dict[str, RunResult] = {}

    async def run(key: str, graph: Graph) -> None:
        results[key] = await exegraph.run_with_result(graph, RunOptions(pools={"db": db}))

    with trio.fail_after(100):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(run, "a", first)
            nursery.start_soon(run, "b", second)
    starts = slots.first_starts()
    assert {name: starts[name] for name in expected} == expected
    assert (results["a"]["a_w"].ready, results["b"]["b_w"].ready) == (gate_a, gate_b)
    assert slots.violations == []
    assert db.in_use == 0


# -- ready times -------------------------------------------------------------------------------


async def test_ready_is_when_the_wait_for_slots_began(
    autojump_clock: trio.testing.MockClock,
) -> None:
    slots = Slots({"db": 1})
    graph = Graph(
        [
            slots.step("gate", 1),
            slots.step("holder", 4, {"db": 1}),
            slots.step("waiter", 1, {"db": 1}, depends_on=["gate"]),
            slots.step("free", 1, depends_on=["gate"]),
        ]
    )
    result = await exegraph.run_with_result(graph, RunOptions(pools={"db": 1}))
    waits = {
        t.name: (
            t.ready,
            t.start,
            None if t.start is None or t.ready is None else t.start - t.ready,
        )
        for t in result.steps
    }
    assert waits == {
        "gate": (0.0, 0.0, 0.0),
        "holder": (0.0, 0.0, 0.0),
        "waiter": (1.0, 4.0, 3.0),
        "free": (1.0, 1.0, 0.0),
    }


async def test_ready_is_none_without_pools_and_for_steps_never_ready(
    autojump_clock: trio.testing.MockClock,
) -> None:
    slots = Slots({})
    plain = Graph([slots.step("a", 1), slots.step("b", 1, depends_on=["a"])])
    result = await exegraph.run_with_result(plain, RunOptions(pools={"db": 1}))
    assert [t.ready for t in result.steps] == [None, None]
    pooled = Graph(
        [
            slots.step("bad", 1, {"db": 1}, fail=always),
            slots.step("after", 1, {"db": 1}, depends_on=["bad"]),
        ]
    )
    began = trio.current_time()
    result = await exegraph.run_with_result(pooled, RunOptions(pools={"db": 1}))
    assert (result["bad"].ready, result["after"].ready) == (began, None)
    assert result["after"].status is SKIPPED


# -- with trigger rules and fail-fast ----------------------------------------------------------


@SHARED
async def test_fail_fast_skips_the_steps_waiting_for_a_pool(
    autojump_clock: trio.testing.MockClock, shared: bool
) -> None:
    slots = Slots({"db": 1})
    pool = private_or_shared(1, shared)
    graph = Graph(
        [
            slots.step("hold", 5, {"db": 1}),
            slots.step("waiting", 1, {"db": 1}),
            slots.step("boom", 1, fail=always),
        ]
    )
    result = await exegraph.run_with_result(graph, RunOptions(pools={"db": pool}))
    summary = {t.name: (t.status, t.ready, t.start, t.end) for t in result.steps}
    assert summary == {
        "hold": (CANCELLED, 0.0, 0.0, 1.0),
        "waiting": (SKIPPED, 0.0, None, None),
        "boom": (FAILED, 0.0, 0.0, 1.0),
    }
    assert "waiting" not in slots.starts
    if isinstance(pool, Pool):
        assert pool.in_use == 0


@SHARED
async def test_an_all_done_step_takes_the_slot_fail_fast_freed(
    autojump_clock: trio.testing.MockClock, shared: bool
) -> None:
    slots = Slots({"db": 1})
    graph = Graph(
        [
            slots.step("victim", 10, {"db": 1}),
            slots.step("boom", 1, fail=always),
            slots.step(
                "cleanup",
                2,
                {"db": 1},
                depends_on=["victim", "boom"],
                trigger_rule=TriggerRule.ALL_DONE,
            ),
        ]
    )
    options = RunOptions(pools={"db": private_or_shared(1, shared)})
    result = await exegraph.run_with_result(graph, options)
    cleanup = result["cleanup"]
    assert (cleanup.status, cleanup.ready, cleanup.start, cleanup.end) == (DONE, 1.0, 1.0, 3.0)
    assert result["victim"].status is CANCELLED
    assert slots.violations == []


async def test_a_one_failed_handler_waits_for_all_its_slots(
    autojump_clock: trio.testing.MockClock,
) -> None:
    slots = Slots({"db": 2})
    graph = Graph(
        [
            slots.step("long", 3, {"db": 1}),
            slots.step("boom", 1, fail=always),
            slots.step(
                "handler",
                1,
                {"db": 2},
                depends_on=["boom"],
                trigger_rule=TriggerRule.ONE_FAILED,
            ),
            slots.step(
                "quiet",
                1,
                {"db": 2},
                depends_on=["long"],
                trigger_rule=TriggerRule.ONE_FAILED,
            ),
        ]
    )
    result = await exegraph.run_with_result(
        graph, RunOptions(error_policy=CONTINUE, pools={"db": 2})
    )
    handler = result["handler"]
    assert (handler.status, handler.ready, handler.start) == (DONE, 1.0, 3.0)
    assert (result["quiet"].status, result["quiet"].ready) == (SKIPPED, None)
    assert slots.violations == []


# -- no deadlock: a property -------------------------------------------------------------------

OK: Final = 0
FAILS: Final = 1
FLAKY: Final = 2
"""Its first attempt fails; `Retry(attempts=2)` tries it again."""
TIMES_OUT: Final = 3
"""Sleeps one second past its `timeout`."""

_PROPERTY: Final = settings(max_examples=150, deadline=None, derandomize=True)


@attrs.frozen
class RunCase:
    """One run of a random DAG (`deps[i]` ⊆ earlier steps) over the case's pools."""

    deps: tuple[tuple[int, ...], ...]
    durations: tuple[int, ...]
    demands: tuple[tuple[tuple[int, int], ...], ...]
    """Per step, `(pool index, slots)` pairs, distinct pools, slots within the size."""
    outcomes: tuple[int, ...]
    rules: tuple[TriggerRule, ...]
    delay: int
    bound: int
    policy: ErrorPolicy


@attrs.frozen
class PoolCase:
    sizes: tuple[int, ...]
    shared: tuple[bool, ...]
    runs: tuple[RunCase, ...]


@st.composite
def run_cases(draw: st.DrawFn, sizes: Sequence[int]) -> RunCase:
    n = draw(st.integers(1, 7))
    deps = tuple(
        tuple(sorted(draw(st.sets(st.integers(0, i - 1), max_size=3)))) if i else ()
        for i in range(n)
    )
    demands: list[tuple[tuple[int, int], ...]] = []
    for _ in range(n):
        chosen = draw(st.sets(st.integers(0, len(sizes) - 1), max_size=len(sizes)))
        demands.append(tuple((p, draw(st.integers(1, sizes[p]))) for p in sorted(chosen)))
    return RunCase(
        deps=deps,
        durations=tuple(draw(st.lists(st.integers(0, 3), min_size=n, max_size=n))),
        demands=tuple(demands),
        outcomes=tuple(
            draw(
                st.lists(
                    st.sampled_from([OK, OK, OK, FAILS, FLAKY, TIMES_OUT]), min_size=n, max_size=n
                )
            )
        ),
        rules=tuple(draw(st.lists(st.sampled_from(list(TriggerRule)), min_size=n, max_size=n))),
        delay=draw(st.integers(0, 2)),
        bound=draw(st.integers(1, 4)),
        policy=draw(st.sampled_from(list(ErrorPolicy))),
    )


@st.composite
def pool_cases(draw: st.DrawFn, *, runs: tuple[int, int], shared: bool) -> PoolCase:
    """Pools (`shared`: each shared by every run two times in three) and `runs` runs."""
    k = draw(st.integers(1, 3))
    sizes = tuple(draw(st.lists(st.integers(1, 3), min_size=k, max_size=k)))
    flags = (
        tuple(draw(st.lists(st.sampled_from([True, True, False]), min_size=k, max_size=k)))
        if shared
        else (False,) * k
    )
    count = draw(st.integers(*runs))
    return PoolCase(sizes, flags, tuple(draw(run_cases(sizes)) for _ in range(count)))


def pool_key(case: PoolCase, run: int, p: int) -> str:
    return f"p{p}" if case.shared[p] else f"run{run}.p{p}"


def run_concurrently(case: PoolCase) -> tuple[list[RunResult], Slots, list[Pool]]:
    """Run every run of `case` at once in one Trio program; results in run order."""
    sizes = {
        pool_key(case, r, p): size
        for r in range(len(case.runs))
        for p, size in enumerate(case.sizes)
    }
    slots = Slots(sizes)
    shared = [Pool(size) for size in case.sizes]
    done_calls: dict[str, int] = {}

    def graph_of(r: int, run: RunCase) -> Graph:
        steps = []
        for i, deps in enumerate(run.deps):
            name = f"r{r}s{i}"
            outcome = run.outcomes[i]
            held = {pool_key(case, r, p): n for p, n in run.demands[i]}

            def fail(attempt: int, outcome: int = outcome) -> bool:
                return outcome == FAILS or (outcome == FLAKY and attempt == 1)

            seconds = 2 if outcome == TIMES_OUT else run.durations[i]
            steps.append(
                Step(
                    name,
                    slots.action(name, seconds, held, fail=fail),
                    depends_on=[f"r{r}s{d}" for d in deps],
                    pools={f"p{p}": n for p, n in run.demands[i]} or None,
                    timeout=1 if outcome == TIMES_OUT else None,
                    retry=Retry(attempts=2, delay=run.delay) if outcome == FLAKY else None,
                    trigger_rule=run.rules[i],
                )
            )
        return Graph(steps)

    def counted(name: str, error: BaseException | None) -> None:
        done_calls[name] = done_calls.get(name, 0) + 1

    results: list[RunResult | None] = [None] * len(case.runs)

    async def one(r: int, run: RunCase) -> None:
        options = RunOptions(
            max_concurrency=run.bound,
            error_policy=run.policy,
            pools={
                f"p{p}": shared[p] if case.shared[p] else size for p, size in enumerate(case.sizes)
            },
            on_step_done=counted,
        )
        results[r] = await exegraph.run_with_result(graph_of(r, run), options)

    async def main() -> None:
        with trio.fail_after(10_000):
            async with trio.open_nursery() as nursery:
                for r, run in enumerate(case.runs):
                    nursery.start_soon(one, r, run)

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    finished = [result for result in results if result is not None]
    assert len(finished) == len(results)
    for name, calls in done_calls.items():
        assert calls == 1, name
    return finished, slots, shared


def check_bounds(case: PoolCase, slots: Slots) -> None:
    """At every instant, no run over its bound and no pool over its size."""
    assert slots.violations == []
    # The same, from the intervals: at each start instant, count the attempts in flight.
    intervals: list[tuple[str, float, float]] = []
    for name, starts in slots.starts.items():
        intervals.extend(zip([name] * len(starts), starts, slots.ends[name], strict=True))
    for _, instant, _ in intervals:
        live = [name for name, s, e in intervals if s <= instant < e]
        steps = [tuple(map(int, name[1:].split("s"))) for name in live]  # (run, step)
        for r, run in enumerate(case.runs):
            assert sum(run_of == r for run_of, _ in steps) <= run.bound
        for p, size in enumerate(case.sizes):
            users = [(r, dict(case.runs[r].demands[i]).get(p, 0)) for r, i in steps]
            if case.shared[p]:
                assert sum(n for _, n in users) <= size
            else:
                for r in range(len(case.runs)):
                    assert sum(n for run_of, n in users if run_of == r) <= size


def check_settled(case: PoolCase, results: Sequence[RunResult]) -> None:
    for r, (run, result) in enumerate(zip(case.runs, results, strict=True)):
        names = [t.name for t in result.steps]
        assert sorted(names) == sorted(f"r{r}s{i}" for i in range(len(run.deps)))
        assert all(t.status in (DONE, FAILED, SKIPPED, CANCELLED) for t in result.steps)


@_PROPERTY
@given(pool_cases(runs=(1, 1), shared=True))
def test_no_run_deadlocks_and_every_bound_holds(case: PoolCase) -> None:
    results, slots, shared = run_concurrently(case)
    check_bounds(case, slots)
    check_settled(case, results)
    assert [pool.in_use for pool in shared] == [0] * len(shared)


@settings(max_examples=100, deadline=None, derandomize=True)
@given(pool_cases(runs=(2, 3), shared=False))
def test_concurrent_runs_with_private_pools_never_deadlock(case: PoolCase) -> None:
    results, slots, _ = run_concurrently(case)
    check_bounds(case, slots)
    check_settled(case, results)


def test_one_pool_under_two_names_is_refused() -> None:
    db = exegraph.Pool(1)
    with pytest.raises(ValueError, match="'db' and 'database'"):
        exegraph.RunOptions(pools={"db": db, "database": db, "net": 2})
