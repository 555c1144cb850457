"""`DurationLog`: what it learns from real runs, the file it keeps, and how it fails softly.

Charter: real runs under virtual time (`autojump_clock`, durations that are exact binary
fractions, so averages compare with `==`); real files in `tmp_path`; log records checked
with `caplog`. A broken file or directory is a warning, and the run it serves succeeds.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import pathlib
import stat
from collections.abc import Iterator, Mapping

import pytest
import trio

import exegraph_trio as exegraph
from exegraph_trio import DurationLog, ErrorPolicy, Graph, Retry, RunOptions, Step, StepStatus
from exegraph_trio import _durations as exegraph_durations
from support import Recorder


def read(path: pathlib.Path) -> object:
    return json.loads(path.read_text(encoding="utf-8"))


def names_in(directory: pathlib.Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def options(log: DurationLog, policy: ErrorPolicy = ErrorPolicy.FAIL_FAST) -> RunOptions:
    return RunOptions(instruments=[log], error_policy=policy)


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.name == "exegraph_trio" and record.levelno == logging.WARNING
    ]


# --- the mapping ------------------------------------------------------------------------


def test_a_log_is_a_read_only_mapping_of_names_to_seconds(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "durations.json"
    path.write_text('{"version": 1, "durations": {"a": 1.5, "b": 2}}')
    log = DurationLog(path)
    assert isinstance(log, Mapping)
    assert isinstance(log, exegraph.Instrument)
    assert dict(log) == {"a": 1.5, "b": 2.0}
    assert type(log["b"]) is float
    assert len(log) == 2
    assert "a" in log
    assert "c" not in log
    assert log.get("c") is None
    with pytest.raises(KeyError):
        log["c"]
    assert not hasattr(log, "__setitem__")


def test_path_accepts_str_and_path_like(tmp_path: pathlib.Path) -> None:
    assert DurationLog(str(tmp_path / "d.json")).path == tmp_path / "d.json"
    assert DurationLog(tmp_path / "d.json").path == tmp_path / "d.json"


def test_a_path_of_another_type_is_a_type_error() -> None:
    with pytest.raises(TypeError, match=r"str or os\.PathLike, not int"):
        DurationLog(3)  # type: ignore[arg-type]


def test_the_repr_names_the_file_and_counts_the_estimates(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "d.json"
    assert repr(DurationLog(path)) == f"<DurationLog {str(path)!r}: 0 estimates>"
    path.write_text('{"version": 1, "durations": {"a": 1}}')
    assert repr(DurationLog(path)) == f"<DurationLog {str(path)!r}: 1 estimate>"


def test_a_log_equals_only_itself_and_hashes(tmp_path: pathlib.Path) -> None:
    first = DurationLog(tmp_path / "d.json")
    second = DurationLog(tmp_path / "d.json")
    assert first == first  # noqa: PLR0124
    assert first != second
    assert first != {}
    assert len({first, second}) == 2
    # so options carrying it stay hashable, like any other options
    hash(RunOptions(instruments=[first], durations=first))


# --- learning from runs -----------------------------------------------------------------


async def test_a_run_records_each_successful_step_and_saves_the_file(
    autojump_clock: trio.testing.MockClock, tmp_path: pathlib.Path
) -> None:
    rec = Recorder()
    path = tmp_path / "durations.json"
    log = DurationLog(path)
    graph = Graph([rec.step("a", 1.5), rec.step("b", 0.25, depends_on=["a"]), rec.step("c")])
    await exegraph.run(graph, options(log))
    assert dict(log) == {"a": 1.5, "b": 0.25, "c": 0.0}
    assert read(path) == {"version": 1, "durations": {"a": 1.5, "b": 0.25, "c": 0.0}}


async def test_each_new_duration_is_averaged_with_the_estimate(
    autojump_clock: trio.testing.MockClock, tmp_path: pathlib.Path
) -> None:
    rec = Recorder()
    log = DurationLog(tmp_path / "durations.json")
    learned = []
    for seconds in [4.0, 2.0, 8.0, 8.0, 0.0]:
        await exegraph.run(Graph([rec.step("work", seconds)]), options(log))
        learned.append(log["work"])
    assert learned == [4.0, 3.0, 5.5, 6.75, 3.375]
    assert read(log.path) == {"version": 1, "durations": {"work": 3.375}}


async def test_a_retried_step_counts_from_its_first_attempt_to_its_last(
    autojump_clock: trio.testing.MockClock, tmp_path: pathlib.Path
) -> None:
    log = DurationLog(tmp_path / "durations.json")
    attempts = 0

    async def flaky() -> None:
        nonlocal attempts
        attempts += 1
        await trio.sleep(1)
        if attempts == 1:
            raise OSError("flaky")

    step = Step("flaky", flaky, retry=Retry(attempts=2, delay=2))
    await exegraph.run(Graph([step]), options(log))
    # 1 s failed attempt, 2 s wait, 1 s successful attempt: what its dependents waited
    assert dict(log) == {"flaky": 4.0}


async def test_failed_timed_out_and_skipped_steps_teach_nothing(
    autojump_clock: trio.testing.MockClock, tmp_path: pathlib.Path
) -> None:
    rec = Recorder()
    log = DurationLog(tmp_path / "durations.json")
    graph = Graph(
        [
            rec.step("ok", 0.5),
            rec.step("bad", 2, error=ValueError("bad")),
            rec.step("after", depends_on=["bad"]),
            rec.step("late", 3, depends_on=["ok"], timeout=1),
        ]
    )
    result = await exegraph.run_with_result(graph, options(log, ErrorPolicy.CONTINUE_ON_ERROR))
    assert {t.name: str(t.status) for t in result.steps} == {
        "ok": "Done",
        "late": "Failed",
        "bad": "Failed",
        "after": "Skipped",
    }
    assert dict(log) == {"ok": 0.5}
    assert read(log.path) == {"version": 1, "durations": {"ok": 0.5}}


async def test_steps_cancelled_by_fail_fast_teach_nothing(
    autojump_clock: trio.testing.MockClock, tmp_path: pathlib.Path
) -> None:
    rec = Recorder()
    log = DurationLog(tmp_path / "durations.json")
    graph = Graph(
        [rec.step("ok", 0.5), rec.step("bad", 1, error=ValueError()), rec.step("slow", 4)]
    )
    result = await exegraph.run_with_result(graph, options(log))
    assert result["slow"].status is StepStatus.CANCELLED
    assert dict(log) == {"ok": 0.5}


async def test_a_run_cancelled_from_outside_keeps_what_finished(
    autojump_clock: trio.testing.MockClock, tmp_path: pathlib.Path
) -> None:
    rec = Recorder()
    log = DurationLog(tmp_path / "durations.json")
    graph = Graph([rec.step("ok", 0.5), rec.step("slow", 4)])
    with trio.move_on_after(1):
        await exegraph.run(graph, options(log))
    assert dict(log) == {"ok": 0.5}
    assert read(log.path) == {"version": 1, "durations": {"ok": 0.5}}


async def test_a_run_where_nothing_succeeded_writes_no_file(
    autojump_clock: trio.testing.MockClock, tmp_path: pathlib.Path
) -> None:
    rec = Recorder()
    log = DurationLog(tmp_path / "durations.json")
    result = await exegraph.run_with_result(
        Graph([rec.step("bad", 1, error=ValueError())]), options(log)
    )
    assert not result.ok
    assert len(log) == 0
    assert names_in(tmp_path) == []


async def test_the_mapping_changes_only_when_a_run_is_done(
    autojump_clock: trio.testing.MockClock, tmp_path: pathlib.Path
) -> None:
    log = DurationLog(tmp_path / "durations.json")
    seen: list[dict[str, float]] = []

    async def first() -> None:
        await trio.sleep(1)

    async def second() -> None:
        seen.append(dict(log))  # `first` is done, its run is not
        await trio.sleep(1)

    graph = Graph([Step("first", first), Step("second", second, depends_on=["first"])])
    await exegraph.run(graph, options(log))
    assert seen == [{}]
    assert dict(log) == {"first": 1.0, "second": 1.0}


async def test_two_concurrent_runs_share_one_log(
    autojump_clock: trio.testing.MockClock, tmp_path: pathlib.Path
) -> None:
    rec = Recorder()
    log = DurationLog(tmp_path / "durations.json")
    seen: list[dict[str, float]] = []

    async def look() -> None:
        seen.append(dict(log))

    short = Graph([rec.step("a", 1), rec.step("shared", 2)])
    long = Graph([rec.step("b", 3), rec.step("shared", 4), Step("look", look, depends_on=["b"])])
    async with trio.open_nursery() as nursery:
        nursery.start_soon(exegraph.run, short, options(log))
        nursery.start_soon(exegraph.run, long, options(log))
    # at t=3 the short run was done (t=2), the long one not yet (t=4)
    assert seen == [{"a": 1.0, "shared": 2.0}]
    assert dict(log) == {"a": 1.0, "b": 3.0, "look": 0.0, "shared": 3.0}
    assert read(log.path) == {"version": 1, "durations": dict(log)}


async def test_a_new_log_reads_what_an_earlier_one_saved(
    autojump_clock: trio.testing.MockClock, tmp_path: pathlib.Path
) -> None:
    rec = Recorder()
    path = tmp_path / "durations.json"
    first = DurationLog(str(path))
    graph = Graph([rec.step("a", 0.1), rec.step("b", 1 / 3)])
    await exegraph.run(graph, options(first))
    await exegraph.run(graph, options(first))
    second = DurationLog(path)
    assert dict(second) == dict(first)  # floats survive the round trip exactly
    await exegraph.run(graph, options(second))
    assert second["a"] == pytest.approx(0.1)


async def test_the_log_serves_as_the_runs_durations(
    autojump_clock: trio.testing.MockClock, tmp_path: pathlib.Path
) -> None:
    rec = Recorder()
    log = DurationLog(tmp_path / "durations.json")
    graph = Graph([rec.step("a", 1), rec.step("b", 2)])
    await exegraph.run(graph, RunOptions(durations=log, instruments=[log]))
    await exegraph.run(graph, RunOptions(durations=log, instruments=[log]))
    assert dict(log) == {"a": 1.0, "b": 2.0}


# --- the file ---------------------------------------------------------------------------


async def test_a_missing_file_is_an_empty_log_without_a_warning(
    autojump_clock: trio.testing.MockClock,
    tmp_path: pathlib.Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    rec = Recorder()
    path = tmp_path / "cache" / "exegraph" / "durations.json"
    log = DurationLog(path)
    assert len(log) == 0
    await exegraph.run(Graph([rec.step("a", 1)]), options(log))
    assert read(path) == {"version": 1, "durations": {"a": 1.0}}  # directories created
    assert warnings_of(caplog) == []


def test_the_file_is_sorted_indented_json_with_a_version(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "durations.json"
    path.write_text('{"version": 1, "durations": {"b": 2.5, "a": 1}}')
    DurationLog(path).save()
    assert path.read_text(encoding="utf-8") == (
        '{\n  "durations": {\n    "a": 1.0,\n    "b": 2.5\n  },\n  "version": 1\n}\n'
    )


def test_save_replaces_the_file_with_a_complete_fsynced_temporary(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "durations.json"
    path.write_text('{"version": 1, "durations": {"old": 1.0}}')
    log = DurationLog(path)
    steps: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        steps.append("fsync")
        real_fsync(fd)

    def replace(source: str | os.PathLike[str], target: str | os.PathLike[str]) -> None:
        source, target = pathlib.Path(source), pathlib.Path(target)
        steps.append("replace")
        assert source.parent == tmp_path
        assert source.name.startswith(".durations-")
        assert target == path
        # the new content is complete before it takes the file's name...
        assert read(source) == {"version": 1, "durations": {}}
        # ...and until then the file is the old one, whole
        assert read(path) == {"version": 1, "durations": {"old": 1.0}}
        real_replace(source, target)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    log.clear()
    log.save()
    assert steps == ["fsync", "replace"]
    assert read(path) == {"version": 1, "durations": {}}
    assert names_in(tmp_path) == ["durations.json"]


@pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")
def test_the_saved_file_gets_ordinary_permissions(tmp_path: pathlib.Path) -> None:
    umask = os.umask(0o022)
    try:
        DurationLog(tmp_path / "durations.json").save()
    finally:
        os.umask(umask)
    assert (tmp_path / "durations.json").stat().st_mode & 0o777 == 0o644


def test_a_save_that_fails_midway_leaves_the_old_file_and_no_temporary(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "durations.json"
    path.write_text('{"version": 1, "durations": {"old": 1.0}}')
    log = DurationLog(path)

    def fsync(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", fsync)
    log.clear()
    with pytest.raises(OSError, match="No space left"):
        log.save()
    assert read(path) == {"version": 1, "durations": {"old": 1.0}}
    assert names_in(tmp_path) == ["durations.json"]


def test_clear_forgets_every_estimate(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "durations.json"
    path.write_text('{"version": 1, "durations": {"a": 1}}')
    log = DurationLog(path)
    log.clear()
    assert len(log) == 0
    assert read(path) == {"version": 1, "durations": {"a": 1}}  # until saved
    log.save()
    assert len(DurationLog(path)) == 0


CORRUPT = {
    "not JSON": b'{"version": 1, "durations": {',
    "not UTF-8": b"\xff\xfe\x00",
    "a list": b"[1, 2]",
    "no version": b'{"durations": {"a": 1}}',
    "another version": b'{"version": 2, "durations": {"a": 1}}',
    "a string version": b'{"version": "1", "durations": {"a": 1}}',
    "a boolean version": b'{"version": true, "durations": {"a": 1}}',
    "no durations": b'{"version": 1}',
    "durations a list": b'{"version": 1, "durations": [["a", 1]]}',
    "a negative duration": b'{"version": 1, "durations": {"a": 1, "b": -1}}',
    "a NaN duration": b'{"version": 1, "durations": {"a": NaN}}',
    "an infinite duration": b'{"version": 1, "durations": {"a": Infinity}}',
    "a string duration": b'{"version": 1, "durations": {"a": "1"}}',
    "a boolean duration": b'{"version": 1, "durations": {"a": true}}',
    "a null duration": b'{"version": 1, "durations": {"a": null}}',
    "deeply nested": b"[" * 100_000,
}


@pytest.mark.parametrize("content", CORRUPT.values(), ids=CORRUPT.keys())
async def test_a_file_that_is_not_a_log_is_a_warning_an_empty_log_and_never_replaced(
    autojump_clock: trio.testing.MockClock,
    tmp_path: pathlib.Path,
    caplog: pytest.LogCaptureFixture,
    content: bytes,
) -> None:
    # Another program's file, a newer format, a hand edit gone wrong: nothing is lost.
    rec = Recorder()
    path = tmp_path / "durations.json"
    path.write_bytes(content)
    log = DurationLog(path)
    assert len(log) == 0
    [warning] = warnings_of(caplog)
    assert f"DurationLog ignores {path}" in warning
    assert "never replaces that file" in warning
    caplog.clear()
    result = await exegraph.run_with_result(Graph([rec.step("a", 1)]), options(log))
    assert result.ok
    assert path.read_bytes() == content
    assert dict(log) == {"a": 1.0}  # learnt, in memory
    [warning] = warnings_of(caplog)
    assert f"DurationLog could not save {path} after run " in warning
    assert "DurationLog does not replace" in warning
    assert "choose another path, or fix or remove that file" in warning
    assert names_in(tmp_path) == ["durations.json"]  # no temporary file left
    with pytest.raises(FileExistsError, match="DurationLog does not replace"):
        log.save()
    # Once the file is gone, the next run's end saves what the log learnt.
    path.unlink()
    await exegraph.run_with_result(Graph([rec.step("b", 2)]), options(log))
    assert read(path) == {"version": 1, "durations": {"a": 1.0, "b": 2.0}}


def test_a_file_made_a_log_since_is_saved_with_its_entries_kept(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "durations.json"
    path.write_text('{"version": 1, "durations": {"keep": 7.0,}}')  # a hand edit gone wrong
    log = DurationLog(path)
    log._learn("x", 1.0)
    with pytest.raises(FileExistsError):
        log.save()
    path.write_text('{"version": 1, "durations": {"keep": 7.0}}')  # fixed
    log.save()
    assert read(path) == {"version": 1, "durations": {"keep": 7.0, "x": 1.0}}


@pytest.mark.parametrize("content", [b"", b" \n"], ids=["empty", "whitespace"])
async def test_an_empty_file_is_an_empty_log_and_gets_replaced(
    autojump_clock: trio.testing.MockClock,
    tmp_path: pathlib.Path,
    caplog: pytest.LogCaptureFixture,
    content: bytes,
) -> None:
    rec = Recorder()
    path = tmp_path / "durations.json"
    path.write_bytes(content)
    log = DurationLog(path)
    assert len(log) == 0
    assert warnings_of(caplog) == []
    assert (await exegraph.run_with_result(Graph([rec.step("a", 1)]), options(log))).ok
    assert read(path) == {"version": 1, "durations": {"a": 1.0}}


def test_the_warning_says_what_is_wrong(
    tmp_path: pathlib.Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "durations.json"
    path.write_text('{"version": 1, "durations": {"a": 1, "b": -0.5}}')
    DurationLog(path)
    [warning] = warnings_of(caplog)
    assert 'duration of "b" is -0.5, not finite seconds >= 0' in warning


def test_a_directory_is_a_warning_and_an_empty_log_that_says_to_name_a_file(
    tmp_path: pathlib.Path, caplog: pytest.LogCaptureFixture
) -> None:
    log = DurationLog(tmp_path)
    assert len(log) == 0
    [warning] = warnings_of(caplog)
    assert "(it is a directory)" in warning
    assert f"name a file in it, like {str(tmp_path / 'durations.json')!r}" in warning
    with pytest.raises(FileExistsError, match="it is a directory"):
        log.save()


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes are POSIX")
def test_a_pipe_is_neither_read_nor_replaced(
    tmp_path: pathlib.Path, caplog: pytest.LogCaptureFixture
) -> None:
    # (Reading one would block until a writer came; a device like /dev/zero never ends,
    # and /dev/null, read as empty, was replaced by a file: neither is a regular file.)
    path = tmp_path / "fifo"
    os.mkfifo(path)
    log = DurationLog(path)
    assert "not a regular file" in warnings_of(caplog)[0]
    with pytest.raises(FileExistsError, match="not a regular file"):
        log.save()
    assert stat.S_ISFIFO(path.stat().st_mode)


def test_a_file_too_large_to_be_a_log_is_not_read(
    tmp_path: pathlib.Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(exegraph_durations, "_MAX_BYTES", 10)
    path = tmp_path / "big.json"
    path.write_text('{"version": 1, "durations": {}}')
    assert len(DurationLog(path)) == 0
    assert "more than 10 bytes, too large for a durations log" in warnings_of(caplog)[0]


@pytest.mark.skipif(not pathlib.Path("/proc/self/status").exists(), reason="Linux's /proc")
def test_a_file_that_says_it_is_empty_is_read_only_up_to_the_limit(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(exegraph_durations, "_MAX_BYTES", 10)
    assert pathlib.Path("/proc/self/status").stat().st_size == 0
    assert len(DurationLog("/proc/self/status")) == 0
    assert "more than 10 bytes" in warnings_of(caplog)[0]


def test_a_file_that_is_no_longer_a_log_when_saved_is_left_alone(tmp_path: pathlib.Path) -> None:
    # (A step of the run wrote its report where the log was to go, say.)
    path = tmp_path / "report.json"
    log = DurationLog(path)
    log._learn("a", 1.0)
    path.write_text('{"tests": 120}\n')
    with pytest.raises(FileExistsError, match="not a durations log: no 'version'"):
        log.save()
    assert path.read_text() == '{"tests": 120}\n'


def test_a_save_keeps_the_entries_and_keys_the_file_has_and_the_log_does_not(
    tmp_path: pathlib.Path,
) -> None:
    path = tmp_path / "durations.json"
    path.write_text('{"version": 1, "durations": {"a": 1}, "comment": "keep me"}')
    log = DurationLog(path)
    other = DurationLog(path)  # (another process, say)
    other._learn("b", 2.0)
    other.save()
    log._learn("a", 3.0)
    log.save()
    assert read(path) == {"version": 1, "durations": {"a": 2.0, "b": 2.0}, "comment": "keep me"}
    assert dict(log) == {"a": 2.0, "b": 2.0}


def test_a_save_puts_in_only_what_the_log_learned_since_its_last_save(
    tmp_path: pathlib.Path,
) -> None:
    # (A value the log only read when it was made is not written back over a newer one.)
    path = tmp_path / "durations.json"
    path.write_text('{"version": 1, "durations": {"build": 10}}')
    first, second = DurationLog(path), DurationLog(path)
    second._learn("build", 30.0)
    second.save()
    first._learn("test", 1.0)
    first.save()
    assert read(path) == {"version": 1, "durations": {"build": 20.0, "test": 1.0}}
    assert dict(first) == {"build": 20.0, "test": 1.0}  # what was written


def test_a_name_removed_from_the_file_stays_removed(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "durations.json"
    path.write_text('{"version": 1, "durations": {"a": 1, "old": 2}}')
    log = DurationLog(path)
    path.write_text('{"version": 1, "durations": {"a": 1}}')  # edited by hand
    log._learn("b", 3.0)
    log.save()
    assert read(path) == {"version": 1, "durations": {"a": 1.0, "b": 3.0}}
    path.unlink()  # removed
    log._learn("c", 4.0)
    log.save()
    assert read(path) == {"version": 1, "durations": {"c": 4.0}}


def test_clear_keeps_the_files_other_keys_and_then_only_what_is_learned(
    tmp_path: pathlib.Path,
) -> None:
    path = tmp_path / "durations.json"
    path.write_text('{"version": 1, "durations": {"a": 1}, "comment": "keep me"}')
    log = DurationLog(path)
    log.clear()
    log._learn("b", 2.0)
    log.save()
    assert read(path) == {"version": 1, "durations": {"b": 2.0}, "comment": "keep me"}
    log._learn("c", 3.0)
    log.save()  # (the file's entries are kept again)
    assert read(path) == {"version": 1, "durations": {"b": 2.0, "c": 3.0}, "comment": "keep me"}


def test_a_read_only_file_is_not_replaced(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "durations.json"
    path.write_text('{"version": 1, "durations": {"a": 1}}')
    log = DurationLog(path)
    log._learn("b", 2.0)
    # (`os.access` answers for the process: root may write anything, so the test cannot
    # rely on a mode alone; it asks the same question the save does.)
    real_access = os.access
    monkeypatch.setattr(
        os, "access", lambda p, mode, **kw: mode != os.W_OK and real_access(p, mode)
    )
    with pytest.raises(PermissionError, match="it is read-only; make it writable"):
        log.save()
    assert read(path) == {"version": 1, "durations": {"a": 1}}
    assert names_in(tmp_path) == ["durations.json"]


def test_a_file_no_one_may_write_is_not_replaced_even_by_root(tmp_path: pathlib.Path) -> None:
    # `os.access` says root may write anything (CI containers run as root): a file made
    # read-only with `chmod 444` was replaced there.
    path = tmp_path / "durations.json"
    path.write_text('{"version": 1, "durations": {"a": 1}}')
    path.chmod(0o444)
    log = DurationLog(path)
    log._learn("b", 2.0)
    with pytest.raises(PermissionError, match="it is read-only; make it writable"):
        log.save()
    assert read(path) == {"version": 1, "durations": {"a": 1}}
    assert names_in(tmp_path) == ["durations.json"]


@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() != 0, reason="only root may give a file away"
)
def test_a_save_keeps_the_files_owner_and_group(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "durations.json"
    path.write_text('{"version": 1, "durations": {}}')
    os.chown(path, 65534, 4242)
    log = DurationLog(path)
    log._learn("a", 1.0)
    log.save()
    assert (path.stat().st_uid, path.stat().st_gid) == (65534, 4242)


@pytest.mark.parametrize("path", ["cache/", "some/where/"])
def test_a_path_ending_in_a_slash_names_no_file(path: str) -> None:
    with pytest.raises(ValueError, match="must name a file"):
        DurationLog(path)


def test_a_relative_path_stays_where_it_was_when_the_log_was_made(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    monkeypatch.chdir(tmp_path / "one")
    log = DurationLog("durations.json")
    assert log.path == tmp_path / "one" / "durations.json"
    monkeypatch.chdir(tmp_path / "two")
    log._learn("a", 1.0)
    log.save()
    assert names_in(tmp_path / "two") == []
    assert read(tmp_path / "one" / "durations.json") == {"version": 1, "durations": {"a": 1.0}}


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symbolic links")
def test_a_symbolic_link_stays_a_link_to_the_file_saved(tmp_path: pathlib.Path) -> None:
    real = tmp_path / "shared" / "durations.json"
    real.parent.mkdir()
    real.write_text('{"version": 1, "durations": {"a": 1}}')
    link = tmp_path / "link.json"
    link.symlink_to(real)
    dangling = tmp_path / "dangling.json"
    dangling.symlink_to(tmp_path / "shared" / "new.json")
    for path in (link, dangling):
        log = DurationLog(path)
        log._learn("b", 2.0)
        log.save()
        assert path.is_symlink()
    assert read(real) == {"version": 1, "durations": {"a": 1.0, "b": 2.0}}
    assert read(tmp_path / "shared" / "new.json") == {"version": 1, "durations": {"b": 2.0}}
    assert sorted(names_in(tmp_path / "shared")) == ["durations.json", "new.json"]


@pytest.mark.skipif(not hasattr(os, "fchmod"), reason="POSIX permissions")
def test_a_save_keeps_the_files_permissions(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "durations.json"
    path.write_text('{"version": 1, "durations": {}}')
    path.chmod(0o600)  # a private log stays private
    log = DurationLog(path)
    log._learn("a", 1.0)
    log.save()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_file_name_at_the_systems_limit_still_saves(tmp_path: pathlib.Path) -> None:
    limit = os.pathconf(tmp_path, "PC_NAME_MAX") if hasattr(os, "pathconf") else 255
    path = tmp_path / ("d" * (limit - 5) + ".json")
    log = DurationLog(path)
    log._learn("a", 1.0)
    log.save()
    assert read(path) == {"version": 1, "durations": {"a": 1.0}}


@pytest.mark.parametrize("under", ["durations.json", "sub/durations.json"])
def test_a_folder_on_the_way_that_is_a_file_is_said_so(tmp_path: pathlib.Path, under: str) -> None:
    (tmp_path / "graph.py").write_text("")
    log = DurationLog(tmp_path / "graph.py" / under)
    with pytest.raises(NotADirectoryError, match="a folder on the way to it is a file"):
        log.save()


@pytest.mark.parametrize("path", ["..", "some/.."])
def test_a_path_ending_in_dot_dot_names_no_file(path: str) -> None:
    with pytest.raises(ValueError, match="must name a file"):
        DurationLog(path)


async def test_a_file_that_cannot_be_saved_is_a_warning_and_the_run_succeeds(
    autojump_clock: trio.testing.MockClock,
    tmp_path: pathlib.Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    rec = Recorder()
    (tmp_path / "not-a-directory").write_text("")
    log = DurationLog(tmp_path / "not-a-directory" / "durations.json")
    result = await exegraph.run_with_result(Graph([rec.step("a", 1)]), options(log))
    assert result.ok
    assert dict(log) == {"a": 1.0}  # kept in memory
    [warning] = warnings_of(caplog)
    assert f"DurationLog could not save {log.path} after run " in warning
    assert "the next run's end tries again" in warning
    assert names_in(tmp_path) == ["not-a-directory"]


@contextlib.contextmanager
def read_only(directory: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Make `directory` read-only; as root (who writes anyway), refuse creating files in it."""
    if hasattr(os, "geteuid") and os.geteuid() != 0:
        directory.chmod(0o555)
        try:
            yield
        finally:
            directory.chmod(0o755)
        return
    real_open = os.open

    def refusing_open(
        path: str | os.PathLike[str], flags: int, mode: int = 0o777, *, dir_fd: int | None = None
    ) -> int:
        if flags & os.O_CREAT and pathlib.Path(path).parent == directory:
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real_open(path, flags, mode, dir_fd=dir_fd)

    with monkeypatch.context() as patch:
        patch.setattr(os, "open", refusing_open)
        yield


async def test_a_read_only_directory_is_a_warning_and_the_next_run_tries_again(
    autojump_clock: trio.testing.MockClock,
    tmp_path: pathlib.Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rec = Recorder()
    directory = tmp_path / "ro"
    directory.mkdir()
    log = DurationLog(directory / "durations.json")
    with read_only(directory, monkeypatch):
        assert (await exegraph.run_with_result(Graph([rec.step("a", 1)]), options(log))).ok
    [warning] = warnings_of(caplog)
    assert "Permission denied" in warning
    assert names_in(directory) == []
    # nothing new succeeds in this run, but the unsaved durations are saved at its end
    await exegraph.run_with_result(Graph([rec.step("b", 1, error=ValueError())]), options(log))
    assert read(directory / "durations.json") == {"version": 1, "durations": {"a": 1.0}}


@pytest.mark.parametrize("path", ["", "/", "."])
def test_a_path_that_names_no_file_is_refused_at_once(path: str) -> None:
    with pytest.raises(ValueError, match="must name a file"):
        DurationLog(path)


def test_a_number_too_large_for_a_float_is_a_corrupt_file(
    tmp_path: pathlib.Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "durations.json"
    path.write_text('{"version": 1, "durations": {"a": 1' + "0" * 400 + "}}")
    assert dict(DurationLog(path)) == {}
    assert "not finite seconds" in caplog.text


async def test_an_estimate_too_large_for_a_float_is_a_value_error() -> None:
    graph = Graph([Step("a", Recorder().action("a"))])
    with pytest.raises(ValueError, match="finite seconds"):
        await exegraph.run(graph, RunOptions(durations={"a": 10**400}))
    with pytest.raises(ValueError, match="finite seconds"):
        exegraph.plan(graph, RunOptions(durations={"a": 10**400}))
