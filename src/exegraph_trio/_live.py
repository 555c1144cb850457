"""The live area of `Progress` on a terminal, and the thread that draws it.

The Trio thread only queues lines (`Screen.say`) and updates each run's `_RunState`;
the drawing thread prints the queued lines above the area, or else redraws it, at most
ten times a second. `rich` is imported only when a `Screen` is made.
"""

from __future__ import annotations

import collections
import logging
import sys
import threading
from typing import IO, TYPE_CHECKING, Final, final

if TYPE_CHECKING:
    from rich.console import Console, ConsoleOptions, RenderResult
    from rich.live import Live
    from rich.text import Text

    from ._instrument import RunInfo
    from ._progress import _RunState

__all__ = ["REFRESH_PER_SECOND", "Screen"]

logger: Final = logging.getLogger("exegraph_trio")

REFRESH_PER_SECOND: Final = 10
"""Redraws of the live area a second, at most."""


@final
class Screen:
    """The live area and the thread that draws it, shared by the runs of one `Progress`.

    The Trio thread only queues lines (`say`); the drawing thread prints the queued lines
    above the area, or else redraws it, every tenth of a second. `close` (at the last
    `run_done`) stops the thread, prints what is left and removes the area.
    """

    def __init__(self, console: Console, runs: dict[RunInfo, _RunState]) -> None:
        from rich.live import Live  # noqa: PLC0415 - rich is an optional extra

        self._console = console
        self._runs = runs
        self._pending: collections.deque[Text] = collections.deque()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        before = sys.stdout, sys.stderr
        self._live: Live = Live(
            self,
            console=console,
            auto_refresh=False,
            transient=True,
            redirect_stdout=True,
            redirect_stderr=True,
        )
        self._live.start()
        self._rerouted = _route_logging(before, (sys.stdout, sys.stderr))
        self._thread = threading.Thread(target=self._draw, name="exegraph-progress", daemon=True)
        self._thread.start()

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        for state in list(self._runs.values()):
            yield from state.render(options.max_width)

    def say(self, label: str, mark: str, style: str, text: str) -> None:
        """Queue a line to print above the area at the next redraw."""
        from rich.text import Text  # noqa: PLC0415 - rich is an optional extra

        line = Text(label)
        line.append(mark, style=style)
        line.append(" " + text)
        self._pending.append(line)

    def _draw(self) -> None:
        try:
            while not self._stop.wait(1 / REFRESH_PER_SECOND):
                self._paint()
        except Exception:
            logger.exception("the progress display failed; it stops drawing")

    def _paint(self) -> None:
        with self._lock:
            if self._stop.is_set():
                return
            lines = []
            while self._pending:
                lines.append(self._pending.popleft())
            if lines:
                from rich.text import Text  # noqa: PLC0415 - rich is an optional extra

                self._console.print(Text("\n").join(lines))  # redraws the area below
            else:
                self._live.refresh()

    def close(self) -> None:
        """Stop drawing, print the queued lines and remove the area."""
        self._stop.set()
        try:
            self._thread.join()
        finally:
            with self._lock:
                try:
                    _restore_logging(self._rerouted)
                    while self._pending:
                        self._console.print(self._pending.popleft())
                finally:
                    self._live.stop()


def _route_logging(
    before: tuple[IO[str], IO[str]], after: tuple[IO[str], IO[str]]
) -> list[tuple[logging.StreamHandler[IO[str]], IO[str]]]:
    """Point the root logger's handlers on the old stdout/stderr at their redirections."""
    rerouted: list[tuple[logging.StreamHandler[IO[str]], IO[str]]] = []
    for handler in logging.getLogger().handlers:
        if not isinstance(handler, logging.StreamHandler) or isinstance(
            handler, logging.FileHandler
        ):
            continue
        for old, new in zip(before, after, strict=True):
            if handler.stream is old and new is not old:
                handler.setStream(new)
                rerouted.append((handler, old))
                break
    return rerouted


def _restore_logging(rerouted: list[tuple[logging.StreamHandler[IO[str]], IO[str]]]) -> None:
    for handler, old in rerouted:
        handler.setStream(old)
