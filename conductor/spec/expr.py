"""`when:` conditions: a small expression language in the style of GitHub Actions' `if:`.

A recursive-descent parser of our own builds a tree that is evaluated by walking it:
nothing reaches ``eval``, ``exec`` or ``compile``, so a condition cannot run code.

    or := and ('||' and)*    and := eq ('&&' eq)*    eq := rel (('==' | '!=') rel)?
    rel := unary (('<' | '<=' | '>' | '>=' | 'in') unary | 'in' '(' or (',' or)* ','? ')')?
    unary := '!' unary | '(' or ')' | 'str' | "str" | -1.5e3 | true | false | null | reference

Comparisons do not chain; `in (` always starts a list; a quote doubled inside a string
stands for itself. References: ``matrix.<key>``, ``tasks.<id>.outputs.<key>``,
``tasks.<id>.state``, ``env.<NAME>``; a task id may hold dots, ``-`` and matrix brackets
(``T5[module=auth]``) and ends at the last ``.outputs.<key>`` or ``.state``. ``${{ }}`` is
refused (``when:`` is already an expression). Limits (``MAX_LENGTH`` characters,
``MAX_DEPTH`` levels of ``(`` and ``!``) make hostile text an ExprError, never a crash.

Semantics (a value is a string, a number, a boolean, or null for a missing value):
- Truthiness as in GitHub: false, 0, '' and null are false; all else is true, even the
  strings '0' and 'false' (compare those explicitly: ``x == 'false'``).
- ``&&`` and ``||`` short-circuit (the side not needed is never looked up); they, ``!``
  and every comparison give a boolean.
- ``==``: null equals only null. When both sides look like numbers (numbers, booleans as
  1 and 0, strings such as ' 42', '-1.5', '1e3') they compare as numbers: '0' == 0 and
  '1.10' == '1.1'. Otherwise as text ignoring case, as GitHub does: 'Auth' == 'auth',
  true == 'True', 1 == '1'.
- ``< <= > >=``: numbers (as above) numerically, two strings as text ignoring case; any
  other pair (null, or a number against a word) is false for every ordering operator.
- ``x in (a, b)``: x ``==`` one of the items. ``x in s``: substring ignoring case; false
  when s is not a string or x is null.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import NamedTuple, TypeVar

from conductor.spec.suggest import closest
from conductor.spec.template import ROOTS, Ref, parse_ref

Value = str | float | bool | None
_T = TypeVar("_T")

MAX_LENGTH = 4096
MAX_DEPTH = 32
_FORMS = "conditions read matrix.<key>, tasks.<id>.outputs.<key>, tasks.<id>.state, env.<NAME>"
_NEED_VALUE = "expected a value: a 'string', a number, true, false, null, a reference, ! or ("


class ExprError(ValueError):
    """A condition that does not parse: what is wrong, a hint, and where (0-based offset)."""

    def __init__(self, what: str, offset: int, hint: str | None = None) -> None:
        super().__init__(f"{what}; {hint}" if hint else what)
        self.what, self.offset, self.hint = what, offset, hint


@dataclass(frozen=True)
class _Lit:
    value: Value


@dataclass(frozen=True)
class _Op:
    # "!", "&&", "||" (n-ary: a long chain is one flat node, never a deep tree),
    # "==", "!=", "<", "<=", ">", ">=", "in" (substring), "in()" (needle, *items)
    op: str
    args: tuple[_Node, ...]


_Node = _Lit | Ref | _Op


@dataclass(frozen=True)
class Expr:
    """A parsed condition; ``str()`` prints it in a canonical form that parses back."""

    source: str
    tree: _Node = field(repr=False)

    def refs(self) -> tuple[Ref, ...]:
        """Every context reference, in order of first appearance, without repeats."""
        return tuple(dict.fromkeys(_refs(self.tree)))

    def evaluate(self, value: Callable[[Ref], Value]) -> bool:
        """Whether the condition holds; ``value`` looks a reference up (None = missing)."""
        return _truthy(_eval(self.tree, value))

    def __str__(self) -> str:
        return _show(self.tree)


def parse(text: str) -> Expr:
    """The condition ``text`` as an Expr; ExprError says what is wrong and where."""
    return Expr(text, _Parser(text).parse())


class _Token(NamedTuple):
    kind: str  # "str" | "num" | "name" | "op" | "end", as the groups of _TOKEN
    text: str  # as written
    offset: int


_SPACE = re.compile(r"[ \t\r\n]*")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
# A name is a reference, keyword or stray word. Brackets hold a matrix expansion's `k=v`
# (no spaces, as in parse_ref's task ids), so a following `==` is never swallowed.
_TOKEN = re.compile(
    r"""(?P<str>'[^']*(?:''[^']*)*'(?!')|"[^"]*(?:""[^"]*)*"(?!"))
    |(?P<num>-?[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?)(?![A-Za-z0-9_.])
    |(?P<name>[A-Za-z_][A-Za-z0-9_.-]*(?:\[[^\[\]\s'"]*\][A-Za-z0-9_.-]*)*)
    |(?P<op>==|!=|<=|>=|&&|\|\||[<>!(),])""",
    re.VERBOSE,
)
_NUMBERS = "conditions have no arithmetic; numbers read 42, -1.5, 1e3"
_STRAY = {  # what a character that starts no token means, and the hint for it
    **dict.fromkeys("${}", ("", "`when:` is already an expression: write it without ${{ }}")),
    **{c: ("", f"did you mean `{c * 2}`?") for c in "=&|"},
    **dict.fromkeys("'\"", ("unterminated string", "close it; a quote doubled stands for itself")),
    **dict.fromkeys("-0123456789", ("malformed number", _NUMBERS)),
    "`": ("", "quote strings with ' or \""),
    "[": ("", "brackets belong only in matrix task ids, as in tasks.T5[module=auth].state"),
}


def _tokens(text: str) -> Iterator[_Token]:
    """The tokens of ``text``, read as the parser asks, so the first problem is reported."""
    if len(text) > MAX_LENGTH:
        hint = "decide in an earlier task and test its output"
        raise ExprError(f"the condition is over {MAX_LENGTH} characters", MAX_LENGTH, hint)
    if bad := _CONTROL.search(text):
        raise ExprError(f"control character U+{ord(bad.group()):04X}", bad.start(), "remove it")
    pos = 0
    # _SPACE matches even nothing, and a Match is always true: the test is only the end
    while (space := _SPACE.match(text, pos)) and (pos := space.end()) < len(text):
        match = _TOKEN.match(text, pos)
        if match is None or match.lastgroup is None:
            char = text[pos]
            what, hint = _STRAY.get(char, ("", _NEED_VALUE))
            raise ExprError(what or f"unexpected character {char!r}", pos, hint)
        yield _Token(match.lastgroup, match.group(), pos)
        pos = match.end()
    yield _Token("end", "", len(text))


def _cut(text: str, width: int = 40) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


_EQUALITY = ("==", "!=")
_RELATION = ("<", "<=", ">", ">=", "in")


class _Parser:
    def __init__(self, text: str) -> None:
        self.text, self.tokens = text, _tokens(text)
        self.tok: _Token | None = None  # the next token, read only once it is looked at
        self.depth = 0  # open `(` and `!`, bounded so that recursion is too

    def take(self) -> _Token:
        tok = self.peek()
        self.tok = None if tok.kind != "end" else tok  # the end token stays, nothing runs off
        return tok

    def peek(self) -> _Token:
        self.tok = self.tok or next(self.tokens)
        return self.tok

    def at(self, *words: str) -> bool:
        return self.peek().kind in ("op", "name") and self.peek().text in words

    def parse(self) -> _Node:
        if self.peek().kind == "end":
            hint = "write one such as tasks.T1.outputs.count != '0', or drop `when:`"
            raise ExprError("the condition is empty", 0, hint)
        node = self.or_()
        if (tok := self.take()).kind != "end":
            what = f"unexpected `{_cut(tok.text)}` after a complete condition"
            alias = _ALIASES.get(tok.text)
            hint = f"did you mean `{alias}`?" if alias else "join conditions with && or ||"
            raise ExprError(what, tok.offset, hint)
        return node

    def or_(self) -> _Node:
        return self.joined("||", lambda: self.joined("&&", self.equality))

    def joined(self, op: str, operand: Callable[[], _Node]) -> _Node:
        terms = [operand()]
        while self.at(op):
            self.take()
            terms.append(operand())
        return terms[0] if len(terms) == 1 else _Op(op, tuple(terms))

    def equality(self) -> _Node:
        return self.compared(_EQUALITY, lambda: self.compared(_RELATION, self.unary))

    def compared(self, ops: tuple[str, ...], operand: Callable[[], _Node]) -> _Node:
        left = operand()
        if not self.at(*ops):
            return left
        op = self.take().text
        if op == "in" and self.at("("):
            node = _Op("in()", (left, *self.inside(self.items, "`,` or `)`")))
        else:
            node = _Op(op, (left, operand()))
        if self.at(*ops):
            tok = self.take()
            hint = "join comparisons with &&, as in a < b && b < c, or add parentheses"
            raise ExprError(f"`{tok.text}` cannot follow another comparison", tok.offset, hint)
        return node

    def items(self) -> list[_Node]:
        found = [self.or_()]
        while self.at(",") and self.take() and not self.at(")"):  # a trailing comma is fine
            found.append(self.or_())
        return found

    def unary(self) -> _Node:
        if self.at("!"):
            return _Op("!", (self.inside(self.unary, None),))
        if self.at("("):
            return self.inside(self.or_, "`)`")
        tok = self.take()
        if tok.kind == "num":
            return _Lit(float(tok.text))
        if tok.kind == "str":
            return _Lit(tok.text[1:-1].replace(tok.text[0] * 2, tok.text[0]))
        if tok.kind == "name":
            rest = self.text[tok.offset + len(tok.text) :]  # not yet read: it may be the problem
            return _name(tok, called=rest.lstrip(" \t\r\n").startswith("("))
        what = "the condition ends too early" if tok.kind == "end" else f"unexpected `{tok.text}`"
        raise ExprError(what, tok.offset, _NEED_VALUE)

    def inside(self, inner: Callable[[], _T], closing: str | None) -> _T:
        """Take a `(` or `!` and parse what follows one level deeper, up to its `)` if
        ``closing`` names what may come there; too deep is an ExprError."""
        opening = self.take()
        self.depth += 1
        if self.depth > MAX_DEPTH:
            what = f"the condition nests deeper than {MAX_DEPTH} levels"
            raise ExprError(what, opening.offset, "split it into simpler conditions")
        found = inner()
        if closing and (tok := self.take()).text != ")":
            if tok.kind == "end":
                raise ExprError("`(` is never closed", opening.offset, "add the missing )")
            hint = f"the ( at offset {opening.offset} is still open"
            raise ExprError(f"unexpected `{_cut(tok.text)}`; expected {closing}", tok.offset, hint)
        self.depth -= 1
        return found


_ALIASES = {"and": "&&", "or": "||", "not": "!", "is": "==", "None": "null", "nil": "null"}
_ALIASES |= {"steps": "tasks", "needs": "tasks", "jobs": "tasks", "vars": "env"}


def _name(tok: _Token, called: bool) -> _Node:
    """A keyword or a context reference; any other word is an error with a suggestion."""
    word = tok.text
    if word in ("true", "false", "null"):
        return _Lit({"true": True, "false": False}.get(word))
    root, dot, _ = word.partition(".")
    if dot and root in ROOTS:
        if ref := parse_ref(word):
            return ref
        what = f"`{_cut(word, 60)}` is not a reference conductor knows"
        raise ExprError(what, tok.offset, _ref_hint(word))
    guess = _ALIASES.get(root) or closest(root, ROOTS if dot else ("true", "false", "null"))
    hint = f"did you mean `{guess}`? " if guess else ""
    if word == "in":
        hint = "`in` needs a value on its left: x in ('a', 'b')"
    elif called and not dot:
        hint = "conditions have no functions; test substrings and lists with `in`"
    else:
        hint += _FORMS if dot or not guess else ""
    what = f"unknown context `{_cut(root)}`" if dot else f"unexpected `{_cut(word)}`"
    raise ExprError(what, tok.offset, hint)


def _ref_hint(word: str) -> str:
    if word.startswith(("matrix.", "env.")):
        return "use matrix.<key> or env.<NAME>: letters, digits, _ (and - in a key)"
    head, _, last = word.rpartition(".")
    body, _, middle = head.rpartition(".")
    if last != "state" and closest(last, ["state"]):
        return f"did you mean `{_cut(head, 60)}.state`?"
    if body and middle != "outputs" and closest(middle, ["outputs"]):
        return f"did you mean `{_cut(body, 60)}.outputs.{last}`?"
    return "use tasks.<id>.outputs.<key> or tasks.<id>.state"


_NUMERIC = re.compile(r"\s*[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?\s*", re.ASCII)


def _eval(node: _Node, value: Callable[[Ref], Value]) -> Value:
    if isinstance(node, _Lit):
        return node.value
    if isinstance(node, Ref):
        return value(node)
    op, args = node.op, node.args
    if op == "!":
        return not _truthy(_eval(args[0], value))
    if op in ("&&", "||"):
        # any() stops at the first deciding term: a falsy one for &&, a truthy one for ||
        decides = op == "||"
        return any(_truthy(_eval(a, value)) == decides for a in args) == decides
    first = _eval(args[0], value)
    if op == "in()":
        return any(_equal(first, _eval(item, value)) for item in args[1:])
    second = _eval(args[1], value)
    if op in _SIGNS:
        return _ordered(op, first, second)
    if op == "in":
        return _contains(first, second)
    return _equal(first, second) == (op == "==")


def _truthy(v: Value) -> bool:
    return v != "" if isinstance(v, str) else bool(v) and v == v  # NaN is false, as in GitHub


def _number(v: Value) -> float | None:
    """``v`` as a number when it looks like one (booleans are 1 and 0), else None."""
    if isinstance(v, (bool, int, float)):
        return float(v)
    return float(v) if isinstance(v, str) and _NUMERIC.fullmatch(v) else None


def _text(v: Value) -> str:
    if isinstance(v, bool) or v is None:
        return {True: "true", False: "false", None: "null"}[v]
    if isinstance(v, str):
        return v
    if abs(v) == float("inf"):
        return "-1e999" if v < 0 else "1e999"  # parses back to the same infinity
    return str(int(v)) if float(v).is_integer() and abs(v) < 1e15 else repr(float(v))


def _equal(a: Value, b: Value) -> bool:
    if a is None or b is None:
        return a is None and b is None
    x, y = _number(a), _number(b)
    if x is not None and y is not None:
        return x == y
    return _text(a).casefold() == _text(b).casefold()


_SIGNS = {"<": (-1,), "<=": (-1, 0), ">": (1,), ">=": (0, 1)}


def _ordered(op: str, a: Value, b: Value) -> bool:
    x, y = _number(a), _number(b)
    if x is not None and y is not None:
        sign = (x > y) - (x < y)
    elif isinstance(a, str) and isinstance(b, str):
        a, b = a.casefold(), b.casefold()
        sign = (a > b) - (a < b)
    else:
        return False  # null, or a number against a word: no order at all
    return sign in _SIGNS[op]


def _contains(needle: Value, haystack: Value) -> bool:
    if needle is None or not isinstance(haystack, str):
        return False
    return _text(needle).casefold() in haystack.casefold()


def _refs(node: _Node) -> Iterator[Ref]:
    """The references under ``node``, in source order."""
    if isinstance(node, Ref):
        yield node
    elif isinstance(node, _Op):
        for arg in node.args:
            yield from _refs(arg)


# How tightly each operator binds; a single value binds tightest of all (6).
_STRENGTH = {"||": 1, "&&": 2, "==": 3, "!=": 3, "!": 5, **dict.fromkeys((*_RELATION, "in()"), 4)}


def _show(node: _Node, floor: int = 0) -> str:
    """``node`` as text, in parentheses when it binds looser than ``floor`` needs."""
    if isinstance(node, _Lit):
        v = node.value
        return "'" + v.replace("'", "''") + "'" if isinstance(v, str) else _text(v)
    if isinstance(node, Ref):
        return node.text
    op, args, strength = node.op, node.args, _STRENGTH[node.op]
    if op == "!":
        text = "!" + _show(args[0], 5)
    elif op in ("&&", "||"):
        text = f" {op} ".join(_show(a, strength + 1) for a in args)
    elif op == "in()":
        text = f"{_show(args[0], 5)} in ({', '.join(_show(a, 1) for a in args[1:])})"
    else:
        text = f"{_show(args[0], strength + 1)} {op} {_show(args[1], strength + 1)}"
    return f"({text})" if strength < floor else text
