"""Typed JSON: a parsed JSON document read into dataclasses, every field checked on the way in.

The dataclasses' annotations are the schema, so the structure a file must have is written once,
where the code that uses it can see it. :func:`from_json` walks the annotations (dataclasses,
``dict[str, X]``, ``list[X]``, ``X | None``, ``str``, ``int``, ``float``, ``bool``, ``Any``) and raises
:class:`SchemaError` naming the path of the first field that is missing, unknown or of the wrong
type, e.g. ``models.KRAS.models.fusion.threshold: expected a number, got 'high'``. A dataclass's
``__post_init__`` may add checks of its own (raise ``ValueError``); they are reported at that
dataclass's path. Numbers must be finite: the writers use ``allow_nan=False``.

It is a few dozen lines rather than a dependency because the engine also runs inside 3D Slicer's
Python, where every added package has to be installed into the user's application.
"""
from __future__ import annotations

import dataclasses
import math
import types
import typing
from typing import Any


class SchemaError(ValueError):
    """A JSON document that does not have the structure its dataclass describes."""


def from_json(cls, value, where: str = ""):
    """``value`` (parsed JSON) as an instance of ``cls``, checked field by field.

    :param cls: a dataclass or one of the supported annotations.
    :param value: the parsed JSON (dicts, lists, str, int, float, bool, None).
    :param where: the path of ``value`` inside its document, for the error message.
    :returns: the typed value.
    :raises SchemaError: at the first field that does not fit.
    """
    return _parse(cls, value, where)


def to_json(obj) -> Any:
    """A dataclass instance (or a structure of them) as plain JSON types."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_json(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {str(k): to_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_json(v) for v in obj]
    return obj


def _describe(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _fail(where: str, problem: str):
    raise SchemaError(f"{where or 'document'}: {problem}")


def _parse(tp, value, where: str):
    if tp is Any:
        return value
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(tp)
        if value is None and type(None) in options:
            return None
        rest = [o for o in options if o is not type(None)]
        if len(rest) != 1:
            raise TypeError(f"unsupported annotation {tp}")
        return _parse(rest[0], value, where)
    if dataclasses.is_dataclass(tp):
        return _parse_dataclass(tp, value, where)
    if origin is dict:
        key_type, value_type = typing.get_args(tp)
        if not isinstance(value, dict):
            _fail(where, f"expected an object, got {_describe(value)}")
        return {k: _parse(value_type, v, f"{where}.{k}" if where else str(k)) for k, v in value.items()}
    if origin is list:
        (item_type,) = typing.get_args(tp)
        if not isinstance(value, list):
            _fail(where, f"expected a list, got {_describe(value)}")
        return [_parse(item_type, v, f"{where}[{i}]") for i, v in enumerate(value)]
    if tp is bool:
        if not isinstance(value, bool):
            _fail(where, f"expected true or false, got {_describe(value)}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            _fail(where, f"expected an integer, got {_describe(value)}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            _fail(where, f"expected a number, got {_describe(value)}")
        if not math.isfinite(value):
            _fail(where, f"expected a finite number, got {value}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            _fail(where, f"expected a string, got {_describe(value)}")
        return value
    raise TypeError(f"unsupported annotation {tp}")


def _parse_dataclass(cls, value, where: str):
    if not isinstance(value, dict):
        _fail(where, f"expected an object, got {_describe(value)}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(value) - set(fields))
    if unknown:
        _fail(where, f"unknown field {unknown[0]!r}")
    kwargs = {}
    for name, f in fields.items():
        path = f"{where}.{name}" if where else name
        if name not in value:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                _fail(path, "missing")
            continue
        kwargs[name] = _parse(hints[name], value[name], path)
    try:
        return cls(**kwargs)
    except ValueError as err:
        _fail(where, str(err))
