"""Profile one exegraph run, to see where the per-step time goes.

```
python bench/profiling.py                                  # cProfile, chain and layered, 10⁴
python bench/profiling.py --shapes layered --limit 4 --top 30
python bench/profiling.py --tool pyinstrument              # needs `pip install pyinstrument`
python bench/profiling.py --shapes wide --action yield     # actions that yield once
python bench/profiling.py --shapes random --feature inputs # inputs on every edge
python bench/profiling.py --shapes random --feature retry  # a Retry on every step
python bench/profiling.py --out bench/results/profile.md   # also keep the report
```

With cProfile it prints the functions with the most own time (`tottime`) and the own time
summed by source file (exegraph's scheduler against Trio's core, …), all as µs per step.
cProfile adds a fixed cost to every Python call, which inflates code that makes many
small calls; pyinstrument samples instead and shows the call tree. The graph is built and
its priorities computed before profiling starts: only `run` is profiled.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
from collections.abc import Sequence
from pathlib import Path
from typing import Final

import lifecycle
import peers
import shapes
import trio
from runners import build_graph

import exegraph_trio as exegraph


def _short(path: str) -> str:
    """A source path cut to its package (`trio/_core/_run.py`); `~` (C code) → `builtins`."""
    if path == "~":
        return "builtins"
    if path.startswith("<"):
        return path
    parts = Path(path).parts
    for anchor in ("exegraph_trio", "trio", "outcome", "attr", "attrs"):
        if anchor in parts:
            return "/".join(parts[parts.index(anchor) :])
    return "/".join(parts[-2:])


ACTIONS: Final = {"noop": peers.noop, "yield": peers.trio_yield}


FEATURES: Final = ("none", "retry", "inputs")
"""What of the step lifecycle the profiled run uses (see `lifecycle.py`): nothing, a
`Retry(attempts=3)` on every step through `RunOptions.retry`, or `inputs` on every edge
with `keep_values=False`."""


def _prepare(
    kind: str, n: int, limit: int, action: str, feature: str = "none"
) -> tuple[exegraph.Graph, exegraph.RunOptions]:
    shape = shapes.make(kind, n)
    options = exegraph.RunOptions(max_concurrency=limit)
    if feature == "inputs":
        graph = exegraph.Graph(lifecycle.input_steps(shape, [lifecycle.INPUT_ACTIONS[action]] * n))
        options = exegraph.RunOptions(max_concurrency=limit, keep_values=False)
    else:
        graph = build_graph(shape, [ACTIONS[action]] * n)
        if feature == "retry":
            options = exegraph.RunOptions(max_concurrency=limit, retry=lifecycle.RETRY)
    graph.priority(shape.names[0])
    trio.run(exegraph.run, graph, options)  # warm up
    return graph, options


def profile_cprofile(
    kind: str, n: int, limit: int, top: int, action: str = "noop", *, feature: str = "none"
) -> str:
    """Profile `run` on one shape with cProfile: top functions and per-file totals, per step."""
    graph, options = _prepare(kind, n, limit, action, feature)
    profiler = cProfile.Profile()
    profiler.enable()
    trio.run(exegraph.run, graph, options)
    profiler.disable()
    stats = pstats.Stats(profiler)
    raw = stats.stats  # type: ignore[attr-defined]
    total = sum(entry[2] for entry in raw.values())
    rows = sorted(raw.items(), key=lambda item: -item[1][2])[:top]
    lines = [
        f"## cProfile: run on {kind}[{n}], max_concurrency={limit}, {action} actions"
        + ("" if feature == "none" else f", lifecycle feature: {feature}"),
        f"total own time {total * 1e6 / n:.1f} µs/step under the profiler",
        "",
        "| own µs/step | share | calls/step | cumulative µs/step | function |",
        "|---:|---:|---:|---:|---|",
    ]
    for (path, line, name), (_, calls, own, cumulative, _) in rows:
        lines.append(
            f"| {own * 1e6 / n:.2f} | {own / total:.0%} | {calls / n:.2f} | "
            f"{cumulative * 1e6 / n:.2f} | `{name}` ({_short(path)}:{line}) |"
        )
    by_file: dict[str, float] = {}
    for (path, _, _), entry in raw.items():
        by_file[_short(path)] = by_file.get(_short(path), 0.0) + entry[2]
    lines += ["", "| own µs/step | share | file |", "|---:|---:|---|"]
    for path, own in sorted(by_file.items(), key=lambda item: -item[1])[:12]:
        lines.append(f"| {own * 1e6 / n:.2f} | {own / total:.0%} | {path} |")
    return "\n".join(lines) + "\n"


def profile_pyinstrument(
    kind: str, n: int, limit: int, action: str = "noop", *, feature: str = "none"
) -> str:
    """Sample `run` on one shape with pyinstrument and return its call tree as text."""
    try:
        from pyinstrument import Profiler
    except ImportError:
        return "pyinstrument is not installed: pip install pyinstrument\n"
    graph, options = _prepare(kind, n, limit, action, feature)
    profiler = Profiler(interval=0.0002)
    profiler.start()
    trio.run(exegraph.run, graph, options)
    profiler.stop()
    text: str = profiler.output_text(unicode=True, color=False)
    title = f"## pyinstrument: run on {kind}[{n}], max_concurrency={limit}, {action} actions"
    return f"{title}\n\n{text}"


def main(argv: Sequence[str] | None = None) -> None:
    """Profile `run` on each shape asked for and print the result."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--shapes", default="chain,layered", help="comma-separated shapes")
    parser.add_argument("--n", type=int, default=10_000, help="steps (default 10000)")
    parser.add_argument("--limit", type=int, default=0, help="max_concurrency (default: n)")
    parser.add_argument("--tool", choices=("cprofile", "pyinstrument"), default="cprofile")
    parser.add_argument(
        "--action", choices=ACTIONS, default="noop", help="what every step does (default noop)"
    )
    parser.add_argument(
        "--feature",
        choices=FEATURES,
        default="none",
        help="the lifecycle feature every step uses: retry (RunOptions(retry=Retry(attempts="
        "3)), never failing) or inputs (on every edge, keep_values=False); default none",
    )
    parser.add_argument("--top", type=int, default=20, help="functions to list (cProfile)")
    parser.add_argument("--out", type=Path, help="also write the report to this file")
    args = parser.parse_args(argv)
    limit = args.limit or args.n
    parts = []
    for kind in args.shapes.split(","):
        if args.tool == "cprofile":
            parts.append(
                profile_cprofile(kind, args.n, limit, args.top, args.action, feature=args.feature)
            )
        else:
            parts.append(
                profile_pyinstrument(kind, args.n, limit, args.action, feature=args.feature)
            )
        print(parts[-1])
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text("\n".join(parts))


if __name__ == "__main__":
    main()
