"""Graph shapes for the benchmarks, as plain integer adjacency.

A shape is a list of dependency tuples: `deps[i]` holds the positions of the steps that
step `i` depends on, always smaller than `i` (so position order is a topological order).
Every runner, exegraph and the hand-written peers alike, is fed from the same `Shape`:
exegraph gets `Step`s named `s0`, `s1`, … depending on `dep_names`; the peers work on the
positions directly, which is the cheapest thing a user could write. Both inputs are made
before any clock starts.

The shapes:

- `chain`: `s0 → s1 → … → s(n-1)`; width 1, nothing to run in parallel.
- `wide`: `n` independent steps; width `n`.
- `fan`: one root, `n - 2` steps that each depend on it, one sink that depends on them all.
- `layered`: layers of `LAYER_WIDTH` steps, each step depending on `LAYER_FAN_IN` random
  steps of the layer above (a typical build or data pipeline).
- `random`: each step depends on up to `RANDOM_LOCAL` random steps among the
  `RANDOM_WINDOW` before it (local edges) and, one time in `1 / RANDOM_LONG_P`, on one
  uniformly random earlier step (a long-range edge).
"""

from __future__ import annotations

import functools
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Final

LAYER_WIDTH: Final = 100
LAYER_FAN_IN: Final = 3
RANDOM_WINDOW: Final = 32
RANDOM_LOCAL: Final = 3
RANDOM_LONG_P: Final = 0.1

SHAPE_NAMES: Final = ("chain", "wide", "fan", "layered", "random")


@dataclass(frozen=True)
class Shape:
    """A benchmark graph: a name, and the dependencies of each step by position.

    Attributes:
        kind: the shape's name (`chain`, `wide`, …).
        deps: `deps[i]` are the positions step `i` depends on, each `< i`.
        names: the step names used for exegraph and dask (`s0`, `s1`, …).
    """

    kind: str
    deps: tuple[tuple[int, ...], ...]
    names: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "names", tuple(f"s{i}" for i in range(len(self.deps))))

    def __len__(self) -> int:
        return len(self.deps)

    @functools.cached_property
    def dep_names(self) -> tuple[tuple[str, ...], ...]:
        """`deps` by name: exegraph's input, made once (like `deps`, the peers' input)."""
        names = self.names
        return tuple(tuple(names[d] for d in ds) for ds in self.deps)

    @property
    def edges(self) -> int:
        """The number of dependency edges."""
        return sum(map(len, self.deps))

    def dependents(self) -> list[list[int]]:
        """The reverse adjacency: the positions that depend on each step."""
        out: list[list[int]] = [[] for _ in self.deps]
        for i, ds in enumerate(self.deps):
            for d in ds:
                out[d].append(i)
        return out

    def levels(self) -> list[int]:
        """The depth of each step: 0 for roots, else 1 + the deepest dependency."""
        level = [0] * len(self.deps)
        for i, ds in enumerate(self.deps):
            if ds:
                level[i] = 1 + max(level[d] for d in ds)
        return level

    @property
    def width(self) -> int:
        """The largest level: how many steps an unbounded scheduler can run at once."""
        counts: dict[int, int] = {}
        for lv in self.levels():
            counts[lv] = counts.get(lv, 0) + 1
        return max(counts.values(), default=0)


def chain(n: int, seed: int = 0) -> Shape:
    """`n` steps, each depending on the one before."""
    return Shape("chain", tuple(((i - 1,) if i else ()) for i in range(n)))


def wide(n: int, seed: int = 0) -> Shape:
    """`n` independent steps."""
    return Shape("wide", tuple(() for _ in range(n)))


def fan(n: int, seed: int = 0) -> Shape:
    """A root, `n - 2` steps depending on it, and a sink depending on all of those."""
    if n < 3:
        raise ValueError("a fan needs at least 3 steps")
    middle = tuple((0,) for _ in range(n - 2))
    return Shape("fan", ((), *middle, tuple(range(1, n - 1))))


def layered(n: int, seed: int = 0) -> Shape:
    """Layers of `LAYER_WIDTH` steps; each step depends on random steps of the layer above."""
    rng = random.Random(seed)
    deps: list[tuple[int, ...]] = []
    for i in range(n):
        layer_start = i - i % LAYER_WIDTH
        if layer_start == 0:
            deps.append(())
            continue
        above = range(layer_start - LAYER_WIDTH, layer_start)
        deps.append(tuple(sorted(rng.sample(above, LAYER_FAN_IN))))
    return Shape("layered", tuple(deps))


def random_dag(n: int, seed: int = 0) -> Shape:
    """Random local edges within a short window, plus occasional long-range edges."""
    rng = random.Random(seed)
    deps: list[tuple[int, ...]] = []
    for i in range(n):
        chosen: set[int] = set()
        if i:
            window = range(max(0, i - RANDOM_WINDOW), i)
            k = rng.randint(0, min(RANDOM_LOCAL, len(window)))
            chosen.update(rng.sample(window, k))
            if rng.random() < RANDOM_LONG_P:
                chosen.add(rng.randrange(i))
        deps.append(tuple(sorted(chosen)))
    return Shape("random", tuple(deps))


MAKERS: Final[dict[str, Callable[[int, int], Shape]]] = {
    "chain": chain,
    "wide": wide,
    "fan": fan,
    "layered": layered,
    "random": random_dag,
}


def make(kind: str, n: int, seed: int = 0) -> Shape:
    """The shape called `kind` with `n` steps (seeded, so every runner gets the same one)."""
    try:
        maker = MAKERS[kind]
    except KeyError:
        raise ValueError(f"unknown shape {kind!r}; choose from {', '.join(MAKERS)}") from None
    return maker(n, seed)


def critical_path(deps: Sequence[Sequence[int]], durations: Sequence[float]) -> float:
    """The longest duration-weighted path through a graph given in topological order."""
    finish = [0.0] * len(deps)
    for i, ds in enumerate(deps):
        finish[i] = durations[i] + max((finish[d] for d in ds), default=0.0)
    return max(finish, default=0.0)
