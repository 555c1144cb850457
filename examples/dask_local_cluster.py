"""Steps on a Dask cluster: a `LocalCluster` here, the same graph against a real one.

Run it with `python examples/dask_local_cluster.py` (it needs Dask's distributed
scheduler: `pip install -e ".[dask]"` in a clone).

- `exegraph_dask.connect(...)` is a resource step's action: its setup connects a
  `distributed.Client` (the step's value), its teardown closes it once the steps using it
  are done. Given no address, as here, the Client starts a `LocalCluster` of its own (two
  worker processes) and closes it too; against a real cluster, write
  `connect("tcp://HOST:8786")`.
- `exegraph_dask.on_cluster(fn, *args, **kwargs)` runs the plain function `fn` on a worker;
  what it returns is the step's value. The step's inputs are more keyword arguments of
  `fn`, except the input named `client`: the Client to submit through.
- When the run fails fast, a step waiting on the cluster is cancelled at once, and so is
  its task on the cluster. Dask cannot stop a function already running on a worker;
  `render_preview` stops itself, seeing its task marked cancelled.
"""

from __future__ import annotations

import logging
import time

import distributed
import trio

import exegraph_dask
import exegraph_trio as exegraph
from exegraph_dask import on_cluster


# --8<-- [start:functions]
def thumbnail(name: str, width: int) -> str:
    """Runs on a worker: stands in for decoding and resizing an image."""
    return f"{name} at {width}x{width * 3 // 4}"


def contact_sheet(first: str, second: str, third: str) -> str:
    """Runs on a worker: one page of the three thumbnails."""
    return " | ".join([first, second, third])


def render_preview(frames: int) -> str:
    """Runs on a worker for a long time, unless its task is cancelled."""
    worker = distributed.get_worker()
    key = worker.get_current_task()
    for _ in range(frames):
        task = worker.state.tasks.get(key)
        if task is None or task.state == "cancelled":
            return "stopped early"
        time.sleep(0.01)  # render one frame
    return f"{frames} frames"


# --8<-- [end:functions]


# --8<-- [start:graph]
def build_graph() -> exegraph.Graph:
    cluster = exegraph_dask.connect(  # no address: a LocalCluster on this machine
        n_workers=2, threads_per_worker=1, dashboard_address="127.0.0.1:0"
    )
    steps = [exegraph.Step("dask", cluster)]
    steps += [
        exegraph.Step(
            f"thumb-{name}", on_cluster(thumbnail, name, width=160), inputs={"client": "dask"}
        )
        for name in ("owl.png", "fox.png", "elk.png")
    ]
    steps.append(
        exegraph.Step(
            "contact-sheet",
            on_cluster(contact_sheet),
            inputs={
                "client": "dask",
                "first": "thumb-owl.png",
                "second": "thumb-fox.png",
                "third": "thumb-elk.png",
            },
        )
    )
    return exegraph.Graph(steps)


# --8<-- [end:graph]


async def upload() -> None:
    """Fails, as a flaky upload would, once the preview is under way."""
    await trio.sleep(0.5)
    raise ConnectionError("upload refused: 503")


def build_failing_graph() -> exegraph.Graph:
    return exegraph.Graph(
        [
            exegraph.Step(
                "dask",
                exegraph_dask.connect(
                    n_workers=1,
                    dashboard_address="127.0.0.1:0",
                    # The worker may be closed mid-frame, before the render sees its
                    # cancel; a LocalCluster logs that as a warning.
                    silence_logs=logging.ERROR,
                ),
            ),
            exegraph.Step(
                "render-preview",
                on_cluster(render_preview, frames=6000),  # a minute of frames
                inputs={"client": "dask"},
            ),
            exegraph.Step("upload", upload, depends_on=["dask"]),
        ]
    )


async def main() -> None:
    print("--- three thumbnails and a contact sheet, on two workers ---")
    result = await exegraph.run_with_result(build_graph(), exegraph.RunOptions(max_concurrency=8))
    for name in ("thumb-owl.png", "thumb-fox.png", "thumb-elk.png", "contact-sheet"):
        print(f"{name}: {result[name].value}")
    print(f"dask: {result['dask'].status}; its teardown closed the Client and its LocalCluster")
    print()
    print("--- upload fails: fail-fast cancels the render on the cluster ---")
    result = await exegraph.run_with_result(build_failing_graph())
    print(f"upload: {result['upload'].status} ({result['upload'].error!r})")
    print(f"render-preview: {result['render-preview'].status}")


if __name__ == "__main__":
    trio.run(main)
