"""Metrics: how long steps and runs take, how many steps run at once, how steps end.

| instrument | kind | unit | attributes |
|---|---|---|---|
| `exegraph.step.duration` | histogram | `s` | pipeline, task, result, `error.type` on failure |
| `exegraph.step.active` | up-down counter | `{step}` | pipeline, task |
| `exegraph.step.outcomes` | counter | `{step}` | pipeline, task, result, `error.type` on failure |
| `exegraph.step.retries` | counter | `{attempt}` | pipeline, task, `error.type` |
| `exegraph.teardown.duration` | histogram | `s` | pipeline, task, `error.type` on failure |
| `exegraph.run.duration` | histogram | `s` | pipeline, result, `error.type` on failure |

Durations are Trio clock seconds, like `StepTiming.duration`: a step's spans its attempts
and the waits between them. A step waiting to be retried holds no slot and is not active.
Attributes are
low-cardinality only: a step's name is part of the code that builds the graph (like an HTTP
route), while run ids, tags and error messages stay on spans.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Final

import trio
from opentelemetry import metrics

import exegraph_trio

from . import _attributes as attr

if TYPE_CHECKING:
    from opentelemetry.metrics import MeterProvider

    from exegraph_trio import RunInfo, RunResult, Step, StepTiming

__all__ = [
    "DURATION_BUCKETS",
    "RUN_DURATION",
    "STEP_ACTIVE",
    "STEP_DURATION",
    "STEP_OUTCOMES",
    "STEP_RETRIES",
    "TEARDOWN_DURATION",
    "Metrics",
]

STEP_DURATION: Final = "exegraph.step.duration"
STEP_ACTIVE: Final = "exegraph.step.active"
STEP_OUTCOMES: Final = "exegraph.step.outcomes"
STEP_RETRIES: Final = "exegraph.step.retries"
TEARDOWN_DURATION: Final = "exegraph.teardown.duration"
RUN_DURATION: Final = "exegraph.run.duration"

DURATION_BUCKETS: Final = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0,
)  # fmt: skip
"""Histogram bucket boundaries, in seconds: from 5 ms steps to hour-long runs."""


class _Measures:
    """What one run needs remembered between calls."""

    __slots__ = ("active", "start", "teardowns", "waiting")

    def __init__(self, start: float) -> None:
        self.start = start
        self.waiting: set[str] = set()  # steps waiting to be retried (not active)
        self.teardowns: dict[str, float] = {}  # when each teardown under way started
        # The steps counted in `exegraph.step.active` now, with their attributes: given
        # back (-1) if the run is forgotten, so that the counter does not stay up.
        self.active: dict[str, dict[str, str]] = {}


class Metrics:
    """Turns one instrument's calls into measurements; per-run state is keyed by `RunInfo`.

    Every method may raise if the meter does: the caller
    ([`OtelInstrument`][exegraph_otel.OtelInstrument]) catches it and calls `forget`.
    """

    def __init__(self, meter_provider: MeterProvider | None, pipeline_name: str) -> None:
        meter = metrics.get_meter(
            attr.SCOPE_NAME,
            exegraph_trio.__version__,
            meter_provider,
            schema_url=attr.SCHEMA_URL,
        )
        self._step_duration = meter.create_histogram(
            STEP_DURATION,
            unit="s",
            description="How long steps took, retry waits included, by step and result.",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )
        self._step_active = meter.create_up_down_counter(
            STEP_ACTIVE,
            unit="{step}",
            description="How many step actions are running.",
        )
        self._step_outcomes = meter.create_counter(
            STEP_OUTCOMES,
            unit="{step}",
            description="How many steps ended (or were skipped), by step and result.",
        )
        self._step_retries = meter.create_counter(
            STEP_RETRIES,
            unit="{attempt}",
            description="How many failed step attempts were retried, by step and error type.",
        )
        self._teardown_duration = meter.create_histogram(
            TEARDOWN_DURATION,
            unit="s",
            description="How long the teardowns of resource steps ran, by step.",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )
        self._run_duration = meter.create_histogram(
            RUN_DURATION,
            unit="s",
            description="How long runs took, from start to end, by result.",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )
        self._pipeline_name = pipeline_name
        self._runs: dict[RunInfo, _Measures] = {}

    def forget(self, run: RunInfo) -> None:
        """Stop measuring `run` (after an error); the steps it counted active are not.

        Each is taken off `exegraph.step.active` (unless the meter fails again: then as
        many as it allows), so that the counter goes back down as the steps end.
        """
        measures = self._runs.pop(run, None)
        if measures is not None:
            self._give_back(measures)

    def _give_back(self, measures: _Measures) -> None:
        """Take the steps still counted active off `exegraph.step.active`, each guarded."""
        for attributes in measures.active.values():
            with contextlib.suppress(Exception):
                self._step_active.add(-1, attributes)
        measures.active.clear()

    def run_started(self, run: RunInfo) -> None:
        self._runs[run] = _Measures(trio.current_time())

    def run_done(self, run: RunInfo, result: RunResult) -> None:
        measures = self._runs.pop(run, None)
        if measures is None:
            return
        if measures.active:  # (a Ctrl-C in a step's own `-1`: none after a whole run)
            self._give_back(measures)
        outcome, error = attr.run_result(result)
        attributes = {
            attr.CICD_PIPELINE_NAME: self._pipeline_name,
            attr.CICD_PIPELINE_RESULT: outcome,
        }
        if error is not None:
            attributes[attr.ERROR_TYPE] = attr.error_type(error)
        self._run_duration.record(trio.current_time() - measures.start, attributes)

    def step_started(self, run: RunInfo, step: Step) -> None:
        measures = self._runs.get(run)
        if measures is not None:
            self._active(measures, step)

    def step_retrying(
        self, run: RunInfo, step: Step, attempt: int, error: BaseException, delay: float
    ) -> None:
        measures = self._runs.get(run)
        if measures is None:
            return
        measures.waiting.add(step.name)
        attributes = self._inactive(measures, step)
        attributes[attr.ERROR_TYPE] = attr.error_type(error)
        self._step_retries.add(1, attributes)

    def attempt_started(self, run: RunInfo, step: Step, attempt: int) -> None:
        measures = self._runs.get(run)
        if measures is not None and step.name in measures.waiting:
            measures.waiting.discard(step.name)
            self._active(measures, step)

    def step_done(self, run: RunInfo, step: Step, timing: StepTiming) -> None:
        measures = self._runs.get(run)
        if measures is None:
            return
        if step.name in measures.waiting:  # cancelled while it waited: not active
            measures.waiting.discard(step.name)
            attributes = self._step_attributes(step)
        else:
            attributes = self._inactive(measures, step)
        attributes = self._with_outcome(attributes, timing)
        self._step_duration.record(timing.duration, attributes)
        self._step_outcomes.add(1, attributes)

    def teardown_started(self, run: RunInfo, step: Step) -> None:
        measures = self._runs.get(run)
        if measures is not None:
            measures.teardowns[step.name] = trio.current_time()

    def teardown_done(self, run: RunInfo, step: Step, error: BaseException | None) -> None:
        measures = self._runs.get(run)
        if measures is None:
            return
        start = measures.teardowns.pop(step.name, None)
        if start is None:
            return
        attributes = self._step_attributes(step)
        if error is not None:
            attributes[attr.ERROR_TYPE] = attr.error_type(error)
        self._teardown_duration.record(trio.current_time() - start, attributes)

    def step_skipped(self, run: RunInfo, step: Step, timing: StepTiming) -> None:
        if run in self._runs:
            attributes = self._with_outcome(self._step_attributes(step), timing)
            self._step_outcomes.add(1, attributes)

    def _active(self, measures: _Measures, step: Step) -> None:
        """Count `step` in `exegraph.step.active`, and remember it counted."""
        attributes = self._step_attributes(step)
        self._step_active.add(1, attributes)
        measures.active[step.name] = attributes

    def _inactive(self, measures: _Measures, step: Step) -> dict[str, str]:
        """Take `step` off `exegraph.step.active` (as counted); its attributes, to reuse.

        It is forgotten as counted only once the `-1` is made: a meter raising there
        (or a Ctrl-C) leaves it for `forget` or `run_done` to give back.
        """
        attributes = measures.active.get(step.name)
        if attributes is None:  # (never counted: its start's add failed, or before)
            return self._step_attributes(step)
        self._step_active.add(-1, attributes)
        del measures.active[step.name]
        return dict(attributes)

    def _step_attributes(self, step: Step) -> dict[str, str]:
        return {
            attr.CICD_PIPELINE_NAME: self._pipeline_name,
            attr.CICD_PIPELINE_TASK_NAME: step.name,
        }

    @staticmethod
    def _with_outcome(attributes: dict[str, str], timing: StepTiming) -> dict[str, str]:
        outcome = attr.step_result(timing)
        attributes = {**attributes, attr.CICD_PIPELINE_TASK_RUN_RESULT: outcome}
        if timing.error is not None and outcome in (attr.RESULT_FAILURE, attr.RESULT_TIMEOUT):
            attributes[attr.ERROR_TYPE] = attr.error_type(timing.error)
        return attributes
