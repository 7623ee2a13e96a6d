"""The workflow JSON schema (schemas/workflow.schema.json) and a fast predicate compiled from it.

jsonschema is authoritative but slow (hundreds of ms for 1,000 tasks), so a small
predicate compiled from the same schema file answers "valid?" first; jsonschema only
runs (in ``violations``) when that predicate says no, to produce the located, human
messages.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

Check = Callable[[Any], bool]


def schema_path() -> Path:
    """The schema next to the installed package (wheel), else the source checkout's."""
    here = Path(__file__).resolve().parent.parent  # the conductor package
    packaged = here / "schemas" / "workflow.schema.json"
    return packaged if packaged.is_file() else here.parent / "schemas" / "workflow.schema.json"


@functools.lru_cache(maxsize=1)
def load_schema() -> dict[str, Any]:
    """The workflow JSON schema as a dict (read once per process)."""
    data: dict[str, Any] = json.loads(schema_path().read_text(encoding="utf-8"))
    return data


# -- the quick predicate -----------------------------------------------------------------
# It may reject what jsonschema accepts (then jsonschema decides, finding nothing), but it
# must never accept what jsonschema rejects; unknown keywords disable it altogether.

_IGNORED = {"description", "title", "$schema", "$id", "$defs", "$comment"}


class _Unsupported(Exception):
    pass


@functools.lru_cache(maxsize=1)
def _quick_check() -> Check | None:
    schema = load_schema()
    compiled: dict[str, Check] = {}
    try:
        return _compile(schema, schema.get("$defs", {}), compiled)
    except _Unsupported:
        return None


def _compile(schema: Any, defs: dict[str, Any], compiled: dict[str, Check]) -> Check:
    if not isinstance(schema, dict):
        if schema is True:
            return lambda _x: True
        raise _Unsupported(repr(schema))
    checks: list[Check] = []
    for keyword, value in schema.items():
        if keyword in _IGNORED or keyword in ("properties", "patternProperties"):
            continue
        make = _KEYWORDS.get(keyword)
        if make is None:
            raise _Unsupported(keyword)
        checks.append(make(value, schema, defs, compiled))
    if "additionalProperties" not in schema and not {"properties", "patternProperties"}.isdisjoint(
        schema
    ):
        checks.append(_object_props(True, schema, defs, compiled))
    return _all(checks) if checks else (lambda _x: True)


def _all(checks: list[Check]) -> Check:
    if len(checks) == 1:
        return checks[0]

    def check(x: Any) -> bool:
        for c in checks:  # noqa: SIM110 (a loop beats all() over a generator here, 2x)
            if not c(x):
                return False
        return True

    return check


Maker = Callable[[Any, dict[str, Any], dict[str, Any], dict[str, Check]], Check]
_PY_TYPES: dict[str, Check] = {
    "object": lambda x: isinstance(x, dict),
    "array": lambda x: isinstance(x, list),
    "string": lambda x: isinstance(x, str),
    "integer": lambda x: type(x) is int,
    "number": lambda x: type(x) in (int, float),
    "boolean": lambda x: type(x) is bool,
    "null": lambda x: x is None,
}


def _is_num(x: Any) -> bool:
    return type(x) in (int, float)


def _type(value: Any, *_: Any) -> Check:
    preds = [_PY_TYPES[t] for t in ([value] if isinstance(value, str) else value)]
    if len(preds) == 1:
        return preds[0]
    return lambda x: any(p(x) for p in preds)


def _enum(value: Any, *_: Any) -> Check:
    options = [(type(v), v) for v in value]  # type-exact: 1 never equals true here
    return lambda x: (type(x), x) in options


def _ref(value: Any, _s: dict[str, Any], defs: dict[str, Any], done: dict[str, Check]) -> Check:
    if not value.startswith("#/$defs/"):
        raise _Unsupported(value)
    name = value.removeprefix("#/$defs/")

    def check(x: Any) -> bool:  # resolved on first use, so recursive defs terminate
        target = done.get(name)
        if target is None:
            target = done[name] = _compile(defs[name], defs, done)
        return target(x)

    return check


def _object_props(
    extra: Any, schema: dict[str, Any], defs: dict[str, Any], done: dict[str, Check]
) -> Check:
    props = {k: _compile(v, defs, done) for k, v in schema.get("properties", {}).items()}
    patterns = [(re.compile(p), _compile(v, defs, done)) for p, v in
                schema.get("patternProperties", {}).items()]  # fmt: skip
    other = None if extra is False else _compile(extra, defs, done)

    def check(x: Any) -> bool:
        if not isinstance(x, dict):
            return True
        for key, item in x.items():
            sub = props.get(key)
            if sub is not None:
                if not sub(item):
                    return False
                continue
            matched = [c for r, c in patterns if r.search(key)]
            if matched:
                if not all(c(item) for c in matched):
                    return False
            elif other is None or not other(item):
                return False
        return True

    return check


def _each_key(value: Any, _s: Any, defs: dict[str, Any], done: dict[str, Check]) -> Check:
    sub = _compile(value, defs, done)
    return lambda x: not isinstance(x, dict) or all(sub(k) for k in x)


def _items(value: Any, _s: Any, defs: dict[str, Any], done: dict[str, Check]) -> Check:
    sub = _compile(value, defs, done)

    def check(x: Any) -> bool:
        if isinstance(x, list):
            for item in x:  # a loop, not all(): hot path, see _all
                if not sub(item):
                    return False
        return True

    return check


def _one_of_check(value: Any, _s: Any, defs: dict[str, Any], done: dict[str, Check]) -> Check:
    subs = [_compile(v, defs, done) for v in value]
    return lambda x: sum(1 for s in subs if s(x)) == 1


def _unique(value: Any, *_: Any) -> Check:
    def check(x: Any) -> bool:
        if not value or not isinstance(x, list):
            return True
        try:  # unhashable or 1/true collisions: reject, jsonschema will judge
            return len(set(x)) == len(x)
        except TypeError:
            return False

    return check


def _dependent_required(value: Any, *_: Any) -> Check:
    return lambda x: (
        not isinstance(x, dict)
        or all(all(n in x for n in needs) for key, needs in value.items() if key in x)
    )


def _pattern(value: Any, *_: Any) -> Check:
    regex = re.compile(value)
    return lambda x: not isinstance(x, str) or regex.search(x) is not None


_KEYWORDS: dict[str, Maker] = {
    "type": _type,
    "enum": _enum,
    "const": lambda v, *_: _enum([v]),
    "$ref": _ref,
    "additionalProperties": _object_props,
    "propertyNames": _each_key,
    "items": _items,
    "oneOf": _one_of_check,
    "uniqueItems": _unique,
    "dependentRequired": _dependent_required,
    "pattern": _pattern,
    "required": lambda v, *_: lambda x: not isinstance(x, dict) or all(k in x for k in v),
    "minProperties": lambda v, *_: lambda x: not isinstance(x, dict) or len(x) >= v,
    "minItems": lambda v, *_: lambda x: not isinstance(x, list) or len(x) >= v,
    "minLength": lambda v, *_: lambda x: not isinstance(x, str) or len(x) >= v,
    "minimum": lambda v, *_: lambda x: not _is_num(x) or x >= v,
    "exclusiveMinimum": lambda v, *_: lambda x: not _is_num(x) or x > v,
}
