"""Reading how an action ended: cancellations, interrupts, notes.

Small functions over exceptions, shared by the driver's classification of a step's
outcome and of what its nursery raised.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Final

import trio

__all__ = [
    "interrupt_in",
    "is_cancellation",
    "leaves",
    "not_awaitable",
    "note",
    "over_scope_error",
]


def is_cancellation(exc: BaseException) -> bool:
    """`Cancelled`, or a group of nothing but `Cancelled`."""
    if isinstance(exc, trio.Cancelled):
        return True
    if isinstance(exc, BaseExceptionGroup):
        return exc.split(trio.Cancelled)[1] is None
    return False


def leaves(exc: BaseException) -> Iterator[BaseException]:
    todo = [exc]
    while todo:
        current = todo.pop()
        if isinstance(current, BaseExceptionGroup):
            todo.extend(reversed(current.exceptions))
        else:
            yield current


def interrupt_in(exc: BaseException) -> BaseException | None:
    """The `KeyboardInterrupt`-like exception `exc` is or holds (first one), if any."""
    if isinstance(exc, Exception):
        return None
    for leaf in leaves(exc):
        if not isinstance(leaf, (Exception, trio.Cancelled)):
            return leaf
    return None


def not_awaitable(exc: TypeError) -> str:
    """What the action returned, if `exc` is the step task's own `await` refusing it.

    `exc` reads `object int can't be used in 'await' expression`; the result is then
    `"int"`, else `""` (a `TypeError` raised inside the action).
    """
    tb = exc.__traceback__
    if tb is None or tb.tb_next is not None:
        return ""  # raised inside the action, not by our await
    found = re.fullmatch(r"object (\S+) can't be used in 'await' expression", str(exc))
    return found[1] if found else ""


_ATTEMPT: Final = "exegraph: attempt "


def note(exc: BaseException, note: str) -> None:
    """Add `note` to `exc` once, last; an exception that cannot take notes keeps none.

    An exception raised again (a cached error, a circuit breaker) keeps one note per
    step, not one per run (SPEC, clarifications of part 1): a note it has already is
    moved to the end (the step's note stays last, as docs/guides/errors.md promises),
    and an attempt note replaces the one an earlier run left.
    """
    try:  # (all of it: looking `__notes__` up may raise anything, from a `__getattr__`)
        notes = getattr(exc, "__notes__", None)
        if isinstance(notes, list):
            if note.startswith(_ATTEMPT):
                notes[:] = [n for n in notes if not (isinstance(n, str) and n.startswith(_ATTEMPT))]
            elif note in notes:
                if notes[-1] != note:
                    notes.remove(note)
                    notes.append(note)
                return
        exc.add_note(note)
    except Exception:  # noqa: BLE001 - frozen, or __notes__ is not a list: leave it be
        return


def over_scope_error(exc: BaseException, error: BaseException | None) -> BaseException:
    """The step's error when its scope's exit raised `exc` after its action raised `error`.

    `exc` is Trio's complaint about a scope the action left open (an abandoned async
    generator's), with the action's error as its context, as Trio chains them; but an
    interrupt the action raised wins (it must reach the caller).
    """
    if error is not None and interrupt_in(error) is not None:
        return error
    if exc.__context__ is None:
        exc.__context__ = error
    return exc
