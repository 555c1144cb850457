"""The `exegraph` command line: run, plan, list and draw a graph defined in a Python module.

```console
$ exegraph run ci/pipeline.py:graph --select "deploy-*" -j 4 --keep-going
$ python -m exegraph_trio plan pipelines.deploy:build_graph
```

`main` is the console script's entry point (and `python -m exegraph_trio`'s). Exit statuses:
0 every step succeeded (or nothing was run), 1 a step failed, 2 a usage or graph error (a
`MODULE:ATTR` that cannot be loaded, a bad selector, a graph the run refuses), 130 the run
was interrupted (Ctrl-C: the engine tears the held resources down first), 141 standard
output was closed before everything was printed (`exegraph list ... | head -1`), as a
process killed by `SIGPIPE` would end, 74 what is printed could not be written (a full
disk; `EX_IOERR`), 143 the run was terminated (SIGTERM, handled as Ctrl-C is). A step
that calls `sys.exit(N)` ends the command with `N`, after the table.

Output: what a command is for goes to stdout (the result table of `run`, the plan, the
list, the picture), so it can be redirected or piped; errors, the interruption notice and
the live progress display go to stderr, so they never mix into it.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.util
import inspect
import io
import os
import signal
import sys
import threading
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType, ModuleType
from typing import TYPE_CHECKING, Final, NoReturn

import attrs
import trio

from ._durations import DurationLog, names_no_file, read_log_file
from ._errors import RunError, close_names, did_you_mean
from ._graph import Graph, GraphBuilder
from ._instrument import Instrument, RunInfo
from ._options import ErrorPolicy, RunOptions
from ._plan import plan
from ._result import NAME_WIDTH, RunResult, _describe, cells, pad, printable
from ._run import run_with_result
from ._select import RemovalError
from ._step import Step
from ._version import __version__

if TYPE_CHECKING:
    from _typeshed import SupportsWrite

__all__ = ["main"]

EXIT_OK: Final = 0
EXIT_STEP_FAILED: Final = 1
EXIT_USAGE: Final = 2
EXIT_IO_ERROR: Final = 74
"""The output could not be written (`EX_IOERR` of BSD's sysexits.h)."""
EXIT_INTERRUPTED: Final = 130
EXIT_BROKEN_PIPE: Final = 141
EXIT_TERMINATED: Final = 143
"""SIGTERM (`kill`, `docker stop`, a CI job cancelled) stopped the run: 128 + 15, as shells say."""

_EPILOG: Final = """\
MODULE:ATTR names the graph. MODULE is a dotted module name found from the
current directory or on sys.path (pipelines.deploy), or the path of a .py file
(ci/pipeline.py). ATTR is a Graph, a GraphBuilder, or a function returning one
(graph, build_graph).

exit status: 0 success, 1 a step failed, 2 a usage or graph error,
74 the output could not be written (a full disk), 130 interrupted (Ctrl-C;
held resources are torn down first), 141 standard output closed early
(| head), 143 terminated (SIGTERM; as Ctrl-C, the run is cancelled and its
resources torn down); a step calling sys.exit(N) ends the command with N.
"""


class _CommandError(Exception):
    """What went wrong, in one line for stderr; the command exits with `status` (2)."""

    def __init__(self, message: str, *, status: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.status = status


# -- the arguments -----------------------------------------------------------------------


def _jobs(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {value}")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number of seconds > 0, got {text}")
    return value


def _pool(text: str) -> tuple[str, int]:
    name, equals, size = text.partition("=")
    if not equals or not name.strip():
        raise argparse.ArgumentTypeError(f"write a pool as NAME=SIZE, like db=2, not {text!r}")
    return name.strip(), _jobs(size)


class _Parser(argparse.ArgumentParser):
    """argparse's parser, whose usage errors are written on one line, escaped.

    (They quote the command line: an argument holding a line break or an escape code
    would otherwise reach the terminal as it is.) Its subcommands' parsers are of this
    class too: argparse makes them of their parent's.
    """

    def error(self, message: str) -> NoReturn:
        super().error(printable(message))

    def _print_message(self, message: str, file: SupportsWrite[str] | None = None) -> None:
        # argparse drops an error writing `--help` or `--version`, and exits 0: on stdout
        # it propagates, to `main`, which says it (141, 74). (Usage errors, on stderr,
        # are dropped as argparse drops them: their status, 2, stands.)
        if message and file is not None and file is sys.stdout:
            file.write(message)
        else:
            super()._print_message(message, file)


def _parser(prog: str) -> argparse.ArgumentParser:
    def command(
        name: str, summary: str, description: str, *parents: argparse.ArgumentParser
    ) -> argparse.ArgumentParser:
        return commands.add_parser(
            name,
            parents=[common, *parents],
            help=summary,
            description=description,
            epilog=_EPILOG,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )

    parser: argparse.ArgumentParser = _Parser(
        prog=prog,
        description="Run, plan, list or draw a graph of exegraph steps defined in Python.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)

    common = _Parser(add_help=False)
    common.add_argument("target", metavar="MODULE:ATTR", help="the graph (see below)")
    common.add_argument(
        "--select",
        metavar="S",
        help="only the steps S names and the steps they need: name globs (deploy-*), "
        "tag:GLOB, TERM+ adds the dependents, !TERM removes; terms separated by spaces "
        "or commas",
    )
    common.add_argument(
        "--traceback",
        action="store_true",
        help="show the traceback of an error loading the graph, not only its message",
    )

    schedule = _Parser(add_help=False)
    schedule.add_argument(
        "-j",
        "--jobs",
        type=_jobs,
        metavar="N",
        help="at most N steps at once (default: twice the number of CPUs)",
    )
    schedule.add_argument(
        "--pool",
        type=_pool,
        action="append",
        default=[],
        metavar="NAME=SIZE",
        help="a pool of SIZE slots for the steps that use pool NAME (Step(pools=...)); "
        "repeat it for each pool",
    )

    run = command(
        "run",
        "run the graph and print how every step went",
        "Run the graph, then print a table of every step (status, start, duration,\n"
        "error) on stdout.",
        schedule,
    )
    run.add_argument(
        "--keep-going",
        action="store_true",
        help="after a failure, still run every step that does not need the failed one "
        "(ContinueOnError; default: stop at the first failure, FailFast)",
    )
    run.add_argument(
        "--timeout",
        type=_seconds,
        metavar="S",
        help="seconds each step may run (a step's own timeout wins)",
    )
    run.add_argument(
        "--dry-run", action="store_true", help="print the plan instead of running, exit 0"
    )
    run.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        help="show the run's progress on stderr (default: on when stderr is a terminal)",
    )
    _add_durations(run, "read to order the steps, updated with this run's")
    run.add_argument(
        "--trace",
        metavar="FILE.json",
        help="write the run as a Chrome trace (open it in Perfetto or chrome://tracing)",
    )
    run.set_defaults(handler=_run)

    plan_ = command(
        "plan",
        "print what a run would do, without running anything",
        "Print when each step would start and end, the makespan and the critical path,\n"
        "each step taking its learned duration (--durations), else the median of the\n"
        "known ones, else 1 s. Nothing is run.",
        schedule,
    )
    _add_durations(plan_, "read, not updated")
    plan_.set_defaults(handler=_plan)

    list_ = command(
        "list",
        "list the steps, their tags and dependencies",
        "Print one line per step, in graph order: its name, [its tags], and after '<-'\n"
        "the steps it depends on.",
    )
    list_.set_defaults(handler=_list)

    graph = command(
        "graph",
        "print the graph as a Mermaid or Graphviz picture",
        "Print the graph as Mermaid flowchart text (paste it into a Markdown ```mermaid\n"
        "block) or as Graphviz DOT (dot -Tsvg).",
    )
    graph.add_argument(
        "--format",
        choices=("mermaid", "dot"),
        default="mermaid",
        help="the picture's language (default: mermaid)",
    )
    graph.set_defaults(handler=_graph)
    return parser


def _add_durations(parser: argparse.ArgumentParser, how: str) -> None:
    parser.add_argument(
        "--durations",
        metavar="FILE",
        help=f"a JSON file of learned step durations (exegraph.DurationLog), {how}",
    )


# -- MODULE:ATTR ---------------------------------------------------------------------------


def _load_graph(target: str, selector: str | None) -> Graph:
    """The graph `target` names, narrowed to `selector`; a `_CommandError` saying what is wrong."""
    module_name, colon, attribute = target.rpartition(":")
    if not colon or not module_name or not attribute:
        raise _CommandError(
            f"name the graph as MODULE:ATTR, like pipeline:graph or ci/pipeline.py:graph, "
            f"not {target!r}"
        )
    value: object = _import(module_name)
    where = module_name
    for part in attribute.split("."):
        try:
            value = getattr(value, part)
        except AttributeError:
            hint = _attribute_hint(value, part)
            raise _CommandError(f"{where} has no attribute {part!r}{hint}") from None
        except (Exception, SystemExit) as exc:  # a property or a module `__getattr__`
            raise _CommandError(f"getting {part!r} from {where} raised {_describe(exc)}") from exc
        where = f"{where}:{part}" if where == module_name else f"{where}.{part}"
    graph = _as_graph(value, target)
    if selector is None:
        return graph
    try:
        return graph.select(selector)
    except RemovalError as exc:  # (its way out with `with_dependencies=False` is no flag here)
        raise _CommandError(f"--select: {exc.without_keyword}") from exc
    except ValueError as exc:
        raise _CommandError(f"--select: {exc}") from exc


def _attribute_hint(namespace: object, missing: str) -> str:
    """Close names among the graphs, builders and functions of `namespace`, else its graphs."""
    # Looked up statically: a property (or a module `__getattr__`) is not run for a hint.
    candidates: dict[str, object] = {
        name: inspect.getattr_static(namespace, name, None)
        for name in dir(namespace)
        if not name.startswith("_")
    }
    usable = [
        name
        for name, value in candidates.items()
        if isinstance(value, Graph | GraphBuilder) or inspect.isfunction(value)
    ]
    hint = did_you_mean(close_names(missing, usable))
    graphs = [name for name in usable if isinstance(candidates[name], Graph | GraphBuilder)]
    if not hint and graphs:
        hint = f" (its graphs: {', '.join(map(repr, graphs))})"
    return hint


def _import(name: str) -> ModuleType:
    if name.endswith(".py") or "/" in name or os.sep in name:
        return _import_file(Path(name))
    cwd = os.getcwd()
    if not {"", ".", cwd} & set(sys.path):
        sys.path.insert(0, cwd)  # as `python -m` does; a console script's sys.path lacks it
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and (name == exc.name or name.startswith(f"{exc.name}.")):
            raise _CommandError(
                f"no module named {exc.name!r} in the current directory or on sys.path "
                "(give a file as path/to/file.py)"
            ) from exc
        raise _CommandError(f"cannot import {name!r}: {_describe(exc)}") from exc
    except (Exception, SystemExit) as exc:  # `sys.exit()` at import: not a success
        raise _CommandError(f"cannot import {name!r}: {_describe(exc)}") from exc


def _import_file(path: Path) -> ModuleType:
    given = str(path)
    if not path.is_file():
        what = "a directory, not a .py file" if path.is_dir() else "no such file"
        raise _CommandError(f"cannot import {given!r}: {what}")
    path = path.resolve()
    # Imported as `python path/to/file.py` would see it, its folder first on sys.path, but
    # under its own name rather than __main__, so its `if __name__ == "__main__":` does
    # not run. A name with a dot (`deploy.prod.py`) would be a package's module to pickle:
    # such a file is imported under another name, as one named like a module imported.
    stem = path.stem
    clash = stem in sys.modules
    name = f"_exegraph_file_{stem.replace('.', '_')}" if clash or "." in stem else stem
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise _CommandError(f"cannot import {given!r}: not a Python module")
    sys.path.insert(0, str(path.parent))
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    # (before its code runs: `in_process(fn)` checks there that `fn` can be sent)
    by_value = name != stem and _pickled_by_value(module)
    try:
        spec.loader.exec_module(module)
    except (Exception, SystemExit) as exc:  # `sys.exit()` at import: not a success
        del sys.modules[name]
        raise _CommandError(f"cannot import {given!r}: {_describe(exc)}") from exc
    if name != stem and not clash and not by_value:
        _complain(
            f"exegraph: warning: {given} has a dot in its name: a worker process "
            "(in_process, on_cluster) cannot import it, and cloudpickle, which would send "
            "its functions instead, is not installed: rename it if its steps fail there"
        )
    if clash:
        _complain(
            f"exegraph: warning: {given} is named like the module {path.stem}, already "
            f"imported: it is imported as {name}; a worker process (in_process, "
            f"on_cluster) finds the file first and may import it in place of {path.stem}: "
            "rename it if its steps fail there"
        )
    return module


def _pickled_by_value(module: ModuleType) -> bool:
    """Have cloudpickle send what `module` defines by value, when it is installed.

    A file imported under a name other than its own (`_exegraph_file_json` for a `json.py`,
    the standard library's `json` being imported already) cannot be imported under that
    name by a worker process: its functions, sent by reference, would fail every
    `in_process` or `on_cluster` step there with a `ModuleNotFoundError`. (Without
    cloudpickle, which trio-parallel uses when it is installed and distributed always
    does, they still do: the file must then be renamed.) Returns whether it will.
    """
    try:
        cloudpickle = importlib.import_module("cloudpickle")
    except ImportError:
        return False
    cloudpickle.register_pickle_by_value(module)
    return True


def _as_graph(value: object, target: str) -> Graph:
    if isinstance(value, Graph):
        return value
    if isinstance(value, GraphBuilder):
        return _build(value, target)
    if callable(value) and not isinstance(value, type):
        try:
            made = value()
        except (Exception, SystemExit) as exc:
            raise _CommandError(f"{target}() raised {_describe(exc)}") from exc
        if isinstance(made, Graph):
            return made
        if isinstance(made, GraphBuilder):
            return _build(made, target)
        if inspect.iscoroutine(made):
            made.close()
            raise _CommandError(
                f"{target} is an async function; make it a plain def that returns the graph"
            )
        raise _CommandError(
            f"{target}() returned {_kind(made)}, not an exegraph Graph or GraphBuilder"
        )
    hint = ""
    if isinstance(value, (list, tuple)) and value and all(isinstance(s, Step) for s in value):
        hint = "; make a graph of the steps: graph = exegraph.Graph(steps)"
    raise _CommandError(
        f"{target} is {_kind(value)}, not an exegraph Graph, a GraphBuilder or a function "
        f"returning one{hint}"
    )


def _build(builder: GraphBuilder, target: str) -> Graph:
    try:
        return builder.build()
    except ValueError as exc:
        raise _CommandError(f"{target} is not a valid graph: {_describe(exc)}") from exc


def _kind(value: object) -> str:
    if value is None:
        return "None"
    if isinstance(value, type):
        return f"the class {value.__name__}"
    name = type(value).__name__
    return f"an {name}" if name[:1].lower() in "aeiou" else f"a {name}"


# -- the commands --------------------------------------------------------------------------


def _options(args: argparse.Namespace) -> RunOptions:
    jobs: int | None = args.jobs
    keep_going: bool = getattr(args, "keep_going", False)
    timeout: float | None = getattr(args, "timeout", None)
    durations: str | None = args.durations
    pools: list[tuple[str, int]] = args.pool
    named = [name for name, _ in pools]
    twice = sorted({name for name in named if named.count(name) > 1})
    if twice:
        listed = ", ".join(repr(name) for name in twice)
        raise _CommandError(f"--pool gives {listed} more than once; give each pool once")
    if durations is not None:
        _check_durations_path(durations)
    return RunOptions(
        max_concurrency=jobs or 0,
        pools=dict(pools),
        error_policy=ErrorPolicy.CONTINUE_ON_ERROR if keep_going else ErrorPolicy.FAIL_FAST,
        step_timeout=timeout,
        durations=None if durations is None else DurationLog(durations),
    )


def _check_durations_path(durations: str) -> None:
    """Refuse, before anything runs, a `--durations` path that could never be saved to.

    A path typed wrong must not lose the file it names (`DurationLog` never replaces a
    file that is not a durations log, and here that is an error rather than a warning).
    """
    path = Path(durations)
    shown = printable(durations)
    if names_no_file(durations):
        raise _CommandError(f"--durations {shown}: name a file, like durations.json")
    found = read_log_file(path)
    if found.problem is not None:
        raise _CommandError(f"--durations {shown}: {found.problem}; {found.advice}")
    folder = path.absolute().parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent  # (the missing folders are made at the first save)
    if not folder.is_dir():
        raise _CommandError(f"--durations {shown}: {str(folder)!r} is a file, not a folder")


def _plan(args: argparse.Namespace) -> int:
    _print_plan(_load_graph(args.target, args.select), _options(args), args.target)
    return EXIT_OK


def _print_plan(graph: Graph, options: RunOptions, target: str) -> None:
    try:
        preview = plan(graph, options)
    except ValueError as exc:
        raise _refused("plan", target, graph, exc) from exc
    print(preview.table())


def _refused(what: str, target: str, graph: Graph, exc: Exception) -> _CommandError:
    """The error for a graph that `run` or `plan` refused before starting."""
    hint = ""
    if any(step.pools for step in graph) and "pool" in str(exc):
        hint = "; give each pool the steps use as --pool NAME=SIZE"
    return _CommandError(f"cannot {what} {target}: {_describe(exc)}{hint}")


def _list(args: argparse.Namespace) -> int:
    graph = _load_graph(args.target, args.select)
    rows = [
        (
            printable(step.name),
            f"[{', '.join(map(printable, step.tags))}]" if step.tags else "",
            f"<- {', '.join(map(printable, step.depends_on))}" if step.depends_on else "",
        )
        for step in graph
    ]
    # (at most `NAME_WIDTH` cells, as in tables: one long name does not pad every row)
    name_width = min(NAME_WIDTH, max((cells(name) for name, _, _ in rows), default=0))
    tags_width = min(NAME_WIDTH, max((cells(tags) for _, tags, _ in rows), default=0))
    for name, tags, after in rows:
        print(f"{pad(name, name_width)}  {pad(tags, tags_width)}  {after}".rstrip())
    return EXIT_OK


def _graph(args: argparse.Namespace) -> int:
    graph = _load_graph(args.target, args.select)
    picture = graph.to_dot() if args.format == "dot" else graph.to_mermaid()
    # Line by line, in the stream's blocks: one large write cut short by a reader that
    # stopped (`| head -1`) returns what it wrote, and Python loses the rest without an
    # error; a next write then raises `BrokenPipeError` (status 141).
    out = sys.stdout
    if out is None:  # (closed as the process began, `>&-`: `print` writes nothing then)
        return EXIT_OK
    out.writelines(picture.splitlines(keepends=True))
    if not picture.endswith("\n"):
        out.write("\n")
    return EXIT_OK


@attrs.define
class _Keeper(Instrument):
    """Keeps the run's result, which `run_done` also gets when Ctrl-C ends the run."""

    result: RunResult | None = None

    def run_done(self, run: RunInfo, result: RunResult) -> None:
        self.result = result


def _run(args: argparse.Namespace) -> int:
    # Made first: rich is imported before the graph's folder goes first on sys.path,
    # where a file of the program's (colorsys.py) would stand in for a module of rich's.
    progress = None if args.dry_run else _progress(wanted=args.progress)
    graph = _load_graph(args.target, args.select)
    options = _options(args)
    if args.dry_run:
        _print_plan(graph, options, args.target)
        return EXIT_OK
    trace: str | None = args.trace
    if trace is not None:
        _check_trace_path(trace)
    keeper = _Keeper()
    instruments: list[Instrument] = [keeper]
    if isinstance(options.durations, DurationLog):
        instruments.append(options.durations)
    if progress is not None:
        instruments.append(progress)
    options = attrs.evolve(options, instruments=instruments)
    # Trio handles Ctrl-C only where Python's own handler is in place (not one the graph's
    # module installed), in the main thread.
    main_thread = threading.current_thread() is threading.main_thread()
    ctrl_c = signal.getsignal(signal.SIGINT)
    trio_handles_ctrl_c = main_thread and ctrl_c is signal.default_int_handler
    # And SIGTERM, unless the graph's module handles it (or it is ignored).
    watch_sigterm = main_thread and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    try:
        return _run_and_report(
            args,
            graph,
            options,
            keeper,
            trio_handles=trio_handles_ctrl_c,
            watch_sigterm=watch_sigterm,
        )
    finally:
        # Reported, or not: a Ctrl-C raises KeyboardInterrupt again, not the second
        # Ctrl-C's end of the process (`main` may be called by a program that goes on).
        if signal.getsignal(signal.SIGINT) is _second_ctrl_c:
            signal.signal(signal.SIGINT, signal.default_int_handler)


def _run_and_report(
    args: argparse.Namespace,
    graph: Graph,
    options: RunOptions,
    keeper: _Keeper,
    *,
    trio_handles: bool,
    watch_sigterm: bool,
) -> int:
    """Run the graph, print the table (and write `--trace`); the exit status."""
    trace: str | None = args.trace
    try:
        result = trio.run(_run_until_interrupted_twice, graph, options, trio_handles, watch_sigterm)
    except (KeyboardInterrupt, SystemExit, _Terminated) as stopped:  # Ctrl-C, SIGTERM, exit
        if keeper.result is not None:
            try:
                unwritten = _report(keeper.result, trace, args.prog)
            except BrokenPipeError:  # (`| head`): nothing to say
                _drop_stdout()
                unwritten = None
            except OSError as exc:  # the table could not be printed (a full disk)
                _drop_stdout()
                unwritten = _CommandError(f"cannot write the output: {_describe(exc)}")
            if unwritten is not None:  # said; the interrupt's or the exit's status stands
                _complain(f"{args.prog}: error: {unwritten}")
        if isinstance(stopped, _Terminated):
            _complain(f"{args.prog}: terminated")
            return EXIT_TERMINATED
        raise
    except Exception as exc:
        raise _refused("run", args.target, graph, exc) from exc
    unwritten = _report(result, trace, args.prog)
    if unwritten is not None:  # a failed run keeps its status; else the output's error
        unwritten.status = EXIT_IO_ERROR if result.ok else EXIT_STEP_FAILED
        raise unwritten
    return EXIT_OK if result.ok else EXIT_STEP_FAILED


class _Terminated(Exception):  # (no error: SIGTERM stopped the run)
    """SIGTERM came: the run was cancelled (`_watch_sigterm`), and is over."""


async def _run_until_interrupted_twice(
    graph: Graph,
    options: RunOptions,
    trio_handles_ctrl_c: bool,  # noqa: FBT001 - `trio.run` passes positional arguments only
    watch_sigterm: bool = False,  # noqa: FBT001, FBT002 - as above
) -> RunResult:
    """`run_with_result`, where a second Ctrl-C ends the process at once.

    With `watch_sigterm`, a SIGTERM cancels the run as a scope around it would (steps
    cancelled, in_process workers killed, resources torn down), and the command then
    exits 143 (`_Terminated`); a second SIGTERM ends the process by the signal itself.

    The first Ctrl-C is Trio's: a `KeyboardInterrupt` that stops the run, which tears its
    resources down and waits for its threads before the command reports. Trio's handler
    handles that one, and `_second_ctrl_c` is put in its place as it does: a second
    Ctrl-C kills the process by the signal itself, as a user pressing it again expects
    (the command-line guide), and as it would during the imports, before Trio ran. Only
    when `trio_handles_ctrl_c` (Trio installed its handler): a handler of the program's
    own is left alone.
    """
    if watch_sigterm:
        terminating = trio.CancelScope()
        trio.lowlevel.spawn_system_task(_watch_sigterm, terminating)
        try:
            with terminating:
                return await _run_until_interrupted_twice(graph, options, trio_handles_ctrl_c)
        except RunError:  # (a step's cleanup failed as SIGTERM cancelled it: in the table)
            if not terminating.cancel_called:
                raise
        raise _Terminated
    handler = signal.getsignal(signal.SIGINT)
    if not trio_handles_ctrl_c or not callable(handler):
        return await run_with_result(graph, options)
    trio_handler = handler

    def first_ctrl_c(signum: int, frame: FrameType | None) -> None:
        signal.signal(signal.SIGINT, _second_ctrl_c)
        trio_handler(signum, frame)

    signal.signal(signal.SIGINT, first_ctrl_c)
    try:
        return await run_with_result(graph, options)
    finally:
        if signal.getsignal(signal.SIGINT) is first_ctrl_c:  # (no Ctrl-C came)
            signal.signal(signal.SIGINT, trio_handler)  # Trio puts back what it replaced


async def _watch_sigterm(run: trio.CancelScope) -> None:
    """A Trio system task, till the run is over: the first SIGTERM cancels `run`.

    A second one ends the process by the signal itself, as a second Ctrl-C does.
    """
    with trio.open_signal_receiver(signal.SIGTERM) as received:
        async for _ in received:
            if run.cancel_called:
                _second_ctrl_c(signal.SIGTERM, None)
            run.cancel()


def _second_ctrl_c(signum: int, frame: FrameType | None) -> None:
    """End the process by the signal itself (SIGINT, SIGTERM), the cursor shown again.

    The live progress area hides the cursor while it draws; a process killed then would
    leave the user's terminal without one. (`os.write`: no buffered stream, which the
    interrupted code may be in the middle of.)
    """
    with contextlib.suppress(OSError):
        if os.isatty(2):
            os.write(2, b"\x1b[?25h\n")
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def _check_trace_path(trace: str) -> None:
    """Refuse, before anything runs, a `--trace` path that could never be written."""
    folder = Path(trace).resolve().parent
    if not folder.is_dir():
        raise _CommandError(f"--trace {trace!r}: no such directory")
    if Path(trace).is_dir():
        raise _CommandError(f"--trace {trace!r} is a directory; name the file to write")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise _CommandError(f"--trace {trace!r}: {str(folder)!r} cannot be written to")


def _report(result: RunResult, trace: str | None, prog: str) -> _CommandError | None:
    """Write the `--trace` file, then print the table (a closed stdout loses no trace).

    Returns what to say if the trace could not be written (its folder checked beforehand,
    a full disk or a file system refusing it can still fail the write); says it itself
    (as `prog`) if the table cannot be printed either, whose error it raises.
    """
    failed: OSError | None = None
    if trace is not None:
        try:
            Path(trace).write_text(result.to_chrome_trace(), encoding="utf-8")
        except OSError as exc:
            failed = exc
    unwritten = None
    if failed is not None:
        unwritten = _CommandError(f"--trace {trace!r} was not written: {_describe(failed)}")
        unwritten.__cause__ = failed
    try:
        print(result.table(), flush=True)
    except OSError:
        if unwritten is not None:  # said now: the table's error is what the caller says
            _complain(f"{prog}: error: {unwritten}")
        raise
    return unwritten


def _progress(*, wanted: bool | None) -> Instrument | None:
    """An `exegraph.Progress` (drawing on stderr), or `None` when not wanted or not possible.

    `wanted` is `None` when neither `--progress` nor `--no-progress` was given: then the
    display is on when stderr is a terminal, and quietly left out when rich is missing.
    It estimates with the run's `durations`, if any.
    """
    explicit = wanted is not None
    if not (wanted if explicit else sys.stderr.isatty()):
        return None
    try:
        from . import Progress  # noqa: PLC0415 - only what draws needs rich, an extra

        return Progress()
    except ImportError as exc:
        if not explicit:
            return None  # the default on a terminal, without the extra: run without it
        if exc.name != "rich":  # rich is there, but something it imports failed
            raise _CommandError(f"--progress: rich cannot be imported: {_describe(exc)}") from exc
        raise _CommandError(
            "--progress needs rich, which is not installed: install the 'progress' extra "
            "(pip install -e '.[progress]' in a clone), or pass --no-progress"
        ) from exc


# -- the entry point -----------------------------------------------------------------------


def main(argv: Sequence[str] | None = None, *, prog: str = "exegraph") -> int:
    """Run the `exegraph` command line with `argv` (default: `sys.argv[1:]`).

    Args:
        argv: the arguments after the program's name.
        prog: the program's name in usage and error messages.

    Returns:
        The exit status: 0 success, 1 a step failed, 2 a usage or graph error, 74 the
        output could not be written, 130 interrupted, 141 standard output closed early.

    Raises:
        SystemExit: a step called `sys.exit()`: after the table is printed (and the
            `--trace` file written), it goes on, so the process exits as the step asked.
    """
    for stream in (sys.stdout, sys.stderr):  # a name or an arrow the encoding lacks: escaped
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(errors="backslashreplace")
    parser = _parser(prog)
    args: argparse.Namespace | None = None
    try:
        try:
            args = parser.parse_args(argv)
        except SystemExit as exit_:  # --help, --version, or a usage error (already printed)
            status = exit_.code if isinstance(exit_.code, int) else EXIT_USAGE
        else:
            handler: Callable[[argparse.Namespace], int] = args.handler
            args.prog = prog
            status = handler(args)
        # What is buffered is written here, where a closed pipe or a full disk is caught:
        # at exit Python would only print the error (and exit 120, or even 0).
        if sys.stdout is not None:  # (None when closed as the process began: `>&-`)
            sys.stdout.flush()
    except _CommandError as exc:
        if args is not None and args.traceback and exc.__cause__ is not None:
            traceback.print_exception(exc.__cause__)
        _complain(f"{prog}: error: {exc}")
        return exc.status
    except KeyboardInterrupt:
        _complain(f"{prog}: interrupted")
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # stdout closed by its reader (`| head`): nothing to say
        _drop_stdout()
        return EXIT_BROKEN_PIPE
    except OSError as exc:  # what is printed cannot be written: a full disk, an I/O error
        _drop_stdout()
        _complain(f"{prog}: error: cannot write the output: {_describe(exc)}")
        return EXIT_IO_ERROR
    return status


def _drop_stdout() -> None:
    """Point stdout at the null device: Python would fail again when it flushes at exit."""
    with contextlib.suppress(OSError, ValueError):
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def _complain(text: str) -> None:
    """Say `text` on standard error, on one line, unless it is gone (a pipe closed by `head`).

    What it quotes (a file's path, a module's name) may hold line breaks or escape codes:
    they are written as Python escapes them (`printable`), as names are everywhere. A pipe
    nobody reads blocks the write: a Ctrl-C then ends it (the exit status says it).
    """
    with contextlib.suppress(OSError, KeyboardInterrupt):
        print(printable(text), file=sys.stderr, flush=True)
