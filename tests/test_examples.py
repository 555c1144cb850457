"""Every example runs as documented: `python examples/NAME.py` exits 0 and prints its story.

Testing charter: each script runs in its own subprocess with this interpreter, from the
repository root, with `-W error` (an example must not warn) and a timeout, so a hanging
example fails instead of hanging the suite. The examples touch no network. The parameters
come from a glob, so a new example is covered the moment it exists; the OpenTelemetry
examples, which need a receiver, are run by `tests/otel/test_otel_examples.py`.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))

RUN_ELSEWHERE = {
    "otel_console.py": "run by tests/otel/test_otel_examples.py, which checks the spans it prints",
    "otel_jaeger.py": (
        "run by tests/otel/test_otel_examples.py against an OTLP receiver on 127.0.0.1"
    ),
}

# What each example must print, in this order; the others need only exit 0.
EXPECTED: dict[str, list[str]] = {
    "quickstart.py": ["downloaded orders", "downloaded users", "merged users and orders"],
    "demo_pipeline.py": [
        "Running 13 steps, at most 4 at once, under ContinueOnError.",
        "test-billing is set up to fail",
        "test-billing    Failed",
        "deploy-billing  Skipped",
        "smoke-test      Skipped",
        "13 steps in ",
        " s: 10 done, 1 failed, 2 skipped",
        "10 of 13 steps succeeded.",
        "test-billing failed as staged (RuntimeError: 3 tests failed in test_invoices.py).",
        "Skipped because they need a failed step: deploy-billing, smoke-test.",
    ],
    "fail_fast_vs_continue.py": [
        "--- FailFast ---",
        "fetch-users   Cancelled",
        "--- ContinueOnError ---",
        "audit-users   Done",
        "run failed: 1 of 5 steps failed, 3 skipped",
        "never ran: audit-users, report, email-report",
    ],
    "except_star.py": [
        "too slow: mirror-us (limit 0.05 s)",
        "network: connection reset (exegraph: raised by step 'mirror-eu')",
        "never ran: publish",
        "left for the caller: RunError(",
        "ValueError(\"bad port: 'eighty'\")",
    ],
    "timeouts.py": [
        "upload: cancelled, partial upload removed",
        "StepTimeoutError: step 'upload' timed out after 0.05 s",
        "notify  Skipped",
        "index   Done",
        "run cancelled: True; steps cancelled mid-flight: ['b']",
    ],
    "hooks_metrics.py": [
        "[resize:old.bmp] resizing old.bmp",
        "[-] run failed",
        "outcomes: {",
        "resize:owl.png",
    ],
    "bounded_crawler.py": [
        "fetched 8 of 9 pages, at most 3 requests at once",
        "indexed sections: docs, shop",
        "skipped: step 'index blog' was skipped: its dependency 'GET /blog/old-post' failed",
        "failed:  404 Not Found: /blog/old-post",
    ],
    "instrument_progress.py": ["started: 4 steps", "compress Failed", "upload skipped", "ok after"],
    "builder_decorators.py": [
        "4 steps: checkout, lint, unit_tests, package",
        "checkout   priority 3",
        "packaged",
        "typo: MissingDependencyError: missing dependencies: 'build' depends on 'chekout'",
        "cycle: CycleError: dependency cycle: a → c → b → a",
        "duplicate: DuplicateStepError: duplicate step name: 'a'",
    ],
    "testing_with_pytest.py": ["4 passed"],
    "artifact_inputs.py": [
        "smoke-tested registry.example.com/shop",
        "deploying registry.example.com/shop@sha256:",
        "4 steps in ",
        " s: all done",
        "deploy returned https://shop.staging.example.com",
        "package value after the run: None (released)",
        "upload value after the run:  's3://releases/shop.tar (4 MB)' (kept: nobody takes it)",
    ],
    "retry_flaky_deploy.py": [
        "deploy: started",
        "deploy: attempt 1 failed (ConnectionError: registry answered 503 (call 1)); "
        "retrying in 20 ms",
        "publish-docs: started",  # in the slot deploy gave up while it waits
        "deploy: attempt 2 started",
        "deploy: attempt 3 started",
        "health-check: attempt 1 failed (StepTimeoutError: step 'health-check' timed out "
        "after 0.05 s); retrying in 10 ms",
        "health-check: attempt 2 started",
        " s: all done",
        "deploy        attempts=3",
        "health-check  attempts=2",
        "deploy returned 'deployed on call 3'",
        "deploy: Failed after 3 attempts: ConnectionError('registry answered 503 (call 3)')",
        "its notes: ['exegraph: attempt 3 of 3', \"exegraph: raised by step 'deploy'\"]",
        "earlier attempts: [ConnectionError('registry answered 503 (call 1)'), "
        "ConnectionError('registry answered 503 (call 2)')]",
    ],
    "cluster_resource.py": [
        "--- every test passes ---",
        "cluster ci-4711 is up",
        "database dropped",  # before the cluster it lives on is deleted
        "cluster: teardown started",
        "cluster ci-4711 deleted",
        "publish-docs: Done",  # the cluster was deleted long before the run's end
        " s: all done",
        "--- test-api fails",
        "database: the run failed (AssertionError), dump kept for debugging",
        "database dropped",
        "cluster ci-4711 deleted",
        "AssertionError: test-api: POST /orders returned 500",
    ],
    "on_failure_notifier.py": [
        "#ci-alerts: pipeline failed",
        "  unit: StepCancelledError: step 'unit-tests' was cancelled while it ran",
        "  integration: AssertionError: 3 of 40 tests failed",
        "RunError members: ['AssertionError', 'StepSkippedError']",
        "--- every test passes ---",
        "logs archived",
        "ok: True; notify: Skipped, error None",
    ],
    "shared_database_pool.py": [
        "database sessions, ms after the start:",
        "peak: 2 sessions at once (the pool has 2 slots)",  # 4 loads wanted one at 30 ms
        "orders/reindex",
        "waited",  # for the slots billing's loads took first: they were ready earlier
        "billing/load-invoices",
        "waited",
        "the pool after both runs: Pool(2) with 0 in use",
    ],
    "learned_durations.py": [
        "first run, every step estimated at 1 s: 26 s",
        "  build-image              ████████████████████",  # started at 6 s
        "critical path: build-image",
        "learned: fetch-deps 3 s, unit-tests 3 s, integration-tests 3 s, lint 3 s, "
        "typecheck 3 s, build-image 20 s",
        "plan() with these estimates predicts 20 s",
        "second run, ordered by the learned durations: 20 s",
        "  build-image        ████████████████████",  # started at once
        "the second run took 20 s, 6 s less than the first",
        '"build-image": 20.0,',
        '"version": 1',
    ],
    "plan_before_run.py": [
        "page-on-call  Skipped",
        "makespan 170.000 s; critical path: checkout → build-api → test-api → deploy",
        "build-web           25       25",
        "every step started as planned: True",
        "makespan: planned 170 s, ran 170 s",
        "critical path: checkout → build-api → test-api → deploy",
        "build-api     Cancelled     5.000    25.000",
        "migrate-db    Failed        5.000    25.000",
        "page-on-call  Done         25.000    26.000",
        "Cancelled: build-api",
        "Skipped: build-web, test-api, test-web, deploy",
    ],
    "select_part.py": [
        "select('deploy-*')\n  checkout, build-api, build-web, test-api, test-web, test-e2e, "
        "deploy-api, deploy-web\n",
        "select('deploy-*', with_dependencies=False)\n  deploy-api, deploy-web\n",
        "select('tag:frontend')\n  checkout, build-api, build-web, test-web, test-e2e, "
        "deploy-web\n",
        "select('tag:test !tag:slow')\n  checkout, build-api, build-web, test-api, test-web\n",
        "select('build-web+')\n  checkout, build-api, build-web, test-api, test-web, test-e2e, "
        "deploy-api, deploy-web, announce\n",
        "select('test-web+', with_dependencies=False)\n  test-web, deploy-web, announce\n",
        "'deploy-ap' matches no step name (did you mean 'deploy-api' or 'deploy-web'?)",
        "'deploy-web' depends on 'test-e2e'",
        "5 steps in ",
        " s: all done",
    ],
    "offload_thread_process.py": [
        "download: 4194304 bytes",
        "sha256: 2b07811057df8870…",
        "blake2b: 2df49b96ca3ba341…",
        "primes below 200 000: 17984 (9592 + 8392, two processes)",
        "simulate: Failed: step 'simulate' timed out after 0.5 s",
        "its worker process was killed within 1 s of the deadline: True",
    ],
    "dask_local_cluster.py": [
        "thumb-owl.png: owl.png at 160x120",
        "contact-sheet: owl.png at 160x120 | fox.png at 160x120 | elk.png at 160x120",
        "dask: Done; its teardown closed the Client and its LocalCluster",
        "upload: Failed (ConnectionError('upload refused: 503'))",
        "render-preview: Cancelled",
    ],
    "metrics_in_memory.py": [
        "exegraph.step.duration (s)",
        "test-billing   failure  count=3",
        "deploy-billing skip     3",
        "exegraph.run.duration (s)",
    ],
}


def _params() -> list[object]:
    return [
        pytest.param(
            path,
            id=path.name,
            marks=[pytest.mark.skip(reason=RUN_ELSEWHERE[path.name])]
            if path.name in RUN_ELSEWHERE
            else [],
        )
        for path in EXAMPLES
    ]


def test_there_are_at_least_six_examples_besides_the_otel_ones() -> None:
    assert len([p for p in EXAMPLES if p.name not in RUN_ELSEWHERE]) >= 6


def test_every_expectation_names_an_existing_example() -> None:
    assert set(EXPECTED) <= {path.name for path in EXAMPLES}


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda path: path.name)
def test_example_has_a_docstring_a_main_and_a_main_guard(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    assert ast.get_docstring(tree), f"{path.name} needs a module docstring (the docs show it)"
    functions = {
        node.name for node in tree.body if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
    }
    assert "main" in functions, f"{path.name} needs a main()"
    guards = [
        node
        for node in tree.body
        if isinstance(node, ast.If) and "__name__" in ast.unparse(node.test)
    ]
    assert guards, f"{path.name} needs an `if __name__ == '__main__':` guard"


@pytest.mark.parametrize("path", _params())
def test_example_runs_and_prints_what_it_should(path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-W", "error", str(path.relative_to(ROOT))],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    assert done.stderr == "", done.stderr
    position = 0
    for expected in EXPECTED.get(path.name, []):
        found = done.stdout.find(expected, position)
        assert found >= 0, f"{expected!r} not printed (in order) by {path.name}:\n{done.stdout}"
        position = found + len(expected)
