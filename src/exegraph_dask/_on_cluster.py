"""`on_cluster`: a step action that runs a sync function as a task on a Dask cluster.

How a step waits, without a thread: the Trio task submits the task through the (sync)
`distributed.Client`, which only queues a message for the client's own event loop, then
parks in `trio.lowlevel.wait_task_rescheduled`. A coroutine scheduled on that loop awaits
the task and fetches its result (Dask batches the fetches of many tasks into few
requests), and hands the outcome back with `TrioToken.run_sync_soon`, which reschedules
the step's task. If the step is cancelled first, the abort function sends the cancel to
the scheduler (again through the client's loop, without waiting) and the step ends at
once, with `trio.Cancelled`; the outcome that may still arrive is dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import reprlib
import threading
import types
import uuid
import weakref
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final, Generic, TypeVar, final

import distributed
import outcome
import trio
from dask.utils import funcname
from distributed.client import ClosedClientError

from exegraph_trio._offload import is_stop_iteration as _is_stop_iteration

from ._worker import call

_inject: Callable[[dict[str, str]], None] | None
try:
    from opentelemetry.propagate import inject as _inject
except ImportError:  # no opentelemetry-api: tasks travel without a trace context
    _inject = None

__all__ = ["on_cluster"]

T = TypeVar("T")

CLIENT = "client"
"""The keyword that is `on_cluster`'s own: the Client, never an argument of the function."""

_SUBMIT_PARAMETERS: Final = frozenset(
    name
    for name, parameter in inspect.signature(distributed.Client.submit).parameters.items()
    if parameter.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
)
"""`Client.submit`'s own parameters (`key`, `priority`, ...): keyword arguments of `fn` with
these names travel inside the `_worker.call` wrapper, since `submit` would take them."""

_repr = reprlib.Repr()
_repr.maxstring = 40
_repr.maxother = 40


def on_cluster(
    fn: Callable[..., T],
    /,
    *args: object,
    client: distributed.Client | None = None,
    **kwargs: object,
) -> Callable[..., Awaitable[T]]:
    """Make a step action that runs `fn(*args, **kwargs, **inputs)` on a Dask cluster.

    ```python
    import exegraph_dask

    def resize(path: str, width: int) -> str: ...  # a plain function: runs on a worker

    exegraph.Step("dask", exegraph_dask.connect("tcp://scheduler:8786"))
    exegraph.Step(
        "resize",
        exegraph_dask.on_cluster(resize, width=640),
        inputs={"client": "dask", "path": "download"},
    )
    ```

    Each call of the action (each attempt of the step) submits one fresh task — `pure=False`,
    keyed `"<fn name>-<uuid>"` — and waits for it without blocking a thread; the task's
    result is the step's value. The step's `inputs` are keyword arguments of `fn`, except an
    input named `client`: that one is the `distributed.Client` to submit through (the value
    of a resource step such as [`connect`][exegraph_dask.connect]), and is not passed on.

    - **Values** travel through the machine running the graph: a step's value is fetched
      from the worker, and sent again, pickled, with the task of each step that takes it
      as an input. Big ones cost time and memory there (and past 10 MB Dask warns
      "Sending large graph of size ..." with a `UserWarning`, an error under `-W error`).
      Keep big data on the cluster: a `distributed.Future` (from `client.scatter(value)`)
      given as an argument or an input reaches `fn` as its value, fetched by the worker
      from the cluster; or have `fn` write to shared storage and return the path.
    - **Errors**: an exception `fn` raises on the worker fails the step with that exception
      (its type, message and the worker's traceback). A worker that dies while running the
      task fails the step with `distributed.KilledWorker` once the scheduler gives up
      rescheduling it (`distributed.scheduler.allowed-failures`, 3 by default). Dask's own
      task retries are not used: a step's [`Retry`][exegraph_trio.Retry] submits a new task
      per attempt.
    - **Cancellation** (fail-fast, the step's deadline, Ctrl-C, an outer cancel scope): the
      step ends at once with `trio.Cancelled` and a cancel for the task goes to the
      scheduler, which forgets it within a message round trip: a task still waiting never
      starts, and its future is `cancelled`. A task already running on a worker is not
      interrupted — Dask cannot stop a thread — it runs to its end, and its result is
      thrown away. A long function can stop early by checking
      `distributed.get_worker().state.tasks[key].state == "cancelled"` now and then.
    - **Tracing**: when `opentelemetry-api` is installed and a span is current (the step's
      span, under `exegraph_otel`), its W3C trace context (`traceparent`) travels with the
      task and is current on the worker while `fn` runs, so spans `fn` makes nest under
      the step when the worker exports traces.

    A task that carries a trace context (or a keyword argument of `fn` named like one of
    `Client.submit`'s own, such as `key` or `priority`) is a small wrapper from this package
    around `fn`, so workers need `exegraph-trio` installed, like every library `fn` uses;
    any other task is `fn` itself, as `client.submit(fn, ...)` would make it.

    Args:
        fn: a sync function, picklable (a module-level function; cloudpickle also takes
            lambdas and closures defined in `__main__`). An `async def` function is refused,
            and so is a parameter of `fn` named `client` (see `client`).
        *args: positional arguments of `fn`, pickled and sent with each task.
        client: the `distributed.Client` (sync, as made by `distributed.Client(address)`)
            to submit through. `None` (the default): an input named `client`, else the
            default client (`distributed.default_client()`, the last one created) when the
            step runs. The name `client` is taken: a parameter of `fn` named `client` could
            only be given positionally, in `args`, and is refused otherwise.
        **kwargs: keyword arguments of `fn`, sent with each task.

    Returns:
        An async action for [`Step`][exegraph_trio.Step], named `on_cluster(<fn name>)`.
        Its signature is `fn`'s minus the arguments given here, as keyword-only
        parameters, plus `client` when no `client` was given — so `Step(..., inputs=...)`
        refuses a misspelled input at construction.

    Raises:
        TypeError: `fn` is not callable or returns an awaitable (an `async def`
            function, an object with an `async def __call__`, or an exegraph action made
            by `on_cluster`, `in_thread` or `in_process`: pass the plain function), or is
            a generator function (as `in_thread` and `in_process` refuse it); `fn`
            has a parameter named `client` not given positionally here (it could never be
            given: rename it); `args` and `kwargs` do not fit `fn`'s signature; `client` is
            not a `distributed.Client`.
            When the step runs: an input repeats a keyword given here, or the input
            `client` is not a `distributed.Client` or comes with a `client` given here.
        RuntimeError: when the step runs: `fn` raised `StopIteration` (the `RuntimeError`
            says so, with it as its `__cause__`: it cannot pass through an async action);
            no client was given and there is no default
            client (the message says how to make one).
    """
    if not callable(fn):
        raise TypeError(f"on_cluster needs a function to run, not {type(fn).__name__}: {fn!r}")
    _refuse_async(fn)
    signature = _signature_of(fn)
    _refuse_client_parameter(fn, signature, args)
    if client is not None and not isinstance(client, distributed.Client):
        raise TypeError(
            f"client must be a distributed.Client or None, not {type(client).__name__}: {client!r}"
        )
    return _OnCluster(fn, signature, args, kwargs, client)


_builtin_signatures: dict[Callable[..., object], inspect.Signature | None] = {}
"""The signatures of module-level builtins (`operator.neg`), which never change."""


def _signature_of(fn: Callable[..., object]) -> inspect.Signature | None:
    """`inspect.signature(fn)`, or `None` for a builtin without a readable one.

    A builtin's signature is parsed from its `__text_signature__`, some 200 µs a time: as
    much as Dask's own work for a tiny task, were it done for each step of a graph of
    `on_cluster(operator.neg, i)`. So a module-level builtin's is kept.
    """
    builtin = isinstance(fn, types.BuiltinFunctionType) and (
        fn.__self__ is None or isinstance(fn.__self__, types.ModuleType)
    )
    if builtin and fn in _builtin_signatures:
        return _builtin_signatures[fn]
    try:
        signature: inspect.Signature | None = inspect.signature(fn)
    except (TypeError, ValueError):  # a builtin without a readable signature
        signature = None
    if builtin:
        _builtin_signatures[fn] = signature
    return signature


def _refuse_async(fn: Callable[..., object]) -> None:
    """Refuse what returns an awaitable: the worker would get a coroutine, not a value."""
    inner = getattr(fn, "_fn", None)
    if isinstance(fn, _OnCluster) or (
        inner is not None and type(fn).__module__.startswith("exegraph_trio")
    ):
        name = funcname(inner) if inner is not None else repr(fn)
        raise TypeError(
            f"on_cluster runs a plain function on a worker, but {fn!r} is an exegraph step "
            f"action (it returns a coroutine, which cannot be sent to a worker); pass the "
            f"plain function: on_cluster({name}, ...)"
        )
    if inspect.iscoroutinefunction(fn) or inspect.isasyncgenfunction(fn):
        raise TypeError(
            f"on_cluster runs a sync function on a worker, but {funcname(fn)} is async; "
            "write it as a plain `def` (a worker runs it in a thread of its own)"
        )
    if inspect.isgeneratorfunction(fn):  # (as in_thread and in_process refuse it)
        raise TypeError(
            f"on_cluster runs a function and returns what it returns, but {funcname(fn)} is "
            "a generator function: calling it only makes a generator, which cannot be sent "
            "back, and none of its code runs. Give it a function that runs the generator, "
            "like `def collect(): return list(gen())`"
        )
    call = getattr(type(fn), "__call__", None)  # noqa: B004 - the class attribute
    if not inspect.isroutine(fn) and (
        inspect.iscoroutinefunction(call) or inspect.isasyncgenfunction(call)
    ):
        raise TypeError(
            f"on_cluster runs a sync function on a worker, but {fn!r} is async (the "
            f"__call__ of {type(fn).__qualname__} is an async def); give it a plain `def` "
            "__call__, or a plain function (a worker runs it in a thread of its own)"
        )


def _refuse_client_parameter(
    fn: Callable[..., object], signature: inspect.Signature | None, args: tuple[object, ...]
) -> None:
    """Refuse `fn` with a parameter `client` that only a keyword could fill."""
    if signature is None:  # a builtin without a readable signature
        return
    for position, parameter in enumerate(signature.parameters.values()):
        if parameter.name != CLIENT or parameter.kind not in (
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
            inspect.Parameter.KEYWORD_ONLY,
        ):
            continue
        if parameter.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD and position < len(args):
            return  # given positionally by on_cluster(fn, ...)
        raise TypeError(
            f"on_cluster({funcname(fn)}): {funcname(fn)} has a parameter named 'client', "
            "which can never be given: on_cluster's keyword client= and a step input named "
            "'client' are the Dask Client to submit through, never an argument of the "
            "function; rename the parameter"
        )


def _signature(
    fn: Callable[..., object],
    signature: inspect.Signature | None,
    args: tuple[object, ...],
    kwargs: Mapping[str, object],
    *,
    takes_client: bool,
) -> inspect.Signature:
    """`fn`'s parameters not bound by `args`/`kwargs`, keyword-only, plus `client`."""
    name = funcname(fn)
    if signature is None:  # a builtin without a readable signature
        parameters = [inspect.Parameter("kwargs", inspect.Parameter.VAR_KEYWORD)]
    else:
        try:
            bound = signature.bind_partial(*args, **kwargs).arguments
        except TypeError as exc:
            raise TypeError(
                f"on_cluster({name}, ...): the arguments do not fit {name}{signature}: {exc}"
            ) from None
        parameters = []
        var_keyword = None
        for parameter in signature.parameters.values():
            kind = parameter.kind
            if kind is inspect.Parameter.VAR_KEYWORD:
                var_keyword = parameter
            elif (
                kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
                and parameter.name not in bound
                and parameter.name != CLIENT
            ):
                parameters.append(parameter.replace(kind=inspect.Parameter.KEYWORD_ONLY))
        if var_keyword is not None:
            parameters.append(var_keyword)
    if takes_client:
        client = inspect.Parameter(
            CLIENT,
            inspect.Parameter.KEYWORD_ONLY,
            default=None,
            annotation="distributed.Client | None",
        )
        last = parameters[-1] if parameters else None
        at = len(parameters) - (last is not None and last.kind is inspect.Parameter.VAR_KEYWORD)
        parameters.insert(at, client)
    return inspect.Signature(parameters, return_annotation=inspect.Signature.empty)


@final
class _OnCluster(Generic[T]):
    """The action `on_cluster` returns: one Dask task per call."""

    __slots__ = (
        "__name__",
        "__qualname__",
        "__signature__",
        "_args",
        "_client",
        "_fn",
        "_kwargs",
        "_name",
    )

    def __init__(
        self,
        fn: Callable[..., T],
        signature: inspect.Signature | None,
        args: tuple[object, ...],
        kwargs: dict[str, object],
        client: distributed.Client | None,
    ) -> None:
        self._fn = fn
        self._args = args
        self._kwargs = kwargs
        self._client = client
        self._name = funcname(fn)
        self.__name__ = self.__qualname__ = f"on_cluster({self._name})"
        self.__signature__ = _signature(fn, signature, args, kwargs, takes_client=client is None)

    def __repr__(self) -> str:
        parts = [self._name, *map(_repr.repr, self._args)]
        parts += [f"{key}={_repr.repr(value)}" for key, value in self._kwargs.items()]
        if self._client is not None:
            parts.append(f"client={self._client!r}")
        return f"on_cluster({', '.join(parts)})"

    async def __call__(self, **inputs: Any) -> T:
        """Run the function on the cluster once; its result is the step's value."""
        client = self._client
        if CLIENT in inputs:
            client = self._input_client(inputs.pop(CLIENT))
        if client is None:
            client = self._default_client()
        kwargs = self._kwargs
        if inputs:
            repeated = inputs.keys() & kwargs.keys()
            if repeated:
                raise TypeError(
                    f"{self.__name__}: {', '.join(map(repr, sorted(repeated)))} is given both "
                    "to on_cluster(...) and by the step's inputs; drop one of them"
                )
            kwargs = {**kwargs, **inputs}
        carrier: dict[str, str] = {}
        if _inject is not None:
            _inject(carrier)
        key = f"{self._name}-{uuid.uuid4().hex}"
        if carrier or not kwargs.keys().isdisjoint(_SUBMIT_PARAMETERS):
            future = client.submit(call, carrier, self._fn, self._args, kwargs, key=key, pure=False)
        else:  # nothing to attach on the worker: the task is fn itself, as by hand
            future = client.submit(self._fn, *self._args, key=key, pure=False, **kwargs)
        try:
            return await _result_of(client, future)
        except _Unfetched as exc:
            error = exc.error
            raise TypeError(
                f"step {trio.lowlevel.current_task().name!r}: {self.__name__} ran on the "
                "cluster, but its return value could not be fetched and unpickled here: "
                f"{type(error).__name__}: {error}. Return plain data"
            ) from error
        except RuntimeError as exc:
            if not _is_stop_iteration(exc):
                raise
            # (Python turned it into "coroutine raised StopIteration", naming nothing)
            raise RuntimeError(
                f"step {trio.lowlevel.current_task().name!r}: {self.__name__} raised "
                "StopIteration (its __cause__), which cannot pass through an async action; "
                "catch it in the function and return or raise something else"
            ) from exc.__cause__

    def _input_client(self, given: object) -> distributed.Client | None:
        if self._client is not None:
            raise TypeError(
                f"{self.__name__} was given client=... and the step's input 'client' too; "
                "drop one of them"
            )
        if given is not None and not isinstance(given, distributed.Client):
            raise TypeError(
                f"{self.__name__}: the input 'client' is the Client to submit through and "
                f"must be a distributed.Client, not {type(given).__name__}: {given!r}; "
                "rename the input if it is meant for the function"
            )
        return given

    def _default_client(self) -> distributed.Client:
        try:
            client: distributed.Client = distributed.default_client()  # type: ignore[no-untyped-call]
            return client
        except ValueError:
            raise RuntimeError(
                f"{self.__name__}: no Dask client to submit through. Hold one in a resource "
                "step and take it as an input — "
                'Step("dask", exegraph_dask.connect("tcp://HOST:8786")) and '
                "Step(..., inputs={'client': 'dask'}) — or pass "
                "on_cluster(..., client=distributed.Client(...)), or create a "
                "distributed.Client before the run (it becomes the default client)"
            ) from None


class _Inbox:
    """The outcomes of one Trio run's cluster tasks, handed over a batch per wake-up.

    Dask's event-loop thread puts outcomes in; the first of a batch asks Trio (one
    `run_sync_soon`, one write to its wake-up socket) to reschedule the waiting tasks of
    all that arrived meanwhile, so a burst of finished tasks wakes Trio once, not once each.
    """

    __slots__ = ("_items", "_lock", "_token")

    def __init__(self) -> None:
        self._token = trio.lowlevel.current_trio_token()
        self._lock = threading.Lock()
        self._items: list[tuple[_Waiter, outcome.Outcome[object]]] = []

    def put(self, waiter: _Waiter, result: outcome.Outcome[object]) -> None:
        """Called in the Dask client's event-loop thread."""
        with self._lock:
            self._items.append((waiter, result))
            first = len(self._items) == 1
        if first:
            with contextlib.suppress(trio.RunFinishedError):  # the run is over: nobody waits
                self._token.run_sync_soon(self._wake)

    def _wake(self) -> None:
        with self._lock:
            items, self._items = self._items, []
        for waiter, result in items:
            if not waiter.abandoned:
                trio.lowlevel.reschedule(waiter.task, result)


_INBOX: trio.lowlevel.RunVar[_Inbox] = trio.lowlevel.RunVar("exegraph_dask.inbox")


class _Waiter:
    """Where the task's outcome goes: the parked Trio task, unless it was cancelled."""

    __slots__ = ("abandoned", "delivered", "inbox", "task")

    def __init__(self) -> None:
        self.task = trio.lowlevel.current_task()
        try:
            self.inbox = _INBOX.get()
        except LookupError:
            self.inbox = _Inbox()
            _INBOX.set(self.inbox)
        self.abandoned = False
        self.delivered = False

    def deliver(self, result: outcome.Outcome[object]) -> None:
        """Hand `result` to the Trio task, the first time only; in the client's loop thread."""
        if self.delivered:
            return
        self.delivered = True
        self.inbox.put(self, result)


FETCH_WINDOW: Final = 0.001
"""Seconds a fetch of finished results waits for more to finish, to fetch them together."""
CLOSED_CHECK: Final = 1.0
"""Seconds between looks at whether the client closed while a task was being waited for."""


def _closed(future: distributed.Future[Any], doing: str) -> RuntimeError:
    return RuntimeError(f"the Dask client closed while {doing} {future.key}")


async def _settle(
    client: distributed.Client, future: distributed.Future[Any], waiter: _Waiter
) -> None:
    """On the client's event loop: wait for `future`, fetch its result, deliver it."""
    try:
        value = await client.gather(future, asynchronous=True)  # type: ignore[no-untyped-call]
    except asyncio.CancelledError as exc:
        if _cancelled_here():  # the client's loop is shutting down, or the client closed
            waiter.deliver(outcome.Error(_closed(future, "waiting for")))
            raise exc from None
        waiter.deliver(outcome.Error(exc))  # what the function raised (a library's own)
    except BaseException as exc:  # noqa: BLE001 - every error is the step's to raise
        if future.status == "finished" and isinstance(exc, Exception):
            exc = _Unfetched(exc)  # (the function returned: its value did not come back)
        waiter.deliver(outcome.Error(exc))
    else:
        waiter.deliver(outcome.Value(value))


class _Unfetched(Exception):  # (a marker, never raised out of `__call__`)
    """The function returned on the cluster, but its value could not be had here (`error`)."""

    def __init__(self, error: Exception) -> None:
        super().__init__(error)
        self.error = error


def _cancelled_here() -> bool:
    """Whether the `asyncio.CancelledError` being handled cancels this task.

    Else a function run on the cluster raised it, and `gather` raised it again here.
    """
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


class _Fetcher:
    """Fetches the results of one client's finished tasks in batches, on its event loop.

    Fetching a result costs a request to the scheduler (which asks the worker); fetched one
    by one, as `client.gather(future)` per step would, that request costs more than the
    tiny task itself. So a task that finished joins a batch, fetched `FETCH_WINDOW` after
    its first member finished, in one `client.gather`. Tasks that failed or were cancelled
    need no fetch: their outcome is delivered at once.

    The waits start the same way, in bursts: a step hands its future over with `watch`
    (in the Trio thread), and the first of a burst asks the client's loop (one
    `add_callback`, one write to its wake-up socket) to start the waits of all handed over
    meanwhile, so 1 000 steps submitted at once wake Dask's loop once for them, not 1 000
    times on top of the submits' own wake-ups.
    """

    __slots__ = ("_client", "_fetching", "_incoming", "_lock", "_ready", "_tracking", "_watcher")

    def __init__(self, client: distributed.Client) -> None:
        self._client = client
        self._ready: list[tuple[distributed.Future[Any], _Waiter]] = []
        self._fetching = False
        self._lock = threading.Lock()
        self._incoming: list[tuple[distributed.Future[Any], _Waiter]] = []
        self._tracking: set[asyncio.Task[None]] = set()  # the loop keeps weak references
        self._watcher: asyncio.Task[None] | None = None

    def watch(self, loop: Any, future: distributed.Future[Any], waiter: _Waiter) -> None:
        """Have `future` tracked on the client's `loop`; called in any thread."""
        with self._lock:
            self._incoming.append((future, waiter))
            first = len(self._incoming) == 1
        if first:
            loop.add_callback(self._start)

    def _start(self) -> None:
        """On the client's loop: track the futures handed over since the last call."""
        with self._lock:
            incoming, self._incoming = self._incoming, []
        for future, waiter in incoming:
            task = asyncio.ensure_future(self.track(future, waiter))
            self._tracking.add(task)
            task.add_done_callback(self._tracking.discard)
        if self._watcher is None:
            self._watcher = asyncio.ensure_future(self._watch_closed())

    async def _watch_closed(self) -> None:
        """While tasks are tracked: end their waits if the client closed.

        A task submitted while the client was closing is never settled by Dask (closing
        cancelled the futures it had then): its wait is cancelled here, and its step
        fails saying the client closed.
        """
        try:
            while self._tracking:
                await asyncio.sleep(CLOSED_CHECK)
                if self._client.status == "closed":
                    for task in list(self._tracking):
                        task.cancel()
        finally:
            self._watcher = None

    async def track(self, future: distributed.Future[Any], waiter: _Waiter) -> None:
        """Wait for `future` to settle; deliver its outcome, or queue it for a fetch."""
        state = getattr(future, "_state", None)
        if state is None or not hasattr(state, "wait"):  # a distributed we do not know
            await _settle(self._client, future, waiter)
            return
        try:
            await state.wait()
        except asyncio.CancelledError:  # the loop is shutting down, or the client closed
            waiter.deliver(outcome.Error(_closed(future, "waiting for")))
            raise
        if future.status != "finished" or waiter.abandoned:
            await _settle(self._client, future, waiter)  # raises at once: nothing to fetch
            return
        self._ready.append((future, waiter))
        if not self._fetching:
            self._fetching = True
            try:
                await self._fetch()
            finally:
                self._fetching = False

    async def _fetch(self) -> None:
        while self._ready:
            batch: list[tuple[distributed.Future[Any], _Waiter]] = []
            try:
                await asyncio.sleep(FETCH_WINDOW)
                batch, self._ready = self._ready, []
                futures = [future for future, _ in batch]
                values = await self._client.gather(futures, asynchronous=True)  # type: ignore[no-untyped-call]
            except (asyncio.CancelledError, Exception) as exc:
                if isinstance(exc, asyncio.CancelledError) and _cancelled_here():
                    for future, waiter in [*batch, *self._ready]:  # (the loop is closing)
                        waiter.deliver(outcome.Error(_closed(future, "fetching")))
                    self._ready = []
                    raise
                for future, waiter in batch:  # one of them failed after all: one by one
                    await _settle(self._client, future, waiter)
            else:
                for (_, waiter), value in zip(batch, values, strict=True):
                    waiter.deliver(outcome.Value(value))


_fetchers: weakref.WeakKeyDictionary[distributed.Client, _Fetcher] = weakref.WeakKeyDictionary()
_fetchers_lock = threading.Lock()


def _fetcher(client: distributed.Client) -> _Fetcher:
    fetcher = _fetchers.get(client)
    if fetcher is None:
        with _fetchers_lock:
            fetcher = _fetchers.setdefault(client, _Fetcher(client))
    return fetcher


async def _cancel(client: distributed.Client, future: distributed.Future[Any]) -> None:
    """On the client's loop: cancel `future`'s task, unless the client closed (it did)."""
    if client.status in ("closing", "closed"):
        return  # closing the client cancels every task it had
    with contextlib.suppress(ClosedClientError):  # closed meanwhile
        await client.cancel(  # type: ignore[no-untyped-call]
            [future], asynchronous=True, reason="the exegraph step was cancelled"
        )


async def _result_of(client: distributed.Client, future: distributed.Future[T]) -> T:
    loop = client.loop
    if loop is None:
        raise RuntimeError(f"the Dask client {client!r} is closed")
    waiter = _Waiter()
    _fetcher(client).watch(loop, future, waiter)

    def abort(_: object) -> trio.lowlevel.Abort:
        waiter.abandoned = True
        loop.add_callback(_cancel, client, future)
        return trio.lowlevel.Abort.SUCCEEDED

    try:
        value: T = await trio.lowlevel.wait_task_rescheduled(abort)
    finally:
        # Let the scheduler forget the task now, not when the traceback of an error that
        # refers to this future is collected.
        future.release()  # type: ignore[no-untyped-call]
    return value
