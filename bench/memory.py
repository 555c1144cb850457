"""Peak memory per step, each measurement in a fresh process.

The parent (`measure_memory`) starts `python bench/memory.py --child MODE ...` once per
measurement and reads one JSON line back. Every child first makes the shape (the integer
adjacency and the names: the benchmark's input, not counted), then measures one thing:

- `build` (with `tracemalloc`): the peak while making the `Step`s, `Graph(...)` and every
  priority, and what the graph holds afterwards;
- `run`, `run4`, `run_with_result`: what a program that builds the graph and runs it once
  adds to its resident set, at its peak: `VmHWM` (the high-water mark, reset just before)
  minus `VmRSS` before making the steps. The graph is built as a user would, with
  `Graph(...)` and no `priority()` call, so priorities are computed only if the run needs
  them (when more steps are ready than the bound lets start). `run` and `run_with_result`
  are unbounded (`max_concurrency=n`: a wide graph has every step in flight), `run4` has
  `max_concurrency=4`. This is what the OS sees, allocator slack included; `tracemalloc`
  would slow these runs down several times over;
- `floor`: the same growth for `n` bare Trio tasks in one nursery, for scale.

Linux only (it reads `/proc/self/status` and writes `/proc/self/clear_refs`).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import peers
import shapes
import trio
from runners import build_graph

import exegraph_trio as exegraph


@dataclass(frozen=True)
class MemoryResult:
    """Bytes per step of one shape at one size.

    Attributes:
        size: number of steps.
        shape: the shape's name.
        build: traced peak of making the steps, the graph and its priorities.
        graph: traced size of the graph (steps included) once built.
        run: peak resident-set growth of building the graph + one unbounded `run`.
        run4: the same with `max_concurrency=4`.
        run_with_result: the same as `run` for `run_with_result`.
        floor: peak resident-set growth of the same number of bare Trio tasks.
    """

    size: int
    shape: str
    build: float
    graph: float
    run: float
    run4: float
    run_with_result: float
    floor: float

    @property
    def worst_run(self) -> float:
        """The largest of the three run measurements."""
        return max(self.run, self.run4, self.run_with_result)


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


def _child_build(shape: shapes.Shape) -> dict[str, float]:
    n = len(shape)
    tracemalloc.start()
    graph = build_graph(shape, [peers.noop] * n)
    graph.priority(shape.names[0])
    held, peak = tracemalloc.get_traced_memory()
    return {"build": peak / n, "graph": held / n}


def _child_run(shape: shapes.Shape, *, limit: int, with_result: bool) -> float:
    n = len(shape)
    before = _start_peak()
    graph = build_graph(shape, [peers.noop] * n)
    options = exegraph.RunOptions(max_concurrency=limit)
    if with_result:
        trio.run(exegraph.run_with_result, graph, options)
    else:
        trio.run(exegraph.run, graph, options)
    return _peak_growth(before) / n


def _child_floor(shape: shapes.Shape) -> dict[str, float]:
    n = len(shape)
    before = _start_peak()
    trio.run(peers.floor, [peers.noop] * n)
    return {"floor": _peak_growth(before) / n}


MODES: Final[dict[str, Callable[[shapes.Shape], dict[str, float]]]] = {
    "build": _child_build,
    "run": lambda shape: {"run": _child_run(shape, limit=len(shape), with_result=False)},
    "run4": lambda shape: {"run4": _child_run(shape, limit=4, with_result=False)},
    "run_with_result": lambda shape: {
        "run_with_result": _child_run(shape, limit=len(shape), with_result=True)
    },
    "floor": _child_floor,
}


def _child(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--child", choices=MODES, required=True)
    parser.add_argument("--shape", choices=shapes.SHAPE_NAMES, required=True)
    parser.add_argument("--n", type=int, required=True)
    args = parser.parse_args(argv)
    print(json.dumps(MODES[args.child](shapes.make(args.shape, args.n))))


def _run_child(mode: str, kind: str, n: int) -> dict[str, float]:
    command = [sys.executable, str(Path(__file__)), "--child", mode, "--shape", kind, "--n", str(n)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode:
        raise RuntimeError(f"memory child {command} failed:\n{done.stderr}")
    values: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return values


def measure_floor(n: int) -> float:
    """Resident-set growth per task of `n` bare Trio tasks, in a fresh process."""
    return _run_child("floor", "wide", n)["floor"]


def measure_memory(kind: str, n: int, floor: float) -> MemoryResult:
    """Bytes per step of `kind` at `n` steps, each mode measured in its own process."""
    values: dict[str, float] = {}
    for mode in ("build", "run", "run4", "run_with_result"):
        values |= _run_child(mode, kind, n)
    return MemoryResult(size=n, shape=kind, floor=floor, **values)


if __name__ == "__main__":
    _child(sys.argv[1:])
