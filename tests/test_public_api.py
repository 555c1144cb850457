"""The public surface: `__all__` is sorted, complete, documented and says `exegraph_trio.X`."""

from __future__ import annotations

import importlib
import inspect
import types
import typing

import attrs
import pytest

import exegraph_trio

PACKAGES = ["exegraph_trio", "exegraph_otel"]

SPEC_NAMES = {
    "CycleError",
    "DuplicateStepError",
    "DurationLog",
    "ErrorPolicy",
    "Graph",
    "GraphBuilder",
    "GraphError",
    "Instrument",
    "MissingDependencyError",
    "Plan",
    "PlannedStep",
    "Pool",
    "Progress",
    "Retry",
    "RunError",
    "RunOptions",
    "RunResult",
    "Step",
    "StepCancelledError",
    "StepSkippedError",
    "StepStatus",
    "StepTimeoutError",
    "StepTiming",
    "TriggerRule",
    "in_process",
    "in_thread",
    "is_step_skipped",
    "plan",
    "run",
    "run_with_result",
}


def public_names(module: types.ModuleType) -> list[str]:
    return [name for name in dir(module) if not name.startswith("_")]


def test_every_name_of_the_spec_is_exported() -> None:
    assert set(exegraph_trio.__all__) >= SPEC_NAMES


@pytest.mark.parametrize("package", PACKAGES)
def test_all_is_sorted_and_matches_the_public_names(package: str) -> None:
    module = importlib.import_module(package)
    assert module.__all__ == sorted(module.__all__)
    exported = set(module.__all__)
    assert exported == {
        name
        for name in public_names(module)
        if not isinstance(getattr(module, name), types.ModuleType)
    }


@pytest.mark.parametrize("package", PACKAGES)
def test_public_names_live_in_the_package_and_have_docstrings(package: str) -> None:
    module = importlib.import_module(package)
    for name in module.__all__:
        obj = getattr(module, name)
        if inspect.isclass(obj) or inspect.isfunction(obj):
            assert obj.__module__ == package, name
            assert inspect.getdoc(obj), f"{package}.{name} has no docstring"


@pytest.mark.parametrize("package", PACKAGES)
def test_type_hints_of_public_classes_resolve(package: str) -> None:
    # Tools that read annotations at run time (cattrs, typeguard, `attrs.resolve_types`)
    # call `typing.get_type_hints`, which looks names up in the class's `__module__`: the
    # package once it is rewritten, where `Mapping` or `Callable` are not.
    module = importlib.import_module(package)
    for name in module.__all__:
        obj = getattr(module, name)
        if inspect.isclass(obj):
            hints = typing.get_type_hints(obj)
            assert not [h for h in hints.values() if isinstance(h, str)], name
            if attrs.has(obj):
                attrs.resolve_types(obj)
                assert all(not isinstance(f.type, str) for f in attrs.fields(obj)), name


def test_the_package_ships_py_typed() -> None:
    for package in PACKAGES:
        module = importlib.import_module(package)
        assert module.__file__ is not None
        assert (importlib.resources.files(package) / "py.typed").is_file()


def test_public_methods_have_docstrings() -> None:
    for name in exegraph_trio.__all__:
        obj = getattr(exegraph_trio, name)
        if not inspect.isclass(obj):
            continue
        for attr, member in vars(obj).items():
            if attr.startswith("_") or (not callable(member) and not isinstance(member, property)):
                continue
            assert inspect.getdoc(member), f"{name}.{attr} has no docstring"
