"""`exegraph_dask` (SPEC 2.4): steps run as tasks on a real Dask cluster.

Testing charter: one `distributed.LocalCluster` of two worker processes (one thread each),
on 127.0.0.1, started and closed by this module's fixture; nothing external. The functions
the workers run are in `tests/_dask_fns.py`, which worker processes import by name (they
inherit this process's `sys.path`). The scheduler is told `allowed-failures: 0`, so the
first worker death fails its task. Times here are real (a cluster has no virtual clock):
the bounds are loose, and every wait for the cluster is bounded so a regression fails
instead of hanging. Tests that kill a worker leave the nanny restarting it; the others
only need one live worker. The cluster's client is not the default client, so a step with
no client finds none unless a test makes one.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import os
import threading
import time
import traceback
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import cast

import dask
import distributed
import pytest
import trio
from distributed.core import Status
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import _dask_fns as fns
import exegraph_dask
import exegraph_otel
import exegraph_trio as exegraph
from exegraph_dask import on_cluster
from exegraph_trio import Retry, RunOptions, Step, StepStatus

pytestmark = [
    # A nanny whose worker was killed on purpose, and a cluster closed while one restarts,
    # say so through warnings of their own at the test's end; nothing else may warn.
    pytest.mark.filterwarnings("ignore:.*[Rr]estart.*:UserWarning"),
]


@pytest.fixture(scope="module")
def client() -> Iterator[distributed.Client]:
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        cluster = distributed.LocalCluster(  # type: ignore[no-untyped-call]
            n_workers=2,
            processes=True,
            threads_per_worker=1,
            dashboard_address="127.0.0.1:0",
            host="127.0.0.1",
        )
        client = distributed.Client(cluster, set_as_default=False)  # type: ignore[no-untyped-call]
        try:
            yield client
        finally:
            client.close()  # type: ignore[no-untyped-call]
            cluster.close()


def scheduler_keys(client: distributed.Client) -> list[str]:
    """The keys of the tasks the scheduler knows about."""

    def keys(dask_scheduler: distributed.Scheduler) -> list[str]:
        return [str(key) for key in dask_scheduler.tasks]

    result: list[str] = client.run_on_scheduler(keys)  # type: ignore[no-untyped-call]
    return result


async def until(predicate: Callable[[], bool], *, within: float = 10.0) -> None:
    """Poll `predicate` (in a thread: it may talk to the cluster) until it holds."""
    with trio.fail_after(within):
        while not await trio.to_thread.run_sync(predicate):  # noqa: ASYNC110 - nothing to wake us
            await trio.sleep(0.02)


async def wait_for_file(path: Path, *, within: float = 20.0) -> None:
    with trio.fail_after(within):
        while not path.exists():  # noqa: ASYNC110, ASYNC240 - a worker writes it; a stat is quick
            await trio.sleep(0.01)


def default_client() -> distributed.Client:
    """Dask's default client; `ValueError` when there is none."""
    found: distributed.Client = distributed.default_client()  # type: ignore[no-untyped-call]
    return found


def held(client: distributed.Client) -> Callable[[], AsyncIterator[distributed.Client]]:
    """A resource step's action that yields `client` (the test closes it, not the step)."""

    async def dask() -> AsyncIterator[distributed.Client]:
        yield client

    return dask


# --- the action, without a cluster ---------------------------------------------------


def test_the_action_is_named_after_the_function() -> None:
    action = on_cluster(fns.describe, "a.png", width=640)
    assert action.__name__ == "on_cluster(describe)"
    assert action.__qualname__ == "on_cluster(describe)"
    assert repr(action) == "on_cluster(describe, 'a.png', width=640)"


def test_the_signature_is_the_functions_minus_the_bound_arguments_plus_client(
    client: distributed.Client,
) -> None:
    assert str(inspect.signature(on_cluster(fns.describe, "a.png"))) == (
        "(*, width: 'int', fmt: 'str' = 'png', client: 'distributed.Client | None' = None)"
    )
    given = on_cluster(fns.describe, width=3, client=client)
    assert str(inspect.signature(given)) == "(*, path: 'str', fmt: 'str' = 'png')"


def test_a_step_refuses_a_misspelled_input_at_construction() -> None:
    with pytest.raises(TypeError, match="'widht'"):
        Step("resize", on_cluster(fns.describe, "a.png"), inputs={"widht": "size"})


def test_a_step_refuses_an_action_missing_an_argument_without_inputs_at_construction() -> None:
    # As a step of an `async def` needing an argument is: the action's signature says
    # what the call with no arguments leaves without a value.
    with pytest.raises(TypeError, match="called with no arguments, but it needs 'path'"):
        Step("resize", on_cluster(fns.describe, width=3))
    Step("resize", on_cluster(fns.describe, width=3), inputs={"path": "fetch"})


def test_a_step_refuses_an_input_that_repeats_a_bound_keyword_at_construction() -> None:
    with pytest.raises(TypeError, match="'width'"):
        Step("resize", on_cluster(fns.describe, "a.png", width=3), inputs={"width": "size"})


def test_arguments_that_do_not_fit_the_function_are_refused_at_once() -> None:
    with pytest.raises(TypeError, match=r"on_cluster\(add, \.\.\.\): the arguments do not fit"):
        on_cluster(fns.add, 1, 2, 3)


def test_an_async_function_is_refused() -> None:
    async def resize() -> None: ...

    with pytest.raises(TypeError, match="resize is async; write it as a plain `def`"):
        on_cluster(resize)


def test_a_generator_function_is_refused_as_in_thread_and_in_process_refuse_it() -> None:
    def frames() -> Iterator[int]:
        yield 1

    with pytest.raises(TypeError, match="frames is a generator function: calling it only"):
        on_cluster(frames)


def test_an_object_with_an_async_call_is_refused() -> None:
    class Resize:
        async def __call__(self, width: int) -> None: ...

    with pytest.raises(TypeError, match=r"__call__ of .*Resize is an async def"):
        on_cluster(Resize())


@pytest.mark.parametrize(
    "action",
    [on_cluster(fns.add), exegraph.in_thread(fns.add), exegraph.in_process(fns.add)],
    ids=["on_cluster", "in_thread", "in_process"],
)
def test_an_exegraph_action_is_refused_saying_to_pass_the_plain_function(
    action: Callable[..., object],
) -> None:
    with pytest.raises(TypeError, match=r"pass the plain function: on_cluster\(add, \.\.\.\)"):
        on_cluster(action)


def test_a_function_with_a_parameter_named_client_is_refused() -> None:
    # The keyword client= and an input named client are the Dask Client: never fn's.
    with pytest.raises(TypeError, match=r"has a parameter named 'client'.*rename the parameter"):
        on_cluster(fns.send)
    with pytest.raises(TypeError, match="has a parameter named 'client'"):
        on_cluster(fns.send, message="hi")


def test_a_parameter_named_client_given_positionally_is_accepted() -> None:
    action = on_cluster(fns.send, "alice")
    assert str(inspect.signature(action)) == (
        "(*, message: 'str', client: 'distributed.Client | None' = None)"
    )


def test_a_client_that_is_not_a_client_is_refused() -> None:
    with pytest.raises(TypeError, match=r"client must be a distributed\.Client or None"):
        on_cluster(fns.add, client="tcp://127.0.0.1:8786")  # type: ignore[arg-type]


def test_connect_refuses_an_asynchronous_client() -> None:
    with pytest.raises(TypeError, match="drop asynchronous=True"):
        exegraph_dask.connect("tcp://127.0.0.1:8786", asynchronous=True)


async def test_with_no_client_and_no_default_client_the_step_says_how_to_make_one() -> None:
    graph = exegraph.Graph([Step("sum", on_cluster(fns.add, 1, 2))])
    result = await exegraph.run_with_result(graph)
    error = result["sum"].error
    assert isinstance(error, RuntimeError)
    assert "on_cluster(add): no Dask client to submit through" in str(error)
    assert 'exegraph_dask.connect("tcp://HOST:8786")' in str(error)


# --- values and inputs ---------------------------------------------------------------


async def test_the_functions_result_is_the_steps_value(client: distributed.Client) -> None:
    graph = exegraph.Graph([Step("sum", on_cluster(fns.add, 2, b=3, client=client))])
    result = await exegraph.run_with_result(graph)
    assert result["sum"].value == 5


async def test_arguments_named_like_submits_own_reach_the_function(
    client: distributed.Client,
) -> None:
    # `key`, `priority`, `pure` and `workers` are also `Client.submit`'s parameters: given
    # as bound arguments or as inputs, they are the function's, not Dask's.
    async def workers() -> str:
        return "any"

    graph = exegraph.Graph(
        [
            Step("workers", workers),
            Step(
                "words",
                on_cluster(fns.submit_words, "k", priority=7, pure=True, client=client),
                inputs={"workers": "workers"},
            ),
        ]
    )
    result = await exegraph.run_with_result(graph)
    assert result["words"].value == "k/7/True/any"


async def test_inputs_reach_the_function_as_keyword_arguments(
    client: distributed.Client,
) -> None:
    async def width() -> int:
        return 640

    graph = exegraph.Graph(
        [
            Step("width", width),
            Step(
                "resize",
                on_cluster(fns.describe, "a.png", client=client),
                inputs={"width": "width"},
            ),
        ]
    )
    result = await exegraph.run_with_result(graph)
    assert result["resize"].value == "a.png@640.png"


async def test_a_scattered_future_reaches_the_function_as_its_value(
    client: distributed.Client,
) -> None:
    # The guide's advice for big data: it stays on the cluster, passed as a future.
    scattered = await trio.to_thread.run_sync(client.scatter, "a.png")
    other: distributed.Future[int] = await trio.to_thread.run_sync(client.scatter, 640)

    async def width() -> distributed.Future[int]:
        return other

    graph = exegraph.Graph(
        [
            Step("width", width),
            Step(
                "resize",
                on_cluster(fns.describe, scattered, client=client),
                inputs={"width": "width"},
            ),
        ]
    )
    result = await exegraph.run_with_result(graph)
    assert result["resize"].value == "a.png@640.png"
    scattered.release()
    other.release()  # type: ignore[no-untyped-call]


async def test_an_input_named_client_is_the_client_and_not_an_argument(
    client: distributed.Client,
) -> None:
    graph = exegraph.Graph(
        [
            Step("dask", held(client)),
            Step("sum", on_cluster(fns.add, 20, 22), inputs={"client": "dask"}),
        ]
    )
    result = await exegraph.run_with_result(graph)
    assert result["sum"].value == 42


async def test_the_default_client_is_used_when_none_is_given(client: distributed.Client) -> None:
    with client.as_current():
        graph = exegraph.Graph([Step("sum", on_cluster(fns.add, 1, 1))])
        result = await exegraph.run_with_result(graph)
    assert result["sum"].value == 2


async def test_connect_holds_a_client_for_the_steps_and_closes_it_at_teardown(
    client: distributed.Client,
) -> None:
    assert client.scheduler is not None
    address = client.scheduler.address
    seen: list[distributed.Client] = []

    async def keep(client: distributed.Client) -> None:
        seen.append(client)

    graph = exegraph.Graph(
        [
            Step("dask", exegraph_dask.connect(address, set_as_default=False), timeout=30),
            Step("sum", on_cluster(fns.add, 1, 2), inputs={"client": "dask"}),
            Step("keep", keep, inputs={"client": "dask"}),
        ]
    )
    result = await exegraph.run_with_result(graph)
    assert result["sum"].value == 3
    [connected] = seen
    assert connected is not client
    assert connected.status == "closed"


async def test_connect_closes_its_client_even_when_the_teardown_is_already_cancelled(
    client: distributed.Client, caplog: pytest.LogCaptureFixture
) -> None:
    assert client.scheduler is not None
    teardown = cast(
        "AsyncGenerator[distributed.Client, None]",
        exegraph_dask.connect(client.scheduler.address)(),
    )
    connected = await teardown.__anext__()
    assert default_client() is connected
    with trio.CancelScope() as scope, caplog.at_level(logging.WARNING, "exegraph_dask"):
        scope.cancel()
        await teardown.aclose()  # no time left: the close goes on in a thread
    assert scope.cancelled_caught
    assert "goes on in a background thread" in caplog.text
    with pytest.raises(ValueError, match="No clients found"):
        default_client()
    await until(lambda: connected.status == "closed")


async def test_a_local_cluster_whose_start_overran_the_deadline_is_closed_at_teardown() -> None:
    # Starting a LocalCluster cannot be cancelled: the step is set up past its deadline,
    # and its teardown (with the same 0.2 s) closes the Client and the cluster anyway.
    seen: list[tuple[distributed.Client, list[int]]] = []

    async def use(client: distributed.Client) -> None:
        pids = await trio.to_thread.run_sync(client.run, os.getpid)
        seen.append((client, list(pids.values())))

    connect = exegraph_dask.connect(
        n_workers=1,
        threads_per_worker=1,
        processes=True,
        dashboard_address="127.0.0.1:0",
        host="127.0.0.1",
        timeout=30,  # connecting to its scheduler never gives up: only the start overruns
    )
    graph = exegraph.Graph(
        [Step("dask", connect, timeout=0.2), Step("use", use, inputs={"client": "dask"})]
    )
    result = await exegraph.run_with_result(graph)
    assert result["use"].status is StepStatus.DONE, result["use"].error
    [(connected, pids)] = seen
    with pytest.raises(ValueError, match="No clients found"):
        default_client()  # the leaked client is not the default client
    cluster = connected.cluster
    assert cluster is not None

    def gone(pid: int) -> bool:  # the workers are this process's children, reaped by it
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return False

    await until(lambda: connected.status == "closed" and cluster.status == Status.closed)
    await until(lambda: all(map(gone, pids)))
    assert not cluster.workers


async def test_an_exception_on_the_worker_fails_the_step_with_its_type_and_traceback(
    client: distributed.Client,
) -> None:
    graph = exegraph.Graph([Step("frame-3", on_cluster(fns.fail, "bad frame 3", client=client))])
    result = await exegraph.run_with_result(graph)
    error = result["frame-3"].error
    assert isinstance(error, ValueError)
    assert str(error) == "bad frame 3"
    frames = [frame.name for frame in traceback.extract_tb(error.__traceback__)]
    assert "fail" in frames  # the worker's frame, raised where it was raised


async def test_a_stop_iteration_on_the_worker_fails_the_step_saying_so(
    client: distributed.Client,
) -> None:
    # Python turns it into a RuntimeError naming neither the function nor the step
    # (PEP 479), as for `in_thread` and `in_process`, which say it the same way.
    graph = exegraph.Graph([Step("stop", on_cluster(fns.stop, "no more", client=client))])
    error = (await exegraph.run_with_result(graph))["stop"].error
    assert isinstance(error, RuntimeError)
    assert str(error).startswith("step 'stop': on_cluster(stop) raised StopIteration")
    assert isinstance(error.__cause__, StopIteration)
    assert str(error.__cause__) == "no more"


async def test_an_asyncio_cancelled_error_raised_on_the_worker_is_that_error(
    client: distributed.Client,
) -> None:
    # `gather` raises the function's exception here; this one was taken for the client's
    # loop shutting down, and the step failed saying the client had closed (it had not).
    # A `BaseException`, it propagates as from `in_thread` or an `async def`.
    graph = exegraph.Graph([Step("s", on_cluster(fns.cancel_itself, "its own", client=client))])
    with pytest.raises(asyncio.CancelledError, match="its own"):
        await exegraph.run(graph)
    assert client.status == "running"


async def test_a_value_that_cannot_be_unpickled_here_fails_the_step_and_is_not_retried(
    client: distributed.Client,
) -> None:
    # The function returned on the worker; its value's ValueError while being unpickled
    # here came out as the function's own, and `Retry(on=ValueError)` ran it again.
    retry = Retry(attempts=3, delay=0, on=ValueError)
    action = on_cluster(fns.return_built_there, client=client)
    timing = (await exegraph.run_with_result(exegraph.Graph([Step("v", action, retry=retry)])))["v"]
    assert timing.attempts == 1
    assert isinstance(timing.error, TypeError)
    assert str(timing.error).startswith(
        "step 'v': on_cluster(return_built_there) ran on the cluster, but its return value "
        "could not be fetched and unpickled here: ValueError: made in process"
    )
    assert isinstance(timing.error.__cause__, ValueError)


async def test_an_input_repeating_a_bound_keyword_fails_the_step_saying_which(
    client: distributed.Client,
) -> None:
    def takes_anything(**kwargs: object) -> None: ...

    async def three() -> int:
        return 3

    graph = exegraph.Graph(
        [
            Step("three", three),
            Step("x", on_cluster(takes_anything, a=1, client=client), inputs={"a": "three"}),
        ]
    )
    error = (await exegraph.run_with_result(graph))["x"].error
    assert isinstance(error, TypeError)
    assert "'a' is given both to on_cluster(...) and by the step's inputs" in str(error)


# --- cancellation --------------------------------------------------------------------


async def test_fail_fast_cancels_a_running_cluster_task(
    client: distributed.Client, tmp_path: Path
) -> None:
    async def fail_once_started() -> None:
        await wait_for_file(tmp_path / "started")
        raise ConnectionError("deploy failed")

    graph = exegraph.Graph(
        [
            Step("long", on_cluster(fns.sleep_until_cancelled, str(tmp_path), client=client)),
            Step("deploy", fail_once_started),
        ]
    )
    result = await exegraph.run_with_result(graph)
    assert result["long"].status is StepStatus.CANCELLED
    key = (tmp_path / "started").read_text()
    assert key.startswith("sleep_until_cancelled-")
    await until(lambda: key not in client.futures)  # the client dropped it, as cancelled
    await until(lambda: key not in scheduler_keys(client))  # the scheduler forgot it
    await wait_for_file(tmp_path / "stopped", within=5)  # the worker marked it cancelled
    assert (tmp_path / "stopped").read_text().startswith("cancelled")


async def test_a_step_deadline_cancels_the_cluster_task_and_the_step_ends_at_once(
    client: distributed.Client, tmp_path: Path
) -> None:
    started = trio.current_time()
    graph = exegraph.Graph(
        [
            Step(
                "long",
                on_cluster(fns.sleep_until_cancelled, str(tmp_path), client=client),
                timeout=1.0,
            )
        ]
    )
    result = await exegraph.run_with_result(graph)
    assert isinstance(result["long"].error, exegraph.StepTimeoutError)
    assert trio.current_time() - started < 1.5
    assert (tmp_path / "started").exists()
    key = (tmp_path / "started").read_text()
    await until(lambda: key not in scheduler_keys(client))
    await wait_for_file(tmp_path / "stopped", within=5)


async def test_an_outer_cancel_scope_cancels_the_task_and_trio_cancelled_propagates(
    client: distributed.Client, tmp_path: Path
) -> None:
    graph = exegraph.Graph(
        [Step("long", on_cluster(fns.sleep_until_cancelled, str(tmp_path), client=client))]
    )
    with trio.CancelScope() as scope:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(exegraph.run, graph)
            await wait_for_file(tmp_path / "started")
            scope.cancel()
    assert scope.cancelled_caught
    key = (tmp_path / "started").read_text()
    await until(lambda: key not in scheduler_keys(client))


async def test_pending_steps_hold_no_thread(client: distributed.Client, tmp_path: Path) -> None:
    new_threads: list[list[str]] = []
    before = {thread.ident for thread in threading.enumerate()}

    folders = [tmp_path / str(i) for i in range(20)]
    for folder in folders:
        folder.mkdir()

    async def count_then_fail() -> None:
        # The steps all start in one batch of Trio's, each submitting its task before it
        # parks; a worker may start the first task before the batch is over (a submit
        # takes a while). So first let the batch end: every step has submitted then.
        await trio.lowlevel.checkpoint()
        with trio.fail_after(20):
            while not any((f / "started").exists() for f in folders):  # noqa: ASYNC110
                await trio.sleep(0.01)
        new_threads.append([t.name for t in threading.enumerate() if t.ident not in before])
        raise ConnectionError("stop")

    steps = [
        Step(f"long-{i}", on_cluster(fns.sleep_until_cancelled, str(folder), client=client))
        for i, folder in enumerate(folders)
    ]
    graph = exegraph.Graph([*steps, Step("count", count_then_fail)])
    result = await exegraph.run_with_result(graph, RunOptions(max_concurrency=21))
    # 20 steps waiting on the cluster: a thread each would be 20 more. Dask (its offload
    # executor) and Trio (its thread cache) may start a helper thread or two meanwhile.
    [started] = new_threads
    assert len(started) <= 4, started
    assert all(result[step.name].status is StepStatus.CANCELLED for step in steps), result.table()
    await until(lambda: not any(k.startswith("sleep_until") for k in scheduler_keys(client)))


# --- a worker dies -------------------------------------------------------------------


async def test_a_worker_killed_mid_task_fails_the_step(
    client: distributed.Client, tmp_path: Path
) -> None:
    graph = exegraph.Graph(
        [Step("fragile", on_cluster(fns.die_once, str(tmp_path / "died"), client=client))]
    )
    result = await exegraph.run_with_result(graph)
    assert (tmp_path / "died").exists()
    assert isinstance(result["fragile"].error, distributed.KilledWorker)


async def test_a_retry_runs_a_fresh_task_after_a_worker_died(
    client: distributed.Client, tmp_path: Path
) -> None:
    await trio.to_thread.run_sync(client.wait_for_workers, 1)
    graph = exegraph.Graph(
        [
            Step(
                "fragile",
                on_cluster(fns.die_once, str(tmp_path / "died"), client=client),
                retry=Retry(attempts=2, delay=0),
            )
        ]
    )
    result = await exegraph.run_with_result(graph)
    timing = result["fragile"]
    assert timing.status is StepStatus.DONE, timing.error
    assert timing.attempts == 2
    assert str(timing.value).startswith("survived in ")
    [earlier] = timing.earlier_errors
    assert isinstance(earlier, distributed.KilledWorker)


# --- tracing -------------------------------------------------------------------------


async def test_the_step_spans_trace_context_is_current_on_the_worker(
    client: distributed.Client,
) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    instrument = exegraph_otel.OtelInstrument(tracer_provider=provider)
    graph = exegraph.Graph([Step("traced", on_cluster(fns.current_span_ids, client=client))])
    result = await exegraph.run_with_result(graph, RunOptions(instruments=[instrument]))
    provider.shutdown()
    value = result["traced"].value
    assert isinstance(value, tuple)
    trace_id, span_id, remote = value
    [step_span] = [span for span in exporter.get_finished_spans() if span.name == "traced"]
    assert step_span.context is not None
    assert trace_id == f"{step_span.context.trace_id:032x}"
    assert span_id == f"{step_span.context.span_id:016x}"
    assert remote is True


async def test_without_a_current_span_the_worker_sees_none(client: distributed.Client) -> None:
    graph = exegraph.Graph([Step("untraced", on_cluster(fns.current_span_ids, client=client))])
    value = (await exegraph.run_with_result(graph))["untraced"].value
    assert isinstance(value, tuple)
    assert value[0] == "0" * 32


def test_finished_tasks_leave_nothing_on_the_scheduler(client: distributed.Client) -> None:
    # Runs last in this module: every step's task was released or cancelled.
    deadline = time.monotonic() + 10
    while (left := scheduler_keys(client)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert left == []


async def test_a_step_submitted_while_its_client_closes_fails_saying_so(
    client: distributed.Client,
) -> None:
    # Dask cancels the futures a client has when it starts closing; one submitted in the
    # closing window is never settled. Its step must fail, not wait for ever. (The window
    # is widened here by slowing the client's last step of closing.)
    address = client.scheduler_info()["address"]
    closing = distributed.Client(address, set_as_default=False)  # type: ignore[no-untyped-call]
    close_rpc = closing.rpc.close

    async def slow_close() -> None:
        await asyncio.sleep(1.0)
        await close_rpc()

    closing.rpc.close = slow_close  # type: ignore[method-assign]
    async with trio.open_nursery() as nursery:
        nursery.start_soon(functools.partial(trio.to_thread.run_sync, closing.close))
        while closing.status != "closing":  # noqa: ASYNC110 - polled: Dask sets it in a thread
            await trio.sleep(0.001)
        await trio.sleep(0.3)  # in the window: closing, its futures already cancelled
        with trio.fail_after(10), pytest.raises(RuntimeError, match="client closed"):
            await on_cluster(fns.add, 1, 2, client=closing)()
