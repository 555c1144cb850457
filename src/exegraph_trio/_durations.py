"""`DurationLog`: learned step durations, kept in a JSON file between runs.

The file holds one moving average per step name and a format `version` (see the class).
Loading and the atomic save are plain functions below; the class is the mapping and the
instrument around them.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import secrets
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Final, final

from ._instrument import Instrument
from ._result import StepStatus

if TYPE_CHECKING:
    from ._instrument import RunInfo
    from ._result import RunResult

__all__ = ["DurationLog"]

logger: Final = logging.getLogger("exegraph_trio")

_VERSION: Final = 1


@final
class DurationLog(Mapping[str, float], Instrument):
    """Learn how long each step takes, run after run, and remember it in a JSON file.

    A `DurationLog` is two things at once:

    - a read-only mapping of step name → estimated seconds, to pass as
      `RunOptions(durations=log)` so that the long chains of steps start first;
    - an [`Instrument`][exegraph_trio.Instrument]: attached with
      `RunOptions(instruments=[log])`, it learns from every run and saves the file when the
      run is over.

    ```python
    log = exegraph.DurationLog(".exegraph/durations.json")
    options = exegraph.RunOptions(durations=log, instruments=[log])
    await exegraph.run(graph, options)  # the next run orders its steps better
    ```

    **What is learned.** At `run_done`, each step whose status is `DONE` contributes its
    [`StepTiming.duration`][exegraph_trio.StepTiming]: from the start of its first
    attempt to the end of its last, so a step that needed retries counts its failed
    attempts and its waits. That is the time its dependents waited for it, which is what
    a critical path is made of. Failed, cancelled and skipped steps teach nothing.

    **The moving average.** A step's first duration is its estimate; each later one is
    averaged with it, `estimate = (estimate + duration) / 2` (an exponentially weighted
    average with weight 1/2). One number per step keeps the file small; a step whose real
    duration changes is followed within a few runs (the old value weighs 1/2 after one
    run, 1/32 after five), while one odd run (a cold cache, a retry) moves the estimate
    only halfway and is soon forgotten. Priorities only need the steps' order of size, not
    precision. Names are never dropped: a renamed step leaves its old entry behind, harmless
    (`clear()` forgets everything).

    **When the mapping changes.** Only at `run_done` (all of that run's durations at once,
    then the save), never while a run is going: a run that uses the log as its
    `durations` is ordered by what finished runs taught. One log may serve several
    concurrent runs of one Trio program; each adds its durations when it ends, in the
    order they end; nothing is kept per run.

    **The file.** Read once, when the log is made: a missing or empty file is an empty log.
    A file that cannot be read as a durations log (not JSON, another shape or `version`, a
    negative, infinite or NaN duration, or unreadable) is logged as a warning (logger
    `exegraph_trio`) and read as an empty log, and **it is never replaced**: it may be
    another program's file named by mistake, a newer exegraph's, or a hand edit gone
    wrong, and nothing is lost. The log still learns, in memory; each save is refused
    (`FileExistsError`, a warning at a run's end) until that file is removed or becomes
    a durations log, and then the next save writes it. Its format, sorted and indented;
    `version` lets a later format change safely (a file of another version is neither
    read nor replaced):

    ```json
    {
      "durations": {
        "build": 12.5,
        "test": 30.25
      },
      "version": 1
    }
    ```

    At `run_done`, when anything changed, the file is written atomically: a temporary
    file in the same directory, flushed and `fsync`-ed, then `os.replace`-d over it, so a
    reader (or a crash) sees the old file or the new one, whole. Missing parent
    directories are created. A save that fails (a read-only directory, a full disk) is
    logged as a warning and tried again at the next run's end: the run itself never fails
    because of its log. The save is a small synchronous write in `run_done`, after every
    step of that run has finished; the Trio program waits for it (mostly the `fsync`).
    It is not handed to a thread: the instrument has no nursery, and this way the file is
    up to date when `run` returns (a script that exits right after loses nothing). Two
    processes sharing one file do not merge their learning: the last save wins.

    A log is an object with state, not a value: it equals only itself and hashes by
    identity (compare contents with `dict(log) == {...}`).

    Args:
        path: the JSON file, as a `str` or a path-like object.

    Raises:
        TypeError: `path` is not a `str` or `os.PathLike`.
        ValueError: `path` names no file (`""`, `"/"`, `"."`).
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        if not isinstance(path, str | os.PathLike):
            raise TypeError(
                f"DurationLog path must be a str or os.PathLike, not {type(path).__name__}: "
                f"{path!r}"
            )
        self._path = Path(path)
        if not self._path.name:
            raise ValueError(
                f"DurationLog path must name a file, like '.exegraph/durations.json', "
                f"not {os.fspath(path)!r}"
            )
        self._estimates, self._foreign = _load(self._path)
        self._dirty = False

    @property
    def path(self) -> Path:
        """The JSON file this log is read from and saved to."""
        return self._path

    def __getitem__(self, name: str) -> float:
        return self._estimates[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._estimates)

    def __len__(self) -> int:
        return len(self._estimates)

    def __contains__(self, name: object) -> bool:
        return name in self._estimates

    def __eq__(self, other: object) -> bool:
        return self is other

    def __hash__(self) -> int:
        return id(self)

    def __repr__(self) -> str:
        count = len(self._estimates)
        noun = "estimate" if count == 1 else "estimates"
        return f"<DurationLog {str(self._path)!r}: {count} {noun}>"

    def clear(self) -> None:
        """Forget every estimate; the file is rewritten at the next run's end or `save()`."""
        self._estimates.clear()
        self._dirty = True

    def save(self) -> None:
        """Write the file now, atomically (runs with the log attached save by themselves).

        Raises:
            FileExistsError: the file was not a durations log when the log was made, and
                still is not (it is never replaced; remove it, or choose another path).
            OSError: the file could not be written; the previous file, if any, is intact.
        """
        if self._foreign is not None:
            _, problem = read_log_file(self._path)  # (removed, or made a log, since?)
            if problem is not None:
                raise FileExistsError(
                    f"DurationLog does not replace {str(self._path)!r}: it is not a durations "
                    f"log ({problem}); remove it, or choose another path"
                )
            self._foreign = None
        text = json.dumps(
            {"version": _VERSION, "durations": self._estimates},
            allow_nan=False,
            indent=2,
            sort_keys=True,
        )
        _write_atomically(self._path, text + "\n")
        self._dirty = False

    def run_done(self, run: RunInfo, result: RunResult) -> None:
        """Learn the duration of every step of `result` that succeeded, then save."""
        for timing in result.steps:
            if timing.status is StepStatus.DONE:
                self._learn(timing.name, timing.duration)
        if not self._dirty:
            return
        try:
            self.save()
        except OSError as exc:
            logger.warning(
                "DurationLog could not save %s after run %d (%s); the durations stay in "
                "memory and the next run's end tries again",
                self._path,
                run.run_id,
                exc,
            )

    def _learn(self, name: str, seconds: float) -> None:
        if not (math.isfinite(seconds) and seconds >= 0):
            return
        old = self._estimates.get(name)
        self._estimates[name] = seconds if old is None else (old + seconds) / 2
        self._dirty = True


def _load(path: Path) -> tuple[dict[str, float], str | None]:
    """The estimates stored at `path`, and why it is not a durations log (a warning)."""
    estimates, problem = read_log_file(path)
    if problem is not None:
        _warn_unreadable(path, problem)
    return estimates, problem


def read_log_file(path: Path) -> tuple[dict[str, float], str | None]:
    """The estimates stored at `path`, or why it is not a durations log.

    A missing or empty file holds none.
    """
    try:
        raw = path.read_bytes()
    except (FileNotFoundError, NotADirectoryError):  # missing, as is a parent directory
        return {}, None
    except OSError as exc:
        return {}, f"cannot read it: {exc}"
    if not raw:
        return {}, None
    try:
        data: object = json.loads(raw)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError
        return {}, f"not JSON: {exc}"
    return _parse(data)


def _parse(data: object) -> tuple[dict[str, float], str | None]:
    """The estimates in a decoded file, or why it is not a durations file of ours."""
    if not isinstance(data, dict):
        return {}, f"expected a JSON object, got {type(data).__name__}"
    version = data.get("version")
    if type(version) is not int or version != _VERSION:
        return {}, f"expected version {_VERSION}, got {version!r}"
    durations = data.get("durations")
    if not isinstance(durations, dict):
        return {}, f"expected 'durations' to be an object, got {type(durations).__name__}"
    estimates: dict[str, float] = {}
    for name, seconds in durations.items():
        if not isinstance(name, str):
            return {}, f"step name {name!r} is not a string"
        try:
            good = (
                not isinstance(seconds, bool)
                and isinstance(seconds, int | float)
                and math.isfinite(seconds)
                and seconds >= 0
            )
        except OverflowError:  # an integer too large for a float
            good = False
        if not good:
            return {}, f"duration of {name!r} is {seconds!r:.60}, not finite seconds >= 0"
        estimates[name] = float(seconds)
    return estimates, None


def _warn_unreadable(path: Path, problem: str) -> None:
    logger.warning(
        "DurationLog ignores %s (%s): it starts empty and never replaces that file; remove "
        "it, or choose another path, to keep what it learns",
        path,
        problem,
    )


def _write_atomically(path: Path, text: str) -> None:
    """Replace `path` by a file holding `text`: readers see the old file or the new, whole."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    # Created like any new file (mode 0o666 less the umask), unlike tempfile's private 0o600.
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    fd = os.open(temporary, flags, 0o666)
    try:
        with open(fd, "wb") as file:
            file.write(text.encode("utf-8"))
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
