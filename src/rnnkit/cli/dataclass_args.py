"""Command-line flags generated from config dataclasses, so that flags, defaults and help text
have one source: the dataclass fields and the docstring under each one.

``field_name`` becomes ``--field-name``; a bool becomes ``--flag/--no-flag``; ``X | None``
accepts ``none``; a ``Literal`` becomes a choice; ``{cells}`` in a docstring lists the
registered cells. Errors raised by a dataclass's
``__post_init__`` (which name the flag and the bad value) are reported by the parser.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import itertools
import textwrap
import types
import typing
from typing import Any, Literal, Union, get_args, get_origin


def field_docs(cls: type) -> dict[str, str]:
    """The docstring written under each field of a dataclass (read from its source)."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError):
            continue
        body = tree.body[0].body  # type: ignore[attr-defined]
        for node, nxt in itertools.pairwise(body):
            if (
                isinstance(node, ast.AnnAssign)
                and isinstance(node.target, ast.Name)
                and isinstance(nxt, ast.Expr)
                and isinstance(nxt.value, ast.Constant)
                and isinstance(nxt.value.value, str)
            ):
                docs[node.target.id] = " ".join(nxt.value.value.split())
    return docs


def _unwrap_optional(tp: Any) -> tuple[Any, bool]:
    if get_origin(tp) in (Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(get_args(tp)) == 2:
            return args[0], True
    return tp, False


def _converter(tp: Any, optional: bool):
    def convert(text: str):
        if optional and text.lower() in ("none", "null"):
            return None
        return tp(text)

    convert.__name__ = getattr(tp, "__name__", "value")
    return convert


def add_dataclass_flags(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    cls: type,
    *,
    skip: tuple[str, ...] = (),
    positional: tuple[str, ...] = (),
) -> None:
    """Add one flag per field of ``cls``. Fields in ``positional`` (or with
    ``metadata={"positional": True}``) become positionals, a ``list[str]`` one taking any number
    of values; a field that is itself a dataclass adds its own fields' flags."""
    hints = typing.get_type_hints(cls)
    docs = field_docs(cls)
    # a config's own fields first (--cell, --hidden-size...), then those it inherits (shared
    # options such as LayerOptions), which dataclasses would put first
    own = inspect.get_annotations(cls)
    ordered = sorted(dataclasses.fields(cls), key=lambda f: f.name not in own)
    for f in ordered:
        if f.name in skip or not f.init:
            continue
        tp, optional = _unwrap_optional(hints[f.name])
        if dataclasses.is_dataclass(tp):
            add_dataclass_flags(parser, tp, skip=skip)
            continue
        if get_origin(tp) is list:
            parser.add_argument(
                f.name, nargs="*", default=[], help=docs.get(f.name, "").replace("%", "%%")
            )
            continue
        has_default = f.default is not dataclasses.MISSING
        default = f.default if has_default else None
        help_text = docs.get(f.name, "")
        if "{cells}" in help_text:  # the cell list comes from the registry, never by hand
            from rnnkit.cells.registry import cells_help

            help_text = help_text.replace("{cells}", cells_help())
        if has_default and default not in (None, ""):
            help_text += f" (default: {default})"
        # argparse %-formats help text (for %(default)s); a literal % in a docstring or a
        # default, such as a date format "%Y-%m-%d", would make -h crash
        help_text = help_text.replace("%", "%%")
        # a flag not given stays out of the namespace, so that a given one can be told from a
        # default (``--resume`` refuses given flags that would change the run)
        kwargs: dict[str, Any] = {"help": help_text, "dest": f.name, "default": argparse.SUPPRESS}
        if tp is bool:
            kwargs.update(action=argparse.BooleanOptionalAction)
        elif get_origin(tp) is Literal:
            choices = list(get_args(tp))
            kwargs.update(choices=choices, type=type(choices[0]))
        else:
            kwargs.update(type=_converter(tp, optional), metavar=f.name.upper())
        if f.name in positional or f.metadata.get("positional"):
            kwargs.pop("dest")
            kwargs["default"] = default
            parser.add_argument(f.name, **kwargs)
            continue
        if not has_default:
            kwargs["required"] = True
        parser.add_argument("--" + f.name.replace("_", "-"), **kwargs)


def given_values(cls: type, args: argparse.Namespace) -> dict[str, Any]:
    """The fields of ``cls`` given on the command line (flags left out are not in ``args``)."""
    return {f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if hasattr(args, f.name)}


def build_dataclass(cls: type, args: argparse.Namespace, parser: argparse.ArgumentParser, **extra):
    """Instantiate ``cls`` from parsed flags (defaults for those not given, nested dataclasses
    built from their own flags); a validation error becomes a parser error."""
    hints = typing.get_type_hints(cls)
    values = given_values(cls, args)
    for f in dataclasses.fields(cls):
        tp, _ = _unwrap_optional(hints[f.name])
        if f.init and dataclasses.is_dataclass(tp):
            values[f.name] = build_dataclass(tp, args, parser)
    values.update(extra)
    try:
        return cls(**values)
    except (ValueError, TypeError) as e:
        parser.error(str(e))
