"""`Step`: what a valid step is, and the errors for everything else."""

from __future__ import annotations

import contextlib
import copy
import functools
import inspect
import math
import pickle
import re
import sys
from collections.abc import AsyncIterator
from types import FrameType
from typing import Any

import attrs
import pytest

import exegraph_trio as exegraph
from exegraph_trio import _step


async def noop() -> None:
    pass


async def greet(who: str) -> str:
    return who


class AsyncCallable:
    async def __call__(self) -> None:
        pass


def test_a_step_keeps_its_fields_as_immutable_values() -> None:
    step = exegraph.Step("b", noop, depends_on=["a"], tags={"x"}, timeout=3)
    assert step.name == "b"
    assert step.action is noop
    assert step.depends_on == ("a",)
    assert step.tags == ("x",)
    assert step.timeout == 3.0
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        step.name = "c"  # type: ignore[misc]


def test_defaults_are_no_dependencies_no_tags_and_the_runs_timeout() -> None:
    step = exegraph.Step("a", noop)
    assert (step.depends_on, step.tags, step.timeout) == ((), (), None)


@pytest.mark.parametrize(
    "action",
    [
        noop,
        functools.partial(greet, "world"),
        AsyncCallable(),
        functools.partial(AsyncCallable()),
        functools.partial(functools.partial(AsyncCallable())),
    ],
    ids=["async-def", "partial", "async-call-object", "partial-of-object", "partial-of-partial"],
)
def test_async_callables_are_accepted(action: Any) -> None:
    assert exegraph.Step("a", action).action is action


def test_any_iterable_of_names_is_stored_as_a_tuple_without_repeats() -> None:
    step = exegraph.Step("c", noop, depends_on=(n for n in ["a", "b", "a"]), tags=["t", "t"])
    assert step.depends_on == ("a", "b")
    assert step.tags == ("t",)


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        (("a", "b"), ("a", "b")),
        (("a", "a"), ("a",)),
        (("a", "b", "c"), ("a", "b", "c")),
        (("a", "b", "a"), ("a", "b")),
        (("a", "a", "b"), ("a", "b")),
        (("b", "a", "a"), ("b", "a")),
        (("a", "a", "a"), ("a",)),
        (("a", "b", "c", "b"), ("a", "b", "c")),
    ],
)
def test_a_tuple_of_a_few_names_keeps_its_first_of_each(
    given: tuple[str, ...], stored: tuple[str, ...]
) -> None:
    # (two and three names take a path of their own in `_names`)
    assert exegraph.Step("z", noop, depends_on=given).depends_on == stored
    assert exegraph.Step("z", noop, tags=given).tags == stored


@pytest.mark.parametrize(
    "given",
    [("a", ""), ("", "a"), ("a", 1), (1, "a"), ("a", "b", ""), ("a", None, "b"), (2, "a", "b")],
)
def test_a_tuple_of_a_few_names_holding_a_non_name_is_refused(given: tuple[Any, ...]) -> None:
    with pytest.raises(TypeError, match="non-empty str names"):
        exegraph.Step("z", noop, depends_on=given)


class _Unhashable:
    def __hash__(self) -> int:
        raise ValueError("no hash")


class _Name(str):
    __slots__ = ()


@pytest.mark.parametrize(
    "odd",
    ["", 1, None, b"x", ["a"], _Unhashable()],
    ids=["empty", "int", "None", "bytes", "unhashable", "hash-raises"],
)
@pytest.mark.parametrize("where", [0, 3, 99])
def test_four_names_or_more_holding_a_non_name_are_refused(odd: object, where: int) -> None:
    # (four names or more are checked in C, `set` and `str.join`; any failure there falls
    # back to the plain check, which names what is wrong)
    names: list[Any] = [f"n{i}" for i in range(100)]
    names[where] = odd
    with pytest.raises(TypeError, match="non-empty str names only"):
        exegraph.Step("z", noop, depends_on=tuple(names))
    with pytest.raises(TypeError, match="non-empty str names only"):
        exegraph.Step("z", noop, tags=tuple(names))


def test_four_names_or_more_keep_their_first_of_each_and_str_subclasses() -> None:
    names = tuple(f"n{i}" for i in range(50))
    assert exegraph.Step("z", noop, depends_on=names).depends_on is names  # (no copy)
    repeated = (*names, "n7", *names[:3])
    assert exegraph.Step("z", noop, depends_on=repeated).depends_on == names
    subclassed = (_Name("a"), "b", _Name("c"), "d")
    stored = exegraph.Step("z", noop, depends_on=subclassed).depends_on
    assert stored == ("a", "b", "c", "d")
    assert [type(name) for name in stored] == [_Name, str, _Name, str]
    with pytest.raises(ValueError, match="depends on itself"):
        exegraph.Step("n9", noop, depends_on=names)


@pytest.mark.parametrize("name", ["", None, 3])
def test_a_name_must_be_a_non_empty_str(name: Any) -> None:
    with pytest.raises((TypeError, ValueError), match="name"):
        exegraph.Step(name, noop)


def test_an_empty_name_is_a_value_error_and_a_non_str_a_type_error() -> None:
    with pytest.raises(ValueError, match="non-empty"):
        exegraph.Step("", noop)
    with pytest.raises(TypeError, match="must be a str"):
        exegraph.Step(None, noop)  # type: ignore[arg-type]


def test_fields_after_the_action_given_by_position_are_refused_with_the_keywords_to_write() -> None:
    # (Python's own message named `Step.__new__` and counted `cls`: "takes 3 positional
    # arguments but 4 were given" for `Step("a", noop, ["b"])`.)
    with pytest.raises(TypeError, match=re.escape("write Step('a', action, depends_on=['b'])")):
        exegraph.Step("a", noop, ["b"])  # type: ignore[call-arg]
    with pytest.raises(TypeError, match=re.escape("depends_on=['b']) if those")) as info:
        exegraph.Step("a", noop, ["b"], ["t"])  # type: ignore[call-arg]
    assert "every other field by keyword (depends_on=, tags=, timeout=" in str(info.value)
    assert "step 'a' was given ['b'] by position after its action" in str(info.value)
    # (a bare str would be refused: the advice is a list)
    with pytest.raises(TypeError, match=re.escape("write Step('a', action, depends_on=['b'])")):
        exegraph.Step("a", noop, "b")  # type: ignore[call-arg]
    many = ["b", "t", 1, None, None, None, None, "extra"]
    for count in (1, 2, 7, 8, 9, 20):  # (past the fields too: not Python's message)
        with pytest.raises(TypeError, match="step 'a' was given 'b' by position after its"):
            exegraph.Step("a", noop, *many[:count], *["x"] * (count - len(many)))
    # A second argument by position binds `depends_on`: given by keyword too, it is
    # refused by Python ("got multiple values for argument 'depends_on'").
    with pytest.raises(TypeError, match="depends_on"):
        exegraph.Step("a", noop, ["b"], ["t"], depends_on=["c"])  # type: ignore[call-arg, misc]
    # None of the fields is bound by position, whatever is given there:
    given: Any
    for given in (None, (), 0, noop):
        with pytest.raises(TypeError, match="by position after its action"):
            exegraph.Step("a", noop, given)  # type: ignore[call-arg]
    # (what `inspect`, `help` and editors show: the fields after the action are keywords)
    parameters = inspect.signature(exegraph.Step).parameters
    assert list(parameters) == [
        "name",
        "action",
        "depends_on",
        "tags",
        "timeout",
        "inputs",
        "retry",
        "trigger_rule",
        "pools",
    ]
    assert [p.kind for p in parameters.values()][1:3] == [
        inspect.Parameter.POSITIONAL_OR_KEYWORD,
        inspect.Parameter.KEYWORD_ONLY,
    ]
    assert all(p.kind is p.KEYWORD_ONLY for p in list(parameters.values())[2:])
    # Every field can still be given by keyword, the name and the action too.
    step = exegraph.Step(name="a", action=noop, depends_on=["b"], tags=["t"], timeout=1)
    assert (step.depends_on, step.tags, step.timeout) == (("b",), ("t",), 1.0)


def test_a_sync_function_is_refused_with_advice_on_blocking_code() -> None:
    def blocking() -> None:
        pass

    with pytest.raises(TypeError, match=r"trio\.to_thread\.run_sync") as info:
        exegraph.Step("a", blocking)  # type: ignore[arg-type]
    assert "'a'" in str(info.value)


def test_a_lambda_returning_a_coroutine_is_refused_with_advice_on_partial() -> None:
    with pytest.raises(TypeError, match=r"functools\.partial"):
        exegraph.Step("a", lambda: greet("x"))


def test_the_code_of_the_last_action_checked_is_checked_again_in_another_function() -> None:
    # `Step` keeps the code of the last coroutine function it found to take no parameter,
    # to skip reading it again for the next step: only that code object is let through.
    def closure(i: int) -> Any:
        async def action() -> int:
            return i

        return action

    first, second = closure(1), closure(2)
    assert first.__code__ is second.__code__
    assert exegraph.Step("a", first).action is first
    assert exegraph.Step("b", second).action is second  # (the same code: let through)
    assert _step._bare_code is first.__code__

    def blocking() -> None:
        pass

    with pytest.raises(TypeError, match=r"plain \(sync\) callable"):
        exegraph.Step("c", blocking)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"needs 'who'"):
        exegraph.Step("d", greet)

    # A function whose code is swapped for another's is read anew, whatever it was.
    async def swapped() -> None:
        pass

    exegraph.Step("e", swapped)
    swapped.__code__ = greet.__code__
    with pytest.raises(TypeError, match=r"needs 'who'"):
        exegraph.Step("f", swapped)
    swapped.__code__ = blocking.__code__
    with pytest.raises(TypeError, match=r"plain \(sync\) callable"):
        exegraph.Step("g", swapped)
    assert exegraph.Step("h", first, inputs=None).action is first


async def _deploy(image: str, *, region: str) -> str:
    return f"{image}@{region}"


class _Deployer:
    async def deploy(self, image: str) -> str:
        return image

    async def __call__(self, image: str) -> str:
        return image


async def _needs_one(image: str) -> AsyncIterator[str]:
    yield image


@pytest.mark.parametrize(
    ("action", "missing"),
    [
        (_deploy, "'image', 'region'"),
        (functools.partial(_deploy, "app:1"), "'region'"),
        (functools.partial(_deploy, region="eu"), "'image'"),
        (_Deployer().deploy, "'image'"),
        (_Deployer(), "'image'"),
        (_needs_one, "'image'"),  # (a resource step's action too)
    ],
)
def test_an_action_needing_arguments_is_refused_without_inputs(action: Any, missing: str) -> None:
    # Spec, part 1: the action is "an async callable taking no arguments"; a step without
    # inputs calls it with none, and a run would fail only when it reached the step.
    with pytest.raises(TypeError, match="called with no arguments") as info:
        exegraph.Step("deploy", action)
    assert "'deploy'" in str(info.value)
    assert f"it needs {missing}" in str(info.value)
    assert "inputs=" in str(info.value)
    builder = exegraph.GraphBuilder()
    with pytest.raises(TypeError, match="called with no arguments"):
        builder.step(name="deploy")(action)


@pytest.mark.parametrize(
    "action",
    [
        functools.partial(_deploy, "app:1", region="eu"),
        functools.partial(functools.partial(_deploy, "app:1"), region="eu"),
        functools.partial(_Deployer().deploy, "app:1"),  # (a bound method: `self` given)
        functools.partial(_Deployer(), image="app:1"),
    ],
)
def test_an_action_whose_arguments_are_all_bound_is_accepted(action: Any) -> None:
    assert exegraph.Step("deploy", action).action is action


@pytest.mark.parametrize("inputs", [None, {"region": "r"}])
def test_a_partial_giving_too_many_positional_arguments_is_refused(inputs: Any) -> None:
    # The run would fail with "takes 2 positional arguments but 3 were given"; with
    # inputs, `inspect.signature` cannot read such a partial, and it passed unchecked.
    extra: tuple[Any, ...] = ("a", "b", "c")  # (mypy refuses them written out, as it should)
    with pytest.raises(TypeError) as info:
        exegraph.Step("deploy", functools.partial(_deploy, *extra), inputs=inputs)
    assert str(info.value) == (
        "the action of step 'deploy' is given 3 positional arguments by functools.partial, "
        "but _deploy takes 1: drop the extra ones"
    )
    with pytest.raises(TypeError, match=r"is given 2 positional arguments .* takes 1"):
        exegraph.Step("d", functools.partial(_Deployer().deploy, *extra[:2]), inputs=inputs)
    exegraph.Step("ok", functools.partial(_deploy, "a", region="r"))  # (still accepted)


def test_defaults_varargs_and_unreadable_signatures_are_accepted() -> None:
    async def defaults(image: str = "app:1", *, region: str = "eu") -> None:
        pass

    async def forwarding(*args: object, **kwargs: object) -> None:
        pass

    @contextlib.asynccontextmanager
    async def resource(name: str) -> AsyncIterator[str]:  # (its wrapper takes *args: run time)
        yield name

    for action in (defaults, forwarding, resource):
        exegraph.Step("s", action)
    # With inputs, the signature is checked against them instead (issue 10).
    assert exegraph.Step("d", _deploy, inputs={"image": "b", "region": "c"}).inputs == {
        "image": "b",
        "region": "c",
    }


def _signatures() -> list[str]:
    """Parameter lists of every shape the quick reads of an action meet."""
    positional = ["", "a", "a, b", "a, b=1", "a=1, b=2", "a, /", "a, /, b=1", "a, b, /, c"]
    rest = ["", "*args", "*, k", "*, k=1", "*args, k=1", "**kw", "*, k, **kw"]
    return [", ".join(part for part in (p, r) if part) for p in positional for r in rest]


def _made(kind: str, parameters: str) -> Any:
    body = {"async": "pass", "gen": "yield", "sync": "pass"}[kind]
    namespace: dict[str, Any] = {}
    exec(  # (functions of every signature, made from their source)
        f"{'def' if kind == 'sync' else 'async def'} f({parameters}):\n    {body}\n", namespace
    )
    return namespace["f"]


def test_the_quick_reads_of_functions_and_partials_agree_with_inspect() -> None:
    # `Step` reads a function and a `functools.partial` of one from their code objects
    # before it asks `inspect` (`_kind_read`, `_missing_beneath`): both ways must agree.
    from exegraph_trio._step import (  # (internals, for this test alone)
        _kind_of,
        _kind_read,
        _missing_arguments,
        _missing_beneath,
    )

    def either(read: Any, action: Any) -> object:
        try:
            return read(action)
        except TypeError as exc:  # (a sync function, or too many arguments: both ways)
            return str(exc)

    actions = []
    for kind in ("async", "gen", "sync"):
        for parameters in _signatures():
            f = _made(kind, parameters)
            actions += [f, functools.partial(f), functools.partial(f, 0)]
            actions += [functools.partial(f, 0, 1), functools.partial(f, 0, 1, 2)]
            actions += [functools.partial(f, b=0), functools.partial(f, 0, k=0)]
            actions.append(functools.partial(functools.partial(f, 0), 1))
    assert len(actions) > 1000
    for action in actions:
        assert either(_missing_arguments, action) == either(_missing_beneath, action), action
        quick = either(functools.partial(_kind_of, "s"), action)
        assert quick == either(functools.partial(_kind_read, "s"), action), action


@pytest.mark.parametrize("action", [None, 42, "noop"])
def test_a_non_callable_action_is_refused(action: Any) -> None:
    with pytest.raises(TypeError, match="async callable"):
        exegraph.Step("a", action)


def test_a_bare_str_for_depends_on_is_refused_because_it_would_be_read_as_characters() -> None:
    with pytest.raises(TypeError, match=r"depends_on=\['db'\]"):
        exegraph.Step("a", noop, depends_on="db")


def test_a_bare_str_for_tags_is_refused() -> None:
    with pytest.raises(TypeError, match="tags"):
        exegraph.Step("a", noop, tags="infra")


def test_dependency_names_must_be_non_empty_strs() -> None:
    with pytest.raises(TypeError, match="non-empty str"):
        exegraph.Step("a", noop, depends_on=["b", 3])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="iterable"):
        exegraph.Step("a", noop, depends_on=5)  # type: ignore[arg-type]


def test_a_step_may_not_depend_on_itself() -> None:
    with pytest.raises(ValueError, match="depends on itself"):
        exegraph.Step("a", noop, depends_on=["a"])


@pytest.mark.parametrize("timeout", [-1, math.nan])
def test_a_negative_or_nan_timeout_is_refused(timeout: float) -> None:
    with pytest.raises(ValueError, match="timeout"):
        exegraph.Step("a", noop, timeout=timeout)


@pytest.mark.parametrize("timeout", ["5", True])
def test_a_non_numeric_timeout_is_refused(timeout: Any) -> None:
    with pytest.raises(TypeError, match="timeout"):
        exegraph.Step("a", noop, timeout=timeout)


def test_steps_are_values_that_compare_and_evolve() -> None:
    a = exegraph.Step("a", noop, tags=["x"])
    assert a == exegraph.Step("a", noop, tags=["x"])
    assert hash(a) == hash(exegraph.Step("a", noop, tags=["x"]))
    b = attrs.evolve(a, name="b", depends_on=["a"])
    assert (b.name, b.depends_on, b.action) == ("b", ("a",), noop)
    with pytest.raises(ValueError, match="itself"):
        attrs.evolve(a, depends_on=["a"])


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"depends_on": ("a",)},
        {"depends_on": ["a", "b", "a"], "tags": ["x"], "timeout": 2},
        {"inputs": {"who": "a"}, "retry": exegraph.Retry(), "pools": ["db"]},
        {"trigger_rule": exegraph.TriggerRule.ALL_DONE, "pools": {"db": 2}, "timeout": 0},
    ],
)
def test_a_step_is_made_as_attrs_would_make_it_field_by_field(kwargs: dict[str, Any]) -> None:
    # `Step.__new__` stores its fields while the instance is a writable `_Writable`.
    step = exegraph.Step("s", greet if "inputs" in kwargs else noop, **kwargs)
    assert type(step) is exegraph.Step
    by_hand = object.__new__(exegraph.Step)
    for field in attrs.fields(exegraph.Step):
        object.__setattr__(by_hand, field.name, getattr(step, field.name))
    assert step == by_hand
    assert hash(step) == hash(by_hand)
    assert [getattr(step, f.name) for f in attrs.fields(exegraph.Step)] == [
        getattr(by_hand, f.name) for f in attrs.fields(exegraph.Step)
    ]
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        step.name = "t"  # type: ignore[misc]
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        del step.tags


def test_a_subclass_of_step_keeps_its_class_and_its_fields() -> None:
    class Named(exegraph.Step):  # type: ignore[misc]  # `@final`, but Python allows it
        __slots__ = ()

    step = Named("s", noop, depends_on=["a"], tags=["x"], timeout=1)
    assert type(step) is Named
    assert (step.name, step.depends_on, step.tags, step.timeout) == ("s", ("a",), ("x",), 1.0)
    assert not step.is_resource
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        step.name = "t"  # type: ignore[misc]
    copied = copy.copy(step)  # (as Python copies any object: its fields as its state)
    assert type(copied) is Named
    assert copied == step


def test_a_subclass_with_fields_of_its_own_is_made_by_its_own_init() -> None:
    # `Step.__new__` takes `Step`'s arguments only: a subclass is made by `__new__` then
    # its own `__init__` (attrs' generated one here, which takes `note` too).
    @attrs.frozen
    class Noted(exegraph.Step):  # type: ignore[misc]  # `@final`, but Python allows it
        note: str = ""

    step = Noted("s", noop, depends_on=("a",), note="why")
    assert type(step) is Noted
    assert (step.name, step.depends_on, step.note) == ("s", ("a",), "why")
    assert copy.copy(step) == step
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        step.note = "t"  # type: ignore[misc]


@pytest.mark.parametrize("method", ["__init__", "__new__"])
def test_a_subclass_defining_init_or_new_is_refused_where_it_is_defined(method: str) -> None:
    # `Step` makes its fields in `__new__` and has no `__init__` for `super()` to call:
    # such a subclass could only fail later, obscurely; it is refused with what to do.
    def init(self: exegraph.Step, name: str, action: Any, **kwargs: Any) -> None:
        super(type(self), self).__init__(name, action, **kwargs)  # type: ignore[call-arg]

    def new(cls: type[exegraph.Step], *args: Any, **kwargs: Any) -> exegraph.Step:
        return super(cls, cls).__new__(cls, *args, **kwargs)

    body = {"__init__": init} if method == "__init__" else {"__new__": new}
    with pytest.raises(TypeError, match=f"Tagged defines {method}, which a subclass of Step"):
        type("Tagged", (exegraph.Step,), {"__slots__": (), **body})


def test_a_subclass_without_an_init_is_checked_as_a_step_is() -> None:
    class Named(exegraph.Step):  # type: ignore[misc]  # `@final`, but Python allows it
        __slots__ = ()

    with pytest.raises(ValueError, match="depends on itself"):
        Named("s", noop, depends_on=["s"])
    with pytest.raises(TypeError, match="depends_on must be an iterable of names"):
        Named("s", noop, depends_on="a")


def test_an_exception_while_the_fields_are_stored_leaves_a_frozen_step() -> None:
    # `Step.__new__` makes the instance a writable `_Writable` for its stores; whatever
    # lands in that window (here raised by a trace function at its first line, as a
    # signal handler could), the instance is a frozen `Step` again afterwards.
    init = exegraph.Step.__new__.__code__
    seen: list[object] = []

    def tracer(frame: FrameType, event: str, arg: object) -> Any:
        if frame.f_code is not init:
            return None

        def local(frame: FrameType, event: str, arg: object) -> Any:
            me = frame.f_locals.get("self")
            if event == "line" and me is not None and type(me) is not exegraph.Step and not seen:
                seen.append(me)
                raise KeyboardInterrupt
            return local

        return local

    sys.settrace(tracer)
    try:
        with pytest.raises(KeyboardInterrupt):
            exegraph.Step("a", noop)
    finally:
        sys.settrace(None)
    assert seen, "the trace function never saw the window"
    step = seen[0]
    assert type(step) is exegraph.Step
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        step.name = "b"  # type: ignore[misc]


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"depends_on": ["a", "b"], "tags": ["x", "y"], "timeout": 2.5},
        {"inputs": {"who": "a"}, "pools": {"db": 2}, "retry": exegraph.Retry(attempts=2)},
        {"trigger_rule": exegraph.TriggerRule.ONE_FAILED, "pools": ["net"]},
    ],
)
def test_a_step_pickles_and_deep_copies_as_an_equal_step(kwargs: dict[str, Any]) -> None:
    step = exegraph.Step("s", greet if "inputs" in kwargs else noop, **kwargs)
    for again in (pickle.loads(pickle.dumps(step)), copy.deepcopy(step), copy.copy(step)):
        assert type(again) is exegraph.Step
        assert again == step
        assert [getattr(again, f.name) for f in attrs.fields(exegraph.Step)] == [
            getattr(step, f.name) for f in attrs.fields(exegraph.Step)
        ]


class Labelled(exegraph.Step):  # type: ignore[misc]  # `@final`, but Python allows it
    __slots__ = ()


@attrs.frozen
class Owned(exegraph.Step):  # type: ignore[misc]  # `@final`, but Python allows it
    owner: str = ""


@attrs.frozen(slots=False)
class OwnedInDict(exegraph.Step):  # type: ignore[misc]  # `@final`, but Python allows it
    owner: str = ""


class Noted(exegraph.Step):  # type: ignore[misc]  # no __slots__: a __dict__ of its own
    pass


class Named(exegraph.Step):  # type: ignore[misc]  # its own way to pickle
    __slots__ = ()

    def __getstate__(self) -> dict[str, Any]:
        return {"name": self.name}

    def __setstate__(self, state: dict[str, Any]) -> None:
        object.__setattr__(self, "name", state["name"])


@pytest.mark.parametrize("kind", ["plain", "attrs", "attrs without slots"])
def test_a_subclass_of_step_pickles_and_deep_copies_with_its_read_only_mappings(
    kind: str,
) -> None:
    # Its `inputs` and `pools` are read-only views, which cannot be pickled themselves;
    # its own fields go along, in slots or in a `__dict__`.
    kwargs: dict[str, Any] = {"inputs": {"who": "a"}, "pools": {"db": 2}, "tags": ["x"]}
    subclass: Any = {"plain": Labelled, "attrs": Owned, "attrs without slots": OwnedInDict}[kind]
    own = {} if kind == "plain" else {"owner": "me"}
    step = subclass("s", greet, **kwargs, **own)
    bare = subclass("t", noop)
    for original in (step, bare):
        for again in (pickle.loads(pickle.dumps(original)), copy.deepcopy(original)):
            assert type(again) is type(original)
            assert again == original
            assert [getattr(again, f.name) for f in attrs.fields(type(original))] == [
                getattr(original, f.name) for f in attrs.fields(type(original))
            ]
            with pytest.raises(TypeError):
                again.inputs["other"] = "b"
            with pytest.raises(TypeError):
                again.pools["net"] = 1
    assert pickle.loads(pickle.dumps(bare)).inputs is bare.inputs  # (the shared empty view)


def test_a_subclass_keeps_what_its_dict_holds_and_its_own_way_to_pickle() -> None:
    noted = Noted("n", noop)
    noted.__dict__["note"] = "kept"
    again = pickle.loads(pickle.dumps(noted))
    assert (type(again), again, again.note) == (Noted, noted, "kept")
    named = pickle.loads(pickle.dumps(Named("m", noop)))  # (its __setstate__ ran)
    assert (type(named), named.name) == (Named, "m")


async def test_a_pickled_graph_runs_as_the_original(autojump_clock: object) -> None:
    graph = exegraph.Graph(
        [
            exegraph.Step("a", greet_a),
            exegraph.Step("b", greet, inputs={"who": "a"}, tags=["t"]),
        ]
    )
    again = pickle.loads(pickle.dumps(graph))
    assert again == graph
    assert again.priority("a") == 1
    result = await exegraph.run_with_result(copy.deepcopy(again))
    assert result["b"].value == "a"


async def greet_a() -> str:
    return "a"
