"""A test cluster as a resource step, torn down right after its last test.

Run it with `python examples/cluster_resource.py`.

- An async generator function that yields once is a *resource step*: the part up to
  the `yield` is its setup (the step's action, with its duration, deadline and
  retries), the yielded value is its value, and the part after the `yield` is its
  teardown.
- The teardown runs as soon as every step that depends on the resource has settled, not
  at the end of the run: the cluster is deleted while `publish-docs` is still running.
- Resources are released in reverse dependency order: `database`, which lives on the
  cluster, is dropped before the cluster is deleted.
- An `@asynccontextmanager` function is a resource step too; its `__aexit__` is given
  the run's exception, so it can tell a failed run from a good one. The code after a
  generator's bare `yield` always runs, like a pytest yield fixture's.
- An `Instrument` sees each teardown start and end (`teardown_started`,
  `teardown_done`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import attrs
import trio

import exegraph_trio as exegraph


class Timeline:
    """Print lines stamped with the milliseconds since `reset()`."""

    def __init__(self) -> None:
        self.origin = 0.0

    def reset(self) -> None:
        """Count from now."""
        self.origin = trio.current_time()

    def __call__(self, what: str) -> None:
        """Print `what`, stamped."""
        print(f"{(trio.current_time() - self.origin) * 1000:4.0f} ms  {what}")


log = Timeline()


@attrs.frozen
class Cluster:
    """A Kubernetes cluster made for one test run."""

    name: str
    nodes: int


# --8<-- [start:resources]
async def ci_cluster() -> AsyncIterator[Cluster]:
    """Create a cluster, hand it to the tests, delete it once they are all done."""
    await trio.sleep(0.03)  # stands in for `kind create cluster`
    cluster = Cluster("ci-4711", nodes=3)
    log(f"cluster {cluster.name} is up")
    yield cluster  # the setup ends here; the value is the cluster
    await trio.sleep(0.02)  # `kind delete cluster`: after a bare yield, this always runs
    log(f"cluster {cluster.name} deleted")


@asynccontextmanager
async def database(cluster: Cluster) -> AsyncIterator[str]:
    """A database on the cluster; on a failed run, keep a dump before dropping it."""
    await trio.sleep(0.01)
    log(f"database created on {cluster.name}")
    try:
        yield f"postgres://db.{cluster.name}.svc/test"
    except Exception as error:  # the run's first failure
        log(f"database: the run failed ({type(error).__name__}), dump kept for debugging")
        raise
    finally:
        await trio.sleep(0.005)
        log("database dropped")


# --8<-- [end:resources]


class Suite:
    """An end-to-end test suite of the image against the cluster (and maybe a database)."""

    def __init__(self, name: str, seconds: float, *, fail: bool = False) -> None:
        self.name = name
        self.seconds = seconds
        self.fail = fail

    async def __call__(self, cluster: Cluster, db: str | None = None) -> None:
        """Run the suite against `cluster` (and `db`, when given)."""
        await trio.sleep(self.seconds)
        if self.fail:
            raise AssertionError(f"{self.name}: POST /orders returned 500")


async def report() -> None:
    await trio.sleep(0.01)


async def publish_docs() -> None:
    await trio.sleep(0.2)


class TeardownLog(exegraph.Instrument):
    """Print when steps end and when teardowns start and end."""

    def step_done(
        self, run: exegraph.RunInfo, step: exegraph.Step, timing: exegraph.StepTiming
    ) -> None:
        """A step ended (for a resource: its setup)."""
        log(f"{step.name}: {timing.status}")

    def teardown_started(self, run: exegraph.RunInfo, step: exegraph.Step) -> None:
        """A resource's teardown is about to run."""
        log(f"{step.name}: teardown started")

    def teardown_done(
        self, run: exegraph.RunInfo, step: exegraph.Step, error: BaseException | None
    ) -> None:
        """A resource's teardown ended."""
        log(f"{step.name}: teardown done{'' if error is None else f' ({error!r})'}")


# --8<-- [start:graph]
def build_graph(*, api_fails: bool = False) -> exegraph.Graph:
    return exegraph.Graph(
        [
            exegraph.Step("cluster", ci_cluster, timeout=60),  # setup and teardown: 60 s each
            exegraph.Step("database", database, inputs={"cluster": "cluster"}),
            exegraph.Step(
                "test-api",
                Suite("test-api", 0.04, fail=api_fails),
                inputs={"cluster": "cluster", "db": "database"},
            ),
            exegraph.Step("test-ui", Suite("test-ui", 0.06), inputs={"cluster": "cluster"}),
            exegraph.Step("report", report, depends_on=["test-api", "test-ui"]),
            exegraph.Step("publish-docs", publish_docs),  # needs no cluster
        ]
    )


# --8<-- [end:graph]


async def run(*, api_fails: bool) -> None:
    graph = build_graph(api_fails=api_fails)
    options = exegraph.RunOptions(instruments=[TeardownLog()])  # fail-fast, the default
    log.reset()
    result = await exegraph.run_with_result(graph, options)
    print()
    print(result.table())


async def main() -> None:
    print("--- every test passes ---")
    await run(api_fails=False)
    print()
    print("--- test-api fails: fail-fast cancels the rest, the teardowns still run ---")
    await run(api_fails=True)


if __name__ == "__main__":
    trio.run(main)
