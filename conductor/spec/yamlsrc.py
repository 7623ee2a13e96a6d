"""Line-aware YAML loading: plain Python data plus where every value and key came from.

PyYAML's own loaders lose locations, silently keep the last of duplicate keys and expand
aliases without limit, so we compose the node graph and convert it ourselves.
"""

from __future__ import annotations

import gc
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from conductor.errors import Diagnostic, SpecError, UserError

try:  # libyaml is several times faster; the pure-Python loader is the fallback
    from yaml import CSafeLoader as _CLoader
except ImportError:  # pragma: no cover - depends on how PyYAML was built
    from yaml import SafeLoader as _CLoader  # type: ignore[assignment]

JsonPath = tuple[str | int, ...]
Position = tuple[int, int]  # 1-based line and column

MAX_BYTES = 5 * 1024 * 1024
# Nodes produced by re-expanding aliases; a "billion laughs" file hits this in milliseconds.
MAX_ALIAS_NODES = 200_000
MAX_DEPTH = 64
# libyaml composes recursively in C and crashes the interpreter on very deep flow nesting,
# so files with that many openers go through the pure-Python loader, which fails cleanly.
_DEEP_FLOW = 500

_PLAIN_KEY = re.compile(r"^[A-Za-z0-9_-]+$")  # keys that read unambiguously after a dot
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_T = "tag:yaml.org,2002:"
_STR, _MAP, _SEQ, _MERGE = _T + "str", _T + "map", _T + "seq", _T + "merge"


def dotted(path: JsonPath) -> str:
    """``("tasks", "T1", "depends_on", 0)`` → ``tasks.T1.depends_on[0]`` (for messages)."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _PLAIN_KEY.match(part):
            out += f".{part}" if out else part
        else:
            out += f"[{part!r}]"
    return out


@dataclass(frozen=True)
class Source:
    """A parsed workflow file: ``data`` plus positions keyed by JSON path."""

    path: str  # as the user wrote it, for messages
    data: dict[str, Any]
    locs: dict[JsonPath, Position]  # path -> position of the value node
    key_locs: dict[JsonPath, Position]  # path -> position of the mapping key
    # problems that do not stop the later passes (a duplicate key: the first value is
    # kept), so that `validate` reports them together with everything else
    problems: tuple[Diagnostic, ...] = ()

    def where(self, path: JsonPath) -> Position:
        """Position of the value at ``path``, or of its nearest located ancestor."""
        for end in range(len(path), -1, -1):
            found = self.locs.get(path[:end])
            if found is not None:
                return found
        return (1, 1)

    def key_where(self, path: JsonPath) -> Position:
        """Position of the key naming ``path`` (the value's position for list items)."""
        return self.key_locs.get(path) or self.where(path)

    def diag(self, path: JsonPath, message: str, hint: str | None = None) -> Diagnostic:
        """A diagnostic located at the value at ``path``."""
        line, col = self.where(path)
        return Diagnostic(message, self.path, line, col, hint)

    def key_diag(self, path: JsonPath, message: str, hint: str | None = None) -> Diagnostic:
        """A diagnostic located at the key naming ``path``."""
        line, col = self.key_where(path)
        return Diagnostic(message, self.path, line, col, hint)


class _FastLoader(_CLoader):
    """CSafeLoader with a quicker implicit-tag resolver (same results).

    The stock resolver runs in Python for every scalar and dominated composing; most
    scalars start with a character no implicit tag can start with, and the rest repeat.
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        resolvers = self.yaml_implicit_resolvers
        # Read at load time, not import time: other code may register resolvers.
        exact = None not in resolvers and not self.yaml_path_resolvers
        self._firsts = frozenset(k for k in resolvers if k) if exact else None
        self._memo: dict[Any, Any] = {}

    def resolve(self, kind: Any, value: Any, implicit: Any) -> Any:
        firsts = self._firsts
        if firsts is None:
            return super().resolve(kind, value, implicit)  # type: ignore[no-untyped-call]
        if kind is not ScalarNode:
            return _MAP if kind is MappingNode else _SEQ
        if not implicit[0] or (value and value[0] not in firsts):
            return _STR  # quoted, or no implicit tag starts with this character
        tag = self._memo.get(value)
        if tag is None:
            tag = self._memo[value] = super().resolve(kind, value, implicit)  # type: ignore[no-untyped-call]
        return tag


class _AliasBomb(Exception):
    pass


def load_source(path: Path, display: str | None = None) -> Source:
    """Read and parse ``path``; ``display`` is how messages name it (default: ``path``)."""
    shown = display if display is not None else str(path)
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_BYTES + 1)
    except FileNotFoundError:
        raise UserError(f"no such file: {shown}") from None
    except IsADirectoryError:
        raise UserError(f"{shown} is a directory, not a workflow file") from None
    except OSError as exc:
        raise UserError(f"cannot read {shown}: {exc.strerror}") from None
    if len(raw) > MAX_BYTES:
        _fail(shown, "file is larger than 5 MiB; a workflow file should be far smaller")
    return parse_source(_decode(raw, shown), shown)


def _fail(path: str, message: str, line: int | None = None, col: int | None = None,
          hint: str | None = None) -> None:  # fmt: skip
    raise SpecError([Diagnostic(message, path, line, col, hint)])


def _decode(raw: bytes, path: str) -> str:
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        col = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        byte = raw[exc.start]
        _fail(path, f"file is not valid UTF-8 (byte 0x{byte:02x} at offset {exc.start})",
              line, col, "save the file as UTF-8")  # fmt: skip
        raise  # unreachable: _fail raises


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic GC while building large, all-surviving object graphs.

    Every object made while loading survives, so each collection would rescan them all
    for nothing; big files load 2-4x faster without it.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def parse_source(text: str, path: str) -> Source:
    """Parse YAML ``text``; every problem is raised as a located SpecError."""
    with gc_paused():
        return _parse(text, path)


def _parse(text: str, path: str) -> Source:
    root = _compose(text, path)
    if root is None:
        _fail(path, "workflow file is empty", hint="start with `version: 1`, `name:` and `tasks:`")
    assert root is not None
    if not isinstance(root, MappingNode):
        kind = "a list" if isinstance(root, SequenceNode) else "a single value"
        line, col = _pos(root)
        _fail(path, f"the top level must be a mapping (keys such as `version`, `name`, "
              f"`tasks`), not {kind}", line, col)  # fmt: skip
    conv = _Converter(path)
    try:
        data = conv.convert(root, (), 0, False)
    except _AliasBomb:
        _fail(path, f"YAML aliases expand to too many nodes (over {MAX_ALIAS_NODES:,})",
              1, 1, "do not nest anchors that repeat other anchors")  # fmt: skip
    if conv.problems:
        raise SpecError(sorted(conv.problems + conv.duplicates, key=_at))
    return Source(path, data, conv.locs, conv.key_locs, tuple(conv.duplicates))


def _at(d: Diagnostic) -> Position:
    return (d.line or 0, d.col or 0)


def _compose(text: str, path: str) -> Node | None:
    loader: type[Any] = _FastLoader
    if text.count("[") + text.count("{") >= _DEEP_FLOW and _flow_depth(text) >= _DEEP_FLOW:
        loader = yaml.SafeLoader
    try:
        node: Node | None = yaml.compose(text, Loader=loader)
        return node
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark is not None else (None, None)
        problem = exc.problem or "invalid YAML"
        if problem.startswith("but ") and exc.context:  # "expected X" + "but found Y"
            problem = f"{exc.context}, {problem}"
            exc.context = None
        _fail(path, f"YAML syntax error: {problem}", line, col, _syntax_hint(exc, text))
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        _fail(path, f"file contains a character YAML does not allow ({exc.character!r})", line)
    except RecursionError:
        _fail(path, "YAML nesting is too deep", 1, 1)
    return None


def _syntax_hint(exc: yaml.MarkedYAMLError, text: str) -> str | None:
    mark = exc.problem_mark
    if mark is not None and text[mark.index : mark.index + 1] == "\t":
        return "YAML does not allow tabs for indentation; use spaces"
    if exc.context and exc.context_mark is not None:
        return f"{exc.context} at line {exc.context_mark.line + 1}"
    return exc.context


def _flow_depth(text: str) -> int:
    """Deepest `[`/`{` nesting, ignoring quoting: an over-estimate, which is the safe side."""
    depth = deepest = 0
    for char in _NOT_BRACKET.sub("", text):
        if char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth = max(depth - 1, 0)
    return deepest


def _pos(node: Node) -> Position:
    mark = node.start_mark
    return (mark.line + 1, mark.column + 1)


class _Converter:
    """Turns a node graph into dicts/lists/scalars, recording positions as it goes."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.locs: dict[JsonPath, Position] = {}
        self.key_locs: dict[JsonPath, Position] = {}
        self.problems: list[Diagnostic] = []
        self.duplicates: list[Diagnostic] = []  # reported with the other passes' problems
        self.seen: set[int] = set()  # collections converted once: a revisit is an alias
        self.active: set[int] = set()  # collections on the current stack: recursion
        self.alias_nodes = 0
        self.ctor = yaml.constructor.SafeConstructor()
        self.scalars = {
            _T + "int": self.ctor.construct_yaml_int,
            _T + "float": self.ctor.construct_yaml_float,
            _T + "bool": self.ctor.construct_yaml_bool,
            _T + "null": self.ctor.construct_yaml_null,
        }

    def problem(self, node: Node, message: str, hint: str | None = None) -> None:
        line, col = _pos(node)
        self.problems.append(Diagnostic(message, self.path, line, col, hint))

    def convert(self, node: Node, path: JsonPath, depth: int, aliased: bool) -> Any:
        mark = node.start_mark
        self.locs[path] = (mark.line + 1, mark.column + 1)
        if aliased:
            self.alias_nodes += 1
            if self.alias_nodes > MAX_ALIAS_NODES:
                raise _AliasBomb
        if isinstance(node, ScalarNode):
            return node.value if node.tag == _STR else self.scalar(node)
        key = id(node)
        if key in self.active:
            self.problem(node, "a YAML alias refers to itself (recursive structure)")
            return None
        if depth >= MAX_DEPTH:
            self.problem(node, f"nesting deeper than {MAX_DEPTH} levels")
            return None
        aliased = aliased or key in self.seen
        self.seen.add(key)
        self.active.add(key)
        try:
            if isinstance(node, MappingNode):
                return self.mapping(node, path, depth + 1, aliased)
            assert isinstance(node, SequenceNode)
            return self.sequence(node, path, depth + 1, aliased)
        finally:
            self.active.discard(key)

    def scalar(self, node: ScalarNode) -> Any:
        make = self.scalars.get(node.tag)
        if make is not None:
            return make(node)
        if node.tag in (_T + "timestamp", _T + "value"):
            return node.value  # JSON has no dates; `=` is just text to us
        self.problem(node, f"unsupported YAML tag `{node.tag}`")
        return None

    # Scalars are most nodes, so sequence() and mapping() convert them inline rather than
    # through convert(); inside an alias expansion everything goes through convert() so
    # that it is counted.

    def sequence(self, node: SequenceNode, path: JsonPath, depth: int, aliased: bool) -> Any:
        if node.tag != _SEQ:
            self.problem(node, f"unsupported YAML tag `{node.tag}`")
        out: list[Any] = []
        locs = self.locs
        for i, item in enumerate(node.value):
            sub = (*path, i)
            if item.__class__ is ScalarNode and not aliased:
                mark = item.start_mark
                locs[sub] = (mark.line + 1, mark.column + 1)
                out.append(item.value if item.tag == _STR else self.scalar(item))
            else:
                out.append(self.convert(item, sub, depth, aliased))
        return out

    def mapping(self, node: MappingNode, path: JsonPath, depth: int, aliased: bool) -> Any:
        if node.tag != _MAP:
            self.problem(node, f"unsupported YAML tag `{node.tag}`")
        out: dict[str, Any] = {}
        pairs = node.value
        merged: set[str] | None = None  # keys that came from `<<` and may be overridden once
        if any(k.tag == _MERGE for k, _ in pairs):
            pairs = self.merge(node, path, depth, aliased, out)
            merged = set(out)
        locs, key_locs = self.locs, self.key_locs
        for knode, vnode in pairs:
            if knode.__class__ is not ScalarNode:
                self.problem(knode, "mapping keys must be plain strings")
                continue
            key = knode.value  # raw text, so `on:`/`yes:` stay keys instead of booleans
            sub = (*path, key)
            if key in out and (merged is None or key not in merged):
                self.duplicate(knode, path, key_locs[sub][0])
                continue
            if merged is not None:
                merged.discard(key)
            mark = knode.start_mark
            key_locs[sub] = (mark.line + 1, mark.column + 1)
            if vnode.__class__ is ScalarNode and not aliased:
                mark = vnode.start_mark
                locs[sub] = (mark.line + 1, mark.column + 1)
                out[key] = vnode.value if vnode.tag == _STR else self.scalar(vnode)
            else:
                out[key] = self.convert(vnode, sub, depth, aliased)
        return out

    def duplicate(self, knode: Node, path: JsonPath, first: int) -> None:
        where = f"{dotted(path)}: " if path else ""
        line, col = _pos(knode)
        message = f"{where}duplicate key `{knode.value}` (first defined at line {first})"
        self.duplicates.append(Diagnostic(message, self.path, line, col))

    def merge(self, node: MappingNode, path: JsonPath, depth: int, aliased: bool,
              out: dict[str, Any]) -> list[tuple[Node, Node]]:  # fmt: skip
        """Apply `<<` merge keys into ``out``; returns the remaining explicit pairs.

        Merged values come first and explicit keys then override them, as in PyYAML;
        among merged mappings the earlier one wins.
        """
        own = self.locs[path]
        rest: list[tuple[Node, Node]] = []
        merges = 0
        for knode, vnode in node.value:
            if knode.tag != _MERGE:
                rest.append((knode, vnode))
                continue
            merges += 1
            if merges > 1:
                self.problem(knode, "duplicate key `<<`")
                continue
            sources = vnode.value if isinstance(vnode, SequenceNode) else [vnode]
            for source in sources:
                if not isinstance(source, MappingNode):
                    self.problem(source, "`<<` needs a mapping or a list of mappings")
                    continue
                merged = self.convert(source, path, depth - 1, True)
                for key, value in (merged or {}).items():
                    out.setdefault(key, value)
        self.locs[path] = own  # converting the sources re-located this mapping
        return rest
