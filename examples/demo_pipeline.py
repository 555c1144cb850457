"""A deploy pipeline of a dozen steps, one of which fails on purpose, run under ContinueOnError.

Run it with `python examples/demo_pipeline.py` (or `make demo`). The three services build
and test in parallel. `test-billing` is set up to fail, to show what ContinueOnError does:
`deploy-billing` and the final smoke test that needs every service are skipped, while
everything that does not depend on billing still runs to the end. The table shows each
step's status, start and duration; the last lines say what happened in words.
"""

from __future__ import annotations

import trio

import exegraph_trio as exegraph

SERVICES = ("api", "web", "billing")
STAGED_FAILURE = "test-billing"
"""The step that fails on purpose, to show what ContinueOnError does."""


def work(seconds: float, *, fail: str | None = None) -> exegraph.Action:
    """An action that takes `seconds` and then fails with `fail` as its message, if given."""

    async def action() -> None:
        await trio.sleep(seconds)
        if fail is not None:
            raise RuntimeError(fail)

    return action


def build_graph() -> exegraph.Graph:
    """The pipeline: checkout, then per service build → test → deploy, then smoke tests."""
    steps = [
        exegraph.Step("checkout", work(0.02), tags=["source"]),
        exegraph.Step("provision-db", work(0.05), tags=["infra"]),
        exegraph.Step("migrate-db", work(0.02), depends_on=["provision-db", "checkout"]),
    ]
    for i, service in enumerate(SERVICES):
        staged = f"test-{service}" == STAGED_FAILURE
        failure = "3 tests failed in test_invoices.py" if staged else None
        steps += [
            exegraph.Step(f"build-{service}", work(0.03 + 0.01 * i), depends_on=["checkout"]),
            exegraph.Step(
                f"test-{service}",
                work(0.02 + 0.01 * i, fail=failure),
                depends_on=[f"build-{service}"],
                tags=["tests"],
            ),
            exegraph.Step(
                f"deploy-{service}",
                work(0.02),
                depends_on=[f"test-{service}", "migrate-db"],
                tags=["deploy"],
            ),
        ]
    steps.append(
        exegraph.Step(
            "smoke-test", work(0.02), depends_on=[f"deploy-{s}" for s in SERVICES], tags=["tests"]
        )
    )
    return exegraph.Graph(steps)


def summary(result: exegraph.RunResult) -> str:
    """What happened, in a sentence or two: how many steps succeeded, what failed and why."""
    done = result.with_status(exegraph.StepStatus.DONE)
    lines = [f"{len(done)} of {len(result)} steps succeeded."]
    for timing in result.with_status(exegraph.StepStatus.FAILED):
        how = "failed as staged" if timing.name == STAGED_FAILURE else "failed"
        lines.append(f"{timing.name} {how} ({type(timing.error).__name__}: {timing.error}).")
    skipped = [timing.name for timing in result.with_status(exegraph.StepStatus.SKIPPED)]
    if skipped:
        lines.append(f"Skipped because they need a failed step: {', '.join(skipped)}.")
    return "\n".join(lines)


async def main() -> exegraph.RunResult:
    """Run the pipeline, keep going past the failure, and print what happened."""
    graph = build_graph()
    options = exegraph.RunOptions(
        max_concurrency=4, error_policy=exegraph.ErrorPolicy.CONTINUE_ON_ERROR
    )
    print(
        f"Running {len(graph)} steps, at most {options.max_concurrency} at once, under "
        f"{options.error_policy}.\n{STAGED_FAILURE} is set up to fail, to show that the steps "
        "which need it\nare skipped while everything else runs to the end.\n"
    )
    result = await exegraph.run_with_result(graph, options)
    print(result.table())
    print()
    print(summary(result))
    return result


if __name__ == "__main__":
    trio.run(main)
