"""Instructions per step under callgrind: the A/B and the lifecycle, blind to the machine's load.

```
git worktree add /tmp/exegraph-8a1c272 8a1c272
python bench/instructions.py --base /tmp/exegraph-8a1c272            # ~30 min on 2 cores
python bench/instructions.py --base /tmp/exegraph-8a1c272 --shapes random --actions noop
```

Wall-clock ratios on a shared 2-core machine move by tens of per cent from one repeat to the
next (see `ab.py`'s interquartile ranges); the number of instructions a run executes does
not: it is the same to ±0.1 % from run to run, whatever else the machine is doing. It is
not the time (it is blind to cache misses and branch mispredictions), but a change that
costs 5 % of a step's time and no instructions is rare in interpreted code. This script
counts them with valgrind's callgrind (it needs `valgrind`), one fresh process per cell.

Each child imports both versions (`--base`'s `src/` and this checkout's, as `ab.py` does),
builds every graph of its cell (shape, bound, action), runs each runner once on a 50-step
graph of the same shape (first-call costs: imports, caches), then, after a `gc.collect()`,
runs each runner once at full size inside `operator.call`, which nothing else calls:
callgrind counts only while that function is on the stack (`--toggle-collect`) and
writes one count per call (`--dump-after`). Runners: `floor`, `floor+scope`, each
version's `run` and `run+timeout`, and this checkout's `run+retry` and `run+inputs` (as in
`lifecycle.py`: a `Retry(attempts=3)` on every step through `RunOptions.retry`; `inputs`
on every edge with `keep_values=False`). `PYTHONHASHSEED=0` makes the runs repeatable.
"""

from __future__ import annotations

import argparse
import gc
import json
import operator
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import peers
import shapes
import trio
from ab import build_graph, commit_of, load
from lifecycle import INPUT_ACTIONS, RETRY
from report import _table, size_label
from run import update_readme
from runners import STEP_TIMEOUT, TIMINGS

HERE: Final = Path(__file__).resolve().parent
TARGET_SHAPES: Final = ("chain", "wide", "layered", "random")
WARM_SIZE: Final = 50
KEYS: Final = (
    "floor",
    "floor+scope",
    "base run",
    "head run",
    "base run+timeout",
    "head run+timeout",
    "head run+retry",
    "head run+inputs",
)


def _child(argv: Sequence[str]) -> None:
    """Run every runner once under callgrind's toggle; print the order of the counts."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--base", type=Path, required=True)
    parser.add_argument("--head", type=Path, required=True)
    parser.add_argument("--shape", required=True)
    parser.add_argument("--n", type=int, required=True)
    parser.add_argument("--limit", type=int, required=True)
    parser.add_argument("--action", required=True)
    args = parser.parse_args(argv)
    libs = {
        "base": load(args.base / "src", "exegraph_base"),
        "head": load(args.head / "src", "exegraph_head"),
    }
    timing = TIMINGS[args.action]

    def runners(shape: shapes.Shape, limit: int) -> dict[str, Callable[[], object]]:
        n = len(shape)
        actions = [timing.trio] * n
        found: dict[str, Callable[[], object]] = {
            "floor": lambda: trio.run(peers.floor, actions),
            "floor+scope": lambda: trio.run(peers.floor_scoped, actions, STEP_TIMEOUT),
        }
        for version, lib in libs.items():
            graph = build_graph(lib, shape, actions)
            graph.priority(shape.names[0])
            plain = lib.RunOptions(max_concurrency=limit)
            timed = lib.RunOptions(max_concurrency=limit, step_timeout=STEP_TIMEOUT)
            found[f"{version} run"] = _bind(lib.run, graph, plain)
            found[f"{version} run+timeout"] = _bind(lib.run, graph, timed)
        head = libs["head"]
        graph = build_graph(head, shape, actions)
        graph.priority(shape.names[0])
        retry = head.RunOptions(max_concurrency=limit, retry=head.Retry(attempts=RETRY.attempts))
        found["head run+retry"] = _bind(head.run, graph, retry)
        take = INPUT_ACTIONS[args.action]
        steps = [
            head.Step(name, take, depends_on=ds, inputs={d: d for d in ds})
            for name, ds in zip(shape.names, shape.dep_names, strict=True)
        ]
        inputs = head.Graph(steps)
        inputs.priority(shape.names[0])
        released = head.RunOptions(max_concurrency=limit, keep_values=False)
        found["head run+inputs"] = _bind(head.run, inputs, released)
        return found

    warm = shapes.make(args.shape, WARM_SIZE)
    for go in runners(warm, min(args.limit, WARM_SIZE)).values():
        go()
    shape = shapes.make(args.shape, args.n)
    measured = runners(shape, args.limit)
    for key in KEYS:
        gc.collect()
        operator.call(measured[key])  # counted: callgrind toggles on this C function
    print(json.dumps(list(KEYS)))


def _bind(run: Any, graph: Any, options: Any) -> Callable[[], object]:
    return lambda: trio.run(run, graph, options)


@dataclass(frozen=True)
class CountCell:
    """Instructions of every runner in one cell.

    Attributes:
        size: steps.
        shape: the shape's name.
        limit: the bound.
        action: `noop` or `yield`.
        counts: instructions of one run, by runner key.
    """

    size: int
    shape: str
    limit: int
    action: str
    counts: dict[str, int]

    def per_step(self, key: str) -> float:
        """Instructions per step of runner `key`."""
        return self.counts[key] / self.size

    def ratio(self, key: str, base: str) -> float:
        """Instructions of `key` ÷ those of `base`."""
        return self.counts[key] / self.counts[base]


def measure(base: Path, head: Path, cell: tuple[str, int, int, str]) -> CountCell:
    """One cell (shape, steps, bound, action): a fresh process under callgrind."""
    kind, n, limit, action = cell
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "callgrind.out"
        command = [
            "valgrind",
            "--tool=callgrind",
            "--collect-atstart=no",
            "--toggle-collect=_operator_call",
            "--dump-after=_operator_call",
            f"--callgrind-out-file={out}",
            sys.executable,
            str(Path(__file__)),
            "--child",
            *("--base", str(base), "--head", str(head), "--shape", kind),
            *("--n", str(n), "--limit", str(limit), "--action", action),
        ]
        # `exegraph_trio` (which the bench's own modules import) is head's too.
        env = {**os.environ, "PYTHONHASHSEED": "0", "PYTHONPATH": str(head / "src")}
        done = subprocess.run(command, capture_output=True, text=True, check=False, env=env)
        if done.returncode:
            raise RuntimeError(f"{command} failed:\n{done.stderr[-3000:]}")
        keys = json.loads(done.stdout.strip().splitlines()[-1])
        dumps = sorted(
            Path(tmp).glob("callgrind.out.*"), key=lambda p: int(p.name.rsplit(".", 1)[1])
        )
        totals = []
        for dump in dumps:
            found = re.search(r"^(?:summary|totals): (\d+)", dump.read_text(), re.MULTILINE)
            totals.append(int(found.group(1)) if found else 0)
    if len(totals) != len(keys):
        raise RuntimeError(f"{len(totals)} callgrind dumps for {len(keys)} runners")
    return CountCell(n, kind, limit, action, dict(zip(keys, totals, strict=True)))


def _pct(x: float) -> str:
    return f"{(x - 1) * 100:+.1f} %"


def render(cells: Sequence[CountCell], meta: str) -> str:
    """The two tables: the A/B of a plain graph, and the lifecycle's runners."""
    ab_rows, lifecycle_rows = [], []
    for c in cells:
        where = [size_label(c.size), c.shape, "n" if c.limit >= c.size else str(c.limit)]
        where.append(c.action)
        ab_rows.append(
            [
                *where,
                f"{c.per_step('floor') / 1e3:.1f}",
                f"{c.ratio('base run', 'floor'):.3f}",
                f"{c.ratio('head run', 'floor'):.3f}",
                _pct(c.ratio("head run", "base run")),
                f"{c.per_step('floor+scope') / 1e3:.1f}",
                f"{c.ratio('base run+timeout', 'floor+scope'):.3f}",
                f"{c.ratio('head run+timeout', 'floor+scope'):.3f}",
                _pct(c.ratio("head run+timeout", "base run+timeout")),
            ]
        )
        lifecycle_rows.append(
            [
                *where,
                f"{c.per_step('head run') / 1e3:.1f}",
                f"{c.per_step('head run+retry') / 1e3:.1f}",
                f"{c.per_step('head run+inputs') / 1e3:.1f}",
                f"{c.ratio('head run+retry', 'head run'):.3f}",
                f"{c.ratio('head run+inputs', 'head run'):.3f}",
            ]
        )
    lines = [
        "## Instructions per step (callgrind): load-blind A/B and lifecycle",
        "",
        meta,
        "",
        "### A graph using none of the lifecycle: base and head, instructions ÷ the floor's",
        "",
    ]
    lines += _table(
        [
            "N",
            "shape",
            "bound",
            "actions",
            "floor k instr/step",
            "base run ÷ floor",
            "head run ÷ floor",
            "head ÷ base run",
            "floor+scope k instr/step",
            "base run+timeout ÷ floor+scope",
            "head run+timeout ÷ floor+scope",
            "head ÷ base run+timeout",
        ],
        ab_rows,
    )
    lines += [
        "",
        "### The lifecycle (head): instructions ÷ those of the same run without",
        "",
    ]
    lines += _table(
        [
            "N",
            "shape",
            "bound",
            "actions",
            "run k instr/step",
            "run+retry k instr/step",
            "run+inputs k instr/step",
            "run+retry ÷ run",
            "run+inputs ÷ run",
        ],
        lifecycle_rows,
    )
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> None:
    """Count every cell's instructions (in parallel jobs) and write the report."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        _child(argv[1:])
        return
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--base", type=Path, required=True, help="checkout to compare with")
    parser.add_argument("--head", type=Path, default=HERE.parent, help="default: this one")
    parser.add_argument("--sizes", default="10000")
    parser.add_argument("--shapes", default=",".join(TARGET_SHAPES))
    parser.add_argument("--actions", default="noop,yield")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "instructions.md")
    parser.add_argument(
        "--update-readme",
        action="store_true",
        help="also replace the `instructions` section of bench/README.md",
    )
    args = parser.parse_args(argv)
    base, head = args.base.resolve(), args.head.resolve()
    cells = []
    for n in (int(float(s)) for s in args.sizes.split(",")):
        for kind in args.shapes.split(","):
            shape = shapes.make(kind, n)
            for limit in [4, n] if shape.width > 4 else [4]:
                cells += [(kind, n, limit, action) for action in args.actions.split(",")]
    started = time.perf_counter()

    def one(cell: tuple[str, int, int, str]) -> CountCell:
        found = measure(base, head, cell)
        print(
            f"  {cell[0]:>8} n={cell[1]:<7} limit={cell[2]:<7} {cell[3]:>5}: head ÷ base run "
            f"{found.ratio('head run', 'base run'):.3f}, run+retry ÷ run "
            f"{found.ratio('head run+retry', 'head run'):.3f}, run+inputs ÷ run "
            f"{found.ratio('head run+inputs', 'head run'):.3f}",
            flush=True,
        )
        return found

    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        results = list(pool.map(one, cells))
    meta = (
        f"date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, base: {commit_of(base)}, "
        f"head: {commit_of(head)}, trio: {trio.__version__}, one run per runner and cell "
        f"(PYTHONHASHSEED=0), time: {time.perf_counter() - started:.0f} s. Command: "
        f"`python bench/instructions.py --base <checkout of base> --sizes {args.sizes} "
        f"--shapes {args.shapes} --actions {args.actions}`"
    )
    text = render(results, meta)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print()
    print(text)
    if args.update_readme:
        update_readme(text, "instructions")


if __name__ == "__main__":
    main()
