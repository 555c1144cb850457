"""`Step`: one named async action, the names it depends on, and how it recovers."""

from __future__ import annotations

import functools
import inspect
import keyword
import math
import types
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from contextlib import AbstractAsyncContextManager
from itertools import repeat
from operator import is_ as _is
from typing import TYPE_CHECKING, Any, Final, TypeAlias, final

import attrs

from ._errors import close_names
from ._lifecycle import Retry, TriggerRule, to_float

__all__ = ["Action", "Step", "is_async_callable"]

Action: TypeAlias = Callable[
    ..., Awaitable[object] | AsyncIterator[object] | AbstractAsyncContextManager[object]
]
"""What a step runs: an async callable (called with no arguments, or with the keyword
arguments its step's `inputs` name), an async generator function, or a callable returning
an async context manager (a resource step)."""

_CO_COROUTINE: Final = inspect.CO_COROUTINE
_new: Final = object.__new__
_NOT_GIVEN: Final = object()
"""`Step.__new__`'s `_by_position` when nothing is given by position after the action."""
_FUNCTION: Final = types.FunctionType
_bare_code: types.CodeType | None = None
"""The code of the last plain function `Step(...)` found to be a coroutine function that
takes no parameter (see `Step.__new__`): a step whose action runs it needs no other check."""

COROUTINE: Final = 0
"""`Step._kind` of an ordinary step: its action returns an awaitable."""
GENERATOR: Final = 1
"""`Step._kind` of a resource step whose action is an async generator function."""
CONTEXT: Final = 2
"""`Step._kind` of a resource step whose action returns an async context manager."""


def is_async_callable(action: object) -> bool:
    """Whether calling `action()` is known to return a coroutine.

    True for `async def` functions and methods, objects whose class defines
    `async def __call__`, and `functools.partial` objects wrapping either.
    """
    if type(action) is types.FunctionType and action.__code__.co_flags & inspect.CO_COROUTINE:
        return True  # the common case, without inspect's unwrapping
    if inspect.iscoroutinefunction(action):
        return True
    inner = _unwrap_partial(action)  # (a partial of such an object too)
    call = getattr(type(inner), "__call__", None)  # noqa: B004 - we want the class attribute
    return not inspect.isroutine(inner) and inspect.iscoroutinefunction(call)


def _positional_error(name: object, value: object) -> TypeError:
    """What `Step(name, action, value, ...)` is told: the fields after the action are keywords."""
    fields = "depends_on=, tags=, timeout=, inputs=, retry=, trigger_rule=, pools="
    names = [value] if isinstance(value, str) else value  # (a bare `str` is refused)
    return TypeError(
        f"Step takes its name and its action by position, and every other field by keyword "
        f"({fields}); step {name!r} was given {value!r} by position after its action: write "
        f"Step({name!r}, action, depends_on={names!r}) if those are its dependencies, and "
        "give any field after them by keyword too"
    )


def _check_name(value: object) -> None:
    if not isinstance(value, str):
        raise TypeError(f"Step name must be a str, not {type(value).__name__}: {value!r}")
    if not value:
        raise ValueError("Step name must be a non-empty string")


def _unwrap_partial(action: object) -> object:
    while isinstance(action, functools.partial):
        action = action.func
    return action


def _kind_of(name: str, value: object) -> int:
    """What kind of action `value` is (`COROUTINE`, `GENERATOR`, `CONTEXT`), or `TypeError`."""
    if (
        type(value) is functools.partial  # (as the docs advise for arguments: read directly)
        and type(inner := value.func) is types.FunctionType
        and inner.__code__.co_flags & _CO_COROUTINE
    ):
        return COROUTINE  # (what `_kind_read` says, without `inspect`'s unwrapping)
    return _kind_read(name, value)


def _kind_read(name: str, value: object) -> int:
    """`_kind_of` for any action, read with `inspect`."""
    if value is None or not callable(value):
        raise TypeError(
            f"action of step {name!r} must be an async callable taking no arguments, "
            f"not {type(value).__name__}: {value!r}"
        )
    if is_async_callable(value):
        return COROUTINE
    if inspect.isasyncgenfunction(value):
        return GENERATOR
    inner = _unwrap_partial(value)
    call = getattr(type(inner), "__call__", None)  # noqa: B004 - the class attribute
    if not inspect.isroutine(inner) and inspect.isasyncgenfunction(call):
        return GENERATOR
    # An @asynccontextmanager function (it wraps an async generator function), or a class
    # whose instances are async context managers.
    if inspect.isasyncgenfunction(getattr(inner, "__wrapped__", None)) or (
        isinstance(inner, type) and hasattr(inner, "__aenter__") and hasattr(inner, "__aexit__")
    ):
        return CONTEXT
    raise TypeError(
        f"action of step {name!r} is a plain (sync) callable {value!r}; "
        "a step's action must be async: write `async def`, pass "
        "`functools.partial(async_fn, *args)` for arguments, and run blocking code "
        "inside it with `await trio.to_thread.run_sync(blocking_fn)` "
        "(or `exegraph.in_thread(blocking_fn)`); a resource step's action is an async "
        "generator function or an `@asynccontextmanager` function (itself, not a lambda "
        "or function calling it: `functools.partial(acm_fn, *args)` for arguments)"
    )


def _names(value: Any, field: str) -> tuple[str, ...]:
    """Any iterable of names as a tuple without repeats; a bare `str` is refused."""
    if type(value) is tuple:  # the common case: a tuple of distinct names
        size = len(value)
        if size < 2 and (not value or (type(value[0]) is str and value[0])):
            return value  # (one name or none: no repeats to look for)
        # Two or three names (most steps of a real graph) are compared pairwise: a third
        # of the cost of the loop and the `set` below (3.9k → 2.4k instructions).
        if size == 2:
            a, b = value
            if type(a) is str and type(b) is str and a and b and a != b:
                return value
        elif size == 3:
            a, b, c = value
            str_names = type(a) is str and type(b) is str and type(c) is str and a and b and c
            if str_names and a != b != c != a:  # (three tests: a != b, b != c, c != a)
                return value
        elif size > 3 and all(map(_is, map(type, value), repeat(str))):
            # Four or more, each exactly a `str` (so that no hook of the items runs): their
            # repeats and empty names found in C, not by a loop of Python per name.
            distinct = set(value)
            if len(distinct) == size and "" not in distinct:
                return value
    if isinstance(value, str):
        raise TypeError(
            f"{field} must be an iterable of names, not the str {value!r} "
            f"(it would be read as its characters); write {field}=[{value!r}]"
        )
    if value is None:
        return ()
    try:
        items = tuple(value)
    except TypeError:
        raise TypeError(
            f"{field} must be an iterable of str, not {type(value).__name__}: {value!r}"
        ) from None
    bad = [item for item in items if not isinstance(item, str) or not item]
    if bad:
        raise TypeError(f"{field} must hold non-empty str names only, got {_repr_list(bad)}")
    return tuple(dict.fromkeys(items))


def _repr_list(items: Iterable[object]) -> str:
    return ", ".join(repr(item) for item in items)


def _convert_timeout(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(
            f"timeout must be a number of seconds or None, not {type(value).__name__}: {value!r}"
        )
    timeout = to_float(value)
    if math.isnan(timeout) or timeout < 0:
        raise ValueError(f"timeout must be >= 0 seconds (0 means none), got {value!r}")
    return timeout


def _convert_inputs(name: str, value: Any) -> Mapping[str, str]:
    if isinstance(value, str) or not isinstance(value, Mapping):
        raise TypeError(
            f"inputs of step {name!r} must be a mapping of keyword argument -> step name, "
            f"like inputs={{'image': 'build'}}, not {type(value).__name__}: {value!r}"
        )
    items = dict(value)
    if not items:
        return _NO_INPUTS
    not_str = [k for k in items if not isinstance(k, str)]
    if not_str:
        raise TypeError(
            f"inputs keys of step {name!r} are the keyword arguments its action is called "
            f"with: each must be a str, got {_repr_list(not_str)}"
        )
    bad_keys = [k for k in items if not k.isidentifier() or keyword.iskeyword(k)]
    if bad_keys:
        raise ValueError(
            f"inputs keys of step {name!r} are the keyword arguments its action is called "
            f"with: each must be a Python identifier and not a keyword (no parameter can "
            f"be named 'class'), got {_repr_list(bad_keys)}"
        )
    bad = [v for v in items.values() if not isinstance(v, str) or not v]
    if bad:
        raise TypeError(
            f"inputs values of step {name!r} must be non-empty step names (str), got "
            f"{_repr_list(bad)}"
        )
    return types.MappingProxyType(items)


_ALL_SUCCESS: Final = TriggerRule.ALL_SUCCESS
_NO_INPUTS: Final[Mapping[str, str]] = types.MappingProxyType({})
_NO_POOLS: Final[Mapping[str, int]] = types.MappingProxyType({})
_EMPTY: Final[Mapping[str, Mapping[str, Any]]] = {"inputs": _NO_INPUTS, "pools": _NO_POOLS}


def _dict_repr(mapping: Mapping[str, object]) -> str:
    return repr(dict(mapping))


def _convert_pools(name: str, value: Any) -> Mapping[str, int]:
    if isinstance(value, str):
        raise TypeError(
            f"pools of step {name!r} must be a list of pool names or a mapping of pool name "
            f"-> slots, not the str {value!r} (it would be read as its characters); write "
            f"pools=[{value!r}]"
        )
    if isinstance(value, Mapping):
        items = dict(value)
    else:
        try:
            names = list(value)
        except TypeError:
            raise TypeError(
                f"pools of step {name!r} must be a list of pool names or a mapping of pool "
                f"name -> slots, not {type(value).__name__}: {value!r}"
            ) from None
        repeated = sorted({n for n in names if isinstance(n, str) and names.count(n) > 1})
        if repeated:
            raise ValueError(
                f"pools of step {name!r} names {_repr_list(repeated)} more than once; to take "
                f"several slots of a pool write pools={{{repeated[0]!r}: 2}}"
            )
        items = dict.fromkeys(names, 1)
    bad_names = [k for k in items if not isinstance(k, str) or not k]
    if bad_names:
        raise TypeError(
            f"pools of step {name!r} must be named by non-empty str, got {_repr_list(bad_names)}"
        )
    bad = {k: v for k, v in items.items() if isinstance(v, bool) or not isinstance(v, int)}
    if bad:
        raise TypeError(
            f"pools of step {name!r} must map each pool to an int number of slots, got "
            + ", ".join(f"{k!r}: {v!r}" for k, v in bad.items())
        )
    few = {k: v for k, v in items.items() if v < 1}
    if few:
        raise ValueError(
            f"pools of step {name!r} must take at least 1 slot of each pool, got "
            + ", ".join(f"{k!r}: {v!r}" for k, v in few.items())
        )
    return types.MappingProxyType(items) if items else _NO_POOLS


def _lifecycle_parts(  # noqa: PLR0917 - `Step.__new__`'s arguments, in order
    name: str,
    kind: int,
    inputs: Any,
    retry: object,
    trigger_rule: object,
    pools: Any,
) -> tuple[Mapping[str, str], Mapping[str, int], bool]:
    """A step's checked `inputs` and `pools`, and whether it uses any of part 2."""
    takes = _NO_INPUTS if inputs is None else _convert_inputs(name, inputs)
    if retry is not None and type(retry) is not Retry:
        _check_retry(name, retry)
    if type(trigger_rule) is not TriggerRule:
        _check_rule(name, trigger_rule)
    slots = _NO_POOLS if pools is None else _convert_pools(name, pools)
    lifecycle = (
        takes is not _NO_INPUTS
        or retry is not None
        or trigger_rule is not _ALL_SUCCESS
        or kind != COROUTINE
        or slots is not _NO_POOLS
    )
    return takes, slots, lifecycle


def _check_retry(name: str, value: object) -> None:
    if value is not None and not isinstance(value, Retry):
        raise TypeError(
            f"retry of step {name!r} must be an exegraph.Retry or None, like "
            f"retry=Retry(attempts=3), not {type(value).__name__}: {value!r}"
        )


def _check_rule(name: str, value: object) -> None:
    if not isinstance(value, TriggerRule):
        raise TypeError(
            f"trigger_rule of step {name!r} must be an exegraph.TriggerRule "
            "(ALL_SUCCESS, ALL_DONE or ONE_FAILED), not "
            f"{type(value).__name__}: {value!r}"
        )


def _check_called_bare(name: str, action: object) -> None:
    """Refuse an action that a call with no arguments would leave without one.

    A step without `inputs` calls its action with none (part 1 of the spec: "an async
    callable taking no arguments"); one that needs some would fail only when the run
    reaches it. Read from code objects, not `inspect.signature` (30 µs for a
    `functools.partial`, and graphs of 10⁵ steps are made in loops): plain functions,
    partials of them, bound methods and objects whose class defines `__call__`; any
    other callable is found out at run time.
    """
    try:
        missing = _missing_arguments(action)
    except _SurplusError as exc:
        raise exc.for_step(name, action) from None
    if missing:
        raise TypeError(
            f"the action of step {name!r} is called with no arguments, but it needs "
            f"{_repr_list(missing)}: bind {'them' if len(missing) > 1 else 'it'} with "
            f"`functools.partial({_callable_name(action)}, {missing[0]}=...)`, give "
            f"{'them' if len(missing) > 1 else 'it'} a default, or pass another step's value "
            f"with `inputs={{{missing[0]!r}: 'step-name'}}`"
        )


def _missing_arguments(action: object) -> list[str]:
    """The parameters a call `action()` leaves without a value (see `_check_called_bare`).

    `[]` when they cannot be read from code objects: a builtin, a class, a wrapper taking
    `*args, **kwargs` (what it forwards is not known: `__wrapped__` is not followed, as a
    decorator may supply some of them itself).
    """
    # The common cases first, with nothing missing: a function whose positional parameters
    # all have defaults (`async def go(region=region)`, made in a loop), and a partial of
    # one giving positional arguments (`functools.partial(deploy, region)`, as the docs
    # advise). Without `_beneath`'s `inspect` tests such a `Step` is made 3-4 times faster
    # (3.5 → 1.0 µs and 2.9 → 1.2 µs; a step of a plain `async def` takes 0.7 µs).
    if type(action) is types.FunctionType:
        code = action.__code__
        if not code.co_kwonlyargcount and code.co_argcount <= len(action.__defaults__ or ()):
            return []
    elif type(action) is functools.partial and not action.keywords:
        inner = action.func
        if type(inner) is types.FunctionType:
            code = inner.__code__
            given = len(action.args)
            filled = given + len(inner.__defaults__ or ())
            if not code.co_kwonlyargcount and given <= code.co_argcount <= filled:
                return []
    return _missing_beneath(action)


def _missing_beneath(action: object) -> list[str]:
    """`_missing_arguments` for any action, read beneath partials, methods and objects."""
    function, given, named = _beneath(action)
    if type(function) is not types.FunctionType:
        signature = getattr(function, "__signature__", None)
        if isinstance(signature, inspect.Signature):  # (`in_thread(fn)` gives `fn`'s, less
            return _missing_in(signature, given, named)  # what it binds)
        return []
    code = function.__code__
    count = code.co_argcount
    if given > count and not code.co_flags & inspect.CO_VARARGS:
        bound_self = given - _partial_arguments(action)  # (a method's `self`: 1)
        raise _SurplusError(given - bound_self, count - bound_self)
    defaults = function.__defaults__ or ()
    positional = code.co_varnames[:count]
    # (a keyword binds a parameter that is not positional-only, by its name)
    missing = [
        parameter
        for place, parameter in enumerate(positional[: count - len(defaults)])
        if place >= given and (parameter not in named or place < code.co_posonlyargcount)
    ]
    keyword_only = code.co_varnames[count : count + code.co_kwonlyargcount]
    filled = function.__kwdefaults__ or {}
    missing += [p for p in keyword_only if p not in filled and p not in named]
    return missing


class _SurplusError(TypeError):
    """`functools.partial`s give an action's function more positional arguments than it takes."""

    def __init__(self, given: int, takes: int) -> None:
        super().__init__(f"given {given} positional arguments, takes {takes}")
        self.given = given
        self.takes = takes

    def for_step(self, name: str, action: object) -> TypeError:
        """The error `Step` raises, naming the step and the function."""
        return TypeError(
            f"the action of step {name!r} is given {self.given} positional "
            f"argument{'s' if self.given != 1 else ''} by functools.partial, but "
            f"{_callable_name(action)} takes {self.takes}: drop the extra ones"
        )


def _partial_arguments(action: object) -> int:
    """How many positional arguments the `functools.partial`s around `action` give."""
    count = 0
    while isinstance(action, functools.partial):
        count += len(action.args)
        action = action.func
    return count


def _missing_in(signature: inspect.Signature, given: int, named: set[str]) -> list[str]:
    """The parameters of `signature` that a call leaves without a value.

    That is, those without a default that neither `given` leading positional arguments
    nor the keywords `named` fill.
    """
    missing = []
    place = 0
    for parameter in signature.parameters.values():
        kind = parameter.kind
        if kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            continue
        positional = kind in (parameter.POSITIONAL_ONLY, parameter.POSITIONAL_OR_KEYWORD)
        if positional:
            place += 1
            if place <= given:
                continue
        by_name = parameter.name in named and kind != parameter.POSITIONAL_ONLY
        if parameter.default is parameter.empty and not by_name:
            missing.append(parameter.name)
    return missing


def _beneath(action: object) -> tuple[object, int, set[str]]:
    """What calling `action` calls, and what it is already given.

    Beneath `functools.partial`s, a bound method or a callable object (its class's
    `__call__`), the function called (else `action` itself: a builtin, a class, an object
    that gives its own `__signature__`, as `in_thread(fn)` does), how many of its leading
    positional parameters are given (a partial's arguments, `self`), and the keywords a
    partial gives.
    """
    given = 0
    named: set[str] = set()
    while isinstance(action, functools.partial):  # (a partial of a partial: inner ones first)
        given += len(action.args)
        named.update(action.keywords)
        action = action.func
    if inspect.ismethod(action):
        return action.__func__, given + 1, named
    if (
        not inspect.isroutine(action)
        and not isinstance(action, type)
        and getattr(action, "__signature__", None) is None
    ):
        call = getattr(type(action), "__call__", None)  # noqa: B004 - the class attribute
        return call, given + 1, named
    return action, given, named


def _check_signature(step: Step) -> None:
    """Refuse inputs the action cannot take, when its signature can be read."""
    try:
        signature = inspect.signature(step.action)
    except (TypeError, ValueError):  # a builtin or a C callable: find out at run time
        try:  # (or a partial giving too many arguments, which inspect cannot read)
            _missing_beneath(step.action)
        except _SurplusError as exc:
            raise exc.for_step(step.name, step.action) from None
        return
    try:
        signature.bind(**dict.fromkeys(step.inputs))
    except TypeError as exc:
        # An action that gives its own signature (`in_thread(fn, ...)`: fn's, less what is
        # bound) says what is wrong itself; the advice to write an `async def` is not for it.
        misspelled = _misspelled_inputs(step, signature)
        advice = (
            f"{'; or' if misspelled else ';'} give it parameters with those names, like "
            f"`async def {_callable_name(step.action)}({', '.join(step.inputs)}): ...`"
            if type(signature) is inspect.Signature
            else ""
        )
        advice = misspelled + advice
        raise TypeError(
            f"the action of step {step.name!r} cannot be called with the keyword arguments "
            f"its inputs name ({_repr_list(step.inputs)}): {exc}{advice}"
        ) from None
    taken = _bound_already(step.action) & set(step.inputs)
    if taken:  # (`**kwargs` in the signature takes them; the call would give them twice)
        raise TypeError(
            f"the action of step {step.name!r} already has {_repr_list(sorted(taken))}, "
            "bound by a functools.partial or as the instance of a method or callable object: "
            "its inputs cannot give it again; name the input after another parameter"
        )


def _misspelled_inputs(step: Step, signature: inspect.Signature) -> str:
    """`"; did you mean the input 'image' (not 'img')"` for input keys close to parameters.

    Or `""`: every key names a parameter, or none is close to one.
    """
    named = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    parameters = [p.name for p in signature.parameters.values() if p.kind in named]
    fixes = []
    for key in step.inputs:
        if key not in parameters:
            close = close_names(key, [p for p in parameters if p not in step.inputs])
            if close:
                fixes.append(f"the input {close[0]!r} (not {key!r})")
    return f"; did you mean {' and '.join(fixes)}" if fixes else ""


def _bound_already(action: object) -> set[str]:
    """The names of the parameters of `action`'s function that are already given a value.

    The leading positional parameters a `functools.partial` binds (`partial(f, 0)` binds
    `f`'s first one), and the `self` of a bound method or a callable object. A signature
    with `**kwargs` accepts these names as keywords, but the call would give them twice.
    """
    function, bound, _ = _beneath(action)
    if not bound or not inspect.isfunction(function):
        return set()  # (nothing given, or unread: `in_thread(fn)` gives `fn`'s signature)
    positional = [
        parameter.name
        for parameter in inspect.signature(function).parameters.values()
        if parameter.kind in (parameter.POSITIONAL_ONLY, parameter.POSITIONAL_OR_KEYWORD)
    ]
    return set(positional[:bound])


def _callable_name(action: object) -> str:
    name = getattr(_unwrap_partial(action), "__name__", None)
    return name if isinstance(name, str) and name.isidentifier() else "action"


@final
@attrs.frozen(init=False)
class Step:
    """One named async action of a [`Graph`][exegraph_trio.Graph], and what it waits for.

    ```python
    async def migrate() -> None:
        await trio.sleep(1)

    Step("migrate", migrate, depends_on=["provision-db"], tags=["db"], timeout=30)
    ```

    A step is a value: comparing, hashing and copying it (`attrs.evolve`) are safe.

    What the action returns is the step's *value* (`StepTiming.value`); `inputs` passes the
    values of other steps to it as keyword arguments:

    ```python
    async def build() -> str:
        return "registry/app:1.2"

    async def deploy(image: str) -> None: ...

    Step("build", build)
    Step("deploy", deploy, inputs={"image": "build"})  # deploy(image="registry/app:1.2")
    ```

    An action that is an async generator function yielding once, or an
    `@asynccontextmanager` function, makes a *resource step*: the part up to the `yield`
    is the step's action and the yielded value its value; the part after it is its
    teardown, run as soon as every step depending on it has settled or is known never to
    run (see the guide "Recovering and cleaning up").

    Args:
        name: a non-empty name, unique within its graph.
        action: an async callable: an `async def` function, a `functools.partial` of one,
            or an object with `async def __call__`; for a resource step, an async
            generator function or an `@asynccontextmanager` function. It is called with
            no arguments, or with the keyword arguments named by `inputs`. Raising fails
            the step. A sync function is refused with a `TypeError`: run blocking code
            inside an async action with `trio.to_thread.run_sync`.
        depends_on: names of the steps that must finish successfully before this one
            starts; any iterable of `str` (not a bare `str`). Repeats are dropped.
        tags: labels for finding related steps (`Graph.with_tag`); repeats are dropped.
        timeout: seconds this step may run before it fails with
            [`StepTimeoutError`][exegraph_trio.StepTimeoutError]. Overrides
            `RunOptions.step_timeout`; `None` uses the run's, `0` or `math.inf` means no
            deadline for this step even when the run has one. With retries, each attempt
            has the whole timeout; a resource's teardown has its own.
        inputs: keyword argument -> step name: the action is called with each keyword set
            to that step's value. Every step named is a dependency (added to `depends_on`
            when missing). With a trigger rule other than `ALL_SUCCESS`, each input is an
            `outcome.Outcome` (`outcome.Value(v)`, or `outcome.Error(exc)` for a
            dependency that failed, was cancelled or skipped).
        retry: how to retry this step when it fails
            ([`Retry`][exegraph_trio.Retry]); `None` uses `RunOptions.retry`.
        trigger_rule: when the step runs, given how its dependencies ended
            ([`TriggerRule`][exegraph_trio.TriggerRule]); default `ALL_SUCCESS`.
        pools: the pools whose slots the step takes while its action runs: a list of
            pool names (one slot each) or a mapping of pool name -> slots, as in
            `pools={"db": 2}`; the pools are given by `RunOptions(pools=...)` (see
            [`Pool`][exegraph_trio.Pool]). A bare `str` is refused.

    Raises:
        TypeError: a field has the wrong type (a sync `action`, a `str` for `depends_on`,
            `tags`, `inputs` or `pools`, a name that is not a `str`, a `timeout` that is
            not a number, a `retry` that is not a `Retry`, a `trigger_rule` that is not a
            `TriggerRule`, a pool's slots that are not an `int`), `inputs` names
            keywords the action cannot take, or a step without `inputs` has an action
            that needs arguments (read from its code: a function, a `functools.partial`
            of one, a bound method or an object with `async def __call__`), or a field
            after the action is given by position (they are keywords: the message says
            what to write).
        ValueError: an empty name, a negative or NaN timeout, a step depending on itself
            or taking its own value, an `inputs` key that is not an identifier, a pool
            named twice in a list, or fewer than 1 slot of a pool.
    """

    name: str
    action: Action
    depends_on: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    timeout: float | None = None
    inputs: Mapping[str, str] = attrs.field(default=_NO_INPUTS, hash=False, repr=_dict_repr)
    retry: Retry | None = None
    trigger_rule: TriggerRule = TriggerRule.ALL_SUCCESS
    pools: Mapping[str, int] = attrs.field(default=_NO_POOLS, hash=False, repr=_dict_repr)
    _kind: int = attrs.field(default=COROUTINE, init=False, eq=False, hash=False, repr=False)
    # Whether it uses any of part 2: inputs, its own retry, a trigger rule, a resource's
    # action or pools (a graph's first run looks for them: one attribute a step).
    _lifecycle: bool = attrs.field(default=False, init=False, eq=False, hash=False, repr=False)

    # Written by hand rather than generated by attrs: graphs of 10⁵ steps are built in
    # loops, and the common step (a coroutine function, a tuple of names, no timeout, no
    # inputs) is checked on a fast path at a third of the cost of attrs' converters and
    # validators. Everything else goes through the same checks as before. The checked
    # values are then stored into a new `_Writable` (a `Step`'s layout with plain slot
    # stores), whose class then becomes `Step`, as `_result._timing` does for a
    # `StepTiming`: eleven `object.__setattr__` calls (what attrs does for a frozen class)
    # cost twice the rest of a common step's construction (each makes a bound wrapper and
    # walks the class's bases); eleven plain stores and one `__class__` assignment cost a
    # tenth. It is `__new__` rather than `__init__`, so that the instance is made writable
    # to begin with: turning a `Step` into a `_Writable` took an `object.__setattr__` call,
    # an eighth of a common step's construction.
    #
    # The fields after the action are keywords (the spec), yet not keyword-only here: a
    # call leaves most of them out, and CPython fills each keyword-only parameter left out
    # with a dict lookup of `__kwdefaults__` (80 instructions each: six of them were 7 % of
    # a common step), a positional one from `__defaults__` by place. `_by_position` takes
    # the first argument given by position after the action, and the call is refused with
    # what to write instead (`*more` takes what the fields cannot, so that Python's own
    # message, naming `__new__` and counting `cls`, is not what a caller sees). A second
    # argument by position binds `depends_on`: given by keyword too, Python says it got
    # two values for it. A parameter per field instead would cost 20 instructions each a
    # step. (`__signature__` and type checkers, which read `__init__` below, show the
    # fields as keyword-only.)
    #
    # Large graphs are made in loops, their steps running a few functions (one function,
    # or closures of one `async def`, share a code object): the code of the last plain
    # function found to be a coroutine function taking no parameter is kept, and a step
    # whose action runs that code skips reading three of its attributes (`co_flags`,
    # `co_argcount`, `co_kwonlyargcount`: generic attribute reads, 900 instructions, 8 %
    # of a common step). A code object never changes, and only its identity is compared.
    def __new__(  # noqa: PLR0915, PLR0917 - one fast path; keywords to callers (see above)
        cls,
        name: str,
        action: Action,
        _by_position: object = _NOT_GIVEN,
        depends_on: Iterable[str] = (),
        tags: Iterable[str] = (),
        timeout: float | None = None,
        inputs: Mapping[str, str] | None = None,
        retry: Retry | None = None,
        trigger_rule: TriggerRule = TriggerRule.ALL_SUCCESS,
        pools: Iterable[str] | Mapping[str, int] | None = None,
        *more: object,  # (past the fields: only to say what to write instead)
    ) -> Step:
        global _bare_code  # noqa: PLW0603 - a one-entry cache (see above)
        if _by_position is not _NOT_GIVEN:
            raise _positional_error(name, _by_position)
        if type(name) is not str or not name:
            _check_name(name)
        if type(action) is _FUNCTION and (code := action.__code__) is _bare_code:
            kind = COROUTINE  # (this code was checked before: a coroutine, no parameter)
        elif type(action) is _FUNCTION and code.co_flags & _CO_COROUTINE:
            kind = COROUTINE
            if code.co_argcount or code.co_kwonlyargcount:
                if not inputs:
                    _check_called_bare(name, action)  # (parameters: may need an argument)
            else:
                _bare_code = code
        else:
            kind = _kind_of(name, action)
            if not inputs:
                _check_called_bare(name, action)
        needs: tuple[str, ...]
        if type(depends_on) is tuple and (
            not depends_on
            or (len(depends_on) == 1 and type(depends_on[0]) is str and depends_on[0])
        ):
            needs = depends_on  # `_names`' first case, inlined: no name or one
        else:
            needs = _names(depends_on, "depends_on")
        labels: tuple[str, ...] = tags if type(tags) is tuple and not tags else _names(tags, "tags")
        seconds = None if timeout is None else _convert_timeout(timeout)
        takes: Mapping[str, str]
        slots: Mapping[str, int]
        if inputs is None and retry is None and pools is None and trigger_rule is _ALL_SUCCESS:
            # The common step: none of part 2 (unless its action is a resource's).
            takes, slots, lifecycle = _NO_INPUTS, _NO_POOLS, kind != COROUTINE
        else:
            parts = _lifecycle_parts(name, kind, inputs, retry, trigger_rule, pools)
            takes, slots, lifecycle = parts
        if name in needs:
            raise ValueError(f"step {name!r} depends on itself; remove it from depends_on")
        # (a `_Writable` for the stores: mypy's attrs plugin cannot see it is a `Step`'s)
        self: Any = None
        try:  # (an exception landing anywhere in the window still leaves a `Step`)
            self = _new(_Writable)
            self.name = name
            self.action = action
            self.depends_on = needs
            self.tags = labels
            self.timeout = seconds
            self.inputs = takes
            self.retry = retry
            self.trigger_rule = trigger_rule
            self.pools = slots
            self._kind = kind
            self._lifecycle = lifecycle
        finally:
            if self is not None:
                self.__class__ = Step
        if takes is not _NO_INPUTS:  # (a mapping's truth costs a tenth of the fast path)
            self._take_inputs()
        return self  # type: ignore[no-any-return]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """A subclass (`@final` says there is none; Python does not forbid one).

        Its instances are made as any class's are, `__new__` then `__init__`: `_new_bare`,
        then attrs' generated `__init__` if it has fields of its own (stored unchecked);
        else `_new_bare` stores what `Step` checked.

        Raises:
            TypeError: the subclass defines `__new__` or `__init__` itself: `Step` makes
                its fields in `__new__`, and has no `__init__` for `super()` to call.
        """
        super().__init_subclass__(**kwargs)
        own = cls.__dict__
        new, init = own.get("__new__"), own.get("__init__")
        if new is not None and getattr(new, "__func__", None) is not _new_bare:
            defined = "__new__"
        elif init is not None and not _made_by_attrs(init):
            defined = "__init__"
        else:
            defined = ""
        if defined:
            raise TypeError(
                f"{cls.__qualname__} defines {defined}, which a subclass of Step cannot: "
                "Step is final and makes its fields in __new__ (it has no __init__ for "
                "super() to call). Add fields with attrs (its generated __init__ stores "
                "them), or hold a Step in a class of your own."
            )
        made: Any = cls
        made.__new__ = staticmethod(_new_bare)

    if TYPE_CHECKING:  # what type checkers see: `Step(...)` and `attrs.evolve(step, ...)`
        # are checked against `__init__`'s signature (mypy's attrs plugin reads it there);
        # at run time `object.__init__` does nothing, `__new__` did it all.
        def __init__(
            self,
            name: str,
            action: Action,
            *,
            depends_on: Iterable[str] = (),
            tags: Iterable[str] = (),
            timeout: float | None = None,
            inputs: Mapping[str, str] | None = None,
            retry: Retry | None = None,
            trigger_rule: TriggerRule = TriggerRule.ALL_SUCCESS,
            pools: Iterable[str] | Mapping[str, int] | None = None,
        ) -> None: ...

    def _take_inputs(self) -> None:
        inputs = self.inputs
        if self.name in inputs.values():
            raise ValueError(
                f"step {self.name!r} takes its own value as an input; a step's inputs "
                "name other steps"
            )
        _check_signature(self)
        missing = [dep for dep in inputs.values() if dep not in self.depends_on]
        if missing:
            object.__setattr__(self, "depends_on", (*self.depends_on, *dict.fromkeys(missing)))

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle (and `copy.deepcopy`) a step as the call that makes it again.

        Its `inputs` and `pools` are read-only views (`types.MappingProxyType`), which
        cannot be pickled themselves; the step is made again from plain dicts, through
        the same checks. The action must be picklable (a module-level function). A
        subclass is pickled as its class and its state: every field (its own too, in
        slots or in its `__dict__`) and whatever else its `__dict__` holds, those views as
        dicts, and made again unchecked (`_remade_as`), as its checked fields were; one
        with a `__getstate__` or `__setstate__` of its own, by them (the views are then
        its to turn into something that pickles).
        """
        made: type[Any] = type(self)  # (`Step` is final to type checkers: not to Python)
        if made is not Step:
            if _own_state(made):
                return (_new, (made,), self.__getstate__())
            state = {field.name: getattr(self, field.name) for field in attrs.fields(made)}
            extra = getattr(self, "__dict__", None)  # (a subclass without __slots__)
            if extra:
                state = {**extra, **state}
            state["inputs"], state["pools"] = dict(self.inputs), dict(self.pools)
            return (_remade_as, (made, state))
        return (
            _remade,
            (
                self.name,
                self.action,
                self.depends_on,
                self.tags,
                self.timeout,
                dict(self.inputs),
                self.retry,
                self.trigger_rule,
                dict(self.pools),
            ),
        )

    @property
    def is_resource(self) -> bool:
        """Whether this is a resource step (its action has a teardown after its `yield`)."""
        return self._kind != COROUTINE


def _made_by_attrs(function: object) -> bool:
    """Whether `function` is one attrs generated (its code's file names attrs)."""
    code = getattr(function, "__code__", None)
    return code is not None and code.co_filename.startswith("<attrs generated")


def _new_bare(cls: type[Step], *args: Any, **kwargs: Any) -> Step:
    """A subclass's `__new__`: its instance, filled by `Step`'s checks unless its `__init__` will.

    A subclass with an `__init__` of its own (attrs' generated one, when it has fields of
    its own) stores its fields itself, unchecked; else what `Step(*args, **kwargs)` makes
    is stored into the instance.
    """
    made: Step = _new(cls)
    init: object = cls.__init__
    if init is object.__init__:
        checked = Step(*args, **kwargs)
        for field in _FIELDS:
            object.__setattr__(made, field, getattr(checked, field))
    return made


@final
class _Writable(Step):  # type: ignore[misc]  # (only ever a `Step` being initialised)
    """A `Step` whose slots can be set: what a `Step` is during its `__new__`'s stores.

    The same layout (no slot of its own), so CPython allows the `__class__` assignments
    there. With `object`'s own `__setattr__` and `__delattr__` (CPython fills one C slot
    from the two), each store is a plain slot store.
    tests/test_step.py checks that a step made so equals one made field by field.
    """

    __slots__ = ()
    __setattr__ = object.__setattr__
    __delattr__ = object.__delattr__  # (with attrs' frozen one, stores would call both)


def _remade(  # noqa: PLR0917 - `Step.__reduce__`'s fields, in order
    name: str,
    action: Action,
    depends_on: tuple[str, ...],
    tags: tuple[str, ...],
    timeout: float | None,
    inputs: dict[str, str],
    retry: Retry | None,
    trigger_rule: TriggerRule,
    pools: dict[str, int],
) -> Step:
    """The step `Step.__reduce__` describes, made again."""
    return Step(
        name,
        action,
        depends_on=depends_on,
        tags=tags,
        timeout=timeout,
        inputs=inputs or None,
        retry=retry,
        trigger_rule=trigger_rule,
        pools=pools or None,
    )


def _own_state(cls: type[Step]) -> bool:
    """Whether the subclass `cls` pickles its state its own way (not attrs' way).

    (attrs gives each slotted class a `__getstate__` and `__setstate__` of its own, made
    in its module `attr._make`.)
    """
    for klass in cls.__mro__:
        if klass is Step:
            return False
        for name in ("__getstate__", "__setstate__"):
            method = klass.__dict__.get(name)
            if method is not None and getattr(method, "__module__", None) != "attr._make":
                return True
    return False


def _remade_as(cls: type[Step], state: dict[str, Any]) -> Step:
    """An instance of the subclass `cls` of `Step` with the fields of `state` (pickled).

    `inputs` and `pools` come as dicts and are stored as read-only views again.
    """
    made: Step = _new(cls)
    for field, value in state.items():
        if field in ("inputs", "pools"):
            value = types.MappingProxyType(value) if value else _EMPTY[field]  # noqa: PLW2901
        object.__setattr__(made, field, value)
    return made


_FIELDS: Final = tuple(field.name for field in attrs.fields(Step))
"""`Step`'s fields, in the order `__new__` takes them (`_kind` and `_lifecycle` last)."""


def _call_signature() -> inspect.Signature:
    """`Step(...)` as callers write it: `__new__`'s parameters but `cls`, `_by_position`, `*more`.

    (Those are there only to tell a caller who gave the fields by position what to write,
    and the fields are keywords: `inspect.signature(Step)`, `help(Step)` and editors read
    this one.)
    """
    parameters = list(inspect.signature(Step.__new__).parameters.values())
    name, action, _by_position, *fields, _more = parameters[1:]
    keywords = [field.replace(kind=field.KEYWORD_ONLY) for field in fields]
    return inspect.Signature([name, action, *keywords])


Step.__signature__ = _call_signature()  # type: ignore[attr-defined]
