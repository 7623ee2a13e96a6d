"""`when:` conditions: parsing, GitHub-style semantics, located errors, and hostile text."""

from __future__ import annotations

import ast
import builtins
import itertools
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import conductor.spec.expr as expr_module
from conductor.spec.expr import MAX_DEPTH, MAX_LENGTH, Expr, ExprError, Value, parse
from conductor.spec.template import Ref


def lookup(values: dict[str, Value]) -> Callable[[Ref], Value]:
    """A value() over reference texts; a name not given is missing (None)."""
    return lambda ref: values.get(ref.text)


def ev(text: str, **values: Value) -> bool:
    """``text`` evaluated with ``matrix.<k>`` = values[k]."""
    return parse(text).evaluate(lookup({f"matrix.{k}": v for k, v in values.items()}))


# -- operators and precedence ----------------------------------------------------------------


def test_not_binds_tighter_than_and_which_binds_tighter_than_or() -> None:
    for a, b, c in itertools.product([True, False], repeat=3):
        assert ev("!matrix.a && matrix.b || matrix.c", a=a, b=b, c=c) == ((not a) and b) or c
        assert ev("matrix.a || matrix.b && matrix.c", a=a, b=b, c=c) == (a or (b and c))
        assert ev("!(matrix.a || matrix.b) && matrix.c", a=a, b=b, c=c) == (not (a or b) and c)
        assert ev("!!matrix.a", a=a) == a


def test_comparisons_bind_tighter_than_logic_and_not_tighter_than_comparisons() -> None:
    assert ev("matrix.m == 'auth' && matrix.n > 2 || false", m="auth", n="3")
    assert not ev("matrix.m == 'auth' && matrix.n > 2", m="auth", n="2")
    assert ev("!matrix.a == false", a=True)  # (!a) == false, as in GitHub
    assert ev("matrix.a < 2 == true", a=1.0)  # (a < 2) == true
    assert str(parse("!(matrix.a == 1)")) == "!(matrix.a == 1)"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1 == 1", True),
        ("1 != 1", False),
        ("1 < 2", True),
        ("2 < 2", False),
        ("2 <= 2", True),
        ("3 > 2", True),
        ("2 > 2", False),
        ("2 >= 2", True),
        ("true && false", False),
        ("true && 'x'", True),
        ("false || 0 || ''", False),
        ("false || 'x'", True),
        ("!0", True),
        ("!'x'", False),
        ("(true)", True),
    ],
)
def test_every_operator(text: str, expected: bool) -> None:
    assert parse(text).evaluate(lookup({})) is expected


def test_and_or_give_booleans_not_operands() -> None:
    # GitHub returns the deciding operand; we return its truthiness, so this is 'true' == 'x'
    assert not ev("('x' || 'y') == 'x'")
    assert ev("('x' || 'y') == true")


def test_comparisons_do_not_chain() -> None:
    with pytest.raises(ExprError, match="cannot follow another comparison") as err:
        parse("1 < 2 < 3")
    assert err.value.offset == 6
    with pytest.raises(ExprError, match="cannot follow"):
        parse("1 == 1 != true")
    assert parse("(1 < 2) < 3").evaluate(lookup({}))  # true as 1 < 3, parenthesised on purpose


# -- literals --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("'it''s'", "it's"),
        ("''", ""),
        ("''''", "'"),
        ('"say ""hi"""', 'say "hi"'),
        ('"it\'s"', "it's"),
        ("'back\\slash'", "back\\slash"),  # no backslash escapes, as in GitHub
        ("'ünïcødé ✓'", "ünïcødé ✓"),
        ("42", 42.0),
        ("-7", -7.0),
        ("1.5", 1.5),
        ("-2.99e-2", -0.0299),
        ("1E3", 1000.0),
        ("true", True),
        ("false", False),
        ("null", None),
    ],
)
def test_literals(text: str, value: Value) -> None:
    assert parse(f"matrix.x == {text}").evaluate(lookup({"matrix.x": value}))
    assert parse(text).tree == parse(str(parse(text))).tree


def test_strings_may_hold_operators_and_hostile_text_as_plain_data() -> None:
    text = "'a && b || __import__(\"os\")' == matrix.x"
    assert ev(text, x='A && B || __IMPORT__("os")')
    assert parse(text).refs() == (Ref("matrix", "x"),)


# -- in --------------------------------------------------------------------------------------


def test_in_a_parenthesised_list_is_membership_by_equality() -> None:
    assert ev("matrix.m in ('auth', 'billing')", m="Billing")
    assert not ev("matrix.m in ('auth', 'billing')", m="bill")
    assert ev("matrix.n in (1, 2, 3,)", n="2")  # trailing comma; '2' == 2
    assert ev("matrix.m in ('auth')", m="auth") and not ev("matrix.m in ('auth')", m="au")
    assert not ev("matrix.missing in ('', 0, false)")  # null equals only null
    assert ev("matrix.missing in (null)")
    assert ev("!(matrix.m in ('a', 'b'))", m="c")


def test_in_a_string_is_a_substring_test_ignoring_case() -> None:
    files = {"tasks.scan.outputs.files": "src/Auth.py\nsrc/db.py"}
    assert parse("'auth.py' in tasks.scan.outputs.files").evaluate(lookup(files))
    assert not parse("'web' in tasks.scan.outputs.files").evaluate(lookup(files))
    assert not parse("'x' in tasks.scan.outputs.files").evaluate(lookup({}))  # missing haystack
    assert not ev("matrix.missing in 'abc'")  # a missing needle is in nothing
    assert ev("1 in '2015'") and ev("'' in 'abc'")
    assert not ev("1 in 12") and not ev("true in true")  # only strings have substrings


def test_in_list_items_may_be_any_expression_and_list_nesting_counts_as_depth() -> None:
    assert ev("true in (matrix.a == 1, false)", a="1")
    assert ev("matrix.a in (matrix.b, matrix.c || false)", a=True, b="x", c="y")


# -- coercion --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("'0' == 0", True),
        ("' 42 ' == 42", True),
        ("'1e3' == 1000", True),
        ("'-1.5' == -1.5", True),
        ("'1.10' == '1.1'", True),  # both look like numbers
        ("'007' == '7'", True),
        ("'0x10' == 16", False),  # hex, nan and inf are words, not numbers
        ("'inf' > 1", False),
        ("'nan' == 'NaN'", True),  # ...compared as text
        ("'Auth' == 'auth'", True),  # text ignores case, as in GitHub
        ("'Auth' != 'AUTH'", False),
        ("'straße' == 'STRASSE'", True),  # casefold, not just lower()
        ("true == 'True'", True),
        ("false == 'false'", True),
        ("true == 1", True),
        ("false == 0", True),
        ("'1' == true", True),
        ("1 == '1'", True),
        ("1 == 'one'", False),
        ("1.0 == '1'", True),
        ("null == null", True),
        ("null == ''", False),
        ("null == 0", False),
        ("null == false", False),
        ("'' == 0", False),  # '' is not a number here (GitHub would say 0)
        ("'10' > '9'", True),  # numeric strings order as numbers
        ("'b' > 'A'", True),  # text orders ignoring case
        ("'abc' <= 'ABC'", True),
        ("'abc' < 'ABC'", False),
        ("'abc' < 1", False),  # a word against a number has no order...
        ("'abc' >= 1", False),  # ...for any operator
        ("null < 1", False),
        ("null >= null", False),
        ("true > false", True),
        ("true < 'yes'", False),
    ],
)
def test_comparison_coercions(text: str, expected: bool) -> None:
    assert parse(text).evaluate(lookup({})) is expected


@pytest.mark.parametrize(
    ("value", "truthy"),
    [
        ("", False),
        (None, False),
        (False, False),
        (0.0, False),
        (-0.0, False),
        (float("nan"), False),
        ("0", True),  # as in GitHub: only the empty string is a false string
        ("false", True),
        (" ", True),
        (1.0, True),
        (True, True),
    ],
)
def test_truthiness(value: Value, truthy: bool) -> None:
    assert (
        parse("tasks.T1.outputs.flag").evaluate(lookup({"tasks.T1.outputs.flag": value})) is truthy
    )


def test_missing_values_are_null() -> None:
    assert not parse("env.NOPE == ''").evaluate(lookup({}))
    assert parse("!env.NOPE").evaluate(lookup({}))
    assert parse("env.NOPE == null").evaluate(lookup({}))
    assert parse("env.NOPE != 'x'").evaluate(lookup({}))


def test_values_from_context_may_be_python_ints() -> None:
    assert parse("matrix.n == '3' && matrix.n > 2").evaluate(lambda ref: 3)


# -- short-circuit and references ------------------------------------------------------------


def test_short_circuit_never_looks_up_the_side_not_needed() -> None:
    asked: list[str] = []

    def value(ref: Ref) -> Value:
        asked.append(ref.text)
        if ref.text == "matrix.boom":
            raise AssertionError("looked up")
        return {"matrix.no": False, "matrix.yes": True}.get(ref.text)

    assert not parse("matrix.no && matrix.boom").evaluate(value)
    assert parse("matrix.yes || matrix.boom").evaluate(value)
    assert parse("matrix.yes || matrix.boom && matrix.boom").evaluate(value)
    assert not parse("matrix.no && (matrix.boom || matrix.boom)").evaluate(value)
    assert parse("true in (matrix.yes, matrix.boom)").evaluate(value)
    assert asked == ["matrix.no", "matrix.yes", "matrix.yes", "matrix.no", "matrix.yes"]


def test_refs_in_order_without_repeats_and_task_ids_with_dots_dashes_and_brackets() -> None:
    text = (
        "tasks.v1.2.outputs.port >= 8000 && tasks.T5[module=auth].state == 'succeeded'"
        " || env.CI && matrix.my-key != tasks.a-b.c.outputs.x_y && env.CI"
    )
    assert parse(text).refs() == (
        Ref("tasks", "v1.2", "port"),
        Ref("tasks", "T5[module=auth]"),
        Ref("env", "CI"),
        Ref("matrix", "my-key"),
        Ref("tasks", "a-b.c", "x_y"),
    )
    # a task id ends at the last .outputs.<key> or .state
    assert parse("tasks.a.state.outputs.k").refs() == (Ref("tasks", "a.state", "k"),)
    assert parse("tasks.a.outputs.b.state").refs() == (Ref("tasks", "a.outputs.b"),)
    assert parse("tasks.T5[module=auth,os=linux].state").refs() == (
        Ref("tasks", "T5[module=auth,os=linux]"),
    )


def test_operators_need_no_spaces_around_references() -> None:
    e = parse("tasks.T5[m=a].outputs.n>=2&&!(matrix.x=='y')||env.A!=env.B")
    assert e.refs() == (
        Ref("tasks", "T5[m=a]", "n"),
        Ref("matrix", "x"),
        Ref("env", "A"),
        Ref("env", "B"),
    )
    assert str(e) == "tasks.T5[m=a].outputs.n >= 2 && !(matrix.x == 'y') || env.A != env.B"


def test_expr_keeps_its_source_and_prints_canonically() -> None:
    e = parse('  matrix.a=="x"  ')
    assert isinstance(e, Expr) and e.source == '  matrix.a=="x"  '
    assert str(e) == "matrix.a == 'x'"


# -- errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "offset", "what", "hint"),
    [
        ("", 0, "empty", "drop `when:`"),
        ("   \n ", 0, "empty", "tasks.T1"),
        ("matrix.a ==", 11, "ends too early", "expected a value"),
        ("matrix.a == )", 12, "unexpected `)`", "expected a value"),
        ("matrix.a matrix.b", 9, "after a complete condition", "&& or ||"),
        ("matrix.a and matrix.b", 9, "unexpected `and`", "did you mean `&&`?"),
        ("matrix.a or matrix.b", 9, "unexpected `or`", "did you mean `||`?"),
        ("(matrix.a", 0, "never closed", "add the missing )"),
        ("((matrix.a)", 0, "never closed", ""),
        ("(matrix.a 'x')", 10, "expected `)`", "the ( at offset 0"),
        ("matrix.a in ('x' 'y')", 17, "expected `,` or `)`", "offset 12"),
        ("matrix.a in ()", 13, "unexpected `)`", "expected a value"),
        ("matrix.a)", 8, "after a complete condition", ""),
        ("'abc", 0, "unterminated string", "doubled"),
        ('matrix.a == "abc', 12, "unterminated string", ""),
        ("'it''s", 0, "unterminated string", ""),
        ("matrix.a = 'x'", 9, "unexpected character '='", "did you mean `==`?"),
        ("matrix.a & matrix.b", 9, "'&'", "did you mean `&&`?"),
        ("matrix.a | matrix.b", 9, "'|'", "did you mean `||`?"),
        ("matrix.a - 1", 9, "malformed number", "no arithmetic"),
        ("1abc", 0, "malformed number", ""),
        ("0xff == 255", 0, "malformed number", ""),
        ("1.2.3", 0, "malformed number", ""),
        ("secrets.TOKEN != ''", 0, "unknown context `secrets`", "conditions read matrix.<key>"),
        ("github.ref == 'main'", 0, "unknown context `github`", "env.<NAME>"),
        ("needs.T1.outputs.x", 0, "unknown context `needs`", "did you mean `tasks`?"),
        ("steps.T1.outputs.x", 0, "unknown context `steps`", "did you mean `tasks`?"),
        ("task.T1.state", 0, "unknown context `task`", "did you mean `tasks`?"),
        ("martix.a", 0, "unknown context `martix`", "did you mean `matrix`?"),
        ("1 == tasks.T1.status", 5, "not a reference", "did you mean `tasks.T1.state`?"),
        ("tasks.T1.output.k", 0, "not a reference", "did you mean `tasks.T1.outputs.k`?"),
        ("tasks.T1", 0, "not a reference", "tasks.<id>.outputs.<key>"),
        ("tasks.T1.outputs['k']", 0, "not a reference", "tasks.<id>.outputs.<key>"),
        ("matrix.a.b", 0, "not a reference", "matrix.<key>"),
        ("env.MY-VAR", 0, "not a reference", "env.<NAME>"),
        ("True", 0, "unexpected `True`", "did you mean `true`?"),
        ("None", 0, "unexpected `None`", "did you mean `null`?"),
        ("matrix", 0, "unexpected `matrix`", "conditions read"),
        ("not matrix.a", 0, "unexpected `not`", "did you mean `!`?"),
        ("contains(matrix.a, 'x')", 0, "unexpected `contains`", "no functions"),
        ("in ('a')", 0, "unexpected `in`", "needs a value on its left"),
        ("matrix.a in", 11, "ends too early", ""),
        ("`ls`", 0, "unexpected character '`'", "quote strings"),
        ("${{ matrix.a }}", 0, "unexpected character '$'", "without ${{ }}"),
        ("matrix.a == {}", 12, "'{'", "without ${{ }}"),
        ("matrix.a[0]", 0, "not a reference", "matrix.<key>"),
        ("matrix.a in [1, 2]", 12, "'['", "brackets belong only in matrix task ids"),
        ("matrix.a\x00", 8, "control character U+0000", "remove it"),
        ("'a\x1bb'", 2, "control character U+001B", ""),
        ("matrix.a ≠ 1", 9, "unexpected character '≠'", ""),
    ],
)
def test_each_error_says_what_where_and_hints(text: str, offset: int, what: str, hint: str) -> None:
    with pytest.raises(ExprError) as err:
        parse(text)
    assert err.value.offset == offset, str(err.value)
    assert what in err.value.what
    assert hint in (err.value.hint or "")
    assert str(err.value) == f"{err.value.what}; {err.value.hint}"


def test_the_first_problem_in_reading_order_is_reported() -> None:
    # tokens are read as the parser asks, so a bad word before a bad character wins
    with pytest.raises(ExprError, match="no functions") as err:
        parse("__import__('os').system('x')")
    assert err.value.offset == 0


def test_expr_error_is_a_value_error() -> None:
    assert issubclass(ExprError, ValueError)


def test_whitespace_may_be_newlines_and_tabs_as_in_a_yaml_block() -> None:
    assert ev("matrix.a == 'x'\n\t&& matrix.b\r\n", a="x", b=True)


# -- limits and hostile text -----------------------------------------------------------------


def test_nesting_is_limited_and_never_a_recursion_error() -> None:
    ok = "(" * MAX_DEPTH + "true" + ")" * MAX_DEPTH
    assert parse(ok).evaluate(lookup({}))
    assert parse("!" * MAX_DEPTH + "true").evaluate(lookup({})) is (MAX_DEPTH % 2 == 0)
    for opener in ("(", "!", "matrix.a in ("):
        with pytest.raises(ExprError, match="nests deeper") as err:
            parse(opener * (MAX_DEPTH + 1) + "true")
        assert err.value.offset == len(opener) * (MAX_DEPTH + 1) - 1  # at the opener too many
    with pytest.raises(ExprError, match="nests deeper"):
        parse("(" * 2000)  # under the length limit: the depth limit stops it
    with pytest.raises(ExprError):
        parse("(" * 10_000)  # over the length limit: stopped before any parsing


def test_length_is_limited_but_a_long_flat_chain_is_fine() -> None:
    with pytest.raises(ExprError, match=f"over {MAX_LENGTH} characters") as err:
        parse("'" + "a" * MAX_LENGTH + "'")
    assert err.value.offset == MAX_LENGTH
    with pytest.raises(ExprError):
        parse("1 == 1 && " * 100_000 + "true")
    chain = " && ".join(["true"] * ((MAX_LENGTH + 4) // 8))  # ~500 terms, one flat node
    assert len(chain) <= MAX_LENGTH
    assert parse(chain).evaluate(lookup({}))
    assert parse(" || ".join(["!true"] * 400) + " || true").evaluate(lookup({}))


HOSTILE = [
    "__import__('os').system('touch {sentinel}')",
    "().__class__.__bases__[0].__subclasses__()",
    "().__class__",
    "open('{sentinel}', 'w')",
    "exec(\"open('{sentinel}', 'w')\")",
    "eval('1')",
    "lambda: 1",
    "`touch {sentinel}`",
    "$(touch {sentinel})",
    "${{{{ matrix.a }}}}",
    "${{{{ }}}}",
    "{{{{ matrix.a }}}}",
    "matrix.a; import os",
    "matrix.a\x00 || true",
    "\x00",
    "matrix.a == 'x'\x00",
    "tasks.T1.outputs.x.__class__",
    "matrix.__class__.__init__.__globals__",
    "matrix.a if true else matrix.b",
    "[x for x in ()]",
    "{{'a': 1}}",
    "f'{{1}}'",
    "b'x'",
    "1 + 1",
    "1_000 == 1000",
    "matrix.a @ 1",
    "\\x41",
    "'\\'' == 1",
    "#!/bin/sh",
    "-- drop table",
    "matrix.a == '; rm -rf /",
    "\u202e'x'",
    "tasks.T1.state == 'x' # comment",
]


@pytest.mark.parametrize("template", HOSTILE)
def test_hostile_text_is_an_expr_error_and_runs_nothing(
    template: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sentinel = tmp_path / "pwned"
    text = template.format(sentinel=sentinel)

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("the parser ran code")

    for name in ("eval", "exec", "compile"):
        monkeypatch.setattr(builtins, name, forbidden)
    with pytest.raises(ExprError):
        parse(text)
    assert not sentinel.exists()


def test_the_module_never_calls_eval_exec_compile_or_imports_at_run_time() -> None:
    tree = ast.parse(Path(expr_module.__file__).read_text(encoding="utf-8"))
    calls = [node.func for node in ast.walk(tree) if isinstance(node, ast.Call)]
    names = {f.id for f in calls if isinstance(f, ast.Name)}
    methods = {f.attr for f in calls if isinstance(f, ast.Attribute)}
    assert not names & {"eval", "exec", "compile", "__import__", "getattr", "globals", "vars"}
    assert not methods & {"literal_eval", "import_module", "system", "popen", "run"}
    assert "re.compile" in ast.unparse(tree)  # the check sees calls: regexes are compiled


# -- properties ------------------------------------------------------------------------------

VOCABULARY = [
    *("==", "!=", "<", "<=", ">", ">=", "&&", "||", "!", "(", ")", ",", "in", "=", "&", "|"),
    *("true", "false", "null", "True", "0", "-1", "1.5", "1e3", "-", ".", "1.", "0x1"),
    *("'a'", "'it''s'", "''", '"b"', "'", '"', "'x", "`", "$", "{{", "}}", "[", "]"),
    *("matrix.m", "env.HOME", "tasks.T1.state", "tasks.v1.2.outputs.port", "tasks.T5[m=a].state"),
    *("tasks.T1", "secrets.X", "github.ref", "foo", "__import__", "\x00", "\n", "é", " "),
]


def check(text: str) -> None:
    """``text`` parses or raises ExprError; a parsed condition prints back to itself."""
    try:
        e = parse(text)
    except ExprError as err:
        assert 0 <= err.offset <= len(text)
        return
    printed = str(e)
    again = parse(printed)
    assert again.tree == e.tree and str(again) == printed
    assert e.refs() == again.refs()
    values = lookup(dict.fromkeys((r.text for r in e.refs()), "1"))
    assert e.evaluate(values) is again.evaluate(values)


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(VOCABULARY), max_size=25), st.sampled_from(["", " "]))
def test_token_soups_parse_or_raise_expr_error_and_round_trip(words: list[str], sep: str) -> None:
    check(sep.join(words))


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60))
def test_arbitrary_text_parses_or_raises_expr_error(text: str) -> None:
    check(text)


LEAF_IN = "'xyz'"
LEAVES = st.sampled_from(
    [
        "matrix.a",
        "matrix.b",
        "env.E",
        "tasks.T.outputs.k",
        "'x'",
        "'X'",
        "''",
        "'1'",
        "1",
        "-2.5",
        "0",
        "true",
        "false",
        "null",
    ]
)


def conditions() -> st.SearchStrategy[str]:
    """Well-formed conditions with explicit parentheses everywhere."""

    def grow(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
        binary = st.tuples(
            inner, st.sampled_from(["&&", "||", "==", "!=", "<", "<=", ">", ">=", "in"]), inner
        )
        return st.one_of(
            inner.map(lambda x: f"!({x})"),
            binary.map(
                lambda t: f"({t[0]}) {t[1]} ({t[2]})" if t[1] != "in" else f"({t[0]}) in {LEAF_IN}"
            ),
            st.tuples(inner, st.lists(inner, min_size=1, max_size=3)).map(
                lambda t: f"({t[0]}) in ({', '.join(t[1])})"
            ),
        )

    return st.recursive(LEAVES, grow, max_leaves=12)


ATOMS: list[Value] = ["x", "X", "", "1", "0", "abc", 1.0, 0.0, True, False, None]


@settings(max_examples=300, deadline=None)
@given(conditions(), st.lists(st.sampled_from(ATOMS), min_size=4, max_size=4))
def test_well_formed_conditions_parse_evaluate_and_print_back(
    text: str, atoms: list[Value]
) -> None:
    try:
        e = parse(text)
    except ExprError as err:  # st.recursive can stack `!(` deeper than the limit
        assert "nests deeper" in err.what
        return
    names = ["matrix.a", "matrix.b", "env.E", "tasks.T.outputs.k"]
    values = lookup(dict(zip(names, atoms, strict=True)))
    again = parse(str(e))
    assert again.tree == e.tree
    assert isinstance(e.evaluate(values), bool)
    assert e.evaluate(values) is again.evaluate(values)
