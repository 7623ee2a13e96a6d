"""Schema violations of a workflow file, explained in the words of the file's author.

jsonschema runs only when the quick predicate of ``schema`` rejects the data. Each of its
errors becomes a Diagnostic located in the YAML source: the missing or doubled tag of a
tagged union, a did-you-mean for an unknown key, a hint to quote a YAML boolean or number
where a string belongs. Everything is reported together, up to ``MAX_PROBLEMS``.
"""

from __future__ import annotations

import functools
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from itertools import islice
from typing import TYPE_CHECKING, Any

from conductor.errors import Diagnostic
from conductor.spec.durations import parse_duration
from conductor.spec.schema import _quick_check, load_schema
from conductor.spec.suggest import did_you_mean
from conductor.spec.yamlsrc import JsonPath, Source, dotted

if TYPE_CHECKING:
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import ValidationError

MAX_PROBLEMS = 50


@functools.lru_cache(maxsize=1)
def _validator() -> Draft202012Validator:
    from jsonschema import Draft202012Validator  # lazy: costs ~0.1 s to import

    return Draft202012Validator(load_schema())


def schema_problems(source: Source, limit: int = MAX_PROBLEMS) -> list[Diagnostic]:
    """Every schema violation in ``source`` (up to ``limit``), sorted by position."""
    quick = _quick_check()
    if quick is not None and quick(source.data):
        return []
    found: dict[Diagnostic, None] = {}  # ordered set: one error can be reported twice
    for error in islice(_validator().iter_errors(source.data), limit):
        for diag in _explain(error, source):
            found[diag] = None
    return sorted(found, key=lambda d: (d.line or 0, d.col or 0))[:limit]


# -- explaining errors -------------------------------------------------------------------


def _explain(error: ValidationError, source: Source) -> Iterator[Diagnostic]:
    path: JsonPath = tuple(error.absolute_path)
    where = dotted(path)
    prefix = f"{where}: " if where else ""
    kind = str(error.validator)
    if "propertyNames" in error.relative_schema_path:
        yield _bad_name(path, str(error.instance), source)
    elif error.schema == load_schema()["$defs"]["duration"]:
        yield source.diag(path, prefix + _duration_message(error.instance))
    elif kind == "additionalProperties":
        yield from _unknown_keys(error, path, prefix, source)
    elif kind == "oneOf":
        yield from _one_of(error, path, prefix, source)
    elif kind == "anyOf" and error.context:
        from jsonschema.exceptions import best_match

        yield from _explain(best_match(error.context), source)
    elif kind == "required":
        for key in _missing(error):
            yield source.diag(path, f"{prefix}missing required key `{key}`")
    elif kind == "dependentRequired":
        for key, needs in _dependent(error):
            yield source.key_diag((*path, key), f"{prefix}`{key}` needs {needs}")
    else:
        yield source.diag(path, prefix + _simple_message(error), _hint(error))


def _value(error: ValidationError) -> Any:
    """The failing keyword's value (typed loosely: it is whatever the schema says)."""
    return error.validator_value


def _schema_of(error: ValidationError) -> dict[str, Any]:
    return error.schema if isinstance(error.schema, dict) else {}


def _simple_message(error: ValidationError) -> str:
    kind, value = str(error.validator), _value(error)
    got: Any = error.instance
    if kind == "type":
        return f"expected {_type_names(value)}, got {_describe(got)}"
    if kind == "enum":
        return f"{got!r} is not one of {', '.join(str(v) for v in value)}"
    if kind == "const":
        return f"must be {value!r}, got {got!r}"
    if kind in ("minLength", "minItems", "minProperties") and value == 1:
        return "must not be empty"
    if kind == "minimum":
        return f"must be at least {value}, got {got!r}"
    if kind == "exclusiveMinimum":
        return f"must be greater than {value}, got {got!r}"
    if kind == "uniqueItems":
        counts = Counter(x for x in got if isinstance(x, str))
        dups = [x for x, n in counts.items() if n > 1]
        return "lists " + ", ".join(f"`{d}`" for d in dups) + " more than once"
    if kind == "pattern":
        return f"invalid value {got!r}"
    return str(error.message)


def _hint(error: ValidationError) -> str | None:
    kind, got = str(error.validator), error.instance
    if kind == "enum" and isinstance(got, str):
        return did_you_mean(got, [str(v) for v in _value(error)])
    if kind == "pattern":
        return str(_schema_of(error).get("description") or "") or None
    if kind != "type":
        return None
    wanted = _value(error)
    if "array" in wanted and isinstance(got, str):
        return f"write a list: [{got}]"
    if "string" in wanted and isinstance(got, bool):
        return "YAML reads yes/no/on/off/true/false as booleans; quote the value"
    if "string" in wanted and isinstance(got, (int, float)):
        return f'quote it: "{got}"'
    if wanted == "boolean":  # e.g. `approve: "yes"`
        return "write true or false, without quotes"
    return None


_TYPE_NAMES = {
    "object": "a mapping",
    "array": "a list",
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "null": "nothing",
}


def _type_names(value: Any) -> str:
    names = [value] if isinstance(value, str) else list(value)
    return " or ".join(_TYPE_NAMES.get(n, n) for n in names)


def _describe(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    kind = {int: "an integer", float: "a number", str: "a string"}.get(type(value), "a value")
    shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
    return f"{kind} ({shown})"


def _duration_message(value: Any) -> str:
    try:
        parse_duration(value)
    except ValueError as exc:
        return str(exc)
    return f"{value!r} is not a valid duration"


_ID_KINDS = {"tasks": "task id", "groups": "group id", "agents": "agent name", "env": "name"}


def _bad_name(path: JsonPath, name: str, source: Source) -> Diagnostic:
    kind = _ID_KINDS.get(str(path[-1]) if path else "", "key")
    if path[:1] == ("tasks",) and path[2:3] == ("matrix",):  # its keys, or those of an entry
        kind = "matrix key"
        rule = "letters, digits, `_` and `-`, starting with a letter or `_` ({{ matrix.<key> }})"
    elif kind == "name":
        rule = "environment variable names are letters, digits and _, not starting with a digit"
    else:
        rule = "use letters, digits, `.`, `_` and `-`, starting with a letter or digit"
    return source.key_diag((*path, name), f"{dotted(path)}: invalid {kind} `{name}`", rule)


def _unknown_keys(
    error: ValidationError, path: JsonPath, prefix: str, source: Source
) -> Iterator[Diagnostic]:
    known = list(_schema_of(error).get("properties", {}))
    patterns = list(_schema_of(error).get("patternProperties", {}))
    instance = error.instance if isinstance(error.instance, dict) else {}
    for key in instance:
        if key in known or any(re.search(p, key) for p in patterns):
            continue
        hint = did_you_mean(key, known) or "valid keys: " + ", ".join(known)
        yield source.key_diag((*path, key), f"{prefix}unknown key `{key}`", hint)


def _one_of(
    error: ValidationError, path: JsonPath, prefix: str, source: Source
) -> Iterator[Diagnostic]:
    """oneOf over ``required`` branches is a tagged union: name the missing/extra tag."""
    branches = _value(error)
    tags = [b["required"][0] for b in branches if list(b) == ["required"]]
    if len(tags) != len(branches) or not isinstance(error.instance, dict):
        from jsonschema.exceptions import best_match

        if error.context:
            yield from _explain(best_match(error.context), source)
        else:
            yield source.diag(path, prefix + str(error.message))
        return
    present = [t for t in tags if t in error.instance]
    choices = ", ".join(f"`{t}`" for t in tags)
    known = _schema_of(error).get("properties", {})
    if not present and any(key not in known for key in error.instance):
        return  # a misspelt tag: the unknown-key error (with its did-you-mean) says it all
    if not present:
        yield source.diag(path, f"{prefix}needs exactly one of {choices}")
    else:
        together = " and ".join(f"`{t}`" for t in present)
        yield source.key_diag(
            (*path, present[1]), f"{prefix}{together} cannot be used together", None
        )


def _missing(error: ValidationError) -> list[str]:
    instance = error.instance if isinstance(error.instance, dict) else {}
    return [k for k in _value(error) if k not in instance]


def _dependent(error: ValidationError) -> Iterable[tuple[str, str]]:
    instance = error.instance if isinstance(error.instance, dict) else {}
    for key, needs in _value(error).items():
        if key in instance and any(n not in instance for n in needs):
            yield key, " and ".join(f"`{n}`" for n in needs)

