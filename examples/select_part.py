"""Run only part of a graph: `graph.select(...)` by name, by tag, downstream, or less.

Run it with `python examples/select_part.py`.

- A selector is terms separated by spaces or commas: a step-name glob (`deploy-*`),
  `tag:GLOB`, a trailing `+` for everything downstream of what a term matched
  (`build-web+`), a leading `!` to remove what a term matches (applied last).
- By default the steps the selection needs are added, so the part can run on its own;
  `with_dependencies=False` keeps only the steps selected and drops their edges to the
  others (to redeploy what was built already, say).
- A selection is a `Graph` like any other: run it, plan it, select from it.
- Mistakes are errors that say what to do: a term that matches nothing suggests close
  names, and removing a step that a kept step needs names both.
"""

from __future__ import annotations

import trio

import exegraph_trio as exegraph
from exegraph_trio import Step


async def work() -> None:
    await trio.sleep(0.01)


# --8<-- [start:graph]
def build_graph() -> exegraph.Graph:
    return exegraph.Graph(
        [
            Step("checkout", work),
            Step("build-api", work, depends_on=["checkout"], tags=["backend"]),
            Step("build-web", work, depends_on=["checkout"], tags=["frontend"]),
            Step("test-api", work, depends_on=["build-api"], tags=["backend", "test"]),
            Step("test-web", work, depends_on=["build-web"], tags=["frontend", "test"]),
            Step("test-e2e", work, depends_on=["build-api", "build-web"], tags=["test", "slow"]),
            Step("deploy-api", work, depends_on=["test-api", "test-e2e"], tags=["backend"]),
            Step("deploy-web", work, depends_on=["test-web", "test-e2e"], tags=["frontend"]),
            Step("announce", work, depends_on=["deploy-api", "deploy-web"]),
        ]
    )


# --8<-- [end:graph]


def show(graph: exegraph.Graph, selector: str, *, with_dependencies: bool = True) -> None:
    """Print what `selector` selects from `graph`, or the error it makes."""
    call = f"select({selector!r}{'' if with_dependencies else ', with_dependencies=False'})"
    try:
        part = graph.select(selector, with_dependencies=with_dependencies)
    except ValueError as error:
        print(f"{call}\n  ValueError: {error}")
        return
    print(f"{call}\n  {', '.join(part.names)}")


async def main() -> None:
    graph = build_graph()
    # --8<-- [start:select]
    show(graph, "deploy-*")  # both deploys and everything they need: all but announce
    show(graph, "deploy-*", with_dependencies=False)  # only the deploys
    show(graph, "tag:frontend")  # the frontend steps, and what they need
    show(graph, "tag:test !tag:slow")  # the quick tests and their builds
    show(graph, "build-web+")  # build-web, everything after it, and what that needs
    show(graph, "test-web+", with_dependencies=False)  # test-web and what follows it
    show(graph, "deploy-ap")  # a typo
    show(graph, "deploy-web !test-e2e")  # deploy-web cannot run without test-e2e
    # --8<-- [end:select]
    print()

    # --8<-- [start:run]
    quick = graph.select("tag:test !tag:slow")
    result = await exegraph.run_with_result(quick)
    print(result.table())
    # --8<-- [end:run]


if __name__ == "__main__":
    trio.run(main)
