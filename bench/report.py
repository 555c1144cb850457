"""Turn measurements into the Markdown report: the targets of issue 8, then every table."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Final

from building import BuildTimes
from lifecycle import RUN_INPUTS, RUN_RETRY, VALUE_SIZE, ValueMemory
from makespan import MakespanRow
from memory import MODES, MemoryResult
from overhead import Cell
from runners import ALL, PEERS, TIMINGS, Runner

TARGET_SHAPES: Final = ("chain", "wide", "layered", "random")
TARGET_SIZES: Final = (10_000, 100_000)
LIFECYCLE_SIZES: Final = (10_000,)
LIFECYCLE_LENGTH: Final = 1_000
LARGE: Final = 100_000
MIB: Final = 1024 * 1024
KIB: Final = 1024
ACTION_TITLES: Final = {
    "noop": "no-op actions",
    "yield": "actions that yield once",
}


@dataclass
class Results:
    """Everything one run of the suite measured.

    Attributes:
        meta: where and how it ran (versions, CPUs, sizes, repeats, durations).
        cells: per-step overhead cells.
        builds: graph-building times.
        memory: bytes per step.
        makespan: makespan quality rows.
        lifecycle: per-step cells of the step lifecycle (`run`, `run+retry`, `run+inputs`).
        values: peak memory of chains of 1 MiB values.
        verified: `runner shape[size] bound` for every verification that passed.
    """

    meta: dict[str, str] = field(default_factory=dict)
    cells: list[Cell] = field(default_factory=list)
    builds: list[BuildTimes] = field(default_factory=list)
    memory: list[MemoryResult] = field(default_factory=list)
    makespan: list[MakespanRow] = field(default_factory=list)
    lifecycle: list[Cell] = field(default_factory=list)
    values: list[ValueMemory] = field(default_factory=list)
    verified: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Target:
    """One target of the issue and how the last run did.

    Attributes:
        text: the target as the issue states it.
        measured: the decisive number (the worst case), with where it happened.
        met: `True`, `False`, or `None` when the run did not measure it.
        partial: judged on part of what the target covers (a `--quick` run, chosen sizes
            or shapes): the verdict is indicative only.
        impossible: every cell that missed the target is one where the least runner
            keeping part 1, timed in the same run, missed it too (or, with `by_design`,
            the least runner built as issue 8 asks).
        by_design: some of those cells are missed by the least runner built as issue 8
            asks (`required+core`), not by the least runner keeping part 1.
        with_checks: some of those cells are missed by the least build refusing what the
            spec has a build refuse (`checked`), not by the least build (`least`).
    """

    text: str
    measured: str
    met: bool | None
    partial: bool = False
    impossible: bool = False
    by_design: bool = False
    with_checks: bool = False

    @property
    def verdict(self) -> str:
        """`met`, `**not met**`, `impossible where not met` or `not measured`.

        Marked when only partly measured. `impossible where not met`: every cell that
        missed the target is one where the least runner keeping part 1 (`least.py`),
        timed in the same run, misses it too, or (said so) the least runner built as
        issue 8 asks.
        """
        word = {True: "met", False: "**not met**", None: "not measured"}[self.met]
        if self.met is False and self.impossible:
            word = "impossible where not met"
            if self.by_design:
                word += " (on some cells, for a runner built as issue 8 asks)"
            if self.with_checks:
                word += " (on some cells, for a build refusing what the spec has it refuse)"
        return f"{word} (partly measured)" if self.partial and self.met is not None else word


def bound_label(cell: Cell) -> str:
    """`4`, or `n` when the bound is the number of steps (unbounded)."""
    return "n" if cell.limit >= cell.size else str(cell.limit)


def where(cell: Cell) -> str:
    """`shape 10⁴, bound 4, yield`: a cell's coordinates for a target line."""
    return f"{cell.shape} {size_label(cell.size)}, bound {bound_label(cell)}, {cell.action}"


def size_label(n: int) -> str:
    """`10⁴` for 10000, else the number with thin separators."""
    powers = {10**k: f"10{'⁰¹²³⁴⁵⁶⁷⁸⁹'[k]}" for k in range(2, 8)}
    return powers.get(n, f"{n:,}")


def _fmt(x: float, digits: int = 2) -> str:
    return "–" if math.isnan(x) else f"{x:.{digits}f}"


def _partial(
    sizes: Iterable[int],
    shapes: Iterable[str],
    want_shapes: Sequence[str],
    want_sizes: Sequence[int] = TARGET_SIZES,
) -> bool:
    """Whether the measured sizes and shapes miss some of the target's."""
    return not (set(want_sizes) <= set(sizes) and set(want_shapes) <= set(shapes))


def _extreme(
    text: str,
    cells: Sequence[Cell],
    value: Callable[[Cell], float],
    *,
    worst: str,
    ok: Callable[[float], bool],
    unit: str = "×",
    shapes: Sequence[str] = TARGET_SHAPES,
    actions: Sequence[str] = tuple(TIMINGS),
    sizes: Sequence[int] = TARGET_SIZES,
    least: Callable[[Cell], float] | None = None,
    least_key: str = "",
    design: Callable[[Cell], float] | None = None,
    design_key: str = "",
) -> Target:
    """A target judged on the worst `value` over `cells` (`worst`: `max` or `min`).

    `least`, when given, is the same measure of the least runner keeping part 1
    (`least_key`, timed in the same cells): the cells that miss the target are told apart
    by whether it misses the target too there (then no runner keeping part 1 is known to
    meet it: impossible, measured) or leaves room. `design`, when given, is the same
    measure of the least runner built as issue 8 asks (`design_key`: its decisions in a
    sans-IO core): a cell the least runner leaves room on but this one misses too is
    impossible for a runner built that way, and told apart as such.
    """
    found = [(value(c), where(c), c) for c in cells if c.shape in shapes]
    found = [f for f in found if not math.isnan(f[0])]
    if not found:
        return Target(text, "not run", None)
    pick = max if worst == "max" else min
    x, at, _ = pick(found, key=lambda f: f[0])
    partial = _partial((c.size for _, _, c in found), (c.shape for _, _, c in found), shapes, sizes)
    partial |= not set(actions) <= {c.action for _, _, c in found}
    measured = f"worst {x:.2f}{unit} ({at})"
    if least is None or ok(x):
        return Target(text, measured, ok(x), partial)
    # Where it is missed, is it missed by the least runner keeping part 1 too?
    missed = [(v, a, c, least(c)) for v, a, c in found if not ok(v)]
    bounded = [(v, a, lv) for v, a, _, lv in missed if not math.isnan(lv) and not ok(lv)]
    open_ = [(v, a, c) for v, a, c, lv in missed if math.isnan(lv) or ok(lv)]
    measured += f"; missed on {len(missed)} of {len(found)} cells"
    if bounded:
        measured += (
            f"; the least runner keeping part 1 ({least_key}) misses it too on "
            f"{len(bounded)} of them (impossible there): "
            + ", ".join(f"{a}: {lv:.2f}{unit} against {v:.2f}{unit}" for v, a, lv in bounded)
        )
    by_design: list[tuple[float, str, float]] = []
    if design is not None and open_:
        built = [(v, a, c, design(c)) for v, a, c in open_]
        by_design = [(v, a, dv) for v, a, _, dv in built if not math.isnan(dv) and not ok(dv)]
        open_ = [(v, a, c) for v, a, c, dv in built if math.isnan(dv) or ok(dv)]
        if by_design:
            measured += (
                f"; of the others, the least runner built as issue 8 asks ({design_key}) "
                f"misses it too on {len(by_design)} (impossible for that design): "
                + ", ".join(f"{a}: {dv:.2f}{unit} against {v:.2f}{unit}" for v, a, dv in by_design)
            )
    if open_:
        y, y_at, _ = pick(open_, key=lambda f: f[0])
        measured += f"; where it leaves room ({len(open_)} cells), worst {y:.2f}{unit} ({y_at})"
    return Target(text, measured, False, partial, impossible=not open_, by_design=bool(by_design))


def _best_trio_peer(cell: Cell, base: str) -> float:
    """`min(peer time ÷ base time)` over the hand-written Trio peers timed in `cell`."""
    ratios = [cell.ratio(p.key, base) for p in PEERS if p.trio_peer and cell.has(p.key)]
    return min(ratios) if len(ratios) == sum(p.trio_peer for p in PEERS) else math.nan


def targets(results: Results) -> list[Target]:
    """Every target of issue 8, judged on `results` (worst case over what was measured)."""
    found: list[Target] = []
    for action in TIMINGS:
        cells = [c for c in results.cells if c.action == action]
        found.append(
            _extreme(
                f"`run` of a prebuilt graph ≤ 1.3× the floor, {ACTION_TITLES[action]}, on "
                "chain, wide, layered, random at 10⁴ and 10⁵",
                cells,
                lambda c: c.ratio("run", "floor"),
                worst="max",
                ok=lambda x: x <= 1.3,
                actions=(action,),
                least=lambda c: c.ratio("required", "floor"),
                least_key="`required`",
                design=lambda c: c.ratio("required+core", "floor"),
                design_key="`required+core`",
            )
        )
        found.append(
            _extreme(
                f"`run` with `step_timeout` on every step ≤ 1.3× floor+scope, "
                f"{ACTION_TITLES[action]}, same shapes and sizes",
                cells,
                lambda c: c.ratio("run+timeout", "floor+scope"),
                worst="max",
                ok=lambda x: x <= 1.3,
                actions=(action,),
                least=lambda c: c.ratio("required+timeout", "floor+scope"),
                least_key="`required+timeout`",
            )
        )

    found.append(build_target(results.builds))

    all_shapes = sorted({c.shape for c in results.cells})
    found.append(
        _extreme(
            "whole job (build + run) ≥ 1.3× faster than the best hand-written Trio runner, "
            "every shape and action kind (best Trio peer time ÷ `job` time)",
            results.cells,
            lambda c: _best_trio_peer(c, "job"),
            worst="min",
            ok=lambda x: x >= 1.3,
            shapes=all_shapes,
            least=lambda c: _best_trio_peer(c, "least"),
            least_key="the `least` job",
            design=lambda c: _best_trio_peer(c, "least+core"),
            design_key="the `least+core` job",
        )
    )
    found.append(
        _extreme(
            "yardstick, not a hard target: whole job within 1.25× of the asyncio graphlib "
            "runner (`job` time ÷ graphlib-asyncio time)",
            results.cells,
            lambda c: c.ratio("job", "graphlib-asyncio"),
            worst="max",
            ok=lambda x: x <= 1.25,
            shapes=all_shapes,
        )
    )
    found.append(memory_target(results.memory))

    overall = [row for row in results.makespan if row.family == "all"]
    if overall:
        worst_mean = max(overall, key=lambda row: row.mean)
        found.append(
            Target(
                "makespan ≤ 1.05× the lower bound on average, for P = 2, 4, 8",
                ", ".join(f"P={row.p}: {row.mean:.3f}" for row in overall),
                worst_mean.mean <= 1.05,
            )
        )
        worse = sum(row.worse for row in overall)
        count = sum(row.count for row in overall)
        found.append(
            Target(
                "makespan never worse than the FIFO graphlib runner",
                f"worse on {worse} of {count} instances "
                f"({', '.join(f'P={row.p}: {row.worse}/{row.count}' for row in overall)})",
                worse == 0,
            )
        )
        worst_exact = max(overall, key=lambda row: row.exact_mean)
        found.append(
            Target(
                "with exact durations: makespan ≤ 1.01× the lower bound on average, P = 2, 4, 8",
                ", ".join(f"P={row.p}: {row.exact_mean:.4f}" for row in overall),
                worst_exact.exact_mean <= 1.01,
            )
        )
        exact_worse = sum(row.exact_worse for row in overall)
        found.append(
            Target(
                "with exact durations: worse than the FIFO graphlib runner on ≤ 2 % of instances",
                f"worse on {exact_worse} of {count} ({exact_worse / count:.1%}; "
                f"{', '.join(f'P={row.p}: {row.exact_worse}/{row.count}' for row in overall)})",
                exact_worse <= 0.02 * count,
            )
        )
    else:
        found.append(Target("makespan quality (≤ 1.05× the lower bound; vs FIFO)", "not run", None))
    return found


def build_target(builds: Sequence[BuildTimes]) -> Target:
    """`Step`s + `Graph` + priorities ≤ 1.2× the graphlib peer's build, worst case."""
    text = (
        "building (`Step`s + `Graph(...)` + priorities) ≤ 1.2× the graphlib peer's build "
        "(its actions + `TopologicalSorter`, every node added, `prepare()`), every shape"
    )
    if not builds:
        return Target(text, "not run", None)
    worst = max(builds, key=lambda b: b.ratio)
    partial = not set(TARGET_SIZES) <= {b.size for b in builds}
    missed = [b for b in builds if b.ratio > 1.2]
    over = sorted({f"{b.shape} {size_label(b.size)}" for b in missed if b.least_ratio > 1.2})
    bound = f"; the `least` build is over 1.2× too on {', '.join(over)}" if over else ""
    # Where `least` (no check at all) is not, is `checked` (the spec's checks) over too?
    checked_over = sorted(
        {
            f"{b.shape} {size_label(b.size)}, {b.action}"
            for b in missed
            if b.least_ratio <= 1.2 < b.checked_ratio
        }
    )
    if checked_over:
        bound += (
            "; of the others, the `checked` build (`least` with the spec's checks) is over "
            f"1.2× too on {', '.join(checked_over)} (impossible for a build that refuses what "
            "the spec says a build refuses)"
        )
    open_ = [b for b in missed if b.least_ratio <= 1.2 and b.checked_ratio <= 1.2]
    if open_:
        most = max(open_, key=lambda b: b.ratio)
        bound += (
            f"; where it leaves room ({len(open_)} of {len(builds)} cells), worst "
            f"{most.ratio:.2f}× ({most.shape} {size_label(most.size)}, {most.action}; "
            f"`least` {most.least_ratio:.2f}×, `checked` {most.checked_ratio:.2f}×)"
        )
    return Target(
        text,
        f"worst {worst.ratio:.2f}× ({worst.shape} {size_label(worst.size)}, {worst.action}: "
        f"{worst.total * 1e3:.0f} ms against {worst.peer * 1e3:.0f} ms){bound}",
        worst.ratio <= 1.2,
        partial,
        impossible=not open_,
        with_checks=bool(checked_over),
    )


def memory_target(memory: Sequence[MemoryResult]) -> Target:
    """Graph + run ≤ 1 KiB per step at 10⁵ beyond the floor with as many tasks alive."""
    text = (
        "memory: graph + run ≤ 1 KiB per step at 10⁵ beyond the floor with as many tasks "
        "alive at once (every shape; `run` under the bounds n and 4, `run_with_result` under "
        "n, `run` with yielding actions under n)"
    )
    large = [m for m in memory if m.size == LARGE]
    shown, partial = (large, False) if large else (list(memory), True)
    if not shown:
        return Target(text, "not run", None)
    m = max(shown, key=lambda m: m.worst.excess)
    r = m.worst
    return Target(
        text,
        f"worst {r.excess:.0f} B/step ({m.shape} {size_label(m.size)}, {r.mode}: "
        f"{r.growth:.0f} − floor {r.floor:.0f} with {r.alive} tasks alive)",
        r.excess <= KIB,
        partial,
    )


def earlier_targets(results: Results) -> list[Target]:
    """The absolute build targets of issue 5, still reported."""
    builds = {(b.shape, b.size): b for b in results.builds if b.action == "noop"}
    memory = {(m.shape, m.size): m for m in results.memory}
    found = []
    random_build = builds.get(("random", LARGE))
    found.append(
        Target(
            "`Graph(...)` + validation + all priorities, 10⁵-step random DAG ≤ 1 s",
            "not run"
            if random_build is None
            else f"{random_build.graph_and_priority:.3f} s "
            f"(Graph {random_build.graph:.3f} s + priorities {random_build.priority:.3f} s)",
            None if random_build is None else random_build.graph_and_priority <= 1.0,
        )
    )
    chain_build, chain_memory = builds.get(("chain", LARGE)), memory.get(("chain", LARGE))
    if chain_build is None or chain_memory is None:
        found.append(Target("10⁵-step chain: build ≤ 1 s and ≤ 100 MiB peak", "not run", None))
    else:
        peak = chain_memory.build * LARGE / MIB
        found.append(
            Target(
                "10⁵-step chain: build ≤ 1 s and ≤ 100 MiB peak",
                f"{chain_build.graph_and_priority:.3f} s, {peak:.1f} MiB traced peak "
                "(Steps included)",
                chain_build.graph_and_priority <= 1.0 and peak <= 100,
            )
        )
    return found


def lifecycle_targets(results: Results) -> list[Target]:
    """The performance targets of issue 10 (the step lifecycle), judged on the worst case."""
    cells = results.lifecycle
    return [
        _extreme(
            "every step with `Retry(attempts=3)` (through `RunOptions(retry=...)`) but never "
            "failing ≤ 1.10× the same run without (`run+retry ÷ run`, paired), chain, wide, "
            "layered, random at 10⁴, bounds 4 and n, both action kinds",
            cells,
            lambda c: c.ratio(RUN_RETRY.key, "run"),
            worst="max",
            ok=lambda x: x <= 1.10,
            sizes=LIFECYCLE_SIZES,
        ),
        _extreme(
            "`inputs` on every edge of the 10⁴-step random DAG (values passed, "
            "`keep_values=False`) ≤ 1.25× the run without (`run+inputs ÷ run`, paired), "
            "bounds 4 and n, both action kinds",
            cells,
            lambda c: c.ratio(RUN_INPUTS.key, "run"),
            worst="max",
            ok=lambda x: x <= 1.25,
            shapes=("random",),
            sizes=LIFECYCLE_SIZES,
        ),
        values_target(results.values),
    ]


def values_target(values: Sequence[ValueMemory]) -> Target:
    """Peak memory flat in the chain's length when values are released as consumed."""
    text = (
        "peak memory flat with a 1 MiB value per step on a 10³-step chain, "
        "`keep_values=False` (released as consumed): the run's traced peak grows by less "
        "than one value from the shortest chain measured to the 10³-step one"
    )
    released = sorted((v for v in values if not v.keep_values), key=lambda v: v.length)
    if len(released) < 2:
        return Target(text, "not run", None)
    short, long = released[0], released[-1]
    growth = long.peak - short.peak
    return Target(
        text,
        f"{short.peak / MIB:.2f} MiB at {short.length} steps, {long.peak / MIB:.2f} MiB at "
        f"{long.length}: +{growth / MIB:.2f} MiB ({growth / VALUE_SIZE:.2f} values, "
        f"{growth / (long.length - short.length):.0f} B per added step)",
        growth < VALUE_SIZE,
        long.length < LIFECYCLE_LENGTH,
    )


def lifecycle_tables(cells: Sequence[Cell], values: Sequence[ValueMemory]) -> list[str]:
    """The lifecycle's per-step cells and the peak memory of values."""
    lines: list[str] = []
    if cells:
        lines += [
            "### Step lifecycle: per-step cost against the same run without "
            "(medians of paired repeats)",
            "",
            "`run`: the prebuilt graph, no lifecycle feature (as in the overhead section); "
            "`run+retry`: the same graph with `RunOptions(retry=Retry(attempts=3))`, no step "
            "failing; `run+inputs`: the same shape with `inputs` on every edge and "
            "`keep_values=False`. Ratios to `run`, paired within each repeat.",
            "",
        ]
        lines += _table(
            [
                "N",
                "shape",
                "bound",
                "actions",
                "run µs/step",
                "run+retry µs/step",
                "run+inputs µs/step",
                "run+retry ÷ run",
                "run+inputs ÷ run",
            ],
            (
                [
                    size_label(c.size),
                    c.shape,
                    bound_label(c),
                    c.action,
                    _fmt(c.per_step_us("run"), 1),
                    _fmt(c.per_step_us(RUN_RETRY.key), 1),
                    _fmt(c.per_step_us(RUN_INPUTS.key), 1),
                    _fmt(c.ratio(RUN_RETRY.key, "run")),
                    _fmt(c.ratio(RUN_INPUTS.key, "run")),
                ]
                for c in cells
            ),
        )
    if values:
        shortest = min(v.length for v in values)
        base = {v.keep_values: v.peak for v in values if v.length == shortest}
        lines += [
            *([""] if lines else []),
            "### Step lifecycle: peak memory of a chain of 1 MiB values "
            "(each figure from a fresh process)",
            "",
            "Each step returns a new 1 MiB `bytes` and takes the previous step's value as an "
            "input. The graph is built first, then `tracemalloc` traces one run: its peak, "
            "and its growth per step beyond the shortest chain's.",
            "",
        ]
        lines += _table(
            ["steps", "keep_values", "traced peak MiB", "in values", "growth per added step"],
            (
                [
                    str(v.length),
                    str(v.keep_values),
                    _fmt(v.peak / MIB),
                    _fmt(v.values, 1),
                    "–"
                    if v.length == shortest
                    else f"{(v.peak - base[v.keep_values]) / (v.length - shortest):,.0f} B",
                ]
                for v in values
            ),
        )
    return lines


def _table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def _timed(cells: Sequence[Cell], runners: Sequence[Runner]) -> list[Runner]:
    return [r for r in runners if any(c.has(r.key) for c in cells)]


def overhead_tables(cells: Sequence[Cell]) -> list[str]:
    """The tables of one action kind.

    Costs relative to the floors, the whole job against the peers, and absolute medians.
    """
    action = cells[0].action
    shown = _timed(cells, ALL)
    exegraph = [r for r in shown if r.kind in ("exegraph", "least")]
    peers = [r for r in shown if r.kind == "peer"]
    trio_peers = [p.key for p in peers if p.trio_peer]
    least_job = any(c.has("least") for c in cells)
    core_job = any(c.has("least+core") for c in cells)

    def base(key: str) -> str:
        return "floor+scope" if key.endswith("+timeout") else "floor"

    lines = [
        f"### Per-step cost, {ACTION_TITLES[action]} (time ÷ floor time, median of paired repeats)",
        "",
        "`floor` and `floor+scope` in µs per step; every other column is a ratio to the "
        "floor running the same action (`run+timeout` to `floor+scope`): lower is better, "
        "1.00 = as cheap as a bare task. `run`, `run_with_result` and `run+timeout` run a "
        "prebuilt graph; `job` and the peers are whole jobs (what they build is inside their "
        "time). `required`, `required+timeout` and `least` are the least run and job keeping "
        "part 1 (`least.py`): where they miss a target too, it is impossible; "
        "`required+core` and `least+core` are `required` and `least` built as issue 8 asks "
        "(a sans-IO core object; `least+core` also refuses what the spec has a build refuse: "
        "`least.checked_build`): where they miss too, it is impossible for that design. "
        "`–`: not timed (see the README).",
        "",
    ]
    lines += _table(
        [
            "N",
            "shape",
            "bound",
            "width",
            "floor µs/step",
            "floor+scope µs/step",
            *(f"{r.key} ÷ {base(r.key)}" for r in exegraph),
            *(f"{r.key} ÷ floor" for r in peers),
        ],
        (
            [
                size_label(c.size),
                c.shape,
                bound_label(c),
                str(c.width),
                _fmt(c.per_step_us("floor"), 1),
                _fmt(c.per_step_us("floor+scope"), 1),
                *(_fmt(c.ratio(r.key, base(r.key))) for r in exegraph),
                *(_fmt(c.ratio(r.key, "floor")) for r in peers),
            ]
            for c in cells
        ),
    )
    lines += [
        "",
        f"### Whole job (build + run) against each peer, {ACTION_TITLES[action]} (peer time "
        "÷ `job` time, paired; > 1 means exegraph is faster)",
        "",
    ]
    lines += _table(
        [
            "N",
            "shape",
            "bound",
            "job µs/step",
            *(p.key for p in peers),
            "best Trio peer",
            *(["best Trio peer ÷ `least`"] if least_job else []),
            *(["best Trio peer ÷ `least+core`"] if core_job else []),
        ],
        (
            [
                size_label(c.size),
                c.shape,
                bound_label(c),
                _fmt(c.per_step_us("job"), 1),
                *(_fmt(c.ratio(p.key, "job")) for p in peers),
                _fmt(min((c.ratio(k, "job") for k in trio_peers), default=math.nan)),
                *([_fmt(_best_trio_peer(c, "least"))] if least_job else []),
                *([_fmt(_best_trio_peer(c, "least+core"))] if core_job else []),
            ]
            for c in cells
        ),
    )
    lines += [
        "",
        f"### Absolute medians, {ACTION_TITLES[action]} (µs per step; this machine is noisy, "
        "compare ratios)",
        "",
    ]
    lines += _table(
        ["N", "shape", "bound", *(r.key for r in shown)],
        (
            [
                size_label(c.size),
                c.shape,
                bound_label(c),
                *(_fmt(c.per_step_us(r.key), 1) for r in shown),
            ]
            for c in cells
        ),
    )
    return lines


def build_table(builds: Sequence[BuildTimes]) -> list[str]:
    """Building times per shape, size and action, against the graphlib peer's build."""
    lines = [
        "### Building the graph, side by side with the graphlib peer (medians of paired repeats)",
        "",
        "exegraph: the `Step`s, `Graph(...)` and the first `priority()` (every priority); "
        "graphlib: the peer's actions and a `TopologicalSorter` with every node added and "
        "`prepare()` called; least: `least.least_build`, one unchecked object per step, the "
        "index, dependencies and dependents as positions and every priority (a lower bound "
        "on any build keeping rule 3); checked: `least.checked_build`, `least` with what part "
        "1 of the spec has `Step(...)` and `Graph(...)` refuse, each checked the cheapest way "
        "(a lower bound on any build keeping rule 3 and those checks). The ratios are medians "
        "of the paired ratios.",
        "",
    ]
    lines += _table(
        [
            "N",
            "shape",
            "actions",
            "edges",
            "Steps µs/step",
            "Graph(...) ms",
            "1st priority() ms",
            "exegraph total ms",
            "graphlib ms",
            "least ms",
            "least ÷ graphlib",
            "checked ms",
            "checked ÷ graphlib",
            "exegraph ÷ graphlib",
        ],
        (
            [
                size_label(b.size),
                b.shape,
                b.action,
                str(b.edges),
                _fmt(b.steps / b.size * 1e6, 1),
                _fmt(b.graph * 1e3, 1),
                _fmt(b.priority * 1e3, 1),
                _fmt(b.total * 1e3, 1),
                _fmt(b.peer * 1e3, 1),
                _fmt(b.least * 1e3, 1),
                _fmt(b.least_ratio),
                _fmt(b.checked * 1e3, 1),
                _fmt(b.checked_ratio),
                _fmt(b.ratio),
            ]
            for b in builds
        ),
    )
    return lines


def memory_table(memory: Sequence[MemoryResult]) -> list[str]:
    """Bytes per step per shape, size and run mode, against the floor's."""
    lines = [
        "### Memory (bytes per step, each figure from a fresh process)",
        "",
        "`build peak` and `graph held` are traced (`tracemalloc`): making the steps, the graph "
        "and every priority, and what the graph then holds. Then, for each way of running "
        "it, the peak growth of the resident set (`VmHWM`) of a fresh process that builds the "
        "graph (`Graph(...)`, priorities left to the run) and runs it once; the most tasks "
        "that run had alive at once (a Trio instrument counts them); the same growth for the "
        "floor running the same actions with that many tasks alive; and the difference, which "
        "the target bounds.",
        "",
    ]
    lines += _table(
        ["N", "shape", "build peak", "graph held"],
        ([size_label(m.size), m.shape, _fmt(m.build, 0), _fmt(m.graph, 0)] for m in memory),
    )
    lines.append("")
    lines += _table(
        [
            "N",
            "shape",
            "run (bound, actions)",
            "tasks alive",
            "graph + run",
            "floor, as many tasks alive",
            "beyond the floor",
        ],
        (
            [
                size_label(m.size),
                m.shape,
                r.mode,
                str(r.alive),
                _fmt(r.growth, 0),
                _fmt(r.floor, 0),
                _fmt(r.excess, 0),
            ]
            for m in memory
            for r in m.runs
        ),
    )
    return lines


def makespan_table(rows: Sequence[MakespanRow]) -> list[str]:
    """Makespan ÷ lower bound, exegraph (without and with exact durations) against FIFO."""
    lines = [
        "### Makespan ÷ max(critical path, total work ÷ P) under `MockClock`",
        "",
        "`exegraph` is the count rule (no durations: most transitive dependents first);",
        "`exact` is the same run given each step's exact duration (`RunOptions(durations=...)`:",
        "longest path to the end first, SPEC 2.2).",
        "",
    ]
    lines += _table(
        [
            "P",
            "family",
            "instances",
            "exegraph mean",
            "exegraph worst",
            "FIFO mean",
            "FIFO worst",
            "exegraph worse / better than FIFO",
            "worst exegraph ÷ FIFO",
            "exact durations: mean",
            "exact: worst",
            "exact: worse / better than FIFO",
        ],
        (
            [
                str(r.p),
                r.family,
                str(r.count),
                _fmt(r.mean, 3),
                _fmt(r.worst, 3),
                _fmt(r.fifo_mean, 3),
                _fmt(r.fifo_worst, 3),
                f"{r.worse} / {r.better}",
                _fmt(r.worst_vs_fifo, 3),
                _fmt(r.exact_mean, 4),
                _fmt(r.exact_worst, 3),
                f"{r.exact_worse} / {r.exact_better}",
            ]
            for r in rows
        ),
    )
    return lines


def issue8_measured(results: Results) -> bool:
    """Whether any section of the issue 8 suite ran (not only the lifecycle section)."""
    return bool(results.cells or results.builds or results.memory or results.makespan)


def render(results: Results) -> str:
    """The whole report as Markdown.

    A run of the lifecycle section alone shows its own targets and tables only.
    """
    meta = results.meta
    lifecycle = bool(results.lifecycle or results.values)
    issue8 = issue8_measured(results) or not lifecycle
    lines = [
        "## Last measured results" if issue8 else "## Last measured results: the step lifecycle",
        "",
        ", ".join(f"{key}: {value}" for key, value in meta.items()),
    ]
    if issue8:
        # A run of some sections only (makespan alone, say) shows the targets it measured.
        found = targets(results)
        found = [t for t in found if t.verdict != "not measured"] or found
        lines += ["", "### Targets of issue 8", ""]
        lines += _table(
            ["target", "measured (worst case)", "verdict"],
            ([t.text, t.measured, t.verdict] for t in found),
        )
        earlier = earlier_targets(results)
        if any(t.verdict != "not measured" for t in earlier) or len(found) == len(targets(results)):
            lines += ["", "Issue 5's absolute build targets, still reported:", ""]
            lines += _table(
                ["target", "measured", "verdict"],
                ([t.text, t.measured, t.verdict] for t in earlier),
            )
    if lifecycle:
        lines += ["", "### Targets of issue 10 (the step lifecycle)", ""]
        lines += _table(
            ["target", "measured (worst case)", "verdict"],
            ([t.text, t.measured, t.verdict] for t in lifecycle_targets(results)),
        )
    for action in TIMINGS:
        cells = [c for c in results.cells if c.action == action]
        if cells:
            lines += ["", *overhead_tables(cells)]
    if results.builds:
        lines += ["", *build_table(results.builds)]
    if results.memory:
        lines += ["", *memory_table(results.memory)]
    if results.makespan:
        lines += ["", *makespan_table(results.makespan)]
    if lifecycle:
        lines += ["", *lifecycle_tables(results.lifecycle, results.values)]
    if results.verified:
        lines += [
            "",
            "### Verification",
            "",
            f"{len(results.verified)} runs checked with probe actions before timing (every step "
            "exactly once, never before a dependency finished, never more actions at once than "
            "the bound), all passed"
            + ("; every makespan run was checked the same way." if results.makespan else "."),
        ]
    timed = bool(results.cells or results.builds or results.memory or results.lifecycle)
    if timed or not results.makespan:
        shown = ALL if issue8 else [r for r in ALL if r.key == "run"]
        lines += ["", "Runners:", ""]
        lines += [f"- `{r.key}`: {r.description}" for r in shown]
        if results.lifecycle:
            lines += [f"- `{r.key}`: {r.description}" for r in (RUN_RETRY, RUN_INPUTS)]
        if issue8:
            lines += ["", "Memory runs: " + ", ".join(f"`{m.label}`" for m in MODES) + "."]
    return "\n".join(lines) + "\n"
