"""What the step lifecycle (issue 10) costs a run that uses it: retries, inputs, values.

Per step (`measure` of `overhead.py`, the same cells, verification and pairing):

- `run`: `exegraph.run` of a prebuilt graph, as in the overhead section (the baseline);
- `run+retry`: the same graph run with `RunOptions(retry=Retry(attempts=3))`: every step
  has a `Retry`, none ever fails (each first attempt takes the plain path, `Run._step`;
  one that failed would go on in the retry loop, `_attempts.retried`);
- `run+inputs`: the same shape with `inputs` on every edge (step `s7` depending on `s3`
  takes `s3=` the value of `s3`), run with `RunOptions(keep_values=False)`: every value is
  passed, and released as soon as its last consumer settled. The actions take the values
  as keyword arguments and return one. Verified by probe actions that also check each
  value they are given is the one their dependency returned.

Peak memory of values (`measure_values`, each figure from a fresh process): a chain of
`length` steps, each returning a new 1 MiB `bytes` object and taking the previous one as an
input (`inputs={"previous": ...}`), with `keep_values=False` (and, for contrast, `True`).
The graph is built first; then `tracemalloc` traces the run alone and its peak is
reported, in MiB and in values. Released as consumed, the peak stays a few values whatever
the length; kept, it grows by one value per step.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tracemalloc
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import trio
from probe import Probe
from runners import EXEGRAPH, Go, Runner, Timing, Work, build_graph, time_trio, timing_graph
from shapes import Shape

import exegraph_trio as exegraph

VALUE_SIZE: Final = 1 << 20
"""The size of each value in the memory measurement: 1 MiB."""
RETRY: Final = exegraph.Retry(attempts=3)
"""The retry every step of `run+retry` has (through `RunOptions.retry`)."""

InputAction = Callable[..., Awaitable[object]]


# -- runners ------------------------------------------------------------------------------


async def take_noop(**values: object) -> int:
    """The no-op action of `run+inputs`: takes its dependencies' values, returns one."""
    return 1


async def take_yield(**values: object) -> int:
    """`take_noop`, yielding to Trio once first."""
    await trio.lowlevel.checkpoint()
    return 1


INPUT_ACTIONS: Final[dict[str, InputAction]] = {"noop": take_noop, "yield": take_yield}


def input_steps(shape: Shape, actions: Sequence[InputAction]) -> list[exegraph.Step]:
    """`shape`'s steps, each taking every dependency's value as an input named after it."""
    step = exegraph.Step
    return [
        step(name, action, depends_on=ds, inputs={d: d for d in ds})
        for name, action, ds in zip(shape.names, actions, shape.dep_names, strict=True)
    ]


def _probe_actions(probe: Probe, shape: Shape) -> list[InputAction]:
    """The probe's actions, each also checking the values it is given, and returning `i`."""
    recorded = probe.trio_actions()

    def make(i: int) -> InputAction:
        expected = {shape.names[d]: d for d in shape.deps[i]}
        action = recorded[i]

        async def act(**values: object) -> int:
            if values != expected:
                raise AssertionError(f"step {i} was given {values!r}, not {expected!r}")
            await action()
            return i

        return act

    return [make(i) for i in range(len(shape))]


_last_inputs: list[tuple[Shape, Timing, exegraph.Graph]] = []


def _inputs_graph(shape: Shape, timing: Timing) -> exegraph.Graph:
    """The graph of `run+inputs` for `shape` and `timing`, built once per cell."""
    if not _last_inputs or _last_inputs[0][0] is not shape or _last_inputs[0][1] is not timing:
        _last_inputs.clear()
        graph = exegraph.Graph(input_steps(shape, [INPUT_ACTIONS[timing.name]] * len(shape)))
        graph.priority(shape.names[0])
        _last_inputs[:] = [(shape, timing, graph)]
    return _last_inputs[0][2]


def _prepare_retry(shape: Shape, work: Work) -> Go:
    if isinstance(work, Timing):
        graph = timing_graph(shape, work)
    else:
        graph = build_graph(shape, work.trio_actions())
        graph.priority(shape.names[0])

    def go(limit: int) -> float:
        options = exegraph.RunOptions(max_concurrency=limit, retry=RETRY)
        return time_trio(lambda: exegraph.run(graph, options))[0]

    return go


def _prepare_inputs(shape: Shape, work: Work) -> Go:
    if isinstance(work, Timing):
        graph = _inputs_graph(shape, work)
    else:
        graph = exegraph.Graph(input_steps(shape, _probe_actions(work, shape)))
        graph.priority(shape.names[0])

    def go(limit: int) -> float:
        options = exegraph.RunOptions(max_concurrency=limit, keep_values=False)
        return time_trio(lambda: exegraph.run(graph, options))[0]

    return go


RUN: Final = EXEGRAPH[0]
RUN_RETRY: Final = Runner(
    "run+retry",
    "`exegraph.run` of the prebuilt graph with `RunOptions(retry=Retry(attempts=3))`: a "
    "`Retry` on every step, never used",
    _prepare_retry,
    kind="exegraph",
    primary=True,
)
RUN_INPUTS: Final = Runner(
    "run+inputs",
    "`exegraph.run` of the same shape with `inputs` on every edge (actions taking the values "
    "as keyword arguments and returning one), `RunOptions(keep_values=False)`",
    _prepare_inputs,
    kind="exegraph",
    primary=True,
)
RUNNERS: Final = (RUN, RUN_RETRY, RUN_INPUTS)


# -- the memory of values ------------------------------------------------------------------


@dataclass(frozen=True)
class ValueMemory:
    """The traced peak of running a chain of 1 MiB values.

    Attributes:
        length: steps in the chain.
        keep_values: `RunOptions.keep_values`.
        peak: `tracemalloc`'s peak during the run (the graph was built before), in bytes.
    """

    length: int
    keep_values: bool
    peak: float

    @property
    def values(self) -> float:
        """The peak in values (1 MiB each)."""
        return self.peak / VALUE_SIZE


async def big(**values: object) -> bytes:
    """A step of the value chain: a new 1 MiB value (it is given the previous one)."""
    return bytes(VALUE_SIZE)


def value_chain(length: int) -> exegraph.Graph:
    """`length` steps, each returning 1 MiB and taking the previous step's value."""
    steps = [exegraph.Step("v0", big)]
    steps += [
        exegraph.Step(f"v{i}", big, inputs={"previous": f"v{i - 1}"}) for i in range(1, length)
    ]
    return exegraph.Graph(steps)


def _child(argv: Sequence[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--length", type=int, required=True)
    parser.add_argument("--keep-values", action="store_true")
    args = parser.parse_args(argv)
    graph = value_chain(args.length)
    options = exegraph.RunOptions(keep_values=args.keep_values)
    trio.run(exegraph.run, value_chain(3), options)  # warm up: first-call caches
    tracemalloc.start()
    tracemalloc.reset_peak()
    trio.run(exegraph.run, graph, options)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    print(json.dumps({"peak": peak}))


def measure_values(length: int, *, keep_values: bool) -> ValueMemory:
    """The traced peak of one run of `value_chain(length)`, in a fresh process."""
    command = [sys.executable, str(Path(__file__)), "--child", "--length", str(length)]
    command += ["--keep-values"] if keep_values else []
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode:
        raise RuntimeError(f"value-memory child {command} failed:\n{done.stderr}")
    found = json.loads(done.stdout.strip().splitlines()[-1])
    return ValueMemory(length, keep_values, float(found["peak"]))


if __name__ == "__main__":
    if sys.argv[1:2] != ["--child"]:
        raise SystemExit("run by bench/run.py --sections lifecycle")
    _child(sys.argv[2:])
