"""An on-failure notifier (`ONE_FAILED`) and a cleanup that always runs (`ALL_DONE`).

Run it with `python examples/on_failure_notifier.py`.

- `Step(trigger_rule=TriggerRule.ONE_FAILED)` runs once all its direct dependencies have
  settled and at least one did not succeed: it posts to the team's chat. When nothing
  failed it is skipped quietly, and the run succeeds.
- `TriggerRule.ALL_DONE` runs once its dependencies have settled, whatever their
  outcome: collecting the logs of every test job.
- A step with a trigger rule other than `ALL_SUCCESS` receives its `inputs` as
  `outcome.Outcome` objects (Trio's result type): `Value(v)` for a dependency that
  succeeded, `Error(exc)` for one that failed, was cancelled or was skipped.
- Under fail-fast (the default) the first failure cancels what is in flight and starts
  no ordinary step, but these two still run once their dependencies have settled.
"""

from __future__ import annotations

import outcome
import trio

import exegraph_trio as exegraph


def job(seconds: float, *, passed: int, failed: int = 0) -> exegraph.Action:
    """A test job that takes `seconds` and returns how many tests passed, or raises."""

    async def action() -> int:
        await trio.sleep(seconds)
        if failed:
            raise AssertionError(f"{failed} of {passed + failed} tests failed")
        return passed

    return action


async def build() -> None:
    await trio.sleep(0.02)


async def lint() -> None:
    await trio.sleep(0.1)  # slow: still running when the integration tests fail


async def deploy() -> None:
    await trio.sleep(0.01)


# --8<-- [start:handlers]
def describe(name: str, result: outcome.Outcome[int]) -> str:
    """One line about a test job, from its outcome."""
    match result:
        case outcome.Value(value=passed):
            return f"{name}: {passed} passed"
        case outcome.Error(error=error):
            return f"{name}: {type(error).__name__}: {error}"
    return f"{name}: ?"


async def notify(unit: outcome.Outcome[int], integration: outcome.Outcome[int]) -> str:
    """Post to the team's chat which test job broke the pipeline."""
    await trio.sleep(0.005)  # the chat's web hook
    lines = ["pipeline failed", describe("unit", unit), describe("integration", integration)]
    print("#ci-alerts: " + "\n  ".join(lines))
    return "\n".join(lines)


async def collect_logs() -> None:
    """Archive the logs of every job, whatever happened to it."""
    await trio.sleep(0.01)
    print("logs archived")


# --8<-- [end:handlers]


# --8<-- [start:graph]
def build_graph(*, integration_fails: bool) -> exegraph.Graph:
    failed = 3 if integration_fails else 0
    return exegraph.Graph(
        [
            exegraph.Step("build", build),
            exegraph.Step("lint", lint),
            exegraph.Step("unit-tests", job(0.05, passed=412), depends_on=["build"]),
            exegraph.Step(
                "integration-tests", job(0.02, passed=37, failed=failed), depends_on=["build"]
            ),
            exegraph.Step("deploy", deploy, depends_on=["unit-tests", "integration-tests"]),
            exegraph.Step(
                "notify",
                notify,
                inputs={"unit": "unit-tests", "integration": "integration-tests"},
                depends_on=["deploy"],
                trigger_rule=exegraph.TriggerRule.ONE_FAILED,
            ),
            exegraph.Step(
                "collect-logs",
                collect_logs,
                depends_on=["lint", "unit-tests", "integration-tests"],
                trigger_rule=exegraph.TriggerRule.ALL_DONE,
            ),
        ]
    )


# --8<-- [end:graph]


async def main() -> None:
    print("--- the integration tests fail (fail-fast) ---")
    result = await exegraph.run_with_result(build_graph(integration_fails=True))
    print(result.table())
    assert result.error is not None
    print(f"RunError members: {[type(e).__name__ for e in result.error.exceptions]}")
    print()
    print("--- every test passes ---")
    result = await exegraph.run_with_result(build_graph(integration_fails=False))
    print(result.table())
    print(f"ok: {result.ok}; notify: {result['notify'].status}, error {result['notify'].error}")


if __name__ == "__main__":
    trio.run(main)
