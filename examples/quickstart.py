"""The smallest useful graph: two downloads at once, then a step that needs both.

Run it with `python examples/quickstart.py`.
"""

from functools import partial

import trio

import exegraph_trio as exegraph


async def download(name: str, seconds: float) -> None:
    await trio.sleep(seconds)  # stands in for real I/O
    print(f"downloaded {name}")


async def merge() -> None:
    print("merged users and orders")


graph = exegraph.Graph(
    [
        exegraph.Step("users", partial(download, "users", 0.02)),
        exegraph.Step("orders", partial(download, "orders", 0.01)),
        exegraph.Step("merge", merge, depends_on=["users", "orders"]),
    ]
)


async def main() -> None:
    await exegraph.run(graph)  # users and orders run at once; merge waits for both


if __name__ == "__main__":
    trio.run(main)
