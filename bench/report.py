"""Turn measurements into the Markdown report: the targets of issue 5, then every table."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Final

from building import BuildTimes
from makespan import MakespanRow
from memory import MemoryResult
from overhead import Cell
from runners import ALL, PEERS, Runner

TARGET_SHAPES: Final = ("chain", "layered", "random")
MEDIUM: Final = 10_000
LARGE: Final = 100_000
MIB: Final = 1024 * 1024


@dataclass
class Results:
    """Everything one run of the suite measured.

    Attributes:
        meta: where and how it ran (versions, CPUs, sizes, repeats, durations).
        cells: per-step overhead cells.
        builds: graph-building times.
        memory: bytes per step.
        makespan: makespan quality rows.
        verified: `runner shape[size] bound` for every verification that passed.
    """

    meta: dict[str, str] = field(default_factory=dict)
    cells: list[Cell] = field(default_factory=list)
    builds: list[BuildTimes] = field(default_factory=list)
    memory: list[MemoryResult] = field(default_factory=list)
    makespan: list[MakespanRow] = field(default_factory=list)
    verified: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Target:
    """One target of the issue and how the last run did.

    Attributes:
        text: the target as the issue states it.
        measured: the decisive number (the worst case), with where it happened.
        met: `True`, `False`, or `None` when the run did not measure it.
    """

    text: str
    measured: str
    met: bool | None

    @property
    def verdict(self) -> str:
        """`met`, `**not met**` or `not measured`."""
        return {True: "met", False: "**not met**", None: "not measured"}[self.met]


def bound_label(cell: Cell) -> str:
    """`4`, or `n` when the bound is the number of steps (unbounded)."""
    return "n" if cell.limit >= cell.size else str(cell.limit)


def where(cell: Cell) -> str:
    """`shape, 10⁴, bound 4`: a cell's coordinates for a target line."""
    return f"{cell.shape} {size_label(cell.size)}, bound {bound_label(cell)}"


def size_label(n: int) -> str:
    """`10⁴` for 10000, else the number with thin separators."""
    powers = {10**k: f"10{'⁰¹²³⁴⁵⁶⁷⁸⁹'[k]}" for k in range(2, 8)}
    return powers.get(n, f"{n:,}")


def _fmt(x: float, digits: int = 2) -> str:
    return "–" if math.isnan(x) else f"{x:.{digits}f}"


def _worst(values: Iterable[tuple[float, str]]) -> tuple[float, str] | None:
    found = [(v, w) for v, w in values if not math.isnan(v)]
    return max(found) if found else None


def _ratio_target(text: str, cells: Sequence[Cell], key: str, limit: float) -> Target:
    worst = _worst((c.ratio(key, "floor"), where(c)) for c in cells)
    if worst is None:
        return Target(text, "size not run", None)
    ratio, at = worst
    return Target(text, f"worst {ratio:.2f}× ({at})", ratio <= limit)


def targets(results: Results) -> list[Target]:
    """Every target of issue 5, judged on `results` (worst case over what was measured)."""
    cells = [c for c in results.cells if c.action == "noop"]
    medium = [c for c in cells if c.size == MEDIUM and c.shape in TARGET_SHAPES]
    large = [c for c in cells if c.size == LARGE and c.shape in TARGET_SHAPES]
    found = [
        _ratio_target(
            "`run` ≤ 1.0× the floor per step on chain, layered, random at 10⁴", medium, "run", 1.0
        ),
        _ratio_target(
            "`run` ≤ 1.2× the floor per step on chain, layered, random at 10⁵", large, "run", 1.2
        ),
    ]

    pairs = [
        (c.ratio(p.key, "run"), f"{p.key} on {where(c)}")
        for c in cells
        for p in PEERS
        if c.has(p.key) and c.has("run")
    ]
    if pairs:
        speedup, at = min(pairs)
        lost = sum(r <= 1.0 for r, _ in pairs)
        found.append(
            Target(
                "faster than every peer on every shape (peer time ÷ `run` time > 1)",
                f"slowest margin {speedup:.2f}× ({at}); {lost} of {len(pairs)} pairings lost",
                lost == 0,
            )
        )
    else:
        found.append(Target("faster than every peer on every shape", "not run", None))

    trio_peers = [p.key for p in PEERS if p.trio_peer]
    best = [
        (min(c.ratio(k, "run") for k in trio_peers), where(c))
        for c in cells
        if all(c.has(k) for k in trio_peers)
    ]
    if best:
        speedup, at = min(best)
        found.append(
            Target(
                "≥ 2× faster than the best hand-written Trio runner, every shape",
                f"worst {speedup:.2f}× ({at})",
                speedup >= 2.0,
            )
        )
    else:
        found.append(Target("≥ 2× faster than the best hand-written Trio runner", "not run", None))

    found.append(
        _ratio_target(
            "with `step_timeout` on every step, ≤ 2.0× the floor (all shapes, sizes)",
            cells,
            "run+timeout",
            2.0,
        )
    )

    builds = {(b.shape, b.size): b for b in results.builds}
    memory = {(m.shape, m.size): m for m in results.memory}
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
    large_memory = [m for m in results.memory if m.size == LARGE]
    if large_memory:
        per_step, at = max((m.worst_run, m.shape) for m in large_memory)
        found.append(
            Target(
                "peak memory of graph + run ≤ 1 KiB per step at 10⁵ (all shapes, bounds 4 and n)",
                f"worst {per_step:.0f} B/step ({at})",
                per_step <= 1024,
            )
        )
    else:
        found.append(Target("peak memory of graph + run ≤ 1 KiB per step at 10⁵", "not run", None))

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
    else:
        found.append(Target("makespan quality", "not run", None))
    return found


def _table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def _timed(cells: Sequence[Cell], runners: Sequence[Runner]) -> list[Runner]:
    return [r for r in runners if any(c.has(r.key) for c in cells)]


def overhead_tables(cells: Sequence[Cell]) -> list[str]:
    """Per-step overhead relative to the floor, and exegraph's speed-up over each peer."""
    shown = _timed(cells, ALL)
    others = [r for r in shown if r.key != "floor"]
    lines = [
        "### Per-step cost relative to the floor (time ÷ floor time, median of paired repeats)",
        "",
        "`floor` is in µs per step; every other column is a ratio to it (lower is better, "
        "1.00 = as cheap as spawning a bare task). `–`: not timed (dask ignores the bound, so "
        "it runs in the bound-4 cell only, and at 10⁵ on chain, wide and fan only: see the "
        "README).",
        "",
    ]
    lines += _table(
        ["N", "shape", "bound", "width", "floor µs/step", *(r.key for r in others)],
        (
            [
                size_label(c.size),
                c.shape,
                bound_label(c),
                str(c.width),
                _fmt(c.per_step_us("floor"), 1),
                *(_fmt(c.ratio(r.key, "floor")) for r in others),
            ]
            for c in cells
        ),
    )
    peers = _timed(cells, PEERS)
    trio_peers = [p.key for p in peers if p.trio_peer]
    lines += [
        "",
        "### exegraph `run` against each peer (peer time ÷ `run` time, paired; > 1 means "
        "exegraph is faster)",
        "",
    ]
    lines += _table(
        ["N", "shape", "bound", "run µs/step", *(p.key for p in peers), "best Trio peer"],
        (
            [
                size_label(c.size),
                c.shape,
                bound_label(c),
                _fmt(c.per_step_us("run"), 1),
                *(_fmt(c.ratio(p.key, "run")) for p in peers),
                _fmt(min((c.ratio(k, "run") for k in trio_peers), default=math.nan)),
            ]
            for c in cells
        ),
    )
    lines += ["", "### Absolute medians (µs per step; this machine is noisy, compare ratios)", ""]
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


def yield_table(cells: Sequence[Cell]) -> list[str]:
    """Per-step cost with actions that yield once: ratios to the floor, and to `run`."""
    shown = [r for r in _timed(cells, ALL) if r.key != "floor"]
    peers = _timed(cells, PEERS)
    trio_peers = [p.key for p in peers if p.trio_peer]
    lines = [
        "### With actions that yield once (`await trio.lowlevel.checkpoint()`, "
        "`await asyncio.sleep(0)`)",
        "",
        "No-op actions never block, so a runner that keeps a step on the task that finished "
        "the previous one never hands it to another task. Here every action yields to the "
        "event loop once, as any action that really waits does. Ratios to the floor (n bare "
        "tasks running the same action), then peer time ÷ `run` time; not a target of the "
        "issue.",
        "",
    ]
    lines += _table(
        [
            "N",
            "shape",
            "bound",
            "floor µs/step",
            *(f"{r.key} ×floor" for r in shown),
            *(f"{p.key} ÷ run" for p in peers),
            "best Trio peer ÷ run",
        ],
        (
            [
                size_label(c.size),
                c.shape,
                bound_label(c),
                _fmt(c.per_step_us("floor"), 1),
                *(_fmt(c.ratio(r.key, "floor")) for r in shown),
                *(_fmt(c.ratio(p.key, "run")) for p in peers),
                _fmt(min((c.ratio(k, "run") for k in trio_peers), default=math.nan)),
            ]
            for c in cells
        ),
    )
    return lines


def build_table(builds: Sequence[BuildTimes]) -> list[str]:
    """Building times per shape and size."""
    lines = ["### Building the graph (median seconds; priorities are computed on first use)", ""]
    lines += _table(
        [
            "N",
            "shape",
            "edges",
            "Steps µs/step",
            "Graph(...) ms",
            "1st priority() ms",
            "Graph + priorities ms",
        ],
        (
            [
                size_label(b.size),
                b.shape,
                str(b.edges),
                _fmt(b.steps / b.size * 1e6, 1),
                _fmt(b.graph * 1e3, 1),
                _fmt(b.priority * 1e3, 1),
                _fmt(b.graph_and_priority * 1e3, 1),
            ]
            for b in builds
        ),
    )
    return lines


def memory_table(memory: Sequence[MemoryResult]) -> list[str]:
    """Bytes per step per shape and size."""
    lines = [
        "### Memory (bytes per step, each in a fresh process)",
        "",
        "`build peak` and `graph held` are traced (`tracemalloc`): making the steps, the graph "
        "and every priority, and what the graph then holds. The `graph + …` columns are the "
        "peak growth of the resident set (`VmHWM`) of a fresh process that builds the graph "
        "(`Graph(...)`, priorities left to the run) and runs it once, under the bound n or "
        "4; `floor` is the same growth for n bare Trio tasks.",
        "",
    ]
    lines += _table(
        [
            "N",
            "shape",
            "build peak",
            "graph held",
            "graph + run (n)",
            "graph + run (4)",
            "graph + run_with_result (n)",
            "floor (per task)",
        ],
        (
            [
                size_label(m.size),
                m.shape,
                _fmt(m.build, 0),
                _fmt(m.graph, 0),
                _fmt(m.run, 0),
                _fmt(m.run4, 0),
                _fmt(m.run_with_result, 0),
                _fmt(m.floor, 0),
            ]
            for m in memory
        ),
    )
    return lines


def makespan_table(rows: Sequence[MakespanRow]) -> list[str]:
    """Makespan ÷ lower bound, exegraph against the FIFO graphlib runner."""
    lines = [
        "### Makespan ÷ max(critical path, total work ÷ P) under `MockClock`",
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
            ]
            for r in rows
        ),
    )
    return lines


def render(results: Results) -> str:
    """The whole report as Markdown."""
    meta = results.meta
    lines = [
        "## Last measured results",
        "",
        ", ".join(f"{key}: {value}" for key, value in meta.items()),
        "",
        "### Targets of issue 5",
        "",
    ]
    lines += _table(
        ["target", "measured (worst case)", "verdict"],
        ([t.text, t.measured, t.verdict] for t in targets(results)),
    )
    noop = [c for c in results.cells if c.action == "noop"]
    yielding = [c for c in results.cells if c.action == "yield"]
    if noop:
        lines += ["", *overhead_tables(noop)]
    if yielding:
        lines += ["", *yield_table(yielding)]
    if results.builds:
        lines += ["", *build_table(results.builds)]
    if results.memory:
        lines += ["", *memory_table(results.memory)]
    if results.makespan:
        lines += ["", *makespan_table(results.makespan)]
    if results.verified:
        lines += [
            "",
            "### Verification",
            "",
            f"{len(results.verified)} runs checked with probe actions before timing (every step "
            "exactly once, never before a dependency finished, never more actions at once than "
            "the bound), all passed; every makespan run was checked the same way.",
        ]
    lines += ["", "Runners:", ""]
    lines += [f"- `{r.key}`: {r.description}" for r in ALL]
    return "\n".join(lines) + "\n"
