"""A griffe extension that gives `attrs` classes the `__init__` signature attrs generates.

Griffe reads source statically. It recreates `__init__` for dataclasses, but an
`@attrs.frozen` class has no `__init__` in its source, so its documented signature would
be empty and the parameters listed in its docstring would be reported as unknown (a
warning that fails a strict build). This extension does for attrs what griffe's built-in
`dataclasses` extension does for dataclasses: for each class decorated with
`attrs.frozen`, `attrs.define`, `attrs.mutable` (or the `attr.s`-era spellings), it
builds an `__init__` from the annotated class attributes, in source order, honouring
`init=False`, `kw_only=True` (on the field or the decorator), `alias=` and the leading
underscore that attrs strips from private names, and taking defaults from `default=`,
`factory=` or a plain assigned value.

It is loaded by `mkdocs.yml` (`extensions:` of the mkdocstrings python handler) and is
documentation tooling only, not part of exegraph's API.
"""

from __future__ import annotations

from typing import Any

import griffe

__all__ = ["AttrsInitExtension"]

_DECORATORS = frozenset(
    {
        "attrs.frozen",
        "attrs.define",
        "attrs.mutable",
        "attr.s",
        "attr.attrs",
        "attr.define",
        "attr.frozen",
        "attr.mutable",
    }
)
_FIELD_CALLS = frozenset({"attrs.field", "attr.field", "attr.ib", "attr.attrib"})


def _keywords(call: griffe.ExprCall) -> dict[str, str | griffe.Expr]:
    """The keyword arguments of a call expression, by name."""
    return {
        argument.name: argument.value
        for argument in call.arguments
        if isinstance(argument, griffe.ExprKeyword)
    }


def _attrs_decorator(cls: griffe.Class) -> dict[str, str | griffe.Expr] | None:
    """The keyword arguments of the class's attrs decorator, or `None` if it has none."""
    for decorator in cls.decorators:
        value = decorator.value
        if isinstance(value, griffe.ExprCall) and value.function.canonical_path in _DECORATORS:
            return _keywords(value)
        if isinstance(value, griffe.Expr) and value.canonical_path in _DECORATORS:
            return {}
    return None


def _field_call(attribute: griffe.Attribute) -> griffe.ExprCall | None:
    value = attribute.value
    if isinstance(value, griffe.ExprCall) and value.function.canonical_path in _FIELD_CALLS:
        return value
    return None


def _parameter(attribute: griffe.Attribute, *, kw_only: bool) -> griffe.Parameter | None:
    """The `__init__` parameter of one attrs field, or `None` if it takes none."""
    call = _field_call(attribute)
    options = _keywords(call) if call is not None else {}
    if str(options.get("init", "True")) == "False":
        return None
    default: str | griffe.Expr | None
    if call is None:
        default = attribute.value
    elif "default" in options:
        default = options["default"]
    elif "factory" in options:
        default = f"{options['factory']}()"
    else:
        default = None
    alias = options.get("alias")
    name = str(alias).strip("'\"") if alias is not None else attribute.name.lstrip("_")
    keyword_only = kw_only or str(options.get("kw_only", "False")) == "True"
    return griffe.Parameter(
        name,
        annotation=attribute.annotation,
        kind=(
            griffe.ParameterKind.keyword_only
            if keyword_only
            else griffe.ParameterKind.positional_or_keyword
        ),
        default=default,
        docstring=attribute.docstring,
    )


def _add_init(cls: griffe.Class) -> None:
    decorator = _attrs_decorator(cls)
    if decorator is None or "__init__" in cls.members:
        return
    if str(decorator.get("init", "True")) == "False":
        return
    kw_only = str(decorator.get("kw_only", "False")) == "True"
    parameters = [griffe.Parameter("self", kind=griffe.ParameterKind.positional_or_keyword)]
    for member in cls.members.values():
        if (
            isinstance(member, griffe.Attribute)
            and member.annotation is not None
            and "instance-attribute" in member.labels
            and "property" not in member.labels
        ):
            parameter = _parameter(member, kw_only=kw_only)
            if parameter is not None:
                parameters.append(parameter)
    positional = [p for p in parameters if p.kind is not griffe.ParameterKind.keyword_only]
    keyword = [p for p in parameters if p.kind is griffe.ParameterKind.keyword_only]
    cls.set_member(
        "__init__",
        griffe.Function(
            "__init__",
            lineno=cls.lineno,
            endlineno=cls.lineno,
            parent=cls,
            parameters=griffe.Parameters(*positional, *keyword),
            returns="None",
        ),
    )


def _walk(obj: griffe.Module | griffe.Class) -> None:
    """Visit every class defined in `obj`, without recursion."""
    todo: list[griffe.Module | griffe.Class] = [obj]
    while todo:
        current = todo.pop()
        if isinstance(current, griffe.Class):
            _add_init(current)
        todo.extend(
            member
            for member in current.members.values()
            if not member.is_alias and isinstance(member, (griffe.Module, griffe.Class))
        )


class AttrsInitExtension(griffe.Extension):
    """Recreate the generated `__init__` of every attrs class of a loaded package."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        """Add `__init__` to the attrs classes of `pkg` once it is fully loaded.

        Args:
            pkg: the package griffe just loaded.
            **kwargs: the other hook arguments, unused.
        """
        _walk(pkg)
