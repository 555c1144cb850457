"""The names and values this package puts on spans and metrics, in one place.

The keys follow the OpenTelemetry semantic conventions for CI/CD (a run is a *pipeline
run*, a step a *task run*) where they fit, and the `exegraph.*` namespace for what they
lack. They are defined here rather than imported from `opentelemetry-semantic-conventions`
so that the package needs `opentelemetry-api` only; the values are those of the
conventions at `SCHEMA_URL`.

Spans carry everything; metrics carry the low-cardinality keys only (never a run id).
"""

from __future__ import annotations

from typing import Final

from exegraph_trio import (
    RunResult,
    StepCancelledError,
    StepStatus,
    StepTimeoutError,
    StepTiming,
)

SCOPE_NAME: Final = "exegraph_otel"
"""The instrumentation scope of every span and metric this package makes."""
SCHEMA_URL: Final = "https://opentelemetry.io/schemas/1.44.0"
"""The semantic conventions version the names below follow."""

# -- OpenTelemetry semantic conventions (CI/CD, error) ---------------------------------------

CICD_PIPELINE_NAME: Final = "cicd.pipeline.name"
"""The pipeline's name: `OtelInstrument(pipeline_name=...)`, `"exegraph"` by default."""
CICD_PIPELINE_ACTION_NAME: Final = "cicd.pipeline.action.name"
"""What a pipeline run does; always `RUN` here."""
CICD_PIPELINE_RUN_ID: Final = "cicd.pipeline.run.id"
"""The run's id, on the run span: a random UUID (32 hex digits), unique beyond the process,
as the conventions ask (`exegraph.run.id` is `RunInfo.run_id`, unique within it)."""
CICD_PIPELINE_RESULT: Final = "cicd.pipeline.result"
"""How the run ended: one of `RESULT_*` (not `skip`)."""
CICD_PIPELINE_TASK_NAME: Final = "cicd.pipeline.task.name"
"""The step's name."""
CICD_PIPELINE_TASK_RUN_ID: Final = "cicd.pipeline.task.run.id"
"""`"{cicd.pipeline.run.id}/{step name}"`: unique too."""
CICD_PIPELINE_TASK_RUN_RESULT: Final = "cicd.pipeline.task.run.result"
"""How the step ended: one of `RESULT_*`."""
ERROR_TYPE: Final = "error.type"
"""The class of the exception a failed step (or run, attempt, teardown) ended with; see
`error_type`."""
EXCEPTION_MESSAGE: Final = "exception.message"
"""The message of a failed attempt's exception, on its `exegraph.retry` event."""

EXCEPTION_TYPE: Final = "exception.type"
"""The type of a recorded exception (an `exception` event, as the SDK makes one)."""

EXCEPTION_STACKTRACE: Final = "exception.stacktrace"
"""The traceback of a recorded exception (an `exception` event)."""

EVENT_EXCEPTION: Final = "exception"
"""The name of the event recording an exception (OTel semantic conventions)."""

ACTION_RUN: Final = "RUN"

RESULT_SUCCESS: Final = "success"
RESULT_FAILURE: Final = "failure"
RESULT_TIMEOUT: Final = "timeout"
RESULT_CANCELLATION: Final = "cancellation"
RESULT_SKIP: Final = "skip"

# -- exegraph's own ----------------------------------------------------------------------------

EXEGRAPH_RUN_ID: Final = "exegraph.run.id"
"""`RunInfo.run_id` (an int), on every span of the run. Never on metrics."""
EXEGRAPH_RUN_ERROR_POLICY: Final = "exegraph.run.error_policy"
"""`"FailFast"` or `"ContinueOnError"`, on the run span."""
EXEGRAPH_RUN_MAX_CONCURRENCY: Final = "exegraph.run.max_concurrency"
"""The concurrency bound the run applies (`RunOptions.concurrency_limit`), on the run span."""
EXEGRAPH_GRAPH_STEPS: Final = "exegraph.graph.steps"
"""How many steps the graph has, on the run span."""
EXEGRAPH_STEP_TAGS: Final = "exegraph.step.tags"
"""The step's tags (a string array; absent when it has none)."""
EXEGRAPH_STEP_DEPENDS_ON: Final = "exegraph.step.depends_on"
"""The names of the step's direct dependencies (a string array; absent when none)."""
EXEGRAPH_STEP_PRIORITY: Final = "exegraph.step.priority"
"""`Graph.priority(step)`: how many steps depend on it. Set only on recorded spans."""
EXEGRAPH_STEP_TIMEOUT: Final = "exegraph.step.timeout"
"""The step's deadline in seconds, when it has one."""
EXEGRAPH_STEP_TRIGGER_RULE: Final = "exegraph.step.trigger_rule"
"""The step's `TriggerRule` as a string: `"all_success"`, `"all_done"` or `"one_failed"`.
Set only on recorded spans."""
EXEGRAPH_STEP_ATTEMPTS: Final = "exegraph.step.attempts"
"""How many attempts of the step started (`StepTiming.attempts`): 1 without retries, 0 on a
skipped step. Set when the span ends."""
EXEGRAPH_STEP_POOLS: Final = "exegraph.step.pools"
"""The pool slots the step takes while it runs (`Step.pools`), as a string array of
`"{pool}:{slots}"` entries in the step's order: `("db:1",)` for `pools=["db"]`,
`("db:2", "net:1")` for `pools={"db": 2, "net": 1}` (a pool name may itself hold a `:`;
the slots follow the last one). Absent when the step takes none. Set only on recorded
spans."""
EXEGRAPH_STEP_SLOT_WAIT: Final = "exegraph.step.slot_wait"
"""Seconds the step waited, ready to start, for its slots (the concurrency slot and its
pool slots, taken all at once): `StepTiming.start - StepTiming.ready`, the wait before its
first attempt. Set when the span ends, in runs whose steps use pools (the only runs that
note when a step became ready); absent otherwise."""
EXEGRAPH_STEP_ATTEMPT: Final = "exegraph.step.attempt"
"""Which attempt (from 1): on an attempt span, and on an `exegraph.retry` event (the attempt
that failed)."""
EXEGRAPH_RETRY_DELAY: Final = "exegraph.retry.delay"
"""On an `exegraph.retry` event: the seconds the step waits, holding no slot, before it
competes for a slot again."""
EXEGRAPH_STEP_FAILED_DEPENDENCY: Final = "exegraph.step.failed_dependency"
"""On a skipped step: the failed upstream step that caused the skip, when there is one."""
EXEGRAPH_STEP_SKIP_REASON: Final = "exegraph.step.skip_reason"
"""On a skipped step: why it never ran, one of `SKIP_REASON_*`."""
EXEGRAPH_STEP_STOPPED_BY: Final = "exegraph.step.stopped_by"
"""On a step skipped by fail-fast (or by an interrupt) that is not downstream of the
failure: the failed step that stopped the run."""
EXEGRAPH_LINK_TYPE: Final = "exegraph.link.type"
"""On a link: one of `LINK_*`."""

LINK_DEPENDS_ON: Final = "depends_on"
"""A link to the span of one of the step's direct dependencies (also from skipped steps)."""
LINK_FAILED_DEPENDENCY: Final = "failed_dependency"
"""From a skipped step to the failed upstream step that caused the skip."""
LINK_STOPPED_BY: Final = "stopped_by"
"""From a step skipped by fail-fast (or an interrupt) to the failed step that stopped the run."""
LINK_TEARDOWN_OF: Final = "teardown_of"
"""From a teardown span to the span of its resource step (whose setup it undoes)."""

EVENT_RETRY: Final = "exegraph.retry"
"""A span event on a step span, at the end of each failed attempt that will be retried:
`exegraph.step.attempt`, `exegraph.retry.delay`, `error.type`, `exception.message`."""

SKIP_REASON_FAILED_DEPENDENCY: Final = "failed_dependency"
"""A step it depends on, directly or through other skipped steps, failed."""
SKIP_REASON_FAIL_FAST: Final = "fail_fast"
"""Under `ErrorPolicy.FAIL_FAST`, a step that is not downstream of it failed: the run stopped."""
SKIP_REASON_INTERRUPTED: Final = "interrupted"
"""A step raised `KeyboardInterrupt`, `SystemExit` or the like, which stops every run."""
SKIP_REASON_TRIGGER_RULE: Final = "trigger_rule"
"""Its trigger rule does not hold although nothing failed: a `ONE_FAILED` step whose
dependencies all succeeded (a skip without error)."""
SKIP_REASON_CANCELLED: Final = "cancelled"
"""The run was cancelled from outside (an enclosing cancel scope, or Ctrl-C while it waited)
before the step could start."""

# -- deriving values ---------------------------------------------------------------------------


def error_type(error: BaseException) -> str:
    """The `error.type` of `error`: its class name, qualified by module unless a builtin.

    `ValueError`, `exegraph_trio.StepTimeoutError`, `myapp.errors.DeployError`.
    """
    cls = type(error)
    if cls.__module__ == "builtins":
        return cls.__qualname__
    return f"{cls.__module__}.{cls.__qualname__}"


def step_result(timing: StepTiming) -> str:
    """The `cicd.pipeline.task.run.result` of a finished or skipped step."""
    status = timing.status
    if status is StepStatus.DONE:
        return RESULT_SUCCESS
    if status is StepStatus.SKIPPED:
        return RESULT_SKIP
    if status is StepStatus.CANCELLED or isinstance(timing.error, StepCancelledError):
        return RESULT_CANCELLATION
    if isinstance(timing.error, StepTimeoutError):
        return RESULT_TIMEOUT
    return RESULT_FAILURE


def attempt_result(error: BaseException) -> str:
    """The `cicd.pipeline.task.run.result` of an attempt that failed with `error` and is retried.

    `timeout` when its deadline cut it, else `failure` (cancellation is never retried).
    """
    return RESULT_TIMEOUT if isinstance(error, StepTimeoutError) else RESULT_FAILURE


def run_result(result: RunResult) -> tuple[str, BaseException | None]:
    """The `cicd.pipeline.result` of a run, and the error to report for it (if failed).

    A run with a failed (or timed-out) step or a failed teardown is a `failure`, reported
    with the `RunError` (or, when a `KeyboardInterrupt`-like exception stopped it, that
    exception); a run with no failure that was stopped is a `cancellation`: steps
    cancelled or skipped, or every step done but the run cancelled from outside or
    interrupted afterwards (by a hook, during a teardown: `RunResult.ok` is false). A
    `ONE_FAILED` step skipped because nothing failed does not count (such a run returns
    normally). Else it is a `success`.
    """
    failed = [t.error for t in result.steps if t.status is StepStatus.FAILED]
    failed += [t.teardown_error for t in result.steps if t.teardown_error is not None]
    if failed:
        interrupt = next((e for e in failed if not isinstance(e, Exception)), None)
        return RESULT_FAILURE, interrupt or result.error or failed[0]
    if not result.ok:
        return RESULT_CANCELLATION, None
    return RESULT_SUCCESS, None
