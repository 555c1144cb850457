"""Peak memory per step, each measurement in a fresh process, against the floor's.

The parent (`measure_memory`) starts `python bench/memory.py --child MODE ...` once per
measurement and reads one JSON line back. Every child first makes the shape (the integer
adjacency and the names: the benchmark's input, not counted), then measures one thing:

- `build` (with `tracemalloc`): the peak while making the `Step`s, `Graph(...)` and every
  priority, and what the graph holds afterwards;
- `run`: what a program that builds the graph and runs it once adds to its resident set,
  at its peak: `VmHWM` (the high-water mark, reset just before) minus `VmRSS` before
  making the steps. The graph is built as a user would, with `Graph(...)` and no
  `priority()` call. Options choose the bound (`--limit`), the action (`--action noop` or
  `yield`) and `run_with_result` instead of `run` (`--with-result`). A Trio instrument
  counts the tasks alive (`task_spawned` − `task_exited`), and the child reports their
  peak beyond those of a trivial `trio.run`: how many tasks the run had alive at once;
- `floor`: the same growth for a bare Trio program running the same `n` actions with never
  more than `--alive k` tasks alive (`k` tasks each awaiting its share of the actions in
  turn; with `k = n`, `n` bare tasks in one nursery).

A run is judged on its growth *beyond the floor with as many tasks alive as the run had at
its peak*: with all `n` steps in flight (a wide graph under the bound n) that is `n` bare
tasks, which no Trio runner can undercut; under the bound 4 it is a handful of tasks, so
nearly all of the run's growth counts. This is what the OS sees, allocator slack included;
`tracemalloc` would slow these runs down several times over.

Linux only (it reads `/proc/self/status` and writes `/proc/self/clear_refs`).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tracemalloc
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import peers
import shapes
import trio
from runners import TIMINGS, build_graph

import exegraph_trio as exegraph


@dataclass(frozen=True)
class RunMode:
    """One way of running the graph for a memory measurement.

    Attributes:
        label: its column or row name (`run n`, `run 4, yield`, …).
        bound: `n` (unbounded) or a number.
        action: `noop` or `yield`.
        with_result: `run_with_result` instead of `run`.
    """

    label: str
    bound: str
    action: str = "noop"
    with_result: bool = False


MODES: Final = (
    RunMode("run n", "n"),
    RunMode("run 4", "4"),
    RunMode("run_with_result n", "n", with_result=True),
    RunMode("run n, yield", "n", action="yield"),
)


@dataclass(frozen=True)
class RunMemory:
    """The memory of one run mode, in bytes per step.

    Attributes:
        mode: the mode's label.
        growth: peak resident-set growth of building the graph and running it once.
        alive: the most tasks the run had alive at once (beyond a trivial `trio.run`'s).
        floor: peak growth of the floor running the same actions with that many tasks alive.
    """

    mode: str
    growth: float
    alive: int
    floor: float

    @property
    def excess(self) -> float:
        """What the graph and the run cost beyond the floor: the memory target's measure."""
        return self.growth - self.floor


@dataclass(frozen=True)
class MemoryResult:
    """Bytes per step of one shape at one size.

    Attributes:
        size: number of steps.
        shape: the shape's name.
        build: traced peak of making the steps, the graph and its priorities.
        graph: traced size of the graph (steps included) once built.
        runs: one `RunMemory` per mode of `MODES`.
    """

    size: int
    shape: str
    build: float
    graph: float
    runs: tuple[RunMemory, ...]

    @property
    def worst(self) -> RunMemory:
        """The run mode with the largest growth beyond the floor."""
        return max(self.runs, key=lambda r: r.excess)

    @property
    def worst_run(self) -> float:
        """The largest raw growth of any run mode (the issue 5 memory target)."""
        return max(r.growth for r in self.runs)


def _status_bytes(field: str) -> int:
    """A `kB` field of `/proc/self/status` (`VmRSS`, `VmHWM`), in bytes."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/self/status (this needs Linux)")


def _start_peak() -> int:
    """Reset the resident-set high-water mark and return the resident size now.

    `ru_maxrss` would not do: Linux carries it over from the parent across `fork`/`exec`,
    so a child started by a big parent would report the parent's size.
    """
    with open("/proc/self/clear_refs", "w") as clear_refs:
        clear_refs.write("5")  # resets VmHWM to the current VmRSS
    return _status_bytes("VmRSS")


def _peak_growth(before: int) -> int:
    return max(_status_bytes("VmHWM") - before, 0)


class _TaskCounter(trio.abc.Instrument):
    """Counts the tasks alive in a Trio run and keeps the peak."""

    def __init__(self) -> None:
        self.alive = 0
        self.peak = 0

    def task_spawned(self, task: trio.lowlevel.Task) -> None:
        self.alive += 1
        self.peak = max(self.peak, self.alive)

    def task_exited(self, task: trio.lowlevel.Task) -> None:
        self.alive -= 1


def _child_build(shape: shapes.Shape, args: argparse.Namespace) -> dict[str, float]:
    n = len(shape)
    tracemalloc.start()
    graph = build_graph(shape, [peers.noop] * n)
    graph.priority(shape.names[0])
    held, peak = tracemalloc.get_traced_memory()
    return {"build": peak / n, "graph": held / n}


async def _trivial() -> None:
    await trio.lowlevel.checkpoint()


def _child_run(shape: shapes.Shape, args: argparse.Namespace) -> dict[str, float]:
    n = len(shape)
    baseline = _TaskCounter()
    trio.run(_trivial, instruments=[baseline])
    counter = _TaskCounter()
    action = TIMINGS[args.action].trio
    before = _start_peak()
    graph = build_graph(shape, [action] * n)
    options = exegraph.RunOptions(max_concurrency=args.limit)
    if args.with_result:
        result = trio.run(exegraph.run_with_result, graph, options, instruments=[counter])
        _ = result.steps  # made when first read: measured with them
    else:
        trio.run(exegraph.run, graph, options, instruments=[counter])
    return {"growth": _peak_growth(before) / n, "alive": max(counter.peak - baseline.peak, 1)}


def _child_floor(shape: shapes.Shape, args: argparse.Namespace) -> dict[str, float]:
    n = len(shape)
    actions = [TIMINGS[args.action].trio] * n
    before = _start_peak()
    if args.alive >= n:
        trio.run(peers.floor, actions)
    else:
        trio.run(peers.floor_alive, actions, args.alive)
    return {"floor": _peak_growth(before) / n}


CHILDREN: Final = {"build": _child_build, "run": _child_run, "floor": _child_floor}


def _child(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--child", choices=CHILDREN, required=True)
    parser.add_argument("--shape", choices=shapes.SHAPE_NAMES, required=True)
    parser.add_argument("--n", type=int, required=True)
    parser.add_argument("--limit", type=int, default=0, help="the bound (run)")
    parser.add_argument("--action", choices=TIMINGS, default="noop")
    parser.add_argument("--with-result", action="store_true")
    parser.add_argument("--alive", type=int, default=0, help="most tasks alive (floor)")
    args = parser.parse_args(argv)
    print(json.dumps(CHILDREN[args.child](shapes.make(args.shape, args.n), args)))


def _run_child(child: str, kind: str, n: int, *options: str) -> dict[str, float]:
    command = [sys.executable, str(Path(__file__)), "--child", child]
    command += ["--shape", kind, "--n", str(n), *options]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode:
        raise RuntimeError(f"memory child {command} failed:\n{done.stderr}")
    values: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return values


class Floors:
    """The floor's growth per step for `n` actions and `alive` tasks, measured once each."""

    def __init__(self) -> None:
        self._known: dict[tuple[int, int, str], float] = {}

    def __call__(self, n: int, alive: int, action: str) -> float:
        """Bytes per step of the floor (each value measured once, in a fresh process)."""
        key = (n, min(alive, n), action)
        if key not in self._known:
            found = _run_child("floor", "wide", n, "--alive", str(key[1]), "--action", action)
            self._known[key] = found["floor"]
        return self._known[key]


def measure_memory(
    kind: str, n: int, floors: Floors, modes: Sequence[RunMode] = MODES
) -> MemoryResult:
    """Bytes per step of `kind` at `n` steps, each mode measured in its own process."""
    built = _run_child("build", kind, n)
    runs = []
    for mode in modes:
        options = ["--limit", str(n if mode.bound == "n" else int(mode.bound))]
        options += ["--action", mode.action] + (["--with-result"] if mode.with_result else [])
        found = _run_child("run", kind, n, *options)
        alive = int(found["alive"])
        runs.append(RunMemory(mode.label, found["growth"], alive, floors(n, alive, mode.action)))
    return MemoryResult(n, kind, built["build"], built["graph"], tuple(runs))


if __name__ == "__main__":
    _child(sys.argv[1:])
