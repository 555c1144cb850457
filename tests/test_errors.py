"""The exception types: messages, attributes, pickling and `is_step_skipped`."""

from __future__ import annotations

import copy
import pickle

import pytest

import exegraph_trio as exegraph
from exegraph_trio import (
    CycleError,
    DuplicateStepError,
    MissingDependencyError,
    RunError,
    StepCancelledError,
    StepSkippedError,
    StepTimeoutError,
    is_step_skipped,
)

ERRORS = [
    StepSkippedError("deploy", "build"),
    StepSkippedError("deploy"),
    StepTimeoutError("fetch", 2.5),
    StepCancelledError("slow"),
    StepCancelledError("db", in_use=True),
    DuplicateStepError(["a", "b"]),
    MissingDependencyError([("a", "x")]),
    CycleError(["a", "b", "a"]),
]


@pytest.mark.parametrize("error", ERRORS, ids=lambda e: type(e).__name__)
def test_errors_pickle_and_copy_as_themselves(error: Exception) -> None:
    for clone in (pickle.loads(pickle.dumps(error)), copy.copy(error)):
        assert type(clone) is type(error)
        assert str(clone) == str(error)
        assert clone.args == error.args


def test_messages_name_the_steps() -> None:
    assert str(StepSkippedError("deploy", "build")) == (
        "step 'deploy' was skipped: its dependency 'build' failed"
    )
    assert "'deploy'" in str(StepSkippedError("deploy"))
    assert str(StepCancelledError("slow")) == "step 'slow' was cancelled while it ran"
    assert str(StepTimeoutError("fetch", 2.5)) == "step 'fetch' timed out after 2.5 s"


def test_is_step_skipped_looks_through_chains_and_groups() -> None:
    skipped = StepSkippedError("b", "a")
    assert is_step_skipped(skipped)
    assert not is_step_skipped(ValueError())
    assert not is_step_skipped(None)
    wrapped = RuntimeError("wrapper")
    wrapped.__cause__ = skipped
    assert is_step_skipped(wrapped)
    context = KeyError()
    context.__context__ = wrapped
    assert is_step_skipped(context)
    nested = ExceptionGroup("outer", [ValueError(), ExceptionGroup("inner", [skipped])])
    assert is_step_skipped(nested)
    assert not is_step_skipped(ExceptionGroup("none", [ValueError()]))


def test_is_step_skipped_survives_a_cycle_in_the_chain() -> None:
    a, b = ValueError("a"), ValueError("b")
    a.__context__, b.__context__ = b, a
    assert not is_step_skipped(a)


def test_run_error_keeps_its_type_when_split() -> None:
    error = RunError("2 failed", [ValueError("v"), StepSkippedError("x"), KeyError("k")])
    match, rest = error.split(ValueError)
    assert isinstance(match, RunError)
    assert isinstance(rest, RunError)
    assert error.failures == (error.exceptions[0], error.exceptions[2])
    assert error.skipped == (error.exceptions[1],)
    assert isinstance(error, ExceptionGroup)


def test_the_exception_tree() -> None:
    assert issubclass(exegraph.GraphError, ValueError)
    assert issubclass(StepTimeoutError, TimeoutError)
    assert issubclass(RunError, ExceptionGroup)
    for error in (StepSkippedError, StepCancelledError):
        assert issubclass(error, Exception)


@pytest.mark.parametrize("value", ["x", 1, object()])
def test_is_step_skipped_of_something_that_is_not_an_exception_is_false(value: object) -> None:
    assert not exegraph.is_step_skipped(value)  # type: ignore[arg-type]
