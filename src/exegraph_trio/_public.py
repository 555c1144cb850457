"""How a package presents its public names: shared by `exegraph_trio` and `exegraph_otel`."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from typing import Any


def rewrite_module_names(package: str, namespace: dict[str, Any], names: Iterable[str]) -> None:
    """Make each public name defined in a private module of `package` say `package.X`.

    Reprs, tracebacks and the API reference then show the one public location, as trio
    does for its names. An object whose `__module__` cannot be set (a type alias) keeps
    its own.
    """
    for name in names:
        obj = namespace[name]
        if getattr(obj, "__module__", "").startswith(f"{package}._"):
            with contextlib.suppress(AttributeError, TypeError):
                obj.__module__ = package
