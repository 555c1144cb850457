"""One graph, one failing step, both error policies side by side.

Run it with `python examples/fail_fast_vs_continue.py`.

`fetch-prices` fails early while `fetch-users` is still running:

- under `ErrorPolicy.FAIL_FAST` (the default) the run cancels `fetch-users` mid-flight
  and skips every step that had not started;
- under `ErrorPolicy.CONTINUE_ON_ERROR` everything that does not need the prices still
  runs (`fetch-users`, `audit-users`); only `report` and `email-report`, downstream of
  the failure, are skipped.

The last part catches the `RunError` that `run` raises (see `except_star.py` for the
`except*` recipes).
"""

from __future__ import annotations

import attrs
import trio

import exegraph_trio as exegraph


def work(seconds: float, *, error: Exception | None = None) -> exegraph.Action:
    """An action that takes `seconds`, then raises `error` if given."""

    async def action() -> None:
        await trio.sleep(seconds)
        if error is not None:
            raise error

    return action


def build_graph() -> exegraph.Graph:
    """Two fetches in parallel; the prices fetch fails after 30 ms."""
    return exegraph.Graph(
        [
            exegraph.Step("fetch-users", work(0.08)),
            exegraph.Step("fetch-prices", work(0.03, error=ConnectionError("prices API refused"))),
            exegraph.Step("audit-users", work(0.02), depends_on=["fetch-users"]),
            exegraph.Step("report", work(0.02), depends_on=["fetch-users", "fetch-prices"]),
            exegraph.Step("email-report", work(0.01), depends_on=["report"]),
        ]
    )


OPTIONS = exegraph.RunOptions(max_concurrency=2)


async def run_and_handle(graph: exegraph.Graph) -> None:
    """Run `graph` and report what went wrong, using the `RunError` conveniences."""
    try:
        await exegraph.run(graph, OPTIONS)
    except exegraph.RunError as error:
        print(f"run failed: {error}")  # "1 of 5 steps failed, 3 skipped (4 sub-exceptions)"
        for failure in error.failures:  # each step's own exception, in order
            print(f"  {type(failure).__name__}: {failure}")
        print(f"  never ran: {', '.join(skip.step_name for skip in error.skipped)}")


async def main() -> None:
    graph = build_graph()
    for policy in exegraph.ErrorPolicy:
        options = attrs.evolve(OPTIONS, error_policy=policy)
        result = await exegraph.run_with_result(graph, options)
        print(f"--- {policy} ---")
        print(result.table())
        print()
    print("--- run() raises RunError ---")
    await run_and_handle(graph)


if __name__ == "__main__":
    trio.run(main)
