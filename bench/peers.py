"""The floor and the hand-written DAG runners exegraph is measured against.

Each is what a careful user would write instead of using exegraph, working on step
positions (the cheapest node type) rather than names:

- `floor`: `n` bare tasks in one Trio nursery, no dependencies at all: the least a Trio
  program can spend to run `n` async functions as tasks.
- `floor_scoped`: the same, each task running its action inside its own
  `trio.CancelScope` with a deadline: the floor of a run with a deadline on every step.
- `floor_alive`: the same actions run by only `k` bare tasks, each awaiting its share one
  after the other: what Trio needs when never more than `k` tasks are alive (memory).
- `graphlib_build`: what the graphlib runners build before running: their actions and a
  `TopologicalSorter` with every node added and `prepare()` called.
- `graphlib_trio`: a driver loop over `graphlib.TopologicalSorter` that starts ready steps
  in a Trio nursery, in the order they became ready (FIFO), never more than `limit` at once,
  and learns of completions from a memory channel.
- `graphlib_asyncio`: the same driver over an `asyncio.TaskGroup`, a semaphore bounding the
  actions (Python 3.11+).
- `events_trio`: one Trio task per step that waits for the `trio.Event` of each
  dependency, then takes a slot of a `trio.Semaphore` and runs.
- `dask_get`: dask's synchronous local scheduler (`dask.get`) on the equivalent task
  graph, with sync functions.

All take `deps` (the dependencies of each step, by position, in topological order),
`actions` (what to run for each step) and `limit` (most actions running at once).
"""

from __future__ import annotations

import asyncio
import graphlib
import math
import sys
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import trio

AsyncAction = Callable[[], Awaitable[object]]
SyncAction = Callable[..., object]
Deps = Sequence[Sequence[int]]


async def noop() -> None:
    """The no-op step action used for timing."""


async def trio_yield() -> None:
    """An action that yields to Trio once (a checkpoint), as any action that waits does."""
    await trio.lowlevel.checkpoint()


async def asyncio_yield() -> None:
    """An action that yields to asyncio once."""
    await asyncio.sleep(0)


def noop_sync(*args: object) -> None:
    """The no-op sync function used for dask (it receives its dependencies' results)."""


async def floor(actions: Sequence[AsyncAction]) -> None:
    """Run every action as a bare task in one nursery: the floor of Trio itself."""
    async with trio.open_nursery() as nursery:
        for action in actions:
            nursery.start_soon(action)


async def floor_scoped(actions: Sequence[AsyncAction], seconds: float) -> None:
    """The floor, each action inside its own cancel scope with a deadline `seconds` away.

    The deadline is read from the clock when the task starts, as a step's deadline starts
    when its action starts.
    """

    async def one(action: AsyncAction) -> None:
        with trio.CancelScope(deadline=trio.current_time() + seconds):
            await action()

    async with trio.open_nursery() as nursery:
        for action in actions:
            nursery.start_soon(one, action)


async def floor_alive(actions: Sequence[AsyncAction], alive: int) -> None:
    """Every action, awaited by `alive` bare tasks in turn: never more than `alive` tasks."""

    async def share(start: int) -> None:
        for i in range(start, len(actions), alive):
            await actions[i]()

    async with trio.open_nursery() as nursery:
        for start in range(min(alive, len(actions))):
            nursery.start_soon(share, start)


def graphlib_build(
    deps: Deps, action: AsyncAction
) -> tuple[list[AsyncAction], graphlib.TopologicalSorter[int]]:
    """What a graphlib runner builds: an action per step, a prepared `TopologicalSorter`.

    Every node is added with its dependencies (`sorter.add(i, *deps[i])`) and `prepare()`
    is called, which checks for cycles: the counterpart of making `Step`s and a `Graph`.
    """
    actions = [action] * len(deps)
    sorter: graphlib.TopologicalSorter[int] = graphlib.TopologicalSorter()
    for i, ds in enumerate(deps):
        sorter.add(i, *ds)
    sorter.prepare()
    return actions, sorter


async def graphlib_trio(deps: Deps, actions: Sequence[AsyncAction], limit: int) -> None:
    """A `graphlib.TopologicalSorter` driver over a Trio nursery, at most `limit` in flight.

    Ready steps queue in FIFO order; a task is started for one only when a slot is free,
    so the bound holds without any task waiting on a semaphore.
    """
    sorter: graphlib.TopologicalSorter[int] = graphlib.TopologicalSorter(dict(enumerate(deps)))
    sorter.prepare()
    send, receive = trio.open_memory_channel[int](math.inf)

    async def one(i: int) -> None:
        await actions[i]()
        send.send_nowait(i)

    ready: deque[int] = deque()
    in_flight = 0
    async with trio.open_nursery() as nursery:
        while sorter.is_active():
            ready.extend(sorter.get_ready())
            while ready and in_flight < limit:
                nursery.start_soon(one, ready.popleft())
                in_flight += 1
            sorter.done(await receive.receive())
            in_flight -= 1


async def events_trio(deps: Deps, actions: Sequence[AsyncAction], limit: int) -> None:
    """One Trio task per step, waiting on its dependencies' `trio.Event`s, then a slot."""
    done = [trio.Event() for _ in deps]
    slots = trio.Semaphore(limit)

    async def one(i: int) -> None:
        for d in deps[i]:
            await done[d].wait()
        async with slots:
            await actions[i]()
        done[i].set()

    async with trio.open_nursery() as nursery:
        for i in range(len(deps)):
            nursery.start_soon(one, i)


if sys.version_info >= (3, 11):  # noqa: UP036 - the project supports 3.10 (no TaskGroup)

    async def graphlib_asyncio(deps: Deps, actions: Sequence[AsyncAction], limit: int) -> None:
        """The `graphlib_trio` driver over `asyncio.TaskGroup`, a semaphore bounding actions.

        Every ready step gets a task at once; the semaphore (FIFO in asyncio) holds all but
        `limit` of them back.
        """
        sorter: graphlib.TopologicalSorter[int] = graphlib.TopologicalSorter(dict(enumerate(deps)))
        sorter.prepare()
        finished: asyncio.Queue[int] = asyncio.Queue()
        slots = asyncio.Semaphore(limit)

        async def one(i: int) -> None:
            async with slots:
                await actions[i]()
            finished.put_nowait(i)

        async with asyncio.TaskGroup() as group:
            while sorter.is_active():
                for i in sorter.get_ready():
                    group.create_task(one(i))
                sorter.done(await finished.get())

else:  # pragma: no cover - Python 3.10 has no TaskGroup

    async def graphlib_asyncio(deps: Deps, actions: Sequence[AsyncAction], limit: int) -> None:
        """Unavailable before Python 3.11 (no `asyncio.TaskGroup`)."""
        raise RuntimeError("the asyncio peer needs Python 3.11+ (asyncio.TaskGroup)")


def dask_graph(names: Sequence[str], deps: Deps, functions: Sequence[SyncAction]) -> dict[str, Any]:
    """The dask task graph equivalent to a shape: `{name: (function, *dependency names)}`."""
    return {name: (functions[i], *(names[d] for d in deps[i])) for i, name in enumerate(names)}


def dask_get(graph: dict[str, Any], keys: list[str]) -> None:
    """Compute every key of `graph` with dask's synchronous local scheduler (`dask.get`)."""
    from dask.local import get_sync  # `dask.get` is this function, re-exported

    get_sync(graph, keys)
