"""Blocking calls in threads, CPU-bound Python in worker processes, and a runaway stopped.

Run it with `python examples/offload_thread_process.py` (in-process steps need the
`process` extra: `pip install 'exegraph-trio[process]'`).

- `exegraph.in_thread(fn, *args, **kwargs)` makes a step of a blocking sync function: it
  runs in a thread, so the event loop and the other steps go on. The two checksums here
  run side by side (`hashlib` releases the GIL on large inputs).
- `exegraph.in_process(fn, *args, **kwargs)` is for CPU-bound Python, which holds the GIL:
  it runs in a worker process of trio-parallel. The two prime counts each take a core.
- A step's `inputs` become keyword arguments of `fn`, and what `fn` returns is the step's
  value, as for any step.
- A deadline kills a worker process: `simulate` never returns, and its step stops at its
  0.5 s timeout all the same. A thread could not be stopped so (see the guide "Scaling
  out").
"""

from __future__ import annotations

import hashlib
import math
import time

import trio

import exegraph_trio as exegraph

# Functions for worker processes live at the top level of a module: a worker receives them
# pickled (by name, or by value when the module is a script, as here: then with the module
# globals they use, which must be picklable, so a program of any size imports them from a
# module of its own), and re-imports the script that started it, so that script needs its
# `if __name__ == "__main__":` guard.


# --8<-- [start:functions]
def download(size: int) -> bytes:
    """A blocking download (a client without async support)."""
    time.sleep(0.05)
    return bytes(range(256)) * (size // 256)


def digest(data: bytes, algorithm: str) -> str:
    """The hex digest of `data`: hashlib releases the GIL, so threads overlap."""
    return hashlib.new(algorithm, data).hexdigest()


def count_primes(start: int, stop: int) -> int:
    """How many primes lie in `[start, stop)`: pure Python, CPU-bound."""
    return sum(
        1 for n in range(max(start, 2), stop) if all(n % d for d in range(2, math.isqrt(n) + 1))
    )


def simulate(steps: int) -> None:
    """A simulation with a bug: it never ends."""
    while steps:
        steps += 1


# --8<-- [end:functions]


async def add(low: int, high: int) -> int:
    return low + high


# --8<-- [start:graph]
def build_graph() -> exegraph.Graph:
    in_thread, in_process, step = exegraph.in_thread, exegraph.in_process, exegraph.Step
    return exegraph.Graph(
        [
            step("download", in_thread(download, 4 << 20)),
            step("sha256", in_thread(digest, algorithm="sha256"), inputs={"data": "download"}),
            step("blake2b", in_thread(digest, algorithm="blake2b"), inputs={"data": "download"}),
            step("primes-low", in_process(count_primes, 0, 100_000)),
            step("primes-high", in_process(count_primes, 100_000, 200_000)),
            step("primes", add, inputs={"low": "primes-low", "high": "primes-high"}),
            step("simulate", in_process(simulate, 1), depends_on=["primes"], timeout=0.5),
        ]
    )


# --8<-- [end:graph]


async def main() -> None:
    options = exegraph.RunOptions(error_policy=exegraph.ErrorPolicy.CONTINUE_ON_ERROR)
    result = await exegraph.run_with_result(build_graph(), options)
    data = result["download"].value
    assert isinstance(data, bytes)
    print(f"download: {len(data)} bytes")
    for name in ("sha256", "blake2b"):
        print(f"{name}: {str(result[name].value)[:16]}…")
    low, high = result["primes-low"].value, result["primes-high"].value
    print(f"primes below 200 000: {result['primes'].value} ({low} + {high}, two processes)")
    timing = result["simulate"]
    overrun = timing.duration - 0.5
    print(f"simulate: {timing.status}: {timing.error}")
    print(f"its worker process was killed within 1 s of the deadline: {overrun < 1.0}")


if __name__ == "__main__":
    trio.run(main)
