"""Run the exegraph benchmark suite (targets of issue 8) and write its report.

```
python bench/run.py                      # the full suite (~15 min on 2 cores)
python bench/run.py --update-readme      # … and put the tables into bench/README.md
python bench/run.py --quick              # every section, small sizes (< 2 min)
python bench/run.py --check-only         # verification only, no timing (< 30 s; for CI)
python bench/run.py --sizes 10000 --shapes chain,layered --sections overhead --repeats 7
python bench/run.py --sections build --actions noop
python bench/run.py --sections lifecycle                 # the targets of issue 10 (~2 min)
python bench/run.py --sections makespan --update-readme  # issue 11's makespan table (~1 min)
```

Sections:

- `overhead`: per-step cost of the floors, exegraph (a prebuilt graph, and the whole job:
  build + run) and the peers on every shape, size and bound, with no-op actions and with
  actions that yield once, each runner verified with probe actions first (`overhead.py`,
  `runners.py`);
- `build`: `Step`s, `Graph(...)` and the first `priority()` timed apart, paired with the
  graphlib peer's build (`building.py`);
- `memory`: bytes per step beyond the floor's, in fresh processes (`memory.py`);
- `makespan`: schedule quality under the mock clock (`makespan.py`);
- `lifecycle`: what retries and inputs cost a run that uses them, against the same run
  without, and the peak memory of 1 MiB values on chains of growing length
  (`lifecycle.py`; the targets of issue 10).

The report starts with every target of the issues, met or not, judged on the worst case
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

import budget
import building
import lifecycle
import makespan
import memory
import offload
import overhead
import pools
import report
import runners
import shapes

HERE: Final = Path(__file__).resolve().parent
README: Final = HERE / "README.md"
SECTIONS: Final = ("overhead", "build", "memory", "makespan", "lifecycle")
LIFECYCLE_SHAPES: Final = ("chain", "wide", "layered", "random")
VALUE_LENGTHS: Final = (10, 100, 1_000)
"""Chain lengths of the lifecycle's value-memory runs with `keep_values=False`."""
KEPT_LENGTHS: Final = (10, 100)
"""… and with `keep_values=True`, for contrast (10³ would hold 1 GiB)."""
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
    parser.add_argument("--quick", action="store_true", help="small sizes, few repeats (< 2 min)")
    parser.add_argument(
        "--check-only",
        action="store_true",
        help="verify every runner on every shape and bound, and the makespan runs; no timing",
    )
    parser.add_argument("--sizes", type=_ints, help="steps per graph (default 10000,100000)")
    parser.add_argument(
        "--shapes", type=_names(shapes.SHAPE_NAMES), default=list(shapes.SHAPE_NAMES)
    )
    parser.add_argument(
        "--large-shapes",
        type=_names(shapes.SHAPE_NAMES),
        default=["chain", "wide", "layered", "random"],
        help=f"shapes the overhead section times at ≥ {LARGE_FROM} steps (default "
        "chain,wide,layered,random: those of the targets; fan, like wide with two more "
        "steps, only below)",
    )
    parser.add_argument("--sections", type=_names(SECTIONS), default=list(SECTIONS))
    parser.add_argument(
        "--actions",
        type=_names(tuple(runners.TIMINGS)),
        default=list(runners.TIMINGS),
        help="the actions timed: noop (return at once), yield (one checkpoint); default both",
    )
    parser.add_argument(
        "--repeats", type=int, help="timed repeats per cell (default 8; 3 with --quick)"
    )
    parser.add_argument(
        "--large-repeats",
        type=int,
        help=f"timed repeats of the primary runners at ≥ {LARGE_FROM} steps (default 2)",
    )
    parser.add_argument(
        "--large-secondary-repeats",
        type=int,
        default=2,
        help=f"how many of those repeats also time the peers and run_with_result at ≥ "
        f"{LARGE_FROM} steps (default 2)",
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
        "--build-repeats",
        type=int,
        help="paired repeats of the build section (default 5)",
    )
    parser.add_argument(
        "--makespan-seeds", type=int, help="instances per family and P (default 20)"
    )
    parser.add_argument(
        "--lifecycle-shapes",
        type=_names(shapes.SHAPE_NAMES),
        default=list(LIFECYCLE_SHAPES),
        help="shapes of the lifecycle section (default chain,wide,layered,random); it "
        f"times the sizes of --sizes below {LARGE_FROM} (else the smallest)",
    )
    parser.add_argument(
        "--lifecycle-repeats",
        type=int,
        help="paired repeats per lifecycle cell (default 7; 3 with --quick)",
    )
    parser.add_argument("--out", type=Path, help="the Markdown report (default bench/results/)")
    parser.add_argument(
        "--update-readme",
        action="store_true",
        help=f"also replace the results section of {README.relative_to(HERE.parent)} (the "
        "lifecycle section run alone: its own section)",
    )
    args = parser.parse_args(argv)
    small = args.quick or args.check_only
    if args.sizes is None:
        args.sizes = [2_000] if small else [10_000, 100_000]
    if args.repeats is None:
        # (8: with 4, the median of a cell's paired ratios moved by ±0.1 between runs of
        # the same code on this machine, and with it the verdicts near a target)
        args.repeats = 3 if args.quick else 8
    if args.large_repeats is None:
        args.large_repeats = 2
    if args.build_repeats is None:
        args.build_repeats = 5
    if args.lifecycle_repeats is None:
        args.lifecycle_repeats = 3 if args.quick else 7
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
    """Verify, then (if `timed`) time every runner on every shape, size, bound and action.

    Each cell is verified once (the probe's actions are the same whatever is timed), before
    its first action kind is timed.
    """
    subjects = ("run_with_result", "run+timeout")
    timings = [runners.TIMINGS[name] for name in args.actions] if timed else [runners.NOOP]
    for n in args.sizes:
        large = n >= LARGE_FROM
        repeats = (args.large_repeats if large else args.repeats) if timed else 0
        for kind in args.shapes:
            if timed and large and kind not in args.large_shapes:
                continue
            shape = shapes.make(kind, n)
            for i, limit in enumerate(limits(shape)):
                chosen = [
                    r
                    for r in runners.ALL
                    if (r.every_bound or i == 0)
                    and (r.key != "dask" or not large or kind in args.dask_large_shapes)
                ]
                verify = [r.key for r in chosen if n <= args.verify_all_up_to or r.key in subjects]
                for timing in timings:
                    cell = overhead.measure(
                        shape,
                        limit,
                        chosen,
                        repeats,
                        secondary_repeats=args.large_secondary_repeats if large else None,
                        timing=timing,
                        verify_keys=verify,
                    )
                    verify = []
                    results.verified += [f"{key} {kind}[{n}] {limit}" for key in cell.verified]
                    if timed:
                        results.cells.append(cell)
                    else:
                        print(f"  verified {kind}[{n}] bound {limit}: {', '.join(cell.verified)}")


def run_build(args: argparse.Namespace, results: report.Results) -> None:
    """Time building every shape at every size, paired with the graphlib peer's build."""
    for n in args.sizes:
        for kind in args.shapes:
            shape = shapes.make(kind, n)
            for name in args.actions:
                built = building.measure_build(shape, runners.TIMINGS[name], args.build_repeats)
                results.builds.append(built)
                print(
                    f"  build {kind:>8} n={n:<7} {name:>5}: Steps+Graph+priorities "
                    f"{built.total * 1e3:.0f} ms, graphlib {built.peer * 1e3:.0f} ms, "
                    f"ratio {built.ratio:.2f}"
                )


def run_memory(args: argparse.Namespace, results: report.Results) -> None:
    """Measure bytes per step of every shape at every size, in fresh processes."""
    floors = memory.Floors()
    for n in args.sizes:
        for kind in args.shapes:
            found = memory.measure_memory(kind, n, floors)
            results.memory.append(found)
            worst = found.worst
            print(
                f"  memory {kind:>8} n={n:<7} worst beyond the floor: {worst.excess:.0f} B/step "
                f"({worst.mode}: {worst.growth:.0f} − floor {worst.floor:.0f} with "
                f"{worst.alive} tasks alive)"
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


def run_lifecycle(args: argparse.Namespace, results: report.Results, *, timed: bool) -> None:
    """Verify, then (if `timed`) time `run`, `run+retry` and `run+inputs`, paired; values.

    The cells are those of the overhead section (each runner verified with probe actions
    first) at the sizes of `--sizes` below 10⁵ (else the smallest), on the lifecycle shapes.
    """
    sizes = [n for n in args.sizes if n < LARGE_FROM] or [min(args.sizes)]
    timings = [runners.TIMINGS[name] for name in args.actions] if timed else [runners.NOOP]
    chosen = list(lifecycle.RUNNERS)
    for n in sizes:
        for kind in args.lifecycle_shapes:
            shape = shapes.make(kind, n)
            for limit in limits(shape):
                verify = [r.key for r in chosen if r.key != "run"]
                for timing in timings:
                    cell = overhead.measure(
                        shape,
                        limit,
                        chosen,
                        args.lifecycle_repeats if timed else 0,
                        timing=timing,
                        verify_keys=verify,
                    )
                    verify = []
                    results.verified += [f"{key} {kind}[{n}] {limit}" for key in cell.verified]
                    if timed:
                        results.lifecycle.append(cell)
                        print(
                            f"  {'':>8} run+retry ÷ run {cell.ratio('run+retry', 'run'):.2f}, "
                            f"run+inputs ÷ run {cell.ratio('run+inputs', 'run'):.2f}"
                        )
                    else:
                        print(f"  verified {kind}[{n}] bound {limit}: {', '.join(cell.verified)}")
    if not timed:
        return
    for keep in (False, True):
        for length in KEPT_LENGTHS if keep else VALUE_LENGTHS:
            found = lifecycle.measure_values(length, keep_values=keep)
            results.values.append(found)
            print(
                f"  values: chain of {length:>5}, keep_values={keep!s:<5}: traced peak "
                f"{found.peak / report.MIB:.2f} MiB ({found.values:.1f} values)"
            )


def update_readme(markdown: str, block: str = "results") -> None:
    """Replace the text between the `block` markers of bench/README.md.

    `results` holds the last full (or partial) suite; `lifecycle` and `makespan` the
    last run of that section alone; `ab` the last `ab.py` comparison; `instructions` the last
    `instructions.py` count.
    """
    start, end = f"<!-- {block}:start -->", f"<!-- {block}:end -->"
    text = README.read_text()
    pattern = re.compile(re.escape(start) + ".*?" + re.escape(end), re.DOTALL)
    if not pattern.search(text):
        raise SystemExit(f"{README} has no {start} … {end} section")
    README.write_text(pattern.sub(lambda _: f"{start}\n{markdown}{end}", text))


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
            print("verifying the lifecycle runners (retries on every step, inputs on every edge)")
            run_lifecycle(args, results, timed=False)
            print("verifying makespan runs")
            run_makespan(args, results)
            print("verifying the in_thread / in_process runs (offload.py)")
            offload.check_all()
            print("verifying the pooled runs (pools.py)")
            pools.check()
            print("verifying budget.py's least runner against exegraph (starts under MockClock)")
            budget.check()
        else:
            steps: dict[str, Callable[[], None]] = {
                "overhead": lambda: run_overhead(args, results, timed=True),
                "build": lambda: run_build(args, results),
                "memory": lambda: run_memory(args, results),
                "makespan": lambda: run_makespan(args, results),
                "lifecycle": lambda: run_lifecycle(args, results, timed=True),
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
        "actions": ",".join(args.actions),
        "repeats": f"{args.lifecycle_repeats} paired per cell"
        if args.sections == ["lifecycle"]
        else f"{args.repeats} (at ≥ 10⁵: {args.large_repeats}; peers and "
        f"run_with_result {args.large_secondary_repeats}; build {args.build_repeats}; "
        f"lifecycle {args.lifecycle_repeats})",
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
    shown = report.targets(results) if report.issue8_measured(results) else []
    if results.lifecycle or results.values:
        shown += report.lifecycle_targets(results)
    for target in shown:
        print(f"  {target.verdict:>14}  {target.text}: {target.measured}")
    if args.update_readme:
        # The lifecycle and makespan sections run alone have blocks of their own: they
        # leave the last full suite's tables in place.
        alone = args.sections[0] if len(args.sections) == 1 else None
        update_readme(markdown, alone if alone in ("lifecycle", "makespan") else "results")
        print(f"updated {README}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
