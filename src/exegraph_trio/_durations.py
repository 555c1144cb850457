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
import stat
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
    then the save) and at `save()`, never while a run is going: a run that uses the log as
    its `durations` is ordered by what finished runs taught. One log may serve several
    concurrent runs of one Trio program; each adds its durations when it ends, in the
    order they end; nothing is kept per run.

    **The file.** Read when the log is made, and again at each save (below): a missing or
    empty file is an empty log.
    Anything else that cannot be read as a durations log (not JSON, another shape or
    `version`, a negative, infinite or NaN duration; a directory, a device or a pipe; a
    file that cannot be read or is larger than 256 MiB) is logged as a warning (logger
    `exegraph_trio`) and read as an empty log, and **it is never replaced**: it may be
    another program's file named by mistake, a newer exegraph's, or a hand edit gone
    wrong, and nothing is lost. The log still learns, in memory; each save is refused
    (`FileExistsError`, a warning at a run's end) while that path holds such a file. The
    path is made absolute when the log is made, so a later change of the working
    directory does not move it. Its format, sorted and indented; `version` lets a later
    format change safely (a file of another version is neither read nor replaced):

    ```json
    {
      "durations": {
        "build": 12.5,
        "test": 30.25
      },
      "version": 1
    }
    ```

    At `run_done`, when the run taught anything, the file is saved. The file is the
    record, the log what it adds: a save reads the file again (if it is no longer a
    durations log, or is read-only, it is left alone, as above) and writes its entries,
    with the durations this log learned since its last save put in, and its other
    top-level keys kept; the log then holds what was written. So another process's
    entries, or a hand edit's, are kept, and a name removed from the file (or the file
    removed) stays removed unless a step of that name runs again; for a name both learned,
    the last save wins (saves are not locked against each other: two processes saving at
    the same instant can lose one's new names). The file is written atomically: a
    temporary file in the same directory, flushed and `fsync`-ed, then `os.replace`-d over
    it, so a reader (or a crash) sees the old file or the new one, whole. The new file
    keeps the old one's permissions (and owner and group, as far as the process may set
    them); a symbolic link stays a link, and the file it points to is written. Missing
    parent directories are created. A save that fails (a read-only directory, a full disk)
    is logged as a warning and tried again at the next run's end: the run itself never
    fails because of its log. The save is a small synchronous write in `run_done`, after
    every step of that run has finished; the Trio program waits for it (mostly the
    `fsync`). It is not handed to a thread: the instrument has no nursery, and this way
    the file is up to date when `run` returns (a script that exits right after loses
    nothing).

    A log is an object with state, not a value: it equals only itself and hashes by
    identity (compare contents with `dict(log) == {...}`).

    Args:
        path: the JSON file, as a `str` or a path-like object.

    Raises:
        TypeError: `path` is not a `str` or `os.PathLike`.
        ValueError: `path` names no file (`""`, `"/"`, `"."`, `".."`, `"cache/"`).
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        if not isinstance(path, str | os.PathLike):
            raise TypeError(
                f"DurationLog path must be a str or os.PathLike, not {type(path).__name__}: "
                f"{path!r}"
            )
        given = Path(path)
        if names_no_file(path):
            raise ValueError(
                f"DurationLog path must name a file, like '.exegraph/durations.json', "
                f"not {os.fspath(path)!r}"
            )
        self._path = given.absolute()
        self._estimates = _load(self._path)
        self._learned: set[str] = set()  # (since the last save: what a save puts in)
        self._cleared = False  # (since the last save: the file's entries are not kept)

    @property
    def path(self) -> Path:
        """The JSON file this log is read from and saved to (absolute)."""
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
        """Forget every estimate, in the log and at the next save.

        The next save (at a run's end, or `save()`) writes only what the log learns from
        now on, the file's other top-level keys kept.
        """
        self._estimates.clear()
        self._learned.clear()
        self._cleared = True

    def save(self) -> None:
        """Write the file now, atomically (runs with the log attached save by themselves).

        The file's entries (none after `clear()`), with what this log learned since its
        last save put in, and its other top-level keys: the log then holds what was
        written (see the class).

        Raises:
            FileExistsError: the path holds something that is not a durations log (it is
                never replaced; the message says what it is, and what to do).
            PermissionError: the file is read-only (or cannot be replaced).
            NotADirectoryError: a folder on the way to the file is a file.
            OSError: the file could not be written; the previous file, if any, is intact.
        """
        found = read_log_file(self._path)
        if found.problem is not None:
            raise FileExistsError(
                f"DurationLog does not replace {str(self._path)!r} ({found.problem}); "
                f"{found.advice}"
            )
        written = {} if self._cleared else found.estimates
        for name in self._learned:
            written[name] = self._estimates[name]
        document = {**found.other, "version": _VERSION, "durations": written}
        text = json.dumps(document, indent=2, sort_keys=True)
        _write_atomically(self._path, text + "\n")
        self._estimates = written
        self._learned.clear()
        self._cleared = False

    def run_done(self, run: RunInfo, result: RunResult) -> None:
        """Learn the duration of every step of `result` that succeeded, then save."""
        for timing in result.steps:
            if timing.status is StepStatus.DONE:
                self._learn(timing.name, timing.duration)
        if not (self._learned or self._cleared):
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
        self._learned.add(name)


def names_no_file(path: str | os.PathLike[str]) -> bool:
    """Whether `path` cannot name a file: `""`, `"."`, `".."`, a root, or ends in a slash."""
    text = os.fspath(path)
    return Path(text).name in ("", ".", "..") or text.endswith(("/", os.sep))


_MAX_BYTES: Final = 256 * 1024 * 1024
"""The largest file read as a durations log (10⁶ steps take about 50 MiB)."""


@final
class Found:
    """What `read_log_file` found at a path.

    Attributes:
        estimates: the durations it holds (none when the file is missing or empty).
        other: its other top-level keys, kept by a save.
        problem: why it is not a durations log (`None` when it is, or is missing).
        advice: what to do about `problem`.
    """

    __slots__ = ("advice", "estimates", "other", "problem")

    def __init__(
        self,
        estimates: dict[str, float] | None = None,
        other: dict[str, object] | None = None,
        problem: str | None = None,
        advice: str = "",
    ) -> None:
        self.estimates = {} if estimates is None else estimates
        self.other = {} if other is None else other
        self.problem = problem
        self.advice = advice


_FIX: Final = "choose another path, or fix or remove that file"


def _load(path: Path) -> dict[str, float]:
    """The estimates stored at `path`: none when it is not a durations log (a warning)."""
    found = read_log_file(path)
    if found.problem is not None:
        _warn_unreadable(path, found)
    return found.estimates


def read_log_file(path: Path) -> Found:  # noqa: PLR0911 - one return per finding
    """What `path` holds: a durations log, nothing (missing or empty), or something else.

    Follows symbolic links. Only a regular file is read (a device or a pipe could block,
    or never end: it is opened without blocking and looked at first), and only up to
    `_MAX_BYTES` (a file of /proc says it is empty, whatever it holds).
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except (FileNotFoundError, NotADirectoryError):  # missing, as is a parent directory
        return Found()
    except IsADirectoryError:  # (where a directory cannot be opened)
        return _directory(path)
    except OSError as exc:
        return Found(problem=f"cannot read it: {exc.strerror or exc}", advice=_CHECK)
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            return _directory(path)
        if not stat.S_ISREG(mode):
            return Found(
                problem="not a regular file (a device, a pipe or a socket)",
                advice="choose another path",
            )
        with open(fd, "rb", closefd=False) as file:
            raw = file.read(_MAX_BYTES + 1)
    except OSError as exc:
        return Found(problem=f"cannot read it: {exc.strerror or exc}", advice=_CHECK)
    finally:
        os.close(fd)
    if len(raw) > _MAX_BYTES:
        return Found(
            problem=f"more than {_MAX_BYTES} bytes, too large for a durations log",
            advice="choose another path",
        )
    if not raw.strip():
        return Found()
    try:
        data: object = json.loads(raw)
    except RecursionError:
        return Found(problem="JSON nested too deeply to read", advice=_FIX)
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
        return Found(problem=f"not JSON: {exc!s:.200}", advice=_FIX)
    return _parse(data)


def _directory(path: Path) -> Found:
    return Found(
        problem="it is a directory",
        advice=f"name a file in it, like {str(path / 'durations.json')!r}",
    )


_CHECK: Final = "check the path and its permissions, or choose another path"


def _parse(data: object) -> Found:  # noqa: PLR0911 - one return per finding
    """The estimates in a decoded file, or why it is not a durations file of ours."""
    if not isinstance(data, dict):
        return _not_ours(f"expected a JSON object, got {_json_type(data)}")
    if "version" not in data:
        return _not_ours("no 'version'")
    version = data["version"]
    if type(version) is not int or version != _VERSION:
        return _not_ours(f"expected version {_VERSION}, got {_json_repr(version)}")
    if "durations" not in data:
        return _not_ours("no 'durations'")
    durations = data["durations"]
    if not isinstance(durations, dict):
        return _not_ours(f"expected 'durations' to be an object, got {_json_type(durations)}")
    estimates: dict[str, float] = {}
    for name, seconds in durations.items():
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
            return _not_ours(
                f"duration of {_json_repr(name)} is {_json_repr(seconds)}, not finite seconds >= 0"
            )
        estimates[name] = float(seconds)
    other = {key: value for key, value in data.items() if key not in ("version", "durations")}
    return Found(estimates, other)


def _not_ours(problem: str) -> Found:
    return Found(problem=f"not a durations log: {problem}", advice=_FIX)


_JSON_TYPES: Final = {
    type(None): "null",
    bool: "a boolean",
    int: "a number",
    float: "a number",
    str: "a string",
    list: "an array",
    dict: "an object",
}


def _json_type(value: object) -> str:
    return _JSON_TYPES.get(type(value), type(value).__name__)


def _json_repr(value: object) -> str:
    """`value` as JSON writes it, cut at 60 characters (a file may hold anything)."""
    try:
        text = json.dumps(value)
    except (ValueError, OverflowError, RecursionError):
        text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _warn_unreadable(path: Path, found: Found) -> None:
    logger.warning(
        "DurationLog ignores %s (%s): it starts empty and never replaces that file; %s",
        path,
        found.problem,
        found.advice,
    )


def _write_atomically(path: Path, text: str) -> None:
    """Replace `path` by a file holding `text`: readers see the old file or the new, whole.

    A symbolic link stays one: the file it points to is replaced. The new file takes the
    old one's permissions, and its owner where the process may set it.
    """
    target = Path(os.path.realpath(path))
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):  # a file where a folder should be
        raise NotADirectoryError(
            f"cannot save {str(path)!r}: a folder on the way to it is a file"
        ) from None
    try:
        before: os.stat_result | None = target.stat()
    except OSError:
        before = None
    # (mode bits too: root may write any file, but a file no one may write is meant so)
    if before is not None and not (os.access(target, os.W_OK) and before.st_mode & 0o222):
        raise PermissionError(
            f"DurationLog does not replace {str(path)!r}: it is read-only; make it "
            "writable, or choose another path"
        )
    # A short name of its own: a file name close to the system's limit still saves.
    temporary = target.with_name(f".durations-{secrets.token_hex(6)}.tmp")
    # Created like any new file (mode 0o666 less the umask), unlike tempfile's private 0o600.
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    fd = os.open(temporary, flags, 0o666)
    try:
        with open(fd, "wb") as file:
            if before is not None:
                _keep_mode_and_owner(file.fileno(), before)
            file.write(text.encode("utf-8"))
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def _keep_mode_and_owner(fd: int, before: os.stat_result) -> None:
    """Give the file `fd` the permissions, owner and group of `before`, where allowed.

    (Its group at least, so that a file of a team's group stays readable by the team.)
    """
    if hasattr(os, "fchmod"):  # (on Windows since 3.13: only its read-only flag)
        os.fchmod(fd, stat.S_IMODE(before.st_mode))
    if not hasattr(os, "fchown"):  # (Windows)
        return
    try:  # only root may give a file away; its owner may give it to one of its groups
        os.fchown(fd, before.st_uid, before.st_gid)
    except OSError:
        with contextlib.suppress(OSError):
            os.fchown(fd, -1, before.st_gid)
