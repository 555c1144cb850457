"""`connect`: a resource step's action that holds a `distributed.Client` for a run."""

from __future__ import annotations

import functools
import math
from collections.abc import AsyncIterator, Callable
from typing import Any, final

import distributed
import trio
from distributed.deploy.cluster import Cluster

__all__ = ["connect"]


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
    worker thread (`trio.to_thread.run_sync`): the run's other steps go on meanwhile. A
    thread cannot be cancelled, so the step's deadline is handed to Dask instead: unless
    `client_kwargs` has a `timeout`, connecting gives up (with an `OSError`) when the
    step's deadline passes, and closing waits at most until the teardown's deadline.

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
    """Seconds until the current cancel scope's deadline, or None when there is none."""
    left = trio.current_effective_deadline() - trio.current_time()
    return None if math.isinf(left) else max(left, 0.01)


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
            kwargs = {**kwargs, "timeout": left}
        make = functools.partial(distributed.Client, self._address, **kwargs)
        client = await trio.to_thread.run_sync(make)
        try:
            yield client
        finally:
            left = _seconds_left()
            close = functools.partial(client.close, **({} if left is None else {"timeout": left}))
            await trio.to_thread.run_sync(close)
