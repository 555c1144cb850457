"""Graphs for tests/test_cli.py, loaded by the `exegraph` command line in a subprocess.

Every action is instant or waits for something (a cancellation, a timeout): the tests never
depend on how fast this machine is. The steps that need a place to write read it from the
environment variable `CLI_TEST_DIR`.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import trio

from exegraph_trio import Graph, GraphBuilder, Step, in_process


async def nothing() -> None:
    """An instant step."""


async def boom() -> None:
    """A step that fails at once."""
    raise RuntimeError("boom")


async def forever() -> None:
    """A step that only ends when cancelled (by a timeout, fail-fast or Ctrl-C)."""
    await trio.sleep_forever()


# fetch → build → ship, fetch → lint → ship
graph = Graph(
    [
        Step("fetch", nothing, tags=["source"]),
        Step("build", nothing, depends_on=["fetch"], tags=["ci", "slow"]),
        Step("lint", nothing, depends_on=["fetch"], tags=["ci"]),
        Step("ship", nothing, depends_on=["build", "lint"]),
    ]
)


def make_graph() -> Graph:
    """A function returning a graph, as `cli_pipeline:make_graph`."""
    return graph


builder = GraphBuilder()


@builder.step()
async def first() -> None:
    """The first step of `builder`."""


@builder.step(depends_on=["first"])
async def second() -> None:
    """The second step of `builder`."""


def make_builder() -> GraphBuilder:
    """A function returning a builder."""
    return builder


# boom fails; under fail-fast (one step at a time, boom first: it has a dependent) `other`
# never starts; under --keep-going it runs. `after-boom` is skipped either way.
failing = Graph(
    [
        Step("boom", boom),
        Step("after-boom", nothing, depends_on=["boom"]),
        Step("other", nothing),
    ]
)


async def exit_5() -> None:
    """A step that ends the program as `sys.exit(5)` does."""
    raise SystemExit(5)


# `fetch` succeeds, then `leave` calls sys.exit(5): the command's exit status is 5.
exiting = Graph([Step("fetch", nothing), Step("leave", exit_5, depends_on=["fetch"])])

# A step that waits until its deadline (`--timeout`) or Ctrl-C.
hanging = Graph([Step("fetch", nothing), Step("hang", forever, depends_on=["fetch"])])

# A step that needs a pool the run does not have: `run` refuses it before any step starts.
pooled = Graph([Step("migrate", nothing, pools=["db"])])

# Three independent steps: the bound (`-j`) decides how many run at once.
_running = 0
_most = 0


async def busy() -> None:
    """Count how many `busy` steps run at once, letting the others start meanwhile."""
    global _running, _most  # noqa: PLW0603 - one counter for the whole run
    _running += 1
    _most = max(_most, _running)
    await trio.sleep(0.01)  # a checkpoint, so another ready step may start if allowed
    _running -= 1


async def report() -> None:
    """Print the most `busy` steps that ran at once."""
    print(f"at most {_most} at once", flush=True)


wide = Graph(
    [
        Step("a", busy),
        Step("b", busy),
        Step("c", busy),
        Step("report", report, depends_on=["a", "b", "c"]),
    ]
)


async def scratch() -> AsyncIterator[Path]:
    """A resource step: a folder, which its teardown marks as cleaned up."""
    folder = Path(os.environ["CLI_TEST_DIR"])
    yield folder
    (folder / "torn-down").write_text("the teardown ran\n", encoding="utf-8")


async def wait_for_ctrl_c(folder: Path) -> None:
    """Say it is running (the test's cue to press Ctrl-C), then wait for it."""
    print("waiting for Ctrl-C", flush=True)
    await trio.sleep_forever()


interruptible = Graph(
    [
        Step("scratch", scratch),
        Step("wait", wait_for_ctrl_c, inputs={"folder": "scratch"}),
    ]
)


async def stubborn_scratch() -> AsyncIterator[Path]:
    """A resource step whose teardown never ends (the cue for a second Ctrl-C)."""
    yield Path(os.environ["CLI_TEST_DIR"])
    print("tearing down, forever", flush=True)
    await trio.sleep_forever()


stubborn = Graph(
    [
        Step("scratch", stubborn_scratch),
        Step("wait", wait_for_ctrl_c, inputs={"folder": "scratch"}),
    ]
)
"""`interruptible`, but its teardown never ends: only a second Ctrl-C stops it."""

# Not graphs, each in its own way.
not_a_graph = 42
steps = [Step("fetch", nothing), Step("build", nothing, depends_on=["fetch"])]


empty = Graph([])
"""A graph of no steps (`list` prints nothing)."""


def returns_a_number() -> int:
    """A function that returns something other than a graph."""
    return 7


def raises() -> Graph:
    """A function that fails while making the graph."""
    raise OSError("cannot read pipeline.yaml")


async def async_factory() -> Graph:
    """An async function: the command line wants a plain one."""
    return graph


broken_builder = GraphBuilder()
broken_builder.add_step(Step("deploy", nothing, depends_on=["biuld"]))
broken_builder.add_step(Step("build", nothing))


if __name__ == "__main__":
    raise SystemExit("imported as __main__: the command line must not run this block")


def spin(pid_file: str) -> None:
    """Write this worker process's id, then keep a CPU busy for ever."""
    Path(pid_file).write_text(str(os.getpid()), encoding="utf-8")
    while True:
        pass


def spinning() -> Graph:
    """A step whose worker process spins until it is killed (`in_process`: its extra)."""
    pid_file = str(Path(os.environ["CLI_TEST_DIR"]) / "worker.pid")
    return Graph([Step("spin", in_process(spin, pid_file))])
