"""Build a graph with decorators, and see what validation says about a broken one.

Run it with `python examples/builder_decorators.py`.

`GraphBuilder.step` turns async functions into steps named after the functions; the
functions stay callable as they were. `build()` validates the whole graph at once and
reports every mistake with the offending names.
"""

from __future__ import annotations

import trio

import exegraph_trio as exegraph

# --8<-- [start:builder]
builder = exegraph.GraphBuilder()


@builder.step
async def checkout() -> None:
    await trio.sleep(0.01)


@builder.step(depends_on=["checkout"], tags=["lint"])
async def lint() -> None:
    await trio.sleep(0.01)


@builder.step(depends_on=["checkout"], tags=["test"], timeout=5)
async def unit_tests() -> None:
    await trio.sleep(0.02)


@builder.step(name="package", depends_on=["lint", "unit_tests"])
async def make_wheel() -> None:
    print("packaged")


graph = builder.build()
# --8<-- [end:builder]


# --8<-- [start:errors]
def show_validation_errors() -> None:
    """Each mistake gets its own `GraphError` subclass and a message naming the steps."""

    async def noop() -> None:
        pass

    broken_graphs = {
        "typo": [
            exegraph.Step("build", noop, depends_on=["chekout"]),
            exegraph.Step("test", noop, depends_on=["biuld"]),
        ],
        "cycle": [
            exegraph.Step("a", noop, depends_on=["c"]),
            exegraph.Step("b", noop, depends_on=["a"]),
            exegraph.Step("c", noop, depends_on=["b"]),
        ],
        "duplicate": [exegraph.Step("a", noop), exegraph.Step("a", noop)],
    }
    for label, steps in broken_graphs.items():
        try:
            exegraph.Graph(steps)
        except exegraph.GraphError as error:
            print(f"{label}: {type(error).__name__}: {error}")


# --8<-- [end:errors]


async def main() -> None:
    print(f"{len(graph)} steps: {', '.join(graph.names)}")
    for step in graph:
        print(f"  {step.name:<10} priority {graph.priority(step.name)}  tags {step.tags}")
    await exegraph.run(graph)
    show_validation_errors()


if __name__ == "__main__":
    trio.run(main)
