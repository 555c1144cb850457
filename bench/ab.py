"""A/B: the per-step cells and the build of the issue 8 targets, two versions of exegraph paired.

```
git worktree add /tmp/exegraph-8a1c272 8a1c272           # the version to compare with
python bench/ab.py --base /tmp/exegraph-8a1c272          # 10⁴, both action kinds, ~10 min
python bench/ab.py --base /tmp/exegraph-8a1c272 --sizes 100000 --repeats 3
python bench/ab.py --base /tmp/exegraph-8a1c272 --sections build --repeats 15
python bench/ab.py --base /tmp/exegraph-8a1c272 --update-readme   # the table in bench/README.md
git worktree remove /tmp/exegraph-8a1c272
```

Both versions are imported into this one process, each from its own `src/` under a name
of its own (`--base`'s as `exegraph_base`, this checkout's as `exegraph_head`: the package
only imports itself relatively), so their runs can be interleaved on the same machine
weather instead of being compared with a table measured at another time:

- **run** (the cells of the issue 8 targets: chain, wide, layered, random; bounds 4 and n;
  no-op actions and actions that yield once): at every repeat `floor`, `floor+scope` and,
  for each version, `run` and `run+timeout` (`RunOptions(step_timeout=3600)`) of a graph
  built beforehand (priorities included) are timed one after the other in a fresh
  `trio.run`, after a `gc.collect()`, the order rotated at each repeat, as `overhead.py`
  does. Each version is verified with probe actions on each cell first.
- **build**: at every repeat each version's `Step`s + `Graph(...)` + first `priority()`
  and the graphlib peer's build (`peers.graphlib_build`), after a `gc.collect()` each, the
  order rotated.

Every ratio is paired within a repeat, then the median taken: `run ÷ floor` and
`run+timeout ÷ floor+scope` per version (the issue 8 measures), their change, and the
direct `head ÷ base` of the same runner (the most direct measure of a change; its
interquartile range over the repeats shows the spread). Writes the Markdown report to
`--out` (default `bench/results/ab.md`) and prints it.
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import math
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Final

import peers
import shapes
import trio
from probe import Probe
from report import size_label
from run import update_readme
from runners import STEP_TIMEOUT, TIMINGS, Timing

HERE: Final = Path(__file__).resolve().parent
TARGET_SHAPES: Final = ("chain", "wide", "layered", "random")
VERSIONS: Final = ("base", "head")


def load(src: Path, alias: str) -> ModuleType:
    """Import the `exegraph_trio` package found in `src` under the name `alias`."""
    package = src / "exegraph_trio"
    spec = importlib.util.spec_from_file_location(
        alias, package / "__init__.py", submodule_search_locations=[str(package)]
    )
    if spec is None or spec.loader is None:
        raise SystemExit(f"no exegraph_trio package in {src}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[alias] = module
    spec.loader.exec_module(module)
    return module


def commit_of(root: Path) -> str:
    """`abc1234`, plus a mark when `src/` has uncommitted changes."""

    def git(*command: str) -> str:
        done = subprocess.run(
            ["git", "--no-optional-locks", *command],
            cwd=root,
            capture_output=True,
            text=True,
            check=False,
        )
        return done.stdout.strip() if done.returncode == 0 else "?"

    dirty = git("status", "--porcelain", "--", "src")
    return git("rev-parse", "--short", "HEAD") + (" + uncommitted src/" if dirty else "")


def build_graph(lib: ModuleType, shape: shapes.Shape, actions: Sequence[peers.AsyncAction]) -> Any:
    """`lib`'s graph of `shape` (`s0`, `s1`, … depending on `dep_names`)."""
    step = lib.Step
    return lib.Graph(
        [
            step(name, action, depends_on=ds)
            for name, action, ds in zip(shape.names, actions, shape.dep_names, strict=True)
        ]
    )


def verify(lib: ModuleType, shape: shapes.Shape, limit: int, *, timeout: bool) -> None:
    """Run `lib` once on `shape` with probe actions; fail loudly if anything went wrong."""
    probe = Probe(shape.deps, limit)
    graph = build_graph(lib, shape, probe.trio_actions())
    options = lib.RunOptions(max_concurrency=limit, step_timeout=STEP_TIMEOUT if timeout else None)
    trio.run(lib.run, graph, options)
    problems = probe.problems()
    if problems:
        raise SystemExit(f"{lib.__name__} on {shape.kind}[{len(shape)}] {limit}: {problems}")


CLOCKS: Final[dict[str, Callable[[], float]]] = {
    "wall": time.perf_counter,
    "cpu": time.thread_time,
}
clock = time.perf_counter
"""What every timing reads (`--clock`): wall time, as the suite, or this thread's CPU time."""


async def _timed(fn: Callable[[], Awaitable[object]]) -> float:
    start = clock()
    await fn()
    return clock() - start


def _time_trio(fn: Callable[[], Awaitable[object]]) -> float:
    """Seconds `fn()` takes inside a fresh `trio.run` (the clock starts inside it)."""
    return trio.run(_timed, fn)


def _floor(actions: Sequence[peers.AsyncAction]) -> Callable[[], float]:
    return lambda: _time_trio(lambda: peers.floor(actions))


def _floor_scoped(actions: Sequence[peers.AsyncAction]) -> Callable[[], float]:
    return lambda: _time_trio(lambda: peers.floor_scoped(actions, STEP_TIMEOUT))


def _run(lib: ModuleType, graph: Any, options: Any) -> Callable[[], float]:
    run = lib.run
    return lambda: _time_trio(lambda: run(graph, options))


@dataclass
class RunCell:
    """The times of every runner in one cell, by key (`floor`, `head run+timeout`, …)."""

    size: int
    shape: str
    limit: int
    action: str
    times: dict[str, list[float]] = field(default_factory=dict)

    def ratios(self, key: str, base: str) -> list[float]:
        """`time(key) ÷ time(base)`, repeat by repeat."""
        return [a / b for a, b in zip(self.times[key], self.times[base], strict=True)]

    def ratio(self, key: str, base: str) -> float:
        """The median of the paired ratios."""
        return statistics.median(self.ratios(key, base))

    def us(self, key: str) -> float:
        """Median µs per step."""
        return statistics.median(self.times[key]) / self.size * 1e6


def measure_run(
    libs: dict[str, ModuleType], shape: shapes.Shape, limit: int, timing: Timing, repeats: int
) -> RunCell:
    """Time the floors and both versions' `run` and `run+timeout`, interleaved."""
    n = len(shape)
    actions = [timing.trio] * n
    goes: dict[str, Callable[[], float]] = {
        "floor": _floor(actions),
        "floor+scope": _floor_scoped(actions),
    }
    for version, lib in libs.items():
        graph = build_graph(lib, shape, actions)
        graph.priority(shape.names[0])
        goes[f"{version} run"] = _run(lib, graph, lib.RunOptions(max_concurrency=limit))
        goes[f"{version} run+timeout"] = _run(
            lib, graph, lib.RunOptions(max_concurrency=limit, step_timeout=STEP_TIMEOUT)
        )
    cell = RunCell(n, shape.kind, limit, timing.name)
    order = list(goes)
    for repeat in range(repeats):
        shift = repeat % len(order)
        for key in order[shift:] + order[:shift]:
            gc.collect()
            cell.times.setdefault(key, []).append(goes[key]())
    return cell


@dataclass
class BuildCell:
    """Build times (seconds per repeat) of both versions and the graphlib peer."""

    size: int
    shape: str
    action: str
    times: dict[str, list[float]] = field(default_factory=dict)
    steps: dict[str, list[float]] = field(default_factory=dict)

    def ratio(self, key: str, base: str) -> float:
        """The median of the paired ratios `time(key) ÷ time(base)`."""
        pairs = zip(self.times[key], self.times[base], strict=True)
        return statistics.median(a / b for a, b in pairs)


def _build(lib: ModuleType, shape: shapes.Shape, action: peers.AsyncAction) -> tuple[float, float]:
    """Seconds of `Step`s + `Graph(...)` + first `priority()`, and of the `Step`s alone."""
    step, names, deps = lib.Step, shape.names, shape.dep_names
    t0 = clock()
    steps = [step(name, action, depends_on=ds) for name, ds in zip(names, deps, strict=True)]
    t1 = clock()
    graph = lib.Graph(steps)
    graph.priority(names[-1])
    t2 = clock()
    return t2 - t0, t1 - t0


def measure_build(
    libs: dict[str, ModuleType], shape: shapes.Shape, timing: Timing, repeats: int
) -> BuildCell:
    """Build `shape` with each version and with the graphlib peer, interleaved."""
    cell = BuildCell(len(shape), shape.kind, timing.name)
    order = [*libs, "graphlib"]
    for repeat in range(repeats):
        shift = repeat % len(order)
        for key in order[shift:] + order[:shift]:
            gc.collect()
            if key == "graphlib":
                t0 = clock()
                built = peers.graphlib_build(shape.deps, timing.trio)
                cell.times.setdefault(key, []).append(clock() - t0)
                del built
            else:
                total, steps = _build(libs[key], shape, timing.trio)
                cell.times.setdefault(key, []).append(total)
                cell.steps.setdefault(key, []).append(steps)
    return cell


def _pct(x: float) -> str:
    return f"{(x - 1) * 100:+.1f} %"


def _iqr(values: Sequence[float]) -> str:
    if len(values) < 4:
        return f"{min(values):.2f}–{max(values):.2f}"
    q = statistics.quantiles(values, n=4)
    return f"{q[0]:.2f}–{q[2]:.2f}"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def _geomean(values: Sequence[float]) -> float:
    return math.exp(statistics.fmean(math.log(v) for v in values))


def run_report(cells: Sequence[RunCell]) -> list[str]:
    """The per-step table: both versions' issue 8 ratios, their change, head ÷ base direct."""
    rows = []
    direct: list[float] = []
    for c in cells:
        row = [size_label(c.size), c.shape, "n" if c.limit >= c.size else str(c.limit), c.action]
        for runner, floor in (("run", "floor"), ("run+timeout", "floor+scope")):
            base = c.ratio(f"base {runner}", floor)
            head = c.ratio(f"head {runner}", floor)
            paired = c.ratios(f"head {runner}", f"base {runner}")
            direct.append(statistics.median(paired))
            row += [
                f"{c.us(floor):.1f}",
                f"{base:.2f}",
                f"{head:.2f}",
                _pct(head / base),
                f"{statistics.median(paired):.3f} ({_iqr(paired)})",
            ]
        rows.append(row)
    header = ["N", "shape", "bound", "actions"]
    for runner, floor in (("run", "floor"), ("run+timeout", "floor+scope")):
        header += [
            f"{floor} µs/step",
            f"base {runner} ÷ {floor}",
            f"head {runner} ÷ {floor}",
            "change",
            f"head ÷ base {runner}, paired (IQR)",
        ]
    worst = max(direct)
    return [
        *_table(header, rows),
        "",
        f"Direct head ÷ base over all {len(direct)} (cell, runner) medians: geometric mean "
        f"{_geomean(direct):.3f}, best {min(direct):.3f}, worst {worst:.3f}; "
        f"{sum(d > 1.05 for d in direct)} above 1.05.",
    ]


def build_report(cells: Sequence[BuildCell]) -> list[str]:
    """The build table: both versions against graphlib, their change, `Step`s alone."""
    rows = []
    for c in cells:
        base, head = c.ratio("base", "graphlib"), c.ratio("head", "graphlib")
        paired = [h / b for h, b in zip(c.times["head"], c.times["base"], strict=True)]
        steps = [h / b for h, b in zip(c.steps["head"], c.steps["base"], strict=True)]
        rows.append(
            [
                size_label(c.size),
                c.shape,
                c.action,
                f"{statistics.median(c.times['graphlib']) * 1e3:.1f}",
                f"{base:.2f}",
                f"{head:.2f}",
                _pct(head / base),
                f"{statistics.median(paired):.3f} ({_iqr(paired)})",
                f"{statistics.median(c.steps['base']) / c.size * 1e6:.2f}",
                f"{statistics.median(c.steps['head']) / c.size * 1e6:.2f}",
                f"{statistics.median(steps):.3f} ({_iqr(steps)})",
            ]
        )
    header = [
        "N",
        "shape",
        "actions",
        "graphlib ms",
        "base build ÷ graphlib",
        "head build ÷ graphlib",
        "change",
        "head ÷ base build, paired (IQR)",
        "base Step µs",
        "head Step µs",
        "head ÷ base Steps, paired (IQR)",
    ]
    return _table(header, rows)


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--base", type=Path, required=True, help="a checkout of the version to compare with"
    )
    parser.add_argument(
        "--head", type=Path, default=HERE.parent, help="the other checkout (default: this one)"
    )
    parser.add_argument("--sizes", default="10000", help="steps per graph (default 10000)")
    parser.add_argument("--shapes", default=",".join(TARGET_SHAPES))
    parser.add_argument("--actions", default="noop,yield")
    parser.add_argument("--sections", default="run,build")
    parser.add_argument("--repeats", type=int, default=10, help="paired repeats per cell")
    parser.add_argument(
        "--clock",
        choices=CLOCKS,
        default="wall",
        help="wall time (default, as the suite) or this thread's CPU time, which does not "
        "count the time other processes held the CPU (a shared machine)",
    )
    parser.add_argument("--out", type=Path, default=HERE / "results" / "ab.md")
    parser.add_argument(
        "--update-readme",
        action="store_true",
        help="also replace the A/B section of bench/README.md (between the `ab` markers)",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    """Run the A/B comparison and write its report."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    global clock  # noqa: PLW0603 - chosen once, before any timing
    clock = CLOCKS[args.clock]
    libs = {
        "base": load(args.base.resolve() / "src", "exegraph_base"),
        "head": load(args.head.resolve() / "src", "exegraph_head"),
    }
    commits = {"base": commit_of(args.base), "head": commit_of(args.head)}
    sizes = [int(float(s)) for s in args.sizes.split(",")]
    kinds = args.shapes.split(",")
    actions = [TIMINGS[name] for name in args.actions.split(",")]
    sections = args.sections.split(",")
    started = time.perf_counter()
    run_cells: list[RunCell] = []
    build_cells: list[BuildCell] = []
    for n in sizes:
        for kind in kinds:
            shape = shapes.make(kind, n)
            if "run" in sections:
                for limit in [4, n] if shape.width > 4 else [4]:
                    for lib in libs.values():
                        verify(lib, shape, limit, timeout=False)
                        verify(lib, shape, limit, timeout=True)
                    for timing in actions:
                        cell = measure_run(libs, shape, limit, timing, args.repeats)
                        run_cells.append(cell)
                        print(
                            f"  {kind:>8} n={n:<7} limit={limit:<7} {timing.name:>5}: run "
                            f"{cell.ratio('base run', 'floor'):.2f} → "
                            f"{cell.ratio('head run', 'floor'):.2f}, run+timeout "
                            f"{cell.ratio('base run+timeout', 'floor+scope'):.2f} → "
                            f"{cell.ratio('head run+timeout', 'floor+scope'):.2f}",
                            flush=True,
                        )
            if "build" in sections:
                for timing in actions:
                    built = measure_build(libs, shape, timing, args.repeats)
                    build_cells.append(built)
                    print(
                        f"  build {kind:>8} n={n:<7} {timing.name:>5}: "
                        f"{built.ratio('base', 'graphlib'):.2f} → "
                        f"{built.ratio('head', 'graphlib'):.2f} × graphlib",
                        flush=True,
                    )
    seconds = time.perf_counter() - started
    lines = [
        "## A/B: the issue 8 cells, two versions interleaved in one process",
        "",
        f"date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, base: {commits['base']}, "
        f"head: {commits['head']}, trio: {trio.__version__}, repeats: {args.repeats} per cell "
        f"(paired), clock: {args.clock}, time: {seconds:.0f} s. "
        f"Command: `python bench/ab.py --base <checkout of base> --sizes {args.sizes} "
        f"--shapes {args.shapes} --actions {args.actions} --sections {args.sections} "
        f"--repeats {args.repeats} --clock {args.clock}`",
    ]
    if run_cells:
        lines += [
            "",
            "### Per step: `run ÷ floor` and `run+timeout ÷ floor+scope`, medians of paired ratios",
            "",
            "`change`: head's ratio ÷ base's − 1. `head ÷ base`: the same runner of both "
            "versions paired repeat by repeat (below 1: head is faster), with the "
            "interquartile range of the repeats.",
            "",
            *run_report(run_cells),
        ]
    if build_cells:
        lines += [
            "",
            "### Build: `Step`s + `Graph(...)` + first `priority()` ÷ the graphlib peer's build",
            "",
            *build_report(build_cells),
        ]
    text = "\n".join(lines) + "\n"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print()
    print(text)
    if args.update_readme:
        update_readme(text, "ab")


if __name__ == "__main__":
    main()
