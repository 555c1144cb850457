"""Python opcodes executed per step, by function: an exact profile, blind to the machine's load.

```
python bench/opcodes.py --base /tmp/exegraph-8a1c272             # plain run: base → head
python bench/opcodes.py --feature retry                          # head: run → run+retry
python bench/opcodes.py --feature inputs --shapes chain --limit 4
python bench/opcodes.py --least required_core --shapes layered,random  # least → head
```

A `sys.settrace` hook with `f_trace_opcodes` counts every opcode the interpreter executes
in each Python function during one `run` (after one untimed run of the same graph). The
counts are exact and repeatable, so two runs can be compared function by function to the
opcode, however busy the machine is; they leave out what C code does (Trio's and
exegraph's calls into `heapq`, list growth, allocation), and an opcode is not a fixed
time, so they say *where* a change adds work, not how many microseconds it costs (for
that, `ab.py`, `instructions.py`). The tracer slows the run down about 50 times: 2 000
steps (the default) are enough, the counts per step barely depend on the size.

Three comparisons: `--base CHECKOUT` runs the same plain graph with that checkout's
`exegraph_trio` and this one's (`ab.py` imports both); `--feature retry|inputs|pools` runs this
checkout's plain graph against the same run with the lifecycle feature (`lifecycle.py`);
`--least required|required_core` runs that least runner (`least.py`, no times kept) against
this checkout's plain run. Functions are matched by file and name across the two package
copies.
"""

from __future__ import annotations

import argparse
import collections
import functools
import gc
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType, ModuleType
from typing import Any, Final

import peers
import shapes
import trio
from ab import build_graph, load
from lifecycle import INPUT_ACTIONS, RETRY

HERE: Final = Path(__file__).resolve().parent
ACTIONS: Final = {"noop": peers.noop, "yield": peers.trio_yield}
Key = tuple[str, str]
"""A function: its file (from the package down) and its name."""
Tracer = Callable[[FrameType, str, Any], Any]


def _where(filename: str) -> str:
    for marker in ("/src/", "site-packages/", "/bench/"):
        if marker in filename:
            filename = filename.split(marker, 1)[1]
    for alias in ("exegraph_base", "exegraph_head"):
        filename = filename.replace(alias, "exegraph_trio")
    return filename


def count(go: Callable[[], object]) -> collections.Counter[Key]:
    """Opcodes executed by `go()`, by function."""
    counts: collections.Counter[Key] = collections.Counter()

    def tracer(frame: FrameType, event: str, arg: object) -> Tracer:
        frame.f_trace_opcodes = True
        key = (_where(frame.f_code.co_filename), frame.f_code.co_name)

        def local(frame: FrameType, event: str, arg: object) -> Tracer:
            if event == "opcode":
                counts[key] += 1
            return local

        return local

    gc.collect()
    sys.settrace(tracer)
    try:
        go()
    finally:
        sys.settrace(None)
    return counts


def _plain(lib: ModuleType, shape: shapes.Shape, action: str, limit: int) -> Callable[[], object]:
    graph = build_graph(lib, shape, [ACTIONS[action]] * len(shape))
    graph.priority(shape.names[0])
    options = lib.RunOptions(max_concurrency=limit)
    return lambda: trio.run(lib.run, graph, options)


def _featured(
    lib: ModuleType, shape: shapes.Shape, action: str, limit: int, feature: str
) -> Callable[[], object]:
    if feature == "retry":
        graph = build_graph(lib, shape, [ACTIONS[action]] * len(shape))
        options = lib.RunOptions(max_concurrency=limit, retry=lib.Retry(attempts=RETRY.attempts))
    elif feature == "pools":  # as pools.py: three pools over every other step
        names = ("db", "net", "gpu")
        graph = lib.Graph(
            [
                lib.Step(
                    name,
                    ACTIONS[action],
                    depends_on=ds,
                    pools=[names[i // 2 % 3]] if i % 2 == 0 else None,
                )
                for i, (name, ds) in enumerate(zip(shape.names, shape.dep_names, strict=True))
            ]
        )
        options = lib.RunOptions(max_concurrency=limit, pools={"db": 4, "net": 8, "gpu": 16})
    else:
        take = INPUT_ACTIONS[action]
        graph = lib.Graph(
            [
                lib.Step(name, take, depends_on=ds, inputs={d: d for d in ds})
                for name, ds in zip(shape.names, shape.dep_names, strict=True)
            ]
        )
        options = lib.RunOptions(max_concurrency=limit, keep_values=False)
    graph.priority(shape.names[0])
    return lambda: trio.run(lib.run, graph, options)


def _least(runner: str, shape: shapes.Shape, action: str, limit: int) -> Callable[[], object]:
    """`least.required` or `least.required_core` on the prebuilt shape, no times kept."""
    import least  # (imports `exegraph_trio`: only when asked for)

    _deps, dependents, priorities = least.least_build(shape)
    assert priorities is not None
    go = functools.partial(
        least.required if runner == "required" else least.required_core,
        shape.deps,
        least.ranks_of(priorities),
        shape.names,
        limit,
        [ACTIONS[action]] * len(shape),
        dependents=dependents,
        record=False,  # (as `exegraph.run` with no observer keeps none)
    )
    return lambda: trio.run(go)


def compare(
    before: Callable[[], object], after: Callable[[], object], n: int, title: str, top: int
) -> str:
    """Run both once untraced, then traced; the per-step difference, by function."""
    before()
    after()
    a, b = count(before), count(after)
    total_a, total_b = sum(a.values()), sum(b.values())
    lines = [
        f"## {title}",
        "",
        f"opcodes per step: {total_a / n:.1f} → {total_b / n:.1f} "
        f"({(total_b / total_a - 1) * 100:+.1f} %)",
        "",
        "| Δ opcodes/step | before | after | function |",
        "|---:|---:|---:|---|",
    ]
    changed = sorted((k for k in set(a) | set(b) if a[k] != b[k]), key=lambda k: -abs(b[k] - a[k]))
    lines += [
        f"| {(b[key] - a[key]) / n:+.2f} | {a[key] / n:.2f} | {b[key] / n:.2f} | "
        f"`{key[1]}` ({key[0]}) |"
        for key in changed[:top]
    ]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> None:
    """Compare the opcodes of two runs on each shape asked for and print the tables."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--base", type=Path, help="compare this checkout's plain run with ours")
    parser.add_argument(
        "--head", type=Path, default=HERE.parent, help="the other checkout (default: this one)"
    )
    parser.add_argument(
        "--feature", choices=("retry", "inputs", "pools"), help="or run → run+FEATURE"
    )
    parser.add_argument(
        "--least",
        choices=("required", "required_core"),
        help="or that least runner (least.py) → this checkout's plain run",
    )
    parser.add_argument("--shapes", default="chain,random")
    parser.add_argument("--n", type=int, default=2_000)
    parser.add_argument("--limit", default="4", help="max_concurrency: a number, or n")
    parser.add_argument("--action", choices=ACTIONS, default="noop")
    parser.add_argument("--top", type=int, default=15, help="functions to list")
    parser.add_argument("--out", type=Path, help="also write the report to this file")
    args = parser.parse_args(argv)
    if sum(x is not None for x in (args.base, args.feature, args.least)) != 1:
        parser.error("give one of --base CHECKOUT, --feature FEATURE and --least RUNNER")
    head = load(args.head.resolve() / "src", "exegraph_head")
    base = load(args.base.resolve() / "src", "exegraph_base") if args.base else None
    parts = []
    for kind in args.shapes.split(","):
        shape = shapes.make(kind, args.n)
        limit = args.n if args.limit == "n" else int(args.limit)
        where = f"{kind}[{args.n}], max_concurrency={limit}, {args.action} actions"
        if args.least is not None:
            before = _least(args.least, shape, args.action, limit)
            title = f"{args.least} → run: {where}"
            after = _plain(head, shape, args.action, limit)
        elif base is not None:
            before = _plain(base, shape, args.action, limit)
            title = f"plain run, {args.base.name} → {args.head.resolve().name}: {where}"
            after = _plain(head, shape, args.action, limit)
        else:
            before = _plain(head, shape, args.action, limit)
            title = f"run → run+{args.feature}: {where}"
            after = _featured(head, shape, args.action, limit, args.feature)
        parts.append(compare(before, after, args.n, title, args.top))
        print(parts[-1])
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text("\n".join(parts))


if __name__ == "__main__":
    main()
