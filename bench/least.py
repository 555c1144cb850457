"""The least build of a graph that keeps part 1 of the spec: a lower bound on any build.

`unchecked_build` keeps one object per step (`Step`'s ten fields, set without a check), a
name index and each step's dependencies as positions; `least_build` adds each step's
dependents and every priority (rule 3's number of transitive dependents), counted by
exegraph's own function, the cheapest exact way known (bitsets of the dependents; see
`bench/README.md`). Each pass is made the way `Graph(...)` makes it, in C where it can be,
with the garbage collector paused as there. No validation at all. `budget.py` counts its
instructions, `building.py` times it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from itertools import compress, repeat
from operator import attrgetter
from typing import Final

import shapes
from peers import noop

from exegraph_trio._collector import collector_paused
from exegraph_trio._graph import _count_dependents

_name_of: Final = attrgetter("name")
_needs: Final = attrgetter("depends_on")


class Unchecked:
    """`Step`'s ten fields in slots, set as given: no check at all."""

    __slots__ = (
        "_kind",
        "action",
        "depends_on",
        "inputs",
        "name",
        "pools",
        "retry",
        "tags",
        "timeout",
        "trigger_rule",
    )

    def __init__(
        self,
        name: str,
        action: Callable[[], object],
        *,
        depends_on: tuple[str, ...] = (),
        tags: tuple[str, ...] = (),
        timeout: float | None = None,
        inputs: object = None,
        retry: object = None,
        trigger_rule: object = None,
        pools: object = None,
    ) -> None:
        self.name = name
        self.action = action
        self.depends_on = depends_on
        self.tags = tags
        self.timeout = timeout
        self.inputs = inputs
        self.retry = retry
        self.trigger_rule = trigger_rule
        self.pools = pools
        self._kind = 0


def unchecked_build(
    shape: shapes.Shape, action: Callable[[], Awaitable[object]] = noop
) -> tuple[list[Unchecked], list[tuple[int, ...]]]:
    """The `unchecked` build: the objects, a name index, dependencies as positions."""
    steps = [
        Unchecked(name, action, depends_on=ds)
        for name, ds in zip(shape.names, shape.dep_names, strict=True)
    ]
    return steps, _positions(steps)


@collector_paused  # (as `Graph(...)`: each pass makes a container a step, and no cycle)
def _positions(steps: list[Unchecked]) -> list[tuple[int, ...]]:
    index = dict(zip(map(_name_of, steps), range(len(steps)), strict=True))
    return list(map(tuple, map(map, repeat(index.__getitem__), map(_needs, steps))))


@collector_paused
def _dependents(deps: list[tuple[int, ...]]) -> tuple[tuple[int, ...], ...]:
    dependents: list[list[int]] = [[] for _ in deps]
    for i in compress(range(len(deps)), deps):  # (the steps without a dependency skipped)
        for d in deps[i]:
            dependents[d].append(i)
    return tuple(map(tuple, dependents))


def least_build(
    shape: shapes.Shape,
    action: Callable[[], Awaitable[object]] = noop,
    *,
    priorities: bool = True,
) -> tuple[list[tuple[int, ...]], tuple[tuple[int, ...], ...], list[int] | None]:
    """The `least` build: `unchecked_build`, each step's dependents and every priority.

    The priorities are counted unless `priorities` is false (a run where every step fits
    in the bound never needs them). Returns the dependencies and the dependents as
    positions, and the priorities or `None`.
    """
    _steps, deps = unchecked_build(shape, action)
    frozen = _dependents(deps)
    if not priorities:
        return deps, frozen, None
    return deps, frozen, _count_dependents(tuple(deps), frozen, range(len(deps)))
