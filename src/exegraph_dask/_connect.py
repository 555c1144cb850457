"""`connect`: a resource step's action that holds a `distributed.Client` for a run."""

from __future__ import annotations

import contextlib
import functools
import logging
import math
from collections.abc import AsyncIterator, Callable
from typing import Any, Final, final

import distributed
import outcome
import trio
from distributed.core import Status
from distributed.deploy.cluster import Cluster

__all__ = ["connect"]

logger: Final = logging.getLogger("exegraph_dask")


def connect(
    address: str | Cluster | None = None, /, **client_kwargs: Any
) -> Callable[[], AsyncIterator[distributed.Client]]:
    """Make a resource step's action that connects a `distributed.Client`, closed at teardown.

    ```python
    import exegraph_dask

    graph = exegraph.Graph([
        exegraph.Step("dask", exegraph_dask.connect("tcp://scheduler:8786"), timeout=30),
        exegraph.Step(
            "train", exegraph_dask.on_cluster(train, epochs=3), inputs={"client": "dask"}
        ),
    ])
    ```

    The step's value is the Client; steps that take it as their input `client` submit
    through it ([`on_cluster`][exegraph_dask.on_cluster]). It is closed as soon as every step
    depending on it has settled — also when the run fails fast or is cancelled. It is
    also the default client (`distributed.default_client()`) while it is open, unless
    `set_as_default=False`.

    Making and closing a `Client` blocks (a connection, a handshake), so both run in a
    worker thread: the run's other steps go on meanwhile. A thread cannot be cancelled, so
    the step's deadline is handed to Dask instead: unless `client_kwargs` has a `timeout`,
    connecting to the scheduler gives up (with an `OSError`) when the step's deadline
    passes. That `timeout` also becomes the Client's default for its own calls (Dask's
    `distributed.comm.timeouts.connect` without a deadline).

    With no `address`, the Client first starts a `LocalCluster`, and that start is not
    bounded by the deadline: Dask has no timeout for it and the thread cannot be
    cancelled, so a start that outlasts the deadline still ends, the step is set up
    (past its deadline), its dependents run, and it is torn down as usual. Give such a
    step a deadline long enough for the workers to start, or start the cluster before
    the run and pass it as `address`.

    Closing always happens, even when the teardown is cancelled or out of time: the Client
    (and a `LocalCluster` it started) is closed in a thread of its own, never cut short.
    The teardown waits for it until its deadline (60 s without one); a close still going
    then goes on in the background, with a warning logged (logger `exegraph_dask`), the
    Client no longer Dask's default client, and the teardown fails with its timeout.

    Args:
        address: the scheduler's address, like `"tcp://HOST:8786"`, or a cluster object
            (`distributed.LocalCluster`, a `dask_kubernetes` or `dask_jobqueue` cluster: yours
            to close). `None` (the default): the Client starts a `LocalCluster` of its own,
            on this machine, given the cluster keywords in `client_kwargs`
            (`n_workers=2, threads_per_worker=1`...), and closes it with itself.
        **client_kwargs: keyword arguments of `distributed.Client` (`timeout`,
            `name`, `security`, `set_as_default`...); `asynchronous` is refused, the Client
            is a sync one with its own event-loop thread.

    Returns:
        An async generator function for a resource [`Step`][exegraph_trio.Step] (its
        action); it yields the connected Client.

    Raises:
        TypeError: `client_kwargs` has `asynchronous=True`.
    """
    if client_kwargs.get("asynchronous"):
        raise TypeError(
            "connect() makes a sync Client (with its own event-loop thread), which is what "
            "exegraph_dask.on_cluster submits through; drop asynchronous=True"
        )
    return _Connect(address, client_kwargs)


def _seconds_left() -> float | None:
    """Seconds until the current cancel scope's deadline (0 once it passed), or None.

    None only when there is no deadline; a scope already cancelled (its effective deadline
    is -inf) has 0 seconds left, not "no deadline".
    """
    deadline = trio.current_effective_deadline()
    if deadline == math.inf:
        return None
    return max(deadline - trio.current_time(), 0.0)


@final
class _Connect:
    """The action `connect` returns: an async generator function yielding a Client."""

    __slots__ = ("__name__", "__qualname__", "_address", "_kwargs")

    def __init__(self, address: str | Cluster | None, kwargs: dict[str, Any]) -> None:
        self._address = address
        self._kwargs = kwargs
        self.__name__ = self.__qualname__ = "connect"

    def __repr__(self) -> str:
        parts = [] if self._address is None else [repr(self._address)]
        parts += [f"{key}={value!r}" for key, value in self._kwargs.items()]
        return f"exegraph_dask.connect({', '.join(parts)})"

    async def __call__(self) -> AsyncIterator[distributed.Client]:
        """Connect a Client (in a thread), yield it, close it (in a thread)."""
        kwargs = self._kwargs
        left = _seconds_left()
        if left is not None and "timeout" not in kwargs:
            kwargs = {**kwargs, "timeout": max(left, 0.01)}
        make = functools.partial(distributed.Client, self._address, **kwargs)
        client = await trio.to_thread.run_sync(make)
        try:
            yield client
        finally:
            await _close(client, started_cluster=self._address is None)


CLOSE_CAP: Final = 60.0
"""Seconds a teardown without a deadline waits for the Client to close."""


async def _close(client: distributed.Client, *, started_cluster: bool) -> None:
    """Close `client` (and the LocalCluster it started) in a thread, whatever cancels us.

    The close always starts, in a thread of its own, and is never cut short by Dask's own
    timeout (a close cut short leaves a LocalCluster running). This waits for it, shielded,
    until the current deadline (`CLOSE_CAP` seconds without one, not at all once it
    passed); a close still going then is left to finish in its thread, with a warning,
    the client no longer Dask's default client, and the cancellation or deadline raised.
    """
    cluster = client.cluster if started_cluster else None
    left = _seconds_left()
    done = trio.Event()
    token = trio.lowlevel.current_trio_token()
    outcomes: list[outcome.Outcome[None]] = []

    def deliver(result: outcome.Outcome[None]) -> None:  # in the thread
        outcomes.append(result)
        with contextlib.suppress(trio.RunFinishedError):  # nobody waits any more
            token.run_sync_soon(done.set)

    close = functools.partial(_close_blocking, client, cluster)
    trio.lowlevel.start_thread_soon(close, deliver, name=f"exegraph_dask: closing {client.id}")
    with trio.CancelScope(shield=True), trio.move_on_after(CLOSE_CAP if left is None else left):
        await done.wait()
    if not outcomes:
        _no_longer_default(client)
        logger.warning(
            "exegraph_dask.connect: closing the Dask client %s%s did not finish within "
            "the teardown's %s; it goes on in a background thread",
            client.id,
            "" if cluster is None else f" and its {type(cluster).__name__}",
            f"{CLOSE_CAP:g} s" if left is None else "deadline",
        )
        await trio.lowlevel.checkpoint_if_cancelled()  # the deadline that passed
        raise TimeoutError(
            f"closing the Dask client {client.id} took more than {CLOSE_CAP:g} s; "
            "it goes on in a background thread"
        )
    outcomes[0].unwrap()


def _close_blocking(client: distributed.Client, cluster: Cluster | None) -> None:
    """Close `client` without a timeout, then `cluster` if it is not closed by then."""
    try:
        client.close(timeout=None)  # type: ignore[no-untyped-call]
    finally:
        if cluster is not None and cluster.status != Status.closed:
            cluster.close()


def _no_longer_default(client: distributed.Client) -> None:
    """Make sure `client` is not Dask's default client (its close may come late)."""
    forget = getattr(distributed.client, "_del_global_client", None)
    if forget is not None:
        forget(client)
