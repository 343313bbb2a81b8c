"""Command-line parsers generated from dataclasses: each flag's default and help live in ONE field.

A small equivalent of transformers' ``HfArgumentParser`` (which trl users know) that needs no
transformers, so ``segagent bench`` works on the base install. A field becomes a flag::

    @dataclass(kw_only=True)
    class Args:
        out: str = required("output folder")       # = field(metadata={"help": ...}): no default
        max_clicks: int = arg(5, "clicks per episode")
        progress: bool = arg(True, "no progress bar")

    args = parse_dataclass(Args, ["--out", "o", "--max-clicks", "3", "--no-progress"])

Conventions (as ``HfArgumentParser``): the flag is the field name with dashes (``--max-clicks``);
a ``bool`` that defaults to False is a switch ``--name``, one that defaults to True is switched
off by ``--no-name`` (its help text describes that flag), an ``Optional[bool]`` defaulting to
None takes ``--name`` (True) or ``--no-name`` (False); ``Optional[X]`` takes an ``X`` and
defaults to None; ``Literal[...]`` gives the choices. Beyond it: ``tuple[float, ...]`` parses
``0.6,0.2,0.2``, ``dict`` parses a JSON object, ``list[str]`` takes one or more values. Field
metadata: ``help``, and optionally ``flag`` (another flag name), ``choices``, ``type`` (a parser
for the text). The default is appended to the help once (``(default: 5)``); a None default is
not, so the help says what None means. A ``ValueError`` from the dataclass's ``__post_init__``
becomes a usage error naming the problem.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import types
import typing
from typing import Any, Optional, Sequence, TypeVar

T = TypeVar("T")

__all__ = ["add_dataclass_arguments", "arg", "build_or_exit", "from_namespace", "parse_dataclass", "required"]


def arg(default: Any, help: str, **metadata: Any) -> Any:
    """A dataclass field with a default and its help: ``max_clicks: int = arg(5, "clicks")``."""
    if isinstance(default, (dict, list)):
        value = default
        return dataclasses.field(default_factory=lambda: type(value)(value), metadata={"help": help, **metadata})
    return dataclasses.field(default=default, metadata={"help": help, **metadata})


def required(help: str, **metadata: Any) -> Any:
    """A dataclass field without a default: a required flag."""
    return dataclasses.field(metadata={"help": help, **metadata})


def _floats(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in text.split(","))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from exc


def _ints(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(","))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from exc


def _json_dict(text: str) -> dict:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"expected a JSON object, got {text!r}: {exc}") from exc
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object, got {text!r}")
    return value


def _strip_optional(tp: Any) -> Any:
    """``Optional[X]`` / ``X | None`` -> ``X``; anything else unchanged."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return tp


def _default_of(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return dataclasses.MISSING


def _show(value: Any) -> str:
    if isinstance(value, tuple):
        return ",".join(str(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value)
    if isinstance(value, list):
        return " ".join(str(v) for v in value)
    return str(value)


def add_dataclass_arguments(parser: argparse.ArgumentParser, cls: type) -> argparse.ArgumentParser:
    """Add one flag per field of the dataclass ``cls`` to ``parser`` (see the module docstring)."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        meta = dict(f.metadata)
        tp = _strip_optional(hints[f.name])
        default = _default_of(f)
        flag = meta.get("flag", "--" + f.name.replace("_", "-"))
        help_text = meta.get("help", "")
        kwargs: dict[str, Any] = {"dest": f.name}
        if tp is bool and default is None:  # Optional[bool]: on, off, or "not said" (None)
            kwargs.update(action=argparse.BooleanOptionalAction, default=None)
            parser.add_argument(flag, help=help_text or None, **kwargs)
            continue
        if tp is bool:
            if default is True:
                flag = meta.get("flag", "--no-" + f.name.replace("_", "-"))
                kwargs.update(action="store_false", default=True)
            else:
                kwargs.update(action="store_true", default=False)
            parser.add_argument(flag, help=help_text or None, **kwargs)
            continue
        origin, args = typing.get_origin(tp), typing.get_args(tp)
        if "type" in meta:
            kwargs["type"] = meta["type"]
        elif origin is typing.Literal:
            kwargs.update(type=type(args[0]), choices=list(args))
        elif origin is tuple:
            kwargs["type"] = _ints if args and args[0] is int else _floats
        elif tp is dict or origin is dict:
            kwargs["type"] = _json_dict
        elif origin is list:
            kwargs.update(type=args[0] if args else str, nargs="+")
        elif tp in (int, float, str):
            kwargs["type"] = tp
        else:
            raise TypeError(f"{cls.__name__}.{f.name}: no command-line parser for {tp!r}; give metadata['type']")
        if "choices" in meta:
            kwargs["choices"] = list(meta["choices"])
        if default is dataclasses.MISSING:
            kwargs["required"] = True
        else:
            kwargs["default"] = default
            if default is not None and default != {}:
                help_text = f"{help_text} (default: {_show(default)})".strip()
        parser.add_argument(flag, help=help_text or None, **kwargs)
    return parser


def from_namespace(cls: type[T], namespace: argparse.Namespace) -> T:
    """The dataclass built from the fields of ``namespace`` that ``cls`` declares (others ignored)."""
    values = vars(namespace)
    return cls(**{f.name: values[f.name] for f in dataclasses.fields(cls) if f.init and f.name in values})


def parse_dataclass(
    cls: type[T],
    argv: Optional[Sequence[str]] = None,
    prog: Optional[str] = None,
    description: Optional[str] = None,
) -> T:
    """Parse ``argv`` (default ``sys.argv[1:]``) into ``cls``; bad values exit with a usage error."""
    parser = argparse.ArgumentParser(prog=prog, description=description or _first_line(cls))
    add_dataclass_arguments(parser, cls)
    return build_or_exit(parser, cls, parser.parse_args(None if argv is None else list(argv)))


def build_or_exit(parser: argparse.ArgumentParser, cls: type[T], namespace: argparse.Namespace) -> T:
    """:func:`from_namespace`, turning a ``ValueError`` of the dataclass into ``parser.error``."""
    try:
        return from_namespace(cls, namespace)
    except ValueError as exc:
        parser.error(str(exc))
        raise  # pragma: no cover  (parser.error exits)


def _first_line(cls: type) -> Optional[str]:
    doc = (cls.__doc__ or "").strip()
    return doc.split("\n\n")[0].replace("\n", " ") if doc else None
