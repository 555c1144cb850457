"""Section 2.4, threads and processes: `exegraph.in_thread` and `exegraph.in_process`.

Testing charter: threads and worker processes run in real time, so these tests use Trio's
real clock (no `autojump_clock`) and block threads on `threading.Event`s rather than
sleeping; the few real-time bounds are generous (a deadline is met within 1 s). Worker
processes are trio-parallel's default ones, reused from test to test (each start costs
0.1-0.5 s); only the tests about killing them cost a new one. The functions a worker runs
live in `tests/_offload_fns.py`, which imports only the standard library.
"""

from __future__ import annotations

import contextvars
import functools
import gc
import inspect
import os
import pickle
import re
import sys
import threading
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from pathlib import Path

import pytest
import trio
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import _offload_fns as fns
import exegraph_otel
import exegraph_trio as exegraph
from exegraph_trio import (
    Graph,
    Retry,
    Step,
    StepCancelledError,
    StepStatus,
    StepTimeoutError,
    _offload,
)

Offload = Callable[..., Callable[..., Awaitable[object]]]

WAIT = 10.0
"""Seconds a test waits at most for a thread or a worker before it fails instead of hanging."""

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="unset")


def add(x: int, y: int) -> int:
    return x + y


class Locked:
    """A callable that cannot be pickled: it holds a lock."""

    def __init__(self) -> None:
        self.lock = threading.Lock()

    def __call__(self) -> None: ...


class Shown:
    """A callable with a repr of its own."""

    def __call__(self) -> None: ...

    def __repr__(self) -> str:
        return "Shown(7)"


class Opaque:
    """A value that cannot be pickled, whose name starts with a vowel."""

    def __init__(self) -> None:
        self.lock = threading.Lock()


def pid_is_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


async def wait_for_pid(path: Path) -> None:
    file = trio.Path(path)
    with trio.fail_after(WAIT):
        # Another process writes the file: nothing can wake this task, so it looks.
        while not (await file.exists() and await file.read_text(encoding="utf-8")):  # noqa: ASYNC110
            await trio.sleep(0.01)


# -- in_thread --------------------------------------------------------------------------


async def test_in_thread_returns_what_fn_returns_as_the_step_value() -> None:
    result = await exegraph.run_with_result(Graph([Step("sum", exegraph.in_thread(add, 2, 3))]))
    assert result["sum"].value == 5


async def test_in_thread_runs_fn_in_another_thread() -> None:
    result = await exegraph.run_with_result(
        Graph([Step("where", exegraph.in_thread(threading.get_ident))])
    )
    assert result["where"].value != threading.get_ident()


async def test_in_thread_passes_the_steps_inputs_as_keyword_arguments() -> None:
    async def two() -> int:
        return 2

    graph = Graph(
        [
            Step("two", two),
            Step("sum", exegraph.in_thread(add, y=40), inputs={"x": "two"}),
        ]
    )
    result = await exegraph.run_with_result(graph)
    assert result["sum"].value == 42


async def test_in_thread_calls_fn_with_its_bound_positional_arguments_and_the_inputs() -> None:
    calls: list[tuple[object, ...]] = []

    def record(*args: object, **kwargs: object) -> None:
        calls.append((args, kwargs))

    async def one() -> int:
        return 1

    graph = Graph(
        [Step("one", one), Step("r", exegraph.in_thread(record, "a", b="b"), inputs={"c": "one"})]
    )
    await exegraph.run(graph)
    assert calls == [(("a",), {"b": "b", "c": 1})]


async def test_context_variables_reach_the_thread() -> None:
    request_id.set("req-42")
    result = await exegraph.run_with_result(
        Graph([Step("read", exegraph.in_thread(request_id.get))])
    )
    assert result["read"].value == "req-42"


async def test_a_span_made_in_the_thread_nests_under_the_step_span() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer(__name__)

    def work() -> None:
        with tracer.start_as_current_span("inside the thread"):
            pass

    instrument = exegraph_otel.OtelInstrument(tracer_provider=provider)
    graph = Graph([Step("work", exegraph.in_thread(work))])
    await exegraph.run(graph, exegraph.RunOptions(instruments=[instrument]))
    provider.shutdown()
    spans = {span.name: span for span in exporter.get_finished_spans()}
    inside, step = spans["inside the thread"], spans["work"]
    assert inside.parent is not None
    assert step.context is not None
    assert inside.parent.span_id == step.context.span_id


async def test_an_exception_of_fn_fails_the_step_with_that_exception() -> None:
    def broken() -> None:
        raise ConnectionError("no route")

    with pytest.RaisesGroup(pytest.RaisesExc(ConnectionError, match="no route")):
        await exegraph.run(Graph([Step("b", exegraph.in_thread(broken))]))


async def test_retry_calls_fn_again_in_a_thread() -> None:
    calls: list[int] = []

    def flaky() -> str:
        calls.append(threading.get_ident())
        if len(calls) < 3:
            raise ConnectionError(f"call {len(calls)}")
        return "ok"

    step = Step("flaky", exegraph.in_thread(flaky), retry=Retry(attempts=3, delay=0))
    result = await exegraph.run_with_result(Graph([step]))
    assert result["flaky"].value == "ok"
    assert result["flaky"].attempts == 3
    assert [str(e) for e in result["flaky"].earlier_errors] == ["call 1", "call 2"]


async def test_a_deadline_waits_for_the_thread_then_fails_the_step_as_timed_out() -> None:
    started, release, returned = threading.Event(), threading.Event(), threading.Event()

    def block() -> str:
        started.set()
        release.wait(WAIT)
        returned.set()
        return "late"

    results: list[exegraph.RunResult] = []

    async def run() -> None:
        graph = Graph([Step("block", exegraph.in_thread(block), timeout=0.05)])
        results.append(await exegraph.run_with_result(graph))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(run)
        await trio.to_thread.run_sync(started.wait, WAIT)
        await trio.sleep(0.2)  # the deadline passed long ago; the step still waits
        assert results == []
        release.set()
    (result,) = results
    timing = result["block"]
    assert returned.is_set()
    assert timing.status is StepStatus.FAILED
    assert isinstance(timing.error, StepTimeoutError)
    assert timing.value is None  # what fn returned after the deadline is discarded
    assert timing.duration >= 0.2


async def test_abandon_on_cancel_ends_the_step_at_its_deadline_and_leaves_the_thread() -> None:
    release, returned = threading.Event(), threading.Event()

    def block() -> None:
        release.wait(WAIT)
        returned.set()

    step = Step("block", exegraph.in_thread(block, abandon_on_cancel=True), timeout=0.05)
    try:
        result = await exegraph.run_with_result(Graph([step]))
        assert not returned.is_set()  # still running in the background
    finally:
        release.set()
    timing = result["block"]
    assert isinstance(timing.error, StepTimeoutError)
    assert timing.duration < 1.0
    assert await trio.to_thread.run_sync(returned.wait, WAIT)


async def test_fail_fast_waits_for_a_running_thread_and_cancels_its_step() -> None:
    started, release = threading.Event(), threading.Event()

    def block() -> str:
        started.set()
        release.wait(WAIT)
        return "done anyway"

    async def fail() -> None:
        await trio.to_thread.run_sync(started.wait, WAIT)
        release.set()  # the thread returns while its step is being cancelled
        raise RuntimeError("boom")

    graph = Graph([Step("block", exegraph.in_thread(block)), Step("fail", fail)])
    result = await exegraph.run_with_result(graph)
    assert result["block"].status is StepStatus.CANCELLED
    assert isinstance(result["block"].error, StepCancelledError)
    assert result["block"].value is None


async def test_fn_can_stop_early_by_checking_for_cancellation() -> None:
    def cooperative() -> None:
        while True:
            trio.from_thread.check_cancelled()
            time.sleep(0.005)

    before = time.monotonic()
    result = await exegraph.run_with_result(
        Graph([Step("loop", exegraph.in_thread(cooperative), timeout=0.05)])
    )
    assert isinstance(result["loop"].error, StepTimeoutError)
    assert time.monotonic() - before < 1.0


async def test_a_keyboard_interrupt_raised_by_fn_interrupts_the_run() -> None:
    def interrupt() -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        await exegraph.run(Graph([Step("ki", exegraph.in_thread(interrupt))]))


@pytest.mark.parametrize("offload", [exegraph.in_thread, exegraph.in_process])
async def test_sys_exit_in_fn_leaves_the_run_with_its_code(offload: Offload) -> None:
    # (trio-parallel remakes a worker's `SystemExit` without its `code`: `exegraph run`
    # would have exited 0.)
    with pytest.raises(SystemExit) as raised:
        await exegraph.run(Graph([Step("leave", offload(fns.leave, 3))]))
    assert raised.value.code == 3


# -- the action itself -------------------------------------------------------------------


def test_the_action_is_named_after_fn_and_its_repr_shows_the_call() -> None:
    action = exegraph.in_thread(add, 1, abandon_on_cancel=True)
    assert action.__name__ == "add"
    assert action.__qualname__ == "add"
    assert repr(action) == "in_thread(add, 1, abandon_on_cancel=True)"
    assert repr(exegraph.in_process(fns.add, y=2)) == "in_process(add, y=2)"


def test_big_bytes_arguments_are_cut_short_in_the_repr_without_being_written_out() -> None:
    # reprlib has no case for bytes: it wrote out the whole repr (400 MB for 100 MB of
    # bytes, a second to make an action) before cutting it; nor was a repr needed at all
    # unless a message showed it.
    payload = bytes(range(256)) * 4000  # (1 MB)
    action = exegraph.in_thread(fns.add, payload, bytearray(payload))
    shown = repr(action)
    assert shown.startswith(r"in_thread(add, b'\x00\x01\x02")
    assert "...', bytearray(b'" in shown
    assert shown.endswith("...'))")
    assert len(shown) < 400  # (the first 40 bytes of each, escaped: 4 characters a byte)
    assert repr(exegraph.in_thread(fns.add, b"ab", bytearray(b"c"))) == (
        "in_thread(add, b'ab', bytearray(b'c'))"
    )


@pytest.mark.parametrize("offload", [exegraph.in_thread, exegraph.in_process])
def test_a_step_refuses_an_action_missing_an_argument_without_inputs(
    offload: Callable[..., Callable[..., Awaitable[object]]],
) -> None:
    # As a step of an `async def` needing an argument is: the action's signature (fn's,
    # less what it binds) says what the call with no arguments leaves without a value.
    with pytest.raises(TypeError, match="called with no arguments, but it needs 'x'"):
        exegraph.Step("add", offload(fns.add, y=2))
    with pytest.raises(TypeError, match="it needs 'y'"):
        exegraph.Step("add", functools.partial(offload(fns.add), 1))
    for action in (offload(fns.add, 1, 2), functools.partial(offload(fns.add, 1), y=2)):
        exegraph.Step("add", action)
    exegraph.Step("add", offload(fns.add, y=2), inputs={"x": "one"})


def test_an_action_and_its_arguments_are_freed_with_its_last_reference() -> None:
    # The action's signature held the action, for its repr: a cycle, so a big argument
    # waited for the garbage collector (20 actions of 50 MB made and dropped: 1 GB).
    class Big:
        pass

    argument = Big()
    alive = weakref.ref(argument)
    collecting = gc.isenabled()
    gc.disable()
    try:
        action = exegraph.in_thread(fns.add, argument)
        exegraph.Step("add", action, inputs={"y": "other"})
        del argument, action
        assert alive() is None  # (by reference counting alone)
    finally:
        if collecting:
            gc.enable()


def test_graph_builder_names_the_step_after_fn() -> None:
    builder = exegraph.GraphBuilder()
    builder.step(exegraph.in_thread(add, 1, 2))
    assert builder.build().names == ("add",)


def test_the_actions_signature_is_fns_without_the_bound_arguments() -> None:
    assert str(inspect.signature(exegraph.in_thread(add, 1))) == "(y: 'int') -> 'int'"
    assert str(inspect.signature(exegraph.in_thread(add, y=1))) == "(x: 'int') -> 'int'"


@pytest.mark.parametrize("offload", [exegraph.in_thread, exegraph.in_process])
def test_a_step_whose_inputs_fn_cannot_take_is_refused_when_made(
    offload: Offload,
) -> None:
    with pytest.raises(TypeError, match="unexpected keyword argument 'z'"):
        Step("sum", offload(fns.add, 1), inputs={"y": "o", "z": "o"})


def test_an_input_repeating_a_bound_keyword_is_refused_when_the_step_is_made() -> None:
    with pytest.raises(TypeError, match="cannot be called with the keyword arguments"):
        Step("sum", exegraph.in_thread(add, 1, y=2), inputs={"y": "other"})


@pytest.mark.parametrize(
    ("action", "inputs"),
    [
        (exegraph.in_thread(add, x=1), {"x": "o"}),
        (exegraph.in_thread(add, 1), {"x": "o", "y": "o"}),
    ],
)
def test_an_input_repeating_a_bound_argument_is_refused_saying_it_is_bound(
    action: Callable[..., Awaitable[object]], inputs: dict[str, str]
) -> None:
    with pytest.raises(
        TypeError, match=rf"'x' is already bound by {re.escape(repr(action))}"
    ) as caught:
        Step("sum", action, inputs=inputs)
    assert "async def" not in str(caught.value)  # (no advice to write an async action)


def test_an_input_repeating_a_bound_keyword_of_a_kwargs_fn_is_refused_when_made() -> None:
    def anything(**kwargs: object) -> None: ...

    with pytest.raises(TypeError, match=r"'y' is already bound by in_thread\(anything, y=2\)"):
        Step("any", exegraph.in_thread(anything, y=2), inputs={"y": "one"})


async def test_an_input_repeating_a_bound_keyword_of_an_unreadable_fn_fails_the_step() -> None:
    async def one() -> list[int]:
        return [1]

    # `max` has no signature to read: the clash is found when the step runs.
    graph = Graph(
        [Step("one", one), Step("max", exegraph.in_thread(max, key=len), inputs={"key": "one"})]
    )
    result = await exegraph.run_with_result(graph)
    error = result["max"].error
    assert isinstance(error, TypeError)
    assert str(error) == (
        "step 'max': in_thread(max) binds the keyword argument(s) 'key', which the "
        "step's inputs pass too; rename the input or drop the bound argument"
    )


@pytest.mark.parametrize("offload", [exegraph.in_thread, exegraph.in_process])
async def test_an_input_named_self_reaches_fn(offload: Offload) -> None:
    async def box() -> fns.Box:
        return fns.Box(21)

    graph = Graph(
        [
            Step("box", box),
            Step("scaled", offload(fns.Box.scaled, factor=2), inputs={"self": "box"}),
        ]
    )
    result = await exegraph.run_with_result(graph)
    assert result["scaled"].value == 42


@pytest.mark.parametrize("offload", [exegraph.in_thread, exegraph.in_process])
def test_arguments_fn_cannot_take_are_refused_when_the_action_is_made(
    offload: Offload,
) -> None:
    with pytest.raises(TypeError, match=r"\(add\) cannot bind the arguments given"):
        offload(fns.add, 1, 2, 3)


@pytest.mark.parametrize("offload", [exegraph.in_thread, exegraph.in_process])
def test_an_async_function_is_refused(offload: Offload) -> None:
    async def fetch() -> None: ...

    with pytest.raises(TypeError, match=r"runs a sync function, but .* is async"):
        offload(fetch)


@pytest.mark.parametrize("offload", [exegraph.in_thread, exegraph.in_process])
def test_a_generator_function_is_refused(offload: Offload) -> None:
    def numbers() -> Iterator[int]:
        yield 1

    with pytest.raises(TypeError, match=r"is a generator function: calling it only makes"):
        offload(numbers)


@pytest.mark.parametrize("offload", [exegraph.in_thread, exegraph.in_process])
def test_an_async_generator_function_is_refused(offload: Offload) -> None:
    async def numbers() -> AsyncIterator[int]:
        yield 1

    with pytest.raises(TypeError, match=r"is an async generator function"):
        offload(numbers)


def test_in_process_refuses_abandon_on_cancel_saying_it_is_in_threads_option() -> None:
    with pytest.raises(
        TypeError, match=r"in_process\(add\) takes no abandon_on_cancel: that is an option of"
    ):
        exegraph.in_process(fns.add, 1, 2, abandon_on_cancel=True)


def test_the_repr_shows_a_partials_arguments_and_tells_an_instance_from_its_class() -> None:
    assert repr(exegraph.in_thread(functools.partial(add, y=3))) == "in_thread(partial(add, y=3))"
    assert repr(exegraph.in_thread(Locked)) == "in_thread(Locked)"
    assert repr(exegraph.in_thread(Locked())) == "in_thread(<Locked object>)"
    assert repr(exegraph.in_thread(Shown())) == "in_thread(Shown(7))"


def test_the_signature_of_an_action_whose_fn_has_none_takes_any_inputs() -> None:
    assert str(inspect.signature(exegraph.in_thread(max))) == "(**inputs)"


@pytest.mark.parametrize("offload", [exegraph.in_thread, exegraph.in_process])
async def test_a_stop_iteration_of_fn_fails_the_step_saying_so(offload: Offload) -> None:
    result = await exegraph.run_with_result(Graph([Step("stop", offload(fns.stop))]))
    error = result["stop"].error
    assert isinstance(error, RuntimeError)
    assert str(error).startswith(f"step 'stop': {offload.__name__}(stop) raised StopIteration")
    assert isinstance(error.__cause__, StopIteration)


def test_abandon_on_cancel_must_be_a_bool() -> None:
    with pytest.raises(TypeError, match="abandon_on_cancel must be a bool"):
        exegraph.in_thread(add, abandon_on_cancel="yes")  # type: ignore[arg-type]


# -- in_process ------------------------------------------------------------------------


async def test_in_process_returns_what_fn_returns_in_a_worker_process() -> None:
    async def two() -> int:
        return 2

    graph = Graph(
        [
            Step("two", two),
            Step("sum", exegraph.in_process(fns.add, y=40), inputs={"x": "two"}),
            Step("pid", exegraph.in_process(fns.worker_pid)),
        ]
    )
    result = await exegraph.run_with_result(graph)
    assert result["sum"].value == 42
    assert result["pid"].value != os.getpid()


async def test_an_exception_raised_in_the_worker_fails_the_step_with_it() -> None:
    result = await exegraph.run_with_result(
        Graph([Step("f", exegraph.in_process(fns.fail, "bad input"))])
    )
    error = result["f"].error
    assert isinstance(error, ValueError)
    assert str(error) == "bad input"


async def test_a_deadline_kills_a_cpu_bound_worker_within_a_second(tmp_path: Path) -> None:
    await exegraph.run(Graph([Step("warm", exegraph.in_process(fns.worker_pid))]))  # a worker
    pid_file = tmp_path / "pid"
    step = Step("spin", exegraph.in_process(fns.spin_forever, str(pid_file)), timeout=0.5)
    result = await exegraph.run_with_result(Graph([step]))
    timing = result["spin"]
    assert isinstance(timing.error, StepTimeoutError)
    assert 0.5 <= timing.duration < 1.5
    assert pid_file.read_text(encoding="utf-8")  # the loop ran, and ...
    assert pid_is_gone(int(pid_file.read_text(encoding="utf-8")))  # ... its worker is gone


async def test_fail_fast_kills_a_cpu_bound_worker(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"

    async def fail_once_spinning() -> None:
        await wait_for_pid(pid_file)
        raise RuntimeError("boom")

    graph = Graph(
        [
            Step("spin", exegraph.in_process(fns.spin_forever, str(pid_file))),
            Step("fail", fail_once_spinning),
        ]
    )
    result = await exegraph.run_with_result(graph)
    assert result["spin"].status is StepStatus.CANCELLED
    assert result["spin"].end is not None
    assert result["fail"].end is not None
    assert result["spin"].end - result["fail"].end < 1.0
    assert pid_is_gone(int(pid_file.read_text(encoding="utf-8")))
    # A new worker takes the killed one's place.
    again = await exegraph.run_with_result(Graph([Step("sum", exegraph.in_process(fns.add, 1, 2))]))
    assert again["sum"].value == 3


async def test_a_keyboard_interrupt_in_the_run_kills_a_cpu_bound_worker(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"

    async def interrupt_once_spinning() -> None:
        await wait_for_pid(pid_file)
        raise KeyboardInterrupt

    graph = Graph(
        [
            Step("spin", exegraph.in_process(fns.spin_forever, str(pid_file))),
            Step("interrupt", interrupt_once_spinning),
        ]
    )
    with pytest.raises(KeyboardInterrupt):
        await exegraph.run(graph)
    assert pid_is_gone(int(pid_file.read_text(encoding="utf-8")))


def test_an_unpicklable_function_is_refused_when_the_action_is_made() -> None:
    with pytest.raises(
        TypeError, match=r"in_process\(Locked\) cannot send the function to a worker process"
    ):
        exegraph.in_process(Locked())


def test_an_unpicklable_argument_is_refused_naming_it() -> None:
    with pytest.raises(
        TypeError,
        match=r"in_process\(add\) cannot send its keyword argument 'y' \(a lock\) to a worker",
    ):
        exegraph.in_process(fns.add, 1, y=threading.Lock())


async def test_an_unpicklable_input_fails_the_step_naming_the_step_and_the_input() -> None:
    async def make_lock() -> threading.Lock:
        return threading.Lock()

    graph = Graph(
        [
            Step("lock", make_lock),
            Step("sum", exegraph.in_process(fns.add, 1), inputs={"y": "lock"}),
        ]
    )
    result = await exegraph.run_with_result(graph)
    error = result["sum"].error
    assert isinstance(error, TypeError)
    assert str(error).startswith(
        "step 'sum': in_process(add) cannot send its input 'y' (a lock) to a worker process: "
        "TypeError: cannot pickle '_thread.lock' object. A worker process receives"
    )
    assert isinstance(error.__cause__, TypeError)


async def test_unpicklable_input_is_looked_for_in_a_thread_not_on_the_event_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    threads: list[int] = []
    unpicklable = _offload._InProcess._unpicklable

    def recording(self: _offload._InProcess[object], inputs: Mapping[str, object]) -> object:
        threads.append(threading.get_ident())
        return unpicklable(self, inputs)

    monkeypatch.setattr(_offload._InProcess, "_unpicklable", recording)
    action = exegraph.in_process(fns.add, 1)
    threads.clear()  # the check made with the action, for its bound arguments

    async def opaque() -> Opaque:
        return Opaque()

    graph = Graph([Step("opaque", opaque), Step("sum", action, inputs={"y": "opaque"})])
    result = await exegraph.run_with_result(graph)
    assert "cannot send its input 'y' (an Opaque)" in str(result["sum"].error)
    assert len(threads) == 1
    assert threads[0] != threading.get_ident()


async def test_a_type_error_raised_by_fn_in_the_worker_is_not_taken_for_a_pickling_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    action = exegraph.in_process(fns.raise_type_error, "mine")

    def fail(*args: object) -> None:
        raise AssertionError("fn's own TypeError was searched for an unpicklable argument")

    monkeypatch.setattr(_offload._InProcess, "_unpicklable", fail)
    result = await exegraph.run_with_result(Graph([Step("f", action)]))
    error = result["f"].error
    assert type(error) is TypeError
    assert str(error) == "mine"


@pytest.mark.parametrize("fn", [fns.return_lock, functools.partial(fns.raise_holding_lock, "held")])
async def test_a_value_or_exception_that_cannot_be_pickled_back_fails_the_step_saying_so(
    fn: Callable[[], object],
) -> None:
    result = await exegraph.run_with_result(Graph([Step("f", exegraph.in_process(fn))]))
    error = result["f"].error
    assert isinstance(error, TypeError)
    name = "return_lock" if fn is fns.return_lock else "raise_holding_lock"
    assert str(error).startswith(
        f"step 'f': in_process({name}) ran in the worker, but its return value or the "
        "exception it raised cannot be passed back from the worker: TypeError: cannot "
        "pickle '_thread.lock' object. trio-parallel sends back only this error"
    )
    assert isinstance(error.__cause__, TypeError)


@pytest.mark.parametrize(
    ("fn", "why"),
    [
        (fns.return_pointer, "ValueError: ctypes objects containing pointers cannot be pickled"),
        (fns.return_refuses, "RuntimeError: not today"),
    ],
)
async def test_a_value_whose_pickling_raises_anything_fails_the_step_saying_so(
    fn: Callable[[], object], why: str
) -> None:
    # Not the function's own error: a `Retry(on=ValueError)` must not run it again.
    retry = exegraph.Retry(attempts=3, delay=0, on=(ValueError, RuntimeError))
    step = Step("f", exegraph.in_process(fn), retry=retry)
    timing = (await exegraph.run_with_result(Graph([step])))["f"]
    assert type(timing.error) is TypeError
    assert f"cannot be passed back from the worker: {why}. trio-parallel" in str(timing.error)
    assert timing.attempts == 1


async def test_the_functions_own_value_error_is_raised_as_it_is() -> None:
    action = exegraph.in_process(fns.raise_value_error, "mine")
    result = await exegraph.run_with_result(Graph([Step("f", action)]))
    error = result["f"].error
    assert type(error) is ValueError
    assert str(error) == "mine"


async def test_a_value_that_cannot_be_unpickled_here_fails_the_step_saying_so() -> None:
    result = await exegraph.run_with_result(
        Graph([Step("f", exegraph.in_process(fns.return_rebuilt))])
    )
    error = result["f"].error
    assert isinstance(error, TypeError)
    assert "cannot be passed back from the worker: TypeError: cannot rebuild a" in str(error)
    assert isinstance(error.__cause__, TypeError)


async def test_an_argument_the_worker_cannot_unpickle_fails_the_step_and_is_not_retried() -> None:
    # It pickles here and fails to unpickle in the worker (the job runner's `loads`, so
    # the function never ran): its ValueError came out as the function's own, and
    # `Retry(on=ValueError)` ran the step again and again.
    retry = exegraph.Retry(attempts=3, delay=0, on=ValueError)
    action = exegraph.in_process(fns.take, fns.BuiltHere())
    timing = (await exegraph.run_with_result(Graph([Step("f", action, retry=retry)])))["f"]
    assert timing.attempts == 1
    assert isinstance(timing.error, TypeError)
    assert str(timing.error).startswith(
        "step 'f': in_process(take) did not run: the worker process "
        "could not unpickle the function or its arguments, pickled here: ValueError: made "
        "in process"
    )
    assert isinstance(timing.error.__cause__, ValueError)


def test_a_script_function_using_an_unpicklable_global_is_refused_advising_a_module() -> None:
    pytest.importorskip("cloudpickle")
    namespace: dict[str, object] = {"__name__": "__main__", "lock": threading.Lock()}
    exec("def work():\n    with lock:\n        return 1\n", namespace)
    with pytest.raises(
        TypeError,
        match=r"in_process\(work\) cannot send the function .* defined in the script being "
        r"run \(module __main__\), so cloudpickle sends it by value, together with the "
        r"module-level globals it uses",
    ):
        exegraph.in_process(namespace["work"])  # type: ignore[arg-type]


async def test_a_lambda_runs_in_a_worker_when_cloudpickle_is_installed() -> None:
    pytest.importorskip("cloudpickle")
    graph = Graph([Step("double", exegraph.in_process(lambda x: 2 * x, 21))])
    result = await exegraph.run_with_result(graph)
    assert result["double"].value == 42


def test_without_cloudpickle_a_lambda_is_refused_naming_the_function(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_offload, "_dumps", lambda: pickle.dumps)
    with pytest.raises(
        TypeError, match=r"in_process\(<lambda>\) cannot send the function to a worker process"
    ):
        exegraph.in_process(lambda: None)


def test_without_trio_parallel_in_process_says_which_extra_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "trio_parallel", None)
    with pytest.raises(
        ImportError,
        match=r"pip install 'exegraph-trio\[process\]' \(or, in a clone of the repository: "
        r"pip install -e '\.\[process\]'\)",
    ):
        exegraph.in_process(fns.add, 1, 2)
    exegraph.in_thread(fns.add, 1, 2)  # threads need nothing more
