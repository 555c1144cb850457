"""Run the exegraph benchmark suite of issue 5 and write its report.

```
python bench/run.py                      # the full suite (~10 min on 2 cores)
python bench/run.py --update-readme      # … and put the tables into bench/README.md
python bench/run.py --quick              # every section, small sizes (< 1 min)
python bench/run.py --check-only         # verification only, no timing (< 20 s; for CI)
python bench/run.py --sizes 10000 --shapes chain,layered --sections overhead --repeats 7
```

Sections:

- `overhead`: per-step cost of the floor, exegraph and the peers on every shape, size and
  bound, each runner verified with probe actions first (`overhead.py`, `runners.py`);
- `build`: `Step`s, `Graph(...)` and the first `priority()` timed apart (`building.py`);
- `memory`: bytes per step, in fresh processes (`memory.py`);
- `makespan`: schedule quality under the mock clock (`makespan.py`).

The report starts with every target of the issue, met or not, judged on the worst case
measured. The exit status is 1 only when a verification failed: timings never fail a run.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import re
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path
from typing import Final

import building
import makespan
import memory
import overhead
import report
import runners
import shapes

HERE: Final = Path(__file__).resolve().parent
README: Final = HERE / "README.md"
README_START: Final = "<!-- results:start -->"
README_END: Final = "<!-- results:end -->"
SECTIONS: Final = ("overhead", "yield", "build", "memory", "makespan")
LARGE_FROM: Final = 100_000


def _ints(text: str) -> list[int]:
    return [int(float(part)) for part in text.split(",") if part]


def _names(choices: Sequence[str]) -> Callable[[str], list[str]]:
    def parse(text: str) -> list[str]:
        names = [part for part in text.split(",") if part]
        unknown = sorted(set(names) - set(choices))
        if unknown:
            raise argparse.ArgumentTypeError(
                f"unknown {', '.join(unknown)}; choose from {', '.join(choices)}"
            )
        return names

    return parse


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """The command line; `--quick` and `--check-only` change the defaults, flags override."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small sizes, few repeats (< 1 min)")
    parser.add_argument(
        "--check-only",
        action="store_true",
        help="verify every runner on every shape and bound, and the makespan runs; no timing",
    )
    parser.add_argument("--sizes", type=_ints, help="steps per graph (default 10000,100000)")
    parser.add_argument(
        "--shapes", type=_names(shapes.SHAPE_NAMES), default=list(shapes.SHAPE_NAMES)
    )
    parser.add_argument("--sections", type=_names(SECTIONS), default=list(SECTIONS))
    parser.add_argument("--repeats", type=int, help="timed repeats per cell (default 5)")
    parser.add_argument(
        "--large-repeats",
        type=int,
        help=f"timed repeats of the floor and exegraph at ≥ {LARGE_FROM} steps (default 3)",
    )
    parser.add_argument(
        "--large-secondary-repeats",
        type=int,
        default=1,
        help=f"how many of those repeats also time the peers and run_with_result at ≥ "
        f"{LARGE_FROM} steps (default 1)",
    )
    parser.add_argument(
        "--dask-large-shapes",
        type=_names(shapes.SHAPE_NAMES),
        default=["chain", "wide", "fan"],
        help=f"shapes dask is timed on at ≥ {LARGE_FROM} steps (default chain,wide,fan: its "
        "scheduler is superlinear on layered and random, 48 s and 164 s a run)",
    )
    parser.add_argument(
        "--verify-all-up-to",
        type=int,
        default=10_000,
        help="sizes up to this verify every runner; larger ones verify exegraph's code paths "
        "(run_with_result, run+timeout) only (default 10000)",
    )
    parser.add_argument(
        "--yield-sizes",
        type=_ints,
        help=f"sizes of the yield section (default: those of --sizes below {LARGE_FROM})",
    )
    parser.add_argument(
        "--yield-repeats", type=int, default=3, help="timed repeats of the yield section"
    )
    parser.add_argument(
        "--makespan-seeds", type=int, help="instances per family and P (default 20)"
    )
    parser.add_argument("--out", type=Path, help="the Markdown report (default bench/results/)")
    parser.add_argument(
        "--update-readme",
        action="store_true",
        help=f"also replace the results section of {README.relative_to(HERE.parent)}",
    )
    args = parser.parse_args(argv)
    small = args.quick or args.check_only
    if args.sizes is None:
        args.sizes = [2_000] if small else [10_000, 100_000]
    if args.yield_sizes is None:
        args.yield_sizes = [n for n in args.sizes if n < LARGE_FROM]
    if args.repeats is None:
        args.repeats = 3 if args.quick else 5
    if args.large_repeats is None:
        args.large_repeats = 3
    if args.makespan_seeds is None:
        args.makespan_seeds = 3 if args.check_only else 5 if args.quick else 20
    if args.out is None:
        name = "check" if args.check_only else "quick" if args.quick else "latest"
        args.out = HERE / "results" / f"{name}.md"
    return args


def _git(*command: str) -> str:
    """A read-only git query (no optional locks: it never even refreshes the index)."""
    try:
        done = subprocess.run(
            ["git", "--no-optional-locks", *command],
            cwd=HERE.parent,
            capture_output=True,
            text=True,
            check=False,
        )
    except OSError:
        return "?"
    return done.stdout.strip() if done.returncode == 0 else "?"


def _src_changes() -> str:
    return _git("status", "--porcelain", "--", "src")


def source_state() -> str:
    """The commit and the uncommitted changes to `src/`, to notice edits during a run."""
    return _git("rev-parse", "HEAD") + "\n" + _git("diff", "HEAD", "--", "src")


def environment() -> dict[str, str]:
    """Where the suite runs: versions, CPUs, the commit and whether `src/` differs from it."""
    versions = {}
    for dist in ("exegraph-trio", "trio", "dask"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = "absent"
    dirty = " + uncommitted changes in src/" if _src_changes() not in ("", "?") else ""
    return {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "commit": _git("rev-parse", "--short", "HEAD") + dirty,
        "python": platform.python_version(),
        **versions,
        "CPUs": str(os.cpu_count()),
        "machine": platform.machine(),
    }


def limits(shape: shapes.Shape) -> list[int]:
    """The bounds a shape is run under: 4, and n (unbounded) when the width exceeds 4."""
    return [4, len(shape)] if shape.width > 4 else [4]


def run_overhead(args: argparse.Namespace, results: report.Results, *, timed: bool) -> None:
    """Verify, then (if `timed`) time every runner on every shape, size and bound."""
    subjects = ("run_with_result", "run+timeout")
    for n in args.sizes:
        large = n >= LARGE_FROM
        repeats = (args.large_repeats if large else args.repeats) if timed else 0
        for kind in args.shapes:
            shape = shapes.make(kind, n)
            for i, limit in enumerate(limits(shape)):
                chosen = [
                    r
                    for r in runners.ALL
                    if (r.every_bound or i == 0)
                    and (r.key != "dask" or not large or kind in args.dask_large_shapes)
                ]
                verify = [r.key for r in chosen if n <= args.verify_all_up_to or r.key in subjects]
                cell = overhead.measure(
                    shape,
                    limit,
                    chosen,
                    repeats,
                    secondary_repeats=args.large_secondary_repeats if large else None,
                    verify_keys=verify,
                )
                results.verified += [f"{key} {kind}[{n}] {limit}" for key in cell.verified]
                if timed:
                    results.cells.append(cell)
                else:
                    print(f"  verified {kind}[{n}] bound {limit}: {', '.join(cell.verified)}")


def run_yield(args: argparse.Namespace, results: report.Results) -> None:
    """Verify, then time the floor, exegraph and the async peers with actions that yield."""
    chosen = [r for r in runners.ALL if r.key != "dask"]
    for n in args.yield_sizes:
        for kind in args.shapes:
            shape = shapes.make(kind, n)
            for limit in limits(shape):
                verify = [r.key for r in chosen if n <= args.verify_all_up_to]
                cell = overhead.measure(
                    shape,
                    limit,
                    chosen,
                    args.yield_repeats,
                    timing=runners.YIELD,
                    verify_keys=verify,
                )
                results.verified += [f"{key} {kind}[{n}] {limit}" for key in cell.verified]
                results.cells.append(cell)


def run_build(args: argparse.Namespace, results: report.Results) -> None:
    """Time building every shape at every size."""
    for n in args.sizes:
        for kind in args.shapes:
            built = building.measure_build(shapes.make(kind, n), 3)
            results.builds.append(built)
            print(
                f"  build {kind:>8} n={n:<7} Graph {built.graph * 1e3:.0f} ms, "
                f"priorities {built.priority * 1e3:.0f} ms"
            )


def run_memory(args: argparse.Namespace, results: report.Results) -> None:
    """Measure bytes per step of every shape at every size, in fresh processes."""
    for n in args.sizes:
        floor = memory.measure_floor(n)
        for kind in args.shapes:
            found = memory.measure_memory(kind, n, floor)
            results.memory.append(found)
            print(
                f"  memory {kind:>8} n={n:<7} graph+run (worst) {found.worst_run:.0f} B/step, "
                f"floor {floor:.0f} B/task"
            )


def run_makespan(args: argparse.Namespace, results: report.Results) -> None:
    """Makespan quality on random DAGs with random durations."""
    results.makespan = makespan.measure_makespan(args.makespan_seeds)
    for row in results.makespan:
        if row.family == "all":
            print(
                f"  makespan P={row.p}: exegraph {row.mean:.3f} (worst {row.worst:.3f}), "
                f"FIFO {row.fifo_mean:.3f}; worse than FIFO on {row.worse}/{row.count}"
            )


def update_readme(markdown: str) -> None:
    """Replace the text between the results markers of bench/README.md."""
    text = README.read_text()
    pattern = re.compile(re.escape(README_START) + ".*?" + re.escape(README_END), re.DOTALL)
    if not pattern.search(text):
        raise SystemExit(f"{README} has no {README_START} … {README_END} section")
    README.write_text(pattern.sub(lambda _: f"{README_START}\n{markdown}{README_END}", text))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the chosen sections, write the report; 1 if a verification failed."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    results = report.Results(meta=environment())
    state = source_state()
    started = time.perf_counter()
    timings: dict[str, float] = {}
    try:
        if args.check_only:
            print(f"verifying every runner at {args.sizes} on {', '.join(args.shapes)}")
            args.verify_all_up_to = max(args.sizes)
            run_overhead(args, results, timed=False)
            print("verifying makespan runs")
            run_makespan(args, results)
        else:
            steps: dict[str, Callable[[], None]] = {
                "overhead": lambda: run_overhead(args, results, timed=True),
                "yield": lambda: run_yield(args, results),
                "build": lambda: run_build(args, results),
                "memory": lambda: run_memory(args, results),
                "makespan": lambda: run_makespan(args, results),
            }
            for section in args.sections:
                print(f"{section}:")
                t0 = time.perf_counter()
                steps[section]()
                timings[section] = time.perf_counter() - t0
    except (overhead.VerificationError, AssertionError) as exc:
        print(f"VERIFICATION FAILED: {exc}", file=sys.stderr)
        return 1
    total = time.perf_counter() - started
    if args.check_only:
        print(f"all {len(results.verified)} verifications passed in {total:.1f} s")
        return 0
    if source_state() != state:
        results.meta["commit"] += (
            f" at the start, {_git('rev-parse', '--short', 'HEAD')} at the end: src/ changed "
            "during the run (imported once, but memory children import it afresh): run again"
        )
        print("WARNING: src/ changed during the run; the report mixes two versions")
    results.meta |= {
        "sizes": ",".join(map(str, args.sizes)),
        "repeats": f"{args.repeats} (at ≥ 10⁵: {args.large_repeats}; peers and "
        f"run_with_result {args.large_secondary_repeats})",
        "suite time": f"{total:.0f} s ("
        + ", ".join(f"{name} {seconds:.0f} s" for name, seconds in timings.items())
        + ")",
    }
    markdown = report.render(results)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(markdown)
    args.out.with_suffix(".json").write_text(
        json.dumps(dataclasses.asdict(results), indent=1, default=str) + "\n"
    )
    print(f"\nwrote {args.out} in {total:.0f} s\n")
    for target in report.targets(results):
        print(f"  {target.verdict:>14}  {target.text}: {target.measured}")
    if args.update_readme:
        update_readme(markdown)
        print(f"updated {README}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
