"""How a package presents its public names: shared by `exegraph_trio` and `exegraph_otel`."""

from __future__ import annotations

import contextlib
import inspect
import sys
from collections.abc import Iterable
from typing import Any


def rewrite_module_names(package: str, namespace: dict[str, Any], names: Iterable[str]) -> None:
    """Make each public name defined in a private module of `package` say `package.X`.

    Reprs, tracebacks and the API reference then show the one public location, as trio
    does for its names. An object whose `__module__` cannot be set (a type alias) keeps
    its own.

    A class's own annotations are evaluated first (`_resolve_annotations`): with the new
    `__module__`, `typing.get_type_hints` would look their names up in the package, where
    `Mapping` or `Callable` are not (trio's public classes fail so; ours do not).
    """
    for name in names:
        obj = namespace[name]
        if getattr(obj, "__module__", "").startswith(f"{package}._"):
            if isinstance(obj, type):
                _resolve_annotations(obj, namespace)
            with contextlib.suppress(AttributeError, TypeError):
                obj.__module__ = package


def _resolve_annotations(cls: type, namespace: dict[str, Any]) -> None:
    """Replace the strings of `cls`'s own annotations by what they name.

    They are evaluated in the class's own module, where names imported only for type
    checkers (`if TYPE_CHECKING:`, to avoid an import cycle) are found among the package's
    public names (`namespace`). Annotations that still cannot be evaluated stay strings.
    """
    if not inspect.get_annotations(cls):
        return
    names = {**namespace, **vars(sys.modules[cls.__module__])}
    with contextlib.suppress(Exception):
        cls.__annotations__ = inspect.get_annotations(cls, globals=names, eval_str=True)
