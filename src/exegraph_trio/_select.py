"""Selecting part of a graph: the selector language behind `Graph.select`.

A selector is terms separated by spaces or commas. Each term is a step-name glob or
`tag:GLOB`, with an optional trailing `+` (and every transitive dependent of what it
matched) and an optional leading `!` (remove what it matches, after everything else):

```text
selector := term ((" " | ",")+ term)*
term     := ["!"] ("tag:" GLOB | GLOB) ["+"]
```

Everything works on the graph's integer adjacency (`Graph._deps`, `Graph._dependents`) with
one mark per step, so a selection costs O(V+E) plus the terms' matching (a literal name or
tag is looked up; a glob tests every name, or every distinct tag, once), and walks chains
of any length without recursion. The result is assembled from the parent's own tables (positions
renumbered, its topological order filtered) instead of being validated again: a part of a
valid graph, with the edges to the steps left out dropped, is a valid graph.
"""

from __future__ import annotations

import fnmatch
import operator
import re
from collections.abc import Callable, Collection, Iterable, Sequence
from itertools import accumulate, chain, compress
from typing import TYPE_CHECKING, Final, TypeAlias, final

import attrs

from ._errors import MAX_SUGGESTED, close_names, did_you_mean
from ._step import Step

if TYPE_CHECKING:
    from ._graph import Graph

__all__ = ["Term", "parse_selector", "select_subgraph"]

_TERMS: Final = re.compile(r"[^\s,]+")
_WILDCARDS: Final = frozenset("*?[")
_TAG: Final = "tag:"
_LISTED: Final = 10
"""How many offending pairs an error message lists before "and N more"."""

_GRAPH_FIELDS: Final = ("steps", "_index", "_deps", "_dependents", "_order", "_lazy")
"""The fields of `Graph` that `_assemble` fills in; any other layout is built with `Graph()`."""

_Edges: TypeAlias = Sequence[Sequence[int]]


@final
@attrs.frozen
class Term:
    """One term of a selector, parsed.

    Attributes:
        text: the term as written (`"!tag:db+"`).
        glob: the glob it matches names or tags with (`"db"`).
        tag: whether it matches tags (`tag:GLOB`) rather than step names.
        dependents: whether it also takes every transitive dependent (a trailing `+`).
        remove: whether it removes what it matches (a leading `!`).
    """

    text: str
    glob: str
    tag: bool
    dependents: bool
    remove: bool

    @classmethod
    def parse(cls, text: str) -> Term:
        """Read one term (`text` holds no space or comma).

        Raises:
            ValueError: nothing is left to match once `!`, `tag:` and `+` are taken off.
        """
        glob = text
        remove = glob.startswith("!")
        if remove:
            glob = glob[1:]
        dependents = glob.endswith("+")
        if dependents:
            glob = glob[:-1]
        tag = glob.startswith(_TAG)
        if tag:
            glob = glob[len(_TAG) :]
        if not glob:
            raise ValueError(
                f"selector term {text!r} has nothing to match; write a step-name glob or "
                f"tag:GLOB, optionally with a leading '!' or a trailing '+', like '!tag:slow'"
            )
        return cls(text, glob, tag, dependents, remove)

    def spelled(self, glob: str, *, tag: bool) -> str:
        """This term with another glob (for suggestions), its `!` and `+` kept."""
        prefix = ("!" if self.remove else "") + (_TAG if tag else "")
        return f"{prefix}{glob}{'+' if self.dependents else ''}"


def parse_selector(selector: object) -> tuple[Term, ...]:
    """The terms of `selector`, in the order written.

    Raises:
        TypeError: `selector` is not a `str`.
        ValueError: it has no term, or a term has nothing to match.
    """
    if not isinstance(selector, str):
        hint = ""
        if isinstance(selector, Iterable) and not isinstance(selector, (bytes, bytearray)):
            hint = "; to select several steps, join their names: ' '.join(names)"
        raise TypeError(
            "select takes a selector string like 'build+ tag:deploy !lint', not "
            f"{type(selector).__name__}: {selector!r}{hint}"
        )
    texts = _TERMS.findall(selector)
    if not texts:
        raise ValueError(
            f"empty selector {_echo(selector)}: give step-name globs or tag:GLOB terms separated "
            "by spaces or commas, like 'build+ tag:deploy !lint'"
        )
    return tuple(Term.parse(text) for text in texts)


def _matcher(glob: str) -> Callable[[str], object]:
    """A case-sensitive `fnmatch` test for `glob`, compiled once for every name."""
    return re.compile(fnmatch.translate(glob)).match


@final
class _Matcher:
    """Finds the positions of the steps a term matches."""

    __slots__ = ("_carriers", "_index", "_steps")

    def __init__(self, graph: Graph) -> None:
        self._steps = graph.steps
        self._index = graph._index
        self._carriers: dict[str, list[int]] | None = None

    @property
    def carriers(self) -> dict[str, list[int]]:
        """Every tag of the graph: the positions of the steps carrying it (made once)."""
        if self._carriers is None:
            carriers: dict[str, list[int]] = {}
            for i, tags in enumerate(map(operator.attrgetter("tags"), self._steps)):
                for tag in tags:
                    carriers.setdefault(tag, []).append(i)
            self._carriers = carriers
        return self._carriers

    @property
    def tags(self) -> Collection[str]:
        """Every tag of the graph."""
        return self.carriers.keys()

    def matches(self, term: Term) -> list[int]:
        """The positions of the steps `term` matches, without its `+`, in graph order.

        A literal term is looked up (a name in the graph's index, a tag in `carriers`); a
        glob is tested against every name, or every distinct tag, once.
        """
        glob = term.glob
        literal = _WILDCARDS.isdisjoint(glob)
        if term.tag:
            carriers = self.carriers
            if literal:
                return list(carriers.get(glob, ()))
            wanted = list(filter(_matcher(glob), carriers))
            if len(wanted) == 1:
                return list(carriers[wanted[0]])
            # (a step carrying several of them is listed once, in graph order)
            return sorted(set(chain.from_iterable(map(carriers.__getitem__, wanted))))
        index = self._index
        if literal:
            return [index[glob]] if glob in index else []
        return [index[name] for name in filter(_matcher(glob), index)]

    def suggestions(self, term: Term) -> tuple[str, ...]:
        """Terms like `term` that would match something, as the user would write them.

        A name glob that matches a tag suggests `tag:GLOB` first, and the other way round;
        a removal term that is, as written, a step's name (`!notify`) suggests the glob
        that selects that step (`?notify`).
        """
        other = attrs.evolve(term, tag=not term.tag)
        first = (term.spelled(term.glob, tag=other.tag),) if self.matches(other) else ()
        written = term.spelled(term.glob, tag=term.tag)
        selects_it = term.remove and written in self._index
        if selects_it:
            # A step whose name is the term as written (`!notify`, `!x+`): the glob that
            # selects it, rather than a removal term that would remove it.
            first = (*first, _as_glob(written, tag=False))
        there: Iterable[str] = self.tags if term.tag else self._index
        close: Iterable[str] = close_names(term.glob, list(there))
        if selects_it:
            close = [name for name in close if name != written]
        return (
            *first,
            *(term.spelled(_as_glob(name, tag=term.tag), tag=term.tag) for name in close),
        )


def _as_glob(name: str, *, tag: bool) -> str:
    """A glob that matches `name`, written so that it parses as one selector term.

    `*`, `?` and `[` become `[*]`, `[?]`, `[[]`; `+` becomes `[+]`; a space, a comma or
    a leading `!` becomes `?` (the escapes `Graph.select` documents); a step name
    starting with `tag:` becomes `[t]ag:…`.
    """
    out = []
    for k, char in enumerate(name):
        if char in "*?[+":
            out.append(f"[{char}]")
        elif char.isspace() or char == "," or (char == "!" and k == 0):
            out.append("?")
        else:
            out.append(char)
    glob = "".join(out)
    return "[t]" + glob[1:] if not tag and glob.startswith(_TAG) else glob


def _mark(
    n: int, found: Iterable[tuple[Term, list[int]]], order: Sequence[int], dependents: _Edges
) -> bytearray:
    """One byte per step: 1 for every step the terms match (with the dependents of `+`).

    `order` is a topological order of the graph, dependencies first.
    """
    mark = bytearray(n)
    spread = False
    for term, positions in found:
        if term.dependents:
            spread = True
            for i in positions:
                mark[i] = 1
    # Before the plain matches are marked, which must not spread to their dependents.
    if spread:
        _spread(mark, order, dependents)
    for term, positions in found:
        if not term.dependents:
            for i in positions:
                mark[i] = 1
    return mark


def _spread(mark: bytearray, order: Sequence[int], edges: _Edges) -> None:
    """Mark every step reachable along `edges` from the marked ones.

    `order` puts each step after every step with an edge to it, so one sweep is enough:
    `compress` reads each step's mark when it gets to it, after the steps before it
    have marked it or not. No recursion, no stack; O(V) in C plus O(E) of marked steps.
    """
    for i in compress(order, map(mark.__getitem__, order)):
        for j in edges[i]:
            mark[j] = 1


def _listed(items: list[str]) -> str:
    more = len(items) - _LISTED
    return "; ".join(items[:_LISTED]) + (f"; and {more} more" if more > 0 else "")


def _echo(selector: str) -> str:
    """The selector as an error quotes it: its first 200 characters (a long one is cut)."""
    return repr(selector) if len(selector) <= 200 else f"{selector[:200]!r}…"


def _no_match(selector: str, unmatched: list[Term], matcher: _Matcher, n: int) -> ValueError:
    if n == 0:
        return ValueError(f"selector {_echo(selector)} selects nothing: the graph has no steps")
    parts = []
    for k, term in enumerate(unmatched):
        # Each look for close names compares with every name of the graph: keep it to a few.
        hint = did_you_mean(matcher.suggestions(term)) if k < MAX_SUGGESTED else ""
        what = "no tag of any step" if term.tag else "no step name"
        parts.append(f"{term.text!r} matches {what}{hint}")
    return ValueError(f"selector {_echo(selector)}: {_listed(parts)}")


def select_subgraph(graph: Graph, selector: str, *, with_dependencies: bool) -> Graph:
    """`graph.select(selector, with_dependencies=...)`: see `Graph.select`."""
    terms = parse_selector(selector)
    flag: object = with_dependencies
    if not isinstance(flag, bool):
        raise TypeError(
            f"with_dependencies must be True or False, not {type(flag).__name__}: {flag!r}"
        )
    steps, deps, dependents = graph.steps, graph._deps, graph._dependents
    n = len(steps)
    matcher = _Matcher(graph)
    found = [(term, matcher.matches(term)) for term in terms]
    unmatched = [term for term, positions in found if not positions]
    if unmatched:
        raise _no_match(selector, unmatched, matcher, n)

    adding = [(term, positions) for term, positions in found if not term.remove]
    removing = [(term, positions) for term, positions in found if term.remove]
    order = graph._order
    if adding:
        keep = _mark(n, adding, order, dependents)
        if with_dependencies:
            _spread(keep, order[::-1], deps)
    else:  # only removals: from the whole graph
        keep = bytearray(b"\x01") * n
    if removing:
        removed = _mark(n, removing, order, dependents)
        gone = list(compress(range(n), removed))
        if with_dependencies:
            _check_removals(graph, selector, gone, removed, keep)
        for i in gone:
            keep[i] = 0

    kept = keep.count(1)
    if kept == 0:
        removals = ", ".join(repr(term.text) for term, _ in removing)
        what = "every step the other terms select" if adding else "every step of the graph"
        verb = "removes" if len(removing) == 1 else "remove"
        raise ValueError(f"selector {_echo(selector)} selects no step: {removals} {verb} {what}")
    if kept == n:  # nothing left out, so no edge dropped either
        return graph
    return _assemble(graph, keep, cut=not with_dependencies)


def _check_removals(
    graph: Graph, selector: str, gone: list[int], removed: bytearray, keep: bytearray
) -> None:
    """Refuse to remove a step that a kept step depends on (`keep` is dependency-closed).

    `gone` lists the steps marked in `removed`. On a path from a kept step to a removed
    one, the first removed step is a direct dependency of a kept one: looking at direct
    dependents is enough.
    """
    steps, dependents = graph.steps, graph._dependents
    pairs = [
        (steps[j].name, steps[i].name)
        for i in gone
        if keep[i]
        for j in dependents[i]
        if keep[j] and not removed[j]
    ]
    if pairs:
        listed = _listed([f"{kept!r} depends on {dep!r}" for kept, dep in pairs])
        plus = (
            f"selector {_echo(selector)} would remove steps that kept steps need: {listed}; "
            "remove their dependents too (a trailing '+', like "
            f"'!{_as_glob(pairs[0][1], tag=False)}+')"
        )
        by_name = graph._index
        taken = [
            f"{kept!r} takes input {keyword!r} from {dep!r}"
            for kept, dep in pairs
            for keyword, name in steps[by_name[kept]].inputs.items()
            if name == dep
        ]
        if taken:  # (dropping those dependencies would leave the inputs without a value)
            other = (
                "; passing with_dependencies=False would not do either, as kept steps take "
                f"their values: {_listed(taken)}"
            )
            raise RemovalError(plus + other, plus)
        raise RemovalError(
            f"{plus}, or pass with_dependencies=False to drop those dependencies instead", plus
        )


class RemovalError(ValueError):
    """A selector removes a step that a kept step needs (a `ValueError`, as SPEC 2.2 says).

    Its message ends with the two ways out; `without_keyword` is the message without the
    second (`with_dependencies=False`), for the command line, which has no such flag.
    (Pickled, it is made again from its message, and `without_keyword` comes back with
    its `__dict__`, as any exception's attributes do.)
    """

    def __init__(self, message: str, without_keyword: str | None = None) -> None:
        super().__init__(message)
        self.without_keyword = message if without_keyword is None else without_keyword


def _assemble(graph: Graph, keep: bytearray, *, cut: bool) -> Graph:
    """The graph of the steps marked in `keep`, in their order, from `graph`'s tables.

    With `cut`, the dependencies on steps left out are dropped (the steps concerned are
    copied with a shorter `depends_on`); otherwise every kept step's dependencies are kept
    too. Most of the work is done by `map`, `filter` and `compress`, in C.

    Raises:
        ValueError: with `cut`, a kept step takes a step left out as an input.
    """
    steps, deps, dependents = graph.steps, graph._deps, graph._dependents
    kept = keep.__getitem__
    # pos[i]: the position of step i in the result, when it is kept.
    pos = list(accumulate(keep, initial=-1))
    del pos[0]
    at = pos.__getitem__
    new_steps = list(compress(steps, keep))
    kept_deps = list(compress(deps, keep))
    if cut:
        lost_inputs: list[str] = []
        for k, step_deps in enumerate(kept_deps):
            if step_deps and not all(map(kept, step_deps)):
                step = new_steps[k]
                flags = tuple(map(kept, step_deps))  # aligned with step.depends_on
                if step.inputs:
                    left_out = set(compress(step.depends_on, map(operator.not_, flags)))
                    lost_inputs += [
                        f"{step.name!r} takes input {keyword!r} from {name!r}"
                        for keyword, name in step.inputs.items()
                        if name in left_out
                    ]
                new_steps[k] = _with_depends_on(step, tuple(compress(step.depends_on, flags)))
                kept_deps[k] = tuple(compress(step_deps, flags))
        if lost_inputs:
            raise ValueError(
                "with_dependencies=False leaves out steps whose values kept steps take as "
                f"inputs: {_listed(lost_inputs)}; select those steps too, or keep "
                "dependencies (with_dependencies=True)"
            )
    if tuple(field.name for field in attrs.fields(type(graph))) != _GRAPH_FIELDS:
        return type(graph)(new_steps)  # a layout this module does not know: validate
    index = dict(zip(compress(graph._index, keep), range(len(new_steps)), strict=True))
    new_deps = tuple([tuple(map(at, d)) if d else () for d in kept_deps])
    new_dependents = tuple(
        [list(map(at, filter(kept, d))) if d else [] for d in compress(dependents, keep)]
    )
    # Kept steps in the parent's topological order are in a topological order of the part.
    # Kahn's order, as ever: critical-path ties go by it (`Graph._places`).
    order = tuple(map(at, filter(kept, graph._kahn_order())))
    result = object.__new__(type(graph))
    set_ = object.__setattr__
    set_(result, "steps", tuple(new_steps))
    set_(result, "_index", index)
    set_(result, "_deps", new_deps)
    set_(result, "_dependents", new_dependents)
    set_(result, "_order", order)
    set_(result, "_lazy", type(graph._lazy)())
    return result


_STEP_FIELDS: Final = tuple(field.name for field in attrs.fields(Step))


def _with_depends_on(step: Step, depends_on: tuple[str, ...]) -> Step:
    """A copy of `step` depending on `depends_on`, a subset of its own dependencies.

    The same as `attrs.evolve(step, depends_on=depends_on)` at a third of the cost: a step
    was checked when it was made, and fewer dependencies (none of them an input's, which
    `_assemble` refused) keep it valid, so `Step.__new__` need not check it again.
    """
    copy = object.__new__(Step)
    set_ = object.__setattr__
    for name in _STEP_FIELDS:
        set_(copy, name, getattr(step, name))
    set_(copy, "depends_on", depends_on)
    return copy
