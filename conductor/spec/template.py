"""`{{ ... }}` placeholders in workflow text: what they name, and filling them in.

Three contexts exist, as in GitHub Actions expressions: ``matrix.<key>`` (known when a
matrix task is expanded, at load time), ``tasks.<id>.outputs.<key>`` and
``tasks.<id>.state`` (known only once that task has finished, at run time) and
``env.<NAME>``. Rendering fills in only the contexts it is given, so a prompt can be
rendered for its matrix values when the file is loaded and for upstream outputs when the
task starts. Any other ``{{ ... }}`` text (a prompt about Jinja, say) is left alone.

Task ids may hold dots, so ``tasks.`` references are read from the right: the last
``.outputs.<key>`` or ``.state`` ends the id.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Container, Iterator
from dataclasses import dataclass

ROOTS = ("matrix", "tasks", "env")
_PLACEHOLDER = re.compile(r"\{\{\s*((?:matrix|tasks|env)\.[^{}]*?)\s*\}\}")
_KEY = r"[A-Za-z_][A-Za-z0-9_-]*"
_MATRIX = re.compile(rf"matrix\.({_KEY})")
_ENV = re.compile(r"env\.([A-Za-z_][A-Za-z0-9_]*)")
_OUTPUT = re.compile(rf"tasks\.(\S+)\.outputs\.({_KEY})")
_STATE = re.compile(r"tasks\.(\S+)\.state")


class TemplateError(ValueError):
    """A placeholder that cannot be filled in: malformed, or naming a value that is not there."""


@dataclass(frozen=True)
class Ref:
    """A context reference: ``matrix.k``, ``env.N``, ``tasks.T.outputs.k``, ``tasks.T.state``."""

    root: str
    name: str  # matrix key, env var name, or task id
    key: str | None = None  # output key for tasks.<id>.outputs.<key>; None for .state

    @property
    def text(self) -> str:
        if self.root != "tasks":
            return f"{self.root}.{self.name}"
        tail = f"outputs.{self.key}" if self.key is not None else "state"
        return f"tasks.{self.name}.{tail}"


def parse_ref(text: str) -> Ref | None:
    """The reference ``text`` names, or None when it is not one of the known forms."""
    if m := _MATRIX.fullmatch(text):
        return Ref("matrix", m.group(1))
    if m := _ENV.fullmatch(text):
        return Ref("env", m.group(1))
    if m := _OUTPUT.fullmatch(text):
        return Ref("tasks", m.group(1), m.group(2))
    if m := _STATE.fullmatch(text):
        return Ref("tasks", m.group(1))
    return None


@dataclass(frozen=True)
class Placeholder:
    ref: Ref
    start: int  # offset of `{{` in the text, for line/column in errors
    end: int


def placeholders(text: str) -> Iterator[Placeholder]:
    """Every ``{{ matrix|tasks|env.… }}`` in ``text``; a malformed one raises TemplateError."""
    for m in _PLACEHOLDER.finditer(text):
        ref = parse_ref(m.group(1))
        if ref is None:
            raise TemplateError(
                f"`{m.group(0)}` is not a reference conductor knows: use matrix.<key>, "
                "tasks.<id>.outputs.<key>, tasks.<id>.state or env.<NAME>"
            )
        yield Placeholder(ref, m.start(), m.end())


def render(text: str, value: Callable[[Ref], str | None], roots: Container[str]) -> str:
    """``text`` with the placeholders of the given context ``roots`` filled in by ``value``.

    ``value`` returns None for a name it does not have, which is an error naming it;
    placeholders of other roots stay as written, for a later render to fill in.
    """
    if "{{" not in text:  # the common case costs one scan
        return text
    out, last = [], 0
    for ph in placeholders(text):
        if ph.ref.root not in roots:
            continue
        got = value(ph.ref)
        if got is None:
            raise TemplateError(f"`{{{{ {ph.ref.text} }}}}` has no value here")
        out += [text[last : ph.start], got]
        last = ph.end
    return "".join(out) + text[last:]
