"""`Graph`, a validated set of steps, and `GraphBuilder`, the mutable way to make one.

A graph keeps its steps twice: as `Step` values for its readers, and as integer indices
(`_deps`, `_dependents`, a topological order) for the scheduler, so that running never
looks a name up. Everything is computed without recursion, in O(V+E), when the graph is
made; priorities are computed the first time one is asked for.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from itertools import compress, repeat
from typing import Any, Final, Literal, TypeVar, cast, final, overload

import attrs

from ._collector import collector_paused
from ._core import ALL_DONE, ALL_SUCCESS, ONE_FAILED
from ._errors import (
    LISTED,
    CycleError,
    DuplicateStepError,
    MissingDependencyError,
    listed,
    unknown_step,
)
from ._lifecycle import Retry, TriggerRule
from ._pictures import graph_dot, graph_mermaid
from ._select import select_subgraph
from ._step import Action, Step

__all__ = ["Graph", "GraphBuilder"]

A = TypeVar("A", bound=Action)


_name_of: Final = operator.attrgetter("name")
_needs: Final = operator.attrgetter("depends_on")


def _duplicates(steps: Sequence[Step]) -> list[str]:
    """The names that more than one of `steps` has, in first-seen order."""
    seen: set[str] = set()
    duplicates: dict[str, None] = {}
    for step in steps:
        if step.name in seen:
            duplicates[step.name] = None
        seen.add(step.name)
    return list(duplicates)


def _as_steps(value: Iterable[Step]) -> tuple[Step, ...]:
    if isinstance(cast("object", value), Step):
        raise TypeError("Graph takes an iterable of steps; write Graph([step])")
    try:
        steps: tuple[object, ...] = tuple(value)
    except TypeError:
        raise TypeError(
            f"Graph takes an iterable of Step, not {type(value).__name__}: {value!r}"
        ) from None
    if not all(map(isinstance, steps, repeat(Step))):  # (the loop in C)
        bad = [f"#{i}: {item!r}" for i, item in enumerate(steps) if not isinstance(item, Step)]
        hint = (
            " (a mapping gives its keys: pass its .values())"
            if isinstance(value, Mapping) and all(map(isinstance, value.values(), repeat(Step)))
            else ""
        )
        raise TypeError(f"Graph takes only Step items, got {', '.join(bad)}{hint}")
    return cast("tuple[Step, ...]", steps)


@final
class _Lazy:
    """What a graph computes on first use.

    Its priorities and the order they induce, and which part-2 features its steps use.
    """

    __slots__ = ("by_rank", "features", "places", "priorities", "rank")

    def __init__(self) -> None:
        self.places: list[int] | None = None
        self.priorities: list[int] | None = None
        self.rank: list[int] | None = None
        self.by_rank: list[int] | None = None
        self.features: Features | None = None


_lifecycle_of: Final = operator.attrgetter("_lifecycle")
_timeout_of: Final = operator.attrgetter("timeout")


@final
class Features:
    """Which steps of a graph use results, retries, trigger rules or resources.

    Computed once per graph, on its first run; every field is `None` (or `False`) when no
    step uses that feature, so that a run of a graph using none of them pays nothing.

    Attributes:
        special: per step, whether it needs more than the plain path (inputs, its own
            retry, a trigger rule, a resource); `None` when no step does.
        rules: per step, its trigger rule code (`_core.ALL_SUCCESS`…); `None` when all
            are `ALL_SUCCESS`.
        retries: per step, its own `Retry` or `None`; `None` when no step has one.
        resources: whether some step is a resource step.
        inputs: per step, `(keyword, position)` pairs of its inputs; `None` when no step
            has inputs.
        consumers: per step, how many inputs take its value; `None` likewise.
        pooled: whether some step takes pool slots.
        timed: whether some step has a `timeout` of its own.
    """

    __slots__ = (
        "consumers",
        "inputs",
        "pooled",
        "resources",
        "retries",
        "rules",
        "special",
        "timed",
    )

    def __init__(self, steps: tuple[Step, ...], index: dict[str, int]) -> None:
        rule_codes = {TriggerRule.ALL_DONE: ALL_DONE, TriggerRule.ONE_FAILED: ONE_FAILED}
        self.special: bytearray | None = None
        self.rules: list[int] | None = None
        self.retries: list[Retry | None] | None = None
        self.resources = False
        self.inputs: list[tuple[tuple[str, int], ...]] | None = None
        self.consumers: list[int] | None = None
        self.pooled = False
        self.timed = any(map(operator.is_not, map(_timeout_of, steps), repeat(None)))  # (in C)
        n = len(steps)
        # The steps using some of it, found in C (a graph's first run pays this per step).
        for i in compress(range(n), map(_lifecycle_of, steps)):
            step = steps[i]
            if step.pools:
                self.pooled = True
            rule = step.trigger_rule is not TriggerRule.ALL_SUCCESS
            if not (step.inputs or step.retry is not None or rule or step._kind):
                continue  # (pools only)
            if self.special is None:
                self.special = bytearray(n)
            self.special[i] = 1
            if rule:
                if self.rules is None:
                    self.rules = [ALL_SUCCESS] * n
                self.rules[i] = rule_codes[step.trigger_rule]
            if step.retry is not None:
                if self.retries is None:
                    self.retries = [None] * n
                self.retries[i] = step.retry
            if step._kind:
                self.resources = True
            if step.inputs:
                if self.inputs is None or self.consumers is None:
                    self.inputs = [()] * n
                    self.consumers = [0] * n
                pairs = tuple((keyword, index[name]) for keyword, name in step.inputs.items())
                self.inputs[i] = pairs
                for _, j in pairs:
                    self.consumers[j] += 1


@final
@attrs.frozen(repr=False)
class Graph:
    """A valid set of steps ([`Step`][exegraph_trio.Step]): the only kind of graph that can exist.

    ```python
    graph = Graph([
        Step("fetch", fetch),
        Step("build", build, depends_on=["fetch"]),
        Step("test", test, depends_on=["build"]),
    ])
    ```

    The steps may come in any order; all of them are checked at once, and every offending
    name is reported. A graph is immutable: `add_step` returns a new one. It reads like a
    mapping from names to steps: `len(graph)`, `"build" in graph`, `graph["build"]`, and
    iterating gives the steps in the order they were added.

    Args:
        steps: the steps, any iterable of `Step`.

    Raises:
        TypeError: an item is not a `Step`.
        DuplicateStepError: two steps share a name.
        MissingDependencyError: a step depends on a name no step has (all such edges are
            named).
        CycleError: the dependencies loop (one cycle is given as a path).
    """

    steps: tuple[Step, ...] = attrs.field(default=(), converter=_as_steps)
    _index: dict[str, int] = attrs.field(init=False, eq=False, hash=False)
    _deps: tuple[tuple[int, ...], ...] = attrs.field(init=False, eq=False, hash=False)
    _dependents: tuple[list[int], ...] = attrs.field(init=False, eq=False, hash=False)
    """Each step's dependents by position: the lists `__attrs_post_init__` filled, kept as
    they are (made into tuples, they cost 550 instructions a step more to build)."""
    _order: Sequence[int] = attrs.field(init=False, eq=False, hash=False)
    """A topological order of the positions: `range(len(steps))` when the steps came
    dependencies first."""
    _lazy: _Lazy = attrs.field(init=False, eq=False, hash=False)

    @collector_paused
    def __attrs_post_init__(self) -> None:
        # Each pass over the steps is one C call where it can be (`map`, `dict(zip(...))`):
        # a graph of 10⁵ steps is made in a loop, and a Python loop per step costs what the
        # rest of its check costs. The errors are worked out again, plainly, when one occurs.
        steps = self.steps
        n = len(steps)
        index = dict(zip(map(_name_of, steps), range(n), strict=True))
        if len(index) < n:
            raise DuplicateStepError(_duplicates(steps))
        deps: tuple[tuple[int, ...], ...] | None
        try:  # each step's dependencies as positions: `tuple(map(index.__getitem__, ...))`
            deps = tuple(map(tuple, map(map, repeat(index.__getitem__), map(_needs, steps))))
        except KeyError:
            deps = None  # (raised below, without the KeyError as its context)
        if deps is None:
            missing = [
                (step.name, dep) for step in steps for dep in step.depends_on if dep not in index
            ]
            from_inputs = {
                (step.name, dep): keyword
                for step in steps
                for keyword, dep in step.inputs.items()
                if dep not in index
            }
            raise MissingDependencyError.among(missing, index, from_inputs)
        dependents: list[list[int]] = [[] for _ in range(n)]
        later = False  # a step depends on one added after it (or on itself)
        for i in compress(range(n), deps):  # (the steps without dependencies skipped in C)
            for dep in deps[i]:
                dependents[dep].append(i)
                if dep >= i:  # (`Step` refuses itself, a subclass's own `__init__` may not)
                    later = True
        # Steps added dependencies first (the usual way) are in topological order already,
        # and cannot form a cycle; else Kahn's algorithm orders them (or finds a cycle).
        order: Sequence[int] = _topological_order(deps, dependents) if later else range(n)
        if len(order) < n:
            raise CycleError([steps[i].name for i in _find_cycle(deps, order)])

        set_ = object.__setattr__
        set_(self, "_index", index)
        set_(self, "_deps", deps)
        set_(self, "_dependents", tuple(dependents))
        set_(self, "_order", order)
        set_(self, "_lazy", _Lazy())

    # -- reading -------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.steps)

    def __contains__(self, name: object) -> bool:
        return name in self._index

    def __getitem__(self, name: str) -> Step:
        """The step called `name`; `KeyError` if there is none."""
        return self.steps[self._position(name)]

    def __iter__(self) -> Iterator[Step]:
        return iter(self.steps)

    def __repr__(self) -> str:
        shown = ", ".join(repr(step.name) for step in self.steps[:8])
        more = ", …" if len(self.steps) > 8 else ""
        return f"<Graph of {len(self.steps)} steps: {shown}{more}>"

    @property
    def names(self) -> tuple[str, ...]:
        """The step names, in the order the steps were added."""
        return tuple(self._index)

    def dependents(self, name: str) -> tuple[Step, ...]:
        """The steps that depend directly on the step called `name`, in graph order."""
        return tuple(self.steps[i] for i in self._dependents[self._position(name)])

    def with_tag(self, tag: str) -> tuple[Step, ...]:
        """The steps carrying `tag`, in graph order."""
        return tuple(step for step in self.steps if tag in step.tags)

    def select(self, selector: str, *, with_dependencies: bool = True) -> Graph:
        """The part of this graph that `selector` names, as a new graph.

        ```python
        graph.select("build+")             # build, every step after it, and what they need
        graph.select("tag:deploy")         # the deploy steps and what they need
        graph.select("test-*, !test-slow") # the tests but one, and what they need
        graph.select("!tag:slow")          # everything but the slow steps
        graph.select("lint", with_dependencies=False)  # lint alone, its dependencies dropped
        ```

        A selector is *terms* separated by spaces or commas (or both):

        | term | matches |
        |---|---|
        | `GLOB` | the steps whose name matches the glob: `build`, `deploy-*` |
        | `tag:GLOB` | the steps carrying a tag that matches the glob: `tag:db`, `tag:team-?` |
        | `TERM+` | what `TERM` matches, and every step depending on one of those, directly or not |
        | `!TERM` | nothing: it *removes* what `TERM` matches, after every other term is applied |

        Globs are `fnmatch`-style and case-sensitive: `*` matches any text, `?` one
        character, `[abc]` and `[!abc]` one character of (or not of) a set; every other
        character (`.`, `(`, `$`, …) matches itself. A name with a space or a comma in it, a
        leading `!` or a trailing `+` is matched with `?` in their place (or `[+]`, as in
        `c[+][+]` for `c++`). A selector made only of removals starts from the whole graph.

        With `with_dependencies=True` (the default), the transitive dependencies of the
        selected steps are added, so that the result can run on its own; then the removals
        are applied. Removing a step that a kept step depends on is an error: remove its
        dependents too (`!build+`), or pass `with_dependencies=False` (unless a kept step
        takes its value as an input, see below).

        With `with_dependencies=False`, only the selected steps are kept, and their
        dependencies on the steps left out are dropped from their `depends_on` (every other
        field of a step is kept). A step that takes the value of a step left out as one of
        its `inputs` could not be called without it, so that is an error rather than a
        silently dropped input.

        The steps keep their order in this graph. When nothing is left out, the result is
        this graph itself. A selection costs O(V+E) plus what its terms match: a literal
        name or tag is looked up; a term with a wildcard tests every step name (or
        every distinct tag) once.

        Args:
            selector: the terms, like `"build+ tag:deploy !lint"`.
            with_dependencies: add the transitive dependencies of the selected steps
                (`True`), or keep only the selected steps and drop their edges to the
                others (`False`).

        Returns:
            A graph of the selected steps, in this graph's order.

        Raises:
            TypeError: `selector` is not a `str`, or `with_dependencies` not a `bool`.
            ValueError: the selector has no term; a term has nothing to match (`!`,
                `tag:`); a term matches no step (the message suggests close names or
                tags); nothing is left after the removals; a removal takes a step that a
                kept step depends on (both are named); or, with `with_dependencies=False`,
                a kept step takes a step left out as an input (the step, the input and the
                step left out are named).
        """
        return select_subgraph(self, selector, with_dependencies=with_dependencies)

    def priority(self, name: str) -> int:
        """How many steps depend on `name`, directly or through other steps.

        When more steps are ready than there are free slots, the one with the higher
        priority starts first (ties go to the step added first), so that long tails of
        work are not left for last. All priorities are computed together the first time one
        is needed, in O(V·E/64) with bitsets freed as soon as they are consumed (a bitset
        whose low bits are all set keeps them as a count), and cached.

        Counting transitive dependents exactly is costly on large graphs whose steps share
        many of them in no regular pattern: the bitsets alive at once could take O(V²/8)
        bytes. Once they hold more than 512 MiB, the count starts again a window of bits at
        a time, which keeps them near that, for the price of a walk over the graph per
        window. (They are weighed every 1 024 steps at most, and less often while many are
        left to count: a burst in between can pass the bound.) On a random DAG (each step depending
        on up to six random earlier steps) this takes 0.7 s and 0.2 GB at 10⁵ steps, 13 s
        and 0.8 GB at 4·10⁵ (10-13 s and 3.5 GB in one walk), and 109 s and 0.6 GB at 10⁶
        (226 s and 23 GB in one walk). Chains, trees, fans and layered graphs stay linear
        in memory. A run counts them only when more steps are ready than slots: with
        `max_concurrency` at least the number of steps, it never does.
        """
        return self._priorities()[self._position(name)]

    def add_step(self, step: Step) -> Graph:
        """A new graph with `step` added; this one is unchanged.

        Raises:
            TypeError: `step` is not a `Step`.
            DuplicateStepError: the graph already has a step of that name.
            MissingDependencyError: `step` depends on a name that is not in the graph.
        """
        if not isinstance(step, Step):
            raise TypeError(f"add_step takes a Step, not {type(step).__name__}: {step!r}")
        return Graph((*self.steps, step))

    # -- pictures ------------------------------------------------------------------------

    def to_mermaid(self, *, direction: Literal["LR", "RL", "TB", "TD", "BT"] = "LR") -> str:
        """A [Mermaid](https://mermaid.js.org) flowchart of this graph: a node per step.

        An arrow goes from each dependency to its dependent, labelled with the keyword
        when the dependent takes the dependency's value as one of its `inputs`, and dashed
        when the dependent's trigger rule is not `ALL_SUCCESS` (the rule is written under
        its name). Resource steps are drawn as cylinders.

        ```python
        graph = Graph([Step("fetch", fetch), Step("build", build, depends_on=["fetch"])])
        print(graph.to_mermaid())
        # flowchart LR
        #   s0["fetch"]
        #   s1["build"]
        #   s0 --> s1
        ```

        Nodes are named `s0`, `s1`, … in graph order and step names are only labels,
        escaped so that the text always parses, whatever the names hold (quotes,
        brackets, `%%`, `end`, emoji). Mermaid refuses a diagram of more than 500 edges
        or 50 000 characters unless it is initialised with larger `maxEdges` and
        `maxTextSize`, as the guide "Pictures" shows.

        Args:
            direction: `"LR"` (left to right), `"TB"`/`"TD"` (top down), `"RL"`, `"BT"`.

        Returns:
            Mermaid source (without the Markdown fence), ending with a newline.

        Raises:
            ValueError: an unknown `direction`.
        """
        return graph_mermaid(self, direction=direction)

    def to_dot(self, *, direction: Literal["LR", "RL", "TB", "TD", "BT"] = "LR") -> str:
        """This graph in [Graphviz](https://graphviz.org)'s DOT language.

        Drawn like [`to_mermaid`][exegraph_trio.Graph.to_mermaid]: a box per step
        (a cylinder for a resource step), an arrow from each dependency, labelled with
        the input keyword, dashed into a step whose trigger rule is not `ALL_SUCCESS`.

        ```python
        Path("graph.dot").write_text(graph.to_dot())
        # then: dot -Tsvg graph.dot -o graph.svg
        ```

        Nodes are `s0`, `s1`, … in graph order; names are quoted labels, escaped so that
        Graphviz draws them as they are.

        Args:
            direction: `"LR"` (left to right), `"TB"`/`"TD"` (top down), `"RL"`, `"BT"`
                (Graphviz's `rankdir`).

        Returns:
            A `digraph`, ending with a newline.

        Raises:
            ValueError: an unknown `direction`.
        """
        return graph_dot(self, direction=direction)

    # -- for the scheduler ---------------------------------------------------------------

    def _position(self, name: str) -> int:
        try:
            return self._index[name]
        except KeyError:
            raise unknown_step(name, self._index, "graph") from None

    def _priorities(self) -> list[int]:
        lazy = self._lazy
        if lazy.priorities is None:
            # Steps are usually added dependencies first, and `_order` is then the order
            # they were added, which keeps the bitsets compact.
            lazy.priorities = _count_dependents(self._deps, self._dependents, self._order)
        return lazy.priorities

    def _places(self) -> list[int]:
        """Each step's place in Kahn's topological order of the graph (cached).

        (Where `RunResult.critical_path` breaks its ties: kept as it was when `_order` was
        always Kahn's.)
        """
        lazy = self._lazy
        if lazy.places is None:
            places = [0] * len(self.steps)
            for place, i in enumerate(self._kahn_order()):
                places[i] = place
            lazy.places = places
        return lazy.places

    def _kahn_order(self) -> Sequence[int]:
        """The topological order Kahn's algorithm gives.

        `_order`, unless that is the order the steps were added in (which skipped it).
        """
        order = self._order
        if isinstance(order, range):
            return _topological_order(self._deps, self._dependents)
        return order

    def _features(self) -> Features:
        """Which steps use results, retries, trigger rules or resources (cached)."""
        lazy = self._lazy
        if lazy.features is None:
            lazy.features = Features(self.steps, self._index)
        return lazy.features

    def _estimates(self, durations: Mapping[str, float]) -> list[float]:
        """Each step's estimated seconds (SPEC 2.2).

        Its entry in `durations`, else the median of the graph's known estimates (1 s when
        none is known); names that are not steps of the graph are ignored.

        Raises:
            ValueError: an estimate that is negative, NaN or not a number.
        """
        known: dict[int, float] = {}
        bad: list[tuple[int, str]] = []
        index = self._index
        unchecked: Mapping[str, object] = durations  # (its values are not checked yet)
        for name, value in unchecked.items():
            i = index.get(name)
            if i is None:
                continue
            if (
                isinstance(value, (int, float))
                and not isinstance(value, bool)
                and 0 <= value < math.inf  # (not NaN)
            ):
                try:
                    known[i] = float(value)
                except OverflowError:  # an int too large for a float
                    pass
                else:
                    continue
            bad.append((i, f"{name!r}: {value!r}"[:200]))
        if bad:
            shown = listed([text for _, text in sorted(bad)[:LISTED]], len(bad))
            raise ValueError(f"durations must map step names to finite seconds >= 0; got {shown}")
        if not known:
            return [1.0] * len(self.steps)
        if len(known) == len(self.steps):
            return [known[i] for i in range(len(self.steps))]
        default = _median(known.values())
        return [known.get(i, default) for i in range(len(self.steps))]

    def _path_lengths(self, estimates: Sequence[float]) -> list[float]:
        """Each step's critical-path length (ninja's priority).

        Its estimate plus the longest estimated path through its dependents.
        """
        lengths = [0.0] * len(self.steps)
        dependents = self._dependents
        for i in reversed(self._order):
            below = 0.0
            for j in dependents[i]:
                if lengths[j] > below:  # (faster than max(), 10⁵ times)  # noqa: PLR1730
                    below = lengths[j]
            lengths[i] = estimates[i] + below
        return lengths

    def _critical_ranking(self, estimates: Sequence[float]) -> tuple[list[int], list[int]]:
        """Start order by critical path (SPEC 2.2).

        Longest path first, then more transitive dependents, then graph order.
        """
        lengths = self._path_lengths(estimates)
        priorities = self._priorities()
        # Two stable sorts (a descending sort keeps equal keys in order): by priority, then
        # by length; cheaper than one sort on tuples.
        by_rank = sorted(range(len(lengths)), key=priorities.__getitem__, reverse=True)
        by_rank.sort(key=lengths.__getitem__, reverse=True)
        rank = [0] * len(by_rank)
        for place, i in enumerate(by_rank):
            rank[i] = place
        return rank, by_rank

    def _ranking(self) -> tuple[list[int], list[int]]:
        """Start order: each step's rank, and the step of each rank.

        Higher priority first, then graph order (the sort is stable).
        """
        lazy = self._lazy
        if lazy.rank is None or lazy.by_rank is None:
            priorities = self._priorities()
            # (A sort in reverse keeps equal keys in their order: graph order breaks ties.)
            by_rank = sorted(range(len(priorities)), key=priorities.__getitem__, reverse=True)
            rank = [0] * len(by_rank)
            for place, i in enumerate(by_rank):
                rank[i] = place
            lazy.rank, lazy.by_rank = rank, by_rank
        return lazy.rank, lazy.by_rank


def _median(values: Iterable[float]) -> float:
    """The median of finite numbers >= 0, finite too.

    (`statistics.median` of two `1e308` is `inf`: it adds before it halves.)
    """
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return ordered[middle - 1] / 2 + ordered[middle] / 2


def _topological_order(
    deps: Sequence[Sequence[int]], dependents: Sequence[Sequence[int]]
) -> tuple[int, ...]:
    """Kahn's algorithm, dependencies first; shorter than the graph when there is a cycle."""
    waiting = [len(step_deps) for step_deps in deps]
    order = [i for i, count in enumerate(waiting) if count == 0]
    for i in order:  # `order` grows while we walk it
        for j in dependents[i]:
            waiting[j] -= 1
            if waiting[j] == 0:
                order.append(j)
    return tuple(order)


def _find_cycle(deps: tuple[tuple[int, ...], ...], order: Sequence[int]) -> list[int]:
    """One cycle among the steps Kahn's algorithm could not order, as a closed path.

    Each unordered step has a dependency that is unordered too, so walking from one to such
    a dependency must come back to a step already on the path.
    """
    stuck = set(range(len(deps))).difference(order)
    node = min(stuck)
    path: list[int] = []
    seen: dict[int, int] = {}
    while node not in seen:
        seen[node] = len(path)
        path.append(node)
        node = next(dep for dep in deps[node] if dep in stuck)
    cycle = path[seen[node] :]
    cycle.append(node)
    return cycle


_RUN_MASK: Final = (1 << 2048) - 1
"""A bitset of transitive dependents whose lowest 2048 bits are all set is kept as a run.

(See `_count_dependents`; a module name so that tests can make it small.)
"""


@collector_paused
def _count_dependents(
    deps: tuple[tuple[int, ...], ...],
    dependents: Sequence[Sequence[int]],
    order: Sequence[int],
) -> list[int]:
    """The number of transitive dependents of every step.

    Walks the topological order backwards. When every step has at most one dependency, or
    at most one dependent (chains, trees fanning out or in), the dependents' sets are
    disjoint and the counts simply add up.

    Otherwise a step's count is the number of steps *hanging* below it (its transitive
    dependents reached through steps with a single dependency only: a tree, whose sizes add
    up) plus the size of a bitset, the union of what its dependents pushed to it. A step
    whose single dependency is `d` is a transitive dependent of a step `s` exactly when `d`
    is a transitive dependent of `s` or `d` is `s`. So it takes no bit: it adds itself and
    what hangs below it to `d`'s hanging count, and pushes its bitset unchanged into `d`'s
    union. A step with two dependencies or more takes one bit for itself and one for each
    step hanging below it (a block, so that a bitset's size is still a number of steps),
    and pushes its bitset with them into the union of each of its dependencies. Once
    counted, a step keeps nothing; so only the unions of steps with a dependent counted and
    themselves not yet counted are alive.

    Blocks are given in the order the walk meets the steps that take them, so later steps
    mostly have lower bits and the sets of late steps are small: an `order` close to the
    order steps were added keeps them compact. (Without the hanging counts, a fan out and
    back in, one step -> 10⁵ steps -> one step, made 10⁵ bitsets each with a bit near the
    top and one at the bottom: quadratic. Now each has one bit. A fan whose middle steps
    have two dependencies or more still is: each of them takes a bit.)

    In a deep graph whose steps fan in from many (layers of a pipeline), an early step's
    dependents are nearly every later step: its bitset is mostly a run of set low bits, and
    the cost of a union grows with the graph. A step with two dependencies or more whose
    union has its lowest bits (`_RUN_MASK`) all set keeps it as a pair `(m, rest)`: bits
    `0 … m - 1` all set, and `rest << m` (a step with one dependency passes its union on as
    it is). A union with a pair is a pair, so the run is never made again; only the bits
    above it are ORed. (10⁵ steps in layers of 100, each depending on three of the layer
    above: 7.0 → 1.3 billion instructions; a random graph with holes everywhere never makes
    a pair, and pays one test a step.)
    """
    n = len(deps)
    counts = [0] * n
    if not any(deps):  # no edges
        return counts
    if max(map(len, deps), default=0) <= 1 or max(map(len, dependents), default=0) <= 1:
        count_of = counts.__getitem__
        for i in reversed(order):
            direct = dependents[i]
            if len(direct) == 1:  # a chain's link: no `map` to make
                counts[i] = counts[direct[0]] + 1
            elif direct:
                counts[i] = len(direct) + sum(map(count_of, direct))
        return counts
    _count_by_bitsets(deps, order, counts)
    return counts


def _count_by_bitsets(
    deps: tuple[tuple[int, ...], ...], order: Sequence[int], counts: list[int]
) -> None:
    """`_count_dependents` for graphs whose dependents' sets overlap: into `counts`.

    One walk, as `_count_dependents` tells, unless the unions alive at once come to hold
    more than `_ALIVE_BITS` bits (`_bits_alive`): in a graph whose edges go anywhere nearly
    every step's union is alive until the end, each up to a bit per step, quadratic memory
    (10⁶ such steps: 23 GB in one walk). The count then starts again, a *window* of bits at
    a time: a walk keeps only the bits of its window (a block of bits crossing a window's
    end is cut there), and a step's count is what hangs below it plus its bits in every
    window. Bits are given in the order of the walk, so the walk of a window starts at the
    step whose block holds the window's first bit (the unions of the steps walked before
    hold none of its bits). Windows are made as wide as the unions seen alive allow, and
    narrower again, down to `_LEAST_WINDOW` bits, if more are alive later. Each window
    costs the Python of a walk from its start; the bit operations of all the windows
    together are about those of one walk.
    """
    n = len(deps)
    hanging = [0] * n
    natural = isinstance(order, range)  # (place i is step i)
    order = list(order)  # (CPython specialises indexing a list, not a `range`: −400 a step)
    alive = _bitset_walk(deps, order, counts, hanging, hanging, n - 1, 0, 0, n + 1, natural=natural)
    while alive:
        # Too many bits alive at once: windows of bits that many unions can hold.
        width = max(_LEAST_WINDOW, _ALIVE_BITS // (2 * alive))
        hanging = [0] * n
        starts: list[tuple[int, int, int]] = []  # (first place, its block's bit, window)
        alive = _bitset_walk(
            deps, order, counts, hanging, hanging, n - 1, 0, 0, width, starts, natural=natural
        )
        scratch = [0] * n  # (a later walk's sums of what hangs: complete already)
        for first, given, lo in starts:
            if alive:
                break
            # (the walk stores each step's count there: what hangs below it plus its bits)
            more = hanging.copy()
            alive = _bitset_walk(
                deps, order, more, hanging, scratch, first, given, lo, width, natural=natural
            )
            counts[:] = map(operator.add, counts, map(operator.sub, more, hanging))


def _bitset_walk(  # noqa: PLR0915, PLR0917 - one loop, merges written out
    deps: tuple[tuple[int, ...], ...],
    order: Sequence[int],
    counts: list[int],
    hanging: list[int],
    hung_onto: list[int],
    first: int,
    given: int,
    lo: int,
    width: int,
    starts: list[tuple[int, int, int]] | None = None,
    *,
    natural: bool = False,
) -> int:
    """One walk of `_count_by_bitsets`, keeping the bits `lo … lo + width - 1`.

    Walks the places `first`, `first - 1`, … 0 of `order`; the first block of bits is
    given there, from bit `given` (at most `lo`). Reads what hangs below a step from
    `hanging` and adds it up into `hung_onto` (the same list on a first walk; on a later
    one `hanging` is complete and the sums go to a list thrown away). Stores each step's
    count (what hangs below it plus its bits kept) into `counts`. With `starts` (a first
    walk: `given` and `lo` 0), appends `(place, bit, k * width)` for every later window
    `k ≥ 1`: the place of the step whose block holds the window's first bit, and the
    first bit of that block.

    Returns:
        0 when done; else how many unions were alive when they held more than
        `_ALIVE_BITS` bits (the walk stopped there), unless the window is `_LEAST_WINDOW`
        bits wide or less.
    """
    mask = _RUN_MASK
    look = _LOOK_EVERY
    watch = width > _LEAST_WINDOW
    # The bits of the unions, numbered from `lo`: past `end`, outside the window.
    end = width
    # What the dependents walked so far pushed to a step: a bitset, or a pair (m, rest).
    # The three pushes below are one merge (a bitset from a step with one dependency, a
    # bitset from a step with more, a pair), written out: a call per edge cost more than
    # the pairs save at 10⁴ steps.
    # Kept by place in a list, 0 for none: reading a place and clearing it cost a fifth of
    # a dict's `pop` (a fan's priorities: 5.4k → 4.2k instructions a step). Each is an `int`
    # or a pair, told apart by `type(...) is int` (cheaper than `isinstance`, and mypy does
    # not narrow its `else` to the pair: hence `Any`).
    unions: list[Any] = [0] * len(deps)
    bit = given - lo  # the next step with two dependencies or more gets this bit (and what hangs)
    if bit < 0:  # its block begins in the window before: the part in this one
        i = order[first]
        hung = hanging[i]
        counts[i] = hung  # (nothing walked before it: no bits below it)
        block = _cut(bit, hung, end)
        for d in deps[i]:
            unions[d] = block
        bit += hung + 1
        first -= 1
    # A block reaching past `boundary` holds the first bit of a later window (`starts`).
    boundary = end - 1 if starts is not None else len(deps)  # (no block reaches past n)
    after = look  # (when the unions are next weighed against `_ALIVE_BITS`)
    for high in range(first, -1, -look):
        # (only steps not walked yet hold a union: `high + 1` of them at most)
        if watch and (high + 1) * min(bit, end) > _ALIVE_BITS:  # (at most that many)
            after -= look
            if after <= 0:
                # (the unions of the steps at places 0 … high: by position when place i
                # is step i, else through the order)
                left = unions[: high + 1] if natural else map(unions.__getitem__, order[: high + 1])
                alive, bits = _bits_alive(list(filter(None, left)))
                if bits > _ALIVE_BITS:
                    return alive
                # (weighing costs a pass in C over the places not walked and a look at each
                # union: amortised, 16 places a step at most; until then the bits alive may
                # grow past the bound, as fast as they come)
                after = max(look, (high + 1) // 16)
        for place in range(high, max(high - look, -1), -1):
            i = order[place]
            below = unions[i]
            unions[i] = 0
            needs = deps[i]
            if type(below) is int:
                hung = hanging[i]
                counts[i] = hung + below.bit_count()
                if not needs:
                    continue
                if len(needs) == 1:  # no bit: its dependency counts it and what hangs below
                    d = needs[0]
                    hung_onto[d] += hung + 1
                    if below:  # (as it is, even a run: a step with more makes the pair)
                        pushed = unions[d]
                        if not pushed:
                            unions[d] = below
                        elif pushed is below:  # (a fan back in: one set, shared)
                            pass
                        elif type(pushed) is int:
                            unions[d] = pushed | below
                        else:
                            m, rest = pushed
                            unions[d] = (m, rest | below >> m)
                    continue
                if below < mask or below & mask != mask:
                    if bit + hung < end:
                        below |= ((2 << hung) - 1) << bit if hung else 1 << bit
                    else:  # (cut at the window's end; past a boundary below it)
                        below |= _cut(bit, hung, end)
                        if bit + hung > boundary:
                            boundary = _marked(starts, place, bit, hung, boundary, width)
                    bit += hung + 1
                    for d in needs:
                        pushed = unions[d]  # (the first push keeps `below`: no copy)
                        if not pushed:
                            unions[d] = below
                        elif type(pushed) is int:
                            unions[d] = pushed | below
                        else:
                            m, rest = pushed
                            unions[d] = (m, rest | below >> m)
                    continue
                run = ((below + 1) & ~below).bit_length() - 1  # the set low bits
                rest = below >> run
            else:
                run, rest = below
                hung = hanging[i]
                counts[i] = hung + run + rest.bit_count()
                if not needs:
                    continue
                if len(needs) > 1 and rest >= mask and rest & mask == mask:
                    more = ((rest + 1) & ~rest).bit_length() - 1
                    run += more
                    rest >>= more
            if len(needs) == 1:
                hung_onto[needs[0]] += hung + 1
            else:
                # (numbered from the run's end: a block is above every bit given before it)
                if bit + hung < end:
                    at = bit - run
                    rest |= ((2 << hung) - 1) << at if hung else 1 << at
                else:
                    rest |= _cut(bit, hung, end) >> run
                    if bit + hung > boundary:
                        boundary = _marked(starts, place, bit, hung, boundary, width)
                bit += hung + 1
            pair = (run, rest)
            for d in needs:
                pushed = unions[d]
                if not pushed:
                    unions[d] = pair
                elif type(pushed) is int:
                    unions[d] = (run, rest | pushed >> run)
                else:
                    m, other = pushed
                    if m == run:
                        unions[d] = (run, rest | other)
                    elif m < run:
                        unions[d] = (run, rest | other >> (run - m))
                    else:
                        unions[d] = (m, other | rest >> (m - run))
    return 0


def _cut(bit: int, hung: int, end: int) -> int:
    """The bits `bit … bit + hung` that are in `0 … end - 1`."""
    low, high = max(bit, 0), min(bit + hung + 1, end)
    return ((1 << (high - low)) - 1) << low if low < high else 0


def _marked(  # noqa: PLR0917 - the walk's state
    starts: list[tuple[int, int, int]] | None,
    place: int,
    bit: int,
    hung: int,
    boundary: int,
    width: int,
) -> int:
    """Note the windows whose first bit the block `bit … bit + hung` holds; the next one.

    Appends `(place, bit, k * width)` to `starts` for each window `k` whose first bit
    `k * width` is in the block, and returns the last bit of the window before the next.
    """
    assert starts is not None  # (no block reaches past the boundary of a walk without)
    while boundary < bit + hung:
        starts.append((place, bit, boundary + 1))
        boundary += width
    return boundary


def _bits_alive(unions: list[int | tuple[int, int]]) -> tuple[int, int]:
    """How many distinct bitsets the given unions (none of them 0) hold, and their bits.

    (Many steps may hold the same bitset: the first push of one shares it.)
    """
    sets = [union if isinstance(union, int) else union[1] for union in unions]
    distinct = list({id(bits): bits for bits in sets}.values())
    return len(distinct), sum(map(int.bit_length, distinct))


_ALIVE_BITS: Final = 1 << 32
"""The most bits (512 MiB) the bitsets alive at once may hold before windows are used.

(See `_count_by_bitsets`; module names so that tests can make them small.)
"""
_LEAST_WINDOW: Final = 1 << 12
"""The fewest bits a window holds: below it, the Python of a walk per window dominates."""
_LOOK_EVERY: Final = 1 << 10
"""How often, in steps walked, a walk bounds the bits its unions hold (steps left to walk
× bits given); past `_ALIVE_BITS` it weighs them (`_bits_alive`), no more often than once
per 16 steps left."""


@final
class GraphBuilder:
    """Build a [`Graph`][exegraph_trio.Graph] a step at a time, or with decorators.

    ```python
    builder = GraphBuilder()

    @builder.step()
    async def fetch() -> None: ...

    @builder.step(depends_on=["fetch"], tags=["ci"])
    async def build() -> str: ...

    @builder.step(inputs={"image": "build"}, retry=Retry(attempts=3))
    async def deploy(image: str) -> None: ...

    graph = builder.build()
    ```

    `add_step` refuses a non-step or a repeated name at once; dependencies are checked by
    `build`, so steps may be added in any order.
    """

    def __init__(self) -> None:
        self._steps: dict[str, Step] = {}

    def __len__(self) -> int:
        return len(self._steps)

    def __contains__(self, name: object) -> bool:
        return name in self._steps

    def add_step(self, step: Step) -> Step:
        """Add `step` and return it.

        Raises:
            TypeError: `step` is not a `Step` (for example `None`).
            DuplicateStepError: a step of that name was already added.
        """
        if not isinstance(step, Step):
            raise TypeError(f"add_step takes a Step, not {type(step).__name__}: {step!r}")
        if step.name in self._steps:
            raise DuplicateStepError([step.name])
        self._steps[step.name] = step
        return step

    @overload
    def step(self, action: A, /) -> A: ...

    @overload
    def step(
        self,
        action: None = None,
        /,
        *,
        name: str | None = None,
        depends_on: Iterable[str] = (),
        tags: Iterable[str] = (),
        timeout: float | None = None,
        inputs: Mapping[str, str] | None = None,
        retry: Retry | None = None,
        trigger_rule: TriggerRule = TriggerRule.ALL_SUCCESS,
        pools: Iterable[str] | Mapping[str, int] | None = None,
    ) -> Callable[[A], A]: ...

    def step(
        self,
        action: Any = None,
        /,
        *,
        name: str | None = None,
        depends_on: Iterable[str] = (),
        tags: Iterable[str] = (),
        timeout: float | None = None,
        inputs: Mapping[str, str] | None = None,
        retry: Retry | None = None,
        trigger_rule: TriggerRule = TriggerRule.ALL_SUCCESS,
        pools: Iterable[str] | Mapping[str, int] | None = None,
    ) -> Any:
        """Decorate an async function to add it as a step, named after the function.

        Use it bare (`@builder.step`) or called (`@builder.step(depends_on=[...])`); the
        function is returned unchanged, so it can still be called directly.

        Args:
            action: the function, when used bare.
            name: the step's name (default: the function's `__name__`).
            depends_on: as for [`Step`][exegraph_trio.Step].
            tags: as for `Step`.
            timeout: as for `Step`.
            inputs: as for `Step`: keyword argument -> step name whose value it gets.
            retry: as for `Step`.
            trigger_rule: as for `Step`.
            pools: as for `Step`: the pools the step takes a slot of (names, or name ->
                slots).

        Raises:
            TypeError: as for `Step`, or the decorated object has no `__name__` and no
                `name=` was given.
            DuplicateStepError: a step of that name was already added.
        """

        def decorate(action: Action) -> Action:
            self.add_step(
                Step(
                    _callable_name(action) if name is None else name,
                    action,
                    depends_on=depends_on,
                    tags=tags,
                    timeout=timeout,
                    inputs=inputs,
                    retry=retry,
                    trigger_rule=trigger_rule,
                    pools=pools,
                )
            )
            return action

        if action is not None:
            return decorate(action)
        return decorate

    def build(self) -> Graph:
        """Validate every step added so far and return the graph (see `Graph` for errors)."""
        return Graph(self._steps.values())


def _callable_name(action: object) -> str:
    name = getattr(action, "__name__", None)
    if not isinstance(name, str):
        raise TypeError(f"cannot name a step after {action!r}; pass name= to step()")
    return name
