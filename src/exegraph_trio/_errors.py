"""The exceptions exegraph raises, and the one it reports.

```text
Exception
├── ValueError
│   └── GraphError                  the graph cannot exist
│       ├── DuplicateStepError      two steps share a name
│       ├── MissingDependencyError  a step depends on a name that is not in the graph
│       └── CycleError              the dependencies loop
├── TimeoutError
│   └── StepTimeoutError            a step ran past its deadline
├── StepSkippedError                a step never ran (a dependency failed, or fail-fast stopped)
├── StepCancelledError              fail-fast (or an outer scope) cancelled a running step
└── ExceptionGroup
    └── RunError                    what `run` raises: every failure and every skip of one run
```

Each exception keeps its constructor arguments in `args` (so it pickles and copies as
itself) and builds its message from them in `__str__`.

A name that is not in a graph or a run (a misspelt dependency, `graph["fecth"]`,
`result["fecth"]`) is reported with the closest names there are, found with
`difflib.get_close_matches`: "did you mean 'fetch'?".
"""

from __future__ import annotations

import difflib
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import final

__all__ = [
    "CycleError",
    "DuplicateStepError",
    "GraphError",
    "MissingDependencyError",
    "RunError",
    "StepCancelledError",
    "StepSkippedError",
    "StepTimeoutError",
    "is_step_skipped",
]


def _quoted(names: Sequence[str]) -> str:
    return listed([repr(name) for name in names[:LISTED]], len(names))


LISTED = 20
"""How many offending names (edges, requests…) an error's message lists: 10⁵ mistakes
make a message of megabytes otherwise. The error's attributes keep them all."""


def listed(shown: Sequence[str], count: int, separator: str = ", ") -> str:
    """`shown` (the first of `count` items) joined, then `…and N more` if some are left out."""
    text = separator.join(shown)
    return f"{text}{separator}…and {count - len(shown)} more" if count > len(shown) else text


REPR_ITEMS = 20
"""How many items of a run's steps or a group's members a `repr` shows (the rest counted)."""


def short_repr(items: Sequence[object], *, brackets: str = "()") -> str:
    """`repr` of a sequence, its first `REPR_ITEMS` items then `…and N more`.

    A result of 10⁶ steps would otherwise make a repr of hundreds of megabytes (a REPL
    echo, a failing assertion in a test).
    """
    shown = ", ".join(map(repr, items[:REPR_ITEMS]))
    if len(items) > REPR_ITEMS:
        shown += f", …and {len(items) - REPR_ITEMS} more"
    elif len(items) == 1 and brackets == "()":
        shown += ","
    return f"{brackets[0]}{shown}{brackets[1]}"


MAX_SUGGESTED = 5
"""For how many missing names a `MissingDependencyError` looks for close ones.

Each look compares the name with every step of the graph (about a second for 10⁵ steps),
and a typo is usually one or two names, not hundreds.
"""


def close_names(name: object, names: Collection[str]) -> tuple[str, ...]:
    """The (at most three) names of `names` most like `name`, best first.

    Args:
        name: the name that was not found; only a `str` has close names.
        names: the names there are.
    """
    if not isinstance(name, str) or not names:
        return ()
    return tuple(difflib.get_close_matches(name, list(names), n=3))


def did_you_mean(suggestions: Sequence[str]) -> str:
    """`" (did you mean 'fetch'?)"`, or `""` when there is nothing to suggest."""
    if not suggestions:
        return ""
    *first, last = (repr(name) for name in suggestions)
    return f" (did you mean {', '.join(first) + ' or ' if first else ''}{last}?)"


@final
class UnknownStep:
    """The message of the `KeyError` raised for a step name that is not there.

    `KeyError` shows `repr(args[0])`, so the close names are looked for only when the
    error is shown: a lookup that misses inside `try`/`except KeyError` costs no more
    than a dictionary miss, however large the graph.

    Args:
        name: the name that was asked for.
        names: the names there are (not copied).
        where: what was searched, as in "no step named 'x' in this graph".
    """

    __slots__ = ("_name", "_names", "_where")

    def __init__(self, name: object, names: Collection[str], where: str) -> None:
        self._name = name
        self._names = names
        self._where = where

    def __repr__(self) -> str:
        hint = did_you_mean(close_names(self._name, self._names))
        return f"no step named {self._name!r} in this {self._where}{hint}"

    def __reduce__(self) -> tuple[type[UnknownStep], tuple[object, tuple[str, ...], str]]:
        # A copy holds only the close names, not every name of the graph.
        return UnknownStep, (self._name, close_names(self._name, self._names), self._where)


def unknown_step(name: object, names: Collection[str], where: str) -> KeyError:
    """The `KeyError` for a name that is not among `names`, with close names in its message."""
    return KeyError(UnknownStep(name, names, where))


class GraphError(ValueError):
    """A graph that cannot exist: the base of every validation error of a graph.

    Catch this to handle any invalid graph; catch a subclass to handle one kind of mistake.
    """

    def __repr__(self) -> str:
        # (Its arguments hold every offending name: 10⁵ of them made a repr of megabytes.)
        shown = ", ".join(
            short_repr(arg) if isinstance(arg, tuple) else repr(arg) for arg in self.args
        )
        return f"{type(self).__name__}({shown})"


@final
class DuplicateStepError(GraphError):
    """Two or more steps share a name.

    Attributes:
        names: every name that occurs more than once, in first-seen order.
    """

    def __init__(self, names: Sequence[str]) -> None:
        super().__init__(tuple(names))
        self.names: tuple[str, ...] = tuple(names)

    def __str__(self) -> str:
        return (
            f"duplicate step name{'s' if len(self.names) > 1 else ''}: {_quoted(self.names)}; "
            "every step of a graph needs its own name"
        )


@final
class MissingDependencyError(GraphError):
    """Steps depend on names that are not in the graph.

    The message suggests the graph's closest names for each misspelt one:
    `'deploy' depends on 'fecth' (did you mean 'fetch'?)`.

    Args:
        edges: every `(step, missing_dependency)` pair, in graph order.
        suggestions: close names of the graph for some missing names (see
            [`among`][exegraph_trio.MissingDependencyError.among]), best first.
        inputs: for the edges that come from a step's `inputs`, the input's keyword.

    Attributes:
        edges: every `(step, missing_dependency)` pair, in graph order.
        suggestions: for each missing name that has close names in the graph, those
            names, best first.
        inputs: for each edge of `edges` that a step's `inputs` made, its keyword (the
            message says `'deploy' takes its input 'image' from 'biuld'`).
    """

    def __init__(
        self,
        edges: Sequence[tuple[str, str]],
        suggestions: Mapping[str, Sequence[str]] | Iterable[tuple[str, Sequence[str]]] = (),
        inputs: Mapping[tuple[str, str], str] | Iterable[tuple[tuple[str, str], str]] = (),
    ) -> None:
        self.edges: tuple[tuple[str, str], ...] = tuple(edges)
        self.suggestions: dict[str, tuple[str, ...]] = {
            name: tuple(close) for name, close in dict(suggestions).items() if close
        }
        self.inputs: dict[tuple[str, str], str] = dict(inputs)
        super().__init__(self.edges, tuple(self.suggestions.items()), tuple(self.inputs.items()))

    @classmethod
    def among(
        cls,
        edges: Sequence[tuple[str, str]],
        names: Collection[str],
        inputs: Mapping[tuple[str, str], str] | None = None,
    ) -> MissingDependencyError:
        """The error for `edges` in a graph of `names`, with close names suggested.

        Close names are looked for for the first few missing names only (`MAX_SUGGESTED`),
        as each look compares the name with every step of the graph.

        Args:
            edges: every `(step, missing_dependency)` pair, in graph order.
            names: the names of the graph's steps.
            inputs: the keyword of each edge that a step's `inputs` made, if any.
        """
        missing = list(dict.fromkeys(dep for _, dep in edges))[:MAX_SUGGESTED]
        return cls(edges, {name: close_names(name, names) for name in missing}, inputs or {})

    @property
    def missing(self) -> tuple[str, ...]:
        """The missing names, each once, in first-seen order."""
        return tuple(dict.fromkeys(dep for _, dep in self.edges))

    def __str__(self) -> str:
        inputs = self.inputs
        edges = listed(
            [
                (
                    f"{step!r} takes its input {inputs[step, dep]!r} from {dep!r}"
                    if (step, dep) in inputs
                    else f"{step!r} depends on {dep!r}"
                )
                + did_you_mean(self.suggestions.get(dep, ()))
                for step, dep in self.edges[:LISTED]
            ],
            len(self.edges),
            "; ",
        )
        where = "depends_on or inputs" if inputs else "depends_on"
        return (
            f"missing dependenc{'ies' if len(self.missing) > 1 else 'y'}: {edges}; "
            f"add the missing steps or remove these names from {where}"
        )


@final
class CycleError(GraphError):
    """The dependencies loop, so no step of the loop could ever start.

    Attributes:
        cycle: one cycle as a path that starts and ends with the same name, each step
            depending on the next: `("a", "b", "a")` means `a` depends on `b` and `b` on `a`.
    """

    def __init__(self, cycle: Sequence[str]) -> None:
        super().__init__(tuple(cycle))
        self.cycle: tuple[str, ...] = tuple(cycle)

    def __str__(self) -> str:
        cycle = self.cycle
        if len(cycle) > LISTED + 1:  # the first steps, then the one that closes it
            path = f"{' → '.join(cycle[:LISTED])} → …{len(cycle) - LISTED - 1} more… → {cycle[-1]}"
        else:
            path = " → ".join(cycle)
        return (
            f"dependency cycle: {path} "
            "(each step depends on the next); remove one of these dependencies"
        )


@final
class StepSkippedError(Exception):
    """A step that never ran.

    Under `ErrorPolicy.CONTINUE_ON_ERROR` a step is skipped when a step it depends on,
    directly or through other skipped steps, failed; `failed_dependency` names that failed
    step. Under `ErrorPolicy.FAIL_FAST` every step that had not started when the first
    failure stopped the run is skipped, but for the `ALL_DONE` and `ONE_FAILED` steps,
    which still run once their dependencies have settled; `failed_dependency` is set only
    when the failed step is upstream of it.

    Attributes:
        step_name: the step that did not run.
        failed_dependency: the failed step upstream of it, or `None`.
    """

    def __init__(self, step_name: str, failed_dependency: str | None = None) -> None:
        super().__init__(step_name, failed_dependency)
        self.step_name = step_name
        self.failed_dependency = failed_dependency

    def __str__(self) -> str:
        if self.failed_dependency is None:
            return f"step {self.step_name!r} was skipped: the run stopped before it could start"
        return (
            f"step {self.step_name!r} was skipped: its dependency {self.failed_dependency!r} failed"
        )


@final
class StepTimeoutError(TimeoutError):
    """A step ran past its deadline and was cancelled.

    The deadline is the step's own `Step.timeout`, or else `RunOptions.step_timeout`.
    The error policy treats it like any other failure.

    Attributes:
        step_name: the step that timed out.
        timeout: the deadline it had, in seconds.
    """

    def __init__(self, step_name: str, timeout: float) -> None:
        super().__init__(step_name, timeout)
        self.step_name = step_name
        self.timeout = timeout

    def __str__(self) -> str:
        return f"step {self.step_name!r} timed out after {self.timeout:g} s"


@final
class StepCancelledError(Exception):
    """A step that was cancelled while it ran, through no failure of its own.

    `ErrorPolicy.FAIL_FAST` cancels the steps in flight when another step fails; an
    enclosing cancel scope cancels them all. Such a step is reported to
    `RunOptions.on_step_done` and to instruments with this error, and its
    [`StepTiming`][exegraph_trio.StepTiming] has status `CANCELLED`. It is never a member of a
    [`RunError`][exegraph_trio.RunError].

    It is also what a resource step's `__aexit__` is given when the run is cancelled from
    outside while the resource is in use (its setup had finished): `in_use` is then true.

    Attributes:
        step_name: the step that was cancelled.
        in_use: whether the step is a resource whose setup had finished, so that the run
            was cancelled while its value was in use, not the step itself.
    """

    def __init__(self, step_name: str, in_use: bool = False) -> None:  # noqa: FBT001, FBT002 - as pickling calls it
        super().__init__(*((step_name, True) if in_use else (step_name,)))
        self.step_name = step_name
        self.in_use = in_use

    def __str__(self) -> str:
        if self.in_use:
            return f"the run was cancelled while resource step {self.step_name!r} was in use"
        return f"step {self.step_name!r} was cancelled while it ran"


@final
class RunError(ExceptionGroup[Exception]):
    """What [`run`][exegraph_trio.run] raises when any step failed.

    An `ExceptionGroup` whose direct members are each failed step's own exception (the
    original object, with a note naming the step) and one
    [`StepSkippedError`][exegraph_trio.StepSkippedError] for each step that never ran, in
    the order their outcomes were known. One exception object raised by several steps (a
    cached error, or one a trigger-rule step re-raised from its input) is a member once,
    with a note for each step. Handle them with `except*`:

    ```python
    try:
        await exegraph.run(graph)
    except* ConnectionError as group:
        ...  # the steps that failed with ConnectionError
    except* exegraph.StepSkippedError:
        ...  # the steps that never ran
    ```
    """

    def __repr__(self) -> str:
        return f"RunError({self.message!r}, {short_repr(self.exceptions, brackets='[]')})"

    def derive(self, excs: Sequence[Exception]) -> RunError:  # type: ignore[override]
        """Keep the `RunError` type when `except*` or `split` take the group apart."""
        return RunError(self.message, excs)

    @property
    def failures(self) -> tuple[Exception, ...]:
        """The failed steps' own exceptions, without the skips."""
        return tuple(exc for exc in self.exceptions if not isinstance(exc, StepSkippedError))

    @property
    def skipped(self) -> tuple[StepSkippedError, ...]:
        """One `StepSkippedError` for each step that never ran."""
        return tuple(exc for exc in self.exceptions if isinstance(exc, StepSkippedError))


def is_step_skipped(exc: BaseException | None) -> bool:
    """Tell whether an error is, wraps or contains a `StepSkippedError`.

    True when `exc` is one, when one is anywhere in its `__cause__`/`__context__` chain, or
    when it is an exception group with one anywhere inside (at any depth). Cycles in the
    chain are followed once.

    Args:
        exc: the error to look into; `None` (or anything that is not an exception)
            gives `False`.
    """
    seen: set[int] = set()
    todo: list[BaseException] = [exc] if isinstance(exc, BaseException) else []
    while todo:
        current = todo.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, StepSkippedError):
            return True
        if isinstance(current, BaseExceptionGroup):
            todo.extend(current.exceptions)
        todo.extend(x for x in (current.__cause__, current.__context__) if x is not None)
    return False
