"""A flaky deploy retried with exponential backoff, and a hung health check retried.

Run it with `python examples/retry_flaky_deploy.py`.

- `Step(retry=Retry(...))` tries a failed step again: `attempts` in all, the first wait
  `delay` seconds, each later one `backoff` times longer (capped by `max_delay`). Only
  exceptions that are instances of `on` are retried.
- The step's timeout applies to each attempt: a hung attempt fails with
  `StepTimeoutError`, a `TimeoutError`, and is retried like any other failure.
- A step waiting to retry holds no slot: with `max_concurrency=1`, `publish-docs` runs
  while `deploy` waits, and `deploy` then competes for the slot again.
- An `Instrument` sees each retry (`step_retrying`) and each later attempt
  (`attempt_started`); the result counts the attempts and keeps the earlier errors.
- When the attempts run out, the last error is the step's failure, with a note saying
  which attempt it was.
"""

from __future__ import annotations

import trio

import exegraph_trio as exegraph


class Flaky:
    """A deploy that fails with `ConnectionError` the first `failures` times, then succeeds."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls = 0

    async def __call__(self) -> str:
        """Deploy, or fail while the registry is still unavailable."""
        self.calls += 1
        await trio.sleep(0.01)
        if self.calls <= self.failures:
            raise ConnectionError(f"registry answered 503 (call {self.calls})")
        return f"deployed on call {self.calls}"


class HangsOnce:
    """A health check that hangs the first time (a stuck load balancer), then answers."""

    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self) -> None:
        """Check that the service answers."""
        self.calls += 1
        await trio.sleep(1.0 if self.calls == 1 else 0.01)


async def publish_docs() -> None:
    await trio.sleep(0.03)


class RetryLog(exegraph.Instrument):
    """Print each retry and each later attempt, with the time since the run started."""

    def __init__(self) -> None:
        self.origin = 0.0

    def run_started(self, run: exegraph.RunInfo) -> None:
        """Note when the run started."""
        self.origin = trio.current_time()

    def step_started(self, run: exegraph.RunInfo, step: exegraph.Step) -> None:
        """A step's first attempt is about to start."""
        print(f"{self._now()}  {step.name}: started")

    def step_retrying(
        self,
        run: exegraph.RunInfo,
        step: exegraph.Step,
        attempt: int,
        error: BaseException,
        delay: float,
    ) -> None:
        """An attempt failed and another follows after `delay` seconds."""
        print(
            f"{self._now()}  {step.name}: attempt {attempt} failed "
            f"({type(error).__name__}: {error}); retrying in {delay * 1000:.0f} ms"
        )

    def attempt_started(self, run: exegraph.RunInfo, step: exegraph.Step, attempt: int) -> None:
        """A later attempt is about to start."""
        print(f"{self._now()}  {step.name}: attempt {attempt} started")

    def _now(self) -> str:
        return f"{(trio.current_time() - self.origin) * 1000:4.0f} ms"


# --8<-- [start:graph]
def build_graph() -> exegraph.Graph:
    return exegraph.Graph(
        [
            exegraph.Step(
                "deploy",
                Flaky(failures=2),
                # Waits of 20 ms, then 40 ms; only connection problems are worth a retry.
                retry=exegraph.Retry(attempts=4, delay=0.02, backoff=2.0, on=ConnectionError),
            ),
            exegraph.Step(
                "health-check",
                HangsOnce(),
                depends_on=["deploy"],
                timeout=0.05,  # per attempt
                retry=exegraph.Retry(attempts=3, delay=0.01),  # on=Exception: timeouts too
            ),
            exegraph.Step("publish-docs", publish_docs),
        ]
    )


OPTIONS = exegraph.RunOptions(max_concurrency=1, instruments=[RetryLog()])
# --8<-- [end:graph]


# --8<-- [start:give-up]
async def give_up() -> None:
    """A step whose every attempt fails: the run fails with the last attempt's error."""
    retry = exegraph.Retry(attempts=3, delay=0.01, on=ConnectionError)
    graph = exegraph.Graph([exegraph.Step("deploy", Flaky(failures=99), retry=retry)])
    result = await exegraph.run_with_result(graph)
    timing = result["deploy"]
    print(f"deploy: {timing.status} after {timing.attempts} attempts: {timing.error!r}")
    print(f"  its notes: {getattr(timing.error, '__notes__', [])}")
    print(f"  earlier attempts: {list(timing.earlier_errors)}")
    print(f"  the run: {result.error!r}")


# --8<-- [end:give-up]


async def main() -> None:
    result = await exegraph.run_with_result(build_graph(), OPTIONS)
    print()
    print(result.table())
    for timing in result:
        print(f"{timing.name:<12}  attempts={timing.attempts}")
    print(f"deploy returned {result['deploy'].value!r}")
    print()
    await give_up()


if __name__ == "__main__":
    trio.run(main)
