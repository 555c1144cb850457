"""The `exegraph` command line (SPEC 2.3): `run`, `plan`, `list`, `graph`, their flags and
exit statuses, as a user meets them.

Testing charter:

- Every test runs the *installed* console script (`exegraph`, next to this interpreter, as
  `pip install -e .` put it) or `python -m exegraph_trio`, in a subprocess with a timeout,
  so a hang fails instead of hanging the suite. Warnings are errors in the child
  (`PYTHONWARNINGS=error`), as `-W error` makes them for the examples.
- The graphs are in `tests/cli_graphs/cli_pipeline.py` (actions that are instant, fail at
  once, or wait to be cancelled) and in small modules written to `tmp_path`.
- Nothing is synchronised by sleeping: the Ctrl-C test waits for the child to print that
  its step is waiting, then sends SIGINT, under a deadline.
- A message to the user is checked whole where it is ours, and for being one line with no
  traceback.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import selectors
import shlex
import shutil
import signal
import subprocess
import sys
import sysconfig
import textwrap
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO

import pytest

ROOT = Path(__file__).resolve().parents[1]
GRAPHS = ROOT / "tests" / "cli_graphs"
PIPELINE = GRAPHS / "cli_pipeline.py"
GUIDE = ROOT / "docs" / "guides" / "command-line.md"
TIMEOUT = 60

SCRIPT = shutil.which("exegraph", path=sysconfig.get_path("scripts"))
ENTRY_POINTS = {
    "exegraph": [SCRIPT or "exegraph"],
    "python -m exegraph_trio": [sys.executable, "-m", "exegraph_trio"],
}
both_entry_points = pytest.mark.parametrize("entry", list(ENTRY_POINTS))


def _environment(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"COLUMNS", "LINES"}}
    env["PYTHONWARNINGS"] = "error"
    env.update(extra or {})
    return env


def _command(entry: str, args: tuple[str, ...]) -> list[str]:
    if entry == "exegraph" and SCRIPT is None:
        pytest.fail(
            f"the console script `exegraph` is not installed in {sysconfig.get_path('scripts')}: "
            "reinstall the project (pip install -e . --group dev)"
        )
    return [*ENTRY_POINTS[entry], *args]


def exegraph(
    *args: str,
    cwd: Path = GRAPHS,
    entry: str = "exegraph",
    env: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run the command line with `args` and wait for it to exit."""
    return subprocess.run(
        _command(entry, args),
        cwd=cwd,
        env=_environment(env),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )


def exegraph_writing_to(stdout: int | IO[str], *args: str) -> subprocess.CompletedProcess[str]:
    """Run the command line with its standard output going to `stdout` (a descriptor or file)."""
    return subprocess.run(
        _command("exegraph", args),
        cwd=GRAPHS,
        env=_environment(),
        stdout=stdout,
        stderr=subprocess.PIPE,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )


def exegraph_into_a_closed_pipe(*args: str) -> subprocess.CompletedProcess[str]:
    """Run the command line with stdout a pipe whose reader is gone (`| head -1`, done)."""
    read, write = os.pipe()
    os.close(read)
    try:
        return exegraph_writing_to(write, *args)
    finally:
        os.close(write)


def assert_one_line_error(done: subprocess.CompletedProcess[str], *parts: str) -> str:
    """Exit status 2, nothing on stdout, one `exegraph: error:` line holding `parts`."""
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert done.stdout == ""
    assert "Traceback" not in done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("exegraph: error: "), lines[0]
    for part in parts:
        assert part in lines[0]
    return lines[0]


def statuses(table: str) -> dict[str, str]:
    """Step name → status, read from `RunResult.table()` or `Plan.table()`."""
    rows = table.strip().splitlines()[1:-1]
    return {row.split()[0]: row.split()[1] for row in rows}


# -- run: exit statuses and the table ------------------------------------------------------


@both_entry_points
def test_a_run_that_succeeds_prints_the_table_on_stdout_and_exits_0(entry: str) -> None:
    done = exegraph("run", "cli_pipeline:graph", entry=entry)
    assert done.returncode == 0, done.stderr
    assert statuses(done.stdout) == {
        "fetch": "Done",
        "build": "Done",
        "lint": "Done",
        "ship": "Done",
    }
    assert done.stdout.splitlines()[0].split() == ["step", "status", "start", "duration", "error"]
    assert done.stdout.splitlines()[-1].endswith(" s: all done")
    assert done.stderr == ""  # no progress display when stderr is not a terminal


@both_entry_points
def test_a_failed_step_exits_1_and_stops_the_run(entry: str) -> None:
    done = exegraph("run", "cli_pipeline:failing", "-j", "1", entry=entry)
    assert done.returncode == 1, done.stderr
    assert statuses(done.stdout) == {"boom": "Failed", "after-boom": "Skipped", "other": "Skipped"}
    assert "RuntimeError: boom" in done.stdout
    assert done.stderr == ""


def test_keep_going_runs_every_step_the_failure_does_not_reach() -> None:
    done = exegraph("run", "cli_pipeline:failing", "-j", "1", "--keep-going")
    assert done.returncode == 1, done.stderr
    assert statuses(done.stdout) == {"boom": "Failed", "after-boom": "Skipped", "other": "Done"}
    assert done.stdout.splitlines()[-1].endswith(" s: 1 done, 1 failed, 1 skipped")


def test_jobs_bounds_the_steps_running_at_once() -> None:
    done = exegraph("run", "cli_pipeline:wide", "-j", "1")
    assert done.returncode == 0, done.stderr
    assert "at most 1 at once" in done.stdout


def test_timeout_is_each_steps_deadline() -> None:
    done = exegraph("run", "cli_pipeline:hanging", "--timeout", "0.05")
    assert done.returncode == 1, done.stderr
    assert statuses(done.stdout) == {"fetch": "Done", "hang": "Failed"}
    assert "StepTimeoutError: step 'hang' timed out after 0.05 s" in done.stdout


def test_dry_run_prints_the_plan_runs_nothing_and_exits_0() -> None:
    done = exegraph("run", "cli_pipeline:wide", "-j", "2", "--dry-run")
    assert done.returncode == 0, done.stderr
    planned = exegraph("plan", "cli_pipeline:wide", "-j", "2")
    assert done.stdout == planned.stdout
    assert "at most" not in done.stdout  # the report step did not run


def test_dry_run_of_a_failing_graph_exits_0() -> None:
    done = exegraph("run", "cli_pipeline:failing", "--dry-run")
    assert done.returncode == 0, done.stderr
    assert set(statuses(done.stdout).values()) == {"Done"}


def test_the_demo_pipeline_runs_from_its_file() -> None:
    done = exegraph(
        "run", "examples/demo_pipeline.py:build_graph", "-j", "4", "--keep-going", cwd=ROOT
    )
    assert done.returncode == 1, done.stderr
    assert done.stdout.splitlines()[-1].endswith(" s: 10 done, 1 failed, 2 skipped")
    assert "RuntimeError: 3 tests failed in test_invoices.py" in done.stdout


def test_a_run_the_engine_refuses_is_a_one_line_error() -> None:
    done = exegraph("run", "cli_pipeline:pooled")
    assert_one_line_error(
        done,
        "cannot run cli_pipeline:pooled: ValueError: ",
        "pool 'db'",
        "give each pool the steps use as --pool NAME=SIZE",
    )


def test_pool_gives_the_run_its_pools() -> None:
    done = exegraph("run", "cli_pipeline:pooled", "--pool", "db=1")
    assert done.returncode == 0, done.stderr
    assert statuses(done.stdout) == {"migrate": "Done"}


@pytest.mark.parametrize("command", ["run", "plan"])
def test_a_pool_given_twice_is_a_one_line_error(command: str) -> None:
    done = exegraph(command, "cli_pipeline:pooled", "--pool", "db=1", "--pool", "db=2")
    assert_one_line_error(done, "--pool gives 'db' more than once; give each pool once")


# -- Ctrl-C --------------------------------------------------------------------------------


def _restore_default_sigint() -> None:
    # A shell starting a job in the background (CI may) ignores SIGINT for it, and an
    # ignored signal stays ignored across exec; a user's terminal delivers it.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@contextlib.contextmanager
def _running(
    entry: str,
    args: tuple[str, ...],
    tmp_path: Path,
    *,
    stdout: int = subprocess.PIPE,
    stderr: int = subprocess.PIPE,
    env: Mapping[str, str] | None = None,
) -> Iterator[subprocess.Popen[bytes]]:
    """The command started in the background, as a user's terminal starts it; killed if
    it is still running when the block ends (a hang fails the test, never the suite)."""
    process = subprocess.Popen(
        _command(entry, args),
        cwd=GRAPHS,
        env=_environment({"CLI_TEST_DIR": str(tmp_path), **(env or {})}),
        stdout=stdout,
        stderr=stderr,
        preexec_fn=_restore_default_sigint,  # noqa: PLW1509 - no threads in this process
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


def _read_until(process: subprocess.Popen[bytes], marker: bytes) -> bytes:
    """What `process` printed until (and with) `marker`; fails after TIMEOUT seconds."""
    assert process.stdout is not None
    deadline = time.monotonic() + TIMEOUT
    seen = b""
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        while marker not in seen:
            left = deadline - time.monotonic()
            if left <= 0 or not selector.select(left):
                pytest.fail(f"no {marker!r} within {TIMEOUT} s; printed {seen!r}")
            chunk = os.read(process.stdout.fileno(), 65536)
            if not chunk:
                pytest.fail(f"exited before printing {marker!r}; printed {seen!r}")
            seen += chunk
    return seen


@both_entry_points
def test_ctrl_c_tears_the_resources_down_and_exits_130(entry: str, tmp_path: Path) -> None:
    with _running(entry, ("run", "cli_pipeline:interruptible"), tmp_path) as process:
        printed = _read_until(process, b"waiting for Ctrl-C\n")
        assert not (tmp_path / "torn-down").exists()
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=TIMEOUT)
    assert process.returncode == 130, err
    assert (tmp_path / "torn-down").read_text(encoding="utf-8") == "the teardown ran\n"
    assert err.decode() == f"{entry}: interrupted\n"
    table = (printed + out).decode().split("waiting for Ctrl-C\n", 1)[1]
    # `wait` is cancelled; or, when SIGINT lands while it is still printing, the
    # KeyboardInterrupt is raised in it and it failed with it. Either way the run is over.
    assert statuses(table)["scratch"] == "Done"
    assert statuses(table)["wait"] in {"Cancelled", "Failed"}
    assert table.splitlines()[-1].endswith(
        ("1 done, 1 cancelled; the run was stopped", "1 done, 1 failed; the run was stopped")
    )


@both_entry_points
def test_a_second_ctrl_c_ends_the_process_at_once_by_the_signal(entry: str, tmp_path: Path) -> None:
    # The first Ctrl-C stops the run, whose resource's teardown never ends; a user
    # pressing Ctrl-C again ends the process there (command-line guide), as SIGINT's
    # default action does. (Without it, this would wait for TIMEOUT and fail.)
    with _running(entry, ("run", "cli_pipeline:stubborn"), tmp_path) as process:
        _read_until(process, b"waiting for Ctrl-C\n")
        process.send_signal(signal.SIGINT)
        _read_until(process, b"tearing down, forever\n")
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=TIMEOUT)
    assert process.returncode == -signal.SIGINT, err


@both_entry_points
def test_sigterm_tears_the_resources_down_and_exits_143(entry: str, tmp_path: Path) -> None:
    # What `kill`, `docker stop` and a cancelled CI job send: it ended the process at
    # once, no teardown run, and in_process workers left spinning (below).
    with _running(entry, ("run", "cli_pipeline:interruptible"), tmp_path) as process:
        printed = _read_until(process, b"waiting for Ctrl-C\n")
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=TIMEOUT)
    assert process.returncode == 143, err
    assert (tmp_path / "torn-down").read_text(encoding="utf-8") == "the teardown ran\n"
    assert err.decode() == f"{entry}: terminated\n"
    table = (printed + out).decode().split("waiting for Ctrl-C\n", 1)[1]
    assert statuses(table) == {"scratch": "Done", "wait": "Cancelled"}
    assert table.splitlines()[-1].endswith("1 done, 1 cancelled; the run was stopped")


def test_a_second_sigterm_ends_the_process_at_once_by_the_signal(tmp_path: Path) -> None:
    with _running("exegraph", ("run", "cli_pipeline:stubborn"), tmp_path) as process:
        _read_until(process, b"waiting for Ctrl-C\n")
        process.send_signal(signal.SIGTERM)
        _read_until(process, b"tearing down, forever\n")
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=TIMEOUT)
    assert process.returncode == -signal.SIGTERM, err


def test_sigterm_kills_the_worker_process_of_an_in_process_step(tmp_path: Path) -> None:
    pytest.importorskip("trio_parallel")
    pid_file = tmp_path / "worker.pid"
    with _running("exegraph", ("run", "cli_pipeline:spinning"), tmp_path) as process:
        deadline = time.monotonic() + TIMEOUT
        while not pid_file.exists() or not pid_file.read_text(encoding="utf-8"):
            assert time.monotonic() < deadline, "the worker never started"
            time.sleep(0.05)
        worker = int(pid_file.read_text(encoding="utf-8"))
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=TIMEOUT)
    assert process.returncode == 143, err
    assert not _alive(worker)  # (killed with the step)


def _alive(pid: int) -> bool:
    """Whether process `pid` runs (a zombie that nothing has reaped yet does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8").rsplit(")", 1)[1]
    except FileNotFoundError:
        return False
    except OSError:  # (no /proc: ask the system)
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    return state.split()[0] != "Z"


@pytest.mark.skipif(sys.platform == "win32", reason="pseudo-terminals are POSIX")
def test_a_second_ctrl_c_leaves_the_terminal_its_cursor(tmp_path: Path) -> None:
    # The live progress area hides the cursor while it draws; killed during the teardown,
    # the process shows it again first. (What the steps print goes through the area.)
    import pty  # POSIX only

    controller, terminal = pty.openpty()
    drawn = b""

    def draw_until(marker: bytes) -> None:
        nonlocal drawn
        deadline = time.monotonic() + TIMEOUT
        with selectors.DefaultSelector() as selector:
            selector.register(controller, selectors.EVENT_READ)
            while marker not in drawn:
                left = deadline - time.monotonic()
                if left <= 0 or not selector.select(left):
                    pytest.fail(f"no {marker!r} within {TIMEOUT} s; drawn {drawn!r}")
                try:
                    chunk = os.read(controller, 65536)
                except OSError:  # EIO: the child closed the terminal
                    chunk = b""
                if not chunk:
                    pytest.fail(f"the terminal closed before {marker!r}; drawn {drawn!r}")
                drawn += chunk

    try:
        with _running(
            "exegraph",
            ("run", "cli_pipeline:stubborn"),
            tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=terminal,
            env={"TERM": "xterm-256color"},
        ) as process:
            os.close(terminal)  # (the child's now: its end closes the terminal)
            draw_until(b"waiting for Ctrl-C")
            process.send_signal(signal.SIGINT)
            draw_until(b"tearing down, forever")
            assert drawn.rfind(b"\x1b[?25l") > drawn.rfind(b"\x1b[?25h")  # hidden now
            process.send_signal(signal.SIGINT)
            process.wait(timeout=TIMEOUT)
            with contextlib.suppress(OSError):
                while chunk := os.read(controller, 65536):
                    drawn += chunk
    finally:
        os.close(controller)
    assert process.returncode == -signal.SIGINT
    assert drawn.rfind(b"\x1b[?25h") > drawn.rfind(b"\x1b[?25l")  # shown again


def test_a_sigint_handler_of_the_program_s_own_is_left_alone(tmp_path: Path) -> None:
    # Trio installs no handler where the program has one: neither does the command.
    (tmp_path / "counting.py").write_text(
        textwrap.dedent(
            """\
            import os, signal
            import trio
            import exegraph_trio as exegraph

            caught = []
            signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))

            async def signal_twice() -> None:
                for _ in range(2):
                    os.kill(os.getpid(), signal.SIGINT)
                    await trio.sleep(0.01)
                print(f"caught {len(caught)}", flush=True)

            graph = exegraph.Graph([exegraph.Step("twice", signal_twice)])
            """
        ),
        encoding="utf-8",
    )
    done = exegraph("run", f"{tmp_path / 'counting.py'}:graph", "--no-progress", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("caught 2\n")


@pytest.mark.parametrize("swallowed", [False, True])
def test_main_called_in_a_program_gives_ctrl_c_back_to_python(
    tmp_path: Path, swallowed: bool
) -> None:
    # After a run a Ctrl-C came to, a Ctrl-C raises KeyboardInterrupt again (not the
    # second Ctrl-C's end of the process) in a program that called `main` and goes on:
    # also when the step caught the interrupt and the run ended well.
    from exegraph_trio import _cli

    (tmp_path / "interrupted.py").write_text(
        textwrap.dedent(
            """\
            import signal
            import exegraph_trio as exegraph

            async def ctrl_c() -> None:
                signal.raise_signal(signal.SIGINT)  # handled by Trio's handler, as a user's

            async def caught() -> None:
                try:
                    signal.raise_signal(signal.SIGINT)  # raised here: this code runs
                except KeyboardInterrupt:
                    pass

            graph = exegraph.Graph([exegraph.Step("stop", ctrl_c)])
            swallowed = exegraph.Graph([exegraph.Step("caught", caught)])
            """
        ),
        encoding="utf-8",
    )
    attr = "swallowed" if swallowed else "graph"
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    try:
        status = _cli.main(["run", f"{tmp_path / 'interrupted.py'}:{attr}", "--no-progress"])
        assert status == (0 if swallowed else 130)
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def test_a_usage_error_quoting_the_command_line_is_one_escaped_line() -> None:
    done = exegraph("list", "cli_pipeline:graph", "evil\n\x1b[31mred")
    assert done.returncode == 2
    assert done.stderr.splitlines()[-1] == (
        "exegraph: error: unrecognized arguments: evil\\n\\x1b[31mred"
    )


def test_ctrl_c_exits_130_even_when_standard_error_is_gone(tmp_path: Path) -> None:
    # Progress lines and `exegraph: interrupted` go to a pipe nobody reads any more (a
    # `head` that exited): the teardown still runs and the status still says interrupted.
    gone, stderr = os.pipe()
    os.close(gone)
    args = ("run", "cli_pipeline:interruptible", "--progress")
    with _running("exegraph", args, tmp_path, stderr=stderr) as process:
        os.close(stderr)  # (the child's now)
        _read_until(process, b"waiting for Ctrl-C\n")
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=TIMEOUT)
    assert process.returncode == 130
    assert (tmp_path / "torn-down").read_text(encoding="utf-8") == "the teardown ran\n"


# -- --durations and --trace ---------------------------------------------------------------


def test_durations_are_learned_into_the_file(tmp_path: Path) -> None:
    log = tmp_path / "learned" / "durations.json"
    done = exegraph("run", "cli_pipeline:graph", "--durations", str(log))
    assert done.returncode == 0, done.stderr
    saved = json.loads(log.read_text(encoding="utf-8"))
    assert saved["version"] == 1
    assert set(saved["durations"]) == {"fetch", "build", "lint", "ship"}


@pytest.mark.parametrize("command", ["run", "plan"])
def test_a_durations_file_that_is_not_a_log_is_an_error_and_left_alone(
    tmp_path: Path, command: str
) -> None:
    notes = tmp_path / "notes.md"  # (say, a path typed wrong)
    notes.write_text("# my notes\n", encoding="utf-8")
    done = exegraph(command, "cli_pipeline:graph", "--durations", str(notes))
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert done.stderr == (
        f"exegraph: error: --durations {notes}: not JSON: Expecting value: line 1 column 1 "
        "(char 0); choose another path, or fix or remove that file\n"
    )
    assert done.stdout == ""
    assert notes.read_text(encoding="utf-8") == "# my notes\n"


def test_a_durations_path_that_could_never_be_saved_is_an_error_before_running(
    tmp_path: Path,
) -> None:
    (tmp_path / "graph.py").write_text("", encoding="utf-8")
    cases = {
        str(tmp_path): f"it is a directory; name a file in it, like "
        f"{str(tmp_path / 'durations.json')!r}",
        str(tmp_path / "graph.py" / "d.json"): f"{str(tmp_path / 'graph.py')!r} is a file, "
        "not a folder",
        str(tmp_path / "graph.py" / "deeper" / "d.json"): f"{str(tmp_path / 'graph.py')!r} is "
        "a file, not a folder",
        ".": "name a file, like durations.json",
        str(tmp_path / "new") + "/": "name a file, like durations.json",
        str(tmp_path / "esc\x1b[2J.json") + "/": "esc\\x1b[2J.json/: name a file",
    }
    for path, message in cases.items():
        done = exegraph("run", "cli_pipeline:graph", "--durations", path)
        assert done.returncode == 2, (path, done.stdout, done.stderr)
        assert message in done.stderr, (path, done.stderr)
        assert done.stdout == ""


def _write_durations(path: Path, durations: Mapping[str, float]) -> str:
    path.write_text(json.dumps({"version": 1, "durations": dict(durations)}), encoding="utf-8")
    return path.read_text(encoding="utf-8")


def test_durations_are_read_to_plan(tmp_path: Path) -> None:
    log = tmp_path / "durations.json"
    before = _write_durations(log, {"a": 2.0, "b": 2.0, "c": 5.0, "report": 0.5})
    done = exegraph("plan", "cli_pipeline:wide", "-j", "2", "--durations", str(log))
    assert done.returncode == 0, done.stderr
    # c, the longest, starts first; a and b share the other slot.
    assert done.stdout.splitlines()[-1] == "makespan 5.500 s; critical path: c → report"
    assert log.read_text(encoding="utf-8") == before  # planning learns nothing


def test_a_dry_run_reads_the_durations_and_leaves_the_file_alone(tmp_path: Path) -> None:
    log = tmp_path / "durations.json"
    before = _write_durations(log, {"a": 2.0, "b": 2.0, "c": 5.0, "report": 0.5})
    done = exegraph("run", "cli_pipeline:wide", "-j", "2", "--durations", str(log), "--dry-run")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "makespan 5.500 s; critical path: c → report"
    assert log.read_text(encoding="utf-8") == before


def _trace_events(path: Path) -> list[dict[str, object]]:
    data = json.loads(path.read_text(encoding="utf-8"))
    events = data["traceEvents"] if isinstance(data, dict) else data
    assert isinstance(events, list)
    return events


def test_trace_writes_the_run_as_a_chrome_trace(tmp_path: Path) -> None:
    trace = tmp_path / "run.json"
    done = exegraph("run", "cli_pipeline:graph", "--trace", str(trace))
    assert done.returncode == 0, done.stderr
    complete = {event["name"] for event in _trace_events(trace) if event.get("ph") == "X"}
    assert complete == {"fetch", "build", "lint", "ship"}


def test_a_failed_run_still_writes_its_trace(tmp_path: Path) -> None:
    trace = tmp_path / "run.json"
    done = exegraph("run", "cli_pipeline:failing", "-j", "1", "--trace", str(trace))
    assert done.returncode == 1, done.stderr
    assert "boom" in {event["name"] for event in _trace_events(trace)}


def test_a_step_calling_sys_exit_ends_the_command_with_its_status_after_table_and_trace(
    tmp_path: Path,
) -> None:
    trace = tmp_path / "run.json"
    done = exegraph("run", "cli_pipeline:exiting", "--no-progress", "--trace", str(trace))
    assert done.returncode == 5, done.stderr
    assert statuses(done.stdout)["fetch"] == "Done"
    assert "Traceback" not in done.stderr
    assert "fetch" in {event["name"] for event in _trace_events(trace)}


def test_the_trace_is_written_though_standard_output_is_closed(tmp_path: Path) -> None:
    # `exegraph run ... --trace t.json | true`: the table is lost, the trace is not.
    trace = tmp_path / "run.json"
    done = exegraph_into_a_closed_pipe(
        "run", "cli_pipeline:graph", "--no-progress", "--trace", str(trace)
    )
    assert (done.returncode, done.stderr) == (141, "")
    assert {event["name"] for event in _trace_events(trace) if event.get("ph") == "X"} == {
        "fetch",
        "build",
        "lint",
        "ship",
    }


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="no /dev/full on this system")
@pytest.mark.parametrize("command", ["list", "run", "graph", "plan", "--help", "--version"])
def test_output_that_cannot_be_written_is_a_one_line_error_with_status_74(command: str) -> None:
    # (`--help` and `--version` exited 0: argparse drops the error of its write.)
    args = [command] if command.startswith("-") else [command, "cli_pipeline:graph"]
    args += ["--no-progress"] if command == "run" else []
    with open("/dev/full", "w", encoding="utf-8") as full:  # every write: ENOSPC
        done = exegraph_writing_to(full, *args)
    assert done.returncode == 74, done.stderr
    assert done.stderr.splitlines() == [
        "exegraph: error: cannot write the output: OSError: [Errno 28] No space left on device"
    ]


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="no /dev/full on this system")
def test_a_step_exit_status_stands_when_the_table_cannot_be_written() -> None:
    # As when the --trace file cannot be written: the run's own status (a step's
    # `sys.exit(5)` here, Ctrl-C's 130 alike) is not replaced by 74; one line says why.
    with open("/dev/full", "w", encoding="utf-8") as full:
        done = exegraph_writing_to(full, "run", "cli_pipeline:exiting", "--no-progress")
    assert done.returncode == 5, done.stderr
    assert done.stderr.splitlines() == [
        "exegraph: error: cannot write the output: OSError: [Errno 28] No space left on device"
    ]


_TRACE_LOST = """\
import shutil, sys
import exegraph_trio as exegraph

OUT = {out!r}


async def lose_the_folder() -> None:
    shutil.rmtree(OUT)  # the --trace file's folder, checked before the run, is gone after it


async def boom() -> None:
    raise RuntimeError("boom")


async def leave() -> None:
    sys.exit(3)


lose = exegraph.Step("lose", lose_the_folder)
ok = exegraph.Graph([lose])
failing = exegraph.Graph([lose, exegraph.Step("boom", boom, depends_on=["lose"])])
exiting = exegraph.Graph([lose, exegraph.Step("leave", leave, depends_on=["lose"])])
"""


def _losing_the_trace(tmp_path: Path) -> tuple[Path, Path]:
    """A module of `_TRACE_LOST`'s graphs, and the `--trace` file their run cannot write."""
    out = tmp_path / "out"
    out.mkdir()
    module = tmp_path / "lost.py"
    module.write_text(_TRACE_LOST.format(out=str(out)), encoding="utf-8")
    return module, out / "run.json"


def _trace_lost_line(trace: Path) -> str:
    """The line that says `trace` could not be written (its folder is gone)."""
    return (
        f"exegraph: error: --trace {str(trace)!r} was not written: FileNotFoundError: "
        f"[Errno 2] No such file or directory: {str(trace)!r}"
    )


@pytest.mark.parametrize(("attr", "status"), [("ok", 74), ("failing", 1), ("exiting", 3)])
def test_a_trace_that_cannot_be_written_is_said_and_a_failed_run_keeps_its_status(
    tmp_path: Path, attr: str, status: int
) -> None:
    # A failed step (1), a step's sys.exit(N) or a Ctrl-C (130) is what the status says;
    # a run that succeeded but whose trace was lost exits 74, as for lost output.
    module, trace = _losing_the_trace(tmp_path)
    done = exegraph("run", f"{module}:{attr}", "--no-progress", "--trace", str(trace))
    assert done.returncode == status, done.stderr
    assert statuses(done.stdout)["lose"] == "Done"  # the table is printed
    assert done.stderr.splitlines()[-1] == _trace_lost_line(trace)
    assert "Traceback" not in done.stderr


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="no /dev/full on this system")
@pytest.mark.parametrize(("attr", "status"), [("ok", 74), ("exiting", 3)])
def test_a_lost_trace_and_a_lost_table_are_both_said(
    tmp_path: Path, attr: str, status: int
) -> None:
    module, trace = _losing_the_trace(tmp_path)
    with open("/dev/full", "w", encoding="utf-8") as full:  # every write: ENOSPC
        done = exegraph_writing_to(
            full, "run", f"{module}:{attr}", "--no-progress", "--trace", str(trace)
        )
    assert done.returncode == status, done.stderr
    assert done.stderr.splitlines() == [
        _trace_lost_line(trace),
        "exegraph: error: cannot write the output: OSError: [Errno 28] No space left on device",
    ]


def test_a_trace_in_a_missing_folder_is_refused_before_running(tmp_path: Path) -> None:
    trace = tmp_path / "missing" / "run.json"
    done = exegraph("run", "cli_pipeline:wide", "--trace", str(trace))
    assert_one_line_error(done, f"--trace {str(trace)!r}: no such directory")


def test_a_trace_that_names_a_directory_is_refused_before_running(tmp_path: Path) -> None:
    done = exegraph("run", "cli_pipeline:wide", "--trace", str(tmp_path))
    assert_one_line_error(done, f"--trace {str(tmp_path)!r} is a directory")


# -- --progress ----------------------------------------------------------------------------


def test_no_progress_keeps_stderr_empty() -> None:
    done = exegraph("run", "cli_pipeline:graph", "--no-progress")
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""


def test_progress_off_a_terminal_prints_a_line_per_settled_step_on_stderr() -> None:
    done = exegraph("run", "cli_pipeline:failing", "-j", "1", "--keep-going", "--progress")
    assert done.returncode == 1, done.stderr
    for name in ("boom", "after-boom", "other"):
        assert name in done.stderr
    assert statuses(done.stdout) == {"boom": "Failed", "after-boom": "Skipped", "other": "Done"}


def _hide_rich(tmp_path: Path) -> dict[str, str]:
    """An environment in which `import rich` fails, as where the extra is not installed."""
    shadow = tmp_path / "no_rich" / "rich"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'rich'\", name='rich')\n", encoding="utf-8"
    )
    return {"PYTHONPATH": str(shadow.parent)}


@pytest.mark.parametrize("variable", ["FORCE_COLOR", "TTY_COMPATIBLE"])
def test_progress_off_a_terminal_prints_plain_lines_whatever_force_color_says(
    variable: str,
) -> None:
    # rich takes the file for a terminal then (for colours); a live area in a CI log
    # would be cursor codes instead of a line per step.
    done = exegraph("run", "cli_pipeline:graph", "--progress", env={variable: "1"})
    assert done.returncode == 0, done.stderr
    assert "\x1b" not in done.stderr
    assert re.search(r"^\[\d+/\d+\] ", done.stderr, re.MULTILINE), done.stderr


def test_a_file_beside_the_graph_named_like_a_module_rich_imports_breaks_nothing(
    tmp_path: Path,
) -> None:
    # The graph's folder goes first on sys.path (as `python file.py` puts it): its
    # colorsys.py would stand in for the standard library's, which rich imports.
    shutil.copy(PIPELINE, tmp_path / "pipeline.py")
    (tmp_path / "colorsys.py").write_text("raise ImportError('the wrong colorsys')\n")
    done = exegraph("run", "pipeline.py:graph", "--progress", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert re.search(r"^\[\d+/\d+\] ", done.stderr, re.MULTILINE), done.stderr


def test_progress_without_rich_says_what_to_install(tmp_path: Path) -> None:
    done = exegraph("run", "cli_pipeline:graph", "--progress", env=_hide_rich(tmp_path))
    assert_one_line_error(
        done, "--progress needs rich, which is not installed: install the 'progress' extra"
    )


def test_progress_made_without_rich_says_how_to_install_it_from_a_clone_too(
    tmp_path: Path,
) -> None:
    # It said only `pip install 'exegraph-trio[progress]'`, which PyPI cannot serve yet.
    done = subprocess.run(
        [sys.executable, "-c", "import exegraph_trio as exegraph; exegraph.Progress()"],
        env=_environment(_hide_rich(tmp_path)),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError: exegraph.Progress draws with rich, which is not"), last
    assert "pip install 'exegraph-trio[progress]'" in last
    assert "in a clone of the repository: pip install -e '.[progress]'" in last


def _run_on_a_terminal(*args: str, env: Mapping[str, str] | None = None) -> tuple[int, str, str]:
    """Run with stderr on a pseudo-terminal: the exit status, stdout, what stderr drew."""
    import pty  # POSIX only

    controller, terminal = pty.openpty()
    try:
        process = subprocess.Popen(
            _command("exegraph", args),
            cwd=GRAPHS,
            env=_environment({"TERM": "xterm-256color", **(env or {})}),
            stdout=subprocess.PIPE,
            stderr=terminal,
        )
        os.close(terminal)
        drawn = b""
        with selectors.DefaultSelector() as selector:
            selector.register(controller, selectors.EVENT_READ)
            deadline = time.monotonic() + TIMEOUT
            while time.monotonic() < deadline and selector.select(deadline - time.monotonic()):
                try:
                    chunk = os.read(controller, 65536)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not chunk:
                    break
                drawn += chunk
        out, _ = process.communicate(timeout=TIMEOUT)
    finally:
        os.close(controller)
    return process.returncode, out.decode(), drawn.decode(errors="replace")


@pytest.mark.skipif(sys.platform == "win32", reason="pseudo-terminals are POSIX")
def test_progress_is_on_by_default_when_stderr_is_a_terminal() -> None:
    status, out, drawn = _run_on_a_terminal("run", "cli_pipeline:graph")
    assert status == 0, drawn
    assert statuses(out) == {"fetch": "Done", "build": "Done", "lint": "Done", "ship": "Done"}
    assert "4 steps in " in drawn  # the run's summary, left when the live area closes
    assert "\x1b[" in drawn  # drawn for a terminal


@pytest.mark.skipif(sys.platform == "win32", reason="pseudo-terminals are POSIX")
def test_on_a_terminal_without_rich_the_run_goes_on_without_progress(tmp_path: Path) -> None:
    status, out, drawn = _run_on_a_terminal("run", "cli_pipeline:graph", env=_hide_rich(tmp_path))
    assert status == 0, drawn
    assert drawn == ""
    assert out.splitlines()[-1].endswith(" s: all done")


# -- plan, list, graph ---------------------------------------------------------------------


def test_plan_prints_starts_ends_and_the_critical_path() -> None:
    done = exegraph("plan", "cli_pipeline:wide", "-j", "1")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split() == ["step", "status", "start", "end", "duration"]
    assert lines[1].split() == ["a", "Done", "0.000", "1.000", "1.000"]
    assert lines[-1] == "makespan 4.000 s; critical path: c → report"


def test_plan_with_more_jobs_is_shorter() -> None:
    done = exegraph("plan", "cli_pipeline:wide", "-j", "3")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1].startswith("makespan 2.000 s")


def test_plan_refuses_a_graph_whose_pools_it_cannot_give() -> None:
    done = exegraph("plan", "cli_pipeline:pooled")
    assert_one_line_error(done, "cannot plan cli_pipeline:pooled: ValueError: ", "--pool")


@both_entry_points
def test_list_prints_each_step_its_tags_and_dependencies(entry: str) -> None:
    done = exegraph("list", "cli_pipeline:graph", entry=entry)
    assert done.returncode == 0, done.stderr
    assert done.stdout == textwrap.dedent(
        """\
        fetch  [source]
        build  [ci, slow]  <- fetch
        lint   [ci]        <- fetch
        ship               <- build, lint
        """
    )


def test_graph_prints_mermaid_by_default() -> None:
    done = exegraph("graph", "cli_pipeline:graph")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split(maxsplit=1)[0] in {"flowchart", "graph"}
    for name in ("fetch", "build", "lint", "ship"):
        assert name in done.stdout


def test_graph_format_mermaid_is_the_graphs_to_mermaid() -> None:
    done = exegraph("graph", "cli_pipeline:graph", "--format", "mermaid")
    assert done.returncode == 0, done.stderr
    assert done.stdout == exegraph("graph", "cli_pipeline:graph").stdout


def test_graph_format_dot_prints_graphviz() -> None:
    done = exegraph("graph", "cli_pipeline:graph", "--format", "dot")
    assert done.returncode == 0, done.stderr
    assert done.stdout.lstrip().startswith("digraph")
    for name in ("fetch", "build", "lint", "ship"):
        assert name in done.stdout


# -- --select, with every command ----------------------------------------------------------


def test_select_narrows_list_to_the_steps_and_what_they_need() -> None:
    done = exegraph("list", "cli_pipeline:graph", "--select", "lint")
    assert done.returncode == 0, done.stderr
    assert [line.split()[0] for line in done.stdout.splitlines()] == ["fetch", "lint"]


def test_select_narrows_a_run() -> None:
    done = exegraph("run", "cli_pipeline:graph", "--select", "tag:ci !build")
    assert done.returncode == 0, done.stderr
    assert statuses(done.stdout) == {"fetch": "Done", "lint": "Done"}


def test_select_narrows_a_plan() -> None:
    done = exegraph("plan", "cli_pipeline:graph", "--select", "build")
    assert done.returncode == 0, done.stderr
    assert statuses(done.stdout) == {"fetch": "Done", "build": "Done"}


def test_select_narrows_the_picture() -> None:
    done = exegraph("graph", "cli_pipeline:graph", "--select", "fetch+ !ship", "--format", "dot")
    assert done.returncode == 0, done.stderr
    assert "lint" in done.stdout
    assert "ship" not in done.stdout


def test_a_selector_that_matches_nothing_is_a_one_line_error() -> None:
    done = exegraph("list", "cli_pipeline:graph", "--select", "lnit")
    assert_one_line_error(done, "--select: ", "'lnit'", "(did you mean 'lint'?)")


def test_a_removal_a_kept_step_needs_suggests_only_what_the_command_line_offers() -> None:
    # `Graph.select` also suggests `with_dependencies=False`, which is no flag here.
    done = exegraph("list", "cli_pipeline:graph", "--select", "!fetch")
    line = assert_one_line_error(done, "--select: ", "depends on 'fetch'", "'!fetch+'")
    assert "with_dependencies" not in line


# -- MODULE:ATTR -----------------------------------------------------------------------------


def test_a_module_is_a_py_file_path() -> None:
    done = exegraph("list", "tests/cli_graphs/cli_pipeline.py:graph", cwd=ROOT)
    assert done.returncode == 0, done.stderr  # and its `if __name__ == "__main__"` did not run
    assert done.stdout.split()[0] == "fetch"


def test_a_module_is_an_absolute_py_file_path(tmp_path: Path) -> None:
    done = exegraph("list", f"{PIPELINE}:graph", cwd=tmp_path)
    assert done.returncode == 0, done.stderr


def test_a_module_is_a_dotted_name_found_from_the_current_directory(tmp_path: Path) -> None:
    package = tmp_path / "pipelines"
    package.mkdir()
    (package / "__init__.py").write_text("", encoding="utf-8")
    (package / "deploy.py").write_text(
        textwrap.dedent(
            """\
            import exegraph_trio as exegraph

            async def ship() -> None: ...

            graph = exegraph.Graph([exegraph.Step("ship", ship)])
            """
        ),
        encoding="utf-8",
    )
    done = exegraph("list", "pipelines.deploy:graph", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "ship\n"


def test_a_py_file_imports_its_neighbours_as_python_file_py_would(tmp_path: Path) -> None:
    folder = tmp_path / "ci"
    folder.mkdir()
    (folder / "neighbour.py").write_text("NAME = 'from-the-neighbour'\n", encoding="utf-8")
    (folder / "pipe.py").write_text(
        textwrap.dedent(
            """\
            import exegraph_trio as exegraph
            from neighbour import NAME

            async def step() -> None: ...

            graph = exegraph.Graph([exegraph.Step(NAME, step)])
            """
        ),
        encoding="utf-8",
    )
    done = exegraph("list", "ci/pipe.py:graph", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "from-the-neighbour\n"


@pytest.mark.parametrize("stem", ["cpu_pipe", "textwrap", "deploy.prod"])
def test_a_file_named_like_a_module_already_imported_runs_its_process_steps(
    stem: str, tmp_path: Path
) -> None:
    # `textwrap.py` is imported under another name (the standard library's `textwrap` is
    # taken): a worker process cannot import that name, so what it defines is sent by
    # value. (A worker that imports the module it hides, as every one does `json`, still
    # fails: the warning says so.) So is `deploy.prod.py`, which pickle would take for
    # the module `prod` of a package `deploy`, even where it is made (`in_process(work)`
    # checks that `work` can be sent), with no warning: nothing is hidden.
    (tmp_path / f"{stem}.py").write_text(
        textwrap.dedent(
            """\
            import exegraph_trio as exegraph

            class Odd(Exception): ...

            def work(n: int) -> int:
                if n % 2:
                    raise Odd(n)
                return sum(range(n))

            graph = exegraph.Graph([
                exegraph.Step("even", exegraph.in_process(work, 1000)),
                exegraph.Step("odd", exegraph.in_process(work, 7)),
            ])
            """
        ),
        encoding="utf-8",
    )
    done = exegraph("run", f"{tmp_path / stem}.py:graph", "--keep-going", "--no-progress", cwd=ROOT)
    assert done.returncode == 1, done.stderr
    assert statuses(done.stdout) == {"even": "Done", "odd": "Failed"}
    assert "Odd: 7" in done.stdout  # its own exception class, back from the worker
    warned = [line for line in done.stderr.splitlines() if "warning" in line]
    assert warned == (
        [
            f"exegraph: warning: {tmp_path / stem}.py is named like the module {stem}, "
            f"already imported: it is imported as _exegraph_file_{stem}; a worker process "
            f"(in_process, on_cluster) finds the file first and may import it in place of "
            f"{stem}: rename it if its steps fail there"
        ]
        if stem == "textwrap"
        else []
    )


@pytest.mark.parametrize(
    ("attribute", "first_step"),
    [
        ("graph", "fetch"),
        ("make_graph", "fetch"),
        ("builder", "first"),
        ("make_builder", "first"),
        ("Namespace.graph", "fetch"),
    ],
)
def test_attr_is_a_graph_a_builder_or_a_function_returning_one(
    attribute: str, first_step: str, tmp_path: Path
) -> None:
    (tmp_path / "namespaced.py").write_text(
        f"import sys\nsys.path.insert(0, {str(GRAPHS)!r})\n"
        "from cli_pipeline import builder, graph, make_builder, make_graph\n\n"
        "class Namespace:\n    graph = graph\n",
        encoding="utf-8",
    )
    done = exegraph("list", f"namespaced:{attribute}", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[0] == first_step


# -- what cannot be loaded: one line on stderr, exit 2 ---------------------------------------


@pytest.mark.parametrize(
    ("target", "message"),
    [
        (
            "cli_pipeline",
            "name the graph as MODULE:ATTR, like pipeline:graph or ci/pipeline.py:graph, "
            "not 'cli_pipeline'",
        ),
        (
            "no_such_module:graph",
            "no module named 'no_such_module' in the current directory or on sys.path "
            "(give a file as path/to/file.py)",
        ),
        (
            "cli_pipeline.inner:graph",
            "no module named 'cli_pipeline.inner' in the current directory or on sys.path",
        ),
        ("missing.py:graph", "cannot import 'missing.py': no such file"),
        ("../cli_graphs:graph", "cannot import '../cli_graphs': a directory, not a .py file"),
        ("cli_pipeline:grahp", "cli_pipeline has no attribute 'grahp' (did you mean 'graph'?)"),
        (
            "cli_pipeline:pipeline",
            "cli_pipeline has no attribute 'pipeline' (its graphs: 'broken_builder', "
            "'builder', 'empty', 'exiting', 'failing', 'graph', 'hanging', 'interruptible', "
            "'pooled', 'stubborn', 'wide')",
        ),
        (
            "cli_pipeline:not_a_graph",
            "cli_pipeline:not_a_graph is an int, not an exegraph Graph, a GraphBuilder or a "
            "function returning one",
        ),
        (
            "cli_pipeline:steps",
            "cli_pipeline:steps is a list, not an exegraph Graph, a GraphBuilder or a function "
            "returning one; make a graph of the steps: graph = exegraph.Graph(steps)",
        ),
        (
            "cli_pipeline:Step",
            "cli_pipeline:Step is the class Step, not an exegraph Graph",
        ),
        (
            "cli_pipeline:returns_a_number",
            "cli_pipeline:returns_a_number() returned an int, not an exegraph Graph or "
            "GraphBuilder",
        ),
        (
            "cli_pipeline:raises",
            "cli_pipeline:raises() raised OSError: cannot read pipeline.yaml",
        ),
        (
            "cli_pipeline:async_factory",
            "cli_pipeline:async_factory is an async function; make it a plain def that "
            "returns the graph",
        ),
        (
            "cli_pipeline:broken_builder",
            "cli_pipeline:broken_builder is not a valid graph: MissingDependencyError: ",
        ),
    ],
)
def test_a_target_that_is_not_a_graph_is_a_one_line_error(target: str, message: str) -> None:
    done = exegraph("list", target)
    line = assert_one_line_error(done)
    assert line.removeprefix("exegraph: error: ").startswith(message), line


def test_a_file_path_in_an_error_is_written_on_one_line(tmp_path: Path) -> None:
    # The path is the user's: a line break or an escape code in it is escaped, as in names.
    path = tmp_path / "new\nline\x1b[31m.py"
    path.write_text("x = 1\n", encoding="utf-8")
    line = assert_one_line_error(exegraph("list", f"{path}:graph"))
    assert "\x1b" not in line
    assert "new\\nline\\x1b[31m.py has no attribute 'graph'" in line


@pytest.mark.parametrize(
    ("source", "message"),
    [
        (
            "import no_such_dependency\n",
            "ModuleNotFoundError: No module named 'no_such_dependency'",
        ),
        ("def broken(:\n", "SyntaxError: "),
        ("raise RuntimeError('no config')\n", "RuntimeError: no config"),
        (
            "import exegraph_trio as e\n"
            "async def a() -> None: ...\n"
            "graph = e.Graph(\n"
            "    [e.Step('x', a, depends_on=['y']), e.Step('y', a, depends_on=['x'])]\n"
            ")\n",
            "CycleError: ",
        ),
    ],
)
@pytest.mark.parametrize("form", ["dotted", "file"])
def test_a_module_that_fails_to_import_is_a_one_line_error(
    source: str, message: str, form: str, tmp_path: Path
) -> None:
    (tmp_path / "bad_module.py").write_text(source, encoding="utf-8")
    name = "bad_module" if form == "dotted" else "bad_module.py"
    done = exegraph("plan", f"{name}:graph", cwd=tmp_path)
    line = assert_one_line_error(done, f"cannot import {name!r}: ", message)
    assert line.count("\n") == 0


@pytest.mark.parametrize(
    ("source", "target", "message"),
    [
        # A script's `sys.exit(main())` without a `__main__` guard: not a success.
        ("import sys\nsys.exit(0)\n", "exits.py:graph", "cannot import 'exits.py': SystemExit: 0"),
        (
            "raise SystemExit('no config')\n",
            "exits:graph",
            "cannot import 'exits': SystemExit: no config",
        ),
        (
            "def build():\n    raise SystemExit(0)\n",
            "exits.py:build",
            "exits.py:build() raised SystemExit: 0",
        ),
        (
            "class Holder:\n    @property\n    def graph(self):\n"
            "        raise RuntimeError('not yet')\nholder = Holder()\n",
            "exits.py:holder.graph",
            "getting 'graph' from exits.py:holder raised RuntimeError: not yet",
        ),
        (
            "def __getattr__(name):\n    raise LookupError(name)\n",
            "exits.py:graph",
            "getting 'graph' from exits.py raised LookupError: graph",
        ),
    ],
)
def test_a_module_or_attribute_that_exits_or_raises_is_a_one_line_error(
    source: str, target: str, message: str, tmp_path: Path
) -> None:
    (tmp_path / "exits.py").write_text(source, encoding="utf-8")
    done = exegraph("run", target, "--no-progress", cwd=tmp_path)
    line = assert_one_line_error(done)
    assert line == f"exegraph: error: {message}"


def test_a_hint_for_a_missing_attribute_runs_no_property(tmp_path: Path) -> None:
    (tmp_path / "holder.py").write_text(
        "class Holder:\n    @property\n    def graph(self):\n"
        "        raise RuntimeError('evaluated')\nholder = Holder()\n",
        encoding="utf-8",
    )
    done = exegraph("list", "holder.py:holder.grahp", cwd=tmp_path)
    assert_one_line_error(done, "holder.py:holder has no attribute 'grahp'")


def list_of_steps(tmp_path: Path, steps: str) -> subprocess.CompletedProcess[str]:
    """`exegraph list` of a graph of `steps` (source; each step's action is `s`)."""
    (tmp_path / "listed.py").write_text(
        f"import exegraph_trio as exegraph\nasync def s(): pass\ngraph = exegraph.Graph({steps})\n",
        encoding="utf-8",
    )
    return exegraph("list", "listed.py:graph", cwd=tmp_path, env={"PYTHONIOENCODING": "utf-8"})


def test_list_pads_names_and_tags_by_the_cells_a_terminal_gives_them(tmp_path: Path) -> None:
    done = list_of_steps(
        tmp_path,
        "[exegraph.Step('日本語 🚀', s, tags=['デプロイ']),"
        " exegraph.Step('build', s, tags=['x'], depends_on=['日本語 🚀'])]",
    )
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout == "日本語 🚀  [デプロイ]\nbuild      [x]         <- 日本語 🚀\n"


def test_list_pads_names_to_40_cells_at_most(tmp_path: Path) -> None:
    # One name of 10 000 characters padded every row to it (10 MB for 1 000 steps).
    done = list_of_steps(
        tmp_path,
        "[exegraph.Step('x' * 100, s), exegraph.Step('build', s, depends_on=['x' * 100])]",
    )
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout.splitlines()[1] == f"build{' ' * 35}    <- {'x' * 100}"


def test_list_of_an_empty_graph_prints_nothing() -> None:
    done = exegraph("list", "cli_pipeline:empty")
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")


@pytest.mark.parametrize("command", ["list", "plan", "graph", "run", "--help", "--version"])
def test_a_reader_that_stops_early_ends_the_command_quietly_with_141(command: str) -> None:
    # `exegraph list ... | head -1`: stdout is a pipe whose reader is gone.
    args = [command] if command.startswith("-") else [command, "cli_pipeline:wide"]
    args += ["--no-progress"] if command == "run" else []
    done = exegraph_into_a_closed_pipe(*args)
    assert (done.returncode, done.stderr) == (141, "")


@pytest.mark.parametrize("command", ["list", "plan", "graph", "run"])
def test_a_command_whose_stdout_was_closed_at_start_runs_without_a_traceback(
    command: str,
) -> None:
    # `exegraph list ... >&-`: Python's `sys.stdout` is `None` (as under pythonw), and
    # `print` writes nothing; the output's flush and the picture's lines must not fail.
    args = [command, "cli_pipeline:graph", *(["--no-progress"] if command == "run" else [])]
    done = subprocess.run(
        _command("exegraph", tuple(args)),
        cwd=GRAPHS,
        env=_environment(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        timeout=TIMEOUT,
        check=False,
        preexec_fn=lambda: os.close(1),  # (in the child: its own descriptor)
    )
    assert (done.returncode, done.stderr) == (0, "")


@pytest.mark.parametrize("picture", ["mermaid", "dot"])
def test_a_reader_that_stops_after_a_line_of_a_large_picture_ends_the_command_with_141(
    tmp_path: Path, picture: str
) -> None:
    # `exegraph graph BIG | head -1`: the picture was one write, which the reader's exit
    # cut short; Python then lost the rest without an error, and the status was 0.
    (tmp_path / "big.py").write_text(
        "import exegraph_trio as exegraph\n"
        "async def s(): pass\n"
        "graph = exegraph.Graph(exegraph.Step(f's{i}', s, depends_on=[f's{i-1}'] if i % 50 else"
        " []) for i in range(20_000))\n",
        encoding="utf-8",
    )
    process = subprocess.Popen(
        _command("exegraph", ("graph", "big.py:graph", "--format", picture)),
        cwd=tmp_path,
        env=_environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None
    assert process.stderr is not None
    with process:
        assert process.stdout.readline()  # (the picture is more than a pipe holds: ~0.7 MB)
        process.stdout.close()
        errors = process.stderr.read()
    assert (process.returncode, errors) == (141, b"")


def test_an_output_encoding_without_the_characters_gets_escapes_not_a_crash(
    tmp_path: Path,
) -> None:
    # As on Windows, output redirected to a file is in its ANSI code page (cp1252).
    (tmp_path / "unicode.py").write_text(
        "import exegraph_trio as e\nasync def a() -> None: ...\n"
        "graph = e.Graph([e.Step('café→', a), e.Step('next', a, depends_on=['café→'])])\n",
        encoding="utf-8",
    )
    for command in ("plan", "run", "list"):
        args = (command, "unicode.py:graph", *(["--progress"] if command == "run" else []))
        done = subprocess.run(
            _command("exegraph", args),
            cwd=tmp_path,
            env=_environment({"PYTHONIOENCODING": "latin-1"}),
            capture_output=True,
            timeout=TIMEOUT,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert "café\\u2192" in done.stdout.decode("latin-1"), done.stdout
        if command == "run":
            assert "café\\u2192" in done.stderr.decode("latin-1"), done.stderr


def test_names_and_errors_in_the_run_table_are_escaped(tmp_path: Path) -> None:
    (tmp_path / "odd.py").write_text(
        "import exegraph_trio as e\n"
        "async def boom() -> None:\n    raise RuntimeError('one\\ntwo red \\x1b[31m bell \\x07')\n"
        "graph = e.Graph([e.Step('two\\nlines', boom)])\n",
        encoding="utf-8",
    )
    done = exegraph("run", "odd.py:graph", "--progress", cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    assert "\x1b" not in done.stdout + done.stderr
    assert "\x07" not in done.stdout + done.stderr
    (row,) = [line for line in done.stdout.splitlines() if line.startswith("two")]
    assert row.startswith("two\\nlines  Failed")
    # (the lines of a message are joined with " ⏎ ", as the guide says)
    assert row.endswith("RuntimeError: one ⏎ two red \\x1b[31m bell \\x07")
    (line,) = [line for line in done.stderr.splitlines() if "two\\nlines" in line]
    assert line.endswith("RuntimeError: one ⏎ two red \\x1b[31m bell \\x07")


def test_traceback_shows_the_traceback_then_the_one_line() -> None:
    done = exegraph("list", "cli_pipeline:raises", "--traceback")
    assert done.returncode == 2
    assert done.stderr.startswith("Traceback (most recent call last):\n")
    assert 'raise OSError("cannot read pipeline.yaml")' in done.stderr
    assert done.stderr.splitlines()[-1] == (
        "exegraph: error: cli_pipeline:raises() raised OSError: cannot read pipeline.yaml"
    )


def test_traceback_of_an_import_error_shows_where_it_was_raised(tmp_path: Path) -> None:
    (tmp_path / "bad_module.py").write_text("import no_such_dependency\n", encoding="utf-8")
    done = exegraph("run", "bad_module:graph", "--traceback", cwd=tmp_path)
    assert done.returncode == 2
    assert 'bad_module.py", line 1' in done.stderr
    assert done.stderr.splitlines()[-1].startswith("exegraph: error: cannot import")


# -- usage ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        ((), "the following arguments are required: COMMAND"),
        (("walk", "cli_pipeline:graph"), "invalid choice: 'walk'"),
        (("run",), "the following arguments are required: MODULE:ATTR"),
        (("run", "cli_pipeline:graph", "-j", "0"), "argument -j/--jobs: must be 1 or more"),
        (("run", "cli_pipeline:graph", "-j", "two"), "argument -j/--jobs: not a whole number"),
        (("run", "cli_pipeline:graph", "--timeout", "-1"), "argument --timeout: must be"),
        (("run", "cli_pipeline:graph", "--pool", "db"), "argument --pool: write a pool as"),
        (("graph", "cli_pipeline:graph", "--format", "svg"), "invalid choice: 'svg'"),
        (("list", "cli_pipeline:graph", "--keep-going"), "unrecognized arguments: --keep-going"),
    ],
)
def test_a_usage_error_exits_2_with_the_usage(args: tuple[str, ...], complaint: str) -> None:
    done = exegraph(*args)
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.startswith("usage: exegraph")
    assert complaint in done.stderr.splitlines()[-1]


def test_help_names_every_flag_of_run() -> None:
    done = exegraph("run", "--help")
    assert done.returncode == 0
    for flag in (
        "--select S",
        "-j N",
        "--keep-going",
        "--timeout S",
        "--dry-run",
        "--progress, --no-progress",
        "--durations FILE",
        "--trace FILE.json",
        "--traceback",
    ):
        assert flag in done.stdout
    assert "exit status: 0 success, 1 a step failed, 2 a usage or graph error," in done.stdout


@pytest.mark.parametrize("command", ["plan", "list", "graph"])
def test_every_command_takes_select(command: str) -> None:
    done = exegraph(command, "--help")
    assert done.returncode == 0
    assert "--select S" in done.stdout


def test_python_m_names_itself_in_the_usage() -> None:
    done = exegraph("--help", entry="python -m exegraph_trio")
    assert done.returncode == 0
    assert done.stdout.startswith("usage: python -m exegraph_trio ")
    for command in ("run", "plan", "list", "graph"):
        assert f"    {command} " in done.stdout


def test_version() -> None:
    import exegraph_trio

    done = exegraph("--version")
    assert done.returncode == 0
    assert done.stdout == f"exegraph {exegraph_trio.__version__}\n"


# -- the guide shows real output ---------------------------------------------------------


def _guide_sessions() -> list[tuple[str, str]]:
    """Each `console` block of the guide: its `$ exegraph …` command and what it printed."""
    blocks = re.findall(r"```console\n(.*?)```", GUIDE.read_text(encoding="utf-8"), re.S)
    sessions = []
    for block in blocks:
        command, _, output = block.partition("\n")
        assert command.startswith("$ exegraph "), command
        sessions.append((command.removeprefix("$ "), output))
    return sessions


def _timeless(text: str) -> list[str]:
    """The lines of a run's table, sorted (steps ending together may swap), times masked."""
    return sorted(re.sub(r"\d+\.\d{3}", "#.###", line) for line in text.splitlines())


@pytest.mark.parametrize(("command", "shown"), _guide_sessions(), ids=lambda v: str(v)[:60])
def test_the_guide_shows_what_the_command_prints(command: str, shown: str) -> None:
    args = shlex.split(command)[1:]
    done = exegraph(*args, cwd=ROOT)
    printed = done.stdout + done.stderr
    if args[0] == "run" and "--help" not in args:
        assert _timeless(printed) == _timeless(shown)
    else:
        assert printed == shown


def test_the_guide_draws_the_picture_it_prints() -> None:
    text = GUIDE.read_text(encoding="utf-8")
    drawn = re.findall(r"```mermaid\n(.*?)```", text, re.S)
    printed = [out for command, out in _guide_sessions() if command.startswith("exegraph graph")]
    assert drawn == printed


def test_the_readmes_commands_work_from_a_clone() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## From the command line\n", 1)[1].split("\n## ", 1)[0]
    block = section.split("```bash\n", 1)[1].split("```", 1)[0]
    commands = [shlex.split(line) for line in block.splitlines()]
    assert [command[0] for command in commands] == [".venv/bin/exegraph"] * 2
    ran = exegraph(*commands[0][1:], cwd=ROOT)
    assert ran.returncode == 1, ran.stderr  # the demo's failure is staged
    assert ran.stdout.splitlines()[-1].endswith(" s: 10 done, 1 failed, 2 skipped")
    planned = exegraph(*commands[1][1:], cwd=ROOT)
    assert planned.returncode == 0, planned.stderr
    assert "deploy-web" in planned.stdout
    assert "smoke-test" not in planned.stdout
